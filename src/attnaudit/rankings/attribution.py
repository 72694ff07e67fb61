"""Input attributions (captum) turned into item scores at any attention site.

Every attribution ranking runs a captum method on the model's word vectors
(:meth:`AttentionClassifier.embed`, recomputed by :meth:`AttentionClassifier.logits_from_embeddings`)
for the predicted class, never the gold one: the audit asks what the model used for *its* decision.
The target is that class's logit (captum's convention; IG's completeness holds for it).
:meth:`AttentionClassifier.token_items` then maps tokens to the site's items: tokens (FLAN), sentences
(HAN's sentence site) or the anchor sentence's words (HAN's word site).

Two families:

* gradient methods (saliency, input x gradient, integrated gradients) give a vector per
  token, ``(B, ..., E)``, batched over documents, reduced by :func:`item_scores` with the rule
  ``aggregate``:

  - ``"sum"``: sum over embedding dims and the item's tokens. Signed and additive: for IG it is the
    item's share of ``f(x) - f(baseline)`` (completeness), so a sentence's score is the sum of its
    words' shares. The default.
  - ``"l2"``: the L2 norm of the item's tokens' attribution vectors (all of them stacked). Unsigned:
    dims that push opposite ways do not cancel, the usual reduction for saliency maps over
    embeddings; it ranks by how much the item matters either way.

* perturbation methods (occlusion, LIME, KernelSHAP) score each item as one feature (``feature_mask``
  from ``token_items``): all its tokens' vectors replaced by the zero baseline at once. They run per
  document, cut to its own size, and draw from a generator fixed by ``(seed, doc_id, purpose)``, so
  a document's scores do not depend on the batch it came in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch

from attnaudit.data.types import Batch
from attnaudit.erasure.memory import rows_per_pass
from attnaudit.models.base import AttentionClassifier, ModelOutput
from attnaudit.rankings.base import mask_padding
from attnaudit.utils.seeding import doc_rng

Aggregate = Literal["sum", "l2"]
AGGREGATES: tuple[Aggregate, ...] = ("sum", "l2")

#: the baseline every method here perturbs towards: the zero vector at each real token (the word
#: vocabulary's padding row's value; padding stays padding since the mask travels with the batch)
ZERO_EMBEDDING = "zero_embedding"

#: integrated-gradients steps evaluated per forward pass (bounds memory: batch x this many copies)
IG_STEPS_PER_PASS = 10


def item_scores(
    token_attributions: torch.Tensor, items: torch.Tensor, n_items: int, aggregate: Aggregate
) -> torch.Tensor:
    """Reduce per-token attribution vectors to one score per item.

    Args:
        token_attributions: ``(B, ..., E)``, e.g. ``(B, T, E)`` or ``(B, S, W, E)``.
        items: long, shaped like ``token_attributions`` without ``E``: each token's item index, -1 for
            tokens that are no item (:meth:`AttentionClassifier.token_items`).
        n_items: ``n``, the site's padded item count.
        aggregate: ``"sum"`` or ``"l2"`` (see the module docstring).
    Returns:
        ``(B, n)`` scores, 0 for items without tokens (padding; the caller masks them).
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    b = token_attributions.shape[0]
    vectors = token_attributions.reshape(b, -1, token_attributions.shape[-1])  # (B, L, E)
    index = items.reshape(b, -1)  # (B, L)
    index = torch.where(index >= 0, index, torch.full_like(index, n_items))  # non-items: a spare slot
    per_token = vectors.sum(-1) if aggregate == "sum" else vectors.pow(2).sum(-1)  # (B, L)
    totals = per_token.new_zeros(b, n_items + 1).scatter_add_(1, index, per_token)[:, :n_items]
    return totals if aggregate == "sum" else totals.sqrt()  # (B, n)


def predicted_class(output: ModelOutput) -> torch.Tensor:
    """``(B,)`` the predicted class of each document, the attribution target."""
    return output.logits.detach().argmax(dim=-1)


def pass_batch(output: ModelOutput) -> Batch:
    """The batch ``output`` was computed from; a clear error when the pass did not record it."""
    if output.batch is None:
        raise ValueError("attribution rankings need the pass's batch: compute it with model.run(batch)")
    return output.batch


