"""One folder per label holding one text file per document, the label being the folder name.

scikit-learn's ``load_files`` layout ``<root>/<label>/<file>`` (no split), or that layout inside split
folders, ``<root>/train/<label>/<file>`` or 20 Newsgroups' ``20news-bydate-train/`` and
``20news-bydate-test/`` (the split word may be anywhere in the folder name). Files need no extension;
hidden files are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from attnaudit.data.loaders.common import Columns, Options, Sink, logger
from attnaudit.data.loaders.files import split_in_name, subfolders
from attnaudit.data.types import DataError


def detect(path: Path, columns: Columns) -> str | None:
    """``"folders"`` for a folder holding one folder per label (see :func:`_label_folder_roots`)."""
    return "folders" if path.is_dir() and _label_folder_roots(path) is not None else None


def read(path: Path, options: Options, sink: Sink) -> None:
    _read_folders(path, options.text_column, options.label_column, sink)


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
    subdirs = subfolders(path)
    split_roots: dict[str, Path] = {}
    for sub in subdirs:
        if not subfolders(sub):
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
    path: Path, text_column: str | None, label_column: str | None, sink: Sink
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
        ignored = sorted({sub.name for sub in subfolders(path)} - {root.name for _, root in roots})
        if ignored:
            logger.warning(
                "%s: ignoring folder(s) that name no split or hold no label folders: %s",
                path, ", ".join(ignored),
            )
    elif roots[0][0] is not None:
        logger.info("%s: all documents are in the %s split (from the folder name)", path, roots[0][0])
    for split, root in roots:
        for label_dir in subfolders(root):
            for file in _document_files(label_dir):
                # The id keeps the label folder (file names repeat across newsgroups), e.g.
                # train/sci.space/61116 once the split is added.
                doc_id = f"{label_dir.name}/{file.name}"
                sink.add(_read_text_file(file), label_dir.name, doc_id, split, str(file))
