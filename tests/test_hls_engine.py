"""The streaming engine's processes (hw/hls/include/padless) against their Python twins.

tests/hls_shim.cpp instantiates the library at small sizes and runs each process inside a real dataflow
region of the C-simulation runtime; the shim is built twice: the fast csim form and the synthesizable form
(width-exact ap_int arithmetic, the unrolled PE x SIMD folds, the packed DSP products, the top-k network).
Every result is compared with the numpy twin (quant.intops, sparse.selection, sparse.attention, QLinear);
the cycles of the MVU and of a back-pressured FIFO pair with the loop formulas (docs/hls.md)."""
from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

from padless.codegen.hls import HW_INCLUDE
from padless.codegen.weights import dense_words, pe_pair_words, sparse_words
from padless.csim import ap_types_dir, compiler
from padless.quant import intops
from padless.quant.quantize import QLinear
from padless.sparse import selection
from padless.sparse.attention import attention_heads
from padless.sparse.weights import prune_weight

SHIM = Path(__file__).with_name("hls_shim.cpp")
FORMS = {"fast": [], "synth": ["-DPADLESS_CSIM_FAST=0", "-DPADLESS_EXACT_WIDTHS=1"]}
P = lambda a: ctypes.c_void_p(a.ctypes.data)  # noqa: E731


@pytest.fixture(scope="module", params=list(FORMS))
def lib(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"shim_{request.param}") / "libshim.so"
    cmd = [compiler(), "-O2", "-std=c++17", "-fPIC", "-shared", "-pthread", *FORMS[request.param],
           f"-I{HW_INCLUDE.parent}", f"-I{ap_types_dir()}", str(SHIM), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(out))
    for name in ("t_mvu_dense", "t_mvu_sparse", "t_mvu_pair", "t_fold_pair_mismatches", "t_attention", "t_layernorm", "t_fifo_pair", "t_port_scan",
                 "t_dsp_mul2_mismatches", "t_gelu_lanes"):
        getattr(lib, name).restype = ctypes.c_int64
    lib.padless_sim_configure.argtypes = [ctypes.c_int] * 7
    lib.t_dsp_mul2_mismatches.argtypes = [ctypes.c_int]
    lib.padless_sim_report.restype = ctypes.c_int64
    lib.form = request.param
    return lib


def configure(lib, threaded=1, timed=0, ports=0, exact=0):
    lib.padless_sim_configure(threaded, timed, ports, exact, 0, 256, 1)


def report(lib) -> dict:
    import json
    buf = ctypes.create_string_buffer(1 << 16)
    lib.padless_sim_report(buf, 1 << 16)
    return json.loads(buf.value.decode())


# ---- integer operators ------------------------------------------------------------------------------
def test_integer_operators_match_intops(lib):
    rng = np.random.default_rng(0)
    acc = np.concatenate([rng.integers(-(1 << 31), 1 << 31, 4000), [0, -1, 1, (1 << 31) - 1, -(1 << 31)]]).astype(np.int64)
    out = np.zeros_like(acc)
    for bits in (8, 22, 32):
        for m, s in ((1 << 30, 30), (1234567, 27), (2000000000, 40), (1, 0)):
            lib.t_requant(P(acc), len(acc), ctypes.c_uint32(m), s, bits, P(out))
            np.testing.assert_array_equal(out, intops.requantize(acc, m, s, bits))
    x = np.arange(-40000, 1, dtype=np.int64)
    e = np.zeros_like(x)
    lib.t_i_exp(P(x), len(x), P(e))
    np.testing.assert_array_equal(e, intops.i_exp(x))
    for n in (1, 2, 27, 513):
        sc = rng.integers(-20000, 20000, n).astype(np.int32)
        p = np.zeros(n, np.int64)
        lib.t_softmax(P(sc), n, P(p))
        np.testing.assert_array_equal(p, intops.i_softmax(sc.astype(np.int64)))
    eq = np.full(4096, 77, np.int32)  # all-equal scores: every key 1/4096 -> one step each
    p = np.zeros(4096, np.int64)
    lib.t_softmax(P(eq), 4096, P(p))
    np.testing.assert_array_equal(p, intops.i_softmax(eq.astype(np.int64)))
    v = np.concatenate([rng.integers(0, 1 << 46, 3000), [0, 1, 2, 3, 4, (1 << 46) - 1]]).astype(np.int64)
    r = np.zeros_like(v)
    lib.t_isqrt(P(v), len(v), P(r))
    np.testing.assert_array_equal(r, intops.isqrt(v))
    t = intops.gelu_pwl_table(0.01)
    u = np.arange(-32768, 32768, 7, dtype=np.int64)
    g = np.zeros_like(u)
    sl, ic = t["slope"].astype(np.int32), t["icpt"].astype(np.int64)
    lib.t_gelu_pwl(P(u), len(u), int(t["lo"]), int(t["k"]), P(sl), P(ic), P(g))
    np.testing.assert_array_equal(g, intops.i_gelu_pwl(u, t["lo"], t["k"], t["slope"], t["icpt"]))
    c = intops.gelu_constants(0.01)
    lib.t_gelu(P(u), len(u), ctypes.c_int64(c["b_int"]), ctypes.c_int64(c["c_int"]), c["shift"],
               ctypes.c_int64(c["one"]), P(g))
    np.testing.assert_array_equal(g, intops.i_gelu(u, c["b_int"], c["c_int"], c["shift"], c["one"]))


