"""griffe extension for the API pages: read the project's docstrings as their authors wrote them.

The docstrings are Google style, with three habits Google-style parsing does not know: Sphinx
cross-reference roles (``:func:`load_run```, ``:class:`~attnaudit.config.AuditConfig```), which
Markdown would print literally; the singular section title ``Example:``, which griffe reads as an
admonition (its doctest lines then render as nested quotes) instead of an examples section; and
reStructuredText simple tables (``====  ====`` borders), which Markdown runs together into one
paragraph. This rewrites them in the docstring text griffe renders (roles as inline code, the
title as ``Examples:``, tables as Markdown tables); the source files stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:role:`~target``` -> ``target`` in code (the ``~`` of Sphinx's "last part only" dropped)
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`~?([^`]+)`")
#: a section title ``Example:`` alone on its line (any indentation)
EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


#: a simple table's border: runs of ``=`` separated by spaces (two columns at least)
BORDER = re.compile(r"^(\s*)=+(?: +=+)+\s*$")


def _columns(border: str) -> list[tuple[int, int]]:
    """(start, end) of each column: the runs of ``=`` in a border line."""
    return [m.span() for m in re.finditer(r"=+", border)]


def _cells(line: str, columns: list[tuple[int, int]]) -> list[str]:
    """A row's cells; the last column takes the rest of the line, as in reStructuredText."""
    cells = [line[a:b].strip() for a, b in columns[:-1]]
    return [*cells, line[columns[-1][0]:].strip()]


def rst_tables(text: str) -> str:
    """Rewrite reStructuredText simple tables (border, header, border, rows, border) as Markdown
    tables; a row whose first cell is empty continues the row above."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = BORDER.match(lines[i])
        ends = [j for j in range(i + 1, len(lines)) if BORDER.match(lines[j])][:2]
        if match is None or len(ends) < 2 or ends[0] != i + 2:
            out.append(lines[i])
            i += 1
            continue
        indent, columns = match.group(1), _columns(lines[i])
        rows: list[list[str]] = []
        for line in lines[ends[0] + 1:ends[1]]:
            cells = _cells(line, columns)
            if rows and not cells[0]:
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
            elif any(cells):
                rows.append(cells)
        header = _cells(lines[i + 1], columns)
        out += [indent + "| " + " | ".join(header) + " |",
                indent + "|" + "---|" * len(columns),
                *(indent + "| " + " | ".join(row) + " |" for row in rows)]
        i = ends[1] + 1
    return "\n".join(out)


def rewrite(text: str) -> str:
    """The docstring ``text`` with roles as inline code, ``Example:`` as ``Examples:`` and simple
    tables as Markdown tables."""
    return rst_tables(EXAMPLE.sub(r"\1Examples:", ROLE.sub(r"``\1``", text)))


class ProjectDocstrings(griffe.Extension):
    """Rewrites every loaded object's docstring with :func:`rewrite`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
