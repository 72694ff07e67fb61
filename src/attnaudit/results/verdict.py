"""What the evidence supports about attention's faithfulness, in sentences, by stated rules.

Torch-free. :func:`assess` reads a model's ``summary.json`` (and its test accuracy) and returns the
``verdict`` entry the audit writes into the file; :func:`verdict` gives one site's sentences for the
report. Both apply the same rules.

Preconditions (model level: fail one and every site's verdict is ``withheld``, no claim is made):

* ``accuracy``: the lower end of the Wilson score interval (at the bootstrap's confidence) of the
  test accuracy exceeds the majority baseline (the test share of the training set's most frequent
  label). A model no better than always answering the majority class has no decision worth
  explaining. Unknown accuracy (no ``metrics.json``) withholds too.
* ``not_constant``: no class takes :data:`~attnaudit.results.summary.DEGENERATE_SHARE` (95%) or more
  of the audited documents' predictions: erasing anything can hardly change a (nearly) constant
  decision, so every criterion would compare noise.

Site level: ``withheld`` without simultaneous intervals (``--bootstrap 0``, or a summary written
before them); the flip criteria (``FLIP_CRITERIA``) are ``inconclusive`` when fewer than
``min_flippable`` (30) multi-item documents can flip at all (a never-flipped share or a censored
median over fewer documents than that rests mostly on the documents that cannot flip; below 30 the
bootstrap interval of a median is unreliable and a share's is at least ±0.18 wide).

Criteria (each a leaf of a ranking's Test 2 summary, with the direction in which a ranking is the
better guide to what the decision depends on):

=============================  ======  ======  ===============================================
leaf                           better  floor   why the floor (the smallest difference that counts)
=============================  ======  ======  ===============================================
``median_fraction_censored``   lower   0.05    one step of ERASER's 5% schedule; never-flipped
                                               counted as ``(n + 1) / n``
``share_never_flipped``        lower   0.02    one document in fifty
``aopc_comprehensiveness``     higher  0.01    one point of the predicted class's probability
``aopc_sufficiency``           lower   0.01    likewise
=============================  ======  ======  ===============================================

Effect size: each criterion has an equivalence band ``±δ`` with ``δ = max(floor, relative ×
spread)``, ``spread`` the distance between the random ranking and the best ranking at the site on
that criterion (point estimates) and ``relative`` 0.1 by default: a tenth of what the best ranking
gains over chance is the least difference worth a sentence. Floors and ``relative`` are settings
(``AuditConfig.min_difference`` / ``min_difference_relative``, ``--min-difference``).

Multiplicity: a site's family is attention against every other audited ranking on every criterion;
its intervals are the simultaneous max-t bootstrap intervals of
:func:`attnaudit.results.bootstrap.family_intervals` (``by_site[site]["family"]``), so the chance
that any of the family's intervals misses its true difference is at most ``1 - confidence``.

Outcome of one comparison (attention minus the other ranking, its simultaneous interval ``[lo, hi]``):

* ``better`` / ``weaker``: the interval lies wholly outside the band on the better / worse side;
* ``negligible``: the interval lies wholly inside the band (whether or not it contains 0);
* ``inconclusive``: anything else (it straddles an edge of the band), or a failed site precondition
  for the flip criteria (``reason`` says which);
* ``missing``: no interval for that comparison.

Headline (rule ``overall``) per site: against random, "more faithful than random" when some
criterion says ``better`` and none ``weaker``, qualified with the criteria that do not agree ("by A
and B; C negligible, D inconclusive") unless every assessed criterion says ``better``; "less
faithful" the mirror; "mixed" when both occur; "no claim" otherwise. Then, against each other
ranking, the same reading in one clause. The headline therefore never contradicts a criterion stated
below it: every criterion is named on the side its outcome is (tested as a property).

The decision-flip curve is shown beside the rules but not among them: its points are the flip
criteria's distribution read at 21 fractions (the censored median is its 50% crossing and the
never-flipped share its complement at f = 100%), so adding them would count the same evidence
again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["better", "weaker", "negligible", "inconclusive", "missing"]
Status = Literal["given", "withheld"]

ATTENTION = "attention"
RANDOM = "random"


@dataclass(frozen=True)
class Criterion:
    """A summary leaf compared between rankings, and which way is the better guide."""

    leaf: str
    label: str
    lower_is_better: bool
    floor: float  # the default smallest meaningful difference (see the module docstring)
    flips: bool  # a flip criterion: needs documents that can flip


CRITERIA: tuple[Criterion, ...] = (
    Criterion("median_fraction_censored",
              "the median fraction of items removed until the decision flips", True, 0.05, True),
    Criterion("share_never_flipped", "the share of documents whose decision never flips", True,
              0.02, True),
    Criterion("aopc_comprehensiveness", "AOPC comprehensiveness", False, 0.01, False),
    Criterion("aopc_sufficiency", "AOPC sufficiency", True, 0.01, False),
)
CRITERION_LEAVES: tuple[str, ...] = tuple(c.leaf for c in CRITERIA)
FLIP_CRITERIA: tuple[str, ...] = tuple(c.leaf for c in CRITERIA if c.flips)
#: a short name per criterion for the headline and the card
SHORT: dict[str, str] = {"median_fraction_censored": "the censored median fraction",
                         "share_never_flipped": "the never-flipped share",
                         "aopc_comprehensiveness": "AOPC comprehensiveness",
                         "aopc_sufficiency": "AOPC sufficiency"}

#: the default of :attr:`VerdictSettings.relative` (see the module docstring)
RELATIVE = 0.1
#: the default of :attr:`VerdictSettings.min_flippable`
MIN_FLIPPABLE = 30


@dataclass(frozen=True)
class VerdictSettings:
    """The verdict's thresholds (defaults and their reasons: module docstring)."""

    # floors by criterion leaf; a criterion not given keeps its default floor (:meth:`floor`)
    min_difference: Mapping[str, float] = field(default_factory=dict)
    relative: float = RELATIVE
    min_flippable: int = MIN_FLIPPABLE
    constant_share: float = 0.95  # = summary.DEGENERATE_SHARE (kept equal by a test)
    confidence: float = 0.95  # of the accuracy interval; the audit passes the bootstrap's

    def floor(self, leaf: str) -> float:
        default = next((c.floor for c in CRITERIA if c.leaf == leaf), 0.0)
        return float(self.min_difference.get(leaf, default))

    def as_dict(self) -> dict[str, Any]:
        return {"min_difference": {c.leaf: self.floor(c.leaf) for c in CRITERIA},
                "min_difference_relative": self.relative, "min_flippable": self.min_flippable,
                "constant_share": self.constant_share, "accuracy_confidence": self.confidence}


