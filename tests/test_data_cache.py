"""Fast data preparation: parallel tokenisation identical to serial, and the prepared-data cache
(hits, keys, corrupt entries, atomic writes, replayed warnings)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnaudit.data.batching as batching
import attnaudit.data.cache as cache
from attnaudit.data import DataConfig, DataError, PreparedData, Vocab, prepare_data
from attnaudit.data.batching import Limits, default_workers, tokenize_texts

TEXTS = [
    "The striker scored twice before half time. Fans cheered!",
    "Shares fell 2.5% after the bank cut its forecast... Analysts weren't surprised.",
    "The new phone has a larger screen.<br /><br />Battery life is better -- finally.",
    "Mr. Smith said: \u201cit's O'Neill's call.\u201d Then he left?! Nobody knew why.",
    "Caf\u00e9 owners in Z\u00fcrich raised prices by 1,000 francs; customers shrugged.",
    "<br /><br />",  # no token after cleaning: dropped with a warning
]


def write_jsonl(path: Path, n: int = 60, *, extra: str = "") -> Path:
    """``n`` documents over two labels, half train; text cycles through :data:`TEXTS`."""
    rows = [
        {"id": i, "split": "train" if i % 2 else "test", "label": "pos" if i % 3 else "neg",
         "text": TEXTS[i % len(TEXTS)] + (f" {extra}" if extra and i % len(TEXTS) != 5 else "")
         + (f" Item {i}." if i % len(TEXTS) != 5 else "")}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def same(a: PreparedData, b: PreparedData) -> bool:
    return (a.train == b.train and a.dev == b.dev and a.test == b.test
            and a.vocab == b.vocab and a.label_names == b.label_names and a.splits == b.splits)


# ---------------------------------------------------------------------------------------------------
# Parallel tokenisation


def test_parallel_tokenisation_is_identical_to_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "PARALLEL_MIN_DOCS", 10)  # fork workers for a small input
    texts = [TEXTS[i % len(TEXTS)] + f" Number {i} here." * (i % 4) for i in range(41)]
    limits = Limits(max_tokens=20, max_sentences=3, max_sentence_tokens=8)
    serial = tokenize_texts(texts, limits, workers=1)
    parallel = tokenize_texts(texts, limits, workers=2)
    assert serial.strings == parallel.strings
    for name in ("index", "sentence_lengths", "document_sentences"):
        assert np.array_equal(getattr(serial, name), getattr(parallel, name)), name
    # And the same as tokenising each document on its own.
    expected = [batching.tokenize_document(t, limits) for t in texts]
    tokens = serial.token_strings()
    lengths = serial.sentence_lengths.tolist()
    rebuilt, t, s = [], 0, 0
    for count in serial.document_sentences.tolist():
        doc = []
        for length in lengths[s : s + count]:
            doc.append(tokens[t : t + length])
            t += length
        s += count
        rebuilt.append(doc)
    assert rebuilt == expected


def test_parallel_prepare_data_is_identical_to_serial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "PARALLEL_MIN_DOCS", 10)
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl", 90)), min_count=1)
    serial = prepare_data(config, workers=1, cache=False)
    assert same(serial, prepare_data(config, workers=2, cache=False))
    assert serial.train and serial.test


def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNAUDIT_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("ATTNAUDIT_WORKERS", "many")
    with pytest.raises(DataError, match="ATTNAUDIT_WORKERS must be a positive integer"):
        default_workers()
    monkeypatch.delenv("ATTNAUDIT_WORKERS")
    assert 1 <= default_workers() <= 8
    with pytest.raises(DataError, match="workers must be a positive integer"):
        tokenize_texts(["a b"], Limits(), workers=0)


# ---------------------------------------------------------------------------------------------------
# The cache


def test_second_call_reuses_the_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, count_prepares: list[int]
) -> None:
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl")), min_count=1)
    uncached = prepare_data(config, cache=False)
    with caplog.at_level(logging.INFO, logger="attnaudit.data.prepare"):
        first = prepare_data(config)
        assert not [r for r in caplog.records if "reused from cache" in r.getMessage()]
        second = prepare_data(config)
    assert len(count_prepares) == 2  # the uncached call and the first cached one; not the second
    hits = [r.getMessage() for r in caplog.records if "reused from cache" in r.getMessage()]
    assert len(hits) == 1 and hits[0].startswith("prepared data reused from cache ")
    assert same(uncached, first) and same(uncached, second)
    # Plain Python lists of ints and strings, as when preparing: nothing numpy leaks out.
    doc = second.train[0]
    assert type(doc.sentences[0]) is list and type(doc.sentences[0][0]) is int
    assert type(doc.tokens[0][0]) is str and type(doc.label) is int


def test_given_vocab_labels_and_splits_are_cached_and_returned_as_given(
    tmp_path: Path, count_prepares: list[int]
) -> None:
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl")), min_count=1)
    base = prepare_data(config)
    vocab = Vocab(base.vocab.itos[:10])
    kwargs: dict[str, Any] = {"vocab": vocab, "label_names": ["neg", "pos", "other"],
                              "splits": base.splits}
    fresh = prepare_data(config, cache=False, **kwargs)
    first, again = prepare_data(config, **kwargs), prepare_data(config, **kwargs)
    assert len(count_prepares) == 3
    assert same(fresh, first) and same(fresh, again)
    assert again.vocab is vocab


def test_key_changes_with_content_settings_vocab_and_labels(
    tmp_path: Path, count_prepares: list[int]
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl")
    config = DataConfig(path=str(path), min_count=1)
    base = prepare_data(config)
    assert len(count_prepares) == 1

    prepare_data(DataConfig(path=str(path), min_count=2))  # a setting
    prepare_data(config, vocab=Vocab(base.vocab.itos[:5]))  # a vocabulary
    prepare_data(config, label_names=["neg", "pos", "x"])  # label names
    assert len(count_prepares) == 4

    stat = path.stat()
    write_jsonl(path, extra="changed")  # the content (same path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = prepare_data(config)
    assert len(count_prepares) == 5
    assert "changed" in changed.vocab and "changed" not in base.vocab

    # Every earlier variant is still cached: none of these prepares again.
    prepare_data(DataConfig(path=str(path), min_count=2))
    prepare_data(config)
    assert len(count_prepares) == 6  # min_count=2 on the changed content is new; the rest hit


def test_file_hash_is_remembered_by_path_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    path = write_jsonl(tmp_path / "d.jsonl")
    hashed: list[Path] = []
    real = cache._sha256_file

    def spy(p: Path) -> str:
        hashed.append(p)
        return real(p)

    monkeypatch.setattr(cache, "_sha256_file", spy)
    first = cache.data_digest(path, root)
    assert cache.data_digest(path, root) == first and len(hashed) == 1
    write_jsonl(path, extra="more")
    assert cache.data_digest(path, root) != first and len(hashed) == 2

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("one")
    (folder / "sub" / "b.txt").write_text("two")
    digest = cache.data_digest(folder, root)
    assert cache.data_digest(folder, root) == digest
    (folder / "sub" / "b.txt").write_text("three")
    assert cache.data_digest(folder, root) != digest
    assert cache.data_digest(folder, None) == cache.data_digest(folder, root)


@pytest.mark.parametrize("damage", ["truncate-array", "garble-meta", "drop-strings", "bad-index"])
def test_corrupt_entry_is_ignored_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, count_prepares: list[int], damage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("ATTNAUDIT_CACHE", str(root))  # a cache of this test alone
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl")), min_count=1)
    expected = prepare_data(config)
    (entry,) = [p for p in root.iterdir() if (p / "meta.json").is_file()]
    if damage == "truncate-array":
        target = entry / "train.ids.npy"
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "garble-meta":
        (entry / "meta.json").write_text("{not json")
    elif damage == "drop-strings":
        (entry / "strings.txt").unlink()
    else:
        index = np.load(entry / "test.token_index.npy")
        index[0] = 10**6
        np.save(entry / "test.token_index.npy", index)
    with caplog.at_level(logging.INFO, logger="attnaudit.data.prepare"):
        rebuilt = prepare_data(config)
        again = prepare_data(config)
    assert same(expected, rebuilt) and same(expected, again)
    assert len(count_prepares) == 2  # the first call and the rebuild; the third call hits
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "cache" in r.getMessage()]
    assert len(warnings) == 1 and "ignoring unreadable prepared-data cache entry" in warnings[0]
    assert any("reused from cache" in r.getMessage() for r in caplog.records)


def test_a_failed_write_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("ATTNAUDIT_CACHE", str(root))
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl")), min_count=1)
    real_save = np.save
    saved: list[int] = []

    def failing_save(*args: Any, **kwargs: Any) -> None:
        if len(saved) == 3:
            raise OSError("disk full")
        saved.append(1)
        real_save(*args, **kwargs)

    monkeypatch.setattr(cache.np, "save", failing_save)
    result = prepare_data(config)  # still prepares: a cache that cannot be written is only logged
    assert result.train
    assert list(root.iterdir()) == [root / "hashes"]  # no entry, no temporary folder left


def test_cache_can_be_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_prepares: list[int]
) -> None:
    monkeypatch.setenv("ATTNAUDIT_CACHE", "off")
    assert cache.cache_root() is None
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl")), min_count=1)
    prepare_data(config)
    prepare_data(config)
    assert len(count_prepares) == 2
    monkeypatch.setenv("ATTNAUDIT_CACHE", str(tmp_path / "elsewhere"))
    assert cache.cache_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("ATTNAUDIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "attnaudit" / "prepared"


def test_warnings_are_replayed_on_a_hit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"id": i, "split": s, "label": lab, "text": t} for i, (s, lab, t) in enumerate(
        [("train", "a", "Good film."), ("train", "b", "Bad film."), ("train", "a", "<br />"),
         ("test", "c", "Odd film."), ("test", "a", "Fine film.")]
    )]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = DataConfig(path=str(path), min_count=1)
    logs = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="attnaudit"):
            prepare_data(config)
        logs.append([(r.name, r.levelno, r.getMessage()) for r in caplog.records])
    assert logs[0] == logs[1]
    messages = [m for _, _, m in logs[0]]
    assert any("dropped 1 document(s) with no tokens" in m for m in messages)
    assert any("never seen in the training split: 'c'" in m for m in messages)


def test_unreadable_data_is_reported_by_the_loader(tmp_path: Path) -> None:
    # No key can be made for a missing file; the loader's own error must come through unchanged.
    with pytest.raises(DataError) as with_cache:
        prepare_data(DataConfig(path=str(tmp_path / "missing.jsonl")))
    with pytest.raises(DataError) as without:
        prepare_data(DataConfig(path=str(tmp_path / "missing.jsonl")), cache=False)
    assert str(with_cache.value) == str(without.value)


def test_evaluate_and_audit_after_training_reuse_the_training_entry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, count_prepares: list[int]
) -> None:
    # As train.py, evaluate_run and audit_run call it: first plain, then with the run's vocabulary,
    # labels (and saved splits).
    config = DataConfig(path=str(write_jsonl(tmp_path / "d.jsonl")), min_count=1)
    trained = prepare_data(config)
    as_run: dict[str, Any] = {"vocab": Vocab(trained.vocab.itos), "label_names": trained.label_names}
    calls = [as_run, {**as_run, "splits": trained.splits}, {"splits": trained.splits}]
    for kwargs in calls:
        expected = prepare_data(config, cache=False, **kwargs)
        reused = prepare_data(config, **kwargs)
        assert same(expected, reused)
        if "vocab" in kwargs:
            assert reused.vocab is kwargs["vocab"]
    assert len(count_prepares) == 1 + len(calls)  # only the uncached reference calls prepared

    # Saved splits list only kept documents: reusing the entry must not replay "dropped ..." for them.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="attnaudit"):
        prepare_data(config, cache=False, splits=trained.splits)
        fresh = [r.getMessage() for r in caplog.records]
        caplog.clear()
        prepare_data(config, splits=trained.splits)
        reused_logs = [r.getMessage() for r in caplog.records]
    assert fresh == reused_logs
    assert not any(m.startswith("dropped ") for m in reused_logs)

    # Anything that differs from what training produced prepares for real.
    prepare_data(config, label_names=["pos", "neg"])
    prepare_data(config, vocab=Vocab(trained.vocab.itos[:-1]))
    prepare_data(config, splits={"train": trained.splits["train"][:-1]})
    assert len(count_prepares) == 1 + len(calls) + 1 + 3
