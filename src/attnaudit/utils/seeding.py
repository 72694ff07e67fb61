"""Explicit seeding: every random choice comes from a seed the caller passes in.

Two schemes, both keyed on ``(seed, doc_id, purpose)`` so that a document's draws never depend on
batch size, batch order or the documents around it:

* :func:`doc_rng`: a NumPy generator per document, for draws made one document at a time (synthetic
  data, LIME's sampling seed).
* Counter-based draws for the audit's batched random choices (random ranking, Test 1's random item,
  the permutation test, the adversarial search's start): :func:`doc_keys` turns each document into
  a 64-bit Philox key once, and :func:`philox4x32` maps (key, counter) to four 32-bit words with
  plain integer tensor ops. The draw for item ``i`` of permutation ``j`` is a pure function of the
  key and the counter ``(i, j, ...)``, so a whole batch's draws are a few tensor ops on the batch's
  own device (no per-document Python, no per-document state), and any one document's draw can be
  recomputed alone, on any device, with the same result.

Why Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC'11; the Random123 library): it is the standard counter-based generator (cuRAND's
``Philox4_32_10``, which torch's CUDA generator uses; NumPy ships its 4x64 sibling), its authors
report it passes TestU01's BigCrush, and it needs only 32x32-bit multiplies, XORs and additions,
which int64 tensors compute exactly on CPU and CUDA alike. Counter-based means stateless: any
document's draw is computable alone, on any device, with no per-document generator to build or
carry. The output is checked against Random123's published known-answer vectors
(``tests/test_counter_random.py``).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

import numpy as np
import torch

#: Philox4x32 round multipliers and Weyl key increments (Random123, philox.h)
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF
_MASK16 = 0xFFFF
#: sort keys lie below this; padding gets it, so it sorts after every real item
SORT_KEY_END = 1 << 62


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch global generators (for training only)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _digest(seed: int, doc_id: str, purpose: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{purpose}\x00{doc_id}".encode()).digest()


def doc_rng(seed: int, doc_id: str, purpose: str) -> np.random.Generator:
    """A generator fixed by ``(seed, doc_id, purpose)`` alone.

    Per-document generators make a document's random draws independent of batch size, batch order
    and how many documents came before it, so a batch gives the same result as its documents one by one.
    """
    return np.random.default_rng(int.from_bytes(_digest(seed, doc_id, purpose)[:8], "little"))


# --- counter-based draws ----------------------------------------------------------------------------


def doc_keys(seed: int, doc_ids: Sequence[str], purpose: str,
             device: torch.device | str | None = None) -> torch.Tensor:
    """Each document's Philox key: ``(B, 2)`` int64, two 32-bit words (values in ``[0, 2^32)``).

    The words are the first 8 bytes (little endian) of ``sha256(f"{seed}\\0{purpose}\\0{doc_id}")``,
    the hash :func:`doc_rng` seeds from, so the same ``(seed, doc_id, purpose)`` names a document's
    stream in both schemes. One hash per document on the host, one copy to ``device``.
    """
    words = []
    for doc_id in doc_ids:
        digest = _digest(seed, doc_id, purpose)
        words.append((int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")))
    return torch.tensor(words, dtype=torch.int64).reshape(len(words), 2).to(device)


def _mulhilo32(high: torch.Tensor, low: torch.Tensor, word: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of ``m * word`` for 32-bit ``m = high 2^16 + low`` and ``word``, exactly.

    The full product reaches 2^64, past int64 (and signed overflow is not something to rely on
    across devices), so the multiplier comes in 16-bit halves: with ``t = word * low`` and
    ``u = word * high + (t >> 16)`` (below 2^48 and 2^49) the product is ``u 2^16 + (t & 0xFFFF)``,
    so ``hi = u >> 16`` and ``lo = (u & 0xFFFF) << 16 | (t & 0xFFFF)``. ``word`` is overwritten
    (its buffer becomes ``t``): in-place ops spare an allocation per op, much of the cost on CPU.
    """
    u = word * high
    t = word.mul_(low)
    u.add_(t >> 16)
    lo = (u & _MASK16).bitwise_left_shift_(16).bitwise_or_(t.bitwise_and_(_MASK16))
    return u.bitwise_right_shift_(16), lo


