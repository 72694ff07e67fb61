"""The verdict measured: its false-positive rate under the null, its power, and the documents a given
interval width needs.

    python benchmarks/verdict_calibration.py --replicates 100 --sizes 100,300,1000 --resamples 1000

Each replicate simulates one audit (:mod:`attnaudit.results.calibration`: the audit's own measures on
exact erasure curves of an additive two-class model; then the real ``summarize`` with its bootstrap
and max-t family, and the real verdict). Scenarios: ``null`` (attention is a second independent
random ranking), ``permuted`` (attention-shaped scores on random items) and ``planted`` (the marker
ranked first in a share ``--recall`` of the documents, the rest in random order: a power curve).
Printed per scenario and size: the share of replicates with any
"better/weaker than random" claim (with its 95% Wilson interval) and the mean width of the
simultaneous interval of attention - random per criterion, beside the same rate without the band
(max-t alone) and under the earlier rule (any marginal 95% percentile interval excluding 0); then,
from the null widths, the documents needed for a width of 0.05 and 0.02 (width ∝ 1/sqrt(n), fitted
over the sizes). Single-threaded numpy; label the output with the machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import time
from pathlib import Path

import numpy as np

from attnaudit.results.calibration import World, rates, replicate
from attnaudit.results.verdict import CRITERION_LEAVES, SHORT, wilson_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--planted-replicates", type=int, default=40)
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--scenarios", default="null,permuted,planted")
    parser.add_argument("--recall", default="0.9", help="planted: comma-separated shares of "
                        "documents whose marker attention ranks first (a power curve)")
    parser.add_argument("--end-to-end", type=Path, default=None, metavar="DIR",
                        help="instead: once end to end in DIR (synth on an IMDB slice, train FLAN, "
                        "audit with --bootstrap --resamples) and print the verdict")
    parser.add_argument("--imdb", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data"
                        / "imdb50k.jsonl.gz")
    args = parser.parse_args()
    if args.end_to_end is not None:
        end_to_end(args.end_to_end, args.imdb, args.resamples)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}; "
          f"resamples {args.resamples}")
    widths: dict[int, dict[str, list[float]]] = {n: {k: [] for k in CRITERION_LEAVES} for n in sizes}
    cells = [(s, None) for s in args.scenarios.split(",") if s != "planted"]
    if "planted" in args.scenarios.split(","):
        cells += [("planted", float(r)) for r in args.recall.split(",")]
    for scenario, recall in cells:
        count = args.planted_replicates if scenario == "planted" else args.replicates
        world = World(recall=recall) if recall is not None else World()
        for n in sizes:
            start = time.perf_counter()
            results = [replicate(scenario, n, 10_000 * n + seed, resamples=args.resamples,  # type: ignore[arg-type]
                                 world=world) for seed in range(count)]
            r = rates(results)
            lo, hi = wilson_interval(r["any_claim"] * count, count, 0.95)
            mean_width = {k: float(np.mean([x["widths"][k] for x in results if k in x["widths"]]))
                          for k in CRITERION_LEAVES}
            if scenario == "null":
                for k in CRITERION_LEAVES:
                    widths[n][k] += [x["widths"][k] for x in results if k in x["widths"]]
            label = "power (better)" if scenario == "planted" else "false-positive rate"
            value = r["better"] if scenario == "planted" else r["any_claim"]
            name = f"{scenario} {recall:.2f}" if recall is not None else scenario
            print(f"{name:13s} n={n:5d} reps={count:4d}  {label}: {value:.3f} "
                  f"(any claim {r['any_claim']:.3f} [{lo:.3f}, {hi:.3f}], weaker {r['weaker']:.3f}; "
                  f"without band {r['unbanded']:.3f}; old marginal rule {r['marginal']:.3f})"
                  f"  widths: " + ", ".join(f"{SHORT[k]} {w:.3f}" for k, w in mean_width.items())
                  + f"  [{time.perf_counter() - start:.0f} s]", flush=True)
    if any(widths[n][CRITERION_LEAVES[0]] for n in sizes):
        print("documents needed for a simultaneous-interval width (null, width ∝ 1/sqrt(n)):")
        for k in CRITERION_LEAVES:
            points = [(n, float(np.mean(widths[n][k]))) for n in sizes if widths[n][k]]
            c = float(np.mean([w * np.sqrt(n) for n, w in points]))
            need = {target: int(np.ceil((c / target) ** 2)) for target in (0.05, 0.02)}
            print(f"  {SHORT[k]}: width ≈ {c:.2f}/sqrt(n); 0.05 needs {need[0.05]}, "
                  f"0.02 needs {need[0.02]}")


def end_to_end(folder: Path, imdb: Path, resamples: int, per_split: dict[str, int] | None = None,
               words: int = 60) -> None:
    """The planted-marker task once through the real pipeline: the first IMDB reviews per split
    and label (texts cut to ``words`` words), ``attnaudit synth`` (a third of the documents
    unmarked), FLAN without an encoder trained 15 epochs, the audit with ``resamples`` bootstrap
    resamples; prints the verdict of summary.json."""
    import torch

    from attnaudit.config import AuditConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from attnaudit.data.synth import write_synth
    from attnaudit.erasure.audit import audit_run
    from attnaudit.train import train_run

    torch.set_num_threads(1)
    per_split = per_split or {"train": 1000, "test": 400}
    folder.mkdir(parents=True, exist_ok=True)
    source, data = folder / "imdb_slice.jsonl", folder / "synth.jsonl"
    taken: dict[tuple[str, str], int] = {}
    rows = []
    with gzip.open(imdb, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            key = (record["split"], record["label"])
            if taken.get(key, 0) < per_split.get(record["split"], 0):
                taken[key] = taken.get(key, 0) + 1
                record["text"] = " ".join(record["text"].split()[:words])
                rows.append(record)
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_synth(source, data, unmarked=0.34, seed=0)
    run = folder / "flan-none"
    config = RunConfig(data=DataConfig(path=str(data), dev_fraction=0.0),
                       model=ModelConfig(kind="flan", encoder="none", embedding_dim=16),
                       train=TrainConfig(epochs=15, lr=1e-2, threads=1, lr_patience=100))
    start = time.perf_counter()
    train_run(config, run, progress=False)
    summary = audit_run(run, AuditConfig(rankings=("random", "attention", "gradient"),
                                         bootstrap=resamples, permutations=0), progress=False)
    verdict = summary["verdict"]
    print(f"end to end ({len(rows)} IMDB documents, {time.perf_counter() - start:.0f} s): "
          f"status {verdict['status']}")
    for check in verdict["preconditions"]:
        print(f"  precondition {check['name']}: {check['passed']}: {check['reason']}")
    for site, entry in verdict["sites"].items():
        print(f"  {site}: {entry['headline']}")
        for other, by_leaf in (entry.get("comparisons") or {}).items():
            for leaf, e in by_leaf.items():
                if "lo" in e:
                    print(f"    vs {other:9s} {SHORT[leaf]:32s} {e['outcome']:12s} "
                          f"{e['estimate']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}] ±{e['delta']:.3f}")


if __name__ == "__main__":
    main()
