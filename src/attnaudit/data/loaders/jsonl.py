"""JSON lines: one JSON object per line (``.jsonl``, ``.ndjson``, JSON-lines ``.json``, also gzipped).

Each object holds the text, label and optional id fields, and a ``split`` field if present; blank
lines are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from attnaudit.data.loaders.common import Columns, Sink, missing_column, split_at
from attnaudit.data.loaders.files import open_binary, text_lines
from attnaudit.data.types import DataError
from attnaudit.errors import json_problem


def read_jsonl(file: Path, split: str | None, columns: Columns, sink: Sink) -> None:
    with open_binary(file) as handle:
        for number, line in enumerate(text_lines(file, handle), start=1):
            if not line.strip():
                continue
            where = f"{file}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                is_array = number == 1 and line.lstrip().startswith("[")
                hint = "; a JSON array is not JSON lines" if is_array else ""
                raise DataError(
                    f"{where}: invalid JSON ({json_problem(err, with_line=False)}){hint}"
                ) from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for name, role in ((columns.text, "text"), (columns.label, "label")):
                if name not in record:
                    raise missing_column(where, role, name, list(record), kind="field")
            id_name = columns.id_in(record)
            if id_name is not None and id_name not in record:
                raise missing_column(where, "id", id_name, list(record), kind="field")
            row_split = split if "split" not in record else split_at(record["split"], where)
            row = sink.next_row(row_split)
            doc_id = row if id_name is None else record[id_name]
            sink.add(record[columns.text], record[columns.label], doc_id, row_split, where)
