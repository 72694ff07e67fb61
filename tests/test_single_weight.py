"""Test 1: which items are removed, what is recorded, and the one-item exclusion."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from model_fixtures import random_batch, random_model

from attnaudit.erasure.interventions import erase
from attnaudit.erasure.metrics import js_divergence
from attnaudit.erasure.single_weight import SINGLE_REMOVALS, draw_random_item, single_weight_test
from attnaudit.rankings import build_ranking


def _run(name: str, lengths: list[int], *, seed: int = 0, **options: object) -> tuple:  # type: ignore[type-arg]
    model = random_model(name, seed=seed)
    batch = random_batch(name, seed=seed, lengths=lengths)
    with torch.no_grad():
        output = model.run(batch)
    scores = {
        r: build_ranking(r).rank(model, output, batch.doc_ids)
        for r in ("gradient", "attention_x_gradient")
    }
    return model, output, single_weight_test(model, output, scores, batch.doc_ids, seed=seed, **options)  # type: ignore[arg-type]


def test_uniform_random_item_is_never_the_top_item_and_covers_the_others() -> None:
    counts = Counter(draw_random_item(0, f"doc{i}", 5, 2) for i in range(2000))
    assert set(counts) == {0, 1, 3, 4}
    assert min(counts.values()) > 400  # roughly uniform: 500 expected each


def test_original_draw_reproduces_the_original_code() -> None:
    draws = {draw_random_item(0, f"doc{i}", 4, 0, draw="original") for i in range(500)}
    assert draws == {1, 2, 3}  # position 0 never drawn; the top item (0 here) is not excluded


@pytest.mark.parametrize("name", ["flan-rnn", "han-none"])
def test_recorded_values_match_a_direct_computation(name: str) -> None:
    model, output, cols = _run(name, [7, 4, 9])
    base = torch.softmax(output.logits, -1)
    for b in range(3):
        n = int(output.mask[b].sum())
        weights = output.attention[b, :n]
        assert cols["item_max"][b] == int(weights.argmax())
        assert cols["item_min"][b] == int(weights.argmin())
        assert cols["item_second"][b] == int(weights.argsort(descending=True)[1])
        assert cols["item_random"][b] != cols["item_max"][b]
        for removal in SINGLE_REMOVALS:
            item = int(cols[f"item_{removal}"][b])
            removed = torch.zeros(n, dtype=torch.bool)
            removed[item] = True
            with torch.no_grad():
                logits = model.head(output.states[b : b + 1, :n], erase(weights, removed)[None])
            probs = torch.softmax(logits, -1)
            assert cols[f"a_{removal}"][b] == pytest.approx(float(weights[item]))
            js = float(js_divergence(base[b], probs[0]))
            assert cols[f"js_{removal}"][b] == pytest.approx(js, abs=1e-12)
            assert cols[f"flip_{removal}"][b] == bool(probs.argmax() != base[b].argmax())
    np.testing.assert_allclose(cols["delta_js"], cols["js_max"] - cols["js_random"])
    np.testing.assert_allclose(cols["delta_a"], cols["a_max"] - cols["a_random"])
    assert (cols["delta_a"] >= 0).all()


def test_one_item_documents_are_skipped_and_counted() -> None:
    _, _, cols = _run("flan-cnn", [1, 5, 1])
    assert cols["skipped"].tolist() == [True, False, True]
    for removal in SINGLE_REMOVALS:
        assert math.isnan(cols[f"js_{removal}"][0]) and math.isnan(cols[f"js_{removal}"][2])
        assert not cols[f"flip_{removal}"][0]
    assert not math.isnan(cols["js_max"][1])


def test_js_base_two_is_base_e_over_ln2() -> None:
    _, _, nats = _run("flan-none", [6, 8], js_base="e")
    _, _, bits = _run("flan-none", [6, 8], js_base="2")
    np.testing.assert_allclose(bits["js_max"], nats["js_max"] / math.log(2))
