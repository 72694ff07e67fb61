"""Percentile-bootstrap intervals over documents for every number of a site's summary.

One resample draws the site's ``N`` documents ``N`` times with replacement; every table row of a
drawn document comes along (its Test 1 row, its row per ranking, its agreement row), so all rankings
are resampled jointly and a difference between two rankings is paired. The summary is recomputed on
each resampled set of tables by the very function that computed the reported numbers (passed in as
``statistic``), so an interval always belongs to the number beside it, and a measure or summary
added later gets intervals with no edit here.

Two ways to get the resamples' values, equal up to float rounding (:func:`bootstrap_statistic`):
``"recompute"``, the reference, calls the statistic on each resampled set of tables (generic and
slow: ~0.1 s per resample of a 2,000-document site); ``"vectorised"``, the default, calls it once
under :func:`attnaudit.measures.reductions.resampling`, where every share, mean, quantile and count
the summaries take through those helpers comes back as an ``(R,)`` array of its value on every
resample (weighted by each document's draw count), checks every leaf against the reference on a few
resamples and recomputes per resample only the leaves that fail or were not vectorised. A summary
built from the helpers (all of the audit's, and a measure added later that uses them) gets its
intervals in one pass; one that reduces otherwise still gets correct, slower, intervals.

Torch-free (numpy and pandas). Determinism: documents are put in ``doc_id`` order before drawing, and
the draws come from ``(seed, purpose)`` alone, so intervals do not depend on the order of the rows.

Layout written into ``summary.json`` (see :func:`attnaudit.results.summary.summarize`)::

    by_site[site]["intervals"]: the site's summary tree, each numeric leaf replaced by [lo, hi]
        (a list of numbers by a list of [lo, hi]; None where the statistic has no value)
    by_site[site]["differences"][f"{a}-vs-{b}"][leaf]: {"estimate", "lo", "hi"} for the scalar
        numbers of removal[ranking]: every ranking a != "attention" against b = "attention", and
        every ranking against "random"
    by_site[site]["family"]: simultaneous (max-t) intervals of the verdict's comparisons
        (:func:`family_intervals`): {"method", "confidence", "critical_value", "members",
        "intervals": {f"attention-vs-{b}": {leaf: {"estimate", "lo", "hi", "se"}}}}
    "bootstrap": {"resamples", "confidence", "seed", "convention"}
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from attnaudit.measures.reductions import Unresampled, resampling

log = logging.getLogger(__name__)

Tables = Mapping[str, pd.DataFrame]
#: a site summary recomputed from that site's tables (the same function that made the estimate)
Statistic = Callable[[Tables], Mapping[str, Any]]
#: where a leaf sits in a summary tree: dict keys and list indices from the root
Path = tuple[str | int, ...]

#: reference rankings of the paired differences: every other ranking is compared with each
REFERENCES: tuple[str, ...] = ("attention", "random")
#: how :func:`bootstrap_statistic` computes the resamples' values (see there)
Method = Literal["vectorised", "recompute"]
#: resamples on which the vectorised values are checked against a recomputation
CHECKED_RESAMPLES = 2


def convention(resamples: int, confidence: float) -> str:
    """The sentence stored in summary.json beside the intervals."""
    return (f"Percentile bootstrap over documents: {resamples} resamples of each site's documents "
            "drawn with replacement (seeded), every table row of a drawn document moving with it, "
            "so rankings are resampled jointly and differences between rankings are paired; "
            f"[lo, hi] are the {(1 - confidence) / 2:.4g} and {(1 + confidence) / 2:.4g} quantiles "
            "of the recomputed statistic over the resamples where it has a value (None where it "
            "has none in any); counts (n ...) are resampled too.")


def resample_indices(n_docs: int, resamples: int, seed: int, purpose: str = "bootstrap"
                     ) -> np.ndarray:
    """``(resamples, n_docs)`` int64 positions drawn with replacement, fixed by ``(seed, purpose)``.

    Row ``r`` equals the ``r``-th of ``resamples`` successive ``rng.integers(0, n_docs, n_docs)`` calls
    of ``numpy.random.default_rng(bootstrap_seed(seed, purpose))`` (the reference test's loop).
    """
    rng = np.random.default_rng(bootstrap_seed(seed, purpose))
    return rng.integers(0, max(n_docs, 1), size=(resamples, n_docs))


def bootstrap_seed(seed: int, purpose: str) -> int:
    """A 64-bit seed fixed by ``(seed, purpose)`` alone (like ``utils.seeding.doc_rng``, torch-free)."""
    digest = hashlib.sha256(f"{seed}\x00{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class DocumentResampler:
    """Tables whose rows belong to documents (a ``doc_id`` column), resampled by document.

    The documents are the union of the tables' ``doc_id`` values in sorted order (positions
    ``0..N-1``). :meth:`take` returns each table's rows of the drawn documents, the ``i``-th draw's
    rows relabelled ``doc_id = i`` (an int), so a document drawn twice counts as two documents in
    every per-document computation (``nunique``, ``drop_duplicates``, joins on ``doc_id``).
    """

    def __init__(self, tables: Tables) -> None:
        ids = [t["doc_id"].astype(str).to_numpy() for t in tables.values()]
        self.doc_ids: np.ndarray = np.unique(np.concatenate(ids)) if ids else np.array([], dtype=str)
        self._tables = {name: t.reset_index(drop=True) for name, t in tables.items()}
        # per table: its rows grouped by document position (CSR: row order, first row, row count)
        self._rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for name, doc in zip(self._tables, ids, strict=True):
            position = np.searchsorted(self.doc_ids, doc)
            order = np.argsort(position, kind="stable")
            counts = np.bincount(position, minlength=len(self.doc_ids))
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._rows[name] = (order, first, counts)

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    def positioned(self) -> dict[str, pd.DataFrame]:
        """The tables unchanged but for their index: each row's document position ``0..N-1`` (the
        rows' tie to documents that the resample-aware reductions read)."""
        out: dict[str, pd.DataFrame] = {}
        for name, table in self._tables.items():
            order, _, counts = self._rows[name]
            position = np.empty(len(table), dtype=np.int64)
            position[order] = np.repeat(np.arange(self.n_docs), counts)
            out[name] = table.set_axis(pd.Index(position, name="document"))
        return out

    def take(self, positions: np.ndarray) -> dict[str, pd.DataFrame]:
        """The tables restricted to the documents at ``positions`` ``(N',)``, in draw order."""
        out: dict[str, pd.DataFrame] = {}
        for name, table in self._tables.items():
            order, first, counts = self._rows[name]
            per_draw = counts[positions]
            draw = np.repeat(np.arange(len(positions)), per_draw)
            offset = np.arange(len(draw)) - np.repeat(np.cumsum(per_draw) - per_draw, per_draw)
            rows = order[np.repeat(first[positions], per_draw) + offset]
            frame = table.take(rows)
            frame.index = pd.RangeIndex(len(rows))
            frame["doc_id"] = draw
            out[name] = frame
        return out


