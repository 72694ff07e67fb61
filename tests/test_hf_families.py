"""The conformance table of the generic transformer host: one tiny random model per family.

Per family (tests/hf_family_fixtures.py; the quick tier runs RoBERTa and Llama, ``full`` the rest):
a folder saved with ``save_pretrained`` and loaded as a user's reproduces transformers' own logits;
the registered erasing attention equals an independent masked recompute (another registered function
that masks the erased keys of the classification row before the softmax); SDPA and eager give the
same audit; a document alone equals it inside a padded batch; decoders give the same results padded
left or right; special tokens are never items; word items equal erasing their subwords; the gradient
through ``logits_with`` equals finite differences (RMSNorm families and ModernBERT compute
partly in float32 inside transformers even in a float64 model: a larger step, a derived
tolerance); the fast path (resumed at the audited layer, models/hf_resume.py) equals the naive
full recompute, with hypothesis over random documents and erasures for the quick tier's families,
and a layer layout the descriptor does not describe stays on the naive path. Families whose
attention is not in the registry are refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from deberta_reference import deberta_by_hand
from hf_family_fixtures import DECODER_PARAMS, FAMILY_PARAMS, family_config, save_family
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import alone, random_batch, random_model
from transformers import (
    AttentionInterface,
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.masking_utils import AttentionMaskInterface

from attnaudit.data.types import Batch
from attnaudit.models.base import renormalise
from attnaudit.models.hf import HFClassifier
from attnaudit.models.hf_families import family_of
from attnaudit.models.hf_generic import ATTENTION_ANY, GenericHFClassifier, _mask_no_skip

pytestmark = pytest.mark.usefixtures("one_thread_module")

LENGTHS = [5, 1, 7, 2]
#: families whose norm is RMSNorm, computed in float32 by transformers whatever the model's dtype
RMS_NORM = {"llama", "qwen2", "qwen3", "mistral", "gemma", "phi3"}
#: and the others whose norm rounds through float32 (ModernBERT; DeBERTa v1's DebertaLayerNorm)
FLOAT32_INSIDE = RMS_NORM | {"modernbert", "deberta"}
DECODER_TYPES = {"llama", "qwen2", "qwen3", "mistral", "gemma", "phi", "phi3"}
#: the table's families with the generic fast path (a ``tail``; DeBERTa's adapter has none)
FAST_PARAMS = [p for p in FAMILY_PARAMS
               if family_of(p if isinstance(p, str) else p.values[0]).tail is not None]


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float64: only summation order differs (batch composition, kernels), ~1e-15. RMSNorm families,
    ModernBERT and DeBERTa v1 round through float32 inside transformers (see the module): ~10
    roundings (unit 6e-8) of O(1) values, ~6e-7 on each side; so 1e-6 absolute plus 1e-5 relative,
    one bound for every family (a wrong edit moves logits by O(0.1))."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def _model(model_type: str, *, seed: int = 0, words: bool = False, **options: Any
           ) -> GenericHFClassifier:
    model = random_model(f"hf@{model_type}" + ("+words" if words else ""), seed=seed)
    assert isinstance(model, GenericHFClassifier)
    for key, value in options.items():
        setattr(model, key, value)
    return model


def _erasures(output: Any, site: str, seed: int) -> torch.Tensor:
    """``(B, 3, n)``: nothing, a random half, everything erased (zeros renormalised)."""
    gen = torch.Generator().manual_seed(seed)
    a = output.site(site).attention
    half = renormalise(a * (torch.rand(a.shape, generator=gen) > 0.5))
    return torch.stack([a, half, torch.zeros_like(a)], dim=1)


def _erasure_cases(model: GenericHFClassifier, batch: Batch, site: str, seed: int
                   ) -> tuple[Any, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The pass and, per candidate of :func:`_erasures`, the host's logits ``(B, C)`` with the
    items it erases ``(B, n)`` (zero weight on a real item)."""
    output = model.run(batch)
    weights = _erasures(output, site, seed)  # (B, 3, n)
    got = model.logits_with(output, site, weights)
    mask = output.site(site).mask
    return output, [(got[:, k], (weights[:, k] == 0) & mask) for k in range(weights.shape[1])]


# --- an independent reference: mask the erased keys of the classification row before softmax -------


