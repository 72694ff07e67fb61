"""Data preparation speed: the pre-optimisation serial path against the new one, serial and parallel,
and a reload from the prepared-data cache, all in one process on the same IMDB documents.

    .venv/bin/python benchmarks/prepare_speed.py [--docs 4000] [--workers N] [--repeat 3] [--data F]

Reads ``--docs`` evenly spaced reviews (both splits and labels) of ``--data`` (default
``../shared/data/imdb50k.jsonl.gz``; skips with a message when it is absent), writes them to a
temporary JSONL file and times :func:`prepare_data` end to end (reading, splitting, sentence
splitting, tokenising, vocabulary, indexing) in docs/s; each variant is run ``--repeat`` times
and the best time is kept (the machine may be shared). Every variant's
result is checked to be identical to the reference's. The reference is the code as it was before
this work, kept below as ``_reference_*`` functions.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import blingfire

import attnaudit.data.prepare as prepare_module
from attnaudit.config import DataConfig
from attnaudit.data.batching import Limits, default_workers
from attnaudit.data.loaders import load_documents
from attnaudit.data.prepare import PreparedData, prepare_data, sort_labels
from attnaudit.data.splits import SPLITS, assign_splits, subsample
from attnaudit.data.text import _TOKEN_RE, clean_text
from attnaudit.data.types import UNK_ID, DataError, Document, EncodedDocument
from attnaudit.data.vocab import Vocab

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"


# ---------------------------------------------------------------------------------------------------
# The reference: preparation as it was before the speed work (serial, per-sentence Python loops).


def _reference_split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        split = blingfire.text_to_sentences(paragraph)
        if not split:
            sentences.append(paragraph)
            continue
        for sentence in split.split("\n"):
            sentence = sentence.strip()
            if sentence:
                sentences.append(sentence)
    return sentences


def _reference_tokenize(sentence: str) -> list[str]:
    tokens: list[str] = []
    for chunk in sentence.lower().split():
        if chunk.isalnum():
            tokens.append(chunk)
        else:
            tokens += _TOKEN_RE.findall(chunk)
    return tokens


def _reference_tokenize_document(text: str, limits: Limits) -> list[list[str]]:
    sentences: list[list[str]] = []
    budget = limits.max_tokens
    for sentence in _reference_split_sentences(clean_text(text)):
        tokens = _reference_tokenize(sentence)
        if not tokens:
            continue
        tokens = tokens[: min(limits.max_sentence_tokens, budget)]
        sentences.append(tokens)
        budget -= len(tokens)
        if budget <= 0 or len(sentences) >= limits.max_sentences:
            break
    return sentences


def _reference_tokenize_documents(
    docs: Iterable[Document], limits: Limits
) -> list[tuple[Document, list[list[str]]]]:
    result = []
    gc.disable()
    try:
        for doc in docs:
            sentences = _reference_tokenize_document(doc.text, limits)
            if sentences:
                result.append((doc, sentences))
    finally:
        gc.enable()
    return result


def _reference_encode(vocab: Vocab, tokens: Iterable[str]) -> list[int]:
    get = vocab.stoi.get
    return [get(token, UNK_ID) for token in tokens]


def _reference_index_documents(
    tokenized: Iterable[tuple[Document, list[list[str]]]], vocab: Vocab, label_names: Sequence[str]
) -> list[EncodedDocument]:
    label_index = {name: i for i, name in enumerate(label_names)}
    encoded = []
    gc.disable()
    try:
        for doc, sentences in tokenized:
            encoded.append(EncodedDocument(
                doc_id=doc.doc_id, label=label_index[doc.label],
                sentences=[_reference_encode(vocab, s) for s in sentences], tokens=sentences,
            ))
    finally:
        gc.enable()
    return encoded


def _reference_prepare(config: DataConfig) -> PreparedData:
    path = Path(config.path)
    docs = load_documents(path, fmt=config.fmt, text_column=config.text_column,
                          label_column=config.label_column, id_column=config.id_column,
                          on_empty=config.on_empty)
    parts = assign_splits(docs, seed=config.seed, dev_fraction=config.dev_fraction,
                          test_fraction=config.test_fraction)
    caps = {"train": config.max_train_docs, "dev": config.max_dev_docs, "test": config.max_test_docs}
    parts = {name: subsample(parts[name], caps[name], config.seed) for name in parts}
    names = sort_labels(d.label for d in docs)
    tokenized = {name: _reference_tokenize_documents(parts[name], config.limits) for name in SPLITS}
    if not tokenized["train"]:
        raise DataError("no training document has any token")
    vocab = Vocab.build((s for _, sentences in tokenized["train"] for s in sentences),
                        min_count=config.min_count, max_size=config.max_vocab)
    encoded = {name: _reference_index_documents(tokenized[name], vocab, names) for name in tokenized}
    return PreparedData(train=encoded["train"], dev=encoded["dev"], test=encoded["test"],
                        vocab=vocab, label_names=names,
                        splits={name: [d.doc_id for d in e] for name, e in encoded.items()})


# ---------------------------------------------------------------------------------------------------


def _same(a: PreparedData, b: PreparedData) -> bool:
    return (a.train == b.train and a.dev == b.dev and a.test == b.test
            and a.vocab.itos == b.vocab.itos and a.label_names == b.label_names
            and a.splits == b.splits)


def _best_time(run: Callable[[], PreparedData], repeat: int) -> tuple[float, PreparedData]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def _machine() -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.platform()} | Python {platform.python_version()} | {cpu} | "
            f"{os.cpu_count()} CPUs ({usable} usable) | load average {load} | "
            f"numpy {metadata.version('numpy')} | blingfire {metadata.version('blingfire')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4000, help="IMDB reviews to prepare")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for the parallel variant (default: min(CPUs, 8))")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; best is kept")
    parser.add_argument("--data", type=Path, default=IMDB, help="the IMDB JSONL.gz file")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: IMDB data not found at {args.data} (it lives beside the repository, in "
              "../shared/data/imdb50k.jsonl.gz)")
        return 0
    workers = args.workers or default_workers()
    print(_machine())
    with tempfile.TemporaryDirectory(prefix="prepare-speed-") as tmp:
        data = Path(tmp) / "imdb.jsonl"
        with gzip.open(args.data, "rt", encoding="utf-8") as f:
            lines = f.readlines()
        # Evenly spaced reviews: the file is sorted by split and label, so its head is one class.
        rows = [json.loads(line) for line in lines[:: max(1, len(lines) // args.docs)][: args.docs]]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        config = DataConfig(path=str(data))
        n = len(rows)
        print(f"{n} IMDB reviews, {data.stat().st_size / 1e6:.1f} MB; best of {args.repeat} runs; "
              f"parallel variant: {workers} workers")

        start = time.perf_counter()
        _load_only(config)
        t_load = time.perf_counter() - start
        t_ref, ref = _best_time(lambda: _reference_prepare(config), args.repeat)
        t_1, new_1 = _best_time(lambda: prepare_data(config, workers=1, cache=False), args.repeat)
        t_n, new_n = _best_time(
            lambda: prepare_data(config, workers=workers, cache=False), args.repeat
        )
        timed = {"save_entry": 0.0, "data_digest": 0.0}
        for name in timed:
            setattr(prepare_module, name, _timed(getattr(prepare_module, name), name, timed))
        t_cold, cold = float("inf"), None
        for attempt in range(args.repeat):
            # A fresh cache folder each time: every run is a miss (data hashed, entry stored).
            os.environ["ATTNAUDIT_CACHE"] = str(Path(tmp) / f"cache-{attempt}")
            timed.update(dict.fromkeys(timed, 0.0))
            gc.collect()
            start = time.perf_counter()
            cold = prepare_data(config, workers=workers)
            elapsed = time.perf_counter() - start
            if elapsed < t_cold:
                t_cold, cold_parts = elapsed, dict(timed)
        assert cold is not None
        t_hit, hit = _best_time(lambda: prepare_data(config, workers=workers), args.repeat)
        for name, result in [("new, 1 worker", new_1), (f"new, {workers} workers", new_n),
                             ("cache miss", cold), ("cache hit", hit)]:
            if not _same(ref, result):
                print(f"ERROR: {name} differs from the reference")
                return 1

        def row(name: str, seconds: float) -> None:
            print(f"  {name:38s} {seconds:7.3f} s {n / seconds:9.0f} docs/s {t_ref / seconds:6.1f}x")

        print("variant                                   time      docs/s   vs reference")
        row("reading only (load_documents)", t_load)
        row("reference (before), serial", t_ref)
        row("new, 1 worker, no cache", t_1)
        row(f"new, {workers} workers, no cache", t_n)
        row(f"new, {workers} workers, cache miss + store", t_cold)
        print(f"    (of which hashing the data file {cold_parts['data_digest']:.3f} s, "
              f"storing the entry {cold_parts['save_entry']:.3f} s)")
        row("cache hit (reload)", t_hit)
        print("all variants give results identical to the reference")
    return 0


def _timed(function: Any, name: str, totals: dict[str, float]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    return wrapper


def _load_only(config: DataConfig) -> list[Document]:
    return load_documents(Path(config.path), fmt=config.fmt)


if __name__ == "__main__":
    sys.exit(main())
