"""From documents to padded tensors: tokenise and truncate, then bucket by length and pad.

Flat models (FLAN) read a document as one token sequence, the concatenation of its sentences;
hierarchical models (HAN) read it as sentences of tokens. Both see exactly the same tokens, so the
two kinds of model are compared on the same truncated documents.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.context
import os
import sys
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from itertools import accumulate, chain, pairwise
from pickle import PicklingError
from typing import Any, TypeVar

import numpy as np
import torch

from attnaudit.data.text import clean_text, split_sentences, tokenize
from attnaudit.data.types import (  # InternedTokens: re-exported, its home before types
    PAD_ID,
    Batch,
    DataError,
    Document,
    EncodedDocument,
    InternedTokens,
)
from attnaudit.data.vocab import Vocab

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


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
    max_sentence_tokens = limits.max_sentence_tokens
    max_sentences = limits.max_sentences
    for tokens in map(tokenize, split_sentences(clean_text(text))):
        if not tokens:  # e.g. a "sentence" of emoji or symbols the tokenizer drops
            continue
        if len(tokens) > max_sentence_tokens or len(tokens) > budget:
            tokens = tokens[: min(max_sentence_tokens, budget)]
        sentences.append(tokens)
        budget -= len(tokens)
        if budget <= 0 or len(sentences) >= max_sentences:
            break
    return sentences


# ---------------------------------------------------------------------------------------------------
# Flat, interned form: many documents' tokens as arrays of indices into one table of distinct token
# strings. It crosses process boundaries as a few bytes objects instead of millions of small Python
# objects, lets numpy count the vocabulary and look up ids per token in C, and is what the
# prepared-data cache stores. Nested per-document lists are built only at the very end.


# What the kernel returns: the distinct strings joined by "\n" (no token contains whitespace, see
# text.py) and their count, then the int32 arrays as bytes; all of it pickles in a few copies.
_Packed = tuple[str, int, bytes, bytes, bytes]


def _interner() -> defaultdict[str, int]:
    """A dict that gives each new key the next integer (0, 1, ...) on first lookup.

    ``map(interner.__getitem__, tokens)`` then interns a whole list in C: the missing-key hook
    calls ``len`` of the dict itself, with no Python frame per token.
    """
    position: defaultdict[str, int] = defaultdict()
    position.default_factory = position.__len__
    return position


def _tokenize_packed(texts: Sequence[str], limits: Limits) -> _Packed:
    """:func:`tokenize_document` for each text, interned (the kernel, run serially or in workers)."""
    position = _interner()
    index = array("i")
    sentence_lengths = array("i")
    document_sentences = array("i")
    extend_index = index.extend
    extend_lengths = sentence_lengths.extend
    lookup = position.__getitem__
    with _gc_paused():
        for text in texts:
            sentences = tokenize_document(text, limits)
            document_sentences.append(len(sentences))
            extend_lengths(map(len, sentences))
            for sentence in sentences:
                extend_index(map(lookup, sentence))
    strings = list(position)
    return (
        "\n".join(strings), len(strings), index.tobytes(), sentence_lengths.tobytes(),
        document_sentences.tobytes(),
    )


#: Below this many documents, starting worker processes costs more than it saves.
PARALLEL_MIN_DOCS = 2000
_MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Worker processes for preparation: ``ATTNAUDIT_WORKERS`` if set, else ``min(CPUs, 8)``.

    CPUs are those this process may run on (the affinity mask, e.g. a container's share), not the
    machine's. More than 8 rarely helps: the parent's share of the work (reading, building the
    documents) then dominates.

    Raises:
        DataError: ``ATTNAUDIT_WORKERS`` is not a positive integer.
    """
    value = os.environ.get("ATTNAUDIT_WORKERS", "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            workers = 0
        if workers < 1:
            raise DataError(f"ATTNAUDIT_WORKERS must be a positive integer, got {value!r}")
        return workers
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_DEFAULT_WORKERS))


