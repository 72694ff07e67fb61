"""A planted ground truth: real texts whose label is decided by a planted marker token.

Each document of a source data set (the shipped news articles, or any file the loaders read) gets
a random label and ``markers`` copies of that label's marker token, a made-up word absent from the
source (``zxqmark0``, ``zxqmark1``, ...), at seeded random word positions; a distractor token
(``zxqnoise``) goes into about half the documents, drawn independently of the label. Only the
marker tells the label, so a model that learns the task relies on it, and an importance ranking
that is faithful to that model ranks the marker's item first (scored by
:mod:`attnaudit.results.planted`).

Markers are placed where the pipeline keeps them: inside the first ``max_sentences`` sentences and
the first tokens that :class:`~attnaudit.data.batching.Limits` keeps, and between two words of a
sentence (never first in a sentence nor after a full stop, where a lowercase word could join two
sentences). Each planted text is checked with the pipeline's own :func:`tokenize_document`.

Every draw comes from :func:`~attnaudit.utils.seeding.doc_rng` keyed on ``(seed, doc_id)``, so a
document's label and positions do not depend on the other documents (``max_docs`` gives a prefix).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnaudit.data.batching import Limits, tokenize_document
from attnaudit.data.text import clean_text, split_sentences, tokenize
from attnaudit.data.types import DataError, Document
from attnaudit.results.planted import PlantedSpec, sidecar_path
from attnaudit.utils.io import atomic_open, write_json
from attnaudit.utils.seeding import doc_rng

logger = logging.getLogger(__name__)

MARKER_STEM = "zxqmark"
DISTRACTOR_STEM = "zxqnoise"
#: Chance of a document getting the distractor, independently of its label.
DISTRACTOR_SHARE = 0.5
#: Label of the documents left without a marker (``unmarked`` > 0).
UNMARKED_LABEL = "none"
#: Placements tried per document before it is dropped (a placement fails only when inserting the
#: words changes the sentence splitting, which the placement rules make rare).
_ATTEMPTS = 5
_CHUNK_RE = re.compile(r"\S+")
#: A chunk after which no word is inserted: a lowercase word after a full stop could stop the
#: sentence breaker from splitting there.
_SENTENCE_END_RE = re.compile(r"[.!?]['\")\]’”]*$")


@dataclass(frozen=True)
class SynthDocument:
    """One planted document: the source document with its new ``label`` and planted ``text``."""

    doc_id: str
    text: str
    label: str
    split: str | None
    has_distractor: bool


def label_names(classes: int) -> list[str]:
    """The synthetic class names: ``c0``, ``c1``, ..."""
    return [f"c{i}" for i in range(classes)]


def free_token(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem`` with more ``q`` in front, whichever is first absent from ``taken``."""
    token = stem
    while token in taken:
        token = "q" + token
    return token


def source_tokens(docs: Iterable[Document]) -> set[str]:
    """Every token of the documents' full texts (no length limit), lowercase."""
    seen: set[str] = set()
    for doc in docs:
        for sentence in split_sentences(clean_text(doc.text)):
            seen.update(tokenize(sentence))
    return seen


def insertion_points(text: str, limits: Limits, slack: int) -> list[int]:
    """Character offsets in ``text`` (already cleaned) where a planted word survives the limits.

    An offset is the start of a word that is not the first of its sentence and does not follow a
    sentence-final chunk; ``slack`` is how many words will be inserted in all, so that even after
    every insertion the planted word stays within the sentences, the sentence length and the
    document length that :func:`tokenize_document` keeps.
    """
    points: list[int] = []
    kept_before = 0  # tokens kept from earlier sentences
    n_sentences = 0
    offset = 0
    for paragraph in text.split("\n"):
        cursor = 0
        for sentence in split_sentences(paragraph):
            start = paragraph.find(sentence, cursor)
            if start < 0:  # the breaker changed the text: positions after it are not known
                return points
            cursor = start + len(sentence)
            tokens_before = 0
            previous = None
            for chunk in _CHUNK_RE.finditer(sentence):
                if (previous is not None and not _SENTENCE_END_RE.search(previous)
                        and tokens_before + slack <= limits.max_sentence_tokens
                        and kept_before + tokens_before + slack <= limits.max_tokens):
                    points.append(offset + start + chunk.start())
                tokens_before += len(tokenize(chunk.group()))
                previous = chunk.group()
            if tokens_before == 0:
                continue  # the pipeline drops a sentence without tokens
            n_sentences += 1
            kept_before += min(tokens_before, limits.max_sentence_tokens)
            if n_sentences >= limits.max_sentences or kept_before >= limits.max_tokens:
                return points
        offset += len(paragraph) + 1
    return points


