// padless HLS library: 4-bit Q/K selection and exact attention on the kept keys, per (sequence, head),
// bit for bit sw/padless/sparse/attention.py + sparse/selection.py (DAC 2022 length-adaptive co-design,
// Peng et al., arXiv 2208.03646, section 3.2; integer softmax of I-BERT section 3.4).
//
// select (one process): per sequence it holds the sequence's Q, K, V (a block from the QKV MVU); per
// head it copies the head's columns into the attention's head blocks (Q_h once, K_h and V_h once per
// attention PE lane) while it finds max|Q_h|, max|K_h|; when the sequence keeps fewer keys than it has
// (k < n), it quantizes K_h to 4 bits (seven comparators a value, no divider), then for every query
// scores LANES keys a cycle (LANES x D 4-bit products: look-up-table multipliers, no DSP) into a
// K_MAX-slot top-k network that inserts LANES candidates a cycle (every slot and candidate compared at
// once: no data-dependent loop; ranking: larger estimate first, equal estimates to the lower key
// index); at the query's last cycle the slots are its kept keys.
//
// attention (a nested dataflow of three processes, one pipelined loop each, flattened over the queries
// of a head so that query i + 1's scores overlap query i's softmax and P.V):
//   attn_qk   APE kept keys a cycle: the int8 Q.K dot products over the whole head dim (D lanes,
//             two keys per DSP: dsp_mul2), requantized to the i-exp input (scale 2^-10); the row max;
//   attn_exp  i-exp of APE scores a cycle against the row max, their sum, and at the row end the
//             softmax normaliser floor(2^44 / sum) (a pipelined divider);
//   attn_pv   APE probabilities a cycle times their V rows (APE x D MACs), D accumulators, and at the
//             row end the per-channel requantization into the sequence's context block.
// k >= n keeps every key in index order: dense attention, no selection work at all.
#ifndef PADLESS_ATTENTION_H
#define PADLESS_ATTENTION_H

#include "intops.h"
#include "mvu.h"
#include "sim.h"

#if !defined(__SYNTHESIS__)
#include <algorithm>
#endif

