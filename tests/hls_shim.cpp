// Test shim: the padless HLS library's processes instantiated at small sizes and driven inside real
// dataflow regions of the C-simulation runtime, with extern "C" entry points for tests/test_hls_engine.py
// (which compares every result with the Python twin). Built twice by the tests: the fast csim form and
// the synthesizable form (-DPADLESS_CSIM_FAST=0 -DPADLESS_EXACT_WIDTHS=1).
#include "padless/attention.h"
#include "padless/io.h"
#include "padless/layer.h"
#include "padless/csim_api.h"

#include <string.h>

#include <vector>

using namespace padless;

// ---- integer operators ------------------------------------------------------------------------------
extern "C" {
void t_requant(const int64_t *a, int n, uint32_t m, int s, int bits, int64_t *o) {
    for (int i = 0; i < n; i++)
        o[i] = bits == 8 ? requant<8, 33, 31>((sbits<33>)a[i], (ubits<31>)m, (ubits<6>)s)
                         : bits == 22 ? requant<22, 33, 31>((sbits<33>)a[i], (ubits<31>)m, (ubits<6>)s)
                                      : requant<32, 33, 31>((sbits<33>)a[i], (ubits<31>)m, (ubits<6>)s);
}
void t_i_exp(const int64_t *x, int n, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = (int64_t)i_exp((sbits<34>)x[i]);
}
void t_softmax(const int32_t *s, int n, int64_t *p) {  // the attn_exp / attn_pv arithmetic of one row
    int32_t mx = s[0];
    for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    uint64_t sum = 0;
    std::vector<uint32_t> e(n);
    for (int j = 0; j < n; j++) sum += (e[j] = (uint32_t)i_exp((sbits<34>)((int64_t)s[j] - mx)));
    uint32_t f = (uint32_t)softmax_factor((ubits<35>)sum);
    for (int j = 0; j < n; j++) p[j] = (int64_t)softmax_prob((ubits<22>)e[j], (ubits<24>)f);
}
void t_isqrt(const int64_t *x, int n, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = (int64_t)isqrt<23>((ubits<46>)x[i]);
}
void t_gelu_pwl(const int64_t *x, int n, int lo, int k, const int32_t *sl, const int64_t *ic, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = i_gelu_pwl((sbits<16>)x[i], lo, k, sl, ic);
}
void t_gelu(const int64_t *x, int n, int64_t b, int64_t c, int r, int64_t one, int64_t *o) {
    for (int i = 0; i < n; i++) o[i] = i_gelu(x[i], b, c, r, one);
}
void t_quant4(const int8_t *x, int n, int16_t M, int8_t *o) {
    int16_t thr[Q4_MAX];
    quant4_thresholds(M, thr);
    for (int i = 0; i < n; i++) o[i] = quant4(x[i], thr);
}
// Every (w1, w2, a) in int8^3 through the packed DSP product, in the form Vitis synthesizes (ap_int
// fields, ap = 1) or the C-simulation's native form (ap = 0): returns the number of wrong products.
int64_t t_dsp_mul2_mismatches(int ap) {
    int64_t bad = 0;
    for (int w1 = -128; w1 < 128; w1++)
        for (int w2 = -128; w2 < 128; w2++)
            for (int a = -128; a < 128; a++) {
                prod2_t p = ap ? dsp_mul2_ap((int8_t)w1, (int8_t)w2, (int8_t)a)
                               : dsp_mul2((int8_t)w1, (int8_t)w2, (int8_t)a);
                bad += (p.p1 != w1 * a) + (p.p2 != w2 * a);
            }
    return bad;
}
// The top-k network: n estimates in chunks of L = 3 into K = 16 slots; returns the kept count, the slots'
// key indices in rank order in `out`.
int t_topk(const int32_t *est, int n, int32_t *out) {
    const int K = 16, L = 3;
    int32_t sc[K], si[K];
    int cnt = 0;
    for (int c0 = 0; c0 < n; c0 += L) {
        int32_t cs[L], ci[L];
        bool cv[L];
        for (int l = 0; l < L; l++) {
            cs[l] = c0 + l < n ? est[c0 + l] : 0;
            ci[l] = c0 + l;
            cv[l] = c0 + l < n;
        }
        topk_insert<K, L>(sc, si, cnt, cs, ci, cv);
    }
    for (int s = 0; s < cnt; s++) out[s] = si[s];
    return cnt;
}
}

