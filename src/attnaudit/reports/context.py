"""The report's content as plain data: everything the templates show, built from saved results.

:func:`build_context` reads a run folder (:mod:`.loading`), draws the figures (:mod:`.figures`) and
returns a dict of numbers, texts and data URIs; :mod:`.render` turns it into HTML with Jinja2.
Summary numbers are taken from summary.json (or :func:`attnaudit.results.summarize` on the tables)
as they are, so the report and the file cannot disagree: tests compare this dict with the file.
Rankings' and sites' names, labels and colours come from summary.json's metadata, never from a
list here. A transformer model (layer and head sites) also gets a *Layers and heads* section
(:mod:`.transformer`), and its head sites no per-site section of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnaudit import __version__
from attnaudit.reports import faithfulness, figures
from attnaudit.reports.faithfulness import dig
from attnaudit.reports.figures.common import removal_label
from attnaudit.reports.loading import (
    ModelResults,
    discover,
    load_model,
    load_named_audits,
    read_json_or_none,
    rel,
    run_setting,
    site_rows,
)
from attnaudit.reports.markup import (
    JS_UNITS,
    duration,
    duration_unit,
    flip_text,
    is_num,
    js_value,
    safe_color,
    shade,
    sig,
    signed,
    slug,
)
from attnaudit.reports.seeds import seeds_section
from attnaudit.reports.transformer import (
    draw_inline,
    full_sites,
    layer_site,
    site_title,
    transformer_section,
)
from attnaudit.results.advice import explained
from attnaudit.results.examples import CATEGORIES, example_records, select_examples
from attnaudit.results.seeds import SEEDS_FILE
from attnaudit.results.tables import erasure_rows, in_order
from attnaudit.results.verdict import RELATIVE, SHORT, VerdictSettings, assess
from attnaudit.utils.logging import get_logger

if TYPE_CHECKING:
    import pandas as pd

log = get_logger(__name__)

FIGURES_DIR = "figures"
CATEGORY_LABELS: dict[str, str] = {
    "largest_delta_js": "Largest ΔJS",
    "flips_after_one": "Flips after one removal",
    "never_flips": "Never flips",
    "median": "Median document",
}
NOT_IN_PAPER = "A test the paper did not run: Serrano & Smith manipulated only the last attention layer."
# The settings a reader looks for first; the rest is one click away.
_KEY_SETTINGS = frozenset({
    "path", "fmt", "format", "text_column", "label_column", "max_train_docs", "max_test_docs",
    "models", "seed", "epochs", "created", "torch", "attnaudit", "python",
})
_AUDIT_SETTINGS = frozenset({
    "max_docs", "path", "seed", "rankings", "sites", "threads", "device", "n_docs", "created",
    "gradient_output", "random_draw", "chunk_docs", "measures",
})
_CONFIG_ORDER = {"model": 0, "kind": 0, "encoder": 0, "train": 1}
# metrics.json names as the trainer writes them, beside the names of the report's contract.
_METRIC_ALIASES = {
    "majority_baseline": ("majority_baseline", "majority_test_accuracy"),
    "epochs": ("epochs", "epochs_trained"),
    "train_docs_per_second": ("train_docs_per_second", "train_docs_per_s"),
}


#: the noun the report uses for an item kind where the kind's name is not one ("whole_word": a
#: transformer's word, its subword tokens together)
ITEM_NOUNS: dict[str, str] = {"whole_word": "word"}


def build_context(root: Path, *, js_unit: str = "nats") -> dict[str, Any]:
    """Read ``root`` (a pipeline run or a model folder), draw the figures into ``root/figures/``
    and return the report's context (see the module docstring; keys are what the templates use)."""
    if js_unit not in JS_UNITS:
        raise ValueError(f"js_unit must be one of {', '.join(JS_UNITS)}, not {js_unit!r}")
    run_info, folders = discover(root)
    # Drawing the figures takes a while (tens of seconds for a run of six models): say what is done.
    log.info("report: reading the results of %d model(s) in %s", len(folders), root)
    # Each model's full audit, then its named audits (audits/NAME/): a section and verdict lines
    # each; the accuracy, comparison and seeds sections are about models, so they take the full
    # audits only.
    models = []
    for name, folder in folders:
        full = load_model(name, folder)
        models += [full, *load_named_audits(full)]
    full_audits = [m for m in models if m.audit_name is None]
    rankings = _report_rankings(models)
    ids = _model_ids(models)
    figure_dir = root / FIGURES_DIR
    for m in models:
        ensure_verdict(m)
    model_ctx = [_model(m, ids[m.name], js_unit, figure_dir / slug(m.name)) for m in models]
    log.info("report: drawing the figures that compare the models")
    comparison = _comparison(full_audits, rankings, js_unit, figure_dir / "_combined")
    views = max([len(e["views"]) for m in model_ctx for s in m["sites"] for e in s["examples"]],
                default=1)
    slots = max([len(e["rankings"]) for m in model_ctx for s in m["sites"] for e in s["examples"]],
                default=0)
    name = root.resolve().name
    return {
        "title": f"Attention audit · {name}",
        "root_name": name,
        "version": __version__,
        "js_unit": js_unit,
        "js_unit_note": "natural log, at most ln 2 ≈ 0.693" if js_unit == "nats"
        else "log base 2, at most 1",
        "warnings": [{"model": m.name, "text": (m.summary or {})["prediction"]["warning"]}
                     for m in models if _degenerate(m)],
        "facts": _facts(run_info, full_audits, len(models) - len(full_audits)),
        "verdict_card": verdict_card(models, model_ctx),
        "run": _run(root, run_info, models),
        "accuracy": _accuracy_rows(full_audits),
        "comparison": comparison,
        "seeds": seeds_section(read_json_or_none(root / SEEDS_FILE), rankings,
                               {m.name: (m.summary or {}).get("sites") or {}
                                for m in full_audits}),
        "rankings": [{"name": r, "label": v["label"], "color": v["color"]}
                     for r, v in rankings.items()],
        "models": model_ctx,
        "n_views": views,
        "n_rank_slots": slots,
    }


