"""HAN, the hierarchical attention network (Yang et al. 2016).

    x  = embed(token_ids)                     # (B, S, W, E)
    hw = word_encoder(x, word_mask)           # (B, S, W, dw)   per sentence
    aw = word_attention(hw, word_mask)        # (B, S, W)
    s  = sum_w aw * hw                        # (B, S, dw)      one vector per sentence
    h  = sentence_encoder(s, sentence_mask)   # (B, S, d)       what ``encode`` returns
    a  = attention(h, sentence_mask)          # (B, S)          the layer the tests manipulate
    logits = classifier(a @ h)                # (B, C)

Only real (non-empty) sentences go through the word level: those of the whole batch are flattened,
sorted by length and encoded in a few chunks, each padded only to its own longest sentence, so neither
padded sentences nor the padding of short sentences cost work (2-2.5x faster training on IMDB).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attnaudit.data.types import Batch
from attnaudit.models.base import (
    AdditiveAttention,
    AttentionClassifier,
    ModelOutput,
    Site,
    SiteOutput,
    tie_key,
)
from attnaudit.models.encoders import build_encoder


class HierarchicalAttentionClassifier(AttentionClassifier):
    """Word encoder + attention per sentence, then sentence encoder + attention, then a linear head.

    The same encoder type is used at both levels (``none`` = identity at both).

    Args:
        vocab_size: rows of the embedding table (``PAD_ID`` = 0 is the padding row).
        num_classes: ``C``.
        encoder: ``"none"``, ``"cnn"`` or ``"rnn"``.
        embedding_dim: ``E`` (200 in the original).
        hidden: GRU units per direction or CNN filters per width, both levels (50 in the original).
        dropout: dropout in front of each CNN (0.3 in the original; unused by other encoders).

    Example:
        >>> model = HierarchicalAttentionClassifier(vocab_size=100, num_classes=3, encoder="rnn")
        >>> ids = torch.tensor([[[5, 6, 0], [7, 0, 0]]])  # one document, two sentences
        >>> model.run(Batch(["d0"], ids, torch.tensor([0]))).site("sentence").attention.shape
        torch.Size([1, 2])
    """

    kind = "han"
    hierarchical = True  # batches are (B, S, W): sentences of words
    SITES = (
        Site("sentence", "sentence attention (pooling)", "sentence", paper=True,
             description="the attention over sentences that pools them for the head"),
        Site("word", "word attention in the top sentence", "word",
             description="the word attention inside the document's most-attended sentence; "
             "erasing it recomputes that sentence's vector, the sentence encoder, the sentence "
             "attention and the head (a test the paper did not run)",
             cannot_flip="inner_pooling"),
    )

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        encoder: str = "rnn",
        embedding_dim: int = 200,
        hidden: int = 50,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.embedding = self._embedding_and_config(
            vocab_size=vocab_size, num_classes=num_classes, encoder=encoder,
            embedding_dim=embedding_dim, hidden=hidden, dropout=dropout,
        )
        self.word_encoder = build_encoder(encoder, embedding_dim, hidden=hidden, dropout=dropout)
        self.word_attention_layer = AdditiveAttention(self.word_encoder.output_dim)
        self.sentence_encoder = build_encoder(
            encoder, self.word_encoder.output_dim, hidden=hidden, dropout=dropout
        )
        self.state_dim = self.sentence_encoder.output_dim
        self.attention = AdditiveAttention(self.state_dim)  # sentence attention: the last layer
        self.classifier = nn.Linear(self.state_dim, num_classes)

    #: sentences per word-level chunk (see ``_sentences``); a speed setting, not part of the model
    word_chunk = 128

    def embed(self, batch: Batch) -> torch.Tensor:
        """Word vectors ``(B, S, W, E)`` (padding: the zero row)."""
        token_ids = batch.token_ids  # (B, S, W)
        if token_ids.dim() != 3:
            raise ValueError(
                f"HAN needs hierarchical token ids (B, S, W), got shape {tuple(token_ids.shape)}; "
                "batch with hierarchical=True"
            )
        return self.embedding(token_ids)  # (B, S, W, E)

    def _sentences(
        self, batch: Batch, embedded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sentence vectors ``(B, S, dw)``, sentence mask ``(B, S)`` and word weights ``(B, S, W)``
        from word vectors ``embedded`` ``(B, S, W, E)``."""
        token_ids = batch.token_ids  # (B, S, W)
        b, s, w = token_ids.shape
        word_mask = batch.mask  # (B, S, W)
        sentence_mask = word_mask.any(dim=-1)  # (B, S)
        # The real sentences of the whole batch, flattened, go through the word level in a few
        # length-sorted chunks, each cut to its own longest sentence: sentence lengths vary a lot
        # (1 to 60 tokens), and padding every sentence to the batch's longest wasted most of the work.
        flat_x = embedded[sentence_mask]  # (N, W, E)
        flat_mask = word_mask[sentence_mask]  # (N, W)
        lengths = flat_mask.sum(dim=-1)  # (N,)
        order = torch.argsort(lengths, descending=True, stable=True)  # (N,)
        vector_chunks, weight_chunks = [], []
        for start in range(0, len(order), self.word_chunk):
            chunk = order[start : start + self.word_chunk]  # (n,)
            width = int(lengths[chunk[0]])  # the chunk's longest sentence comes first
            x, mask = flat_x[chunk, :width], flat_mask[chunk, :width]  # (n, w, E), (n, w)
            hw = self.word_encoder(x, mask)  # (n, w, dw)
            aw = self.word_attention_layer(hw, mask)  # (n, w)
            vector_chunks.append(torch.einsum("nw,nwd->nd", aw, hw))  # (n, dw)
            weight_chunks.append(nn.functional.pad(aw, (0, w - width)))  # (n, W)
        if not vector_chunks:  # no real sentence in the whole batch
            vector_chunks.append(embedded.new_zeros(0, self.word_encoder.output_dim))  # (0, dw)
            weight_chunks.append(embedded.new_zeros(0, w))  # (0, W)
        inverse = torch.argsort(order)  # (N,): back to the batch's sentence order
        vectors = torch.cat(vector_chunks)[inverse]  # (N, dw)
        aw = torch.cat(weight_chunks)[inverse]  # (N, W)
        sentence_vectors = vectors.new_zeros(b, s, vectors.shape[-1])  # (B, S, dw)
        sentence_vectors[sentence_mask] = vectors  # padded sentences stay exactly zero
        word_weights = aw.new_zeros(b, s, w)  # (B, S, W)
        word_weights[sentence_mask] = aw
        return sentence_vectors, sentence_mask, word_weights

    def encode_embedded(
        self, batch: Batch, embedded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence states ``(B, S, d)`` and sentence mask ``(B, S)`` (sentences with a real token)
        from word vectors ``embedded`` ``(B, S, W, E)``."""
        sentence_vectors, sentence_mask, _ = self._sentences(batch, embedded)  # (B, S, dw), (B, S)
        h = self.sentence_encoder(sentence_vectors, sentence_mask)  # (B, S, d)
        return h, sentence_mask

    def word_attention(self, batch: Batch) -> torch.Tensor:
        """Word-level attention weights ``(B, S, W)``: each real sentence's row sums to 1."""
        return self._sentences(batch, self.embed(batch))[2]

    def _sentence_level(
        self, sentence_vectors: torch.Tensor, sentence_mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(N, C)`` from sentence vectors ``(N, S, dw)`` and their mask ``(N, S)``."""
        h = self.sentence_encoder(sentence_vectors, sentence_mask)  # (N, S, d)
        a = self.attention(h, sentence_mask)  # (N, S)
        return self.classify(torch.einsum("ns,nsd->nd", a, h))  # (N, C)

    def run(self, batch: Batch, sites: Sequence[str] | None = None) -> ModelOutput:
        """Full pass; the ``word`` site's cache (the anchor sentence's word states) only on request."""
        wanted = self.site_names(sites)
        embedded = self.embed(batch)  # (B, S, W, E)
        sentence_vectors, sentence_mask, _ = self._sentences(batch, embedded)  # (B, S, dw), (B, S)
        h = self.sentence_encoder(sentence_vectors, sentence_mask)  # (B, S, d)
        logits, pooled = self._pool_output(h, sentence_mask)
        out = ModelOutput(logits=logits, sites={"sentence": pooled}, batch=batch)
        if "word" in wanted:
            out.sites["word"] = self._word_site(batch, embedded, pooled.attention, sentence_vectors,
                                                sentence_mask)
        return out

    def _word_site(
        self,
        batch: Batch,
        embedded: torch.Tensor,
        sentence_attention: torch.Tensor,
        sentence_vectors: torch.Tensor,
        sentence_mask: torch.Tensor,
    ) -> SiteOutput:
        """Word attention of each document's most-attended sentence (first on ties), re-encoded alone.

        The encoders ignore padding, so the anchor sentence encoded alone gives the states it had
        inside the batch (up to float rounding, tested by the conformance suite).
        """
        rows = torch.arange(batch.token_ids.shape[0], device=batch.token_ids.device)  # (B,)
        anchor = tie_key(sentence_attention).argmax(dim=1)  # (B,) first maximum, near-ties tied
        mask = batch.mask[rows, anchor]  # (B, W)
        hw = self.word_encoder(embedded[rows, anchor], mask)  # (B, W, dw)
        aw = self.word_attention_layer(hw, mask)  # (B, W)
        cache = {"word_states": hw, "sentence_vectors": sentence_vectors,
                 "sentence_mask": sentence_mask}
        return SiteOutput(attention=aw, mask=mask, anchor=anchor, cache=cache)

    def logits_with(self, output: ModelOutput, site: str, weights: torch.Tensor) -> torch.Tensor:
        """See the base class; the ``word`` site recomputes the anchor sentence's vector and everything
        above it: ``(B, k, W) -> (B, k, C)``."""
        if site != "word":
            return super().logits_with(output, site, weights)
        word = output.site("word")
        hw = word.cache["word_states"]  # (B, W, dw)
        sentences = word.cache["sentence_vectors"]  # (B, S, dw)
        sentence_mask = word.cache["sentence_mask"]  # (B, S)
        b, k = weights.shape[:2]
        vectors = torch.einsum("bkw,bwd->bkd", weights.to(hw.dtype), hw)  # (B, k, dw)
        candidates = sentences[:, None].expand(b, k, *sentences.shape[1:]).clone()  # (B, k, S, dw)
        rows = torch.arange(b, device=hw.device)[:, None]  # (B, 1)
        columns = torch.arange(k, device=hw.device)[None, :]  # (1, k)
        candidates[rows, columns, word.anchor[:, None]] = vectors
        masks = sentence_mask[:, None].expand(b, k, -1)  # (B, k, S)
        logits = self._sentence_level(
            candidates.reshape(b * k, *sentences.shape[1:]), masks.reshape(b * k, -1)
        )  # (B*k, C)
        return logits.reshape(b, k, -1)  # (B, k, C)
