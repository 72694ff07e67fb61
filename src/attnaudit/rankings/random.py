"""``random``: a seeded random permutation of the items, the paper's baseline ranking."""

from __future__ import annotations

from typing import ClassVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding
from attnaudit.utils.seeding import doc_keys, random_permutations


class RandomRanking:
    """Uniformly random order of the real items, fixed by ``(seed, doc_id)`` and the site.

    Each document's order is the argsort of its items' counter-based random keys
    (:func:`~attnaudit.utils.seeding.random_permutations`, stream 0): computed for the whole batch
    at once on its device, yet a pure function of the document's key and length, so independent of
    batching. The paper's site keeps the original purpose key (``"ranking:random"``); other sites
    draw with the site's name in the key (independent draws per site).
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
        mask = output.site(site).mask  # (B, n): real items are a prefix of each row
        purpose = "ranking:random" if site == model.pooling_site else f"ranking:random:{site}"
        keys = doc_keys(self.seed, doc_ids, purpose, device=mask.device)  # (B, 2)
        lengths = mask.sum(dim=1)  # (B,)
        n = mask.shape[1]
        stream = torch.zeros(1, dtype=torch.int64, device=mask.device)
        order = random_permutations(keys, lengths, n, stream)[:, 0]  # (B, n): real items first
        # The item at place r of the order scores n_b - r: n_b for the first, 1 for the last real
        # item (padding gets <= 0, then -inf below).
        places = torch.arange(n, device=mask.device)
        scores = (lengths[:, None] - places).to(torch.float32)  # (B, n) by place
        by_item = torch.empty_like(scores).scatter_(1, order, scores)  # (B, n) by item
        return mask_padding(by_item, mask)
