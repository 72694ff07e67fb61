"""Training and evaluation of one attention classifier, into a resumable run folder.

``train_run(config, out_dir)`` trains with Adam and cross-entropy on length-bucketed, shuffled
batches, clips the gradient norm, halves the learning rate when dev accuracy stops improving, stops
early on dev accuracy and keeps the best checkpoint (transformers fine-tune with AdamW and a linear
warmup and decay instead, with their family's defaults: see :mod:`attnaudit.train_hf`). After every
epoch it saves the full training state (including RNG states), so a run killed mid-training and
started again with the same command continues from its last finished epoch and ends with the same
result as an uninterrupted run. A run folder with ``DONE`` is never retrained. The folder's files are
described in :mod:`attnaudit.checkpoint`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from attnaudit.checkpoint import (
    CONFIG_FILE,
    DONE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_INFO_FILE,
    SPLITS_FILE,
    STATE_FILE,
    export_model,
    is_done,
    load_model_file,
    load_run,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from attnaudit.config import RunConfig, check_resumable
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import PreparedData, prepare_data
from attnaudit.data.types import Batch, DataError, EncodedDocument
from attnaudit.errors import DamagedFileError
from attnaudit.models import AttentionClassifier, build_from_config, is_hierarchical
from attnaudit.models.embeddings import load_embeddings
from attnaudit.train_hf import make_schedule, resolve_run_config
from attnaudit.utils.io import read_json, remove_stale_temp_files, run_info, write_json
from attnaudit.utils.lock import holding_folder
from attnaudit.utils.progress import progress_bar
from attnaudit.utils.seeding import seed_everything

logger = logging.getLogger(__name__)


def set_threads(threads: int | None) -> int:
    """Set torch's CPU thread count (process-wide) and return the count now in use.

    ``None`` leaves torch's default. Every command calls this before any work (a resumed run too),
    because the count changes both speed (see ``TrainConfig.threads``) and float results.
    """
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``/``"cuda[:N]"`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def _epoch_seed(seed: int, epoch: int) -> int:
    # Batch order of each epoch is a function of (seed, epoch) alone: a resumed run reshuffles the
    # same way without having to store the shuffler's state.
    return seed * 1_000_003 + epoch


@torch.no_grad()
def predict(model: AttentionClassifier, batches: Sequence[Batch]) -> tuple[list[str], torch.Tensor]:
    """Predicted class per document: ``(doc_ids, (N,) long)`` over ``batches`` in order.

    The model is put in eval mode (no dropout) and left there.
    """
    model.eval()
    device = next(model.parameters()).device
    doc_ids: list[str] = []
    predictions = []
    for batch in batches:
        logits = model(batch.to(device))  # (B, C)
        predictions.append(logits.argmax(dim=-1).cpu())  # (B,)
        doc_ids.extend(batch.doc_ids)
    return doc_ids, torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long)


def accuracy(model: AttentionClassifier, batches: Sequence[Batch]) -> float:
    """Share of documents whose predicted class is the gold label (``nan`` for no documents)."""
    _, predicted = predict(model, batches)
    if len(predicted) == 0:
        return float("nan")
    gold = torch.cat([b.labels.cpu() for b in batches])  # (N,)
    return int((predicted == gold).sum()) / len(gold)  # exact ratio, not a float32 mean


def majority_baseline(
    train: Sequence[EncodedDocument], test: Sequence[EncodedDocument]
) -> tuple[int, float]:
    """Most frequent training label (ties: lowest index) and its accuracy on ``test``."""
    if not train:
        raise DataError("no training documents")
    counts = Counter(d.label for d in train)
    label = min(counts, key=lambda c: (-counts[c], c))
    share = sum(d.label == label for d in test) / len(test) if test else float("nan")
    return label, share


@dataclass(frozen=True)
class EpochTotals:
    """What one training epoch adds up.

    Attributes:
        loss_sum: sum over batches, in order, of the batch's mean loss times its size, in Python
            floats (the mean training loss is ``loss_sum / seen``).
        correct: training documents whose prediction (before that batch's update) was right.
        seen: documents trained on.
    """

    loss_sum: float
    correct: int
    seen: int


def to_device(batch: Batch, device: torch.device) -> Batch:
    """``batch`` with its tensors on ``device``, copied without making the host wait for the GPU.

    A copy from ordinary (pageable) host memory to a GPU waits until the GPU has finished all the
    work queued before it, so a training loop that copies each batch that way cannot queue the next
    step while the GPU runs the current one. From pinned memory the copy is queued like a kernel
    (``non_blocking``), in order on the same stream, so the model reads the batch only once it
    has arrived. Off CUDA this is ``batch.to(device)``.
    """
    if device.type != "cuda":
        return batch.to(device)
    return replace(
        batch,
        token_ids=batch.token_ids.pin_memory().to(device, non_blocking=True),  # (B, T) / (B, S, W)
        labels=batch.labels.pin_memory().to(device, non_blocking=True),  # (B,)
    )


#: seconds between refreshes of the progress bar's loss and accuracy (each reads them off the GPU)
POSTFIX_INTERVAL = 1.0


class _Tally:
    """An epoch's losses and predictions, kept where they were computed until the totals are asked
    for: one device-to-host read per epoch instead of a wait for the GPU after every step."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []  # () float32 batch-mean losses
        self.sizes: list[int] = []  # documents per batch
        self.logits: list[torch.Tensor] = []  # (B, C) per batch
        self.labels: list[torch.Tensor] = []  # (B,) per batch

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one step (detached: no kernel is launched and no graph kept alive)."""
        self.losses.append(loss.detach())
        self.sizes.append(len(labels))
        self.logits.append(logits.detach())
        self.labels.append(labels)

    def totals(self) -> EpochTotals:
        """The sums of the steps so far (reads them off the device)."""
        loss_sum = 0.0
        if self.losses:
            for value, size in zip(torch.stack(self.losses).tolist(), self.sizes, strict=True):
                # Python floats in step order: the same sum, to the bit, as adding
                # loss.item() * len(batch) after each step
                loss_sum += value * size
            predicted = torch.cat(self.logits).argmax(dim=-1)  # (N,) per row, as per batch
            correct = int((predicted == torch.cat(self.labels)).sum())
        else:
            correct = 0
        return EpochTotals(loss_sum=loss_sum, correct=correct, seen=sum(self.sizes))


def train_epoch(
    model: AttentionClassifier,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[Batch],
    *,
    device: torch.device,
    grad_clip: float,
    bar: tqdm[Any] | None = None,
    after_step: Callable[[], None] | None = None,
) -> EpochTotals:
    """One optimisation step per batch, in order: what :func:`train_run` does in an epoch.

    Each step: cross-entropy of ``model(batch)`` ``(B, C)`` against ``batch.labels`` ``(B,)``,
    backward, gradient-norm clip at ``grad_clip``, ``optimizer.step()``. The model is put in train
    mode.

    Nothing is read back from the device during the epoch (except for the progress bar, once every
    :data:`POSTFIX_INTERVAL` seconds): reading the loss after each step (``loss.item()``) made the
    host wait for each step to finish before it could queue the next, and summing on the device
    would cost kernel launches per step; at IMDB's sizes a GPU step is bound by the host's time
    spent launching it, not by the GPU. The losses and logits stay on the device (``(N, C)`` for
    the epoch) and are totalled at the end with the same float arithmetic as before, so the totals
    are the same to the bit.

    Args:
        batches: host or device batches; each is moved with :func:`to_device`.
        bar: a progress bar advanced by the documents of each batch.
        after_step: called after every optimizer step (a per-step learning-rate schedule).
    """
    model.train()
    params = list(model.parameters())  # clip_grad_norm_ skips those without a gradient
    tally = _Tally()
    shown = time.monotonic()
    for host_batch in batches:
        batch = to_device(host_batch, device)
        logits = model(batch)  # (B, C)
        loss = nn.functional.cross_entropy(logits, batch.labels)  # () mean over the batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step()
        tally.add(loss, logits, batch.labels)
        if bar is not None:
            bar.update(len(batch))
            if time.monotonic() - shown >= POSTFIX_INTERVAL:
                so_far = tally.totals()
                bar.set_postfix(loss=f"{so_far.loss_sum / so_far.seen:.4f}",
                                acc=f"{so_far.correct / so_far.seen:.3f}", refresh=False)
                shown = time.monotonic()
    return tally.totals()


def _rng_states() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        # numpy's state holds an ndarray, which weights_only loading refuses: store a list.
        "numpy": {
            "key": np_state["state"]["key"].tolist(),
            "pos": np_state["state"]["pos"],
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np.array(state["numpy"]["key"], dtype=np.uint32),
                      "pos": state["numpy"]["pos"]},
            "has_gauss": state["numpy"]["has_gauss"],
            "gauss": state["numpy"]["gauss"],
        }
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _trained_anything(run_dir: Path) -> bool:
    # A folder where no epoch finished holds nothing worth protecting (e.g. the data failed to
    # load, or Ctrl-C in the first epoch): a rerun may replace it, with other settings too.
    return (run_dir / STATE_FILE).is_file() or is_done(run_dir)


def _check_same_run(run_dir: Path, config: RunConfig) -> None:
    """Refuse to resume a folder that holds a run with different settings."""
    path = run_dir / CONFIG_FILE
    if not path.is_file() or not _trained_anything(run_dir):
        return
    check_resumable(read_json(path), config, where=run_dir,
                    fix="use another --out folder, or delete this one to retrain")


def _restart(run_dir: Path, damaged: str) -> None:
    """Delete what a damaged run left (state, checkpoint, metrics, DONE, its audits), keeping the
    folder: the model is trained again from scratch, so results of the old one must not remain."""
    logger.warning("%s is damaged: training %s again from scratch (--restart-damaged)",
                   damaged, run_dir)
    for name in (STATE_FILE, MODEL_FILE, METRICS_FILE, DONE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "audit", ignore_errors=True)  # results.tables.AUDIT_DIR
    shutil.rmtree(run_dir / "audits", ignore_errors=True)  # its named audits (NAMED_AUDITS_DIR)


@holding_folder("out_dir", "attnaudit train")
def train_run(
    config: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    prepared: PreparedData | None = None,
    progress: bool = True,
    restart_damaged: bool = False,
) -> dict[str, Any]:
    """Train one classifier into ``out_dir`` and return its metrics (also in ``metrics.json``).

    Args:
        config: data, model and training settings.
        out_dir: the run folder. If it holds ``DONE``, the saved metrics are returned without
            training, unless ``config.train.epochs`` asks for more epochs than were trained and the
            run did not stop early: then training continues. If it holds ``state.pt``, training
            resumes after the last finished epoch.
        prepared: already prepared data for ``config.data`` (saves re-reading it when training
            several models on the same data); ``None`` prepares it here.
        progress: show a tqdm bar with the loss and docs/s.
        restart_damaged: when ``state.pt`` (or a finished run's ``model.pt``) cannot be read,
            train this model again from scratch instead of stopping with an error.
    Returns:
        ``{"model", "dev_accuracy", "test_accuracy", "majority_label", "majority_test_accuracy",
        "best_epoch", "epochs_trained", "stopped_early", "history", "train_seconds",
        "train_docs_per_s", ...}``.
    Raises:
        DataError: bad data, ``out_dir`` holds a run with different settings, or another command
            is working on it (:func:`attnaudit.utils.lock.folder_lock`).
        DamagedFileError: ``state.pt`` cannot be read and ``restart_damaged`` is off.
    """
    run_dir = Path(out_dir)
    remove_stale_temp_files(run_dir)  # left by a command killed mid-write; we hold the folder
    given = [f"[data] {name}" for name in ("label_map", "test_only")
             if getattr(config.data, name) is not None]
    if given:
        raise DataError(f"{' and '.join(given)} only apply to a model trained elsewhere (audit "
                        "--hf-model); leave them out to train one")
    # The model family's defaults (a transformer's tokenizer, length limit, optimizer settings)
    # where the user set none: config.json then records the values used.
    config = resolve_run_config(config)
    # Before anything else, finished runs included: the caller's next stage (the audit) runs on
    # the threads set here, and config.json records the count actually used.
    threads = set_threads(config.train.threads)
    config = config.model_copy(
        update={"train": config.train.model_copy(update={"threads": threads})}
    )
    _check_same_run(run_dir, config)
    if is_done(run_dir) and restart_damaged:
        try:
            load_model_file(run_dir / MODEL_FILE)
        except DamagedFileError as err:
            _restart(run_dir, err.path)
    if is_done(run_dir):
        metrics: dict[str, Any] = read_json(run_dir / METRICS_FILE)
        if metrics["stopped_early"] or config.train.epochs <= metrics["epochs_trained"]:
            logger.info("%s is complete (DONE); not retraining", run_dir)
            return metrics
        logger.info("extending %s from %d to %d epochs", run_dir, metrics["epochs_trained"],
                    config.train.epochs)
        (run_dir / DONE_FILE).unlink()

    tc, mc = config.train, config.model
    if prepared is None:
        prepared = prepare_data(config.data)
    if not prepared.train:
        raise DataError("no training documents after preparation")
    hierarchical = is_hierarchical(mc.kind)
    device = resolve_device(tc.device)

    def batches(docs: Sequence[EncodedDocument], *, size: int, shuffle: bool,
                seed: int = 0) -> list[Batch]:
        """``docs`` in batches of this model's layout and token budget (training, dev, and the
        schedule's count of steps per epoch)."""
        return make_batches(docs, hierarchical=hierarchical, batch_size=size,
                            max_batch_tokens=tc.max_batch_tokens, shuffle=shuffle, seed=seed)

    seed_everything(tc.seed)  # after data preparation, so model init depends on the seed alone
    embeddings = None
    if mc.embeddings is not None:
        embeddings = load_embeddings(mc.embeddings, prepared.vocab.itos, dim=mc.embedding_dim,
                                     seed=tc.seed)
    model = build_from_config(mc, vocab_size=len(prepared.vocab),
                              num_classes=len(prepared.label_names),
                              embeddings=embeddings, progress=progress).to(device)
    # The family's optimizer and learning-rate schedule (the paper's: Adam, halved on plateaus).
    schedule = make_schedule(model, config, steps_per_epoch=lambda: len(batches(
        prepared.train, size=tc.batch_size, shuffle=True, seed=_epoch_seed(tc.seed, 0))))
    optimizer = schedule.optimizer
    patience = tc.effective_patience(mc.encoder)

    start_epoch, best_dev, best_epoch, bad_epochs = 0, float("-inf"), 0, 0
    history: list[dict[str, Any]] = []
    try:
        state = load_training_state(run_dir)
    except DamagedFileError as err:
        if not restart_damaged:
            raise
        _restart(run_dir, err.path)
        state = None
    if state is not None:
        if state["splits"] != prepared.splits:
            raise DataError(
                f"{run_dir}: the data prepared now differs from the data the run started with "
                "(splits.json); was the data file changed?"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        start_epoch, best_dev, best_epoch = state["epoch"], state["best_dev"], state["best_epoch"]
        bad_epochs, history = state["bad_epochs"], list(state["history"])
        _set_rng_states(state["rng"])
        logger.info("resuming %s after epoch %d (best dev %.4f)", run_dir, start_epoch, best_dev)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / RUN_INFO_FILE, run_info(tc.seed, config.to_dict()))
        write_json(run_dir / SPLITS_FILE, prepared.splits)
    # Rewritten on resumption too: the epochs (or device) asked for now are the run's settings.
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    stopped_early = bool(state and state.get("stop"))

    dev_batches = batches(prepared.dev, size=tc.eval_batch_size, shuffle=False)
    if not prepared.dev:
        logger.warning("no dev documents: no early stopping, the last epoch is kept")
    name = mc.name
    logger.info(
        "training %s: %d train / %d dev / %d test docs, %d classes, vocab %d, %d parameters, %s",
        name, len(prepared.train), len(prepared.dev), len(prepared.test),
        len(prepared.label_names), len(prepared.vocab),
        sum(p.numel() for p in model.parameters()), device,
    )

    for epoch in range(start_epoch, tc.epochs):
        if stopped_early:
            break
        train_batches = batches(prepared.train, size=tc.batch_size, shuffle=True,
                                seed=_epoch_seed(tc.seed, epoch))
        started = time.perf_counter()
        bar = progress_bar(total=len(prepared.train), desc=f"{name} epoch {epoch + 1}/{tc.epochs}",
                           unit="doc", disable=not progress, leave=False, mininterval=1.0)
        totals = train_epoch(model, optimizer, train_batches, device=device,
                             grad_clip=tc.grad_clip, bar=bar if progress else None,
                             after_step=schedule.after_step)
        bar.close()
        seconds = time.perf_counter() - started
        total_loss, correct, seen = totals.loss_sum, totals.correct, totals.seen

        dev_acc = accuracy(model, dev_batches) if prepared.dev else float("nan")
        lr = optimizer.param_groups[0]["lr"]
        if prepared.dev:
            schedule.after_epoch(dev_acc)
        improved = not prepared.dev or dev_acc > best_dev
        if improved:
            best_dev, best_epoch, bad_epochs = dev_acc, epoch + 1, 0
            save_checkpoint(run_dir, model, prepared.vocab, prepared.label_names, config)
        else:
            bad_epochs += 1
        stopped_early = bool(prepared.dev) and bad_epochs >= patience
        history.append({
            "epoch": epoch + 1,
            "train_loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "dev_accuracy": dev_acc,
            "lr": lr,
            "seconds": seconds,
            "docs_per_s": seen / seconds,
        })
        logger.info(
            "%s epoch %d: loss %.4f, train acc %.4f, dev acc %.4f%s, %.0f s (%.1f docs/s)",
            name, epoch + 1, total_loss / seen, correct / seen, dev_acc,
            " (best)" if improved else "", seconds, seen / seconds,
        )
        # model.pt (if improved) is written before state.pt: a kill between the two redoes this
        # epoch, which rewrites the same model.pt.
        save_training_state(run_dir, {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "epoch": epoch + 1,
            "best_dev": best_dev,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "stop": stopped_early,
            "history": history,
            "splits": prepared.splits,
            "rng": _rng_states(),
        })
        if stopped_early:
            logger.info("%s: no dev gain for %d epochs; stopping early", name, patience)

    # Final numbers come from the best checkpoint, evaluated afresh.
    best, _, _, _ = load_model_file(run_dir / MODEL_FILE, device=device)
    dev_acc = accuracy(best, dev_batches) if prepared.dev else float("nan")
    test_acc = accuracy(best, batches(prepared.test, size=tc.eval_batch_size, shuffle=False))
    majority_label, majority_acc = majority_baseline(prepared.train, prepared.test)
    train_seconds = sum(h["seconds"] for h in history)
    metrics = {
        "model": name,
        "dev_accuracy": dev_acc,
        "test_accuracy": test_acc,
        "majority_label": prepared.label_names[majority_label],
        "majority_test_accuracy": majority_acc,
        "best_epoch": best_epoch,
        "epochs_trained": len(history),
        "stopped_early": stopped_early,
        "num_train": len(prepared.train),
        "num_dev": len(prepared.dev),
        "num_test": len(prepared.test),
        "num_classes": len(prepared.label_names),
        "vocab_size": len(prepared.vocab),
        "num_parameters": sum(p.numel() for p in best.parameters()),
        "device": str(device),
        "train_seconds": train_seconds,
        "train_docs_per_s": (
            len(history) * len(prepared.train) / train_seconds if train_seconds > 0 else float("nan")
        ),
        "history": history,
    }
    write_json(run_dir / METRICS_FILE, metrics)
    # A transformer's best checkpoint also as transformers' own folder (hf_model/), before DONE:
    # a run killed while writing it is finished again, which writes it whole.
    exported = export_model(run_dir, best, prepared.label_names, config)
    if exported is not None:
        logger.info("%s: saved for transformers in %s (AutoModelForSequenceClassification."
                    "from_pretrained)", name, exported)
    (run_dir / DONE_FILE).touch()
    logger.info("%s: dev %.4f, test %.4f (majority %.4f), %d epochs, %.0f s", name, dev_acc,
                test_acc, majority_acc, len(history), train_seconds)
    _warn_if_majority(name, prepared, dev_acc if prepared.dev else test_acc,
                      "dev" if prepared.dev else "test")
    return metrics


def _warn_if_majority(name: str, prepared: PreparedData, reached: float, split: str) -> None:
    """Warn when the model does no better on ``split`` than always predicting the most frequent
    training class: its attention then explains label frequencies, not text (the audit says so
    again, later; this is where a user can still act on it)."""
    label, share = majority_baseline(prepared.train, getattr(prepared, split))
    if not reached <= share:  # NaN (an empty split) warns of nothing
        return
    logger.warning(
        "%s: %s accuracy %.1f%% is not above the majority baseline %.1f%% (always predicting "
        "%r) - %.1f points at or below it: the model has learned little beyond the label "
        "frequencies. Try more epochs (--epochs), another learning rate (--lr), more training "
        "documents, or check the label column (--label-column)", name, split, 100 * reached,
        100 * share, prepared.label_names[label], 100 * (share - reached))


def evaluate_run(
    run_dir: str | os.PathLike[str], split: str = "test", *, device: str = "cpu"
) -> float:
    """Accuracy of a run's best checkpoint on ``split`` (``"train"``, ``"dev"`` or ``"test"``).

    The data are prepared again from the run's saved data settings, vocabulary, labels and
    ``splits.json`` document ids, so the split is exactly the one the run was evaluated on.
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    run = load_run(run_dir, device=resolve_device(device))
    splits_file = Path(run_dir) / SPLITS_FILE
    prepared = prepare_data(
        run.data_config,
        vocab=run.vocab,
        label_names=run.label_names,
        splits=read_json(splits_file) if splits_file.is_file() else None,
    )
    docs: list[EncodedDocument] = getattr(prepared, split)
    batches = make_batches(
        docs,
        hierarchical=is_hierarchical(run.model.kind),
        batch_size=run.config.train.eval_batch_size,
        max_batch_tokens=run.config.train.max_batch_tokens,
    )
    return accuracy(run.model, batches)
