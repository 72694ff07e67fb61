"""Small random models and padded batches for the model-agnostic tests (no data files needed).

Every registered model name is covered: the paper's models with tiny sizes, the transformers
(``hf``, ``hf-attnpool``) on a tiny random BERT (2 layers, 4 heads, hidden 32, no pretrained
weights), so the conformance suite runs over all of them and every site they declare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attnaudit.data.types import PAD_ID, Batch, EncodedDocument
from attnaudit.models import MODEL_ENTRIES, MODEL_NAMES, MODELS, build_model, parse_model_name
from attnaudit.models.base import AttentionClassifier, ModelOutput

VOCAB = 60


#: the suffix of a transformer variant whose items are words (``--items word``): ``"hf+words"``
WORDS = "+words"
#: ``"hf@llama"``: the ``hf`` kind on a tiny random model of another family (hf_family_fixtures)
FAMILY = "@"


def _kind_name(name: str) -> str:
    """The registered variant of a fixture name (``"hf@llama+words"`` -> ``"hf"``)."""
    return name.removesuffix(WORDS).split(FAMILY)[0]


def token_string(token_id: int) -> str:
    """The tiny vocabulary's token of ``token_id``: ``w<id>``, and ``##w<id>`` (a word-continuing
    subword, WordPiece's mark) for every third id, so random documents hold words of 1-3+ tokens
    for the word-item variants; the paper's models read these strings as plain tokens."""
    if token_id == PAD_ID:
        return "[PAD]"
    return f"##w{token_id}" if token_id % 3 == 0 else f"w{token_id}"


def random_model(
    name: str, *, seed: int, num_classes: int = 3, dtype: torch.dtype = torch.float64
) -> AttentionClassifier:
    """A small untrained model of variant ``name`` (e.g. ``"han-rnn"``, or ``"hf+words"``: a
    transformer auditing words), in eval mode.

    Weights are scaled up so that attention is peaked and removals often change decisions.
    """
    torch.manual_seed(seed)
    kind, encoder = parse_model_name(_kind_name(name))
    if MODEL_ENTRIES[kind].pretrained:
        family = name.removesuffix(WORDS).partition(FAMILY)[2] or "bert"
        model = tiny_transformer(kind, num_classes=num_classes, family=family).to(dtype).eval()
        if name.endswith(WORDS):
            model.set_vocabulary(  # type: ignore[attr-defined]
                [token_string(i) for i in range(VOCAB)] + ["[CLS]", "[SEP]"])
            model.configure_erasure(query_rows=None, items="word")
        return model
    model = build_model(
        kind, encoder, vocab_size=VOCAB, num_classes=num_classes, embedding_dim=12, hidden=6
    )
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    return model.to(dtype).eval()


def random_batch(name: str, *, seed: int, lengths: list[int], repeats: bool = False) -> Batch:
    """A padded batch with ``lengths[b]`` items (tokens, or sentences for HAN) in document ``b``.

    Without ``repeats`` no token occurs twice in a document: no two items are exact twins, whose
    order float noise decides (see
    ``test_conformance.test_tied_items_are_chosen_by_position_in_any_batch``).
    """
    rng = np.random.default_rng(seed)
    hierarchical = model_class(name).hierarchical
    ids = [f"doc{seed}-{b}" for b in range(len(lengths))]
    labels = torch.from_numpy(rng.integers(0, 3, size=len(lengths)))
    if not hierarchical:
        tokens = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
        for b, n in enumerate(lengths):
            tokens[b, :n] = torch.from_numpy(_words(rng, n, repeats))
        return Batch(ids, tokens, labels)
    words = 5
    tokens = torch.full((len(lengths), max(lengths), words), PAD_ID, dtype=torch.long)
    for b, n in enumerate(lengths):
        sizes = rng.integers(1, words + 1, size=n).tolist()
        drawn = _words(rng, sum(sizes), repeats)
        start = 0
        for s, w in enumerate(sizes):
            tokens[b, s, :w] = torch.from_numpy(drawn[start : start + w])
            start += w
    return Batch(ids, tokens, labels)


#: [CLS] and [SEP] of the tiny transformers: ids beyond the words', so no item is a special token
CLS_ID, SEP_ID = VOCAB, VOCAB + 1


def tiny_transformer(kind: str, *, num_classes: int = 3, family: str = "bert"
                     ) -> AttentionClassifier:
    """A randomly initialised transformer of ``kind`` (``hf``, ``hf-attnpool``): 2 layers of 4
    heads, hidden 32, feed-forward 64, no dropout; initialised wide (std 0.3, BERT's is 0.02), so
    that attention is peaked and erasure moves the logits, as the paper's models' scaled weights.
    Its unknown token is ``UNK_ID`` (1), which the random documents never contain. ``family``: a
    model_type of hf_family_fixtures' table, the same sizes (kind ``hf`` only)."""
    from transformers import BertConfig

    if family != "bert":
        from hf_family_fixtures import family_config

        return MODELS[kind].from_config(  # type: ignore[attr-defined, no-any-return]
            family_config(family, vocab_size=VOCAB + 2, num_classes=num_classes,
                          special=(CLS_ID, SEP_ID)),
            cls_token_id=CLS_ID, sep_token_id=SEP_ID, unk_token_id=1)

    config = BertConfig(vocab_size=VOCAB + 2, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, num_labels=num_classes,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        initializer_range=0.3)
    return MODELS[kind].from_config(  # type: ignore[attr-defined, no-any-return]
        config, cls_token_id=CLS_ID, sep_token_id=SEP_ID, unk_token_id=1)


