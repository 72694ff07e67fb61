"""Small HTML builders shared by the report's page (:mod:`.html`) and its example documents
(:mod:`.examples_html`): escaping, number formatting and tables. Every value is escaped here or by
the caller; cells passed to :func:`table` are already-rendered markup.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: Units of the Jensen-Shannon divergence per log base.
JS_UNITS: dict[str, str] = {"e": "nats", "2": "bits"}


def esc(value: Any) -> str:
    """``value`` as text that is safe in element content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def is_num(value: Any) -> bool:
    """A finite int or float (not a bool): what the formatters below print as a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: Any, digits: int = 1) -> str:
    """A share as a percentage, or a dash when it is missing or not finite."""
    return f"{100 * value:.{digits}f}%" if is_num(value) else "—"


def num(value: Any, fmt: str = ".3g") -> str:
    """A number in ``fmt``, or a dash when it is missing or not finite."""
    return format(value, fmt) if is_num(value) else "—"


def slug(name: str) -> str:
    """``name`` reduced to characters that are safe in file names, ids and class names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "model"


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    cls: str = "",
    groups: Sequence[tuple[str, int]] = (),
) -> str:
    """A table from pre-rendered cells.

    ``head`` entries may carry a tooltip as ``"label|tip"``; ``groups`` adds a header row above of
    ``(label, columns spanned)``.
    """
    group_row = "".join(f'<th colspan="{n}" class="group">{esc(label)}</th>'
                        for label, n in groups)
    ths = "".join(_th(h) for h in head)
    thead = (f"<tr>{group_row}</tr>" if groups else "") + f"<tr>{ths}</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead>{thead}</thead><tbody>{body}</tbody></table>'


def _th(head: str) -> str:
    label, _, tip = head.partition("|")
    title = f' title="{esc(tip)}"' if tip else ""
    return f"<th{title}>{esc(label)}</th>"
