"""The measure protocol: a function of erasure curves that gives per-document columns and a summary.

Measures are torch-free (numpy and pandas only) so that the results layer and the reports can use
their summaries without importing torch. The audit moves each batch's curves to the host once
(:class:`CurveArrays`) and hands them to every registered measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

# the reductions every summary goes through (resample-aware: see measures/reductions.py)
from attnaudit.measures.reductions import quantile as quantile
from attnaudit.measures.reductions import share as share

#: what a measure reads: ``remove`` (erase the first k ranked items) and/or ``keep`` (keep only the
#: first k ranked items) curves, and ``probabilities`` (p_ŷ along them, not only the predictions)
CurveKind = str


@dataclass(frozen=True)
class CurveArrays:
    """Erasure curves of one site and one ranking over ``B`` documents, on the host.

    ``n`` is the batch's padded item count; row ``b`` has ``lengths[b]`` real items and its entries
    beyond ``k = lengths[b]`` repeat ``k = lengths[b]`` (only padding is removed there).

    Attributes:
        lengths: ``(B,)`` int, real items per document.
        predicted: ``(B,)`` int, the unmodified model's prediction ``ŷ``.
        base_prob: ``(B,)`` float64, ``p_ŷ(x)``.
        ranked_weights: ``(B, n)`` float64, the site's original attention weights in removal order
            (0 on padding).
        remove_pred: ``(B, n + 1)`` int, prediction after removing the first ``k`` ranked items.
        remove_prob: ``(B, n + 1)`` float64, ``p_ŷ`` after removing the first ``k`` ranked items;
            None unless a selected measure declares ``"probabilities"`` in its ``needs``.
        keep_pred: ``(B, n + 1)`` int or None, prediction keeping only the first ``k`` ranked items.
        keep_prob: ``(B, n + 1)`` float64 or None, ``p_ŷ`` keeping only the first ``k`` items.
        steps: None when column ``k`` of every curve is step ``k`` (every step computed: the
            attention-level curves under the default ``attention_steps="every"``); else ``(B, K)``
            int, the number of removed (kept) items of each column, increasing along a row,
            starting at 0 and ending at ``lengths[b]``, padded by repeating ``lengths[b]`` (a step
            schedule: the input-level curves, and the attention-level ones under
            ``attention_steps="eraser"``; the curves then have ``K`` columns, not ``n + 1``).
    """

    lengths: np.ndarray
    predicted: np.ndarray
    base_prob: np.ndarray
    ranked_weights: np.ndarray
    remove_pred: np.ndarray
    remove_prob: np.ndarray | None
    keep_pred: np.ndarray | None = None
    keep_prob: np.ndarray | None = None
    steps: np.ndarray | None = None

    def step_grid(self) -> np.ndarray:
        """``(B, K)`` int: the step ``k`` of each curve column (``0..n`` on every row when every step
        was computed)."""
        if self.steps is not None:
            return self.steps
        columns = self.remove_pred.shape[1]
        return np.broadcast_to(np.arange(columns), (len(self.lengths), columns))

    def column_of(self, k: np.ndarray) -> np.ndarray:
        """``(B,)`` column index of step ``k[b]`` in row ``b``: the first computed step >= ``k[b]``
        (exactly ``k[b]`` when it was computed; every schedule holds the ERASER bins' steps)."""
        grid = self.step_grid()
        return (grid < np.asarray(k)[:, None]).sum(axis=1)


#: which way a number points: "higher" = a higher value means a more faithful ranking
Better = Literal["higher", "lower"]
#: how a value is printed: a share (percent), a censored fraction (percent; "never" past 100%), a
#: plain number (3 significant digits)
Kind = Literal["share", "censored", "number"]


@dataclass(frozen=True)
class ReportColumn:
    """A per-ranking summary number a measure puts in the report's faithfulness table.

    Attributes:
        leaf: the key in ``by_site[site]["removal"][ranking]`` (and its interval's key in
            ``by_site[site]["intervals"]["removal"][ranking]``).
        label: the column heading.
        better: ``"higher"`` when a higher value means a more faithful ranking, else ``"lower"``.
        conventions: the keys of ``by_site[site]["conventions"]`` that define the number.
        tip: the heading's hover text.
        kind: how the value is printed (:data:`Kind`).
    """

    leaf: str
    label: str
    better: Better
    conventions: tuple[str, ...]
    tip: str
    kind: Kind = "share"


@runtime_checkable
class Measure(Protocol):
    """A registered function of erasure curves.

    ``name`` is the registry key, ``label`` the display name, ``needs`` what it reads: ``"remove"``
    and/or ``"keep"`` curves, and ``"probabilities"`` for ``p_ŷ`` along them (the audit computes
    ``keep`` curves and probabilities only when a selected measure needs them).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    #: the summary numbers shown in the report's faithfulness table, in column order
    report_columns: ClassVar[tuple[ReportColumn, ...]]

    def columns(self, curves: CurveArrays) -> dict[str, np.ndarray]:
        """Per-document columns (each of length ``B``) added to ``removal.parquet``."""
        ...

    def summarize(self, rows: pd.DataFrame) -> dict[str, Any]:
        """Summary over ``removal.parquet`` rows of one site and one ranking (multi-item documents)."""
        ...


def at_step(curves: CurveArrays, values: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``(B,)`` float64: ``values[b]`` at step ``k[b]`` of row ``b``; NaN where that step was not
    computed (a step schedule without it, or ``k`` beyond the last column).

    Args:
        curves: the curves whose step grid locates the columns (:meth:`CurveArrays.column_of`).
        values: ``(B, K)`` a curve of ``curves`` (``remove_prob``, ``keep_pred``, ...).
        k: ``(B,)`` int, the step (items removed or kept) to read in each row.

    Never the nearest computed step instead: a measure defined at ``k`` is not approximated silently.
    """
    k = np.asarray(k, dtype=np.int64)
    grid = curves.step_grid()  # (B, K)
    rows = np.arange(len(k))
    column = np.minimum(curves.column_of(k), grid.shape[1] - 1)  # (B,)
    exact = grid[rows, column] == k
    return np.where(exact, np.asarray(values, dtype=np.float64)[rows, column], np.nan)
