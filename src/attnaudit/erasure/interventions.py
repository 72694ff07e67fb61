"""Interventions on the last attention layer: zero some weights, renormalise, recompute the head.

Two paths compute the same thing:

* :func:`naive_first_flip`: the reference. For each removal step build the modified weight vector and
  call the head: ``O(n)`` head calls per document and ranking (what the original system did).
* :func:`prefix_logits`: the fast path. Because ``z = sum_i a_i h_i`` is linear in ``a``, the context
  after removing the first ``k`` ranked items is ``(sum of a_j h_j over kept j) / (sum of kept a_j)``.
  Suffix sums over the ranked items give all ``n + 1`` contexts at once, then one batched head call;
  with the paper's affine head the states are first projected to class scores ``V h_j``.
  Suffix sums (rather than ``Z - cumsum``) add up only the kept, non-negative weights, so there is no
  catastrophic cancellation when the remaining mass is tiny.
"""

from __future__ import annotations

import torch

from attnaudit.models.base import AttentionClassifier


def erase(weights: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """Zero the removed items' weights and renormalise the rest to sum to 1.

    Args:
        weights: ``(..., n)`` attention weights (0 on padding).
        removed: ``(..., n)`` bool, True for items to zero.
    Returns:
        ``(..., n)`` renormalised weights; all zero where nothing with positive weight is left
        (the head then sees the zero context vector and gives its bias alone).
    """
    kept = weights.masked_fill(removed, 0.0)
    total = kept.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, kept / torch.where(total > 0, total, 1.0), torch.zeros_like(kept))


def removal_order(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Item indices by decreasing score, padding last; ties broken by position (stable).

    Args:
        scores: ``(B, n)`` importance scores.
        mask: ``(B, n)`` bool real-item mask.
    Returns:
        ``(B, n)`` long indices; the first ``n_b`` of row ``b`` are its real items.
    """
    keyed = scores.masked_fill(~mask, float("-inf"))
    # Real items whose score is -inf must still come before padding.
    keyed = torch.where(mask & torch.isneginf(keyed), torch.finfo(keyed.dtype).min, keyed)
    return torch.sort(keyed, dim=1, descending=True, stable=True).indices


def single_removal_logits(
    model: AttentionClassifier, states: torch.Tensor, weights: torch.Tensor, item: torch.Tensor
) -> torch.Tensor:
    """Logits after zeroing one item per document and renormalising.

    Args:
        states: ``(B, n, d)``; weights: ``(B, n)``; item: ``(B,)`` long index of the item to zero.
    Returns:
        ``(B, C)`` logits.
    """
    removed = torch.zeros_like(weights, dtype=torch.bool)
    removed.scatter_(1, item[:, None], True)
    return model.head(states, erase(weights, removed))


def prefix_logits(
    model: AttentionClassifier, states: torch.Tensor, weights: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """Logits after removing the first ``k`` ranked items, for every ``k = 0..n``, in one head call.

    Args:
        states: ``(B, n, d)`` cached encoder states.
        weights: ``(B, n)`` unmodified attention weights (0 on padding).
        order: ``(B, n)`` removal order from :func:`removal_order` (padding last).
    Returns:
        ``(B, n + 1, C)``: entry ``k`` is the output with the first ``k`` items of ``order`` removed.
        For ``k`` beyond a row's real items only padding is removed, so entries repeat ``k = n_b``.
    """
    ranked_weights = weights.gather(1, order)  # (B, n)
    kept_mass = _suffix_sums(ranked_weights)  # (B, n+1): weight left after removing k items
    has_mass = kept_mass > 0
    safe_mass = torch.where(has_mass, kept_mass, torch.ones_like(kept_mass))[:, :, None]
    if model.affine_head:
        # classify(z) = V z + v is affine, so V z_k = (sum of kept a_j V h_j) / (kept mass): sum
        # C-dimensional item scores instead of d-dimensional states (C << d).
        head = model.classifier
        scores = torch.nn.functional.linear(states, head.weight)  # (B, n, C): V h_j
        ranked = scores.gather(1, order[:, :, None].expand(-1, -1, scores.shape[2]))  # (B, n, C)
        kept = _suffix_sums(ranked_weights[:, :, None] * ranked)  # (B, n+1, C)
        context_scores = torch.where(has_mass[:, :, None], kept / safe_mass, 0.0)  # (B, n+1, C)
        bias = head.bias if head.bias is not None else torch.zeros_like(context_scores[0, 0])
        return context_scores + bias
    ranked_states = states.gather(1, order[:, :, None].expand(-1, -1, states.shape[2]))  # (B, n, d)
    kept_sum = _suffix_sums(ranked_weights[:, :, None] * ranked_states)  # (B, n+1, d)
    contexts = torch.where(has_mass[:, :, None], kept_sum / safe_mass, 0.0)  # (B, n+1, d)
    return model.classify(contexts)  # (B, n+1, C)


def _suffix_sums(values: torch.Tensor) -> torch.Tensor:
    """``out[:, k] = values[:, k:].sum(1)`` for ``k = 0..n``: ``(B, n, ...) -> (B, n + 1, ...)``.

    Summing what is kept (rather than ``total - cumsum``) avoids cancellation when little is left.
    """
    suffix = values.flip(1).cumsum(1).flip(1)
    return torch.cat([suffix, torch.zeros_like(values[:, :1])], dim=1)


def first_flip_from_prefixes(
    prefix: torch.Tensor, predicted: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Number of removals at the first decision flip, from :func:`prefix_logits`.

    Args:
        prefix: ``(B, n + 1, C)`` logits per number of removed items.
        predicted: ``(B,)`` the unmodified model's predicted class.
        lengths: ``(B,)`` number of real items ``n_b``.
    Returns:
        ``(B,)`` long: smallest ``k`` in ``1..n_b`` whose decision differs from ``predicted``,
        or ``-1`` where the decision never flips, even with every item removed.
    """
    steps = torch.arange(prefix.shape[1], device=prefix.device)  # (n+1,)
    flipped = prefix.argmax(-1) != predicted[:, None]  # (B, n+1)
    valid = (steps[None, :] >= 1) & (steps[None, :] <= lengths[:, None])
    flipped &= valid
    first = torch.where(flipped, steps[None, :], prefix.shape[1]).min(dim=1).values
    return torch.where(first < prefix.shape[1], first, torch.full_like(first, -1))


def naive_first_flip(
    model: AttentionClassifier,
    states: torch.Tensor,
    weights: torch.Tensor,
    order: torch.Tensor,
    predicted: int,
) -> int:
    """Reference for one document: remove ranked items one at a time until the decision flips.

    Args:
        states: ``(n, d)`` one document's real items' states (no padding).
        weights: ``(n,)`` its attention weights.
        order: ``(n,)`` removal order.
        predicted: the unmodified model's predicted class.
    Returns:
        Number of items removed at the first flip, or ``-1`` if it never flips.
    """
    removed = torch.zeros_like(weights, dtype=torch.bool)
    for step, item in enumerate(order.tolist(), start=1):
        removed[item] = True
        logits = model.head(states[None], erase(weights, removed)[None])  # (1, C)
        if int(logits.argmax(-1)) != predicted:
            return step
    return -1
