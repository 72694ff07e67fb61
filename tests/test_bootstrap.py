"""attnaudit.results.bootstrap: percentile intervals over documents, held to a slow reference loop.

The reference draws each resample with ``numpy.random.default_rng(...).integers`` one at a time and
computes a share and a median with plain numpy; the summary's intervals and paired differences must
equal it exactly (same seed, same indices, same quantile rule).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_fixtures import RANKINGS_META, write_model

from attnaudit.measures import reductions
from attnaudit.results.bootstrap import (
    DocumentResampler,
    bootstrap_seed,
    bootstrap_statistic,
    draw_counts,
    intervals_tree,
    numeric_paths,
    paired_differences,
    resample_indices,
)
from attnaudit.results.summary import summarize

RESAMPLES = 25  # few: each resample recomputes the whole site summary
SEED = 11
CONFIDENCE = 0.9


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    folder = write_model(tmp_path_factory.mktemp("bootstrap") / "flan-rnn", "flan-rnn", n_docs=40)
    return {name: pd.read_parquet(folder / "audit" / f"{name}.parquet")
            for name in ("single_weight", "removal", "items")}


@pytest.fixture(scope="module")
def summary(audit: dict[str, pd.DataFrame]) -> dict[str, Any]:
    return summarize(audit["single_weight"], audit["removal"], model="flan-rnn",
                     rankings_meta=RANKINGS_META, sites_meta={}, items=audit["items"],
                     bootstrap=RESAMPLES, confidence=CONFIDENCE, seed=SEED)


def _reference(removal: pd.DataFrame, ranking: str) -> tuple[np.ndarray, np.ndarray]:
    """Slow loop: per resample, the ranking's share of never-flipped documents and its median
    censored fraction over the drawn multi-item documents."""
    doc_ids = np.unique(removal["doc_id"].astype(str))
    rows = removal[removal["ranking"] == ranking].set_index("doc_id").loc[doc_ids]
    multi = ~rows["single_item"].to_numpy(dtype=bool)
    never = rows["never_flipped"].to_numpy(dtype=bool)
    n = rows["n_items"].to_numpy(dtype=float)
    censored = np.where(never, (n + 1) / n, rows["fraction_removed"].to_numpy(dtype=float))
    rng = np.random.default_rng(bootstrap_seed(SEED, "bootstrap"))
    shares, medians = [], []
    for _ in range(RESAMPLES):
        drawn = rng.integers(0, len(doc_ids), size=len(doc_ids))
        drawn = drawn[multi[drawn]]
        shares.append(never[drawn].mean())
        medians.append(np.median(censored[drawn]))
    return np.array(shares), np.array(medians)


def _quantiles(values: np.ndarray) -> list[float]:
    alpha = (1 - CONFIDENCE) / 2
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]


def test_share_and_median_intervals_equal_the_slow_loop(audit: dict[str, pd.DataFrame],
                                                        summary: dict[str, Any]) -> None:
    intervals = summary["by_site"]["token"]["intervals"]["removal"]["attention"]
    shares, medians = _reference(audit["removal"], "attention")
    assert intervals["share_never_flipped"] == pytest.approx(_quantiles(shares), abs=1e-12)
    assert intervals["median_fraction_censored"] == pytest.approx(_quantiles(medians), abs=1e-12)
    assert intervals["share_never_flipped"][0] < intervals["share_never_flipped"][1]  # not degenerate


def test_paired_difference_uses_the_same_documents(audit: dict[str, pd.DataFrame],
                                                   summary: dict[str, Any]) -> None:
    site = summary["by_site"]["token"]
    gradient, _ = _reference(audit["removal"], "gradient")
    attention, _ = _reference(audit["removal"], "attention")
    difference = site["differences"]["gradient-vs-attention"]["share_never_flipped"]
    estimate = (site["removal"]["gradient"]["share_never_flipped"]
                - site["removal"]["attention"]["share_never_flipped"])
    assert difference["estimate"] == pytest.approx(estimate)
    assert [difference["lo"], difference["hi"]] == pytest.approx(
        _quantiles(gradient - attention), abs=1e-12)
    # paired: narrower than pairing each ranking with independent draws would make it
    assert set(site["differences"]) == {
        "random-vs-attention", "gradient-vs-attention", "attention_x_gradient-vs-attention",
        "attention-vs-random", "gradient-vs-random", "attention_x_gradient-vs-random"}


def test_intervals_mirror_the_summary(summary: dict[str, Any]) -> None:
    site = summary["by_site"]["token"]
    intervals = site["intervals"]
    assert "conventions" not in intervals  # sentences have no interval
    curve = intervals["removal"]["attention"]["flip_curve"]
    assert len(curve) == len(site["removal"]["attention"]["flip_curve"])
    assert all(lo <= hi for lo, hi in curve)
    pair = intervals["agreement"]["pairs"]["attention|gradient"]["median_tau"]
    estimate = site["agreement"]["pairs"]["attention|gradient"]["median_tau"]
    assert pair[0] <= estimate <= pair[1]
    assert intervals["single_weight"]["flip_rate"]["max"][0] <= site["single_weight"][
        "flip_rate"]["max"] <= intervals["single_weight"]["flip_rate"]["max"][1]
    assert summary["bootstrap"]["resamples"] == RESAMPLES
    assert summary["bootstrap"]["confidence"] == CONFIDENCE
    assert summary["bootstrap"]["seed"] == SEED


def test_independent_of_row_order_and_off_when_zero(audit: dict[str, pd.DataFrame],
                                                    summary: dict[str, Any]) -> None:
    shuffled = {k: v.sample(frac=1.0, random_state=3) for k, v in audit.items()}
    again = summarize(shuffled["single_weight"], shuffled["removal"], model="flan-rnn",
                      rankings_meta=RANKINGS_META, sites_meta={}, items=shuffled["items"],
                      bootstrap=RESAMPLES, confidence=CONFIDENCE, seed=SEED)
    first, second = (x["by_site"]["token"]["intervals"] for x in (summary, again))
    paths = numeric_paths(first)
    assert paths == numeric_paths(second) and len(paths) > 50
    # equal up to float summation order (a document's rows may come in another order)
    np.testing.assert_allclose([_value(first, p) for p in paths], [_value(second, p) for p in paths],
                               rtol=1e-12, atol=1e-12)
    off = summarize(audit["single_weight"], audit["removal"], model="flan-rnn",
                    rankings_meta=RANKINGS_META, sites_meta={})
    assert "bootstrap" not in off and "intervals" not in off["by_site"]["token"]


def _value(tree: Any, path: tuple[str | int, ...]) -> float:
    for key in path:
        tree = tree[key]
    return np.nan if tree is None else float(tree)


def test_generic_statistic_and_resampler_relabel_documents() -> None:
    # a statistic the bootstrap knows nothing about: lists, strings, booleans, None
    table = pd.DataFrame({"doc_id": ["b", "a", "a", "c"], "value": [1.0, 2.0, 3.0, 10.0]})

    def statistic(tables: Any) -> dict[str, Any]:
        t = tables["t"]
        return {"mean": t["value"].mean(), "docs": t["doc_id"].nunique(), "note": "x",
                "flag": True, "curve": [t["value"].min(), "label", t["value"].max()],
                "missing": None}

    taken = DocumentResampler({"t": table}).take(np.array([0, 0, 2]))["t"]  # a, a, c
    assert list(taken["doc_id"]) == [0, 0, 1, 1, 2] and list(taken["value"]) == [2, 3, 2, 3, 10]
    result = bootstrap_statistic(statistic, {"t": table}, resamples=30, seed=0)
    tree = intervals_tree(result, 0.95)
    assert set(tree) == {"mean", "docs", "curve", "missing"}
    assert tree["docs"] == [3.0, 3.0] and tree["missing"] is None
    assert tree["curve"][1] is None and len(tree["curve"]) == 3
    indices = resample_indices(3, 30, 0)
    assert indices.shape == (30, 3)
    np.testing.assert_array_equal(indices, resample_indices(3, 30, 0))
    assert paired_differences(result, ["a"], 0.95) == {}


# ----------------------------------------------------------------------------------------------
# The vectorised bootstrap (one pass under measures.reductions.resampling) against the reference
# (the site summary recomputed on every resampled set of tables)
# ----------------------------------------------------------------------------------------------

FALLBACK_LOG = "recomputed per resample"


class _Fallbacks(logging.Handler):
    """Collects the bootstrap's "leaves recomputed per resample" messages while installed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if FALLBACK_LOG in record.getMessage():
            self.messages.append(record.getMessage())

    def __enter__(self) -> _Fallbacks:
        logger = logging.getLogger("attnaudit.results.bootstrap")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("attnaudit.results.bootstrap")
        logger.removeHandler(self)
        logger.setLevel(self._level)


