// padless HLS library: integer GELU (piecewise-linear, or I-BERT i-GELU) and ReLU with the requantization to int8, bit for
// bit intops.i_gelu / golden.run_layer of sw/padless.
#ifndef PADLESS_GELU_H
#define PADLESS_GELU_H

#include "intops.h"

namespace padless {

// Integer GELU of a signed 16-bit value (I-BERT i-GELU, intops.i_gelu):
// erf = floor(-sgn(x) ((min(|x|, -b) + b)^2 + c) / 2^r), out = x (erf + one); |out| < 2^33.
inline int64_t i_gelu(int64_t x, int64_t b_int, int64_t c_int, int r, int64_t one) {
#pragma HLS INLINE
    int64_t ax = x < 0 ? -x : x;
    int64_t a = ax < -b_int ? ax : -b_int;
    int64_t t = a + b_int;
    int64_t poly = t * t + c_int;
    poly = x < 0 ? -poly : (x == 0 ? 0 : poly);  // sgn(x) * poly, branch-free
    int64_t erf = (-poly) >> r;  // arithmetic shift: floor division by 2^r
    return x * (erf + one);
}

// Integer ReLU.
inline int64_t relu(int64_t x) {
#pragma HLS INLINE
    return x > 0 ? x : 0;
}

// Piecewise-linear integer GELU (intops.i_gelu_pwl): 64 uniform segments of 2^k steps from lo;
// x < lo -> 0, x >= lo + 64 * 2^k -> x, else (slope[s] x + icpt[s] + 2^15) >> 16 with s = (x - lo) >> k.
// A 64-entry ROM and one multiply per element.
inline int64_t i_gelu_pwl(int64_t x, int64_t lo, int k, const int64_t slope[GELU_SEGMENTS],
                          const int64_t icpt[GELU_SEGMENTS]) {
#pragma HLS INLINE
    if (x < lo) return 0;
    int64_t s = (x - lo) >> k;
    if (s >= GELU_SEGMENTS) return x;
    return (slope[s] * x + icpt[s] + (int64_t(1) << (GELU_FRAC_BITS - 1))) >> GELU_FRAC_BITS;
}

// FFN activation kinds of weights.bin (codegen/weights.py ACT_KIND).
enum ActKind { ACT_RELU = 0, ACT_GELU_IBERT = 1, ACT_GELU_PWL = 2 };

// Activation of one FFN row: int16 up-projection outputs -> int8 (ReLU, I-BERT i-GELU or the
// piecewise-linear GELU), requantized per channel with (m, shift), exactly golden.run_layer's FFN activation.
template <int F> void activation_row(const up_t u[F], int kind, int64_t b_int, int64_t c_int, int r,
                                     int64_t one, int64_t lo, int k, const int64_t slope[GELU_SEGMENTS],
                                     const int64_t icpt[GELU_SEGMENTS], const int64_t m[F],
                                     const int64_t shift[F], act_t out[F]) {
act_loop:
    for (int c = 0; c < F; c++) {
#pragma HLS PIPELINE II = 1
        int64_t a = kind == ACT_GELU_PWL     ? i_gelu_pwl(u[c], lo, k, slope, icpt)
                    : kind == ACT_GELU_IBERT ? i_gelu(u[c], b_int, c_int, r, one)
                                             : relu(u[c]);
        out[c] = (act_t)requantize<8>(a, m[c], (int)shift[c]);
    }
}

}  // namespace padless

#endif  // PADLESS_GELU_H