def _masked_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0,
                      scaling: float | None = None, test_erase: dict[str, Any] | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    assert test_erase is not None and attention_mask is not None
    layer = test_erase["calls"]
    test_erase["calls"] += 1
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    n, h, t, _ = query.shape
    allowed = attention_mask.expand(n, 1, t, t).expand(n, h, t, t).clone()
    if layer == test_erase["layer"]:
        rows = torch.arange(n)
        heads = range(h) if test_erase["head"] is None else [test_erase["head"]]
        for head in heads:
            sub = allowed[:, head]  # (N, T, T)
            sub[rows, test_erase["cls_pos"]] &= ~test_erase["erased_keys"]
    scores = query @ key.transpose(-1, -2) * (scaling or query.shape[-1] ** -0.5)
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    probs = torch.nan_to_num(probs)  # padding rows outside a sliding window attend nowhere
    return (probs @ value).transpose(1, 2).contiguous(), None


AttentionInterface.register("test-masked", _masked_attention)
AttentionMaskInterface.register("test-masked", _mask_no_skip)


def _masked_logits(model: GenericHFClassifier, batch: Batch, layer: int, head: int | None,
                   erased: torch.Tensor) -> torch.Tensor:
    """transformers' own forward with ``erased`` ``(B, n)`` items masked out of the classification
    row of ``layer`` (``head``, or all heads); DeBERTa (outside the registry): by hand."""
    if model.family.adapter is not None:
        if model.family.name == "DeBERTa":  # v1: its own module masks the keys before its softmax
            return _premasked_logits(model, batch, layer, head, erased)
        return _deberta_masked_logits(model, batch, layer, head, erased)
    layout, _, _ = model._layout(batch)
    keys = torch.zeros_like(layout.mask)
    keys = keys.scatter(1, layout.item_pos, erased & layout.items)
    state = {"calls": 0, "layer": layer, "head": head, "cls_pos": layout.cls_pos,
             "erased_keys": keys}
    model.hf.set_attn_implementation("test-masked")
    try:
        extra = {} if layout.position_ids is None else {"position_ids": layout.position_ids}
        return model.hf(input_ids=layout.ids, attention_mask=layout.mask.long(), test_erase=state,
                        **extra).logits
    finally:
        model.hf.set_attn_implementation(ATTENTION_ANY)


def _deberta_masked_logits(model: GenericHFClassifier, batch: Batch, layer: int, head: int | None,
                           erased: torch.Tensor, rows: str = "cls") -> torch.Tensor:
    """:func:`_masked_logits` for DeBERTa: each document recomputed by hand from the weights
    (tests/deberta_reference.py), the erased keys masked before the softmax in the [CLS] row
    (``rows="all"``: every row)."""
    layout, _, _ = model._layout(batch)
    logits = []
    for b in range(batch.token_ids.shape[0]):
        ids = layout.ids[b][layout.mask[b]].tolist()  # right padding: the real tokens first
        keys = layout.item_pos[b][erased[b] & layout.items[b]].tolist()
        chosen = range(len(ids)) if rows == "all" else (int(layout.cls_pos[b]),)
        logits.append(deberta_by_hand(model.hf, ids, layer=layer, head=head, erased=keys,
                                      rows=chosen)[0])
    return torch.stack(logits)