// ---- an MVU process in a region ------------------------------------------------------------------------
static const int MIN = 64, MOUT = 48, MVEC = 16;
typedef mvu_cfg<MIN, MOUT, 4, 16, MVEC, 1> CD;                    // dense: PE 4, SIMD 16
typedef mvu_cfg<MIN, MOUT, 4, 8, MVEC, 1, true, 16, 4, 4> CS;     // sparse: bank 16, 4 slots, 2 banks/cycle
typedef mvu_cfg<MIN, MOUT, 4, 8, MVEC, 1, 2, 16, 4, 4> CP;        // the same in pattern pe-pair
typedef vec<act_t, MVEC> mword_t;

template <class C> struct store_sink {
    int32_t *y;
    const lin_rq_t *rq;
    inline void fold(int r, int nf, const acc_t *acc) {
        for (int p = 0; p < C::PE; p++) {
            const int o = nf * C::PE + p;
            y[r * C::OUT + o] = (int32_t)requant<22, 33, 31>((sbits<33>)((int64_t)acc[p] + rq[o].bias),
                                                           (ubits<31>)rq[o].m, (ubits<6>)rq[o].shift);
        }
    }
};

static void feed_rows(const int8_t *x, int t, int in, PADLESS_FIFO_REF(mword_t) out) {
    PADLESS_LOOP(feed, 1);
    for (int w = 0; w < t * in / MVEC; w++) {
        PADLESS_PIPELINE(feed, w);
        mword_t v;
        memcpy(v.v, x + w * MVEC, MVEC);
        out.write(v);
    }
    PADLESS_LOOP_END(feed, t * in / MVEC);
}

template <class C, class W, class I>
static void mvu_proc(int t, W &w, I &ix, PADLESS_FIFO_REF(mword_t) in, int32_t *y, const lin_rq_t *rq,
                     const int8_t *dense, const int32_t *wsum) {
    store_sink<C> sink{y, rq};
    pre_none pre;
    mvu_rows<C>(t, w, ix, 0, in, pre, sink, dense, wsum);
}

template <class C>
static int64_t run_mvu(const int8_t *x, int t, const uint8_t *words, const lin_rq_t *rq, int32_t *y) {
    typedef typename mvu_words<C>::word_t word_t;
    typedef typename mvu_words<C>::iword_t iword_t;
    ::padless::sim::ram2d<word_t, C::WBANKS, C::WDEPTH> w("w", "uram");
    ::padless::sim::ram2d<iword_t, C::WBANKS, C::IDEPTH> ix("ix", "uram");
    std::vector<int8_t> dense((size_t)C::OUT * C::IN, 0);
    std::vector<int32_t> wsum(C::OUT, 0);
    const int E = C::SPARSE && !C::PAIRED ? 2 * C::SIMD : C::SIMD;
    // pe-pair: the pairs' bit-packed index words follow the value words at the next 64-byte boundary
    const uint8_t *iwords = words + ((int64_t)C::WORDS * C::PE * C::SIMD + 63) / 64 * 64;
    for (int64_t k = 0; k < (int64_t)C::WORDS * C::PE; k++) {  // weights.bin word order (nf, sf, p)
        const uint8_t *b = words + k * E;
        const int p = (int)(k % C::PE);
        const int64_t word = k / C::PE, a = (p % 2) * C::REGION + word;
        const int nf = (int)(word / C::SF), sf = (int)(word % C::SF), o = nf * C::PE + p;
        word_t wv;
        iword_t iv;
        const uint8_t *ib = iwords + (word * C::WBANKS + p / 2) * C::IBYTES;
        for (int j = 0; j < C::SIMD; j++) {
            wv.v[j] = (int8_t)b[j];
            if (C::PAIRED) {
                int v = 0;
                for (int t = 0; t < C::IBITS; t++) v |= ((ib[(j * C::IBITS + t) / 8] >> ((j * C::IBITS + t) % 8)) & 1) << t;
                iv.v[j] = v;
            } else {
                iv.v[j] = C::SPARSE ? b[C::SIMD + j] : 0;
            }
            const int pos = C::SPARSE ? (sf * C::NBPC + j / C::P_MAX) * C::BANK + ((int)iv.v[j] & (C::BANK - 1))
                                      : sf * C::SIMD + j;
            dense[(size_t)o * C::IN + pos] += wv.v[j];
        }
        w[p / 2][a] = wv;
        if (C::SPARSE) ix[p / 2][C::PAIRED ? word : a] = iv;   // dense: no index memory (IDEPTH 1)
    }
    for (int o = 0; o < C::OUT; o++)
        for (int i = 0; i < C::IN; i++) wsum[o] += dense[(size_t)o * C::IN + i];
    ::padless::sim::begin_run();
    try {
        PADLESS_REGION_BEGIN(region);
        PADLESS_FIFO(mword_t, rows, 2 * C::IN / MVEC);
        PADLESS_PROCESS(region, feed_rows, x, t, C::IN, rows);
        region.spawn("mvu", [&]() { mvu_proc<C>(t, w, ix, rows, y, rq, dense.data(), wsum.data()); });
        PADLESS_REGION_END(region);
    } catch (...) {
        return -1;
    }
    return ::padless::sim::me().clk;
}

