"""The report's *Layers and heads* section of a transformer model, as plain data (torch-free).

A transformer (``attnaudit.models.hf``) declares one attention site per layer, ``L{l}`` (the [CLS]
row's attention over the tokens, mean of the heads), and one per head, ``L{l}.h{h}``; a 6 x 12
MiniLM has 78. Each is audited like the paper's sites, so summary.json has a full entry per site.
Giving each its own section would bury the report, so for such a model:

* the per-site sections are kept for the first site (the audited default: plain hf's last layer,
  hf-attnpool's ``pool``), for the layer sites ``L{l}`` and for any other site that is not a head's
  (:func:`full_sites`); head sites are summarised in this section only, and the page says so;
* this section shows (1) a layer x ranking grid of Test 1 and Test 2 over the layer sites, as a
  table with the bootstrap intervals of summary.json and as a heat map; (2) a layer x head heat map
  of one faithfulness number per head site (:data:`HEAD_MEASURE` of the :data:`HEAD_RANKING`
  ranking) and the heads ranked by it; (3) a few documents with their tokens shaded by every
  layer's attention, one row per layer.

Which site is which is read from the site's metadata when it carries integer ``layer`` (and
``head``) fields, else parsed from its name (:func:`layer_site`); a model without such sites (the
paper's ``token``, ``sentence``, ``word``) gets no section and an unchanged report. Every number is
summary.json's as written (tests compare them); only the example documents read the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from attnaudit.measures.base import Kind
from attnaudit.reports.faithfulness import bootstrap_text, dig, fmt, interval, interval_cell
from attnaudit.reports.figures.common import inline
from attnaudit.reports.figures.transformer import (
    CENSORED,
    LAYERS,
    POPULATION,
    plot_head_heatmap,
    plot_layer_grid,
)
from attnaudit.reports.loading import ModelResults, site_rows
from attnaudit.reports.markup import flip_text, is_num, js_value, safe_color, shade, sig
from attnaudit.results.advice import LAYER_SITE
from attnaudit.results.examples import select_examples
from attnaudit.results.tables import erasure_rows, in_order
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)

#: ``L{layer}`` or ``L{layer}.h{head}``, both counted from 0 (``attnaudit.models.hf``'s site names)
SITE_NAME = LAYER_SITE
#: the ranking and the summary.json measure (``by_site[site]["removal"][ranking][measure]``) of the
#: head heat map: how many of the tokens the head's attention ranks first must go before the
#: decision flips. The censored median keeps documents that never flip (as n + 1 of n), so a head
#: whose ranking rarely flips the decision cannot look good on the few documents it does flip.
HEAD_RANKING = "attention"
HEAD_MEASURE = "median_fraction_censored"
HEAD_MEASURE_TEXT = ("censored median fraction of tokens removed, most-attended first by the head's "
                     "own attention, before the decision first flips")
#: heads listed under the heat map, most faithful first
TOP_HEADS = 5
#: documents shaded layer by layer (one per example category, at most)
EXAMPLES = 4
#: Test 1's columns of the grid: (label, tooltip, summary.json path under ``single_weight``, kind)
TEST1_COLUMNS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("i* flips", "Share of documents whose decision flips when the top attention weight i* is "
     "erased", ("flip_rate", "max"), "share"),
    ("r flips", "Share of documents whose decision flips when a random token r is erased",
     ("flip_rate", "random"), "share"),
    ("median ΔJS", "Median over documents of JS(i*) − JS(r): how much more erasing the top weight "
     "moves the output than erasing a random token", ("median_delta_js",), "js"),
)


@dataclass(frozen=True)
class LayerSite:
    """Where a site sits in a transformer: its layer and, for one head's site, its head (from 0)."""

    layer: int
    head: int | None = None


