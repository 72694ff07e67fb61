"""Figures of the two attention tests, drawn from the saved result tables.

Every function takes a DataFrame as the audit writes it (``single_weight.parquet`` or
``removal.parquet``, one model or several concatenated), writes one PNG and returns its path. A
frame with several models gets one panel or one group of bars/boxes per model, the paper's per-model
comparison.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never through
``pyplot``: no global backend switch, no figure registry to leak, safe to call from a library. Style
settings are applied with ``rc_context`` for the duration of one figure only. PNGs are written
without the ``Software`` metadata key and Agg stores no date, so the same frame gives the same
bytes.

Example:
    >>> import pandas as pd
    >>> df = pd.read_parquet("runs/demo/models/flan-rnn/audit/removal.parquet")  # doctest: +SKIP
    >>> plot_fraction_removed(df, "fraction_removed.png")  # doctest: +SKIP
    PosixPath('fraction_removed.png')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import cbook
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from attnaudit.utils.io import atomic_path
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)

#: Test 2 rankings, in the order the report shows them (the baseline first).
RANKINGS: tuple[str, ...] = ("random", "attention", "gradient", "attention_x_gradient")
RANKING_LABELS: dict[str, str] = {
    "random": "random",
    "attention": "attention",
    "gradient": "gradient",
    "attention_x_gradient": "attention × gradient",
}
#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
RANKING_COLORS: dict[str, str] = {
    "random": "#999999",
    "attention": "#E69F00",
    "gradient": "#0072B2",
    "attention_x_gradient": "#CC79A7",
}
#: Test 1 single-item removals: the column suffix in ``single_weight.parquet`` and a label.
REMOVALS: tuple[str, ...] = ("max", "second", "min", "random", "gradient", "attention_x_gradient")
REMOVAL_LABELS: dict[str, str] = {
    "max": "top attention weight (i*)",
    "second": "2nd-highest weight",
    "min": "lowest weight",
    "random": "random item (r)",
    "gradient": "top gradient item",
    "attention_x_gradient": "top attention × gradient item",
}
#: Table 2 of the paper: does removing i* / a random item flip the decision?
TABLE2_CELLS: tuple[str, ...] = ("both", "only_max", "only_random", "neither")
TABLE2_LABELS: dict[str, str] = {
    "both": "both flip",
    "only_max": "only i* flips",
    "only_random": "only r flips",
    "neither": "neither flips",
}
JS_UNITS: dict[str, str] = {"e": "nats", "2": "bits"}

_DPI = 130
_STYLE: dict[str, Any] = {
    "font.size": 9,
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs, same bytes everywhere
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.edgecolor": "#6b7280",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.7,
    "xtick.color": "#374151",
    "ytick.color": "#374151",
    "legend.frameon": False,
    "svg.hashsalt": "attnaudit",
}
# ``orientation=`` replaced ``vert=`` in matplotlib 3.10; pass whichever this version understands.
_MPL_VERSION = tuple(int(p) for p in matplotlib.__version__.split(".")[:2] if p.isdigit())
_HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"} if _MPL_VERSION >= (3, 10) else {"vert": False}
)


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    """A styled Agg figure with constrained layout, outside pyplot's global registry."""
    with matplotlib.rc_context(cast(Any, _STYLE)):  # the stubs type rc keys as Literals
        fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as PNG atomically; no ``Software`` key: the bytes depend on the data only."""
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, metadata={"Software": None}, facecolor="white")
        os.chmod(tmp, 0o644)  # like any image; the temporary file starts out private (0600)
    log.debug("wrote %s", target)
    return target


def _models(df: pd.DataFrame) -> list[str]:
    """Model names in order of first appearance (one unnamed model if there is no column)."""
    if df.empty:
        return []
    if "model" not in df.columns:
        return [""]
    return [str(m) for m in pd.unique(df["model"].astype(str))]


def _for_model(df: pd.DataFrame, model: str) -> pd.DataFrame:
    if "model" not in df.columns:
        return df
    return df[df["model"].astype(str) == model]


def _flag(series: pd.Series) -> pd.Series:
    """A boolean column that may hold nulls (skipped rows) as plain bool, nulls as False."""
    return series.astype("boolean").fillna(False).astype(bool)


def _rankings(df: pd.DataFrame) -> list[str]:
    """Known rankings in report order, then any others the frame holds (sorted, for stability)."""
    present = {str(r) for r in df["ranking"].unique()} if "ranking" in df.columns else set()
    return [r for r in RANKINGS if r in present] + sorted(present - set(RANKINGS))


def _no_data(ax: Axes, message: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#6b7280", transform=ax.transAxes)


def _audited(single_weight_df: pd.DataFrame) -> pd.DataFrame:
    """Test 1 rows that were measured (documents with at least two items)."""
    if "skipped" not in single_weight_df.columns:
        return single_weight_df
    return single_weight_df[~_flag(single_weight_df["skipped"])]


def _multi_item(removal_df: pd.DataFrame) -> pd.DataFrame:
    """Test 2 rows of documents with at least two items."""
    if "single_item" not in removal_df.columns:
        return removal_df
    return removal_df[~_flag(removal_df["single_item"])]


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return math.ceil(max(n, 1) / cols), cols


# ----------------------------------------------------------------------------------------------
# Test 1
# ----------------------------------------------------------------------------------------------


def plot_delta_js_vs_delta_a(
    single_weight_df: pd.DataFrame, path: str | os.PathLike[str], *, js_base: str
) -> Path:
    """2-D histogram of ΔJS (y) against Δa (x) with log-scaled counts: the paper's Figure 2.

    One panel per model, on shared bins, so that panels compare directly. One-item (skipped)
    documents are left out.

    Args:
        single_weight_df: rows of ``single_weight.parquet`` (one or several models).
        path: PNG to write.
        js_base: ``"e"`` (nats) or ``"2"`` (bits): the logarithm base of the JS divergences.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    df = _audited(single_weight_df).dropna(subset=["delta_a", "delta_js"])
    models = _models(df)
    rows, cols = _grid(len(models))
    with _figure(4.2 * cols + 0.9, 3.4 * rows + 0.4) as fig:
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        flat = list(axes.ravel())
        if df.empty:
            _no_data(flat[0], "no documents with two or more items")
        else:
            x_edges, y_edges = _delta_bins(df)
            hists = [_hist(_for_model(df, m), x_edges, y_edges) for m in models]
            norm = LogNorm(vmin=1, vmax=max(2.0, max(float(h.max()) for h in hists)))
            mesh = None
            for k, (ax, model, hist) in enumerate(zip(flat, models, hists, strict=False)):
                mesh = _draw_delta_panel(ax, model, _for_model(df, model), hist,
                                         (x_edges, y_edges), norm, js_base)
                if k % cols:  # axis labels once per row and column: the panels share axes
                    ax.set_ylabel("")
                if k + cols < len(models):
                    ax.set_xlabel("")
            if mesh is not None:
                bar = fig.colorbar(mesh, ax=axes, shrink=0.85, label="documents (log scale)")
                # Plain counts (1, 2, 5, 10, ...) read better than 2x10^0 on a log colour bar.
                bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                bar.ax.yaxis.set_minor_formatter(NullFormatter())
        for ax in flat[len(models):]:
            ax.set_axis_off()
        return _save(fig, path)


