"""From documents to padded tensors: tokenise and truncate, then bucket by length and pad.

Flat models (FLAN) read a document as one token sequence, the concatenation of its sentences;
hierarchical models (HAN) read it as sentences of tokens. Both see exactly the same tokens, so the
two kinds of model are compared on the same truncated documents.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

import numpy as np
import torch

from attnaudit.data.text import clean_text, split_sentences, tokenize
from attnaudit.data.types import PAD_ID, Batch, DataError, Document, EncodedDocument
from attnaudit.data.vocab import Vocab

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Length limits applied when documents are encoded (the same for flat and hierarchical models).

    A document keeps its first ``max_sentences`` non-empty sentences, each cut to
    ``max_sentence_tokens`` tokens, and is then cut to ``max_tokens`` tokens in all.
    """

    # Flat length cap. IMDB reviews have 260 tokens on average (median 198, words plus punctuation);
    # 400 keeps 84% of them whole while bounding the cost of a padded batch and of the O(n) erasure
    # tests, whose cost grows with the number of items.
    max_tokens: int = 400
    # HAN sentence cap. Hardly any IMDB review (0.05%) reaches 40 sentences within 400 tokens; the cap
    # bounds the S axis of (B, S, W) batches when splitting goes wrong (e.g. lists of one-word lines).
    max_sentences: int = 40
    # HAN sentence-length cap: bounds the W axis of (B, S, W) when a "sentence" is a run-on paragraph
    # with no full stop. IMDB sentences average 21 tokens; 2% are longer than 60.
    max_sentence_tokens: int = 60

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise DataError(f"limits: {name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        unknown = set(data) - {"max_tokens", "max_sentences", "max_sentence_tokens"}
        if unknown:
            raise DataError(f"limits: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**data)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small, acyclic lists.

    Each collection would walk every list built so far; for the 50k IMDB documents that doubled the
    encoding time. Reference counting still frees everything; the collector resumes afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def tokenize_document(text: str, limits: Limits) -> list[list[str]]:
    """Clean, sentence-split, tokenise and truncate one text.

    Returns:
        Token strings per sentence, no empty sentence; at most ``limits.max_sentences`` sentences of
        at most ``limits.max_sentence_tokens`` tokens, ``limits.max_tokens`` tokens in all.
    """
    sentences: list[list[str]] = []
    budget = limits.max_tokens
    for sentence in split_sentences(clean_text(text)):
        tokens = tokenize(sentence)
        if not tokens:  # e.g. a "sentence" of emoji or symbols the tokenizer drops
            continue
        tokens = tokens[: min(limits.max_sentence_tokens, budget)]
        sentences.append(tokens)
        budget -= len(tokens)
        if budget <= 0 or len(sentences) >= limits.max_sentences:
            break
    return sentences


def tokenize_documents(
    docs: Iterable[Document], limits: Limits
) -> list[tuple[Document, list[list[str]]]]:
    """:func:`tokenize_document` for each document, dropping (and logging) those left with no token."""
    result = []
    dropped: list[str] = []
    with _gc_paused():
        for doc in docs:
            sentences = tokenize_document(doc.text, limits)
            if sentences:
                result.append((doc, sentences))
            else:
                dropped.append(doc.doc_id)
    if dropped:
        logger.warning(
            "dropped %d document(s) with no tokens after cleaning (first: %s)",
            len(dropped), dropped[0],
        )
    return result


def index_documents(
    tokenized: Iterable[tuple[Document, list[list[str]]]],
    vocab: Vocab,
    label_names: Sequence[str],
) -> list[EncodedDocument]:
    """Map tokens to vocabulary ids and labels to class indices.

    Raises:
        DataError: a document's label is not in ``label_names``.
    """
    label_index = {name: i for i, name in enumerate(label_names)}
    encoded = []
    with _gc_paused():
        for doc, sentences in tokenized:
            try:
                label = label_index[doc.label]
            except KeyError:
                shown = ", ".join(list(label_names)[:10]) + (", ..." if len(label_names) > 10 else "")
                raise DataError(
                    f"document {doc.doc_id}: label {doc.label!r} is not one of the labels ({shown})"
                ) from None
            encoded.append(
                EncodedDocument(
                    doc_id=doc.doc_id,
                    label=label,
                    sentences=[vocab.encode(s) for s in sentences],
                    tokens=sentences,
                )
            )
    return encoded


def encode_documents(
    docs: Iterable[Document],
    vocab: Vocab,
    label_names: Sequence[str],
    limits: Limits | None = None,
) -> list[EncodedDocument]:
    """Clean, split, tokenise, truncate (see :class:`Limits`) and index documents.

    Documents left with no token are dropped, with one logged warning giving the count.

    Raises:
        DataError: a document's label is not in ``label_names``.
    """
    return index_documents(tokenize_documents(docs, limits or Limits()), vocab, label_names)


def collate(docs: Sequence[EncodedDocument], *, hierarchical: bool) -> Batch:
    """Pad documents into one batch.

    Returns:
        A :class:`Batch` whose ``token_ids`` is ``(B, T)`` (flat: each document's sentences
        concatenated, T = longest document) or ``(B, S, W)`` (hierarchical: S = most sentences,
        W = longest sentence), padded with ``PAD_ID``; ``labels`` is ``(B,)``; both int64.
    """
    if not docs:
        raise ValueError("cannot collate an empty list of documents")
    for doc in docs:
        if not doc.sentences or doc.num_tokens == 0:
            raise ValueError(f"document {doc.doc_id} has no tokens")
    if hierarchical:
        num_sentences = max(len(d.sentences) for d in docs)
        width = max(len(s) for d in docs for s in d.sentences)
        array = np.full((len(docs), num_sentences, width), PAD_ID, dtype=np.int64)
        for i, doc in enumerate(docs):
            for j, sentence in enumerate(doc.sentences):
                array[i, j, : len(sentence)] = sentence
    else:
        length = max(d.num_tokens for d in docs)
        array = np.full((len(docs), length), PAD_ID, dtype=np.int64)
        for i, doc in enumerate(docs):
            flat = list(chain.from_iterable(doc.sentences))
            array[i, : len(flat)] = flat
    labels = torch.tensor([d.label for d in docs], dtype=torch.long)
    return Batch([d.doc_id for d in docs], torch.from_numpy(array), labels)


def padded_size(docs: Sequence[EncodedDocument], *, hierarchical: bool) -> int:
    """Number of cells (tokens plus padding) of ``collate(docs)``'s ``token_ids``."""
    if not docs:
        return 0
    if hierarchical:
        num_sentences = max(len(d.sentences) for d in docs)
        width = max(len(s) for d in docs for s in d.sentences)
        return len(docs) * num_sentences * width
    return len(docs) * max(d.num_tokens for d in docs)


def bucket(
    docs: Sequence[EncodedDocument],
    *,
    hierarchical: bool,
    batch_size: int = 64,
    max_batch_tokens: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> list[list[int]]:
    """Group document positions into batches of similar length (see :func:`make_batches`).

    Returns:
        Lists of indices into ``docs``; every index appears exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_batch_tokens is not None and max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be positive, got {max_batch_tokens}")
    n = len(docs)
    rng = np.random.default_rng(seed) if shuffle else None
    # Ties in length are broken by position, or at random when shuffling, so that an epoch's batches
    # differ in composition as well as order (like AllenNLP's bucket iterator with padding noise).
    tiebreak = rng.permutation(n) if rng is not None else np.arange(n)
    num_sentences = np.array([len(d.sentences) for d in docs], dtype=np.int64)
    widths = np.array([max((len(s) for s in d.sentences), default=0) for d in docs], dtype=np.int64)
    if hierarchical:
        order = np.lexsort((tiebreak, widths, num_sentences))
    else:
        lengths = np.array([d.num_tokens for d in docs], dtype=np.int64)
        order = np.lexsort((tiebreak, lengths))
    chunks: list[list[int]] = []
    chunk: list[int] = []
    max_s = max_w = max_t = 0
    for index in order.tolist():
        doc = docs[index]
        s, w, t = len(doc.sentences), int(widths[index]), doc.num_tokens
        new_s, new_w, new_t = max(max_s, s), max(max_w, w), max(max_t, t)
        size = (len(chunk) + 1) * (new_s * new_w if hierarchical else new_t)
        too_big = max_batch_tokens is not None and size > max_batch_tokens
        if chunk and (len(chunk) >= batch_size or too_big):
            chunks.append(chunk)
            chunk = []
            new_s, new_w, new_t = s, w, t
        chunk.append(index)
        max_s, max_w, max_t = new_s, new_w, new_t
    if chunk:
        chunks.append(chunk)
    if rng is not None:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return chunks


def make_batches(
    docs: Sequence[EncodedDocument],
    *,
    hierarchical: bool,
    batch_size: int = 64,
    max_batch_tokens: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> list[Batch]:
    """Padded batches of documents of similar length.

    Documents are sorted by length (flat: tokens; hierarchical: sentences, then longest sentence)
    and cut into runs of at most ``batch_size``; a run also ends before its padded ``token_ids``
    would exceed ``max_batch_tokens`` cells (a single longer document still forms its own batch).
    With ``shuffle``, the batch order and the order among equal-length documents come from
    ``seed``; without, batches go from shortest to longest.

    Returns:
        Batches as from :func:`collate` (``(B, T)`` or ``(B, S, W)``); every document is in
        exactly one batch.
    """
    chunks = bucket(
        docs,
        hierarchical=hierarchical,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        shuffle=shuffle,
        seed=seed,
    )
    return [collate([docs[i] for i in chunk], hierarchical=hierarchical) for chunk in chunks]
