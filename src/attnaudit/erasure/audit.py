"""Audit documents, batched, and write result tables that survive a crash.

The test split is cut into chunks; each finished chunk's tables are saved under ``audit/parts/``
before the next starts, so an interrupted audit resumes where it stopped. The final tables and
``summary.json`` (computed by the torch-free :mod:`attnaudit.results`, the same code the report uses)
are written atomically once every chunk is done. The audit draws no figures and loads nothing after
it: reports read the saved tables only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch

from attnaudit.data.batching import make_batches
from attnaudit.data.types import DataError, EncodedDocument
from attnaudit.erasure.engine import AuditPlan, BatchColumns, audit_batch, ranking_options
from attnaudit.erasure.input_level import replacement_id
from attnaudit.erasure.memory import memory_budget
from attnaudit.models import default_sites
from attnaudit.models.base import WHOLE_WORD, AttentionClassifier, item_texts
from attnaudit.rankings import RANKINGS, applicable_rankings, build_ranking, ranking_settings
from attnaudit.results.tables import AUDIT_DIR, audit_folder
from attnaudit.results.verdict import VerdictSettings, assess
from attnaudit.utils.distributed import World, world
from attnaudit.utils.io import atomic_path, read_json, remove_stale_temp_files, run_info, write_json
from attnaudit.utils.lock import folder_lock
from attnaudit.utils.progress import progress_bar

if TYPE_CHECKING:
    from attnaudit.config import AuditConfig, InputSteps, QueryRows
    from attnaudit.data.prepare import PreparedData
    from attnaudit.results.planted import PlantedSpec

logger = logging.getLogger(__name__)

#: bumped when the tables' layout or the values a setting gives change: a saved audit of another
#: schema is redone, not mixed in (3: the random draws became counter-based, utils/seeding.py)
SCHEMA_VERSION = 3
#: the adversarial search's version, in the settings of every audit that runs it (adversarial_epsilon
#: > 0): 2 added the vertex pass (issue 21). An audit saved by an older search has another
#: fingerprint, so it is redone (--replace) or refused with its name, never reused; one that skipped
#: the adversarial part keeps its fingerprint.
ADVERSARIAL_SEARCH_VERSION = 2
TABLES = ("single_weight", "removal", "items")


@dataclass
class AuditFrames:
    """Per-document results (schemas: docs/architecture.md).

    Attributes:
        single_weight: Test 1, one row per (document, site).
        removal: Test 2 and every measure, one row per (document, site, ranking).
        items: one row per (document, site, item): weight, each ranking's score and rank, text.
    """

    single_weight: pd.DataFrame
    removal: pd.DataFrame
    items: pd.DataFrame


#: documents per batch where the config leaves it open, by device type: on a GPU a batch costs mostly
#: its fixed Python work (measured: inference of 2,000 reviews 13-365 ms, the audit 1.0-1.5 s at 64 a
#: batch), so it takes many documents at once; on a CPU the tensor work dominates and grows with them
AUTO_BATCH_SIZE: dict[str, int] = {"cpu": 64, "cuda": 512}


def batch_size_for(config: AuditConfig, device: torch.device) -> int:
    """The configured batch size, else :data:`AUTO_BATCH_SIZE` for ``device`` (results do not depend
    on it)."""
    return config.batch_size or AUTO_BATCH_SIZE.get(device.type, AUTO_BATCH_SIZE["cpu"])


def audit_config_for(model: AttentionClassifier, config: AuditConfig, *, name: str) -> AuditConfig:
    """``config`` as it applies to ``model``: its default sites when none are chosen, and the
    rankings that apply to those sites.

    The paper's models audit every site by default; a transformer, which declares a site per layer
    and head, its first (the last layer's [CLS] attention, or hf-attnpool's pooling), since each
    site costs a full audit (``--sites`` chooses others). A ranking that does not apply to the
    audited sites (``rollout`` on a model without self-attention layers) is left out with a
    warning, so one ``--rankings`` list serves a run of several families.

    Raises:
        DataError: a site the model does not declare, or no ranking of the list applies.
    """
    try:
        sites = model.site_names(config.sites) if config.sites is not None else default_sites(model)
    except ValueError as err:
        raise DataError(f"--sites: {err}") from None
    kept, left_out = applicable_rankings(config.rankings, model, sites)
    if not kept:
        raise DataError(
            f"--rankings: none of {', '.join(config.rankings)} applies to {name} at site(s) "
            f"{', '.join(sites)} (they need {_needs(left_out)}); add a ranking that does, e.g. "
            "--rankings paper"
        )
    for ranking, failing in left_out.items():
        logger.warning("%s: ranking %s left out: it does not apply to site(s) %s", name, ranking,
                       ", ".join(failing))
    if config.items == "word" and not model.subword_tokens:
        logger.info("%s: its tokens are words already (--items word changes nothing)", name)
    if config.query_rows is not None and model.default_query_rows is None:
        logger.info("%s: no self-attention rows to choose (--query-rows applies to transformers)",
                    name)
    updates: dict[str, Any] = {}
    if config.sites is None and sites != model.site_names():
        logger.info("%s: auditing site(s) %s (the default; --sites chooses among %d)", name,
                    ", ".join(sites), len(model.site_names()))
        updates["sites"] = sites
    if kept != tuple(config.rankings):
        updates["rankings"] = kept
    return config.model_copy(update=updates) if updates else config


def _needs(left_out: dict[str, tuple[str, ...]]) -> str:
    from attnaudit.rankings import TRANSFORMER_RANKINGS

    if set(left_out) <= set(TRANSFORMER_RANKINGS):
        return "a transformer's attention layers (models hf, hf-attnpool)"
    return "other models or sites"


def default_config() -> AuditConfig:
    """The paper's audit settings (every ranking of the paper, every site of the model)."""
    from attnaudit.config import AuditConfig

    return AuditConfig()


