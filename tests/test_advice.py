"""Why documents cannot flip at a site, per kind of site, and the command printed when most cannot
(results/advice.py): the pooling models' reason (the head's bias) never explains a transformer
layer, and the command points where the README's IMDB measurement found decisions moving."""

from __future__ import annotations

import pytest

from attnaudit.results.advice import (
    MOST,
    POOLING_EXPLAINED,
    default_layers,
    explained,
    site_advice,
    suggested_layers,
    summary_advice,
)


def test_each_kind_of_site_has_its_own_reason() -> None:
    assert explained("pooling", None) == POOLING_EXPLAINED and "bias alone" in POOLING_EXPLAINED
    for rows in ("cls", "all"):
        text = explained("layer", rows)
        assert "residual" in text and "bias alone" not in text
    assert "[CLS]) row alone" in explained("layer", "cls")
    assert "every query row" in explained("layer", "all")


def test_lower_two_thirds_of_the_layers_are_suggested() -> None:
    assert suggested_layers(6) == [0, 1, 2, 3]  # MiniLM: where a quarter of reviews flipped
    assert suggested_layers(12) == list(range(8))
    assert suggested_layers(1) == [0] and suggested_layers(2) == [0, 1]


def test_the_default_layer_is_the_last() -> None:
    assert default_layers(6) == [5] and default_layers(12) == [11] and default_layers(1) == [0]
    with pytest.raises(ValueError, match="at least one layer"):
        default_layers(0)


def test_the_advice_suggests_only_the_lower_layers_not_yet_audited() -> None:
    # an audit of MiniLM at L5 and L2 from every row (--sites L5,L2 --query-rows all); L5 cannot flip
    advice = site_advice("L5", 0.97, kind="layer", layer=5, num_layers=6, query_rows="all",
                         run="r", audited=("L5", "L2"))
    assert advice is not None and "L2 is audited here" in advice["message"]
    assert advice["command"] == ("attnaudit audit r --sites L0,L1,L3 --query-rows all "
                                 "--attention-steps eraser --name lower-layers")
    # every lower layer audited already: no command, the message points to them
    advice = site_advice("L5", 0.97, kind="layer", layer=5, num_layers=6, query_rows="all",
                         run="r", audited=("L5", "L0", "L1", "L2", "L3"))
    assert advice is not None and advice["command"] is None
    assert "L0, L1, L2, L3, audited here from every query row" in advice["message"]
    # from the [CLS] row, the audited lower layers did not erase every row: all are suggested
    advice = site_advice("L5", 0.97, kind="layer", layer=5, num_layers=6, query_rows="cls",
                         run="r", audited=("L5", "L2"))
    assert advice is not None and "--sites L0,L1,L2,L3" in str(advice["command"])


def test_no_message_at_or_below_the_threshold() -> None:
    assert site_advice("L5", MOST, kind="layer", layer=5, num_layers=6, query_rows="cls") is None
    assert site_advice("L5", None, kind="layer", layer=5, num_layers=6, query_rows="cls") is None


def test_the_issues_cases_print_a_command_that_audits_where_decisions_move() -> None:
    # the default site (last layer, [CLS] row), 93% cannot flip
    advice = site_advice("L5", 0.93, kind="layer", layer=5, num_layers=6, query_rows="cls",
                         run="runs/minilm", audited=("L5",))
    assert advice is not None and "93%" in advice["message"] and "50%" in advice["message"]
    assert advice["command"] == ("attnaudit audit runs/minilm --sites L0,L1,L2,L3 --query-rows all "
                                 "--attention-steps eraser --name lower-layers")
    assert advice["command"] in advice["message"]
    # an earlier layer from the [CLS] row: the same command
    advice = site_advice("L2", 1.0, kind="layer", layer=2, num_layers=6, query_rows="cls")
    assert advice is not None and "--query-rows all" in str(advice["command"])
    # every row at a lower layer already: input-level erasure of that site
    advice = site_advice("L2", 0.8, kind="layer", layer=2, num_layers=6, query_rows="all")
    assert advice is not None and "--erasure attention,input" in str(advice["command"])
    # hf-attnpool's pooling site: its layers, every row
    advice = site_advice("pool", 0.9, kind="pooling", num_layers=6, query_rows="all")
    assert advice is not None and "--sites L0,L1,L2,L3" in str(advice["command"])
    # the paper's models: no setting moves them; the message says so
    advice = site_advice("sentence", 0.9, kind="pooling")
    assert advice is not None and advice["command"] is None
    assert "No audit setting changes this" in advice["message"]


@pytest.mark.parametrize("num_layers", [None, 6])
def test_summary_advice_names_every_site_with_its_kind(num_layers: int | None) -> None:
    summary = {"by_site": {"L5": {"share_cannot_flip": 0.93}, "pool": {"share_cannot_flip": 0.1},
                           "L1.h2": {"share_cannot_flip": None}}}
    out = summary_advice(summary, num_layers=num_layers, query_rows="cls", run="r")
    layer = "pooling" if num_layers is None else "layer"
    assert {s: a["kind"] for s, a in out.items()} == {"L5": layer, "pool": "pooling",
                                                      "L1.h2": layer}
    assert ("message" in out["L5"]) and "message" not in out["pool"]
    assert "message" not in out["L1.h2"]


def test_hans_word_site_is_explained_by_the_other_sentences_not_the_heads_bias() -> None:
    import torch

    from attnaudit.models.han import HierarchicalAttentionClassifier

    torch.manual_seed(0)
    han = HierarchicalAttentionClassifier(vocab_size=20, num_classes=2, encoder="none")
    meta = {name: han.site(name).to_dict() for name in ("sentence", "word")}
    summary = {"sites": meta, "by_site": {"sentence": {"share_cannot_flip": 0.9},
                                          "word": {"share_cannot_flip": 0.9}}}
    out = summary_advice(summary, num_layers=None, query_rows=None, run="r")
    assert out["sentence"]["kind"] == "pooling" and out["word"]["kind"] == "inner_pooling"
    assert out["sentence"]["explanation"] == POOLING_EXPLAINED
    word = out["word"]["explanation"]
    assert "other sentence" in word and "is not the head's bias" in word
    assert out["word"]["command"] is None and "No audit setting" in out["word"]["message"]
    # a summary written before the field: the old inference from the site's name
    assert summary_advice({"by_site": {"word": {}}}, num_layers=None, query_rows=None,
                          run="r")["word"]["kind"] == "pooling"


def test_a_live_audit_s_advice_is_the_python_call_with_settings_that_load() -> None:
    import attnaudit

    advice = site_advice("L5", 0.97, kind="layer", layer=5, num_layers=6, query_rows="cls",
                         run=None, audited=("L5",))
    assert advice is not None and str(advice["command"]).startswith(
        "attnaudit.audit(model, documents, tokenizer=tokenizer, config=attnaudit.AuditConfig(")
    # the settings it names are a valid AuditConfig
    config_text = str(advice["command"]).split("config=", 1)[1][:-1]
    config = eval(config_text, {"attnaudit": attnaudit})  # the advice's own text
    assert config.sites == ("L0", "L1", "L2", "L3") and config.query_rows == "all"
    advice = site_advice("L2", 0.97, kind="layer", layer=2, num_layers=6, query_rows="all",
                         run=None, audited=("L2",))
    assert advice is not None and "erasure=('attention', 'input')" in str(advice["command"])
