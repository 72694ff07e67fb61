"""What every figure shares: the style, an Agg figure outside pyplot, deterministic PNG writing,
formatters, ranking colours/labels from summary.json's metadata (never hard-coded here), and how a
drawn PNG is inlined into the page (:func:`inline`).

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never through
``pyplot``: no global backend switch, no figure registry to leak, safe to call from a library. Style
settings are applied with ``rc_context`` for the duration of one figure only. PNGs are written
without the ``Software`` metadata key and Agg stores no date, so the same data give the same bytes.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from attnaudit.utils.io import atomic_path
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)

#: ranking name -> {"label", "color"}: summary.json's "rankings", in report order
RankingsMeta = Mapping[str, Mapping[str, Any]]

FALLBACK_COLOR = "#6b7280"
DPI = 130
STYLE: dict[str, Any] = {
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
HORIZONTAL: dict[str, Any] = (
    {"orientation": "horizontal"} if _MPL_VERSION >= (3, 10) else {"vert": False}
)
#: 1 nat = 1 / ln 2 bits: JS values are stored in nats and converted for display only
NATS_PER_BIT = math.log(2.0)


@contextmanager
def figure(width: float, height: float) -> Iterator[Figure]:
    """A styled Agg figure with constrained layout, outside pyplot's global registry."""
    with matplotlib.rc_context(cast(Any, STYLE)):  # the stubs type rc keys as Literals
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as PNG atomically; no ``Software`` key: the bytes depend on the data only."""
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
        os.chmod(tmp, 0o644)  # like any image; the temporary file starts out private (0600)
    log.debug("wrote %s", target)
    return target


def inline(path: Path, *, key: str, title: str, caption: str) -> dict[str, Any]:
    """A drawn PNG as the page's figure: its title (ending in a full stop), caption, a data URI (the
    page fetches nothing) and whether it is wide (over 900 px, spans the figure grid)."""
    png = path.read_bytes()
    width = int.from_bytes(png[16:20], "big") if png[12:16] == b"IHDR" else 0
    shown = title if title.endswith(("?", "!", ".")) else title + "."
    return {"key": key, "title": shown, "alt": title, "caption": caption, "path": str(path),
            "wide": width > 900,
            "uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}


def percent(value: float, _pos: float | None = None) -> str:
    """Axis percentages: whole per cents from 10%, one decimal below (so 2.5% is not "2%")."""
    if value == 0 or abs(value) >= 0.1:
        return f"{value:.0%}"
    return f"{value:.1%}"


def no_data(ax: Axes, message: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#6b7280", transform=ax.transAxes)


def label_of(rankings: RankingsMeta, name: str) -> str:
    return str((rankings.get(name) or {}).get("label", name))


def color_of(rankings: RankingsMeta, name: str) -> str:
    return str((rankings.get(name) or {}).get("color", FALLBACK_COLOR))


def share_axis_top(values: list[float | None], *, headroom: float = 1.3, floor: float = 0.02) -> float:
    """Upper limit of a share axis scaled to the data (labels need headroom), at most 100%.

    A 0-100% axis flattens shares of a few per cent into slivers; this one keeps them readable.
    """
    top = max((v for v in values if v is not None and math.isfinite(v)), default=0.0)
    return min(1.0, max(floor, top * headroom)) if top < 0.75 else 1.08


def finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


#: Test 1 removals that are not rankings: column suffix in single_weight.parquet -> label
FIXED_REMOVAL_LABELS: dict[str, str] = {
    "max": "top attention weight (i*)",
    "second": "2nd-highest weight",
    "min": "lowest weight",
    "random": "random item (r)",
}


def removal_label(key: str, rankings: RankingsMeta) -> str:
    """A Test 1 removal's label: the fixed four, else the top item of a ranking."""
    return FIXED_REMOVAL_LABELS.get(key) or f"top {label_of(rankings, key)} item"
