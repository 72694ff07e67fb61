"""``gradient``: rank items by the gradient of the decision with respect to their attention weight.

The weights are treated as independent inputs to the rest of the model (no renormalisation inside the
derivative), taken once at the unmodified input with dropout off, as in the paper. The derivative goes
through :meth:`AttentionClassifier.logits_with`, so it works at every site of every model.
``output="probability"`` (the paper's choice) differentiates the predicted class's softmax
probability; ``output="logit"`` its logit, which for a linear head is ``(V h_i)_y``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from attnaudit.erasure.memory import backward_factor, candidates_per_call
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding

GradientOutput = Literal["probability", "logit"]


def decision_gradient(
    model: AttentionClassifier,
    output: ModelOutput,
    site: str,
    *,
    wrt: GradientOutput = "probability",
) -> torch.Tensor:
    """Signed gradient of the predicted class's output w.r.t. each attention weight of ``site``.

    Args:
        model: the classifier, in eval mode.
        output: the unmodified forward pass; ``output.logits.argmax(-1)`` is the predicted class.
        site: the attention site.
        wrt: differentiate the softmax ``"probability"`` or the raw ``"logit"``.
    Returns:
        ``(B, n)`` gradients (0 on padding). The caller's ``.grad`` fields are left untouched.
    """
    if wrt not in ("probability", "logit"):
        raise ValueError(f"wrt must be 'probability' or 'logit', got {wrt!r}")
    key = ("decision_gradient", site, wrt)  # gradient and attention_x_gradient share one pass
    if key not in output.memo:
        output.memo[key] = _decision_gradient(model, output, site, wrt)
    return output.memo[key]


def _decision_gradient(
    model: AttentionClassifier, output: ModelOutput, site: str, wrt: GradientOutput
) -> torch.Tensor:
    # Documents in groups that fit the memory budget (attnaudit.erasure.memory): backward keeps
    # every recomputed layer's activations (backward_factor). Each document's gradient is its
    # own: groups change nothing but the backend's blocking of sums.
    docs = max(1, candidates_per_call(model, output, site) // backward_factor(model))
    b = output.logits.shape[0]
    if docs >= b:
        return _group_gradient(model, output, site, wrt)
    return torch.cat([_group_gradient(model, output.index(list(range(i, min(b, i + docs)))),
                                      site, wrt) for i in range(0, b, docs)])


def _group_gradient(
    model: AttentionClassifier, output: ModelOutput, site: str, wrt: GradientOutput
) -> torch.Tensor:
    out = output.site(site)
    weights = out.attention.detach().clone().requires_grad_(True)  # (B, n)
    predicted = output.logits.detach().argmax(dim=-1)  # (B,)
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):  # cuDNN RNN: no eval backward
        logits = model.logits_with(output, site, weights[:, None, :])[:, 0]  # (B, C)
        values = torch.softmax(logits, dim=-1) if wrt == "probability" else logits
        chosen = values.gather(1, predicted[:, None]).sum()  # rows are independent: sum is safe
        (grad,) = torch.autograd.grad(chosen, weights)
    return grad * out.mask.to(grad.dtype)


class GradientRanking:
    """Scores are ``d y_hat / d a_i`` (signed, largest first)."""

    name: ClassVar[str] = "gradient"
    label: ClassVar[str] = "gradient"
    color: ClassVar[str] = "#0072B2"  # Okabe-Ito blue

    def __init__(self, *, output: GradientOutput = "probability") -> None:
        self.output = output

    def rank(
        self, model: AttentionClassifier, output: ModelOutput, site: str, doc_ids: list[str]
    ) -> torch.Tensor:
        """``(B, n)`` gradients, ``-inf`` on padding."""
        grad = decision_gradient(model, output, site, wrt=self.output)
        return mask_padding(grad, output.site(site).mask)
