"""The command line: one validated config for every command, one-line errors, threads, resumes.

What a new user relies on: ``--help`` documents every option; a mistake (a typo in a model name, a
bad value in a TOML file, a damaged checkpoint, a folder that cannot be written) stops with one line
``attnaudit: error: ...`` naming the file or field and the fix, exit code 2, never a traceback; a
failed run can be run again once fixed; ``--seed`` fixes the whole run; ``--threads`` holds for every
stage, resumed runs included.

Most tests share one tiny two-model pipeline run (``pipeline``, a few seconds); tests that change it
work on a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from test_checkpoint_training import write_dataset as shared_dataset

import attnaudit.erasure.audit as audit_module
import attnaudit.pipeline as pipeline_module
import attnaudit.utils.io as io_module
from attnaudit.cli import app, main
from attnaudit.config import (
    AuditConfig,
    DataConfig,
    ModelConfig,
    PipelineConfig,
    RunConfig,
    TrainConfig,
    check_resumable,
)
from attnaudit.errors import DataError

MODELS = ("flan-none", "han-none")


def write_dataset(path: Path, n: int = 200) -> Path:
    """The training tests' tiny separable set, 200 documents by default."""
    return shared_dataset(path, n=n)




def write_config(path: Path, data: Path, *, extra: str = "") -> Path:
    """One TOML file for every command: models, [data], [model], [train], [audit]."""
    path.write_text(
        f'models = {json.dumps(list(MODELS))}\n{extra}\n'
        f'[data]\npath = "{data}"\ndev_fraction = 0.2\ntest_fraction = 0.2\n\n'
        '[model]\nembedding_dim = 16\nhidden = 8\n\n'
        '[train]\nepochs = 1\nlr = 0.03\nbatch_size = 16\n\n'
        '[audit]\nbatch_size = 32\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    # Commands set torch's thread count process-wide (that is their job): undo it for other tests.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_dataset(root / "tiny.jsonl")
    write_config(root / "run.toml", root / "tiny.jsonl")
    return root


@pytest.fixture(scope="module")
def pipeline(workspace: Path) -> Path:
    """A finished ``attnaudit run`` of two tiny models (trained, audited, reported)."""
    out = workspace / "run"
    before = torch.get_num_threads()
    try:
        assert main(["run", "--config", str(workspace / "run.toml"), "--no-progress",
                     "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    return out


def copy_run(pipeline: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pipeline, tmp_path / "run", symlinks=True))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def one_error_line(err: str) -> str:
    """The error output is exactly one ``attnaudit: error:`` line (no traceback); returns it."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("attnaudit: error: "), err
    return lines[0]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------
# Help
# ----------------------------------------------------------------------------------------------

COMMANDS = ("fetch-default", "train", "evaluate", "audit", "run", "report")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_documents_every_option_without_rst_markup(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"] if command else ["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: attnaudit" in out
    assert "`" not in out, "raw RST backquotes in --help"
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    if command:
        for param in commands[command].params:
            if param.param_type_name == "option" and param.name != "help":
                assert getattr(param, "help", None), f"{command} {param.opts}: no help text"
                assert param.opts[0] in out
    else:
        assert all(name in out for name in COMMANDS)


def test_registry_choices_show_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--help"]) == 0
    assert ("[random|attention|gradient|attention_x_gradient|integrated_gradients|saliency|"
            "input_x_gradient|occlusion|lime|kernel_shap|rollout|attention_head_mean|paper|"
            "attributions|all|transformer]" in capsys.readouterr().out)
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "han-rnn" in out and "hf-attnpool" in out


def test_help_and_report_do_not_import_torch() -> None:
    code = ("import sys; from attnaudit.cli import main; main(['--help']); main(['report', '--help']);"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_module_entry_point_works(workspace: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "attnaudit.cli", "run", "--models", "flan-lstm",
                           "--out", str(workspace / "never")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "flan-lstm" in one_error_line(done.stderr)


# ----------------------------------------------------------------------------------------------
# One configuration for every command
# ----------------------------------------------------------------------------------------------


def test_one_toml_file_serves_every_command(workspace: Path) -> None:
    toml = workspace / "run.toml"
    pipeline = PipelineConfig.load_toml(toml)
    assert pipeline.models == MODELS
    assert pipeline.model.embedding_dim == 16 and pipeline.train.epochs == 1
    assert pipeline.audit.batch_size == 32
    # train reads the same file: the [audit] table and the models list are not its business
    run = RunConfig.load_toml(toml, {"model": {"kind": "flan", "encoder": "none"}})
    assert run.model.name == "flan-none" and run.data == pipeline.data
    assert pipeline.run_config("han-none").model == ModelConfig(
        kind="han", encoder="none", embedding_dim=16, hidden=8)


def test_audit_and_evaluate_read_the_config_file_and_flags_override_it(
    pipeline: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    toml = write_config(tmp_path / "audit.toml", workspace / "tiny.jsonl")
    # write_config ends in the [audit] table: these lines land in it
    toml.write_text(toml.read_text() + 'rankings = ["random", "attention"]\nmax_docs = 5\n')
    seen: list[tuple[AuditConfig, dict[str, Any]]] = []

    def fake_audit(run_dir: Path, config: AuditConfig, **options: Any) -> dict[str, Any]:
        seen.append((config, options))
        return {"by_site": {}}

    monkeypatch.setattr(audit_module, "audit_run", fake_audit)
    model = pipeline / "models" / "flan-none"
    assert main(["audit", str(model), "--config", str(toml), "--max-docs", "7", "--replace",
                 "--device", "cpu", "--no-progress"]) == 0
    config, options = seen[-1]
    assert config.rankings == ("random", "attention")  # from the file
    assert config.max_docs == 7  # the flag wins
    assert config.batch_size == 32 and config.seed is None  # None: the run's seed
    assert options == {"progress": False, "device": "cpu", "replace": True, "name": None}
    assert main(["evaluate", str(model), "--config", str(toml), "--threads", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_bad_value_in_the_file_is_one_line_naming_file_and_field(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(f'[data]\npath = "{workspace / "tiny.jsonl"}"\n[train]\nepochs = 0\n')
    assert main(["run", "--config", str(toml), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(toml) in line and "[train] epochs" in line and "at least 1" in line
    toml.write_text('[audit]\nrankings = ["attention", "salience"]\n')
    assert main(["audit", str(tmp_path), "--config", str(toml)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(toml) in line and "[audit] rankings" in line and "salience" in line
    toml.write_text('[train]\nlearning_rate = 0.1\n')
    assert main(["train", "--config", str(toml), "--data", "x", "--out", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "unknown setting 'learning_rate'" in line and "lr" in line


def test_config_json_of_earlier_runs_still_loads_and_resumes() -> None:
    # config.json as the dataclass-based config wrote it: threads null, every field present.
    old = {
        "data": {"path": "x.jsonl", "fmt": "auto", "text_column": None, "label_column": None,
                 "id_column": None, "min_count": 5, "max_vocab": None,
                 "limits": {"max_tokens": 400, "max_sentences": 40, "max_sentence_tokens": 60},
                 "dev_fraction": 0.1, "test_fraction": 0.1, "max_train_docs": None,
                 "max_dev_docs": None, "max_test_docs": None, "seed": 0, "on_empty": "skip",
                 "data_dir": "data"},
        "model": {"kind": "flan", "encoder": "rnn", "embedding_dim": 200, "hidden": 50,
                  "dropout": 0.3, "embeddings": None},
        "train": {"epochs": 3, "lr": 0.002, "batch_size": 64, "max_batch_tokens": 40000,
                  "patience": None, "lr_factor": 0.5, "lr_patience": 0, "grad_clip": 10.0,
                  "seed": 0, "device": "auto", "eval_batch_size": 128, "threads": None},
    }
    config = RunConfig.from_dict(old)
    assert config.to_dict() == old
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    resumed = RunConfig(data=DataConfig(path="x.jsonl"), model=ModelConfig(kind="flan", encoder="rnn"),
                        train=TrainConfig(epochs=5, threads=1, device="cpu"))
    check_resumable(old, resumed, where="runs/old")  # epochs, device, threads may change


def test_check_resumable_names_the_fields_and_what_may_change() -> None:
    saved = RunConfig(data=DataConfig(path="x"), train=TrainConfig(lr=1e-3))
    with pytest.raises(DataError) as err:
        check_resumable(saved.to_dict(), RunConfig(data=DataConfig(path="x", seed=4)),
                        where="runs/a")
    message = str(err.value)
    assert message.startswith("runs/a ") and "\n" not in message
    assert "data.seed 0 -> 4" in message and "train.lr 0.001 -> 0.002" in message
    assert "may change on resume: train.device, train.epochs" in message
    # a flat config (the audit's) with a prefix and its own resumable fields
    with pytest.raises(DataError, match=r"audit\.rankings"):
        check_resumable(AuditConfig().to_dict(), AuditConfig(rankings=("random",)),
                        where="a/audit", prefix="audit", resumable={"audit.batch_size"})
    check_resumable(AuditConfig().to_dict(), AuditConfig(batch_size=8), where="a/audit",
                    prefix="audit", resumable={"audit.batch_size"})


def test_run_seed_fixes_the_split_and_the_audit_seed_defaults_to_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[PipelineConfig] = []

    def fake_pipeline(config: PipelineConfig, run_dir: Path, **options: Any) -> Path:
        seen.append(config)
        return Path(run_dir) / "report.html"

    monkeypatch.setattr(pipeline_module, "run_pipeline", fake_pipeline)
    assert main(["run", "--config", str(workspace / "run.toml"), "--seed", "7",
                 "--out", str(workspace / "seeded")]) == 0
    config = seen[-1]
    assert config.data.seed == 7 and config.train.seed == 7
    assert config.audit.seed is None  # the engine takes the run's (training) seed


# ----------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------


def test_threads_hold_for_every_stage_of_a_resumed_run(
    pipeline: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every model is finished: training is skipped, yet the audit must run on --threads.
    threads_in_audit: list[int] = []
    real_audit = pipeline_module.audit_run

    def audit_spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        threads_in_audit.append(torch.get_num_threads())
        return real_audit(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "audit_run", audit_spy)
    torch.set_num_threads(2)
    assert main(["run", "--config", str(workspace / "run.toml"), "--threads", "1", "--no-progress",
                 "--out", str(pipeline)]) == 0
    assert threads_in_audit == [1, 1]
    torch.set_num_threads(2)
    assert main(["train", "--config", str(workspace / "run.toml"), "--model", "flan",
                 "--encoder", "none", "--threads", "1", "--no-progress",
                 "--out", str(pipeline / "models" / "flan-none")]) == 0
    assert torch.get_num_threads() == 1
    capsys.readouterr()


def test_the_thread_count_used_is_recorded(pipeline: Path) -> None:
    assert read_json(pipeline / "run.json")["config"]["train"]["threads"] == 1
    for name in MODELS:
        assert read_json(pipeline / "models" / name / "config.json")["train"]["threads"] == 1


# ----------------------------------------------------------------------------------------------
# Errors: one line, the file or field, the fix
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("models", ["flan-lstm", "han", "flan-none,cnn-han"])
def test_unknown_model_names_are_one_line(
    models: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--models", models, "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--models" in line and "choose from flan-none" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_epochs_below_one_are_one_line(
    epochs: str, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--data", str(workspace / "tiny.jsonl"), "--epochs", epochs,
                 "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "epochs" in line and "at least 1" in line


@pytest.mark.parametrize("command", ["audit", "evaluate"])
def test_damaged_model_file_names_it(
    command: str, pipeline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Path(shutil.copytree(pipeline / "models" / "flan-none", tmp_path / "flan-none"))
    truncate(model / "model.pt")
    assert main([command, str(model)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{model / 'model.pt'} is damaged" in line and "--restart-damaged" in line


def test_damaged_training_state_names_it_and_restart_damaged_retrains_only_that_model(
    pipeline: Path, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(pipeline, tmp_path)
    finished, broken = run / "models" / "flan-none", run / "models" / "han-none"
    # han-none as a run killed after its first epoch, whose state.pt was then damaged
    for name in ("DONE", "metrics.json"):
        (broken / name).unlink()
    shutil.rmtree(broken / "audit")
    truncate(broken / "state.pt")
    # (the audit's lock file is opened by every audit call, so its mtime does not count)
    kept = {p: p.stat().st_mtime_ns for p in finished.rglob("*")
            if p.is_file() and not p.name.startswith(".")}
    argv = ["run", "--config", str(workspace / "run.toml"), "--no-progress", "--out", str(run)]

    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{broken / 'state.pt'} is damaged" in line and "--restart-damaged" in line

    assert main([*argv, "--restart-damaged"]) == 0
    assert (broken / "DONE").is_file() and (broken / "audit" / "summary.json").is_file()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "the finished model was touched"
    # the same for `attnaudit train`, and a finished model whose model.pt was damaged
    truncate(broken / "model.pt")
    (broken / "audits" / "old").mkdir(parents=True)  # a named audit of the damaged model
    (broken / "audits" / "old" / "summary.json").write_text("{}")
    train = ["train", "--config", str(workspace / "run.toml"), "--model", "han", "--encoder",
             "none", "--no-progress", "--out", str(broken)]
    assert main([*train, "--restart-damaged"]) == 0
    assert not (broken / "audits").exists()  # results of the old model do not remain
    assert main(["evaluate", str(broken)]) == 0


def test_unwritable_output_folder_is_one_line(
    pipeline: Path, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_mkstemp = io_module.tempfile.mkstemp

    def denied(*args: Any, **kwargs: Any) -> Any:
        folder = kwargs.get("dir", "?")
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(io_module.tempfile, "mkstemp", denied)
    out = tmp_path / "out"
    assert main(["run", "--config", str(workspace / "run.toml"), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{out}: permission denied" in line and "--out" in line
    report_copy = copy_run(pipeline, tmp_path)
    assert main(["report", str(report_copy)]) == 2
    assert "permission denied" in one_error_line(capsys.readouterr().err)
    monkeypatch.setattr(io_module.tempfile, "mkstemp", real_mkstemp)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_output_folder_is_one_line(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["run", "--config", str(workspace / "run.toml"), "--out", str(out)]) == 2
        assert "permission denied" in one_error_line(capsys.readouterr().err)
    finally:
        out.chmod(0o755)


def test_audit_of_a_pipeline_folder_suggests_its_models(
    pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(pipeline)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"attnaudit audit {pipeline / 'models' / 'flan-none'}" in line
    assert "models here: flan-none, han-none" in line


def test_a_failed_run_does_not_block_its_own_rerun(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["run", "--config", str(workspace / "run.toml"), "--models", "flan-none",
            "--no-progress", "--out", str(out)]
    assert main([*base, "--data", str(tmp_path / "typo.jsonl")]) == 2
    assert "typo.jsonl" in one_error_line(capsys.readouterr().err)
    assert main(base) == 0, capsys.readouterr().err
    # A model folder where no epoch finished holds nothing to protect either.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(RunConfig.load_toml(
        workspace / "run.toml", {"train": {"lr": 0.5}, "model": {"encoder": "none"}}).to_dict()))
    assert main(["train", "--config", str(workspace / "run.toml"), "--encoder", "none",
                 "--model", "flan", "--no-progress", "--out", str(model)]) == 0


def _no_traceback(argv: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    err = capfd.readouterr().err
    assert code == 2, (argv, err)
    one_error_line(err)


def test_error_paths_never_show_a_traceback(
    workspace: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[train\nepochs = 2\n")
    toml = str(workspace / "run.toml")
    out = str(tmp_path / "out")
    for argv in [
        ["bogus"],
        ["run", "--out", out, "--models", "flan-lstm"],
        ["run", "--out", out, "--epochs", "0"],
        ["run", "--out", out, "--epochs", "-1", "--config", toml],
        ["run", "--out", out, "--lr", "-1", "--config", toml],
        ["run", "--out", out, "--threads", "0"],
        ["run", "--out", out, "--data", str(tmp_path / "missing.jsonl")],
        ["run", "--out", out, "--config", str(tmp_path / "missing.toml")],
        ["run", "--out", out, "--config", str(bad_toml)],
        ["run", "--out", out, "--config", toml, "--rankings", "salience"],
        ["run", "--out", out, "--config", toml, "--path", "slow"],
        ["run", "--out", out, "--config", toml, "--device", "tpu"],
        ["train", "--out", out],
        ["train", "--out", out, "--config", toml, "--encoder", "lstm"],
        ["audit", str(tmp_path / "nowhere")],
        ["report", str(tmp_path / "nowhere")],
    ]:
        _no_traceback(argv, capfd)


def test_error_paths_on_a_finished_run_never_show_a_traceback(
    pipeline: Path, workspace: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The cases that need a finished run (test-all: the run fixture takes 15 s; the cases
    above keep the contract in the quick tier)."""
    damaged = Path(shutil.copytree(pipeline / "models" / "han-none", tmp_path / "damaged"))
    truncate(damaged / "model.pt")
    toml = str(workspace / "run.toml")
    for argv in [
        ["audit", str(pipeline)],
        ["audit", str(damaged)],
        ["audit", str(pipeline / "models" / "flan-none"), "--rankings", "attention",
         "--no-progress"],  # a complete audit with other settings, no --replace
        ["evaluate", str(damaged)],
        ["evaluate", str(pipeline / "models" / "flan-none"), "--split", "validation"],
        ["report", str(pipeline), "--js-unit", "furlongs"],
        ["run", "--out", str(pipeline), "--config", toml, "--lr", "0.5"],  # other settings
    ]:
        _no_traceback(argv, capfd)
