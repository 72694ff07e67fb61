"""Every summary of an audit, computed from its saved tables: ``summary.json`` and the report.

The audit writes :func:`summarize`'s result as ``summary.json``; the report reads that file (or calls
:func:`summarize` itself when it is missing), so a number in the report is the number in the file.
Torch-free: per-ranking Test 2 figures come from the measure registry (:data:`attnaudit.measures.
MEASURES`, numpy/pandas only); the cross-ranking figures (``share_beats_random``,
``attention_vs_gradient``) and Test 1 are computed here.

Structure (``schema_version`` 3; every share is a fraction in [0, 1], JS values in nats)::

    {"schema_version": 3, "model", "n_docs", "js_unit": "nats",
     "rankings": {name: {"label", "color"}},            # report order
     "sites": {name: {"label", "item", "paper", ...}},
     "prediction": {"n_docs", "class_shares", "majority_share", "degenerate", "warning"},
     "by_site": {site: {"n_docs", "n_single_item", "share_cannot_flip",
                        "single_weight": {"n", "share_delta_js_positive", "median_delta_js",
                                          "median_js_max", "flip_rate": {removal: share},
                                          "table2": {"both", "only_max", "only_random", "neither"}},
                        "removal": {ranking: {<every measure's summary>, "share_beats_random"}},
                        "flip_curve": {"fractions": [0, 0.05, ..., 1], ranking: [share, ...]},
                        "attention_vs_gradient": {"attention_fewer", "gradient_fewer", "tie"},
                        "conventions": {name: sentence}}}}

With input-level erasure (``removal.parquet`` rows with ``erasure == "input"``), a site also has
``"input": {"erasure": "delete" | "unk", "steps": "eraser" | "every", "removal": {ranking: ...},
"flip_curve": {...}}`` (as the attention-level entries) and ``conventions["input_erasure"]``; every
other entry reads the attention rows only (rows without an ``erasure`` column are attention rows).
Attention rows computed on a step schedule (``erasure_steps`` other than ``"every"``, the audit's
``attention_steps``) add ``conventions["attention_steps"]``: their first flips are the first scheduled
steps that flip.

A data set made by ``attnaudit synth`` adds a top-level ``"planted"`` key: each ranking's recall@1
of the planted marker token per site (structure: :mod:`attnaudit.results.planted`).

With ``items``, a site has ``"agreement": {"pairs": {"a|b": {"median_tau", "mean_tau",
"median_spearman", "mean_top1", "mean_top5", "n", "n_undefined"}}, "top_k", "conventions"}``
(:mod:`attnaudit.results.agreement`). With ``bootstrap > 0``, a site has ``"intervals"`` (its entry's
tree, [lo, hi] at each numeric leaf), ``"differences"`` (paired, ``"a-vs-b"``) and ``"family"`` (the
verdict's simultaneous intervals), and the file a
top-level ``"bootstrap": {"resamples", "confidence", "seed", "convention"}``
(:mod:`attnaudit.results.bootstrap`).

Every site has ``"counterfactual"``: Jain & Wallace's permutation and adversarial-attention summaries,
overall and per max-attention bin (structure: :mod:`attnaudit.results.counterfactual`).

``None`` (JSON null) means "no documents to compute this over"; no NaN reaches the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from attnaudit.measures.first_flip import FLIP_CURVE_FRACTIONS
from attnaudit.measures.reductions import (
    Reduced,
    count,
    document_keys,
    n_documents,
    nonzero_or,
    quantile,
    share,
)
from attnaudit.results.agreement import agreement_table, summarize_agreement
from attnaudit.results.bootstrap import Method as BootstrapMethod
from attnaudit.results.bootstrap import (
    bootstrap_statistic,
    family_intervals,
    intervals_tree,
    paired_differences,
)
from attnaudit.results.bootstrap import convention as bootstrap_convention
from attnaudit.results.counterfactual import summarize_counterfactual
from attnaudit.results.planted import PlantedSpec, summarize_planted
from attnaudit.results.tables import (
    erasure_rows,
    flag,
    in_order,
    measured,
    multi_item,
    of_site,
    rankings_of,
    single_removals,
    sites_of,
)
from attnaudit.results.verdict import CRITERION_LEAVES

#: 3: the counterfactual entry's vertex numbers and its stale-search flag (issue 21); a report given
#: an older summary.json recomputes it from the tables, and flags tables made before the vertex pass
SCHEMA_VERSION = 3
#: A model predicting one class for at least this share of the audited documents is called degenerate:
#: erasing attention can hardly change a (nearly) constant decision, so Test 1 and 2 say little.
#: 95% leaves room for a genuinely skewed test set while catching collapsed models.
DEGENERATE_SHARE = 0.95

#: The conventions every site's numbers follow, written into summary.json beside them.
CONVENTIONS: dict[str, str] = {
    "population": "Test 1 and Test 2 summaries cover documents with two or more items at the site; "
                  "one-item documents are counted in n_single_item.",
    "js_unit": "Jensen-Shannon divergences are in nats (natural log, at most ln 2).",
    "flips": "A flip is a change of the model's own prediction (never judged against the gold "
             "label).",
    "median_fraction": "The paper's convention: median fraction of items removed at the first flip, "
                       "over the documents that flip (never-flipped documents left out).",
    "median_fraction_censored": "Median over all documents, a never-flipped document counted as "
                                "needing n + 1 of its n items (fraction (n + 1) / n, above 1).",
    "flip_curve": "Share of ALL documents whose decision flipped after removing at most a fraction f "
                  "of their items; never-flipped documents stay in the denominator.",
    "cannot_flip": "Removing every item leaves the unmodified prediction (at a pooling site the "
                   "head's bias alone): a ranking can flip such a document only part way, never "
                   "by removing everything; every never-flipped document is one of them.",
    "share_beats_random": "Share of documents where the ranking needs fewer removals than the random "
                          "ranking; never flipping counts as infinitely many removals.",
    "attention_vs_gradient": "Per document, which of the attention and gradient rankings needs fewer "
                             "removals; never flipping counts as infinitely many, both never "
                             "flipping is a tie.",
}


def summarize(
    single: pd.DataFrame,
    removal: pd.DataFrame,
    *,
    model: str,
    rankings_meta: Mapping[str, Mapping[str, Any]],
    sites_meta: Mapping[str, Mapping[str, Any]],
    items: pd.DataFrame | None = None,
    planted: PlantedSpec | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    bootstrap_method: BootstrapMethod = "vectorised",
) -> dict[str, Any]:
    """The ``summary.json`` of one model's audit (structure: module docstring).

    Args:
        single: ``single_weight.parquet`` rows, one per (document, site).
        removal: ``removal.parquet`` rows, one per (document, site, ranking).
        model: the model's name.
        rankings_meta: ranking name -> ``{"label", "color"}``, in report order (from the ranking
            registry); rankings the tables hold but this omits get a default entry.
        sites_meta: site name -> ``{"label", "item", "paper", ...}``; likewise completed.
        items: ``items.parquet`` rows, one per (document, site, item), for the summaries that rank
            items; ``None`` leaves them out.
            With ``items`` each site also gets ``agreement`` between rankings
            (:mod:`attnaudit.results.agreement`).
        planted: the planted tokens of a data set made by ``attnaudit synth``: with ``items``, adds
            the top-level ``planted`` key (:func:`attnaudit.results.planted.summarize_planted`).
        bootstrap: percentile-bootstrap resamples over documents (0: none); adds each site's
            ``intervals`` and ``differences`` and the top-level ``bootstrap`` key
            (:mod:`attnaudit.results.bootstrap`).
        confidence: the intervals' level.
        seed: fixes the resamples (the audit's seed).
        bootstrap_method: ``"vectorised"`` (all resamples in one pass) or ``"recompute"`` (the
            reference: the site summary recomputed per resample); the same intervals up to float
            rounding (:func:`attnaudit.results.bootstrap.bootstrap_statistic`).

    Returns:
        A JSON-ready dict (plain floats, ``None`` for "no data").
    """
    # Every summary but the "input" entries reads the attention-level rows (all rows of an audit
    # saved before input-level erasure); input-level rows get their own entry per site.
    inputs = erasure_rows(removal, "input")
    removal = erasure_rows(removal, "attention")
    rankings = complete_rankings_meta(rankings_meta, rankings_of(removal))
    sites = complete_sites_meta(sites_meta, sites_of(single, removal))
    present = set(sites_of(single, removal)) or set(sites)
    by_site: dict[str, Any] = {}
    for site in in_order(present, list(sites)):
        site_single = of_site(single, site)
        site_removal = of_site(removal, site)
        assert site_single is not None and site_removal is not None  # frames in, frames out
        site_tables = {"single": site_single, "removal": site_removal}
        site_inputs = of_site(inputs, site)
        if site_inputs is not None and len(site_inputs):
            site_tables["input"] = site_inputs
        site_items = of_site(items, site)
        if site_items is not None and len(site_items):
            site_tables["agreement"] = agreement_table(site_items, list(rankings))
        by_site[site] = _site_entry(site_tables, list(rankings))
        if bootstrap:
            by_site[site].update(_site_intervals(by_site[site], site_tables, list(rankings),
                                                 bootstrap=bootstrap, confidence=confidence,
                                                 seed=seed, method=bootstrap_method))
    doc_ids = pd.concat([single.get("doc_id", pd.Series(dtype=object)),
                         removal.get("doc_id", pd.Series(dtype=object))]).astype(str)
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "n_docs": int(doc_ids.nunique()),
        "js_unit": "nats",
        "rankings": rankings,
        "sites": sites,
        "prediction": summarize_prediction(single if len(single) else removal),
        "by_site": by_site,
        **({"planted": summarize_planted(items, planted)}
           if planted is not None and items is not None else {}),
        **({"bootstrap": {"resamples": bootstrap, "confidence": confidence, "seed": seed,
                          "convention": bootstrap_convention(bootstrap, confidence)}}
           if bootstrap else {}),
    })


def _site_entry(tables: Mapping[str, pd.DataFrame], rankings: list[str]) -> dict[str, Any]:
    """One site's ``by_site`` entry from its tables (``single``, ``removal``, optional ``input`` and
    ``agreement``): the one function behind both the numbers and their bootstrap intervals."""
    entry = summarize_site(tables["single"], tables["removal"], rankings)
    attention_steps = _single_value(tables["removal"], "erasure_steps")
    if attention_steps not in (None, "every"):  # exact first flips (the default) need no sentence
        entry["conventions"]["attention_steps"] = attention_convention(attention_steps)
    if "input" in tables:
        entry["input"] = summarize_input(tables["input"], rankings)
        entry["conventions"]["input_erasure"] = input_convention(
            entry["input"]["erasure"], entry["input"]["steps"])
    if "agreement" in tables:
        entry["agreement"] = summarize_agreement(tables["agreement"])
    return entry


def _site_intervals(entry: dict[str, Any], tables: Mapping[str, pd.DataFrame], rankings: list[str],
                    *, bootstrap: int, confidence: float, seed: int,
                    method: BootstrapMethod = "vectorised") -> dict[str, Any]:
    """``intervals`` and ``differences`` of one site's entry (:mod:`attnaudit.results.bootstrap`):
    :func:`_site_entry` recomputed on document resamples of the same tables."""
    result = bootstrap_statistic(lambda t: _site_entry(dict(t), rankings), tables,
                                 resamples=bootstrap, seed=seed, estimate=entry, method=method)
    out = {"intervals": intervals_tree(result, confidence),
           "differences": paired_differences(result, rankings, confidence),
           # the verdict's family: attention against every other ranking on every criterion
           "family": family_intervals(result, rankings, CRITERION_LEAVES, confidence)}
    if "input" in entry:  # input-level erasure's rankings, compared on the same resamples
        out["input_differences"] = paired_differences(result, rankings, confidence,
                                                      prefix=("input", "removal"))
    return out


def summarize_site(single: pd.DataFrame, removal: pd.DataFrame, rankings: list[str]) -> dict[str, Any]:
    """One site's entry of ``by_site`` (``rankings``: report order of the ranking names)."""
    multi = multi_item(removal)
    per_doc = multi.drop_duplicates("doc_id") if "doc_id" in multi.columns else multi
    # counts through the reductions (measures/reductions.py): the bootstrap resamples them too
    n_docs = n_documents(single) if "doc_id" in single.columns else 0
    if "doc_id" in removal.columns:
        n_docs = nonzero_or(n_docs, n_documents(removal))
    n_single = (count(single) - count(measured(single))) if "skipped" in single.columns else (
        n_documents(removal.loc[flag(removal["single_item"])])
        if "single_item" in removal.columns else 0)
    per_ranking = summarize_removal(removal, rankings)
    conventions = dict(CONVENTIONS)
    for stats in per_ranking.values():  # the measures' conventions: once per site, not per ranking
        conventions.update(stats.pop("conventions", None) or {})
    curve: dict[str, Any] = {"fractions": list(FLIP_CURVE_FRACTIONS)}
    for ranking, stats in per_ranking.items():
        curve[ranking] = stats.get("flip_curve")  # from the first_flip measure
    return {
        "n_docs": n_docs,
        "n_single_item": n_single,
        "share_cannot_flip": share(flag(per_doc["cannot_flip"]))
        if "cannot_flip" in per_doc.columns else None,
        "single_weight": summarize_single_weight(single, rankings),
        "removal": per_ranking,
        "flip_curve": curve,
        "attention_vs_gradient": attention_vs_gradient(removal),
        "counterfactual": summarize_counterfactual(single),
        "conventions": conventions,
    }


