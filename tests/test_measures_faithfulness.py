"""The ERASER and decision-flip measures: hand-computed curves, a step schedule, a per-document
reference on random curves (hypothesis), and the registered measures reaching the tables and
summary.json through a real audit of random models."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import LABELS, random_docs, random_model

from attnaudit.erasure.audit import audit_documents, rankings_meta, sites_meta
from attnaudit.erasure.engine import AuditPlan
from attnaudit.measures import (
    ERASER_FRACTIONS,
    MEASURES,
    CurveArrays,
    DecisionFlip,
    Eraser,
    Measure,
    at_step,
    eraser_step,
)
from attnaudit.measures.eraser import COMP_COLUMNS, ERASER_COLUMNS, SUFF_COLUMNS
from attnaudit.results.summary import summarize

PERCENTS = (1, 5, 10, 20, 50)


# ----------------------------------------------------------------------------------------------
# ERASER by hand
# ----------------------------------------------------------------------------------------------


def _eraser_curves() -> CurveArrays:
    """Three documents padded to n = 10 (11 columns; beyond n a row repeats its step n).

    - d0, n = 4: k = 1, 1, 1, 1, 2 for q = 1, 5, 10, 20, 50% (ceil: 0.8 -> 1);
      p = 0.9; removing k: 0.9, 0.6, 0.4, 0.3, 0.2; keeping k: 0.3, 0.5, 0.7, 0.8, 0.9.
    - d1, n = 10: k = 1, 1, 1, 2, 5; p = 0.8; removing k: 0.8 - 0.05 k; keeping k: 0.2 + 0.06 k.
    - d2, n = 3: k = 1, 1, 1, 1, 2 (ceil(0.03) = 1: floor would erase nothing);
      p = 0.5; removing k: 0.5, 0.1, 0.0, 0.0; keeping k: 0.1, 0.2, 0.3, 0.5.
    """
    def padded(values: list[float]) -> list[float]:
        return values + [values[-1]] * (11 - len(values))

    ks = np.arange(11)
    remove = np.array([padded([0.9, 0.6, 0.4, 0.3, 0.2]),
                       list(0.8 - 0.05 * ks),
                       padded([0.5, 0.1, 0.0, 0.0])])
    keep = np.array([padded([0.3, 0.5, 0.7, 0.8, 0.9]),
                     list(0.2 + 0.06 * ks),
                     padded([0.1, 0.2, 0.3, 0.5])])
    return CurveArrays(
        lengths=np.array([4, 10, 3]),
        predicted=np.array([0, 1, 2]),
        base_prob=np.array([0.9, 0.8, 0.5]),
        ranked_weights=np.zeros((3, 10)),
        remove_pred=np.zeros((3, 11), dtype=np.int64),
        remove_prob=remove,
        keep_pred=np.zeros((3, 11), dtype=np.int64),
        keep_prob=keep,
    )


#: the hand-computed columns of :func:`_eraser_curves`
EXPECTED_ERASER: dict[str, Any] = {
    "comp": [[0.3, 0.3, 0.3, 0.3, 0.5], [0.05, 0.05, 0.05, 0.1, 0.25], [0.4, 0.4, 0.4, 0.4, 0.5]],
    "suff": [[0.4, 0.4, 0.4, 0.4, 0.2], [0.54, 0.54, 0.54, 0.48, 0.3], [0.3, 0.3, 0.3, 0.3, 0.2]],
    "suff_00": [0.6, 0.6, 0.4],
    # the paper's 1/(|B|+1) with the k = 0 term; the released scorer's mean over the 5 bins
    "aopc_comprehensiveness": [1.7 / 6, 0.5 / 6, 2.1 / 6],
    "aopc_comprehensiveness_without_zero": [0.34, 0.1, 0.42],
    "aopc_sufficiency": [(0.6 + 1.8) / 6, (0.6 + 2.4) / 6, (0.4 + 1.4) / 6],
    "aopc_sufficiency_without_zero": [0.36, 0.48, 0.28],
}


def test_eraser_step_is_an_exact_ceiling() -> None:
    n = np.array([1, 3, 4, 10, 20, 30, 100, 101])
    assert eraser_step(n, 1).tolist() == [1, 1, 1, 1, 1, 1, 1, 2]
    assert eraser_step(n, 10).tolist() == [1, 1, 1, 1, 2, 3, 10, 11]  # 0.1 * 30 is 3.0000000000000004
    assert eraser_step(n, 50).tolist() == [1, 2, 2, 5, 10, 15, 50, 51]
    assert ERASER_FRACTIONS == (0.01, 0.05, 0.1, 0.2, 0.5)


def test_eraser_columns_by_hand() -> None:
    columns = Eraser().columns(_eraser_curves())
    assert set(columns) == set(ERASER_COLUMNS)
    for j, (comp, suff) in enumerate(zip(COMP_COLUMNS, SUFF_COLUMNS, strict=True)):
        np.testing.assert_allclose(columns[comp], [row[j] for row in EXPECTED_ERASER["comp"]])
        np.testing.assert_allclose(columns[suff], [row[j] for row in EXPECTED_ERASER["suff"]])
    for name in ("suff_00", "aopc_comprehensiveness", "aopc_comprehensiveness_without_zero",
                 "aopc_sufficiency", "aopc_sufficiency_without_zero"):
        np.testing.assert_allclose(columns[name], EXPECTED_ERASER[name], err_msg=name)


def test_eraser_summary_by_hand() -> None:
    measure = Eraser()
    rows = pd.DataFrame(measure.columns(_eraser_curves()))
    summary = measure.summarize(rows)
    assert summary["n_eraser"] == 3
    assert summary["comp_50"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    assert summary["median_comp_50"] == pytest.approx(0.5)
    assert summary["suff_20"] == pytest.approx((0.4 + 0.48 + 0.3) / 3)
    assert summary["median_suff_20"] == pytest.approx(0.4)
    assert summary["aopc_comprehensiveness"] == pytest.approx((1.7 + 0.5 + 2.1) / 18)
    assert summary["aopc_comprehensiveness_without_zero"] == pytest.approx((0.34 + 0.1 + 0.42) / 3)
    assert summary["median_aopc_comprehensiveness_without_zero"] == pytest.approx(0.34)
    assert summary["aopc_sufficiency"] == pytest.approx((2.4 + 3.0 + 1.8) / 18)
    assert summary["median_aopc_sufficiency"] == pytest.approx(0.4)
    assert summary["eraser_fractions"] == list(ERASER_FRACTIONS)
    assert {"aopc_comprehensiveness", "aopc_comprehensiveness_without_zero",
            "aopc_sufficiency", "aopc_sufficiency_without_zero"} <= set(summary["conventions"])
    empty = measure.summarize(rows.iloc[:0])
    assert empty["n_eraser"] == 0 and empty["comp_01"] is None and empty["median_comp_01"] is None


def _scheduled(curves: CurveArrays, steps: np.ndarray) -> CurveArrays:
    """``curves`` on the step schedule ``steps`` (B, K): column j of row b holds step steps[b, j]."""
    rows = np.arange(len(steps))[:, None]

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[rows, steps]

    return CurveArrays(
        lengths=curves.lengths, predicted=curves.predicted, base_prob=curves.base_prob,
        ranked_weights=curves.ranked_weights, remove_pred=pick(curves.remove_pred),  # type: ignore[arg-type]
        remove_prob=pick(curves.remove_prob), keep_pred=pick(curves.keep_pred),
        keep_prob=pick(curves.keep_prob), steps=steps,
    )


def test_eraser_on_a_step_schedule_reads_steps_not_columns() -> None:
    """The ERASER steps only: d1's step 5 is column 3, not 5; a missing step gives NaN."""
    full = _eraser_curves()
    steps = np.array([[0, 1, 2, 4, 4], [0, 1, 2, 5, 10], [0, 1, 2, 3, 3]])
    columns = Eraser().columns(_scheduled(full, steps))
    expected = Eraser().columns(full)
    for name in ERASER_COLUMNS:
        np.testing.assert_allclose(columns[name], expected[name], err_msg=name)
    # without step 2, d1's 20% bin (k = 2) is unknown: never read from a neighbouring step
    gappy = Eraser().columns(_scheduled(full, np.array([[0, 1, 2, 4, 4], [0, 1, 3, 5, 10],
                                                        [0, 1, 2, 3, 3]])))
    assert np.isnan(gappy["comp_20"][1]) and np.isnan(gappy["suff_20"][1])
    assert np.isnan(gappy["aopc_comprehensiveness"][1])
    assert gappy["comp_50"][1] == pytest.approx(0.25) and gappy["comp_20"][0] == pytest.approx(0.3)


