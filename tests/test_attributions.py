"""Captum attribution rankings (rankings/attribution.py and one file per method) at every site.

Each method is checked against an independent computation: autograd for saliency, completeness for
integrated gradients, a hand-made erasure for occlusion, a loop for the per-item reduction; LIME and
KernelSHAP for determinism per document. Samples are kept tiny: these check plumbing, not estimates.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import SITE_CASES, SITE_IDS, alone, random_pass

from attnaudit.config import AuditConfig
from attnaudit.data.types import Batch
from attnaudit.erasure.audit import rankings_meta
from attnaudit.erasure.engine import AuditPlan, rank_site
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings import (
    ATTRIBUTION_RANKINGS,
    PAPER_RANKINGS,
    RANKING_SETS,
    RANKINGS,
    build_ranking,
    expand_ranking_sets,
    item_scores,
)

LENGTHS = [4, 1, 6, 2]


#: tiny models gain nothing from threads (conftest.one_thread_module)
pytestmark = pytest.mark.usefixtures("one_thread_module")


def _setup(name: str, seed: int = 0, lengths: list[int] = LENGTHS
           ) -> tuple[AttentionClassifier, Batch, ModelOutput]:
    return random_pass(name, seed=seed, lengths=lengths)


def _predicted_logit(model: AttentionClassifier, batch: Batch, embedded: torch.Tensor,
                     predicted: torch.Tensor) -> torch.Tensor:
    """``(B,)`` each document's predicted-class logit from given word vectors."""
    return model.logits_from_embeddings(batch, embedded).gather(1, predicted[:, None])[:, 0]


def _per_item_loop(values: torch.Tensor, items: torch.Tensor, n: int, rule: str) -> torch.Tensor:
    """Slow reference of :func:`item_scores`: visit every token, add to its item."""
    b = values.shape[0]
    flat = values.reshape(b, -1, values.shape[-1])
    index = items.reshape(b, -1)
    out = torch.zeros(b, n, dtype=values.dtype)
    for row in range(b):
        for t in range(flat.shape[1]):
            item = int(index[row, t])
            if item >= 0:
                vector = flat[row, t]
                out[row, item] += vector.sum() if rule == "sum" else (vector**2).sum()
    return out if rule == "sum" else out.sqrt()


def test_item_scores_by_hand() -> None:
    """Two items: tokens [3, 4] and [1, -1] form item 0, [0, 2] item 1, [5, 5] is no item."""
    attributions = torch.tensor([[[3.0, 4.0], [1.0, -1.0], [0.0, 2.0], [5.0, 5.0]]])  # (1, 4, 2)
    items = torch.tensor([[0, 0, 1, -1]])
    summed = item_scores(attributions, items, 2, "sum")
    torch.testing.assert_close(summed, torch.tensor([[7.0, 2.0]]))
    norms = item_scores(attributions, items, 2, "l2")
    torch.testing.assert_close(norms, torch.tensor([[27.0**0.5, 2.0]]))
    with pytest.raises(ValueError, match="aggregate"):
        item_scores(attributions, items, 2, "max")  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rule=st.sampled_from(["sum", "l2"]),
       hierarchical=st.booleans())
def test_item_scores_equal_a_loop(seed: int, rule: str, hierarchical: bool) -> None:
    generator = torch.Generator().manual_seed(seed)
    shape = (3, 4, 5) if hierarchical else (3, 7)
    values = torch.randn(*shape, 4, generator=generator, dtype=torch.float64)
    items = torch.randint(-1, 4, shape, generator=generator)
    expected = _per_item_loop(values, items, 4, rule)
    torch.testing.assert_close(item_scores(values, items, 4, rule), expected)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "site"), SITE_CASES, ids=SITE_IDS)
def test_saliency_is_the_autograd_gradient_summed_per_item(name: str, site: str) -> None:
    model, batch, output = _setup(name)
    predicted = output.logits.argmax(-1)
    embedded = model.embed(batch).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_predicted_logit(model, batch, embedded, predicted).sum(),
                                  embedded)
    items = model.token_items(batch, output, site)
    mask = output.site(site).mask
    for rule in ("sum", "l2"):
        scores = build_ranking("saliency", aggregate=rule).rank(model, output, site, batch.doc_ids)
        expected = _per_item_loop(grad.abs(), items, mask.shape[1], rule)
        torch.testing.assert_close(scores[mask], expected[mask])


@pytest.mark.parametrize("name", ["flan-none", "han-none"])
def test_integrated_gradients_are_complete(name: str) -> None:
    """Sum of the item scores = f(x) - f(zero embeddings) for the predicted logit."""
    model, batch, output = _setup(name)
    predicted = output.logits.argmax(-1)
    site = model.pooling_site
    scores = build_ranking("integrated_gradients", steps=50).rank(model, output, site,
                                                                 batch.doc_ids)
    with torch.no_grad():
        embedded = model.embed(batch)
        gap = (_predicted_logit(model, batch, embedded, predicted)
               - _predicted_logit(model, batch, torch.zeros_like(embedded), predicted))
    mask = output.site(site).mask
    total = scores.masked_fill(~mask, 0.0).sum(1)
    torch.testing.assert_close(total, gap, rtol=1e-4, atol=1e-6)
    assert bool((gap.abs() > 1e-3).all())  # the test would catch a missing share


