"""Input-level erasure (erasure/input_level.py): step schedules by hand, the erased inputs by hand, the
batched curves against the one-document-one-step reference, batch invariance, the empty document, and
the audit's input rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import ALL_MODELS, LABELS, SITE_CASES, random_docs, random_model
from test_checkpoint_training import write_dataset

from attnaudit.cli import main
from attnaudit.config import (
    DataConfig,
    InputErasure,
    InputSteps,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from attnaudit.data.batching import collate
from attnaudit.data.types import PAD_ID, UNK_ID, Batch, EncodedDocument
from attnaudit.erasure.audit import AUDIT_DIR, audit_documents
from attnaudit.erasure.engine import AuditPlan
from attnaudit.erasure.input_level import (
    CurveKind,
    document_steps,
    input_curve,
    input_curve_reference,
    step_schedule,
)
from attnaudit.erasure.interventions import erasure_curve, removal_order
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.results.summary import summarize
from attnaudit.train import train_run

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# --- step schedules ---------------------------------------------------------------------------------

def test_eraser_schedule_of_thirty_items_by_hand() -> None:
    # bins 1, 5, 10, 20, 50% -> 1, 2, 3, 6, 15; every 5% -> ceil(1.5 j): 2, 3, 5, 6, 8, ..., 29, 30
    # (0.1 * 30 is 3.0000000000000004 in floats: the schedule must still hold 3, not 4)
    assert document_steps(30, "eraser") == [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21,
                                            23, 24, 26, 27, 29, 30]
    assert document_steps(1, "eraser") == [0, 1]
    assert document_steps(3, "every") == [0, 1, 2, 3]


def test_schedules_are_padded_by_repeating_each_rows_last_step() -> None:
    # n = 3: every bin and 5% step rounds up to 1, 2 or 3
    np.testing.assert_array_equal(step_schedule([1, 3], "eraser"), [[0, 1, 1, 1], [0, 1, 2, 3]])
    np.testing.assert_array_equal(step_schedule([2, 1], "every"), [[0, 1, 2], [0, 1, 1]])


# --- the erased inputs, by hand ---------------------------------------------------------------------

def _recorded_inputs(model: AttentionClassifier, batch: Batch, site: str, order: list[list[int]],
                     kind: CurveKind, mode: InputErasure) -> list[list[object]]:
    """The token ids (as lists without padding) the model saw: one row per scheduled step of the
    batch's single document, ordered as the model saw them."""
    seen: list[torch.Tensor] = []
    forward = model.forward

    def recording(erased: Batch) -> torch.Tensor:
        seen.append(erased.token_ids.clone())
        return forward(erased)

    with torch.no_grad():
        output = model.run(batch)
    with mock.patch.object(model, "forward", recording):
        input_curve(model, batch, output, site, torch.tensor(order), kind, mode, "every")
    rows: list[list[object]] = []
    for ids in seen:
        for row in ids:
            if row.dim() == 1:
                rows.append([t for t in row.tolist() if t != PAD_ID])
            else:
                rows.append([[t for t in s if t != PAD_ID] for s in row.tolist()
                             if any(t != PAD_ID for t in s)])
    return rows


def test_flat_delete_and_unk_inputs_by_hand() -> None:
    model = random_model("flan-rnn", seed=0)
    batch = Batch(["d"], torch.tensor([[5, 6, 7]]), torch.tensor([0]))
    order = [[1, 2, 0]]  # remove 6, then 7, then 5
    deleted = _recorded_inputs(model, batch, "token", order, "remove", "delete")
    assert sorted(deleted, key=len, reverse=True) == [[5, 6, 7], [5, 7], [5], []]
    kept = _recorded_inputs(model, batch, "token", order, "keep", "delete")
    assert sorted(kept, key=len) == [[], [6], [6, 7], [5, 6, 7]]
    masked = _recorded_inputs(model, batch, "token", order, "remove", "unk")
    assert sorted(masked) == sorted([[5, 6, 7], [5, UNK_ID, 7], [5, UNK_ID, UNK_ID],
                                     [UNK_ID, UNK_ID, UNK_ID]])


def test_hierarchical_delete_drops_emptied_sentences_by_hand() -> None:
    model = random_model("han-none", seed=0)
    ids = torch.tensor([[[5, 6, 0], [7, 0, 0], [8, 9, 10]]])
    batch = Batch(["d"], ids, torch.tensor([0]))
    # sentence site: removing sentence 1, then 0, then 2; the later sentences move up
    seen = _recorded_inputs(model, batch, "sentence", [[1, 0, 2]], "remove", "delete")
    assert sorted(seen, key=len, reverse=True) == [
        [[5, 6], [7], [8, 9, 10]], [[5, 6], [8, 9, 10]], [[8, 9, 10]], []]
    # word site: the anchor sentence (most attended) loses its words, last first, then disappears;
    # the other sentences stay as they are
    with torch.no_grad():
        anchor = int(model.run(batch).site("word").anchor[0])
    real = [[t for t in s if t != PAD_ID] for s in ids[0].tolist()]
    words = real[anchor]
    expected = []
    for k in range(len(words) + 1):
        left = words[: len(words) - k]
        expected.append([left if i == anchor else s for i, s in enumerate(real)
                         if i != anchor or left])
    order = [list(range(len(words)))[::-1] + list(range(len(words), 3))]  # padding last
    seen = _recorded_inputs(model, batch, "word", order, "remove", "delete")
    assert sorted(seen, key=str) == sorted(expected, key=str)


