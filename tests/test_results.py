"""attnaudit.results: every summary computed from the saved tables, checked by hand on tiny tables.

The flip curve and the censored median follow the spec's section 6 (never-flipped documents stay in
the denominator; a never-flipped document counts as n + 1 of its n items removed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from report_fixtures import RANKINGS_META, write_model

from attnaudit.results import (
    DEGENERATE_SHARE,
    FLIP_CURVE_FRACTIONS,
    SCHEMA_VERSION,
    example_records,
    read_audit,
    select_examples,
    summarize,
)

SITES = {"token": {"label": "token attention", "item": "token", "paper": True}}


def _removal(rows: list[tuple[str, int, str, float | None, bool]]) -> pd.DataFrame:
    """Rows ``(doc_id, n_items, ranking, removed_at_flip or None, cannot_flip)`` of one site."""
    out = []
    for doc_id, n, ranking, step, cannot in rows:
        out.append({
            "model": "m", "site": "token", "doc_id": doc_id, "n_items": n, "label": "a",
            "prediction": "a", "ranking": ranking, "single_item": n == 1,
            "removed_at_flip": np.nan if step is None else float(step),
            "fraction_removed": np.nan if step is None else step / n,
            "mass_removed": np.nan if step is None else 0.1 * step,
            "never_flipped": step is None, "cannot_flip": cannot,
        })
    return pd.DataFrame(out)


def _single(doc_ids: list[str], predictions: list[str] | None = None) -> pd.DataFrame:
    predictions = predictions or ["a"] * len(doc_ids)
    return pd.DataFrame([{
        "model": "m", "site": "token", "doc_id": d, "n_items": 3, "label": "a", "prediction": p,
        "skipped": False, "item_max": 0, "a_max": 0.5, "js_max": 0.02, "flip_max": i % 2 == 0,
        "item_random": 1, "a_random": 0.2, "js_random": 0.01, "flip_random": False,
        "delta_a": 0.3, "delta_js": 0.01 if i % 3 else -0.001,
    } for i, (d, p) in enumerate(zip(doc_ids, predictions, strict=True))])


# Four multi-item documents under the attention ranking, and a one-item document left out:
#   A: 4 items, flips after 1 (fraction 0.25)      B: 2 items, flips after 2 (1.0)
#   C: 5 items, never flips (censored: 6/5 = 1.2)  D: 10 items, flips after 3 (0.3)
HAND = [("A", 4, "attention", 1, False), ("B", 2, "attention", 2, False),
        ("C", 5, "attention", None, True), ("D", 10, "attention", 3, False),
        ("E", 1, "attention", None, True)]


@pytest.fixture
def hand() -> dict[str, Any]:
    removal = _removal(HAND)
    return summarize(_single(["A", "B", "C", "D"]), removal, model="m",
                     rankings_meta={"attention": RANKINGS_META["attention"]}, sites_meta=SITES)


def test_flip_curve_by_hand(hand: dict[str, Any]) -> None:
    """F(f) = share of ALL four documents flipped by fraction f; C (never) stays in the denominator."""
    curve = hand["by_site"]["token"]["flip_curve"]
    assert curve["fractions"] == pytest.approx(list(FLIP_CURVE_FRACTIONS))
    assert curve["fractions"][0] == 0 and curve["fractions"][-1] == 1
    by_f = dict(zip(curve["fractions"], curve["attention"], strict=True))
    expected = {0.0: 0.0, 0.2: 0.0, 0.25: 0.25, 0.3: 0.5, 0.5: 0.5, 0.95: 0.5, 1.0: 0.75}
    for f, share in expected.items():
        assert by_f[f] == pytest.approx(share), f
    # never-flipped C keeps the curve below 1 even with everything removed
    assert max(curve["attention"]) == pytest.approx(0.75)


def test_censored_median_by_hand(hand: dict[str, Any]) -> None:
    stats = hand["by_site"]["token"]["removal"]["attention"]
    # flipped only (the paper): 0.25, 0.3, 1.0 -> 0.3
    assert stats["median_fraction"] == pytest.approx(0.3)
    # censored: 0.25, 0.3, 1.0, 6/5 -> (0.3 + 1.0) / 2
    assert stats["median_fraction_censored"] == pytest.approx(0.65)
    assert stats["share_never_flipped"] == pytest.approx(0.25)
    assert stats["n"] == 4  # the one-item document E is left out


def test_cannot_flip_share(hand: dict[str, Any]) -> None:
    site = hand["by_site"]["token"]
    assert site["share_cannot_flip"] == pytest.approx(0.25)  # C of A-D; E has one item
    assert site["n_single_item"] == 0 and site["n_docs"] == 4
    assert "denominator" in site["conventions"]["flip_curve"]


def test_beats_random_and_attention_vs_gradient_by_hand() -> None:
    removal = _removal([
        ("A", 4, "random", 3, False), ("A", 4, "attention", 1, False), ("A", 4, "gradient", 2, False),
        ("B", 4, "random", None, False), ("B", 4, "attention", None, False),
        ("B", 4, "gradient", 4, False),
        ("C", 4, "random", 1, False), ("C", 4, "attention", 2, False), ("C", 4, "gradient", 2, False),
        ("D", 4, "random", None, True), ("D", 4, "attention", None, True),
        ("D", 4, "gradient", None, True),
    ])
    meta = {r: RANKINGS_META[r] for r in ("random", "attention", "gradient")}
    s = summarize(_single(["A", "B", "C", "D"]), removal, model="m", rankings_meta=meta,
                  sites_meta=SITES)["by_site"]["token"]
    beats = {r: s["removal"][r]["share_beats_random"] for r in meta}
    assert beats["random"] is None
    assert beats["attention"] == pytest.approx(0.25)  # A only (B: both never; C: 2 > 1)
    assert beats["gradient"] == pytest.approx(0.5)  # A and B (4 < never)
    versus = s["attention_vs_gradient"]
    assert versus == pytest.approx({"attention_fewer": 0.25, "gradient_fewer": 0.25, "tie": 0.5})
    assert list(s["removal"]) == ["random", "attention", "gradient"]  # report order


def test_degenerate_prediction() -> None:
    ids = [f"d{i}" for i in range(100)]
    removal = _removal([(d, 3, "attention", 1, False) for d in ids])
    constant = summarize(_single(ids, ["pos"] * 98 + ["neg"] * 2), removal, model="m",
                         rankings_meta={}, sites_meta=SITES)["prediction"]
    assert constant["degenerate"] is True and DEGENERATE_SHARE == 0.95
    assert constant["class_shares"] == {"pos": 0.98, "neg": 0.02}
    assert "'pos' for 98% of documents" in constant["warning"]
    balanced = summarize(_single(ids, ["pos"] * 94 + ["neg"] * 6), removal, model="m",
                         rankings_meta={}, sites_meta=SITES)["prediction"]
    assert balanced["degenerate"] is False and balanced["warning"] is None
    assert balanced["majority_share"] == pytest.approx(0.94)


def test_summary_is_plain_json_and_complete(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "han", "han-rnn", n_docs=40,
                         extra_rankings={"toy": {"label": "toy", "color": "#123456"}})
    tables = read_audit(folder / "audit")
    assert tables.single is not None and tables.removal is not None
    s = summarize(tables.single, tables.removal, model="han-rnn", rankings_meta={},
                  sites_meta={"sentence": {"label": "S", "item": "sentence", "paper": True}})
    json.dumps(s, allow_nan=False)  # no NaN reaches summary.json
    assert s["schema_version"] == SCHEMA_VERSION and s["js_unit"] == "nats"
    assert list(s["by_site"]) == ["sentence", "word"]
    assert s["sites"]["word"]["label"] == "word" and s["sites"]["sentence"]["label"] == "S"
    # rankings the metadata does not name still get a label and a colour
    assert set(s["rankings"]) == {"random", "attention", "gradient", "attention_x_gradient", "toy"}
    assert all(v["color"].startswith("#") for v in s["rankings"].values())
    site = s["by_site"]["sentence"]
    assert set(site["single_weight"]["flip_rate"]) >= {"max", "random", "gradient", "toy"}
    for stats in site["removal"].values():
        assert {"median_fraction", "median_fraction_censored", "share_never_flipped",
                "share_cannot_flip", "share_beats_random", "flip_curve"} <= set(stats)
    t2 = site["single_weight"]["table2"]
    assert math.isclose(sum(t2.values()), 1.0)


def test_examples_from_tables(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "han", "han-cnn", n_docs=40)
    t = read_audit(folder / "audit")
    assert t.single is not None and t.removal is not None and t.items is not None
    chosen = select_examples(t.single, t.removal, t.items)
    assert {c.site for c in chosen} == {"sentence", "word"}
    assert chosen[0].doc_id == "doc-0000" and chosen[0].category == "largest_delta_js"
    per_site = [(c.site, c.doc_id) for c in chosen]
    assert len(per_site) == len(set(per_site))  # each document once per site
    records = example_records(t.single, t.removal, t.items, chosen,
                              rankings=list(RANKINGS_META))
    assert len(records) == len(chosen)
    first = records[0]
    items = t.items[(t.items["site"] == "sentence") & (t.items["doc_id"] == "doc-0000")]
    assert first["items"] == items.sort_values("item")["text"].tolist()
    assert first["weights"] == pytest.approx(items.sort_values("item")["weight"].tolist())
    assert list(first["ranks"]) == list(RANKINGS_META)
    removal = t.removal[(t.removal["site"] == "sentence") & (t.removal["doc_id"] == "doc-0000")]
    for _, row in removal.iterrows():
        step = first["flip_step"][row["ranking"]]
        assert (step is None) == bool(row["never_flipped"])
    # selection limited to the documents whose items were stored
    few = t.items[t.items["doc_id"].isin(["doc-0003", "doc-0005"])]
    assert {c.doc_id for c in select_examples(t.single, t.removal, few)} <= {"doc-0003", "doc-0005"}

