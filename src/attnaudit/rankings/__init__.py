"""Importance rankings behind one verb, ``rank(model, output, doc_ids) -> (B, n) scores``.

Adding a ranking: write one file with a class that has ``name`` and ``rank``, add one line below.
A ranking that applies to some models or sites only (``rollout`` and ``attention_head_mean`` need a
transformer's self-attention layers) also has ``supports(model, site) -> bool``; :func:`supports`
reads it (a ranking without one applies everywhere). Where a planned ranking does not apply to a
model's audited sites, the audit of that model leaves it out with a log line
(:func:`applicable_rankings`, used by ``attnaudit audit``, ``attnaudit run`` and the Python API), so
``--rankings all`` and one ``--rankings`` list for a mix of models work; only a list of which
nothing applies is refused.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from attnaudit.models.base import AttentionClassifier
from attnaudit.rankings.attention import AttentionRanking
from attnaudit.rankings.attention_x_gradient import AttentionTimesGradientRanking
from attnaudit.rankings.attribution import item_scores
from attnaudit.rankings.base import Ranking, mask_padding
from attnaudit.rankings.gradient import GradientRanking, decision_gradient
from attnaudit.rankings.head_mean_attention import HeadMeanAttentionRanking
from attnaudit.rankings.input_x_gradient import InputXGradientRanking
from attnaudit.rankings.integrated_gradients import IntegratedGradientsRanking
from attnaudit.rankings.kernel_shap import KernelShapRanking
from attnaudit.rankings.lime import LimeRanking
from attnaudit.rankings.occlusion import OcclusionRanking
from attnaudit.rankings.random import RandomRanking
from attnaudit.rankings.rollout import RolloutRanking
from attnaudit.rankings.saliency import SaliencyRanking

RANKINGS: dict[str, type[Ranking]] = {
    RandomRanking.name: RandomRanking,
    AttentionRanking.name: AttentionRanking,
    GradientRanking.name: GradientRanking,
    AttentionTimesGradientRanking.name: AttentionTimesGradientRanking,
    IntegratedGradientsRanking.name: IntegratedGradientsRanking,
    SaliencyRanking.name: SaliencyRanking,
    InputXGradientRanking.name: InputXGradientRanking,
    OcclusionRanking.name: OcclusionRanking,
    LimeRanking.name: LimeRanking,
    KernelShapRanking.name: KernelShapRanking,
    RolloutRanking.name: RolloutRanking,
    HeadMeanAttentionRanking.name: HeadMeanAttentionRanking,
}

#: the paper's four rankings, in the order results are reported
PAPER_RANKINGS = ("random", "attention", "gradient", "attention_x_gradient")

#: input attributions through captum (rankings/attribution.py), in the order results are reported.
#: No DeepLift: captum's DeepLift rules attach to nn.Module nonlinearities, these models call tanh
#: and softmax as functions (and use GRUs, which it cannot handle), so on them captum's DeepLift
#: returns exactly input x gradient (checked on flan-none, flan-cnn, han-cnn): a second name for it
#: would mislead.
ATTRIBUTION_RANKINGS = ("integrated_gradients", "saliency", "input_x_gradient", "occlusion", "lime",
                        "kernel_shap")

#: rankings that read a transformer's self-attention layers (hf models only), in report order
TRANSFORMER_RANKINGS = ("rollout", "attention_head_mean")

#: names ``--rankings`` accepts for a group of rankings
RANKING_SETS: dict[str, tuple[str, ...]] = {
    "paper": PAPER_RANKINGS,
    "attributions": ATTRIBUTION_RANKINGS,
    "all": tuple(RANKINGS),
    "transformer": TRANSFORMER_RANKINGS,
}


def expand_ranking_sets(names: Sequence[str]) -> tuple[str, ...]:
    """Ranking names with set names (:data:`RANKING_SETS`) replaced by their members, repeats dropped,
    order kept: ``["paper", "lime"]`` -> the paper's four, then ``"lime"``."""
    expanded = [member for name in names for member in RANKING_SETS.get(name, (name,))]
    return tuple(dict.fromkeys(expanded))


def ranking_settings(ranking: Ranking) -> dict[str, Any] | None:
    """A ranking's ``settings()`` (captum method, steps, baseline, samples, aggregate) where it has
    them, else None."""
    settings = getattr(ranking, "settings", None)
    return settings() if callable(settings) else None


def supports(name: str, model: AttentionClassifier, site: str) -> bool:
    """Whether ranking ``name`` applies to ``model``'s ``site`` (its class's ``supports``; a ranking
    without one applies to every model and site)."""
    check = getattr(RANKINGS[name], "supports", None)
    return True if check is None else bool(check(model, site))


def applicable_rankings(
    names: Sequence[str], model: AttentionClassifier, sites: Sequence[str]
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Split ``names`` into the rankings that apply to every one of ``sites`` of ``model`` and the
    others.

    The audit ranks every planned site with every planned ranking, so a ranking that fails one
    site is left out for this model (audit the other sites alone, ``--sites``, to keep it).

    Returns:
        The applicable names in the given order, and ``{name: sites it does not apply to}``.
    """
    kept: list[str] = []
    left_out: dict[str, tuple[str, ...]] = {}
    for name in names:
        failing = tuple(site for site in sites if not supports(name, model, site))
        if failing:
            left_out[name] = failing
        else:
            kept.append(name)
    return tuple(kept), left_out


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
    "ATTRIBUTION_RANKINGS",
    "PAPER_RANKINGS",
    "RANKINGS",
    "RANKING_SETS",
    "TRANSFORMER_RANKINGS",
    "AttentionRanking",
    "AttentionTimesGradientRanking",
    "GradientRanking",
    "HeadMeanAttentionRanking",
    "InputXGradientRanking",
    "IntegratedGradientsRanking",
    "KernelShapRanking",
    "LimeRanking",
    "OcclusionRanking",
    "RandomRanking",
    "Ranking",
    "RolloutRanking",
    "SaliencyRanking",
    "applicable_rankings",
    "build_ranking",
    "decision_gradient",
    "expand_ranking_sets",
    "item_scores",
    "mask_padding",
    "ranking_settings",
    "supports",
]
