"""Fine-tuning any hosted family from a local folder: ``attnaudit train --model hf --base FOLDER``.

Each family's base is a tiny random model (2 layers, 4 heads, hidden 32: tests/hf_family_fixtures.py)
saved with ``save_pretrained`` beside the shipped MiniLM tokenizer, as a user's folder would be; the
data is the tiny separable JSONL set of the training tests. Nothing is downloaded. Per family:
one epoch of training, then ``audit`` and ``report`` of the run as for a MiniLM run, and the
audited model (the run's ``model.pt``) gives the logits of transformers' own classifier loaded
from the folder the run saved (``hf_model/``). The bases vary what a user holds: a
``...ForSequenceClassification`` of other classes (RoBERTa: a fresh head of the data's two), a bare
model (DistilBERT; Mistral, whose sliding window is shorter than the documents), a decoder whose
config names no padding token (Llama), a config file instead of the flag (ELECTRA).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from hf_family_fixtures import save_family
from test_checkpoint_training import write_dataset
from test_cli import one_error_line
from test_hf_cli import kill_after_an_epoch
from tolerances import assert_logits_close

from attnaudit.checkpoint import HF_MODEL_DIR, load_run
from attnaudit.cli import main
from attnaudit.data.types import PAD_ID, Batch
from attnaudit.models import MODELS

QUICK_AUDIT = ["--rankings", "random,attention", "--bootstrap", "0", "--permutations", "0",
               "--max-docs", "6", "--no-progress"]
#: per family: (what the base folder holds, how the base is named); roberta is the quick tier's
CASES: dict[str, tuple[str, str]] = {
    "roberta": ("classifier-of-3", "flag"),
    "distilbert": ("bare", "flag"),
    "electra": ("classifier-of-2", "config"),
    "albert": ("classifier-of-2", "flag"),
    "modernbert": ("classifier-of-2", "flag"),
    "deberta-v2": ("classifier-of-2", "flag"),
    "llama": ("no-pad", "flag"),
    "mistral": ("bare", "flag"),
    "gemma": ("classifier-of-2", "flag"),
    "phi3": ("classifier-of-2", "flag"),
}
QUICK = "roberta"
PARAMS = [t if t == QUICK else pytest.param(t, marks=pytest.mark.full) for t in CASES]


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()  # commands set it process-wide
    yield
    torch.set_num_threads(before)


def save_base(folder: Path, model_type: str, holds: str) -> Path:
    """A base folder of ``model_type`` holding a classifier of 2 or 3 classes, the bare model
    (no head), or a classifier whose config names no padding token."""
    labels = ("x", "y", "z") if holds == "classifier-of-3" else ("x", "y")
    save_family(folder, model_type, labels=labels)
    if holds == "bare":
        from transformers import AutoModel, AutoModelForSequenceClassification

        clf = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        bare = AutoModel.from_config(clf.config)
        bare.load_state_dict(clf.base_model.state_dict())
        for name in ("model.safetensors", "config.json"):
            (folder / name).unlink()
        bare.save_pretrained(folder)
    if holds == "no-pad":
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config["pad_token_id"] = None
        (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def train_args(tmp_path: Path, base: Path, data: Path, named: str) -> list[str]:
    if named == "config":
        toml = tmp_path / "run.toml"
        toml.write_text(f'[model]\nkind = "hf"\nbase = "{base}"\n', encoding="utf-8")
        return ["train", "--config", str(toml), "--data", str(data)]
    return ["train", "--model", "hf", "--base", str(base), "--data", str(data)]


def held_out_texts(run: Path, data: Path) -> list[str]:
    """The run's test documents' texts (splits.json's ids in the data file)."""
    ids = set(json.loads((run / "splits.json").read_text(encoding="utf-8"))["test"])
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows if str(r["id"]) in ids]


