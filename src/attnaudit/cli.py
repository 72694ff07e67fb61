"""Command-line interface: attnaudit {fetch-default,synth,train,evaluate,audit,run,report}.

Built with typer from the one configuration tree (:mod:`attnaudit.config`): every command takes
``--config FILE.toml`` (tables ``[data]``, ``[model]``, ``[train]``, ``[audit]``) and its flags override
the file. Choices come from the config's fields and from the registries (models, rankings), which are
imported only when an option is checked or its help is shown, so ``attnaudit report`` never loads torch.

Every failure the user can fix ends in one line, ``attnaudit: error: ...``, naming the file or field
and what to do, with exit code 2; Ctrl-C exits 130 with a note that the same command resumes.

Transformers: ``attnaudit train --model hf --base minilm|FOLDER`` fine-tunes one, ``attnaudit run
--models flan-rnn,hf`` mixes families, and ``attnaudit audit --hf-model FOLDER --data DATA --out
RUN_DIR`` audits a classifier fine-tuned elsewhere (and writes its report).
"""

from __future__ import annotations

import errno
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import typer.core

from attnaudit.config import (
    AuditConfig,
    ErasurePath,
    GradientOutput,
    InputErasure,
    InputSteps,
    ItemUnit,
    JSUnit,
    PipelineConfig,
    QueryRows,
    RandomDraw,
    RunConfig,
    TrainConfig,
    load_sections,
)
from attnaudit.errors import DataError
from attnaudit.utils.logging import configure

logger = logging.getLogger(__name__)

PROG = "attnaudit"


# ----------------------------------------------------------------------------------------------
# Option types
# ----------------------------------------------------------------------------------------------


class Names(tuple[str, ...]):
    """The value of a comma-separated list option (``--rankings random,attention``)."""


def _names(choices: Callable[[], Sequence[str]] | None, what: str) -> Callable[[str], Names]:
    """A parser for a comma-separated list of names, checked against a registry.

    The registry is read through ``choices`` only when a value is given (or the help is shown, see
    :func:`_show_choices`): the registries import torch, which ``report`` must not pay for.
    """

    def parse(value: str) -> Names:
        names = [v.strip() for v in str(value).split(",") if v.strip()]
        if not names:
            raise typer.BadParameter(f"give at least one {what}")
        if choices is not None:
            known = list(choices())
            unknown = [n for n in names if n.lower() not in known]
            if unknown:
                raise typer.BadParameter(f"unknown {what} {', '.join(map(repr, unknown))}; "
                                         f"choose from {', '.join(known)}")
            names = [n.lower() for n in names]
        return Names(dict.fromkeys(names))

    return parse


def _name(choices: Callable[[], Sequence[str]], what: str) -> Callable[[str], str]:
    """A parser for one name checked against a registry (read when a value is given)."""
    many = _names(choices, what)

    def parse(value: str) -> str:
        names = many(value)
        if len(names) != 1:
            raise typer.BadParameter(f"give one {what}")
        return names[0]

    return parse


class Seeds(tuple[int, ...]):
    """The value of ``--seeds 0,1,2`` (a tuple subclass, so that typer reads one value, not many)."""


def _seed_list(value: str) -> Seeds:
    """``--seeds 0,1,2`` as ``(0, 1, 2)`` (repeats dropped, order kept)."""
    try:
        seeds = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"give comma-separated whole numbers (got {value!r})") from None
    if not seeds:
        raise typer.BadParameter("give at least one seed")
    return Seeds(dict.fromkeys(seeds))


def _model_names() -> Sequence[str]:
    from attnaudit.models import MODEL_NAMES

    return MODEL_NAMES


def _model_kinds() -> Sequence[str]:
    from attnaudit.models import MODELS

    return list(MODELS)


def _encoders() -> Sequence[str]:
    from attnaudit.models import ENCODERS

    return list(ENCODERS)


def _rankings() -> Sequence[str]:
    from attnaudit.rankings import RANKING_SETS, RANKINGS

    return [*RANKINGS, *RANKING_SETS]  # set names (paper, attributions, all) expand in the config


# ----------------------------------------------------------------------------------------------
# Options shared by several commands
# ----------------------------------------------------------------------------------------------

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="TOML file with [data], [model], [train] and [audit] tables (and a top-level "
    "'models' list for 'run'); flags override its values.", dir_okay=False)]
DataOpt = Annotated[str | None, typer.Option(
    "--data", help="Dataset file or folder, or 'default' for the shipped news set.")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="auto (default: detected), zhang-csv, aclimdb, folders (a folder per label), "
    "hf-disk, parquet, jsonl or csv.")]
TextColumnOpt = Annotated[str | None, typer.Option(
    "--text-column", help="Text column of a file with named columns.")]
LabelColumnOpt = Annotated[str | None, typer.Option(
    "--label-column", help="Label column, e.g. 'rating' for IMDB's star ratings.")]
