// padless top-level kernel: the integer Transformer encoder (all layers) over one packed batch of
// variable-length sequences, never padded. Model shape, limits, parallelism and the weights.bin layout
// come from the generated config.h (sw/padless/codegen/hls.py); the operators from the padless HLS
// library (hw/hls/include/padless). Bit for bit padless.golden.run_encoder.
//
// Interface (Vitis HLS): four m_axi masters (packed activations in/out, offsets, weights image) and an
// s_axilite slave holding their addresses, num_seqs, num_tokens and the return status; block-level
// protocol ap_ctrl_hs (AP_START/AP_DONE/AP_IDLE at 0x00, arguments from 0x10).
//
//   x_in:   (num_tokens, HIDDEN) int8, the sequences end to end (layer-0 input)
//   x_out:  (num_tokens, HIDDEN) int8, the last layer's output, same packing
//   offsets:(num_seqs + 1,) int64, cu_seqlens convention: offsets[0] = 0, offsets[num_seqs] = num_tokens
//   weights: the weights.bin image as 64-bit little-endian words (docs/hls.md, "weights.bin")
// Returns 0, or an error status (PADLESS_ERR_*) without touching x_out when a limit is exceeded.
//
// Data flow per layer: the layer's weights are read once into on-chip buffers; then, per sequence,
// Q/K/V projections (row tiles) -> attention (4-bit selection + exact attention on kept keys) -> per row
// tile: O projection + residual + LayerNorm -> FFN up + GELU -> FFN down + residual + LayerNorm
// (a DATAFLOW region), written back in place into the on-chip activation buffer.
#include "config.h"
#include "padless/attention.h"
#include "padless/gelu.h"
#include "padless/layernorm.h"
#include "padless/linear.h"

using namespace padless;

#define H PADLESS_HIDDEN
#define F PADLESS_FFN
#define TILE PADLESS_ROW_TILE

enum {
    PADLESS_OK = 0,
    PADLESS_ERR_TOKENS = 1,   // num_tokens < 1 or > PADLESS_MAX_TOKENS
    PADLESS_ERR_SEQS = 2,     // num_seqs < 1 or > num_tokens
    PADLESS_ERR_OFFSETS = 3,  // offsets not 0 .. num_tokens, or not increasing
    PADLESS_ERR_SEQLEN = 4,   // a sequence longer than PADLESS_MAX_SEQ
};

// On-chip buffers of one linear layer (dense weights, or packed bank-balanced values + indices).
template <int IN, int OUT> struct LinearBuf {
    wgt_t w[OUT * IN];
#if PADLESS_SPARSE_WEIGHTS
    uint16_t idx[OUT * IN];
    int per_bank;
#endif
    int32_t bias[OUT], m[OUT], shift[OUT], wsum[OUT];
};

static LinearBuf<H, H> lq, lk, lv, lo;
static LinearBuf<H, F> lup;
static LinearBuf<F, H> ldown;
static int64_t ctx_m[H], ctx_sh[H], ra_m[H], ra_sh[H], ln1_m[H], ln1_b[H], act_m[F], act_sh[F];
static int64_t gelu_slope[GELU_SEGMENTS], gelu_icpt[GELU_SEGMENTS];
static int64_t rf_m[H], rf_sh[H], ln2_m[H], ln2_b[H], scal[PADLESS_N_SCALARS];

// --- weight loading: 64-bit words -> typed on-chip buffers ------------------------------------------
static void load_i8(const uint64_t *mem, uint64_t word, int n, int8_t *dst) {
ld8:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
        dst[i] = (int8_t)(uint8_t)(mem[word + (i >> 3)] >> (8 * (i & 7)));
    }
}
static void load_i32(const uint64_t *mem, uint64_t word, int n, int32_t *dst) {
ld32:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
        dst[i] = (int32_t)(uint32_t)(mem[word + (i >> 1)] >> (32 * (i & 1)));
    }
}
static void load_i64(const uint64_t *mem, uint64_t word, int n, int64_t *dst) {
ld64:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
        dst[i] = (int64_t)mem[word + i];
    }
}
// n indices of `bits` bits each from a little-endian bit stream.
static void load_bits(const uint64_t *mem, uint64_t word, int n, int bits, uint16_t *dst) {
ldbits:
    for (int i = 0; i < n; i++) {
#pragma HLS PIPELINE II = 1
        uint64_t bit = (uint64_t)i * bits;
        uint64_t w0 = mem[word + (bit >> 6)];
        uint64_t w1 = ((bit & 63) + bits > 64) ? mem[word + (bit >> 6) + 1] : 0;
        int sh = (int)(bit & 63);
        uint64_t v = (w0 >> sh) | (sh ? (w1 << (64 - sh)) : 0);
        dst[i] = (uint16_t)(v & ((uint64_t(1) << bits) - 1));
    }
}

