"""Test 1: the random comparison item, the removals made, and the one-item exclusion (the conformance
suite checks the recorded values against a direct erasure at every site)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from model_fixtures import LABELS, random_batch, random_docs, random_model

from attnaudit.erasure.audit import audit_documents
from attnaudit.erasure.engine import AuditPlan
from attnaudit.erasure.single_weight import (
    BASE_REMOVALS,
    choose_items,
    draw_random_item,
    single_removals,
    single_weight_test,
)
from attnaudit.rankings import build_ranking

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_uniform_random_item_is_never_the_top_item_and_covers_the_others() -> None:
    counts = Counter(draw_random_item(0, f"doc{i}", 5, 2) for i in range(2000))
    assert set(counts) == {0, 1, 3, 4}
    assert min(counts.values()) > 400  # roughly uniform: 500 expected each


def test_original_draw_reproduces_the_original_code() -> None:
    draws = {draw_random_item(0, f"doc{i}", 4, 0, draw="original") for i in range(500)}
    assert draws == {1, 2, 3}  # position 0 never drawn; the top item (0 here) is not excluded
    with pytest.raises(ValueError, match="draw must be"):
        draw_random_item(0, "doc", 4, 0, draw="other")  # type: ignore[arg-type]


def test_random_item_depends_on_seed_document_and_purpose_only() -> None:
    draws = [draw_random_item(1, f"doc{i}", 50, 0) for i in range(20)]
    assert draws == [draw_random_item(1, f"doc{i}", 50, 0) for i in range(20)]
    assert draws != [draw_random_item(2, f"doc{i}", 50, 0) for i in range(20)]
    assert draws != [draw_random_item(1, f"doc{i}", 50, 0, purpose="other") for i in range(20)]


def test_removals_are_the_base_ones_then_the_rankings_top_items() -> None:
    assert BASE_REMOVALS == ("max", "second", "min", "random")
    assert single_removals(("random", "attention", "gradient", "attention_x_gradient")) == (
        "max", "second", "min", "random", "gradient", "attention_x_gradient")
    assert single_removals(("attention",)) == BASE_REMOVALS


def test_choose_items_by_hand() -> None:
    weights = torch.tensor([[0.1, 0.5, 0.15, 0.25, 0.0], [0.7, 0.3, 0.0, 0.0, 0.0]],
                           dtype=torch.float64)
    mask = weights > 0
    scores = {"gradient": torch.tensor([[0.0, 1.0, 3.0, 2.0, -math.inf],
                                        [-1.0, 2.0, -math.inf, -math.inf, -math.inf]])}
    items = choose_items(weights, mask, scores, ("max", "second", "min", "random", "gradient"),
                         ["a", "b"], seed=0)
    assert items[:, [0, 1, 2, 4]].tolist() == [[1, 3, 0, 2], [0, 1, 1, 1]]
    assert items[0, 3] != 1 and items[1, 3] == 1  # random: never the top item (b has one other)


def _columns(name: str, lengths: list[int], *, seed: int = 0, site: str | None = None,
             **options: object) -> dict[str, np.ndarray]:
    model = random_model(name, seed=seed)
    batch = random_batch(name, seed=seed, lengths=lengths)
    with torch.no_grad():
        output = model.run(batch)
    site = site or model.pooling_site
    rankings = ("gradient", "attention_x_gradient")
    scores = {r: build_ranking(r).rank(model, output, site, batch.doc_ids) for r in rankings}
    return single_weight_test(model, output, site, scores, single_removals(rankings),
                              batch.doc_ids, seed=seed, **options)  # type: ignore[arg-type]


def test_one_item_documents_are_skipped_with_missing_values() -> None:
    cols = _columns("flan-cnn", [1, 5, 1])
    assert cols["skipped"].tolist() == [True, False, True]
    for removal in single_removals(("gradient", "attention_x_gradient")):
        for b in (0, 2):
            assert cols[f"item_{removal}"][b] == -1
            assert math.isnan(cols[f"js_{removal}"][b]) and math.isnan(cols[f"a_{removal}"][b])
            assert math.isnan(cols[f"flip_{removal}"][b])
        assert not math.isnan(cols[f"js_{removal}"][1])
    assert math.isnan(cols["delta_js"][0]) and not math.isnan(cols["delta_js"][1])


def test_one_item_documents_are_null_in_the_table_and_counted() -> None:
    """The tables hold flip_* as nullable booleans: null (not False) for skipped documents, which
    removal.parquet flags as single_item (issue "What new users hit")."""
    model = random_model("han-rnn", seed=4)
    docs = random_docs(12, seed=4, max_sentences=3, max_words=2)
    plan = AuditPlan(sites=("sentence", "word"), rankings=("random", "attention", "gradient"))
    frames = audit_documents(model, docs, LABELS, plan, batch_size=5)
    single, removal = frames.single_weight, frames.removal
    assert single["skipped"].any() and not single["skipped"].all()
    for column in [c for c in single.columns if c.startswith("flip_")]:
        assert str(single[column].dtype) == "boolean"
        assert single.loc[single["skipped"], column].isna().all(), column
        assert single.loc[~single["skipped"], column].notna().all(), column
    assert (single.loc[single["skipped"], "n_items"] < 2).all()
    assert (single.loc[~single["skipped"], "n_items"] >= 2).all()
    merged = removal.merge(single[["site", "doc_id", "skipped"]], on=["site", "doc_id"])
    assert (merged["single_item"] == merged["skipped"]).all()
    # a one-item document is removed-at-flip 1 or never flipped, nothing else
    one = removal[removal["single_item"]]
    assert one["removed_at_flip"].isna().eq(one["never_flipped"]).all()
    assert set(one["removed_at_flip"].dropna()) <= {1.0}


def test_random_item_at_another_site_is_drawn_independently() -> None:
    """The paper's site keeps the original purpose key; the word site draws with its own."""
    model = random_model("han-none", seed=3)
    batch = random_batch("han-none", seed=3, lengths=[6, 5, 4])
    with torch.no_grad():
        output = model.run(batch)
    for site, purpose in (("sentence", "single_weight:random"),
                          ("word", "single_weight:random:word")):
        cols = single_weight_test(model, output, site, {}, BASE_REMOVALS, batch.doc_ids, seed=3)
        lengths = output.site(site).mask.sum(1).tolist()
        for b, (doc_id, n) in enumerate(zip(batch.doc_ids, lengths, strict=True)):
            if n < 2:
                continue
            top = int(cols["item_max"][b])
            assert cols["item_random"][b] == draw_random_item(3, doc_id, n, top, purpose=purpose)


def test_original_draw_can_remove_the_top_item() -> None:
    cols = _columns("flan-none", [3] * 40, random_draw="original")
    assert set(cols["item_random"].tolist()) <= {1, 2}
    hit = cols["item_random"] == cols["item_max"]
    assert hit.any()  # the original code could "compare" i* with itself
    np.testing.assert_allclose(cols["delta_js"][hit], 0.0)
