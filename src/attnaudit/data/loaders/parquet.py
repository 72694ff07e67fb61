"""Parquet files: named text, label and optional id columns, and a ``split`` column if present.

Also holds :func:`read_table_batches`, which turns Arrow record batches into records for both
Parquet and Hugging Face ``save_to_disk`` folders (see :mod:`attnaudit.data.loaders.hf_disk`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from attnaudit.data.loaders.common import Columns, Sink, missing_column, split_at
from attnaudit.data.types import DataError


def read_table_batches(
    file: Path,
    split: str | None,
    columns: Columns,
    sink: Sink,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    class_names: list[str] | None = None,
) -> None:
    """Feed record batches (from Parquet or Arrow) to ``sink``; rows are numbered from 1 in messages."""
    names = set(schema.names)
    for name, role in ((columns.text, "text"), (columns.label, "label")):
        if name not in names:
            raise missing_column(str(file), role, name, schema.names)
    id_name = columns.id_in(names)
    if id_name is not None and id_name not in names:
        raise missing_column(str(file), "id", id_name, schema.names)
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
            row_split = split if splits is None else split_at(splits[i], where)
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


def read_parquet(file: Path, split: str | None, columns: Columns, sink: Sink) -> None:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{file}: not a readable Parquet file ({err})") from None
    schema = parquet.schema_arrow
    wanted = [c for c in (columns.text, columns.label, columns.id_in(schema.names), "split")
              if c is not None and c in schema.names]
    try:
        read_table_batches(
            file, split, columns, sink, schema, parquet.iter_batches(columns=wanted)
        )
    except pa.ArrowException as err:
        raise DataError(f"{file}: cannot read Parquet data ({err})") from None

