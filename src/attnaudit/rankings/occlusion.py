"""``occlusion``: captum FeatureAblation with one feature per item, replaced by zero embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from captum.attr import FeatureAblation

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.attribution import (
    ZERO_EMBEDDING,
    first_of_each_item,
    perturbation_item_scores,
)


def _occlusion(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
               feature_mask: torch.Tensor, target: int, rows: int) -> torch.Tensor:
    n = int(feature_mask.max()) + 1
    # every item's ablation in one pass, or as many as the memory budget's rows allow
    attributions = FeatureAblation(forward).attribute(
        inputs, baselines=0.0, target=target, feature_mask=feature_mask,
        perturbations_per_eval=max(1, min(n, rows)),
    )  # (1, m, E): f(x) - f(x without the item) at every entry of the item
    return first_of_each_item(attributions, feature_mask)


class OcclusionRanking:
    """Scores are the drop in the predicted logit when an item's word vectors are zeroed (all of a
    sentence's words at once at HAN's sentence site)."""

    name: ClassVar[str] = "occlusion"
    label: ClassVar[str] = "occlusion"
    color: ClassVar[str] = "#000000"  # black

    def settings(self) -> dict[str, Any]:
        """What audit_info.json records about this ranking."""
        return {"captum": "FeatureAblation", "features": "one per item", "baseline": ZERO_EMBEDDING,
                "target": "predicted logit"}

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores, ``-inf`` on padding."""
        return perturbation_item_scores(model, output, site, _occlusion)
