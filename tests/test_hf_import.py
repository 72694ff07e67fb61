"""Labels and data of a classifier fine-tuned elsewhere (``attnaudit audit --hf-model``): its class
names mapped to the data's labels (transformers' default ``LABEL_k``, ``--label-map``, ``[data]
label_map``), and data audited whole, since nothing is trained and so nothing is set aside.

The classifier is a tiny random ``BertForSequenceClassification`` (2 layers, 4 heads, hidden 32)
with the shipped MiniLM tokenizer, saved with ``save_pretrained`` as a user's fine-tuned model
would be; the documents are real IMDB reviews (conftest's slice). Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from test_cli import one_error_line

from attnaudit.checkpoint import load_run
from attnaudit.cli import main
from attnaudit.config import DataConfig
from attnaudit.data.splits import assign_splits
from attnaudit.data.types import DataError, Document

QUICK = ["--rankings", "random,attention", "--bootstrap", "0", "--permutations", "0",
         "--no-progress"]


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()  # commands set it process-wide
    yield
    torch.set_num_threads(before)


def save_classifier(folder: Path, id2label: dict[int, str] | None) -> Path:
    """A tiny random BERT classifier with MiniLM's tokenizer, as ``save_pretrained`` writes it;
    ``id2label`` None keeps transformers' default names (LABEL_0, LABEL_1)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from attnaudit.data.hf_tokenizer import minilm_folder

    try:
        source = minilm_folder()
    except DataError as err:
        pytest.skip(str(err))
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    labels = {} if id2label is None else {"id2label": id2label,
                                          "label2id": {v: k for k, v in id2label.items()}}
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, num_labels=2, **labels)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def reviews(imdb_slice: Path, n: int, *, split: str | None = "keep",
            labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The first ``n`` reviews of each label of the slice's test split; ``split`` None drops the
    column, a name sets it; ``labels`` renames the labels (pos/neg)."""
    rows: list[dict[str, Any]] = []
    taken = {"pos": 0, "neg": 0}
    for line in imdb_slice.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] != "test" or taken[row["label"]] >= n:
            continue
        taken[row["label"]] += 1
        row = {"id": row["id"], "text": row["text"],
               "label": (labels or {}).get(row["label"], row["label"]),
               **({} if split is None else {"split": row["split"] if split == "keep" else split})}
        rows.append(row)
    return rows


def audited(out: Path) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """The run's class names, its splits.json and the documents its audit covered."""
    splits = json.loads((out / "splits.json").read_text(encoding="utf-8"))
    removal = pd.read_parquet(out / "audit" / "removal.parquet")
    return load_run(out).label_names, splits, set(removal["doc_id"])


# --- labels ---------------------------------------------------------------------------------------


@pytest.mark.full
def test_default_label_names_map_to_the_datas_labels_k_with_a_warning_and_audit_a_file_whole(
    tmp_path: Path, imdb_slice: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The issue's case: a checkpoint saved with LABEL_0/LABEL_1, data labelled 0/1 and no split
    # column. Before: refused until config.json was edited, then 80/10/10 split and a tenth audited.
    folder = save_classifier(tmp_path / "clf", None)
    data = write_rows(tmp_path / "d.jsonl",
                      reviews(imdb_slice, 10, split=None, labels={"neg": "0", "pos": "1"}))
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="attnaudit"):
        assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                     *QUICK]) == 0
    warning = [r.getMessage() for r in caplog.records if "LABEL_0" in r.getMessage()]
    assert len(warning) == 1 and "--label-map LABEL_0=0,LABEL_1=1" in warning[0]
    names, splits, docs = audited(out)
    assert names == ["0", "1"]
    assert splits["train"] == [] and splits["dev"] == [] and len(splits["test"]) == 20
    assert docs == set(splits["test"])  # every document audited
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_test"] == 20 and metrics["majority_from"] == "test"
    assert metrics["majority_test_accuracy"] == 0.5
    info = json.loads((out / "run_info.json").read_text(encoding="utf-8"))
    assert info["id2label"] == ["LABEL_0", "LABEL_1"]


