"""The verdict measured on simulated audits: its false-positive rate under the null and its power.

Torch-free. A simulated document is a two-class additive classifier's view of ``n`` items: item
``i`` adds ``w_i`` to the logit of class 1, a shared bias ``b`` is always there (what a pooling
site's head leaves when every item is erased), so ``z(S) = b + sum_{i in S} w_i`` for the kept
items ``S`` and ``p_1 = sigmoid(z)``. A ranking's erasure curves (remove the first ``k`` ranked
items, or keep only them) are computed exactly on that model and passed to the audit's own
registered measures (:data:`attnaudit.measures.MEASURES`, their ``columns``), so every Test 2 column,
ERASER's AOPC included, is computed by the code that computes them in a real audit; the tables then
go through the real :func:`~attnaudit.results.summary.summarize` (bootstrap, max-t family) and
:func:`~attnaudit.results.verdict.assess`.

Scenarios (``attention`` is the ranking under test, ``random`` the audit's random ranking, both a
uniformly random permutation per document unless said):

* ``"null"``: ``attention`` is a second, independent random ranking: every true difference is 0, so
  any "better/weaker than random" claim is a false positive.
* ``"permuted"``: ``attention`` ranks items by the scores of a faithful ranking (``|w_i|`` plus
  noise) shuffled across positions per document, as a model whose attention was permuted: scores
  shaped like attention's, aligned with nothing (again a null: same distribution as random).
* ``"planted"``: the planted-marker task of ``attnaudit synth``: one marker item carries the label
  (``w = ±marker``), the other items are noise; ``attention`` ranks the marker first with probability
  ``recall`` (the rest in random order), as a model that found the marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Scenario = Literal["null", "permuted", "planted"]
SITE = "token"


@dataclass(frozen=True)
class World:
    """The simulated model and documents (defaults: a FLAN-like token site)."""

    min_items: int = 5
    max_items: int = 60
    bias: float = 0.8  # the head's bias: documents predicted as class 1 mostly cannot flip
    noise: float = 1.0  # sd of a non-marker item's contribution
    marker: float = 6.0  # |w| of the planted marker
    recall: float = 0.9  # planted: attention ranks the marker first this often


def simulate(scenario: Scenario, n_docs: int, seed: int, world: World = World()
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(single_weight, removal)`` tables of one simulated audit (``removal``: the measures'
    columns per document and ranking, rankings ``random`` and ``attention``)."""
    from attnaudit.measures import MEASURES

    rng = np.random.default_rng(seed)
    lengths = rng.integers(world.min_items, world.max_items + 1, size=n_docs)  # (B,)
    width = int(lengths.max())
    real = np.arange(width)[None, :] < lengths[:, None]  # (B, n)
    # contributions scaled by 3 / sqrt(n): a document's total evidence does not grow with its length
    w = np.where(real, rng.normal(0.0, world.noise, size=(n_docs, width)), 0.0)
    w *= 3.0 / np.sqrt(lengths)[:, None]
    marker = np.floor(rng.random(n_docs) * lengths).astype(np.int64)  # (B,) planted position
    rows = np.arange(n_docs)
    if scenario == "planted":
        w[rows, marker] = world.marker * np.where(rng.random(n_docs) < 0.5, 1.0, -1.0)
    predicted = (world.bias + w.sum(axis=1) > 0).astype(np.int64)  # (B,)

    def permutation() -> np.ndarray:
        """(B, n) a uniformly random order of each row's real items, padding last."""
        keys = np.where(real, rng.random((n_docs, width)), np.inf)
        return np.argsort(keys, axis=1, kind="stable")

    orders = {"random": permutation()}
    if scenario == "null":
        orders["attention"] = permutation()
    elif scenario == "permuted":
        scores = np.abs(w) + rng.normal(0.0, 0.1, size=w.shape)  # attention-shaped scores...
        shuffled = np.take_along_axis(scores, permutation(), axis=1)  # ...moved to random items
        orders["attention"] = np.argsort(np.where(real, -shuffled, np.inf), axis=1, kind="stable")
    else:
        order = permutation()
        found = rng.random(n_docs) < world.recall
        keys = np.where(real, rng.random((n_docs, width)), np.inf)
        keys[rows[found], marker[found]] = -1.0  # the marker first where attention found it
        orders["attention"] = np.where(found[:, None], np.argsort(keys, axis=1, kind="stable"),
                                       order)
    base = pd.DataFrame({"model": "sim", "site": SITE,
                         "doc_id": [f"d{d:05d}" for d in range(n_docs)], "n_items": lengths,
                         "label": predicted, "prediction": predicted, "single_item": False})
    frames = []
    for ranking, order in orders.items():
        curves = _curves(np.take_along_axis(w, order, axis=1), lengths, world.bias, predicted)
        frame = base.assign(ranking=ranking)
        for measure in MEASURES.values():
            for key, values in measure.columns(curves).items():
                frame[key] = values
        frames.append(frame)
    return base.assign(skipped=False), pd.concat(frames, ignore_index=True)


