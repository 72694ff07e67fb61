"""Invariants every classifier must satisfy, over a table of all six model variants."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_logits_close

from attnaudit.data.types import PAD_ID, Batch
from attnaudit.models import (
    PAPER_MODEL_NAMES,
    AttentionClassifier,
    HierarchicalAttentionClassifier,
    build_model,
    is_hierarchical,
    model_name,
    parse_model_name,
)
from attnaudit.models.encoders import CNNEncoder, RNNEncoder, build_encoder

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

VOCAB, CLASSES = 40, 3
EMB, HID = 12, 6  # small sizes keep every test well under a second
D_TINY = 32  # the longest reduction of these models: 4 sentences of 7 tokens and padding


def tiny_model(name: str, seed: int = 0) -> AttentionClassifier:
    kind, encoder = parse_model_name(name)
    torch.manual_seed(seed)
    return build_model(kind, encoder, vocab_size=VOCAB, num_classes=CLASSES, embedding_dim=EMB,
                       hidden=HID)


def random_docs(n: int, seed: int) -> list[list[list[int]]]:
    """``n`` documents of 1-4 sentences of 1-7 real token ids each."""
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        num_sentences = int(torch.randint(1, 5, (1,), generator=g))
        docs.append(
            [
                torch.randint(2, VOCAB, (int(torch.randint(1, 8, (1,), generator=g)),), generator=g)
                .tolist()
                for _ in range(num_sentences)
            ]
        )
    return docs


def make_batch(docs: list[list[list[int]]], *, hierarchical: bool, extra_pad: int = 0) -> Batch:
    """Pad by hand (independent of the data layer's collate); ``extra_pad`` adds padding beyond the
    longest document, to check that more padding changes nothing."""
    b = len(docs)
    if hierarchical:
        s = max(len(d) for d in docs) + extra_pad
        w = max(len(sent) for d in docs for sent in d) + extra_pad
        ids = torch.full((b, s, w), PAD_ID, dtype=torch.long)
        for i, doc in enumerate(docs):
            for j, sent in enumerate(doc):
                ids[i, j, : len(sent)] = torch.tensor(sent)
    else:
        flat = [[t for sent in d for t in sent] for d in docs]
        t = max(len(f) for f in flat) + extra_pad
        ids = torch.full((b, t), PAD_ID, dtype=torch.long)
        for i, f in enumerate(flat):
            ids[i, : len(f)] = torch.tensor(f)
    return Batch([f"d{i}" for i in range(b)], ids, torch.arange(b) % CLASSES)


def batch_for(name: str, docs: list[list[list[int]]], extra_pad: int = 0) -> Batch:
    return make_batch(docs, hierarchical=is_hierarchical(parse_model_name(name)[0]),
                      extra_pad=extra_pad)


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_output_shapes(name: str) -> None:
    model = tiny_model(name).eval()
    batch = batch_for(name, random_docs(5, seed=1))
    out = model.run(batch)
    n = batch.token_ids.shape[1]  # tokens (flan) or sentences (han)
    pooled = out.site(model.pooling_site)
    assert pooled.cache["states"].shape == (5, n, model.state_dim)
    assert pooled.mask.shape == (5, n) and pooled.mask.dtype == torch.bool
    assert pooled.attention.shape == (5, n)
    assert out.logits.shape == (5, CLASSES)
    expected_dim = EMB if name.endswith("none") else 2 * HID
    assert model.state_dim == expected_dim
    if model.hierarchical:
        word = out.site("word")
        assert word.attention.shape == word.mask.shape == (5, batch.token_ids.shape[2])


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_states_are_zero_on_padding_and_padding_changes_nothing(name: str) -> None:
    model = tiny_model(name).eval()
    docs = random_docs(6, seed=2)
    with torch.no_grad():
        padded = model.run(batch_for(name, docs, extra_pad=2))
        tight = model.run(batch_for(name, docs))
    pooled = padded.site(model.pooling_site)
    assert torch.all(pooled.cache["states"][~pooled.mask] == 0)
    # Padding changes the reductions' lengths, hence their order: float32 rounding (tolerances.py)
    assert_logits_close(padded.logits, tight.logits, d=D_TINY)
    for site in model.site_names():
        n = tight.site(site).attention.shape[1]
        assert_logits_close(padded.site(site).attention[:, :n], tight.site(site).attention,
                            d=D_TINY)
        assert torch.all(padded.site(site).attention[:, n:] == 0)


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_logits_with_rejects_an_unknown_site(name: str) -> None:
    model = tiny_model(name).eval()
    batch = batch_for(name, random_docs(2, seed=3))
    with torch.no_grad():
        out = model.run(batch)
    weights = out.site(model.pooling_site).attention[:, None]
    with pytest.raises(ValueError):
        model.logits_with(out, "nope", weights)
    assert model.linear_readout(out, "nope") is None


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = tiny_model(name).train()
    batch = batch_for(name, random_docs(6, seed=5))
    torch.nn.functional.cross_entropy(model(batch), batch.labels).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_same_seed_same_result(name: str) -> None:
    batch = batch_for(name, random_docs(4, seed=6))
    results = []
    for _ in range(2):
        model = tiny_model(name, seed=7).train()  # train mode: dropout must be seeded too
        torch.manual_seed(8)
        results.append(model(batch))
    assert torch.equal(results[0], results[1])
    other = tiny_model(name, seed=9).eval()(batch)
    assert not torch.equal(results[0], other)


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_empty_document_gives_zero_attention_not_nan(name: str) -> None:
    model = tiny_model(name).eval()
    batch = batch_for(name, random_docs(3, seed=10))
    batch.token_ids[1] = PAD_ID  # a document with no real item: its ids and its mask (padding is
    batch.mask[1] = False  # the mask's, Batch.mask, not an id's)
    out = model.run(batch)
    assert torch.isfinite(out.logits).all()
    for site in model.site_names():
        attention = out.site(site).attention
        assert torch.isfinite(attention).all()
        assert torch.all(attention[1] == 0), site
        torch.testing.assert_close(attention[[0, 2]].sum(-1), torch.ones(2))


@pytest.mark.parametrize("encoder", ["none", "cnn", "rnn"])
def test_han_word_attention_sums_to_one_per_sentence(encoder: str) -> None:
    model = tiny_model(f"han-{encoder}").eval()
    assert isinstance(model, HierarchicalAttentionClassifier)
    batch = batch_for("han-rnn", random_docs(5, seed=11), extra_pad=1)
    weights = model.word_attention(batch)
    real_sentences = (batch.token_ids != PAD_ID).any(-1)
    assert weights.shape == batch.token_ids.shape
    assert torch.all(weights[batch.token_ids == PAD_ID] == 0)
    torch.testing.assert_close(weights.sum(-1)[real_sentences],
                               torch.ones(int(real_sentences.sum())))


def test_wrong_batch_shape_is_a_clear_error() -> None:
    docs = random_docs(2, seed=12)
    with pytest.raises(ValueError, match="hierarchical=False"):
        tiny_model("flan-rnn")(make_batch(docs, hierarchical=True))
    with pytest.raises(ValueError, match="hierarchical=True"):
        tiny_model("han-rnn")(make_batch(docs, hierarchical=False))


def test_names_and_registry() -> None:
    assert PAPER_MODEL_NAMES == ("flan-none", "flan-cnn", "flan-rnn", "han-none", "han-cnn", "han-rnn")
    assert parse_model_name("HAN-cnn") == ("han", "cnn")
    assert model_name("flan", "rnn") == "flan-rnn"
    for bad in ("flan", "flan-lstm", "bert-rnn"):
        with pytest.raises(ValueError):
            parse_model_name(bad)
    with pytest.raises(ValueError, match="odd"):
        CNNEncoder(4, widths=(2,))


def test_build_model_copies_embeddings() -> None:
    table = torch.randn(VOCAB, EMB)
    model = build_model("flan", "none", vocab_size=VOCAB, num_classes=CLASSES,
                        embeddings=table, embedding_dim=EMB, hidden=HID)
    assert torch.equal(model.get_parameter("embedding.weight"), table)
    with pytest.raises(ValueError, match="shape"):
        build_model("flan", "none", vocab_size=VOCAB + 1, num_classes=CLASSES,
                    embeddings=table, embedding_dim=EMB, hidden=HID)


def test_rnn_padding_does_not_leak_into_backward_direction() -> None:
    """The packed BiGRU must give a short row the same states whatever follows its padding."""
    torch.manual_seed(0)
    enc = build_encoder("rnn", 5, hidden=4).eval()
    x = torch.randn(1, 6, 5)
    mask = torch.tensor([[True, True, True, False, False, False]])
    noisy = x.clone()
    noisy[:, 3:] = 100.0  # garbage in the padded positions
    torch.testing.assert_close(enc(x, mask), enc(noisy, mask))
    assert torch.all(enc(noisy, mask)[:, 3:] == 0)


def test_rnn_encoder_equals_a_packed_bidirectional_gru() -> None:
    """Reference: torch's packed BiGRU with the same weights (what the original system ran)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    enc = build_encoder("rnn", 5, hidden=4).eval()
    assert isinstance(enc, RNNEncoder)
    reference = torch.nn.GRU(5, 4, batch_first=True, bidirectional=True)
    for name, value in enc.forward_gru.named_parameters():
        getattr(reference, name).data.copy_(value)
    for name, value in enc.backward_gru.named_parameters():
        getattr(reference, f"{name}_reverse").data.copy_(value)
    lengths = torch.tensor([6, 1, 4, 3])
    x = torch.randn(4, 6, 5)
    mask = torch.arange(6) < lengths[:, None]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=6)
    torch.testing.assert_close(enc(x, mask), expected)


