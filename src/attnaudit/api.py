"""The Python API for notebooks: load a trained run, audit any documents, get DataFrames.

A transformers classifier in memory is audited the same way, with its tokenizer
(:mod:`attnaudit.live`): ``attnaudit.audit(model, texts, tokenizer=tokenizer)`` returns the frames,
the summary, and ``write_report(folder)``.

Example:
    >>> import attnaudit
    >>> run = attnaudit.load_run("runs/demo/models/han-rnn")                 # doctest: +SKIP
    >>> frames = attnaudit.audit(run, ["A gripping film. The ending drags."])  # doctest: +SKIP
    >>> frames.removal.groupby("ranking")["fraction_removed"].median()      # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from attnaudit.checkpoint import LoadedRun, load_run
from attnaudit.config import AuditConfig
from attnaudit.data.batching import encode_documents
from attnaudit.data.prepare import prepare_data
from attnaudit.data.types import Document
from attnaudit.erasure.audit import (
    AuditFrames,
    audit_config_for,
    audit_documents,
    batch_size_for,
    make_plan,
)


def audit(
    run: LoadedRun | str | os.PathLike[str] | Any,
    documents: Iterable[Document | str] | None = None,
    config: AuditConfig | None = None,
    *,
    progress: bool = False,
    tokenizer: Any = None,
    **live: Any,
) -> AuditFrames:
    """Run Test 1 and Test 2 on documents with a trained run's model.

    Args:
        run: a :class:`LoadedRun` or its folder; or a transformers ``PreTrainedModel`` sequence
            classifier in memory, with ``tokenizer`` (returns a :class:`attnaudit.live.LiveAudit`:
            the frames, ``summary`` and ``write_report``; ``live`` options: ``dtype``,
            ``max_tokens``, ``name``, see :func:`attnaudit.live.audit_live`).
        documents: :class:`Document` objects (their labels must be among the run's classes) or
            plain strings (unlabelled: their ``label`` column is left empty; flips are judged
            against the model's own prediction anyway). ``None`` audits the run's test split.
        config: audit settings (rankings, sites, seed, ...); defaults to the paper's rankings at
            the model's default sites (every site of the paper's models, a transformer's first),
            with the run's seed. Rankings that do not apply to the model are left out (see
            :func:`attnaudit.erasure.audit.audit_config_for`).
    Returns:
        :class:`AuditFrames` with ``single_weight`` (one row per document and site), ``removal``
        (one row per document, site and ranking) and ``items`` (one row per document, site and item)
        DataFrames.
    """
    if not isinstance(run, (LoadedRun, str, os.PathLike)):
        from attnaudit.live import audit_live

        if tokenizer is None:
            raise ValueError("auditing a model object needs its tokenizer: audit(model, texts, "
                             "tokenizer=tokenizer)")
        if documents is None:
            raise ValueError("auditing a model object needs the documents to audit")
        return audit_live(run, documents, tokenizer=tokenizer, config=config, progress=progress,
                          **live)
    loaded = run if isinstance(run, LoadedRun) else load_run(Path(run))
    name = loaded.run_dir.name
    config = audit_config_for(loaded.model, config or AuditConfig(), name=name)
    plan = make_plan(loaded.model, config, run_seed=loaded.config.train.seed)
    run_audit = partial(audit_documents, model_name=name,
                        batch_size=batch_size_for(config, next(loaded.model.parameters()).device),
                        progress=progress)
    if documents is None:
        docs = prepare_data(loaded.data_config, vocab=loaded.vocab, label_names=loaded.label_names).test
        return run_audit(loaded.model, docs, loaded.label_names, plan)
    given = list(documents)
    unlabelled = {f"doc{i}" for i, doc in enumerate(given) if not isinstance(doc, Document)}
    as_docs = [
        doc
        if isinstance(doc, Document)
        else Document(doc_id=f"doc{i}", text=doc, label=loaded.label_names[0])
        for i, doc in enumerate(given)
    ]
    # The run's own tokenizer: a transformer's subwords, or the project's words (None).
    encoded = encode_documents(as_docs, loaded.vocab, loaded.label_names, loaded.data_config.limits,
                               tokenizer=loaded.data_config.tokenizer)
    frames = run_audit(loaded.model, encoded, loaded.label_names, plan)
    for frame in (frames.single_weight, frames.removal):
        frame["label"] = frame["label"].where(~frame["doc_id"].isin(unlabelled), None)
    return frames


__all__ = ["AuditConfig", "AuditFrames", "LoadedRun", "audit", "load_run"]
