"""Reading what a run folder holds, for the report: ``run.json`` and per model ``metrics.json``,
``config.json``, ``run_info.json`` and the audit folder (via :func:`attnaudit.results.read_audit`).

A run folder written by ``attnaudit run`` holds ``run.json`` and ``models/<name>/``; a single model
folder (with ``audit/`` but no ``models/``) is reported as a run of one. Missing pieces (a model
whose audit has not finished, an unreadable file) become notes in the report instead of failures.
When ``summary.json`` is missing or from an older schema, the summary is recomputed from the tables
with :func:`attnaudit.results.summarize` (the function the audit uses), and the report says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnaudit.results import SCHEMA_VERSION, read_audit, summarize
from attnaudit.results.tables import (
    AUDIT_DIR,
    AUDIT_INFO,
    NAMED_AUDITS_DIR,
    REMOVAL,
    SINGLE_WEIGHT,
    SUMMARY,
    AuditTables,
    audit_folder,
    named_audits,
)
from attnaudit.utils.logging import get_logger

log = get_logger(__name__)


class ReportError(ValueError):
    """The folder given is not something a report can be built from."""


@dataclass
class ModelResults:
    """Everything saved for one model; any piece may be missing (``None``), with a note why."""

    name: str
    folder: Path
    metrics: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    train_info: dict[str, Any] | None = None  # run_info.json beside the checkpoint
    tables: AuditTables = field(default_factory=AuditTables)
    summary: dict[str, Any] | None = None  # schema 2, from summary.json or recomputed
    notes: list[str] = field(default_factory=list)
    #: a named audit's name (``audits/NAME/``); None: the model's full audit (``audit/``)
    audit_name: str | None = None
    #: the model's name (``name`` is the report's label: for a named audit, model and audit)
    model_name: str = ""
    #: a named audit's settings that differ from the full audit's, as "key: value (full: value)"
    differs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model_name = self.model_name or self.name

    @property
    def has_audit(self) -> bool:
        t = self.tables
        return self.summary is not None or t.single is not None or t.removal is not None


def discover(root: Path) -> tuple[dict[str, Any] | None, list[tuple[str, Path]]]:
    """The run's ``run.json`` (if any) and ``(model name, model folder)`` pairs, in run order."""
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder")
    run_info = read_json_or_none(root / "run.json")
    if (root / "models").is_dir() or run_info is not None:
        listed = _listed_models(run_info)
        found = sorted(p.name for p in (root / "models").glob("*") if p.is_dir()) \
            if (root / "models").is_dir() else []
        names = listed + [n for n in found if n not in listed]
        return run_info, [(n, root / "models" / n) for n in names]
    if any((root / d).is_dir() for d in (AUDIT_DIR, NAMED_AUDITS_DIR)) \
            or (root / "metrics.json").is_file():
        summary = read_json_or_none(root / AUDIT_DIR / SUMMARY) or {}
        return None, [(str(summary.get("model") or root.name), root)]
    raise ReportError(
        f"{root} holds neither a pipeline run (run.json, models/) nor a model folder (audit/, "
        "audits/ or metrics.json)"
    )


def run_setting(run_info: dict[str, Any] | None, key: str) -> Any:
    """A setting of ``run.json``: top level, or under ``config`` as ``attnaudit run`` writes it."""
    info = run_info or {}
    config = info.get("config")
    if info.get(key) is None and isinstance(config, dict):
        return config.get(key)
    return info.get(key)


def _listed_models(run_info: dict[str, Any] | None) -> list[str]:
    """Model names from ``run.json``: a list of names, or of objects with a ``name``."""
    entries = run_setting(run_info, "models") or []
    if isinstance(entries, str):
        entries = [e.strip() for e in entries.split(",") if e.strip()]
    names: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        name = entry.get("name") or entry.get("model") if isinstance(entry, dict) else entry
        if name is not None and str(name) not in names:
            names.append(str(name))
    return names


def named_label(model: str, audit_name: str) -> str:
    """How the report names a named audit of a model: ``"flan-rnn · audit ig-only"``."""
    return f"{model} · audit {audit_name}"


def load_model(name: str, folder: Path, audit_name: str | None = None) -> ModelResults:
    """Read what there is of one model's results (its full audit, or the audit named
    ``audit_name``); note what is missing or unreadable."""
    label = name if audit_name is None else named_label(name, audit_name)
    result = ModelResults(name=label, folder=folder, audit_name=audit_name, model_name=name)
    if not folder.is_dir():
        result.notes.append(f"No folder for this model yet ({rel(folder)}): not trained yet.")
        return result
    result.metrics = _json(result, folder / "metrics.json")
    result.config = _json(result, folder / "config.json", quiet=True)
    result.train_info = _json(result, folder / "run_info.json", quiet=True)
    audit = audit_folder(folder, audit_name)
    if not audit.is_dir():
        result.notes.append(f"No audit results yet ({rel(audit)} is missing): run "
                            "`attnaudit audit` on this model, then rebuild the report.")
        return result
    result.tables = tables = read_audit(audit)
    if SUMMARY in tables.problems:
        # Refused rather than noted: the page would show a model both damaged and unfinished, and
        # the audit rewrites the file from its complete tables in seconds.
        again = f"{folder}" if audit_name is None else f"{folder} --name {audit_name}"
        raise ReportError(
            f"{audit / SUMMARY} is damaged ({tables.problems[SUMMARY]}); run 'attnaudit audit "
            f"{again}' to rewrite it from the saved tables, then build the report again"
        )
    for file, problem in tables.problems.items():
        result.notes.append(f"{rel(audit / file)} could not be read: {problem}")
    for file, frame in ((SINGLE_WEIGHT, tables.single), (REMOVAL, tables.removal)):
        if frame is None and file not in tables.problems:
            result.notes.append(f"{rel(audit / file)} is missing.")
    result.summary = _summary(result, audit)
    return result


