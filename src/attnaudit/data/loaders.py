"""Read labelled documents from the formats in which public text-classification sets are shipped.

Formats (``fmt``):

- ``zhang-csv``: Zhang et al. (2015) CSVs, no header: ``label,text``, ``label,title,text`` or Yahoo
  Answers' ``label,question_title,question_content,best_answer``; labels ``1..K``. The text fields are
  joined with line breaks. A folder with ``train.csv``/``test.csv`` gives those splits.
- ``aclimdb``: the ``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt`` folders (``unsup`` is ignored).
  Labels ``pos``/``neg``, or the star rating with ``label_column="rating"``.
- ``folders``: one folder per label holding one text file per document, the label being the folder
  name: scikit-learn's ``load_files`` layout ``<root>/<label>/<file>`` (no split), or that layout
  inside split folders, ``<root>/train/<label>/<file>`` or 20 Newsgroups' ``20news-bydate-train/``
  and ``20news-bydate-test/`` (the split word may be anywhere in the folder name). Files need no
  extension; hidden files are skipped.
- ``hf-disk``: a Hugging Face ``datasets`` folder written by ``save_to_disk`` (a ``DatasetDict`` or a
  single ``Dataset``), read with pyarrow alone. ``ClassLabel`` ids become their names.
- ``parquet``, ``jsonl`` (also ``.jsonl.gz``, ``.ndjson``, JSON-lines ``.json``), ``csv`` (with a
  header; ``.tsv`` is tab-separated): named text, label and optional id columns, and a ``split``
  column if present.

A folder of ``parquet``/``jsonl``/``csv`` files takes each file's split from a split word anywhere in
its name (``train``/``training``, ``dev``/``val``/``valid``/``validation``, ``test``/``testing``, as a
word of its own: ``train-00000-of-00002.parquet``, ``drugsComTrain_raw.tsv``), or else from the name of
the sub-folder holding it (``default/train/0000.parquet``). Several files of one split are read
together only when they are numbered shards of it; files naming no split are skipped with a warning.

Every problem with the input raises :class:`DataError` with a one-line message that names the file and
the line (or row, or field). Loaders only read; nothing is written.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import re
import sys
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from attnaudit.data.types import DataError, Document

logger = logging.getLogger(__name__)

FORMATS = ("auto", "zhang-csv", "aclimdb", "folders", "hf-disk", "parquet", "jsonl", "csv")

_EXTENSIONS = {
    "parquet": (".parquet",),
    "jsonl": (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz"),
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz"),
}
_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
    "testing": "test",
}
# The words of a file or folder name: runs of letters, also cut where camelCase starts a new word
# ("drugsComTrain_raw" -> drugs, Com, Train, raw; "IMDBTest" -> IMDB, Test). A split word must be a
# whole word so that "latest.csv", "contest/" or "restrained.tsv" do not name a split.
_NAME_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# Runs of digits and hex letters holding a digit: shard numbers and the hashes Hugging Face appends
# (train-00000-of-00002-5b4a1c9e.parquet), masked to tell shards of one split from distinct files.
_SHARD_PART_RE = re.compile(r"[0-9a-f]*[0-9][0-9a-f]*")
_INT_LIKE_RE = re.compile(r"[+-]?\d+(?:\.0*)?")
_ACLIMDB_NAME_RE = re.compile(r"^(\d+)_(\d+)\.txt$")
_ZHANG_FIELDS = (2, 3, 4)  # label,text | label,title,text | yahoo: label,title,content,answer

# Python's csv module refuses fields over 128 KiB by default; some reviews and answers are longer.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def normalise_split(value: object) -> str:
    """Map a split name to ``"train"``, ``"dev"`` or ``"test"`` (``validation``/``valid`` -> dev).

    Raises:
        DataError: the name is none of those (the caller adds where it was found).
    """
    name = str(value).strip().lower()
    try:
        return _SPLIT_NAMES[name]
    except KeyError:
        raise DataError(f"unknown split {value!r} (expected train, dev/validation or test)") from None


def normalise_label(value: object) -> str:
    """A label value as the class-name string used everywhere else.

    Integers and integral floats/strings give the integer's digits (``1``, ``1.0``, ``"1.0"`` ->
    ``"1"``), so a label column read as float (e.g. from Parquet with missing values) matches one read
    as int. Other strings are stripped.

    Raises:
        DataError: missing (None, NaN, empty) or not a string/number.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError("missing label")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        label = value.strip()
        if not label:
            raise DataError("missing label")
        if _INT_LIKE_RE.fullmatch(label):
            return str(int(label.split(".")[0]))
        return label
    raise DataError(f"label must be a string or a number, got {type(value).__name__}")


