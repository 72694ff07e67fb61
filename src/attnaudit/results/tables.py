"""Reading an audit folder's tables, and the row selections every summary and figure shares.

Torch-free (pandas only): the report and the summary both import this module. Table schemas are in
``docs/architecture.md``:

* ``single_weight.parquet``: one row per (document, site), Test 1 (``skipped`` for one-item documents);
* ``removal.parquet``: one row per (document, site, ranking, erasure level), Test 2 and every
  registered measure (:func:`erasure_rows` selects a level);
* ``items.parquet``: one row per (document, site, item): ``text``, ``weight``, ``score_R``, ``rank_R``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: a model folder's full audit (``attnaudit audit RUN``)
AUDIT_DIR = "audit"
#: a model folder's named audits, one folder each (``attnaudit audit RUN --name NAME``): other
#: rankings, sites, documents beside the full audit, which they never touch
NAMED_AUDITS_DIR = "audits"
#: a name is one folder name, the same on every file system: letters, digits, ``.``, ``_``, ``-``,
#: starting with a letter or digit (so never ``.``, ``..`` or a hidden folder), at most 64
_AUDIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

SINGLE_WEIGHT = "single_weight.parquet"
REMOVAL = "removal.parquet"
ITEMS = "items.parquet"
SUMMARY = "summary.json"
AUDIT_INFO = "audit_info.json"

#: Test 1 removals that are not rankings, in report order (column suffixes of single_weight.parquet)
FIXED_REMOVALS: tuple[str, ...] = ("max", "second", "min", "random")


@dataclass
class AuditTables:
    """What an audit folder holds; each piece is ``None`` when its file is absent or unreadable.

    ``problems`` names every file that could not be read, and why (for the report to show).
    """

    single: pd.DataFrame | None = None
    removal: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    summary: dict[str, Any] | None = None
    audit_info: dict[str, Any] | None = None
    problems: dict[str, str] = field(default_factory=dict)


def read_audit(audit_dir: str | os.PathLike[str]) -> AuditTables:
    """Read ``audit_dir``'s tables and JSON files; a missing or bad file is recorded, not raised."""
    folder = Path(audit_dir)
    out = AuditTables()
    for name, attr in ((SINGLE_WEIGHT, "single"), (REMOVAL, "removal"), (ITEMS, "items")):
        path = folder / name
        if path.is_file():
            try:
                setattr(out, attr, pd.read_parquet(path))
            except (OSError, ValueError) as err:  # pyarrow errors are ValueErrors / OSErrors
                out.problems[name] = str(err)
    for name, attr in ((SUMMARY, "summary"), (AUDIT_INFO, "audit_info")):
        path = folder / name
        if path.is_file():
            try:
                obj = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                out.problems[name] = str(err)
                continue
            if isinstance(obj, dict):
                setattr(out, attr, obj)
            else:
                out.problems[name] = "not a JSON object"
    return out


def check_audit_name(name: str) -> str:
    """``name`` when it is a safe folder name for a named audit.

    Raises:
        ValueError: what is wrong with it and what a name may hold (one line).
    """
    if not _AUDIT_NAME.fullmatch(name):
        raise ValueError(
            f"--name {name!r} is not a usable audit name: use 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (e.g. --name ig-only)")
    return name


def audit_folder(model_dir: str | os.PathLike[str], name: str | None = None) -> Path:
    """Where a model folder's audit lives: ``audit/`` (the full audit) or ``audits/NAME/``.

    Raises:
        ValueError: ``name`` is not a safe folder name (:func:`check_audit_name`).
    """
    folder = Path(model_dir)
    if name is None:
        return folder / AUDIT_DIR
    return folder / NAMED_AUDITS_DIR / check_audit_name(name)


def named_audits(model_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """The named audits of a model folder, ``(name, folder)`` sorted by name; folders under
    ``audits/`` whose names :func:`check_audit_name` refuses (made by hand) are left out."""
    root = Path(model_dir) / NAMED_AUDITS_DIR
    if not root.is_dir():
        return []
    return [(p.name, p) for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.is_dir() and _AUDIT_NAME.fullmatch(p.name)]


def flag(series: pd.Series) -> pd.Series:
    """A boolean column that may hold nulls (skipped rows) as plain bool; null counts as False."""
    return series.astype("boolean").fillna(False).astype(bool)


def measured(single: pd.DataFrame) -> pd.DataFrame:
    """Test 1 rows that were measured (documents with two or more items)."""
    if "skipped" not in single.columns:
        return single
    return single[~flag(single["skipped"])]


def multi_item(removal: pd.DataFrame) -> pd.DataFrame:
    """Test 2 rows of documents with two or more items (the summaries' population)."""
    if "single_item" not in removal.columns:
        return removal
    return removal[~flag(removal["single_item"])]


def erasure_rows(removal: pd.DataFrame, level: str) -> pd.DataFrame:
    """``removal.parquet`` rows of one erasure level (``"attention"`` or ``"input"``).

    Rows without an ``erasure`` column (audits saved before input-level erasure) are attention rows.
    """
    if "erasure" not in removal.columns:
        return removal if level == "attention" else removal.iloc[:0]
    return removal[removal["erasure"].astype(str) == level]


def of_site(df: pd.DataFrame | None, site: str) -> pd.DataFrame | None:
    """Rows of one site (all rows when the table has no ``site`` column)."""
    if df is None or "site" not in df.columns:
        return df
    return df[df["site"].astype(str) == site]


def in_order(present: set[str] | list[str], order: list[str] | tuple[str, ...]) -> list[str]:
    """``present`` in ``order``, then whatever ``order`` does not name, sorted (stable output)."""
    have = set(present)
    return [x for x in order if x in have] + sorted(have - set(order))


def sites_of(*frames: pd.DataFrame | None) -> list[str]:
    """Site names in order of first appearance over ``frames``."""
    seen: list[str] = []
    for df in frames:
        if df is not None and "site" in df.columns:
            for s in pd.unique(df["site"].astype(str)):
                if s not in seen:
                    seen.append(str(s))
    return seen


def rankings_of(removal: pd.DataFrame | None) -> list[str]:
    """Ranking names in order of first appearance in ``removal``."""
    if removal is None or "ranking" not in removal.columns:
        return []
    return [str(r) for r in pd.unique(removal["ranking"].astype(str))]


def single_removals(single: pd.DataFrame, rankings: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Test 1 removals that ``single`` holds (``flip_R`` columns): the fixed four, then rankings in
    ``rankings`` order, then any others."""
    present = [c[len("flip_"):] for c in single.columns if c.startswith("flip_")]
    return in_order(present, [*FIXED_REMOVALS, *rankings])