def _process_context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds with every module already imported; spawn (the only
    # choice on Windows, the default on macOS) re-imports attnaudit and torch in each worker.
    if "fork" in multiprocessing.get_all_start_methods() and sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def tokenize_texts(
    texts: Sequence[str], limits: Limits, *, workers: int | None = None
) -> InternedTokens:
    """:func:`tokenize_document` for each text, in interned form, across processes when it pays.

    Args:
        texts: the raw texts.
        limits: length limits.
        workers: processes to use (None: :func:`default_workers`). One process is used anyway
            below :data:`PARALLEL_MIN_DOCS` texts.

    Returns:
        The same :class:`InternedTokens` whatever the number of workers: texts are cut into
        contiguous chunks whose results are merged in order (strings keep first-occurrence order).
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise DataError(f"workers must be a positive integer, got {workers}")
    packed: list[_Packed] | None = None
    if workers > 1 and len(texts) >= PARALLEL_MIN_DOCS:
        # A few chunks per worker even out documents of different lengths (and a loaded core)
        # without paying a round trip per handful of documents.
        num_chunks = min(len(texts), workers * 4)
        bounds = [len(texts) * i // num_chunks for i in range(num_chunks + 1)]
        chunks = [texts[a:b] for a, b in pairwise(bounds)]
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_process_context()) as pool:
                packed = list(pool.map(_tokenize_packed, chunks, [limits] * len(chunks)))
        except (OSError, BrokenProcessPool, PicklingError) as err:
            # A sandbox without fork or /dev/shm, or a worker killed for memory: the serial path
            # gives the same result, only slower.
            logger.warning("parallel tokenisation failed (%s); tokenising in this process", err)
    if packed is None:
        packed = [_tokenize_packed(texts, limits)]
    return _merge(packed)


def _merge(packed: Sequence[_Packed]) -> InternedTokens:
    """Concatenate chunk results, re-indexing each chunk's strings into one table."""
    position = _interner()
    lookup = position.__getitem__
    indices, lengths, counts = [], [], []
    for joined, num_strings, index, sentence_lengths, document_sentences in packed:
        local = joined.split("\n") if num_strings else []  # "".split("\n") is [""]
        # One C-level lookup per distinct string of the chunk, then a numpy gather per token.
        to_global = np.fromiter(map(lookup, local), dtype=np.int32, count=len(local))
        indices.append(to_global[np.frombuffer(index, dtype=np.int32)])
        lengths.append(np.frombuffer(sentence_lengths, dtype=np.int32))
        counts.append(np.frombuffer(document_sentences, dtype=np.int32))
    return InternedTokens(
        strings=list(position),
        index=np.concatenate(indices).astype(np.int32, copy=False),
        sentence_lengths=np.concatenate(lengths),
        document_sentences=np.concatenate(counts),
    )


def warn_dropped(dropped: Sequence[str]) -> None:
    """The one warning for documents left with no token after cleaning (ids in input order)."""
    if dropped:
        logger.warning(
            "dropped %d document(s) with no tokens after cleaning (first: %s)",
            len(dropped), dropped[0],
        )


def tokenize_documents(
    docs: Iterable[Document],
    limits: Limits,
    *,
    workers: int | None = 1,
    tokenizer: str | None = None,
) -> list[tuple[Document, list[list[str]]]]:
    """:func:`tokenize_document` for each document, dropping (and logging) those left with no token.

    Args:
        docs: the documents.
        limits: length limits.
        workers: processes (see :func:`tokenize_texts`); 1 by default, as callers of this function
            tokenise small batches.
        tokenizer: ``DataConfig.tokenizer``: None for words, else a Hugging Face tokenizer's
            subwords, one sentence per document (see :mod:`attnaudit.data.hf_tokenizer`).
    """
    docs = list(docs)
    texts = [d.text for d in docs]
    if tokenizer is not None:
        from attnaudit.data.hf_tokenizer import load_tokenizer  # imports transformers: only here

        interned = load_tokenizer(tokenizer).tokenize(texts, limits.max_tokens)
    else:
        interned = tokenize_texts(texts, limits, workers=workers)
    result = []
    dropped: list[str] = []
    with _gc_paused():
        sentences = split_flat(interned.token_strings(), interned.sentence_lengths.tolist())
        position = 0
        for doc, count in zip(docs, interned.document_sentences.tolist(), strict=True):
            if count:
                result.append((doc, sentences[position : position + count]))
                position += count
            else:
                dropped.append(doc.doc_id)
    warn_dropped(dropped)
    return result


def split_flat(items: list[_T], lengths: Iterable[int]) -> list[list[_T]]:
    """Cut ``items`` into consecutive lists of the given ``lengths`` (which sum to ``len(items)``)."""
    return [items[a:b] for a, b in pairwise(accumulate(lengths, initial=0))]


def label_indices(docs: Iterable[Document], label_names: Sequence[str]) -> list[int]:
    """Class index of each document's label.

    Raises:
        DataError: a document's label is not in ``label_names``.
    """
    label_index = {name: i for i, name in enumerate(label_names)}
    indices = []
    for doc in docs:
        try:
            indices.append(label_index[doc.label])
        except KeyError:
            shown = ", ".join(list(label_names)[:10]) + (", ..." if len(label_names) > 10 else "")
            raise DataError(
                f"document {doc.doc_id}: label {doc.label!r} is not one of the labels ({shown})"
            ) from None
    return indices


def documents_from_flat(
    doc_ids: Sequence[str],
    labels: Sequence[int],
    document_sentences: Sequence[int],
    sentence_lengths: Sequence[int],
    ids: list[int],
    tokens: list[str],
) -> list[EncodedDocument]:
    """Build :class:`EncodedDocument` objects from the flat form (no document may have 0 sentences).

    ``ids`` and ``tokens`` run in parallel, cut by ``sentence_lengths`` into sentences, which
    ``document_sentences`` groups into documents. Slicing lists in comprehensions keeps the work
    per token in C; only documents and sentences cost a Python step.
    """
    with _gc_paused():
        id_sentences = split_flat(ids, sentence_lengths)
        token_sentences = split_flat(tokens, sentence_lengths)
        bounds = pairwise(accumulate(document_sentences, initial=0))
        return [
            EncodedDocument(
                doc_id=doc_id, label=label, sentences=id_sentences[a:b], tokens=token_sentences[a:b]
            )
            for doc_id, label, (a, b) in zip(doc_ids, labels, bounds, strict=True)
        ]


def index_documents(
    tokenized: Iterable[tuple[Document, list[list[str]]]],
    vocab: Vocab,
    label_names: Sequence[str],
) -> list[EncodedDocument]:
    """Map tokens to vocabulary ids and labels to class indices.

    Raises:
        DataError: a document's label is not in ``label_names``.
    """
    tokenized = list(tokenized)
    labels = label_indices((doc for doc, _ in tokenized), label_names)
    with _gc_paused():
        return [
            EncodedDocument(
                doc_id=doc.doc_id,
                label=label,
                sentences=[vocab.encode(s) for s in sentences],
                tokens=sentences,
            )
            for (doc, sentences), label in zip(tokenized, labels, strict=True)
        ]


def encode_documents(
    docs: Iterable[Document],
    vocab: Vocab,
    label_names: Sequence[str],
    limits: Limits | None = None,
    *,
    tokenizer: str | None = None,
) -> list[EncodedDocument]:
    """Clean, split, tokenise, truncate (see :class:`Limits`) and index documents.

    Documents left with no token are dropped, with one logged warning giving the count.

    Args:
        docs, vocab, label_names, limits: as for :func:`tokenize_documents` and
            :func:`index_documents`.
        tokenizer: ``DataConfig.tokenizer`` of the data ``vocab`` came from (a trained run's):
            None for words, else the Hugging Face tokenizer, whose vocabulary ``vocab`` must be.

    Raises:
        DataError: a document's label is not in ``label_names``; ``vocab`` is not the tokenizer's.
    """
    if tokenizer is not None:
        from attnaudit.data.hf_tokenizer import load_tokenizer  # imports transformers: only here

        load_tokenizer(tokenizer).check_vocab(vocab, tokenizer)
    tokenized = tokenize_documents(docs, limits or Limits(), tokenizer=tokenizer)
    return index_documents(tokenized, vocab, label_names)


def collate(docs: Sequence[EncodedDocument], *, hierarchical: bool) -> Batch:
    """Pad documents into one batch.

    Returns:
        A :class:`Batch` whose ``token_ids`` is ``(B, T)`` (flat: each document's sentences
        concatenated, T = longest document) or ``(B, S, W)`` (hierarchical: S = most sentences,
        W = longest sentence), padded with ``PAD_ID``; ``labels`` is ``(B,)``; both int64; its
        ``mask`` marks the documents' tokens by their lengths (an id 0 inside a document is a
        token, whatever ``PAD_ID`` is).
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
        mask = np.zeros(array.shape, dtype=bool)
        for i, doc in enumerate(docs):
            for j, sentence in enumerate(doc.sentences):
                array[i, j, : len(sentence)] = sentence
                mask[i, j, : len(sentence)] = True
    else:
        length = max(d.num_tokens for d in docs)
        array = np.full((len(docs), length), PAD_ID, dtype=np.int64)
        mask = np.zeros(array.shape, dtype=bool)
        for i, doc in enumerate(docs):
            flat = list(chain.from_iterable(doc.sentences))
            array[i, : len(flat)] = flat
            mask[i, : len(flat)] = True
    labels = torch.tensor([d.label for d in docs], dtype=torch.long)
    return Batch([d.doc_id for d in docs], torch.from_numpy(array), labels, torch.from_numpy(mask))


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
