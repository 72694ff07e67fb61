"""What does the counterfactual-attention part of an audit cost (Jain & Wallace's permutations and
adversarial attention), per site of a trained model?

    python benchmarks/counterfactual_speed.py runs/imdb/models/flan-rnn --docs 500 --threads 1
    python benchmarks/counterfactual_speed.py RUN --data ../shared/data/imdb50k.jsonl.gz

Prints, for the run's test documents: one forward pass, the permutation test (``--permutations``),
and the adversarial search (default settings, ``--epsilon``), with the median achieved JSD. The
adversarial search is the expensive part: the vertex pass (n one-hot candidates), the edges and
segments (a few hundred candidates), 40 Adam steps x 6 restarts of forward + backward through
``logits_with``, plus the final ray searches. ``benchmarks/adversarial_gap.py`` compares it with the
search before issue 21 and with an exhaustive reference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from attnaudit.checkpoint import LoadedRun, load_run
from attnaudit.data.batching import make_batches
from attnaudit.data.prepare import prepare_data
from attnaudit.data.types import EncodedDocument
from attnaudit.erasure.counterfactual import AdversarialSearch, adversarial_test, permutation_test


def test_documents(folder: str, data: str | None, n_docs: int
                   ) -> tuple[LoadedRun, list[EncodedDocument]]:
    """A trained run and its first ``n_docs`` test documents (``data``: another data file)."""
    run = load_run(folder)
    data_config = run.data_config
    if data:
        data_config = data_config.model_copy(update={"path": data})
    docs = list(prepare_data(data_config, vocab=run.vocab, label_names=run.label_names).test)
    return run, docs[:n_docs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a trained run folder")
    parser.add_argument("--data", default=None, help="data file (default: the run's own)")
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run, docs = test_documents(args.run, args.data, args.docs)
    model = run.model.eval()
    batches = make_batches(docs, hierarchical=model.hierarchical, batch_size=args.batch_size)
    print(f"{run.run_dir.name}: {len(docs)} documents, {args.threads} thread(s)")
    start = time.perf_counter()
    with torch.no_grad():
        outputs = [model.run(batch) for batch in batches]
    print(f"  forward pass           {time.perf_counter() - start:7.2f} s")
    search = AdversarialSearch(epsilon=args.epsilon)
    for site in model.site_names():
        start = time.perf_counter()
        for batch, output in zip(batches, outputs, strict=True):
            permutation_test(model, output, site, batch.doc_ids, permutations=args.permutations)
        print(f"  {site:>9}: permutations (m={args.permutations}) "
              f"{time.perf_counter() - start:7.2f} s")
        start = time.perf_counter()
        jsd = np.concatenate([
            adversarial_test(model, output, site, batch.doc_ids, search=search)["adv_jsd"]
            for batch, output in zip(batches, outputs, strict=True)
        ])
        print(f"  {site:>9}: adversarial (eps={args.epsilon}) {time.perf_counter() - start:7.2f} s, "
              f"median JSD {np.nanmedian(jsd):.3f} nats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
