"""What does input-level erasure add to an audit? Seconds for the same documents, one process.

For a quickly trained model of each variant, on the same IMDB test documents, this prints the audit's
wall time at every site with attention-level erasure only (``--erasure attention``, the default) and
with input-level erasure beside it (``--erasure attention,input``: every ranking's remove and keep
curves recomputed through the whole model at the step schedule), and the ratio.

    python benchmarks/input_erasure_cost.py                       # flan-rnn, han-rnn, 200 docs
    python benchmarks/input_erasure_cost.py --steps every --mode unk

The models are trained once (reused afterwards) for one epoch on a slice of IMDB binary from
../shared/data (``--train-docs`` per label), with the thread count given (default 1).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from attnaudit.checkpoint import load_run
from attnaudit.config import AuditConfig, ModelConfig, RunConfig, TrainConfig
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.erasure.audit import audit_documents, make_plan, pick_documents
from attnaudit.models import parse_model_name
from attnaudit.train import train_run

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"


def write_slice(path: Path, per_label: dict[str, int]) -> Path:
    """The first IMDB reviews of each (split, label), as JSONL with the source's fields."""
    wanted = {(split, label): n for split, n in per_label.items() for label in ("pos", "neg")}
    taken: Counter[tuple[str, str]] = Counter()
    rows = []
    with gzip.open(IMDB, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            key = (record["split"], record["label"])
            if taken[key] < wanted.get(key, 0):
                taken[key] += 1
                rows.append(line)
                if taken == wanted:
                    break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="flan-rnn,han-rnn")
    parser.add_argument("--runs-dir", default="runs/bench-input-erasure")
    parser.add_argument("--docs", type=int, default=200, help="test documents audited")
    parser.add_argument("--train-docs", type=int, default=200, help="training documents per label")
    parser.add_argument("--mode", default="delete", choices=["delete", "unk"])
    parser.add_argument("--steps", default="eraser", choices=["eraser", "every"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not IMDB.exists():
        print(f"skipped: IMDB data not found at {IMDB} (see ../shared/data/README.md)")
        return 0
    torch.set_num_threads(args.threads)
    runs = Path(args.runs_dir)
    data = runs / "imdb-slice.jsonl"
    if not data.exists():
        write_slice(data, {"train": args.train_docs, "test": max(args.docs, 100)})
    data_config = DataConfig.from_dict({"path": str(data)})
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; input erasure {args.mode}, {args.steps} steps")
    print(f"{'model':<10} {'docs':>5} {'attention s':>11} {'+input s':>9} {'ratio':>6}")
    for name in args.models.split(","):
        kind, encoder = parse_model_name(name)
        run_dir = runs / name
        if not (run_dir / "DONE").exists():
            config = RunConfig(data=data_config, model=ModelConfig(kind=kind, encoder=encoder),
                               train=TrainConfig(epochs=1, threads=args.threads))
            train_run(config, run_dir, progress=False)
        loaded = load_run(run_dir, device="cpu")
        model = loaded.model.eval()
        test = prepare_data(loaded.data_config, vocab=loaded.vocab,
                            label_names=loaded.label_names).test
        docs = pick_documents(test, args.docs, seed=0)
        seconds = []
        for erasure in (("attention",), ("attention", "input")):
            plan = make_plan(model, AuditConfig(erasure=erasure, input_erasure=args.mode,
                                                input_steps=args.steps))
            start = time.perf_counter()
            audit_documents(model, docs, loaded.label_names, plan)
            seconds.append(time.perf_counter() - start)
        print(f"{name:<10} {len(docs):>5} {seconds[0]:>11.1f} {seconds[1]:>9.1f} "
              f"{seconds[1] / seconds[0]:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
