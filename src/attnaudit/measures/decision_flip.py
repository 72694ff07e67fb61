"""``decision_flip``: Chrysostomou & Aletras's decision-flip measures, mapped onto the paper's tests.

Chrysostomou and Aletras (2021, "Improving the Faithfulness of Attention-based Explanations with
Task-specific Information for Text Classification", ACL) report two decision-flip measures, both taken
from Serrano and Smith (2019); here they are functions of a ranking's ``remove`` curve:

* **"most informative token"** flip rate: the share of documents whose decision changes when the
  ranking's top item alone is erased (step ``k = 1``). Per document: ``flip_top`` (1.0 / 0.0; NaN
  when a step schedule did not compute step 1). This is **Test 1** restricted to one removal: for the
  attention ranking the top item is the largest weight ``i*``, so ``flip_top`` equals Test 1's
  ``flip_max`` (up to ties between equal weights; tested through the audit), and for any other
  ranking it equals Test 1's ``flip_<ranking>``.
* **"fraction of tokens"** to flip: ``(first k that flips) / n``, **Test 2**'s ``fraction_removed``.
  A document that never flips has no such ``k``; both treatments are reported:
  ``mean_fraction_to_flip`` averages over the documents that flip (never-flipped left out, as C&A's
  mean over flips), ``mean_fraction_to_flip_censored`` counts a never-flipped document as needing
  ``n + 1`` of its ``n`` items (fraction ``(n + 1) / n``, the ``first_flip`` measure's censoring).
  C&A report means; the paper's medians of the same fractions are the ``first_flip`` measure's
  ``median_fraction`` and ``median_fraction_censored`` (not repeated here).

On a step schedule (the input-level curves, and the attention-level ones under
``attention_steps="eraser"``) the first flip is the first *computed* step whose decision differs
(:func:`attnaudit.measures.first_flip.first_flip_steps`, shared with Test 2): exact when every step
is computed, an upper bound otherwise. Step 1 is on every schedule, so ``flip_top`` stays exact. A
flip is always a change of the model's own prediction ``ŷ``. Population as for every Test 2 summary:
documents with two or more items (a one-item document's top item is all of it).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from attnaudit.measures.base import CurveArrays, ReportColumn, at_step, share
from attnaudit.measures.first_flip import first_flip_steps
from attnaudit.measures.reductions import mean

DECISION_FLIP_CONVENTIONS: dict[str, str] = {
    "flip_rate_top": "Chrysostomou & Aletras's 'most informative token' decision flip: share of "
                     "documents whose prediction changes when the ranking's top item alone is erased "
                     "(Test 1's flip rate for that item).",
    "mean_fraction_to_flip": "Chrysostomou & Aletras's 'fraction of tokens': mean of (first k that "
                             "flips) / n over the documents that flip (never-flipped left out).",
    "mean_fraction_to_flip_censored": "Mean of (first k that flips) / n over all documents, a "
                                      "never-flipped document counted as (n + 1) / n.",
}


class DecisionFlip:
    """Flip rate of the top item alone, and the fraction of items removed until the decision flips."""

    name: ClassVar[str] = "decision_flip"
    label: ClassVar[str] = "decision flips (Chrysostomou & Aletras)"
    needs: ClassVar[frozenset[str]] = frozenset({"remove"})
    report_columns: ClassVar[tuple[ReportColumn, ...]] = (
        ReportColumn("flip_rate_top", "Top item flips", "higher", ("flip_rate_top",),
                     "Share of documents whose decision flips when the top-ranked item alone is "
                     "erased (Chrysostomou & Aletras's most-informative-item flip rate)"),
        ReportColumn("mean_fraction_to_flip_censored", "Mean fraction to flip (censored)", "lower",
                     ("mean_fraction_to_flip_censored", "attention_steps"),
                     "Chrysostomou & Aletras's fraction of items to flip, averaged over all "
                     "documents, a never-flipped document counted as (n + 1) / n", "censored"),
    )
    conventions: ClassVar[dict[str, str]] = DECISION_FLIP_CONVENTIONS

    def columns(self, curves: CurveArrays) -> dict[str, np.ndarray]:
        """``flip_top`` (float 1.0/0.0, NaN if step 1 was not computed), ``fraction_to_flip`` (NaN if
        never) and ``fraction_to_flip_censored`` (``(n + 1) / n`` if never), each ``(B,)``."""
        lengths = np.asarray(curves.lengths, dtype=np.float64)
        size = len(lengths)
        top = at_step(curves, curves.remove_pred, np.ones(size, dtype=np.int64))  # (B,) float
        flip_top = np.where(np.isnan(top), np.nan,
                            (top != np.asarray(curves.predicted)).astype(np.float64))
        first = first_flip_steps(curves)
        never = first < 0
        fraction = np.where(never, np.nan, first / lengths)
        return {
            "flip_top": flip_top,
            "fraction_to_flip": fraction,
            "fraction_to_flip_censored": np.where(never, (lengths + 1) / lengths, fraction),
        }

    def summarize(self, rows: pd.DataFrame) -> dict[str, Any]:
        """``flip_rate_top`` and the mean fraction to flip (flipped only, and censored)."""
        def known(column: str) -> pd.Series:
            # tables written before this measure was registered lack its columns: no data (None)
            if column not in rows.columns:
                return pd.Series(dtype=np.float64)
            return pd.Series(rows[column], dtype=np.float64).dropna()

        top, fraction = known("flip_top"), known("fraction_to_flip")
        censored = known("fraction_to_flip_censored")
        return {
            "flip_rate_top": share(top == 1.0),
            "mean_fraction_to_flip": mean(fraction),
            "mean_fraction_to_flip_censored": mean(censored),
            "conventions": dict(DECISION_FLIP_CONVENTIONS),
        }
