"""THE integer operations of padless: each is defined once, here.

The golden model (``padless.golden``) composes these; the HLS C++ library
(``hw/hls/include/padless/intops.h``) and the RTL implement the same operations and must match them
bit for bit. docs/numerics.md gives every formula, bit width and overflow bound.

Conventions (all backends):
- Integers are held in int64 here; the bound of each intermediate is stated per function and checked by
  tests, so a C++ implementation knows which native width suffices.
- ``>>`` is an arithmetic shift (floor division by a power of two, toward -inf). Every division is a
  floor division (``//``); C++ implementations must use :func:`floor_div` semantics, not truncation.
- Rounding to nearest is ``(v + 2^(s-1)) >> s`` (round half up).

Method sources: I-BERT (Kim et al., ICML 2021, arXiv 2101.01321), sections 3.2-3.5 and its reference code
(``IntSoftmax``, ``IntGELU``, ``IntLayerNorm``, ``batch_frexp`` dyadic requantization).
"""
from __future__ import annotations

import math

import numpy as np

# --- fixed-point formats shared by every backend -------------------------------------------------
EXP_FRAC_BITS = 10          # attention scores enter i-exp as fixed point with scale 2^-10
EXP_CLAMP_LN2 = 30          # inputs of i-exp clamp at -30 ln2 (I-BERT)
SOFTMAX_K = 44              # factor = floor(2^44 / sum exp)  (I-BERT: 2^32; padless: 2^44, see i_softmax)
PROB_BITS = 12              # probabilities: uint12 with scale 2^-12, saturated at 4095 (padless; I-BERT: 8)
LN_K = 31                   # LayerNorm: factor = floor(2^31 / std)
LN_FRAC_BITS = 14           # normalised value (x - mean) / std as fixed point with scale 2^-14
RESIDUAL_BITS = 22          # residual stream entering LayerNorm: signed 22-bit per addend (I-BERT)
GELU_IN_BITS = 16           # GELU input: signed 16-bit
ERF_ONE_BITS = 14           # i-erf output rescaled so that 1.0 is in [2^14, 2^15)
GELU_SEGMENTS = 64          # piecewise-linear GELU: uniform segments over [-GELU_RANGE, GELU_RANGE)
GELU_RANGE = 4.0            # below: GELU = 0; above: GELU = x (errors < 1.4e-4 there)
GELU_FRAC_BITS = 16         # slope fixed point

# i-exp second-order polynomial on (-ln2, 0]: L(p) = a (p + b)^2 + c  (I-BERT, section 3.4)
EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344
# i-erf: erf(x) ~ sgn(x) [a (min(|x|, -b) + b)^2 + 1]  (I-BERT, section 3.5)
ERF_A, ERF_B = -0.2888, -1.769

Q_LN2 = int(math.floor(math.log(2) * 2 ** EXP_FRAC_BITS))                      # 709
Q_EXP_B = int(math.floor(EXP_B * 2 ** EXP_FRAC_BITS))                           # 1385
Q_EXP_C = int(math.floor(EXP_C / (EXP_A * 2.0 ** (-2 * EXP_FRAC_BITS))))        # 1006164


def floor_div(a, b):
    """Floor division (toward -inf), the one division of the numerics contract."""
    return np.floor_divide(a, b)


