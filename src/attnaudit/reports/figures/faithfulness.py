"""Faithfulness figures, from summary.json only: ERASER's comprehensiveness and sufficiency over
the bins per ranking, and the agreement between rankings (mean Kendall tau-b) as a heat map.

Both read the numbers the report prints (``by_site[site]["removal"]``, its ``intervals`` and
``agreement``), and both name their convention on the figure itself: a PNG saved on its own still
says which AOPC and which tau it shows.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes

from attnaudit.reports.figures.common import (
    RankingsMeta,
    color_of,
    figure,
    label_of,
    no_data,
    save,
)
from attnaudit.reports.markup import is_num
from attnaudit.results.tables import in_order

#: the bins of DeYoung et al. (2020) when a summary does not list its own ``eraser_fractions``
ERASER_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20, 0.50)
ERASER_CONVENTION = (
    "ERASER bins q = {bins}, k = ceil(q·n), p = probability of the model's own prediction, mean over "
    "documents (bands: bootstrap intervals); the dashed segment to q = 0 is the k = 0 term of the "
    "ERASER paper's AOPC (with it: 1/(|B|+1); the released scorer leaves it out: 1/|B|)"
)
AGREEMENT_CONVENTION = "mean over documents of Kendall tau-b between two rankings' scores (ties handled)"

#: (measure, per-bin key prefix, the k = 0 key or the k = 0 value, y label, which way is faithful)
_MEASURES: tuple[tuple[str, str, str | float, str], ...] = (
    ("comprehensiveness", "comp", 0.0, "p(x) − p(x without top k)  ↑ more faithful"),
    ("sufficiency", "suff", "suff_00", "p(x) − p(only top k)  ↓ more faithful"),
)


def bin_key(prefix: str, fraction: float) -> str:
    """The eraser measure's column for a bin: ``comp_01`` for 1%, ``suff_50`` for 50%."""
    return f"{prefix}_{round(100 * fraction):02d}"


def eraser_bins(removal: Mapping[str, Mapping[str, Any]]) -> list[float]:
    """The bins a site's summary used (its ``eraser_fractions``), else ERASER's."""
    for stats in removal.values():
        fractions = (stats or {}).get("eraser_fractions")
        if isinstance(fractions, list) and fractions and all(is_num(f) for f in fractions):
            return [float(f) for f in fractions]
    return list(ERASER_FRACTIONS)


def has_eraser(removal: Mapping[str, Mapping[str, Any]] | None) -> bool:
    """Any ranking with a comprehensiveness number at some bin."""
    removal = removal or {}
    bins = eraser_bins(removal)
    return any(is_num((s or {}).get(bin_key("comp", f))) for s in removal.values() for f in bins)


def bin_label(fraction: float) -> str:
    """A bin as ERASER writes it: 1%, 5%, 10%, 20%, 50%."""
    return f"{100 * fraction:g}%"


def eraser_convention(bins: Sequence[float]) -> str:
    return ERASER_CONVENTION.format(bins=", ".join(bin_label(f) for f in bins))


def plot_eraser_curves(
    panels: Mapping[str, tuple[Mapping[str, Mapping[str, Any]], Mapping[str, Any] | None]],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
) -> Path | None:
    """Comprehensiveness (left) and sufficiency (right) over the bins, one line per ranking.

    Args:
        panels: title -> (``removal`` of a site: ranking -> its summary, the matching ``intervals``
            subtree or ``None``); one row of two axes per title (attention-level, input-level).
        rankings: ranking metadata (labels, colours) in report order.
        path: where the PNG goes.

    Returns:
        The PNG's path, or ``None`` when no panel has comprehensiveness numbers.
    """
    titles = [t for t, (removal, _) in panels.items() if has_eraser(removal)]
    if not titles:
        return None
    bins = eraser_bins(panels[titles[0]][0])
    with figure(10.5, 1.2 + 3.1 * len(titles)) as fig:
        axes = fig.subplots(len(titles), 2, squeeze=False)
        for row, title in enumerate(titles):
            removal, intervals = panels[title]
            for col, (measure, prefix, zero, ylabel) in enumerate(_MEASURES):
                ax = axes[row][col]
                _draw_bins(ax, removal, intervals, rankings, prefix, zero, bins)
                ax.set_ylabel(ylabel, fontsize=8)
                ax.set_title(f"{title} · {measure}" if len(titles) > 1 or title else measure,
                             loc="left")
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:  # beside the panels: with a dozen rankings a legend inside hides the lines
            fig.legend(handles, labels, loc="outside lower center", fontsize=7.5,
                       ncols=min(len(handles), 6))
        fig.suptitle(textwrap.fill(eraser_convention(bins), 170), x=0.01, ha="left",
                     fontsize=7.5, fontweight="normal")
        return save(fig, path)


