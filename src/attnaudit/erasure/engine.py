"""One batch through the whole audit: one forward pass, then every site, ranking and measure.

The model runs once per batch (:meth:`AttentionClassifier.run`); rankings, Test 1 and the erasure
curves all recompute from that pass's caches. Each site's curves move to the host once per ranking
(:class:`CurveArrays`), where the torch-free measures turn them into per-document columns. The result
is a set of column arrays per table, turned into DataFrames once per chunk by :mod:`.audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnaudit.config import (
    AttributionAggregate,
    ErasureLevel,
    InputErasure,
    InputSteps,
    ItemUnit,
    QueryRows,
)
from attnaudit.data.types import Batch
from attnaudit.erasure.counterfactual import counterfactual_test
from attnaudit.erasure.input_level import input_curve, step_schedule
from attnaudit.erasure.interventions import (
    ErasurePath,
    erasure_curve,
    removal_order,
    resolved_decisions,
)
from attnaudit.erasure.single_weight import RandomDraw, single_removals, single_weight_test
from attnaudit.measures import MEASURES, CurveArrays
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings import build_ranking
from attnaudit.rankings.gradient import GradientOutput


@dataclass(frozen=True)
class AuditPlan:
    """What to compute for every batch: resolved settings (no defaults left to decide).

    Attributes:
        sites: site names, in the model's declaration order.
        rankings: ranking names, in report order.
        measures: measure names (keys of :data:`attnaudit.measures.MEASURES`).
    """

    sites: tuple[str, ...]
    rankings: tuple[str, ...]
    measures: tuple[str, ...] = tuple(MEASURES)
    path: ErasurePath = "fast"
    gradient_output: GradientOutput = "probability"
    random_draw: RandomDraw = "uniform"
    seed: int = 0
    #: erasure levels whose curves the measures read (Test 1 and Test 2 stay attention-level)
    erasure: tuple[ErasureLevel, ...] = ("attention",)
    input_erasure: InputErasure = "delete"
    input_steps: InputSteps = "eraser"
    #: step schedule of the attention-level curves (Test 2 and the measures reading them)
    attention_steps: InputSteps = "every"
    #: a transformer's erased query rows (None: the model has no self-attention sites)
    query_rows: QueryRows | None = None
    #: item unit: "word" groups a transformer's subword tokens (always "token" for word models)
    items: ItemUnit = "token"
    attribution_aggregate: AttributionAggregate = "sum"
    attribution_steps: int = 50
    attribution_samples: int = 200
    permutations: int = 100
    adversarial_epsilon: float = 0.01

    @property
    def keep_curves(self) -> bool:
        """Whether any selected measure reads ``keep`` curves (computed only then)."""
        return any("keep" in MEASURES[m].needs for m in self.measures)

    @property
    def probabilities(self) -> bool:
        """Whether any selected measure reads ``p_ŷ`` along the curves (computed only then)."""
        return any("probabilities" in MEASURES[m].needs for m in self.measures)


#: how the attention-level rows of ``removal.parquet`` were erased: weights zeroed and the rest
#: renormalised at the site (their ``erasure_steps`` is the plan's ``attention_steps``; input rows
#: name their mode and step schedule)
ATTENTION_ERASURE: dict[str, str] = {"erasure": "attention", "erasure_mode": "renormalise"}


@dataclass
class BatchColumns:
    """Column arrays of the three tables for one batch (rows not yet in document order)."""

    single_weight: list[dict[str, Any]] = field(default_factory=list)
    removal: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _curve_arrays(
    logits: dict[str, torch.Tensor],
    predicted: torch.Tensor,
    base_prob: torch.Tensor,
    ranked_weights: torch.Tensor,
    lengths: torch.Tensor,
    *,
    probabilities: bool,
    steps: torch.Tensor | None = None,
) -> CurveArrays:
    """Host copies of what measures read from ``(B, n + 1, C)`` curve logits (``p_ŷ`` per step only
    when a measure needs it); ``(B, K, C)`` logits on the ``(B, K)`` schedule ``steps`` when given."""
    def pred_prob(curve: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        decision, _ = resolved_decisions(curve, predicted)
        if not probabilities:
            return _host(decision), None
        probs = torch.softmax(curve.double(), dim=-1)  # (B, n+1, C)
        chosen = probs.gather(2, predicted[:, None, None].expand(-1, curve.shape[1], 1))[..., 0]
        return _host(decision), _host(chosen)

    remove_pred, remove_prob = pred_prob(logits["remove"])
    keep_pred, keep_prob = pred_prob(logits["keep"]) if "keep" in logits else (None, None)
    return CurveArrays(
        lengths=_host(lengths),
        predicted=_host(predicted),
        base_prob=_host(base_prob),
        ranked_weights=_host(ranked_weights.double()),
        remove_pred=remove_pred,
        remove_prob=remove_prob,
        keep_pred=keep_pred,
        keep_prob=keep_prob,
        steps=None if steps is None else _host(steps),
    )


def ranking_options(plan: AuditPlan) -> dict[str, Any]:
    """Constructor options for :func:`attnaudit.rankings.build_ranking` (each ranking takes what it
    uses)."""
    return {"seed": plan.seed, "output": plan.gradient_output,
            "aggregate": plan.attribution_aggregate, "steps": plan.attribution_steps,
            "samples": plan.attribution_samples}


def rank_site(
    model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str], plan: AuditPlan
) -> dict[str, torch.Tensor]:
    """``(B, n)`` scores of every selected ranking at ``site``."""
    options = ranking_options(plan)
    return {
        name: build_ranking(name, **options).rank(model, output, site, doc_ids)
        for name in plan.rankings
    }


def audit_batch(
    model: AttentionClassifier, batch: Batch, plan: AuditPlan, label_names: Sequence[str]
) -> BatchColumns:
    """Both tests and every measure at every planned site of one batch.

    Returns:
        Columns per table; see docs/architecture.md for the schemas.
    """
    model.configure_erasure(query_rows=plan.query_rows, items=plan.items)
    with torch.no_grad():
        output = model.run(batch, plan.sites)
    logits = output.logits.detach()
    predicted = logits.argmax(-1)  # (B,)
    base_prob = torch.softmax(logits.double(), -1).gather(1, predicted[:, None])[:, 0]  # (B,)
    prediction_names = [label_names[i] for i in predicted.tolist()]
    gold_names = [label_names[i] for i in batch.labels.tolist()]
    removals = single_removals(plan.rankings)
    columns = BatchColumns()
    for site in plan.sites:
        out = output.site(site)
        weights, mask = out.attention.detach(), out.mask
        lengths = mask.sum(dim=1)  # (B,)
        n_items = _host(lengths)
        common = {"site": site, "doc_id": list(batch.doc_ids), "n_items": n_items,
                  "anchor": _host(out.anchor), "label": gold_names,
                  "prediction": prediction_names}
        scores = rank_site(model, output, site, batch.doc_ids, plan)
        single = single_weight_test(model, output, site, scores, removals, batch.doc_ids,
                                    seed=plan.seed, random_draw=plan.random_draw)
        single.update(counterfactual_test(model, output, site, batch.doc_ids,
                                          permutations=plan.permutations,
                                          epsilon=plan.adversarial_epsilon, seed=plan.seed))
        columns.single_weight.append({**common, **single})
        ranks = {}
        input_rows: list[dict[str, Any]] = []
        # The fast path's per-item values are the same for every ranking: computed once per site.
        readout = model.linear_readout(output, site) if plan.path == "fast" else None
        schedule = attention_schedule(lengths, plan.attention_steps)  # (B, K) or None: every step
        for ranking in plan.rankings:
            order = removal_order(scores[ranking], mask)  # (B, n)
            ranks[ranking] = torch.argsort(order, dim=1)  # (B, n): 0 = removed first
            with torch.no_grad():
                curves = {kind: erasure_curve(model, output, site, order, kind, path=plan.path,
                                              readout=readout, steps=schedule)
                          for kind in (("remove", "keep") if plan.keep_curves else ("remove",))}
            arrays = _curve_arrays(curves, predicted, base_prob, weights.gather(1, order), lengths,
                                   probabilities=plan.probabilities, steps=schedule)
            measured = _measure_columns(arrays, plan)
            columns.removal.append({**common, "ranking": ranking, **ATTENTION_ERASURE,
                                    "erasure_steps": plan.attention_steps,
                                    "single_item": n_items < 2, **measured,
                                    "unresolved_steps": _unresolved(curves, predicted)})
            if "input" in plan.erasure:
                input_rows.append({**common, "ranking": ranking, "erasure": "input",
                                   "erasure_mode": plan.input_erasure,
                                   "erasure_steps": plan.input_steps, "single_item": n_items < 2,
                                   **_input_measures(model, batch, output, site, order, plan,
                                                     predicted, base_prob,
                                                     weights.gather(1, order), lengths)})
        # Input-level rows after the attention-level ones of the site (same rankings, same order).
        columns.removal += input_rows
        columns.items.append(_item_columns(site, batch.doc_ids, weights, mask, scores, ranks))
    return columns


def attention_schedule(lengths: torch.Tensor, steps: InputSteps) -> torch.Tensor | None:
    """The attention-level curves' ``(B, K)`` long schedule for documents of ``lengths`` ``(B,)``
    items, on their device; None for ``"every"``, which the curves compute without a schedule (their
    ``(B, n + 1, C)`` form, column ``k`` = step ``k``, as before schedules existed)."""
    if steps == "every":
        return None
    return torch.as_tensor(step_schedule(_host(lengths), steps), dtype=torch.long,
                           device=lengths.device)


def _input_measures(
    model: AttentionClassifier,
    batch: Batch,
    output: ModelOutput,
    site: str,
    order: torch.Tensor,
    plan: AuditPlan,
    predicted: torch.Tensor,
    base_prob: torch.Tensor,
    ranked_weights: torch.Tensor,
    lengths: torch.Tensor,
) -> dict[str, Any]:
    """Every measure's columns from the input-level curves of one site and ranking (erasure mode
    and step schedule from the plan; ``keep`` curves and probabilities only when a measure needs
    them)."""
    curves: dict[str, torch.Tensor] = {}
    schedule: torch.Tensor | None = None
    for kind in ("remove", "keep") if plan.keep_curves else ("remove",):
        curves[kind], schedule = input_curve(model, batch, output, site, order, kind,
                                             plan.input_erasure, plan.input_steps)  # (B, K, C)
    arrays = _curve_arrays(curves, predicted, base_prob, ranked_weights, lengths,
                           probabilities=plan.probabilities, steps=schedule)
    return {**_measure_columns(arrays, plan), "unresolved_steps": _unresolved(curves, predicted)}


def _unresolved(curves: dict[str, torch.Tensor], predicted: torch.Tensor) -> np.ndarray:
    """``(B,)`` steps of the curves (both kinds together) whose change of decision is below the
    logits' resolution: not counted as flips (:func:`resolved_decisions`), flagged here."""
    return _host(torch.stack([resolved_decisions(c, predicted)[1]
                              for c in curves.values()]).sum(dim=0))


def _measure_columns(arrays: CurveArrays, plan: AuditPlan) -> dict[str, Any]:
    """Every planned measure's per-document columns from one site's and ranking's curves."""
    measured: dict[str, Any] = {}
    for name in plan.measures:
        measured.update(MEASURES[name].columns(arrays))
    return measured


def _item_columns(
    site: str,
    doc_ids: list[str],
    weights: torch.Tensor,
    mask: torch.Tensor,
    scores: dict[str, torch.Tensor],
    ranks: dict[str, torch.Tensor],
) -> dict[str, Any]:
    """One row per real item: weight, each ranking's score and rank (the audit adds the texts)."""
    rows, positions = mask.nonzero(as_tuple=True)  # (N,), (N,): row-major, items in order
    rows_np = _host(rows)
    out: dict[str, Any] = {
        "row": rows_np,  # which document of the batch (dropped once the rows are ordered)
        "site": site,
        "doc_id": np.asarray(doc_ids, dtype=object)[rows_np],
        "item": _host(positions),
        "weight": _host(weights[rows, positions].double()),
    }
    for name, score in scores.items():
        out[f"score_{name}"] = _host(score[rows, positions].double())
        out[f"rank_{name}"] = _host(ranks[name][rows, positions])
    return out
