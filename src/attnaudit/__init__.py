"""attnaudit: is my text classifier's attention a faithful account of what the model used?

The public API, imported lazily so that light modules (reports) never pay for torch:

* :func:`load_run`, :func:`audit`, :class:`AuditConfig`: audit a trained run from a notebook;
* :func:`build_model`, :func:`build_ranking`, :data:`RANKINGS`: the model and ranking registries;
* :func:`run_pipeline`, :func:`train_run`, :func:`audit_run`, :func:`build_report`: the CLI's stages.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_run": "attnaudit.checkpoint",
    "LoadedRun": "attnaudit.checkpoint",
    "audit": "attnaudit.api",
    "AuditConfig": "attnaudit.config",
    "AuditFrames": "attnaudit.erasure.audit",
    "audit_documents": "attnaudit.erasure.audit",
    "audit_run": "attnaudit.erasure.audit",
    "build_model": "attnaudit.models",
    "AttentionClassifier": "attnaudit.models",
    "ModelOutput": "attnaudit.models",
    "Site": "attnaudit.models",
    "MEASURES": "attnaudit.measures",
    "build_ranking": "attnaudit.rankings",
    "RANKINGS": "attnaudit.rankings",
    "Ranking": "attnaudit.rankings",
    "Document": "attnaudit.data.types",
    "DataError": "attnaudit.errors",
    "load_documents": "attnaudit.data.loaders",
    "train_run": "attnaudit.train",
    "run_pipeline": "attnaudit.pipeline",
    "build_report": "attnaudit.reports.html",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'attnaudit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
