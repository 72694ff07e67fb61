"""One self-contained HTML page per run: ``attnaudit report runs/X`` -> ``runs/X/report.html``.

The report reads saved results only (``run.json``, and per model ``metrics.json``, ``config.json``,
``audit/*.parquet`` and ``audit/*.json``); it never loads a model, and this module never imports
torch, so rebuilding a report takes seconds. Figures are drawn with :mod:`attnaudit.reports.figures`
into ``<run>/figures/`` and inlined as base64 data URIs; CSS and the few lines of JavaScript are
inline too, and a Content-Security-Policy forbids every network fetch, so the file opens offline and
can be mailed around as it is. Every piece of document text is escaped.

A run folder written by ``attnaudit run`` holds ``run.json`` and ``models/<name>/``; a single
model folder (with ``audit/`` but no ``models/``) is reported as a run of one. Missing pieces (a
model whose audit has not finished, an unreadable file) are named in the report instead of failing.

Example:
    >>> from attnaudit.reports.html import build_report
    >>> build_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnaudit import __version__
from attnaudit.reports import figures
from attnaudit.reports.figures import RANKING_COLORS, RANKING_LABELS, RANKINGS, REMOVAL_LABELS
from attnaudit.utils.io import atomic_open
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)

REPORT_NAME = "report.html"
FIGURES_DIR = "figures"

CATEGORY_LABELS: dict[str, str] = {
    "largest_delta_js": "Largest ΔJS",
    "flips_after_one": "Flips after one removal",
    "never_flips": "Never flips",
    "median": "Median document",
}
_JS_UNITS = {"e": "nats", "2": "bits"}


class ReportError(ValueError):
    """The folder given is not something a report can be built from."""


@dataclass
class ModelResults:
    """Everything saved for one model; any piece may be missing (``None``), with a note why."""

    name: str
    folder: Path
    metrics: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    single_weight: pd.DataFrame | None = None
    removal: pd.DataFrame | None = None
    examples: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def has_audit(self) -> bool:
        return any(x is not None for x in (self.summary, self.single_weight, self.removal))

    @property
    def js_base(self) -> str:
        if self.summary and self.summary.get("js_base") is not None:
            return str(self.summary["js_base"])
        return "e"  # the original system's natural logarithm


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: which table it is drawn from and how to read it."""

    key: str
    title: str
    caption: str
    per_model: bool = True  # False: drawn across models only

    @property
    def source(self) -> str:
        """The table it is drawn from: ``"single_weight"`` or ``"removal"``."""
        return figures.FIGURE_SOURCES[self.key]


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("delta_js_vs_delta_a", "ΔJS against Δa",
               "Each cell counts documents (log colour scale). Points high above the dashed zero "
               "line mean removing the top weight changed the output much more than removing a "
               "random one; the paper found ΔJS mostly tiny, and large Δa often with small ΔJS."),
    FigureSpec("flip_table", "Decisions flipped by one removal",
               "Left: the paper's Table 2, how often removing the top weight i* and a random "
               "item r flip the decision. Right: the flip rate of every single-item removal."),
    FigureSpec("fraction_removed", "Fraction removed before the decision flips",
               "Items are removed most-important-first by each ranking until the predicted label "
               "changes. Further left = the ranking found the decisive items sooner."),
    FigureSpec("mass_removed", "Attention mass removed before the decision flips",
               "Sum of the original attention weights of the removed items. Attention ranking "
               "removes the most mass per item by construction."),
    FigureSpec("never_flipped", "Documents whose decision never flips",
               "Share of documents (two or more items) whose label survives removing every item.",
               per_model=False),  # a model's panel has these shares in its Test 2 table
    FigureSpec("attention_vs_gradient", "Attention or gradient: which flips sooner?",
               "Per document, which ranking needed fewer removals. Never flipping counts as the "
               "most removals; both never flipping is a tie.", per_model=False),
)


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------


def build_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``run_dir/report.html`` from the saved results under ``run_dir``.

    Args:
        run_dir: a folder written by ``attnaudit run`` (``run.json`` + ``models/``), or a single
            model folder (``audit/`` and usually ``metrics.json``).

    Returns:
        The path of the report.

    Raises:
        ReportError: ``run_dir`` does not exist or holds neither layout.
    """
    root = Path(run_dir)
    run_info, folders = discover(root)
    models = [load_model(name, folder) for name, folder in folders]
    figure_dir = root / FIGURES_DIR
    for model in models:
        model.figures = draw_model_figures(model, figure_dir / _slug(model.name))
    combined, combined_notes = draw_combined_figures(models, figure_dir / "_combined")
    page = render_page(root, run_info, models, combined, combined_notes)
    target = root / REPORT_NAME
    with atomic_open(target) as f:
        f.write(page)
        os.fchmod(f.fileno(), 0o644)  # readable like any page; the temp file starts out 0600
    log.info("report written to %s (%d models)", target, len(models))
    return target


def cli_report(args: argparse.Namespace) -> None:
    """``attnaudit report RUN``: build the report and print its path."""
    try:
        path = build_report(args.run)
    except ReportError as err:
        raise SystemExit(f"attnaudit: error: {err}") from err
    print(path)


# ----------------------------------------------------------------------------------------------
# Reading saved results
# ----------------------------------------------------------------------------------------------


def discover(root: Path) -> tuple[dict[str, Any] | None, list[tuple[str, Path]]]:
    """The run's ``run.json`` (if any) and ``(model name, model folder)`` pairs, in run order."""
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder")
    run_info = _read_json_or_none(root / "run.json")
    if (root / "models").is_dir() or run_info is not None:
        listed = _listed_models(run_info)
        found = sorted(p.name for p in (root / "models").glob("*") if p.is_dir()) \
            if (root / "models").is_dir() else []
        names = listed + [n for n in found if n not in listed]
        return run_info, [(n, root / "models" / n) for n in names]
    if (root / "audit").is_dir() or (root / "metrics.json").is_file():
        summary = _read_json_or_none(root / "audit" / "summary.json") or {}
        return None, [(str(summary.get("model") or root.name), root)]
    raise ReportError(
        f"{root} holds neither a pipeline run (run.json, models/) nor a model folder (audit/)"
    )


def _run_setting(run_info: dict[str, Any] | None, key: str) -> Any:
    """A setting of ``run.json``: top level, or under ``config`` as ``attnaudit run`` writes it."""
    info = run_info or {}
    config = info.get("config")
    if info.get(key) is None and isinstance(config, dict):
        return config.get(key)
    return info.get(key)


def _listed_models(run_info: dict[str, Any] | None) -> list[str]:
    """Model names from ``run.json``: a list of names, or of objects with a ``name``."""
    entries = _run_setting(run_info, "models") or []
    if isinstance(entries, str):
        entries = [e.strip() for e in entries.split(",") if e.strip()]
    names: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("name") or entry.get("model") if isinstance(entry, dict) else entry
        if name is not None and str(name) not in names:
            names.append(str(name))
    return names