@pytest.mark.parametrize(("name", "site"), SITE_CASES, ids=SITE_IDS)
def test_occlusion_is_a_hand_made_erasure_of_each_item(name: str, site: str) -> None:
    model, batch, output = _setup(name)
    predicted = output.logits.argmax(-1)
    items = model.token_items(batch, output, site)
    mask = output.site(site).mask
    scores = build_ranking("occlusion").rank(model, output, site, batch.doc_ids)
    with torch.no_grad():
        embedded = model.embed(batch)
        full = _predicted_logit(model, batch, embedded, predicted)
        for item in range(mask.shape[1]):
            erased = embedded.masked_fill((items == item)[..., None], 0.0)
            drop = full - _predicted_logit(model, batch, erased, predicted)
            real = mask[:, item]
            torch.testing.assert_close(scores[real, item], drop[real], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", ["lime", "kernel_shap"])
@pytest.mark.parametrize(("name", "site"), SITE_CASES, ids=SITE_IDS)
def test_sampling_methods_are_seeded_per_document(name: str, site: str, method: str) -> None:
    """Same seed, same scores; a document alone scores as inside a padded batch; another seed
    draws other samples."""
    model, batch, output = _setup(name, lengths=[3, 6, 1, 4])
    ranking = build_ranking(method, samples=10, seed=3)
    scores = ranking.rank(model, output, site, batch.doc_ids)
    torch.testing.assert_close(ranking.rank(model, output, site, batch.doc_ids), scores,
                               rtol=0, atol=0)
    mask = output.site(site).mask
    for b in range(len(batch)):
        single = alone(batch, b)
        with torch.no_grad():
            single_output = model.run(single)
        n = int(mask[b].sum())
        got = ranking.rank(model, single_output, site, single.doc_ids)[0, :n]
        torch.testing.assert_close(got, scores[b, :n], rtol=1e-9, atol=1e-10)
    other = build_ranking(method, samples=10, seed=4).rank(model, output, site, batch.doc_ids)
    long_rows = mask.sum(1) > 2
    assert not torch.equal(other[long_rows], scores[long_rows])


@pytest.mark.parametrize(("name", "site"), SITE_CASES, ids=SITE_IDS)
def test_every_attribution_is_minus_inf_exactly_on_padding(name: str, site: str) -> None:
    model, batch, output = _setup(name)
    plan = AuditPlan(sites=(site,), rankings=ATTRIBUTION_RANKINGS, attribution_samples=8,
                     attribution_steps=8)
    mask = output.site(site).mask
    for ranking, scores in rank_site(model, output, site, batch.doc_ids, plan).items():
        assert scores.shape == mask.shape, ranking
        assert bool(torch.isfinite(scores[mask]).all()), ranking
        assert bool((scores[~mask] == float("-inf")).all()), ranking


def test_attributions_leave_the_models_gradients_alone() -> None:
    model, batch, output = _setup("han-cnn")
    for name in ATTRIBUTION_RANKINGS:
        build_ranking(name, samples=6, steps=4).rank(model, output, "sentence", batch.doc_ids)
    assert all(p.grad is None for p in model.parameters())


def test_ranking_sets_expand_in_the_config() -> None:
    assert set(RANKING_SETS["all"]) == set(RANKINGS)
    assert RANKING_SETS["attributions"] == ATTRIBUTION_RANKINGS
    assert list(RANKINGS)[: len(PAPER_RANKINGS)] == list(PAPER_RANKINGS)
    assert expand_ranking_sets(["lime", "paper", "random"]) == ("lime", *PAPER_RANKINGS)
    assert AuditConfig(rankings="paper,occlusion").rankings == (*PAPER_RANKINGS, "occlusion")
    assert AuditConfig(rankings=["all"]).rankings == tuple(RANKINGS)
    with pytest.raises(ValueError, match="paper, attributions, all"):
        AuditConfig(rankings="everything")


def test_rankings_meta_records_the_attribution_settings() -> None:
    plan = AuditPlan(sites=("token",), rankings=("attention", "integrated_gradients", "lime"),
                     attribution_steps=7, attribution_samples=9, attribution_aggregate="l2")
    meta = rankings_meta(plan)
    assert "settings" not in meta["attention"]
    assert meta["integrated_gradients"]["settings"]["steps"] == 7
    assert meta["integrated_gradients"]["settings"]["aggregate"] == "l2"
    assert meta["integrated_gradients"]["settings"]["baseline"] == "zero_embedding"
    assert meta["lime"]["settings"]["samples"] == 9