def _premasked_logits(model: GenericHFClassifier, batch: Batch, layer: int, head: int | None,
                      erased: torch.Tensor, rows: str = "cls") -> torch.Tensor:
    """:func:`_masked_logits` for a DeBERTa (v1 or v2) through its own forward: layer ``layer``'s
    attention module gets, for that pass, the mask it applies before its softmax with the erased
    keys taken out of the [CLS] row (``rows="all"``: every row) of ``head`` (None: every head);
    the adapter's hooks are not installed (transformers' own forward)."""
    layout, _, _ = model._layout(batch)
    keys = torch.zeros_like(layout.mask).scatter(1, layout.item_pos, erased & layout.items)
    rows_n = torch.arange(len(keys))

    def premask(_: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        hidden, mask = args[0], args[1]  # mask (N, 1, T', T'), DeBERTa's query x key product
        n, _, t, _ = mask.shape
        allowed = mask.bool().expand(n, model.num_heads, t, t).clone()
        for h in range(model.num_heads) if head is None else [head]:
            if rows == "all":
                allowed[:, h] &= ~keys[:, None, :]
            else:
                allowed[rows_n, h, layout.cls_pos] &= ~keys
        return (hidden, allowed, *args[2:]), kwargs

    attention = model.hf.get_submodule(f"{model.family.layers}.{layer}.attention.self")
    handle = attention.register_forward_pre_hook(premask, with_kwargs=True)
    try:
        return model.hf(input_ids=layout.ids, attention_mask=layout.mask.long()).logits
    finally:
        handle.remove()


# --- the table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_a_saved_folder_reproduces_transformers_own_logits(tmp_path: Path, model_type: str) -> None:
    folder = save_family(tmp_path / model_type, model_type)
    model = HFClassifier.from_pretrained(folder).eval()
    assert isinstance(model, GenericHFClassifier)
    assert model.prefix_ids == (101,) and model.suffix_ids == (102,)  # the tokenizer's own
    assert (model.unk_token_id, model.mask_token_id) == (100, 103)  # input-level erasure's ids
    texts = ["An unwatchable film, frankly.", "Great!", "It isn't good; it's great fun to watch."]
    tokenizer = model._words.tokenizer if model._words is not None else None
    assert tokenizer is not None
    items = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    batch = Batch(["a", "b", "c"], items["input_ids"], torch.zeros(3, dtype=torch.long))
    own = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    full = tokenizer(texts, padding=True, return_tensors="pt")  # right padding, pad id 0
    with torch.no_grad():
        expected = own(**full).logits
        got = model.run(batch).logits
    # float32, the same kernels on the same inputs; only SDPA's mask (explicit here, maybe skipped
    # there) differs: a few float32 roundings of O(1) values
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
@pytest.mark.parametrize(("site", "layer", "head"), [("L0", 0, None), ("L1.h1", 1, 1)])
def test_registered_erasure_equals_a_masked_recompute(model_type: str, site: str, layer: int,
                                                      head: int | None) -> None:
    # the classification row, as _masked_logits masks it (hf's default too)
    model = _model(model_type, query_rows="cls")
    batch = random_batch("hf", seed=1, lengths=LENGTHS)
    with torch.no_grad():
        output, cases = _erasure_cases(model, batch, site, seed=2)
        for got, erased in cases:
            _close(got, _masked_logits(model, batch, layer, head, erased))
        _close(cases[0][0], output.logits)  # erasing nothing is the model's own pass


def _audits_agree(model_type: str, option: str, values: tuple[str, str], site: str,
                  seed: int) -> None:
    """The logits, ``site``'s attention and its erasures are the same under both ``values`` of
    the model attribute ``option``."""
    batch = random_batch("hf", seed=seed, lengths=LENGTHS)
    results = []
    for value in values:
        model = _model(model_type, **{option: value})
        with torch.no_grad():
            output = model.run(batch)
            results.append((output.logits, output.site(site).attention,
                            model.logits_with(output, site, _erasures(output, site, seed + 1))))
    for first, second in zip(*results, strict=True):
        _close(first, second)


def _fast_and_naive(model: GenericHFClassifier, batch: Batch, erased: torch.Tensor | None,
                    site: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``logits_with`` of ``site`` on the fast path (resumed at its layer, from :meth:`run`'s
    capture), on the fast path of an output cut to its last documents (``ModelOutput.index``: a
    capture pass of its own), and on the naive full recompute (``fast_path = False``); the
    candidates: :func:`_erasures`, plus ``erased`` ``(B, n)`` bool zeroed if given."""
    with torch.no_grad():
        output = model.run(batch)
        weights = _erasures(output, site, seed)  # (B, 3, n)
        if erased is not None:
            a = output.site(site).attention
            chosen = renormalise(a * ~erased[:, : a.shape[1]])
            weights = torch.cat([weights, chosen[:, None]], dim=1)
        model.fast_path = True
        fast = model.logits_with(output, site, weights)
        rows = list(range(1, len(batch.doc_ids))) or [0]
        cut = model.logits_with(output.index(rows), site, weights[rows])
        model.fast_path = False
        naive = model.logits_with(output, site, weights)
        model.fast_path = True
    return fast, torch.cat([fast[:0], cut]), naive


@pytest.mark.parametrize("model_type", FAST_PARAMS)
@pytest.mark.parametrize("query_rows", ["cls", "all"])
@pytest.mark.parametrize("words", [False, True], ids=["tokens", "words"])
def test_the_fast_path_equals_the_naive_full_recompute(model_type: str, query_rows: str,
                                                       words: bool) -> None:
    """Resuming at the audited layer (models/hf_resume.py) gives the whole model's logits, at a
    layer and a head site of each layer, for either query rows, token or word items, and (decoders)
    either padding side; both in float64 (``_close``) and in float32, where the paths' batches
    differ (``N`` documents below the site, ``N * k`` candidates above): reductions in another
    order, tolerances.py's logits bound at the longest reduction, the 64-wide feed-forward."""
    from tolerances import assert_logits_close

    sides = ("right", "left") if model_type in DECODER_TYPES else ("right",)
    batch = random_batch("hf", seed=21, lengths=LENGTHS)
    for dtype, side in [(torch.float64, s) for s in sides] + [(torch.float32, sides[-1])]:
        model = _model(model_type, words=words, query_rows=query_rows, padding_side=side)
        model.to(dtype)
        assert model.family.tail is not None and model.fast_path
        for site in ("L0", "L0.h3", "L1", "L1.h1"):
            fast, cut, naive = _fast_and_naive(model, batch, None, site, seed=22)
            rows = list(range(1, len(LENGTHS)))
            if dtype == torch.float64:
                _close(fast, naive)
                _close(cut, naive[rows])
            else:
                assert_logits_close(fast, naive, d=64)
                assert_logits_close(cut, naive[rows], d=64)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000),
       lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       case=st.sampled_from([("roberta", "cls", "L0"), ("roberta", "all", "L1.h2"),
                             ("llama", "cls", "L0.h1"), ("llama", "all", "L1")]),
       data=st.data())
