"""Schema-exact audit results for report tests, written without training or loading any model.

The tables follow docs/architecture.md (sites, ``removal.parquet`` per ranking, ``items.parquet``);
``summary.json`` is written by :func:`attnaudit.results.summary.summarize`, as the audit does. The
numbers are random but seeded and shaped like real audits (most single removals do not flip the
decision, gradient rankings flip sooner than attention, attention sooner than random, some documents
never flip or cannot flip, a few have one item). They are inputs for the report; the report is what
is under test.

:func:`write_transformer_model` is the exception: a transformer's many layer and head sites are
audited for real, on a tiny random model, by the audit engine's own functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attnaudit.measures.eraser import ERASER_PERCENTS
from attnaudit.results.planted import PlantedSpec
from attnaudit.results.seeds import seed_model_name, write_seeds_summary
from attnaudit.results.summary import summarize

RANKINGS = ("random", "attention", "gradient", "attention_x_gradient")
#: What the ranking registry writes into summary.json (label, colour), in report order.
RANKINGS_META: dict[str, dict[str, str]] = {
    "random": {"label": "random", "color": "#999999"},
    "attention": {"label": "attention", "color": "#E69F00"},
    "gradient": {"label": "gradient", "color": "#0072B2"},
    "attention_x_gradient": {"label": "attention × gradient", "color": "#CC79A7"},
}
#: A made-up ranking: the report must show it from summary.json's metadata alone.
TOY_META = {"label": "Toy ranking ✦", "color": "#123456"}
FLAT_SITES: dict[str, dict[str, Any]] = {
    "token": {"label": "token attention", "item": "token", "paper": True,
              "description": "The attention pooling over the document's tokens."},
}
HAN_SITES: dict[str, dict[str, Any]] = {
    "sentence": {"label": "sentence attention", "item": "sentence", "paper": True,
                 "description": "The sentence-level attention (the paper's site)."},
    "word": {"label": "word attention inside the most-attended sentence", "item": "word",
             "paper": False,
             "description": "Word attention inside the document's most-attended sentence."},
}
REMOVALS = ("max", "second", "min", "random", "gradient", "attention_x_gradient")
LABELS = ("world", "sports", "business", "sci/tech")
#: An item text that must reach the report escaped, never as markup.
HOSTILE_ITEM = "<script>alert('pwned')</script>"
#: The weight of the first document's last item: far below 1e-4, so 4 decimals would print 0.0000.
TINY_WEIGHT = 3.1e-06
_TEXT = (
    "the market rallied after a strong quarter while the team lost its final match and "
    "researchers reported a new chip that doubles battery life in phones & laptops "
    'officials said talks would resume next week despite "deep" disagreements'
)
_WORDS = tuple(_TEXT.split(" "))
#: A planted data set's sidecar (attnaudit synth): markers and distractor are words of _TEXT.
PLANTED = PlantedSpec(markers={"world": "market", "sports": "team", "business": "quarter",
                               "sci/tech": "chip"}, distractor="officials", source="fixture")


def write_run(
    run_dir: Path,
    models: tuple[str, ...] = ("flan-rnn", "han-cnn"),
    *,
    seed: int = 0,
    n_docs: int = 80,
    without_audit: tuple[str, ...] = (),
    extra_rankings: dict[str, dict[str, str]] | None = None,
    input_erasure: str | None = None,
    planted: bool = False,
    bootstrap: int = 0,
) -> Path:
    """Write ``run_dir/run.json`` and a model folder per name; names in ``without_audit`` get
    metrics and config but no ``audit/`` (a run still in progress). ``input_erasure``,
    ``planted`` and ``bootstrap``: as :func:`write_model`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # The layout ``attnaudit run`` writes (attnaudit.utils.io.run_info around the pipeline config).
    run = {
        "seed": seed,
        "config": {
            "data": {"path": "data/ag_news", "fmt": "parquet", "max_test_docs": n_docs},
            "models": list(models),
            "train": {"epochs": 10, "lr": 4e-4, "batch_size": 64, "seed": seed},
            "audit": {"path": "fast", "seed": seed},
        },
        "versions": {"python": "3.11.7", "torch": "2.13.0", "attnaudit": "0.1.0"},
        "created": "2026-01-02T03:04:05+00:00",
        "command": "attnaudit run --data data/ag_news --out runs/test",
    }
    _write_json(run_dir / "run.json", run)
    for i, name in enumerate(models):
        write_model(run_dir / "models" / name, name, seed=seed + i, n_docs=n_docs,
                    with_audit=name not in without_audit, extra_rankings=extra_rankings,
                    input_erasure=input_erasure, planted=planted, bootstrap=bootstrap)
    return run_dir


