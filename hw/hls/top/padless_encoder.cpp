// padless top-level kernel: the integer Transformer encoder over one packed call of variable-length
// sequences, never padded, as a streaming dataflow engine (docs/hls.md has the block diagram).
// Model shape, parallelism, limits and the weights.bin layout come from the generated config.h
// (sw/padless/codegen/hls.py); the operators from the padless HLS library (hw/hls/include/padless).
// Bit for bit padless.golden.run_encoder.
//
// Interface (Vitis HLS): m_axi masters act_rd / act_res (bundles gmem0 / gmem1, read) and act_wr
// (gmem2, write) on one activation buffer, desc (gmem3) and weights (gmem4), each mover a burst loop
// (io.h) with the burst length and outstanding requests of config.h; s_axilite for the
// arguments and the return status; block protocol ap_ctrl_hs (AP_START/AP_DONE/AP_IDLE at 0x00).
//
//   act_*:   the activation buffer, 2 x num_tokens rows of HIDDEN int8: the host writes the layer-0
//            input into rows [0, num_tokens); layer l reads half l % 2 and writes half (l + 1) % 2, so
//            the output is in half LAYERS % 2. The three ports carry the same address. With token reduction
//            (PADLESS_TOKENS, tokens.h) 3 x num_tokens rows: survivors stay compacted in the two halves and
//            the output, in input order, is rows [2 num_tokens, 3 num_tokens); with the learned policy
//            (PADLESS_TR_POLICY) 4 x num_tokens rows, the fourth region holding the writer's count beats.
//   desc:    num_seqs descriptors {int32 start, int32 len}, in the order the host's length-aware
//            scheduler chose: the engine runs the sequences in that order.
//   weights: the weights.bin image (docs/hls.md, "weights.bin version 2").
//   mode:    PADLESS_MODE_INIT loads every layer's weights on chip (resident engines; the host calls it
//            once after programming the device), PADLESS_MODE_RUN runs the call.
// Returns 0, or an error status (PADLESS_ERR_*) before touching act when an argument is out of range.
//
// Engine: a layer loop around one DATAFLOW region. In the region the sequences flow through the
// stage processes one behind another (docs/hls.md): desc_reader -> loader -> qkv MVU -> [Q/K/V blocks]
// -> select -> [head blocks] -> attention (qk -> exp -> pv) -> [context block] -> ctx_stream -> O MVU
// (+ residual rows from res_loader, + LayerNorm sums) -> LayerNorm -> FFN up + GELU -> FFN down
// (+ residual, + sums) -> LayerNorm -> writer. Resident weights stay on chip across calls; streamed
// weights (PADLESS_RESIDENT 0) are loaded per layer before the layer's region (single-buffered).
#include "config.h"
#include "padless/attention.h"
#include "padless/io.h"
#include "padless/layer.h"
#include "padless/tokens.h"

using namespace padless;

#define H PADLESS_HIDDEN
#define F PADLESS_FFN
#define HD PADLESS_HEAD_DIM
#define VEC PADLESS_VEC
#define AXI PADLESS_AXI_BYTES
#define LBUF (PADLESS_RESIDENT ? PADLESS_LAYERS : 1)
#define PADLESS_MAXI_DEPTH_ACT (PADLESS_MAX_TOKENS * (H / AXI))  // beats of one half of the activation buffer
#ifndef PADLESS_TOKENS
#define PADLESS_TOKENS 0     // token reduction (tokens.h): 0 off; else the act buffer has a third region, the output
#define PADLESS_ACT_REGIONS 2
#define PADLESS_TR_STAGES 1
#endif
#ifndef PADLESS_TR_POLICY
#define PADLESS_TR_POLICY 0  // token reduction by the learned TR-BERT policy (tokens.h tr_policy): 4 act regions
#endif
#ifndef PADLESS_ACT_BITS
#define PADLESS_ACT_BITS 8   // the FFN activation (FFN down's input): 8, or 16 (quant: {precision: {act: 16}})
#endif

enum {
    PADLESS_OK = 0,
    PADLESS_ERR_TOKENS = 1,      // num_tokens < 1 or > PADLESS_MAX_TOKENS
    PADLESS_ERR_SEQS = 2,        // num_seqs < 1 or > num_tokens
    PADLESS_ERR_OFFSETS = 3,     // a descriptor outside rows [0, num_tokens)
    PADLESS_ERR_SEQLEN = 4,      // a sequence longer than PADLESS_MAX_SEQ (or empty)
    PADLESS_ERR_NO_WEIGHTS = 5,  // a resident engine run before its init call
    PADLESS_ERR_DEADLOCK = 6,    // C-simulation only: the threaded run deadlocked (never in hardware)
    PADLESS_ERR_MODE = 7,        // mode is neither RUN nor INIT
    PADLESS_ERR_CSIM = 8,        // C-simulation only: a check failed inside a process (message in the report)
};
enum { PADLESS_MODE_RUN = 0, PADLESS_MODE_INIT = 1 };

typedef mvu_cfg<H, 3 * H, PADLESS_PE_QKV, PADLESS_SIMD_QKV, VEC, LBUF, PADLESS_SPARSE_WEIGHTS, PADLESS_BANK,
                PADLESS_P_MAX, PADLESS_INDEX_BITS>
    C_QKV;
typedef mvu_cfg<H, H, PADLESS_PE_OUT, PADLESS_SIMD_OUT, VEC, LBUF, PADLESS_SPARSE_WEIGHTS, PADLESS_BANK, PADLESS_P_MAX,
                PADLESS_INDEX_BITS>
    C_OUT;
typedef mvu_cfg<H, F, PADLESS_PE_UP, PADLESS_SIMD_UP, VEC, LBUF, PADLESS_SPARSE_WEIGHTS, PADLESS_BANK, PADLESS_P_MAX,
                PADLESS_INDEX_BITS>
    C_UP;
typedef mvu_cfg<F, H, PADLESS_PE_DOWN, PADLESS_SIMD_DOWN, VEC, LBUF, PADLESS_SPARSE_WEIGHTS, PADLESS_BANK,
                PADLESS_P_MAX, PADLESS_INDEX_BITS, PADLESS_ACT_BITS>
    C_DOWN;
typedef att_cfg<H, PADLESS_HEADS, PADLESS_MAX_SEQ, PADLESS_K_MAX, PADLESS_ATT_PE, PADLESS_SEL_LANES, VEC, LBUF> A;

typedef vec<act_t, VEC> word_t;
typedef C_DOWN::x_t ffn_act_t;          // the FFN activation: int8, or int16 under precision act 16
typedef vec<ffn_act_t, VEC> aword_t;
typedef vec<act_t, AXI> abeat_t;
typedef vec<uint8_t, AXI> wbeat_t;
typedef score_w<PADLESS_ATT_PE> score_t;
typedef e_w<PADLESS_ATT_PE> ew_t;
typedef yword_t<PADLESS_PE_OUT> y1_t;
typedef yword_t<PADLESS_PE_DOWN> y2_t;

// Channel blocks (streams of blocks: PADLESS_SEQ_BLOCKS buffers for Q/K/V and the context, two for the
// per-head blocks).
PADLESS_BLOCK3D(qkv_blk_t, act_t, 1, PADLESS_MAX_SEQ * PADLESS_HEADS, HD);
PADLESS_BLOCK3D(qh_blk_t, act_t, 1, PADLESS_MAX_SEQ, HD);
PADLESS_BLOCK3D(kh_blk_t, act_t, PADLESS_ATT_PE, PADLESS_MAX_SEQ, HD);
PADLESS_BLOCK3D(ix_blk_t, kidx_t, 1, PADLESS_MAX_SEQ, PADLESS_K_MAX);
PADLESS_BLOCK3D(ctx_blk_t, act_t, 1, PADLESS_MAX_SEQ * PADLESS_HEADS, HD);

