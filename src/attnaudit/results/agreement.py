"""Agreement between rankings over each document's items (Jain & Wallace, NAACL 2019).

Per (document, site) and every pair of rankings in ``items.parquet``: Kendall's tau-b of the two
rankings' scores (ties handled as :func:`scipy.stats.kendalltau`'s default variant ``'b'``),
Spearman's rho (average ranks for ties, as :func:`scipy.stats.spearmanr`), and the top-k overlap
``|top_k(r1) ∩ top_k(r2)| / k`` for ``k`` in :data:`TOP_KS`.

Torch-free (numpy and scipy). Everything is vectorised over documents: a site's items are laid out
as padded ``(documents, max items)`` matrices, each ranking's ranks are computed once, and tau-b's
discordant pairs are counted for all documents of a pair at once by a bitwise radix partition
(``O(n log n)`` per document like scipy's merge sort, no per-document Python loop).

The per-document table (:func:`agreement_table`) has one row per (site, document): ``site, doc_id,
n_items`` and, per pair ``"a|b"`` (``a`` before ``b`` in ranking order), the columns
``tau:a|b``, ``spearman:a|b``, ``top1:a|b``, ``top5:a|b`` (float; NaN where undefined).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from attnaudit.measures.reductions import count, mean, median

#: the k of the top-k overlaps; a document with fewer than k items uses k = n (then the overlap is 1)
TOP_KS: tuple[int, ...] = (1, 5)
#: per-pair statistics of the per-document table, each a column ``f"{stat}:{a}|{b}"``
STATISTICS: tuple[str, ...] = ("tau", "spearman", *(f"top{k}" for k in TOP_KS))

CONVENTIONS: dict[str, str] = {
    "kendall_tau": "Kendall tau-b between the two rankings' scores over a document's items (higher "
                   "score = more important); exactly equal scores are ties, handled by tau-b (the "
                   "audit's near-tie rule shapes the removal order, so top-k, not tau).",
    "spearman": "Spearman rho: Pearson correlation of the two rankings' average ranks.",
    "top_k": "Top-k overlap |top_k(a) ∩ top_k(b)| / k, the top-k items taken in each ranking's own "
             "removal order (rank_<ranking>, ties broken as the audit broke them); a document "
             "with fewer than k items uses k = n.",
    "undefined": "Documents with fewer than two items, or whose scores are constant under either "
                 "ranking (tau-b undefined), are left out of every agreement number and counted in "
                 "n_undefined; n counts the documents used.",
}


def pair_key(a: str, b: str) -> str:
    """The name of the pair ``(a, b)`` in tables and in summary.json: ``"a|b"``."""
    return f"{a}|{b}"


def ranking_pairs(rankings: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of ``rankings``, ``a`` before ``b`` in the given order."""
    return list(combinations(rankings, 2))


def scored_rankings(items: pd.DataFrame, order: Sequence[str] = ()) -> list[str]:
    """Rankings with a ``score_R`` column in ``items``: those in ``order`` first, then the others in
    column order."""
    present = [c[len("score_"):] for c in items.columns if c.startswith("score_")]
    return [r for r in order if r in present] + [r for r in present if r not in order]