def write_seeds(run_dir: Path, models: tuple[str, ...], seeds: tuple[int, ...], *,
                n_docs: int = 30) -> Path:
    """A multi-seed run as ``attnaudit run --seeds`` lays it out: the first seed in
    ``models/<model>/``, each further seed in ``models/<model>-seed<S>/``, and ``seeds.json``
    written by :func:`attnaudit.results.seeds.write_seeds_summary`."""
    names = tuple(seed_model_name(m, s, seeds) for m in models for s in seeds)
    write_run(run_dir, names, seed=seeds[0], n_docs=n_docs)
    write_seeds_summary(run_dir, run_dir / "models", models, seeds)
    return run_dir


def write_model(
    model_dir: Path,
    name: str,
    *,
    seed: int = 0,
    n_docs: int = 80,
    with_audit: bool = True,
    extra_rankings: dict[str, dict[str, str]] | None = None,
    degenerate: bool = False,
    resumed: bool = False,
    input_erasure: str | None = None,
    planted: bool = False,
    bootstrap: int = 0,
) -> Path:
    """Write one model folder: ``metrics.json``, ``config.json`` and (optionally) ``audit/``.

    ``extra_rankings``: further rankings (name -> label/colour) the audit ran; ``degenerate``: the
    model predicts one class for every document; ``resumed``: training was interrupted and resumed;
    ``input_erasure``: ``"delete"`` or ``"unk"`` adds input-level removal rows (erasure/engine.py);
    ``planted``: the data set is a planted one (:data:`PLANTED`), so summary.json has ``planted``;
    ``bootstrap``: resamples of the summary's intervals (0: none, as ``--bootstrap 0``).
    """
    rng = np.random.default_rng(seed)
    hierarchical = name.startswith("han")
    model_dir.mkdir(parents=True, exist_ok=True)
    _write_json(model_dir / "config.json", {  # attnaudit.config.RunConfig's layout
        "data": {"path": "data/ag_news", "fmt": "parquet"},
        "model": {"kind": "han" if hierarchical else "flan", "encoder": name.split("-")[-1],
                  "embedding_dim": 200, "hidden": 50, "dropout": 0.3, "embeddings": None},
        "train": {"epochs": 10, "lr": 4e-4, "batch_size": 64, "seed": seed},
    })
    metrics: dict[str, Any] = {
        "dev_accuracy": 0.86 + 0.05 * rng.random(), "test_accuracy": 0.85 + 0.05 * rng.random(),
        "majority_baseline": 0.25, "num_test": 2000, "train_seconds": 120 + 600 * rng.random(),
        "train_docs_per_second": 800 + 400 * rng.random(), "epochs": int(rng.integers(4, 12)),
    }
    if resumed:
        metrics["resumed"] = True
    _write_json(model_dir / "metrics.json", metrics)
    if with_audit:
        rankings = {**RANKINGS_META, **(extra_rankings or {})}
        sites = HAN_SITES if hierarchical else FLAT_SITES
        docs = [_document(rng, f"doc-{i:04d}", list(sites), list(rankings), first=i == 0,
                          degenerate=degenerate) for i in range(n_docs)]
        write_audit(model_dir / "audit", name, docs, rng, rankings, sites,
                    input_erasure=input_erasure, planted=PLANTED if planted else None,
                    bootstrap=bootstrap)
    return model_dir


def write_audit(
    audit_dir: Path,
    name: str,
    docs: list[dict[str, Any]],
    rng: Any,
    rankings: dict[str, dict[str, str]],
    sites: dict[str, dict[str, Any]],
    *,
    input_erasure: str | None = None,
    planted: PlantedSpec | None = None,
    bootstrap: int = 0,
) -> None:
    """Write the audit files for ``docs`` (as made by :func:`_document`)."""
    audit_dir.mkdir(parents=True, exist_ok=True)
    single = pd.DataFrame([_single_weight_row(name, d, s, rng, rankings)
                           for d in docs for s in sites])
    rows = [_removal_row(name, d, s, r) for d in docs for s in sites for r in rankings]
    if input_erasure is not None:  # the engine's columns for both erasure levels
        rows = [{**row, "erasure": "attention", "erasure_mode": "renormalise",
                 "erasure_steps": "every"} for row in rows] + [
            _input_row(row, input_erasure) for row in rows]
    removal = pd.DataFrame(rows)
    items = pd.DataFrame([row for d in docs for s in sites for row in _item_rows(name, d, s)])
    single.to_parquet(audit_dir / "single_weight.parquet", index=False)
    removal.to_parquet(audit_dir / "removal.parquet", index=False)
    items.to_parquet(audit_dir / "items.parquet", index=False)
    _write_json(audit_dir / "audit_info.json", {
        "seed": 7, "fingerprint": "abc123", "n_docs": len(docs), "threads": 1, "device": "cpu",
        "config": {"path": "fast", "max_docs": len(docs), "seed": 7, "permutations": 100,
                   "adversarial_epsilon": 0.01, "bootstrap": bootstrap,
                   "rankings": list(rankings), "sites": list(sites)},
        "versions": {"attnaudit": "0.1.0", "torch": "2.13.0"},
        "created": "2026-01-02T04:05:06+00:00",
    })
    summary = summarize(single, removal, model=name, rankings_meta=rankings, sites_meta=sites,
                        items=items, planted=planted, bootstrap=bootstrap, seed=7)
    _write_json(audit_dir / "summary.json", summary)


