"""``saliency``: captum Saliency, ``|d logit_y / d x|`` of each token vector, reduced per item."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from captum.attr import Saliency

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.attribution import Aggregate, EmbeddingForward, gradient_item_scores


def _saliency(forward: EmbeddingForward, embedded: torch.Tensor,
              forward_args: tuple[torch.Tensor, ...], target: torch.Tensor,
              rows: int) -> torch.Tensor:
    # abs=True: Simonyan et al.'s map is the gradient's magnitude (the signed one is "gradient")
    return Saliency(forward).attribute(embedded, target=target, abs=True,
                                       additional_forward_args=forward_args)


class SaliencyRanking:
    """Scores are the absolute input gradient of the predicted logit, aggregated per item."""

    name: ClassVar[str] = "saliency"
    label: ClassVar[str] = "saliency"
    color: ClassVar[str] = "#56B4E9"  # Okabe-Ito sky blue

    def __init__(self, *, aggregate: Aggregate = "sum") -> None:
        self.aggregate = aggregate

    def settings(self) -> dict[str, Any]:
        """What audit_info.json records about this ranking."""
        return {"captum": "Saliency", "abs": True, "target": "predicted logit",
                "aggregate": self.aggregate}

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores, ``-inf`` on padding."""
        return gradient_item_scores(model, output, site, _saliency, self.aggregate)