# --- batched == reference, batch invariance, chunking ---------------------------------------------

def _setup(name: str, site: str, seed: int, n_docs: int) -> tuple[
    AttentionClassifier, list[EncodedDocument], Batch, torch.Tensor, ModelOutput
]:
    model = random_model(name, seed=seed)
    docs = random_docs(n_docs, seed=seed, max_sentences=4, max_words=5)
    batch = collate(docs, hierarchical=model.hierarchical)
    with torch.no_grad():
        output = model.run(batch)
    out = output.site(site)
    scores = torch.from_numpy(np.random.default_rng(seed).random(out.mask.shape))
    return model, docs, batch, removal_order(scores, out.mask), output


@settings(max_examples=12, deadline=None)
@given(case=st.sampled_from(SITE_CASES), seed=st.integers(0, 10_000),
       mode=st.sampled_from(["delete", "unk"]), kind=st.sampled_from(["remove", "keep"]),
       steps=st.sampled_from(["every", "eraser"]))
def test_batched_curves_equal_the_one_document_reference(
    case: tuple[str, str], seed: int, mode: InputErasure, kind: CurveKind, steps: InputSteps
) -> None:
    name, site = case
    model, docs, batch, order, output = _setup(name, site, seed, 3)
    logits, schedule = input_curve(model, batch, output, site, order, kind, mode, steps,
                                   max_cells=40)
    out = output.site(site)
    for b, doc in enumerate(docs):
        n = int(out.mask[b].sum())
        row = schedule[b].tolist()
        assert row[0] == 0 and row[-1] == n and row == sorted(row)
        expected = input_curve_reference(
            model, doc, site, order[b, :n].tolist(), kind, mode, row,
            anchor=int(out.anchor[b]),
        )
        torch.testing.assert_close(logits[b], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("name", "site"), SITE_CASES)