# ----------------------------------------------------------------------------------------------
# Test 1
# ----------------------------------------------------------------------------------------------


def summarize_single_weight(single: pd.DataFrame, rankings: list[str] | tuple[str, ...] = ()
                            ) -> dict[str, Any]:
    """Test 1 over documents with two or more items: ΔJS, flip rates, the paper's Table 2."""
    used = measured(single)
    removals = single_removals(single, rankings)
    out: dict[str, Any] = {
        "n": count(used),
        "share_delta_js_positive": share(used["delta_js"].dropna() > 0)
        if "delta_js" in used else None,
        "median_delta_js": quantile(used.get("delta_js"), 0.5),
        "median_js_max": quantile(used.get("js_max"), 0.5),
        "flip_rate": {r: share(flag(used[f"flip_{r}"])) for r in removals},
    }
    if {"flip_max", "flip_random"} <= set(used.columns):
        top, rand = flag(used["flip_max"]), flag(used["flip_random"])
        out["table2"] = {"both": share(top & rand), "only_max": share(top & ~rand),
                         "only_random": share(~top & rand), "neither": share(~top & ~rand)}
    else:
        out["table2"] = {k: None for k in ("both", "only_max", "only_random", "neither")}
    return out


# ----------------------------------------------------------------------------------------------
# Test 2
# ----------------------------------------------------------------------------------------------


