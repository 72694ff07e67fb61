"""The generic host's fast path: resume the forward pass at the audited layer.

An edit of layer ``l``'s attention changes nothing that enters layer ``l``: the states entering it,
the masks, the rotary position embeddings (one pair per layer type: ModernBERT's and Mistral's
local/global layers get different masks) are those of the unmodified pass. So the candidates need
only layers ``l..L-1``, the final norm and the head, run on ``N * k`` sequences, from those inputs.

**Capture, not reimplementation.** :class:`LayerCapture` puts a forward pre-hook (``with_kwargs``)
on the family's layer modules (the descriptor's ``layers``: ALBERT's one shared module fires once
per layer) and keeps, for each call from the audited layer up, the module and the exact ``args`` /
``kwargs`` transformers gave it; from the audited layer's call it keeps the entering states too.
:func:`resume_layers` calls those modules again in order, with the states chained from one to the
next and every batch-first tensor of the captured arguments repeated ``k`` times per document
(``repeat_interleave``, the candidates' order); the attention plan is the candidates' own. No
transformers code is copied for the layers, so whatever a family passes its layers (causal or
sliding masks, position embeddings, a layer-type mapping) is passed again unchanged.

**Decoders, classification row.** With ``query_rows="cls"`` a causal decoder's edit changes only
the last real token's row, at the edited layer and above (no other real position attends to it):
:func:`resume_row` runs each layer as one decoding step of that token, through transformers' own
cache interface (:class:`PrefixCache`: the unedited pass's keys and values of the other positions,
recorded by the host's attention function), so a candidate costs one position per layer, not
``T'``. With every row edited, and for encoders, :func:`resume_layers` runs whole sequences.

**Heads.** What a model does after its last layer is not a module call one can capture: it is the
body of the classifier's ``forward``. :data:`TAILS` holds it, one short function per head kind
(the descriptor's ``tail``), each the exact operations of transformers' own ``forward`` (cited).

**Batch-first.** A captured tensor is batch-first when it has at least two dimensions and its first
has the pass's ``N`` documents (masks ``(N, 1, T', T')``, position ids ``(N, T')``, rotary
``(N, T', dh)``); one of first dimension 1 broadcasts and is repeated too when ``N == 1`` (the
same values). One-dimensional tensors (``cache_position`` ``(T',)``) are never batch-first. A
layer argument of two or more dimensions whose first is ``N`` by coincidence and not the batch would
be repeated wrongly: no hosted family passes one (the conformance table, with ``N`` = 1 and 4 and
``T'`` up to 9, would show it as a mismatch with the naive path).

The reference is the naive recompute (``fast_path = False``): the whole model on the ``N * k``
candidate sequences; the conformance table tests the two equal for every family with a ``tail``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

#: the keyword the host's attention plan travels under (replaced on resume)
PLAN_KEY = "attnaudit_plan"


@dataclass
class LayerCall:
    """One captured layer call: ``module(*args, **kwargs)`` with the states taken out.

    Attributes:
        module: the layer module called.
        args, kwargs: its other arguments (detached tensors), the plan removed.
        positional: True when the states were ``args[0]`` (else ``kwargs["hidden_states"]``).
    """

    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    positional: bool


@dataclass
class ResumePoint:
    """What the candidates of layer ``layer`` need: the states entering it ``(N, T', d)``, the
    calls of layers ``layer..L-1`` and (decoders) each layer's keys and values
    ``(N, H_kv, T', dh)`` as its attention function received them (:func:`resume_row`)."""

    layer: int
    hidden: torch.Tensor
    calls: list[LayerCall]
    keys_values: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None


def _detach(value: Any) -> Any:
    """``value`` with every tensor detached (the unmodified pass's inputs carry no gradient the
    candidates need: the edit is downstream of them)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, tuple | list):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


@dataclass
class LayerCapture:
    """Collects the layer calls of one forward pass (see the module docstring).

    Attributes:
        start: the first layer whose call is kept (earlier ones are only counted).
        entering: the layers whose entering states are kept.
        calls: every kept call, in order; ``hidden``: layer -> entering states ``(N, T', d)``.
        count: layer calls so far in the pass.
    """

    start: int
    entering: frozenset[int]
    calls: dict[int, LayerCall] = field(default_factory=dict)
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    count: int = 0

    def hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The forward pre-hook: record, change nothing."""
        layer = self.count
        self.count += 1
        if layer < self.start:
            return
        positional = bool(args)
        states = args[0] if positional else kwargs["hidden_states"]
        rest = args[1:] if positional else args
        others = {k: v for k, v in kwargs.items() if k != PLAN_KEY and
                  (positional or k != "hidden_states")}
        self.calls[layer] = LayerCall(module, _detach(rest), _detach(others), positional)
        if layer in self.entering:
            self.hidden[layer] = states.detach()

    def points(self, num_layers: int) -> dict[int, ResumePoint]:
        """A resume point per kept entering layer; none if the pass did not call exactly
        ``num_layers`` layers through the hooked modules (then the naive path is taken)."""
        if self.count != num_layers:
            return {}
        return {layer: ResumePoint(layer, hidden, [self.calls[i] for i in range(layer, num_layers)])
                for layer, hidden in self.hidden.items()}


@contextmanager
def capturing(layers: Sequence[nn.Module], capture: LayerCapture) -> Iterator[LayerCapture]:
    """Hooks ``capture`` on the distinct modules of ``layers`` for the duration of the block."""
    handles = [module.register_forward_pre_hook(capture.hook, with_kwargs=True)
               for module in dict.fromkeys(layers)]  # ALBERT: one module, hooked once
    try:
        yield capture
    finally:
        for handle in handles:
            handle.remove()


def expand(value: Any, n: int, k: int, memo: dict[int, Any]) -> Any:
    """``value`` with every batch-first tensor (first dimension ``n``, at least 2 dims) repeated
    ``k`` times per row; ``memo`` shares one expansion between calls that share a tensor (the
    layers' common mask)."""
    if isinstance(value, torch.Tensor):
        if value.dim() < 2 or value.shape[0] != n or k == 1:
            return value
        key = id(value)
        if key not in memo:
            memo[key] = value.repeat_interleave(k, dim=0)
        return memo[key]
    if isinstance(value, tuple | list):
        return type(value)(expand(v, n, k, memo) for v in value)
    if isinstance(value, dict):
        return {name: expand(v, n, k, memo) for name, v in value.items()}
    return value


def resume_layers(point: ResumePoint, k: int, plan: Any) -> torch.Tensor:
    """The states leaving the last layer ``(N * k, T', d)``: layers ``point.layer..L-1`` run on
    each document's states repeated ``k`` times, with ``plan`` (the candidates' edit)."""
    n = point.hidden.shape[0]
    memo: dict[int, Any] = {}
    hidden = point.hidden.repeat_interleave(k, dim=0)  # (N*k, T', d)
    for call in point.calls:
        args = expand(call.args, n, k, memo)
        kwargs = expand(call.kwargs, n, k, memo)
        kwargs[PLAN_KEY] = plan
        out = call.module(hidden, *args, **kwargs) if call.positional else \
            call.module(*args, hidden_states=hidden, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


# --- decoders with the classification row edited: one decoding step per candidate ----------------

#: the layer arguments :func:`resume_row` knows how to cut to the classification position
ROW_KWARGS = frozenset({"attention_mask", "position_embeddings", "position_ids", "cache",
                        "use_cache"})


class PrefixCache:
    """transformers' cache interface (``update``) for one layer call, over fixed keys and values
    ``(N * k, H_kv, T' - 1, dh)`` of every position but the classification one, to which the
    candidates' own key and value are appended (as in one decoding step). Duck-typed because the
    layers only call ``update``; transformers' ``DynamicCache`` built from a config would crop
    sliding-window layers (the mask does that here)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values

    def update(self, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N * k, H_kv, T', dh)`` keys and values: the prefix's, then the new position's."""
        return torch.cat([self.keys, key], dim=2), torch.cat([self.values, value], dim=2)


def row_order(cls_pos: torch.Tensor, t: int) -> torch.Tensor:
    """``(N, T')`` the positions with the classification one moved last (the keys' order in a
    decoding step: the prefix cache, then the new position)."""
    base = torch.arange(t - 1, device=cls_pos.device)[None, :]  # (1, T'-1)
    others = base + (base >= cls_pos[:, None]).long()  # (N, T'-1)
    return torch.cat([others, cls_pos[:, None]], dim=1)


def can_resume_row(point: ResumePoint) -> bool:
    """True when :func:`resume_row` applies: keys and values recorded, and every layer call made of
    arguments it knows (positional: the states alone)."""
    return point.keys_values is not None and all(
        not call.args and call.positional and set(call.kwargs) <= ROW_KWARGS
        and ("cache" in call.kwargs) for call in point.calls)


def resume_row(point: ResumePoint, cls_pos: torch.Tensor, k: int, plan: Any) -> torch.Tensor:
    """The classification position's state leaving the last layer ``(N * k, 1, d)``, for a causal
    decoder whose edit touches the classification row alone (``query_rows="cls"``).

    No other real position attends to the last real token, so from the edited layer up only its
    row changes: each layer runs as one decoding step of that token, its query against the
    unedited pass's keys and values of the other positions (:class:`PrefixCache`) and its own.
    Padding after it (right padding) does attend to it and changes, but no real row reads padding.

    Args:
        point: the resume point (with ``keys_values``); cls_pos: ``(N,)`` the positions.
        plan: the candidates' plan, its layout's ``cls_pos`` zeros (the step's one query row) and
            ``item_pos`` in the step's key order.
    """
    assert point.keys_values is not None
    n, t, _ = point.hidden.shape
    rows = torch.arange(n, device=cls_pos.device)
    order = row_order(cls_pos, t)  # (N, T')
    hidden = point.hidden[rows, cls_pos][:, None].repeat_interleave(k, dim=0)  # (N*k, 1, d)
    for layer, call in enumerate(point.calls, start=point.layer):
        kwargs = dict(call.kwargs)
        mask = kwargs["attention_mask"].expand(n, 1, t, t)[rows, :, cls_pos]  # (N, 1, T')
        kwargs["attention_mask"] = mask.gather(-1, order[:, None, :])[:, :, None]  # (N,1,1,T')
        cos, sin = (e.expand(n, *e.shape[1:])[rows, cls_pos][:, None]
                    for e in kwargs["position_embeddings"])  # (N, 1, dh) each
        kwargs["position_embeddings"] = (cos, sin)
        if kwargs.get("position_ids") is not None:
            kwargs["position_ids"] = kwargs["position_ids"].expand(n, t)[rows, cls_pos][:, None]
        keys, values = point.keys_values[layer]  # (N, H_kv, T', dh)
        index = order[:, None, : t - 1, None].expand(-1, keys.shape[1], -1, keys.shape[-1])
        kwargs = expand(kwargs, n, k, {})  # a fresh memo: these tensors are this layer's own
        kwargs["cache"] = PrefixCache(keys.gather(2, index).repeat_interleave(k, dim=0),
                                      values.gather(2, index).repeat_interleave(k, dim=0))
        kwargs[PLAN_KEY] = plan
        out = call.module(hidden, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


# --- heads: the classifier's forward after its last layer, per kind ----------------------------------

#: ``(model, final states (N, T', d) leaving the last layer, mask (N, T') bool, classification
#: position (N,)) -> logits (N, C)``
Tail = Callable[[PreTrainedModel, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _classifier(model: PreTrainedModel, final: torch.Tensor, mask: torch.Tensor,
                cls_pos: torch.Tensor) -> torch.Tensor:
    """RoBERTa, ELECTRA: ``self.classifier(sequence_output)`` (the head reads ``[:, 0]``)."""
    return model.get_submodule("classifier")(final)


def _distilbert(model: PreTrainedModel, final: torch.Tensor, mask: torch.Tensor,
                cls_pos: torch.Tensor) -> torch.Tensor:
    """DistilBertForSequenceClassification: ``[:, 0]``, pre_classifier, ReLU, dropout, classifier."""
    pooled = nn.functional.relu(model.get_submodule("pre_classifier")(final[:, 0]))
    return model.get_submodule("classifier")(model.get_submodule("dropout")(pooled))


def _albert(model: PreTrainedModel, final: torch.Tensor, mask: torch.Tensor,
            cls_pos: torch.Tensor) -> torch.Tensor:
    """AlbertModel's pooler (dense + tanh on ``[:, 0]``), then dropout and classifier."""
    base = model.get_submodule("albert")
    pooled = base.pooler_activation(base.pooler(final[:, 0]))
    return model.get_submodule("classifier")(model.get_submodule("dropout")(pooled))


def _modernbert(model: PreTrainedModel, final: torch.Tensor, mask: torch.Tensor,
                cls_pos: torch.Tensor) -> torch.Tensor:
    """ModernBertModel's ``final_norm``, then ModernBertForSequenceClassification's pooling
    (``classifier_pooling``: ``cls`` or the masked ``mean``), head, dropout, classifier."""
    states = model.get_submodule("model.final_norm")(final)
    if model.config.classifier_pooling == "cls":
        pooled = states[:, 0]
    else:
        weights = mask.to(states.dtype)[..., None]  # (N, T', 1)
        pooled = (states * weights).sum(dim=1) / mask.sum(dim=1, keepdim=True)
    head = model.get_submodule("head")(pooled)
    return model.get_submodule("classifier")(model.get_submodule("drop")(head))


def _decoder(model: PreTrainedModel, final: torch.Tensor, mask: torch.Tensor,
             cls_pos: torch.Tensor) -> torch.Tensor:
    """The decoder's final norm (``norm``; Phi-1/2: ``final_layernorm``), then the score head at
    the classification position (as the host's naive path reads it)."""
    base = model.get_submodule(model.base_model_prefix)
    norm = base.norm if hasattr(base, "norm") else base.final_layernorm
    rows = torch.arange(final.shape[0], device=final.device)
    return model.get_submodule("score")(norm(final)[rows, cls_pos])


#: head kinds (the descriptor's ``tail``): a new family with a new head is one function + one line
TAILS: dict[str, Tail] = {
    "classifier": _classifier,
    "distilbert": _distilbert,
    "albert": _albert,
    "modernbert": _modernbert,
    "decoder": _decoder,
}

__all__ = ["TAILS", "LayerCapture", "PrefixCache", "ResumePoint", "can_resume_row", "capturing",
           "expand", "resume_layers", "resume_row", "row_order"]
