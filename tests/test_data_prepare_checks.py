"""prepare_data's checks for degenerate data: a single class, labels that training never has."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from attnaudit.data import DataConfig, DataError, prepare_data
from attnaudit.data.prepare import labels_missing_from_train

SENTENCES = [
    "The striker scored twice before half time.",
    "Shares fell after the bank cut its forecast.",
    "The new phone has a larger screen and battery.",
    "The council approved the budget for new schools.",
]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    """``(split, label)`` rows with real sentences as text."""
    records = [
        {"id": i, "split": split, "label": label, "text": SENTENCES[i % len(SENTENCES)]}
        for i, (split, label) in enumerate(rows)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_labels_missing_from_train() -> None:
    missing = labels_missing_from_train({
        "train": ["sport", "business", "sport"],
        "dev": ["sport", "tech"],
        "test": ["tech", "politics", "tech", "business"],
    })
    assert missing == {"politics": {"test": 1}, "tech": {"dev": 1, "test": 2}}
    assert labels_missing_from_train({"train": ["a", "b"], "dev": [], "test": ["b"]}) == {}
    assert labels_missing_from_train({"test": ["a"]}) == {"a": {"test": 1}}


def test_single_class_is_an_error(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [("train", "sport")] * 8 + [("test", "sport")] * 2)
    with pytest.raises(DataError) as caught:
        prepare_data(DataConfig(path=str(f), min_count=1))
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"{f}: every document has the label 'sport'; a classifier needs at least two classes "
        "(check --label-column and the data)"
    )


def test_single_class_is_fine_with_given_labels(tmp_path: Path) -> None:
    # Evaluating a trained run on a one-class subset: the run's label names decide, not the data.
    f = write_jsonl(tmp_path / "d.jsonl", [("train", "sport")] * 8 + [("test", "sport")] * 2)
    data = prepare_data(DataConfig(path=str(f), min_count=1), label_names=["business", "sport"])
    assert data.label_names == ["business", "sport"] and len(data.test) == 2


def test_label_only_in_test_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = ([("train", "sport"), ("train", "business")] * 6 + [("test", "sport"), ("test", "business")]
            + [("test", "tech")] * 3)
    f = write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="attnaudit.data.prepare"):
        data = prepare_data(DataConfig(path=str(f), min_count=1, seed=0))
    assert data.label_names == ["business", "sport", "tech"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{f}: label(s) never seen in the training split: 'tech' (3 test document(s)); "
        "the model can never predict them"
    ]


def test_no_warning_when_training_has_every_label(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [("train", "sport"), ("train", "business")] * 6 + [("test", "sport"), ("test", "business")]
    f = write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="attnaudit.data.prepare"):
        prepare_data(DataConfig(path=str(f), min_count=1, seed=0))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
