"""Mean and spread across training seeds: ``seeds.json`` of an ``attnaudit run --seeds 0,1,2``.

A ranking that beats another for one trained model may not for the next: a reader needs to see
whether an advantage survives retraining. This module aggregates what each seed's model folder
already holds (``metrics.json`` and ``audit/summary.json``); it never reads tables or models.

Layout of a multi-seed run (single-seed runs are unchanged)::

    runs/NAME/models/<model>/              the first seed: the folder a single-seed run has
    runs/NAME/models/<model>-seed<S>/      every further seed S: an ordinary model folder
    runs/NAME/seeds.json                   :func:`summarize_seeds`, written once every seed is audited

Every seed keeps the first seed's data split and is audited with the first seed's draws (the
``--max-docs`` subset, the random ranking, Test 1's random item; unless ``[audit] seed`` is set), so
the test documents are the same for all seeds: results are paired and their spread is the variance
of training (initialisation, dropout, batch order), not of which documents happened to be tested.

Schema of ``seeds.json`` (``schema_version`` 1; ``None``/null: no value to aggregate)::

    {"schema_version": 1, "seeds": [0, 1, 2], "conventions": {name: sentence},
     "models": {model: {
         "folders": {seed: "models/<model>[-seed<S>]"},       # seed as a string (a JSON key)
         "missing": {seed: why},                              # seeds without metrics or summary
         "metrics": {"test_accuracy": STATS, "dev_accuracy": STATS},
         "by_site": {site: {
             "flip_rate": {removal: STATS},                   # Test 1, as in summary.json
             "removal": {ranking: {key: STATS}},              # every numeric scalar of summary.json's
                                                              # removal[ranking]; nested keys dotted
             "advantage": {"gradient_vs_attention" | "attention_vs_random": {measure: ADVANTAGE}}}}}}}

    STATS = {"mean", "std" (sample, ddof 1; null below 2 values), "min", "max",
             "n" (seeds with a value), "values" (one per seed, in "seeds" order; null where missing)}
    ADVANTAGE = {"better", "than", "lower_is_better", "holds", "reversed", "tied",
                 "n" (seeds with both values), "survives" (holds in every one of >= 2 seeds),
                 "mean_difference" (mean of better - than)}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnaudit.results.summary import SCHEMA_VERSION as SUMMARY_SCHEMA_VERSION
from attnaudit.results.tables import SUMMARY
from attnaudit.utils.io import read_json, write_json

SCHEMA_VERSION = 1
SEEDS_FILE = "seeds.json"
#: written by training beside each model (attnaudit.checkpoint.METRICS_FILE; that module imports torch)
METRICS_FILE = "metrics.json"
#: metrics.json numbers aggregated across seeds
METRICS: tuple[str, ...] = ("test_accuracy", "dev_accuracy")

#: Claims checked seed by seed: (better, than), the paper's findings. A pair is left out of a site
#: whose audit lacks either ranking.
ADVANTAGE_PAIRS: tuple[tuple[str, str], ...] = (("gradient", "attention"), ("attention", "random"))


@dataclass(frozen=True)
class AdvantageMeasure:
    """A per-ranking number on which one ranking can beat another."""

    name: str
    lower_is_better: bool
    description: str

    def value(self, site: Mapping[str, Any], ranking: str) -> float | None:
        """The ranking's value in one site's block of ``summary.json`` (``by_site[site]``)."""
        if self.name == "flip_rate":
            removal = TEST1_REMOVAL.get(ranking, ranking)
            return _number(_get(site, "single_weight", "flip_rate", removal))
        return _number(_get(site, "removal", ranking, self.name))


#: Test 1 removal that stands for a ranking's top item: attention's top item is "max"
TEST1_REMOVAL: dict[str, str] = {"attention": "max", "random": "random"}

ADVANTAGE_MEASURES: tuple[AdvantageMeasure, ...] = (
    AdvantageMeasure("median_fraction_censored", lower_is_better=True,
                     description="Test 2: median fraction of items removed before the decision "
                                 "flips, never-flipped documents counted as n + 1 items"),
    AdvantageMeasure("flip_rate", lower_is_better=False,
                     description="Test 1: share of documents whose decision flips when the "
                                 "ranking's top item is removed"),
)

CONVENTIONS: dict[str, str] = {
    "split": "Every seed trains on the first seed's data split and is audited on the same test "
             "documents with the first seed's random draws: the spread is that of training.",
    "std": "Sample standard deviation across seeds (ddof 1); null with fewer than two seeds.",
    "values": "One value per seed in the order of 'seeds'; null where that seed has none.",
    "advantage": "Per seed, whether 'better' beats 'than' on the measure (strictly); 'survives' when "
                 "it does in every one of at least two seeds.",
}


@dataclass(frozen=True)
class SeedResult:
    """What one seed's model folder holds; ``None`` where a file is missing or unreadable."""

    seed: int
    folder: str  # relative to the run folder, for seeds.json
    metrics: Mapping[str, Any] | None = None
    summary: Mapping[str, Any] | None = None
    missing: str | None = None  # why metrics or summary is None