# ----------------------------------------------------------------------------------------------


def _document(rng: Any, doc_id: str, sites: list[str], rankings: list[str], *, first: bool,
              degenerate: bool) -> dict[str, Any]:
    """A document: label, prediction and per site its items, weights, scores, orders, flips."""
    label = str(rng.choice(LABELS))
    prediction = LABELS[0] if degenerate else (
        label if rng.random() < 0.85 else str(rng.choice(LABELS)))
    per_site = {s: _site_data(rng, s, rankings, first=first) for s in sites}
    return {"doc_id": doc_id, "label": label, "prediction": prediction, "sites": per_site}


def _site_data(rng: Any, site: str, rankings: list[str], *, first: bool) -> dict[str, Any]:
    sentences = site == "sentence"
    n = 1 if rng.random() < 0.06 else int(rng.integers(2, 12 if sentences else 40))
    if first:  # the document that carries the hostile text is always a multi-item example
        n = max(n, 6)
    items = [_item(rng, sentences) for _ in range(n)]
    logits = rng.normal(scale=2.0, size=n)
    if first:
        items[1] = HOSTILE_ITEM
    attention = np.exp(logits) / np.exp(logits).sum()
    if first:  # one tiny weight, renormalised by hand so that it stays exactly TINY_WEIGHT
        attention[-1] = 0.0
        attention = attention / attention.sum() * (1 - TINY_WEIGHT)
        attention[-1] = TINY_WEIGHT
    gradient = rng.normal(scale=0.05, size=n) + 0.1 * attention
    scores = {"random": rng.random(n), "attention": attention, "gradient": gradient,
              "attention_x_gradient": attention * gradient}
    for r in rankings:
        scores.setdefault(r, rng.normal(size=n))
    orders = {r: [int(i) for i in np.argsort(-scores[r], kind="stable")] for r in rankings}
    # Typical shape: gradient flips soonest, random latest, often never.
    speed = {"random": 0.7, "attention": 0.45, "gradient": 0.25, "attention_x_gradient": 0.3}
    never = {"random": 0.35, "attention": 0.25, "gradient": 0.15, "attention_x_gradient": 0.18}
    strength = {"random": 0.6, "attention": 0.2, "gradient": 0.08, "attention_x_gradient": 0.1}
    cannot = bool(rng.random() < 0.1)
    flip_step: dict[str, int | None] = {}
    for r in rankings:
        if cannot or rng.random() < never.get(r, 0.2):
            flip_step[r] = None
        else:
            frac = float(np.clip(rng.beta(2, 2) * speed.get(r, 0.5) * 1.6, 0.0, 1.0))
            flip_step[r] = max(1, min(n, int(np.ceil(frac * n))))
    base = 0.55 + 0.45 * rng.random()  # p of the predicted class
    eraser = {r: _eraser_columns(rng, base, strength.get(r, 0.1)) for r in rankings}
    return {"items": items, "attention": attention, "gradient": gradient, "scores": scores,
            "order": orders, "flip_step": flip_step, "cannot_flip": cannot, "eraser": eraser}


