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

Models of different families can share a run (``--models flan-rnn,hf``): each model's settings are
its family's (:func:`attnaudit.train_hf.resolve_run_config`: a transformer reads its base's
subword tokenizer, the paper's models words), so the data is prepared once per distinct data
setting, and each model's audit covers the sites and rankings that apply to it
(:func:`audit_config_for`).

:func:`import_hf_model` makes a model folder from a classifier fine-tuned elsewhere (``attnaudit
audit --hf-model``), which is then audited and reported like a trained one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from attnaudit.checkpoint import (
    CONFIG_FILE,
    DONE_FILE,
    METRICS_FILE,
    RUN_INFO_FILE,
    SPLITS_FILE,
    save_checkpoint,
)
from attnaudit.config import (
    ALL_MODELS,
    DataConfig,
    ModelConfig,
    PipelineConfig,
    RunConfig,
    check_resumable,
)
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import PreparedData, prepare_data
from attnaudit.data.types import DataError
from attnaudit.erasure.audit import audit_config_for, audit_run
from attnaudit.errors import first_line
from attnaudit.models import check_vocab_fits
from attnaudit.results.seeds import seed_model_name, write_seeds_summary
from attnaudit.train import accuracy, majority_baseline, resolve_device, set_threads, train_run
from attnaudit.train_hf import resolve_run_config
from attnaudit.utils.hf_progress import transformers_progress
from attnaudit.utils.io import read_json, remove_stale_temp_files, run_info, write_json
from attnaudit.utils.lock import holding_folder
from attnaudit.utils.progress import draws_bars

logger = logging.getLogger(__name__)

MODELS_DIR = "models"

__all__ = ["ALL_MODELS", "MODELS_DIR", "PipelineConfig", "audit_config_for", "import_hf_model",
           "model_dir", "run_pipeline"]


def model_dir(run_dir: Path, name: str) -> Path:
    """Where ``attnaudit run`` keeps model ``name`` (``runs/NAME/models/<kind-encoder>``)."""
    return run_dir / MODELS_DIR / name


def _trained_anything(run_dir: Path) -> bool:
    # Only finished epochs are worth protecting: a run that failed before (bad data, a typo in a
    # flag, Ctrl-C in the first epoch) must not block its own corrected rerun.
    models = run_dir / MODELS_DIR
    return any(models.glob("*/state.pt")) or any(models.glob("*/DONE"))


@holding_folder("run_dir", "attnaudit run")
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
        DataError: bad settings or data, ``run_dir`` holds a run with other settings, or another
            command is working on it (:func:`attnaudit.utils.lock.folder_lock`).
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
    # Left by a run killed mid-write; each model folder is cleaned by its training and its audit,
    # under that folder's own lock (an 'attnaudit audit' of one model may be writing there now).
    stale = remove_stale_temp_files(run_dir, exclude=[run_dir / MODELS_DIR])
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
    # Each model's own settings (its family's tokenizer, length limit and optimizer settings),
    # checked before any work: a missing base or a mismatching tokenizer stops here.
    run_configs = {folder: resolve_run_config(config.run_config(name, seed=seed))
                   for name, seed, folder in jobs}
    # Data once per distinct data setting (words, a transformer's subwords), shared by every
    # model and seed that reads it; only where some model still has to train.
    prepared: dict[str, PreparedData] = {}
    for _, _, folder in jobs:
        key = _data_key(run_configs[folder].data)
        if key not in prepared and not (model_dir(run_dir, folder) / "DONE").exists():
            prepared[key] = prepare_data(run_configs[folder].data)
    # Written once the data has loaded, so a run whose data fails leaves no run.json behind.
    write_json(run_json, info)

    device = str(resolve_device(config.train.device))
    started = time.perf_counter()
    with _noting_ctrl_c() as ctrl_c:
        for index, (_, _, folder) in enumerate(jobs, start=1):
            target = model_dir(run_dir, folder)
            data = prepared.get(_data_key(run_configs[folder].data))
            logger.info("[%d/%d] %s: training", index, len(jobs), folder)
            train_run(run_configs[folder], target, prepared=data, progress=progress,
                      restart_damaged=restart_damaged)
            ctrl_c.check()
            logger.info("[%d/%d] %s: auditing", index, len(jobs), folder)
            audit_run(target, audit, progress=progress,
                      prepared=data, device=device, replace=replace_audit)
            ctrl_c.check()
    if len(seeds) >= 2:
        path = write_seeds_summary(run_dir, run_dir / MODELS_DIR, config.models, seeds)
        logger.info("mean and spread across %d seeds: %s", len(seeds), path)

    from attnaudit.reports.html import build_report

    report = build_report(run_dir)
    logger.info("pipeline finished in %.0f s", time.perf_counter() - started)
    return report


