"""What does an attention audit cost per transformer family? Ratios to one inference pass, one process.

For a tiny random sequence classifier of each hosted family (2 layers, 4 query heads, decoders over 2
key/value heads, hidden 64, the MiniLM vocabulary; the cost does not depend on training), on the same
IMDB test reviews (MiniLM subwords, cut to ``--max-tokens``) and batches, at each layer site ``L{l}``:

  * the reference: one inference pass recording the site (``model.run(batch, ["L{l}"])``),
  * the attention ranking's removal curve on the ``eraser`` step schedule
    (``erasure_curve(..., "remove", steps=attention_schedule(lengths, "eraser"))``),

and prints a markdown table: seconds (best of ``--repeats`` after a warm-up) and the ratio. BERT runs
its hand-written fast path (the last layer needs the [CLS] row alone); every other family recomputes
the whole model per candidate through the registered attention function (DeBERTa: its adapter's
hooks), so its ratio is about the number of candidates per document. ``peak RSS`` is the
process's maximum resident set so far (it only grows: read the increase from one family to the
next, not each value alone).

    .venv/bin/python benchmarks/family_cost.py                       # every family, 16 reviews
    .venv/bin/python benchmarks/family_cost.py --families bert,llama --docs 4 --repeats 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import sys
from functools import partial
from pathlib import Path

import torch
from audit_speed import timed  # benchmarks/ is the script's folder: on sys.path

from attnaudit.data.hf_tokenizer import minilm_folder
from attnaudit.data.types import PAD_ID, Batch
from attnaudit.erasure.engine import attention_schedule
from attnaudit.erasure.interventions import erasure_curve, removal_order
from attnaudit.models.base import ModelOutput
from attnaudit.models.hf_generic import HFClassifier

IMDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "imdb50k.jsonl.gz"
FAMILIES = ("bert", "roberta", "distilbert", "electra", "albert", "modernbert", "deberta-v2",
            "deberta", "llama", "qwen2", "qwen3", "mistral", "gemma", "phi", "phi3")
#: per model_type, what its config needs beyond the common sizes (as tests/hf_family_fixtures.py)
EXTRA: dict[str, dict[str, object]] = {
    "roberta": {"max_position_embeddings": 520},
    "distilbert": {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128},
    "electra": {"embedding_size": 32}, "albert": {"embedding_size": 32},
    "modernbert": {"global_attn_every_n_layers": 2, "local_attention": 64},
    # v3's attention: 256 log buckets, c2p and p2c sharing the content projections
    "deberta-v2": {"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                   "share_att_key": True, "position_biased_input": False, "position_buckets": 256,
                   "norm_rel_ebd": "layer_norm", "pooler_hidden_size": 64},
    "deberta": {"relative_attention": True, "pos_att_type": ["c2p", "p2c"],
                "position_biased_input": False, "pooler_hidden_size": 64},
    "llama": {"num_key_value_heads": 2}, "qwen2": {"num_key_value_heads": 2},
    "qwen3": {"num_key_value_heads": 2, "head_dim": 16},
    "mistral": {"num_key_value_heads": 2, "sliding_window": 64},
    "gemma": {"num_key_value_heads": 2, "head_dim": 16}, "phi": {"num_key_value_heads": 2},
    "phi3": {"num_key_value_heads": 2},
}


def build(model_type: str, tokenizer: object) -> HFClassifier:
    from transformers import AutoConfig

    size = len(tokenizer)  # type: ignore[arg-type]
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id  # type: ignore[attr-defined]
    common: dict[str, object] = dict(
        vocab_size=size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, num_labels=2, pad_token_id=0, bos_token_id=cls_id,
        eos_token_id=sep_id, cls_token_id=cls_id, sep_token_id=sep_id)
    config = AutoConfig.for_model(model_type, **{**common, **EXTRA.get(model_type, {})})
    torch.manual_seed(0)
    return HFClassifier(config=config, cls_token_id=cls_id, sep_token_id=sep_id).eval()


def infer(model: HFClassifier, batches: list[Batch], site: str) -> None:
    """One inference pass recording ``site``."""
    for batch in batches:
        model.run(batch, [site])


def curves(model: HFClassifier, outputs: list[ModelOutput], site: str) -> None:
    """The attention ranking's removal curve on the eraser schedule, every batch."""
    for out in outputs:
        mask = out.site(site).mask
        steps = attention_schedule(mask.sum(dim=1), "eraser")
        order = removal_order(out.site(site).attention, mask)
        erasure_curve(model, out, site, order, "remove", steps=steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not IMDB.is_file():
        print(f"skipped: {IMDB} is absent")
        return 0
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    texts = []
    with gzip.open(IMDB, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("split") == "test":
                texts.append(row["text"].replace("<br />", " "))
            if len(texts) == args.docs:
                break
    ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=args.max_tokens,
                    padding=True, return_tensors="pt")["input_ids"]
    assert tokenizer.pad_token_id == PAD_ID
    batches = [Batch([str(i) for i in range(s, min(s + args.batch_size, len(texts)))],
                     ids[s : s + args.batch_size], torch.zeros(len(ids[s : s + args.batch_size]),
                                                                dtype=torch.long))
               for s in range(0, len(texts), args.batch_size)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {args.threads} thread(s); {len(texts)} IMDB test reviews "
          f"<= {args.max_tokens} MiniLM subwords, batches of {args.batch_size}")
    print("| family | site | inference s | eraser curve s | ratio | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for model_type in args.families.split(","):
        model = build(model_type, tokenizer)
        for site in ("L1", "L0"):
            with torch.no_grad():
                reference = timed(partial(infer, model, batches, site), args.repeats)
                outputs = [model.run(batch, [site]) for batch in batches]
                curve = partial(curves, model, outputs, site)
                curve()  # warm-up
                seconds = timed(curve, args.repeats)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"| {model_type} | {site} | {reference:.3f} | {seconds:.3f} | "
                  f"{seconds / reference:.1f} | {rss:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
