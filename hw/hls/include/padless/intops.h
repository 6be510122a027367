// padless HLS library: the integer operations, bit for bit those of sw/padless/quant/intops.py.
//
// Conventions (the numerics contract, docs/numerics.md):
//  - `>>` on a signed value is an arithmetic shift (floor division by 2^s);
//  - every division is a floor division (toward -inf);
//  - rounding to nearest is (v + 2^(s-1)) >> s (round half up).
// Each operator is written at the width docs/numerics.md bounds (docs/hls.md, "Datapath widths"):
// the template arguments give the operand widths, so Vitis HLS builds e.g. a 32 x 31-bit multiplier
// for a linear layer's requantization and never a 64 x 64 one.
// Method sources: I-BERT (Kim et al., ICML 2021, arXiv 2101.01321), sections 3.2-3.5 and its reference
// code (IntSoftmax, IntGELU, IntLayerNorm, batch_frexp); DAC 2022 (Peng et al., arXiv 2208.03646) 3.2.
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
static const int GELU_SEGMENTS = 64;   // piecewise-linear GELU (intops.GELU_SEGMENTS)
static const int GELU_FRAC_BITS = 16;  // its slope fixed point
static const int64_t Q_LN2 = 709;       // floor(ln2 * 2^10)
static const int64_t Q_EXP_B = 1385;    // floor(1.353 * 2^10)
static const int64_t Q_EXP_C = 1006164; // floor(0.344 / (0.3585 * 2^-20))
static const int Q4_MAX = 7;

// Clamp to the range of a signed BITS-wide integer.
template <int BITS> inline int64_t saturate(int64_t x) {
#pragma HLS INLINE
    return x < srange<BITS>::lo ? srange<BITS>::lo : (x > srange<BITS>::hi ? srange<BITS>::hi : x);
}

// requantize(acc, m, shift, OUT_BITS) = saturate((acc * m + 2^(shift-1)) >> shift, OUT_BITS):
// |acc| < 2^(ACC_BITS-1), 0 <= m < 2^M_BITS, 0 <= shift <= 62. The product is ACC_BITS + M_BITS bits.
template <int OUT_BITS, int ACC_BITS, int M_BITS>
inline int64_t requant(sbits<ACC_BITS> acc, ubits<M_BITS> m, ubits<6> shift) {
#pragma HLS INLINE
    sbits<ACC_BITS + M_BITS + 2> p = (sbits<ACC_BITS + M_BITS + 2>)acc * (sbits<ACC_BITS + M_BITS + 2>)m;
    sbits<ACC_BITS + M_BITS + 2> rnd = 0;
    if (shift > 0) rnd = (sbits<ACC_BITS + M_BITS + 2>)1 << (int)(shift - 1);
    sbits<ACC_BITS + M_BITS + 2> r = (p + rnd) >> (int)shift;
    return saturate<OUT_BITS>((int64_t)r);
}

// Integer exp of x <= 0 (scale 2^-10), I-BERT i-exp: x >= -30 q_ln2 after the clamp, so
// z = floor(-x / q_ln2) < 31 (5 bits), p in (-q_ln2, 0] (11 bits), (p + q_b)^2 + q_c < 2^22.
// The argument is the difference of two 32-bit scores: 33 bits.
inline ubits<22> i_exp(sbits<34> x) {
#pragma HLS INLINE
    const int64_t lo = -EXP_CLAMP_LN2 * Q_LN2;
    sbits<16> xc = x < lo ? (sbits<16>)lo : (sbits<16>)x;
    ubits<5> z = (ubits<5>)((ubits<15>)(-xc) / (ubits<10>)Q_LN2);  // a constant divider
    sbits<11> p = (sbits<11>)(xc + (sbits<16>)z * (sbits<16>)Q_LN2);
    sbits<12> t = (sbits<12>)p + (sbits<12>)Q_EXP_B;
    ubits<22> poly = (ubits<22>)((ubits<22>)(t * t) + (ubits<22>)Q_EXP_C);
    return poly >> (int)z;
}

// The softmax normaliser of a row: floor(2^44 / sum e), sum e in [e(0), 2^34) -> factor < 2^24.
inline ubits<24> softmax_factor(ubits<35> total) {
#pragma HLS INLINE
    return (ubits<24>)(((ubits<45>)1 << SOFTMAX_K) / total);
}

// One probability: min(4095, (e * factor + 2^31) >> 32), e < 2^22, factor < 2^24.
inline ubits<12> softmax_prob(ubits<22> e, ubits<24> factor) {
#pragma HLS INLINE
    ubits<46> v = ((ubits<46>)e * (ubits<46>)factor + ((ubits<46>)1 << (SOFTMAX_K - PROB_BITS - 1))) >>
                 (SOFTMAX_K - PROB_BITS);
    const ubits<46> pmax = (1 << PROB_BITS) - 1;
    return (ubits<12>)(v > pmax ? pmax : v);
}