def load_model(name: str, folder: Path) -> ModelResults:
    """Read what there is of one model's results; note what is missing or unreadable."""
    result = ModelResults(name=name, folder=folder)
    if not folder.is_dir():
        result.notes.append(f"No folder for this model yet ({_rel(folder)}): not trained yet.")
        return result
    audit = folder / "audit"
    result.metrics = _load(result, folder / "metrics.json", _read_json)
    result.config = _load(result, folder / "config.json", _read_json, quiet=True)
    if not audit.is_dir():
        result.notes.append(f"No audit results yet ({_rel(audit)} is missing): run "
                            "`attnaudit audit` on this model, then rebuild the report.")
        return result
    if not (audit / "summary.json").is_file():  # written last: it marks a finished audit
        result.notes.append(f"The audit has not finished ({_rel(audit)}/summary.json is not "
                            "there yet); what it has written so far is shown.")
    result.summary = _load(result, audit / "summary.json", _read_json, quiet=True)
    result.single_weight = _load(result, audit / "single_weight.parquet", pd.read_parquet)
    result.removal = _load(result, audit / "removal.parquet", pd.read_parquet)
    examples = _load(result, audit / "examples.json", _read_json)
    result.examples = examples if isinstance(examples, list) else None
    return result


def _load(
    result: ModelResults, path: Path, reader: Callable[[Path], Any], *, quiet: bool = False
) -> Any:
    """``reader(path)``, or ``None`` with a note in the report when the file is missing or bad."""
    if not path.is_file():
        if not quiet:
            result.notes.append(f"{_rel(path)} is missing.")
        return None
    try:
        return reader(path)
    except (OSError, ValueError) as err:  # pyarrow and json errors are ValueErrors
        log.warning("cannot read %s: %s", path, err)
        result.notes.append(f"{_rel(path)} could not be read: {err}")
        return None


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_json_or_none(path: Path) -> dict[str, Any] | None:
    try:
        obj = _read_json(path)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _rel(path: Path) -> str:
    """The last three parts of a path: enough to find the file, no home folder in the report."""
    return "/".join(path.parts[-3:])


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _draw(
    spec: FigureSpec, df: pd.DataFrame, path: Path, js_base: str, notes: list[str]
) -> Path | None:
    """Draw one figure; a frame that lacks a column costs the figure, not the report."""
    try:
        return figures.draw_figure(spec.key, df, path, js_base=js_base)
    except (KeyError, ValueError, TypeError) as err:
        log.warning("figure %s not drawn: %s", path, err)
        notes.append(f"Figure “{spec.title}” could not be drawn: {type(err).__name__}: {err}")
        return None


def draw_model_figures(model: ModelResults, folder: Path) -> dict[str, Path]:
    """Every figure one model's saved tables allow, as ``{figure key: PNG path}``."""
    out: dict[str, Path] = {}
    for spec in FIGURES:
        df = model.single_weight if spec.source == "single_weight" else model.removal
        if df is None or not spec.per_model:
            continue
        path = _draw(spec, df, folder / f"{spec.key}.png", model.js_base, model.notes)
        if path is not None:
            out[spec.key] = path
    return out


def draw_combined_figures(
    models: Sequence[ModelResults], folder: Path
) -> tuple[dict[str, Path], list[str]]:
    """The per-model comparison figures over every model with results (two models or more)."""
    notes: list[str] = []
    out: dict[str, Path] = {}
    for spec in FIGURES:
        frames = [m.single_weight if spec.source == "single_weight" else m.removal for m in models]
        present = [f for f in frames if f is not None]
        if len(present) < 2:
            continue
        bases = {m.js_base for m, f in zip(models, frames, strict=True) if f is not None}
        if spec.key == "delta_js_vs_delta_a" and len(bases) > 1:
            notes.append("ΔJS is not compared across models: they use different JS log bases.")
            continue
        df = pd.concat(present, ignore_index=True)
        path = _draw(spec, df, folder / f"{spec.key}.png", bases.pop(), notes)
        if path is not None:
            out[spec.key] = path
    return out, notes


# ----------------------------------------------------------------------------------------------
# Formatting helpers
# ----------------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pct(value: Any, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%" if _is_num(value) else "—"


def _num(value: Any, fmt: str = ".3g") -> str:
    return format(value, fmt) if _is_num(value) else "—"


def _seconds(value: Any) -> str:
    if not _is_num(value):
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "model"


def _model_ids(models: Sequence[ModelResults]) -> dict[str, str]:
    """Unique HTML ids per model name (two names may share a slug)."""
    ids: dict[str, str] = {}
    for model in models:
        base = "m-" + _slug(model.name).lower()
        ident, k = base, 2
        while ident in ids.values():
            ident, k = f"{base}-{k}", k + 1
        ids[model.name] = ident
    return ids


def _table(
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
    group_row = "".join(f'<th colspan="{n}" class="group">{_esc(label)}</th>'
                        for label, n in groups)
    ths = "".join(_th(h) for h in head)
    thead = (f"<tr>{group_row}</tr>" if groups else "") + f"<tr>{ths}</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead>{thead}</thead><tbody>{body}</tbody></table>'


def _th(head: str) -> str:
    label, _, tip = head.partition("|")
    title = f' title="{_esc(tip)}"' if tip else ""
    return f"<th{title}>{_esc(label)}</th>"


def _figure_html(path: Path | None, spec: FigureSpec) -> str:
    """The PNG inlined as a data URI; figures wider than half the page take a whole row."""
    if path is None or not path.is_file():
        return ""
    png = path.read_bytes()
    width = int.from_bytes(png[16:20], "big") if png[12:16] == b"IHDR" else 0
    data = base64.b64encode(png).decode("ascii")
    cls = "fig wide" if width > 900 else "fig"
    title = spec.title if spec.title.endswith(("?", "!", ".")) else spec.title + "."
    return (f'<figure class="{cls}"><figcaption><b>{_esc(title)}</b> {_esc(spec.caption)}'
            f'</figcaption><img alt="{_esc(spec.title)}" src="data:image/png;base64,{data}">'
            "</figure>")


def _notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="note">{_esc(n)}</p>' for n in notes)


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------


def render_page(
    root: Path,
    run_info: dict[str, Any] | None,
    models: Sequence[ModelResults],
    combined: dict[str, Path],
    combined_notes: Sequence[str],
) -> str:
    """The whole report as one HTML string."""
    ids = _model_ids(models)
    title = f"Attention audit · {root.resolve().name}"
    body = "".join([
        _header(title, run_info, models),
        _nav(models, ids),
        "<main>",
        _how_to_read(),
        _run_section(root, run_info, models),
        _accuracy_section(models),
        _comparison_section(models, combined, combined_notes),
        _models_section(models, ids),
        "</main>",
        f'<footer>Built by attnaudit {_esc(__version__)} from the saved results in '
        f"<code>{_esc(root.resolve().name)}</code>. Self-contained: no network access is needed "
        "or made.</footer>",
    ])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}<script>{_JS}</script></body></html>\n"
    )


