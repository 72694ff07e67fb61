"""Torch-free results layer: every summary and example computed from an audit's saved tables.

* :func:`~attnaudit.results.summary.summarize`: the ``summary.json`` the audit writes and the report
  reads, so the two cannot disagree;
* :func:`~attnaudit.results.examples.select_examples` and
  :func:`~attnaudit.results.examples.example_records`: the report's example documents;
* :func:`~attnaudit.results.tables.read_audit`: an audit folder's files.
"""

from attnaudit.results.examples import CATEGORIES, ExampleChoice, example_records, select_examples
from attnaudit.results.summary import (
    DEGENERATE_SHARE,
    FLIP_CURVE_FRACTIONS,
    SCHEMA_VERSION,
    summarize,
)
from attnaudit.results.tables import AuditTables, read_audit

__all__ = [
    "CATEGORIES",
    "DEGENERATE_SHARE",
    "FLIP_CURVE_FRACTIONS",
    "SCHEMA_VERSION",
    "AuditTables",
    "ExampleChoice",
    "example_records",
    "read_audit",
    "select_examples",
    "summarize",
]
