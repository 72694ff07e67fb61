"""Reports from saved audit results: figures (PNG) and one self-contained HTML page per run.

Nothing here loads a model or imports torch; everything is drawn from the files an audit writes
(see :mod:`attnaudit.reports.html`).
"""

from attnaudit.reports.figures import FIGURES, FigureSpec, Panel, draw_figure
from attnaudit.reports.html import REPORT_NAME, ReportError, build_report, cli_report, report_context

__all__ = [
    "FIGURES",
    "REPORT_NAME",
    "FigureSpec",
    "Panel",
    "ReportError",
    "build_report",
    "cli_report",
    "draw_figure",
    "report_context",
]
