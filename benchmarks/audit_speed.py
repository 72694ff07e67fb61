"""How much does a full attention audit cost compared with one plain inference pass?

For a trained model of each encoder, on the same IMDB test documents, this prints:

  (a) one plain inference pass (encode + attend + head, batched, no gradients),
  (b) the audit with the fast path (Test 1 + Test 2 with all four rankings, every measure, items
      table) at the paper's site (the last attention layer), without counterfactual attention,
  (c) the same audit with the naive reference path (one recompute per erasure step and document),
  (d) with ``--counterfactual``: (b) plus the default counterfactual attention (100 permutations,
      adversarial search),

the ratios b/a and c/b, and documents per second of (b). Every audit uses one batch size (the
audit's default for the device unless ``--batch-size``), and so does (a). ``--sites all`` audits
every site a model declares (HAN's word site too; it has no fast path: its erasures recompute
the sentence level).
Everything runs in one process, on the same documents and batches, so the ratios compare like with
like on whatever machine runs it; the first line names the machine.

    python benchmarks/audit_speed.py                      # trains small models first if needed
    python benchmarks/audit_speed.py --runs-dir runs/bench --docs 1000 --device cuda
    # the issue's GPU setting: full IMDB training set on the GPU, all 25,000 test reviews
    python benchmarks/audit_speed.py --device cuda --train-docs 0 --test-docs 0 --docs 0 \
        --models flan-rnn,han-rnn --no-naive --counterfactual --profile runs/profile

The models are trained (once; reused afterwards) on a subset of IMDB binary from ../shared/data.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
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
from attnaudit.erasure.audit import audit_documents, batch_size_for, make_plan, pick_documents
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


def _inference(model: torch.nn.Module, batches: Sequence[Any], device: torch.device) -> None:
    """One plain forward pass over ``batches``: the floor an audit is compared with."""
    with torch.no_grad():
        for batch in batches:
            model(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="flan-none,flan-cnn,flan-rnn,han-none,han-cnn,han-rnn")
    parser.add_argument("--runs-dir", default="runs/bench-audit")
    parser.add_argument("--docs", type=int, default=500,
                        help="test documents timed for (a), (b), (c) (0 = the whole test split)")
    parser.add_argument("--train-docs", type=int, default=4000, help="0 = the whole training split")
    parser.add_argument("--test-docs", type=int, default=None,
                        help="test documents prepared (default: max(--docs, 1000); 0 = all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=TrainConfig().lr)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="audit batch (default: the audit's own, 64 on a CPU and 512 on a GPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (training and audit)")
    parser.add_argument("--sites", default="paper", help="'paper' (the last attention layer) or 'all'")
    parser.add_argument("--no-naive", action="store_true", help="skip (c), the slow reference")
    parser.add_argument("--counterfactual", action="store_true",
                        help="also time (d): the default audit, with counterfactual attention "
                        "(100 permutations and the adversarial search)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a cProfile of one (b) per model to PROFILE-<model>.txt")
    args = parser.parse_args()
    if not IMDB.exists():
        print(f"skipped: IMDB data not found at {IMDB} (see ../shared/data/README.md)")
        return 0
    torch.manual_seed(0)
    test_docs = args.test_docs if args.test_docs is not None else max(args.docs, 1000)
    data_config = DataConfig.from_dict(
        {"path": str(IMDB), "max_train_docs": args.train_docs or None,
         "max_test_docs": test_docs or None}
    )
    prepared = None
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device} {gpu}".rstrip())
    print(
        f"{'model':<10} {'docs':>6} {'batch':>5} {'(a) infer s':>11} {'(b) fast s':>10} "
        f"{'(c) naive s':>11} {'b/a':>6} {'c/b':>7} {'docs/s':>8} {'(d) +cf s':>9}"
    )
    for name in args.models.split(","):
        kind, encoder = parse_model_name(name)
        run_dir = Path(args.runs_dir) / name
        if not (run_dir / "DONE").exists():
            started = time.perf_counter()
            prepared = prepared or prepare_data(data_config)
            prepare_s = time.perf_counter() - started
            config = RunConfig(
                data=data_config,
                model=ModelConfig(kind=kind, encoder=encoder),
                train=TrainConfig(epochs=args.epochs, lr=args.lr, device=args.device),
            )
            started = time.perf_counter()
            metrics = train_run(config, run_dir, prepared=prepared, progress=False)
            print(f"  trained {name} on {len(prepared.train)} docs, {args.epochs} epoch(s) on "
                  f"{args.device}: {time.perf_counter() - started:.1f} s (data prepared in "
                  f"{prepare_s:.1f} s), test accuracy {metrics.get('test_accuracy', float('nan')):.3f}",
                  flush=True)
        loaded = load_run(run_dir, device=args.device)
        model = loaded.model.eval()
        test = (
            prepared.test
            if prepared
            else prepare_data(
                loaded.data_config, vocab=loaded.vocab, label_names=loaded.label_names
            ).test
        )
        docs = pick_documents(test, args.docs or None, seed=0)
        sites = (model.pooling_site,) if args.sites == "paper" else None
        # (b): the paper's tests with every measure; (d) adds the default counterfactual attention.
        paper = AuditConfig(path="fast", sites=sites, batch_size=args.batch_size, permutations=0,
                            adversarial_epsilon=0.0)
        batch_size = batch_size_for(paper, device)
        batches = [b.to(args.device) for b in
                   make_batches(docs, hierarchical=model.hierarchical, batch_size=batch_size)]
        inference = partial(_inference, model, batches, device)
        fast = make_plan(model, paper)
        naive = make_plan(model, paper.model_copy(update={"path": "naive"}))
        inference()  # warm-up
        a = timed(inference, repeat=3)
        audit = partial(_synced, device, audit_documents, model, docs, loaded.label_names, fast,
                        batch_size=batch_size)
        b = timed(audit, repeat=2)
        c = (float("nan") if args.no_naive else
             timed(partial(audit_documents, model, docs, loaded.label_names, naive,
                           batch_size=batch_size)))
        d = float("nan")
        if args.counterfactual:
            full = make_plan(model, AuditConfig(path="fast", sites=sites))
            d = timed(partial(_synced, device, audit_documents, model, docs, loaded.label_names,
                              full, batch_size=batch_size))
        print(
            f"{name:<10} {len(docs):>6} {batch_size:>5} {a:>11.3f} {b:>10.3f} {c:>11.2f} "
            f"{b / a:>6.2f} {c / b:>7.1f} {len(docs) / b:>8.0f} {d:>9.2f}",
            flush=True,
        )
        if args.profile:
            _profile(audit, Path(f"{args.profile}-{name}.txt"))
    return 0


def _synced(device: torch.device, fn, *fn_args, **kwargs):  # type: ignore[no-untyped-def]
    """``fn(*fn_args, **kwargs)``, waiting for the GPU's queued work so the timing includes it."""
    result = fn(*fn_args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result


def _profile(fn, path: Path) -> None:  # type: ignore[no-untyped-def]
    """One call of ``fn`` under cProfile; the 40 most expensive functions (own time) to ``path``."""
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    with path.open("w") as out:
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(40)
    print(f"  profile: {path}")


if __name__ == "__main__":
    sys.exit(main())
