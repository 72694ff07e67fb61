"""The aclImdb folders: ``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt`` (``unsup`` is ignored).

Also a single split folder (``aclImdb/test``) or the folder above ``aclImdb``. Labels are
``pos``/``neg``, or the star rating with ``label_column="rating"``; ids keep the label folder
(``pos/12_8``, then ``train/pos/12_8`` with the split).
"""

from __future__ import annotations

import re
from pathlib import Path

from attnaudit.data.loaders.common import SPLIT_NAMES, Columns, Options, Sink
from attnaudit.data.types import DataError

_ACLIMDB_NAME_RE = re.compile(r"^(\d+)_(\d+)\.txt$")


def detect(path: Path, columns: Columns) -> str | None:
    """``"aclimdb"`` for a folder in the aclImdb layout (see :func:`_is_aclimdb`)."""
    return "aclimdb" if path.is_dir() and _is_aclimdb(path) else None


def read(path: Path, options: Options, sink: Sink) -> None:
    _read_aclimdb(path, options.label_column, sink)


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


def _read_aclimdb(path: Path, label_column: str | None, sink: Sink) -> None:
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
        folders: list[tuple[str | None, Path]] = [(SPLIT_NAMES.get(root.name.lower()), root)]
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