def _data_key(data: DataConfig) -> str:
    return json.dumps(data.to_dict(), sort_keys=True)


# --- per-model audit settings ---------------------------------------------------------------------


# --- a classifier fine-tuned elsewhere ------------------------------------------------------------


@holding_folder("out", "attnaudit audit --hf-model")
def import_hf_model(
    model_path: Path, data: DataConfig, out: Path, *, device: str = "cpu", progress: bool = True
) -> dict[str, Any]:
    """Make ``out`` a model folder holding the Hugging Face classifier saved in ``model_path``, to
    be audited (no training); returns its metrics.

    ``model_path`` is what ``save_pretrained`` wrote for an ``AutoModelForSequenceClassification``
    of the BERT family, with its tokenizer. The data is prepared with that tokenizer; nothing is
    trained, so nothing is set aside (``[data] test_only``): the data's test split is audited, or
    every document when the data has no test split (``max_test_docs`` subsamples it). The model's
    classes are its ``config.id2label`` names, in its order, renamed by ``[data] label_map``
    (``--label-map``), or, when they are transformers' defaults ``LABEL_k`` and the data does not
    use them, class k is the data's label ``k`` (all labels are 0..C-1) or else its k-th label in
    sorted order, with a warning (:func:`_class_names`); the data's labels must be among them.
    ``out`` gets
    what ``attnaudit train`` writes (config.json, run_info.json, splits.json, model.pt, a copy of
    the tokenizer, metrics.json with the test accuracy and the majority baseline, DONE), so every
    command that reads model folders (audit, evaluate, report) reads it. A folder that already
    holds this model with these settings is reused. ``progress`` False silences transformers'
    progress bars while the weights load (``--no-progress``).

    Raises:
        DataError: one line: no such folder, not a BERT sequence classifier, labels that do not
            match the data's (both sets named), or ``out`` holding another run.
    """
    from attnaudit.data.prepare import _resolve_path
    from attnaudit.models.hf_generic import HFClassifier

    folder, id2label = _hf_classifier(model_path)
    data = data.model_copy(update={"test_only": True})
    config = resolve_run_config(RunConfig(data=data, model=ModelConfig(kind=HFClassifier.kind,
                                                                      base=str(folder))))
    source = _source_digest(folder)
    if (out / DONE_FILE).is_file() and (out / CONFIG_FILE).is_file():
        check_resumable(read_json(out / CONFIG_FILE), config, where=out,
                        fix="use another --out folder, or delete this one")
        if read_json(out / RUN_INFO_FILE).get("source_digest") == source:
            logger.info("%s already holds %s; reusing it", out, folder)
            metrics: dict[str, Any] = read_json(out / METRICS_FILE)
            return metrics
        raise DataError(f"{out} holds {folder} as it was before its files changed; use another "
                        "--out folder, or delete this one to import the model again")
    path = _resolve_path(config.data)
    names = _class_names(id2label, path, config.data, folder)
    try:
        prepared = prepare_data(config.data, label_names=names)
    except DataError:
        # prepare_data refuses the first document whose label is not the model's; a mismatch of
        # the two label sets is the likely mistake, so say that in one line naming both. The data
        # is read again for it only on this failure path, never when the labels fit.
        mismatch = _label_mismatch(path, config.data, names, folder)
        if mismatch is None:
            raise
        raise mismatch from None
    with transformers_progress(progress and draws_bars()):  # no bar in a log file
        model = HFClassifier.from_pretrained(folder).eval()
    check_vocab_fits(model, len(prepared.vocab), f"--hf-model {model_path}")
    if not prepared.test:
        raise DataError(f"{path}: no test documents to audit")
    logger.info("%s: auditing %s (%d documents): nothing is trained, so nothing is set aside", path,
                "its test split" if prepared.splits["test"] and (prepared.train or prepared.dev)
                else "every document", len(prepared.test))
    out.mkdir(parents=True, exist_ok=True)
    info = run_info(config.train.seed, config.to_dict())
    info.update(imported_from=str(folder), source_digest=source, id2label=id2label)
    write_json(out / RUN_INFO_FILE, info)
    write_json(out / SPLITS_FILE, prepared.splits)
    write_json(out / CONFIG_FILE, config.to_dict())
    save_checkpoint(out, model, prepared.vocab, names, config)
    here = resolve_device(device)
    batches = make_batches(prepared.test, hierarchical=False,
                           batch_size=config.train.eval_batch_size,
                           max_batch_tokens=config.train.max_batch_tokens)
    started = time.perf_counter()
    test_accuracy = accuracy(model.to(here), batches)
    # With no train split (a test-only file, or one audited whole), the majority class of the
    # audited documents themselves: the best any constant prediction does on them.
    majority_label, majority_accuracy = majority_baseline(prepared.train or prepared.test,
                                                          prepared.test)
    metrics = {
        "model": out.name,
        "imported_from": str(folder),
        "dev_accuracy": None,
        "test_accuracy": test_accuracy,
        "majority_label": prepared.label_names[majority_label],
        "majority_test_accuracy": majority_accuracy,
        "majority_from": "train" if prepared.train else "test",
        "best_epoch": 0,
        "epochs_trained": 0,
        "stopped_early": False,
        "num_train": len(prepared.train),
        "num_dev": len(prepared.dev),
        "num_test": len(prepared.test),
        "num_classes": len(names),
        "vocab_size": len(prepared.vocab),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(here),
        "eval_seconds": time.perf_counter() - started,
        "history": [],
    }
    write_json(out / METRICS_FILE, metrics)
    (out / DONE_FILE).touch()
    logger.info("%s: %s imported, test accuracy %.4f on %d documents (majority %.4f)", out,
                folder, test_accuracy, len(prepared.test), majority_accuracy)
    return metrics