// FIFO depths (tokens). docs/hls.md, "Channels", gives the reasoning; the deadlock check verifies them.
static const int DEPTH_DESC = 16;
static const int DEPTH_DESC_RES = 32;
static const int DEPTH_ROW = 2 * (H / VEC) + 2;
static const int DEPTH_FFN_ROW = 2 * (F / VEC) + 2;
static const int DEPTH_FWD = 3 * (H / VEC) + 2;
static const int KF_MAX = (PADLESS_MAX_SEQ + PADLESS_ATT_PE - 1) / PADLESS_ATT_PE;
static const int DEPTH_SCORE = 2 * KF_MAX + 4;
static const int DEPTH_E = 2 * KF_MAX + D_EXP + 4;
static const int DEPTH_ROWSTAT = 4;
static const int DEPTH_Y1 = 2 * (H / PADLESS_PE_OUT) + 4;
static const int DEPTH_Y2 = 2 * (H / PADLESS_PE_DOWN) + 4;
// token reduction: a sequence's received sums (+ 3 header words), its keep bits
static const int DEPTH_RECV = PADLESS_MAX_SEQ + 8;
static const int DEPTH_MASK = 2 * PADLESS_MAX_SEQ + 4;

// ---- on-chip weights and parameters ----------------------------------------------------------------
#ifdef __SYNTHESIS__
#define PADLESS_GLOBAL_RAM2D(T, NAME_, B_, N_, IMPL_) static T NAME_[B_][N_]
#define PADLESS_GLOBAL_TABLE(T, NAME_, B_, N_, IMPL_) static T NAME_[B_][N_]
#else
// weight memories: true dual port (two lanes a bank); per-channel tables: one port used per iteration
// (written by load_layer, read once per fold in the region), simple dual port in LUTRAM or block RAM
#define PADLESS_GLOBAL_RAM2D(T, NAME_, B_, N_, IMPL_) static ::padless::sim::ram2d<T, B_, N_> NAME_(#NAME_, #IMPL_)
#define PADLESS_GLOBAL_TABLE(T, NAME_, B_, N_, IMPL_) static ::padless::sim::ram2d<T, B_, N_> NAME_(#NAME_, #IMPL_, 1)
#endif
typedef mvu_words<C_QKV>::word_t qkv_word_t;
typedef mvu_words<C_QKV>::iword_t qkv_iword_t;
typedef mvu_words<C_OUT>::word_t out_word_t;
typedef mvu_words<C_OUT>::iword_t out_iword_t;
typedef mvu_words<C_UP>::word_t up_word_t;
typedef mvu_words<C_UP>::iword_t up_iword_t;
typedef mvu_words<C_DOWN>::word_t down_word_t;
typedef mvu_words<C_DOWN>::iword_t down_iword_t;
typedef mvu_words<C_QKV>::rq_t rq_t;
#define IWORDS(C) (C::IDEPTH)   // index words: one per lane (pattern row), per lane pair (pe-pair), none

PADLESS_GLOBAL_RAM2D(qkv_word_t, w_qkv, C_QKV::WBANKS, C_QKV::WDEPTH, PADLESS_WEIGHT_IMPL_QKV);
PADLESS_GLOBAL_RAM2D(qkv_iword_t, i_qkv, C_QKV::WBANKS, IWORDS(C_QKV), PADLESS_WEIGHT_IMPL_QKV);
PADLESS_GLOBAL_RAM2D(out_word_t, w_out, C_OUT::WBANKS, C_OUT::WDEPTH, PADLESS_WEIGHT_IMPL_OUT);
PADLESS_GLOBAL_RAM2D(out_iword_t, i_out, C_OUT::WBANKS, IWORDS(C_OUT), PADLESS_WEIGHT_IMPL_OUT);
PADLESS_GLOBAL_RAM2D(up_word_t, w_up, C_UP::WBANKS, C_UP::WDEPTH, PADLESS_WEIGHT_IMPL_UP);
PADLESS_GLOBAL_RAM2D(up_iword_t, i_up, C_UP::WBANKS, IWORDS(C_UP), PADLESS_WEIGHT_IMPL_UP);
PADLESS_GLOBAL_RAM2D(down_word_t, w_down, C_DOWN::WBANKS, C_DOWN::WDEPTH, PADLESS_WEIGHT_IMPL_DOWN);
PADLESS_GLOBAL_RAM2D(down_iword_t, i_down, C_DOWN::WBANKS, IWORDS(C_DOWN), PADLESS_WEIGHT_IMPL_DOWN);
// Per-channel tables: rq_<mvu> the MVU's requantization {bias, m, shift}; res_rq_<mvu> the residual addend's
// requantization; ln_param_<n> LayerNorm's output {m, b}; act_rq_up the FFN activation's requantization (+ zero
// point); ctx_rq the context's. Their storage macros (PADLESS_TIMPL_*) carry the resource estimate's names.
PADLESS_GLOBAL_TABLE(rq_t, rq_qkv, PADLESS_PE_QKV, LBUF *C_QKV::NF, PADLESS_TIMPL_RQ_QKV);
PADLESS_GLOBAL_TABLE(rq_t, rq_out, PADLESS_PE_OUT, LBUF *C_OUT::NF, PADLESS_TIMPL_RQ_OUT);
PADLESS_GLOBAL_TABLE(rq_t, rq_up, PADLESS_PE_UP, LBUF *C_UP::NF, PADLESS_TIMPL_RQ_UP);
PADLESS_GLOBAL_TABLE(rq_t, rq_down, PADLESS_PE_DOWN, LBUF *C_DOWN::NF, PADLESS_TIMPL_RQ_DOWN);
PADLESS_GLOBAL_TABLE(res_rq_t, res_rq_out, PADLESS_PE_OUT, LBUF *C_OUT::NF, PADLESS_TIMPL_RES_RQ_OUT);
PADLESS_GLOBAL_TABLE(res_rq_t, res_rq_down, PADLESS_PE_DOWN, LBUF *C_DOWN::NF, PADLESS_TIMPL_RES_RQ_DOWN);
PADLESS_GLOBAL_TABLE(ln_param_t, ln_param_1, PADLESS_PE_OUT, LBUF *C_OUT::NF, PADLESS_TIMPL_LN_PARAM_1);
PADLESS_GLOBAL_TABLE(ln_param_t, ln_param_2, PADLESS_PE_DOWN, LBUF *C_DOWN::NF, PADLESS_TIMPL_LN_PARAM_2);
PADLESS_GLOBAL_TABLE(act_rq_t, act_rq_up, PADLESS_PE_UP, LBUF *C_UP::NF, PADLESS_TIMPL_ACT_RQ_UP);
PADLESS_GLOBAL_TABLE(ctx_rq_t, ctx_rq, HD, LBUF *PADLESS_HEADS, PADLESS_TIMPL_CTX_RQ);
// the GELU table: one copy per FFN-up lane (bank p is lane p's), each lane's 64 x LBUF entries in LUTRAM;
// a kernel built for i-GELU or ReLU (PADLESS_ACT_KIND 1 / 0) never reads it: one entry, not loaded
#define GELU_TAB_DEPTH (PADLESS_ACT_KIND == 0 || PADLESS_ACT_KIND == 1 ? 1 : LBUF * GELU_SEGMENTS)
PADLESS_GLOBAL_TABLE(gelu_seg_t, gelu_tab, PADLESS_PE_UP, GELU_TAB_DEPTH, lutram);
PADLESS_GLOBAL_REGS(layer_scalars_t, scal, LBUF);
static bool weights_loaded = false;
#if PADLESS_TOKENS
// token reduction: the accumulated importance and the original position of each surviving row (row start + r
// of the call), owned by token_select and the writer respectively
#if !PADLESS_TR_POLICY
PADLESS_GLOBAL_RAM2D(uint32_t, tr_imp, 1, PADLESS_MAX_TOKENS, PADLESS_TR_IMPL);
#endif
PADLESS_GLOBAL_RAM2D(uint16_t, tr_pos, 1, PADLESS_MAX_TOKENS, PADLESS_TR_IMPL);
typedef PADLESS_FIFO_REF(uint32_t) recv_ref_t;
#else
typedef no_recv_t &recv_ref_t;
static no_recv_t no_recv;
#endif