def test_eraser_without_keep_curves_has_unknown_sufficiency() -> None:
    curves = _eraser_curves()
    no_keep = CurveArrays(lengths=curves.lengths, predicted=curves.predicted,
                          base_prob=curves.base_prob, ranked_weights=curves.ranked_weights,
                          remove_pred=curves.remove_pred, remove_prob=curves.remove_prob)
    columns = Eraser().columns(no_keep)
    assert np.isnan(columns["suff_05"]).all() and np.isnan(columns["aopc_sufficiency"]).all()
    np.testing.assert_allclose(columns["comp_05"], [0.3, 0.05, 0.4])
    with pytest.raises(ValueError, match="remove_prob"):
        Eraser().columns(CurveArrays(lengths=curves.lengths, predicted=curves.predicted,
                                     base_prob=curves.base_prob,
                                     ranked_weights=curves.ranked_weights,
                                     remove_pred=curves.remove_pred, remove_prob=None))


# ----------------------------------------------------------------------------------------------
# Decision flips by hand
# ----------------------------------------------------------------------------------------------


def _flip_curves() -> CurveArrays:
    """Five documents padded to n = 4.

    - d0: n = 4, predicts 0, flips at k = 1: flip_top, fraction 1/4;
    - d1: n = 4, predicts 1, flips at k = 3: fraction 3/4;
    - d2: n = 2, predicts 2, never flips: censored fraction 3/2;
    - d3: n = 4, predicts 0, differs only at k = 0 and beyond... never within 1..n: censored 5/4;
    - d4: n = 1, predicts 0, flips at k = 1 = n (a one-item document: kept in the columns).
    """
    return CurveArrays(
        lengths=np.array([4, 4, 2, 4, 1]),
        predicted=np.array([0, 1, 2, 0, 0]),
        base_prob=np.full(5, 0.9),
        ranked_weights=np.zeros((5, 4)),
        remove_pred=np.array([
            [0, 1, 1, 1, 1],
            [1, 1, 1, 0, 0],
            [2, 2, 2, 2, 2],
            [1, 0, 0, 0, 0],
            [0, 1, 1, 1, 1],
        ]),
        remove_prob=None,
    )


