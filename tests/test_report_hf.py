"""The report's *Layers and heads* section of a transformer model (reports/transformer.py).

A tiny random transformer (2 layers x 4 heads) of each kind is audited for real at every layer and
head site by the audit engine (report_fixtures.write_transformer_model), beside a paper model
(schema-exact fixture) in one run; the report is built once. Its grid, head heat map and top heads
are held to summary.json, the examples to items.parquet; the paper model's panel has no such
section, and head sites get no per-site section of their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from headless_chromium import load_page, requires_chromium
from report_fixtures import write_run, write_transformer_model

from attnaudit.reports.html import report_context
from attnaudit.reports.render import render_page
from attnaudit.reports.transformer import (
    HEAD_MEASURE,
    HEAD_RANKING,
    LayerSite,
    cell,
    full_sites,
    layer_site,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py

RANKINGS = ["random", "attention", "gradient", "attention_x_gradient"]
LAYER_SITES = ["L0", "L1"]  # the grid's rows, layer 1 first
HEAD_SITES = [f"L{layer}.h{head}" for layer in (1, 0) for head in range(4)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], str]]:
    """One run: flan-rnn (the paper's model, fixture tables), hf and hf-attnpool (audited); its
    report context and page, built once."""
    run = write_run(tmp_path_factory.mktemp("hf") / "run", ("flan-rnn",), n_docs=30)
    write_transformer_model(run / "models" / "hf", "hf", seed=2)
    write_transformer_model(run / "models" / "hf-attnpool", "hf-attnpool", seed=3)
    context = report_context(run)
    page = render_page(context)
    (run / "report.html").write_text(page, encoding="utf-8")
    yield run, context, page


def _summary(run: Path, model: str) -> dict[str, Any]:
    return dict(json.loads((run / "models" / model / "audit" / "summary.json").read_text()))


def _model(context: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in context["models"] if m["name"] == name)


def _panel(page: str, ident: str) -> str:
    """The HTML of one model's panel."""
    start = page.index(f'<section class="model-panel" id="{ident}"')
    end = page.find('<section class="model-panel"', start + 1)
    return page[start:end] if end > 0 else page[start:]


def _table(html: str, cls: str) -> str:
    start = html.index(f'<table class="num compact {cls}">')
    return html[start:html.index("</table>", start)]


def _cells(table: str, site: str) -> list[str]:
    """The cells of the row of ``site``, each as "text[interval]" with the tags stripped."""
    row = re.search(rf'<tr data-site="{re.escape(site)}">(.*?)</tr>', table, re.S)
    assert row is not None, site
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    return [re.sub(r"<[^>]+>", "", re.sub(r'<span class="ci">', "|", c)).strip() for c in cells]


def _share(value: Any) -> str:
    """A share as the page prints it (one decimal), a dash when missing."""
    return "—" if value is None else f"{100 * value:.1f}%"


def _censored(value: Any) -> str:
    return "never flips" if value is not None and value > 1 else _share(value)


def _with_interval(text: str, bounds: Any, form: Any) -> str:
    if not bounds or text == "—":
        return text
    if form is _censored and bounds[1] > 1:  # a bound past 1 ("never") is put in words
        words = ("never flips in every resample" if bounds[0] > 1
                 else f"from {_share(bounds[0])} to never flipping")
        return f"{text}|{words}"
    return f"{text}|[{form(bounds[0])}, {form(bounds[1])}]"


# ----------------------------------------------------------------------------------------------
# Which sites are which
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("L0", LayerSite(0)), ("L11", LayerSite(11)), ("L3.h2", LayerSite(3, 2)),
    ("L10.h11", LayerSite(10, 11)),
    ("token", None), ("sentence", None), ("word", None), ("pool", None), ("L", None),
    ("L01", None), ("L1.h", None), ("L1.h2x", None), ("l1", None), ("L1.H2", None),
])
def test_layer_sites_are_read_from_their_names(name: str, expected: LayerSite | None) -> None:
    assert layer_site(name) == expected


def test_explicit_layer_metadata_wins_over_the_name() -> None:
    assert layer_site("head-7", {"layer": 2, "head": 7}) == LayerSite(2, 7)
    assert layer_site("block", {"layer": 0, "head": None}) == LayerSite(0)
    assert layer_site("L3.h1", {"layer": True}) == LayerSite(3, 1)  # a bool is no layer number


