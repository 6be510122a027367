// padless HLS library: the matrix-vector unit (MVU), FINN's folding (PE output rows x SIMD inputs per
// cycle at II = 1), dense or bank-balanced sparse, and the three MVU stages of an encoder layer.
//
// One token row of a linear layer y = requantize(W x + b) takes NF x SF cycles: NF = OUT / PE neuron
// folds of SF synapse folds (dense: SF = IN / SIMD; sparse: SF = (IN / BANK) / NBPC, NBPC banks of
// P_MAX kept weights per cycle, so SIMD = NBPC * P_MAX kept inputs per cycle). Weights live in SIMD-wide
// words, lanes in pairs on the two ports of one true-dual-port memory: lane p reads memory p / 2 at half
// p % 2, word [layer][nf][sf] (every lane reads the same fold, so a memory serves two lanes a cycle and
// is twice as deep: UltraRAM is 4,096 words deep); the input row sits in a register-partitioned double buffer so that row r + 1 streams in
// (VEC elements a cycle) during row r's folds: a stage takes ITER = max(NF * SF, IN / VEC) cycles per
// row, plus one exposed row read and the pipeline depth per sequence (docs/hls.md, "MVU").
//
// Dense weights use the DSP48E2 packing of AMD WP486: output rows p and p + 1 share the input value, so
// their two int8 products come from one multiplier (dsp_mul2): PE x SIMD MACs on ceil(PE / 2) x SIMD DSPs.
// Sparse rows in pattern row do not share inputs (each has its own in-bank indices): one DSP per MAC. In
// pattern pe-pair (SPARSE 2) lanes 2q and 2q + 1 keep the same in-bank columns, so one index word and one
// input per kept column feed both lanes' weights through the same packed product as dense (fold_pair):
// two MACs per DSP again, and the index memory is one word per pair (REGION deep). An MVU with 16-bit
// inputs (FFN down under `quant: {precision: {act: 16}}`: X_T = int16_t) does one 16 x 8-bit MAC per DSP
// (the 27 x 18 multiplier; two products of 24 bits leave no guard bits in its 45-bit field) and
// accumulates in 48 bits (the DSP48E2 accumulator width; |acc| < 2^36 for IN <= 2^12).
//
// C-simulation fast form (PADLESS_CSIM_FAST, g++ only): each row's outputs come from whole-row integer
// dot products (x86 VNNI through the compiler, sparse rows expanded to dense zeros at load time); the
// channel accesses happen at the same iterations, so the bits and the timed-csim cycles are those of
// the loop Vitis HLS synthesizes (tests/test_hls_engine.py runs both forms).
#ifndef PADLESS_MVU_H
#define PADLESS_MVU_H

#include "intops.h"
#include "sim.h"

#if !defined(__SYNTHESIS__)
#include <string.h>

#include <vector>
#endif

#ifndef PADLESS_CSIM_FAST
#ifdef __SYNTHESIS__
#define PADLESS_CSIM_FAST 0
#else
#define PADLESS_CSIM_FAST 1
#endif
#endif

