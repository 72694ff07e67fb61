"""The HTML report and its figures, built from schema-exact saved results (no model, no torch).

The report's numbers are held to summary.json (written by attnaudit.results.summarize, as the audit
does); rankings and sites come from summary.json's metadata, so a made-up ranking appears without
any change to the report's code.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape
from matplotlib.figure import Figure
from report_fixtures import (
    HOSTILE_ITEM,
    PLANTED,
    TINY_WEIGHT,
    TOY_META,
    write_model,
    write_run,
    write_seeds,
)

from attnaudit.reports import faithfulness as faith
from attnaudit.reports import figures
from attnaudit.reports.context import flip_text
from attnaudit.reports.figures import counterfactual as counterfactual_figures
from attnaudit.reports.figures import faithfulness as faithfulness_figures
from attnaudit.reports.figures.curves import draw_flip_curve
from attnaudit.reports.figures.test1 import delta_bins, plot_delta_js_vs_delta_a, symlog_threshold
from attnaudit.reports.figures.test2 import draw_never_flipped
from attnaudit.reports.html import REPORT_NAME, ReportError, build_report, cli_report, report_context
from attnaudit.reports.seeds import mean_sd
from attnaudit.results.verdict import assess, verdict

MODELS = ("flan-rnn", "han-cnn")
SITE_FIGURES = [s.key for s in figures.FIGURES if s.per_site]
#: the figures of the comparison across models
ALL_FIGURES = [s.key for s in figures.FIGURES if s.across_models]


def _esc(text: str) -> str:
    """``text`` as the report's templates escape it (Jinja2 autoescape)."""
    return str(escape(text))


