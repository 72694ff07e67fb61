"""The memory budget (``--max-memory``) and decisions below the logits' resolution.

Chunked recomputation equal to one call on every model is tested in test_conformance.py
(``test_batched_path_chunked_to_a_memory_budget_*``); here: the setting, the call sizes, Test 1
through the budget, and the resolution rule on logits of each CPU dtype.
"""

from __future__ import annotations

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
    for bad, expected in [("lots", "no amount of memory"), ("10kb", "below 1 MB")]:
        with pytest.raises(DataError, match=expected):
            AuditConfig.from_dict({"max_memory": bad})


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
