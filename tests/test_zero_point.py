"""The asymmetric GELU output (``quant: {zero_point: [act]}``): hand-checked grid and requantization, the
zero point folded into FFN down's bias (also after GPTQ), and every backend bit-exact with the golden model
on real sentences: the g++ csim of the HLS kernel (fast and synthesizable forms) and the ONNX core."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from padless.build import compile_project
from padless.data.datasets import load_dataset
from padless.errors import InputError
from padless.golden import quantize_input
from padless.models import Tokenizer
from padless.project import load_project
from padless.quant import intops
from padless.quant.calibrate import calibrate
from padless.quant.config import parse_quant
from padless.quant.quantize import (activation_min, asymmetric_grid, load_quantized, quantize_encoder,
                                    save_quantized)
from padless.reference import embed, gelu

from crosscheck import assert_csim_equals_golden, assert_onnx_core_equals_golden


def test_requantize_with_zero_point_by_hand():
    # round(acc * 3 / 4) + zp, saturated to int8: 10 -> 7.5 -> 8 (half up), -10 -> -7.5 -> -7
    acc = np.array([10, -10, 400, -400, 0])
    np.testing.assert_array_equal(intops.requantize(acc, 3, 2, 8, -100), [-92, -107, 127, -128, -100])
    np.testing.assert_array_equal(intops.requantize(acc, 3, 2, 8), [8, -7, 127, -128, 0])
    # per channel, broadcast along the last axis
    np.testing.assert_array_equal(intops.requantize(np.array([[4, 4]]), 1, 0, 8, np.array([0, -128])),
                                  [[4, -124]])


def test_asymmetric_grid_by_hand():
    t, z = asymmetric_grid(np.array([2.55 - 0.17, 0.1, 1e-3]), -0.17)
    # channel 0: [-0.17, 2.38] in 255 steps of 0.01: -0.17 -> 17 steps below 0 -> z = -128 + 17
    assert t[0] == pytest.approx(0.01) and z[0] == -111
    # channel 1: hi 0.1 < 0.17: the grid is [-0.1, 0.1] (never wider below 0 than above), z = 0 (symmetric-ish)
    assert t[1] == pytest.approx(0.2 / 255) and z[1] == 0
    assert np.all((z >= -128) & (z <= 0))
    # the ends map onto -128 and 127 (channel 1's lie on ties: -127.5 and 127.5 steps; within one step)
    for c, (lo, hi) in enumerate([(-0.17, 2.38), (-0.1, 0.1)]):
        assert -128 <= np.floor(lo / t[c] + 0.5) + z[c] <= -128 + c
        assert 127 <= np.floor(hi / t[c] + 0.5) + z[c] <= 127 + c
    t, z = asymmetric_grid(np.array([1.0]), 0.0)  # ReLU: [0, 1] -> q = -128 + 255 x / 1
    assert t[0] == pytest.approx(1 / 255) and z[0] == -128


def test_activation_min_is_the_integer_gelus_minimum():
    s_up = 8.0 / 32767
    pwl = intops.gelu_pwl_table(s_up)
    lo = activation_min("gelu-pwl", s_up, pwl)
    assert lo == pytest.approx(float(gelu(np.array([-0.7518]))[0]), abs=4e-3)   # GELU's minimum, -0.170
    g = intops.gelu_constants(s_up)
    assert activation_min("gelu", g["out_scale"], g) == pytest.approx(-0.17, abs=2e-2)
    assert activation_min("relu", s_up, {}) == 0.0


def test_config_key():
    assert parse_quant({})["zero_point"] == []
    assert parse_quant({"zero_point": ["act", "act"]})["zero_point"] == ["act"]
    for bad in ("act", ["h"], {"act": 1}):
        with pytest.raises(InputError, match="zero_point"):
            parse_quant({"zero_point": bad})


@pytest.fixture(scope="module")
def tiny_zp(tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, 128)
    cal = tok.encode(movie_texts.texts[-64:], truncate=True)
    ranges = calibrate(tiny_spec, cal)
    return tiny_spec, quantize_encoder(tiny_spec, ranges), quantize_encoder(tiny_spec, ranges, zero_point=["act"]), \
        cal, tok.encode(movie_texts.texts[:24], truncate=True)


def test_bias_holds_the_folded_zero_point(tiny_zp, tmp_path):
    spec, sym, asym, _, _ = tiny_zp
    for i, (L0, L1) in enumerate(zip(sym.layers, asym.layers)):
        zp = np.asarray(L1.act_zp)
        assert zp.shape == (spec.intermediate_size,) and zp.min() >= -128 and zp.max() <= 0 and zp.min() < 0
        np.testing.assert_array_equal(L1.down.zp_in, zp)
        # unfolded, the bias is the float bias on the accumulator's scale, as for a symmetric input
        unfolded = L1.down.bias + L1.down.w.astype(np.int64) @ zp
        np.testing.assert_array_equal(unfolded, np.round(spec.layers[i].ffn_down.bias / L1.down.w_scale))
        assert np.asarray(L0.act_zp).max() == 0 and L0.down.zp_in is None
    save_quantized(asym, tmp_path / "q.npz")
    back = load_quantized(tmp_path / "q.npz")
    for a, b in zip(asym.layers, back.layers):
        np.testing.assert_array_equal(a.act_zp, b.act_zp)
        np.testing.assert_array_equal(a.down.zp_in, b.down.zp_in)
        assert b.up.zp_in is None


def test_asymmetric_act_is_closer_to_the_gelu_it_rounds(tiny_zp):
    """On real sentences the int8 GELU output, dequantized, is nearer the integer GELU value it rounds
    (the same value on both grids): less error: the asymmetric step is (hi + 0.17) / 255 against hi / 127."""
    from padless.golden import run_layer
    spec, sym, asym, _, ids = tiny_zp
    errs = []
    for qe in (sym, asym):
        L, seen = qe.layers[0], {}
        x = np.concatenate([quantize_input(embed(spec, s), qe.input_scale) for s in ids])
        off = np.concatenate([[0], np.cumsum([len(s) for s in ids])]).astype(np.int64)
        run_layer(L, x, off, spec.num_heads, observe=lambda site, v: seen.setdefault(site, v))
        g = intops.i_gelu_pwl(L.up(seen["h"]), L.gelu_lo, L.gelu_k, L.gelu_slope, L.gelu_icpt)
        real = g * float(L.scales["up"])
        errs.append(float(np.abs(seen["act"] * np.asarray(L.scales["act"]) - real).mean()))
    assert errs[1] < 0.9 * errs[0]


def test_gptq_keeps_the_fold(tiny_zp):
    from padless.quant.gptq import gptq_encoder
    spec, _, asym, cal, _ = tiny_zp
    g = gptq_encoder(spec, copy.deepcopy(asym), cal[:32])
    for a, b in zip(asym.layers, g.layers):
        assert not np.array_equal(a.down.w, b.down.w)
        np.testing.assert_array_equal(a.down.bias + a.down.zero_point_term(), b.down.bias + b.down.zero_point_term())
        np.testing.assert_array_equal(a.up.bias, b.up.bias)


@pytest.fixture(scope="module")
def zp_project(tmp_path_factory):
    out = tmp_path_factory.mktemp("zp") / "proj"
    compile_project("tiny", board="u280", out=out, config={"quant": {"zero_point": ["act"]}})
    p = load_project(out)
    assert p.manifest["quant"]["zero_point"] == ["act"]
    assert all(np.asarray(L.act_zp).min() < 0 for L in p.quantized.layers)
    return p


@pytest.fixture(scope="module")
def real_ids(zp_project):
    texts = load_dataset("vader-movie", limit=50).texts + load_dataset("reuters", limit=10).texts
    return zp_project.tokenize(texts, truncate=True)


def test_weights_bin_carries_the_zero_point(zp_project):
    from padless.codegen.weights import SECTIONS, read_header
    path = zp_project.path / "weights.bin"
    data = path.read_bytes()
    hdr = read_header(path)
    L, F = zp_project.quantized.layers[0], zp_project.quantized.model["intermediate_size"]
    off = int(hdr["offsets"][0][SECTIONS.index("act")])
    rec = np.frombuffer(data[off:off + 16 * F], "<i4").reshape(F, 4)
    np.testing.assert_array_equal(rec[:, 2], np.broadcast_to(L.act_shift, (F,)))
    np.testing.assert_array_equal(rec[:, 3], L.act_zp)


@pytest.mark.parametrize("form", ["fast", "synth"])
def test_csim_equals_golden(zp_project, real_ids, tmp_path_factory, form):
    ids = real_ids if form == "fast" else real_ids[:12] + real_ids[-2:]
    assert_csim_equals_golden(zp_project, ids, tmp_path_factory.mktemp("csim"), form)


def test_onnx_core_equals_golden(zp_project, real_ids, tmp_path):
    assert_onnx_core_equals_golden(zp_project, real_ids[:30], tmp_path / "core.onnx")
