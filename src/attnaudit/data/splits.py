"""Train/dev/test splits and subsamples: stratified by label, fixed by a seed.

Every random choice here depends only on the seed and the document ids, not on the order in which the
documents arrive, so reordering a data file does not change which documents end up in which split.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from attnaudit.data.types import DataError, Document
from attnaudit.utils.io import read_json, write_json

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


class _HasId(Protocol):
    @property
    def doc_id(self) -> str: ...


def _rng(seed: int, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\x00{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _allocate(class_sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` across classes in proportion to their sizes (largest remainder method).

    Proportional rounding class by class can miss the total by several documents (and give a tiny
    split nothing at all); the largest-remainder method hits it exactly.
    """
    size = sum(class_sizes)
    if size == 0:
        return [0] * len(class_sizes)
    quotas = [total * n / size for n in class_sizes]
    counts = [int(q) for q in quotas]
    # Ties go to the earlier class (classes arrive sorted by label), for determinism.
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _stratified_pick(docs: Sequence[Document], n: int, rng: np.random.Generator) -> set[int]:
    """Positions of ``n`` documents drawn per label in proportion to the label counts."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, doc in enumerate(docs):
        by_label[doc.label].append(i)
    labels = sorted(by_label)
    counts = _allocate([len(by_label[lab]) for lab in labels], n)
    picked: set[int] = set()
    for label, count in zip(labels, counts, strict=True):
        # Sorting by id first makes the draw independent of the input order.
        members = sorted(by_label[label], key=lambda i: docs[i].doc_id)
        chosen = rng.permutation(len(members))[:count]
        picked.update(members[j] for j in chosen.tolist())
    return picked


def _fraction_count(fraction: float, n: int, name: str) -> int:
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"{name} must be in [0, 1), got {fraction}")
    # At least one document when a fraction is asked for at all: a tiny data set still gets a split.
    # Round half up (Python's round() goes to even, so 4.5 would give 4 and 5.5 would give 6).
    return max(1, int(fraction * n + 0.5)) if fraction > 0 and n > 1 else 0


def assign_splits(
    docs: Sequence[Document],
    *,
    seed: int,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> dict[str, list[Document]]:
    """Train/dev/test lists of documents.

    When the documents carry a source split, it is kept; a missing dev split is carved out of train
    (``dev_fraction`` of the train documents, stratified by label), and so is a missing test split
    (``test_fraction`` of train). Without source splits, the documents are split at random,
    stratified by label, into ``dev_fraction`` dev, ``test_fraction`` test and the rest train.
    Each list keeps the input order.

    Raises:
        DataError: some documents have a split and others none, no training documents are left, or
            a fraction is out of range.
    """
    with_split = sum(doc.split is not None for doc in docs)
    if 0 < with_split < len(docs):
        raise DataError(
            f"{with_split} of {len(docs)} documents have a split and the others none; "
            "give every document a split or none"
        )
    if with_split == 0:
        pool = list(docs)
        n_test = _fraction_count(test_fraction, len(pool), "test_fraction")
        n_dev = _fraction_count(dev_fraction, len(pool), "dev_fraction")
        test_idx = _stratified_pick(pool, n_test, _rng(seed, "test"))
        rest = [d for i, d in enumerate(pool) if i not in test_idx]
        dev_idx = _stratified_pick(rest, n_dev, _rng(seed, "dev"))
        result = {
            "train": [d for i, d in enumerate(rest) if i not in dev_idx],
            "dev": [d for i, d in enumerate(rest) if i in dev_idx],
            "test": [d for i, d in enumerate(pool) if i in test_idx],
        }
    else:
        result = {name: [d for d in docs if d.split == name] for name in SPLITS}
        unknown = {d.split for d in docs} - set(SPLITS)
        if unknown:
            raise DataError(f"unknown split name(s): {', '.join(sorted(map(str, unknown)))}")
        source_train = len(result["train"])  # both carved shares are of the train split as given
        for name, fraction in (("test", test_fraction), ("dev", dev_fraction)):
            if result[name]:
                continue
            train = result["train"]
            count = _fraction_count(fraction, source_train, f"{name}_fraction")
            # Data without a dev split is common (IMDB, AG News); without a test split, given
            # splits, it is not: the model is then tested on documents from its training split.
            (logger.warning if name == "test" else logger.info)(
                "the data has no %s documents: %d train documents (%s_fraction %g) are held out "
                "as its %s split", name, count, name, fraction, name)
            picked = _stratified_pick(train, count, _rng(seed, name))
            result[name] = [d for i, d in enumerate(train) if i in picked]
            result["train"] = [d for i, d in enumerate(train) if i not in picked]
    if not result["train"]:
        raise DataError("no training documents (the data has no train split, or too few documents)")
    return result


def subsample(docs: Sequence[Document], n: int | None, seed: int) -> list[Document]:
    """At most ``n`` documents, drawn per label in proportion to the label counts, in input order.

    ``n=None`` or ``n >= len(docs)`` returns all documents.
    """
    if n is None or n >= len(docs):
        return list(docs)
    if n < 1:
        raise DataError(f"cannot subsample to {n} documents")
    picked = _stratified_pick(docs, n, _rng(seed, "subsample"))
    return [d for i, d in enumerate(docs) if i in picked]


def split_ids(splits: Mapping[str, Sequence[_HasId | str]]) -> dict[str, list[str]]:
    """Document ids per split (accepts Documents, EncodedDocuments or ids)."""
    return {
        name: [item if isinstance(item, str) else item.doc_id for item in items]
        for name, items in splits.items()
    }


def save_splits(
    path: str | os.PathLike[str], splits: Mapping[str, Sequence[_HasId | str]]
) -> None:
    """Write the document ids of each split as JSON (atomically: never a half-written file)."""
    write_json(path, split_ids(splits))


def load_splits(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read what :func:`save_splits` wrote."""
    path = Path(path)
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(data, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in data.values()
    ):
        raise DataError(f"{path}: expected an object of id lists per split")
    return {str(name): list(ids) for name, ids in data.items()}


def apply_splits(
    docs: Sequence[Document], ids: Mapping[str, Sequence[str]]
) -> dict[str, list[Document]]:
    """Rebuild split lists from saved ids (e.g. to evaluate a trained run on its own test set).

    Documents not listed are left out; each list follows the order of ``ids``.

    Raises:
        DataError: an id is not among the documents.
    """
    by_id = {doc.doc_id: doc for doc in docs}
    result: dict[str, list[Document]] = {}
    for name, names in ids.items():
        missing = [i for i in names if i not in by_id]
        if missing:
            raise DataError(
                f"split {name!r}: {len(missing)} saved document id(s) not in the data, "
                f"e.g. {missing[0]!r}"
            )
        result[name] = [by_id[i] for i in names]
    for name in SPLITS:
        result.setdefault(name, [])
    return result
