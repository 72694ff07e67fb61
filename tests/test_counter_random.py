"""Counter-based random draws (``utils.seeding``): Philox4x32-10 against Random123's known answers and
a plain-integer reference, the uniformity of the draws built on it, and their independence from
batch composition, padding and device.
"""

from __future__ import annotations

import itertools
from typing import cast

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from attnaudit.erasure.counterfactual import draw_permutations, permuted_weights
from attnaudit.erasure.single_weight import choose_items, draw_random_item, random_items
from attnaudit.models.base import AttentionClassifier, ModelOutput, SiteOutput
from attnaudit.rankings.random import RandomRanking
from attnaudit.utils.seeding import (
    MASK32,
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_W0,
    PHILOX_W1,
    doc_keys,
    philox4x32,
    random_permutations,
    random_words,
    sort_keys,
    standard_normals,
    uniform_below,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py

#: Random123's tests/kat_vectors, the philox4x32 lines: rounds, counter (4 words), key (2 words),
#: expected output (4 words). The same lines appear verbatim in several independent ports.
KAT = [
    (7, "00000000 00000000 00000000 00000000", "00000000 00000000",
     "5f6fb709 0d893f64 4f121f81 4f730a48"),
    (7, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff",
     "5207ddc2 45165e59 4d8ee751 8c52f662"),
    (7, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0",
     "4dfccaba 190a87f0 c47362ba b6b5242a"),
    (10, "00000000 00000000 00000000 00000000", "00000000 00000000",
     "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    (10, "ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff",
     "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    (10, "243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0",
     "d16cfe09 94fdcceb 5001e420 24126ea1"),
]
CHI2_P = 1e-4  # draws are fixed by their seeds: a test passes or fails deterministically
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _words(text: str) -> list[int]:
    return [int(word, 16) for word in text.split()]


def philox_reference(counter: list[int], key: list[int], rounds: int = 10) -> list[int]:
    """Philox4x32 in plain Python integers, straight from the paper (no overflow concerns)."""
    c, k = list(counter), list(key)
    for r in range(rounds):
        if r:
            k = [(k[0] + PHILOX_W0) & MASK32, (k[1] + PHILOX_W1) & MASK32]
        p0, p1 = PHILOX_M0 * c[0], PHILOX_M1 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & MASK32, (p0 >> 32) ^ c[3] ^ k[1], p0 & MASK32]
    return c


# --- Philox ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rounds", "counter", "key", "expected"), KAT)
def test_philox_known_answers(rounds: int, counter: str, key: str, expected: str) -> None:
    got = philox4x32(torch.tensor(_words(counter)), torch.tensor(_words(key)), rounds=rounds)
    assert got.tolist() == _words(expected)
    assert philox_reference(_words(counter), _words(key), rounds) == _words(expected)


word = st.integers(0, MASK32)


@settings(max_examples=50, deadline=None)
@given(cases=st.lists(st.tuples(st.lists(word, min_size=4, max_size=4),
                                st.lists(word, min_size=2, max_size=2)), min_size=1, max_size=16),
       rounds=st.sampled_from([1, 2, 7, 10]))
def test_philox_equals_the_integer_reference(cases: list[tuple[list[int], list[int]]],
                                             rounds: int) -> None:
    counters = torch.tensor([c for c, _ in cases])  # (N, 4)
    keys = torch.tensor([k for _, k in cases])  # (N, 2)
    got = philox4x32(counters, keys, rounds=rounds)
    assert got.tolist() == [philox_reference(c, k, rounds) for c, k in cases]
    assert torch.equal(counters, torch.tensor([c for c, _ in cases]))  # inputs left untouched


def test_philox_broadcasts_keys_against_counters() -> None:
    counters = torch.tensor([[i, 7, 0, MASK32] for i in range(5)])  # (5, 4)
    keys = torch.tensor([[1, 2], [MASK32, 0], [3, 4]])  # (3, 2)
    got = philox4x32(counters[None], keys[:, None])  # (3, 5, 4)
    assert got.shape == (3, 5, 4)
    for b, key in enumerate(keys.tolist()):
        assert got[b].tolist() == [philox_reference(c, key) for c in counters.tolist()]
    assert random_words(keys, counters).tolist() == got.tolist()


