"""How much does a full attention audit cost compared with one plain inference pass?

For a trained model of each encoder, on the same IMDB test documents, this prints:

  (a) one plain inference pass (encode + attend + head, batched, no gradients),
  (b) the full audit with the fast path (Test 1 + Test 2 with all four rankings, every measure,
      items table) at the paper's site (the last attention layer),
  (c) the same audit with the naive reference path (one recompute per erasure step and document),

the ratios b/a and c/b, and documents per second of (b). ``--sites all`` audits every site a model
declares (HAN's word site too; it has no fast path: its erasures recompute the sentence level).
Everything runs in one process, on the same documents and batches, so the ratios compare like with
like on whatever machine runs it; the first line names the machine.

    python benchmarks/audit_speed.py                      # trains small models first if needed
    python benchmarks/audit_speed.py --runs-dir runs/bench --docs 1000 --device cuda

The models are trained (once; reused afterwards) on a subset of IMDB binary from ../shared/data.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from attnaudit.checkpoint import load_run
from attnaudit.config import AuditConfig, ModelConfig, RunConfig, TrainConfig
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.erasure.audit import audit_documents, make_plan, pick_documents
from attnaudit.models import parse_model_name
from attnaudit.train import train_run

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"


def timed(fn, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _inference(model: torch.nn.Module, batches: Sequence[Any]) -> None:
    """One plain forward pass over ``batches``: the floor an audit is compared with."""
    with torch.no_grad():
        for batch in batches:
            model(batch)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="flan-none,flan-cnn,flan-rnn,han-none,han-cnn,han-rnn")
    parser.add_argument("--runs-dir", default="runs/bench-audit")
    parser.add_argument("--docs", type=int, default=500, help="test documents timed for (a), (b), (c)")
    parser.add_argument("--train-docs", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--sites", default="paper", help="'paper' (the last attention layer) or 'all'")
    parser.add_argument("--no-naive", action="store_true", help="skip (c), the slow reference")
    args = parser.parse_args()
    if not IMDB.exists():
        print(f"skipped: IMDB data not found at {IMDB} (see ../shared/data/README.md)")
        return 0
    torch.manual_seed(0)
    data_config = DataConfig.from_dict(
        {"path": str(IMDB), "max_train_docs": args.train_docs, "max_test_docs": max(args.docs, 1000)}
    )
    prepared = None
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else ""
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device} {gpu}".rstrip())
    print(
        f"{'model':<10} {'docs':>5} {'(a) infer s':>11} {'(b) fast s':>10} {'(c) naive s':>11} "
        f"{'b/a':>6} {'c/b':>7} {'docs/s':>8}"
    )
    for name in args.models.split(","):
        kind, encoder = parse_model_name(name)
        run_dir = Path(args.runs_dir) / name
        if not (run_dir / "DONE").exists():
            prepared = prepared or prepare_data(data_config)
            config = RunConfig(
                data=data_config,
                model=ModelConfig(kind=kind, encoder=encoder),
                train=TrainConfig(epochs=1),
            )
            train_run(config, run_dir, prepared=prepared, progress=False)
        loaded = load_run(run_dir, device=args.device)
        model = loaded.model.eval()
        test = (
            prepared.test
            if prepared
            else prepare_data(
                loaded.data_config, vocab=loaded.vocab, label_names=loaded.label_names
            ).test
        )
        docs = pick_documents(test, args.docs, seed=0)
        batches = [b.to(args.device) for b in
                   make_batches(docs, hierarchical=model.hierarchical, batch_size=args.batch_size)]

        inference = partial(_inference, model, batches)
        sites = [model.pooling_site] if args.sites == "paper" else None
        fast = make_plan(model, AuditConfig(path="fast", sites=sites))
        naive = make_plan(model, AuditConfig(path="naive", sites=sites))
        options = {"batch_size": args.batch_size}
        inference()  # warm-up
        a = timed(inference, repeat=3)
        b = timed(partial(audit_documents, model, docs, loaded.label_names, fast, **options), repeat=2)
        c = (float("nan") if args.no_naive else
             timed(partial(audit_documents, model, docs, loaded.label_names, naive, **options)))
        print(
            f"{name:<10} {len(docs):>5} {a:>11.3f} {b:>10.3f} {c:>11.2f} {b / a:>6.2f} {c / b:>7.1f} "
            f"{len(docs) / b:>8.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
