"""Design-space exploration: the streaming engine's knobs under a board's budget (docs/performance-model.md).

:func:`plan` chooses, for an expected length distribution, the parallelism of every process of the
generated engine (:mod:`padless.schedule.engine`) so that the processes' expected busy cycles balance
(the dataflow region runs at the pace of its slowest process), while DSP slices and LUTs stay within
``utilization_cap`` of the board and the memories within its block RAM and UltraRAM -- on a multi-SLR
part, of every SLR, with the processes placed (:mod:`padless.schedule.placement`): ``fits`` means every
SLR is under its cap.

Procedure (greedy bottleneck relief, FINN-style folding search on the kernel's own loop formulas, then a
local search on the full cycle model):

1. Shape and memory: for the longest kernel sequence (the model's truncation length, else 256, 128, 64 while
   nothing fits: small boards) try weights resident (every layer on chip, one init call) and streamed (one
   layer, loaded before each layer's region); each starts at the smallest legal folding (every MVU at its
   first Pareto candidate, attention and selection at one lane) and must fit with its memories placed
   (:func:`~padless.schedule.engine.place_memories`: URAM or BRAM per MVU and for the sequence blocks,
   BRAM or LUTRAM for the per-head blocks). Nothing fits: :class:`BoardTooSmallError`. The variant with
   the fewest modeled cycles on the sample wins.
2. Greedy: take the process with the most expected busy cycles (:func:`~padless.schedule.engine.
   process_cycles` weighted over the sample's lengths); step its knob (MVU: the next (PE, SIMD) of its
   Pareto list of cycles per row against DSPs; attention: twice the keys per cycle; selection: 1.5x the
   lanes; a LayerNorm: the PE of the MVU that feeds it). A step that breaks the DSP, LUT or memory budget
   freezes the process; stop when the bottleneck is frozen.
3. Shrink every non-bottleneck MVU to the fewest DSPs that keep it under the bottleneck, then grow again
   with the freed budget (three rounds).
4. Local search (:func:`_polish`) on :func:`padless.schedule.cost.stream_cycles` of the sample: the step up
   (any knob, and the sequence-block count 2..4) with the fewest cycles while it gains 0.2%; when none
   does, a step down that costs at most 0.05% and empties the fullest resource, so another unit can grow.
The estimate is the cycle model (:func:`padless.schedule.cost.stream_cycles`) on every expected length (a
seeded sample of :data:`ESTIMATE_MAX` beyond that), not only on the search's sample, in the host's
calls and run order (:func:`padless.schedule.scheduler.host_calls`): what `padless schedule` and the
kernel run.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..boards import Board, load_board
from ..errors import InputError, PadlessError
from ..opcount import check_model, check_sparsity
from .engine import (MVUS, banks_per_cycle_options, EngineConfig, _replace, engine_config, mac_per_dsp, place_memories, process_cycles,
                     resources, simd_options, useful_macs)

__all__ = ["plan", "BoardTooSmallError", "DEFAULT_LENGTH", "SAMPLE", "WEIGHT_PLACEMENTS"]

#: Expected length when no distribution is given (tokens).
DEFAULT_LENGTH = 128
#: Sequences of the expected lengths the planner evaluates (a seeded sample, arrival order kept).
SAMPLE = 300
#: Most expected lengths the final estimate runs through the cycle model (a seeded sample beyond).
ESTIMATE_MAX = 4096
#: The allocation's stage names of the MVUs.
STAGE_OF = {"qkv": "qkv", "out": "out", "up": "ffn_up", "down": "ffn_down"}


class BoardTooSmallError(PadlessError):
    """The model does not fit the board: the message gives the needed and available resources."""


def _mvu_candidates(cfg: EngineConfig, mvu: str, dsp_type: str) -> list[tuple[int, int]]:
    """Legal (PE, SIMD) of one MVU on its Pareto frontier of (cycles per row, DSPs), slowest first."""
    inp, out = cfg.shape(mvu)
    vec = cfg.vec
    pes = [p for p in (1, 2, 4, 8, 16, 32, 64) if p <= vec and vec % p == 0
           and (cfg.hidden if mvu == "qkv" else out) % p == 0 and (mvu != "qkv" or p <= 2 * cfg.head_dim)
           and (p >= 2 or not cfg.paired)]   # pe-pair: the two rows of a pair are lanes 2q, 2q + 1
    if cfg.sparse:
        nb = inp // cfg.bank
        simds = [n * cfg.p_max for n in banks_per_cycle_options(nb, cfg.paired)]
    else:
        simds = simd_options(inp, cfg.axi)
    # weight words of at least 64 bits pack into block RAM and UltraRAM without waste
    wide = [s for s in simds if s * (2 if cfg.sparse else 1) >= 8]
    simds = wide or simds
    packed = cfg.packed(mvu, dsp_type)
    pts = {}
    for pe in pes:
        for simd in simds:
            sf = ((inp // cfg.bank) // (simd // cfg.p_max)) if cfg.sparse else inp // simd
            it = max((out // pe) * sf, inp // vec)
            dsp = (math.ceil(pe / 2) if packed else pe) * simd + pe * 4
            if it not in pts or dsp < pts[it][2]:
                pts[it] = (pe, simd, dsp)
    frontier, best = [], None
    for it in sorted(pts, reverse=True):
        pe, simd, dsp = pts[it]
        if best is None or dsp > best:
            frontier.append((pe, simd))
            best = dsp
    return frontier


#: Achieved II per dataflow process from a recorded csynth.xml (``plan(achieved_ii=...)``): the greedy
#: search weighs each process's busy cycles by it (a process at II 2 needs twice the parallelism).
_ACHIEVED_II: dict = {}


def _busy(cfg: EngineConfig, uniq: np.ndarray, w: np.ndarray) -> dict:
    """Expected busy cycles per process group (weights w over the unique lengths), each process's times its
    achieved II when the plan has one (:data:`_ACHIEVED_II`). Under token reduction (``cfg.tokens``) a
    layer's processes see the surviving rows: the cycles are the mean over the layers of each length's
    surviving length in that layer (the expected kept fraction, per process: attention shrinks
    quadratically, the MVUs linearly)."""
    uniq = np.asarray(uniq, dtype=np.int64)
    per_layer = [cfg.layer_lengths(uniq, l) for l in range(cfg.layers)] if cfg.tokens else [uniq]
    memo: dict = {}

    def pc(t: int) -> dict:
        if t not in memo:
            memo[t] = process_cycles(cfg, t)
        return memo[t]
    rows = [{p: float(np.mean([pc(int(ls[i]))[p] for ls in per_layer])) for p in pc(int(uniq[i]))}
            for i in range(len(uniq))]
    tot = {p: float(np.dot([r[p] for r in rows], w)) * _ACHIEVED_II.get(p, 1) for p in rows[0]}
    return {"qkv": tot["p_qkv"], "out": tot["p_out"], "up": tot["p_up"], "down": tot["p_down"],
            "select": tot["p_select"], "attn": max(tot["p_attn_qk"], tot["p_attn_exp"], tot["p_attn_pv"]),
            "ln1": tot["p_ln1"], "ln2": tot["p_ln2"], "ctx": tot["p_ctx"], "io": tot["p_writer"]}


def _fits(cfg: EngineConfig, board: Board, cap: float, mem_cap: float) -> bool:
    """Whether ``cfg`` fits the caps; sets its memories' placement (:func:`engine.place_memories`) in place."""
    placed = place_memories(cfg, board, mem_cap, cap)
    if placed is None:
        return False
    cfg.weight_impl, cfg.block_impl, cfg.head_impl = placed.weight_impl, placed.block_impl, placed.head_impl
    r = resources(cfg, board, caps=slr_caps(cap, mem_cap))
    return (r["dsp"]["used"] <= cap * board.dsp and r["lut"]["used"] <= cap * board.lut
            and r["ff"]["used"] <= cap * board.ff and r["slr"]["fits"])


