// padless HLS library: the off-chip movers of the engine (m_axi), each one process of the dataflow
// region (or, for weights, a loop before it).
//
//   desc_reader  the call's sequence descriptors in one burst, in the host's schedule order, with the
//                keys kept per query looked up (keep_count table of config.h);
//   loader       the rows of each sequence from the layer's input half of the activation buffer: per
//                sequence one burst loop over its rows (address base + i, so Vitis infers the burst;
//                UG1399 "Preconditions and Limitations of Burst Transfer"), assembled into VEC-element words;
//   res_loader   the same rows again through its own m_axi port for the residual add after attention;
//   writer       the layer output rows into the other half of the activation buffer, a burst per sequence
//                (the loop's exit waits for the write responses);
//   load_elems   a weights.bin section into on-chip memory: one burst loop over the section's beats
//                (elements that tile a beat: whole elements a beat, or whole beats an element, no carry
//                buffer); other element sizes (sparse packed words) through a carry buffer.
// Every loop bound comes from the descriptors, checked before the region runs (no out-of-range access).
//
// m_axi ports. PADLESS_MAXI(T, name, ptr, BUNDLE) gives the code a port: under Vitis the pointer itself,
// under the C-simulation the pointer with the memory model of sim_rt.h (latency, outstanding requests,
// burst length, bandwidth share of the bank: config.h PADLESS_MAXI_{LAT,OUT,BURST,CPB}_<BUNDLE>, which
// padless.schedule.memory computes from the board; the same values set the INTERFACE pragmas).
// PADLESS_MAXI_BURST(name, base, n) before a loop states the burst Vitis infers from it (address
// base + i, i < n); PADLESS_MAXI_WAIT(name) after a write loop waits for its responses.
#ifndef PADLESS_IO_H
#define PADLESS_IO_H

#include "intops.h"
#include "mvu.h"
#include "sim.h"

// Memory model defaults (a config.h without them: ideal memory, Vitis HLS's default burst and outstanding)
#ifndef PADLESS_MAXI_LAT_GMEM0
#define PADLESS_MAXI_LAT_GMEM0 0
#define PADLESS_MAXI_OUT_GMEM0 16
#define PADLESS_MAXI_BURST_GMEM0 16
#define PADLESS_MAXI_CPB_GMEM0 1.0
#endif
#ifndef PADLESS_MAXI_LAT_GMEM1
#define PADLESS_MAXI_LAT_GMEM1 0
#define PADLESS_MAXI_OUT_GMEM1 16
#define PADLESS_MAXI_BURST_GMEM1 16
#define PADLESS_MAXI_CPB_GMEM1 1.0
#endif
#ifndef PADLESS_MAXI_LAT_GMEM2
#define PADLESS_MAXI_LAT_GMEM2 0
#define PADLESS_MAXI_OUT_GMEM2 16
#define PADLESS_MAXI_BURST_GMEM2 16
#define PADLESS_MAXI_CPB_GMEM2 1.0
#endif
#ifndef PADLESS_MAXI_LAT_GMEM3
#define PADLESS_MAXI_LAT_GMEM3 0
#define PADLESS_MAXI_OUT_GMEM3 16
#define PADLESS_MAXI_BURST_GMEM3 16
#define PADLESS_MAXI_CPB_GMEM3 1.0
#endif
#ifndef PADLESS_MAXI_LAT_GMEM4
#define PADLESS_MAXI_LAT_GMEM4 0
#define PADLESS_MAXI_OUT_GMEM4 16
#define PADLESS_MAXI_BURST_GMEM4 16
#define PADLESS_MAXI_CPB_GMEM4 1.0
#endif

#ifdef __SYNTHESIS__
#define PADLESS_MAXI(T, NAME_, PTR_, BUNDLE_) T *NAME_ = PTR_
#define PADLESS_MAXI_BURST(NAME_, BASE_, N_)
#define PADLESS_MAXI_WAIT(NAME_)
#else
#define PADLESS_MAXI_PARAMS_(B_)                                                                          \
    ::padless::sim::maxi_params {                                                                        \
        PADLESS_MAXI_LAT_##B_, PADLESS_MAXI_OUT_##B_, PADLESS_MAXI_BURST_##B_, (double)PADLESS_MAXI_CPB_##B_ \
    }