# ----------------------------------------------------------------------------------------------
# The verdict card (top of the report)
# ----------------------------------------------------------------------------------------------


def ensure_verdict(m: ModelResults) -> None:
    """Give ``m.summary`` its ``verdict`` (results/verdict.py) when summary.json predates it (or the
    summary was recomputed here): the same rules on the same numbers, with the thresholds the audit
    saved in audit_info.json (``summary_settings``), else the defaults."""
    summary = m.summary
    if not summary or isinstance(summary.get("verdict"), Mapping):
        return
    saved = ((m.tables.audit_info or {}).get("summary_settings") or {}) if m.tables else {}
    settings = VerdictSettings(  # floors not saved keep their defaults (VerdictSettings.floor)
        min_difference=dict(saved.get("min_difference") or {}),
        relative=float(saved.get("min_difference_relative", RELATIVE)),
        confidence=float((summary.get("bootstrap") or {}).get("confidence", 0.95)))
    summary["verdict"] = assess(summary, m.metrics, settings)


def interval_text(entry: Mapping[str, Any] | None) -> str:
    """"attention − random on the never-flipped share: −0.092 [−0.125, −0.058], band ±0.02"."""
    if not entry or not is_num(entry.get("lo")):
        return ""
    criterion = SHORT.get(str(entry.get("criterion")), str(entry.get("criterion")))
    return (f"attention − {str(entry.get('versus', '')).replace('_', ' ')}, {criterion}: "
            f"{signed(entry.get('estimate'))} [{signed(entry.get('lo'))}, "
            f"{signed(entry.get('hi'))}], band ±{sig(entry.get('delta'), 2)}")


def verdict_card(models: Sequence[ModelResults], model_ctx: Sequence[Mapping[str, Any]]
                 ) -> list[dict[str, Any]]:
    """One line per model, audit and site: status, the headline, the deciding interval, a link to
    the site's verdict; an audit whose verdict is withheld gets one line saying why. ``model``
    names a named audit with its model ("flan-rnn · audit ig-only"); ``audit`` is its name (None:
    the full audit)."""
    rows: list[dict[str, Any]] = []
    for m, ctx in zip(models, model_ctx, strict=True):
        assessed = (m.summary or {}).get("verdict")
        if not isinstance(assessed, Mapping):
            rows.append({"model": m.name, "audit": m.audit_name, "site": "", "status": "none",
                         "href": f"#{ctx['id']}", "sentence": "No audit summary: no verdict.",
                         "interval": ""})
            continue
        if assessed.get("status") == "withheld":
            rows.append({"model": m.name, "audit": m.audit_name, "site": "all sites",
                         "status": "withheld", "href": f"#{ctx['id']}",
                         "sentence": "No verdict is given: " + "; ".join(assessed["reasons"]) + ".",
                         "interval": ""})
            continue
        for site in ctx["sites"]:
            entry = (assessed.get("sites") or {}).get(site["name"]) or {}
            rows.append({"model": m.name, "audit": m.audit_name, "site": site["label"],
                         "status": entry.get("status", "none"), "href": f"#{site['id']}-verdict",
                         "sentence": entry.get("headline", ""),
                         "interval": interval_text(entry.get("deciding"))})
    return rows