def test_quant4_matches_selection(lib):
    x = np.arange(-128, 128, dtype=np.int8)
    for M in (0, 1, 5, 127, 128):
        xs = np.clip(x, -M, M).astype(np.int8)
        q = np.zeros(len(xs), np.int8)
        lib.t_quant4(P(xs), len(xs), ctypes.c_int16(M), P(q))
        want = selection.quantize4(xs.reshape(-1, 1)).reshape(-1) if M else np.zeros(len(xs), np.int8)
        if M and np.abs(xs).max() != M:
            continue
        np.testing.assert_array_equal(q, want)


def test_packed_dsp_product_is_exact_for_every_int8_triple(lib):
    if lib.form != "synth":
        pytest.skip("one form is enough: the same code")
    assert lib.t_dsp_mul2_mismatches(1) == 0   # ap_int fields: what Vitis HLS synthesizes
    assert lib.t_dsp_mul2_mismatches(0) == 0   # the C-simulation's native 27/18/45-bit fields


def test_pe_pair_fold_is_exact_for_every_int8_triple(lib):
    """The pe-pair sparse fold (mvu.h fold_pair): one input chosen by the pair's shared in-bank index, times
    the two lanes' kept weights on one packed DSP product, for every (w0, w1, x) int8 triple, in both forms
    (the synthesizable form's ap_int fields of dsp_mul2_ap are checked above on the same triples)."""
    assert lib.t_fold_pair_mismatches() == 0


def test_topk_network_ranks_like_selection(lib):
    rng = np.random.default_rng(1)
    cases = [rng.integers(-50, 50, n).astype(np.int32) for n in (1, 2, 3, 5, 16, 17, 64, 100)]
    cases += [np.zeros(40, np.int32), np.full(7, 3, np.int32), rng.integers(0, 3, 90).astype(np.int32)]
    for est in cases:
        out = np.zeros(16, np.int32)
        cnt = lib.t_topk(P(est), len(est), P(out))
        assert cnt == min(16, len(est))
        k = min(16, len(est))
        want = selection.topk_indices(est.reshape(1, -1), k)[0]
        assert sorted(out[:cnt].tolist()) == want.tolist()
        # slot order is the ranking: larger estimate first, ties to the lower index
        ranked = sorted(range(len(est)), key=lambda j: (-int(est[j]), j))[:k]
        assert out[:cnt].tolist() == ranked


# ---- matrix-vector unit -------------------------------------------------------------------------------
def _shape(lib, sparse):
    out = np.zeros(11, np.int32)
    lib.t_mvu_shape(int(sparse), P(out))
    keys = ("IN", "OUT", "PE", "SIMD", "VEC", "BANK", "P_MAX", "WIN", "ITER", "DEPTH", "D_READ")
    return dict(zip(keys, out.tolist()))


def _rq(out, rng):
    rq = np.zeros(out, dtype=[("bias", "<i4"), ("m", "<u4"), ("shift", "u1"), ("pad", "u1", 3)])
    rq["bias"] = rng.integers(-50000, 50000, out)
    rq["m"] = rng.integers(1 << 20, 1 << 30, out)
    rq["shift"] = rng.integers(24, 34, out)
    return rq


