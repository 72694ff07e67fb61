"""Property tests of the attention interventions: the fast path against the naive reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import ALL_MODELS, random_batch, random_model

from attnaudit.erasure.interventions import (
    erase,
    first_flip_from_prefixes,
    naive_first_flip,
    prefix_logits,
    removal_order,
    single_removal_logits,
)
from attnaudit.erasure.metrics import js_divergence
from attnaudit.erasure.removal import removal_test
from attnaudit.rankings import PAPER_RANKINGS, build_ranking, decision_gradient

lengths_strategy = st.lists(st.integers(1, 12), min_size=1, max_size=4)
fast_settings = settings(max_examples=12, deadline=None)


def naive_prefix_logits(model, states, weights, order, n):  # type: ignore[no-untyped-def]
    """Obviously-correct reference: rebuild the weight vector and call the head for every k."""
    rows = []
    for k in range(n + 1):
        removed = torch.zeros_like(weights, dtype=torch.bool)
        removed[order[:k]] = True
        rows.append(model.head(states[None], erase(weights, removed)[None])[0])
    return torch.stack(rows)


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("ranking", PAPER_RANKINGS)
@pytest.mark.parametrize("affine_head", [True, False], ids=["projected", "general"])
@settings(max_examples=6, deadline=None)  # x 48 parametrisations
@given(lengths=lengths_strategy, seed=st.integers(0, 10_000))
def test_fast_path_equals_naive_path(
    name: str, ranking: str, affine_head: bool, lengths: list[int], seed: int
) -> None:
    model = random_model(name, seed=seed)
    model.affine_head = affine_head  # False: the path for heads that are not affine
    batch = random_batch(name, seed=seed, lengths=lengths)
    with torch.no_grad():
        output = model.run(batch)
    scores = build_ranking(ranking, seed=seed).rank(model, output, batch.doc_ids)
    order = removal_order(scores, output.mask)
    prefix = prefix_logits(model, output.states, output.attention, order)
    for b, n in enumerate(output.mask.sum(1).tolist()):
        expected = naive_prefix_logits(model, output.states[b], output.attention[b], order[b, :n], n)
        torch.testing.assert_close(prefix[b, : n + 1], expected, rtol=1e-9, atol=1e-9)
    fast = removal_test(model, output, scores, path="fast")
    naive = removal_test(model, output, scores, path="naive")
    np.testing.assert_array_equal(fast.never_flipped, naive.never_flipped)
    np.testing.assert_array_equal(fast.removed_at_flip, naive.removed_at_flip)
    np.testing.assert_allclose(fast.mass_removed, naive.mass_removed)


@pytest.mark.parametrize("name", ALL_MODELS)
@fast_settings
@given(lengths=lengths_strategy, seed=st.integers(0, 10_000))
def test_erasing_nothing_changes_nothing(name: str, lengths: list[int], seed: int) -> None:
    model = random_model(name, seed=seed)
    batch = random_batch(name, seed=seed, lengths=lengths)
    with torch.no_grad():
        output = model.run(batch)
    nothing = torch.zeros_like(output.mask)
    unchanged = model.head(output.states, erase(output.attention, nothing))
    torch.testing.assert_close(unchanged, output.logits)
    order = removal_order(output.attention, output.mask)
    prefix = prefix_logits(model, output.states, output.attention, order)
    torch.testing.assert_close(prefix[:, 0], output.logits)


@settings(max_examples=50, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20),
    drop=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_renormalised_weights_sum_to_one(weights: list[float], drop: list[bool]) -> None:
    a = torch.tensor(weights, dtype=torch.float64)
    removed = torch.tensor(drop[: len(weights)])
    kept = erase(a, removed)
    assert torch.all(kept[removed] == 0)
    if a.masked_fill(removed, 0).sum() > 0:
        assert math.isclose(float(kept.sum()), 1.0, rel_tol=1e-12)
    else:  # nothing left: the context is the zero vector
        assert float(kept.abs().sum()) == 0.0


def test_removing_everything_gives_the_bias() -> None:
    model = random_model("flan-none", seed=3)
    batch = random_batch("flan-none", seed=3, lengths=[4])
    with torch.no_grad():
        output = model.run(batch)
    order = removal_order(output.attention, output.mask)
    prefix = prefix_logits(model, output.states, output.attention, order)
    torch.testing.assert_close(prefix[0, 4], model.classifier.bias)


probabilities = st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6).filter(lambda v: sum(v) > 1e-3)


@settings(max_examples=100, deadline=None)
@given(p=probabilities, q=probabilities)
def test_js_divergence_properties(p: list[float], q: list[float]) -> None:
    size = min(len(p), len(q))
    pt = torch.tensor(p[:size], dtype=torch.float64)
    qt = torch.tensor(q[:size], dtype=torch.float64)
    if pt.sum() < 1e-3 or qt.sum() < 1e-3:
        return
    pt, qt = pt / pt.sum(), qt / qt.sum()
    js2 = float(js_divergence(pt, qt, base="2"))
    assert 0.0 <= js2 <= 1.0 + 1e-12
    assert js2 == pytest.approx(float(js_divergence(qt, pt, base="2")), abs=1e-12)
    assert float(js_divergence(pt, pt, base="2")) == pytest.approx(0.0, abs=1e-12)
    if not torch.allclose(pt, qt, atol=1e-6):
        assert js2 > 0
    assert float(js_divergence(pt, qt, base="e")) == pytest.approx(js2 * math.log(2), abs=1e-12)


def test_js_divergence_of_disjoint_distributions_is_maximal() -> None:
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert float(js_divergence(p, q, base="2")) == pytest.approx(1.0)
    assert float(js_divergence(p, q, base="e")) == pytest.approx(math.log(2))


@pytest.mark.parametrize("name", ["flan-none", "flan-rnn", "han-cnn"])
@pytest.mark.parametrize("wrt", ["probability", "logit"])
@settings(max_examples=8, deadline=None)
@given(lengths=lengths_strategy, seed=st.integers(0, 10_000))
def test_gradient_matches_finite_differences(name: str, wrt: str, lengths: list[int], seed: int) -> None:
    model = random_model(name, seed=seed)
    batch = random_batch(name, seed=seed, lengths=lengths)
    with torch.no_grad():
        output = model.run(batch)
    grad = decision_gradient(model, output, wrt=wrt)  # type: ignore[arg-type]
    predicted = output.logits.argmax(-1)
    eps = 1e-6

    def decision(weights: torch.Tensor) -> torch.Tensor:
        logits = model.head(output.states, weights)
        values = torch.softmax(logits, -1) if wrt == "probability" else logits
        return values.gather(1, predicted[:, None]).squeeze(1)

    for item in range(output.mask.shape[1]):
        bump = torch.zeros_like(output.attention)
        bump[:, item] = eps
        numeric = (decision(output.attention + bump) - decision(output.attention - bump)) / (2 * eps)
        numeric = numeric * output.mask[:, item]
        torch.testing.assert_close(grad[:, item], numeric, rtol=1e-5, atol=1e-7)


def test_gradient_is_analytic_for_a_linear_head() -> None:
    """For ``p = softmax(V z + v)``: ``dp_y/da_i = p_y ((V h_i)_y - sum_c p_c (V h_i)_c)``."""
    model = random_model("flan-none", seed=11)
    batch = random_batch("flan-none", seed=11, lengths=[7, 3])
    with torch.no_grad():
        output = model.run(batch)
    p = torch.softmax(output.logits, -1)  # (B, C)
    y = p.argmax(-1)
    per_item = output.states @ model.classifier.weight.T  # (B, n, C): V h_i
    expected = p.gather(1, y[:, None]) * (
        per_item.gather(2, y[:, None, None].expand(-1, per_item.shape[1], 1)).squeeze(2)
        - (per_item * p[:, None, :]).sum(-1)
    )
    expected = expected * output.mask
    torch.testing.assert_close(decision_gradient(model, output), expected)


def test_gradient_leaves_caller_gradients_untouched() -> None:
    model = random_model("flan-cnn", seed=2)
    batch = random_batch("flan-cnn", seed=2, lengths=[5])
    output = model.run(batch)
    decision_gradient(model, output)
    assert all(p.grad is None for p in model.parameters())


def test_single_removal_equals_naive_erase() -> None:
    model = random_model("han-rnn", seed=5)
    batch = random_batch("han-rnn", seed=5, lengths=[6, 2, 4])
    with torch.no_grad():
        output = model.run(batch)
    item = torch.tensor([3, 1, 0])
    fast = single_removal_logits(model, output.states, output.attention, item)
    for b in range(3):
        removed = torch.zeros_like(output.attention[b], dtype=torch.bool)
        removed[item[b]] = True
        expected = model.head(output.states[b : b + 1], erase(output.attention[b], removed)[None])
        torch.testing.assert_close(fast[b : b + 1], expected)


def test_first_flip_counts_never_and_full_removal() -> None:
    # Decision 0 throughout -> never; flips only when all 3 items are gone -> 3 (fraction 1.0).
    never = torch.tensor([[[2.0, 0.0]] * 4])
    last = torch.tensor([[[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    predicted = torch.tensor([0])
    lengths = torch.tensor([3])
    assert first_flip_from_prefixes(never, predicted, lengths).tolist() == [-1]
    assert first_flip_from_prefixes(last, predicted, lengths).tolist() == [3]


def test_naive_first_flip_returns_minus_one_when_decision_is_bias_bound() -> None:
    """A documented never-flip case: a head whose bias dominates predicts class 0 whatever is kept."""
    model = random_model("flan-none", seed=1)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64))
    batch = random_batch("flan-none", seed=1, lengths=[5])
    with torch.no_grad():
        output = model.run(batch)
    order = removal_order(output.attention, output.mask)[0]
    assert naive_first_flip(model, output.states[0], output.attention[0], order, 0) == -1
    result = removal_test(model, output, output.attention, path="fast")
    assert bool(result.never_flipped[0]) and math.isnan(result.removed_at_flip[0])
