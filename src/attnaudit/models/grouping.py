"""Items made of several tokens: a site's token-level output regrouped into larger items.

A transformer's sites attend over subword tokens; with word items (``--items word``) a word's
subwords are one item: erased together, their weights and scores summed. Everything the audit reads
is then per word, while the model still computes per token. This module is that bridge, for any
model whose items are consecutive groups of a site's token items:

* :func:`group_site` turns a site's token-level :class:`SiteOutput` into the grouped one: a group's
  attention is the sum of its tokens' (so it still sums to 1), and the token-level output stays in
  the cache for :func:`token_site`.
* :func:`expand_weights` turns ``(B, k, m)`` group candidates into token candidates for the model's
  own ``logits_with``: each group's weight is shared among its tokens in proportion to their
  attention, ``w_i = w_g * a_i / a_g``. Erasing a group (``w_g = 0``) zeroes all its tokens; the
  unmodified weights ``w = a`` give back the token attention exactly; a group whose attention
  underflowed to 0 shares its weight equally.
* :func:`group_scores` sums token-level scores into groups (rollout, head means).

Grouping is linear, so a linear readout stays linear: :func:`group_values` gives the per-group
values of the fast path, ``v_g = sum_i (a_i / a_g) v_i``.
"""

from __future__ import annotations

import torch

from attnaudit.models.base import ModelOutput, SiteOutput

#: cache keys of a grouped site (the token-level output it was made from)
TOKEN_ATTENTION, TOKEN_MASK, TOKEN_GROUP = "token_attention", "token_mask", "token_group"


def group_scores(scores: torch.Tensor, groups: torch.Tensor, m: int) -> torch.Tensor:
    """Sum token scores into their groups: ``(B, n), (B, n) -> (B, m)``.

    Args:
        scores: ``(B, n)`` per token (anything on tokens of group -1 is ignored).
        groups: ``(B, n)`` long: each token's group ``0..m-1``, -1 for padding and non-items.
        m: the number of groups (columns of the result).
    """
    real = groups >= 0
    summed = torch.zeros(scores.shape[0], m, dtype=scores.dtype, device=scores.device)
    return summed.scatter_add(1, groups.clamp(min=0), torch.where(real, scores, 0.0))


def group_site(out: SiteOutput, groups: torch.Tensor) -> SiteOutput:
    """The grouped output of a site from its token-level output.

    Args:
        out: the site's token-level output (attention and mask ``(B, n)``).
        groups: ``(B, n)`` long, each token's group (consecutive from 0 in every row), -1 for
            padding.
    Returns:
        attention and mask ``(B, m)`` over the groups (``m`` the most groups of any row); the cache
        keeps the site's own entries and the token-level attention, mask and groups.
    """
    groups = torch.where(out.mask, groups, -1)
    m = max(int(groups.max()) + 1, 1) if groups.numel() else 1
    attention = group_scores(out.attention, groups, m)  # (B, m)
    mask = group_scores(out.mask.to(attention.dtype), groups, m) > 0  # (B, m)
    cache = {**out.cache, TOKEN_ATTENTION: out.attention, TOKEN_MASK: out.mask, TOKEN_GROUP: groups}
    return SiteOutput(attention=attention, mask=mask, anchor=out.anchor, cache=cache)


def is_grouped(out: SiteOutput) -> bool:
    """Whether ``out`` was made by :func:`group_site`."""
    return TOKEN_GROUP in out.cache


def token_site(out: SiteOutput) -> SiteOutput:
    """The token-level output a grouped site was made from (:func:`group_site` undone)."""
    cache = {k: v for k, v in out.cache.items() if k not in (TOKEN_ATTENTION, TOKEN_MASK, TOKEN_GROUP)}
    return SiteOutput(attention=out.cache[TOKEN_ATTENTION], mask=out.cache[TOKEN_MASK],
                      anchor=out.anchor, cache=cache)


def token_output(output: ModelOutput, site: str) -> ModelOutput:
    """``output`` with ``site`` back at token level (the other sites and the batch unchanged)."""
    return ModelOutput(logits=output.logits,
                       sites={**output.sites, site: token_site(output.site(site))},
                       batch=output.batch)


def _shares(out: SiteOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's share of its group ``(B, n)`` (``a_i / a_g``; equal shares where ``a_g = 0``;
    0 on padding) and the gather index ``(B, n)`` of its group."""
    groups = out.cache[TOKEN_GROUP]
    index = groups.clamp(min=0)
    real = groups >= 0
    tokens = out.cache[TOKEN_ATTENTION]  # (B, n)
    group_attention = out.attention.gather(1, index)  # (B, n): a_g of each token's group
    counts = group_scores(torch.ones_like(tokens), groups, out.attention.shape[1]).gather(1, index)
    positive = group_attention > 0
    share = torch.where(positive, tokens / torch.where(positive, group_attention, 1.0),
                        1.0 / counts.clamp(min=1.0))
    return torch.where(real, share, 0.0), index


def expand_weights(weights: torch.Tensor, out: SiteOutput) -> torch.Tensor:
    """Token candidates ``(B, k, n)`` from group candidates ``(B, k, m)`` of a grouped site."""
    share, index = _shares(out)
    b, k, _ = weights.shape
    per_token = weights.gather(2, index[:, None, :].expand(b, k, -1))  # (B, k, n): w_g per token
    return per_token * share[:, None, :].to(weights.dtype)


def group_values(values: torch.Tensor, out: SiteOutput) -> torch.Tensor:
    """Per-group readout values ``(B, m, c)`` from per-token values ``(B, n, c)``: the attention-
    weighted mean of the group's tokens (what the pooling reads when the group's tokens keep their
    relative weights)."""
    share, index = _shares(out)
    weighted = values * share[..., None].to(values.dtype)  # (B, n, c)
    grouped = torch.zeros(values.shape[0], out.attention.shape[1], values.shape[2],
                          dtype=values.dtype, device=values.device)
    return grouped.scatter_add(1, index[..., None].expand_as(weighted), weighted)
