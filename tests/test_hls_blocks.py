"""Each HLS C++ block of hw/hls/include/padless against its Python twin (quant.intops, sparse.selection,
sparse.attention, QLinear, sparse.weights), through a small g++-built ctypes library.

The shim below instantiates the header templates at fixed sizes; the library is built once per session
(twice: the C-simulation dot-product form and the PE x SIMD hardware form of linear.h)."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from padless.csim import ap_types_dir, compiler
from padless.codegen.hls import HW_INCLUDE
from padless.quant import intops
from padless.sparse import selection
from padless.sparse.attention import attention_heads
from padless.sparse.weights import index_bits, pack_bank_balanced, prune_weight

SHIM = r"""
#include "padless/attention.h"
#include "padless/gelu.h"
#include "padless/layernorm.h"
#include "padless/linear.h"
using namespace padless;
extern "C" {
int64_t t_floor_div(int64_t a, int64_t b) { return floor_div(a, b); }
void t_requantize(const int64_t *a, int n, int64_t m, int s, int bits, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = bits == 8 ? requantize<8>(a[i], m, s) : bits == 22 ? requantize<22>(a[i], m, s)
                                                                    : requantize<32>(a[i], m, s); }
void t_i_exp(const int64_t *x, int n, int64_t *o) { for (int i = 0; i < n; i++) o[i] = i_exp(x[i]); }
void t_softmax(const int32_t *s, int n, prob_t *p) { i_softmax<4096>(s, n, p); }
void t_isqrt(const int64_t *x, int n, int64_t *o) { for (int i = 0; i < n; i++) o[i] = isqrt<24>(x[i]); }
void t_layernorm(const int32_t *y, int rows, const int64_t *m, const int64_t *b, int sh, int8_t *o) {
    for (int r = 0; r < rows; r++) i_layernorm<64>(y + r * 64, m, b, sh, o + r * 64); }
void t_gelu(const int64_t *x, int n, int64_t b, int64_t c, int r, int64_t one, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = i_gelu(x[i], b, c, r, one); }
void t_gelu_pwl(const int64_t *x, int n, int64_t lo, int k, const int64_t *sl, const int64_t *ic, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = i_gelu_pwl(x[i], lo, k, sl, ic); }
void t_quantize4(const int8_t *x, int n, int col0, int8_t *q4) { quantize4<64, 16, 512>(x, n, col0, q4); }
void t_topk(const int32_t *est, int n, int k, uint16_t *out) {
    hls::stream<idx_t> s; topk_row<512, 512>(est, n, k, s); for (int t = 0; t < k; t++) out[t] = s.read(); }
void t_attention(const int8_t *q, const int8_t *k, const int8_t *v, int n, int kk, int64_t sm, int ss,
                 const int64_t *cm, const int64_t *cs, int8_t *ctx) {
    attention_seq<64, 4, 512, 512>(q, k, v, n, kk, sm, ss, cm, cs, ctx); }
void t_linear(const int8_t *x, int rows, const int8_t *w, const int32_t *bias, const int32_t *m, const int32_t *sh,
              int32_t *y) {
    int32_t wsum[96]; row_sums(w, 96, 64, wsum); Requant rq = {bias, m, sh};
    linear_dense<64, 96, 8, 16, 32, 22, int32_t>(x, rows, w, wsum, rq, y); }
void t_linear_sparse(const int8_t *x, int rows, const int8_t *vals, const uint16_t *idx, int per_bank,
                     const int32_t *bias, const int32_t *m, const int32_t *sh, int32_t *y) {
    Requant rq = {bias, m, sh};
    linear_sparse<64, 96, 16, 16, 8, 32, 22, int32_t>(x, rows, vals, idx, per_bank, rq, y); }
}
"""

P = lambda a: ctypes.c_void_p(a.ctypes.data)  # noqa: E731


def _build(tmp, fast: int):
    src = tmp / "shim.cpp"
    src.write_text(SHIM)
    lib = tmp / f"shim{fast}.so"
    cmd = [compiler(), "-O2", "-std=c++17", "-fPIC", "-shared", f"-DPADLESS_CSIM_FAST={fast}",
           f"-I{HW_INCLUDE.parent}", f"-I{ap_types_dir()}", str(src), "-o", str(lib)]
    subprocess.run(cmd, check=True, capture_output=True)
    L = ctypes.CDLL(str(lib))
    L.t_floor_div.restype = ctypes.c_int64
    L.t_floor_div.argtypes = [ctypes.c_int64, ctypes.c_int64]
    L.t_gelu_pwl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p,
                             ctypes.c_void_p, ctypes.c_void_p]
    for name in ("t_requantize", "t_gelu", "t_attention"):
        getattr(L, name).restype = None
    L.t_requantize.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    L.t_gelu.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int64,
                         ctypes.c_void_p]
    L.t_attention.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int,
                                                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return L


@pytest.fixture(scope="module", params=[1, 0], ids=["csim-form", "hw-form"])
def lib(request, tmp_path_factory):
    return _build(tmp_path_factory.mktemp(f"shim{request.param}"), request.param)


@pytest.fixture(scope="module")
def fastlib(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("shimfast"), 1)


rng = np.random.default_rng(7)


def test_floor_div_and_requantize(fastlib):
    for a, b in [(-7, 2), (7, 2), (-8, 2), (0, 3), (-1, 709), (-(1 << 40) - 3, 12345)]:
        assert fastlib.t_floor_div(a, b) == a // b
    acc = np.concatenate([rng.integers(-(1 << 30), 1 << 30, 2000), [0, -1, 1, (1 << 31) - 1, -(1 << 31)]]).astype(np.int64)
    for m, s, bits in [(1 << 30, 31, 8), (123456789, 40, 22), (5, 0, 32), (999, 3, 8), (1, 1, 8)]:
        out = np.empty_like(acc)
        fastlib.t_requantize(P(acc), len(acc), m, s, bits, P(out))
        np.testing.assert_array_equal(out, intops.requantize(acc, m, s, bits))


def test_i_exp_and_softmax(fastlib):
    x = np.concatenate([-np.arange(0, 40000, 7), [-(1 << 33), 0]]).astype(np.int64)
    out = np.empty_like(x)
    fastlib.t_i_exp(P(x), len(x), P(out))
    np.testing.assert_array_equal(out, intops.i_exp(x))
    cases = [rng.integers(-20000, 20000, n) for n in (1, 2, 37, 512, 4096)]
    cases += [np.full(9, 1234), np.array([2**31 - 1, -(2**31)]), np.zeros(300, np.int64)]  # all-equal, extremes
    for s in cases:
        s32 = np.ascontiguousarray(s, dtype=np.int32)
        p = np.empty(len(s32), np.uint16)  # prob_t: uint12 values in a uint16
        fastlib.t_softmax(P(s32), len(s32), P(p))
        np.testing.assert_array_equal(p, intops.i_softmax(s32.astype(np.int64)))


def test_isqrt_exact(fastlib):
    x = np.concatenate([np.arange(0, 5000), rng.integers(0, 1 << 46, 5000), [(1 << 46) - 1, (1 << 48) - 1]]).astype(np.int64)
    out = np.empty_like(x)
    fastlib.t_isqrt(P(x), len(x), P(out))
    np.testing.assert_array_equal(out, intops.isqrt(x))


def test_layernorm(fastlib):
    y = np.concatenate([rng.integers(-(1 << 21), 1 << 21, (20, 64)), np.full((1, 64), -5), np.zeros((1, 64))]).astype(np.int32)
    m, b, sh = intops.layernorm_params(rng.normal(1, 0.2, 64), rng.normal(0, 0.3, 64), 0.05)
    out = np.empty(y.shape, np.int8)
    m, b = np.ascontiguousarray(m, np.int64), np.ascontiguousarray(b, np.int64)
    fastlib.t_layernorm(P(y), len(y), P(m), P(b), sh, P(out))
    np.testing.assert_array_equal(out, intops.i_layernorm(y.astype(np.int64), m, b, sh))


def test_gelu(fastlib):
    g = intops.gelu_constants(0.002)
    x = np.arange(-(1 << 15), 1 << 15, 3, dtype=np.int64)
    out = np.empty_like(x)
    fastlib.t_gelu(P(x), len(x), g["b_int"], g["c_int"], g["shift"], g["one"], P(out))
    np.testing.assert_array_equal(out, intops.i_gelu(x, g["b_int"], g["c_int"], g["shift"], g["one"]))


@pytest.mark.parametrize("scale", [0.002, 12.0 / 32767, 1.0 / 1024])
def test_gelu_pwl(fastlib, scale):
    t = intops.gelu_pwl_table(scale)
    x = np.arange(-(1 << 15), 1 << 15, dtype=np.int64)
    out = np.empty_like(x)
    fastlib.t_gelu_pwl(P(x), len(x), t["lo"], t["k"], P(t["slope"]), P(t["icpt"]), P(out))
    np.testing.assert_array_equal(out, intops.i_gelu_pwl(x, t["lo"], t["k"], t["slope"], t["icpt"]))


def test_quantize4(fastlib):
    for n in (1, 5, 200):
        x = rng.integers(-128, 128, (n, 64)).astype(np.int8)
        x[:, 16:32] = 0 if n == 5 else x[:, 16:32]  # an all-zero head (M = 0)
        for col0 in (0, 16):
            q4 = np.empty((n, 16), np.int8)
            fastlib.t_quantize4(P(x), n, col0, P(q4))
            np.testing.assert_array_equal(q4, selection.quantize4(x[:, col0:col0 + 16]))


@pytest.mark.parametrize("n,k", [(1, 1), (10, 3), (10, 10), (300, 8), (512, 128), (512, 512)])
def test_topk(fastlib, n, k):
    for est in (rng.integers(-50, 50, n), np.zeros(n, np.int64), rng.integers(-2, 2, n)):  # ties, all equal
        e32 = np.ascontiguousarray(est, np.int32)
        out = np.empty(k, np.uint16)
        fastlib.t_topk(P(e32), n, k, P(out))
        np.testing.assert_array_equal(out, selection.topk_indices(e32[None, :], k)[0])


@pytest.mark.parametrize("n,cfg", [(1, None), (7, {"topk": 3}), (33, {"topk": 8}), (64, None),
                                   (512, {"density": 0.25, "min_k": 4}), (20, {"topk": 50})])
def test_attention(fastlib, n, cfg):
    """Sequence length 1, the compiled maximum (512), k >= n, dense and top-k."""
    from padless.sparse.attention import keep_count
    q, k, v = (rng.integers(-128, 128, (n, 64)).astype(np.int8) for _ in range(3))
    cm, cs = intops.dyadic(rng.uniform(0.001, 0.01, 64), 28)
    sm, ss = (int(a) for a in intops.dyadic(0.03, 24))
    ctx = np.empty((n, 64), np.int8)
    fastlib.t_attention(P(q), P(k), P(v), n, keep_count(n, cfg), sm, ss, P(cm), P(cs), P(ctx))
    want = attention_heads(q, k, v, 4, sm, ss, cm, cs, cfg)
    np.testing.assert_array_equal(ctx, want)


def _qlinear_params():
    bias = rng.integers(-(1 << 20), 1 << 20, 96).astype(np.int32)
    m, sh = intops.dyadic(rng.uniform(1e-3, 1e-1, 96), 32)
    return bias, m.astype(np.int32), sh.astype(np.int32)


@pytest.mark.parametrize("rows", [1, 7, 32])
def test_linear_dense(lib, rows):
    x = rng.integers(-128, 128, (rows, 64)).astype(np.int8)
    w = rng.integers(-127, 128, (96, 64)).astype(np.int8)
    bias, m, sh = _qlinear_params()
    y = np.empty((rows, 96), np.int32)
    lib.t_linear(P(x), rows, P(w), P(bias), P(m), P(sh), P(y))
    want = intops.requantize(x.astype(np.int64) @ w.T.astype(np.int64) + bias, m, sh, 22)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.0])
def test_linear_sparse(fastlib, sparsity):
    rows, bank = 9, 16
    x = rng.integers(-128, 128, (rows, 64)).astype(np.int8)
    w = prune_weight(rng.integers(-127, 128, (96, 64)).astype(np.int8), bank, sparsity)
    per_bank = int(max(1, np.ceil((1 - sparsity) * bank)))
    vals, packed = pack_bank_balanced(w, bank, per_bank)
    bits = index_bits(bank)
    stream = np.unpackbits(packed, bitorder="little")[: vals.size * bits].reshape(-1, bits)
    idx = (stream.astype(np.int64) << np.arange(bits)).sum(1).astype(np.uint16)
    bias, m, sh = _qlinear_params()
    y = np.empty((rows, 96), np.int32)
    vals = np.ascontiguousarray(vals)
    fastlib.t_linear_sparse(P(x), rows, P(vals), P(idx), per_bank, P(bias), P(m), P(sh), P(y))
    want = intops.requantize(x.astype(np.int64) @ w.T.astype(np.int64) + bias, m, sh, 22)
    np.testing.assert_array_equal(y, want)