def plant(text: str, words: Sequence[str], points: Sequence[int]) -> str:
    """``text`` with ``words[i]`` inserted before the word at character offset ``points[i]``."""
    for point, word in sorted(zip(points, words, strict=True), reverse=True):
        text = f"{text[:point]}{word} {text[point:]}"
    return text


def synthesize(
    docs: Sequence[Document],
    *,
    markers: int = 1,
    distractor: bool = True,
    classes: int = 2,
    unmarked: float = 0.0,
    seed: int = 0,
    limits: Limits | None = None,
    source: str = "",
) -> tuple[list[SynthDocument], PlantedSpec]:
    """Plant marker tokens that decide a random label in each document.

    Args:
        docs: the source documents (their labels are dropped; ids and splits kept).
        markers: copies of the label's marker per document (>= 1).
        distractor: plant the distractor token in about half the documents.
        classes: number of marked labels (>= 2), named ``c0``, ``c1``, ...
        unmarked: share of documents that get no marker and the extra label ``none``. With 0 a
            model can decide one label by the *absence* of the other markers (on two classes it
            then needs only one marker, and erasing the other changes nothing); unmarked
            documents rule that out, so every marker is needed.
        seed: seed of every draw; each document draws from ``(seed, doc_id)`` alone.
        limits: the length limits the planted words must survive (default :class:`Limits`).
        source: where the documents came from, recorded in the spec.

    Returns:
        The planted documents (source order; documents where no placement survives the limits are
        dropped with a warning) and the spec.

    Raises:
        DataError: ``markers`` < 1, ``classes`` < 2, or no document could be planted.
    """
    if markers < 1:
        raise DataError(f"markers must be at least 1, got {markers}")
    if classes < 2:
        raise DataError(f"classes must be at least 2, got {classes}")
    if not 0.0 <= unmarked < 1.0:
        raise DataError(f"unmarked must be a share in [0, 1), got {unmarked}")
    limits = limits or Limits()
    taken = source_tokens(docs)
    labels = label_names(classes)
    marker_of = {label: free_token(f"{MARKER_STEM}{i}", taken) for i, label in enumerate(labels)}
    noise = free_token(DISTRACTOR_STEM, taken) if distractor else None
    planted: list[SynthDocument] = []
    dropped: list[str] = []
    for doc in docs:
        made = _plant_one(doc, labels, marker_of, noise, markers, unmarked, seed, limits)
        if made is None:
            dropped.append(doc.doc_id)
        else:
            planted.append(made)
    if dropped:
        logger.warning("%d document(s) left out: no place for the planted words within the length "
                       "limits (first: %s)", len(dropped), dropped[0])
    if not planted:
        raise DataError(f"{source or 'source'}: no document could be planted")
    counts = {label: sum(d.label == label for d in planted)
              for label in [*labels, *([UNMARKED_LABEL] if unmarked else [])]}
    spec = PlantedSpec(
        markers=marker_of, distractor=noise, source=source, seed=seed,
        extra={"markers_per_doc": markers, "classes": classes, "unmarked_share": unmarked,
               "unmarked_label": UNMARKED_LABEL if unmarked else None, "n_docs": len(planted),
               "n_dropped": len(dropped), "label_counts": counts,
               "n_with_distractor": sum(d.has_distractor for d in planted),
               "distractor_share": DISTRACTOR_SHARE if noise else 0.0,
               "limits": limits.to_dict()},
    )
    return planted, spec


