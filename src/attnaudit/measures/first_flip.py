"""``first_flip``: Test 2 of the paper, with its censoring made visible.

Per document: remove ranked items one at a time (most important first) until the decision changes;
record how many items were removed at the first flip, the fraction of the document's items that is,
and the attention mass removed (sum of the removed items' original weights). A document whose decision
never flips, even with every item removed, is *censored*: it needs "more than everything".

Conventions (named in summary.json and on every figure):

* ``median_fraction``: the paper's median over documents that flip (never-flipped documents left out);
* ``median_fraction_censored``: the median over all documents, a never-flipped document counted as
  needing ``n + 1`` of its ``n`` items (fraction ``(n + 1) / n``, i.e. above 1);
* ``flip_curve``: share of ALL documents flipped after removing at most a fraction ``f`` of items
  (never-flipped documents stay in the denominator);
* ``cannot_flip``: removing every item leaves the unmodified prediction (at a pooling site the head's
  bias alone), so the end of every ranking's curve is no flip: a ranking flips such a document only
  part way, if at all. Every never-flipped document is one of them, so this share bounds how much of
  "never flips" says anything about the ranking.

Curves computed on a step schedule (:attr:`CurveArrays.steps`: the input-level curves, and the
attention-level ones under ``attention_steps="eraser"``; ``removal.parquet``'s ``erasure_steps``
names it per row): the first flip is the first *scheduled* step whose decision differs, so it is
known to the schedule's resolution only (with ``"eraser"`` steps, within 5% of the items: the true
first flip lies after the previous scheduled step, at or before this one); the fraction is still
``k / n`` and the mass the original weights of the first ``k`` ranked items. With every step computed
(``erasure_steps == "every"``, the attention-level default) it is exact.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from attnaudit.measures.base import CurveArrays, ReportColumn, quantile, share
from attnaudit.measures.reductions import count

#: the fractions of removed items at which the flip curve is read: 0, 5%, ..., 100%
FLIP_CURVE_FRACTIONS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))


def first_flip_steps(curves: CurveArrays) -> np.ndarray:
    """``(B,)`` int: smallest computed step ``k`` in ``1..n_b`` whose decision differs from ``ŷ``,
    -1 if none (with a step schedule, the first *scheduled* step that flips)."""
    grid = curves.step_grid()  # (B, K): the step of each curve column
    valid = (grid >= 1) & (grid <= np.asarray(curves.lengths)[:, None])  # (B, K)
    flipped = (curves.remove_pred != np.asarray(curves.predicted)[:, None]) & valid  # (B, K)
    rows = np.arange(len(grid))
    first = np.where(flipped.any(axis=1), grid[rows, flipped.argmax(axis=1)], -1)
    return first.astype(np.int64)


class FirstFlip:
    """Items, fraction and attention mass removed at the first decision flip (the paper's Test 2)."""

    name: ClassVar[str] = "first_flip"
    label: ClassVar[str] = "removed until the decision flips"
    needs: ClassVar[frozenset[str]] = frozenset({"remove"})
    report_columns: ClassVar[tuple[ReportColumn, ...]] = (
        # "attention_steps": the summary's sentence on a step schedule (absent, so not shown, when
        # every step was computed), which makes these first flips upper bounds
        ReportColumn("median_fraction_censored", "Median fraction to flip (censored)", "lower",
                     ("median_fraction_censored", "attention_steps"),
                     "Median fraction of items removed at the first flip over all documents, a "
                     "never-flipped document counted as n + 1 of n", "censored"),
        ReportColumn("share_never_flipped", "Never flips", "lower", ("cannot_flip", "attention_steps"),
                     "Share of documents whose decision survives removing every item"),
    )

    def columns(self, curves: CurveArrays) -> dict[str, np.ndarray]:
        """``removed_at_flip`` (NaN if never), ``fraction_removed``, ``mass_removed`` (NaN if never),
        ``never_flipped`` and ``cannot_flip`` (bool), each ``(B,)``."""
        first = first_flip_steps(curves)
        never = first < 0
        rows = np.arange(len(first))
        mass_so_far = np.cumsum(curves.ranked_weights.astype(np.float64), axis=1)  # (B, n)
        mass = np.where(never, np.nan, mass_so_far[rows, np.maximum(first, 1) - 1])
        removed = np.where(never, np.nan, first.astype(np.float64))
        # prediction with nothing left (the column of step n: every schedule ends there)
        all_removed = curves.remove_pred[rows, curves.column_of(curves.lengths)]
        return {
            "removed_at_flip": removed,
            "fraction_removed": removed / curves.lengths,
            "mass_removed": mass,
            "never_flipped": never,
            "cannot_flip": all_removed == curves.predicted,
        }

    def summarize(self, rows: pd.DataFrame) -> dict[str, Any]:
        """Medians (flipped-only and censored), quartiles, never/cannot-flip shares, the flip curve."""
        # Series on the rows' index: under the bootstrap it ties each row to its document
        never = pd.Series(rows["never_flipped"].to_numpy(dtype=bool), index=rows.index)
        flipped = rows[~never.to_numpy()]
        n_items = rows["n_items"].to_numpy(dtype=np.float64)
        censored = pd.Series(
            np.where(never, (n_items + 1) / n_items, rows["fraction_removed"].to_numpy(np.float64)),
            index=rows.index)
        fraction = rows["fraction_removed"].to_numpy(dtype=np.float64)
        curve = [
            share(~never & (fraction <= f + 1e-12)) for f in FLIP_CURVE_FRACTIONS
        ]
        return {
            "n": count(rows),
            "median_fraction": quantile(flipped["fraction_removed"], 0.5),
            "q1_fraction": quantile(flipped["fraction_removed"], 0.25),
            "q3_fraction": quantile(flipped["fraction_removed"], 0.75),
            "median_fraction_censored": quantile(censored, 0.5),
            "median_mass": quantile(flipped["mass_removed"], 0.5),
            "share_never_flipped": share(never),
            "share_cannot_flip": share(pd.Series(rows["cannot_flip"].to_numpy(dtype=bool),
                                                 index=rows.index)),
            "flip_curve": curve,
        }