#ifndef __SYNTHESIS__
// C-simulation fast form: each MVU's weights of each on-chip layer as a dense row-major int8 matrix and
// its row sums (sparse layers expanded with zeros): the same integers, multiplied by whole rows.
#include <vector>
struct dense_copy {
    std::vector<int8_t> w;
    std::vector<int32_t> sum;
};
static dense_copy dc_qkv[LBUF], dc_out[LBUF], dc_up[LBUF], dc_down[LBUF];
template <class C, class W, class I> static void make_dense(W &w, I &ix, int slot, dense_copy &dc) {
    dc.w.assign((size_t)C::OUT * C::IN, 0);
    dc.sum.assign(C::OUT, 0);
    for (int nf = 0; nf < C::NF; nf++)
        for (int sf = 0; sf < C::SF; sf++)
            for (int p = 0; p < C::PE; p++) {
                const int64_t a = (p % 2) * C::REGION + (int64_t)slot * C::WORDS + nf * C::SF + sf;
                const int o = nf * C::PE + p;
                const int8_t *wv = w.data(p / 2, a)->v;
                int8_t *row = dc.w.data() + (size_t)o * C::IN;
                // the lane's index word: its own (pattern row), its pair's (pe-pair: no lane offset)
                const int64_t ia = C::PAIRED ? a - (p % 2) * C::REGION : C::SPARSE ? a : 0;
                for (int j = 0; j < C::SIMD; j++) {
                    if (C::SPARSE) {
                        const int b = sf * C::NBPC + j / C::P_MAX;
                        const int pos = b * C::BANK + ((int)ix.data(p / 2, ia)->v[j] & (C::BANK - 1));
                        row[pos] = (int8_t)(row[pos] + wv[j]);
                    } else {
                        row[sf * C::SIMD + j] = wv[j];
                    }
                }
            }
    for (int o = 0; o < C::OUT; o++) {
        int32_t s = 0;
        for (int i = 0; i < C::IN; i++) s += dc.w[(size_t)o * C::IN + i];
        dc.sum[o] = s;
    }
}
#define DENSE_W(dc, slot) (dc)[slot].w.data()
#define DENSE_S(dc, slot) (dc)[slot].sum.data()
#else
#define DENSE_W(dc, slot) ((const int8_t *)0)
#define DENSE_S(dc, slot) ((const int32_t *)0)
#endif

// ---- weight loading (init call, or per layer when streamed) -----------------------------------------
// weights.bin v2 sections of a layer (byte offsets in PADLESS_WSEC), in this order:
enum {
    WS_QKV_W, WS_QKV_RQ, WS_OUT_W, WS_OUT_RQ, WS_UP_W, WS_UP_RQ, WS_DOWN_W, WS_DOWN_RQ,
    WS_CTX, WS_RES_ATTN, WS_LN_ATTN, WS_ACT, WS_RES_FFN, WS_LN_FFN, WS_GELU, WS_SCALARS
};

template <class C, class W, class I> struct store_words {
    W &w;
    I &ix;
    int64_t base;
    inline void operator()(int64_t k, const uint8_t *b) {
        // element k: word (nf, sf) of bank p, k = (nf * SF + sf) * PE + p
        const int p = (int)(k % C::PE);
        const int64_t a = (p % 2) * C::REGION + base + k / C::PE;
        typename mvu_words<C>::word_t wv;
        for (int j = 0; j < C::SIMD; j++) wv.v[j] = (wgt_t)b[j];
        w[p / 2][a] = wv;
        if (C::SPARSE && !C::PAIRED) {
            typename mvu_words<C>::iword_t iv;
            for (int j = 0; j < C::SIMD; j++) iv.v[j] = b[C::SIMD + j];
            ix[p / 2][C::SPARSE ? a : 0] = iv;
        }
    }
};
// pe-pair index words: element k = (nf * SF + sf) * (PE / 2) + q, lane j's index at bits [j IBITS, (j + 1)
// IBITS) of the element's little-endian bit stream (weights.bin, codegen/weights.py pe_pair_words)
template <class C, class I> struct store_iwords {
    I &ix;
    int64_t base;
    inline void operator()(int64_t k, const uint8_t *b) {
        const int q = (int)(k % C::WBANKS);   // WBANKS = PE / 2 lane pairs
        typename mvu_words<C>::iword_t iv;
        for (int j = 0; j < C::SIMD; j++) {
#pragma HLS UNROLL
            int v = 0;
            for (int t = 0; t < C::IBITS; t++) {
#pragma HLS UNROLL
                const int bit = j * C::IBITS + t;
                v |= ((b[bit / 8] >> (bit % 8)) & 1) << t;
            }
            iv.v[j] = v;
        }
        ix[q][base + k / C::WBANKS] = iv;
    }
};
template <class C, class RQ> struct store_rq {
    RQ &rq;
    int64_t base;
    inline void operator()(int64_t o, const uint8_t *b) {
        rq_t q;
        q.bias = le32(b);
        q.m = (uint32_t)le32(b + 4);
        q.shift = (uint8_t)le32(b + 8);
        rq[o % C::PE][base + o / C::PE] = q;
    }
};
template <int PE, class T, class RQ> struct store_pair {  // {int64 m, int64 shift|b} per channel
    RQ &rq;
    int64_t base;
    inline void operator()(int64_t c, const uint8_t *b) {
        T q;
        set(q, le64(b), le64(b + 8));
        rq[c % PE][base + c / PE] = q;
    }
    static void set(res_rq_t &q, int64_t m, int64_t s) {
        q.m = (uint32_t)m;
        q.shift = (uint8_t)s;
    }
    static void set(ln_param_t &q, int64_t m, int64_t bb) {
        q.m = (int32_t)m;
        q.b = bb;
    }
};
struct store_act {  // {int64 m, int32 shift, int32 zero point} per FFN channel
    int64_t base;
    inline void operator()(int64_t c, const uint8_t *b) {
        act_rq_t q;
        q.m = (uint32_t)le64(b);
        q.shift = (uint8_t)le32(b + 8);
        q.zp = (int8_t)le32(b + 12);
        act_rq_up[c % PADLESS_PE_UP][base + c / PADLESS_PE_UP] = q;
    }
};
struct store_ctx {
    int64_t base;
    inline void operator()(int64_t c, const uint8_t *b) {
        ctx_rq_t q;
        q.m = (uint32_t)le64(b);
        q.shift = (uint8_t)le64(b + 8);
        ctx_rq[c % HD][base + c / HD] = q;
    }
};
struct store_gelu {  // segment k of the layer's GELU table, into every lane's copy
    int64_t base;
    inline void operator()(int64_t k, const uint8_t *b) {
        gelu_seg_t e;
        e.slope = (int32_t)le64(b);
        e.icpt = le64(b + 8);
        for (int p = 0; p < PADLESS_PE_UP; p++) {
#pragma HLS UNROLL
            gelu_tab[p][base + k] = e;
        }
    }
};
struct store_scalars {
    layer_scalars_t &s;
    inline void operator()(int64_t k, const uint8_t *b) {
        const int64_t v = le64(b);
        switch (k) {
        case 0: s.score_m = (uint32_t)v; break;
        case 1: s.score_shift = (uint8_t)v; break;
        case 2: s.ln1_shift = (uint8_t)v; break;
        case 3: s.ln2_shift = (uint8_t)v; break;
        case 4: s.gelu_b = v; break;
        case 5: s.gelu_c = v; break;
        case 6: s.gelu_r = (int32_t)v; break;
        case 7: s.gelu_one = v; break;
        case 8: s.act_kind = (uint8_t)v; break;
        case 9: s.gelu_lo = (int32_t)v; break;
        case 10: s.gelu_k = (int32_t)v; break;
        default: break;
        }
    }
};

