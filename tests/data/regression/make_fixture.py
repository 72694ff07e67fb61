"""Make the frozen regression fixture: six tiny trained models, fixed documents, and the per-document
Test 1 / Test 2 values the audit engine gave for them BEFORE the engine was rebuilt around sites and
curves (commit f41d61c). ``tests/test_regression.py`` holds every later engine to these values.

Run from the repository root (only to re-record, which defeats the purpose; kept to show how):
    OMP_NUM_THREADS=1 .venv/bin/python tests/data/regression/make_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from attnaudit.data.batching import make_batches
from attnaudit.data.types import EncodedDocument
from attnaudit.models import MODEL_NAMES, build_model, parse_model_name

HERE = Path(__file__).resolve().parent
VOCAB, CLASSES = 40, 3
CONFIG = {"embedding_dim": 12, "hidden": 6, "dropout": 0.0}


def documents(n: int, seed: int) -> list[EncodedDocument]:
    """Documents of 1-6 sentences of 1-7 words; tokens 2..4 mark the three classes."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        label = int(rng.integers(0, CLASSES))
        sentences = []
        for _ in range(int(rng.integers(1, 7))):
            words = [int(w) for w in rng.integers(5, VOCAB, size=int(rng.integers(1, 8)))]
            if rng.random() < 0.5:
                words[int(rng.integers(0, len(words)))] = 2 + label
            sentences.append(words)
        tokens = [[f"w{w}" for w in s] for s in sentences]
        docs.append(EncodedDocument(f"doc{seed}-{i}", label, sentences, tokens))
    return docs


def train(name: str, docs: list[EncodedDocument]) -> torch.nn.Module:
    torch.manual_seed(0)
    kind, encoder = parse_model_name(name)
    model = build_model(kind, encoder, vocab_size=VOCAB, num_classes=CLASSES, **CONFIG)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = make_batches(docs, hierarchical=model.hierarchical, batch_size=16)
    model.train()
    for _ in range(4):
        for batch in batches:
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(batch), batch.labels).backward()
            optimiser.step()
    return model.double().eval()


def main() -> None:
    from attnaudit.erasure.audit import AuditConfig, audit_documents

    torch.set_num_threads(1)
    train_docs, test_docs = documents(240, seed=1), documents(40, seed=2)
    (HERE / "documents.json").write_text(json.dumps(
        [{"doc_id": d.doc_id, "label": d.label, "sentences": d.sentences} for d in test_docs]))
    for name in MODEL_NAMES:
        model = train(name, train_docs)
        torch.save(model.state_dict(), HERE / f"{name}.pt")
        frames = audit_documents(model, test_docs, ["a", "b", "c"], AuditConfig(batch_size=7))
        frames.single_weight.to_json(HERE / f"{name}-single_weight.json", orient="records",
                                     double_precision=15)
        frames.removal.to_json(HERE / f"{name}-removal.json", orient="records",
                               double_precision=15)
        acc = (frames.single_weight["label"] == frames.single_weight["prediction"]).mean()
        print(name, "accuracy on the fixed documents", acc)
    (HERE / "config.json").write_text(json.dumps({"vocab": VOCAB, "classes": CLASSES, **CONFIG}))


if __name__ == "__main__":
    main()
