"""Importance rankings behind one verb, ``rank(model, output, doc_ids) -> (B, n) scores``.

Adding a ranking: write one file with a class that has ``name`` and ``rank``, add one line below.
"""

from __future__ import annotations

import inspect
from typing import Any

from attnaudit.rankings.attention import AttentionRanking
from attnaudit.rankings.attention_x_gradient import AttentionTimesGradientRanking
from attnaudit.rankings.base import Ranking, mask_padding
from attnaudit.rankings.gradient import GradientRanking, decision_gradient
from attnaudit.rankings.random import RandomRanking

RANKINGS: dict[str, type[Ranking]] = {
    RandomRanking.name: RandomRanking,
    AttentionRanking.name: AttentionRanking,
    GradientRanking.name: GradientRanking,
    AttentionTimesGradientRanking.name: AttentionTimesGradientRanking,
}

#: the paper's four rankings, in the order results are reported
PAPER_RANKINGS = ("random", "attention", "gradient", "attention_x_gradient")


def build_ranking(name: str, **options: Any) -> Ranking:
    """Instantiate a registered ranking, passing only the options its constructor accepts.

    Shared options (``seed``, ``output``) can be handed to every ranking; each takes what it uses.
    """
    try:
        cls = RANKINGS[name]
    except KeyError:
        raise ValueError(f"unknown ranking {name!r}; choose from {sorted(RANKINGS)}") from None
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted})


__all__ = [
    "PAPER_RANKINGS",
    "RANKINGS",
    "AttentionRanking",
    "AttentionTimesGradientRanking",
    "GradientRanking",
    "RandomRanking",
    "Ranking",
    "build_ranking",
    "decision_gradient",
    "mask_padding",
]
