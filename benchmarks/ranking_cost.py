"""What does each ranking (and each of the audit's measures) cost per 1,000 IMDB documents?

For a quickly trained flan-rnn and han-rnn (a few hundred training documents, one epoch: the cost of
a ranking hardly depends on how well the model is trained), on the same test documents and batches,
this prints seconds per 1,000 documents of

  * every registered ranking at the paper's site (``rank_site`` with that ranking alone, after the
    forward pass every ranking needs: its cost is the first row), with the plan's default attribution
    settings (50 IG steps, 200 LIME/KernelSHAP samples) unless overridden,
  * the audit with the random ranking and each measure alone, and with no measure (the floor:
    Test 1, the erasure curves and the items table), so a measure's own cost is its row minus that.

The first line names the machine (platform, cores, threads): rerun on the machine you compare with.

    python benchmarks/ranking_cost.py --docs 100
    python benchmarks/ranking_cost.py --docs 1000 --samples 200 --steps 50 --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from attnaudit.checkpoint import load_run
from attnaudit.config import AuditConfig, ModelConfig, RunConfig, TrainConfig
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.data.types import Batch
from attnaudit.erasure.audit import audit_documents, make_plan, pick_documents
from attnaudit.erasure.engine import AuditPlan, rank_site
from attnaudit.measures import MEASURES
from attnaudit.models import parse_model_name
from attnaudit.models.base import AttentionClassifier
from attnaudit.rankings import RANKINGS
from attnaudit.train import train_run

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rank_all(model: AttentionClassifier, batches: Sequence[Batch], plan: AuditPlan) -> None:
    """Every batch through one forward pass and ``plan``'s rankings at the pooling site."""
    site = model.pooling_site
    for batch in batches:
        with torch.no_grad():
            output = model.run(batch, [site])
        rank_site(model, output, site, batch.doc_ids, plan)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="flan-rnn,han-rnn")
    parser.add_argument("--runs-dir", default="runs/bench-rankings")
    parser.add_argument("--docs", type=int, default=200, help="test documents timed")
    parser.add_argument("--train-docs", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="IG steps (default: the plan's)")
    parser.add_argument("--samples", type=int, default=None,
                        help="LIME/KernelSHAP samples (default: the plan's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if not IMDB.exists():
        print(f"skipped: IMDB data not found at {IMDB} (see ../shared/data/README.md)")
        return 0
    torch.manual_seed(0)
    data_config = DataConfig.from_dict(
        {"path": str(IMDB), "max_train_docs": args.train_docs, "max_test_docs": max(args.docs, 200)}
    )
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else ""
    print(f"machine: {platform.platform()} {platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device} "
          f"{gpu}".rstrip())
    prepared = None
    for name in args.models.split(","):
        kind, encoder = parse_model_name(name)
        run_dir = Path(args.runs_dir) / name
        if not (run_dir / "DONE").exists():
            prepared = prepared or prepare_data(data_config)
            config = RunConfig(data=data_config, model=ModelConfig(kind=kind, encoder=encoder),
                               train=TrainConfig(epochs=1))
            train_run(config, run_dir, prepared=prepared, progress=False)
        loaded = load_run(run_dir, device=args.device)
        model = loaded.model.eval()
        test = (prepared.test if prepared else prepare_data(
            loaded.data_config, vocab=loaded.vocab, label_names=loaded.label_names).test)
        docs = pick_documents(test, args.docs, seed=0)
        batches = [b.to(args.device) for b in
                   make_batches(docs, hierarchical=model.hierarchical, batch_size=args.batch_size)]
        plan = make_plan(model, AuditConfig(sites=[model.pooling_site]))
        plan = replace(plan, attribution_steps=args.steps or plan.attribution_steps,
                       attribution_samples=args.samples or plan.attribution_samples)
        per_1000 = 1000 / len(docs)
        print(f"\n{name}: {len(docs)} docs, batch {args.batch_size}, site {model.pooling_site}, "
              f"IG steps {plan.attribution_steps}, samples {plan.attribution_samples}")
        print(f"{'what':<40} {'s / 1000 docs':>14}")
        rank_all(model, batches[:1], replace(plan, rankings=("attention",)))  # warm-up
        cost = seconds(partial(rank_all, model, batches, replace(plan, rankings=())))
        print(f"{'forward pass only':<40} {cost * per_1000:>14.2f}", flush=True)
        for ranking in RANKINGS:
            cost = seconds(partial(rank_all, model, batches, replace(plan, rankings=(ranking,))))
            print(f"{'ranking ' + ranking:<40} {cost * per_1000:>14.2f}", flush=True)
        for measures in [(), *((m,) for m in MEASURES)]:
            audit_plan = replace(plan, rankings=("random",), measures=measures)
            cost = seconds(partial(audit_documents, model, docs, loaded.label_names, audit_plan,
                                   batch_size=args.batch_size))
            label = "audit, random, " + (f"measure {measures[0]}" if measures else "no measure")
            print(f"{label:<40} {cost * per_1000:>14.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
