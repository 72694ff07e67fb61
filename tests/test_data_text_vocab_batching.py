"""Text processing, vocabulary, encoding, batching, splits and prepare_data."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnaudit.data import (
    PAD_ID,
    UNK_ID,
    Batch,
    DataConfig,
    DataError,
    Document,
    EncodedDocument,
    Limits,
    Vocab,
    apply_splits,
    assign_splits,
    clean_text,
    collate,
    encode_documents,
    load_splits,
    make_batches,
    padded_size,
    prepare_data,
    save_splits,
    sort_labels,
    split_sentences,
    subsample,
    tokenize,
    tokenize_document,
)

# ---------------------------------------------------------------------------------------------------
# Text


def test_clean_text() -> None:
    raw = "  First  line.<br /><br />Second\tline <BR> third\u00a0part \r\n\r\n end  "
    assert clean_text(raw) == "First line.\nSecond line\nthird part\nend"


def test_split_sentences_paragraphs_and_abbreviations() -> None:
    text = clean_text("Mr. Smith arrived. He sat down!<br /><br />A heading<br />Then more? Yes.")
    assert split_sentences(text) == [
        "Mr. Smith arrived.", "He sat down!", "A heading", "Then more?", "Yes.",
    ]
    assert split_sentences("") == []
    assert split_sentences(" \n \n") == []


def test_tokenize() -> None:
    assert tokenize("Don't pay $5.00 -- it's WELL-known... Really?!") == [
        "don't", "pay", "$", "5.00", "--", "it's", "well", "-", "known", "...", "really", "?", "!",
    ]
    assert tokenize("Café 1,000 O’Neill’s") == ["café", "1,000", "o’neill’s"]
    assert tokenize("   ") == []


@pytest.mark.parametrize("paragraph", [
    "Mr. Smith arrived. He sat down! Then? Yes.",
    "Caf\u00e9 \u00e0 Z\u00fcrich. \u65e5\u672c\u8a9e\u306e\u6587\u3002"
    "\u3082\u3046\u4e00\u3064\u3002 \U0001f600 Done.",
    "no full stop at all",
    "x",
    "A sentence. " * 12000,  # longer than the reused 64 KiB buffer: it must grow
])
def test_fast_sentence_breaker_matches_blingfire(paragraph: str) -> None:
    import blingfire

    from attnaudit.data import text

    assert text._BREAKER is not None  # the fast path is in use on this platform
    assert text._BREAKER(paragraph) == blingfire.text_to_sentences(paragraph)
    # And again after a longer call left stale bytes in the buffer.
    assert text._BREAKER("Short one. Two.") == blingfire.text_to_sentences("Short one. Two.")


# ---------------------------------------------------------------------------------------------------
# Vocabulary


def test_vocab_build_order_min_count_and_roundtrip() -> None:
    tokens = [["b", "a", "c"], ["a", "b", "d"], ["a", "c", "b"], ["<unk>", "<unk>", "<unk>"]]
    vocab = Vocab.build(tokens, min_count=2)
    # Count desc, ties by token; "d" (once) is dropped; the reserved strings stay reserved.
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c"]
    assert vocab.itos[PAD_ID] == "<pad>" and vocab.itos[UNK_ID] == "<unk>"
    assert vocab.encode(["a", "d", "c"]) == [2, UNK_ID, 4]
    assert len(vocab) == 5
    assert Vocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    assert Vocab.build(tokens, min_count=1, max_size=3).itos == ["<pad>", "<unk>", "a"]


def test_vocab_from_counts_matches_build() -> None:
    tokens = [["b", "a", "c"], ["a", "b", "d"], ["a", "c", "b"], ["<unk>", "<pad>", "e"]]
    counts = Counter(t for s in tokens for t in s)
    for min_count, max_size in [(1, None), (2, None), (1, 4), (3, 3)]:
        assert (Vocab.from_counts(counts, min_count=min_count, max_size=max_size)
                == Vocab.build(tokens, min_count=min_count, max_size=max_size))
    with pytest.raises(DataError):
        Vocab.from_counts(counts, min_count=0)


def test_vocab_build_is_order_independent() -> None:
    tokens = [["x", "y"], ["y", "z"], ["z", "x"]]
    assert Vocab.build(tokens, min_count=1) == Vocab.build(tokens[::-1], min_count=1)


def test_vocab_rejects_bad_data() -> None:
    with pytest.raises(DataError):
        Vocab.from_dict({"itos": ["a", "b"]})
    with pytest.raises(DataError):
        Vocab.from_dict({})


# ---------------------------------------------------------------------------------------------------
# Encoding


def make_vocab(texts: list[str]) -> Vocab:
    return Vocab.build((t for text in texts for t in tokenize(text)), min_count=1)


def test_tokenize_document_limits() -> None:
    text = "One two three four five. Six seven. Eight nine ten eleven.<br />Twelve thirteen."
    limits = Limits(max_tokens=9, max_sentences=3, max_sentence_tokens=4)
    assert tokenize_document(text, limits) == [
        ["one", "two", "three", "four"], ["six", "seven", "."], ["eight", "nine"],  # 4 each, 9 in all
    ]
    limits = Limits(max_tokens=100, max_sentences=2, max_sentence_tokens=100)
    assert tokenize_document(text, limits) == [
        ["one", "two", "three", "four", "five", "."], ["six", "seven", "."],
    ]
    limits = Limits(max_tokens=100, max_sentences=100, max_sentence_tokens=100)
    assert tokenize_document(text, limits)[-1] == ["twelve", "thirteen", "."]


def test_limits_validation_and_roundtrip() -> None:
    with pytest.raises(DataError, match="max_tokens"):
        Limits(max_tokens=0)
    limits = Limits(10, 2, 5)
    assert Limits.from_dict(limits.to_dict()) == limits


def test_encode_documents_drops_empty_and_checks_labels(caplog: pytest.LogCaptureFixture) -> None:
    docs = [
        Document("d1", "Hello world. Bye.", "pos"),
        Document("d2", "<br /><br />", "neg"),
        Document("d3", "\u2603 \u2603", "neg"),  # symbols only: \w-less, but kept as tokens
    ]
    vocab = make_vocab(["hello world bye ."])
    with caplog.at_level(logging.WARNING, logger="attnaudit.data.batching"):
        encoded = encode_documents(docs, vocab, ["neg", "pos"])
    assert [e.doc_id for e in encoded] == ["d1", "d3"]
    assert "dropped 1 document" in caplog.text and "d2" in caplog.text
    first = encoded[0]
    assert first.label == 1
    assert first.tokens == [["hello", "world", "."], ["bye", "."]]
    assert first.sentences == [vocab.encode(["hello", "world", "."]), vocab.encode(["bye", "."])]
    assert encoded[1].sentences == [[UNK_ID, UNK_ID]]
    with pytest.raises(DataError, match="document d1: label 'pos' is not one of the labels"):
        encode_documents(docs[:1], vocab, ["neg"])


# ---------------------------------------------------------------------------------------------------
# Collate and batches


def enc(doc_id: str, sentences: list[list[int]], label: int = 0) -> EncodedDocument:
    return EncodedDocument(doc_id, label, sentences, [[str(i) for i in s] for s in sentences])


def test_collate_shapes() -> None:
    docs = [enc("a", [[2, 3], [4]], 1), enc("b", [[5, 6, 7]], 0)]
    flat = collate(docs, hierarchical=False)
    assert flat.token_ids.tolist() == [[2, 3, 4], [5, 6, 7]]
    assert flat.labels.tolist() == [1, 0] and flat.doc_ids == ["a", "b"]
    assert flat.token_ids.dtype == torch.long
    hier = collate(docs, hierarchical=True)
    assert hier.token_ids.shape == (2, 2, 3)
    assert hier.token_ids.tolist() == [[[2, 3, 0], [4, 0, 0]], [[5, 6, 7], [0, 0, 0]]]
    with pytest.raises(ValueError, match="empty"):
        collate([], hierarchical=False)


def unpad(batch: Batch, *, hierarchical: bool) -> list[list[list[int]] | list[int]]:
    """Each document's ids back from a padded batch (real ids are never PAD_ID)."""
    out: list[list[list[int]] | list[int]] = []
    for row in batch.token_ids.tolist():
        if hierarchical:
            out.append([[t for t in s if t != PAD_ID] for s in row if any(t != PAD_ID for t in s)])
        else:
            out.append([t for t in row if t != PAD_ID])
    return out


