"""The timed C-simulation of the fast form against the synthesizable form on real minilm-l6 projects (issue 24,
item 7): one loop per process, the fast form a switch inside its body, so both must count the same cycles.

    PYTHONPATH=sw .venv/bin/python bench/synth_form_cycles.py [--variants dense,topk,weights50] [--board u280]
        [--texts 4] [--out DIR]

For each variant (dense; top-k attention; 50% bank-balanced weights) it compiles (or reuses) a minilm-l6
project, runs the same real VADER movie snippets through the timed csim in the fast form (what `padless
profile` runs) and in the synthesizable form (what `padless check` runs: PE x SIMD folds, ap_int widths), and
prints the cycles of each and whether the outputs are bit-identical. Simulated cycles (II and depths declared,
not synthesized). Exit status 1 when a variant's cycles or bits differ.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {"dense": {}, "topk": {"attention": {"topk": 16}}, "weights50": {"weights": {"sparsity": 0.5, "bank": 16}}}


def timed(project, x, off, form: str):
    """(outputs, cycles, seconds) of one timed run of ``form``."""
    from padless.runtime.backends.csim import CsimBackend
    t0 = time.perf_counter()
    b = CsimBackend(project, form=form, sim=dict(timed=True, exact_depth=True))
    try:
        y = b.run(x, off)
        return y, sum(r["cycles"] for r in b.reports), time.perf_counter() - t0
    finally:
        b.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--board", default="u280")
    ap.add_argument("--texts", type=int, default=4, help="VADER movie snippets per run")
    ap.add_argument("--out", default="out/synth-form-cycles", help="folder of the compiled projects (reused)")
    args = ap.parse_args(argv)
    from padless.build import compile_project
    from padless.data.datasets import load_dataset
    from padless.golden import quantize_input
    from padless.project import load_project
    from padless.reference import embed
    texts = load_dataset("vader-movie", limit=args.texts).texts
    bad = 0
    print(f"| variant | sequences | tokens | fast-form cycles | synth-form cycles | equal | bit-identical |")
    print("|---|---|---|---|---|---|---|")
    for name in args.variants.split(","):
        out = Path(args.out) / f"minilm-l6-{args.board}-{name}"
        if not (out / "manifest.json").is_file():
            compile_project("minilm-l6", board=args.board, out=out, config=VARIANTS[name] or None)
        p = load_project(out)
        ids = p.tokenize(texts, truncate=True)
        scale = np.asarray(p.quantized.input_scale)
        rows = [quantize_input(embed(p.host, i), scale) for i in ids]
        x = np.concatenate(rows).astype(np.int8)
        off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        y_fast, c_fast, _ = timed(p, x, off, "fast")
        y_synth, c_synth, _ = timed(p, x, off, "synth")
        same = bool((y_fast == y_synth).all())
        bad += (c_fast != c_synth) + (not same)
        print(f"| {name} | {len(ids)} | {len(x)} | {c_fast:,} | {c_synth:,} | {'yes' if c_fast == c_synth else 'NO'} "
              f"| {'yes' if same else 'NO'} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