def load_documents(
    path: str | Path,
    *,
    fmt: str = "auto",
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    labels: Collection[str] | None = None,
    on_empty: str = "skip",
) -> list[Document]:
    """Read labelled documents from ``path``.

    Args:
        path: a file or folder (see the module docstring for the layouts).
        fmt: one of :data:`FORMATS`; ``"auto"`` decides from the folder contents or the file
            extension, and tells a headerless Zhang CSV from a CSV with a header by its first row.
        text_column: text column of named-column formats (default ``"text"``).
        label_column: label column (default ``"label"``); for ``aclimdb``, ``"rating"`` gives the
            star rating instead of pos/neg. ``folders`` takes neither column option (labels are
            the folder names).
        id_column: id column; default ``"id"`` when present, else the row number within its split.
            Documents with a split get ids ``"{split}/{id}"``; when those repeat (IMDB's ids restart in
            each split and label folder), ``"{split}/{label}/{id}"``; if even those repeat, error.
        labels: allowed label names; a document with another label is an error.
        on_empty: ``"skip"`` (skip empty documents, log one warning with the count) or ``"error"``.

    Returns:
        Documents in file order; ``split`` is set when the source fixes it.

    Raises:
        DataError: missing path, unknown format, malformed row, invalid JSON, non-UTF-8 bytes (for
            ``folders``: a binary file), missing column, unknown or missing label, duplicate id, a
            file or folder name giving two splits or two files/folders giving one split, or (with
            ``on_empty="error"``) an empty document. The message names the file and line/row/field.
    """
    if on_empty not in ("skip", "error"):
        raise DataError(f"on_empty must be 'skip' or 'error', got {on_empty!r}")
    if fmt not in FORMATS:
        raise DataError(f"unknown data format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    columns = _Columns(
        text=text_column or "text",
        label=label_column or "label",
        id=id_column,
    )
    if fmt == "auto":
        fmt = detect_format(path, text_column=columns.text, label_column=columns.label)
        logger.info("%s: reading as %s", path, fmt)
    sink = _Sink(labels, on_empty)
    if fmt == "aclimdb":
        _read_aclimdb(path, label_column, sink)
    elif fmt == "folders":
        _read_folders(path, text_column, label_column, sink)
    elif fmt == "hf-disk":
        _read_hf_disk(path, columns, sink)
    else:
        for file, split in _data_files(path, "csv" if fmt == "zhang-csv" else fmt):
            if fmt == "zhang-csv":
                _read_zhang(file, split, sink)
            elif fmt == "csv":
                _read_csv(file, split, columns, sink)
            elif fmt == "jsonl":
                _read_jsonl(file, split, columns, sink)
            else:
                _read_parquet(file, split, columns, sink)
    return sink.finish(path)