def saturate(x: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """Clamp to the range of a ``bits``-wide integer (two's complement when ``signed``)."""
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return np.clip(x, lo, hi)


def dyadic(scale, acc_bits: int, max_mult_bits: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """Dyadic approximation ``scale ~ m / 2^shift`` for requantization (I-BERT ``batch_frexp``).

    Args:
        scale: positive float or array (per channel).
        acc_bits: bits of the signed value that will be multiplied by ``m`` (so |acc * m| < 2^62).
        max_mult_bits: at most this many bits in ``m`` (31: a signed 32-bit multiplier).
    Returns:
        ``(m, shift)`` int64 arrays of scale's shape, ``0 <= m < 2^mult_bits``, ``0 <= shift <= 62``.
    Raises:
        ValueError for a non-positive or non-finite scale, or no room for a multiplier.
    """
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("requantization scales must be positive and finite")
    mult_bits = min(max_mult_bits, 62 - acc_bits)
    if mult_bits < 8:
        raise ValueError(f"accumulator of {acc_bits} bits leaves no room for a multiplier")
    # Largest shift with round(scale * 2^shift) < 2^mult_bits.
    shift = np.floor(mult_bits - np.log2(scale)).astype(np.int64) - 1
    shift = np.clip(shift, 0, 62)
    m = np.round(scale * np.exp2(shift.astype(np.float64))).astype(np.int64)
    over = m >= (1 << mult_bits)
    if np.any(over):
        shift = np.where(over, shift - 1, shift)
        m = np.round(scale * np.exp2(shift.astype(np.float64))).astype(np.int64)
    return m, shift


def requantize(acc: np.ndarray, m, shift, bits: int = 8, zero_point=0) -> np.ndarray:
    """``saturate(round(acc * m / 2^shift) + zero_point, bits)`` with round half up; int64 in and out.

    ``m``/``shift``/``zero_point`` broadcast against ``acc`` (per-channel along the last axis). The caller
    guarantees ``|acc * m| < 2^62`` (see :func:`dyadic`'s ``acc_bits``). ``zero_point`` (an integer in
    ``[-2^(bits-1), 0]``) makes the grid asymmetric: the real value of an output ``q`` is
    ``scale * (q - zero_point)`` (asymmetric quantization, Jacob et al., CVPR 2018, section 2.1; padless
    uses it for the FFN activation output, docs/numerics.md "Asymmetric GELU output").
    """
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    rnd = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
    return saturate(((acc * m + rnd) >> shift) + np.asarray(zero_point, dtype=np.int64), bits)


def i_exp(x: np.ndarray) -> np.ndarray:
    """Integer exp of ``x <= 0`` given as fixed point with scale 2^-EXP_FRAC_BITS (I-BERT i-exp).

    x is clamped at -30 ln2; ``z = floor(-x / q_ln2)``, ``p = x + z q_ln2`` in (-q_ln2, 0],
    ``L = (p + q_b)^2 + q_c`` (scale a 2^-20), result ``L >> z``. Returns int64 in [0, 2924389]
    (< 2^22) with scale ``EXP_A * 2^-20``; exp(0) -> 2924389 (1.0003 in real units).
    """
    x = np.maximum(np.asarray(x, dtype=np.int64), -EXP_CLAMP_LN2 * Q_LN2)
    z = floor_div(-x, Q_LN2)
    p = x + z * Q_LN2
    poly = (p + Q_EXP_B) * (p + Q_EXP_B) + Q_EXP_C
    return poly >> z


def i_softmax(scores: np.ndarray) -> np.ndarray:
    """Integer softmax over the last axis (I-BERT ``IntSoftmax``).

    Args:
        scores: ``(..., n)`` int64 fixed point with scale 2^-EXP_FRAC_BITS (n >= 1, n <= 4096).
    Returns:
        ``(..., n)`` int64 probabilities in [0, 4095], scale 2^-12 (``PROB_BITS``):
        ``(e * floor(2^44 / sum e) + 2^31) >> 32`` saturated at 4095, where ``e = i_exp(s - max s)``.
        Bounds: e < 2^22, sum e < 2^34, 2^10 <= factor <= 2^23, e * factor <= 2^44, + 2^31 < 2^45.
    Departures from I-BERT *(padless, docs/numerics.md "Softmax")*:

    * rounding to nearest, not floor: floor biases every probability down by half a step, so the
      probabilities of a 27-token row summed to about 0.95 (8-bit) and every context vector shrank;
    * 12-bit probabilities, not 8: at 256 keys the mean probability is 2^-8, one 8-bit step, so most
      probabilities were 0 or 1 step; on 64 Reuters articles of 200-256 tokens the int8 model's mean cosine
      to fp32 goes from 0.9856 (8-bit) to 0.9907 (12-bit); the AV product is still one DSP (12 x 8 bits);
    * ``2^44 / sum`` instead of ``2^32 / sum``: with ``2^32`` the factor's floor loses up to 1/factor of
      every probability, and the factor falls to 0 (every probability 0) once ``sum e > 2^32``, i.e. for
      rows of more than 1,468 near-equal scores; with ``2^44`` the factor stays >= 2^10 up to n = 4096.
    """
    s = np.asarray(scores, dtype=np.int64)
    e = i_exp(s - s.max(axis=-1, keepdims=True))
    total = e.sum(axis=-1, keepdims=True)
    factor = floor_div(np.int64(1) << SOFTMAX_K, total)
    sh = SOFTMAX_K - PROB_BITS
    return saturate((e * factor + (np.int64(1) << (sh - 1))) >> sh, PROB_BITS, signed=False)


def isqrt(n: np.ndarray) -> np.ndarray:
    """Integer square root ``floor(sqrt(n))`` of ``n >= 0`` (I-BERT's Newton iteration).

    ``x0 = 2^ceil(bits(n) / 2)``; ``x <- floor((x + floor(n / x)) / 2)`` while it decreases. Exact for
    n < 2^62. int64 in and out.
    """
    n = np.asarray(n, dtype=np.int64)
    if np.any(n < 0):
        raise ValueError("isqrt of a negative number")
    bits = np.zeros(n.shape, dtype=np.int64)
    v = n.copy()
    while np.any(v > 0):
        nz = v > 0
        bits += nz
        v >>= 1
    x = np.left_shift(np.int64(1), (bits + 1) // 2)
    x = np.where(n == 0, 1, x)
    while True:
        y = (x + floor_div(n, x)) >> 1
        dec = (y < x) & (n > 0)
        if not np.any(dec):
            break
        x = np.where(dec, y, x)
    return np.where(n == 0, 0, x)


def i_layernorm(y: np.ndarray, m: np.ndarray, b: np.ndarray, shift: int) -> np.ndarray:
    """Integer LayerNorm over the last axis (I-BERT ``IntLayerNorm`` with gamma/beta folded into an
    output requantization).

    Args:
        y: ``(rows, H)`` int64, the residual sum: two signed 22-bit addends, so |y| < 2^22.
        m: ``(H,)`` int64 per-channel multipliers ``round(gamma_c / s_out * 2^(shift - 14))``.
        b: ``(H,)`` int64 per-channel offsets ``round(beta_c / s_out * 2^shift)``.
        shift: output shift (int).
    Returns:
        ``(rows, H)`` int64 int8 values with scale s_out.
    Steps: ``mean = floor(sum y / H)``; ``c = y - mean`` (|c| < 2^23); ``var = floor(sum c^2 / H)``
    (< 2^46); ``std = isqrt(var)``; ``factor = floor(2^31 / max(std, 1))``; ``z = (c * factor) >> 17``
    (scale 2^-14, |z| <= sqrt(H) 2^15); ``out = saturate((z m + b + 2^(shift-1)) >> shift, 8)``.
    """
    y = np.asarray(y, dtype=np.int64)
    H = y.shape[-1]
    mean = floor_div(y.sum(axis=-1, keepdims=True), H)
    c = y - mean
    var = floor_div((c * c).sum(axis=-1, keepdims=True), H)
    std = np.maximum(isqrt(var), 1)
    factor = floor_div(np.int64(1) << LN_K, std)
    z = (c * factor) >> (LN_K - LN_FRAC_BITS)
    return saturate((z * m + b + (np.int64(1) << (shift - 1))) >> shift, 8)


def layernorm_params(gamma: np.ndarray, beta: np.ndarray, out_scale: float,
                     mult_bits: int = 24) -> tuple[np.ndarray, np.ndarray, int]:
    """``(m, b, shift)`` for :func:`i_layernorm` from float gamma, beta ``(H,)`` and the int8 output
    scale (scalar or ``(H,)`` per channel). One shift for all channels, chosen so that max |m| < 2^mult_bits (z m < 2^45)."""
    out_scale = np.asarray(out_scale, dtype=np.float64)
    g = np.asarray(gamma, dtype=np.float64) * 2.0 ** -LN_FRAC_BITS / out_scale
    gmax = max(float(np.abs(g).max()), 1e-30)
    shift = int(np.clip(np.floor(mult_bits - 1 - np.log2(gmax)), 1, 62))
    m = np.round(g * 2.0 ** shift).astype(np.int64)
    b = np.round(np.asarray(beta, dtype=np.float64) / out_scale * 2.0 ** shift).astype(np.int64)
    return m, b, shift


def gelu_constants(in_scale: float) -> dict:
    """Integer constants of :func:`i_gelu` for int16 inputs of real scale ``in_scale`` (I-BERT IntGELU).

    With ``S = in_scale / sqrt(2)`` (the erf argument's scale): ``b_int = floor(ERF_B / S)``,
    ``c_int = floor(1 / (ERF_A S^2))`` (negative; I-BERT's c = 1/a), erf scale ``a S^2``; then the erf
    value is shifted right by ``r`` so that ``one = floor(1 / (a S^2 2^r))`` (>= 2^14) fits 16 bits.
    Returns ``{"b_int", "c_int", "shift", "one", "out_scale"}``; out_scale = in_scale * |a| S^2 2^r / 2
    is the real scale of :func:`i_gelu`'s result.
    """
    S = in_scale / math.sqrt(2.0)
    b_int = int(math.floor(ERF_B / S))
    c_int = int(math.floor(1.0 / (ERF_A * S * S)))
    erf_scale = abs(ERF_A) * S * S
    r = max(0, int(math.floor(math.log2(1.0 / erf_scale))) - ERF_ONE_BITS)
    one = int(math.floor(1.0 / (erf_scale * 2 ** r)))
    return {"b_int": b_int, "c_int": c_int, "shift": r, "one": one,
            "out_scale": in_scale * erf_scale * 2 ** r / 2.0}


def i_gelu(x: np.ndarray, b_int: int, c_int: int, shift: int, one: int) -> np.ndarray:
    """Integer GELU of signed 16-bit ``x`` (I-BERT i-GELU); constants from :func:`gelu_constants`.

    ``erf = sgn(x) * ((min(|x|, -b) + b)^2 + c)`` (the polynomial times -1/a, so its sign follows
    I-BERT's negative a), ``erf = floor(-erf / 2^shift)`` in [-one, one], ``out = x * (erf + one)``.
    Bounds: (min(|x|,-b)+b)^2 and |c| < 2^(15+shift+1); |erf| <= one < 2^16; |out| < 2^33.
    """
    x = np.asarray(x, dtype=np.int64)
    sign = np.sign(x)
    a = np.minimum(np.abs(x), -b_int)
    poly = sign * ((a + b_int) * (a + b_int) + c_int)
    erf = floor_div(-poly, np.int64(1) << shift)
    return x * (erf + one)


def gelu_pwl_table(in_scale: float) -> dict:
    """Integer constants of :func:`i_gelu_pwl` for int16 inputs of real scale ``in_scale`` *(padless)*.

    The input range [-4, 4) is cut into 64 uniform segments of ``2^k`` integer steps starting at ``lo``
    (``lo = floor(-4 / S)``, ``k = ceil(log2(ceil(8 / S) / 64))``); on each segment GELU is replaced by
    its chord: ``slope = (g(x1) - g(x0)) / (x1 - x0)`` and ``icpt = g(x0) - slope x0``, stored as
    ``slope_q = round(slope 2^16)`` (< 2^17) and ``icpt_q = round(icpt / S 2^16)``. The segment width is
    rounded up to a power of two (a shift selects the segment), so 32 to 64 segments cover [-4, 4): max
    error vs GELU below 4e-3 (I-BERT's i-GELU: 1.8e-2). Returns ``{"lo", "k", "slope", "icpt"}``
    (slope/icpt ``(64,)`` int64).
    """
    from ..reference import gelu as g  # the float GELU the model is measured against

    S = float(in_scale)
    lo = int(math.floor(-GELU_RANGE / S))
    span = int(math.ceil(GELU_RANGE / S)) - lo
    k = max(0, int(math.ceil(math.log2(span / GELU_SEGMENTS))))
    x0 = (lo + np.arange(GELU_SEGMENTS, dtype=np.float64) * (1 << k)) * S
    x1 = x0 + (1 << k) * S
    slope = (g(x1) - g(x0)) / (x1 - x0)
    icpt = g(x0) - slope * x0
    return {"lo": lo, "k": k, "slope": np.round(slope * 2.0 ** GELU_FRAC_BITS).astype(np.int64),
            "icpt": np.round(icpt / S * 2.0 ** GELU_FRAC_BITS).astype(np.int64)}


def i_gelu_pwl(x: np.ndarray, lo: int, k: int, slope: np.ndarray, icpt: np.ndarray) -> np.ndarray:
    """Piecewise-linear integer GELU of signed 16-bit ``x`` *(padless)*; constants from
    :func:`gelu_pwl_table`. Output in units of the input scale.

    ``x < lo``: 0; ``x >= lo + 64 * 2^k``: x; else with ``s = (x - lo) >> k``:
    ``(slope[s] x + icpt[s] + 2^15) >> 16``. Bounds: |slope x| < 2^32, |out| < 2^16.
    Hardware: a 64-entry ROM and one multiply per element (no DSP-heavy polynomial).
    """
    x = np.asarray(x, dtype=np.int64)
    seg = np.clip((x - lo) >> k, 0, GELU_SEGMENTS - 1)
    y = (slope[seg] * x + icpt[seg] + (np.int64(1) << (GELU_FRAC_BITS - 1))) >> GELU_FRAC_BITS
    y = np.where(x < lo, 0, y)
    return np.where(x >= lo + (GELU_SEGMENTS << k), x, y)


def relu(x: np.ndarray) -> np.ndarray:
    """Integer ReLU."""
    return np.maximum(np.asarray(x, dtype=np.int64), 0)


def exact_float_dtype(inner: int, max_product: int = 128 * 128) -> type:
    """The float type whose matrix product of small integers is exact for ``inner``-long dot products:
    float32 while every partial sum stays below 2^24 (``inner * max_product < 2^24``: int8 x int8 with
    inner <= 1023), else float64 (exact below 2^53)."""
    return np.float32 if inner * max_product < (1 << 24) else np.float64


def int_matmul(x: np.ndarray, w_t: np.ndarray) -> np.ndarray:
    """Exact integer product ``(rows, in) @ (in, out)`` -> int64.

    The operands are small integers (int8 x int8, uint8 x int8); the product runs in floating point
    through BLAS, which is exact while every partial sum is representable: ``w_t``'s dtype should come
    from :func:`exact_float_dtype` (float64 when in doubt); ``x`` is converted to the same dtype.
    """
    w_t = np.asarray(w_t)
    dt = w_t.dtype if w_t.dtype in (np.float32, np.float64) else np.float64
    return (np.asarray(x, dtype=dt) @ np.asarray(w_t, dtype=dt)).astype(np.int64)