@dataclass(frozen=True)
class BootstrapSamples:
    """A statistic's estimate and its value on every resample.

    Attributes:
        estimate: the summary tree on the original tables.
        paths: the numeric leaves (and None leaves) of ``estimate``, in tree order.
        samples: ``(resamples, len(paths))`` float64, NaN where a resample's leaf had no value.
        recomputed: the leaves the vectorised method could not compute in one pass and recomputed
            resample by resample (every leaf with ``method="recompute"``).
    """

    estimate: Mapping[str, Any]
    paths: list[Path]
    samples: np.ndarray
    recomputed: tuple[Path, ...] = ()

    def column(self, path: Path) -> np.ndarray:
        """``(resamples,)`` values of one leaf."""
        return self.samples[:, self.paths.index(path)]


def bootstrap_statistic(statistic: Statistic, tables: Tables, *, resamples: int, seed: int,
                        purpose: str = "bootstrap", estimate: Mapping[str, Any] | None = None,
                        method: Method = "vectorised") -> BootstrapSamples:
    """``statistic`` on ``resamples`` document resamples of ``tables``.

    Args:
        statistic: tables -> summary tree (nested dicts and lists; numbers, None, str, bool leaves).
        tables: name -> frame with a ``doc_id`` column (all of one site).
        resamples: how many resamples (rows of :func:`resample_indices`).
        seed, purpose: fix the draws.
        estimate: ``statistic(tables)`` when the caller has it already.
        method: ``"recompute"``, the reference: ``statistic`` called on each resampled set of tables
            (:meth:`DocumentResampler.take`), about 0.1 s per resample for a 2,000-document site.
            ``"vectorised"`` (default): ``statistic`` called once on the tables indexed by document
            position under :func:`attnaudit.measures.reductions.resampling` with the ``(R, N)``
            draw counts, so every reduction it makes through those helpers returns its value on all
            resamples at once. Each leaf is then checked against the reference on the first
            :data:`CHECKED_RESAMPLES` resamples; a leaf that does not match (a reduction made
            outside the helpers) or that a helper marked :class:`~attnaudit.measures.reductions.
            Unresampled` is recomputed resample by resample, so the result is the reference's
            either way (up to float rounding), only slower for such leaves.
    """
    estimate = statistic(tables) if estimate is None else estimate
    paths = numeric_paths(estimate)
    resampler = DocumentResampler(tables)
    indices = resample_indices(resampler.n_docs, resamples, seed, purpose)
    samples = np.full((resamples, len(paths)), np.nan)
    recompute = np.ones(len(paths), dtype=bool)  # leaves the reference loop must fill
    if method == "vectorised":
        with resampling(draw_counts(indices, resampler.n_docs)):
            tree = statistic(resampler.positioned())
        for j, path in enumerate(paths):
            value = _lookup(tree, path)
            if isinstance(value, Unresampled):
                continue
            if isinstance(value, np.ndarray) and value.shape == (resamples,):
                samples[:, j] = value
                recompute[j] = False
            elif value is None or _is_number(value):
                samples[:, j] = _number(value)  # a constant (or checked to be one below)
                recompute[j] = False
        for r in range(min(CHECKED_RESAMPLES, resamples)):
            row = _leaves(statistic(resampler.take(indices[r])), paths)
            recompute |= ~np.isclose(samples[r], row, rtol=1e-9, atol=1e-12, equal_nan=True)
            samples[r] = row
        if recompute.any():
            log.info("bootstrap: %d of %d leaves recomputed per resample (not vectorised): %s",
                     int(recompute.sum()), len(paths),
                     ", ".join("/".join(map(str, paths[j])) for j in np.flatnonzero(recompute)[:5]))
    elif method != "recompute":
        raise ValueError(f"unknown bootstrap method {method!r}")
    if recompute.any():
        first = min(CHECKED_RESAMPLES, resamples) if method == "vectorised" else 0
        for r in range(first, resamples):
            row = _leaves(statistic(resampler.take(indices[r])), paths)
            samples[r, recompute] = row[recompute]
    return BootstrapSamples(estimate, paths, samples,
                            tuple(paths[j] for j in np.flatnonzero(recompute)))


