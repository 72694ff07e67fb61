"""The audit over documents: batching never changes results, fast == naive end to end, and the
summary's arithmetic on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_fixtures import VOCAB, random_model

from attnaudit.data.types import EncodedDocument
from attnaudit.erasure.audit import AuditConfig, audit_documents
from attnaudit.erasure.examples import select_examples
from attnaudit.erasure.summary import attention_vs_gradient, summarize_removal, summarize_single_weight

LABELS = ["a", "b", "c"]


def random_docs(n: int, *, seed: int) -> list[EncodedDocument]:
    """Documents of 1-6 sentences of 1-7 tokens (some with a single sentence or token)."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        sentences = [
            rng.integers(2, VOCAB, size=int(rng.integers(1, 8))).tolist()
            for _ in range(int(rng.integers(1, 7)))
        ]
        tokens = [[f"w{t}" for t in s] for s in sentences]
        docs.append(EncodedDocument(f"d{i}", int(rng.integers(0, 3)), sentences, tokens))
    return docs


@pytest.mark.parametrize("name", ["flan-rnn", "han-cnn", "han-none"])
def test_batch_size_does_not_change_results(name: str) -> None:
    model = random_model(name, seed=1)
    docs = random_docs(23, seed=1)
    one = audit_documents(model, docs, LABELS, AuditConfig(batch_size=1))
    many = audit_documents(model, docs, LABELS, AuditConfig(batch_size=8))
    pd.testing.assert_frame_equal(one.single_weight, many.single_weight)
    pd.testing.assert_frame_equal(one.removal, many.removal)
    assert list(one.single_weight["doc_id"]) == [d.doc_id for d in docs]


@pytest.mark.parametrize("name", ["flan-cnn", "han-rnn"])
def test_fast_and_naive_audits_agree(name: str) -> None:
    model = random_model(name, seed=2)
    docs = random_docs(15, seed=2)
    fast = audit_documents(model, docs, LABELS, AuditConfig(path="fast"))
    naive = audit_documents(model, docs, LABELS, AuditConfig(path="naive"))
    pd.testing.assert_frame_equal(fast.removal, naive.removal)
    pd.testing.assert_frame_equal(fast.single_weight, naive.single_weight)


def test_same_seed_same_result_other_seed_other_random_draws() -> None:
    model = random_model("flan-none", seed=3)
    docs = random_docs(20, seed=3)
    first = audit_documents(model, docs, LABELS, AuditConfig(seed=5))
    again = audit_documents(model, docs, LABELS, AuditConfig(seed=5))
    other = audit_documents(model, docs, LABELS, AuditConfig(seed=6))
    pd.testing.assert_frame_equal(first.removal, again.removal)
    assert not first.single_weight["item_random"].equals(other.single_weight["item_random"])


def _single(flips_max: list[bool], flips_random: list[bool], delta_js: list[float]) -> pd.DataFrame:
    n = len(flips_max)
    frame = pd.DataFrame(
        {
            "skipped": [False] * n,
            "flip_max": flips_max,
            "flip_random": flips_random,
            "delta_js": delta_js,
            "js_max": [0.1] * n,
        }
    )
    for removal in ("second", "min", "gradient", "attention_x_gradient"):
        frame[f"flip_{removal}"] = False
    return frame


def test_table2_shares_are_the_four_cells() -> None:
    single = _single([True, True, False, False], [True, False, True, False], [0.2, 0.1, -0.1, 0.0])
    summary = summarize_single_weight(single)
    assert summary["table2"] == {"both": 0.25, "only_max": 0.25, "only_random": 0.25, "neither": 0.25}
    assert summary["share_delta_js_positive"] == 0.5
    assert summary["flip_rate"]["max"] == 0.5


def _removal(rows: list[tuple[str, str, float | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "doc_id": doc,
                "ranking": ranking,
                "n_items": n,
                "removed_at_flip": np.nan if k is None else k,
                "fraction_removed": np.nan if k is None else k / n,
                "mass_removed": np.nan if k is None else 0.5,
                "never_flipped": k is None,
                "single_item": n < 2,
            }
            for doc, ranking, k, n in rows
        ]
    )


def test_removal_summary_counts_never_flipped_and_beats_random() -> None:
    removal = _removal(
        [
            ("d1", "random", 4, 4),
            ("d1", "attention", 1, 4),
            ("d1", "gradient", 1, 4),
            ("d2", "random", None, 4),
            ("d2", "attention", None, 4),
            ("d2", "gradient", 2, 4),
            ("d3", "random", 2, 4),
            ("d3", "attention", 3, 4),
            ("d3", "gradient", 3, 4),
            ("d4", "random", 1, 1),
            ("d4", "attention", 1, 1),
            ("d4", "gradient", 1, 1),  # one item: left out
        ]
    )
    summary = summarize_removal(removal)
    assert summary["attention"]["n"] == 3
    assert summary["attention"]["share_never_flipped"] == pytest.approx(1 / 3)
    assert summary["attention"]["share_beats_random"] == pytest.approx(1 / 3)  # d1 only
    assert summary["gradient"]["share_beats_random"] == pytest.approx(2 / 3)  # d1, d2 (random never)
    assert summary["attention"]["median_fraction"] == pytest.approx((0.25 + 0.75) / 2)
    versus = attention_vs_gradient(removal)
    assert versus == {
        "attention_fewer": 0.0,
        "gradient_fewer": pytest.approx(1 / 3),
        "tie": pytest.approx(2 / 3),
    }


def test_examples_cover_each_category_once() -> None:
    single = _single([True, False, False], [False, False, False], [0.5, 0.01, 0.02])
    single["doc_id"] = ["d1", "d2", "d3"]
    removal = _removal(
        [("d1", "attention", 1, 3), ("d2", "attention", None, 3), ("d3", "attention", 2, 3)]
    )
    chosen = dict(select_examples(single, removal, per_category=1))
    assert chosen["d1"] == "largest_delta_js"  # also flips after one: listed once, first category
    assert chosen["d2"] == "never_flips"
    assert chosen["d3"] == "median"
