"""``rollout``: attention rollout (Abnar & Zuidema, ACL 2020), for transformer classifiers only.

Per layer ``A_l = 0.5 * (mean over heads of the attention matrix) + 0.5 * I``, rows renormalised;
``rollout = A_L · ... · A_1``; the classification ([CLS]) row at the items' positions gives their
scores. The rollout traces attention from the input tokens through every layer to the output, so the
scores are the same at every site of a model (items are the subword tokens at all of them): it ranks
tokens, as a baseline to compare the sites' own attention with.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from attnaudit.data.types import Batch
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.models.grouping import group_scores
from attnaudit.rankings.base import mask_padding


@runtime_checkable
class SelfAttentionLayers(Protocol):
    """A model that exposes its layers' full attention matrices (``attnaudit.models.hf``)."""

    def attention_matrices(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L, B, H, T', T')`` probabilities and the ``(B, T')`` sequence mask ([CLS] at 0,
        item ``i`` at position ``i + 1``)."""
        ...


def transformer_layers(model: AttentionClassifier, ranking: str) -> SelfAttentionLayers:
    """``model`` as a :class:`SelfAttentionLayers`; a clear error for models without self-attention."""
    if not isinstance(model, SelfAttentionLayers):
        raise ValueError(
            f"ranking {ranking!r} needs a transformer with self-attention layers (hf models); "
            f"{model.kind!r} has none"
        )
    return model


def attention_rollout(probs: torch.Tensor, seq_mask: torch.Tensor) -> torch.Tensor:
    """Attention rollout of one batch.

    Args:
        probs: ``(L, B, H, T', T')`` attention probabilities, layer 0 (nearest the input) first.
        seq_mask: ``(B, T')`` bool, True on real positions (padding is never attended, so it only
            keeps its own identity share).
    Returns:
        ``(B, T', T')``: ``A_L ... A_1``; row ``q`` is how much each input position flows into
        position ``q`` at the top.
    """
    t = probs.shape[-1]
    eye = torch.eye(t, dtype=probs.dtype, device=probs.device)  # (T', T')
    rolled = eye.expand(probs.shape[1], t, t)  # (B, T', T')
    for layer in probs:  # (B, H, T', T')
        mixed = 0.5 * layer.mean(dim=1) + 0.5 * eye  # (B, T', T')
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)  # rows renormalised
        rolled = mixed @ rolled  # A_l · (A_{l-1} ... A_1)
    keep = (seq_mask[:, :, None] & seq_mask[:, None, :]).to(rolled.dtype)  # (B, T', T')
    return rolled * keep


class RolloutRanking:
    """Scores are the [CLS] row of the attention rollout at the items (see the module docstring)."""

    name: ClassVar[str] = "rollout"
    label: ClassVar[str] = "attention rollout"
    color: ClassVar[str] = "#BCBD22"  # olive

    @staticmethod
    def supports(model: AttentionClassifier, site: str) -> bool:
        """Whether this ranking applies to ``model``'s ``site`` (transformers only)."""
        return isinstance(model, SelfAttentionLayers)

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` rollout scores, ``-inf`` on padding: the [CLS] row at each item's tokens,
        summed over them (one token per item, unless items are words)."""
        layers = transformer_layers(model, self.name)
        batch = output.batch
        if batch is None:
            raise ValueError("rollout needs the pass's batch: compute it with model.run(batch)")
        mask = output.site(site).mask  # (B, n)
        probs, seq_mask = layers.attention_matrices(batch)  # (L, B, H, T', T'), (B, T')
        rolled = attention_rollout(probs, seq_mask)  # (B, T', T')
        tokens = batch.token_ids.shape[1]
        token_scores = rolled[:, 0, 1 : tokens + 1].detach()  # (B, T): position i + 1 is token i
        items = model.token_items(batch, output, site)  # (B, T): each token's item
        return mask_padding(group_scores(token_scores, items, mask.shape[1]), mask)
