"""One self-contained HTML page per run: ``attnaudit report runs/X`` -> ``runs/X/report.html``.

The report reads saved results only (``run.json``, and per model ``metrics.json``, ``config.json``,
``audit/*.parquet`` and ``audit/*.json``); it never loads a model, and this module never imports
torch, so rebuilding a report takes seconds. Figures are drawn with :mod:`attnaudit.reports.figures`
into ``<run>/figures/`` and inlined as base64 data URIs; the style sheet and the few lines of
JavaScript (``report.css`` and ``report.js`` beside this module) are inlined too, and a
Content-Security-Policy forbids every network fetch, so the file opens offline and can be mailed
around as it is. Every piece of document text is escaped; the example documents are rendered by
:mod:`attnaudit.reports.examples_html`.

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
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from attnaudit import __version__
from attnaudit.reports import figures
from attnaudit.reports.examples_html import examples_block
from attnaudit.reports.figures import RANKING_COLORS, RANKING_LABELS, RANKINGS, REMOVAL_LABELS
from attnaudit.reports.markup import JS_UNITS, esc, is_num, num, pct, slug, table
from attnaudit.utils.io import atomic_open
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)

REPORT_NAME = "report.html"
FIGURES_DIR = "figures"



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
        model.figures = draw_model_figures(model, figure_dir / slug(model.name))
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


def _audit_figure(model: ModelResults, key: str) -> Path | None:
    """The PNG the audit already drew for ``key``, if it is newer than the tables it shows."""
    audit = model.folder / "audit"
    png = audit / "figures" / f"{key}.png"
    tables = [audit / f"{name}.parquet" for name in ("single_weight", "removal")]
    if not png.is_file() or not all(t.is_file() for t in tables):
        return None
    return png if png.stat().st_mtime >= max(t.stat().st_mtime for t in tables) else None


def draw_model_figures(model: ModelResults, folder: Path) -> dict[str, Path]:
    """Every figure one model's saved tables allow, as ``{figure key: PNG path}``.

    Figures the audit drew from the same tables are reused rather than drawn again.
    """
    out: dict[str, Path] = {}
    for spec in FIGURES:
        df = model.single_weight if spec.source == "single_weight" else model.removal
        if df is None or not spec.per_model:
            continue
        path = _audit_figure(model, spec.key) or _draw(
            spec, df, folder / f"{spec.key}.png", model.js_base, model.notes
        )
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
def _seconds(value: Any) -> str:
    if not is_num(value):
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"



def _model_ids(models: Sequence[ModelResults]) -> dict[str, str]:
    """Unique HTML ids per model name (two names may share a slug)."""
    ids: dict[str, str] = {}
    for model in models:
        base = "m-" + slug(model.name).lower()
        ident, k = base, 2
        while ident in ids.values():
            ident, k = f"{base}-{k}", k + 1
        ids[model.name] = ident
    return ids



def _figure_html(path: Path | None, spec: FigureSpec) -> str:
    """The PNG inlined as a data URI; figures wider than half the page take a whole row."""
    if path is None or not path.is_file():
        return ""
    png = path.read_bytes()
    width = int.from_bytes(png[16:20], "big") if png[12:16] == b"IHDR" else 0
    data = base64.b64encode(png).decode("ascii")
    cls = "fig wide" if width > 900 else "fig"
    title = spec.title if spec.title.endswith(("?", "!", ".")) else spec.title + "."
    return (f'<figure class="{cls}"><figcaption><b>{esc(title)}</b> {esc(spec.caption)}'
            f'</figcaption><img alt="{esc(spec.title)}" src="data:image/png;base64,{data}">'
            "</figure>")


def _notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


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
        f'<footer>Built by attnaudit {esc(__version__)} from the saved results in '
        f"<code>{esc(root.resolve().name)}</code>. Self-contained: no network access is needed "
        "or made.</footer>",
    ])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{esc(title)}</title><style>\n{_asset('report.css')}</style></head>"
        f"<body>{body}<script>\n{_asset('report.js')}</script></body></html>\n"
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
    chips = "".join(f'<span class="chip">{esc(f)}</span>' for f in facts)
    return (f'<header class="hero"><div class="inner"><h1>{esc(title)}</h1>'
            "<p class=\"lede\">Does the attention of these text classifiers point at what the "
            "model actually used? Two erasure tests after Serrano &amp; Smith, "
            "<i>Is Attention Interpretable?</i> (ACL 2019).</p>"
            f'<div class="chips">{chips}</div></div></header>')


def _nav(models: Sequence[ModelResults], ids: dict[str, str]) -> str:
    links = [("#how", "How to read"), ("#run", "Run"), ("#accuracy", "Accuracy"),
             ("#comparison", "Comparison")]
    items = "".join(f'<a href="{h}">{esc(t)}</a>' for h, t in links)
    model_links = "".join(
        f'<a class="tab" data-model="{ids[m.name]}" href="#{ids[m.name]}">{esc(m.name)}</a>'
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
                f"<code>{esc(root.resolve().name)}</code>.</p></section>")
    rows = _flatten(run_info)
    key = [r for r in rows if r[0].split(".")[-1] in _KEY_SETTINGS or r[0] in _KEY_SETTINGS]
    shown = key or rows
    settings = table(["Setting", "Value"],
                     [(f"<code>{esc(k)}</code>", esc(v)) for k, v in shown], cls="kv")
    more = ""
    if len(shown) < len(rows):
        more = (f"<details><summary>All {len(rows)} settings in run.json</summary>"
                + table(["Setting", "Value"],
                        [(f"<code>{esc(k)}</code>", esc(v)) for k, v in rows], cls="kv")
                + "</details>")
    return f'<section id="run"><h2>Dataset and run</h2>{settings}{more}</section>'


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
        shown = pct(test)
        if is_num(test) and is_num(majority):
            shown += f' <span class="muted">({100 * (test - majority):+.1f} pts)</span>'
        rows.append([f"<b>{esc(m.name)}</b>", shown, pct(majority),
                     pct(x.get("dev_accuracy")), esc(_metric(x, "epochs") or "—"),
                     _seconds(x.get("train_seconds")),
                     num(_metric(x, "train_docs_per_second"), ",.0f")])
    return (f'<section id="accuracy"><h2>Accuracy</h2>{table(head, rows, cls="num")}'
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
            f'{table(head, rows, cls="num compact", groups=groups)}{_notes(notes)}'
            f'<div class="figs">{figs}</div></section>')


def _comparison_row(m: ModelResults) -> list[str]:
    s = m.summary or {}
    sw, rm = s.get("single_weight") or {}, s.get("removal") or {}
    flips = sw.get("flip_rate") or {}
    avg = s.get("attention_vs_gradient") or {}
    unit = JS_UNITS.get(m.js_base, "")
    return [f'<b>{esc(m.name)}</b>', esc(s.get("n_docs", "—")),
            pct(sw.get("share_delta_js_positive")),
            f'{num(sw.get("median_delta_js"), ".2g")} <span class="muted">{unit}</span>',
            pct(flips.get("max")), pct(flips.get("random"))] + \
        [pct((rm.get(r) or {}).get("median_fraction"), 0) for r in RANKINGS] + \
        [pct((rm.get("attention") or {}).get("share_never_flipped"), 0),
         pct(avg.get("attention_fewer"), 0), pct(avg.get("gradient_fewer"), 0)]


def _models_section(models: Sequence[ModelResults], ids: dict[str, str]) -> str:
    tabs = "".join(
        f'<a class="tab" data-model="{ids[m.name]}" href="#{ids[m.name]}">{esc(m.name)}'
        f'{"" if m.has_audit else " <small>(no audit)</small>"}</a>'
        for m in models
    )
    panels = "".join(_model_panel(m, ids[m.name]) for m in models)
    return (f'<section id="models"><h2>Results per model</h2>'
            f'<div class="tabs">{tabs}</div>{panels}</section>')


def _model_panel(m: ModelResults, ident: str) -> str:
    parts = [f'<h2 class="model-title">{esc(m.name)}</h2>', _config_chips(m), _notes(m.notes)]
    if m.has_audit:
        parts += [_stat_cards(m), _test1_block(m), _test2_block(m),
                  examples_block(m.examples, ident)]
    return (f'<section class="model-panel" id="{ident}" data-model="{ident}">'
            f'{"".join(parts)}</section>')


_CONFIG_ORDER = {"model": 0, "kind": 0, "encoder": 0, "train": 1}


def _config_chips(m: ModelResults) -> str:
    if not m.config:
        return ""
    # What the model is first (config.json holds data, model and train settings, in that order).
    flat = sorted(_flatten(m.config), key=lambda kv: _CONFIG_ORDER.get(kv[0].split(".")[0], 9))
    chips = "".join(f'<span class="chip"><b>{esc(k)}</b> {esc(v)}</span>' for k, v in flat[:8])
    more = ""
    if len(flat) > 8:
        more = (f"<details><summary>all {len(flat)} settings</summary>"
                f'{table(["Setting", "Value"], [(esc(k), esc(v)) for k, v in flat], cls="kv")}'
                "</details>")
    return f'<div class="chips">{chips}</div>{more}'


def _stat_cards(m: ModelResults) -> str:
    s, x = m.summary or {}, m.metrics or {}
    cards = [
        ("Test accuracy", pct(x.get("test_accuracy")),
         f"majority baseline {pct(_metric(x, 'majority_baseline'))}"),
        ("Documents audited", esc(s.get("n_docs", "—")),
         f"{esc(s.get('n_single_item', '—'))} with a single item"),
        ("JS divergence in", JS_UNITS.get(m.js_base, m.js_base),
         "natural log, max ln 2" if m.js_base == "e" else "log base 2, max 1"),
    ]
    return '<div class="stats">' + "".join(
        f'<div class="stat"><div class="k">{esc(k)}</div><div class="v">{v}</div>'
        f'<div class="muted">{sub}</div></div>' for k, v, sub in cards) + "</div>"


def _test1_block(m: ModelResults) -> str:
    sw = (m.summary or {}).get("single_weight") or {}
    flips, t2 = sw.get("flip_rate") or {}, sw.get("table2") or {}
    unit = JS_UNITS.get(m.js_base, "")
    lead = (f"<p>Over {esc(sw.get('n', '—'))} documents with two or more items, removing the top "
            f"weight moved the output more than removing a random item for "
            f"<b>{pct(sw.get('share_delta_js_positive'))}</b> of them (median ΔJS "
            f"<b>{num(sw.get('median_delta_js'), '.2g')}</b> {unit}). It flipped the decision "
            f"for <b>{pct(flips.get('max'))}</b>; a random item for "
            f"<b>{pct(flips.get('random'))}</b>.</p>")
    flip_rows = [[esc(REMOVAL_LABELS.get(k, k)), _bar_cell(flips.get(k))]
                 for k in figures.REMOVALS]
    table2 = table(["", "r flips", "r does not flip"], [
        ["<b>i* flips</b>", pct(t2.get("both")), pct(t2.get("only_max"))],
        ["<b>i* does not flip</b>", pct(t2.get("only_random")), pct(t2.get("neither"))],
    ], cls="num t2")
    # The tables beside the ΔJS histogram; the flip-table figure below, across the page.
    specs = {s.key: s for s in FIGURES}
    histogram = _figure_html(m.figures.get("delta_js_vs_delta_a"), specs["delta_js_vs_delta_a"])
    flip_figure = _figure_html(m.figures.get("flip_table"), specs["flip_table"])
    return (f'<h3>Test 1 · one attention weight</h3>{lead}<div class="cols">'
            f'<div><h4>Flip rate of each single removal</h4>'
            f'{table(["Item removed", "Decision flips"], flip_rows, cls="num")}'
            f"<h4>Table 2: removing i* vs a random item r</h4>{table2}</div>"
            f'<div>{histogram}</div></div><div class="figs">{flip_figure}</div>')


def _bar_cell(value: Any) -> str:
    """A share with a small inline bar, so a column of rates reads at a glance."""
    if not is_num(value):
        return "—"
    width = max(0.0, min(1.0, float(value))) * 100
    return (f'<span class="bar"><span style="width:{width:.1f}%"></span></span>'
            f"{pct(value)}")


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
        rows.append([_ranking_name(r), pct(x.get("median_fraction")),
                     _iqr_cell(x.get("q1_fraction"), x.get("median_fraction"),
                               x.get("q3_fraction")),
                     pct(x.get("median_mass")), pct(x.get("share_never_flipped")),
                     pct(x.get("share_beats_random"))])
    figs = "".join(_figure_html(m.figures.get(s.key), s) for s in FIGURES if s.source == "removal")
    return (f"<h3>Test 2 · remove items until the decision flips</h3>"
            f'{table(head, rows, cls="num")}{_versus(m)}<div class="figs">{figs}</div>')


def _ranking_name(ranking: str) -> str:
    color = RANKING_COLORS.get(ranking, "#6b7280")
    return (f'<span class="dot" style="background:{color}"></span>'
            f"{esc(RANKING_LABELS.get(ranking, ranking))}")


def _iqr_cell(q1: Any, median: Any, q3: Any) -> str:
    if not all(is_num(v) for v in (q1, median, q3)):
        return "—"
    lo, mid, hi = (100 * max(0.0, min(1.0, float(v))) for v in (q1, median, q3))
    tip = f"Q1 {pct(q1)} · median {pct(median)} · Q3 {pct(q3)}"
    return (f'<span class="iqr" title="{tip}"><span class="box" style="left:{lo:.1f}%;'
            f'width:{max(hi - lo, 0.5):.1f}%"></span><span class="med" style="left:{mid:.1f}%">'
            f"</span></span>{pct(q1, 0)}–{pct(q3, 0)}")


def _versus(m: ModelResults) -> str:
    avg = (m.summary or {}).get("attention_vs_gradient") or {}
    parts = [("attention_fewer", "attention fewer", RANKING_COLORS["attention"]),
             ("tie", "tie", "#d1d5db"), ("gradient_fewer", "gradient fewer",
                                         RANKING_COLORS["gradient"])]
    if not any(is_num(avg.get(k)) for k, _, _ in parts):
        return ""
    segs = "".join(
        f'<span style="flex:{max(float(avg[k]), 0.0):.4f};background:{c}" '
        f'title="{esc(label)}: {pct(avg[k])}">{pct(avg[k], 0) if avg[k] >= 0.08 else ""}</span>'
        for k, label, c in parts if is_num(avg.get(k))
    )
    return ('<h4>Which ranking flips the decision with fewer removals, per document?</h4>'
            f'<div class="stack">{segs}</div><p class="muted">Attention needed fewer removals '
            f"for {pct(avg.get('attention_fewer'))} of documents, the gradient for "
            f"{pct(avg.get('gradient_fewer'))}; {pct(avg.get('tie'))} tie.</p>")


@functools.cache
def _asset(name: str) -> str:
    """``report.css`` or ``report.js``, shipped beside this module, to inline into the page."""
    text = resources.files("attnaudit.reports").joinpath(name).read_text(encoding="utf-8")
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():  # it would end the inline element early
        raise ValueError(f"{name} must not contain {closing}")
    return text