def summarize_removal(removal: pd.DataFrame, rankings: list[str] | tuple[str, ...] = ()
                      ) -> dict[str, dict[str, Any]]:
    """Per ranking (report order): every registered measure's summary merged, plus
    ``share_beats_random`` (None for the random ranking itself, or without one); ``conventions``:
    the measures' named conventions (``summarize_site`` moves them to the site's)."""
    from attnaudit.measures import MEASURES  # torch-free registry (numpy and pandas only)

    multi = multi_item(removal)
    names = in_order(rankings_of(removal), list(rankings))
    random_steps = _steps(multi, "random") if "random" in names else None
    out: dict[str, dict[str, Any]] = {}
    for ranking in names:
        rows = multi[multi["ranking"].astype(str) == ranking]
        entry: dict[str, Any] = {}
        measure_conventions: dict[str, str] = {}
        for measure in MEASURES.values():
            stats = dict(measure.summarize(rows))
            # a measure may name its conventions: merged here, moved to the site's by summarize_site
            measure_conventions.update(stats.pop("conventions", None) or {})
            entry.update(stats)
        entry["conventions"] = measure_conventions
        beats = None
        if random_steps is not None and ranking != "random":
            steps = _steps(multi, ranking)
            beats = share(steps < random_steps.reindex(steps.index).fillna(np.inf))
        entry["share_beats_random"] = beats
        out[ranking] = entry
    return out


