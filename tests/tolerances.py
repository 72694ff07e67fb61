"""The suite's float tolerances, each derived from the computation it covers (never picked to pass).

Why a policy: two paths through the same arithmetic (a chunked and a whole audit, a padded and a
tight batch, a document alone and in a batch, one process and two under torchrun, this CPU's
vector kernels and ``ATEN_CPU_CAPABILITY=default``) add the same terms in different orders, so
their float32 results differ in the last bits, by an amount the computation fixes. A tolerance
that is the wrong *shape* fails on another machine while a real bug of the same size passes: a
relative tolerance on a TVD of 6e-4 asks for 6e-10, far below the 1 ulp of 1 (1.2e-7) that the
probabilities it is made of carry (issue 19: 0.0006381625 vs 0.0006381639 failed ``rtol=1e-6``).

Units: ``EPS32 = 2**-23`` (float32 machine epsilon, 1 ulp of 1), ``u = EPS32 / 2`` (unit roundoff).

1. **Reductions.** A sum of ``d`` terms ``x_i`` rounds ``d - 1`` times; each rounding error is at
   most ``u`` times a partial sum, at most ``u * S`` with ``S = sum |x_i|``. Two summation orders
   (SIMD lanes, blocked BLAS, chunk boundaries) make different, effectively independent errors
   (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019: the probabilistic model of rounding), so their
   difference has a standard deviation of at most ``u * S * sqrt(d / 3) * sqrt(2)`` (uniform errors,
   variance ``(u S)**2 / 3`` each). We take ``Z = 6`` standard deviations (a false failure about
   once in 5e8 compared values) and round ``sqrt(2 / 3)`` up to 1: a reduction of length ``d``
   differs by at most ``Z * sqrt(d) * u * S``.
2. **Logits** end a chain of such reductions. Relative to the spread of a document's logits,
   ``max(1, max_j z_j - min_j z_j)``, the terms of the chain are larger by at most ``KAPPA = 4``
   (cancellation inside the last reduction, a common offset of the logits, earlier layers' errors
   carried through later ones: the layers of these models, tanh, softmax, GRU gates, layer norm,
   do not expand). Hence ``|dz| <= logit_k(d) * EPS32 * max(1, spread)`` with ``logit_k(d) = Z *
   KAPPA * sqrt(d) / 2`` (= 12 sqrt(d)), ``d`` the longest reduction of the model (its embedding
   or hidden width, a document's length, MiniLM's 1536-wide FFN). As an ``rtol`` plus an ``atol``
   of that size, ``|z|`` stands in for the spread (``|z| >= spread / 2`` for some logit).
3. **Probabilities** ``p = softmax(z)``: ``dp_i = p_i (dz_i - sum_j p_j dz_j)``, so ``|dp_i| <=
   2 p_i (1 - p_i) max_j |dz_j|``. For two classes ``p = sigma(g)``, ``g`` the logit gap (the
   spread), and ``sigma(g) (1 - sigma(g)) max(1, |g|) <= 1/4`` whatever ``g``: a large gap's
   larger error is flattened by the softmax. So ``|dp| <= 1/2 * logit_k(d) * EPS32``, plus the
   softmax's own rounding (exp, a sum of 2 terms, a division: ``4 u``): :func:`probability_atol`,
   ``(6 sqrt(d) + 2) EPS32``, 1.6e-5 for ``d = 512`` (the audited paper models: documents of up to
   500 items, 200-d embeddings). An absolute tolerance: the error is ulps *of 1* whatever ``p``.
   **Attention weights** are softmaxes over ``n`` items, ``|da_i| <= 2 a_i (1 - a_i) max |ds|``,
   and ``a (1 - a) max(1, spread)`` is no longer at most 1/4: with one dominant item against
   ``n - 1`` equal ones it reaches ``0.224 + ln(n - 1) / 4`` (the configuration we take as the
   worst; not proven over all score vectors), 1.78 for ``n = 512``. :func:`attention_atol`
   bounds a weight, or the difference of two weights (``delta_a``), by twice that:
   ``2 * (2 * 1.78 * logit_k(d) / 2 + 2) EPS32``, 1.2e-4 for ``d = n = 512``; the attention
   mass removed, a partial sum of weights, gets the same. The tiny random
   models' tests compare weights with :func:`logits` instead (their score spreads are below 2).
4. **Probability-scale measures** made of two probability vectors (TVD ``= 1/2 ||p - q||_1``,
   Jensen-Shannon in nats, whose derivative ``1/2 ln(2 p / (p + q))`` is at most ``ln 2 / 2`` in
   size where ``p >= q``; comprehensiveness/sufficiency, differences of two probabilities; their
   means, AOPC; ``delta_js``, a difference of two JS): at most the sum of the two
   probabilities' errors: ``MEASURE_ATOL = 2 * PROBABILITY_ATOL``.
5. **The adversarial search's results** (``adv_jsd``, ``adv_tvd``, ``adv_max_weight``) end an
   optimiser: Adam steps, then a 1-D search along a ray ``t`` from ``a``, a grid of ratio
   ``2**(1/4)`` and ``RAY_BISECTIONS`` (8) bisections. Two paths whose TVDs differ by rounding
   (4.) take the same feasibility decisions except within rounding of the constraint, and end
   within one final bisection interval of each other: ``t (2**(1/4) - 1) / 2**8 = 7.4e-4 t``, a
   relative move of the point on the ray, so ``OPTIMISER = rtol 7.4e-4`` plus ``MEASURE``'s atol.
   (Seen: ``ATEN_CPU_CAPABILITY=default`` moves ``adv_max_weight`` by 1.5e-5 on trained IMDB
   models, 125 EPS32, where one forward pass moves by at most 2 EPS32.) A decision within
   rounding of the constraint could move a result further: the suite's data have none.
   ``adv_vertex_jsd``, the JSD of ``a`` to the best feasible one-hot, is chosen by the same
   feasibility decisions and moves with ``a`` by at most ``ln 2 / 2`` per unit of a weight's
   error (3.), far inside ``OPTIMISER``: compared with it. ``adv_feasible_vertices`` (a count of
   those decisions) and ``adv_certified`` (a flag) are exact, as in 6.
6. **Fractions of items** ``k / n`` (``fraction_removed``, ``fraction_to_flip``, a flip step, an
   accuracy ``correct / total``) are ratios of integers divided once in float64, correctly
   rounded: the same ``k`` gives the same bits on every path, so they are compared **exactly**. A
   path that moves ``k`` moved a decision, which a rounding can only do within
   ``PROBABILITY_ATOL`` of a tie: the suite's data have no such near-ties (a failure here would
   be a real event to look at, not noise). Integers, booleans, strings: exact.
7. **Same computation, same process** (one path run twice, a resumed part against the same part,
   a subprocess with the same thread count and kernels): bit-identical, compared exactly.
8. **Float64 models** (the conformance suite's random models): the same derivation with
   ``EPS64 = 2**-52``, ``12 sqrt(d) EPS64 < 1e-13`` relative for ``d <= 4096``; the suite's
   ``rtol=1e-9, atol=1e-12`` for float64 paths is 4 orders above it, on purpose: those tests look
   for wrong terms, not last bits, and float64 leaves room for both.
9. **Gradients against central differences** ``(f(x + h) - f(x - h)) / 2h`` in float64 with ``h =
   1e-6``: truncation ``h**2 / 6 |f'''|`` (1.7e-13 |f'''|) plus rounding ``EPS64 |f| / h``
   (2.2e-10 |f|): ``FD_ATOL = 1e-8`` covers ``|f| <= 45`` (logits and probabilities of the
   test models) and ``FD_RTOL = 1e-5`` covers ``|f'''| <= 6e7 |f'|`` (the peaked attention of the
   scaled-up random models).
10. **Monte Carlo and bootstrap** quantities against their expectation: ``Z`` standard errors,
   ``Z * sigma / sqrt(n)``; the same resamples on two code paths: float64 reductions (8.).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch

from attnaudit.erasure.counterfactual import RAY_BISECTIONS

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23: 1 ulp of 1
EPS64 = float(np.finfo(np.float64).eps)  # 2**-52
Z = 6.0  # standard deviations of the summed rounding errors (1.)
KAPPA = 4.0  # growth of a logit chain's terms over the logit's scale (2.)
#: The longest reduction of the audited paper models (FLAN/HAN: documents of up to 500 items,
#: 200-d embeddings, 50-d GRUs).
D_PAPER_MODELS = 512
#: MiniLM (all-MiniLM-L6-v2): the FFN's 1536-wide reduction.
D_MINILM = 1536


def logit_k(d: int) -> float:
    """``LOGIT_K(d)`` of the module docstring (2.): a logit's error across summation orders in
    units of ``EPS32`` times its scale ``max(1, |z|)``."""
    return Z * KAPPA * math.sqrt(d) / 2


@dataclass(frozen=True)
class Tolerance:
    """``|a - b| <= atol + rtol * |b|`` (numpy's, torch's and pandas' convention)."""

    rtol: float
    atol: float

    def kwargs(self) -> dict[str, float]:
        return {"rtol": self.rtol, "atol": self.atol}


EXACT = Tolerance(rtol=0.0, atol=0.0)


def probability_atol(d: int = D_PAPER_MODELS) -> float:
    """A float32 probability of a two-class model (3.): half a logit's bound plus the softmax's
    own rounding, ``(logit_k(d) / 2 + 2) * EPS32``."""
    return (logit_k(d) / 2 + 2) * EPS32


def attention_atol(n: int = D_PAPER_MODELS, d: int = D_PAPER_MODELS) -> float:
    """Float32 attention weights over ``n`` items, or the difference of two (3.): twice
    ``(2 (0.224 + ln(n - 1) / 4) logit_k(d) / 2 + 2) EPS32``."""
    factor = 0.224 + math.log(max(n - 1, 1)) / 4
    return 2 * (2 * factor * logit_k(d) / 2 + 2) * EPS32


#: A float32 probability of the paper models across summation orders (3.).
PROBABILITY_ATOL = probability_atol()
PROBABILITY = Tolerance(rtol=0.0, atol=PROBABILITY_ATOL)
#: Float32 attention weights of the paper models, or the difference of two (3.).
ATTENTION = Tolerance(rtol=0.0, atol=attention_atol())
#: A float32 measure made of two probability vectors: TVD, JS, comp/suff, AOPC, deltas (4.).
MEASURE = Tolerance(rtol=0.0, atol=2 * PROBABILITY_ATOL)
#: An adversarial search's results across float32 paths (5.): one final bisection interval of
#: the ray search, relative, plus a measure's rounding.
OPTIMISER = Tolerance(rtol=(2 ** 0.25 - 1) / 2**RAY_BISECTIONS, atol=2 * PROBABILITY_ATOL)
#: Gradient against a float64 central difference with h = 1e-6 (9.).
FINITE_DIFFERENCE = Tolerance(rtol=1e-5, atol=1e-8)


def logits(d: int = D_PAPER_MODELS) -> Tolerance:
    """Float32 logits (or hidden states) of a model whose longest reduction is ``d`` (2.):
    ``|dz| <= logit_k(d) * EPS32 * max(1, |z|)``, as an rtol plus an atol (scale 1)."""
    bound = logit_k(d) * EPS32
    return Tolerance(rtol=bound, atol=bound)


def assert_logits_close(actual: torch.Tensor, expected: torch.Tensor, *, d: int = D_PAPER_MODELS,
                        msg: str | None = None) -> None:
    """Float32 logits or states of two paths agree to :func:`logits` (2.)."""
    torch.testing.assert_close(actual, expected, **logits(d).kwargs(), msg=msg)


def assert_probabilities_close(actual: torch.Tensor, expected: torch.Tensor, *,
                               msg: str | None = None) -> None:
    """Float32 probabilities or attention weights of two paths agree to ``PROBABILITY`` (3.)."""
    torch.testing.assert_close(actual, expected, **PROBABILITY.kwargs(), msg=msg)


# --- audit tables -----------------------------------------------------------------------------

Kind = Literal["exact", "attention", "measure", "optimiser"]
#: The float columns of the audit's tables (single_weight, removal, items) by kind; the first
#: pattern that matches wins. A float column no pattern names fails :func:`assert_tables_close`,
#: so a new measure's columns get a kind (and a derivation) when they are added.
AUDIT_COLUMN_KINDS: tuple[tuple[str, Kind], ...] = (
    # 5.: the adversarial search's results
    (r"adv_jsd|adv_tvd|adv_max_weight|adv_vertex_jsd", "optimiser"),
    # 6.: counts and fractions of items, 0/1 flags stored as floats for their NaN
    (r"removed_at_flip|fraction_.*|flip_top|adv_feasible_vertices|adv_certified", "exact"),
    # 3.: attention weights (a softmax over items) and differences of two
    (r"a_.*|weight|score_attention|delta_a|mass_removed", "attention"),
    # 4.: made of two probability vectors
    (r"js_.*|delta_js|perm_.*_tvd|comp_\d+|suff_\d+|aopc_.*", "measure"),
)
TOLERANCE_OF_KIND: dict[Kind, Tolerance] = {"exact": EXACT, "attention": ATTENTION,
                                            "measure": MEASURE, "optimiser": OPTIMISER}


def column_kind(column: str,
                kinds: tuple[tuple[str, Kind], ...] = AUDIT_COLUMN_KINDS) -> Kind | None:
    """The kind of a float column by its name, or None when no pattern names it."""
    return next((kind for pattern, kind in kinds if re.fullmatch(pattern, column)), None)


def assert_tables_close(actual: pd.DataFrame, expected: pd.DataFrame, *, obj: str,
                        kinds: tuple[tuple[str, Kind], ...] = AUDIT_COLUMN_KINDS,
                        kind_of: Callable[[str], Kind | None] | None = None) -> None:
    """Two float32 paths' tables agree column by column, each to its kind's tolerance.

    Same columns, order, index and dtypes; non-float columns and ``exact`` float columns equal
    bit for bit (NaN where the other has NaN); the others to :data:`TOLERANCE_OF_KIND`.
    """
    pd.testing.assert_index_equal(actual.columns, expected.columns, obj=f"{obj} columns")
    pd.testing.assert_index_equal(actual.index, expected.index, obj=f"{obj} index")
    pd.testing.assert_series_equal(actual.dtypes, expected.dtypes, obj=f"{obj} dtypes")
    for column in expected.columns:
        left, right = actual[column], expected[column]
        if not pd.api.types.is_float_dtype(right.dtype):
            pd.testing.assert_series_equal(left, right, check_exact=True, obj=f"{obj}.{column}")
            continue
        kind = (kind_of or (lambda c: column_kind(c, kinds)))(column)
        assert kind is not None, (f"{obj}.{column}: a float column of no known kind; give it one "
                                  "in tests/tolerances.py (AUDIT_COLUMN_KINDS) with its derivation")
        tolerance = TOLERANCE_OF_KIND[kind]
        if kind == "exact":
            pd.testing.assert_series_equal(left, right, check_exact=True, obj=f"{obj}.{column}")
        else:
            pd.testing.assert_series_equal(left, right, check_exact=False,
                                           obj=f"{obj}.{column} ({kind})", **tolerance.kwargs())
