"""Divergences between output distributions."""

from __future__ import annotations

import math
from typing import Literal

import torch

JSBase = Literal["e", "2"]


def _kl_terms(p: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    # 0 * log(0 / m) is 0 by convention; where p > 0, m >= p / 2 > 0.
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    safe_m = torch.where(p > 0, m, torch.ones_like(m))
    return torch.where(p > 0, p * (safe_p.log() - safe_m.log()), torch.zeros_like(p)).sum(-1)


def js_divergence(p: torch.Tensor, q: torch.Tensor, *, base: JSBase = "e") -> torch.Tensor:
    """Jensen-Shannon divergence between distributions along the last dim.

    ``JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``.

    Args:
        p, q: ``(..., C)`` probability vectors.
        base: ``"e"`` for nats (the original system's unit, at most ln 2) or ``"2"`` for bits
            (at most 1).
    Returns:
        ``(...)`` divergences, clamped at 0 against rounding.
    """
    if base not in ("e", "2"):
        raise ValueError(f"base must be 'e' or '2', got {base!r}")
    p = p.to(torch.float64)
    q = q.to(torch.float64)
    m = (p + q) / 2
    js = (_kl_terms(p, m) + _kl_terms(q, m)) / 2
    if base == "2":
        js = js / math.log(2)
    return js.clamp_min(0.0)