def test_the_fast_path_equals_the_naive_recompute_on_random_erasures(
        seed: int, lengths: list[int], case: tuple[str, str, str], data: st.DataObject) -> None:
    """Hypothesis: random documents, random erased items, an encoder and a grouped-query decoder
    (the quick tier's families; every family runs the parametrised test above): float64, ``_close``."""
    model_type, query_rows, site = case
    erased = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=max(lengths),
                                                      max_size=max(lengths)),
                                             min_size=len(lengths), max_size=len(lengths))))
    model = _model(model_type, seed=seed % 3, query_rows=query_rows)
    batch = random_batch("hf", seed=seed, lengths=lengths)
    fast, cut, naive = _fast_and_naive(model, batch, erased, site, seed=seed + 1)
    _close(fast, naive)
    _close(cut, naive[list(range(1, len(lengths))) or [0]])


def test_a_layer_layout_the_descriptor_does_not_describe_stays_on_the_naive_path() -> None:
    """ALBERT with two layer groups: the descriptor's ``layers`` (group 0) sees half of the layer
    calls, so nothing is captured and every candidate reruns the whole model (the same logits)."""
    from transformers import AlbertConfig

    torch.manual_seed(0)
    config = AlbertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_hidden_groups=2,
                          num_attention_heads=4, intermediate_size=64, embedding_size=16,
                          num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          classifier_dropout_prob=0.0, initializer_range=0.3)
    model = GenericHFClassifier(config=config, cls_token_id=2, sep_token_id=3).double().eval()
    batch = Batch(["a", "b"], torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.zeros(2, dtype=torch.long))
    fast, _, naive = _fast_and_naive(model, batch, None, "L1", seed=1)
    assert model._resume_failed
    _close(fast, naive)


