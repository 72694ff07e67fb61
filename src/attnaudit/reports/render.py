"""Rendering the report's context (:mod:`.context`) to one self-contained HTML page with Jinja2.

Templates live in ``templates/*.html.j2`` beside this module; autoescaping is on for every
template, so document text, labels from metadata and file contents are escaped wherever they land
(element content or quoted attributes). The style sheet and the script (``report.css``,
``report.js``) are inlined, and a Content-Security-Policy forbids every network fetch: the page
opens offline and can be mailed around as it is.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from attnaudit.reports import markup

#: Nothing may be fetched: images are data URIs, styles and the script are inline.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


@functools.cache
def environment() -> jinja2.Environment:
    """The report's Jinja2 environment: package templates, autoescape on, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("attnaudit.reports", "templates"),
        autoescape=True,  # every template, whatever its extension (.html.j2)
        undefined=jinja2.StrictUndefined,  # a misspelt key fails the build instead of vanishing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update({
        "pct": markup.pct, "num": markup.num, "sig": markup.sig, "signed": markup.signed,
        "is_num": markup.is_num,
    })
    env.tests["num"] = markup.is_num
    return env


def render_page(context: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    return environment().get_template("report.html.j2").render(
        **context, csp=Markup(CSP), css=Markup(asset("report.css")), js=Markup(asset("report.js")))


@functools.cache
def asset(name: str) -> str:
    """``report.css`` or ``report.js``, shipped beside this module, to inline into the page.

    Inlined raw (marked safe): it is the package's own file, and it must not contain the closing
    tag of the element it sits in.
    """
    text = resources.files("attnaudit.reports").joinpath(name).read_text(encoding="utf-8")
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():  # it would end the inline element early
        raise ValueError(f"{name} must not contain {closing}")
    return text
