"""``attnaudit run --seeds``: the per-seed layout, ``seeds.json`` (attnaudit.results.seeds) and the
flag/TOML parsing.

The aggregation is checked by hand on small fake summaries; one tiny end-to-end run with two seeds
checks the folders, the shared test documents, seeds.json and the report.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnaudit.cli import main
from attnaudit.config import PipelineConfig, RunConfig
from attnaudit.errors import DataError
from attnaudit.results.seeds import (
    SeedResult,
    read_seed_results,
    seed_model_name,
    spread,
    summarize_seeds,
    write_seeds_summary,
)
from attnaudit.results.summary import SCHEMA_VERSION as SUMMARY_SCHEMA_VERSION

# ----------------------------------------------------------------------------------------------
# Fake per-seed results
# ----------------------------------------------------------------------------------------------


def fake_summary(flip: dict[str, float], removal: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A summary.json with one site (``token``): Test 1 flip rates and removal[ranking] blocks."""
    return {"schema_version": SUMMARY_SCHEMA_VERSION, "model": "flan-none",
            "by_site": {"token": {"single_weight": {"n": 10, "flip_rate": flip},
                                  "removal": removal}}}


def removal_block(censored: float | None, never: float, **extra: Any) -> dict[str, Any]:
    return {"median_fraction_censored": censored, "share_never_flipped": never,
            "flip_curve": [0.0, 0.5, 1.0], **extra}


# Seed 0: gradient beats attention (0.2 < 0.4) and attention beats random (0.4 < 0.9).
SEED0 = fake_summary(
    {"max": 0.30, "random": 0.10, "gradient": 0.50},
    {"random": removal_block(0.9, 0.5),
     "attention": removal_block(0.4, 0.2, new_measure={"auc": 0.25}, single=True),
     "gradient": removal_block(0.2, 0.1)})
# Seed 1: gradient loses to attention on Test 2 (0.6 > 0.5) but still wins Test 1 (0.40 > 0.20);
# attention and random tie on Test 1.
SEED1 = fake_summary(
    {"max": 0.20, "random": 0.20, "gradient": 0.40},
    {"random": removal_block(1.0, 0.7),
     "attention": removal_block(0.5, 0.4, new_measure={"auc": 0.75}, single=False),
     "gradient": removal_block(0.6, 0.3)})


def two_seeds() -> dict[str, Any]:
    results = {"flan-none": [
        SeedResult(0, "models/flan-none", {"test_accuracy": 0.8, "dev_accuracy": 0.9}, SEED0),
        SeedResult(1, "models/flan-none-seed1", {"test_accuracy": 0.7, "dev_accuracy": 0.8}, SEED1),
    ]}
    return summarize_seeds(results, [0, 1])


# ----------------------------------------------------------------------------------------------
# Aggregation, by hand
# ----------------------------------------------------------------------------------------------


def test_spread_by_hand() -> None:
    stats = spread([0.5, None, 0.7])
    assert stats["mean"] == pytest.approx(0.6)
    assert stats["std"] == pytest.approx(math.sqrt(0.02))  # ((-0.1)^2 + 0.1^2) / (2 - 1)
    assert (stats["min"], stats["max"], stats["n"]) == (0.5, 0.7, 2)
    assert stats["values"] == [0.5, None, 0.7]
    assert spread([0.3])["std"] is None  # one seed: no spread
    assert spread([None, None]) == {"mean": None, "std": None, "min": None, "max": None, "n": 0,
                                    "values": [None, None]}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=8))
def test_spread_matches_the_statistics_module(values: list[float | None]) -> None:
    present = [v for v in values if v is not None]
    stats = spread(values)
    assert stats["n"] == len(present)
    if present:
        assert stats["mean"] == pytest.approx(statistics.fmean(present), abs=1e-6)
        assert (stats["min"], stats["max"]) == (min(present), max(present))
    if len(present) >= 2:
        assert stats["std"] == pytest.approx(statistics.stdev(present), rel=1e-6, abs=1e-6)


