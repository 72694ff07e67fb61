"""What does auditing a transformer's attention cost per layer? Seconds and ratios, one process.

For a BERT-architecture classifier (plain ``hf``: [CLS] pooling) this times, at every chosen layer
``l`` (the all-heads site ``L{l}``), on the same IMDB test documents and batches:

  * the reference: one inference pass over the documents that records the site
    (``model.run(batch, ["L{l}"])`` without gradients),
  * the attention-level removal curve of the attention ranking (erase the items in decreasing
    attention, recompute the output after each step: ``erasure_curve(..., "remove")``), per step
    schedule (``--steps``: ``every`` step ``k = 0..n``, or the ``eraser`` schedule of
    ``attention_schedule(lengths, "eraser")``) and per erased query rows (``--query-rows``:
    ``cls``, the [CLS] row only, or ``all`` rows; ``model.configure_erasure``),

and prints a markdown table: seconds, the ratio to the inference pass of the same layer (the
curve alone: the audit also runs that pass, so a site's audit costs about ``1 + ratio``
inferences per ranking and curve kind), and the candidates recomputed per document (every
candidate is a recompute, so this is what the cost grows with; rows of a batch are padded to its
longest document's length or schedule, and the padding is counted: it is recomputed too).

Why per layer: erasing at layer ``l`` recomputes the layers from ``l`` up for every candidate,
so an earlier layer costs more per step than the last one (plain hf's last layer needs the
[CLS] row alone: no sequence is recomputed). With every step a 254-token review needs 255
recomputes per curve; the ``eraser`` schedule bounds that to about 25 (ERASER's bins and the flip
curve's grid), which is what makes the all-layer audit affordable. Erasing ``all`` rows
recomputes the site's layer in full too (``cls`` only recomputes its [CLS] row).

    .venv/bin/python benchmarks/transformer_layer_cost.py                 # MiniLM base, 16 docs
    .venv/bin/python benchmarks/transformer_layer_cost.py --docs 2 --batch-size 2 --layers 4,5 \\
        --steps eraser --query-rows cls                                    # a quick smoke run
    # a trained run (read only: nothing is written into it), on a GPU
    .venv/bin/python benchmarks/transformer_layer_cost.py --run runs/imdb-hf --device cuda \\
        --docs 500 --batch-size 64 --repeats 3

Without ``--run`` the model is the shipped all-MiniLM-L6-v2 base with a new, untrained 2-class
head (the cost does not depend on training) and the documents are the first IMDB test reviews of
../shared/data/imdb50k.jsonl.gz, tokenised by the MiniLM tokenizer through attnaudit's data
pipeline (skipped with a message when the file is absent). With ``--run`` the run's test split is
prepared from its data config (relative data paths resolve against the working directory, as for
``attnaudit audit``). Every timing is the best of ``--repeats`` after one warm-up call on the
first batch; the first lines name the machine and the settings.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch

# Helpers of the sibling benchmarks (this folder is on sys.path when a script in it runs).
from audit_speed import IMDB, timed
from input_erasure_cost import write_slice

from attnaudit.checkpoint import load_run
from attnaudit.config import InputSteps
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.data.types import PAD_ID, Batch, EncodedDocument
from attnaudit.erasure.audit import pick_documents
from attnaudit.erasure.engine import attention_schedule
from attnaudit.erasure.interventions import erasure_curve, removal_order
from attnaudit.models import build_model
from attnaudit.models.base import ModelOutput
from attnaudit.models.hf_generic import HFClassifier

STEPS = ("every", "eraser")
ROWS = ("cls", "all")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` where that is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(device: torch.device) -> str:
    """One line naming the machine: CPU, cores, torch, threads and the device (with a GPU's name)."""
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    return (f"machine: {platform.machine()} {cpu_model()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}{gpu}")


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a timing includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _choices(value: str, allowed: Sequence[str], flag: str) -> list[str]:
    """A comma list of ``allowed`` names; a SystemExit naming the flag otherwise."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    wrong = [v for v in names if v not in allowed]
    if wrong or not names:
        raise SystemExit(f"{flag}: choose from {', '.join(allowed)} (got {value!r})")
    return names


def _layers(value: str, num_layers: int) -> list[int]:
    """``"all"`` or a comma list of 0-based layer indices, checked against the model's depth."""
    if value == "all":
        return list(range(num_layers))
    try:
        layers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--layers: 'all' or comma-separated integers (got {value!r})") from None
    bad = [layer for layer in layers if not 0 <= layer < num_layers]
    if bad or not layers:
        raise SystemExit(f"--layers: the model has layers 0..{num_layers - 1} (got {value!r})")
    return layers


def load_model_and_docs(
    args: argparse.Namespace, device: torch.device
) -> tuple[HFClassifier, list[EncodedDocument], str] | None:
    """The model, the test documents and a label for the settings line (None: data missing)."""
    if args.run is not None:
        loaded = load_run(args.run, device=device)
        test = prepare_data(loaded.data_config, vocab=loaded.vocab,
                            label_names=loaded.label_names).test
        model = loaded.model
        label = f"run {args.run}"
    else:
        if not IMDB.exists():
            print(f"skipped: IMDB data not found at {IMDB} (see ../shared/data/README.md)")
            return None
        with tempfile.TemporaryDirectory() as tmp:
            # The first reviews of each label; a few training ones, which preparing requires.
            data = write_slice(Path(tmp) / "imdb-slice.jsonl",
                               {"train": 2, "test": math.ceil(args.docs / 2)})
            config = DataConfig.from_dict({"path": str(data), "tokenizer": "minilm"})
            prepared = prepare_data(config, cache=False)
        torch.manual_seed(0)  # the new head's initialisation
        model = build_model("hf", "none", vocab_size=len(prepared.vocab), num_classes=2,
                            base="minilm", progress=False).to(device)
        test = prepared.test
        label = "MiniLM base (all-MiniLM-L6-v2), untrained 2-class head"
    if not isinstance(model, HFClassifier) or model.kind != "hf":
        raise SystemExit(f"this benchmark times plain hf models ([CLS] pooling), got {model.kind}")
    return model.eval(), pick_documents(test, args.docs, seed=0), label


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=None,
                        help="a trained hf run folder (read only); default: the MiniLM base")
    parser.add_argument("--docs", type=int, default=16, help="test documents timed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layers", default="all", help="'all' or 0-based indices, e.g. 0,3,5")
    parser.add_argument("--steps", default="every,eraser", help="schedules timed: every,eraser")
    parser.add_argument("--query-rows", default="cls,all", help="erased rows: cls,all")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many timings")
    args = parser.parse_args()
    schedules = _choices(args.steps, STEPS, "--steps")
    query_rows = _choices(args.query_rows, ROWS, "--query-rows")
    if args.docs < 1 or args.batch_size < 1 or args.repeats < 1:
        raise SystemExit("--docs, --batch-size and --repeats must be at least 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    found = load_model_and_docs(args, device)
    if found is None:
        return 0
    model, docs, label = found
    layers = _layers(args.layers, model.num_layers)
    batches = [b.to(device) for b in
               make_batches(docs, hierarchical=False, batch_size=args.batch_size)]
    tokens = sum(int((b.token_ids != PAD_ID).sum()) for b in batches)
    print(machine_line(device))
    print(f"settings: {label}; {len(docs)} docs ({tokens / len(docs):.0f} tokens/doc on "
          f"average), batch size {args.batch_size}, layers {','.join(map(str, layers))} of "
          f"{model.num_layers}, best of {args.repeats} after a warm-up; curve = attention "
          "ranking, remove, without the inference pass")
    print()
    print("| layer | rows | steps schedule | mean steps/doc | seconds | x inference |")
    print("|---|---|---|---|---|---|")
    with torch.no_grad():
        for layer in layers:
            site = f"L{layer}"

            def infer(todo: Sequence[Batch] = batches, site: str = site) -> None:
                for batch in todo:
                    model.run(batch, [site])
                _sync(device)

            infer(batches[:1])  # warm-up
            reference = timed(infer, repeat=args.repeats)
            print(f"| {site} | - | inference | - | {reference:.3f} | 1.00 |", flush=True)
            outputs = [model.run(batch, [site]) for batch in batches]
            orders = [removal_order(o.site(site).attention, o.site(site).mask) for o in outputs]
            for rows in query_rows:
                model.configure_erasure(query_rows=rows, items="token")
                for steps in schedules:
                    plans = [attention_schedule(o.site(site).mask.sum(dim=1),
                                                cast(InputSteps, steps)) for o in outputs]
                    candidates = sum(
                        o.site(site).mask.shape[0] * (o.site(site).mask.shape[1] + 1)
                        if p is None else p.numel() for o, p in zip(outputs, plans, strict=True)
                    )
                    curve = _curves(model, outputs, orders, plans, site, device)
                    curve(1)  # warm-up: the first batch
                    seconds = timed(curve, repeat=args.repeats)
                    print(f"| {site} | {rows} | {steps} | {candidates / len(docs):.1f} | "
                          f"{seconds:.3f} | {seconds / reference:.2f} |", flush=True)
    return 0


def _curves(
    model: HFClassifier,
    outputs: Sequence[ModelOutput],
    orders: Sequence[torch.Tensor],
    plans: Sequence[torch.Tensor | None],
    site: str,
    device: torch.device,
) -> Callable[..., None]:
    """A call computing the removal curve of every batch (of the first ``limit`` with a limit)."""

    def run(limit: int | None = None) -> None:
        for output, order, steps in list(zip(outputs, orders, plans, strict=True))[:limit]:
            erasure_curve(model, output, site, order, "remove", steps=steps)
        _sync(device)

    return run


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"\n(total {time.perf_counter() - start:.0f} s)")
    sys.exit(code)
