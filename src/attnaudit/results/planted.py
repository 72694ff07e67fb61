"""A planted ground truth: how well each ranking finds the token that decides the label.

``attnaudit synth`` (:mod:`attnaudit.data.synth`) writes a data set whose label is decided by planted
marker tokens (one made-up word per label) and a sidecar ``NAME.planted.json`` naming them, plus a
distractor token planted independently of the label. A model that learned the task can only rely
on the marker, so a faithful importance ranking should put the marker's item first and should not
put the distractor first. This module reads the sidecar (:class:`PlantedSpec`) and scores every
ranking of an audit's ``items.parquet`` against it (:func:`summarize_planted`). Torch-free.

An item *holds* a token when one of its whitespace-separated words is that token: a token or word
item is the token itself, a sentence item (HAN's ``sentence`` site, whose text is its tokens joined
by spaces) holds every token of the sentence.

Summary (``summary.json``'s top-level ``planted`` key)::

    {"markers": {label: token}, "distractor": token | None,
     "by_site": {site: {ranking: {
         "n_docs",                 # documents at the site
         "n_without_marker",       # of those, documents with no item holding a marker (left out)
         "n_with_marker",          # the population of every marker figure below
         "recall_at_1",            # share whose rank-0 item holds a marker
         "chance_recall_at_1",     # what a uniformly random order scores: mean of (marker items / n)
         "mean_rank", "median_rank",                         # best-ranked marker item, 1-based
         "mean_rank_normalised", "median_rank_normalised",   # the same divided by n
         "by_label": {label: {"n_with_marker", "recall_at_1"}},  # documents holding its marker
         "distractor": {"n_with", "recall_at_1", "chance_recall_at_1", "mean_rank", "median_rank",
                        "mean_rank_normalised", "median_rank_normalised"} | None}}},
     "conventions": {name: sentence}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attnaudit.errors import DataError

#: Sidecar suffix: ``synth.jsonl`` -> ``synth.planted.json``.
SIDECAR_SUFFIX = ".planted.json"
#: Data-file suffixes the sidecar name replaces (others keep the whole file name before the suffix).
_DATA_SUFFIXES = (".jsonl.gz", ".jsonl", ".ndjson", ".json")

CONVENTIONS: dict[str, str] = {
    "holds": "An item holds a token when one of its whitespace-separated words is that token: a "
             "token or word item is the token, a sentence item holds each of its tokens.",
    "recall_at_1": "Share of the documents with a marker item at the site whose top-ranked item "
                   "(rank 0, removed first) holds a marker token.",
    "chance_recall_at_1": "Recall@1 of a uniformly random order: per document, the share of its "
                          "items that hold a marker (or the distractor), averaged over documents.",
    "rank": "1-based rank of the best-ranked item holding a marker (1 = ranked first); "
            "'normalised' divides it by the document's number of items n at the site.",
    "n_without_marker": "Documents with no item holding a marker at the site (e.g. HAN's word site "
                        "anchored on a sentence without it, or a marker cut by length limits) are "
                        "left out of every marker figure and counted here.",
    "by_label": "Recall@1 over the documents holding one label's marker. On a task without "
                "unmarked documents a model may decide one label by the absence of the other "
                "markers; erasing that label's marker then changes nothing, and a faithful ranking "
                "need not put it first.",
    "distractor": "The same figures for the distractor token (planted in about half the documents, "
                  "independently of the label) over the documents holding it; a faithful ranking "
                  "of a model that learned the task should not put it first.",
}


@dataclass(frozen=True)
class PlantedSpec:
    """What ``attnaudit synth`` planted (the sidecar ``NAME.planted.json``).

    Attributes:
        markers: label -> its marker token (lowercase, one token under :func:`attnaudit.data.text.
            tokenize`).
        distractor: the distractor token, or ``None`` when none was planted.
        source: the data the texts came from (``"default"`` or a path).
        seed: the seed of every draw.
        extra: further settings written by the generator (copies per document, counts, ...).
    """

    markers: dict[str, str]
    distractor: str | None
    source: str = ""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"markers": dict(self.markers), "distractor": self.distractor, "source": self.source,
                "seed": self.seed, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "planted spec") -> PlantedSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            DataError: no ``markers`` table of label -> token strings, or a non-string distractor.
        """
        markers = data.get("markers")
        if not isinstance(markers, Mapping) or not markers or not all(
                isinstance(t, str) and t for t in markers.values()):
            raise DataError(f"{where}: 'markers' must map each label to its marker token")
        distractor = data.get("distractor")
        if distractor is not None and not (isinstance(distractor, str) and distractor):
            raise DataError(f"{where}: 'distractor' must be a token or null")
        extra = {k: v for k, v in data.items()
                 if k not in ("markers", "distractor", "source", "seed")}
        return cls(markers={str(k): v for k, v in markers.items()}, distractor=distractor,
                   source=str(data.get("source", "")), seed=int(data.get("seed", 0)), extra=extra)


def sidecar_path(data_path: str | Path) -> Path:
    """Where the planted spec of ``data_path`` lives: ``synth.jsonl`` -> ``synth.planted.json``."""
    path = Path(data_path)
    name = path.name
    for suffix in _DATA_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + SIDECAR_SUFFIX)


