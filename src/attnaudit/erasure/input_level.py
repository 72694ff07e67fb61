"""Input-level erasure curves: erase a ranking's items from the *input* and recompute the whole model.

Attention-level erasure (:mod:`.interventions`) zeroes weights at a site and recomputes only what lies
downstream of it. Input-level erasure (shared README section 6) edits the token ids instead and runs
the model from scratch, so every layer, the encoders included, sees the erased document:

* ``"delete"``: the erased items' tokens leave the input. Each token row (FLAN) or sentence (HAN) is
  compacted; a sentence left without tokens disappears from the document (the later sentences move up):
  at HAN's ``sentence`` site a deleted sentence disappears, at its ``word`` site the anchor sentence
  loses the words and disappears once emptied. Erasing every item leaves the *empty document*, whose
  states are all zero: the context is 0 and the logits are the head's bias, the same point as the
  attention-level curve's "all erased" end (at the pooling site).
* ``"unk"``: the erased items' tokens become the vocabulary's unknown token, keeping every
  position: ``UNK_ID`` (1, ``<unk>``) for the paper's word vocabulary, the tokenizer's ``[UNK]``
  (100 for BERT) for a transformer, whose id 1 is ``[unused0]`` (:func:`replacement_id`).
* ``"mask"``: they become a transformer's ``[MASK]`` (103 for BERT), the token its pretraining
  taught it to read as "a word is missing here"; the paper's word vocabularies have none.

Which tokens make up which item comes from :meth:`AttentionClassifier.token_items` alone, so this
module works on token ids for any model and never names a layer.

A full forward pass per erased document is costly, so curves are computed on a step *schedule*
(:func:`step_schedule`): ``"every"`` (``k = 0..n``) or ``"eraser"`` (ERASER's bins and every 5%).
Schedules are ``(B, K)`` int arrays with the convention of :attr:`CurveArrays.steps`: each row starts
at 0, increases strictly up to ``lengths[b]`` and is padded to the batch's ``K`` columns by repeating
``lengths[b]`` (its last step), so a padded column equals the row's last computed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from attnaudit.config import InputErasure, InputSteps
from attnaudit.data.batching import make_batches
from attnaudit.data.types import PAD_ID, UNK_ID, Batch, EncodedDocument
from attnaudit.erasure.memory import rows_per_pass
from attnaudit.measures.eraser import ERASER_PERCENTS, eraser_step
from attnaudit.models.base import WHOLE_WORD, AttentionClassifier, ModelOutput, word_starts

CurveKind = Literal["remove", "keep"]

#: the decision-flip curve's grid, in percent: 5%, 10%, ..., 100%
FLIP_GRID_PERCENTS: tuple[int, ...] = tuple(range(5, 101, 5))

#: token-id cells per model call (rows x padded length): bounds memory whatever the schedule; on
#: one CPU thread a flan-rnn audit batch was no faster with 4x or 16x larger calls (cache misses)
DEFAULT_MAX_CELLS = 1 << 14


def document_steps(n: int, steps: InputSteps) -> list[int]:
    """The sorted, distinct steps ``k`` computed for a document of ``n`` items.

    ``"every"``: ``0..n``. ``"eraser"``: ``{0, 1, n}`` with ``ceil(q n)`` for ERASER's bins
    ``q`` in 1, 5, 10, 20, 50% and for ``q`` = 5%, 10%, ..., 100% (the flip curve's grid); step 1 is
    the most-informative-item flip (the top item alone erased), which long documents' bins skip.
    """
    if steps == "every":
        return list(range(n + 1))
    if steps != "eraser":
        raise ValueError(f"unknown step schedule {steps!r}; choose from 'eraser', 'every'")
    percents = np.asarray(ERASER_PERCENTS + FLIP_GRID_PERCENTS)
    ceilings = eraser_step(np.full(len(percents), n), percents)  # ceil(q n) for every q, exactly
    return sorted({0, min(1, n), n, *ceilings.tolist()})


def step_schedule(lengths: Sequence[int] | np.ndarray, steps: InputSteps) -> np.ndarray:
    """``(B, K)`` int64 schedule for documents of ``lengths[b]`` items (rows padded with their last
    step, ``lengths[b]``, to the longest row's ``K``)."""
    rows = [document_steps(int(n), steps) for n in np.asarray(lengths).tolist()]
    width = max((len(r) for r in rows), default=1)
    return np.asarray([r + [r[-1]] * (width - len(r)) for r in rows], dtype=np.int64).reshape(
        len(rows), width
    )


def _compact(ids: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move padding (``~real``) to the end of every row (and, for ``(N, S, W)``, empty sentences
    after the others), keeping order, then cut to the longest row: ``(N, T) -> (N, T')`` or
    ``(N, S, W) -> (N, S', W')``, at least one cell per dimension (an empty document stays a row).

    Returns:
        the ids (padding cells ``PAD_ID``) and their mask, shaped alike.
    """
    ids = torch.where(real, ids, torch.full_like(ids, PAD_ID))
    # Stable sort on "is padding" moves real cells first without reordering them.
    words_first = torch.sort((~real).to(torch.int8), dim=-1, stable=True).indices
    ids, real = ids.gather(-1, words_first), real.gather(-1, words_first)
    width = max(int(real.sum(-1).max()) if real.numel() else 0, 1)
    if ids.dim() == 2:
        return ids[:, :width], real[:, :width]
    present = real.any(-1)  # (N, S): sentences with a token left
    sentences_first = torch.sort((~present).to(torch.int8), dim=1, stable=True).indices  # (N, S)
    order = sentences_first[..., None].expand_as(ids)
    ids, real = ids.gather(1, order), real.gather(1, order)
    count = max(int(present.sum(1).max()) if present.numel() else 0, 1)
    return ids[:, :count, :width], real[:, :count, :width]


#: the model attribute holding the id each replacing erasure writes
_REPLACEMENT_ATTRIBUTE = {"unk": "unk_token_id", "mask": "mask_token_id"}


def replacement_id(model: AttentionClassifier, mode: InputErasure) -> int | None:
    """The id ``"unk"`` or ``"mask"`` erasure writes (None for ``"delete"``, which removes).

    ``"unk"``: the model's ``unk_token_id`` where it reads a tokenizer's ids (transformers), else
    ``UNK_ID`` (the word vocabulary's ``<unk>``, the paper's models). ``"mask"``: the model's
    ``mask_token_id``; only transformers have one.

    Raises:
        ValueError: an unknown mode, or a token the model does not have (one line, with the fix).
    """
    if mode == "delete":
        return None
    if mode not in _REPLACEMENT_ATTRIBUTE:
        raise ValueError(f"unknown input erasure {mode!r}; choose from 'delete', 'unk', 'mask'")
    value = getattr(model, _REPLACEMENT_ATTRIBUTE[mode], UNK_ID if mode == "unk" else None)
    if value is None:
        token = "[UNK]" if mode == "unk" else "[MASK]"
        raise ValueError(f"input erasure {mode!r}: {model.kind} has no {token} token (its "
                         "vocabulary does not define one); use --input-erasure delete or unk")
    return int(value)


def _erase(ids: torch.Tensor, real: torch.Tensor, erased: torch.Tensor,
           replacement: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and mask with the ``erased`` cells replaced by ``replacement`` (None: deleted,
    marked padding, which :func:`_compact` then moves out)."""
    if replacement is None:
        return ids, real & ~erased
    return torch.where(erased, torch.full_like(ids, replacement), ids), real


def input_curve(
    model: AttentionClassifier,
    batch: Batch,
    output: ModelOutput,
    site: str,
    order: torch.Tensor,
    kind: CurveKind,
    mode: InputErasure,
    steps: InputSteps | np.ndarray,
    *,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the documents with a ranking's first ``k`` items erased from the input (or all but
    them kept), for every scheduled ``k``.

    Args:
        model: the classifier (eval mode).
        batch: the batch ``output`` was computed from, ``(B, T)`` or ``(B, S, W)`` token ids.
        output: its unmodified pass (for the site's mask and, at HAN's word site, the anchor).
        site: a site name.
        order: ``(B, n)`` item indices in removal order, real items first (:func:`removal_order`).
        kind: ``"remove"`` erases the first ``k`` ranked items; ``"keep"`` erases all the others.
        mode: ``"delete"`` or ``"unk"`` (see the module docstring).
        steps: a schedule name (``"eraser"``, ``"every"``) or an explicit ``(B, K)`` schedule.
        max_cells: token-id cells per model call; erased documents of several steps and documents
            share a call up to this size and within the memory budget
            (:func:`attnaudit.erasure.memory.rows_per_pass`; one longer document still gets a call
            of its own). The logits do not depend on either.
    Returns:
        ``logits`` ``(B, K, C)``: column ``j`` of row ``b`` after erasing at step ``schedule[b, j]``,
        and the ``(B, K)`` long schedule (padded columns repeat the row's last step and its logits).
    """
    if kind not in ("remove", "keep"):
        raise ValueError(f"unknown curve kind {kind!r}; choose from 'remove', 'keep'")
    device = batch.token_ids.device
    lengths = output.site(site).mask.sum(dim=1)  # (B,)
    schedule = torch.as_tensor(
        step_schedule(lengths.cpu().numpy(), steps) if isinstance(steps, str) else steps,
        dtype=torch.long, device=device,
    )  # (B, K)
    b_size, n = order.shape
    # rank_of[b, i]: position of item i in row b's removal order.
    rank_of = torch.empty_like(order).scatter_(
        1, order, torch.arange(n, device=device).expand_as(order)
    )  # (B, n)
    items = model.token_items(batch, output, site).reshape(b_size, -1)  # (B, L): -1 = no item
    token_rank = torch.where(
        items >= 0, rank_of.gather(1, items.clamp(min=0)), torch.full_like(items, -1)
    )  # (B, L): the removal rank of each token's item, -1 for padding and non-items

    # Distinct steps only: a row's padding columns repeat its last step, copied afterwards.
    distinct = torch.ones_like(schedule, dtype=torch.bool)
    distinct[:, 1:] = schedule[:, 1:] != schedule[:, :-1]
    rows, columns = distinct.nonzero(as_tuple=True)  # (P,), (P,): one per erased document
    ks = schedule[rows, columns]  # (P,)
    # Sort erased documents by their token count so a chunk's rows need little padding.
    tokens = (token_rank >= 0).sum(1)  # (B,) item tokens per document
    others = batch.mask.reshape(b_size, -1).sum(1) - tokens  # (B,)
    erased_tokens = ((token_rank[rows] >= 0) & (token_rank[rows] < ks[:, None])).sum(1)  # (P,)
    remaining = others[rows] + (tokens[rows] - erased_tokens if kind == "remove" else erased_tokens)
    by_size = torch.argsort(remaining, descending=True, stable=True)  # (P,)

    chunk_logits: list[torch.Tensor] = []
    replacement = replacement_id(model, mode)
    cells = batch.token_ids[0].numel() if b_size else 1
    # Calls bounded twice: by cells (the speed optimum measured for the paper's models) and by the
    # memory budget (--max-memory): each erased document is one whole forward pass.
    per_call = max(1, min(max_cells // max(cells, 1), rows_per_pass(model, output)))
    with torch.no_grad():
        for start in range(0, len(by_size), per_call):
            chunk = by_size[start : start + per_call]  # (p,)
            r, k = rows[chunk], ks[chunk]
            rank = token_rank[r]  # (p, L)
            before = (rank >= 0) & (rank < k[:, None])  # (p, L): among the first k ranked items
            erased = before if kind == "remove" else (rank >= 0) & ~before
            ids = batch.token_ids[r]  # (p, T) or (p, S, W)
            ids, real = _compact(*_erase(ids, batch.mask[r], erased.reshape(ids.shape),
                                         replacement))
            doc_ids = [batch.doc_ids[i] for i in r.tolist()]
            chunk_logits.append(model(Batch(doc_ids, ids, batch.labels[r], real)))  # (p, C)
    flat = torch.cat(chunk_logits)[torch.argsort(by_size)] if chunk_logits else None
    logits_distinct = (
        flat if flat is not None
        else torch.zeros(0, output.logits.shape[-1], device=device)
    )  # (P, C) in (row, column) order
    # Column j of row b reads the last distinct column at or before j.
    computed = torch.full_like(schedule, -1)
    computed[rows, columns] = torch.arange(len(rows), device=device)
    latest = torch.cummax(computed, dim=1).values  # (B, K): index into the distinct documents
    return logits_distinct[latest], schedule


def _document_items(
    doc: EncodedDocument, item: str, anchor: int
) -> list[tuple[int, int, int]]:
    """``(sentence, word, item)`` of each token of ``doc`` that is an item of a site of kind ``item``."""
    cells: list[tuple[int, int, int]] = []
    position = 0
    # A word's number: how many tokens before this one began a word.
    starts = word_starts([t for sentence in doc.tokens for t in sentence])
    word = -1
    for s, sentence in enumerate(doc.sentences):
        for w in range(len(sentence)):
            word += starts[position]
            if item == "token":
                cells.append((s, w, position))
            elif item == WHOLE_WORD:
                cells.append((s, w, word))
            elif item == "sentence":
                cells.append((s, w, s))
            elif item == "word" and s == anchor:
                cells.append((s, w, w))
            position += 1
    return cells


def input_curve_reference(
    model: AttentionClassifier,
    doc: EncodedDocument,
    site: str,
    ranked_items: Sequence[int],
    kind: CurveKind,
    mode: InputErasure,
    steps: Sequence[int],
    *,
    anchor: int = -1,
) -> torch.Tensor:
    """Slow, obviously correct :func:`input_curve` of one document: one step at a time, the erased
    document built from its token lists and batched alone.

    Args:
        doc: the document, as encoded.
        ranked_items: its ``n`` item indices in removal order.
        steps: the steps ``k`` to compute.
        anchor: the anchor sentence (HAN's word site), else ignored.
    Returns:
        ``(K, C)`` logits, one row per step.
    """
    item_kind = model.site(site).item
    cells = _document_items(doc, item_kind, anchor)
    replacement = replacement_id(model, mode)
    rows = []
    for k in steps:
        chosen = set(ranked_items[:k])
        erased = {
            (s, w) for s, w, i in cells if (i in chosen) == (kind == "remove")
        }
        sentences: list[list[int]] = []
        for s, sentence in enumerate(doc.sentences):
            if replacement is not None:
                sentences.append([replacement if (s, w) in erased else t
                                  for w, t in enumerate(sentence)])
            else:
                kept = [t for w, t in enumerate(sentence) if (s, w) not in erased]
                if kept:  # an emptied sentence disappears
                    sentences.append(kept)
        if sum(len(s) for s in sentences):
            tokens = [[str(t) for t in s] for s in sentences]
            alone = EncodedDocument(doc.doc_id, doc.label, sentences, tokens)
            erased_batch = make_batches([alone], hierarchical=model.hierarchical)[0]
        else:  # the empty document: one padding cell (batching refuses documents without tokens)
            shape = (1, 1, 1) if model.hierarchical else (1, 1)
            erased_batch = Batch([doc.doc_id], torch.full(shape, PAD_ID, dtype=torch.long),
                                 torch.tensor([doc.label]), torch.zeros(shape, dtype=torch.bool))
        with torch.no_grad():
            rows.append(model(erased_batch)[0])
    return torch.stack(rows)  # (K, C)
