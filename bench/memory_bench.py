"""The m_axi memory model's effect: simulated throughput of the default minilm-l6 engine with the board's
memory modeled (latency, outstanding requests, bursts, bank share) beside the ideal-memory upper bound,
and the cycle model's error against each.

For each board: compile minilm-l6, plan the engine for the first 1,000 VADER movie snippets (what
``schedule: {dataset: vader-movie, limit: 1000}`` plans, as the README's 12,503 seq/s row was), generate
the HLS kernel, then ``padless profile`` (the timed C-simulation, lengths only) on 1,000 VADER movie
snippets and 300 Reuters articles (truncated to the kernel's maximum), once with the memory model and once
with ``--ideal-memory``. Simulated runs are cached in the work folder (re-runs resume); the modeled column
is recomputed with today's cycle model on every run.

    PYTHONPATH=sw .venv/bin/python bench/memory_bench.py --workdir /tmp/padless-memory-bench
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

MIXES = {"vader-movie": 1000, "reuters": 300}


def log(msg: str) -> None:
    print(f"[memory_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="u280,zcu104")
    ap.add_argument("--workdir", required=True, help="compiled projects and cached simulations")
    ap.add_argument("--fast-quant", action="store_true",
                    help="quant: {rounding: nearest} (a faster compile; the cycles depend on the lengths alone)")
    ap.add_argument("--regenerate", action="store_true", help="rewrite the HLS code of kept projects (and "
                    "drop their cached simulations)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from padless.build import compile_project
    from padless.codegen.hls import generate
    from padless.data.datasets import load_dataset
    from padless.project import load_project, update_manifest
    from padless.runtime.profile import profile
    from padless.schedule.dse import plan
    from padless.schedule.engine import EngineConfig, _replace
    from padless.schedule.memory import ideal_plan
    from padless.schedule.scheduler import compare

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for bname in args.boards.split(","):
        d = work / f"{bname}-planned"
        if not (d / "manifest.json").exists():
            log(f"compiling minilm-l6 for {bname}")
            cfg_over = {"quant": {"rounding": "nearest"}} if args.fast_quant else None
            compile_project("minilm-l6", board=bname, out=d, config=cfg_over)
            p = load_project(d)
            texts = [t for t in load_dataset("vader-movie", limit=1000).texts if t.strip()][:1000]
            lens = [len(i) for i in p.tokenize(texts, truncate=True)]
            update_manifest(d, {"schedule": plan(p.model, bname, p.sparsity, lens)})
        if args.regenerate or not (d / "hls" / "config.h").exists():
            generate(load_project(d), bname)   # today's kernel sources and memory plan
        p = load_project(d)
        cfg = EngineConfig.from_dict(p.manifest["hls"]["engine"])
        for mix, n in MIXES.items():
            texts = [t for t in load_dataset(mix, limit=n).texts if t.strip()][:n]
            lens = [len(i) for i in p.tokenize(texts, truncate=True)]
            for ideal in (False, True):
                saved = work / f"{bname}-{mix}-{'ideal' if ideal else 'memory'}.json"
                if saved.exists() and not args.regenerate:
                    res = json.loads(saved.read_text())
                else:
                    log(f"{bname} {mix} ({len(lens)} sequences), {'ideal memory' if ideal else 'memory model'}")
                    t = time.perf_counter()
                    res = profile(p, lengths=lens, baselines=False, ideal_memory=ideal)
                    res = {k: v for k, v in res.items() if not k.startswith("_")}
                    res["wall_s"] = time.perf_counter() - t
                    saved.write_text(json.dumps(res, default=float))
                c = _replace(cfg, memory=ideal_plan(cfg.memory)) if ideal else cfg
                model = compare(c, lens, res["peak_int8_macs"])
                err = model["throughput_seq_s"] / res["throughput_seq_s"] - 1
                rows.append(dict(board=bname, mix=mix, n=len(lens), ideal=ideal, sim=res["throughput_seq_s"],
                                 model=model["throughput_seq_s"], err=err, clock=res["clock_MHz"],
                                 mem=res.get("memory", {}), eff=res["efficiency_vs_peak"], wall=res.get("wall_s")))
                log(f"  {bname} {mix} {'ideal' if ideal else 'memory'}: simulated {res['throughput_seq_s']:,.0f} "
                    f"seq/s, modeled {model['throughput_seq_s']:,.0f}, error {err:+.1%}")
    print("| board | clock | mix | sequences | memory | simulated seq/s | eff. vs DSP peak | modeled seq/s | "
          "model error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mem = "ideal" if r["ideal"] else f"{r['mem'].get('kind')} {r['mem'].get('latency_ns')} ns"
        print(f"| {r['board']} | {r['clock']:.0f} MHz | {r['mix']} | {r['n']:,} | {mem} | {r['sim']:,.0f} | "
              f"{r['eff']:.1%} | {r['model']:,.0f} | {r['err']:+.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
