"""A planted ground truth: ``attnaudit synth`` (attnaudit.data.synth) and each ranking's recall of the
planted token (attnaudit.results.planted), by hand on small tables and end to end on real text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact

from attnaudit.cli import main
from attnaudit.data.batching import Limits, tokenize_document
from attnaudit.data.loaders import load_documents
from attnaudit.data.synth import UNMARKED_LABEL, synthesize, write_synth
from attnaudit.data.types import DataError, Document
from attnaudit.results.planted import PlantedSpec, read_planted, sidecar_path, summarize_planted

WORDS = ["the", "film", "was", "good", "bad", "long", "short", "and", "but", "it", "plot", "actor",
         "scene", "story", "music", "ending", "slow", "fast", "funny", "dull"]
SPEC = PlantedSpec(markers={"c0": "zxqmark0", "c1": "zxqmark1"}, distractor="zxqnoise")


def _docs(n: int, *, seed: int = 0, sentences: int = 4, split: str | None = None) -> list[Document]:
    """``n`` documents of a few sentences of common words, as the loaders would give them."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        parts = []
        for _ in range(sentences):
            words = list(rng.choice(WORDS, size=int(rng.integers(3, 9))))
            parts.append(" ".join(words).capitalize() + ".")
        doc_id = f"{split}/{i}" if split else str(i)
        docs.append(Document(doc_id=doc_id, text=" ".join(parts), label="x", split=split))
    return docs


def _kept_tokens(text: str, limits: Limits) -> list[str]:
    return [t for sentence in tokenize_document(text, limits) for t in sentence]


# ---------------------------------------------------------------------------------------------------
# The generator


@pytest.mark.parametrize("limits", [Limits(), Limits(max_tokens=14, max_sentences=3,
                                                     max_sentence_tokens=6)])
def test_labels_follow_the_markers_exactly_within_the_length_limits(limits: Limits) -> None:
    planted, spec = synthesize(_docs(120, sentences=6), markers=2, classes=3, limits=limits)
    assert len(planted) == 120 and set(spec.markers) == {"c0", "c1", "c2"}
    for doc in planted:
        kept = _kept_tokens(doc.text, limits)  # what the model will see
        for label, token in spec.markers.items():
            assert kept.count(token) == (2 if label == doc.label else 0)
        assert kept.count("zxqnoise") == int(doc.has_distractor)
    assert {d.label for d in planted} == {"c0", "c1", "c2"}


def test_the_distractor_is_independent_of_the_label_and_optional() -> None:
    docs = _docs(800)
    planted, spec = synthesize(docs, seed=3)
    table = [[sum(d.label == label and d.has_distractor == flag for d in planted)
              for flag in (True, False)] for label in ("c0", "c1")]
    assert 0.45 < np.mean([d.has_distractor for d in planted]) < 0.55
    assert fisher_exact(table).pvalue > 0.05  # no association with the label
    assert spec.extra["n_with_distractor"] == sum(d.has_distractor for d in planted)
    # --no-distractor: the same labels (draws in a fixed order), no distractor anywhere.
    bare, bare_spec = synthesize(docs, seed=3, distractor=False)
    assert bare_spec.distractor is None and not any("zxqnoise" in d.text for d in bare)
    assert [d.label for d in bare] == [d.label for d in planted]


def test_the_draws_are_seeded_per_document() -> None:
    docs = _docs(60)
    first, spec = synthesize(docs, seed=5)
    again, spec_again = synthesize(docs, seed=5)
    assert first == again and spec == spec_again
    other, _ = synthesize(docs, seed=6)
    assert [d.label for d in other] != [d.label for d in first]
    # A document's draws do not depend on the others: a prefix of the source gives a prefix.
    prefix, _ = synthesize(docs[:20], seed=5)
    assert prefix == first[:20]


def test_markers_are_words_absent_from_the_source() -> None:
    docs = [Document("0", "The zxqmark0 film was good and long.", "x"),
            Document("1", "A zxqnoise plot was slow but funny.", "x")]
    planted, spec = synthesize(docs)
    assert spec.markers == {"c0": "qzxqmark0", "c1": "zxqmark1"} and spec.distractor == "qzxqnoise"
    for doc in planted:
        assert _kept_tokens(doc.text, Limits()).count(spec.markers[doc.label]) == 1


def test_unmarked_documents_carry_no_marker_and_their_own_label() -> None:
    planted, spec = synthesize(_docs(300), unmarked=0.3)
    none = [d for d in planted if d.label == UNMARKED_LABEL]
    assert 0.2 < len(none) / len(planted) < 0.4
    assert spec.extra["label_counts"][UNMARKED_LABEL] == len(none)
    for doc in none:
        assert not set(spec.markers.values()) & set(_kept_tokens(doc.text, Limits()))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DataError, match="markers"):
        synthesize(_docs(3), markers=0)
    with pytest.raises(DataError, match="classes"):
        synthesize(_docs(3), classes=1)
    with pytest.raises(DataError, match="unmarked"):
        synthesize(_docs(3), unmarked=1.0)