def _curves(ranked: np.ndarray, lengths: np.ndarray, bias: float, predicted: np.ndarray) -> Any:
    """:class:`~attnaudit.measures.base.CurveArrays` of ``B`` documents whose contributions in
    removal order are ``ranked`` ``(B, n)`` (0 on padding, so every curve repeats its step
    ``lengths[b]`` beyond it, as the measures expect)."""
    from attnaudit.measures.base import CurveArrays

    size, width = ranked.shape
    prefix = np.concatenate([np.zeros((size, 1)), np.cumsum(ranked, axis=1)], axis=1)  # (B, n+1)
    total = prefix[:, -1:]
    remove_z = bias + total - prefix  # the first k removed
    keep_z = bias + prefix  # only the first k kept
    sign = np.where(predicted == 1, 1.0, -1.0)[:, None]

    def prob(z: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-sign * z)))  # p of the predicted class

    real = np.arange(width)[None, :] < lengths[:, None]
    return CurveArrays(
        lengths=lengths, predicted=predicted, base_prob=prob(bias + total)[:, 0],
        ranked_weights=np.where(real, 1.0 / lengths[:, None], 0.0),
        remove_pred=(remove_z > 0).astype(np.int64), remove_prob=prob(remove_z),
        keep_pred=(keep_z > 0).astype(np.int64), keep_prob=prob(keep_z))


def replicate(scenario: Scenario, n_docs: int, seed: int, *, resamples: int = 1000,
              world: World = World()) -> dict[str, Any]:
    """One simulated audit through summarize and the verdict: the site's verdict entry, with the
    outcomes against random (``claims``: criteria reading better or weaker)."""
    from attnaudit.results.summary import summarize
    from attnaudit.results.verdict import assess

    single, removal = simulate(scenario, n_docs, seed, world)
    summary = summarize(single, removal, model="sim", rankings_meta={
        "random": {"label": "random"}, "attention": {"label": "attention"}},
        sites_meta={SITE: {"label": SITE}}, bootstrap=resamples, seed=seed)
    # the preconditions on accuracy are not what is measured here: a model far above its baseline
    metrics = {"test_accuracy": 0.9, "num_test": 2000, "majority_baseline": 0.5}
    site = assess(summary, metrics)["sites"][SITE]
    against = (site.get("comparisons") or {}).get("random") or {}
    claims = {leaf: e["outcome"] for leaf, e in against.items()
              if e["outcome"] in ("better", "weaker")}
    widths = {leaf: e["hi"] - e["lo"] for leaf, e in against.items() if "lo" in e}
    # for comparison: what the rules would claim without the band (simultaneous interval excludes
    # 0) and what the earlier rule claimed (a marginal percentile interval excludes 0)
    unbanded = [leaf for leaf, e in against.items() if "lo" in e and (e["lo"] > 0 or e["hi"] < 0)]
    marginal = ((summary["by_site"][SITE].get("differences") or {}).get("attention-vs-random")
                or {})
    old = [leaf for leaf in ("median_fraction_censored", "aopc_comprehensiveness",
                             "aopc_sufficiency")
           if isinstance((marginal.get(leaf) or {}).get("lo"), float)
           and (marginal[leaf]["lo"] > 0 or marginal[leaf]["hi"] < 0)]
    return {"status": site["status"], "claims": claims, "widths": widths,
            "unbanded": unbanded, "marginal": old,
            "headline": site["headline"], "flippable": site["flippable"]}


def rates(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Share of replicates with any claim, any "better" claim and any "weaker" claim; ``unbanded``:
    with any simultaneous interval excluding 0 (the rules without the band); ``marginal``: with any
    marginal percentile interval excluding 0 (the rule before the family and the band)."""
    n = max(len(results), 1)
    return {"any_claim": sum(bool(r["claims"]) for r in results) / n,
            "unbanded": sum(bool(r.get("unbanded")) for r in results) / n,
            "marginal": sum(bool(r.get("marginal")) for r in results) / n,
            "better": sum("better" in r["claims"].values() for r in results) / n,
            "weaker": sum("weaker" in r["claims"].values() for r in results) / n}


__all__ = ["World", "rates", "replicate", "simulate"]
