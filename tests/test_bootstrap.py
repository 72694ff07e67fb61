"""attnaudit.results.bootstrap: percentile intervals over documents, held to a slow reference loop.

The reference draws each resample with ``numpy.random.default_rng(...).integers`` one at a time and
computes a share and a median with plain numpy; the summary's intervals and paired differences must
equal it exactly (same seed, same indices, same quantile rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from report_fixtures import RANKINGS_META, write_model

from attnaudit.results.bootstrap import (
    DocumentResampler,
    bootstrap_seed,
    bootstrap_statistic,
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
