"""Attention-level erasure curves on a step schedule (``AuditPlan.attention_steps``): every path's
scheduled curve is the every-step curve's scheduled columns, the batched path recomputes only the
scheduled candidates, the naive reference agrees, and the audit labels and measures the rows so."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import LABELS, random_docs, random_model, random_pass

from attnaudit.config import InputSteps
from attnaudit.data.batching import make_batches
from attnaudit.data.types import EncodedDocument
from attnaudit.erasure.audit import audit_documents
from attnaudit.erasure.engine import (
    AuditPlan,
    _curve_arrays,
    _measure_columns,
    attention_schedule,
    rank_site,
)
from attnaudit.erasure.input_level import document_steps, step_schedule
from attnaudit.erasure.interventions import (
    CurveKind,
    batched_curve,
    erased_weights,
    erasure_curve,
    linear_curve,
    naive_curve,
    removal_order,
)
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.results.summary import summarize

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py

KINDS: tuple[CurveKind, ...] = ("remove", "keep")
#: the fast path (flan, HAN's sentence site, hf-attnpool's pool) and the batched one (HAN's word
#: site, a transformer's first layer of two, all heads and one head: the layer above recomputed)
CASES = [("flan-rnn", "token"), ("han-rnn", "sentence"), ("han-rnn", "word"), ("hf", "L0"),
         ("hf-attnpool", "L0.h1"), ("hf-attnpool", "pool")]
#: lengths up to 45 items: the "eraser" schedule skips steps only beyond 20 items
LENGTHS = st.lists(st.integers(1, 45), min_size=1, max_size=3)


def _close(actual: torch.Tensor, expected: torch.Tensor, msg: str | None = None) -> None:
    """Equal up to float64 rounding (a model call on K candidates, not n + 1, may sum otherwise)."""
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12, msg=msg)


def _setup(name: str, site: str, seed: int, lengths: list[int]
           ) -> tuple[AttentionClassifier, ModelOutput, torch.Tensor]:
    """A random float64 model's pass over a random batch and a random removal order at ``site``."""
    model, _, output = random_pass(name, seed=seed, lengths=lengths)
    mask = output.site(site).mask
    scores = torch.from_numpy(np.random.default_rng(seed).random(tuple(mask.shape)))
    return model, output, removal_order(scores, mask)


def _schedule(output: ModelOutput, site: str, steps: InputSteps) -> torch.Tensor:
    return torch.as_tensor(step_schedule(output.site(site).mask.sum(1).numpy(), steps))  # (B, K)


def _columns(curve: torch.Tensor, schedule: torch.Tensor) -> torch.Tensor:
    """``(B, n + 1, C)`` every-step curve -> ``(B, K, C)`` at the schedule's steps."""
    return curve.gather(1, schedule[:, :, None].expand(-1, -1, curve.shape[2]))


@pytest.mark.parametrize(("name", "site"), CASES)
@settings(max_examples=3, deadline=None)
@given(lengths=LENGTHS, seed=st.integers(0, 10_000), steps=st.sampled_from(["eraser", "every"]))
def test_scheduled_curves_are_the_every_step_curves_columns(
    name: str, site: str, lengths: list[int], seed: int, steps: InputSteps
) -> None:
    model, output, order = _setup(name, site, seed, lengths)
    schedule = _schedule(output, site, steps)
    batched = model.linear_readout(output, site) is None
    for kind in KINDS:
        with torch.no_grad():
            every = erasure_curve(model, output, site, order, kind)  # (B, n+1, C)
            with mock.patch.object(model, "logits_with", wraps=model.logits_with) as spy:
                scheduled = erasure_curve(model, output, site, order, kind, steps=schedule)
        assert scheduled.shape == (len(lengths), schedule.shape[1], every.shape[2])
        _close(scheduled, _columns(every, schedule), msg=f"{steps} {kind}")
        # the batched path builds and recomputes the K scheduled candidates only, not n + 1
        recomputed = sum(call.args[2].shape[1] for call in spy.call_args_list)
        assert recomputed == (schedule.shape[1] if batched else 0)


