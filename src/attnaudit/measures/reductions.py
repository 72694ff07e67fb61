"""Reductions over documents that the bootstrap evaluates on every resample at once.

Every number of a summary is a reduction of per-document values: a share, a mean, a quantile, a
count. Called normally these helpers return a float (or an int; None when there is nothing to
reduce), exactly as the plain pandas/numpy expression they replace. Inside :func:`resampling`, which
the bootstrap sets (:mod:`attnaudit.results.bootstrap`) with a ``(R, N)`` matrix of per-document
draw counts, a helper called with a pandas Series (or frame) whose index is the document position
``0..N-1`` of each row returns an ``(R,)`` float64 array: the same statistic on every resample,
each row of a document drawn ``c`` times counted ``c`` times. A summary built from these helpers
therefore yields all resamples' values of every leaf in one call.

Rules for summary code (so that the resampled values equal the recomputed ones):

* pass Series that keep the rows' index (filter, ``dropna``, boolean operations keep it; wrap a
  numpy result as ``pd.Series(values, index=rows.index)``);
* join rows of one document through :func:`document_keys`, not the ``doc_id`` column;
* count with :func:`count` / :func:`n_documents`, not ``len`` / ``nunique``, and do not convert a
  helper's result with ``int``/``float``.

A helper that cannot tie its input to documents under resampling (a bare numpy array) returns its
plain value wrapped as :class:`Unresampled`; the bootstrap recomputes such leaves resample by
resample instead (and it checks every leaf against a recomputation on a few resamples anyway).

Torch-free (numpy and pandas).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: a reduction's value: a number (None for "nothing to reduce"), or ``(R,)`` float64 under resampling
Reduced = float | np.ndarray | None
Counted = int | np.ndarray


class Unresampled(float):
    """A plain value computed under :func:`resampling` from data not tied to documents: the
    bootstrap recomputes the leaf that holds it on every resample."""


@dataclass(frozen=True)
class Resampling:
    """Per-document draw counts of ``R`` resamples of ``N`` documents.

    Attributes:
        counts: ``(R, N)`` float64, how often resample ``r`` drew document position ``n``.
        small_counts: the same as int32 (half the memory traffic of the quantiles' cumulative sums).
    """

    counts: np.ndarray
    small_counts: np.ndarray

    @property
    def n_docs(self) -> int:
        return int(self.counts.shape[1])

    def totals(self, positions: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """``(R,)`` sum over rows of ``values`` (1 without) times the row's document's draw count.

        Args:
            positions: ``(n,)`` int, each row's document position (repeats allowed).
            values: ``(n,)`` float, or None for counting rows.
        """
        # rows -> documents first (bincount), then one matrix-vector product for all resamples
        per_doc = np.bincount(positions, weights=values, minlength=self.n_docs)
        return self.counts @ per_doc

    def quantile(self, positions: np.ndarray, values: np.ndarray, q: float) -> np.ndarray:
        """``(R,)`` the ``q``-quantile of each resample's expanded multiset of ``values`` (every row
        repeated by its document's draw count), numpy's default linear rule (pandas' too); NaN for
        a resample with no rows.

        Sorted values and cumulative counts: the ``j``-th smallest expanded value is the first
        sorted value whose cumulative count exceeds ``j``.
        """
        order = np.argsort(values, kind="stable")
        ordered = values[order]  # (n,)
        cumulative = np.cumsum(self.small_counts[:, positions[order]], axis=1,
                               dtype=np.int32)  # (R, n)
        size = cumulative[:, -1].astype(np.float64)  # (R,) expanded multiset sizes
        virtual = (size - 1) * q  # numpy's "linear" virtual index
        previous = np.floor(virtual)
        gamma = virtual - previous
        previous = np.clip(previous, 0, np.maximum(size - 1, 0))
        following = np.minimum(previous + 1, np.maximum(size - 1, 0))
        last = len(ordered) - 1

        def value_at(index: np.ndarray) -> np.ndarray:
            # the index-th expanded value: the first sorted value whose cumulative count exceeds it
            bound = index.astype(np.int32)[:, None]
            return ordered[np.minimum(np.count_nonzero(cumulative <= bound, axis=1), last)]

        low, high = value_at(previous), value_at(following)
        # numpy's _lerp, so that a resample equal to a recomputed one gives the same bits
        difference = high - low
        out = low + difference * gamma
        np.subtract(high, difference * (1 - gamma), out=out, where=gamma >= 0.5)
        return np.where(size > 0, out, np.nan)


_ACTIVE: ContextVar[Resampling | None] = ContextVar("attnaudit_resampling", default=None)


@contextmanager
def resampling(counts: np.ndarray) -> Iterator[Resampling]:
    """Make the helpers return every resample's value: ``counts`` ``(R, N)`` draws per document."""
    token = _ACTIVE.set(Resampling(np.asarray(counts, dtype=np.float64),
                                   np.asarray(counts, dtype=np.int32)))
    try:
        yield _ACTIVE.get()  # type: ignore[misc]  # set just above
    finally:
        _ACTIVE.reset(token)


def active() -> Resampling | None:
    """The resampling in force (None outside :func:`resampling`)."""
    return _ACTIVE.get()


def _positions(values: object) -> np.ndarray | None:
    """Document positions of the rows of a Series/frame (its integer index); None if untied."""
    if isinstance(values, (pd.Series, pd.DataFrame)) and pd.api.types.is_integer_dtype(
            values.index.dtype):
        return values.index.to_numpy(dtype=np.int64)
    return None


def _where_rows(totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 0, totals / weights, np.nan)


def share(mask: pd.Series | np.ndarray) -> Reduced:
    """Mean of a boolean series; None when empty (JSON null: "no documents")."""
    values = np.asarray(mask, dtype=bool)
    if not values.size:
        return None
    plain = float(values.mean())
    state, positions = active(), _positions(mask)
    if state is None:
        return plain
    if positions is None:
        return Unresampled(plain)
    return _where_rows(state.totals(positions, values.astype(np.float64)),
                       state.totals(positions))


def mean(values: pd.Series | np.ndarray) -> Reduced:
    """Mean of the non-NaN values (a Series' ``mean()``, an array's ``np.mean``); None when empty."""
    if isinstance(values, pd.Series):
        clean = _float_series(values)
        plain = float(clean.mean()) if len(clean) else None
    else:
        array = np.asarray(values, dtype=np.float64)
        array = array[~np.isnan(array)]
        plain = float(np.mean(array)) if array.size else None
    state = active()
    if state is None or plain is None:
        return plain
    positions = _positions(values)
    if positions is None:
        return Unresampled(plain)
    assert isinstance(values, pd.Series)  # tied to documents: a Series
    kept = clean.index.to_numpy(dtype=np.int64)
    return _where_rows(state.totals(kept, clean.to_numpy()), state.totals(kept))


def _float_series(values: pd.Series | np.ndarray) -> pd.Series:
    """The non-NaN values as float64; a Series keeps its index (the rows' documents)."""
    series = (values.astype(np.float64) if isinstance(values, pd.Series)
              else pd.Series(np.asarray(values, dtype=np.float64)))
    return series.dropna()


def quantile(values: pd.Series | np.ndarray | None, q: float) -> Reduced:
    """``q``-quantile (linear interpolation, pandas' default) of the non-NaN values; None when empty
    (or when ``values`` is None: a column that is absent)."""
    if values is None:
        return None
    series = _float_series(values)
    if not len(series):
        return None
    state = active()
    if state is None:
        return float(series.quantile(q))
    if _positions(values) is None:
        return Unresampled(float(series.quantile(q)))
    return state.quantile(series.index.to_numpy(dtype=np.int64), series.to_numpy(), q)


def median(values: pd.Series | np.ndarray) -> Reduced:
    """``np.median`` of the non-NaN values (the midpoint of the middle two: may differ from
    :func:`quantile` at 0.5 in the last bit); None when empty."""
    array = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(array)
    if not keep.any():
        return None
    plain = float(np.median(array[keep]))
    state = active()
    if state is None:
        return plain
    if _positions(values) is None:
        return Unresampled(plain)
    return state.quantile(_positions(values)[keep], array[keep], 0.5)  # type: ignore[index]


def maximum(values: pd.Series | np.ndarray | None) -> Reduced:
    """Largest non-NaN value; None when empty. It is the quantile at 1: linear interpolation at the
    last index takes the largest value exactly, plain or resampled."""
    return quantile(values, 1.0)


def count(rows: pd.DataFrame | pd.Series) -> Counted:
    """Number of rows (``len``); under resampling each row counted as often as its document was
    drawn."""
    state, positions = active(), _positions(rows)
    if state is None:
        return len(rows)
    if positions is None:
        return Unresampled(len(rows))  # type: ignore[return-value]
    return state.totals(positions)


def n_documents(rows: pd.DataFrame) -> Counted:
    """Distinct documents among ``rows`` (``doc_id``'s ``nunique``); under resampling, a document
    drawn twice counts twice (as the resampled tables relabel each draw)."""
    state, positions = active(), _positions(rows)
    if state is None:
        return int(rows["doc_id"].nunique())
    if positions is None:
        return Unresampled(rows["doc_id"].nunique())  # type: ignore[return-value]
    present = np.zeros(state.n_docs)
    present[positions] = 1.0
    return state.counts @ present


def document_keys(rows: pd.DataFrame) -> pd.Index:
    """The key that joins rows of one document across tables or rankings: ``doc_id`` as text;
    under resampling the rows' document positions (so a joined result stays tied to documents)."""
    if active() is not None and _positions(rows) is not None:
        return rows.index
    return pd.Index(rows["doc_id"].astype(str))


def nonzero_or(value: Counted, fallback: Counted) -> Counted:
    """``value`` where it is not 0, else ``fallback`` (elementwise under resampling)."""
    if isinstance(value, np.ndarray) or isinstance(fallback, np.ndarray):
        return np.where(np.asarray(value) != 0, value, fallback)
    return value if value else fallback


def largest(*values: Counted) -> Counted:
    """The largest of ``values`` (elementwise under resampling); 0 when none."""
    if any(isinstance(v, np.ndarray) for v in values):
        return np.maximum.reduce([np.asarray(v, dtype=np.float64) for v in values])
    return max(values, default=0)


__all__ = [
    "Counted",
    "Reduced",
    "Resampling",
    "Unresampled",
    "active",
    "count",
    "document_keys",
    "largest",
    "maximum",
    "mean",
    "median",
    "n_documents",
    "nonzero_or",
    "quantile",
    "resampling",
    "share",
]
