// padless HLS library: the row-wise stages of an encoder layer (BERT post-norm), each one process of
// the layer's dataflow region, bit for bit padless.golden.run_layer.
//
//   qkv_stage   MVU (3H x H): Q, K, V of every row into three sequence blocks (PADLESS_SEQ_BLOCKS buffers) (select needs
//               a whole sequence's K before its first query).
//   res_stage   MVU (H x IN) + requantization into the 22-bit residual domain + the requantized residual
//               row (its own stream) + the running sums of the LayerNorm that follows, fused on the
//               MVU output (O projection: IN = H; FFN down: IN = F, int8 or int16 inputs).
//   up_stage    MVU (F x H) + requantization to int16 + GELU (piecewise-linear, I-BERT i-GELU or ReLU)
//               + requantization to the FFN activation (int8, with a per-channel zero point when
//               asymmetric, or int16), at PE channels a cycle; forwards its input rows (LayerNorm-1
//               output h) to the FFN-down stage's residual stream.
//   ln_stage    integer LayerNorm at the producing MVU's PE width: per row the statistics (mean, isqrt,
//               1 / std: a pipelined chain, one row a cycle) and PE normalised outputs a cycle.
//   ctx_stream  reads a context block row by row onto a stream (attention writes it head by head).
#ifndef PADLESS_LAYER_H
#define PADLESS_LAYER_H

#include "intops.h"
#include "mvu.h"
#include "sim.h"

namespace padless {

static const int D_LN = 64;   // sums -> mean 3 + variance 6 + isqrt 23 + 2^31 / std divider 26 + output 6

// Per-output-channel requantization of a residual addend (int8 in, 22 bits out).
struct res_rq_t {
    uint32_t m;  // < 2^31
    uint8_t shift;
};
// LayerNorm output parameters of one channel (|m| < 2^24).
struct ln_param_t {
    int32_t m;
    int64_t b;
};
// Activation requantization of one FFN channel: int8 = saturate(requantize(g, m, shift) + zp); zp = 0 for
// a symmetric grid, in [-128, 0] for an asymmetric one (quant `zero_point: [act]`; FFN down's bias holds
// -W zp, so the MVU is unchanged).
struct act_rq_t {
    uint32_t m;
    uint8_t shift;
    int8_t zp;
};
// Per-layer scalars (weights.bin `scalars`).
struct layer_scalars_t {
    uint32_t score_m;
    uint8_t score_shift, ln1_shift, ln2_shift, act_kind;
    int64_t gelu_b, gelu_c, gelu_one;
    int32_t gelu_r, gelu_lo, gelu_k;
};
// One segment of the piecewise-linear GELU table (weights.bin `gelu_slope/icpt`): the kernel keeps one copy
// of each layer's GELU_SEGMENTS entries per FFN-up lane (gelu_tab[PE_UP][LBUF * GELU_SEGMENTS]), so the PE
// lanes of a fold read PE banks, one read each, at II = 1.
struct gelu_seg_t {
    int32_t slope;
    int64_t icpt;
};

// ---- QKV ------------------------------------------------------------------------------------------
template <class C, int H, int D, class QL, class RQ> struct qkv_sink {
    // Q, K, V blocks hold one head row (D int8) per word, word i * H / D + head: a head row is written
    // whole, once the folds that make it are done (PE < D: D / PE folds; PE >= D: PE / D words a fold).
    QL &q, &k, &v;
    RQ &rq;
    int64_t base;  // this layer's first entry of the requantization banks
    act_t buf[D > C::PE ? D : C::PE];
    inline void fold(int r, int nf, const typename C::acc_t *acc) {
#pragma HLS INLINE
        const int o0 = nf * C::PE;
        const int which = o0 / H;
        const int col0 = o0 - which * H;
        const int pos = col0 % D;
        for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
            typename mvu_words<C>::rq_t q = rq[p][base + nf];
            buf[(D > C::PE ? pos : 0) + p] =
                (act_t)requant<8, 33, 31>((sbits<33>)((int64_t)acc[p] + q.bias), (ubits<31>)q.m, (ubits<6>)q.shift);
        }
        if (D > C::PE && pos + C::PE < D) return;
        const int words = D > C::PE ? 1 : C::PE / D;
        for (int w = 0; w < words; w++) {
#pragma HLS UNROLL
            const int64_t addr = (int64_t)r * (H / D) + (col0 - pos) / D + w;
            for (int c = 0; c < D; c++) {
#pragma HLS UNROLL
                act_t y = buf[w * D + c];
                if (which == 0) q[0][addr][c] = y;
                else if (which == 1) k[0][addr][c] = y;
                else v[0][addr][c] = y;
            }
        }
    }
};

