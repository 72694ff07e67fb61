"""Telling example documents, chosen and assembled from the saved tables alone (no model).

:func:`select_examples` picks per site the documents with the largest ΔJS, those flipped by one
attention-ranked removal, those that never flip, and those nearest the median ΔJS (the audit may call
it without ``items`` to decide which documents' items to store). :func:`example_records` turns the
picks into JSON-ready records from ``items.parquet``: each item's text, weight, per-ranking score and
removal rank, and the step at which each ranking flipped the decision.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

from attnaudit.results.tables import flag, in_order, measured, multi_item, rankings_of, sites_of

#: example categories, in report order
CATEGORIES: tuple[str, ...] = ("largest_delta_js", "flips_after_one", "never_flips", "median")


class ExampleChoice(NamedTuple):
    """One chosen example: the site it illustrates, the document and why it was chosen."""

    site: str
    doc_id: str
    category: str


def select_examples(
    single: pd.DataFrame,
    removal: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    per_category: int = 3,
) -> list[ExampleChoice]:
    """Choose up to ``per_category`` documents per category and site, each document once per site.

    Args:
        single: ``single_weight.parquet`` rows.
        removal: ``removal.parquet`` rows.
        items: ``items.parquet`` rows; when given, only documents whose items it holds are chosen.
        per_category: documents per category and site.

    Returns:
        Choices in site order, then category order (:data:`CATEGORIES`).
    """
    chosen: list[ExampleChoice] = []
    for site in sites_of(single, removal):
        site_single = single[single["site"].astype(str) == site]
        site_removal = removal[removal["site"].astype(str) == site]
        if items is not None:
            have = set(items.loc[items["site"].astype(str) == site, "doc_id"].astype(str))
            site_single = site_single[site_single["doc_id"].astype(str).isin(have)]
            site_removal = site_removal[site_removal["doc_id"].astype(str).isin(have)]
        seen: set[str] = set()
        for category, doc_ids in _picks(site_single, site_removal, per_category).items():
            for doc_id in doc_ids:
                if doc_id not in seen:
                    seen.add(doc_id)
                    chosen.append(ExampleChoice(site, doc_id, category))
    return chosen


def _picks(single: pd.DataFrame, removal: pd.DataFrame, k: int) -> dict[str, list[str]]:
    used = measured(single).dropna(subset=["delta_js"])
    multi = multi_item(removal)
    # The attention ranking is the one the categories are about; without it, the first non-random.
    names = [r for r in rankings_of(multi) if r != "random"]
    ranking = "attention" if "attention" in names else (names[0] if names else None)
    ranked = multi[multi["ranking"].astype(str) == ranking] if ranking else multi.iloc[:0]
    picks = {
        "largest_delta_js": used.nlargest(k, "delta_js")["doc_id"].astype(str).tolist(),
        "flips_after_one": ranked.loc[ranked["removed_at_flip"] == 1, "doc_id"].astype(str)
        .head(k).tolist(),
        "never_flips": ranked.loc[flag(ranked["never_flipped"]), "doc_id"].astype(str)
        .head(k).tolist(),
        "median": [],
    }
    if len(used):
        distance = (used["delta_js"] - used["delta_js"].median()).abs()
        picks["median"] = used.loc[distance.nsmallest(k).index, "doc_id"].astype(str).tolist()
    return picks


def example_records(
    single: pd.DataFrame,
    removal: pd.DataFrame,
    items: pd.DataFrame,
    chosen: list[ExampleChoice],
    *,
    rankings: list[str] | tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """One JSON-ready record per choice that ``items`` covers (others are skipped).

    Record fields: ``site, doc_id, category, label, prediction, n_items, items`` (texts, in
    position order), ``weights`` (attention at the site), ``scores`` and ``ranks`` (ranking ->
    per-item list; ``ranks`` 0 = removed first), ``flip_step`` (ranking -> items removed at the
    first flip, ``None`` = never), ``delta_js`` (nats, ``None`` when not measured), ``cannot_flip``.
    ``rankings`` orders the per-ranking maps (others follow, sorted).
    """
    keys = ["site", "doc_id"]
    by_doc = {k: g.sort_values("item") for k, g in
              items.assign(site=items["site"].astype(str), doc_id=items["doc_id"].astype(str))
              .groupby(keys, sort=False)}
    single_rows = {(str(r["site"]), str(r["doc_id"])): r for r in single.to_dict("records")}
    removal_rows: dict[tuple[str, str], list[dict[Any, Any]]] = {}
    for r in removal.to_dict("records"):
        removal_rows.setdefault((str(r["site"]), str(r["doc_id"])), []).append(r)
    order = in_order([c[len("rank_"):] for c in items.columns if c.startswith("rank_")],
                     list(rankings))
    records: list[dict[str, Any]] = []
    for choice in chosen:
        rows = by_doc.get((choice.site, choice.doc_id))
        if rows is None or not len(rows):
            continue
        sw = single_rows.get((choice.site, choice.doc_id), {})
        rm = removal_rows.get((choice.site, choice.doc_id), [])
        first = rm[0] if rm else sw
        steps = {str(r["ranking"]): _int_or_none(r.get("removed_at_flip")) for r in rm}
        records.append({
            "site": choice.site,
            "doc_id": choice.doc_id,
            "category": choice.category,
            "label": _text(first.get("label")),
            "prediction": _text(first.get("prediction")),
            "n_items": len(rows),
            "items": [str(t) for t in rows["text"]],
            "weights": _floats(rows["weight"]),
            "scores": {r: _floats(rows[f"score_{r}"]) for r in order if f"score_{r}" in rows},
            "ranks": {r: [_int_or_none(v) for v in rows[f"rank_{r}"]] for r in order},
            "flip_step": {r: steps[r] for r in in_order(list(steps), order)},
            "delta_js": _float_or_none(sw.get("delta_js")),
            "cannot_flip": bool(flag(pd.Series([first.get("cannot_flip")])).iloc[0]),
        })
    return records


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int_or_none(value: Any) -> int | None:
    number = _float_or_none(value)
    return None if number is None else int(number)


def _floats(values: pd.Series) -> list[float | None]:
    return [_float_or_none(v) for v in values]
