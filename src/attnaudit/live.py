"""Auditing a transformers classifier already in memory (a notebook's ``model`` and ``tokenizer``).

``attnaudit.audit(model, texts, tokenizer=tokenizer)`` hosts the ``PreTrainedModel`` itself (no copy:
it is switched to attnaudit's registered attention function, which without an audit plan computes
exactly transformers' SDPA), encodes the texts with the tokenizer (subwords, no special tokens: the
host adds the tokenizer's own), audits them and returns the same frames as a run's audit plus the
summary (:class:`LiveAudit`); :meth:`LiveAudit.write_report` writes the HTML report from them.

Device and dtype: the model stays where it is. On a CPU a half-precision model (bf16/fp16) is audited
in float32 (converted in place, logged), since CPU half arithmetic is both slow and too coarse for
erasure's small logit differences; ``dtype=`` chooses otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attnaudit.config import AuditConfig
from attnaudit.data.types import Document, EncodedDocument
from attnaudit.erasure.audit import (
    AuditFrames,
    audit_config_for,
    audit_documents,
    batch_size_for,
    make_plan,
    rankings_meta,
    sites_meta,
)
from attnaudit.models.hf_generic import HFClassifier

logger = logging.getLogger(__name__)

#: the longest document audited (subwords) when the tokenizer does not say less: the project's
#: default ``limits.max_tokens``
DEFAULT_MAX_TOKENS = 400


@dataclass
class LiveAudit(AuditFrames):
    """The audit's frames (:class:`AuditFrames`), its ``summary`` (``summary.json``'s content) and
    the hosted model (``model``: what was audited, for further inspection)."""

    summary: dict[str, Any] = field(default_factory=dict)
    model: HFClassifier | None = None
    model_name: str = "model"
    #: ``metrics.json``'s content when every document was labelled (accuracy on the audited
    #: documents, their majority class's share): what the verdict's accuracy precondition reads
    metrics: dict[str, Any] | None = None

    def write_report(self, out: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Write the tables, ``summary.json`` and ``report.html`` under the folder ``out`` (a model
        folder as ``attnaudit report`` reads it); returns the report's path.

        ``name``: write this audit as the named audit ``out/audits/NAME/`` (beside an audit already
        there, e.g. one with other rankings; the report shows each) instead of ``out/audit/``.

        Raises:
            ValueError: ``name`` is not a safe folder name (letters, digits, ``.``, ``_``, ``-``).
        """
        from attnaudit.reports.html import build_report
        from attnaudit.results.tables import audit_folder
        from attnaudit.utils.io import write_json

        folder = Path(out)
        audit = audit_folder(folder, name)
        audit.mkdir(parents=True, exist_ok=True)
        for table in ("single_weight", "removal", "items"):
            getattr(self, table).to_parquet(audit / f"{table}.parquet", index=False)
        # a named audit keeps the model folder's metrics.json (the full audit's preconditions read
        # it); it writes one only where there is none
        if self.metrics is not None and (name is None or not (folder / "metrics.json").exists()):
            write_json(folder / "metrics.json", self.metrics)
        write_json(audit / "summary.json", self.summary)
        return build_report(folder)


def host(model: Any, tokenizer: Any, *, dtype: torch.dtype | None = None) -> HFClassifier:
    """The audit's host of a transformers sequence classifier ``model`` with its ``tokenizer``.

    Raises:
        ValueError: one line: not a sequence classifier, a family that is not hosted, a tokenizer
            that is not a fast one.
    """
    from transformers import PreTrainedModel

    from attnaudit.models.hf_generic import GenericHFClassifier

    if not isinstance(model, PreTrainedModel) or not hasattr(model.config, "num_labels"):
        raise ValueError(f"expected a transformers PreTrainedModel, got {type(model).__name__}")
    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise ValueError(f"{type(model).__name__} is not a sequence classifier "
                         "(AutoModelForSequenceClassification)")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("give the model's fast tokenizer (AutoTokenizer, tokenizer.json)")
    device = next(model.parameters()).device
    current = next(model.parameters()).dtype
    if dtype is not None:
        torch.nn.Module.to(model, dtype)
    elif device.type == "cpu" and current != torch.float32:
        logger.info("auditing a %s model on the CPU in float32 (converted in place; dtype= to keep "
                    "it)", current)
        model.float()
    if model.config.model_type == "bert":
        hosted: HFClassifier = HFClassifier(
            config=model.config, cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id, unk_token_id=tokenizer.unk_token_id,
            mask_token_id=tokenizer.mask_token_id, model=model)
        hosted.set_vocabulary(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))
        hosted.set_tokenizer(tokenizer)
    else:
        hosted = GenericHFClassifier.from_model(model, tokenizer)
    return hosted.to(device).eval()


def label_names_of(model: Any) -> list[str]:
    """The classes of ``model`` (``config.id2label`` in index order)."""
    return [str(model.config.id2label[i]) for i in range(int(model.config.num_labels))]


