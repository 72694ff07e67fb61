"""An exhaustive reference for the adversarial attention search, on small documents.

:func:`attnaudit.erasure.counterfactual.adversarial_attention` is a heuristic (a vertex pass and a
local search): its result is a lower bound on ``max JSD(a, a')`` subject to
``TVD(p(x; a), p(x; a')) <= ε``. This module measures how far below the maximum it stays, on
documents small enough (``n <= 5`` items) to search the simplex by brute force, one document at a
time:

* every **vertex** ``e_i`` (one-hot attention);
* every point of the **grid** ``{k / N : k in N^n, sum k = N}`` of the simplex (resolution ``N``,
  ``C(N + n - 1, n - 1)`` points, the vertices among them);
* for every infeasible grid point ``g``, the **boundary** along the segment ``a + s (g - a)``,
  ``s`` in ``[0, 1]``: bisection on ``s`` keeping the feasible end (``s = 0`` is ``a`` itself,
  TVD 0). ``JSD(a, .)`` is convex and 0 at ``a``, so it grows along every segment from ``a``: the
  last feasible ``s`` found is the segment's best point before its first crossing of the
  constraint. An optimum on the constraint's boundary (the usual case: JSD grows until the output
  moves by ε) is reached along its own direction, which the grid's directions approach within
  ``1/N``, so the boundary points see what the grid alone cannot.

Every point the reference keeps is feasible, so its value is a lower bound on the maximum as well:
a search value above it is possible (the search found something the grid misses), one below it is
the search's measured shortfall. What the grid can miss is bounded by its **resolution**: the
largest JSD change between the reference's best grid point and its grid neighbours (one step of
``1/N`` mass from one item to another), reported beside the value.

Slow and obviously correct: a Python loop over documents, every candidate through the model's
``logits_with`` (in chunks), float64 divergences. For tests and ``benchmarks/adversarial_gap.py``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from attnaudit.erasure.counterfactual import output_tvd
from attnaudit.erasure.metrics import js_divergence
from attnaudit.models.base import AttentionClassifier, ModelOutput

#: candidates per ``logits_with`` call (memory: chunk x n weights, chunk sequences for HAN's word
#: site and the transformers)
REFERENCE_CHUNK = 2048
#: bisection steps along each segment: the boundary's position to 2^-40 of the segment, far below
#: any JSD difference the comparison reads (JSD's slope along a segment is at most ln 2 per unit)
REFERENCE_BISECTIONS = 40


@dataclass(frozen=True)
class ExhaustiveResult:
    """One document's exhaustive reference (nats; 0 where nothing but ``a`` is feasible).

    Attributes:
        vertex: the best feasible vertex's JSD.
        grid: the best feasible grid point's JSD (vertices included).
        boundary: the best boundary point's JSD along the segments to infeasible grid points.
        best: ``max(vertex, grid, boundary)``: the reference's value.
        resolution: the largest ``|JSD(g*) - JSD(g)|`` over the grid neighbours ``g`` of the best
            feasible grid point ``g*``: how much the grid's step changes JSD where it matters.
        weights: ``(n,)`` the attention reaching ``best``.
    """

    vertex: float
    grid: float
    boundary: float
    best: float
    resolution: float
    weights: torch.Tensor


def simplex_grid(n: int, resolution: int) -> torch.Tensor:
    """Every point of the simplex in ``n`` dimensions whose coordinates are multiples of
    ``1 / resolution``: ``(C(resolution + n - 1, n - 1), n)`` float64 (stars and bars)."""
    points = []
    for bars in itertools.combinations(range(resolution + n - 1), n - 1):
        edges = (-1, *bars, resolution + n - 1)
        points.append([edges[i + 1] - edges[i] - 1 for i in range(n)])
    return torch.tensor(points, dtype=torch.float64) / resolution


def _evaluate(model: AttentionClassifier, one: ModelOutput, site: str, points: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TVD, JSD)`` of the candidate attentions ``points (k, L)`` (over the document's ``L`` real
    items) for the single-document output ``one``: each ``(k,)`` float64."""
    out = one.site(site)
    attention = out.attention[0].detach().double()  # (n,)
    n_items = points.shape[1]
    tvds = [torch.zeros(0, dtype=torch.float64)]
    jsds = [torch.zeros(0, dtype=torch.float64)]
    for start in range(0, len(points), REFERENCE_CHUNK):
        chunk = points[start : start + REFERENCE_CHUNK]
        padded = torch.zeros(len(chunk), attention.shape[0], dtype=torch.float64,
                             device=attention.device)
        padded[:, :n_items] = chunk
        logits = model.logits_with(one, site, padded[None])  # (1, k, C)
        tvds.append(output_tvd(one.logits.detach(), logits)[0])
        jsds.append(js_divergence(attention.expand_as(padded), padded))
    return torch.cat(tvds), torch.cat(jsds)


