"""What the evidence supports about attention's faithfulness at one site, in sentences, by rules.

Torch-free. :func:`verdict` reads one ``by_site[site]`` entry of ``summary.json`` and its bootstrap
intervals: ``by_site[site]["differences"][f"{a}-vs-{b}"][leaf] = {"estimate", "lo", "hi"}`` for the
paired difference ``a - b`` between rankings ``a`` and ``b`` (documents resampled jointly). A
difference stored the other way round (``b-vs-a``) is read negated.

Criteria (each a leaf of a ranking's summary, with the direction in which a ranking is the better
guide to what the decision depends on):

=============================  ===================  ===========================================
leaf                           better guide when    why
=============================  ===================  ===========================================
``median_fraction_censored``   lower                fewer top items removed flip the decision
                                                    (never-flipped counted as ``(n + 1) / n``)
``aopc_comprehensiveness``     higher               removing the top items lowers ``p_ŷ`` more
``aopc_sufficiency``           lower                the top items alone keep ``p_ŷ`` closer
=============================  ===================  ===========================================

Rules (the ``rule`` of each returned statement):

* ``pairwise``: attention against every other ranking ``b`` (``random`` included) and every
  criterion: "better guide" only when the interval of ``attention - b`` lies entirely on the better
  side of 0, "weaker guide" only when it lies entirely on the worse side, "indistinguishable" when it
  contains 0 (the data do not separate them; not a claim that they are equal). Against ``random``,
  "indistinguishable" reads "no better than random".
* ``no_interval``: a criterion with no interval for the pair (not computed, or null) gives no verdict;
  the sentence says so and quotes the point estimates when the summary has them.
* ``overall``: one or two sentences for the site. (1) Against random: "more faithful than random"
  when some criterion says "better" and none "weaker"; "less faithful than random" when some says
  "weaker" and none "better"; "mixed" when both; "no more faithful than random" when every criterion
  with an interval is indistinguishable. (2) Against the other rankings (gradient, integrated
  gradients, ...): a "weaker guide than" those where some criterion says "weaker" and none "better",
  a "better guide than" those where the reverse holds, "mixed ... against" where both,
  "indistinguishable from" the rest with intervals. Only criteria with intervals count; with none
  at all the overall statement is ``no_interval``: no verdict.
* ``no_attention``: the attention ranking was not audited: nothing to say about it.

A point estimate alone never yields a verdict. Intervals are read one comparison at a time, with no
correction for multiplicity: with three criteria and several rankings, one interval excluding 0 by
chance is not rare at 95%, which is why the pairwise sentences keep their intervals beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["better", "weaker", "indistinguishable", "missing"]

ATTENTION = "attention"
RANDOM = "random"


@dataclass(frozen=True)
class Criterion:
    """A summary leaf compared between rankings, and which way is the better guide."""

    leaf: str
    label: str
    lower_is_better: bool


CRITERIA: tuple[Criterion, ...] = (
    Criterion("median_fraction_censored",
              "the median fraction of items removed until the decision flips", True),
    Criterion("aopc_comprehensiveness", "AOPC comprehensiveness", False),
    Criterion("aopc_sufficiency", "AOPC sufficiency", True),
)


def paired_difference(summary_site: Mapping[str, Any], a: str, b: str, leaf: str
                      ) -> dict[str, float] | None:
    """``{"estimate", "lo", "hi"}`` of ``a - b`` for ``leaf``, or None when there is no complete
    interval (read from ``b-vs-a`` negated when only that one is stored)."""
    differences = summary_site.get("differences") or {}
    entry = (differences.get(f"{a}-vs-{b}") or {}).get(leaf)
    sign = 1.0
    if not _complete(entry):
        entry, sign = (differences.get(f"{b}-vs-{a}") or {}).get(leaf), -1.0
    if not _complete(entry):
        return None
    assert entry is not None
    bounds = sorted((sign * float(entry["lo"]), sign * float(entry["hi"])))
    return {"estimate": sign * float(entry["estimate"]), "lo": bounds[0], "hi": bounds[1]}


def outcome(difference: Mapping[str, float] | None, criterion: Criterion) -> Outcome:
    """The verdict of one paired interval of ``attention - other`` on ``criterion``."""
    if difference is None:
        return "missing"
    lo, hi = difference["lo"], difference["hi"]
    if lo <= 0.0 <= hi:
        return "indistinguishable"
    attention_lower = hi < 0.0
    return "better" if attention_lower == criterion.lower_is_better else "weaker"


def verdict(
    summary_site: Mapping[str, Any],
    rankings: Sequence[str],
    *,
    site: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Statements of what the evidence supports about attention's faithfulness at one site.

    Args:
        summary_site: ``summary.json``'s ``by_site[site]`` (with ``differences`` from the bootstrap;
            ``removal`` for point estimates; ``confidence`` if the interval level is known).
        rankings: the audited ranking names, in report order.
        site: the site's name, copied into the overall statement.
        labels: display names of the rankings (default: the name with spaces).

    Returns:
        Pairwise statements ``{"ranking", "versus", "criterion", "sentence", "rule", "evidence"}``
        (attention against each other ranking, criterion by criterion) followed by one overall
        statement ``{"site", "sentence", "rule", "evidence"}``. ``evidence`` holds the interval
        (``estimate``, ``lo``, ``hi``) or the point estimates the sentence rests on.
    """
    def name(ranking: str) -> str:
        return (labels or {}).get(ranking, ranking.replace("_", " "))

    if ATTENTION not in rankings:
        return [{"site": site, "rule": "no_attention", "evidence": {"rankings": list(rankings)},
                 "sentence": "The attention ranking was not audited: nothing can be said about "
                             "whether attention is a faithful explanation here."}]
    level = _level_text(summary_site)
    statements: list[dict[str, Any]] = []
    outcomes: dict[str, dict[str, Outcome]] = {}
    for other in (r for r in rankings if r != ATTENTION):
        outcomes[other] = {}
        for criterion in CRITERIA:
            difference = paired_difference(summary_site, ATTENTION, other, criterion.leaf)
            result = outcome(difference, criterion)
            outcomes[other][criterion.leaf] = result
            statements.append(_pairwise(summary_site, other, name(other), criterion, difference,
                                        result, level))
    statements.append(_overall(outcomes, name, site))
    return statements


