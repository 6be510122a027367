"""Token reduction in the kernel (issue 26, item 1): simulated throughput of two compiled projects side by side
(dense and token reduction, each planned for its mix by the DSE) on real length mixes, and fidelity against fp32.

    python bench/tokens_engine_bench.py DENSE_DIR TR_DIR [--movie 1000] [--reuters 300] [--eval 300]

Runs `padless profile DIR --dataset NAME --limit N --json` (the cycle-annotated C-simulation of the generated
kernel, real sentences) for both projects on VADER movie snippets and Reuters articles, and
`padless eval DIR --dataset vader-movie --limit N --json` (golden backend vs fp32) for each; prints a markdown
table (docs/benchmarks.md, "Token reduction in the kernel").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _cli(*args: str) -> dict:
    env = dict(os.environ)
    t = time.time()
    out = subprocess.run([sys.executable, "-m", "padless.cli", *args, "--json"], check=True, capture_output=True,
                         text=True, env=env).stdout
    res = json.loads(out)
    res["_wall_s"] = time.time() - t
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dense")
    ap.add_argument("tokens")
    ap.add_argument("--movie", type=int, default=1000)
    ap.add_argument("--reuters", type=int, default=300)
    ap.add_argument("--eval", type=int, default=300, help="vader-movie examples for padless eval (0: skip)")
    a = ap.parse_args()
    rows = []
    for ds, n in (("vader-movie", a.movie), ("reuters", a.reuters)):
        d = _cli("profile", a.dense, "--dataset", ds, "--limit", str(n), "--truncate")
        t = _cli("profile", a.tokens, "--dataset", ds, "--limit", str(n), "--truncate")
        rows.append((ds, n, d, t))
    print("| mix | dense seq/s | tr07 seq/s | speed-up | dense model error | tr07 model error | profile wall s (dense, tr07) |")
    print("|---|---|---|---|---|---|---|")
    for ds, n, d, t in rows:
        print(f"| {ds} ({n}) | {d['throughput_seq_s']:,.0f} | {t['throughput_seq_s']:,.0f} | "
              f"{t['throughput_seq_s'] / d['throughput_seq_s']:.2f}x | {d['model_error']:+.2%} | {t['model_error']:+.2%} | "
              f"{d['_wall_s']:.0f}, {t['_wall_s']:.0f} |")
    if a.eval:
        print()
        print(f"| project (golden backend, vader-movie {a.eval}) | decision agreement vs fp32 | cosine mean / min vs fp32 | accuracy (fp32) |")
        print("|---|---|---|---|")
        for name, p in (("dense", a.dense), ("tr07", a.tokens)):
            e = _cli("eval", p, "--dataset", "vader-movie", "--limit", str(a.eval))
            print(f"| {name} | {e['agreement']:.1%} | {e['cosine_mean']:.4f} / {e['cosine_min']:.4f} | "
                  f"{e['accuracy']:.1%} ({e['accuracy_fp32']:.1%}) |")


if __name__ == "__main__":
    main()