template <class C, int H, int D, class QB, class W, class I, class RQ>
void qkv_stage(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(vec<act_t, C::VEC>) xin,
               PADLESS_BLOCKS_REF(QB, PADLESS_SEQ_BLOCKS) qb, PADLESS_BLOCKS_REF(QB, PADLESS_SEQ_BLOCKS) kb, PADLESS_BLOCKS_REF(QB, PADLESS_SEQ_BLOCKS) vb,
               PADLESS_FIFO_REF(desc_t) dout, W &w, I &ix, RQ &rq, int slot, int layer, const int8_t *dense_cs,
               const int32_t *wsum_cs) {
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        {
            PADLESS_WRITE_LOCK(QB, Q, qb);
            PADLESS_WRITE_LOCK(QB, K, kb);
            PADLESS_WRITE_LOCK(QB, V, vb);
            PADLESS_JOB_BEGIN(d.seq, layer);
            typedef decltype(Q) L;
            qkv_sink<C, H, D, L, RQ> sink{Q, K, V, rq, (int64_t)slot * C::NF, {}};
            pre_none pre;
            mvu_rows<C>(d.len, w, ix, (int64_t)slot * C::WORDS, xin, pre, sink, dense_cs, wsum_cs);
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

// ---- O projection / FFN down: + residual, LayerNorm sums ----------------------------------------------
template <int PE> struct yword_t {
    int32_t v[PE];  // residual sums, |y| < 2^23
};

template <class C, int H, class R> struct res_pre {
    PADLESS_FIFO_REF(vec<act_t, C::VEC>) rin;
    R &ra, &rb;  // the residual rows of even / odd rows (register double buffer, PADLESS_RAM1D_REG)
    template <class V> inline void word(int row, int k, const V &) {
#pragma HLS INLINE
        if (k < H / C::VEC) {
            vec<act_t, C::VEC> wd = rin.read();
            R &dst = (row & 1) ? rb : ra;
            for (int v = 0; v < C::VEC; v++) {
#pragma HLS UNROLL
                dst[k * C::VEC + v] = wd.v[v];
            }
        }
    }
};

template <class C, class RQ, class RES_RQ, class R> struct res_sink {
    PADLESS_FIFO_REF(yword_t<C::PE>) yout;
    PADLESS_FIFO_REF(rowstat_t) sout;
    RQ &rq;
    RES_RQ &res_rq;
    int64_t base;
    R &ra, &rb;
    int64_t sum, sumsq;
    inline void fold(int r, int nf, const typename C::acc_t *acc) {
#pragma HLS INLINE
        yword_t<C::PE> yw;
        R &res = (r & 1) ? rb : ra;
        int64_t s = 0, s2 = 0;
        for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
            typename mvu_words<C>::rq_t q = rq[p][base + nf];
            res_rq_t rr = res_rq[p][base + nf];
            // accumulator + int32 bias: 33 bits after int8 inputs, 41 after int16 (|acc| < 2^36)
            const int AB = C::XBITS == 8 ? 33 : 41;
            int32_t y1 = (int32_t)requant<RESIDUAL_BITS, AB, 31>((sbits<AB>)((int64_t)acc[p] + q.bias), (ubits<31>)q.m,
                                                               (ubits<6>)q.shift);
            int32_t y2 = (int32_t)requant<RESIDUAL_BITS, 9, 31>((sbits<9>)res[nf * C::PE + p], (ubits<31>)rr.m,
                                                               (ubits<6>)rr.shift);
            int32_t y = y1 + y2;
            yw.v[p] = y;
            s += y;
            s2 += (int64_t)y * y;
        }
        sum = (nf == 0 ? 0 : sum) + s;
        sumsq = (nf == 0 ? 0 : sumsq) + s2;
        yout.write(yw);
        if (nf == C::NF - 1) {
            rowstat_t st;
            st.sum = sum;
            st.sumsq = sumsq;
            sout.write(st);
        }
    }
};

template <class C, int H, class W, class I, class RQ, class RES_RQ>
void res_stage(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(vec<typename C::x_t, C::VEC>) xin,
               PADLESS_FIFO_REF(vec<act_t, C::VEC>) rin, PADLESS_FIFO_REF(yword_t<C::PE>) yout,
               PADLESS_FIFO_REF(rowstat_t) sout, PADLESS_FIFO_REF(desc_t) dout, W &w, I &ix, RQ &rq, RES_RQ &res_rq,
               int slot, int layer, const int8_t *dense_cs, const int32_t *wsum_cs) {
    static_assert(C::OUT == H, "a residual stage outputs the hidden size");
    PADLESS_RAM1D_REG(act_t, rbuf_a, H);
    PADLESS_RAM1D_REG(act_t, rbuf_b, H);
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        typedef decltype(rbuf_a) R;
        res_pre<C, H, R> pre{rin, rbuf_a, rbuf_b};
        res_sink<C, RQ, RES_RQ, R> sink{yout, sout, rq, res_rq, (int64_t)slot * C::NF, rbuf_a, rbuf_b, 0, 0};
        mvu_rows<C>(d.len, w, ix, (int64_t)slot * C::WORDS, xin, pre, sink, dense_cs, wsum_cs);
        PADLESS_JOB_END(d.seq, layer);
    }
}