def test_doc_keys_are_the_hash_words_and_differ_by_every_part() -> None:
    keys = doc_keys(3, ["a", "b", "a"], "p")
    assert keys.shape == (3, 2) and keys.dtype == torch.int64
    assert ((keys >= 0) & (keys <= MASK32)).all()
    assert keys[0].tolist() == keys[2].tolist() != keys[1].tolist()
    assert keys[0].tolist() != doc_keys(4, ["a"], "p")[0].tolist()
    assert keys[0].tolist() != doc_keys(3, ["a"], "q")[0].tolist()
    assert doc_keys(0, [], "p").shape == (0, 2)


def test_uniform_below_stays_in_range() -> None:
    words = torch.tensor([0, 1, 2**31, MASK32 - 1, MASK32])
    for bound in (1, 2, 5, 400, 2**31 - 1):
        drawn = uniform_below(words, bound)
        assert drawn.min() >= 0 and drawn.max() < bound
        assert drawn[0] == 0 and drawn[-1] == bound - 1
    assert uniform_below(words, 0).eq(0).all()


def test_an_items_key_does_not_depend_on_the_row_length() -> None:
    keys = doc_keys(0, ["x", "y"], "p")
    streams = torch.arange(3)
    long = sort_keys(keys, 9, streams)  # (2, 3, 9)
    for n in range(1, 9):
        assert torch.equal(sort_keys(keys, n, streams), long[..., :n]), n
    assert ((long >= 0) & (long < 2**62)).all()
    # and streams are independent of which others are drawn alongside
    assert torch.equal(sort_keys(keys, 9, torch.tensor([2])), long[:, 2:])


# --- uniformity ------------------------------------------------------------------------------------


DOCS = [f"doc{i}" for i in range(20_000)]


@pytest.mark.parametrize("top", [0, 2, 4])
def test_uniform_random_item_is_uniform_over_the_other_items(top: int) -> None:
    keys = doc_keys(0, DOCS, "single_weight:random")
    n = 5
    drawn = random_items(keys, torch.full((len(DOCS),), n), torch.full((len(DOCS),), top))
    counts = np.bincount(drawn.numpy(), minlength=n)
    assert counts[top] == 0
    assert stats.chisquare(np.delete(counts, top)).pvalue > CHI2_P
    assert [draw_random_item(0, d, n, top) for d in DOCS[:20]] == drawn[:20].tolist()


def test_original_draw_is_uniform_over_positions_one_to_n_minus_one() -> None:
    keys = doc_keys(0, DOCS, "single_weight:random")
    drawn = random_items(keys, torch.full((len(DOCS),), 5), torch.zeros(len(DOCS), dtype=torch.long),
                         draw="original")
    counts = np.bincount(drawn.numpy(), minlength=5)
    assert counts[0] == 0
    assert stats.chisquare(counts[1:]).pvalue > CHI2_P


def test_random_item_of_short_documents_is_zero_and_draws_are_checked() -> None:
    keys = doc_keys(0, ["a", "b", "c"], "p")
    drawn = random_items(keys, torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]))
    assert drawn.tolist() == [0, 0, 0]  # two items, top 1: the other is 0
    with pytest.raises(ValueError, match="draw must be"):
        random_items(keys, torch.tensor([3, 3, 3]), torch.zeros(3), draw="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least two items"):
        draw_random_item(0, "a", 1, 0)


def test_random_permutations_are_uniform() -> None:
    """Item 0's place is uniform over 5 places, and all 24 orders of 4 items are equally likely."""
    keys = doc_keys(0, DOCS, "ranking:random")
    order = random_permutations(keys, torch.full((len(DOCS),), 5), 5, torch.zeros(1, dtype=torch.long))
    place_of_zero = (order[:, 0] == 0).long().argmax(dim=1)
    assert stats.chisquare(np.bincount(place_of_zero.numpy(), minlength=5)).pvalue > CHI2_P
    four = random_permutations(keys, torch.full((len(DOCS),), 4), 4, torch.tensor([1]))[:, 0]
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(row)] for row in four.tolist()], minlength=24)
    assert stats.chisquare(counts).pvalue > CHI2_P


