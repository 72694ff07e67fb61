"""What every reader shares: split and label names, the column options, and the document sink.

Reads no layout itself: each format module turns its files into records and hands them to
:class:`Sink`, which normalises labels and ids, applies the checks and makes the documents.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from attnaudit.data.types import DataError, Document

# One logger for the whole package, named as the single module was before it became a package.
logger = logging.getLogger("attnaudit.data.loaders")

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
    "testing": "test",
}
_INT_LIKE_RE = re.compile(r"[+-]?\d+(?:\.0*)?")
_LABEL_FIX = "give every document a label, or remove the rows without one"


def normalise_split(value: object) -> str:
    """Map a split name to ``"train"``, ``"dev"`` or ``"test"`` (``validation``/``valid`` -> dev).

    Raises:
        DataError: the name is none of those (the caller adds where it was found).
    """
    name = str(value).strip().lower()
    try:
        return SPLIT_NAMES[name]
    except KeyError:
        raise DataError(f"unknown split {value!r} (expected train, dev/validation or test)") from None


def normalise_label(value: object) -> str:
    """A label value as the class-name string used everywhere else.

    Integers and integral floats/strings give the integer's digits (``1``, ``1.0``, ``"1.0"`` ->
    ``"1"``), so a label column read as float (e.g. from Parquet with missing values) matches one read
    as int. Other strings are stripped.

    Raises:
        DataError: missing (None, NaN, empty, or the text "NaN": what pandas and spreadsheets
            write for a missing value, never a class name) or not a string/number.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError(f"missing label; {_LABEL_FIX}")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        label = value.strip()
        if not label:
            raise DataError(f"missing label; {_LABEL_FIX}")
        if label.lower() == "nan":
            raise DataError(f"missing label ({label!r}, how a missing value is written); "
                            f"{_LABEL_FIX}")
        if _INT_LIKE_RE.fullmatch(label):
            return str(int(label.split(".")[0]))
        return label
    raise DataError(f"label must be a string or a number, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------------------
# Collecting documents


@dataclass(frozen=True)
class Columns:
    text: str = "text"
    label: str = "label"
    id: str | None = None

    def id_in(self, names: Collection[str]) -> str | None:
        """The id column to use given the available column names (``id`` when present)."""
        if self.id is not None:
            return self.id
        return "id" if "id" in names else None


@dataclass(frozen=True)
class Options:
    """The column options as given to :func:`load_documents`, for every reader.

    ``columns`` has the defaults filled in; ``text_column`` and ``label_column`` are as passed
    (``None`` when not given), for the formats that refuse or reinterpret them.
    """

    columns: Columns
    text_column: str | None = None
    label_column: str | None = None


class Sink:
    """Turns raw records into Documents: label and id normalisation, checks, empty handling."""

    def __init__(self, labels: Collection[str] | None, on_empty: str) -> None:
        self.allowed = None if labels is None else {normalise_label(x) for x in labels}
        self.on_empty = on_empty
        # (id, label, split, text, where) per non-empty record; ids are settled in finish().
        self.records: list[tuple[str, str, str | None, str, str]] = []
        self.rows_per_split: dict[str | None, int] = {}
        self.skipped = 0
        self.first_skipped: str | None = None
        # records and empty ones per source split: a split whose every document is empty is
        # said as such (it is then carved from train, see data.splits.assign_splits)
        self.added: Counter[str | None] = Counter()
        self.empty: Counter[str | None] = Counter()

    def next_row(self, split: str | None) -> int:
        """The 0-based row number of the next record of ``split`` (ids when there is no id column)."""
        row = self.rows_per_split.get(split, 0)
        self.rows_per_split[split] = row + 1
        return row

    def add(self, text: object, label: object, doc_id: object, split: str | None, where: str) -> None:
        """Add one record; ``where`` is e.g. ``"data.csv, line 17"`` for messages."""
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise DataError(f"{where}: text must be a string, got {type(text).__name__}")
        try:
            name = normalise_label(label)
        except DataError as err:
            raise DataError(f"{where}: {err}") from None
        if self.allowed is not None and name not in self.allowed:
            shown = ", ".join(sorted(self.allowed)[:10]) + (", ..." if len(self.allowed) > 10 else "")
            raise DataError(f"{where}: unknown label {name!r} (expected one of: {shown})")
        key = _id_string(doc_id, where)
        self.added[split] += 1
        if not text.strip():
            self.empty[split] += 1
            if self.on_empty == "error":
                raise DataError(f"{where}: empty document")
            self.skipped += 1
            if self.first_skipped is None:
                self.first_skipped = where
            return
        self.records.append((key, name, split, text, where))

    def finish(self, path: Path) -> list[Document]:
        """The documents, with ids made unique, after logging the skipped empty ones."""
        if self.skipped:
            logger.warning(
                "%s: skipped %d empty document(s) (first at %s)", path, self.skipped,
                self.first_skipped,
            )
        for split, count in self.empty.items():
            if split is not None and count == self.added[split]:
                logger.warning("%s: every %s document is empty (%d skipped): the data has no %s "
                               "split left", path, split, count, split)
        if not self.records:
            raise DataError(f"{path}: no documents")
        # "{split}/{id}": ids often restart in each split. IMDB's restart in each split *and* label
        # folder (train/pos/0 and train/neg/0), so when split/id repeats, split/label/id is tried.
        ids = [key if split is None else f"{split}/{key}" for key, _, split, _, _ in self.records]
        duplicate = _first_duplicate(ids)
        if duplicate is not None:
            qualified = [
                f"{label}/{key}" if split is None else f"{split}/{label}/{key}"
                for key, label, split, _, _ in self.records
            ]
            if _first_duplicate(qualified) is None:
                logger.info("%s: ids repeat within a split; document ids include the label", path)
                ids = qualified
            else:
                first, second = duplicate
                raise DataError(
                    f"{self.records[second][4]}: duplicate id {ids[second]!r} "
                    f"(first at {self.records[first][4]})"
                )
        docs = [
            Document(doc_id=doc_id, text=text, label=label, split=split)
            for doc_id, (_, label, split, text, _) in zip(ids, self.records, strict=True)
        ]
        logger.info("%s: %d documents", path, len(docs))
        return docs


def _first_duplicate(ids: list[str]) -> tuple[int, int] | None:
    """Positions ``(first, second)`` of the first repeated id, or None when all are distinct."""
    seen: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        if doc_id in seen:
            return seen[doc_id], i
        seen[doc_id] = i
    return None


def _id_string(value: object, where: str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: missing id")
    return str(value).strip()


def split_at(value: object, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: missing split")
    try:
        return normalise_split(value)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None


#: how a user names each role's column (the flag, else the config key)
_COLUMN_SETTINGS = {"text": "--text-column", "label": "--label-column", "id": "[data] id_column"}
#: names pandas gives a saved row index: "" (to_csv's header), "Unnamed: 0" (read back), and
#: "__index_level_0__" (to_parquet)
_INDEX_NAME = re.compile(r"\s*|Unnamed: \d+|__index_level_\d+__")


def missing_column(where: str, role: str, name: str, available: Collection[str],
                   kind: str = "column") -> DataError:
    """The one-line error for a ``role`` column (text, label, id) named ``name`` that ``where``
    lacks: the columns it has (a saved row index said as such) and the setting that names another.

    Example:
        >>> print(missing_column("a.csv", "text", "text", ["", "label", "review"]))
        ... # doctest: +NORMALIZE_WHITESPACE
        a.csv: no text column 'text' (columns: label, review, and a saved row index);
        name the text column with --text-column NAME
    """
    named = [c for c in available if not _INDEX_NAME.fullmatch(c)]
    index = len(named) < len(available)
    listed = ", ".join(named)
    if index:
        listed = f"{listed}, and a saved row index" if named else "a saved row index only"
    return DataError(f"{where}: no {role} {kind} {name!r} ({kind}s: {listed or 'none'}); name the "
                     f"{role} {kind} with {_COLUMN_SETTINGS[role]} NAME")


#: Reads a whole ``path`` (file or folder) of one format into the sink.
Reader = Callable[[Path, Options, Sink], None]
#: Reads one data file, whose split (if any) the caller has taken from its name.
FileReader = Callable[[Path, str | None, Columns, Sink], None]
#: Recognises a layout: the format name when ``path`` is one it knows, else None.
Detector = Callable[[Path, Columns], str | None]
