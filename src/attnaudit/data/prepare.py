"""One call from a data configuration to encoded train/dev/test documents, vocabulary and labels."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnaudit.config import DataConfig as _DataConfig
from attnaudit.data.batching import (
    documents_from_flat,
    label_indices,
    tokenize_texts,
    warn_dropped,
)
from attnaudit.data.cache import (
    CorruptEntry,
    Entry,
    FlatSplit,
    IntArray,
    cache_key,
    cache_root,
    data_digest,
    load_entry,
    remove_entry,
    save_entry,
    storable_strings,
)
from attnaudit.data.hf_tokenizer import load_tokenizer, resolve_tokenizer, tokenizer_digest
from attnaudit.data.loaders import load_documents
from attnaudit.data.splits import SPLITS, apply_splits, assign_splits, subsample
from attnaudit.data.types import DataError, Document, EncodedDocument
from attnaudit.data.vocab import Vocab

logger = logging.getLogger(__name__)


# The data settings are part of the one validated config tree (attnaudit.config); the data layer
# and its users import DataConfig from here, so it is re-exported under its old name.
DataConfig = _DataConfig


@dataclass
class PreparedData:
    """Encoded documents per split with the vocabulary and label names that index them.

    Attributes:
        train, dev, test: encoded documents (documents with no token after cleaning are dropped).
        vocab: built from the training split only.
        label_names: class names; ``EncodedDocument.label`` indexes this list.
        splits: the document ids of ``train``/``dev``/``test``, in the same order.
    """

    train: list[EncodedDocument]
    dev: list[EncodedDocument]
    test: list[EncodedDocument]
    vocab: Vocab
    label_names: list[str]
    splits: dict[str, list[str]]


def _label_key(label: str) -> tuple[int, float, str]:
    try:
        value = float(label)
    except ValueError:
        return (1, 0.0, label)
    return (0, value, label) if math.isfinite(value) else (1, 0.0, label)


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Distinct labels, numbers in numeric order first ("1", "2", ..., "10"), then the rest by name."""
    return sorted(set(labels), key=_label_key)


def labels_missing_from_train(
    labels_per_split: Mapping[str, Iterable[str]],
) -> dict[str, dict[str, int]]:
    """Labels of the other splits that the ``"train"`` split never has, with their document counts.

    Args:
        labels_per_split: the label of each document, per split name.

    Returns:
        ``{label: {split: number of documents}}`` for each such label, labels in
        :func:`sort_labels` order; empty when training covers every label.
    """
    in_train = set(labels_per_split.get("train", ()))
    missing: dict[str, dict[str, int]] = {}
    for split, labels in labels_per_split.items():
        if split == "train":
            continue
        for label in labels:
            if label not in in_train:
                counts = missing.setdefault(label, {})
                counts[split] = counts.get(split, 0) + 1
    return {label: missing[label] for label in sort_labels(missing)}


def _warn_labels_missing_from_train(path: Path, missing: Mapping[str, Mapping[str, int]]) -> None:
    if not missing:
        return
    described = []
    for label, counts in missing.items():
        per_split = ", ".join(f"{n} {split}" for split, n in sorted(counts.items(), key=_split_rank))
        described.append(f"{label!r} ({per_split} document(s))")
    # A warning, not an error: the rest of the data still trains and evaluates, and a rare class
    # can simply miss the training split of a small set; but those documents can only be errors.
    logger.warning(
        "%s: label(s) never seen in the training split: %s; the model can never predict them",
        path, ", ".join(described),
    )


def _split_rank(item: tuple[str, int]) -> tuple[int, str]:
    return (SPLITS.index(item[0]) if item[0] in SPLITS else len(SPLITS), item[0])


def check_tokenizer_model(config: DataConfig, *, hierarchical: bool) -> None:
    """Refuse a hierarchical model on data prepared with a Hugging Face tokenizer.

    Such data has one "sentence" per document (transformers read flat sequences), so a HAN's
    sentence-level attention would weigh a single item and its audit would mean nothing.

    Raises:
        DataError: ``hierarchical`` with ``config.tokenizer`` set.
    """
    if hierarchical and config.tokenizer is not None:
        raise DataError(
            f"a hierarchical model cannot read data prepared with tokenizer {config.tokenizer!r}: "
            "each document is one subword sequence with no sentences; use a flat model (flan, or "
            "a transformer) or leave the tokenizer out"
        )


def _resolve_path(config: DataConfig) -> Path:
    if config.path == "default":
        from attnaudit.data.default import fetch_default  # only the default set needs pip

        return fetch_default(config.data_dir)
    return Path(config.path)


