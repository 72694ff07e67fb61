"""What does an attention audit cost per transformer family? Ratios to one inference pass, one process.

For a tiny random sequence classifier of each hosted family (2 layers, or ``--layers``; 4 query
heads, decoders over 2 key/value heads, hidden 64, the MiniLM vocabulary; the cost does not depend on
training), on the same IMDB test reviews (MiniLM subwords, cut to ``--max-tokens``) and batches, at
the last layer's site and at ``L0``:

  * the reference: one inference pass recording the site (``model.run(batch, ["L{l}"])``),
  * the attention ranking's removal curve on the ``eraser`` step schedule
    (``erasure_curve(..., "remove", steps=attention_schedule(lengths, "eraser"))``), on the fast
    path (``model.fast_path = True``, the default) and on the naive full recompute (``False``),

and prints a markdown table: seconds (best of ``--repeats`` after a warm-up), the ratios and the
naive / fast speed-up. BERT's fast path is hand-written (models/hf.py: the last layer needs the
[CLS] row alone); every other family's but DeBERTa's resumes the forward pass at the audited layer
(models/hf_resume.py: layers l..L-1 and the head per candidate; a decoder with the classification
row edited, its last token alone); DeBERTa (its adapter's hooks) and every naive path recompute the
whole model per candidate, so their ratio is about the number of candidates per document.
``peak RSS`` is the process's maximum resident set so far (it only grows: read the increase from
one family to the next, not each value alone).

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


def build(model_type: str, tokenizer: object, layers: int = 2) -> HFClassifier:
    from transformers import AutoConfig

    size = len(tokenizer)  # type: ignore[arg-type]
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id  # type: ignore[attr-defined]
    common: dict[str, object] = dict(
        vocab_size=size, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=128, num_labels=2, pad_token_id=0, bos_token_id=cls_id,
        eos_token_id=sep_id, cls_token_id=cls_id, sep_token_id=sep_id)
    extra = dict(EXTRA.get(model_type, {}))
    if model_type == "distilbert":
        extra["n_layers"] = layers
    config = AutoConfig.for_model(model_type, **{**common, **extra})
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
    parser.add_argument("--layers", type=int, default=2,
                        help="layers of each tiny model (sites: the last layer and L0)")
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
    print("| family | site | inference s | fast curve s | fast ratio | naive curve s | naive ratio "
          "| speed-up | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model_type in args.families.split(","):
        model = build(model_type, tokenizer, args.layers)
        for site in (f"L{args.layers - 1}", "L0"):
            seconds = {}
            with torch.no_grad():
                reference = timed(partial(infer, model, batches, site), args.repeats)
                outputs = [model.run(batch, [site]) for batch in batches]
                for fast in (True, False):
                    model.fast_path = fast
                    curve = partial(curves, model, outputs, site)
                    curve()  # warm-up
                    seconds[fast] = timed(curve, args.repeats)
                model.fast_path = True
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"| {model_type} | {site} | {reference:.3f} | {seconds[True]:.3f} | "
                  f"{seconds[True] / reference:.1f} | {seconds[False]:.3f} | "
                  f"{seconds[False] / reference:.1f} | {seconds[False] / seconds[True]:.1f} | "
                  f"{rss:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
