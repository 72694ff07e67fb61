"""Divergences between output distributions."""

from __future__ import annotations

import math
from typing import Literal

import torch

JSBase = Literal["e", "2"]


def _kl_terms(p: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    # KL(p || m) with m = total / 2, total = p + q, as p * log(2 p / total): halving first would
    # round a subnormal m to 0 (and JS to inf), while total >= p > 0 wherever p > 0.
    # 0 * log(0 / m) is 0 by convention.
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    safe_total = torch.where(p > 0, total, torch.ones_like(total))
    terms = p * (math.log(2) + safe_p.log() - safe_total.log())
    return torch.where(p > 0, terms, torch.zeros_like(p)).sum(-1)


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
    total = p + q  # twice the mixture m
    js = (_kl_terms(p, total) + _kl_terms(q, total)) / 2
    if base == "2":
        js = js / math.log(2)
    return js.clamp_min(0.0)