# Nothing may be fetched: images are data URIs, styles and the script are inline.
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def _header(title: str, run_info: dict[str, Any] | None, models: Sequence[ModelResults]) -> str:
    audited = sum(m.has_audit for m in models)
    data = _run_setting(run_info, "data")
    if isinstance(data, dict):
        data = data.get("path") or data.get("name")
    facts = [f"{len(models)} model{'s' if len(models) != 1 else ''}", f"{audited} audited"]
    if data:
        facts.append(f"data: {data}")
    if _run_setting(run_info, "seed") is not None:
        facts.append(f"seed {_run_setting(run_info, 'seed')}")
    chips = "".join(f'<span class="chip">{_esc(f)}</span>' for f in facts)
    return (f'<header class="hero"><div class="inner"><h1>{_esc(title)}</h1>'
            "<p class=\"lede\">Does the attention of these text classifiers point at what the "
            "model actually used? Two erasure tests after Serrano &amp; Smith, "
            "<i>Is Attention Interpretable?</i> (ACL 2019).</p>"
            f'<div class="chips">{chips}</div></div></header>')


def _nav(models: Sequence[ModelResults], ids: dict[str, str]) -> str:
    links = [("#how", "How to read"), ("#run", "Run"), ("#accuracy", "Accuracy"),
             ("#comparison", "Comparison")]
    items = "".join(f'<a href="{h}">{_esc(t)}</a>' for h, t in links)
    model_links = "".join(
        f'<a class="tab" data-model="{ids[m.name]}" href="#{ids[m.name]}">{_esc(m.name)}</a>'
        for m in models
    )
    return (f'<nav class="topnav"><div class="navin">{items}'
            f'<span class="sep">Models:</span>{model_links}</div></nav>')


def _how_to_read() -> str:
    return """<section id="how"><h2>How to read this report</h2><div class="cols">
<div class="card"><h3>Test 1 · one attention weight</h3>
<p>For each test document, zero the <b>largest</b> attention weight (item i*), spread its mass over
the other items, and see how much the output distribution moves (Jensen-Shannon divergence, JS).
Do the same for a <b>random</b> item r. If attention marks what matters, removing i* should move
the output much more than removing r: <b>ΔJS = JS(i*) − JS(r)</b> large, and the decision should
sometimes flip. Δa = a(i*) − a(r) is how much more weight i* had.</p>
<p class="muted">The paper found ΔJS positive for most documents but usually tiny, and removing
i* rarely flips the decision.</p></div>
<div class="card"><h3>Test 2 · sets of weights, until the decision flips</h3>
<p>Rank the items, then zero them one at a time, most important first, until the predicted label
changes. A ranking that knows what the model uses flips the decision after <b>few</b> removals.
Rankings: <b>random</b> (baseline), <b>attention</b>, the <b>gradient</b> of the predicted
class's probability with respect to each weight, and <b>attention × gradient</b>. Documents that
never flip, even with everything removed, are counted beside the plots.</p>
<p class="muted">The paper found attention beats random, gradients beat attention, and many
decisions flip only after most items are gone, especially with contextual (RNN/CNN) encoders.</p>
</div></div></section>"""


def _run_section(
    root: Path, run_info: dict[str, Any] | None, models: Sequence[ModelResults]
) -> str:
    if run_info is None:
        where = "a single model folder" if len(models) == 1 else "a folder without run.json"
        return (f'<section id="run"><h2>Run</h2><p>This report was built from {where}: '
                f"<code>{_esc(root.resolve().name)}</code>.</p></section>")
    rows = _flatten(run_info)
    key = [r for r in rows if r[0].split(".")[-1] in _KEY_SETTINGS or r[0] in _KEY_SETTINGS]
    shown = key or rows
    table = _table(["Setting", "Value"],
                   [(f"<code>{_esc(k)}</code>", _esc(v)) for k, v in shown], cls="kv")
    more = ""
    if len(shown) < len(rows):
        more = (f"<details><summary>All {len(rows)} settings in run.json</summary>"
                + _table(["Setting", "Value"],
                         [(f"<code>{_esc(k)}</code>", _esc(v)) for k, v in rows], cls="kv")
                + "</details>")
    return f'<section id="run"><h2>Dataset and run</h2>{table}{more}</section>'


