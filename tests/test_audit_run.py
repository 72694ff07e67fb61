"""An audit of a real (tiny) trained run as users start it: one writer at a time, no silent
replacement of a complete audit, and several processes under torchrun giving one process's tables."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from attnaudit.config import AuditConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from attnaudit.data.types import DataError
from attnaudit.erasure.audit import AUDIT_DIR, audit_run
from attnaudit.train import train_run
from attnaudit.utils.lock import folder_lock

TABLES = ("single_weight", "removal", "items")


@pytest.fixture(scope="module")
def trained(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flan-none run trained for one epoch on the IMDB slice (120 test documents)."""
    out = tmp_path_factory.mktemp("audit-run") / "flan-none"
    config = RunConfig(
        data=DataConfig(path=str(imdb_slice)),
        model=ModelConfig(kind="flan", encoder="none", embedding_dim=16),
        train=TrainConfig(epochs=1, threads=1),
    )
    train_run(config, out, progress=False)
    return out


def _copy(run: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(run, tmp_path / name / run.name,
                                ignore=shutil.ignore_patterns(AUDIT_DIR)))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "attnaudit.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_a_second_audit_of_the_same_run_stops_with_the_holders_pid(
    trained: Path, tmp_path: Path
) -> None:
    run = _copy(trained, tmp_path, "locked")
    with folder_lock(run, "a test"):  # this process holds the model folder
        done = _cli("audit", str(run), "--no-progress", "--max-docs", "10")
    assert done.returncode == 2, done.stderr
    assert f"pid {os.getpid()}" in done.stderr and "Traceback" not in done.stderr
    assert not (run / AUDIT_DIR / "summary.json").exists()
    # The lock dies with its holder: the same command now runs.
    assert _cli("audit", str(run), "--no-progress", "--max-docs", "10").returncode == 0


def test_a_complete_audit_is_not_replaced_silently(trained: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path, "replace")
    full = audit_run(run, AuditConfig(), progress=False)
    assert full["n_docs"] == 120
    with pytest.raises(DataError, match=r"complete audit of 120 documents.*max_docs.*--replace"):
        audit_run(run, AuditConfig(max_docs=50), progress=False)
    assert pd.read_parquet(run / AUDIT_DIR / "single_weight.parquet")["doc_id"].nunique() == 120
    assert audit_run(run, AuditConfig(), progress=False) == full  # same settings: reused
    smaller = audit_run(run, AuditConfig(max_docs=50), progress=False, replace=True)
    assert smaller["n_docs"] == 50


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun (installed with torch) not found beside this Python")
def test_two_processes_under_torchrun_give_the_one_process_tables(
    trained: Path, tmp_path: Path
) -> None:
    settings = tmp_path / "audit.toml"
    settings.write_text("[audit]\nchunk_docs = 20\n")  # 120 documents: 6 chunks, 3 per rank
    alone = _copy(trained, tmp_path, "alone")
    sharded = _copy(trained, tmp_path, "sharded")
    one = _cli("audit", str(alone), "--config", str(settings), "--threads", "1", "--no-progress")
    assert one.returncode == 0, one.stderr
    torchrun = Path(sys.executable).parent / "torchrun"
    two = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "attnaudit.cli", "audit",
         str(sharded), "--config", str(settings), "--threads", "1", "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert two.returncode == 0, two.stderr[-3000:]
    for table in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(sharded / AUDIT_DIR / f"{table}.parquet"),
                                      pd.read_parquet(alone / AUDIT_DIR / f"{table}.parquet"),
                                      check_exact=True, obj=table)
    info = pd.read_json(sharded / AUDIT_DIR / "audit_info.json", typ="series")
    assert info["processes"] == 2
    assert len(list((sharded / AUDIT_DIR / "parts").glob("single_weight-*.parquet"))) == 6


