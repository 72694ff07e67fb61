"""Counterfactual attention (Jain & Wallace, NAACL 2019, "Attention is not Explanation").

Two questions per document and site, both answered through :meth:`AttentionClassifier.logits_with`:

* **Permutation**: does the output care *which* item gets which weight? ``m`` random permutations
  ``π`` of the real items' weights (padding stays 0), each document's drawn from
  ``(seed, doc_id, purpose)``; per document the median and the maximum over ``π`` of the output
  total variation distance ``TVD(p(x; a), p(x; π(a)))`` (half the L1 distance). All permutations of
  a batch go through ``logits_with`` as ``(B, m, n)`` candidates (in chunks of
  :data:`PERMUTATION_CHUNK`).
* **Adversarial attention**: how different can attention be while the output stays (almost) put?
  Maximise ``JSD(a, a')`` over distributions ``a'`` on the real items subject to
  ``TVD(p(x; a), p(x; a')) <= ε`` (their ε = 0.01), by gradient ascent through ``logits_with``:
  ``a'`` is the masked softmax of free logits started near ``log a``, Adam on ``-JSD`` plus a hinge
  penalty on the excess TVD, several restarts at different scales; the best feasible ``a'`` seen at
  any step is kept, then pushed further along its ray from ``a`` while it stays feasible.

Every document is optimised on its own objective (the batch loss is a sum of per-document losses and
Adam is elementwise), and its random draws are counter-based (Philox, keyed on ``(seed, doc_id,
purpose)``: :mod:`attnaudit.utils.seeding`), computed for the whole batch at once yet a function of
the document alone, so a document gives the same result alone as inside any batch. One-item
documents get NaN (null in the table), like Test 1.
Divergences: TVD in [0, 1]; JSD in nats (natural log, at most ln 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from attnaudit.erasure.memory import bounded_logits_with
from attnaudit.erasure.metrics import js_divergence
from attnaudit.models.base import AttentionClassifier, ModelOutput, masked_softmax
from attnaudit.utils.seeding import doc_keys, random_permutations, standard_normals

#: permutations per ``logits_with`` call (bounds memory: B x chunk x n candidate weights)
PERMUTATION_CHUNK = 32
#: bisection steps of the final 1-D search along each document's ray from a through its best a'
RAY_BISECTIONS = 8

#: the columns each part adds to ``single_weight.parquet`` (NaN for one-item documents)
PERMUTATION_COLUMNS: tuple[str, ...] = ("perm_median_tvd", "perm_max_tvd")
ADVERSARIAL_COLUMNS: tuple[str, ...] = ("adv_jsd", "adv_tvd", "adv_max_weight")


@dataclass(frozen=True)
class AdversarialSearch:
    """Settings of the adversarial attention search (defaults: tuned for CPU cost, see below).

    Attributes:
        epsilon: the output tolerance, a bound on ``TVD(p(x; a), p(x; a'))`` (J&W: 0.01).
        steps: Adam steps per restart.
        restarts: independent starts per document, optimised side by side in one batch.
        learning_rate: Adam's step size on the logits of ``a'`` (first restart).
        penalty: weight of the hinge ``max(0, TVD - ε) / ε``: exceeding ε by 7% of it already
            costs more than any JSD gain (JSD is at most ln 2).
        init_scale: standard deviation of the noise added to ``log a`` at the first start
            (``a' = a`` is a stationary point of ``JSD(a, a')``, zero gradient, so no start is
            ``a``). Restart ``r`` scales its start's noise and its steps by ``2^-r``: near, cautious
            searches stay feasible where the output is sensitive.
        final_lr_fraction: the learning rate decays (cosine) to this fraction of itself by the
            last step, so the search settles on the constraint's boundary.

    Tuned on IMDB (trained flan-rnn and han-rnn, 128 test reviews each): these defaults, with the
    final search along each ray, reach 97% (han-rnn) to 99% (flan-rnn) of the median JSD that 500
    steps with 8 restarts reach, at a tenth of the cost or less. The achieved JSD is a lower bound
    on the true maximum (a local search).
    """

    epsilon: float = 0.01
    steps: int = 40
    restarts: int = 4
    learning_rate: float = 2.0
    penalty: float = 10.0
    init_scale: float = 4.0
    final_lr_fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.epsilon < 0 or self.steps < 1 or self.restarts < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid adversarial search settings: {self}")


@dataclass(frozen=True)
class AdversarialResult:
    """The best feasible adversarial attention per document.

    Attributes:
        weights: ``(B, n)`` ``a'`` (``a`` itself where no other feasible ``a'`` was found; zero on
            padding).
        jsd: ``(B,)`` ``JSD(a, a')`` in nats (0 where nothing beyond ``a`` was feasible).
        tvd: ``(B,)`` ``TVD(p(x; a), p(x; a'))``, at most ε.
    """

    weights: torch.Tensor
    jsd: torch.Tensor
    tvd: torch.Tensor


def output_tvd(base_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Total variation distance between softmax outputs, in float64.

    Args:
        base_logits: ``(B, C)`` the unmodified logits.
        logits: ``(B, k, C)`` logits under ``k`` candidate attentions.
    Returns:
        ``(B, k)`` ``0.5 * sum_c |p_c - p'_c|``, in [0, 1].
    """
    base = torch.softmax(base_logits.double(), dim=-1)[:, None, :]  # (B, 1, C)
    return 0.5 * (torch.softmax(logits.double(), dim=-1) - base).abs().sum(-1)  # (B, k)


def _purpose(part: str, site: str) -> str:
    return f"counterfactual:{part}:{site}"


def _permutation_indices(keys: torch.Tensor, lengths: torch.Tensor, n_max: int,
                         permutations: range) -> torch.Tensor:
    """Gather indices of permutations ``permutations`` (their numbers ``j``): ``(B, k, n_max)``.

    Permutation ``j`` of a document is the argsort of its items' Philox sort keys at counters
    ``(i // 2, j, 0, 0)`` (:func:`~attnaudit.utils.seeding.random_permutations`): a pure function of
    ``(key, j, length)``, so any range of ``j`` gives the same permutations as the full set, and
    padding maps to itself.
    """
    streams = torch.arange(permutations.start, permutations.stop, dtype=torch.int64,
                           device=keys.device)
    return random_permutations(keys, lengths, n_max, streams)


def draw_permutations(seed: int, doc_id: str, site: str, n_items: int, permutations: int
                      ) -> np.ndarray:
    """The ``(permutations, n_items)`` permutations of one document's items at ``site``, fixed by
    ``(seed, doc_id, site)`` alone (row ``j`` maps position ``i`` to the item whose weight it takes):
    the rows :func:`permuted_weights` uses for this document inside any batch."""
    keys = doc_keys(seed, [doc_id], _purpose("permutation", site))
    index = _permutation_indices(keys, torch.tensor([n_items]), n_items, range(permutations))
    return index[0].numpy()


def permuted_weights(
    weights: torch.Tensor, mask: torch.Tensor, doc_ids: Sequence[str], site: str, *,
    permutations: int, seed: int, first: int = 0,
) -> torch.Tensor:
    """Each document's weights under its permutations ``first .. first + permutations - 1``:
    ``(B, permutations, n)``, padding stays 0.

    All documents' permutations are drawn at once on ``weights``' device (counter-based: no
    per-document generator), each from ``(seed, doc_id, site)`` and the permutation's number.

    Args:
        weights: ``(B, n)`` attention; mask: ``(B, n)`` real items (a prefix of each row).
    """
    keys = doc_keys(seed, doc_ids, _purpose("permutation", site), device=weights.device)
    index = _permutation_indices(keys, mask.sum(dim=1), weights.shape[1],
                                 range(first, first + permutations))  # (B, k, n)
    return weights[:, None, :].expand(-1, permutations, -1).gather(2, index)  # (B, k, n)


@torch.no_grad()
def permutation_tvds(
    model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: Sequence[str], *,
    permutations: int, seed: int = 0,
) -> torch.Tensor:
    """Output TVD under each document's random permutations of its weights: ``(B, m)`` float64.

    Drawn and evaluated :data:`PERMUTATION_CHUNK` permutations at a time, which bounds the memory
    of both the draw and the candidates to ``B x chunk x n``.
    """
    out = output.site(site)
    attention = out.attention.detach()
    logits = []
    for start in range(0, permutations, PERMUTATION_CHUNK):
        chunk = min(PERMUTATION_CHUNK, permutations - start)
        candidates = permuted_weights(attention, out.mask, doc_ids, site, permutations=chunk,
                                      seed=seed, first=start)  # (B, chunk, n)
        logits.append(bounded_logits_with(model, output, site, candidates))  # (B, chunk, C)
    return output_tvd(output.logits.detach(), torch.cat(logits, dim=1))  # (B, m)


def permutation_test(
    model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: Sequence[str], *,
    permutations: int, seed: int = 0,
) -> dict[str, np.ndarray]:
    """J&W's permutation test at one site: columns ``perm_median_tvd`` and ``perm_max_tvd``
    (length ``B``, NaN for one-item documents, whose only permutation is the identity)."""
    tvd = permutation_tvds(model, output, site, doc_ids, permutations=permutations, seed=seed)
    single = (output.site(site).mask.sum(dim=1) < 2).cpu().numpy()
    tvd_np = tvd.cpu().numpy()
    return {
        "perm_median_tvd": np.where(single, np.nan, np.median(tvd_np, axis=1)),
        "perm_max_tvd": np.where(single, np.nan, tvd_np.max(axis=1)),
    }


def adversarial_attention(
    model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: Sequence[str], *,
    search: AdversarialSearch, seed: int = 0,
) -> AdversarialResult:
    """The attention ``a'`` farthest from ``a`` in JSD whose output stays within TVD ε of ``p(x; a)``.

    Each document's ``R`` restarts start at ``log a`` plus its own seeded noise (and step) at
    scales ``1, 1/2, 1/4, ...`` and run side by side as ``(B, R, n)`` candidates of one
    ``logits_with`` call per step. The loss is the sum over
    documents and restarts of ``-JSD(a, a') + penalty * max(0, TVD - ε) / ε``, so no gradient
    mixes documents. Feasibility is checked on every step's ``a'`` before its update.
    """
    out = output.site(site)
    attention = out.attention.detach().double()  # (B, n)
    mask = out.mask
    base_logits = output.logits.detach()
    restarts, n_max = search.restarts, attention.shape[1]
    # Counter-based start noise, N(0, init_scale^2) per (document, restart, item) at counters
    # (item // 2, restart, 0, 0): the whole batch at once, each document's from its own key.
    keys = doc_keys(seed, doc_ids, _purpose("adversarial", site), device=attention.device)
    streams = torch.arange(restarts, dtype=torch.int64, device=attention.device)
    noise = search.init_scale * standard_normals(keys, n_max, streams)  # (B, R, n) float64
    # log a: zero weights (underflow in float32) start at a tiny weight instead of -inf.
    start = attention.clamp_min(1e-30).log().masked_fill(~mask, 0.0)  # (B, n)
    # Restart r moves in logit space at scale 2^-r, both its start and its steps: far, bold searches
    # find large JSD where the output tolerates much; near, cautious ones stay feasible where it is
    # sensitive (a bold step there saturates the softmax, whose vanishing gradient then traps it).
    scale = torch.pow(0.5, torch.arange(restarts, dtype=start.dtype, device=start.device))[:, None]
    free = noise.masked_fill(~mask[:, None, :], 0.0).to(start).requires_grad_(True)  # (B, R, n)
    candidate_mask = mask[:, None, :].expand(-1, restarts, -1)  # (B, R, n)
    target = attention[:, None, :].expand(-1, restarts, -1)  # (B, R, n)
    best_jsd = torch.zeros(len(doc_ids), dtype=torch.float64, device=attention.device)
    best_tvd = torch.zeros_like(best_jsd)
    best_weights = attention.clone()
    optimizer = torch.optim.Adam([free], lr=search.learning_rate)
    # Large steps leave the start quickly; small ones at the end settle on the constraint's boundary.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=search.steps, eta_min=search.learning_rate * search.final_lr_fraction)
    with torch.enable_grad():
        for step in range(search.steps + 1):  # the last pass only evaluates the final update
            candidates = masked_softmax(start[:, None, :] + scale * free, candidate_mask)  # (B, R, n)
            logits = model.logits_with(output, site, candidates)  # (B, R, C)
            tvd = output_tvd(base_logits, logits)  # (B, R)
            jsd = js_divergence(target, candidates)  # (B, R) nats
            with torch.no_grad():
                _keep_best(candidates, jsd, tvd, search.epsilon, best_weights, best_jsd, best_tvd)
            if step == search.steps:
                break
            excess = (tvd - search.epsilon).clamp_min(0.0) / max(search.epsilon, 1e-12)
            loss = (search.penalty * excess - jsd).sum()
            optimizer.zero_grad(set_to_none=True)
            (grad,) = torch.autograd.grad(loss, free)  # only a' moves: the model's grads untouched
            free.grad = grad
            optimizer.step()
            schedule.step()
    best = AdversarialResult(weights=best_weights, jsd=best_jsd, tvd=best_tvd)
    _push_along_rays(model, output, site, best, search)
    return best


@torch.no_grad()
def _push_along_rays(model: AttentionClassifier, output: ModelOutput, site: str,
                     best: AdversarialResult, search: AdversarialSearch) -> None:
    """Move each document's best ``a'`` further out along its ray from ``a`` while it stays
    feasible (in place): ``a'(t) = softmax(log a + t (log a' - log a))``, ``t > 1``.

    The gradient search ends wherever its decayed steps leave it, often inside the feasible set; the
    ray is a cheap 1-D search: a geometric grid of ``t`` up to 16 in one ``logits_with`` call, then
    :data:`RAY_BISECTIONS` bisections between the last feasible grid point and the first infeasible
    one. Only feasible candidates with a larger JSD replace the best.
    """
    out = output.site(site)
    attention, mask = out.attention.detach().double(), out.mask  # (B, n)
    log_a = attention.clamp_min(1e-300).log()
    direction = (best.weights.clamp_min(1e-300).log() - log_a).masked_fill(~mask, 0.0)  # (B, n)
    base_logits = output.logits.detach()

    def push(t: torch.Tensor) -> torch.Tensor:
        """Evaluate ``t (B, k)``, keep the best feasible, return the ``(B, k)`` TVDs."""
        candidates = masked_softmax(log_a[:, None, :] + t[..., None] * direction[:, None, :],
                                    mask[:, None, :].expand(-1, t.shape[1], -1))  # (B, k, n)
        tvd = output_tvd(base_logits, bounded_logits_with(model, output, site, candidates))
        jsd = js_divergence(attention[:, None, :].expand_as(candidates), candidates)  # (B, k)
        _keep_best(candidates, jsd, tvd, search.epsilon, best.weights, best.jsd, best.tvd)
        return tvd

    grid = torch.pow(2.0, torch.arange(1, 17, dtype=torch.float64, device=attention.device) / 4)
    tvd = push(grid.expand(len(attention), -1))  # (B, 16)
    infeasible = tvd > search.epsilon  # (B, 16)
    bracketed = infeasible.any(dim=1)  # (B,)
    first_bad = infeasible.long().argmax(dim=1)  # (B,): the first infeasible t (0 when none)
    below = torch.where(first_bad > 0, grid[(first_bad - 1).clamp_min(0)], torch.ones_like(grid[0]))
    low = torch.where(bracketed, below, grid[-1])  # (B,) feasible (t = 1 is the best itself)
    high = torch.where(bracketed, grid[first_bad], grid[-1])  # (B,) infeasible where bracketed
    for _ in range(RAY_BISECTIONS):
        middle = (low + high) / 2  # (B,): equal ends (nothing bracketed) re-evaluate a known point
        feasible = push(middle[:, None])[:, 0] <= search.epsilon
        low = torch.where(feasible, middle, low)
        high = torch.where(feasible, high, middle)


def _keep_best(
    candidates: torch.Tensor, jsd: torch.Tensor, tvd: torch.Tensor, epsilon: float,
    best_weights: torch.Tensor, best_jsd: torch.Tensor, best_tvd: torch.Tensor,
) -> None:
    """Update the per-document best (in place) with this step's feasible candidates ``(B, R, n)``."""
    score = torch.where(tvd <= epsilon, jsd, torch.full_like(jsd, -math.inf))  # (B, R)
    step_best, which = score.max(dim=1)  # (B,): the first restart wins ties
    better = step_best > best_jsd
    rows = torch.arange(len(which), device=which.device)
    best_weights[better] = candidates.detach().double()[rows, which][better]
    best_jsd[better] = step_best[better]
    best_tvd[better] = tvd.detach()[rows, which][better]


def adversarial_test(
    model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: Sequence[str], *,
    search: AdversarialSearch, seed: int = 0,
) -> dict[str, np.ndarray]:
    """J&W's adversarial attention at one site: columns ``adv_jsd`` (nats), ``adv_tvd`` and
    ``adv_max_weight`` (the largest weight of ``a'``); length ``B``, NaN for one-item documents."""
    result = adversarial_attention(model, output, site, doc_ids, search=search, seed=seed)
    single = (output.site(site).mask.sum(dim=1) < 2).cpu().numpy()
    values = {"adv_jsd": result.jsd, "adv_tvd": result.tvd,
              "adv_max_weight": result.weights.max(dim=1).values}
    return {name: np.where(single, np.nan, v.detach().cpu().numpy()) for name, v in values.items()}


def counterfactual_test(
    model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: Sequence[str], *,
    permutations: int, epsilon: float, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Both parts at one site on one batch (a part whose setting is 0 is skipped: no columns).

    Args:
        permutations: random permutations per document (the audit's ``permutations``).
        epsilon: the adversarial output tolerance (the audit's ``adversarial_epsilon``).
    Returns:
        Columns of length ``B``: :data:`PERMUTATION_COLUMNS` and :data:`ADVERSARIAL_COLUMNS`.
    """
    columns: dict[str, np.ndarray] = {}
    if permutations > 0:
        columns.update(permutation_test(model, output, site, doc_ids, permutations=permutations,
                                        seed=seed))
    if epsilon > 0:
        columns.update(adversarial_test(model, output, site, doc_ids,
                                        search=AdversarialSearch(epsilon=epsilon), seed=seed))
    return columns