#define PADLESS_MAXI(T, NAME_, PTR_, BUNDLE_) \
    ::padless::sim::maxi_port<T> NAME_(PTR_, #BUNDLE_, PADLESS_MAXI_PARAMS_(BUNDLE_))
#define PADLESS_MAXI_BURST(NAME_, BASE_, N_) NAME_.burst(BASE_, N_)
#define PADLESS_MAXI_WAIT(NAME_) NAME_.wait()
#endif

namespace padless {

// Pipeline depth of a burst loop after its beat arrived (the beat register, the word assembly and the
// FIFO write); the m_axi latency itself comes from the memory model (sim_rt.h) or Vitis's schedule.
static const int D_AXI = 3;

// One descriptor as the host writes it (8 bytes): rows [start, start + len) of the pack.
struct desc_in_t {
    int32_t start;
    int32_t len;
};

// The length a layer sees of a descriptor's sequence: the descriptor's own (no token reduction), or a
// row of a compile-time table (token reduction: PADLESS_TR_LEN[stage], tokens.h).
struct same_len {
    int operator[](int n) const { return n; }
};

// Descriptors from m_axi, one a cycle, with the layer's length (lens[len]) and the top-k keys per query at
// that length (keep[len], as golden's attention sees it).
template <int MAX_SEQ, class KT, class LT>
void desc_reader(int num_seqs, const desc_in_t *desc_ptr, const KT &keep, const LT &lens,
                 PADLESS_FIFO_REF(desc_t) dout) {
    PADLESS_MAXI(const desc_in_t, desc, desc_ptr, GMEM3);
    PADLESS_MAXI_BURST(desc, 0, num_seqs);
    PADLESS_LOOP(ld_desc, D_AXI);
    for (int j = 0; j < num_seqs; j++) {
        PADLESS_PIPELINE(ld_desc, j);
        desc_in_t di = desc[j];
        desc_t d;
        d.start = di.start;
        d.len = lens[di.len <= MAX_SEQ ? di.len : 0];
        d.keep = keep[d.len <= MAX_SEQ ? d.len : 0];
        d.seq = j;
        dout.write(d);
    }
    PADLESS_LOOP_END(ld_desc, num_seqs);
}

// Rows of the sequences, in descriptor order, from act (rows of H int8, AXI bytes a beat): per sequence
// one burst of len * H / AXI beats from (row0 + start) * H / AXI. total_beats (the call's rows x H / AXI,
// checked by the caller against the descriptors) ends the sequence loop.
// Data-dependent lengths (token reduction by the learned policy, tokens.h tr_writer): with cnt0 >= 0 the
// loader first reads the num_seqs count beats at cnt0 (one burst) and gives each descriptor the length
// there (and the top-k keys of that length, keep[len]) before it passes it on. CNT_MAX: at least num_seqs.
struct no_keep {
    int operator[](int n) const { return n; }
};
template <int H, int VEC, int AXI, int CNT_MAX = 1, class KT = no_keep>
void loader(int64_t total_beats, const vec<act_t, AXI> *act_ptr, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
            PADLESS_FIFO_REF(desc_t) dq, PADLESS_FIFO_REF(desc_t) dr, PADLESS_FIFO_REF(vec<act_t, VEC>) xout,
            int num_seqs = 0, int64_t cnt0 = -1, const KT &keep = KT()) {
    static_assert(VEC % AXI == 0 && H % VEC == 0, "AXI beats must tile a channel word, words a row");
    typedef vec<act_t, AXI> beat_t;
    PADLESS_MAXI(const beat_t, act, act_ptr, GMEM0);
    const int BPW = VEC / AXI, BPR = H / AXI;
    vec<act_t, VEC> w;
    PADLESS_RAM1D(uint16_t, cnt, CNT_MAX, cyclic, 1, bram);
    if (cnt0 >= 0) {
        PADLESS_MAXI_BURST(act, cnt0, num_seqs);
        PADLESS_LOOP(ld_cnt, D_AXI);
        for (int j = 0; j < num_seqs; j++) {
            PADLESS_PIPELINE(ld_cnt, j);
            const beat_t b = act[cnt0 + j];
            cnt[j] = (uint16_t)((uint8_t)b.v[0] | ((uint16_t)(uint8_t)b.v[1] << 8));
        }
        PADLESS_LOOP_END(ld_cnt, num_seqs);
    }
ld_seqs:
    for (int64_t done = 0; done < total_beats;) {
        desc_t d = din.read();
        if (cnt0 >= 0) {
            d.len = cnt[d.seq];
            d.keep = keep[d.len];
        }
        dq.write(d);
        dr.write(d);
        const int64_t base = (row0 + d.start) * BPR, n = (int64_t)d.len * BPR;
        PADLESS_MAXI_BURST(act, base, n);
        PADLESS_LOOP(ld_rows, D_AXI);
        for (int64_t i = 0; i < n; i++) {
            PADLESS_PIPELINE(ld_rows, i);
            const vec<act_t, AXI> b = act[base + i];
            const int bw = (int)(i % BPW);
            for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
                w.v[bw * AXI + v] = b.v[v];
            }
            if (bw == BPW - 1) xout.write(w);
        }
        PADLESS_LOOP_END(ld_rows, n);
        done += n;
    }
}

template <int H, int VEC, int AXI>
void res_loader(int64_t total_beats, const vec<act_t, AXI> *act_ptr, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
                PADLESS_FIFO_REF(vec<act_t, VEC>) xout) {
    typedef vec<act_t, AXI> beat_t;
    PADLESS_MAXI(const beat_t, act, act_ptr, GMEM1);
    const int BPW = VEC / AXI, BPR = H / AXI;
    vec<act_t, VEC> w;
res_seqs:
    for (int64_t done = 0; done < total_beats;) {
        const desc_t d = din.read();
        const int64_t base = (row0 + d.start) * BPR, n = (int64_t)d.len * BPR;
        PADLESS_MAXI_BURST(act, base, n);
        PADLESS_LOOP(res_rows, D_AXI);
        for (int64_t i = 0; i < n; i++) {
            PADLESS_PIPELINE(res_rows, i);
            const vec<act_t, AXI> b = act[base + i];
            const int bw = (int)(i % BPW);
            for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
                w.v[bw * AXI + v] = b.v[v];
            }
            if (bw == BPW - 1) xout.write(w);
        }
        PADLESS_LOOP_END(res_rows, n);
        done += n;
    }
}

