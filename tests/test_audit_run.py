"""An audit of a real (tiny) trained run as users start it: one writer at a time, no silent
replacement of a complete audit, and several processes under torchrun giving one process's tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from attnaudit.config import AuditConfig, DataConfig, ModelConfig, RunConfig, TrainConfig
from attnaudit.data.types import DataError
from attnaudit.erasure.audit import AUDIT_DIR, audit_lock, audit_run
from attnaudit.train import train_run

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
    with audit_lock(run / AUDIT_DIR):  # this process holds the audit
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
