"""Shared fixtures: one torch thread (opt-in), and a small slice of the real IMDB file for tests
that run the whole pipeline."""

from __future__ import annotations

import os

# Never touch the network: transformers and huggingface_hub read these when first imported, and
# every Hugging Face model or tokenizer a test loads is a local folder (or the MiniLM package).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"
#: Documents kept per (split, label), and words kept per text: enough for every stage to do real
#: work, small enough that two models train and audit in seconds.
SLICE_DOCS = {"train": 150, "test": 60}
SLICE_WORDS = 120


@pytest.fixture
def count_prepares(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the real (uncached) data preparations: one entry per call of ``_prepare_flat``."""
    from attnaudit.data import prepare

    calls: list[int] = []
    real = prepare._prepare_flat

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "_prepare_flat", spy)
    return calls


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a shared 2-core machine waiting threads slow
    them down up to 100x. Opt-in per module: results depend on the thread count (float reductions),
    so tests comparing a run in this process with one in a subprocess must keep torch's default."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """:func:`one_thread` for a whole module (``pytestmark = pytest.mark.usefixtures(...)``), so that
    hypothesis tests, which refuse function-scoped fixtures, run with one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def imdb_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JSONL file of the first IMDB reviews per split and label (pos/neg), texts cut short.

    Same fields as the source file (split, label, id, rating, text), so the loaders read it the same
    way: polarity labels, the source's train/test split, dev carved from train.
    """
    if not IMDB.is_file():
        pytest.skip(f"IMDB data not found at {IMDB} (it lives beside the repository, in "
                    "../shared/data/); the pipeline tests train on a slice of it")
    wanted = {(split, label): n for split, n in SLICE_DOCS.items() for label in ("pos", "neg")}
    taken: Counter[tuple[str, str]] = Counter()
    rows = []
    with gzip.open(IMDB, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            key = (record["split"], record["label"])
            if taken[key] < wanted.get(key, 0):
                taken[key] += 1
                record["text"] = " ".join(record["text"].split()[:SLICE_WORDS])
                rows.append(record)
                if taken == wanted:
                    break
    path = tmp_path_factory.mktemp("imdb") / "imdb-slice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def _prepared_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the prepared-data cache (attnaudit.data.cache) at a folder of this test session, so
    tests never write to the user's home nor read entries left by earlier runs. Entries are keyed by
    the data's resolved path and content, so tests (each with its own tmp_path) do not meet."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTNAUDIT_CACHE", str(tmp_path_factory.mktemp("prepared-cache")))
        yield


#: The numeric tests: float results compared across paths, batches, chunks, processes and against
#: references. ``make test-all`` reruns them under ``ATEN_CPU_CAPABILITY=default`` (torch's
#: scalar kernels besides this CPU's vector ones), where last-bit differences between machines
#: show up on the developer's machine rather than on someone else's (tests/tolerances.py).
NUMERIC_MODULES = frozenset({
    "test_attention_steps.py", "test_attributions.py", "test_conformance.py",
    "test_counterfactual.py", "test_erasure.py", "test_hf_model.py", "test_input_erasure.py",
    "test_measures.py", "test_measures_faithfulness.py", "test_models.py", "test_regression.py",
    "test_single_weight.py", "test_word_items.py", "test_hf_families.py", "test_memory_budget.py",
    "test_hf_train_families.py", "test_hf_id0.py",
})
NUMERIC_TESTS = frozenset({
    "tests/test_pipeline.py::test_killed_audit_resumes_from_its_finished_parts",
    "tests/test_audit_run.py::test_two_processes_under_torchrun_give_the_one_process_tables",
})


#: Tests left to ``make test-all`` (marked ``full``), with their CPU seconds measured on the 2-core
#: machine with one thread (``--durations`` of a whole run; a module fixture's cost counts on its
#: first test). A test name alone moves every case; with a set of case ids, those cases stay in
#: the quick tier (a smaller parametrisation covering the contract) and the others move. Tests
#: may also carry ``@pytest.mark.full`` themselves.
#: Site cases and models kept in the quick tier by the conformance suite's expensive tests: a flat
#: and a hierarchical paper model at each of HAN's sites, and one transformer (the fast ones,
#: measured: 0.4-1.1 s a case where transformer layer sites take 2-8 s).
QUICK_SITE_CASES = frozenset({"flan-none:token", "flan-rnn:token", "han-rnn:sentence",
                              "han-none:word", "hf-attnpool:pool"})
QUICK_MODELS = frozenset({"flan-rnn", "han-none"})


def _at_quick_sites(case: str) -> bool:
    """A case of a test parametrised over every ``model:site`` (and perhaps a ranking after a
    ``-``: site names hold none) stays quick at the sites of :data:`QUICK_SITE_CASES` and plain
    hf's default layer site."""
    model, _, rest = case.partition(":")
    return f"{model}:{rest.split('-')[0]}" in QUICK_SITE_CASES | {"hf:L1"}


FULL_TESTS: dict[str, frozenset[str] | Callable[[str], bool] | None] = {
    # whole-suite figures: CPU s of all cases / of the cases left quick
    "tests/test_conformance.py::test_paths_agree_in_float32": QUICK_SITE_CASES,  # 64 / 2
    "tests/test_conformance.py::test_fast_batched_and_naive_paths_agree": QUICK_SITE_CASES,  # 44 / 4
    # one model each in the quick tier (measured at load ~9: 29 and 32 s for han-none, 13 and
    # 16 s for flan-rnn): the padded batch where padding is deepest (HAN's documents and
    # sentences), the audit's tables on the flat recurrent model
    "tests/test_conformance.py::test_a_document_alone_equals_the_document_in_a_padded_batch":
        frozenset({"han-none"}),
    "tests/test_conformance.py::test_audit_tables_do_not_depend_on_batch_size_or_path":
        frozenset({"flan-rnn"}),
    "tests/test_conformance.py::test_gradient_ranking_equals_finite_differences": QUICK_SITE_CASES,
    "tests/test_conformance.py::test_erasing_everything_agrees_between_paths": QUICK_SITE_CASES,  # 15
    "tests/test_counterfactual.py::test_a_document_alone_equals_it_in_a_batch_and_the_constraint_holds":
        QUICK_SITE_CASES,  # 13 / 2
    # The pipeline end to end stays quick (test_run_writes_every_stage_and_the_report: 28 s with
    # its module fixture, the README's command); its resumes and rebuilds move.
    "tests/test_pipeline.py::test_killed_and_interrupted_run_resumes_to_the_uninterrupted_results":
        None,  # 35
    "tests/test_pipeline.py::test_killed_audit_resumes_from_its_finished_parts": None,  # 13
    "tests/test_pipeline.py::test_report_command_rebuilds_from_saved_results_without_torch":
        None,  # 12.5
    "tests/test_pipeline.py::test_second_run_reuses_every_stage": None,  # 11.7
    "tests/test_pipeline.py::test_real_report_renders_offline": None,  # a browser, like the next
    "tests/test_report_browser.py::test_report_renders_offline": None,  # 11.9
    # test_audit_run: a new bootstrap setting stays quick (0.8)
    "tests/test_audit_run.py::test_a_second_audit_of_the_same_run_stops_with_the_holders_pid":
        None,  # 10.6
    "tests/test_audit_run.py::test_a_han_run_audited_at_both_sites_with_two_rankings": None,  # 28.6
    "tests/test_audit_run.py::test_two_processes_under_torchrun_give_the_one_process_tables":
        None,  # 24
    "tests/test_audit_run.py::test_a_constant_model_is_flagged_in_the_log_summary_and_report":
        None,  # 5.7
    "tests/test_audit_run.py::test_a_complete_audit_is_not_replaced_silently": None,  # 3.1
    "tests/test_reports.py::test_context_numbers_equal_summary_json": None,  # 22.3
    "tests/test_reports.py::test_a_new_ranking_appears_in_tables_and_figures": None,  # 19.0
    "tests/test_reports.py::test_every_example_is_shown": None,  # 9.8
    "tests/test_reports.py::test_resumed_training_time_says_so": None,  # 8.8
    "tests/test_reports.py::test_degenerate_model_warning_is_at_the_top": None,  # 8.4
    "tests/test_reports.py::test_report_is_deterministic": None,  # 6.6
    "tests/test_reports.py::test_report_building_does_not_import_torch": None,  # 7.9
    "tests/test_reports.py::test_faithfulness_table_numbers_and_intervals_equal_summary_json":
        None,  # 6.5
    # a report each, 2.2-2.9 s; six more like them stay quick (a folder, a run, missing pieces,
    # a recomputed summary, the input-level table, the CLI)
    "tests/test_reports.py::test_js_in_bits_is_a_display_conversion": None,
    "tests/test_reports.py::test_counterfactual_numbers_equal_summary_json_in_bits": None,
    "tests/test_reports.py::test_run_json_with_top_level_models": None,
    "tests/test_reports.py::test_metrics_under_the_trainers_names": None,
    "tests/test_reports.py::test_faithfulness_page_marks_the_best_and_names_the_rule": None,
    "tests/test_bootstrap.py::test_vectorised_intervals_equal_the_recomputed_ones": None,  # 14.5
    "tests/test_word_items.py::test_audit_with_words_mask_and_every_row_from_the_command_line":
        None,  # 6.7
    # measured in a whole quick-tier run (wall s at load 2-5, where wall ~ CPU)
    "tests/test_conformance.py::test_audit_tables_with_repeated_words_do_not_depend_on_batch_size":
        None,  # 7.5
    # the naive path's cases (4.9-7.3 each) and HAN's none/cnn fast ones (2.4-2.6, load ~1):
    # every FLAN encoder and HAN's recurrent one stay quick
    "tests/test_regression.py::test_same_values_as_before_the_rebuild": frozenset(
        {"flan-none-fast", "flan-cnn-fast", "flan-rnn-fast", "han-rnn-fast"}),
    "tests/test_seeds.py::test_two_seed_run_end_to_end": None,  # 18.9
    "tests/test_reports.py::test_across_seeds_section_equals_seeds_json": None,  # 13.5
    "tests/test_reports.py::test_a_missing_key_hides_its_part": None,  # 8.3
    "tests/test_reports.py::test_an_old_summary_has_no_faithfulness_block": None,  # 4.4
    # the transformer report's module fixture (44): three tests without it stay quick
    "tests/test_report_hf.py::test_head_sites_get_no_section_of_their_own": None,
    "tests/test_report_hf.py::test_layer_grid_equals_summary_json": None,
    "tests/test_report_hf.py::test_head_heat_map_is_layers_by_heads_and_equals_summary_json": None,
    "tests/test_report_hf.py::test_examples_shade_every_layer": None,
    "tests/test_report_hf.py::test_paper_model_has_no_transformer_section": None,
    "tests/test_report_hf.py::test_section_renders_offline": None,
    "tests/test_cli.py::test_audit_and_evaluate_read_the_config_file_and_flags_override_it":
        None,  # 19.9
    "tests/test_cli.py::test_damaged_training_state_names_it_and_restart_damaged_retrains_only_that_model":
        None,  # 12.5
    "tests/test_cli.py::test_threads_hold_for_every_stage_of_a_resumed_run": None,  # 10.2
    "tests/test_cli.py::test_a_failed_run_does_not_block_its_own_rerun": None,  # 4.2
    # measured in the merged quick tier (wall s at load ~2, where wall ~ CPU): the transformer
    # report's module fixture again (41: its other tests are full above; the reasons per kind of
    # site stay quick in test_advice.py), the page-width browser check (13 + 8; the offline
    # browser check is full too)
    "tests/test_report_hf.py::test_cannot_flip_is_explained_per_kind_of_site": None,
    "tests/test_report_hf.py::test_sites_layers_and_the_architecture_are_named_as_the_cli_names_them":
        None,
    "tests/test_report_browser.py::test_nothing_is_wider_than_the_page": None,
    "tests/test_hf_cli.py::test_a_run_mixes_a_paper_model_and_a_transformer": None,  # 16.0
    # Measured in a quick-tier run at load ~9 (wall s, about 5x CPU there; 283 s of CPU for the
    # whole `make test`, over its 240): the reports each render a run (the page's numbers, the
    # figures' conventions, a model folder and the nothing-to-render cases stay quick); HAN's
    # cases of the eraser-schedule and input-erasure audits (flan-rnn's, hf's and flan-cnn's
    # stay quick).
    "tests/test_reports.py::test_cli_prints_the_path": None,  # 6.1 (quiet)
    "tests/test_reports.py::test_missing_pieces_are_reported_not_fatal": None,  # 5.2
    "tests/test_reports.py::test_missing_summary_is_recomputed_from_the_tables": None,  # 4.7
    "tests/test_reports.py::test_single_run_report_shows_audit_settings": None,  # 4.7
    "tests/test_reports.py::test_input_level_table_is_labelled_and_shows_input_rows": None,  # 16
    "tests/test_attention_steps.py::test_an_audit_on_the_eraser_schedule_measures_the_subsampled_curves":
        frozenset({"flan-rnn", "hf"}),  # han-rnn: 34 at load 9
    "tests/test_input_erasure.py::test_an_audit_with_input_erasure_adds_input_rows_for_every_site_and_ranking":
        frozenset({"flan-cnn"}),  # han-rnn: 24 at load 9
    "tests/test_input_erasure.py::test_summaries_read_attention_rows_and_add_an_input_entry_per_site":
        None,  # 18 at load 9; the audit's input rows stay quick (flan-cnn above)
    # Measured again after issue 17's merges, a whole quick tier at load ~1 (wall s ~ CPU s;
    # `make test` at 272 s of CPU): test_cli's finished-pipeline fixture (15.5 s) and the quick
    # tests on it (thread count recorded, a damaged model file, the pipeline folder's suggestion,
    # an unwritable folder, the error paths on a finished run: the other error paths and one-line
    # cases stay quick); the module's
    # entry point in a subprocess (3.3: test_first_hour's run it too); the saved-classifier audit
    # (9.9: test_hf_import's quick cases audit --hf-model folders); HAN's measures case (2.7)
    "tests/test_cli.py::test_the_thread_count_used_is_recorded": None,
    "tests/test_cli.py::test_damaged_model_file_names_it": None,
    "tests/test_cli.py::test_audit_of_a_pipeline_folder_suggests_its_models": None,
    "tests/test_cli.py::test_module_entry_point_works": None,
    "tests/test_cli.py::test_unwritable_output_folder_is_one_line": None,
    "tests/test_cli.py::test_error_paths_on_a_finished_run_never_show_a_traceback": None,
    "tests/test_hf_cli.py::test_audit_of_a_saved_classifier_writes_tables_report_and_a_self_contained_run":
        None,
    "tests/test_measures_faithfulness.py::test_measures_reach_the_tables_and_summary":
        frozenset({"flan-rnn"}),
    # Parametrised over every model:site (22) and ranking: quick at six sites (seconds at load
    # ~1 for all cases: 9.6, 8.9, 6.6, 6.5, 4.3, 3.4, 3.0, 2.2)
    "tests/test_rankings.py::test_scores_are_finite_on_real_items_and_minus_infinity_on_padding":
        _at_quick_sites,
    "tests/test_attributions.py::test_sampling_methods_are_seeded_per_document": _at_quick_sites,
    "tests/test_conformance.py::test_batched_path_chunked_to_a_memory_budget_equals_one_call_and_naive":
        _at_quick_sites,
    "tests/test_conformance.py::test_single_weight_values_equal_a_direct_erasure": _at_quick_sites,
    "tests/test_conformance.py::test_index_keeps_every_cache_consistent": _at_quick_sites,
    "tests/test_input_erasure.py::test_a_document_alone_equals_it_inside_a_batch": _at_quick_sites,
    "tests/test_attributions.py::test_every_attribution_is_minus_inf_exactly_on_padding":
        _at_quick_sites,
    "tests/test_counterfactual.py::test_batched_permutations_equal_the_per_document_loop":
        _at_quick_sites,
}


def _is_full(nodeid: str) -> bool:
    function, _, case = nodeid.partition("[")
    if function not in FULL_TESTS:
        return False
    quick = FULL_TESTS[function]
    case = case.removesuffix("]")
    if callable(quick):
        return not quick(case)
    return quick is None or case not in quick


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in NUMERIC_MODULES or item.nodeid.split("[")[0] in NUMERIC_TESTS:
            item.add_marker(pytest.mark.numeric)
        # Other transformer families (``hf@<model_type>`` fixtures) in the shared suites run in
        # the full tier: each costs as much as BERT's cases again; their own table
        # (test_hf_families.py) keeps an encoder and a decoder in the quick tier.
        if _is_full(item.nodeid) or ("hf@" in item.nodeid
                                     and "test_hf_families" not in item.nodeid):
            item.add_marker(pytest.mark.full)


def pytest_report_header() -> str:
    """Which of torch's CPU kernel sets runs the suite: results differ between them in the last
    bits (tests/tolerances.py)."""
    chosen = os.environ.get("ATEN_CPU_CAPABILITY", "unset: the best this CPU has")
    return f"torch CPU kernels: {torch.backends.cpu.get_cpu_capability()} (ATEN_CPU_CAPABILITY={chosen})"
