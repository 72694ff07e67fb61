"""Run folders: checkpoint round trip, training, resumption, DONE reuse, configs and embeddings."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import attnaudit.train as train_module
from attnaudit.checkpoint import (
    CONFIG_FILE,
    DONE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RUN_INFO_FILE,
    SPLITS_FILE,
    STATE_FILE,
    load_run,
    save_checkpoint,
)
from attnaudit.cli import main as cli_main
from attnaudit.config import ModelConfig, RunConfig, TrainConfig
from attnaudit.data.prepare import DataConfig
from attnaudit.data.types import PAD_ID, Batch, DataError
from attnaudit.data.vocab import Vocab
from attnaudit.models import MODEL_NAMES, build_model, is_hierarchical, parse_model_name
from attnaudit.models.embeddings import load_embeddings
from attnaudit.train import evaluate_run, train_run

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

FILLER = ["the", "film", "was", "a", "story", "about", "it", "and", "some", "people", "with", "time"]


def write_dataset(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A tiny separable JSONL set: "pos" documents say "great", "neg" ones say "awful"."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            label = "pos" if i % 2 == 0 else "neg"
            sentences = [rng.choices(FILLER, k=rng.randint(3, 7)) for _ in range(rng.randint(1, 3))]
            rng.choice(sentences).insert(rng.randint(0, 2), "great" if label == "pos" else "awful")
            text = " ".join(" ".join(s).capitalize() + "." for s in sentences)
            f.write(json.dumps({"id": i, "text": text, "label": label}) + "\n")
    return path


def tiny_config(data: Path, name: str = "flan-cnn", **train: Any) -> RunConfig:
    kind, encoder = parse_model_name(name)
    return RunConfig(
        data=DataConfig(path=str(data), fmt="jsonl", dev_fraction=0.2, test_fraction=0.2),
        model=ModelConfig(kind=kind, encoder=encoder, embedding_dim=16, hidden=8),
        train=TrainConfig(**{"epochs": 2, "lr": 3e-2, "batch_size": 16, **train}),
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny.jsonl")


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_run(run_dir).model.state_dict()


def _learning_curve(metrics: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The parts of the history that must not depend on timing."""
    return [(h["epoch"], h["train_loss"], h["dev_accuracy"], h["lr"]) for h in metrics["history"]]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path, name: str) -> None:
    kind, encoder = parse_model_name(name)
    vocab = Vocab(["<pad>", "<unk>"] + [f"w{i}" for i in range(20)])
    torch.manual_seed(0)
    model = build_model(kind, encoder, vocab_size=len(vocab), num_classes=3, embedding_dim=8,
                        hidden=4).eval()
    config = RunConfig(data=DataConfig(path="somewhere"),
                       model=ModelConfig(kind=kind, encoder=encoder, embedding_dim=8, hidden=4))
    save_checkpoint(tmp_path, model, vocab, ["a", "b", "c"], config)
    loaded = load_run(tmp_path)
    ids = torch.randint(2, len(vocab), (3, 4, 5) if is_hierarchical(kind) else (3, 9))
    ids[0, 2:] = PAD_ID
    batch = Batch(["x", "y", "z"], ids, torch.zeros(3, dtype=torch.long))
    assert not loaded.model.training
    assert loaded.vocab == vocab and loaded.label_names == ["a", "b", "c"]
    assert loaded.config.to_dict() == config.to_dict()
    assert loaded.data_config == config.data
    with torch.no_grad():
        assert torch.equal(loaded.model(batch), model(batch))  # bit for bit


