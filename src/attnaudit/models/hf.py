"""Transformer classifiers (BERT family, Hugging Face ``transformers``) behind the model protocol.

Two models over one encoder::

    hf           [CLS] x [SEP] -> BERT layers -> pooler(h_[CLS]) -> linear head
                 (BertForSequenceClassification, as trained and saved by transformers)
    hf-attnpool  [CLS] x [SEP] -> BERT layers -> additive attention over the items' final states
                 -> linear head (the paper's pooling on top of a transformer)

**Inputs and items.** ``Batch.token_ids`` ``(B, T)`` hold the tokenizer's subword ids of each document
*without* special tokens, padded at the end (``Batch.mask``, from the lengths, marks the tokens:
an id 0 may be one). The model builds the
sequence ``[CLS] t_1 .. t_n [SEP] [PAD] ..`` ``(B, T + 2)`` and its mask itself, so token position
``i`` of ``token_ids`` is sequence position ``i + 1`` and item ``i`` of every site. [CLS] and [SEP] are
never items, by construction: they cannot be erased, only the items' share of a row moves.

**Sites.** Per layer ``l`` (0-based) ``L{l}`` (all heads) and ``L{l}.h{h}`` (one head); for
hf-attnpool also ``pool`` (the additive attention, the paper's site, first). A layer site's attention
``(B, n)`` is the classification row's (query [CLS]) attention over the items, renormalised over them
(all heads: the mean over heads, then renormalised). Sites are declared from the last layer down;
plain hf's first site is ``L{L-1}``, the last layer's [CLS] row over all heads. It is marked
``paper=True``: it is the last attention before the head (the paper's criterion), only its
classification row reaches the output, and the conformance suite requires the first site to be the
paper's. It is *not* a linear pooling: erasing re-runs the rest of the layer, the pooler and the head.
Plain hf audits by default (no ``--sites``; :meth:`HFClassifier.audited_by_default`) ``L{L-1}``
from the [CLS] row, every step: the attention users read, cheap; lower layers from every query row
move more decisions but cost 24-100x more on a CPU (measured on MiniLM fine-tuned on IMDB,
docs/results.md, "The defaults"; :data:`attnaudit.results.advice.DEFAULTS_WHY`), so the advice
prints their command where most documents cannot flip. hf-attnpool audits ``pool`` alone.

**Erasure** (``logits_with(output, site, w)``, ``w`` ``(B, k, n)``). Erasing item ``i`` sets the
attention probabilities from the chosen query rows (``query_rows="cls"``, the default: the [CLS]
row; ``"all"``: every row) to key ``i`` to zero in the site's head(s), and renormalises each
row: [CLS] and [SEP] keep their probability, so they take a share of the freed mass. Everything
downstream is then recomputed from the hidden states that entered the layer in the unmodified pass
(cached by ``run``).
The items to erase are the zeros of ``w``. Non-zero candidates (permutations, adversarial attention,
gradients) follow one rule that contains erasure as a special case: with ``a`` the site's attention,
``S = sum of a_j over the items w keeps`` and heads ``G`` (one head or all), every row's probability
of key ``i`` in every head of ``G`` is multiplied by ``(w_i / a_i) * S`` and the row renormalised.

* ``w`` an erasure of ``a`` (``a`` zeroed somewhere, renormalised): the factor is 1 on kept items and
  0 on erased ones, exactly the erasure above.
* single-head site: the [CLS] row's item part becomes ``w * S_h`` (``S_h`` the head's original mass
  on the kept items): a permutation puts the candidate weights, scaled to the original item mass,
  on the items and leaves [CLS]/[SEP] untouched.
* all-heads site: every head's item part is reweighted by the same ratio ``w_i / a_i``; heads keep
  their own shapes (nothing homogenises them), which is the only way erasure and renormalisation per
  head stay as defined. The site's attention after the edit is close to, not exactly, ``w``
  (each head renormalises on its own). An item with ``a_i = 0`` (underflow) keeps nothing.
* ``w = a``: factors 1, the unmodified pass; the all-zero ``w``: every item erased, rows keep only
  [CLS] and [SEP] (finite).

With ``query_rows="cls"`` erasure at hf-attnpool's last layer changes nothing (the pool never reads
the [CLS] state), so ``"all"`` is hf-attnpool's default (:attr:`default_query_rows`; plain hf's is
``"cls"``, cheapest at its default last layer; at lower layers it moves almost no decision, which
the advice says). With plain hf, ``"all"`` at the last layer is the
[CLS] row only (no other row of the last layer reaches the pooler): the same logits, through the
same fast path. The audit chooses the rows (``--query-rows``) through
:meth:`HFClassifier.configure_erasure`, which also chooses the items: subword tokens, or words
(``--items word``: a word's subwords together, :mod:`attnaudit.models.grouping`; which subwords
continue a word is the tokenizer's answer, see the end of this docstring).

**How: transformers' attention registry.** The module registers one attention function,
``"attnaudit"`` (:func:`attnaudit_attention`), with ``AttentionInterface.register`` and switches the
wrapped model to it (``set_attn_implementation``: no module is swapped or patched). Called without
a plan (the HF model's own ``forward``, e.g. in training) it is exactly transformers' SDPA.
``run`` and ``logits_with`` call the encoder's own layer modules and pass an :class:`AttentionPlan`
through the layers' ``**kwargs``, which transformers hands to the attention function with the
module (and its ``layer_idx``): the plan says which layer to edit, how, and what to record. Only
the edited layer leaves the base kernel: with [CLS] rows the function recomputes the [CLS] row by
hand next to SDPA's output for the other rows; with all rows it runs that layer eagerly.
Recomputing from the cached states entering layer ``l`` runs layers ``l..L-1`` on ``B * k``
sequences (the ``k`` candidates batched). This is the reference path (``fast_path = False``).

**Fast path** (``fast_path = True``, the default), tested equal to the reference. Two facts save
most of the work. (1) With [CLS] rows edited, only the [CLS] row of the site's layer changes: its
[CLS] output is computed alone for the ``k`` candidates (queries/keys/values once per document, the
edits only reweight the per-head values; then output projection, LayerNorms and feed-forward on
``B * k`` vectors) and every other row of the layer's output is the unmodified pass's (cached as
``hidden_out``). (2) Plain hf reads only [CLS]'s final state, so its last layer is computed for the
[CLS] row alone. At plain hf's last layer both hold (with all rows too, which there reach the output
through the [CLS] row only): ``k`` candidates cost ``B * k`` vectors, no sequences. At ``l < L-1``
layers ``l+1..L-2`` run in full on ``B * k`` sequences, through the encoder's modules and the base
kernel. With all rows the site's layer also runs in full, edited by the registered function.

This class and its fast path are BERT's (``model_type == "bert"``: BERT, MiniLM, ...): the sequence
layout, absolute positions from 0 and the layer structure above are BERT's. Every other hosted
family (RoBERTa, DistilBERT, ELECTRA, ALBERT, ModernBERT, Llama, Qwen, Mistral, Gemma, Phi: one
descriptor each in :mod:`attnaudit.models.hf_families`) is built by the same constructor and
``from_pretrained`` (the kind stays ``hf``) as :class:`attnaudit.models.hf_generic.GenericHFClassifier`,
which shares the sites, edits and words defined here and recomputes through the whole model. Word
items: the tokenizer's own ``word_ids()`` when :meth:`HFClassifier.set_tokenizer` was given it
(``from_pretrained`` does), else the vocabulary's markers (:mod:`attnaudit.models.hf_words`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch
from torch import nn
from transformers import (
    AttentionInterface,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from attnaudit.config import ItemUnit, QueryRows
from attnaudit.data.types import PAD_ID, Batch, EncodedDocument
from attnaudit.models.base import (
    WHOLE_WORD,
    AdditiveAttention,
    AttentionClassifier,
    LinearReadout,
    ModelOutput,
    Site,
    SiteOutput,
    renormalise,
    select_sites,
)
from attnaudit.models.grouping import (
    TOKEN_GROUP,
    expand_weights,
    group_scores,
    group_site,
    group_values,
    is_grouped,
    token_output,
)
from attnaudit.models.hf_words import TokenizerWords, marker_word_starts
from attnaudit.results.advice import default_layers
from attnaudit.utils.hf_progress import transformers_progress

logger = logging.getLogger(__name__)

#: the kernels the registered function falls back to where nothing is edited
BaseAttention = Literal["sdpa", "eager"]

#: the name of the registered attention function (``config._attn_implementation`` of wrapped models)
ATTENTION_NAME = "attnaudit"


# --- the registered attention function --------------------------------------------------------------


@dataclass
class RowEdit:
    """Candidate weights applied to one layer's attention rows (see the module docstring).

    Attributes:
        layer: index of the layer to edit.
        weights: ``(..., n)`` candidate item weights; the leading dims match the probabilities'
            (``(N,)`` inside the layers, ``(B, k)`` on the fast path).
        items: ``(..., n)`` bool, True on real items (padding and the shifted [SEP] are no items).
        head: the edited head, or None for all heads.
        rows: ``"cls"`` (the [CLS] row only) or ``"all"``.
    """

    layer: int
    weights: torch.Tensor
    items: torch.Tensor
    head: int | None
    rows: QueryRows


@dataclass
class AttentionPlan:
    """What :func:`attnaudit_attention` does in one pass, handed to it through the layers' kwargs.

    Attributes:
        base: the kernel of every unedited computation (``"sdpa"`` or ``"eager"``).
        edit: the layer edit, if any.
        record_cls: if a dict, each recorded layer's [CLS] row probabilities ``(N, H, T+2)`` are
            stored under its index, for the layers in ``record_layers`` (None: every layer).
        record_full: if a dict, every layer's full probabilities ``(N, H, T+2, T+2)`` (rollout).
        record_layers: see ``record_cls``.
    """

    base: BaseAttention = "sdpa"
    edit: RowEdit | None = None
    record_cls: dict[int, torch.Tensor] | None = None
    record_full: dict[int, torch.Tensor] | None = None
    record_layers: frozenset[int] | None = None


def edit_factors(cls_probs: torch.Tensor, edit: RowEdit) -> torch.Tensor:
    """Per-head multiplicative factor of every key, from the [CLS] row and the candidate weights.

    Args:
        cls_probs: ``(..., H, T')`` the [CLS] row's probabilities (``T' = n + 2`` or more).
        edit: the candidates (``weights``, ``items`` ``(..., n)``, broadcastable to ``cls_probs``'
            leading dims) and the head(s).
    Returns:
        ``(..., H, T')``: ``(w_i / a_i) * S`` on the item keys of the edited head(s), 1 elsewhere
        ([CLS], [SEP], padding, other heads).
    """
    n = edit.weights.shape[-1]
    heads = cls_probs.shape[-2]
    item_probs = cls_probs[..., 1 : n + 1]  # (..., H, n): sequence position i+1 is item i
    ratio = item_ratios(item_probs, edit.weights, edit.items, edit.head)  # (..., n)
    before = torch.ones_like(ratio[..., :1])  # (..., 1): [CLS]
    after = torch.ones_like(ratio[..., :1]).expand(*ratio.shape[:-1], cls_probs.shape[-1] - n - 1)
    factor = torch.cat([before, ratio, after], dim=-1)  # (..., T')
    factor = factor.unsqueeze(-2).expand(*factor.shape[:-1], heads, factor.shape[-1])  # (..., H, T')
    if edit.head is not None:
        in_site = torch.arange(heads, device=factor.device)[:, None] == edit.head  # (H, 1)
        factor = torch.where(in_site, factor, torch.ones_like(factor))
    return factor


def item_ratios(
    item_probs: torch.Tensor, weights: torch.Tensor, items: torch.Tensor, head: int | None
) -> torch.Tensor:
    """The factor ``(w_i / a_i) * S`` of every item key (see the module docstring), 1 off items.

    Args:
        item_probs: ``(..., H, n)`` the classification row's probabilities at the items' keys.
        weights: ``(..., n)`` candidate item weights; ``items``: ``(..., n)`` bool, True on items.
        head: the edited head, or None for all heads.
    Returns:
        ``(..., n)`` multiplicative factors (shared by the edited heads).
    """
    chosen = item_probs if head is None else item_probs[..., head : head + 1, :]
    mean = chosen.mean(dim=-2)  # (..., n): the site's (unnormalised) attention
    weights = weights.to(item_probs.dtype) * items  # (..., n)
    # "Kept" is non-zero, not positive: erasure writes exact zeros, and a small negative candidate
    # (a finite difference around a weight below its step) must not drop the item from S, which
    # would make the logits jump there; for weights >= 0 both readings are the same.
    kept = (weights != 0) & items
    mass = (mean * kept).sum(dim=-1, keepdim=True)  # (..., 1): S, in unnormalised units
    positive = mean > 0
    ratio = torch.where(positive, weights / torch.where(positive, mean, 1.0), 0.0) * mass  # (..., n)
    return torch.where(items, ratio, torch.ones_like(ratio))


def apply_edit(probs: torch.Tensor, edit: RowEdit) -> torch.Tensor:
    """Edited, renormalised attention probabilities.

    Args:
        probs: ``(..., H, Q, T')`` probabilities whose row 0 is the [CLS] row (``Q = 1``: that row
            alone).
        edit: the candidates; leading dims broadcast against ``probs``'.
    Returns:
        ``(..., H, Q, T')``: the chosen rows of the edited head(s) scaled by :func:`edit_factors`
        and renormalised; every other row and head exactly as it was.
    """
    factor = edit_factors(probs[..., 0, :], edit)[..., None, :]  # (..., H, 1, T')
    edited = renormalise(probs * factor)  # (..., H, Q, T')
    heads, rows = probs.shape[-3], probs.shape[-2]
    head_ok = torch.ones(heads, dtype=torch.bool, device=probs.device)
    if edit.head is not None:
        head_ok = torch.arange(heads, device=probs.device) == edit.head
    row_ok = torch.arange(rows, device=probs.device) == 0 if edit.rows == "cls" else \
        torch.ones(rows, dtype=torch.bool, device=probs.device)
    touched = head_ok[:, None, None] & row_ok[None, :, None]  # (H, Q, 1)
    return torch.where(touched, edited, probs)


def attention_probabilities(
    query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float,
    softcap: float | None = None,
) -> torch.Tensor:
    """Eager softmax attention: ``(N, H, Q, dh), (N, H, T', dh) -> (N, H, Q, T')``.

    ``mask``: None, bool (True = attend) or additive float, broadcastable to ``(N, H, Q, T')``.
    ``softcap``: the scores' tanh cap (Gemma-2 style), as transformers' eager attention applies it.
    """
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (N, H, Q, T')
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1)


def _base_attention(
    base: BaseAttention, module: nn.Module, query: torch.Tensor, key: torch.Tensor,
    value: torch.Tensor, mask: torch.Tensor | None, dropout: float, scaling: float,
    **kwargs: Any,
) -> torch.Tensor:
    """The unedited output ``(N, T', H, dh)`` with the base kernel (SDPA, or eager math)."""
    if base == "sdpa":
        out, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=dropout,
                                        scaling=scaling, **kwargs)
        return out
    probs = attention_probabilities(query, key, mask, scaling)  # (N, H, T', T')
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous()  # (N, T', H, dh)


def attnaudit_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    attnaudit_plan: AttentionPlan | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The attention function registered as ``"attnaudit"`` (transformers' AttentionInterface).

    Args:
        module: the calling self-attention module (its ``layer_idx`` says which layer this is).
        query, key, value: ``(N, H, T', dh)``.
        attention_mask: bool ``(N, 1, Q|1, T')`` (True = attend; the mask format registered for
            this name is SDPA's) or None.
        dropout, scaling: as transformers passes them.
        attnaudit_plan: what to edit and record (from :class:`HFClassifier`); None: plain base SDPA.
    Returns:
        ``(N, T', H, dh)`` attention output and None (weights are recorded through the plan).
    """
    plan = attnaudit_plan if attnaudit_plan is not None else AttentionPlan()
    layer = int(getattr(module, "layer_idx", -1))
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    edit = plan.edit if plan.edit is not None and plan.edit.layer == layer else None
    recorded = plan.record_layers is None or layer in plan.record_layers
    if plan.record_full is not None or (edit is not None and edit.rows == "all"):
        # Every row is needed (rollout) or edited: eager attention for this layer only.
        probs = attention_probabilities(query, key, attention_mask, scale)  # (N, H, T', T')
        if plan.record_full is not None:
            plan.record_full[layer] = probs.detach()
        if plan.record_cls is not None and recorded:
            plan.record_cls[layer] = probs[:, :, 0].detach()
        if edit is not None:
            probs = apply_edit(probs, edit)
        probs = nn.functional.dropout(probs, p=dropout, training=module.training)
        return torch.matmul(probs, value).transpose(1, 2).contiguous(), None  # (N, T', H, dh)
    out = _base_attention(plan.base, module, query, key, value, attention_mask, dropout, scale,
                          **kwargs)  # (N, T', H, dh)
    if edit is None and not (plan.record_cls is not None and recorded):
        return out, None
    # The [CLS] row alone, by hand: (N, H, 1, T'), next to the base kernel's output.
    cls_mask = None if attention_mask is None else attention_mask[..., :1, :]  # (N, 1, 1, T')
    cls_probs = attention_probabilities(query[:, :, :1], key, cls_mask, scale)
    if plan.record_cls is not None and recorded:
        plan.record_cls[layer] = cls_probs[:, :, 0].detach()
    if edit is None:
        return out, None
    cls_out = torch.matmul(apply_edit(cls_probs, edit), value)  # (N, H, 1, dh)
    return torch.cat([cls_out.transpose(1, 2), out[:, 1:]], dim=1), None  # (N, T', H, dh)


AttentionInterface.register(ATTENTION_NAME, attnaudit_attention)
# Masks for this name are built as for SDPA (bool, True = attend) when the HF model's own forward runs.
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


# --- the classifiers ----------------------------------------------------------------------------------


def _bert_config(config: PretrainedConfig | dict[str, Any], num_classes: int | None) -> BertConfig:
    """A :class:`BertConfig` from a config or its dict, with ``num_labels`` set when given."""
    values = config.to_dict() if isinstance(config, PretrainedConfig) else dict(config)
    model_type = values.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(
            f"hf models wrap BERT-architecture encoders (model_type 'bert'), got {model_type!r}"
        )
    if num_classes is not None:
        values["num_labels"] = num_classes
        values.pop("id2label", None)
        values.pop("label2id", None)
    return BertConfig(**values)


def _model_type(config: PretrainedConfig | dict[str, Any] | None) -> str:
    """``config``'s model_type (a dict without one: ``"bert"``, the checkpoints written before
    other families were hosted)."""
    if isinstance(config, PretrainedConfig):
        return str(config.model_type)
    return str(dict(config or {}).get("model_type", "bert"))


def _family_host() -> type[HFClassifier]:
    host = HFClassifier.family_host
    if host is None:  # a caller that imported this module alone; the registry imports the host
        raise RuntimeError("the generic transformer host is not loaded: import "
                           "attnaudit.models.hf_generic (or take the class from "
                           "attnaudit.models.MODELS)")
    return host


class _DropLoadReport(logging.Filter):
    """Drops transformers' weight-loading report (a table of keys), keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def load_classifier(
    load: Callable[..., Any], folder: Path, config: PretrainedConfig, *, fresh_head: bool,
) -> PreTrainedModel:
    """The sequence classifier ``load`` (a ``from_pretrained``) reads from ``folder`` with
    ``config``; with ``fresh_head`` its classification head is new, whatever the folder held.

    A fine-tuning base may be a bare encoder or decoder (every head weight missing: transformers
    initialises the head, as for MiniLM) or a ``...ForSequenceClassification`` of other classes
    or of other labels in another order (its head is the wrong size, or the right size with
    meanings that are not the data's). Fine-tuning starts from the folder's transformer only: every
    parameter outside ``model.base_model_prefix`` that came from the folder is initialised again
    with the family's own ``_init_weights`` (under the run's seed), so the head is always fresh.
    """
    if not fresh_head:
        return cast(PreTrainedModel, load(folder, config=config, local_files_only=True))
    # transformers reports the head it did not load (missing, or of another size) as a warning
    # table; here a new head is what was asked for, so that report (only) is dropped and one line
    # below says what happened
    report = logging.getLogger("transformers.modeling_utils")
    quiet = _DropLoadReport()
    report.addFilter(quiet)
    try:
        model, info = load(folder, config=config, local_files_only=True,
                           output_loading_info=True, ignore_mismatched_sizes=True)
    finally:
        report.removeFilter(quiet)
    prefix = model.base_model_prefix
    fresh = set(info.get("missing_keys", ())) | {
        key for key, *_ in info.get("mismatched_keys", ())}
    head = [(name, module) for name, module in model.named_children() if name != prefix]
    loaded = [f"{name}.{key}" for name, module in head for key in module.state_dict()
              if f"{name}.{key}" not in fresh]
    if loaded:
        # Loaded weights carry transformers' "initialised" flag, which its init functions skip:
        # lowered here so that _init_weights draws the head anew (with the run's RNG).
        with torch.no_grad():
            for _, module in head:
                for sub in module.modules():
                    sub._is_hf_initialized = False
                    for tensor in [*sub.parameters(recurse=False), *sub.buffers(recurse=False)]:
                        tensor._is_hf_initialized = False
                    model._init_weights(sub)
    logger.info("%s: fine-tuning its %s with a new head of %s classes (%s)", folder,
                prefix, config.num_labels,
                "the folder's head set aside" if loaded else "the folder has no head of that size")
    return cast(PreTrainedModel, model)


def _query_rows(value: str | None) -> QueryRows:
    """``value`` as :data:`QueryRows`; a ValueError naming the choices otherwise."""
    if value == "cls":
        return "cls"
    if value == "all":
        return "all"
    raise ValueError(f"query_rows must be 'cls' or 'all', got {value!r}")


class HFClassifier(AttentionClassifier):
    """A BERT sequence classifier ([CLS] pooling) under audit; see the module docstring.

    Args:
        config: the encoder's :class:`BertConfig` or its ``to_dict()`` (what :meth:`config_dict`
            saves, so checkpoints rebuild the model).
        num_classes: ``C``; None keeps the config's ``num_labels``.
        cls_token_id, sep_token_id: ids of [CLS] and [SEP] in the tokenizer's vocabulary.
        unk_token_id: id of the tokenizer's unknown token ([UNK], 100 for BERT): what input-level
            erasure in ``unk`` mode writes (:attr:`unk_token_id`); None: that erasure is refused.
        mask_token_id: id of its [MASK] token (103 for BERT), written by input-level erasure in
            ``mask`` mode; None: taken from the vocabulary (:meth:`set_vocabulary`) if it has one.
        query_rows: ``"cls"`` or ``"all"``: the rows erasure edits (None: the class's
            :attr:`default_query_rows`; the audit sets it, :meth:`configure_erasure`).
        attention: the kernel of unedited attention, ``"sdpa"`` (default) or ``"eager"``.
        model: an already built transformers model for ``config`` (:meth:`from_pretrained`); None
            builds a randomly initialised one.

    Example:
        >>> config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
        ...                     num_attention_heads=4, intermediate_size=64)
        >>> model = HFClassifier.from_config(config, num_classes=3, cls_token_id=2, sep_token_id=3)
        >>> model.pooling_site, len(model.sites())
        ('L1', 10)
        >>> model.audited_by_default(), model.query_rows  # the defaults: L{L-1}, the [CLS] row
        (('L1',), 'cls')
    """

    kind: ClassVar[str] = "hf"
    hierarchical: ClassVar[bool] = False
    _continues: torch.Tensor | None
    #: the [CLS] row: the only row of the last layer (the default site) the pooler reads; lower
    #: layers need "all" to move decisions (the advice's command says so)
    default_query_rows: ClassVar[str | None] = "cls"
    #: every step: exact fractions to the first flip, cheap at the last layer (the fast path)
    default_attention_steps: ClassVar[str] = "every"
    subword_tokens: ClassVar[bool] = True

    #: the host of every family but BERT. :mod:`attnaudit.models.hf_generic` builds on this module
    #: and registers its class here when imported (the registry's ``hf`` entry imports it), so this
    #: module never imports it: the dependency runs one way.
    family_host: ClassVar[type[HFClassifier] | None] = None

    def __new__(cls, *args: Any, **options: Any) -> HFClassifier:
        """``hf`` is every hosted family: a config of another family than BERT builds the generic
        host (:class:`attnaudit.models.hf_generic.GenericHFClassifier`), so checkpoints and the
        registry keep one kind."""
        if cls is HFClassifier and _model_type(options.get("config")) != "bert":
            return super().__new__(_family_host())
        return super().__new__(cls)

    def __init__(
        self,
        *,
        config: PretrainedConfig | dict[str, Any],
        num_classes: int | None = None,
        cls_token_id: int,
        sep_token_id: int,
        unk_token_id: int | None = None,
        mask_token_id: int | None = None,
        query_rows: QueryRows | None = None,
        attention: BaseAttention = "sdpa",
        model: PreTrainedModel | None = None,
    ) -> None:
        super().__init__()
        if attention not in ("sdpa", "eager"):
            raise ValueError(f"attention must be 'sdpa' or 'eager', got {attention!r}")
        bert_config = _bert_config(config, num_classes)
        self.query_rows: QueryRows = _query_rows(query_rows or self.default_query_rows)
        #: ``"word"``: every site's items are words (:meth:`configure_erasure`)
        self.item_unit: ItemUnit = "token"
        self.base_attention: BaseAttention = attention
        self.cls_token_id = int(cls_token_id)
        self.sep_token_id = int(sep_token_id)
        #: what input-level erasure in ``unk`` mode replaces tokens with (its word vocabulary's
        #: UNK_ID = 1 would be BERT's [unused0]); None when the tokenizer is not known
        self.unk_token_id = None if unk_token_id is None else int(unk_token_id)
        #: what input-level erasure in ``mask`` mode writes; None when the tokenizer is not known
        self.mask_token_id = None if mask_token_id is None else int(mask_token_id)
        #: ``(V,)`` bool, True on the vocabulary's word-continuing subwords (``##...``); set by
        #: :meth:`set_vocabulary`, needed for word items. A buffer, so it moves with the model, but
        #: not persistent: the checkpoint keeps the vocabulary itself.
        self.register_buffer("_continues", None, persistent=False)
        #: the tokenizer's own words (:meth:`set_tokenizer`); None: the vocabulary's markers
        self._words: TokenizerWords | None = None
        #: False: logits_with recomputes every row of every layer from the site's up through the
        #: registered attention function (the reference the fast path is tested against)
        self.fast_path = True
        self.hf: PreTrainedModel = model if model is not None else self._build(bert_config)
        # Route every attention call through the registered function (the official switch).
        self.hf.set_attn_implementation(ATTENTION_NAME)
        self.state_dim = int(bert_config.hidden_size)
        self.num_layers = int(bert_config.num_hidden_layers)
        self.num_heads = int(bert_config.num_attention_heads)
        self._sites = self._declare_sites()

    @property
    def row_name(self) -> str:
        """How sites name the classification row."""
        return "[CLS]"

    # -- construction ------------------------------------------------------------------------------

    def _build(self, config: BertConfig) -> PreTrainedModel:
        """A randomly initialised transformers model for ``config``."""
        return BertForSequenceClassification(config)

    @property
    def bert(self) -> BertModel:
        """The encoder (embeddings + layers [+ pooler])."""
        bert = self.hf.bert
        assert isinstance(bert, BertModel)
        return bert

    @property
    def embedding(self) -> nn.Embedding:
        """The word-vector table ``(V, d)`` (the paper's models' ``embedding``): what :meth:`embed`
        looks the items up in."""
        table = self.bert.embeddings.word_embeddings
        assert isinstance(table, nn.Embedding)
        return table

    @classmethod
    def from_config(cls, config: PretrainedConfig, **options: Any) -> HFClassifier:
        """A randomly initialised model for ``config`` (options: see the class)."""
        return cls(config=config, **options)

    @classmethod
    def _load(cls, path: Path, config: BertConfig, *, fresh_head: bool = False) -> PreTrainedModel:
        """The transformers model saved in ``path`` (local files only; see
        :func:`load_classifier` for ``fresh_head``)."""
        return load_classifier(BertForSequenceClassification.from_pretrained, path, config,
                               fresh_head=fresh_head)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        num_classes: int | None = None,
        cls_token_id: int | None = None,
        sep_token_id: int | None = None,
        unk_token_id: int | None = None,
        fresh_head: bool = False,
        **options: Any,
    ) -> HFClassifier:
        """The model saved by ``save_pretrained`` in the local folder ``path`` (never downloads).

        Weights the folder lacks (a new head, a changed ``num_classes``) are initialised at random
        by transformers; ``fresh_head`` (a fine-tuning base) initialises the head anew even where
        the folder has one (:func:`load_classifier`). [CLS]/[SEP]/[UNK] ids default to the
        tokenizer saved in the folder.
        """
        folder = Path(path)
        if cls is HFClassifier:
            from transformers import AutoConfig

            if AutoConfig.from_pretrained(folder, local_files_only=True).model_type != "bert":
                return _family_host().from_pretrained(folder, num_classes=num_classes,
                                                      unk_token_id=unk_token_id,
                                                      fresh_head=fresh_head, **options)
        config = _bert_config(BertConfig.from_pretrained(folder, local_files_only=True),
                              num_classes)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        cls_token_id = tokenizer.cls_token_id if cls_token_id is None else cls_token_id
        sep_token_id = tokenizer.sep_token_id if sep_token_id is None else sep_token_id
        unk_token_id = tokenizer.unk_token_id if unk_token_id is None else unk_token_id
        if cls_token_id is None or sep_token_id is None:
            raise ValueError(f"no [CLS]/[SEP] ids in the tokenizer of {folder}; pass them")
        model = cls(config=config, cls_token_id=int(cls_token_id),
                    sep_token_id=int(sep_token_id), unk_token_id=unk_token_id,
                    mask_token_id=tokenizer.mask_token_id,
                    model=cls._load(folder, config, fresh_head=fresh_head),
                    **options)
        model.set_vocabulary(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
        model.set_tokenizer(tokenizer)
        return model

    def config_dict(self) -> dict[str, Any]:
        """Constructor arguments (plain types), enough to rebuild an identical untrained model."""
        return {
            "config": self.hf.config.to_dict(),
            "cls_token_id": self.cls_token_id,
            "sep_token_id": self.sep_token_id,
            "unk_token_id": self.unk_token_id,
            "mask_token_id": self.mask_token_id,
            "attention": self.base_attention,
        }

    def export_pretrained(self, folder: Path, label_names: Sequence[str],
                          tokenizer_folder: Path) -> bool:
        """Write this classifier as transformers' own ``save_pretrained`` folder, with its
        tokenizer: ``AutoModelForSequenceClassification.from_pretrained(folder)`` gives the same
        logits, and ``attnaudit audit --hf-model folder`` audits it.

        ``config.id2label`` / ``label2id`` are the data's class names (``label_names[i]`` is class
        ``i``). The saved config names no attention implementation (``attnaudit``'s registered
        function is this process's, not the reader's); a decoder's padding id is written into its
        tokenizer too when the tokenizer had none (:func:`attnaudit.models.hf_generic.decoder_pad_id`).

        Returns:
            True (a transformers model was written; see :meth:`AttentionClassifier.export_pretrained`).
        """
        config = self.hf.config
        config.id2label = dict(enumerate(str(name) for name in label_names))
        config.label2id = {str(name): i for i, name in enumerate(label_names)}
        implementation = config._attn_implementation
        try:
            # Unset while saving: a reader's transformers picks its own default kernel.
            config._attn_implementation = None
            with transformers_progress(False):  # a bar per export would clutter the log
                self.hf.save_pretrained(folder)
        finally:
            config._attn_implementation = implementation
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
        pad = config.get_text_config().pad_token_id
        if tokenizer.pad_token_id is None and pad is not None:
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(int(pad))
        tokenizer.save_pretrained(folder)
        return True

    # -- the audit's choices: query rows and items -----------------------------------------------------

    def set_vocabulary(self, tokens: Sequence[str]) -> None:
        """Learn the tokenizer's vocabulary (``tokens[i]`` the token of id ``i``): which subwords
        continue a word (WordPiece's ``##``, what word items need) and, where the model was built
        without it, the [MASK] id. The checkpoint loader calls it with the run's vocabulary."""
        continues = [not start for start in marker_word_starts(tokens)]
        device = next(self.parameters()).device
        self._continues = torch.tensor(continues, dtype=torch.bool, device=device)
        if self.mask_token_id is None and "[MASK]" in tokens:
            self.mask_token_id = list(tokens).index("[MASK]")

    def set_tokenizer(self, tokenizer: Any) -> None:
        """Take words from ``tokenizer``'s own ``word_ids()``/offsets
        (:class:`attnaudit.models.hf_words.TokenizerWords`) rather than the vocabulary's markers;
        a tokenizer that is not a fast one leaves the markers in place."""
        if getattr(tokenizer, "is_fast", False):
            assert self._continues is not None, "set_vocabulary first"
            self._words = TokenizerWords(tokenizer, (~self._continues).tolist())

    def configure_erasure(self, *, query_rows: str | None, items: str) -> None:
        """Erase from ``query_rows`` (None: :attr:`default_query_rows`) and use ``items``
        (``"token"``: subwords; ``"word"``: words, which needs :meth:`set_vocabulary`)."""
        rows = _query_rows(query_rows or self.default_query_rows)
        if items not in ("token", "word"):
            raise ValueError(f"items must be 'token' or 'word', got {items!r}")
        if items == "word" and self._continues is None:
            raise ValueError(f"{self.kind}: word items need the tokenizer's vocabulary "
                             "(set_vocabulary)")
        if (rows, items) != (self.query_rows, self.item_unit):  # the sites' descriptions say both
            self.query_rows, self.item_unit = rows, items  # type: ignore[assignment]
            self._sites = self._declare_sites()

    def word_starts(self, doc: EncodedDocument) -> list[bool] | None:
        """The word starts :meth:`word_index` uses for ``doc`` when words come from the tokenizer
        (its ``word_ids()``); None with the vocabulary's markers (the tables' default rule)."""
        if self._words is None:
            return None
        words = self._words.words([i for sentence in doc.sentences for i in sentence])
        return [i == 0 or words[i] != words[i - 1] for i in range(len(words))]

    def word_index(self, batch: Batch) -> torch.Tensor:
        """``(B, T)`` long: the word of each subword token (from 0 in every row), -1 on padding
        (``batch.mask``)."""
        token_ids = batch.token_ids
        if self._words is not None:
            return self._words(token_ids.cpu(), batch.mask.cpu()).to(token_ids.device)
        assert self._continues is not None, "set_vocabulary first"
        starts = ~self._continues[token_ids]  # (B, T)
        starts[:, :1] = True  # a document's first token begins a word, whatever it is
        words = starts.long().cumsum(dim=1) - 1
        return torch.where(batch.mask, words, -1)

    # -- sites ---------------------------------------------------------------------------------------
    # Sites depend on the encoder's depth and width, so they are declared per instance.

    @property
    def _item(self) -> tuple[str, str]:
        """The sites' item kind and how the descriptions name the items."""
        if self.item_unit == "word":
            return WHOLE_WORD, "the words (each its subword tokens together)"
        return "token", "the subword tokens"

    def _layer_sites(self) -> list[Site]:
        """``L{l}`` then ``L{l}.h{h}`` for every layer, last layer first.

        Labels and descriptions name layers and heads as the CLI does (``L5``, ``L5.h2``, both
        counted from 0), so what a reader sees in a report or a log is what they type.
        """
        item, items = self._item
        rows = "the [CLS] row" if self.query_rows == "cls" else "every query row"
        sites = []
        for layer in reversed(range(self.num_layers)):
            sites.append(Site(
                f"L{layer}", f"L{layer} · {self.row_name} attention, mean of heads", item,
                description=f"the classification row's attention of layer L{layer} over "
                f"{items}, averaged over heads; erasing an item edits {rows} of every head and "
                "recomputes the layers above", cannot_flip="layer"))
            sites.extend(
                Site(f"L{layer}.h{head}", f"L{layer}.h{head} · {self.row_name} attention", item,
                     description=f"the classification row's attention of head L{layer}.h{head} "
                     f"over {items}; erasing an item edits {rows} of that head",
                     cannot_flip="layer")
                for head in range(self.num_heads))
        return sites

    def _declare_sites(self) -> tuple[Site, ...]:
        sites = self._layer_sites()
        last = sites[0]
        paper = Site(last.name, last.label, last.item, paper=True, cannot_flip=last.cannot_flip,
                     description=last.description + " (the last attention before the head, "
                     "whose [CLS] row alone reaches it)")
        return (paper, *sites[1:])

    def sites(self) -> tuple[Site, ...]:  # type: ignore[override]
        """Every site of this model, the default one first (per instance: depends on the config)."""
        return self._sites

    def audited_by_default(self) -> tuple[str, ...] | None:
        """``L{L-1}`` (MiniLM: ``L5``), from the [CLS] row by default
        (:func:`attnaudit.results.advice.default_layers`: the attention users read, cheap)."""
        return self.site_names([f"L{layer}" for layer in default_layers(self.num_layers)])

    def site_names(self, requested: Sequence[str] | None = None) -> tuple[str, ...]:  # type: ignore[override]
        """Validate requested site names (None = all), in declaration order (see the base class)."""
        return select_sites(self.kind, self._sites, requested)

    def site(self, name: str) -> Site:  # type: ignore[override]
        """The declared :class:`Site` called ``name``."""
        self.site_names([name])
        return next(s for s in self._sites if s.name == name)

    def site_layer(self, site: str) -> tuple[int, int | None]:
        """``"L3.h2" -> (3, 2)``, ``"L3" -> (3, None)``; a ValueError for other sites."""
        self.site_names([site])
        if not site.startswith("L"):
            raise ValueError(f"site {site!r} is not an attention layer site")
        layer, _, head = site[1:].partition(".h")
        return int(layer), (int(head) if head else None)

    # -- the sequence --------------------------------------------------------------------------------

    @staticmethod
    def _lengths(batch: Batch) -> torch.Tensor:
        """``(B,)`` item counts, from the batch's mask (never from a padding id: a tokenizer's
        id 0 may be an ordinary token); the batch must be ``(B, T)`` with its padding at the end
        of each row."""
        token_ids = batch.token_ids
        if token_ids.dim() != 2:
            raise ValueError(
                f"hf models need flat subword ids (B, T), got shape {tuple(token_ids.shape)}; "
                "batch with hierarchical=False"
            )
        real = batch.mask
        lengths = real.sum(dim=1)  # (B,)
        prefix = torch.arange(token_ids.shape[1], device=token_ids.device)[None, :] < lengths[:, None]
        if not torch.equal(real, prefix):
            raise ValueError("token ids must have their padding at the end of each row")
        return lengths

    def _sequence_mask(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence mask ``(B, T+2)`` ([CLS], items, [SEP]) and the ``(B, T+2)`` [SEP] positions."""
        lengths = self._lengths(batch)  # (B,)
        token_ids = batch.token_ids
        positions = torch.arange(token_ids.shape[1] + 2, device=token_ids.device)[None, :]
        return positions <= lengths[:, None] + 1, positions == lengths[:, None] + 1

    def _sequence_embeddings(self, batch: Batch, embedded: torch.Tensor) -> torch.Tensor:
        """Word vectors of ``[CLS] items [SEP] [PAD]..`` ``(B, T+2, d)`` from the items' ``(B, T, d)``.

        The special tokens' vectors are looked up here, so attribution methods perturb the items
        only; [SEP] goes right after each document's last item.
        """
        table = self.bert.embeddings.word_embeddings
        ids = torch.tensor([self.cls_token_id, self.sep_token_id, PAD_ID],
                           device=embedded.device)
        cls_vec, sep_vec, pad_vec = table(ids).to(embedded.dtype)  # (d,) each
        b = embedded.shape[0]
        sequence = torch.cat([cls_vec.expand(b, 1, -1), embedded, pad_vec.expand(b, 1, -1)],
                             dim=1)  # (B, T+2, d)
        _, is_sep = self._sequence_mask(batch)  # (B, T+2)
        return torch.where(is_sep[..., None], sep_vec, sequence)  # (B, T+2, d)

    def _extended_mask(self, seq_mask: torch.Tensor) -> torch.Tensor:
        """The layers' key mask: bool ``(B, 1, 1, T')``, True = attend (SDPA's format)."""
        return seq_mask[:, None, None, :]

    # -- the forward pass ----------------------------------------------------------------------------

    def embed(self, batch: Batch) -> torch.Tensor:
        """Word vectors of the subword tokens ``(B, T, d)`` (no position/type embeddings: those are
        added inside, with the special tokens)."""
        self._lengths(batch)
        return self.bert.embeddings.word_embeddings(batch.token_ids)  # (B, T, d)

    def _layers(
        self, hidden: torch.Tensor, seq_mask: torch.Tensor, start: int, plan: AttentionPlan,
        keep_inputs: frozenset[int] = frozenset(), stop: int | None = None,
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Run the encoder's layers ``start..stop-1`` (default: to the last) on ``hidden``
        ``(N, T', d)``, passing ``plan`` to the attention function.

        Returns:
            the states leaving layer ``stop - 1`` ``(N, T', d)`` and the states entering each layer
            in ``keep_inputs``.
        """
        mask = self._extended_mask(seq_mask)  # (N, 1, 1, T')
        inputs = {}
        for index in range(start, self.num_layers if stop is None else stop):
            if index in keep_inputs:
                inputs[index] = hidden
            hidden = self.bert.encoder.layer[index](hidden, mask, attnaudit_plan=plan)  # (N, T', d)
        return hidden, inputs

    def _encode_sequence(
        self, batch: Batch, embedded: torch.Tensor, plan: AttentionPlan,
        keep_inputs: frozenset[int] = frozenset(),
    ) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
        """Final states ``(B, T', d)``, sequence mask ``(B, T')`` and kept layer inputs."""
        seq_mask, _ = self._sequence_mask(batch)  # (B, T')
        hidden = self.bert.embeddings(inputs_embeds=self._sequence_embeddings(batch, embedded))
        final, inputs = self._layers(hidden, seq_mask, 0, plan, keep_inputs)  # (B, T', d)
        return final, seq_mask, inputs

    def _head(self, final: torch.Tensor, seq_mask: torch.Tensor, n: int) -> torch.Tensor:
        """Logits ``(N, C)`` from the final states ``(N, T', d)`` (only [CLS]'s is read here)."""
        pooler = self.bert.pooler
        if pooler is None:
            raise ValueError("this BERT model has no pooler: [CLS] pooling needs one")
        pooled = pooler(final)  # (N, d): dense + tanh on position 0
        head, dropout = self.hf.get_submodule("classifier"), self.hf.get_submodule("dropout")
        return head(dropout(pooled))  # (N, C)

    def encode_embedded(
        self, batch: Batch, embedded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The items' final states ``(B, T, d)`` and the item mask ``(B, T)``."""
        final, _, _ = self._encode_sequence(batch, embedded, AttentionPlan(self.base_attention))
        n = batch.token_ids.shape[1]
        return final[:, 1 : n + 1], batch.mask

    def logits_from_embeddings(self, batch: Batch, embedded: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` logits from the items' word vectors ``(B, T, d)`` (:meth:`run`'s code)."""
        final, seq_mask, _ = self._encode_sequence(batch, embedded, AttentionPlan(self.base_attention))
        return self._head(final, seq_mask, batch.token_ids.shape[1])

    def run(self, batch: Batch, sites: Sequence[str] | None = None) -> ModelOutput:
        """Full pass: the logits and, per requested site, its attention and caches.

        A layer site's cache: ``hidden`` and ``hidden_out`` ``(B, T+2, d)`` (the states entering
        and leaving its layer; tensors shared between the sites of a layer) and ``probs``
        ``(B, H, T+2)`` (the layer's [CLS] row probabilities, every head).
        """
        wanted = self.site_names(sites)
        layers = {self.site_layer(name)[0] for name in wanted if name.startswith("L")}
        plan = AttentionPlan(self.base_attention, record_cls={}, record_layers=frozenset(layers))
        keep = frozenset(layers | {layer + 1 for layer in layers})  # entering and leaving
        final, seq_mask, inputs = self._encode_sequence(batch, self.embed(batch), plan,
                                                        keep_inputs=keep)
        inputs[self.num_layers] = final
        n = batch.token_ids.shape[1]
        items = batch.mask  # (B, n)
        out = ModelOutput(logits=self._head(final, seq_mask, n), sites={}, batch=batch)
        anchor = torch.full((items.shape[0],), -1, dtype=torch.long, device=items.device)
        assert plan.record_cls is not None
        for name in wanted:
            if not name.startswith("L"):
                continue
            layer, head = self.site_layer(name)
            probs = plan.record_cls[layer]  # (B, H, T')
            chosen = probs[:, :, 1 : n + 1] if head is None else probs[:, head : head + 1, 1 : n + 1]
            # (B, n): items only ([SEP] may sit inside)
            attention = renormalise(chosen.mean(dim=1) * items)
            out.sites[name] = SiteOutput(attention=attention, mask=items, anchor=anchor,
                                         cache={"hidden": inputs[layer],
                                                "hidden_out": inputs[layer + 1], "probs": probs})
        self._extra_sites(out, final, wanted)
        if self.item_unit == "word":
            words = self.word_index(batch)  # (B, n)
            out.sites = {name: group_site(site, words) for name, site in out.sites.items()}
        return out

    def _extra_sites(self, out: ModelOutput, final: torch.Tensor, wanted: Sequence[str]) -> None:
        """Sites other than the layers' (none for plain hf)."""

    # -- recomputation ---------------------------------------------------------------------------

    def logits_with(self, output: ModelOutput, site: str, weights: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, k, C)`` with ``site``'s attention edited by ``(B, k, n)`` candidate weights.

        The rows, heads and renormalisation follow the module docstring; the layers from the site's
        up are recomputed from the cached states entering its layer (see "Fast path"). With word
        items each word's weight is shared among its subwords in proportion to their attention
        (:func:`attnaudit.models.grouping.expand_weights`), and the subwords are edited.
        """
        out = output.site(site)
        if is_grouped(out):
            return self._token_logits_with(token_output(output, site), site,
                                           expand_weights(weights, out))
        return self._token_logits_with(output, site, weights)

    def _token_logits_with(
        self, output: ModelOutput, site: str, weights: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`logits_with` on subword items: ``(B, k, n)`` token candidates."""
        layer, head = self.site_layer(site)
        out = output.site(site)
        hidden = out.cache["hidden"]  # (B, T', d) entering the site's layer
        items = out.mask  # (B, n)
        b, k, n = weights.shape
        seq_mask = self._seq_mask_of(items)  # (B, T')
        flat_mask = seq_mask[:, None].expand(b, k, -1).reshape(b * k, -1)  # (B*k, T')
        if self.fast_path and (self.query_rows == "cls" or
                               (layer == self.num_layers - 1 and self._cls_only_head)):
            # Only the [CLS] row of the site's layer changes: compute it alone, for k candidates,
            # and take every other row of the layer's output from the unmodified pass.
            edit = RowEdit(layer, weights, items[:, None, :], head, "cls")  # (B, k, n)
            cls_state = self._cls_row(layer, hidden, seq_mask, edit)  # (B*k, 1, d)
            if layer == self.num_layers - 1 and self._cls_only_head:
                return self._head(cls_state, flat_mask, n).reshape(b, k, -1)  # (B, k, C)
            rest = out.cache["hidden_out"][:, None, 1:]  # (B, 1, T'-1, d) leaving the layer
            rest = rest.expand(b, k, *rest.shape[2:]).reshape(b * k, *rest.shape[2:])
            above = torch.cat([cls_state, rest], dim=1)  # (B*k, T', d)
            return self._top(above, flat_mask, layer + 1, n, None).reshape(b, k, -1)
        # Every candidate its own sequence: (B*k, T', d), every row recomputed from the site's
        # layer up, the edit applied by the registered attention function.
        flat_hidden = hidden[:, None].expand(b, k, *hidden.shape[1:]).reshape(b * k, *hidden.shape[1:])
        flat_items = items[:, None].expand(b, k, n).reshape(b * k, n)  # (B*k, n)
        edit = RowEdit(layer, weights.reshape(b * k, n), flat_items, head, self.query_rows)
        return self._top(flat_hidden, flat_mask, layer, n, edit).reshape(b, k, -1)  # (B, k, C)

    #: True when the head reads only [CLS]'s final state (the last layer's [CLS] row suffices)
    _cls_only_head: ClassVar[bool] = True

    def recompute_bytes(self, output: ModelOutput, site: str) -> int:
        """Per candidate: the [CLS] row's vectors where only it is recomputed (the last layer's
        [CLS] row), else one sequence through a layer: ``T'`` positions of the attention scores
        and probabilities of every head (``2 H T'``), the feed-forward's ``I`` and a few ``d``
        states (queries, keys, values, the residual's, the output's; 6 d)."""
        if not site.startswith("L"):
            return super().recompute_bytes(output, site)
        layer, _ = self.site_layer(site)
        cache = output.site(site).cache
        # BERT's cache holds the states entering the layer (B, T', d); the generic host's the
        # layer's probabilities (B, H, T'), and it recomputes whole sequences
        tensor = cache["hidden"] if "hidden" in cache else cache["probs"]
        size, t = tensor.element_size(), tensor.shape[-2 if "hidden" in cache else -1]
        if ("hidden" in cache and self.fast_path and layer == self.num_layers - 1
                and self._cls_only_head):
            return self._row_bytes(size, t)  # the [CLS] row alone, any rows
        return t * self._row_bytes(size, t)

    def _row_bytes(self, size: int, t: int) -> int:
        """One query row through a layer of ``t`` positions, in bytes of ``size``."""
        d = self.state_dim
        config = self.hf.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        inner = int(getattr(text, "intermediate_size", None) or 4 * d)
        return size * (self._attention_width(t) + inner + 6 * d)

    def _attention_width(self, t: int) -> int:
        """Per query position, the numbers one layer's attention holds at once over ``t`` keys:
        the scores and the probabilities of every head (``2 H t``)."""
        return 2 * self.num_heads * t

    def sequence_bytes(self, output: ModelOutput) -> int:
        """One document of ``output``'s batch through a layer, its special tokens included: the
        working memory of a whole forward pass, whose layers run in turn
        (:func:`attnaudit.erasure.memory.pass_bytes`)."""
        assert output.batch is not None
        specials = len(getattr(self, "prefix_ids", (0,))) + len(getattr(self, "suffix_ids", (0,)))
        t = int(output.batch.token_ids.shape[1]) + specials
        return t * self._row_bytes(output.logits.element_size(), t)

    def _top(
        self, hidden: torch.Tensor, seq_mask: torch.Tensor, start: int, n: int, edit: RowEdit | None
    ) -> torch.Tensor:
        """Logits ``(N, C)`` from the states ``(N, T', d)`` entering layer ``start`` (``L``: the
        final states), with ``edit`` applied by the registered attention function."""
        plan = AttentionPlan(self.base_attention, edit=edit)
        if not (self.fast_path and self._cls_only_head and start < self.num_layers):
            final, _ = self._layers(hidden, seq_mask, start, plan)  # (N, T', d)
            return self._head(final, seq_mask, n)
        # Layers start..L-2 in full, then the last layer's [CLS] row alone.
        hidden, _ = self._layers(hidden, seq_mask, start, plan, stop=self.num_layers - 1)
        return self._head(self._cls_row(self.num_layers - 1, hidden, seq_mask, None), seq_mask, n)

    @staticmethod
    def _seq_mask_of(items: torch.Tensor) -> torch.Tensor:
        """Sequence mask ``(..., n + 2)`` from an item mask ``(..., n)`` (items are a prefix)."""
        lengths = items.sum(dim=-1, keepdim=True)  # (..., 1)
        positions = torch.arange(items.shape[-1] + 2, device=items.device)
        return positions <= lengths + 1

    def _cls_row(
        self, index: int, hidden: torch.Tensor, seq_mask: torch.Tensor, edit: RowEdit | None
    ) -> torch.Tensor:
        """Layer ``index``'s output at the [CLS] position alone, for ``k`` edits of its [CLS] row.

        The layer's math (BertLayer) for one query row: per-head weighted values, output projection
        + residual + LayerNorm, feed-forward + residual + LayerNorm. Keys and values are computed
        once per document, the ``k`` candidates only reweight them.

        Args:
            index: the layer.
            hidden: ``(B, T', d)`` states entering it.
            seq_mask: ``(B, T')`` sequence mask.
            edit: ``k`` candidates per document (``weights`` ``(B, k, n)``), or None (``k = 1``).
        Returns:
            ``(B*k, 1, d)`` the [CLS] state leaving the layer under each candidate.
        """
        layer = self.bert.encoder.layer[index]
        attention = layer.attention.self
        b, t, d = hidden.shape
        heads, size = self.num_heads, d // self.num_heads
        query = attention.query(hidden[:, :1]).view(b, 1, heads, size).transpose(1, 2)  # (B, H, 1, dh)
        key = attention.key(hidden).view(b, t, heads, size).transpose(1, 2)  # (B, H, T', dh)
        value = attention.value(hidden).view(b, t, heads, size).transpose(1, 2)  # (B, H, T', dh)
        probs = attention_probabilities(query, key, self._extended_mask(seq_mask),
                                        float(attention.scaling))  # (B, H, 1, T')
        # (B, k, H, 1, T'): the k edited rows per document (k = 1: the row as it is)
        probs = probs[:, None] if edit is None else apply_edit(probs[:, None], edit)
        k = probs.shape[1]
        context = torch.einsum("bkhqt,bhtd->bkqhd", probs, value)  # (B, k, 1, H, dh)
        context = context.reshape(b * k, 1, d)  # (B*k, 1, d): heads concatenated as in BERT
        residual = hidden[:, None, :1].expand(b, k, 1, d).reshape(b * k, 1, d)  # (B*k, 1, d)
        attended = layer.attention.output(context, residual)  # (B*k, 1, d): dense + LayerNorm
        return layer.output(layer.intermediate(attended), attended)  # (B*k, 1, d): FFN + LayerNorm

    def linear_readout(self, output: ModelOutput, site: str) -> LinearReadout | None:
        """None: no layer site pools linearly into the head."""
        return None

    # -- inspection (rankings) ---------------------------------------------------------------------

    def attention_matrices(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's full attention probabilities, for rollout.

        Returns:
            ``(L, B, H, T', T')`` probabilities (eager: rows of padded queries included) and the
            ``(B, T')`` sequence mask; position ``i + 1`` is item ``i``.
        """
        plan = AttentionPlan(self.base_attention, record_full={})
        with torch.no_grad():
            _, seq_mask, _ = self._encode_sequence(batch, self.embed(batch), plan)
        assert plan.record_full is not None
        return torch.stack([plan.record_full[i] for i in range(self.num_layers)]), seq_mask

    def head_mean_attention(self, output: ModelOutput, site: str) -> torch.Tensor:
        """``(B, n)`` the [CLS] row's attention over the items at ``site``'s layer, averaged over all
        heads and renormalised (the all-heads site's attention, also for a single-head site)."""
        self.site_layer(site)  # a layer site (the pool site has no heads)
        out = output.site(site)
        tokens = token_output(output, site).site(site) if is_grouped(out) else out
        n = tokens.mask.shape[1]
        scores = renormalise(tokens.cache["probs"][:, :, 1 : n + 1].mean(dim=1) * tokens.mask)
        if is_grouped(out):  # a word's subwords summed
            return group_scores(scores, out.cache[TOKEN_GROUP], out.mask.shape[1])  # (B, words)
        return scores

    def token_items(self, batch: Batch, output: ModelOutput, site: str) -> torch.Tensor:
        """See the base class; with word items the word of each subword (``(B, T)``)."""
        if self.site(site).item == WHOLE_WORD:
            self._lengths(batch)
            return self.word_index(batch)
        return super().token_items(batch, output, site)


class HFAttentionPoolClassifier(HFClassifier):
    """A BERT encoder with the paper's head: additive attention over the items' final states, then a
    linear layer (no [CLS] pooling). Sites: ``pool`` (first, the paper's) and every layer's.

    Args: as :class:`HFClassifier` (``model``: a :class:`BertModel`, e.g. a pretrained encoder).
    """

    kind: ClassVar[str] = "hf-attnpool"
    _cls_only_head: ClassVar[bool] = False
    #: every row: the pooling reads every item's final state, never [CLS]'s, so erasing from the
    #: [CLS] row alone could not change the last layer's output at all
    default_query_rows: ClassVar[str | None] = "all"
    #: every step: its default site, ``pool``, is a linear pooling (the fast path sums, no rerun)
    default_attention_steps: ClassVar[str] = "every"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.attention = AdditiveAttention(self.state_dim)
        num_classes = self.hf.config.num_labels
        assert num_classes is not None
        self.classifier = nn.Linear(self.state_dim, int(num_classes))  # V z + v

    def _build(self, config: BertConfig) -> PreTrainedModel:
        return BertModel(config, add_pooling_layer=False)

    def export_pretrained(self, folder: Path, label_names: Sequence[str],
                          tokenizer_folder: Path) -> bool:
        """Nothing: the head (additive pooling) is attnaudit's, no transformers class holds it."""
        return False

    @classmethod
    def _load(cls, path: Path, config: BertConfig, *, fresh_head: bool = False) -> PreTrainedModel:
        # The encoder alone: the head (additive pooling + linear) is this class's, always new.
        return BertModel.from_pretrained(path, config=config, add_pooling_layer=False,
                                         local_files_only=True)

    @property
    def bert(self) -> BertModel:
        assert isinstance(self.hf, BertModel)
        return self.hf

    def audited_by_default(self) -> tuple[str, ...] | None:
        """None: the ``pool`` site alone (the paper's, first), as the registry says."""
        return None

    def _declare_sites(self) -> tuple[Site, ...]:
        item, items = self._item
        pool = Site("pool", "additive attention pooling", item, paper=True,
                    description=f"the additive attention over the final states of {items}, "
                    "which pools them for the head")
        return (pool, *self._layer_sites())

    def _head(self, final: torch.Tensor, seq_mask: torch.Tensor, n: int) -> torch.Tensor:
        """Logits ``(N, C)``: additive attention over the items' final states ``final[:, 1:n+1]``."""
        items = seq_mask[:, 1 : n + 1] & seq_mask[:, 2 : n + 2]  # (N, n): [SEP] is the last real
        return self._pool_output(final[:, 1 : n + 1], items)[0]

    def _extra_sites(self, out: ModelOutput, final: torch.Tensor, wanted: Sequence[str]) -> None:
        """The ``pool`` site, computed on every pass (it is the head)."""
        assert out.batch is not None
        n = out.batch.token_ids.shape[1]
        items = out.batch.mask  # (B, n)
        _, pooled = self._pool_output(final[:, 1 : n + 1], items)
        out.sites["pool"] = pooled

    def run(self, batch: Batch, sites: Sequence[str] | None = None) -> ModelOutput:
        """See :meth:`HFClassifier.run`; the ``pool`` site's cache holds the items' final states."""
        out = super().run(batch, sites)
        if "pool" not in self.site_names(sites):
            del out.sites["pool"]
        return out

    def _token_logits_with(
        self, output: ModelOutput, site: str, weights: torch.Tensor
    ) -> torch.Tensor:
        if site == "pool":
            return AttentionClassifier.logits_with(self, output, site, weights)
        return super()._token_logits_with(output, site, weights)

    def linear_readout(self, output: ModelOutput, site: str) -> LinearReadout | None:
        """The pooling's readout (per word with word items: grouping keeps it linear)."""
        if site != "pool":
            return None
        out = output.site(site)
        if not is_grouped(out):
            return AttentionClassifier.linear_readout(self, output, site)
        tokens = AttentionClassifier.linear_readout(self, token_output(output, site), site)
        assert tokens is not None
        return LinearReadout(values=group_values(tokens.values, out), readout=tokens.readout)

    def head_mean_attention(self, output: ModelOutput, site: str) -> torch.Tensor:
        if site == "pool":
            raise ValueError("the pool site has no heads; head-mean attention needs a layer site")
        return super().head_mean_attention(output, site)


#: model kind -> class, for the lead's registry (models/__init__.py)
HF_MODELS: dict[str, type[HFClassifier]] = {
    HFClassifier.kind: HFClassifier,
    HFAttentionPoolClassifier.kind: HFAttentionPoolClassifier,
}
