"""CSV files: Zhang et al. (2015) CSVs without a header, and CSV/TSV files with a header.

- ``zhang-csv``: no header; ``label,text``, ``label,title,text`` or Yahoo Answers'
  ``label,question_title,question_content,best_answer``, labels ``1..K``. The text fields are joined
  with line breaks; ids are row numbers within the split.
- ``csv``: a header row naming the text, label and optional id columns, and a ``split`` column if
  present. ``.tsv`` (and ``.tsv.gz``) files are tab-separated; ``.gz`` files are gunzipped.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from attnaudit.data.loaders.common import Columns, Sink, missing_column, split_at
from attnaudit.data.loaders.files import open_binary, text_lines
from attnaudit.data.types import DataError

_ZHANG_FIELDS = (2, 3, 4)  # label,text | label,title,text | yahoo: label,title,content,answer

# Python's csv module refuses fields over 128 KiB by default; some reviews and answers are longer.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _csv_rows(file: Path, handle: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, fields)`` for each non-blank CSV record of ``file``."""
    delimiter = "\t" if file.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    reader = csv.reader(text_lines(file, handle), delimiter=delimiter)
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


def looks_like_zhang(file: Path, columns: Columns) -> bool:
    """A headerless Zhang CSV: the first field is an integer and the first row names no column."""
    with open_binary(file) as handle:
        first = next(_csv_rows(file, handle), None)
    if first is None:
        raise DataError(f"{file}: empty file")
    fields = [f.strip() for f in first[1]]
    if columns.text in fields or columns.label in fields:
        return False
    return bool(re.fullmatch(r"[+-]?\d+", fields[0]))


def read_zhang(file: Path, split: str | None, columns: Columns, sink: Sink) -> None:
    """Read one Zhang et al. CSV; it has no named columns, so ``columns`` is unused."""
    expected: int | None = None
    with open_binary(file) as handle:
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


def read_csv(file: Path, split: str | None, columns: Columns, sink: Sink) -> None:
    with open_binary(file) as handle:
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
            row_split = split if split_i is None else split_at(fields[split_i], where)
            row = sink.next_row(row_split)
            doc_id = row if id_i is None else fields[id_i]
            sink.add(fields[text_i], fields[label_i], doc_id, row_split, where)


def _column_index(file: Path, index: dict[str, int], name: str, role: str) -> int:
    if name not in index:
        raise missing_column(str(file), role, name, list(index))
    return index[name]

