"""Resources and cycle counts of the RTL blocks (hw/rtl), written to docs/benchmarks.md.

* Resources: yosys ``synth_xilinx -family xcup`` (UltraScale+, no timing) of the default parameter sets
  (padless.rtl.DEFAULT_PARAMS): LUT, FF, DSP, BRAM (and LUT-RAM, CARRY) per block and per sub-module.
  yosys comes from Debian (``apt-get install -y --no-install-recommends yosys``); without it the
  resource table says so and the cycle figures are still measured.
* Cycles: Verilator + cocotb simulation of the same builds (sim/runner.py), no back-pressure:
  cycles per query row of the selection engine (back-to-back rows, k = 16) at real sentence lengths,
  and the dispatcher's per-dispatch overheads (descriptor push, START to first stage start, handoff
  between stages, last done to interrupt).

    python bench/rtl_bench.py [--no-yosys] [--install-yosys]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sim"))
sys.path.insert(0, str(ROOT / "bench"))
import runner  # noqa: E402
from _report import write_section  # noqa: E402

from padless.rtl import (DEFAULT_PARAMS, DISPATCH_HANDOFF_CYCLES, DISPATCH_START_OFFSET,  # noqa: E402
                         synth_resources)
from padless.schedule.scheduler import flow_shop_starts  # noqa: E402

#: Key counts per row: MiniLM token lengths of real text (TOOLCHAIN.md: VADER movie p50 26 / max 79,
#: fortunes p50 27 / p90 93 / p99 262) and the engine's maximum.
ROW_LENGTHS = (27, 93, 262, 512)
ROWS_PER_LENGTH = 6
TOPK = 16


def ensure_yosys(install: bool) -> str | None:
    """Path of yosys, installing the Debian package first when asked and allowed; None if missing."""
    exe = shutil.which("yosys")
    if exe is None and install:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print("yosys missing: apt-get install -y --no-install-recommends yosys", flush=True)
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=False)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "yosys"], check=False)
        exe = shutil.which("yosys")
    if exe is None:
        print("yosys is NOT installed: resource counts skipped. Install it with "
              "`apt-get update && apt-get install -y --no-install-recommends yosys` "
              "or run this script with --install-yosys.", flush=True)
    return exe


def selection_cycles(lanes: int, work: Path) -> list[dict]:
    params = dict(DEFAULT_PARAMS["selection_engine"], LANES=lanes)
    bdir = work / f"sel_l{lanes}"
    sim = runner.build("selection_engine", params, bdir)
    rng = np.random.default_rng(0)
    out = []
    for n in ROW_LENGTHS:
        rows = [{"q": rng.integers(-7, 8, size=params["HEAD_DIM"]).tolist(),
                 "keys": rng.integers(-7, 8, size=(n, params["HEAD_DIM"])).tolist(), "k": TOPK}
                for _ in range(ROWS_PER_LENGTH)]
        res = runner.run(sim, "selection_engine", "tb_selection_engine", {"rows": rows, "backpressure": False}, bdir)
        one = runner.run(sim, "selection_engine", "tb_selection_engine", {"rows": rows[:1], "backpressure": False}, bdir)
        span = res["last_key_cycle"] - res["first_key_cycle"] + 1
        out.append({"lanes": lanes, "n": n, "rows": ROWS_PER_LENGTH,
                    "cycles_per_row": span / ROWS_PER_LENGTH,
                    "ideal": -(-n // lanes),
                    "stalls": res["key_stall_cycles"],
                    "tail_latency": one["last_out_cycle"] - one["last_key_cycle"],
                    "first_index_latency": one["last_out_cycle"] - one["last_key_cycle"] - (min(TOPK, n) - 1)})
    return out


def dispatcher_cycles(work: Path) -> dict:
    params = DEFAULT_PARAMS["length_dispatcher"]
    bdir = work / "disp"
    sim = runner.build("length_dispatcher", params, bdir)
    lengths = np.array([27, 93, 8, 262, 41, 15, 130, 60, 22, 5, 77, 33])
    lat = np.maximum(1, lengths[:, None] * np.array([2, 1, 1, 2, 4, 4])[None, :] // 2)
    jobs = [[j, int(o), int(n)] for j, (o, n) in
            enumerate(zip(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths))]
    res = runner.run(sim, "length_dispatcher", "tb_length_dispatcher",
                     {"jobs": jobs, "latency": lat.tolist(), "depth": params["DEPTH"]}, bdir)
    fs = flow_shop_starts(lat, handoff_cycles=DISPATCH_HANDOFF_CYCLES)
    exact = bool(np.array_equal(np.asarray(res["starts"]), fs + DISPATCH_START_OFFSET))
    makespan = int((fs + lat).max())
    return {"jobs": len(jobs), "exact": exact, "makespan": makespan,
            "run_cycles": res["regs"]["RUN_CYCLES"],
            "push_cycles": 3 * float(np.mean(res["push_write_interval"])),
            "start_to_first": int(np.asarray(res["starts"])[0, 0]),
            "irq_latency": res["irq_edge"] - (makespan + DISPATCH_START_OFFSET),
            "busy": [res["regs"][f"STAGE{s}_BUSY"] for s in range(params["NUM_STAGES"])],
            "lat_sum": lat.sum(0).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-yosys", action="store_true", help="skip the yosys resource counts")
    ap.add_argument("--install-yosys", action="store_true", help="apt-get install yosys when missing")
    args = ap.parse_args(argv)
    yosys = None if args.no_yosys else ensure_yosys(args.install_yosys)
    t0 = time.time()
    work = Path(tempfile.mkdtemp(prefix="rtl_bench_"))
    synth = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {b: pool.submit(synth_resources, b) for b in DEFAULT_PARAMS} if yosys else {}
        sel = selection_cycles(1, work) + selection_cycles(4, work)
        disp = dispatcher_cycles(work)
        for b, fut in jobs.items():
            synth[b] = fut.result()
    elapsed = time.time() - t0

    lines = []
    p = DEFAULT_PARAMS
    lines.append("### Resources (yosys 0.23 `synth_xilinx -family xcup`, hierarchy kept; no timing)\n")
    if not synth:
        lines.append("yosys was not installed, so no resource counts "
                     "(`apt-get install -y --no-install-recommends yosys`).\n")
    else:
        lines.append("| block / module | parameters | LUT | FF | DSP | BRAM36 | LUT-RAM | CARRY |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for b, (tot, mods) in synth.items():
            ps = ", ".join(f"{k}={v}" for k, v in p[b].items())
            lines.append(f"| **{b}** (total) | {ps} | {tot.lut} | {tot.ff} | {tot.dsp} | {tot.bram:g} | "
                         f"{tot.lutram} | {tot.carry} |")
            if len(mods) > 1:
                for m, r in mods.items():
                    lines.append(f"| &nbsp;&nbsp;{m} (one instance) | | {r.lut} | {r.ff} | {r.dsp} | "
                                 f"{r.bram:g} | {r.lutram} | {r.carry} |")
        if "selection_engine" in synth:
            mods = synth["selection_engine"][1]
            hd, k = p["selection_engine"]["HEAD_DIM"], p["selection_engine"]["K"]
            per_mult = mods["selection_score"].lut / hd if "selection_score" in mods else float("nan")
            per_entry = mods["selection_sorter"].lut / k if "selection_sorter" in mods else float("nan")
            lines.append("")
            lines.append(f"Measured inputs of the engine's LUT estimate (`padless.schedule.engine.lut_estimate`): "
                         f"LUT per 4b x 4b multiplier with its adder-tree share = {per_mult:.1f} (the estimate "
                         f"uses 30 per selection lane and head-dim element); LUT per top-k sorter entry = "
                         f"{per_entry:.1f} (43 per slot and lane); the dispatcher = "
                         f"{synth['length_dispatcher'][0].lut if 'length_dispatcher' in synth else 'n/a'} LUT "
                         f"(inside the 20,000 fixed).")
    lines.append("\n### Selection engine cycles (Verilator, no back-pressure, k = 16, back-to-back rows)\n")
    lines.append("| LANES | keys per row n | cycles per row | ideal ceil(n / LANES) | key-stream stalls | "
                 "last key -> first index | last key -> last index |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for r in sel:
        lines.append(f"| {r['lanes']} | {r['n']} | {r['cycles_per_row']:.2f} | {r['ideal']} | {r['stalls']} | "
                     f"{r['first_index_latency']} | {r['tail_latency']} |")
    lines.append("\nII = 1: one key beat (LANES keys) per cycle; the `last key -> first index` column is the RTL "
                 "counterpart of the HLS selection loop's declared depth `D_SEL` (10).")
    lines.append(f"\n### Length dispatcher cycles ({p['length_dispatcher']['NUM_STAGES']} stages, "
                 f"{disp['jobs']} descriptors of real sentence lengths)\n")
    lines.append("| figure | cycles |")
    lines.append("|---|---:|")
    lines.append(f"| descriptor push (3 AXI4-Lite writes, cocotbext-axi master) | {disp['push_cycles']:.1f} |")
    lines.append(f"| START write accepted -> first stage start | {disp['start_to_first']} |")
    lines.append(f"| stage ap_done -> next ap_start handshake (handoff per dispatch) | {DISPATCH_HANDOFF_CYCLES} |")
    lines.append(f"| last ap_done -> interrupt | {disp['irq_latency']} |")
    lines.append(f"| flow-shop makespan / RUN_CYCLES | {disp['makespan']} / {disp['run_cycles']} |")
    lines.append(f"\nStart cycle of every (sequence, stage) equals `flow_shop_starts(..., handoff_cycles=1)`: "
                 f"{'yes' if disp['exact'] else 'NO'}; busy counters = summed latencies: "
                 f"{'yes' if disp['busy'] == disp['lat_sum'] else 'NO'}.")
    lines.append(f"\nWall time of this benchmark: {elapsed:.0f} s (builds included).")
    body = "\n".join(lines)
    print(body)
    write_section("rtl", "RTL blocks: resources and cycles", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
