// padless HLS library: integer multi-head attention of one sequence, dense or with the 4-bit Q/K top-k
// selection of the DAC 2022 length-adaptive co-design (Peng et al., arXiv 2208.03646, section 3.2),
// bit for bit sw/padless/sparse/attention.py + sparse/selection.py:
//   1. quantize4: Q and K of one (sequence, head) to signed 4 bits, x4 = sign(x) ((14|x| + M) div 2M),
//      M = max |x| over the (n, head_dim) tensor (zeros when M = 0);
//   2. estimate: S' = Q4 K4^T (4b x 4b products: a 256-entry table multiplier in hardware, no DSP);
//   3. top-k per query row by S', ties to the lower key index, kept indices emitted in ascending order
//      (a streaming insertion sorter of depth K_MAX, then an index bitmap scan);
//   4. exact scores on the kept keys (int8 Q.K, requantized to the i-exp input format, scale 2^-10),
//      integer softmax over the kept keys only, and the probability-weighted sum of the kept V rows,
//      requantized per channel to the int8 context.
// k >= n keeps every key: exactly dense attention (no estimate is computed).
#ifndef PADLESS_ATTENTION_H
#define PADLESS_ATTENTION_H

#include "hls_stream.h"
#include "intops.h"
#include "linear.h"

namespace padless {

static const int Q4_MAX = 7;

// (n, D) int8 columns [col0, col0 + D) of a (n, H) matrix -> signed 4-bit values in q4 (n, D).
template <int H, int D, int N_MAX> void quantize4(const act_t *x, int n, int col0, q4s_t *q4) {
    int32_t M = 0;
q4_max:
    for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
        for (int c = 0; c < D; c++) {
#pragma HLS PIPELINE II = 1
            int32_t a = x[i * H + col0 + c];
            a = a < 0 ? -a : a;
            M = a > M ? a : M;
        }
    }
q4_out:
    for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
        for (int c = 0; c < D; c++) {
#pragma HLS PIPELINE II = 1
            int32_t v = x[i * H + col0 + c];
            int32_t a = v < 0 ? -v : v;
            int32_t mag = M == 0 ? 0 : (2 * Q4_MAX * a + M) / (2 * M);
            q4_t r = (q4_t)(v < 0 ? -mag : mag);
            q4[i * D + c] = (q4s_t)r;
        }
    }
}

// Approximate scores of one query row: est[j] = q4 . k4[j] for j < n (|est| <= 49 D).
template <int D, int N_MAX> void estimate_row(const q4s_t *q4row, const q4s_t *k4, int n, int32_t *est) {
est_loop:
    for (int j = 0; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
        int32_t s = 0;
        for (int c = 0; c < D; c++) {
#pragma HLS UNROLL
            s += (int32_t)q4row[c] * (int32_t)k4[j * D + c];
        }
        est[j] = s;
    }
}

// Top-k of one row of n scores (1 <= k <= min(n, K_MAX)): larger score first, equal scores to the lower
// index; the k kept indices are written to `kept` in ascending index order.
template <int K_MAX, int N_MAX> void topk_row(const int32_t *est, int n, int k, hls::stream<idx_t> &kept) {
    int32_t val[K_MAX];
    idx_t id[K_MAX];
    int cnt = 0;
topk_insert:
    for (int j = 0; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
        int32_t s = est[j];
        // Candidates arrive in ascending index order, so an equal score never displaces a kept one.
        if (cnt == k && s <= val[k - 1]) continue;
        int p = cnt < k ? cnt : k - 1;
        while (p > 0 && val[p - 1] < s) {
            val[p] = val[p - 1];
            id[p] = id[p - 1];
            p--;
        }
        val[p] = s;
        id[p] = (idx_t)j;
        if (cnt < k) cnt++;
    }
    static bool mark[N_MAX];
topk_mark:
    for (int t = 0; t < k; t++) {
#pragma HLS PIPELINE II = 1
        mark[id[t]] = true;
    }
topk_scan:
    for (int j = 0; j < n; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
        if (mark[j]) {
            kept.write((idx_t)j);
            mark[j] = false;
        }
    }
}

// Integer attention of one sequence of n tokens (1 <= n <= N_MAX), all heads.
//   q, k, v: (n, H) int8, head h in columns [h D, (h + 1) D); kk: keys kept per query (keep_count);
//   score_m/score_shift: Q.K accumulator -> i-exp input (scale 2^-10), saturated to 32 bits;
//   ctx_m/ctx_shift: (H,) P.V accumulator -> int8 context; ctx: (n, H) int8 out.
template <int H, int HEADS, int N_MAX, int K_MAX>
void attention_seq(const act_t *q, const act_t *k, const act_t *v, int n, int kk, int64_t score_m,
                   int score_shift, const int64_t *ctx_m, const int64_t *ctx_shift, act_t *ctx) {
    const int D = H / HEADS;
    static uint8_t qu[N_MAX * D];      // q + 128 of this head (C-simulation dot-product operand)
    static int32_t ksum[N_MAX];        // row sums of K of this head
    static act_t vt[D * N_MAX];        // V of this head, transposed (D, n)
    static q4s_t q4[N_MAX * D], k4[N_MAX * D];
    static score_t srow[N_MAX];
    static int32_t est[N_MAX];
    static prob_t prow[N_MAX];
    static idx_t kid[N_MAX];
    hls::stream<idx_t> kept("kept");
#pragma HLS STREAM variable = kept depth = K_MAX
    const bool sparse = kk < n;
head_loop:
    for (int h = 0; h < HEADS; h++) {
        const int c0 = h * D;
        for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
            int32_t s = 0;
            for (int c = 0; c < D; c++) {
#pragma HLS PIPELINE II = 1
                qu[i * D + c] = (uint8_t)((uint8_t)q[i * H + c0 + c] ^ 0x80u);
                s += k[i * H + c0 + c];
                vt[c * N_MAX + i] = v[i * H + c0 + c];
            }
            ksum[i] = s;
        }
        if (sparse) {
            quantize4<H, D, N_MAX>(q, n, c0, q4);
            quantize4<H, D, N_MAX>(k, n, c0, k4);
        }
    row_loop:
        for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
            int m = n;
            if (sparse) {
                estimate_row<D, N_MAX>(q4 + i * D, k4, n, est);
                topk_row<K_MAX, N_MAX>(est, n, kk, kept);
                m = kk;
                for (int t = 0; t < m; t++) kid[t] = kept.read();
            } else {
                for (int t = 0; t < m; t++) kid[t] = (idx_t)t;
            }
        score_loop:
            for (int t = 0; t < m; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = N_MAX
#pragma HLS PIPELINE II = 1
                const int j = kid[t];
                int32_t acc = dot_u8s8(qu + i * D, k + j * H + c0, D) - 128 * ksum[j];
                srow[t] = (score_t)requantize<32>(acc, score_m, score_shift);
            }
            i_softmax<N_MAX>(srow, m, prow);
        av_loop:
            for (int c = 0; c < D; c++) {
#pragma HLS PIPELINE II = 1
                int32_t acc = 0;
                if (sparse) {
                    for (int t = 0; t < m; t++) acc += (int32_t)prow[t] * (int32_t)v[kid[t] * H + c0 + c];
                } else {
                    acc = dot_p_s8(prow, vt + c * N_MAX, m);
                }
                ctx[i * H + c0 + c] = (act_t)requantize<8>(acc, ctx_m[c0 + c], (int)ctx_shift[c0 + c]);
            }
        }
    }
}

}  // namespace padless

#endif  // PADLESS_ATTENTION_H