def test_decision_flip_columns_by_hand() -> None:
    columns = DecisionFlip().columns(_flip_curves())
    assert columns["flip_top"].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    np.testing.assert_allclose(columns["fraction_to_flip"], [0.25, 0.75, np.nan, np.nan, 1.0])
    np.testing.assert_allclose(columns["fraction_to_flip_censored"], [0.25, 0.75, 1.5, 1.25, 1.0])


def test_decision_flip_summary_by_hand() -> None:
    measure = DecisionFlip()
    rows = pd.DataFrame(measure.columns(_flip_curves())).iloc[:4]  # multi-item documents
    summary = measure.summarize(rows)
    assert summary["flip_rate_top"] == pytest.approx(0.25)
    assert summary["mean_fraction_to_flip"] == pytest.approx(0.5)
    assert summary["mean_fraction_to_flip_censored"] == pytest.approx((0.25 + 0.75 + 1.5 + 1.25) / 4)
    assert set(summary["conventions"]) == {"flip_rate_top", "mean_fraction_to_flip",
                                           "mean_fraction_to_flip_censored"}
    empty = measure.summarize(rows.iloc[:0])
    assert empty["flip_rate_top"] is None and empty["mean_fraction_to_flip"] is None
    # tables written before the measure was registered: no columns, no data
    old = pd.DataFrame({"n_items": [3, 4]})
    assert measure.summarize(old)["mean_fraction_to_flip_censored"] is None
    assert Eraser().summarize(old)["aopc_comprehensiveness"] is None


