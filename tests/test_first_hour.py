"""The small defects a newcomer met in a first hour (issue 19), each as the user meets it: one lock
per run folder, temporary files cleaned by every command, damaged inputs refused in one line naming
the file, warnings where a value is silently reinterpreted, readable logs, one speaker under
torchrun and a rerunnable recorded command."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import write_run

from attnaudit.cli import main
from attnaudit.config import DataConfig
from attnaudit.data.loaders import load_documents
from attnaudit.data.loaders.registry import READERS
from attnaudit.data.prepare import prepare_data
from attnaudit.data.types import DataError
from attnaudit.errors import with_article
from attnaudit.utils import io as attn_io
from attnaudit.utils import progress
from attnaudit.utils.io import command_line, read_json

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = ("good", "bad", "great", "awful", "fine", "poor", "nice", "terrible", "film", "movie",
         "plot", "actor", "scene", "story")
#: a temporary file as a write killed mid-way leaves it (utils.io.atomic_path's names)
STALE = ".run.json.k1ll3d00.tmp"


def error_line(err: str) -> str:
    """The one ``attnaudit: error:`` line of ``err`` (log lines aside), no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("attnaudit: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def write_jsonl(path: Path, n_train: int = 50, n_test: int = 10, *, seed: int = 0,
                labels: tuple[str, ...] = ("pos", "neg"), weights: tuple[float, ...] = (1, 1),
                **changes: Any) -> Path:
    """A small JSON-lines data set of random words; ``changes`` maps an id to fields to replace."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_train + n_test):
        row = {"id": i, "split": "train" if i < n_train else "test",
               "label": rng.choices(labels, weights)[0], "text": " ".join(rng.choices(WORDS, k=12))}
        row.update(changes.get(f"row{i}", {}))
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def other_process_holds() -> Iterator[Any]:
    """Start a process that holds a folder's lock and is writing a file there (as a running
    ``attnaudit run`` does) until the test ends; yields a function taking the folder and the file
    and returning that process's pid and the temporary file of its write in progress."""
    started: list[subprocess.Popen[str]] = []

    def hold(folder: Path, name: str = "run.json") -> tuple[int, Path]:
        code = textwrap.dedent(f"""
            import time
            from attnaudit.utils.io import atomic_path
            from attnaudit.utils.lock import folder_lock
            with folder_lock({str(folder)!r}, "attnaudit run"):
                with atomic_path({str(folder / name)!r}) as tmp:
                    tmp.write_text("being written")
                    print(tmp, flush=True)
                    time.sleep(120)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        return proc.pid, Path(proc.stdout.readline().strip())

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------------------------
# One lock per run folder; every command cleans its own temporary files
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_second_command_on_a_folder_in_use_stops_naming_the_first_and_deletes_nothing(
    command: str, tmp_path: Path, other_process_holds: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs" / "demo"
    pid, in_flight = other_process_holds(out)
    (out / STALE).write_text("left by a killed run")  # the second command deletes nothing at all
    data = write_jsonl(tmp_path / "d.jsonl")
    assert main([command, "--out", str(out), "--data", str(data), "--no-progress"]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"{out} is in use by another command (attnaudit run, pid {pid} on " in line
    assert ", started 20" in line  # its start time (UTC)
    assert in_flight.read_text() == "being written" and (out / STALE).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", STALE, in_flight.name])


def test_a_folder_held_elsewhere_is_refused_or_only_written(
    tmp_path: Path, other_process_holds: Any
) -> None:
    from attnaudit.utils.lock import folder_lock

    out = tmp_path / "run"
    other_process_holds(out)
    with pytest.raises(DataError, match="in use by another command"), \
            folder_lock(out, "attnaudit report"):
        pass
    with folder_lock(out, "attnaudit report", required=False) as held:
        assert held is False  # a report still writes, but deletes nothing


def test_cleaning_keeps_the_temporary_file_of_a_write_in_progress(tmp_path: Path) -> None:
    killed = tmp_path / "audit" / ".summary.json.k1ll3d00.tmp"
    killed.parent.mkdir()
    killed.write_text("{")
    with attn_io.atomic_path(tmp_path / "audit" / "items.parquet") as writing:
        writing.write_text("half")
        assert attn_io.remove_stale_temp_files(tmp_path) == [killed]
        assert writing.read_text() == "half"
    assert (tmp_path / "audit" / "items.parquet").read_text() == "half"


def test_a_killed_report_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    # a run whose model is not audited yet: its report draws no figure, so the test is quick
    run = write_run(tmp_path / "run", ("flan-none",), without_audit=("flan-none",))
    (run / "figures" / "flan-none").mkdir(parents=True)
    left = [run / ".report.html.k1ll3d00.tmp", run / "figures" / "flan-none" / ".a.png.k1ll3d01.tmp"]
    for path in left:
        path.write_text("a report killed mid-write")
    assert main(["report", str(run)]) == 0
    assert not any(p.exists() for p in left)


def test_a_report_beside_a_running_command_deletes_none_of_its_files(
    tmp_path: Path, other_process_holds: Any
) -> None:
    run = write_run(tmp_path / "run", ("flan-none",), without_audit=("flan-none",))
    _, in_flight = other_process_holds(run, "report.html")  # the run writing its own report
    killed = run / ".report.html.k1ll3d00.tmp"  # and what a killed report left
    killed.write_text("a report killed mid-write")
    assert main(["report", str(run)]) == 0
    assert in_flight.read_text() == "being written" and (run / "report.html").is_file()
    assert not killed.exists()  # no live write holds it: the report's own write removes it


def test_training_cleans_its_folder_of_a_killed_write_first(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / ".state.pt.k1ll3d00.tmp").write_bytes(b"half a checkpoint")
    # the cleaning comes first, under the folder's lock: even a run that then stops on its data
    assert main(["train", "--out", str(out), "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert not (out / ".state.pt.k1ll3d00.tmp").exists()


# ----------------------------------------------------------------------------------------------
# Damaged inputs, a full disk
# ----------------------------------------------------------------------------------------------


def test_a_report_on_a_truncated_summary_refuses_in_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", ("flan-none", "han-rnn"), n_docs=20)
    summary = run / "models" / "han-rnn" / "audit" / "summary.json"
    summary.write_bytes(summary.read_bytes()[:100])
    assert main(["report", str(run)]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"{summary} is damaged" in line
    assert f"attnaudit audit {run / 'models' / 'han-rnn'}" in line
    assert not (run / "report.html").exists()


def test_a_full_disk_names_the_file_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class FullDisk:
        """What a file on a full disk does: every write fails with ENOSPC (errno 28)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *args: Any) -> None:
            pass

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "model"
    data = write_jsonl(tmp_path / "d.jsonl")
    monkeypatch.setattr(attn_io, "open", FullDisk, raising=False)  # the files atomic_open opens
    assert main(["train", "--out", str(out), "--data", str(data), "--no-progress"]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"{out / 'run_info.json'}: no space left on its disk" in line
    assert "run the same command again" in line
    assert not list(out.glob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# Data: silent reinterpretations and messages that name the setting
# ----------------------------------------------------------------------------------------------


def test_a_literal_nan_label_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", row7={"label": "NaN"})
    with pytest.raises(DataError, match=r"d\.jsonl, line 8: missing label \('NaN'.*give every "
                                        r"document a label"):
        load_documents(data)


def test_a_test_split_of_empty_documents_is_replaced_with_a_warning_saying_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", **{f"row{i}": {"text": " "} for i in range(50, 60)})
    with caplog.at_level(logging.INFO):
        prepared = prepare_data(DataConfig(path=str(data)))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("every test document is empty (10 skipped)" in w for w in warnings), warnings
    assert any("no test documents: 5 train documents (test_fraction 0.1) are held out" in w
               for w in warnings), warnings
    assert len(prepared.test) == 5


def test_max_test_docs_zero_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl")
    argv = ["train", "--out", str(tmp_path / "o"), "--data", str(data), "--max-test-docs", "0"]
    assert main(argv) == 2
    assert "max_test_docs: must be at least 1 (got 0)" in error_line(capsys.readouterr().err)


def test_json_errors_say_where_once(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": 1, "label": "pos", "text": "a\tb"}\n', encoding="utf-8")
    with pytest.raises(DataError) as bad_line:
        load_documents(data)
    assert "Invalid control character at column 37" in str(bad_line.value)
    saved = tmp_path / "summary.json"
    saved.write_text('{"a": "x\ty"}', encoding="utf-8")
    with pytest.raises(DataError) as bad_file:
        read_json(saved)
    assert "Invalid control character at line 1, column 9" in str(bad_file.value)
    assert "at at" not in str(bad_line.value) + str(bad_file.value)


def test_an_articles_before_a_quoted_name() -> None:
    assert with_article("'electra'") == "an 'electra'"
    assert with_article("'bert'") == "a 'bert'"


@pytest.mark.full  # transformers' import alone takes about 5 s here
def test_an_unhosted_family_is_refused_in_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ELECTRA is hosted since the generic transformer host; XLNet has no family descriptor.
    model = tmp_path / "xlnet"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "xlnet"}), encoding="utf-8")
    data = write_jsonl(tmp_path / "d.jsonl")
    out = tmp_path / "out"
    assert main(["audit", "--hf-model", str(model), "--data", str(data), "--out", str(out)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "model_type 'xlnet' is not a family attnaudit hosts" in line
    assert "roberta" in line  # the supported families are listed
    assert not out.exists()  # refused before anything was written


def test_format_help_names_every_registered_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--format")
    shown = text[start:text.index("--text-column", start)].replace("- ", "-")  # wrapped at "-"
    assert all(name in shown for name in READERS), shown


def test_a_missing_text_column_suggests_the_option_and_names_the_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    frame = pd.read_json(write_jsonl(tmp_path / "d.jsonl"), lines=True)
    data = tmp_path / "reviews.csv"
    frame.rename(columns={"text": "review"}).to_csv(data)  # pandas writes its index, unnamed
    assert main(["train", "--out", str(tmp_path / "o"), "--data", str(data)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "no text column 'text' (columns: id, split, label, review, and a saved row index)" \
        in line
    assert "--text-column NAME" in line
    with pytest.raises(DataError, match=r"no label field 'label' \(fields: id, split, stars, "
                                        r"text\); name the label field with --label-column"):
        load_documents(_without_label(tmp_path / "e.jsonl"))


def _without_label(path: Path) -> Path:
    """A JSON-lines file whose label field is called ``stars``."""
    path.write_text(json.dumps({"id": 0, "split": "train", "stars": 3, "text": "a b"}) + "\n",
                    encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# Logs: no bar redraws in a file, no long silences; training that learned nothing
# ----------------------------------------------------------------------------------------------


def test_progress_in_a_log_file_is_plain_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # every refresh a line
    data = write_jsonl(tmp_path / "d.jsonl", n_train=200)
    with caplog.at_level(logging.INFO):
        assert main(["train", "--out", str(tmp_path / "o"), "--data", str(data), "--model",
                     "flan", "--encoder", "none", "--epochs", "1", "--batch-size", "16"]) == 0
    err = capfd.readouterr().err  # stderr is a pipe here, as when it goes to a log file
    assert "\r" not in err and max(map(len, err.splitlines() or [""])) < 300
    lines = [r.getMessage() for r in caplog.records if r.name == "attnaudit.progress"]
    assert lines and lines[-1].startswith("flan-none epoch 1/1: 180/180 doc (100%)"), lines


def test_building_a_report_says_what_it_is_doing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # not audited yet, so no figure is drawn (each step is still said) and the test is quick
    run = write_run(tmp_path / "run", ("flan-none", "han-rnn"), without_audit=("flan-none", "han-rnn"))
    with caplog.at_level(logging.INFO, logger="attnaudit.reports"):
        assert main(["report", str(run)]) == 0
    said = [r.getMessage() for r in caplog.records if r.name.startswith("attnaudit.reports")]
    for step in ("reading the results of 2 model(s)", "flan-none: drawing its figures",
                 "han-rnn: drawing its figures", "figures that compare", "rendering the page"):
        assert any(step in s for s in said), (step, said)


def test_training_that_reaches_only_the_majority_baseline_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # texts carry no signal; 85% of the labels are 'pos'
    data = write_jsonl(tmp_path / "d.jsonl", n_train=200, n_test=40, weights=(0.85, 0.15))
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--out", str(tmp_path / "o"), "--data", str(data), "--model",
                     "flan", "--encoder", "none", "--epochs", "1", "--no-progress"]) == 0
    warned = [r.getMessage() for r in caplog.records if "majority baseline" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "dev accuracy" in warned[0] and "always predicting 'pos'" in warned[0]
    assert "points at or below it" in warned[0] and "--epochs" in warned[0]


# ----------------------------------------------------------------------------------------------
# torchrun: one speaker; a recorded command that reruns as written
# ----------------------------------------------------------------------------------------------


def test_the_recorded_command_is_shell_quoted_and_rerunnable(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    args = ["audit", "runs/my run/models/flan-rnn", "--max-docs", "10"]
    cli = str(Path(__file__).parents[1] / "src" / "attnaudit" / "cli.py")
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    # python -m attnaudit.cli ...: argv[0] is cli.py's path, which cannot be run as written
    monkeypatch.setattr(sys, "argv", [cli, *args])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "attnaudit.cli", *args])
    assert shlex.split(command_line()) == ["python", "-m", "attnaudit.cli", *args]
    # under torchrun (its workers start as python -u -m ...)
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-u", "-m", "attnaudit.cli", *args])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert shlex.split(command_line()) == ["torchrun", "--standalone", "--nproc-per-node", "2",
                                           "-m", "attnaudit.cli", *args]
    # a console script on PATH is named as typed
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name)
    script = shutil.which("attnaudit", path=str(Path(sys.executable).parent))
    if script is not None:
        monkeypatch.setenv("PATH", str(Path(script).parent), prepend=os.pathsep)
        monkeypatch.setattr(sys, "argv", [script, *args])
        monkeypatch.setattr(sys, "orig_argv", [sys.executable, script, *args])
        assert shlex.split(command_line()) == ["attnaudit", *args]


@pytest.mark.full
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun (installed with torch) not found beside this Python")
def test_under_torchrun_one_rank_speaks_and_the_command_reruns(tmp_path: Path) -> None:
    model = tmp_path / "my model"
    data = write_jsonl(tmp_path / "d.jsonl", n_train=60, n_test=20)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    trained = subprocess.run(
        [sys.executable, "-m", "attnaudit.cli", "train", "--out", str(model), "--data", str(data),
         "--model", "flan", "--encoder", "none", "--epochs", "1", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300)
    assert trained.returncode == 0, trained.stderr
    audit = ["audit", str(model), "--threads", "1", "--no-progress", "--bootstrap", "0"]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m",
                          "attnaudit.cli", *audit],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("results in") == 1, two.stdout
    recorded = read_json(model / "audit" / "audit_info.json")["command"]
    assert shlex.split(recorded) == ["torchrun", "--standalone", "--nproc-per-node", "2", "-m",
                                     "attnaudit.cli", *audit]


@pytest.mark.full
def test_two_runs_started_a_second_apart_one_finishes_the_other_stops_at_once(
    tmp_path: Path
) -> None:
    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "d.jsonl", n_train=120, n_test=20)
    argv = [sys.executable, "-m", "attnaudit.cli", "run", "--out", str(out), "--data", str(data),
            "--models", "flan-none", "--epochs", "2", "--max-docs", "10", "--bootstrap", "0",
            "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    deadline = time.monotonic() + 120
    while not ((out / ".lock").is_file() and (out / ".lock").read_text()):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    # The first run is paused while the second starts: a small run can finish in the seconds a
    # second Python takes to import torch on a loaded machine (CI met it), and "a second apart"
    # must not depend on the machine's speed. A stopped process keeps its flock.
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2, second.stderr
    assert f"in use by another command (attnaudit run, pid {first.pid} on " in \
        error_line(second.stderr)
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-3000:]
    assert (out / "report.html").is_file() and not list(out.rglob(".*.tmp"))


# ----------------------------------------------------------------------------------------------
# A damaged summary is rewritten by the audit, as the report's message says
# ----------------------------------------------------------------------------------------------


@pytest.mark.full
def test_the_audit_rewrites_a_damaged_summary_from_its_tables(tmp_path: Path) -> None:
    model = tmp_path / "model"
    data = write_jsonl(tmp_path / "d.jsonl", n_train=60, n_test=20)
    assert main(["train", "--out", str(model), "--data", str(data), "--model", "flan",
                 "--encoder", "none", "--epochs", "1", "--no-progress"]) == 0
    audit = ["audit", str(model), "--no-progress", "--bootstrap", "0", "--max-docs", "10"]
    assert main(audit) == 0
    summary = model / "audit" / "summary.json"
    whole = json.loads(summary.read_text())
    summary.write_text(summary.read_text()[:200])
    assert main(["report", str(model)]) == 2
    assert main(audit) == 0
    assert json.loads(summary.read_text()) == whole
    assert main(["report", str(model)]) == 0