// ---- FFN up + activation ---------------------------------------------------------------------------
template <class C> struct fwd_pre {
    PADLESS_FIFO_REF(vec<act_t, C::VEC>) hout;
    inline void word(int, int, const vec<act_t, C::VEC> &wd) {
#pragma HLS INLINE
        hout.write(wd);
    }
};

// The FFN activation of one lane: `seg` is the lane's GELU table entry at gelu_segment(u) (read by the
// caller from the lane's own bank; unused by the other kinds). Only the kind the project was quantized with
// is built (PADLESS_ACT_KIND, config.h; codegen refuses a weights.bin whose layers use another): the I-BERT
// i-GELU's two int64 products are 16 DSP48E2 a lane, which a PWL-GELU kernel does not pay for. A library
// user without config.h gets the run-time choice of weights.bin's act_kind scalar (all three built).
#ifndef PADLESS_ACT_KIND
#define PADLESS_ACT_KIND (-1)
#endif
static_assert(ACT_RELU == 0 && ACT_GELU_IBERT == 1 && ACT_GELU_PWL == 2, "PADLESS_ACT_KIND numbers ActKind");
inline int64_t ffn_activation(int64_t u, const layer_scalars_t &s, const gelu_seg_t &seg) {
#pragma HLS INLINE
#if PADLESS_ACT_KIND == 2  // ACT_GELU_PWL
    return i_gelu_pwl_seg((sbits<16>)u, s.gelu_lo, s.gelu_k, seg.slope, seg.icpt);
#elif PADLESS_ACT_KIND == 1  // ACT_GELU_IBERT
    (void)seg;
    return i_gelu(u, s.gelu_b, s.gelu_c, s.gelu_r, s.gelu_one);
#elif PADLESS_ACT_KIND == 0  // ACT_RELU
    (void)s;
    (void)seg;
    return u > 0 ? u : 0;
#else
    if (s.act_kind == ACT_GELU_PWL) return i_gelu_pwl_seg((sbits<16>)u, s.gelu_lo, s.gelu_k, seg.slope, seg.icpt);
    if (s.act_kind == ACT_GELU_IBERT) return i_gelu(u, s.gelu_b, s.gelu_c, s.gelu_r, s.gelu_one);
    return u > 0 ? u : 0;
#endif
}

template <class C, class AT, int ABITS, class RQ, class ACT_RQ, class GT> struct up_sink {
    PADLESS_FIFO_REF(vec<AT, C::VEC>) aout;
    RQ &rq;
    ACT_RQ &act_rq;
    GT &gt;  // the GELU table, one bank (copy) per lane
    const layer_scalars_t &sc;
    int64_t base, gbase;
    vec<AT, C::VEC> word;
    inline void fold(int r, int nf, const typename C::acc_t *acc) {
#pragma HLS INLINE
        (void)r;
        const int pos = (nf * C::PE) % C::VEC;
        for (int p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
            typename mvu_words<C>::rq_t q = rq[p][base + nf];
            act_rq_t aq = act_rq[p][base + nf];
            int64_t u = requant<GELU_IN_BITS, 33, 31>((sbits<33>)((int64_t)acc[p] + q.bias), (ubits<31>)q.m, (ubits<6>)q.shift);
#if PADLESS_ACT_KIND == 0 || PADLESS_ACT_KIND == 1  // no GELU table in this kernel (padless_encoder.cpp)
            const gelu_seg_t seg = gelu_seg_t();
            (void)gbase;
#else
            const gelu_seg_t seg = gt[p][gbase + gelu_segment((sbits<16>)u, sc.gelu_lo, sc.gelu_k)];
#endif
            int64_t g = ffn_activation(u, sc, seg);
            // requantized to ABITS + 8 bits, + the zero point, saturated to ABITS: equal to saturating once
            // after the add (|zp| <= 128 < 2^(ABITS + 7) - 2^(ABITS - 1)), as intops.requantize(g, m, shift,
            // ABITS, zp) defines it. ABITS: 8, or 16 under `quant: {precision: {act: 16}}` (zp 0 then)
            const int64_t aw = requant<ABITS + 8, 35, 31>((sbits<35>)g, (ubits<31>)aq.m, (ubits<6>)aq.shift);
            word.v[pos + p] = (AT)saturate<ABITS>(aw + (int64_t)aq.zp);
        }
        if (pos + C::PE == C::VEC) aout.write(word);
    }
};