namespace padless {

// Declared pipeline depths (cycles from issue to the last stage) of the engine's loops. The timed csim
// and the Python cost model count these; docs/hls.md derives each one.
static const int D_MVU = 14;       // word read 2 + DSP 3 + adder tree 4 + accumulate 1 + requantize 4
static const int D_READ = 3;       // a FIFO word into a register buffer
static const int D_MAXI = 64;      // m_axi read: request to first beat (AXI latency), then 1 beat a cycle
static const int D_MAXI_WR = 32;   // m_axi write: last beat to write response

template <int N> struct log2c {
    static const int value = N <= 1 ? 0 : 1 + log2c<(N + 1) / 2>::value;
};
template <> struct log2c<1> {
    static const int value = 0;
};
template <int A, int B> struct cmax {
    static const int value = A > B ? A : B;
};

// Compile-time description of one MVU (a config struct, as FINN's generated code instantiates its
// MVAU templates). ROWS_MAX: rows of one sequence; LBUF: layers of weights on chip (all L when
// resident, 1 when streamed).
// Input element of an MVU: the channel word's type (int8_t act_t, or int16_t), native in every form.
template <int XBITS> struct mvu_elem {
    typedef act_t type;
};
template <> struct mvu_elem<16> {
    typedef int16_t type;
};
// Accumulator of an MVU: acc_t (int32) after int8 inputs, 48 bits (the DSP48E2 accumulator) after int16.
template <int XBITS> struct mvu_acc {
    typedef acc_t type;
};
template <> struct mvu_acc<16> {
    typedef sbits<48> type;
};

// SPARSE_: 0 dense, 1 bank-balanced (pattern row), 2 bank-balanced pattern pe-pair.
template <int IN_, int OUT_, int PE_, int SIMD_, int VEC_, int LBUF_, int SPARSE_ = 0, int BANK_ = 1,
          int P_MAX_ = 1, int IBITS_ = 1, int XBITS_ = 8>
struct mvu_cfg {
    static const int IN = IN_, OUT = OUT_, PE = PE_, SIMD = SIMD_, VEC = VEC_, LBUF = LBUF_;
    // input elements: int8 (every MVU by default) or int16 (XBITS 16); the accumulator type that holds
    // IN products plus the int32 bias: 32 bits for int8 inputs, 48 for int16
    static const int XBITS = XBITS_;
    static const int ACC_BITS = XBITS_ == 8 ? 32 : 48;
    typedef typename mvu_elem<XBITS_>::type x_t;
    typedef typename mvu_acc<XBITS_>::type acc_t;
    static const bool SPARSE = SPARSE_ != 0;
    static const bool PAIRED = SPARSE_ == 2;                      // pattern pe-pair: one index word a lane pair
    static const int BANK = BANK_, P_MAX = P_MAX_, IBITS = IBITS_;
    // a pe-pair index word in weights.bin: SIMD x IBITS bits, rounded up to a power of two up to 64 bytes
    // or a multiple of 64 beyond, so that it tiles every m_axi beat (codegen/weights.py pair_index_bytes)
    static const int IRAW = (SIMD_ * IBITS_ + 7) / 8;
    static const int IBYTES = IRAW <= 64 ? (1 << log2c<IRAW>::value) : (IRAW + 63) / 64 * 64;
    static const int NBPC = SPARSE ? SIMD / P_MAX : 1;          // banks per cycle (sparse)
    static const int NF = OUT / PE;
    static const int SF = SPARSE ? (IN / BANK) / NBPC : IN / SIMD;
    static const int WIN = IN / VEC;                              // input words per row
    // operand window of one fold: the SIMD inputs (dense), or the NBPC banks of BANK inputs (sparse)
    static const int XWIN = SPARSE ? NBPC * BANK : SIMD;
    static const int WORDS = NF * SF;                             // weight words per bank and layer
    static const int ITER = cmax<NF * SF, WIN>::value;            // cycles per row
    static const int DEPTH = D_MVU + log2c<SIMD>::value;
    // Weight memories: PE lanes in pairs on the two ports of one true-dual-port RAM (lane p in bank p / 2,
    // half p % 2), so a memory is twice as deep and half as many are needed (UltraRAM is 4096 deep).
    static const int WBANKS = PE >= 2 ? PE / 2 : 1;
    static const int64_t REGION = (int64_t)LBUF * WORDS;          // words of one lane, all layers on chip
    static const int64_t WDEPTH = PE >= 2 ? 2 * REGION : REGION;
    // index memories (one per weight memory): a word per lane (row), a word per lane pair (pe-pair), none
    static const int64_t IDEPTH = !SPARSE ? 1 : PAIRED ? REGION : WDEPTH;
    static_assert(OUT % PE == 0, "PE must divide the output size");
    static_assert(VEC % PE == 0, "PE must divide the channel word width VEC");
    static_assert(IN % VEC == 0, "VEC must divide the input size");
    static_assert(SPARSE || IN % SIMD == 0, "SIMD must divide the input size");
    static_assert(!SPARSE || (SIMD % P_MAX == 0 && (IN / BANK) % NBPC == 0), "sparse SIMD = banks per cycle x P_MAX");
    static_assert(XBITS == 8 || XBITS == 16, "MVU inputs are int8 or int16");
    static_assert(SPARSE_ >= 0 && SPARSE_ <= 2, "SPARSE is 0 (dense), 1 (pattern row) or 2 (pattern pe-pair)");
    static_assert(!PAIRED || PE % 2 == 0, "pattern pe-pair needs an even PE: a pair's rows are lanes 2q, 2q + 1");
};

// The weights of one MVU: PE banks of SIMD-wide words (+ in-bank index words when sparse), and the
// per-output-channel requantization (bias, multiplier, shift) in PE banks of NF * LBUF entries.
// Requantization of one output channel of a linear layer.
struct lin_rq_t {
    int32_t bias;  // int32 at the accumulator scale
    uint32_t m;    // < 2^31
    uint8_t shift;
};
template <class C> struct mvu_words {
    typedef vec<wgt_t, C::SIMD> word_t;
    typedef vec<ubits<C::IBITS>, C::SIMD> iword_t;
    typedef lin_rq_t rq_t;
};

// Dot product of SIMD int8 inputs with one weight word (plain; the fast form and sparse rows).
template <int N> inline int32_t dot8(const act_t *x, const wgt_t *w) {
    int32_t s = 0;
    for (int j = 0; j < N; j++) s += (int32_t)x[j] * (int32_t)w[j];
    return s;
}

// --- the synthesizable fold: PE outputs x SIMD inputs of one cycle --------------------------------
// Dense: pairs of output rows share each input on one DSP (dsp_mul2).
// xv: the fold's SIMD inputs (the operand window, chosen from the row buffers before the fold).
template <class C, class W>
inline void fold_dense(W &w, int64_t word, const typename C::x_t xv[C::SIMD], typename C::acc_t acc[C::PE]) {
#pragma HLS INLINE
    PADLESS_REGS(typename mvu_words<C>::word_t, wv, C::PE);
    for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
        wv[p] = w[p / 2][(p % 2) * C::REGION + word];
    }
    if (C::XBITS != 8) {  // 16 x 8-bit products, one DSP each
        for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
            typename C::acc_t s = 0;
            for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
                s += (sbits<24>)((sbits<24>)wv[p].v[j] * (sbits<24>)xv[j]);
            }
            acc[p] += s;
        }
        return;
    }
    for (int p = 0; p + 1 < C::PE; p += 2) {
#pragma HLS UNROLL
        int32_t s1 = 0, s2 = 0;
        for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
            prod2_t pr = dsp_mul2(wv[p].v[j], wv[p + 1].v[j], (int8_t)xv[j]);
            s1 += pr.p1;
            s2 += pr.p2;
        }
        acc[p] += s1;
        acc[p + 1] += s2;
    }
    if (C::PE % 2) {
        int32_t s = 0;
        for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
            s += (int32_t)wv[C::PE - 1].v[j] * (int32_t)xv[j];
        }
        acc[C::PE - 1] += s;
    }
}

