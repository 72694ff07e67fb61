"""Schema-exact audit results for report tests, written without training or loading any model.

The numbers are random but seeded and shaped like real audits (most removals do not flip the
decision, gradient rankings flip sooner than attention, attention sooner than random, some documents
never flip, a few have one item). They are inputs for the report; the report is what is under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RANKINGS = ("random", "attention", "gradient", "attention_x_gradient")
REMOVALS = ("max", "second", "min", "random", "gradient", "attention_x_gradient")
CATEGORIES = ("largest_delta_js", "flips_after_one", "never_flips", "median")
LABELS = ("world", "sports", "business", "sci/tech")
#: An item text that must reach the report escaped, never as markup.
HOSTILE_ITEM = "<script>alert('pwned')</script>"
_TEXT = (
    "the market rallied after a strong quarter while the team lost its final match and "
    "researchers reported a new chip that doubles battery life in phones & laptops "
    'officials said talks would resume next week despite "deep" disagreements'
)
_WORDS = tuple(_TEXT.split(" "))


def write_run(
    run_dir: Path,
    models: tuple[str, ...] = ("flan-rnn", "han-cnn"),
    *,
    seed: int = 0,
    n_docs: int = 80,
    without_audit: tuple[str, ...] = (),
) -> Path:
    """Write ``run_dir/run.json`` and a model folder per name; names in ``without_audit`` get
    metrics and config but no ``audit/`` (a run still in progress)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # The layout ``attnaudit run`` writes (attnaudit.utils.io.run_info around the pipeline config).
    run = {
        "seed": seed,
        "config": {
            "data": {"path": "data/ag_news", "fmt": "parquet", "max_test_docs": n_docs},
            "models": list(models),
            "train": {"epochs": 10, "lr": 4e-4, "batch_size": 64, "seed": seed},
            "audit": {"path": "fast", "js_base": "e", "seed": seed},
        },
        "versions": {"python": "3.11.7", "torch": "2.13.0", "attnaudit": "0.1.0"},
        "created": "2026-01-02T03:04:05+00:00",
        "command": "attnaudit run --data data/ag_news --out runs/test",
    }
    _write_json(run_dir / "run.json", run)
    for i, name in enumerate(models):
        write_model(run_dir / "models" / name, name, seed=seed + i, n_docs=n_docs,
                    with_audit=name not in without_audit)
    return run_dir


def write_model(
    model_dir: Path, name: str, *, seed: int = 0, n_docs: int = 80, with_audit: bool = True
) -> Path:
    """Write one model folder: ``metrics.json``, ``config.json`` and (optionally) ``audit/``."""
    rng = np.random.default_rng(seed)
    hierarchical = name.startswith("han")
    model_dir.mkdir(parents=True, exist_ok=True)
    _write_json(model_dir / "config.json", {  # attnaudit.config.RunConfig's layout
        "data": {"path": "data/ag_news", "fmt": "parquet"},
        "model": {"kind": "han" if hierarchical else "flan", "encoder": name.split("-")[-1],
                  "embedding_dim": 200, "hidden": 50, "dropout": 0.3, "embeddings": None},
        "train": {"epochs": 10, "lr": 4e-4, "batch_size": 64, "seed": seed},
    })
    _write_json(model_dir / "metrics.json", {
        "dev_accuracy": 0.86 + 0.05 * rng.random(), "test_accuracy": 0.85 + 0.05 * rng.random(),
        "majority_baseline": 0.25, "train_seconds": 120 + 600 * rng.random(),
        "train_docs_per_second": 800 + 400 * rng.random(), "epochs": int(rng.integers(4, 12)),
    })
    if with_audit:
        docs = [_document(rng, f"doc-{i:04d}", hierarchical, first=i == 0) for i in range(n_docs)]
        write_audit(model_dir / "audit", name, docs, rng)
    return model_dir


