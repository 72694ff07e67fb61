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


#: The numeric tests: float results compared across paths, batches, chunks, processes and against
#: references. ``make test-all`` reruns them under ``ATEN_CPU_CAPABILITY=default`` (torch's
#: scalar kernels besides this CPU's vector ones), where last-bit differences between machines
#: show up on the developer's machine rather than on someone else's (tests/tolerances.py).
NUMERIC_MODULES = frozenset({
    "test_attention_steps.py", "test_attributions.py", "test_conformance.py",
    "test_counterfactual.py", "test_erasure.py", "test_hf_model.py", "test_input_erasure.py",
    "test_measures.py", "test_measures_faithfulness.py", "test_models.py", "test_regression.py",
    "test_single_weight.py", "test_word_items.py",
})
NUMERIC_TESTS = frozenset({
    "tests/test_pipeline.py::test_killed_audit_resumes_from_its_finished_parts",
    "tests/test_audit_run.py::test_two_processes_under_torchrun_give_the_one_process_tables",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in NUMERIC_MODULES or item.nodeid.split("[")[0] in NUMERIC_TESTS:
            item.add_marker(pytest.mark.numeric)


def pytest_report_header() -> str:
    """Which of torch's CPU kernel sets runs the suite: results differ between them in the last
    bits (tests/tolerances.py)."""
    chosen = os.environ.get("ATEN_CPU_CAPABILITY", "unset: the best this CPU has")
    return f"torch CPU kernels: {torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY={chosen})"
