"""Words of subword token ids, from the tokenizer itself (``--items word`` of transformer models).

A transformer's items are its tokenizer's subwords; word items put a word's subwords together. What a
word is, is the tokenizer's own answer, for every kind of tokenizer:

* :class:`TokenizerWords` (preferred): the ids of a document are decoded to text and encoded again by
  the fast tokenizer; when that gives back the same ids (it does for cleaned text, nearly always),
  the words are the encoding's ``word_ids()``: the pre-tokenizer's words (WordPiece: whitespace and
  punctuation split; byte-level BPE: GPT-2's regex, so ``"good!"`` is two words). A tokenizer
  without a word-splitting pre-tokenizer (SentencePiece models whose ``▁`` comes from the
  normaliser, e.g. Llama's) reports a whole text as one word; its words are then the runs of tokens
  not separated by whitespace in the text, read from the encoding's character offsets.
* :func:`marker_word_starts` (the fallback, and all a checkpoint's vocabulary allows): a rule on the
  token strings, chosen from the vocabulary's own markers: WordPiece's ``##`` continues a word;
  SentencePiece's ``▁`` and byte-level BPE's ``Ġ`` start one. It equals ``word_ids()`` for WordPiece;
  for the other two it glues punctuation to the word before it.

Why by hand: ``word_ids()`` needs text, and the audit's batches hold ids only (the prepared data keeps
ids); the round trip decode -> encode -> compare is checked, never assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch

#: markers of the three tokenizer kinds: (prefix, True if it starts a word / False if it continues)
_MARKERS = (("##", False), ("\u2581", True), ("\u0120", True))


def marker_word_starts(tokens: Sequence[str]) -> list[bool]:
    """Per token string, whether it starts a word, by the vocabulary's own marker (see the module).

    The kind is the marker most tokens carry; a vocabulary with none (a word-level one) makes
    every token a word.
    """
    counts = [sum(str(t).startswith(prefix) for t in tokens) for prefix, _ in _MARKERS]
    if max(counts) == 0:
        return [True] * len(tokens)
    prefix, starts = _MARKERS[counts.index(max(counts))]
    return [str(t).startswith(prefix) == starts for t in tokens]


class TokenizerWords:
    """The word of each subword, from a fast tokenizer's ``word_ids()`` or offsets.

    Args:
        tokenizer: a ``transformers`` fast tokenizer (``is_fast``).
        fallback: per token id, whether it starts a word (:func:`marker_word_starts`), used for a
            document whose ids the tokenizer does not give back from their own text.
    """

    def __init__(self, tokenizer: Any, fallback: Sequence[bool]) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("word items need a fast tokenizer (tokenizer.json): word_ids() and "
                             "offsets exist only there")
        self.tokenizer = tokenizer
        self.fallback = list(fallback)
        probe = tokenizer("one two", add_special_tokens=False)
        words = {w for w in probe.word_ids() if w is not None}
        #: True when the tokenizer's words are whole texts (no pre-tokenizer): use offsets
        self.by_offsets = len(words) < 2
        self._cached = lru_cache(maxsize=4096)(self._words)
        #: documents whose words came from the marker rule (the round trip failed)
        self.fallbacks = 0

    def _words(self, ids: tuple[int, ...]) -> tuple[int, ...]:
        """The word of each id (from 0, consecutive)."""
        text = self.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False)
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if tuple(encoding["input_ids"]) != ids:
            self.fallbacks += 1
            starts = [self.fallback[i] if i < len(self.fallback) else True for i in ids]
        elif self.by_offsets:
            offsets = encoding["offset_mapping"]
            starts = [i == 0 or offsets[i][0] > offsets[i - 1][1]
                      or text[offsets[i][0] : offsets[i][1]][:1].isspace()
                      for i in range(len(ids))]
        else:
            word_ids = encoding.word_ids()
            starts = [i == 0 or word_ids[i] is None or word_ids[i] != word_ids[i - 1]
                      for i in range(len(ids))]
        if starts:
            starts[0] = True  # a document's first token begins a word, whatever it is
        words, current = [], -1
        for start in starts:
            current += int(start)
            words.append(current)
        return tuple(words)

    def words(self, ids: Sequence[int]) -> tuple[int, ...]:
        """The word of each of one document's subword ids (from 0, consecutive)."""
        return self._cached(tuple(ids))

    def __call__(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` long: the word of each subword (from 0 in every row), -1 on padding.

        Args:
            token_ids: ``(B, T)`` subword ids, padding at the end of each row.
            mask: ``(B, T)`` bool, True for the documents' subwords (``Batch.mask``; an id 0 may
                be an ordinary token).
        """
        out = torch.full_like(token_ids, -1)
        for b, (row, n) in enumerate(zip(token_ids.tolist(), mask.sum(1).tolist(), strict=True)):
            ids = tuple(row[:n])
            out[b, : len(ids)] = torch.tensor(self._cached(ids), dtype=torch.long)
        return out


__all__ = ["TokenizerWords", "marker_word_starts"]
