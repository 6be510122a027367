"""The per-site precision knob ``quant: {precision: {act: 16}}``: the FFN activation int16 and FFN down a
16 x 8-bit MVU. Hand-checked config rules and widths; bit-exact across the golden model, the g++ csim of the
generated kernel (fast and synthesizable forms), the ONNX core and the site simulation on real sentences;
the cycle model still equals the timed csim; and the DSE prices it (one MAC per DSP in FFN down)."""
from __future__ import annotations

import numpy as np
import pytest

from padless.build import compile_project
from padless.data.datasets import load_dataset
from padless.errors import InputError
from padless.golden import quantize_input, run_encoder
from padless.models import Tokenizer
from padless.project import load_project
from padless.quant import intops
from padless.quant.calibrate import calibrate
from padless.quant.config import merge_quant, parse_quant
from padless.quant.quantize import load_quantized, quantize_encoder, save_quantized
from padless.reference import embed

from crosscheck import assert_csim_equals_golden, assert_onnx_core_equals_golden


def test_config_rules():
    assert parse_quant({})["precision"] == {"act": 8}
    assert parse_quant({"precision": {"act": 16}})["precision"] == {"act": 16}
    for bad, what in (({"h": 16}, "no precision knob"), ({"act": 12}, "8 or 16"), ({"act": True}, "8 or 16"),
                      ([16], "mapping")):
        with pytest.raises(InputError, match=what):
            parse_quant({"precision": bad})
    with pytest.raises(InputError, match="not both"):
        parse_quant({"precision": {"act": 16}, "zero_point": ["act"]})
    # a config asking for int16 over a recipe's asymmetric default drops the zero point, says nothing else
    merged = merge_quant({"zero_point": ["act"], "rounding": "gptq"}, {"precision": {"act": 16}})
    assert merged["zero_point"] == [] and merged["precision"] == {"act": 16} and merged["rounding"] == "gptq"
    with pytest.raises(InputError, match="not both"):
        merge_quant({"zero_point": ["act"]}, {"precision": {"act": 16}, "zero_point": ["act"]})


def test_requantize_to_16_bits_by_hand():
    np.testing.assert_array_equal(intops.requantize(np.array([40000, -40000, 1000]), 3, 1, 16),
                                  [32767, -32768, 1500])


@pytest.fixture(scope="module")
def tiny16(tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, 128)
    cal = tok.encode(movie_texts.texts[-48:], truncate=True)
    ranges = calibrate(tiny_spec, cal)
    return (tiny_spec, quantize_encoder(tiny_spec, ranges), quantize_encoder(tiny_spec, ranges, precision={"act": 16}),
            tok.encode(movie_texts.texts[:16], truncate=True), cal)


def test_same_range_finer_grid(tiny16, tmp_path):
    spec, q8, q16, ids, _ = tiny16
    for a, b in zip(q8.layers, q16.layers):
        np.testing.assert_allclose(np.asarray(b.scales["act"]) * 32767, np.asarray(a.scales["act"]) * 127)
        assert b.act_bits == 16 and b.down.in_bits == 16 and a.down.in_bits == 8
        np.testing.assert_array_equal(a.up.w, b.up.w)
    seen = {}
    from padless.golden import run_layer
    x = np.concatenate([quantize_input(embed(spec, s), q16.input_scale) for s in ids])
    off = np.concatenate([[0], np.cumsum([len(s) for s in ids])]).astype(np.int64)
    run_layer(q16.layers[0], x, off, spec.num_heads, observe=lambda site, v: seen.setdefault(site, v))
    act = seen["act"]
    assert np.abs(act).max() > 127 and act.min() >= -32768 and act.max() <= 32767
    save_quantized(q16, tmp_path / "q.npz")
    back = load_quantized(tmp_path / "q.npz")
    assert back.layers[0].act_bits == 16 and back.layers[0].down.in_bits == 16
    np.testing.assert_array_equal(run_encoder(back, x, off), run_encoder(q16, x, off))


def test_int16_act_rounds_the_gelu_258x_finer(tiny16):
    """On the calibration sentences (nothing clips) the FFN activation, dequantized, is about 32767 / 127
    times nearer the integer GELU value it rounds (end to end, the tiny model's other errors hide this
    site's share)."""
    from padless.golden import run_layer
    spec, q8, q16, _, ids = tiny16
    errs = []
    for qe in (q8, q16):
        L, seen = qe.layers[0], {}
        x = np.concatenate([quantize_input(embed(spec, s), qe.input_scale) for s in ids])
        off = np.concatenate([[0], np.cumsum([len(s) for s in ids])]).astype(np.int64)
        run_layer(L, x, off, spec.num_heads, observe=lambda site, v: seen.setdefault(site, v))
        g = intops.i_gelu_pwl(L.up(seen["h"]), L.gelu_lo, L.gelu_k, L.gelu_slope, L.gelu_icpt) * float(L.scales["up"])
        errs.append(float(np.abs(seen["act"] * np.asarray(L.scales["act"]) - g).mean()))
    assert errs[1] < errs[0] / 50