def agreement_table(items: pd.DataFrame, rankings: Sequence[str] = ()) -> pd.DataFrame:
    """Per-document agreement of every pair of rankings (schema: module docstring).

    Args:
        items: ``items.parquet`` rows (``site, doc_id, item, score_R, rank_R``), any sites.
        rankings: ranking order for naming pairs; rankings with scores but not listed follow.

    Returns:
        One row per (site, document), sorted by site (first appearance) and ``doc_id``.
    """
    names = scored_rankings(items, rankings)
    pairs = ranking_pairs(names)
    site = items["site"].astype(str) if "site" in items.columns else pd.Series("", index=items.index)
    frame = pd.DataFrame({"site": site.to_numpy(), "doc_id": items["doc_id"].astype(str).to_numpy(),
                          "item": items["item"].to_numpy()})
    # one group per (site, document); items in position order inside it
    site_codes, site_names = pd.factorize(frame["site"])
    doc_codes, doc_names = pd.factorize(frame["doc_id"], sort=True)
    order = np.lexsort((frame["item"].to_numpy(), doc_codes, site_codes))
    group_key = site_codes[order].astype(np.int64) * len(doc_names) + doc_codes[order]
    starts = np.flatnonzero(np.r_[True, group_key[1:] != group_key[:-1]]) if len(order) else \
        np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, len(order)]).astype(np.int64)
    groups = len(starts)
    width = int(lengths.max()) if groups else 0
    group_of = np.repeat(np.arange(groups), lengths)
    position = np.arange(len(order)) - np.repeat(starts, lengths)

    def padded(column: str, fill: float) -> np.ndarray:
        out = np.full((groups, width), fill, dtype=np.float64)
        out[group_of, position] = items[column].to_numpy(dtype=np.float64)[order]
        return out

    scores = {r: padded(f"score_{r}", np.nan) for r in names}
    ranks = {r: (padded(f"rank_{r}", np.inf) if f"rank_{r}" in items.columns
                 else _ranks_from_scores(scores[r])) for r in names}
    out: dict[str, Any] = {
        "site": site_names[site_codes[order][starts]] if groups else [],
        "doc_id": doc_names[doc_codes[order][starts]] if groups else [],
        "n_items": lengths,
    }
    valid = np.arange(width)[None, :] < lengths[:, None]
    dense = {r: _dense_ranks(scores[r], valid) for r in names}  # (ranks, tied pairs) per ranking
    average = {r: rankdata(scores[r], axis=1, nan_policy="omit") for r in names}  # NaN on padding
    columns: dict[str, np.ndarray] = {}
    for a, b in pairs:
        key = pair_key(a, b)
        columns[f"tau:{key}"] = _tau_b(*dense[a], *dense[b], lengths, valid)
        columns[f"spearman:{key}"] = _pearson(average[a], average[b], valid)
        for k in TOP_KS:
            columns[f"top{k}:{key}"] = top_k_overlap(ranks[a], ranks[b], lengths, k)
    return pd.DataFrame({**out, **columns})


def kendall_tau_b(x: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row's first ``lengths[r]`` entries of ``x`` and ``y``.

    Args:
        x, y: ``(rows, n)`` float scores; entries at or beyond ``lengths[r]`` are ignored.
        lengths: ``(rows,)`` int, the real entries per row.

    Returns:
        ``(rows,)`` float64: ``(n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2))`` (``n_1``, ``n_2``: pairs
        tied in x, in y); NaN for rows with fewer than two entries or constant x or y (as scipy).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    dense_x, ties_x = _dense_ranks(x, valid)
    dense_y, ties_y = _dense_ranks(y, valid)
    return _tau_b(dense_x, ties_x, dense_y, ties_y, lengths, valid)