def test_a_han_run_audited_at_both_sites_with_two_rankings(
    imdb_slice: Path, tmp_path: Path
) -> None:
    """The command a user types: ``attnaudit audit RUN --rankings attention,gradient --sites
    sentence,word`` on a HAN run, and the report built from what it wrote."""
    run = tmp_path / "han-none"
    trained = _cli("train", "--data", str(imdb_slice), "--model", "han", "--encoder", "none",
                   "--epochs", "1", "--out", str(run), "--no-progress")
    assert trained.returncode == 0, trained.stderr
    done = _cli("audit", str(run), "--rankings", "attention,gradient", "--sites", "sentence,word",
                "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "[sentence]" in done.stdout and "[word]" in done.stdout
    removal = pd.read_parquet(run / AUDIT_DIR / "removal.parquet")
    assert sorted(set(zip(removal["site"], removal["ranking"], strict=True))) == [
        ("sentence", "attention"), ("sentence", "gradient"), ("word", "attention"),
        ("word", "gradient")]
    items = pd.read_parquet(run / AUDIT_DIR / "items.parquet")
    words = items[items["site"] == "word"]
    assert {"score_attention", "score_gradient", "rank_attention", "rank_gradient"} <= set(words)
    # A word item's text is one word of the anchor sentence, which is a sentence item's text.
    first = words.iloc[0]
    anchor = int(removal[(removal["doc_id"] == first["doc_id"]) & (removal["site"] == "word")]
                 ["anchor"].iloc[0])
    sentence = items[(items["site"] == "sentence") & (items["doc_id"] == first["doc_id"])
                     & (items["item"] == anchor)]["text"].iloc[0]
    assert first["text"] in sentence.split()
    unknown = _cli("audit", str(run), "--sites", "token", "--replace", "--no-progress")
    assert unknown.returncode == 2 and "choose from sentence, word" in unknown.stderr
    assert _cli("report", str(run)).returncode == 0
    assert "word attention in the top sentence" in (run / "report.html").read_text()


def test_a_constant_model_is_flagged_in_the_log_summary_and_report(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An audit of a model that predicts one class for every document says so loudly."""
    import logging

    from attnaudit.checkpoint import load_run, save_checkpoint

    run = _copy(trained, tmp_path, "constant")
    loaded = load_run(run)
    with torch.no_grad():  # the head ignores the document: always class 1
        loaded.model.classifier.weight.zero_()
        loaded.model.classifier.bias.copy_(torch.tensor([0.0, 5.0]))
    save_checkpoint(run, loaded.model, loaded.vocab, loaded.label_names, loaded.config)
    with caplog.at_level(logging.WARNING, logger="attnaudit.erasure.audit"):
        summary = audit_run(run, AuditConfig(max_docs=40), progress=False)
    assert summary["prediction"]["degenerate"] is True
    warning = summary["prediction"]["warning"]
    assert warning and warning in caplog.text
    assert summary["verdict"]["status"] == "withheld" and "no verdict on attention" in caplog.text
    assert _cli("report", str(run)).returncode == 0
    page = html.unescape((run / "report.html").read_text())
    assert warning in page
    top = page[page.index("<main>"):page.index('id="how"')]  # the verdict card, before all else
    assert "No verdict is given: " in top and "95%" in top


def test_a_new_bootstrap_setting_recomputes_only_the_summary(trained: Path, tmp_path: Path) -> None:
    """The bootstrap changes summary.json, never the tables: asking for other resamples reuses the
    complete audit's tables (no --replace needed) and rewrites the summary with intervals."""
    run = _copy(trained, tmp_path, "bootstrap")
    cheap = AuditConfig(max_docs=12, bootstrap=0, permutations=0, adversarial_epsilon=0)
    first = audit_run(run, cheap, progress=False)
    assert "intervals" not in first["by_site"]["token"]
    stamps = {t: (run / AUDIT_DIR / f"{t}.parquet").stat().st_mtime_ns for t in TABLES}
    second = audit_run(run, cheap.model_copy(update={"bootstrap": 30}), progress=False)
    assert {t: (run / AUDIT_DIR / f"{t}.parquet").stat().st_mtime_ns for t in TABLES} == stamps
    interval = second["by_site"]["token"]["intervals"]["removal"]["attention"]["median_fraction"]
    assert interval[0] <= second["by_site"]["token"]["removal"]["attention"]["median_fraction"]
    assert second["bootstrap"]["resamples"] == 30
    # and the same settings again reuse the summary as it is
    assert audit_run(run, cheap.model_copy(update={"bootstrap": 30}), progress=False) == second
    # the verdict's band is a summary setting too
    assert second["verdict"]["settings"]["min_difference"]["aopc_comprehensiveness"] == 0.01
    third = audit_run(run, cheap.model_copy(update={
        "bootstrap": 30, "min_difference": {"aopc_comprehensiveness": 0.2}}), progress=False)
    assert {t: (run / AUDIT_DIR / f"{t}.parquet").stat().st_mtime_ns for t in TABLES} == stamps
    assert third["verdict"]["settings"]["min_difference"]["aopc_comprehensiveness"] == 0.2
    assert third["by_site"]["token"]["family"]["members"]  # the max-t family, named