# ----------------------------------------------------------------------------------------------
# Preconditions
# ----------------------------------------------------------------------------------------------


def wilson_interval(successes: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927): better than the normal
    approximation near 0 and 1 and for small ``n``. ``(nan, nan)`` when ``n == 0``."""
    if n <= 0:
        return math.nan, math.nan
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _metric(metrics: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def preconditions(summary: Mapping[str, Any], metrics: Mapping[str, Any] | None,
                  settings: VerdictSettings) -> list[dict[str, Any]]:
    """The model-level preconditions ``{"name", "passed", "reason", ...}`` (module docstring)."""
    metrics = metrics or {}
    out: list[dict[str, Any]] = []
    accuracy = _metric(metrics, "test_accuracy")
    n_test = _metric(metrics, "num_test")
    majority = _metric(metrics, "majority_baseline", "majority_test_accuracy")
    level = f"{100 * settings.confidence:g}%"
    if accuracy is None or n_test is None or majority is None or n_test < 1:
        out.append({"name": "accuracy", "passed": False,
                    "reason": "the test accuracy, test size or majority baseline is unknown "
                              "(metrics.json is missing or incomplete), so it cannot be shown "
                              "that the model beats the majority class"})
    else:
        lo, hi = wilson_interval(accuracy * n_test, int(n_test), settings.confidence)
        passed = lo > majority
        relation = "exceeds" if passed else "does not exceed"
        out.append({"name": "accuracy", "passed": passed, "accuracy": accuracy,
                    "interval": [lo, hi], "n_test": int(n_test), "majority_baseline": majority,
                    "method": f"Wilson score interval, {level}",
                    "reason": f"test accuracy {accuracy:.1%} ({level} Wilson interval "
                              f"[{lo:.1%}, {hi:.1%}] over {int(n_test)} documents): its lower end "
                              f"{relation} the majority baseline {majority:.1%}"})
    prediction = summary.get("prediction") or {}
    top = prediction.get("majority_share")
    shares = prediction.get("class_shares") or {}
    if not isinstance(top, (int, float)):
        out.append({"name": "not_constant", "passed": False,
                    "reason": "the audited predictions are unknown"})
    else:
        label = next(iter(shares), "one class")
        passed = float(top) < settings.constant_share
        out.append({"name": "not_constant", "passed": passed, "majority_share": float(top),
                    "threshold": settings.constant_share,
                    "reason": f"the model predicts '{label}' for {_pct(float(top))} of the audited "
                              f"documents ({'below' if passed else 'at or above'} the "
                              f"{_pct(settings.constant_share)} that makes a model (nearly) "
                              "constant)"})
    return out


def flippable(summary_site: Mapping[str, Any]) -> int | None:
    """Multi-item documents at the site that some removal can flip (``n × (1 - share_cannot_flip)``,
    rounded), or None when the summary lacks either."""
    n = ((summary_site.get("removal") or {}).get(ATTENTION) or {}).get("n")
    share = summary_site.get("share_cannot_flip")
    if not isinstance(n, (int, float)) or not isinstance(share, (int, float)):
        return None
    return round(float(n) * (1.0 - float(share)))


# ----------------------------------------------------------------------------------------------
# Comparisons
# ----------------------------------------------------------------------------------------------


def band(summary_site: Mapping[str, Any], criterion: Criterion, settings: VerdictSettings
         ) -> dict[str, Any]:
    """``{"delta", "floor", "spread"}``: the criterion's equivalence band half-width ``delta =
    max(floor, relative × spread)``, ``spread`` = |best ranking - random| (point estimates; 0
    without a random ranking)."""
    removal = summary_site.get("removal") or {}
    values = {r: float(v[criterion.leaf]) for r, v in removal.items()
              if isinstance(v, Mapping) and isinstance(v.get(criterion.leaf), (int, float))}
    spread = 0.0
    if RANDOM in values and len(values) > 1:
        best = (min if criterion.lower_is_better else max)(values.values())
        spread = abs(best - values[RANDOM])
    floor = settings.floor(criterion.leaf)
    return {"delta": max(floor, settings.relative * spread), "floor": floor, "spread": spread}


def family_interval(summary_site: Mapping[str, Any], other: str, leaf: str
                    ) -> dict[str, float] | None:
    """The simultaneous interval ``{"estimate", "lo", "hi"}`` of ``attention - other`` on ``leaf``
    from ``by_site[site]["family"]``, or None."""
    entry = (((summary_site.get("family") or {}).get("intervals") or {})
             .get(f"{ATTENTION}-vs-{other}") or {}).get(leaf)
    if not isinstance(entry, Mapping) or not all(
            isinstance(entry.get(k), (int, float)) for k in ("estimate", "lo", "hi")):
        return None
    return {"estimate": float(entry["estimate"]), "lo": float(entry["lo"]), "hi": float(entry["hi"])}


def outcome(difference: Mapping[str, float] | None, criterion: Criterion, delta: float) -> Outcome:
    """The reading of one interval of ``attention - other`` on ``criterion`` with band ``±delta``."""
    if difference is None:
        return "missing"
    lo, hi = difference["lo"], difference["hi"]
    if lo > delta or hi < -delta:
        attention_lower = hi < -delta
        return "better" if attention_lower == criterion.lower_is_better else "weaker"
    if -delta <= lo and hi <= delta:
        return "negligible"
    return "inconclusive"


def compare(summary_site: Mapping[str, Any], rankings: Sequence[str], settings: VerdictSettings,
            *, flip_reason: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{other: {leaf: {"outcome", "estimate", "lo", "hi", "delta", "reason"?}}}``: attention
    against every other ranking on every criterion."""
    bands = {c.leaf: band(summary_site, c, settings) for c in CRITERIA}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for other in (r for r in rankings if r != ATTENTION):
        out[other] = {}
        for criterion in CRITERIA:
            difference = family_interval(summary_site, other, criterion.leaf)
            result = outcome(difference, criterion, bands[criterion.leaf]["delta"])
            entry: dict[str, Any] = {"outcome": result, **(difference or {}),
                                     "delta": bands[criterion.leaf]["delta"],
                                     "better_when": "lower" if criterion.lower_is_better
                                     else "higher"}
            if criterion.flips and flip_reason is not None and result != "missing":
                entry.update(outcome="inconclusive", reason=flip_reason)
            out[other][criterion.leaf] = entry
    return out


