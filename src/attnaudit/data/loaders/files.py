"""Data files and the folders holding them: extensions, split words in names, shards, decoding.

Reads no layout itself; the ``parquet``, ``jsonl``, ``csv`` and ``zhang-csv`` readers get their files
from :func:`data_files`: a single file, or a folder of files whose split is a split word anywhere in
the file name (``train-00000-of-00002.parquet``, ``drugsComTrain_raw.tsv``) or else in the name of the
sub-folder holding it (``default/train/0000.parquet``).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from attnaudit.data.loaders.common import (
    SPLIT_NAMES,
    FileReader,
    Options,
    Reader,
    Sink,
    logger,
)
from attnaudit.data.types import DataError

EXTENSIONS = {
    "parquet": (".parquet",),
    "jsonl": (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz"),
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz"),
}
# The words of a file or folder name: runs of letters, also cut where camelCase starts a new word
# ("drugsComTrain_raw" -> drugs, Com, Train, raw; "IMDBTest" -> IMDB, Test). A split word must be a
# whole word so that "latest.csv", "contest/" or "restrained.tsv" do not name a split.
_NAME_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# Runs of digits and hex letters holding a digit: shard numbers and the hashes Hugging Face appends
# (train-00000-of-00002-5b4a1c9e.parquet), masked to tell shards of one split from distinct files.
_SHARD_PART_RE = re.compile(r"[0-9a-f]*[0-9][0-9a-f]*")


def kind_of(file: Path) -> str | None:
    name = file.name.lower()
    for kind, exts in EXTENSIONS.items():
        if name.endswith(exts):
            return kind
    return None


def files_with(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and kind_of(p) == kind)


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_in_name(path: Path) -> str | None:
    """The split a file or folder name gives (``"train"``, ``"dev"``, ``"test"``), or None.

    A split word (see :data:`SPLIT_NAMES`) counts anywhere in the name, in any case, when it is a
    word of its own: ``20news-bydate-train``, ``drugsComTrain_raw.tsv``, ``TEST.csv``, ``train2``.

    Raises:
        DataError: the name holds words of two different splits (e.g. ``train_test.csv``).
    """
    words = {w.lower() for w in _NAME_WORD_RE.findall(path.name)}
    found = sorted({SPLIT_NAMES[w] for w in words if w in SPLIT_NAMES})
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


def data_files(path: Path, kind: str, *, warn: bool = True) -> list[tuple[Path, str | None]]:
    """The files to read with their split: a single file has none, a folder's come from the names.

    ``warn=False`` keeps quiet about skipped files (format detection looks before the reader does).

    Raises:
        DataError: no such files; no file names a split; a name names two splits; or two files
            that are not numbered shards of one split both give that split (reading both would
            mix, e.g., a full and a sample training set).
    """
    if path.is_file():
        return [(path, None)]
    files = files_with(path, kind)
    if not files:
        files = [f for sub in subfolders(path) for f in files_with(sub, kind)]
    if not files:
        exts = "/".join(EXTENSIONS[kind])
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


def open_binary(file: Path) -> IO[bytes]:
    if file.name.lower().endswith(".gz"):
        return gzip.open(file, "rb")  # type: ignore[return-value]
    return open(file, "rb")


def text_lines(file: Path, handle: IO[bytes]) -> Iterator[str]:
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


def per_file(kind: str, read_file: FileReader) -> Reader:
    """A :data:`Reader` that reads each of :func:`data_files`' files of ``kind`` with ``read_file``."""

    def read(path: Path, options: Options, sink: Sink) -> None:
        for file, split in data_files(path, kind):
            read_file(file, split, options.columns, sink)

    return read
