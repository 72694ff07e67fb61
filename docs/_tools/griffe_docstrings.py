"""griffe extension for the API pages: read the project's docstrings as their authors wrote them.

The docstrings are Google style, with two habits Google-style parsing does not know: Sphinx
cross-reference roles (``:func:`load_run```, ``:class:`~attnaudit.config.AuditConfig```), which
Markdown would print literally, and the singular section title ``Example:``, which griffe reads as
an admonition (its doctest lines then render as nested quotes) instead of an examples section.
This rewrites both in the docstring text griffe renders; the source files stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:role:`~target``` -> ``target`` in code (the ``~`` of Sphinx's "last part only" dropped)
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`~?([^`]+)`")
#: a section title ``Example:`` alone on its line (any indentation)
EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


def rewrite(text: str) -> str:
    """The docstring ``text`` with roles as inline code and ``Example:`` as ``Examples:``."""
    return EXAMPLE.sub(r"\1Examples:", ROLE.sub(r"``\1``", text))


class ProjectDocstrings(griffe.Extension):
    """Rewrites every loaded object's docstring with :func:`rewrite`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