@pytest.mark.full  # ModernBERT is in the full tier (~1 s)
def test_the_fast_path_reads_modernbert_s_mean_pooling_as_its_own_head_does() -> None:
    """``classifier_pooling="mean"``: the head averages the final states over the real positions
    (the table's ModernBERT pools ``cls``); the resumed path's head equals the whole model's."""
    torch.manual_seed(0)
    config = family_config("modernbert", vocab_size=200, special=(2, 3))
    config.classifier_pooling = "mean"
    model = GenericHFClassifier(config=config, cls_token_id=2, sep_token_id=3).double().eval()
    batch = Batch(["a", "b"], torch.tensor([[5, 6, 7, 9], [8, 9, 0, 0]]),
                  torch.zeros(2, dtype=torch.long))
    fast, cut, naive = _fast_and_naive(model, batch, None, "L1.h2", seed=1)
    _close(fast, naive)
    _close(cut, naive[1:])


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_sdpa_and_eager_give_the_same_audit(model_type: str) -> None:
    _audits_agree(model_type, "base_attention", ("sdpa", "eager"), "L0", seed=3)


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_a_document_alone_equals_it_in_a_padded_batch(model_type: str) -> None:
    model = _model(model_type)
    batch = random_batch("hf", seed=5, lengths=LENGTHS)
    with torch.no_grad():
        output = model.run(batch)
        weights = _erasures(output, "L1", seed=6)
        together = model.logits_with(output, "L1", weights)
        for b, n in enumerate(LENGTHS):
            single = alone(batch, b)
            own = model.run(single)
            _close(own.logits[0], output.logits[b])
            _close(own.site("L1").attention[0], output.site("L1").attention[b, :n])
            _close(model.logits_with(own, "L1", weights[b : b + 1, :, :n])[0], together[b])


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_calls_cut_to_the_memory_budget_give_one_calls_logits(model_type: str) -> None:
    """--max-memory: the candidates split over documents and steps (attnaudit.erasure.memory),
    the same logits as one call; the estimate is a whole sequence per candidate."""
    from attnaudit.erasure.memory import WORK_SHARE, bounded_logits_with, memory_budget

    model = _model(model_type)
    batch = random_batch("hf", seed=5, lengths=LENGTHS)
    with torch.no_grad():
        output = model.run(batch)
        weights = _erasures(output, "L1", seed=6)  # (B, 3, n)
        whole = model.logits_with(output, "L1", weights)
        per = model.recompute_bytes(output, "L1")
        assert per >= 4 * model.state_dim * (output.site("L1").attention.shape[1] + 1)
        with memory_budget(int(2 * per / WORK_SHARE) + 1):  # two candidates a call
            _close(bounded_logits_with(model, output, "L1", weights), whole)


@pytest.mark.parametrize("model_type", DECODER_PARAMS)
def test_decoders_padded_left_or_right_give_the_same_results(model_type: str) -> None:
    _audits_agree(model_type, "padding_side", ("right", "left"), "L0.h2", seed=7)


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_special_tokens_are_never_items(model_type: str) -> None:
    model = _model(model_type)
    batch = random_batch("hf", seed=9, lengths=LENGTHS)
    layout, _, _ = model._layout(batch)
    at_items = layout.ids.gather(1, layout.item_pos)
    assert torch.equal(torch.where(layout.items, at_items, 0), batch.token_ids)
    specials = set(model.prefix_ids) | set(model.suffix_ids)
    assert not (set(at_items[layout.items].tolist()) & specials)
    assert layout.ids[torch.arange(len(LENGTHS)), layout.cls_pos].tolist() == (
        [model.suffix_ids[-1]] * len(LENGTHS) if model.family.decoder
        else [model.prefix_ids[0]] * len(LENGTHS))
    with torch.no_grad():
        output = model.run(batch)
    assert output.site("L0").mask.sum(1).tolist() == LENGTHS


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_word_items_equal_erasing_their_subwords(model_type: str) -> None:
    words = _model(model_type, words=True)
    tokens = _model(model_type)
    batch = random_batch("hf", seed=10, lengths=[7, 3])
    with torch.no_grad():
        w_out, t_out = words.run(batch), tokens.run(batch)
        index = words.word_index(batch)  # (B, T)
        word_w = w_out.site("L0").attention.clone()
        word_w[:, 0] = 0.0  # erase each document's first word
        token_w = t_out.site("L0").attention.clone()
        token_w[index == 0] = 0.0  # and, token-level, its subwords
        _close(words.logits_with(w_out, "L0", word_w[:, None])[:, 0],
               tokens.logits_with(t_out, "L0", token_w[:, None])[:, 0])


@pytest.mark.parametrize("model_type", FAMILY_PARAMS)
def test_gradient_equals_finite_differences(model_type: str) -> None:
    """Central differences of ``logits_with`` against autograd, per item.

    LayerNorm families are float64 end to end: step 1e-6, truncation ~step^2 and rounding
    ~1e-16 / step, so 1e-8 absolute holds. RMSNorm families (and ModernBERT, and DeBERTa v1's own
    LayerNorm) round through float32 inside transformers even in a float64 model (measured: the
    error grows as 1 / step): step 1e-3; the logits carry ~10 float32 roundings (unit 6e-8) of
    O(1) values, ~6e-7, and the quotient divides their difference by 2 * step: ~6e-4; truncation
    ~step^2 / 6 times the third derivative ~ 1e-6. So 1e-3 absolute (gradients are O(0.5): a wrong
    one misses by far more)."""
    float32_inside = model_type in FLOAT32_INSIDE
    eps, atol = (1e-3, 1e-3) if float32_inside else (1e-6, 1e-8)
    # the classification row (hf's default): the rounding count above is its recompute's
    # (every row edited passes more float32 roundings)
    model = _model(model_type, query_rows="cls")
    batch = random_batch("hf", seed=11, lengths=[5, 3])
    output = model.run(batch)
    a = output.site("L0").attention.detach()
    weights = a.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model.logits_with(output, "L0", weights[:, None])[:, 0, 0]
        (grad,) = torch.autograd.grad(logits.sum(), weights)
    with torch.no_grad():
        for item in range(a.shape[1]):
            bump = torch.zeros_like(a)
            bump[:, item] = eps
            numeric = (model.logits_with(output, "L0", (a + bump)[:, None])[:, 0, 0]
                       - model.logits_with(output, "L0", (a - bump)[:, None])[:, 0, 0]) / (2 * eps)
            numeric = numeric * output.site("L0").mask[:, item]
            torch.testing.assert_close(grad[:, item], numeric, rtol=1e-5, atol=atol)


