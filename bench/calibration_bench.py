"""Which calibration sentences: int8 golden model vs fp32 on short and long real texts, per calibration set.

minilm-l6 (dense), compiled once per calibration set (``calibration: {dataset, count}``, one name or a list
split evenly): 256 VADER tweets, 256 Reuters train articles, and their 128 + 128 mix (the recipe's default). Each
project is evaluated on 1,000 held-out VADER movie snippets (``vader-movie-test``) and on 64 long
Reuters *test* articles (>= 200 tokens, truncated at 256): mean cosine to the fp32 model and probe
decision agreement.

    .venv/bin/python bench/calibration_bench.py [--movie 1000] [--long 64]

Writes the ``calibration`` section of docs/benchmarks.md (``--no-write``: print only).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _report import write_section  # noqa: E402
from finetune_bench import REUTERS_TRAIN, golden, pick_movie_test  # noqa: E402
from sparsity_bench import pick_long  # noqa: E402
from padless.build import compile_project  # noqa: E402
from padless.commands.eval import fp32_embeddings  # noqa: E402
from padless.data.metrics import probe_eval  # noqa: E402
from padless.models import load_recipe  # noqa: E402
from padless.project import load_project  # noqa: E402

SETS = {
    "256 VADER tweets": {"dataset": "vader-tweets", "count": 256},
    "256 Reuters train articles": {"dataset": "reuters", "count": 256},
    "128 VADER tweets + 128 Reuters train articles": {"dataset": ["vader-tweets", "reuters"], "count": 256},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movie", type=int, default=1000)
    ap.add_argument("--long", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="padless-calibration-"))
    texts, labels = pick_movie_test(args.movie, args.seed)
    rows, sets = [], None
    t0 = time.perf_counter()
    for i, (name, cal) in enumerate(SETS.items()):
        compile_project("minilm-l6", board="u280", out=tmp / f"p{i}", config={"calibration": cal})
        prj = load_project(tmp / f"p{i}")
        if sets is None:  # the same texts and fp32 references for every calibration
            ids = prj.tokenize(texts, truncate=True)
            lids, llab = pick_long(prj, args.long, 200, 256, args.seed, first=REUTERS_TRAIN)
            sets = (ids, fp32_embeddings(prj, ids), lids, fp32_embeddings(prj, lids))
        ids, ref, lids, lref = sets
        short = probe_eval(ref, golden(prj, ids), labels)
        long_ = probe_eval(lref, golden(prj, lids), llab)
        rows.append((name, cal, short, long_))
        print(name, round(short["cosine_mean"], 4), round(long_["cosine_mean"], 4), file=sys.stderr, flush=True)
    a = np.asarray([len(s) for s in sets[0]])
    b = np.asarray([len(s) for s in sets[2]])
    lines = [f"minilm-l6, dense int8 golden model (per-channel folded scales, alpha 1, GELU pwl) against fp32, one "
             f"compile per calibration set (`calibration:` in the compile config). Short: {len(a)} VADER movie "
             f"snippets of `vader-movie-test` (tokens mean {a.mean():.1f}); long: {len(b)} Reuters grain test "
             f"articles of >= 200 tokens truncated at 256 (mean {b.mean():.1f}). Agreement = same decision as "
             f"the fp32 probe (logistic regression, 5-fold CV). Wall time {time.perf_counter() - t0:.0f} s.", "",
             "| calibration | config | short: cosine mean (min) | short: agreement | long: cosine mean (min) | long: agreement |",
             "|---|---|---|---|---|---|"]
    default = load_recipe("minilm-l6").calibration
    for name, cal, s, l in rows:
        name += " (the recipe's default)" if cal == default else ""
        lines.append(f"| {name} | `{json.dumps(cal)}` | {s['cosine_mean']:.4f} ({s['cosine_min']:.4f}) | "
                     f"{100 * s['agreement']:.2f}% | {l['cosine_mean']:.4f} ({l['cosine_min']:.4f}) | "
                     f"{100 * l['agreement']:.2f}% |")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section("calibration", "Calibration sets: short vs long texts (int8 dense)", body)


if __name__ == "__main__":
    main()