# ----------------------------------------------------------------------------------------------
# Headline
# ----------------------------------------------------------------------------------------------


def reading(outcomes: Mapping[str, Outcome]) -> dict[str, Any]:
    """One comparison's criteria combined: ``{"side": "better" | "weaker" | "mixed" | "none",
    "better": [...], "weaker": [...], "negligible": [...], "inconclusive": [...], "all": bool}``
    (``all``: every criterion with an interval is on ``side``)."""
    groups: dict[str, list[str]] = {k: [] for k in ("better", "weaker", "negligible", "inconclusive")}
    for leaf in CRITERION_LEAVES:
        result = outcomes.get(leaf, "missing")
        if result in groups:
            groups[result].append(leaf)
    side = ("mixed" if groups["better"] and groups["weaker"] else "better" if groups["better"]
            else "weaker" if groups["weaker"] else "none")
    assessed = sum(len(v) for v in groups.values())
    all_ = side in ("better", "weaker") and len(groups[side]) == assessed
    return {"side": side, **groups, "all": all_, "assessed": assessed}


def _names(leaves: Sequence[str]) -> str:
    return _join([SHORT.get(leaf, leaf) for leaf in leaves])


def _rest(r: Mapping[str, Any]) -> str:
    """The criteria that do not side with the claim, as a clause ("" when none)."""
    parts = [f"{_names(r[key])} {key}" for key in ("negligible", "inconclusive") if r[key]]
    return "; ".join(parts)


