"""One validated configuration tree: data, model, training and audit settings.

A run is fully described by a :class:`RunConfig` (saved as ``config.json`` in its run folder); a
pipeline (``attnaudit run``) by a :class:`PipelineConfig` (saved in ``run.json``). Every command reads
the same TOML file (``--config run.toml``), one table per part, and takes the tables it needs::

    models = ["flan-none", "han-rnn"]      # attnaudit run only (default: the paper's six)
    seeds = [0, 1, 2]                      # attnaudit run only: train and audit each model per seed

    [data]
    path = "../shared/data/imdb50k.jsonl.gz"
    max_train_docs = 10000

    [model]
    kind = "flan"                          # attnaudit train only; run takes kind-encoder from models
    encoder = "rnn"

    [train]
    epochs = 2
    lr = 2e-3

    [audit]
    rankings = ["random", "attention"]

Command-line flags override the file's values (:func:`load_sections`). A bad value stops with one line
naming the file, the table and the field (:class:`~attnaudit.errors.DataError`).

Where a default departs from the original system's settings (section 1 of the spec), its comment says so
and why: in short, the original trained on GPUs to convergence; attnaudit's defaults are chosen to reach
good accuracy in one to three epochs on a laptop CPU.

This module imports neither torch nor the data layer at import time (the CLI's ``report`` must start
without torch); the registries that validate names are imported when a value is checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from attnaudit.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from attnaudit.data.batching import Limits

    _LimitsField = Limits
else:
    # Limits lives in the data layer, which imports torch: pydantic sees Any and the validator below
    # builds the real Limits lazily, so importing this module stays light.
    _LimitsField = Any

_Section = TypeVar("_Section", bound="ConfigSection")

#: Settings that may change between a run and its resumption without changing what it computes.
#: eval_batch_size only changes how dev/test batches are cut.
RESUMABLE_FIELDS = frozenset({"train.epochs", "train.device", "train.threads", "train.eval_batch_size"})

#: the paper's four rankings, in the order results are reported (kept here, torch-free, for defaults)
PAPER_RANKINGS = ("random", "attention", "gradient", "attention_x_gradient")

#: Choices of the audit's settings, shared with the CLI (which offers exactly these).
ErasurePath = Literal["fast", "naive"]
GradientOutput = Literal["probability", "logit"]
RandomDraw = Literal["uniform", "original"]
#: erasure levels: "attention" zeroes a site's weights and renormalises (the paper's operation);
#: "input" erases the items' tokens from the input and recomputes the whole model
ErasureLevel = Literal["attention", "input"]
#: input-level erasure: "delete" the items' tokens, or replace them with the "unk" token or a
#: transformer's "mask" token ([MASK])
InputErasure = Literal["delete", "unk", "mask"]
#: steps of an erasure curve: "every" k = 0..n (exact, n + 1 recomputations per document), or
#: "eraser": k = 0, 1, n, the ERASER bins' ceil(q n) for q in 1, 5, 10, 20, 50% and every 5% of
#: the items
InputSteps = Literal["eraser", "every"]
#: a transformer layer site's erased query rows: the classification row ("cls") or every row ("all")
QueryRows = Literal["cls", "all"]
#: what one item of a transformer's site is: a subword "token", or a "word" (its subwords erased
#: together, their weights and scores summed); the paper's models' tokens are words already
ItemUnit = Literal["token", "word"]
#: how token attributions become item scores: their "sum", or the "l2" norm of the item's tokens'
#: attribution vectors (a sign-free magnitude)
AttributionAggregate = Literal["sum", "l2"]
#: how JS divergences are shown (they are stored in nats): a display option, not an audit setting
JSUnit = Literal["nats", "bits"]

#: the paper's six variants
ALL_MODELS = ("flan-none", "flan-cnn", "flan-rnn", "han-none", "han-cnn", "han-rnn")


class ConfigSection(BaseModel):
    """A table of the config file: unknown keys are errors (most likely typos)."""

    model_config = ConfigDict(extra="forbid")

    #: the TOML table this section is read from, for error messages
    section: ClassVar[str] = ""
    #: settings added later, left out of :meth:`to_dict` while None: a config without them then
    #: saves (config.json, run.json) and keys caches exactly as before the setting existed
    omit_when_none: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples as lists), without the :attr:`omit_when_none` settings
        that are None; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = self.model_dump(mode="json")
        for name in self.omit_when_none:
            if out.get(name) is None:
                out.pop(name, None)
        return out

    @classmethod
    def from_dict(
        cls: type[_Section], data: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None
    ) -> _Section:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Args:
            data: the table's values.
            source: the file they came from, named in error messages.
        Raises:
            DataError: an unknown key or a bad value, in one line naming the field (and file).
        """
        return _section(cls, data, _source(source))