template <class C, class AT, int ABITS, class W, class I, class RQ, class ACT_RQ, class GT>
void up_stage(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(vec<act_t, C::VEC>) xin,
              PADLESS_FIFO_REF(vec<AT, C::VEC>) aout, PADLESS_FIFO_REF(vec<act_t, C::VEC>) hout,
              PADLESS_FIFO_REF(desc_t) dout, W &w, I &ix, RQ &rq, ACT_RQ &act_rq, GT &gt, const layer_scalars_t &sc, int slot,
              int layer, const int8_t *dense_cs, const int32_t *wsum_cs) {
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        fwd_pre<C> pre{hout};
        up_sink<C, AT, ABITS, RQ, ACT_RQ, GT> sink{aout, rq, act_rq, gt, sc, (int64_t)slot * C::NF,
                                                (int64_t)slot * GELU_SEGMENTS, {}};
        mvu_rows<C>(d.len, w, ix, (int64_t)slot * C::WORDS, xin, pre, sink, dense_cs, wsum_cs);
        PADLESS_JOB_END(d.seq, layer);
    }
}

// ---- LayerNorm --------------------------------------------------------------------------------------
template <int H, int PE, int VEC, class LN_PARAM>
void ln_stage(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(yword_t<PE>) yin,
              PADLESS_FIFO_REF(rowstat_t) sin, PADLESS_FIFO_REF(vec<act_t, VEC>) xout, PADLESS_FIFO_REF(desc_t) dout,
              LN_PARAM &ln_param, int shift, int slot, int layer) {
    const int NF = H / PE;
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        PADLESS_LOOP(ln_rows, D_LN);
        const int64_t trip = (int64_t)d.len * NF;
        lnrow_t row = {0, 1};
        vec<act_t, VEC> word;
        int f = 0;
        for (int64_t it = 0; it < trip; it++) {
            PADLESS_PIPELINE(ln_rows, it);
            if (f == 0) {
                rowstat_t st = sin.read();
                row = ln_row<H>(st.sum, st.sumsq);
            }
            yword_t<PE> yw = yin.read();
            const int pos = (f * PE) % VEC;
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                ln_param_t q = ln_param[p][(int64_t)slot * NF + f];
                word.v[pos + p] = ln_out(yw.v[p], row, (sbits<25>)q.m, (sbits<41>)q.b, (ubits<6>)shift);
            }
            if (pos + PE == VEC) xout.write(word);
            f = f == NF - 1 ? 0 : f + 1;
        }
        PADLESS_LOOP_END(ln_rows, trip);
        PADLESS_JOB_END(d.seq, layer);
    }
}

// ---- context block -> row stream ---------------------------------------------------------------------
// The context block holds one head row (D int8) per word, word r * H / D + head; a row leaves as H / VEC
// channel words. One block word a cycle (D <= VEC: a channel word every VEC / D cycles; D > VEC: a block
// word feeds D / VEC channel words, one a cycle).
template <int H, int D, int VEC, class CB>
void ctx_stream(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(CB, PADLESS_SEQ_BLOCKS) cb,
                PADLESS_FIFO_REF(vec<act_t, VEC>) xout, PADLESS_FIFO_REF(desc_t) dout, int layer) {
    const int G = D < VEC ? D : VEC;      // elements moved a cycle
    const int PER_ROW = H / G;
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        {
            PADLESS_READ_LOCK(CB, C, cb);
            PADLESS_JOB_BEGIN(d.seq, layer);
            PADLESS_LOOP(ctx_rows, D_READ);
            const int64_t trip = (int64_t)d.len * PER_ROW;
            int r = 0, k = 0;
            vec<act_t, VEC> w;
            for (int64_t it = 0; it < trip; it++) {
                PADLESS_PIPELINE(ctx_rows, it);
                const int e0 = k * G;  // first element of the row moved this cycle
                const int64_t addr = (int64_t)r * (H / D) + e0 / D;
                for (int c = 0; c < G; c++) {
#pragma HLS UNROLL
                    w.v[e0 % VEC + c] = C[0][addr][e0 % D + c];
                }
                if ((e0 + G) % VEC == 0) xout.write(w);
                if (k == PER_ROW - 1) {
                    k = 0;
                    r++;
                } else {
                    k++;
                }
            }
            PADLESS_LOOP_END(ctx_rows, trip);
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

}  // namespace padless

#endif  // PADLESS_LAYER_H
