"""Training throughput (documents per second) of the classifiers on IMDB, against a plain PyTorch loop.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train_throughput.py [--device cpu|cuda] [--docs 2000] [--batches 20]
        [--models flan-rnn,...] [--loops attnaudit,plain,legacy] [--rounds 3] [--batch-size 64]
        [--threads N] [--profile DIR]

Reads ``../shared/data/imdb50k.jsonl.gz`` (relative to the repository root's parent directory) and
exits with a message when it is absent. For each model, every loop trains its own copy on the same
``--batches`` length-bucketed batches (after one untimed warm-up batch), ``--rounds`` times, the loops
alternating (A B, B A, ...) so that drift of the machine's speed falls on all of them alike; the
table gives the median docs/s of each loop and its ratio to ``--reference`` (``plain``), all from one
process:

- ``attnaudit``: :func:`attnaudit.train.train_epoch`, the step ``attnaudit train`` runs (batch copy
  to the device, forward, loss, backward, clip, Adam, loss and accuracy totals).
- ``plain``: the reference, a small independent ``nn.Module`` written below with the same
  architecture and sizes (embedding, encoder, additive attention, linear head; HAN: word level over the
  batch's real sentences, then sentence level), trained the same way (Adam, same lr, same clip, loss
  and accuracy totals kept on the device, batches copied from pinned memory) and written the way a
  fast plain PyTorch loop would be: the BiGRU is one ``nn.GRU(bidirectional=True)`` over the padded
  batch. Its backward direction reads a short row's padding before its tokens, so on padded rows it
  is not quite the same function (attnaudit's is exact), but it does the same work, both directions
  in one cuDNN call where attnaudit's encoder makes one per direction.
- ``plain-packed``: ``plain`` with the BiGRU over a ``pack_padded_sequence`` (lengths counted and
  rows sorted on the host, so packing needs no host sync), the textbook exact way. Far slower here:
  on the GPU, cuDNN runs packed batches of unequal lengths step by step rather than with its
  persistent kernels (measured on an H200: 2.2k against 11.6k docs/s for flan-rnn); on the CPU,
  packing makes the GRU's backward pass many times slower (see ``RNNEncoder``).
- ``legacy``: the training step as it was before issue 8 (blocking batch copy, ``loss.item()`` and
  the accuracy read back every step).

The first output line names the machine (CPU or GPU, threads, torch version); compare ratios, not
docs/s, across machines. With ``--profile DIR``, each (model, loop) pair is also run under
``torch.profiler`` for a few steps, and ``DIR/<model>_<loop>.txt`` gets its operator tables sorted
by self device time (CUDA only) and by self host time. Timings on a shared machine are noisy: run it
twice.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnaudit.config import ModelConfig, TrainConfig
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.data.types import PAD_ID, Batch
from attnaudit.models import (
    MODEL_NAMES,
    AttentionClassifier,
    build_model,
    is_hierarchical,
    parse_model_name,
)
from attnaudit.train import train_epoch

logger = logging.getLogger("train_throughput")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb50k.jsonl.gz"
LOOPS = ("attnaudit", "plain", "plain-packed", "legacy")
#: steps recorded per (model, loop) under the profiler, after one unrecorded step
PROFILE_STEPS = 5


# --- the reference: a plain PyTorch model of the same architecture ----------------------------------


class PlainEncoder(nn.Module):
    """``none`` / ``cnn`` / ``rnn`` over ``(N, L, E)`` rows sorted by length, longest first.

    ``rnn`` is one bidirectional ``nn.GRU``: over a packed batch when given the host ``lengths``, else
    over the padding too. ``cnn``: dropout, then convolutions of widths 3 and 5 (same-length
    padding), ReLU, concatenated; the inputs' padding is already zero (the embedding's padding row).
    """

    def __init__(self, kind: str, input_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        if kind == "rnn":
            self.gru = nn.GRU(input_dim, hidden, batch_first=True, bidirectional=True)
            self.output_dim = 2 * hidden
        elif kind == "cnn":
            self.dropout = nn.Dropout(dropout)
            self.convs = nn.ModuleList(nn.Conv1d(input_dim, hidden, w, padding=w // 2) for w in (3, 5))
            self.output_dim = 2 * hidden
        else:
            self.output_dim = input_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """``(N, L, E)`` and, packed, host ``(N,)`` lengths (descending, all > 0) -> ``(N, L, d)``."""
        if self.kind == "rnn":
            if lengths is None:
                return self.gru(x)[0]  # (N, L, d)
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=True)
            return pad_packed_sequence(self.gru(packed)[0], batch_first=True,
                                       total_length=x.shape[1])[0]  # (N, L, d)
        if self.kind == "cnn":
            x = self.dropout(x).transpose(1, 2)  # (N, E, L)
            return torch.cat([torch.relu(conv(x)) for conv in self.convs], dim=1).transpose(1, 2)
        return x


class PlainAttention(nn.Module):
    """``score_i = u . tanh(W h_i + b)``, softmax over the real items: ``(N, L, d) -> (N, d)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.context = nn.Linear(dim, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.context(torch.tanh(self.proj(h))).squeeze(-1)  # (N, L)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (N, L)
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1)  # (N, d)