template <class C, class W, class I, class RQ>
static void load_mvu(const wbeat_t *mem, int64_t off_w, int64_t off_rq, int slot, W &w, I &ix, RQ &rq) {
    const int E = C::SPARSE && !C::PAIRED ? 2 * C::SIMD : C::SIMD;
    store_words<C, W, I> sw{w, ix, (int64_t)slot * C::WORDS};
    load_elems<E, AXI>(mem, off_w, (int64_t)C::WORDS * C::PE, sw);
    if (C::PAIRED) {  // the pairs' index words, at the next 64-byte boundary of the section
        store_iwords<C, I> si{ix, (int64_t)slot * C::WORDS};
        const int64_t vbytes = ((int64_t)C::WORDS * C::PE * C::SIMD + 63) / 64 * 64;
        load_elems<C::IBYTES, AXI>(mem, off_w + vbytes, (int64_t)C::WORDS * C::WBANKS, si);
    }
    store_rq<C, RQ> sr{rq, (int64_t)slot * C::NF};
    load_elems<16, AXI>(mem, off_rq, C::OUT, sr);
}

static void load_layer(const wbeat_t *mem, int layer, int slot) {
    const int64_t *sec = PADLESS_WSEC[layer];
    load_mvu<C_QKV>(mem, sec[WS_QKV_W], sec[WS_QKV_RQ], slot, w_qkv, i_qkv, rq_qkv);
    load_mvu<C_OUT>(mem, sec[WS_OUT_W], sec[WS_OUT_RQ], slot, w_out, i_out, rq_out);
    load_mvu<C_UP>(mem, sec[WS_UP_W], sec[WS_UP_RQ], slot, w_up, i_up, rq_up);
    load_mvu<C_DOWN>(mem, sec[WS_DOWN_W], sec[WS_DOWN_RQ], slot, w_down, i_down, rq_down);
    store_ctx sc{(int64_t)slot * PADLESS_HEADS};
    load_elems<16, AXI>(mem, sec[WS_CTX], H, sc);
    store_pair<PADLESS_PE_OUT, res_rq_t, decltype(res_rq_out)> sra{res_rq_out, (int64_t)slot * C_OUT::NF};
    load_elems<16, AXI>(mem, sec[WS_RES_ATTN], H, sra);
    store_pair<PADLESS_PE_OUT, ln_param_t, decltype(ln_param_1)> sl1{ln_param_1, (int64_t)slot * C_OUT::NF};
    load_elems<16, AXI>(mem, sec[WS_LN_ATTN], H, sl1);
    store_act sac{(int64_t)slot * C_UP::NF};
    load_elems<16, AXI>(mem, sec[WS_ACT], F, sac);
    store_pair<PADLESS_PE_DOWN, res_rq_t, decltype(res_rq_down)> srf{res_rq_down, (int64_t)slot * C_DOWN::NF};
    load_elems<16, AXI>(mem, sec[WS_RES_FFN], H, srf);
    store_pair<PADLESS_PE_DOWN, ln_param_t, decltype(ln_param_2)> sl2{ln_param_2, (int64_t)slot * C_DOWN::NF};
    load_elems<16, AXI>(mem, sec[WS_LN_FFN], H, sl2);
    if (GELU_TAB_DEPTH > 1) {
        store_gelu sg{(int64_t)slot * GELU_SEGMENTS};
        load_elems<16, AXI>(mem, sec[WS_GELU], GELU_SEGMENTS, sg);
    }
    store_scalars ss{scal[slot]};
    load_elems<8, AXI>(mem, sec[WS_SCALARS], 11, ss);
#ifndef __SYNTHESIS__
    make_dense<C_QKV>(w_qkv, i_qkv, slot, dc_qkv[slot]);
    make_dense<C_OUT>(w_out, i_out, slot, dc_out[slot]);
    make_dense<C_UP>(w_up, i_up, slot, dc_up[slot]);
    make_dense<C_DOWN>(w_down, i_down, slot, dc_down[slot]);
#endif
}