@pytest.mark.full  # ~20 s each on the shared 2-core machine (data preparation, report)
@pytest.mark.parametrize("model_type", ["llama", "roberta", "deberta-v2"])
def test_audit_hf_model_of_a_saved_folder_writes_tables_and_report(tmp_path: Path,
                                                                  model_type: str) -> None:
    """As a user would: ``attnaudit audit --hf-model FOLDER``, then the run reloads from its
    checkpoint (kind ``hf``, rebuilt as the family's host) and audits the same."""
    from test_checkpoint_training import write_dataset

    from attnaudit.checkpoint import load_run
    from attnaudit.cli import main

    folder = save_family(tmp_path / "clf", model_type, labels=("pos", "neg"))
    data = write_dataset(tmp_path / "tiny.jsonl", n=60)
    out = tmp_path / "run"
    assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                 "--max-test-docs", "4", "--rankings", "random,attention,gradient",
                 "--bootstrap", "0", "--permutations", "3", "--no-progress"]) == 0
    assert (out / "report.html").is_file() and (out / "audit" / "removal.parquet").is_file()
    run = load_run(out)
    assert isinstance(run.model, GenericHFClassifier) and run.model.kind == "hf"
    assert run.model.family.name == {"llama": "Llama", "roberta": "RoBERTa",
                                     "deberta-v2": "DeBERTa-v2/v3"}[model_type]


def test_families_not_hosted_are_refused_in_one_line() -> None:
    config = AutoConfig.for_model("deberta", hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64, vocab_size=50,
                                  talking_head=True)
    with pytest.raises(ValueError, match="talking_head=True: its heads' probabilities") as err:
        HFClassifier(config=config.to_dict(), cls_token_id=1, sep_token_id=2)
    assert "\n" not in str(err.value)
    config = AutoConfig.for_model("gpt2", n_embd=32, n_layer=2, n_head=4, vocab_size=50)
    with pytest.raises(ValueError, match="'gpt2' is not a family attnaudit hosts") as err:
        HFClassifier(config=config.to_dict(), cls_token_id=1, sep_token_id=2)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model_type", ["llama", pytest.param("bert", marks=pytest.mark.full)])
