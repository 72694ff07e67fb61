"""``random``: a seeded random permutation of the items, the paper's baseline ranking."""

from __future__ import annotations

from typing import ClassVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding
from attnaudit.utils.seeding import doc_rng


class RandomRanking:
    """Uniformly random order of the real items, fixed by ``(seed, doc_id)``.

    Drawing per document (not per batch) makes the order independent of batching. The paper's site
    keeps the original purpose key, so its orders are those of earlier versions; other sites draw
    with the site's name in the key (independent draws per site).
    """

    name: ClassVar[str] = "random"
    label: ClassVar[str] = "random"
    color: ClassVar[str] = "#999999"  # grey: the baseline

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` scores: a random permutation of ``n_b, ..., 1`` over each row's real items."""
        mask = output.site(site).mask
        purpose = "ranking:random" if site == model.pooling_site else f"ranking:random:{site}"
        lengths = mask.sum(dim=1).tolist()
        scores = torch.zeros(mask.shape, dtype=torch.float32)
        for row, doc_id in enumerate(doc_ids):
            perm = doc_rng(self.seed, doc_id, purpose).permutation(int(lengths[row]))
            # real items are a prefix of each row (batching pads at the end)
            scores[row, : len(perm)] = torch.from_numpy(perm.astype("float32") + 1.0)
        return mask_padding(scores.to(mask.device), mask)