template <int H, int VEC, int AXI>
void writer(int64_t total_beats, vec<act_t, AXI> *act_ptr, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
            PADLESS_FIFO_REF(vec<act_t, VEC>) xin, int layer) {
    typedef vec<act_t, AXI> beat_t;
    PADLESS_MAXI(beat_t, act, act_ptr, GMEM2);
    const int BPW = VEC / AXI, BPR = H / AXI;
    vec<act_t, VEC> w;
wr_seqs:
    for (int64_t done = 0; done < total_beats;) {
        const desc_t d = din.read();
        PADLESS_JOB_BEGIN(d.seq, layer);
        const int64_t base = (row0 + d.start) * BPR, n = (int64_t)d.len * BPR;
        PADLESS_MAXI_BURST(act, base, n);
        PADLESS_LOOP(wr_rows, D_AXI);
        for (int64_t i = 0; i < n; i++) {
            PADLESS_PIPELINE(wr_rows, i);
            const int bw = (int)(i % BPW);
            if (bw == 0) w = xin.read();
            vec<act_t, AXI> b;
            for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
                b.v[v] = w.v[bw * AXI + v];
            }
            act[base + i] = b;
        }
        PADLESS_LOOP_END(wr_rows, n);
        PADLESS_MAXI_WAIT(act);
        PADLESS_JOB_END(d.seq, layer);
        done += n;
    }
}