def test_metrics_and_test1_flip_rates_by_hand() -> None:
    model = two_seeds()["models"]["flan-none"]
    assert model["folders"] == {"0": "models/flan-none", "1": "models/flan-none-seed1"}
    assert model["missing"] == {}
    accuracy = model["metrics"]["test_accuracy"]
    assert accuracy["mean"] == pytest.approx(0.75)
    assert accuracy["std"] == pytest.approx(math.sqrt(0.005))  # 2 * 0.05^2 / 1
    assert (accuracy["min"], accuracy["max"], accuracy["values"]) == (0.7, 0.8, [0.8, 0.7])
    flip = model["by_site"]["token"]["flip_rate"]
    assert list(flip) == ["max", "random", "gradient"]
    assert flip["max"]["mean"] == pytest.approx(0.25)
    assert flip["gradient"]["values"] == [0.5, 0.4]


def test_every_numeric_leaf_of_a_ranking_is_aggregated() -> None:
    removal = two_seeds()["models"]["flan-none"]["by_site"]["token"]["removal"]
    attention = removal["attention"]
    assert attention["median_fraction_censored"]["mean"] == pytest.approx(0.45)
    assert attention["share_never_flipped"]["values"] == [0.2, 0.4]
    # A measure nobody told this module about appears under its dotted key.
    assert attention["new_measure.auc"]["mean"] == pytest.approx(0.5)
    assert attention["new_measure.auc"]["std"] == pytest.approx(math.sqrt(0.125))
    # Lists (curves) and booleans have no mean: left out.
    assert "flip_curve" not in attention and "single" not in attention
    assert "new_measure.auc" not in removal["gradient"]


def test_advantage_counts_the_seeds_where_the_order_holds() -> None:
    advantage = two_seeds()["models"]["flan-none"]["by_site"]["token"]["advantage"]
    assert list(advantage) == ["gradient_vs_attention", "attention_vs_random"]
    test2 = advantage["gradient_vs_attention"]["median_fraction_censored"]
    # seed 0: 0.2 < 0.4 holds; seed 1: 0.6 > 0.5 reversed (lower is better)
    assert (test2["holds"], test2["reversed"], test2["tied"], test2["n"]) == (1, 1, 0, 2)
    assert test2["survives"] is False
    assert test2["mean_difference"] == pytest.approx(((0.2 - 0.4) + (0.6 - 0.5)) / 2)
    test1 = advantage["gradient_vs_attention"]["flip_rate"]  # gradient vs "max" removal
    assert (test1["holds"], test1["reversed"], test1["survives"]) == (2, 0, True)
    against_random = advantage["attention_vs_random"]
    assert against_random["median_fraction_censored"]["survives"] is True
    # Test 1: 0.30 > 0.10 holds; 0.20 == 0.20 tied
    flip = against_random["flip_rate"]
    assert (flip["holds"], flip["tied"], flip["survives"]) == (1, 1, False)


def test_a_seed_without_results_is_missing_not_fatal() -> None:
    results = {"flan-none": [
        SeedResult(0, "models/flan-none", {"test_accuracy": 0.8}, SEED0),
        SeedResult(2, "models/flan-none-seed2", None, None, missing="metrics.json is missing"),
    ]}
    summary = summarize_seeds(results, [0, 1, 2])
    model = summary["models"]["flan-none"]
    assert model["missing"] == {"1": "not trained", "2": "metrics.json is missing"}
    assert model["metrics"]["test_accuracy"]["values"] == [0.8, None, None]
    censored = model["by_site"]["token"]["removal"]["gradient"]["median_fraction_censored"]
    assert (censored["n"], censored["std"]) == (1, None)
    advantage = model["by_site"]["token"]["advantage"]["gradient_vs_attention"]
    assert advantage["median_fraction_censored"]["survives"] is False  # one seed proves nothing
    json.dumps(summary, allow_nan=False)  # no NaN reaches the file


