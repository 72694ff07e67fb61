"""One short descriptor per Hugging Face model family the transformer audit hosts.

A :class:`Family` says only what differs between families; everything else (the registered attention
function, the sequence layout, erasure, sites, words) is shared by
:class:`attnaudit.models.hf_generic.GenericHFClassifier`. BERT (``model_type == "bert"``) keeps its
own class with the hand-written fast path (:class:`attnaudit.models.hf.HFClassifier`); it is listed
here too, so that the table of families is complete and the refusal names every supported type.

What a descriptor holds:

* ``layers``: the dotted path, from the ``...ForSequenceClassification`` model, to its transformer
  layers (for the record and a test). The registered attention function does not need it: it counts
  its calls within one forward pass, which run in layer order in every family, so a layer is
  known without ``layer_idx`` (DistilBERT and ALBERT set none; ALBERT calls one shared module
  ``num_hidden_layers`` times).
* ``position``: the classification position. ``"first"``: the first token ([CLS] / ``<s>``) for
  encoders, whose head reads position 0 (through a pooler or not); ``"last"``: the last non-pad token
  for decoders with a score head (``GenericForSequenceClassification``), whose attention is causal.
* ``padding``: the side the audit pads on by default. Decoders are audited with explicit position
  ids (``cumsum(mask) - 1``), so left and right padding give the same results (a conformance test).
* ``tail``: the generic fast path's head kind (:mod:`attnaudit.models.hf_resume`). The fast path
  captures each layer call (module, arguments) from the audited layer up and calls those modules
  again for the candidates, which needs no per-family code; what runs *after* the last layer is
  the body of the classifier's ``forward``, not a module call, so each head kind names it:
  ``classifier`` (RoBERTa, ELECTRA: their ``classifier`` module reads ``[:, 0]``), ``distilbert``
  (``pre_classifier``, ReLU), ``albert`` (the base model's pooler), ``modernbert`` (``final_norm``,
  then ``cls`` or ``mean`` pooling), ``decoder`` (the final norm, the score at the last real token).
  None: every candidate reruns the whole model.
* Special tokens and words are *not* in the descriptor: they are the tokenizer's own (what it adds
  around one sequence, :func:`attnaudit.models.hf_generic.special_tokens_of`; words from its
  ``word_ids()``, :mod:`attnaudit.models.hf_words`).

Families refused, with the reason (one line each): DeBERTa-v2/v3 (its disentangled attention adds
content-to-position and position-to-content scores inside its own attention module and does not call
transformers' attention-function registry, so erasure cannot be applied without replacing the
module); anything not in :data:`FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: where the head reads the sequence
Position = Literal["first", "last"]


@dataclass(frozen=True)
class Family:
    """How one family of transformers is hosted (see the module docstring).

    Attributes:
        name: display name (report, errors).
        model_types: ``config.model_type`` values of the family.
        layers: dotted path from the sequence classifier to its layer ``ModuleList``.
        position: ``"first"`` (encoders) or ``"last"`` (decoders: last non-pad token, causal mask).
        padding: default padding side (``"right"``; decoders give the same results either way).
        bert_fast_path: True only for BERT, whose hand-written fast path lives in ``models.hf``.
        tail: the head kind of the generic fast path (:data:`attnaudit.models.hf_resume.TAILS`:
            what the classifier's ``forward`` does after its last layer); None: no fast path, every
            candidate reruns the whole model (BERT: its own; a family whose head is not listed).
    """

    name: str
    model_types: tuple[str, ...]
    layers: str
    position: Position = "first"
    padding: Literal["left", "right"] = "right"
    bert_fast_path: bool = False
    tail: str | None = None

    @property
    def decoder(self) -> bool:
        """True for decoders (causal attention, classification at the last non-pad token)."""
        return self.position == "last"


#: the decoders' layers, under GenericForSequenceClassification's ``model``
_DECODER = "model.layers"

#: every hosted family; the first entry of a model_type wins (registries drive everything: a new
#: family is one line here plus a row of the conformance table, tests/hf_family_fixtures.py)
FAMILIES: tuple[Family, ...] = (
    Family("BERT", ("bert",), "bert.encoder.layer", bert_fast_path=True),
    Family("RoBERTa", ("roberta", "xlm-roberta", "camembert"), "roberta.encoder.layer",
           tail="classifier"),
    Family("DistilBERT", ("distilbert",), "distilbert.transformer.layer",
           tail="distilbert"),
    Family("ELECTRA", ("electra",), "electra.encoder.layer", tail="classifier"),
    Family("ALBERT", ("albert",), "albert.encoder.albert_layer_groups.0.albert_layers",
           tail="albert"),
    Family("ModernBERT", ("modernbert",), "model.layers", tail="modernbert"),
    Family("Llama", ("llama",), _DECODER, "last", tail="decoder"),
    Family("Qwen2", ("qwen2",), _DECODER, "last", tail="decoder"),
    Family("Qwen3", ("qwen3",), _DECODER, "last", tail="decoder"),
    Family("Mistral", ("mistral",), _DECODER, "last", tail="decoder"),
    Family("Gemma", ("gemma",), _DECODER, "last", tail="decoder"),
    Family("Phi", ("phi", "phi3"), _DECODER, "last", tail="decoder"),
)

#: families whose attention does not run through transformers' registry, and what is missing
REFUSED: dict[str, str] = {
    "deberta-v2": "DeBERTa-v2/v3's disentangled attention (content-to-position and "
    "position-to-content scores) is computed inside its own module and never calls transformers' "
    "attention-function registry, so attnaudit cannot edit its probabilities without replacing the "
    "module (not done)",
    "deberta": "DeBERTa's disentangled attention never calls transformers' attention-function "
    "registry (see deberta-v2)",
}


def family_of(model_type: str) -> Family:
    """The family of ``model_type``; a ValueError of one line naming it and what is supported."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    if model_type in REFUSED:
        raise ValueError(f"model_type {model_type!r}: {REFUSED[model_type]}")
    supported = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise ValueError(f"model_type {model_type!r} is not a family attnaudit hosts (no descriptor in "
                     f"attnaudit.models.hf_families; supported: {supported})")


__all__ = ["FAMILIES", "REFUSED", "Family", "Position", "family_of"]