class DataConfig(ConfigSection):
    """Where the data comes from and how it is split, truncated and indexed."""

    section: ClassVar[str] = "data"
    # a word-tokenizer config saves and keys the prepared-data cache as before tokenizer existed
    omit_when_none: ClassVar[tuple[str, ...]] = ("tokenizer", "label_map", "test_only")

    # A file or folder (see load_documents), or "default" for the shipped news-article set.
    path: str = "default"
    # "auto" detects the format from the folder contents or extension.
    fmt: str = "auto"
    # None means the format's default ("text" / "label" / "id" when present, else the row number).
    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    # Words seen fewer times in the training split map to <unk>; 5 as in the original system.
    min_count: int = Field(default=5, ge=1)
    # Optional cap on the vocabulary size (None: every word that passes min_count).
    max_vocab: int | None = Field(default=None, ge=2)
    # Length limits (see Limits in data/batching.py for why each default).
    limits: _LimitsField = Field(default_factory=lambda: _limits({}))
    # None: the project's word tokenizer (blingfire sentences, regex words) and a vocabulary built
    # from the training split, as the paper's models read their data; every existing config and
    # cache entry means this. Else a folder holding a Hugging Face tokenizer (save_pretrained
    # output, e.g. a fine-tuned model's folder) or "minilm" for the shipped all-MiniLM-L6-v2:
    # transformer classifiers must read their own tokenizer's subword ids. Items are then
    # subwords, each document one sequence cut to limits.max_tokens (the sentence limits do not
    # apply), and the vocabulary is the tokenizer's, so min_count and max_vocab must stay unset.
    # See data/hf_tokenizer.py. Checked here only as a setting: the folder is read when preparing.
    tokenizer: str | None = None
    # Shares of dev and test when the source has no such split (carved from train when only the
    # other is missing). 10% each is the common choice for sets of thousands of documents.
    dev_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    # Stratified subsamples of the splits for quick runs (None: all documents).
    max_train_docs: int | None = Field(default=None, ge=1)
    max_dev_docs: int | None = Field(default=None, ge=1)
    max_test_docs: int | None = Field(default=None, ge=1)
    # Seed of every random choice in splitting and subsampling (`--seed` sets it with the training
    # seed, so one seed fixes the whole run).
    seed: int = 0
    # "skip" empty documents (one logged warning) or "error".
    on_empty: Literal["skip", "error"] = "skip"
    # Where path="default" stores the fetched news-article set.
    data_dir: str = "data"
    # A model trained elsewhere (`audit --hf-model`) only: its class names (config.id2label, or
    # the class index) -> the data's labels, for names the data does not use ("--label-map
    # NEGATIVE=0,POSITIVE=1"; TOML: label_map = {NEGATIVE = "0", POSITIVE = "1"}). Classes left
    # out keep their names. None: the names as they are, or transformers' default LABEL_k mapped
    # with a warning (attnaudit.pipeline.import_hf_model).
    label_map: dict[str, str] | None = None
    # True (set by `audit --hf-model`): nothing is trained here, so nothing is set aside for it:
    # the data's test split, or every document when the data has no test split, is the test
    # split; train and dev are what the data names (nothing carved out), possibly nothing. None:
    # the usual train/dev/test rules above.
    test_only: bool | None = None

    @field_validator("label_map", mode="before")
    @classmethod
    def _check_label_map(cls, value: Any) -> Any:
        return None if value is None else parse_label_map(value)

    @field_validator("test_only")
    @classmethod
    def _check_test_only(cls, value: bool | None) -> bool | None:
        return value or None  # False is the default behaviour: saved and keyed as None

    @field_validator("limits", mode="before")
    @classmethod
    def _check_limits(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return _limits(value)
        from attnaudit.data.batching import Limits

        if not isinstance(value, Limits):
            raise ValueError("must be a table with max_tokens, max_sentences, max_sentence_tokens")
        return value

    @field_serializer("limits")
    def _dump_limits(self, value: Any) -> dict[str, int]:
        out: dict[str, int] = value.to_dict()
        return out

    @field_validator("tokenizer")
    @classmethod
    def _check_tokenizer(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("must be a tokenizer folder or 'minilm' (leave it out for words)")
        # Declared after min_count and max_vocab, so both are validated by now (when valid).
        given = [f"{name}={info.data[name]!r}" for name in ("min_count", "max_vocab")
                 if name in info.data and info.data[name] != cls.model_fields[name].default]
        if given:
            raise ValueError(f"{', '.join(given)} cannot apply: the vocabulary of tokenizer "
                             f"{value!r} is used whole; leave min_count and max_vocab out")
        return value


#: The units of an amount of memory, case-insensitive: decimal (KB = 1000 bytes, as disks and
#: the SI count) and binary (KiB = 1024, as RAM and ``free -h`` count). A bare number or a
#: single-letter unit ("2G") is refused: whether "2G" means 2e9 or 2^31 bytes is the ambiguity
#: (7%) that made "--max-memory 2GB" read as less than the 2 GiB default.
_MEMORY_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
                 "kib": 1024, "mib": 1024**2, "gib": 1024**3}
#: the accepted forms, as every refusal names them
MEMORY_FORMS = ("a number with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB "
                "(powers of 1024), any case, e.g. 2GiB, 1.5GB, 512MiB")


def parse_memory(value: Any) -> int:
    """Bytes from ``"2GiB"``, ``"1.5GB"``, ``"512 mib"`` (see :data:`MEMORY_FORMS`), or a whole
    number of bytes given as an integer (a config file's or run.json's ``max_memory = 2147483648``).

    Raises:
        ValueError: one line naming the accepted forms, or an amount below 1 MB.
    """
    import re

    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]+)\s*", str(value))
        if match is None or match[2].lower() not in _MEMORY_UNITS:
            raise ValueError(f"{value!r} is no amount of memory; give {MEMORY_FORMS}")
        size = int(float(match[1]) * _MEMORY_UNITS[match[2].lower()])
    if size < 1000**2:
        raise ValueError(f"{value!r} is below 1 MB: too little to recompute anything")
    return size


