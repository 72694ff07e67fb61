"""Peak memory of an earlier-layer transformer audit, against the same audit without a budget.

The issue's case: ``attnaudit audit RUN --sites L2 --items word --attention-steps eraser`` on 40
MiniLM reviews took 7.1 GB peak RSS, because every removal step recomputes a whole sequence
through layers L2..L5 and all the steps of a batch went to the model in one call. With the memory
budget (``--max-memory``, default 2 GiB; :mod:`attnaudit.erasure.memory`) the calls are cut to fit.

Each setting runs in its own child process (peak RSS is a process's high-water mark): the
reference with a budget too large to cut anything (``--max-memory 1000GB``: one call per curve,
as before the budget), then the default budget. Both audit the same documents with the same plan
(by default the paper's four rankings, Test 1, the permutation test, no adversarial search;
``--heavy``: also input-level erasure, integrated gradients and the adversarial search, whose
gradient ascent, erased documents and captum passes take the same budget); the script prints each
peak RSS, the ratio to the reference, the wall time, and checks that both wrote the same removal
table (equal to float rounding: the calls' shapes change the backend's blocking of sums).

    .venv/bin/python benchmarks/audit_memory.py                       # 40 reviews, L2, word items
    .venv/bin/python benchmarks/audit_memory.py --docs 8 --batch-size 8   # a quick smoke run
    .venv/bin/python benchmarks/audit_memory.py --docs 6 --heavy --query-rows all  # every step
    .venv/bin/python benchmarks/audit_memory.py --run runs/minilm     # a fine-tuned run (read only)

Without ``--run`` the model is the shipped all-MiniLM-L6-v2 base with an untrained 2-class head
(memory does not depend on training), and the documents the first IMDB test reviews (see
benchmarks/transformer_layer_cost.py). The first lines name the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformer_layer_cost import load_model_and_docs, machine_line

REFERENCE = "1000GB"


def child(args: argparse.Namespace) -> int:
    """One audit in this process; prints a JSON line with its peak RSS."""
    from attnaudit.config import AuditConfig, parse_memory
    from attnaudit.erasure.audit import audit_documents, make_plan

    torch.set_num_threads(args.threads)
    loaded = load_model_and_docs(args, torch.device("cpu"))
    if loaded is None:
        return 1
    model, docs, _ = loaded
    if getattr(model, "_continues", None) is None:
        from attnaudit.data.hf_tokenizer import load_tokenizer

        model.set_vocabulary(load_tokenizer("minilm").vocab.itos)
    heavy = {"rankings": ("random", "attention", "gradient", "integrated_gradients"),
             "erasure": ("attention", "input")} if args.heavy else {"adversarial_epsilon": 0.0}
    config = AuditConfig(sites=(args.site,), items="word", attention_steps="eraser",
                         permutations=args.permutations, query_rows=args.query_rows, **heavy)
    plan = make_plan(model, config)
    started = time.perf_counter()
    frames = audit_documents(model, docs, ["neg", "pos"], plan, batch_size=args.batch_size,
                             max_memory=parse_memory(args.max_memory))
    seconds = time.perf_counter() - started
    frames.removal.to_parquet(args.table)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    print(json.dumps({"peak_bytes": peak_kib * 1024, "seconds": seconds, "docs": len(docs)}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--site", default="L2")
    parser.add_argument("--query-rows", default=None, choices=("cls", "all"))
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-memory", default="2GiB", help="the budget measured (default 2GiB)")
    parser.add_argument("--heavy", action="store_true",
                        help="add input erasure, integrated gradients and the adversarial search")
    parser.add_argument("--skip-reference", action="store_true",
                        help="only the budgeted run (the reference of 40 reviews takes ~7 GB)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    torch.set_num_threads(args.threads)  # the machine line names the children's thread count
    print(machine_line(torch.device("cpu")))
    print(f"audit of {args.docs} IMDB reviews at {args.site}, word items, eraser steps, "
          f"{args.permutations} permutations, batch {args.batch_size}, {args.threads} thread(s)"
          + (", input erasure, integrated gradients, adversarial search" if args.heavy else ""))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = [("reference (no budget)", REFERENCE)] * (not args.skip_reference)
        for name, budget in (*settings, (f"--max-memory {args.max_memory}", args.max_memory)):
            table = str(Path(tmp) / f"{len(results)}.parquet")
            command = [sys.executable, __file__, "--child", "--table", table,
                       "--max-memory", budget, "--docs", str(args.docs), "--batch-size",
                       str(args.batch_size), "--site", args.site, "--permutations",
                       str(args.permutations), "--threads", str(args.threads),
                       *(["--run", str(args.run)] if args.run else []),
                       *(["--heavy"] if args.heavy else []),
                       *(["--query-rows", args.query_rows] if args.query_rows else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stdout + done.stderr)
                return done.returncode
            results[name] = (json.loads(done.stdout.strip().splitlines()[-1]), table)
        import pandas as pd

        frames = [pd.read_parquet(table) for _, table in results.values()]
        floats = frames[0].select_dtypes("float").columns
        same = (frames[0].drop(columns=floats).equals(frames[-1].drop(columns=floats))
                and bool(np.allclose(frames[0][floats], frames[-1][floats], rtol=1e-4,
                                     atol=1e-5, equal_nan=True)))
    reference = next(iter(results.values()))[0]["peak_bytes"]
    print("| setting | peak RSS | ratio to reference | seconds |")
    print("|---|---|---|---|")
    for name, (row, _) in results.items():
        ratio = "—" if args.skip_reference else f"{row['peak_bytes'] / reference:.2f}x"
        print(f"| {name} | {row['peak_bytes'] / 1024**3:.2f} GiB | {ratio} | "
              f"{row['seconds']:.0f} |")
    print(f"same removal table: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
