"""Issue 26 figures: what `weights: {pattern: pe-pair, permute: true}` recovers of the pairing's one-shot cost.

fp32 only (no quantization): mean (min) cosine of the pruned model's mean-pooled, L2-normalised sentence
embedding to the dense model's, on the first ``--texts`` snippets of ``vader-movie-test``, for each weight
criterion (magnitude, activation = Wanda, sparsegpt) at each ratio, in three forms: pattern row (reference),
pe-pair (rows 2i, 2i + 1), pe-pair + permute (:mod:`padless.sparse.permute`). Pruning:
``prune_spec(spec, {sparsity, bank: 16, criterion, pattern[, permute]})`` with its default calibration
sentences (vader-tweets: 64 for activation, 1024 for sparsegpt). Also prints each run's pruning time
(measured, wall clock, this machine) to stderr. Prints a markdown table; writes nothing (docs/benchmarks.md is the lead's).

    PYTHONPATH=sw .venv/bin/python bench/pe_pair_permute_bench.py [--model minilm-l6] [--texts 300]
        [--ratios 0.5,0.75] [--criteria magnitude,activation,sparsegpt]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from padless.data.datasets import load_dataset  # noqa: E402
from padless.models import Tokenizer, resolve_model  # noqa: E402
from padless.reference import encode_fp32, pool  # noqa: E402
from padless.sparse.weights import prune_spec  # noqa: E402

FORMS = (("row", {}), ("pe-pair", {"pattern": "pe-pair"}),
         ("pe-pair + permute", {"pattern": "pe-pair", "permute": True}))


def embeddings(spec, ids) -> np.ndarray:
    """``(texts, hidden)`` fp32 pooled embeddings of the reference model."""
    return np.stack([pool(spec, h) for h in encode_fp32(spec, ids)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--ratios", default="0.5,0.75")
    ap.add_argument("--criteria", default="magnitude,activation,sparsegpt")
    ap.add_argument("--bank", type=int, default=16)
    args = ap.parse_args(argv)
    spec, _ = resolve_model(args.model)
    texts = load_dataset("vader-movie-test", limit=args.texts).texts
    ids = Tokenizer(spec.tokenizer_path, spec.max_positions).encode(texts, truncate=True)
    dense = embeddings(spec, ids)
    ratios = [float(r) for r in args.ratios.split(",")]
    rows = []
    for criterion in args.criteria.split(","):
        cells = {}
        for s in ratios:
            for form, extra in FORMS:
                t0 = time.perf_counter()
                pruned = prune_spec(spec, {"sparsity": s, "bank": args.bank, "criterion": criterion, **extra})
                dt = time.perf_counter() - t0
                emb = embeddings(pruned, ids)
                cos = (emb * dense).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(dense, axis=1))
                cells[(s, form)] = f"{cos.mean():.3f} ({cos.min():.3f})"
                print(f"{criterion} {s:.0%} {form}: mean cosine {cos.mean():.4f} min {cos.min():.4f} "
                      f"(prune {dt:.1f} s measured)", file=sys.stderr, flush=True)
        rows.append((criterion, cells))
    head = [f"{s:.0%} {form}" for s in ratios for form, _ in FORMS]
    print(f"fp32 mean (min) cosine to dense, {args.model}, first {len(ids)} of vader-movie-test, bank {args.bank}")
    print("| criterion | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for criterion, cells in rows:
        print(f"| {criterion} | " + " | ".join(cells[(s, form)] for s in ratios for form, _ in FORMS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