def _delta_bins(df: pd.DataFrame, n_bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Shared bin edges; zero always inside the range so the ΔJS = 0 line is meaningful."""
    x = df["delta_a"].to_numpy(float)
    y = df["delta_js"].to_numpy(float)
    x_lo, x_hi = min(0.0, float(x.min())), max(float(x.max()), 1e-6)
    y_lo, y_hi = min(0.0, float(y.min())), max(float(y.max()), 1e-6)
    return np.linspace(x_lo, x_hi, n_bins + 1), np.linspace(y_lo, y_hi, n_bins + 1)


def _hist(df: pd.DataFrame, x_edges: np.ndarray, y_edges: np.ndarray) -> np.ndarray:
    hist, _, _ = np.histogram2d(
        df["delta_a"].to_numpy(float), df["delta_js"].to_numpy(float), bins=[x_edges, y_edges]
    )
    return hist


def _draw_delta_panel(
    ax: Axes,
    model: str,
    df: pd.DataFrame,
    hist: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    norm: LogNorm,
    js_base: str,
) -> Any:
    """One model's histogram; empty bins stay white (masked) rather than the lowest colour."""
    masked = np.ma.masked_less(hist.T, 1)  # pcolormesh wants (y, x)
    mesh = ax.pcolormesh(edges[0], edges[1], masked, norm=norm, cmap="viridis", rasterized=True)
    ax.axhline(0.0, color="#ef4444", linewidth=0.8, linestyle="--")
    share = f", ΔJS > 0 for {(df['delta_js'] > 0).mean():.0%}" if len(df) else ""
    title = f"{model}  " if model else ""
    ax.set_title(f"{title}(n={len(df)}{share})", loc="left")
    ax.set_xlabel("Δa = a(i*) − a(r)")
    unit = JS_UNITS.get(str(js_base), f"log base {js_base}")
    ax.set_ylabel(f"ΔJS = JS(p, p−i*) − JS(p, p−r)  [{unit}]")
    ax.grid(False)
    return mesh


def plot_flip_table(single_weight_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """How often one removal flips the decision: the paper's Table 2, plus every other removal.

    Left, Table 2: shares of documents where removing i* (the top weight) and removing a random item
    r flip the decision (both, only i*, only r, neither); a 2x2 grid for one model, one row per
    model for several. Right: the flip rate of each of the six single-item removals.

    Args:
        single_weight_df: rows of ``single_weight.parquet`` (one or several models).
        path: PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    df = _audited(single_weight_df)
    models = _models(df)
    tables = {m: table2_shares(_for_model(df, m)) for m in models}
    rates = {m: flip_rates(_for_model(df, m)) for m in models}
    height = 3.2 if len(models) <= 1 else 1.4 + 0.42 * len(models)
    with _figure(10.5, height) as fig:
        left, right = fig.subplots(1, 2, width_ratios=[1.0, 1.25])
        if df.empty:
            _no_data(left, "no documents with two or more items")
            _no_data(right, "")
        elif len(models) == 1:
            _draw_table2_square(left, tables[models[0]], len(df))
            _draw_flip_bars(right, rates[models[0]])
        else:
            _draw_share_matrix(left, tables, TABLE2_CELLS, TABLE2_LABELS, "Table 2: i* vs random r")
            _draw_share_matrix(right, rates, REMOVALS, _SHORT_REMOVALS, "Flip rate of each removal")
        return _save(fig, path)


_SHORT_REMOVALS: dict[str, str] = {
    "max": "top a (i*)",
    "second": "2nd a",
    "min": "lowest a",
    "random": "random r",
    "gradient": "top grad",
    "attention_x_gradient": "top a×grad",
}


def table2_shares(single_weight_df: pd.DataFrame) -> dict[str, float]:
    """Shares of measured documents in each Table 2 cell (``both``, ``only_max``, ...)."""
    df = _audited(single_weight_df)
    if df.empty:
        return {cell: float("nan") for cell in TABLE2_CELLS}
    top, rand = _flag(df["flip_max"]), _flag(df["flip_random"])
    return {
        "both": float((top & rand).mean()),
        "only_max": float((top & ~rand).mean()),
        "only_random": float((~top & rand).mean()),
        "neither": float((~top & ~rand).mean()),
    }


def flip_rates(single_weight_df: pd.DataFrame) -> dict[str, float]:
    """Share of measured documents whose decision each single-item removal flips."""
    df = _audited(single_weight_df)
    return {
        r: float(_flag(df[f"flip_{r}"]).mean()) if len(df) and f"flip_{r}" in df else float("nan")
        for r in REMOVALS
    }


def _draw_table2_square(ax: Axes, shares: dict[str, float], n: int) -> None:
    """The 2x2 of one model: rows = removing i* flips (yes/no), columns = removing r flips."""
    grid = np.array([[shares["both"], shares["only_max"]],
                     [shares["only_random"], shares["neither"]]])
    ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, f"{value:.1%}\n({round(value * n)} docs)", ha="center", va="center",
                color="white" if value > 0.6 else "#111827", fontsize=10)
    ax.set_xticks([0, 1], ["r flips", "r does not flip"])
    ax.set_yticks([0, 1], ["i* flips", "i* does not\nflip"])
    ax.set_title(f"Table 2: remove i* vs remove r (n={n})", loc="left")
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _draw_flip_bars(ax: Axes, rates: dict[str, float]) -> None:
    labels = [REMOVAL_LABELS[r] for r in REMOVALS][::-1]
    values = [rates[r] for r in REMOVALS][::-1]
    colors = ["#0072B2" if r in ("gradient", "attention_x_gradient") else
              "#999999" if r == "random" else "#E69F00" for r in REMOVALS][::-1]
    bars = ax.barh(labels, values, color=colors, height=0.62)
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width() + 0.005, bar.get_y() + bar.get_height() / 2,
                "—" if math.isnan(value) else f"{value:.1%}", va="center", fontsize=8.5)
    top = max([v for v in values if not math.isnan(v)], default=0.0)
    ax.set_xlim(0, max(0.05, top * 1.25))
    ax.xaxis.set_major_formatter(_percent)
    ax.set_xlabel("documents whose decision flips")
    ax.set_title("Flip rate of each single-item removal", loc="left")
    ax.grid(axis="y", visible=False)


def _percent(value: float, _pos: float | None = None) -> str:
    return f"{value:.0%}" if value >= 0.1 or value == 0 else f"{value:.1%}"


def _draw_share_matrix(
    ax: Axes,
    rows: dict[str, dict[str, float]],
    columns: Sequence[str],
    labels: dict[str, str],
    title: str,
) -> None:
    """An annotated model x category heatmap of shares (several models)."""
    models = list(rows)
    grid = np.array([[rows[m][c] for c in columns] for m in models], dtype=float)
    ax.imshow(np.nan_to_num(grid), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        text = "—" if math.isnan(value) else f"{value:.1%}"
        ax.text(j, i, text, ha="center", va="center", fontsize=8.5,
                color="white" if value > 0.6 else "#111827")
    ax.set_xticks(range(len(columns)), [labels[c] for c in columns], rotation=25, ha="right")
    ax.set_yticks(range(len(models)), models)
    ax.set_title(title, loc="left")
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


# ----------------------------------------------------------------------------------------------
# Test 2
# ----------------------------------------------------------------------------------------------


def plot_fraction_removed(removal_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Box plots of the fraction of items removed when the decision first flips.

    One box per ranking, grouped by model. Documents that never flip and one-item documents are
    left out of the boxes; the number in each box and the share that never flipped are written to
    the right of it, the one-item count beside the model's name.

    Args:
        removal_df: rows of ``removal.parquet`` (one or several models).
        path: PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return _plot_removal_boxes(
        removal_df, path, column="fraction_removed",
        xlabel="fraction of items removed at the first flip",
        title="How much must go before the decision flips? (fewer = ranking finds what matters)",
    )


def plot_mass_removed(removal_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Box plots of the attention mass (sum of original weights) removed at the first flip.

    Same layout and exclusions as :func:`plot_fraction_removed`.
    """
    return _plot_removal_boxes(
        removal_df, path, column="mass_removed",
        xlabel="attention mass removed at the first flip (sum of the original weights)",
        title="Attention mass removed before the decision flips",
    )


def _plot_removal_boxes(
    removal_df: pd.DataFrame, path: str | os.PathLike[str], *, column: str, xlabel: str,
    title: str,
) -> Path:
    models = _models(removal_df)
    rankings = _rankings(removal_df)
    layout = _box_layout(models, rankings)
    with _figure(10.5, 1.3 + 0.3 * max(len(layout), 3)) as fig:
        ax = fig.subplots()
        if removal_df.empty or not rankings:
            _no_data(ax, "no removal results")
            return _save(fig, path)
        notes: dict[float, str] = {}
        for y, model, ranking in layout:
            if ranking is None:
                continue
            rows = _for_model(removal_df, model)
            rows = rows[rows["ranking"].astype(str) == ranking]
            notes[y] = _draw_box(ax, y, rows, column, ranking)
        _label_box_rows(ax, layout, removal_df, notes)
        ax.set_xlim(-0.02, 1.02)
        ax.xaxis.set_major_formatter(_percent)
        if len(models) == 1:  # no header row to carry the one-item count
            xlabel += f"  ·  {_single_item_note(removal_df, models[0])}"
        ax.set_xlabel(xlabel + "\nbeside each box: n = documents in the box; never = documents"
                      " with 2+ items that never flip")
        ax.set_title(title, loc="left")
        ax.grid(axis="y", visible=False)
        return _save(fig, path)


def _box_layout(
    models: Sequence[str], rankings: Sequence[str]
) -> list[tuple[float, str, str | None]]:
    """Rows from top to bottom: (y, model, ranking); ranking ``None`` marks a model's header row.

    A single model gets no header row; several are separated by their headers.
    """
    rows: list[tuple[float, str, str | None]] = []
    y = 0.0
    for model in models:
        if len(models) > 1:
            rows.append((y, model, None))
            y -= 1
        for ranking in rankings:
            rows.append((y, model, ranking))
            y -= 1
        y -= 0.4
    return rows


def _draw_box(ax: Axes, y: float, rows: pd.DataFrame, column: str, ranking: str) -> str:
    """Draw one box of the documents that flipped; return the note for the right margin."""
    multi = _multi_item(rows)
    never = _flag(multi["never_flipped"]) if "never_flipped" in multi else multi[column].isna()
    values = multi.loc[~never, column].dropna().to_numpy(float)
    color = RANKING_COLORS.get(ranking, "#6b7280")
    if len(values):
        stats = cbook.boxplot_stats(values)
        ax.bxp(stats, positions=[y], widths=0.62, patch_artist=True, showfliers=True,
               boxprops={"facecolor": color, "alpha": 0.85, "edgecolor": "#374151"},
               medianprops={"color": "#111827", "linewidth": 1.6},
               flierprops={"marker": ".", "markersize": 3, "markeredgecolor": "#6b7280"},
               **_HORIZONTAL)
    else:
        ax.text(0.5, y, "no document flipped", ha="center", va="center", color="#6b7280")
    n_multi = len(multi)
    share = float(never.mean()) if n_multi else float("nan")
    never_text = "—" if math.isnan(share) else f"{int(never.sum())} ({share:.0%})"
    return f"n={len(values)} · never {never_text}"


def _label_box_rows(
    ax: Axes,
    layout: Sequence[tuple[float, str, str | None]],
    removal_df: pd.DataFrame,
    notes: dict[float, str],
) -> None:
    """Ranking names on the left, model headers in bold, counts on a right-hand axis."""
    ys = [y for y, _, _ in layout]
    labels = [RANKING_LABELS.get(r, r) if r is not None else m for _, m, r in layout]
    for y, model, ranking in layout:
        if ranking is None:
            notes[y] = _single_item_note(removal_df, model)
    ax.set_yticks(ys, labels)
    for tick, (_, _, ranking) in zip(ax.get_yticklabels(), layout, strict=True):
        if ranking is None:
            tick.set_fontweight("bold")
            tick.set_color("#111827")
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    right = ax.secondary_yaxis("right")
    right.set_yticks(list(notes), list(notes.values()))
    right.tick_params(length=0, labelsize=8, labelcolor="#4b5563")
    right.spines["right"].set_visible(False)


def _single_item_note(removal_df: pd.DataFrame, model: str) -> str:
    rows = _for_model(removal_df, model)
    if "single_item" not in rows or "doc_id" not in rows:
        return ""
    single = rows.loc[_flag(rows["single_item"]), "doc_id"].nunique()
    return f"one-item documents left out: {single}"


def never_flipped_shares(removal_df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per model, per ranking: share of documents (two or more items) that never flip."""
    multi = _multi_item(removal_df)
    out: dict[str, dict[str, float]] = {}
    for model in _models(removal_df):
        rows = _for_model(multi, model)
        out[model] = {
            r: float(_flag(rows.loc[rows["ranking"].astype(str) == r, "never_flipped"]).mean())
            if (rows["ranking"].astype(str) == r).any() else float("nan")
            for r in _rankings(removal_df)
        }
    return out


def plot_never_flipped(removal_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Bar chart of the share of documents whose decision never flips, per ranking and model.

    One-item documents are left out (their only removal is the whole document).

    Args:
        removal_df: rows of ``removal.parquet`` (one or several models).
        path: PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    shares = never_flipped_shares(removal_df) if not removal_df.empty else {}
    rankings = _rankings(removal_df)
    models = list(shares)
    with _figure(min(10.5, max(7.5, 1.6 + 1.5 * len(models))), 3.6) as fig:
        ax = fig.subplots()
        if not models or not rankings:
            _no_data(ax, "no removal results")
            return _save(fig, path)
        width = 0.8 / len(rankings)
        for j, ranking in enumerate(rankings):
            xs = np.arange(len(models)) + (j - (len(rankings) - 1) / 2) * width
            values = [shares[m][ranking] for m in models]
            bars = ax.bar(xs, values, width=width * 0.92,
                          label=RANKING_LABELS.get(ranking, ranking),
                          color=RANKING_COLORS.get(ranking, "#6b7280"))
            ax.bar_label(bars, labels=[_percent(v) if not math.isnan(v) else "" for v in values],
                         fontsize=7.5, padding=2)
        ax.set_xticks(np.arange(len(models)), models if models != [""] else ["model"])
        ax.set_ylim(0, 1.08)
        ax.yaxis.set_major_formatter(_percent)
        ax.set_ylabel("documents that never flip")
        ax.set_title("Decision never flips, even with every item removed (2+ item docs)",
                     loc="left")
        ax.legend(ncols=len(rankings), loc="upper left", fontsize=8)
        ax.grid(axis="x", visible=False)
        return _save(fig, path)


def attention_vs_gradient_shares(removal_df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per model: share of documents where attention / gradient needs fewer removals, or ties.

    A ranking that never flips counts as needing more removals than any that does; when neither
    flips the document is a tie. One-item documents are left out.
    """
    out: dict[str, dict[str, float]] = {}
    multi = _multi_item(removal_df)
    for model in _models(removal_df):
        rows = _for_model(multi, model)
        steps = rows.pivot_table(index="doc_id", columns="ranking", values="removed_at_flip",
                                 aggfunc="first", dropna=False)
        if steps.empty or not {"attention", "gradient"} <= set(steps.columns):
            out[model] = {"attention_fewer": math.nan, "tie": math.nan, "gradient_fewer": math.nan}
            continue
        att = steps["attention"].fillna(np.inf).to_numpy(float)
        grad = steps["gradient"].fillna(np.inf).to_numpy(float)
        out[model] = {
            "attention_fewer": float(np.mean(att < grad)),
            "tie": float(np.mean(att == grad)),
            "gradient_fewer": float(np.mean(att > grad)),
        }
    return out


def plot_attention_vs_gradient(removal_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Per model, stacked bars: which ranking flipped the decision with fewer removals.

    Args:
        removal_df: rows of ``removal.parquet`` (one or several models).
        path: PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    shares = attention_vs_gradient_shares(removal_df) if not removal_df.empty else {}
    models = list(shares)
    parts = (("attention_fewer", "attention needs fewer", RANKING_COLORS["attention"]),
             ("tie", "tie", "#d1d5db"),
             ("gradient_fewer", "gradient needs fewer", RANKING_COLORS["gradient"]))
    with _figure(10.5, 1.4 + 0.42 * max(len(models), 1)) as fig:
        ax = fig.subplots()
        if not models:
            _no_data(ax, "no removal results")
            return _save(fig, path)
        ys = -np.arange(len(models), dtype=float)
        left = np.zeros(len(models))
        for key, label, color in parts:
            values = np.nan_to_num(np.array([shares[m][key] for m in models], dtype=float))
            bars = ax.barh(ys, values, left=left, color=color, label=label, height=0.6)
            ax.bar_label(bars, labels=[f"{v:.0%}" if v >= 0.06 else "" for v in values],
                         label_type="center", fontsize=8)
            left += values
        ax.set_yticks(ys, [m or "model" for m in models])
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(_percent)
        ax.set_xlabel("documents (2+ items); never flipping counts as the most removals")
        ax.set_title("Which ranking flips the decision with fewer removals?", loc="left")
        ax.legend(ncols=3, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.grid(False)
        return _save(fig, path)


# ----------------------------------------------------------------------------------------------
# Every figure at once
# ----------------------------------------------------------------------------------------------

#: Each figure's key (its file name without ``.png``) and the table it is drawn from.
FIGURE_SOURCES: dict[str, str] = {
    "delta_js_vs_delta_a": "single_weight",
    "flip_table": "single_weight",
    "fraction_removed": "removal",
    "mass_removed": "removal",
    "never_flipped": "removal",
    "attention_vs_gradient": "removal",
}


def draw_figure(
    key: str, df: pd.DataFrame, path: str | os.PathLike[str], *, js_base: str = "e"
) -> Path:
    """Draw the figure named ``key`` (see :data:`FIGURE_SOURCES`) from its table."""
    if key == "delta_js_vs_delta_a":
        return plot_delta_js_vs_delta_a(df, path, js_base=js_base)
    drawers = {
        "flip_table": plot_flip_table,
        "fraction_removed": plot_fraction_removed,
        "mass_removed": plot_mass_removed,
        "never_flipped": plot_never_flipped,
        "attention_vs_gradient": plot_attention_vs_gradient,
    }
    if key not in drawers:
        raise ValueError(f"unknown figure {key!r}; known: {', '.join(FIGURE_SOURCES)}")
    return drawers[key](df, path)


def write_model_figures(
    single_weight_df: pd.DataFrame,
    removal_df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    js_base: str,
) -> dict[str, Path]:
    """Every figure of one model's audit, as ``out_dir/figures/<key>.png``.

    Returns:
        ``{figure key: path}``.
    """
    tables = {"single_weight": single_weight_df, "removal": removal_df}
    folder = Path(out_dir) / "figures"
    return {key: draw_figure(key, tables[source], folder / f"{key}.png", js_base=js_base)
            for key, source in FIGURE_SOURCES.items()}


def write_comparison_figures(
    audit_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """The per-model comparison: every figure over several audits, as ``out_dir/<key>.png``.

    Each audit folder contributes its ``single_weight.parquet`` and ``removal.parquet``; ΔJS is
    compared only when every ``summary.json`` names the same JS log base.

    Returns:
        ``{figure key: path}``.
    """
    tables: dict[str, list[pd.DataFrame]] = {"single_weight": [], "removal": []}
    bases: set[str] = set()
    for audit in map(Path, audit_dirs):
        for source, frames in tables.items():
            if (audit / f"{source}.parquet").is_file():
                frames.append(pd.read_parquet(audit / f"{source}.parquet"))
        if (audit / "summary.json").is_file():
            with open(audit / "summary.json", encoding="utf-8") as f:
                bases.add(str(json.load(f).get("js_base", "e")))
    out: dict[str, Path] = {}
    for key, source in FIGURE_SOURCES.items():
        if not tables[source]:
            continue
        if key == "delta_js_vs_delta_a" and len(bases) > 1:
            log.warning("ΔJS not compared: the audits use different JS log bases %s", sorted(bases))
            continue
        df = pd.concat(tables[source], ignore_index=True)
        out[key] = draw_figure(key, df, Path(out_dir) / f"{key}.png",
                               js_base=next(iter(bases), "e"))
    return out