def _approx_tree(left: Any, right: Any) -> None:
    """Equal trees: same structure and strings, numbers equal up to float rounding."""
    assert type(left) is type(right) or {type(left), type(right)} <= {int, float}, (left, right)
    if isinstance(left, dict):
        assert list(left) == list(right)
        for key in left:
            _approx_tree(left[key], right[key])
    elif isinstance(left, list):
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            _approx_tree(a, b)
    elif isinstance(left, float):
        assert left == pytest.approx(right, rel=1e-9, abs=1e-12)
    else:
        assert left == right


AUDITS = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16), "n_docs": st.integers(2, 30),
    "name": st.sampled_from(["flan-rnn", "han-rnn"]),
    "input_erasure": st.sampled_from([None, "delete", "unk"]), "planted": st.booleans(),
    "degenerate": st.booleans(), "holes": st.floats(0.0, 0.5)})


@settings(max_examples=4, deadline=None)
@given(audit=AUDITS)
def test_vectorised_intervals_equal_the_recomputed_ones(audit: dict[str, Any]) -> None:
    _compare_methods(**audit, resamples=6)  # the reference costs ~0.15 s per resample and site


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(audit=AUDITS)
def test_vectorised_intervals_equal_the_recomputed_ones_many(audit: dict[str, Any]) -> None:
    _compare_methods(**audit, resamples=30)