class PlainModel(nn.Module):
    """FLAN or HAN written plainly; :func:`plain_inputs` prepares its inputs on the host."""

    def __init__(self, kind: str, encoder: str, vocab_size: int, num_classes: int, defaults: ModelConfig,
                 packed: bool) -> None:
        super().__init__()
        e, hidden, dropout = defaults.embedding_dim, defaults.hidden, defaults.dropout
        self.hierarchical, self.packed = kind == "han", packed
        self.embedding = nn.Embedding(vocab_size, e, padding_idx=PAD_ID)
        self.encoder = PlainEncoder(encoder, e, hidden, dropout)  # tokens / words
        d = self.encoder.output_dim
        self.attention = PlainAttention(d)
        if self.hierarchical:
            self.sentence_encoder = PlainEncoder(encoder, d, hidden, dropout)
            d = self.sentence_encoder.output_dim
            self.sentence_attention = PlainAttention(d)
        self.classifier = nn.Linear(d, num_classes)

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        """``(B, C)`` logits of the documents in ``inputs["ids"]``'s order (packed: length-sorted)."""
        ids = inputs["ids"]
        if not self.hierarchical:  # (B, T)
            return self.classifier(self.attention(self.encoder(self.embedding(ids), inputs["lengths"]),
                                                  ids != PAD_ID))
        b, s, w = ids.shape  # documents sorted by sentence count
        words = ids.view(b * s, w).index_select(0, inputs["sentences"])  # (N, W) real sentences
        vectors = self.attention(self.encoder(self.embedding(words), inputs["word_lengths"]),
                                 words != PAD_ID)  # (N, dw)
        sentences = vectors.new_zeros(b * s, vectors.shape[1])  # (B*S, dw): padding stays zero
        sentences = sentences.index_copy(0, inputs["sentences"], vectors)
        h = self.sentence_encoder(sentences.view(b, s, -1), inputs["sentence_counts"])  # (B, S, d)
        return self.classifier(self.sentence_attention(h, ids.ne(PAD_ID).any(dim=-1)))


def plain_inputs(batch: Batch, device: torch.device, packed: bool
                 ) -> tuple[dict[str, Any], torch.Tensor]:
    """A host batch -> the plain model's inputs and labels on ``device``, as a plain loop makes them.

    Whatever needs the lengths is computed on the host (HAN: which sentences are real; packed: the
    lengths, and rows sorted longest first), so no step waits for the GPU; tensors travel from
    pinned memory without blocking.
    """
    ids, labels = batch.token_ids, batch.labels
    cuda = device.type == "cuda"

    def send(t: torch.Tensor) -> torch.Tensor:
        return t.pin_memory().to(device, non_blocking=True) if cuda else t

    if ids.dim() == 2:
        if not packed:
            return {"ids": send(ids), "lengths": None}, send(labels)
        lengths = (ids != PAD_ID).sum(dim=1)  # (B,)
        order = torch.argsort(lengths, descending=True)
        return {"ids": send(ids[order]), "lengths": lengths[order]}, send(labels[order])
    word_lengths = (ids != PAD_ID).sum(dim=2)  # (B, S)
    flat = word_lengths.flatten()  # (B*S,)
    if not packed:
        real = torch.nonzero(flat).squeeze(1)  # (N,) on the host
        return {"ids": send(ids), "sentences": send(real), "word_lengths": None,
                "sentence_counts": None}, send(labels)
    counts = (word_lengths > 0).sum(dim=1)  # (B,) real sentences are a prefix
    order = torch.argsort(counts, descending=True)
    ids, flat = ids[order], word_lengths[order].flatten()
    real = torch.nonzero(flat).squeeze(1)  # (N,)
    real = real[torch.argsort(flat[real], descending=True)]  # longest first
    return {"ids": send(ids), "sentences": send(real), "word_lengths": flat[real],
            "sentence_counts": counts[order]}, send(labels[order])