def make_plan(model: AttentionClassifier, config: AuditConfig, *, run_seed: int = 0) -> AuditPlan:
    """Resolve a config against a model: its sites (validated), the seed (default: the run's).

    Raises:
        DataError: a site the model does not declare, or an unknown ranking (one line, with choices).
    """
    try:
        sites = model.site_names(config.sites)
    except ValueError as err:
        raise DataError(f"--sites: {err}") from None
    unknown = [r for r in config.rankings if r not in RANKINGS]
    if unknown:
        raise DataError(f"--rankings: unknown {', '.join(unknown)}; choose from {', '.join(RANKINGS)}")
    if "input" in config.erasure:
        try:
            replacement_id(model, config.input_erasure)  # a [MASK] the model has, before any work
        except ValueError as err:
            raise DataError(f"--input-erasure: {err}") from None
    return AuditPlan(
        sites=sites,
        rankings=tuple(config.rankings),
        path=config.path,
        gradient_output=config.gradient_output,
        random_draw=config.random_draw,
        seed=run_seed if config.seed is None else config.seed,
        erasure=config.erasure,
        input_erasure=config.input_erasure,
        input_steps=config.input_steps,
        attention_steps=cast("InputSteps", config.attention_steps or model.default_attention_steps),
        # Transformer settings resolve to the model's own; for the paper's models they are moot
        # (no query rows; their tokens are words), so one config serves a run of both families.
        query_rows=cast("QueryRows | None", config.query_rows or model.default_query_rows
                        if model.default_query_rows is not None else None),
        items=config.items if model.subword_tokens else "token",
        attribution_aggregate=config.attribution_aggregate,
        attribution_steps=config.attribution_steps,
        attribution_samples=config.attribution_samples,
        permutations=config.permutations,
        adversarial_epsilon=config.adversarial_epsilon,
    )


