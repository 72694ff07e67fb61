"""Word items from the tokenizer's own ``word_ids()``/offsets, for every tokenizer kind (offline).

WordPiece is the shipped MiniLM tokenizer; byte-level BPE (``Ġ``), SentencePiece-style Unigram with a
``▁`` pre-tokenizer, and a Llama-style BPE whose ``▁`` comes from the normaliser (no pre-tokenizer,
so ``word_ids()`` calls a whole text one word) are trained here on a few sentences with the
``tokenizers`` library. The words recovered from ids alone must be the ones the tokenizer gives the
original text.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from attnaudit.data.hf_tokenizer import minilm_folder
from attnaudit.models.hf_words import TokenizerWords, marker_word_starts

CORPUS = [
    "An unwatchable film, frankly: the plot isn't there.",
    "Great fun to watch! The actors were wonderful and the ending surprised everyone.",
    "I didn't like it; the dialogue was wooden and the pacing dragged on and on.",
    "Unbelievably boring. Nothing happens for two hours, then it just stops.",
] * 5
TEXTS = ["The unwatchable ending dragged, frankly.", "Great actors! I didn't like it."]


def _fast(tokenizer: Tokenizer) -> Any:
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>",
                                   pad_token="<pad>")


def _byte_level() -> Any:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return _fast(tok)


def _unigram() -> Any:
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<pad>", "<unk>"], unk_token="<unk>"))
    return _fast(tok)


def _llama_style() -> Any:
    """``▁`` from the normaliser, no pre-tokenizer (as Llama's tokenizer.json): trained with a
    ``▁`` pre-tokenizer (SentencePiece never merges across words), which is then removed."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<pad>", "<unk>"]))
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Strip(" ", 1, 0)])
    return _fast(tok)


def _minilm() -> Any:
    return AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)


def _starts(words: list[int | None]) -> list[bool]:
    return [i == 0 or words[i] != words[i - 1] for i in range(len(words))]



def _row(ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One document's ids as a batch row and its mask (every id a token)."""
    return torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool)

@pytest.mark.parametrize("build", [_minilm, _byte_level, _unigram])
def test_words_from_ids_are_the_tokenizers_word_ids(build: Any) -> None:
    tokenizer = build()
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    words = TokenizerWords(tokenizer, marker_word_starts(vocab))
    assert not words.by_offsets
    for text in TEXTS:
        encoding = tokenizer(text, add_special_tokens=False)
        got = words(*_row(encoding["input_ids"]))[0].tolist()
        assert _starts(got) == _starts(encoding.word_ids()), text
    assert words.fallbacks == 0


def test_byte_level_words_split_punctuation_unlike_the_marker_rule() -> None:
    """GPT-2's pre-tokenizer makes "dragged," two words; the Ġ marker would glue the comma on."""
    tokenizer = _byte_level()
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    words = TokenizerWords(tokenizer, marker_word_starts(vocab))
    ids = tokenizer("it dragged,", add_special_tokens=False)["input_ids"]
    got = words(*_row(ids))[0].tolist()
    assert got[-1] == got[-2] + 1  # the comma is a word of its own
    markers = marker_word_starts([vocab[i] for i in ids])
    assert markers[-1] is False


def test_a_tokenizer_without_a_pre_tokenizer_gets_whitespace_words_from_offsets() -> None:
    tokenizer = _llama_style()
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    words = TokenizerWords(tokenizer, marker_word_starts(vocab))
    assert words.by_offsets  # word_ids() calls the whole text one word
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        got = words(*_row(ids))[0].tolist()
        assert max(got) + 1 == len(text.split()), (text, tokenizer.convert_ids_to_tokens(ids))


def test_padding_is_no_word_and_each_row_counts_from_zero() -> None:
    tokenizer = _minilm()
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    words = TokenizerWords(tokenizer, marker_word_starts(vocab))
    rows = tokenizer(TEXTS, add_special_tokens=False, padding=True, return_tensors="pt")
    got = words(rows["input_ids"], rows["attention_mask"].bool())
    assert (got[rows["attention_mask"] == 0] == -1).all()
    assert (got[:, 0] == 0).all()