// ---- the processes of a layer's dataflow region ------------------------------------------------------
static void p_desc(int num_seqs, const desc_in_t *desc, PADLESS_FIFO_REF(desc_t) d, int stage) {
#if PADLESS_TOKENS && !PADLESS_TR_POLICY
    desc_reader<PADLESS_MAX_SEQ>(num_seqs, desc, PADLESS_KEEP, PADLESS_TR_LEN[stage], d);
#else
    (void)stage;
    desc_reader<PADLESS_MAX_SEQ>(num_seqs, desc, PADLESS_KEEP, same_len(), d);
#endif
}
static void p_loader(int64_t beats, const abeat_t *act, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
                     PADLESS_FIFO_REF(desc_t) dq, PADLESS_FIFO_REF(desc_t) dr, PADLESS_FIFO_REF(word_t) x,
                     int num_seqs, int64_t cnt_in) {
#if PADLESS_TR_POLICY
    // the learned policy: after a selection point the lengths are the counts the writer left at cnt_in
    loader<H, VEC, AXI, PADLESS_MAX_TOKENS>(beats, act, row0, din, dq, dr, x, num_seqs, cnt_in, PADLESS_KEEP);
#else
    (void)num_seqs;
    (void)cnt_in;
    loader<H, VEC, AXI>(beats, act, row0, din, dq, dr, x);
#endif
}
static void p_res_loader(int64_t beats, const abeat_t *act, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
                         PADLESS_FIFO_REF(word_t) x) {
    res_loader<H, VEC, AXI>(beats, act, row0, din, x);
}
static void p_qkv(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(word_t) x, PADLESS_BLOCKS_REF(qkv_blk_t, PADLESS_SEQ_BLOCKS) qb,
                  PADLESS_BLOCKS_REF(qkv_blk_t, PADLESS_SEQ_BLOCKS) kb, PADLESS_BLOCKS_REF(qkv_blk_t, PADLESS_SEQ_BLOCKS) vb, PADLESS_FIFO_REF(desc_t) dout,
                  int slot, int layer) {
    qkv_stage<C_QKV, H, HD, qkv_blk_t>(n, din, x, qb, kb, vb, dout, w_qkv, i_qkv, rq_qkv, slot, layer, DENSE_W(dc_qkv, slot),
                                   DENSE_S(dc_qkv, slot));
}
static void p_select(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(qkv_blk_t, PADLESS_SEQ_BLOCKS) qb,
                     PADLESS_BLOCKS_REF(qkv_blk_t, PADLESS_SEQ_BLOCKS) kb, PADLESS_BLOCKS_REF(qkv_blk_t, PADLESS_SEQ_BLOCKS) vb, PADLESS_BLOCKS_REF(qh_blk_t) qh,
                     PADLESS_BLOCKS_REF(kh_blk_t) kh, PADLESS_BLOCKS_REF(ix_blk_t) ixq, PADLESS_BLOCKS_REF(kh_blk_t) vh,
                     PADLESS_BLOCKS_REF(ix_blk_t) ixv, PADLESS_FIFO_REF(desc_t) dout, int layer) {
    select_stage<A, qkv_blk_t, qh_blk_t, kh_blk_t, ix_blk_t>(n, din, qb, kb, vb, qh, kh, ixq, vh, ixv, dout, layer);
}
static void p_attn_qk(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(qh_blk_t) qh,
                      PADLESS_BLOCKS_REF(kh_blk_t) kh, PADLESS_BLOCKS_REF(ix_blk_t) ixq, PADLESS_FIFO_REF(score_t) s,
                      PADLESS_FIFO_REF(int32_t) m, PADLESS_FIFO_REF(desc_t) dout, uint32_t score_m,
                      uint8_t score_shift, int layer) {
    attn_qk<A, qh_blk_t, kh_blk_t, ix_blk_t>(n, din, qh, kh, ixq, s, m, dout, score_m, score_shift, layer);
}
static void p_attn_exp(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(score_t) s, PADLESS_FIFO_REF(int32_t) m,
                       PADLESS_FIFO_REF(ew_t) e, PADLESS_FIFO_REF(uint32_t) fac, PADLESS_FIFO_REF(desc_t) dout, int layer) {
    attn_exp<A>(n, din, s, m, e, fac, dout, layer);
}
static void p_attn_pv(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(ew_t) e, PADLESS_FIFO_REF(uint32_t) fac,
                      PADLESS_BLOCKS_REF(kh_blk_t) vh, PADLESS_BLOCKS_REF(ix_blk_t) ixv, PADLESS_BLOCKS_REF(ctx_blk_t, PADLESS_SEQ_BLOCKS) cb,
                      PADLESS_FIFO_REF(desc_t) dout, int slot, int layer, recv_ref_t recv, bool recv_on) {
    attn_pv<A, kh_blk_t, ix_blk_t, ctx_blk_t>(n, din, e, fac, vh, ixv, cb, dout, ctx_rq, slot, layer, recv, recv_on);
}
// attention: a nested dataflow region of three processes
static void p_attention(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(qh_blk_t) qh,
                        PADLESS_BLOCKS_REF(kh_blk_t) kh, PADLESS_BLOCKS_REF(ix_blk_t) ixq, PADLESS_BLOCKS_REF(kh_blk_t) vh,
                        PADLESS_BLOCKS_REF(ix_blk_t) ixv, PADLESS_BLOCKS_REF(ctx_blk_t, PADLESS_SEQ_BLOCKS) cb, PADLESS_FIFO_REF(desc_t) dout,
                        uint32_t score_m, uint8_t score_shift, int slot, int layer, recv_ref_t recv, bool recv_on) {
    PADLESS_REGION_BEGIN(attention);
    PADLESS_FIFO(desc_t, d_exp, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_pv, DEPTH_DESC);
    PADLESS_FIFO(score_t, scores, DEPTH_SCORE);
    PADLESS_FIFO(int32_t, row_max, 4);
    PADLESS_FIFO(ew_t, exps, DEPTH_E);
    PADLESS_FIFO(uint32_t, factors, 4);
    PADLESS_PROCESS(attention, p_attn_qk, n, din, qh, kh, ixq, scores, row_max, d_exp, score_m, score_shift, layer);
    PADLESS_PROCESS(attention, p_attn_exp, n, d_exp, scores, row_max, exps, factors, d_pv, layer);
    PADLESS_PROCESS(attention, p_attn_pv, n, d_pv, exps, factors, vh, ixv, cb, dout, slot, layer, recv, recv_on);
    PADLESS_REGION_END(attention);
}
static void p_ctx(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(ctx_blk_t, PADLESS_SEQ_BLOCKS) cb, PADLESS_FIFO_REF(word_t) x,
                  PADLESS_FIFO_REF(desc_t) dout, int layer) {
    ctx_stream<H, HD, VEC, ctx_blk_t>(n, din, cb, x, dout, layer);
}
static void p_out(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(word_t) x, PADLESS_FIFO_REF(word_t) r,
                  PADLESS_FIFO_REF(y1_t) y, PADLESS_FIFO_REF(rowstat_t) s, PADLESS_FIFO_REF(desc_t) dout, int slot,
                  int layer) {
    res_stage<C_OUT, H>(n, din, x, r, y, s, dout, w_out, i_out, rq_out, res_rq_out, slot, layer, DENSE_W(dc_out, slot),
                        DENSE_S(dc_out, slot));
}
static void p_ln1(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(y1_t) y, PADLESS_FIFO_REF(rowstat_t) s,
                  PADLESS_FIFO_REF(word_t) x, PADLESS_FIFO_REF(desc_t) dout, uint8_t shift, int slot, int layer) {
    ln_stage<H, PADLESS_PE_OUT, VEC>(n, din, y, s, x, dout, ln_param_1, shift, slot, layer);
}
static void p_up(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(word_t) x, PADLESS_FIFO_REF(aword_t) a,
                 PADLESS_FIFO_REF(word_t) hf, PADLESS_FIFO_REF(desc_t) dout, int slot, int layer) {
    up_stage<C_UP, ffn_act_t, PADLESS_ACT_BITS>(n, din, x, a, hf, dout, w_up, i_up, rq_up, act_rq_up, gelu_tab, scal[slot], slot,
                                                layer, DENSE_W(dc_up, slot), DENSE_S(dc_up, slot));
}
static void p_down(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(aword_t) a, PADLESS_FIFO_REF(word_t) hf,
                   PADLESS_FIFO_REF(y2_t) y, PADLESS_FIFO_REF(rowstat_t) s, PADLESS_FIFO_REF(desc_t) dout, int slot,
                   int layer) {
    res_stage<C_DOWN, H>(n, din, a, hf, y, s, dout, w_down, i_down, rq_down, res_rq_down, slot, layer,
                         DENSE_W(dc_down, slot), DENSE_S(dc_down, slot));
}
static void p_ln2(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(y2_t) y, PADLESS_FIFO_REF(rowstat_t) s,
                  PADLESS_FIFO_REF(word_t) x, PADLESS_FIFO_REF(desc_t) dout, uint8_t shift, int slot, int layer) {
    ln_stage<H, PADLESS_PE_DOWN, VEC>(n, din, y, s, x, dout, ln_param_2, shift, slot, layer);
}
static void p_writer(int64_t beats, abeat_t *act, int64_t row0, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(word_t) x,
                     int layer) {
    writer<H, VEC, AXI>(beats, act, row0, din, x, layer);
}
#if PADLESS_TOKENS && !PADLESS_TR_POLICY
static void p_tsel(int n, PADLESS_FIFO_REF(uint32_t) recv, PADLESS_FIFO_REF(uint8_t) mask, bool acc, bool first,
                   bool select, int layer) {
    if (!acc) return;  // no later selection point: nothing to accumulate
    token_select<PADLESS_MAX_SEQ, PADLESS_TR_IMP_BITS>(n, recv, mask, tr_imp, PADLESS_TR_STEP, first, select,
                                                      layer);
}
#endif
#if PADLESS_TOKENS
static void p_tr_writer(int64_t beats, abeat_t *act, int64_t row0, int64_t row_o, PADLESS_FIFO_REF(desc_t) din,
                        PADLESS_FIFO_REF(word_t) x, PADLESS_FIFO_REF(uint8_t) mask, int sel, int mode, bool first,
                        int layer, int64_t cnt_out) {
    tr_writer<H, VEC, AXI>(beats, act, row0, row_o, din, x, mask, tr_pos, PADLESS_TR_CARRY_M[sel], PADLESS_TR_CARRY_SHIFT[sel],
                          mode, first, layer, cnt_out);
}
#endif
#if PADLESS_TR_POLICY
static void p_policy(int n, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(word_t) x, PADLESS_FIFO_REF(desc_t) dout,
                     PADLESS_FIFO_REF(word_t) y, PADLESS_FIFO_REF(uint8_t) mask, int pt, bool on, int layer) {
    const int64_t *c = PADLESS_TR_POL_SC[pt];
    pol_scalars_t sc;
    sc.gelu_lo = (int32_t)c[0];
    sc.gelu_k = (int32_t)c[1];
    sc.m_act = (uint32_t)c[2];
    sc.shift_act = (uint8_t)c[3];
    sc.b2 = (int32_t)c[4];
    sc.threshold = (int32_t)c[5];
    tr_policy<H, VEC, PADLESS_TR_POL_PE>(n, din, x, dout, y, mask, PADLESS_TR_POL_W1[pt], PADLESS_TR_POL_B1[pt],
                                         PADLESS_TR_POL_M1[pt], PADLESS_TR_POL_S1[pt], PADLESS_TR_POL_GS[pt],
                                         PADLESS_TR_POL_GI[pt], PADLESS_TR_POL_W2[pt], sc, on, layer);
}
#endif

