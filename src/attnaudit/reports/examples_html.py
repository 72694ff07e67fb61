"""The example documents of a model's panel: shaded text, flip steps and per-item tables.

Each example saved in ``audit/examples.json`` becomes one card: the document's items shaded by
attention, gradient or attention x gradient (the page script switches between them), the step at
which each ranking flipped the decision, and a per-item table whose rows travel as a numeric payload
that the page script fills in when the table is first opened. Every piece of document text is
escaped; no document text passes through a script or a data attribute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from attnaudit.reports.figures import RANKING_COLORS, RANKING_LABELS, RANKINGS
from attnaudit.reports.markup import JS_UNITS, esc, is_num, num, slug, table

CATEGORY_LABELS: dict[str, str] = {
    "largest_delta_js": "Largest ΔJS",
    "flips_after_one": "Flips after one removal",
    "never_flips": "Never flips",
    "median": "Median document",
}


def examples_block(saved: Sequence[Any] | None, ident: str) -> str:
    """The example documents of one model panel (``ident``: its HTML id), with their filters."""
    examples = [e for e in (saved or []) if isinstance(e, dict)]
    if not examples:
        return '<h3>Example documents</h3><p class="note">No example documents were saved.</p>'
    counts: dict[str, int] = {}
    for e in examples:
        counts[str(e.get("category"))] = counts.get(str(e.get("category")), 0) + 1
    chips = [f'<button class="on" data-filter="all">All ({len(examples)})</button>'] + [
        f'<button data-filter="{esc(c)}">{esc(CATEGORY_LABELS.get(c, c))} ({n})</button>'
        for c, n in counts.items()
    ]
    cards = "".join(_example_card(e, f"{ident}-ex{i}") for i, e in enumerate(examples))
    return (f'<h3>Example documents</h3><div class="examples">'
            f'<div class="filters">Show: {"".join(chips)}</div>{_LEGEND}{cards}</div>')


_LEGEND = """<p class="legend"><span class="sw" style="background:rgba(230,159,0,.8)"></span>
attention (shade relative to the document's largest weight) ·
<span class="sw" style="background:rgba(0,158,115,.8)"></span> gradient / attention × gradient
pushing <i>toward</i> the predicted class ·
<span class="sw" style="background:rgba(204,121,167,.8)"></span> pushing away (each shaded
relative to its largest magnitude in the document). Hover an item for exact values;
<b>outline</b> marks the items a ranking removed before the decision flipped.</p>"""


@dataclass(frozen=True)
class _Example:
    """An example document, normalised: every per-item list has one entry per item."""

    items: list[str]
    attention: list[float | None]
    gradient: list[float | None]
    axg: list[float | None]
    ranks: dict[str, list[int | None]]  # ranking -> 1-based removal rank of each item
    flip_step: dict[str, int | None]


def _normalise(e: dict[str, Any]) -> _Example:
    items = [str(t) for t in e.get("items") or []]
    n = len(items)

    def values(key: str) -> list[float | None]:
        raw = e.get(key) or []
        return [float(v) if is_num(v) else None for v in list(raw)[:n]] + [None] * (n - len(raw))

    ranks: dict[str, list[int | None]] = {}
    for ranking, order in (e.get("removal_order") or {}).items():
        rank: list[int | None] = [None] * n
        for position, index in enumerate(order or []):
            if isinstance(index, int) and 0 <= index < n:
                rank[index] = position + 1
        ranks[str(ranking)] = rank
    steps = {str(k): (int(v) if is_num(v) else None)
             for k, v in (e.get("flip_step") or {}).items()}
    return _Example(items, values("attention"), values("gradient"),
                    values("attention_x_gradient"), ranks, steps)


def _ordered_rankings(names: Iterable[str]) -> list[str]:
    present = set(names)
    return [r for r in RANKINGS if r in present] + sorted(present - set(RANKINGS))


def _example_card(e: dict[str, Any], ident: str) -> str:
    ex = _normalise(e)
    category = str(e.get("category", ""))
    rankings = _ordered_rankings([*ex.ranks, *ex.flip_step])
    label, prediction = e.get("label"), e.get("prediction")
    verdict = ('<span class="ok">correct</span>' if str(label) == str(prediction)
               else '<span class="bad">wrong</span>')
    unit = JS_UNITS.get(str(e.get("js_base", "e")), "")
    delta = e.get("delta_js")
    head = (f'<header><span class="cat cat-{esc(category)}">'
            f"{esc(CATEGORY_LABELS.get(category, category))}</span>"
            f'<h4>{esc(e.get("doc_id", "?"))}</h4>'
            f"<span>gold <b>{esc(label)}</b> · predicted <b>{esc(prediction)}</b> "
            f"{verdict}</span>"
            f"<span>{len(ex.items)} items</span>"
            f'<span>ΔJS {num(delta, ".3g")} {unit if is_num(delta) else ""}</span></header>')
    steps = "".join(_flip_chip(r, ex.flip_step.get(r), len(ex.items)) for r in rankings)
    view = ('<div class="viewbar"><span>Shade by</span>'
            '<button class="on" data-view="a">attention</button>'
            '<button data-view="g">gradient</button>'
            '<button data-view="x">attention × gradient</button>'
            '<span>Outline removed before flip</span><button class="on" data-removed="none">none'
            "</button>" + "".join(
                f'<button data-removed="{esc(r)}">{esc(RANKING_LABELS.get(r, r))}</button>'
                for r in rankings) + "</div>")
    return (f'<article class="example" id="{ident}" data-category="{esc(category)}">{head}'
            f'<div class="flipsteps">{steps}</div>{view}'
            '<div class="doc" data-view="a" data-removed="none">'
            f"{_document_text(ex, rankings)}</div>"
            "<details><summary>Per-item scores and removal order</summary>"
            '<noscript><p class="note">The table needs JavaScript; hover the items above for '
            "their values.</p></noscript>"
            f'<div class="scroll">{_item_table(ex, rankings)}</div></details></article>')


def _flip_chip(ranking: str, step: int | None, n: int) -> str:
    color = RANKING_COLORS.get(ranking, "#6b7280")
    if step is None:
        text = "never flips"
    else:
        text = f"flips after {step} of {n} removed ({step / max(n, 1):.0%})"
    return (f'<span class="flip"><span class="dot" style="background:{color}"></span>'
            f"<b>{esc(RANKING_LABELS.get(ranking, ranking))}</b> {text}</span>")


def _scales(ex: _Example) -> tuple[float, float, float]:
    """Per-document shading scales: the largest weight, |gradient| and |attention x gradient|.

    Each score gets its own scale: attention x gradient is smaller than the gradient by the weights,
    so a shared scale would leave it blank.
    """
    def largest(values: Sequence[float | None]) -> float:
        return max((abs(v) for v in values if v is not None), default=0.0) or 1.0

    return largest(ex.attention), largest(ex.gradient), largest(ex.axg)


def _attention_color(value: float | None, scale: float) -> str:
    alpha = 0.0 if value is None else 0.85 * max(0.0, value) / scale
    return f"rgba(230,159,0,{alpha:.2f})"


def _signed_color(value: float | None, scale: float) -> str:
    if value is None:
        return "transparent"
    alpha = 0.85 * min(1.0, abs(value) / scale)
    rgb = "0,158,115" if value >= 0 else "204,121,167"
    return f"rgba({rgb},{alpha:.2f})"


_SHORT_RANKINGS = {"random": "random", "attention": "attn", "gradient": "grad",
                   "attention_x_gradient": "a×g"}


def _tooltip(ex: _Example, i: int, rankings: Sequence[str]) -> str:
    """Exact values of item ``i``; kept short, as every item of every example carries one."""
    ranks = ", ".join(
        f"{_SHORT_RANKINGS.get(r, r)} {ex.ranks.get(r, [None] * len(ex.items))[i] or '—'}"
        for r in rankings
    )
    return (f"#{i + 1}  attention {num(ex.attention[i], '.4g')}\n"
            f"gradient {num(ex.gradient[i], '+.4g')}  a×g {num(ex.axg[i], '+.4g')}\n"
            f"removal rank: {ranks}")


def _removed_classes(ex: _Example, i: int, rankings: Sequence[str]) -> str:
    """``rm-<ranking>`` for every ranking that removed item ``i`` before its flip."""
    out = []
    for r in rankings:
        rank, step = ex.ranks.get(r, [None] * len(ex.items))[i], ex.flip_step.get(r)
        if rank is not None and step is not None and rank <= step:
            out.append(f"rm-{slug(r)}")
    return " ".join(out)


def _document_text(ex: _Example, rankings: Sequence[str]) -> str:
    a_scale, g_scale, x_scale = _scales(ex)
    spans = []
    for i, item in enumerate(ex.items):
        style = (f"--a:{_attention_color(ex.attention[i], a_scale)};"
                 f"--g:{_signed_color(ex.gradient[i], g_scale)};"
                 f"--x:{_signed_color(ex.axg[i], x_scale)}")
        spans.append(f'<span class="it {_removed_classes(ex, i, rankings)}" style="{style}" '
                     f'title="{esc(_tooltip(ex, i, rankings))}">{esc(item)}</span>')
    return " ".join(spans)


def _item_table(ex: _Example, rankings: Sequence[str]) -> str:
    """The per-item table, filled in by the page script when first opened.

    Long documents have hundreds of items, so the rows travel as one compact numeric payload
    (``data-rows``: attention, gradient, attention x gradient, then the rank lists) instead of
    markup; the item texts and colours come from the shaded text above. Numbers only: no document
    text passes through the payload.
    """
    head = ["#", "Item", "Attention", "Gradient", "Attention × gradient"]
    head += [f"Rank: {RANKING_LABELS.get(r, r)}|Removal order under the {r} ranking; "
             "outlined: removed before the decision flipped" for r in rankings]
    n = len(ex.items)
    payload: list[list[Any]] = [[_compact(v) for v in values]
                                for values in (ex.attention, ex.gradient, ex.axg)]
    payload += [ex.ranks.get(r, [None] * n) for r in rankings]
    steps = [ex.flip_step.get(r) for r in rankings]
    colors = [RANKING_COLORS.get(r, "#6b7280") for r in rankings]
    empty = table(head, [], cls="num items sortable")
    return empty.replace(
        "<tbody>",
        f'<tbody data-rows="{esc(json.dumps(payload, separators=(",", ":")))}" '
        f'data-steps="{esc(json.dumps(steps))}" data-colors="{esc(json.dumps(colors))}">',
    )


def _compact(value: float | None) -> float | None:
    """Six significant digits: exact enough to read, short enough for long documents."""
    return None if value is None else float(f"{value:.6g}")
