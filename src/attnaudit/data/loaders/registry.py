"""The registry of formats (name -> reader), format detection, and :func:`load_documents`.

Reads no layout itself: it picks the reader of the format asked for, or of the one detected.
Adding a format: write one module with a reader (and, to detect it, a detector), then add one line to
:data:`READERS` (and one to :data:`DETECTORS`).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from attnaudit.data.loaders import aclimdb, csv_files, folders, hf_disk, jsonl, parquet
from attnaudit.data.loaders.common import Columns, Detector, Options, Reader, Sink, logger
from attnaudit.data.loaders.files import (
    EXTENSIONS,
    data_files,
    files_with,
    kind_of,
    per_file,
    subfolders,
)
from attnaudit.data.types import DataError, Document

#: Format name -> reader, in the order formats are listed in messages (after ``"auto"``).
READERS: dict[str, Reader] = {
    "zhang-csv": per_file("csv", csv_files.read_zhang),
    "aclimdb": aclimdb.read,
    "folders": folders.read,
    "hf-disk": hf_disk.read,
    "parquet": per_file("parquet", parquet.read_parquet),
    "jsonl": per_file("jsonl", jsonl.read_jsonl),
    "csv": per_file("csv", csv_files.read_csv),
}

FORMATS = ("auto", *READERS)


def _detect_data_files(path: Path, columns: Columns) -> str | None:
    """``parquet``, ``jsonl``, ``csv`` or ``zhang-csv`` for a data file or a folder of them, else None.

    A folder's files may be one level down. A CSV is told from a Zhang CSV by its first row (see
    :func:`detect_format`).

    Raises:
        DataError: a folder mixing several file formats.
    """
    if path.is_dir():
        kinds = {kind for kind in EXTENSIONS if files_with(path, kind)}
        if not kinds:
            # Hugging Face hub exports keep their files one level down (e.g. data/train-*.parquet).
            kinds = {kind for kind in EXTENSIONS for sub in subfolders(path) if files_with(sub, kind)}
        if len(kinds) > 1:
            raise DataError(
                f"{path}: folder holds {', '.join(sorted(kinds))} files; pass the format explicitly"
            )
        if not kinds:
            return None
        kind = kinds.pop()
        if kind == "csv":
            first = data_files(path, "csv", warn=False)[0][0]
            return "zhang-csv" if csv_files.looks_like_zhang(first, columns) else "csv"
        return kind
    file_kind = kind_of(path)
    if file_kind == "csv":
        return "zhang-csv" if csv_files.looks_like_zhang(path, columns) else "csv"
    return file_kind


#: Detectors in the order :func:`detect_format` tries them; the first to name a format wins.
DETECTORS: tuple[Detector, ...] = (
    hf_disk.detect,
    # Before the folder-per-label layout, which aclImdb also is: its ID_RATING.txt names (and the
    # rating label they allow) make it aclimdb. Other pos/neg folders (e.g. Pang & Lee's
    # txt_sentoken/{pos,neg}/cv000_29416.txt) fall through to "folders".
    aclimdb.detect,
    _detect_data_files,
    # Last: a folder per label can hold anything, so any data files found above win.
    folders.detect,
)


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
        path: a file or folder (see :mod:`attnaudit.data.loaders` for the layouts).
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
    columns = Columns(
        text=text_column or "text",
        label=label_column or "label",
        id=id_column,
    )
    options = Options(columns, text_column=text_column, label_column=label_column)
    if fmt == "auto":
        fmt = detect_format(path, text_column=columns.text, label_column=columns.label)
        logger.info("%s: reading as %s", path, fmt)
    sink = Sink(labels, on_empty)
    READERS[fmt](path, options, sink)
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
    columns = Columns(text=text_column, label=label_column)
    for detect in DETECTORS:
        fmt = detect(path, columns)
        if fmt is not None:
            return fmt
    if path.is_dir():
        raise DataError(
            f"{path}: no data found (expected dataset_dict.json/state.json, an aclImdb layout, "
            "one folder per label with a text file per document, or .csv/.tsv/.jsonl/.parquet "
            "files)"
        )
    raise DataError(
        f"{path}: cannot tell the format from the extension; pass one of {', '.join(FORMATS[1:])}"
    )
