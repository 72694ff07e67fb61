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
from markupsafe import escape
from matplotlib.figure import Figure
from report_fixtures import HOSTILE_ITEM, TINY_WEIGHT, TOY_META, write_model, write_run

from attnaudit.reports import figures
from attnaudit.reports.context import flip_text
from attnaudit.reports.figures.curves import draw_flip_curve
from attnaudit.reports.figures.test1 import delta_bins, plot_delta_js_vs_delta_a, symlog_threshold
from attnaudit.reports.figures.test2 import draw_never_flipped
from attnaudit.reports.html import REPORT_NAME, ReportError, build_report, cli_report, report_context

MODELS = ("flan-rnn", "han-cnn")
SITE_FIGURES = [s.key for s in figures.FIGURES if s.per_site]
ALL_FIGURES = [s.key for s in figures.FIGURES]


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
            for ranking, stats in s["removal"].items():
                row = section[section.index(f'<tr data-ranking="{ranking}">'):]
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
    for key in ALL_FIGURES:
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
