"""The first-flip measure (Test 2) on hand-made curves, and its summary computed by hand."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from attnaudit.measures import (
    FLIP_CURVE_FRACTIONS,
    MEASURES,
    CurveArrays,
    FirstFlip,
    Measure,
    first_flip_steps,
    quantile,
    share,
)


def _curves() -> CurveArrays:
    """Five documents padded to n = 4; entries beyond a document's n repeat its step n.

    - d0: 3 items, predicts 0, flips at k = 2 (ranked weights 0.5, 0.3, 0.2): mass 0.8;
    - d1: 4 items, predicts 1, never flips: removing everything leaves 1 (cannot flip);
    - d2: 2 items, predicts 2, flips at k = 1 (mass 0.6) but flips back with everything removed;
    - d3: 1 item, predicts 0, flips at k = 1 = n (fraction 1, mass 1);
    - d4: 2 items, predicts 0; differs at k = 0 (not an erasure) and at k = 3 > n (padding only):
      never flipped.
    """
    return CurveArrays(
        lengths=np.array([3, 4, 2, 1, 2]),
        predicted=np.array([0, 1, 2, 0, 0]),
        base_prob=np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
        ranked_weights=np.array([
            [0.5, 0.3, 0.2, 0.0],
            [0.4, 0.3, 0.2, 0.1],
            [0.6, 0.4, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.7, 0.3, 0.0, 0.0],
        ]),
        remove_pred=np.array([
            [0, 0, 1, 1, 1],
            [1, 1, 1, 1, 1],
            [2, 0, 2, 2, 2],
            [0, 1, 1, 1, 1],
            [1, 0, 0, 1, 1],
        ]),
        remove_prob=np.full((5, 5), 0.5),
    )


def test_first_flip_steps() -> None:
    assert first_flip_steps(_curves()).tolist() == [2, -1, 1, 1, -1]


def test_first_flip_columns_by_hand() -> None:
    cols = FirstFlip().columns(_curves())
    nan = np.nan
    np.testing.assert_array_equal(cols["removed_at_flip"], [2.0, nan, 1.0, 1.0, nan])
    np.testing.assert_allclose(cols["fraction_removed"], [2 / 3, nan, 0.5, 1.0, nan])
    np.testing.assert_allclose(cols["mass_removed"], [0.8, nan, 0.6, 1.0, nan])
    assert cols["never_flipped"].tolist() == [False, True, False, False, True]
    # the prediction with every item removed (step n) equals the unmodified one
    assert cols["cannot_flip"].tolist() == [False, True, True, False, True]
    # d2: "cannot flip" and yet flipped at k = 1: the column says only that the all-removed endpoint
    # keeps the prediction (every never-flipped document has it), not that no ranking can flip it
    assert cols["cannot_flip"][2] and not cols["never_flipped"][2]
    assert cols["cannot_flip"][cols["never_flipped"]].all()
    assert all(len(v) == 5 for v in cols.values())


def _rows() -> pd.DataFrame:
    """removal.parquet rows of one site and ranking: two documents flip, three never do."""
    return pd.DataFrame({
        "doc_id": ["a", "b", "c", "d", "e"],
        "n_items": [4, 4, 2, 4, 3],
        "removed_at_flip": [1.0, 2.0, np.nan, np.nan, np.nan],
        "fraction_removed": [0.25, 0.5, np.nan, np.nan, np.nan],
        "mass_removed": [0.5, 0.9, np.nan, np.nan, np.nan],
        "never_flipped": [False, False, True, True, True],
        "cannot_flip": [False, False, True, True, False],
    })


def test_summary_by_hand() -> None:
    summary = FirstFlip().summarize(_rows())
    assert summary["n"] == 5
    # the paper's median: flipped documents only, 0.25 and 0.5
    assert summary["median_fraction"] == pytest.approx(0.375)
    assert summary["q1_fraction"] == pytest.approx(0.25 + 0.25 * 0.25)  # linear interpolation
    assert summary["q3_fraction"] == pytest.approx(0.25 + 0.75 * 0.25)
    # censored: never-flipped count as (n + 1) / n: 0.25, 0.5, 3/2, 5/4, 4/3 -> median 5/4
    assert summary["median_fraction_censored"] == pytest.approx(1.25)
    assert summary["median_mass"] == pytest.approx(0.7)
    assert summary["share_never_flipped"] == pytest.approx(0.6)
    assert summary["share_cannot_flip"] == pytest.approx(0.4)
    # flip curve: share of ALL five documents flipped by fraction f (never-flipped in the denominator)
    expected = [0.0 if f < 0.25 else 0.2 if f < 0.5 else 0.4 for f in FLIP_CURVE_FRACTIONS]
    assert summary["flip_curve"] == pytest.approx(expected)


def test_summary_when_nothing_flips() -> None:
    rows = _rows().iloc[2:]
    summary = FirstFlip().summarize(rows)
    assert summary["median_fraction"] is None and summary["median_mass"] is None
    assert summary["median_fraction_censored"] == pytest.approx(4 / 3)
    assert summary["share_never_flipped"] == 1.0
    assert summary["flip_curve"] == [0.0] * len(FLIP_CURVE_FRACTIONS)


def test_flip_curve_reads_exact_fractions_inclusively() -> None:
    rows = pd.DataFrame({"n_items": [20, 3], "fraction_removed": [3 / 20, 1 / 3],
                         "mass_removed": [0.1, 0.2], "never_flipped": [False, False],
                         "cannot_flip": [False, False]})
    curve = dict(zip(FLIP_CURVE_FRACTIONS, FirstFlip().summarize(rows)["flip_curve"], strict=True))
    assert curve[0.1] == 0.0 and curve[0.15] == 0.5 and curve[0.3] == 0.5 and curve[0.35] == 1.0


def test_fractions_and_helpers() -> None:
    assert FLIP_CURVE_FRACTIONS[0] == 0.0 and FLIP_CURVE_FRACTIONS[-1] == 1.0
    assert len(FLIP_CURVE_FRACTIONS) == 21
    assert share(np.array([], dtype=bool)) is None
    assert share(np.array([True, False, False, False])) == 0.25
    assert quantile(np.array([np.nan, np.nan]), 0.5) is None
    assert quantile(np.array([1.0, np.nan, 3.0]), 0.5) == 2.0


def test_registry() -> None:
    for name, measure in MEASURES.items():
        assert isinstance(measure, Measure) and measure.name == name
        assert measure.needs <= {"remove", "keep", "probabilities"}
    assert "first_flip" in MEASURES


def test_measures_do_not_import_torch() -> None:
    code = "import sys, attnaudit.measures; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _scheduled_curves() -> CurveArrays:
    """Two documents on step schedules (the input-level curves), padded to K = 4 columns by
    repeating each row's last step.

    - d0: 10 items, predicts 0, steps 0, 1, 5, 10; decisions 0, 0, 1, 1: the flip lies in 2..5 and is
      reported at the first scheduled step that flips, k = 5 (fraction 0.5, mass of the first 5
      ranked weights 0.1 * 5 = 0.5); removing all 10 leaves class 1, so it can flip;
    - d1: 3 items, predicts 1, steps 0, 2, 3 (then 3 again); never flips; all removed leaves 1.
    """
    return CurveArrays(
        lengths=np.array([10, 3]),
        predicted=np.array([0, 1]),
        base_prob=np.array([0.9, 0.8]),
        ranked_weights=np.array([[0.1] * 10, [0.5, 0.3, 0.2] + [0.0] * 7]),
        remove_pred=np.array([[0, 0, 1, 1], [1, 1, 1, 1]]),
        remove_prob=None,
        steps=np.array([[0, 1, 5, 10], [0, 2, 3, 3]]),
    )


def test_first_flip_on_a_step_schedule_by_hand() -> None:
    curves = _scheduled_curves()
    np.testing.assert_array_equal(first_flip_steps(curves), [5, -1])
    columns = FirstFlip().columns(curves)
    np.testing.assert_allclose(columns["removed_at_flip"], [5.0, np.nan])
    np.testing.assert_allclose(columns["fraction_removed"], [0.5, np.nan])
    np.testing.assert_allclose(columns["mass_removed"], [0.5, np.nan])
    np.testing.assert_array_equal(columns["never_flipped"], [False, True])
    np.testing.assert_array_equal(columns["cannot_flip"], [False, True])


def test_a_schedule_of_every_step_equals_no_schedule() -> None:
    # d0-d3 of _curves (d4 differs on a padding column, which a schedule's padding may not)
    plain = CurveArrays(**{name: value[:4] if isinstance(value, np.ndarray) else value
                           for name, value in _curves().__dict__.items()})
    n = plain.remove_pred.shape[1]
    every = CurveArrays(**{**plain.__dict__, "steps": np.minimum(
        np.arange(n)[None, :], plain.lengths[:, None])})  # 0..n_b, then n_b repeated
    for name, values in FirstFlip().columns(plain).items():
        np.testing.assert_array_equal(FirstFlip().columns(every)[name], values, err_msg=name)
