"""Run folders: saving and loading trained classifiers.

A run folder written by :func:`attnaudit.train.train_run` holds::

    config.json    the full RunConfig (data, model, train)
    run_info.json  seed, package versions, command, time (attnaudit.utils.io.run_info)
    splits.json    document ids of train / dev / test
    model.pt       best checkpoint: state_dict + model config + vocabulary + label names + config
    state.pt       training state after the last finished epoch (model, optimizer, scheduler, epoch,
                   best dev accuracy, patience counter, RNG states): what a killed run resumes from
    metrics.json   dev/test accuracy, majority baseline, per-epoch history, time, docs/s
    tokenizer/     runs on a Hugging Face tokenizer ([data] tokenizer) only: a copy of its files
    hf_model/      transformers fine-tuned here (plain ``hf``) only: the best checkpoint as
                   transformers' own ``save_pretrained`` folder with its tokenizer and the data's
                   class names in ``config.id2label`` (written with DONE; read by no attnaudit
                   command, which read model.pt: it is the run's model for everything else)
    DONE           written last: the run is complete and is never retrained

Every file is written to a temporary name and renamed into place, so a run killed at any moment leaves
either the old file or the new one, never half of one. ``model.pt`` alone is enough to rebuild the
classifier (:func:`load_model_file`); files are read with ``torch.load(weights_only=True)``, so loading
a run never executes code from it.

Transformers (``hf`` kinds) are saved the same way: their state dict and ``config_dict()``, which
holds the whole Hugging Face model configuration, so they are rebuilt from ``model.pt`` alone, with
no network and without the pretrained base they were fine-tuned from. Their vocabulary is the
tokenizer's (saved as the run's vocabulary); the tokenizer itself, needed to tokenise text again
(auditing later, :func:`attnaudit.api.audit` on new text), is copied into ``tokenizer/``, which
:func:`load_run` uses when the configured tokenizer folder (or the MiniLM package) is gone.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnaudit.config import RunConfig
from attnaudit.data.prepare import DataConfig
from attnaudit.data.types import DataError
from attnaudit.data.vocab import Vocab
from attnaudit.errors import DamagedFileError, first_line
from attnaudit.models import MODELS, AttentionClassifier
from attnaudit.utils.io import atomic_path

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
RUN_INFO_FILE = "run_info.json"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.json"
DONE_FILE = "DONE"
#: the copy of a run's Hugging Face tokenizer
TOKENIZER_DIR = "tokenizer"

#: a transformer run's best checkpoint as transformers' save_pretrained folder
HF_MODEL_DIR = "hf_model"

#: bumped when the layout of model.pt changes incompatibly
CHECKPOINT_FORMAT = 1


@dataclass
class LoadedRun:
    """A trained classifier with what is needed to feed it new text.

    Attributes:
        model: the classifier, in eval mode, on the requested device.
        vocab: the vocabulary it was trained with.
        label_names: class names; ``label_names[i]`` is class index ``i``.
        config: the run's full configuration.
        data_config: ``config.data``, for re-preparing the same splits.
        run_dir: the folder it came from.
    """

    model: AttentionClassifier
    vocab: Vocab
    label_names: list[str]
    config: RunConfig
    data_config: DataConfig
    run_dir: Path


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    model: AttentionClassifier,
    vocab: Vocab,
    label_names: Sequence[str],
    config: RunConfig,
) -> Path:
    """Atomically write ``run_dir/model.pt``; returns its path.

    Parameters are saved on the CPU, so a model trained on a GPU loads on a machine without one.
    A run on a Hugging Face tokenizer also gets a copy of it (``tokenizer/``, once).
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "model_config": model.config_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocab": vocab.to_dict(),
        "label_names": list(label_names),
        "config": config.to_dict(),
    }
    path = Path(run_dir) / MODEL_FILE
    # Saving through a file handle (not the temporary path) keeps the archive's inner folder name
    # fixed, so the same weights give the same bytes (the audit fingerprints model.pt).
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
    if config.data.tokenizer is not None:
        save_tokenizer(run_dir, config.data.tokenizer)
    return path