def draw_counts(indices: np.ndarray, n_docs: int) -> np.ndarray:
    """``(R, n_docs)`` float64: how often each resample (row of ``indices``, ``(R, N')`` positions)
    drew each document."""
    resamples = len(indices)
    flat = (indices + np.arange(resamples)[:, None] * n_docs).ravel()
    return np.bincount(flat, minlength=resamples * n_docs).reshape(resamples, n_docs).astype(
        np.float64)


def _leaves(tree: Any, paths: Sequence[Path]) -> np.ndarray:
    """``(len(paths),)`` float64 values of ``tree`` at ``paths`` (NaN where not a number)."""
    return np.array([_number(_lookup(tree, path)) for path in paths], dtype=np.float64)


def percentile_interval(values: np.ndarray, confidence: float) -> np.ndarray:
    """``(..., 2)`` percentile interval over axis 0 of ``values`` ``(resamples, ...)``, NaN ignored
    (all-NaN columns give NaN)."""
    alpha = (1.0 - confidence) / 2.0
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)  # (resamples, statistics)
    out = np.full((flat.shape[1], 2), np.nan)
    defined = ~np.isnan(flat).all(axis=0)
    if defined.any():
        out[defined] = np.nanquantile(flat[:, defined], [alpha, 1.0 - alpha], axis=0).T
    return out.reshape(*values.shape[1:], 2)


def intervals_tree(result: BootstrapSamples, confidence: float) -> Any:
    """``result.estimate`` with each numeric leaf replaced by ``[lo, hi]`` (None where undefined);
    strings and booleans left out, and containers left empty by that dropped."""
    bounds = percentile_interval(result.samples, confidence)
    by_path = {path: _pair(bounds[i]) for i, path in enumerate(result.paths)}
    tree = _mirror(result.estimate, (), by_path)
    return {} if tree is _DROP else tree


