"""Resources counted whole (flip-flops, carry buffers, i-GELU, y^2, corrections, adder trees) and placed
per SLR (padless.schedule.engine.resources, padless.schedule.placement)."""
import dataclasses
import re
from pathlib import Path

import pytest

from padless.boards import load_board
from padless.schedule import engine
from padless.schedule.dse import plan
from padless.schedule.engine import (ResourceError, adder_tree_luts, carry_buffer, check_fits, dsp_count,
                                     dsp_mul_trunc, engine_config, ff_estimate, mux_luts, resources, weight_loads)
from padless.schedule.placement import ANCHORED, CHAIN, place

ROOT = Path(__file__).resolve().parents[1]
MINILM = dict(name="minilm", hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536, num_layers=6,
              max_positions=512, max_seq_length=256)


def _cfg(board="u280", **alloc):
    a = {"pe": {"qkv": 8, "out": 4, "ffn_up": 8, "ffn_down": 2}, "simd": {"qkv": 64, "out": 64, "ffn_up": 64,
                                                                          "ffn_down": 64}, "resident": False}
    a.update(alloc)
    return engine_config(MINILM, {}, board, a, max_seq=128)


def test_formulas_by_hand():
    assert dsp_mul_trunc(64, 64, 64) == 8           # 3 x 4 tiles of 26 x 17, 8 of them below bit 64
    assert dsp_mul_trunc(16, 16, 32) == 1
    assert adder_tree_luts(4, 16) == 2 * 17 + 1 * 18  # two 17-bit adders, one 18-bit
    assert adder_tree_luts(1, 16) == 0
    assert mux_luts(66, 8) == 8 * 17 and mux_luts(1, 8) == 0
    # E = 16 into a 64-byte beat: a 128-byte buffer, a 66:1 byte mux per bit
    assert carry_buffer(16, 64) == {"lut": 128 * 8 * 17, "ff": 128 * 8 + 32}