def save_tokenizer(run_dir: str | os.PathLike[str], spec: str) -> Path:
    """Copy the files of tokenizer ``spec`` (``"minilm"`` or a folder) into ``run_dir/tokenizer/``
    unless a copy is there; returns the copy's folder.

    Only the tokenizer's files (vocabulary, settings, config.json: see
    :data:`attnaudit.data.hf_tokenizer.TOKENIZER_FILES`), not a model's weights beside them. Written
    to a temporary folder and renamed, so a copy is whole or absent.
    """
    from attnaudit.data.hf_tokenizer import resolve_tokenizer, tokenizer_files

    target = Path(run_dir) / TOKENIZER_DIR
    if target.is_dir():
        return target
    source = resolve_tokenizer(spec)
    partial = target.with_name(f".{TOKENIZER_DIR}.tmp{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in tokenizer_files(source):
        shutil.copy2(source / name, partial / name)
    partial.rename(target)
    return target


def export_model(run_dir: str | os.PathLike[str], model: AttentionClassifier,
                 label_names: Sequence[str], config: RunConfig) -> Path | None:
    """Write ``model`` in its library's own format into ``run_dir/hf_model/``
    (:meth:`AttentionClassifier.export_pretrained`: a transformer's ``save_pretrained`` folder with
    its tokenizer); returns the folder, or None for a model with no such format.

    Written to a temporary folder and renamed over the old one, so the folder is whole or absent
    (a kill in between leaves none; the run is not DONE then, and finishing it writes it again).
    """
    if config.data.tokenizer is None:
        return None
    from attnaudit.data.hf_tokenizer import resolve_tokenizer

    target = Path(run_dir) / HF_MODEL_DIR
    for stale in target.parent.glob(f".{HF_MODEL_DIR}.tmp*"):  # left by a killed export
        shutil.rmtree(stale, ignore_errors=True)
    partial = target.with_name(f".{HF_MODEL_DIR}.tmp{os.getpid()}")
    partial.mkdir(parents=True)
    if not model.export_pretrained(partial, label_names, resolve_tokenizer(config.data.tokenizer)):
        shutil.rmtree(partial)
        return None
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def build_from_checkpoint(payload: dict[str, Any]) -> AttentionClassifier:
    """Rebuild the classifier stored in a loaded ``model.pt`` payload (eval mode, on the CPU)."""
    kind = payload["kind"]
    if kind not in MODELS:
        raise DataError(f"checkpoint holds unknown model kind {kind!r}")
    model = MODELS[kind](**payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def load_model_file(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[AttentionClassifier, Vocab, list[str], RunConfig]:
    """Load ``model.pt``: ``(model in eval mode, vocab, label_names, config)``."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no checkpoint (was the run trained?)")
    payload = _load(file, fix=(
        "retrain this model: rerun the 'attnaudit run' command that made it with "
        "--restart-damaged, or delete its folder and run 'attnaudit train' again"
    ))
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(
            f"{file}: checkpoint format {payload.get('format')!r}, this attnaudit reads "
            f"{CHECKPOINT_FORMAT}"
        )
    try:
        model = build_from_checkpoint(payload).to(device)
        vocab = Vocab.from_dict(payload["vocab"])
        model.set_vocabulary(vocab.itos)  # a transformer's word items need its subword strings
        label_names = list(payload["label_names"])
        saved = payload["config"]
    except (KeyError, TypeError, RuntimeError) as err:  # RuntimeError: state_dict does not fit
        raise DamagedFileError(file, f"{file}: checkpoint is incomplete or damaged ({err!r}); "
                                     "retrain this model") from None
    return model, vocab, label_names, RunConfig.from_dict(saved, source=str(file))


def load_run(run_dir: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run folder's best checkpoint.

    Example:
        >>> run = load_run("runs/imdb-flan-rnn")  # doctest: +SKIP
        >>> run.model.run(batch).attention  # doctest: +SKIP
    """
    folder = Path(run_dir)
    model, vocab, label_names, config = load_model_file(folder / MODEL_FILE, device=device)
    config = _with_saved_tokenizer(config, folder)
    if config.data.tokenizer is not None:
        _set_words(model, config.data.tokenizer)
    return LoadedRun(
        model=model,
        vocab=vocab,
        label_names=label_names,
        config=config,
        data_config=config.data,
        run_dir=folder,
    )


def _set_words(model: AttentionClassifier, spec: str) -> None:
    """Give a transformer its tokenizer, so that word items come from the tokenizer's own
    ``word_ids()`` as for a model imported with its folder (the vocabulary's markers alone glue
    punctuation to words for byte-level BPE and SentencePiece). Loaded as transformers loads it for
    an import (not with the data layer's ``split_special_tokens``). A tokenizer that cannot be
    loaded any more leaves the markers, as before runs kept one."""
    from attnaudit.data.hf_tokenizer import resolve_tokenizer

    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(resolve_tokenizer(spec), local_files_only=True)
    except (DataError, OSError, ValueError) as err:
        logger.info("tokenizer %r not loaded (%s); word items from the vocabulary's markers",
                    spec, first_line(err))
        return
    model.set_tokenizer(tokenizer)


def _with_saved_tokenizer(config: RunConfig, folder: Path) -> RunConfig:
    """``config``, reading its tokenizer from the run's copy (``tokenizer/``) when the configured
    one cannot be found any more (a moved base folder, an uninstalled MiniLM package)."""
    spec = config.data.tokenizer
    copy = folder / TOKENIZER_DIR
    if spec is None or not copy.is_dir():
        return config
    from attnaudit.data.hf_tokenizer import resolve_tokenizer

    try:
        resolve_tokenizer(spec)
    except DataError:
        logger.info("tokenizer %r not found; using the run's copy %s", spec, copy)
        data = config.data.model_copy(update={"tokenizer": str(copy.resolve())})
        return config.model_copy(update={"data": data})
    return config


def save_training_state(run_dir: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically write ``run_dir/state.pt`` (tensors, numbers, strings, lists, dicts only)."""
    with atomic_path(Path(run_dir) / STATE_FILE) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def load_training_state(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The saved training state, or ``None`` when the run has not finished an epoch yet."""
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        return None
    return _load(path, fix=(
        "run the same command again with --restart-damaged to train this model from scratch "
        "(finished models beside it are kept)"
    ))


def _load(path: Path, *, fix: str) -> dict[str, Any]:
    """``torch.load`` of one of our files; a truncated or corrupt one raises DamagedFileError."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise  # not damage: the CLI says which file cannot be read
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError, AttributeError, IndexError) as err:
        # OSError: torch's zip reader reports some truncations as EINVAL.
        # A kill cannot truncate these files (they are renamed into place whole), so this is a
        # disk problem or a hand-copied file: say so rather than show torch's zip error.
        # The first sentence only: torch goes on with advice that does not apply to our files
        # ("Weights only load failed. This file can still be loaded, ...").
        reason = first_line(err).split(". ")[0][:100]
        raise DamagedFileError(path, f"{path} is damaged (truncated or corrupt: {reason}); {fix}") \
            from None
    if not isinstance(payload, dict):
        raise DamagedFileError(path, f"{path} is damaged (not an attnaudit file); {fix}")
    return payload


def is_done(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the run folder holds a finished run (its ``DONE`` marker exists)."""
    return (Path(run_dir) / DONE_FILE).is_file()
