"""Vocabulary: token strings to ids, with the padding token at id 0.

The project's own word vocabulary has ``<pad>`` = 0 and ``<unk>`` = 1; a Hugging Face tokenizer's
vocabulary (see :mod:`attnaudit.data.hf_tokenizer`) keeps the tokenizer's ids, its padding token
(which must be id 0) and its unknown token, e.g. ``[PAD]`` = 0 and ``[UNK]`` = 100 for BERT.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, repeat
from typing import Any

from attnaudit.data.types import PAD_ID, UNK_ID, DataError

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"


class Vocab:
    """A fixed mapping between token strings and ids.

    ``itos[i]`` is the token of id ``i``. A word vocabulary reserves ids ``PAD_ID`` (0) and
    ``UNK_ID`` (1) for ``<pad>`` and ``<unk>``. Build one with
    :meth:`build` from training tokens, save it with :meth:`to_dict` beside a checkpoint and
    restore it with :meth:`from_dict`.

    Args:
        itos: the token of each id.
        unk_token: None for a word vocabulary. A tokenizer's vocabulary names its own unknown
            token (e.g. ``"[UNK]"``), anywhere in ``itos``; any of its ids may be an ordinary
            token, 0 included (batches mark padding by lengths, ``Batch.mask``).

    Attributes:
        unk_id: the id that unknown strings map to: ``UNK_ID`` for a word vocabulary, the
            tokenizer's (e.g. 100 for BERT's ``[UNK]``) for a tokenizer's.
    """

    def __init__(self, itos: Sequence[str], *, unk_token: str | None = None) -> None:
        itos = list(itos)
        # The word vocabulary's layout (the erasure code relies on <unk> being UNK_ID); a
        # tokenizer's keeps its own ids.
        if unk_token is None and (
            len(itos) < 2 or itos[PAD_ID] != PAD_TOKEN or itos[UNK_ID] != UNK_TOKEN
        ):
            raise DataError(
                f"vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}; got {itos[:2]!r}"
            )
        stoi = {token: i for i, token in enumerate(itos)}
        if len(stoi) != len(itos):
            dupes = sorted(t for t, c in Counter(itos).items() if c > 1)
            raise DataError(f"vocabulary has duplicate tokens: {dupes[:5]!r}")
        if unk_token is not None and unk_token not in stoi:
            raise DataError(f"vocabulary has no unknown token {unk_token!r}")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = stoi
        self._unk_token = unk_token
        self.unk_id: int = UNK_ID if unk_token is None else stoi[unk_token]

    @property
    def unk_token(self) -> str:
        """The token of :attr:`unk_id`."""
        return self.itos[self.unk_id]

    @property
    def specials(self) -> dict[str, str]:
        """``{"unk_token": ...}`` for a tokenizer's vocabulary, ``{}`` for a word vocabulary: the
        keyword arguments that rebuild this vocabulary from :attr:`itos`, and what :meth:`to_dict`
        adds to ``itos``."""
        return {} if self._unk_token is None else {"unk_token": self._unk_token}

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Iterable[str]],
        *,
        min_count: int = 5,
        max_size: int | None = None,
    ) -> Vocab:
        """Count tokens and keep those seen at least ``min_count`` times.

        Args:
            token_lists: token sequences (e.g. one per sentence or per document).
            min_count: rarer tokens map to ``<unk>``. 5 is the original system's threshold.
            max_size: cap on the size including ``<pad>`` and ``<unk>``; the most frequent win.

        The order is by count, most frequent first, then by the token string, so the same corpus
        gives the same ids whatever order its documents came in.
        """
        return cls.from_counts(
            Counter(chain.from_iterable(token_lists)), min_count=min_count, max_size=max_size
        )

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        *,
        min_count: int = 5,
        max_size: int | None = None,
    ) -> Vocab:
        """:meth:`build` from token counts already made (e.g. by numpy over interned tokens).

        Args:
            counts: occurrences per token string (tokens below ``min_count`` may be left out).
            min_count, max_size: as for :meth:`build`.
        """
        if min_count < 1:
            raise DataError(f"min_count must be at least 1, got {min_count}")
        if max_size is not None and max_size < 2:
            raise DataError(f"max_size must be at least 2 (<pad>, <unk>), got {max_size}")
        # The reserved strings cannot be real tokens: leave them out if the text happens to hold them.
        kept = sorted(
            (item for item in counts.items()
             if item[1] >= min_count and item[0] not in (PAD_TOKEN, UNK_TOKEN)),
            key=lambda item: (-item[1], item[0]),
        )
        itos = [PAD_TOKEN, UNK_TOKEN] + [token for token, _ in kept]
        if max_size is not None:
            itos = itos[:max_size]
        return cls(itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token strings to ids; unknown tokens become :attr:`unk_id` (``UNK_ID`` for words)."""
        # map() with a bound dict method runs the lookups without a Python frame per token: about
        # 4x faster than the equivalent comprehension over a corpus.
        return list(map(self.stoi.get, tokens, repeat(self.unk_id)))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids back to token strings."""
        return [self.itos[i] for i in ids]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vocab) and self.itos == other.itos
                and self.specials == other.specials)

    def __hash__(self) -> int:
        return hash((tuple(self.itos), self._unk_token))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form for checkpoints: ``{"itos": [...]}``, plus ``unk_token`` for a
        tokenizer's vocabulary (a word vocabulary's form is unchanged)."""
        return {"itos": list(self.itos), **self.specials}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """Inverse of :meth:`to_dict`."""
        try:
            itos = data["itos"]
        except (KeyError, TypeError) as err:
            raise DataError("vocabulary data has no 'itos' list") from err
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise DataError("vocabulary 'itos' must be a list of strings")
        unk_token = data.get("unk_token")
        if unk_token is not None and not isinstance(unk_token, str):
            raise DataError("vocabulary 'unk_token' must be a string")
        return cls(itos, unk_token=unk_token)
