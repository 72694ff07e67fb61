"""Measures of erasure curves, behind one registry (torch-free).

Adding a measure: write one file with a class that has ``name``, ``label``, ``needs``, ``columns``
and ``summarize`` (see :class:`Measure`), and add one line to :data:`MEASURES`. Its columns reach
``removal.parquet`` and its summary ``summary.json`` and the report with no other edit.
"""

from __future__ import annotations

from attnaudit.measures.base import CurveArrays, Measure, at_step, quantile, share
from attnaudit.measures.decision_flip import DecisionFlip
from attnaudit.measures.eraser import ERASER_FRACTIONS, Eraser, eraser_step
from attnaudit.measures.first_flip import FLIP_CURVE_FRACTIONS, FirstFlip, first_flip_steps

#: registry: measure name -> instance, in report order
MEASURES: dict[str, Measure] = {
    FirstFlip.name: FirstFlip(),
    DecisionFlip.name: DecisionFlip(),
    Eraser.name: Eraser(),
}

__all__ = [
    "ERASER_FRACTIONS",
    "FLIP_CURVE_FRACTIONS",
    "MEASURES",
    "CurveArrays",
    "DecisionFlip",
    "Eraser",
    "FirstFlip",
    "Measure",
    "at_step",
    "eraser_step",
    "first_flip_steps",
    "quantile",
    "share",
]