// One encoder layer over every sequence of the call. The layer's scalars come in by value (read from the
// on-chip table by the layer loop, outside the region), so no process shares a global with another; the
// GELU table (gelu_tab, a copy per lane) is read by p_up alone, each weight memory by its MVU alone.
// Token reduction (PADLESS_TOKENS): stage = selection points passed (PADLESS_TR_STAGE[layer]); acc: this
// layer's received attention is accumulated (a later selection point exists); wmode: the writer's mode
// (tokens.h: 0 plain, 1 selection after this layer, 2 the last layer); row_o: the output region's first row.
static void layer_region(const abeat_t *act_rd, const abeat_t *act_res, abeat_t *act_wr, const desc_in_t *desc,
                         int num_seqs, int64_t beats, int64_t row_in, int64_t row_out, uint32_t score_m,
                         uint8_t score_shift, uint8_t ln1_shift, uint8_t ln2_shift, int slot, int layer, int stage,
                         bool acc, int wmode, int64_t row_o, int64_t cnt_in, int64_t cnt_out) {
    PADLESS_REGION_BEGIN(region);
#if PADLESS_TOKENS
    PADLESS_FIFO(uint32_t, tr_recv, DEPTH_RECV);
    PADLESS_FIFO(uint8_t, tmask, DEPTH_MASK);
#else
#define tr_recv no_recv
#endif
    PADLESS_FIFO(desc_t, d_src, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_qkv, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_res, DEPTH_DESC_RES);
    PADLESS_FIFO(desc_t, d_sel, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_att, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_ctx, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_out, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_ln1, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_up, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_down, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_ln2, DEPTH_DESC);
    PADLESS_FIFO(desc_t, d_wr, DEPTH_DESC);
    PADLESS_FIFO(word_t, x_rows, DEPTH_ROW);
    PADLESS_FIFO(word_t, res_rows, DEPTH_ROW);
    PADLESS_FIFO(word_t, ctx_rows, DEPTH_ROW);
    PADLESS_FIFO(y1_t, y_attn, DEPTH_Y1);
    PADLESS_FIFO(rowstat_t, st_attn, DEPTH_ROWSTAT);
    PADLESS_FIFO(word_t, h_rows, DEPTH_ROW);
    PADLESS_FIFO(aword_t, a_rows, DEPTH_FFN_ROW);
    PADLESS_FIFO(word_t, h_fwd, DEPTH_FWD);
    PADLESS_FIFO(y2_t, y_ffn, DEPTH_Y2);
    PADLESS_FIFO(rowstat_t, st_ffn, DEPTH_ROWSTAT);
    PADLESS_FIFO(word_t, out_rows, DEPTH_ROW);
#if PADLESS_TR_POLICY
    PADLESS_FIFO(desc_t, d_pol, DEPTH_DESC);
    PADLESS_FIFO(word_t, pol_rows, DEPTH_ROW);
#endif
    PADLESS_BLOCKS(qkv_blk_t, q_blk, PADLESS_SEQ_BLOCKS);
    PADLESS_BLOCKS(qkv_blk_t, k_blk, PADLESS_SEQ_BLOCKS);
    PADLESS_BLOCKS(qkv_blk_t, v_blk, PADLESS_SEQ_BLOCKS);
    PADLESS_BLOCKS_BANKED(q_blk);
    PADLESS_BLOCKS_BANKED(k_blk);
    PADLESS_BLOCKS_BANKED(v_blk);
    PADLESS_BLOCKS(qh_blk_t, qh_blk, 2);
    PADLESS_BLOCKS(kh_blk_t, kh_blk, 2);
    PADLESS_BLOCKS(ix_blk_t, ixq_blk, 2);
    PADLESS_BLOCKS(kh_blk_t, vh_blk, 2);
    PADLESS_BLOCKS(ix_blk_t, ixv_blk, 2);
    PADLESS_BLOCKS_BANKED(kh_blk);
    PADLESS_BLOCKS_BANKED(vh_blk);
    PADLESS_BLOCKS_BANKED(qh_blk);
    PADLESS_BLOCKS_BANKED(ixq_blk);
    PADLESS_BLOCKS_BANKED(ixv_blk);
    PADLESS_BLOCKS(ctx_blk_t, ctx_blk, PADLESS_SEQ_BLOCKS);
    PADLESS_BLOCKS_BANKED(ctx_blk);
    PADLESS_BLOCKS_IMPL(q_blk, PADLESS_BLOCK_IMPL);
    PADLESS_BLOCKS_IMPL(k_blk, PADLESS_BLOCK_IMPL);
    PADLESS_BLOCKS_IMPL(v_blk, PADLESS_BLOCK_IMPL);
    PADLESS_BLOCKS_IMPL(ctx_blk, PADLESS_BLOCK_IMPL);
    PADLESS_HEAD_BLOCKS_IMPL(qh_blk, PADLESS_HEAD_IMPL);
    PADLESS_HEAD_BLOCKS_IMPL(kh_blk, PADLESS_HEAD_IMPL);
    PADLESS_HEAD_BLOCKS_IMPL(vh_blk, PADLESS_HEAD_IMPL);
    PADLESS_HEAD_BLOCKS_IMPL(ixq_blk, PADLESS_HEAD_IMPL);
    PADLESS_HEAD_BLOCKS_IMPL(ixv_blk, PADLESS_HEAD_IMPL);
    PADLESS_PROCESS(region, p_desc, num_seqs, desc, d_src, stage);
    PADLESS_PROCESS(region, p_loader, beats, act_rd, row_in, d_src, d_qkv, d_res, x_rows, num_seqs, cnt_in);
    PADLESS_PROCESS(region, p_res_loader, beats, act_res, row_in, d_res, res_rows);
    PADLESS_PROCESS(region, p_qkv, num_seqs, d_qkv, x_rows, q_blk, k_blk, v_blk, d_sel, slot, layer);
    PADLESS_PROCESS(region, p_select, num_seqs, d_sel, q_blk, k_blk, v_blk, qh_blk, kh_blk, ixq_blk, vh_blk, ixv_blk,
                    d_att, layer);
    PADLESS_PROCESS(region, p_attention, num_seqs, d_att, qh_blk, kh_blk, ixq_blk, vh_blk, ixv_blk, ctx_blk, d_ctx,
                    score_m, score_shift, slot, layer, tr_recv, acc);
    PADLESS_PROCESS(region, p_ctx, num_seqs, d_ctx, ctx_blk, ctx_rows, d_out, layer);
    PADLESS_PROCESS(region, p_out, num_seqs, d_out, ctx_rows, res_rows, y_attn, st_attn, d_ln1, slot, layer);
    PADLESS_PROCESS(region, p_ln1, num_seqs, d_ln1, y_attn, st_attn, h_rows, d_up, ln1_shift, slot, layer);
    PADLESS_PROCESS(region, p_up, num_seqs, d_up, h_rows, a_rows, h_fwd, d_down, slot, layer);
    PADLESS_PROCESS(region, p_down, num_seqs, d_down, a_rows, h_fwd, y_ffn, st_ffn, d_ln2, slot, layer);
    PADLESS_PROCESS(region, p_ln2, num_seqs, d_ln2, y_ffn, st_ffn, out_rows, d_wr, ln2_shift, slot, layer);
#if PADLESS_TR_POLICY
    // the learned policy decides each row's keep bit from its output (tr_policy); no importance
    PADLESS_PROCESS(region, p_policy, num_seqs, d_wr, out_rows, d_pol, pol_rows, tmask, stage, wmode == 1, layer);
    PADLESS_PROCESS(region, p_tr_writer, beats, act_wr, row_out, row_o, d_pol, pol_rows, tmask, stage, wmode,
                    stage == 0, layer, cnt_out);
#elif PADLESS_TOKENS
    PADLESS_PROCESS(region, p_tsel, num_seqs, tr_recv, tmask, acc, layer == 0, wmode == 1, layer);
    PADLESS_PROCESS(region, p_tr_writer, beats, act_wr, row_out, row_o, d_wr, out_rows, tmask, stage, wmode,
                    stage == 0, layer, (int64_t)-1);
#else
    PADLESS_PROCESS(region, p_writer, beats, act_wr, row_out, d_wr, out_rows, layer);
#endif
    PADLESS_REGION_END(region);
#undef tr_recv
}

