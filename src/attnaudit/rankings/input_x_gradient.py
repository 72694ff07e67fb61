"""``input_x_gradient``: captum InputXGradient, ``x * d logit_y / d x`` per token, reduced per item."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from captum.attr import InputXGradient

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.attribution import Aggregate, EmbeddingForward, gradient_item_scores


def _input_x_gradient(forward: EmbeddingForward, embedded: torch.Tensor,
                      forward_args: tuple[torch.Tensor, ...], target: torch.Tensor,
                      rows: int) -> torch.Tensor:
    return InputXGradient(forward).attribute(embedded, target=target,
                                             additional_forward_args=forward_args)


class InputXGradientRanking:
    """Scores are token vector times its gradient of the predicted logit, aggregated per item."""

    name: ClassVar[str] = "input_x_gradient"
    label: ClassVar[str] = "input x gradient"
    color: ClassVar[str] = "#D55E00"  # Okabe-Ito vermillion

    def __init__(self, *, aggregate: Aggregate = "sum") -> None:
        self.aggregate = aggregate

    def settings(self) -> dict[str, Any]:
        """What audit_info.json records about this ranking."""
        return {"captum": "InputXGradient", "target": "predicted logit", "aggregate": self.aggregate}

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores, ``-inf`` on padding."""
        return gradient_item_scores(model, output, site, _input_x_gradient, self.aggregate)