def detect_format(path: str | Path, *, text_column: str = "text", label_column: str = "label") -> str:
    """Guess the format of ``path`` from its folder contents or extension (see :func:`load_documents`).

    A CSV is ``zhang-csv`` when the first field of its first row is an integer and that row does not
    name ``text_column`` or ``label_column``; otherwise it is a ``csv`` with a header, whose reader
    then reports any missing column, so a wrong guess never passes silently.

    Raises:
        DataError: nothing recognisable, or a folder mixing several file formats.
    """
    path = Path(path)
    columns = _Columns(text=text_column, label=label_column)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "hf-disk"
        # Before the folder-per-label layout, which aclImdb also is: its ID_RATING.txt names (and the
        # rating label they allow) make it aclimdb. Other pos/neg folders (e.g. Pang & Lee's
        # txt_sentoken/{pos,neg}/cv000_29416.txt) fall through to "folders".
        if _is_aclimdb(path):
            return "aclimdb"
        kinds = {kind for kind in _EXTENSIONS if _files_with(path, kind)}
        if not kinds:
            # Hugging Face hub exports keep their files one level down (e.g. data/train-*.parquet).
            kinds = {kind for kind in _EXTENSIONS for sub in _subdirs(path) if _files_with(sub, kind)}
        if len(kinds) > 1:
            raise DataError(
                f"{path}: folder holds {', '.join(sorted(kinds))} files; pass the format explicitly"
            )
        if not kinds:
            # Last: a folder per label can hold anything, so any data files found above win.
            if _label_folder_roots(path) is not None:
                return "folders"
            raise DataError(
                f"{path}: no data found (expected dataset_dict.json/state.json, an aclImdb layout, "
                "one folder per label with a text file per document, or .csv/.tsv/.jsonl/.parquet "
                "files)"
            )
        kind = kinds.pop()
        if kind == "csv":
            first = _data_files(path, "csv", warn=False)[0][0]
            return "zhang-csv" if _looks_like_zhang(first, columns) else "csv"
        return kind
    file_kind = _kind_of(path)
    if file_kind is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension; pass one of {', '.join(FORMATS[1:])}"
        )
    if file_kind == "csv":
        return "zhang-csv" if _looks_like_zhang(path, columns) else "csv"
    return file_kind


# ---------------------------------------------------------------------------------------------------
# Collecting documents


@dataclass(frozen=True)
class _Columns:
    text: str = "text"
    label: str = "label"
    id: str | None = None

    def id_in(self, names: Collection[str]) -> str | None:
        """The id column to use given the available column names (``id`` when present)."""
        if self.id is not None:
            return self.id
        return "id" if "id" in names else None


class _Sink:
    """Turns raw records into Documents: label and id normalisation, checks, empty handling."""

    def __init__(self, labels: Collection[str] | None, on_empty: str) -> None:
        self.allowed = None if labels is None else {normalise_label(x) for x in labels}
        self.on_empty = on_empty
        # (id, label, split, text, where) per non-empty record; ids are settled in finish().
        self.records: list[tuple[str, str, str | None, str, str]] = []
        self.rows_per_split: dict[str | None, int] = {}
        self.skipped = 0
        self.first_skipped: str | None = None

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
        if not text.strip():
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


# ---------------------------------------------------------------------------------------------------
# Files and folders


def _kind_of(file: Path) -> str | None:
    name = file.name.lower()
    for kind, exts in _EXTENSIONS.items():
        if name.endswith(exts):
            return kind
    return None


def _files_with(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _kind_of(p) == kind)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_in_name(path: Path) -> str | None:
    """The split a file or folder name gives (``"train"``, ``"dev"``, ``"test"``), or None.

    A split word (see :data:`_SPLIT_NAMES`) counts anywhere in the name, in any case, when it is a
    word of its own: ``20news-bydate-train``, ``drugsComTrain_raw.tsv``, ``TEST.csv``, ``train2``.

    Raises:
        DataError: the name holds words of two different splits (e.g. ``train_test.csv``).
    """
    words = {w.lower() for w in _NAME_WORD_RE.findall(path.name)}
    found = sorted({_SPLIT_NAMES[w] for w in words if w in _SPLIT_NAMES})
    if len(found) > 1:
        raise DataError(
            f"{path}: the name gives {len(found)} splits ({', '.join(found)}); rename it so that "
            "it names one of train, dev/validation, test"
        )
    return found[0] if found else None


def _split_of_file(root: Path, file: Path) -> str | None:
    """The split of a data file: from its name, else from the sub-folder of ``root`` holding it."""
    split = split_in_name(file)
    if split is None and file.parent != root:
        split = split_in_name(file.parent)
    return split


