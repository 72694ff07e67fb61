"""Telling example documents for the report, with per-item weights, scores and removal orders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from attnaudit.data.batching import collate
from attnaudit.data.types import EncodedDocument
from attnaudit.models.base import AttentionClassifier

if TYPE_CHECKING:
    from attnaudit.erasure.audit import AuditConfig

#: example categories, in report order
CATEGORIES = ("largest_delta_js", "flips_after_one", "never_flips", "median")


def select_examples(
    single: pd.DataFrame, removal: pd.DataFrame, *, per_category: int = 3
) -> list[tuple[str, str]]:
    """Choose ``(doc_id, category)`` pairs: largest ΔJS, flips after one attention-ranked removal,
    never flips under the attention ranking, and the documents nearest the median ΔJS."""
    used = single[~single["skipped"]]
    attention = removal[(removal["ranking"] == "attention") & ~removal["single_item"]]
    picks: dict[str, list[str]] = {
        "largest_delta_js": used.nlargest(per_category, "delta_js")["doc_id"].tolist(),
        "flips_after_one": attention[attention["removed_at_flip"] == 1]["doc_id"]
        .head(per_category)
        .tolist(),
        "never_flips": attention[attention["never_flipped"]]["doc_id"].head(per_category).tolist(),
    }
    if len(used):
        distance = (used["delta_js"] - used["delta_js"].median()).abs()
        picks["median"] = used.loc[distance.nsmallest(per_category).index, "doc_id"].tolist()
    chosen: list[tuple[str, str]] = []
    seen: set[str] = set()
    for category in CATEGORIES:
        for doc_id in picks.get(category, []):
            if doc_id not in seen:
                seen.add(doc_id)
                chosen.append((str(doc_id), category))
    return chosen


def item_texts(doc: EncodedDocument, *, hierarchical: bool) -> list[str]:
    """The text of each item the last attention layer sees: sentences (HAN) or tokens (flat)."""
    if hierarchical:
        return [" ".join(sentence) for sentence in doc.tokens]
    return [token for sentence in doc.tokens for token in sentence]


def _floats(values: torch.Tensor) -> list[float]:
    return [float(v) if math.isfinite(float(v)) else 0.0 for v in values.tolist()]


def example_records(
    model: AttentionClassifier,
    docs: Sequence[EncodedDocument],
    categories: Sequence[str],
    label_names: Sequence[str],
    config: AuditConfig,
) -> list[dict[str, Any]]:
    """One JSON-ready record per document (schema: see the report's reader)."""
    from attnaudit.erasure.audit import audit_output

    records: list[dict[str, Any]] = []
    model.eval()
    device = next(model.parameters()).device
    for doc, category in zip(docs, categories, strict=True):
        batch = collate([doc], hierarchical=model.hierarchical).to(device)
        with torch.no_grad():
            output = model.run(batch)
        n = int(output.mask.sum())
        result = audit_output(model, output, batch.doc_ids, config)
        orders = {name: r.orders[0].tolist() for name, r in result.removal.items()}
        flips = {
            name: None if math.isnan(r.removed_at_flip[0]) else int(r.removed_at_flip[0])
            for name, r in result.removal.items()
        }
        delta_js = float(result.single_weight["delta_js"][0])
        records.append(
            {
                "doc_id": doc.doc_id,
                "label": label_names[doc.label],
                "prediction": label_names[int(output.logits.argmax(-1)[0])],
                "category": category,
                "items": item_texts(doc, hierarchical=model.hierarchical)[:n],
                "attention": _floats(output.attention[0, :n]),
                "gradient": _floats(result.scores["gradient"][0, :n]),
                "attention_x_gradient": _floats(result.scores["attention_x_gradient"][0, :n]),
                "removal_order": orders,
                "flip_step": flips,
                "delta_js": None if math.isnan(delta_js) else delta_js,
                "js_base": config.js_base,
            }
        )
    return records
