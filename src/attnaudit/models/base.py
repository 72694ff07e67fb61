"""The model protocol every attention classifier implements.

A classifier is ``encode -> attend -> head``:

    h, mask = model.encode(batch)          # (B, n, d), (B, n): states entering the LAST attention layer
    a       = model.attend(h, mask)        # (B, n): masked softmax, padding gets exactly 0
    logits  = model.head(h, a)             # (B, C) = classify(context(h, a))

Only the last attention layer is manipulated by the attention tests, so everything up to ``h`` is
computed once per document; erasing weights recomputes only ``context`` and ``classify``. ``context``
is linear in ``a`` (``z = sum_i a_i h_i``) which is what the fast all-prefix path relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnaudit.data.types import Batch
from attnaudit.models.embeddings import make_embedding


@dataclass
class ModelOutput:
    """Everything the attention tests need from one forward pass.

    Attributes:
        states: ``(B, n, d)`` encoder states entering the last attention layer.
        mask: ``(B, n)`` bool, True for real items (tokens for flat models, sentences for HAN).
        attention: ``(B, n)`` attention weights, summing to 1 over real items, 0 on padding.
        logits: ``(B, C)`` class scores.
    """

    states: torch.Tensor
    mask: torch.Tensor
    attention: torch.Tensor
    logits: torch.Tensor


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim with masked positions set to exactly zero.

    Args:
        scores: ``(..., n)`` raw scores.
        mask: ``(..., n)`` bool, True where the position is real.
    Returns:
        ``(..., n)`` weights; rows with no real position are all zero (not NaN).
    """
    scores = scores.masked_fill(~mask, float("-inf"))
    # Rows with no real item would give NaN; give them a harmless finite row first.
    empty = ~mask.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(empty, 0.0)
    weights = torch.softmax(scores, dim=-1)
    return weights * mask.to(weights.dtype)


class AdditiveAttention(nn.Module):
    """Additive attention of Yang et al. (2016): ``score_i = u . tanh(W h_i + b)``.

    Args:
        dim: size ``d`` of the states attended over.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)  # W, b
        self.context = nn.Linear(dim, 1, bias=False)  # u, the learned context vector

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``h``: ``(..., n, d)``, ``mask``: ``(..., n)`` -> weights ``(..., n)``."""
        scores = self.context(torch.tanh(self.proj(h))).squeeze(-1)  # (..., n)
        return masked_softmax(scores, mask)


class AttentionClassifier(nn.Module):
    """Base class of every classifier under audit. Subclasses implement :meth:`encode`.

    Subclasses must set ``self.attention`` (the last attention layer) and ``self.classifier``
    (the linear head ``V z + v``) and ``self.state_dim``.
    """

    attention: AdditiveAttention
    classifier: nn.Linear
    state_dim: int

    #: short registry name, e.g. ``"flan"`` or ``"han"``
    kind: str = ""
    #: True when batches are ``(B, S, W)`` and the last attention layer is over sentences
    hierarchical: bool = False
    #: True when ``classify(z)`` is ``self.classifier(z)``, an affine map (the paper's head). The
    #: erasure fast path then projects each item's state to class scores before summing, which is
    #: far cheaper than summing ``d``-dimensional states. A subclass with another head sets False.
    affine_head: bool = True

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """States entering the last attention layer.

        Returns:
            ``h`` of shape ``(B, n, d)`` and ``mask`` of shape ``(B, n)`` (bool).
        """
        raise NotImplementedError

    def attend(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, n, d), (B, n) -> (B, n)`` attention weights of the last layer."""
        return self.attention(h, mask)

    def context(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``z = sum_i a_i h_i``: ``(B, n, d), (B, n) -> (B, d)``."""
        return torch.einsum("bn,bnd->bd", a, h)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """The head from context vectors: ``(..., d) -> (..., C)`` logits."""
        return self.classifier(z)

    def head(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits from cached states and (possibly modified) weights: ``(B, n, d), (B, n) -> (B, C)``."""
        return self.classify(self.context(h, a))

    def run(self, batch: Batch) -> ModelOutput:
        """Full pass returning states, mask, attention and logits."""
        h, mask = self.encode(batch)
        a = self.attend(h, mask)
        return ModelOutput(states=h, mask=mask, attention=a, logits=self.head(h, a))

    def forward(self, batch: Batch) -> torch.Tensor:
        """``head(h, attend(h, mask))``: ``(B, C)`` logits."""
        return self.run(batch).logits

    def _embedding_and_config(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        encoder: str,
        embedding_dim: int,
        hidden: int,
        dropout: float,
    ) -> nn.Embedding:
        """Record the constructor arguments (for :meth:`config_dict`) and build the word table.

        Every registered model takes these same arguments, so they are kept in one place.
        """
        self._config: dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "encoder": encoder,
            "embedding_dim": embedding_dim,
            "hidden": hidden,
            "dropout": dropout,
        }
        return make_embedding(vocab_size, embedding_dim)  # N(0, 1/E): about unit-norm rows

    def config_dict(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild an identical (untrained) model."""
        return dict(self._config)
