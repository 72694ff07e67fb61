"""Specific properties of the erasure primitives, beyond the conformance suite: erase, removal order,
JS divergence, the head's bias when everything is removed, the gradient's closed form."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import LABELS, random_batch, random_model

from attnaudit.erasure.engine import AuditPlan, audit_batch
from attnaudit.erasure.interventions import (
    batched_curve,
    erase,
    erased_weights,
    linear_curve,
    removal_order,
)
from attnaudit.erasure.metrics import js_divergence
from attnaudit.erasure.single_weight import choose_items
from attnaudit.models.base import AttentionClassifier
from attnaudit.rankings import decision_gradient

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


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
    assert torch.all(kept >= 0)
    if a.masked_fill(removed, 0).sum() > 0:
        assert math.isclose(float(kept.sum()), 1.0, rel_tol=1e-12)
        # the kept weights keep their proportions: kept = a / (sum of the kept a)
        torch.testing.assert_close(kept * a.masked_fill(removed, 0).sum(), a.masked_fill(removed, 0))
    else:  # nothing left: the context is the zero vector
        assert float(kept.abs().sum()) == 0.0


def test_erase_works_on_batches_of_candidates() -> None:
    a = torch.tensor([[0.5, 0.3, 0.2, 0.0]], dtype=torch.float64)
    removed = torch.tensor([[[False, False, False, False], [True, False, False, False],
                             [True, True, True, False]]])
    out = erase(a[:, None].expand(1, 3, 4), removed)
    expected = torch.tensor([[[0.5, 0.3, 0.2, 0.0], [0.0, 0.6, 0.4, 0.0], [0.0, 0.0, 0.0, 0.0]]],
                            dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_erased_weights_remove_and_keep_the_first_k_ranked_items() -> None:
    a = torch.tensor([[0.1, 0.6, 0.3]], dtype=torch.float64)
    order = torch.tensor([[1, 2, 0]])
    remove = erased_weights(a, order, "remove")[0]
    keep = erased_weights(a, order, "keep")[0]
    torch.testing.assert_close(remove, torch.tensor(
        [[0.1, 0.6, 0.3], [0.25, 0.0, 0.75], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(keep, torch.tensor(
        [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2 / 3, 1 / 3], [0.1, 0.6, 0.3]], dtype=torch.float64))


def test_removal_order_is_by_score_then_position_with_padding_last() -> None:
    scores = torch.tensor([[0.2, 0.9, 0.2, -math.inf, 5.0], [1.0, 3.0, 2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    order = removal_order(scores, mask)
    # ties by position; a real item scoring -inf still comes before padding (position 4 scores 5.0)
    assert order.tolist() == [[1, 0, 2, 3, 4], [1, 2, 0, 3, 4]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scores_equal_up_to_float_noise_are_ranked_by_position(dtype: torch.dtype) -> None:
    half = torch.tensor(0.5, dtype=dtype)
    above = torch.nextafter(half, torch.tensor(1.0, dtype=dtype))  # one unit in the last place
    scores = torch.stack([torch.tensor(0.1, dtype=dtype), above, half, above, torch.tensor(0.7,
                          dtype=dtype)])[None]
    mask = torch.ones_like(scores, dtype=torch.bool)
    assert removal_order(scores, mask).tolist() == [[4, 1, 2, 3, 0]]
    weights = torch.stack([half, above, torch.tensor(0.01, dtype=dtype)])[None]
    items = choose_items(weights, torch.ones_like(weights, dtype=torch.bool), {}, ("max", "second"),
                         ["d"], seed=0)
    assert items.tolist() == [[0, 1]]


@pytest.mark.xfail(reason="tie_key truncates to a fixed grid: two scores one float32 unit apart on "
                   "either side of a grid line (here 0.5) still differ; grouping sorted neighbours "
                   "closer than a tolerance would tie them", strict=False)
def test_scores_one_unit_apart_across_a_grid_line_are_tied() -> None:
    half = torch.tensor(0.5)
    below = torch.nextafter(half, torch.tensor(0.0))
    order = removal_order(torch.stack([below, half])[None], torch.ones(1, 2, dtype=torch.bool))
    assert order.tolist() == [[0, 1]]


@pytest.mark.parametrize("name", ["flan-none", "flan-rnn", "han-cnn"])
def test_removing_everything_gives_the_bias(name: str) -> None:
    """At a pooling site the zero context reaches the head: its bias alone, on every path."""
    model = random_model(name, seed=3)
    batch = random_batch(name, seed=3, lengths=[4, 2])
    site = model.pooling_site
    with torch.no_grad():
        output = model.run(batch)
        out = output.site(site)
        order = removal_order(out.attention, out.mask)
        fast = linear_curve(model, output, site, order, "remove")
        batched = batched_curve(model, output, site, order, "remove")
    assert fast is not None
    for b, n in enumerate(out.mask.sum(1).tolist()):
        torch.testing.assert_close(fast[b, n], model.classifier.bias)
        torch.testing.assert_close(batched[b, n], model.classifier.bias)


@settings(max_examples=100, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
       q=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6), size=st.integers(2, 6))
def test_js_divergence_properties(p: list[float], q: list[float], size: int) -> None:
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
    with pytest.raises(ValueError, match="base"):
        js_divergence(p, q, base="10")  # type: ignore[arg-type]


def test_js_divergence_of_subnormal_probabilities_is_finite() -> None:
    p = torch.tensor([1.0, 5e-324], dtype=torch.float64)
    q = torch.tensor([1.0 - 1e-300, 1e-300], dtype=torch.float64)
    assert math.isfinite(float(js_divergence(p, q)))


def _linear_head_gradient(model: AttentionClassifier, states: torch.Tensor, logits: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
    """``dp_y/da_i = p_y ((V h_i)_y - sum_c p_c (V h_i)_c)`` for ``p = softmax(V z + v)``."""
    p = torch.softmax(logits, -1)  # (B, C)
    y = p.argmax(-1)
    per_item = states @ model.classifier.weight.T  # (B, n, C): V h_i
    chosen = per_item.gather(2, y[:, None, None].expand(-1, per_item.shape[1], 1))[..., 0]
    return p.gather(1, y[:, None]) * (chosen - (per_item * p[:, None, :]).sum(-1)) * mask


@pytest.mark.parametrize("name", ["flan-none", "han-rnn"])
def test_gradient_is_analytic_for_a_linear_head(name: str) -> None:
    model = random_model(name, seed=11)
    batch = random_batch(name, seed=11, lengths=[7, 3])
    site = model.pooling_site
    with torch.no_grad():
        output = model.run(batch)
    out = output.site(site)
    expected = _linear_head_gradient(model, out.cache["states"], output.logits, out.mask)
    torch.testing.assert_close(decision_gradient(model, output, site), expected)
    # logit: the predicted class's score of each item, V h_i
    y = output.logits.argmax(-1)
    per_item = (out.cache["states"] @ model.classifier.weight.T).gather(
        2, y[:, None, None].expand(-1, out.mask.shape[1], 1))[..., 0] * out.mask
    torch.testing.assert_close(decision_gradient(model, output, site, wrt="logit"), per_item)
    with pytest.raises(ValueError, match="wrt"):
        decision_gradient(model, output, site, wrt="loss")  # type: ignore[arg-type]


@pytest.mark.parametrize("site", ["token", "word"])
def test_gradient_leaves_caller_gradients_untouched(site: str) -> None:
    name = "flan-cnn" if site == "token" else "han-rnn"
    model = random_model(name, seed=2)
    batch = random_batch(name, seed=2, lengths=[5, 3])
    output = model.run(batch)  # with autograd on: the caches are part of a graph
    decision_gradient(model, output, site)
    assert all(p.grad is None for p in model.parameters())


def test_a_bias_bound_decision_never_flips_and_cannot_flip() -> None:
    """A head whose bias dominates predicts class 0 whatever is kept: never flipped, cannot flip."""
    model = random_model("flan-none", seed=1)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64))
    batch = random_batch("flan-none", seed=1, lengths=[5, 2])
    plan = AuditPlan(sites=("token",), rankings=("random", "attention"), path="naive")
    columns = audit_batch(model, batch, plan, LABELS)
    for removal in columns.removal:
        assert removal["never_flipped"].tolist() == [True, True]
        assert removal["cannot_flip"].tolist() == [True, True]
        assert all(math.isnan(v) for v in removal["removed_at_flip"])
        assert all(math.isnan(v) for v in removal["mass_removed"])
