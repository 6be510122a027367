// padless HLS library: integer GELU (I-BERT i-GELU) and ReLU with the requantization to int8, bit for
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

// Activation of one FFN row: int16 up-projection outputs -> int8 (GELU when is_gelu, else ReLU),
// requantized per channel with (m, shift), exactly golden.run_layer's FFN activation.
template <int F> void activation_row(const up_t u[F], bool is_gelu, int64_t b_int, int64_t c_int, int r,
                                     int64_t one, const int64_t m[F], const int64_t shift[F], act_t out[F]) {
act_loop:
    for (int c = 0; c < F; c++) {
#pragma HLS PIPELINE II = 1
        int64_t a = is_gelu ? i_gelu(u[c], b_int, c_int, r, one) : relu(u[c]);
        out[c] = (act_t)requantize<8>(a, m[c], (int)shift[c]);
    }
}

}  // namespace padless

#endif  // PADLESS_GELU_H