def philox4x32(counter: torch.Tensor, key: torch.Tensor, rounds: int = 10) -> torch.Tensor:
    """The Philox4x32 bijection of Random123 (``philox4x32_R``), on int64 tensors.

    Args:
        counter: ``(..., 4)`` int64, 32-bit words (values in ``[0, 2^32)``; not checked, which
            would cost a device sync).
        key: ``(..., 2)`` int64, 32-bit words; broadcast against ``counter``'s leading dimensions.
        rounds: 10 is the standard, crush-resistant choice (Random123's default); 7 exists for
            the known-answer test only.
    Returns:
        ``(broadcast(...), 4)`` int64 words in ``[0, 2^32)``: the same values on every device, since
        only exact integer ops below 2^63 are used (no uint64 ops, no signed overflow).

    A round maps ``(c0, c1, c2, c3)`` to ``(hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1,
    lo(M0 c0))``. The two multiplied words travel stacked as ``lanes = (c0, c2)`` and the other two
    as ``others = (c3, c1)`` (crosswise), so a round is one 2-lane multiply, one xor with
    ``others``, one lane swap and one xor with the key: 12 tensor ops instead of 22, which halves
    the kernel launches on a GPU and the dispatch overhead on CPU.
    """
    shape = torch.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    # (2, *shape)-broadcastable lane tensors; the key padded to ``shape``'s rank, never expanded
    words = counter.reshape(*[1] * (len(shape) + 1 - counter.dim()), *counter.shape).movedim(-1, 0)
    lanes = words[[0, 2]].expand(2, *shape).clone()  # (c0, c2), updated in place
    others = words[[3, 1]]  # (c3, c1)
    key_lanes = key.reshape(*[1] * (len(shape) + 1 - key.dim()), *key.shape).movedim(-1, 0)
    single = [1] * len(shape)
    multipliers = torch.tensor([PHILOX_M0, PHILOX_M1], device=counter.device).reshape(2, *single)
    high, low = multipliers >> 16, multipliers & _MASK16
    # Random123 bumps the key by (W0, W1) before every round but the first: all rounds' keys at once
    weyl = torch.tensor([PHILOX_W0, PHILOX_W1], device=key.device).reshape(2, *single)
    bumps = torch.arange(rounds, device=key.device).reshape(rounds, 1, *single) * weyl
    schedule = (key_lanes + bumps) & MASK32  # (rounds, 2, ...)
    for r in range(rounds):
        hi, lo = _mulhilo32(high, low, lanes)  # hi = (hi(M0 c0), hi(M1 c2))
        # (hi(M0 c0) ^ c3, hi(M1 c2) ^ c1), swapped: (c0', c2'); then lo = (c3', c1')
        lanes = hi.bitwise_xor_(others).flip(0).bitwise_xor_(schedule[r])
        others = lo
    c0, c2 = lanes.unbind(0)
    c3, c1 = others.expand(2, *shape).unbind(0)
    return torch.stack([c0, c1, c2, c3], dim=-1)


#: on CPU, :func:`random_words` runs Philox on about this many counters at a time: its ~20 int64
#: ops per round then work on cache-sized tensors instead of streaming the whole batch through
#: memory 200 times (about 1.5x faster for 64 documents x 32 permutations x 400 items, one thread).
#: A GPU gets one pass: there, every extra chunk is 200 more kernel launches.
CPU_CHUNK = 1 << 17


