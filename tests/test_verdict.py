"""The faithfulness verdict's rules, each on a hand-made ``by_site[site]`` summary."""

from __future__ import annotations

from typing import Any

import pytest

from attnaudit.results.verdict import CRITERIA, outcome, paired_difference, verdict

CENSORED, COMP, SUFF = "median_fraction_censored", "aopc_comprehensiveness", "aopc_sufficiency"


def _interval(estimate: float, lo: float, hi: float) -> dict[str, float]:
    return {"estimate": estimate, "lo": lo, "hi": hi}


def _site(differences: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"differences": differences, "confidence": 0.95, **extra}


def _pairwise(statements: list[dict[str, Any]], versus: str, criterion: str) -> dict[str, Any]:
    (found,) = [s for s in statements if s.get("versus") == versus and s.get("criterion") == criterion]
    return found


def _overall(statements: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [s for s in statements if "site" in s]
    return found


def test_outcome_needs_an_interval_excluding_zero() -> None:
    lower_better, higher_better = CRITERIA[0], CRITERIA[1]
    assert not higher_better.lower_is_better and lower_better.lower_is_better
    assert outcome(_interval(-0.2, -0.3, -0.1), lower_better) == "better"
    assert outcome(_interval(-0.2, -0.3, -0.1), higher_better) == "weaker"
    assert outcome(_interval(0.2, 0.1, 0.3), higher_better) == "better"
    assert outcome(_interval(0.2, 0.1, 0.3), lower_better) == "weaker"
    assert outcome(_interval(0.1, 0.0, 0.2), higher_better) == "indistinguishable"  # 0 is inside
    assert outcome(_interval(-0.1, -0.2, 0.05), lower_better) == "indistinguishable"
    assert outcome(None, lower_better) == "missing"


def test_better_than_random_by_the_censored_median() -> None:
    site = _site({"attention-vs-random": {CENSORED: _interval(-0.2, -0.3, -0.1)}})
    statements = verdict(site, ["random", "attention"], site="token")
    statement = _pairwise(statements, "random", CENSORED)
    assert statement["rule"] == "pairwise"
    assert "better guide than random" in statement["sentence"]
    assert "faithful" in statement["sentence"] and "95% interval [-0.3, -0.1]" in statement["sentence"]
    assert statement["evidence"] == {**_interval(-0.2, -0.3, -0.1), "better_when": "lower"}
    overall = _overall(statements)
    assert overall["rule"] == "overall" and overall["site"] == "token"
    assert overall["sentence"] == "Attention's ranking is more faithful than random."


def test_no_better_than_random_when_the_interval_includes_zero() -> None:
    site = _site({"attention-vs-random": {CENSORED: _interval(-0.05, -0.1, 0.02),
                                          COMP: _interval(0.01, -0.01, 0.03)}})
    statements = verdict(site, ["random", "attention"])
    assert "no better than random" in _pairwise(statements, "random", CENSORED)["sentence"]
    assert "no better than random" in _pairwise(statements, "random", COMP)["sentence"]
    assert _overall(statements)["sentence"].startswith("Attention's ranking is no more faithful "
                                                       "than random")


def test_weaker_than_random() -> None:
    site = _site({"attention-vs-random": {COMP: _interval(-0.1, -0.2, -0.05)}})
    statements = verdict(site, ["random", "attention"])
    assert "weaker guide than random" in _pairwise(statements, "random", COMP)["sentence"]
    assert _overall(statements)["sentence"] == "Attention's ranking is less faithful than random."


def test_weaker_and_better_guide_than_gradient_by_aopc() -> None:
    site = _site({"attention-vs-gradient": {COMP: _interval(-0.05, -0.08, -0.02),
                                            SUFF: _interval(-0.04, -0.06, -0.01)}})
    statements = verdict(site, ["attention", "gradient"], labels={"gradient": "Gradient"})
    assert "weaker guide than Gradient" in _pairwise(statements, "gradient", COMP)["sentence"]
    # sufficiency: lower is better, and attention's is lower
    assert "better guide than Gradient" in _pairwise(statements, "gradient", SUFF)["sentence"]
    assert _overall(statements)["sentence"] == (
        "As a faithful guide to the decision, attention is mixed (better by some criteria, weaker "
        "by others) against Gradient.")


def test_overall_combines_random_and_attribution_rankings() -> None:
    site = _site({
        "attention-vs-random": {CENSORED: _interval(-0.2, -0.3, -0.1)},
        "attention-vs-gradient": {CENSORED: _interval(0.1, 0.05, 0.2)},
        "attention-vs-integrated_gradients": {CENSORED: _interval(0.0, -0.1, 0.1)},
        "attention-vs-attention_x_gradient": {COMP: _interval(0.1, 0.05, 0.2)},
    })
    statements = verdict(site, ["random", "attention", "gradient", "integrated_gradients",
                                "attention_x_gradient"])
    assert "weaker guide than gradient" in _pairwise(statements, "gradient", CENSORED)["sentence"]
    assert "indistinguishable" in _pairwise(statements, "integrated_gradients", CENSORED)["sentence"]
    assert _overall(statements)["sentence"] == (
        "Attention's ranking is more faithful than random. As a faithful guide to the decision, "
        "attention is a weaker guide than gradient, a better guide than attention x gradient and "
        "indistinguishable from integrated gradients.")
    assert _overall(statements)["evidence"]["gradient"] == {CENSORED: "weaker", COMP: "missing",
                                                            SUFF: "missing"}


def test_a_difference_stored_the_other_way_is_negated() -> None:
    site = _site({"gradient-vs-attention": {COMP: _interval(0.05, 0.02, 0.08)}})
    difference = paired_difference(site, "attention", "gradient", COMP)
    assert difference == pytest.approx(_interval(-0.05, -0.08, -0.02))
    statements = verdict(site, ["attention", "gradient"])
    assert "weaker guide than gradient" in _pairwise(statements, "gradient", COMP)["sentence"]


def test_no_interval_no_verdict_but_point_estimates_quoted() -> None:
    site = _site({"attention-vs-gradient": {COMP: {"estimate": 0.1, "lo": None, "hi": None}}},
                 removal={"attention": {COMP: 0.3}, "gradient": {COMP: 0.2}})
    statements = verdict(site, ["attention", "gradient"])
    statement = _pairwise(statements, "gradient", COMP)
    assert statement["rule"] == "no_interval"
    assert statement["sentence"] == (
        "No interval for the difference in AOPC comprehensiveness between attention and gradient "
        "(point estimates: attention +0.3, gradient +0.2): no verdict on which is the more faithful "
        "guide.")
    assert _pairwise(statements, "gradient", SUFF)["rule"] == "no_interval"
    overall = _overall(statements)
    assert overall["rule"] == "no_interval" and "no verdict" in overall["sentence"]


def test_without_intervals_nothing_is_claimed() -> None:
    statements = verdict({"removal": {"attention": {CENSORED: 0.2}, "random": {CENSORED: 0.9}}},
                         ["random", "attention"])
    assert {s["rule"] for s in statements} == {"no_interval"}
    assert not any("better guide" in s["sentence"] or "weaker" in s["sentence"] for s in statements)


def test_without_the_attention_ranking() -> None:
    statements = verdict(_site({}), ["random", "gradient"], site="word")
    assert statements == [{"site": "word", "rule": "no_attention",
                           "evidence": {"rankings": ["random", "gradient"]},
                           "sentence": "The attention ranking was not audited: nothing can be said "
                                       "about whether attention is a faithful explanation here."}]


def test_interval_level_named_only_when_known() -> None:
    differences = {"attention-vs-random": {CENSORED: _interval(-0.2, -0.3, -0.1)}}
    known = _pairwise(verdict(_site(differences), ["random", "attention"]), "random", CENSORED)
    unknown = _pairwise(verdict({"differences": differences}, ["random", "attention"]), "random",
                        CENSORED)
    assert "95% interval" in known["sentence"]
    assert "bootstrap interval" in unknown["sentence"] and "95%" not in unknown["sentence"]
