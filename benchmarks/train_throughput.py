"""Training throughput (documents per second) of the six classifiers on IMDB.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train_throughput.py [--docs 2000] [--batches 20] [--models flan-rnn,...]

Reads ``../shared/data/imdb50k.jsonl.gz`` (relative to the repository root's parent directory) and
exits with a message when it is absent. Each variant trains for ``--batches`` batches (after one warm-up
batch) with the training loop's settings (Adam, clip, length-bucketed batches); the table gives docs/s
and the speed relative to flan-none measured in the same process, which is the number to compare across
machines. Timings on a shared machine are noisy: run it twice.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
from torch import nn

from attnaudit.config import ModelConfig, TrainConfig
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.models import MODEL_NAMES, build_model, is_hierarchical, parse_model_name

logger = logging.getLogger("train_throughput")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imdb50k.jsonl.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"IMDB JSONL (default {DATA})")
    parser.add_argument("--docs", type=int, default=2000, help="training documents to prepare")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per model")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated names")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.is_file():
        logger.info("skipped: %s not found (the IMDB file lives beside the repository)", args.data)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)

    train_defaults = TrainConfig()
    prepared = prepare_data(
        DataConfig(path=str(args.data), max_train_docs=args.docs, max_test_docs=1, dev_fraction=0.01)
    )
    docs = prepared.train
    mean_tokens = sum(d.num_tokens for d in docs) / len(docs)
    logger.info(
        "IMDB: %d training docs, mean %.0f tokens, batch %d, max %s tokens/batch, %d torch threads",
        len(docs), mean_tokens, train_defaults.batch_size, train_defaults.max_batch_tokens,
        torch.get_num_threads(),
    )
    rows: list[tuple[str, float]] = []
    for name in args.models.split(","):
        kind, encoder = parse_model_name(name)
        defaults = ModelConfig(kind=kind, encoder=encoder)
        torch.manual_seed(0)
        model = build_model(kind, encoder, vocab_size=len(prepared.vocab),
                            num_classes=len(prepared.label_names),
                            embedding_dim=defaults.embedding_dim, hidden=defaults.hidden,
                            dropout=defaults.dropout).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=train_defaults.lr)
        batches = make_batches(docs, hierarchical=is_hierarchical(kind),
                               batch_size=train_defaults.batch_size,
                               max_batch_tokens=train_defaults.max_batch_tokens, shuffle=True, seed=0)
        needed = args.batches + 1
        batches = (batches * (needed // len(batches) + 1))[:needed]
        seen, started = 0, 0.0
        for i, batch in enumerate(batches):
            if i == 1:  # the first batch pays one-off allocation costs: not timed
                seen, started = 0, time.perf_counter()
            loss = nn.functional.cross_entropy(model(batch), batch.labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), train_defaults.grad_clip)
            optimizer.step()
            seen += len(batch)
        rate = seen / (time.perf_counter() - started)
        rows.append((name, rate))
        logger.info("%-10s %8.1f docs/s", name, rate)

    reference = dict(rows).get("flan-none")
    print(f"{'model':<10} {'docs/s':>8} {'vs flan-none':>13}")
    for name, rate in rows:
        relative = f"{rate / reference:12.2f}x" if reference else f"{'-':>13}"
        print(f"{name:<10} {rate:8.1f} {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
