"""The documentation site: its CLI page is the CLI's own help, and the site builds strictly and
renders offline in a browser.

The CLI page is generated at build time by ``docs/_tools/cli_reference.py``; the quick test holds
that generator to what ``attnaudit COMMAND --help`` prints. The full test builds the whole site with
``mkdocs build --strict`` (broken internal links or anchors, pages outside the navigation and
docstrings that do not match their signatures fail it) and opens two of its pages in headless
Chromium.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from headless_chromium import CHROMIUM, load_page

from attnaudit.cli import main

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "docs" / "_tools" / "cli_reference.py"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hook() -> ModuleType:
    return _load(HOOK)


def test_cli_page_is_what_help_prints(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hook()
    # A terminal wider than the CLI's max_content_width (100): --help then wraps at hook.WIDTH.
    monkeypatch.setenv("COLUMNS", "200")
    names = hook.command_names()
    assert {"fetch-default", "synth", "train", "evaluate", "audit", "run", "report"} <= set(names)
    for name in [None, *names]:
        assert main([name, "--help"] if name else ["--help"]) == 0
        printed = capsys.readouterr().out
        assert printed == hook.command_help(name) + "\n", name
    page = hook.on_page_markdown(f"# CLI\n\n{hook.MARKER}\n", None, None, None)
    for name in names:
        assert f"## attnaudit {name} {{ #attnaudit-{name} }}" in page
    # the registries' names reach the page, as they reach --help
    assert "attention_x_gradient" in page and "han-rnn" in page


def test_cli_page_changes_with_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: the page is read from the app, not from a stored copy."""
    import attnaudit.cli

    hook = _hook()
    command = attnaudit.cli.app.registered_commands[0]
    monkeypatch.setattr(command, "help", "A help text written by this test.")
    assert "A help text written by this test." in hook.command_help(command.name)


def test_docstrings_read_as_written_for_the_api_pages() -> None:
    pytest.importorskip("griffe", reason="griffe (mkdocstrings' parser, in the docs extra) is not "
                        "installed: the API pages' docstring rewriting is not used without it")
    rewrite = _load(HOOK.parent / "griffe_docstrings.py").rewrite
    text = """Load a run.

    Example:
        >>> load_run("runs/x")  # doctest: +SKIP

    See :func:`~attnaudit.checkpoint.load_run` and :class:`AuditConfig`.

    =====  =======  =====================
    leaf   better   why
    =====  =======  =====================
    ``a``  lower    fewer items flip it
                    (never counted n + 1)
    b      higher   more
    =====  =======  =====================

    Rules: none.
    """
    assert rewrite(text) == """Load a run.

    Examples:
        >>> load_run("runs/x")  # doctest: +SKIP

    See ``attnaudit.checkpoint.load_run`` and ``AuditConfig``.

    | leaf | better | why |
    |---|---|---|
    | ``a`` | lower | fewer items flip it (never counted n + 1) |
    | b | higher | more |

    Rules: none.
    """


# Run in the built page after the screenshot: what rendered (the theme's styles and navigation,
# the page's heading, images and API entries).
PROBE = """JSON.stringify({
  h1: (document.querySelector('article h1') || {}).textContent || '',
  navLinks: document.querySelectorAll('nav.md-nav a.md-nav__link').length,
  images: [].map.call(document.querySelectorAll('article img'), function(i){
    return {src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}; }),
  apiObjects: [].map.call(document.querySelectorAll('.doc-heading[id]'), function(h){
    return h.id; }),
  literalRoles: document.body.innerText.indexOf(':class:') + document.body.innerText.indexOf(':func:'),
  stylesheets: document.styleSheets.length
})"""


@pytest.mark.full
def test_site_builds_strictly_and_renders_offline(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: `make docs` installs the docs "
                        "extra (pip install -e '.[docs]'), which this test builds the site with")
    pytest.importorskip("material", reason="mkdocs-material is not installed (the docs extra)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                            str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    pages = {p.relative_to(site).as_posix() for p in site.glob("*.html")}
    assert {"index.html", "tutorial.html", "own-transformer.html", "data.html", "cli.html",
            "api.html", "methods.html", "results.html", "benchmarks.html",
            "architecture.html"} <= pages
    cli = (site / "cli.html").read_text(encoding="utf-8")
    assert "attnaudit-audit" in cli and "--hf-model" in cli
    if CHROMIUM is None:
        pytest.skip("chromium not installed (bash .ci/ensure-chromium.sh installs it): the site "
                    "built strictly, but its pages were not opened in a browser")
    for name, expect in (("index.html", "attnaudit"), ("api.html", "Python API")):
        page = load_page(site / name, tmp_path / f"profile-{name}", probe=PROBE, width=1300,
                         height=1800)
        shot = tmp_path / f"{name}.png"
        shot.write_bytes(page.screenshot)
        print(f"screenshot: {shot}")  # shown with pytest -rP: worth a look after changing the site
        assert page.remote_requests == [], f"{name} must not touch the network"
        assert page.console_errors == [] and page.exceptions == [], name
        p = page.probe
        assert p["h1"].strip().startswith(expect), p
        assert p["navLinks"] >= 12 and p["stylesheets"] >= 2, p
        assert all(i["ok"] for i in p["images"]), p["images"]
        if name == "index.html":
            assert any(i["src"] == "report.png" for i in p["images"])
        else:
            assert {"attnaudit.api.audit", "attnaudit.checkpoint.load_run",
                    "attnaudit.config.AuditConfig"} <= set(p["apiObjects"]), p
            assert p["literalRoles"] == -2, "Sphinx roles must not show literally (griffe extension)"
        assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 30_000