def summarize_input(removal: pd.DataFrame, rankings: list[str] | tuple[str, ...] = ()
                    ) -> dict[str, Any]:
    """One site's input-level entry, ``by_site[site]["input"]``, from its input rows: ``erasure``
    (``"delete"`` or ``"unk"``), ``steps`` (``"eraser"`` or ``"every"``), ``removal`` (per ranking,
    as :func:`summarize_removal`; conventions left to the site's) and ``flip_curve`` (as the site's)."""
    per_ranking = summarize_removal(removal, rankings)
    curve: dict[str, Any] = {"fractions": list(FLIP_CURVE_FRACTIONS)}
    for ranking, stats in per_ranking.items():
        stats.pop("conventions", None)  # the same measures' conventions as the attention rows'
        curve[ranking] = stats.get("flip_curve")
    return {
        "erasure": _single_value(removal, "erasure_mode"),
        "steps": _single_value(removal, "erasure_steps"),
        "removal": per_ranking,
        "flip_curve": curve,
    }


#: how a curve's step schedule (``removal.parquet``'s ``erasure_steps``) bears on its first flips
STEP_SCHEDULES: dict[str, str] = {
    "every": "at every step k = 0..n, so first flips are exact",
    "eraser": "at the steps {0, 1, n} and ceil(q n) for q = 1, 5, 10, 20, 50% and every 5% of the "
              "items, so a first flip is known to the schedule's resolution only (the first "
              "scheduled step that flips; the true one lies after the previous scheduled step)",
}


