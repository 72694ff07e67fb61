"""The report's figures, drawn from saved results only (matplotlib Agg, no torch).

* :mod:`.test1`: ΔJS against Δa (symlog ΔJS axis), the flip rates and the paper's Table 2;
* :mod:`.test2`: fraction and mass removed at the first flip (boxes), never-flipped shares,
  attention vs gradient;
* :mod:`.curves`: the decision-flip curve;
* :mod:`.faithfulness`: ERASER comprehensiveness/sufficiency over the bins, agreement heat map;
* :mod:`.counterfactual`: Jain & Wallace's permutation and adversarial attention against max attention;
* :mod:`.transformer`: a transformer's layer x ranking grid and layer x head heat map (drawn by
  :mod:`attnaudit.reports.transformer` for its *Layers and heads* section, not listed in
  :data:`FIGURES`: they take a model's layers, not a site's panel);
* :mod:`.common`: style, deterministic PNGs, labels and colours from summary.json's metadata.

:data:`FIGURES` lists every figure with its title and caption; :func:`draw_figure` draws one from a
list of :class:`Panel` (one per model, or one per site), so the report's per-site figures and its
cross-model comparison share one code path. Per-document distributions (heat map, boxes) are drawn
from the tables; every share (flip rates, never flipped, flip curve) from the summary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from attnaudit.reports.faithfulness import input_erasure_text
from attnaudit.reports.figures.common import RankingsMeta, removal_label
from attnaudit.reports.figures.counterfactual import (
    plot_adversarial_vs_max_attention,
    plot_permutation_vs_max_attention,
)
from attnaudit.reports.figures.curves import CONVENTION, plot_flip_curve
from attnaudit.reports.figures.faithfulness import plot_agreement, plot_eraser_curves
from attnaudit.reports.figures.test1 import plot_delta_js_vs_delta_a, plot_flip_table
from attnaudit.reports.figures.test2 import (
    plot_attention_vs_gradient,
    plot_never_flipped,
    plot_removal_boxes,
)


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: its key (file name), title, caption and where it appears.

    ``test``: ``"test1"``, ``"test2"`` or ``"faithfulness"`` (the section of a site it belongs to);
    ``per_site``: drawn for each model's sites; ``across_models``: drawn in the comparison across
    models (each model's paper site side by side).
    """

    key: str
    title: str
    caption: str
    test: str
    per_site: bool = True
    across_models: bool = True


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("delta_js_vs_delta_a", "ΔJS against Δa",
               "Each cell counts documents (log colour scale); the ΔJS axis is symmetric-log, "
               "linear near zero, so negative ΔJS (removing a random item moved the output more "
               "than removing the top weight) stays visible below the dashed zero line. The "
               "paper found ΔJS mostly tiny, and large Δa often with small ΔJS.", "test1"),
    FigureSpec("flip_table", "Decisions flipped by one removal",
               "Left: the paper's Table 2, how often removing the top weight i* and a random "
               "item r flip the decision. Right: the flip rate of every single-item removal.",
               "test1"),
    FigureSpec("flip_curve", "Decision-flip curve",
               f"Share of all documents (two or more items) whose decision flipped after removing "
               f"at most a fraction f of their items, per ranking; {CONVENTION}, so a curve ends "
               "below 100% by the share that never flips. Higher and further left = the ranking "
               "finds what the decision rests on sooner.", "test2"),
    FigureSpec("fraction_removed", "Fraction removed before the decision flips",
               "Items are removed most-important-first by each ranking until the predicted label "
               "changes; boxes over the documents that flip (the paper's convention). Further "
               "left = the ranking found the decisive items sooner.", "test2"),
    FigureSpec("mass_removed", "Attention mass removed before the decision flips",
               "Sum of the original attention weights of the removed items, documents that flip. "
               "The attention ranking removes the most mass per item by construction.", "test2"),
    FigureSpec("never_flipped", "Share of documents whose decision never flips, per ranking",
               "For each ranking, the share of documents (two or more items) whose predicted label "
               "stays the same at every step of removing items in that ranking's order, up to "
               "removing them all (lower = the ranking flips more decisions). Each such document "
               "cannot flip (removing everything leaves its label), so rankings differ only by "
               "which of those they flip part way. The axis is scaled to the data.", "test2",
               per_site=False),
    FigureSpec("attention_vs_gradient", "Attention or gradient: which flips sooner?",
               "Per document, which ranking needed fewer removals. Never flipping counts as the "
               "most removals; both never flipping is a tie.", "test2", per_site=False),
    FigureSpec("eraser_curves", "Comprehensiveness and sufficiency over ERASER's bins",
               "Left: how much the probability of the predicted class drops when the top-ranked "
               "q of the items are erased (higher = more faithful); right: when only they are kept "
               "(lower = more faithful). Means over documents at ERASER's bins (k = ceil(q·n)); the "
               "dashed segment is the k = 0 term that the ERASER paper's AOPC includes and its "
               "released scorer leaves out. One row per erasure (attention-level, input-level).",
               "faithfulness", across_models=False),
    FigureSpec("agreement", "Do the rankings agree?",
               "Mean Kendall tau-b between two rankings' scores over each document's items (1 = "
               "same order, 0 = unrelated, −1 = reversed; ties handled).", "faithfulness",
               across_models=False),
    FigureSpec("counterfactual_permutation", "Does permuting the attention change the output?",
               "Jain & Wallace's Figure 4: per document, the median total variation distance (TVD, "
               "half the L1 distance) between the outputs with the original weights and with m "
               "random permutations of them, boxes per bin of the document's largest weight. Near "
               "0 = the output ignores which item gets which weight.", "faithfulness",
               across_models=False),
    FigureSpec("counterfactual_adversarial", "How different can attention be for the same output?",
               "Jain & Wallace's Figure 7: the largest Jensen-Shannon divergence (JSD) from the "
               "original attention that a search found among attention distributions whose output "
               "stays within TVD ε of the original, per bin of the largest weight. Near the "
               "ceiling (ln 2 nats) = very different attention gives the same decision.",
               "faithfulness", across_models=False),
)
SPECS: dict[str, FigureSpec] = {s.key: s for s in FIGURES}


