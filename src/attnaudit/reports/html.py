"""One self-contained HTML page per run: ``attnaudit report runs/X`` -> ``runs/X/report.html``.

The report reads saved results only (``run.json``, and per model ``metrics.json``, ``config.json``,
``run_info.json``, ``audit/*.parquet`` and ``audit/*.json``); it never loads a model and never
imports torch, so rebuilding a report takes seconds. The work is split three ways:

* :mod:`.loading` reads the folder; :mod:`attnaudit.results` supplies every summary (the same
  function that wrote summary.json) and the example documents;
* :mod:`.context` draws the figures (:mod:`.figures`, into ``<run>/figures/``) and gathers
  everything the page shows as plain data;
* :mod:`.render` renders it with the Jinja2 templates in ``templates/`` (autoescaping on),
  inlining images, style and script under a Content-Security-Policy that forbids network fetches.

A run folder written by ``attnaudit run`` holds ``run.json`` and ``models/<name>/``; a single
model folder (with ``audit/`` but no ``models/``) is reported as a run of one.

Example:
    >>> from attnaudit.reports.html import build_report
    >>> build_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from attnaudit.reports.context import FIGURES_DIR, build_context
from attnaudit.reports.loading import ReportError
from attnaudit.reports.markup import JS_UNITS
from attnaudit.reports.render import render_page
from attnaudit.utils.io import atomic_open, remove_stale_temp_files
from attnaudit.utils.lock import folder_lock
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)

REPORT_NAME = "report.html"


def report_context(run_dir: str | os.PathLike[str], *, js_unit: str = "nats") -> dict[str, Any]:
    """The report's content as data (what :func:`build_report` renders), figures drawn.

    Raises:
        ReportError: ``run_dir`` does not exist or holds neither layout, or ``js_unit`` is unknown.
    """
    if js_unit not in JS_UNITS:
        raise ReportError(f"js_unit must be one of {', '.join(JS_UNITS)}, not {js_unit!r}")
    return build_context(Path(run_dir), js_unit=js_unit)


def build_report(run_dir: str | os.PathLike[str], js_unit: str = "nats") -> Path:
    """Write ``run_dir/report.html`` from the saved results under ``run_dir``.

    Args:
        run_dir: a folder written by ``attnaudit run`` (``run.json`` + ``models/``), or a single
            model folder (``audit/`` and usually ``metrics.json``).
        js_unit: ``"nats"`` (as stored, the original's natural log) or ``"bits"``: the unit JS
            divergences are shown in (converted at display time only).

    Returns:
        The path of the report.

    Raises:
        ReportError: ``run_dir`` does not exist or holds neither layout, or ``js_unit`` is unknown.
    """
    root = Path(run_dir)
    with contextlib.ExitStack() as stack:
        # The folder's lock when it is free: then the temporary files a killed report (or run)
        # left are ours to delete. When another command holds it (a run still working), the
        # report only writes, atomically, and deletes nothing of that command's.
        if root.is_dir() and stack.enter_context(folder_lock(root, "attnaudit report",
                                                             required=False)):
            # model folders of a run are cleaned by their own training and audit, under their locks
            stale = remove_stale_temp_files(root, exclude=[root / "models"])
            if stale:
                log.info("removed %d temporary file(s) of an interrupted command", len(stale))
        context = report_context(run_dir, js_unit=js_unit)
        log.info("report: rendering the page")
        page = render_page(context)
        target = root / REPORT_NAME
        with atomic_open(target) as f:
            f.write(page)
            os.fchmod(f.fileno(), 0o644)  # readable like any page; the temp file starts out 0600
    log.info("report written to %s (%d models)", target, len(context["models"]))
    return target


def cli_report(args: argparse.Namespace) -> None:
    """``attnaudit report RUN [--js-unit bits]``: build the report and print its path."""
    try:
        path = build_report(args.run, js_unit=getattr(args, "js_unit", None) or "nats")
    except ReportError as err:
        raise SystemExit(f"attnaudit: error: {err}") from err
    print(path)


__all__ = ["FIGURES_DIR", "REPORT_NAME", "ReportError", "build_report", "cli_report",
           "report_context"]
