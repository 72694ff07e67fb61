"""Small random models and padded batches for the model-agnostic tests (no data files needed)."""

from __future__ import annotations

import numpy as np
import torch

from attnaudit.data.types import PAD_ID, Batch
from attnaudit.models import MODEL_NAMES, build_model, parse_model_name
from attnaudit.models.base import AttentionClassifier

VOCAB = 60


def random_model(
    name: str, *, seed: int, num_classes: int = 3, dtype: torch.dtype = torch.float64
) -> AttentionClassifier:
    """A small untrained model of variant ``name`` (e.g. ``"han-rnn"``), in eval mode.

    Weights are scaled up so that attention is peaked and removals often change decisions.
    """
    torch.manual_seed(seed)
    kind, encoder = parse_model_name(name)
    model = build_model(
        kind, encoder, vocab_size=VOCAB, num_classes=num_classes, embedding_dim=12, hidden=6
    )
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    return model.to(dtype).eval()


def random_batch(name: str, *, seed: int, lengths: list[int]) -> Batch:
    """A padded batch with ``lengths[b]`` items (tokens, or sentences for HAN) in document ``b``."""
    rng = np.random.default_rng(seed)
    hierarchical = parse_model_name(name)[0] == "han"
    ids = [f"doc{seed}-{b}" for b in range(len(lengths))]
    labels = torch.from_numpy(rng.integers(0, 3, size=len(lengths)))
    if not hierarchical:
        tokens = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
        for b, n in enumerate(lengths):
            tokens[b, :n] = torch.from_numpy(rng.integers(2, VOCAB, size=n))
        return Batch(ids, tokens, labels)
    words = 5
    tokens = torch.full((len(lengths), max(lengths), words), PAD_ID, dtype=torch.long)
    for b, n in enumerate(lengths):
        for s in range(n):
            w = int(rng.integers(1, words + 1))
            tokens[b, s, :w] = torch.from_numpy(rng.integers(2, VOCAB, size=w))
    return Batch(ids, tokens, labels)


ALL_MODELS = list(MODEL_NAMES)