def rankings_meta(plan: AuditPlan) -> dict[str, dict[str, Any]]:
    """Display name and colour of each planned ranking, from the registry (for the report), and
    ``settings`` (captum method, steps, baseline, samples, aggregate) where a ranking has them."""
    meta: dict[str, dict[str, Any]] = {}
    for name in plan.rankings:
        meta[name] = {"label": RANKINGS[name].label, "color": RANKINGS[name].color}
        settings = ranking_settings(build_ranking(name, **ranking_options(plan)))
        if settings is not None:
            meta[name]["settings"] = settings
    return meta


def sites_meta(model: AttentionClassifier, plan: AuditPlan) -> dict[str, dict[str, Any]]:
    """Metadata of each planned site, from the model's declaration (for the report)."""
    return {name: model.site(name).to_dict() for name in plan.sites}


def _texts(model: AttentionClassifier, site: str, docs: Sequence[EncodedDocument],
           anchors: np.ndarray, lengths: np.ndarray) -> list[str]:
    """Item texts in the row-major order of :func:`attnaudit.erasure.engine.audit_batch`'s items."""
    declared = model.site(site)
    texts: list[str] = []
    for doc, anchor, n in zip(docs, anchors.tolist(), lengths.tolist(), strict=True):
        starts = model.word_starts(doc) if declared.item == WHOLE_WORD else None
        texts.extend(item_texts(declared, doc, int(anchor), starts)[:n])
    return texts


def _frame(parts: list[dict[str, Any]], keys: list[np.ndarray], model_name: str) -> pd.DataFrame:
    """One DataFrame from per-batch column dicts, rows ordered by ``keys`` (stable).

    Columns are concatenated as arrays first, so pandas builds each column once rather than a frame
    per batch and site. A column that is one value per part (the site, the ranking) is built from
    codes into its few distinct strings: materialising it as an object array cost as much as the
    rest of the table on the items table (~0.1 s per 1,000 documents).
    """
    lengths = [len(p["doc_id"]) for p in parts]
    order = np.argsort(np.concatenate(keys), kind="stable")
    columns: dict[str, Any] = {"model": pd.Series(model_name, index=pd.RangeIndex(len(order)),
                                                  dtype="str")}
    for name in parts[0]:
        if all(np.isscalar(p[name]) for p in parts):
            values = [p[name] for p in parts]
            distinct = list(dict.fromkeys(values))
            codes = np.repeat([distinct.index(v) for v in values], lengths)[order]
            columns[name] = pd.array(distinct, dtype="str").take(codes)
        else:
            # Lists (texts, ids, label names) stay object arrays: numpy's fixed-width unicode
            # would copy every character, and pandas converts to strings once anyway.
            columns[name] = np.concatenate([
                np.asarray(p[name], dtype=object if isinstance(p[name], list) else None)
                for p in parts
            ])[order]
    return pd.DataFrame(columns)


