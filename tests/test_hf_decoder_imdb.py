"""Slow: a tiny Llama classifier trained from scratch on a few hundred IMDB reviews, then audited.

The decoder (2 layers, 4 query heads over 2 key/value heads, hidden 64, the MiniLM vocabulary) is
trained with plain transformers/PyTorch (outside attnaudit, as a user's model would be) on 600 real
reviews, cut to 128 subwords; it must beat chance on 200 held-out ones, and the live-object audit
(``attnaudit.audit(model, texts, tokenizer=...)``) must then audit every review at the default site,
with its classification at the last token.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"


def _reviews(n: int) -> list[tuple[str, int]]:
    """``n`` reviews, balanced, in file order (the file's own train split)."""
    per = {0: [], 1: []}  # type: dict[int, list[tuple[str, int]]]
    with gzip.open(IMDB, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            label = 1 if str(row["label"]) in ("pos", "1", "positive") else 0
            if len(per[label]) < n // 2:
                per[label].append((row["text"], label))
            if all(len(v) >= n // 2 for v in per.values()):
                break
    mixed = [pair for pair in zip(per[0], per[1], strict=True) for pair in pair]
    return mixed


@pytest.mark.skipif(not IMDB.is_file(), reason="needs the shared IMDB file")
def test_a_tiny_decoder_trained_on_imdb_beats_chance_and_is_audited() -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    import attnaudit
    from attnaudit.data.hf_tokenizer import minilm_folder

    torch.manual_seed(0)
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    data = _reviews(800)
    train, test = data[:600], data[600:]
    config = AutoConfig.for_model(
        "llama", vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, num_labels=2,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1})
    model = AutoModelForSequenceClassification.from_config(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)

    def encode(rows: list[tuple[str, int]]) -> dict[str, torch.Tensor]:
        return tokenizer([t for t, _ in rows], truncation=True, max_length=128, padding=True,
                         return_tensors="pt")

    model.train()
    for _ in range(6):
        order = torch.randperm(len(train)).tolist()
        for start in range(0, len(train), 32):
            rows = [train[i] for i in order[start : start + 32]]
            loss = model(**encode(rows), labels=torch.tensor([y for _, y in rows])).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(**encode(test[s : s + 50])).logits.argmax(-1)
                               for s in range(0, len(test), 50)])
    accuracy = (predicted == torch.tensor([y for _, y in test])).float().mean().item()
    print(f"tiny Llama on IMDB: held-out accuracy {accuracy:.3f} on {len(test)} reviews")
    assert accuracy > 0.6  # balanced classes: chance is 0.5

    texts = [attnaudit.Document(f"r{i}", t, "pos" if y else "neg") for i, (t, y) in
             enumerate(test[:20])]
    result = attnaudit.audit(model, texts, tokenizer=tokenizer, max_tokens=126,
                             config=attnaudit.AuditConfig(rankings=("random", "attention",
                                                                    "gradient"), bootstrap=0))
    assert set(result.removal["doc_id"]) == {d.doc_id for d in texts}
    assert set(result.removal["site"]) == {"L1"}  # the last layer's last-token row
    assert result.model is not None and result.model.family.decoder  # type: ignore[attr-defined]
    print(result.removal.groupby("ranking")["fraction_removed"].describe())