template <class C> static void shape_of(int *out) {
    int v[11] = {C::IN, C::OUT, C::PE, C::SIMD, C::VEC, C::SPARSE ? C::BANK : 0, C::SPARSE ? C::P_MAX : 0, C::WIN,
                 C::ITER, C::DEPTH, D_READ};
    memcpy(out, v, sizeof v);
}

extern "C" {
int64_t t_mvu_dense(const int8_t *x, int t, const uint8_t *words, const lin_rq_t *rq, int32_t *y) {
    return run_mvu<CD>(x, t, words, rq, y);
}
int64_t t_mvu_sparse(const int8_t *x, int t, const uint8_t *words, const lin_rq_t *rq, int32_t *y) {
    return run_mvu<CS>(x, t, words, rq, y);
}
int64_t t_mvu_pair(const int8_t *x, int t, const uint8_t *words, const lin_rq_t *rq, int32_t *y) {
    return run_mvu<CP>(x, t, words, rq, y);
}
// IN, OUT, PE, SIMD, VEC, BANK, P_MAX, WIN, ITER, DEPTH, D_READ of the dense (0), row (1), pe-pair (2) MVU
int t_mvu_shape(int sparse, int *out) {
    if (sparse == 2) shape_of<CP>(out);
    else if (sparse) shape_of<CS>(out);
    else shape_of<CD>(out);
    return 11;
}
// fold_pair, the pe-pair sparse fold, on every (w0, w1, x) int8 triple: one kept column a cycle (SIMD 1) at
// in-bank index x & 15 of a 16-input bank, the two lanes' weights w0, w1 on the packed DSP product. Returns
// the lanes whose accumulator differs from w0 x, w1 x.
int64_t t_fold_pair_mismatches() {
    typedef mvu_cfg<16, 2, 2, 1, 16, 1, 2, 16, 1, 4> C;
    typedef mvu_words<C>::word_t word_t;
    typedef mvu_words<C>::iword_t iword_t;
    word_t w[1][2];
    iword_t ix[1][1];
    act_t xw[C::XWIN];
    int64_t bad = 0;
    for (int a = -128; a < 128; a++) {
        const int pos = a & 15;
        for (int j = 0; j < C::XWIN; j++) xw[j] = (act_t)(j == pos ? a : 99 - j);   // decoys at other indices
        ix[0][0].v[0] = pos;
        for (int w0 = -128; w0 < 128; w0++)
            for (int w1 = -128; w1 < 128; w1++) {
                w[0][0].v[0] = (wgt_t)w0;
                w[0][1].v[0] = (wgt_t)w1;
                acc_t acc[2] = {0, 0};
                fold_pair<C>(w, ix, 0, xw, acc);
                bad += (acc[0] != w0 * a) + (acc[1] != w1 * a);
            }
    }
    return bad;
}
}