def write_audit(audit_dir: Path, name: str, docs: list[dict[str, Any]], rng: Any) -> None:
    """Write the four audit files for ``docs`` (as made by :func:`_document`)."""
    audit_dir.mkdir(parents=True, exist_ok=True)
    single = pd.DataFrame([_single_weight_row(name, d, rng) for d in docs])
    removal = pd.DataFrame([_removal_row(name, d, r) for d in docs for r in RANKINGS])
    single.to_parquet(audit_dir / "single_weight.parquet", index=False)
    removal.to_parquet(audit_dir / "removal.parquet", index=False)
    _write_json(audit_dir / "summary.json", _summary(name, single, removal))
    _write_json(audit_dir / "examples.json", _examples(docs, single))


# ----------------------------------------------------------------------------------------------


def _document(rng: Any, doc_id: str, hierarchical: bool, *, first: bool) -> dict[str, Any]:
    """A document with items, weights, gradients, removal orders and flip steps."""
    n = 1 if rng.random() < 0.06 else int(rng.integers(2, 12 if hierarchical else 40))
    if first:  # the document that carries the hostile text is always a multi-item example
        n = max(n, 6)
    items = [_item(rng, hierarchical) for _ in range(n)]
    if first:
        items[1] = HOSTILE_ITEM
    logits = rng.normal(scale=2.0, size=n)
    attention = np.exp(logits) / np.exp(logits).sum()
    gradient = rng.normal(scale=0.05, size=n) + 0.1 * attention
    label = str(rng.choice(LABELS))
    prediction = label if rng.random() < 0.85 else str(rng.choice(LABELS))
    orders = {
        "random": [int(i) for i in rng.permutation(n)],
        "attention": [int(i) for i in np.argsort(-attention, kind="stable")],
        "gradient": [int(i) for i in np.argsort(-gradient, kind="stable")],
        "attention_x_gradient": [int(i) for i in np.argsort(-attention * gradient, kind="stable")],
    }
    # Typical shape: gradient flips soonest, random latest, often never.
    speed = {"random": 0.7, "attention": 0.45, "gradient": 0.25, "attention_x_gradient": 0.3}
    never = {"random": 0.35, "attention": 0.25, "gradient": 0.15, "attention_x_gradient": 0.18}
    flip_step: dict[str, int | None] = {}
    for ranking in RANKINGS:
        if rng.random() < never[ranking]:
            flip_step[ranking] = None
        else:
            frac = float(np.clip(rng.beta(2, 2) * speed[ranking] * 1.6, 0.0, 1.0))
            flip_step[ranking] = max(1, min(n, int(np.ceil(frac * n))))
    return {"doc_id": doc_id, "items": items, "attention": attention, "gradient": gradient,
            "label": label, "prediction": prediction, "order": orders, "flip_step": flip_step}


def _item(rng: Any, hierarchical: bool) -> str:
    if not hierarchical:
        return str(rng.choice(_WORDS))
    words = rng.choice(_WORDS, size=int(rng.integers(4, 14)))
    return " ".join(str(w) for w in words).capitalize() + "."


def _single_weight_row(name: str, doc: dict[str, Any], rng: Any) -> dict[str, Any]:
    a = doc["attention"]
    n = len(a)
    row: dict[str, Any] = {"model": name, "doc_id": doc["doc_id"], "n_items": n,
                           "label": doc["label"], "prediction": doc["prediction"],
                           "skipped": n < 2}
    if n < 2:
        for r in REMOVALS:
            row[f"a_{r}"], row[f"js_{r}"], row[f"flip_{r}"] = np.nan, np.nan, None
        row["delta_a"] = row["delta_js"] = np.nan
        return row
    order = np.argsort(-a, kind="stable")
    g = doc["gradient"]
    pick = {"max": order[0], "second": order[1], "min": order[-1],
            "random": rng.choice([i for i in range(n) if i != order[0]]),
            "gradient": int(np.argmax(g)), "attention_x_gradient": int(np.argmax(a * g))}
    for r, i in pick.items():
        js = float(a[i] ** 2 * rng.exponential(0.02))
        row[f"a_{r}"] = float(a[i])
        row[f"js_{r}"] = js
        row[f"flip_{r}"] = bool(js > 0.004 or rng.random() < 0.02)
    row["delta_a"] = row["a_max"] - row["a_random"]
    row["delta_js"] = row["js_max"] - row["js_random"]
    return row


