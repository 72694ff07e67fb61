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
from attnaudit.results.tables import AUDIT_INFO, REMOVAL, SINGLE_WEIGHT, SUMMARY, AuditTables
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
    if (root / "audit").is_dir() or (root / "metrics.json").is_file():
        summary = read_json_or_none(root / "audit" / SUMMARY) or {}
        return None, [(str(summary.get("model") or root.name), root)]
    raise ReportError(
        f"{root} holds neither a pipeline run (run.json, models/) nor a model folder (audit/)"
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


def load_model(name: str, folder: Path) -> ModelResults:
    """Read what there is of one model's results; note what is missing or unreadable."""
    result = ModelResults(name=name, folder=folder)
    if not folder.is_dir():
        result.notes.append(f"No folder for this model yet ({rel(folder)}): not trained yet.")
        return result
    result.metrics = _json(result, folder / "metrics.json")
    result.config = _json(result, folder / "config.json", quiet=True)
    result.train_info = _json(result, folder / "run_info.json", quiet=True)
    audit = folder / "audit"
    if not audit.is_dir():
        result.notes.append(f"No audit results yet ({rel(audit)} is missing): run "
                            "`attnaudit audit` on this model, then rebuild the report.")
        return result
    result.tables = tables = read_audit(audit)
    if SUMMARY in tables.problems:
        # Refused rather than noted: the page would show a model both damaged and unfinished, and
        # the audit rewrites the file from its complete tables in seconds.
        raise ReportError(
            f"{audit / SUMMARY} is damaged ({tables.problems[SUMMARY]}); run 'attnaudit audit "
            f"{folder}' to rewrite it from the saved tables, then build the report again"
        )
    for file, problem in tables.problems.items():
        result.notes.append(f"{rel(audit / file)} could not be read: {problem}")
    for file, frame in ((SINGLE_WEIGHT, tables.single), (REMOVAL, tables.removal)):
        if frame is None and file not in tables.problems:
            result.notes.append(f"{rel(audit / file)} is missing.")
    result.summary = _summary(result, audit)
    return result


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
        return summarize(t.single, t.removal, model=result.name, rankings_meta=meta or {},
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


__all__ = ["AUDIT_INFO", "ModelResults", "ReportError", "discover", "load_model"]