def slr_caps(cap: float, mem_cap: float) -> dict:
    """The per-SLR caps of the placement (:func:`padless.schedule.placement.place`): ``cap`` of the DSPs,
    LUTs and flip-flops, ``mem_cap`` of the block RAM and UltraRAM of every SLR."""
    return {"dsp": cap, "lut": cap, "ff": cap, "bram_36k": mem_cap, "uram": mem_cap}


def plan(model: Mapping[str, Any], board: Board | str, sparsity: Mapping[str, Any] | None = None,
         lengths: Sequence[int] | None = None, clock_MHz: float | None = None,
         utilization_cap: float = 0.8, memory_cap: float = 0.9, max_seq: int | None = None,
         act_bits: int = 8, achieved_ii: Mapping[str, int] | None = None,
         weights: str | None = None, gelu: str = "pwl") -> dict:
    """Choose the engine's knobs for ``model`` on ``board``; JSON-serialisable.

    Args:
        model: shape dict (manifest ``model`` entry; ``max_positions`` used when present).
        board: a :class:`Board` or a board name.
        sparsity: sparsity config (see :mod:`padless.opcount`).
        lengths: expected sequence lengths in tokens (a sample of the workload); default
            ``[DEFAULT_LENGTH]`` capped at the maximum sequence length.
        clock_MHz: kernel clock; default the board's.
        utilization_cap: fraction of DSPs and LUTs the plan may use (the rest: shell, routing slack).
        memory_cap: fraction of block RAM / UltraRAM the plan may use.
        max_seq: longest sequence of the kernel (default the model's ``max_seq_length`` -- the truncation
            length sentence-transformers uses --, else its maximum positions).
        act_bits: the FFN activation's width (``quant.precision.act``): 16 prices FFN down as a 16 x 8-bit
            MVU (one MAC per DSP) with a 16-bit input channel.
        achieved_ii: ``{process: II}`` from a recorded csynth.xml (manifest ``csynth.processes``): the
            search weighs each process's busy cycles by its achieved II instead of the declared 1; the
            local search (step 4), which runs the declared-II cycle model, is skipped, and the estimate's
            cycle model still runs the declared loops.
        weights: ``"resident"`` (every layer's weights on chip, loaded once by the init call: no weight load
            in a run, the batch-1 latency choice), ``"streamed"`` (one layer on chip, loaded before each
            layer's region: the load is shared by every sequence of the call) or None (default: both are
            planned and the one with the fewer modeled cycles on the length mix wins -- a throughput
            choice).
        gelu: the project's ``quant.gelu`` (``pwl`` or ``ibert``): with the model's ``activation`` it sets the
            one FFN activation the kernel builds and the DSE prices (:func:`padless.schedule.engine.act_kind`).

    Returns:
        ``{"board", "part", "flow", "platform", "clock_MHz", "weights" ("resident"|"streamed"),
        "allocation" (the knobs, the input of :func:`engine_config`), "engine" (EngineConfig.to_dict()),
        "stages" {group: {pe, simd | lanes, expected_cycles}}, "resources" (:func:`engine.resources` without
        detail, plus the caps), "lengths" {count, mean, p50, p90, max}, "max_tokens", "estimate"
        {bottleneck_stage, cycles_per_sequence, throughput_seq_s, useful_macs_s, efficiency_vs_peak},
        "peak_int8_macs", "mac_per_dsp"}``.

    Raises:
        BoardTooSmallError: the kernel at its smallest folding with one layer of weights on chip does not fit
            the board at any maximum sequence length down to 64 (with ``weights="resident"``: with every
            layer's weights on chip).
        InputError: ``weights`` is not resident, streamed or None.
    """
    global _ACHIEVED_II
    _ACHIEVED_II = {str(k): max(1, int(v)) for k, v in (achieved_ii or {}).items()}
    try:
        return _plan(model, board, sparsity, lengths, clock_MHz, utilization_cap, memory_cap, max_seq, act_bits,
                     weights, gelu)
    finally:
        _ACHIEVED_II = {}