def audit_documents(
    model: AttentionClassifier,
    docs: Sequence[EncodedDocument],
    label_names: Sequence[str],
    plan: AuditPlan | None = None,
    *,
    model_name: str = "model",
    batch_size: int = 64,
    progress: bool = False,
    max_memory: int | None = None,
) -> AuditFrames:
    """Run the audit over documents; rows come back in the documents' order.

    Args:
        model: trained classifier (put in eval mode here), on the device to use.
        docs: encoded documents (e.g. a run's test split).
        label_names: class names indexed by label id.
        plan: what to compute (default: the paper's rankings at every site, seed 0).
        max_memory: bytes the recomputations may take (None: 2 GiB; see
            :mod:`attnaudit.erasure.memory`); the results do not depend on it.
    """
    if not docs:
        raise ValueError("no documents to audit")
    plan = plan or make_plan(model, default_config())
    model.eval()
    device = next(model.parameters()).device
    by_id = {doc.doc_id: doc for doc in docs}
    batches = make_batches(list(docs), hierarchical=model.hierarchical, batch_size=batch_size)
    collected = BatchColumns()
    # Row order of the tables: documents as given; within one, sites (then rankings or items) as
    # computed. Keys are integers built per batch, so no string column is mapped afterwards.
    position = {doc.doc_id: i for i, doc in enumerate(docs)}
    n_sites = len(plan.sites)
    keys: dict[str, list[np.ndarray]] = {"single_weight": [], "removal": [], "items": []}
    for batch in progress_bar(batches, desc=f"audit {model_name}", disable=not progress,
                              unit="batch"):
        # cuDNN runs GRUs in TF32 by default: 1e-4 off the CPU's logits (measured on an H100),
        # 5e-6 without it. The audit compares tiny output changes, so it keeps full float32.
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False), \
                memory_budget(max_memory):
            columns = audit_batch(model, batch.to(device), plan, label_names)
        batch_docs = [by_id[i] for i in batch.doc_ids]
        doc_keys = np.asarray([position[i] for i in batch.doc_ids], dtype=np.int64) * n_sites
        for site_index, (test1, item_columns) in enumerate(
            zip(columns.single_weight, columns.items, strict=True)
        ):
            item_columns["text"] = _texts(model, item_columns["site"], batch_docs, test1["anchor"],
                                   test1["n_items"])
            keys["single_weight"].append(doc_keys + site_index)
            keys["items"].append(doc_keys[item_columns.pop("row")] + site_index)
        for part in columns.removal:
            keys["removal"].append(doc_keys + plan.sites.index(part["site"]))
        collected.single_weight += columns.single_weight
        collected.removal += columns.removal
        collected.items += columns.items
    frames = []
    for name, parts in (("single_weight", collected.single_weight),
                        ("removal", collected.removal), ("items", collected.items)):
        frames.append(_frame(parts, keys[name], model_name))
    single, removal, items = frames
    for name in [c for c in single.columns if c.startswith("flip_")]:
        values = single[name].to_numpy(dtype=np.float64)  # 1.0 / 0.0, NaN where skipped
        single[name] = pd.arrays.BooleanArray(values == 1.0, np.isnan(values))
    return AuditFrames(single, removal, items)


def pick_documents(
    docs: Sequence[EncodedDocument], max_docs: int | None, seed: int
) -> list[EncodedDocument]:
    """A seeded random subset (in the original order) when ``max_docs`` is set, else all."""
    if max_docs is None or max_docs >= len(docs):
        return list(docs)
    keep = np.sort(np.random.default_rng(seed).choice(len(docs), size=max_docs, replace=False))
    return [docs[i] for i in keep]


#: plan settings added after audits were saved, with the value that reproduces those audits: left
#: out of the fingerprint at that value, so an audit saved before them stays complete
_LATER_SETTINGS: dict[str, Any] = {"attention_steps": "every", "query_rows": (None, "cls"),
                                   "items": "token"}


def _settings(plan: AuditPlan, config: AuditConfig) -> dict[str, Any]:
    """Everything that changes the tables: the resolved plan and the document selection."""
    settings = {**asdict(plan), "max_docs": config.max_docs, "schema_version": SCHEMA_VERSION}
    for name, old in _LATER_SETTINGS.items():
        if settings[name] in (old if isinstance(old, tuple) else (old,)):
            del settings[name]
    if plan.adversarial_epsilon > 0:
        settings["adversarial_search"] = ADVERSARIAL_SEARCH_VERSION
    return settings


def _summary_settings(config: AuditConfig) -> dict[str, Any]:
    """What changes summary.json but not the tables (the bootstrap's resamples and level): a change
    recomputes the summary from the saved tables and redoes nothing else."""
    return {"bootstrap": config.bootstrap, "confidence": config.confidence,
            "min_difference": dict(config.min_difference),
            "min_difference_relative": config.min_difference_relative}


