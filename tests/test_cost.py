import numpy as np
import pytest

from padless.errors import InputError
from padless.schedule.cost import Allocation, CostParams, resources, sequence_cycles, weight_load_cycles

M = dict(hidden_size=8, num_heads=2, head_dim=4, intermediate_size=16, num_layers=1)
P = CostParams()


def test_cycles_by_hand():
    a = Allocation(pe={"qkv": 4, "out": 2, "ffn_up": 4, "ffn_down": 8, "attn": 2},
                   simd={"qkv": 8, "out": 4, "ffn_up": 3, "ffn_down": 4, "attn": 4}, select_lanes=3,
                   heads_per_job=0)  # all heads in one select / attn job
    c = sequence_cycles(M, 5, {"attention": {"topk": 3}}, a)[0]
    assert c[0] == 5 * (24 // 4) * 1 + P.mvu_depth                            # qkv: 3H=24 rows, 8 in
    assert c[1] == -(-2 * 5 * 5 // 3) + P.select_depth                        # ceil(50 / 3) = 17
    assert c[2] == 2 * 5 * 2 * 2 * 1 + P.attn_depth                           # ceil(3/2)=2, ceil(4/4)=1
    assert c[3] == 5 * 4 * 2 + P.mvu_depth + 4 + P.ln_depth                   # + ceil(H/PE) LN tail
    assert c[4] == 5 * 4 * 3 + P.mvu_depth + P.gelu_depth                     # ceil(8/3) = 3
    assert c[5] == 5 * 1 * 4 + P.mvu_depth + 1 + P.ln_depth
    assert sequence_cycles(M, 5, {}, a)[0][1] == 0                            # dense: no selection


def test_weight_load_and_resources():
    a = Allocation(clock_MHz=100, bandwidth_GBps=1.0)
    nbytes = 4 * 64 + 2 * 128 + 4 * (4 * 8 + 16 + 8)
    assert weight_load_cycles(M, {}, a) == -(-nbytes // int(1e9 * P.mem_efficiency / 100e6))
    r = resources(M, {}, a, "u280", 16)
    assert r["dsp"] == 5  # five MAC arrays of one lane, two MACs per DSP48E2 -> ceil(1/2) each
    assert resources(M, {}, a, "pynq-z2", 16)["dsp"] == 5


def test_tile_cycles_by_hand():
    from padless.schedule.cost import tile_cycles_many

    a = Allocation(pe={"qkv": 4, "out": 2, "ffn_up": 4, "ffn_down": 8, "attn": 2},
                   simd={"qkv": 8, "out": 4, "ffn_up": 3, "ffn_down": 4, "attn": 4}, select_lanes=3, row_tile=4,
                   heads_per_job=0)
    sp = {"attention": {"topk": 3}}
    t = tile_cycles_many(M, [10, 3], sp, a)
    assert t.shape == (2, 1, 6, 3)                                            # ceil(10 / 4) = 3 tiles
    assert t[0, 0, 0].tolist() == [4 * 6 + P.mvu_depth, 4 * 6 + P.mvu_depth, 2 * 6 + P.mvu_depth]
    assert t[0, 0, 3].tolist() == [r * 4 * 2 + P.mvu_depth + 4 + P.ln_depth for r in (4, 4, 2)]
    assert t[0, 0, 1].tolist() == [-(-2 * 10 * 10 // 3) + P.select_depth, 0, 0]  # whole sequence
    assert t[0, 0, 2].tolist() == [2 * 10 * 2 * 2 * 1 + P.attn_depth, 0, 0]
    assert t[1, 0, 4].tolist() == [3 * 4 * 3 + P.mvu_depth + P.gelu_depth, 0, 0]  # 3 rows: one tile
    # the per-pass cycles are the tile sums; row_tile 0 is the untiled (whole-sequence) engine
    assert (sequence_cycles(M, 10, sp, a) == t[0].sum(axis=2)).all()
    a.row_tile = 0
    assert sequence_cycles(M, 10, sp, a)[0][0] == 10 * 6 + P.mvu_depth


def test_head_jobs_and_spill_memory():
    from padless.schedule.cost import (fixed_buffer_bytes, head_jobs, spill_io_cycles, tile_cycles_many,
                                       working_bytes_per_token)

    a = Allocation(pe={"qkv": 4, "out": 2, "ffn_up": 4, "ffn_down": 8, "attn": 2},
                   simd={"qkv": 8, "out": 4, "ffn_up": 3, "ffn_down": 4, "attn": 4}, select_lanes=3,
                   row_tile=4, heads_per_job=1)
    sp = {"attention": {"topk": 3}}
    assert head_jobs(M, a) == [1, 1]
    t = tile_cycles_many(M, [10], sp, a)[0, 0]
    assert t[1].tolist() == [-(-10 * 10 // 3) + P.select_depth] * 2 + [0]   # one select job per head
    assert t[2].tolist() == [2 * 10 * 2 * 1 + P.attn_depth] * 2 + [0]        # ceil(3/2)=2, ceil(4/4)=1
    a.heads_per_job = 0
    assert head_jobs(M, a) == [2]
    assert tile_cycles_many(M, [10], sp, a)[0, 0, 1, 0] == -(-2 * 100 // 3) + P.select_depth
    a.heads_per_job = -1
    with pytest.raises(InputError):
        head_jobs(M, a)
    assert working_bytes_per_token(M) == 5 * 8
    a.heads_per_job = 1
    # per head: 4-bit Q', K' (16 rows x 1 x 4 bytes) + indices (16 x 3 x 10 bits); per tile: 4 x (8 + 16 + 64)
    assert fixed_buffer_bytes(M, sp, a, 16) == 2 * (16 * 4 + 60 + 4 * (8 + 16 + 64))
    b = Allocation(clock_MHz=100, bandwidth_GBps=1.0)                        # 8 bytes per cycle
    assert spill_io_cycles(M, 3, b) == 3 and spill_io_cycles(M, np.array([1, 4]), b).tolist() == [1, 4]


def test_per_layer_weight_ratios():
    """``weights.layers`` ratios: each layer's MVU cycles use its own kept weights per row; a streamed
    weight buffer holds every stage's largest layer; resident weights are the sum over the layers."""
    from padless.schedule.cost import layer_weight_bytes, model_weight_bytes, stage_weight_bytes
    m2 = {**M, "num_layers": 2}
    sp = {"weights": {"sparsity": 0.5, "bank": 4, "layers": {"1": 0.0}}}  # layer 1 stays dense
    a = Allocation(row_tile=0, heads_per_job=0)
    c = sequence_cycles(m2, 5, sp, a)
    assert c[0, 0] == 5 * 24 * 4 + P.mvu_depth and c[1, 0] == 5 * 24 * 8 + P.mvu_depth  # qkv: 4 vs 8 kept
    assert c[0, 4] == 5 * 16 * 4 + P.mvu_depth + P.gelu_depth and c[1, 4] == 5 * 16 * 8 + P.mvu_depth + P.gelu_depth
    dense, half = layer_weight_bytes(m2, sp, 1), layer_weight_bytes(m2, sp, 0)
    assert dense == layer_weight_bytes(m2, {}) and half < dense
    assert layer_weight_bytes(m2, sp) == dense and model_weight_bytes(m2, sp) == dense + half
    assert stage_weight_bytes(m2, sp)["ffn_up"] == stage_weight_bytes(m2, sp, 1)["ffn_up"]
    assert resources(m2, sp, Allocation(resident=True, wave_tokens=0), "u280", 16)["weight_bytes"] == dense + half
    assert resources(m2, sp, Allocation(resident=False, wave_tokens=0), "u280", 16)["weight_bytes"] == 2 * dense