def test_a_live_model_object_is_audited_and_reported(tmp_path: Path, model_type: str) -> None:
    """``attnaudit.audit(model, texts, tokenizer=...)`` on a PreTrainedModel in memory (no folder):
    the frames, the summary, the report; the hosted model's logits are the object's own."""
    import attnaudit
    from attnaudit.data.hf_tokenizer import minilm_folder
    from attnaudit.live import LiveAudit

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    torch.manual_seed(0)
    if model_type == "bert":
        from transformers import BertConfig

        config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64, num_labels=2,
                            initializer_range=0.3)
    else:
        config = family_config(model_type, vocab_size=len(tokenizer), num_classes=2)
    model = AutoModelForSequenceClassification.from_config(config).to(torch.bfloat16)
    texts = ["A wonderful, gripping film.", "Dull and far too long; I left early.", "Fine."]
    # 10 permutations (not 100): this test is about the host
    result = attnaudit.audit(model, texts, tokenizer=tokenizer,
                             config=attnaudit.AuditConfig(rankings=("random", "attention"),
                                                          bootstrap=0, permutations=10))
    assert isinstance(result, LiveAudit) and result.model is not None
    assert next(model.parameters()).dtype == torch.float32  # CPU: audited in float32
    assert set(result.removal["doc_id"]) == {"doc0", "doc1", "doc2"}
    assert result.removal["label"].isna().all()  # plain strings are unlabelled
    # the defaults, encoder or decoder: the last layer's classification row ([CLS], the last
    # token), stated in the summary
    assert list(result.summary["by_site"]) == ["L1"] == result.summary["defaults"]["sites"]
    assert result.summary["defaults"]["query_rows"] == "cls" and result.summary["defaults"]["used"]
    # as an audit of a folder's: the architecture and, per site, why documents cannot flip
    assert result.summary["architecture"]["family"] and "L1" in result.summary["cannot_flip"]
    assert result.summary["cannot_flip"]["L1"]["explanation"]
    with torch.no_grad():
        encoded = tokenizer(texts[:1], return_tensors="pt")
        own = model(**encoded).logits
        ids = tokenizer(texts[:1], add_special_tokens=False, return_tensors="pt")["input_ids"]
        hosted = result.model(Batch(["d"], ids, torch.zeros(1, dtype=torch.long)))
    torch.testing.assert_close(hosted, own, rtol=1e-5, atol=1e-5)
    # Unlabelled texts: no accuracy, so the verdict is withheld for that reason.
    assert result.metrics is None and result.summary["verdict"]["status"] == "withheld"
    # Labelled documents: accuracy on them and their majority share feed the verdict's precondition.
    from attnaudit.data.types import Document

    labelled = [Document(f"d{i}", text, name) for i, (text, name)
                in enumerate(zip(texts, ["LABEL_1", "LABEL_0", "LABEL_1"], strict=True))]
    scored = attnaudit.audit(model, labelled, tokenizer=tokenizer,
                             config=attnaudit.AuditConfig(rankings=("random", "attention"),
                                                          bootstrap=0, permutations=10))
    assert scored.metrics is not None and scored.metrics["num_test"] == 3
    assert scored.metrics["majority_test_accuracy"] == pytest.approx(2 / 3)
    predictions = scored.single_weight.drop_duplicates("doc_id")["prediction"].tolist()
    assert scored.metrics["test_accuracy"] == pytest.approx(
        sum(p == d.label for p, d in zip(predictions, labelled, strict=True)) / 3)
    accuracy = next(c for c in scored.summary["verdict"]["preconditions"] if c["name"] == "accuracy")
    assert accuracy["n_test"] == 3 and "Wilson" in accuracy["reason"]
    if model_type == "bert":  # the report's figures take ~10 s: once, in the full tier
        report = result.write_report(tmp_path / "live")
        assert report.is_file() and "attention" in report.read_text(encoding="utf-8")


@pytest.mark.full  # ~20 s on the shared 2-core machine (tokenizer training, data, report)
def test_audit_hf_model_with_roberta_s_own_byte_level_tokenizer(tmp_path: Path) -> None:
    """A RoBERTa folder as users hold it: a byte-level BPE tokenizer whose id 0 is ``<s>`` and whose
    padding is ``<pad>`` = id 1 (not BERT's [PAD] = 0). The data pipeline pads with 0, which no text
    produces here; the host pads the model's input with the model's own id 1."""
    import json

    from test_checkpoint_training import write_dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizerFast

    from attnaudit.checkpoint import load_run
    from attnaudit.cli import main

    data = write_dataset(tmp_path / "tiny.jsonl", n=60)
    texts = [json.loads(line)["text"] for line in data.read_text(encoding="utf-8").splitlines()]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = RobertaTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                     sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                     pad_token="<pad>", mask_token="<mask>")
    assert (tokenizer.convert_ids_to_tokens(0), tokenizer.pad_token_id) == ("<s>", 1)
    folder = tmp_path / "roberta"
    torch.manual_seed(0)
    config = family_config("roberta", vocab_size=len(tokenizer), num_classes=2, pad_id=1,
                           special=(tokenizer.cls_token_id, tokenizer.sep_token_id))
    config.id2label, config.label2id = {0: "pos", 1: "neg"}, {"pos": 0, "neg": 1}
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    out = tmp_path / "run"
    assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                 "--max-test-docs", "4", "--rankings", "random,attention",
                 "--bootstrap", "0", "--permutations", "3", "--no-progress"]) == 0
    run = load_run(out)
    assert isinstance(run.model, GenericHFClassifier) and run.model.pad_id == 1
    assert (out / "audit" / "removal.parquet").is_file() and (out / "report.html").is_file()