// Sparse: lane (b, s) of the cycle takes bank b = sf * NBPC + b of the input row at in-bank index
// idx & (BANK - 1) (masked: never outside its bank), times its kept weight. xw: the cycle's NBPC banks of
// the input row (the operand window, chosen from the row buffers before the fold).
template <class C, class W, class I>
inline void fold_sparse(W &w, I &ix, int64_t word, const typename C::x_t xw[C::XWIN], typename C::acc_t acc[C::PE]) {
#pragma HLS INLINE
    for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
        typename mvu_words<C>::word_t wv = w[p / 2][(p % 2) * C::REGION + word];
        typename mvu_words<C>::iword_t iv = ix[p / 2][(p % 2) * C::REGION + word];
        typename C::acc_t s = 0;
        for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
            const int pos = (j / C::P_MAX) * C::BANK + ((int)iv.v[j] & (C::BANK - 1));
            s += (sbits<C::XBITS + 8>)((sbits<C::XBITS + 8>)wv.v[j] * (sbits<C::XBITS + 8>)xw[pos]);
        }
        acc[p] += s;
    }
}

// Sparse, pattern pe-pair: lanes 2q and 2q + 1 share the index word ix[q][word]; lane j of the cycle takes
// the input at bank sf * NBPC + j / P_MAX, in-bank index idx & (BANK - 1), ONCE for both rows, and the two
// kept weights multiply it on one DSP48E2 (dsp_mul2, AMD WP486: the same packed product and correction as
// fold_dense). 16-bit inputs: two 16 x 8-bit products, one DSP each, on the shared input.
template <class C, class W, class I>
inline void fold_pair(W &w, I &ix, int64_t word, const typename C::x_t xw[C::XWIN], typename C::acc_t acc[C::PE]) {
#pragma HLS INLINE
    for (int q = 0; q < C::PE / 2; q++) {
#pragma HLS UNROLL
        typename mvu_words<C>::word_t w0 = w[q][word];
        typename mvu_words<C>::word_t w1 = w[q][C::REGION + word];
        typename mvu_words<C>::iword_t iv = ix[q][word];
        typename C::acc_t s1 = 0, s2 = 0;
        for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
            const int pos = (j / C::P_MAX) * C::BANK + ((int)iv.v[j] & (C::BANK - 1));
            const typename C::x_t xv = xw[pos];
            if (C::XBITS == 8) {
                prod2_t pr = dsp_mul2(w0.v[j], w1.v[j], (int8_t)xv);
                s1 += pr.p1;
                s2 += pr.p2;
            } else {
                s1 += (sbits<24>)((sbits<24>)w0.v[j] * (sbits<24>)xv);
                s2 += (sbits<24>)((sbits<24>)w1.v[j] * (sbits<24>)xv);
            }
        }
        acc[2 * q] += s1;
        acc[2 * q + 1] += s2;
    }
}

