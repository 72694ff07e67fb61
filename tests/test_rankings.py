"""The ranking registry and the specific properties of each ranking (the conformance suite checks
every ranking's orders through the erasure paths and the audit)."""

from __future__ import annotations

import re

import pytest
import torch
from model_fixtures import SITE_CASES, SITE_IDS, random_batch, random_model

from attnaudit.rankings import PAPER_RANKINGS, RANKINGS, Ranking, build_ranking, supports
from attnaudit.rankings.random import RandomRanking
from attnaudit.utils.seeding import doc_keys, random_permutations

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_every_registered_ranking_follows_the_protocol() -> None:
    assert set(PAPER_RANKINGS) <= set(RANKINGS)
    for name, cls in RANKINGS.items():
        ranking = build_ranking(name, seed=0, output="probability", unused="ignored")
        assert isinstance(ranking, Ranking)
        assert cls.name == name
        assert cls.label and re.fullmatch(r"#[0-9A-Fa-f]{6}", cls.color), name


def test_unknown_ranking_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown ranking 'nope'"):
        build_ranking("nope")


def test_build_ranking_passes_the_options_each_ranking_takes() -> None:
    random = build_ranking("random", seed=7, output="logit")
    assert isinstance(random, RandomRanking) and random.seed == 7
    gradient = build_ranking("gradient", seed=7, output="logit")
    assert getattr(gradient, "output", None) == "logit"


@pytest.mark.parametrize("ranking", sorted(RANKINGS))
@pytest.mark.parametrize(("name", "site"), SITE_CASES, ids=SITE_IDS)
def test_scores_are_finite_on_real_items_and_minus_infinity_on_padding(
    name: str, site: str, ranking: str
) -> None:
    model = random_model(name, seed=4)
    if not supports(ranking, model, site):
        pytest.skip(f"{ranking} does not apply to {name} at {site} (the audit leaves it out)")
    batch = random_batch(name, seed=4, lengths=[6, 1, 3])
    with torch.no_grad():
        output = model.run(batch)
    mask = output.site(site).mask
    scores = build_ranking(ranking, seed=9).rank(model, output, site, batch.doc_ids)
    assert scores.shape == mask.shape
    assert torch.isneginf(scores[~mask]).all()
    assert torch.isfinite(scores[mask]).all()


def test_random_ranking_depends_on_seed_and_document_only() -> None:
    model = random_model("flan-none", seed=0)
    batch = random_batch("flan-none", seed=0, lengths=[30, 30])
    other_model = random_model("flan-none", seed=1)
    with torch.no_grad():
        output = model.run(batch)
        other_output = other_model.run(batch)
    first = build_ranking("random", seed=1).rank(model, output, "token", batch.doc_ids)
    again = build_ranking("random", seed=1).rank(other_model, other_output, "token", batch.doc_ids)
    other = build_ranking("random", seed=2).rank(model, output, "token", batch.doc_ids)
    torch.testing.assert_close(first, again)  # not the model's weights
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])  # each document its own draw
    assert sorted(first[0].tolist()) == [float(i) for i in range(1, 31)]  # a permutation
    # the document's draw alone, whatever else is in the batch
    swapped = build_ranking("random", seed=1).rank(model, output.index([1, 0]), "token",
                                                     batch.doc_ids[::-1])
    torch.testing.assert_close(swapped, first[[1, 0]])


def _drawn_alone(seed: int, doc_id: str, purpose: str, n: int) -> list[float]:
    """The random ranking's scores for one document computed alone from its key: item
    ``order[r]`` of its permutation (stream 0) scores ``n - r``."""
    order = random_permutations(doc_keys(seed, [doc_id], purpose), torch.tensor([n]), n,
                                torch.zeros(1, dtype=torch.int64))[0, 0]
    scores = torch.empty(n).scatter_(0, order, torch.arange(n, 0, -1, dtype=torch.float32))
    return scores.tolist()


def test_random_ranking_at_the_paper_site_keeps_the_original_draw() -> None:
    """The paper's site draws with the pre-sites purpose key, so earlier audits' orders are keyed
    the same way; other sites draw independently (the site in the key)."""
    model = random_model("han-none", seed=0)
    batch = random_batch("han-none", seed=0, lengths=[5, 4, 3, 6, 2, 5, 4, 3])
    with torch.no_grad():
        output = model.run(batch)
    scores = build_ranking("random", seed=3).rank(model, output, "sentence", batch.doc_ids)
    for b, doc_id in enumerate(batch.doc_ids):
        n = int(output.site("sentence").mask[b].sum())
        expected = _drawn_alone(3, doc_id, "ranking:random", n)
        assert scores[b, :n].tolist() == expected
    words = build_ranking("random", seed=3).rank(model, output, "word", batch.doc_ids)
    differs = []
    for b, doc_id in enumerate(batch.doc_ids):
        n = int(output.site("word").mask[b].sum())
        expected = _drawn_alone(3, doc_id, "ranking:random:word", n)
        assert words[b, :n].tolist() == expected
        paper_key = _drawn_alone(3, doc_id, "ranking:random", n)
        differs.append(paper_key != expected)
    assert any(differs)  # the word site's key gives other draws (8 documents: surely one differs)


@pytest.mark.parametrize(("name", "site"), SITE_CASES, ids=SITE_IDS)
def test_attention_ranking_is_the_attention(name: str, site: str) -> None:
    model = random_model(name, seed=0)
    batch = random_batch(name, seed=0, lengths=[4, 2])
    with torch.no_grad():
        output = model.run(batch)
    out = output.site(site)
    scores = build_ranking("attention").rank(model, output, site, batch.doc_ids)
    torch.testing.assert_close(scores[out.mask], out.attention[out.mask], rtol=0, atol=0)
    # and a copy: changing the scores leaves the output alone
    scores.zero_()
    assert out.attention.sum() > 0


@pytest.mark.parametrize("output", ["probability", "logit"])
def test_attention_x_gradient_is_the_product(output: str) -> None:
    model = random_model("han-cnn", seed=5)
    batch = random_batch("han-cnn", seed=5, lengths=[4, 3])
    with torch.no_grad():
        run = model.run(batch)
    for site in model.site_names():
        out = run.site(site)
        grad = build_ranking("gradient", output=output).rank(model, run, site, batch.doc_ids)
        product = build_ranking("attention_x_gradient", output=output).rank(model, run, site,
                                                                            batch.doc_ids)
        torch.testing.assert_close(product[out.mask], (out.attention * grad)[out.mask])
