"""``attention``: rank items by their attention weight, largest first."""

from __future__ import annotations

from typing import ClassVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding


class AttentionRanking:
    """Scores are the site's attention weights ``a_i``."""

    name: ClassVar[str] = "attention"
    label: ClassVar[str] = "attention"
    color: ClassVar[str] = "#E69F00"  # Okabe-Ito orange

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` attention weights, ``-inf`` on padding."""
        out = output.site(site)
        return mask_padding(out.attention.detach().clone(), out.mask)