#: the transformers again, auditing words (a word's subwords together): every site check runs on
#: both (SITE_CASES); the whole-model checks (ALL_MODELS) on plain hf's, since word items change
#: the sites and nothing else (saves ~15 s of the suite on one thread)
WORD_MODELS = [f"{name}{WORDS}" for name in MODEL_NAMES
               if MODEL_ENTRIES[parse_model_name(name)[0]].pretrained]
#: other families in the shared suite: a grouped-query decoder (Phi with 2 key/value heads; LayerNorm,
#: so float64 end to end: RMSNorm families compute in float32 inside transformers), classification
#: at the last token; and DeBERTa-v2/v3, whose attention is edited by its own adapter (forward hooks),
#: not the registered function (measured: its 143 cases ~8 min wall on the shared 2-core machine
#: under load, full tier only); the whole family table runs in tests/test_hf_families.py
FAMILY_MODELS = [f"hf{FAMILY}phi", f"hf{FAMILY}deberta-v2"]
ALL_MODELS = [*MODEL_NAMES, f"hf{WORDS}", *FAMILY_MODELS]

#: class names of the random models' labels
LABELS = ["a", "b", "c"]


def random_pass(name: str, *, seed: int, lengths: list[int]
                ) -> tuple[AttentionClassifier, Batch, ModelOutput]:
    """A random model of variant ``name``, a random batch of ``lengths`` and its unmodified pass."""
    model = random_model(name, seed=seed)
    batch = random_batch(name, seed=seed, lengths=lengths)
    with torch.no_grad():
        output = model.run(batch)
    return model, batch, output


def model_class(name: str) -> type[AttentionClassifier]:
    """The registered class of variant ``name``."""
    return MODELS[parse_model_name(_kind_name(name))[0]]


#: every (model variant, site) pair the registries declare: a new model or site is picked up here
#: (sites are read from a built model: a transformer declares them per instance, by its depth)
def _declared_sites(name: str) -> list[str]:
    with torch.random.fork_rng():  # building seeds torch: leave the caller's random state alone
        return sites_under_test(random_model(name, seed=0))


def sites_under_test(model: AttentionClassifier) -> list[str]:
    """The sites the suite exercises: every site of the paper's models; of a transformer, its
    pooling site (hf-attnpool), the last layer over all heads and one of its heads (the fast path),
    and the first layer over all heads and one of its heads (the recompute through the layers
    above). Every layer and head runs the same code with another index, and all 10-11 sites of the
    tiny transformers would double the suite's time (measured: +4-5 minutes on one thread)."""
    names = [site.name for site in model.sites()]
    if not any(name.startswith("L") and name[1:].split(".")[0].isdigit() for name in names):
        return names
    layers = sorted({int(n[1:].split(".")[0]) for n in names if n.startswith("L")})
    first, last = layers[0], layers[-1]
    keep = {f"L{last}", f"L{last}.h0", f"L{first}", f"L{first}.h1"}
    sites = [n for n in names if n in keep or not n.startswith("L")]
    # Word items change what an item is, not how a layer is edited: the default site (fast path)
    # and the first layer's head (the recompute through the layers above) cover the grouping.
    return [sites[0], sites[-1]] if audit_settings(model).get("items") == "word" else sites


def audit_settings(model: AttentionClassifier) -> dict[str, Any]:
    """The plan settings a fixture model was configured with (:func:`random_model`): a plan built
    for it must say the same, since the audit configures the model by its plan."""
    if model.default_query_rows is None:
        return {}
    return {"query_rows": model.query_rows, "items": model.item_unit}


SITE_CASES = [(name, site) for name in [*MODEL_NAMES, *WORD_MODELS, *FAMILY_MODELS]
              for site in _declared_sites(name)]
SITE_IDS = [f"{name}:{site}" for name, site in SITE_CASES]


def _words(rng: np.random.Generator, n: int, repeats: bool) -> np.ndarray:
    """``n`` token ids (never PAD or UNK), distinct unless ``repeats`` or ``n`` is too large."""
    return rng.choice(np.arange(2, VOCAB), size=n, replace=repeats or n > VOCAB - 2)


def random_docs(n: int, *, seed: int, max_sentences: int = 6, max_words: int = 7,
                repeats: bool = False) -> list[EncodedDocument]:
    """``n`` documents of 1-``max_sentences`` sentences of 1-``max_words`` tokens (some with a single
    sentence or token), words ``w<id>``; no token twice in a document unless ``repeats``."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        sizes = rng.integers(1, max_words + 1, size=int(rng.integers(1, max_sentences + 1)))
        ids = _words(rng, int(sizes.sum()), repeats).tolist()
        ends = np.cumsum(sizes).tolist()
        sentences = [ids[end - size : end] for end, size in zip(ends, sizes.tolist(), strict=True)]
        tokens = [[token_string(t) for t in s] for s in sentences]
        docs.append(EncodedDocument(f"d{i}", int(rng.integers(0, 3)), sentences, tokens))
    return docs


def alone(batch: Batch, b: int) -> Batch:
    """Document ``b`` of ``batch`` as a batch of its own, cut to its own size (no extra padding)."""
    ids = batch.token_ids[b : b + 1]
    real = ids != PAD_ID
    if ids.dim() == 2:
        ids = ids[:, : max(int(real.sum()), 1)]
    else:
        sentences = max(int(real.any(-1).sum()), 1)
        words = max(int(real.sum(-1).max()), 1)
        ids = ids[:, :sentences, :words]
    return Batch([batch.doc_ids[b]], ids.clone(), batch.labels[b : b + 1].clone())