def paired_differences(result: BootstrapSamples, rankings: Sequence[str], confidence: float,
                       *, prefix: Path = ("removal",)) -> dict[str, dict[str, dict[str, Any]]]:
    """``{f"{a}-vs-{b}": {leaf: {"estimate", "lo", "hi"}}}`` over the scalar numbers of
    ``estimate[prefix][ranking]``, for every ranking against each of :data:`REFERENCES` present
    (both ``random-vs-attention`` and ``attention-vs-random``: one is the other negated).

    Both rankings' values come from the same resampled documents (one draw, all rankings), so the
    interval is of the paired difference.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for b in [r for r in REFERENCES if r in rankings]:
        for a in [r for r in rankings if r != b]:
            name = f"{a}-vs-{b}"
            leaves: dict[str, dict[str, Any]] = {}
            for path in result.paths:
                if len(path) != len(prefix) + 2 or path[:len(prefix) + 1] != (*prefix, a):
                    continue
                other = (*prefix, b, path[-1])
                if other not in result.paths:
                    continue
                estimate_a = _number(_lookup(result.estimate, path))
                estimate_b = _number(_lookup(result.estimate, other))
                lo, hi = percentile_interval(result.column(path) - result.column(other), confidence)
                leaves[str(path[-1])] = {"estimate": _none(estimate_a - estimate_b),
                                         "lo": _none(lo), "hi": _none(hi)}
            out[name] = leaves
    return out


#: the name of the multiplicity method, as summary.json and the report give it
MAX_T = ("max-t simultaneous bootstrap intervals: estimate ± c·se, se the bootstrap standard error of "
         "each difference and c the confidence quantile over resamples of max_j |d*_j - d_j| / se_j "
         "over the family's comparisons, so all the family's intervals cover together with the "
         "stated probability (family-wise error control; Romano & Wolf 2005, Hothorn et al. 2008)")


def simultaneous_intervals(estimates: np.ndarray, samples: np.ndarray, confidence: float
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Max-t simultaneous intervals for ``m`` statistics (the vectorised form of
    :func:`simultaneous_intervals_reference`).

    Args:
        estimates: ``(m,)`` the statistics on the original documents (NaN: undefined).
        samples: ``(R, m)`` their values on the resamples (NaN where a resample had none).
        confidence: the family-wise coverage.

    Returns:
        ``lo``, ``hi``, ``se`` (each ``(m,)``) and the critical value ``c``. ``se`` is the
        bootstrap standard deviation (ddof 1) over the resamples where the statistic is defined; a
        statistic with ``se == 0`` (the same on every resample) gets the point interval
        ``[estimate, estimate]`` and takes no part in the maximum; an undefined one (NaN estimate,
        or under two defined resamples) gets NaN bounds. ``c`` is the ``confidence`` quantile
        (numpy's default linear rule) of ``max_j |samples[r, j] - estimates[j]| / se[j]`` over the
        resamples, NaN terms skipped; ``c = 0`` when no statistic varies.
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, len(estimates))
    defined = np.isfinite(samples)
    counts = defined.sum(axis=0)
    usable = np.isfinite(estimates) & (counts >= 2)
    se = np.full(len(estimates), np.nan)
    if usable.any():
        se[usable] = np.nanstd(samples[:, usable], axis=0, ddof=1)
    varies = usable & (se > 0)
    critical = 0.0
    if varies.any():
        t = np.abs(samples[:, varies] - estimates[varies]) / se[varies]  # (R, m')
        t = np.where(np.isfinite(t), t, -np.inf)
        largest = t.max(axis=1)
        largest = largest[np.isfinite(largest)]
        if len(largest):
            critical = float(np.quantile(largest, confidence))
    half = np.where(varies, critical * np.nan_to_num(se), 0.0)
    lo = np.where(usable, estimates - half, np.nan)
    hi = np.where(usable, estimates + half, np.nan)
    return lo, hi, se, critical


def simultaneous_intervals_reference(estimates: Sequence[float], samples: Sequence[Sequence[float]],
                                     confidence: float
                                     ) -> tuple[list[float], list[float], list[float], float]:
    """The slow, obviously correct form of :func:`simultaneous_intervals`: plain loops over
    resamples and statistics (tests hold the vectorised one to it)."""
    m, rows = len(estimates), [list(map(float, row)) for row in samples]
    se: list[float] = []
    for j in range(m):
        column = [row[j] for row in rows if math.isfinite(row[j])]
        if not math.isfinite(float(estimates[j])) or len(column) < 2:
            se.append(math.nan)
            continue
        mean_ = sum(column) / len(column)
        se.append(math.sqrt(sum((x - mean_) ** 2 for x in column) / (len(column) - 1)))
    largest = []
    for row in rows:
        terms = [abs(row[j] - estimates[j]) / se[j] for j in range(m)
                 if math.isfinite(se[j]) and se[j] > 0 and math.isfinite(row[j])]
        if terms:
            largest.append(max(terms))
    critical = float(np.quantile(largest, confidence)) if largest else 0.0
    lo, hi = [], []
    for j in range(m):
        if not math.isfinite(se[j]):
            lo.append(math.nan)
            hi.append(math.nan)
        else:
            half = critical * se[j] if se[j] > 0 else 0.0
            lo.append(float(estimates[j]) - half)
            hi.append(float(estimates[j]) + half)
    return lo, hi, se, critical


def family_intervals(result: BootstrapSamples, rankings: Sequence[str], leaves: Sequence[str],
                     confidence: float, *, reference: str = "attention",
                     prefix: Path = ("removal",)) -> dict[str, Any]:
    """Simultaneous max-t intervals (:func:`simultaneous_intervals`) of the paired differences
    ``reference - b`` for every other ranking ``b`` and every leaf in ``leaves``: one family per
    site, the verdict's comparisons. Pairs or leaves the summary lacks are left out of the family
    (and named nowhere): ``members`` lists exactly the comparisons whose errors are controlled."""
    members: list[tuple[str, str]] = []
    columns: list[np.ndarray] = []
    estimates: list[float] = []
    for b in [r for r in rankings if r != reference]:
        for leaf in leaves:
            a_path, b_path = (*prefix, reference, leaf), (*prefix, b, leaf)
            if a_path not in result.paths or b_path not in result.paths:
                continue
            estimate = (_number(_lookup(result.estimate, a_path))
                        - _number(_lookup(result.estimate, b_path)))
            if not np.isfinite(estimate):
                continue
            members.append((b, leaf))
            columns.append(result.column(a_path) - result.column(b_path))
            estimates.append(estimate)
    out: dict[str, Any] = {"method": MAX_T, "confidence": confidence, "critical_value": None,
                           "members": [f"{reference}-vs-{b}/{leaf}" for b, leaf in members],
                           "intervals": {}}
    if not members:
        return out
    lo, hi, se, critical = simultaneous_intervals(np.array(estimates), np.stack(columns, axis=1),
                                                  confidence)
    out["critical_value"] = critical
    for j, (b, leaf) in enumerate(members):
        out["intervals"].setdefault(f"{reference}-vs-{b}", {})[leaf] = {
            "estimate": estimates[j], "lo": _none(lo[j]), "hi": _none(hi[j]), "se": _none(se[j])}
    return out


def numeric_paths(tree: Any, prefix: Path = ()) -> list[Path]:
    """Paths of the leaves of ``tree`` that are numbers (not booleans) or None, in tree order."""
    if isinstance(tree, Mapping):
        return [p for key, value in tree.items() for p in numeric_paths(value, (*prefix, str(key)))]
    if isinstance(tree, (list, tuple)):
        return [p for i, value in enumerate(tree) for p in numeric_paths(value, (*prefix, i))]
    return [prefix] if tree is None or _is_number(tree) else []


def _mirror(tree: Any, prefix: Path, by_path: Mapping[Path, Any]) -> Any:
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            mirrored = _mirror(value, (*prefix, str(key)), by_path)
            if mirrored is not _DROP:
                out[str(key)] = mirrored
        return out if out else _DROP
    if isinstance(tree, (list, tuple)):
        items = [_mirror(value, (*prefix, i), by_path) for i, value in enumerate(tree)]
        if all(x is _DROP for x in items):
            return _DROP
        return [None if x is _DROP else x for x in items]  # positions kept: entry i is item i's
    return by_path.get(prefix, _DROP)


_DROP = object()  # marks a leaf without an interval (a string or a boolean)


def _lookup(tree: Any, path: Path) -> Any:
    for key in path:
        try:
            tree = tree[key]
        except (KeyError, IndexError, TypeError):
            return None
    return tree


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else np.nan


def _none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _pair(bounds: np.ndarray) -> list[float] | None:
    return None if np.isnan(bounds).any() else [float(bounds[0]), float(bounds[1])]


__all__ = [
    "REFERENCES",
    "BootstrapSamples",
    "DocumentResampler",
    "bootstrap_seed",
    "bootstrap_statistic",
    "convention",
    "draw_counts",
    "family_intervals",
    "intervals_tree",
    "numeric_paths",
    "paired_differences",
    "percentile_interval",
    "resample_indices",
    "simultaneous_intervals",
    "simultaneous_intervals_reference",
]
