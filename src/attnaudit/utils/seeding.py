"""Explicit seeding: every random choice comes from a seed the caller passes in."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (for training only)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def doc_rng(seed: int, doc_id: str, purpose: str) -> np.random.Generator:
    """A generator fixed by ``(seed, doc_id, purpose)`` alone.

    Per-document generators make a document's random draws independent of batch size, batch order
    and how many documents came before it, so a batch gives the same result as its documents one by one.
    """
    digest = hashlib.sha256(f"{seed}\x00{purpose}\x00{doc_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))