def _pairwise(summary_site: Mapping[str, Any], other: str, other_name: str, criterion: Criterion,
              difference: Mapping[str, float] | None, result: Outcome, level: str
              ) -> dict[str, Any]:
    """One statement: attention against ``other`` on ``criterion``."""
    base = {"ranking": ATTENTION, "versus": other, "criterion": criterion.leaf}
    if difference is None:
        points = {r: ((summary_site.get("removal") or {}).get(r) or {}).get(criterion.leaf)
                  for r in (ATTENTION, other)}
        quoted = (f" (point estimates: attention {_num(points[ATTENTION])}, {other_name} "
                  f"{_num(points[other])})" if None not in points.values() else "")
        return {**base, "rule": "no_interval", "evidence": {"point_estimates": points},
                "sentence": f"No interval for the difference in {criterion.label} between "
                            f"attention and {other_name}{quoted}: no verdict on which is the more "
                            "faithful guide."}
    interval = (f"difference {_num(difference['estimate'])}, {level} "
                f"[{_num(difference['lo'])}, {_num(difference['hi'])}]")
    if result == "indistinguishable":
        claim = ("attention is no better than random: no evidence that it is a faithful guide "
                 "beyond chance" if other == RANDOM else
                 f"attention and {other_name} are indistinguishable as faithful guides "
                 "(the interval includes 0)")
    elif result == "better":
        claim = f"attention is a better guide than {other_name} (a more faithful ranking)"
    else:
        claim = f"attention is a weaker guide than {other_name} (a less faithful ranking)"
    direction = "lower" if criterion.lower_is_better else "higher"
    return {**base, "rule": "pairwise",
            "evidence": {**difference, "better_when": direction},
            "sentence": f"By {criterion.label} ({direction} is better), {claim}: {interval}."}


def _overall(outcomes: Mapping[str, Mapping[str, Outcome]], name: Callable[[str], str],
             site: str | None) -> dict[str, Any]:
    """The site's one or two sentences from the pairwise outcomes (rule ``overall``)."""
    known = {other: [o for o in by_leaf.values() if o != "missing"]
             for other, by_leaf in outcomes.items()}
    evidence = {other: dict(by_leaf) for other, by_leaf in outcomes.items()}
    if not any(known.values()):
        return {"site": site, "rule": "no_interval", "evidence": evidence,
                "sentence": "No bootstrap intervals: the evidence supports no verdict on whether "
                            "attention is a faithful explanation here."}
    sentences = []
    if known.get(RANDOM):
        sentences.append({
            "better": "Attention's ranking is more faithful than random",
            "weaker": "Attention's ranking is less faithful than random",
            "mixed": "Against random, the faithfulness measures disagree about attention",
            "indistinguishable": "Attention's ranking is no more faithful than random (every "
                                 "interval includes 0)",
        }[_side(known[RANDOM])] + ".")
    groups: dict[str, list[str]] = {"weaker": [], "better": [], "mixed": [], "indistinguishable": []}
    for other, results in known.items():
        if other != RANDOM and results:
            groups[_side(results)].append(name(other))
    parts = [f"{phrase} {_join(groups[key])}" for key, phrase in (
        ("weaker", "a weaker guide than"), ("better", "a better guide than"),
        ("mixed", "mixed (better by some criteria, weaker by others) against"),
        ("indistinguishable", "indistinguishable from"))
        if groups[key]]
    if parts:
        sentences.append(f"As a faithful guide to the decision, attention is {_join(parts)}.")
    return {"site": site, "rule": "overall", "evidence": evidence, "sentence": " ".join(sentences)}


def _side(results: Sequence[Outcome]) -> str:
    """Combine one comparison's criteria: better / weaker / mixed / indistinguishable."""
    better, weaker = "better" in results, "weaker" in results
    if better and weaker:
        return "mixed"
    return "better" if better else "weaker" if weaker else "indistinguishable"


def _complete(entry: Any) -> bool:
    return isinstance(entry, Mapping) and all(
        isinstance(entry.get(key), (int, float)) for key in ("estimate", "lo", "hi"))


def _level_text(summary_site: Mapping[str, Any]) -> str:
    confidence = summary_site.get("confidence")
    return (f"{100 * float(confidence):g}% interval" if isinstance(confidence, (int, float))
            else "bootstrap interval")


def _num(value: Any) -> str:
    # + 0.0 turns a negative zero (an interval bound at exactly 0 from below) into "+0", not "-0"
    return "n/a" if value is None else f"{float(value) + 0.0:+.3g}"


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