def _tau_b(dense_x: np.ndarray, ties_x: np.ndarray, dense_y: np.ndarray, ties_y: np.ndarray,
           lengths: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """tau-b from dense ranks ``(rows, n)`` and tied-pair counts ``(rows,)`` (see
    :func:`_dense_ranks`), so that a ranking's ranks serve every pair it is in."""
    rows, width = dense_x.shape
    # sort each row by (x, y): an inversion of y is then exactly a discordant pair (pairs tied in x
    # come with y ascending, pairs tied in y are no inversion)
    joint = np.where(valid, dense_x * (width + 1) + dense_y, np.iinfo(np.int64).max)
    joint.sort(axis=1)
    same = np.zeros((rows, width), dtype=bool)
    same[:, 1:] = joint[:, 1:] == joint[:, :-1]
    ties_xy = _tied_pairs(same & valid)  # pairs tied in both x and y
    y_in_x_order = (joint % (width + 1))[valid]  # flat, row by row
    discordant = _count_inversions(y_in_x_order, np.repeat(np.arange(rows), lengths), rows,
                                   int(width).bit_length())
    n0 = lengths * (lengths - 1) / 2
    numerator = n0 - ties_x - ties_y + ties_xy - 2 * discordant
    denominator = np.sqrt((n0 - ties_x) * (n0 - ties_y))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = numerator / denominator
    return np.where(denominator > 0, np.clip(tau, -1.0, 1.0), np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row's first ``lengths[r]`` entries (average ranks; NaN where
    undefined: fewer than two entries or a constant row). Shapes as :func:`kendall_tau_b`."""
    valid = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]
    rank_x = rankdata(np.where(valid, x, np.nan), axis=1, nan_policy="omit")
    rank_y = rankdata(np.where(valid, y, np.nan), axis=1, nan_policy="omit")
    return _pearson(rank_x, rank_y, valid)


def _pearson(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row's valid entries of ``(rows, n)`` ``x`` and ``y`` (here
    average ranks); NaN for fewer than two entries or a constant row."""
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.where(valid, x - np.where(valid, x, 0).sum(axis=1, keepdims=True) / count[:, None], 0)
        cy = np.where(valid, y - np.where(valid, y, 0).sum(axis=1, keepdims=True) / count[:, None], 0)
        denominator = np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))
        rho = (cx * cy).sum(axis=1) / denominator
    # ranks are multiples of 0.5: a spread below rounding noise is a constant row
    return np.where((denominator > 1e-9) & (count >= 2), np.clip(rho, -1.0, 1.0), np.nan)


