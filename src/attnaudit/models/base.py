"""The model protocol every attention classifier implements: attention *sites* and recomputation.

A model declares the attention distributions it exposes (:meth:`AttentionClassifier.sites`): FLAN's
token pooling, HAN's sentence pooling and its word attention, later a transformer's heads. Everything
the audit does goes through three methods:

    output = model.run(batch)                         # logits (B, C) + per site: attention (B, n),
                                                      #   mask (B, n), anchor (B,), private cache
    logits = model.logits_with(output, site, w)       # w: (B, k, n) candidate weights -> (B, k, C)
    readout = model.linear_readout(output, site)      # the fast path's capability, or None

``logits_with`` recomputes everything downstream of the site from the cache; it is the one entry
point the tests and rankings call, so nothing outside ``models/`` touches a model's layers. Where the
pooling is linear and feeds the head directly (``z = sum_i a_i h_i``, the paper's last layer), the
model offers a :class:`LinearReadout`, with which the erasure engine computes all ``n + 1`` erasure
steps from suffix sums in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from attnaudit.data.types import Batch, EncodedDocument
from attnaudit.models.embeddings import make_embedding


@dataclass(frozen=True)
class Site:
    """An attention distribution a model exposes to the audit.

    Attributes:
        name: registry key used on the command line (``--sites``), e.g. ``"sentence"``.
        label: display name.
        item: what one item is: ``"token"`` (the document's tokens), ``"sentence"`` (its sentences),
            ``"word"`` (the words of the anchor sentence, see :class:`SiteOutput`) or
            ``"whole_word"`` (a transformer's words, each its subword tokens together).
        paper: True for the site Serrano & Smith manipulated (the last attention layer).
        description: one sentence for the report.
        cannot_flip: what erasing every item leaves, which says why a document cannot flip there
            (:data:`attnaudit.results.advice.SiteKind`): ``"pooling"`` (the head's bias alone),
            ``"inner_pooling"`` (a pooling inside one part of the document: the other parts
            remain) or ``"layer"`` (a transformer layer: the residual path remains).
    """

    name: str
    label: str
    item: str
    paper: bool = False
    description: str = ""
    cannot_flip: str = "pooling"  # a SiteKind; typed str so that models never import results

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metadata (written into summary.json for the torch-free report)."""
        return {"label": self.label, "item": self.item, "paper": self.paper,
                "description": self.description, "cannot_flip": self.cannot_flip}


@dataclass
class SiteOutput:
    """One site's attention in an unmodified pass.

    Attributes:
        attention: ``(B, n)`` weights, summing to 1 over real items, exactly 0 on padding.
        mask: ``(B, n)`` bool, True for real items.
        anchor: ``(B,)`` long: for a site inside one part of the document (HAN's word site: the
            sentence whose words are the items) that part's index, else -1.
        cache: what :meth:`AttentionClassifier.logits_with` needs to recompute; private to the model.
            Every tensor in it has the batch as its first dimension (:meth:`ModelOutput.index`).
    """

    attention: torch.Tensor
    mask: torch.Tensor
    anchor: torch.Tensor
    cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


@dataclass
class ModelOutput:
    """An unmodified forward pass: logits and the attention of every requested site.

    Attributes:
        logits: ``(B, C)`` class scores.
        sites: site name -> :class:`SiteOutput`.
    """

    logits: torch.Tensor
    sites: dict[str, SiteOutput]
    #: quantities derived from this pass and shared by its users (e.g. the decision gradient, which
    #: two rankings read); keyed by who computed them
    memo: dict[Any, torch.Tensor] = field(default_factory=dict, repr=False)
    #: the batch this pass was computed from (set by :meth:`AttentionClassifier.run`): input-level
    #: rankings (captum attributions) read its token ids
    batch: Batch | None = field(default=None, repr=False)

    def index(self, rows: torch.Tensor | Sequence[int]) -> ModelOutput:
        """The same output for a subset of the documents (every cache tensor is batch-first)."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.logits.device)
        return ModelOutput(
            logits=self.logits[rows],
            sites={
                name: SiteOutput(
                    attention=out.attention[rows],
                    mask=out.mask[rows],
                    anchor=out.anchor[rows],
                    cache={key: value[rows] for key, value in out.cache.items()},
                )
                for name, out in self.sites.items()
            },
            batch=None if self.batch is None else self.batch.rows(rows),
        )

    def site(self, name: str) -> SiteOutput:
        """The output of site ``name``; a clear error when the pass did not compute it."""
        try:
            return self.sites[name]
        except KeyError:
            raise ValueError(f"site {name!r} not in this output; it has {sorted(self.sites)}") from None


@dataclass
class LinearReadout:
    """A site whose erasure is linear: logits(w) = readout(sum_i w_i values_i / sum_i w_i).

    Attributes:
        values: ``(B, n, m)`` per-item vectors: the states ``h_i`` (m = d) or, with an affine head,
            their class scores ``V h_i`` (m = C, far cheaper to sum).
        readout: ``(..., m) -> (..., C)``: the rest of the model from the pooled vector; the zero
            vector stands for "nothing left" (the head's bias).
    """

    values: torch.Tensor
    readout: Callable[[torch.Tensor], torch.Tensor]


#: the item kind of a transformer's site with word items: a word's subword tokens together
WHOLE_WORD = "whole_word"
#: how WordPiece (BERT's tokenizer) marks a subword that continues the previous token's word
CONTINUATION_PREFIX = "##"


def word_starts(tokens: Sequence[str]) -> list[bool]:
    """Whether each subword token begins a word, by its tokenizer's marker
    (:func:`attnaudit.models.hf_words.marker_word_starts`).

    WordPiece (BERT's): the pre-tokenizer splits text at whitespace and punctuation, and every piece
    after a word's first carries ``##``; so ``##`` alone decides the words, exactly as the
    tokenizer's own ``word_ids()`` would (``"isn't"`` is three words: ``isn``, ``'``, ``t``).
    SentencePiece's ``▁`` and byte-level BPE's ``Ġ`` mark a word's *first* piece (punctuation without
    a space then joins the word before it; a model given its tokenizer takes words from
    ``word_ids()`` instead, see :class:`attnaudit.models.hf_words.TokenizerWords`). The first token
    always begins one.
    """
    from attnaudit.models.hf_words import marker_word_starts

    starts = marker_word_starts(tokens)
    return [i == 0 or start for i, start in enumerate(starts)]


def whole_words(tokens: Sequence[str], starts: Sequence[bool] | None = None) -> list[str]:
    """The words of subword tokens: ``["un", "##watch", "##able", "!"] -> ["unwatchable", "!"]``,
    ``["▁un", "watch", "able"] -> ["unwatchable"]`` (markers dropped). ``starts``: which tokens
    begin a word, where the model groups them otherwise than the markers do (its tokenizer's
    ``word_ids()``: :meth:`AttentionClassifier.word_starts`); None: the markers' rule."""
    words: list[str] = []
    chosen = word_starts(tokens) if starts is None else [i == 0 or start
                                                        for i, start in enumerate(starts)]
    for token, begins in zip(tokens, chosen, strict=True):
        bare = token.removeprefix(CONTINUATION_PREFIX) if token.startswith(CONTINUATION_PREFIX) \
            else token.removeprefix("\u2581").removeprefix("\u0120") or token
        if begins:
            words.append(bare)
        else:
            words[-1] += bare
    return words


def item_texts(site: Site, doc: EncodedDocument, anchor: int,
               starts: Sequence[bool] | None = None) -> list[str]:
    """Text of each item of ``site`` in ``doc``: tokens, sentences, or the anchor sentence's words;
    ``starts``: for whole-word items, which tokens begin a word as the model groups them (None:
    the markers' rule, :func:`whole_words`)."""
    if site.item == "token":
        return [token for sentence in doc.tokens for token in sentence]
    if site.item == "sentence":
        return [" ".join(sentence) for sentence in doc.tokens]
    if site.item == "word":
        return list(doc.tokens[anchor]) if 0 <= anchor < len(doc.tokens) else []
    if site.item == WHOLE_WORD:
        return whole_words([token for sentence in doc.tokens for token in sentence], starts)
    raise ValueError(f"site {site.name!r} has unknown item kind {site.item!r}")


#: low mantissa bits of a float32 score ignored when ordering items: 8 of 23, so scores equal to within
#: about 2**-15 (relative) count as tied and go by position. Float rounding makes mathematically equal
#: weights (the same token twice under a no-encoder model) differ in their last bits depending on the
#: padded length of the batch (vectorised and scalar kernels round differently), which would make the
#: chosen item depend on batching.
TIE_BITS = 8


def tie_key(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` as float32 with the :data:`TIE_BITS` lowest mantissa bits cleared (same shape).

    Truncation keeps the order of scores that differ by more than the tie tolerance, and +-inf.
    """
    as_int = scores.detach().to(torch.float32).contiguous().view(torch.int32)
    return (as_int & ~((1 << TIE_BITS) - 1)).view(torch.float32)


def renormalise(values: torch.Tensor) -> torch.Tensor:
    """``values`` ``(..., n)`` (non-negative) scaled to sum to 1 over the last dimension; a row
    with nothing left (sum 0) stays all zero rather than becoming NaN."""
    total = values.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, values / torch.where(total > 0, total, 1.0), 0.0)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim with masked positions set to exactly zero.

    Args:
        scores: ``(..., n)`` raw scores.
        mask: ``(..., n)`` bool, True where the position is real.
    Returns:
        ``(..., n)`` weights; rows with no real position are all zero (not NaN).
    """
    scores = scores.masked_fill(~mask, float("-inf"))
    # Rows with no real item would give NaN; give them a harmless finite row first.
    empty = ~mask.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(empty, 0.0)
    weights = torch.softmax(scores, dim=-1)
    return weights * mask.to(weights.dtype)


def select_sites(kind: str, sites: Sequence[Site], requested: Sequence[str] | None) -> tuple[str, ...]:
    """The ``requested`` site names (None = all) of a model of ``kind`` declaring ``sites``, in
    declaration order.

    Raises:
        ValueError: a name not declared (the message lists the choices).
    """
    declared = [s.name for s in sites]
    if requested is None:
        return tuple(declared)
    unknown = [name for name in requested if name not in declared]
    if unknown:
        raise ValueError(
            f"{kind} has no attention site {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(declared)}"
        )
    return tuple(name for name in declared if name in requested)


class AdditiveAttention(nn.Module):
    """Additive attention of Yang et al. (2016): ``score_i = u . tanh(W h_i + b)``.

    Args:
        dim: size ``d`` of the states attended over.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)  # W, b
        self.context = nn.Linear(dim, 1, bias=False)  # u, the learned context vector

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``h``: ``(..., n, d)``, ``mask``: ``(..., n)`` -> weights ``(..., n)``."""
        scores = self.context(torch.tanh(self.proj(h))).squeeze(-1)  # (..., n)
        return masked_softmax(scores, mask)


class AttentionClassifier(nn.Module):
    """Base class of every classifier under audit, ending in additive attention pooling + linear head.

    Subclasses set ``SITES`` (the first is the pooling site, the last attention layer, whose cache
    holds the states ``h``), ``self.attention`` (that layer), ``self.classifier`` (the head ``V z + v``)
    and ``self.state_dim``, and implement :meth:`encode`. A subclass with further sites extends
    :meth:`run` and :meth:`logits_with` for them.
    """

    attention: AdditiveAttention
    classifier: nn.Linear
    state_dim: int

    #: short registry name, e.g. ``"flan"`` or ``"han"``
    kind: ClassVar[str] = ""
    #: True when batches are ``(B, S, W)`` and the pooling is over sentences
    hierarchical: ClassVar[bool] = False
    #: the sites this model exposes; the first is the pooling site
    SITES: ClassVar[tuple[Site, ...]] = ()
    #: True when ``classify(z)`` is the affine ``self.classifier(z)`` (the paper's head): the fast
    #: path then sums C-dimensional class scores ``V h_i`` instead of d-dimensional states
    affine_head: ClassVar[bool] = True
    #: the query rows a self-attention site's erasure edits when the audit does not choose
    #: (``"cls"`` or ``"all"``); None: the model has no self-attention sites (the paper's models)
    default_query_rows: ClassVar[str | None] = None
    #: the attention-level curves' steps when the audit does not choose (``--attention-steps``):
    #: ``"every"`` (exact first flips) or ``"eraser"`` (ERASER's bins and every 5%)
    default_attention_steps: ClassVar[str] = "every"
    #: True when the tokens are subwords, which ``"word"`` items group (transformers); the paper's
    #: models read words, so their tokens are the words already
    subword_tokens: ClassVar[bool] = False

    def set_vocabulary(self, tokens: Sequence[str]) -> None:
        """Learn the vocabulary's strings (``tokens[i]`` of id ``i``), which a model reading a
        tokenizer's subwords needs to group them into words; the paper's models need nothing."""

    def set_tokenizer(self, tokenizer: Any) -> None:
        """Take words from ``tokenizer`` (a transformers tokenizer) where the model reads its
        subwords; the paper's models need nothing."""

    def export_pretrained(self, folder: Path, label_names: Sequence[str],
                          tokenizer_folder: Path) -> bool:
        """Write the model in its library's own format in ``folder`` (a transformer: what
        ``save_pretrained`` writes, with its tokenizer from ``tokenizer_folder`` and the classes
        ``label_names``); False when there is no such format (the paper's models)."""
        return False

    def configure_erasure(self, *, query_rows: str | None, items: str) -> None:
        """Apply the audit's erasure settings (:class:`attnaudit.erasure.engine.AuditPlan`):
        the erased query rows and the item unit. The paper's models have neither choice.

        Raises:
            ValueError: a setting this model does not offer.
        """
        if query_rows is not None or items != "token":
            raise ValueError(f"{self.kind} has no query rows to choose and no subword tokens "
                             f"to group (got query_rows={query_rows!r}, items={items!r})")

    def audited_by_default(self) -> tuple[str, ...] | None:
        """The sites an audit runs when none are chosen (``--sites``), in declaration order; None:
        the registry's rule (every site, or the first: ``ModelEntry.all_sites_by_default``)."""
        return None

    @classmethod
    def sites(cls) -> tuple[Site, ...]:
        """Every site this model exposes, the pooling site (the paper's) first."""
        return cls.SITES

    def word_starts(self, doc: EncodedDocument) -> list[bool] | None:
        """Which of ``doc``'s tokens begin a word, as this model groups whole-word items, where
        that is not the tokens' markers' rule (a transformer given its tokenizer); None: the
        markers' rule. The item texts of the tables follow it (:func:`item_texts`)."""
        return None

    @classmethod
    def site_names(cls, requested: Sequence[str] | None = None) -> tuple[str, ...]:
        """Validate requested site names (None = all) and return them in declaration order.

        Raises:
            ValueError: a name this model does not declare (the message lists the choices).
        """
        return select_sites(cls.kind, cls.sites(), requested)

    @classmethod
    def site(cls, name: str) -> Site:
        """The declared :class:`Site` called ``name``."""
        cls.site_names([name])
        return next(s for s in cls.sites() if s.name == name)

    @property
    def pooling_site(self) -> str:
        """Name of the pooling site (the last attention layer)."""
        return self.sites()[0].name

    def embed(self, batch: Batch) -> torch.Tensor:
        """Word vectors of the batch's tokens: ``(B, T, E)`` or, hierarchical, ``(B, S, W, E)``.

        Padding tokens get the (all-zero) padding row. With :meth:`logits_from_embeddings` this splits
        the model at its input, where attribution methods (captum) perturb or differentiate.
        """
        raise NotImplementedError

    def encode_embedded(
        self, batch: Batch, embedded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """States entering the pooling attention, ``h`` ``(B, n, d)`` and ``mask`` ``(B, n)`` bool, from
        given word vectors ``embedded`` (shaped like :meth:`embed`'s); the masks still come from
        ``batch.mask``, so a perturbed vector never turns padding into a token or back."""
        raise NotImplementedError

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """States entering the pooling attention: ``h`` ``(B, n, d)`` and ``mask`` ``(B, n)`` bool."""
        return self.encode_embedded(batch, self.embed(batch))

    def logits_from_embeddings(self, batch: Batch, embedded: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` logits of the full model from word vectors ``embedded`` (shaped like
        :meth:`embed`'s output), padding and masks from ``batch.mask``.

        ``logits_from_embeddings(batch, embed(batch))`` is exactly ``model(batch)``: both run the same
        code (tested by the conformance suite).
        """
        return self._pool_output(*self.encode_embedded(batch, embedded))[0]

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """The head from pooled vectors: ``(..., d) -> (..., C)`` logits."""
        return self.classifier(z)

    def _pool_output(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, SiteOutput]:
        """Logits ``(B, C)`` and the pooling site's output from its input states."""
        a = self.attention(h, mask)  # (B, n)
        logits = self.classify(torch.einsum("bn,bnd->bd", a, h))  # (B, C)
        anchor = torch.full((h.shape[0],), -1, dtype=torch.long, device=h.device)
        return logits, SiteOutput(attention=a, mask=mask, anchor=anchor, cache={"states": h})

    def run(self, batch: Batch, sites: Sequence[str] | None = None) -> ModelOutput:
        """Full pass: logits and the requested sites' attention and caches (None = every site)."""
        self.site_names(sites)
        h, mask = self.encode(batch)  # (B, n, d), (B, n)
        logits, pooled = self._pool_output(h, mask)
        return ModelOutput(logits=logits, sites={self.pooling_site: pooled}, batch=batch)

    def forward(self, batch: Batch) -> torch.Tensor:
        """``(B, C)`` logits (no site caches beyond the pooling layer's)."""
        return self.run(batch, sites=[self.pooling_site]).logits

    def logits_with(self, output: ModelOutput, site: str, weights: torch.Tensor) -> torch.Tensor:
        """Logits with ``site``'s attention replaced by candidate weight vectors.

        Args:
            output: the unmodified pass (from :meth:`run`) holding the site's cache.
            site: a site name.
            weights: ``(B, k, n)`` candidate weights per document (need not sum to 1: the all-zero
                vector means "every item erased").
        Returns:
            ``(B, k, C)`` logits, everything downstream of the site recomputed.
        """
        if site != self.pooling_site:
            raise ValueError(f"{self.kind} cannot recompute site {site!r}")
        h = output.site(site).cache["states"]  # (B, n, d)
        return self.classify(torch.einsum("bkn,bnd->bkd", weights.to(h.dtype), h))  # (B, k, C)

    def recompute_bytes(self, output: ModelOutput, site: str) -> int:
        """Working memory of :meth:`logits_with` per candidate weight vector of one document, in
        bytes (an estimate, for :mod:`attnaudit.erasure.memory`'s budget): here the candidate, its
        pooled context and the logits, a few vectors of ``n`` and ``state_dim`` values. A model
        that recomputes more (a transformer's layers) says how much."""
        n = output.site(site).attention.shape[1]
        return 4 * 4 * (n + self.state_dim)

    def token_items(self, batch: Batch, output: ModelOutput, site: str) -> torch.Tensor:
        """Which item of ``site`` each input token belongs to: the bridge from input-level methods
        (token attributions, input erasure) to a site's items.

        Args:
            batch: the batch ``output`` was computed from.
            output: its unmodified pass (the word site's anchor sentence comes from it).
            site: a site name.
        Returns:
            long tensor shaped like ``batch.token_ids`` (``(B, T)`` or ``(B, S, W)``): the item index
            ``0..n-1`` of each token at the site, -1 for padding and for tokens that are no item of
            the site (the words outside the anchor sentence at HAN's word site).
        """
        ids = batch.token_ids
        real = batch.mask
        kind = self.site(site).item
        if kind == "token" and ids.dim() == 2:  # (B, T): the token's position
            index = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        elif kind == "sentence" and ids.dim() == 3:  # (B, S, W): the token's sentence
            index = torch.arange(ids.shape[1], device=ids.device)[None, :, None].expand_as(ids)
        elif kind == "word" and ids.dim() == 3:  # (B, S, W): the word's position in the anchor
            anchor = output.site(site).anchor  # (B,)
            sentences = torch.arange(ids.shape[1], device=ids.device)  # (S,)
            real = real & (sentences[None, :, None] == anchor[:, None, None])
            index = torch.arange(ids.shape[2], device=ids.device)[None, None, :].expand_as(ids)
        else:
            raise ValueError(f"site {site!r} ({kind} items) does not map onto {ids.dim()}-d token ids")
        return torch.where(real, index, torch.full_like(index, -1))

    def linear_readout(self, output: ModelOutput, site: str) -> LinearReadout | None:
        """The fast path's capability where ``site`` is a linear pooling feeding the head, else None."""
        if site != self.pooling_site:
            return None
        h = output.site(site).cache["states"]  # (B, n, d)
        if not self.affine_head:
            return LinearReadout(values=h, readout=self.classify)
        head = self.classifier
        bias = head.bias
        values = nn.functional.linear(h, head.weight)  # (B, n, C): V h_i

        def add_bias(scores: torch.Tensor) -> torch.Tensor:
            return scores if bias is None else scores + bias  # (..., C)

        return LinearReadout(values=values, readout=add_bias)

    def _embedding_and_config(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        encoder: str,
        embedding_dim: int,
        hidden: int,
        dropout: float,
    ) -> nn.Embedding:
        """Record the constructor arguments (for :meth:`config_dict`) and build the word table.

        Every registered model takes these same arguments, so they are kept in one place.
        """
        self._config: dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "encoder": encoder,
            "embedding_dim": embedding_dim,
            "hidden": hidden,
            "dropout": dropout,
        }
        return make_embedding(vocab_size, embedding_dim)  # N(0, 1/E): about unit-norm rows

    def config_dict(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild an identical (untrained) model."""
        return dict(self._config)
