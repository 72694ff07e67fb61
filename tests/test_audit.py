"""The audit over documents: plans, seeds, the tables' layout, and a new ranking reaching every table
(batch-size and path invariance end to end are in the conformance suite; the summaries computed from
the tables are tested with the results layer)."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
import pytest
import torch
from model_fixtures import LABELS, random_docs, random_model

from attnaudit.data.types import DataError
from attnaudit.erasure.audit import audit_documents, make_plan, rankings_meta, sites_meta
from attnaudit.erasure.engine import AuditPlan
from attnaudit.models.base import AttentionClassifier, ModelOutput, item_texts
from attnaudit.rankings import RANKINGS
from attnaudit.rankings.base import mask_padding

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _config(**settings: Any) -> Any:
    """An audit config with ``settings`` set unvalidated (so make_plan's own checks are reached)."""
    from attnaudit.config import AuditConfig

    base = AuditConfig(rankings=("random", "attention", "gradient"))
    return base.model_copy(update=settings)


def test_make_plan_resolves_sites_and_seed() -> None:
    model = random_model("han-none", seed=0)
    plan = make_plan(model, _config(), run_seed=7)
    assert plan.sites == ("sentence", "word") and plan.seed == 7
    assert plan.rankings == ("random", "attention", "gradient")
    plan = make_plan(model, _config(sites=["word"], seed=3), run_seed=7)
    assert plan.sites == ("word",) and plan.seed == 3
    with pytest.raises(DataError, match="--sites: han has no attention site 'token'"):
        make_plan(model, _config(sites=["token"]))
    with pytest.raises(DataError, match="--rankings: unknown nope"):
        make_plan(model, _config(rankings=["nope"]))


def test_metadata_comes_from_the_registries() -> None:
    model = random_model("han-none", seed=0)
    plan = AuditPlan(sites=("sentence", "word"), rankings=("random", "gradient"))
    assert rankings_meta(plan) == {
        name: {"label": RANKINGS[name].label, "color": RANKINGS[name].color}
        for name in ("random", "gradient")
    }
    meta = sites_meta(model, plan)
    assert list(meta) == ["sentence", "word"]
    assert meta["sentence"]["paper"] and not meta["word"]["paper"]
    assert meta["word"]["item"] == "word"


def test_no_documents_is_an_error() -> None:
    with pytest.raises(ValueError, match="no documents"):
        audit_documents(random_model("flan-none", seed=0), [], LABELS)


def test_same_seed_same_result_other_seed_other_random_draws() -> None:
    model = random_model("flan-none", seed=3)
    docs = random_docs(20, seed=3)
    plan = AuditPlan(sites=("token",), rankings=("random", "attention"), seed=5)
    first = audit_documents(model, docs, LABELS, plan)
    again = audit_documents(model, docs, LABELS, plan)
    other = audit_documents(model, docs, LABELS, AuditPlan(sites=("token",),
                                                           rankings=("random", "attention"), seed=6))
    pd.testing.assert_frame_equal(first.removal, again.removal)
    pd.testing.assert_frame_equal(first.items, again.items)
    assert not first.single_weight["item_random"].equals(other.single_weight["item_random"])
    assert not first.items["rank_random"].equals(other.items["rank_random"])
    assert first.items["rank_attention"].equals(other.items["rank_attention"])


@pytest.mark.parametrize("name", ["flan-cnn", "han-rnn"])
def test_tables_layout_and_item_texts(name: str) -> None:
    model = random_model(name, seed=2)
    docs = random_docs(7, seed=2)
    plan = AuditPlan(sites=model.site_names(), rankings=("random", "attention", "gradient"), seed=2)
    frames = audit_documents(model, docs, LABELS, plan, model_name="m", batch_size=3)
    n_sites = len(plan.sites)
    assert len(frames.single_weight) == len(docs) * n_sites
    assert len(frames.removal) == len(docs) * n_sites * len(plan.rankings)
    for frame in (frames.single_weight, frames.removal, frames.items):
        assert (frame["model"] == "m").all()
        assert list(dict.fromkeys(frame["doc_id"])) == [d.doc_id for d in docs]
    single = frames.single_weight.set_index(["site", "doc_id"])
    assert set(single["label"]) <= set(LABELS) and set(single["prediction"]) <= set(LABELS)
    by_id = {d.doc_id: d for d in docs}
    for key, group in frames.items.groupby(["site", "doc_id"], sort=False):
        site, doc_id = str(key[0]), str(key[1])
        row = single.loc[(site, doc_id)]
        assert len(group) == row["n_items"]
        assert group["item"].tolist() == list(range(len(group)))
        texts = item_texts(model.site(site), by_id[doc_id], int(row["anchor"]))
        assert group["text"].tolist() == texts
        assert group["weight"].sum() == pytest.approx(1.0)
        for ranking in plan.rankings:
            assert sorted(group[f"rank_{ranking}"]) == list(range(len(group)))


class Toy:
    """A ranking defined outside the package: reversed attention (the least attended item first)."""

    name: ClassVar[str] = "toy"
    label: ClassVar[str] = "toy (reversed attention)"
    color: ClassVar[str] = "#123456"

    def rank(self, model: AttentionClassifier, output: ModelOutput, site: str,
             doc_ids: list[str]) -> torch.Tensor:
        out = output.site(site)
        return mask_padding(-out.attention.detach(), out.mask)


def test_a_registered_ranking_reaches_every_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a ranking touches two files: its own and the registry line (here: monkeypatched)."""
    monkeypatch.setitem(RANKINGS, "toy", Toy)
    model = random_model("han-cnn", seed=5)
    docs = random_docs(6, seed=5)
    plan = AuditPlan(sites=model.site_names(), rankings=("attention", "toy"), seed=5)
    frames = audit_documents(model, docs, LABELS, plan, batch_size=4)
    removal, items, single = frames.removal, frames.items, frames.single_weight
    toy = removal[removal["ranking"] == "toy"]
    assert len(toy) == len(docs) * len(plan.sites)
    assert toy["removed_at_flip"].notna().any() or toy["never_flipped"].all()
    assert {"score_toy", "rank_toy"} <= set(items.columns)
    pd.testing.assert_series_equal(items["score_toy"], -items["weight"], check_names=False)
    for _, group in items.groupby(["site", "doc_id"]):
        # the least attended item is removed first: the reverse of the attention ranking
        assert group.sort_values("rank_toy")["weight"].is_monotonic_increasing
    assert {"item_toy", "a_toy", "js_toy", "flip_toy"} <= set(single.columns)
    audited = ~single["skipped"]
    assert (single.loc[audited, "item_toy"] == single.loc[audited, "item_min"]).all()
    assert rankings_meta(plan)["toy"] == {"label": Toy.label, "color": Toy.color}
    assert make_plan(model, _config(rankings=["toy"])).rankings == ("toy",)


def test_tables_hold_the_documented_columns() -> None:
    """The schemas of docs/architecture.md (the tables may hold more, e.g. ``anchor``)."""
    model = random_model("han-none", seed=6)
    rankings = ("random", "attention", "gradient", "attention_x_gradient")
    plan = AuditPlan(sites=model.site_names(), rankings=rankings, seed=6)
    frames = audit_documents(model, random_docs(5, seed=6), LABELS, plan)
    removals = ("max", "second", "min", "random", "gradient", "attention_x_gradient")
    single = frames.single_weight
    expected = {"model", "site", "doc_id", "n_items", "label", "prediction", "skipped",
                "delta_a", "delta_js"}
    expected |= {f"{c}_{r}" for r in removals for c in ("item", "a", "js", "flip")}
    assert expected <= set(single.columns)
    for r in removals:
        assert single[f"item_{r}"].dtype.kind == "i"
        assert str(single[f"flip_{r}"].dtype) == "boolean"
        assert single[f"a_{r}"].dtype.kind == single[f"js_{r}"].dtype.kind == "f"
    removal = frames.removal
    assert {"model", "site", "doc_id", "n_items", "label", "prediction", "ranking", "single_item",
            "removed_at_flip", "fraction_removed", "mass_removed", "never_flipped",
            "cannot_flip"} <= set(removal.columns)
    assert removal["removed_at_flip"].dtype.kind == "f"
    assert removal["never_flipped"].dtype == bool and removal["cannot_flip"].dtype == bool
    items = frames.items
    assert {"model", "site", "doc_id", "item", "text", "weight"} <= set(items.columns)
    assert {f"{p}_{r}" for r in rankings for p in ("score", "rank")} <= set(items.columns)
    assert items["item"].dtype.kind == "i" and items["weight"].dtype.kind == "f"
