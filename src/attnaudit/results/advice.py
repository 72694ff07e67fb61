"""Why documents cannot flip at a site, and where erasure can move decisions instead (torch-free).

A document *cannot flip* at a site when erasing every item there leaves its prediction (summary.json
``by_site[site]["share_cannot_flip"]``). The reason depends on what the site is:

* a **pooling site** (the paper's models, hf-attnpool's ``pool``): the pooled context is the
  weighted sum of the items' states; with every item erased it is zero, and the output is the
  head's bias alone, the same for every document;
* a pooling **inside one part** of the document (HAN's ``word`` site, the words of the
  most-attended sentence): erasing every word zeroes that sentence's vector, but the sentence
  encoder and the sentence attention still read every other sentence, so the output is the
  document's own without that sentence (in a one-sentence document, what the sentence encoder
  makes of a zero vector; with no encoder, the head's bias);
* a **transformer layer** (``L{l}``, ``L{l}.h{h}``): erasure edits the layer's attention and
  renormalises it over what is left (the [CLS] and [SEP] tokens, never items); the residual
  connection around the attention still carries the state that entered the layer, and with the
  [CLS] row alone edited every other token's state leaves the layer unchanged for the layers above
  to read. The output is no constant: the decision survives wherever those states carry it.

When more than :data:`MOST` of a site's documents cannot flip, the site says little about what the
decision used (most documents are never flipped by any ranking, and every ranking's measures are
censored at the same value), so the audit logs :func:`site_advice`'s message and the report shows
it with a command that audits where decisions can move. For transformers that choice follows the
measurement in docs/results.md ("Layer by layer": MiniLM fine-tuned on IMDB, 30 test reviews):
erasing from the [CLS] row, no decision below the last layer changes (0% can flip at L0-L4, 3% at
L5); erasing from every query row, a quarter of the reviews can flip at L0-L3 and 3% at L4-L5. So
the advice is every query row at the lower two thirds of the layers, with ERASER's step schedule
(each step there recomputes the layers above: 14-26x one inference pass per layer, docs/results.md,
"Layer by layer").

The same measurements, with their cost, chose the transformers' **defaults** (:func:`default_layers`,
:data:`DEFAULTS_WHY`): the last layer's classification row, every step. Erasing from every query row
at a lower layer moves more decisions on the 2,000-review MiniLM (a quarter of the reviews against
3-8%), but on a MiniLM fine-tuned on 1,200 reviews (one epoch) only 2-8% can flip at any layer from
any rows, and the lower layer from every row costs about 100x the last layer's audit on a CPU (24x
without the adversarial search; docs/results.md, "The defaults"): a default that turns a minutes'
audit into hours for a few more flippable documents. So the default stays where users read
attention and is cheap, and whenever most documents there cannot flip, the advice prints the
command for the lower layers (a named audit beside the default one). The advice never suggests
again what was audited.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

#: ``L{layer}`` or ``L{layer}.h{head}``, both counted from 0: a transformer's self-attention sites
LAYER_SITE = re.compile(r"L(0|[1-9][0-9]*)(?:\.h(0|[1-9][0-9]*))?")
#: a site where more than this share of the documents cannot flip gets a message and a command
MOST = 0.5

#: what erasing every item of a site leaves (``Site.cannot_flip``; the reasons above, in order)
SiteKind = Literal["pooling", "inner_pooling", "layer"]
SITE_KINDS: tuple[SiteKind, ...] = ("pooling", "inner_pooling", "layer")

POOLING_EXPLAINED = (
    "Why: at a site that pools items for the head (the paper's site), removing every item leaves a "
    "zero context, so the output is the head's bias alone, the same for every document; every "
    "document already predicted as the class that bias favours gets its prediction back when "
    "everything is removed, whatever the ranking. On a two-class task that is every document "
    "predicted as the bias class."
)

INNER_POOLING_EXPLAINED = (
    "Why: this site pools the words of one sentence (the document's most-attended one) into that "
    "sentence's vector; removing every word zeroes that vector, but the sentence encoder and the "
    "sentence attention still read every other sentence, so the output is the document's own "
    "without that sentence, and the decision survives wherever the other sentences carry it. "
    "(It is not the head's bias, except in a one-sentence document with no sentence encoder.)"
)


def layer_explained(query_rows: str | None) -> str:
    """Why a transformer layer's documents cannot flip, for the erased ``query_rows``."""
    rows = ("every query row of the site's heads" if query_rows == "all"
            else "the classification ([CLS]) row alone")
    rest = (" Every row loses the item, yet each token's own state still passes the residual "
            "connection, and the layers above rebuild the decision from those states."
            if query_rows == "all" else
            " Every other token's state leaves the layer unchanged, and the layers above read "
            "them: below the last layer they rebuild the decision from them; at the last layer "
            "the [CLS] state that entered it usually carries the decision already.")
    return ("Why: erasure at a transformer layer edits the attention of " + rows + " and "
            "renormalises it over what is left, the [CLS] and [SEP] tokens (never items); the "
            "residual connection around the attention still adds the state that entered the "
            "layer, so erasing every item removes only the attention's share of the update, not "
            "the document." + rest + " (It is not the head's bias: the output stays the "
            "document's own.)")


