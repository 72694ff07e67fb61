"""Hugging Face ``datasets`` folders written by ``save_to_disk``, read with pyarrow alone.

A ``DatasetDict`` folder has ``dataset_dict.json`` listing its splits, each a sub-folder; a single
``Dataset`` folder has ``state.json`` listing its ``data-*.arrow`` files (Arrow IPC streams).
``ClassLabel`` ids become their names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from attnaudit.data.loaders.common import (
    SPLIT_NAMES,
    Columns,
    Options,
    Sink,
    logger,
    normalise_split,
)
from attnaudit.data.loaders.parquet import read_table_batches
from attnaudit.data.types import DataError


def detect(path: Path, columns: Columns) -> str | None:
    """``"hf-disk"`` for a folder holding ``dataset_dict.json`` or ``state.json``."""
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        return "hf-disk"
    return None


def read(path: Path, options: Options, sink: Sink) -> None:
    _read_hf_disk(path, options.columns, sink)


def _read_hf_disk(path: Path, columns: Columns, sink: Sink) -> None:
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
        single_split = SPLIT_NAMES.get(str(raw_split).lower()) if raw_split else None
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


def _read_hf_dataset(folder: Path, split: str | None, columns: Columns, sink: Sink) -> None:
    """One ``Dataset`` folder: ``state.json`` lists its ``data-*.arrow`` files (Arrow IPC streams)."""
    state_file = folder / "state.json"
    if not state_file.is_file():
        raise DataError(f"{folder}: no state.json (not a save_to_disk split folder)")
    state = _read_json_file(state_file)
    try:
        files = [folder / entry["filename"] for entry in state["data_files"]]
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
                read_table_batches(file, split, columns, sink, reader.schema, reader, class_names)
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