def test_head_sites_get_no_section_of_their_own(built: tuple[Path, dict[str, Any], str]) -> None:
    run, context, page = built
    assert [s["name"] for s in _model(context, "hf")["sites"]] == ["L1", "L0"]
    assert [s["name"] for s in _model(context, "hf-attnpool")["sites"]] == ["pool", "L1", "L0"]
    assert full_sites({"by_site": {"L1.h2": {}, "L1.h3": {}, "L0": {}}}) == ["L1.h2", "L0"]
    for ident, model in (("m-hf", "hf"), ("m-hf-attnpool", "hf-attnpool")):
        panel = _panel(page, ident)
        sections = re.findall(r'<section class="site" id="[^"]+" data-site="([^"]+)">', panel)
        assert sections == [s["name"] for s in _model(context, model)["sites"]]
        assert 'href="#' + _model(context, model)["transformer"]["id"] + '">Layers and heads' in panel
        assert "The 8 head sites are summarised in this section only" in panel
        # the stat counts every audited site, head sites included
        assert f"{len(_summary(run, model)['by_site'])} attention sites" in panel
    comparison = page[page.index('id="comparison"'):page.index('id="models"')]
    assert "attention-head sites are left out of this table" in comparison
    assert not any(f">{s}<" in comparison for s in HEAD_SITES)


# ----------------------------------------------------------------------------------------------
# The grid, the head heat map and the top heads equal summary.json
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["hf", "hf-attnpool"])
def test_layer_grid_equals_summary_json(built: tuple[Path, dict[str, Any], str], model: str
                                        ) -> None:
    run, context, page = built
    summary = _summary(run, model)
    tr = _model(context, model)["transformer"]
    assert [r["site"] for r in tr["layers"]] == LAYER_SITES
    assert [r["name"] for r in tr["rankings"]] == RANKINGS
    assert tr["n_layers"] == 2 and tr["n_heads"] == 4
    table = _table(_panel(page, f"m-{model}"), "layers")
    for row in tr["layers"]:
        entry = summary["by_site"][row["site"]]
        sw, intervals = entry["single_weight"], entry["intervals"]
        flips = sw["flip_rate"]
        assert [c["value"] for c in row["test1"]] == [
            flips["max"], flips["random"], sw["median_delta_js"]]
        assert row["test1"][0]["lo"] == intervals["single_weight"]["flip_rate"]["max"][0]
        assert row["test1"][1]["hi"] == intervals["single_weight"]["flip_rate"]["random"][1]
        expected = [str(sw["n"]),
                    _with_interval(_share(flips["max"]),
                                   intervals["single_weight"]["flip_rate"]["max"], _share),
                    _with_interval(_share(flips["random"]),
                                   intervals["single_weight"]["flip_rate"]["random"], _share),
                    _with_interval(f"{sw['median_delta_js']:.2g}",
                                   intervals["single_weight"]["median_delta_js"],
                                   lambda v: f"{v:.2g}" if v != 0 else "0")]
        for name, t2 in zip(RANKINGS, row["test2"], strict=True):
            stats, bounds = entry["removal"][name], intervals["removal"][name]
            assert t2["median"]["value"] == stats["median_fraction_censored"]
            assert t2["never"]["value"] == stats["share_never_flipped"]
            assert [t2["median"]["lo"], t2["median"]["hi"]] == bounds["median_fraction_censored"]
            expected += [_with_interval(_censored(stats["median_fraction_censored"]),
                                        bounds["median_fraction_censored"], _censored),
                         _with_interval(_share(stats["share_never_flipped"]),
                                        bounds["share_never_flipped"], _share)]
        assert _cells(table, row["site"])[1:] == expected
    assert tr["grid_figure"]["uri"].startswith("data:image/png;base64,")
    assert Path(tr["grid_figure"]["path"]).is_file()


