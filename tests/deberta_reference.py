"""A slow, by-hand DeBERTa-v2/v3 classifier: the reference of attnaudit's DeBERTa adapter.

:func:`deberta_by_hand` recomputes a ``DebertaV2ForSequenceClassification`` from its weights, one
document at a time (no padding, no batching), with loops over query and key positions for the
disentangled scores, written from the DeBERTa paper (He et al., 2021, eq. 4 and the v3 variant)
rather than from transformers' batched gathers:

    score[h, i, j] = (q_i . k_j  +  q_i . Kr[c2p(i, j)]  +  k_j . Qr[p2c(i, j)]) / sqrt(3 dh)

with ``Kr``/``Qr`` the relative-position embeddings through the key/query projections (v3 shares
them with the content ones: ``share_att_key``), ``c2p(i, j) = clamp(d(i, j) + s)`` and
``p2c(i, j) = clamp(-d(j, i) + s)`` for the bucketed distance ``d`` and span ``s``. Erasure masks
the erased keys *before* the softmax in the chosen rows and heads (the definition; the adapter
zeroes after it and renormalises, which is the same for zero weights). Only the log-bucket
function (``make_log_bucket_position``) and the scale's float32 rounding are taken from
transformers: they define which relative embedding a distance uses and DeBERTa's own constant,
not attention, and the adapter touches neither.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return nn.functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(T, H * dh)`` -> ``(H, T, dh)``."""
    return x.reshape(x.shape[0], heads, -1).transpose(0, 1)


def deberta_by_hand(
    model: nn.Module, ids: Sequence[int], *, layer: int = -1, head: int | None = None,
    erased: Sequence[int] = (), rows: Sequence[int] = (0,),
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``(C,)`` and each layer's probabilities ``(H, T, T)`` of one unpadded sequence.

    Args:
        model: a ``DebertaV2ForSequenceClassification`` (relative attention, log buckets,
            ``share_att_key``, no absolute positions, gelu; what v3 checkpoints use).
        ids: the whole sequence's token ids (``[CLS] .. [SEP]``).
        layer, head, erased, rows: in layer ``layer``'s rows ``rows`` (0: [CLS]), head ``head``
            (None: every head), the keys at positions ``erased`` are masked before the softmax.
    """
    config = model.config
    assert config.relative_attention and config.share_att_key
    assert not config.position_biased_input and config.hidden_act == "gelu"
    deberta = model.deberta
    heads = config.num_attention_heads
    t = len(ids)
    x = _layer_norm(deberta.embeddings.word_embeddings.weight[list(ids)],
                    deberta.embeddings.LayerNorm)  # (T, d)
    encoder = deberta.encoder
    rel = encoder.rel_embeddings.weight
    if "layer_norm" in config.norm_rel_ebd:
        rel = _layer_norm(rel, encoder.LayerNorm)
    span = config.position_buckets
    positions = torch.arange(t)
    distance = make_log_bucket_position(positions[:, None] - positions[None, :], span,
                                        config.max_relative_positions).long()  # (T, T): d(i, j)
    terms = 1 + len(config.pos_att_type)
    # DeBERTa's scale: sqrt computed in float32 whatever the model's dtype (its own constant)
    scale = float(torch.sqrt(torch.tensor(float(config.hidden_size // heads * terms))))
    every: list[torch.Tensor] = []
    for index, block in enumerate(encoder.layer):
        attention = block.attention.self
        q = _heads(attention.query_proj(x), heads)  # (H, T, dh)
        k = _heads(attention.key_proj(x), heads)
        v = _heads(attention.value_proj(x), heads)
        rel_q = _heads(attention.query_proj(rel[: 2 * span]), heads)  # (H, 2s, dh): Qr
        rel_k = _heads(attention.key_proj(rel[: 2 * span]), heads)  # Kr
        scores = torch.empty(heads, t, t, dtype=x.dtype)
        for i in range(t):
            for j in range(t):
                c2p = min(max(int(distance[i, j]) + span, 0), 2 * span - 1)
                p2c = min(max(-int(distance[j, i]) + span, 0), 2 * span - 1)
                total = (q[:, i] * k[:, j]).sum(-1)
                if "c2p" in config.pos_att_type:
                    total = total + (q[:, i] * rel_k[:, c2p]).sum(-1)
                if "p2c" in config.pos_att_type:
                    total = total + (k[:, j] * rel_q[:, p2c]).sum(-1)
                scores[:, i, j] = total / scale
        if index == layer % len(encoder.layer) and erased:
            for h in range(heads) if head is None else [head]:
                for i in rows:
                    scores[h, i, list(erased)] = -math.inf
        probs = torch.softmax(scores, dim=-1)  # (H, T, T)
        every.append(probs)
        context = (probs @ v).transpose(0, 1).reshape(t, -1)  # (T, d)
        out = block.attention.output
        x = _layer_norm(out.dense(context) + x, out.LayerNorm)
        inner = nn.functional.gelu(block.intermediate.dense(x))
        x = _layer_norm(block.output.dense(inner) + x, block.output.LayerNorm)
    assert model.config.pooler_hidden_act == "gelu"
    pooled = nn.functional.gelu(model.pooler.dense(x[0]))  # ContextPooler: the [CLS] state
    return model.classifier(pooled), every


__all__ = ["deberta_by_hand"]
