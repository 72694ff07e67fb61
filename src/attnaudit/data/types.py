"""Core data types shared by loaders, batching, models and the attention tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from attnaudit.errors import DataError

__all__ = [
    "PAD_ID", "UNK_ID", "Batch", "DataError", "Document", "EncodedDocument", "InternedTokens",
]

# The id batches pad with, and the word vocabulary's <pad> row. Which cells are padding is the
# batch's ``mask`` (from the documents' lengths), never a test on this id: a Hugging Face tokenizer's
# id 0 may be an ordinary token (Qwen2's and Llama-3's "!").
PAD_ID = 0
UNK_ID = 1  # index of the unknown-word token


@dataclass(frozen=True)
class Document:
    """One labelled document as read from disk, before tokenisation.

    Attributes:
        doc_id: identifier unique within its dataset (file name, row number or an id column).
        text: the raw text.
        label: the class name as a string (e.g. ``"pos"``, ``"3"``, ``"www.bbc.co.uk"``).
        split: ``"train"``, ``"dev"``, ``"test"`` when the source fixes it, else ``None``.
    """

    doc_id: str
    text: str
    label: str
    split: str | None = None


@dataclass(frozen=True)
class EncodedDocument:
    """A tokenised, truncated, indexed document.

    Attributes:
        doc_id: as in :class:`Document`.
        label: class index into the dataset's label names.
        sentences: token ids per sentence, after length limits (no empty sentence).
        tokens: the token strings, same nesting as ``sentences`` (kept for reports).
    """

    doc_id: str
    label: int
    sentences: list[list[int]]
    tokens: list[list[str]] = field(repr=False)

    @property
    def num_tokens(self) -> int:
        return sum(len(s) for s in self.sentences)


@dataclass
class Batch:
    """A padded batch of documents.

    Attributes:
        doc_ids: list of ``B`` document ids.
        token_ids: ``(B, T)`` for flat models or ``(B, S, W)`` for hierarchical models; padding
            cells hold ``PAD_ID``.
        labels: ``(B,)`` gold class indices.
        mask: bool, shaped like ``token_ids``: True for the documents' tokens, False for padding.
            :func:`attnaudit.data.batching.collate` sets it from the documents' lengths, so a
            token whose id is ``PAD_ID`` (a tokenizer's ordinary id 0) stays a token. Left out,
            it is ``token_ids != PAD_ID``, which is right for the word vocabulary (id 0 is its
            ``<pad>``, never a token) and for hand-built batches.
    """

    doc_ids: list[str]
    token_ids: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor = None  # type: ignore[assignment]  # set in __post_init__ when left out

    def __post_init__(self) -> None:
        if self.mask is None:
            self.mask = self.token_ids != PAD_ID
        elif self.mask.shape != self.token_ids.shape:
            raise ValueError(f"mask {tuple(self.mask.shape)} is not shaped like token_ids "
                             f"{tuple(self.token_ids.shape)}")

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.doc_ids, self.token_ids.to(device), self.labels.to(device),
                     self.mask.to(device))

    def rows(self, rows: torch.Tensor | list[int]) -> Batch:
        """The batch of documents ``rows`` (indices into this one), in that order."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.token_ids.device)
        return Batch([self.doc_ids[i] for i in index.tolist()], self.token_ids[index],
                     self.labels[index.to(self.labels.device)], self.mask[index])

    def __len__(self) -> int:
        return len(self.doc_ids)


@dataclass
class InternedTokens:
    """The tokens of a sequence of documents, flattened and interned.

    Attributes:
        strings: the distinct token strings, in order of first occurrence.
        index: per kept token (document after document, sentence after sentence), its position
            in ``strings``; int32.
        sentence_lengths: tokens per sentence (all > 0); int32.
        document_sentences: sentences per input document (0: the document had no token and is to
            be dropped); int32, one per input text.
    """

    strings: list[str]
    index: np.ndarray[Any, np.dtype[np.int32]]
    sentence_lengths: np.ndarray[Any, np.dtype[np.int32]]
    document_sentences: np.ndarray[Any, np.dtype[np.int32]]

    def token_strings(self, index: np.ndarray[Any, Any] | None = None) -> list[str]:
        """The token strings of ``index`` (default: every token), gathered by numpy in C."""
        table = np.array(self.strings, dtype=object)
        return list(table[self.index if index is None else index].tolist())