def _shard_key(root: Path, file: Path) -> str:
    """``file``'s path under ``root`` with shard numbers and hashes masked (equal for shards)."""
    return _SHARD_PART_RE.sub("#", file.relative_to(root).as_posix().lower())


def _data_files(path: Path, kind: str, *, warn: bool = True) -> list[tuple[Path, str | None]]:
    """The files to read with their split: a single file has none, a folder's come from the names.

    ``warn=False`` keeps quiet about skipped files (format detection looks before the reader does).

    Raises:
        DataError: no such files; no file names a split; a name names two splits; or two files
            that are not numbered shards of one split both give that split (reading both would
            mix, e.g., a full and a sample training set).
    """
    if path.is_file():
        return [(path, None)]
    files = _files_with(path, kind)
    if not files:
        files = [f for sub in _subdirs(path) for f in _files_with(sub, kind)]
    if not files:
        exts = "/".join(_EXTENSIONS[kind])
        raise DataError(f"{path}: no {exts} files")
    named = [(file, _split_of_file(path, file)) for file in files]
    if len(named) == 1:
        return named
    unsplit = [file for file, split in named if split is None]
    if len(unsplit) == len(named):
        raise DataError(
            f"{files[0]}: cannot tell its split; put train, dev/validation or test in the file "
            "names (e.g. drugsComTrain_raw.tsv, drugsComTest_raw.tsv), or pass a single file"
        )
    if unsplit and warn:
        # Companions of the data such as sample_submission.csv or an unlabelled "unsupervised"
        # split: reading them into a split would be wrong, refusing the folder unhelpful.
        logger.warning(
            "%s: skipping %d file(s) whose name gives no split (train, dev/validation, test): %s",
            path, len(unsplit), ", ".join(str(f.relative_to(path)) for f in unsplit),
        )
    first_of: dict[str, Path] = {}
    for file, split in named:
        if split is None:
            continue
        first = first_of.setdefault(split, file)
        if _shard_key(path, first) != _shard_key(path, file):
            raise DataError(
                f"{path}: {first.relative_to(path)} and {file.relative_to(path)} both give the "
                f"{split} split; keep one of them in the folder or pass a single file (only "
                "numbered shards such as train-00000-of-00002 are read together)"
            )
    return [(file, split) for file, split in named if split is not None]


def _open_binary(file: Path) -> IO[bytes]:
    if file.name.lower().endswith(".gz"):
        return gzip.open(file, "rb")  # type: ignore[return-value]
    return open(file, "rb")


def _text_lines(file: Path, handle: IO[bytes]) -> Iterator[str]:
    """Decode ``handle`` line by line as UTF-8, naming the line of any invalid byte.

    Decoding per line is exact for UTF-8 (no multi-byte character contains a newline byte) and lets
    the error say where the bad byte is, which decoding the whole file would not.
    """
    number = 0
    try:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{file}, line {number}: not UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1}); re-encode the file as UTF-8"
                ) from None
            if number == 1 and line.startswith("\ufeff"):  # a BOM, as Excel writes
                line = line[1:]
            yield line
    except (OSError, EOFError) as err:  # truncated or corrupt gzip stream
        raise DataError(f"{file}, line {number + 1}: cannot read ({err})") from None


# ---------------------------------------------------------------------------------------------------
# CSV (Zhang et al. and with a header)