sentence_st = st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=7)
doc_st = st.lists(sentence_st, min_size=1, max_size=5)
docs_st = st.lists(doc_st, min_size=1, max_size=30).map(
    lambda docs: [enc(f"d{i}", sents, i % 3) for i, sents in enumerate(docs)]
)


@settings(max_examples=60, deadline=None)
@given(docs=docs_st, hierarchical=st.booleans())
def test_collate_then_unpad_roundtrip(docs: list[EncodedDocument], hierarchical: bool) -> None:
    batch = collate(docs, hierarchical=hierarchical)
    expected = [
        d.sentences if hierarchical else [t for s in d.sentences for t in s] for d in docs
    ]
    assert unpad(batch, hierarchical=hierarchical) == expected
    assert batch.labels.tolist() == [d.label for d in docs]
    assert batch.token_ids.numel() == padded_size(docs, hierarchical=hierarchical)


@settings(max_examples=60, deadline=None)
@given(
    docs=docs_st,
    hierarchical=st.booleans(),
    batch_size=st.integers(min_value=1, max_value=8),
    max_batch_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
    shuffle=st.booleans(),
    seed=st.integers(min_value=0, max_value=3),
)
def test_make_batches_cover_every_document_once(
    docs: list[EncodedDocument],
    hierarchical: bool,
    batch_size: int,
    max_batch_tokens: int | None,
    shuffle: bool,
    seed: int,
) -> None:
    batches = make_batches(
        docs, hierarchical=hierarchical, batch_size=batch_size,
        max_batch_tokens=max_batch_tokens, shuffle=shuffle, seed=seed,
    )
    ids = [i for b in batches for i in b.doc_ids]
    assert sorted(ids) == sorted(d.doc_id for d in docs)
    by_id = {d.doc_id: d for d in docs}
    for batch in batches:
        assert len(batch) <= batch_size
        if max_batch_tokens is not None and len(batch) > 1:
            assert batch.token_ids.numel() <= max_batch_tokens
        members = [by_id[i] for i in batch.doc_ids]
        assert unpad(batch, hierarchical=hierarchical) == [
            m.sentences if hierarchical else [t for s in m.sentences for t in s] for m in members
        ]
    again = make_batches(
        docs, hierarchical=hierarchical, batch_size=batch_size,
        max_batch_tokens=max_batch_tokens, shuffle=shuffle, seed=seed,
    )
    assert [b.doc_ids for b in again] == [b.doc_ids for b in batches]


