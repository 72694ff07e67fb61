"""The IMDB file beside the repository (../shared/data/imdb50k.jsonl.gz): loading, splits, labels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from attnaudit.data import DataConfig, Document, load_documents, prepare_data, sort_labels

IMDB = Path(__file__).resolve().parents[2] / "shared/data/imdb50k.jsonl.gz"

pytestmark = pytest.mark.skipif(
    not IMDB.is_file(), reason=f"IMDB data not found at {IMDB} (it lives beside the repository)"
)


@pytest.fixture(scope="module")
def by_rating() -> list[Document]:
    return load_documents(IMDB, label_column="rating")


def test_imdb_rating_classes_and_source_splits(by_rating: list[Document]) -> None:
    assert len(by_rating) == 50_000
    counts = Counter(d.label for d in by_rating)
    assert sort_labels(counts) == ["1", "2", "3", "4", "7", "8", "9", "10"]
    assert Counter(d.split for d in by_rating) == {"train": 25_000, "test": 25_000}
    assert len({d.doc_id for d in by_rating}) == 50_000
    assert all(d.doc_id.startswith(f"{d.split}/") for d in by_rating)


def test_imdb_polarity_labels() -> None:
    docs = load_documents(IMDB)
    assert Counter((d.split, d.label) for d in docs) == {
        (s, lab): 12_500 for s in ("train", "test") for lab in ("pos", "neg")
    }
    # Ids restart in each split and label folder: the document id says which folder, as aclimdb does.
    assert docs[0].doc_id == "test/neg/0"


def test_imdb_prepare_keeps_test_split_and_carves_dev() -> None:
    config = DataConfig(
        path=str(IMDB), label_column="rating", max_train_docs=800, max_dev_docs=200,
        max_test_docs=200, seed=0,
    )
    data = prepare_data(config)
    assert data.label_names == ["1", "2", "3", "4", "7", "8", "9", "10"]
    assert (len(data.train), len(data.dev), len(data.test)) == (800, 200, 200)
    assert all(i.startswith("train/") for i in data.splits["train"] + data.splits["dev"])
    assert all(i.startswith("test/") for i in data.splits["test"])
    assert not set(data.splits["train"]) & set(data.splits["dev"])
    assert all(d.num_tokens <= config.limits.max_tokens for d in data.train)
    # <br /> tags never reach the tokens.
    assert not any(t in ("br", "<") for d in data.train for s in d.tokens for t in s)


def test_aclimdb_layout_reads_like_the_jsonl(tmp_path: Path, by_rating: list[Document]) -> None:
    import gzip

    records = []
    with gzip.open(IMDB, "rt", encoding="utf-8") as f:
        for line in f:
            records.append(json.loads(line))
            if len(records) == 30:
                break
    for r in records:
        folder = tmp_path / "aclImdb" / r["split"] / r["label"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r['id']}_{r['rating']}.txt").write_text(r["text"], encoding="utf-8")
    from_folders = load_documents(tmp_path / "aclImdb", label_column="rating")
    by_text = {d.text: d.label for d in from_folders}
    assert by_text == {r["text"]: str(r["rating"]) for r in records}
