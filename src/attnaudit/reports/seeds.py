"""The report's *Across seeds* section, as plain data, from a run's ``seeds.json`` (torch-free).

``seeds.json`` is written by ``attnaudit run --seeds 0,1,2`` (schema:
:mod:`attnaudit.results.seeds`); nothing is recomputed here. Per model: test accuracy and, per site
and ranking, the headline numbers of the faithfulness table as "mean ± sd" across seeds, and
whether each of the paper's claims (gradient ahead of attention, attention ahead of random) holds
in every seed. Without the file, or with fewer than two seeds, there is no section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnaudit.reports.faithfulness import FAITHFULNESS_COLUMNS, Kind, dig, fmt, ranking_meta
from attnaudit.reports.markup import is_num
from attnaudit.results.tables import in_order

RankingsMeta = Mapping[str, Mapping[str, Any]]

#: Test 1's headline beside the faithfulness table's columns: its flip rate of the top weight
_ADVANTAGE_LABELS: dict[str, str] = {
    "median_fraction_censored": "median fraction to flip (censored)",
    "flip_rate": "Test 1 flip rate of the top item",
}


def mean_sd(stats: Any, kind: Kind = "share") -> str:
    """"41.2% ± 3.0%" (sample sd across seeds), the mean alone with one seed, "—" without."""
    mean = dig(stats, "mean")
    if not is_num(mean):
        return "—"
    sd = dig(stats, "std")
    if not is_num(sd):
        return fmt(mean, kind)
    spread = f"{sd:.2g}" if kind == "number" else f"{100 * sd:.1f}%"
    return f"{fmt(mean, kind)} ± {spread}"


def seeds_section(seeds: Mapping[str, Any] | None, rankings: RankingsMeta,
                  sites_meta: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None
                  ) -> dict[str, Any] | None:
    """The section's content, or ``None`` without a ``seeds.json`` of two or more seeds.

    Args:
        seeds: the parsed ``seeds.json``.
        rankings: ranking metadata (labels, colours) in report order.
        sites_meta: per model, summary.json's ``sites`` (for the sites' labels), when known.

    Returns:
        ``{"seeds": [..], "conventions": [(key, sentence)], "models": [{"name", "accuracy",
        "missing", "sites": [{"name", "label", "columns", "rows", "claims"}]}]}``.
    """
    if not isinstance(seeds, Mapping) or len(seeds.get("seeds") or []) < 2:
        return None
    models = []
    for model, entry in (seeds.get("models") or {}).items():
        sites = []
        for site, block in (dig(entry, "by_site") or {}).items():
            removal = dig(block, "removal") or {}
            columns = [c for c in FAITHFULNESS_COLUMNS
                       if any(is_num(dig(removal, r, c.leaf, "mean")) for r in removal)]
            rows = [{**ranking_meta(rankings, r),
                     "cells": [mean_sd(dig(removal, r, c.leaf), c.kind) for c in columns]}
                    for r in in_order(list(removal), list(rankings))]
            label = dig(sites_meta, model, site, "label") or site
            sites.append({"name": site, "label": str(label),
                          "columns": [{"label": c.label, "tip": c.tip} for c in columns],
                          "rows": rows, "claims": _claims(dig(block, "advantage"), rankings)})
        models.append({
            "name": str(model),
            "accuracy": mean_sd(dig(entry, "metrics", "test_accuracy")),
            "missing": [f"seed {s}: {why}" for s, why in (dig(entry, "missing") or {}).items()],
            "sites": sites,
        })
    conventions = seeds.get("conventions") or {}
    return {"seeds": list(seeds.get("seeds") or []), "models": models,
            "conventions": [(str(k), str(v)) for k, v in conventions.items()]}


def _claims(advantage: Any, rankings: RankingsMeta) -> list[dict[str, Any]]:
    """One line per (claim, measure): in how many seeds the better ranking stays ahead."""
    out: list[dict[str, Any]] = []
    for claim in (advantage or {}).values() if isinstance(advantage, Mapping) else []:
        for measure, result in (claim or {}).items():
            if not isinstance(result, Mapping):
                continue
            better = ranking_meta(rankings, str(result.get("better")))
            than = ranking_meta(rankings, str(result.get("than")))
            out.append({"better": better, "than": than, "measure": measure,
                        "measure_label": _ADVANTAGE_LABELS.get(measure, measure.replace("_", " ")),
                        "holds": result.get("holds"), "n": result.get("n"),
                        "survives": bool(result.get("survives")),
                        "mean_difference": result.get("mean_difference")})
    return out


__all__ = ["mean_sd", "seeds_section"]
