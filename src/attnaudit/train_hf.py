"""What differs when the model is a transformer: its family's settings and its training recipe.

Two things, both read from the model's registry entry (:class:`attnaudit.models.ModelEntry`), so
the trainer and the pipeline never test a model's kind:

* :func:`resolve_run_config`: a run's configuration with its model family's defaults applied where
  the user set nothing. For a transformer (``hf``, ``hf-attnpool``): the data is tokenised by the
  base's own tokenizer (``[data] tokenizer`` follows ``[model] base``), documents are cut to
  ``max_tokens = 254`` subwords (256 positions with [CLS] and [SEP]: all-MiniLM-L6-v2's training
  length, see ``models.TRANSFORMER_MAX_TOKENS``), and training uses the fine-tuning settings
  ``lr = 5e-5``, ``batch_size = 32``, ``grad_clip = 1.0`` (``models.TRANSFORMER_TRAINING``). The
  result is what ``config.json`` records, so a resumed or audited run reads the values it used.
* :func:`make_schedule`: the optimizer and learning-rate schedule of the entry's recipe. ``adam``
  (the paper's models, unchanged): Adam, the learning rate halved when dev accuracy stops improving
  (stepped once per epoch). ``adamw-linear`` (transformers): AdamW with weight decay 0.01 on every
  weight but biases and LayerNorm parameters, the learning rate rising linearly over the first 10%
  of the optimizer steps and then falling linearly to zero at the last (stepped once per batch).
  The schedule's state goes into ``state.pt`` with the optimizer's, so a killed run resumes on the
  same learning rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from attnaudit.config import DataConfig, RunConfig, TrainConfig
from attnaudit.data.types import DataError
from attnaudit.models import (
    MODEL_ENTRIES,
    ModelEntry,
    check_base,
    is_hierarchical,
    model_name,
    pretrained_kinds,
)

logger = logging.getLogger(__name__)

#: AdamW's decoupled weight decay for transformers (BERT's fine-tuning value)
WEIGHT_DECAY = 0.01
#: share of the optimizer steps spent warming the learning rate up from (almost) zero
WARMUP_SHARE = 0.1


# --- the family's settings ----------------------------------------------------------------------


def resolve_run_config(config: RunConfig) -> RunConfig:
    """``config`` with its model family's defaults applied where the user set none.

    Idempotent: a resolved config (e.g. read back from ``config.json``) comes back unchanged. The
    paper's models are returned as they are, except that a ``[model] base`` is refused for them.

    Raises:
        DataError: one line naming the field and the fix: a base for a paper model, a base that
            does not exist, a ``[data] tokenizer`` other than the base's, a hierarchical model on
            subword data.
    """
    from attnaudit.data.prepare import check_tokenizer_model  # the data layer is heavy

    mc = config.model
    known = MODEL_ENTRIES[mc.kind]
    check_tokenizer_model(config.data, hierarchical=is_hierarchical(mc.kind))
    if not known.pretrained:
        if mc.base is not None:
            raise DataError(
                f"[model] base {mc.base!r} applies to the transformer models "
                f"({', '.join(pretrained_kinds())}); {model_name(mc.kind, mc.encoder)} is trained "
                "from scratch: leave base out, or choose a transformer (--model hf)"
            )
        return config
    base = mc.base or known.default_base
    assert base is not None
    data = _transformer_data(config.data, base, known)
    updates = {key: value for key, value in known.train_defaults.items()
               if key not in config.train.model_fields_set}
    train = config.train.model_copy(update=updates) if updates else config.train
    if updates:
        logger.debug("%s: training defaults %s", known.kind, updates)
    return config.model_copy(update={"data": data, "train": train,
                                     "model": mc.model_copy(update={"base": base})})


def _transformer_data(data: DataConfig, base: str, known: ModelEntry) -> DataConfig:
    """The data settings a transformer fine-tuned from ``base`` reads: the base's tokenizer and,
    unless limits were set, ``known.max_tokens``."""
    from attnaudit.data.hf_tokenizer import resolve_tokenizer, tokenizer_digest

    folder = check_base(base, known.kind)  # a hosted family with its tokenizer, or one line
    tokenizer = data.tokenizer
    if tokenizer is None:
        tokenizer = base
    elif tokenizer != base:
        given = resolve_tokenizer(tokenizer)
        if given != folder.resolve() and tokenizer_digest(given, None) != tokenizer_digest(folder,
                                                                                           None):
            raise DataError(
                f"[data] tokenizer {tokenizer!r} is not the tokenizer of [model] base {base!r}: a "
                "transformer reads its own tokenizer's ids; leave [data] tokenizer out (it "
                "follows the base)"
            )
    values = data.to_dict()
    values["tokenizer"] = tokenizer
    if "limits" not in data.model_fields_set and known.max_tokens is not None:
        values["limits"] = {**values["limits"], "max_tokens": known.max_tokens}
    # Validated again: the tokenizer refuses min_count / max_vocab settings, with one line.
    return DataConfig.from_dict(values)


# --- the training recipe ------------------------------------------------------------------------


class Schedule:
    """An optimizer and its learning-rate schedule, stepped by the training loop.

    The loop calls :meth:`after_step` after every optimizer step and :meth:`after_epoch` once per
    epoch with the dev accuracy (when there is a dev split); ``state_dict``/``load_state_dict``
    save and restore the schedule's state (the optimizer's is saved beside it).

    Attributes:
        optimizer: the optimizer of the model's parameters.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def after_step(self) -> None:
        """After each optimizer step (nothing by default)."""

    def after_epoch(self, dev_accuracy: float) -> None:
        """After each epoch with its dev accuracy (nothing by default)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


class PlateauSchedule(Schedule):
    """The paper's models: Adam at ``lr``; the rate times ``lr_factor`` after ``lr_patience + 1``
    epochs without a dev-accuracy gain (``ReduceLROnPlateau``, whose state is what ``state.pt``
    has always held)."""

    def __init__(self, params: Iterable[nn.Parameter], train: TrainConfig) -> None:
        super().__init__(torch.optim.Adam(params, lr=train.lr))
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=train.lr_factor, patience=train.lr_patience
        )

    def after_epoch(self, dev_accuracy: float) -> None:
        self.plateau.step(dev_accuracy)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.plateau.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)


def linear_warmup_decay(step: int, *, warmup: int, total: int) -> float:
    """The learning-rate factor of optimizer step ``step`` (0-based): ``(step + 1) / warmup`` during
    the warmup, then falling linearly to ``1 / (total - warmup)`` at the last step (0 beyond it).

    The first step already learns (factor ``1 / warmup``, not 0) and the peak is reached at the
    last warmup step.
    """
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


class LinearWarmupSchedule(Schedule):
    """Transformers: AdamW (weight decay :data:`WEIGHT_DECAY` except on biases and LayerNorm
    parameters, as in BERT), the learning rate warmed up linearly over :data:`WARMUP_SHARE` of
    ``total`` steps and then decayed linearly to zero (:func:`linear_warmup_decay`).

    ``total`` is steps per epoch times ``train.epochs``; extending a finished run to more epochs
    continues the decay towards the new total (the rate rises again to where that schedule is).
    """

    def __init__(self, model: nn.Module, train: TrainConfig, total: int) -> None:
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            # Biases and LayerNorm gains/shifts are not decayed: decay would pull them to zero,
            # which for a LayerNorm gain means switching the layer off.
            plain = param.dim() < 2 or "LayerNorm" in name or "layer_norm" in name
            (no_decay if plain else decay).append(param)
        groups = [{"params": decay, "weight_decay": WEIGHT_DECAY},
                  {"params": no_decay, "weight_decay": 0.0}]
        super().__init__(torch.optim.AdamW(groups, lr=train.lr))
        self.total = max(1, total)
        self.warmup = max(1, math.ceil(WARMUP_SHARE * self.total))
        warmup, steps = self.warmup, self.total

        def factor(step: int) -> float:
            return linear_warmup_decay(step, warmup=warmup, total=steps)

        # A plain function: LambdaLR stores nothing of it (the schedule is rebuilt from the config).
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def after_step(self) -> None:
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = self.scheduler.state_dict()
        state.pop("lr_lambdas", None)  # the bound method is rebuilt, not stored
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict({**state, "lr_lambdas": [None]})


def make_schedule(
    model: nn.Module, config: RunConfig, *, steps_per_epoch: Callable[[], int]
) -> Schedule:
    """The optimizer and schedule of ``config``'s model family (its entry's ``recipe``).

    Args:
        model: the model to train (its parameters, on their device).
        config: the run's (resolved) configuration.
        steps_per_epoch: the number of optimizer steps in one epoch, asked only by schedules that
            need it (the linear decay's length).
    """
    recipe = MODEL_ENTRIES[config.model.kind].recipe
    if recipe == "adam":
        return PlateauSchedule(model.parameters(), config.train)
    if recipe == "adamw-linear":
        return LinearWarmupSchedule(model, config.train, steps_per_epoch() * config.train.epochs)
    raise ValueError(f"unknown training recipe {recipe!r}")


__all__ = [
    "WARMUP_SHARE",
    "WEIGHT_DECAY",
    "LinearWarmupSchedule",
    "PlateauSchedule",
    "Schedule",
    "linear_warmup_decay",
    "make_schedule",
    "resolve_run_config",
]