def _csv_rows(file: Path, handle: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, fields)`` for each non-blank CSV record of ``file``."""
    delimiter = "\t" if file.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    reader = csv.reader(_text_lines(file, handle), delimiter=delimiter)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"{file}, line {start}: malformed CSV ({err})") from None
        if fields:  # csv yields [] for a blank line
            yield start, fields


def _looks_like_zhang(file: Path, columns: _Columns) -> bool:
    """A headerless Zhang CSV: the first field is an integer and the first row names no column."""
    with _open_binary(file) as handle:
        first = next(_csv_rows(file, handle), None)
    if first is None:
        raise DataError(f"{file}: empty file")
    fields = [f.strip() for f in first[1]]
    if columns.text in fields or columns.label in fields:
        return False
    return bool(re.fullmatch(r"[+-]?\d+", fields[0]))


def _read_zhang(file: Path, split: str | None, sink: _Sink) -> None:
    expected: int | None = None
    with _open_binary(file) as handle:
        for line, fields in _csv_rows(file, handle):
            if expected is None:
                if len(fields) not in _ZHANG_FIELDS:
                    raise DataError(
                        f"{file}, line {line}: expected 2, 3 or 4 fields (label,[title,]text), "
                        f"got {len(fields)}"
                    )
                expected = len(fields)
            elif len(fields) != expected:
                raise DataError(
                    f"{file}, line {line}: expected {expected} fields like the first row, "
                    f"got {len(fields)}"
                )
            where = f"{file}, line {line}"
            if not re.fullmatch(r"\s*[+-]?\d+\s*", fields[0]):
                raise DataError(
                    f"{where}: label {fields[0]!r} is not an integer (Zhang et al. CSVs start "
                    "each row with the class number)"
                )
            # The Zhang et al. files store line breaks inside a field as the two characters "\n".
            parts = (f.replace("\\n", "\n").strip() for f in fields[1:])
            text = "\n".join(p for p in parts if p)
            sink.add(text, fields[0], sink.next_row(split), split, where)


def _read_csv(file: Path, split: str | None, columns: _Columns, sink: _Sink) -> None:
    with _open_binary(file) as handle:
        rows = _csv_rows(file, handle)
        header_row = next(rows, None)
        if header_row is None:
            raise DataError(f"{file}: empty file")
        header = [h.strip() for h in header_row[1]]
        index = {name: i for i, name in enumerate(header)}
        id_name = columns.id_in(index)
        text_i = _column_index(file, index, columns.text, "text")
        label_i = _column_index(file, index, columns.label, "label")
        id_i = None if id_name is None else _column_index(file, index, id_name, "id")
        split_i = index.get("split")
        for line, fields in rows:
            if len(fields) != len(header):
                raise DataError(
                    f"{file}, line {line}: expected {len(header)} fields like the header, "
                    f"got {len(fields)}"
                )
            where = f"{file}, line {line}"
            row_split = split if split_i is None else _split_at(fields[split_i], where)
            row = sink.next_row(row_split)
            doc_id = row if id_i is None else fields[id_i]
            sink.add(fields[text_i], fields[label_i], doc_id, row_split, where)


def _column_index(file: Path, index: dict[str, int], name: str, role: str) -> int:
    if name not in index:
        raise DataError(
            f"{file}: no {role} column {name!r} (columns: {', '.join(index) or 'none'})"
        )
    return index[name]


def _split_at(value: object, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: missing split")
    try:
        return normalise_split(value)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None


# ---------------------------------------------------------------------------------------------------
# JSON lines


def _read_jsonl(file: Path, split: str | None, columns: _Columns, sink: _Sink) -> None:
    with _open_binary(file) as handle:
        for number, line in enumerate(_text_lines(file, handle), start=1):
            if not line.strip():
                continue
            where = f"{file}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                is_array = number == 1 and line.lstrip().startswith("[")
                hint = "; a JSON array is not JSON lines" if is_array else ""
                raise DataError(
                    f"{where}: invalid JSON ({err.msg} at column {err.colno}){hint}"
                ) from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for name, role in ((columns.text, "text"), (columns.label, "label")):
                if name not in record:
                    raise DataError(f"{where}: no {role} field {name!r}")
            id_name = columns.id_in(record)
            if id_name is not None and id_name not in record:
                raise DataError(f"{where}: no id field {id_name!r}")
            row_split = split if "split" not in record else _split_at(record["split"], where)
            row = sink.next_row(row_split)
            doc_id = row if id_name is None else record[id_name]
            sink.add(record[columns.text], record[columns.label], doc_id, row_split, where)


# ---------------------------------------------------------------------------------------------------
# Parquet and Hugging Face save_to_disk (Arrow streams)


def _read_table_batches(
    file: Path,
    split: str | None,
    columns: _Columns,
    sink: _Sink,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    class_names: list[str] | None = None,
) -> None:
    """Feed record batches (from Parquet or Arrow) to ``sink``; rows are numbered from 1 in messages."""
    names = set(schema.names)
    listed = ", ".join(schema.names)
    for name, role in ((columns.text, "text"), (columns.label, "label")):
        if name not in names:
            raise DataError(f"{file}: no {role} column {name!r} (columns: {listed})")
    id_name = columns.id_in(names)
    if id_name is not None and id_name not in names:
        raise DataError(f"{file}: no id column {id_name!r} (columns: {listed})")
    has_split = "split" in names
    row = 0
    for batch in batches:
        texts = batch.column(columns.text).to_pylist()
        labels = batch.column(columns.label).to_pylist()
        ids = batch.column(id_name).to_pylist() if id_name is not None else None
        splits = batch.column("split").to_pylist() if has_split else None
        for i, text in enumerate(texts):
            row += 1
            where = f"{file}, row {row}"
            row_split = split if splits is None else _split_at(splits[i], where)
            label = labels[i]
            if class_names is not None:
                label = _class_name(label, class_names, where)
            row_number = sink.next_row(row_split)
            doc_id = row_number if ids is None else ids[i]
            sink.add(text, label, doc_id, row_split, where)


def _class_name(value: object, names: list[str], where: str) -> str:
    """A ``ClassLabel`` id to its name (``-1`` is Hugging Face's "no label")."""
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    if value == -1:
        raise DataError(f"{where}: label -1 (no label; unlabelled splits cannot be used)")
    raise DataError(f"{where}: label {value!r} is not a class id 0..{len(names) - 1}")


def _read_parquet(file: Path, split: str | None, columns: _Columns, sink: _Sink) -> None:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable Parquet file ({err})") from None
    schema = parquet.schema_arrow
    wanted = [c for c in (columns.text, columns.label, columns.id_in(schema.names), "split")
              if c is not None and c in schema.names]
    try:
        _read_table_batches(
            file, split, columns, sink, schema, parquet.iter_batches(columns=wanted)
        )
    except pa.ArrowException as err:
        raise DataError(f"{file}: cannot read Parquet data ({err})") from None


def _read_hf_disk(path: Path, columns: _Columns, sink: _Sink) -> None:
    dict_file = path / "dataset_dict.json"
    if dict_file.is_file():
        try:
            split_names = json.loads(dict_file.read_text(encoding="utf-8"))["splits"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise DataError(f"{dict_file}: not a dataset_dict.json with 'splits' ({err})") from None
        for name in split_names:
            try:
                split = normalise_split(name)
            except DataError:
                logger.warning("%s: ignoring split %r (not train, validation or test)", path, name)
                continue
            _read_hf_dataset(path / str(name), split, columns, sink)
    elif (path / "state.json").is_file():
        state = _read_json_file(path / "state.json")
        # A split folder of a DatasetDict has "_split": null; its folder name then tells the split.
        raw_split = state.get("_split")
        if not raw_split and (path.parent / "dataset_dict.json").is_file():
            raw_split = path.name
        single_split = _SPLIT_NAMES.get(str(raw_split).lower()) if raw_split else None
        _read_hf_dataset(path, single_split, columns, sink)
    else:
        raise DataError(f"{path}: not a save_to_disk folder (no dataset_dict.json or state.json)")


def _read_json_file(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{file}: invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{file}: expected a JSON object")
    return data


def _read_hf_dataset(folder: Path, split: str | None, columns: _Columns, sink: _Sink) -> None:
    """One ``Dataset`` folder: ``state.json`` lists its ``data-*.arrow`` files (Arrow IPC streams)."""
    state_file = folder / "state.json"
    if not state_file.is_file():
        raise DataError(f"{folder}: no state.json (not a save_to_disk split folder)")
    state = _read_json_file(state_file)
    try:
        files = [folder / entry["filename"] for entry in state["_data_files"]]
    except (KeyError, TypeError):
        files = sorted(folder.glob("data-*.arrow"))
    if not files:
        raise DataError(f"{folder}: no data-*.arrow files")
    info_file = folder / "dataset_info.json"
    features = _read_json_file(info_file).get("features") if info_file.is_file() else None
    for file in files:
        if not file.is_file():
            raise DataError(f"{file}: listed in {state_file} but missing")
        try:
            with pa.memory_map(str(file)) as source:
                reader = ipc.open_stream(source)
                feats = features if features is not None else _schema_features(reader.schema)
                class_names = _class_label_names(feats, columns.label)
                _read_table_batches(file, split, columns, sink, reader.schema, reader, class_names)
        except pa.ArrowException as err:
            raise DataError(f"{file}: not a readable Arrow stream ({err})") from None


def _schema_features(schema: pa.Schema) -> Any:
    """Features from the ``huggingface`` schema metadata, when dataset_info.json is missing."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        return json.loads(meta)["info"]["features"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def _class_label_names(features: Any, column: str) -> list[str] | None:
    """Class names when ``column`` is a ``ClassLabel`` feature (its values are ids), else None."""
    if not isinstance(features, dict):
        return None
    feature = features.get(column)
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
        names = feature.get("names")
        if isinstance(names, list):
            return [str(n) for n in names]
    return None


# ---------------------------------------------------------------------------------------------------
# aclImdb folders


def _aclimdb_root(path: Path) -> Path | None:
    """The folder holding ``train``/``test`` (or ``pos``/``neg`` directly), or None."""
    for candidate in (path, path / "aclImdb"):
        if any((candidate / s / lab).is_dir() for s in ("train", "test") for lab in ("pos", "neg")):
            return candidate
    if (path / "pos").is_dir() or (path / "neg").is_dir():
        return path
    return None


def _is_aclimdb(path: Path) -> bool:
    """An aclImdb layout whose pos/neg folders hold ``ID_RATING.txt`` reviews.

    One matching name is enough (so a stray file is reported by the reader, not missed by
    detection); a real aclImdb folder answers at its first file.
    """
    root = _aclimdb_root(path)
    if root is None:
        return False
    label_dirs = [root / p for p in ("pos", "neg")]
    label_dirs += [root / s / p for s in ("train", "test") for p in ("pos", "neg")]
    return any(
        _ACLIMDB_NAME_RE.match(f.name) is not None
        for d in label_dirs if d.is_dir()
        for f in d.iterdir()
    )


def _read_aclimdb(path: Path, label_column: str | None, sink: _Sink) -> None:
    if label_column not in (None, "label", "rating"):
        raise DataError(
            f"{path}: aclimdb labels are 'label' (pos/neg) or 'rating', not {label_column!r}"
        )
    use_rating = label_column == "rating"
    root = _aclimdb_root(path)
    if root is None:
        raise DataError(f"{path}: not an aclImdb folder (expected train/ and test/ with pos/ and neg/)")
    if (root / "pos").is_dir() or (root / "neg").is_dir():
        # A single split folder, e.g. aclImdb/test.
        folders: list[tuple[str | None, Path]] = [(_SPLIT_NAMES.get(root.name.lower()), root)]
    else:
        folders = [(s, root / s) for s in ("train", "test") if (root / s).is_dir()]
    for split, folder in folders:
        for polarity in ("neg", "pos"):
            sub = folder / polarity
            if not sub.is_dir():
                continue
            entries = []
            for file in sub.iterdir():
                if not file.name.endswith(".txt"):
                    continue
                match = _ACLIMDB_NAME_RE.match(file.name)
                if match is None:
                    raise DataError(
                        f"{file}: file name is not ID_RATING.txt (for other files in one folder "
                        "per label, use --format folders)"
                    )
                entries.append((int(match.group(1)), match.group(2), file))
            entries.sort()
            for _, rating, file in entries:
                try:
                    text = file.read_bytes().decode("utf-8")
                except UnicodeDecodeError as err:
                    line = file.read_bytes()[: err.start].count(b"\n") + 1
                    raise DataError(f"{file}, line {line}: not UTF-8; re-encode the file") from None
                label = str(int(rating)) if use_rating else polarity
                # The id keeps the folder path so it says where the review is, e.g. train/pos/12_8.
                doc_id = f"{polarity}/{file.stem}"
                sink.add(text, label, doc_id, split, str(file))


# ---------------------------------------------------------------------------------------------------
# One folder per label, one text file per document (20 Newsgroups, scikit-learn's load_files)


def _document_files(folder: Path) -> list[Path]:
    """The non-hidden files of ``folder`` (.DS_Store and editor files are skipped), in natural order.

    Natural order (``2`` before ``10``) only makes the order readable; splits do not depend on it.
    """
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _natural_key(path: Path) -> list[int | str]:
    # re.split with a group alternates text and digit runs, so positions never compare int to str.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _label_folder_roots(path: Path) -> list[tuple[str | None, Path]] | None:
    """The folders holding one folder per label, each with its split; None if not such a layout.

    When sub-folders of ``path`` name a split (``train``, ``20news-bydate-test``) and hold folders,
    those are the label roots; otherwise ``path`` itself is, if a sub-folder holds files, and its own
    name gives the split (``20news-bydate-train`` alone is the train split; a scikit-learn
    ``load_files`` root normally names none).

    Raises:
        DataError: a folder name names two splits, or two folders name the same split.
    """
    subdirs = _subdirs(path)
    split_roots: dict[str, Path] = {}
    for sub in subdirs:
        if not _subdirs(sub):
            continue
        split = split_in_name(sub)
        if split is None:
            continue
        if split in split_roots:
            raise DataError(
                f"{path}: folders {split_roots[split].name} and {sub.name} both give the {split} "
                "split; keep one of them or point at one"
            )
        split_roots[split] = sub
    if split_roots:
        order = ("train", "dev", "test")
        return [(split, split_roots[split]) for split in order if split in split_roots]
    if any(_has_document_file(sub) for sub in subdirs):
        return [(split_in_name(path.resolve()), path)]
    return None


def _has_document_file(folder: Path) -> bool:
    return any(p.is_file() and not p.name.startswith(".") for p in folder.iterdir())


def _read_text_file(file: Path) -> str:
    """A document file's text: UTF-8, else Latin-1.

    20 Newsgroups posts (1990s Usenet) are mostly ASCII with some Latin-1 bytes and are no valid
    UTF-8; Latin-1 maps every byte to a character, so such a file always reads. A NUL byte means a
    binary file (or UTF-16), which Latin-1 would turn into garbage, so that is refused.
    """
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise DataError(f"{file}: cannot read ({err.strerror})") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{file}: not a text file (NUL byte at offset {nul}); remove it from "
            "the label folder or re-encode it as UTF-8"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.removeprefix("\ufeff")  # a BOM, as Windows editors write


def _read_folders(
    path: Path, text_column: str | None, label_column: str | None, sink: _Sink
) -> None:
    if not path.is_dir():
        raise DataError(f"{path}: the folders format reads a folder, not a file")
    if text_column not in (None, "text") or label_column not in (None, "label"):
        raise DataError(
            f"{path}: the folders format takes labels from folder names and text from whole files; "
            "drop --text-column/--label-column"
        )
    roots = _label_folder_roots(path)
    if roots is None:
        raise DataError(
            f"{path}: no folder per label found (expected <label>/<file>, or train/<label>/<file> "
            "and test/<label>/<file>)"
        )
    if roots[0][1] != path:
        ignored = sorted({sub.name for sub in _subdirs(path)} - {root.name for _, root in roots})
        if ignored:
            logger.warning(
                "%s: ignoring folder(s) that name no split or hold no label folders: %s",
                path, ", ".join(ignored),
            )
    elif roots[0][0] is not None:
        logger.info("%s: all documents are in the %s split (from the folder name)", path, roots[0][0])
    for split, root in roots:
        for label_dir in _subdirs(root):
            for file in _document_files(label_dir):
                # The id keeps the label folder (file names repeat across newsgroups), e.g.
                # train/sci.space/61116 once the split is added.
                doc_id = f"{label_dir.name}/{file.name}"
                sink.add(_read_text_file(file), label_dir.name, doc_id, split, str(file))
