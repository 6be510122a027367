"""The engine described in Python (padless.schedule.engine) and its cycle model (padless.schedule.cost):
loop formulas, memories and DSPs of the kernel's own arrays and operators, the fit check."""
import math

import numpy as np
import pytest

from padless.schedule.cost import call_cycles, stream_cycles
from padless.schedule.engine import (DEPTHS, ResourceError, check_fits, dsp_count, engine_config, memories,
                                     process_cycles, resources, useful_macs, weight_load_cycles)

MINILM = dict(name="minilm", hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536, num_layers=6,
              max_positions=512, max_seq_length=256)
TINY = dict(name="t", hidden_size=64, num_heads=4, head_dim=16, intermediate_size=256, num_layers=2, max_positions=128)


def _minilm(**kw):
    alloc = {"pe": {"qkv": 16, "out": 8, "ffn_up": 32, "ffn_down": 8, "attn": 4},
             "simd": {"qkv": 128, "out": 64, "ffn_up": 64, "ffn_down": 256}, "select_lanes": 4, "resident": True}
    alloc.update(kw)
    return engine_config(MINILM, {"attention": {"density": 0.25, "min_k": 32}}, "u280", alloc)


def test_legal_folding_and_derived_loops():
    cfg = _minilm()
    assert cfg.max_seq == 256 and cfg.vec == 64 and cfg.axi == 64 and cfg.resident
    m = cfg.mvu("qkv")
    assert (m["PE"], m["SIMD"], m["NF"], m["SF"], m["WIN"]) == (16, 128, 72, 3, 6)
    assert m["ITER"] == 216 and m["DEPTH"] == DEPTHS["D_MVU"] + 7
    # PE rounds to a power of two dividing the channel word; SIMD to the largest divisor of the input
    # that is a power of two up to the m_axi beat (64 bytes on u280) or a multiple of it
    odd = engine_config(MINILM, {}, "u280", {"pe": {"qkv": 24}, "simd": {"qkv": 200}})
    assert odd.folding["qkv"] == [16, 192]
    assert engine_config(MINILM, {}, "u280", {"simd": {"qkv": 100}}).folding["qkv"][1] == 64
    assert cfg.keep[27] == 27 and cfg.keep[200] == 50 and cfg.k_max == 64


def test_process_cycles_follow_the_loops():
    cfg = _minilm()
    t = 27
    c = process_cycles(cfg, t)
    m = cfg.mvu("qkv")
    assert c["p_qkv"] == (m["WIN"] - 1 + DEPTHS["D_READ"]) + (t * m["ITER"] - 1 + m["DEPTH"])
    # 27 tokens keep every key (min_k 32): no selection work, only the head copies
    assert c["p_select"] == 12 * (t - 1 + DEPTHS["D_SEL_COPY"])
    kf = math.ceil(t / cfg.att_pe)
    assert c["p_attn_exp"] == 12 * (t * kf - 1 + DEPTHS["D_EXP"])
    s = process_cycles(cfg, 200)  # sparse: 50 keys kept
    nc = math.ceil(200 / cfg.sel_lanes)
    assert s["p_select"] == 12 * ((199 + DEPTHS["D_SEL_COPY"]) + (199 + DEPTHS["D_SEL_K4"]) + (200 * nc - 1 + DEPTHS["D_SEL"]))
    assert s["p_attn_qk"] == 12 * (200 * math.ceil(50 / cfg.att_pe) - 1 + DEPTHS["D_QK"])
    with pytest.raises(Exception):
        process_cycles(cfg, 0)


def test_call_and_stream_cycles():
    cfg = _minilm()
    one = call_cycles(cfg, [27]).cycles
    two = call_cycles(cfg, [27, 27]).cycles
    assert two > one and two < 2 * one          # the second sequence overlaps the first
    lens = [27] * 40
    full = stream_cycles(cfg, lens).cycles
    split = stream_cycles(cfg, lens, max_tokens=27 * 5).cycles
    assert split > full                         # eight calls drain the pipeline eight times
    ct = call_cycles(cfg, [5, 200, 27], keep_intervals=True)
    assert set(ct.intervals) >= {"p_qkv", "p_select", "p_out", "p_writer"}
    assert all(a <= b for iv in ct.intervals.values() for _, _, a, b in iv)
    streamed = _minilm(resident=False)
    assert call_cycles(streamed, lens).cycles - call_cycles(cfg, lens).cycles >= 6 * weight_load_cycles(streamed)


def test_memories_and_dsps_of_the_kernel():
    cfg = _minilm()
    mem = {m["name"]: m for m in memories(cfg)}
    w = mem["w_qkv"]  # PE 16 in 8 dual-port memories of 128-byte words, 2 x 6 layers x 216 words deep
    assert (w["width_bits"], w["copies"], w["depth"]) == (1024, 8, 2 * 6 * 216)
    assert mem["q_blk"]["width_bits"] == 8 * 32 and mem["q_blk"]["depth"] == 256 * 12 and mem["q_blk"]["copies"] == 2
    dsp = dsp_count(cfg)
    # dense: two int8 MACs per DSP48E2 (WP486) + 4 DSPs of requantization per output lane
    assert dsp["qkv"] == 8 * 128 + 16 * 4
    r = resources(cfg, "u280")
    assert r["fits"] and r["dsp"]["used"] == sum(dsp.values()) and r["uram"]["used"] > 0
    assert sum(m.get("uram", 0) for m in r["detail"]["memories"]) == r["uram"]["used"]


def test_resource_refusal_is_clear():
    cfg = engine_config(MINILM, {}, "pynq-z2", {"resident": False})
    with pytest.raises(ResourceError, match=r"does not fit pynq-z2: .*bram_36k"):
        check_fits(cfg, "pynq-z2")


def test_useful_macs():
    cfg = _minilm()
    t = 30
    mv = t * (3 * 384 * 384 + 384 * 384 + 1536 * 384 + 384 * 1536)
    att = 2 * 12 * t * 30 * 32
    assert useful_macs(cfg, t) == 6 * (mv + att)
    sp = engine_config(MINILM, {"weights": {"sparsity": 0.5, "bank": 16}}, "u280", {})
    assert useful_macs(sp, t) == 6 * (mv // 2 + 2 * 12 * t * t * 32)
