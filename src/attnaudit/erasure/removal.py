"""Test 2 (spec section 3): remove ranked attention weights until the decision flips.

Rankings are computed once from the unmodified model; nothing is re-ranked after a removal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from attnaudit.erasure.interventions import (
    first_flip_from_prefixes,
    naive_first_flip,
    prefix_logits,
    removal_order,
)
from attnaudit.models.base import AttentionClassifier, ModelOutput

ErasurePath = Literal["fast", "naive"]


@dataclass
class RemovalResult:
    """Test 2 for one ranking over ``B`` documents.

    Attributes:
        n_items: ``(B,)`` number of real items.
        removed_at_flip: ``(B,)`` float, items removed at the first flip, NaN if never.
        fraction_removed: ``(B,)`` ``removed_at_flip / n_items``.
        mass_removed: ``(B,)`` sum of the removed items' original weights, NaN if never.
        never_flipped: ``(B,)`` bool, no flip even with every item removed.
        orders: ``B`` arrays of item indices in removal order.
    """

    n_items: np.ndarray
    removed_at_flip: np.ndarray
    fraction_removed: np.ndarray
    mass_removed: np.ndarray
    never_flipped: np.ndarray
    orders: list[np.ndarray]


@torch.no_grad()
def removal_test(
    model: AttentionClassifier,
    output: ModelOutput,
    scores: torch.Tensor,
    *,
    path: ErasurePath = "fast",
) -> RemovalResult:
    """Run Test 2 for one ranking on one batch.

    Args:
        model: classifier in eval mode.
        output: its unmodified pass (states ``(B, n, d)``, attention ``(B, n)``, mask, logits).
        scores: ``(B, n)`` ranking scores, higher removed first.
        path: ``"fast"`` (all prefixes from suffix sums, one head call) or ``"naive"`` (the
            reference: one head call per removal step per document).
    """
    mask = output.mask
    weights = output.attention.detach()
    states = output.states.detach()
    predicted = output.logits.detach().argmax(dim=-1)  # (B,)
    lengths = mask.sum(dim=1)  # (B,)
    order = removal_order(scores, mask)  # (B, n)
    if path == "fast":
        first = first_flip_from_prefixes(
            prefix_logits(model, states, weights, order), predicted, lengths
        )
    elif path == "naive":
        first = torch.tensor(
            [
                naive_first_flip(
                    model, states[b], weights[b], order[b, : int(lengths[b])], int(predicted[b])
                )
                for b in range(len(lengths))
            ],
            dtype=torch.long,
        )
    else:
        raise ValueError(f"path must be 'fast' or 'naive', got {path!r}")
    first_np = first.cpu().numpy()
    n_np = lengths.cpu().numpy()
    never = first_np < 0
    ranked_mass = weights.gather(1, order).double().cumsum(dim=1).cpu().numpy()  # (B, n)
    mass = np.where(
        never, np.nan, ranked_mass[np.arange(len(first_np)), np.maximum(first_np, 1) - 1]
    )
    removed = np.where(never, np.nan, first_np.astype(np.float64))
    order_np = order.cpu().numpy()
    return RemovalResult(
        n_items=n_np,
        removed_at_flip=removed,
        fraction_removed=removed / n_np,
        mass_removed=mass,
        never_flipped=never,
        orders=[order_np[b, : n_np[b]] for b in range(len(n_np))],
    )
