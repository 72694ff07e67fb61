"""Test 1 (spec section 2): the importance of a single attention weight.

For each document with at least two items, zero one weight, renormalise the rest, and compare the new
output distribution with the unmodified one. The removed item is chosen six ways: the highest weight
(``max``, the paper's ``i*``), the second highest, the lowest, a random other item, and the top item of
the ``gradient`` and ``attention_x_gradient`` rankings.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from attnaudit.erasure.interventions import single_removal_logits
from attnaudit.erasure.metrics import JSBase, js_divergence
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.utils.seeding import doc_rng

#: which single item each removal zeroes, in report order
SINGLE_REMOVALS = ("max", "second", "min", "random", "gradient", "attention_x_gradient")

RandomDraw = Literal["uniform", "original"]


def draw_random_item(
    seed: int, doc_id: str, n_items: int, top_item: int, *, draw: RandomDraw = "uniform"
) -> int:
    """The random comparison item ``r`` of one document.

    ``"uniform"`` draws uniformly among the items other than ``top_item`` (the intended test).
    ``"original"`` reproduces the original code's draw: a raw position in ``1..n-1``, so ``r`` can
    equal ``i*`` and position 0 is never drawn. Both are fixed by ``(seed, doc_id)``.
    """
    rng = doc_rng(seed, doc_id, "single_weight:random")
    if draw == "original":
        return int(rng.integers(1, n_items))
    if draw != "uniform":
        raise ValueError(f"draw must be 'uniform' or 'original', got {draw!r}")
    other = int(rng.integers(0, n_items - 1))
    return other if other < top_item else other + 1


def choose_items(
    output: ModelOutput,
    scores: dict[str, torch.Tensor],
    doc_ids: list[str],
    *,
    seed: int,
    random_draw: RandomDraw = "uniform",
) -> dict[str, torch.Tensor]:
    """Item index removed by each of :data:`SINGLE_REMOVALS`, per document.

    Args:
        output: unmodified pass (attention ``(B, n)``, mask ``(B, n)``).
        scores: ``(B, n)`` ranking scores for ``"gradient"`` and ``"attention_x_gradient"``.
    Returns:
        ``{removal: (B,) long}``; rows with fewer than two items hold 0 (they are skipped).
    """
    mask = output.mask
    weights = output.attention.detach()
    by_weight = weights.masked_fill(~mask, float("-inf")).argsort(
        dim=1, descending=True, stable=True
    )
    lowest = weights.masked_fill(~mask, float("inf")).argmin(dim=1)
    lengths = mask.sum(dim=1)
    top = by_weight[:, 0]
    randoms = []
    for row, doc_id in enumerate(doc_ids):
        n = int(lengths[row])
        positions = mask[row].nonzero().squeeze(1)
        if n < 2:
            randoms.append(0)
            continue
        top_rank = int((positions == top[row]).nonzero()[0, 0])
        pick = draw_random_item(seed, doc_id, n, top_rank, draw=random_draw)
        randoms.append(int(positions[pick]))
    return {
        "max": top,
        "second": by_weight[:, 1] if by_weight.shape[1] > 1 else top,
        "min": lowest,
        "random": torch.tensor(randoms, dtype=torch.long, device=weights.device),
        "gradient": scores["gradient"].argmax(dim=1),
        "attention_x_gradient": scores["attention_x_gradient"].argmax(dim=1),
    }


@torch.no_grad()
def single_weight_test(
    model: AttentionClassifier,
    output: ModelOutput,
    scores: dict[str, torch.Tensor],
    doc_ids: list[str],
    *,
    seed: int = 0,
    random_draw: RandomDraw = "uniform",
    js_base: JSBase = "e",
) -> dict[str, np.ndarray]:
    """Run Test 1 on one batch.

    Args:
        model: classifier in eval mode.
        output: its unmodified pass over the batch.
        scores: ``(B, n)`` scores of the ``gradient`` and ``attention_x_gradient`` rankings.
        doc_ids: the ``B`` document ids (fix the random draws).
    Returns:
        Columns of length ``B``: ``skipped`` (fewer than two items), and for each removal ``X``:
        ``item_X``, ``a_X``, ``js_X``, ``flip_X``; plus ``delta_a`` and ``delta_js``. Skipped rows
        hold item -1, NaN values and False flips.
    """
    items = choose_items(output, scores, doc_ids, seed=seed, random_draw=random_draw)
    weights = output.attention.detach()
    states = output.states.detach()
    base = torch.softmax(output.logits.detach(), dim=-1)  # (B, C)
    predicted = base.argmax(dim=-1)
    skipped = (output.mask.sum(dim=1) < 2).cpu().numpy()
    columns: dict[str, np.ndarray] = {"skipped": skipped}
    for removal, item in items.items():
        probs = torch.softmax(single_removal_logits(model, states, weights, item), dim=-1)
        columns[f"item_{removal}"] = np.where(skipped, -1, item.cpu().numpy())
        columns[f"a_{removal}"] = np.where(
            skipped, np.nan, weights.gather(1, item[:, None]).squeeze(1).double().cpu().numpy()
        )
        columns[f"js_{removal}"] = np.where(
            skipped, np.nan, js_divergence(base, probs, base=js_base).cpu().numpy()
        )
        columns[f"flip_{removal}"] = ~skipped & (probs.argmax(-1) != predicted).cpu().numpy()
    columns["delta_a"] = columns["a_max"] - columns["a_random"]
    columns["delta_js"] = columns["js_max"] - columns["js_random"]
    return columns
