// padless HLS library: data types of the integer encoder data path.
//
// The numerics contract is sw/padless/quant/intops.py (docs/numerics.md gives every bit width). Types
// whose width is 8/16/32/64 bits are native C++ integers so that C-simulation (g++) runs at native
// speed; odd widths use ap_int / ap_uint (Xilinx arbitrary-precision types, shipped in hls4ml's
// ap_types for g++ builds and in Vitis HLS itself).
#ifndef PADLESS_TYPES_H
#define PADLESS_TYPES_H

#include <stdint.h>
#include "ap_int.h"

namespace padless {

typedef int8_t act_t;     // int8 activation (layer input/output, Q, K, V, context, GELU output)
typedef int8_t wgt_t;     // int8 weight, symmetric per output channel
typedef int32_t acc_t;    // int8 x int8 dot-product accumulator (|acc| < 2^31 for in <= 2^14)
typedef int64_t wide_t;   // requantization intermediate (|acc * m| < 2^62)
typedef int16_t up_t;     // FFN up-projection output, the 16-bit GELU input
typedef uint16_t prob_t;  // softmax probability, scale 2^-12, in [0, 4095] (PROB_BITS = 12)
typedef int32_t score_t;  // exact attention score, i-exp input (scale 2^-10), saturated to 32 bits
typedef ap_int<22> res_t; // residual stream entering LayerNorm: signed 22-bit addends (I-BERT)
typedef ap_int<23> ressum_t; // sum of two 22-bit residual addends (|y| < 2^22)
typedef ap_int<4> q4_t;   // 4-bit Q/K estimate operand in [-7, 7]
typedef int8_t q4s_t;     // storage of a q4 value in on-chip buffers (one byte; ap_int<4> lanes on the FPGA)
typedef uint16_t idx_t;   // key index inside one sequence (sequences up to 65,535 tokens)

// The largest positive/negative values of a signed `bits`-wide integer.
template <int BITS> struct srange {
    static const int64_t lo = -(int64_t(1) << (BITS - 1));
    static const int64_t hi = (int64_t(1) << (BITS - 1)) - 1;
};

}  // namespace padless

#endif  // PADLESS_TYPES_H
