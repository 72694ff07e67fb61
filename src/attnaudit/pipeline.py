"""``attnaudit run``: data -> train each model -> audit each model -> report, with resumable stages.

Layout of a pipeline run folder::

    runs/NAME/
      run.json                  settings, seed and versions of this pipeline run
      models/<kind-encoder>/    one training run per model (see attnaudit.checkpoint), with audit/
      report.html               the self-contained report

Each stage leaves a completion marker (``DONE`` for training, ``audit/summary.json`` for the audit),
so running the same command again skips finished stages, and an interrupted stage resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from attnaudit.config import ModelConfig, RunConfig, TrainConfig
from attnaudit.data.prepare import DataConfig, prepare_data
from attnaudit.data.types import DataError
from attnaudit.erasure.audit import AuditConfig, audit_run
from attnaudit.models import parse_model_name
from attnaudit.train import train_run
from attnaudit.utils.io import read_json, remove_stale_temp_files, run_info, write_json

logger = logging.getLogger(__name__)

#: the paper's six variants
ALL_MODELS = ("flan-none", "flan-cnn", "flan-rnn", "han-none", "han-cnn", "han-rnn")
MODELS_DIR = "models"


@dataclass
class PipelineConfig:
    """What ``attnaudit run`` does. Every field is saved in ``run.json``."""

    data: DataConfig
    models: tuple[str, ...] = ALL_MODELS
    train: TrainConfig = field(default_factory=TrainConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data.to_dict(),
            "models": list(self.models),
            "train": dataclasses.asdict(self.train),
            "audit": self.audit.to_dict(),
        }


def model_dir(run_dir: Path, name: str) -> Path:
    return run_dir / MODELS_DIR / name


def run_pipeline(config: PipelineConfig, run_dir: str | Path, *, progress: bool = True) -> Path:
    """Train, audit and report every model of ``config``; returns the report's path.

    Finished stages are reused; a stage interrupted by a crash resumes where it stopped.
    """
    run_dir = Path(run_dir)
    for name in config.models:
        parse_model_name(name)  # fail before any work on a typo
    run_json = run_dir / "run.json"
    info = run_info(config.train.seed, config.to_dict())
    if run_json.exists():
        previous = read_json(run_json)
        # Training settings are checked per model by train_run, which lets resumable ones
        # (more epochs, another device) change; the data must be the same for every model.
        if previous["config"]["data"] != config.data.to_dict():
            raise DataError(
                f"{run_dir} holds a run on other data settings; "
                "use another --out folder, or delete this one"
            )
        info["created"] = previous.get("created", info["created"])
        info["resumed"] = [*previous.get("resumed", []), info["command"]]
    stale = remove_stale_temp_files(run_dir)  # left by a run killed mid-write
    if stale:
        logger.info("removed %d temporary file(s) of an interrupted run", len(stale))
    write_json(run_json, info)

    started = time.perf_counter()
    prepared = None
    with _noting_ctrl_c() as ctrl_c:
        for index, name in enumerate(config.models, start=1):
            kind, encoder = parse_model_name(name)
            target = model_dir(run_dir, name)
            logger.info("[%d/%d] %s: training", index, len(config.models), name)
            if prepared is None and not (target / "DONE").exists():
                prepared = prepare_data(config.data)  # once, shared by every model
            run_config = RunConfig(
                data=config.data, model=ModelConfig(kind=kind, encoder=encoder), train=config.train
            )
            train_run(run_config, target, prepared=prepared, progress=progress)
            ctrl_c.check()
            logger.info("[%d/%d] %s: auditing", index, len(config.models), name)
            audit_run(target, config.audit, progress=progress, prepared=prepared)
            ctrl_c.check()

    from attnaudit.reports.html import build_report

    report = build_report(run_dir)
    logger.info("pipeline finished in %.0f s", time.perf_counter() - started)
    return report


class _CtrlC:
    """Whether Ctrl-C (SIGINT) was pressed; see :func:`_noting_ctrl_c`."""

    def __init__(self) -> None:
        self.pressed = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt  # what Python's own handler does

    def check(self) -> None:
        """Stop here if a Ctrl-C was pressed but swallowed."""
        if self.pressed:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _noting_ctrl_c() -> Iterator[_CtrlC]:
    """Within the block, Ctrl-C raises KeyboardInterrupt as usual and is also remembered.

    Python only prints ("Exception ignored in ...") and then drops a KeyboardInterrupt raised inside a
    finaliser, such as a progress bar's ``__del__``; a Ctrl-C landing there would let the run go on
    to the end. Remembered, it stops the pipeline at the next stage boundary instead. Outside the
    main thread, or where someone else has replaced Python's handler, nothing is changed.
    """
    ctrl_c = _CtrlC()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield ctrl_c
        return
    signal.signal(signal.SIGINT, ctrl_c.handle)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The pipeline configuration from ``attnaudit run``'s flags."""
    data_options: dict[str, Any] = {"path": args.data or "default"}
    for key, value in (
        ("fmt", args.data_format),
        ("text_column", args.text_column),
        ("label_column", args.label_column),
        ("max_train_docs", args.max_train_docs),
        ("max_test_docs", args.max_test_docs),
    ):
        if value is not None:
            data_options[key] = value
    train_options: dict[str, Any] = {"seed": args.seed}
    if args.epochs is not None:
        train_options["epochs"] = args.epochs
    if getattr(args, "lr", None) is not None:
        train_options["lr"] = args.lr
    if getattr(args, "threads", None) is not None:
        train_options["threads"] = args.threads
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return PipelineConfig(
        data=DataConfig.from_dict(data_options),
        models=models,
        train=TrainConfig(**train_options),
        audit=AuditConfig(seed=args.seed),
    )


def cli_run(args: argparse.Namespace) -> None:
    """``attnaudit run``: the main job, ending with one line saying where the report is."""
    report = run_pipeline(config_from_args(args), args.out)
    print(f"report: {report}  (open it in a browser; rebuild with: attnaudit report {args.out})")