def layer_site(name: str, meta: Mapping[str, Any] | None = None) -> LayerSite | None:
    """The layer (and head) of a transformer site, else ``None``.

    Explicit metadata wins: integer ``layer`` (and ``head``, absent or null for all heads) fields of
    the site's entry in summary.json's ``sites``. Audits that do not write them are read by name,
    ``L{l}`` (layer ``l``, all heads) or ``L{l}.h{h}`` (head ``h`` of layer ``l``), both from 0 as
    ``attnaudit.models.hf`` names them; no other site of any model matches that pattern.
    """
    layer, head = (meta or {}).get("layer"), (meta or {}).get("head")
    if isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0:
        explicit = isinstance(head, int) and not isinstance(head, bool) and head >= 0
        return LayerSite(layer, head if explicit else None)
    match = SITE_NAME.fullmatch(name)
    if match is None:
        return None
    return LayerSite(int(match[1]), int(match[2]) if match[2] is not None else None)


def layer_sites(summary: Mapping[str, Any]) -> dict[str, LayerSite]:
    """Every audited transformer site of a summary (``by_site`` order) with its layer and head."""
    meta = summary.get("sites") or {}
    out: dict[str, LayerSite] = {}
    for site in summary.get("by_site") or {}:
        where = layer_site(str(site), meta.get(site) if isinstance(meta.get(site), Mapping) else None)
        if where is not None:
            out[str(site)] = where
    return out


def full_sites(summary: Mapping[str, Any]) -> list[str]:
    """The sites that get a full per-site section: every site but the head sites, and the first
    site (the audited default) even when it is a head's. A model without head sites keeps all."""
    sites = [str(s) for s in summary.get("by_site") or {}]
    heads = {s for s, where in layer_sites(summary).items() if where.head is not None}
    return [s for i, s in enumerate(sites) if i == 0 or s not in heads]


# ----------------------------------------------------------------------------------------------
# Cells: a number as summary.json has it, its text and its bootstrap interval
# ----------------------------------------------------------------------------------------------


def cell(value: Any, bounds: Any, kind: str, js_unit: str = "nats") -> dict[str, Any]:
    """A table cell: ``value`` (the number shown, JS converted to ``js_unit``), ``text``, and
    ``interval`` ("[lo, hi]", empty without one). ``kind``: ``"share"``, ``"censored"`` (past 1 reads
    "never flips", an interval reaching past 1 "from lo to never flipping") or ``"js"``."""
    if kind == "js":
        pair = interval(bounds)
        return interval_cell(js_value(value, js_unit),
                             [js_value(v, js_unit) for v in pair] if pair else None,
                             partial(sig, digits=2))
    format_kind: Kind = "censored" if kind == "censored" else "share"
    return interval_cell(float(value) if is_num(value) else None, bounds,
                         partial(fmt, kind=format_kind), format_kind)


def layer_label(layer: int) -> str:
    """``L2``: a layer as the CLI names its site (``--sites L2``), counted from 0."""
    return f"L{layer}"


def head_label(where: LayerSite) -> str:
    """``L2.h3``: a head as the CLI names its site, both counted from 0."""
    return f"L{where.layer}.h{where.head or 0}"


def architecture_text(summary: Mapping[str, Any]) -> str | None:
    """One sentence on the audited transformer (summary.json ``architecture``, written by the
    audit): its family, depth, heads and their grouping, and where it classifies."""
    arch = summary.get("architecture")
    if not isinstance(arch, Mapping) or not arch.get("family"):
        return None
    parts = [f"Family {arch['family']}"]
    if is_num(arch.get("layers")) and is_num(arch.get("heads")):
        parts.append(f"{arch['layers']} layers × {arch['heads']} attention heads")
    if arch.get("head_grouping"):
        parts.append(str(arch["head_grouping"]))
    if arch.get("classification"):
        parts.append(f"classifies from {arch['classification']}")
    return "; ".join(parts) + "."


def defaults_text(summary: Mapping[str, Any]) -> str | None:
    """One sentence on the transformer's default sites and query rows, whether this audit used
    them, and why (summary.json ``defaults``, written by the audit); None for audits without it."""
    defaults = summary.get("defaults")
    if not isinstance(defaults, Mapping) or not defaults.get("sites"):
        return None
    rows = "every query row" if defaults.get("query_rows") == "all" else "the classification row"
    steps = {"eraser": " on ERASER's step schedule", "every": " at every step"}.get(
        str(defaults.get("attention_steps")), "")
    used = "this audit's" if defaults.get("used") else "not this audit's, which chose its own"
    label = "Default sites" if len(defaults["sites"]) > 1 else "Default site"
    return (f"{label} {', '.join(map(str, defaults['sites']))}, erased from {rows}{steps} "
            f"({used}): {defaults.get('why', '')}").rstrip(": ")