@pytest.mark.parametrize("sparse", [0, 1, 2], ids=["dense", "row", "pe-pair"])
@pytest.mark.parametrize("t", [1, 2, 7, 33])
def test_mvu_matches_qlinear_and_its_cycle_formula(lib, sparse, t):
    sh = _shape(lib, sparse)
    rng = np.random.default_rng(t + 10 * sparse)
    w = rng.integers(-127, 128, (sh["OUT"], sh["IN"])).astype(np.int8)
    if sparse == 2:   # rows 2i, 2i + 1 share their columns; row 1 leaves a shared column at 0 (int8 rounding)
        w = prune_weight(w, sh["BANK"], 1 - sh["P_MAX"] / sh["BANK"], rows=2)
        w[0, : sh["BANK"]] = 0
        w[1, : sh["BANK"]] = 0
        w[0, sh["BANK"] - 1], w[1, sh["BANK"] - 1], w[0, 2] = 99, -128, -77
        words = pe_pair_words(w, sh["PE"], sh["SIMD"], sh["BANK"], sh["P_MAX"], sh["P_MAX"])
    elif sparse:
        w = prune_weight(w, sh["BANK"], 1 - sh["P_MAX"] / sh["BANK"])
        w[0, sh["BANK"] - 1] = 99          # a kept entry at the bank's last in-bank index
        w[0, : sh["BANK"] - 1] = 0
        w[0, sh["BANK"] - 4: sh["BANK"] - 1] = 7
        words = sparse_words(w, sh["PE"], sh["SIMD"], sh["BANK"], sh["P_MAX"], sh["P_MAX"])
    else:
        words = dense_words(w, sh["PE"], sh["SIMD"])
    words = np.frombuffer(words, np.uint8).copy()
    x = rng.integers(-128, 128, (t, sh["IN"])).astype(np.int8)
    rq = _rq(sh["OUT"], rng)
    y = np.zeros((t, sh["OUT"]), np.int32)
    configure(lib, timed=1, exact=1)
    fn = (lib.t_mvu_dense, lib.t_mvu_sparse, lib.t_mvu_pair)[sparse]
    cycles = fn(P(x), t, P(words), P(rq), P(y))
    assert cycles > 0
    ql = QLinear(w=w, bias=rq["bias"].astype(np.int64), w_scale=np.ones(sh["OUT"]), m=rq["m"].astype(np.int64),
                 shift=rq["shift"].astype(np.int64), out_bits=22)
    np.testing.assert_array_equal(y, ql(x.astype(np.int64)))
    rep = report(lib)
    busy = {p["name"]: p["busy"] for p in rep["procs"]}
    # the MVU's loops: prologue (WIN - 1 + D_READ) and the main loop (t ITER - 1 + DEPTH)
    assert busy["mvu"] == (sh["WIN"] - 1 + sh["D_READ"]) + (t * sh["ITER"] - 1 + sh["DEPTH"])


# ---- selection + attention -----------------------------------------------------------------------------
H, HEADS, D, AMAX = 64, 4, 16, 64


def _attention_case(lib, q, k, v, keep, rng):
    n = len(q)
    score_m, score_shift = 1 << 29, 30
    ctx_m = rng.integers(1 << 24, 1 << 27, H).astype(np.uint32)
    ctx_sh = rng.integers(30, 34, H).astype(np.uint8)
    ctx = np.zeros((n, H), np.int8)
    configure(lib, timed=1, exact=1)
    assert lib.t_attention(P(q), P(k), P(v), n, keep, ctypes.c_uint32(score_m), score_shift, P(ctx_m), P(ctx_sh),
                           P(ctx)) > 0, report(lib)["deadlock"]
    cfg = None if keep >= n else {"topk": keep}
    want = attention_heads(q.astype(np.int64), k.astype(np.int64), v.astype(np.int64), HEADS, score_m, score_shift,
                           ctx_m.astype(np.int64), ctx_sh.astype(np.int64), cfg)
    np.testing.assert_array_equal(ctx, want)


@pytest.mark.parametrize("n,keep", [(1, 1), (2, 16), (9, 4), (20, 20), (20, 16), (40, 7), (AMAX, 16), (AMAX, AMAX)])
def test_select_and_attention_match_the_twin(lib, n, keep):
    rng = np.random.default_rng(n * 100 + keep)
    q, k, v = (rng.integers(-128, 128, (n, H)).astype(np.int8) for _ in range(3))
    _attention_case(lib, q, k, v, keep, rng)


def test_attention_with_all_equal_estimates(lib):
    rng = np.random.default_rng(5)
    n = 30
    q = np.zeros((n, H), np.int8)  # every 4-bit estimate 0: the top-k keeps the lowest key indices
    k, v = (rng.integers(-128, 128, (n, H)).astype(np.int8) for _ in range(2))
    _attention_case(lib, q, k, v, 8, rng)
    k1 = np.tile(rng.integers(-128, 128, (1, H)).astype(np.int8), (n, 1))  # identical keys
    _attention_case(lib, rng.integers(-128, 128, (n, H)).astype(np.int8), k1, v, 5, rng)


