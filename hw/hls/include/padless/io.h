// padless HLS library: the off-chip movers of the engine (m_axi), each one process of the dataflow
// region (or, for weights, a loop before it).
//
//   desc_reader  the call's sequence descriptors in one burst, in the host's schedule order, with the
//                keys kept per query looked up (keep_count table of config.h);
//   loader       the rows of each sequence from the layer's input half of the activation buffer, one
//                AXI beat a cycle, assembled into VEC-element words (one flattened loop over the whole
//                layer, so the read latency is paid once per layer, not per sequence);
//   res_loader   the same rows again through its own m_axi port for the residual add after attention;
//   writer       the layer output rows into the other half of the activation buffer;
//   load_elems   a weights.bin section into on-chip memory: one element a cycle (or one beat a cycle
//                for elements wider than a beat), elements of any size.
// Every loop bound comes from the descriptors, checked before the region runs (no out-of-range access).
#ifndef PADLESS_IO_H
#define PADLESS_IO_H

#include "intops.h"
#include "mvu.h"
#include "sim.h"

namespace padless {

// One descriptor as the host writes it (8 bytes): rows [start, start + len) of the pack.
struct desc_in_t {
    int32_t start;
    int32_t len;
};

template <int MAX_SEQ, class KT>
void desc_reader(int num_seqs, const desc_in_t *desc, const KT &keep, PADLESS_FIFO_REF(desc_t) dout) {
    PADLESS_LOOP(ld_desc, D_MAXI);
    for (int j = 0; j < num_seqs; j++) {
        PADLESS_PIPELINE(ld_desc, j);
        desc_in_t di = desc[j];
        desc_t d;
        d.start = di.start;
        d.len = di.len;
        d.keep = keep[di.len <= MAX_SEQ ? di.len : 0];
        d.seq = j;
        dout.write(d);
    }
    PADLESS_LOOP_END(ld_desc, num_seqs);
}

// Rows of the sequences, in descriptor order, from act (rows of H int8, AXI bytes a beat).
template <int H, int VEC, int AXI>
void loader(int64_t total_beats, const vec<act_t, AXI> *act, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
            PADLESS_FIFO_REF(desc_t) dq, PADLESS_FIFO_REF(desc_t) dr, PADLESS_FIFO_REF(vec<act_t, VEC>) xout) {
    static_assert(VEC % AXI == 0 && H % VEC == 0, "AXI beats must tile a channel word, words a row");
    const int BPW = VEC / AXI, BPR = H / AXI;
    int64_t addr = 0, left = 0;
    int bw = 0;
    vec<act_t, VEC> w;
    PADLESS_LOOP(ld_rows, D_MAXI);
    for (int64_t it = 0; it < total_beats; it++) {
        PADLESS_PIPELINE(ld_rows, it);
        if (left == 0) {
            desc_t d = din.read();
            dq.write(d);
            dr.write(d);
            addr = (row0 + d.start) * BPR;
            left = (int64_t)d.len * BPR;
        }
        vec<act_t, AXI> b = act[addr];
        for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
            w.v[bw * AXI + v] = b.v[v];
        }
        addr++;
        left--;
        if (bw == BPW - 1) {
            xout.write(w);
            bw = 0;
        } else {
            bw++;
        }
    }
    PADLESS_LOOP_END(ld_rows, total_beats);
}

template <int H, int VEC, int AXI>
void res_loader(int64_t total_beats, const vec<act_t, AXI> *act, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
                PADLESS_FIFO_REF(vec<act_t, VEC>) xout) {
    const int BPW = VEC / AXI, BPR = H / AXI;
    int64_t addr = 0, left = 0;
    int bw = 0;
    vec<act_t, VEC> w;
    PADLESS_LOOP(res_rows, D_MAXI);
    for (int64_t it = 0; it < total_beats; it++) {
        PADLESS_PIPELINE(res_rows, it);
        if (left == 0) {
            desc_t d = din.read();
            addr = (row0 + d.start) * BPR;
            left = (int64_t)d.len * BPR;
        }
        vec<act_t, AXI> b = act[addr];
        for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
            w.v[bw * AXI + v] = b.v[v];
        }
        addr++;
        left--;
        if (bw == BPW - 1) {
            xout.write(w);
            bw = 0;
        } else {
            bw++;
        }
    }
    PADLESS_LOOP_END(res_rows, total_beats);
}

