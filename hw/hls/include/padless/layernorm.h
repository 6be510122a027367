// padless HLS library: integer LayerNorm (I-BERT IntLayerNorm with integer sqrt) and the residual add
// that feeds it, bit for bit intops.i_layernorm / golden.run_layer of sw/padless.
#ifndef PADLESS_LAYERNORM_H
#define PADLESS_LAYERNORM_H

#include "intops.h"

namespace padless {

// Integer LayerNorm of one row of H residual sums (|y| < 2^22), gamma/beta folded into (m, b, shift)
// (intops.i_layernorm): mean = floor(sum/H), c = y - mean, var = floor(sum c^2 / H) (< 2^46),
// std = max(isqrt(var), 1), factor = floor(2^31 / std), z = (c * factor) >> 17,
// out = saturate8((z m + b + 2^(shift-1)) >> shift).
template <int H> void i_layernorm(const int32_t y[H], const int64_t m[H], const int64_t b[H], int shift,
                                  act_t out[H]) {
    int64_t sum = 0;
ln_sum:
    for (int c = 0; c < H; c++) {
#pragma HLS PIPELINE II = 1
        sum += y[c];
    }
    int64_t mean = floor_div(sum, H);
    int64_t sq = 0;
ln_var:
    for (int c = 0; c < H; c++) {
#pragma HLS PIPELINE II = 1
        int64_t d = (int64_t)y[c] - mean;
        sq += d * d;
    }
    int64_t var = sq / H;  // sq >= 0
    int64_t sd = isqrt<24>(var);
    if (sd < 1) sd = 1;
    int64_t factor = (int64_t(1) << LN_K) / sd;
    int64_t rnd = int64_t(1) << (shift - 1);
ln_out:
    for (int c = 0; c < H; c++) {
#pragma HLS PIPELINE II = 1
        int64_t z = (((int64_t)y[c] - mean) * factor) >> (LN_K - LN_FRAC_BITS);
        out[c] = (act_t)saturate<8>((z * m[c] + b[c] + rnd) >> shift);
    }
}

// Residual add of one row: y[c] = a[c] + requantize22(x[c], m[c], shift[c]) where a is the 22-bit
// output of the O / FFN-down projection and x the int8 input of the sub-layer (|y| < 2^22).
template <int H> void residual_add(const int32_t a[H], const act_t x[H], const int64_t m[H],
                                   const int64_t shift[H], int32_t y[H]) {
res_loop:
    for (int c = 0; c < H; c++) {
#pragma HLS PIPELINE II = 1
        // Both addends are signed 22-bit (res_t) and the sum 23-bit (ressum_t); held in int32 here so
        // C-simulation runs at native speed (Vitis HLS narrows the operators to the bits they use).
        int32_t r = (int32_t)requantize<RESIDUAL_BITS>(x[c], m[c], (int)shift[c]);
        y[c] = a[c] + r;
    }
}

}  // namespace padless

#endif  // PADLESS_LAYERNORM_H
