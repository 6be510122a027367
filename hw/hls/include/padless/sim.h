// padless HLS library: the dataflow plumbing, written once for Vitis HLS and for every C-simulation.
//
// Under Vitis HLS (__SYNTHESIS__) the macros below expand to the plain constructs Vitis documents
// (UG1399): `hls::stream<T, DEPTH>` FIFOs, `hls::stream_of_blocks<T, DEPTH>` ping-pong blocks,
// `#pragma HLS DATAFLOW / PIPELINE II=1 / ARRAY_PARTITION / BIND_STORAGE`. Under g++ they expand to
// padless's own C-simulation runtime (sim_rt.h), which runs the same process code in one of:
//
//   sequential  processes of a dataflow region run one after another over unbounded channels: the
//               semantics of Vitis HLS csim_design (the project's `make csim` and the Python backends
//               run threaded by default; padless_sim_configure selects the mode);
//   threaded    one thread per process over channels of the declared depths: a design whose FIFOs are
//               too shallow deadlocks here as it would in hardware (the deadlock check), and the results
//               are the same bits (a Kahn network: one producer and one consumer per channel);
//   timed       threaded, and every process keeps its own clock (cycles): a pipelined loop advances it
//               by (trip - 1) * II + depth, a token carries its producer's time, a read waits for it, a
//               write to a full FIFO waits for the consumer to free a slot (the cycle-annotated csim);
//   ports       every access of an on-chip array declared with PADLESS_RAM* is counted per bank and
//               per pipelined-loop iteration, and an iteration that needs more accesses of one bank
//               than its ports is a violation (the csim port checker standing in for csynth's II).
//
// Loops. Every pipelined loop of the engine is written
//
//     PADLESS_LOOP(name, DEPTH);                 // declares the loop: II = 1, pipeline depth DEPTH
//     for (int i = 0; i < trip; i++) {
//         PADLESS_PIPELINE(name, i);             // #pragma HLS PIPELINE II=1 (synthesis) / iteration i
//         ...
//     }
//     PADLESS_LOOP_END(name, trip);
//
// so the II and depth the timed csim counts sit next to the pragma Vitis reads. The C-simulation fast
// form (PADLESS_CSIM_FAST) runs the same loop: it differs only by `#if PADLESS_CSIM_FAST` switches inside
// the body, so both forms issue the same iterations and channel accesses and count the same cycles.
// (loop::at also accepts skipped iterations, i increasing: the clock arithmetic is the same.)
#ifndef PADLESS_SIM_H
#define PADLESS_SIM_H

#include <stdint.h>

// Buffers of the Q/K/V and context stream-of-blocks channels (config.h sets it from the plan); a block
// channel's reference type carries its depth (`PADLESS_BLOCKS_REF(T, DEPTH)`, DEPTH 2 when left out), as
// hls::stream_of_blocks<T, DEPTH> does.
#ifndef PADLESS_SEQ_BLOCKS
#define PADLESS_SEQ_BLOCKS 2
#endif

#define PADLESS_STR_(x) #x
#define PADLESS_PRAGMA(x) _Pragma(PADLESS_STR_(x))

#ifdef __SYNTHESIS__

#include "hls_stream.h"
#include "hls_streamofblocks.h"

#define PADLESS_FIFO(T, name, depth) \
    hls::stream<T, depth> name;      \
    PADLESS_PRAGMA(HLS BIND_STORAGE variable = name type = fifo impl = auto)
#define PADLESS_FIFO_REF(...) hls::stream<__VA_ARGS__>&
#define PADLESS_BLOCKS(T, name, depth) hls::stream_of_blocks<T, depth> name
#define PADLESS_BLOCKS_REF(...) hls::stream_of_blocks<__VA_ARGS__>&
#define PADLESS_BLOCK2D(name, T, R, C, F) typedef T name[R][C]
#define PADLESS_BLOCK3D(name, T, B, R, C) typedef T name[B][R][C]
#define PADLESS_BLOCKS_CYCLIC(CHAN_, F_) PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = CHAN_ cyclic factor = F_ dim = 2)
#define PADLESS_BLOCKS_BANKED(CHAN_) \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = CHAN_ complete dim = 1) \
    PADLESS_PRAGMA(HLS ARRAY_RESHAPE variable = CHAN_ complete dim = 3)
#define PADLESS_BLOCKS_IMPL(CHAN_, IMPL_) PADLESS_PRAGMA(HLS BIND_STORAGE variable = CHAN_ type = ram_t2p impl = IMPL_)
// per-head blocks: one write (select) and one read (attention) a bank and cycle; simple dual port, which
// LUTRAM implements as well as block RAM
#define PADLESS_HEAD_BLOCKS_IMPL(CHAN_, IMPL_) PADLESS_PRAGMA(HLS BIND_STORAGE variable = CHAN_ type = ram_2p impl = IMPL_)
#define PADLESS_WRITE_LOCK(T, var, chan) hls::write_lock<T> var(chan)
#define PADLESS_READ_LOCK(T, var, chan) hls::read_lock<T> var(chan)
#define PADLESS_REGION_BEGIN(name) PADLESS_PRAGMA(HLS DATAFLOW)
#define PADLESS_PROCESS(region, fn, ...) fn(__VA_ARGS__)
#define PADLESS_REGION_END(name)
#define PADLESS_LOOP(name, depth)
#define PADLESS_PIPELINE(name, i) PADLESS_PRAGMA(HLS PIPELINE II = 1)
#define PADLESS_LOOP_END(name, trip)
#define PADLESS_CYCLES(n)
#define PADLESS_JOB_BEGIN(seq, layer)
#define PADLESS_JOB_END(seq, layer)
// On-chip arrays: the declaration plus its partitioning, one macro (the port checker reads the same).
#define PADLESS_RAM1D(T, NAME_, N_, KIND_, FACTOR_, IMPL_) \
    T NAME_[N_];                                           \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = NAME_ KIND_ factor = FACTOR_ dim = 1) \
    PADLESS_PRAGMA(HLS BIND_STORAGE variable = NAME_ type = ram_t2p impl = IMPL_)