def _pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def _summary(run: Path, model: str) -> dict[str, Any]:
    path = run / "models" / model / "audit" / "summary.json"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _section(page: str, ident: str) -> str:
    """The HTML of ``<section ... id="ident">`` up to the next site or model section."""
    start = page.index(f'id="{ident}"')
    ends = [i for i in (page.find('<section class="site"', start + 1),
                        page.find('<section class="model-panel"', start + 1)) if i > 0]
    return page[start:min(ends)] if ends else page[start:]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A two-model run (FLAN: one site; HAN: sentence and word) and its report, built once."""
    run = write_run(tmp_path_factory.mktemp("report") / "run", MODELS, seed=3)
    report = build_report(run)
    return run, report.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# The report's numbers are summary.json's
# ----------------------------------------------------------------------------------------------


def test_context_numbers_equal_summary_json(built: tuple[Path, str]) -> None:
    run, _ = built
    context = report_context(run)
    for model in context["models"]:
        summary = _summary(run, model["name"])
        assert [s["name"] for s in model["sites"]] == list(summary["by_site"])
        for site in model["sites"]:
            s = summary["by_site"][site["name"]]
            sw = s["single_weight"]
            assert site["share_cannot_flip"] == s["share_cannot_flip"]
            assert site["test1"]["share_delta_js_positive"] == sw["share_delta_js_positive"]
            assert site["test1"]["median_delta_js"] == sw["median_delta_js"]  # nats: as stored
            assert {f["key"]: f["rate"] for f in site["test1"]["flip_rows"]} == sw["flip_rate"]
            assert site["test1"]["table2"] == sw["table2"]
            for row in site["test2"]["rows"]:
                stats = s["removal"][row["name"]]
                assert {k: row[k] for k in stats} == stats
            assert site["test2"]["versus"] == s["attention_vs_gradient"]


def test_page_numbers_equal_summary_json(built: tuple[Path, str]) -> None:
    run, page = built
    for model in MODELS:
        summary = _summary(run, model)
        for site, s in summary["by_site"].items():
            section = _section(page, f"m-{model}-{site}")
            sw = s["single_weight"]
            for rate in sw["flip_rate"].values():
                assert _pct(rate) in section
            for cell in ("both", "only_max", "only_random", "neither"):
                assert _pct(sw["table2"][cell]) in section
            assert _pct(sw["share_delta_js_positive"]) in section
            assert f"{sw['median_delta_js']:.2g}</b> nats" in section
            assert f"<b>{_pct(s['share_cannot_flip'])}</b>" in section
            test2 = section[section.index('<table class="num test2">'):]
            for ranking, stats in s["removal"].items():
                row = test2[test2.index(f'<tr data-ranking="{ranking}">'):]
                row = row[:row.index("</tr>")]
                cells = re.findall(r"<td>(.*?)</td>", row)
                assert _pct(stats["median_fraction"]) == cells[1]
                censored = stats["median_fraction_censored"]
                assert (_pct(censored) if censored <= 1 else "never") in cells[2]
                assert f"{_pct(stats['q1_fraction'], 0)}–{_pct(stats['q3_fraction'], 0)}" in row
                assert _pct(stats["median_mass"]) in row
                assert _pct(stats["share_never_flipped"]) in row
                if stats["share_beats_random"] is not None:
                    assert _pct(stats["share_beats_random"]) in row
            versus = s["attention_vs_gradient"]
            assert _pct(versus["attention_fewer"]) in section
            assert _pct(versus["gradient_fewer"]) in section


def test_comparison_names_the_ranking_of_never_flips(built: tuple[Path, str]) -> None:
    run, page = built
    section = page[page.index('id="comparison"'):page.index('id="models"')]
    labels = [v["label"] for v in _summary(run, "flan-rnn")["rankings"].values()]
    for label in labels:
        assert f">never · {_esc(label)}</th>" in section
    # one row per model and site, the word site marked as a test the paper did not run
    assert section.count("<tr><td><b>") == 3
    assert "word attention inside the most-attended sentence" in section
    assert "not in the paper" in section


def test_sites_are_sections_and_the_word_site_is_labelled(built: tuple[Path, str]) -> None:
    _, page = built
    assert 'id="m-han-cnn-sentence"' in page and 'id="m-han-cnn-word"' in page
    word = _section(page, "m-han-cnn-word")
    assert "word attention inside the most-attended sentence" in word
    assert "A test the paper did not run" in word
    assert "the paper&#39;s site" in _section(page, "m-han-cnn-sentence")


def test_js_in_bits_is_a_display_conversion(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", "flan-none", n_docs=30)
    nats = json.loads((folder / "audit" / "summary.json").read_text())
    median = nats["by_site"]["token"]["single_weight"]["median_delta_js"]
    page = build_report(folder, js_unit="bits").read_text(encoding="utf-8")
    assert f"{median / math.log(2):.2g}</b> bits" in page
    with pytest.raises(ReportError, match="js_unit"):
        build_report(folder, js_unit="dits")


# ----------------------------------------------------------------------------------------------
# Registry-driven: a made-up ranking appears with no change to reports/
# ----------------------------------------------------------------------------------------------


def test_a_new_ranking_appears_in_tables_and_figures(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", MODELS, n_docs=40, extra_rankings={"toy": TOY_META})
    context = report_context(run)
    assert {"name": "toy", **TOY_META} in context["rankings"]
    page = build_report(run).read_text(encoding="utf-8")
    label = _esc(TOY_META["label"])
    comparison = page[page.index('id="comparison"'):page.index('id="models"')]
    assert f">never · {label}</th>" in comparison and f">{label}</th>" in comparison
    site = _section(page, "m-flan-rnn-token")
    assert f'<tr data-ranking="toy"><td><span class="dot" style="background:{TOY_META["color"]}">' \
           f"</span>{label}</td>" in site
    assert f"top {label} item" in site  # its Test 1 removal
    assert f'data-removed="3">attention × gradient</button><button data-removed="4">{label}' in site
    # The figures take their labels and colours from the same metadata.
    summary = _summary(run, "flan-rnn")
    rankings = summary["rankings"]
    s = summary["by_site"]["token"]
    ax = Figure().subplots()
    draw_flip_curve(ax, s["flip_curve"], rankings, "")
    assert TOY_META["label"] in [t.get_text() for t in ax.get_legend().get_texts()]
    ax = Figure().subplots()
    draw_never_flipped(ax, {"flan-rnn": {r: x["share_never_flipped"]
                                         for r, x in s["removal"].items()}}, rankings)
    assert TOY_META["label"] in [t.get_text() for t in ax.get_legend().get_texts()]
    colors = {tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in ax.patches}
    assert (round(0x12 / 255, 3), round(0x34 / 255, 3), round(0x56 / 255, 3)) in colors


# ----------------------------------------------------------------------------------------------
# Report fixes, each failing on the old report
# ----------------------------------------------------------------------------------------------


def test_never_flipped_axis_is_scaled_to_the_data() -> None:
    """Shares of a few per cent get an axis of a few per cent, not 0-100%."""
    ax = Figure().subplots()
    meta = {"attention": {"label": "attention", "color": "#E69F00"}}
    draw_never_flipped(ax, {"a": {"attention": 0.02}, "b": {"attention": 0.045}}, meta)
    assert 0.045 < ax.get_ylim()[1] <= 0.1


def test_delta_js_axis_shows_negative_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    delta_js = np.concatenate([rng.exponential(1e-3, 200), -rng.exponential(1e-5, 40)])
    single = pd.DataFrame({"delta_a": rng.random(240), "delta_js": delta_js,
                           "skipped": False})
    threshold = symlog_threshold(delta_js)
    _, y_edges = delta_bins(single["delta_a"].to_numpy(), delta_js, threshold)
    assert y_edges[0] == pytest.approx(delta_js.min()) and y_edges[-1] == pytest.approx(delta_js.max())
    counts, _ = np.histogram(delta_js, bins=y_edges)
    assert counts.sum() == len(delta_js)  # none of the negatives falls off the axis
    # a symlog axis: the negatives are spread over bins, not squashed into the one next to zero
    assert (counts[y_edges[1:] <= 0] > 0).sum() >= 3
    png = plot_delta_js_vs_delta_a({"m": single}, tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_flip_step_share_keeps_small_percentages() -> None:
    assert flip_text(1, 400) == "flips after 1 of 400 removed (0.25%)"
    assert flip_text(2, 3) == "flips after 2 of 3 removed (66.7%)"
    assert flip_text(None, 3) == "never flips"


def test_tiny_weights_print_with_significant_digits(built: tuple[Path, str]) -> None:
    """The per-item table gets 3.1e-06, not 0.0000 (flan-none puts ~0 weight on most tokens)."""
    _, page = built
    assert "&#34;3.1e-06&#34;" in page and TINY_WEIGHT == 3.1e-06
    assert "toFixed(4)" not in page


def test_single_run_report_shows_audit_settings(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "some-folder", "flan-cnn", seed=1, n_docs=30)
    page = build_report(folder).read_text(encoding="utf-8")
    run = page[page.index('id="run"'):page.index('id="accuracy"')]
    assert "single model folder" in run
    for key, value in (("config.max_docs", "30"), ("config.path", "fast"), ("config.seed", "7"),
                       ("config.sites", "token"), ("threads", "1"), ("device", "cpu")):
        assert f"<code>{key}</code></td><td>{value}</td>" in run, key
    assert "<code>config.rankings</code></td><td>random, attention, gradient" in run


def test_resumed_training_time_says_so(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", ("flan-none",), n_docs=20)
    write_model(run / "models" / "han-none", "han-none", n_docs=20, resumed=True)
    page = build_report(run).read_text(encoding="utf-8")
    table = page[page.index('id="accuracy"'):page.index('id="comparison"')]
    rows = {m: table[table.index(f"<b>{m}</b>"):] for m in ("flan-none", "han-none")}
    rows = {m: r[:r.index("</tr>")] for m, r in rows.items()}
    assert "resumed: includes the interrupted epoch" in rows["han-none"]
    assert "resumed" not in rows["flan-none"]


def test_degenerate_model_warning_is_at_the_top(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", ("flan-none",), n_docs=30)
    write_model(run / "models" / "flan-cnn", "flan-cnn", n_docs=30, degenerate=True)
    summary = _summary(run, "flan-cnn")
    assert summary["prediction"]["degenerate"] is True
    page = build_report(run).read_text(encoding="utf-8")
    warning = _esc(summary["prediction"]["warning"])
    assert page.index(warning) < page.index('id="how"')  # before anything else in the report
    assert "Degenerate model flan-cnn" in page and "Degenerate model flan-none" not in page
    assert _summary(run, "flan-none")["prediction"]["warning"] is None


# ----------------------------------------------------------------------------------------------
# Figures, inlining, examples, safety
# ----------------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _site_pngs(run: Path) -> list[Path]:
    sites = {"flan-rnn": ("token",), "han-cnn": ("sentence", "word")}
    return [run / "figures" / m / s / f"{k}.png" for m in MODELS for s in sites[m]
            for k in SITE_FIGURES]


def test_every_figure_is_drawn_and_inlined(built: tuple[Path, str]) -> None:
    run, page = built
    pngs = _site_pngs(run) + [run / "figures" / "_combined" / f"{k}.png" for k in ALL_FIGURES]
    for png in pngs:
        width, height = _png_size(png)
        assert width >= 500 and height >= 150, png
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        assert uri in page, png
    assert page.count("<img ") == len(pngs)
    assert "never-flipped documents stay in the denominator" in page  # the flip curve's convention


def test_every_example_is_shown(built: tuple[Path, str]) -> None:
    run, page = built
    context = report_context(run)
    total = 0
    for m in context["models"]:
        for s in m["sites"]:
            total += len(s["examples"])
            for e in s["examples"]:
                assert f"<h4>{_esc(e['doc_id'])}</h4>" in page
                for span in e["spans"]:
                    assert f">{_esc(span['text'])}</span>" in page
    assert total > 8 and page.count('<article class="example"') == total


def test_document_text_is_escaped(built: tuple[Path, str]) -> None:
    _, page = built
    assert HOSTILE_ITEM not in page
    assert _esc(HOSTILE_ITEM) in page
    assert page.count("<script") == 1  # the report's own script, nothing from a document


def test_nothing_is_fetched_from_the_network(built: tuple[Path, str]) -> None:
    _, page = built
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//|@import""", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_is_deterministic(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "flan-none", "flan-none", seed=5, n_docs=30)
    first = build_report(folder).read_bytes()
    assert build_report(folder).read_bytes() == first