def test_a_long_document_is_cut_to_its_schedule_at_a_transformers_first_layer() -> None:
    """The case the schedule is for: the layer above recomputed per step, 46 steps -> 22."""
    model, output, order = _setup("hf", "L0", seed=3, lengths=[45, 2])
    assert model.linear_readout(output, "L0") is None  # the batched path
    schedule = _schedule(output, "L0", "eraser")
    assert schedule[0].tolist() == document_steps(45, "eraser") and schedule.shape[1] == 22
    assert schedule[1].tolist() == [0, 1, 2] + [2] * (schedule.shape[1] - 3)  # padded: last step
    with torch.no_grad():
        every = batched_curve(model, output, "L0", order, "remove")
        scheduled = batched_curve(model, output, "L0", order, "remove", schedule)
    _close(scheduled, _columns(every, schedule))
    # step k erases the first k ranked items and renormalises the rest (k = 0: the weights as they
    # are); column j of a row is step schedule[b, j]
    weights = output.site("L0").attention
    candidates = erased_weights(weights, order, "remove", schedule)  # (B, K, n)
    for j, k in enumerate(schedule[0].tolist()):
        assert int((candidates[0, j] > 0).sum()) == 45 - k
        assert torch.all(candidates[0, j, order[0, :k]] == 0)


def test_without_a_schedule_the_candidates_are_every_steps_bit_for_bit() -> None:
    """The default is today's code path; an explicit every-step schedule gives the same tensor."""
    _, output, order = _setup("flan-rnn", "token", seed=4, lengths=[6, 3])
    weights = output.site("token").attention
    n = weights.shape[1]
    every = torch.arange(n + 1).expand(len(weights), -1)  # (B, n+1): k = 0..n on every row
    for kind in KINDS:
        assert torch.equal(erased_weights(weights, order, kind, every),
                           erased_weights(weights, order, kind))


@pytest.mark.parametrize(("name", "site"), CASES)
@settings(max_examples=2, deadline=None)
@given(lengths=LENGTHS, seed=st.integers(0, 10_000))
def test_the_naive_reference_on_a_schedule_equals_the_fast_and_batched_paths(
    name: str, site: str, lengths: list[int], seed: int
) -> None:
    model, output, order = _setup(name, site, seed, lengths)
    schedule = _schedule(output, site, "eraser")
    for kind in KINDS:
        with torch.no_grad():
            naive = naive_curve(model, output, site, order, kind, schedule)
            assert naive.shape[:2] == schedule.shape
            _close(erasure_curve(model, output, site, order, kind, path="naive", steps=schedule),
                   naive)
            _close(batched_curve(model, output, site, order, kind, schedule), naive, msg=kind)
            fast = linear_curve(model, output, site, order, kind, schedule)
            if fast is not None:
                _close(fast, naive, msg=kind)
            _close(erasure_curve(model, output, site, order, kind, steps=schedule), naive)


# --- the audit --------------------------------------------------------------------------------------

#: documents long enough at each site for the "eraser" schedule to skip steps (over 20 items), and
#: seeds under which some first flip falls between two scheduled steps
AUDITS = [("flan-rnn", ("token",), 8, {"max_sentences": 8, "max_words": 7}),
          ("han-rnn", ("sentence", "word"), 12, {"max_sentences": 28, "max_words": 2}),
          ("hf", ("L0",), 8, {"max_sentences": 8, "max_words": 7})]
RANKINGS = ("random", "attention", "gradient")


