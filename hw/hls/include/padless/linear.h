// padless HLS library: int8 linear layers (GEMM over a tile of token rows) with fused dyadic
// requantization, PE x SIMD parallel, for dense or bank-balanced sparse weights.
//
// y[r][o] = requantize(sum_i x[r][i] * W[o][i] + bias[o], m[o], shift[o]) saturated to OUT_BITS,
// exactly QLinear.__call__ of sw/padless/quant/quantize.py.
//
// Hardware form (synthesis, or PADLESS_CSIM_FAST=0): PE output channels x SIMD input lanes per cycle;
// the inner (i0) loop is pipelined at II=1 with the PE x SIMD multipliers fully unrolled, so the weight
// buffer is partitioned cyclic by SIMD on the input axis and by PE on the output axis (see the top).
//
// C-simulation form (g++, default): the same exact integer dot products, computed as
// (x + 128) . w - 128 * sum(w) so that the compiler maps them onto unsigned x signed 8-bit dot-product
// instructions (x86 AVX-512/AVX VNNI vpdpbusd, otherwise pmaddubsw/pmaddwd). Integer arithmetic is
// exact, so both forms give the same bits; tests/test_hls_blocks.py checks both against the Python twin.
#ifndef PADLESS_LINEAR_H
#define PADLESS_LINEAR_H

#include "intops.h"

#ifndef PADLESS_CSIM_FAST
#ifdef __SYNTHESIS__
#define PADLESS_CSIM_FAST 0
#else
#define PADLESS_CSIM_FAST 1
#endif
#endif

namespace padless {

// Per-output-channel requantization parameters of one linear layer.
struct Requant {
    const int32_t *bias;   // (OUT,) int32 bias at the accumulator scale
    const int32_t *m;      // (OUT,) dyadic multiplier, 0 <= m < 2^31
    const int32_t *shift;  // (OUT,) dyadic shift, 0 <= shift <= 62
};

// Stores x + 128 as uint8 (x ^ 0x80): the unsigned operand of the C-simulation dot product.
inline void offset_u8(const act_t *x, int count, uint8_t *xu) {
    for (int i = 0; i < count; i++) xu[i] = (uint8_t)((uint8_t)x[i] ^ 0x80u);
}

// sum over i of xu[i] * w[i] (uint8 x int8 -> int32), n <= 2^16.
inline int32_t dot_u8s8(const uint8_t *xu, const int8_t *w, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += (int32_t)xu[i] * (int32_t)w[i];
    return s;
}

// sum over i of p[i] * v[i] (uint12 softmax probabilities x int8 -> int32): |sum| <= 128 * sum p < 2^20.
inline int32_t dot_p_s8(const prob_t *p, const int8_t *v, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += (int32_t)p[i] * (int32_t)v[i];
    return s;
}

// Row sums of a (rows, n) int8 matrix: the -128 * sum(w) correction of the C-simulation dot product.
inline void row_sums(const int8_t *w, int rows, int n, int32_t *sums) {
    for (int r = 0; r < rows; r++) {
        int32_t s = 0;
        for (int i = 0; i < n; i++) s += w[(int64_t)r * n + i];
        sums[r] = s;
    }
}

// Dense linear over `rows` token rows (rows <= ROWS_MAX).
//   x: (rows, IN) int8; w: (OUT, IN) int8 row-major; wsum: (OUT,) row sums of w (C-simulation form
//   only; may be null for the hardware form); y: (rows, OUT) OUT_T, requantized to OUT_BITS.
template <int IN, int OUT, int PE, int SIMD, int ROWS_MAX, int OUT_BITS, typename OUT_T>
void linear_dense(const act_t *x, int rows, const wgt_t *w, const int32_t *wsum, Requant rq, OUT_T *y) {
    static_assert(IN % SIMD == 0, "SIMD must divide the input size");
    static_assert(OUT % PE == 0, "PE must divide the output size");
#if PADLESS_CSIM_FAST
    static uint8_t xu[ROWS_MAX * IN];
    static int32_t accb[ROWS_MAX * OUT];
    offset_u8(x, rows * IN, xu);
    const int G = (OUT % 4 == 0) ? 4 : 1;
    for (int o = 0; o < OUT; o += G) {
        const int8_t *w0 = w + (int64_t)o * IN;
        for (int r = 0; r < rows; r++) {
            const uint8_t *xr = xu + (int64_t)r * IN;
            if (G == 4) {
                int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (int i = 0; i < IN; i++) {
                    int32_t xv = xr[i];
                    s0 += xv * w0[i];
                    s1 += xv * w0[IN + i];
                    s2 += xv * w0[2 * IN + i];
                    s3 += xv * w0[3 * IN + i];
                }
                int32_t *a = accb + (int64_t)r * OUT + o;
                a[0] = s0 - 128 * wsum[o];
                a[1] = s1 - 128 * wsum[o + 1];
                a[2] = s2 - 128 * wsum[o + 2];
                a[3] = s3 - 128 * wsum[o + 3];
            } else {
                accb[(int64_t)r * OUT + o] = dot_u8s8(xr, w0, IN) - 128 * wsum[o];
            }
        }
    }
    // Requantization as a separate channel loop so that it vectorizes (int64 lanes).
    for (int r = 0; r < rows; r++) {
        const int32_t *a = accb + (int64_t)r * OUT;
        OUT_T *yr = y + (int64_t)r * OUT;
        for (int o = 0; o < OUT; o++) yr[o] = (OUT_T)requantize<OUT_BITS>((int64_t)a[o] + rq.bias[o], rq.m[o], rq.shift[o]);
    }
#else
lin_pe:
    for (int o0 = 0; o0 < OUT; o0 += PE) {
    lin_row:
        for (int r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS_MAX
            acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
            for (int p = 0; p < PE; p++) acc[p] = 0;
        lin_simd:
            for (int i0 = 0; i0 < IN; i0 += SIMD) {
#pragma HLS PIPELINE II = 1
                for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    acc_t s = 0;
                    for (int j = 0; j < SIMD; j++) {
#pragma HLS UNROLL
                        s += (acc_t)x[(int64_t)r * IN + i0 + j] * (acc_t)w[(int64_t)(o0 + p) * IN + i0 + j];
                    }
                    acc[p] += s;
                }
            }
            for (int p = 0; p < PE; p++) {
#pragma HLS PIPELINE II = 1
                int64_t a = (int64_t)acc[p] + rq.bias[o0 + p];
                y[(int64_t)r * OUT + o0 + p] = (OUT_T)requantize<OUT_BITS>(a, rq.m[o0 + p], rq.shift[o0 + p]);
            }
        }
    }
#endif
}