def test_the_loaders_read_the_file_back_with_its_ids_and_splits(tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl"
    rows = [{"id": d.doc_id.split("/")[-1], "text": d.text, "label": "x", "split": d.split}
            for split in ("train", "test") for d in _docs(30, split=split)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "synth" / "planted.jsonl"
    spec = write_synth(source, out, max_docs=50, seed=1)
    docs = load_documents(out)
    originals = load_documents(source)[:50]
    assert [(d.doc_id, d.split) for d in docs] == [(d.doc_id, d.split) for d in originals]
    assert all(spec.markers[d.label] in d.text.split() for d in docs)
    assert sidecar_path(out) == tmp_path / "synth" / "planted.planted.json"
    assert read_planted(out) == spec and spec.extra["n_docs"] == 50


def test_the_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps({"text": d.text, "label": "x"}) + "\n" for d in _docs(20)),
                      encoding="utf-8")
    out = tmp_path / "s.jsonl"
    assert main(["synth", "--source", str(source), "--out", str(out), "--markers", "2",
                 "--no-distractor", "--classes", "3", "--seed", "4"]) == 0
    spec = read_planted(out)
    assert spec is not None and spec.distractor is None and spec.extra["markers_per_doc"] == 2
    assert len(spec.markers) == 3 and "20 documents" in capsys.readouterr().out
    assert main(["synth", "--source", str(tmp_path / "absent.csv"), "--out", str(out)]) == 2
    assert main(["synth", "--source", str(source), "--out", str(tmp_path / "s.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("attnaudit: error: ") for line in err)
    assert ".jsonl" in err[1]


def test_the_synth_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--help"]) == 0
    out = capsys.readouterr().out
    assert "`" not in out
    for option in ("--source", "--out", "--markers", "--no-distractor", "--classes", "--unmarked",
                   "--max-docs", "--seed", "--data-dir"):
        assert option in out
    assert main(["--help"]) == 0 and "synth" in capsys.readouterr().out


@pytest.mark.parametrize(("data", "sidecar"), [
    ("runs/synth.jsonl", "runs/synth.planted.json"),
    ("synth.jsonl.gz", "synth.planted.json"),
    ("table.csv", "table.csv.planted.json"),
])
def test_sidecar_path(data: str, sidecar: str) -> None:
    assert sidecar_path(data) == Path(sidecar)


def test_a_bad_sidecar_is_an_error_and_none_is_no_spec(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    assert read_planted(data) is None
    sidecar_path(data).write_text('{"markers": {}}', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.planted\.json: 'markers'"):
        read_planted(data)
    sidecar_path(data).write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="cannot read"):
        read_planted(data)


# ---------------------------------------------------------------------------------------------------
# Recall of the planted token, by hand


def _items(site: str, docs: dict[str, list[tuple[str, int, int]]]) -> pd.DataFrame:
    """Item rows of one site: per document ``(text, rank_attention, rank_random)`` per item."""
    return pd.DataFrame([
        {"model": "m", "site": site, "doc_id": doc_id, "item": i, "text": text, "weight": 0.0,
         "rank_attention": attention, "rank_random": random}
        for doc_id, items in docs.items() for i, (text, attention, random) in enumerate(items)
    ])


def test_recall_at_1_and_ranks_by_hand_for_token_and_sentence_items() -> None:
    items = pd.concat([
        _items("token", {
            "A": [("the", 1, 0), ("zxqmark0", 0, 2), ("film", 2, 1)],
            "B": [("zxqmark1", 2, 0), ("good", 1, 1), ("zxqnoise", 0, 2), ("ok", 3, 3)],
            "C": [("zxqmark0s", 0, 0), ("plot", 1, 1)],  # a longer word is not the marker
        }),
        _items("sentence", {
            "A": [("the zxqmark0 film .", 0, 1), ("it ends .", 1, 0)],
            "B": [("good .", 0, 0), ("zxqmark1 ok zxqnoise", 1, 1)],
        }),
    ], ignore_index=True)
    planted = summarize_planted(items, SPEC)
    assert planted["markers"] == SPEC.markers and planted["distractor"] == "zxqnoise"
    token = planted["by_site"]["token"]["attention"]
    # A: marker ranked first (rank 1 of 3); B: marker third of 4; C holds no marker.
    assert (token["n_docs"], token["n_with_marker"], token["n_without_marker"]) == (3, 2, 1)
    assert token["recall_at_1"] == 0.5
    assert token["chance_recall_at_1"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert (token["mean_rank"], token["median_rank"]) == (2.0, 2.0)
    assert token["mean_rank_normalised"] == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert token["by_label"] == {"c0": {"n_with_marker": 1, "recall_at_1": 1.0},
                                 "c1": {"n_with_marker": 1, "recall_at_1": 0.0}}
    assert token["distractor"]["n_with"] == 1 and token["distractor"]["recall_at_1"] == 1.0
    random = planted["by_site"]["token"]["random"]
    assert random["recall_at_1"] == 0.5 and random["mean_rank"] == 2.0  # A: 3rd, B: 1st
    assert random["distractor"]["mean_rank"] == 3.0
    sentence = planted["by_site"]["sentence"]["attention"]
    # A sentence item holds every token of the sentence: A's first sentence, B's second.
    assert sentence["recall_at_1"] == 0.5 and sentence["n_without_marker"] == 0
    assert sentence["mean_rank_normalised"] == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert sentence["distractor"]["recall_at_1"] == 0.0
    assert planted["by_site"]["sentence"]["random"]["recall_at_1"] == 0.0


def test_no_distractor_and_no_marker_give_nulls() -> None:
    spec = PlantedSpec(markers={"c0": "zxqmark0"}, distractor=None)
    planted = summarize_planted(_items("word", {"A": [("plot", 0, 0), ("slow", 1, 1)]}), spec)
    entry = planted["by_site"]["word"]["attention"]
    assert entry["n_without_marker"] == 1 and entry["recall_at_1"] is None
    assert entry["distractor"] is None


_TEXTS = st.sampled_from(["a", "zxqmark0", "zxqmark1", "zxqnoise", "a zxqmark0 b", "zxqnoise b"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_TEXTS, min_size=1, max_size=6), min_size=1, max_size=6), st.randoms())
def test_recall_matches_a_document_by_document_reference(docs: list[list[str]], rnd: Any) -> None:
    rows = []
    for d, texts in enumerate(docs):
        order = list(range(len(texts)))
        rnd.shuffle(order)
        rows += [(f"d{d}", text, order[i]) for i, text in enumerate(texts)]
    items = pd.DataFrame([{"site": "token", "doc_id": doc, "item": 0, "text": text,
                           "rank_attention": rank} for doc, text, rank in rows])
    entry = summarize_planted(items, SPEC)["by_site"]["token"]["attention"]
    for tokens, got in ((set(SPEC.markers.values()), entry),
                        ({"zxqnoise"}, entry["distractor"])):
        best = []  # the obvious way: per document, the smallest rank among items holding a token
        for d in range(len(docs)):
            ranks = [r for doc, text, r in rows if doc == f"d{d}" and tokens & set(text.split())]
            if ranks:
                best.append(min(ranks) + 1)
        if not best:
            assert got is None or got["recall_at_1"] is None
            continue
        assert got["recall_at_1"] == pytest.approx(np.mean([b == 1 for b in best]))
        assert got["mean_rank"] == pytest.approx(np.mean(best))
        assert got["median_rank"] == pytest.approx(np.median(best))
    assert entry["n_without_marker"] == sum(
        not any(set(SPEC.markers.values()) & set(t.split()) for t in texts) for texts in docs)


# ---------------------------------------------------------------------------------------------------
# End to end: a model trained on the planted set puts the marker first


@pytest.mark.usefixtures("one_thread")
def test_attention_and_gradient_rank_the_planted_marker_first(imdb_slice: Path, tmp_path: Path) -> None:
    from attnaudit.config import AuditConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from attnaudit.erasure.audit import AUDIT_DIR, audit_run
    from attnaudit.train import train_run

    data = tmp_path / "synth.jsonl"
    # Unmarked documents ("none") make both markers necessary: without them the model decides one
    # label by the other marker's absence and never looks at that label's marker.
    write_synth(imdb_slice, data, unmarked=0.34, seed=0)
    run = tmp_path / "flan-none"
    config = RunConfig(
        # No dev split: the last epoch is kept (with one, the first perfect dev epoch would be).
        data=DataConfig(path=str(data), dev_fraction=0.0),
        model=ModelConfig(kind="flan", encoder="none", embedding_dim=16),
        train=TrainConfig(epochs=15, lr=1e-2, threads=1, lr_patience=100),
    )
    train_run(config, run, progress=False)
    summary = audit_run(run, AuditConfig(rankings=("random", "attention", "gradient"), bootstrap=0,
                                         permutations=0), progress=False)
    assert json.loads((run / AUDIT_DIR / "summary.json").read_text())["planted"] == summary["planted"]
    token = summary["planted"]["by_site"]["token"]
    labels = pd.read_parquet(run / AUDIT_DIR / "removal.parquet").drop_duplicates("doc_id")["label"]
    assert token["attention"]["n_without_marker"] == int((labels == UNMARKED_LABEL).sum()) > 0
    for ranking in ("attention", "gradient"):
        assert token[ranking]["recall_at_1"] >= 0.9, (ranking, token[ranking])
        assert all(e["recall_at_1"] >= 0.9 for e in token[ranking]["by_label"].values())
    assert token["random"]["recall_at_1"] <= 0.2