def _schedule_text(steps: str | None) -> str:
    return STEP_SCHEDULES.get(str(steps), "on an unnamed schedule")


def input_convention(mode: str | None, steps: str | None) -> str:
    """The sentence naming how the input-level rows were computed (``conventions["input_erasure"]``)."""
    how = {"delete": "the erased items' tokens are deleted from the input (an emptied sentence "
                     "disappears; erasing everything leaves the empty document, whose logits are the "
                     "head's bias)",
           "unk": "the erased items' tokens are replaced by the UNK token, positions kept"}
    return (f"Input-level erasure ({mode}): {how.get(str(mode), 'unnamed mode')}, and the whole "
            f"model recomputed; curves computed {_schedule_text(steps)}."
            " Every other entry of the site reads the attention-level rows.")


def attention_convention(steps: str | None) -> str:
    """The sentence naming the attention-level rows' step schedule (``conventions["attention_steps"]``,
    only for a schedule other than ``"every"``)."""
    return (f"Attention-level erasure curves computed {_schedule_text(steps)}: the items, fraction "
            "and mass removed at the first flip are upper bounds, never-flipped means no scheduled "
            "step flips, and share_beats_random and attention_vs_gradient compare rankings at the "
            "schedule's resolution (more ties). ERASER's bins and the top item's flip (step 1) are "
            "scheduled steps, so those stay exact.")


def _single_value(rows: pd.DataFrame, column: str) -> str | None:
    """The one value of ``column`` over ``rows`` (None when absent or not unique)."""
    if column not in rows.columns:
        return None
    values = pd.unique(rows[column].astype(str))
    return str(values[0]) if len(values) == 1 else None


