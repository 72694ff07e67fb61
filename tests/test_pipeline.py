"""``attnaudit run`` end to end on a slice of the real IMDB file (the ``imdb_slice`` fixture).

What a user relies on: one command trains, audits and reports every model; running it again reuses
every finished stage; a run killed at any point (SIGKILL, Ctrl-C), in training or in an audit,
resumes to the results an uninterrupted run gives, with the same seed the same results; ``attnaudit
report`` rebuilds the page from saved files alone; and the page renders offline in a browser.

The pipeline runs once per module (``pipeline_run``); tests that need a run of their own make it in
their own folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from headless_chromium import load_page, requires_chromium
from tolerances import assert_tables_close

from attnaudit.cli import main
from attnaudit.config import AuditConfig
from attnaudit.erasure.audit import audit_run
from attnaudit.pipeline import _noting_ctrl_c

MODELS = ("flan-none", "han-none")  # the two fastest variants, one flat and one hierarchical
AUDIT_FILES = ("single_weight.parquet", "removal.parquet", "items.parquet", "summary.json",
               "audit_info.json")
WAIT_S = 240.0  # generous: two busy cores


def run_argv(data: Path, out: Path) -> list[str]:
    return ["run", "--data", str(data), "--models", ",".join(MODELS), "--epochs", "1",
            "--out", str(out)]


@dataclass
class PipelineRun:
    """A finished ``attnaudit run``: its folder and its command-line arguments."""

    path: Path
    argv: list[str]


@pytest.fixture(scope="module")
def pipeline_run(imdb_slice: Path, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    argv = run_argv(imdb_slice, out)
    assert main(argv) == 0
    return PipelineRun(out, argv)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def temp_files(folder: Path) -> list[Path]:
    """Temporary files of atomic writes (``.NAME.XXXXXXXX.tmp``) anywhere under ``folder``."""
    return sorted(folder.rglob(".*.tmp"))


def check_run_folder(run: Path) -> None:
    """Every stage's files are there and readable; no temporary file is left behind."""
    assert (run / "report.html").is_file()
    for name in MODELS:
        model = run / "models" / name
        for file in ("DONE", "model.pt", "metrics.json", "config.json"):
            assert (model / file).is_file(), f"{name}: {file} missing"
        for file in AUDIT_FILES:
            assert (model / "audit" / file).is_file(), f"{name}: audit/{file} missing"
    for path in run.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))  # raises on a truncated file
    for path in run.rglob("*.parquet"):
        assert len(pd.read_parquet(path)) > 0, path
    assert temp_files(run) == []


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (mtime in ns, sha256)}`` of every result file under ``folder``.

    Hidden files are left out: the audit's ``.lock`` is opened (and stamped) by every audit call,
    including one that finds the audit complete and reuses it.
    """
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
    }


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_same_audit(a: Path, b: Path) -> None:
    """Two audit folders hold exactly the same results."""
    assert read_json(a / "summary.json") == read_json(b / "summary.json")
    for name in ("single_weight.parquet", "removal.parquet", "items.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name),
                                      check_exact=True, obj=name)


def assert_same_results(a: Path, b: Path) -> None:
    """Two pipeline runs trained the same weights and got the same audit results, model by model."""
    for name in MODELS:
        ma, mb = a / "models" / name, b / "models" / name
        # Compared as tensors: model.pt's bytes also hold the name of the temporary file that
        # torch.save wrote, which differs from run to run.
        wa = torch.load(ma / "model.pt", weights_only=True)["state_dict"]
        wb = torch.load(mb / "model.pt", weights_only=True)["state_dict"]
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f"{name}: weights differ"
        xa, xb = read_json(ma / "metrics.json"), read_json(mb / "metrics.json")
        for key in ("dev_accuracy", "test_accuracy", "best_epoch", "epochs_trained", "vocab_size"):
            assert xa[key] == xb[key], f"{name}: metrics.json {key}"
        assert [h["train_loss"] for h in xa["history"]] == [h["train_loss"] for h in xb["history"]]
        assert_same_audit(ma / "audit", mb / "audit")


def _ctrl_c_as_a_terminal_gives_it() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit that; the tests
    # send Ctrl-C as a user at a terminal would, so the child gets Python's usual handling.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``python ARGS`` with its output in ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, *args], stdout=f, stderr=subprocess.STDOUT,
                                env=env, cwd=log.parent, preexec_fn=_ctrl_c_as_a_terminal_gives_it)


def wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until ``path`` exists; fail with the process's output if it ends or takes too long."""
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"exited ({proc.returncode}) before {path.name} appeared:\n"
                        + log.read_text(errors="replace")[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {WAIT_S:.0f} s")
        time.sleep(0.02)


# ----------------------------------------------------------------------------------------------
# One run, run again, report rebuilt
# ----------------------------------------------------------------------------------------------


def test_run_writes_every_stage_and_the_report(pipeline_run: PipelineRun) -> None:
    run = pipeline_run.path
    check_run_folder(run)
    assert read_json(run / "run.json")["config"]["models"] == list(MODELS)
    for name in MODELS:
        audit = run / "models" / name / "audit"
        metrics = read_json(run / "models" / name / "metrics.json")
        summary = read_json(audit / "summary.json")
        single = pd.read_parquet(audit / "single_weight.parquet")
        removal = pd.read_parquet(audit / "removal.parquet")
        # Every test document audited once per site by Test 1 and once per site and ranking by
        # Test 2 (FLAN has one site, HAN two: sentence and word).
        assert summary["model"] == name
        assert summary["n_docs"] == metrics["num_test"] == single["doc_id"].nunique()
        assert len(single) == summary["n_docs"] * single["site"].nunique()
        assert len(removal) == 4 * len(single)
        assert set(removal["ranking"]) == {"random", "attention", "gradient", "attention_x_gradient"}
    page = (run / "report.html").read_text(encoding="utf-8")
    assert all(f'id="m-{name}"' in page for name in MODELS)
    assert "data:image/png;base64," in page


def test_second_run_reuses_every_stage(pipeline_run: PipelineRun,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    models = pipeline_run.path / "models"
    before = snapshot(models)
    assert main(pipeline_run.argv) == 0
    # Nothing trained or audited again: every file of every model untouched, down to the mtime
    # (a check of what ran, not of how long it took: timings belong in benchmarks).
    assert snapshot(models) == before
    assert f"report: {pipeline_run.path / 'report.html'}" in capsys.readouterr().out


def test_report_command_rebuilds_from_saved_results_without_torch(
    pipeline_run: PipelineRun,
) -> None:
    report = pipeline_run.path / "report.html"
    before, built_at = report.read_bytes(), report.stat().st_mtime_ns
    code = ("import json, sys; from attnaudit.cli import main; rc = main(['report', sys.argv[1]]); "
            "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code, str(pipeline_run.path)],
                          capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr
    printed, result = done.stdout.strip().splitlines()
    assert printed == str(report)
    assert json.loads(result) == {"rc": 0, "torch": False}, "the report must not load models"
    assert report.stat().st_mtime_ns > built_at
    assert report.read_bytes() == before, "the same saved results give the same page"


# ----------------------------------------------------------------------------------------------
# Interrupted runs resume
# ----------------------------------------------------------------------------------------------


def test_killed_and_interrupted_run_resumes_to_the_uninterrupted_results(
    imdb_slice: Path, pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["-m", "attnaudit.cli", *run_argv(imdb_slice, out)]
    first = out / "models" / MODELS[0]

    # 1. SIGKILL as soon as the first model is trained.
    proc = start(argv, tmp_path / "killed.log")
    wait_for(first / "DONE", proc, tmp_path / "killed.log")
    proc.kill()
    proc.wait()
    trained = (first / "model.pt").read_bytes(), (first / "model.pt").stat().st_mtime_ns
    # A kill inside a write leaves that write's temporary file (whether this kill did is luck).
    stale = first / ".metrics.json.k1ll3d00.tmp"
    stale.write_text('{"half a', encoding="utf-8")

    # 2. Ctrl-C as soon as the first model's audit is complete, in the second model's training.
    log = tmp_path / "interrupted.log"
    proc = start(argv, log)
    wait_for(first / "audit" / "summary.json", proc, log)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=WAIT_S) == 130, log.read_text(errors="replace")[-3000:]
    assert "interrupted; run the same command again to resume" in log.read_text(errors="replace")
    audited = snapshot(first / "audit")

    # 3. The same command again, to the end.
    assert main(run_argv(imdb_slice, out)) == 0
    assert ((first / "model.pt").read_bytes(), (first / "model.pt").stat().st_mtime_ns) == trained
    assert snapshot(first / "audit") == audited, "the finished audit was redone"
    assert not stale.exists()
    check_run_folder(out)
    # Same seed, same data, two folders: the same weights and the same audit results, although
    # this run was killed once and interrupted once.
    assert_same_results(pipeline_run.path, out)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_swallowed_by_a_finaliser_still_stops_the_pipeline() -> None:
    class ProgressBar:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while Python finalises an object

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal
    try:
        with _noting_ctrl_c() as ctrl_c:
            ProgressBar()  # Python prints the KeyboardInterrupt raised in __del__ and goes on
            assert ctrl_c.pressed
            with pytest.raises(KeyboardInterrupt):
                ctrl_c.check()  # what the pipeline does between stages
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


# One thread, as the pipeline's own audit (the CLI's default): float results depend on the count.
AUDIT_SCRIPT = ("import sys, torch; torch.set_num_threads(1); "
                "from attnaudit.config import AuditConfig; "
                "from attnaudit.erasure.audit import audit_run; "
                "audit_run(sys.argv[1], AuditConfig(chunk_docs=int(sys.argv[2])), progress=False)")


def test_killed_audit_resumes_from_its_finished_parts(
    pipeline_run: PipelineRun, tmp_path: Path, one_thread: None
) -> None:
    chunk = 10  # 120 test documents: 12 parts
    trained = pipeline_run.path / "models" / MODELS[0]

    def fresh_copy(name: str) -> Path:
        # The folder's name is the model's name in the results: the same for both copies.
        return Path(shutil.copytree(trained, tmp_path / name / trained.name,
                                    ignore=shutil.ignore_patterns("audit")))

    killed = fresh_copy("killed")
    parts = killed / "audit" / "parts"
    log = tmp_path / "audit.log"
    proc = start(["-c", AUDIT_SCRIPT, str(killed), str(chunk)], log)
    # a part's single_weight-* file is written last
    wait_for(parts / "single_weight-00000.parquet", proc, log)
    proc.kill()
    proc.wait()
    finished = [p.name.removeprefix("single_weight-")
                for p in parts.glob("single_weight-*.parquet")]
    assert finished
    kept = {p: p.stat().st_mtime_ns for n in finished
            for p in (parts / f"single_weight-{n}", parts / f"removal-{n}", parts / f"items-{n}")}

    summary = audit_run(killed, AuditConfig(chunk_docs=chunk), progress=False)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "finished parts were recomputed"
    assert len(list(parts.glob("single_weight-*.parquet"))) == 12
    assert temp_files(killed) == []

    straight = fresh_copy("straight")
    assert audit_run(straight, AuditConfig(chunk_docs=chunk), progress=False) == summary
    assert_same_audit(killed / "audit", straight / "audit")
    # Chunks change only how documents are batched: the same numbers up to float32 rounding as
    # the pipeline's single-part audit (batches padded to other lengths sum in other orders), each
    # column to its kind's tolerance (tests/tolerances.py).
    for name in ("single_weight.parquet", "removal.parquet"):
        assert_tables_close(pd.read_parquet(killed / "audit" / name),
                            pd.read_parquet(trained / "audit" / name), obj=name)


# ----------------------------------------------------------------------------------------------
# The real report in a browser
# ----------------------------------------------------------------------------------------------

# What the page shows once its script ran, then what a click on the last model tab, on the second
# example filter and on an example's table does.
REAL_PROBE = """(async function(){
  function visible(el){ return el.offsetParent !== null; }
  function pause(){ return new Promise(function(r){ setTimeout(r, 50); }); }
  var panels = [].slice.call(document.querySelectorAll('.model-panel'));
  var out = {
    js: document.documentElement.classList.contains('js'),
    tables: document.querySelectorAll('main table').length,
    accuracyRows: document.querySelectorAll('#accuracy tbody tr').length,
    comparisonRows: document.querySelectorAll('#comparison tbody tr').length,
    images: [].map.call(document.images, function(i){
      return {ok: i.complete && i.naturalWidth > 100, data: i.src.startsWith('data:')}; }),
    visiblePanels: panels.filter(visible).map(function(p){ return p.id; }),
    examples: [].map.call(panels, function(p){
      return p.querySelectorAll('article.example').length; }),
    items: document.querySelectorAll('article.example .doc .it').length,
    emptyItems: [].filter.call(document.querySelectorAll('article.example .doc .it'),
      function(s){ return !s.textContent; }).length
  };
  var tabs = document.querySelectorAll('.tabs a.tab');
  tabs[tabs.length - 1].click(); await pause();
  out.afterTab = panels.filter(visible).map(function(p){ return p.id; });
  var box = document.querySelector('.model-panel.active .examples');
  var filter = box.querySelectorAll('[data-filter]')[1];
  filter.click(); await pause();
  out.filter = filter.dataset.filter;
  out.filtered = [].filter.call(box.querySelectorAll('.example'), visible).map(
    function(e){ return e.dataset.category; });
  var ex = [].filter.call(box.querySelectorAll('.example'), visible)[0];
  var details = ex.querySelector('details'); details.open = true; await pause();
  out.tableRows = details.querySelectorAll('tbody tr').length;
  out.tableItems = ex.querySelectorAll('.doc .it').length;
  return JSON.stringify(out);
})()"""


@requires_chromium
def test_real_report_renders_offline(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    report = pipeline_run.path / "report.html"
    page = load_page(report, tmp_path / "profile", probe=REAL_PROBE)
    shot = pipeline_run.path / "report-screenshot.png"
    shot.write_bytes(page.screenshot)
    print(f"screenshot: {shot}")  # shown with pytest -rP

    assert page.remote_requests == [], "the report must not touch the network"
    assert page.console_errors == [] and page.exceptions == []
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 50_000
    p = page.probe
    assert p["js"], "the inline script did not run"
    # The exact layout (rows per site, figures per model) is the report's own tests' business: here,
    # that every model of a real run shows up, with working figures and examples.
    assert p["accuracyRows"] == len(MODELS) <= p["comparisonRows"]
    assert p["tables"] >= 2 + len(MODELS)
    assert p["images"] and all(i["ok"] and i["data"] for i in p["images"]), p["images"]
    assert p["visiblePanels"] == [f"m-{MODELS[0]}"] and p["afterTab"] == [f"m-{MODELS[-1]}"]
    assert len(p["examples"]) == len(MODELS) and all(n > 0 for n in p["examples"])
    assert p["items"] > 0 and p["emptyItems"] == 0
    assert p["filtered"] and set(p["filtered"]) == {p["filter"]}
    assert p["tableRows"] == p["tableItems"] > 1