@dataclass
class Panel:
    """What one model's site contributes to a figure: its rows and its summary.json entry."""

    title: str
    summary: Mapping[str, Any]
    single: pd.DataFrame | None = None
    removal: pd.DataFrame | None = None
    #: the audit's settings (audit_info.json's ``config``): m permutations, ε, ...
    settings: Mapping[str, Any] = field(default_factory=dict)


def draw_figure(
    key: str,
    panels: Sequence[Panel],
    rankings: RankingsMeta,
    path: str | os.PathLike[str],
    *,
    js_unit: str = "nats",
) -> Path | None:
    """Draw figure ``key`` over ``panels``; ``None`` when no panel has what it needs."""
    if key == "delta_js_vs_delta_a":
        frames = {p.title: p.single for p in panels if p.single is not None}
        return plot_delta_js_vs_delta_a(frames, path, js_unit=js_unit) if frames else None
    if key == "flip_table":
        tests = {p.title: p.summary.get("single_weight") or {} for p in panels}
        keys: list[str] = []
        for t in tests.values():
            keys += [k for k in (t.get("flip_rate") or {}) if k not in keys]
        return plot_flip_table(tests, {k: removal_label(k, rankings) for k in keys}, path)
    if key in ("fraction_removed", "mass_removed"):
        frames = {p.title: p.removal for p in panels if p.removal is not None}
        return plot_removal_boxes(frames, rankings, path, column=key) if frames else None
    if key == "flip_curve":
        curves = {p.title: p.summary.get("flip_curve") or {} for p in panels}
        return plot_flip_curve(curves, rankings, path)
    if key == "never_flipped":
        shares = {p.title: {r: (s or {}).get("share_never_flipped")
                            for r, s in (p.summary.get("removal") or {}).items()} for p in panels}
        return plot_never_flipped(shares, rankings, path)
    if key == "attention_vs_gradient":
        versus = {p.title: p.summary.get("attention_vs_gradient") or {} for p in panels}
        return plot_attention_vs_gradient(versus, rankings, path)
    if key == "eraser_curves":
        return plot_eraser_curves(_erasure_panels(panels), rankings, path)
    if key in ("counterfactual_permutation", "counterfactual_adversarial"):
        column = "perm_median_tvd" if key == "counterfactual_permutation" else "adv_jsd"
        frames = {p.title: p.single for p in panels
                  if p.single is not None and column in p.single.columns
                  and p.single[column].notna().any()}
        if not frames:  # the audit skipped it (a setting of 0) or predates it
            return None
        settings = panels[0].settings
        if key == "counterfactual_permutation":
            return plot_permutation_vs_max_attention(frames, path,
                                                     permutations=settings.get("permutations"))
        return plot_adversarial_vs_max_attention(
            frames, path, epsilon=settings.get("adversarial_epsilon"), js_unit=js_unit)
    if key == "agreement":
        pairs = {k: v for p in panels for k, v in
                 ((p.summary.get("agreement") or {}).get("pairs") or {}).items()}
        return plot_agreement(pairs, rankings, path) if pairs else None
    raise ValueError(f"unknown figure {key!r}; known: {', '.join(SPECS)}")


def _erasure_panels(panels: Sequence[Panel]) -> dict[str, tuple[Any, Any]]:
    """Per panel, its attention-level ``removal`` and (when the audit ran it) the input-level one,
    each with its bootstrap intervals: the rows of the ERASER figure."""
    out: dict[str, tuple[Any, Any]] = {}
    for p in panels:
        intervals = p.summary.get("intervals") or {}
        level = p.summary.get("input") or {}
        prefix = f"{p.title} · " if len(panels) > 1 else ""
        both = bool(level.get("removal"))
        out[prefix + ("attention-level erasure" if both else "")] = (
            p.summary.get("removal") or {}, intervals.get("removal"))
        if both:
            out[prefix + f"input-level erasure ({input_erasure_text(level.get('erasure'))})"] = (
                level["removal"], (intervals.get("input") or {}).get("removal"))
    return out


__all__ = [
    "FIGURES",
    "SPECS",
    "FigureSpec",
    "Panel",
    "draw_figure",
    "plot_adversarial_vs_max_attention",
    "plot_agreement",
    "plot_attention_vs_gradient",
    "plot_delta_js_vs_delta_a",
    "plot_eraser_curves",
    "plot_flip_curve",
    "plot_flip_table",
    "plot_never_flipped",
    "plot_permutation_vs_max_attention",
    "plot_removal_boxes",
]
