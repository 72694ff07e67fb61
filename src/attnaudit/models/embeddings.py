"""Pretrained word vectors from a local text file, as an embedding table for a vocabulary.

Two plain-text formats are read, optionally gzipped (``.gz``):

- word2vec text (``gensim``'s ``save_word2vec_format(binary=False)``): a ``COUNT DIM`` header line,
  then ``word v1 ... vDIM`` per line;
- GloVe: the same vector lines with no header.

The original system trained 200-d word2vec vectors on each data set and L2-normalised them before
fine-tuning; every row of the table built here is scaled to unit L2 norm the same way. Vocabulary words
the file lacks get random vectors (normal, with the mean and spread of the loaded vectors, as AllenNLP
did), drawn from a seeded generator so the table is a function of ``(file, words, seed)`` alone.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import torch
from torch import nn

from attnaudit.data.types import PAD_ID, DataError

logger = logging.getLogger(__name__)


def make_embedding(vocab_size: int, dim: int) -> nn.Embedding:
    """A ``(vocab_size, dim)`` word-embedding table with a zero, frozen ``PAD_ID`` row.

    Values are drawn from N(0, 1/dim), so rows have about unit L2 norm like the original's normalised
    word2vec vectors. torch's default N(0, 1) gives rows of norm ~sqrt(dim) (14 for 200-d), which Adam
    then moves only slowly: on IMDB it cost 5-10 accuracy points after one epoch (see the README).
    """
    embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
    with torch.no_grad():
        embedding.weight.normal_(0.0, dim**-0.5)
        embedding.weight[PAD_ID] = 0.0
    return embedding


def _open_text(path: Path) -> IO[str]:
    # errors="replace": a stray bad byte in one word of a multi-GB file should not stop the load;
    # such a word cannot match a vocabulary word anyway.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def load_embeddings(
    path: str | os.PathLike[str],
    words: Sequence[str],
    *,
    dim: int | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> torch.Tensor:
    """Build a ``(len(words), dim)`` embedding table from a word2vec-text or GloVe file.

    Args:
        path: the vectors file (``.gz`` allowed).
        words: the vocabulary, ``words[i]`` being the token with id ``i``. Row ``PAD_ID`` stays zero.
        dim: expected vector size (the model's ``embedding_dim``); ``None`` takes the file's.
        seed: seed of the random vectors given to words the file lacks.
        normalize: scale every row to unit L2 norm, as the original did.
    Returns:
        ``(V, dim)`` float32 table. A word missing from the file is also looked up lowercased.
    Raises:
        DataError: the file is missing, empty, or has a malformed line (the message names the file
            and the line number), or its vectors are not ``dim``-dimensional.

    Example:
        >>> table = load_embeddings("vectors.txt", ["<pad>", "<unk>", "good"], dim=200)  # doctest: +SKIP
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: embeddings file not found")
    index: dict[str, int] = {}
    for i, word in enumerate(words):
        index.setdefault(word, i)
    found: dict[int, torch.Tensor] = {}
    exact: set[int] = set()  # ids matched by their exact spelling: a lowercased match never overrides
    file_dim = dim
    num_vectors = 0
    with _open_text(file) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n").rstrip(" ")  # word2vec's writer leaves a trailing space
            if not line:
                continue
            if line_no == 1 and _is_header(line.split(" ")):
                header_dim = int(line.split(" ")[1])
                if dim is not None and header_dim != dim:
                    raise DataError(
                        f"{file}, line 1: header says {header_dim}-d vectors, the model needs {dim}"
                    )
                file_dim = header_dim
                continue
            if file_dim is None:  # GloVe: the first vector line fixes the size
                file_dim = len(line.split(" ")) - 1
                if file_dim < 1:
                    raise DataError(f"{file}, line {line_no}: no numbers after the word")
            # rsplit: a few GloVe files have words with spaces; the last file_dim fields are numbers.
            fields = line.rsplit(" ", file_dim)
            if len(fields) != file_dim + 1 or not fields[0]:
                raise DataError(
                    f"{file}, line {line_no}: expected a word and {file_dim} numbers, "
                    f"found {len(line.split(' '))} fields"
                )
            num_vectors += 1
            word = fields[0]
            exact_id = index.get(word)
            is_exact = exact_id is not None
            row = exact_id if exact_id is not None else index.get(word.lower())
            if row is None or row == PAD_ID or row in exact or (not is_exact and row in found):
                continue
            try:
                found[row] = torch.tensor([float(x) for x in fields[1:]], dtype=torch.float32)
            except ValueError:
                raise DataError(f"{file}, line {line_no}: a vector value is not a number") from None
            if is_exact:
                exact.add(row)
    if file_dim is None or num_vectors == 0:
        raise DataError(f"{file}: no vectors in the file")

    generator = torch.Generator().manual_seed(seed)
    if found:
        loaded = torch.stack(list(found.values()))  # (F, dim)
        mean = loaded.mean().item()
        std = loaded.std().item() if loaded.numel() > 1 else 1.0
    else:
        mean, std = 0.0, 1.0
    table = torch.randn(len(words), file_dim, generator=generator) * std + mean  # (V, dim)
    for i, vector in found.items():
        table[i] = vector
    if normalize:
        table = table / table.norm(dim=1, keepdim=True).clamp(min=1e-12)
    if 0 <= PAD_ID < len(words):
        table[PAD_ID] = 0.0
    logger.info(
        "embeddings %s: %d of %d vocabulary words found (%.1f%%), the rest random",
        file, len(found), len(words), 100.0 * len(found) / max(len(words), 1),
    )
    return table