def test_added_terms_are_counted():
    cfg = _cfg()
    dsp = dsp_count(cfg)
    pe_up, pe_out, pe_down = cfg.folding["up"][0], cfg.folding["out"][0], cfg.folding["down"][0]
    mm = cfg.mvu("up")
    # the default PWL GELU 17 x 16 (1), activation rq 35 x 32 (4), requantizer 33 x 32 (4) per lane; only
    # the configured activation is built: I-BERT's i-GELU is 2 x 8 instead of the PWL's 1, ReLU none
    macs = -(-mm["PE"] // 2) * mm["SIMD"]
    assert cfg.act_kind == "gelu-pwl" and dsp["up"] == macs + pe_up * (4 + 1 + 4)
    assert dsp_count(dataclasses.replace(cfg, act_kind="gelu"))["up"] == macs + pe_up * (4 + 16 + 4)
    assert dsp_count(dataclasses.replace(cfg, act_kind="relu"))["up"] == macs + pe_up * (4 + 4)
    assert engine.act_kind({"activation": "relu"}, "ibert") == "relu"
    assert engine_config(MINILM, {}, "u280", {}, gelu="ibert").act_kind == "gelu"
    with pytest.raises(engine.InputError, match="quant.gelu"):
        engine.act_kind(MINILM, "erf")
    # residual rq 9 x 32 (2) + y^2 32 x 32 (4) + requantizer (4) per lane
    assert dsp["out"] == -(-pe_out // 2) * cfg.folding["out"][1] + pe_out * (4 + 2 + 4)
    assert dsp["down"] == -(-pe_down // 2) * cfg.folding["down"][1] + pe_down * (4 + 2 + 4)
    r = resources(cfg, "u280")
    assert r["ff"]["used"] == sum(ff_estimate(cfg).values()) > 0 and r["ff"]["limit"] == 2607360
    lut = r["detail"]["lut"]
    # the kernel's 16 load_elems instances; with beat-aligned loads only elements that do not tile a beat
    # build the carry buffer
    loads = weight_loads(cfg)
    assert len(loads) == 16
    assert all(w["carry"] == (w["elem_bytes"] % cfg.axi != 0 and cfg.axi % w["elem_bytes"] != 0) for w in loads)
    assert lut["weight_loader"] == sum(carry_buffer(w["elem_bytes"], cfg.axi)["lut"] for w in loads if w["carry"])
    # the per-process detail sums to the totals
    per = r["detail"]["process"]
    for k in ("dsp", "lut", "ff", "bram_36k", "uram"):
        assert sum(v[k] for v in per.values()) == r[k]["used"], k


def test_carry_buffer_count_follows_the_kernel(monkeypatch):
    io = (ROOT / "hw/hls/include/padless/io.h").read_text()
    # the switch states what io.h does: load_elems takes elements that tile a beat without the carry buffer
    assert re.search(r"const bool tiles = AXI % E == 0 \|\| E % AXI == 0;", io)
    assert engine.BEAT_ALIGNED_DENSE_WEIGHTS
    cfg = _cfg()
    after = resources(cfg, "u280")["detail"]["lut"]["weight_loader"]
    assert [w["name"] for w in weight_loads(cfg) if w["carry"]] == []
    monkeypatch.setattr(engine, "BEAT_ALIGNED_DENSE_WEIGHTS", False)
    loads = weight_loads(cfg)
    assert all(w["carry"] for w in loads)
    before = resources(cfg, "u280")["detail"]["lut"]["weight_loader"]
    assert before - after == sum(carry_buffer(w["elem_bytes"], cfg.axi)["lut"] for w in loads) > 0


def test_per_slr_fit_refuses_an_over_full_slr():
    """The totals fit the device, but one SLR cannot hold its processes: resources() says it does not fit
    and check_fits names the SLR."""
    cfg = _cfg()
    b = load_board("u280")
    r = resources(cfg, b)
    assert r["fits"] and r["slr"]["fits"] and len(r["slr"]["slrs"]) == 3
    assert set(r["slr"]["placement"]) == set(ANCHORED + CHAIN)
    assert all(r["slr"]["placement"][p] == b.memory_slr for p in ANCHORED)
    # a part with the same totals but SLRs of a quarter of the DSPs each: the largest process (FFN up)
    # still fits one, but not the chain with its neighbours -> spread over SLRs, crossings counted
    need = max(v["dsp"] for v in r["detail"]["process"].values())
    small = [dataclasses.replace(s, dsp=int(need * 1.05)) for s in b.slrs]
    tight = dataclasses.replace(b, slrs=tuple(small))
    t = resources(cfg, tight)
    assert r["dsp"]["used"] <= tight.dsp
    if not t["slr"]["fits"]:
        assert "SLR" in t["slr"]["reason"] and "dsp" in t["slr"]["reason"]
        with pytest.raises(ResourceError, match=r"SLR\d needs .* dsp"):
            check_fits(cfg, tight)
    # an SLR smaller than one process: refused whatever the placement
    tiny = dataclasses.replace(b, slrs=tuple(dataclasses.replace(s, dsp=need - 1) for s in b.slrs))
    rt = resources(cfg, tiny)
    assert rt["dsp"]["used"] <= tiny.dsp and not rt["fits"] and not rt["slr"]["fits"]
    with pytest.raises(ResourceError, match=r"does not fit u280: SLR\d needs [\d,]+ dsp over its cap"):
        check_fits(cfg, tiny)


def test_placement_minimises_crossings_and_counts_them():
    cfg = _cfg()
    b = load_board("u280")
    r = resources(cfg, b)
    per = r["detail"]["process"]
    # everything fits SLR0 at 100%? then no crossing at all; at a tight cap the chain spreads out
    loose = place(cfg, per, b, {k: 1.0 for k in ("dsp", "lut", "ff", "bram_36k", "uram")})
    tight = place(cfg, per, b, {"dsp": 0.25, "lut": 0.25, "ff": 0.25, "bram_36k": 0.25, "uram": 0.25})
    assert loose["crossings"] <= tight["crossings"]
    if tight["fits"]:
        assert tight["crossings"] > 0 and sum(tight["boundary_bits"]) > 0
        assert all(c[4] >= 1 for c in tight["crossing_channels"])
    one = place(cfg, per, load_board("zcu104"), None)   # one die: one SLR, no crossings
    assert len(one["slrs"]) == 1 and one["crossings"] == 0


def test_dse_respects_every_slr():
    p = plan(MINILM, "u280", {"attention": {"density": 0.25, "min_k": 32}}, [27] * 60 + [45] * 40)
    slr = p["resources"]["slr"]
    assert slr["fits"] and len(slr["slrs"]) == 3 and p["clock_MHz"] == 150.0 and "AutoBridge" in p["clock_source"]
    for s in slr["slrs"]:
        assert all(s["used"][k] <= 0.8 * s["limit"][k] for k in ("dsp", "lut", "ff"))