@torch.no_grad()
def exhaustive_adversarial(model: AttentionClassifier, output: ModelOutput, site: str, *,
                           epsilon: float, resolution: int) -> list[ExhaustiveResult]:
    """The reference (module docstring) for every document of ``output``, one at a time.

    Args:
        epsilon: the output tolerance.
        resolution: the grid's ``N`` (``C(N + n - 1, n - 1)`` points per document of ``n`` items:
            10,626 at ``n = 5``, ``N = 20``).
    """
    results = []
    for b in range(len(output.logits)):
        one = output.index([b])
        mask = one.site(site).mask[0]
        n_items = int(mask.sum())
        attention = one.site(site).attention[0, :n_items].detach().double()
        zero = torch.zeros(one.site(site).attention.shape[1], dtype=torch.float64)

        vertices = torch.eye(n_items, dtype=torch.float64)
        vertex, vertex_point = _best_of(attention, vertices,
                                        *_evaluate(model, one, site, vertices), epsilon)
        grid_points = simplex_grid(n_items, resolution)
        grid_tvd, grid_jsd = _evaluate(model, one, site, grid_points)
        grid, grid_point = _best_of(attention, grid_points, grid_tvd, grid_jsd, epsilon)
        far = grid_points[grid_tvd > epsilon]  # (G', L): segments from a that cross the boundary
        low = torch.zeros(len(far), dtype=torch.float64)
        high = torch.ones_like(low)
        for _ in range(REFERENCE_BISECTIONS):
            middle = (low + high) / 2
            tvd, _ = _evaluate(model, one, site,
                               attention + middle[:, None] * (far - attention))
            inside = tvd <= epsilon
            low = torch.where(inside, middle, low)
            high = torch.where(inside, high, middle)
        ends = attention + low[:, None] * (far - attention)
        boundary, boundary_point = _best_of(attention, ends, *_evaluate(model, one, site, ends),
                                            epsilon)
        best, point = max((vertex, vertex_point), (grid, grid_point), (boundary, boundary_point),
                          key=lambda pair: pair[0])
        weights = zero.clone()
        weights[:n_items] = point
        results.append(ExhaustiveResult(vertex=vertex, grid=grid, boundary=boundary, best=best,
                                        resolution=_grid_resolution(attention, grid_point,
                                                                    resolution),
                                        weights=weights))
    return results


def _best_of(attention: torch.Tensor, points: torch.Tensor, tvd: torch.Tensor, jsd: torch.Tensor,
             epsilon: float) -> tuple[float, torch.Tensor]:
    """The largest JSD among the feasible ``points (k, L)`` and its point; ``(0, a)`` when none is
    feasible (``a`` itself always is)."""
    score = torch.where(tvd <= epsilon, jsd, torch.full_like(jsd, -math.inf))
    if not len(score) or not bool(torch.isfinite(score).any()):
        return 0.0, attention
    i = int(score.argmax())
    return float(score[i]), points[i]


def _grid_resolution(attention: torch.Tensor, point: torch.Tensor, resolution: int) -> float:
    """The largest JSD change from ``point`` to a grid neighbour (``1 / resolution`` of mass moved
    from one item to another, staying on the simplex)."""
    n_items = len(point)
    step = 1.0 / resolution
    neighbours = []
    for i, j in itertools.permutations(range(n_items), 2):
        if point[i] >= step - 1e-12:
            moved = point.clone()
            moved[i] -= step
            moved[j] += step
            neighbours.append(moved.clamp_min(0.0))
    if not neighbours:
        return 0.0
    stacked = torch.stack(neighbours)
    jsd = js_divergence(attention.expand_as(stacked), stacked)
    centre = js_divergence(attention, point)
    return float((jsd - centre).abs().max())