# --- the loops ---------------------------------------------------------------------------------------


def plain_loop(model: PlainModel, optimizer: torch.optim.Optimizer, batches: Sequence[Batch],
               device: torch.device, grad_clip: float) -> tuple[float, int]:
    """The reference step: same loss, clip, optimizer and totals as ``train_epoch``."""
    model.train()
    params = list(model.parameters())
    losses, all_logits, all_labels = [], [], []
    for batch in batches:
        inputs, labels = plain_inputs(batch, device, model.packed)
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        losses.append(loss.detach())  # kept on the device and read once, as train_epoch does
        all_logits.append(logits.detach())
        all_labels.append(labels)
    sizes = torch.tensor([len(labels) for labels in all_labels], dtype=torch.float64)
    loss_sum = float((torch.stack(losses).double().cpu() * sizes).sum())
    return loss_sum, int((torch.cat(all_logits).argmax(dim=-1) == torch.cat(all_labels)).sum())


def legacy_loop(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Sequence[Batch],
                device: torch.device, grad_clip: float) -> tuple[float, int]:
    """The training step of ``train_run`` before issue 8: two host syncs per step."""
    model.train()
    total_loss, correct = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        logits = model(batch)
        loss = nn.functional.cross_entropy(logits, batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total_loss += loss.item() * len(batch)
        correct += int((logits.argmax(-1) == batch.labels).sum())
    return total_loss, correct


def attnaudit_loop(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Sequence[Batch],
                   device: torch.device, grad_clip: float) -> tuple[float, int]:
    """``attnaudit train``'s own epoch function."""
    assert isinstance(model, AttentionClassifier)
    totals = train_epoch(model, optimizer, batches, device=device, grad_clip=grad_clip)
    return totals.loss_sum, totals.correct


Loop = Callable[[Any, torch.optim.Optimizer, Sequence[Batch], torch.device, float], object]
Runner = tuple[Loop, nn.Module, torch.optim.Optimizer]


def make_runner(loop: str, name: str, vocab_size: int, num_classes: int, device: torch.device,
                lr: float) -> Runner:
    """The loop function, its own freshly initialised model (seed 0) and its Adam optimizer."""
    kind, encoder = parse_model_name(name)
    defaults = ModelConfig(kind=kind, encoder=encoder)
    torch.manual_seed(0)
    model: nn.Module
    if loop.startswith("plain"):
        model = PlainModel(kind, encoder, vocab_size, num_classes, defaults,
                           packed=loop == "plain-packed")
        function: Loop = plain_loop
    else:
        model = build_model(kind, encoder, vocab_size=vocab_size, num_classes=num_classes,
                            embedding_dim=defaults.embedding_dim, hidden=defaults.hidden,
                            dropout=defaults.dropout)
        function = legacy_loop if loop == "legacy" else attnaudit_loop
    model = model.to(device)
    return function, model, torch.optim.Adam(model.parameters(), lr=lr)


# --- measuring ---------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> str:
    """One line naming the hardware and software the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = f"CPU {cpu}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        where = (f"GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, cuDNN "
                 f"{torch.backends.cudnn.version()}), host {where}")
    return f"machine: {where}, torch {torch.__version__}, Python {platform.python_version()}"


def run(runner: Runner, batches: Sequence[Batch], device: torch.device, clip: float) -> None:
    """One pass of ``runner``'s loop over ``batches``."""
    function, model, optimizer = runner
    function(model, optimizer, batches, device, clip)


def profile(path: Path, runner: Runner, batches: Sequence[Batch], device: torch.device,
            clip: float) -> None:
    """Write the operator tables of ``PROFILE_STEPS`` steps of ``runner`` to ``path``: by self
    device time (on CUDA) and by self host time (on a GPU, a step whose device work is short is
    bound by the host's time launching it)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    steps = batches[:PROFILE_STEPS]
    with torch_profile(activities=activities):  # the profiler's own start-up, the first time
        run(runner, steps[:1], device, clip)
        synchronize(device)
    started = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        run(runner, steps, device, clip)
        synchronize(device)
    wall = time.perf_counter() - started
    averages = prof.key_averages()
    tables = [f"{len(steps)} steps, {wall * 1e3:.1f} ms wall under the profiler, "
              f"{sum(len(b) for b in steps)} docs"]
    for key in (["self_cuda_time_total"] if cuda else []) + ["self_cpu_time_total"]:
        tables += [f"\nsorted by {key}:", averages.table(sort_by=key, row_limit=25)]
    path.write_text("\n".join(tables) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"IMDB JSONL (default {DATA})")
    parser.add_argument("--docs", type=int, default=2000, help="training documents to prepare")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per loop and round")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated names")
    parser.add_argument("--loops", default="attnaudit,plain",
                        help=f"comma-separated, from {', '.join(LOOPS)}")
    parser.add_argument("--reference", default="plain", help="the loop the ratios are to")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size,
                        help="documents per batch (default: training's)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per loop, alternating")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="write torch.profiler tables of each model and loop into DIR")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    loops = args.loops.split(",")
    unknown = sorted(set(loops) - set(LOOPS))
    if unknown:
        parser.error(f"unknown loop(s) {unknown}; choose from {list(LOOPS)}")
    reference = args.reference
    if reference not in loops:
        parser.error(f"the reference loop {reference!r} is not among --loops")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine(device), flush=True)
    if not args.data.is_file():
        logger.info("skipped: %s not found (the IMDB file lives beside the repository)", args.data)
        return 0
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    train_defaults = TrainConfig(batch_size=args.batch_size)
    prepared = prepare_data(
        DataConfig(path=str(args.data), max_train_docs=args.docs, max_test_docs=1, dev_fraction=0.01)
    )
    docs = prepared.train
    vocab_size, num_classes = len(prepared.vocab), len(prepared.label_names)
    mean_tokens = sum(d.num_tokens for d in docs) / len(docs)
    logger.info("IMDB: %d training docs, mean %.0f tokens, vocab %d, batch %d, max %s tokens/batch, "
                "lr %g, clip %g, %d rounds of %d batches", len(docs), mean_tokens, vocab_size,
                train_defaults.batch_size, train_defaults.max_batch_tokens, train_defaults.lr,
                train_defaults.grad_clip, args.rounds, args.batches)
    rows: list[tuple[str, dict[str, float]]] = []
    for name in args.models.split(","):
        kind, _ = parse_model_name(name)
        batches = make_batches(docs, hierarchical=is_hierarchical(kind),
                               batch_size=train_defaults.batch_size,
                               max_batch_tokens=train_defaults.max_batch_tokens, shuffle=True, seed=0)
        needed = args.batches + 1
        batches = (batches * (needed // len(batches) + 1))[:needed]
        warmup, timed = batches[:1], batches[1:]
        count = sum(len(b) for b in timed)
        runners = {loop: make_runner(loop, name, vocab_size, num_classes, device, train_defaults.lr)
                   for loop in loops}
        clip = train_defaults.grad_clip
        for loop in loops:  # one-off costs (allocations, cuDNN plans, kernel loads) stay untimed
            run(runners[loop], warmup, device, clip)
        rates: dict[str, list[float]] = {loop: [] for loop in loops}
        for r in range(args.rounds):
            for loop in loops if r % 2 == 0 else loops[::-1]:
                synchronize(device)
                started = time.perf_counter()
                run(runners[loop], timed, device, clip)
                synchronize(device)
                rates[loop].append(count / (time.perf_counter() - started))
        medians = {loop: statistics.median(values) for loop, values in rates.items()}
        rows.append((name, medians))
        logger.info("%-9s %s", name, "  ".join(
            f"{loop} {' '.join(f'{v:.0f}' for v in values)}" for loop, values in rates.items()))
        if args.profile:
            for loop in loops:
                profile(args.profile / f"{name}_{loop}.txt", runners[loop], timed, device, clip)

    others = [loop for loop in loops if loop != reference]
    print(f"{'model':<10}" + "".join(f" {loop + ' docs/s':>19}" for loop in loops)
          + "".join(f" {loop + '/' + reference:>24}" for loop in others))
    for name, medians in rows:
        ratios = "".join(f" {medians[loop] / medians[reference]:23.2f}x" for loop in others)
        print(f"{name:<10}" + "".join(f" {medians[loop]:19.1f}" for loop in loops) + ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