def test_training_beats_chance_and_writes_the_run_folder(tmp_path: Path, dataset: Path) -> None:
    run = tmp_path / "run"
    metrics = train_run(tiny_config(dataset), run, progress=False)
    assert metrics["test_accuracy"] > 0.8
    assert metrics["majority_test_accuracy"] == pytest.approx(0.5, abs=0.1)
    assert metrics["epochs_trained"] == 2 and len(metrics["history"]) == 2
    assert metrics["train_docs_per_s"] > 0 and metrics["train_seconds"] > 0
    for name in (MODEL_FILE, STATE_FILE, CONFIG_FILE, RUN_INFO_FILE, SPLITS_FILE, METRICS_FILE,
                 DONE_FILE):
        assert (run / name).is_file(), name
    assert json.loads((run / METRICS_FILE).read_text()) == metrics
    splits = json.loads((run / SPLITS_FILE).read_text())
    assert sum(len(v) for v in splits.values()) == 300
    assert evaluate_run(run, "test") == pytest.approx(metrics["test_accuracy"])
    assert evaluate_run(run, "dev") == pytest.approx(metrics["dev_accuracy"])


@pytest.mark.parametrize("name", ["han-rnn", "flan-none"])
def test_other_variants_train(tmp_path: Path, dataset: Path, name: str) -> None:
    metrics = train_run(tiny_config(dataset, name, epochs=3), tmp_path / name, progress=False)
    assert metrics["test_accuracy"] > 0.7