def test_random_ranking_scores_are_uniform() -> None:
    """Through :class:`RandomRanking` itself: item 0's score is uniform over 1..5."""
    model, output = _fake_pass([5] * 4000, 5)
    scores = RandomRanking(seed=0).rank(model, output, "token", DOCS[:4000])
    counts = np.bincount(scores[:, 0].long().numpy(), minlength=6)
    assert counts[0] == 0
    assert stats.chisquare(counts[1:]).pvalue > CHI2_P


def test_standard_normals_are_standard_normal() -> None:
    keys = doc_keys(0, DOCS[:2000], "counterfactual:adversarial:token")
    z = standard_normals(keys, 5, torch.arange(2))  # (2000, 2, 5): both Box-Muller halves used
    assert z.dtype == torch.float64 and torch.isfinite(z).all()
    assert stats.kstest(z.flatten().numpy(), "norm").pvalue > CHI2_P
    odd = standard_normals(keys, 3, torch.arange(2))
    assert torch.equal(odd, z[..., :3])  # an item's draw does not depend on the row length


# --- permutations and batch invariance -------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(0, 12), min_size=1, max_size=6), extra=st.integers(0, 3),
       streams=st.lists(st.integers(0, 2**20), min_size=1, max_size=4))
def test_every_row_is_a_permutation_with_padding_in_place(
    lengths: list[int], extra: int, streams: list[int],
) -> None:
    n = max(lengths) + extra
    keys = doc_keys(1, [f"d{b}" for b in range(len(lengths))], "p")
    order = random_permutations(keys, torch.tensor(lengths), n, torch.tensor(streams))
    assert order.shape == (len(lengths), len(streams), n)
    for b, length in enumerate(lengths):
        for row in order[b].tolist():
            assert sorted(row[:length]) == list(range(length))
            assert row[length:] == list(range(length, n))  # padding maps to itself
        # the same rows for the document alone, without the others' padding
        alone = random_permutations(keys[b : b + 1], torch.tensor([length]), length,
                                    torch.tensor(streams))
        assert alone[0].tolist() == order[b, :, :length].tolist()


class _Model:
    pooling_site = "token"


def _fake_pass(lengths: list[int], n: int) -> tuple[AttentionClassifier, ModelOutput]:
    """A pass with one site, ``token``, of ``lengths`` real items padded to ``n``."""
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    weights = torch.rand(len(lengths), n, generator=torch.Generator().manual_seed(n),
                         dtype=torch.float64).masked_fill(~mask, 0.0)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    site = SiteOutput(attention=weights, mask=mask, anchor=torch.full((len(lengths),), -1))
    output = ModelOutput(logits=torch.zeros(len(lengths), 2), sites={"token": site})
    return cast(AttentionClassifier, _Model()), output


def test_random_ranking_is_the_same_in_any_batch() -> None:
    lengths = [7, 3, 11, 1, 5]
    docs = [f"doc{b}" for b in range(len(lengths))]
    model, output = _fake_pass(lengths, 11)
    together = RandomRanking(seed=4).rank(model, output, "token", docs)
    assert together.dtype == torch.float32
    for b, n in enumerate(lengths):
        assert sorted(together[b, :n].tolist()) == [float(i) for i in range(1, n + 1)]
        assert torch.isneginf(together[b, n:]).all()
    # reversed order, more padding
    model, output = _fake_pass(lengths[::-1], 20)
    reversed_ = RandomRanking(seed=4).rank(model, output, "token", docs[::-1])
    for b, n in enumerate(lengths):
        assert reversed_[len(lengths) - 1 - b, :n].tolist() == together[b, :n].tolist()
    # each document alone, no padding
    for b, n in enumerate(lengths):
        model, output = _fake_pass([n], n)
        alone = RandomRanking(seed=4).rank(model, output, "token", [docs[b]])
        assert alone[0].tolist() == together[b, :n].tolist()