// --- csim fast-form helpers -----------------------------------------------------------------------
#if !defined(__SYNTHESIS__)
// sum over i of (x[i] + 128) * w[i] - 128 * wsum: exact, and g++ maps it to u8 x s8 dot-product
// instructions (AVX-512 / AVX VNNI vpdpbusd where the CPU has them).
inline int32_t dot_u8s8(const uint8_t *xu, const int8_t *w, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; i++) s += (int32_t)xu[i] * (int32_t)w[i];
    return s;
}
// Y[r][o] = sum_i X[r][i] Wd[o][i] for t rows (X: (t, in) uint8, Y: (t, out) int32): output rows four at a
// time against every input row, so each weight row is read once per sequence (cache-friendly).
inline void rows_gemm_u8(const uint8_t *xu, int t, int in, const int8_t *wd, int out, int32_t *y) {
    int o = 0;
    for (; o + 4 <= out; o += 4) {
        const int8_t *w0 = wd + (int64_t)o * in;
        for (int r = 0; r < t; r++) {
            const uint8_t *xr = xu + (size_t)r * in;
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int i = 0; i < in; i++) {
                int32_t xv = xr[i];
                s0 += xv * w0[i];
                s1 += xv * w0[in + i];
                s2 += xv * w0[2 * in + i];
                s3 += xv * w0[3 * in + i];
            }
            int32_t *yr = y + (int64_t)r * out + o;
            yr[0] = s0;
            yr[1] = s1;
            yr[2] = s2;
            yr[3] = s3;
        }
    }
    for (; o < out; o++)
        for (int r = 0; r < t; r++) y[(int64_t)r * out + o] = dot_u8s8(xu + (size_t)r * in, wd + (int64_t)o * in, in);
}
// int8 X: (x + 128) as uint8, less 128 x the row sums.
inline void rows_gemm(const int8_t *x, int t, int in, const int8_t *wd, const int32_t *wsum, int out, int32_t *y) {
    std::vector<uint8_t> xu((size_t)t * in);
    for (size_t i = 0; i < xu.size(); i++) xu[i] = (uint8_t)((uint8_t)x[i] ^ 0x80u);
    rows_gemm_u8(xu.data(), t, in, wd, out, y);
    for (int r = 0; r < t; r++)
        for (int o = 0; o < out; o++) y[(int64_t)r * out + o] -= 128 * wsum[o];
}
// int16 X = 256 x_hi + x_lo (x_hi int8, x_lo uint8): two exact u8 x s8 products, combined in int64.
inline void rows_gemm(const int16_t *x, int t, int in, const int8_t *wd, const int32_t *wsum, int out, int64_t *y) {
    const size_t n = (size_t)t * in, m = (size_t)t * out;
    std::vector<uint8_t> lo(n), hi(n);
    for (size_t i = 0; i < n; i++) {
        lo[i] = (uint8_t)(x[i] & 0xFF);
        hi[i] = (uint8_t)((uint8_t)(int8_t)(x[i] >> 8) ^ 0x80u);
    }
    std::vector<int32_t> ylo(m), yhi(m);
    rows_gemm_u8(lo.data(), t, in, wd, out, ylo.data());
    rows_gemm_u8(hi.data(), t, in, wd, out, yhi.data());
    for (int r = 0; r < t; r++)
        for (int o = 0; o < out; o++) {
            const size_t k = (size_t)r * out + o;
            y[k] = 256 * ((int64_t)yhi[k] - 128 * (int64_t)wsum[o]) + ylo[k];
        }
}
// One row (timed and port-checked runs call these per row: stack buffers, no allocation), int8 and int16 x.
static const int ROW_MAX = 4096;   // the longest row of an MVU (IN and OUT)
inline void row_gemv(const act_t *x, int in, const int8_t *wd, const int32_t *wsum, int out, int32_t *y) {
    alignas(64) uint8_t xu[ROW_MAX];
    for (int i = 0; i < in; i++) xu[i] = (uint8_t)((uint8_t)x[i] ^ 0x80u);
    rows_gemm_u8(xu, 1, in, wd, out, y);
    for (int o = 0; o < out; o++) y[o] -= 128 * wsum[o];
}
inline void row_gemv(const int16_t *x, int in, const int8_t *wd, const int32_t *wsum, int out, int64_t *y) {
    alignas(64) uint8_t lo[ROW_MAX], hi[ROW_MAX];
    alignas(64) int32_t ylo[ROW_MAX], yhi[ROW_MAX];
    for (int i = 0; i < in; i++) {
        lo[i] = (uint8_t)(x[i] & 0xFF);
        hi[i] = (uint8_t)((uint8_t)(int8_t)(x[i] >> 8) ^ 0x80u);
    }
    rows_gemm_u8(lo, 1, in, wd, out, ylo);
    rows_gemm_u8(hi, 1, in, wd, out, yhi);
    for (int o = 0; o < out; o++) y[o] = 256 * ((int64_t)yhi[o] - 128 * (int64_t)wsum[o]) + ylo[o];
}
#endif