class EmbeddingForward(torch.nn.Module):
    """``forward(embedded, token_ids, mask) -> (N, C)`` logits: the model above its word vectors, as a
    module (the form captum's attribution classes take). The token ids and the padding mask
    (``Batch.mask``) travel as additional forward arguments, so captum repeats them along with the
    inputs it expands (IG steps)."""

    def __init__(self, model: AttentionClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, embedded: torch.Tensor, token_ids: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """``embedded`` ``(N, ..., E)``, ``token_ids`` and ``mask`` ``(N, ...)`` -> ``(N, C)``."""
        n = token_ids.shape[0]
        batch = Batch([""] * n, token_ids, token_ids.new_zeros(n), mask)  # labels are never read
        return self.model.logits_from_embeddings(batch, embedded)


#: a captum gradient method bound to a forward module: ``(forward, embedded, forward_args, target,
#: rows) -> (B, ..., E)`` attributions; ``forward_args`` (the token ids and mask) go to captum's
#: ``additional_forward_args``; ``rows`` (>= B) bounds the copies of the documents one pass may
#: take (the memory budget: integrated gradients' ``internal_batch_size``)
GradientMethod = Callable[
    [EmbeddingForward, torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor, int], torch.Tensor
]


def gradient_item_scores(
    model: AttentionClassifier, output: ModelOutput, site: str, method: GradientMethod,
    aggregate: Aggregate,
) -> torch.Tensor:
    """``(B, n)`` item scores of a gradient-based captum method, ``-inf`` on padding (batched).

    Documents go to the method in groups, each pass within the memory budget
    (:func:`attnaudit.erasure.memory.rows_per_pass` with a backward); a document's attributions
    are its own, so the groups change nothing but the backend's blocking of sums.
    """
    batch = pass_batch(output)
    mask = output.site(site).mask
    rows = rows_per_pass(model, output, backward=True)
    predicted = predicted_class(output)
    parts = []
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):  # cuDNN RNN: no eval backward
        embedded = model.embed(batch).detach()  # (B, ..., E)
        for start in range(0, len(batch), rows):
            index = list(range(start, min(len(batch), start + rows)))
            group = batch if len(index) == len(batch) else batch.rows(index)
            inputs = embedded[start : start + len(index)].clone().requires_grad_(True)
            parts.append(method(EmbeddingForward(model), inputs, (group.token_ids, group.mask),
                                predicted[start : start + len(index)], rows))  # (b, ..., E)
    attributions = torch.cat(parts)  # (B, ..., E)
    items = model.token_items(batch, output, site)
    scores = item_scores(attributions.detach(), items, mask.shape[1], aggregate)
    return mask_padding(scores.to(mask.device), mask)


#: a captum perturbation method on one document: ``(forward, inputs, feature_mask, target, rows) ->
#: (n,)`` item scores. ``forward`` maps ``(k, m, E)`` item-token vectors to ``(k, C)`` logits;
#: ``inputs`` ``(1, m, E)`` are the document's item tokens, ``feature_mask`` ``(1, m, E)`` their
#: item indices; ``rows`` bounds the perturbed copies one pass may take (the memory budget,
#: captum's ``perturbations_per_eval``).
PerturbationMethod = Callable[
    [Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor, int, int], torch.Tensor
]


def document_alone(batch: Batch, row: int) -> Batch:
    """Document ``row`` of ``batch`` cut to its own size (no padding beyond its longest part)."""
    ids = batch.token_ids[row : row + 1]  # (1, T) or (1, S, W)
    real = batch.mask[row : row + 1]
    if ids.dim() == 2:
        cut: tuple[slice, ...] = (slice(None), slice(0, max(int(real.sum()), 1)))
    else:
        cut = (slice(None), slice(0, max(int(real.any(-1).sum()), 1)),
               slice(0, max(int(real.sum(-1).max()), 1)))
    return Batch([batch.doc_ids[row]], ids[cut], batch.labels[row : row + 1], real[cut])


