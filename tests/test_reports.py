"""The figures and the HTML report, built from schema-exact saved results (no model, no torch)."""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from report_fixtures import HOSTILE_ITEM, RANKINGS, REMOVALS, write_model, write_run

from attnaudit.reports import figures
from attnaudit.reports.html import (
    FIGURES,
    REPORT_NAME,
    ReportError,
    build_report,
    cli_report,
)

MODELS = ("flan-rnn", "han-cnn")
PER_MODEL_FIGURES = [s.key for s in FIGURES if s.per_model]
ALL_FIGURES = [s.key for s in FIGURES]


def _pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def _read(run: Path, model: str, name: str) -> Any:
    return json.loads((run / "models" / model / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A two-model run and its report, built once for the module."""
    run = write_run(tmp_path_factory.mktemp("report") / "run", MODELS, seed=3)
    report = build_report(run)
    return run, report.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_every_figure_is_written_and_non_trivial(built: tuple[Path, str]) -> None:
    run, _ = built
    expected = [run / "figures" / m / f"{k}.png" for m in MODELS for k in PER_MODEL_FIGURES]
    expected += [run / "figures" / "_combined" / f"{k}.png" for k in ALL_FIGURES]
    for path in expected:
        width, height = _png_size(path)
        assert width >= 500 and height >= 150, path
        assert path.stat().st_size > 10_000, f"{path} looks empty"


@pytest.fixture(scope="module")
def frames(built: tuple[Path, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    run, _ = built
    single = pd.concat([pd.read_parquet(run / "models" / m / "audit" / "single_weight.parquet")
                        for m in MODELS], ignore_index=True)
    removal = pd.concat([pd.read_parquet(run / "models" / m / "audit" / "removal.parquet")
                         for m in MODELS], ignore_index=True)
    return single, removal


def test_figures_are_deterministic(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    single, removal = frames
    for name in ("a", "b"):
        figures.plot_delta_js_vs_delta_a(single, tmp_path / f"djs-{name}.png", js_base="2")
        figures.plot_fraction_removed(removal, tmp_path / f"frac-{name}.png")
    assert (tmp_path / "djs-a.png").read_bytes() == (tmp_path / "djs-b.png").read_bytes()
    assert (tmp_path / "frac-a.png").read_bytes() == (tmp_path / "frac-b.png").read_bytes()


@pytest.mark.parametrize("kind", ["empty", "one-item only", "no model column"])
def test_figures_survive_degenerate_frames(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, kind: str
) -> None:
    single, removal = frames
    if kind == "empty":
        single, removal = single.iloc[:0], removal.iloc[:0]
    elif kind == "one-item only":
        single, removal = single[single["skipped"]], removal[removal["single_item"]]
    else:
        single = single[single["model"] == "flan-rnn"].drop(columns="model")
        removal = removal[removal["model"] == "flan-rnn"].drop(columns="model")
    paths = [
        figures.plot_delta_js_vs_delta_a(single, tmp_path / "a.png", js_base="e"),
        figures.plot_flip_table(single, tmp_path / "b.png"),
        figures.plot_fraction_removed(removal, tmp_path / "c.png"),
        figures.plot_mass_removed(removal, tmp_path / "d.png"),
        figures.plot_never_flipped(removal, tmp_path / "e.png"),
        figures.plot_attention_vs_gradient(removal, tmp_path / "f.png"),
    ]
    for path in paths:
        assert _png_size(path)[0] > 100


def test_figure_numbers_match_the_tables(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """The shares the figures draw are the ones the audit's summary reports."""
    single, removal = frames
    one = single[single["model"] == "flan-rnn"]
    measured = one[~one["skipped"]]
    shares = figures.table2_shares(one)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["both"] == pytest.approx(
        (measured["flip_max"].astype(bool) & measured["flip_random"].astype(bool)).mean())
    rates = figures.flip_rates(one)
    assert set(rates) == set(REMOVALS)
    never = figures.never_flipped_shares(removal)
    multi = removal[~removal["single_item"] & (removal["model"] == "han-cnn")]
    for ranking in RANKINGS:
        rows = multi[multi["ranking"] == ranking]
        assert never["han-cnn"][ranking] == pytest.approx(rows["never_flipped"].mean())


# ----------------------------------------------------------------------------------------------
# Report content
# ----------------------------------------------------------------------------------------------


def test_accuracy_table(built: tuple[Path, str]) -> None:
    run, page = built
    section = page[page.index('id="accuracy"'):page.index('id="comparison"')]
    for model in MODELS:
        metrics = _read(run, model, "metrics.json")
        assert f"<b>{model}</b>" in section
        assert _pct(metrics["test_accuracy"]) in section
        assert _pct(metrics["dev_accuracy"]) in section
        assert _pct(metrics["majority_baseline"]) in section
        assert f"{metrics['train_docs_per_second']:,.0f}" in section


def test_each_model_summary(built: tuple[Path, str]) -> None:
    run, page = built
    for model in MODELS:
        summary = _read(run, model, "audit/summary.json")
        panel = page[page.index(f'id="m-{model}"'):]
        panel = panel[:panel.index("Example documents")]
        sw = summary["single_weight"]
        for removal in REMOVALS:
            assert _pct(sw["flip_rate"][removal]) in panel
        for cell in ("both", "only_max", "only_random", "neither"):
            assert _pct(sw["table2"][cell]) in panel
        assert _pct(sw["share_delta_js_positive"]) in panel
        for ranking in RANKINGS:
            stats = summary["removal"][ranking]
            assert _pct(stats["median_fraction"]) in panel
            assert f"{_pct(stats['q1_fraction'], 0)}–{_pct(stats['q3_fraction'], 0)}" in panel
            assert _pct(stats["share_never_flipped"]) in panel
        versus = summary["attention_vs_gradient"]
        assert _pct(versus["attention_fewer"]) in panel and _pct(versus["gradient_fewer"]) in panel
        assert f"{summary['n_docs']}</div>" in panel


def test_every_figure_is_inlined(built: tuple[Path, str]) -> None:
    run, page = built
    pngs = [run / "figures" / m / f"{k}.png" for m in MODELS for k in PER_MODEL_FIGURES]
    pngs += [run / "figures" / "_combined" / f"{k}.png" for k in ALL_FIGURES]
    for png in pngs:
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        assert uri in page, png
    assert page.count("<img ") == len(pngs)


def test_every_example_is_shown(built: tuple[Path, str]) -> None:
    run, page = built
    total = 0
    for model in MODELS:
        examples = _read(run, model, "audit/examples.json")
        total += len(examples)
        for ex in examples:
            assert f"<h4>{html.escape(ex['doc_id'])}</h4>" in page
            for item in ex["items"]:
                assert f">{html.escape(item)}</span>" in page
    assert page.count('<article class="example"') == total


def test_document_text_is_escaped(built: tuple[Path, str]) -> None:
    _, page = built
    assert HOSTILE_ITEM not in page
    assert html.escape(HOSTILE_ITEM) in page
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


# ----------------------------------------------------------------------------------------------
# Layouts and missing pieces
# ----------------------------------------------------------------------------------------------


def test_single_model_folder(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "some-folder", "flan-cnn", seed=1, n_docs=30)
    page = build_report(folder).read_text(encoding="utf-8")
    assert (folder / REPORT_NAME).is_file()
    assert 'id="m-flan-cnn"' in page  # named after the audit, not the folder
    assert "single model folder" in page
    assert page.count("<img ") == len(PER_MODEL_FIGURES)  # nothing to compare across


def test_missing_pieces_are_reported_not_fatal(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", ("flan-none", "han-rnn"), n_docs=30,
                    without_audit=("han-rnn",))
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    info["config"]["models"].append("han-none")  # listed, but not trained yet
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    (run / "models" / "flan-none" / "audit" / "examples.json").write_text("{not json",
                                                                          encoding="utf-8")
    page = build_report(run).read_text(encoding="utf-8")
    han_rnn = page[page.index('id="m-han-rnn"'):]
    assert "No audit results yet" in han_rnn[:2000]
    assert "not trained yet" in page[page.index('id="m-han-none"'):]
    assert "examples.json could not be read" in page
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


def test_report_building_does_not_import_torch() -> None:
    code = ("import sys, attnaudit.reports, attnaudit.reports.html; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_json_with_top_level_models(tmp_path: Path) -> None:
    """A hand-written run.json may list models at the top level."""
    run = write_run(tmp_path / "run", ("flan-none",), n_docs=20)
    (run / "run.json").write_text(json.dumps({"models": ["flan-none", "han-cnn"], "seed": 1}),
                                  encoding="utf-8")
    page = build_report(run).read_text(encoding="utf-8")
    assert 'id="m-flan-none"' in page and 'id="m-han-cnn"' in page


def test_audit_and_comparison_figure_writers(
    built: tuple[Path, str], frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    """The entry points ``attnaudit audit`` calls: per-model figures and the comparison."""
    run, _ = built
    single, removal = frames
    one = single["model"] == "flan-rnn"
    written = figures.write_model_figures(single[one], removal[removal["model"] == "flan-rnn"],
                                          tmp_path / "audit", js_base="e")
    assert sorted(written) == sorted(figures.FIGURE_SOURCES)
    assert all(p.parent == tmp_path / "audit" / "figures" and p.is_file() for p in written.values())
    compared = figures.write_comparison_figures(
        [run / "models" / m / "audit" for m in MODELS], tmp_path / "comparison")
    assert sorted(compared) == sorted(figures.FIGURE_SOURCES)


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