def test_random_item_and_permutations_are_the_same_in_any_batch() -> None:
    lengths = [6, 2, 9, 1]
    docs = [f"doc{b}" for b in range(len(lengths))]
    _, output = _fake_pass(lengths, 9)
    site = output.site("token")
    items = choose_items(site.attention, site.mask, {}, ("max", "random"), docs, seed=2)
    permuted = permuted_weights(site.attention, site.mask, docs, "token", permutations=5, seed=2)
    for b, n in enumerate(lengths):
        _, one = _fake_pass([n], n + 2)  # other padding; same weights on the real items below
        alone = one.site("token")
        alone.attention[0, :n] = site.attention[b, :n]
        assert choose_items(alone.attention, alone.mask, {}, ("max", "random"), [docs[b]],
                            seed=2)[0].tolist() == items[b].tolist()
        by_itself = permuted_weights(alone.attention, alone.mask, [docs[b]], "token",
                                     permutations=5, seed=2)
        assert by_itself[0, :, :n].tolist() == permuted[b, :, :n].tolist()
        assert permuted[b, :, n:].eq(0).all()
        # a later chunk of permutations is the same as those rows of the whole set
        tail = permuted_weights(alone.attention, alone.mask, [docs[b]], "token", permutations=2,
                                seed=2, first=3)
        assert tail[0, :, :n].tolist() == permuted[b, 3:, :n].tolist()
        index = draw_permutations(2, docs[b], "token", n, 5)
        assert permuted[b, :, :n].tolist() == site.attention[b, torch.from_numpy(index)].tolist()


# --- devices ---------------------------------------------------------------------------------------


@CUDA
def test_cuda_draws_equal_the_cpu_draws() -> None:
    docs = [f"doc{b}" for b in range(64)]
    lengths = torch.randint(1, 400, (64,), generator=torch.Generator().manual_seed(0))
    cpu = doc_keys(5, docs, "p")
    gpu = doc_keys(5, docs, "p", device="cuda")
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    streams = torch.arange(7)
    counters = torch.randint(0, 2**32, (1000, 4), generator=torch.Generator().manual_seed(1))
    assert torch.equal(random_words(gpu, counters.cuda()).cpu(), random_words(cpu, counters))
    assert torch.equal(sort_keys(gpu, 400, streams.cuda()).cpu(), sort_keys(cpu, 400, streams))
    assert torch.equal(random_permutations(gpu, lengths.cuda(), 400, streams.cuda()).cpu(),
                       random_permutations(cpu, lengths, 400, streams))
    top = lengths // 2
    assert torch.equal(random_items(gpu, lengths.cuda(), top.cuda()).cpu(),
                       random_items(cpu, lengths, top))
    torch.testing.assert_close(standard_normals(gpu, 400, streams.cuda()).cpu(),
                               standard_normals(cpu, 400, streams), rtol=1e-12, atol=1e-12)
    model, output = _fake_pass(lengths.tolist(), 400)
    on_cpu = RandomRanking(seed=1).rank(model, output, "token", docs)
    site = output.site("token")
    output.sites["token"] = SiteOutput(site.attention.cuda(), site.mask.cuda(), site.anchor.cuda())
    on_gpu = RandomRanking(seed=1).rank(model, output, "token", docs)
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)


def test_empty_rows_and_empty_batches() -> None:
    keys = doc_keys(0, ["a", "b"], "p")
    streams = torch.arange(3)
    assert random_permutations(keys, torch.tensor([0, 0]), 0, streams).shape == (2, 3, 0)
    assert standard_normals(keys, 0, streams).shape == (2, 3, 0)
    none = doc_keys(0, [], "p")
    assert random_permutations(none, torch.zeros(0, dtype=torch.long), 5, streams).shape == (0, 3, 5)
    assert random_items(none, torch.zeros(0, dtype=torch.long), torch.zeros(0)).shape == (0,)


def test_cpu_chunks_give_the_same_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU Philox runs a few documents at a time (``CPU_CHUNK``): the words are the same."""
    from attnaudit.utils import seeding

    keys = doc_keys(0, [f"d{b}" for b in range(7)], "p")
    whole = sort_keys(keys, 9, torch.arange(4))
    monkeypatch.setattr(seeding, "CPU_CHUNK", 40)  # 2 documents of 4 x 5 counters per chunk
    assert torch.equal(sort_keys(keys, 9, torch.arange(4)), whole)
    monkeypatch.setattr(seeding, "CPU_CHUNK", 1)  # one document per chunk
    assert torch.equal(sort_keys(keys, 9, torch.arange(4)), whole)