def _plant_one(doc: Document, labels: Sequence[str], marker_of: dict[str, str],
               noise: str | None, markers: int, unmarked: float, seed: int,
               limits: Limits) -> SynthDocument | None:
    rng = doc_rng(seed, doc.doc_id, "synth")
    # Drawn in a fixed order whatever the options, so --no-distractor keeps labels and positions.
    label = labels[int(rng.integers(len(labels)))]
    with_noise = bool(rng.random() < DISTRACTOR_SHARE) and noise is not None
    if rng.random() < unmarked:
        label = UNMARKED_LABEL
    copies = 0 if label == UNMARKED_LABEL else markers
    words = [marker_of.get(label, "")] * copies + ([noise] if with_noise and noise else [])
    text = clean_text(doc.text)
    if not words:
        return SynthDocument(doc.doc_id, text, label, doc.split, with_noise)
    points = insertion_points(text, limits, slack=markers + 1)
    if not points:
        return None
    for _ in range(_ATTEMPTS):
        chosen = rng.choice(len(points), size=len(words), replace=len(points) < len(words))
        candidate = plant(text, words, [points[int(i)] for i in np.atleast_1d(chosen)])
        kept = [t for sentence in tokenize_document(candidate, limits) for t in sentence]
        if all(kept.count(w) == words.count(w) for w in set(words)):
            return SynthDocument(doc.doc_id, candidate, label, doc.split, with_noise)
    return None


def write_synth(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    markers: int = 1,
    distractor: bool = True,
    classes: int = 2,
    unmarked: float = 0.0,
    max_docs: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike[str] = "data",
    limits: Limits | None = None,
) -> PlantedSpec:
    """Build a planted data set from ``source`` and write ``out`` (JSON lines) and its sidecar.

    Args:
        source: ``"default"`` (the shipped news articles, fetched into ``data_dir`` if absent) or a
            data file/folder that :func:`~attnaudit.data.loaders.load_documents` reads.
        out: the ``.jsonl`` file to write: one ``{"id", "text", "label"}`` object per line, with
            ``"split"`` when the source gives one. The spec goes to ``NAME.planted.json`` beside it
            (:func:`~attnaudit.results.planted.sidecar_path`).
        max_docs: keep the first ``max_docs`` planted documents (source order).
        markers, distractor, classes, unmarked, seed, limits: as in :func:`synthesize`.

    Returns:
        The spec written to the sidecar.

    Raises:
        DataError: unreadable source, bad settings, or an ``out`` that is not a ``.jsonl`` file.
    """
    from attnaudit.data.loaders import load_documents

    out = Path(out)
    if not out.name.endswith(".jsonl"):
        raise DataError(f"{out}: the output must be a .jsonl file (JSON lines)")
    if max_docs is not None and max_docs < 1:
        raise DataError(f"max-docs must be at least 1, got {max_docs}")
    if str(source) == "default":
        from attnaudit.data.default import fetch_default

        path = fetch_default(data_dir)
    else:
        path = Path(source)
    docs = load_documents(path)
    planted, spec = synthesize(docs[:max_docs] if max_docs else docs, markers=markers,
                               distractor=distractor, classes=classes, unmarked=unmarked,
                               seed=seed, limits=limits, source=str(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as f:
        for doc in planted:
            f.write(json.dumps(_record(doc), ensure_ascii=False) + "\n")
    write_json(sidecar_path(out), spec.to_dict())
    logger.info("wrote %d planted documents to %s", len(planted), out)
    return spec


def _record(doc: SynthDocument) -> dict[str, str]:
    # The loaders prefix ids with their split ("train/17"); the prefix is dropped here so that
    # reading the file back gives the same id, not "train/train/17".
    doc_id = doc.doc_id
    if doc.split is not None:
        doc_id = doc_id.removeprefix(f"{doc.split}/")
    record = {"id": doc_id, "text": doc.text, "label": doc.label}
    if doc.split is not None:
        record["split"] = doc.split
    return record


__all__ = [
    "DISTRACTOR_STEM",
    "MARKER_STEM",
    "UNMARKED_LABEL",
    "SynthDocument",
    "insertion_points",
    "label_names",
    "plant",
    "synthesize",
    "write_synth",
]
