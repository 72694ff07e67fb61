"""The tolerance policy's table comparison (tests/tolerances.py): each column to its kind, and
every float column the audit writes has a kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from model_fixtures import LABELS, random_docs, random_model
from tolerances import ATTENTION, EPS32, MEASURE, assert_tables_close, column_kind

from attnaudit.erasure.audit import audit_documents
from attnaudit.erasure.engine import AuditPlan


def _table() -> pd.DataFrame:
    return pd.DataFrame({"doc_id": ["a", "b"], "perm_median_tvd": [0.0006381625066230467, 0.01],
                         "a_max": [0.5, 0.25], "fraction_removed": [1 / 3, 2 / 7],
                         "adv_jsd": [0.6, np.nan]})


def test_each_column_is_compared_to_its_kind() -> None:
    expected = _table()
    # issue 19's case: a TVD of 6e-4 that a chunked audit rounds otherwise, 1.4e-9 away
    rounded = expected.assign(perm_median_tvd=[0.0006381639024091446, 0.01],
                              a_max=[0.5 + 8 * EPS32, 0.25], adv_jsd=[0.6 * (1 + 1e-4), np.nan])
    assert_tables_close(rounded, expected, obj="rounded")
    for column, value in (("perm_median_tvd", 0.0006381625 + 2 * MEASURE.atol),  # a real change
                          ("a_max", 0.5 + 2 * ATTENTION.atol),
                          ("fraction_removed", np.nextafter(1 / 3, 1.0)),  # exact: one ulp
                          ("adv_jsd", 0.61)):
        changed = expected.copy()
        changed.loc[0, column] = value
        with pytest.raises(AssertionError, match=column):
            assert_tables_close(changed, expected, obj="changed")
    with pytest.raises(AssertionError, match="doc_id"):
        assert_tables_close(expected.assign(doc_id=["a", "c"]), expected, obj="ids")
    with pytest.raises(AssertionError, match=r"tolerances\.py"):
        assert_tables_close(expected.assign(mystery=1.0), expected.assign(mystery=1.0), obj="new")


def test_every_float_column_of_an_audit_has_a_kind() -> None:
    """A new measure's columns need a kind (and its derivation) before tables compare them."""
    model = random_model("flan-rnn", seed=2, dtype=torch.float32)
    plan = AuditPlan(sites=("token",), rankings=("random", "attention", "gradient"),
                     erasure=("attention", "input"), permutations=3)
    frames = audit_documents(model, random_docs(3, seed=2), LABELS, plan)
    for table in (frames.single_weight, frames.removal):
        floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c].dtype)]
        assert floats
        assert [c for c in floats if column_kind(c) is None] == []
