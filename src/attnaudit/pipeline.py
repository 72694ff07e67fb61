"""``attnaudit run``: data -> train each model -> audit each model -> report, with resumable stages.

Layout of a pipeline run folder::

    runs/NAME/
      run.json                  settings, seed and versions of this pipeline run
      models/<kind-encoder>/    one training run per model (see attnaudit.checkpoint), with audit/
      report.html               the self-contained report

With several seeds (``--seeds 0,1,2``), the first seed's models keep those folders and each further
seed S gets ``models/<kind-encoder>-seed<S>/``, an ordinary model folder (``attnaudit audit`` and
``report`` work on it; the run's report shows it as one more model). All seeds share the first seed's
data split and, unless ``[audit] seed`` is set, the first seed's audit draws (``--max-docs`` subset,
random ranking), so every seed audits the same test documents (``attnaudit audit`` of a later seed's
folder reuses its audit with ``--seed FIRST``); ``seeds.json`` (see :mod:`attnaudit.results.seeds`)
holds the mean and spread across seeds.

Each stage leaves a completion marker (``DONE`` for training, ``audit/summary.json`` for the audit),
so running the same command again skips finished stages, and an interrupted stage resumes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from attnaudit.config import ALL_MODELS, PipelineConfig, check_resumable
from attnaudit.data.prepare import PreparedData, prepare_data
from attnaudit.erasure.audit import audit_run
from attnaudit.results.seeds import seed_model_name, write_seeds_summary
from attnaudit.train import resolve_device, set_threads, train_run
from attnaudit.utils.io import read_json, remove_stale_temp_files, run_info, write_json

logger = logging.getLogger(__name__)

MODELS_DIR = "models"

__all__ = ["ALL_MODELS", "MODELS_DIR", "PipelineConfig", "model_dir", "run_pipeline"]


def model_dir(run_dir: Path, name: str) -> Path:
    """Where ``attnaudit run`` keeps model ``name`` (``runs/NAME/models/<kind-encoder>``)."""
    return run_dir / MODELS_DIR / name


def _trained_anything(run_dir: Path) -> bool:
    # Only finished epochs are worth protecting: a run that failed before (bad data, a typo in a
    # flag, Ctrl-C in the first epoch) must not block its own corrected rerun.
    models = run_dir / MODELS_DIR
    return any(models.glob("*/state.pt")) or any(models.glob("*/DONE"))


def run_pipeline(
    config: PipelineConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    restart_damaged: bool = False,
    replace_audit: bool = False,
) -> Path:
    """Train, audit and report every model of ``config`` (once per seed of ``config.run_seeds``);
    returns the report's path.

    Finished stages are reused; a stage interrupted by a crash resumes where it stopped. With two
    or more seeds, ``seeds.json`` aggregates them (:func:`attnaudit.results.seeds.summarize_seeds`).

    Args:
        config: data, models, shared model sizes, training and audit settings.
        run_dir: the pipeline's folder (``runs/NAME``).
        progress: show progress bars.
        restart_damaged: train a model again from scratch when its saved state is damaged (the
            other models are left alone); without it such a model stops the run with an error.
        replace_audit: redo finished audits made with other audit settings instead of refusing.
    Raises:
        DataError: bad settings or data, or ``run_dir`` holds a run with other settings.
    """
    run_dir = Path(run_dir)
    # Threads first, before any work: finished models skip training, and the audit must still run
    # on the asked-for count. run.json records the count in use.
    threads = set_threads(config.train.threads)
    config = config.model_copy(update={"train": config.train.model_copy(update={"threads": threads})})
    run_json = run_dir / "run.json"
    info = run_info(config.train.seed, config.to_dict())
    if run_json.is_file() and _trained_anything(run_dir):
        previous = read_json(run_json)
        # The data must be the same for every model; training settings are also checked per model
        # by train_run (finding a mismatch here saves loading the data first). Audit settings are
        # the audit's business (--replace).
        check_resumable(previous["config"], config, where=run_dir, sections=("data", "train"))
        info["created"] = previous.get("created", info["created"])
        info["resumed"] = [*previous.get("resumed", []), info["command"]]
    stale = remove_stale_temp_files(run_dir)  # left by a run killed mid-write
    if stale:
        logger.info("removed %d temporary file(s) of an interrupted run", len(stale))

    seeds = config.run_seeds
    # (model, seed, folder name) in training order: every model of a seed before the next seed, so
    # an interrupted multi-seed run has complete seeds to look at.
    jobs = [(name, seed, seed_model_name(name, seed, seeds)) for seed in seeds
            for name in config.models]
    audit = config.audit
    if len(seeds) >= 2 and audit.seed is None:
        # Every seed audits with the first seed's draws: the same --max-docs subset of the test
        # documents, the same random ranking and Test 1 random item, so the seeds' results are
        # paired and their spread is that of training alone. (The first seed's audit is the one a
        # single-seed run makes, so adding seeds to a finished run reuses it.)
        audit = audit.model_copy(update={"seed": seeds[0]})
    prepared: PreparedData | None = None
    if not all((model_dir(run_dir, folder) / "DONE").exists() for _, _, folder in jobs):
        prepared = prepare_data(config.data)  # once, shared by every model and seed
    # Written once the data has loaded, so a run whose data fails leaves no run.json behind.
    write_json(run_json, info)

    device = str(resolve_device(config.train.device))
    started = time.perf_counter()
    with _noting_ctrl_c() as ctrl_c:
        for index, (name, seed, folder) in enumerate(jobs, start=1):
            target = model_dir(run_dir, folder)
            logger.info("[%d/%d] %s: training", index, len(jobs), folder)
            train_run(config.run_config(name, seed=seed), target, prepared=prepared,
                      progress=progress, restart_damaged=restart_damaged)
            ctrl_c.check()
            logger.info("[%d/%d] %s: auditing", index, len(jobs), folder)
            audit_run(target, audit, progress=progress, prepared=prepared, device=device,
                      replace=replace_audit)
            ctrl_c.check()
    if len(seeds) >= 2:
        path = write_seeds_summary(run_dir, run_dir / MODELS_DIR, config.models, seeds)
        logger.info("mean and spread across %d seeds: %s", len(seeds), path)

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