def _draw_bins(ax: Axes, removal: Mapping[str, Mapping[str, Any]], intervals: Mapping[str, Any]
               | None, rankings: RankingsMeta, prefix: str, zero: str | float,
               bins: Sequence[float]) -> None:
    names = in_order(list(removal), list(rankings))
    drawn = False
    for name in names:
        stats = removal.get(name) or {}
        xs = [f for f in bins if is_num(stats.get(bin_key(prefix, f)))]
        if not xs:
            continue
        ys = [float(stats[bin_key(prefix, f)]) for f in xs]
        color = color_of(rankings, name)
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.6, color=color,
                label=label_of(rankings, name))
        start = zero if is_num(zero) else stats.get(str(zero))
        if is_num(start):  # the k = 0 term of the paper's AOPC
            ax.plot([0.0, xs[0]], [float(start), ys[0]], linestyle="--", linewidth=1.0,
                    color=color, alpha=0.7)
        bounds = [(intervals or {}).get(name, {}).get(bin_key(prefix, f)) if isinstance(
            (intervals or {}).get(name), Mapping) else None for f in xs]
        if all(isinstance(b, list) and len(b) == 2 and all(is_num(v) for v in b) for b in bounds):
            lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])  # type: ignore[index]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
        drawn = True
    if not drawn:
        no_data(ax, "no numbers for these bins")
        return
    ax.set_xscale("symlog", linthresh=0.01, linscale=0.5)
    ax.set_xlim(0, max(bins) * 1.05)
    ax.set_xticks([0.0, *bins], ["0", *[bin_label(f) for f in bins]])
    ax.set_xlabel("q = share of items (top-ranked) removed / kept")
    ax.axhline(0, color="#9ca3af", linewidth=0.8)


def agreement_matrix(pairs: Mapping[str, Mapping[str, Any]], names: Sequence[str],
                     key: str = "mean_tau") -> np.ndarray:
    """``(R, R)`` float: ``pairs["a|b"][key]`` mirrored, 1 on the diagonal, NaN where missing."""
    index = {n: i for i, n in enumerate(names)}
    out = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(out, 1.0)
    for pair, stats in pairs.items():
        a, _, b = str(pair).partition("|")
        value = (stats or {}).get(key)
        if a in index and b in index and is_num(value):
            out[index[a], index[b]] = out[index[b], index[a]] = float(value)
    return out


def plot_agreement(pairs: Mapping[str, Mapping[str, Any]], rankings: RankingsMeta,
                   path: str | os.PathLike[str]) -> Path | None:
    """Heat map of the mean Kendall tau-b of every pair of rankings (``agreement["pairs"]``)."""
    seen: list[str] = []
    for pair in pairs:
        seen += [n for n in str(pair).split("|", 1) if n and n not in seen]
    names = in_order(seen, list(rankings))
    if len(names) < 2:
        return None
    matrix = agreement_matrix(pairs, names)
    width = 4.2 + 0.62 * len(names)
    with figure(width, 1.8 + 0.5 * len(names)) as fig:
        ax = fig.subplots()
        if np.isnan(matrix[~np.eye(len(names), dtype=bool)]).all():
            no_data(ax, "no pair of rankings has a tau")
            return save(fig, path)
        # the diagonal (a ranking with itself, 1 by definition) in grey: colour is for the pairs
        off_diagonal = np.ma.masked_array(matrix, mask=np.eye(len(names), dtype=bool))
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#e5e7eb")
        image = ax.imshow(off_diagonal, cmap=cmap, vmin=-1, vmax=1)
        labels = [label_of(rankings, n) for n in names]
        ax.set_xticks(range(len(names)), labels, rotation=35, ha="right")
        ax.set_yticks(range(len(names)), labels)
        ax.grid(False)
        for i in range(len(names)):
            for j in range(len(names)):
                value = matrix[i, j]
                text = "—" if np.isnan(value) else f"{value:.2f}"
                dark = i != j and not np.isnan(value) and abs(value) > 0.6
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if dark else "#111827")
        fig.colorbar(image, ax=ax, shrink=0.8, label="mean Kendall tau-b")
        fig.suptitle(textwrap.fill(f"Agreement between rankings: {AGREEMENT_CONVENTION}",
                                   int(12 * width)), x=0.01, ha="left", fontsize=8)
        return save(fig, path)


__all__ = [
    "AGREEMENT_CONVENTION",
    "ERASER_CONVENTION",
    "agreement_matrix",
    "bin_key",
    "bin_label",
    "eraser_bins",
    "eraser_convention",
    "has_eraser",
    "plot_agreement",
    "plot_eraser_curves",
]