def test_a_null_value_is_skipped_by_the_advantage() -> None:
    third = fake_summary({}, {"attention": removal_block(None, 1.0),
                              "gradient": removal_block(0.3, 0.1)})
    results = {"m": [SeedResult(0, "a", None, SEED0), SeedResult(1, "b", None, third)]}
    advantage = summarize_seeds(results, [0, 1])["models"]["m"]["by_site"]["token"]["advantage"]
    # seed 1 has no random ranking and a null for attention: only seed 0 counts, in both pairs
    assert advantage["attention_vs_random"]["median_fraction_censored"]["n"] == 1
    assert advantage["gradient_vs_attention"]["median_fraction_censored"]["n"] == 1


# ----------------------------------------------------------------------------------------------
# Layout and files
# ----------------------------------------------------------------------------------------------


def test_the_first_seed_keeps_the_single_seed_folder() -> None:
    assert seed_model_name("han-rnn", 3, [3, 1]) == "han-rnn"
    assert seed_model_name("han-rnn", 1, [3, 1]) == "han-rnn-seed1"


def write_model(folder: Path, metrics: dict[str, Any], summary: dict[str, Any] | None) -> None:
    (folder / "audit").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if summary is not None:
        (folder / "audit" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_seeds_json_from_the_folders(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_model(models / "flan-none", {"test_accuracy": 0.8}, SEED0)
    write_model(models / "flan-none-seed1", {"test_accuracy": 0.7}, SEED1)
    write_model(models / "flan-none-seed2", {"test_accuracy": 0.6}, None)  # audit unfinished
    read = read_seed_results(models, ["flan-none"], [0, 1, 2])
    assert [r.folder for r in read["flan-none"]] == [
        "models/flan-none", "models/flan-none-seed1", "models/flan-none-seed2"]
    path = write_seeds_summary(tmp_path, models, ["flan-none"], [0, 1, 2])
    saved = json.loads(path.read_text(encoding="utf-8"))
    model = saved["models"]["flan-none"]
    assert saved["seeds"] == [0, 1, 2]
    assert model["missing"] == {"2": "flan-none-seed2/audit/summary.json is missing"}
    assert model["metrics"]["test_accuracy"]["values"] == [0.8, 0.7, 0.6]
    assert model["by_site"]["token"]["flip_rate"]["max"]["values"] == [0.3, 0.2, None]


# ----------------------------------------------------------------------------------------------
# Flags and TOML
# ----------------------------------------------------------------------------------------------


def test_toml_seeds_fix_the_first_run(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('seeds = [4, 2, 4]\nmodels = ["flan-none"]\n[data]\npath = "x"\n',
                    encoding="utf-8")
    config = PipelineConfig.load_toml(toml)
    assert config.seeds == (4, 2) and config.run_seeds == (4, 2)
    assert (config.train.seed, config.data.seed) == (4, 4)  # like --seed 4
    assert config.to_dict()["seeds"] == [4, 2]
    second = config.run_config("flan-none", seed=2)
    assert (second.train.seed, second.data.seed) == (2, 4)  # the first seed's split
    # `attnaudit train` reads the same file and ignores what only `run` uses
    assert RunConfig.load_toml(toml).train.seed == 0
    single = PipelineConfig.from_dict({"data": {"path": "x"}})
    assert single.run_seeds == (0,) and "seeds" not in single.to_dict()


@pytest.mark.parametrize(("toml", "message"), [
    ('seeds = [1, 2]\n[train]\nseed = 5\n', "the first seed must be [train] seed 5"),
    ('seeds = []\n', "give at least one seed"),
    ('seeds = [1.5]\n', "must be whole numbers"),
])
def test_bad_toml_seeds_name_the_field(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(toml + '[data]\npath = "x"\n', encoding="utf-8")
    with pytest.raises(DataError, match="seeds") as err:
        PipelineConfig.load_toml(path)
    assert message in str(err.value) and str(path) in str(err.value)


def capture_pipeline(monkeypatch: pytest.MonkeyPatch) -> list[PipelineConfig]:
    seen: list[PipelineConfig] = []

    def fake_run(config: PipelineConfig, out: Any, **kwargs: Any) -> Path:
        seen.append(config)
        return Path(out) / "report.html"

    monkeypatch.setattr("attnaudit.pipeline.run_pipeline", fake_run)
    return seen


def test_seeds_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen = capture_pipeline(monkeypatch)
    assert main(["run", "--data", "x", "--seeds", "3,1,3", "--out", str(tmp_path)]) == 0
    (config,) = seen
    assert config.seeds == (3, 1)
    assert (config.train.seed, config.data.seed) == (3, 3)
    # The flag wins over the file's seeds and [train] seed, as every flag does.
    toml = tmp_path / "run.toml"
    toml.write_text('seeds = [7, 8]\n[train]\nseed = 7\n', encoding="utf-8")
    assert main(["run", "--config", str(toml), "--seeds", "0,1", "--out", str(tmp_path)]) == 0
    assert (seen[1].seeds, seen[1].train.seed) == ((0, 1), 0)


@pytest.mark.parametrize("argv", [["--seed", "1", "--seeds", "1,2"], ["--seeds", "1,x"],
                                  ["--seeds", ","]])
def test_bad_seeds_flags_stop_with_a_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen = capture_pipeline(monkeypatch)
    assert main(["run", "--data", "x", *argv, "--out", str(tmp_path)]) == 2
    assert seen == []
    assert "seed" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# End to end: two seeds of one model on a slice of IMDB
# ----------------------------------------------------------------------------------------------


def test_two_seed_run_end_to_end(imdb_slice: Path, tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "run"
    argv = ["run", "--data", str(imdb_slice), "--models", "flan-none", "--epochs", "1",
            "--seeds", "0,1", "--rankings", "random,attention,gradient", "--max-docs", "40",
            "--bootstrap", "0", "--permutations", "0",  # measures the seeds do not change
            "--threads", "1", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    first, second = out / "models" / "flan-none", out / "models" / "flan-none-seed1"
    configs = [json.loads((m / "config.json").read_text(encoding="utf-8")) for m in (first, second)]
    assert [c["train"]["seed"] for c in configs] == [0, 1]
    assert configs[0]["data"] == configs[1]["data"]  # the same split for both seeds
    summaries = [json.loads((m / "audit" / "summary.json").read_text(encoding="utf-8"))
                 for m in (first, second)]
    assert summaries[0]["n_docs"] == summaries[1]["n_docs"] > 0
    audited = [set(pd.read_parquet(m / "audit" / "single_weight.parquet")["doc_id"])
               for m in (first, second)]
    assert audited[0] == audited[1], "the seeds audited different documents: results not paired"
    weights = [(m / "model.pt").read_bytes() for m in (first, second)]
    assert weights[0] != weights[1], "the second seed trained the same model"

    seeds = json.loads((out / "seeds.json").read_text(encoding="utf-8"))
    model = seeds["models"]["flan-none"]
    assert seeds["seeds"] == [0, 1] and model["missing"] == {}
    accuracies = [json.loads((m / "metrics.json").read_text(encoding="utf-8"))["test_accuracy"]
                  for m in (first, second)]
    assert model["metrics"]["test_accuracy"]["values"] == accuracies
    site = model["by_site"]["token"]
    assert site["removal"]["gradient"]["median_fraction_censored"]["n"] == 2
    assert set(site["advantage"]) == {"gradient_vs_attention", "attention_vs_random"}

    # Each seed is a model of the run's report.
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="m-flan-none"' in page and 'id="m-flan-none-seed1"' in page

    # Run again: every stage reused, seeds.json the same.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("*") if p.is_file()
              and not p.name.startswith(".")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "seeds.json").read_text(encoding="utf-8")) == seeds