// ---- selection + attention of one sequence ------------------------------------------------------------
static const int AH = 64, AHEADS = 4, AD = 16, AMAX = 64, AKMAX = 16;
typedef att_cfg<AH, AHEADS, AMAX, AKMAX, 2, 3, MVEC, 1> AC;
PADLESS_BLOCK3D(t_qkv_blk, act_t, 1, AMAX * AHEADS, AD);
PADLESS_BLOCK3D(t_qh_blk, act_t, 1, AMAX, AD);
PADLESS_BLOCK3D(t_kh_blk, act_t, 2, AMAX, AD);
PADLESS_BLOCK3D(t_ix_blk, kidx_t, 1, AMAX, AKMAX);
PADLESS_BLOCK3D(t_ctx_blk, act_t, 1, AMAX * AHEADS, AD);

static void feed_qkv(int n, int keep, const int8_t *q, const int8_t *k, const int8_t *v, PADLESS_FIFO_REF(desc_t) d,
                     PADLESS_BLOCKS_REF(t_qkv_blk) qb, PADLESS_BLOCKS_REF(t_qkv_blk) kb, PADLESS_BLOCKS_REF(t_qkv_blk) vb) {
    desc_t dd = {0, n, keep, 0};
    {
        PADLESS_WRITE_LOCK(t_qkv_blk, Q, qb);
        PADLESS_WRITE_LOCK(t_qkv_blk, K, kb);
        PADLESS_WRITE_LOCK(t_qkv_blk, V, vb);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < AH; c++) {
                Q[0][i * AHEADS + c / AD][c % AD] = q[i * AH + c];
                K[0][i * AHEADS + c / AD][c % AD] = k[i * AH + c];
                V[0][i * AHEADS + c / AD][c % AD] = v[i * AH + c];
            }
    }
    d.write(dd);
}
static void drain_ctx(int n, PADLESS_FIFO_REF(desc_t) d, PADLESS_BLOCKS_REF(t_ctx_blk) cb, int8_t *ctx) {
    d.read();
    PADLESS_READ_LOCK(t_ctx_blk, C, cb);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < AH; c++) ctx[i * AH + c] = C[0][i * AHEADS + c / AD][c % AD];
}
static void p_sel(PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(t_qkv_blk) qb, PADLESS_BLOCKS_REF(t_qkv_blk) kb,
                  PADLESS_BLOCKS_REF(t_qkv_blk) vb, PADLESS_BLOCKS_REF(t_qh_blk) qh, PADLESS_BLOCKS_REF(t_kh_blk) kh,
                  PADLESS_BLOCKS_REF(t_ix_blk) ixq, PADLESS_BLOCKS_REF(t_kh_blk) vh, PADLESS_BLOCKS_REF(t_ix_blk) ixv,
                  PADLESS_FIFO_REF(desc_t) dout) {
    select_stage<AC, t_qkv_blk, t_qh_blk, t_kh_blk, t_ix_blk>(1, din, qb, kb, vb, qh, kh, ixq, vh, ixv, dout, 0);
}
static void p_qk(PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(t_qh_blk) qh, PADLESS_BLOCKS_REF(t_kh_blk) kh,
                 PADLESS_BLOCKS_REF(t_ix_blk) ixq, PADLESS_FIFO_REF(score_w<2>) s, PADLESS_FIFO_REF(int32_t) m,
                 PADLESS_FIFO_REF(desc_t) dout, uint32_t sm, uint8_t ss) {
    attn_qk<AC, t_qh_blk, t_kh_blk, t_ix_blk>(1, din, qh, kh, ixq, s, m, dout, sm, ss, 0);
}
static void p_exp(PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(score_w<2>) s, PADLESS_FIFO_REF(int32_t) m,
                  PADLESS_FIFO_REF(e_w<2>) e, PADLESS_FIFO_REF(uint32_t) f, PADLESS_FIFO_REF(desc_t) dout) {
    attn_exp<AC>(1, din, s, m, e, f, dout, 0);
}
template <class CTX_RQ>
static void p_pv(PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(e_w<2>) e, PADLESS_FIFO_REF(uint32_t) f,
                 PADLESS_BLOCKS_REF(t_kh_blk) vh, PADLESS_BLOCKS_REF(t_ix_blk) ixv, PADLESS_BLOCKS_REF(t_ctx_blk) cb,
                 PADLESS_FIFO_REF(desc_t) dout, CTX_RQ &ctx_rq) {
    no_recv_t no_recv;  // no token reduction: the received-attention stream is never written
    attn_pv<AC, t_kh_blk, t_ix_blk, t_ctx_blk>(1, din, e, f, vh, ixv, cb, dout, ctx_rq, 0, 0, no_recv, false);
}