def random_words(keys: torch.Tensor, counters: torch.Tensor) -> torch.Tensor:
    """Every document's Philox output at every counter.

    Args:
        keys: ``(B, 2)`` from :func:`doc_keys`.
        counters: ``(*S, 4)`` int64 32-bit words, shared by all documents (on ``keys``' device).
    Returns:
        ``(B, *S, 4)`` int64 32-bit words.
    """
    key = keys.reshape(keys.shape[0], *([1] * (counters.dim() - 1)), 2)
    counter = counters.unsqueeze(0)
    per_doc = max(counter.numel() // 4, 1)
    if keys.device.type != "cpu" or keys.shape[0] * per_doc <= CPU_CHUNK:
        return philox4x32(counter, key)
    rows = max(CPU_CHUNK // per_doc, 1)  # documents per chunk: each word is its own function
    return torch.cat([philox4x32(counter, key[start : start + rows])
                      for start in range(0, keys.shape[0], rows)])


def uniform_below(words: torch.Tensor, bound: torch.Tensor | int) -> torch.Tensor:
    """Integers in ``[0, bound)`` from 32-bit words: ``floor(word * bound / 2^32)``.

    The multiply-shift map (Lemire 2019, without the rejection step) sends ``floor(2^32 / bound)`` or
    one more word to each value, so each probability is within ``1 / 2^32`` of ``1 / bound``: a
    relative bias of at most ``bound / 2^32`` (1e-7 for 400 items), far below what any audit can
    see. Exact in int64 for ``bound < 2^31``. ``bound`` broadcasts against ``words``; a bound of
    0 gives 0.
    """
    return (words * bound) >> 32


def _item_streams(n: int, streams: torch.Tensor) -> torch.Tensor:
    """Counters ``(i, j, 0, 0)``, item pairs ``i < ceil(n / 2)``, streams ``j``: ``(m, ceil(n/2), 4)``.

    One Philox call gives 4 words, two per item: item ``2i`` takes words 0-1 of counter ``i``,
    item ``2i + 1`` words 2-3. An item's words depend only on its position, never on ``n``.
    """
    pairs = torch.arange((n + 1) // 2, device=streams.device)
    counters = torch.zeros(len(streams), len(pairs), 4, dtype=torch.int64, device=streams.device)
    counters[..., 0] = pairs
    counters[..., 1] = streams[:, None]
    return counters


def _item_word_pairs(keys: torch.Tensor, n: int, streams: torch.Tensor) -> torch.Tensor:
    """Two 32-bit words per (document, stream, item): ``(B, m, n, 2)`` int64."""
    words = random_words(keys, _item_streams(n, streams.to(keys.device)))  # (B, m, ceil(n/2), 4)
    batch, m, pairs = words.shape[:3]
    return words.reshape(batch, m, 2 * pairs, 2)[:, :, :n]  # explicit sizes: n = 0 works too


def sort_keys(keys: torch.Tensor, n: int, streams: torch.Tensor) -> torch.Tensor:
    """Random sort keys per (document, stream, item position): ``(B, m, n)`` int64 in ``[0, 2^62)``.

    Args:
        keys: ``(B, 2)`` from :func:`doc_keys`; n: positions per row.
        streams: ``(m,)`` int64 stream indices (permutation numbers): independent key sets.
    The key of item ``i`` is ``(w0 >> 2) * 2^32 + w1`` from its two words: 62 random bits, so
    two of 400 items tie with probability about 400^2 / 2^63, and a stable sort breaks any tie by
    position, deterministically.
    """
    pairs = _item_word_pairs(keys, n, streams)  # (B, m, n, 2)
    return ((pairs[..., 0] >> 2) << 32) | pairs[..., 1]


def random_permutations(keys: torch.Tensor, lengths: torch.Tensor, n: int,
                        streams: torch.Tensor) -> torch.Tensor:
    """Uniformly random permutations of each row's real items: ``(B, m, n)`` int64.

    Args:
        keys: ``(B, 2)`` from :func:`doc_keys`.
        lengths: ``(B,)`` real items per row (a prefix of the row; ``n`` columns in all).
        streams: ``(m,)`` stream indices, one permutation each.
    Returns:
        Row ``(b, j)`` lists positions ``0..lengths[b]-1`` in a random order (argsort of the items'
        :func:`sort_keys`), then the identity on the padding ``lengths[b]..n-1``. A row depends only
        on the document's key, its length and the stream, never on ``n`` or the other rows.
    """
    key = sort_keys(keys, n, streams)  # (B, m, n)
    padding = torch.arange(n, device=keys.device) >= lengths.to(keys.device)[:, None]  # (B, n)
    key = key.masked_fill(padding[:, None, :], SORT_KEY_END)  # padding after every real item
    return key.argsort(dim=-1, stable=True)


def standard_normals(keys: torch.Tensor, n: int, streams: torch.Tensor,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard normal draws per (document, stream, item position): ``(B, m, n)``.

    Box-Muller on the four words of each item pair's counter (see :func:`_item_streams`): two 53-bit
    uniforms ``u1`` in ``(0, 1]`` (no log of 0) and ``u2`` in ``[0, 1)`` give the pair's normals
    ``sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2)``. Computed in float64; the integers are identical
    on every device, the floats to within the last bit of ``log``/``cos`` of the device's library.
    """
    words = random_words(keys, _item_streams(n, streams.to(keys.device)))  # (B, m, ceil(n/2), 4)
    top = words[..., 0::2] << 21 | words[..., 1::2] >> 11  # (B, m, ceil(n/2), 2): 53 bits
    u1 = (top[..., 0] + 1).double() * 2.0**-53
    u2 = top[..., 1].double() * 2.0**-53
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = 2.0 * math.pi * u2
    pairs = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    return pairs.reshape(*pairs.shape[:2], 2 * pairs.shape[2])[:, :, :n].to(dtype)