// Bank-balanced sparse linear (Cao et al., FPGA 2019): each weight row of IN inputs is split into
// IN / BANK banks of BANK consecutive inputs and keeps the same number `per_bank` of slots per bank,
// stored as values plus in-bank indices (the packed format of sw/padless/sparse/weights.py). Every PE
// has the same work (IN / BANK * per_bank MACs per row) and the IN / BANK lanes of one cycle read
// distinct banks of x, so they never conflict on memory (x is partitioned block-wise by BANK).
//   vals: (OUT, IN / BANK, per_bank) int8 row-major; idx: same shape, in-bank positions 0 .. BANK-1;
//   x: (rows, IN) int8; y: (rows, OUT) OUT_T. 1 <= per_bank <= P_MAX <= BANK.
template <int IN, int OUT, int BANK, int P_MAX, int PE, int ROWS_MAX, int OUT_BITS, typename OUT_T>
void linear_sparse(const act_t *x, int rows, const wgt_t *vals, const uint16_t *idx, int per_bank, Requant rq,
                   OUT_T *y) {
    static_assert(IN % BANK == 0, "BANK must divide the input size");
    static_assert(OUT % PE == 0, "PE must divide the output size");
    const int NB = IN / BANK;
    const int NNZ = NB * per_bank;
sp_pe:
    for (int o0 = 0; o0 < OUT; o0 += PE) {
    sp_row:
        for (int r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ROWS_MAX
            const act_t *xr = x + (int64_t)r * IN;
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                const int o = o0 + p;
                const wgt_t *v = vals + (int64_t)o * NNZ;
                const uint16_t *ix = idx + (int64_t)o * NNZ;
                acc_t acc = 0;
            sp_slot:
                for (int t = 0; t < per_bank; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = P_MAX
#pragma HLS PIPELINE II = 1
                    for (int b = 0; b < NB; b++) {
#pragma HLS UNROLL
                        const int e = b * per_bank + t;
                        acc += (acc_t)xr[b * BANK + ix[e]] * (acc_t)v[e];
                    }
                }
                int64_t a = (int64_t)acc + rq.bias[o];
                y[(int64_t)r * OUT + o] = (OUT_T)requantize<OUT_BITS>(a, rq.m[o], rq.shift[o]);
            }
        }
    }
}

}  // namespace padless

#endif  // PADLESS_LINEAR_H