def headline_random(r: Mapping[str, Any]) -> str:
    """The sentence of attention against random from :func:`reading` (the property tests read it)."""
    if r["side"] == "mixed":
        return (f"Against random the criteria disagree: attention is better by {_names(r['better'])} "
                f"but weaker by {_names(r['weaker'])}.")
    if r["side"] in ("better", "weaker"):
        claim = "more" if r["side"] == "better" else "less"
        if r["all"]:
            return f"Attention's ranking is {claim} faithful than random by every criterion."
        return (f"Attention's ranking is {claim} faithful than random by {_names(r[r['side']])} "
                f"only ({_rest(r)}).")
    if not r["assessed"]:
        return "No interval against random: no claim about attention against random."
    if r["negligible"] and not r["inconclusive"]:
        return ("Attention's ranking is as good a guide as random and no better: every difference "
                "is negligible (inside its band).")
    return f"No claim against random: no criterion separates attention from random ({_rest(r)})."


def clause_versus(name: str, r: Mapping[str, Any]) -> str:
    """Attention against one other ranking, as a clause."""
    if r["side"] == "mixed":
        return (f"mixed against {name} (better by {_names(r['better'])}, weaker by "
                f"{_names(r['weaker'])})")
    if r["side"] in ("better", "weaker"):
        rest = "" if r["all"] else f"; {_rest(r)}"
        return f"a {r['side']} guide than {name} (by {_names(r[r['side']])}{rest})"
    if not r["assessed"]:
        return f"not compared with {name} (no interval)"
    return f"not separated from {name} ({_rest(r)})"


# ----------------------------------------------------------------------------------------------
# A site and a model
# ----------------------------------------------------------------------------------------------