def test_make_batches_buckets_by_length_and_shuffles_order() -> None:
    docs = [enc(f"d{n}", [[1] * n]) for n in (5, 1, 9, 3, 7, 2, 8, 4, 6, 10)]
    batches = make_batches(docs, hierarchical=False, batch_size=3)
    assert [b.doc_ids for b in batches] == [
        ["d1", "d2", "d3"], ["d4", "d5", "d6"], ["d7", "d8", "d9"], ["d10"],
    ]
    orders = {
        tuple(tuple(b.doc_ids) for b in make_batches(docs, hierarchical=False, batch_size=3,
                                                      shuffle=True, seed=s))
        for s in range(6)
    }
    assert len(orders) > 1
    capped = make_batches(docs, hierarchical=False, batch_size=64, max_batch_tokens=12)
    assert all(b.token_ids.numel() <= 12 or len(b) == 1 for b in capped)


# ---------------------------------------------------------------------------------------------------
# Splits


def corpus(n: int = 100, split: str | None = None) -> list[Document]:
    return [Document(f"doc{i:03d}", f"text {i}", "a" if i % 4 else "b", split) for i in range(n)]


def test_assign_splits_random_stratified_deterministic() -> None:
    docs = corpus()
    parts = assign_splits(docs, seed=1)
    assert {k: len(v) for k, v in parts.items()} == {"train": 80, "dev": 10, "test": 10}
    ids = [d.doc_id for part in parts.values() for d in part]
    assert sorted(ids) == [d.doc_id for d in docs]
    # 25% of the documents are "b": the same share in each split.
    assert sum(d.label == "b" for d in parts["test"]) in (2, 3)
    assert sum(d.label == "b" for d in parts["train"]) == 20
    again = assign_splits(list(reversed(docs)), seed=1)
    assert {k: {d.doc_id for d in v} for k, v in again.items()} == {
        k: {d.doc_id for d in v} for k, v in parts.items()
    }
    other = assign_splits(docs, seed=2)
    assert {d.doc_id for d in other["test"]} != {d.doc_id for d in parts["test"]}