def read_planted(data_path: str | Path) -> PlantedSpec | None:
    """The planted spec beside ``data_path``, or ``None`` when there is none (an ordinary data set).

    Raises:
        DataError: the sidecar exists but is not valid JSON or not a spec.
    """
    sidecar = sidecar_path(data_path)
    if not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{sidecar}: cannot read the planted spec ({err})") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{sidecar}: expected a JSON object")
    return PlantedSpec.from_dict(data, where=str(sidecar))


def holds_any(texts: pd.Series, tokens: set[str]) -> np.ndarray:
    """Per item, whether one of its whitespace-separated words is in ``tokens``: bool ``(N,)``."""
    return np.fromiter((not tokens.isdisjoint(str(t).split()) for t in texts), dtype=bool,
                       count=len(texts))


def summarize_planted(items: pd.DataFrame, spec: PlantedSpec) -> dict[str, Any]:
    """Score every ranking at every site of ``items`` against the planted tokens.

    Args:
        items: ``items.parquet`` rows (``site``, ``doc_id``, ``item``, ``text`` and ``rank_R`` per
            ranking R, 0 = removed first), one row per (document, site, item).
        spec: the planted tokens.

    Returns:
        The ``planted`` entry of ``summary.json`` (structure: module docstring); ``None`` where a
        figure has no document to be computed over.
    """
    rankings = [c.removeprefix("rank_") for c in items.columns if c.startswith("rank_")]
    marker = holds_any(items["text"], set(spec.markers.values()))
    per_label = {label: holds_any(items["text"], {token}) for label, token in spec.markers.items()}
    distractor = holds_any(items["text"], {spec.distractor}) if spec.distractor else None
    by_site: dict[str, Any] = {}
    for site in pd.unique(items["site"]) if len(items) else []:
        at_site = (items["site"] == site).to_numpy()
        rows = items[at_site]
        by_site[str(site)] = {
            ranking: _ranking_figures(
                rows, rows[f"rank_{ranking}"].to_numpy(), marker[at_site],
                {label: holds[at_site] for label, holds in per_label.items()},
                None if distractor is None else distractor[at_site])
            for ranking in rankings
        }
    return {"markers": dict(spec.markers), "distractor": spec.distractor, "by_site": by_site,
            "conventions": dict(CONVENTIONS)}


def _ranking_figures(rows: pd.DataFrame, ranks: np.ndarray, marker: np.ndarray,
                     per_label: Mapping[str, np.ndarray], distractor: np.ndarray | None
                     ) -> dict[str, Any]:
    """One ranking's figures at one site; ``ranks``, ``marker``, ``distractor`` and each of
    ``per_label`` (items holding that label's marker) are ``(N,)``, one value per item."""
    per_doc = _best_ranks(rows["doc_id"], ranks, marker)
    entry: dict[str, Any] = {"n_docs": int(rows["doc_id"].nunique()),
                             "n_without_marker": int(per_doc["best"].isna().sum())}
    figures = _figures(per_doc)
    entry["n_with_marker"] = figures.pop("n_with")
    entry.update(figures)
    entry["by_label"] = {}
    for label, holds in per_label.items():
        of_label = _figures(_best_ranks(rows["doc_id"], ranks, holds))
        entry["by_label"][label] = {"n_with_marker": of_label["n_with"],
                                    "recall_at_1": of_label["recall_at_1"]}
    entry["distractor"] = (None if distractor is None
                           else _figures(_best_ranks(rows["doc_id"], ranks, distractor)))
    return entry


def _best_ranks(doc_ids: pd.Series, ranks: np.ndarray, holds: np.ndarray) -> pd.DataFrame:
    """Per document: ``n`` items, ``hits`` (items holding the token), ``best`` rank among them (NaN:
    none)."""
    frame = pd.DataFrame({"doc": doc_ids.to_numpy(), "hit": holds,
                          "rank": np.where(holds, ranks.astype(float), np.nan)})
    grouped = frame.groupby("doc", sort=False)
    return pd.DataFrame({"n": grouped.size(), "hits": grouped["hit"].sum(),
                         "best": grouped["rank"].min()})


def _figures(per_doc: pd.DataFrame) -> dict[str, Any]:
    """Recall@1, chance and rank figures over the documents holding the token."""
    held = per_doc[per_doc["best"].notna()]
    if held.empty:
        return {"n_with": 0, "recall_at_1": None, "chance_recall_at_1": None, "mean_rank": None,
                "median_rank": None, "mean_rank_normalised": None, "median_rank_normalised": None}
    rank = held["best"].to_numpy() + 1.0  # 1-based
    normalised = rank / held["n"].to_numpy()
    return {
        "n_with": len(held),
        "recall_at_1": float(np.mean(rank == 1.0)),
        "chance_recall_at_1": float(np.mean(held["hits"].to_numpy() / held["n"].to_numpy())),
        "mean_rank": float(rank.mean()),
        "median_rank": float(np.median(rank)),
        "mean_rank_normalised": float(normalised.mean()),
        "median_rank_normalised": float(np.median(normalised)),
    }


__all__ = [
    "CONVENTIONS",
    "SIDECAR_SUFFIX",
    "PlantedSpec",
    "holds_any",
    "read_planted",
    "sidecar_path",
    "summarize_planted",
]