template <int H, int VEC, int AXI>
void writer(int64_t total_beats, vec<act_t, AXI> *act, int64_t row0, PADLESS_FIFO_REF(desc_t) din,
            PADLESS_FIFO_REF(vec<act_t, VEC>) xin, int layer) {
    const int BPW = VEC / AXI, BPR = H / AXI;
    int64_t addr = 0, left = 0;
    int bw = 0;
    vec<act_t, VEC> w;
    desc_t d = {0, 0, 0, 0};
    PADLESS_LOOP(wr_rows, D_MAXI_WR);
    for (int64_t it = 0; it < total_beats; it++) {
        PADLESS_PIPELINE(wr_rows, it);
        if (left == 0) {
            d = din.read();
            PADLESS_JOB_BEGIN(d.seq, layer);
            addr = (row0 + d.start) * BPR;
            left = (int64_t)d.len * BPR;
        }
        if (bw == 0) w = xin.read();
        vec<act_t, AXI> b;
        for (int v = 0; v < AXI; v++) {
#pragma HLS UNROLL
            b.v[v] = w.v[bw * AXI + v];
        }
        act[addr] = b;
        addr++;
        left--;
        bw = bw == BPW - 1 ? 0 : bw + 1;
        if (left == 0) PADLESS_JOB_END(d.seq, layer);
    }
    PADLESS_LOOP_END(wr_rows, total_beats);
}

// n elements of E bytes from byte offset `off` of the weights image (64-byte aligned sections) into
// on-chip memory through store(k, bytes), any E. E <= AXI: one element a cycle, a beat read whenever the
// carry buffer holds fewer than E bytes; E > AXI: one beat a cycle, an element whenever E bytes are in.
// The carry buffer (2 x max(E, AXI) bytes, register-partitioned) appends each beat at the fill level and
// shifts an element out (byte multiplexers, no DSP). The C-simulation fast form copies bytes directly;
// the synthesizable form (csim synth, Vitis) runs this loop.
template <int E, int AXI, class STORE>
void load_elems(const vec<uint8_t, AXI> *mem, int64_t off, int64_t n, STORE &store) {
    const int64_t beats = (n * E + AXI - 1) / AXI;
    const int64_t trip = E <= AXI ? n : beats;
    PADLESS_LOOP(wload, D_MAXI);
#if PADLESS_CSIM_FAST && !defined(__SYNTHESIS__)
    const uint8_t *src = (const uint8_t *)mem + off;
    for (int64_t k = 0; k < n; k++) store(k, src + k * E);
#else
    const int CB = 2 * (E > AXI ? E : AXI);
    PADLESS_REGS(uint8_t, buf, CB);
    int have = 0;
    int64_t next_beat = off / AXI, k = 0;
    for (int64_t it = 0; it < trip; it++) {
        PADLESS_PIPELINE(wload, it);
        if (E > AXI || have < E) {
            vec<uint8_t, AXI> beat = mem[next_beat++];
            for (int b = 0; b < CB; b++) {
#pragma HLS UNROLL
                if (b >= have && b < have + AXI) buf[b] = beat.v[b - have];
            }
            have += AXI;
        }
        if (have >= E && k < n) {
            store(k++, buf);
            for (int b = 0; b < CB; b++) {
#pragma HLS UNROLL
                buf[b] = b + E < CB ? buf[b + E] : (uint8_t)0;
            }
            have -= E;
        }
    }
#endif
    PADLESS_LOOP_END(wload, trip);
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
