"""Test 2 figures (items removed until the decision flips): the distributions of the fraction and
attention mass removed (boxes, from ``removal.parquet`` rows), and the shares of documents that
never flip and of attention vs gradient (bars, from summary.json: the report's own numbers).

Rankings, their labels and colours come from summary.json's ``rankings`` (:data:`RankingsMeta`);
a ranking the metadata does not name is still drawn, under its own name, in grey.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import cbook
from matplotlib.axes import Axes

from attnaudit.reports.figures.common import (
    HORIZONTAL,
    RankingsMeta,
    color_of,
    figure,
    finite,
    label_of,
    no_data,
    percent,
    save,
    share_axis_top,
)
from attnaudit.results.tables import flag, in_order, multi_item, rankings_of


def plot_removal_boxes(
    frames: Mapping[str, pd.DataFrame],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
    *,
    column: str,
) -> Path:
    """Box plots of ``column`` (``fraction_removed`` or ``mass_removed``) at the first flip.

    One box per ranking, grouped by panel title (``frames``: title -> ``removal`` rows of one site).
    Documents that never flip and one-item documents are left out of the boxes; beside each box:
    the documents in it and those that never flipped.
    """
    titles = list(frames)
    names = in_order({r for df in frames.values() for r in rankings_of(df)}, list(rankings))
    layout = _layout(titles, names)
    what = ("fraction of items removed" if column == "fraction_removed"
            else "attention mass removed (sum of the original weights)")
    with figure(10.5, 1.3 + 0.3 * max(len(layout), 3)) as fig:
        ax = fig.subplots()
        if not names or all(df.empty for df in frames.values()):
            no_data(ax, "no removal results")
            return save(fig, path)
        notes: dict[float, str] = {}
        for y, title, ranking in layout:
            if ranking is None:
                notes[y] = _single_item_note(frames[title])
                continue
            df = frames[title]
            notes[y] = _box(ax, y, df[df["ranking"].astype(str) == ranking], column,
                            color_of(rankings, ranking))
        _label_rows(ax, layout, rankings, notes)
        ax.set_xlim(-0.02, 1.02)
        ax.xaxis.set_major_formatter(percent)
        xlabel = f"{what} at the first flip (documents that flip)"
        if len(titles) == 1:  # no header row to carry the one-item count
            xlabel += f"  ·  {_single_item_note(frames[titles[0]])}"
        ax.set_xlabel(xlabel + "\nbeside each box: n = documents in the box; never = documents"
                      " with 2+ items that never flip")
        ax.set_title("How much must go before the decision flips? (less = the ranking found what "
                     "matters sooner)" if column == "fraction_removed"
                     else "Attention mass removed before the decision flips", loc="left")
        ax.grid(axis="y", visible=False)
        return save(fig, path)


def _layout(titles: Sequence[str], names: Sequence[str]) -> list[tuple[float, str, str | None]]:
    """Rows top to bottom: (y, title, ranking); ranking ``None`` is a title's header row (only when
    there are several titles)."""
    rows: list[tuple[float, str, str | None]] = []
    y = 0.0
    for title in titles:
        if len(titles) > 1:
            rows.append((y, title, None))
            y -= 1
        for name in names:
            rows.append((y, title, name))
            y -= 1
        y -= 0.4
    return rows


def _box(ax: Axes, y: float, rows: pd.DataFrame, column: str, color: str) -> str:
    """Draw one box of the documents that flipped; return the note for the right margin."""
    multi = multi_item(rows)
    never = flag(multi["never_flipped"]) if "never_flipped" in multi else multi[column].isna()
    values = multi.loc[~never, column].dropna().to_numpy(float)
    if len(values):
        stats = cbook.boxplot_stats(values)
        ax.bxp(stats, positions=[y], widths=0.62, patch_artist=True, showfliers=True,
               boxprops={"facecolor": color, "alpha": 0.85, "edgecolor": "#374151"},
               medianprops={"color": "#111827", "linewidth": 1.6},
               flierprops={"marker": ".", "markersize": 3, "markeredgecolor": "#6b7280"},
               **HORIZONTAL)
    else:
        ax.text(0.5, y, "no document flipped", ha="center", va="center", color="#6b7280")
    share = float(never.mean()) if len(multi) else math.nan
    never_text = "—" if math.isnan(share) else f"{int(never.sum())} ({percent(share)})"
    return f"n={len(values)} · never {never_text}"


def _label_rows(ax: Axes, layout: Sequence[tuple[float, str, str | None]],
                rankings: RankingsMeta, notes: dict[float, str]) -> None:
    """Ranking names on the left, panel titles in bold, counts on a right-hand axis."""
    ys = [y for y, _, _ in layout]
    ax.set_yticks(ys, [label_of(rankings, r) if r is not None else t for _, t, r in layout])
    for tick, (_, _, ranking) in zip(ax.get_yticklabels(), layout, strict=True):
        if ranking is None:
            tick.set_fontweight("bold")
            tick.set_color("#111827")
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    right = ax.secondary_yaxis("right")
    right.set_yticks(list(notes), list(notes.values()))
    right.tick_params(length=0, labelsize=8, labelcolor="#4b5563")
    right.spines["right"].set_visible(False)


def _single_item_note(rows: pd.DataFrame) -> str:
    if "single_item" not in rows or "doc_id" not in rows:
        return ""
    return f"one-item documents left out: {rows.loc[flag(rows['single_item']), 'doc_id'].nunique()}"


def plot_never_flipped(
    shares: Mapping[str, Mapping[str, float | None]],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
) -> Path:
    """Bar chart of the share of documents whose decision never flips (title -> ranking -> share,
    from summary.json), the share axis scaled to the data."""
    with figure(min(10.5, max(7.5, 1.6 + 1.5 * len(shares))), 3.6) as fig:
        ax = fig.subplots()
        draw_never_flipped(ax, shares, rankings)
        return save(fig, path)


def draw_never_flipped(ax: Axes, shares: Mapping[str, Mapping[str, float | None]],
                       rankings: RankingsMeta) -> None:
    """The bars of :func:`plot_never_flipped` on ``ax``. The y axis stops a little above the largest
    share (a 0-100% axis would flatten shares of a few per cent into slivers)."""
    titles = list(shares)
    names = in_order({r for s in shares.values() for r in s}, list(rankings))
    if not titles or not names:
        no_data(ax, "no removal results")
        return
    width = 0.8 / len(names)
    every: list[float | None] = []
    for j, name in enumerate(names):
        xs = np.arange(len(titles)) + (j - (len(names) - 1) / 2) * width
        values = [shares[t].get(name) for t in titles]
        every += values
        numbers = [math.nan if v is None else float(v) for v in values]
        bars = ax.bar(xs, np.nan_to_num(numbers), width=width * 0.92,
                      label=label_of(rankings, name), color=color_of(rankings, name))
        ax.bar_label(bars, labels=["" if math.isnan(v) else percent(v) for v in numbers],
                     fontsize=7.5, padding=2)
    ax.set_xticks(np.arange(len(titles)), titles)
    ax.set_ylim(0, share_axis_top(every))
    ax.yaxis.set_major_formatter(percent)
    ax.set_ylabel("documents that never flip")
    ax.set_title("Share of documents whose decision never flips under each ranking's removal "
                 "order,\nat any step up to every item removed (documents with 2+ items)",
                 loc="left", fontsize=9.5)
    # below the axes: never over a bar
    ax.legend(ncols=min(len(names), 6), loc="upper center", bbox_to_anchor=(0.5, -0.12),
              fontsize=8)
    ax.grid(axis="x", visible=False)


def plot_attention_vs_gradient(
    shares: Mapping[str, Mapping[str, Any]],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
) -> Path:
    """Per title, stacked bars from summary.json's ``attention_vs_gradient``: which ranking flipped
    the decision with fewer removals (never flipping counts as the most removals)."""
    titles = [t for t, s in shares.items() if finite([s.get("tie")])]
    parts = (("attention_fewer", f"{label_of(rankings, 'attention')} needs fewer",
              color_of(rankings, "attention")),
             ("tie", "tie", "#d1d5db"),
             ("gradient_fewer", f"{label_of(rankings, 'gradient')} needs fewer",
              color_of(rankings, "gradient")))
    with figure(10.5, 1.4 + 0.42 * max(len(titles), 1)) as fig:
        ax = fig.subplots()
        if not titles:
            no_data(ax, "no document ranked by both attention and gradient")
            return save(fig, path)
        ys = -np.arange(len(titles), dtype=float)
        left = np.zeros(len(titles))
        for key, label, color in parts:
            values = np.nan_to_num(np.array([shares[t].get(key) or 0.0 for t in titles], float))
            bars = ax.barh(ys, values, left=left, color=color, label=label, height=0.6)
            ax.bar_label(bars, labels=[f"{v:.0%}" if v >= 0.06 else "" for v in values],
                         label_type="center", fontsize=8)
            left += values
        ax.set_yticks(ys, titles)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(percent)
        ax.set_xlabel("documents (2+ items); never flipping counts as the most removals")
        ax.set_title("Which ranking flips the decision with fewer removals?", loc="left")
        ax.legend(ncols=3, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.grid(False)
        return save(fig, path)