@pytest.mark.parametrize("model", ["hf", "hf-attnpool"])
def test_head_heat_map_is_layers_by_heads_and_equals_summary_json(
        built: tuple[Path, dict[str, Any], str], model: str) -> None:
    """The heat map's cells and the top heads are summary.json's numbers, layer by head."""
    run, context, page = built
    summary = _summary(run, model)
    heads = _model(context, model)["transformer"]["heads"]
    assert (heads["ranking"], heads["measure"]) == (HEAD_RANKING, HEAD_MEASURE)
    assert [len(row["cells"]) for row in heads["grid"]] == [4, 4]
    for layer, row in enumerate(heads["grid"]):
        for head, c in enumerate(row["cells"]):
            stats = summary["by_site"][f"L{layer}.h{head}"]["removal"][HEAD_RANKING]
            assert c["site"] == f"L{layer}.h{head}" and c["value"] == stats[HEAD_MEASURE]
    grid = _table(_panel(page, f"m-{model}"), "headgrid")
    assert len(re.findall(r"<tr data-layer=", grid)) == 2
    assert len(re.findall(r'<td data-site="L\d\.h\d">', grid)) == 8
    for site in HEAD_SITES:  # each cell: the value and its interval, as summary.json has them
        stats = summary["by_site"][site]
        text = re.search(rf'<td data-site="{re.escape(site)}">(.*?)</td>', grid, re.S)
        assert text is not None
        shown = re.sub(r"<[^>]+>", "", text[1].replace('<span class="ci">', "|"))
        assert shown == _with_interval(
            _censored(stats["removal"][HEAD_RANKING][HEAD_MEASURE]),
            stats["intervals"]["removal"][HEAD_RANKING][HEAD_MEASURE], _censored)
    assert heads["figure"]["uri"].startswith("data:image/png;base64,")
    # the top heads: the lowest values first, each with its interval, at most five; heads whose
    # median document never flips (past 100%) are not ranked
    values = [(summary["by_site"][s]["removal"][HEAD_RANKING][HEAD_MEASURE], s) for s in HEAD_SITES]
    ranked = sorted(v for v in values if v[0] is not None and v[0] <= 1)
    top = heads["top"]
    assert [t["value"] for t in top] == [v for v, _ in ranked][:5]
    assert heads["n_never"] == sum(v is not None and v > 1 for v, _ in values)
    assert top or model == "hf-attnpool", "the hf fixture must exercise the list"
    if not top:  # hf-attnpool: erasing a layer's [CLS] row never reaches its pool (models/hf.py)
        assert "No head is ranked" in _panel(page, f"m-{model}")
        return
    listed = _table(_panel(page, f"m-{model}"), "topheads")
    for t in top:
        bounds = summary["by_site"][t["site"]]["intervals"]["removal"][HEAD_RANKING][HEAD_MEASURE]
        assert _cells(listed, t["site"])[2] == _with_interval(_censored(t["value"]), bounds,
                                                              _censored)


# ----------------------------------------------------------------------------------------------
# Example documents shaded layer by layer
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "rows"), [("hf", ["L0", "L1"]),
                                             ("hf-attnpool", ["L0", "L1", "pool"])])
def test_examples_shade_every_layer(built: tuple[Path, dict[str, Any], str], model: str,
                                    rows: list[str]) -> None:
    run, context, page = built
    items = pd.read_parquet(run / "models" / model / "audit" / "items.parquet")
    examples = _model(context, model)["transformer"]["examples"]
    assert 1 <= len(examples) <= 4
    for e in examples:
        assert [r["site"] for r in e["rows"]] == rows
        for r in e["rows"]:
            doc = items[(items["site"] == r["site"]) & (items["doc_id"] == e["doc_id"])]
            doc = doc.sort_values("item")
            assert [s["text"] for s in r["spans"]] == doc["text"].tolist()
            # shaded relative to the row's largest weight: that token is the darkest
            alphas = [float(s["style"].rsplit(",", 1)[1].rstrip(")")) for s in r["spans"]]
            assert alphas[int(doc["weight"].to_numpy().argmax())] == 0.85
    panel = _panel(page, f"m-{model}")
    assert panel.count('<article class="layered"') == len(examples)
    shaded = re.findall(r'<div class="layershade"><table><tbody>(.*?)</tbody>', panel, re.S)
    assert [re.findall(r'<tr data-site="([^"]+)">', s) for s in shaded] == [rows] * len(examples)


def test_paper_model_has_no_transformer_section(built: tuple[Path, dict[str, Any], str]) -> None:
    _, context, page = built
    flan = _model(context, "flan-rnn")
    assert flan["transformer"] is None and [s["name"] for s in flan["sites"]] == ["token"]
    panel = _panel(page, "m-flan-rnn")
    assert 'class="transformer"' not in panel and "Layers and heads" not in panel
    assert page.count('<section class="transformer"') == 2


def test_js_cells_follow_the_display_unit() -> None:
    nats = cell(0.0693, [0.00693, 0.693], "js", "nats")
    bits = cell(0.0693, [0.00693, 0.693], "js", "bits")
    assert nats["text"] == "0.069" and nats["interval"] == "[0.0069, 0.69]"
    assert bits["text"] == "0.1" and bits["interval"] == "[0.01, 1]"
    assert cell(1.2, [0.4, 1.5], "censored")["text"] == "never flips"
    assert cell(1.2, [0.4, 1.5], "censored")["interval"] == "from 40.0% to never flipping"
    assert cell(1.2, [1.1, 1.5], "censored")["interval"] == "never flips in every resample"
    assert cell(0.5, [0.4, 0.6], "censored")["interval"] == "[40.0%, 60.0%]"
    assert cell(None, [0.1, 0.2], "share") == {"value": None, "text": "—", "interval": "",
                                               "lo": 0.1, "hi": 0.2}


# ----------------------------------------------------------------------------------------------
# In a browser
# ----------------------------------------------------------------------------------------------