def test_site_simulation_equals_golden(tiny16):
    from padless.quant.simulate import SIM_SITES, SiteSimulator
    spec, _, q16, ids, _ = tiny16
    for g, s in zip(SiteSimulator(spec, q16).run(ids, SIM_SITES), ids):
        want = run_encoder(q16, quantize_input(embed(spec, s), q16.input_scale), np.array([0, len(s)]))
        np.testing.assert_array_equal(np.floor(g / np.asarray(q16.output_scale) + 0.5), want)


@pytest.fixture(scope="module")
def act16_project(tmp_path_factory):
    out = tmp_path_factory.mktemp("act16") / "proj"
    compile_project("tiny", board="u280", out=out, config={"quant": {"precision": {"act": 16}}})
    p = load_project(out)
    assert p.manifest["quant"]["precision"] == {"act": 16}
    assert p.manifest["hls"]["engine"]["act_bits"] == 16
    assert "#define PADLESS_ACT_BITS 16" in (out / "hls" / "config.h").read_text()
    return p


@pytest.fixture(scope="module")
def real_ids(act16_project):
    texts = load_dataset("vader-movie", limit=40).texts + load_dataset("reuters", limit=8).texts
    return act16_project.tokenize(texts, truncate=True)


@pytest.mark.parametrize("form", ["fast", "synth"])
def test_csim_equals_golden(act16_project, real_ids, tmp_path_factory, form):
    ids = real_ids if form == "fast" else real_ids[:10] + real_ids[-2:]
    assert_csim_equals_golden(act16_project, ids, tmp_path_factory.mktemp("csim"), form)


def test_onnx_core_equals_golden(act16_project, real_ids, tmp_path):
    assert_onnx_core_equals_golden(act16_project, real_ids[:30], tmp_path / "core.onnx")



def test_timed_csim_equals_the_model(act16_project, real_ids):
    from padless.runtime.profile import profile
    res = profile(act16_project, lengths=[len(i) for i in real_ids], baselines=False)
    assert abs(res["model_error"]) <= 0.01, res["model_error"]


def test_dse_prices_the_wide_down_mvu(minilm):
    from padless.schedule.dse import plan
    from padless.schedule.engine import EngineConfig, dsp_count, memories, _fifos
    model = minilm.shape_summary()
    p8 = plan(model, "u280", lengths=[40] * 50)
    p16 = plan(model, "u280", lengths=[40] * 50, act_bits=16)
    e8, e16 = EngineConfig.from_dict(p8["engine"]), EngineConfig.from_dict(p16["engine"])
    assert e8.act_bits == 8 and e16.act_bits == 16
    assert e16.packed("qkv") and not e16.packed("down") and e8.packed("down")
    # FFN down: one DSP per MAC lane at 16 bits, one per two at 8 bits (same folding, same count of lanes)
    same = EngineConfig.from_dict({**p8["engine"], "act_bits": 16})
    pe, simd = e8.folding["down"]
    assert dsp_count(same)["down"] - dsp_count(e8)["down"] == pe * simd - -(-pe // 2) * simd
    a8 = {f["name"]: f for f in _fifos(e8)}["a_rows"]
    a16 = {f["name"]: f for f in _fifos(same)}["a_rows"]
    assert a16["width_bits"] == 2 * a8["width_bits"] and a16["depth"] == a8["depth"]
    assert memories(same) == memories(e8)   # no weight or table memory changes
    # within the same DSP cap the DSE buys fewer lanes: the 16-bit plan is slower on the same lengths
    assert p16["resources"]["dsp"]["used"] <= 0.8 * p16["resources"]["dsp"]["limit"] + 1
    assert p16["estimate"]["throughput_seq_s"] < p8["estimate"]["throughput_seq_s"]


def test_named_config_loads():
    """configs/minilm-l6-act16.yaml: a compile config that the recipe's quant merges with."""
    from pathlib import Path
    from padless.build import load_config
    from padless.models import load_recipe
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "minilm-l6-act16.yaml")
    q = merge_quant(load_recipe("minilm-l6").quant, cfg["quant"])
    assert q["precision"] == {"act": 16} and q["zero_point"] == [] and q["rounding"] == "gptq"
