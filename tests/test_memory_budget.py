"""The memory budget (``--max-memory``) and decisions below the logits' resolution.

Chunked recomputation equal to one call on every model is tested in test_conformance.py
(``test_batched_path_chunked_to_a_memory_budget_*``); here: the setting, the call sizes, Test 1
through the budget, and the resolution rule on logits of each CPU dtype.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_fixtures import random_pass

from attnaudit.config import AuditConfig
from attnaudit.erasure.interventions import resolved_decisions
from attnaudit.erasure.memory import (
    DEFAULT_MAX_MEMORY,
    WORK_SHARE,
    bounded_logits_with,
    candidates_per_call,
    memory_budget,
)
from attnaudit.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_max_memory_setting_reads_units_and_refuses_nonsense_in_one_line() -> None:
    assert AuditConfig().max_memory is None
    assert AuditConfig(max_memory="2GB").max_memory == 2 * 1000**3
    assert AuditConfig(max_memory="1.5GiB").max_memory == int(1.5 * 1024**3)
    assert AuditConfig(max_memory=" 512 mb").max_memory == 512 * 1000**2
    assert AuditConfig(max_memory="2gib").max_memory == DEFAULT_MAX_MEMORY  # the default, exactly
    assert AuditConfig(max_memory="3000000B").max_memory == 3 * 1000**2
    assert AuditConfig(max_memory="2048KiB").max_memory == 2 * 1024**2
    assert AuditConfig(max_memory=2 * 1024**3).max_memory == DEFAULT_MAX_MEMORY  # run.json's int
    # a bare number or one letter is ambiguous (is "2G" 2e9 or 2^31 bytes?): refused
    for bad, expected in [("lots", "no amount of memory"), ("10kb", "below 1 MB"),
                          ("2G", "no amount of memory"), ("2048", "no amount of memory"),
                          ("2 TB", "no amount of memory"), ("-2GB", "no amount of memory")]:
        with pytest.raises(DataError, match=expected):
            AuditConfig.from_dict({"max_memory": bad})


@pytest.mark.parametrize("bad", ["2G", "2048", "2 gigs"])
def test_a_bad_max_memory_option_is_one_line_naming_the_option_and_the_forms(
        bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    from attnaudit.cli import main

    assert main(["audit", "--hf-model", "m", "--data", "d", "--max-memory", bad]) == 2
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and "--max-memory" in lines[0] and "KiB, MiB, GiB" in lines[0]


def test_the_default_is_stated_as_2_gib(capsys: pytest.CaptureFixture[str]) -> None:
    from attnaudit.cli import main

    assert DEFAULT_MAX_MEMORY == 2 * 1024**3
    assert main(["audit", "--help"]) == 0
    assert "(default 2 GiB)" in " ".join(capsys.readouterr().out.split())


def test_calls_are_sized_to_the_budget_and_give_one_calls_logits() -> None:
    # hf at its lower layer recomputes whole sequences: the expensive case the budget is for
    model, _, output = random_pass("hf", seed=3, lengths=[9, 4, 7])
    site = "L0"
    per = model.recompute_bytes(output, site)
    weights = torch.rand(3, 5, output.site(site).attention.shape[1], dtype=output.logits.dtype,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model.logits_with(output, site, weights)
        calls: list[tuple[int, ...]] = []
        real = model.logits_with

        def spy(out, s, w):  # type: ignore[no-untyped-def]
            calls.append(tuple(w.shape[:2]))
            return real(out, s, w)

        model.logits_with = spy  # type: ignore[method-assign]
        with memory_budget(int(4 * per / WORK_SHARE) + 1):
            assert candidates_per_call(model, output, site) == 4
            chunked = bounded_logits_with(model, output, site, weights)
        del model.logits_with
    assert max(b * k for b, k in calls) <= 4 and sum(b * k for b, k in calls) == 15
    # float64 model: only the summation blocking differs between call shapes
    torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-12)
    with memory_budget(None):
        assert candidates_per_call(model, output, site) == int(DEFAULT_MAX_MEMORY * WORK_SHARE) // per


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_change_of_decision_below_the_dtypes_resolution_is_flagged_not_a_flip(
        dtype: torch.dtype) -> None:
    eps = torch.finfo(dtype).eps
    base = torch.tensor(4.0, dtype=dtype)
    above = base + 4 * eps * 4.0  # four units in the last place above: resolvable
    # step 0: unchanged; 1: tie (argmax picks class 0, a "flip" by rounding); 2: class 0 one ulp
    # above class 1 (unresolved); 3: class 0 clearly above (a flip)
    curve = torch.stack([torch.stack([base - 1, base]), torch.stack([base, base]),
                         torch.stack([base.nextafter(torch.tensor(9.0, dtype=dtype)), base]),
                         torch.stack([above, base])])[None]  # (1, 4, 2)
    decisions, unresolved = resolved_decisions(curve, torch.tensor([1]))
    assert decisions.tolist() == [[1, 1, 1, 0]] and unresolved.tolist() == [2]


def test_the_decision_gradient_in_document_groups_equals_one_pass() -> None:
    from attnaudit.rankings.gradient import _decision_gradient

    model, _, output = random_pass("hf", seed=5, lengths=[9, 4, 7, 2])
    whole = _decision_gradient(model, output, "L0", "probability")
    per = model.recompute_bytes(output, "L0")
    with memory_budget(int(2 * model.num_layers * per / WORK_SHARE) + 1):  # one document a group
        grouped = _decision_gradient(model, output, "L0", "probability")
    torch.testing.assert_close(grouped, whole, rtol=1e-10, atol=1e-12)  # float64: blocking only


def test_the_budget_is_saved_only_when_given() -> None:
    assert "max_memory" not in AuditConfig().to_dict()  # run.json as before the setting
    assert AuditConfig(max_memory="1GB").to_dict()["max_memory"] == 1000**3


@pytest.mark.full
@pytest.mark.parametrize("name", ["hf", "flan-rnn"])
def test_the_heavy_steps_give_the_same_tables_whatever_the_budget(name: str) -> None:
    """Input erasure, the gradient and captum rankings and the adversarial search's gradient
    ascent, all cut to one document (or one perturbation) per pass by a 1-byte budget, give the
    tables of a budget too large to cut anything (float64 models: only the backend's blocking of
    sums differs; compared with the float32 policy's tolerances, tests/tolerances.py, which
    bound it many times over)."""
    from model_fixtures import LABELS, random_docs, random_model
    from tolerances import assert_tables_close, column_kind

    from attnaudit.erasure.audit import audit_documents
    from attnaudit.erasure.engine import AuditPlan

    model = random_model(name, seed=4)
    docs = random_docs(4, seed=4, max_sentences=2, max_words=6)
    site = "L0" if name == "hf" else "token"
    plan = AuditPlan(sites=(site,), rankings=("random", "attention", "gradient",
                                              "integrated_gradients", "occlusion", "lime"),
                     erasure=("attention", "input"), input_steps="every", attribution_steps=8,
                     attribution_samples=20, permutations=3, seed=1,
                     query_rows="all" if name == "hf" else None)
    rows: dict[str, list[int]] = {"logits_with": [], "logits_from_embeddings": []}

    def spy(real: Any, seen: list[int]) -> Any:
        def call(output: Any, *args: Any) -> Any:
            seen.append(int(output.logits.shape[0] if hasattr(output, "logits")
                            else len(output.doc_ids)))
            return real(output, *args)
        return call

    for method in rows:  # spies: the documents of every call of the recomputing methods
        setattr(model, method, spy(getattr(model, method), rows[method]))
    tables = []
    for budget in (1, 1000**4):
        for seen in rows.values():
            seen.clear()
        tables.append(audit_documents(model, docs, LABELS, plan, batch_size=4,
                                      max_memory=budget))
        # the tiny budget cuts every call to one document (or copy); the large one takes many
        largest = {max(seen) for seen in rows.values()}
        assert largest == {1} if budget == 1 else min(largest) >= 4, rows
    for table in ("single_weight", "removal"):
        assert_tables_close(getattr(tables[0], table), getattr(tables[1], table), obj=table)
    # The items' ranking scores (gradients, attributions) have no float32 kind of their own; on
    # these float64 models a pass's grouping moves them by the backend's blocking of sums alone
    # (~1e-15 of their size, sizes below 1e2 here), which the measure tolerance (probabilities,
    # 2 x PROBABILITY_ATOL) bounds by orders of magnitude; the random ranking's seeded scores and
    # every rank are compared exactly.
    assert_tables_close(tables[0].items, tables[1].items, obj="items",
                        kind_of=lambda c: "exact" if c == "score_random" else
                        "measure" if c.startswith("score_") else column_kind(c))
