"""Cycle model of the generated streaming engine (docs/performance-model.md).

The kernel (hw/hls/top/padless_encoder.cpp) runs a layer loop around one dataflow region; in the region
every sequence of a call passes the processes one behind another. This module predicts the cycles of a
call from the per-sequence loop cycles of :func:`padless.schedule.engine.process_cycles` and the way
the processes are coupled:

* *row streams* (FIFOs: loader -> qkv; ctx_stream -> out -> ln1 -> up -> down -> ln2 -> writer, and
  res_loader -> out): the consumer starts a sequence as soon as its producer has emitted the first row
  and cannot finish before the producer's last row; the chain runs at the pace of its slowest member;
* *blocks* (streams of blocks: Q/K/V between qkv and select and the context block between attention and
  ctx_stream, ``seq_blocks`` buffers each; the per-head blocks between select and attention, two): the
  consumer starts a sequence (a head) when the producer released its block, and a producer can only be
  as many blocks ahead as there are buffers.

:func:`call_cycles` evaluates these recurrences sequence by sequence (heads for select and attention)
for every layer, and adds what a layer costs once (a streamed engine's weight load, the drain of the
region). The m_axi movers follow the memory model of :mod:`padless.schedule.memory` (``cfg.memory``):
the descriptors' burst and each sequence's loader burst (request latency, bursts, outstanding requests,
cycles a beat) decide when qkv gets its rows, and the writer waits for its write responses after each
sequence's burst. It is the model that ``padless schedule``, the DSE and the reports use; it is
held to the timed C-simulation of the same kernel (``padless profile``, tests/test_timed_csim.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import InputError
from .engine import DEPTHS, EngineConfig, layer_fixed_cycles, policy_on, policy_pe, process_cycles, useful_macs
from .memory import port, read_burst

__all__ = ["CallTiming", "call_cycles", "stream_cycles", "seq_process_table"]


@dataclass
class CallTiming:
    """Modeled cycles of one or more calls.

    Attributes:
        cycles: makespan, kernel cycles (sum over calls).
        busy: ``{process: busy cycles}`` over the calls (loop cycles, without stalls).
        layer_cycles: ``(calls, layers)`` cycles of each layer region (+ its weight load).
        intervals: when kept, ``{process: [(seq, layer, start, end)]}`` (Gantt charts).
    """

    cycles: int
    busy: dict
    layer_cycles: np.ndarray
    intervals: dict = field(default_factory=dict)


def seq_process_table(cfg: EngineConfig, lengths: Sequence[int]) -> dict:
    """``{process: (B,) int64}`` busy cycles of each sequence in each process (one layer)."""
    uniq, inv = np.unique(np.asarray(lengths, dtype=np.int64), return_inverse=True)
    rows = [process_cycles(cfg, int(t)) for t in uniq]
    return {p: np.asarray([r[p] for r in rows], dtype=np.int64)[inv] for p in rows[0]} if rows else {}


def _layer(cfg: EngineConfig, lens: np.ndarray, t0: int, keep_intervals: dict | None, layer: int) -> int:
    """One layer region starting at cycle t0; returns its end (every process done)."""
    D = DEPTHS
    n = len(lens)
    H, h, vec = cfg.hidden, cfg.heads, cfg.vec
    P0, P2, P3 = port(cfg.memory, "gmem0"), port(cfg.memory, "gmem2"), port(cfg.memory, "gmem3")
    DA = D["D_AXI"]
    BPR, BPW = H // cfg.axi, vec // cfg.axi
    m_qkv, m_out, m_up, m_down = (cfg.mvu(m) for m in ("qkv", "out", "up", "down"))
    pe_o, pe_d = cfg.folding["out"][0], cfg.folding["down"][0]
    keep = np.asarray(cfg.keep, dtype=np.int64)[np.minimum(lens, cfg.max_seq)]
    sparse = keep < lens
    kk = np.where(sparse, keep, lens)
    kf = -(-kk // cfg.att_pe)
    nc = -(-lens // cfg.sel_lanes)

    def rec(name, j, s, e):
        if keep_intervals is not None:
            keep_intervals.setdefault(name, []).append((j, layer, int(s), int(e)))

    # per-sequence loop cycles
    qkv_pro = m_qkv["WIN"] - 1 + D["D_READ"]
    # the loader delivers a row in H / AXI beats, cpb cycles each: qkv cannot take rows faster than that
    row_beats = int(math.ceil(BPR * max(1.0, P0.cpb) - 1e-9))
    iter_qkv = max(m_qkv["ITER"], row_beats)
    t_qkv = qkv_pro + lens * iter_qkv - 1 + m_qkv["DEPTH"]
    sel_head = (lens - 1 + D["D_SEL_COPY"]) + np.where(sparse, (lens - 1 + D["D_SEL_K4"]) + (lens * nc - 1 + D["D_SEL"]), 0)
    qk_head = lens * kf - 1 + D["D_QK"]
    exp_head = lens * kf - 1 + D["D_EXP"]
    pv_head = lens * kf - 1 + D["D_PV"]
    wpr = H // min(cfg.head_dim, vec)
    chain = [  # (process, per-row cycles, per-sequence overhead, first-row lag)
        ("p_ctx", wpr, D["D_READ"] - 1, wpr + D["D_READ"]),
        ("p_out", m_out["ITER"], m_out["WIN"] - 1 + D["D_READ"] + m_out["DEPTH"] - 1,
         m_out["WIN"] + D["D_READ"] + m_out["ITER"] + m_out["DEPTH"]),
        ("p_ln1", H // pe_o, D["D_LN"] - 1, H // pe_o + D["D_LN"]),
        ("p_up", m_up["ITER"], m_up["WIN"] - 1 + D["D_READ"] + m_up["DEPTH"] - 1,
         m_up["WIN"] + D["D_READ"] + m_up["ITER"] + m_up["DEPTH"]),
        ("p_down", m_down["ITER"], m_down["WIN"] - 1 + D["D_READ"] + m_down["DEPTH"] - 1,
         m_down["WIN"] + D["D_READ"] + m_down["ITER"] + m_down["DEPTH"]),
        ("p_ln2", H // pe_d, D["D_LN"] - 1, H // pe_d + D["D_LN"]),
        # the writer: a burst a sequence, cpb cycles a beat, then the write responses (L) before the next
        ("p_writer", int(math.ceil(BPR * max(1.0, P2.cpb) - 1e-9)), DA + P2.latency,
         int(math.ceil(BPR * max(1.0, P2.cpb) - 1e-9)) + DA),
    ]
    _, acc, select = cfg.token_stage(layer)
    policy = policy_on(cfg)
    if policy:
        # tokens.h tr_policy between ln2 and the writer: rows pass through (a word a cycle), or before a
        # selection point per row the 32 accumulators (32 / PE passes over the row's words), the activation
        # loop (PE outputs a cycle) and the row's words out; the writer then also writes a count beat a sequence
        wpr_h = H // vec
        if select:
            from ..sparse.tokens import POLICY_WIDTH
            g = POLICY_WIDTH // policy_pe(cfg)
            mac = g * wpr_h - 1 + D["D_POL"]
            act = g - 1 + D["D_POL_ACT"]
            per_row = mac + act + wpr_h + 1
            pol = ("p_policy", per_row, 0, mac + act + 2)
        else:
            pol = ("p_policy", wpr_h, 1, wpr_h + 2)
        chain.insert(len(chain) - 1, pol)
        if select:
            name, r_row, over, lag = chain[-1]
            chain[-1] = (name, r_row, over + int(math.ceil(max(1.0, P2.cpb))), lag)
    # the descriptors' burst (desc_reader), then the loader's burst a sequence (io.h): a sequence's first
    # word reaches qkv after the request latency; the loader runs ahead of qkv by the x_rows FIFO (two rows)
    start0 = read_burst(1, P3, t0) + DA + 1
    wpr = H // vec
    depth_row = 2 * wpr + 2
    loader_end = start0
    endA = np.zeros(n, np.int64)
    relSel = np.zeros(n, np.int64)
    endS_prev = start0
    # head-level state of select and attention
    relHead = [start0, start0]  # release time of the two most recent head slots (by attention)
    endQK = endE = endPV = start0
    # token reduction (tokens.h): pv clears its received-attention accumulators once (max_seq cycles) and,
    # after a sequence's heads, streams its sums (a t-cycle loop); token_select accumulates them and, before
    # a selection point, runs imp_bits + 1 counting passes and the keep pass, whose bits the writer waits for
    if policy and cfg.token_stage(layer)[0] > 0:
        # the learned policy after a selection point: the loader first reads the call's count beats (one burst)
        loader_end = max(loader_end, read_burst(n, P0, t0) + DA + 1)
    if acc:
        endPV = start0 + cfg.max_seq + 1
    imp_bits = (max(cfg.tokens["layers"]) * h * cfg.max_seq << 12).bit_length() if cfg.tokens else 0
    tsel_end = start0
    nb = cfg.seq_blocks
    relCtx = [start0] * nb      # ctx block releases (by ctx_stream), seq_blocks buffers
    chain_end = {c[0]: start0 for c in chain}
    chain_start = {c[0]: start0 for c in chain}
    endA_prev = start0
    head_slot = 0
    ends_all = [start0]
    for j in range(n):
        t = int(lens[j])
        # --- loader: the sequence's burst from the cycle it took the descriptor
        sL = loader_end
        nbeats = t * BPR
        first_word = read_burst(BPW, P0, sL) + DA + 1
        last_word = read_burst(nbeats, P0, sL) + DA + 1
        # --- qkv: needs a free Q/K/V block (select released sequence j - seq_blocks) and its first row
        sA = max(endA_prev, relSel[j - nb] if j >= nb else start0, first_word)
        eA = max(sA + int(t_qkv[j]), last_word + iter_qkv + m_qkv["DEPTH"])
        # the loader finishes the sequence once qkv has taken all but the FIFO's words of it
        loader_end = max(last_word - 1, sA + qkv_pro + max(0, t * wpr - depth_row) * iter_qkv // wpr)
        endA[j] = eA
        endA_prev = eA
        rec("p_qkv", j, sA, eA)
        # --- select, head by head; attention per head
        sS = max(endS_prev, eA)
        first_sel = sS
        ctx_free = relCtx[0]
        for hh in range(h):
            slot_free = relHead[0]
            sH = max(sS, slot_free)
            eH = sH + int(sel_head[j])
            sS = eH
            # attention on this head
            sQK = max(endQK, eH)
            eQK = sQK + int(qk_head[j])
            sE = max(endE, sQK + int(kf[j]) + D["D_QK"])
            eE = max(sE + int(exp_head[j]), eQK + D["D_EXP"])
            sPV = max(endPV, sE + int(kf[j]) + D["D_EXP"], ctx_free if hh == 0 else 0)
            ePV = max(sPV + int(pv_head[j]), eE + D["D_PV"])
            if hh == 0:
                att_start = sQK
            endQK, endE, endPV = eQK, eE, ePV
            relHead = [relHead[1], max(eQK, ePV)]
        if acc:
            endPV += t + 2
            tsel_start = max(tsel_end, endPV)
            tsel_end = tsel_start + t + 3
            if select:
                groups = -(-t // 4) if t > 1 else 0   # TSEL_LANES rows a cycle, depth D_TSEL + 2
                tsel_end += (imp_bits + 1) * ((groups - 1 + 6) if groups else 0)
                mask_ready = tsel_end + 4
                tsel_end += t + 3
        endS_prev = sS
        relSel[j] = sS
        rec("p_select", j, first_sel, sS)
        rec("p_attention", j, att_start, endPV)
        # --- the row-streamed tail, fed by the context block released by pv
        up_start, up_end = endPV, endPV
        starts, ends = {}, {}
        for name, r_row, over, lag in chain:
            prev_end = chain_end[name]
            s = max(prev_end, up_start)
            if select and not policy and name == "p_writer":
                s = max(s, mask_ready)
            e = max(s + over + t * r_row, up_end + r_row + (over if name != "p_ctx" else 0) // 4)
            starts[name], ends[name] = s, e
            up_start, up_end = s + lag, e
        # backpressure: a producer cannot finish more than its FIFO ahead of its consumer
        names = [c[0] for c in chain]
        for i in range(len(names) - 2, -1, -1):
            cons = names[i + 1]
            r_cons = chain[i + 1][1]
            slack = 2 * r_cons + chain[i + 1][2]
            if cons == "p_policy":   # a slow consumer: the row FIFO (2 H / VEC + 2 words) holds that many rows
                slack = (depth_row // wpr) * r_cons + chain[i + 1][2]
            ends[names[i]] = max(ends[names[i]], ends[cons] - slack)
        for name in names:
            chain_start[name], chain_end[name] = starts[name], ends[name]
            rec(name, j, starts[name], ends[name])
        relCtx = relCtx[1:] + [ends["p_ctx"]]
        ends_all.append(ends["p_writer"])
    end = max(ends_all)
    return int(end)


def call_cycles(cfg: EngineConfig, lengths: Sequence[int], keep_intervals: bool = False,
                stage_lengths=None) -> CallTiming:
    """Modeled cycles of one call of the kernel on sequences of ``lengths`` tokens, in the order given
    (the descriptors' order).

    ``stage_lengths``: ``(B, points + 1)`` surviving lengths of each sequence per token-reduction stage (the
    golden model's counts, :func:`padless.golden.run_encoder` ``lengths_out``) for the learned policy, whose
    counts depend on the data; default :meth:`EngineConfig.layer_lengths` (exact for the cascade, the
    expected kept fraction for the policy).

    Returns a :class:`CallTiming`: the makespan adds the descriptor check once before the layers, and
    per layer a streamed engine's weight load before the region and the region (:func:`_layer`); with the
    learned policy the layer loop's read of the kept total after each selection layer (one m_axi beat).

    Raises InputError for an empty call, a length outside 1 .. max_seq, or stage lengths of another shape.
    """
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lens.size == 0:
        raise InputError("a call needs at least one sequence")
    if lens.min() < 1 or lens.max() > cfg.max_seq:
        raise InputError(f"sequence lengths must be in 1..{cfg.max_seq}, got {int(lens.min())}..{int(lens.max())}")
    if stage_lengths is not None:
        stage_lengths = np.asarray(stage_lengths, dtype=np.int64).reshape(len(lens), -1)
        if stage_lengths.shape[1] != len((cfg.tokens or {}).get("layers") or []) + 1:
            raise InputError(f"stage lengths need one column per token-reduction stage, got {stage_lengths.shape}")

    def lengths_of(layer):
        if stage_lengths is None:
            return cfg.layer_lengths(lens, layer)
        return stage_lengths[:, cfg.token_stage(layer)[0]]

    P0 = port(cfg.memory, "gmem0")
    fx = layer_fixed_cycles(cfg, len(lens))
    t = fx["desc"]   # check_call: the descriptors once
    intervals: dict | None = {} if keep_intervals else None
    per_layer = []
    seen: dict = {}
    busy: dict = {}
    for layer in range(cfg.layers):
        # layer regions with the same lengths and token-reduction duties run the same loops: time-invariant
        key = cfg.token_stage(layer)
        if intervals is None and key in seen:
            per_layer.append(seen[key])
            t += seen[key]
        else:
            t0 = t + fx["weight_load"]
            t1 = _layer(cfg, lengths_of(layer), t0, intervals, layer)
            if policy_on(cfg) and cfg.token_stage(layer)[2]:
                t1 = read_burst(1, P0, t1) + 1   # the layer loop reads the kept total (tr_writer's last count beat)
            per_layer.append(t1 - t)
            seen[key] = t1 - t
            t = t1
        for p, v in seq_process_table(cfg, lengths_of(layer)).items():
            busy[p] = busy.get(p, 0) + int(v.sum())
    return CallTiming(cycles=int(t), busy=busy, layer_cycles=np.asarray([per_layer], dtype=np.int64),
                      intervals=intervals or {})


def cut_calls(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """``lengths`` (tokens, arrival order) cut into consecutive calls of at most ``max_tokens`` rows (a
    sequence longer than that is a call of its own): how the host splits a long input."""
    calls: list[list[int]] = []
    cur, load = [], 0
    for t in (int(x) for x in lengths):
        if cur and load + t > max_tokens:
            calls.append(cur)
            cur, load = [], 0
        cur.append(t)
        load += t
    if cur:
        calls.append(cur)
    return calls


def stream_cycles(cfg: EngineConfig, lengths: Sequence[int], max_tokens: int | None = None,
                  keep_intervals: bool = False, calls: Sequence[Sequence[int]] | None = None) -> CallTiming:
    """Modeled cycles of running ``lengths`` (in this order) as consecutive calls of at most ``max_tokens``
    rows each (default the kernel's ``max_tokens``): what the host does with a long input. ``calls``: the
    calls' lengths given explicitly instead (the host's grouping, each call in its run order)."""
    if calls is None:
        calls = cut_calls(lengths, int(max_tokens or cfg.max_tokens))
    calls = [[int(x) for x in c] for c in calls if len(c)]
    total, busy, per = 0, {}, []
    intervals: dict = {}
    for c in calls:
        ct = call_cycles(cfg, c, keep_intervals)
        if keep_intervals:
            for p, iv in ct.intervals.items():
                intervals.setdefault(p, []).extend((s, l, a + total, b + total) for s, l, a, b in iv)
        total += ct.cycles
        for p, v in ct.busy.items():
            busy[p] = busy.get(p, 0) + v
        per.append(ct.layer_cycles[0])
    return CallTiming(cycles=int(total), busy=busy, layer_cycles=np.asarray(per, dtype=np.int64), intervals=intervals)


def throughput(cfg: EngineConfig, lengths: Sequence[int], max_tokens: int | None = None) -> dict:
    """``{"cycles", "seconds", "throughput_seq_s", "throughput_tokens_s", "useful_macs", "busy"}`` of the
    modeled stream (efficiency against the DSP peak: :func:`padless.schedule.scheduler.figures`)."""
    ct = stream_cycles(cfg, lengths, max_tokens)
    sec = ct.cycles / (cfg.clock_MHz * 1e6)
    macs = float(sum(useful_macs(cfg, int(t)) for t in lengths))
    return {"cycles": ct.cycles, "seconds": sec, "throughput_seq_s": len(lengths) / sec,
            "throughput_tokens_s": float(np.sum(lengths)) / sec, "useful_macs": macs, "busy": ct.busy}
