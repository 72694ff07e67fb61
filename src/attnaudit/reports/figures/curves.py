"""The decision-flip curve: F(f), the share of ALL documents (two or more items) whose decision
flipped after removing at most a fraction f of their items, one line per ranking.

Never-flipped documents stay in the denominator, so a curve ends at 1 - (share never flipped) and
censoring is visible rather than hidden (the paper's medians leave never-flipped documents out).
Drawn from summary.json's ``flip_curve``: the numbers the report prints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes

from attnaudit.reports.figures.common import (
    RankingsMeta,
    color_of,
    figure,
    label_of,
    no_data,
    percent,
    save,
)
from attnaudit.results.tables import in_order

CONVENTION = "never-flipped documents stay in the denominator"


def plot_flip_curve(
    curves: Mapping[str, Mapping[str, Any]],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
) -> Path:
    """One panel per title (title -> a site's ``flip_curve``: ``fractions`` and per ranking a list
    of shares, ``None`` where there are no documents)."""
    titles = list(curves)
    cols = max(1, min(len(titles), 3))
    rows = -(-max(len(titles), 1) // cols)
    with figure(max(6.5, 3.6 * cols + 1.0), 3.3 * rows + 0.5) as fig:
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        flat = list(axes.ravel())
        if not titles:
            no_data(flat[0], "no removal results")
        for ax, title in zip(flat, titles, strict=False):
            draw_flip_curve(ax, curves[title], rankings, title if len(titles) > 1 else "",
                            legend=False)
        for ax in flat[len(titles):]:
            ax.set_axis_off()
        handles, labels = flat[0].get_legend_handles_labels()
        if handles:  # one legend for all panels, below them: never over a curve
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
                       fontsize=8)
        fig.suptitle(f"Decision-flip curve ({CONVENTION})", x=0.01, ha="left",
                     fontweight="bold", fontsize=10)
        return save(fig, path)


def draw_flip_curve(ax: Axes, curve: Mapping[str, Any], rankings: RankingsMeta, title: str,
                    *, legend: bool = True) -> None:
    """The lines of one site on ``ax`` (a step function of the fraction removed); the axes reach a
    little past f = 100% and share = 100% so the last step (at f = 100%) is drawn inside the frame,
    not on its edge. ``legend``: a legend on ``ax`` itself (beside the curves, outside the frame)."""
    fractions = [float(f) for f in curve.get("fractions") or []]
    names = in_order([k for k in curve if k != "fractions"], list(rankings))
    for name in names:
        values = curve.get(name) or []
        points = [(f, float(v)) for f, v in zip(fractions, values, strict=False) if v is not None]
        if not points:
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], drawstyle="steps-post",
                marker=".", markersize=4, linewidth=1.8, color=color_of(rankings, name),
                label=label_of(rankings, name), clip_on=False)
    ax.set_xlim(-0.01, 1.04)
    ax.set_ylim(0, 1.04)
    ax.xaxis.set_major_formatter(percent)
    ax.yaxis.set_major_formatter(percent)
    ax.set_xlabel("fraction of items removed (f)")
    ax.set_ylabel("share of ALL documents flipped")
    if title:
        ax.set_title(title, loc="left")
    if names and legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
