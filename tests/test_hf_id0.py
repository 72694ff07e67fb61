"""A tokenizer whose id 0 is an ordinary token (Qwen2's and Llama-3's byte-level BPE: ``"!"``).

attnaudit once padded batches with id 0 and read every id 0 as padding, so such tokenizers were
refused. Padding is now marked by the documents' lengths (``Batch.mask``): a document holding the
id-0 token keeps it as an item, with the same logits as transformers' own, everywhere the audit
looks (masks, lengths, items, words, the prepared-data cache, rankings).

The decoder is a tiny random ``Qwen2ForSequenceClassification`` (2 layers, 4 query heads over 2
key/value heads, hidden 32) with a byte-level BPE trained here with ``tokenizers`` on real IMDB
reviews (conftest's slice), saved with ``save_pretrained`` as a user's model would be. Like Qwen2's,
it has no unknown token, no BOS, and pads with a special token at the top of the vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from tolerances import assert_logits_close

from attnaudit.cli import main
from attnaudit.data.batching import collate
from attnaudit.data.types import PAD_ID, Batch, EncodedDocument

pytestmark = pytest.mark.usefixtures("one_thread_module")

PAD = "<|endoftext|>"
#: a review with the id-0 token "!" at the end, in the middle and alone, short enough to read
BANG = "What a film! I loved it ! !"


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()  # commands set it process-wide
    yield
    torch.set_num_threads(before)


def review_texts(imdb_slice: Path, n: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in imdb_slice.read_text(encoding="utf-8").splitlines()][:n]


def byte_level_tokenizer(folder: Path, texts: list[str]) -> Any:
    """A byte-level BPE trained on ``texts``: the 256-byte alphabet first (so id 0 is ``"!"``, the
    lowest printable byte), merges after it, and the padding token added last, as Qwen2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=PAD)
    assert tokenizer.convert_ids_to_tokens(0) == "!" and tokenizer.unk_token is None
    assert tokenizer.pad_token_id == len(tokenizer) - 1  # a special token at the top
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_decoder(folder: Path, imdb_slice: Path) -> Any:
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    tokenizer = byte_level_tokenizer(folder, [r["text"] for r in review_texts(imdb_slice, 300)])
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         num_labels=2, id2label={0: "neg", 1: "pos"},
                         label2id={"neg": 0, "pos": 1})
    torch.manual_seed(0)
    Qwen2ForSequenceClassification(config).save_pretrained(folder)
    return tokenizer


def test_an_id_0_token_inside_a_document_is_a_token_of_the_batch_not_padding() -> None:
    docs = [EncodedDocument("a", 0, [[5, 0, 7]], [["x", "!", "y"]]),
            EncodedDocument("b", 1, [[0]], [["!"]])]
    batch = collate(docs, hierarchical=False)
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.token_ids[1, 0] == 0 == PAD_ID  # the same id, told apart by the lengths
    nested = collate(docs, hierarchical=True)
    assert nested.mask[:, 0].tolist() == batch.mask.tolist()
    # hand-built batches keep the old reading (the word vocabulary's id 0 is its <pad>)
    assert Batch(["c"], torch.tensor([[4, 0]]), torch.tensor([0])).mask.tolist() == [[True, False]]
    sub = batch.rows([1])
    assert sub.doc_ids == ["b"] and sub.mask.tolist() == [[True, False, False]]


@pytest.mark.full
def test_a_decoder_whose_tokenizer_has_an_ordinary_id_0_is_audited_end_to_end(
    tmp_path: Path, imdb_slice: Path
) -> None:
    # Before: refused ("the tokenizer's id 0 is the ordinary token '!'").
    from transformers import AutoTokenizer, Qwen2ForSequenceClassification

    folder = tmp_path / "qwen"
    save_decoder(folder, imdb_slice)
    rows = [{"id": "bang", "text": BANG, "label": "pos"},
            *({"id": r["id"], "text": r["text"][:150], "label": r["label"]}
              for r in review_texts(imdb_slice, 3))]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "run"
    args = ["audit", "--hf-model", str(folder), "--data", str(data), "--out", str(out),
            "--rankings", "random,attention,gradient,integrated_gradients", "--bootstrap", "0",
            "--permutations", "0", "--erasure", "attention,input", "--no-progress"]
    assert main(args) == 0

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    ids = tokenizer(BANG, add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert ids.count(0) == 3 and tokens[-1] == "!"  # three "!" ids: end, middle, alone
    items = pd.read_parquet(out / "audit" / "items.parquet")
    mine = items[(items["doc_id"] == "bang") & (items["site"] == "L1")]
    assert mine["text"].tolist() == tokens  # every "!" an item, in place
    removal = pd.read_parquet(out / "audit" / "removal.parquet")
    steps = removal[(removal["doc_id"] == "bang") & (removal["site"] == "L1")]
    assert set(steps["ranking"]) >= {"attention", "gradient", "integrated_gradients"}
    assert set(steps["n_items"]) == {len(ids)}
    # the audit's model gives transformers' own logits on the document with its id-0 tokens
    from attnaudit.checkpoint import load_run

    run = load_run(out)
    reference = Qwen2ForSequenceClassification.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        ours = run.model(collate(
            [EncodedDocument("bang", 1, [ids], [tokens]),
             EncodedDocument("short", 0, [ids[:2]], [tokens[:2]])], hierarchical=False))
        theirs = reference.eval()(torch.tensor([ids])).logits
        short = reference(torch.tensor([ids[:2]])).logits
    assert_logits_close(ours, torch.cat([theirs, short]), d=64)  # float32, 64-wide FFN
    # A second audit reads the prepared data from the cache, with word items: every "!" is in a
    # word, none lost (the words' texts join to the document's, spaces aside).
    again = tmp_path / "again"
    assert main([*args[:6], str(again), "--rankings", "random,attention", "--bootstrap", "0",
                 "--permutations", "0", "--items", "word", "--no-progress"]) == 0
    items_again = pd.read_parquet(again / "audit" / "items.parquet")
    words = items_again[(items_again["doc_id"] == "bang") & (items_again["site"] == "L1")]
    assert "".join(words["text"]).replace(" ", "").replace("Ġ", "") == BANG.replace(" ", "")
    assert words["text"].tolist()[-1].endswith("!")