extern "C" int64_t t_attention(const int8_t *q, const int8_t *k, const int8_t *v, int n, int keep, uint32_t score_m,
                               int score_shift, const uint32_t *ctx_m, const uint8_t *ctx_shift, int8_t *ctx) {
    ::padless::sim::ram2d<ctx_rq_t, AD, AHEADS> ctx_rq("ctx_rq", "bram");
    for (int c = 0; c < AH; c++) {
        ctx_rq_t r;
        r.m = ctx_m[c];
        r.shift = ctx_shift[c];
        ctx_rq[c % AD][c / AD] = r;
    }
    ::padless::sim::begin_run();
    try {
        PADLESS_REGION_BEGIN(region);
        PADLESS_FIFO(desc_t, d0, 4);
        PADLESS_FIFO(desc_t, d1, 4);
        PADLESS_FIFO(desc_t, d2, 4);
        PADLESS_FIFO(desc_t, d3, 4);
        PADLESS_FIFO(desc_t, d4, 4);
        PADLESS_FIFO(score_w<2>, scores, 2 * (AMAX / 2) + 4);
        PADLESS_FIFO(int32_t, maxes, 4);
        PADLESS_FIFO(e_w<2>, exps, 2 * (AMAX / 2) + D_EXP + 4);
        PADLESS_FIFO(uint32_t, factors, 4);
        PADLESS_BLOCKS(t_qkv_blk, qb, 2);
        PADLESS_BLOCKS(t_qkv_blk, kb, 2);
        PADLESS_BLOCKS(t_qkv_blk, vb, 2);
        PADLESS_BLOCKS(t_qh_blk, qh, 2);
        PADLESS_BLOCKS(t_kh_blk, kh, 2);
        PADLESS_BLOCKS(t_ix_blk, ixq, 2);
        PADLESS_BLOCKS(t_kh_blk, vh, 2);
        PADLESS_BLOCKS(t_ix_blk, ixv, 2);
        PADLESS_BLOCKS(t_ctx_blk, cb, 2);
        PADLESS_PROCESS(region, feed_qkv, n, keep, q, k, v, d0, qb, kb, vb);
        PADLESS_PROCESS(region, p_sel, d0, qb, kb, vb, qh, kh, ixq, vh, ixv, d1);
        PADLESS_PROCESS(region, p_qk, d1, qh, kh, ixq, scores, maxes, d2, score_m, (uint8_t)score_shift);
        PADLESS_PROCESS(region, p_exp, d2, scores, maxes, exps, factors, d3);
        region.spawn("p_pv", [&]() { p_pv(d3, exps, factors, vh, ixv, cb, d4, ctx_rq); });
        PADLESS_PROCESS(region, drain_ctx, n, d4, cb, ctx);
        PADLESS_REGION_END(region);
    } catch (...) {
        return -1;
    }
    return ::padless::sim::me().clk;
}

