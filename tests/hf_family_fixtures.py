"""Tiny random sequence classifiers of every hosted family (no download): the conformance table.

Each is 2 layers, 4 heads (decoders: 2 key/value heads, grouped queries), hidden 32, feed-forward 64,
no dropout; ``initializer_range`` 0.3 (wide, so attention is peaked and erasure moves the logits).
:func:`family_config` builds the config; :func:`save_family` saves a model with ``save_pretrained``
beside the shipped MiniLM tokenizer (what a user's folder holds), to be loaded as a user would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from attnaudit.data.hf_tokenizer import minilm_folder

#: per model_type, what its config needs beyond the common sizes
FAMILY_EXTRA: dict[str, dict[str, Any]] = {
    "roberta": {"max_position_embeddings": 64},
    "xlm-roberta": {"max_position_embeddings": 64},
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "dropout": 0.0,
                   "attention_dropout": 0.0, "seq_classif_dropout": 0.0},
    "electra": {"embedding_size": 16},
    "albert": {"embedding_size": 16, "classifier_dropout_prob": 0.0},
    "modernbert": {"global_attn_every_n_layers": 2, "local_attention": 4,
                   "embedding_dropout": 0.0, "mlp_dropout": 0.0, "attention_dropout": 0.0},
    # v3's attention: relative positions in log buckets (4 here, so sequences of the tests reach
    # the logarithmic part; v3 has 256), c2p and p2c sharing the content projections, no absolute
    # positions, layer-normed relative embeddings
    "deberta-v2": {"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                   "share_att_key": True, "position_biased_input": False, "position_buckets": 4,
                   "max_relative_positions": 64, "max_position_embeddings": 64,
                   "norm_rel_ebd": "layer_norm", "pooler_dropout": 0.0,
                   "pooler_hidden_size": 32},
    # v1 (deberta-base): relative positions without buckets (span 64), c2p and p2c with their
    # own projections, no absolute positions
    "deberta": {"relative_attention": True, "pos_att_type": ["c2p", "p2c"],
                "position_biased_input": False, "max_relative_positions": 64,
                "max_position_embeddings": 64, "pooler_dropout": 0.0, "pooler_hidden_size": 32},
    "llama": {"num_key_value_heads": 2},
    "qwen2": {"num_key_value_heads": 2},
    "qwen3": {"num_key_value_heads": 2, "head_dim": 8},
    "mistral": {"num_key_value_heads": 2, "sliding_window": 4},
    "gemma": {"num_key_value_heads": 2, "head_dim": 8},
    "phi": {"num_key_value_heads": 2, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
    "phi3": {"num_key_value_heads": 2},
}

#: every family of the table; the quick tier runs these two (an encoder and a grouped-query decoder)
FAMILY_TYPES = list(FAMILY_EXTRA)
QUICK_TYPES = ("roberta", "llama")

#: parametrisation of the table: the quick tier's families plain, the others marked full
FAMILY_PARAMS = [t if t in QUICK_TYPES else pytest.param(t, marks=pytest.mark.full)
                 for t in FAMILY_TYPES]
DECODER_PARAMS = [t if t in QUICK_TYPES else pytest.param(t, marks=pytest.mark.full)
                  for t in ("llama", "qwen2", "qwen3", "mistral", "gemma", "phi", "phi3")]


def family_config(model_type: str, *, vocab_size: int, num_classes: int = 3,
                  special: tuple[int, int] = (101, 102), pad_id: int = 0) -> Any:
    """The tiny config of ``model_type`` (``special``: its [CLS]/BOS and [SEP]/EOS ids)."""
    common: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=num_classes, pad_token_id=pad_id,
        initializer_range=0.3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        bos_token_id=special[0], eos_token_id=special[1],
    )
    if model_type == "modernbert":
        common.update(cls_token_id=special[0], sep_token_id=special[1])
    return AutoConfig.for_model(model_type, **{**common, **FAMILY_EXTRA[model_type]})


def save_family(folder: Path, model_type: str, *, seed: int = 0,
                labels: tuple[str, ...] = ("0", "1")) -> Path:
    """A random ``model_type`` classifier of ``labels`` saved in ``folder`` with the MiniLM
    tokenizer."""
    import torch

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    torch.manual_seed(seed)
    config = family_config(model_type, vocab_size=len(tokenizer), num_classes=len(labels),
                           special=(tokenizer.cls_token_id, tokenizer.sep_token_id))
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
