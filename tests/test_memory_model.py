"""The m_axi memory model (padless.schedule.memory, and the timed csim's model in sim_rt.h) against
transfers computed by hand: a burst of N beats with latency L and O requests in flight, single-beat
requests limited by the outstanding count, two ports sharing a bank, writes waiting for their responses;
the C++ model gives the same cycles as the Python one; the board plans."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from padless.boards import load_board
from padless.errors import InputError
from padless.schedule.memory import (PortModel, ideal_plan, memory_plan, read_burst, share_cpb, single_reads,
                                     write_burst)

REPO = Path(__file__).resolve().parents[1]

DRIVER = r"""
#include <cstdio>
#include <cstdlib>
#include "padless/sim_rt.h"
using namespace padless::sim;
// mode n L O BL cpb ii: one pipelined loop (II ii, depth 1) over n beats of one port from cycle 0
int main(int argc, char **argv) {
    if (argc != 8) return 2;
    cfg.timed = 1;
    cfg.threaded = 0;
    begin_run();
    const char mode = argv[1][0];
    const long n = atol(argv[2]);
    maxi_params P;
    P.latency = atol(argv[3]);
    P.outstanding = atol(argv[4]);
    P.burst = atol(argv[5]);
    P.cpb = atof(argv[6]);
    const long ii = atol(argv[7]);
    static uint64_t mem[1 << 16];
    maxi_port<uint64_t> port(mem, "p", P);
    long last = -1;
    {
        loop lp("l", ii, 1);
        if (mode != 's') port.burst(100, n);
        for (long i = 0; i < n; i++) {
            lp.at(i);
            if (mode == 'w') port[100 + i] = (uint64_t)i;
            else (void)(uint64_t)port[100 + i];
            last = now();
        }
        lp.end(n);
        if (mode == 'w') port.wait();
    }
    printf("%ld %ld\n", last, (long)me().clk);
    return 0;
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """The C-simulation runtime's m_axi model (sim_rt.h), built with g++ around one loop."""
    d = tmp_path_factory.mktemp("maxi")
    (d / "drv.cpp").write_text(DRIVER)
    exe = d / "drv"
    subprocess.run(["g++", "-std=c++14", "-O1", "-I", str(REPO / "hw" / "hls" / "include"), str(d / "drv.cpp"),
                    "-o", str(exe), "-lpthread"], check=True, capture_output=True, text=True)

    def run(mode, n, p: PortModel, ii=1):
        out = subprocess.run([str(exe), mode, str(n), str(p.latency), str(p.outstanding), str(p.burst), repr(p.cpb),
                              str(ii)], check=True, capture_output=True, text=True).stdout.split()
        return int(out[0]), int(out[1])
    return run


def test_burst_latency_outstanding_by_hand(driver):
    # L = 10, O = 2, BL = 4, one beat a cycle. Request 0 issues at 0, beats at 10..13 (taken at 10..13);
    # request 1 at 1, beats after request 0's: 14..17; request 2 waits for request 0's slot (freed at 14):
    # issues at 14, beats at 24..27; request 3 issues at 18 (request 1's slot), beats at 28..31.
    p = PortModel(latency=10, outstanding=2, burst=4, cpb=1.0)
    assert read_burst(8, p) == 17
    assert read_burst(16, p) == 31
    assert driver("b", 16, p) == (31, 32)          # the loop ends depth (1) after its last issue
    # enough requests in flight: latency once, then a beat a cycle
    wide = PortModel(latency=10, outstanding=4, burst=4, cpb=1.0)
    assert read_burst(16, wide) == 10 + 15
    assert driver("b", 16, wide)[0] == 25
    # the ideal memory: a beat every cycle from the start
    assert read_burst(16, PortModel()) == 15
    assert driver("b", 16, PortModel())[0] == 15


def test_single_beat_requests_are_limited_by_outstanding(driver):
    # L = 20, O = 4: requests 0..3 at 0..3 (data at 20..23), request 4 waits for request 0's data (20),
    # 8 for request 4's (40): request 11 issues at 43 -- 4 beats every 20 cycles, and the pipeline is L deeper
    p = PortModel(latency=20, outstanding=4, burst=64, cpb=1.0)
    assert single_reads(12, p) == (43, 20)
    assert driver("s", 12, p) == (43, 43 + 1 + 20)
    # bursts on the same port: one request, latency once
    assert read_burst(12, p) == 20 + 11


def test_two_ports_sharing_a_bank_halve_the_bandwidth(driver):
    # a bank of 64 bytes a cycle: one 64-byte port alone moves a beat a cycle, two ports half a beat each
    assert share_cpb(64, 64.0, 1) == 1.0
    assert share_cpb(64, 64.0, 2) == 2.0
    assert share_cpb(16, 64.0, 2) == 1.0             # a narrow port is not bank-bound
    alone = PortModel(latency=10, outstanding=8, burst=16, cpb=share_cpb(64, 64.0, 1))
    shared = PortModel(latency=10, outstanding=8, burst=16, cpb=share_cpb(64, 64.0, 2))
    n = 256
    assert read_burst(n, alone) == 10 + (n - 1)
    assert read_burst(n, shared) == 10 + 2 * (n - 1)
    assert driver("b", n, shared)[0] == 10 + 2 * (n - 1)
    with pytest.raises(InputError):
        share_cpb(64, 0.0, 1)


def test_write_burst_waits_for_responses(driver):
    # BL = 4, L = 10, O = 1: beats 0..3 at 0..3, response at 13; request 1 waits for it: beats at 13..16,
    # response at 26; the loop's exit waits for it
    p = PortModel(latency=10, outstanding=1, burst=4, cpb=1.0)
    assert write_burst(8, p) == (16, 26)
    assert driver("w", 8, p) == (16, 26)


@pytest.mark.parametrize("mode,n,p,ii", [
    ("b", 300, PortModel(latency=33, outstanding=2, burst=64, cpb=4.355388), 1),
    ("b", 97, PortModel(latency=40, outstanding=3, burst=16, cpb=1.7), 4),
    ("s", 50, PortModel(latency=33, outstanding=4, burst=1, cpb=1.45), 1),
    ("w", 130, PortModel(latency=33, outstanding=2, burst=64, cpb=4.355388), 1),
])
def test_cpp_model_equals_python_model(driver, mode, n, p, ii):
    if mode == "b":
        assert driver(mode, n, p, ii)[0] == read_burst(n, p, ii=ii)
    elif mode == "s":
        assert driver(mode, n, p, ii)[0] == single_reads(n, p, ii=ii)[0]
    else:
        last, resp = write_burst(n, p, ii=ii)
        assert driver(mode, n, p, ii) == (last, max(last + 1, resp))


def test_board_plans():
    u280 = memory_plan(load_board("u280"), 300.0, 64)
    ports = u280["ports"]
    assert u280["kind"] == "HBM2" and ports["gmem0"]["latency"] == 33     # 106.7 ns at 300 MHz
    # the activation buffer's three ports share one pseudo channel; desc and weights have their own
    assert ports["gmem0"]["bank"] == ports["gmem1"]["bank"] == ports["gmem2"]["bank"] == "HBM[0]"
    assert ports["gmem0"]["sharing"] == 3 and ports["gmem4"]["sharing"] == 1
    assert ports["gmem0"]["cpb"] == pytest.approx(3 * ports["gmem4"]["cpb"], rel=1e-4)
    # a burst never crosses a 4 KB page; enough requests in flight to cover the latency
    assert ports["gmem0"]["burst"] == 64 and ports["gmem3"]["burst"] == 256
    for p in ports.values():
        assert p["outstanding"] * p["burst"] * p["cpb"] >= p["latency"]
    z = memory_plan(load_board("zcu104"), 200.0, 16)
    assert z["kind"] == "PS_DDR4" and z["ports"]["gmem0"]["burst"] == 256 and z["ports"]["gmem0"]["latency"] == 40
    ideal = ideal_plan(u280)
    assert ideal["ideal"] and all(p["latency"] == 0 and p["cpb"] == 1.0 for p in ideal["ports"].values())
    with pytest.raises(InputError):
        memory_plan(load_board("u280"), 0, 64)


def test_board_file_memory_facts_override_the_defaults():
    import yaml
    from padless.boards import _parse
    from padless.errors import PadlessError
    src = (REPO / "sw" / "padless" / "boards" / "u280.yaml").read_text()
    board = _parse(yaml.safe_load(src.replace("capacity_GB: 8}", "capacity_GB: 8, latency_ns: 200.0, efficiency: 0.5}")),
                   "test")
    plan = memory_plan(board, 300.0, 64)
    assert plan["latency_ns"] == 200.0 and plan["ports"]["gmem0"]["latency"] == 60
    assert plan["ports"]["gmem4"]["cpb"] == pytest.approx(64 / (460e9 * 0.5 / 32 / 300e6), rel=1e-4)
    with pytest.raises(PadlessError, match="efficiency"):
        _parse(yaml.safe_load(src.replace("capacity_GB: 8}", "capacity_GB: 8, efficiency: 1.5}")), "test")


@pytest.mark.slow
def test_timed_csim_with_the_memory_model_agrees_with_the_cycle_model(tiny_project, tmp_path):
    """A streamed engine (every layer's weights over m_axi before its region) on u280: the memory model
    costs cycles the ideal memory does not, every mover's access is part of a declared burst, the cycle
    model follows the timed csim within 10% with and without the memory model, and the fast and the
    synthesizable form run the same cycles."""
    import numpy as np
    from crosscheck import streamed_copy

    from padless.data.datasets import load_dataset
    from padless.runtime.backends.csim import CsimBackend
    from padless.runtime.profile import profile
    p = streamed_copy(tiny_project, tmp_path / "streamed", "u280")
    texts = load_dataset("vader-movie", limit=30).texts + load_dataset("reuters", limit=6).texts
    lens = [len(i) for i in p.tokenize(texts, truncate=True)]
    real = profile(p, lengths=lens, baselines=False)
    ideal = profile(p, lengths=lens, baselines=False, ideal_memory=True)
    assert real["memory"]["kind"] == "HBM2" and ideal["memory"]["ideal"]
    assert real["cycles"] > ideal["cycles"]
    assert abs(real["model_error"]) <= 0.10, real["model_error"]
    assert abs(ideal["model_error"]) <= 0.10, ideal["model_error"]
    # every m_axi access of the movers and the weight loader is part of a burst (no single-beat request)
    b = CsimBackend(p, sim=dict(timed=True, exact_depth=True, compute=False))
    try:
        b.run(np.zeros((sum(lens[:8]), p.model["hidden_size"]), np.int8),
              np.concatenate([[0], np.cumsum(lens[:8])]).astype(np.int64))
        ports = {m["port"]: m for m in b.reports[-1]["maxi"]}
    finally:
        b.close()
    assert {"GMEM0", "GMEM1", "GMEM2", "GMEM3", "GMEM4"} <= set(ports)
    assert all(m["single"] == 0 and m["requests"] >= 1 for m in ports.values())
    # the synthesizable form's loops (weight loader included) run the same cycles through the memory model
    lens6 = [5, 17, 40, 9, 23, 2]
    x = np.random.default_rng(0).integers(-127, 128, (sum(lens6), p.model["hidden_size"])).astype(np.int8)
    off = np.concatenate([[0], np.cumsum(lens6)]).astype(np.int64)
    got = {}
    for form in ("fast", "synth"):
        b = CsimBackend(p, form=form, sim=dict(timed=True, exact_depth=True))
        try:
            got[form] = (b.run(x, off), b.reports[-1]["cycles"])
        finally:
            b.close()
    assert got["fast"][1] == got["synth"][1]
    np.testing.assert_array_equal(got["fast"][0], got["synth"][0])


def test_profile_cli_reports_the_memory_model(tiny_project, capsys):
    import json

    from padless.cli import main as cli_main
    outs = {}
    for flag in ([], ["--ideal-memory"]):
        rc = cli_main(["profile", str(tiny_project), "--lengths", "5,17,40,9", "--json"] + flag)
        assert rc in (0, None)
        outs[bool(flag)] = json.loads(capsys.readouterr().out)
    real, ideal = outs[False], outs[True]
    assert real["memory"]["kind"] == "HBM2" and not real["memory"]["ideal"] and "m_axi modeled" in real["label"]
    assert ideal["memory"]["ideal"] and "ideal memory" in ideal["label"]
    assert set(real["memory"]["ports"]) == {"gmem0", "gmem1", "gmem2", "gmem3", "gmem4"}
    assert real["cycles"] > ideal["cycles"]            # four short sequences: the latency shows
    assert abs(real["model_error"]) <= 0.10 and abs(ideal["model_error"]) <= 0.10
