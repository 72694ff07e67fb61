"""The report's *Faithfulness* block of a site, as plain data, from summary.json only (torch-free).

Everything here reads a site's ``by_site[site]`` entry (and the summary's top level) as the audit
wrote it; nothing is recomputed, so a number on the page is the number in the file. Each part is
``None`` (and hidden by the template, heading included) when the summary lacks its key: old audits
and settings that skip a measure get no empty tables.

* :data:`FAITHFULNESS_COLUMNS`: the faithfulness table's measures, one :class:`MeasureColumn` each
  (a new measure is one entry); :func:`measure_table` lays them out per ranking with intervals and
  marks a column's best ranking only when its interval is disjoint from the runner-up's;
* :func:`verdict_block`: the sentences of :func:`attnaudit.results.verdict.verdict`;
* :func:`agreement_table`, :func:`counterfactual_block`, :func:`planted_table`: the other parts;
* :func:`site_block`: all of them for one site, as the template ``faithfulness.html.j2`` reads them.

The figures (ERASER curves, agreement heat map, counterfactual attention) are drawn through the
figures registry (:data:`attnaudit.reports.figures.FIGURES`, section ``"faithfulness"``); the
*Across seeds* section is :mod:`attnaudit.reports.seeds`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from attnaudit.measures import MEASURES
from attnaudit.measures.base import Better, Kind
from attnaudit.measures.base import ReportColumn as MeasureColumn
from attnaudit.reports.markup import is_num, js_value, pct, sig
from attnaudit.results.tables import in_order
from attnaudit.results.verdict import RULES as VERDICT_RULE_TEXTS
from attnaudit.results.verdict import verdict

RankingsMeta = Mapping[str, Mapping[str, Any]]

BEST_RULE = (
    "▲ marks a column's best ranking only when its interval lies wholly on the better side of the "
    "runner-up's interval (the two do not overlap); overlapping intervals, or no intervals, mark "
    "nothing."
)


#: A faithfulness-table column that is no measure's: how often a ranking beats the random one (a
#: cross-ranking number computed by the summary itself).
BEATS_RANDOM = MeasureColumn("share_beats_random", "Flips sooner than random", "higher",
                             ("share_beats_random",),
                             "Share of documents where this ranking needs fewer removals than the "
                             "random ranking (never = infinitely many)")

#: The faithfulness table's columns: every registered measure's ``report_columns`` in registry order
#: (a new measure brings its own), then :data:`BEATS_RANDOM`; a column shows when any ranking has a
#: number.
FAITHFULNESS_COLUMNS: tuple[MeasureColumn, ...] = (
    *(column for measure in MEASURES.values() for column in measure.report_columns),
    BEATS_RANDOM,
)


def dig(tree: Any, *path: str) -> Any:
    """``tree[path[0]][path[1]]...``, or ``None`` where a level is missing or not a mapping."""
    for key in path:
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(key)
    return tree


def interval(value: Any) -> tuple[float, float] | None:
    """``[lo, hi]`` as a pair of finite numbers, else ``None``."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_num(v) for v in value):
        return float(value[0]), float(value[1])
    return None


def fmt(value: Any, kind: Kind) -> str:
    """A table value as the page prints it (a dash when missing)."""
    if kind == "number":
        return sig(value, 3)
    if kind == "censored" and is_num(value) and value > 1:
        return "never"
    return pct(value)


def interval_cell(value: Any, bounds: Any, show: Callable[[Any], str],
                  kind: Kind = "number") -> dict[str, Any]:
    """A table cell: ``value`` (``None`` unless a number), its bootstrap interval ``bounds`` as
    ``lo`` and ``hi`` (``None`` unless a [lo, hi] pair of numbers), and as the page prints them with
    ``show``: ``text`` and ``interval`` ("[lo, hi]", empty without an interval or a value). A
    censored median (``kind == "censored"``, above 1 = the median document never flips) is put in
    words where a bound is "never": "never flips" with "in every resample", or "[96.9%, never
    flips]" (not "never [never, never]")."""
    number = value if is_num(value) else None
    pair = interval(bounds)
    text = show(value)
    span = (f"[{show(pair[0])}, {show(pair[1])}]"
            if pair is not None and number is not None else "")
    if kind == "censored" and number is not None and number > 1:
        text = "never flips"
    if kind == "censored" and pair is not None and number is not None and pair[1] > 1:
        span = ("never flips in every resample" if pair[0] > 1
                else f"from {show(pair[0])} to never flipping")
    return {"value": number, "lo": pair[0] if pair else None, "hi": pair[1] if pair else None,
            "text": text, "interval": span}


