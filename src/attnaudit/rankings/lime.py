"""``lime``: captum Lime with one interpretable feature per item, seeded per document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from captum.attr import Lime

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.attribution import (
    ZERO_EMBEDDING,
    perturbation_item_scores,
    sampled_attribution,
)


class LimeRanking:
    """Scores are the coefficients of captum's default LIME surrogate (a lasso on binary item
    presence, cosine-kernel weighted) for the predicted logit; absent items get zero embeddings."""

    name: ClassVar[str] = "lime"
    label: ClassVar[str] = "LIME"
    color: ClassVar[str] = "#7F3C8D"  # purple

    def __init__(self, *, samples: int = 200, seed: int = 0) -> None:
        self.samples = samples
        self.seed = seed

    def settings(self) -> dict[str, Any]:
        """What audit_info.json records about this ranking."""
        return {"captum": "Lime", "samples": self.samples, "features": "one per item",
                "baseline": ZERO_EMBEDDING, "interpretable_model": "captum default (SkLearnLasso "
                "alpha=0.01)", "target": "predicted logit", "seed": self.seed}

    def _lime(self, forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
              feature_mask: torch.Tensor, target: int, rows: int) -> torch.Tensor:
        return sampled_attribution(Lime(forward), inputs, feature_mask, target, self.samples,
                                   rows)

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores, ``-inf`` on padding."""
        return perturbation_item_scores(model, output, site, self._lime, seed=self.seed,
                                        purpose=f"ranking:lime:{site}")