// --- the MVU row engine ---------------------------------------------------------------------------
// Runs the rows of one sequence of t rows through an MVU: the input words arrive on `xin` (IN / VEC
// per row), `pre` is told each prefetched word (a residual or forwarded stream rides along), and
// `sink` gets each neuron fold's PE accumulators (bias not yet added) at the iteration the fold ends.
// W, I: the weight / index banks; base: this layer's first word in each bank; dense_cs: the fast
// form's dense row-major copy of this layer (csim only).
template <class C, class W, class I, class PRE, class SINK>
void mvu_rows(int t, W &w, I &ix, int64_t base, PADLESS_FIFO_REF(vec<typename C::x_t, C::VEC>) xin, PRE &pre,
              SINK &sink, const int8_t *dense_cs, const int32_t *wsum_cs) {
    typedef typename C::x_t x_t;
    typedef vec<x_t, C::VEC> xword_t;
    PADLESS_RAM1D_REG(x_t, xa, C::IN);
    PADLESS_RAM1D_REG(x_t, xb, C::IN);
    // Prologue: row 0 (its words are exposed once per sequence).
    PADLESS_LOOP(mvu_prologue, D_READ);
    for (int k = 0; k < C::WIN; k++) {
        PADLESS_PIPELINE(mvu_prologue, k);
        xword_t wd = xin.read();
        for (int v = 0; v < C::VEC; v++) {
#pragma HLS UNROLL
            xa[k * C::VEC + v] = wd.v[v];
        }
        pre.word(0, k, wd);
    }
    PADLESS_LOOP_END(mvu_prologue, C::WIN);

    // Main loop: ITER iterations a row; iteration k of row r prefetches word k of row r + 1 (k < WIN) into the
    // other row buffer and, k < NF SF, runs fold (nf, sf) of row r; a neuron fold's end hands its PE
    // accumulators to the sink. One loop for every form: the C-simulation fast form differs only by the
    // switches in the body (PADLESS_CSIM_FAST), where it takes the products of a whole row (or, untimed, of
    // every row) from the dense weight copy instead of folding PE x SIMD a cycle. The channel accesses and
    // the iterations they happen at are the same, so the timed csim counts the same cycles in both forms.
    PADLESS_LOOP(mvu_main, C::DEPTH);
    const int64_t trip = (int64_t)t * C::ITER;
    PADLESS_REGS(typename C::acc_t, acc, C::PE);
    for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
        acc[p] = 0;
    }
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
    (void)w;
    (void)ix;
    typedef typename C::acc_t acc_t;  // native int32 / int64 in this form
    static_assert(C::IN <= ROW_MAX && C::OUT <= ROW_MAX, "the fast form's row buffers hold ROW_MAX elements");
    // untimed and unchecked: every row's products at once (weights read once a sequence), from the words of
    // the sequence read ahead; timed or port-checked: one row's products at the row's first iteration
    const bool bulk = !::padless::sim::cfg.timed && !::padless::sim::cfg.ports;
    alignas(64) acc_t yrow[C::OUT];
    std::vector<xword_t> words;
    std::vector<acc_t> ys;
