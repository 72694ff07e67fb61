"""``gradient``: rank items by the gradient of the decision with respect to their attention weight.

The weights are treated as independent inputs to the head (no renormalisation inside the derivative),
taken once at the unmodified input with dropout off, as in the paper. ``output="probability"`` (the
paper's choice) differentiates the predicted class's softmax probability; ``output="logit"``
differentiates its logit, which for a linear head is ``(V h_i)_y`` and ignores the other classes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding

GradientOutput = Literal["probability", "logit"]


def decision_gradient(
    model: AttentionClassifier, output: ModelOutput, *, wrt: GradientOutput = "probability"
) -> torch.Tensor:
    """Signed gradient of the predicted class's output w.r.t. each attention weight.

    Args:
        model: the classifier, in eval mode.
        output: the unmodified forward pass; ``output.logits.argmax(-1)`` is the predicted class.
        wrt: differentiate the softmax ``"probability"`` or the raw ``"logit"``.
    Returns:
        ``(B, n)`` gradients (0 on padding). The caller's ``.grad`` fields are left untouched.
    """
    if wrt not in ("probability", "logit"):
        raise ValueError(f"wrt must be 'probability' or 'logit', got {wrt!r}")
    states = output.states.detach()
    weights = output.attention.detach().clone().requires_grad_(True)
    predicted = output.logits.detach().argmax(dim=-1)  # (B,)
    with torch.enable_grad():
        logits = model.head(states, weights)  # (B, C)
        values = torch.softmax(logits, dim=-1) if wrt == "probability" else logits
        chosen = values.gather(1, predicted[:, None]).sum()  # rows are independent: sum is safe
        (grad,) = torch.autograd.grad(chosen, weights)
    return grad * output.mask.to(grad.dtype)


class GradientRanking:
    """Scores are ``d y_hat / d a_i`` (signed, largest first)."""

    name: ClassVar[str] = "gradient"

    def __init__(self, *, output: GradientOutput = "probability") -> None:
        self.output = output

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` gradients, ``-inf`` on padding."""
        return mask_padding(decision_gradient(model, output, wrt=self.output), output.mask)