def _steps(multi: pd.DataFrame, ranking: str) -> pd.Series:
    """Items removed at the first flip per document (index ``doc_id``), ``inf`` where never."""
    rows = multi[multi["ranking"].astype(str) == ranking]
    steps = rows.set_axis(document_keys(rows))["removed_at_flip"].astype(float)
    return steps.fillna(np.inf)


def attention_vs_gradient(removal: pd.DataFrame) -> dict[str, Reduced]:
    """Per document: did ``attention`` or ``gradient`` need fewer removals (never = infinitely many)?"""
    multi = multi_item(removal)
    if not {"attention", "gradient"} <= set(rankings_of(multi)):
        return {"attention_fewer": None, "gradient_fewer": None, "tie": None}
    attention = _steps(multi, "attention")
    gradient = _steps(multi, "gradient").reindex(attention.index).fillna(np.inf)
    return {"attention_fewer": share(attention < gradient),
            "gradient_fewer": share(gradient < attention),
            "tie": share(attention == gradient)}


# ----------------------------------------------------------------------------------------------
# The model's predictions
# ----------------------------------------------------------------------------------------------


def summarize_prediction(rows: pd.DataFrame) -> dict[str, Any]:
    """Class shares of the model's predictions over the audited documents (one per document), and
    whether one class takes at least :data:`DEGENERATE_SHARE` of them, with a warning sentence."""
    if "prediction" not in rows.columns or not len(rows):
        return {"n_docs": 0, "class_shares": {}, "majority_share": None, "degenerate": False,
                "warning": None}
    per_doc = rows.drop_duplicates("doc_id") if "doc_id" in rows.columns else rows
    shares = per_doc["prediction"].astype(str).value_counts(normalize=True, sort=True)
    majority, top = str(shares.index[0]), float(shares.iloc[0])
    degenerate = top >= DEGENERATE_SHARE
    warning = None
    if degenerate:
        warning = (f"the model predicts '{majority}' for {_percent_text(top)} of documents: an "
                   "attention audit of a (nearly) constant model means little")
    return {"n_docs": len(per_doc), "class_shares": {str(k): float(v) for k, v in shares.items()},
            "majority_share": top, "degenerate": bool(degenerate), "warning": warning}


def _percent_text(share: float) -> str:
    """98%, 99.6% (not a rounded-up 100% for a model that is not quite constant)."""
    text = f"{100 * share:.0f}"
    if share < 1 and text == "100":
        text = f"{100 * share:.1f}"
    return text + "%"


# ----------------------------------------------------------------------------------------------
# Metadata defaults and JSON hygiene
# ----------------------------------------------------------------------------------------------

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), for rankings the
#: registry's metadata does not cover (a summary recomputed from tables alone).
DEFAULT_COLORS: tuple[str, ...] = ("#999999", "#E69F00", "#0072B2", "#CC79A7", "#009E73",
                                   "#D55E00", "#56B4E9", "#F0E442")


def complete_rankings_meta(meta: Mapping[str, Mapping[str, Any]], names: list[str]
                           ) -> dict[str, dict[str, Any]]:
    """``meta`` (in its order) plus a default entry for every ranking in ``names`` it lacks."""
    out = {str(k): {"label": str(v.get("label", k)), **dict(v)} for k, v in meta.items()}
    for name in names:
        if name not in out:
            out[name] = {"label": name.replace("_x_", " × ").replace("_", " ")}
    for i, entry in enumerate(out.values()):
        entry.setdefault("color", DEFAULT_COLORS[i % len(DEFAULT_COLORS)])
    return out


def complete_sites_meta(meta: Mapping[str, Mapping[str, Any]], names: list[str]
                        ) -> dict[str, dict[str, Any]]:
    """``meta`` plus a default entry (label = name, paper unknown = False) for unlisted sites."""
    out = {str(k): dict(v) for k, v in meta.items()}
    for name in names:
        out.setdefault(name, {"label": name, "item": "item", "paper": len(names) == 1})
    for name, entry in out.items():
        entry.setdefault("label", name)
        entry.setdefault("item", "item")
        entry.setdefault("paper", False)
    return out


def _clean(obj: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj
