"""The site simulation: no site = the fp32 reference, every site = the golden integer model (bit for bit on
real sentences), one site = something in between."""
from __future__ import annotations

import numpy as np
import pytest

from padless.errors import InputError
from padless.golden import quantize_input, run_encoder
from padless.models import Tokenizer
from padless.quant.calibrate import calibrate
from padless.quant.quantize import quantize_encoder
from padless.quant.simulate import SIM_SITES, SiteSimulator, parse_sites
from padless.reference import embed, encode_fp32


@pytest.fixture(scope="module", params=[("pwl", ()), ("ibert", ()), ("pwl", ("act",)), ("ibert", ("act",))],
                ids=["pwl", "ibert", "pwl-zp", "ibert-zp"])
def tiny_setup(request, tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, 128)
    cal = tok.encode(movie_texts.texts[-48:], truncate=True)
    gelu, zp = request.param
    qe = quantize_encoder(tiny_spec, calibrate(tiny_spec, cal), gelu=gelu, zero_point=zp)
    return tiny_spec, qe, tok.encode(movie_texts.texts[:12], truncate=True), cal


def _codes(sim_out, qe):
    return np.floor(sim_out / np.asarray(qe.output_scale) + 0.5)


def test_no_site_is_the_fp32_reference(tiny_setup):
    spec, qe, ids, _ = tiny_setup
    got = SiteSimulator(spec, qe).run(ids, [])
    for g, r in zip(got, encode_fp32(spec, ids)):
        np.testing.assert_allclose(g, r, atol=2e-5)


def test_every_site_is_the_golden_model(tiny_setup):
    spec, qe, ids, _ = tiny_setup
    got = SiteSimulator(spec, qe).run(ids, SIM_SITES)
    for g, s in zip(got, ids):
        want = run_encoder(qe, quantize_input(embed(spec, s), qe.input_scale), np.array([0, len(s)]))
        np.testing.assert_array_equal(_codes(g, qe), want)


def test_minilm_every_site_is_golden(minilm, movie_texts):
    tok = Tokenizer(minilm.tokenizer_path, 512)
    qe = quantize_encoder(minilm, calibrate(minilm, tok.encode(movie_texts.texts[-32:], truncate=True)),
                          zero_point=["act"])
    ids = tok.encode(movie_texts.texts[:6], truncate=True)
    sim = SiteSimulator(minilm, qe)
    for g, s in zip(sim.run(ids, SIM_SITES), ids):
        want = run_encoder(qe, quantize_input(embed(minilm, s), qe.input_scale), np.array([0, len(s)]))
        np.testing.assert_array_equal(_codes(g, qe), want)


def test_one_site_and_widening(tiny_setup):
    spec, qe, _, ids = tiny_setup  # the calibration sentences: no value beyond a calibrated range
    ids = ids[:12]
    sim = SiteSimulator(spec, qe)
    ref = np.concatenate(encode_fp32(spec, ids))
    err = lambda sites, wide=(): float(np.abs(np.concatenate(sim.run(ids, sites, wide)) - ref).mean())  # noqa: E731
    e_act, e_all = err(["act"]), err(SIM_SITES)
    assert 0 < e_act < e_all
    assert err(["act"], ["act"]) < e_act / 10          # 16-bit instead of 8: ~256x finer steps
    assert err(["act@0"]) < e_act                      # one layer only
    assert err(["weights.down"]) < err(["weights"])
    seen = []
    sim.observe = lambda layer, site, v: seen.append((layer, site, v.shape[1]))
    sim.run(ids[:1], SIM_SITES)
    H, F = spec.hidden_size, spec.intermediate_size
    assert seen[:4] == [(0, "in", H), (0, "ctx", H), (0, "h", H), (0, "act", F)] and len(seen) == 4 * spec.num_layers


def test_parse_sites():
    assert parse_sites(["act", "h@1,2"], 3) == {"act": {0, 1, 2}, "h": {1, 2}}
    w = parse_sites(["weights@0"], 2)
    assert set(w) == {f"weights.{x}" for x in ("q", "k", "v", "o", "up", "down")} and w["weights.up"] == {0}
    for bad, msg in [(["gelu2"], "unknown"), (["act@7"], "not in 0..2"), (["weights.x"], "unknown")]:
        with pytest.raises(InputError, match=msg):
            parse_sites(bad, 3)


def test_chunks_do_not_change_the_result(tiny_setup):
    spec, qe, ids, _ = tiny_setup
    sim = SiteSimulator(spec, qe)
    whole = sim.run(ids, SIM_SITES)
    small = sim.run(ids, SIM_SITES, chunk_tokens=max(len(s) for s in ids) + 1)  # several chunks, none split
    assert len(small) == len(ids) and [len(g) for g in small] == [len(s) for s in ids]
    for a, b in zip(whole, small):
        np.testing.assert_array_equal(a, b)
    assert sim.run([], SIM_SITES) == []