# ----------------------------------------------------------------------------------------------
# The section
# ----------------------------------------------------------------------------------------------


def transformer_section(
    m: ModelResults,
    rankings: Mapping[str, Mapping[str, str]],
    js_unit: str,
    folder: Path,
    ident: str,
    site_ids: Mapping[str, str],
    notes: list[str],
    category_labels: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The *Layers and heads* section of one model, or ``None`` when it has no transformer site.

    Args:
        m: the model's saved results.
        rankings: ranking metadata (label, colour) in report order.
        js_unit: the unit JS divergences are shown in (stored in nats).
        folder: where this section's figures are drawn.
        ident: the section's HTML id.
        site_ids: site name -> HTML id of its full section (sites without one are absent).
        notes: the model's notes; a figure that cannot be drawn adds one.
        category_labels: example category -> its label on the page (as the sites' examples).

    Returns:
        ``{"id", "n_layers", "n_heads", "full", "summarised", "rankings", "test1_columns",
        "layers", "grid_figure", "heads", "examples", "extra_row", "attention", "conventions",
        "bootstrap"}``; ``heads`` is ``None`` without head sites, ``layers`` empty without layer
        sites, ``attention`` the attention ranking's metadata (``None`` when not audited).
    """
    summary = m.summary or {}
    where = layer_sites(summary)
    if not where:
        return None
    by_site = summary.get("by_site") or {}
    names = in_order([r for s in where for r in (dig(by_site, s, "removal") or {})],
                     list(rankings))
    meta = [{"name": r, "label": str((rankings.get(r) or {}).get("label", r)),
             "color": safe_color((rankings.get(r) or {}).get("color"))} for r in names]
    layers = sorted(((s, w) for s, w in where.items() if w.head is None), key=lambda sw: sw[1].layer)
    heads = [(s, w) for s, w in where.items() if w.head is not None]
    rows = [_layer_row(summary, site, w, names, js_unit, site_ids) for site, w in layers]
    full = full_sites(summary)
    labels = summary.get("sites") or {}
    first = next(iter(by_site))
    # the examples' last row: the audited default site when it is no layer site (``pool``)
    extra = None if first in dict(layers) else str(dig(labels, first, "label") or first)
    return {
        "id": ident,
        # the layers actually audited (a lone L5 is one layer, not six), by name
        "n_layers": len({w.layer for w in where.values()}),
        "layer_names": [layer_label(x) for x in sorted({w.layer for w in where.values()})],
        "architecture": architecture_text(summary),
        "defaults": defaults_text(summary),
        "n_heads": max((w.head for _, w in heads if w.head is not None), default=-1) + 1,
        "full": [{"name": s, "label": str(dig(labels, s, "label") or s),
                  "href": site_ids.get(s)}
                 for s in full],
        "summarised": [s for s in by_site if s not in full],
        "rankings": meta,
        "test1_columns": [{"label": label, "tip": tip} for label, tip, _, _ in TEST1_COLUMNS],
        "layers": rows,
        "grid_figure": _grid_figure(rows, names, rankings, folder, notes) if rows else None,
        "heads": _heads(summary, heads, folder, notes, site_ids) if heads else None,
        "examples": _examples(m, layers, rankings, category_labels or {}),
        "extra_row": extra,
        "attention": next((r for r in meta if r["name"] == HEAD_RANKING), None),
        "conventions": _conventions(summary, bool(heads)),
        "bootstrap": bootstrap_text(summary.get("bootstrap") or {}),
    }


def _layer_row(summary: Mapping[str, Any], site: str, where: LayerSite, names: Sequence[str],
               js_unit: str, site_ids: Mapping[str, str]) -> dict[str, Any]:
    """One layer of the grid: Test 1's columns and, per ranking, Test 2's censored median and
    never-flipped share, each with its interval."""
    entry = dig(summary, "by_site", site) or {}
    intervals = entry.get("intervals") or {}
    sw = entry.get("single_weight") or {}
    test2 = []
    for name in names:
        stats = dig(entry, "removal", name) or {}
        bounds = dig(intervals, "removal", name) or {}
        test2.append({"name": name,
                      "median": cell(stats.get("median_fraction_censored"),
                                     bounds.get("median_fraction_censored"), "censored"),
                      "never": cell(stats.get("share_never_flipped"),
                                    bounds.get("share_never_flipped"), "share")})
    return {
        "site": site, "layer": where.layer + 1, "label": layer_label(where.layer),
        "site_label": str(dig(summary, "sites", site, "label") or site),
        "href": site_ids.get(site), "n": sw.get("n"), "n_docs": entry.get("n_docs"),
        "test1": [cell(dig(sw, *path), dig(intervals, "single_weight", *path), kind, js_unit)
                  for _, _, path, kind in TEST1_COLUMNS],
        "test2": test2,
    }


def _grid_figure(rows: Sequence[Mapping[str, Any]], names: Sequence[str],
                 rankings: Mapping[str, Mapping[str, str]], folder: Path, notes: list[str]
                 ) -> dict[str, Any] | None:
    """The layer x ranking heat map of the grid's shares (Test 1's flip rates, Test 2 per ranking)."""
    labels = [str(r["label"]) for r in rows]
    # the flip-rate columns only: median ΔJS is no share and stays in the table
    test1 = {c[0]: [r["test1"][j]["value"] for r in rows]
             for j, c in enumerate(TEST1_COLUMNS) if c[3] == "share"}
    median = {n: [r["test2"][k]["median"]["value"] for r in rows] for k, n in enumerate(names)}
    never = {n: [r["test2"][k]["never"]["value"] for r in rows] for k, n in enumerate(names)}
    title = "Test 1 and Test 2 per layer"
    caption = (f"Rows: the layer sites, {LAYERS}. One colour scale, darker = larger. Left: the "
               "share of documents whose decision flips when the top attention weight i* or a "
               "random token r is erased. Middle: each ranking's censored median fraction of "
               "tokens removed before the decision first flips (lower, lighter = sooner, more "
               "faithful). Right: the share of documents that never flip. "
               f"{POPULATION.capitalize()}; {CENSORED}.")
    return draw_inline("layer_grid", title, caption, notes,
                       lambda path: plot_layer_grid(labels, test1, median, never, rankings, path),
                       folder / "layer_grid.png")


def _heads(summary: Mapping[str, Any], heads: Sequence[tuple[str, LayerSite]], folder: Path,
           notes: list[str], site_ids: Mapping[str, str]) -> dict[str, Any]:
    """The head heat map (one :data:`HEAD_MEASURE` per head site), its table and the top heads."""
    n_layers = max(w.layer for _, w in heads) + 1
    n_heads = max(w.head or 0 for _, w in heads) + 1
    grid: list[list[dict[str, Any] | None]] = [[None] * n_heads for _ in range(n_layers)]
    entries = []
    for site, where in heads:
        entry = dig(summary, "by_site", site) or {}
        stats = dig(entry, "removal", HEAD_RANKING) or {}
        bounds = dig(entry, "intervals", "removal", HEAD_RANKING) or {}
        value = cell(stats.get(HEAD_MEASURE), bounds.get(HEAD_MEASURE), "censored")
        head = {"site": site, "layer": where.layer + 1, "head": (where.head or 0) + 1,
                "label": head_label(where), "href": site_ids.get(site), **value,
                "n": stats.get("n"),
                "never": cell(stats.get("share_never_flipped"), bounds.get("share_never_flipped"),
                              "share"),
                "beats_random": cell(stats.get("share_beats_random"),
                                     bounds.get("share_beats_random"), "share")}
        grid[where.layer][where.head or 0] = head
        entries.append(head)
    # lowest first; among equal medians the tighter upper bound, then the position, decides. A head
    # whose median document never flips ("never", past 1) is not ranked: ties of "never" say nothing
    ranked = sorted((e for e in entries if e["value"] is not None and e["value"] <= 1),
                    key=lambda e: (e["value"], e["hi"] if is_num(e["hi"]) else float("inf"),
                                   e["layer"], e["head"]))
    measure = f"the {HEAD_RANKING} ranking's {HEAD_MEASURE_TEXT}"
    figure = draw_inline(
        "head_heatmap", "Which heads' attention is most faithful?",
        f"Each cell is one head's site L{{l}}.h{{h}}: {measure} ({POPULATION}). Lower = fewer "
        f"removals = more faithful (darker). {CENSORED.capitalize()}. Rows are layers L0 to "
        f"L{n_layers - 1} (L0 nearest the input), columns heads h0 to h{n_heads - 1}, as "
        "--sites names them.", notes,
        lambda path: plot_head_heatmap(
            [[c["value"] if c else None for c in row] for row in grid], path,
            measure=measure, better="lower = more faithful",
            title=f"Per head: {HEAD_RANKING} ranking's censored median fraction removed before "
                  "the first flip"),
        folder / "head_heatmap.png")
    return {
        "ranking": HEAD_RANKING, "measure": HEAD_MEASURE, "measure_text": measure,
        "n_layers": n_layers, "n_heads": n_heads,
        "grid": [{"layer": i + 1, "label": layer_label(i), "cells": row}
                 for i, row in enumerate(grid)],
        "top": ranked[:TOP_HEADS], "n_ranked": len(ranked), "figure": figure,
        "n_never": sum(e["value"] is not None and e["value"] > 1 for e in entries),
    }


def draw_inline(key: str, title: str, caption: str, notes: list[str],
                draw: Callable[[Path], Path | None], path: Path) -> dict[str, Any] | None:
    """Draw one figure with ``draw(path)`` and inline it (``None`` when ``draw`` draws nothing); a
    figure that fails costs a note, not the report. The report's other figures are drawn through it
    too (:mod:`.context`, which imports this module)."""
    try:
        drawn = draw(path)
    except (KeyError, ValueError, TypeError) as err:
        log.warning("figure %s not drawn: %s", key, err)
        notes.append(f"Figure “{title}” could not be drawn: {type(err).__name__}: {err}")
        return None
    if drawn is None:
        return None
    return inline(drawn, key=key, title=title, caption=caption)


def _conventions(summary: Mapping[str, Any], heads: bool) -> list[tuple[str, str]]:
    out = [
        ("layers", f"Rows are layers as --sites names them, {LAYERS}; a head's site L{{l}}.h{{h}} "
                   "is one head's attention from the classification position (both from 0)."),
        ("population", f"Every number covers the {POPULATION} at the site, as summary.json's."),
        ("test1", "Test 1 erases one token's attention (the top weight i*, or a random token r) and "
                  "asks whether the decision flips; ΔJS = JS(i*) − JS(r) in the report's JS unit."),
        ("median_fraction_censored", f"Test 2 ranks tokens per ranking and erases them until the "
                                     f"decision flips; {CENSORED}."),
        ("share_never_flipped", "Share of all documents whose decision survives erasing every "
                                "token (its denominator is every document)."),
    ]
    if heads:
        out.append(("heads", f"The head heat map and list show one number per head: the "
                             f"{HEAD_RANKING} ranking's {HEAD_MEASURE} ({HEAD_MEASURE_TEXT}); "
                             "lower is more faithful. Heads whose intervals overlap are not told "
                             "apart by these documents."))
    if not summary.get("bootstrap"):
        out.append(("intervals", "This audit has no bootstrap intervals (--bootstrap 0)."))
    return out


# ----------------------------------------------------------------------------------------------
# Example documents, shaded layer by layer
# ----------------------------------------------------------------------------------------------


def _examples(m: ModelResults, layers: Sequence[tuple[str, LayerSite]],
              rankings: Mapping[str, Mapping[str, str]], category_labels: Mapping[str, str]
              ) -> list[dict[str, Any]]:
    """A few documents (chosen as the first site's examples are), each token shaded once per layer
    site, by that layer's attention; the first site follows as the last row when it is no layer
    site (hf-attnpool's ``pool``). Empty without items or layer sites."""
    t, summary = m.tables, m.summary or {}
    sites = list(summary.get("by_site") or {})
    if not layers or not sites or t.single is None or t.removal is None or t.items is None \
            or "site" not in t.items.columns:
        return []
    first = sites[0]
    removal = erasure_rows(t.removal, "attention")
    single, first_removal = site_rows(t.single, first), site_rows(removal, first)
    first_items = site_rows(t.items, first)
    if single is None or first_removal is None or first_items is None:
        return []
    chosen: list[tuple[str, str]] = []
    for choice in select_examples(single, first_removal, first_items, per_category=1):
        if choice.doc_id not in [d for d, _ in chosen]:
            chosen.append((choice.doc_id, choice.category))
    chosen = chosen[:EXAMPLES]
    shown = [(s, layer_label(w.layer)) for s, w in layers]
    if first not in dict(shown):
        shown.append((first, str(dig(summary, "sites", first, "label") or first)))
    wanted = {s for s, _ in shown}
    items = t.items[t.items["site"].astype(str).isin(wanted)
                    & t.items["doc_id"].astype(str).isin([d for d, _ in chosen])]
    by_key = {(str(k[0]), str(k[1])): g.sort_values("item")
              for k, g in items.groupby([items["site"].astype(str), items["doc_id"].astype(str)])}
    rows = removal[removal["site"].astype(str).isin(wanted)
                   & removal["doc_id"].astype(str).isin([d for d, _ in chosen])]
    steps = {(str(r["site"]), str(r["doc_id"]), str(r["ranking"])): r for r in rows.to_dict("records")}
    ranking = HEAD_RANKING if HEAD_RANKING in rankings else None
    out = []
    for doc_id, category in chosen:
        layer_rows = []
        for site, label in shown:
            frame = by_key.get((site, doc_id))
            if frame is None:
                continue
            layer_rows.append(_shaded_row(site, label, frame, steps, doc_id, ranking))
        if not layer_rows:
            continue
        info = single[single["doc_id"].astype(str) == doc_id].to_dict("records")
        head = info[0] if info else {}
        out.append({"doc_id": doc_id, "category": category,
                    "category_label": category_labels.get(category, category),
                    "label": head.get("label"), "prediction": head.get("prediction"),
                    "correct": str(head.get("label")) == str(head.get("prediction")),
                    "n_items": max(len(r["spans"]) for r in layer_rows), "rows": layer_rows})
    return out


def _shaded_row(site: str, label: str, frame: pd.DataFrame,
                steps: Mapping[tuple[str, str, str], Mapping[str, Any]], doc_id: str,
                ranking: str | None) -> dict[str, Any]:
    """One layer's row of an example: the tokens shaded by the site's weights, relative to the
    row's largest weight (every layer uses its own scale: layers differ in how peaked they are)."""
    weights = [float(w) if is_num(w) else None for w in frame["weight"].tolist()]
    texts = [str(x) for x in frame["text"].tolist()]
    scale = max((w for w in weights if w is not None), default=0.0) or 1.0
    spans = [{"text": text, "style": f"background:{shade(w, scale, signed_=False)}",
              "title": f"#{i + 1} {text} · {label} weight {sig(w, 4)}"}
             for i, (text, w) in enumerate(zip(texts, weights, strict=True))]
    flip = None
    row = steps.get((site, doc_id, ranking)) if ranking else None
    if row is not None and not row.get("single_item"):  # one token: Test 2 has nothing to rank
        step = row.get("removed_at_flip")
        flip = flip_text(int(step) if is_num(step) else None, len(texts))
    return {"site": site, "label": label, "spans": spans, "flip": flip}


__all__ = [
    "HEAD_MEASURE",
    "HEAD_RANKING",
    "LayerSite",
    "draw_inline",
    "full_sites",
    "layer_site",
    "layer_sites",
    "transformer_section",
]