def load_named_audits(full: ModelResults) -> list[ModelResults]:
    """The named audits of ``full``'s model folder (``audits/NAME/``, sorted by name), each with
    what differs in its settings from the full audit ``full`` (:func:`settings_differences`)."""
    named = [load_model(full.model_name, full.folder, audit_name)
             for audit_name, _ in named_audits(full.folder)]
    for m in named:
        m.differs = settings_differences(m.tables.audit_info, full.tables.audit_info)
    return named


#: audit_info.json entries a named audit is compared on (the settings and what they gave)
_COMPARED = ("config", "summary_settings")


def settings_differences(info: dict[str, Any] | None, full: dict[str, Any] | None) -> list[str]:
    """A named audit's settings that differ from the full audit's, one ``"key: value (full audit:
    value)"`` each, from their audit_info.json (the settings that change tables, then those that
    change only the summary, then the number of documents); one line saying so when there is no
    full audit or no settings to compare."""
    if not info:
        return ["its settings are not saved (audit_info.json is missing)"]
    if not full:
        return ["no full audit of this model to compare with"]
    out: list[str] = []
    for section in _COMPARED:
        mine, theirs = info.get(section) or {}, full.get(section) or {}
        if not isinstance(mine, dict) or not isinstance(theirs, dict):
            continue
        for key in [*mine, *(k for k in theirs if k not in mine)]:
            if mine.get(key) != theirs.get(key):
                out.append(f"{key}: {_setting(mine.get(key))} "
                           f"(full audit: {_setting(theirs.get(key))})")
    if info.get("n_docs") != full.get("n_docs"):
        out.append(f"documents: {_setting(info.get('n_docs'))} "
                   f"(full audit: {_setting(full.get('n_docs'))})")
    return out


def _setting(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def _summary(result: ModelResults, audit: Path) -> dict[str, Any] | None:
    """summary.json when it has this schema; else recomputed from the tables, with a note."""
    t = result.tables
    saved = t.summary
    if saved is not None and saved.get("schema_version") == SCHEMA_VERSION:
        return saved
    why = (f"{rel(audit / SUMMARY)} is from an older attnaudit (schema "
           f"{saved.get('schema_version', 1)})" if saved is not None
           else f"the audit has not finished ({rel(audit / SUMMARY)} is not there yet)")
    if t.single is None or t.removal is None or "site" not in t.removal.columns:
        result.notes.append(f"{why[0].upper()}{why[1:]}; its tables cannot be summarised.")
        return None
    info = t.audit_info or {}
    meta = info.get("rankings_meta") if isinstance(info.get("rankings_meta"), dict) else {}
    sites = info.get("sites_meta") if isinstance(info.get("sites_meta"), dict) else {}
    result.notes.append(f"{why[0].upper()}{why[1:]}: the numbers below are recomputed from its "
                        "tables.")
    try:
        # items (when saved) give the agreement between rankings; no bootstrap here: the report
        # must stay quick, and intervals come from the audit's own summary.json
        return summarize(t.single, t.removal, model=result.model_name, rankings_meta=meta or {},
                         sites_meta=sites or {}, items=t.items)
    except (KeyError, ValueError, TypeError) as err:  # a table missing a column
        log.warning("cannot summarise %s: %s", audit, err)
        result.notes.append(f"The tables in {rel(audit)} could not be summarised: {err}")
        return None


def _json(result: ModelResults, path: Path, *, quiet: bool = False) -> dict[str, Any] | None:
    """A JSON object file, or ``None`` with a note when it is missing (unless quiet) or bad."""
    if not path.is_file():
        if not quiet:
            result.notes.append(f"{rel(path)} is missing.")
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        result.notes.append(f"{rel(path)} could not be read: {err}")
        return None
    return obj if isinstance(obj, dict) else None


def read_json_or_none(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def rel(path: Path) -> str:
    """The last three parts of a path: enough to find the file, no home folder in the report."""
    return "/".join(path.parts[-3:])


def site_rows(df: pd.DataFrame | None, site: str) -> pd.DataFrame | None:
    """Rows of one site, or ``None`` when there are none."""
    if df is None or "site" not in df.columns:
        return None
    rows = df[df["site"].astype(str) == site]
    return rows if len(rows) else None


__all__ = ["AUDIT_INFO", "ModelResults", "ReportError", "discover", "load_model",
           "load_named_audits", "named_label", "settings_differences"]