def seed_model_name(model: str, seed: int, seeds: Sequence[int]) -> str:
    """The model folder's name for ``seed``: ``model`` for the first of ``seeds``, else
    ``model-seed<S>`` (so a single-seed run's layout is unchanged, and adding seeds reuses it)."""
    return model if seed == seeds[0] else f"{model}-seed{seed}"


def read_seed_results(
    models_dir: Path, models: Iterable[str], seeds: Sequence[int]
) -> dict[str, list[SeedResult]]:
    """Every model's per-seed ``metrics.json`` and ``audit/summary.json`` under ``models_dir``.

    Returns:
        ``{model: [SeedResult per seed, in seeds order]}``; unreadable or missing files are noted.
    """
    out: dict[str, list[SeedResult]] = {}
    for model in models:
        out[model] = []
        for seed in seeds:
            folder = models_dir / seed_model_name(model, seed, seeds)
            metrics, why_metrics = _read(folder / METRICS_FILE)
            summary, why_summary = _read(folder / "audit" / SUMMARY)
            if summary is not None and summary.get("schema_version") != SUMMARY_SCHEMA_VERSION:
                why_summary = (f"{folder.name}/audit/{SUMMARY} has schema "
                               f"{summary.get('schema_version')}, not {SUMMARY_SCHEMA_VERSION}")
                summary = None
            why = "; ".join(w for w in (why_metrics, why_summary) if w) or None
            out[model].append(SeedResult(seed, f"{models_dir.name}/{folder.name}", metrics,
                                         summary, why))
    return out


def write_seeds_summary(
    run_dir: Path, models_dir: Path, models: Iterable[str], seeds: Sequence[int]
) -> Path:
    """Read every seed's results and write ``run_dir/seeds.json`` (atomically); returns its path."""
    path = run_dir / SEEDS_FILE
    write_json(path, summarize_seeds(read_seed_results(models_dir, models, seeds), seeds))
    return path