def explained(kind: SiteKind, query_rows: str | None) -> str:
    """The "cannot flip" explanation of a site of ``kind``."""
    if kind == "layer":
        return layer_explained(query_rows)
    return INNER_POOLING_EXPLAINED if kind == "inner_pooling" else POOLING_EXPLAINED


def site_kind(meta: Any, *, layer: bool) -> SiteKind:
    """The kind a site's metadata declares (``cannot_flip``), else ``"layer"`` or ``"pooling"``
    by ``layer`` (metadata written before the field)."""
    declared = meta.get("cannot_flip") if isinstance(meta, Mapping) else None
    for kind in SITE_KINDS:
        if declared == kind:
            return kind
    return "layer" if layer else "pooling"


def suggested_layers(num_layers: int) -> list[int]:
    """The lower two thirds of the layers (at least one): where, from every query row, erasure
    moved decisions in the IMDB measurement of docs/results.md (L0-L3 of MiniLM's six)."""
    return list(range(max(1, math.ceil(2 * num_layers / 3))))


def default_layers(num_layers: int) -> list[int]:
    """The layers a transformer audits by default: the last (its classification row, the attention
    users plot, which reaches the head directly). Lower layers move more decisions from every query
    row but cost 24-100x more on a CPU (:data:`DEFAULTS_WHY`); the advice names them where the
    last layer cannot flip. MiniLM's six: ``[5]``."""
    if num_layers < 1:
        raise ValueError(f"a transformer has at least one layer, got {num_layers}")
    return [num_layers - 1]


#: why those defaults (summary.json ``defaults["why"]``, the report's sentence)
DEFAULTS_WHY = (
    "the last layer's classification row is the attention users read and reaches the head "
    "directly; erasing from every query row of a lower layer moves more decisions (MiniLM "
    "fine-tuned on 2,000 IMDB reviews: a quarter of the reviews can flip at L0-L3 against 3-8% at "
    "the last layer; on 1,200 reviews, one epoch: 2-8% at any layer) but costs about 100x the "
    "last layer's audit on a CPU, so the lower layers are a command away (the advice prints it "
    "where most documents cannot flip) rather than the default."
)


def _command(run: str | None, sites: list[str], *, input_level: bool = False) -> str:
    """The audit that erases ``sites`` from every query row on ERASER's steps (with input-level
    erasure if asked), as a command for a model folder ``run``, or, for a live audit
    (``run`` None), as the Python call that repeats it with those settings."""
    if run is None:
        extra = ", erasure=('attention', 'input')" if input_level else ""
        return (f"attnaudit.audit(model, documents, tokenizer=tokenizer, "
                f"config=attnaudit.AuditConfig(sites={tuple(sites)!r}, query_rows='all', "
                f"attention_steps='eraser'{extra}))")
    name = "input-erasure" if input_level else "lower-layers"
    extra = " --erasure attention,input" if input_level else ""
    return (f"attnaudit audit {run} --sites {','.join(sites)} --query-rows all{extra} "
            f"--attention-steps eraser --name {name}")


