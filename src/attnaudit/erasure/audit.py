"""Run both attention tests over documents, batched, and write results that survive a crash.

The test split is cut into chunks; each finished chunk is saved under ``audit/parts/`` before the
next starts, so an interrupted audit resumes where it stopped. The final tables, ``summary.json``,
``examples.json`` and the figures are written atomically once every chunk is done.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import PreparedData
from attnaudit.data.types import Batch, EncodedDocument
from attnaudit.erasure.examples import example_records, select_examples
from attnaudit.erasure.metrics import JSBase
from attnaudit.erasure.removal import ErasurePath, RemovalResult, removal_test
from attnaudit.erasure.single_weight import SINGLE_REMOVALS, RandomDraw, single_weight_test
from attnaudit.erasure.summary import summarize
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings import PAPER_RANKINGS, build_ranking
from attnaudit.rankings.gradient import GradientOutput
from attnaudit.utils.io import (
    atomic_path,
    read_json,
    remove_stale_temp_files,
    run_info,
    write_json,
)

logger = logging.getLogger(__name__)

AUDIT_DIR = "audit"


@dataclass(frozen=True)
class AuditConfig:
    """Settings of an audit. Every field changes results, so all of them are saved with them."""

    rankings: tuple[str, ...] = PAPER_RANKINGS  # Test 2 rankings, in report order
    path: ErasurePath = "fast"  # "naive" is the slow reference, for checks and benchmarks
    js_base: JSBase = "e"  # nats, as the original system; "2" gives bits (max 1)
    gradient_output: GradientOutput = "probability"  # the paper differentiates the probability
    random_draw: RandomDraw = "uniform"  # "original" reproduces the original code's draw of r
    seed: int = 0  # fixes the random ranking and Test 1's random item, per document
    batch_size: int = 64
    max_docs: int | None = None  # audit a seeded random subset of the test split
    chunk_docs: int = 1000  # documents per resumable part

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rankings"] = list(self.rankings)
        return out


@dataclass
class AuditFrames:
    """Per-document results: Test 1 (one row per document) and Test 2 (per document and ranking)."""

    single_weight: pd.DataFrame
    removal: pd.DataFrame
    orders: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class BatchResult:
    """Both tests on one batch: Test 1 columns, Test 2 per ranking, and the ranking scores."""

    single_weight: dict[str, np.ndarray]
    removal: dict[str, RemovalResult]
    scores: dict[str, torch.Tensor]


def _needed_rankings(config: AuditConfig) -> list[str]:
    # Test 1 removes the top item of the gradient rankings even when Test 2 skips them.
    extra = [r for r in ("gradient", "attention_x_gradient") if r not in config.rankings]
    return [*config.rankings, *extra]


def audit_output(
    model: AttentionClassifier,
    output: ModelOutput,
    doc_ids: list[str],
    config: AuditConfig,
) -> BatchResult:
    """Both tests on one batch's unmodified pass (rankings computed once, shared by both)."""
    options = {"seed": config.seed, "output": config.gradient_output}
    scores = {
        name: build_ranking(name, **options).rank(model, output, doc_ids)
        for name in _needed_rankings(config)
    }
    single = single_weight_test(
        model,
        output,
        scores,
        doc_ids,
        seed=config.seed,
        random_draw=config.random_draw,
        js_base=config.js_base,
    )
    removal = {
        name: removal_test(model, output, scores[name], path=config.path)
        for name in config.rankings
    }
    return BatchResult(single, removal, scores)


def audit_batch(
    model: AttentionClassifier,
    batch: Batch,
    config: AuditConfig,
    label_names: Sequence[str],
    *,
    model_name: str = "model",
) -> AuditFrames:
    """Encode one batch once and run both tests on it."""
    with torch.no_grad():
        output = model.run(batch)
    result = audit_output(model, output, batch.doc_ids, config)
    single_cols, removal = result.single_weight, result.removal
    predicted = output.logits.argmax(-1).cpu().numpy()
    labels = batch.labels.cpu().numpy()
    n_items = output.mask.sum(dim=1).cpu().numpy()
    common = {
        "model": model_name,
        "doc_id": batch.doc_ids,
        "n_items": n_items,
        "label": [label_names[i] for i in labels],
        "prediction": [label_names[i] for i in predicted],
    }
    single = pd.DataFrame({**common, **single_cols})
    frames, orders = [], {}
    for name, ranked in removal.items():
        frames.append(
            pd.DataFrame(
                {
                    **common,
                    "ranking": name,
                    "removed_at_flip": ranked.removed_at_flip,
                    "fraction_removed": ranked.fraction_removed,
                    "mass_removed": ranked.mass_removed,
                    "never_flipped": ranked.never_flipped,
                    "single_item": n_items < 2,
                }
            )
        )
        orders.update({(doc, name): o for doc, o in zip(batch.doc_ids, ranked.orders, strict=True)})
    return AuditFrames(single, pd.concat(frames, ignore_index=True), orders)


