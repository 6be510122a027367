"""cocotb testbench of hw/rtl/length_dispatcher.sv (run through sim/runner.py, never collected by pytest).

Stimulus (``PADLESS_TB_IN``): ``{"jobs": [[seq_id, offset, length], ...], "latency": [[cycles per stage]
per job], "ready_delay": int}``. Every stage is modelled here as a Vitis HLS ap_ctrl_hs block: it raises
ap_ready while idle (``ready_delay`` > 0: only after that many idle cycles, a slow-to-accept stage), takes
a job at the rising edge where ap_start and ap_ready are both high, runs ``latency[job][stage]`` cycles
and pulses ap_done in its last cycle.

Result (``PADLESS_TB_OUT``): start edge of every (job, stage) counted from the edge that accepted the
CTRL.START write, the arguments each stage saw, the register values after the interrupt, and the
measured AXI4-Lite cost of one descriptor push.
"""
from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from padless.rtl import dispatcher_registers
from runner import results_out, stimulus_in


@cocotb.test()
async def dispatch_matches_flow_shop(dut):
    """Queue the descriptors, START, let the stage models run, read every counter back."""
    results_out(await dispatch(dut, stimulus_in()))


async def dispatch(dut, stim) -> dict:
    jobs, lat = stim["jobs"], stim["latency"]
    ready_delay = int(stim.get("ready_delay", 0))
    nstages = len(dut.stage_ap_start)
    seq_w = len(dut.stage_seq_id) // nstages
    len_w = len(dut.stage_length) // nstages
    depth = (int(stim.get("depth", 0)) or 16)
    regs = dispatcher_registers(nstages, depth)
    by_seq = {int(j[0]): i for i, j in enumerate(jobs)}

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.ap_rst_n.value = 0
    dut.stage_ap_ready.value = 0
    dut.stage_ap_done.value = 0
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False)
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    ev = {"edge": 0, "start_edge": None, "starts": {}, "args": {}, "irq_edge": None,
          "write_edges": []}
    busy = [False] * nstages
    end_edge = [0] * nstages
    idle_for = [0] * nstages
    ready_drv = [0] * nstages

    async def stages_and_monitor():
        """One coroutine for every stage model and the event log, so all see the same edge count."""
        while True:
            await RisingEdge(dut.ap_clk)
            ev["edge"] += 1
            e = ev["edge"]
            # values sampled here are the ones of the cycle that just ended
            if int(dut.s_axi_control_awvalid.value) and int(dut.s_axi_control_awready.value):
                ev["write_edges"].append(e)
                if int(dut.s_axi_control_awaddr.value) == regs["CTRL"].offset and \
                        int(dut.s_axi_control_wdata.value) & 1:
                    ev["start_edge"] = e
            if int(dut.interrupt.value) and ev["irq_edge"] is None:
                ev["irq_edge"] = e
            start = int(dut.stage_ap_start.value)
            seq = int(dut.stage_seq_id.value)
            off = int(dut.stage_offset.value)
            length = int(dut.stage_length.value)
            ready, done = 0, 0
            for s in range(nstages):
                if busy[s] and e == end_edge[s]:
                    busy[s] = False
                    idle_for[s] = 0
                if not busy[s] and (start >> s) & 1 and ready_drv[s]:
                    sid = (seq >> (s * seq_w)) & ((1 << seq_w) - 1)
                    j = by_seq[sid]
                    ev["starts"][f"{j},{s}"] = e
                    ev["args"][f"{j},{s}"] = [sid, (off >> (32 * s)) & 0xFFFFFFFF,
                                              (length >> (s * len_w)) & ((1 << len_w) - 1)]
                    busy[s] = True
                    end_edge[s] = e + int(lat[j][s])
                if not busy[s]:
                    idle_for[s] += 1
                ready_drv[s] = int(not busy[s] and idle_for[s] > ready_delay)
                ready |= ready_drv[s] << s
                done |= int(busy[s] and e == end_edge[s] - 1) << s
            dut.stage_ap_ready.value = ready
            dut.stage_ap_done.value = done

    cocotb.start_soon(stages_and_monitor())

    reset_values = {}
    for r in regs.values():
        reset_values[r.name] = int(await axil.read_dword(r.offset))
    info = reset_values["INFO"]
    await axil.write_dword(regs["GIE"].offset, 1)
    await axil.write_dword(regs["IER"].offset, 1)
    push_edges = []
    for seq_id, offset, length in jobs:
        n0 = len(ev["write_edges"])
        await axil.write_dword(regs["DESC_SEQ_ID"].offset, int(seq_id))
        await axil.write_dword(regs["DESC_OFFSET"].offset, int(offset))
        await axil.write_dword(regs["DESC_LENGTH"].offset, int(length))
        push_edges.append(ev["write_edges"][n0:])
    qstat_before = int(await axil.read_dword(regs["QUEUE_STATUS"].offset))
    await axil.write_dword(regs["CTRL"].offset, 1)
    ctrl_running = int(await axil.read_dword(regs["CTRL"].offset))
    budget = 200 + sum(sum(int(x) for x in row) for row in lat) * 2
    for _ in range(budget):
        if int(dut.interrupt.value):
            break
        await RisingEdge(dut.ap_clk)
    read = {}
    for r in regs.values():
        if r.name != "CTRL":
            read[r.name] = int(await axil.read_dword(r.offset))
    ctrl_done = int(await axil.read_dword(regs["CTRL"].offset))
    ctrl_after = int(await axil.read_dword(regs["CTRL"].offset))   # DONE is clear-on-read
    await axil.write_dword(regs["ISR"].offset, 1)
    await ClockCycles(dut.ap_clk, 2)
    irq_after_clear = int(dut.interrupt.value)
    t0 = ev["start_edge"]
    starts = [[(ev["starts"].get(f"{j},{s}", -1 - t0) - t0) for s in range(nstages)] for j in range(len(jobs))]
    args = [[ev["args"].get(f"{j},{s}") for s in range(nstages)] for j in range(len(jobs))]
    push_cycles = [(p[-1] - p[0]) / 2 for p in push_edges if len(p) == 3]
    return {"starts": starts, "args": args, "regs": read, "info": info, "reset_values": reset_values, "qstat_before": qstat_before,
            "ctrl_running": ctrl_running, "ctrl_done": ctrl_done, "ctrl_after": ctrl_after,
            "irq_edge": None if ev["irq_edge"] is None else ev["irq_edge"] - t0,
            "irq_after_clear": irq_after_clear, "push_write_interval": push_cycles}
