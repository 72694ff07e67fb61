"""Test 1 (spec section 2): the importance of a single attention weight, the k = 1 erasure.

For each document with at least two items, zero one weight of a site, renormalise the rest, and
compare the new output distribution with the unmodified one. The removed item is chosen several
ways: the highest weight (``max``, the paper's ``i*``), the second highest, the lowest, a random other
item, and the top item of every selected ranking other than ``random`` and ``attention`` (by default
``gradient`` and ``attention_x_gradient``). All removals of a batch go through one ``logits_with``
call of shape ``(B, R, n)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from attnaudit.erasure.interventions import erase, resolved_decisions
from attnaudit.erasure.memory import bounded_logits_with
from attnaudit.erasure.metrics import js_divergence
from attnaudit.models.base import AttentionClassifier, ModelOutput, tie_key
from attnaudit.utils.seeding import doc_keys, random_words, uniform_below

#: the removals every Test 1 makes, before the selected rankings' top items
BASE_REMOVALS = ("max", "second", "min", "random")

RandomDraw = Literal["uniform", "original"]


def single_removals(rankings: Sequence[str]) -> tuple[str, ...]:
    """The removals of Test 1 for the selected rankings, in report order."""
    return (*BASE_REMOVALS, *(r for r in rankings if r not in ("random", "attention")))


def random_items(
    keys: torch.Tensor, lengths: torch.Tensor, top_items: torch.Tensor, *,
    draw: RandomDraw = "uniform",
) -> torch.Tensor:
    """The random comparison item ``r`` of every document at once: ``(B,)`` long.

    Args:
        keys: ``(B, 2)`` the documents' Philox keys (:func:`~attnaudit.utils.seeding.doc_keys`).
        lengths: ``(B,)`` real items per document (a prefix of each row).
        top_items: ``(B,)`` each document's top item ``i*``.
        draw: ``"uniform"`` draws uniformly among the items other than ``i*`` (the intended
            test). ``"original"`` reproduces the original code's draw: a raw position in
            ``1..n-1``, so ``r`` can equal ``i*`` and position 0 is never drawn.
    Returns:
        ``(B,)`` on ``keys``' device; 0 for documents with fewer than two items (skipped by the
        caller). Each draw is ``floor(u * (n - 1) / 2^32)`` of the 32-bit word ``u`` at counter
        ``(0, 0, 0, 0)`` (multiply-shift: each value's probability is within a relative
        ``n / 2^32`` of uniform), so it depends on the document's key and length alone.
    """
    if draw not in ("uniform", "original"):
        raise ValueError(f"draw must be 'uniform' or 'original', got {draw!r}")
    counter = torch.zeros(4, dtype=torch.int64, device=keys.device)
    word = random_words(keys, counter)[:, 0]  # (B,) 32-bit
    lengths = lengths.to(keys.device)
    other = uniform_below(word, (lengths - 1).clamp_min(0))  # (B,) in [0, n-1)
    # "uniform" skips the top item: the n - 1 others, in position order
    skip = (other >= top_items.to(keys.device)).long() if draw == "uniform" else 1
    chosen = other + skip
    return torch.where(lengths >= 2, chosen, torch.zeros_like(chosen))


def draw_random_item(
    seed: int, doc_id: str, n_items: int, top_item: int, *, draw: RandomDraw = "uniform",
    purpose: str = "single_weight:random",
) -> int:
    """The random comparison item ``r`` of one document (:func:`random_items` for one document).

    Fixed by ``(seed, doc_id, purpose)`` and ``n_items``: the same item as inside any batch.
    """
    if n_items < 2:
        raise ValueError(f"a random other item needs at least two items, got {n_items}")
    keys = doc_keys(seed, [doc_id], purpose)
    return int(random_items(keys, torch.tensor([n_items]), torch.tensor([top_item]), draw=draw)[0])


def choose_items(
    weights: torch.Tensor,
    mask: torch.Tensor,
    scores: dict[str, torch.Tensor],
    removals: Sequence[str],
    doc_ids: list[str],
    *,
    seed: int,
    random_draw: RandomDraw = "uniform",
    purpose: str = "single_weight:random",
) -> torch.Tensor:
    """Item index removed by each removal, per document: ``(B, R)`` long.

    Args:
        weights: ``(B, n)`` the site's attention; mask: ``(B, n)`` its real items.
        scores: ``(B, n)`` scores of the rankings named in ``removals`` beyond :data:`BASE_REMOVALS`.
        doc_ids: the ``B`` document ids; with ``seed`` and ``purpose`` they fix the random item
            (:func:`random_items`).
    Returns:
        ``(B, R)``; rows with fewer than two items are skipped by the caller.
    """
    key = tie_key(weights)  # near-equal weights count as tied: first position wins
    by_weight = key.masked_fill(~mask, float("-inf")).argsort(dim=1, descending=True, stable=True)
    top = by_weight[:, 0]
    # Real items are a prefix of each row, so the top item's rank among them is its position.
    # One counter-based draw for the whole batch, on its device: no per-document host work.
    keys = doc_keys(seed, doc_ids, purpose, device=weights.device)  # (B, 2)
    chosen = {
        "max": top,
        "second": by_weight[:, 1] if by_weight.shape[1] > 1 else top,
        "min": key.masked_fill(~mask, float("inf")).argmin(dim=1),
        "random": random_items(keys, mask.sum(dim=1), top, draw=random_draw),
    }
    for name in removals:
        if name not in chosen:
            chosen[name] = tie_key(scores[name]).argmax(dim=1)
    return torch.stack([chosen[name] for name in removals], dim=1)  # (B, R)


@torch.no_grad()
def single_weight_test(
    model: AttentionClassifier,
    output: ModelOutput,
    site: str,
    scores: dict[str, torch.Tensor],
    removals: Sequence[str],
    doc_ids: list[str],
    *,
    seed: int = 0,
    random_draw: RandomDraw = "uniform",
) -> dict[str, np.ndarray]:
    """Run Test 1 at one site on one batch.

    Args:
        model: classifier in eval mode; output: its unmodified pass over the batch.
        scores: ``(B, n)`` scores of the rankings among ``removals``.
        removals: from :func:`single_removals`.
        doc_ids: the ``B`` document ids (fix the random draws).
    Returns:
        Columns of length ``B``: ``skipped`` (fewer than two items), and for each removal ``X``:
        ``item_X``, ``a_X``, ``js_X`` (nats), ``flip_X`` (float: 1.0/0.0, NaN when skipped); plus
        ``delta_a`` and ``delta_js``. Skipped rows hold item -1 and NaN values.
    """
    out = output.site(site)
    weights, mask = out.attention.detach(), out.mask
    purpose = (
        "single_weight:random" if site == model.pooling_site else f"single_weight:random:{site}"
    )
    items = choose_items(weights, mask, scores, removals, doc_ids, seed=seed,
                         random_draw=random_draw, purpose=purpose)  # (B, R)
    removed = torch.zeros(*items.shape, weights.shape[1], dtype=torch.bool, device=weights.device)
    removed.scatter_(2, items[:, :, None], True)  # (B, R, n)
    candidates = erase(weights[:, None, :].expand_as(removed), removed)  # (B, R, n)
    logits = bounded_logits_with(model, output, site, candidates)  # (B, R, C)
    probs = torch.softmax(logits, dim=-1)  # (B, R, C)
    base = torch.softmax(output.logits.detach(), dim=-1)  # (B, C)
    js = js_divergence(base[:, None, :].expand_as(probs), probs)  # (B, R) nats
    predicted = output.logits.detach().argmax(-1)  # (B,)
    # a change of decision below the logits' resolution is no flip (resolved_decisions)
    flips = resolved_decisions(logits, predicted)[0] != predicted[:, None]  # (B, R)
    removed_weight = weights.gather(1, items).double()  # (B, R)
    skipped = (mask.sum(dim=1) < 2).cpu().numpy()
    items_np, js_np = items.cpu().numpy(), js.cpu().numpy()
    weight_np, flips_np = removed_weight.cpu().numpy(), flips.cpu().numpy()
    columns: dict[str, np.ndarray] = {"skipped": skipped}
    for r, name in enumerate(removals):
        columns[f"item_{name}"] = np.where(skipped, -1, items_np[:, r])
        columns[f"a_{name}"] = np.where(skipped, np.nan, weight_np[:, r])
        columns[f"js_{name}"] = np.where(skipped, np.nan, js_np[:, r])
        columns[f"flip_{name}"] = np.where(skipped, np.nan, flips_np[:, r].astype(np.float64))
    columns["delta_a"] = columns["a_max"] - columns["a_random"]
    columns["delta_js"] = columns["js_max"] - columns["js_random"]
    return columns