# ---- LayerNorm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [1, 5])
def test_layernorm_stage_matches_intops(lib, t):
    rng = np.random.default_rng(t)
    y = rng.integers(-(1 << 22) + 1, 1 << 22, (t, 64)).astype(np.int32)
    y[0, :] = 123  # a zero-variance row gives beta
    m, b, shift = intops.layernorm_params(rng.normal(1, 0.3, 64), rng.normal(0, 0.2, 64), 0.05)
    out = np.zeros((t, 64), np.int8)
    configure(lib, timed=1, exact=1)
    assert lib.t_layernorm(P(y), t, P(m.astype(np.int32)), P(b.astype(np.int64)), shift, P(out)) > 0
    np.testing.assert_array_equal(out, intops.i_layernorm(y.astype(np.int64), m, b, shift))


# ---- timing, back-pressure, deadlock, ports ------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 4, 50])
def test_fifo_back_pressure_matches_the_formula(lib, n):
    consts = np.zeros(2, np.int32)
    lib.t_fifo_consts(P(consts))
    dp, dc = consts.tolist()
    s = ctypes.c_int64(0)
    configure(lib, timed=1, exact=1)
    cycles = lib.t_fifo_pair(n, 1, ctypes.byref(s))
    assert s.value == n * (n - 1) // 2
    # the consumer reads every other cycle: the depth-1 FIFO stalls the producer one cycle per token
    assert cycles == dp + dc + 2 * n
    busy = {p["name"]: p for p in report(lib)["procs"]}
    assert busy["prod_depth1"]["stall_out"] == n - 1
    configure(lib, timed=1, exact=1)
    assert lib.t_fifo_pair(n, n, ctypes.byref(s)) == dp + dc + 2 * n
    assert {p["name"]: p for p in report(lib)["procs"]}["prod_depth1"]["stall_out"] == 0


@pytest.mark.parametrize("mode", ["coroutines", "threads"])
def test_deadlock_is_detected_and_named(lib, mode):
    configure(lib, threaded=1, exact=1 if mode == "coroutines" else 0)
    assert lib.t_deadlock() == 1
    msg = report(lib)["deadlock"]
    assert msg.startswith("deadlock") and "reading a" in msg and "reading b" in msg


def test_port_checker_catches_an_unpartitioned_array(lib):
    src = np.arange(64, dtype=np.int8)
    s = ctypes.c_int64(0)
    configure(lib, threaded=0, ports=1)
    assert lib.t_port_scan(1, P(src), ctypes.byref(s)) == 0
    assert s.value == int(src.sum())
    configure(lib, threaded=0, ports=1)
    assert lib.t_port_scan(0, P(src), ctypes.byref(s)) == 8  # every iteration needs 8 reads of 2 ports
    v = report(lib)["violations"][0]
    assert v["array"] == "buf" and v["loop"] == "scan_loop" and v["accesses"] == 3 and v["ports"] == 2


def test_port_checker_catches_one_gelu_table_read_by_every_lane(lib):
    """The FFN-up lanes read the GELU table at II = 1: one copy per lane (gelu_tab's layout) passes, one
    unpartitioned table (one port) read by four lanes in one iteration is a violation every iteration; the
    outputs are intops.i_gelu_pwl either way."""
    t = intops.gelu_pwl_table(0.01)
    sl, ic = t["slope"].astype(np.int32), t["icpt"].astype(np.int64)
    rng = np.random.default_rng(3)
    lo, k = int(t["lo"]), int(t["k"])
    u = rng.integers(lo, min(lo + (64 << k), 32768), 4 * 64).astype(np.int64)  # inside the table's segments
    want = intops.i_gelu_pwl(u, t["lo"], t["k"], t["slope"], t["icpt"])
    g = np.zeros_like(u)
    configure(lib, threaded=0, ports=1)
    assert lib.t_gelu_lanes(4, P(u), len(u), int(t["lo"]), int(t["k"]), P(sl), P(ic), P(g)) == 0
    np.testing.assert_array_equal(g, want)
    configure(lib, threaded=0, ports=1)
    n = lib.t_gelu_lanes(1, P(u), len(u), int(t["lo"]), int(t["k"]), P(sl), P(ic), P(g))
    np.testing.assert_array_equal(g, want)
    v = report(lib)["violations"][0]
    assert v["array"] == "gelu_tab" and v["loop"] == "gelu_fold" and v["ports"] == 1 and v["accesses"] == 2
    assert n >= 60  # (nearly) every one of the 64 iterations: four lanes on one segment is rare
