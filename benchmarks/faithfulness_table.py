"""Print the faithfulness tables of docs/results.md (Markdown) from finished `attnaudit run` folders.

    python benchmarks/faithfulness_table.py runs/imdb-binary [more runs...] [--input]

(``--input``: the input-level erasure's numbers of audits made with ``--erasure attention,input``.)

Per model (at its paper site) and faithfulness measure: attention's value with its bootstrap
interval, the most faithful ranking by that measure (every ranking tied with it), and the paired
difference "best minus attention" with its interval (documents resampled jointly); then where the
measures disagree on the most faithful ranking, and the report's verdict sentence per model. Reads
only saved results (audit/summary.json); recomputes nothing. The measures and their directions come
from the measure registry's report columns; rankings and their labels from summary.json.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from results_table import _load, model_dirs, paper_site

from attnaudit.measures import MEASURES
from attnaudit.results.verdict import verdict

#: the paper's formula of the AOPC only (the scorer's variant orders rankings the same way)
SKIPPED = ("aopc_comprehensiveness_without_zero", "aopc_sufficiency_without_zero",
           "share_never_flipped")
COLUMNS = [c for m in MEASURES.values() for c in m.report_columns if c.leaf not in SKIPPED]


def _fmt(value: float | None, interval: Any = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    if isinstance(interval, list) and len(interval) == 2 and None not in interval:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return text


def rows_for(site: dict[str, Any], labels: dict[str, str], level: str = "attention"
             ) -> list[dict[str, Any]]:
    """Per measure: attention's value, the best rankings (ties kept), the paired difference
    (``level="input"``: the input-level erasure's numbers)."""
    if level == "input":
        removal = (site.get("input") or {}).get("removal") or {}
        intervals = ((site.get("intervals") or {}).get("input") or {}).get("removal") or {}
        differences: dict[str, Any] = site.get("input_differences") or {}
    else:
        removal = site.get("removal") or {}
        intervals = (site.get("intervals") or {}).get("removal") or {}
        differences = site.get("differences") or {}
    out = []
    for column in COLUMNS:
        values = {r: v[column.leaf] for r, v in removal.items()
                  if (v or {}).get(column.leaf) is not None}
        if "attention" not in values or len(values) < 2:
            continue
        top = (max if column.better == "higher" else min)(values.values())
        best = [r for r, v in values.items() if abs(v - top) <= 1e-12]
        others = [r for r in best if r != "attention"]
        diff = (differences.get(f"{others[0]}-vs-attention") or {}).get(column.leaf) if others else None
        if diff and None not in (diff.get("estimate"), diff.get("lo"), diff.get("hi")):
            separated = diff["lo"] > 0 or diff["hi"] < 0
            diff_text = (f"{diff['estimate']:+.3f} [{diff['lo']:+.3f}, {diff['hi']:+.3f}]"
                         + ("" if separated else " (contains 0)"))
        else:
            diff_text = "attention is best" if not others else "-"
        out.append({"measure": column.label, "better": column.better,
                    "attention": _fmt(values["attention"],
                                      (intervals.get("attention") or {}).get(column.leaf)),
                    "best": ", ".join(labels.get(r, r) for r in best),
                    "best_value": _fmt(top, (intervals.get(best[0]) or {}).get(column.leaf)),
                    "difference": diff_text, "best_keys": best})
    return out


def faithfulness_table(runs: list[Path], level: str = "attention") -> str:
    lines = ["| data | model | measure (better) | attention [95% CI] | most faithful (ties) | its value "
             "[95% CI] | best − attention, paired [95% CI] |", "|---|---|---|---|---|---|---|"]
    disagreements, verdicts = [], []
    for run in runs:
        for model in model_dirs(run):
            path = model / "audit" / "summary.json"
            if not path.exists():
                continue
            summary = _load(path)
            site = paper_site(summary)
            if site is None:
                continue
            labels = {k: str(v.get("label", k)) for k, v in (summary.get("rankings") or {}).items()}
            entry = summary["by_site"][site]
            rows = rows_for(entry, labels, level)
            for r in rows:
                lines.append(f"| {run.name} | {model.name} | {r['measure']} ({r['better']}) | "
                             f"{r['attention']} | {r['best']} | {r['best_value']} | "
                             f"{r['difference']} |")
            winners = [set(r["best_keys"]) for r in rows]
            if winners and not set.intersection(*winners):
                disagreements.append(f"- {run.name} {model.name}: " + "; ".join(
                    f"{r['measure']}: {r['best']}" for r in rows))
            overall = verdict(entry, list(entry.get("removal") or {}), site=site, labels=labels)[-1]
            verdicts.append(f"- **{run.name} {model.name}** ({site}): {overall['sentence']}")
    text = "\n".join(lines)
    if disagreements:
        text += ("\n\nWhere no ranking is most faithful by every measure (ties count for each "
                 "tied ranking):\n\n" + "\n".join(disagreements))
    text += "\n\nThe report's verdict per model (rules: `attnaudit/results/verdict.py`):\n\n"
    return text + "\n".join(verdicts)


def main(argv: list[str]) -> int:
    level = "input" if "--input" in argv else "attention"
    runs = [Path(a) for a in argv if a != "--input"]
    if not runs:
        print(__doc__)
        return 2
    print(faithfulness_table(runs, level))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