def test_decision_flip_on_a_step_schedule() -> None:
    """n = 10 on steps 0, 1, 2, 5, 10: the first computed flip is step 5 (column 3); without step 1
    the top item's flip is unknown (NaN), never read from step 2."""
    curves = CurveArrays(
        lengths=np.array([10, 10]), predicted=np.array([0, 0]), base_prob=np.full(2, 0.9),
        ranked_weights=np.zeros((2, 10)),
        remove_pred=np.array([[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]]), remove_prob=None,
        steps=np.array([[0, 1, 2, 5, 10], [0, 2, 4, 6, 10]]),
    )
    columns = DecisionFlip().columns(curves)
    assert columns["flip_top"][0] == 0.0 and np.isnan(columns["flip_top"][1])
    np.testing.assert_allclose(columns["fraction_to_flip"], [0.5, 0.2])


# ----------------------------------------------------------------------------------------------
# A per-document reference on random curves
# ----------------------------------------------------------------------------------------------


@st.composite
def random_curves(draw: st.DrawFn) -> CurveArrays:
    """Random curves of 1-6 documents of 1-12 items, every step or a random schedule."""
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    size, width = len(lengths), max(lengths) + 1
    scheduled = draw(st.booleans())
    if scheduled:  # each row: 0, a random subset of 1..n-1, n; padded by repeating n
        rows = [sorted({0, n, *rng.choice(np.arange(1, n), size=rng.integers(0, n),
                                          replace=False).tolist()}) if n > 1 else [0, 1]
                for n in lengths]
        width = max(len(r) for r in rows)
        steps: np.ndarray | None = np.array([r + [r[-1]] * (width - len(r)) for r in rows])
    else:
        steps = None
    # columns past a row's step n repeat its step n (only padding is removed there)
    last = (np.array([len(r) for r in rows]) if steps is not None else np.array(lengths) + 1) - 1
    source = np.minimum(np.arange(width)[None, :], last[:, None])  # (B, K)

    def curve(values: np.ndarray) -> np.ndarray:
        return np.take_along_axis(values, source, axis=1)

    return CurveArrays(
        lengths=np.array(lengths), predicted=rng.integers(0, 3, size),
        base_prob=rng.random(size), ranked_weights=np.zeros((size, max(lengths))),
        remove_pred=curve(rng.integers(0, 3, (size, width))),
        remove_prob=curve(rng.random((size, width))),
        keep_pred=curve(rng.integers(0, 3, (size, width))),
        keep_prob=curve(rng.random((size, width))),
        steps=steps,
    )


def _column(curves: CurveArrays, b: int, k: int) -> int | None:
    """Row ``b``'s column holding step ``k``, if any (a plain scan)."""
    steps = list(range(curves.remove_pred.shape[1])) if curves.steps is None else list(
        curves.steps[b])
    return steps.index(k) if k in steps else None