// ---- LayerNorm stage -------------------------------------------------------------------------------------
static const int LH = 64, LPE = 4;
static void feed_ln(int t, const int32_t *y, PADLESS_FIFO_REF(yword_t<LPE>) yo, PADLESS_FIFO_REF(rowstat_t) so,
                    PADLESS_FIFO_REF(desc_t) d) {
    desc_t dd = {0, t, t, 0};
    d.write(dd);
    for (int r = 0; r < t; r++) {
        int64_t s = 0, s2 = 0;
        for (int f = 0; f < LH / LPE; f++) {
            yword_t<LPE> w;
            for (int p = 0; p < LPE; p++) {
                w.v[p] = y[r * LH + f * LPE + p];
                s += w.v[p];
                s2 += (int64_t)w.v[p] * w.v[p];
            }
            yo.write(w);
        }
        rowstat_t st = {s, s2};
        so.write(st);
    }
}
static void drain_ln(int t, PADLESS_FIFO_REF(mword_t) x, PADLESS_FIFO_REF(desc_t) d, int8_t *out) {
    d.read();
    for (int w = 0; w < t * LH / MVEC; w++) {
        vec<act_t, MVEC> v = x.read();
        memcpy(out + w * MVEC, v.v, MVEC);
    }
}
extern "C" int64_t t_layernorm(const int32_t *y, int t, const int32_t *m, const int64_t *b, int shift, int8_t *out) {
    ::padless::sim::ram2d<ln_param_t, LPE, LH / LPE> ln_param("ln_param", "bram");
    for (int c = 0; c < LH; c++) {
        ln_param_t q;
        q.m = m[c];
        q.b = b[c];
        ln_param[c % LPE][c / LPE] = q;
    }
    ::padless::sim::begin_run();
    try {
        PADLESS_REGION_BEGIN(region);
        PADLESS_FIFO(yword_t<LPE>, yw, 2 * LH / LPE + 4);
        PADLESS_FIFO(rowstat_t, st, 4);
        PADLESS_FIFO(mword_t, xo, 2 * LH / MVEC);
        PADLESS_FIFO(desc_t, d0, 4);
        PADLESS_FIFO(desc_t, d1, 4);
        PADLESS_PROCESS(region, feed_ln, t, y, yw, st, d0);
        region.spawn("ln", [&]() { ln_stage<LH, LPE, MVEC>(1, d0, yw, st, xo, d1, ln_param, shift, 0, 0); });
        PADLESS_PROCESS(region, drain_ln, t, xo, d1, out);
        PADLESS_REGION_END(region);
    } catch (...) {
        return -1;
    }
    return ::padless::sim::me().clk;
}

// ---- timing of two processes and a FIFO ------------------------------------------------------------------
// Producer: n tokens, one a cycle (depth DP). Consumer: a loop of 2n iterations reading at the even ones
// (depth DC). With a FIFO of depth 1 the producer is back-pressured; the consumer sets the pace.
static const int DP = 5, DC = 7;
static void prod(int n, PADLESS_FIFO_REF(int32_t) f) {
    PADLESS_LOOP(prod_loop, DP);
    for (int i = 0; i < n; i++) {
        PADLESS_PIPELINE(prod_loop, i);
        f.write(i);
    }
    PADLESS_LOOP_END(prod_loop, n);
}
static void cons(int n, PADLESS_FIFO_REF(int32_t) f, int64_t *sum) {
    PADLESS_LOOP(cons_loop, DC);
    int64_t s = 0;
    for (int i = 0; i < 2 * n; i++) {
        PADLESS_PIPELINE(cons_loop, i);
        if (i % 2 == 0) s += f.read();
    }
    PADLESS_LOOP_END(cons_loop, 2 * n);
    *sum = s;
}
static void prod_depth1(int n, PADLESS_FIFO_REF(int32_t) f) { prod(n, f); }
extern "C" int64_t t_fifo_pair(int n, int depth, int64_t *sum) {
    ::padless::sim::begin_run();
    try {
        PADLESS_REGION_BEGIN(region);
        ::padless::sim::fifo<int32_t> f("f", depth);
        PADLESS_PROCESS(region, prod_depth1, n, f);
        PADLESS_PROCESS(region, cons, n, f, sum);
        PADLESS_REGION_END(region);
    } catch (...) {
        return -1;
    }
    return ::padless::sim::me().clk;
}
extern "C" int t_fifo_consts(int *out) {
    out[0] = DP;
    out[1] = DC;
    return 2;
}
// A deadlock: two processes, each reads what the other writes only after its own read.
static void dl_a(PADLESS_FIFO_REF(int32_t) in, PADLESS_FIFO_REF(int32_t) out) { out.write(in.read()); }
extern "C" int t_deadlock() {
    ::padless::sim::begin_run();
    try {
        PADLESS_REGION_BEGIN(region);
        ::padless::sim::fifo<int32_t> a("a", 2), b("b", 2);
        PADLESS_PROCESS(region, dl_a, a, b);
        PADLESS_PROCESS(region, dl_a, b, a);
        PADLESS_REGION_END(region);
    } catch (const ::padless::sim::aborted &) {
        return 1;
    }
    return 0;
}

