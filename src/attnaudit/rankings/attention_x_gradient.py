"""``attention_x_gradient``: rank items by ``a_i * d y_hat / d a_i``."""

from __future__ import annotations

from typing import ClassVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding
from attnaudit.rankings.gradient import GradientOutput, decision_gradient


class AttentionTimesGradientRanking:
    """Scores are attention weight times the decision gradient (see :mod:`.gradient`)."""

    name: ClassVar[str] = "attention_x_gradient"
    label: ClassVar[str] = "attention × gradient"
    color: ClassVar[str] = "#CC79A7"  # Okabe-Ito reddish purple

    def __init__(self, *, output: GradientOutput = "probability") -> None:
        self.output = output

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` products, ``-inf`` on padding."""
        out = output.site(site)
        grad = decision_gradient(model, output, site, wrt=self.output)
        return mask_padding(out.attention.detach() * grad, out.mask)
