"""The ranking protocol: one verb, ``rank``, like captum's ``attribute``.

A ranking scores every item (token or sentence) entering the last attention layer; higher means more
important, so items are removed highest score first. Padding positions score ``-inf``.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput


@runtime_checkable
class Ranking(Protocol):
    """Scores items by importance.

    ``name`` is the registry key. Implementations take their options (seed, output kind) in the
    constructor, keyword-only, and never hold a model.
    """

    name: ClassVar[str]

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, doc_ids: list[str]
    ) -> torch.Tensor:
        """Importance scores.

        Args:
            model: the classifier (in eval mode) whose ``head`` produced ``output.logits``.
            output: the unmodified forward pass of a batch (states ``(B, n, d)``, mask ``(B, n)``,
                attention ``(B, n)``, logits ``(B, C)``).
            doc_ids: the ``B`` document ids (random rankings draw per document from them).
        Returns:
            ``(B, n)`` float scores, ``-inf`` on padding.
        """
        ...


def mask_padding(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set padded positions of ``(B, n)`` scores to ``-inf``."""
    return scores.masked_fill(~mask, float("-inf"))
