"""A memory budget for the recomputations: ``logits_with`` calls sized so their work fits.

Every erasure curve, Test 1's removals and the counterfactual candidates hand a model ``(B, k, n)``
candidate weight vectors; a transformer recomputes one sequence per candidate through every layer
above the site, so the call's working memory is ``B x k`` times one sequence's (MiniLM, 256
positions: about 10 MB each). 40 reviews x 25 eraser steps at ``L2`` took 7.1 GB in one call.
:func:`bounded_logits_with` cuts the documents and the candidates into calls of at most
:func:`candidates_per_call` candidates, from the model's own estimate of one candidate's bytes
(``AttentionClassifier.recompute_bytes``) and the budget (``--max-memory``, :func:`memory_budget`).

Each candidate is recomputed on its own row whatever the call's shape (candidates never mix), so
the chunked result equals the unchunked one (tested: tests/test_memory_budget.py).

The other heavy steps take the same budget, sized from the same estimate: whole forward passes
(input-level erasure's erased documents, captum's perturbations) by :func:`rows_per_pass`, one
document's full pass costing its layer-recompute estimate (every layer runs in turn, so the
working memory is one layer's); passes with a backward (the gradient rankings, integrated
gradients, the adversarial search's gradient ascent) by :func:`backward_factor` times that, as
backward keeps every layer's activations. None of them mixes documents or candidates, so their
results do not depend on the chunking either (tests/test_memory_budget.py).

The budget is a process setting like the thread count (it changes no result), so it is held in a
context variable set around the audit rather than passed through every function of the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput

#: ``--max-memory`` default: what a laptop or a small CI runner spares for an audit
DEFAULT_MAX_MEMORY = 2 * 1024**3
#: Share of the budget one recompute call may use. The rest holds the process itself (Python,
#: torch and transformers, about 0.5 GB), the model's weights, the batch's caches and the tables;
#: measured on MiniLM (benchmarks/audit_memory.py): peak RSS below the budget with this share.
WORK_SHARE = 0.5

_BUDGET: ContextVar[int] = ContextVar("attnaudit_max_memory", default=DEFAULT_MAX_MEMORY)


def backward_factor(model: AttentionClassifier) -> int:
    """How many times one candidate's working memory a pass with a backward keeps: twice per
    layer (each layer's activations, and their gradients); a model without layers: 2."""
    return 2 * int(getattr(model, "num_layers", 1) or 1)


def pass_bytes(model: AttentionClassifier, output: ModelOutput) -> int:
    """Working memory of one document's whole forward pass (an estimate): the largest of the
    model's per-candidate recompute estimates over the sites ``output`` computed, and a
    whole-sequence one where the model has it (a transformer's [CLS]-row-only estimate of its
    last layer is far below a whole pass)."""
    estimate = getattr(model, "recompute_bytes", None)
    sequence = getattr(model, "sequence_bytes", None)
    sizes = [int(estimate(output, site)) for site in output.sites] if callable(estimate) else []
    if callable(sequence):
        sizes.append(int(sequence(output)))
    if not sizes:
        sizes = [16 * int(out.attention.shape[1]) for out in output.sites.values()] or [1]
    return max(1, *sizes)


def rows_per_pass(model: AttentionClassifier, output: ModelOutput, *,
                  backward: bool = False) -> int:
    """How many documents (or perturbed copies of one) one forward pass may take within the
    budget; with ``backward``, a pass whose gradient is taken."""
    per = pass_bytes(model, output) * (backward_factor(model) if backward else 1)
    return max(1, int(_BUDGET.get() * WORK_SHARE) // per)


@contextlib.contextmanager
def memory_budget(max_bytes: int | None) -> Iterator[None]:
    """Within the block, recomputations fit ``max_bytes`` (None: :data:`DEFAULT_MAX_MEMORY`)."""
    token = _BUDGET.set(DEFAULT_MAX_MEMORY if max_bytes is None else int(max_bytes))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def candidates_per_call(model: AttentionClassifier, output: ModelOutput, site: str) -> int:
    """How many candidates (documents x weight vectors) one ``logits_with`` call may take."""
    # Anything with a logits_with is accepted (tests hand in bare modules): without an estimate,
    # one candidate's weights and logits, which is all a linear head recomputes.
    estimate = getattr(model, "recompute_bytes", None)
    per = max(1, int(estimate(output, site)) if callable(estimate)
              else 16 * int(output.site(site).attention.shape[1]))
    return max(1, int(_BUDGET.get() * WORK_SHARE) // per)


def bounded_logits_with(
    model: AttentionClassifier, output: ModelOutput, site: str, weights: torch.Tensor
) -> torch.Tensor:
    """``model.logits_with(output, site, weights)`` ``(B, k, C)`` in calls that fit the budget.

    Args:
        weights: ``(B, k, n)`` candidate weights.
    Returns:
        ``(B, k, C)`` logits, equal to one call's.
    """
    b, k, _ = weights.shape
    cap = candidates_per_call(model, output, site)
    if b * k <= cap:
        return model.logits_with(output, site, weights)
    docs = min(b, cap)  # documents per call; each with `steps` candidates
    steps = max(1, cap // docs)
    parts = []
    for start in range(0, b, docs):
        stop = min(b, start + docs)
        part = output if (start, stop) == (0, b) else output.index(list(range(start, stop)))
        parts.append(torch.cat([model.logits_with(part, site, weights[start:stop, s : s + steps])
                                for s in range(0, k, steps)], dim=1))
    return torch.cat(parts, dim=0)
