"""The generic transformer host: every family of :mod:`attnaudit.models.hf_families` but BERT.

One class, :class:`GenericHFClassifier` (model kind ``hf``, like BERT's: ``HFClassifier(config=...)``
with another ``model_type`` builds this one), over transformers' attention-function registry: it
registers ``"attnaudit-any"`` (:func:`generic_attention`) with ``AttentionInterface.register`` and
switches the wrapped model to it with ``set_attn_implementation``; no module is swapped or patched.
Each forward pass carries a :class:`GenericPlan` through the model's ``**kwargs``, which every
hosted family hands on to its attention function (checked: one call per layer per pass, else an
error naming the family).

**Families outside the registry** (a descriptor's ``adapter``: DeBERTa's disentangled
attention, :mod:`attnaudit.models.hf_deberta`) are not switched to the registered function; for
each forward pass the host enters the adapter's ``probability_hooks(host, plan)``, which records
and edits the family's own post-softmax probabilities with the same rule
(:func:`plan_probabilities`) and counts one call per layer.

**Sequence.** ``Batch.token_ids`` ``(B, T)`` hold the items (the tokenizer's subwords without special
tokens, padded at the end; ``Batch.mask`` says which cells are tokens, so an id 0 may be one). The
host builds ``prefix + items + suffix`` (the special
tokens the tokenizer itself adds around one sequence: ``[CLS] .. [SEP]``, ``<s> .. </s>``, Llama's
``<s> ..``, nothing for Qwen2) and pads it on the family's side (:class:`Layout`). Special tokens are
never items: they sit outside the item positions and keep their probability under every edit.
Decoders get explicit position ids ``cumsum(mask) - 1``, so left and right padding give the same
results; their classification position is the last real token, which their score head reads.

**Sites, erasure, words** are BERT's (:mod:`attnaudit.models.hf`): ``L{l}`` / ``L{l}.h{h}``, the
classification row's attention over the items; erasure zeroes the row's probabilities at the erased
items' keys and renormalises (``query_rows="all"``: every query row), with the same rule for
non-zero candidates (:func:`attnaudit.models.hf.item_ratios`).

**Grouped-query attention** (Llama, Qwen, Mistral, Gemma with ``num_key_value_heads < H``): a head
site is a *query* head. Keys and values are shared within a group, and nothing edits them: an edit
rescales one query head's probabilities, so the other query heads of its group keep theirs. Its
attention (the classification row of that query head) is that head's own.

**Recomputation.** The reference (``fast_path = False``): ``logits_with`` runs the whole model
forward on the ``B * k`` candidate sequences (batched), with the registered function editing layer
``l``'s classification row (or every row). The fast path (``fast_path = True``, the default, for a
family whose descriptor names a ``tail``): nothing entering layer ``l`` depends on its edit, so
:meth:`GenericHFClassifier.run` captures, with forward pre-hooks on the layer modules, the states
entering each audited layer and the arguments transformers gave layers ``l..L-1`` (masks, position
embeddings); ``logits_with`` then runs only those layers on the candidates, then the family's head
(:mod:`attnaudit.models.hf_resume`); a decoder with ``query_rows="cls"`` runs them for its last real
token alone, one decoding step over the unedited pass's keys and values of the other positions
(nothing else attends to that token). An output cut with ``ModelOutput.index`` (the memory budget's
document chunks) has no capture: one unedited pass of its documents makes it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary
from transformers import (
    AttentionInterface,
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from attnaudit.config import QueryRows
from attnaudit.data.types import PAD_ID, Batch
from attnaudit.models.base import AttentionClassifier, ModelOutput, SiteOutput, renormalise
from attnaudit.models.grouping import TOKEN_GROUP, group_scores, group_site, is_grouped, token_output
from attnaudit.models.hf import (
    BaseAttention,
    HFClassifier,
    _query_rows,
    attention_probabilities,
    item_ratios,
    load_classifier,
)
from attnaudit.models.hf_families import Family, family_of, family_of_config
from attnaudit.models.hf_resume import (
    TAILS,
    LayerCapture,
    ResumePoint,
    can_resume_row,
    capturing,
    resume_layers,
    resume_row,
    row_order,
)
from attnaudit.models.hf_words import TokenizerWords

logger = logging.getLogger(__name__)

#: the registered name of the generic host's attention function (and of its mask function)
ATTENTION_ANY = "attnaudit-any"


# --- the sequence --------------------------------------------------------------------------------


@dataclass
class Layout:
    """Where everything sits in the built sequences (``N`` sequences of ``T'`` positions).

    Attributes:
        ids: ``(N, T')`` token ids (specials, items, padding).
        mask: ``(N, T')`` bool, True on real positions.
        item_pos: ``(N, n)`` long, the position of item ``i``; off items, ``cls_pos`` (never an
            item, so scattering a factor 1 there is harmless).
        items: ``(N, n)`` bool, True on real items.
        cls_pos: ``(N,)`` long, the classification position.
        position_ids: ``(N, T')`` long for decoders (``cumsum(mask) - 1``), None for encoders.
    """

    ids: torch.Tensor
    mask: torch.Tensor
    item_pos: torch.Tensor
    items: torch.Tensor
    cls_pos: torch.Tensor
    position_ids: torch.Tensor | None

    def repeat(self, k: int) -> Layout:
        """Each sequence ``k`` times in a row (``N * k`` sequences: the candidates)."""
        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat_interleave(k, dim=0)
        ids, mask, item_pos, items, cls_pos = (rep(t) for t in (self.ids, self.mask, self.item_pos,
                                                                 self.items, self.cls_pos))
        assert ids is not None and mask is not None and item_pos is not None
        assert items is not None and cls_pos is not None
        return Layout(ids, mask, item_pos, items, cls_pos, rep(self.position_ids))


def build_layout(
    token_ids: torch.Tensor, lengths: torch.Tensor, prefix: Sequence[int], suffix: Sequence[int],
    pad_id: int, side: Literal["left", "right"], position: Literal["first", "last"],
) -> tuple[Layout, torch.Tensor, torch.Tensor]:
    """The layout of ``prefix + items + suffix`` for the items ``token_ids`` ``(B, T)`` (``lengths``
    ``(B,)`` of them per row, padding at the end), padded with ``pad_id`` on ``side``. A row with
    nothing to read (no item and no special token) reads one ``pad_id``.

    Returns:
        the :class:`Layout` and, per position ``(B, T')``, whether it holds an item and which.
    """
    device = lengths.device
    width = token_ids.shape[1]
    p, s = len(prefix), len(suffix)
    total = p + width + s
    real = p + lengths + s  # (B,)
    # A family that adds no special token (Qwen2) has nothing to read in an empty document (every
    # item erased by input-level erasure): it reads one padding token there instead, the same
    # "nothing left" for every document. (Batches always have a cell for it: T >= 1.)
    real = torch.where(real == 0, torch.ones_like(real), real)
    positions = torch.arange(total, device=device)[None, :]  # (1, T')
    offset = (total - real) if side == "left" else torch.zeros_like(real)  # (B,)
    rel = positions - offset[:, None]  # (B, T'): position within the real tokens
    mask = (rel >= 0) & (rel < real[:, None])
    ids = torch.full(mask.shape, pad_id, dtype=torch.long, device=device)
    if p:
        pre = torch.tensor(list(prefix), dtype=torch.long, device=device)
        at = mask & (rel < p)
        ids = torch.where(at, pre[rel.clamp(0, p - 1)], ids)
    is_item = mask & (rel >= p) & (rel < p + lengths[:, None])  # (B, T')
    item_index = (rel - p).clamp(0, max(width - 1, 0))  # (B, T')
    if width:
        ids = torch.where(is_item, token_ids.gather(1, item_index), ids)
    if s:
        suf = torch.tensor(list(suffix), dtype=torch.long, device=device)
        after = rel - p - lengths[:, None]
        at = mask & (after >= 0)
        ids = torch.where(at, suf[after.clamp(0, s - 1)], ids)
    cls_pos = offset if position == "first" else offset + real - 1  # (B,)
    slots = torch.arange(width, device=device)[None, :]  # (1, T)
    items = slots < lengths[:, None]  # (B, T)
    item_pos = torch.where(items, offset[:, None] + p + slots, cls_pos[:, None])  # (B, T)
    position_ids = None
    if position == "last":
        position_ids = (mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, T')
    return (Layout(ids, mask, item_pos, items, cls_pos, position_ids), is_item, item_index)


# --- the registered attention function -------------------------------------------------------------


@dataclass
class GenericEdit:
    """Candidate weights ``(N, n)`` for layer ``layer`` (head ``head`` or all; rows ``rows``)."""

    layer: int
    weights: torch.Tensor
    head: int | None
    rows: QueryRows


@dataclass
class GenericPlan:
    """What :func:`generic_attention` does in one forward pass of ``N`` sequences.

    Attributes:
        layout: the sequences' layout (classification positions, items).
        base: the kernel of unedited attention.
        edit: the layer edit, if any.
        record_rows: if a dict, each recorded layer's classification row ``(N, H, T')``.
        record_full: if a dict, every layer's probabilities ``(N, H, T', T')`` (rollout).
        record_layers: the layers ``record_rows`` keeps (None: all).
        record_keys: if a dict, each layer's keys and values ``(N, H_kv, T', dh)`` (the fast
            path's decoding step, :func:`attnaudit.models.hf_resume.resume_row`).
        calls: attention calls so far in this pass (= the current layer: layers run in order).
    """

    layout: Layout
    base: BaseAttention = "sdpa"
    edit: GenericEdit | None = None
    record_rows: dict[int, torch.Tensor] | None = None
    record_full: dict[int, torch.Tensor] | None = None
    record_layers: frozenset[int] | None = None
    record_keys: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
    calls: int = field(default=0)


def edit_rows(probs: torch.Tensor, row: torch.Tensor, edit: GenericEdit, layout: Layout
              ) -> torch.Tensor:
    """Edited, renormalised probabilities ``(N, H, Q, T')``.

    Args:
        probs: ``(N, H, Q, T')`` the rows to edit (the classification row alone, or every row).
        row: ``(N, H, T')`` the classification row (the factors are computed from it).
        edit: the candidates; ``layout``: the items' positions.
    """
    n_seq, heads, t = row.shape
    index = layout.item_pos[:, None, :].expand(n_seq, heads, -1)  # (N, H, n)
    ratio = item_ratios(row.gather(-1, index), edit.weights, layout.items, edit.head)  # (N, n)
    factor = torch.ones(n_seq, t, dtype=row.dtype, device=row.device)
    factor = factor.scatter(-1, layout.item_pos, ratio.to(row.dtype))  # (N, T'): 1 off items
    edited = renormalise(probs * factor[:, None, None, :])  # (N, H, Q, T')
    if edit.head is None:
        return edited
    in_site = torch.arange(heads, device=probs.device)[None, :, None, None] == edit.head
    return torch.where(in_site, edited, probs)


def plan_probabilities(probs: torch.Tensor, plan: GenericPlan, layer: int) -> torch.Tensor:
    """One layer's whole probabilities ``(N, H, T', T')`` recorded and edited as ``plan`` says.

    Records the classification row ``(N, H, T')`` and, if asked, the whole matrix; returns the
    probabilities to multiply with the values: edited in the classification row (or every row,
    ``query_rows="all"``) at ``layer``, else ``probs`` itself. Shared by the registered function
    and by the adapters of families outside the registry (:mod:`attnaudit.models.hf_deberta`).
    """
    layout = plan.layout
    rows = torch.arange(probs.shape[0], device=probs.device)
    row = probs[rows, :, layout.cls_pos]  # (N, H, T')
    if plan.record_full is not None:
        plan.record_full[layer] = probs.detach()
    if plan.record_rows is not None and (plan.record_layers is None
                                         or layer in plan.record_layers):
        plan.record_rows[layer] = row.detach()
    edit = plan.edit if plan.edit is not None and plan.edit.layer == layer else None
    if edit is None:
        return probs
    if edit.rows == "all":
        return edit_rows(probs, row, edit, layout)
    edited = edit_rows(row[:, :, None], row, edit, layout)  # (N, H, 1, T')
    t = probs.shape[-1]
    is_row = torch.arange(t, device=probs.device)[None, :] == layout.cls_pos[:, None]  # (N, T')
    return torch.where(is_row[:, None, :, None], edited, probs)


def _probabilities(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor, scale: float,
                   softcap: float | None) -> torch.Tensor:
    """:func:`attention_probabilities`, with a row that may attend nowhere set to zeros, not NaN:
    a padding query outside a sliding window (Mistral) masks every key, and one NaN row would
    spread through ``probs @ value`` (0 * NaN) to every later layer."""
    probs = attention_probabilities(query, key, mask, scale, softcap)
    return torch.where(mask.any(dim=-1, keepdim=True), probs, torch.zeros_like(probs))


def _full_mask(module: nn.Module, n: int, t: int, device: torch.device) -> torch.Tensor:
    """A bool mask ``(N, 1, T', T')`` where transformers passed none (no padding)."""
    if getattr(module, "is_causal", False):
        return torch.ones(t, t, dtype=torch.bool, device=device).tril().expand(n, 1, t, t)
    return torch.ones(n, 1, t, t, dtype=torch.bool, device=device)


def generic_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    attnaudit_plan: GenericPlan | None = None,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The attention function registered as ``"attnaudit-any"``.

    Args:
        module: the calling attention module.
        query: ``(N, H, T', dh)``; key, value: ``(N, H_kv, T', dh)`` (``H_kv < H``: grouped
            queries; repeated to ``H`` heads here, as transformers' own kernels do).
        attention_mask: bool ``(N|1, 1, T', T')`` (the mask function registered for this name never
            skips it) or None.
        attnaudit_plan: what to edit and record; None (the model's own forward, e.g. training):
            transformers' SDPA (eager where a softcap is set, which SDPA cannot apply).
    Returns:
        ``(N, T', H, dh)`` and None.
    """
    if kwargs.get("s_aux") is not None:
        raise ValueError("attention sinks (s_aux) are not supported by attnaudit's host")
    scale = float(scaling) if scaling is not None else query.shape[-1] ** -0.5
    plan = attnaudit_plan
    base: BaseAttention = "eager" if softcap is not None else ("sdpa" if plan is None else plan.base)
    groups = query.shape[1] // key.shape[1]
    key_h, value_h = repeat_kv(key, groups), repeat_kv(value, groups)  # (N, H, T', dh)
    # t queries (one in the fast path's decoding step, resume_row) over the keys
    n_seq, _, t, _ = query.shape
    mask = _full_mask(module, n_seq, t, query.device) if attention_mask is None else \
        attention_mask.expand(n_seq, 1, t, key.shape[2])

    def unedited() -> torch.Tensor:
        if base == "sdpa":
            out, _ = sdpa_attention_forward(module, query, key, value, attention_mask,
                                            dropout=dropout, scaling=scale, **kwargs)
            return out  # (N, T', H, dh)
        probs = _probabilities(query, key_h, mask, scale, softcap)
        probs = nn.functional.dropout(probs, p=dropout, training=module.training)
        return torch.matmul(probs, value_h).transpose(1, 2).contiguous()

    if plan is None:
        return unedited(), None
    layer = plan.calls
    plan.calls += 1
    if plan.record_keys is not None:
        plan.record_keys[layer] = (key.detach(), value.detach())
    layout = plan.layout
    edit = plan.edit if plan.edit is not None and plan.edit.layer == layer else None
    recorded = plan.record_rows is not None and (plan.record_layers is None
                                                 or layer in plan.record_layers)
    rows = torch.arange(n_seq, device=query.device)
    if plan.record_full is not None or (edit is not None and edit.rows == "all"):
        probs = plan_probabilities(_probabilities(query, key_h, mask, scale, softcap), plan, layer)
        probs = nn.functional.dropout(probs, p=dropout, training=module.training)
        return torch.matmul(probs, value_h).transpose(1, 2).contiguous(), None
    out = unedited()
    if edit is None and not recorded:
        return out, None
    # The classification row alone, by hand, next to the base kernel's output for the other rows.
    q_row = query[rows, :, layout.cls_pos][:, :, None]  # (N, H, 1, dh)
    m_row = mask[rows, :, layout.cls_pos][:, :, None]  # (N, 1, 1, T')
    row = _probabilities(q_row, key_h, m_row, scale, softcap)  # (N, H, 1, T')
    if recorded and plan.record_rows is not None:
        plan.record_rows[layer] = row[:, :, 0].detach()
    if edit is None:
        return out, None
    row_out = torch.matmul(edit_rows(row, row[:, :, 0], edit, layout), value_h)  # (N, H, 1, dh)
    is_row = (torch.arange(t, device=query.device)[None, :] == layout.cls_pos[:, None])  # (N, T')
    return torch.where(is_row[:, :, None, None], row_out.transpose(1, 2), out), None


def _mask_no_skip(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """SDPA's bool mask, never skipped: the function above reads the classification row's mask."""
    kwargs["allow_is_causal_skip"] = False
    kwargs["allow_is_bidirectional_skip"] = False
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(ATTENTION_ANY, generic_attention)
AttentionMaskInterface.register(ATTENTION_ANY, _mask_no_skip)


# --- the host -------------------------------------------------------------------------------------


def special_tokens_of(tokenizer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids ``tokenizer`` adds before and after one sequence (asked, not assumed)."""
    bare = list(tokenizer("a b", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a b", add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return tuple(full[:start]), tuple(full[start + len(bare) :])
    raise ValueError("cannot tell the tokenizer's special tokens from its encodings")


def decoder_pad_id(tokenizer: Any, folder: Path) -> int:
    """The padding id of a decoder whose config names none (Llama, Mistral and Gemma checkpoints
    often do not: their tokenizers have no padding token).

    The tokenizer's padding token if it has one; else id 0 (``PAD_ID``), which attnaudit's data
    layer already requires to be a special token that no text produces (Llama's ``<unk>``,
    :func:`attnaudit.data.hf_tokenizer.load_tokenizer`), unless the tokenizer adds it around a
    sequence (then transformers' "last token that is not padding" would read the wrong position).
    Results do not depend on the choice: padded positions are masked; it is what the model's
    config (and the exported folder, :meth:`GenericHFClassifier.export_pretrained`) records.

    Raises:
        ValueError: one line naming the folder and the fix (set a padding token).
    """
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    prefix, suffix = special_tokens_of(tokenizer)
    if PAD_ID in tokenizer.all_special_ids and PAD_ID not in (*prefix, *suffix):
        return PAD_ID
    raise ValueError(
        f"{folder}: a decoder needs a padding token to be fine-tuned in batches and neither its "
        f"config (pad_token_id) nor its tokenizer names one, and id {PAD_ID} is not a free "
        "special token; set one (tokenizer.pad_token = ...; model.config.pad_token_id = ...) and "
        "save_pretrained both again")


def _auto_config(config: PretrainedConfig | dict[str, Any], num_classes: int | None
                 ) -> PretrainedConfig:
    """A transformers config from a config or its dict, with ``num_labels`` set when given."""
    values = config.to_dict() if isinstance(config, PretrainedConfig) else dict(config)
    if num_classes is not None:
        values["num_labels"] = num_classes
        values.pop("id2label", None)
        values.pop("label2id", None)
    model_type = values.pop("model_type")
    family_of(model_type)  # one line naming a family that is not hosted
    return AutoConfig.for_model(model_type, **values)


class GenericHFClassifier(HFClassifier):
    """A sequence classifier of any hosted family under audit; see the module docstring.

    Args:
        config: its transformers config or ``to_dict()`` (``model_type`` picks the family).
        num_classes: ``C``; None keeps the config's ``num_labels``.
        prefix_ids, suffix_ids: the special tokens around the items (the tokenizer's own,
            :func:`special_tokens_of`); default ``cls_token_id`` / ``sep_token_id`` if given.
        cls_token_id, sep_token_id: shorthand for a one-token prefix / suffix.
        unk_token_id, mask_token_id, query_rows, attention: as :class:`HFClassifier`.
        padding_side: ``"left"`` or ``"right"``; None: the family's.
        model: an already built transformers model (:meth:`from_pretrained`, a live object).
    """

    def __init__(
        self,
        *,
        config: PretrainedConfig | dict[str, Any],
        num_classes: int | None = None,
        prefix_ids: Sequence[int] | None = None,
        suffix_ids: Sequence[int] | None = None,
        cls_token_id: int | None = None,
        sep_token_id: int | None = None,
        unk_token_id: int | None = None,
        mask_token_id: int | None = None,
        query_rows: QueryRows | None = None,
        attention: BaseAttention = "sdpa",
        padding_side: Literal["left", "right"] | None = None,
        model: PreTrainedModel | None = None,
    ) -> None:
        AttentionClassifier.__init__(self)
        if attention not in ("sdpa", "eager"):
            raise ValueError(f"attention must be 'sdpa' or 'eager', got {attention!r}")
        hf_config = model.config if model is not None and num_classes is None else \
            _auto_config(config, num_classes)
        self.family: Family = family_of_config(hf_config)
        self.query_rows: QueryRows = _query_rows(query_rows or self.default_query_rows)
        self.item_unit = "token"
        self.base_attention: BaseAttention = attention
        self.prefix_ids = tuple(int(i) for i in (
            prefix_ids if prefix_ids is not None else () if cls_token_id is None else (cls_token_id,)))
        self.suffix_ids = tuple(int(i) for i in (
            suffix_ids if suffix_ids is not None else () if sep_token_id is None else (sep_token_id,)))
        # BERT's attributes, kept for code that reads them (input-level erasure, reports)
        self.cls_token_id = self.prefix_ids[0] if self.prefix_ids else -1
        self.sep_token_id = self.suffix_ids[-1] if self.suffix_ids else -1
        self.unk_token_id = None if unk_token_id is None else int(unk_token_id)
        self.mask_token_id = None if mask_token_id is None else int(mask_token_id)
        self.padding_side: Literal["left", "right"] = padding_side or self.family.padding
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if self.padding_side == "left" and not self.family.decoder:
            raise ValueError(f"{self.family.name} reads its first token: pad it on the right")
        self.register_buffer("_continues", None, persistent=False)
        self._words: TokenizerWords | None = None
        # resume from the audited layer (hf_resume) where the family names its head; False: the
        # reference, the whole model per candidate
        self.fast_path = True
        self._resume_failed = False
        self.hf: PreTrainedModel = model if model is not None else \
            AutoModelForSequenceClassification.from_config(hf_config)
        if self.family.adapter is None:
            self.hf.set_attn_implementation(ATTENTION_ANY)
        text = self.hf.config.get_text_config()
        pad = getattr(text, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else PAD_ID
        self.state_dim = int(text.hidden_size)
        self.num_layers = int(text.num_hidden_layers)
        self.num_heads = int(text.num_attention_heads)
        self._sites = self._declare_sites()

    _cls_only_head: ClassVar[bool] = False

    @property
    def row_name(self) -> str:
        """How sites name the classification row."""
        return "last-token" if self.family.decoder else "first-token"

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, num_classes: int | None = None,
        unk_token_id: int | None = None, fresh_head: bool = False, **options: Any,
    ) -> GenericHFClassifier:
        """The classifier ``save_pretrained`` wrote in the local folder ``path`` with its tokenizer
        (never downloads); special tokens and words are the tokenizer's.

        ``fresh_head`` (a fine-tuning base: a bare model or any ``...ForSequenceClassification``
        folder): the head is new (:func:`attnaudit.models.hf.load_classifier`) and a decoder whose
        config names no padding token gets one (:func:`decoder_pad_id`), so that the model
        fine-tuned from it runs batched in transformers too."""
        folder = Path(path)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        family = family_of_config(config)
        if num_classes is not None:
            config = _auto_config(config, num_classes)
        if fresh_head and family.decoder and config.get_text_config().pad_token_id is None:
            pad = decoder_pad_id(tokenizer, folder)
            config.pad_token_id = pad
            config.get_text_config().pad_token_id = pad
        model = load_classifier(AutoModelForSequenceClassification.from_pretrained, folder,
                                config, fresh_head=fresh_head)
        return cls.from_model(model, tokenizer, unk_token_id=unk_token_id, **options)

    @classmethod
    def from_model(cls, model: PreTrainedModel, tokenizer: Any, **options: Any
                   ) -> GenericHFClassifier:
        """Host a transformers classifier already in memory, with its tokenizer (a live object:
        the wrapped model is ``model`` itself, switched to the registered attention)."""
        prefix, suffix = special_tokens_of(tokenizer)
        if options.get("unk_token_id") is None:
            options["unk_token_id"] = tokenizer.unk_token_id
        host = cls(config=model.config, prefix_ids=prefix, suffix_ids=suffix,
                   mask_token_id=tokenizer.mask_token_id, model=model, **options)
        host.set_vocabulary(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
        host.set_tokenizer(tokenizer)
        return host

    def config_dict(self) -> dict[str, Any]:
        """Constructor arguments (plain types), enough to rebuild an identical untrained model."""
        return {
            "config": self.hf.config.to_dict(),
            "prefix_ids": list(self.prefix_ids),
            "suffix_ids": list(self.suffix_ids),
            "unk_token_id": self.unk_token_id,
            "mask_token_id": self.mask_token_id,
            "attention": self.base_attention,
            "padding_side": self.padding_side,
        }

    @property
    def embedding(self) -> nn.Embedding:
        """The word-vector table ``(V, d_e)``."""
        table = self.hf.get_input_embeddings()
        assert isinstance(table, nn.Embedding)
        return table

    def embed(self, batch: Batch) -> torch.Tensor:
        """Word vectors of the items ``(B, T, d_e)``."""
        self._lengths(batch)
        return self.embedding(batch.token_ids)

    # -- the sequence and the forward pass ----------------------------------------------------------

    def _layout(self, batch: Batch) -> tuple[Layout, torch.Tensor, torch.Tensor]:
        return build_layout(batch.token_ids, self._lengths(batch), self.prefix_ids,
                            self.suffix_ids, self.pad_id, self.padding_side,
                            self.family.position)

    def _sequence(self, layout: Layout, is_item: torch.Tensor, item_index: torch.Tensor,
                  embedded: torch.Tensor) -> torch.Tensor:
        """Word vectors of the whole sequences ``(N, T', d_e)``: the items' ``embedded``
        ``(N, T, d_e)`` at their positions, the specials' and padding's looked up (so attribution
        methods perturb the items only)."""
        table = self.embedding(layout.ids).to(embedded.dtype)  # (N, T', d_e)
        index = item_index[..., None].expand(-1, -1, embedded.shape[-1])
        return torch.where(is_item[..., None], embedded.gather(1, index), table)

    def _forward(self, sequence: torch.Tensor, plan: GenericPlan,
                 hidden: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(N, C)`` (and, if ``hidden``, the final states ``(N, T', d)``)."""
        layout = plan.layout
        mask = layout.mask.long()
        if self.family.decoder:
            base = self.hf.get_submodule(self.hf.base_model_prefix)
            final = base(inputs_embeds=sequence, attention_mask=mask,
                         position_ids=layout.position_ids, use_cache=False,
                         attnaudit_plan=plan).last_hidden_state  # (N, T', d)
            rows = torch.arange(final.shape[0], device=final.device)
            logits = self.hf.get_submodule("score")(final[rows, layout.cls_pos])
        else:
            with self._adapter(plan):
                result = self.hf(inputs_embeds=sequence, attention_mask=mask,
                                 output_hidden_states=hidden, attnaudit_plan=plan)
            logits = result.logits
            final = result.hidden_states[-1] if hidden else None
        self._check_calls(plan)
        return logits, final

    def _check_calls(self, plan: GenericPlan) -> None:
        """One attention call per layer went through the registry in the pass, else an error."""
        if plan.calls != self.num_layers:
            through = "transformers' registry" if self.family.adapter is None else \
                f"the family's adapter ({self.family.adapter})"
            raise RuntimeError(
                f"{self.family.name}: {plan.calls} attention calls went through {through} in one "
                f"pass of {self.num_layers} layers; this model's attention does not run through "
                "it (cannot audit it)")

    def _adapter(self, plan: GenericPlan) -> AbstractContextManager[object]:
        """Where the family's attention is outside the registry (:attr:`Family.adapter`), the
        adapter's ``probability_hooks``: a context manager that applies ``plan`` for one pass;
        else nothing to do (the plan travels to the registered function through ``**kwargs``)."""
        if self.family.adapter is None:
            return nullcontext()
        hooks = importlib.import_module(self.family.adapter).probability_hooks
        context: AbstractContextManager[object] = hooks(self, plan)
        return context

    def _attention_width(self, t: int) -> int:
        """The registered function's ``2 H t`` (:meth:`HFClassifier.recompute_bytes`), or the
        adapter's own ``attention_width``."""
        if self.family.adapter is None:
            return super()._attention_width(t)
        width = importlib.import_module(self.family.adapter).attention_width
        return int(width(self, t))

    def logits_from_embeddings(self, batch: Batch, embedded: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` logits from the items' word vectors ``(B, T, d_e)`` (:meth:`run`'s code)."""
        layout, is_item, index = self._layout(batch)
        plan = GenericPlan(layout, self.base_attention)
        return self._forward(self._sequence(layout, is_item, index, embedded), plan)[0]

    def encode_embedded(self, batch: Batch, embedded: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The items' final states ``(B, T, d)`` and the item mask ``(B, T)``."""
        layout, is_item, index = self._layout(batch)
        plan = GenericPlan(layout, self.base_attention)
        sequence = self._sequence(layout, is_item, index, embedded)
        if self.family.decoder:
            base = self.hf.get_submodule(self.hf.base_model_prefix)
            final = base(inputs_embeds=sequence, attention_mask=layout.mask.long(),
                         position_ids=layout.position_ids, use_cache=False,
                         attnaudit_plan=plan).last_hidden_state
        else:
            final = self._forward(sequence, plan, hidden=True)[1]
        assert final is not None
        gather = layout.item_pos[..., None].expand(-1, -1, final.shape[-1])
        return final.gather(1, gather), layout.items

    # -- the fast path's capture (models/hf_resume.py) ----------------------------------------------

    @property
    def _resumes(self) -> bool:
        """True when ``logits_with`` resumes at the audited layer (see the module docstring)."""
        return self.fast_path and self.family.tail is not None and not self._resume_failed

    @property
    def _steps(self) -> bool:
        """True when the candidates run as decoding steps (resume_row): a decoder editing the
        classification row alone; then the unedited pass records each layer's keys and values."""
        return self.family.decoder and self.query_rows == "cls"

    def _capture(self, layers: frozenset[int]) -> LayerCapture | None:
        """A capture of the layer calls from the lowest of ``layers`` up (None: naive path)."""
        return LayerCapture(min(layers), layers) if self._resumes and layers else None

    @staticmethod
    def _keep(points: dict[int, ResumePoint], probs: torch.Tensor, layer: int) -> None:
        """Remember the resume point of ``layer`` for the site cached as ``probs``."""
        if layer in points:
            _RESUME.setdefault(probs, {})[layer] = points[layer]

    def _resume_point(self, output: ModelOutput, site: str, layer: int) -> ResumePoint | None:
        """The resume point of ``site`` (token level) kept by :meth:`run`, else made by one
        unedited pass of ``output``'s documents (an output cut with ``ModelOutput.index``)."""
        probs = output.site(site).cache["probs"]
        kept = _RESUME.get(probs, {}).get(layer)
        if kept is not None or output.batch is None:
            return kept
        capture = self._capture(frozenset({layer}))
        assert capture is not None
        layout, is_item, index = self._layout(output.batch)
        plan = GenericPlan(layout, self.base_attention,
                           record_keys={} if self._steps else None)
        with torch.no_grad(), capturing(self._layer_modules(), capture):
            self._forward(self._sequence(layout, is_item, index, self.embed(output.batch)), plan)
        points = self._points(capture, plan)
        self._keep(points, probs, layer)
        return points.get(layer)

    def _points(self, capture: LayerCapture, plan: GenericPlan) -> dict[int, ResumePoint]:
        """``capture``'s resume points (with ``plan``'s recorded keys and values from each point's
        layer up); none when the hooked modules did not see one call per layer (a layout the
        descriptor's ``layers`` does not describe, e.g. ALBERT with several layer groups): then
        this model stays on the naive path."""
        points = capture.points(self.num_layers)
        self._resume_failed = not points
        if plan.record_keys is not None:
            for layer, point in points.items():
                point.keys_values = {j: plan.record_keys[j] for j in range(layer, self.num_layers)}
        return points

    def _layer_modules(self) -> list[nn.Module]:
        """The family's layer modules (ALBERT: one, called once per layer)."""
        return list(self.hf.get_submodule(self.family.layers))

    def run(self, batch: Batch, sites: Sequence[str] | None = None) -> ModelOutput:
        """Full pass: the logits and, per requested site, its attention. A layer site's cache:
        ``probs`` ``(B, H, n)``, the classification row's probabilities at the items' keys; with
        the fast path, the pass's layer calls are captured for ``logits_with`` (hf_resume)."""
        wanted = self.site_names(sites)
        layers = {self.site_layer(name)[0] for name in wanted}
        layout, is_item, index = self._layout(batch)
        plan = GenericPlan(layout, self.base_attention, record_rows={},
                           record_layers=frozenset(layers))
        capture = self._capture(frozenset(layers))
        if capture is not None and self._steps:
            plan.record_keys = {}
        with nullcontext() if capture is None else capturing(self._layer_modules(), capture):
            logits, _ = self._forward(self._sequence(layout, is_item, index, self.embed(batch)), plan)
        out = ModelOutput(logits=logits, sites={}, batch=batch)
        points = {} if capture is None else self._points(capture, plan)
        items = layout.items
        anchor = torch.full((items.shape[0],), -1, dtype=torch.long, device=items.device)
        assert plan.record_rows is not None
        for name in wanted:
            layer, head = self.site_layer(name)
            row = plan.record_rows[layer]  # (B, H, T')
            probs = row.gather(-1, layout.item_pos[:, None, :].expand(-1, row.shape[1], -1))
            chosen = probs if head is None else probs[:, head : head + 1]  # (B, H|1, n)
            attention = renormalise(chosen.mean(dim=1) * items)  # (B, n)
            out.sites[name] = SiteOutput(attention=attention, mask=items, anchor=anchor,
                                         cache={"probs": probs})
            self._keep(points, probs, layer)
        if self.item_unit == "word":
            words = self.word_index(batch)  # (B, n)
            out.sites = {name: group_site(site, words) for name, site in out.sites.items()}
        return out

    def _warn_beyond_window(self, layout: Layout) -> None:
        """Warn once when every query row is edited and a sequence is longer than a sliding window
        (Mistral, windowed Qwen2/Gemma layers): items outside the classification row's window have
        no attention of their own in the site, so the every-row edit, scaled by the site's weights,
        treats them as erased (erasing nothing then does not give the model's logits). The
        classification row (``query_rows="cls"``, the default) is exact. Not yet built: an edit
        rule for such items."""
        if self.query_rows != "all" or getattr(self, "_window_warned", False):
            return
        config = self.hf.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        window = getattr(text, "sliding_window", None)
        if window is None or getattr(text, "use_sliding_window", True) is False:
            return
        types = getattr(text, "layer_types", None) or ()
        longest = int(layout.mask.sum(dim=1).max()) if layout.mask.numel() else 0
        if (not types or "sliding_attention" in types) and longest > int(window):
            self._window_warned = True
            logger.warning(
                "%s: a document of %d positions is longer than the sliding window (%d): with "
                "--query-rows all, the items outside the classification row's window are treated "
                "as erased in every row, so these documents' numbers are not exact; use "
                "--query-rows cls (exact) or cut documents to the window (--max-tokens)",
                self.family.name, longest, int(window))

    def _token_logits_with(self, output: ModelOutput, site: str, weights: torch.Tensor
                           ) -> torch.Tensor:
        """Logits ``(B, k, C)``: the whole model on the ``B * k`` candidate sequences, the
        registered function editing ``site``'s layer."""
        batch = output.batch
        if batch is None:
            raise ValueError("logits_with needs the pass's batch: compute it with model.run(batch)")
        layer, head = self.site_layer(site)
        b, k, n = weights.shape
        layout, is_item, index = self._layout(batch)
        self._warn_beyond_window(layout)
        flat = layout.repeat(k)
        plan = GenericPlan(flat, self.base_attention,
                           edit=GenericEdit(layer, weights.reshape(b * k, n), head,
                                            self.query_rows))
        point = self._resume_point(output, site, layer) if self._resumes else None
        if point is not None and self._steps and can_resume_row(point):
            # Only the last real token's row changes from layer l up: one decoding step each.
            order = row_order(layout.cls_pos, layout.mask.shape[1])  # (B, T'): keys' order
            item_pos = order.argsort(dim=1).gather(1, layout.item_pos)  # items in that order
            step = Layout(flat.ids, flat.mask, item_pos.repeat_interleave(k, dim=0), flat.items,
                          torch.zeros_like(flat.cls_pos), flat.position_ids)
            plan = GenericPlan(step, self.base_attention, edit=plan.edit, calls=layer)
            final = resume_row(point, layout.cls_pos, k, plan)  # (B*k, 1, d)
            self._check_calls(plan)
            return TAILS["decoder"](self.hf, final, step.mask, step.cls_pos).reshape(b, k, -1)
        if point is not None and self.family.tail is not None:
            # Layers l..L-1 and the head on the B*k candidates, from the captured inputs of l.
            plan.calls = layer
            final = resume_layers(point, k, plan)  # (B*k, T', d)
            self._check_calls(plan)
            logits = TAILS[self.family.tail](self.hf, final, flat.mask, flat.cls_pos)
            return logits.reshape(b, k, -1)
        embedded = self.embed(batch).repeat_interleave(k, dim=0)  # (B*k, T, d_e)
        sequence = self._sequence(flat, is_item.repeat_interleave(k, 0),
                                  index.repeat_interleave(k, 0), embedded)
        return self._forward(sequence, plan)[0].reshape(b, k, -1)

    # -- inspection ---------------------------------------------------------------------------------

    def attention_matrices(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's attention ``(L, B, H, T', T')`` and the sequence mask ``(B, T')``, with
        positions reordered to ``[classification, item 0 .. item n-1, the rest]`` (rollout's
        layout; rollout commutes with reordering rows and columns together)."""
        layout, is_item, index = self._layout(batch)
        plan = GenericPlan(layout, self.base_attention, record_full={})
        with torch.no_grad():
            self._forward(self._sequence(layout, is_item, index, self.embed(batch)), plan)
        assert plan.record_full is not None
        probs = torch.stack([plan.record_full[i] for i in range(self.num_layers)])
        t = layout.mask.shape[1]
        rank = torch.arange(t, device=probs.device)[None, :].expand(layout.mask.shape[0], t) + t + 1
        rank = rank.scatter(1, layout.cls_pos[:, None], 0)
        rank = torch.where(is_item, index + 1, rank)
        order = rank.argsort(dim=1)  # (B, T')
        rows = order[None, :, None, :, None].expand(probs.shape[0], -1, probs.shape[2], -1, t)
        probs = probs.gather(3, rows)
        cols = order[None, :, None, None, :].expand(*probs.shape[:4], -1)
        return probs.gather(4, cols), layout.mask.gather(1, order)

    def head_mean_attention(self, output: ModelOutput, site: str) -> torch.Tensor:
        """``(B, n)`` the classification row's attention over the items at ``site``'s layer,
        averaged over all heads and renormalised (words: their subwords summed)."""
        self.site_layer(site)
        out = output.site(site)
        tokens = token_output(output, site).site(site) if is_grouped(out) else out
        scores = renormalise(tokens.cache["probs"].mean(dim=1) * tokens.mask)
        if is_grouped(out):
            return group_scores(scores, out.cache[TOKEN_GROUP], out.mask.shape[1])
        return scores


#: per site cache (its ``probs`` tensor, weakly: dropped with the output), layer -> resume point
_RESUME: WeakIdKeyDictionary = WeakIdKeyDictionary()

# Registered as the host of every family but BERT: ``HFClassifier(config=...)`` and
# ``HFClassifier.from_pretrained`` build this class for them (models/hf.py never imports this module).
HFClassifier.family_host = GenericHFClassifier

__all__ = ["ATTENTION_ANY", "GenericHFClassifier", "HFClassifier", "Layout", "build_layout",
           "generic_attention", "special_tokens_of"]