MaxTrainOpt = Annotated[int | None, typer.Option(
    "--max-train-docs", help="Stratified subsample of the training documents.")]
MaxDevOpt = Annotated[int | None, typer.Option(
    "--max-dev-docs", help="Stratified subsample of the dev documents.")]
MaxTestOpt = Annotated[int | None, typer.Option(
    "--max-test-docs", help="Stratified subsample of the test documents.")]
EpochsOpt = Annotated[int | None, typer.Option(
    "--epochs", help="Training epochs, at least 1 (default 3); the best dev epoch is kept.")]
LrOpt = Annotated[float | None, typer.Option(
    "--lr", help="Learning rate (default 2e-3 for Adam; 5e-5 for AdamW, the transformers' "
    "optimizer).")]
BaseOpt = Annotated[str | None, typer.Option(
    "--base", metavar="minilm|FOLDER",
    help="Pretrained model the transformers (hf, hf-attnpool) fine-tune with a fresh head: "
    "minilm (the shipped all-MiniLM-L6-v2, default) or a local save_pretrained folder of any "
    "hosted family for hf (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT, ModernBERT, DeBERTa, "
    "Llama, Qwen, Mistral, Gemma, Phi), BERT for hf-attnpool; their data is tokenised by its tokenizer. "
    "Nothing is downloaded.")]
SeedOpt = Annotated[int | None, typer.Option(
    "--seed", help="Fixes the data split, initialisation, batch order and the audit's random "
    "draws (default 0).")]
TrainDeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="cpu, cuda, cuda:N or auto (default: cuda when available).")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", help="Torch CPU threads (default 1: more threads collapse when another process "
    "shares the cores; raise it on a dedicated many-core machine).", min=1)]
