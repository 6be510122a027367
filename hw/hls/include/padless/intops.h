// padless HLS library: the integer operations, bit for bit those of sw/padless/quant/intops.py.
//
// Conventions (the numerics contract, docs/numerics.md):
//  - `>>` on a signed value is an arithmetic shift (floor division by 2^s); g++ and Vitis HLS both
//    shift arithmetically, so it is used directly.
//  - every division is a floor division (toward -inf): C++ `/` truncates toward zero, so division goes
//    through floor_div() wherever the dividend can be negative.
//  - rounding to nearest is (v + 2^(s-1)) >> s (round half up).
// Method sources: I-BERT (Kim et al., ICML 2021, arXiv 2101.01321), sections 3.2-3.5 and its reference
// code (IntSoftmax, IntGELU, IntLayerNorm, batch_frexp).
#ifndef PADLESS_INTOPS_H
#define PADLESS_INTOPS_H

#include "types.h"

namespace padless {

// Fixed-point formats shared by every backend (must equal intops.py's constants).
static const int EXP_FRAC_BITS = 10;
static const int EXP_CLAMP_LN2 = 30;
static const int SOFTMAX_K = 44;
static const int PROB_BITS = 12;
static const int LN_K = 31;
static const int LN_FRAC_BITS = 14;
static const int RESIDUAL_BITS = 22;
static const int GELU_IN_BITS = 16;
static const int GELU_SEGMENTS = 64;    // piecewise-linear GELU (intops.GELU_SEGMENTS)
static const int GELU_FRAC_BITS = 16;   // its slope fixed point
static const int64_t Q_LN2 = 709;        // floor(ln2 * 2^10)
static const int64_t Q_EXP_B = 1385;     // floor(1.353 * 2^10)
static const int64_t Q_EXP_C = 1006164;  // floor(0.344 / (0.3585 * 2^-20))

// Floor division (toward -inf) of a by b > 0.
inline int64_t floor_div(int64_t a, int64_t b) {
#pragma HLS INLINE
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Clamp to the range of a signed BITS-wide integer.
template <int BITS> inline int64_t saturate(int64_t x) {
#pragma HLS INLINE
    return x < srange<BITS>::lo ? srange<BITS>::lo : (x > srange<BITS>::hi ? srange<BITS>::hi : x);
}

// saturate(round(acc * m / 2^shift), BITS), round half up. The caller guarantees |acc * m| < 2^62.
template <int BITS> inline int64_t requantize(int64_t acc, int64_t m, int shift) {
#pragma HLS INLINE
    int64_t rnd = (int64_t(1) << shift) >> 1;  // 2^(shift-1), 0 for shift 0
    return saturate<BITS>((acc * m + rnd) >> shift);
}

// Integer exp of x <= 0 (scale 2^-10), I-BERT i-exp. Result in [0, 2924389] (< 2^22), scale 0.3585 * 2^-20.
inline int32_t i_exp(int64_t x) {
#pragma HLS INLINE
    const int64_t lo = -EXP_CLAMP_LN2 * Q_LN2;
    if (x < lo) x = lo;
    int64_t z = (-x) / Q_LN2;          // -x >= 0: truncation is the floor
    int64_t p = x + z * Q_LN2;         // in (-q_ln2, 0]
    int64_t t = p + Q_EXP_B;
    int64_t poly = t * t + Q_EXP_C;    // < 2^22
    return (int32_t)(poly >> z);
}

// Integer softmax of n scores (scale 2^-10) into uint12 probabilities (scale 2^-12), I-BERT IntSoftmax
// with padless's precision: e = i_exp(s - max s), factor = floor(2^44 / sum e),
// p = min(4095, (e * factor + 2^31) >> 32) (round to nearest, intops.i_softmax).
// N_MAX bounds n for synthesis (loop trip counts, buffer sizes); 1 <= n <= N_MAX.
template <int N_MAX> void i_softmax(const score_t *s, int n, prob_t *p) {
    int32_t e[N_MAX];
    score_t mx = s[0];
max_loop:
    for (int j = 1; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
        mx = s[j] > mx ? s[j] : mx;
    }
    int64_t total = 0;
exp_loop:
    for (int j = 0; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
        e[j] = i_exp((int64_t)s[j] - (int64_t)mx);
        total += e[j];
    }
    int64_t factor = (int64_t(1) << SOFTMAX_K) / total;  // total >= e(max) > 0
norm_loop:
    for (int j = 0; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
        int64_t v = ((int64_t)e[j] * factor + (int64_t(1) << (SOFTMAX_K - PROB_BITS - 1))) >> (SOFTMAX_K - PROB_BITS);
        const int64_t pmax = (int64_t(1) << PROB_BITS) - 1;
        p[j] = (prob_t)(v > pmax ? pmax : v);
    }
}

// floor(sqrt(n)) for 0 <= n < 2^(2*HALF_BITS): bit-serial restoring square root, a fixed HALF_BITS
// iterations (the hardware form; the value equals intops.isqrt's Newton iteration, both are exact).
template <int HALF_BITS> inline int64_t isqrt(int64_t n) {
    uint64_t rem = (uint64_t)n, root = 0;
    uint64_t bit = uint64_t(1) << (2 * HALF_BITS - 2);
isqrt_loop:
    for (int i = 0; i < HALF_BITS; i++) {
#pragma HLS PIPELINE II = 1
        if (rem >= root + bit) {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return (int64_t)root;
}

}  // namespace padless

#endif  // PADLESS_INTOPS_H