template <int IN, int OUT>
static void load_linear(const uint64_t *mem, int layer, int li, LinearBuf<IN, OUT> &b) {
    const uint64_t *sec = PADLESS_SECTIONS[layer];
#if PADLESS_SPARSE_WEIGHTS
    b.per_bank = PADLESS_PER_BANK[layer];
    const int nnz = OUT * (IN / PADLESS_BANK) * b.per_bank;
    load_i8(mem, sec[li * 5 + 0], nnz, b.w);
    load_bits(mem, sec[li * 5 + 1], nnz, PADLESS_INDEX_BITS, b.idx);
#else
    load_i8(mem, sec[li * 5 + 0], OUT * IN, b.w);
#if PADLESS_CSIM_FAST
    row_sums(b.w, OUT, IN, b.wsum);
#endif
#endif
    load_i32(mem, sec[li * 5 + 2], OUT, b.bias);
    load_i32(mem, sec[li * 5 + 3], OUT, b.m);
    load_i32(mem, sec[li * 5 + 4], OUT, b.shift);
}

static void load_layer(const uint64_t *mem, int layer) {
    load_linear(mem, layer, 0, lq);
    load_linear(mem, layer, 1, lk);
    load_linear(mem, layer, 2, lv);
    load_linear(mem, layer, 3, lo);
    load_linear(mem, layer, 4, lup);
    load_linear(mem, layer, 5, ldown);
    const uint64_t *sec = PADLESS_SECTIONS[layer];
    int64_t *vec[12] = {ctx_m, ctx_sh, ra_m, ra_sh, ln1_m, ln1_b, act_m, act_sh, rf_m, rf_sh, ln2_m, ln2_b};
    for (int i = 0; i < 12; i++) load_i64(mem, sec[30 + i], (i == 6 || i == 7) ? F : H, vec[i]);
    load_i64(mem, sec[42], GELU_SEGMENTS, gelu_slope);
    load_i64(mem, sec[43], GELU_SEGMENTS, gelu_icpt);
    load_i64(mem, sec[44], PADLESS_N_SCALARS, scal);
}

template <int IN, int OUT, int PE, int SIMD, int OUT_BITS, typename OUT_T>
static void linear(const LinearBuf<IN, OUT> &b, const act_t *x, int rows, OUT_T *y) {
    Requant rq = {b.bias, b.m, b.shift};
#if PADLESS_SPARSE_WEIGHTS
    linear_sparse<IN, OUT, PADLESS_BANK, PADLESS_P_MAX, PE, TILE, OUT_BITS, OUT_T>(x, rows, b.w, b.idx, b.per_bank,
                                                                                 rq, y);
#else
    linear_dense<IN, OUT, PE, SIMD, TILE, OUT_BITS, OUT_T>(x, rows, b.w, b.wsum, rq, y);
#endif
}

// O projection + residual + LayerNorm, FFN up + activation, FFN down + residual + LayerNorm for a tile
// of `rows` rows: x the layer input rows, c the attention context rows, out the layer output rows.
static void layer_tail(const act_t x[TILE * H], const act_t c[TILE * H], int rows, act_t out[TILE * H]) {
#pragma HLS DATAFLOW
    static int32_t oacc[TILE * H], res[TILE * H];
    static act_t hbuf[TILE * H], abuf[TILE * F];
    static up_t ubuf[TILE * F];
    linear<H, H, PADLESS_PE_OUT, PADLESS_SIMD_OUT, RESIDUAL_BITS>(lo, c, rows, oacc);
ln1_rows:
    for (int r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TILE
        residual_add<H>(oacc + r * H, x + r * H, ra_m, ra_sh, res + r * H);
        i_layernorm<H>(res + r * H, ln1_m, ln1_b, (int)scal[2], hbuf + r * H);
    }
    linear<H, F, PADLESS_PE_UP, PADLESS_SIMD_UP, GELU_IN_BITS>(lup, hbuf, rows, ubuf);
act_rows:
    for (int r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TILE
        activation_row<F>(ubuf + r * F, (int)scal[8], scal[4], scal[5], (int)scal[6], scal[7], scal[9],
                          (int)scal[10], gelu_slope, gelu_icpt, act_m, act_sh, abuf + r * F);
    }
    linear<F, H, PADLESS_PE_DOWN, PADLESS_SIMD_DOWN, RESIDUAL_BITS>(ldown, abuf, rows, oacc);
ln2_rows:
    for (int r = 0; r < rows; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TILE
        residual_add<H>(oacc + r * H, hbuf + r * H, rf_m, rf_sh, res + r * H);
        i_layernorm<H>(res + r * H, ln2_m, ln2_b, (int)scal[3], out + r * H);
    }
}