EmbeddingsOpt = Annotated[str | None, typer.Option(
    "--embeddings", help="Pretrained word vectors: a word2vec-text or GloVe file.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="No progress bars.")]
RestartDamagedOpt = Annotated[bool, typer.Option(
    "--restart-damaged", help="Train a model whose saved state (state.pt, model.pt) is damaged "
    "again from scratch; finished models beside it are kept.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Run folder to write, e.g. runs/NAME.")]

RankingsOpt = Annotated[Names | None, typer.Option(
    "--rankings", parser=_names(_rankings, "ranking"), metavar="NAME[,NAME...]",
    help="Comma-separated Test 2 rankings, in report order (default: the paper's four).")]
SitesOpt = Annotated[Names | None, typer.Option(
    "--sites", parser=_names(None, "site"), metavar="NAME[,NAME...]",
    help="Comma-separated attention sites: token (FLAN), sentence and word (HAN); a transformer's "
    "L<layer> and L<layer>.h<head> (layers from 0), and pool (hf-attnpool). Default: every site of "
    "the paper's models; hf's last layer from its classification row (MiniLM: L5, the attention "
    "users read; the report prints the command for the lower layers where most documents cannot "
    "flip); hf-attnpool's pool.")]
PathOpt = Annotated[ErasurePath | None, typer.Option(
    "--path",
    help="fast (default) or naive, the slow reference implementation.")]
GradientOutputOpt = Annotated[GradientOutput | None, typer.Option(
    "--gradient-output",
    help="What the gradient rankings differentiate: the predicted class's probability (default, "
    "as the paper) or its logit.")]
RandomDrawOpt = Annotated[RandomDraw | None, typer.Option(
    "--random-draw",
    help="Test 1's random item: uniform among the other items (default) or the original code's "
    "draw.")]
ErasureOpt = Annotated[Names | None, typer.Option(
    "--erasure", parser=_names(lambda: ("attention", "input"), "erasure level"),
    metavar="LEVEL[,LEVEL]",
    help="Erasure levels the measures read: attention (default: zero a site's weights, "
    "renormalise) and/or input (erase the items' tokens, recompute the whole model).")]
InputErasureOpt = Annotated[InputErasure | None, typer.Option(
    "--input-erasure", help="Input-level erasure: delete the tokens (default), or replace them "
    "with the unknown token (unk) or a transformer's [MASK] (mask).")]
AttentionStepsOpt = Annotated[InputSteps | None, typer.Option(
    "--attention-steps", help="Steps of the attention-level curves: every k (exact; default) or "
    "eraser (0, 1, n, ERASER's bins and every 5%: bounds the cost at a transformer's earlier "
    "layers; the fraction to the first flip is then resolved to those steps).")]
QueryRowsOpt = Annotated[QueryRows | None, typer.Option(
    "--query-rows", help="Transformers: the attention rows erasure edits: the [CLS] row (cls, "
    "hf's default: at its default last layer the only row the head reads) or every row (all, "
    "hf-attnpool's default: its pooling never reads [CLS]; below hf's last layer only every row "
    "moves decisions).")]
ItemsOpt = Annotated[ItemUnit | None, typer.Option(
    "--items", help="Transformers: items are subword tokens (token, default) or words (word: a "
    "word's subwords erased together, weights and scores summed). The paper's models read words "
    "either way.")]
def _max_memory(value: str | None) -> str | None:
    """``--max-memory``: checked here so that a bad size is refused naming the option (the config
    parses it again into bytes)."""
    from attnaudit.config import parse_memory

    if value is not None:
        try:
            parse_memory(value)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    return value


MaxMemoryOpt = Annotated[str | None, typer.Option(
    "--max-memory", metavar="SIZE", callback=_max_memory, help="Memory the audit's "
    "recomputations, gradients and attributions may take (default 2 GiB): a number with a unit, "
    "B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), any case, e.g. 1.5GiB, "
    "512MB. Each is cut into calls that fit; results do not depend on it.")]
BootstrapOpt = Annotated[int | None, typer.Option(
    "--bootstrap", min=0, help="Bootstrap resamples over documents for every interval (default "
    "1000; 0: no intervals).")]
def _min_differences(text: str | None) -> dict[str, float] | None:
    """``--min-difference LEAF=VALUE[,LEAF=VALUE]`` -> ``{leaf: value}`` (the names and values are
    checked by the config)."""
    if text is None:
        return None
    out: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        leaf, _, value = part.partition("=")
        try:
            number = float(value)  # "" (no "=") fails here; "nan" and "inf" below
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise DataError(f"--min-difference {part!r}: give CRITERION=NUMBER, e.g. "
                            "aopc_comprehensiveness=0.02")
        out[leaf.strip()] = number
    return out


MinDifferenceOpt = Annotated[str | None, typer.Option(
    "--min-difference", metavar="CRITERION=D[,...]",
    help="The verdict's smallest meaningful difference per criterion (median_fraction_censored "
    "0.05, share_never_flipped 0.02, aopc_comprehensiveness 0.01, aopc_sufficiency 0.01 by "
    "default); a difference whose interval lies inside ±D reads negligible.")]
MinDifferenceRelativeOpt = Annotated[float | None, typer.Option(
    "--min-difference-relative", min=0.0, help="The band is at least this fraction of the gap "
    "between the best ranking and random at the site (default 0.1).")]
PermutationsOpt = Annotated[int | None, typer.Option(
    "--permutations", min=0, help="Random permutations of a site's weights per document for the "
    "permutation test (default 100; 0: skip).")]
SamplesOpt = Annotated[int | None, typer.Option(
    "--attribution-samples", min=1, help="Perturbation samples per document for LIME and "
    "KernelSHAP (default 200).")]


@dataclass(frozen=True)
class MeasureOptions:
    """The audit options beyond the paper's, shared by ``audit`` and ``run``."""

    erasure: Names | None = None
    input_erasure: str | None = None
    bootstrap: int | None = None
    permutations: int | None = None
    attribution_samples: int | None = None
    attention_steps: str | None = None
    query_rows: str | None = None
    items: str | None = None
    max_memory: str | None = None
    min_difference: str | None = None
    min_difference_relative: float | None = None

    def overrides(self) -> dict[str, Any]:
        return {"erasure": self.erasure, "input_erasure": self.input_erasure,
                "bootstrap": self.bootstrap, "permutations": self.permutations,
                "attribution_samples": self.attribution_samples,
                "attention_steps": self.attention_steps, "query_rows": self.query_rows,
                "items": self.items, "max_memory": self.max_memory,
                "min_difference": _min_differences(self.min_difference),
                "min_difference_relative": self.min_difference_relative}


MaxDocsOpt = Annotated[int | None, typer.Option(
    "--max-docs", help="Audit a seeded random subset of this many test documents.")]
ReplaceOpt = Annotated[bool, typer.Option(
    "--replace", help="Overwrite a complete audit made with other settings (otherwise refused).")]
JsUnitOpt = Annotated[JSUnit, typer.Option(
    "--js-unit",
    help="Unit JS divergences are shown in (results are stored in nats).")]


def _data_overrides(data: str | None, data_format: str | None, text_column: str | None,
                    label_column: str | None, max_train_docs: int | None,
                    max_dev_docs: int | None, max_test_docs: int | None,
                    seed: int | None) -> dict[str, Any]:
    return {"path": data, "fmt": data_format, "text_column": text_column,
            "label_column": label_column, "max_train_docs": max_train_docs,
            "max_dev_docs": max_dev_docs, "max_test_docs": max_test_docs,
            # One seed fixes the whole run: the split as well as training (before, splits always
            # used seed 0 whatever --seed said).
            "seed": seed}


def _audit_overrides(rankings: Names | None, sites: Names | None,
                     path: str | None, gradient_output: str | None, random_draw: str | None,
                     max_docs: int | None, seed: int | None, measures: MeasureOptions,
                     batch_size: int | None = None) -> dict[str, Any]:
    return {"rankings": rankings, "sites": sites, "path": path, "gradient_output": gradient_output,
            "random_draw": random_draw, "max_docs": max_docs, "seed": seed,
            "batch_size": batch_size, **measures.overrides()}


def _threads(flag: int | None, sections: Mapping[str, Any], source: Path | None) -> int | None:
    """``--threads``, else the file's ``[train] threads`` (validated), else the configured default."""
    if flag is not None:
        return flag
    return TrainConfig.from_dict(sections.get("train", {}), source=source).threads


def _model_folder(path: Path, command: str) -> Path:
    """``path`` when it holds a trained model; otherwise a one-line error saying what to give."""
    if not path.is_dir():
        raise DataError(f"{path}: no such folder; give a model folder (runs/NAME/models/<model>, "
                        "or the --out of 'attnaudit train')")
    if (path / "model.pt").is_file():
        return path
    models = sorted(p.name for p in (path / "models").glob("*") if (p / "model.pt").is_file()) \
        if (path / "models").is_dir() else []
    if models:
        raise DataError(
            f"{path} is a pipeline run, not a model folder: give one of its models, e.g. "
            f"attnaudit {command} {path / 'models' / models[0]} (models here: {', '.join(models)})"
        )
    raise DataError(f"{path}: no checkpoint (model.pt) here; was the model trained? "
                    f"(attnaudit train --out {path})")


def _share(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def _audit_line(run: Path, summary: Mapping[str, Any], js_unit: str,
                name: str | None = None) -> str:
    """What ``attnaudit audit`` prints per model: per site, the headline numbers of both tests."""
    parts = []
    for site, entry in (summary.get("by_site") or {}).items():
        single = entry.get("single_weight") or {}
        median = single.get("median_delta_js")
        js = "n/a"
        if isinstance(median, (int, float)):
            value = median / math.log(2) if js_unit == "bits" else median  # stored in nats
            js = f"{value:.2g} {js_unit}"
        never = ((entry.get("removal") or {}).get("attention") or {}).get("share_never_flipped")
        parts.append(
            f"[{site}] top-weight removal flips {_share((single.get('flip_rate') or {}).get('max'))}, "
            f"median ΔJS {js}, attention ranking never flips {_share(never)}"
        )
    from attnaudit.results.tables import audit_folder

    what = f"{run} (audit {name})" if name is not None else f"{run}"
    return f"{what}: {'; '.join(parts) or 'audited'}; results in {audit_folder(run, name)}"


# ----------------------------------------------------------------------------------------------
# The commands
# ----------------------------------------------------------------------------------------------

app = typer.Typer(
    name=PROG,
    help="Train attention text classifiers and audit whether their attention is a faithful account "
    "of what they used (Serrano & Smith, ACL 2019).",
    add_completion=False,
    no_args_is_help=True,
    # Help texts name TOML tables like [data]: rich markup would take them for style tags.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


@app.callback()
def _main_options(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log debug messages.")] = False,
) -> None:
    """Train attention text classifiers and audit their attention (Serrano & Smith, ACL 2019)."""
    configure(verbose)


@app.command("fetch-default")
def fetch_default_command(
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Folder for news_articles.jsonl.")] = Path("data"),
) -> None:
    """Fetch the shipped default dataset (the only download attnaudit makes)."""
    from attnaudit.data.default import fetch_default

    print(fetch_default(data_dir))


@app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option(
        "--out", help="JSON-lines file to write (NAME.jsonl); the planted tokens go to "
        "NAME.planted.json beside it.", dir_okay=False)],
    source: Annotated[str, typer.Option(
        "--source", help="Texts to plant into: 'default' (the shipped news set) or a dataset "
        "file or folder.")] = "default",
    markers: Annotated[int, typer.Option(
        "--markers", min=1, help="Copies of the label's marker token per document (default 1).")] = 1,
    distractor: Annotated[bool, typer.Option(
        "--distractor/--no-distractor", help="Plant a distractor token, independent of the label, "
        "in about half the documents (default on).")] = True,
    classes: Annotated[int, typer.Option(
        "--classes", min=2, help="Number of labels, each with its marker token (default 2).")] = 2,
    unmarked: Annotated[float | None, typer.Option(
        "--unmarked", min=0.0, max=0.99, help="Share of documents left without a marker, labelled "
        "'none' (default 1 / (classes + 1): every label equally frequent). Without them a model "
        "may decide one label by the other markers' absence and never use its marker (measured: "
        "recall@1 about 0.5 for every ranking on two classes).")] = None,
    max_docs: Annotated[int | None, typer.Option(
        "--max-docs", min=1, help="Use only the first N source documents.")] = None,
    seed: Annotated[int, typer.Option(
        "--seed", help="Fixes every label and position drawn (default 0).")] = 0,
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", help="Folder of the default dataset (fetched there if absent).")] = Path("data"),
) -> None:
    """Write a planted ground truth: real texts whose label is decided by a marker token."""
    from attnaudit.data.synth import write_synth
    from attnaudit.results.planted import sidecar_path

    spec = write_synth(source, out, markers=markers, distractor=distractor, classes=classes,
                       unmarked=1 / (classes + 1) if unmarked is None else unmarked,
                       max_docs=max_docs, seed=seed, data_dir=data_dir)
    shown = ", ".join(f"{label}: {token}" for label, token in spec.markers.items())
    print(f"{spec.extra.get('n_docs')} documents -> {out} (markers {shown}; distractor "
          f"{spec.distractor or 'none'}; spec {sidecar_path(out)})")


@app.command("train")
def train_command(
    out: OutOpt,
    config: ConfigOpt = None,
    data: DataOpt = None,
    data_format: FormatOpt = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
    max_train_docs: MaxTrainOpt = None,
    max_dev_docs: MaxDevOpt = None,
    max_test_docs: MaxTestOpt = None,
    model: Annotated[str | None, typer.Option(
        "--model", parser=_name(_model_kinds, "model kind"), metavar="KIND",
        help="Model kind (default han): flan, han (the paper's), or a transformer fine-tuned from "
        "--base: hf ([CLS] pooling) or hf-attnpool (attention pooling).")] = None,
    encoder: Annotated[str | None, typer.Option(
        "--encoder", parser=_name(_encoders, "encoder"), metavar="ENCODER",
        help="Encoder under the attention (default rnn; flan and han only).")] = None,
    base: BaseOpt = None,
    embeddings: EmbeddingsOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Training documents per batch (default 64; 32 for transformers).")
    ] = None,
    max_batch_tokens: Annotated[int | None, typer.Option(
        "--max-batch-tokens", help="Cap on padded tokens per training batch (default 40000).")] = None,
    patience: Annotated[int | None, typer.Option(
        "--patience", help="Early-stopping patience in epochs (default 5; 10 with encoder none).")
    ] = None,
    seed: SeedOpt = None,
    device: TrainDeviceOpt = None,
    threads: ThreadsOpt = None,
    restart_damaged: RestartDamagedOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Train one attention classifier into a run folder (resumes an interrupted one)."""
    from attnaudit.train import set_threads, train_run

    overrides = {
        "data": _data_overrides(data, data_format, text_column, label_column, max_train_docs,
                                max_dev_docs, max_test_docs, seed),
        "model": {"kind": model, "encoder": encoder, "embeddings": embeddings, "base": base},
        "train": {"epochs": epochs, "lr": lr, "batch_size": batch_size,
                  "max_batch_tokens": max_batch_tokens, "patience": patience, "seed": seed,
                  "device": device, "threads": threads},
    }
    run_config = RunConfig.load_toml(config, overrides)
    set_threads(run_config.train.threads)
    metrics = train_run(run_config, out, progress=not no_progress, restart_damaged=restart_damaged)
    print(
        f"{metrics['model']}: test accuracy {metrics['test_accuracy']:.4f} "
        f"(dev {metrics['dev_accuracy']:.4f}, majority {metrics['majority_test_accuracy']:.4f}), "
        f"{metrics['epochs_trained']} epochs, {metrics['train_seconds']:.0f} s training "
        f"({metrics['train_docs_per_s']:.1f} docs/s) -> {out}"
    )


@app.command("evaluate")
def evaluate_command(
    run: Annotated[Path, typer.Argument(help="Model folder (runs/NAME/models/<model>, or the --out "
                                             "of 'attnaudit train').")],
    split: Annotated[Literal["train", "dev", "test"], typer.Option(
        "--split",
        help="Split to score.")] = "test",
    config: ConfigOpt = None,
    device: Annotated[str, typer.Option(
        "--device", help="cpu (default), cuda, cuda:N or auto.")] = "cpu",
    threads: ThreadsOpt = None,
) -> None:
    """Accuracy of a trained model on a split."""
    from attnaudit.train import evaluate_run, set_threads

    set_threads(_threads(threads, load_sections(config), config))
    folder = _model_folder(run, "evaluate")
    acc = evaluate_run(folder, split, device=device)
    print(f"{run}: {split} accuracy {acc:.4f}")


@app.command("audit")
def audit_command(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="One or more model folders (runs/NAME/models/<model>, or the --out of 'attnaudit "
        "train'); or none, with --hf-model.")] = None,
    hf_model: Annotated[Path | None, typer.Option(
        "--hf-model", help="Audit a classifier fine-tuned elsewhere: the folder save_pretrained "
        "wrote for a BERT-family AutoModelForSequenceClassification and its tokenizer. Needs "
        "--data (its labels must be the model's config.id2label names, see --label-map) and "
        "--out (the model folder to create, with its report). Nothing is trained, so nothing is "
        "set aside: the data's test split is audited, or every document when it has none.",
        file_okay=False)] = None,
    data: DataOpt = None,
    data_format: FormatOpt = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
    max_test_docs: MaxTestOpt = None,
    label_map: Annotated[str | None, typer.Option(
        "--label-map", metavar="NAME=VALUE[,...]", help="With --hf-model: the data's label of "
        "each class the model names otherwise (its config.id2label name or index = the data's "
        "label), e.g. NEGATIVE=0,POSITIVE=1; TOML: [data] label_map. Transformers' default "
        "names LABEL_k are mapped to the data's labels k (or its k-th label in sorted order) "
        "with a warning.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="With --hf-model: the model folder to create (e.g. runs/NAME).")] = None,
    config: ConfigOpt = None,
    rankings: RankingsOpt = None,
    sites: SitesOpt = None,
    path: PathOpt = None,
    gradient_output: GradientOutputOpt = None,
    random_draw: RandomDrawOpt = None,
    max_docs: MaxDocsOpt = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the random ranking and Test 1's random item (default: the run's "
        "training seed).")] = None,
    device: Annotated[str, typer.Option(
        "--device", help="cpu (default), cuda or cuda:N.")] = "cpu",
    threads: ThreadsOpt = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Documents per batch (default: 64 on a CPU, 512 on a GPU); results "
        "do not depend on it.")] = None,
    replace: ReplaceOpt = False,
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", help="Write a named audit to <run>/audits/NAME/ beside the "
        "full audit (<run>/audit/), which it never touches: other rankings, sites, documents or "
        "settings, each under its own name; the report shows every audit. Rerunning a name "
        "reuses or resumes it; other settings under the same name need --replace. NAME: 1-64 "
        "letters, digits, '.', '_' or '-'.")] = None,
    erasure: ErasureOpt = None,
    input_erasure: InputErasureOpt = None,
    bootstrap: BootstrapOpt = None,
    permutations: PermutationsOpt = None,
    attribution_samples: SamplesOpt = None,
    attention_steps: AttentionStepsOpt = None,
    query_rows: QueryRowsOpt = None,
    items: ItemsOpt = None,
    max_memory: MaxMemoryOpt = None,
    min_difference: MinDifferenceOpt = None,
    min_difference_relative: MinDifferenceRelativeOpt = None,
    js_unit: JsUnitOpt = "nats",
    compare_out: Annotated[Path | None, typer.Option(
        "--compare-out", help="With several runs: folder for a report.html comparing them (it "
        "links to the runs and draws its figures there; default: 'comparison' beside the first "
        "run).")] = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Attention tests (Test 1, Test 2) and the faithfulness measures on trained models; results go
    to each <run>/audit/ (with --name, <run>/audits/NAME/). With --hf-model, on a classifier
    fine-tuned elsewhere (and its report)."""
    from attnaudit.erasure.audit import audit_run
    from attnaudit.results.tables import check_audit_name
    from attnaudit.train import set_threads
    from attnaudit.utils.distributed import is_main_process

    if name is not None:
        try:
            check_audit_name(name)  # before any work
        except ValueError as err:
            raise DataError(str(err)) from None

    data_flags = {**_data_overrides(data, data_format, text_column, label_column, None, None,
                                    max_test_docs, None), "label_map": label_map}
    sections = load_sections(config, {"audit": _audit_overrides(
        rankings, sites, path, gradient_output, random_draw, max_docs, seed,
        MeasureOptions(erasure, input_erasure, bootstrap, permutations, attribution_samples,
                       attention_steps, query_rows, items, max_memory, min_difference,
                       min_difference_relative),
        batch_size), **({"data": data_flags} if hf_model is not None else {})})
    audit_config = AuditConfig.from_dict(sections.get("audit", {}), source=config)
    set_threads(_threads(threads, sections, config))
    if hf_model is not None:
        folders = [_import_hf_model(hf_model, runs, out, sections, config, device,
                                    progress=not no_progress)]
    else:
        given = [name for name, value in (("--data", data), ("--format", data_format),
                                          ("--text-column", text_column),
                                          ("--label-column", label_column),
                                          ("--max-test-docs", max_test_docs),
                                          ("--label-map", label_map), ("--out", out))
                 if value is not None]
        if given:
            raise DataError(f"{', '.join(given)} go(es) with --hf-model; a trained model folder "
                            "audits its own data")
        if not runs:
            raise DataError("give one or more model folders to audit, or --hf-model PATH --data "
                            "DATA --out RUN_DIR for a classifier fine-tuned elsewhere")
        # every folder checked before any work
        folders = [_model_folder(run, "audit") for run in runs]
    # Under torchrun every rank runs this command; rank 0 alone speaks and writes the reports.
    speaks = is_main_process()
    for folder in folders:
        summary = audit_run(folder, audit_config, progress=not no_progress, device=device,
                            replace=replace, name=name)
        if speaks:
            print(_audit_line(folder, summary, js_unit, name))
    if not speaks:
        return
    if (replace or name is not None) and hf_model is None:
        _rebuild_reports(folders, js_unit)
    if hf_model is not None:
        from attnaudit.reports.html import ReportError, build_report

        try:
            print(f"report: {build_report(folders[0], js_unit=js_unit)}")
        except ReportError as err:
            raise DataError(str(err)) from None
    if len(folders) > 1:
        target = compare_out or folders[0].parent / "comparison"
        print(f"comparison report: {_comparison_report(folders, target, js_unit)}")


def _rebuild_reports(folders: Sequence[Path], js_unit: str) -> None:
    """After ``audit --replace`` or ``--name``: rebuild every report that shows the model (the
    run's ``report.html`` above a model folder, or the model folder's own), so none shows a
    replaced audit or leaves out a named one."""
    from attnaudit.reports.html import REPORT_NAME, ReportError, build_report

    roots: list[Path] = []
    for folder in folders:
        run = folder.parent.parent
        for root in ((run,) if (run / "run.json").is_file() else ()) + (folder,):
            if (root / REPORT_NAME).is_file() and root not in roots:
                roots.append(root)
    for root in roots:
        try:
            print(f"report rebuilt: {build_report(root, js_unit=js_unit)}")
        except ReportError as err:
            raise DataError(str(err)) from None


def _import_hf_model(model: Path, runs: Sequence[Path] | None, out: Path | None,
                     sections: Mapping[str, Any], config: Path | None, device: str, *,
                     progress: bool) -> Path:
    """``attnaudit audit --hf-model``: the model folder ``out`` made from the classifier in
    ``model`` (see :func:`attnaudit.pipeline.import_hf_model`)."""
    from attnaudit.config import DataConfig
    from attnaudit.pipeline import import_hf_model

    if runs:
        raise DataError("give model folders or --hf-model, not both")
    if out is None:
        raise DataError("--hf-model needs --out RUN_DIR: the model folder to create")
    values = dict(sections.get("data") or {})
    if "path" not in values:
        raise DataError("--hf-model needs --data: the labelled documents to audit it on")
    data_config = DataConfig.from_dict(values, source=config)
    import_hf_model(model, data_config, out, device=device, progress=progress)
    return out


def _comparison_report(folders: Sequence[Path], target: Path, js_unit: str) -> Path:
    """A report over several audited models: ``target/models/<name>`` links to each, then the
    ordinary report of that folder (figures go to ``target/figures``; the models are only read)."""
    from attnaudit.reports.html import ReportError, build_report

    models = target / "models"
    models.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for folder in folders:
        name = folder.name if folder.name not in names else f"{folder.parent.parent.name}-{folder.name}"
        link = models / name
        if link.exists() and not link.is_symlink():
            raise DataError(f"{link} exists and is not a link made by --compare-out; "
                            "choose another --compare-out folder")
        link.unlink(missing_ok=True)
        link.symlink_to(folder.resolve(), target_is_directory=True)
        names.append(name)
    for stale in models.iterdir():  # links of an earlier comparison of other runs
        if stale.is_symlink() and stale.name not in names:
            stale.unlink()
    try:
        return build_report(target, js_unit=js_unit)
    except ReportError as err:
        raise DataError(str(err)) from None


@app.command("run")
def run_command(
    out: OutOpt,
    config: ConfigOpt = None,
    data: DataOpt = None,
    data_format: FormatOpt = None,
    text_column: TextColumnOpt = None,
    label_column: LabelColumnOpt = None,
    max_train_docs: MaxTrainOpt = None,
    max_test_docs: MaxTestOpt = None,
    models: Annotated[Names | None, typer.Option(
        "--models", parser=_names(_model_names, "model"), metavar="NAME[,NAME...]",
        help="Comma-separated model names: KIND-ENCODER (flan-rnn, ...; default: the paper's six) "
        "or a transformer, hf or hf-attnpool (fine-tuned from --base).")] = None,
    base: BaseOpt = None,
    embeddings: EmbeddingsOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    seeds: Annotated[Seeds | None, typer.Option(
        "--seeds", parser=_seed_list, metavar="SEED[,SEED...]",
        help="Train and audit every model once per seed (the first seed's split for all) and write "
        "seeds.json: mean and spread across seeds. Instead of --seed.")] = None,
    device: TrainDeviceOpt = None,
    threads: ThreadsOpt = None,
    rankings: RankingsOpt = None,
    sites: SitesOpt = None,
    path: PathOpt = None,
    gradient_output: GradientOutputOpt = None,
    random_draw: RandomDrawOpt = None,
    max_docs: MaxDocsOpt = None,
    replace: ReplaceOpt = False,
    erasure: ErasureOpt = None,
    input_erasure: InputErasureOpt = None,
    bootstrap: BootstrapOpt = None,
    permutations: PermutationsOpt = None,
    attribution_samples: SamplesOpt = None,
    attention_steps: AttentionStepsOpt = None,
    query_rows: QueryRowsOpt = None,
    items: ItemsOpt = None,
    max_memory: MaxMemoryOpt = None,
    min_difference: MinDifferenceOpt = None,
    min_difference_relative: MinDifferenceRelativeOpt = None,
    restart_damaged: RestartDamagedOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Train, audit and report every model in one command; rerun it to resume."""
    from attnaudit.pipeline import run_pipeline
    from attnaudit.train import set_threads

    if seed is not None and seeds is not None:
        raise DataError("give --seed or --seeds, not both (--seeds N,... trains with N first)")
    if seeds is not None:
        seed = seeds[0]  # the first seed fixes the data split and the first training run
    overrides: dict[str, Any] = {
        "data": _data_overrides(data, data_format, text_column, label_column, max_train_docs,
                                None, max_test_docs, seed),
        "models": models,
        "seeds": None if seeds is None else list(seeds),
        "model": {"embeddings": embeddings, "base": base},
        "train": {"epochs": epochs, "lr": lr, "seed": seed, "device": device, "threads": threads},
        # The audit's seed stays unset: it is the run's seed (--seed) unless [audit] seed says else.
        "audit": _audit_overrides(rankings, sites, path, gradient_output, random_draw, max_docs,
                                  None, MeasureOptions(erasure, input_erasure, bootstrap,
                                                       permutations, attribution_samples,
                                                       attention_steps, query_rows, items,
                                                       max_memory, min_difference,
                                                       min_difference_relative)),
    }
    sections = load_sections(config, overrides)
    sections.setdefault("data", {}).setdefault("path", "default")
    pipeline_config = PipelineConfig.from_dict(
        sections, source=None if config is None else str(config))
    set_threads(pipeline_config.train.threads)
    report = run_pipeline(pipeline_config, out, progress=not no_progress,
                          restart_damaged=restart_damaged, replace_audit=replace)
    print(f"report: {report}  (open it in a browser; rebuild with: attnaudit report {out})")


@app.command("report")
def report_command(
    run: Annotated[Path, typer.Argument(help="Folder written by 'attnaudit run', or a model folder.")],
    js_unit: JsUnitOpt = "nats",
) -> None:
    """Rebuild report.html from saved results (no model is loaded)."""
    from attnaudit.reports.html import ReportError, build_report

    try:
        path = build_report(run, js_unit=js_unit)
    except ReportError as err:
        raise DataError(str(err)) from None
    print(path)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def _error(message: str) -> int:
    # One line: a message spread over lines (pydantic's, torch's) would hide the part that matters.
    text = " ".join(message.split()).replace("Value error, ", "")
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2


def _interrupted() -> int:
    print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
    return 130


def _os_error(err: OSError) -> str:
    if isinstance(err, PermissionError):
        return (f"{err.filename or 'a file'}: permission denied; for an output folder choose one you "
                "can write to (--out runs/NAME), else fix the permissions")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{err.filename or 'a file'}: no space left on its disk while writing it; free "
                "some space there (or write to another disk), then run the same command again: "
                "finished work is reused")
    return f"{err.filename}: {err.strerror or err}" if err.filename else f"{err}"


#: options whose choices come from a registry: shown in their help as the metavar
_REGISTRY_OPTIONS: dict[str, tuple[Callable[[], Sequence[str]], bool]] = {
    "rankings": (_rankings, True),
    "models": (_model_names, True),
    "model": (_model_kinds, False),
    "encoder": (_encoders, False),
}


def _show_choices(command: Any, args: Sequence[str]) -> None:
    """Put the registries' names into the help of the subcommand in ``args``.

    Done only when that command's help is asked for: the registries import torch (a second or two),
    which neither the other commands' startup nor ``report`` nor the top-level help should pay.
    """
    commands = command.commands if isinstance(command, typer.core.TyperGroup) else {}
    name = next((a for a in args if a in commands), None)
    if name is None:
        return
    for param in commands[name].params:
        if param.name in _REGISTRY_OPTIONS:
            choices, many = _REGISTRY_OPTIONS[param.name]
            param.metavar = f"[{'|'.join(choices())}]" + (",..." if many else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    command = typer.main.get_command(app)
    if {"-h", "--help"} & set(args):
        _show_choices(command, args)
    try:
        # make_context/invoke instead of the command's main(): errors reach us as they are (main
        # turns EOFError into "Aborted!" and prints usage errors over several lines).
        with command.make_context(PROG, args) as ctx:
            command.invoke(ctx)
    except typer.Exit as done:  # --help, or a command's own early exit
        return int(done.exit_code)
    except typer.Abort:
        return _interrupted()
    except typer.TyperException as err:  # a bad flag or value (click's UsageError family)
        context = getattr(err, "ctx", None)
        path = context.command_path.partition(" ")[2] if context is not None else ""
        hint = f" (see: {PROG} {path} --help)" if path else f" (see: {PROG} --help)"
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        return _error(f"{message}{hint}")
    except DataError as err:
        return _error(str(err))
    except OSError as err:
        return _error(_os_error(err))
    except KeyboardInterrupt:
        return _interrupted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
