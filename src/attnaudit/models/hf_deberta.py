"""DeBERTa's adapter (v1 and v2/v3): the generic host's erasure inside its disentangled attention.

**Why an adapter, not the registry.** transformers' ``DisentangledSelfAttention`` (``deberta_v2``;
``deberta`` for v1, the same structure with fused projections and no position buckets) computes its
scores itself: content-to-content ``q k^T``, plus content-to-position (``c2p``, the query against
the relative-position keys of the distance, log-bucketed in v2/v3) and position-to-content (``p2c``,
the key against the relative-position queries), scaled by ``sqrt(dh * (1 + #terms))``, masked with
the dtype's minimum, then its own softmax. It never calls transformers' ``AttentionInterface``, so
the host's registered function never runs for it (``set_attn_implementation`` only logs that the
model "does not support" it). v1's optional talking heads (``talking_head``: heads mixed after the
softmax) are refused (:func:`check`).

**How it hooks in.** Right after its softmax the module passes the probabilities ``(N, H, T', T')``
through its own attention-probability dropout, ``attention.self.dropout`` (an ``nn.Dropout``,
the identity in eval), and multiplies what that returns with the values. A forward hook on that
submodule (torch's documented ``register_forward_hook``: a hook's return value replaces the
module's output) therefore sees DeBERTa's real probabilities, c2p and p2c included, and hands
back the edited ones, with the rule every other family uses
(:func:`attnaudit.models.hf_generic.plan_probabilities`: the erased items' keys zeroed in the
classification row, or every row, of one head or all, and renormalised). The hooks live for one
forward pass (:func:`probability_hooks`, a context manager; removed in ``finally``): no class or
function of transformers is patched and a live model object is left as it was given.

Everything else is the generic host's: items and words, the classification position (``[CLS]``,
which DeBERTa's ``ContextPooler`` reads), padding (right; relative positions among the real tokens
do not depend on it), sites, gradients, rankings, the report. DeBERTa computes every row's
probabilities anyway, so an edit costs no extra attention work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from attnaudit.models.hf_generic import GenericPlan, plan_probabilities

if TYPE_CHECKING:
    from attnaudit.models.hf_generic import GenericHFClassifier

#: within each layer, the dropout DeBERTa applies to its post-softmax probabilities
PROBABILITY_DROPOUT = "attention.self.dropout"


def check(config: Any) -> None:
    """A one-line ValueError for a DeBERTa this adapter cannot audit: v1's talking heads
    (``talking_head``) mix the heads' probabilities after the dropout it hooks, so what the
    values are multiplied with would not be the probabilities it edits."""
    if getattr(config, "talking_head", False):
        raise ValueError(f"model_type {config.model_type!r} with talking_head=True: its heads' "
                         "probabilities are mixed after the softmax (talking-heads attention), "
                         "so no head's attention is the weights its values get; not audited")


def _probability_dropout(layer: nn.Module, family: str) -> nn.Dropout:
    """Layer ``layer``'s attention-probability dropout; a one-line error if this transformers
    version moved it (the adapter would otherwise edit nothing)."""
    try:
        module = layer.get_submodule(PROBABILITY_DROPOUT)
    except AttributeError:
        module = None
    if not isinstance(module, nn.Dropout):
        raise RuntimeError(f"{family}: no nn.Dropout at '{PROBABILITY_DROPOUT}' in "
                           f"{type(layer).__name__} (this transformers version's DeBERTa is not "
                           "the one attnaudit's adapter hooks into)")
    return module


def _hook(plan: GenericPlan, layer: int
          ) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], torch.Tensor | None]:
    """The forward hook of layer ``layer``'s probability dropout under ``plan``."""

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor
             ) -> torch.Tensor | None:
        plan.calls += 1  # the host checks one call per layer per pass
        probs = args[0]  # (N, H, T', T'): DeBERTa's softmax, before its dropout
        edited = plan_probabilities(probs, plan, layer)
        if edited is probs:
            return None  # nothing edited: the module's own output stands
        assert isinstance(module, nn.Dropout)
        return nn.functional.dropout(edited, p=module.p, training=module.training)

    return hook


@contextmanager
def probability_hooks(host: GenericHFClassifier, plan: GenericPlan) -> Iterator[None]:
    """For one forward pass of ``host.hf``: every layer's probabilities recorded and edited as
    ``plan`` says (the family descriptor's ``adapter``)."""
    layers = host.hf.get_submodule(host.family.layers)
    assert isinstance(layers, nn.ModuleList)
    handles: list[RemovableHandle] = []
    try:
        for index, layer in enumerate(layers):
            dropout = _probability_dropout(layer, host.family.name)
            handles.append(dropout.register_forward_hook(_hook(plan, index)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def attention_width(host: GenericHFClassifier, t: int) -> int:
    """Per query position, the numbers one DeBERTa layer's attention holds at once over ``t``
    keys (the memory budget's estimate, :meth:`attnaudit.models.hf.HFClassifier.recompute_bytes`):
    per head, the content scores, the gathered c2p and p2c terms and their sum, the masked scores
    and the probabilities (6 ``t``), and the two products against the ``2 * span`` relative
    positions before they are gathered (``4 * span``); the registered function holds ``2 t``."""
    config = host.hf.config
    span = 0
    if getattr(config, "relative_attention", False):
        buckets = int(getattr(config, "position_buckets", -1))
        relative = int(getattr(config, "max_relative_positions", -1))
        span = buckets if buckets > 0 else relative if relative > 0 else \
            int(config.max_position_embeddings)
        if config.model_type == "deberta":  # v1 cuts the span to the sequence
            span = min(span, t)
    return host.num_heads * (6 * t + 4 * span)


__all__ = ["PROBABILITY_DROPOUT", "attention_width", "check", "probability_hooks"]