namespace padless {

static const int D_SEL_COPY = 4;   // block read 2 + max/compare 1 + block write 1
static const int D_SEL_K4 = 4;     // read 2 + 7 comparators 1 + write 1
static const int D_SEL = 10;       // K4 read 2 + 4-bit products and adder tree 5 + top-k network 2 + write 1
static const int D_QK = 16;        // K read 2 + DSP 3 + adder tree 5 + requantize 5 + FIFO 1
static const int D_EXP = 60;       // i-exp 8 + sum 1 + pipelined 45 / 35-bit divider 48 + FIFO 3
static const int D_PV = 16;        // V read 2 + e * factor 3 + DSP 3 + adder tree 3 + requantize 4 + write 1

// Compile-time description of the attention of one model on one engine.
// APE: kept keys per cycle of the exact stages; LANES: keys per cycle of the 4-bit estimate.
template <int H_, int HEADS_, int MAX_SEQ_, int K_MAX_, int APE_, int LANES_, int VEC_, int LBUF_>
struct att_cfg {
    static const int H = H_, HEADS = HEADS_, D = H_ / HEADS_, MAX_SEQ = MAX_SEQ_, K_MAX = K_MAX_;
    static const int APE = APE_, LANES = LANES_, VEC = VEC_, LBUF = LBUF_;
    static_assert(H % HEADS == 0, "the head count must divide the hidden size");
};

// Requantization of one context channel.
struct ctx_rq_t {
    uint32_t m;  // < 2^31
    uint8_t shift;
};

// ---- the top-k network ----------------------------------------------------------------------------
// a ranks before b: larger estimate, or equal estimate and lower key index.
inline bool ranks_before(int32_t sa, int32_t ia, int32_t sb, int32_t ib) {
#pragma HLS INLINE
    return sa > sb || (sa == sb && ia < ib);
}

// Insert up to L candidates (valid[l]) into the sorted slots (cnt valid), keeping the best K.
template <int K, int L>
inline void topk_insert(int32_t score[K], int32_t idx[K], int &cnt, const int32_t cs[L], const int32_t ci[L],
                        const bool cv[L]) {
#pragma HLS INLINE
    PADLESS_REGS(int32_t, nscore, K);
    PADLESS_REGS(int32_t, nidx, K);
    for (int s = 0; s < K; s++) {
#pragma HLS UNROLL
        nscore[s] = score[s];
        nidx[s] = idx[s];
    }
    // a slot moves down by the number of candidates that rank before it
    for (int s = 0; s < K; s++) {
#pragma HLS UNROLL
        int sh = 0;
        for (int l = 0; l < L; l++) {
#pragma HLS UNROLL
            sh += (cv[l] && ranks_before(cs[l], ci[l], score[s], idx[s])) ? 1 : 0;
        }
        const int dst = s + sh;
        if (s < cnt && dst < K) {
            nscore[dst] = score[s];
            nidx[dst] = idx[s];
        }
    }
    // a candidate lands at (slots before it) + (candidates before it)
    int added = 0;
    for (int l = 0; l < L; l++) {
#pragma HLS UNROLL
        int rank = 0;
        for (int s = 0; s < K; s++) {
#pragma HLS UNROLL
            rank += (s < cnt && ranks_before(score[s], idx[s], cs[l], ci[l])) ? 1 : 0;
        }
        for (int m = 0; m < L; m++) {
#pragma HLS UNROLL
            rank += (m != l && cv[m] && ranks_before(cs[m], ci[m], cs[l], ci[l])) ? 1 : 0;
        }
        if (cv[l] && rank < K) {
            nscore[rank] = cs[l];
            nidx[rank] = ci[l];
        }
        added += cv[l] ? 1 : 0;
    }
    for (int s = 0; s < K; s++) {
#pragma HLS UNROLL
        score[s] = nscore[s];
        idx[s] = nidx[s];
    }
    cnt = cnt + added > K ? K : cnt + added;
}

// ---- select ----------------------------------------------------------------------------------------
// QB: the Q, K, V blocks [1][MAX_SEQ * HEADS][D] (row i, head h: word i * HEADS + h); QH: [1][MAX_SEQ][D];
// KH, VH: [APE][MAX_SEQ][D]; IX: [1][MAX_SEQ][K_MAX].
template <class A, class QB, class QH, class KH, class IX>
void select_stage(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(QB, PADLESS_SEQ_BLOCKS) qb, PADLESS_BLOCKS_REF(QB, PADLESS_SEQ_BLOCKS) kb,
                  PADLESS_BLOCKS_REF(QB, PADLESS_SEQ_BLOCKS) vb, PADLESS_BLOCKS_REF(QH) qh, PADLESS_BLOCKS_REF(KH) kh,
                  PADLESS_BLOCKS_REF(IX) ixq, PADLESS_BLOCKS_REF(KH) vh, PADLESS_BLOCKS_REF(IX) ixv,
                  PADLESS_FIFO_REF(desc_t) dout, int layer) {
    typedef vec<int8_t, A::D> k4word_t;
    PADLESS_RAM2D(k4word_t, k4, A::LANES, (A::MAX_SEQ + A::LANES - 1) / A::LANES, lutram);
seqs:
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        const int t = d.len;
        const bool sparse = d.keep < t;
        const int nc = (t + A::LANES - 1) / A::LANES;
        PADLESS_READ_LOCK(QB, Q, qb);
        PADLESS_READ_LOCK(QB, K, kb);
        PADLESS_READ_LOCK(QB, V, vb);
        PADLESS_JOB_BEGIN(d.seq, layer);
    heads:
        for (int h = 0; h < A::HEADS; h++) {
            PADLESS_WRITE_LOCK(QH, QO, qh);
            PADLESS_WRITE_LOCK(KH, KO, kh);
            PADLESS_WRITE_LOCK(IX, IQ, ixq);
            PADLESS_WRITE_LOCK(KH, VO, vh);
            PADLESS_WRITE_LOCK(IX, IV, ixv);
            int16_t mq = 0, mk = 0;
            // pass A: the head's rows into the head blocks; max |Q_h|, |K_h|
            PADLESS_LOOP(sel_copy, D_SEL_COPY);
            for (int i = 0; i < t; i++) {
                PADLESS_PIPELINE(sel_copy, i);
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                // fast form: the row's bytes by memcpy (no per-element port bookkeeping)
                const int8_t *qr = Q->row(0, (int64_t)i * A::HEADS + h), *kr = K->row(0, (int64_t)i * A::HEADS + h);
                const int8_t *vr = V->row(0, (int64_t)i * A::HEADS + h);
                memcpy(QO->row(0, i), qr, A::D);
                for (int p = 0; p < A::APE; p++) {
                    memcpy(KO->row(p, i), kr, A::D);
                    memcpy(VO->row(p, i), vr, A::D);
                }
                for (int c = 0; c < A::D; c++) {
                    int16_t aq = qr[c] < 0 ? -(int16_t)qr[c] : qr[c], ak = kr[c] < 0 ? -(int16_t)kr[c] : kr[c];
                    mq = aq > mq ? aq : mq;
                    mk = ak > mk ? ak : mk;
                }
#else
                for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                    int8_t qv = Q[0][i * A::HEADS + h][c], kv = K[0][i * A::HEADS + h][c], vv = V[0][i * A::HEADS + h][c];
                    QO[0][i][c] = qv;
                    for (int p = 0; p < A::APE; p++) {
#pragma HLS UNROLL
                        KO[p][i][c] = kv;
                        VO[p][i][c] = vv;
                    }
                    int16_t aq = qv < 0 ? -(int16_t)qv : qv, ak = kv < 0 ? -(int16_t)kv : kv;
                    mq = aq > mq ? aq : mq;
                    mk = ak > mk ? ak : mk;
                }
#endif
            }
            PADLESS_LOOP_END(sel_copy, t);
            if (sparse) {
                PADLESS_REGS(int16_t, tq, Q4_MAX);
                PADLESS_REGS(int16_t, tk, Q4_MAX);
                quant4_thresholds(mq, tq);
                quant4_thresholds(mk, tk);
                // pass B: K_h to 4 bits, LANES-interleaved (key i in lane i % LANES)
                PADLESS_LOOP(sel_k4, D_SEL_K4);
                for (int i = 0; i < t; i++) {
                    PADLESS_PIPELINE(sel_k4, i);
                    vec<int8_t, A::D> w;
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        w.v[c] = quant4(K[0][i * A::HEADS + h][c], tk);
                    }
                    k4[i % A::LANES][i / A::LANES] = w;
                }
                PADLESS_LOOP_END(sel_k4, t);
                // pass C: per query, LANES keys a cycle through the estimate and the top-k network. One loop for
                // both forms: the fast form differs only by the switch in the body, where a query's last cycle
                // takes its kept keys from a partial sort of all its estimates instead of inserting LANES
                // candidates a cycle into the top-k network (same ranking: ranks_before); the iterations, and so
                // the timed csim's cycles, are the same.
                PADLESS_LOOP(sel_query, D_SEL);
                const int64_t trip = (int64_t)t * nc;
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                std::vector<int32_t> est(::padless::sim::cfg.compute ? t : 0), order(est.size());
#else
                PADLESS_REGS(int32_t, sc, A::K_MAX);
                PADLESS_REGS(int32_t, si, A::K_MAX);
                PADLESS_REGS(int8_t, q4, A::D);
                int cnt = 0;
#endif
                int i = 0, cb = 0;
                for (int64_t it = 0; it < trip; it++) {
                    PADLESS_PIPELINE(sel_query, it);
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                    if (cb == nc - 1) {
                        kidx_t *iq = IQ->row(0, i), *iv = IV->row(0, i);
                        const int kk = d.keep;
                        if (::padless::sim::cfg.compute) {
                            int8_t q4f[A::D];
                            const int8_t *qr = Q->row(0, (int64_t)i * A::HEADS + h);
                            for (int c = 0; c < A::D; c++) q4f[c] = quant4(qr[c], tq);
                            for (int key = 0; key < t; key++) {
                                const int8_t *kw = k4.data(key % A::LANES, key / A::LANES)->v;
                                int32_t e = 0;
                                for (int c = 0; c < A::D; c++) e += (int32_t)q4f[c] * (int32_t)kw[c];
                                est[key] = e;
                                order[key] = key;
                            }
                            std::partial_sort(order.begin(), order.begin() + kk, order.end(), [&](int32_t x, int32_t y) {
                                return ranks_before(est[x], x, est[y], y);
                            });
                            for (int s = 0; s < kk; s++) iq[s] = iv[s] = (kidx_t)order[s];
                        } else {
                            for (int s = 0; s < kk; s++) iq[s] = iv[s] = (kidx_t)s;  // timing only: any valid keys
                        }
                    }
#else
                    if (cb == 0) {
                        for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                            q4[c] = quant4(Q[0][i * A::HEADS + h][c], tq);
                        }
                        cnt = 0;
                    }
                    PADLESS_REGS(int32_t, cs, A::LANES);
                    PADLESS_REGS(int32_t, ci, A::LANES);
                    PADLESS_REGS(bool, cv, A::LANES);
                    for (int l = 0; l < A::LANES; l++) {
#pragma HLS UNROLL
                        const int key = cb * A::LANES + l;
                        vec<int8_t, A::D> kw = k4[l][cb];
                        int32_t e = 0;
                        for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                            e += (int32_t)q4[c] * (int32_t)kw.v[c];
                        }
                        cs[l] = e;
                        ci[l] = key;
                        cv[l] = key < t;
                    }
                    topk_insert<A::K_MAX, A::LANES>(sc, si, cnt, cs, ci, cv);
                    if (cb == nc - 1) {
                        for (int s = 0; s < A::K_MAX; s++) {
#pragma HLS UNROLL
                            IQ[0][i][s] = (kidx_t)si[s];
                            IV[0][i][s] = (kidx_t)si[s];
                        }
                    }
#endif
                    if (cb == nc - 1) {
                        cb = 0;
                        i++;
                    } else {
                        cb++;
                    }
                }
                PADLESS_LOOP_END(sel_query, trip);
            }
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

