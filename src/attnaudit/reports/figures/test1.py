"""Test 1 figures (one attention weight removed): ΔJS against Δa, and the flip rates.

The heat map reads the per-document rows of ``single_weight.parquet`` (a distribution); the flip
figure reads the site's Test 1 summary from summary.json, so its numbers are the report's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from attnaudit.reports.figures.common import NATS_PER_BIT, figure, no_data, percent, save
from attnaudit.results.tables import measured

#: Table 2 of the paper: does removing i* / a random item flip the decision?
TABLE2_CELLS: tuple[str, ...] = ("both", "only_max", "only_random", "neither")
TABLE2_LABELS: dict[str, str] = {"both": "both flip", "only_max": "only i* flips",
                                 "only_random": "only r flips", "neither": "neither flips"}


def js_in(values: np.ndarray, js_unit: str) -> np.ndarray:
    """JS values (stored in nats) in the display unit."""
    return values / NATS_PER_BIT if js_unit == "bits" else values


def symlog_threshold(values: np.ndarray) -> float:
    """The linear range of the symlog ΔJS axis: the 10th percentile of the non-zero |ΔJS|.

    ΔJS spans decades (1e-6 .. 0.7 nats) on both signs; below the threshold the axis is linear so
    zero and the smallest negatives stay visible instead of being cut off at a 0 lower bound.
    """
    magnitudes = np.abs(values[np.isfinite(values) & (values != 0)])
    return float(np.percentile(magnitudes, 10)) if magnitudes.size else 1e-6


def delta_bins(x: np.ndarray, y: np.ndarray, threshold: float, n_bins: int = 40
               ) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges: linear in Δa; in ΔJS uniform in asinh(ΔJS / threshold), which is close to the
    symlog axis, so cells look evenly sized. Both ranges include 0 and every negative value."""
    x_lo, x_hi = min(0.0, float(x.min())), max(float(x.max()), 1e-6)
    y_lo, y_hi = min(0.0, float(y.min())), max(float(y.max()), threshold)
    t = np.linspace(np.arcsinh(y_lo / threshold), np.arcsinh(y_hi / threshold), n_bins + 1)
    y_edges = threshold * np.sinh(t)
    y_edges[0], y_edges[-1] = y_lo, y_hi  # exact ends: nothing falls out through rounding
    return np.linspace(x_lo, x_hi, n_bins + 1), y_edges


def plot_delta_js_vs_delta_a(
    frames: Mapping[str, pd.DataFrame], path: str | os.PathLike[str], *, js_unit: str = "nats"
) -> Path:
    """2-D histogram of ΔJS (y, symmetric-log axis) against Δa (x), log-scaled counts: the paper's
    Figure 2, one panel per entry of ``frames`` (title -> ``single_weight`` rows of one site), on
    shared bins so that panels compare directly. One-item (skipped) documents are left out.

    Args:
        frames: panel title -> rows with ``delta_a`` and ``delta_js`` (nats).
        path: PNG to write.
        js_unit: ``"nats"`` or ``"bits"``: the unit ΔJS is shown in.
    """
    data = {k: measured(df).dropna(subset=["delta_a", "delta_js"]) for k, df in frames.items()}
    titles = list(data)
    cols = max(1, min(len(titles), 3))
    rows = math.ceil(max(len(titles), 1) / cols)
    with figure(4.2 * cols + 0.9, 3.4 * rows + 0.4) as fig:
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        flat = list(axes.ravel())
        every = pd.concat(list(data.values())) if data else pd.DataFrame()
        if every.empty:
            no_data(flat[0], "no documents with two or more items")
        else:
            x_all = every["delta_a"].to_numpy(float)
            y_all = js_in(every["delta_js"].to_numpy(float), js_unit)
            threshold = symlog_threshold(y_all)
            edges = delta_bins(x_all, y_all, threshold)
            hists = [_hist(df, edges, js_unit) for df in data.values()]
            norm = LogNorm(vmin=1, vmax=max(2.0, max(float(h.max()) for h in hists)))
            mesh = None
            for k, (ax, title, hist) in enumerate(zip(flat, titles, hists, strict=False)):
                mesh = draw_delta_panel(ax, title, data[title], hist, edges, norm, js_unit,
                                        threshold)
                if k % cols:  # axis labels once per row and column: the panels share axes
                    ax.set_ylabel("")
                if k + cols < len(titles):
                    ax.set_xlabel("")
            if mesh is not None:
                bar = fig.colorbar(mesh, ax=axes, shrink=0.85, label="documents (log scale)")
                # Plain counts (1, 2, 5, 10, ...) read better than 2x10^0 on a log colour bar.
                bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                bar.ax.yaxis.set_minor_formatter(NullFormatter())
        for ax in flat[len(titles):]:
            ax.set_axis_off()
        return save(fig, path)


def _hist(df: pd.DataFrame, edges: tuple[np.ndarray, np.ndarray], js_unit: str) -> np.ndarray:
    hist, _, _ = np.histogram2d(df["delta_a"].to_numpy(float),
                                js_in(df["delta_js"].to_numpy(float), js_unit), bins=list(edges))
    return hist