PROBE = """(function(){
  var sections = document.querySelectorAll('section.transformer');
  return JSON.stringify({
    sections: sections.length,
    images: [].map.call(document.querySelectorAll('section.transformer img'), function(i){
      return i.complete && i.naturalWidth > 0; }),
    rows: [].map.call(document.querySelectorAll('.layershade tbody'), function(b){
      return b.rows.length; }),
    shaded: [].filter.call(document.querySelectorAll('.layershade .it'), function(s){
      return s.style.background !== ''; }).length
  });
})()"""


@requires_chromium
def test_section_renders_offline(built: tuple[Path, dict[str, Any], str], tmp_path: Path) -> None:
    run, context, _ = built
    page = load_page(run / "report.html", tmp_path / "profile", probe=PROBE)
    assert page.remote_requests == [] and page.console_errors == [] and page.exceptions == []
    p = page.probe
    assert p["sections"] == 2 and len(p["images"]) == 4 and all(p["images"])
    n_examples = [len(_model(context, m)["transformer"]["examples"]) for m in ("hf", "hf-attnpool")]
    assert p["rows"] == [2] * n_examples[0] + [3] * n_examples[1]
    assert p["shaded"] > 0


def test_cannot_flip_is_explained_per_kind_of_site(built: tuple[Path, dict[str, Any], str]) -> None:
    """A transformer layer's documents cannot flip through the residual path, never through "the
    head's bias alone" (the pooling sites' reason); a site where most cannot flip shows the
    command of summary.json's advice."""
    run, context, page = built
    for name in ("hf", "hf-attnpool", "flan-rnn"):
        for site in _model(context, name)["sites"]:
            text = site["cannot_flip_explained"]
            pooling = site["name"] in ("pool", "token")
            assert ("bias alone" in text) == pooling, (name, site["name"])
            assert ("residual" in text) == (not pooling), (name, site["name"])
            advice = (_summary(run, name).get("cannot_flip") or {}).get(site["name"]) or {}
            assert site["cannot_flip_advice"] == advice.get("message")
            if advice.get("command"):
                assert f"<code>{advice['command']}</code>" in page


def test_sites_layers_and_the_architecture_are_named_as_the_cli_names_them(
    built: tuple[Path, dict[str, Any], str], tmp_path: Path
) -> None:
    import dataclasses

    from attnaudit.reports.loading import load_model
    from attnaudit.reports.transformer import transformer_section

    run, context, page = built
    hf = _model(context, "hf")
    titles = {s["name"]: s["label"] for s in hf["sites"]}
    assert titles == {"L1": "L1 · [CLS] attention, mean of heads",
                      "L0": "L0 · [CLS] attention, mean of heads"}
    assert [r["label"] for r in hf["transformer"]["layers"]] == ["L0", "L1"]
    assert hf["transformer"]["n_layers"] == 2 and hf["transformer"]["layer_names"] == ["L0", "L1"]
    assert "Family bert; 2 layers × 4 attention heads; every head with its own keys" in page
    assert "classifies from the first token" in page  # (the apostrophe is escaped)
    assert "classifies from an additive attention pooling" in _panel(
        page, _model(context, "hf-attnpool")["id"])
    # the model's own labels name layers and heads as the CLI does (no rewrite in the report)
    assert {s["name"]: s["label"] for s in hf["sites"]} == titles
    assert _model(context, "hf-attnpool")["sites"][0]["label"] == "additive attention pooling"
    # Only L1 audited: one layer, not two (the "6 layers audited" when only L5 was).
    m = load_model("hf", run / "models" / "hf")
    summary = dict(m.summary or {})
    summary["by_site"] = {"L1": summary["by_site"]["L1"]}
    section = transformer_section(dataclasses.replace(m, summary=summary), {}, "nats", tmp_path,
                                  "x", {}, [])
    assert section is not None and section["n_layers"] == 1 and section["layer_names"] == ["L1"]


def test_only_the_settings_that_apply_are_shown() -> None:
    from attnaudit.reports.context import applicable_config

    config = {"data": {"path": "d", "min_count": 5, "test_fraction": 0.1, "tokenizer": "t"},
              "model": {"kind": "hf", "base": "minilm", "embedding_dim": 200, "hidden": 50},
              "train": {"epochs": 3}}
    shown = applicable_config(config, imported=False)
    assert shown["model"] == {"kind": "hf", "base": "minilm"} and shown["train"] == {"epochs": 3}
    assert shown["data"] == {"path": "d", "test_fraction": 0.1, "tokenizer": "t"}
    imported = applicable_config(config, imported=True)
    assert "train" not in imported and imported["data"] == {"path": "d", "tokenizer": "t"}
    paper = {"model": {"kind": "flan", "embedding_dim": 200}, "train": {"epochs": 3}}
    assert applicable_config(paper, imported=False) == paper
