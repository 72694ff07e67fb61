"""Data layer: load labelled documents, split them, tokenise, index and batch them."""

from attnaudit.data.batching import (
    Limits,
    bucket,
    collate,
    encode_documents,
    index_documents,
    make_batches,
    padded_size,
    tokenize_document,
    tokenize_documents,
)
from attnaudit.data.default import DEFAULT_DATA_NOTE, fetch_default
from attnaudit.data.loaders import FORMATS, detect_format, load_documents
from attnaudit.data.prepare import (
    DataConfig,
    PreparedData,
    check_tokenizer_model,
    prepare_data,
    sort_labels,
)
from attnaudit.data.splits import (
    apply_splits,
    assign_splits,
    load_splits,
    save_splits,
    split_ids,
    subsample,
)
from attnaudit.data.text import clean_text, split_sentences, tokenize
from attnaudit.data.types import PAD_ID, UNK_ID, Batch, DataError, Document, EncodedDocument
from attnaudit.data.vocab import Vocab

__all__ = [
    "DEFAULT_DATA_NOTE",
    "FORMATS",
    "PAD_ID",
    "UNK_ID",
    "Batch",
    "DataConfig",
    "DataError",
    "Document",
    "EncodedDocument",
    "Limits",
    "PreparedData",
    "Vocab",
    "apply_splits",
    "assign_splits",
    "bucket",
    "check_tokenizer_model",
    "clean_text",
    "collate",
    "detect_format",
    "encode_documents",
    "fetch_default",
    "index_documents",
    "load_documents",
    "load_splits",
    "make_batches",
    "padded_size",
    "prepare_data",
    "save_splits",
    "sort_labels",
    "split_ids",
    "split_sentences",
    "subsample",
    "tokenize",
    "tokenize_document",
    "tokenize_documents",
]