def assess_site(summary_site: Mapping[str, Any], rankings: Sequence[str], settings: VerdictSettings,
                *, model_reasons: Sequence[str] = (), labels: Mapping[str, str] | None = None
                ) -> dict[str, Any]:
    """One site's verdict: ``{"status", "reasons", "headline", "comparisons", "readings",
    "deciding", "bands", "flippable"}``."""
    def name(ranking: str) -> str:
        return (labels or {}).get(ranking, ranking.replace("_", " "))

    bands = {c.leaf: band(summary_site, c, settings) for c in CRITERIA}
    n_flippable = flippable(summary_site)
    base: dict[str, Any] = {"bands": bands, "flippable": n_flippable,
                            "family": _family_meta(summary_site)}
    if ATTENTION not in rankings:
        return {**base, "status": "withheld", "reasons": ["the attention ranking was not audited"],
                "headline": "No verdict: the attention ranking was not audited.",
                "comparisons": {}, "readings": {}, "deciding": None}
    reasons = list(model_reasons)
    if not (summary_site.get("family") or {}).get("intervals"):
        reasons.append("no simultaneous bootstrap intervals (audit with --bootstrap > 0; a "
                       "summary.json written before them needs `attnaudit audit` again, which "
                       "recomputes only the summary)")
    if reasons:
        return {**base, "status": "withheld", "reasons": reasons,
                "headline": "No verdict: " + "; ".join(reasons) + ".",
                "comparisons": {}, "readings": {}, "deciding": None}
    flip_reason = None
    if n_flippable is None or n_flippable < settings.min_flippable:
        flip_reason = (f"only {n_flippable if n_flippable is not None else 'an unknown number of'} "
                       f"documents can flip at all (the flip criteria need at least "
                       f"{settings.min_flippable})")
    comparisons = compare(summary_site, rankings, settings, flip_reason=flip_reason)
    readings = {other: reading({leaf: e["outcome"] for leaf, e in by_leaf.items()})
                for other, by_leaf in comparisons.items()}
    sentences = []
    if RANDOM in readings:
        sentences.append(headline_random(readings[RANDOM]))
    clauses = [clause_versus(name(o), r) for o, r in readings.items() if o != RANDOM]
    if clauses:
        sentences.append(f"Against the other rankings, attention is {_join(clauses)}.")
    return {**base, "status": "given", "reasons": [flip_reason] if flip_reason else [],
            "headline": " ".join(sentences) or "No other ranking to compare attention with.",
            "comparisons": comparisons, "readings": readings,
            "deciding": deciding(comparisons)}


