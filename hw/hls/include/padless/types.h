// padless HLS library: data types of the integer encoder data path.
//
// The numerics contract is sw/padless/quant/intops.py; docs/numerics.md gives every bound and
// docs/hls.md the width each datapath operator is cut to.
//
// Width-exact integers. `sbits<W>` / `ubits<W>` are ap_int<W> / ap_uint<W> under Vitis HLS, so every
// multiplier and adder is exactly as wide as its operands (a 32 x 31-bit requantization product, not
// a 64 x 64 one). In a C-simulation they are the smallest native integer that holds W bits (fast), or
// with -DPADLESS_EXACT_WIDTHS=1 ap_int too: the synthesizable-form check build uses that, so an
// operand that overflows its declared width shows up as a bit difference against the golden model.
#ifndef PADLESS_TYPES_H
#define PADLESS_TYPES_H

#include <stdint.h>

#include "ap_int.h"

#ifndef PADLESS_EXACT_WIDTHS
#define PADLESS_EXACT_WIDTHS 0
#endif

namespace padless {

#if defined(__SYNTHESIS__) || PADLESS_EXACT_WIDTHS
template <int W> using sbits = ap_int<W>;
template <int W> using ubits = ap_uint<W>;
#else
template <int W, bool S> struct native_int_ {
    typedef typename native_int_<(W <= 8 ? 8 : W <= 16 ? 16 : W <= 32 ? 32 : 64), S>::type type;
};
template <> struct native_int_<8, true> { typedef int8_t type; };
template <> struct native_int_<16, true> { typedef int16_t type; };
template <> struct native_int_<32, true> { typedef int32_t type; };
template <> struct native_int_<64, true> { typedef int64_t type; };
template <> struct native_int_<8, false> { typedef uint8_t type; };
template <> struct native_int_<16, false> { typedef uint16_t type; };
template <> struct native_int_<32, false> { typedef uint32_t type; };
template <> struct native_int_<64, false> { typedef uint64_t type; };
template <int W> using sbits = typename native_int_<W, true>::type;
template <int W> using ubits = typename native_int_<W, false>::type;
#endif

typedef int8_t act_t;     // int8 activation (layer input/output, Q, K, V, context, LayerNorm output)
typedef int8_t wgt_t;     // int8 weight, symmetric per output channel
typedef int32_t acc_t;    // dot-product accumulator (|acc| < 2^31, docs/numerics.md)
typedef uint16_t idx_t;   // key index inside one sequence / in-bank weight index
// Kept-key indices in the per-head index blocks: 8 bits when every sequence has at most 256 tokens
// (config.h sets PADLESS_KIDX_BITS), else 16.
#if defined(PADLESS_KIDX_BITS) && PADLESS_KIDX_BITS <= 8
typedef uint8_t kidx_t;
#else
typedef uint16_t kidx_t;
#endif

// The largest positive/negative values of a signed `bits`-wide integer.
template <int BITS> struct srange {
    static const int64_t lo = -(int64_t(1) << (BITS - 1));
    static const int64_t hi = (int64_t(1) << (BITS - 1)) - 1;
};

// A word of N elements moved in one cycle (a FIFO token, a reshaped memory word). Vitis HLS packs a
// struct holding an array into one wide word on a stream (AGGREGATE).
template <typename T, int N> struct vec {
    T v[N];
};

// One sequence of a packed call: rows [start, start + len) of the activation buffer; `keep` keys kept
// per query (len: dense attention); `seq` its position in the schedule (descriptor index).
struct desc_t {
    int32_t start;
    int32_t len;
    int32_t keep;
    int32_t seq;
};

// LayerNorm row statistics (sum y, sum y^2) of a residual row, |y| < 2^22, H <= 2^14.
struct rowstat_t {
    int64_t sum;
    int64_t sumsq;
};

}  // namespace padless

#endif  // PADLESS_TYPES_H
