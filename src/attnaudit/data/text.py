"""Text cleaning, sentence splitting and tokenisation.

Everything here runs offline and fast: string methods and regular expressions for cleaning and
tokens, ``blingfire`` (a compiled finite-state sentence breaker) for sentences. The original system
used spaCy; blingfire needs no model download and is fast enough to matter, since every document of
a 50k-document corpus passes through here.
"""

from __future__ import annotations

import re

import blingfire

# `<br />`, `<br/>`, `<br>` in any case: IMDB reviews mark paragraph breaks this way.
_BR_RE = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)

# Tokens, tried in order: numbers with inner separators ("5.00", "1,000"); words with inner
# apostrophes ("don't", "o'neill"); runs of dots, dashes, "!" or "?" ("...", "--", "?!" is two);
# any other single non-space, non-word character. Hyphenated words split at the hyphen (as spaCy
# does), which keeps the vocabulary small.
_TOKEN_RE = re.compile(r"\d+(?:[.,:]\d+)+|\w+(?:['’]\w+)*|\.{2,}|-{2,}|!+|\?+|[^\w\s]")


def clean_text(text: str) -> str:
    """Turn ``<br />`` tags into line breaks and normalise whitespace.

    Runs of spaces/tabs become one space, each line is stripped, and runs of line breaks (with blank
    lines between) become one ``"\\n"``, which :func:`split_sentences` treats as a paragraph break.
    """
    text = _BR_RE.sub("\n", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # str.split() knows every Unicode space (no-break, em space, ...) and runs in C: several times
    # faster than a whitespace regex, which matters over a 50k-document corpus.
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences: at every line break, then with blingfire inside each paragraph.

    Empty sentences are dropped. blingfire alone joins lines (it reads ``"\\n"`` as a space), so the
    paragraph split comes first; a heading without a full stop stays its own sentence.
    """
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        split = blingfire.text_to_sentences(paragraph)
        if not split:
            # blingfire returns "" when it fails (it has no error channel): keep the paragraph whole.
            sentences.append(paragraph)
            continue
        for sentence in split.split("\n"):
            sentence = sentence.strip()
            if sentence:
                sentences.append(sentence)
    return sentences


def tokenize(sentence: str) -> list[str]:
    """Lowercase ``sentence`` and split it into word, number and punctuation tokens."""
    # Same tokens as _TOKEN_RE.findall(sentence.lower()) (no token spans whitespace), but most
    # whitespace-separated chunks are plain words that need no regex: ~30% faster overall.
    tokens: list[str] = []
    for chunk in sentence.lower().split():
        if chunk.isalnum():
            tokens.append(chunk)
        else:
            tokens += _TOKEN_RE.findall(chunk)
    return tokens