def test_figures_survive_degenerate_frames(tmp_path: Path) -> None:
    meta = {"attention": {"label": "attention", "color": "#E69F00"}}
    empty = figures.Panel(title="m", summary={}, single=pd.DataFrame(
        columns=["delta_a", "delta_js", "skipped"]), removal=pd.DataFrame(
        columns=["ranking", "single_item", "never_flipped", "fraction_removed", "doc_id"]))
    for key in figures.SPECS:
        path = figures.draw_figure(key, [empty], meta, tmp_path / f"{key}.png")
        assert path is None or _png_size(path)[0] > 100


# ----------------------------------------------------------------------------------------------
# Layouts and missing pieces
# ----------------------------------------------------------------------------------------------


def test_single_model_folder(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "some-folder", "flan-cnn", seed=1, n_docs=30)
    page = build_report(folder).read_text(encoding="utf-8")
    assert (folder / REPORT_NAME).is_file()
    assert 'id="m-flan-cnn"' in page  # named after the audit, not the folder
    assert page.count("<img ") == len(SITE_FIGURES)  # nothing to compare across


def test_missing_summary_is_recomputed_from_the_tables(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", "flan-cnn", n_docs=30)
    saved = json.loads((folder / "audit" / "summary.json").read_text())
    (folder / "audit" / "summary.json").unlink()
    context = report_context(folder)
    model = context["models"][0]
    assert any("recomputed" in n for n in model["notes"])
    row = model["sites"][0]["test2"]["rows"][1]
    assert row["median_fraction"] == saved["by_site"]["token"]["removal"][row["name"]][
        "median_fraction"]


def test_missing_pieces_are_reported_not_fatal(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", ("flan-none", "han-rnn"), n_docs=30,
                    without_audit=("han-rnn",))
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    info["config"]["models"].append("han-none")  # listed, but not trained yet
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    (run / "models" / "flan-none" / "audit" / "items.parquet").write_text("not parquet")
    page = build_report(run).read_text(encoding="utf-8")
    han_rnn = page[page.index('id="m-han-rnn"'):]
    assert "No audit results yet" in han_rnn[:3000]
    assert "not trained yet" in page[page.index('id="m-han-none"'):]
    assert "items.parquet could not be read" in page
    assert "No example documents" in page
    assert page.count('<section class="model-panel"') == 3


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="neither"):
        build_report(tmp_path)
    with pytest.raises(ReportError, match="not a folder"):
        build_report(tmp_path / "missing")


