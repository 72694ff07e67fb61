"""Transformer figures, from summary.json only: the layer x ranking grid of Test 1 and Test 2, and
the layer x head heat map of one faithfulness number per head site.

Both take the numbers the report's tables print (:mod:`attnaudit.reports.transformer` gathers them)
and name their conventions on the figure itself, so a PNG saved on its own still says what each
cell is, which way is more faithful and how never-flipped documents were counted. Rows are layers
named as the CLI and the sites' labels name them (``L0`` nearest the input, counted from 0). A
missing number (a site not audited, no document with two or more items) is a
grey cell marked "—", never a colour.
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
from matplotlib.colors import Colormap
from matplotlib.image import AxesImage

from attnaudit.reports.figures.common import RankingsMeta, figure, label_of, save
from attnaudit.reports.markup import is_num

#: What every cell of both figures leaves out or how it counts, printed under them.
POPULATION = "documents with two or more tokens"
CENSORED = ("censored median: a document whose decision never flips counts as needing n + 1 of its "
            "n tokens, so never-flipped documents stay in the median; past 100% (over half never "
            "flip) it reads 'never'")
LAYERS = ("L0 = nearest the input; layer sites L{l}: the classification row's attention, "
          "mean of heads")

#: cells of a share panel: 0 to 100%
_SHARE = (0.0, 1.0)


def _matrix(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    """Rows of numbers or ``None`` as a float matrix, NaN where a number is missing."""
    return np.array([[float(v) if is_num(v) else np.nan for v in row] for row in rows],
                    dtype=np.float64).reshape(len(rows), -1)


def cell_text(value: float, *, censored: bool = False) -> str:
    """A cell's annotation: a whole percentage ("never" past 100% for a censored median), "—" when
    the number is missing."""
    if np.isnan(value):
        return "—"
    if censored and value > 1:
        return "never"
    return f"{100 * value:.0f}%"


def _heat(ax: Axes, values: np.ndarray, cmap: Colormap, *, rows: Sequence[str],
          columns: Sequence[str], censored: bool = False, fontsize: float = 8) -> AxesImage:
    """One annotated heat map on a 0-100% colour scale; values past 100% take the top colour."""
    image = ax.imshow(np.ma.masked_invalid(np.clip(values, *_SHARE)), cmap=cmap, vmin=_SHARE[0],
                      vmax=_SHARE[1], aspect="auto")
    ax.set_xticks(range(len(columns)), list(columns), rotation=30 if len(columns) > 3 else 0,
                  ha="right" if len(columns) > 3 else "center")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.grid(False)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            shown = min(max(value, 0.0), 1.0) if not np.isnan(value) else np.nan
            # dark cells get white text; which end is dark depends on the colour map's direction
            r, g, b, _ = cmap(shown) if not np.isnan(shown) else (1.0, 1.0, 1.0, 1.0)
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, cell_text(value, censored=censored), ha="center", va="center",
                    fontsize=fontsize, color="white" if dark else "#111827")
    return image


def _colormap(name: str) -> Colormap:
    return matplotlib.colormaps[name].with_extremes(bad="#e5e7eb")


def plot_layer_grid(
    layers: Sequence[str],
    test1: Mapping[str, Sequence[float | None]],
    median_censored: Mapping[str, Sequence[float | None]],
    never: Mapping[str, Sequence[float | None]],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
) -> Path:
    """Three heat maps, rows = layers: Test 1's flip rates (top weight i*, random item r), Test 2's
    censored median fraction removed before the first flip per ranking, and its never-flipped share
    per ranking.

    Args:
        layers: row labels (e.g. "L0"), top to bottom.
        test1: column label -> one share per layer (e.g. "i* flips" -> [...]).
        median_censored: ranking name -> one censored median per layer (above 1 = "never").
        never: ranking name -> one never-flipped share per layer.
        rankings: ranking metadata (labels), in report order.
        path: where to write the PNG.
    """
    names = list(median_censored)
    width = 4.4 + 0.6 * (len(test1) + 2 * len(names))
    height = 2.6 + 0.34 * len(layers)
    # one colour scale for every panel (same colour = same share), so one colour bar; which way is
    # more faithful is in each panel's title
    cmap = _colormap("Blues")
    with figure(width, height) as fig:
        axes = fig.subplots(1, 3, width_ratios=[max(len(test1), 2.6), max(len(names), 1),
                                                 max(len(names), 1)])
        image = _heat(axes[0], _matrix([list(v) for v in test1.values()]).T, cmap,
                      rows=layers, columns=list(test1))
        axes[0].set_title("Test 1 · decision flips\nafter one erasure", fontsize=8.5)
        labels = [label_of(rankings, n) for n in names]
        _heat(axes[1], _matrix([list(median_censored[n]) for n in names]).T, cmap,
              rows=layers, columns=labels, censored=True)
        axes[1].set_title("Test 2 · censored median fraction removed\nbefore the first flip "
                          "(↓ sooner = more faithful)", fontsize=8.5)
        _heat(axes[2], _matrix([list(never.get(n) or []) for n in names]).T, cmap,
              rows=layers, columns=labels)
        axes[2].set_title("Test 2 · never flips\n(share of documents)", fontsize=8.5)
        for ax in axes[1:]:
            ax.set_yticks(range(len(layers)), [""] * len(layers))
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="share or fraction (0-100%)",
                     format="{x:.0%}")
        note = (f"Rows: {LAYERS}. Cells: {POPULATION}; Test 1 erases the top attention weight (i*) "
                f"or a random token (r); {CENSORED}; never-flipped documents are in every "
                "denominator. Grey '—': not audited or no documents.")
        fig.supxlabel(textwrap.fill(note, int(15 * width)), x=0.01, ha="left", fontsize=7,
                      color="#374151")
        return save(fig, path)


def plot_head_heatmap(
    values: Sequence[Sequence[float | None]],
    path: str | os.PathLike[str],
    *,
    measure: str,
    better: str,
    title: str,
    censored: bool = True,
) -> Path:
    """Heat map of one number per head site: rows = layers 1..L, columns = heads 1..H.

    Args:
        values: ``values[l][h]`` for layer ``l`` and head ``h`` (0-based, as in the site names),
            ``None`` where the head was not audited or has no number.
        path: where to write the PNG.
        measure: what a cell is, named on the figure (e.g. "attention ranking's censored median
            fraction of tokens removed before the first flip").
        better: which way is more faithful, named on the colour bar (e.g. "lower = more faithful").
        title: the heat map's title (short: the measure in a few words).
        censored: the cells are censored medians (above 1 reads "never").
    """
    matrix = _matrix(values)
    n_layers, n_heads = matrix.shape
    width = max(6.0, 3.4 + 0.62 * max(n_heads, 1))
    with figure(width, 2.6 + 0.36 * max(n_layers, 1)) as fig:
        ax = fig.subplots()
        # darker = fewer removals = more faithful: the eye goes to the heads worth a look
        image = _heat(ax, matrix, _colormap("Blues_r"),
                      rows=[f"L{i}" for i in range(n_layers)],
                      columns=[f"h{j}" for j in range(n_heads)], censored=censored,
                      fontsize=7 if n_heads > 8 else 8)
        ax.set_title(title, fontsize=8.5)
        fig.colorbar(image, ax=ax, shrink=0.8, label=better, format="{x:.0%}")
        note = (f"Cell: {measure} ({POPULATION}); {better}, darker. "
                + (f"{CENSORED[0].upper()}{CENSORED[1:]}. " if censored else "")
                + "Layers L{l} and heads h{h} counted from 0, as site L{l}.h{h}. "
                "Grey '—': not audited or no documents.")
        fig.supxlabel(textwrap.fill(note, int(15 * width)), x=0.01, ha="left", fontsize=7,
                      color="#374151")
        return save(fig, path)


__all__ = ["CENSORED", "LAYERS", "POPULATION", "cell_text", "plot_head_heatmap", "plot_layer_grid"]
