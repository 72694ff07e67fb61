"""Counterfactual attention figures (Jain & Wallace 2019, their Figures 4 and 7), from
``single_weight.parquet`` rows: each document's output change under counterfactual attention
against the largest attention weight it had.

* :func:`plot_permutation_vs_max_attention`: the median output TVD under random permutations of the
  weights, boxes per max-attention bin;
* :func:`plot_adversarial_vs_max_attention`: the JSD between the attention and the most different
  attention found whose output stays within TVD ε (the best found: a lower bound on the maximum),
  boxes per max-attention bin.

One panel per entry of ``frames`` (title -> one site's rows), sharing the axes. Documents with one
item (skipped) are left out. Each names its convention (TVD or JSD unit, ε, m) on its axis.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib import cbook
from matplotlib.axes import Axes

from attnaudit.reports.figures.common import NATS_PER_BIT, figure, no_data, save
from attnaudit.results.counterfactual import MAX_ATTENTION_EDGES, bin_index, max_attention
from attnaudit.results.tables import measured

Which = Literal["permutation", "adversarial"]

#: box colour of each figure (Okabe-Ito blue and vermillion)
COLORS: dict[str, str] = {"permutation": "#0072B2", "adversarial": "#D55E00"}


def plot_permutation_vs_max_attention(
    frames: Mapping[str, pd.DataFrame], path: str | os.PathLike[str], *,
    permutations: int | None = None,
) -> Path:
    """Median output TVD under permutation (y) per max-attention bin (x): J&W's Figure 4.

    Args:
        frames: panel title -> ``single_weight`` rows of one site (``a_max``, ``perm_median_tvd``).
        path: PNG to write.
        permutations: the audit's ``m`` (named on the axis when given).
    """
    m = f"m = {permutations} " if permutations else ""
    return plot_counterfactual(frames, path, which="permutation",
                               ylabel=f"median output TVD over {m}permutations  [0..1]")


def plot_adversarial_vs_max_attention(
    frames: Mapping[str, pd.DataFrame], path: str | os.PathLike[str], *,
    epsilon: float | None = None, js_unit: str = "nats",
) -> Path:
    """Adversarial JSD(a, a') (y) per max-attention bin (x), a' within output TVD ε: J&W's Figure 7.

    Args:
        frames: panel title -> ``single_weight`` rows of one site (``a_max``, ``adv_jsd`` in nats).
        path: PNG to write.
        epsilon: the audit's ε (named on the axis when given).
        js_unit: ``"nats"`` or ``"bits"``: the unit JSD is shown in.
    """
    bound = f"TVD(output) ≤ {epsilon:g}" if epsilon else "TVD(output) ≤ ε"
    return plot_counterfactual(frames, path, which="adversarial", js_unit=js_unit,
                               # "best found": a lower bound on the maximum (the convention
                               # beside the figure says so; a longer label is cut off)
                               ylabel=f"best JSD(a, a') found, {bound}  [{js_unit}]")


def plot_counterfactual(
    frames: Mapping[str, pd.DataFrame], path: str | os.PathLike[str], *, which: Which,
    ylabel: str, js_unit: str = "nats",
) -> Path:
    """Boxes of the ``which`` counterfactual per max-attention bin, one panel per frame."""
    column = "perm_median_tvd" if which == "permutation" else "adv_jsd"
    data = {title: measured(df) for title, df in frames.items()}
    titles = list(data)
    cols = max(1, min(len(titles), 3))
    rows = math.ceil(max(len(titles), 1) / cols)
    with figure(4.8 * cols + 0.4, 3.6 * rows + 0.4) as fig:
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)  # x: per-panel counts
        flat = list(axes.ravel())
        if not titles or all(column not in df.columns for df in data.values()):
            no_data(flat[0], f"no {which} results in the table (skipped by the audit?)")
        for ax, title in zip(flat, titles, strict=False):
            values = data[title][column].astype(float) if column in data[title] else None
            if values is not None and which == "adversarial" and js_unit == "bits":
                values = values / NATS_PER_BIT
            draw_binned_boxes(ax, max_attention(data[title]).to_numpy(float), values,
                              COLORS[which])
            ax.set_title(title, loc="left")
        for ax in flat[::cols]:  # once per row: the panels share the y axis
            ax.set_ylabel(ylabel)
        if which == "adversarial" and titles:
            ceiling = math.log(2) if js_unit == "nats" else 1.0
            for ax in flat[: len(titles)]:
                ax.axhline(ceiling, color="#6b7280", linewidth=0.8, linestyle=":")
                ax.text(0.01, ceiling, " ln 2: disjoint supports" if js_unit == "nats"
                        else " 1 bit: disjoint supports", va="bottom", fontsize=7,
                        color="#6b7280", transform=ax.get_yaxis_transform())
        for ax in flat[len(titles):]:
            ax.set_axis_off()
        return save(fig, path)


def draw_binned_boxes(ax: Axes, max_weights: np.ndarray, values: pd.Series | None,
                      color: str) -> None:
    """One box per max-attention bin (whiskers 1.5 IQR, no fliers: there are thousands), the
    documents per bin in the tick labels; empty bins stay empty."""
    edges = MAX_ATTENTION_EDGES
    # Bins are unequal (finer near 0): one slot each, labelled with its range and its documents.
    centres = list(range(len(edges) - 1))
    ax.set_xlim(-0.6, len(centres) - 0.4)
    ax.set_xlabel("largest attention weight (max a), binned")
    if values is None or not values.notna().any():
        no_data(ax, "no documents with two or more items")
        return
    y = values.to_numpy(float)
    bins = bin_index(max_weights, edges)
    counts = []
    for b, centre in enumerate(centres):
        chosen = y[(bins == b) & np.isfinite(y)]
        counts.append(chosen.size)
        if not chosen.size:
            continue
        stats = cbook.boxplot_stats(chosen)
        ax.bxp(stats, positions=[centre], widths=0.7, patch_artist=True, showfliers=False,
               manage_ticks=False,
               boxprops={"facecolor": color, "alpha": 0.8, "edgecolor": "#374151"},
               medianprops={"color": "#111827", "linewidth": 1.4},
               whiskerprops={"color": "#374151"}, capprops={"color": "#374151"})
    ax.set_xticks(centres)
    ax.set_xticklabels([f"{lo:g}–{hi:g}\nn={n}" for (lo, hi), n in zip(pairwise(edges), counts,
                                                                       strict=True)],
                       rotation=45, ha="right", fontsize=7)
