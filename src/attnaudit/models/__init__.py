"""Attention classifiers under audit, and their registry.

Adding a model: write one file with an :class:`AttentionClassifier` subclass whose constructor takes
``(*, vocab_size, num_classes, encoder, embedding_dim, hidden, dropout)``, that declares its attention
``SITES`` (and ``hierarchical = True`` if it reads ``(B, S, W)`` batches), and add one line to
:data:`MODELS`. The conformance suite (tests/test_conformance.py) then runs over it and every site.
"""

from __future__ import annotations

import torch

from attnaudit.models.base import (
    AdditiveAttention,
    AttentionClassifier,
    LinearReadout,
    ModelOutput,
    Site,
    SiteOutput,
    item_texts,
    masked_softmax,
)
from attnaudit.models.encoders import ENCODERS
from attnaudit.models.flan import FlatAttentionClassifier
from attnaudit.models.han import HierarchicalAttentionClassifier

#: registry: model kind -> class
MODELS: dict[str, type[AttentionClassifier]] = {
    "flan": FlatAttentionClassifier,
    "han": HierarchicalAttentionClassifier,
}

#: every ``kind-encoder`` name, in the paper's order
MODEL_NAMES: tuple[str, ...] = tuple(f"{k}-{e}" for k in MODELS for e in ENCODERS)

__all__ = [
    "ENCODERS",
    "MODELS",
    "MODEL_NAMES",
    "AdditiveAttention",
    "AttentionClassifier",
    "FlatAttentionClassifier",
    "HierarchicalAttentionClassifier",
    "LinearReadout",
    "ModelOutput",
    "Site",
    "SiteOutput",
    "build_model",
    "is_hierarchical",
    "item_texts",
    "masked_softmax",
    "model_name",
    "parse_model_name",
]


def _check(kind: str, encoder: str) -> None:
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; choose from {sorted(MODELS)}")
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; choose from {sorted(ENCODERS)}")


def model_name(kind: str, encoder: str) -> str:
    """``("flan", "rnn") -> "flan-rnn"``."""
    _check(kind, encoder)
    return f"{kind}-{encoder}"


def parse_model_name(name: str) -> tuple[str, str]:
    """``"flan-rnn" -> ("flan", "rnn")``; raises ``ValueError`` on an unknown name."""
    kind, sep, encoder = name.strip().lower().partition("-")
    if not sep:
        raise ValueError(f"model name {name!r} is not KIND-ENCODER; choose from {list(MODEL_NAMES)}")
    _check(kind, encoder)
    return kind, encoder


def is_hierarchical(kind: str) -> bool:
    """Whether ``kind`` reads ``(B, S, W)`` batches (sentences of words) rather than ``(B, T)``.

    Read from the model class's ``hierarchical`` attribute.
    """
    _check(kind, "none")
    return MODELS[kind].hierarchical


def build_model(
    kind: str,
    encoder: str,
    *,
    vocab_size: int,
    num_classes: int,
    embedding_dim: int = 200,
    hidden: int = 50,
    dropout: float = 0.3,
    embeddings: torch.Tensor | None = None,
) -> AttentionClassifier:
    """Build an untrained classifier.

    Args:
        kind: ``"flan"`` or ``"han"`` (keys of :data:`MODELS`).
        encoder: ``"none"``, ``"cnn"`` or ``"rnn"``.
        vocab_size: embedding rows, including padding (0) and UNK (1).
        num_classes: ``C``.
        embedding_dim: ``E``; must match ``embeddings`` when given.
        hidden: GRU units per direction / CNN filters per width.
        dropout: dropout in front of the CNN.
        embeddings: optional ``(vocab_size, E)`` initial word vectors (fine-tuned in training).

    Example:
        >>> model = build_model("han", "rnn", vocab_size=1000, num_classes=5)
        >>> model.kind, model.state_dim
        ('han', 100)
    """
    _check(kind, encoder)
    model = MODELS[kind](
        vocab_size=vocab_size,
        num_classes=num_classes,
        encoder=encoder,
        embedding_dim=embedding_dim,
        hidden=hidden,
        dropout=dropout,
    )
    if embeddings is not None:
        if tuple(embeddings.shape) != (vocab_size, embedding_dim):
            raise ValueError(
                f"embeddings have shape {tuple(embeddings.shape)}, "
                f"expected ({vocab_size}, {embedding_dim})"
            )
        table = model.get_submodule("embedding")
        if not isinstance(table, torch.nn.Embedding):
            raise TypeError(f"{kind} has no nn.Embedding named 'embedding'")
        with torch.no_grad():
            table.weight.copy_(embeddings)
    return model
