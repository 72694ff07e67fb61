"""Aggregate figures of the two tests, from their per-document tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from attnaudit.erasure.single_weight import SINGLE_REMOVALS


def _share(values: pd.Series) -> float | None:
    return float(values.mean()) if len(values) else None


def _quantile(values: pd.Series, q: float) -> float | None:
    values = values.dropna()
    return float(values.quantile(q)) if len(values) else None


def summarize_single_weight(single: pd.DataFrame) -> dict[str, Any]:
    """Test 1 figures over documents with at least two items (the paper's Table 2 and more)."""
    used = single[~single["skipped"]]
    max_flip, random_flip = used["flip_max"], used["flip_random"]
    return {
        "n": len(used),
        "share_delta_js_positive": _share(used["delta_js"] > 0),
        "median_delta_js": _quantile(used["delta_js"], 0.5),
        "median_js_max": _quantile(used["js_max"], 0.5),
        "flip_rate": {r: _share(used[f"flip_{r}"]) for r in SINGLE_REMOVALS},
        "table2": {
            "both": _share(max_flip & random_flip),
            "only_max": _share(max_flip & ~random_flip),
            "only_random": _share(~max_flip & random_flip),
            "neither": _share(~max_flip & ~random_flip),
        },
    }


def _steps(frame: pd.DataFrame, ranking: str) -> pd.Series:
    """Items removed at the first flip per document, ``inf`` where it never flips."""
    rows = frame[frame["ranking"] == ranking].set_index("doc_id")
    return rows["removed_at_flip"].fillna(np.inf)


def summarize_removal(removal: pd.DataFrame) -> dict[str, Any]:
    """Test 2 figures per ranking, over documents with at least two items."""
    used = removal[~removal["single_item"]]
    out: dict[str, Any] = {}
    random_steps = _steps(used, "random") if "random" in set(used["ranking"]) else None
    for ranking, rows in used.groupby("ranking", sort=False):
        flipped = rows[~rows["never_flipped"]]
        beats: float | None = None
        if random_steps is not None and ranking != "random":
            steps = _steps(used, str(ranking))
            beats = _share(steps < random_steps.reindex(steps.index))
        out[str(ranking)] = {
            "n": len(rows),
            "median_fraction": _quantile(flipped["fraction_removed"], 0.5),
            "q1_fraction": _quantile(flipped["fraction_removed"], 0.25),
            "q3_fraction": _quantile(flipped["fraction_removed"], 0.75),
            "median_mass": _quantile(flipped["mass_removed"], 0.5),
            "share_never_flipped": _share(rows["never_flipped"]),
            "share_beats_random": beats,
        }
    return out


def attention_vs_gradient(removal: pd.DataFrame) -> dict[str, float | None]:
    """Per document: did ``attention`` or ``gradient`` need fewer removals (never = infinitely many)?"""
    used = removal[~removal["single_item"]]
    rankings = set(used["ranking"])
    if not {"attention", "gradient"} <= rankings:
        return {"attention_fewer": None, "gradient_fewer": None, "tie": None}
    attention, gradient = _steps(used, "attention"), _steps(used, "gradient")
    gradient = gradient.reindex(attention.index)
    return {
        "attention_fewer": _share(attention < gradient),
        "gradient_fewer": _share(gradient < attention),
        "tie": _share(attention == gradient),
    }


def summarize(
    single: pd.DataFrame, removal: pd.DataFrame, *, model: str, js_base: str
) -> dict[str, Any]:
    """The ``summary.json`` of one model's audit."""
    return {
        "model": model,
        "js_base": js_base,
        "n_docs": len(single),
        "n_single_item": int(single["skipped"].sum()),
        "single_weight": summarize_single_weight(single),
        "removal": summarize_removal(removal),
        "attention_vs_gradient": attention_vs_gradient(removal),
    }
