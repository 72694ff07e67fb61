"""Number formatting for the report: the Jinja filters of :mod:`.render` and the helpers of
:mod:`.context` and :mod:`.transformer`. Every function returns plain text; the templates escape it
(autoescape is on).

The policy, one per kind of number: a share of documents is a percentage with one decimal
(:func:`pct`; a count out of n, :func:`share_of`, keeps three significant digits so that 1 of 400
is 0.25%, not 0%);
any other measure has three significant digits (:func:`sig`; JS values two), a difference between
rankings an explicit sign (:func:`signed`); nothing prints as "-0" (:func:`no_negative_zero`); a
missing number is a dash. Durations take one unit per table (:func:`duration_unit`, from the
table's largest value), named in the column's header; the cells are bare numbers
(:func:`duration`), so no column mixes "45 s" with "3.1 min".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, TypeGuard

#: JS units the report can display; the tables store nats
JS_UNITS: tuple[str, ...] = ("nats", "bits")
_COLOR = re.compile(r"#[0-9A-Fa-f]{3,8}|[A-Za-z]{3,20}")


def is_num(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool): what the formatters below print as a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_NEGATIVE_ZERO = re.compile(r"-(0(?:\.0*)?(?:e[+-]?0+)?%?)")


def no_negative_zero(text: str) -> str:
    """"-0.00" (a small negative number rounded to zero) as "0.00": the page never prints -0."""
    match = _NEGATIVE_ZERO.fullmatch(text)
    return match.group(1) if match else text


def pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage, or a dash when it is missing or not finite (never "-0.0%")."""
    return no_negative_zero(f"{100 * value:.{digits}f}%") if is_num(value) else "—"


def num(value: Any, fmt: str = ".3g") -> str:
    """A number in ``fmt``, or a dash when it is missing or not finite (never "-0.00")."""
    return no_negative_zero(format(value, fmt)) if is_num(value) else "—"


def sig(value: Any, digits: int = 3) -> str:
    """``digits`` significant digits (0.000012 -> "1.2e-05", never "0.0000"); a dash if missing."""
    if not is_num(value):
        return "—"
    return "0" if value == 0 else format(value, f".{digits}g")


def signed(value: Any, digits: int = 3) -> str:
    """Like :func:`sig` with an explicit sign (scores that push toward or away from the class)."""
    if not is_num(value):
        return "—"
    return "0" if value == 0 else format(value, f"+.{digits}g")


def share_of(k: int, n: int) -> str:
    """``k / n`` as a percentage with 3 significant digits: 1 of 400 is "0.25%", not "0%"."""
    if n <= 0:
        return "—"
    return f"{100 * k / n:.3g}%"


#: duration units: (name, seconds per unit, used while the table's largest value is below this
#: many seconds, decimals): seconds up to 2 minutes, minutes up to 2 hours, then hours; so the
#: largest value reads between 2 and 120 of its unit
DURATION_UNITS: tuple[tuple[str, float, float, int], ...] = (
    ("s", 1.0, 120.0, 0), ("min", 60.0, 7200.0, 1), ("h", 3600.0, math.inf, 1))


def duration_unit(seconds: Iterable[Any]) -> str:
    """The one unit of a table's durations (``"s"``, ``"min"``, ``"h"``), chosen from its largest
    value in seconds (missing ones ignored; ``"s"`` when there is none)."""
    largest = max((abs(v) for v in seconds if is_num(v)), default=0.0)
    return next(name for name, _, below, _ in DURATION_UNITS if largest < below)


def duration(seconds: Any, unit: str) -> str:
    """A duration in ``unit`` (of :data:`DURATION_UNITS`), without the unit (the header says it);
    a dash when missing, "<0.1" for a positive value that would round to zero."""
    if not is_num(seconds):
        return "—"
    scale, digits = next((per, d) for name, per, _, d in DURATION_UNITS if name == unit)
    text = no_negative_zero(f"{seconds / scale:.{digits}f}")
    if seconds > 0 and float(text) == 0:
        return f"<{10.0 ** -digits:g}" if digits else "<1"
    return text


def js_value(nats: Any, unit: str) -> float | None:
    """A JS value stored in nats, in the display ``unit`` (``"nats"`` or ``"bits"``)."""
    if not is_num(nats):
        return None
    return float(nats) / math.log(2.0) if unit == "bits" else float(nats)


def slug(name: str) -> str:
    """``name`` reduced to characters that are safe in file names, ids and class names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "x"


def safe_color(value: Any, default: str = "#6b7280") -> str:
    """A CSS colour from metadata, or ``default``: only ``#hex`` or a colour name reaches a style
    attribute (metadata is data, never CSS)."""
    text = str(value) if value is not None else ""
    return text if _COLOR.fullmatch(text) else default


def flip_text(step: Any, n: int) -> str:
    """"flips after 1 of 400 removed (0.25%)" or "never flips"."""
    if step is None:
        return "never flips"
    return f"flips after {int(step)} of {n} removed ({share_of(int(step), n)})"


def shade(value: float | None, scale: float, *, signed_: bool) -> str:
    """An item's background: attention in orange (relative to ``scale``, the largest weight); a
    signed score in green (toward the predicted class) or pink (away), relative to ``scale``, its
    largest magnitude. Only numbers reach the CSS (no metadata)."""
    if value is None:
        return "transparent"
    if not signed_:
        return f"rgba(230,159,0,{0.85 * max(0.0, value) / scale:.2f})"
    rgb = "0,158,115" if value >= 0 else "204,121,167"
    return f"rgba({rgb},{0.85 * min(1.0, abs(value) / scale):.2f})"