// Checks every descriptor before anything runs; returns the status and the beats of one layer pass.
static int check_call(const desc_in_t *desc_ptr, int num_seqs, int num_tokens, int64_t beats[PADLESS_TR_STAGES]) {
    if (num_tokens < 1 || num_tokens > PADLESS_MAX_TOKENS) return PADLESS_ERR_TOKENS;
    if (num_seqs < 1 || num_seqs > num_tokens) return PADLESS_ERR_SEQS;
    int status = PADLESS_OK;
    PADLESS_REGS(int64_t, rows, PADLESS_TR_STAGES);  // rows of a layer pass, per token-reduction stage
    for (int s = 0; s < PADLESS_TR_STAGES; s++) rows[s] = 0;
    PADLESS_MAXI(const desc_in_t, desc, desc_ptr, GMEM3);
    PADLESS_MAXI_BURST(desc, 0, num_seqs);
    PADLESS_LOOP(check_desc, D_AXI);
    for (int j = 0; j < num_seqs; j++) {
        PADLESS_PIPELINE(check_desc, j);
        desc_in_t d = desc[j];
        if (d.len < 1 || d.len > PADLESS_MAX_SEQ) status = status ? status : PADLESS_ERR_SEQLEN;
        if (d.start < 0 || (int64_t)d.start + d.len > num_tokens) status = status ? status : PADLESS_ERR_OFFSETS;
#if PADLESS_TOKENS && !PADLESS_TR_POLICY
        const int len = d.len >= 1 && d.len <= PADLESS_MAX_SEQ ? d.len : 0;
        for (int s = 0; s < PADLESS_TR_STAGES; s++) {
#pragma HLS UNROLL
            rows[s] += PADLESS_TR_LEN[s][len];
        }
#else
        rows[0] += d.len;
#endif
    }
    PADLESS_LOOP_END(check_desc, num_seqs);
    for (int s = 0; s < PADLESS_TR_STAGES; s++) beats[s] = rows[s] * (H / AXI);
    return status;
}

static int run_layers(const abeat_t *act_rd, const abeat_t *act_res, abeat_t *act_wr, const desc_in_t *desc,
                      const wbeat_t *weights, int num_seqs, int num_tokens) {
    PADLESS_REGS(int64_t, beats, PADLESS_TR_STAGES);
    int status = check_call(desc, num_seqs, num_tokens, beats);
    if (status) return status;
    if (PADLESS_RESIDENT && !weights_loaded) return PADLESS_ERR_NO_WEIGHTS;
    // the learned policy: the count beats (tr_writer) in the fourth region of act, one per sequence
    const int64_t cnt0 = (int64_t)3 * num_tokens * (H / AXI);
    int64_t pol_beats = beats[0];  // beats of a layer pass after the selection points so far
layers:
    for (int l = 0; l < PADLESS_LAYERS; l++) {
        const int slot = PADLESS_RESIDENT ? l : 0;
        if (!PADLESS_RESIDENT) load_layer(weights, l, 0);
#ifndef __SYNTHESIS__
        ::padless::sim::state.layer = l;
#endif
#if PADLESS_TOKENS
        const int stage = PADLESS_TR_STAGE[l];
        const bool acc = !PADLESS_TR_POLICY && l < PADLESS_TR_LAST;
        const int wmode = l + 1 < PADLESS_LAYERS && PADLESS_TR_STAGE[l + 1] != stage ? 1 : (l == PADLESS_LAYERS - 1 ? 2 : 0);
        // a selection layer's output stays in its half (compacted); the output region is rows [2T, 3T)
#else
        const int stage = 0;
        const bool acc = false;
        const int wmode = 0;
#endif
        const int64_t layer_beats = PADLESS_TR_POLICY ? pol_beats : beats[stage];
        layer_region(act_rd, act_res, act_wr, desc, num_seqs, layer_beats, (int64_t)(l % 2) * num_tokens,
                     (int64_t)((l + 1) % 2) * num_tokens, scal[slot].score_m, scal[slot].score_shift,
                     scal[slot].ln1_shift, scal[slot].ln2_shift, slot, l, stage, acc, wmode,
                     (int64_t)2 * num_tokens, PADLESS_TR_POLICY && stage > 0 ? cnt0 : (int64_t)-1,
                     PADLESS_TR_POLICY && wmode == 1 ? cnt0 : (int64_t)-1);
#if PADLESS_TR_POLICY
        if (wmode == 1) {  // the rows the following layers run: the last count beat's running total
            PADLESS_MAXI(const abeat_t, cnt, act_rd, GMEM0);
            const abeat_t c = cnt[cnt0 + num_seqs - 1];
            int64_t total = 0;
            for (int v = 0; v < 4; v++) total |= (int64_t)(uint8_t)c.v[4 + v] << (8 * v);
            pol_beats = total * (H / AXI);
        }
#endif
    }
    return PADLESS_OK;
}