@settings(max_examples=60, deadline=None)
@given(curves=random_curves())
def test_measures_match_a_per_document_reference(curves: CurveArrays) -> None:
    eraser = Eraser().columns(curves)
    flips = DecisionFlip().columns(curves)
    assert curves.remove_prob is not None and curves.keep_prob is not None
    for b, n in enumerate(curves.lengths.tolist()):
        comps, suffs = [], []
        for p in PERCENTS:
            k = math.ceil(Fraction(p, 100) * n)
            j = _column(curves, b, k)
            comp = np.nan if j is None else curves.base_prob[b] - curves.remove_prob[b, j]
            suff = np.nan if j is None else curves.base_prob[b] - curves.keep_prob[b, j]
            assert eraser[f"comp_{p:02d}"][b] == pytest.approx(comp, nan_ok=True)
            assert eraser[f"suff_{p:02d}"][b] == pytest.approx(suff, nan_ok=True)
            comps.append(comp)
            suffs.append(suff)
        zero = curves.base_prob[b] - curves.keep_prob[b, 0]
        assert eraser["aopc_comprehensiveness"][b] == pytest.approx(sum(comps) / 6, nan_ok=True)
        assert eraser["aopc_sufficiency"][b] == pytest.approx((zero + sum(suffs)) / 6, nan_ok=True)
        assert eraser["aopc_sufficiency_without_zero"][b] == pytest.approx(sum(suffs) / 5,
                                                                           nan_ok=True)
        top = _column(curves, b, 1)
        expected_top = np.nan if top is None else float(
            curves.remove_pred[b, top] != curves.predicted[b])
        assert flips["flip_top"][b] == pytest.approx(expected_top, nan_ok=True)
        first = next((k for k in range(1, n + 1) if (j := _column(curves, b, k)) is not None
                      and curves.remove_pred[b, j] != curves.predicted[b]), None)
        assert flips["fraction_to_flip"][b] == pytest.approx(
            np.nan if first is None else first / n, nan_ok=True)
        assert flips["fraction_to_flip_censored"][b] == pytest.approx(
            (n + 1) / n if first is None else first / n)


def test_at_step_reads_the_exact_step_or_nan() -> None:
    curves = CurveArrays(lengths=np.array([4, 4]), predicted=np.zeros(2, dtype=np.int64),
                         base_prob=np.ones(2), ranked_weights=np.zeros((2, 4)),
                         remove_pred=np.zeros((2, 3), dtype=np.int64),
                         remove_prob=np.array([[1.0, 0.5, 0.25], [1.0, 0.6, 0.2]]),
                         steps=np.array([[0, 2, 4], [0, 1, 4]]))
    assert curves.remove_prob is not None
    values = at_step(curves, curves.remove_prob, np.array([2, 2]))
    assert values[0] == 0.5 and np.isnan(values[1])
    assert at_step(curves, curves.remove_prob, np.array([4, 4])).tolist() == [0.25, 0.2]


# ----------------------------------------------------------------------------------------------
# Through a real audit: the tables, summary.json, and Test 1's flip_max
# ----------------------------------------------------------------------------------------------


