"""Measures of erasure curves, behind one registry (torch-free).

Adding a measure: write one file with a class that has ``name``, ``label``, ``needs``, ``columns``
and ``summarize`` (see :class:`Measure`), and add one line to :data:`MEASURES`. Its columns reach
``removal.parquet`` and its summary ``summary.json`` and the report with no other edit.
"""

from __future__ import annotations

from attnaudit.measures.base import CurveArrays, Measure, quantile, share
from attnaudit.measures.first_flip import FLIP_CURVE_FRACTIONS, FirstFlip, first_flip_steps

#: registry: measure name -> instance, in report order
MEASURES: dict[str, Measure] = {
    FirstFlip.name: FirstFlip(),
}

__all__ = [
    "FLIP_CURVE_FRACTIONS",
    "MEASURES",
    "CurveArrays",
    "FirstFlip",
    "Measure",
    "first_flip_steps",
    "quantile",
    "share",
]