def audit_documents(
    model: AttentionClassifier,
    docs: Sequence[EncodedDocument],
    label_names: Sequence[str],
    config: AuditConfig | None = None,
    *,
    model_name: str = "model",
    progress: bool = False,
) -> AuditFrames:
    """Run both tests over documents; rows come back in the documents' order.

    Args:
        model: trained classifier (put in eval mode here).
        docs: encoded documents (e.g. a run's test split).
        label_names: class names indexed by label id.
        config: audit settings (defaults: the paper's).
    """
    config = config or AuditConfig()
    model.eval()
    device = next(model.parameters()).device
    batches = make_batches(
        list(docs), hierarchical=model.hierarchical, batch_size=config.batch_size
    )
    parts = [
        audit_batch(model, batch.to(device), config, label_names, model_name=model_name)
        for batch in tqdm(batches, desc=f"audit {model_name}", disable=not progress, unit="batch")
    ]
    if not parts:
        raise ValueError("no documents to audit")
    rank = {doc.doc_id: i for i, doc in enumerate(docs)}
    single = pd.concat([p.single_weight for p in parts], ignore_index=True)
    removal = pd.concat([p.removal for p in parts], ignore_index=True)
    single = single.sort_values("doc_id", key=lambda s: s.map(rank), kind="stable")
    removal = removal.sort_values("doc_id", key=lambda s: s.map(rank), kind="stable")
    orders = {k: v for p in parts for k, v in p.orders.items()}
    return AuditFrames(single.reset_index(drop=True), removal.reset_index(drop=True), orders)


def pick_documents(
    docs: Sequence[EncodedDocument], max_docs: int | None, seed: int
) -> list[EncodedDocument]:
    """A seeded random subset (in the original order) when ``max_docs`` is set, else all."""
    if max_docs is None or max_docs >= len(docs):
        return list(docs)
    keep = np.sort(np.random.default_rng(seed).choice(len(docs), size=max_docs, replace=False))
    return [docs[i] for i in keep]