def ranking_meta(rankings: RankingsMeta, name: str) -> dict[str, str]:
    meta = rankings.get(name) or {}
    return {"name": name, "label": str(meta.get("label", name)),
            "color": str(meta.get("color", "#6b7280"))}


# ----------------------------------------------------------------------------------------------
# The faithfulness table
# ----------------------------------------------------------------------------------------------


def measure_table(
    removal: Mapping[str, Mapping[str, Any]] | None,
    intervals: Mapping[str, Any] | None,
    rankings: RankingsMeta,
    conventions: Mapping[str, str] | None,
    *,
    title: str,
    key: str = "attention",
    columns: Sequence[MeasureColumn] = FAITHFULNESS_COLUMNS,
) -> dict[str, Any] | None:
    """Rows = rankings, columns = the measures any ranking has; ``None`` when none has any.

    Args:
        removal: ``{ranking: {leaf: value}}`` (``by_site[site]["removal"]``, or the input-level
            ``by_site[site]["input"]["removal"]``).
        intervals: the matching ``{ranking: {leaf: [lo, hi]}}``, or ``None`` without a bootstrap.
        rankings: ranking metadata (label, colour), in report order.
        conventions: the site's ``conventions`` (key -> sentence).
        title: the table's caption (which erasure it shows).
        key: which erasure (``"attention"`` or ``"input"``), for the page's ``data-erasure``.

    Returns:
        ``{"key", "title", "columns": [{"leaf", "label", "tip", "better"}], "rows": [{"name", "label",
        "color", "cells": [{"value", "lo", "hi", "text", "interval", "best"}]}], "conventions": [(key,
        sentence)], "has_intervals", "n_best"}``.
    """
    removal = removal or {}
    names = in_order(list(removal), list(rankings))
    shown = [c for c in columns if any(is_num(dig(removal, r, c.leaf)) for r in names)]
    if not names or not shown:
        return None
    rows: list[dict[str, Any]] = []
    for name in names:
        cells: list[dict[str, Any]] = []
        for column in shown:
            cells.append({**interval_cell(dig(removal, name, column.leaf),
                                          dig(intervals, name, column.leaf),
                                          partial(fmt, kind=column.kind), column.kind),
                          "best": False})
        rows.append({**ranking_meta(rankings, name), "cells": cells})
    for j, column in enumerate(shown):
        best = best_row([row["cells"][j] for row in rows], column.better)
        if best is not None:
            rows[best]["cells"][j]["best"] = True
    conv = conventions or {}
    keys = list(dict.fromkeys(k for c in shown for k in c.conventions if conv.get(k)))
    return {
        "key": key,
        "title": title,
        "columns": [{"leaf": c.leaf, "label": c.label, "tip": c.tip, "better": c.better}
                    for c in shown],
        "rows": rows,
        "conventions": [(k, str(conv[k])) for k in keys],
        "has_intervals": any(c["lo"] is not None for row in rows for c in row["cells"]),
        "n_best": sum(c["best"] for row in rows for c in row["cells"]),
    }


def best_row(cells: Sequence[Mapping[str, Any]], better: Better) -> int | None:
    """The index of the best cell when its interval does not overlap the runner-up's, else None.

    Best = the highest value (``better == "higher"``) or the lowest; the runner-up is the next in
    that order. Without two valued cells, or without both intervals, nothing is marked.
    """
    valued = [(i, c) for i, c in enumerate(cells) if is_num(c.get("value"))]
    if len(valued) < 2:
        return None
    sign = -1.0 if better == "higher" else 1.0
    ordered = sorted(valued, key=lambda ic: (sign * float(ic[1]["value"]), ic[0]))
    (i, top), (_, second) = ordered[0], ordered[1]
    if not all(is_num(c.get(k)) for c in (top, second) for k in ("lo", "hi")):
        return None
    disjoint = top["lo"] > second["hi"] if better == "higher" else top["hi"] < second["lo"]
    return i if disjoint else None


