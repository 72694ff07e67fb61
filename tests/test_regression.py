"""The rebuilt engine gives the same Test 1 / Test 2 values as the engine before it.

``tests/data/regression/`` holds six tiny trained models (one per paper variant), 40 fixed documents,
and the per-document tables the pre-rebuild engine (commit f41d61c) wrote for them; see
``make_fixture.py`` there. Compared: every Test 1 column and every Test 2 column at the paper's site
(the last attention layer), on the fast and the naive path.

Except the random draws: the fixture's random item and random ranking came from per-document NumPy
generators, which counter-based (Philox) draws replaced, keyed the same way but giving other values.
Test 1's random columns are checked against the fixture wherever the new random item is an item
another removal took in the same document (then its values are pinned there); the ``random``
ranking's curve values are not compared (its order is a new draw).
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
from attnaudit.models import PAPER_MODEL_NAMES, build_model, parse_model_name

FIXTURE = Path(__file__).parent / "data" / "regression"
LABELS = ["a", "b", "c"]
#: Test 1 columns that follow from the random item (drawn by the old generator in the fixture)
RANDOM_COLUMNS = ("item_random", "a_random", "js_random", "flip_random", "delta_a", "delta_js")
#: removal.parquet columns that follow from the ranking's order (a new draw for ``random``)
CURVE_COLUMNS = ("removed_at_flip", "fraction_removed", "mass_removed", "never_flipped")


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
@pytest.mark.parametrize("name", PAPER_MODEL_NAMES)
def test_same_values_as_before_the_rebuild(name: str, path: str, one_thread: None) -> None:
    from attnaudit.config import AuditConfig

    model = _model(name)
    plan = make_plan(model, AuditConfig(path=path), run_seed=0)
    frames = audit_documents(model, _documents(), LABELS, plan, batch_size=7)
    paper_site = model.sites()[0].name

    expected = pd.read_json(FIXTURE / f"{name}-single_weight.json", orient="records")
    got = frames.single_weight[frames.single_weight["site"] == paper_site].reset_index(drop=True)
    assert got["doc_id"].tolist() == expected["doc_id"].tolist()
    _check_random_item(got, expected)
    for column in expected.columns.drop(["model", *RANDOM_COLUMNS]):
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
    drawn = (expected["ranking"] == "random").to_numpy()
    for column in expected.columns.drop(["model"]):
        want, have = expected[column], got[column]
        if column in CURVE_COLUMNS:  # the random ranking's order is a new draw
            want, have = want[~drawn], have[~drawn]
        if want.dtype.kind == "f":
            np.testing.assert_allclose(have.to_numpy(float), want.to_numpy(float), rtol=1e-9,
                                       atol=1e-12, err_msg=column)
        else:
            assert have.tolist() == want.tolist(), column


def _check_random_item(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The random item's values equal the fixture's values of the same item taken by another
    removal in the same document (wherever one did), and the deltas follow from them."""
    # the fixture's own random item counts too: its values are pinned as well
    others = [c.removeprefix("item_") for c in expected.columns if c.startswith("item_")]
    audited = ~got["skipped"].to_numpy(bool)
    matched = 0
    for row in np.flatnonzero(audited):
        item = got.at[row, "item_random"]
        assert 0 <= item < got.at[row, "n_items"] and item != got.at[row, "item_max"]
        same = [o for o in others if expected.at[row, f"item_{o}"] == item]
        if same:
            matched += 1
            o = same[0]
            np.testing.assert_allclose(got.at[row, "a_random"], expected.at[row, f"a_{o}"],
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(got.at[row, "js_random"], expected.at[row, f"js_{o}"],
                                       rtol=1e-9, atol=1e-12)
            assert bool(got.at[row, "flip_random"]) == bool(expected.at[row, f"flip_{o}"])
    # 5 other removals in short documents: 30-85% of the random items are pinned in the fixture
    assert matched >= audited.sum() // 4
    np.testing.assert_allclose(got["delta_a"], got["a_max"] - got["a_random"], rtol=1e-12)
    np.testing.assert_allclose(got["delta_js"], got["js_max"] - got["js_random"], rtol=1e-12)
    assert got.loc[~audited, "item_random"].eq(-1).all()