def parse_label_map(value: Any) -> dict[str, str]:
    """``"NAME=VALUE,..."`` or a table ``{NAME: VALUE}`` as a dict of normalised label strings
    (``1`` and ``"1.0"`` are ``"1"``, as data labels are), in the given order.

    Raises:
        ValueError: one line: an entry that is not ``NAME=VALUE``, an empty side, a name given
            twice or two names given the same value.
    """
    from attnaudit.data.loaders.common import normalise_label

    pairs: list[tuple[Any, Any]]
    if isinstance(value, str):
        pairs = []
        for entry in (e.strip() for e in value.split(",")):
            name, sep, label = entry.partition("=")
            if not sep or not name.strip() or not label.strip():
                raise ValueError(f"{entry!r} is not NAME=VALUE; give the model's class name, '=', "
                                 "and the data's label, pairs separated by commas "
                                 "(NEGATIVE=0,POSITIVE=1)")
            pairs.append((name.strip(), label.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ValueError("must be NAME=VALUE pairs separated by commas, or a table "
                         "{NAME = VALUE}")
    out: dict[str, str] = {}
    for name, label in pairs:
        try:
            key, target = normalise_label(name), normalise_label(label)
        except DataError as err:
            raise ValueError(f"{name!r}={label!r}: {err}") from None
        if key in out:
            raise ValueError(f"class {key!r} is mapped twice")
        if target in out.values():
            raise ValueError(f"two classes are mapped to the data's label {target!r}")
        out[key] = target
    if not out:
        raise ValueError("give at least one NAME=VALUE pair")
    return out


def _limits(values: Mapping[str, Any]) -> Any:
    from attnaudit.data.batching import Limits  # the data layer imports torch: only when needed

    try:
        return Limits.from_dict(values)
    except (TypeError, ValueError) as err:  # DataError is a ValueError
        raise ValueError(str(err).removeprefix("limits: ")) from None


class ModelConfig(ConfigSection):
    """Which classifier to build (``kind-encoder``, e.g. ``han-rnn``, or a transformer kind, ``hf``)
    and its sizes."""

    section: ClassVar[str] = "model"
    # a paper model's config saves (config.json, run.json) as before base existed
    omit_when_none: ClassVar[tuple[str, ...]] = ("base",)

    # "flan" or "han" (HAN is the paper's main model), or a transformer: "hf" ([CLS] pooling) or
    # "hf-attnpool" (the paper's attention pooling on a transformer); see attnaudit.models
    kind: str = "han"
    encoder: str = "rnn"  # "none", "cnn" or "rnn"; at both levels of a HAN; "none" for transformers
    embedding_dim: int = Field(default=200, ge=1)  # original: 200-d word2vec vectors
    # original: 50 GRU units per direction / 50 CNN filters per width
    hidden: int = Field(default=50, ge=1)
    dropout: float = Field(default=0.3, ge=0.0, lt=1.0)  # original: dropout 0.3 on the CNN's input only
    # Optional word2vec-text or GloVe file. Original: word2vec (CBOW, window 5, 30 iterations)
    # trained on each data set's own train+dev text. None = random init (N(0, 1/E) per value, so
    # rows have about unit norm like the original's L2-normalised vectors), fine-tuned all the same.
    embeddings: str | None = None
    # Transformer kinds only: the pretrained encoder they fine-tune, "minilm" (the shipped
    # all-MiniLM-L6-v2, the default) or a local save_pretrained folder; nothing is downloaded.
    # None for the paper's models (trained from scratch). The sizes above do not apply to
    # transformers (the base has its own), and their data is tokenised by the base's tokenizer.
    base: str | None = None

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, value: str) -> str:
        from attnaudit.models import MODELS  # models import torch: keep config light

        if value not in MODELS:
            raise ValueError(f"unknown model kind {value!r}; choose from {', '.join(sorted(MODELS))}")
        return value

    @field_validator("encoder")
    @classmethod
    def _check_encoder(cls, value: str, info: ValidationInfo) -> str:
        from attnaudit.models import ENCODERS, MODEL_ENTRIES

        if value not in ENCODERS:
            raise ValueError(f"unknown encoder {value!r}; choose from {', '.join(sorted(ENCODERS))}")
        known = MODEL_ENTRIES.get(info.data.get("kind", ""))
        if known is not None and not known.encoders and value != "none":
            raise ValueError(f"{known.kind} models have no encoder choice (got {value!r}); leave "
                             "encoder out")
        return value

    @field_validator("base")
    @classmethod
    def _check_base(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be 'minilm' or a folder saved with save_pretrained (leave it "
                             "out for the paper's models)")
        return None if value is None else value.strip()

    @model_validator(mode="after")
    def _transformer_defaults(self) -> ModelConfig:
        # A transformer kind has no encoder and fine-tunes a base: "none" and the registry's
        # default base (minilm) unless given. A base given with a paper kind is refused where the
        # model is built (attnaudit.train_hf.resolve_run_config): `run` shares one [model] table
        # between paper models and transformers.
        from attnaudit.models import MODEL_ENTRIES

        known = MODEL_ENTRIES.get(self.kind)
        if known is not None and not known.encoders:
            self.encoder = "none"
        if known is not None and known.pretrained and self.base is None:
            self.base = known.default_base
        return self

    @property
    def name(self) -> str:
        """``kind-encoder``, e.g. ``"flan-rnn"``, or the kind alone for transformers (``"hf"``)."""
        from attnaudit.models import model_name

        return model_name(self.kind, self.encoder)


class TrainConfig(ConfigSection):
    """Optimisation settings."""

    section: ClassVar[str] = "train"

    # Original: trained until early stopping (tens of epochs on a GPU). With the learning rate below,
    # IMDB-sized sets peak on dev after 1-2 epochs and the shipped news set (3,030 articles) after
    # 2-3 for FLAN; HAN is still gaining at 4 there (han-cnn dev 0.41, 0.68, 0.71, 0.79 at lr 5e-3).
    # The best epoch is kept, so extra epochs cost time, not accuracy. The README's results use this
    # default; `make demo` asks for fewer (see the Makefile) to stay within 10 minutes on 2 cores.
    epochs: int = Field(default=3, ge=1)
    # Adam learning rate. Original: about 1e-4 to 6e-4, trained for many epochs. 2e-3 is what the
    # README's results use. Measured since, on IMDB polarity, one epoch on 8,000 reviews (test
    # accuracy, lr 2e-3 -> 5e-3): flan-none 0.843 -> 0.846, flan-cnn 0.827 -> 0.869, han-none 0.796 ->
    # 0.844, han-cnn 0.862 -> 0.869, han-rnn 0.847 -> 0.870; flan-rnn on all 22,500 training reviews:
    # 1e-3 0.874, 2e-3 0.875, 5e-3 0.890. So `--lr 5e-3` is better for one-epoch runs; the default
    # stays until the README's results are remeasured with it. Stable either way with the clip.
    lr: float = Field(default=2e-3, gt=0.0)
    batch_size: int = Field(default=64, ge=1)  # original: 64 documents
    # Cap on padded cells (B x T, or B x S x W for HAN) per batch; a batch of long documents is
    # split, bounding memory. Original: a cap of this kind too (AllenNLP's maximum_samples_per_batch).
    # With the data layer's 400-token limit it never splits a FLAN batch; on IMDB it splits 40% of HAN
    # batches (mean 56 documents), which costs little since HAN skips padding (see models/han.py).
    # None = no cap.
    max_batch_tokens: int | None = Field(default=40_000, ge=1)
    # Epochs without a dev-accuracy gain before stopping. None = the original's choice: 5, or 10
    # for models with no encoder (they learn more slowly).
    patience: int | None = Field(default=None, ge=1)
    # original: halve the lr when dev accuracy plateaus
    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    # Epochs without a dev gain before halving. 0 = halve right after any epoch that did not improve:
    # with a few epochs, waiting longer would mean never halving. (Original value not recorded.)
    lr_patience: int = Field(default=0, ge=0)
    grad_clip: float = Field(default=10.0, gt=0.0)  # original: gradient-norm clip 10
    seed: int = 0  # seeds init, dropout and batch order; `--seed` sets the data split's seed too
    device: str = "auto"  # "cpu", "cuda" or "auto" (cuda when available)
    # inference needs no gradients, so larger batches fit
    eval_batch_size: int = Field(default=128, ge=1)
    # CPU threads for torch (torch.set_num_threads, process-wide), set by every command before any
    # work, resumed runs included. 1, not torch's default of one per core: the GRU's per-step
    # products are too small to gain from threads, and when another process holds a core, threads
    # waiting on each other collapse: flan-rnn trained at 6.2 docs/s with torch's default on a
    # shared 2-core machine vs 74-81 with 1 thread (the numbers; 3.6 vs 147 in the README's
    # IMDB measurement; remeasured on the news set beside a busy process: 5.7 with 2 threads, 27
    # with 1). Raise it on a dedicated many-core machine. None (old runs' config.json) = torch's
    # default; config.json and run.json record the number actually used.
    threads: int | None = Field(default=1, ge=1)

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError(f"must be 'auto', 'cpu' or 'cuda[:N]', got {value!r}")
        return value

    def effective_patience(self, encoder: str) -> int:
        """Early-stopping patience: ``patience``, else 10 for ``encoder == "none"`` and 5 otherwise."""
        if self.patience is not None:
            return self.patience
        return 10 if encoder == "none" else 5


class AuditConfig(ConfigSection):
    """Settings of an audit. Every field can change results, so all of them are saved with them.

    JS divergences are stored in nats; the unit shown (``--js-unit``) is a display option of the
    report and of the audit's printed line, not an audit setting.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    section: ClassVar[str] = "audit"
    # max_memory changes no result: an audit config without it saves (run.json) as before
    omit_when_none: ClassVar[tuple[str, ...]] = ("max_memory",)

    # Test 2 rankings, in report order (keys of attnaudit.rankings.RANKINGS). Default: the paper's four.
    rankings: tuple[str, ...] = PAPER_RANKINGS
    # Attention sites to manipulate; None = every site the model declares (checked by the engine,
    # which knows the model: FLAN "token", HAN "sentence" (the paper's) and "word").
    sites: tuple[str, ...] | None = None
    path: ErasurePath = "fast"  # "naive" is the slow reference, for checks and benchmarks
    # The paper differentiates the predicted class's softmax probability; "logit" is the alternative.
    gradient_output: GradientOutput = "probability"
    # "uniform" draws Test 1's random item among the items other than i* (the intended test);
    # "original" reproduces the original code's draw (a raw position in 1..n-1).
    random_draw: RandomDraw = "uniform"
    # Fixes the random ranking and Test 1's random item, per document. None = the run's training seed.
    seed: int | None = None
    # Documents per batch; results do not depend on it (tested). None = by device: 64 on a CPU,
    # 512 on a GPU, where a batch's fixed Python cost (not its tensor work) sets the audit's speed.
    batch_size: int | None = Field(default=None, ge=1)
    max_docs: int | None = Field(default=None, ge=1)  # audit a seeded random subset of the test split
    # Bytes the audit's recomputations may take ("2GiB", "1.5GB", "512MiB" or an integer of bytes);
    # None: 2 GiB (attnaudit.erasure.memory.DEFAULT_MAX_MEMORY).
    # Sizes each logits_with call (attnaudit.erasure.memory); results do not depend on it.
    max_memory: int | None = None
    chunk_docs: int = Field(default=1000, ge=1)  # documents per resumable part under audit/parts/
    # Erasure levels whose curves the measures read; Test 2 and Test 1 stay attention-level.
    erasure: tuple[ErasureLevel, ...] = ("attention",)
    input_erasure: InputErasure = "delete"
    input_steps: InputSteps = "eraser"
    # Attention-level curves' steps: "every" (exact; Test 2's fraction to the first flip is then
    # exact) or "eraser" (bounds the cost at a transformer's earlier layers, which recompute the
    # layers above for every step; the fraction to the first flip is then the first scheduled step
    # that flips, an upper bound at 5% resolution). None: the model's own (default_attention_steps:
    # "every" for every model today; a model whose default sites were costly would say "eraser").
    attention_steps: InputSteps | None = None
    # Transformers: the query rows erasure edits (None: the model's own, "cls" for hf at its
    # default last layer, "all" for hf-attnpool, whose pooling never reads the [CLS] row) and the
    # item unit.
    query_rows: QueryRows | None = None
    items: ItemUnit = "token"
    # Attribution rankings (captum): token scores to item scores, integration steps (integrated
    # gradients; captum's default is 50), perturbation samples (LIME, KernelSHAP).
    attribution_aggregate: AttributionAggregate = "sum"
    attribution_steps: int = Field(default=50, ge=1)
    attribution_samples: int = Field(default=200, ge=1)
    # Counterfactual attention (Jain & Wallace 2019): random permutations of a site's weights per
    # document (0 = skip the permutation test), and the output tolerance of adversarial attention
    # (their 0.01; 0 = skip the adversarial search).
    permutations: int = Field(default=100, ge=0)
    adversarial_epsilon: float = Field(default=0.01, ge=0.0)
    # Percentile-bootstrap resamples over documents for every interval (0 = no intervals) and their
    # level.
    bootstrap: int = Field(default=1000, ge=0)
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    # The verdict's equivalence band per criterion (results/verdict.py): a difference counts only
    # beyond max(floor, relative x |best ranking - random|). Floors not given keep their defaults
    # (median_fraction_censored 0.05, share_never_flipped 0.02, aopc_comprehensiveness and
    # aopc_sufficiency 0.01); they change summary.json only, never the tables.
    min_difference: dict[str, float] = Field(default_factory=dict)
    min_difference_relative: float = Field(default=0.1, ge=0.0)

    @field_validator("min_difference")
    @classmethod
    def _check_min_difference(cls, value: dict[str, float]) -> dict[str, float]:
        from attnaudit.results.verdict import CRITERION_LEAVES  # torch-free

        unknown = [k for k in value if k not in CRITERION_LEAVES]
        if unknown:
            raise ValueError(f"unknown criterion {', '.join(unknown)}; choose from "
                             f"{', '.join(CRITERION_LEAVES)}")
        negative = [k for k, v in value.items() if not v >= 0]
        if negative:
            raise ValueError(f"{', '.join(negative)}: a minimum difference is >= 0")
        return dict(value)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _check_max_memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value)

    @field_validator("erasure", mode="before")
    @classmethod
    def _check_erasure(cls, value: Any) -> Any:
        return _distinct_names(value, "give at least one erasure level: attention, input")

    @field_validator("rankings", mode="before")
    @classmethod
    def _check_rankings(cls, value: Any) -> Any:
        names = _names(value)
        if names is None:
            return value
        if not names:
            raise ValueError("give at least one ranking")
        from attnaudit.rankings import (  # rankings import torch: only when checked
            RANKING_SETS,
            RANKINGS,
            expand_ranking_sets,
        )

        unknown = [n for n in names if n not in RANKINGS and n not in RANKING_SETS]
        if unknown:
            raise ValueError(
                f"unknown ranking(s) {', '.join(unknown)}; choose from {', '.join(RANKINGS)} "
                f"or a set: {', '.join(RANKING_SETS)}"
            )
        return expand_ranking_sets(names)  # sets expanded, repeats dropped, the given order kept

    @field_validator("sites", mode="before")
    @classmethod
    def _check_sites(cls, value: Any) -> Any:
        return _distinct_names(value, "give at least one site, or leave it out for every site")


def _distinct_names(value: Any, empty: str) -> Any:
    """Names (see :func:`_names`) without repeats, in the given order; ``value`` itself when it is
    not names (pydantic then reports its type).

    Raises:
        ValueError: ``empty`` when no name is given.
    """
    names = _names(value)
    if names is None:
        return value
    if not names:
        raise ValueError(empty)
    return tuple(dict.fromkeys(names))


def _names(value: Any) -> list[str] | None:
    """A comma-separated string or a list of names as a list of stripped names (None: not names)."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    return None


class RunConfig(BaseModel):
    """Everything that defines one trained model: data, model and training settings."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable nested dict (``{"data": ..., "model": ..., "train": ...}``)."""
        return {
            "data": self.data.to_dict(),
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> RunConfig:
        """Inverse of :meth:`to_dict` (reads every ``config.json`` attnaudit has written); missing
        sections and keys take their defaults.

        Raises:
            DataError: an unknown section or key, or a bad value, in one line naming it.
        """
        unknown = set(data) - {"data", "model", "train"}
        if unknown:
            raise DataError(_at(source, f"unknown config section(s) {sorted(unknown)}; "
                                        "use data, model, train"))
        if not data.get("data"):
            raise DataError(_at(source, "no data settings: give --data or a [data] table"))
        return cls(
            data=_section(DataConfig, data["data"], source),
            model=_section(ModelConfig, data.get("model", {}), source),
            train=_section(TrainConfig, data.get("train", {}), source),
        )

    @classmethod
    def load_toml(
        cls,
        path: str | os.PathLike[str] | None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> RunConfig:
        """Read a TOML config file (its ``[audit]`` table and ``models`` key are ignored here) and
        apply ``overrides`` (``{"section": {"key": value}}``; ``None`` values are ignored) on top.

        Raises:
            DataError: the file is missing or not valid TOML, or holds an unknown key or bad value.
        """
        sections = load_sections(path, overrides)
        sections.pop("audit", None)
        sections.pop("models", None)
        sections.pop("seeds", None)
        return cls.from_dict(sections, source=_source(path))


class PipelineConfig(BaseModel):
    """What ``attnaudit run`` does: train every model of ``models``, audit each, report. Saved in
    ``run.json``."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    models: tuple[str, ...] = ALL_MODELS  # kind-encoder names, trained and audited in this order
    # Sizes and embeddings shared by every model (kind and encoder come from each name in models).
    model: ModelConfig = Field(default_factory=lambda: ModelConfig())
    train: TrainConfig = Field(default_factory=lambda: TrainConfig())
    audit: AuditConfig = Field(default_factory=lambda: AuditConfig())
    # Train and audit every model once per seed (None: once, with train.seed). The first seed is
    # train.seed and data.seed: every seed keeps the first seed's data split, so the spread across
    # seeds is training variance alone and every seed audits the same test documents (paired).
    seeds: tuple[int, ...] | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _check_seeds(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = [int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"must be comma-separated whole numbers (got {value!r})") from None
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError("give at least one seed")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"must be whole numbers (got {list(value)!r})")
            return tuple(dict.fromkeys(value))  # drop repeats, keep the given order
        return value

    @field_validator("seeds", mode="after")
    @classmethod
    def _first_seed_is_the_run_seed(
        cls, value: tuple[int, ...] | None, info: ValidationInfo
    ) -> tuple[int, ...] | None:
        train = info.data.get("train")  # validated before seeds (declared first)
        if value is not None and isinstance(train, TrainConfig) and train.seed != value[0]:
            raise ValueError(f"the first seed must be [train] seed {train.seed} (got {list(value)}; "
                             "leave [train] seed out to take the first seed)")
        return value

    @property
    def run_seeds(self) -> tuple[int, ...]:
        """The seeds each model is trained with: :attr:`seeds`, or ``(train.seed,)``."""
        return self.seeds if self.seeds is not None else (self.train.seed,)

    @field_validator("models", mode="before")
    @classmethod
    def _check_models(cls, value: Any) -> Any:
        names = _names(value)
        if names is None:
            return value
        if not names:
            raise ValueError("give at least one model")
        from attnaudit.models import MODEL_NAMES, model_name, parse_model_name

        out = []
        for name in names:
            try:
                kind, encoder = parse_model_name(name)
            except ValueError:
                raise ValueError(
                    f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}"
                ) from None
            out.append(model_name(kind, encoder))
        return tuple(dict.fromkeys(out))

    def run_config(self, name: str, *, seed: int | None = None) -> RunConfig:
        """The training configuration of one of :attr:`models`, trained with ``seed`` (default
        ``train.seed``); the data and its split stay this config's whatever the seed.

        The shared ``[model] base`` goes to transformer models only (default: their registry's);
        the paper's models get none, and transformers no word vectors (``embeddings``: they have
        their base's). Family defaults (a transformer's tokenizer, length limit, optimizer
        settings) are applied by :func:`attnaudit.train_hf.resolve_run_config`.
        """
        from attnaudit.models import MODEL_ENTRIES, parse_model_name

        kind, encoder = parse_model_name(name)
        known = MODEL_ENTRIES[kind]
        family: dict[str, Any] = (
            {"base": self.model.base or known.default_base, "embeddings": None}
            if known.pretrained else {"base": None})
        model = self.model.model_copy(update={"kind": kind, "encoder": encoder, **family})
        train = self.train if seed is None else self.train.model_copy(update={"seed": seed})
        return RunConfig(data=self.data, model=model, train=train)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable nested dict (what ``run.json`` stores under ``config``)."""
        return {
            "data": self.data.to_dict(),
            "models": list(self.models),
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
            "audit": self.audit.to_dict(),
            # only when given, so that a single-seed run's run.json is what it always was
            **({"seeds": list(self.seeds)} if self.seeds is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> PipelineConfig:
        """Build from sections (a TOML file's tables and flags); missing ones take their defaults.

        Raises:
            DataError: an unknown section or key, or a bad value, in one line naming it.
        """
        unknown = set(data) - {"data", "models", "seeds", "model", "train", "audit"}
        if unknown:
            raise DataError(_at(source, f"unknown config section(s) {sorted(unknown)}; "
                                        "use models, seeds, data, model, train, audit"))
        model = dict(data.get("model", {}))
        # kind/encoder come from each name in models; a [model] table meant for `train` may name one.
        model.pop("kind", None)
        model.pop("encoder", None)
        parts: dict[str, Any] = {
            "data": _section(DataConfig, data.get("data") or {}, source),
            "model": _section(ModelConfig, model, source),
            "train": _section(TrainConfig, data.get("train", {}), source),
            "audit": _section(AuditConfig, data.get("audit", {}), source),
        }
        if "models" in data:
            parts["models"] = data["models"]
        if data.get("seeds") is not None:
            parts["seeds"] = data["seeds"]
            first = _first_seed(data["seeds"])
            # Like --seed, the first seed fixes the data split and the first training run, unless
            # the file's [data]/[train] tables say otherwise (a clash is reported by the validator).
            for section in ("data", "train"):
                given = data.get(section) or {}
                if first is not None and isinstance(given, Mapping) and "seed" not in given:
                    parts[section] = parts[section].model_copy(update={"seed": first})
        try:
            return cls.model_validate(parts)
        except ValidationError as err:
            raise DataError(_at(source, describe_validation_error(err, ""))) from None

    @classmethod
    def load_toml(
        cls, path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None
    ) -> PipelineConfig:
        """Read a TOML config file and apply ``overrides`` (see :func:`load_sections`)."""
        return cls.from_dict(load_sections(path, overrides), source=_source(path))


def load_sections(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The tables of a TOML config file with ``overrides`` merged on top.

    Args:
        path: TOML file with ``[data]``, ``[model]``, ``[train]``, ``[audit]`` tables (and an optional
            top-level ``models`` list), or ``None`` for none.
        overrides: ``{"section": {"key": value}}`` (or ``{"models": value}``), e.g. from command-line
            flags; ``None`` values are ignored, so unset flags leave the file's values alone.
    Raises:
        DataError: the file is missing, unreadable or not valid TOML, or a table is not a table.
    """
    merged: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                loaded = tomllib.load(f)
        except FileNotFoundError:
            raise DataError(f"{path}: config file not found") from None
        except OSError as err:
            raise DataError(f"{path}: cannot read the config file ({err.strerror})") from None
        except tomllib.TOMLDecodeError as err:
            raise DataError(f"{path}: not valid TOML: {err}") from None
        for section, values in loaded.items():
            if section in ("models", "seeds"):
                merged[section] = values
            elif not isinstance(values, dict):
                raise DataError(f"{path}: {section!r} must be a table like [{section}]")
            else:
                merged[section] = dict(values)
    for section, values in (overrides or {}).items():
        if not isinstance(values, Mapping):
            if values is not None:
                merged[section] = values
            continue
        for key, value in values.items():
            if value is not None:
                merged.setdefault(section, {})[key] = value
    return merged


def load_toml(
    path: str | os.PathLike[str] | None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> RunConfig:
    """Shorthand for :meth:`RunConfig.load_toml`."""
    return RunConfig.load_toml(path, overrides)


def _first_seed(value: Any) -> int | None:
    """The first of ``seeds`` as given (a list or a comma-separated string), if it reads as one."""
    first = value.split(",")[0] if isinstance(value, str) else (
        value[0] if isinstance(value, (list, tuple)) and value else None)
    try:
        return None if first is None or isinstance(first, bool) else int(first)
    except (TypeError, ValueError):
        return None  # the field's validator reports it


def _source(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


def _at(source: str | None, message: str) -> str:
    return f"{source}: {message}" if source else message


def _section(cls: type[_Section], values: Any, source: str | None) -> _Section:
    if not isinstance(values, Mapping):
        raise DataError(_at(source, f"[{cls.section}] must be a table"))
    try:
        return cls.model_validate(dict(values))
    except ValidationError as err:
        raise DataError(_at(source, describe_validation_error(err, cls.section))) from None


def describe_validation_error(err: ValidationError, section: str) -> str:
    """pydantic's multi-line report as one line: ``[train] epochs: must be >= 1 (got 0)``."""
    where = f"[{section}] " if section else ""
    known = ""
    parts = []
    for error in err.errors(include_url=False):
        field = ".".join(str(p) for p in error["loc"]) or "value"
        if error["type"] == "extra_forbidden":
            parts.append(f"{where}unknown setting {field!r}")
            known = _known_fields(err.title)
            continue
        message = (str(error["msg"]).removeprefix("Value error, ")
                   .replace("Input should be greater than or equal to", "must be at least")
                   .replace("Input should be less than or equal to", "must be at most")
                   .replace("Input should be", "must be"))
        value = error.get("input")
        # Our own validators name the value already; pydantic's messages do not.
        plain = error["type"] == "value_error" or isinstance(value, Mapping)
        shown = "" if plain else f" (got {value!r})"
        parts.append(f"{where}{field}: {message}{shown}")
    text = "; ".join(parts)
    return f"{text}; known settings: {known}" if known else text


def _known_fields(title: str) -> str:
    classes = {c.__name__: c for c in (DataConfig, ModelConfig, TrainConfig, AuditConfig,
                                       RunConfig, PipelineConfig)}
    cls = classes.get(title)
    return ", ".join(cls.model_fields) if cls is not None else ""


def check_resumable(
    saved: Mapping[str, Any],
    new: BaseModel | Mapping[str, Any],
    *,
    where: str | os.PathLike[str],
    sections: Iterable[str] | None = None,
    prefix: str = "",
    resumable: Collection[str] = RESUMABLE_FIELDS,
    fix: str = "use another --out folder, or delete this one to start again",
) -> None:
    """Refuse to continue work saved with other settings; say which settings differ.

    Both sides are compared as flattened JSON dicts (``train.lr``, ``data.limits.max_tokens``), so a
    config saved by an older attnaudit compares like one made now.

    Args:
        saved: the settings stored with the work (``config.json``, ``run.json``'s ``config``,
            ``audit_info.json``'s settings).
        new: the settings asked for now (a config model or its ``to_dict()``).
        where: the folder or file holding the saved work, named in the message.
        sections: compare only these top-level keys (default: every key of either side).
        prefix: prepended to the names of a flat config (e.g. ``"audit"`` for an AuditConfig).
        resumable: dotted names that may differ (default: train.epochs, train.device,
            train.threads, train.eval_batch_size).
        fix: what the user can do, appended to the message.
    Raises:
        DataError: one line: the differing fields with both values, which fields may change on
            resume, and ``fix``.
    """
    wanted = dict(new) if isinstance(new, Mapping) else new.to_dict()  # type: ignore[attr-defined]
    if sections is not None:
        keep = set(sections)
        saved = {k: v for k, v in saved.items() if k in keep}
        wanted = {k: v for k, v in wanted.items() if k in keep}
    old_flat = _flatten(saved, prefix)
    new_flat = _flatten(wanted, prefix)
    differ = [
        f"{key} {old_flat.get(key, '(unset)')!r} -> {new_flat.get(key, '(unset)')!r}"
        for key in sorted(set(old_flat) | set(new_flat))
        if key not in resumable and _normalise(old_flat.get(key)) != _normalise(new_flat.get(key))
    ]
    if differ:
        may = f"; may change on resume: {', '.join(sorted(resumable))}" if resumable else ""
        raise DataError(
            f"{os.fspath(where)} holds work made with other settings ({', '.join(differ)}{may}); "
            f"{fix}"
        )


def _flatten(data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, name))
        else:
            out[name] = value
    return out


def _normalise(value: Any) -> Any:
    # JSON gives lists where the config has tuples, and ints where a float field holds a whole number.
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


__all__ = [
    "ALL_MODELS",
    "PAPER_RANKINGS",
    "RESUMABLE_FIELDS",
    "AttributionAggregate",
    "AuditConfig",
    "ConfigSection",
    "DataConfig",
    "ErasureLevel",
    "ErasurePath",
    "GradientOutput",
    "InputErasure",
    "InputSteps",
    "JSUnit",
    "ModelConfig",
    "PipelineConfig",
    "RandomDraw",
    "RunConfig",
    "TrainConfig",
    "check_resumable",
    "describe_validation_error",
    "load_sections",
    "load_toml",
]
