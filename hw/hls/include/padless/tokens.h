// padless HLS library: token reduction in the engine (cascade token pruning by accumulated attention),
// bit for bit padless.golden.run_encoder with sparsity tokens {layers, keep} (sw/padless/sparse/tokens.py;
// SpAtten, Wang et al., HPCA 2021, arXiv 2012.09852, section 3.1; TR-BERT's carried rows, Ye et al.,
// NAACL 2021). docs/hls.md "Token reduction" has the block diagram.
//
// The layer regions run the surviving rows only: layer l's descriptors have length
// PADLESS_TR_LEN[PADLESS_TR_STAGE[l]][len] (the kept count of padless.sparse.tokens.keep_tokens applied at
// every selection point up to l, a compile-time table: the cascade's count depends on the length alone).
// Survivors stay compacted at the front of their sequence's rows [start, start + len_l) in both halves of
// the activation buffer; a third region, rows [2T, 3T), receives the output in input order.
//
//   attn_pv         (attention.h) adds every kept probability to the received-attention accumulator of its
//                   key (lane- and query-replicated RAMs, no read-after-write hazard at II = 1) and, per
//                   sequence, streams {start, len, seq} and the len sums (layers before the last selection);
//   token_select    accumulates them onto the per-row importance (tr_imp, on chip, MAX_TOKENS x 32 bits);
//                   at the layer before a selection point it finds the (c-1)-th largest importance of the
//                   sequence's rows 1..n-1 by a bitwise binary search (IMP_BITS counting passes, 4 rows a cycle), keeps
//                   [CLS], every row above it and the lowest-position rows equal to it (golden's stable
//                   ranking), streams one keep bit a row to the writer and compacts tr_imp;
//   tr_writer       at a selection layer writes a kept row to the next free row of its sequence (in order)
//                   and a removed row, requantized per channel to the output scale (golden's carry_rows),
//                   to its original position in the output region; tr_pos (on chip) holds each surviving
//                   row's original position; after the last layer every survivor goes to its original
//                   position in the output region.
// The learned TR-BERT policy (PADLESS_TR_POLICY; padless.sparse.tokens.policy_logits): tr_policy between
// LayerNorm and the writer decides each row's keep bit from the row itself (no importance), so the counts
// depend on the data: the writer leaves each sequence's count in the activation buffer's fourth region, the
// loader of the following layers reads them (io.h) and the layer loop the total (docs/hls.md).
#ifndef PADLESS_TOKENS_H
#define PADLESS_TOKENS_H

#include "intops.h"
#include "io.h"
#include "sim.h"

