"""Erasure at an attention site: zero some weights, renormalise, recompute the model's output.

Three paths compute the same erasure curves (logits after erasing the first ``k`` ranked items, or
after keeping only them, for every ``k = 0..n``):

* **fast** (:func:`linear_curve`): where the model offers a :class:`LinearReadout` (a linear pooling
  feeding the head), the pooled vector after erasing is ``(sum of a_j v_j over kept j) / (sum of kept
  a_j)``: suffix (remove) or prefix (keep) sums over the ranked items give all ``n + 1`` at once, then
  one readout call. Summing only what is kept (rather than ``total - cumsum``) adds non-negative weights
  only, so nothing cancels when little mass is left.
* **batched** (:func:`batched_curve`): every other site: the ``n + 1`` erased weight vectors are built
  and handed to :meth:`AttentionClassifier.logits_with` together (in calls sized to the memory
  budget, :mod:`attnaudit.erasure.memory`).
* **naive** (:func:`naive_curve`): the reference: one document, one step, one ``logits_with`` call.

Every path also takes a step *schedule* ``steps`` (``(B, K)`` long, the convention of
:func:`attnaudit.erasure.input_level.step_schedule`: each row increasing from 0 to its ``n_b``, padded
by repeating ``n_b``) and then returns ``(B, K, C)``: column ``j`` of row ``b`` is step
``steps[b, j]``. The batched and naive paths then build and recompute only the ``K`` scheduled
candidates per document (the point of a schedule where each step is a recompute through layers); the
fast path computes every step anyway (sums are cheap) and gathers the scheduled ones before the
readout.
"""

from __future__ import annotations

from typing import Literal

import torch

from attnaudit.erasure.memory import bounded_logits_with
from attnaudit.models.base import (
    AttentionClassifier,
    LinearReadout,
    ModelOutput,
    renormalise,
    tie_key,
)

ErasurePath = Literal["fast", "naive"]
#: ``remove``: erase the first k ranked items; ``keep``: erase all but the first k
CurveKind = Literal["remove", "keep"]