def _fingerprint(config: AuditConfig, model_file: Path, doc_ids: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    digest.update(model_file.read_bytes() if model_file.exists() else b"")
    digest.update("\x00".join(doc_ids).encode())
    return digest.hexdigest()


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def audit_run(
    run_dir: str | Path,
    config: AuditConfig | None = None,
    *,
    progress: bool = True,
    prepared: PreparedData | None = None,
) -> dict[str, Any]:
    """Audit a trained run's test split; results go to ``run_dir/audit/``. Resumes after a crash.

    Args:
        prepared: the data the pipeline prepared for training, reused when its vocabulary and
            labels are the run's; otherwise the test split is prepared from the run's settings.
    Returns:
        The summary (also written to ``audit/summary.json``).
    """
    from attnaudit.checkpoint import load_run
    from attnaudit.data.prepare import prepare_data

    config = config or AuditConfig()
    run_dir = Path(run_dir)
    out = run_dir / AUDIT_DIR
    loaded = load_run(run_dir)
    model, label_names = loaded.model, loaded.label_names
    model_name = run_dir.name
    reusable = (
        prepared is not None
        and prepared.vocab == loaded.vocab
        and list(prepared.label_names) == list(label_names)
    )
    if prepared is None or not reusable:
        prepared = prepare_data(loaded.data_config, vocab=loaded.vocab, label_names=label_names)
    docs = pick_documents(prepared.test, config.max_docs, config.seed)
    doc_ids = [d.doc_id for d in docs]
    fingerprint = _fingerprint(config, run_dir / "model.pt", doc_ids)
    if (out / "summary.json").exists() and read_json(out / "audit_info.json").get(
        "fingerprint"
    ) == fingerprint:
        logger.info("%s: audit already complete, reusing %s", model_name, out)
        summary: dict[str, Any] = read_json(out / "summary.json")
        return summary

    remove_stale_temp_files(out)  # left by an audit killed mid-write
    parts_dir = out / "parts"
    marker = parts_dir / "fingerprint.txt"
    if parts_dir.exists() and (not marker.exists() or marker.read_text() != fingerprint):
        shutil.rmtree(parts_dir)  # parts of another model or config must not be mixed in
    parts_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)

    chunks = [docs[i : i + config.chunk_docs] for i in range(0, len(docs), config.chunk_docs)]
    bar = tqdm(total=len(docs), desc=f"audit {model_name}", unit="doc", disable=not progress)
    for index, chunk in enumerate(chunks):
        single_path = parts_dir / f"single-{index:05d}.parquet"
        removal_path = parts_dir / f"removal-{index:05d}.parquet"
        if not (single_path.exists() and removal_path.exists()):
            frames = audit_documents(model, chunk, label_names, config, model_name=model_name)
            _write_parquet(frames.removal, removal_path)
            _write_parquet(frames.single_weight, single_path)  # written last: marks the chunk done
        bar.update(len(chunk))
    bar.close()

    single = pd.concat(
        [pd.read_parquet(parts_dir / f"single-{i:05d}.parquet") for i in range(len(chunks))],
        ignore_index=True,
    )
    removal = pd.concat(
        [pd.read_parquet(parts_dir / f"removal-{i:05d}.parquet") for i in range(len(chunks))],
        ignore_index=True,
    )
    return finish_audit(
        out, model, docs, label_names, single, removal, config, model_name, fingerprint
    )


def finish_audit(
    out: Path,
    model: AttentionClassifier,
    docs: Sequence[EncodedDocument],
    label_names: Sequence[str],
    single: pd.DataFrame,
    removal: pd.DataFrame,
    config: AuditConfig,
    model_name: str,
    fingerprint: str,
) -> dict[str, Any]:
    """Write the final tables, examples, figures and summary (summary last: it marks completion)."""
    _write_parquet(single, out / "single_weight.parquet")
    _write_parquet(removal, out / "removal.parquet")
    chosen = select_examples(single, removal)
    by_id = {d.doc_id: d for d in docs}
    write_json(
        out / "examples.json",
        example_records(
            model, [by_id[i] for i, _ in chosen], [c for _, c in chosen], label_names, config
        ),
    )
    try:
        from attnaudit.reports.figures import write_model_figures

        write_model_figures(single, removal, out, js_base=config.js_base)
    except ImportError:  # reports are optional for the audit itself
        logger.warning("figures skipped: attnaudit.reports.figures is not available")
    summary = summarize(single, removal, model=model_name, js_base=config.js_base)
    info = run_info(config.seed, config.to_dict())
    info["fingerprint"] = fingerprint
    info["n_docs"] = len(docs)
    write_json(out / "audit_info.json", info)
    write_json(out / "summary.json", summary)
    return summary


def cli_audit(args: argparse.Namespace) -> None:
    """``attnaudit audit RUN [RUN ...]``: audit each run, then compare them when there are several."""
    config = AuditConfig(
        path=args.erasure_path,
        js_base=args.js_base,
        gradient_output=args.gradient_output,
        random_draw=args.random_draw,
        seed=args.seed,
        max_docs=args.max_docs,
    )
    for run in args.runs:
        summary = audit_run(run, config)
        attention = summary["removal"].get("attention", {})
        print(
            f"{run}: top-weight removal flips {summary['single_weight']['flip_rate']['max']:.1%}; "
            f"attention ranking never flips {attention.get('share_never_flipped', float('nan')):.1%}; "
            f"results in {Path(run) / AUDIT_DIR}"
        )
    if len(args.runs) > 1:
        from attnaudit.reports.figures import write_comparison_figures

        target = Path(args.compare_out or Path(args.runs[0]).parent / "comparison")
        write_comparison_figures([Path(r) / AUDIT_DIR for r in args.runs], target)
        print(f"comparison figures in {target}")


__all__ = [
    "SINGLE_REMOVALS",
    "AuditConfig",
    "AuditFrames",
    "audit_batch",
    "audit_documents",
    "audit_run",
]