#: The weight placements :func:`plan` accepts (``weights=``; None: the faster of both on the mix).
WEIGHT_PLACEMENTS = ("resident", "streamed")


def _plan(model, board, sparsity, lengths, clock_MHz, utilization_cap, memory_cap, max_seq, act_bits,
          weights=None, gelu="pwl") -> dict:
    if weights is not None and weights not in WEIGHT_PLACEMENTS:
        raise InputError(f"weights placement must be one of {', '.join(WEIGHT_PLACEMENTS)} (or absent: the faster "
                         f"on the length mix), got {str(weights)[:80]!r}")
    placements = (True, False) if weights is None else (weights == "resident",)
    board = load_board(board)
    check_model(model)
    sp = check_sparsity(sparsity)
    clk = float(clock_MHz or board.clock_MHz)
    mseq = int(max_seq or model.get("max_seq_length") or model.get("max_positions", 512) or 512)
    if lengths is None or len(lengths) == 0:
        lengths = [min(DEFAULT_LENGTH, mseq)]
    lens = np.minimum(np.asarray([int(n) for n in lengths], dtype=np.int64), mseq)
    if lens.min() < 1:
        raise PadlessError("expected lengths must be >= 1 token")
    rng = np.random.default_rng(0)
    sample = lens if lens.size <= SAMPLE else lens[np.sort(rng.choice(lens.size, SAMPLE, replace=False))]
    uniq, counts = np.unique(sample, return_counts=True)
    w = counts / counts.sum()
    cap, mcap = float(utilization_cap), float(memory_cap)

    base = {"pe": {"qkv": 1, "out": 1, "ffn_up": 1, "ffn_down": 1, "attn": 1},
            "simd": {"qkv": 1, "out": 1, "ffn_up": 1, "ffn_down": 1, "attn": 1}, "select_lanes": 1,
            "clock_MHz": clk, "wave_tokens": 32768}
    from .cost import stream_cycles
    best = None
    # the longest sequence the kernel holds: the model's, halved while nothing fits (small boards)
    seq_options = [mseq] + [m for m in (256, 128, 64) if m < mseq]
    for max_s in seq_options:
        for resident in placements:
            start = engine_config(model, sparsity, board, dict(base, resident=resident), max_seq=max_s,
                                  act_bits=act_bits, gelu=gelu)
            start = _first_fit(start, board, mcap)
            if start is None:
                continue
            keep = uniq <= max_s
            u2, w2 = (uniq[keep], w[keep]) if keep.any() else (np.asarray([max_s]), np.asarray([1.0]))
            c = _search(start, board, u2, w2, cap, mcap, bool(sp["attention"]))
            cyc = stream_cycles(c, np.minimum(sample, max_s).tolist()).cycles
            if best is None or cyc < best[1]:
                best = (c, cyc)
        if best is not None:
            break
    if best is None:
        one = placements == (True,)
        small = engine_config(model, sparsity, board, dict(base, resident=one), max_seq=mseq, act_bits=act_bits,
                              gelu=gelu)
        for m in MVUS:   # the smallest folding, its memories placed as _first_fit tries them
            small.folding[m] = list(_mvu_candidates(small, m, board.dsp_type)[0])
        small = place_memories(small, board, mcap, 1.0) or small
        r = resources(small, board, caps=slr_caps(1.0, mcap))
        slr = ""
        over = [(i, k, sl["used"][k], sl["limit"][k]) for i, sl in enumerate((r.get("slr") or {}).get("slrs") or [])
                for k in ("bram_36k", "uram", "dsp", "lut") if sl["used"].get(k, 0) > sl["limit"].get(k, 0)]
        names = {"bram_36k": "BRAM36", "uram": "URAM", "dsp": "DSP", "lut": "LUT"}
        if over and len((r.get("slr") or {}).get("slrs") or []) > 1:
            under = all(r[k]["used"] <= r[k]["limit"] for k in ("bram_36k", "uram", "dsp"))
            slr = (("; under the board's totals, but" if under else "; and") + " a unit's memories sit in one SLR: " +
                   ", ".join(f"SLR{i} needs {u:,} {names[k]} of its {lim:,}" for i, k, u, lim in over[:3]))
        raise BoardTooSmallError(
            f"{model.get('name', 'the model')} does not fit {board.name} even with "
            f"{'every layer' if one else 'one layer'} of weights on chip "
            f"and one MAC lane per unit: needs {r['bram_36k']['used']:,} BRAM36 (has {board.bram_36k:,}), "
            f"{r['uram']['used']:,} URAM (has {board.uram:,}), {r['dsp']['used']:,} DSP (has {board.dsp:,}){slr}. "
            f"Choose a larger board, more weight sparsity, a smaller model or a shorter maximum sequence.")
    cfg = best[0]
    if not _ACHIEVED_II:   # the local search runs the declared-II cycle model: skipped under achieved II
        cfg = _polish(cfg, board, np.minimum(sample, cfg.max_seq), cap, mcap, bool(sp["attention"]))
    # the estimate: the cycle model on every expected length (a seeded sample of ESTIMATE_MAX when there
    # are more), in the host's calls and run order -- in arrival order a heavy-tailed mix (fortunes) came
    # out 10-25% slower than the kernel runs it; a kernel of a shorter maximum (small boards) sees the
    # longer texts truncated
    est = lens if lens.size <= ESTIMATE_MAX else lens[np.sort(rng.choice(lens.size, ESTIMATE_MAX, replace=False))]
    sample = np.minimum(est, cfg.max_seq)
    uniq, counts = np.unique(sample, return_counts=True)
    w = counts / counts.sum()
    from .scheduler import host_calls
    ct = stream_cycles(cfg, sample.tolist(), calls=host_calls(cfg, sample.tolist()))   # as the host runs them
    per_seq = ct.cycles / len(sample)
    busy = _busy(cfg, uniq, w)
    bott = max(busy, key=lambda g: busy[g])
    mpd = mac_per_dsp(board, cfg.sparse, cfg.paired)
    peak = board.dsp * mpd * clk * 1e6
    macs = float(np.mean([useful_macs(cfg, int(t)) for t in sample]))
    thr = clk * 1e6 / per_seq
    used = resources(cfg, board, caps=slr_caps(cap, mcap))
    stages = {STAGE_OF[m]: {"pe": cfg.folding[m][0], "simd": cfg.folding[m][1], "expected_cycles": busy[m]}
              for m in MVUS}
    stages["attn"] = {"pe": cfg.att_pe, "simd": cfg.head_dim, "expected_cycles": busy["attn"]}
    stages["select"] = {"lanes": cfg.sel_lanes if sp["attention"] else 0, "expected_cycles": busy["select"]}
    alloc = {"pe": {STAGE_OF[m]: cfg.folding[m][0] for m in MVUS} | {"attn": cfg.att_pe},
             "simd": {STAGE_OF[m]: cfg.folding[m][1] for m in MVUS} | {"attn": cfg.head_dim},
             "select_lanes": cfg.sel_lanes, "clock_MHz": clk, "resident": cfg.resident,
             "wave_tokens": cfg.max_tokens, "bandwidth_GBps": board.bandwidth_GBps}
    return {
        "board": board.name, "part": board.part, "flow": board.flow, "platform": board.platform,
        "clock_MHz": clk, "weights": "resident" if cfg.resident else "streamed",
        "allocation": alloc, "engine": cfg.to_dict(), "stages": stages,
        "resources": {**{k: v for k, v in used.items() if k != "detail"}, "cap": cap, "memory_cap": mcap},
        "clock_source": board.clock_source if clock_MHz is None else "given (clock_MHz)",
        "lengths": {"count": int(lens.size), "mean": float(lens.mean()), "p50": float(np.percentile(lens, 50)),
                    "p90": float(np.percentile(lens, 90)), "max": int(lens.max())},
        "max_tokens": cfg.max_tokens,
        "estimate": {"bottleneck_stage": bott, "cycles_per_sequence": per_seq, "throughput_seq_s": thr,
                     "useful_macs_s": macs * thr, "efficiency_vs_peak": macs * thr / peak},
        "peak_int8_macs": peak, "mac_per_dsp": mpd,
    }