def _compare_methods(*, seed: int, n_docs: int, name: str, input_erasure: str | None,
                     planted: bool, degenerate: bool, holes: float, resamples: int) -> None:
    """Random fixture tables (some rows dropped, some values NaN): both bootstrap methods give the
    same intervals and differences for every leaf of every site, and nothing falls back."""
    with tempfile.TemporaryDirectory() as folder:
        model = write_model(Path(folder) / name, name, seed=seed, n_docs=n_docs,
                            input_erasure=input_erasure, planted=planted, degenerate=degenerate)
        single, removal, items = (pd.read_parquet(model / "audit" / f"{table}.parquet")
                                  for table in ("single_weight", "removal", "items"))
    # holes: documents missing from Test 1's table, values the audit could not compute
    rng = np.random.default_rng(seed)
    single = single[rng.random(len(single)) >= holes / 2]
    for frame, columns in ((single, ("delta_js", "perm_median_tvd", "adv_jsd", "adv_tvd")),
                           (removal, ("comp_05", "fraction_to_flip", "mass_removed"))):
        for column in columns:
            frame.loc[rng.random(len(frame)) < holes, column] = np.nan
    with _Fallbacks() as fallbacks:
        summaries = {method: summarize(single, removal, model=name, rankings_meta=RANKINGS_META,
                                       sites_meta={}, items=items, planted=None,
                                       bootstrap=resamples,
                                       confidence=CONFIDENCE, seed=seed, bootstrap_method=method)
                     for method in ("recompute", "vectorised")}
    # every leaf of the audit's summaries vectorises: none fell back to the per-resample loop
    assert not fallbacks.messages
    reference, vectorised = (s["by_site"] for s in (summaries["recompute"],
                                                     summaries["vectorised"]))
    assert list(reference) == list(vectorised)
    for site in reference:
        assert numeric_paths(reference[site]["intervals"])  # something to compare
        _approx_tree(vectorised[site]["intervals"], reference[site]["intervals"])
        _approx_tree(vectorised[site]["differences"], reference[site]["differences"])


def test_vectorised_summary_of_the_audit_is_one_pass(audit: dict[str, pd.DataFrame]) -> None:
    with _Fallbacks() as fallbacks:
        summarize(audit["single_weight"], audit["removal"], model="flan-rnn",
                  rankings_meta=RANKINGS_META, sites_meta={}, items=audit["items"], bootstrap=5)
    assert not fallbacks.messages