@pytest.mark.parametrize("model_type", PARAMS)
def test_a_family_fine_tuned_from_a_folder_is_audited_reported_and_saved_for_transformers(
    tmp_path: Path, model_type: str
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    holds, named = CASES[model_type]
    base = save_base(tmp_path / "base", model_type, holds)
    data = write_dataset(tmp_path / "tiny.jsonl", n=60)
    run = tmp_path / "run"
    args = train_args(tmp_path, base, data, named)
    assert main([*args, "--epochs", "1", "--threads", "1", "--out", str(run), "--no-progress"]) == 0
    assert main(["audit", str(run), *QUICK_AUDIT]) == 0
    if model_type != QUICK:
        # 2.8 s of CPU, which the quick tier has not got: its case stops at the audit (a
        # transformer run's report stays quick-tested in test_hf_cli.py)
        assert main(["report", str(run)]) == 0
        assert (run / "report.html").is_file()
    summary = json.loads((run / "audit" / "summary.json").read_text(encoding="utf-8"))
    assert list(summary["by_site"]) == ["L1"]

    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["base"] == str(base) and config["data"]["tokenizer"] == str(base)
    loaded = load_run(run)
    assert loaded.model.kind == "hf" and type(loaded.model) is not MODELS["hf"]  # the generic host
    saved = run / HF_MODEL_DIR
    reference = AutoModelForSequenceClassification.from_pretrained(saved, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(saved, local_files_only=True)
    # The data's classes, in the run's order, whatever the base's head held (x, y[, z]).
    assert loaded.label_names == ["neg", "pos"]
    assert reference.config.id2label == {0: "neg", 1: "pos"}
    assert reference.config.label2id == {"neg": 0, "pos": 1}
    assert reference.config.model_type == model_type
    if holds == "no-pad":  # the padding id set for the decoder, in its config and tokenizer
        assert reference.config.pad_token_id == tokenizer.pad_token_id == PAD_ID

    # The audited model is transformers' own classifier from the saved folder, class for class,
    # on the run's test documents (batched: padding and the classification position included).
    texts = held_out_texts(run, data)
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, ids))
    batch = torch.tensor([row + [PAD_ID] * (width - len(row)) for row in ids])
    with torch.no_grad():
        ours = loaded.model(Batch([str(i) for i in range(len(texts))], batch,
                                  torch.zeros(len(texts), dtype=torch.long)))
        theirs = reference.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert_logits_close(ours, theirs, d=64)  # float32, 64-wide feed-forward: tolerances.py
    # ... and the audit's decisions are that model's.
    removal = pd.read_parquet(run / "audit" / "removal.parquet")
    decided = dict(zip(removal["doc_id"].astype(str), removal["prediction"], strict=False))
    by_text = dict(zip(texts, theirs.argmax(dim=-1).tolist(), strict=True))
    rows = {str(json.loads(line)["id"]): json.loads(line)["text"]
            for line in data.read_text(encoding="utf-8").splitlines()}
    assert decided and all(_class(p, loaded.label_names) == by_text[rows[d]]
                           for d, p in decided.items())


def _class(prediction: Any, names: list[str]) -> int:
    """The audit's ``prediction`` column as a class index (a name or an index)."""
    return names.index(prediction) if isinstance(prediction, str) else int(prediction)


def test_a_folders_classifier_head_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    """Fine-tuning starts from the folder's transformer: a head of the data's size is drawn anew
    (its classes need not be the data's), every other weight is the folder's."""
    from transformers import AutoModelForSequenceClassification

    base = save_base(tmp_path / "base", "roberta", "classifier-of-2")
    theirs = AutoModelForSequenceClassification.from_pretrained(base, local_files_only=True)
    torch.manual_seed(1)
    ours = MODELS["hf"].from_pretrained(base, num_classes=2, fresh_head=True)  # type: ignore[attr-defined]
    kept = ours.hf.state_dict()
    for key, value in theirs.state_dict().items():
        if key.startswith("roberta."):
            assert torch.equal(kept[key], value), key
        elif value.dim() == 2:  # weights drawn anew (biases start at zero either way)
            assert not torch.equal(kept[key], value), key
    # the family's own initialisation: normal(0, initializer_range) weights, zero biases
    assert torch.count_nonzero(kept["classifier.out_proj.bias"]) == 0
    assert 0.2 < float(kept["classifier.dense.weight"].std()) < 0.4  # initializer_range 0.3
    # an import (audit --hf-model) keeps the folder's head
    imported = MODELS["hf"].from_pretrained(base)  # type: ignore[attr-defined]
    assert torch.equal(imported.hf.state_dict()["classifier.out_proj.weight"],
                       theirs.state_dict()["classifier.out_proj.weight"])


