"""``eraser``: comprehensiveness and sufficiency (DeYoung et al., ACL 2020) and their AOPC.

For a ranking ``r`` of a document's ``n`` items and a fraction ``q`` of them, ``k = ceil(q n)``::

    comp(q) = p_ŷ(x) - p_ŷ(x \\ r[:k])      (remove the top k: a faithful ranking makes this large)
    suff(q) = p_ŷ(x) - p_ŷ(x_{r[:k]})      (keep only the top k: a faithful ranking makes this small)

read from the ``remove`` and ``keep`` curves at step ``k`` (through :meth:`CurveArrays.column_of`:
on a step schedule, column ``k`` is not step ``k``), at the ERASER bins ``B = {1, 5, 10, 20, 50}%``.

AOPC, two conventions (both in ``removal.parquet`` and ``summary.json``, named in ``conventions``):

* The ERASER paper (DeYoung et al. 2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models",
  ACL, section 4.2, "Faithfulness", eqs. for comprehensiveness and sufficiency with soft scores)
  writes the aggregate as an area over the perturbation curve with a ``1 / (|B| + 1)`` factor over
  ``k = 0..|B|``: a ``k = 0`` term is included. We read the ``k = 0`` bin as 0% of the items: for
  comprehensiveness it removes nothing and contributes 0; for sufficiency it keeps nothing and
  contributes ``p_ŷ(x) - p_ŷ(x_∅)``. These are ``aopc_comprehensiveness`` and
  ``aopc_sufficiency`` (= ``(|B| * mean over bins + zero term) / (|B| + 1)``).
* ERASER's released scorer (``rationale_benchmark/metrics.py``, ``_instances_aopc``, github.com/
  jayded/eraserbenchmark) averages ``p_ŷ(x) - p_ŷ(...)`` over the ``|B|`` thresholds only: no
  ``k = 0`` term, a ``1 / |B|`` factor. The leaderboard's and most peers' numbers follow it. These
  are ``aopc_comprehensiveness_without_zero`` and ``aopc_sufficiency_without_zero``; for
  comprehensiveness the paper's value is exactly ``|B| / (|B| + 1) = 5/6`` of it.

The scorer's dataset value is the mean over documents (its ``np.average``, the same whichever order
one averages in); the summary gives that mean of every column beside the median.

Population: columns are computed for every document (``k = ceil(q n) >= 1`` always; a one-item
document has every bin at ``k = 1``, all of it). The summary, like every Test 2 summary, covers
documents with two or more items (``summarize`` receives those rows only; see ``population`` in
``results.summary.CONVENTIONS``). A bin whose step a schedule did not compute, and sufficiency
without ``keep`` curves, are NaN (left out of the means, counted in ``n_eraser``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from attnaudit.measures.base import CurveArrays, ReportColumn, at_step, quantile
from attnaudit.measures.reductions import count, mean

#: the ERASER bins, in percent of a document's items (integers: ``ceil`` is done exactly, see
#: :func:`eraser_step`)
ERASER_PERCENTS: tuple[int, ...] = (1, 5, 10, 20, 50)
#: the same bins as fractions (for figures and summary.json)
ERASER_FRACTIONS: tuple[float, ...] = tuple(p / 100 for p in ERASER_PERCENTS)

#: per-document column names, bin by bin: comp_01, comp_05, ..., suff_50
COMP_COLUMNS: tuple[str, ...] = tuple(f"comp_{p:02d}" for p in ERASER_PERCENTS)
SUFF_COLUMNS: tuple[str, ...] = tuple(f"suff_{p:02d}" for p in ERASER_PERCENTS)
#: the sufficiency of keeping nothing (the paper's ``k = 0`` term)
SUFF_ZERO_COLUMN = "suff_00"
AOPC_COLUMNS: tuple[str, ...] = (
    "aopc_comprehensiveness",
    "aopc_comprehensiveness_without_zero",
    "aopc_sufficiency",
    "aopc_sufficiency_without_zero",
)
ERASER_COLUMNS: tuple[str, ...] = COMP_COLUMNS + SUFF_COLUMNS + (SUFF_ZERO_COLUMN,) + AOPC_COLUMNS

ERASER_CONVENTIONS: dict[str, str] = {
    "eraser_bins": "Comprehensiveness comp(q) = p(x) - p(x without the top k items) and sufficiency "
                   "suff(q) = p(x) - p(only the top k items), p the probability of the model's own "
                   "prediction, at q = 1, 5, 10, 20, 50% with k = ceil(q n) (DeYoung et al. 2020); "
                   "higher comprehensiveness and lower sufficiency mean a more faithful ranking. "
                   "Summaries are means over documents (ERASER's) with medians beside them.",
    "aopc_comprehensiveness": "The ERASER paper's AOPC: 1/(|B|+1) times the sum over the |B| = 5 bins "
                              "and a k = 0 term (nothing removed: 0), i.e. 5/6 of the bins' mean.",
    "aopc_comprehensiveness_without_zero": "ERASER's released scorer: the mean over the 5 bins, "
                                           "no k = 0 term (the leaderboard's numbers).",
    "aopc_sufficiency": "The ERASER paper's AOPC: 1/(|B|+1) times the sum over the 5 bins and a "
                        "k = 0 term (nothing kept: p(x) - p(empty document), column suff_00).",
    "aopc_sufficiency_without_zero": "ERASER's released scorer: the mean over the 5 bins, no k = 0 "
                                     "term.",
}


def eraser_step(lengths: np.ndarray, percent: int | np.ndarray) -> np.ndarray:
    """``(B,)`` int: ``k = ceil(percent / 100 * n)`` items for ``n = lengths[b]`` (``percent`` an int,
    or an array broadcast against ``lengths``).

    Integer arithmetic: in floating point ``0.1 * 30`` is ``3.0000000000000004`` and its ceiling 4.
    """
    n = np.asarray(lengths, dtype=np.int64)
    return -((-percent * n) // 100)


def _aopc(bins: np.ndarray, zero_term: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(B, |B|)`` bin values -> (paper's AOPC with the ``k = 0`` term, scorer's mean over bins)."""
    count = bins.shape[1]
    with_zero = (bins.sum(axis=1) + zero_term) / (count + 1)
    return with_zero, bins.mean(axis=1)


