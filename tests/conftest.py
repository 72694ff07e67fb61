"""Shared fixtures: one torch thread (opt-in), and a small slice of the real IMDB file for tests
that run the whole pipeline."""

from __future__ import annotations

import os

# Never touch the network: transformers and huggingface_hub read these when first imported, and
# every Hugging Face model or tokenizer a test loads is a local folder (or the MiniLM package).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"
#: Documents kept per (split, label), and words kept per text: enough for every stage to do real
#: work, small enough that two models train and audit in seconds.
SLICE_DOCS = {"train": 150, "test": 60}
SLICE_WORDS = 120


@pytest.fixture
def count_prepares(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the real (uncached) data preparations: one entry per call of ``_prepare_flat``."""
    from attnaudit.data import prepare

    calls: list[int] = []
    real = prepare._prepare_flat

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "_prepare_flat", spy)
    return calls


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a shared 2-core machine waiting threads slow
    them down up to 100x. Opt-in per module: results depend on the thread count (float reductions),
    so tests comparing a run in this process with one in a subprocess must keep torch's default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """:func:`one_thread` for a whole module (``pytestmark = pytest.mark.usefixtures(...)``), so that
    hypothesis tests, which refuse function-scoped fixtures, run with one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def imdb_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL file of the first IMDB reviews per split and label (pos/neg), texts cut short.

    Same fields as the source file (split, label, id, rating, text), so the loaders read it the same
    way: polarity labels, the source's train/test split, dev carved from train.
    """
    if not IMDB.is_file():
        pytest.skip(f"IMDB data not found at {IMDB} (it lives beside the repository, in "
                    "../shared/data/); the pipeline tests train on a slice of it")
    wanted = {(split, label): n for split, n in SLICE_DOCS.items() for label in ("pos", "neg")}
    taken: Counter[tuple[str, str]] = Counter()
    rows = []
    with gzip.open(IMDB, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            key = (record["split"], record["label"])
            if taken[key] < wanted.get(key, 0):
                taken[key] += 1
                record["text"] = " ".join(record["text"].split()[:SLICE_WORDS])
                rows.append(record)
                if taken == wanted:
                    break
    path = tmp_path_factory.mktemp("imdb") / "imdb-slice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def _prepared_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the prepared-data cache (attnaudit.data.cache) at a folder of this test session, so
    tests never write to the user's home nor read entries left by earlier runs. Entries are keyed by
    the data's resolved path and content, so tests (each with its own tmp_path) do not meet."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTNAUDIT_CACHE", str(tmp_path_factory.mktemp("prepared-cache")))
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Other transformer families (``hf@<model_type>`` fixtures) in the shared suites run in the
    full tier: each costs as much as BERT's cases again; their own table (test_hf_families.py)
    keeps an encoder and a decoder in the quick tier."""
    for item in items:
        if "hf@" in item.nodeid and "test_hf_families" not in item.nodeid:
            item.add_marker(pytest.mark.full)