def draw_delta_panel(
    ax: Axes,
    title: str,
    df: pd.DataFrame,
    hist: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    norm: LogNorm,
    js_unit: str,
    threshold: float,
) -> Any:
    """One panel; empty bins stay white (masked) rather than the lowest colour."""
    masked = np.ma.masked_less(hist.T, 1)  # pcolormesh wants (y, x)
    mesh = ax.pcolormesh(edges[0], edges[1], masked, norm=norm, cmap="viridis", rasterized=True)
    ax.set_yscale("symlog", linthresh=threshold, linscale=1.0)
    ax.set_ylim(float(edges[1][0]), float(edges[1][-1]))
    ax.axhline(0.0, color="#ef4444", linewidth=0.8, linestyle="--")
    negative = float((df["delta_js"] < 0).mean()) if len(df) else 0.0
    share = (f", ΔJS > 0 for {(df['delta_js'] > 0).mean():.0%}, < 0 for {negative:.0%}"
             if len(df) else "")
    # two lines, smaller: one line overran narrow panels and was clipped
    ax.set_title(f"{title}\n(n={len(df)}{share})".strip(), loc="left", fontsize=9)
    ax.set_xlabel("Δa = a(i*) − a(r)")
    ax.set_ylabel(f"ΔJS = JS(p, p−i*) − JS(p, p−r)  [{js_unit}, symlog]")
    ax.grid(False)
    return mesh


def plot_flip_table(
    single_weight: Mapping[str, Mapping[str, Any]],
    removal_labels: Mapping[str, str],
    path: str | os.PathLike[str],
) -> Path:
    """How often one removal flips the decision, from Test 1 summaries (title -> summary).

    Left: the paper's Table 2 (removing i* and a random item r: both flip, only i*, only r,
    neither), a 2x2 grid for one summary, one row per summary for several. Right: the flip rate of
    each single-item removal (``removal_labels``: removal key -> label, in display order).
    """
    titles = list(single_weight)
    height = 3.2 if len(titles) <= 1 else 1.4 + 0.42 * len(titles)
    with figure(10.5, height) as fig:
        left, right = fig.subplots(1, 2, width_ratios=[1.0, 1.25])
        if not titles or not any(s.get("n") for s in single_weight.values()):
            no_data(left, "no documents with two or more items")
            no_data(right, "")
        elif len(titles) == 1:
            summary = single_weight[titles[0]]
            _table2_square(left, summary.get("table2") or {}, int(summary.get("n") or 0))
            _flip_bars(right, summary.get("flip_rate") or {}, removal_labels)
        else:
            _share_matrix(left, {t: s.get("table2") or {} for t, s in single_weight.items()},
                          TABLE2_LABELS, "Table 2: i* vs random r")
            _share_matrix(right, {t: s.get("flip_rate") or {} for t, s in single_weight.items()},
                          removal_labels, "Flip rate of each removal")
        return save(fig, path)


def _value(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and x is not None else math.nan


def _table2_square(ax: Axes, shares: Mapping[str, Any], n: int) -> None:
    """The 2x2 of one model: rows = removing i* flips (yes/no), columns = removing r flips."""
    grid = np.array([[_value(shares.get("both")), _value(shares.get("only_max"))],
                     [_value(shares.get("only_random")), _value(shares.get("neither"))]])
    ax.imshow(np.nan_to_num(grid), cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), value in np.ndenumerate(grid):
        text = "—" if math.isnan(value) else f"{value:.1%}\n({round(value * n)} docs)"
        ax.text(j, i, text, ha="center", va="center",
                color="white" if value > 0.6 else "#111827", fontsize=10)
    ax.set_xticks([0, 1], ["r flips", "r does not flip"])
    ax.set_yticks([0, 1], ["i* flips", "i* does not\nflip"])
    ax.set_title(f"Table 2: remove i* vs remove r (n={n})", loc="left")
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _flip_bars(ax: Axes, rates: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    keys = [k for k in labels if k in rates][::-1]
    values = [_value(rates.get(k)) for k in keys]
    colors = ["#E69F00" if k in ("max", "second", "min") else
              "#999999" if k == "random" else "#0072B2" for k in keys]
    bars = ax.barh([labels[k] for k in keys], np.nan_to_num(values), color=colors, height=0.62)
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width() + 0.005, bar.get_y() + bar.get_height() / 2,
                "—" if math.isnan(value) else f"{value:.1%}", va="center", fontsize=8.5)
    top = max([v for v in values if not math.isnan(v)], default=0.0)
    ax.set_xlim(0, max(0.05, top * 1.25))
    ax.xaxis.set_major_formatter(percent)
    ax.set_xlabel("documents whose decision flips")
    ax.set_title("Flip rate of each single-item removal", loc="left")
    ax.grid(axis="y", visible=False)


def _share_matrix(ax: Axes, rows: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str],
                  title: str) -> None:
    """An annotated title x category heatmap of shares (several models)."""
    titles = list(rows)
    columns = list(labels)
    grid = np.array([[_value(rows[t].get(c)) for c in columns] for t in titles], dtype=float)
    ax.imshow(np.nan_to_num(grid), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, "—" if math.isnan(value) else f"{value:.1%}", ha="center", va="center",
                fontsize=8.5, color="white" if value > 0.6 else "#111827")
    ax.set_xticks(range(len(columns)), [labels[c] for c in columns], rotation=25, ha="right")
    ax.set_yticks(range(len(titles)), titles)
    ax.set_title(title, loc="left")
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