def _eraser_columns(rng: Any, base: float, strength: float) -> dict[str, float]:
    """The eraser measure's per-document columns (measures/eraser.py): comprehensiveness grows
    with the share removed, faster for a stronger ranking; sufficiency shrinks as more is kept."""
    out: dict[str, float] = {}
    for p in ERASER_PERCENTS:
        q = p / 100
        out[f"comp_{p:02d}"] = float(np.clip(base * (1 - np.exp(-q / strength)) * rng.uniform(0.6, 1.4)
                                             - 0.02, -0.1, base))
        out[f"suff_{p:02d}"] = float(np.clip(base * np.exp(-q / strength) * rng.uniform(0.4, 1.0),
                                             -0.1, base))
    out["suff_00"] = float(base * rng.uniform(0.6, 1.0))
    comp = [out[f"comp_{p:02d}"] for p in ERASER_PERCENTS]
    suff = [out[f"suff_{p:02d}"] for p in ERASER_PERCENTS]
    out["aopc_comprehensiveness"] = sum(comp) / (len(comp) + 1)  # the k = 0 term is 0
    out["aopc_comprehensiveness_without_zero"] = sum(comp) / len(comp)
    out["aopc_sufficiency"] = (sum(suff) + out["suff_00"]) / (len(suff) + 1)
    out["aopc_sufficiency_without_zero"] = sum(suff) / len(suff)
    return out


def _item(rng: Any, sentences: bool) -> str:
    if not sentences:
        return str(rng.choice(_WORDS))
    words = rng.choice(_WORDS, size=int(rng.integers(4, 14)))
    return " ".join(str(w) for w in words).capitalize() + "."