@pytest.mark.full
def test_a_killed_fine_tuning_of_another_family_resumes_to_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As MiniLM's (tests/test_hf_cli.py): killed after its first epoch's state is saved, the run
    ends exactly as an uninterrupted one, the folder for transformers included."""
    base = save_base(tmp_path / "base", "llama", "no-pad")
    data = write_dataset(tmp_path / "tiny.jsonl", n=60)
    args = [*train_args(tmp_path, base, data, "flag"), "--epochs", "2", "--threads", "1",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0
    kill_after_an_epoch(monkeypatch, [*args, "--out", str(tmp_path / "resumed")])
    assert not (tmp_path / "resumed" / HF_MODEL_DIR).exists()  # written with DONE
    assert main([*args, "--out", str(tmp_path / "resumed")]) == 0
    a = load_run(tmp_path / "straight").model.state_dict()
    b = load_run(tmp_path / "resumed").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "straight" / HF_MODEL_DIR / name).read_bytes() == (
            tmp_path / "resumed" / HF_MODEL_DIR / name).read_bytes(), name


def test_a_base_that_cannot_be_fine_tuned_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = save_base(tmp_path / "roberta", "roberta", "classifier-of-2")
    data = write_dataset(tmp_path / "tiny.jsonl", n=20)

    def refused(folder: Path, kind: str = "hf") -> str:
        capsys.readouterr()
        assert main(["train", "--model", kind, "--base", str(folder), "--data", str(data),
                     "--out", str(tmp_path / "out"), "--no-progress"]) == 2
        return one_error_line(capsys.readouterr().err)

    def variant(name: str, model_type: str | None = None, tokenizer: bool = True,
                **extra: Any) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for file in base.iterdir():
            if tokenizer or not file.name.startswith("tokenizer"):
                (folder / file.name).write_bytes(file.read_bytes())
        if model_type is not None:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            (folder / "config.json").write_text(
                json.dumps({**config, "model_type": model_type, **extra}), encoding="utf-8")
        return folder

    (tmp_path / "a-file").write_text("not a model", encoding="utf-8")
    line = refused(tmp_path / "a-file")
    assert "a file, not a folder" in line and "a-file" in line
    line = refused(variant("no-tokenizer", tokenizer=False))
    assert "no Hugging Face tokenizer" in line and "tokenizer.save_pretrained" in line
    line = refused(variant("deberta", "deberta", talking_head=True))
    assert "'deberta' with talking_head=True" in line and "not audited" in line
    line = refused(variant("gpt2", "gpt2"))
    assert "'gpt2' is not a family attnaudit hosts" in line and "roberta" in line
    line = refused(base, "hf-attnpool")
    assert "RoBERTa" in line and "use --model hf" in line


def test_a_decoders_padding_id_is_its_tokenizers_or_a_free_id_0_or_one_line() -> None:
    """A decoder whose config names no padding token gets the tokenizer's, else id 0 when that is
    a special token the tokenizer does not add around a text, else a refusal saying how to set
    one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from attnaudit.models.hf_generic import decoder_pad_id

    def tokenizer(bos: str, pad: str | None) -> Any:
        vocab = {"<s>": 0, "<unk>": 1, "<pad>": 2, "a": 3, "b": 4}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, unk_token="<unk>",
                                       pad_token=pad, additional_special_tokens=["<s>"])

    folder = Path("base")
    assert decoder_pad_id(tokenizer("<s>", "<pad>"), folder) == 2  # the tokenizer's own
    assert decoder_pad_id(tokenizer("<unk>", None), folder) == PAD_ID  # <s> = 0: special, free
    with pytest.raises(ValueError, match="set one") as err:
        decoder_pad_id(tokenizer("<s>", None), folder)  # id 0 begins every text
    assert "base" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.full
def test_the_pipeline_fine_tunes_another_family_beside_a_paper_model(tmp_path: Path) -> None:
    """``attnaudit run --models flan-none,hf --base FOLDER`` with a RoBERTa base: both models are
    trained, audited and reported, the transformer's run holds its folder for transformers."""
    base = save_base(tmp_path / "base", "roberta", "classifier-of-2")
    data = write_dataset(tmp_path / "tiny.jsonl", n=60)
    out = tmp_path / "run"
    assert main(["run", "--data", str(data), "--models", "flan-none,hf", "--base", str(base),
                 "--epochs", "1", "--rankings", "random,attention", "--bootstrap", "0",
                 "--permutations", "0", "--out", str(out), "--no-progress"]) == 0
    assert (out / "report.html").is_file()
    hf = out / "models" / "hf"
    assert (hf / "audit" / "summary.json").is_file()
    assert json.loads((hf / HF_MODEL_DIR / "config.json").read_text(encoding="utf-8"))[
        "model_type"] == "roberta"
    assert not (out / "models" / "flan-none" / HF_MODEL_DIR).exists()
