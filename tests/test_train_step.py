"""The training step (``train.train_epoch``): the same numbers as the per-step loop it replaced (on
the CPU, and on a GPU when there is one), and the progress bar."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
import torch
from torch import nn
from tqdm import tqdm

import attnaudit.train as train_module
from attnaudit.data.batching import make_batches
from attnaudit.data.types import Batch, EncodedDocument
from attnaudit.models import AttentionClassifier, build_model, parse_model_name
from attnaudit.train import EpochTotals, train_epoch

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
VOCAB = 60


def _model(name: str, device: str = "cpu") -> AttentionClassifier:
    torch.manual_seed(0)
    kind, encoder = parse_model_name(name)
    model = build_model(kind, encoder, vocab_size=VOCAB, num_classes=3, embedding_dim=12, hidden=6)
    return model.to(device)


def _docs(n: int) -> list[EncodedDocument]:
    """``n`` documents of 1-5 sentences of 1-8 random tokens, random labels of 3 classes."""
    generator = torch.Generator().manual_seed(1)

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high, (), generator=generator))

    docs = []
    for i in range(n):
        sentences = [[draw(2, VOCAB) for _ in range(draw(1, 9))] for _ in range(draw(1, 6))]
        tokens = [[f"w{t}" for t in sentence] for sentence in sentences]
        docs.append(EncodedDocument(f"d{i}", draw(0, 3), sentences, tokens))
    return docs


def _batches(name: str) -> list[Batch]:
    docs = _docs(40)
    hierarchical = parse_model_name(name)[0] == "han"
    return make_batches(docs, hierarchical=hierarchical, batch_size=8, shuffle=True, seed=3)


def _per_step_loop(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Sequence[Batch],
                   device: str, clip: float) -> EpochTotals:
    """The training loop as train_run ran it before issue 8: every total read back per step."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for batch in batches:
        batch = batch.to(device)
        logits = model(batch)
        loss = nn.CrossEntropyLoss()(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total_loss += loss.item() * len(batch)
        correct += int((logits.argmax(-1) == batch.labels).sum())
        seen += len(batch)
    return EpochTotals(loss_sum=total_loss, correct=correct, seen=seen)


def _train_both(name: str, device: str
                ) -> tuple[EpochTotals, EpochTotals, AttentionClassifier, AttentionClassifier]:
    """The old loop and train_epoch, each from the same initial model, on the same batches."""
    batches = _batches(name)
    results = []
    for new in (False, True):
        model = _model(name, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        torch.manual_seed(5)  # dropout draws
        totals = (train_epoch(model, optimizer, batches, device=torch.device(device), grad_clip=0.5)
                  if new else _per_step_loop(model, optimizer, batches, device, 0.5))
        results.append((totals, model))
    (old, old_model), (new_totals, new_model) = results
    return old, new_totals, old_model, new_model


def _assert_same(a: AttentionClassifier, b: AttentionClassifier) -> None:
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), key


@pytest.mark.parametrize("name", ["flan-rnn", "flan-cnn", "han-rnn", "han-cnn"])
def test_train_epoch_equals_the_per_step_loop_bit_for_bit(name: str) -> None:
    """Totals kept on the device, read once: the same loss sum, accuracy and weights (a small clip,
    so that clipping happens)."""
    old, new, old_model, new_model = _train_both(name, "cpu")
    assert new == old  # the float64 loss sum too, exactly
    assert new.seen == 40
    _assert_same(old_model, new_model)


def test_train_epoch_refreshes_the_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "POSTFIX_INTERVAL", 0.0)  # refresh after every step
    batches = _batches("flan-none")
    model = _model("flan-none")
    with tqdm(total=40, disable=False, file=io.StringIO()) as bar:
        totals = train_epoch(model, torch.optim.Adam(model.parameters()), batches,
                             device=torch.device("cpu"), grad_clip=10.0, bar=bar)
        assert bar.n == 40
        assert bar.postfix is not None and "loss=" in bar.postfix and "acc=" in bar.postfix
    assert totals.seen == 40 and 0 <= totals.correct <= 40


def test_to_device_off_cuda_is_batch_to() -> None:
    batch = _batches("flan-none")[0]
    moved = train_module.to_device(batch, torch.device("cpu"))
    assert moved.token_ids is batch.token_ids and moved.labels is batch.labels


@CUDA
@pytest.mark.parametrize("name", ["flan-rnn", "han-rnn"])
def test_train_epoch_on_cuda_equals_the_old_per_step_loop(name: str) -> None:
    """Pinned asynchronous copies and totals read once change no number on a GPU either."""
    old, new, old_model, new_model = _train_both(name, "cuda")
    assert new == old
    _assert_same(old_model, new_model)