#define PADLESS_RAM1D_REG(T, NAME_, N_) \
    T NAME_[N_];                         \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = NAME_ complete dim = 1)
#define PADLESS_RAM2D(T, NAME_, BANKS_, N_, IMPL_) \
    T NAME_[BANKS_][N_];                             \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = NAME_ complete dim = 1) \
    PADLESS_PRAGMA(HLS BIND_STORAGE variable = NAME_ type = ram_t2p impl = IMPL_)
// Global memories (weights, per-channel tables) hold struct elements (a vec<wgt_t, SIMD> weight word, a
// {bias, m, shift} requantization entry): AGGREGATE compact=bit packs each element into one word of the
// sum of its fields' widths (UG1399 "pragma HLS aggregate"; as finn-hlslib's ap_uint<SIMD * W> weight words),
// so a bank is one memory of WDEPTH words of SIMD * 8 bits, never one memory per struct member.
// Small arrays of registers (a fold's operands and accumulators, top-k slots): completely partitioned, so
// every element is its own register with its own read and write ports.
#define PADLESS_REGS(T, NAME_, N_) \
    T NAME_[N_];                   \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = NAME_ complete dim = 1)
#define PADLESS_GLOBAL_REGS(T, NAME_, N_) static T NAME_[N_]
#define PADLESS_STATIC_RAM2D_PRAGMAS(NAME_, IMPL_) \
    PADLESS_PRAGMA(HLS AGGREGATE variable = NAME_ compact = bit) \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = NAME_ complete dim = 1) \
    PADLESS_PRAGMA(HLS BIND_STORAGE variable = NAME_ type = ram_t2p impl = IMPL_)
#define PADLESS_STATIC_TABLE_PRAGMAS(NAME_, IMPL_) \
    PADLESS_PRAGMA(HLS AGGREGATE variable = NAME_ compact = bit) \
    PADLESS_PRAGMA(HLS ARRAY_PARTITION variable = NAME_ complete dim = 1) \
    PADLESS_PRAGMA(HLS BIND_STORAGE variable = NAME_ type = ram_2p impl = IMPL_)

#else  // C-simulation (g++)

#include "sim_rt.h"

#define PADLESS_FIFO(T, name, depth) ::padless::sim::fifo<T> name(#name, depth)
#define PADLESS_FIFO_REF(...) ::padless::sim::fifo<__VA_ARGS__>&
#define PADLESS_BLOCKS(T, name, depth) ::padless::sim::blocks<T> name(#name, depth)
#define PADLESS_BLOCKS_REF(...) ::padless::sim::blocks_ref<__VA_ARGS__>&
#define PADLESS_BLOCK2D(name, T, R, C, F) typedef ::padless::sim::blockram<T, R, C, F> name
#define PADLESS_BLOCK3D(name, T, B, R, C) typedef ::padless::sim::blockram3<T, B, R, C> name
#define PADLESS_BLOCKS_CYCLIC(chan, factor)
#define PADLESS_BLOCKS_BANKED(chan)
#define PADLESS_BLOCKS_IMPL(CHAN_, IMPL_)
#define PADLESS_HEAD_BLOCKS_IMPL(CHAN_, IMPL_)
#define PADLESS_WRITE_LOCK(T, var, chan) ::padless::sim::write_lock<T> var(chan)
#define PADLESS_READ_LOCK(T, var, chan) ::padless::sim::read_lock<T> var(chan)
#define PADLESS_REGION_BEGIN(name) ::padless::sim::region name(#name)
#define PADLESS_PROCESS(region, fn, ...) region.spawn(#fn, [&]() { fn(__VA_ARGS__); })
#define PADLESS_REGION_END(name) name.join()
#define PADLESS_LOOP(name, depth) ::padless::sim::loop name(#name, 1, depth)
#define PADLESS_PIPELINE(name, i) name.at(i)
#define PADLESS_LOOP_END(name, trip) name.end(trip)
#define PADLESS_CYCLES(n) ::padless::sim::cycles(n)
#define PADLESS_JOB_BEGIN(seq, layer) ::padless::sim::job_begin(seq, layer)
#define PADLESS_JOB_END(seq, layer) ::padless::sim::job_end(seq, layer)
#define PADLESS_RAM1D(T, name, N, kind, factor, impl) \
    ::padless::sim::ram1d<T, N> name(#name, ::padless::sim::part_##kind, factor, #impl)
#define PADLESS_RAM1D_REG(T, name, N) ::padless::sim::ram1d<T, N> name(#name, ::padless::sim::part_complete, N, "reg")
#define PADLESS_RAM2D(T, name, BANKS, N, impl) ::padless::sim::ram2d<T, BANKS, N> name(#name, #impl)
#define PADLESS_REGS(T, NAME_, N_) ::padless::sim::regs<T, N_> NAME_
#define PADLESS_GLOBAL_REGS(T, NAME_, N_) static ::padless::sim::regs<T, N_> NAME_
#define PADLESS_STATIC_RAM2D_PRAGMAS(NAME_, IMPL_)
#define PADLESS_STATIC_TABLE_PRAGMAS(NAME_, IMPL_)

#endif  // __SYNTHESIS__

#endif  // PADLESS_SIM_H