def top_k_overlap(rank_a: np.ndarray, rank_b: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    """``|top_k(a) ∩ top_k(b)| / k`` per row, ``k = min(k, n)``.

    Args:
        rank_a, rank_b: ``(rows, n)`` removal ranks (0 = first), ``inf`` on padding.
        lengths: ``(rows,)`` real items per row (rows with 0 items give NaN).
        k: the cut-off.
    """
    k_used = np.minimum(k, np.asarray(lengths))[:, None]
    both = ((rank_a < k_used) & (rank_b < k_used)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k_used[:, 0] > 0, both / k_used[:, 0], np.nan)


def summarize_agreement(table: pd.DataFrame) -> dict[str, Any]:
    """``by_site[site]["agreement"]`` from one site's :func:`agreement_table` rows.

    Per pair ``"a|b"``: ``median_tau, mean_tau, median_spearman, mean_top1, mean_top5`` over the
    documents where tau-b is defined (``n`` of them; the rest are ``n_undefined``).
    """
    pairs: dict[str, dict[str, Any]] = {}
    for column in [c for c in table.columns if c.startswith("tau:")]:
        key = column[len("tau:"):]
        # Series on the table's index (under the bootstrap: document positions, see
        # measures/reductions.py), reduced through the resample-aware helpers
        used = table[column].astype(np.float64).notna()
        rows = table[used]
        entry: dict[str, Any] = {
            "median_tau": median(rows[column].astype(np.float64)),
            "mean_tau": mean(rows[column].astype(np.float64)),
            "median_spearman": median(rows[f"spearman:{key}"].astype(np.float64)),
        }
        for k in TOP_KS:
            entry[f"mean_top{k}"] = mean(rows[f"top{k}:{key}"].astype(np.float64))
        entry["n"] = count(rows)
        entry["n_undefined"] = count(table[~used])
        pairs[key] = entry
    return {"pairs": pairs, "top_k": list(TOP_KS), "conventions": dict(CONVENTIONS)}


def _dense_ranks(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks (1 = smallest, exact equality = tie; 0 on invalid entries) of each row's valid
    entries, ``(rows, n)`` int64, and each row's tied pairs ``sum_t t (t - 1) / 2``, ``(rows,)``."""
    rows, width = values.shape
    keyed = np.where(valid, values, np.inf)
    order = np.argsort(keyed, axis=1, kind="stable")
    sorted_values = np.take_along_axis(keyed, order, axis=1)
    sorted_valid = np.take_along_axis(valid, order, axis=1)
    same = np.zeros((rows, width), dtype=bool)
    same[:, 1:] = sorted_values[:, 1:] == sorted_values[:, :-1]
    dense_sorted = np.where(sorted_valid, np.cumsum(~same, axis=1), 0)
    dense = np.empty_like(dense_sorted)
    np.put_along_axis(dense, order, dense_sorted, axis=1)
    return dense, _tied_pairs(same & sorted_valid)


def _tied_pairs(same_as_previous: np.ndarray) -> np.ndarray:
    """``sum_t t (t - 1) / 2`` per row over runs of equal sorted values, from ``(rows, n)`` flags
    "equal to the previous entry": a run of ``t`` has ``t - 1`` flags, the j-th adding ``j`` pairs."""
    run_position = np.zeros(same_as_previous.shape, dtype=np.int64)  # j for the j-th repeat
    for column in range(1, same_as_previous.shape[1]):
        run_position[:, column] = np.where(same_as_previous[:, column],
                                           run_position[:, column - 1] + 1, 0)
    return run_position.sum(axis=1).astype(np.float64)


def _count_inversions(values: np.ndarray, row_of: np.ndarray, rows: int, bits: int) -> np.ndarray:
    """Per row, the pairs ``j < i`` with ``values[j] > values[i]`` of a flat sequence of rows.

    Args:
        values: ``(N,)`` non-negative ints below ``2 ** bits``, the rows' sequences one after another.
        row_of: ``(N,)`` each entry's row, non-decreasing.
        rows: the number of rows.
        bits: the values' bit width.

    Most significant bit first: entries sharing the higher bits form a group (in sequence order);
    in it, a 0-bit entry after a 1-bit entry is one inversion, and pairs differing only in lower
    bits are counted after a stable partition of each group (0s first). Each of the ``bits`` passes
    is a few vectorised operations over all ``N`` entries: ``O(N bits)``, no per-row loop.
    """
    n = len(values)  # int32 throughout: half the memory traffic of int64 (N < 2**31)
    index = np.arange(n, dtype=np.int32)
    per_row = np.bincount(row_of, minlength=rows)
    row_start = np.concatenate([[0], np.cumsum(per_row)[:-1]]).astype(np.int32)
    group_start = row_start[row_of]
    group_end = (group_start + per_row[row_of]).astype(np.int32)
    sequence = np.asarray(values, dtype=np.int32).copy()
    counted = np.zeros(n, dtype=np.int32)  # entries move only inside their row: sum by position
    ones = np.zeros(n + 1, dtype=np.int32)
    moved, start, end = np.empty_like(sequence), np.empty_like(group_start), np.empty_like(group_end)
    for level in reversed(range(bits)):
        bit = (sequence >> level) & 1
        np.cumsum(bit, out=ones[1:])
        ones_before = ones[:-1] - ones[group_start]  # 1s earlier in the entry's group
        is_one = bit.astype(bool)
        counted += ones_before * (1 - bit)  # each earlier 1 before a 0: one inversion
        split = group_end - (ones[group_end] - ones[group_start])  # where the group's 1s go
        new_position = index - ones_before  # a 0 moves left past the group's earlier 1s
        np.copyto(new_position, split + ones_before, where=is_one)
        moved[new_position] = sequence
        start[new_position] = np.where(is_one, split, group_start)
        end[new_position] = np.where(is_one, group_end, split)
        sequence, moved = moved, sequence
        group_start, start = start, group_start
        group_end, end = end, group_end
    return np.bincount(row_of, weights=counted, minlength=rows)


def _ranks_from_scores(scores: np.ndarray) -> np.ndarray:
    """Removal ranks from scores (highest first, ties by position), ``inf`` on padding (NaN)."""
    keyed = np.where(np.isnan(scores), np.inf, -scores)
    order = np.argsort(keyed, axis=1, kind="stable")
    ranks = np.empty_like(scores)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1], dtype=np.float64)[None, :]
                      .repeat(len(scores), axis=0), axis=1)
    return np.where(np.isnan(scores), np.inf, ranks)


__all__ = [
    "CONVENTIONS",
    "STATISTICS",
    "TOP_KS",
    "agreement_table",
    "kendall_tau_b",
    "pair_key",
    "ranking_pairs",
    "scored_rankings",
    "spearman_rho",
    "summarize_agreement",
    "top_k_overlap",
]