def test_measures_are_registered() -> None:
    for name in ("eraser", "decision_flip"):
        assert isinstance(MEASURES[name], Measure)
    assert {"keep", "probabilities"} <= MEASURES["eraser"].needs


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["flan-rnn", "han-cnn"])
def test_measures_reach_the_tables_and_summary(name: str, tmp_path: Path) -> None:
    model = random_model(name, seed=11)
    docs = random_docs(24, seed=11)
    plan = AuditPlan(sites=model.site_names(), rankings=("random", "attention", "gradient"),
                     seed=11)
    frames = audit_documents(model, docs, LABELS, plan, batch_size=5)
    path = tmp_path / "removal.parquet"
    frames.removal.to_parquet(path)
    removal = pd.read_parquet(path)
    assert set(ERASER_COLUMNS) | {"flip_top", "fraction_to_flip",
                                  "fraction_to_flip_censored"} <= set(removal.columns)
    multi = removal[~removal["single_item"]]
    # attention-level curves compute every step: nothing is unknown, and the ranking's first flip
    # agrees with Test 2's first_flip measure
    assert multi[list(ERASER_COLUMNS)].notna().all().all()
    np.testing.assert_allclose(multi["fraction_to_flip"], multi["fraction_removed"])
    assert ((multi["flip_top"] == 1.0) == (multi["removed_at_flip"] == 1)).all()

    # Test 1's flip of the largest weight is the attention ranking's flip_top (ties aside), and
    # Test 1's flip of each ranking's top item is that ranking's flip_top
    single = frames.single_weight[~frames.single_weight["skipped"]].set_index(["site", "doc_id"])
    top2 = (frames.items.sort_values("weight", ascending=False).groupby(["site", "doc_id"])
            ["weight"].apply(lambda w: w.iloc[0] - w.iloc[1] if len(w) > 1 else np.inf))
    untied = top2[top2 > 1e-6 * 1.0].index
    for ranking, test1 in (("attention", "flip_max"), ("gradient", "flip_gradient")):
        rows = multi[multi["ranking"] == ranking].set_index(["site", "doc_id"])
        keys = rows.index.intersection(untied) if ranking == "attention" else rows.index
        assert len(keys) >= 10
        np.testing.assert_array_equal(rows.loc[keys, "flip_top"].to_numpy(),
                                      single.loc[keys, test1].to_numpy(dtype=float))

    summary = summarize(frames.single_weight, removal, model=name,
                        rankings_meta=rankings_meta(plan), sites_meta=sites_meta(model, plan))
    for site, entry in summary["by_site"].items():
        assert {"aopc_comprehensiveness", "aopc_sufficiency_without_zero",
                "flip_rate_top"} <= set(entry["conventions"])
        site_rows = multi[multi["site"] == site]
        for ranking, stats in entry["removal"].items():
            assert "conventions" not in stats
            rows = site_rows[site_rows["ranking"] == ranking]
            assert stats["aopc_comprehensiveness"] == pytest.approx(
                rows["aopc_comprehensiveness"].mean())
            assert stats["median_suff_10"] == pytest.approx(rows["suff_10"].median())
            assert stats["flip_rate_top"] == pytest.approx(rows["flip_top"].mean())


@pytest.mark.usefixtures("one_thread")
def test_eraser_columns_match_a_direct_recompute() -> None:
    """comp and suff at 50% for the attention ranking, from ``logits_with`` and hand-erased weights
    (the measure's reading of the remove and keep curves: what k items are removed or kept)."""
    from attnaudit.data.batching import make_batches
    from attnaudit.erasure.interventions import erase, removal_order

    model = random_model("flan-none", seed=4)
    docs = random_docs(6, seed=4)
    plan = AuditPlan(sites=("token",), rankings=("attention",), seed=4)
    removal = audit_documents(model, docs, LABELS, plan).removal.set_index("doc_id")
    batch = make_batches(docs, hierarchical=False, batch_size=len(docs))[0]
    with torch.no_grad():
        output = model.run(batch, ("token",))
        site = output.site("token")
        probs = torch.softmax(output.logits.double(), -1)
        order = removal_order(site.attention, site.mask)
        for b, doc_id in enumerate(batch.doc_ids):
            n = int(site.mask[b].sum())
            k = math.ceil(n / 2)
            first_k = torch.zeros(site.attention.shape[1], dtype=torch.bool)
            first_k[order[b, :k]] = True
            one = output.index([b])
            predicted = int(probs[b].argmax())
            for removed, column in ((first_k, "comp_50"), (~first_k, "suff_50")):
                logits = model.logits_with(one, "token", erase(site.attention[b], removed)[None, None])
                p_after = torch.softmax(logits[0, 0].double(), -1)[predicted]
                expected = float(probs[b, predicted] - p_after)
                assert removal.loc[doc_id, column] == pytest.approx(expected, abs=1e-9)
