"""``random``: a seeded random permutation of the items, the paper's baseline ranking."""

from __future__ import annotations

from typing import ClassVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding
from attnaudit.utils.seeding import doc_rng


class RandomRanking:
    """Uniformly random order of the real items, fixed by ``(seed, doc_id)``.

    Drawing per document (not per batch) makes the order independent of batching.
    """

    name: ClassVar[str] = "random"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores: a random permutation of ``n_b, ..., 1`` over each row's real items."""
        mask = output.mask
        scores = torch.zeros(mask.shape, dtype=torch.float32)
        for row, doc_id in enumerate(doc_ids):
            positions = mask[row].nonzero().squeeze(1).cpu()  # (n_b,) real items
            perm = doc_rng(self.seed, doc_id, "ranking:random").permutation(len(positions))
            scores[row, positions] = torch.from_numpy(perm.astype("float32") + 1.0)
        return mask_padding(scores.to(output.attention.device), mask)
