"""Several audits of one model under names (``attnaudit audit RUN --name NAME``): each in
``audits/NAME/`` beside the full audit, which it never touches, each shown by the report; and the
report's durations in one unit per table."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import FLAT_SITES, RANKINGS_META, _document, write_audit, write_model, write_run

from attnaudit.cli import main
from attnaudit.reports.context import _accuracy_rows, ensure_verdict, verdict_card
from attnaudit.reports.html import build_report, report_context
from attnaudit.reports.loading import (
    ModelResults,
    load_model,
    load_named_audits,
    settings_differences,
)
from attnaudit.reports.markup import duration, duration_unit
from attnaudit.reports.render import environment
from attnaudit.results.tables import AUDIT_DIR, audit_folder, check_audit_name, named_audits

TABLES = ("single_weight", "removal", "items")


# ----------------------------------------------------------------------------------------------
# Names and folders
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ig-only", "L0.query_all", "a", "2", "x" * 64])
def test_a_safe_name_is_its_own_folder_under_audits(name: str, tmp_path: Path) -> None:
    assert check_audit_name(name) == name
    assert audit_folder(tmp_path, name) == tmp_path / "audits" / name
    assert audit_folder(tmp_path) == tmp_path / AUDIT_DIR  # the full audit, as before


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", ".hidden", "-x", "a b", "é",
                                  "x" * 65, "a\\b", "a:b"])
def test_a_name_that_is_not_one_safe_folder_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a usable audit name"):
        check_audit_name(name)
    with pytest.raises(ValueError, match="not a usable audit name"):
        audit_folder(tmp_path, name)


def test_a_bad_name_stops_the_command_in_one_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Checked before any work (no model is loaded: the folder need not even hold one)."""
    assert main(["audit", str(tmp_path), "--name", "../elsewhere", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnaudit: error: --name '../elsewhere'")
    assert "letters, digits" in err and "Traceback" not in err
    assert not (tmp_path / "audits").exists()


def test_named_audits_are_listed_by_name_and_odd_folders_left_out(tmp_path: Path) -> None:
    for folder in ("zeta", "alpha", ".tmp", "with space"):
        (tmp_path / "audits" / folder).mkdir(parents=True)
    (tmp_path / "audits" / "a-file").write_text("")
    assert [n for n, _ in named_audits(tmp_path)] == ["alpha", "zeta"]
    assert named_audits(tmp_path / "nothing-here") == []


def test_what_differs_from_the_full_audit_is_stated() -> None:
    full = {"n_docs": 120, "config": {"rankings": ["attention", "random"], "sites": ["token"],
                                      "max_docs": None, "seed": 0},
            "summary_settings": {"bootstrap": 1000}}
    named = {"n_docs": 50, "config": {"rankings": ["attention", "integrated_gradients"],
                                      "sites": ["token"], "max_docs": 50, "seed": 0},
             "summary_settings": {"bootstrap": 1000}}
    assert settings_differences(named, full) == [
        "rankings: attention, integrated_gradients (full audit: attention, random)",
        "max_docs: 50 (full audit: default)",
        "documents: 50 (full audit: 120)",
    ]
    assert settings_differences(full, full) == []
    assert settings_differences(named, None) == ["no full audit of this model to compare with"]


# ----------------------------------------------------------------------------------------------
# The report: every audit of each model
# ----------------------------------------------------------------------------------------------


def _named(model_dir: Path, audit_name: str, *, n_docs: int) -> Path:
    """A named audit beside ``model_dir``'s full one, of other documents (``max_docs``)."""
    rng = np.random.default_rng(5)
    docs = [_document(rng, f"doc-{i:04d}", list(FLAT_SITES), list(RANKINGS_META), first=i == 0,
                      degenerate=False) for i in range(n_docs)]
    folder = audit_folder(model_dir, audit_name)
    write_audit(folder, model_dir.name, docs, rng, RANKINGS_META, FLAT_SITES)
    return folder


def test_the_verdict_card_has_a_line_per_audit_and_site(tmp_path: Path) -> None:
    """The card's rows from the saved summaries alone (no figures: the quick-tier check)."""
    model = write_model(tmp_path / "flan-none", "flan-none", n_docs=10)
    _named(model, "eight", n_docs=8)
    full = load_model("flan-none", model)
    audits = [full, *load_named_audits(full)]
    for m in audits:
        ensure_verdict(m)
    ctx = [{"id": f"m{i}", "sites": [{"name": "token", "label": "token attention",
                                      "id": f"m{i}-token"}]} for i in range(len(audits))]
    card = verdict_card(audits, ctx)
    assert [(v["model"], v["audit"], v["site"]) for v in card] == [
        ("flan-none", None, "token attention"),
        ("flan-none · audit eight", "eight", "token attention")]
    assert card[1]["href"] == "#m1-token-verdict" and card[1]["status"] in {"given", "withheld"}


@pytest.mark.full  # ~30 s on the shared 2-core machine: two audits' figures drawn
def test_the_report_shows_a_named_audit_beside_the_full_one(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", ("flan-none",), n_docs=20)
    model = run / "models" / "flan-none"
    full_files = {p.name: p.read_bytes() for p in (model / AUDIT_DIR).iterdir()}
    _named(model, "twelve-docs", n_docs=12)
    context = report_context(run)
    card = context["verdict_card"]
    full_lines = [v for v in card if v["audit"] is None]
    named_lines = [v for v in card if v["audit"] == "twelve-docs"]
    assert full_lines and named_lines  # one line per model x audit x site
    assert {v["site"] for v in named_lines} == {v["site"] for v in full_lines}
    assert all(v["model"] == "flan-none · audit twelve-docs" for v in named_lines)
    sections = {m["name"]: m for m in context["models"]}
    named = sections["flan-none · audit twelve-docs"]
    assert named["audit_name"] == "twelve-docs" and named["model_name"] == "flan-none"
    assert named["n_docs"] == 12 and sections["flan-none"]["n_docs"] == 20
    assert "documents: 12 (full audit: 20)" in named["differs"]
    assert "max_docs: 12 (full audit: 20)" in named["differs"] and len(named["differs"]) == 2
    # the model-level tables stay one row per model
    assert [a["name"] for a in context["accuracy"]["rows"]] == ["flan-none"]
    page = html.unescape(build_report(run).read_text(encoding="utf-8"))
    top = page[page.index('id="verdict-card"'):page.index('id="how"')]
    assert "Model · audit · site" in top and "flan-none · audit twelve-docs · " in top
    assert "audits/twelve-docs/" in page and "What differs from the full audit:" in page
    # the full audit is read, never written
    assert {p.name: p.read_bytes() for p in (model / AUDIT_DIR).iterdir()} == full_files


def test_a_model_folder_with_only_a_named_audit_is_reported(tmp_path: Path) -> None:
    model = write_model(tmp_path / "flan-none", "flan-none", n_docs=8, with_audit=False)
    (model / "metrics.json").unlink()  # nothing but audits/NAME/ says it is a model folder
    _named(model, "small", n_docs=8)
    from attnaudit.reports.loading import discover

    assert discover(model)[1] == [("flan-none", model)]


# ----------------------------------------------------------------------------------------------
# Durations: one unit per table
# ----------------------------------------------------------------------------------------------


def test_a_table_takes_the_unit_of_its_longest_duration() -> None:
    assert duration_unit([30.0, 90.0, None]) == "s"
    assert duration_unit([30.0, 4000.0]) == "min"
    assert duration_unit([5.0, 9000.0, float("nan")]) == "h"
    assert duration_unit([]) == "s"
    assert [duration(v, "min") for v in (30.0, 4000.0, 1.0, 0.0, None)] == [
        "0.5", "66.7", "<0.1", "0.0", "—"]
    assert duration(59.6, "s") == "60" and duration(0.2, "s") == "<1"


_DURATION = re.compile(r"\d(?:\.\d+)?\s*(?:s|min|h)\b")


def test_the_accuracy_table_never_mixes_duration_units() -> None:
    """Training times of 45 s and 73 min: before, "45 s" beside "73.3 min" in one column; now
    both in min, the unit in the header only."""
    models = [ModelResults(name=n, folder=Path(n), metrics={"train_seconds": s})
              for n, s in (("fast", 45.0), ("slow", 4400.0), ("unknown", None))]
    table = _accuracy_rows(models)
    assert table["time_unit"] == "min"
    assert [r["train_time"] for r in table["rows"]] == ["0.8", "73.3", "—"]
    page = environment().from_string(  # the table as the report includes it
        '{% import "macros.html.j2" as ui %}{% include "accuracy.html.j2" %}').render(accuracy=table)
    header, body = page.split("</thead>")
    assert "Training time (min)" in header
    cells = re.findall(r"<td>(.*?)</td>", body)
    assert not [c for c in cells if _DURATION.search(re.sub(r"<[^>]+>", "", c))], cells


# ----------------------------------------------------------------------------------------------
# The audit itself, on a trained model
# ----------------------------------------------------------------------------------------------


@pytest.mark.full  # ~40 s on the 2-core machine: four small audits of a trained model, a report
def test_a_named_audit_keeps_its_own_settings_and_never_touches_the_full_one(
    imdb_slice: Path, tmp_path: Path
) -> None:
    from attnaudit.config import AuditConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
    from attnaudit.data.types import DataError
    from attnaudit.erasure.audit import audit_run
    from attnaudit.train import train_run

    run = tmp_path / "flan-none"
    train_run(RunConfig(data=DataConfig(path=str(imdb_slice)),
                        model=ModelConfig(kind="flan", encoder="none", embedding_dim=16),
                        train=TrainConfig(epochs=1, threads=1)), run, progress=False)
    cheap = AuditConfig(max_docs=12, bootstrap=0, permutations=0, adversarial_epsilon=0)
    full = audit_run(run, cheap, progress=False)
    stamps = {t: (run / AUDIT_DIR / f"{t}.parquet").stat().st_mtime_ns for t in TABLES}
    other = cheap.model_copy(update={"max_docs": 8, "rankings": ("attention", "random")})
    named = audit_run(run, other, progress=False, name="small")
    folder = run / "audits" / "small"
    assert named["n_docs"] == 8 and full["n_docs"] == 12
    assert set(pd.read_parquet(folder / "removal.parquet")["ranking"]) == {"attention", "random"}
    assert json.loads((folder / "audit_info.json").read_text())["audit_name"] == "small"
    # the same name and settings: reused as it is
    named_stamps = {t: (folder / f"{t}.parquet").stat().st_mtime_ns for t in TABLES}
    assert audit_run(run, other, progress=False, name="small") == named
    assert {t: (folder / f"{t}.parquet").stat().st_mtime_ns for t in TABLES} == named_stamps
    # other settings under the same name: refused, naming what changed, unless --replace
    with pytest.raises(DataError, match=r"audits/small holds .*max_docs.*--replace.*--name"):
        audit_run(run, cheap, progress=False, name="small")
    assert audit_run(run, cheap, progress=False, name="small", replace=True)["n_docs"] == 12
    # the full audit was never touched, and is reused as it was
    assert {t: (run / AUDIT_DIR / f"{t}.parquet").stat().st_mtime_ns for t in TABLES} == stamps
    assert audit_run(run, cheap, progress=False) == full
    # a named audit's tables are the full audit's with the same settings (the name changes nothing)
    for table in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(folder / f"{table}.parquet"),
                                      pd.read_parquet(run / AUDIT_DIR / f"{table}.parquet"),
                                      check_exact=True, obj=table)
    # the command: its line names the named audit, and it rebuilds the report that shows the model
    report = build_report(run)
    settings = tmp_path / "cheap.toml"
    settings.write_text("[audit]\nbootstrap = 0\npermutations = 0\nadversarial_epsilon = 0\n")
    assert main(["audit", str(run), "--name", "cli", "--max-docs", "6", "--rankings",
                 "attention,random", "--config", str(settings), "--threads", "1",
                 "--no-progress"]) == 0
    assert (run / "audits" / "cli" / "summary.json").is_file()
    page = html.unescape(report.read_text(encoding="utf-8"))
    assert "flan-none · audit cli · " in page and "flan-none · audit small · " in page
    shutil.rmtree(run / AUDIT_DIR)
    assert (folder / "summary.json").is_file()  # each lives in its own folder