def test_cli_prints_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_model(tmp_path / "m", "flan-none", n_docs=20)
    cli_report(argparse.Namespace(run=str(folder)))
    assert capsys.readouterr().out.strip() == str(folder / REPORT_NAME)
    with pytest.raises(SystemExit, match="attnaudit: error"):
        cli_report(argparse.Namespace(run=str(tmp_path / "nowhere")))


def test_report_building_does_not_import_torch(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", "han-none", n_docs=20)
    code = ("import sys; from attnaudit.reports.html import build_report; "
            f"build_report({str(folder)!r}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_json_with_top_level_models(tmp_path: Path) -> None:
    """A hand-written run.json may list models at the top level."""
    run = write_run(tmp_path / "run", ("flan-none",), n_docs=20)
    (run / "run.json").write_text(json.dumps({"models": ["flan-none", "han-cnn"], "seed": 1}),
                                  encoding="utf-8")
    page = build_report(run).read_text(encoding="utf-8")
    assert 'id="m-flan-none"' in page and 'id="m-han-cnn"' in page


def test_metrics_under_the_trainers_names(tmp_path: Path) -> None:
    """metrics.json as attnaudit.train writes it: other names for baseline, epochs and docs/s."""
    folder = write_model(tmp_path / "m", "flan-none", n_docs=20)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    renamed = {"majority_baseline": "majority_test_accuracy", "epochs": "epochs_trained",
               "train_docs_per_second": "train_docs_per_s"}
    for old, new in renamed.items():
        metrics[new] = metrics.pop(old)
    metrics["dev_accuracy"] = float("nan")  # no dev split
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    page = build_report(folder).read_text(encoding="utf-8")
    row = page[page.index("<tbody>", page.index('id="accuracy"')):]
    row = row[:row.index("</tr>")]
    assert _pct(metrics["majority_test_accuracy"]) in row
    assert f"<td>{metrics['epochs_trained']}</td>" in row
    assert f"{metrics['train_docs_per_s']:,.0f}" in row
    assert "<td>—</td>" in row  # the missing dev accuracy


# ----------------------------------------------------------------------------------------------
# Faithfulness block: summary.json's numbers, hidden parts, verdict, conventions
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faithful(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One model audited with every faithfulness setting on: bootstrap intervals (few resamples:
    the numbers are inputs here), input-level erasure (unk) and a planted data set."""
    folder = write_model(tmp_path_factory.mktemp("faithful") / "flan-rnn", "flan-rnn", seed=4,
                         n_docs=30, input_erasure="unk", planted=True, bootstrap=20)
    return folder, build_report(folder).read_text(encoding="utf-8")


def _model_summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "audit" / "summary.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _table(section: str, erasure: str) -> str:
    start = section.index(f'<table class="num faith" data-erasure="{erasure}">')
    return section[start:section.index("</table>", start)]


def _row(table: str, ranking: str) -> list[str]:
    row = table[table.index(f'<tr data-ranking="{ranking}">'):]
    return re.findall(r"<td[^>]*>(.*?)</td>", row[:row.index("</tr>")])


def test_faithfulness_table_numbers_and_intervals_equal_summary_json(
        faithful: tuple[Path, str]) -> None:
    folder, page = faithful
    summary = _model_summary(folder)
    site = report_context(folder)["models"][0]["sites"][0]
    s = summary["by_site"]["token"]
    block = site["faithfulness"]
    for table, removal, intervals in (
            (block["tables"][0], s["removal"], s["intervals"]["removal"]),
            (block["tables"][1], s["input"]["removal"], None)):
        leaves = [c["leaf"] for c in table["columns"]]
        assert {"median_fraction_censored", "flip_rate_top", "aopc_comprehensiveness",
                "aopc_sufficiency"} <= set(leaves)
        assert [r["name"] for r in table["rows"]] == list(removal)
        for row in table["rows"]:
            for leaf, cell in zip(leaves, row["cells"], strict=True):
                assert cell["value"] == removal[row["name"]][leaf]
                bounds = (intervals or {}).get(row["name"], {}).get(leaf)
                if bounds is not None:
                    assert [cell["lo"], cell["hi"]] == bounds
    # ... and the page prints them: value, then [lo, hi]
    attention = _table(_section(page, "m-flan-rnn-token"), "attention")
    cells = _row(attention, "gradient")
    column = [c["leaf"] for c in block["tables"][0]["columns"]].index("aopc_comprehensiveness")
    value = s["removal"]["gradient"]["aopc_comprehensiveness"]
    lo, hi = s["intervals"]["removal"]["gradient"]["aopc_comprehensiveness"]
    assert f"{value:.3g}" in cells[column + 1]
    assert f'<span class="ci">[{lo:.3g}, {hi:.3g}]</span>' in cells[column + 1]
    assert _pct(s["removal"]["gradient"]["flip_rate_top"]) in cells[
        [c["leaf"] for c in block["tables"][0]["columns"]].index("flip_rate_top") + 1]


def test_input_level_table_is_labelled_and_shows_input_rows(faithful: tuple[Path, str]) -> None:
    folder, page = faithful
    s = _model_summary(folder)["by_site"]["token"]
    section = _section(page, "m-flan-rnn-token")
    assert "Attention-level erasure</h4>" in section
    assert "Input-level erasure (tokens replaced by unk)</h4>" in section
    table = _table(section, "input")
    leaves = [c["leaf"] for c in report_context(folder)["models"][0]["sites"][0]["faithfulness"][
        "tables"][1]["columns"]]
    value = s["input"]["removal"]["attention"]["aopc_comprehensiveness"]
    assert value != s["removal"]["attention"]["aopc_comprehensiveness"]  # not the attention rows
    assert f"{value:.3g}" in _row(table, "attention")[leaves.index("aopc_comprehensiveness") + 1]
    assert _esc(s["conventions"]["input_erasure"]) in section


def test_faithfulness_block_comes_first_in_the_site(faithful: tuple[Path, str]) -> None:
    _, page = faithful
    section = _section(page, "m-flan-rnn-token")
    order = [section.index(h) for h in ("Faithfulness · ", "Attention-level erasure",
                                         "Agreement between rankings", "Counterfactual attention",
                                         "Planted ground truth", "Test 1 · one attention weight")]
    assert order == sorted(order)


def test_best_ranking_is_marked_only_when_intervals_do_not_overlap() -> None:
    column = faith.MeasureColumn("m", "M", "lower", ("m",), "tip")
    up = faith.MeasureColumn("m", "M", "higher", ("m",), "tip")
    meta = {"a": {"label": "A"}, "b": {"label": "B"}, "c": {"label": "C"}}
    removal = {"a": {"m": 0.2}, "b": {"m": 0.5}, "c": {"m": 0.9}}

    def marked(intervals: Any, col: faith.MeasureColumn) -> list[str]:
        table = faith.measure_table(removal, intervals, meta, {}, title="", columns=(col,))
        assert table is not None
        return [r["name"] for r in table["rows"] if r["cells"][0]["best"]]

    apart = {"a": {"m": [0.1, 0.3]}, "b": {"m": [0.4, 0.6]}, "c": {"m": [0.8, 1.0]}}
    assert marked(apart, column) == ["a"]  # lowest, and 0.3 < 0.4
    assert marked(apart, up) == ["c"]  # highest, and 0.8 > 0.6
    touching = {**apart, "b": {"m": [0.3, 0.6]}}  # a's hi = b's lo: they overlap
    assert marked(touching, column) == []
    assert marked(touching, up) == ["c"]  # c against b only: the runner-up, not the last
    assert marked(None, column) == []  # no intervals, no mark
    assert marked({"a": {"m": [0.1, 0.3]}}, column) == []  # the runner-up has none
    table = faith.measure_table(removal, apart, meta, {"m": "M's convention"}, title="",
                                columns=(column,))
    assert table is not None and table["conventions"] == [("m", "M's convention")]
    assert table["rows"][0]["cells"][0]["interval"] == "[10.0%, 30.0%]"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 0.3), st.floats(0, 0.3)), min_size=2,
                max_size=6), st.sampled_from(["higher", "lower"]), st.randoms())
def test_best_row_agrees_with_a_pairwise_reference(rows: list[tuple[float, float, float]],
                                                   better: Any, shuffle: Any) -> None:
    """Reference without sorting: the best row beats every other row (ties: the earlier row),
    the runner-up beats every row but the best; the best is marked exactly when its interval is
    disjoint from the runner-up's on the better side. A unique best is marked in any row order."""
    cells = [{"value": v, "lo": v - down, "hi": v + up} for v, down, up in rows]
    sign = 1.0 if better == "higher" else -1.0

    def beats(i: int, j: int) -> bool:
        a, b = sign * cells[i]["value"], sign * cells[j]["value"]
        return a > b or (a == b and i < j)

    def winner(among: list[int]) -> int:
        return next(i for i in among if all(beats(i, j) for j in among if j != i))

    best = winner(list(range(len(cells))))
    runner = winner([i for i in range(len(cells)) if i != best])
    top, second = cells[best], cells[runner]
    clear = top["lo"] > second["hi"] if better == "higher" else top["hi"] < second["lo"]
    assert faith.best_row(cells, better) == (best if clear else None)
    if clear and top["value"] != second["value"]:
        shuffled = list(range(len(cells)))
        shuffle.shuffle(shuffled)
        marked = faith.best_row([cells[i] for i in shuffled], better)
        assert marked is not None and shuffled[marked] == best


def test_faithfulness_page_marks_the_best_and_names_the_rule(faithful: tuple[Path, str]) -> None:
    folder, page = faithful
    block = report_context(folder)["models"][0]["sites"][0]["faithfulness"]
    section = _section(page, "m-flan-rnn-token")
    assert section.count('<td class="best"') == sum(t["n_best"] for t in block["tables"])
    assert _esc(faith.BEST_RULE) in section
    assert "95% bootstrap interval over documents (20 resamples, seed 7)" in section


def test_verdict_sentences_appear_with_their_rule(faithful: tuple[Path, str]) -> None:
    folder, page = faithful
    summary = _model_summary(folder)
    s = summary["by_site"]["token"]
    section = _section(page, "m-flan-rnn-token")
    labels = {r: meta["label"] for r, meta in summary["rankings"].items()}
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assessed = assess(summary, metrics)["sites"]["token"]
    statements = verdict(s, list(s["removal"]), site="token", labels=labels, assessed=assessed)
    assert statements and any(x["rule"] == "pairwise" for x in statements)  # intervals decide
    for x in statements:
        assert f'data-rule="{x["rule"]}">{_esc(x["sentence"])}</p>' in section
    overall = statements[-1]
    block = section[section.index('<div class="verdict"'):section.index("<details>")]
    assert _esc(overall["sentence"]) in block  # the site's verdict first, the comparisons folded
    assert f'title="{_esc(faith.VERDICT_RULES[overall["rule"]])[:40]}' not in block  # escaped whole
    assert _esc(faith.VERDICT_RULES["pairwise"]) in section


def test_agreement_and_planted_tables_equal_summary_json(faithful: tuple[Path, str]) -> None:
    folder, page = faithful
    summary = _model_summary(folder)
    section = _section(page, "m-flan-rnn-token")
    pairs = summary["by_site"]["token"]["agreement"]["pairs"]
    for key, stats in pairs.items():
        row = section[section.index(f'<tr data-pair="{_esc(key)}">'):]
        cells = re.findall(r"<td>(.*?)</td>", row[:row.index("</tr>")])
        assert cells[1:] == [f"{stats['mean_tau']:.2f}", f"{stats['median_tau']:.2f}",
                             _pct(stats["mean_top1"]), _pct(stats["mean_top5"]), str(stats["n"])]
    planted = summary["planted"]["by_site"]["token"]
    table = section[section.index('<table class="num compact planted">'):]
    for ranking, stats in planted.items():
        cells = _row(table, ranking)
        assert cells[1] == _pct(stats["recall_at_1"])
        assert cells[5] == _pct(stats["distractor"]["recall_at_1"])
    assert f"<code>{PLANTED.distractor}</code>" in section
    assert "a faithful ranking puts the marker" in section


def test_agreement_heat_map_matrix_is_symmetric_with_a_unit_diagonal() -> None:
    pairs = {"a|b": {"mean_tau": 0.5}, "b|c": {"mean_tau": -0.25}, "a|c": {"mean_tau": None}}
    matrix = faithfulness_figures.agreement_matrix(pairs, ["a", "b", "c"])
    expected = np.array([[1.0, 0.5, np.nan], [0.5, 1.0, -0.25], [np.nan, -0.25, 1.0]])
    np.testing.assert_array_equal(matrix, expected)


def test_counterfactual_numbers_equal_summary_json_in_bits(faithful: tuple[Path, str]) -> None:
    folder, _ = faithful
    entry = _model_summary(folder)["by_site"]["token"]["counterfactual"]
    block = report_context(folder, js_unit="bits")["models"][0]["sites"][0]["faithfulness"]
    numbers = {n["key"]: n["value"] for n in block["counterfactual"]["numbers"]}
    assert numbers["median_perm_tvd"] == entry["median_perm_tvd"]
    assert numbers["median_adv_jsd"] == pytest.approx(entry["median_adv_jsd"] / math.log(2))
    assert "perm_tvd_threshold" not in numbers  # it is in the label instead
    assert [f["key"] for f in block["counterfactual"]["figures"]] == [
        "counterfactual_permutation", "counterfactual_adversarial"]


_PARTS = {  # summary key -> the heading it shows
    "agreement": "Agreement between rankings</h4>",
    "counterfactual": "Counterfactual attention (Jain &amp; Wallace)</h4>",
    "input": "Input-level erasure",
}


def test_a_missing_key_hides_its_part(faithful: tuple[Path, str], tmp_path: Path) -> None:
    folder, page = faithful
    for heading in [*_PARTS.values(), "Planted ground truth</h4>"]:
        assert heading in page
    summary = _model_summary(folder)
    for key, heading in _PARTS.items():
        trimmed = json.loads(json.dumps(summary))
        del trimmed["by_site"]["token"][key]
        if key == "counterfactual":  # an audit that skipped it has no columns either
            single = pd.read_parquet(folder / "audit" / "single_weight.parquet")
            copy = _copy_audit(folder, tmp_path / key)
            single.drop(columns=[c for c in single if c.startswith(("perm_", "adv_"))]).to_parquet(
                copy / "audit" / "single_weight.parquet")
        else:
            copy = _copy_audit(folder, tmp_path / key)
        (copy / "audit" / "summary.json").write_text(json.dumps(trimmed), encoding="utf-8")
        trimmed_page = build_report(copy).read_text(encoding="utf-8")
        assert heading not in trimmed_page, key
        assert "Faithfulness · " in trimmed_page
    trimmed = json.loads(json.dumps(summary))
    del trimmed["planted"]
    copy = _copy_audit(folder, tmp_path / "planted")
    (copy / "audit" / "summary.json").write_text(json.dumps(trimmed), encoding="utf-8")
    assert "Planted ground truth" not in build_report(copy).read_text(encoding="utf-8")


def test_an_old_summary_has_no_faithfulness_block(faithful: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    """summary.json as audits wrote it before these measures: no block, no empty heading."""
    folder, _ = faithful
    summary = _model_summary(folder)
    old = json.loads(json.dumps(summary))
    del old["planted"], old["bootstrap"]
    s = old["by_site"]["token"]
    for key in ("agreement", "counterfactual", "input", "intervals", "differences"):
        s.pop(key, None)
    first_flip = ("n", "median_fraction", "q1_fraction", "q3_fraction", "median_fraction_censored",
                  "median_mass", "share_never_flipped", "share_cannot_flip", "flip_curve",
                  "share_beats_random")
    s["removal"] = {r: {k: v for k, v in x.items() if k in first_flip}
                    for r, x in s["removal"].items()}
    copy = _copy_audit(folder, tmp_path / "old")
    for table in ("single_weight", "removal", "items"):  # the tables of an old audit
        frame = pd.read_parquet(folder / "audit" / f"{table}.parquet")
        frame.drop(columns=[c for c in frame if c.startswith(
            ("perm_", "adv_", "comp_", "suff_", "aopc_", "flip_top", "fraction_to_flip",
             "erasure"))]).to_parquet(copy / "audit" / f"{table}.parquet")
    (copy / "audit" / "summary.json").write_text(json.dumps(old), encoding="utf-8")
    site = report_context(copy)["models"][0]["sites"][0]
    # what is left is the censored median, never-flipped share and beats-random, without
    # intervals: the table stays (those are faithfulness numbers), and nothing is marked best
    table = site["faithfulness"]["tables"][0]
    assert [c["leaf"] for c in table["columns"]] == [
        "median_fraction_censored", "share_never_flipped", "share_beats_random"]
    assert not table["has_intervals"] and table["n_best"] == 0
    page = build_report(copy).read_text(encoding="utf-8")
    for heading in [*_PARTS.values(), "Planted ground truth", "Comprehensiveness and sufficiency",
                    "Do the rankings agree?", "Attention-level erasure"]:
        assert heading not in page, heading
    assert "This audit has no bootstrap intervals" in page
    assert page.count("<img ") == len([s for s in figures.FIGURES
                                        if s.per_site and s.test != "faithfulness"])
    # with no faithfulness number at all, there is no block
    assert faith.site_block(old, "token", {"removal": {}}, {}, {}) is None
    # an old audit without summary.json: recomputed from its tables, the same columns shown
    (copy / "audit" / "summary.json").unlink()
    recomputed = report_context(copy)["models"][0]
    assert any("recomputed" in n for n in recomputed["notes"])
    table = recomputed["sites"][0]["faithfulness"]["tables"][0]
    assert [c["leaf"] for c in table["columns"]] == [
        "median_fraction_censored", "share_never_flipped", "share_beats_random"]


def _copy_audit(folder: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(folder, to)
    (to / "figures").exists() and shutil.rmtree(to / "figures")
    return to


def test_every_faithfulness_figure_names_its_convention(faithful: tuple[Path, str],
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The convention is on the figure itself (title or axis), not only in the page's caption."""
    folder, page = faithful
    texts: dict[str, str] = {}

    def capture(module: Any) -> None:
        original = module.save

        def save(fig: Figure, path: Any) -> Path:
            words = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
            texts[Path(path).stem] = " ".join(" ".join(str(w) for w in words).split())
            return original(fig, path)  # type: ignore[no-any-return]
        monkeypatch.setattr(module, "save", save)

    capture(faithfulness_figures)
    capture(counterfactual_figures)
    report_context(folder)
    assert "ERASER bins q = 1%, 5%, 10%, 20%, 50%, k = ceil(q·n)" in texts["eraser_curves"]
    assert "k = 0 term of the ERASER paper's AOPC" in texts["eraser_curves"]
    assert "input-level erasure (tokens replaced by unk)" in texts["eraser_curves"]
    assert "Kendall tau-b" in texts["agreement"]
    assert "m = 100 permutations" in texts["counterfactual_permutation"]
    assert "TVD(output) ≤ 0.01" in texts["counterfactual_adversarial"]
    assert "[nats]" in texts["counterfactual_adversarial"]
    for key in ("eraser_curves", "agreement", "counterfactual_permutation",
                "counterfactual_adversarial"):
        spec = figures.SPECS[key]
        assert f'data-key="{key}"><figcaption><b>{_esc(spec.title)}' in page


# ----------------------------------------------------------------------------------------------
# Across seeds
# ----------------------------------------------------------------------------------------------


def test_across_seeds_section_equals_seeds_json(tmp_path: Path) -> None:
    run = write_seeds(tmp_path / "run", ("flan-none",), (0, 1, 2), n_docs=20)
    seeds = json.loads((run / "seeds.json").read_text(encoding="utf-8"))
    page = build_report(run).read_text(encoding="utf-8")
    section = page[page.index('<section id="seeds">'):]
    section = section[:section.index("</section>")]
    assert '<a href="#seeds">Across seeds</a>' in page
    entry = seeds["models"]["flan-none"]
    assert f"test accuracy {mean_sd(entry['metrics']['test_accuracy'])}" in section
    stats = entry["by_site"]["token"]["removal"]["gradient"]["share_never_flipped"]
    assert f"{_pct(stats['mean'])} ± {_pct(stats['std'])}" in section
    claim = entry["by_site"]["token"]["advantage"]["gradient_vs_attention"][
        "median_fraction_censored"]
    assert (f"ahead of attention by median fraction to flip (censored): holds in {claim['holds']} "
            f"of {claim['n']} seeds") in section
    assert ("survives every seed" if claim["survives"] else "does not hold in every seed") in section
    # a single-seed run has no such section
    assert 'id="seeds"' not in build_report(write_run(tmp_path / "one", ("flan-none",),
                                                      n_docs=20)).read_text(encoding="utf-8")


def test_mean_sd_formats_by_kind() -> None:
    assert mean_sd({"mean": 0.5, "std": 0.1}) == "50.0% ± 10.0%"
    assert mean_sd({"mean": 0.123, "std": 0.0456}, "number") == "0.123 ± 0.046"
    assert mean_sd({"mean": 1.2, "std": 0.1}, "censored") == "never ± 10.0%"
    assert mean_sd({"mean": 0.5, "std": None}) == "50.0%"
    assert mean_sd({"mean": None}) == "—"


def test_the_faithfulness_table_takes_its_columns_from_the_measure_registry() -> None:
    """A measure brings its report columns: the table is every registered measure's, in order."""
    from attnaudit.measures import MEASURES

    declared = [c.leaf for m in MEASURES.values() for c in m.report_columns]
    assert declared and [c.leaf for c in faith.FAITHFULNESS_COLUMNS] == [*declared,
                                                                          "share_beats_random"]
