"""Every integer op against its float definition, with stated error bounds and hand-checked values."""
import math

import numpy as np
import pytest
from scipy.special import erf

from padless.quant import intops as I


def test_constants_hand_checked():
    assert I.Q_LN2 == 709            # floor(ln 2 * 1024)
    assert I.Q_EXP_B == 1385         # floor(1.353 * 1024)
    assert I.Q_EXP_C == 1006164      # floor(0.344 / (0.3585 * 2^-20))


def test_floor_semantics():
    assert I.floor_div(np.int64(-7), 2) == -4
    assert (np.int64(-7) >> 1) == -4


@pytest.mark.parametrize("acc,m,sh,bits,want", [
    (100, 1 << 30, 31, 8, 50),       # 100 * 0.5
    (101, 1 << 30, 31, 8, 51),       # 50.5 rounds half up
    (-101, 1 << 30, 31, 8, -50),     # -50.5 rounds half up -> -50
    (1000, 1 << 30, 30, 8, 127),     # saturates
    (-1000, 1 << 30, 30, 8, -128),
    (3, 5, 0, 8, 15),                # shift 0: plain product
])
def test_requantize_hand_cases(acc, m, sh, bits, want):
    assert int(I.requantize(np.array([acc]), m, sh, bits)[0]) == want


def test_dyadic_accuracy_and_bounds():
    scales = np.geomspace(1e-7, 1e3, 200)
    for acc_bits in (8, 24, 32):
        m, sh = I.dyadic(scales, acc_bits)
        mult_bits = min(31, 62 - acc_bits)
        assert np.all(m < (1 << mult_bits)) and np.all(m > 0) and np.all(sh >= 0)
        rel = np.abs(m / np.exp2(sh) - scales) / scales
        assert rel.max() < 2.0 ** -(mult_bits - 2)
    with pytest.raises(ValueError):
        I.dyadic(0.0, 8)


def test_requantize_matches_float_rounding():
    rng = np.random.default_rng(0)
    acc = rng.integers(-2**31, 2**31, 10000)
    scale = 3.7e-6
    m, sh = I.dyadic(scale, 32)
    got = I.requantize(acc, m, sh, 8)
    want = np.clip(np.floor(acc * (int(m) / 2.0 ** int(sh)) + 0.5), -128, 127)
    assert np.array_equal(got, want)


def test_i_exp_error_bound():
    x = np.arange(-30 * I.Q_LN2, 1)
    got = I.i_exp(x) * (I.EXP_A * 2.0 ** -20)
    want = np.exp(x / 1024.0)
    assert np.abs(got - want).max() < 3e-3   # I-BERT's polynomial: max error about 2e-3
    assert I.i_exp(np.array([0]))[0] == 2924389
    assert I.i_exp(np.array([-100000]))[0] == 0
    assert np.all(np.diff(I.i_exp(x)) >= 0)  # monotonic