#else
    (void)dense_cs;
    (void)wsum_cs;
#endif
    int r = 0, k = 0, nf = 0, sf = 0;
    int64_t word = base;
    for (int64_t it = 0; it < trip; it++) {
        PADLESS_PIPELINE(mvu_main, it);
        const bool odd = r & 1;
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
        if (bulk && it == 0) {
            std::vector<x_t> xs((size_t)t * C::IN);
            memcpy(xs.data(), xa.data(), C::IN * sizeof(x_t));
            words.resize((size_t)t * C::WIN);
            for (int rr = 1; rr < t; rr++)
                for (int kk = 0; kk < C::WIN; kk++) {
                    words[(size_t)rr * C::WIN + kk] = xin.read();
                    memcpy(xs.data() + (size_t)rr * C::IN + kk * C::VEC, words[(size_t)rr * C::WIN + kk].v,
                           C::VEC * sizeof(x_t));
                }
            ys.assign((size_t)t * C::OUT, 0);
            if (::padless::sim::cfg.compute) rows_gemm(xs.data(), t, C::IN, dense_cs, wsum_cs, C::OUT, ys.data());
        }
        if (!bulk && k == 0) {
            if (::padless::sim::cfg.compute) row_gemv(odd ? xb.data() : xa.data(), C::IN, dense_cs, wsum_cs, C::OUT, yrow);
            else memset(yrow, 0, sizeof(yrow));
        }
#endif
        if (r + 1 < t && k < C::WIN) {
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
            xword_t wd = bulk ? words[(size_t)(r + 1) * C::WIN + k] : xin.read();
            if (!bulk) memcpy((odd ? xa.data() : xb.data()) + k * C::VEC, wd.v, C::VEC * sizeof(x_t));
#else
            xword_t wd = xin.read();
            for (int v = 0; v < C::VEC; v++) {
#pragma HLS UNROLL
                if (odd) xa[k * C::VEC + v] = wd.v[v];
                else xb[k * C::VEC + v] = wd.v[v];
            }
#endif
            pre.word(r + 1, k, wd);
        }
        if (k < C::NF * C::SF) {
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
            if (sf == C::SF - 1) sink.fold(r, nf, (bulk ? ys.data() + (size_t)r * C::OUT : yrow) + nf * C::PE);
#else
            // the operand window from the row being multiplied (xb on odd rows, xa on even): a 2:1 mux per
            // input in front of one fold instance, never two folds (one per buffer) for the binder to share
            PADLESS_REGS(x_t, xw, C::XWIN);
            for (int j = 0; j < C::XWIN; j++) {
#pragma HLS UNROLL
                xw[j] = odd ? (x_t)xb[sf * C::XWIN + j] : (x_t)xa[sf * C::XWIN + j];
            }
            if (C::PAIRED) fold_pair<C>(w, ix, word, xw, acc);
            else if (C::SPARSE) fold_sparse<C>(w, ix, word, xw, acc);
            else fold_dense<C>(w, word, xw, acc);
            if (sf == C::SF - 1) sink.fold(r, nf, acc);
#endif
            word++;
            if (sf == C::SF - 1) {
                for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                    acc[p] = 0;
                }
                sf = 0;
                nf++;
            } else {
                sf++;
            }
        }
        if (k == C::ITER - 1) {
            k = 0;
            nf = 0;
            r++;
            word = base;
        } else {
            k++;
        }
    }
    PADLESS_LOOP_END(mvu_main, trip);
}

// A prefetch observer that does nothing (qkv), or forwards each input word (up -> down's residual).
struct pre_none {
    template <class V> inline void word(int, int, const V &) {}
};

}  // namespace padless

#endif  // PADLESS_MVU_H
