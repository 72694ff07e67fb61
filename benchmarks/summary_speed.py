"""Time the summary of a saved audit: agreement between rankings and the bootstrap intervals.

    python benchmarks/summary_speed.py runs/x/models/flan-rnn/audit --bootstrap 1000

Reads the audit's tables (no model, no torch) and prints CPU seconds (``time.process_time``, so a
busy shared machine inflates them less than wall time) for: the per-document agreement table, the
summary without intervals, and the summary with ``--bootstrap`` resamples.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from attnaudit.results.agreement import agreement_table
from attnaudit.results.summary import summarize
from attnaudit.results.tables import read_audit

log = logging.getLogger("summary_speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audit", type=Path, help="an audit folder (single_weight/removal/items)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tables = read_audit(args.audit)
    if tables.single is None or tables.removal is None or tables.items is None:
        raise SystemExit(f"{args.audit}: single_weight, removal and items tables are needed")
    rankings = [c[len("score_"):] for c in tables.items.columns if c.startswith("score_")]
    log.info("%d documents, %d rankings, %d item rows", tables.removal["doc_id"].nunique(),
             len(rankings), len(tables.items))
    start = time.process_time()
    agreement_table(tables.items, rankings)
    log.info("agreement table: %.2f s CPU", time.process_time() - start)
    for resamples in (0, args.bootstrap):
        start = time.process_time()
        summarize(tables.single, tables.removal, model="benchmark", rankings_meta={}, sites_meta={},
                  items=tables.items, bootstrap=resamples, seed=args.seed)
        log.info("summarize, bootstrap=%d: %.2f s CPU", resamples, time.process_time() - start)


if __name__ == "__main__":
    main()
