"""attnaudit.results.agreement: tau-b, Spearman and top-k overlap between rankings, per document.

The vectorised tau-b and rho are held to scipy on random tied integer scores; top-k overlap and a
small tau-b are computed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau, spearmanr

from attnaudit.results.agreement import (
    agreement_table,
    kendall_tau_b,
    spearman_rho,
    summarize_agreement,
    top_k_overlap,
)


def _items(docs: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """items.parquet rows of one site: doc_id -> ranking -> scores; ranks highest first, ties by
    position (as the audit orders them)."""
    rows = []
    for doc_id, scores in docs.items():
        ranks = {r: np.argsort(np.argsort(-np.asarray(s), kind="stable"), kind="stable")
                 for r, s in scores.items()}
        n = len(next(iter(scores.values())))
        for i in range(n):
            row: dict[str, object] = {"model": "m", "site": "token", "doc_id": doc_id, "item": i,
                                      "text": f"w{i}", "weight": 0.1}
            for r, s in scores.items():
                row[f"score_{r}"] = s[i]
                row[f"rank_{r}"] = int(ranks[r][i])
            rows.append(row)
    return pd.DataFrame(rows)


@st.composite
def _tied_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = draw(st.integers(1, 6))
    width = draw(st.integers(1, 12))
    levels = draw(st.integers(1, 5))  # few distinct values: many ties
    cells = st.lists(st.integers(0, levels), min_size=rows * width, max_size=rows * width)
    x = np.array(draw(cells), dtype=np.float64).reshape(rows, width)
    y = np.array(draw(cells), dtype=np.float64).reshape(rows, width)
    lengths = np.array(draw(st.lists(st.integers(0, width), min_size=rows, max_size=rows)))
    return x, y, lengths


@settings(max_examples=200, deadline=None)
@given(_tied_rows())
def test_tau_b_and_spearman_equal_scipy_on_tied_scores(case: tuple[np.ndarray, ...]) -> None:
    x, y, lengths = case
    tau = kendall_tau_b(x, y, lengths)
    rho = spearman_rho(x, y, lengths)
    for r, n in enumerate(lengths):
        a, b = x[r, :n], y[r, :n]
        defined = n >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0
        if not defined:
            assert math.isnan(tau[r]) and math.isnan(rho[r])
            continue
        assert tau[r] == pytest.approx(kendalltau(a, b, variant="b").statistic, abs=1e-12)
        assert rho[r] == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_tau_b_by_hand() -> None:
    # x = (1, 2, 2, 3), y = (1, 3, 2, 2): pairs (01) C, (02) C, (03) C, (12) tied x, (13) D,
    # (23) tied y. n_c = 3, n_d = 1, n0 = 6, n1 = n2 = 1: tau_b = 2 / sqrt(5 * 5) = 0.4
    tau = kendall_tau_b(np.array([[1.0, 2, 2, 3]]), np.array([[1.0, 3, 2, 2]]), np.array([4]))
    assert tau[0] == pytest.approx(0.4)
    # a reversed order is -1, padding beyond the length is ignored
    tau = kendall_tau_b(np.array([[1.0, 2, 3, 9]]), np.array([[3.0, 2, 1, 9]]), np.array([3]))
    assert tau[0] == pytest.approx(-1.0)


def test_top_k_overlap_by_hand() -> None:
    # ranks (0 = first): a orders items 0,1,2,3,4,5; b orders 1,0,5,4,3,2
    rank_a = np.array([[0.0, 1, 2, 3, 4, 5]])
    rank_b = np.array([[1.0, 0, 5, 4, 3, 2]])
    assert top_k_overlap(rank_a, rank_b, np.array([6]), 1)[0] == 0.0  # {0} vs {1}
    assert top_k_overlap(rank_a, rank_b, np.array([6]), 2)[0] == 1.0  # {0,1} vs {1,0}
    # top-5: {0, 1, 2, 3, 4} vs {1, 0, 5, 4, 3}: four shared
    assert top_k_overlap(rank_a, rank_b, np.array([6]), 5)[0] == pytest.approx(4 / 5)
    # a document with fewer than k items uses k = n: 3 items, top-5 = all of them
    three = np.array([[0.0, 1, 2, np.inf, np.inf, np.inf]])
    reversed_three = np.array([[2.0, 1, 0, np.inf, np.inf, np.inf]])
    assert top_k_overlap(three, reversed_three, np.array([3]), 5)[0] == 1.0
    assert top_k_overlap(three, reversed_three, np.array([3]), 1)[0] == 0.0


def test_agreement_table_and_summary_by_hand() -> None:
    items = _items({
        "d1": {"attention": [0.5, 0.3, 0.2], "gradient": [0.1, 0.9, 0.0]},  # swap of the top two
        "d2": {"attention": [0.4, 0.4, 0.2], "gradient": [0.3, 0.2, 0.1]},  # a tie in attention
        "d3": {"attention": [1.0], "gradient": [2.0]},  # one item: undefined
        "d4": {"attention": [0.5, 0.5], "gradient": [0.7, 0.1]},  # constant attention: undefined
    })
    table = agreement_table(items, ["attention", "gradient"])
    assert list(table["doc_id"]) == ["d1", "d2", "d3", "d4"]
    assert list(table["n_items"]) == [3, 3, 1, 2]
    key = "attention|gradient"
    # d1: pairs (01) D, (02) C, (12) C: tau = 1/3; d2: (01) tied x, (02) C, (12) C: 2/sqrt(2*3)
    assert table[f"tau:{key}"].iloc[0] == pytest.approx(1 / 3)
    assert table[f"tau:{key}"].iloc[1] == pytest.approx(2 / math.sqrt(6))
    assert np.isnan(table[f"tau:{key}"].iloc[2]) and np.isnan(table[f"tau:{key}"].iloc[3])
    assert list(table[f"top1:{key}"].iloc[:2]) == [0.0, 1.0]  # d2: both put item 0 first
    assert table[f"top5:{key}"].iloc[0] == 1.0  # 3 items: k = 3, same set
    summary = summarize_agreement(table)["pairs"][key]
    assert summary["n"] == 2 and summary["n_undefined"] == 2
    assert summary["mean_tau"] == pytest.approx((1 / 3 + 2 / math.sqrt(6)) / 2)
    assert summary["median_tau"] == pytest.approx((1 / 3 + 2 / math.sqrt(6)) / 2)
    assert summary["mean_top1"] == pytest.approx(0.5)
    rho_d1 = spearmanr([0.5, 0.3, 0.2], [0.1, 0.9, 0.0]).statistic
    rho_d2 = spearmanr([0.4, 0.4, 0.2], [0.3, 0.2, 0.1]).statistic
    assert summary["median_spearman"] == pytest.approx((rho_d1 + rho_d2) / 2)


def test_table_independent_of_row_order_and_pairs_in_ranking_order() -> None:
    rng = np.random.default_rng(0)
    docs = {f"d{i}": {r: list(rng.integers(0, 4, size=int(rng.integers(1, 9))).astype(float))
                      for r in ("random",)} for i in range(30)}
    for doc in docs.values():
        n = len(doc["random"])
        doc["attention"] = list(rng.random(n))
        doc["gradient"] = list(rng.integers(0, 3, size=n).astype(float))
    items = _items(docs)
    order = ["random", "attention", "gradient"]
    table = agreement_table(items, order)
    shuffled = agreement_table(items.sample(frac=1.0, random_state=1), order)
    pd.testing.assert_frame_equal(table, shuffled)
    assert [c for c in table.columns if c.startswith("tau:")] == [
        "tau:random|attention", "tau:random|gradient", "tau:attention|gradient"]