def _data_labels(path: Path, data: DataConfig) -> list[str] | None:
    """The data's distinct labels (:func:`~attnaudit.data.prepare.sort_labels` order), or None
    when the data cannot be read (preparing it then says why)."""
    from attnaudit.data.loaders import load_documents
    from attnaudit.data.prepare import sort_labels

    try:
        documents = load_documents(path, fmt=data.fmt, text_column=data.text_column,
                                   label_column=data.label_column, id_column=data.id_column,
                                   on_empty=data.on_empty)
    except DataError:
        return None
    return sort_labels(d.label for d in documents)


def _class_names(id2label: list[str], path: Path, data: DataConfig, folder: Path) -> list[str]:
    """The model's classes as the data's labels, in the model's order.

    ``[data] label_map`` renames the classes it names (by name, or by index when no class has
    that name); the others keep theirs. Without it, names that are transformers' defaults
    (``LABEL_0 .. LABEL_{C-1}``, what ``save_pretrained`` writes when no names were set) and that
    the data does not use are read as the data's labels: class k is label ``k`` when every label
    of the data is one of ``0 .. C-1``, else the data's k-th label in sorted order when it has C;
    a warning names the mapping and the flag that overrides it. Anything else is left as it is
    (a mismatch is then reported by :func:`_label_mismatch`).

    Raises:
        DataError: one line: a label_map key that is no class of the model, or a mapping that
            gives two classes one name.
    """
    names = list(id2label)
    if data.label_map:
        for key, label in data.label_map.items():
            if key in id2label:
                names[id2label.index(key)] = label
            elif key.isdigit() and int(key) < len(names):
                names[int(key)] = label
            else:
                raise DataError(f"--label-map {key}={label}: the model has no class {key!r} (its "
                                f"classes: {', '.join(id2label)}, config.id2label of {folder})")
        if len(set(names)) != len(names):
            raise DataError(f"--label-map: two classes of the model would both be {names!r}; "
                            "give each class its own label")
        logger.info("%s: classes named by the label map: %s", folder,
                    ", ".join(f"{a} -> {b}" for a, b in zip(id2label, names, strict=True)))
        return names
    if names != [f"LABEL_{k}" for k in range(len(names))]:
        return names
    labels = _data_labels(path, data)
    if labels is None or set(labels) <= set(names):
        return names
    digits = [str(k) for k in range(len(names))]
    if set(labels) <= set(digits):
        names, rule = digits, "class k is the data's label k"
    elif len(labels) == len(names):
        names, rule = labels, "class k is the data's k-th label in sorted order"
    else:
        return names
    logger.warning(
        "%s: config.id2label holds transformers' default names (LABEL_0, ...), which the data "
        "does not use; taking %s (--label-map %s); if the model learnt its classes in another "
        "order, give --label-map with that order", folder, rule,
        ",".join(f"{a}={b}" for a, b in zip(id2label, names, strict=True)))
    return names