# ----------------------------------------------------------------------------------------------
# Verdict, agreement, counterfactual attention, planted tokens
# ----------------------------------------------------------------------------------------------


#: what each rule of :mod:`attnaudit.results.verdict` means, for the sentence's hover text
VERDICT_RULES: dict[str, str] = {
    "pairwise": "the simultaneous (max-t) interval of attention minus the other ranking: better or "
                "weaker only when it lies wholly outside the band ±δ, negligible when wholly "
                "inside, inconclusive otherwise",
    "no_interval": "no simultaneous interval for this difference: no verdict",
    "overall": VERDICT_RULE_TEXTS["headline"],
    "withheld": VERDICT_RULE_TEXTS["preconditions"],
    "no_attention": "the attention ranking was not audited",
}


def verdict_block(site_summary: Mapping[str, Any], rankings: RankingsMeta, site: str,
                  assessed: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The verdict of :func:`attnaudit.results.verdict.verdict`: the site's overall sentences
    (``overall``) and the pairwise ones behind them (``details``), each with its rule spelt out
    (``rule``) and its evidence, the site's ``status``, ``reasons``, the multiplicity ``method``
    and the ``rules``; ``None`` when the site has no rankings to judge. ``assessed``: the site's
    entry of summary.json's ``verdict`` (recomputed with default thresholds when absent)."""
    names = in_order(list(site_summary.get("removal") or {}), list(rankings))
    if not names:
        return None
    labels = {n: ranking_meta(rankings, n)["label"] for n in names}
    statements = []
    for entry in verdict(site_summary, names, site=site, labels=labels, assessed=assessed):
        if not entry.get("sentence"):
            continue
        rule = str(entry.get("rule") or "")
        statements.append({
            "sentence": str(entry["sentence"]), "rule": rule,
            "rule_text": f"Rule “{rule}”: {VERDICT_RULES.get(rule, rule)}" if rule else "",
            "evidence": entry.get("evidence"),  # the numbers the sentence rests on, as given
            "overall": "versus" not in entry,
        })
    if not statements:
        return None
    assessed = assessed or {}
    family = assessed.get("family") or {}
    return {"overall": [x for x in statements if x["overall"]],
            "details": [x for x in statements if not x["overall"]],
            "status": assessed.get("status", "given"),
            "reasons": list(assessed.get("reasons") or []),
            "method": family.get("method"),
            "family_size": len(family.get("members") or []),
            "critical_value": family.get("critical_value"),
            "rules": list(VERDICT_RULE_TEXTS.values())}


def agreement_table(site_summary: Mapping[str, Any], rankings: RankingsMeta
                    ) -> dict[str, Any] | None:
    """Per pair of rankings: Kendall tau-b (mean, median), top-1 and top-5 overlap, documents."""
    agreement = site_summary.get("agreement")
    pairs = dig(agreement, "pairs")
    if not isinstance(pairs, Mapping) or not pairs:
        return None
    rows = []
    for key, stats in pairs.items():
        a, _, b = str(key).partition("|")
        rows.append({"key": key, "a": ranking_meta(rankings, a), "b": ranking_meta(rankings, b),
                     **{k: (stats or {}).get(k) for k in
                        ("mean_tau", "median_tau", "median_spearman", "mean_top1", "mean_top5",
                         "n")}})
    conventions = dig(agreement, "conventions")
    return {"rows": rows, "conventions": _sentences(conventions)}


def _sentences(conventions: Any) -> list[tuple[str, str]]:
    if isinstance(conventions, Mapping):
        return [(str(k), str(v)) for k, v in conventions.items() if v]
    if isinstance(conventions, str) and conventions:
        return [("", conventions)]
    return []


#: the marker figures of ``planted["by_site"][site][ranking]`` the table shows
PLANTED_KEYS: tuple[str, ...] = ("recall_at_1", "chance_recall_at_1", "mean_rank", "n_with_marker")


def planted_table(planted: Mapping[str, Any] | None, site: str, rankings: RankingsMeta
                  ) -> dict[str, Any] | None:
    """Recall@1 of the planted marker (and of the distractor) per ranking at ``site``."""
    per_ranking = dig(planted, "by_site", site)
    if not isinstance(per_ranking, Mapping) or not per_ranking:
        return None
    rows = []
    for name in in_order(list(per_ranking), list(rankings)):
        stats = per_ranking[name] or {}
        rows.append({**ranking_meta(rankings, name),
                     **{k: stats.get(k) for k in PLANTED_KEYS},
                     "distractor_recall_at_1": dig(stats, "distractor", "recall_at_1")})
    markers = dig(planted, "markers") or {}
    return {
        "rows": rows,
        "markers": ", ".join(f"{label}: {token}" for label, token in dict(markers).items()),
        "distractor": dig(planted, "distractor"),
        "conventions": _sentences(dig(planted, "conventions")),
    }


#: the counterfactual figures of the figures registry, in page order
COUNTERFACTUAL_FIGURES: tuple[str, ...] = ("counterfactual_permutation", "counterfactual_adversarial")


#: how each number of ``by_site[site]["counterfactual"]`` is shown: (label, kind); ``{tvd}`` and
#: ``{jsd}`` are the summary's thresholds, ``{unit}`` the report's JS unit. Keys not listed are shown
#: under their own name (a number the results add later is not lost).
COUNTERFACTUAL_NUMBERS: dict[str, tuple[str, str]] = {
    "n": ("Documents (two or more items)", "count"),
    "median_perm_tvd": ("Median output TVD under permutation (per document: median over "
                        "permutations)", "number"),
    "median_perm_max_tvd": ("Median of the largest TVD over a document's permutations", "number"),
    "share_perm_tvd_below": ("Documents whose median permutation TVD is below {tvd}", "share"),
    "median_adv_jsd": ("Median adversarial JSD(a, a'): the best attention found, a lower bound "
                       "on the maximum ({unit})", "js"),
    "share_adv_jsd_above": ("Documents with adversarial JSD above {jsd} nats", "share"),
    "max_adv_tvd": ("Largest output TVD of an adversarial attention (at most ε)", "number"),
    "median_adv_vertex_jsd": ("Median JSD(a, a') of the best feasible one-hot a' (all attention "
                              "on one item) ({unit})", "js"),
    "share_adv_vertex_feasible": ("Documents with a feasible one-hot a'", "share"),
    "share_adv_beyond_vertex": ("Documents where the search found more than the best feasible "
                                "one-hot a'", "share"),
    "median_adv_gain_over_vertex": ("Median JSD gained there over the best one-hot a' ({unit})",
                                    "js"),
    "share_adv_certified": ("Documents whose adversarial JSD is provably the maximum (the one-hot "
                            "a' farthest from a is feasible)", "share"),
}
#: numbers that only parametrise the labels above
_COUNTERFACTUAL_PARAMETERS = ("perm_tvd_threshold", "adv_jsd_threshold")


def counterfactual_block(site_summary: Mapping[str, Any], figures: Mapping[str, Any],
                         js_unit: str = "nats") -> dict[str, Any] | None:
    """Jain & Wallace's permutation and adversarial attention: the summary's scalar numbers, its
    conventions and the figures; ``None`` with neither (old audits, both parts skipped)."""
    entry = site_summary.get("counterfactual")
    entry = entry if isinstance(entry, Mapping) else {}
    drawn = [f for k in COUNTERFACTUAL_FIGURES if (f := figures.get(k))]
    numbers = []
    for key, value in entry.items():
        if key in _COUNTERFACTUAL_PARAMETERS or not is_num(value) or (key == "n" and not drawn):
            continue
        label, kind = COUNTERFACTUAL_NUMBERS.get(key, (key.replace("_", " "), "number"))
        label = label.format(tvd=sig(entry.get("perm_tvd_threshold")),
                             jsd=sig(entry.get("adv_jsd_threshold")), unit=js_unit)
        shown = js_value(value, js_unit) if kind == "js" else value
        text = (pct(shown) if kind == "share" else f"{shown:.0f}" if kind == "count"
                else sig(shown, 3))
        numbers.append({"key": str(key), "label": label, "value": shown, "text": text})
    if not drawn and not any(n["key"] != "n" for n in numbers):
        return None
    return {"numbers": numbers, "conventions": _sentences(entry.get("conventions")),
            "figures": drawn}


# ----------------------------------------------------------------------------------------------
# The whole block of a site
# ----------------------------------------------------------------------------------------------


def site_block(
    summary: Mapping[str, Any],
    site: str,
    site_summary: Mapping[str, Any],
    rankings: RankingsMeta,
    figures: Mapping[str, Any],
    *,
    item: str = "item",
    js_unit: str = "nats",
) -> dict[str, Any] | None:
    """A site's Faithfulness block: each part, or ``None`` for a part the summary lacks; the whole
    block is ``None`` when every part is.

    Args:
        summary: the model's summary.json (for the top-level ``planted`` and ``bootstrap``).
        site: the site's name.
        site_summary: ``summary["by_site"][site]``.
        rankings: ranking metadata in report order.
        figures: drawn figures of the site by key (``None`` or absent when not drawn).
        item: what an item is at the site (``token``, ``sentence``, ``word``).
        js_unit: the unit JS divergences are shown in (stored in nats).
    """
    conventions = site_summary.get("conventions") or {}
    intervals = site_summary.get("intervals") or {}
    level = site_summary.get("input") or {}
    has_input = bool(level.get("removal"))
    input_title = f"input-level erasure ({input_erasure_text(level.get('erasure'))})"
    tables = [t for t in (
        measure_table(site_summary.get("removal"), intervals.get("removal"), rankings,
                      conventions, title="attention-level erasure" if has_input else ""),
        measure_table(level.get("removal"), dig(intervals, "input", "removal"), rankings,
                      conventions, key="input", title=input_title) if has_input else None,
    ) if t is not None]
    if has_input and tables and tables[-1]["key"] == "input":
        # the input table's own convention; those it shares with the table above are named there
        named = {k for t in tables[:-1] for k, _ in t["conventions"]}
        tables[-1]["conventions"] = [kv for kv in tables[-1]["conventions"] if kv[0] not in named]
        if "input_erasure" in conventions:
            tables[-1]["conventions"].append(("input_erasure", str(conventions["input_erasure"])))
    bootstrap = summary.get("bootstrap") or {}
    parts = {
        "verdict": verdict_block(site_summary, rankings, site,
                                 dig(summary, "verdict", "sites", site)),
        "tables": tables,
        "bootstrap": bootstrap_text(bootstrap),
        "best_rule": BEST_RULE,
        "eraser_figure": figures.get("eraser_curves"),
        "agreement": agreement_table(site_summary, rankings),
        "agreement_figure": figures.get("agreement"),
        "counterfactual": counterfactual_block(site_summary, figures, js_unit),
        "planted": planted_table(summary.get("planted"), site, rankings),
        "item": item,
    }
    keys = ("verdict", "tables", "eraser_figure", "agreement", "counterfactual", "planted")
    return parts if any(parts[k] for k in keys) else None


def input_erasure_text(mode: Any) -> str:
    """How input-level erasure removed an item: its tokens deleted, or replaced by unk."""
    return {"delete": "tokens deleted", "unk": "tokens replaced by unk"}.get(
        str(mode), f"tokens erased: {mode}")


def bootstrap_text(bootstrap: Mapping[str, Any]) -> str:
    """"[lo, hi]: 95% percentile bootstrap over documents, 1000 resamples, seed 0" or ""."""
    if not is_num(bootstrap.get("resamples")) or not bootstrap.get("resamples"):
        return ""
    level = bootstrap.get("confidence")
    text = (f"[lo, hi]: {pct(level, 0) if is_num(level) else ''} bootstrap interval over "
            f"documents ({int(bootstrap['resamples'])} resamples"
            + (f", seed {bootstrap['seed']}" if bootstrap.get("seed") is not None else "") + ").")
    convention = bootstrap.get("convention")
    return f"{text} {convention}" if convention else text


__all__ = [
    "BEST_RULE",
    "FAITHFULNESS_COLUMNS",
    "VERDICT_RULES",
    "MeasureColumn",
    "agreement_table",
    "best_row",
    "counterfactual_block",
    "interval_cell",
    "measure_table",
    "planted_table",
    "site_block",
    "verdict_block",
]