def _removal_row(name: str, doc: dict[str, Any], ranking: str) -> dict[str, Any]:
    n = len(doc["attention"])
    step = doc["flip_step"][ranking]
    order = doc["order"][ranking]
    mass = float(doc["attention"][order[:step]].sum()) if step is not None else np.nan
    return {"model": name, "doc_id": doc["doc_id"], "n_items": n, "label": doc["label"],
            "prediction": doc["prediction"], "ranking": ranking,
            "removed_at_flip": float(step) if step is not None else np.nan,
            "fraction_removed": step / n if step is not None else np.nan,
            "mass_removed": mass, "never_flipped": step is None, "single_item": n == 1}


def _summary(name: str, single: pd.DataFrame, removal: pd.DataFrame) -> dict[str, Any]:
    measured = single[~single["skipped"]]
    flips = {r: measured[f"flip_{r}"].astype(bool) for r in REMOVALS}
    top, rand = flips["max"], flips["random"]
    multi = removal[~removal["single_item"]]
    per_ranking: dict[str, Any] = {}
    random_steps = multi[multi["ranking"] == "random"].set_index("doc_id")["removed_at_flip"]
    for ranking in RANKINGS:
        rows = multi[multi["ranking"] == ranking]
        fr = rows["fraction_removed"].dropna()
        steps = rows.set_index("doc_id")["removed_at_flip"].fillna(np.inf)
        beats = float((steps < random_steps.fillna(np.inf)).mean())
        per_ranking[ranking] = {
            "median_fraction": _or_none(fr.median()), "q1_fraction": _or_none(fr.quantile(0.25)),
            "q3_fraction": _or_none(fr.quantile(0.75)),
            "median_mass": _or_none(rows["mass_removed"].dropna().median()),
            "share_never_flipped": float(rows["never_flipped"].mean()),
            "share_beats_random": None if ranking == "random" else beats,
        }
    att = multi[multi["ranking"] == "attention"].set_index("doc_id")["removed_at_flip"]
    grad = multi[multi["ranking"] == "gradient"].set_index("doc_id")["removed_at_flip"]
    att, grad = att.fillna(np.inf), grad.fillna(np.inf)
    return {
        "model": name, "js_base": "e", "n_docs": len(single),
        "n_single_item": int(single["skipped"].sum()),
        "single_weight": {
            "n": len(measured),
            "share_delta_js_positive": float((measured["delta_js"] > 0).mean()),
            "median_delta_js": float(measured["delta_js"].median()),
            "flip_rate": {r: float(f.mean()) for r, f in flips.items()},
            "table2": {"both": float((top & rand).mean()), "only_max": float((top & ~rand).mean()),
                       "only_random": float((~top & rand).mean()),
                       "neither": float((~top & ~rand).mean())},
        },
        "removal": per_ranking,
        "attention_vs_gradient": {"attention_fewer": float((att < grad).mean()),
                                  "gradient_fewer": float((att > grad).mean()),
                                  "tie": float((att == grad).mean())},
    }


def _examples(docs: list[dict[str, Any]], single: pd.DataFrame) -> list[dict[str, Any]]:
    """One or two documents per category, the hostile one always among them."""
    delta = dict(zip(single["doc_id"], single["delta_js"], strict=True))
    multi = [d for d in docs if len(d["items"]) > 1]
    chosen = {
        "largest_delta_js": [multi[0], max(multi[1:], key=lambda d: delta[d["doc_id"]])],
        "flips_after_one": [d for d in multi if d["flip_step"]["attention"] == 1][:1],
        "never_flips": [d for d in multi if d["flip_step"]["attention"] is None][:1],
        "median": [multi[len(multi) // 2]],
    }
    out = []
    for category, picked in chosen.items():
        for d in picked:
            a, g = d["attention"], d["gradient"]
            out.append({
                "doc_id": d["doc_id"], "label": d["label"], "prediction": d["prediction"],
                "category": category, "items": d["items"], "attention": a.tolist(),
                "gradient": g.tolist(), "attention_x_gradient": (a * g).tolist(),
                "removal_order": d["order"], "flip_step": d["flip_step"],
                "delta_js": _or_none(delta[d["doc_id"]]), "js_base": "e",
            })
    return out


def _or_none(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
