"""The RTL length dispatcher (hw/rtl/length_dispatcher.sv) against the Python scheduler, cycle for cycle.

Stage models in sim/tb_length_dispatcher.py take a latency per (sequence, stage); the start edge of every
(sequence, stage) must equal ``flow_shop_starts(latency, handoff_cycles=DISPATCH_HANDOFF_CYCLES)`` (plus
the documented START offset), and the busy / idle counters must equal the modelled ones. The register
map in docs/registers.md must equal padless.rtl's.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sim"))
import runner  # noqa: E402  (sim/runner.py)

from padless.rtl import (DISPATCH_HANDOFF_CYCLES, DISPATCH_RUN_EXTRA_CYCLES,  # noqa: E402
                         DISPATCH_START_OFFSET, dispatcher_registers)
from padless.schedule.scheduler import flow_shop_starts  # noqa: E402

STAGES, DEPTH = 6, 16


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory):
    bdir = tmp_path_factory.mktemp("disp")
    sim = runner.build("length_dispatcher", {"NUM_STAGES": STAGES, "DEPTH": DEPTH}, bdir)
    return sim, bdir


def dispatch(design, jobs, latency, ready_delay: int = 0) -> dict:
    sim, bdir = design
    stim = {"jobs": [list(map(int, j)) for j in jobs], "latency": np.asarray(latency).tolist(),
            "ready_delay": ready_delay, "depth": DEPTH}
    return runner.run(sim, "length_dispatcher", "tb_length_dispatcher", stim, bdir)


def check_against_flow_shop(out, jobs, lat):
    lat = np.asarray(lat, dtype=np.int64)
    want = flow_shop_starts(lat, handoff_cycles=DISPATCH_HANDOFF_CYCLES) + DISPATCH_START_OFFSET
    got = np.asarray(out["starts"])
    assert np.array_equal(got, want), f"start edges differ:\nRTL\n{got}\nflow_shop_starts\n{want}"
    for j, (seq, off, length) in enumerate(jobs):
        for s in range(lat.shape[1]):
            assert out["args"][j][s] == [seq, off, length], f"job {j} stage {s} saw {out['args'][j][s]}"
    regs = out["regs"]
    makespan = int((want - DISPATCH_START_OFFSET + lat).max())
    assert regs["RUN_CYCLES"] == makespan + DISPATCH_RUN_EXTRA_CYCLES
    for s in range(lat.shape[1]):
        assert regs[f"STAGE{s}_BUSY"] == int(lat[:, s].sum()), f"stage {s} busy"
        assert regs[f"STAGE{s}_IDLE"] == regs["RUN_CYCLES"] - int(lat[:, s].sum()), f"stage {s} idle"
    assert regs["JOBS_DONE"] == len(jobs)
    assert regs["HANDOFF"] == DISPATCH_HANDOFF_CYCLES
    assert regs["ISR"] == 1 and out["irq_edge"] is not None
    assert out["ctrl_running"] & 1 == 1                 # CTRL.START reads 1 while running
    assert out["ctrl_done"] & 0b110 == 0b110            # DONE and IDLE after the run
    assert out["ctrl_after"] & 0b10 == 0                # DONE is clear on read
    assert out["irq_after_clear"] == 0                  # ISR write-1-to-clear drops the interrupt


def test_random_latencies_match_flow_shop(dispatcher):
    rng = np.random.default_rng(11)
    n = 12
    lat = rng.integers(1, 40, size=(n, STAGES))
    lat[0, :] = 1                                         # one-cycle stages too
    jobs = [(100 + j, 37 * j, int(rng.integers(1, 512))) for j in range(n)]
    out = dispatch(dispatcher, jobs, lat)
    check_against_flow_shop(out, jobs, lat)
    assert out["qstat_before"] & 0xFFFF == n


def test_length_driven_latencies_match_flow_shop(dispatcher):
    """Latencies that grow with the sequence length as the layer stages do (linear MVUs, quadratic
    attention), for a long-tailed mix of lengths in a host-chosen (not sorted) order."""
    lengths = np.array([27, 93, 8, 262, 41, 15, 130, 60, 22, 5, 77, 33, 16, 9, 200, 48])
    per_token = np.array([4, 1, 0, 4, 8, 8]) / 4.0
    quad = np.array([0, 0, 1, 0, 0, 0]) / 64.0
    lat = np.maximum(1, np.round(lengths[:, None] * per_token + lengths[:, None] ** 2 * quad + 3)).astype(int)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    jobs = [(j, int(offsets[j]), int(lengths[j])) for j in range(len(lengths))]
    out = dispatch(dispatcher, jobs, lat)
    check_against_flow_shop(out, jobs, lat)


def test_full_queue_drops_and_flags_overflow(dispatcher):
    """DEPTH + 1 pushes: the last is dropped with QUEUE_STATUS.FULL and OVERFLOW; the rest run."""
    n = DEPTH + 1
    lat = np.full((n, STAGES), 2)
    jobs = [(j, j, 1) for j in range(n)]
    out = dispatch(dispatcher, jobs, lat)
    q = out["qstat_before"]
    assert q & 0xFFFF == DEPTH and (q >> 16) & 1 == 1 and (q >> 31) & 1 == 1
    assert all(s < 0 for s in out["starts"][-1])         # the dropped descriptor never ran
    check_against_flow_shop({**out, "starts": out["starts"][:DEPTH], "args": out["args"][:DEPTH]},
                            jobs[:DEPTH], lat[:DEPTH])
    assert out["regs"]["QUEUE_STATUS"] >> 31 == 0        # START cleared OVERFLOW


def test_reset_values_and_info(dispatcher):
    out = dispatch(dispatcher, [(1, 0, 4)], [[1] * STAGES])
    regs = dispatcher_registers(STAGES, DEPTH)
    assert out["info"] == regs["INFO"].reset
    assert out["reset_values"] == {name: r.reset for name, r in regs.items() if r.name != "CTRL"} | \
        {"CTRL": regs["CTRL"].reset}


def test_registers_doc_matches_padless_rtl():
    """docs/registers.md lists exactly the registers of padless.rtl (name, offset, access, reset)."""
    text = (ROOT / "docs" / "registers.md").read_text()
    doc = {}
    for m in re.finditer(r"^\|\s*`?0x([0-9A-Fa-f]+)`?\s*\|\s*`?(\w+)`?\s*\|\s*(\w+)\s*\|\s*`?0x([0-9A-Fa-f]+)`?",
                         text, re.M):
        doc[m.group(2)] = (int(m.group(1), 16), m.group(3), int(m.group(4), 16))
    regs = dispatcher_registers(STAGES, DEPTH)
    want = {n: (r.offset, r.access, r.reset) for n, r in regs.items()}
    assert doc == want


def test_slow_ap_ready_holds_start_and_keeps_order(dispatcher):
    """Stages that raise ap_ready only after 3 idle cycles: ap_start is held until the handshake, every
    stage still runs the jobs in descriptor order with the right arguments, and the busy counters
    still equal the summed latencies. Start edges follow the flow shop with the extra accept delay."""
    rng = np.random.default_rng(12)
    n, delay = 9, 3
    lat = rng.integers(1, 25, size=(n, STAGES))
    jobs = [(500 + j, 11 * j, int(rng.integers(1, 300))) for j in range(n)]
    out = dispatch(dispatcher, jobs, lat, ready_delay=delay)
    got = np.asarray(out["starts"])
    want = np.zeros_like(got)
    free = np.full(STAGES, -10**9)             # finish of the previous job per stage
    for j in range(n):
        ready = 0                               # finish of job j at the previous stage
        for s in range(STAGES):
            t = max(ready + 1, free[s] + 1 + delay, 1 + DISPATCH_START_OFFSET if j == 0 and s == 0 else 0)
            want[j, s] = t
            ready = free[s] = t + lat[j, s]
    assert np.array_equal(got, want), f"RTL\n{got}\nmodel\n{want}"
    for j, job in enumerate(jobs):
        assert all(out["args"][j][s] == list(job) for s in range(STAGES))
    for s in range(STAGES):
        assert out["regs"][f"STAGE{s}_BUSY"] == int(lat[:, s].sum())
    assert out["regs"]["JOBS_DONE"] == n