def test_done_run_is_reused_not_retrained(
    tmp_path: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    config = tiny_config(dataset, epochs=1)
    first = train_run(config, run, progress=False)
    stamp = (run / MODEL_FILE).stat().st_mtime_ns

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a DONE run must not be trained again")

    monkeypatch.setattr(train_module, "prepare_data", no_training)
    assert train_run(config, run, progress=False) == first
    assert (run / MODEL_FILE).stat().st_mtime_ns == stamp


def test_extending_a_done_run_equals_training_straight(tmp_path: Path, dataset: Path) -> None:
    straight = train_run(tiny_config(dataset, epochs=2), tmp_path / "straight", progress=False)
    train_run(tiny_config(dataset, epochs=1), tmp_path / "extended", progress=False)
    extended = train_run(tiny_config(dataset, epochs=2), tmp_path / "extended", progress=False)
    assert _learning_curve(extended) == _learning_curve(straight)
    assert extended["test_accuracy"] == straight["test_accuracy"]
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "extended")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_killed_run_resumes_to_the_same_result(
    tmp_path: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed after its first epoch, started again, ends exactly as an uninterrupted one.

    Bit-exact because the batch order of each epoch is a function of (seed, epoch) and state.pt
    holds the optimizer, scheduler and RNG states (dropout draws continue where they stopped).
    """
    config = tiny_config(dataset, "han-cnn", epochs=3)  # cnn: dropout uses the RNG
    straight = train_run(config, tmp_path / "straight", progress=False)

    real_save = train_module.save_training_state

    def save_then_die(run_dir: Path, state: dict[str, Any]) -> None:
        real_save(run_dir, state)
        raise KeyboardInterrupt  # killed right after the first epoch's state is safe on disk

    monkeypatch.setattr(train_module, "save_training_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed" / DONE_FILE).exists()
    monkeypatch.setattr(train_module, "save_training_state", real_save)
    resumed = train_run(config, tmp_path / "resumed", progress=False)
    assert _learning_curve(resumed) == _learning_curve(straight)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    a, b = _params(tmp_path / "straight"), _params(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_folder_with_other_settings_is_refused(tmp_path: Path, dataset: Path) -> None:
    train_run(tiny_config(dataset, epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(DataError, match=r"train\.lr"):
        train_run(tiny_config(dataset, epochs=1, lr=1e-3), tmp_path / "run", progress=False)


def test_cli_train_and_evaluate(tmp_path: Path, dataset: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'[data]\npath = "{dataset}"\ndev_fraction = 0.2\n\n'
        '[model]\nkind = "han"\nembedding_dim = 16\nhidden = 8\n\n[train]\nlr = 0.01\nepochs = 5\n'
    )
    out = tmp_path / "cli-run"
    args = ["train", "--config", str(toml), "--encoder", "none", "--epochs", "1", "--no-progress",
            "--out", str(out)]
    assert cli_main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["model"]["kind"] == "han" and config["model"]["encoder"] == "none"  # file + flag
    assert config["train"]["epochs"] == 1  # the flag overrides the file
    assert config["data"]["dev_fraction"] == 0.2
    assert cli_main(["evaluate", str(out), "--split", "dev"]) == 0
    dev = json.loads((out / METRICS_FILE).read_text())["dev_accuracy"]
    assert f"dev accuracy {dev:.4f}" in capsys.readouterr().out


def test_config_round_trip_and_errors(tmp_path: Path) -> None:
    config = RunConfig(data=DataConfig(path="x"), model=ModelConfig(kind="flan", encoder="cnn"))
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\npath = "x"\n[train]\nlearning_rate = 0.1\n')
    with pytest.raises(DataError, match="learning_rate"):
        RunConfig.load_toml(bad)
    with pytest.raises(DataError, match="--data"):
        RunConfig.load_toml(None, {"model": {"kind": "han"}})
    with pytest.raises(DataError, match="encoder"):
        RunConfig.load_toml(None, {"data": {"path": "x"}, "model": {"encoder": "lstm"}})
    assert TrainConfig().effective_patience("none") == 10
    assert TrainConfig().effective_patience("rnn") == 5
    assert TrainConfig(patience=2).effective_patience("none") == 2


WORDS = ["<pad>", "<unk>", "good", "bad", "plot"]


def test_load_embeddings_word2vec_and_glove(tmp_path: Path) -> None:
    vectors = {"good": [3.0, 4.0, 0.0], "Bad": [0.0, 0.0, 2.0], "zzz": [1.0, 1.0, 1.0]}
    lines = [f"{w} {' '.join(map(str, v))}" for w, v in vectors.items()]
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("3 3\n" + "\n".join(f"{line} " for line in lines) + "\n")  # trailing spaces
    glove = tmp_path / "glove.txt"
    glove.write_text("\n".join(lines) + "\n")
    a = load_embeddings(w2v, WORDS, dim=3, seed=1)
    b = load_embeddings(glove, WORDS, seed=1)
    assert torch.equal(a, b)
    assert a.shape == (5, 3)
    assert torch.equal(a[0], torch.zeros(3))  # padding row
    torch.testing.assert_close(a[2], torch.tensor([0.6, 0.8, 0.0]))  # L2-normalised
    torch.testing.assert_close(a[3], torch.tensor([0.0, 0.0, 1.0]))  # "Bad" matched lowercased
    torch.testing.assert_close(a[1:].norm(dim=1), torch.ones(4))  # random rows normalised too
    assert torch.equal(load_embeddings(glove, WORDS, seed=1), b)  # seeded
    assert not torch.equal(load_embeddings(glove, WORDS, seed=2)[4], b[4])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("2 3\ngood 1 2 3\nbad 1 2\n", r"line 3: expected a word and 3 numbers"),
        ("good 1 2 3\nplot 1 x 3\n", r"line 2: a vector value is not a number"),
        ("2 4\ngood 1 2 3 4\n", r"line 1: header says 4-d vectors, the model needs 3"),
        ("good 1 2\n", r"line 1: expected a word and 3 numbers"),
        ("2 3\n", r"no vectors"),
        ("", r"no vectors"),
    ],
)
def test_bad_embeddings_file_error_names_file_and_line(
    tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_embeddings(path, WORDS, dim=3)
    assert str(path) in str(err.value)


def test_training_with_embeddings_file(tmp_path: Path, dataset: Path) -> None:
    vectors = tmp_path / "vectors.txt"
    g = torch.Generator().manual_seed(0)
    rows = [f"{w} " + " ".join(f"{x:.4f}" for x in torch.randn(16, generator=g).tolist())
            for w in [*FILLER, "great", "awful"]]
    vectors.write_text("\n".join(rows) + "\n")
    config = tiny_config(dataset, "flan-none", epochs=1)
    config.model.embeddings = str(vectors)
    metrics = train_run(config, tmp_path / "run", progress=False)
    assert metrics["test_accuracy"] > 0.5
