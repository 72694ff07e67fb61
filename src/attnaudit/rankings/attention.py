"""``attention``: rank items by their attention weight, largest first."""

from __future__ import annotations

from typing import ClassVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding


class AttentionRanking:
    """Scores are the last layer's attention weights ``a_i``."""

    name: ClassVar[str] = "attention"

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` attention weights, ``-inf`` on padding."""
        return mask_padding(output.attention.detach().clone(), output.mask)