@pytest.mark.full
def test_default_label_names_take_named_labels_in_sorted_order_and_a_test_only_file_whole(
    tmp_path: Path, imdb_slice: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = save_classifier(tmp_path / "clf", None)
    data = write_rows(tmp_path / "d.jsonl", reviews(imdb_slice, 6))  # split "test" only; pos/neg
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="attnaudit"):
        assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                     *QUICK]) == 0  # before: "no training documents"
    assert any("k-th label in sorted order" in r.getMessage()
               and "LABEL_0=neg,LABEL_1=pos" in r.getMessage() for r in caplog.records)
    names, splits, docs = audited(out)
    assert names == ["neg", "pos"] and len(docs) == 12 and splits["train"] == []


@pytest.mark.full
def test_label_map_flag_and_toml_key_rename_the_models_classes(
    tmp_path: Path, imdb_slice: Path
) -> None:
    folder = save_classifier(tmp_path / "clf", {0: "NEGATIVE", 1: "POSITIVE"})
    rows = reviews(imdb_slice, 4, split=None, labels={"neg": "0", "pos": "1"})
    data = write_rows(tmp_path / "d.jsonl", rows)
    out = tmp_path / "flag"
    assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                 "--label-map", "POSITIVE=1, NEGATIVE=0", *QUICK]) == 0
    assert audited(out)[0] == ["0", "1"]  # the model's order, the data's names
    # The TOML key, by class index, one class left with its own name (the data uses it).
    named = write_rows(tmp_path / "n.jsonl", [
        {**r, "label": "NEGATIVE" if r["label"] == "0" else "good"} for r in rows])
    toml = tmp_path / "c.toml"
    toml.write_text('[data]\nlabel_map = {1 = "good"}\n', encoding="utf-8")
    out = tmp_path / "toml"
    assert main(["audit", "--hf-model", str(folder), "--data", str(named), "--out", str(out),
                 "--config", str(toml), *QUICK]) == 0
    assert audited(out)[0] == ["NEGATIVE", "good"]


@pytest.mark.full
def test_bad_label_maps_and_mismatched_labels_are_one_line(
    tmp_path: Path, imdb_slice: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = save_classifier(tmp_path / "clf", {0: "NEGATIVE", 1: "POSITIVE"})
    data = write_rows(tmp_path / "d.jsonl", reviews(imdb_slice, 2, split=None,
                                                    labels={"neg": "0", "pos": "1"}))
    capsys.readouterr()  # save_pretrained's output
    cases = [
        ("NEGATIVE", "is not NAME=VALUE"),
        ("NEGATIVE=0,NEGATIVE=1", "mapped twice"),
        ("NEGATIVE=0,POSITIVE=0", "two classes are mapped to the data's label '0'"),
        ("neutral=0", "the model has no class 'neutral' (its classes: NEGATIVE, POSITIVE"),
        ("NEGATIVE=0", "the data's labels (0, 1) are not the model's (0, POSITIVE"),
        (None, "--label-map NAME=VALUE"),  # nothing given: the flag that fixes it is named
    ]
    for label_map, expected in cases:
        flags = [] if label_map is None else ["--label-map", label_map]
        assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out",
                     str(tmp_path / "run"), *flags, *QUICK]) == 2, label_map
        assert expected in one_error_line(capsys.readouterr().err), label_map
    assert not (tmp_path / "run" / "model.pt").exists()
    # A label map without --hf-model, or with training, names what it applies to.
    assert main(["audit", str(tmp_path / "run"), "--label-map", "a=b", *QUICK]) == 2
    assert "--label-map go(es) with --hf-model" in one_error_line(capsys.readouterr().err)
    toml = tmp_path / "c.toml"
    toml.write_text('[data]\nlabel_map = "a=b"\n', encoding="utf-8")
    assert main(["train", "--model", "flan", "--encoder", "none", "--data", str(data), "--out",
                 str(tmp_path / "t"), "--config", str(toml), "--no-progress"]) == 2
    assert "only apply to a model trained elsewhere" in one_error_line(capsys.readouterr().err)


