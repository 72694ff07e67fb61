"""The ranking protocol: one verb, ``rank``, like captum's ``attribute``.

A ranking scores every item of one attention site (tokens, sentences, words); higher means more
important, so items are removed highest score first. Padding positions score ``-inf``. Each ranking
carries its display name and colour, which the audit writes into summary.json for the (torch-free)
report: a new ranking is one file + one registry line.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput


@runtime_checkable
class Ranking(Protocol):
    """Scores items by importance.

    ``name`` is the registry key, ``label`` and ``color`` (a hex colour) how reports show it.
    Implementations take their options (seed, output kind) in the constructor, keyword-only, and
    never hold a model.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    color: ClassVar[str]

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """Importance scores of ``site``'s items.

        Args:
            model: the classifier (in eval mode) that produced ``output``.
            output: the unmodified forward pass of a batch (:meth:`AttentionClassifier.run`).
            site: the attention site whose items are ranked.
            doc_ids: the ``B`` document ids (random rankings draw per document from them).
        Returns:
            ``(B, n)`` float scores, ``-inf`` on padding.
        """
        ...


def mask_padding(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set padded positions of ``(B, n)`` scores to ``-inf``."""
    return scores.masked_fill(~mask, float("-inf"))