// n elements of E bytes from byte offset `off` of the weights image (64-byte aligned sections) into
// on-chip memory through store(k, bytes). Elements that tile a beat (AXI % E == 0 or E % AXI == 0: dense
// weight words, the 16-byte per-channel records, the 8-byte scalars) are moved by one burst loop over the
// section's beats, address base + i: E <= AXI stores AXI / E whole elements a beat (II = AXI / E, one
// store a cycle); E > AXI gathers E / AXI beats into an element (II = 1) -- no carry buffer. Other sizes
// (sparse packed words of odd SIMD) go through the carry buffer: 2 x max(E, AXI) bytes, register-
// partitioned, one element a cycle (a beat read whenever it holds fewer than E bytes: single-beat reads).
// One loop for both C-simulation forms: the fast form differs only by switches in the body, where an element's
// bytes come straight from the image at the iteration the element is stored instead of being gathered or
// shifted through the carry buffer; the beats are read through the same m_axi port at the same iterations,
// so the timed csim charges the same cycles.
template <int E, int AXI, class STORE>
void load_elems(const vec<uint8_t, AXI> *mem_ptr, int64_t off, int64_t n, STORE &store) {
    typedef vec<uint8_t, AXI> beat_t;
    PADLESS_MAXI(const beat_t, mem, mem_ptr, GMEM4);
    const int64_t beats = (n * E + AXI - 1) / AXI;
    const int64_t base = off / AXI;
    const bool tiles = AXI % E == 0 || E % AXI == 0;
    const int EPB = E < AXI ? AXI / E : 1;  // elements a beat
    const int BPE = E > AXI ? E / AXI : 1;  // beats an element
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
    const uint8_t *src = (const uint8_t *)mem_ptr + off;  // the fast form's elements, straight from the image
#endif
    if (tiles) {
        PADLESS_REGS(uint8_t, el, (E > AXI ? E : AXI));
#ifndef __SYNTHESIS__
        ::padless::sim::loop wload("wload", EPB, D_AXI);
#endif
        PADLESS_MAXI_BURST(mem, base, beats);
    wload_beats:
        for (int64_t i = 0; i < beats; i++) {
#ifdef __SYNTHESIS__
#pragma HLS PIPELINE II = EPB
#else
            wload.at(i);
#endif
            const vec<uint8_t, AXI> beat = mem[base + i];
            if (E <= AXI) {
                for (int u = 0; u < EPB; u++) {
#pragma HLS UNROLL
                    const int64_t k = i * EPB + u;
#ifndef __SYNTHESIS__
                    // II = EPB: each store has a cycle of its own (the port checker sees one store a cycle)
                    if (::padless::sim::cfg.ports && u > 0) ::padless::sim::me().stamp = ::padless::sim::new_stamp();
#endif
                    if (k < n) store(k, beat.v + u * E);
                }
            } else {
                const int part = (int)(i % BPE);
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                // fast form: the element's bytes from the image at its last beat, not gathered beat by beat
                (void)el;
                if (part == BPE - 1) store(i / BPE, src + (i / BPE) * E);
#else
                for (int b = 0; b < AXI; b++) {
#pragma HLS UNROLL
                    el[part * AXI + b] = beat.v[b];
                }
                if (part == BPE - 1) store(i / BPE, el);
#endif
            }
        }
#ifndef __SYNTHESIS__
        wload.end(beats);
#endif
    } else {
        const int CB = 2 * (E > AXI ? E : AXI);
        PADLESS_REGS(uint8_t, buf, CB);
        int have = 0;
        int64_t next_beat = base, k = 0;
        const int64_t trip = E <= AXI ? n : beats;
        PADLESS_LOOP(wload, D_AXI);
        for (int64_t it = 0; it < trip; it++) {
            PADLESS_PIPELINE(wload, it);
            if (E > AXI || have < E) {
                beat_t beat = mem[next_beat++];
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                (void)beat;  // fast form: the beat's timing only; the bytes come from the image at the store
#else
                for (int b = 0; b < CB; b++) {
#pragma HLS UNROLL
                    if (b >= have && b < have + AXI) buf[b] = beat.v[b - have];
                }
#endif
                have += AXI;
            }
            if (have >= E && k < n) {
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
                (void)buf;
                store(k, src + k * E);
                k++;
#else
                store(k++, buf);
                for (int b = 0; b < CB; b++) {
#pragma HLS UNROLL
                    buf[b] = b + E < CB ? buf[b + E] : (uint8_t)0;
                }
#endif
                have -= E;
            }
        }
        PADLESS_LOOP_END(wload, trip);
    }
}

inline int32_t le32(const uint8_t *b) {
#pragma HLS INLINE
    return (int32_t)((uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24));
}
inline int64_t le64(const uint8_t *b) {
#pragma HLS INLINE
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
#pragma HLS UNROLL
        v = (v << 8) | b[i];
    }
    return (int64_t)v;
}

}  // namespace padless

#endif  // PADLESS_IO_H
