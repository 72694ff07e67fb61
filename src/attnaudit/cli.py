"""Command-line interface: ``attnaudit {train,evaluate,audit,run,report,fetch-default}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from attnaudit.errors import DataError
from attnaudit.utils.logging import configure


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", default=None, help="dataset path, or 'default' for the shipped news set"
    )
    p.add_argument(
        "--format",
        dest="data_format",
        default=None,
        help="auto (default), zhang-csv, aclimdb, hf-disk, parquet, jsonl, csv",
    )
    p.add_argument("--text-column", default=None, help="text column (named formats)")
    p.add_argument(
        "--label-column", default=None, help="label column, e.g. 'rating' for IMDB stars"
    )
    p.add_argument("--max-train-docs", type=int, default=None, help="subsample training documents")
    p.add_argument("--max-test-docs", type=int, default=None, help="subsample test documents")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnaudit", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "fetch-default", help="fetch the shipped default dataset (no other download)"
    )
    p.add_argument("--data-dir", default="data")

    p = sub.add_parser("train", help="train one attention classifier")
    _add_data_args(p)
    p.add_argument("--config", default=None, help="TOML file with the same settings")
    p.add_argument("--model", default=None, choices=["flan", "han"])
    p.add_argument("--encoder", default=None, choices=["none", "cnn", "rnn"])
    p.add_argument("--embeddings", default=None, help="word2vec-text or GloVe vectors file")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-dev-docs", type=int, default=None, help="subsample dev documents")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="cap on padded tokens per training batch")
    p.add_argument("--patience", type=int, default=None,
                   help="early-stopping patience in epochs (default 5; 10 with --encoder none)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is faster on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")

    p = sub.add_parser("evaluate", help="accuracy of a trained run on a split")
    p.add_argument("run", help="run folder")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")

    p = sub.add_parser("audit", help="attention tests on trained runs")
    p.add_argument("runs", nargs="+", help="one or more run folders")
    p.add_argument("--path", dest="erasure_path", default="fast", choices=["fast", "naive"])
    p.add_argument("--js-base", default="e", choices=["e", "2"])
    p.add_argument("--gradient-output", default="probability", choices=["probability", "logit"])
    p.add_argument("--random-draw", default="uniform", choices=["uniform", "original"])
    p.add_argument("--max-docs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-out", default=None, help="where the per-model comparison goes")

    p = sub.add_parser("run", help="train, audit and report in one command")
    _add_data_args(p)
    p.add_argument("--models", default="flan-none,flan-cnn,flan-rnn,han-none,han-cnn,han-rnn",
                   help="comma-separated KIND-ENCODER names (default: the paper's six)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 3)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="fixes training, splits and the audit")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 is much faster on a busy machine)")
    p.add_argument("--out", required=True)

    p = sub.add_parser("report", help="rebuild report.html from saved results")
    p.add_argument("run", help="folder written by 'attnaudit run'")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.verbose)
    try:
        if args.command == "fetch-default":
            from attnaudit.data.default import fetch_default

            print(fetch_default(args.data_dir))
        elif args.command == "train":
            from attnaudit.train import cli_train

            cli_train(args)
        elif args.command == "evaluate":
            from attnaudit.train import cli_evaluate

            cli_evaluate(args)
        elif args.command == "audit":
            from attnaudit.erasure.audit import cli_audit

            cli_audit(args)
        elif args.command == "run":
            from attnaudit.pipeline import cli_run

            cli_run(args)
        elif args.command == "report":
            from attnaudit.reports.html import cli_report

            cli_report(args)
    except DataError as err:
        print(f"attnaudit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attnaudit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