def site_advice(
    site: str,
    share: float | None,
    *,
    kind: SiteKind,
    layer: int | None = None,
    num_layers: int | None = None,
    query_rows: str | None = None,
    run: str | None = "RUN",
    audited: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """The message for a site where most documents cannot flip, or None (at most :data:`MOST`).

    Args:
        site: the site's name, as the CLI names it (``L5``).
        share: its share of documents that cannot flip.
        kind: what erasing every item leaves (:data:`SiteKind`).
        layer: the site's layer (layer sites).
        num_layers: the model's layer count (transformers; None for the paper's models).
        query_rows: the erased query rows (``"cls"``, ``"all"``; None: no self-attention).
        run: the model folder, for the command; None for a live audit (the command is then the
            ``attnaudit.audit`` call with the settings).
        audited: every site of this audit (a suggestion never repeats what was just done).

    Returns:
        ``{"share", "threshold", "message", "command"}``; ``command`` None where no setting of the
        audit can move these decisions (the paper's pooling sites).
    """
    if share is None or not share > MOST:
        return None
    head = (f"{site}: {share:.0%} of the documents cannot flip (erasing every item leaves the "
            f"decision), more than {MOST:.0%}: this site's rankings are compared on few documents.")
    command = None
    if num_layers is not None:
        lower = [f"L{layer_}" for layer_ in suggested_layers(num_layers)]
        move = _command(run, lower)
        all_rows_here = query_rows == "all" and kind == "layer"
        # lower layers this audit already erased from every query row (a user's --sites)
        done = [name for name in lower if name in audited] if query_rows == "all" else []
        rest = [name for name in lower if name not in done]
        if all_rows_here and layer is not None and f"L{layer}" in lower:
            # Already where the measurement found movement: attention cannot move these
            # documents; erasing the tokens themselves still can.
            command = _command(run, [site], input_level=True)
            where = "Erasing the tokens from the input (input-level erasure) may still move them:"
        elif done and not rest:
            command, where = None, (f"{', '.join(done)}, audited here from every query row, "
                                    f"{'is' if len(done) == 1 else 'are'} where erasure can move "
                                    "decisions (see their sections).")
        elif done:
            # never repeat what was just audited: the other lower layers only
            command = _command(run, rest)
            where = (f"Erasure moves decisions from every query row of the lower layers: "
                     f"{', '.join(done)} {'is' if len(done) == 1 else 'are'} audited here (see "
                     "the sections); the other lower layers:")
        else:
            command = move
            where = ("Erasure moves decisions from every query row of the lower layers (MiniLM on "
                     "IMDB: from the [CLS] row no decision below the last layer changed; from "
                     "every row a quarter of the reviews flip at L0-L3):")
    else:
        where = ("No audit setting changes this: it is the site's property (see why); "
                 "input-level erasure (--erasure attention,input) shows how the decision "
                 "depends on the tokens themselves.")
    message = f"{head} {where} {command}" if command else f"{head} {where}".rstrip()
    return {"share": share, "threshold": MOST, "message": message, "command": command}


def summary_advice(
    summary: Mapping[str, Any], *, num_layers: int | None, query_rows: str | None,
    run: str | None
) -> dict[str, dict[str, Any]]:
    """:func:`site_advice` for every site of a summary that needs it, with every site's
    ``explanation`` (the "cannot flip" reason for its kind): ``{site: {"explanation", ...}}``.

    A site's kind is the one its model declares (summary.json ``sites[site]["cannot_flip"]``);
    audits written before that field: a layer site by its name, any other a pooling site."""
    by_site = summary.get("by_site") or {}
    out: dict[str, dict[str, Any]] = {}
    for site, entry in by_site.items():
        match = LAYER_SITE.fullmatch(str(site)) if num_layers is not None else None
        kind = site_kind((summary.get("sites") or {}).get(site), layer=match is not None)
        share = entry.get("share_cannot_flip") if isinstance(entry, Mapping) else None
        advice = site_advice(str(site), share if isinstance(share, (int, float)) else None,
                             kind=kind, layer=int(match[1]) if match else None,
                             num_layers=num_layers, query_rows=query_rows, run=run,
                             audited=tuple(map(str, by_site)))
        out[str(site)] = {"kind": kind,
                          "explanation": explained(kind, query_rows if match else None),
                          **(advice or {})}
    return out