def test_class_names_follow_the_label_map_then_the_default_names_rule(tmp_path: Path) -> None:
    from attnaudit.pipeline import _class_names

    def names(id2label: list[str], labels: list[str], label_map: str | None = None) -> list[str]:
        data = write_rows(tmp_path / "d.jsonl", [{"text": "a b", "label": label}
                                                 for label in labels])
        config = DataConfig(path=str(data), label_map=label_map)
        return _class_names(id2label, data, config, tmp_path)

    default = ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert names(default, ["2", "0"]) == ["0", "1", "2"]  # label k, even where the data lacks one
    assert names(default, ["b", "c", "a"]) == ["a", "b", "c"]  # k-th in sorted order
    assert names(default, ["10", "9", "2"]) == ["2", "9", "10"]  # numbers in numeric order
    assert names(default, ["a", "b"]) == default  # neither rule fits: the mismatch is reported
    assert names(default, ["LABEL_1", "LABEL_0"]) == default  # the data uses the names
    assert names(["neg", "pos"], ["0", "1"]) == ["neg", "pos"]  # only the default names
    assert names(["neg", "pos"], ["0", "1"], "pos=1,0=0") == ["0", "1"]  # by name or index
    assert names(default, ["x"], "LABEL_2=x") == ["LABEL_0", "LABEL_1", "x"]


def test_label_map_settings_are_checked_in_one_line() -> None:
    assert DataConfig(label_map=" A = 1.0 ,b=x").label_map == {"A": "1", "b": "x"}
    assert DataConfig(label_map={"A": 0}).to_dict()["label_map"] == {"A": "0"}
    assert "label_map" not in DataConfig().to_dict()  # configs without it save as before
    for value, expected in [("A", "'A' is not NAME=VALUE"), ("A=1,A=2", "'A' is mapped twice"),
                            ("A=1,B=1", "mapped to the data's label '1'"), ("=1", "not NAME"),
                            (3, "must be NAME=VALUE pairs")]:
        with pytest.raises(DataError, match="label_map") as err:
            DataConfig.from_dict({"label_map": value}, source="c.toml")
        assert expected in str(err.value) and "\n" not in str(err.value)


# --- splits ---------------------------------------------------------------------------------------


def _docs(splits: list[str | None]) -> list[Document]:
    return [Document(doc_id=str(i), text="t", label="ab"[i % 2], split=s)
            for i, s in enumerate(splits)]


def test_test_only_splits_keep_the_sources_test_split_or_take_every_document() -> None:
    unsplit = _docs([None] * 30)
    assert assign_splits(unsplit, seed=0, test_only=True) == {
        "train": [], "dev": [], "test": unsplit}
    # Without test_only the same file is split 80/10/10 (what --hf-model did before).
    assert len(assign_splits(unsplit, seed=0)["test"]) == 3
    named = _docs(["train"] * 10 + ["test"] * 4)
    parts = assign_splits(named, seed=0, test_only=True)
    assert parts["test"] == named[10:] and parts["train"] == named[:10] and parts["dev"] == []
    only_train = _docs(["train"] * 6)  # no test split: every document is audited
    assert assign_splits(only_train, seed=0, test_only=True)["test"] == only_train
    with pytest.raises(DataError, match="unknown split name"):
        assign_splits(_docs(["holdout", "test"]), seed=0, test_only=True)


@pytest.mark.full
def test_a_file_with_a_test_split_audits_that_split_and_carves_nothing(
    tmp_path: Path, imdb_slice: Path
) -> None:
    folder = save_classifier(tmp_path / "clf", {0: "neg", 1: "pos"})
    rows = reviews(imdb_slice, 3) + [{**r, "split": "train", "id": f"t{r['id']}"}
                                     for r in reviews(imdb_slice, 5)]
    data = write_rows(tmp_path / "d.jsonl", rows)
    out = tmp_path / "run"
    assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                 *QUICK]) == 0
    _, splits, docs = audited(out)
    assert len(splits["test"]) == 6 and len(splits["train"]) == 10 and splits["dev"] == []
    assert docs == set(splits["test"])
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["data"]["test_only"] is True
    assert DataConfig.from_dict(config["data"]).test_only is True