def _with(c: EngineConfig, **kw) -> EngineConfig:
    return _replace(c, **kw)


#: Sequences of the sample the local search evaluates with the full cycle model.
POLISH_SAMPLE = 96


def _polish(cfg: EngineConfig, board: Board, sample: np.ndarray, cap: float, mcap: float,
            selecting: bool) -> EngineConfig:
    """Step 4: local search on the full cycle model (:func:`padless.schedule.cost.stream_cycles`), which
    sees what the expected busy cycles do not -- stalls between processes coupled by small buffers, long
    sequences holding a block while short ones wait. Moves: an MVU one folding up or down its Pareto
    list, attention keys per cycle x2 / /2, selection lanes x1.5 / /1.5, sequence blocks +1 / -1 (2..4).
    Takes the step up with the fewest cycles while it gains at least 0.2% and fits the budget; when none
    does, a step down that costs at most 0.05% of the cycles and leaves the board emptier (its fullest
    resource), so that another unit can grow."""
    from .cost import stream_cycles
    rng = np.random.default_rng(1)
    ev = sample if sample.size <= POLISH_SAMPLE else rng.choice(sample, POLISH_SAMPLE, replace=False)
    ev = ev.tolist()
    cands = {m: _mvu_candidates(cfg, m, board.dsp_type) for m in MVUS}

    def moves(c: EngineConfig, up: bool):
        for m in MVUS:
            i = cands[m].index(tuple(c.folding[m])) if tuple(c.folding[m]) in cands[m] else None
            j = None if i is None else (i + 1 if up else i - 1)
            if j is not None and 0 <= j < len(cands[m]):
                n = _with(c)
                n.folding[m] = list(cands[m][j])
                yield n
        if up and c.att_pe < 64:
            yield _with(c, att_pe=c.att_pe * 2)
        if not up and c.att_pe > 1:
            yield _with(c, att_pe=c.att_pe // 2)
        if selecting and up and c.sel_lanes < 256:
            yield _with(c, sel_lanes=max(c.sel_lanes + 1, int(c.sel_lanes * 1.5)))
        if selecting and not up and c.sel_lanes > 1:
            yield _with(c, sel_lanes=max(1, int(c.sel_lanes / 1.5)))
        nb = c.seq_blocks + (1 if up else -1)
        if 2 <= nb <= 4:
            yield _with(c, seq_blocks=nb)

    def load(c: EngineConfig) -> float:
        """How full the board is: the fullest of DSP, LUT, block RAM and UltraRAM (fractions)."""
        r = resources(c, board)
        return max(r[k]["used"] / max(r[k]["limit"], 1) for k in ("dsp", "lut", "bram_36k", "uram"))

    cur = stream_cycles(cfg, ev).cycles
    for _ in range(80):
        best = None
        for n in moves(cfg, True):
            if not _fits(n, board, cap, mcap):
                continue
            cyc = stream_cycles(n, ev).cycles
            if best is None or cyc < best[1]:
                best = (n, cyc)
        if best is not None and best[1] <= cur * 0.998:
            cfg, cur = best
            continue
        # no step up gains: give back a unit that costs nothing in cycles (frees memory or DSPs for
        # another unit's next step), the one that empties the board most
        free = None
        base_load = load(cfg)
        for n in moves(cfg, False):
            if not _fits(n, board, cap, mcap):
                continue
            cyc = stream_cycles(n, ev).cycles
            if cyc <= cur * 1.0005:
                ld = load(n)
                if ld < base_load and (free is None or ld < free[2]):
                    free = (n, cyc, ld)
        if free is None:
            break
        cfg, cur = free[0], free[1]
    return cfg


def _first_fit(cfg: EngineConfig, board: Board, mcap: float) -> EngineConfig | None:
    """The smallest configuration (each MVU at its first candidate) if its memories fit, else None."""
    c = _with(cfg)
    for m in MVUS:
        c.folding[m] = list(_mvu_candidates(c, m, board.dsp_type)[0])
    return c if _fits(c, board, 1.0, mcap) else None


def _search(cfg: EngineConfig, board: Board, uniq: np.ndarray, w: np.ndarray, cap: float, mcap: float,
            selecting: bool) -> EngineConfig:
    """Steps 2-4 of the module docstring from the smallest configuration ``cfg``."""
    cands = {m: _mvu_candidates(cfg, m, board.dsp_type) for m in MVUS}
    idx = {m: 0 for m in MVUS}
    cfg = _with(cfg)
    for m in MVUS:
        cfg.folding[m] = list(cands[m][0])

    def busy_of(c):
        b = _busy(c, uniq, w)
        if not selecting:
            b["select"] = 0.0
        return b

    def step(c: EngineConfig, group: str):
        if group in MVUS or group in ("ln1", "ln2"):
            m = {"ln1": "out", "ln2": "down"}.get(group, group)
            if idx[m] + 1 >= len(cands[m]):
                return None
            n = _with(c)
            n.folding[m] = list(cands[m][idx[m] + 1])
            return n, m
        if group == "attn":
            return (_with(c, att_pe=c.att_pe * 2), None) if c.att_pe < 64 else None
        if group == "select":
            return (_with(c, sel_lanes=max(c.sel_lanes + 1, int(c.sel_lanes * 1.5))), None) if c.sel_lanes < 256 else None
        return None  # ctx / io: fixed by the channel word and the m_axi width

    def grow(c: EngineConfig) -> EngineConfig:
        frozen: set = set()
        for _ in range(2000):
            busy = busy_of(c)
            g = max(busy, key=lambda k: busy[k])
            if g in frozen:
                break
            nxt = step(c, g)
            if nxt is None:
                frozen.add(g)
                continue
            n, m = nxt
            if _fits(n, board, cap, mcap):
                c = n
                if m is not None:
                    idx[m] += 1
            else:
                frozen.add(g)
        return c

    def shrink(c: EngineConfig) -> EngineConfig:
        target = max(busy_of(c).values())
        for m in MVUS:
            for j in range(idx[m] + 1):
                n = _with(c)
                n.folding[m] = list(cands[m][j])
                if busy_of(n)[m] <= target:
                    c, idx[m] = n, j
                    break
        return c

    for _ in range(3):
        cfg = shrink(grow(cfg))
    return grow(cfg)