# The settings a reader looks for first; the rest of run.json is one click away.
_KEY_SETTINGS = frozenset({
    "path", "fmt", "format", "text_column", "label_column", "max_train_docs", "max_test_docs",
    "models", "seed", "epochs", "created", "torch", "attnaudit", "python", "js_base",
})


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as dotted keys; lists of plain values joined, others expanded."""
    if isinstance(obj, dict):
        out: list[tuple[str, str]] = []
        for key, value in obj.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return [row for i, v in enumerate(obj) for row in _flatten(v, f"{prefix}[{i}]")]
    if isinstance(obj, list):
        return [(prefix, ", ".join(str(v) for v in obj))]
    return [(prefix, "—" if obj is None else str(obj))]


# metrics.json names as the trainer writes them, beside the names of the report's contract.
_METRIC_ALIASES = {
    "majority_baseline": ("majority_baseline", "majority_test_accuracy"),
    "epochs": ("epochs", "epochs_trained"),
    "train_docs_per_second": ("train_docs_per_second", "train_docs_per_s"),
}


def _metric(metrics: dict[str, Any], key: str) -> Any:
    """``metrics[key]`` under its name or any alias; ``None`` when absent."""
    for name in _METRIC_ALIASES.get(key, (key,)):
        if metrics.get(name) is not None:
            return metrics[name]
    return None


def _accuracy_section(models: Sequence[ModelResults]) -> str:
    head = ["Model", "Test accuracy", "Majority baseline|Accuracy of always predicting the most "
            "frequent class", "Dev accuracy", "Epochs", "Training time",
            "Train docs/s|Training throughput, documents per second"]
    rows = []
    for m in models:
        x = m.metrics or {}
        test, majority = x.get("test_accuracy"), _metric(x, "majority_baseline")
        shown = _pct(test)
        if _is_num(test) and _is_num(majority):
            shown += f' <span class="muted">({100 * (test - majority):+.1f} pts)</span>'
        rows.append([f"<b>{_esc(m.name)}</b>", shown, _pct(majority),
                     _pct(x.get("dev_accuracy")), _esc(_metric(x, "epochs") or "—"),
                     _seconds(x.get("train_seconds")),
                     _num(_metric(x, "train_docs_per_second"), ",.0f")])
    return (f'<section id="accuracy"><h2>Accuracy</h2>{_table(head, rows, cls="num")}'
            '<p class="muted">Accuracy on the test split; the audits below explain these '
            "models' own decisions, right or wrong.</p></section>")


def _comparison_section(
    models: Sequence[ModelResults], combined: dict[str, Path], notes: Sequence[str]
) -> str:
    with_summary = [m for m in models if m.summary]
    if not with_summary:
        return ('<section id="comparison"><h2>Comparison across models</h2>'
                '<p class="note">No model has audit results yet.</p></section>')
    head = ["Model", "Docs|Test documents audited", "ΔJS > 0|Share of documents where removing "
            "the top weight moves the output more than removing a random item",
            "Median ΔJS", "i* flips|Removing the top attention weight flips the decision",
            "r flips|Removing a random item flips the decision"]
    head += [f"{RANKING_LABELS[r]}|Median fraction of items removed before the first flip, "
             f"{RANKING_LABELS[r]} ranking (documents that flip)" for r in RANKINGS]
    head += ["never flips|Share of documents whose decision survives removing every item, "
             "attention ranking", "attention fewer|Attention ranking flips sooner than gradient",
             "gradient fewer|Gradient ranking flips sooner than attention"]
    groups = [("", 2), ("Test 1 · one weight removed", 4),
              ("Test 2 · median fraction removed at the flip", len(RANKINGS)),
              ("Test 2 · attention ranking", 3)]
    rows = [_comparison_row(m) for m in with_summary]
    figs = "".join(_figure_html(combined.get(s.key), s) for s in FIGURES)
    return (f'<section id="comparison"><h2>Comparison across models</h2>'
            f'{_table(head, rows, cls="num compact", groups=groups)}{_notes(notes)}'
            f'<div class="figs">{figs}</div></section>')


def _comparison_row(m: ModelResults) -> list[str]:
    s = m.summary or {}
    sw, rm = s.get("single_weight") or {}, s.get("removal") or {}
    flips = sw.get("flip_rate") or {}
    avg = s.get("attention_vs_gradient") or {}
    unit = _JS_UNITS.get(m.js_base, "")
    return [f'<b>{_esc(m.name)}</b>', _esc(s.get("n_docs", "—")),
            _pct(sw.get("share_delta_js_positive")),
            f'{_num(sw.get("median_delta_js"), ".2g")} <span class="muted">{unit}</span>',
            _pct(flips.get("max")), _pct(flips.get("random"))] + \
        [_pct((rm.get(r) or {}).get("median_fraction"), 0) for r in RANKINGS] + \
        [_pct((rm.get("attention") or {}).get("share_never_flipped"), 0),
         _pct(avg.get("attention_fewer"), 0), _pct(avg.get("gradient_fewer"), 0)]


def _models_section(models: Sequence[ModelResults], ids: dict[str, str]) -> str:
    tabs = "".join(
        f'<a class="tab" data-model="{ids[m.name]}" href="#{ids[m.name]}">{_esc(m.name)}'
        f'{"" if m.has_audit else " <small>(no audit)</small>"}</a>'
        for m in models
    )
    panels = "".join(_model_panel(m, ids[m.name]) for m in models)
    return (f'<section id="models"><h2>Results per model</h2>'
            f'<div class="tabs">{tabs}</div>{panels}</section>')


def _model_panel(m: ModelResults, ident: str) -> str:
    parts = [f'<h2 class="model-title">{_esc(m.name)}</h2>', _config_chips(m), _notes(m.notes)]
    if m.has_audit:
        parts += [_stat_cards(m), _test1_block(m), _test2_block(m), _examples_block(m, ident)]
    return (f'<section class="model-panel" id="{ident}" data-model="{ident}">'
            f'{"".join(parts)}</section>')


_CONFIG_ORDER = {"model": 0, "kind": 0, "encoder": 0, "train": 1}


def _config_chips(m: ModelResults) -> str:
    if not m.config:
        return ""
    # What the model is first (config.json holds data, model and train settings, in that order).
    flat = sorted(_flatten(m.config), key=lambda kv: _CONFIG_ORDER.get(kv[0].split(".")[0], 9))
    chips = "".join(f'<span class="chip"><b>{_esc(k)}</b> {_esc(v)}</span>' for k, v in flat[:8])
    more = ""
    if len(flat) > 8:
        more = (f"<details><summary>all {len(flat)} settings</summary>"
                f'{_table(["Setting", "Value"], [(_esc(k), _esc(v)) for k, v in flat], cls="kv")}'
                "</details>")
    return f'<div class="chips">{chips}</div>{more}'


def _stat_cards(m: ModelResults) -> str:
    s, x = m.summary or {}, m.metrics or {}
    cards = [
        ("Test accuracy", _pct(x.get("test_accuracy")),
         f"majority baseline {_pct(_metric(x, 'majority_baseline'))}"),
        ("Documents audited", _esc(s.get("n_docs", "—")),
         f"{_esc(s.get('n_single_item', '—'))} with a single item"),
        ("JS divergence in", _JS_UNITS.get(m.js_base, m.js_base),
         "natural log, max ln 2" if m.js_base == "e" else "log base 2, max 1"),
    ]
    return '<div class="stats">' + "".join(
        f'<div class="stat"><div class="k">{_esc(k)}</div><div class="v">{v}</div>'
        f'<div class="muted">{sub}</div></div>' for k, v, sub in cards) + "</div>"


def _test1_block(m: ModelResults) -> str:
    sw = (m.summary or {}).get("single_weight") or {}
    flips, t2 = sw.get("flip_rate") or {}, sw.get("table2") or {}
    unit = _JS_UNITS.get(m.js_base, "")
    lead = (f"<p>Over {_esc(sw.get('n', '—'))} documents with two or more items, removing the top "
            f"weight moved the output more than removing a random item for "
            f"<b>{_pct(sw.get('share_delta_js_positive'))}</b> of them (median ΔJS "
            f"<b>{_num(sw.get('median_delta_js'), '.2g')}</b> {unit}). It flipped the decision "
            f"for <b>{_pct(flips.get('max'))}</b>; a random item for "
            f"<b>{_pct(flips.get('random'))}</b>.</p>")
    flip_rows = [[_esc(REMOVAL_LABELS.get(k, k)), _bar_cell(flips.get(k))]
                 for k in figures.REMOVALS]
    table2 = _table(["", "r flips", "r does not flip"], [
        ["<b>i* flips</b>", _pct(t2.get("both")), _pct(t2.get("only_max"))],
        ["<b>i* does not flip</b>", _pct(t2.get("only_random")), _pct(t2.get("neither"))],
    ], cls="num t2")
    # The tables beside the ΔJS histogram; the flip-table figure below, across the page.
    specs = {s.key: s for s in FIGURES}
    histogram = _figure_html(m.figures.get("delta_js_vs_delta_a"), specs["delta_js_vs_delta_a"])
    flip_figure = _figure_html(m.figures.get("flip_table"), specs["flip_table"])
    return (f'<h3>Test 1 · one attention weight</h3>{lead}<div class="cols">'
            f'<div><h4>Flip rate of each single removal</h4>'
            f'{_table(["Item removed", "Decision flips"], flip_rows, cls="num")}'
            f"<h4>Table 2: removing i* vs a random item r</h4>{table2}</div>"
            f'<div>{histogram}</div></div><div class="figs">{flip_figure}</div>')


def _bar_cell(value: Any) -> str:
    """A share with a small inline bar, so a column of rates reads at a glance."""
    if not _is_num(value):
        return "—"
    width = max(0.0, min(1.0, float(value))) * 100
    return (f'<span class="bar"><span style="width:{width:.1f}%"></span></span>'
            f"{_pct(value)}")


def _test2_block(m: ModelResults) -> str:
    rm = (m.summary or {}).get("removal") or {}
    head = ["Ranking", "Median fraction removed|Median fraction of items removed at the first "
            "flip, documents that flip", "Quartiles|First and third quartile (bar: 0 to 100%)",
            "Median mass|Median attention mass removed at the first flip",
            "Never flips|Share of documents whose decision survives every removal",
            "Flips sooner than random|Share of documents where this ranking needs fewer removals "
            "than the random ranking"]
    rows = []
    for r in [*RANKINGS, *sorted(set(rm) - set(RANKINGS))]:
        x = rm.get(r)
        if not isinstance(x, dict):
            continue
        rows.append([_ranking_name(r), _pct(x.get("median_fraction")),
                     _iqr_cell(x.get("q1_fraction"), x.get("median_fraction"),
                               x.get("q3_fraction")),
                     _pct(x.get("median_mass")), _pct(x.get("share_never_flipped")),
                     _pct(x.get("share_beats_random"))])
    figs = "".join(_figure_html(m.figures.get(s.key), s) for s in FIGURES if s.source == "removal")
    return (f"<h3>Test 2 · remove items until the decision flips</h3>"
            f'{_table(head, rows, cls="num")}{_versus(m)}<div class="figs">{figs}</div>')


def _ranking_name(ranking: str) -> str:
    color = RANKING_COLORS.get(ranking, "#6b7280")
    return (f'<span class="dot" style="background:{color}"></span>'
            f"{_esc(RANKING_LABELS.get(ranking, ranking))}")


def _iqr_cell(q1: Any, median: Any, q3: Any) -> str:
    if not all(_is_num(v) for v in (q1, median, q3)):
        return "—"
    lo, mid, hi = (100 * max(0.0, min(1.0, float(v))) for v in (q1, median, q3))
    tip = f"Q1 {_pct(q1)} · median {_pct(median)} · Q3 {_pct(q3)}"
    return (f'<span class="iqr" title="{tip}"><span class="box" style="left:{lo:.1f}%;'
            f'width:{max(hi - lo, 0.5):.1f}%"></span><span class="med" style="left:{mid:.1f}%">'
            f"</span></span>{_pct(q1, 0)}–{_pct(q3, 0)}")


def _versus(m: ModelResults) -> str:
    avg = (m.summary or {}).get("attention_vs_gradient") or {}
    parts = [("attention_fewer", "attention fewer", RANKING_COLORS["attention"]),
             ("tie", "tie", "#d1d5db"), ("gradient_fewer", "gradient fewer",
                                         RANKING_COLORS["gradient"])]
    if not any(_is_num(avg.get(k)) for k, _, _ in parts):
        return ""
    segs = "".join(
        f'<span style="flex:{max(float(avg[k]), 0.0):.4f};background:{c}" '
        f'title="{_esc(label)}: {_pct(avg[k])}">{_pct(avg[k], 0) if avg[k] >= 0.08 else ""}</span>'
        for k, label, c in parts if _is_num(avg.get(k))
    )
    return ('<h4>Which ranking flips the decision with fewer removals, per document?</h4>'
            f'<div class="stack">{segs}</div><p class="muted">Attention needed fewer removals '
            f"for {_pct(avg.get('attention_fewer'))} of documents, the gradient for "
            f"{_pct(avg.get('gradient_fewer'))}; {_pct(avg.get('tie'))} tie.</p>")


# ----------------------------------------------------------------------------------------------
# Example documents
# ----------------------------------------------------------------------------------------------


def _examples_block(m: ModelResults, ident: str) -> str:
    examples = [e for e in (m.examples or []) if isinstance(e, dict)]
    if not examples:
        return '<h3>Example documents</h3><p class="note">No example documents were saved.</p>'
    counts: dict[str, int] = {}
    for e in examples:
        counts[str(e.get("category"))] = counts.get(str(e.get("category")), 0) + 1
    chips = [f'<button class="on" data-filter="all">All ({len(examples)})</button>'] + [
        f'<button data-filter="{_esc(c)}">{_esc(CATEGORY_LABELS.get(c, c))} ({n})</button>'
        for c, n in counts.items()
    ]
    cards = "".join(_example_card(e, f"{ident}-ex{i}") for i, e in enumerate(examples))
    return (f'<h3>Example documents</h3><div class="examples">'
            f'<div class="filters">Show: {"".join(chips)}</div>{_LEGEND}{cards}</div>')


_LEGEND = """<p class="legend"><span class="sw" style="background:rgba(230,159,0,.8)"></span>
attention (shade relative to the document's largest weight) ·
<span class="sw" style="background:rgba(0,158,115,.8)"></span> gradient / attention × gradient
pushing <i>toward</i> the predicted class ·
<span class="sw" style="background:rgba(204,121,167,.8)"></span> pushing away (each shaded
relative to its largest magnitude in the document). Hover an item for exact values;
<b>outline</b> marks the items a ranking removed before the decision flipped.</p>"""


@dataclass(frozen=True)
class _Example:
    """An example document, normalised: every per-item list has one entry per item."""

    items: list[str]
    attention: list[float | None]
    gradient: list[float | None]
    axg: list[float | None]
    ranks: dict[str, list[int | None]]  # ranking -> 1-based removal rank of each item
    flip_step: dict[str, int | None]


def _normalise(e: dict[str, Any]) -> _Example:
    items = [str(t) for t in e.get("items") or []]
    n = len(items)

    def values(key: str) -> list[float | None]:
        raw = e.get(key) or []
        return [float(v) if _is_num(v) else None for v in list(raw)[:n]] + [None] * (n - len(raw))

    ranks: dict[str, list[int | None]] = {}
    for ranking, order in (e.get("removal_order") or {}).items():
        rank: list[int | None] = [None] * n
        for position, index in enumerate(order or []):
            if isinstance(index, int) and 0 <= index < n:
                rank[index] = position + 1
        ranks[str(ranking)] = rank
    steps = {str(k): (int(v) if _is_num(v) else None)
             for k, v in (e.get("flip_step") or {}).items()}
    return _Example(items, values("attention"), values("gradient"),
                    values("attention_x_gradient"), ranks, steps)


def _ordered_rankings(names: Iterable[str]) -> list[str]:
    present = set(names)
    return [r for r in RANKINGS if r in present] + sorted(present - set(RANKINGS))


def _example_card(e: dict[str, Any], ident: str) -> str:
    ex = _normalise(e)
    category = str(e.get("category", ""))
    rankings = _ordered_rankings([*ex.ranks, *ex.flip_step])
    label, prediction = e.get("label"), e.get("prediction")
    verdict = ('<span class="ok">correct</span>' if str(label) == str(prediction)
               else '<span class="bad">wrong</span>')
    unit = _JS_UNITS.get(str(e.get("js_base", "e")), "")
    delta = e.get("delta_js")
    head = (f'<header><span class="cat cat-{_esc(category)}">'
            f"{_esc(CATEGORY_LABELS.get(category, category))}</span>"
            f'<h4>{_esc(e.get("doc_id", "?"))}</h4>'
            f"<span>gold <b>{_esc(label)}</b> · predicted <b>{_esc(prediction)}</b> "
            f"{verdict}</span>"
            f"<span>{len(ex.items)} items</span>"
            f'<span>ΔJS {_num(delta, ".3g")} {unit if _is_num(delta) else ""}</span></header>')
    steps = "".join(_flip_chip(r, ex.flip_step.get(r), len(ex.items)) for r in rankings)
    view = ('<div class="viewbar"><span>Shade by</span>'
            '<button class="on" data-view="a">attention</button>'
            '<button data-view="g">gradient</button>'
            '<button data-view="x">attention × gradient</button>'
            '<span>Outline removed before flip</span><button class="on" data-removed="none">none'
            "</button>" + "".join(
                f'<button data-removed="{_esc(r)}">{_esc(RANKING_LABELS.get(r, r))}</button>'
                for r in rankings) + "</div>")
    return (f'<article class="example" id="{ident}" data-category="{_esc(category)}">{head}'
            f'<div class="flipsteps">{steps}</div>{view}'
            '<div class="doc" data-view="a" data-removed="none">'
            f"{_document_text(ex, rankings)}</div>"
            "<details><summary>Per-item scores and removal order</summary>"
            '<noscript><p class="note">The table needs JavaScript; hover the items above for '
            "their values.</p></noscript>"
            f'<div class="scroll">{_item_table(ex, rankings)}</div></details></article>')


def _flip_chip(ranking: str, step: int | None, n: int) -> str:
    color = RANKING_COLORS.get(ranking, "#6b7280")
    if step is None:
        text = "never flips"
    else:
        text = f"flips after {step} of {n} removed ({step / max(n, 1):.0%})"
    return (f'<span class="flip"><span class="dot" style="background:{color}"></span>'
            f"<b>{_esc(RANKING_LABELS.get(ranking, ranking))}</b> {text}</span>")


def _scales(ex: _Example) -> tuple[float, float, float]:
    """Per-document shading scales: the largest weight, |gradient| and |attention x gradient|.

    Each score gets its own scale: attention x gradient is smaller than the gradient by the weights,
    so a shared scale would leave it blank.
    """
    def largest(values: Sequence[float | None]) -> float:
        return max((abs(v) for v in values if v is not None), default=0.0) or 1.0

    return largest(ex.attention), largest(ex.gradient), largest(ex.axg)


def _attention_color(value: float | None, scale: float) -> str:
    alpha = 0.0 if value is None else 0.85 * max(0.0, value) / scale
    return f"rgba(230,159,0,{alpha:.2f})"


def _signed_color(value: float | None, scale: float) -> str:
    if value is None:
        return "transparent"
    alpha = 0.85 * min(1.0, abs(value) / scale)
    rgb = "0,158,115" if value >= 0 else "204,121,167"
    return f"rgba({rgb},{alpha:.2f})"


_SHORT_RANKINGS = {"random": "random", "attention": "attn", "gradient": "grad",
                   "attention_x_gradient": "a×g"}


def _tooltip(ex: _Example, i: int, rankings: Sequence[str]) -> str:
    """Exact values of item ``i``; kept short, as every item of every example carries one."""
    ranks = ", ".join(
        f"{_SHORT_RANKINGS.get(r, r)} {ex.ranks.get(r, [None] * len(ex.items))[i] or '—'}"
        for r in rankings
    )
    return (f"#{i + 1}  attention {_num(ex.attention[i], '.4g')}\n"
            f"gradient {_num(ex.gradient[i], '+.4g')}  a×g {_num(ex.axg[i], '+.4g')}\n"
            f"removal rank: {ranks}")


def _removed_classes(ex: _Example, i: int, rankings: Sequence[str]) -> str:
    """``rm-<ranking>`` for every ranking that removed item ``i`` before its flip."""
    out = []
    for r in rankings:
        rank, step = ex.ranks.get(r, [None] * len(ex.items))[i], ex.flip_step.get(r)
        if rank is not None and step is not None and rank <= step:
            out.append(f"rm-{_slug(r)}")
    return " ".join(out)


def _document_text(ex: _Example, rankings: Sequence[str]) -> str:
    a_scale, g_scale, x_scale = _scales(ex)
    spans = []
    for i, item in enumerate(ex.items):
        style = (f"--a:{_attention_color(ex.attention[i], a_scale)};"
                 f"--g:{_signed_color(ex.gradient[i], g_scale)};"
                 f"--x:{_signed_color(ex.axg[i], x_scale)}")
        spans.append(f'<span class="it {_removed_classes(ex, i, rankings)}" style="{style}" '
                     f'title="{_esc(_tooltip(ex, i, rankings))}">{_esc(item)}</span>')
    return " ".join(spans)


def _item_table(ex: _Example, rankings: Sequence[str]) -> str:
    """The per-item table, filled in by the page script when first opened.

    Long documents have hundreds of items, so the rows travel as one compact numeric payload
    (``data-rows``: attention, gradient, attention x gradient, then the rank lists) instead of
    markup; the item texts and colours come from the shaded text above. Numbers only: no document
    text passes through the payload.
    """
    head = ["#", "Item", "Attention", "Gradient", "Attention × gradient"]
    head += [f"Rank: {RANKING_LABELS.get(r, r)}|Removal order under the {r} ranking; "
             "outlined: removed before the decision flipped" for r in rankings]
    n = len(ex.items)
    payload: list[list[Any]] = [[_compact(v) for v in values]
                                for values in (ex.attention, ex.gradient, ex.axg)]
    payload += [ex.ranks.get(r, [None] * n) for r in rankings]
    steps = [ex.flip_step.get(r) for r in rankings]
    colors = [RANKING_COLORS.get(r, "#6b7280") for r in rankings]
    table = _table(head, [], cls="num items sortable")
    return table.replace(
        "<tbody>",
        f'<tbody data-rows="{_esc(json.dumps(payload, separators=(",", ":")))}" '
        f'data-steps="{_esc(json.dumps(steps))}" data-colors="{_esc(json.dumps(colors))}">',
    )


def _compact(value: float | None) -> float | None:
    """Six significant digits: exact enough to read, short enough for long documents."""
    return None if value is None else float(f"{value:.6g}")


# ----------------------------------------------------------------------------------------------
# Inline CSS and JavaScript
# ----------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;--accent:#0072B2;
--navh:46px}
*{box-sizing:border-box}html{scroll-padding-top:calc(var(--navh) + 12px)}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.55 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
background:#eef0f3;padding:1px 4px;border-radius:4px}
.hero{background:linear-gradient(135deg,#0f2a43,#134e6f);color:#fff;padding:28px 0 22px}
.hero .inner{max-width:1280px;margin:0 auto;padding:0 24px}
.hero h1{margin:0 0 6px;font-size:26px;letter-spacing:-.01em}
.hero .lede{margin:0 0 12px;max-width:900px;color:#d6e4f0}
.hero .chip{background:rgba(255,255,255,.14);color:#fff;border-color:transparent}
.topnav{position:sticky;top:0;z-index:20;height:var(--navh);background:rgba(255,255,255,.96);
border-bottom:1px solid var(--line);backdrop-filter:blur(6px)}
.navin{max-width:1280px;margin:0 auto;padding:0 24px;display:flex;gap:4px;align-items:center;
height:100%;overflow-x:auto;white-space:nowrap}
.topnav a{color:#374151;text-decoration:none;padding:6px 10px;border-radius:6px;font-size:14px}
.topnav a:hover{background:#eef2f7}.topnav a.active{background:#0f2a43;color:#fff}
.sep{color:var(--muted);font-size:13px;margin:0 4px 0 14px}
main{max-width:1280px;margin:0 auto;padding:8px 24px 48px}section{margin:28px 0}
h2{font-size:21px;margin:0 0 12px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:17px;margin:26px 0 10px}h4{font-size:14px;margin:14px 0 8px;color:#374151}
.muted{color:var(--muted);font-size:13px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:16px}
.card,.stat,.example{background:var(--card);border:1px solid var(--line);border-radius:10px}
.card{padding:4px 18px}.card h3{margin-top:14px}
.chips{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0}
.chip{display:inline-block;font-size:12.5px;padding:2px 9px;border:1px solid var(--line);
border-radius:999px;background:#fff;color:#374151}
.note{background:#fff8e6;border:1px solid #f4d58d;border-left:4px solid #e69f00;padding:8px 12px;
border-radius:6px;margin:8px 0;font-size:14px}
table{border-collapse:separate;border-spacing:0;background:#fff;border:1px solid var(--line);
border-radius:8px;font-size:14px;margin:6px 0 10px}
th,td{padding:6px 11px;border-bottom:1px solid #f0f1f3;text-align:left;vertical-align:middle}
tbody tr:last-child td{border-bottom:none}tbody tr:hover td{background:#f8fafc}
thead{position:sticky;top:var(--navh);z-index:5}
thead th{background:#f3f5f8;font-weight:600;font-size:12.5px;color:#374151;
border-bottom:1px solid var(--line)}
th.group{text-align:center;font-size:11.5px;text-transform:uppercase;letter-spacing:.04em;
color:#6b7280;border-bottom:none;padding-bottom:0}
th[title]{cursor:help;text-decoration:underline dotted #9ca3af}
table.num td,table.num th{font-variant-numeric:tabular-nums}
table.num td:not(:first-child){text-align:right}
table.compact th,table.compact td{padding:5px 8px;font-size:13px}
table.kv td:first-child{white-space:nowrap}table.kv{max-width:100%}
table.kv td{word-break:break-word}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;margin:12px 0}
.stat{padding:10px 14px}.stat .k{font-size:12.5px;color:var(--muted)}
.stat .v{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px;margin:12px 0}
.fig{margin:0;background:#fff;border:1px solid var(--line);border-radius:10px;padding:10px}
.fig.wide{grid-column:1/-1}.fig img{max-width:100%;height:auto;display:block;margin:0 auto}
.fig figcaption{font-size:13px;color:#4b5563;margin-bottom:6px}
.bar{display:inline-block;width:70px;height:8px;background:#eef0f3;border-radius:4px;
margin-right:8px;vertical-align:middle;overflow:hidden}
.bar span{display:block;height:100%;background:#0f2a43}
.iqr{display:inline-block;position:relative;width:110px;height:10px;background:#eef0f3;
border-radius:5px;margin-right:8px;vertical-align:middle}
.iqr .box{position:absolute;top:0;bottom:0;background:#9ab3c9;border-radius:3px}
.iqr .med{position:absolute;top:-2px;bottom:-2px;width:2px;background:#0f2a43}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;
vertical-align:baseline}
.stack{display:flex;height:26px;border-radius:6px;overflow:hidden;max-width:760px;font-size:12.5px;
font-weight:600}
.stack span{display:flex;align-items:center;justify-content:center;color:#111827}
.tabs{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0 10px}
.tabs a{padding:6px 14px;border:1px solid var(--line);border-radius:999px;background:#fff;
color:#1f2937;text-decoration:none;font-size:14px}
.tabs a.active{background:#0f2a43;color:#fff;border-color:#0f2a43}.js .model-panel{display:none}
.js .model-panel.active{display:block}.model-panel{border-top:1px solid var(--line);padding-top:4px}
.model-title{border:none;font-size:24px;margin-top:14px}
.examples .filters{margin:6px 0;display:flex;flex-wrap:wrap;gap:6px;align-items:center;
font-size:13px;color:var(--muted)}
button{font:inherit;font-size:12.5px;border:1px solid #d1d5db;background:#fff;color:#1f2937;
border-radius:999px;padding:3px 10px;cursor:pointer}
button:hover{background:#f3f4f6}button.on{background:#0f2a43;color:#fff;border-color:#0f2a43}
.legend{font-size:13px;color:#4b5563}
.sw{display:inline-block;width:14px;height:11px;border-radius:3px;vertical-align:middle}
.example{padding:12px 16px;margin:12px 0}.example.hide{display:none}
.example header{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:baseline;font-size:14px}
.example h4{margin:0;font-size:15px;color:var(--fg)}
.cat{font-size:12px;font-weight:600;padding:2px 9px;border-radius:999px;background:#e0ecf6;
color:#0f2a43}
.cat-largest_delta_js{background:#fde8c8;color:#7a4b00}
.cat-never_flips{background:#ececec;color:#333}
.cat-flips_after_one{background:#d9f2ea;color:#05503b}.ok{color:#05744f;font-weight:600}
.bad{color:#b42318;font-weight:600}
.flipsteps{display:flex;flex-wrap:wrap;gap:6px 18px;margin:8px 0;font-size:13px;color:#374151}
.viewbar{display:flex;flex-wrap:wrap;gap:5px;align-items:center;margin:6px 0;font-size:12.5px;
color:var(--muted)}
.viewbar span{margin:0 2px 0 8px}.viewbar span:first-child{margin-left:0}
.doc{line-height:2.05;padding:10px 12px;border:1px solid #f0f1f3;border-radius:8px;
background:#fcfcfd;max-height:340px;overflow:auto;font-size:15px}
.doc .it{padding:2px 2px;border-radius:3px;box-decoration-break:clone;
-webkit-box-decoration-break:clone}
.doc[data-view=a] .it{background:var(--a)}.doc[data-view=g] .it{background:var(--g)}
.doc[data-view=x] .it{background:var(--x)}
.doc[data-removed=random] .rm-random,.doc[data-removed=attention] .rm-attention,
.doc[data-removed=gradient] .rm-gradient,
.doc[data-removed=attention_x_gradient] .rm-attention_x_gradient{outline:2px solid #111827;
outline-offset:-1px;text-decoration:line-through}
details{margin:8px 0}summary{cursor:pointer;font-size:13.5px;color:#1f4e79}
.scroll{max-height:420px;overflow:auto;border-radius:8px}.scroll table{margin:0}.scroll thead{top:0}
table.items td{padding:3px 9px}table.items .it{padding:1px 4px;border-radius:3px}
table.items td:nth-child(2){text-align:left;max-width:560px}
.cell{display:inline-block;min-width:84px;padding:1px 6px;border-radius:3px;white-space:nowrap}
.gone{display:inline-block;min-width:28px;padding:0 6px;border-radius:4px;font-weight:700;
box-shadow:inset 0 0 0 2px var(--c)}
table.sortable th{cursor:pointer}
footer{max-width:1280px;margin:0 auto;padding:18px 24px 40px;color:var(--muted);font-size:13px}
"""

_JS = """
(function(){
  var root=document.documentElement; root.classList.add('js');
  var panels=[].slice.call(document.querySelectorAll('.model-panel'));
  function show(id){
    if(!panels.length) return;
    var found=panels.some(function(p){return p.id===id;});
    if(!found) id=panels[0].id;
    panels.forEach(function(p){p.classList.toggle('active',p.id===id);});
    document.querySelectorAll('a.tab').forEach(function(a){
      a.classList.toggle('active',a.dataset.model===id);});
  }
  function fromHash(){
    var el=location.hash&&document.getElementById(location.hash.slice(1));
    var p=el&&el.closest('.model-panel'); return p?p.id:'';}
  window.addEventListener('hashchange',function(){var id=fromHash(); if(id) show(id);});
  show(fromHash());
  document.querySelectorAll('.examples').forEach(function(box){
    box.querySelectorAll('[data-filter]').forEach(function(b){b.addEventListener('click',function(){
      box.querySelectorAll('[data-filter]').forEach(function(x){x.classList.toggle('on',x===b);});
      box.querySelectorAll('.example').forEach(function(ex){
        var f=b.dataset.filter;
        ex.classList.toggle('hide',f!=='all'&&ex.dataset.category!==f);});
    });});
  });
  document.querySelectorAll('.example').forEach(function(ex){
    var doc=ex.querySelector('.doc');
    ['view','removed'].forEach(function(k){
      ex.querySelectorAll('[data-'+k+']:not(.doc)').forEach(function(b){
        b.addEventListener('click',function(){
          ex.querySelectorAll('[data-'+k+']:not(.doc)').forEach(function(x){
            x.classList.toggle('on',x===b);});
          doc.dataset[k]=b.dataset[k];});});});
  });
  function cell(tr, content, title){
    var td=tr.insertCell(); if(content.nodeType){td.appendChild(content);} else {
      td.textContent=content;} if(title!==undefined){td.title=title;} return td;}
  function exact(v){return v===null?undefined:String(v);}
  function signed(v){return v===null?'\u2014':(v>=0?'+':'')+v.toExponential(2);}
  function fillItems(body){
    if(body.dataset.done) return; body.dataset.done='1';
    var d=JSON.parse(body.dataset.rows), steps=JSON.parse(body.dataset.steps);
    var colors=JSON.parse(body.dataset.colors);
    var items=body.closest('.example').querySelectorAll('.doc .it');
    for(var i=0;i<items.length;i++){
      var tr=body.insertRow(), st=items[i].style;
      cell(tr, String(i+1));
      var it=document.createElement('span'); it.className='it'; it.textContent=items[i].textContent;
      it.style.background=st.getPropertyValue('--a'); cell(tr, it);
      cell(tr, d[0][i]===null?'\u2014':d[0][i].toFixed(4), exact(d[0][i]));
      [[1,'--g'],[2,'--x']].forEach(function(k){
        var s=document.createElement('span'); s.className='cell'; s.textContent=signed(d[k[0]][i]);
        s.style.background=st.getPropertyValue(k[1]); cell(tr, s, exact(d[k[0]][i]));});
      for(var r=0;r<steps.length;r++){
        var rank=d[3+r][i], gone=rank!==null&&steps[r]!==null&&rank<=steps[r];
        var c=document.createElement('span'); c.textContent=rank===null?'\u2014':String(rank);
        if(gone){c.className='gone'; c.style.setProperty('--c', colors[r]);} cell(tr, c);}
    }
  }
  document.querySelectorAll('.example details').forEach(function(det){
    det.addEventListener('toggle',function(){
      if(det.open) det.querySelectorAll('tbody[data-rows]').forEach(fillItems);});
    if(det.open) det.querySelectorAll('tbody[data-rows]').forEach(fillItems);
  });
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
      var body=t.tBodies[0], rows=[].slice.call(body.rows), dir=th.dataset.dir==='d'?1:-1;
      th.dataset.dir=dir===1?'a':'d';
      function key(r){var c=r.cells[i];
        var v=parseFloat(c.title||c.textContent); return isNaN(v)?-Infinity:v;}
      rows.sort(function(a,b){return dir*(key(a)-key(b));});
      rows.forEach(function(r){body.appendChild(r);});
    });});
  });
})();
"""
