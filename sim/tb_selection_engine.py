"""cocotb testbench of hw/rtl/selection_engine.sv (run through sim/runner.py, never collected by pytest).

Stimulus (``PADLESS_TB_IN``): ``{"head_dim", "lanes", "backpressure": bool, "rows": [{"q": [d ints],
"keys": [[d ints], ...], "k": int}, ...]}`` with 4-bit values in [-7, 7].
Result (``PADLESS_TB_OUT``): ``{"kept": [[indices...] per row], "key_beats", "first_key_cycle",
"last_key_cycle", "last_out_cycle", "key_stall_cycles", "cycles"}`` (cycles = rising edges).
"""
from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from runner import results_out, stimulus_in


def pack4(values) -> bytes:
    """Signed 4-bit values (even count) -> bytes, element 2i in the low nibble of byte i."""
    v = [int(x) & 0xF for x in values]
    return bytes(v[i] | (v[i + 1] << 4) for i in range(0, len(v), 2))


def pause_pattern(seed: int, p: float):
    """Endless random pause generator (True = stall this cycle) for cocotbext-axi."""
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


@cocotb.test()
async def selection_matches_golden(dut):
    """Stream every row of the stimulus through the engine and hand back what came out."""
    results_out(await stream_rows(dut, stimulus_in()))


async def stream_rows(dut, stim) -> dict:
    """Drive the query and key streams, collect the kept indices and cycle counts (see module doc)."""
    rows = stim["rows"]
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.ap_rst_n.value = 0
    qsrc = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_query"), dut.ap_clk, dut.ap_rst_n,
                           reset_active_level=False)
    ksrc = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_key"), dut.ap_clk, dut.ap_rst_n,
                           reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_idx"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False)
    if stim.get("backpressure"):
        qsrc.set_pause_generator(pause_pattern(1, 0.3))
        ksrc.set_pause_generator(pause_pattern(2, 0.3))
        sink.set_pause_generator(pause_pattern(3, 0.4))
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    stats = {"cycle": 0, "first_key": None, "last_key": None, "last_out": None, "stall": 0, "beats": 0}

    async def monitor():
        while True:
            await RisingEdge(dut.ap_clk)
            stats["cycle"] += 1
            kv, kr = int(dut.s_axis_key_tvalid.value), int(dut.s_axis_key_tready.value)
            if kv and kr:
                stats["beats"] += 1
                if stats["first_key"] is None:
                    stats["first_key"] = stats["cycle"]
                stats["last_key"] = stats["cycle"]
            elif kv and stats["first_key"] is not None:
                stats["stall"] += 1
            if int(dut.m_axis_idx_tvalid.value) and int(dut.m_axis_idx_tready.value):
                stats["last_out"] = stats["cycle"]

    cocotb.start_soon(monitor())
    for row in rows:
        await qsrc.send(AxiStreamFrame(pack4(row["q"]), tuser=int(row["k"])))
        await ksrc.send(AxiStreamFrame(b"".join(pack4(key) for key in row["keys"])))
    kept = []
    nb = len(dut.m_axis_idx_tdata) // 8   # bytes per index beat
    for _ in rows:
        frame = await sink.recv()
        data = bytes(frame.tdata)   # no TKEEP: every byte of every beat, little endian
        kept.append([int.from_bytes(data[i:i + nb], "little") for i in range(0, len(data), nb)])
    await ClockCycles(dut.ap_clk, 2)
    return ({"kept": kept, "key_beats": stats["beats"], "first_key_cycle": stats["first_key"],
                 "last_key_cycle": stats["last_key"], "last_out_cycle": stats["last_out"],
                 "key_stall_cycles": stats["stall"], "cycles": stats["cycle"]})