def deciding(comparisons: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """The interval the headline rests on: a claim before a comparison without one, against random
    before the other rankings, then the one farthest outside its band (in band widths; without a
    claim, the one nearest to one)."""
    best: tuple[tuple[bool, bool, float], dict[str, Any]] | None = None
    for other, by_leaf in comparisons.items():
        for leaf, e in by_leaf.items():
            if e.get("outcome") == "missing" or "lo" not in e:
                continue
            # how far the interval lies outside the band, in band widths (negative: inside it)
            margin = max(e["lo"] - e["delta"], -e["delta"] - e["hi"]) / max(e["delta"], 1e-12)
            score = (e["outcome"] in ("better", "weaker"), other == RANDOM, margin)
            if best is None or score > best[0]:
                best = (score, {"versus": other, "criterion": leaf, **e})
    return best[1] if best else None


def _family_meta(summary_site: Mapping[str, Any]) -> dict[str, Any] | None:
    family = summary_site.get("family")
    if not isinstance(family, Mapping):
        return None
    return {k: family.get(k) for k in ("method", "confidence", "critical_value", "members")}


def planted(summary: Mapping[str, Any], site: str, confidence: float) -> dict[str, Any] | None:
    """On a planted-marker data set (``attnaudit synth``): does attention rank the marker first?
    ``{"recall", "interval", "chance", "n", "found", "sentence"}`` with the Wilson interval of
    attention's recall@1 over the documents holding a marker; ``found`` when its lower end is above
    both chance and 50% (the marker comes first in most documents, beyond what an order blind to it
    scores). None without planted figures for attention at ``site``."""
    entry = (((summary.get("planted") or {}).get("by_site") or {}).get(site) or {}).get(ATTENTION)
    if not isinstance(entry, Mapping):
        return None
    values = [entry.get(k) for k in ("recall_at_1", "chance_recall_at_1", "n_with_marker")]
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    if len(numbers) < 3 or not numbers[2]:
        return None
    recall, chance, n = numbers[0], numbers[1], int(numbers[2])
    lo, hi = wilson_interval(recall * n, n, confidence)
    found = lo > max(chance, 0.5)
    verb = "finds the planted marker" if found else "does not reliably find the planted marker"
    return {"recall": recall, "interval": [lo, hi], "chance": chance, "n": n, "found": found,
            "sentence": f"Attention {verb}: it ranks the marker's item first in {_pct(recall)} "
                        f"of {n} documents ({100 * confidence:g}% Wilson interval "
                        f"{_pct(lo)}–{_pct(hi)}; a random order: {_pct(chance)})."}


def assess(summary: Mapping[str, Any], metrics: Mapping[str, Any] | None,
           settings: VerdictSettings | None = None) -> dict[str, Any]:
    """The model's ``verdict`` entry of ``summary.json``: ``{"status", "preconditions", "reasons",
    "settings", "rules", "sites": {site: assess_site(...)}}``; ``status`` is ``"withheld"`` when a
    precondition fails (then every site's is too) and ``"given"`` otherwise."""
    settings = settings or VerdictSettings(
        confidence=float((summary.get("bootstrap") or {}).get("confidence", 0.95)))
    checks = preconditions(summary, metrics, settings)
    reasons = [c["reason"] for c in checks if not c["passed"]]
    rankings = list(summary.get("rankings") or {})
    labels = {r: str((m or {}).get("label", r)) for r, m in (summary.get("rankings") or {}).items()}
    sites = {}
    for site, entry in (summary.get("by_site") or {}).items():
        present = [r for r in rankings if r in (entry.get("removal") or {})] or list(
            entry.get("removal") or {})
        sites[site] = assess_site(entry, present, settings, model_reasons=reasons, labels=labels)
        marker = planted(summary, site, settings.confidence)
        if marker is not None:  # ground truth: said whatever the preconditions
            sites[site]["planted"] = marker
            sites[site]["headline"] = f"{sites[site]['headline']} {marker['sentence']}"
    return {"status": "withheld" if reasons else "given", "preconditions": checks,
            "reasons": reasons, "settings": settings.as_dict(), "rules": RULES, "sites": sites}


#: the rules in one paragraph each, written into summary.json and shown in the report
RULES: dict[str, str] = {
    "preconditions": "No verdict (withheld) unless the lower end of the Wilson interval of test "
                     "accuracy exceeds the majority baseline and no class takes 95% or more of the "
                     "predictions; the flip criteria read 'inconclusive' where fewer than 30 "
                     "documents can flip.",
    "family": "A site's family: attention against every other audited ranking on each of the four "
              "criteria; its intervals are simultaneous max-t bootstrap intervals, so all of them "
              "cover their true differences together at the stated confidence.",
    "band": "A difference counts only beyond ±δ, δ = max(floor, 0.1 × |best ranking − random|) per "
            "criterion (floors: censored median fraction 0.05, never-flipped share 0.02, AOPCs "
            "0.01).",
    "outcome": "better/weaker: the simultaneous interval lies wholly outside the band; negligible: "
               "wholly inside; inconclusive: otherwise.",
    "headline": "More (less) faithful than random when some criterion says better (weaker) and "
                "none the opposite, naming the criteria that are negligible or inconclusive; mixed "
                "when both.",
    "flip_curve": "The decision-flip curve is shown beside the rules, not in them: the censored "
                  "median is its 50% crossing and the never-flipped share its value at f = 100%, "
                  "so its points would count the same evidence again.",
}


# ----------------------------------------------------------------------------------------------
# The report's sentences for one site
# ----------------------------------------------------------------------------------------------


def verdict(
    summary_site: Mapping[str, Any],
    rankings: Sequence[str],
    *,
    site: str | None = None,
    labels: Mapping[str, str] | None = None,
    assessed: Mapping[str, Any] | None = None,
    settings: VerdictSettings | None = None,
) -> list[dict[str, Any]]:
    """Statements of what the evidence supports about attention at one site: the pairwise ones
    ``{"ranking", "versus", "criterion", "sentence", "rule", "evidence"}`` then the overall one
    ``{"site", "sentence", "rule", "evidence", "status"}``.

    Args:
        summary_site: ``summary.json``'s ``by_site[site]`` (with ``family`` from the bootstrap).
        rankings: the audited ranking names, in report order.
        site: the site's name, copied into the overall statement.
        labels: display names of the rankings (default: the name with spaces).
        assessed: the site's entry of the summary's ``verdict`` (:func:`assess_site`); computed with
            ``settings`` and no model-level reasons when not given.
    """
    def name(ranking: str) -> str:
        return (labels or {}).get(ranking, ranking.replace("_", " "))

    if assessed is None:
        assessed = assess_site(summary_site, rankings, settings or VerdictSettings(), labels=labels)
    if ATTENTION not in rankings:
        return [{"site": site, "rule": "no_attention", "status": "withheld",
                 "evidence": {"rankings": list(rankings)},
                 "sentence": "The attention ranking was not audited: nothing can be said about "
                             "whether attention is a faithful explanation here."}]
    level = _level_text(summary_site)
    statements: list[dict[str, Any]] = []
    for other, by_leaf in (assessed.get("comparisons") or {}).items():
        for criterion in CRITERIA:
            e = by_leaf.get(criterion.leaf)
            if e is not None:
                statements.append(_pairwise(other, name(other), criterion, e, level))
    rule = "overall" if assessed.get("status") == "given" else "withheld"
    statements.append({"site": site, "rule": rule, "status": assessed.get("status"),
                       "evidence": {o: {k: v["outcome"] for k, v in by.items()}
                                    for o, by in (assessed.get("comparisons") or {}).items()},
                       "sentence": str(assessed.get("headline", ""))})
    return statements


def _pairwise(other: str, other_name: str, criterion: Criterion, e: Mapping[str, Any], level: str
              ) -> dict[str, Any]:
    """One statement: attention against ``other`` on ``criterion``."""
    base = {"ranking": ATTENTION, "versus": other, "criterion": criterion.leaf}
    direction = "lower" if criterion.lower_is_better else "higher"
    if e["outcome"] == "missing":
        return {**base, "rule": "no_interval", "evidence": dict(e),
                "sentence": f"No simultaneous interval for the difference in {criterion.label} "
                            f"between attention and {other_name}: no verdict."}
    interval = (f"difference {_num(e['estimate'])}, {level} [{_num(e['lo'])}, {_num(e['hi'])}], "
                f"band ±{_num(e['delta'], sign=False)}")
    claim = {
        "better": f"attention is a better guide than {other_name}",
        "weaker": f"attention is a weaker guide than {other_name}",
        "negligible": f"attention and {other_name} differ negligibly (the interval lies inside the "
                      "band)",
        "inconclusive": f"inconclusive between attention and {other_name} (the interval reaches "
                        "across the band's edge)",
    }[e["outcome"]]
    if e.get("reason"):
        claim = f"inconclusive: {e['reason']}"
    return {**base, "rule": "pairwise", "evidence": dict(e),
            "sentence": f"By {criterion.label} ({direction} is better), {claim}: {interval}."}


def _level_text(summary_site: Mapping[str, Any]) -> str:
    family = summary_site.get("family") or {}
    confidence = family.get("confidence", summary_site.get("confidence"))
    return (f"simultaneous {100 * float(confidence):g}% interval"
            if isinstance(confidence, (int, float)) else "simultaneous interval")


def _num(value: Any, sign: bool = True) -> str:
    """3 significant digits; + 0.0 turns a negative zero into "+0", never "-0"."""
    if value is None:
        return "n/a"
    text = f"{float(value) + 0.0:{'+' if sign else ''}.3g}"
    return "+0" if sign and text in ("-0", "+0", "0") else text


def _pct(share: float) -> str:
    text = f"{100 * share:.0f}"
    if share < 1 and text == "100":
        text = f"{100 * share:.1f}"
    return text + "%"


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


__all__ = [
    "CRITERIA",
    "RULES",
    "Criterion",
    "VerdictSettings",
    "assess",
    "assess_site",
    "band",
    "clause_versus",
    "headline_random",
    "outcome",
    "planted",
    "preconditions",
    "reading",
    "verdict",
    "wilson_interval",
]
