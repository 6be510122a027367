"""Issue 2 figures: int8 golden model vs fp32 MiniLM on real VADER movie snippets.

Measures, in one run on this machine: mean/min cosine of sentence embeddings, probe accuracy and decision
agreement (logistic-regression probes, 5-fold CV), golden-model throughput beside torch fp32 throughput
on the same sentences. Writes docs/benchmarks.md (section golden-vs-fp32).

    .venv/bin/python bench/golden_vs_fp32.py [--n 1000] [--board u280]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _report import calibration_label, write_section  # noqa: E402
from padless.baseline import model_path_of, torch_fp32_throughput  # noqa: E402
from padless.build import compile_project  # noqa: E402
from padless.commands.eval import evaluate  # noqa: E402
from padless.data.datasets import load_dataset  # noqa: E402
from padless.project import load_project  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="VADER movie snippets (stratified random sample, seed 0)")
    ap.add_argument("--board", default="u280")
    ap.add_argument("--gelu", default="pwl", choices=["pwl", "ibert"], help="integer GELU method (ablation)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(tempfile.mkdtemp(prefix="padless-bench-")) / "minilm"
    t0 = time.perf_counter()
    compile_project("minilm-l6", board=args.board, out=out, config={"quant": {"gelu": args.gelu}})
    t_compile = time.perf_counter() - t0
    project = load_project(out)
    ds = load_dataset("vader-movie").sample(args.n, seed=0)
    res = evaluate(project, ds.texts, ds.labels, "golden", truncate=True, show=True)
    fp32_sps = torch_fp32_throughput(model_path_of(project), ds.texts)["sentences_per_s"]
    golden_sps = res["n"] / res["seconds_backend"]
    body = f"""Model minilm-l6 (all-MiniLM-L6-v2, real weights), int8 I-BERT integer-only golden model (per-channel
folded activation scales, alpha 1, GELU method `{args.gelu}`), calibrated on {calibration_label()}; evaluated on {res['n']} VADER movie snippets
(stratified random sample, seed 0, of the 10,072 with |valence| >= 0.5 mean {res['tokens_mean']:.1f} tokens). Compile took {t_compile:.1f} s.

| figure | value | target |
|---|---|---|
| mean cosine, golden vs fp32 sentence embeddings | {res['cosine_mean']:.4f} | >= 0.99 |
| min cosine | {res['cosine_min']:.4f} | reported |
| probe accuracy fp32 (5-fold CV, logistic regression C=4) | {100 * res['accuracy_fp32']:.2f}% | |
| probe accuracy golden (same probes) | {100 * res['accuracy']:.2f}% | within 1 point of fp32 |
| decision agreement with fp32 | {100 * res['agreement']:.2f}% | >= 98% |
| golden throughput (numpy, packed, no padding) | {golden_sps:.1f} sentences/s | measured |
| torch fp32 throughput (batch 32, padded to batch max) | {fp32_sps:.1f} sentences/s | measured |
| golden / torch fp32 | {golden_sps / fp32_sps:.2f}x | |

The golden model is the bit-exact executable specification (every int64 intermediate materialised, per
sequence attention in numpy), not a fast path; the csim backend is the fast integer path.
"""
    print(body)
    if not args.no_write:
        name = "golden-vs-fp32" if args.gelu == "pwl" else f"golden-vs-fp32-{args.gelu}"
        write_section(name, f"Integer golden model vs fp32 on real sentences (issue 2, GELU {args.gelu})", body)


if __name__ == "__main__":
    main()