static act_t act[PADLESS_MAX_TOKENS * H];  // the packed activations of the current layer (in place)
static act_t qb[PADLESS_MAX_SEQ * H], kb[PADLESS_MAX_SEQ * H], vb[PADLESS_MAX_SEQ * H];
static act_t cb[PADLESS_MAX_SEQ * H];
static act_t xt[TILE * H];

// One layer of one sequence of n tokens whose rows start at xs (updated in place).
static void sequence_layer(act_t *xs, int n) {
qkv_tiles:
    for (int t0 = 0; t0 < n; t0 += TILE) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PADLESS_MAX_SEQ / TILE
        int rows = n - t0 < TILE ? n - t0 : TILE;
        linear<H, H, PADLESS_PE_QKV, PADLESS_SIMD_QKV, 8>(lq, xs + t0 * H, rows, qb + t0 * H);
        linear<H, H, PADLESS_PE_QKV, PADLESS_SIMD_QKV, 8>(lk, xs + t0 * H, rows, kb + t0 * H);
        linear<H, H, PADLESS_PE_QKV, PADLESS_SIMD_QKV, 8>(lv, xs + t0 * H, rows, vb + t0 * H);
    }
    attention_seq<H, PADLESS_HEADS, PADLESS_MAX_SEQ, PADLESS_K_MAX>(qb, kb, vb, n, PADLESS_KEEP[n], scal[0],
                                                                    (int)scal[1], ctx_m, ctx_sh, cb);
tail_tiles:
    for (int t0 = 0; t0 < n; t0 += TILE) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PADLESS_MAX_SEQ / TILE
        int rows = n - t0 < TILE ? n - t0 : TILE;
        for (int i = 0; i < rows * H; i++) xt[i] = xs[t0 * H + i];
        layer_tail(xt, cb + t0 * H, rows, xs + t0 * H);
    }
}

extern "C" int padless_encoder(const act_t *x_in, act_t *x_out, const int64_t *offsets, const uint64_t *weights,
                               int num_seqs, int num_tokens) {
#pragma HLS INTERFACE m_axi port = x_in offset = slave bundle = gmem0 depth = PADLESS_MAX_TOKENS * PADLESS_HIDDEN
#pragma HLS INTERFACE m_axi port = x_out offset = slave bundle = gmem0 depth = PADLESS_MAX_TOKENS * PADLESS_HIDDEN
#pragma HLS INTERFACE m_axi port = offsets offset = slave bundle = gmem1 depth = PADLESS_MAX_TOKENS + 1
#pragma HLS INTERFACE m_axi port = weights offset = slave bundle = gmem2 depth = PADLESS_WEIGHT_WORDS
#pragma HLS INTERFACE s_axilite port = x_in
#pragma HLS INTERFACE s_axilite port = x_out
#pragma HLS INTERFACE s_axilite port = offsets
#pragma HLS INTERFACE s_axilite port = weights
#pragma HLS INTERFACE s_axilite port = num_seqs
#pragma HLS INTERFACE s_axilite port = num_tokens
#pragma HLS INTERFACE s_axilite port = return
#pragma HLS INTERFACE ap_ctrl_hs port = return
    if (num_tokens < 1 || num_tokens > PADLESS_MAX_TOKENS) return PADLESS_ERR_TOKENS;
    if (num_seqs < 1 || num_seqs > num_tokens) return PADLESS_ERR_SEQS;
    if (offsets[0] != 0 || offsets[num_seqs] != num_tokens) return PADLESS_ERR_OFFSETS;
check_offsets:
    for (int b = 0; b < num_seqs; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PADLESS_MAX_TOKENS
        int64_t n = offsets[b + 1] - offsets[b];
        if (n < 1) return PADLESS_ERR_OFFSETS;
        if (n > PADLESS_MAX_SEQ) return PADLESS_ERR_SEQLEN;
    }
read_in:
    for (int i = 0; i < num_tokens * H; i++) {
#pragma HLS PIPELINE II = 1
        act[i] = x_in[i];
    }
layers:
    for (int l = 0; l < PADLESS_LAYERS; l++) {
        load_layer(weights, l);
    sequences:
        for (int b = 0; b < num_seqs; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PADLESS_MAX_TOKENS
            sequence_layer(act + offsets[b] * H, (int)(offsets[b + 1] - offsets[b]));
        }
    }
write_out:
    for (int i = 0; i < num_tokens * H; i++) {
#pragma HLS PIPELINE II = 1
        x_out[i] = act[i];
    }
    return PADLESS_OK;
}