def summarize_seeds(
    results: Mapping[str, Sequence[SeedResult]], seeds: Sequence[int]
) -> dict[str, Any]:
    """The ``seeds.json`` object (schema in the module docstring) from per-seed results.

    Args:
        results: ``{model: [one SeedResult per seed]}`` (any order; matched by ``seed``).
        seeds: the seeds in report order; ``values`` lists follow it.
    """
    models: dict[str, Any] = {}
    for model, runs in results.items():
        by_seed = {run.seed: run for run in runs}
        ordered = [by_seed.get(seed) for seed in seeds]
        summaries = [run.summary if run is not None else None for run in ordered]
        models[model] = {
            "folders": {str(run.seed): run.folder for run in ordered if run is not None},
            "missing": {str(seed): (run.missing if run is not None else "not trained")
                        for seed, run in zip(seeds, ordered, strict=True)
                        if run is None or run.missing is not None},
            "metrics": {key: spread([_number((run.metrics or {}).get(key)) if run else None
                                     for run in ordered])
                        for key in METRICS},
            "by_site": {site: _site(site, summaries) for site in _keys(
                (s or {}).get("by_site") for s in summaries)},
        }
    return {"schema_version": SCHEMA_VERSION, "seeds": list(seeds), "conventions": CONVENTIONS,
            "models": models}


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, sample standard deviation, min and max of the non-null ``values``, with the values.

    >>> spread([0.5, None, 0.7])["mean"]
    0.6
    """
    present = np.array([v for v in values if v is not None], dtype=float)
    if present.size == 0:
        stats: dict[str, Any] = {"mean": None, "std": None, "min": None, "max": None}
    else:
        stats = {"mean": float(present.mean()),
                 "std": float(present.std(ddof=1)) if present.size >= 2 else None,
                 "min": float(present.min()), "max": float(present.max())}
    return {**stats, "n": int(present.size), "values": list(values)}


def _site(site: str, summaries: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """One site's aggregate over the seeds' summaries (a seed without this site counts as missing)."""
    blocks = [(s or {}).get("by_site", {}).get(site) for s in summaries]
    flip_rates = [_get(b, "single_weight", "flip_rate") for b in blocks]
    removals = [_get(b, "removal") for b in blocks]
    rankings = _keys(removals)
    removal: dict[str, Any] = {}
    for ranking in rankings:
        leaves = [_numeric_leaves(r.get(ranking)) if isinstance(r, Mapping) else {}
                  for r in removals]
        removal[ranking] = {key: spread([leaf.get(key) for leaf in leaves])
                            for key in _keys(leaves)}
    advantage: dict[str, Any] = {}
    for better, than in ADVANTAGE_PAIRS:
        if better in rankings and than in rankings:
            advantage[f"{better}_vs_{than}"] = {
                m.name: _advantage(m, better, than, blocks) for m in ADVANTAGE_MEASURES}
    return {
        "flip_rate": {removal_name: spread([_number(_get(f, removal_name)) for f in flip_rates])
                      for removal_name in _keys(flip_rates)},
        "removal": removal,
        "advantage": advantage,
    }


def _advantage(measure: AdvantageMeasure, better: str, than: str,
               blocks: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """In how many seeds ``better`` beats ``than`` on ``measure`` (seeds lacking a value skipped)."""
    sign = -1.0 if measure.lower_is_better else 1.0
    differences = []  # better - than, per seed with both values
    for block in blocks:
        a = measure.value(block, better) if block is not None else None
        b = measure.value(block, than) if block is not None else None
        if a is not None and b is not None:
            differences.append(a - b)
    holds = sum(sign * d > 0 for d in differences)
    reversed_ = sum(sign * d < 0 for d in differences)
    return {
        "better": better, "than": than, "lower_is_better": measure.lower_is_better,
        "holds": holds, "reversed": reversed_, "tied": len(differences) - holds - reversed_,
        "n": len(differences), "survives": len(differences) >= 2 and holds == len(differences),
        "mean_difference": float(np.mean(differences)) if differences else None,
        "description": measure.description,
    }


def _numeric_leaves(block: Any, prefix: str = "") -> dict[str, float | None]:
    """Scalar numbers (and nulls) of a nested dict as ``{"dotted.key": value}``.

    Lists (such as ``flip_curve``), strings and booleans are left out: only numbers have a mean.
    """
    out: dict[str, float | None] = {}
    if not isinstance(block, Mapping):
        return out
    for key, value in block.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_numeric_leaves(value, f"{name}."))
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[name] = _number(value)
    return out


def _number(value: Any) -> float | None:
    """A finite float, or ``None`` (JSON null, a NaN, or anything not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _get(block: Any, *keys: str) -> Any:
    """``block[k1][k2]...``, or ``None`` where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(block, Mapping):
            return None
        block = block.get(key)
    return block


def _keys(blocks: Iterable[Any]) -> list[str]:
    """The union of the dicts' keys, in first-seen order (non-dicts ignored)."""
    keys: dict[str, None] = {}
    for block in blocks:
        if isinstance(block, Mapping):
            keys.update(dict.fromkeys(block))
    return list(keys)


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON object file, or ``None`` and why."""
    where = "/".join(path.parts[-3:])  # e.g. models/flan-none/metrics.json, for the message
    if not path.is_file():
        return None, f"{where} is missing"
    try:
        value = read_json(path)
    except (OSError, ValueError) as err:  # DataError (damaged JSON) is a ValueError
        return None, f"{where} could not be read: {err}"
    return (value, None) if isinstance(value, dict) else (None, f"{where} is not a JSON object")


__all__ = [
    "ADVANTAGE_MEASURES",
    "ADVANTAGE_PAIRS",
    "METRICS",
    "SCHEMA_VERSION",
    "SEEDS_FILE",
    "AdvantageMeasure",
    "SeedResult",
    "read_seed_results",
    "seed_model_name",
    "spread",
    "summarize_seeds",
    "write_seeds_summary",
]