// ---- the port checker ---------------------------------------------------------------------------------
// A pipelined loop reading 8 consecutive elements a cycle from a 64-element array partitioned cyclic by
// `factor` (1: one two-port memory -> violations; 8: one access per bank -> none).
template <int FACTOR> static int64_t scan(const int8_t *src) {
    PADLESS_RAM1D(act_t, buf, 64, cyclic, FACTOR, bram);
    for (int i = 0; i < 64; i++) buf[i] = src[i];
    int64_t s = 0;
    PADLESS_LOOP(scan_loop, 3);
    for (int i = 0; i < 8; i++) {
        PADLESS_PIPELINE(scan_loop, i);
        for (int j = 0; j < 8; j++) s += buf[i * 8 + j];
    }
    PADLESS_LOOP_END(scan_loop, 8);
    return s;
}
extern "C" int64_t t_port_scan(int partitioned, const int8_t *src, int64_t *sum) {
    ::padless::sim::begin_run();
    *sum = partitioned ? scan<8>(src) : scan<1>(src);
    return ::padless::sim::state.port_violations;
}

// The FFN-up lanes' GELU lookups as up_sink does them (gelu_segment -> the lane's bank of the table ->
// i_gelu_pwl_seg), LANES lanes a pipelined iteration, from a table of BANKS copies (gelu_tab's layout: one
// port a bank): BANKS = LANES gives each lane its own copy (no violation), BANKS = 1 is the unpartitioned
// table read by every lane (a violation each iteration). Returns the port violations; o: the outputs.
template <int BANKS> static void gelu_lanes(const int64_t *x, int n, int lo, int k, const int32_t *sl, const int64_t *ic,
                                            int64_t *o) {
    const int LANES = 4;
    static ::padless::sim::ram2d<gelu_seg_t, BANKS, GELU_SEGMENTS> gelu_tab("gelu_tab", "lutram", 1);
    for (int s = 0; s < GELU_SEGMENTS; s++) {
        gelu_seg_t e;
        e.slope = sl[s];
        e.icpt = ic[s];
        for (int b = 0; b < BANKS; b++) gelu_tab[b][s] = e;
    }
    PADLESS_LOOP(gelu_fold, 4);
    for (int i = 0; i < n / LANES; i++) {
        PADLESS_PIPELINE(gelu_fold, i);
        for (int p = 0; p < LANES; p++) {
            const sbits<16> u = (sbits<16>)x[i * LANES + p];
            const gelu_seg_t seg = gelu_tab[p % BANKS][gelu_segment(u, lo, k)];
            o[i * LANES + p] = i_gelu_pwl_seg(u, lo, k, seg.slope, seg.icpt);
        }
    }
    PADLESS_LOOP_END(gelu_fold, n / LANES);
}
extern "C" int64_t t_gelu_lanes(int banks, const int64_t *x, int n, int lo, int k, const int32_t *sl, const int64_t *ic,
                                int64_t *o) {
    ::padless::sim::begin_run();
    if (banks == 1) gelu_lanes<1>(x, n, lo, k, sl, ic, o);
    else gelu_lanes<4>(x, n, lo, k, sl, ic, o);
    return ::padless::sim::state.port_violations;
}