# --- DeBERTa-v2/v3's adapter (its attention is outside the registry: forward hooks) ---------------


DEBERTA_PARAMS = ["deberta-v2", pytest.param("deberta", marks=pytest.mark.full)]


@pytest.mark.parametrize("model_type", DEBERTA_PARAMS)
def test_deberta_attention_the_audit_reads_is_its_own_and_the_hooks_leave(model_type: str) -> None:
    """The probabilities the audit records are DeBERTa's real ones (c2p and p2c included): those
    transformers returns with ``output_attentions`` and (v2) those recomputed by hand; the adapter's
    hooks are gone after every pass, an interrupted one included (a live model is left as given)."""
    model = _model(model_type)
    batch = random_batch("hf", seed=12, lengths=[6, 2, 9])
    layout, _, _ = model._layout(batch)
    with torch.no_grad():
        output = model.run(batch, sites=["L0", "L1"])
        own = model.hf(input_ids=layout.ids, attention_mask=layout.mask.long(),
                       output_attentions=True)
        matrices, _ = model.attention_matrices(batch)  # (L, B, H, T', T'), reordered
    _close(output.logits, own.logits)
    items = layout.item_pos[:, None, :].expand(-1, model.num_heads, -1)  # (B, H, n)
    for layer in range(model.num_layers):
        cls_rows = own.attentions[layer][:, :, 0]  # (B, H, T'): [CLS] is position 0
        _close(output.site(f"L{layer}").cache["probs"], cls_rows.gather(-1, items))
        on = layout.items[:, None, :]  # (B, 1, n): off items the gather reads [CLS] itself
        _close(matrices[layer, :, :, 0, 1 : 1 + items.shape[-1]] * on,
               cls_rows.gather(-1, items) * on)
    for b in range(len(batch.token_ids) if model_type == "deberta-v2" else 0):
        ids = layout.ids[b][layout.mask[b]].tolist()
        _, by_hand = deberta_by_hand(model.hf, ids)
        for layer in range(model.num_layers):
            _close(own.attentions[layer][b, :, : len(ids), : len(ids)], by_hand[layer])
    assert not [m for m in model.hf.modules() if m._forward_hooks]

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt  # after every layer ran, inside the hooked pass

    stop = model.hf.get_submodule("pooler").register_forward_pre_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), torch.no_grad():
            model.run(batch)
    finally:
        stop.remove()
    assert not [m for m in model.hf.modules() if m._forward_hooks]


@pytest.mark.parametrize("model_type", DEBERTA_PARAMS)
@pytest.mark.parametrize(("site", "layer", "head"), [("L1", 1, None), ("L0.h2", 0, 2)])
def test_deberta_erasure_in_every_query_row_equals_a_masked_recompute(
        model_type: str, site: str, layer: int, head: int | None) -> None:
    """``--query-rows all`` on DeBERTa: the erased keys out of every row of the site's layer
    (and head), against masking them before its softmax: v2 by hand and through its own module,
    v1 through its own module (:func:`_premasked_logits`)."""
    model = _model(model_type, query_rows="all")
    batch = random_batch("hf", seed=13, lengths=[5, 8])
    with torch.no_grad():
        for got, erased in _erasure_cases(model, batch, site, seed=14)[1]:
            _close(got, _premasked_logits(model, batch, layer, head, erased, rows="all"))
            if model_type == "deberta-v2":
                _close(got, _deberta_masked_logits(model, batch, layer, head, erased, rows="all"))


def test_every_row_beyond_a_sliding_window_is_said_not_exact(caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    """Mistral (window 4 in the table): erasing nothing from every query row of a document longer
    than the window does not give the model's logits (items outside the classification row's
    window count as erased), so the audit warns once; within the window, and from the
    classification row at any length, nothing is said and erasing nothing is exact."""
    batch = random_batch("hf", seed=3, lengths=[7, 2])
    for rows, warned in [("cls", False), ("all", True)]:
        caplog.clear()
        model = _model("mistral", query_rows=rows)
        with torch.no_grad():
            out = model.run(batch)
            a = out.site("L0").attention
            logits = model.logits_with(out, "L0", a[:, None, :])[:, 0]
        assert ("longer than the sliding window (4)" in caplog.text) is warned
        if rows == "cls":
            _close(logits, out.logits)
        else:  # the short document, within the window, is exact; the long one is not
            _close(logits[1], out.logits[1])
            assert not torch.allclose(logits[0], out.logits[0], atol=1e-3)