def _single_weight_row(name: str, doc: dict[str, Any], site: str, rng: Any,
                       rankings: dict[str, dict[str, str]]) -> dict[str, Any]:
    data = doc["sites"][site]
    a = data["attention"]
    n = len(a)
    removals = ["max", "second", "min", "random",
                *[r for r in rankings if r not in ("random", "attention")]]
    row: dict[str, Any] = {"model": name, "site": site, "doc_id": doc["doc_id"], "n_items": n,
                           "label": doc["label"], "prediction": doc["prediction"],
                           "skipped": n < 2}
    if n < 2:
        for r in removals:
            row[f"item_{r}"], row[f"a_{r}"], row[f"js_{r}"], row[f"flip_{r}"] = -1, np.nan, np.nan, None
        row["delta_a"] = row["delta_js"] = np.nan
        for column in ("perm_median_tvd", "perm_max_tvd", "adv_jsd", "adv_tvd", "adv_max_weight",
                       "adv_vertex_jsd", "adv_feasible_vertices", "adv_certified"):
            row[column] = np.nan
        return row
    order = np.argsort(-a, kind="stable")
    pick = {"max": order[0], "second": order[1], "min": order[-1],
            "random": rng.choice([i for i in range(n) if i != order[0]])}
    for r in removals[4:]:
        pick[r] = int(data["order"][r][0])
    for r, i in pick.items():
        js = float(a[i] ** 2 * rng.exponential(0.02))
        if doc["doc_id"] == "doc-0000" and r == "max":
            js = 0.5  # the largest ΔJS: the hostile document is always among the examples
        row[f"item_{r}"] = int(i)
        row[f"a_{r}"] = float(a[i])
        row[f"js_{r}"] = js
        row[f"flip_{r}"] = bool(js > 0.004 or rng.random() < 0.02)
    row["delta_a"] = row["a_max"] - row["a_random"]
    row["delta_js"] = row["js_max"] - row["js_random"]
    # erasure/counterfactual.py: permutation TVDs small where attention is flat, adversarial JSD
    # large (J&W's finding)
    row["perm_median_tvd"] = float(row["a_max"] * rng.exponential(0.02))
    row["perm_max_tvd"] = row["perm_median_tvd"] * (1 + rng.exponential(1.0))
    row["adv_jsd"] = float(np.log(2) * rng.beta(5, 2))
    row["adv_tvd"] = float(0.01 * rng.random())
    row["adv_max_weight"] = float(rng.random())
    # the best feasible one-hot (never above adv_jsd): the search ends on one when a' is peaked;
    # derived from the draws above, so the fixture's other values stay as they were
    peaked = row["adv_max_weight"] > 0.5
    row["adv_vertex_jsd"] = row["adv_jsd"] if peaked else 0.8 * row["adv_jsd"]
    row["adv_feasible_vertices"] = float(1 + n // 2) if peaked else 0.0
    row["adv_certified"] = float(peaked and row["adv_max_weight"] > 0.9)
    return row


def _removal_row(name: str, doc: dict[str, Any], site: str, ranking: str) -> dict[str, Any]:
    data = doc["sites"][site]
    n = len(data["attention"])
    step = data["flip_step"][ranking]
    order = data["order"][ranking]
    mass = float(data["attention"][order[:step]].sum()) if step is not None else np.nan
    return {"model": name, "site": site, "doc_id": doc["doc_id"], "n_items": n,
            "label": doc["label"], "prediction": doc["prediction"], "ranking": ranking,
            "single_item": n == 1,
            "removed_at_flip": float(step) if step is not None else np.nan,
            "fraction_removed": step / n if step is not None else np.nan,
            "mass_removed": mass, "never_flipped": step is None,
            "cannot_flip": data["cannot_flip"],
            # measures/decision_flip.py and measures/eraser.py
            "flip_top": float(step == 1),
            "fraction_to_flip": step / n if step is not None else np.nan,
            "fraction_to_flip_censored": step / n if step is not None else (n + 1) / n,
            **data["eraser"][ranking]}


def _input_row(row: dict[str, Any], mode: str) -> dict[str, Any]:
    """The input-level row of an attention-level one: comprehensiveness a little lower, first
    flips a step later (known to the "eraser" schedule's resolution)."""
    out = {**row, "erasure": "input", "erasure_mode": mode, "erasure_steps": "eraser"}
    for key in [k for k in row if k.startswith(("comp_", "aopc_comp"))]:
        out[key] = 0.8 * row[key]
    return out


def _item_rows(name: str, doc: dict[str, Any], site: str) -> list[dict[str, Any]]:
    data = doc["sites"][site]
    rows = []
    for i, text in enumerate(data["items"]):
        row: dict[str, Any] = {"model": name, "site": site, "doc_id": doc["doc_id"], "item": i,
                               "text": text, "weight": float(data["attention"][i])}
        for r, scores in data["scores"].items():
            row[f"score_{r}"] = float(scores[i])
            row[f"rank_{r}"] = int(data["order"][r].index(i))
        rows.append(row)
    return rows


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# Transformer audits: a real (tiny, random) model audited by the audit engine itself
# ----------------------------------------------------------------------------------------------


def write_transformer_model(
    model_dir: Path,
    kind: str = "hf",
    *,
    n_docs: int = 8,
    seed: int = 2,
    bootstrap: int = 20,
    sites: tuple[str, ...] | None = None,
) -> Path:
    """A model folder for a tiny random transformer (``kind``: ``hf`` or ``hf-attnpool``; 2 layers
    of 4 heads, :func:`model_fixtures.tiny_transformer`) audited on ``n_docs`` random two-class
    documents, as ``attnaudit audit`` writes it: the tables, ``audit_info.json`` and
    ``summary.json`` come from the audit engine's own functions (:func:`make_plan`, the chunked
    audit and its writers), so the report reads exactly the audit's layout, site metadata
    included. ``sites``: the sites to audit (default: every layer and head site, and ``pool``).
    ``seed`` seeds the weights, the documents and the audit; seed 2 (``hf``) and 3 (``hf-attnpool``)
    give models that predict both classes (others may predict one class for all 8 documents, which
    the report flags as degenerate). ``bootstrap``: resamples of the summary's intervals.

    Unlike the rest of this module it runs a model (imported here, so that report tests that do not
    call it never import torch); a few seconds on one thread.
    """
    import dataclasses

    import torch
    from model_fixtures import random_docs, tiny_transformer

    from attnaudit.config import AuditConfig
    from attnaudit.erasure import audit as engine
    from attnaudit.utils.distributed import World

    torch.manual_seed(seed)
    model = tiny_transformer(kind, num_classes=2).double().eval()
    # two classes: the fixtures' labels 0-2 folded onto 0-1
    docs = [dataclasses.replace(d, label=d.label % 2) for d in random_docs(n_docs, seed=seed)]
    # few permutations, no adversarial search: the report's transformer section reads neither
    config = AuditConfig(sites=sites, bootstrap=bootstrap, permutations=5, adversarial_epsilon=0.0,
                         seed=seed)
    plan = engine.make_plan(model, config, run_seed=seed)
    out = model_dir / engine.AUDIT_DIR
    fingerprint = f"fixture-{kind}-{seed}"
    engine._reset_parts(out, fingerprint)
    engine._audit_chunks(out, model, docs, ["negative", "positive"], plan, config, model_dir.name,
                         fingerprint, engine._settings(plan, config), False, World())
    _write_json(model_dir / "config.json", {
        "data": {"path": "data/sst2", "fmt": "parquet"},
        "model": {"kind": kind, **model.config_dict()},
        "train": {"epochs": 0, "lr": 0.0, "batch_size": 8, "seed": seed},
    })
    _write_json(model_dir / "metrics.json", {"test_accuracy": 0.5, "majority_baseline": 0.5})
    return model_dir