def encode_texts(documents: Sequence[Document], tokenizer: Any, label_names: Sequence[str],
                 max_tokens: int) -> list[EncodedDocument]:
    """Each document's subwords (no special tokens), cut to ``max_tokens``, as one sentence.

    Raises:
        ValueError: one line: a label that is not the model's.

    An id 0 inside a text is a token like any other (Qwen2's and Llama-3's "!"): batches mark
    padding by the documents' lengths (``Batch.mask``), not by an id.
    """
    ids = tokenizer([d.text for d in documents], add_special_tokens=False, truncation=True,
                    max_length=max_tokens)["input_ids"]
    encoded = []
    for doc, row in zip(documents, ids, strict=True):
        if doc.label not in label_names:
            raise ValueError(f"document {doc.doc_id}: label {doc.label!r} is not among the model's "
                             f"({', '.join(label_names)})")
        if row:
            encoded.append(EncodedDocument(doc.doc_id, label_names.index(doc.label), [list(row)],
                                           [tokenizer.convert_ids_to_tokens(list(row))]))
    return encoded


def audit_live(
    model: Any, documents: Iterable[Document | str], *, tokenizer: Any,
    config: AuditConfig | None = None, dtype: torch.dtype | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS, name: str = "model", progress: bool = False,
) -> LiveAudit:
    """Audit ``model`` (a transformers classifier in memory) on ``documents``; see the module.

    Plain strings are unlabelled (their ``label`` column is left empty); flips are judged against
    the model's own prediction. Returns the frames, the summary and the hosted model.
    """
    from attnaudit.results.summary import summarize

    hosted = host(model, tokenizer, dtype=dtype)
    names = label_names_of(model)
    given = list(documents)
    unlabelled = {f"doc{i}" for i, doc in enumerate(given) if not isinstance(doc, Document)}
    as_docs = [doc if isinstance(doc, Document) else Document(f"doc{i}", doc, names[0])
               for i, doc in enumerate(given)]
    from attnaudit.models.hf_generic import GenericHFClassifier

    specials = 2  # BERT's [CLS] and [SEP]
    if isinstance(hosted, GenericHFClassifier):
        specials = len(hosted.prefix_ids) + len(hosted.suffix_ids)
    limit = int(getattr(tokenizer, "model_max_length", max_tokens + specials)) - specials
    encoded = encode_texts(as_docs, tokenizer, names, min(max_tokens, max(limit, 1)))
    config = audit_config_for(hosted, config or AuditConfig(), name=name)
    plan = make_plan(hosted, config, run_seed=config.seed or 0)
    device = next(hosted.parameters()).device
    frames = audit_documents(hosted, encoded, names, plan, model_name=name,
                             batch_size=batch_size_for(config, device), progress=progress)
    for frame in (frames.single_weight, frames.removal):
        frame["label"] = frame["label"].where(~frame["doc_id"].isin(unlabelled), None)
    summary = summarize(frames.single_weight, frames.removal, model=name,
                        rankings_meta=rankings_meta(plan), sites_meta=sites_meta(hosted, plan),
                        items=frames.items, bootstrap=config.bootstrap,
                        confidence=config.confidence, seed=plan.seed)
    from attnaudit.erasure.audit import add_model_notes, verdict_settings
    from attnaudit.results.verdict import assess

    metrics = None if unlabelled else live_metrics(frames.single_weight, name)
    summary["verdict"] = assess(summary, metrics, verdict_settings(config))
    add_model_notes(summary, hosted, plan, name, run=None)
    return LiveAudit(frames.single_weight, frames.removal, frames.items, summary=summary,
                     model=hosted, model_name=name, metrics=metrics)


def live_metrics(single_weight: Any, name: str) -> dict[str, Any] | None:
    """Accuracy on the audited documents and their majority class's share (``metrics.json``'s
    names), from each document's label and prediction (one row per document and site; every site
    of a document has the same ones). None when nothing was audited.

    The majority baseline is the audited documents' own most frequent label: nothing was trained
    here, so there is no training split to take it from (a run's metrics.json takes the training
    split's majority label and scores it on the test set). That is the stricter bar when the audited
    set's balance differs from training's."""
    per_doc = single_weight.drop_duplicates("doc_id")[["label", "prediction"]]
    if per_doc.empty:
        return None
    labels = per_doc["label"].astype(str)
    counts = labels.value_counts()
    return {"model": name, "test_accuracy": float((labels == per_doc["prediction"].astype(str)).mean()),
            "num_test": len(per_doc), "majority_label": str(counts.index[0]),
            "majority_test_accuracy": float(counts.iloc[0] / len(per_doc)),
            "source": "attnaudit.audit (live): the audited documents"}


__all__ = ["LiveAudit", "audit_live", "encode_texts", "host", "label_names_of", "live_metrics"]