@contextmanager
def seeded(seed: int, doc_id: str, purpose: str, device: torch.device) -> Iterator[None]:
    """Torch's global generators (which captum's samplers draw from) fixed by ``(seed, doc_id,
    purpose)`` inside the block and restored after it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(doc_rng(seed, doc_id, purpose).integers(2**63 - 1)))
        yield


def perturbation_item_scores(
    model: AttentionClassifier, output: ModelOutput, site: str, method: PerturbationMethod,
    *, seed: int | None = None, purpose: str = "",
) -> torch.Tensor:
    """``(B, n)`` item scores of a per-item perturbation method, ``-inf`` on padding (per document).

    Only the item tokens' vectors are inputs to the method: the rest of the document (other
    sentences at HAN's word site) stays as it is, so it is no player of LIME's or SHAP's game.
    """
    batch = pass_batch(output)
    mask = output.site(site).mask
    predicted = predicted_class(output)
    scores = torch.zeros(mask.shape, dtype=torch.float64, device=mask.device)
    for row, doc_id in enumerate(batch.doc_ids):
        n = int(mask[row].sum())
        if n == 0:
            continue
        doc = document_alone(batch, row)
        alone = output.index([row])
        rows = rows_per_pass(model, alone)  # perturbed copies per pass, within the budget
        items = model.token_items(doc, alone, site)[0]  # (T,) or (S, W)
        is_item = items >= 0  # the m item tokens, taken in row-major order
        with torch.no_grad():
            embedded = model.embed(doc)  # (1, ..., E)
            inputs = embedded[:, is_item]  # (1, m, E)
            feature_mask = items[is_item][None, :, None].expand_as(inputs)  # (1, m, E)

            def forward(vectors: torch.Tensor, doc: Batch = doc,
                        embedded: torch.Tensor = embedded,
                        is_item: torch.Tensor = is_item) -> torch.Tensor:
                k = vectors.shape[0]
                full = embedded.expand(k, *embedded.shape[1:]).clone()  # (k, ..., E)
                full[:, is_item] = vectors  # (k, m, E) into the item tokens' places
                ids = doc.token_ids.expand(k, *doc.token_ids.shape[1:])
                real = doc.mask.expand(k, *doc.mask.shape[1:])
                return model.logits_from_embeddings(Batch([""] * k, ids, ids.new_zeros(k), real),
                                                    full)

            if seed is None:
                values = method(forward, inputs, feature_mask, int(predicted[row]), rows)
            else:
                with seeded(seed, doc_id, purpose, inputs.device):
                    values = method(forward, inputs, feature_mask, int(predicted[row]), rows)
        scores[row, :n] = values.reshape(-1)[:n].to(scores)  # real items are a prefix
    return mask_padding(scores, mask)


#: perturbed copies per forward pass of the sampling methods (LIME, KernelSHAP)
SAMPLES_PER_PASS = 64


def sampled_attribution(method: Any, inputs: torch.Tensor, feature_mask: torch.Tensor,
                        target: int, samples: int, rows: int = SAMPLES_PER_PASS) -> torch.Tensor:
    """``(1, n)`` per-item values of a captum sampling method (``Lime``, ``KernelShap``: an instance
    around the document's forward function): ``samples`` perturbations of ``inputs`` ``(1, m, E)``,
    absent items at the zero embedding, one feature per item of ``feature_mask``, evaluated
    :data:`SAMPLES_PER_PASS` at a time, fewer where the memory budget allows only ``rows``."""
    values: torch.Tensor = method.attribute(
        inputs, baselines=0.0, target=target, feature_mask=feature_mask, n_samples=samples,
        perturbations_per_eval=max(1, min(SAMPLES_PER_PASS, rows)), return_input_shape=False,
    )
    return values


def first_of_each_item(attributions: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
    """``(n,)`` per-item values from captum's input-shaped ``(1, m, E)`` output, where every entry of
    an item holds the item's value."""
    ids = feature_mask[0, :, 0]  # (m,)
    values = attributions[0, :, 0]  # (m,)
    out = values.new_zeros(int(ids.max()) + 1)
    out[ids] = values  # repeats write the same value
    return out
