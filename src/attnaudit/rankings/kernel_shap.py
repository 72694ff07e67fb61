"""``kernel_shap``: captum KernelShap with one interpretable feature per item, seeded per document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from captum.attr import KernelShap

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.attribution import (
    ZERO_EMBEDDING,
    perturbation_item_scores,
    sampled_attribution,
)


class KernelShapRanking:
    """Scores are KernelSHAP's Shapley value estimates of each item for the predicted logit (a
    weighted linear regression on sampled coalitions); absent items get zero embeddings."""

    name: ClassVar[str] = "kernel_shap"
    label: ClassVar[str] = "KernelSHAP"
    color: ClassVar[str] = "#8C564B"  # brown

    def __init__(self, *, samples: int = 200, seed: int = 0) -> None:
        self.samples = samples
        self.seed = seed

    def settings(self) -> dict[str, Any]:
        """What audit_info.json records about this ranking."""
        return {"captum": "KernelShap", "samples": self.samples, "features": "one per item",
                "baseline": ZERO_EMBEDDING, "target": "predicted logit", "seed": self.seed}

    def _kernel_shap(self, forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                     feature_mask: torch.Tensor, target: int, rows: int) -> torch.Tensor:
        if int(feature_mask.max()) == 0:
            # One player: its Shapley value is exactly f(x) - f(baseline) (captum's coalition
            # sampler divides by zero here)
            both = forward(torch.cat([inputs, torch.zeros_like(inputs)]))  # (2, C)
            return both[0, target] - both[1, target]  # (1,) once reshaped
        return sampled_attribution(KernelShap(forward), inputs, feature_mask, target,
                                   self.samples, rows)

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores, ``-inf`` on padding."""
        return perturbation_item_scores(model, output, site, self._kernel_shap, seed=self.seed,
                                        purpose=f"ranking:kernel_shap:{site}")
