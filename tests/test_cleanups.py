"""Small shared helpers: one-line error reasons, the vocabulary-fits check, transformers' progress
switch, and ``import_hf_model`` reading its data once and drawing no bar with progress off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_checkpoint_training import write_dataset
from test_hf_cli import save_classifier

from attnaudit.config import DataConfig
from attnaudit.errors import DataError, first_line
from attnaudit.models import build_model, check_vocab_fits
from attnaudit.utils.hf_progress import transformers_progress


def test_first_line_is_the_messages_first_line_or_the_type_name() -> None:
    assert first_line(OSError("  no such file\nTraceback (most recent call last): ...")) == \
        "no such file"
    assert first_line(ValueError()) == "ValueError"
    assert first_line(ValueError("   \n  ")) == "ValueError"
    assert first_line(RuntimeError("x" * 500)) == "x" * 200
    assert first_line(RuntimeError("x" * 500), limit=10) == "x" * 10


def test_check_vocab_fits_names_where_and_both_counts() -> None:
    model = build_model("flan", "none", vocab_size=10, num_classes=2, embedding_dim=4)
    check_vocab_fits(model, 10, "[model] base 'x'")  # as many tokens as rows: fine
    with pytest.raises(DataError, match=r"^--hf-model clf: its tokenizer has 11 tokens but the "
                                        r"model only 10 word vectors"):
        check_vocab_fits(model, 11, "--hf-model clf")


@pytest.mark.parametrize("before", [True, False])
def test_transformers_progress_off_within_the_block_then_as_before(before: bool) -> None:
    from transformers.utils import logging as hf_logging

    original = hf_logging.is_progress_bar_enabled()
    try:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()
        with transformers_progress(False):
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled() is before
        with transformers_progress(True):  # untouched
            assert hf_logging.is_progress_bar_enabled() is before
        with pytest.raises(KeyError), transformers_progress(False):
            raise KeyError("restored on errors too")
        assert hf_logging.is_progress_bar_enabled() is before
    finally:
        (hf_logging.enable_progress_bar if original else hf_logging.disable_progress_bar)()


def test_import_hf_model_reads_the_data_once_and_draws_no_bar_without_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import attnaudit.data.loaders as loaders
    import attnaudit.data.prepare as prepare
    from attnaudit.pipeline import import_hf_model

    classifier = save_classifier(tmp_path / "clf", id2label={0: "pos", 1: "neg"})
    data = write_dataset(tmp_path / "tiny.jsonl", n=40)
    monkeypatch.setenv("ATTNAUDIT_CACHE", "off")  # a cache hit would read nothing
    reads: list[Path] = []
    for module in (loaders, prepare):
        real = module.load_documents

        def spy(path: Path, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            reads.append(path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(module, "load_documents", spy)
    capsys.readouterr()  # save_pretrained's bars
    metrics = import_hf_model(classifier, DataConfig.from_dict({"path": str(data)}),
                              tmp_path / "run", progress=False)
    assert len(reads) == 1
    assert metrics["num_classes"] == 2
    assert "Loading weights" not in capsys.readouterr().err
