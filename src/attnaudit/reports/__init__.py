"""Reports from saved audit results: figures (PNG) and one self-contained HTML page per run.

Nothing here loads a model or imports torch; everything is drawn from the files an audit writes.
"""

from attnaudit.reports.figures import (
    draw_figure,
    plot_attention_vs_gradient,
    plot_delta_js_vs_delta_a,
    plot_flip_table,
    plot_fraction_removed,
    plot_mass_removed,
    plot_never_flipped,
    write_comparison_figures,
    write_model_figures,
)
from attnaudit.reports.html import ReportError, build_report, cli_report

__all__ = [
    "ReportError",
    "build_report",
    "cli_report",
    "draw_figure",
    "plot_attention_vs_gradient",
    "plot_delta_js_vs_delta_a",
    "plot_flip_table",
    "plot_fraction_removed",
    "plot_mass_removed",
    "plot_never_flipped",
    "write_comparison_figures",
    "write_model_figures",
]