// ---- attention --------------------------------------------------------------------------------------
template <int APE> struct score_w {
    int32_t s[APE];
};
template <int APE> struct e_w {
    uint32_t e[APE];  // < 2^22
};

// Q.K of APE kept keys a cycle, requantized to the i-exp input; the row max after each row.
template <class A, class QH, class KH, class IX>
void attn_qk(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_BLOCKS_REF(QH) qh, PADLESS_BLOCKS_REF(KH) kh,
             PADLESS_BLOCKS_REF(IX) ixq, PADLESS_FIFO_REF(score_w<A::APE>) sout, PADLESS_FIFO_REF(int32_t) mout,
             PADLESS_FIFO_REF(desc_t) dout, uint32_t score_m, uint8_t score_shift, int layer) {
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        const int t = d.len;
        const bool sparse = d.keep < t;
        const int k = sparse ? d.keep : t;
        const int kf = (k + A::APE - 1) / A::APE;
        for (int h = 0; h < A::HEADS; h++) {
            PADLESS_READ_LOCK(QH, QI, qh);
            PADLESS_READ_LOCK(KH, KI, kh);
            PADLESS_READ_LOCK(IX, IQ, ixq);
            PADLESS_LOOP(att_qk, D_QK);
            const int64_t trip = (int64_t)t * kf;
            PADLESS_REGS(int8_t, qrow, A::D);
            int32_t mx = 0;
            int i = 0, f = 0;
            for (int64_t it = 0; it < trip; it++) {
                PADLESS_PIPELINE(att_qk, it);
                if (f == 0) {
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        qrow[c] = QI[0][i][c];
                    }
                }
                score_w<A::APE> sw;
                PADLESS_REGS(int32_t, acc, A::APE);
                PADLESS_REGS(int32_t, key, A::APE);
                PADLESS_REGS(bool, valid, A::APE);
                for (int p = 0; p < A::APE; p++) {
#pragma HLS UNROLL
                    const int slot = f * A::APE + p;
                    valid[p] = slot < k;
                    int32_t kk = sparse ? (int32_t)(kidx_t)IQ[0][i][slot < A::K_MAX ? slot : 0] : slot;
                    key[p] = valid[p] && kk < A::MAX_SEQ ? kk : 0;  // masked: never outside the block
                    acc[p] = 0;
                }
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                if (::padless::sim::cfg.compute)
                    for (int p = 0; p < A::APE; p++) acc[p] = dot8<A::D>(qrow, KI->row(p, key[p]));
#else
                for (int p = 0; p + 1 < A::APE; p += 2) {
#pragma HLS UNROLL
                    int32_t s1 = 0, s2 = 0;
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        prod2_t pr = dsp_mul2(KI[p][key[p]][c], KI[p + 1][key[p + 1]][c], qrow[c]);
                        s1 += pr.p1;
                        s2 += pr.p2;
                    }
                    acc[p] = s1;
                    acc[p + 1] = s2;
                }
                if (A::APE % 2) {
                    int32_t s = 0;
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        s += (int32_t)(int8_t)KI[A::APE - 1][key[A::APE - 1]][c] * (int32_t)qrow[c];
                    }
                    acc[A::APE - 1] = s;
                }
