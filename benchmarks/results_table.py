"""Print the README's results tables (Markdown) from finished `attnaudit run` folders.

    python benchmarks/results_table.py runs/news runs/imdb-binary runs/imdb-rating

Reads only saved results (metrics.json, audit/summary.json); recomputes nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RANKINGS = ("random", "attention", "gradient", "attention_x_gradient")


def _load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def model_dirs(run: Path) -> list[Path]:
    return sorted(p for p in (run / "models").iterdir() if (p / "metrics.json").exists())


def accuracy_table(runs: list[Path]) -> str:
    rows = [
        "| data | model | test acc | majority | dev acc | epochs | train time | train docs/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for model in model_dirs(run):
            m = _load(model / "metrics.json")
            rows.append(
                f"| {run.name} | {model.name} | {m['test_accuracy']:.3f} "
                f"| {m['majority_test_accuracy']:.3f} "
                f"| {m['dev_accuracy']:.3f} | {m['epochs_trained']} | {m['train_seconds']:.0f} s "
                f"| {m['train_docs_per_s']:.0f} |"
            )
    return "\n".join(rows)


def audit_table(runs: list[Path]) -> str:
    head = [
        "data",
        "model",
        "docs",
        "ΔJS>0",
        "median ΔJS",
        "i* flips",
        "r flips",
        *[f"median frac. {r}" for r in RANKINGS],
        "never flips (attention)",
        "never flips (gradient)",
        "gradient fewer than attention",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        for model in model_dirs(run):
            path = model / "audit" / "summary.json"
            if not path.exists():
                continue
            s = _load(path)
            sw, rm = s["single_weight"], s["removal"]
            cells = [
                run.name,
                model.name,
                str(s["n_docs"]),
                _pct(sw["share_delta_js_positive"]),
                _num(sw["median_delta_js"], ".2g"),
                _pct(sw["flip_rate"]["max"]),
                _pct(sw["flip_rate"]["random"]),
                *[_num(rm.get(r, {}).get("median_fraction")) for r in RANKINGS],
                _pct(rm["attention"]["share_never_flipped"]),
                _pct(rm["gradient"]["share_never_flipped"]),
                _pct(s["attention_vs_gradient"]["gradient_fewer"]),
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    runs = [Path(a) for a in argv if (Path(a) / "models").is_dir()]
    if not runs:
        print("usage: results_table.py RUN_DIR [RUN_DIR ...]  (folders written by `attnaudit run`)")
        return 2
    print("### Accuracy\n")
    print(accuracy_table(runs))
    print("\n### Attention tests (JS in nats; fractions are medians over documents that flip)\n")
    print(audit_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