def test_i_softmax_hand_and_bounds():
    p = I.i_softmax(np.array([[0, 0, 0, 0], [1024, 0, 0, 0]]))
    # factor floor(2^44 / (4 * 2924389)) = 1503919: (2924389 * 1503919 + 2^31) >> 32 = 1024;
    # row 2: e = 2924389, 3 x i_exp(-1024) = 1075532, sum 6150985, factor 2860059 -> 1947, 716
    assert p.tolist() == [[1024, 1024, 1024, 1024], [1947, 716, 716, 716]]
    assert I.i_softmax(np.array([[5]])).tolist() == [[4095]]  # one key: 4096 saturates at 4095
    # 4096 equal scores: sum e = 2^33.5 > 2^32; the 2^44 factor keeps every probability at 1 (2^-12)
    assert I.i_softmax(np.zeros((1, 4096), np.int64)).tolist() == [[1] * 4096]
    rng = np.random.default_rng(1)
    s = rng.integers(-8000, 8000, (200, 37))
    got = I.i_softmax(s) / 4096.0
    ref = np.exp(s / 1024.0 - (s / 1024.0).max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.abs(got - ref).max() < 3e-3      # i-exp's polynomial error dominates (half a step is 1.2e-4)
    assert np.all(np.abs(got.sum(1) - 1.0) <= s.shape[1] * 0.5 / 4096 + 1e-9)  # half a step per key


def test_isqrt_exact():
    rng = np.random.default_rng(2)
    n = np.concatenate([np.arange(0, 2000), rng.integers(0, 2**62, 5000)])
    assert np.array_equal(I.isqrt(n), np.array([math.isqrt(int(v)) for v in n]))


def test_i_gelu_error_bound():
    s = 12.0 / 32767
    c = I.gelu_constants(s)
    assert c["one"] >= 2**14 and c["one"] < 2**16
    x = np.arange(-32768, 32768)
    got = I.i_gelu(x, c["b_int"], c["c_int"], c["shift"], c["one"]) * c["out_scale"]
    xr = x * s
    want = 0.5 * xr * (1 + erf(xr / math.sqrt(2)))
    assert np.abs(got - want).max() < 0.02 * 12 / 10  # I-BERT reports ~1.8e-2 on [-10, 10]
    assert int(np.abs(I.i_gelu(x, c["b_int"], c["c_int"], c["shift"], c["one"])).max()) < 2**33


def test_i_layernorm_against_float():
    rng = np.random.default_rng(3)
    H = 384
    y = (rng.normal(0, 1, (50, H)) * 3e5 + rng.normal(0, 1e5, (50, 1))).astype(np.int64)
    y[:, 7] *= 6  # an outlier channel, as in real BERT residual streams
    gamma, beta = rng.normal(1, 0.2, H), rng.normal(0, 0.1, H)
    out_scale = np.full(H, 8.0 / 127)
    m, b, sh = I.layernorm_params(gamma, beta, out_scale)
    got = I.i_layernorm(y, m, b, sh) * out_scale
    yf = y.astype(np.float64)
    ref = (yf - yf.mean(1, keepdims=True)) / yf.std(1, keepdims=True) * gamma + beta
    assert np.abs(got - np.clip(ref, -128 * out_scale, 127 * out_scale)).max() <= 0.6 * 8 / 127 + 1e-3


def test_i_layernorm_constant_row():
    m, b, sh = I.layernorm_params(np.ones(8), np.full(8, 0.5), np.full(8, 1 / 64))
    out = I.i_layernorm(np.full((1, 8), 12345), m, b, sh)
    assert out.tolist() == [[32] * 8]   # variance 0: output is beta


def test_int_matmul_exact():
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (17, 1536))
    w = rng.integers(-127, 128, (1536, 33))
    assert np.array_equal(I.int_matmul(a, w), a.astype(object).dot(w.astype(object)).astype(np.int64))


def test_i_gelu_pwl_error_bound_and_bounds():
    for s in (12.0 / 32767, 3.0 / 32767, 40.0 / 32767):
        t = I.gelu_pwl_table(s)
        assert t["slope"].shape == (I.GELU_SEGMENTS,) and np.abs(t["slope"]).max() < 2**17
        x = np.arange(-32768, 32768)
        got = I.i_gelu_pwl(x, t["lo"], t["k"], t["slope"], t["icpt"]) * s
        xr = x * s
        want = 0.5 * xr * (1 + erf(xr / math.sqrt(2)))
        assert np.abs(got - want).max() < 4e-3 + s   # chord error (power-of-two segments) plus one step
        assert np.abs(I.i_gelu_pwl(x, t["lo"], t["k"], t["slope"], t["icpt"])).max() < 2**16


def test_i_gelu_pwl_hand_cases():
    t = I.gelu_pwl_table(1.0 / 1024)         # S = 2^-10: lo = -4096, 8192 steps / 64 -> k = 7
    assert (t["lo"], t["k"]) == (-4096, 7)
    f = lambda v: int(I.i_gelu_pwl(np.array([v]), t["lo"], t["k"], t["slope"], t["icpt"])[0])  # noqa: E731
    assert f(-5000) == 0 and f(5000) == 5000 and f(0) == 0
    assert abs(f(1024) - round(0.8413447 * 1024)) <= 2      # GELU(1) = 0.8413


def test_int_matmul_float32_path_exact_at_the_bound():
    """float32 BLAS is used for dot products of up to 1023 int8 x int8 terms: exact even at the extremes."""
    assert I.exact_float_dtype(1023) is np.float32 and I.exact_float_dtype(1024) is np.float64
    rng = np.random.default_rng(5)
    a = rng.choice(np.array([-128, 127]), (9, 1023))
    w = rng.choice(np.array([-127, 127]), (1023, 7))
    want = a.astype(object).dot(w.astype(object)).astype(np.int64)
    assert np.array_equal(I.int_matmul(a, w.astype(np.float32)), want)
    a[:] = -128
    w[:] = -127
    assert np.array_equal(I.int_matmul(a, w.astype(np.float32)), np.full((9, 7), 1023 * 128 * 127))
