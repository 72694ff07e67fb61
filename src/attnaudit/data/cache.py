"""A cache of prepared data on disk, keyed by content, so that a second train/evaluate/audit on the
same data prepares nothing.

An entry is a folder ``<root>/<key>/`` holding the encoded splits in flat form as ``.npy`` arrays
(token ids, token-string indices, sentence lengths, sentences per document, labels; loaded
memory-mapped), the distinct token strings as one text file, and ``meta.json`` (vocabulary, label
names, document ids, warnings to replay). The key is a SHA-256 over everything that decides the
result: the data's content hash, its resolved path, the data settings (with a Hugging Face tokenizer:
a hash of its files and of the transformers and tokenizers versions, see
:func:`~attnaudit.data.hf_tokenizer.tokenizer_digest`), a given vocabulary, label names and splits,
the source of the preparation code, and :data:`CACHE_FORMAT`.

Entries are written to a temporary folder and renamed into place, so a crash never leaves a
half-written entry under a key; an entry that cannot be read is logged, removed and rebuilt.

Location: ``$ATTNAUDIT_CACHE`` (``off``, ``0``, ``false``, ``none`` or empty: no cache), else
``$XDG_CACHE_HOME/attnaudit/prepared`` or ``~/.cache/attnaudit/prepared``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Bumped whenever the layout of an entry changes; part of every key.
CACHE_FORMAT = 1

_OFF = {"", "0", "off", "false", "no", "none"}
_CHUNK = 1 << 20  # big files are hashed 1 MiB at a time, never read whole into memory
_STALE_TMP_S = 24 * 3600  # temporary folders older than this were left by a crash


def cache_root() -> Path | None:
    """The cache folder, or None when ``ATTNAUDIT_CACHE`` turns the cache off."""
    value = os.environ.get("ATTNAUDIT_CACHE")
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory to be found (a bare service account)
            return None
    return Path(base) / "attnaudit" / "prepared"


# ---------------------------------------------------------------------------------------------------
# Keys


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _memo_path(root: Path, stamp: str) -> Path:
    return root / "hashes" / hashlib.sha256(stamp.encode("utf-8")).hexdigest()


def _walk_files(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()  # a stable order: the listing is hashed
        for name in sorted(filenames):
            full = Path(dirpath) / name
            yield full.relative_to(folder).as_posix(), full.stat()


def data_digest(path: Path, root: Path | None) -> str:
    """SHA-256 of a data file's content, or of a folder's file names and contents.

    The result is remembered under ``root/hashes`` by path, size and modification time (for a
    folder: of every file in it), so an unchanged 25 MB file or 100k-file folder is read once, not
    on every run; any change to a file changes its size or time and so forces a new hash.
    """
    path = path.resolve()
    if path.is_dir():
        files = list(_walk_files(path))
        stamp = json.dumps(
            ["dir", str(path), [(name, st.st_size, st.st_mtime_ns) for name, st in files]]
        )
    else:
        st = path.stat()
        files = []
        stamp = json.dumps(["file", str(path), st.st_size, st.st_mtime_ns])
    memo = _memo_path(root, stamp) if root is not None else None
    if memo is not None:
        try:
            known = memo.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            known = ""
        if len(known) == 64:
            return known
    if path.is_dir():
        digest = hashlib.sha256()
        for name, _ in files:
            digest.update(f"{name}\0{_sha256_file(path / name)}\n".encode())
        value = digest.hexdigest()
    else:
        value = _sha256_file(path)
    if memo is not None:
        try:
            _write_atomic(memo, value.encode("ascii"))
        except OSError as err:  # a read-only cache still works, it only hashes again next time
            logger.debug("could not remember the hash of %s: %s", path, err)
    return value


@functools.cache
def code_digest() -> str:
    """SHA-256 of the preparation code (the data modules' source) and blingfire's version.

    Part of every key, so that a change to tokenising, splitting or loading never serves results of
    the old code from the cache.
    """
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("batching.py", "cache.py", "hf_tokenizer.py", "loaders.py", "prepare.py",
                 "splits.py", "text.py", "types.py", "vocab.py"):
        source = here / name
        digest.update(name.encode())
        digest.update(source.read_bytes() if source.is_file() else b"missing")
    try:
        digest.update(metadata.version("blingfire").encode())
    except metadata.PackageNotFoundError:
        digest.update(b"blingfire ?")
    return digest.hexdigest()


def cache_key(material: Mapping[str, Any]) -> str:
    """SHA-256 of ``material`` (JSON-serialisable) together with the code digest and format."""
    payload = {"format": CACHE_FORMAT, "code": code_digest(), **material}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Entries


IntArray = np.ndarray[Any, np.dtype[Any]]


@dataclass
class FlatSplit:
    """One split's encoded documents in flat form (what an entry stores per split).

    Attributes:
        doc_ids, labels: per document.
        document_sentences: sentences per document (all > 0).
        sentence_lengths: tokens per sentence.
        ids: token ids, sentence after sentence.
        token_index: per token, its string's position in :attr:`Entry.strings`.
    """

    doc_ids: list[str]
    labels: IntArray
    document_sentences: IntArray
    sentence_lengths: IntArray
    ids: IntArray
    token_index: IntArray


@dataclass
class Entry:
    """What a cache entry holds: the splits plus the fields of ``meta.json``."""

    splits: dict[str, FlatSplit]
    #: the distinct token strings that :attr:`FlatSplit.token_index` indexes
    strings: list[str]
    vocab: list[str]
    label_names: list[str]
    #: ``(logger name, level, message)`` of the warnings preparing logged, replayed on a hit so
    #: that a cached run warns exactly like a fresh one.
    warnings: list[tuple[str, int, str]]
    #: :attr:`Vocab.specials <attnaudit.data.vocab.Vocab.specials>` of the vocabulary (a
    #: tokenizer's unknown token); empty for a word vocabulary, whose entries then hold no such key.
    vocab_specials: dict[str, str] = field(default_factory=dict)


_ARRAYS = ("labels", "document_sentences", "sentence_lengths", "ids", "token_index")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_tmp(root: Path) -> None:
    now = time.time()
    for tmp in root.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
        except OSError:
            pass


def save_entry(root: Path, key: str, entry: Entry) -> Path:
    """Write ``entry`` under ``root/key`` atomically; returns the entry's folder.

    Token strings are stored once each (``strings.txt``, one per line: no token may contain a line
    break, see :func:`storable_strings`) with an int32 index per token (``token_index``), smaller
    than the strings themselves and loaded without parsing.
    """
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    final = root / key
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{key[:16]}-"))
    try:
        dtypes = {"labels": np.int64, "document_sentences": np.int32, "sentence_lengths": np.int32,
                  "ids": np.int32, "token_index": np.int32}
        for name, split in entry.splits.items():
            for array_name, dtype in dtypes.items():
                values = np.ascontiguousarray(getattr(split, array_name), dtype=dtype)
                np.save(tmp / f"{name}.{array_name}.npy", values, allow_pickle=False)
        (tmp / "strings.txt").write_text("\n".join(entry.strings), encoding="utf-8")
        meta = {
            "format": CACHE_FORMAT,
            "key": key,
            "vocab": entry.vocab,
            "label_names": entry.label_names,
            "doc_ids": {name: split.doc_ids for name, split in entry.splits.items()},
            "num_strings": len(entry.strings),
            "warnings": entry.warnings,
            **({"vocab_specials": entry.vocab_specials} if entry.vocab_specials else {}),
        }
        # meta.json last: an entry folder without it is never complete, even if renamed by hand.
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        try:
            os.replace(tmp, final)
        except OSError:
            # Another process stored the same key first (rename onto a non-empty folder fails):
            # its entry is as good as ours.
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def storable_strings(strings: Sequence[str]) -> bool:
    """Whether ``strings`` can be stored in an entry's ``strings.txt``, one per line.

    The word tokenizer's tokens never hold whitespace; a Hugging Face tokenizer's vocabulary may
    hold a token with a line break (``"\\r"`` too: reading the file back translates it), which
    would shift every later line, so such a result is not stored.
    """
    return not any("\n" in s or "\r" in s for s in strings)


class CorruptEntry(Exception):
    """A cache entry that exists but cannot be read back consistently."""


def load_entry(root: Path, key: str, split_names: Sequence[str]) -> Entry | None:
    """Read the entry ``root/key``; None when there is none.

    Raises:
        CorruptEntry: the entry is unreadable, of another format, or inconsistent.
    """
    folder = root / key
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            raise CorruptEntry("format or key does not match")
        strings_text = (folder / "strings.txt").read_text(encoding="utf-8")
        strings = strings_text.split("\n") if meta["num_strings"] else []
        if len(strings) != meta["num_strings"]:
            raise CorruptEntry("token strings are incomplete")
        splits = {}
        for name in split_names:
            # Memory-mapped: the OS pages the arrays in as they are read, no copy is made here.
            arrays = {
                array_name: np.load(folder / f"{name}.{array_name}.npy", mmap_mode="r",
                                    allow_pickle=False)
                for array_name in _ARRAYS
            }
            doc_ids = meta["doc_ids"][name]
            counts, lengths = arrays["document_sentences"], arrays["sentence_lengths"]
            ids, index = arrays["ids"], arrays["token_index"]
            if not (len(doc_ids) == len(arrays["labels"]) == len(counts)
                    and int(counts.sum()) == len(lengths)
                    and int(lengths.sum()) == len(ids) == len(index)
                    and (len(index) == 0 or (int(index.min()) >= 0
                                             and int(index.max()) < len(strings)
                                             and int(ids.min()) >= 0
                                             and int(ids.max()) < len(meta["vocab"])))):
                raise CorruptEntry(f"split {name!r}: array sizes do not match")
            splits[name] = FlatSplit(
                doc_ids=list(doc_ids),
                labels=arrays["labels"],
                document_sentences=counts,
                sentence_lengths=lengths,
                ids=ids,
                token_index=index,
            )
        warnings = [(str(n), int(level), str(message)) for n, level, message in meta["warnings"]]
        specials = {str(k): str(v) for k, v in meta.get("vocab_specials", {}).items()}
        return Entry(splits=splits, strings=strings, vocab=list(meta["vocab"]),
                     label_names=list(meta["label_names"]), warnings=warnings,
                     vocab_specials=specials)
    except CorruptEntry:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError) as err:
        # json and numpy report truncated or garbled files as ValueError (or EOFError); missing
        # files as OSError; a meta.json of the wrong shape as KeyError/TypeError.
        raise CorruptEntry(f"{type(err).__name__}: {err}") from err


def remove_entry(root: Path, key: str) -> None:
    """Delete the entry ``root/key`` (best effort: a failure is only logged)."""
    folder = root / key
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.warning("could not remove the prepared-data cache entry %s: %s", folder, err)