def _expected_columns(model: AttentionClassifier, docs: list[EncodedDocument], plan: AuditPlan
                      ) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(site, ranking, doc_id) -> every measure's value from the every-step curves subsampled at the
    plan's schedule: what the audit's scheduled rows must hold."""
    (batch,) = make_batches(docs, hierarchical=model.hierarchical, batch_size=len(docs))
    with torch.no_grad():
        output = model.run(batch, plan.sites)
    predicted = output.logits.argmax(-1)
    base_prob = torch.softmax(output.logits.double(), -1).gather(1, predicted[:, None])[:, 0]
    expected: dict[tuple[str, str, str], dict[str, Any]] = {}
    for site in plan.sites:
        out = output.site(site)
        lengths = out.mask.sum(1)
        schedule = attention_schedule(lengths, plan.attention_steps)
        assert schedule is not None
        for ranking, scores in rank_site(model, output, site, batch.doc_ids, plan).items():
            order = removal_order(scores, out.mask)
            with torch.no_grad():
                curves = {kind: _columns(erasure_curve(model, output, site, order, kind), schedule)
                          for kind in KINDS}
            arrays = _curve_arrays(curves, predicted, base_prob, out.attention.gather(1, order),
                                   lengths, probabilities=True, steps=schedule)
            for column, values in _measure_columns(arrays, plan).items():
                for b, doc_id in enumerate(batch.doc_ids):
                    expected.setdefault((site, ranking, doc_id), {})[column] = values[b]
    return expected


@pytest.mark.parametrize(("name", "sites", "seed", "shape"), AUDITS, ids=[a[0] for a in AUDITS])
def test_an_audit_on_the_eraser_schedule_measures_the_subsampled_curves(
    name: str, sites: tuple[str, ...], seed: int, shape: dict[str, int]
) -> None:
    model = random_model(name, seed=seed)
    docs = random_docs(6, seed=seed, **shape)
    plan = AuditPlan(sites=sites, rankings=RANKINGS, seed=seed, attention_steps="eraser")
    every_plan = AuditPlan(sites=sites, rankings=RANKINGS, seed=seed)
    scheduled = audit_documents(model, docs, LABELS, plan, batch_size=len(docs)).removal
    every = audit_documents(model, docs, LABELS, every_plan, batch_size=len(docs)).removal
    assert set(scheduled["erasure_steps"]) == {"eraser"} and set(every["erasure_steps"]) == {"every"}
    assert set(scheduled["erasure"]) == {"attention"}
    assert list(scheduled.columns) == list(every.columns)
    assert scheduled["n_items"].max() > 20  # the schedule skips steps somewhere

    # every measure column: the every-step curves' values at the scheduled steps
    expected = _expected_columns(model, docs, plan)
    for row in scheduled.to_dict("records"):
        want = expected[(row["site"], row["ranking"], row["doc_id"])]
        for column, value in want.items():
            np.testing.assert_allclose(np.float64(row[column]), np.float64(value), rtol=1e-9,
                                       atol=1e-12, err_msg=f"{column} {row['doc_id']}")

    # against the exact audit: the first scheduled flip is a scheduled step at or after the true
    # first flip, and equals it when that step is scheduled; ERASER's bins and step 1 are scheduled
    keys = ["site", "ranking", "doc_id"]
    both = scheduled.merge(every, on=keys, suffixes=("", "_every"), validate="one_to_one")
    k = both["removed_at_flip"].fillna(np.inf).to_numpy()
    k_every = both["removed_at_flip_every"].fillna(np.inf).to_numpy()
    scheduled_steps = [set(document_steps(int(n), "eraser")) for n in both["n_items"]]
    assert (k >= k_every).all()
    assert all(np.isinf(a) or int(a) in steps for a, steps in zip(k, scheduled_steps, strict=True))
    on_schedule = np.asarray([np.isinf(a) or int(a) in s
                              for a, s in zip(k_every, scheduled_steps, strict=True)])
    np.testing.assert_array_equal(k[on_schedule], k_every[on_schedule])
    assert (k > k_every).any()  # some first flip falls between scheduled steps (these seeds)
    for column in ("flip_top", "cannot_flip", "comp_05", "comp_50", "suff_00", "suff_20",
                   "aopc_comprehensiveness", "aopc_sufficiency_without_zero"):
        np.testing.assert_allclose(both[column].to_numpy(np.float64),
                                   both[f"{column}_every"].to_numpy(np.float64),
                                   rtol=1e-9, atol=1e-12, err_msg=column)


def test_the_summary_names_an_attention_schedule_and_only_then() -> None:
    model = random_model("flan-cnn", seed=9, dtype=torch.float32)
    docs = random_docs(5, seed=9)

    def conventions(steps: InputSteps) -> dict[str, str]:
        plan = AuditPlan(sites=("token",), rankings=("random", "attention"), attention_steps=steps)
        frames = audit_documents(model, docs, LABELS, plan, batch_size=5)
        summary = summarize(frames.single_weight, frames.removal, model="m", rankings_meta={},
                            sites_meta={})
        return dict(summary["by_site"]["token"]["conventions"])

    assert "attention_steps" not in conventions("every")
    assert "first scheduled step that flips" in conventions("eraser")["attention_steps"]


def test_an_every_step_plan_has_no_schedule() -> None:
    lengths = torch.tensor([3, 30])
    assert attention_schedule(lengths, "every") is None
    schedule = attention_schedule(lengths, "eraser")
    assert schedule is not None and schedule.dtype == torch.long
    np.testing.assert_array_equal(schedule.numpy(), step_schedule([3, 30], "eraser"))


def test_removal_rows_of_both_levels_name_their_own_schedules() -> None:
    model = random_model("flan-rnn", seed=2, dtype=torch.float32)
    docs = random_docs(4, seed=2)
    plan = AuditPlan(sites=("token",), rankings=("random",), erasure=("attention", "input"),
                     input_steps="every", attention_steps="eraser")
    removal = audit_documents(model, docs, LABELS, plan, batch_size=4).removal
    by_level = removal.groupby("erasure")["erasure_steps"].unique()
    assert by_level.map(list).to_dict() == {"attention": ["eraser"], "input": ["every"]}