def test_a_document_alone_equals_it_inside_a_batch(name: str, site: str) -> None:
    model, docs, batch, order, output = _setup(name, site, 7, 4)
    kinds: tuple[CurveKind, ...] = ("remove", "keep")
    for kind in kinds:
        together, _ = input_curve(model, batch, output, site, order, kind, "delete", "every")
        in_small_chunks, _ = input_curve(model, batch, output, site, order, kind, "delete",
                                         "every", max_cells=1)
        torch.testing.assert_close(in_small_chunks, together, rtol=1e-9, atol=1e-9)
        for b in range(len(docs)):
            single = collate([docs[b]], hierarchical=model.hierarchical)
            with torch.no_grad():
                single_output = model.run(single)
            n = int(single_output.site(site).mask.sum())
            alone, _ = input_curve(model, single, single_output, site, order[b : b + 1, :n],
                                   kind, "delete", "every")
            torch.testing.assert_close(alone[0], together[b, : n + 1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_the_empty_document_gives_the_head_bias_as_attention_level_erasure_does(name: str) -> None:
    """Deleting every item at the pooling site leaves the empty document: zero states, zero context,
    the head's bias: the attention-level curve's "all erased" point."""
    model = random_model(name, seed=3)
    site = model.pooling_site
    _, _, batch, order, output = _setup(name, site, 3, 3)
    if model.linear_readout(output, site) is None:
        pytest.skip(f"{name}'s empty document is [CLS][SEP], not a pooling with nothing to pool")
    lengths = output.site(site).mask.sum(1)
    logits, schedule = input_curve(model, batch, output, site, order, "remove", "delete", "eraser")
    last = logits[torch.arange(len(lengths)), (schedule < lengths[:, None]).sum(1)]  # k = n
    bias = model.classifier.bias.detach().expand_as(last)
    torch.testing.assert_close(last, bias, rtol=0, atol=1e-12)
    with torch.no_grad():
        attention = erasure_curve(model, output, site, order, "remove")
    torch.testing.assert_close(attention[torch.arange(len(lengths)), lengths], bias,
                               rtol=0, atol=1e-12)
    # keeping nothing is the same empty document
    kept, _ = input_curve(model, batch, output, site, order, "keep", "delete", "eraser")
    torch.testing.assert_close(kept[:, 0], bias, rtol=0, atol=1e-12)


# --- the audit's input rows -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["flan-cnn", "han-rnn"])
def test_an_audit_with_input_erasure_adds_input_rows_for_every_site_and_ranking(name: str) -> None:
    model = random_model(name, seed=5, dtype=torch.float32)
    docs = random_docs(7, seed=5)
    rankings = ("random", "attention", "gradient")
    plan = AuditPlan(sites=model.site_names(), rankings=rankings,
                     erasure=("attention", "input"), input_erasure="unk", input_steps="eraser")
    removal = audit_documents(model, docs, LABELS, plan, batch_size=3).removal
    assert set(removal["erasure"]) == {"attention", "input"}
    for level in ("attention", "input"):
        rows = removal[removal["erasure"] == level]
        assert sorted(set(zip(rows["site"], rows["ranking"], strict=True))) == sorted(
            (s, r) for s in model.site_names() for r in rankings)
        assert len(rows) == len(docs) * len(model.site_names()) * len(rankings)
    inputs = removal[removal["erasure"] == "input"]
    flipped = inputs[~inputs["never_flipped"]]
    assert (flipped["removed_at_flip"] >= 1).all()
    assert (flipped["removed_at_flip"] <= flipped["n_items"]).all()
    # batch size does not change the input rows
    again = audit_documents(model, docs, LABELS, plan, batch_size=7).removal
    np.testing.assert_array_equal(again["removed_at_flip"].to_numpy(),
                                  removal["removed_at_flip"].to_numpy())
    attention_only = audit_documents(model, docs, LABELS, AuditPlan(
        sites=model.site_names(), rankings=rankings), batch_size=3).removal
    assert set(attention_only["erasure"]) == {"attention"}


# --- summaries and the command line -----------------------------------------------------------------

def test_summaries_read_attention_rows_and_add_an_input_entry_per_site() -> None:
    model = random_model("han-rnn", seed=2, dtype=torch.float32)
    docs = random_docs(6, seed=2)
    plan = AuditPlan(sites=model.site_names(), rankings=("random", "attention"),
                     erasure=("attention", "input"), input_erasure="delete", input_steps="every")
    frames = audit_documents(model, docs, LABELS, plan, batch_size=4)
    def summary(removal: pd.DataFrame) -> dict[str, Any]:
        return summarize(frames.single_weight, removal, model="m", rankings_meta={},
                         sites_meta={})

    both = summary(frames.removal)
    attention = frames.removal[frames.removal["erasure"] == "attention"]
    inputs = frames.removal[frames.removal["erasure"] == "input"]
    # an audit saved before input-level erasure: no erasure column, every row an attention row
    old = summary(attention.drop(columns="erasure"))
    for site in model.site_names():
        entry = both["by_site"][site].pop("input")
        assert entry["erasure"] == "delete" and entry["steps"] == "every"
        assert set(entry["removal"]) == {"random", "attention"}
        conventions = both["by_site"][site]["conventions"]
        assert "(delete)" in conventions.pop("input_erasure")
        # the input entry is the attention-level summary of the input rows
        rows = inputs[inputs["site"] == site]
        alone = summary(rows.assign(erasure="attention"))
        assert entry["removal"]["attention"]["median_fraction"] == \
            alone["by_site"][site]["removal"]["attention"]["median_fraction"]
        assert entry["flip_curve"] == alone["by_site"][site]["flip_curve"]
    assert both == old


def test_the_audit_command_with_input_erasure(tmp_path: Path) -> None:
    """``attnaudit audit RUN --erasure attention,input`` on a tiny trained HAN run."""
    data = write_dataset(tmp_path / "tiny.jsonl", n=60)
    run = tmp_path / "han-none"
    config = RunConfig(data=DataConfig(path=str(data), dev_fraction=0.2, test_fraction=0.2),
                       model=ModelConfig(kind="han", encoder="none", embedding_dim=8, hidden=4),
                       train=TrainConfig(epochs=1, threads=1, batch_size=16))
    train_run(config, run, progress=False)
    before = torch.get_num_threads()
    try:
        assert main(["audit", str(run), "--erasure", "attention,input", "--input-erasure", "unk",
                     "--rankings", "random,attention", "--bootstrap", "0", "--no-progress"]) == 0
    finally:
        torch.set_num_threads(before)
    removal = pd.read_parquet(run / AUDIT_DIR / "removal.parquet")
    inputs = removal[removal["erasure"] == "input"]
    assert sorted(set(zip(inputs["site"], inputs["ranking"], strict=True))) == [
        ("sentence", "attention"), ("sentence", "random"), ("word", "attention"), ("word", "random")]
    assert set(inputs["erasure_mode"]) == {"unk"} and set(inputs["erasure_steps"]) == {"eraser"}
    summary = json.loads((run / AUDIT_DIR / "summary.json").read_text())
    for site in ("sentence", "word"):
        assert summary["by_site"][site]["input"]["erasure"] == "unk"
        assert summary["by_site"][site]["input"]["steps"] == "eraser"
