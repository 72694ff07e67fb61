"""Print the results tables of docs/results.md (Markdown) from finished `attnaudit run` folders.

    python benchmarks/results_table.py runs/news runs/imdb-binary runs/imdb-rating

Reads only saved results (metrics.json, audit/summary.json, schema 2); recomputes nothing. The
attention table shows each model's paper site (its last attention layer); rankings and their labels
come from summary.json, so a new ranking gets its columns with no edit here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _get(metrics: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` that metrics.json has (the trainer's names, then the report's)."""
    return next((metrics[n] for n in names if metrics.get(n) is not None), None)


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
            seconds = _get(m, "train_seconds")
            resumed = " (resumed)" if m.get("resumed") else ""
            rows.append(
                f"| {run.name} | {model.name} | {_num(_get(m, 'test_accuracy'), '.3f')} "
                f"| {_num(_get(m, 'majority_test_accuracy', 'majority_baseline'), '.3f')} "
                f"| {_num(_get(m, 'dev_accuracy'), '.3f')} "
                f"| {_get(m, 'epochs_trained', 'epochs')} "
                f"| {_num(seconds, '.0f')} s{resumed} "
                f"| {_num(_get(m, 'train_docs_per_s', 'train_docs_per_second'), '.0f')} |"
            )
    return "\n".join(rows)


def paper_site(summary: dict[str, Any]) -> str | None:
    """The site the paper manipulated (marked ``paper`` in summary.json), else the first."""
    sites = summary.get("sites") or {}
    by_site = summary.get("by_site") or {}
    marked = [s for s in by_site if (sites.get(s) or {}).get("paper")]
    return (marked or list(by_site) or [None])[0]


def _summaries(runs: list[Path]) -> list[tuple[Path, Path, dict[str, Any]]]:
    out = []
    for run in runs:
        for model in model_dirs(run):
            path = model / "audit" / "summary.json"
            if path.exists():
                summary = _load(path)
                if summary.get("schema_version") == 2:
                    out.append((run, model, summary))
                else:
                    print(f"skipped {path}: an older summary.json (re-run the audit)", file=sys.stderr)
    return out


def audit_table(runs: list[Path]) -> str:
    found = _summaries(runs)
    rankings: dict[str, str] = {}
    for _, _, s in found:
        for name, meta in (s.get("rankings") or {}).items():
            rankings.setdefault(name, str((meta or {}).get("label", name)))
    head = [
        "data", "model", "site", "docs", "ΔJS>0", "median ΔJS", "i* flips", "r flips",
        *[f"median frac. {label}" for label in rankings.values()],
        *[f"never flips ({label})" for label in rankings.values()],
        "cannot flip", "gradient fewer than attention",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, model, s in found:
        site = paper_site(s)
        if site is None:
            continue
        entry = s["by_site"][site]
        sw, rm = entry["single_weight"], entry["removal"]
        cells = [
            run.name, model.name, site, str(entry.get("n_docs", s["n_docs"])),
            _pct(sw["share_delta_js_positive"]), _num(sw["median_delta_js"], ".2g"),
            _pct(sw["flip_rate"].get("max")), _pct(sw["flip_rate"].get("random")),
            *[_num((rm.get(r) or {}).get("median_fraction")) for r in rankings],
            *[_pct((rm.get(r) or {}).get("share_never_flipped")) for r in rankings],
            _pct(entry.get("share_cannot_flip")),
            _pct((entry.get("attention_vs_gradient") or {}).get("gradient_fewer")),
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
    print("\n### Attention tests (JS in nats; fractions are medians over documents that flip; "
          "never flips includes documents that cannot flip)\n")
    print(audit_table(runs))
    for _, model, s in _summaries(runs):
        warning = (s.get("prediction") or {}).get("warning")
        if warning:
            print(f"\nWarning, {model.name}: {warning}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