extern "C" int padless_encoder(const abeat_t *act_rd, const abeat_t *act_res, abeat_t *act_wr, const desc_in_t *desc,
                               const wbeat_t *weights, int num_seqs, int num_tokens, int mode) {
// m_axi: burst length and outstanding requests per bundle from the plan (config.h PADLESS_MAXI_*_GMEMn,
// padless.schedule.memory: the longest burst inside a 4 KB page, enough requests in flight to cover the
// board memory's latency at the port's bandwidth share); every mover's loop is address base + i.
#pragma HLS INTERFACE m_axi port = act_rd offset = slave bundle = gmem0 depth = PADLESS_ACT_REGIONS * PADLESS_MAXI_DEPTH_ACT max_read_burst_length = PADLESS_MAXI_BURST_GMEM0 num_read_outstanding = PADLESS_MAXI_OUT_GMEM0 max_write_burst_length = 2 num_write_outstanding = 1
#pragma HLS INTERFACE m_axi port = act_res offset = slave bundle = gmem1 depth = PADLESS_ACT_REGIONS * PADLESS_MAXI_DEPTH_ACT max_read_burst_length = PADLESS_MAXI_BURST_GMEM1 num_read_outstanding = PADLESS_MAXI_OUT_GMEM1 max_write_burst_length = 2 num_write_outstanding = 1
#pragma HLS INTERFACE m_axi port = act_wr offset = slave bundle = gmem2 depth = PADLESS_ACT_REGIONS * PADLESS_MAXI_DEPTH_ACT max_write_burst_length = PADLESS_MAXI_BURST_GMEM2 num_write_outstanding = PADLESS_MAXI_OUT_GMEM2 max_read_burst_length = 2 num_read_outstanding = 1
#pragma HLS INTERFACE m_axi port = desc offset = slave bundle = gmem3 depth = PADLESS_MAX_TOKENS max_read_burst_length = PADLESS_MAXI_BURST_GMEM3 num_read_outstanding = PADLESS_MAXI_OUT_GMEM3 max_write_burst_length = 2 num_write_outstanding = 1
#pragma HLS INTERFACE m_axi port = weights offset = slave bundle = gmem4 depth = PADLESS_WEIGHT_BYTES / AXI max_read_burst_length = PADLESS_MAXI_BURST_GMEM4 num_read_outstanding = PADLESS_MAXI_OUT_GMEM4 max_write_burst_length = 2 num_write_outstanding = 1
#pragma HLS INTERFACE s_axilite port = act_rd
#pragma HLS INTERFACE s_axilite port = act_res
#pragma HLS INTERFACE s_axilite port = act_wr
#pragma HLS INTERFACE s_axilite port = desc
#pragma HLS INTERFACE s_axilite port = weights
#pragma HLS INTERFACE s_axilite port = num_seqs
#pragma HLS INTERFACE s_axilite port = num_tokens
#pragma HLS INTERFACE s_axilite port = mode
#pragma HLS INTERFACE s_axilite port = return
#pragma HLS INTERFACE ap_ctrl_hs port = return
    PADLESS_STATIC_RAM2D_PRAGMAS(w_qkv, PADLESS_WEIGHT_IMPL_QKV)
    PADLESS_STATIC_RAM2D_PRAGMAS(i_qkv, PADLESS_WEIGHT_IMPL_QKV)
    PADLESS_STATIC_RAM2D_PRAGMAS(w_out, PADLESS_WEIGHT_IMPL_OUT)
    PADLESS_STATIC_RAM2D_PRAGMAS(i_out, PADLESS_WEIGHT_IMPL_OUT)
    PADLESS_STATIC_RAM2D_PRAGMAS(w_up, PADLESS_WEIGHT_IMPL_UP)
    PADLESS_STATIC_RAM2D_PRAGMAS(i_up, PADLESS_WEIGHT_IMPL_UP)
    PADLESS_STATIC_RAM2D_PRAGMAS(w_down, PADLESS_WEIGHT_IMPL_DOWN)
    PADLESS_STATIC_RAM2D_PRAGMAS(i_down, PADLESS_WEIGHT_IMPL_DOWN)
    PADLESS_STATIC_TABLE_PRAGMAS(rq_qkv, PADLESS_TIMPL_RQ_QKV)
    PADLESS_STATIC_TABLE_PRAGMAS(rq_out, PADLESS_TIMPL_RQ_OUT)
    PADLESS_STATIC_TABLE_PRAGMAS(rq_up, PADLESS_TIMPL_RQ_UP)
    PADLESS_STATIC_TABLE_PRAGMAS(rq_down, PADLESS_TIMPL_RQ_DOWN)
    PADLESS_STATIC_TABLE_PRAGMAS(res_rq_out, PADLESS_TIMPL_RES_RQ_OUT)
    PADLESS_STATIC_TABLE_PRAGMAS(res_rq_down, PADLESS_TIMPL_RES_RQ_DOWN)
    PADLESS_STATIC_TABLE_PRAGMAS(ln_param_1, PADLESS_TIMPL_LN_PARAM_1)
    PADLESS_STATIC_TABLE_PRAGMAS(ln_param_2, PADLESS_TIMPL_LN_PARAM_2)
    PADLESS_STATIC_TABLE_PRAGMAS(act_rq_up, PADLESS_TIMPL_ACT_RQ_UP)
    PADLESS_STATIC_TABLE_PRAGMAS(ctx_rq, PADLESS_TIMPL_CTX_RQ)
    PADLESS_STATIC_TABLE_PRAGMAS(gelu_tab, lutram)
#if PADLESS_TOKENS
#if !PADLESS_TR_POLICY
    PADLESS_STATIC_RAM2D_PRAGMAS(tr_imp, PADLESS_TR_IMPL)
#endif
    PADLESS_STATIC_RAM2D_PRAGMAS(tr_pos, PADLESS_TR_IMPL)
    // the carry requantizers (config.h ROMs, [stages][H]): tr_writer reads AXI channels a cycle
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_CARRY_M cyclic factor = PADLESS_AXI_BYTES dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_CARRY_SHIFT cyclic factor = PADLESS_AXI_BYTES dim = 2
#endif
#if PADLESS_TR_POLICY
    // the policy's first layer (ROM [points][32][H]): PADLESS_TR_POL_PE rows x PADLESS_VEC columns a cycle
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_W1 cyclic factor = PADLESS_TR_POL_PE dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_W1 cyclic factor = PADLESS_VEC dim = 3
    // PADLESS_TR_POL_PE outputs' activation a cycle: their per-channel constants and GELU segments in parallel
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_GS complete dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_GI complete dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_M1 cyclic factor = PADLESS_TR_POL_PE dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_S1 cyclic factor = PADLESS_TR_POL_PE dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_B1 cyclic factor = PADLESS_TR_POL_PE dim = 2
#pragma HLS ARRAY_PARTITION variable = PADLESS_TR_POL_W2 cyclic factor = PADLESS_TR_POL_PE dim = 2
#endif
    // the per-layer scalars: LBUF structs of registers (read by the layer loop, outside the region)
#pragma HLS AGGREGATE variable = scal compact = bit
#pragma HLS ARRAY_PARTITION variable = scal complete dim = 1
#ifndef __SYNTHESIS__
    ::padless::sim::begin_run();
#endif
    if (mode == PADLESS_MODE_INIT) {
        if (PADLESS_RESIDENT) {
        init_layers:
            for (int l = 0; l < PADLESS_LAYERS; l++) load_layer(weights, l, l);
            weights_loaded = true;
        }
        return PADLESS_OK;
    }
    if (mode != PADLESS_MODE_RUN) return PADLESS_ERR_MODE;
#ifdef __SYNTHESIS__
    return run_layers(act_rd, act_res, act_wr, desc, weights, num_seqs, num_tokens);
#else
    try {
        return run_layers(act_rd, act_res, act_wr, desc, weights, num_seqs, num_tokens);
    } catch (const ::padless::sim::aborted &) {
        return ::padless::sim::state.deadlock.empty() ? PADLESS_ERR_CSIM : PADLESS_ERR_DEADLOCK;
    } catch (const std::exception &e) {
        std::lock_guard<std::mutex> g(::padless::sim::state.mu);
        ::padless::sim::state.deadlock = std::string("csim error: ") + e.what();
        return PADLESS_ERR_CSIM;
    }
#endif
}

#ifndef __SYNTHESIS__
#include "padless/csim_api.h"
#endif
