"""mkdocs hook: the CLI reference page, generated from the CLI itself at build time.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with the help of
``attnaudit`` and of each of its commands, produced by the same typer app and help formatter
(typer's bundled click) as ``attnaudit COMMAND --help``, registry choices included, so the page
cannot drift from the code. Written as a hook because ``typer attnaudit.cli utils docs`` (typer
0.29) fails while importing the module (its dataclasses), and would not show the registries' names
the way ``attnaudit COMMAND --help`` does.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any

import typer
import typer.core
import typer.main

# Document the checkout's own code, as the API page does (mkdocstrings' ``paths: [src]``), whatever
# copy of attnaudit the environment has installed.
SRC = str(Path(__file__).resolve().parents[2] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

MARKER = "<!-- cli-reference -->"
#: the help's width on the page: what ``--help`` prints on a terminal of 100 columns or more (the
#: CLI's ``max_content_width`` is 100, and click's formatter keeps two columns free)
WIDTH = 98


def _context(command: Any, name: str, parent: Any = None) -> Any:
    """The context ``command.make_context`` would build (the app's ``context_settings``: help
    option names, content width), formatting ``WIDTH`` columns wide, without parsing arguments."""
    settings = {**command.context_settings, "terminal_width": WIDTH}
    return command.context_class(command, info_name=name, parent=parent, **settings)


def command_help(name: str | None) -> str:
    """The text ``attnaudit [NAME] --help`` prints on a terminal of 100 columns or more."""
    from attnaudit.cli import PROG, _show_choices, app

    root = typer.main.get_command(app)
    root_ctx = _context(root, PROG)
    if name is None:
        return str(root.get_help(root_ctx))
    assert isinstance(root, typer.core.TyperGroup)
    _show_choices(root, [name])  # the registries' names as the options' metavars, as --help shows
    command = root.commands[name]
    return str(command.get_help(_context(command, name, root_ctx)))


def command_names() -> list[str]:
    """The CLI's commands, in the order the app declares them."""
    from attnaudit.cli import app

    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    return list(root.commands)


def cli_markdown() -> str:
    """Markdown for every command: a heading (anchor ``attnaudit-NAME``), its summary, its help."""
    from attnaudit.cli import app

    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    parts = ["## attnaudit { #attnaudit }", "", "```text", command_help(None).rstrip(), "```", ""]
    for name in command_names():
        # escaped: a summary naming <run> would otherwise be read as an HTML tag
        summary = html.escape(root.commands[name].get_short_help_str(limit=200), quote=False)
        parts += [f"## attnaudit {name} {{ #attnaudit-{name} }}", "", summary, "", "```text",
                  command_help(name).rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs event: fill the marker on the CLI page."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_markdown())
