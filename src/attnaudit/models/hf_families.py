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
* Special tokens and words are *not* in the descriptor: they are the tokenizer's own (what it adds
  around one sequence, :func:`attnaudit.models.hf_generic.special_tokens_of`; words from its
  ``word_ids()``, :mod:`attnaudit.models.hf_words`).

* ``adapter``: for a family whose attention does not run through transformers' attention-function
  registry, the module that applies the host's plan instead (DeBERTa's and DeBERTa-v2/v3's
  disentangled attention: :mod:`attnaudit.models.hf_deberta`). An adapter module has three
  functions: ``check(config)``, a one-line ValueError for a configuration it cannot audit;
  ``probability_hooks(host, plan)``, a context manager that records and edits every layer's
  probabilities for one forward pass; ``attention_width(host, t)``, the numbers one layer's
  attention holds at once per query position (the memory budget's estimate). None: the registry.

Families refused, with the reason (one line each): :data:`REFUSED`; anything not in :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

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
        adapter: the adapter module where the family's attention is not in the registry
            (see the module docstring); None: the registered function.
    """

    name: str
    model_types: tuple[str, ...]
    layers: str
    position: Position = "first"
    padding: Literal["left", "right"] = "right"
    bert_fast_path: bool = False
    adapter: str | None = None

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
    Family("RoBERTa", ("roberta", "xlm-roberta", "camembert"), "roberta.encoder.layer"),
    Family("DistilBERT", ("distilbert",), "distilbert.transformer.layer"),
    Family("ELECTRA", ("electra",), "electra.encoder.layer"),
    Family("ALBERT", ("albert",), "albert.encoder.albert_layer_groups.0.albert_layers"),
    Family("ModernBERT", ("modernbert",), "model.layers"),
    Family("DeBERTa-v2/v3", ("deberta-v2",), "deberta.encoder.layer",
           adapter="attnaudit.models.hf_deberta"),
    Family("DeBERTa", ("deberta",), "deberta.encoder.layer", adapter="attnaudit.models.hf_deberta"),
    Family("Llama", ("llama",), _DECODER, "last"),
    Family("Qwen2", ("qwen2",), _DECODER, "last"),
    Family("Qwen3", ("qwen3",), _DECODER, "last"),
    Family("Mistral", ("mistral",), _DECODER, "last"),
    Family("Gemma", ("gemma",), _DECODER, "last"),
    Family("Phi", ("phi", "phi3"), _DECODER, "last"),
)

#: model_types refused with a reason of their own, one line each (none today: DeBERTa, whose
#: attention is outside the registry, has an adapter; variants an adapter cannot audit are refused
#: by its ``check``, :func:`family_of_config`)
REFUSED: dict[str, str] = {}


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


def family_of_config(config: Any) -> Family:
    """:func:`family_of` the config's ``model_type``, then the family adapter's own ``check`` of the
    config (a ValueError of one line for a variant it cannot audit)."""
    family = family_of(config.model_type)
    if family.adapter is not None:
        importlib.import_module(family.adapter).check(config)
    return family


__all__ = ["FAMILIES", "REFUSED", "Family", "Position", "family_of", "family_of_config"]