def verdict_settings(config: AuditConfig) -> VerdictSettings:
    """The verdict's thresholds from the audit's settings (results/verdict.py; floors not given
    keep their defaults)."""
    return VerdictSettings(min_difference=dict(config.min_difference),
                           relative=config.min_difference_relative, confidence=config.confidence)


def _fingerprint(settings: dict[str, Any], model_file: Path, doc_ids: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True, default=list).encode())
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
    device: str = "cpu",
    replace: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Audit a trained run's test split; results go to ``run_dir/audit/`` (the full audit), or with
    ``name`` to ``run_dir/audits/NAME/``. Resumes after a crash.

    A named audit is an audit of its own beside the full one (other rankings, sites, documents):
    its own fingerprint, resumable parts and ``replace``; it never touches ``audit/``, and the full
    audit never touches it. Both hold the model folder's lock while they work (one audit of a
    model at a time).

    Args:
        config: audit settings; its ``seed`` defaults to the run's training seed.
        prepared: the data the pipeline prepared for training, reused when its vocabulary and
            labels are the run's; otherwise the test split is prepared from the run's settings.
        device: where the model runs (``cpu``, ``cuda``, ``cuda:N``).
        replace: overwrite a complete audit (of this name) made with other settings (otherwise
            refused).
        name: the named audit to write (a safe folder name: letters, digits, ``.``, ``_``, ``-``);
            None: the full audit.
    Returns:
        The summary (also written to ``summary.json`` in the audit's folder).
    Raises:
        DataError: bad settings or name, a complete audit with other settings and ``replace``
            False, or another command working on the run (its folder lock).
    """
    from attnaudit.checkpoint import load_run
    from attnaudit.data.prepare import prepare_data

    config = config or default_config()
    run_dir = Path(run_dir)
    try:
        out = audit_folder(run_dir, name)
    except ValueError as err:
        raise DataError(str(err)) from None
    here = world(device)
    loaded = load_run(run_dir, device=here.device(device))
    model, label_names = loaded.model, loaded.label_names
    model_name = run_dir.name
    config = audit_config_for(model, config, name=model_name)  # its default sites, its rankings
    plan = make_plan(model, config, run_seed=loaded.config.train.seed)
    reusable = (
        prepared is not None
        and prepared.vocab == loaded.vocab
        and list(prepared.label_names) == list(label_names)
    )
    if prepared is None or not reusable:
        prepared = prepare_data(loaded.data_config, vocab=loaded.vocab, label_names=label_names)
    docs = pick_documents(prepared.test, config.max_docs, plan.seed)
    doc_ids = [d.doc_id for d in docs]
    settings = _settings(plan, config)
    fingerprint = _fingerprint(settings, run_dir / "model.pt", doc_ids)
    with contextlib.ExitStack() as stack:
        # Rank 0 (the only process when run alone) holds the lock and decides; the others follow.
        decision: tuple[str, Any] = ("audit", None)
        if here.is_main:
            try:
                # the model folder's lock: its training must not replace model.pt under the audit
                stack.enter_context(folder_lock(run_dir, "attnaudit audit"))
                remove_stale_temp_files(out)  # left by an audit killed mid-write
                summary, current = _complete_audit(out, fingerprint, settings,
                                                   _summary_settings(config), replace=replace,
                                                   name=name)
                if summary is not None and not current:
                    logger.info("%s: tables complete, recomputing the summary (bootstrap %d)",
                                model_name, config.bootstrap)
                    summary = _summarize(out, _read_tables(out), model, plan, config, model_name,
                                         info=read_json(out / "audit_info.json"),
                                         planted=_planted_spec(loaded.data_config.path))
                    decision = ("done", summary)
                elif summary is not None:
                    logger.info("%s: audit already complete, reusing %s", model_name, out)
                    decision = ("done", summary)
                else:
                    _reset_parts(out, fingerprint)
            except DataError as err:
                decision = ("error", str(err))
        kind, value = here.broadcast(decision)
        if kind == "error":
            raise DataError(value)
        if kind == "done":
            return dict(value)
        # read on every rank before the chunks, so that a bad sidecar stops them all alike
        return _audit_chunks(out, model, docs, label_names, plan, config, model_name,
                             fingerprint, settings, progress, here,
                             planted=_planted_spec(loaded.data_config.path), name=name)


def _planted_spec(data_path: str) -> PlantedSpec | None:
    """The planted tokens when the run's data was made by ``attnaudit synth`` (a sidecar beside it)."""
    from attnaudit.results.planted import read_planted

    return None if data_path == "default" else read_planted(data_path)


def _complete_audit(
    out: Path, fingerprint: str, settings: dict[str, Any], summary_settings: dict[str, Any], *,
    replace: bool, name: str | None = None
) -> tuple[dict[str, Any] | None, bool]:
    """The saved summary when a complete audit with these settings exists (None when there is none,
    or ``replace`` allows redoing one with other settings), and whether it was made with
    ``summary_settings`` (else only the summary needs recomputing from the saved tables). A damaged
    summary.json of this audit gives ``({}, False)``: it is recomputed like an outdated one.

    Raises:
        DataError: a complete audit with other settings exists and ``replace`` is False.
    """
    if not (out / "summary.json").exists():
        return None, False
    info = read_json(out / "audit_info.json")
    if info.get("fingerprint") == fingerprint:
        try:
            summary: dict[str, Any] = read_json(out / "summary.json")
        except DataError:
            # damaged (cut short, edited): the tables it summarises are complete, so rewrite it
            logger.warning("%s is damaged (not valid JSON); rewriting it from the saved tables",
                           out / "summary.json")
            return {}, False
        return summary, info.get("summary_settings") == summary_settings
    if replace:
        return None, False
    before = info.get("config", {})
    changed = sorted(k for k in settings if before.get(k) != _jsonable(settings[k]))
    raise DataError(
        f"{out} holds a complete audit of {info.get('n_docs', '?')} documents made "
        f"with other settings ({', '.join(changed) or 'model or documents'}); "
        + ("pass --replace to overwrite it, or give this audit another --name"
           if name is not None else
           "pass --replace to overwrite it, or keep it and give this audit a --name")
    )


def _reset_parts(out: Path, fingerprint: str) -> None:
    """Keep ``parts/`` only if it holds chunks of this very audit (fingerprint), else start afresh."""
    parts_dir = out / "parts"
    marker = parts_dir / "fingerprint.txt"
    if parts_dir.exists() and (not marker.exists() or marker.read_text() != fingerprint):
        shutil.rmtree(parts_dir)  # parts of another model or config must not be mixed in
    parts_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def _audit_chunks(
    out: Path,
    model: AttentionClassifier,
    docs: list[EncodedDocument],
    label_names: Sequence[str],
    plan: AuditPlan,
    config: AuditConfig,
    model_name: str,
    fingerprint: str,
    settings: dict[str, Any],
    progress: bool,
    here: World,
    *,
    planted: PlantedSpec | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Audit this rank's chunks (reusing finished parts); rank 0 then writes tables and summary.

    Under torchrun chunk ``i`` belongs to rank ``i mod world size``; chunks are the resumable unit
    either way, so the merged tables equal a one-process audit's exactly.
    """
    parts_dir = out / "parts"
    here.barrier()  # rank 0 has prepared parts/
    chunks = [docs[i : i + config.chunk_docs] for i in range(0, len(docs), config.chunk_docs)]
    mine = [i for i in range(len(chunks)) if i % here.size == here.rank]
    batch_size = batch_size_for(config, next(model.parameters()).device)
    bar = progress_bar(total=sum(len(chunks[i]) for i in mine), desc=f"audit {model_name}",
                       unit="doc", disable=not progress)
    for index in mine:
        paths = {t: parts_dir / f"{t}-{index:05d}.parquet" for t in TABLES}
        if not all(p.exists() for p in paths.values()):
            frames = audit_documents(model, chunks[index], label_names, plan,
                                     model_name=model_name, batch_size=batch_size,
                                     max_memory=config.max_memory)
            _write_parquet(frames.items, paths["items"])
            _write_parquet(frames.removal, paths["removal"])
            _write_parquet(frames.single_weight, paths["single_weight"])  # last: marks the chunk done
        bar.update(len(chunks[index]))
    bar.close()
    here.barrier()  # every chunk is on disk
    if here.is_main:
        summary = _write_results(out, model, plan, config, model_name, fingerprint, settings,
                                 n_docs=len(docs), n_chunks=len(chunks), world_size=here.size,
                                 planted=planted, name=name)
    here.barrier()  # rank 0 has written the results
    return summary if here.is_main else dict(read_json(out / "summary.json"))


def _write_results(
    out: Path,
    model: AttentionClassifier,
    plan: AuditPlan,
    config: AuditConfig,
    model_name: str,
    fingerprint: str,
    settings: dict[str, Any],
    *,
    n_docs: int,
    n_chunks: int,
    world_size: int,
    planted: PlantedSpec | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Merge the parts into the final tables, then write audit_info.json and summary.json (last).

    ``planted``: the tokens planted by ``attnaudit synth`` in the run's data, scored in the summary.
    ``name``: a named audit's name (``audit_info.json`` ``audit_name``); None: the full audit.
    """
    parts_dir = out / "parts"
    tables = {
        t: pd.concat([pd.read_parquet(parts_dir / f"{t}-{i:05d}.parquet") for i in range(n_chunks)],
                     ignore_index=True)
        for t in TABLES
    }
    for table, frame in tables.items():
        _write_parquet(frame, out / f"{table}.parquet")
    info = run_info(plan.seed, _jsonable(settings))
    info.update(fingerprint=fingerprint, n_docs=n_docs, threads=torch.get_num_threads(),
                device=str(next(model.parameters()).device),
                batch_size=batch_size_for(config, next(model.parameters()).device),
                chunk_docs=config.chunk_docs, processes=world_size,
                rankings_meta=rankings_meta(plan), sites_meta=sites_meta(model, plan))
    if name is not None:
        info["audit_name"] = name
    return _summarize(out, tables, model, plan, config, model_name, info=info, planted=planted)


def _read_tables(out: Path) -> dict[str, pd.DataFrame]:
    """The merged tables of a complete audit."""
    return {t: pd.read_parquet(out / f"{t}.parquet") for t in TABLES}


def model_architecture(model: AttentionClassifier) -> dict[str, Any] | None:
    """What a transformer's report states about it (``summary["architecture"]``): family, layers,
    heads, how heads share keys and values, and where it classifies; None for other models.

    A model that describes itself (``describe_architecture()``) is taken at its word; otherwise
    this is read from its Hugging Face config (the attributes every family's config has).
    """
    describe = getattr(model, "describe_architecture", None)
    if callable(describe):
        described: dict[str, Any] = describe()
        return described
    config = getattr(getattr(model, "hf", None), "config", None)
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(getattr(model, "num_heads", getattr(text, "num_attention_heads", 0)))
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    grouping = ("every head with its own keys and values; a layer site averages the heads"
                if kv_heads == heads else
                f"{heads} query heads share {kv_heads} key/value heads ({heads // kv_heads} per "
                "group); a head site is one query head, a layer site averages the query heads")
    pooled = model.kind != "hf"  # hf-attnpool pools every token's final state (site 'pool')
    family = getattr(model, "family", None)  # the generic host's descriptor (decoders: last token)
    decoder = bool(getattr(family, "decoder", False))
    return {
        "family": str(getattr(config, "model_type", "unknown")),
        "layers": int(getattr(model, "num_layers", getattr(config, "num_hidden_layers", 0))),
        "heads": heads,
        "kv_heads": kv_heads,
        "head_grouping": grouping,
        "classification": ("an additive attention pooling of every token's final state (site "
                           "pool)" if pooled else "the last non-padding token's final state "
                           "(causal attention)" if decoder else "the first token's final state "
                           "([CLS] or <s>)"),
    }


def defaults_note(model: AttentionClassifier, plan: AuditPlan) -> dict[str, Any] | None:
    """summary.json ``defaults``: the sites, query rows and attention steps the model is audited
    with when none are chosen, whether this audit used them, and why (one sentence); None for a
    model without its own default sites (:meth:`AttentionClassifier.audited_by_default`: the
    paper's models, hf-attnpool)."""
    from attnaudit.results.advice import DEFAULTS_WHY

    own = model.audited_by_default()
    if own is None:
        return None
    used = (tuple(plan.sites) == tuple(own) and plan.query_rows == model.default_query_rows
            and plan.attention_steps == model.default_attention_steps)
    return {"sites": list(own), "query_rows": model.default_query_rows,
            "attention_steps": model.default_attention_steps, "used": used, "why": DEFAULTS_WHY}


def add_model_notes(summary: dict[str, Any], model: AttentionClassifier, plan: AuditPlan,
                    model_name: str, *, run: str | None) -> None:
    """What a summary says about the model beside its numbers: the transformer's architecture,
    its default sites and why, and per site why documents cannot flip, with where decisions can
    move when most cannot (logged too). ``run``: the model folder the advice's command names;
    None for a live audit (the advice then gives the ``attnaudit.audit`` call)."""
    from attnaudit.results.advice import summary_advice

    architecture = model_architecture(model)
    if architecture is not None:
        summary["architecture"] = architecture
    defaults = defaults_note(model, plan)
    if defaults is not None:
        summary["defaults"] = defaults
    summary["cannot_flip"] = summary_advice(
        summary, num_layers=getattr(model, "num_layers", None), query_rows=plan.query_rows,
        run=run)
    for site_advice in summary["cannot_flip"].values():
        if site_advice.get("message"):
            logger.warning("%s: %s", model_name, site_advice["message"])


def _summarize(
    out: Path,
    tables: dict[str, pd.DataFrame],
    model: AttentionClassifier,
    plan: AuditPlan,
    config: AuditConfig,
    model_name: str,
    *,
    info: dict[str, Any],
    planted: PlantedSpec | None = None,
) -> dict[str, Any]:
    """summary.json from the merged tables; ``info`` (the audit's settings) is written first as
    audit_info.json, with the summary's (the bootstrap's) settings added."""
    from attnaudit.results.summary import summarize

    summary = summarize(
        tables["single_weight"], tables["removal"], model=model_name,
        rankings_meta=rankings_meta(plan), sites_meta=sites_meta(model, plan),
        items=tables["items"], planted=planted,
        bootstrap=config.bootstrap, confidence=config.confidence, seed=plan.seed,
    )
    # the model folder: above audit/, or above audits/NAME/ (audit_info.json names a named audit)
    model_dir = out.parent.parent if info.get("audit_name") is not None else out.parent
    metrics_file = model_dir / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.is_file() else None
    summary["verdict"] = assess(summary, metrics, verdict_settings(config))
    warning = summary.get("prediction", {}).get("warning")
    if warning:
        logger.warning("%s: %s", model_name, warning)
    if summary["verdict"]["status"] == "withheld":
        logger.warning("%s: no verdict on attention: %s", model_name,
                       "; ".join(summary["verdict"]["reasons"]))
    add_model_notes(summary, model, plan, model_name, run=str(model_dir))
    info["summary_settings"] = _summary_settings(config)
    write_json(out / "audit_info.json", info)
    write_json(out / "summary.json", summary)  # last: marks the audit complete
    return summary


__all__ = [
    "AUDIT_DIR",
    "AuditFrames",
    "audit_documents",
    "audit_run",
    "make_plan",
    "pick_documents",
]
