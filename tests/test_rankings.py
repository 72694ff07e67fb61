"""Invariants every ranking must satisfy, over a table of all rankings and models."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import ALL_MODELS, random_batch, random_model

from attnaudit.models.base import ModelOutput
from attnaudit.rankings import PAPER_RANKINGS, RANKINGS, Ranking, build_ranking


def _row(output: ModelOutput, b: int) -> ModelOutput:
    n = int(output.mask[b].sum())
    return ModelOutput(
        states=output.states[b : b + 1, :n],
        mask=output.mask[b : b + 1, :n],
        attention=output.attention[b : b + 1, :n],
        logits=output.logits[b : b + 1],
    )


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("ranking", PAPER_RANKINGS)
def test_batch_equals_documents_one_by_one(name: str, ranking: str) -> None:
    model = random_model(name, seed=4)
    batch = random_batch(name, seed=4, lengths=[6, 1, 3])
    with torch.no_grad():
        output = model.run(batch)
    method = build_ranking(ranking, seed=9)
    scores = method.rank(model, output, batch.doc_ids)
    assert scores.shape == output.mask.shape
    assert torch.isneginf(scores[~output.mask]).all()
    assert torch.isfinite(scores[output.mask]).all()
    for b, doc_id in enumerate(batch.doc_ids):
        n = int(output.mask[b].sum())
        alone = method.rank(model, _row(output, b), [doc_id])
        torch.testing.assert_close(scores[b : b + 1, :n], alone)


def test_every_registered_ranking_follows_the_protocol() -> None:
    for name, cls in RANKINGS.items():
        ranking = build_ranking(name, seed=0, output="probability")
        assert isinstance(ranking, Ranking)
        assert cls.name == name


def test_unknown_ranking_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown ranking 'nope'"):
        build_ranking("nope")


def test_random_ranking_depends_on_seed_and_document_only() -> None:
    model = random_model("flan-none", seed=0)
    batch = random_batch("flan-none", seed=0, lengths=[30, 30])
    with torch.no_grad():
        output = model.run(batch)
    first = build_ranking("random", seed=1).rank(model, output, batch.doc_ids)
    again = build_ranking("random", seed=1).rank(model, output, batch.doc_ids)
    other = build_ranking("random", seed=2).rank(model, output, batch.doc_ids)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    assert sorted(first[0].tolist()) == [float(i) for i in range(1, 31)]  # a permutation


def test_attention_ranking_is_the_attention() -> None:
    model = random_model("han-none", seed=0)
    batch = random_batch("han-none", seed=0, lengths=[4, 2])
    with torch.no_grad():
        output = model.run(batch)
    scores = build_ranking("attention").rank(model, output, batch.doc_ids)
    torch.testing.assert_close(scores[output.mask], output.attention[output.mask])