def _label_mismatch(
    path: Path, data: DataConfig, names: list[str], folder: Path
) -> DataError | None:
    """The one-line error for data whose labels are not all among the model's ``names`` (both
    sets named), or None when they all are (then the data failed for another reason)."""
    in_data = _data_labels(path, data)
    if in_data is None or all(label in names for label in in_data):
        return None
    return DataError(
        f"{path}: the data's labels ({', '.join(in_data)}) are not the model's "
        f"({', '.join(names)}, config.id2label of {folder}); say which class is which label with "
        "--label-map NAME=VALUE,... (in the model's order), or choose the data's label column "
        "(--label-column)"
    )


def _hf_classifier(model_path: Path) -> tuple[Path, list[str]]:
    """The folder of a saved BERT sequence classifier and its class names (``id2label`` in index
    order, normalised as data labels are).

    Raises:
        DataError: one line saying what the folder lacks.
    """
    from transformers import AutoConfig

    from attnaudit.data.loaders.common import normalise_label

    folder = Path(model_path).expanduser()
    if not (folder / "config.json").is_file():
        raise DataError(f"--hf-model {model_path}: no Hugging Face model here (no config.json); "
                        "give the folder save_pretrained wrote")
    try:
        hf_config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(f"--hf-model {model_path}: cannot read its config.json "
                        f"({first_line(err)})") from None
    from attnaudit.models.hf_families import family_of_config

    try:
        family_of_config(hf_config)  # a family (or variant) the host does not cover: one line
    except ValueError as err:
        raise DataError(f"--hf-model {model_path}: {err}") from None
    architectures = hf_config.architectures or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise DataError(
            f"--hf-model {model_path}: not a sequence classifier (architectures "
            f"{architectures or 'unset'}); fine-tune it first: attnaudit train --model hf --base "
            f"{model_path}"
        )
    names = [normalise_label(hf_config.id2label[i]) for i in range(int(hf_config.num_labels))]
    if len(set(names)) != len(names):
        raise DataError(f"--hf-model {model_path}: config.id2label repeats a name ({names}); give "
                        "each class its own name")
    return folder.resolve(), names


def _source_digest(folder: Path) -> str:
    """A digest of the model's configuration and weights (``*.safetensors``, ``*.bin``)."""
    from attnaudit.data.cache import cache_root, data_digest

    root = cache_root()
    parts = [data_digest(p, root) for p in sorted(folder.iterdir())
             if p.is_file() and (p.name == "config.json" or p.suffix in (".safetensors", ".bin"))]
    return ",".join(parts)


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