class _WarningRecorder(logging.Handler):
    """Collects the warnings the data layer logs while preparing, to replay them on a cache hit.

    Only records of this thread: another thread logging at the same time is not part of this
    preparation.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append((record.name, record.levelno, record.getMessage()))


@contextlib.contextmanager
def _recording_warnings() -> Iterator[_WarningRecorder]:
    recorder = _WarningRecorder()
    root = logging.getLogger("attnaudit")
    root.addHandler(recorder)  # a handler only listens: records still propagate as before
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)


def _key_material(
    config: DataConfig,
    path: Path,
    root: Path,
    vocab: Vocab | None,
    label_names: Sequence[str] | None,
    splits: Mapping[str, Sequence[str]] | None,
    tokenizer: Path | None = None,
) -> dict[str, Any]:
    settings = config.to_dict()  # no "tokenizer" key for the word tokenizer: keys as before it
    # The resolved path stands in for these two; every other setting may change the result (a
    # setting added later that does not only costs a needless miss).
    settings.pop("path", None)
    settings.pop("data_dir", None)
    if tokenizer is not None:
        # The tokenizer's files decide its tokens, not its name: "minilm" and its folder, or two
        # copies of one tokenizer, share entries; a changed or other tokenizer never does.
        settings["tokenizer"] = tokenizer_digest(tokenizer, root)

    def digest(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    if vocab is None:
        vocab_digest = None
    else:  # a word vocabulary's digest as before; a tokenizer's also names its unknown token
        vocab_digest = digest([vocab.itos, vocab.specials] if vocab.specials else vocab.itos)
    return {
        # The path is part of the key besides the content: document ids and the replayed warnings
        # name it, and the format is detected from the file name.
        "path": str(path.resolve()),
        "data": data_digest(path, root),
        "settings": settings,
        "vocab": vocab_digest,
        "label_names": None if label_names is None else list(label_names),
        "splits": None if splits is None else digest({k: list(v) for k, v in splits.items()}),
    }


def prepare_data(
    config: DataConfig,
    *,
    vocab: Vocab | None = None,
    label_names: Sequence[str] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
    workers: int | None = None,
    cache: bool = True,
) -> PreparedData:
    """Load, split, subsample, tokenise and index the data described by ``config``.

    The result is cached on disk (see :mod:`attnaudit.data.cache`): a second call on the same data
    content, settings, vocabulary, labels and splits reads it back instead of preparing again,
    with the same documents, vocabulary, labels and splits, and the same warnings logged.

    With ``config.tokenizer`` set, a Hugging Face tokenizer makes the tokens (subwords) and the
    vocabulary is its own (see :mod:`attnaudit.data.hf_tokenizer`).

    Args:
        config: the data configuration.
        vocab: reuse this vocabulary (reloading a trained run) instead of building one from train;
            with a tokenizer it must be the tokenizer's.
        label_names: reuse these labels; data with any other label is then an error.
        splits: reuse these document ids per split (e.g. a run's saved splits) instead of
            assigning splits from the seed; no subsampling is applied on top.
        workers: processes that tokenise (None: ``$ATTNAUDIT_WORKERS`` or ``min(CPUs, 8)``); the
            result does not depend on it. Not used with a tokenizer, whose Rust backend runs its
            own threads.
        cache: False: neither read nor write the cache (also off with ``ATTNAUDIT_CACHE=off``).

    Returns:
        The encoded splits with their vocabulary, label names and document ids.

    Logs a warning naming any label of dev/test that training never has (see
    :func:`labels_missing_from_train`).

    Raises:
        DataError: bad input data (see :func:`load_documents`), unknown labels, a single class
            (unless ``label_names`` is given), no training data; with a tokenizer: no such
            tokenizer (see :func:`~attnaudit.data.hf_tokenizer.load_tokenizer`), a ``max_tokens``
            too long for it, a ``vocab`` other than its own.
    """
    path = _resolve_path(config)
    # Resolved first, cache or not, so that a wrong tokenizer fails at once with its own message.
    tokenizer = resolve_tokenizer(config.tokenizer) if config.tokenizer is not None else None
    root = cache_root() if cache else None
    key = None
    if root is not None:
        try:
            material = _key_material(config, path, root, vocab, label_names, splits, tokenizer)
        except OSError as err:  # e.g. the data cannot be read: loading reports that properly
            logger.debug("no prepared-data cache key for %s: %s", path, err)
        else:
            key = cache_key(material)
            prepared = _from_cache(root, key, vocab)
            if prepared is None and (vocab, label_names, splits) != (None, None, None):
                # Evaluating or auditing a run passes the vocabulary, labels and splits that its
                # training preparation produced: that entry is then this call's result too.
                base = cache_key({**material, "vocab": None, "label_names": None, "splits": None})
                prepared = _from_cache(
                    root, base, vocab, same_as=(vocab, label_names, splits)
                )
            if prepared is not None:
                _log_summary(path, prepared)
                return prepared
    with _recording_warnings() as recorder:
        flat, strings, vocab, names = _prepare_flat(
            config, path, vocab, label_names, splits, workers
        )
    if root is not None and key is not None and not storable_strings(strings):
        logger.info("prepared data not cached: a token holds a line break (%s)", config.tokenizer)
    elif root is not None and key is not None:
        entry = Entry(splits=flat, strings=strings, vocab=list(vocab.itos), label_names=names,
                      warnings=recorder.records, vocab_specials=vocab.specials)
        try:
            stored = save_entry(root, key, entry)
        except OSError as err:  # a full disk or read-only home must not fail the run
            logger.warning("could not store prepared data in the cache %s: %s", root, err)
        else:
            logger.debug("prepared data stored in cache %s", stored)
    prepared = _to_prepared(flat, strings, vocab, names)
    _log_summary(path, prepared)
    return prepared


def _from_cache(
    root: Path,
    key: str,
    vocab: Vocab | None,
    *,
    same_as: tuple[Vocab | None, Sequence[str] | None, Mapping[str, Sequence[str]] | None]
    | None = None,
) -> PreparedData | None:
    """The cached result under ``key``, or None (no entry, or an unreadable one, then removed).

    With ``same_as`` (a vocabulary, label names and splits given to :func:`prepare_data`), ``key``
    is the entry of the same data and settings prepared with none of them given, and it is used
    only if it is what preparing with them would give: its vocabulary, labels and document ids
    equal the given ones (each one that is given). Preparing with them then runs the same steps
    on the same documents: the loader only checks labels that are all allowed, saved splits list
    the documents that the seed chose and kept, the vocabulary is the one training built.
    """
    try:
        entry = load_entry(root, key, SPLITS)
    except CorruptEntry as err:
        logger.warning(
            "ignoring unreadable prepared-data cache entry %s (%s); preparing again", root / key, err
        )
        remove_entry(root, key)
        return None
    if entry is None:
        return None
    warnings = entry.warnings
    if same_as is not None:
        given_vocab, given_labels, given_splits = same_as
        if given_vocab is not None and (given_vocab.itos != entry.vocab
                                        or given_vocab.specials != entry.vocab_specials):
            return None
        if given_labels is not None and list(given_labels) != entry.label_names:
            return None
        if given_splits is not None:
            if not set(given_splits) <= set(SPLITS) or any(
                list(given_splits.get(name, ())) != entry.splits[name].doc_ids for name in SPLITS
            ):
                return None
            # Saved splits list only the documents that kept a token: none is dropped this time.
            warnings = [w for w in warnings if not _is_dropped_warning(w)]
    for name, level, message in warnings:
        logging.getLogger(name).log(level, "%s", message)
    logger.info("prepared data reused from cache %s", root / key)
    # A given vocabulary is returned as itself, as when preparing (its contents are in the key).
    return _to_prepared(entry.splits, entry.strings,
                        vocab or Vocab(entry.vocab, **entry.vocab_specials), entry.label_names)


def _is_dropped_warning(warning: tuple[str, int, str]) -> bool:
    name, _, message = warning
    return name == "attnaudit.data.batching" and message.startswith("dropped ")


def _to_prepared(
    flat: Mapping[str, FlatSplit], strings: list[str], vocab: Vocab, names: list[str]
) -> PreparedData:
    # An object array lets numpy gather each split's token strings by index in C; the lists then
    # share the table's string objects instead of holding a copy per token.
    table = np.array(strings, dtype=object)
    encoded = {
        name: documents_from_flat(
            split.doc_ids,
            split.labels.tolist(),
            split.document_sentences.tolist(),
            split.sentence_lengths.tolist(),
            split.ids.tolist(),
            table[np.asarray(split.token_index)].tolist(),
        )
        for name, split in flat.items()
    }
    return PreparedData(
        train=encoded["train"],
        dev=encoded["dev"],
        test=encoded["test"],
        vocab=vocab,
        label_names=names,
        splits={name: list(split.doc_ids) for name, split in flat.items()},
    )


def _log_summary(path: Path, prepared: PreparedData) -> None:
    logger.info(
        "%s: %d train / %d dev / %d test documents, %d labels, vocabulary %d",
        path, len(prepared.train), len(prepared.dev), len(prepared.test),
        len(prepared.label_names), len(prepared.vocab),
    )


def _prepare_flat(
    config: DataConfig,
    path: Path,
    vocab: Vocab | None,
    label_names: Sequence[str] | None,
    splits: Mapping[str, Sequence[str]] | None,
    workers: int | None,
) -> tuple[dict[str, FlatSplit], list[str], Vocab, list[str]]:
    """The preparation itself, in flat form: what the cache stores."""
    docs = load_documents(
        path,
        fmt=config.fmt,
        text_column=config.text_column,
        label_column=config.label_column,
        id_column=config.id_column,
        labels=label_names,
        on_empty=config.on_empty,
    )
    if label_names is None:
        distinct = {d.label for d in docs}
        if len(distinct) < 2:
            # Caught here, before splitting and training, where it would surface as an odd error or
            # as a "perfect" model; a wrong --label-column is the usual cause.
            raise DataError(
                f"{path}: every document has the label {distinct.pop()!r}; a classifier needs at "
                "least two classes (check --label-column and the data)"
            )
    if splits is not None:
        parts = apply_splits(docs, splits)
    else:
        parts = assign_splits(
            docs, seed=config.seed, dev_fraction=config.dev_fraction,
            test_fraction=config.test_fraction, test_only=bool(config.test_only),
        )
        caps = {"train": config.max_train_docs, "dev": config.max_dev_docs,
                "test": config.max_test_docs}
        parts = {name: subsample(parts[name], caps[name], config.seed) for name in parts}
    names = list(label_names) if label_names is not None else sort_labels(d.label for d in docs)
    # All splits in one pass, so that the worker processes start once and share the work evenly.
    ordered = [doc for name in SPLITS for doc in parts[name]]
    hf = None
    if config.tokenizer is not None:
        hf = load_tokenizer(config.tokenizer)
        if vocab is not None:
            hf.check_vocab(vocab, config.tokenizer)
        # One batched call per chunk of documents: the Rust backend shares it out among threads.
        interned = hf.tokenize([d.text for d in ordered], config.limits.max_tokens)
    else:
        interned = tokenize_texts([d.text for d in ordered], config.limits, workers=workers)
    all_counts = interned.document_sentences
    # Where each document's sentences and each sentence's tokens start (with the end appended).
    sentence_starts = np.concatenate([[0], np.cumsum(all_counts, dtype=np.int64)])
    token_starts = np.concatenate([[0], np.cumsum(interned.sentence_lengths, dtype=np.int64)])
    kept: dict[str, tuple[list[Document], IntArray, IntArray, IntArray]] = {}
    doc_pos = 0
    for name in SPLITS:
        # Cut this split's documents, sentence counts and tokens out of the flat result, dropping
        # documents without a token (with the same one warning per split as before).
        docs_here = parts[name]
        counts = all_counts[doc_pos : doc_pos + len(docs_here)]
        has_tokens = counts > 0
        warn_dropped([d.doc_id for d, keep in zip(docs_here, has_tokens.tolist(), strict=True)
                      if not keep])
        split_docs = [d for d, keep in zip(docs_here, has_tokens.tolist(), strict=True) if keep]
        first_sentence = int(sentence_starts[doc_pos])
        last_sentence = int(sentence_starts[doc_pos + len(docs_here)])
        first_token, last_token = int(token_starts[first_sentence]), int(token_starts[last_sentence])
        kept[name] = (
            split_docs,
            counts[has_tokens],
            interned.sentence_lengths[first_sentence:last_sentence],
            interned.index[first_token:last_token],
        )
        doc_pos += len(docs_here)
    if config.test_only:
        # a model trained elsewhere: the test split is all that is read
        if not kept["test"][0]:
            raise DataError(f"{path}: no document to audit has any token")
    elif not kept["train"][0]:
        raise DataError(f"{path}: no training document has any token")
    if hf is not None:
        vocab = hf.vocab  # the tokenizer's, whatever the training split holds
    elif vocab is None:
        # numpy counts the training tokens per distinct string; same counts as a Counter over them.
        counts_per_string = np.bincount(kept["train"][3], minlength=len(interned.strings))
        frequent = np.flatnonzero(counts_per_string >= config.min_count).tolist()
        vocab = Vocab.from_counts(
            {interned.strings[i]: int(counts_per_string[i]) for i in frequent},
            min_count=config.min_count, max_size=config.max_vocab,
        )
    # Ids per distinct string once, then gathered per token by numpy. (A tokenizer's strings are
    # its vocabulary's, so this gives back the tokenizer's own ids.)
    string_ids = np.array(vocab.encode(interned.strings), dtype=np.int32)
    result: dict[str, FlatSplit] = {}
    for name in SPLITS:
        split_docs, counts, lengths, index = kept[name]
        result[name] = FlatSplit(
            doc_ids=[d.doc_id for d in split_docs],
            labels=np.array(label_indices(split_docs, names), dtype=np.int64),
            document_sentences=counts,
            sentence_lengths=lengths,
            ids=string_ids[index],
            token_index=index,
        )
    if not config.test_only:  # with nothing trained here, an empty train split is expected
        _warn_labels_missing_from_train(
            path,
            labels_missing_from_train(
                {name: [names[i] for i in split.labels.tolist()] for name, split in result.items()}
            ),
        )
    return result, interned.strings, vocab, names
