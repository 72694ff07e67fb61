"""``attention_head_mean``: rank a transformer site's items by its layer's attention averaged over heads.

At a single-head site ``L{l}.h{h}`` the scores are the classification row's attention of layer ``l``
averaged over all its heads (the ``L{l}`` site's attention), so one head's erasure curves can be
compared with the whole layer's view of the same items. At an all-heads site it equals ``attention``.
Transformer layer sites only: other models and hf-attnpool's ``pool`` site are refused.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding


@runtime_checkable
class HeadedSites(Protocol):
    """A model whose sites belong to multi-head attention layers (``attnaudit.models.hf``)."""

    def head_mean_attention(self, output: ModelOutput, site: str) -> torch.Tensor:
        """``(B, n)`` the site's layer's classification-row attention, averaged over heads."""
        ...


class HeadMeanAttentionRanking:
    """Scores are the mean over heads of the site's layer's classification-row attention."""

    name: ClassVar[str] = "attention_head_mean"
    label: ClassVar[str] = "attention (mean of heads)"
    color: ClassVar[str] = "#F5C26B"  # light orange: a relative of ``attention``

    @staticmethod
    def supports(model: AttentionClassifier, site: str) -> bool:
        """Whether this ranking applies to ``model``'s ``site`` (transformer layer sites only)."""
        return isinstance(model, HeadedSites) and site.startswith("L")

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` head-averaged attention, ``-inf`` on padding."""
        if not isinstance(model, HeadedSites):
            raise ValueError(
                f"ranking {self.name!r} needs a transformer with multi-head attention layers "
                f"(hf models); {model.kind!r} has none"
            )
        scores = model.head_mean_attention(output, site).detach().clone()  # (B, n)
        return mask_padding(scores, output.site(site).mask)
