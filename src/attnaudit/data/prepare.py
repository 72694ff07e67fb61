"""One call from a data configuration to encoded train/dev/test documents, vocabulary and labels."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnaudit.data.batching import Limits, index_documents, tokenize_documents
from attnaudit.data.loaders import load_documents
from attnaudit.data.splits import SPLITS, apply_splits, assign_splits, subsample
from attnaudit.data.types import DataError, EncodedDocument
from attnaudit.data.vocab import Vocab

logger = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """Where the data comes from and how it is split, truncated and indexed."""

    # A file or folder (see load_documents), or "default" for the shipped news-article set.
    path: str = "default"
    # "auto" detects the format from the folder contents or extension.
    fmt: str = "auto"
    # None means the format's default ("text" / "label" / "id" when present, else the row number).
    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    # Words seen fewer times in the training split map to <unk>; 5 as in the original system.
    min_count: int = 5
    # Optional cap on the vocabulary size (None: every word that passes min_count).
    max_vocab: int | None = None
    # Length limits (see Limits for why each default).
    limits: Limits = field(default_factory=Limits)
    # Shares of dev and test when the source has no such split (carved from train when only the
    # other is missing). 10% each is the common choice for sets of thousands of documents.
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    # Stratified subsamples of the splits for quick runs (None: all documents).
    max_train_docs: int | None = None
    max_dev_docs: int | None = None
    max_test_docs: int | None = None
    # Seed of every random choice in splitting and subsampling.
    seed: int = 0
    # "skip" empty documents (one logged warning) or "error".
    on_empty: str = "skip"
    # Where path="default" stores the fetched news-article set.
    data_dir: str = "data"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (limits as a nested dict)."""
        data = dataclasses.asdict(self)
        data["limits"] = self.limits.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises:
            DataError: an unknown key (most likely a typo).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise DataError(f"data config: unknown setting(s) {', '.join(sorted(unknown))}")
        values = dict(data)
        if isinstance(values.get("limits"), Mapping):
            values["limits"] = Limits.from_dict(values["limits"])
        return cls(**values)


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


def _resolve_path(config: DataConfig) -> Path:
    if config.path == "default":
        from attnaudit.data.default import fetch_default  # only the default set needs pip

        return fetch_default(config.data_dir)
    return Path(config.path)


def prepare_data(
    config: DataConfig,
    *,
    vocab: Vocab | None = None,
    label_names: Sequence[str] | None = None,
    splits: Mapping[str, Sequence[str]] | None = None,
) -> PreparedData:
    """Load, split, subsample, tokenise and index the data described by ``config``.

    Args:
        config: the data configuration.
        vocab: reuse this vocabulary (reloading a trained run) instead of building one from train.
        label_names: reuse these labels; data with any other label is then an error.
        splits: reuse these document ids per split (e.g. a run's saved splits) instead of
            assigning splits from the seed; no subsampling is applied on top.

    Returns:
        The encoded splits with their vocabulary, label names and document ids.

    Raises:
        DataError: bad input data (see :func:`load_documents`), unknown labels, no training data.
    """
    path = _resolve_path(config)
    docs = load_documents(
        path,
        fmt=config.fmt,
        text_column=config.text_column,
        label_column=config.label_column,
        id_column=config.id_column,
        labels=label_names,
        on_empty=config.on_empty,
    )
    if splits is not None:
        parts = apply_splits(docs, splits)
    else:
        parts = assign_splits(
            docs, seed=config.seed, dev_fraction=config.dev_fraction,
            test_fraction=config.test_fraction,
        )
        caps = {"train": config.max_train_docs, "dev": config.max_dev_docs,
                "test": config.max_test_docs}
        parts = {name: subsample(parts[name], caps[name], config.seed) for name in parts}
    names = list(label_names) if label_names is not None else sort_labels(d.label for d in docs)
    tokenized = {name: tokenize_documents(parts[name], config.limits) for name in SPLITS}
    if not tokenized["train"]:
        raise DataError(f"{path}: no training document has any token")
    if vocab is None:
        vocab = Vocab.build(
            (sentence for _, sentences in tokenized["train"] for sentence in sentences),
            min_count=config.min_count,
            max_size=config.max_vocab,
        )
    encoded = {name: index_documents(tokenized[name], vocab, names) for name in tokenized}
    logger.info(
        "%s: %d train / %d dev / %d test documents, %d labels, vocabulary %d",
        path, len(encoded["train"]), len(encoded["dev"]), len(encoded["test"]), len(names),
        len(vocab),
    )
    return PreparedData(
        train=encoded["train"],
        dev=encoded["dev"],
        test=encoded["test"],
        vocab=vocab,
        label_names=names,
        splits={name: [d.doc_id for d in docs_] for name, docs_ in encoded.items()},
    )