#endif
                int32_t fm = f == 0 ? INT32_MIN : mx;
                for (int p = 0; p < A::APE; p++) {
#pragma HLS UNROLL
                    int32_t s = (int32_t)requant<32, 24, 31>((sbits<24>)acc[p], (ubits<31>)score_m, (ubits<6>)score_shift);
                    sw.s[p] = valid[p] ? s : 0;
                    if (valid[p] && s > fm) fm = s;
                }
                mx = fm;
                sout.write(sw);
                if (f == kf - 1) {
                    mout.write(mx);
                    f = 0;
                    i++;
                } else {
                    f++;
                }
            }
            PADLESS_LOOP_END(att_qk, trip);
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

// i-exp of APE scores a cycle against the row max, the row sum and its softmax normaliser.
template <class A>
void attn_exp(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(score_w<A::APE>) sin,
              PADLESS_FIFO_REF(int32_t) min_, PADLESS_FIFO_REF(e_w<A::APE>) eout, PADLESS_FIFO_REF(uint32_t) fout,
              PADLESS_FIFO_REF(desc_t) dout, int layer) {
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        const int t = d.len;
        const int k = d.keep < t ? d.keep : t;
        const int kf = (k + A::APE - 1) / A::APE;
        for (int h = 0; h < A::HEADS; h++) {
            PADLESS_LOOP(att_exp, D_EXP);
            const int64_t trip = (int64_t)t * kf;
            int32_t mx = 0;
            uint64_t sum = 0;
            int f = 0;
            for (int64_t it = 0; it < trip; it++) {
                PADLESS_PIPELINE(att_exp, it);
                if (f == 0) {
                    mx = min_.read();
                    sum = 0;
                }
                score_w<A::APE> sw = sin.read();
                e_w<A::APE> ew;
                uint64_t part = 0;
                for (int p = 0; p < A::APE; p++) {
#pragma HLS UNROLL
                    const bool valid = f * A::APE + p < k;
                    uint32_t e = valid ? (uint32_t)i_exp((sbits<34>)((int64_t)sw.s[p] - (int64_t)mx)) : 0u;
                    ew.e[p] = e;
                    part += e;
                }
                sum += part;
                eout.write(ew);
                if (f == kf - 1) {
                    fout.write((uint32_t)softmax_factor((ubits<35>)sum));
                    f = 0;
                } else {
                    f++;
                }
            }
            PADLESS_LOOP_END(att_exp, trip);
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

// P.V of APE kept keys a cycle into D accumulators; at the row end the context channels of the head.
// Token reduction (tokens.h): with recv_on, every kept probability is also added to its key's received-
// attention sum (RCV_COPIES x APE replicated accumulators: lane p, query i % RCV_COPIES, so an address is
// read-modified-written at most every RCV_COPIES iterations), and per sequence {start, len, seq} and the len
// sums go to rout (a t-cycle loop after the heads that also clears the accumulators).
static const int RCV_COPIES = 4;  // = the DEPENDENCE distance on rcv in attn_pv
// A stand-in for the received-attention stream when the kernel has no token reduction (never written).
struct no_recv_t {
    inline void write(uint32_t) {}
};
#ifndef PADLESS_TR_RCV_IMPL
#define PADLESS_TR_RCV_IMPL bram  // config.h: lutram when a bank (MAX_SEQ x 32 bits) holds at most 8 Kb
#endif
template <class A, class KH, class IX, class CB, class CTX_RQ, class RECV>
void attn_pv(int num_seqs, PADLESS_FIFO_REF(desc_t) din, PADLESS_FIFO_REF(e_w<A::APE>) ein,
             PADLESS_FIFO_REF(uint32_t) fin, PADLESS_BLOCKS_REF(KH) vh, PADLESS_BLOCKS_REF(IX) ixv,
             PADLESS_BLOCKS_REF(CB, PADLESS_SEQ_BLOCKS) ctxb, PADLESS_FIFO_REF(desc_t) dout, CTX_RQ &ctx_rq, int slot, int layer,
             RECV &rout, bool recv_on) {
    PADLESS_RAM2D(uint32_t, rcv, RCV_COPIES * A::APE, A::MAX_SEQ, PADLESS_TR_RCV_IMPL);
    if (recv_on) {
        PADLESS_LOOP(rcv_clear, 2);
        for (int k = 0; k < A::MAX_SEQ; k++) {
            PADLESS_PIPELINE(rcv_clear, k);
            for (int b = 0; b < RCV_COPIES * A::APE; b++) {
#pragma HLS UNROLL
                rcv[b][k] = 0;
            }
        }
        PADLESS_LOOP_END(rcv_clear, A::MAX_SEQ);
    }
    for (int j = 0; j < num_seqs; j++) {
        desc_t d = din.read();
        dout.write(d);
        PADLESS_JOB_BEGIN(d.seq, layer);
        if (recv_on) {
            rout.write((uint32_t)d.start);
            rout.write((uint32_t)d.len);
            rout.write((uint32_t)d.seq);
        }
        const int t = d.len;
        const bool sparse = d.keep < t;
        const int k = sparse ? d.keep : t;
        const int kf = (k + A::APE - 1) / A::APE;
        PADLESS_WRITE_LOCK(CB, CTX, ctxb);
        for (int h = 0; h < A::HEADS; h++) {
            PADLESS_READ_LOCK(KH, VI, vh);
            PADLESS_READ_LOCK(IX, IV, ixv);
            PADLESS_LOOP(att_pv, D_PV);
            const int64_t trip = (int64_t)t * kf;
            PADLESS_REGS(int32_t, acc, A::D);
            uint32_t factor = 0;
            int i = 0, f = 0;
            for (int64_t it = 0; it < trip; it++) {
                PADLESS_PIPELINE(att_pv, it);
                // rcv: copy (i % RCV_COPIES, p) is read-modified-written by query i only, and each query
                // adds to distinct keys, so an address recurs no sooner than RCV_COPIES iterations later
#pragma HLS DEPENDENCE variable = rcv type = inter direction = RAW dependent = true distance = 4
                if (f == 0) {
                    factor = fin.read();
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        acc[c] = 0;
                    }
                }
                e_w<A::APE> ew = ein.read();
                for (int p = 0; p < A::APE; p++) {
#pragma HLS UNROLL
                    const int slot = f * A::APE + p;
                    const bool valid = slot < k;
                    int32_t kk = sparse ? (int32_t)(kidx_t)IV[0][i][slot < A::K_MAX ? slot : 0] : slot;
                    const int32_t key = valid && kk < A::MAX_SEQ ? kk : 0;
                    const int32_t prob = valid ? (int32_t)softmax_prob((ubits<22>)ew.e[p], (ubits<24>)factor) : 0;
                    if (recv_on && valid) {
                        const int b = (i % RCV_COPIES) * A::APE + p;
                        rcv[b][key] = (uint32_t)rcv[b][key] + (uint32_t)prob;
                    }
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                    const int8_t *vr = VI->row(p, key);
                    if (::padless::sim::cfg.compute)
                        for (int c = 0; c < A::D; c++) acc[c] += prob * (int32_t)vr[c];
#else
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        acc[c] += prob * (int32_t)(int8_t)VI[p][key][c];
                    }
#endif
                }
                if (f == kf - 1) {
                    for (int c = 0; c < A::D; c++) {
#pragma HLS UNROLL
                        ctx_rq_t q = ctx_rq[c][(int64_t)slot * A::HEADS + h];
                        CTX[0][i * A::HEADS + h][c] = (act_t)requant<8, 28, 31>((sbits<28>)acc[c], (ubits<31>)q.m, (ubits<6>)q.shift);
                    }
                    f = 0;
                    i++;
                } else {
                    f++;
                }
            }
            PADLESS_LOOP_END(att_pv, trip);
        }
        if (recv_on) {
            PADLESS_LOOP(rcv_out, 3);
            for (int k = 0; k < t; k++) {
                PADLESS_PIPELINE(rcv_out, k);
                uint32_t sum = 0;
                for (int b = 0; b < RCV_COPIES * A::APE; b++) {
#pragma HLS UNROLL
                    sum += (uint32_t)rcv[b][k];
                    rcv[b][k] = 0;
                }
                rout.write(sum);
            }
            PADLESS_LOOP_END(rcv_out, t);
        }
        PADLESS_JOB_END(d.seq, layer);
    }
}

}  // namespace padless

#endif  // PADLESS_ATTENTION_H
