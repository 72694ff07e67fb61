"""FLAN, the flat attention network: one attention layer over all the tokens of a document.

    x = embed(token_ids)          # (B, T, E)
    h = encoder(x, mask)          # (B, T, d)   over the whole document
    a = attention(h, mask)        # (B, T)      the layer the attention tests manipulate
    logits = classifier(a @ h)    # (B, C)
"""

from __future__ import annotations

import torch
from torch import nn

from attnaudit.data.types import Batch
from attnaudit.models.base import AdditiveAttention, AttentionClassifier, Site
from attnaudit.models.encoders import build_encoder


class FlatAttentionClassifier(AttentionClassifier):
    """Embedding -> encoder over the document -> additive attention over tokens -> linear head.

    Args:
        vocab_size: rows of the embedding table (``PAD_ID`` = 0 is the padding row).
        num_classes: ``C``.
        encoder: ``"none"``, ``"cnn"`` or ``"rnn"``.
        embedding_dim: ``E`` (200 in the original).
        hidden: GRU units per direction or CNN filters per width (50 in the original).
        dropout: dropout in front of the CNN (0.3 in the original; unused by other encoders).

    Example:
        >>> model = FlatAttentionClassifier(vocab_size=100, num_classes=3, encoder="cnn")
        >>> batch = Batch(["d0"], torch.tensor([[5, 6, 7, 0]]), torch.tensor([1]))
        >>> model.run(batch).site("token").attention.shape
        torch.Size([1, 4])
    """

    kind = "flan"
    hierarchical = False  # batches are (B, T) token ids
    SITES = (
        Site("token", "token attention (pooling)", "token", paper=True,
             description="the attention over the document's tokens that pools them for the head"),
    )

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        encoder: str = "rnn",
        embedding_dim: int = 200,
        hidden: int = 50,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.embedding = self._embedding_and_config(
            vocab_size=vocab_size, num_classes=num_classes, encoder=encoder,
            embedding_dim=embedding_dim, hidden=hidden, dropout=dropout,
        )
        self.encoder = build_encoder(encoder, embedding_dim, hidden=hidden, dropout=dropout)
        self.state_dim = self.encoder.output_dim
        self.attention = AdditiveAttention(self.state_dim)
        self.classifier = nn.Linear(self.state_dim, num_classes)

    def embed(self, batch: Batch) -> torch.Tensor:
        """Token vectors ``(B, T, E)`` (padding: the zero row)."""
        token_ids = batch.token_ids  # (B, T)
        if token_ids.dim() != 2:
            raise ValueError(
                f"FLAN needs flat token ids (B, T), got shape {tuple(token_ids.shape)}; "
                "batch with hierarchical=False"
            )
        return self.embedding(token_ids)  # (B, T, E)

    def encode_embedded(
        self, batch: Batch, embedded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states ``(B, T, d)`` and token mask ``(B, T)`` (``batch.mask``) from token
        vectors ``embedded`` ``(B, T, E)``."""
        mask = batch.mask  # (B, T)
        h = self.encoder(embedded, mask)  # (B, T, d)
        return h, mask