// floor(sqrt(n)) for 0 <= n < 2^(2 * HALF_BITS): bit-serial restoring square root, HALF_BITS unrolled
// steps (a pipeline, one row per cycle). The value equals intops.isqrt's Newton iteration (both exact).
template <int HALF_BITS> inline ubits<HALF_BITS> isqrt(ubits<2 * HALF_BITS> n) {
#pragma HLS INLINE
    ubits<2 * HALF_BITS + 1> rem = n, root = 0;
    ubits<2 * HALF_BITS + 1> bit = (ubits<2 * HALF_BITS + 1>)1 << (2 * HALF_BITS - 2);
    for (int i = 0; i < HALF_BITS; i++) {
#pragma HLS UNROLL
        if (rem >= root + bit) {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return (ubits<HALF_BITS>)root;
}

// Row statistics of an integer LayerNorm (intops.i_layernorm) from the running sums of its H residual
// sums y (|y| < 2^22): mean = floor(sum / H); sum (y - mean)^2 = sumsq - 2 mean sum + H mean^2 exactly;
// var = floor(that / H) < 2^46; std = max(isqrt(var), 1) < 2^23; factor = floor(2^31 / std).
struct lnrow_t {
    int32_t mean;     // |mean| < 2^22
    uint32_t factor;  // <= 2^31
};
template <int H> inline lnrow_t ln_row(int64_t sum, int64_t sumsq) {
#pragma HLS INLINE
    lnrow_t r;
    // floor division of a signed sum (|sum| < 2^36) by the constant H
    int64_t q = sum / H;
    if ((sum % H) != 0 && sum < 0) q -= 1;
    r.mean = (int32_t)q;
    sbits<58> dev = (sbits<58>)sumsq - (sbits<58>)2 * (sbits<58>)q * (sbits<58>)sum + (sbits<58>)H * (sbits<58>)q * (sbits<58>)q;
    ubits<46> var = (ubits<46>)((ubits<58>)dev / (ubits<58>)H);
    ubits<23> sd = isqrt<23>((ubits<46>)var);
    if (sd < 1) sd = 1;
    r.factor = (uint32_t)(((ubits<32>)1 << LN_K) / (ubits<32>)sd);
    return r;
}
// One normalised output: z = ((y - mean) * factor) >> 17 (|z| < 2^20), out = sat8((z m + b + 2^(s-1)) >> s)
// with |m| < 2^24, |b| < 2^40.
inline act_t ln_out(int32_t y, const lnrow_t &r, sbits<25> m, sbits<41> b, ubits<6> shift) {
#pragma HLS INLINE
    sbits<25> c = (sbits<25>)y - (sbits<25>)r.mean;
    sbits<58> cz = (sbits<58>)c * (sbits<58>)r.factor;
    sbits<34> z = (sbits<34>)(cz >> (LN_K - LN_FRAC_BITS));
    sbits<62> v = (sbits<62>)z * (sbits<62>)m + (sbits<62>)b + ((sbits<62>)1 << (int)(shift - 1));
    return (act_t)saturate<8>((int64_t)(v >> (int)shift));
}

// Integer GELU of a signed 16-bit value (I-BERT i-GELU, intops.i_gelu): |out| < 2^33.
inline int64_t i_gelu(int64_t x, int64_t b_int, int64_t c_int, int r, int64_t one) {
#pragma HLS INLINE
    int64_t ax = x < 0 ? -x : x;
    int64_t a = ax < -b_int ? ax : -b_int;
    int64_t t = a + b_int;
    int64_t poly = t * t + c_int;
    poly = x < 0 ? -poly : (x == 0 ? 0 : poly);
    int64_t erf = (-poly) >> r;
    return x * (erf + one);
}

// Piecewise-linear integer GELU (intops.i_gelu_pwl): 64 segments of 2^k steps from lo; a 64-entry ROM
// and one 17 x 16-bit multiply per element; |out| < 2^16. Written as the segment index (the ROM address,
// clamped into the table), then the segment's line on the entry read there, so each lane can read its
// own copy of the table (layer.h gelu_tab, one bank a lane).
inline int gelu_segment(sbits<16> x, int32_t lo, int k) {
#pragma HLS INLINE
    if (x < lo) return 0;
    int64_t s = ((int64_t)x - lo) >> k;
    return s >= GELU_SEGMENTS ? GELU_SEGMENTS - 1 : (int)s;
}
inline int64_t i_gelu_pwl_seg(sbits<16> x, int32_t lo, int k, int32_t slope_s, int64_t icpt_s) {
#pragma HLS INLINE
    if (x < lo) return 0;
    int64_t s = ((int64_t)x - lo) >> k;
    if (s >= GELU_SEGMENTS) return x;
    sbits<36> v = (sbits<36>)slope_s * (sbits<36>)x + (sbits<36>)icpt_s + ((sbits<36>)1 << (GELU_FRAC_BITS - 1));
    return (int64_t)(v >> GELU_FRAC_BITS);
}
inline int64_t i_gelu_pwl(sbits<16> x, int32_t lo, int k, const int32_t slope[GELU_SEGMENTS],
                          const int64_t icpt[GELU_SEGMENTS]) {
#pragma HLS INLINE
    const int s = gelu_segment(x, lo, k);
    return i_gelu_pwl_seg(x, lo, k, slope[s], icpt[s]);
}

// FFN activation kinds of weights.bin (codegen/weights.py ACT_KIND).
enum ActKind { ACT_RELU = 0, ACT_GELU_IBERT = 1, ACT_GELU_PWL = 2 };

// 4-bit Q/K estimate operand (sparse/selection.quantize4): sign(x) floor((14|x| + M) / (2M)) with
// M = max|x| of the (sequence, head) tensor, as the count of thresholds 14|x| >= (2j - 1) M, j = 1..7
// (seven comparators, no divider). thr[j-1] = (2j - 1) M.
inline int8_t quant4(int8_t x, const int16_t thr[Q4_MAX]) {
#pragma HLS INLINE
    int16_t a = x < 0 ? -(int16_t)x : (int16_t)x;
    int16_t a14 = 14 * a;
    int8_t mag = 0;
    for (int j = 0; j < Q4_MAX; j++) {
#pragma HLS UNROLL
        mag += (a14 >= thr[j]) ? 1 : 0;
    }
    return x < 0 ? (int8_t)-mag : mag;
}
inline void quant4_thresholds(int16_t M, int16_t thr[Q4_MAX]) {
#pragma HLS INLINE
    for (int j = 0; j < Q4_MAX; j++) {
#pragma HLS UNROLL
        // M = 0: every threshold 0 would make 0 >= 0 count; zeros need mag 0, so the threshold is unreachable
        thr[j] = M == 0 ? (int16_t)32767 : (int16_t)((2 * j + 1) * M);
    }
}

// Two int8 products sharing one operand on one DSP48E2 (AMD WP486): (w1 << 18) + w2 on the 27-bit
// port times a on the 18-bit port gives w1 a 2^18 + w2 a; the low 18 bits, sign-extended, are w2 a
// (|w2 a| <= 2^14 < 2^17) and the rest is w1 a. Exact for every int8 w1, w2, a (tests/test_hls_engine.py
// checks all 2^24 cases of both forms below).
struct prod2_t {
    int32_t p1, p2;
};
// The form Vitis HLS synthesizes: ap_int fields of the DSP's widths.
inline prod2_t dsp_mul2_ap(int8_t w1, int8_t w2, int8_t a) {
#pragma HLS INLINE
    sbits<27> packed = ((sbits<27>)w1 << 18) + (sbits<27>)w2;
    // one 27 x 18 DSP48E2 multiply: the ap_int<27> x ap_int<18> product is exactly 45 bits wide
    sbits<45> p = packed * (sbits<18>)a;
#pragma HLS BIND_OP variable = p op = mul impl = dsp
    sbits<18> lo = (sbits<18>)(p & 0x3FFFF);
    sbits<45> hi = (p - (sbits<45>)lo) >> 18;
    prod2_t r;
    r.p1 = (int32_t)hi;
    r.p2 = (int32_t)lo;
    return r;
}
#ifdef __SYNTHESIS__
inline prod2_t dsp_mul2(int8_t w1, int8_t w2, int8_t a) {
#pragma HLS INLINE
    return dsp_mul2_ap(w1, w2, a);
}
#else
// C-simulation: the same fields in native 64-bit integers, each cut to its DSP width by sign extension
// (the hls4ml ap_types emulate ap_int<45> arithmetic about 30x slower; the synthesizable csim form spends
// most of its time here).
template <int W> inline int64_t sext(int64_t v) {
    return (int64_t)((uint64_t)v << (64 - W)) >> (64 - W);
}
inline prod2_t dsp_mul2(int8_t w1, int8_t w2, int8_t a) {
    const int64_t packed = sext<27>(((int64_t)w1 << 18) + (int64_t)w2);
    const int64_t p = sext<45>(packed * (int64_t)a);
    const int64_t lo = sext<18>(p & 0x3FFFF);
    const int64_t hi = sext<45>(p - lo) >> 18;
    prod2_t r;
    r.p1 = (int32_t)hi;
    r.p2 = (int32_t)lo;
    return r;
}
#endif

}  // namespace padless

#endif  // PADLESS_INTOPS_H
