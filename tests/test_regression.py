"""The rebuilt engine gives the same Test 1 / Test 2 values as the engine before it.

``tests/data/regression/`` holds six tiny trained models (one per paper variant), 40 fixed documents,
and the per-document tables the pre-rebuild engine (commit f41d61c) wrote for them; see
``make_fixture.py`` there. Compared: every Test 1 column and every Test 2 column at the paper's site
(the last attention layer), on the fast and the naive path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from attnaudit.data.types import EncodedDocument
from attnaudit.erasure.audit import audit_documents, make_plan
from attnaudit.models import MODEL_NAMES, build_model, parse_model_name

FIXTURE = Path(__file__).parent / "data" / "regression"
LABELS = ["a", "b", "c"]


def _model(name: str) -> torch.nn.Module:
    settings = json.loads((FIXTURE / "config.json").read_text())
    kind, encoder = parse_model_name(name)
    model = build_model(kind, encoder, vocab_size=settings["vocab"], num_classes=settings["classes"],
                        embedding_dim=settings["embedding_dim"], hidden=settings["hidden"],
                        dropout=settings["dropout"]).double()
    model.load_state_dict(torch.load(FIXTURE / f"{name}.pt", weights_only=True))
    return model.eval()


def _documents() -> list[EncodedDocument]:
    records = json.loads((FIXTURE / "documents.json").read_text())
    return [EncodedDocument(r["doc_id"], r["label"], r["sentences"],
                            [[f"w{w}" for w in s] for s in r["sentences"]]) for r in records]


@pytest.mark.parametrize("path", ["fast", "naive"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_values_as_before_the_rebuild(name: str, path: str, one_thread: None) -> None:
    from attnaudit.config import AuditConfig

    model = _model(name)
    plan = make_plan(model, AuditConfig(path=path), run_seed=0)
    frames = audit_documents(model, _documents(), LABELS, plan, batch_size=7)
    paper_site = model.sites()[0].name

    expected = pd.read_json(FIXTURE / f"{name}-single_weight.json", orient="records")
    got = frames.single_weight[frames.single_weight["site"] == paper_site].reset_index(drop=True)
    assert got["doc_id"].tolist() == expected["doc_id"].tolist()
    for column in expected.columns.drop(["model"]):
        want, have = expected[column], got[column]
        if column.startswith("flip_"):
            # Skipped one-item documents now hold null (was False): compare where audited.
            audited = ~got["skipped"]
            assert have[audited].astype(bool).tolist() == want[audited].astype(bool).tolist(), column
            assert have[~audited].isna().all(), column
        elif want.dtype.kind == "f":
            np.testing.assert_allclose(have.to_numpy(float), want.to_numpy(float), rtol=1e-9,
                                       atol=1e-12, err_msg=column)
        else:
            assert have.tolist() == want.tolist(), column

    expected = pd.read_json(FIXTURE / f"{name}-removal.json", orient="records")
    got = frames.removal[frames.removal["site"] == paper_site].reset_index(drop=True)
    assert got[["doc_id", "ranking"]].values.tolist() == expected[["doc_id", "ranking"]].values.tolist()
    for column in expected.columns.drop(["model"]):
        want, have = expected[column], got[column]
        if want.dtype.kind == "f":
            np.testing.assert_allclose(have.to_numpy(float), want.to_numpy(float), rtol=1e-9,
                                       atol=1e-12, err_msg=column)
        else:
            assert have.tolist() == want.tolist(), column
