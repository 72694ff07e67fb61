"""Print the README's faithfulness table (Markdown) from finished `attnaudit run` folders.

    python benchmarks/faithfulness_table.py runs/imdb-binary [more runs...]

For every model (at its paper site) and every faithfulness measure: the most faithful ranking by
that measure, its value with the bootstrap interval, the runner-up, whether the two are told apart
(their intervals do not overlap), and where the measures disagree on the most faithful ranking.
Reads only saved results (audit/summary.json); recomputes nothing. Measures are listed in
:data:`MEASURES` with their direction; rankings and their labels come from summary.json.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from results_table import _load, model_dirs, paper_site

#: (summary leaf under removal[ranking], column title, True when higher is more faithful)
MEASURES: tuple[tuple[str, str, bool], ...] = (
    ("median_fraction_censored", "fraction removed to flip (median, censored)", False),
    ("flip_rate_top", "top-item flip rate", True),
    ("aopc_comprehensiveness", "AOPC comprehensiveness", True),
    ("aopc_sufficiency", "AOPC sufficiency", False),
)


def _fmt(value: float | None, interval: Any) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    if isinstance(interval, list) and len(interval) == 2 and None not in interval:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return text


def _separated(a: Any, b: Any, higher: bool) -> bool:
    """True when interval ``a`` lies wholly on the better side of interval ``b``."""
    if not (isinstance(a, list) and isinstance(b, list)) or None in a or None in b:
        return False
    return bool(a[0] > b[1]) if higher else bool(a[1] < b[0])


def best_rankings(site: dict[str, Any], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Per measure: the best and second-best ranking, values, intervals, and whether they separate."""
    removal = site.get("removal") or {}
    intervals = (site.get("intervals") or {}).get("removal") or {}
    out = []
    for leaf, title, higher in MEASURES:
        scored = [(r, v[leaf]) for r, v in removal.items() if (v or {}).get(leaf) is not None]
        if len(scored) < 2:
            continue
        scored.sort(key=lambda rv: rv[1], reverse=higher)
        (first, v1), (second, v2) = scored[0], scored[1]
        i1 = (intervals.get(first) or {}).get(leaf)
        i2 = (intervals.get(second) or {}).get(leaf)
        out.append({"measure": title, "best": labels.get(first, first), "best_key": first,
                    "value": _fmt(v1, i1), "second": labels.get(second, second),
                    "second_value": _fmt(v2, i2), "separated": _separated(i1, i2, higher)})
    return out


def faithfulness_table(runs: list[Path]) -> str:
    rows = ["| data | model | measure | most faithful | value [95% CI] | runner-up | value [95% CI] "
            "| told apart? |", "|---|---|---|---|---|---|---|---|"]
    disagreements = []
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
            best = best_rankings(summary["by_site"][site], labels)
            for b in best:
                rows.append(f"| {run.name} | {model.name} | {b['measure']} | {b['best']} | "
                            f"{b['value']} | {b['second']} | {b['second_value']} | "
                            f"{'yes' if b['separated'] else 'no (intervals overlap)'} |")
            winners = {b["best"] for b in best}
            if len(winners) > 1:
                disagreements.append(
                    f"- {run.name} {model.name}: " + "; ".join(f"{b['measure']}: {b['best']}"
                                                              for b in best))
    text = "\n".join(rows)
    if disagreements:
        text += "\n\nWhere the measures disagree on the most faithful ranking:\n\n"
        text += "\n".join(disagreements)
    return text


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    print(faithfulness_table([Path(a) for a in argv]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