def test_reductions_outside_the_helpers_fall_back_to_the_reference() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"doc_id": [f"d{i}" for i in rng.integers(0, 20, 60)],
                          "value": rng.normal(size=60)})

    def statistic(tables: Any) -> dict[str, Any]:
        rows = tables["t"]
        return {"helper": reductions.mean(rows["value"]),                  # vectorised
                "plain": float(rows["value"].to_numpy().mean()),          # bypasses the helpers
                "array": reductions.quantile(rows["value"].to_numpy(), 0.5),  # untied: Unresampled
                "constant": 0.25}

    with _Fallbacks() as fallbacks:
        fast = bootstrap_statistic(statistic, {"t": table}, resamples=40, seed=1)
    slow = bootstrap_statistic(statistic, {"t": table}, resamples=40, seed=1, method="recompute")
    assert set(fast.recomputed) == {("plain",), ("array",)}
    assert len(slow.recomputed) == 4
    np.testing.assert_allclose(fast.samples, slow.samples, rtol=1e-12, atol=1e-12)
    assert np.ptp(fast.column(("plain",))) > 0 and np.ptp(fast.column(("constant",))) == 0
    assert fallbacks.messages  # said, so that a slow new measure is noticed


# ----------------------------------------------------------------------------------------------
# The resample-aware reductions, by hand and against the expanded multisets
# ----------------------------------------------------------------------------------------------


def test_reductions_by_hand() -> None:
    # 3 documents; resample 0 draws (0, 0, 2), resample 1 draws (1, 1, 1)
    counts = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    # rows: doc 0 -> 1.0; doc 1 -> 5.0 and 7.0 (two rows); doc 2 -> 3.0
    values = pd.Series([1.0, 5.0, 7.0, 3.0], index=[0, 1, 1, 2])
    with reductions.resampling(counts):
        # resample 0: multiset {1, 1, 3}; resample 1: {5, 5, 5, 7, 7, 7}
        np.testing.assert_allclose(reductions.mean(values), [5 / 3, 6.0])
        np.testing.assert_allclose(reductions.share(values > 2), [1 / 3, 1.0])
        np.testing.assert_allclose(reductions.count(values), [3, 6])
        np.testing.assert_allclose(reductions.n_documents(values.to_frame("v")), [3, 3])
        # medians: {1, 1, 3} -> 1; {5, 5, 5, 7, 7, 7} -> (5 + 7) / 2
        np.testing.assert_allclose(reductions.quantile(values, 0.5), [1.0, 6.0])
        # quartile of {1, 1, 3}: index 0.5 -> 1; of six values: index 1.25 -> 5
        np.testing.assert_allclose(reductions.quantile(values, 0.25), [1.0, 5.0])
        np.testing.assert_allclose(reductions.maximum(values), [3.0, 7.0])
        # a subset no resample draws has no value
        assert np.isnan(reductions.mean(values[values.index == 0])[1])
        assert isinstance(reductions.share(np.array([True, False])), reductions.Unresampled)
    assert reductions.mean(values) == 4.0 and reductions.count(values) == 4  # plain outside
    assert reductions.quantile(values, 0.5) == 4.0 and reductions.share(values[:0] > 0) is None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), n_docs=st.integers(1, 12), n_rows=st.integers(1, 30),
       q=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.1, 0.9]), ties=st.booleans())
def test_reductions_equal_the_expanded_multiset(seed: int, n_docs: int, n_rows: int, q: float,
                                                ties: bool) -> None:
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, n_docs, n_rows)
    values = rng.integers(0, 4, n_rows).astype(float) if ties else rng.normal(size=n_rows)
    indices = resample_indices(n_docs, 7, seed)
    series = pd.Series(values, index=positions)
    with reductions.resampling(draw_counts(indices, n_docs)):
        fast = {"mean": reductions.mean(series), "share": reductions.share(series > 0.5),
                "quantile": reductions.quantile(series, q), "max": reductions.maximum(series),
                "median": reductions.median(series), "count": reductions.count(series)}
    for r, drawn in enumerate(indices):
        expanded = np.concatenate([values[positions == p] for p in drawn])
        if not expanded.size:
            assert np.isnan(fast["mean"][r]) and fast["count"][r] == 0
            continue
        expected = {"mean": expanded.mean(), "share": (expanded > 0.5).mean(),
                    "quantile": pd.Series(expanded).quantile(q), "max": expanded.max(),
                    "median": np.median(expanded), "count": expanded.size}
        for name, value in expected.items():
            assert fast[name][r] == pytest.approx(value, rel=1e-12, abs=1e-12), name