def resolved_decisions(
    curve: torch.Tensor, predicted: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each step's decision, where a change of decision must be resolvable in the logits' dtype.

    A step whose top class beats the unmodified prediction ``ŷ`` by no more than the dtype's
    resolution at that size (one unit in the last place: ``eps * max(|top|, |ŷ's|)``; float32
    1.2e-7, bfloat16 7.8e-3, float16 9.8e-4 relative) is no flip: rounding alone can order
    such logits either way. It keeps ``ŷ`` and is counted (flagged), never silently dropped.

    Args:
        curve: ``(B, K, C)`` logits along the curve.
        predicted: ``(B,)`` the unmodified prediction.
    Returns:
        ``(B, K)`` long decisions and ``(B,)`` long counts of unresolved steps.
    """
    top_logit, top = curve.max(dim=-1)  # (B, K)
    mine = curve.gather(2, predicted[:, None, None].expand(-1, curve.shape[1], 1))[..., 0]
    resolution = torch.finfo(curve.dtype).eps * torch.maximum(top_logit.abs(), mine.abs())
    unresolved = (top != predicted[:, None]) & (top_logit - mine <= resolution)  # (B, K)
    return torch.where(unresolved, predicted[:, None], top), unresolved.sum(dim=1)


def erase(weights: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """Zero the removed items' weights and renormalise the rest to sum to 1.

    Args:
        weights: ``(..., n)`` attention weights (0 on padding).
        removed: ``(..., n)`` bool, True for items to zero.
    Returns:
        ``(..., n)`` renormalised weights; all zero where nothing with positive weight is left
        (a pooling site then passes the zero vector on: the head gives its bias alone).
    """
    return renormalise(weights.masked_fill(removed, 0.0))


def removal_order(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Item indices by decreasing score, padding last; ties (:func:`tie_key`) broken by position.

    Args:
        scores: ``(B, n)`` importance scores.
        mask: ``(B, n)`` bool real-item mask.
    Returns:
        ``(B, n)`` long indices; the first ``n_b`` of row ``b`` are its real items.
    """
    keyed = tie_key(scores).masked_fill(~mask, float("-inf"))
    # Real items whose score is -inf must still come before padding.
    keyed = torch.where(mask & torch.isneginf(keyed), torch.finfo(keyed.dtype).min, keyed)
    return torch.sort(keyed, dim=1, descending=True, stable=True).indices


def _suffix_sums(values: torch.Tensor) -> torch.Tensor:
    """``out[:, k] = values[:, k:].sum(1)`` for ``k = 0..n``: ``(B, n, ...) -> (B, n + 1, ...)``."""
    suffix = values.flip(1).cumsum(1).flip(1)
    return torch.cat([suffix, torch.zeros_like(values[:, :1])], dim=1)


def _prefix_sums(values: torch.Tensor) -> torch.Tensor:
    """``out[:, k] = values[:, :k].sum(1)`` for ``k = 0..n``: ``(B, n, ...) -> (B, n + 1, ...)``."""
    return torch.cat([torch.zeros_like(values[:, :1]), values.cumsum(1)], dim=1)


def linear_curve(
    model: AttentionClassifier,
    output: ModelOutput,
    site: str,
    order: torch.Tensor,
    kind: CurveKind,
    steps: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The fast path: all ``n + 1`` erasure steps from suffix/prefix sums, or None if not offered.

    Args:
        order: ``(B, n)`` removal order (:func:`removal_order`, padding last).
        kind: ``"remove"`` or ``"keep"``.
        steps: ``(B, K)`` long step schedule, or None for every step.
    Returns:
        ``(B, n + 1, C)`` logits; entry ``k`` erases (remove) or keeps (keep) the first ``k`` ranked
        items. Beyond a row's ``n_b`` only padding moves, so entries repeat ``k = n_b``. With
        ``steps``: ``(B, K, C)``, column ``j`` of row ``b`` at step ``steps[b, j]``.
    """
    linear = model.linear_readout(output, site)
    if linear is None:
        return None
    return readout_curve(linear, output.site(site).attention, order, kind, steps)


def readout_curve(
    linear: LinearReadout,
    weights: torch.Tensor,
    order: torch.Tensor,
    kind: CurveKind,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`linear_curve` from a site's readout (computed once per batch, shared by rankings):
    ``(B, n + 1, C)`` logits, or ``(B, K, C)`` on the ``(B, K)`` schedule ``steps``."""
    ranked_weights = weights.gather(1, order)  # (B, n)
    values = linear.values
    ranked = values.gather(1, order[:, :, None].expand(-1, -1, values.shape[2]))  # (B, n, m)
    sums = _suffix_sums if kind == "remove" else _prefix_sums
    mass = sums(ranked_weights)  # (B, n+1): weight left after the erasure
    pooled = sums(ranked_weights[:, :, None] * ranked)  # (B, n+1, m)
    if steps is not None:
        # The cumulative sums give all n + 1 steps at once; only the scheduled ones are read out.
        mass = mass.gather(1, steps)  # (B, K)
        pooled = pooled.gather(1, steps[:, :, None].expand(-1, -1, pooled.shape[2]))  # (B, K, m)
    has_mass = mass > 0
    safe = torch.where(has_mass, mass, torch.ones_like(mass))[:, :, None]
    return linear.readout(torch.where(has_mass[:, :, None], pooled / safe, 0.0))  # (B, K, C)


def erased_weights(
    weights: torch.Tensor, order: torch.Tensor, kind: CurveKind, steps: torch.Tensor | None = None
) -> torch.Tensor:
    """Each step's erased, renormalised weight vector: ``(B, n), (B, n) -> (B, n + 1, n)`` for every
    step, or ``(B, K, n)`` for the ``(B, K)`` long schedule ``steps`` (row ``b``'s steps only)."""
    n = weights.shape[1]
    position = torch.argsort(order, dim=1)  # (B, n): where each item comes in the order
    if steps is None:
        ks = torch.arange(n + 1, device=weights.device)[None, :, None]  # (1, n+1, 1)
    else:
        ks = steps[:, :, None]  # (B, K, 1)
    first_k = position[:, None, :] < ks  # (B, K, n): item among the first k ranked
    removed = first_k if kind == "remove" else ~first_k
    return erase(weights[:, None, :].expand(-1, ks.shape[1], -1), removed)


def batched_curve(
    model: AttentionClassifier,
    output: ModelOutput,
    site: str,
    order: torch.Tensor,
    kind: CurveKind,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Erasure steps through ``logits_with`` (any site): ``(B, n + 1, C)`` logits of every step, or
    ``(B, K, C)`` of the ``(B, K)`` schedule ``steps`` (only its ``K`` candidates are built and
    recomputed per document)."""
    candidates = erased_weights(output.site(site).attention, order, kind, steps)  # (B, K, n)
    # in calls that fit the memory budget (--max-memory): attnaudit.erasure.memory
    return bounded_logits_with(model, output, site, candidates)  # (B, K, C)


def erasure_curve(
    model: AttentionClassifier,
    output: ModelOutput,
    site: str,
    order: torch.Tensor,
    kind: CurveKind,
    *,
    path: ErasurePath = "fast",
    readout: LinearReadout | None = None,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, n + 1, C)`` logits of every erasure step, or ``(B, K, C)`` of the ``(B, K)`` long
    schedule ``steps``: the fast path where the site offers it.

    Args:
        readout: the site's :meth:`AttentionClassifier.linear_readout`, when the caller already has
            it (it is the same for every ranking of a batch); None asks the model.
        steps: ``(B, K)`` long step schedule (module docstring), or None for every step.
    """
    if path == "naive":
        return naive_curve(model, output, site, order, kind, steps)
    if path != "fast":
        raise ValueError(f"path must be 'fast' or 'naive', got {path!r}")
    linear = readout if readout is not None else model.linear_readout(output, site)
    if linear is None:
        return batched_curve(model, output, site, order, kind, steps)
    return readout_curve(linear, output.site(site).attention, order, kind, steps)


def naive_curve(
    model: AttentionClassifier,
    output: ModelOutput,
    site: str,
    order: torch.Tensor,
    kind: CurveKind,
    steps: torch.Tensor | None = None,
) -> torch.Tensor:
    """The reference: per document and step, build the erased weights and recompute once.

    ``O(n)`` model calls per document (what the original system did for its one site), ``O(K)``
    on the ``(B, K)`` schedule ``steps``.

    Returns:
        ``(B, n + 1, C)`` logits, or ``(B, K, C)`` with ``steps``.
    """
    out = output.site(site)
    lengths = out.mask.sum(dim=1).tolist()
    every = list(range(order.shape[1] + 1))
    rows = []
    for b, n_b in enumerate(lengths):
        one = output.index([b])
        weights = out.attention[b]  # (n,)
        logits = []
        for k in every if steps is None else steps[b].tolist():
            first_k = torch.zeros_like(weights, dtype=torch.bool)
            first_k[order[b, : min(k, n_b)]] = True
            removed = first_k if kind == "remove" else ~first_k
            logits.append(model.logits_with(one, site, erase(weights, removed)[None, None])[0, 0])
        rows.append(torch.stack(logits))  # (K, C)
    return torch.stack(rows)  # (B, K, C)