namespace padless {

static const int D_TSEL = 4;     // importance read 2 + add/compare 1 + write 1
static const int TSEL_LANES = 4;  // importances compared a cycle in the counting passes (loc: cyclic 4 banks)

// Rows 1..n-1 of a sequence whose importance is >= v (strict: > v), TSEL_LANES rows a cycle (an adder
// tree of comparisons: depth D_TSEL + 2); groups = ceil(n / TSEL_LANES) (0 for n <= 1).
template <class LOC> int tsel_count(LOC &loc, int n, int groups, uint32_t v, bool strict) {
    int cnt = 0;
    PADLESS_LOOP(tsel_count, D_TSEL + 2);
    for (int g = 0; g < groups; g++) {
        PADLESS_PIPELINE(tsel_count, g);
        for (int u = 0; u < TSEL_LANES; u++) {
#pragma HLS UNROLL
            const int r = g * TSEL_LANES + u;
            if (r >= 1 && r < n) {
                const uint32_t x = loc[r];
                cnt += (strict ? x > v : x >= v) ? 1 : 0;
            }
        }
    }
    PADLESS_LOOP_END(tsel_count, groups);
    return cnt;
}

// The importance of every surviving row, and the selection before the next layer.
//   rin:    per sequence {start, len, seq} then len received-attention sums (uint32, this layer's);
//   mask:   (select) one keep bit per row, in row order, for tr_writer;
//   imp:    tr_imp, [1][MAX_TOKENS] (row start + r: the r-th surviving row of the sequence);
//   first:  this layer starts the accumulation (layer 0); kept[n]: rows kept of n surviving rows at one
//           selection point (PADLESS_TR_STEP: keep_tokens(n, keep)).
template <int MAX_SEQ, int IMP_BITS, class IMP, class LT>
void token_select(int num_seqs, PADLESS_FIFO_REF(uint32_t) rin, PADLESS_FIFO_REF(uint8_t) mask, IMP &imp,
                  const LT &kept, bool first, bool select, int layer) {
    static_assert(IMP_BITS >= 1 && IMP_BITS <= 32, "importance fits 32 bits");
    PADLESS_RAM1D(uint32_t, loc, MAX_SEQ, cyclic, TSEL_LANES, bram);
tsel_seqs:
    for (int j = 0; j < num_seqs; j++) {
        const int64_t start = (int32_t)rin.read();
        const int n = (int32_t)rin.read();
        const int seq = (int32_t)rin.read();
        PADLESS_JOB_BEGIN(seq, layer);
        PADLESS_LOOP(tsel_acc, D_TSEL);
        for (int r = 0; r < n; r++) {
            PADLESS_PIPELINE(tsel_acc, r);
            uint32_t v = rin.read();
            if (!first) v += (uint32_t)imp[0][start + r];
            loc[r] = v;
            if (!select) imp[0][start + r] = v;
        }
        PADLESS_LOOP_END(tsel_acc, n);
        if (select) {
            const int want = (int)kept[n <= MAX_SEQ ? n : 0] - 1;  // rows kept besides [CLS]
            // thr: the largest value with #{r >= 1: loc[r] >= thr} >= want (the want-th largest importance);
            // each pass counts TSEL_LANES rows a cycle (an adder tree of comparisons: depth + 2)
            const int groups = n > 1 ? (n + TSEL_LANES - 1) / TSEL_LANES : 0;
            uint32_t thr = 0;
        tsel_bits:
            for (int b = IMP_BITS - 1; b >= 0; b--) {
                const uint32_t cand = thr | ((uint32_t)1 << b);
                if (tsel_count(loc, n, groups, cand, false) >= want) thr = cand;
            }
            const int above = tsel_count(loc, n, groups, thr, true);
            const int ties = want - above;  // rows equal to thr kept: the first `ties` of them
            int eq = 0, w = 0;
            PADLESS_LOOP(tsel_keep, D_TSEL);
            for (int r = 0; r < n; r++) {
                PADLESS_PIPELINE(tsel_keep, r);
                const uint32_t v = loc[r];
                bool keep = r == 0 || v > thr;
                if (r > 0 && v == thr) {
                    keep = eq < ties;
                    eq++;
                }
                mask.write(keep ? 1 : 0);
                if (keep) {
                    imp[0][start + w] = v;
                    w++;
                }
            }
            PADLESS_LOOP_END(tsel_keep, n);
        }
        PADLESS_JOB_END(seq, layer);
    }
}

// ---- the learned TR-BERT policy (PADLESS_TR_POLICY; Ye et al., NAACL 2021, arXiv 2105.11618, section 3) ----
// Bit for bit padless.sparse.tokens.policy_logits / select_by_logits. A point's constants are config.h ROMs
// (PADLESS_TR_POL_*, one row per selection point, from the project's policy.npz).
static const int POLICY_WIDTH = 32;  // hidden width of the policy MLP (TR-BERT: 32)
static const int D_POL = 4;          // word read, PPE x VEC products + adder tree, accumulate
static const int D_POL_ACT = 8;      // requantize (32 x 31), GELU segment + 17 x 16 multiply, requantize, w2 product
struct pol_scalars_t {
    int32_t gelu_lo;
    int32_t gelu_k;
    uint32_t m_act;   // GELU output (units of the int16 scale) -> int8: dyadic m < 2^31
    uint8_t shift_act;
    int32_t b2;       // int32 logit bias
    int32_t threshold;  // keep iff logit >= threshold
};

// Between LayerNorm and the writer. on (the layer before a selection point): per row, the 32 policy
// accumulators over the row's H / VEC words, PPE outputs x VEC inputs a cycle (the row is kept in buf),
// then u = requantize(acc, m1, shift1) -> int16, g = i_gelu_pwl(u), a = requantize(g, m_act, shift_act) -> int8,
// z = sum a w2 + b2 (PPE outputs a cycle: 32 / PPE cycles), one keep bit (z >= threshold, or the sequence's first row: [CLS]) to the
// writer, then the row's words. Off: the rows pass through (one word a cycle).
//   w1: [32][H] int8, b1: [32] int32, m1: [32] dyadic m < 2^31, s1: [32] shifts, gs / gi: [64] GELU segments
//   (slope, intercept), w2: [32] int8.
template <int H, int VEC, int PPE, class W1, class B1, class M1, class S1, class GS, class GI, class W2>
void tr_policy(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(vec<act_t, VEC>) xin,
               PADLESS_FIFO_REF(desc_t) dout, PADLESS_FIFO_REF(vec<act_t, VEC>) xout, PADLESS_FIFO_REF(uint8_t) mask,
               const W1 &w1, const B1 &b1, const M1 &m1, const S1 &s1, const GS &gs, const GI &gi, const W2 &w2,
               const pol_scalars_t &sc, bool on, int layer) {
    static_assert(POLICY_WIDTH % PPE == 0, "PPE divides the policy width");
    const int WPR = H / VEC, G = POLICY_WIDTH / PPE;
    typedef vec<act_t, VEC> word_t;
    PADLESS_REGS(word_t, buf, H / VEC);
    PADLESS_REGS(int32_t, acc, POLICY_WIDTH);
pol_seqs:
    for (int j = 0; j < num_seqs; j++) {
        const desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        if (!on) {
            const int64_t n = (int64_t)d.len * WPR;
            PADLESS_LOOP(pol_pass, 2);
            for (int64_t i = 0; i < n; i++) {
                PADLESS_PIPELINE(pol_pass, i);
                xout.write(xin.read());
            }
            PADLESS_LOOP_END(pol_pass, n);
        } else {
        pol_rows:
            for (int r = 0; r < d.len; r++) {
                PADLESS_LOOP(pol_mac, D_POL);
                for (int i = 0; i < G * WPR; i++) {
                    PADLESS_PIPELINE(pol_mac, i);
                    const int g = i / WPR, w = i % WPR;
                    word_t x;
                    if (g == 0) {
                        x = xin.read();
                        buf[w] = x;
                    } else {
                        x = buf[w];
                    }
                    for (int p = 0; p < PPE; p++) {
#pragma HLS UNROLL
                        const int o = g * PPE + p;
                        int32_t s = w == 0 ? (int32_t)b1[o] : acc[o];
                        for (int v = 0; v < VEC; v++) {
#pragma HLS UNROLL
                            s += (int32_t)x.v[v] * (int32_t)w1[o][w * VEC + v];
                        }
                        acc[o] = s;
                    }
                }
                PADLESS_LOOP_END(pol_mac, G * WPR);
                int64_t z = sc.b2;
                PADLESS_LOOP(pol_act, D_POL_ACT);
                for (int g = 0; g < G; g++) {
                    PADLESS_PIPELINE(pol_act, g);
                    int64_t zg = 0;
                    for (int p = 0; p < PPE; p++) {
#pragma HLS UNROLL
                        const int o = g * PPE + p;
                        const sbits<16> u = (sbits<16>)requant<16, 32, 31>((sbits<32>)acc[o], (ubits<31>)m1[o], (ubits<6>)s1[o]);
                        const int seg = gelu_segment(u, sc.gelu_lo, sc.gelu_k);
                        const int64_t gv = i_gelu_pwl_seg(u, sc.gelu_lo, sc.gelu_k, (int32_t)gs[seg], (int64_t)gi[seg]);
                        const int64_t a = requant<8, 18, 31>((sbits<18>)gv, (ubits<31>)sc.m_act, (ubits<6>)sc.shift_act);
                        zg += a * (int64_t)w2[o];
                    }
                    z += zg;
                }
                PADLESS_LOOP_END(pol_act, G);
                mask.write(r == 0 || z >= (int64_t)sc.threshold ? 1 : 0);
                PADLESS_LOOP(pol_fwd, 2);
                for (int w = 0; w < WPR; w++) {
                    PADLESS_PIPELINE(pol_fwd, w);
                    xout.write(buf[w]);
                }
                PADLESS_LOOP_END(pol_fwd, WPR);
            }
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

// The layer output rows (writer of io.h) with token reduction. mode 0: as writer; mode 1 (the layer before a
// selection point): kept rows (mask bit 1) to rows start, start + 1, ... of the output half, removed rows
// requantized per channel (cm, cs: PADLESS_TR_CARRY_M/_SHIFT rows, the dyadic carry_requant) to row_o + start + original position; mode 2 (the last layer): every row to
// row_o + start + original position. pos: tr_pos, [1][MAX_TOKENS], the original position of each
// surviving row (first selection: the row index itself).
// cnt0 >= 0 (the learned policy, mode 1: data-dependent counts): after each sequence one beat at
// cnt0 + seq holds {int32 kept rows, int32 kept rows of the call so far} (little endian), for the next layers'
// loader (their lengths) and the layer loop (their beats).
template <int H, int VEC, int AXI, class POS, class CM, class CS>
void tr_writer(int64_t total_beats, vec<act_t, AXI> *act_ptr, int64_t row0, int64_t row_o,
               PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(vec<act_t, VEC>) xin, PADLESS_FIFO_REF(uint8_t) mask,
               POS &pos, const CM &cm, const CS &cs, int mode, bool first, int layer, int64_t cnt0 = -1) {
    static_assert(AXI >= 8, "a count beat holds two int32");
    if (mode == 0) {
        writer<H, VEC, AXI>(total_beats, act_ptr, row0, din, xin, layer);
        return;
    }
    typedef vec<act_t, AXI> beat_t;
    PADLESS_MAXI(beat_t, act, act_ptr, GMEM2);
    const int BPW = VEC / AXI, BPR = H / AXI;
    vec<act_t, VEC> w;
    int32_t total = 0;
tr_wr_seqs:
    for (int64_t done = 0; done < total_beats;) {
        const desc_t d = din.read();
        PADLESS_JOB_BEGIN(d.seq, layer);
        const int64_t n = (int64_t)d.len * BPR;
        int kept = 0, p = 0;
        bool keep = true;
        int64_t dst = 0;
        PADLESS_LOOP(tr_wr_rows, D_AXI);
        for (int64_t i = 0; i < n; i++) {
            PADLESS_PIPELINE(tr_wr_rows, i);
            const int bw = (int)(i % BPW);
            const int rb = (int)(i % BPR);
            const int r = (int)(i / BPR);
            if (bw == 0) w = xin.read();
            if (rb == 0) {
                p = first ? r : (int)pos[0][d.start + r];
                keep = mode == 1 ? mask.read() != 0 : false;
                dst = keep ? (row0 + d.start + kept) * BPR : (row_o + d.start + p) * BPR;
                PADLESS_MAXI_BURST(act, dst, BPR);  // one row: a burst of H / AXI beats
            }
            beat_t b;
            for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
                const act_t x = w.v[bw * AXI + v];
                const int c = rb * AXI + v;
                b.v[v] = mode == 1 && !keep ? (act_t)requant<8, 8, 31>((sbits<8>)x, (ubits<31>)cm[c], (ubits<6>)cs[c]) : x;
            }
            act[dst + rb] = b;
            if (rb == BPR - 1 && keep) {
                pos[0][d.start + kept] = p;
                kept++;
            }
        }
        PADLESS_LOOP_END(tr_wr_rows, n);
        if (mode == 1 && cnt0 >= 0) {
            total += kept;
            beat_t c;
            for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
                c.v[v] = (act_t)(v < 4 ? (kept >> (8 * v)) & 255 : v < 8 ? (total >> (8 * (v - 4))) & 255 : 0);
            }
            PADLESS_MAXI_BURST(act, cnt0 + d.seq, 1);
            act[cnt0 + d.seq] = c;
        }
        PADLESS_MAXI_WAIT(act);
        PADLESS_JOB_END(d.seq, layer);
        done += n;
    }
}

}  // namespace padless

#endif  // PADLESS_TOKENS_H