# ----------------------------------------------------------------------------------------------
# Header, run, accuracy
# ----------------------------------------------------------------------------------------------


def _degenerate(m: ModelResults) -> bool:
    prediction = (m.summary or {}).get("prediction") or {}
    return bool(prediction.get("degenerate")) and bool(prediction.get("warning"))


def _facts(run_info: dict[str, Any] | None, models: Sequence[ModelResults], named: int = 0
           ) -> list[str]:
    audited = sum(m.has_audit for m in models)
    facts = [f"{len(models)} model{'s' if len(models) != 1 else ''}", f"{audited} audited"]
    if named:
        facts.append(f"{named} named audit{'s' if named != 1 else ''}")
    data = run_setting(run_info, "data")
    if isinstance(data, dict):
        data = data.get("path") or data.get("name")
    if data:
        facts.append(f"data: {data}")
    if run_setting(run_info, "seed") is not None:
        facts.append(f"seed {run_setting(run_info, 'seed')}")
    return facts


def _run(root: Path, run_info: dict[str, Any] | None, models: Sequence[ModelResults]
         ) -> dict[str, Any]:
    if run_info is None:
        where = "a single model folder" if len(models) == 1 else "a folder without run.json"
        return {"source": where, "name": root.resolve().name, "settings": [], "all_settings": []}
    rows = flatten(run_info)
    key = [r for r in rows if r[0].split(".")[-1] in _KEY_SETTINGS or r[0] in _KEY_SETTINGS]
    return {"source": "run.json", "name": root.resolve().name, "settings": key or rows,
            "all_settings": rows if len(key or rows) < len(rows) else []}


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as dotted keys; lists of plain values joined, others expanded."""
    if isinstance(obj, dict):
        out: list[tuple[str, str]] = []
        for key, value in obj.items():
            out.extend(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return [row for i, v in enumerate(obj) for row in flatten(v, f"{prefix}[{i}]")]
    if isinstance(obj, list):
        return [(prefix, ", ".join(str(v) for v in obj))]
    return [(prefix, "—" if obj is None else str(obj))]


def metric(metrics: Mapping[str, Any] | None, key: str) -> Any:
    """``metrics[key]`` under its name or any alias; ``None`` when absent."""
    for name in _METRIC_ALIASES.get(key, (key,)):
        if metrics and metrics.get(name) is not None:
            return metrics[name]
    return None


def resumed(m: ModelResults) -> bool:
    """Training was interrupted and resumed (metrics.json or run_info.json say so, any truthy
    ``resumed``: a flag, a count or the list of resuming commands)."""
    return any(bool(d.get("resumed")) for d in (m.metrics, m.train_info) if isinstance(d, dict))


def _accuracy_row(m: ModelResults) -> dict[str, Any]:
    x = m.metrics or {}
    test, majority = x.get("test_accuracy"), metric(x, "majority_baseline")
    seconds = x.get("train_seconds")
    return {
        "name": m.name,
        "test_accuracy": test,
        "gain_points": 100 * (test - majority) if is_num(test) and is_num(majority) else None,
        "majority_baseline": majority,
        "dev_accuracy": x.get("dev_accuracy"),
        "epochs": metric(x, "epochs"),
        "train_seconds": seconds if is_num(seconds) else None,
        "resumed": resumed(m),
        "docs_per_second": metric(x, "train_docs_per_second"),
    }


def _accuracy_rows(models: Sequence[ModelResults]) -> dict[str, Any]:
    """The accuracy table: ``rows`` (one per model) and ``time_unit``, the one unit of its training
    times (from the longest; each row's ``train_time`` is in it, the header names it)."""
    rows = [_accuracy_row(m) for m in models]
    unit = duration_unit(r["train_seconds"] for r in rows)
    for r in rows:
        r["train_time"] = duration(r["train_seconds"], unit)
    return {"rows": rows, "time_unit": unit}


# ----------------------------------------------------------------------------------------------
# Comparison across models (each model's paper site)
# ----------------------------------------------------------------------------------------------


def _report_rankings(models: Sequence[ModelResults]) -> dict[str, dict[str, str]]:
    """Every model's ``rankings`` metadata merged, in the order the models list them."""
    out: dict[str, dict[str, str]] = {}
    for m in models:
        for name, meta in ((m.summary or {}).get("rankings") or {}).items():
            if name not in out:
                out[name] = {"label": str((meta or {}).get("label", name)),
                             "color": safe_color((meta or {}).get("color"))}
    return out


def paper_site(summary: Mapping[str, Any]) -> str | None:
    """The site the paper manipulated (the first marked ``paper``), else the first site."""
    by_site = summary.get("by_site") or {}
    sites = summary.get("sites") or {}
    marked = [s for s in by_site if (sites.get(s) or {}).get("paper")]
    return (marked or list(by_site) or [None])[0]


def _comparison(models: Sequence[ModelResults], rankings: dict[str, dict[str, str]],
                js_unit: str, folder: Path) -> dict[str, Any] | None:
    with_summary = [m for m in models if m.summary]
    if not with_summary:
        return None
    rows = []
    summarised: list[str] = []  # transformers' head sites: in their Layers and heads section only
    for m in with_summary:
        summary = m.summary or {}
        full = full_sites(summary)
        hidden = len(summary.get("by_site") or {}) - len(full)
        if hidden:
            summarised.append(f"{m.name}: its {hidden} attention-head sites are left out of this "
                              "table; its Layers and heads section summarises them.")
        for site in full:
            s = (summary.get("by_site") or {})[site]
            meta = (summary.get("sites") or {}).get(site) or {}
            sw, rm = s.get("single_weight") or {}, s.get("removal") or {}
            flips = sw.get("flip_rate") or {}
            rows.append({
                "model": m.name, "site": site, "site_label": meta.get("label", site),
                "paper": bool(meta.get("paper")), "n_docs": s.get("n_docs"),
                "share_delta_js_positive": sw.get("share_delta_js_positive"),
                "median_delta_js": js_value(sw.get("median_delta_js"), js_unit),
                "flip_max": flips.get("max"), "flip_random": flips.get("random"),
                "median_fraction": {r: (rm.get(r) or {}).get("median_fraction") for r in rankings},
                "never": {r: (rm.get(r) or {}).get("share_never_flipped") for r in rankings},
                "share_cannot_flip": s.get("share_cannot_flip"),
                "versus": s.get("attention_vs_gradient") or {},
            })
    notes: list[str] = []
    figs: list[dict[str, Any]] = []
    if len(with_summary) >= 2:
        panels = []
        for m in with_summary:
            paper = paper_site(m.summary or {})
            if paper is None:
                continue
            panels.append(figures.Panel(
                title=m.name, summary=(m.summary or {})["by_site"][paper],
                single=site_rows(m.tables.single, paper), removal=attention_rows(m, paper)))
        figs = [f for spec in figures.FIGURES if spec.across_models
                if (f := _figure(spec, panels, rankings, folder, js_unit, notes)) is not None]
    return {"rows": rows, "figures": figs, "notes": notes, "summarised": summarised}


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _figure(spec: figures.FigureSpec, panels: list[figures.Panel], rankings: Mapping[str, Any],
            folder: Path, js_unit: str, notes: list[str]) -> dict[str, Any] | None:
    """Draw one figure and inline it; a figure that fails costs a note, not the report."""
    return draw_inline(spec.key, spec.title, spec.caption, notes,
                       lambda path: figures.draw_figure(spec.key, panels, rankings, path,
                                                        js_unit=js_unit),
                       folder / f"{spec.key}.png")


# ----------------------------------------------------------------------------------------------
# One model
# ----------------------------------------------------------------------------------------------


def _model_ids(models: Sequence[ModelResults]) -> dict[str, str]:
    """HTML ids ``m-<slug>``, made unique when two names share a slug."""
    ids: dict[str, str] = {}
    for m in models:
        base = f"m-{slug(m.name)}"
        ident, k = base, 2
        while ident in ids.values():
            ident, k = f"{base}-{k}", k + 1
        ids[m.name] = ident
    return ids


#: settings that a transformer (``[model] base`` set) never reads: the paper models' sizes and
#: word vocabulary (a transformer has its base's sizes and its tokenizer's vocabulary)
_NOT_TRANSFORMER = frozenset({"model.embedding_dim", "model.hidden", "model.dropout",
                              "model.embeddings", "model.encoder", "data.min_count",
                              "data.max_vocab"})
#: settings of a split made for training, which a model trained elsewhere (``[data] test_only``)
#: never had: no train or dev split is carved, nothing is subsampled but the test split
_NOT_IMPORTED = frozenset({"data.dev_fraction", "data.test_fraction", "data.max_train_docs",
                           "data.max_dev_docs"})


def applicable_config(config: Mapping[str, Any], *, imported: bool) -> dict[str, Any]:
    """The model's settings (config.json) without those that do not apply to it: a transformer's
    paper-model sizes, and for a model trained elsewhere (``audit --hf-model``) the whole
    ``[train]`` table (nothing was trained here) and the split settings."""
    transformer = (config.get("model") or {}).get("base") is not None
    drop = (_NOT_TRANSFORMER if transformer else frozenset()) | (
        _NOT_IMPORTED if imported else frozenset())
    out: dict[str, Any] = {}
    for section, values in config.items():
        if imported and section == "train":
            continue
        if isinstance(values, Mapping):
            out[section] = {k: v for k, v in values.items() if f"{section}.{k}" not in drop}
        else:
            out[section] = values
    return out


def _model(m: ModelResults, ident: str, js_unit: str, folder: Path) -> dict[str, Any]:
    log.info("report: %s: drawing its figures and example documents", m.name)
    summary = m.summary or {}
    imported = bool((m.metrics or {}).get("imported_from")
                    or (m.train_info or {}).get("imported_from"))
    flat = sorted(flatten(applicable_config(m.config or {}, imported=imported)),
                  key=lambda kv: _CONFIG_ORDER.get(kv[0].split(".")[0], 9))
    info = m.tables.audit_info or {}
    audit_rows = flatten({k: v for k, v in info.items() if k != "versions"})
    key_audit = [r for r in audit_rows if r[0].split(".")[-1] in _AUDIT_SETTINGS]
    rankings = {r: {"label": str((v or {}).get("label", r)), "color": safe_color((v or {}).get("color"))}
                for r, v in (summary.get("rankings") or {}).items()}
    notes = list(m.notes)
    by_site = summary.get("by_site") or {}
    # A transformer's head sites are summarised in its Layers and heads section, not given a
    # section each (dozens of them would bury the report); every other model keeps every site.
    full = full_sites(summary)
    site_ids = {site: f"{ident}-{slug(site)}" for site in full}
    sites = [_site(m, site, by_site[site], rankings, js_unit, folder / slug(site), site_ids[site],
                   notes) for site in full]
    layers = transformer_section(m, rankings, js_unit, folder / "_layers", f"{ident}-layers",
                                 site_ids, notes, CATEGORY_LABELS)
    prediction = summary.get("prediction") or {}
    return {
        "name": m.name, "id": ident, "has_audit": m.has_audit, "notes": notes,
        "model_name": m.model_name, "audit_name": m.audit_name, "differs": m.differs,
        "chips": flat[:8], "all_config": flat if len(flat) > 8 else [],
        "audit_settings": key_audit, "all_audit_settings": audit_rows,
        "warning": prediction.get("warning") if _degenerate(m) else None,
        "prediction": prediction,
        "test_accuracy": (m.metrics or {}).get("test_accuracy"),
        "majority_baseline": metric(m.metrics, "majority_baseline"),
        "n_docs": summary.get("n_docs"),
        "n_sites": len(by_site),
        "sites": sites,
        "transformer": layers,
    }


def _cannot_flip(m: ModelResults, site: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Why the site's documents cannot flip (its kind's reason), and the message and command when
    most cannot (summary.json ``cannot_flip``; audits written before it: the reason from the
    site's name, no message)."""
    entry = dig(m.summary or {}, "cannot_flip", site)
    if isinstance(entry, Mapping) and entry.get("explanation"):
        return {"cannot_flip_explained": entry["explanation"],
                "cannot_flip_advice": entry.get("message"),
                "cannot_flip_command": entry.get("command")}
    settings = dig(m.tables.audit_info or {}, "config") or {}
    layer = layer_site(site, meta) is not None
    return {"cannot_flip_explained": explained("layer" if layer else "pooling",
                                               settings.get("query_rows", "cls")),
            "cannot_flip_advice": None, "cannot_flip_command": None}


def _site(m: ModelResults, site: str, s: Mapping[str, Any], rankings: dict[str, dict[str, str]],
          js_unit: str, folder: Path, ident: str, notes: list[str]) -> dict[str, Any]:
    summary = m.summary or {}
    meta = (summary.get("sites") or {}).get(site) or {}
    settings = (m.tables.audit_info or {}).get("config")
    title = site_title(site, str(meta.get("label", site)), meta)
    panel = figures.Panel(title=title, summary=s,
                          single=site_rows(m.tables.single, site), removal=attention_rows(m, site),
                          settings=settings if isinstance(settings, dict) else {})
    figs = {spec.key: _figure(spec, [panel], rankings, folder, js_unit, notes)
            for spec in figures.FIGURES if spec.per_site}
    sw, rm = s.get("single_weight") or {}, s.get("removal") or {}
    versus = s.get("attention_vs_gradient") or {}
    examples = _examples(m, site, rankings, js_unit, ident)
    item = ITEM_NOUNS.get(str(meta.get("item", "item")), str(meta.get("item", "item")))
    return {
        "name": site, "id": ident, "label": title, "item": item,
        "paper": bool(meta.get("paper")), "description": meta.get("description") or "",
        "not_in_paper": None if meta.get("paper") else NOT_IN_PAPER,
        "n_docs": s.get("n_docs"), "n_single_item": s.get("n_single_item"),
        "share_cannot_flip": s.get("share_cannot_flip"),
        **_cannot_flip(m, site, meta),
        "conventions": s.get("conventions") or {},
        "faithfulness": faithfulness.site_block(summary, site, s, rankings, figs,
                                                item=item,
                                                js_unit=js_unit),
        "test1": {
            "n": sw.get("n"),
            "share_delta_js_positive": sw.get("share_delta_js_positive"),
            "median_delta_js": js_value(sw.get("median_delta_js"), js_unit),
            "median_js_max": js_value(sw.get("median_js_max"), js_unit),
            "flip_max": (sw.get("flip_rate") or {}).get("max"),
            "flip_random": (sw.get("flip_rate") or {}).get("random"),
            "flip_rows": [{"key": k, "label": removal_label(k, rankings), "rate": v}
                          for k, v in (sw.get("flip_rate") or {}).items()],
            "table2": sw.get("table2") or {},
            "figures": [f for k in ("delta_js_vs_delta_a", "flip_table") if (f := figs.get(k))],
        },
        "test2": {
            "rows": [{"name": r, "label": rankings.get(r, {}).get("label", r),
                      "color": rankings.get(r, {}).get("color", "#6b7280"), **(x or {})}
                     for r, x in rm.items()],
            "figures": [f for k in ("flip_curve", "fraction_removed", "mass_removed")
                        if (f := figs.get(k))],
            "versus": versus if any(is_num(versus.get(k)) for k in versus) else None,
            "attention": rankings.get("attention", {"label": "attention", "color": "#E69F00"}),
            "gradient": rankings.get("gradient", {"label": "gradient", "color": "#0072B2"}),
        },
        "examples": examples,
        "categories": example_categories(examples),
    }


def attention_rows(m: ModelResults, site: str) -> pd.DataFrame | None:
    """``removal.parquet`` rows of ``site`` at attention level (Test 2's figures and examples);
    input-level rows have their own table in the Faithfulness block. ``None`` when there are none."""
    removal = m.tables.removal
    return site_rows(erasure_rows(removal, "attention") if removal is not None else None, site)


# ----------------------------------------------------------------------------------------------
# Example documents
# ----------------------------------------------------------------------------------------------


def _examples(m: ModelResults, site: str, rankings: dict[str, dict[str, str]], js_unit: str,
              ident: str) -> list[dict[str, Any]]:
    t = m.tables
    if t.single is None or t.removal is None or t.items is None or "site" not in t.items.columns:
        return []
    single, removal = site_rows(t.single, site), attention_rows(m, site)
    items = site_rows(t.items, site)
    if single is None or removal is None or items is None:
        return []
    chosen = select_examples(single, removal, items)
    records = example_records(single, removal, items, chosen, rankings=list(rankings))
    return [example(r, rankings, js_unit, f"{ident}-ex{i}") for i, r in enumerate(records)]


def example(record: Mapping[str, Any], rankings: Mapping[str, Mapping[str, str]], js_unit: str,
            ident: str) -> dict[str, Any]:
    """One example card's content from an :func:`~attnaudit.results.example_records` record.

    Views (what the text is shaded by): the attention weights, then the score of every ranking
    whose scores are not the weights themselves (random scores carry no meaning). Items carry
    their shades as CSS variables ``--v<k>`` and ``rm-<j>`` classes for each ranking ``j`` that
    removed them before its flip; the per-item table travels as a payload of pre-formatted numbers.
    """
    texts = [str(t) for t in record.get("items") or []]
    n = len(texts)
    weights = _pad(record.get("weights"), n)
    scores = record.get("scores") or {}
    names = in_order(list(record.get("ranks") or {}), list(rankings))
    views: list[tuple[str, list[float | None]]] = [("attention weight", weights)]
    for r in in_order(list(scores), list(rankings)):
        values = _pad(scores[r], n)
        if r != "random" and not _same(values, weights):
            views.append((str(rankings.get(r, {}).get("label", r)), values))
    ranks = {r: _pad(record["ranks"].get(r), n) for r in names}
    steps = {r: (record.get("flip_step") or {}).get(r) for r in names}
    colors = [safe_color(rankings.get(r, {}).get("color")) for r in names]
    scales = [max((abs(v) for v in values if v is not None), default=0.0) or 1.0
              for _, values in views]
    items = []
    for i, text in enumerate(texts):
        shades = ";".join(f"--v{k}:{shade(values[i], scales[k], signed_=k > 0)}"
                          for k, (_, values) in enumerate(views))
        removed = [j for j, r in enumerate(names) if _removed_before_flip(ranks[r][i], steps[r])]
        tip = [f"#{i + 1}  attention {sig(weights[i], 4)}"]
        tip += [f"{label} {signed(values[i], 4)}" for label, values in views[1:]]
        tip.append("removal rank: " + ", ".join(
            f"{rankings.get(r, {}).get('label', r)} "
            f"{'—' if ranks[r][i] is None else int(ranks[r][i] or 0) + 1}" for r in names))
        items.append({"text": text, "style": shades,
                      "classes": " ".join(f"rm-{j}" for j in removed), "title": "\n".join(tip)})
    payload = {
        "w": [sig(v, 3) for v in weights],
        "s": [[signed(v, 3) for v in values] for _, values in views[1:]],
        "r": [[None if v is None else int(v) + 1 for v in ranks[r]] for r in names],
    }
    category = str(record.get("category", ""))
    label, prediction = record.get("label"), record.get("prediction")
    delta = js_value(record.get("delta_js"), js_unit)
    return {
        "id": ident, "category": category, "category_label": CATEGORY_LABELS.get(category, category),
        "doc_id": record.get("doc_id"), "label": label, "prediction": prediction,
        "correct": str(label) == str(prediction), "n_items": n, "delta_js": delta,
        "cannot_flip": bool(record.get("cannot_flip")),
        "flips": [{"label": rankings.get(r, {}).get("label", r), "color": colors[j],
                   "text": flip_text(steps[r], n)} for j, r in enumerate(names)],
        "views": [{"index": k, "label": label_} for k, (label_, _) in enumerate(views)],
        "rankings": [{"index": j, "label": rankings.get(r, {}).get("label", r)}
                     for j, r in enumerate(names)],
        "spans": items,
        "payload": json.dumps(payload, separators=(",", ":")),
        "steps": json.dumps([steps[r] for r in names]),
        "colors": json.dumps(colors),
    }


def example_categories(examples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Filter buttons: each category present, in report order, with its count."""
    counts: dict[str, int] = {}
    for e in examples:
        counts[e["category"]] = counts.get(e["category"], 0) + 1
    return [{"name": c, "label": CATEGORY_LABELS.get(c, c), "count": counts[c]}
            for c in in_order(list(counts), list(CATEGORIES))]


def _removed_before_flip(rank: float | None, step: Any) -> bool:
    """Rank ``rank`` (0 = removed first) is among the ``step`` items removed at the first flip."""
    return rank is not None and is_num(step) and rank < float(step)


def _pad(values: Any, n: int) -> list[float | None]:
    out = [float(v) if is_num(v) else None for v in list(values or [])[:n]]
    return out + [None] * (n - len(out))


def _same(a: Sequence[float | None], b: Sequence[float | None]) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None
                                             and math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12))
               for x, y in zip(a, b, strict=True))


__all__ = ["FIGURES_DIR", "build_context", "example", "flip_text", "rel"]