def test_assign_splits_keeps_source_and_carves_dev() -> None:
    docs = [*corpus(40, "train"), Document("t1", "x", "a", "test"), Document("t2", "y", "b", "test")]
    parts = assign_splits(docs, seed=0, dev_fraction=0.25)
    assert [d.doc_id for d in parts["test"]] == ["t1", "t2"]
    assert len(parts["dev"]) == 10 and len(parts["train"]) == 30
    assert not {d.doc_id for d in parts["dev"]} & {d.doc_id for d in parts["train"]}
    with_dev = [*docs, Document("v1", "z", "a", "dev")]
    assert [d.doc_id for d in assign_splits(with_dev, seed=0)["dev"]] == ["v1"]
    train_only = assign_splits(corpus(50, "train"), seed=0)
    assert {k: len(v) for k, v in train_only.items()} == {"train": 40, "dev": 5, "test": 5}


def test_assign_splits_errors() -> None:
    with pytest.raises(DataError, match="have a split and the others none"):
        assign_splits(corpus(3) + corpus(2, "train"), seed=0)
    with pytest.raises(DataError, match="no training documents"):
        assign_splits(corpus(3, "test"), seed=0, dev_fraction=0.0, test_fraction=0.0)
    with pytest.raises(DataError, match="dev_fraction"):
        assign_splits(corpus(10), seed=0, dev_fraction=1.5)


def test_subsample_stratified() -> None:
    docs = corpus(100)
    sample = subsample(docs, 20, seed=3)
    assert len(sample) == 20 and sum(d.label == "b" for d in sample) == 5
    assert sample == [d for d in docs if d in sample]  # input order kept
    assert subsample(docs, 20, seed=3) == sample
    assert subsample(docs, None, seed=3) == docs and subsample(docs, 500, seed=3) == docs


def test_save_load_apply_splits(tmp_path: Path) -> None:
    docs = corpus(20)
    parts = assign_splits(docs, seed=0)
    path = tmp_path / "run" / "splits.json"
    save_splits(path, parts)
    ids = load_splits(path)
    assert ids == {k: [d.doc_id for d in v] for k, v in parts.items()}
    assert apply_splits(docs, ids) == parts
    assert [p.name for p in path.parent.iterdir()] == ["splits.json"]  # no temporary left over
    with pytest.raises(DataError, match="not in the data"):
        apply_splits(docs[:5], ids)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"bad\.json: expected"):
        load_splits(tmp_path / "bad.json")


# ---------------------------------------------------------------------------------------------------
# prepare_data


def test_sort_labels_numeric_aware() -> None:
    assert sort_labels(["10", "2", "1", "2", "9"]) == ["1", "2", "9", "10"]
    assert sort_labels(["pos", "neg", "3"]) == ["3", "neg", "pos"]


def write_small_set(path: Path) -> Path:
    rows = []
    for i in range(60):
        label = str(i % 3 + 1) if i % 3 else "10"
        split = "test" if i >= 50 else "train"
        words = " ".join(["common"] * 6 + [f"rare{i}"] + ([f"testonly{i}"] if split == "test" else []))
        rows.append({"split": split, "id": i, "label": label, "text": f"{words}. Second one."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prepare_data(tmp_path: Path) -> None:
    f = write_small_set(tmp_path / "small.jsonl")
    config = DataConfig(path=str(f), min_count=2, seed=0, max_test_docs=6)
    data = prepare_data(config)
    assert data.label_names == ["2", "3", "10"]
    assert (len(data.train), len(data.dev), len(data.test)) == (45, 5, 6)
    assert data.splits["test"] == [d.doc_id for d in data.test]
    assert "common" in data.vocab and "rare1" not in data.vocab
    assert not any(t.startswith("testonly") for t in data.vocab.itos)  # train-only vocabulary
    assert all(d.doc_id.startswith("train/") for d in data.train + data.dev)

    # Reloading a run: the same vocabulary, labels and splits give the same encoded documents.
    again = prepare_data(config, vocab=data.vocab, label_names=data.label_names, splits=data.splits)
    assert again.test == data.test and again.train == data.train

    with pytest.raises(DataError, match="unknown label '10'"):
        prepare_data(config, vocab=data.vocab, label_names=["2", "3"])


def test_data_config_roundtrip() -> None:
    config = DataConfig(path="x.csv", limits=Limits(100, 10, 20), max_train_docs=5)
    data = json.loads(json.dumps(config.to_dict()))
    assert DataConfig.from_dict(data) == config
    assert DataConfig.from_dict({}) == DataConfig()
    with pytest.raises(DataError, match=r"unknown setting.*max_docs"):
        DataConfig.from_dict({"max_docs": 3})