class Eraser:
    """Comprehensiveness and sufficiency at the ERASER bins, and their AOPC (both conventions)."""

    name: ClassVar[str] = "eraser"
    label: ClassVar[str] = "comprehensiveness and sufficiency (ERASER)"
    needs: ClassVar[frozenset[str]] = frozenset({"remove", "keep", "probabilities"})
    report_columns: ClassVar[tuple[ReportColumn, ...]] = (
        ReportColumn("aopc_comprehensiveness", "AOPC comp. (paper)", "higher",
                     ("eraser_bins", "aopc_comprehensiveness"),
                     "Drop of p(ŷ) when the top-ranked items are erased, averaged over ERASER's "
                     "bins and a k = 0 term (1/(|B|+1), the ERASER paper's AOPC)", "number"),
        ReportColumn("aopc_sufficiency", "AOPC suff. (paper)", "lower",
                     ("eraser_bins", "aopc_sufficiency"),
                     "Drop of p(ŷ) when only the top-ranked items are kept, averaged over ERASER's "
                     "bins and a k = 0 term (1/(|B|+1), the ERASER paper's AOPC)", "number"),
        ReportColumn("aopc_comprehensiveness_without_zero", "AOPC comp. (scorer)", "higher",
                     ("eraser_bins", "aopc_comprehensiveness_without_zero"),
                     "Comprehensiveness averaged over the bins without the k = 0 term, as "
                     "ERASER's released scorer and most peers report it", "number"),
        ReportColumn("aopc_sufficiency_without_zero", "AOPC suff. (scorer)", "lower",
                     ("eraser_bins", "aopc_sufficiency_without_zero"),
                     "Sufficiency averaged over the bins without the k = 0 term, as ERASER's "
                     "released scorer and most peers report it", "number"),
    )
    conventions: ClassVar[dict[str, str]] = ERASER_CONVENTIONS

    def columns(self, curves: CurveArrays) -> dict[str, np.ndarray]:
        """``comp_PP``, ``suff_PP`` per bin, ``suff_00`` and the four ``aopc_*`` columns, each
        ``(B,)`` float64 (NaN where a step was not computed or the keep curves are missing)."""
        if curves.remove_prob is None:
            raise ValueError("the eraser measure needs p_ŷ along the curves (remove_prob is None)")
        base = np.asarray(curves.base_prob, dtype=np.float64)  # (B,)
        size = len(base)
        steps = np.stack([eraser_step(curves.lengths, p) for p in ERASER_PERCENTS], axis=1)  # (B, 5)
        comp = np.stack([base - at_step(curves, curves.remove_prob, steps[:, j])
                         for j in range(steps.shape[1])], axis=1)  # (B, 5)
        if curves.keep_prob is not None:
            suff = np.stack([base - at_step(curves, curves.keep_prob, steps[:, j])
                             for j in range(steps.shape[1])], axis=1)  # (B, 5)
            suff_zero = base - at_step(curves, curves.keep_prob, np.zeros(size, dtype=np.int64))
        else:  # curves without the keep kind: sufficiency is unknown, not 0
            suff = np.full_like(comp, np.nan)
            suff_zero = np.full(size, np.nan)
        comp_aopc, comp_mean = _aopc(comp, 0.0)
        suff_aopc, suff_mean = _aopc(suff, suff_zero)
        out = {name: comp[:, j] for j, name in enumerate(COMP_COLUMNS)}
        out.update({name: suff[:, j] for j, name in enumerate(SUFF_COLUMNS)})
        out[SUFF_ZERO_COLUMN] = suff_zero
        out.update(dict(zip(AOPC_COLUMNS, (comp_aopc, comp_mean, suff_aopc, suff_mean),
                            strict=True)))
        return out

    def summarize(self, rows: pd.DataFrame) -> dict[str, Any]:
        """Mean (key = column name) and median (``median_`` + column name) of every column over the
        documents where it is known; ``n_eraser`` documents; the bins; the conventions."""
        out: dict[str, Any] = {"n_eraser": count(rows), "eraser_fractions": list(ERASER_FRACTIONS)}
        for name in ERASER_COLUMNS:
            values = (pd.Series(rows[name], dtype=np.float64).dropna() if name in rows.columns
                      else pd.Series(dtype=np.float64))
            out[name] = mean(values)
            out[f"median_{name}"] = quantile(values, 0.5)
        out["conventions"] = dict(ERASER_CONVENTIONS)
        return out