@pytest.mark.parametrize("encoder", ["none", "cnn", "rnn"])
def test_han_word_level_chunking_changes_nothing(encoder: str) -> None:
    model = tiny_model(f"han-{encoder}").eval()
    assert isinstance(model, HierarchicalAttentionClassifier)
    batch = batch_for("han-rnn", random_docs(6, seed=13), extra_pad=2)
    with torch.no_grad():
        whole = model.run(batch)
        model.word_chunk = 3  # many chunks of 3 sentences
        chunked = model.run(batch)
    assert_logits_close(chunked.logits, whole.logits, d=D_TINY)  # float32 rounding: tolerances.py
    for site in model.site_names():
        for key, value in whole.site(site).cache.items():
            assert_logits_close(chunked.site(site).cache[key], value, d=D_TINY)
        assert_logits_close(chunked.site(site).attention, whole.site(site).attention, d=D_TINY)


@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_all_empty_batch_is_finite(name: str) -> None:
    model = tiny_model(name).eval()
    batch = batch_for(name, random_docs(2, seed=14))
    batch.token_ids.fill_(PAD_ID)
    batch.mask.fill_(False)  # padding is the mask's (Batch.mask)
    out = model.run(batch)
    assert torch.isfinite(out.logits).all()
    for site in model.site_names():
        assert torch.all(out.site(site).attention == 0), site
