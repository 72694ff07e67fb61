"""``integrated_gradients``: captum IntegratedGradients from the zero embedding, reduced per item."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch
from captum.attr import IntegratedGradients

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.attribution import (
    IG_STEPS_PER_PASS,
    ZERO_EMBEDDING,
    Aggregate,
    EmbeddingForward,
    gradient_item_scores,
)


def integrated_gradients(forward: EmbeddingForward, embedded: torch.Tensor,
                         forward_args: tuple[torch.Tensor, ...], target: torch.Tensor,
                         rows: int, *, steps: int) -> torch.Tensor:
    """``(B, ..., E)`` IG attributions along the straight path from zero vectors at every token
    (padding stays padding: the mask travels in ``forward_args``) to ``embedded``:
    :data:`IG_STEPS_PER_PASS` steps of every document per pass, fewer where the memory budget
    allows only ``rows`` copies (at least one step: ``rows >= B``)."""
    return IntegratedGradients(forward).attribute(
        embedded, baselines=torch.zeros_like(embedded), target=target,
        additional_forward_args=forward_args, n_steps=steps, method="gausslegendre",
        internal_batch_size=max(embedded.shape[0],
                                min(embedded.shape[0] * IG_STEPS_PER_PASS, rows)),
    )


class IntegratedGradientsRanking:
    """Scores are integrated gradients (Sundararajan et al. 2017) of the predicted logit per item."""

    name: ClassVar[str] = "integrated_gradients"
    label: ClassVar[str] = "integrated gradients"
    color: ClassVar[str] = "#009E73"  # Okabe-Ito bluish green

    def __init__(self, *, steps: int = 50, aggregate: Aggregate = "sum") -> None:
        self.steps = steps
        self.aggregate = aggregate

    def settings(self) -> dict[str, Any]:
        """What audit_info.json records about this ranking."""
        return {"captum": "IntegratedGradients", "steps": self.steps, "method": "gausslegendre",
                "baseline": ZERO_EMBEDDING, "target": "predicted logit",
                "aggregate": self.aggregate}

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores, ``-inf`` on padding."""
        method = partial(integrated_gradients, steps=self.steps)
        return gradient_item_scores(model, output, site, method, self.aggregate)
