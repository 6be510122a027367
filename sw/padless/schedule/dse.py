"""Design-space exploration: PE/SIMD per stage under a board's budget (docs/performance-model.md).

:func:`plan` chooses, for an expected length distribution, the parallelism of every stage of the layer
engine so that the stages' expected busy cycles balance (the pipeline then runs at the pace of its
slowest stage, so the slowest is what the budget must buy down), while DSP slices, LUTs and on-chip
memory stay within ``utilization_cap`` of the board.

Procedure (greedy bottleneck relief, the classic FINN-style folding search):

1. Memory first: keep every layer's weights on chip if they fit with a buffer for the longest sequence
   ("resident"); else stream one layer at a time, double-buffered ("streamed"), or single-buffered when
   only one layer fits; else the board is too small (:class:`BoardTooSmallError` with the numbers). The
   remaining memory sets ``wave_tokens``.
2. Start every stage at PE = SIMD = 1 (one selection lane).
3. Repeat: take the stage with the most expected cycles (mean over the lengths, summed over layers;
   the row-tiled pass cycles of :func:`~padless.schedule.cost.sequence_cycles_many` at the allocation's
   ``row_tile``, the kernel's ``TILE``, so the plan balances the engine the scheduler simulates);
   step it to its next larger parallelism (MVU: PE dividing the output rows, SIMD dividing the kept
   weights per row; attention: PE over keys, SIMD dividing the head dimension; selection: lanes x 2).
   If the step breaks the DSP or LUT budget, the stage is frozen; stop when the bottleneck is frozen.
4. Streamed weights: simulated refinement of the weight buffering and the selection lanes. Balanced
   mean cycles do not make a balanced pipeline when a wave holds a long sequence: its quadratic select
   chain outlasts the wave's matrix work, and only a larger wave lets short sequences fill the matrix
   stages meanwhile. The planner simulates the scheduler (:func:`padless.schedule.scheduler.run_method`,
   ``padless``) on a seeded sample of the expected lengths (``REFINE_SEQUENCES``) for each weight
   buffering that fits (double-buffered, or single-buffered with the freed layer of weights given to
   the wave) and, with top-k attention, the selection lanes at 1, 1.5, 2 and 3 times step 3's (within
   the LUT budget), and keeps the highest simulated utilization (selection engines are LUT-only and
   buffers are memory: this spends no DSPs).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..boards import Board, int8_peak_macs, load_board
from ..errors import PadlessError
from ..opcount import attention_k, check_model, check_sparsity, model_ops
from .cost import (MVU_STAGES, STAGES, Allocation, CostParams, activation_bytes_per_token, layer_weight_bytes,
                   model_weight_bytes, mvu_shapes, resources, sequence_cycles_many, weight_load_cycles)
from .scheduler import metrics, run_method

__all__ = ["plan", "BoardTooSmallError", "DEFAULT_LENGTH"]

#: Expected length when no distribution is given (tokens).
DEFAULT_LENGTH = 128
#: Most tokens in flight the planner provisions (activation buffers beyond this buy nothing).
MAX_WAVE_TOKENS = 16384
#: Sequences of the expected lengths simulated by the select-lane refinement (step 4).
REFINE_SEQUENCES = 300
#: Multiples of step 3's select lanes the refinement simulates.
REFINE_LANES = (1.0, 1.5, 2.0, 3.0)
#: Utilization a later refinement candidate (single buffering, more lanes) must gain over the best so far
#: to be kept: differences below it are sampling noise of the 300-sequence simulation.
REFINE_MARGIN = 0.0025


class BoardTooSmallError(PadlessError):
    """The model does not fit the board: the message gives the needed and available resources."""


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _folds(n: int) -> list[tuple[int, int]]:
    """Distinct ``(fold, lanes)`` of an axis of size n: ``fold = ceil(n / lanes)`` with minimal lanes."""
    out = {}
    for lanes in range(1, n + 1):
        out.setdefault(math.ceil(n / lanes), lanes)
    return sorted(out.items(), reverse=True)


def _candidates(stage: str, shapes: dict, head_dim: int, max_k: int) -> list[tuple[int, int]]:
    """Pareto frontier of ``(PE, SIMD)``: each point needs fewer cycles per token than the one before,
    with the fewest MAC lanes for that cycle count (PE need not divide the rows: the last fold idles)."""
    if stage in MVU_STAGES:
        out, inp = shapes[stage]
    else:  # attn: PE over kept keys, SIMD over the head dimension
        out, inp = max(1, max_k), head_dim
    best: dict[int, tuple[int, int]] = {}
    for fo, pe in _folds(out):
        for fi, simd in _folds(inp):
            c = fo * fi
            if c not in best or pe * simd < best[c][0] * best[c][1]:
                best[c] = (pe, simd)
    frontier, lanes = [], 0
    for c in sorted(best, reverse=True):
        pe, simd = best[c]
        if pe * simd > lanes:
            frontier.append((pe, simd))
            lanes = pe * simd
    return frontier


def plan(model: Mapping[str, Any], board: Board | str, sparsity: Mapping[str, Any] | None = None,
         lengths: Sequence[int] | None = None, clock_MHz: float | None = None,
         utilization_cap: float = 0.8, memory_cap: float = 0.95, params: CostParams = CostParams(),
         refine: bool = True) -> dict:
    """Choose PE/SIMD per stage for ``model`` on ``board``; JSON-serialisable.

    Args:
        model: shape dict (manifest ``model`` entry; ``max_positions`` used when present).
        board: a :class:`Board` or a board name.
        sparsity: sparsity config (see :mod:`padless.opcount`).
        lengths: expected sequence lengths in tokens (a sample of the workload); default
            ``[DEFAULT_LENGTH]`` capped at ``max_positions``.
        clock_MHz: kernel clock; default the board's.
        utilization_cap: fraction of DSPs and LUTs the plan may use (the rest: shell, routing slack).
        memory_cap: fraction of block RAM + UltraRAM the plan may use (buffers pack densely).
        refine: run step 4 (simulated refinement of weight buffering and select lanes; streamed weights).

    Returns:
        ``{"board", "part", "flow", "platform", "clock_MHz", "weights" ("resident"|"streamed"),
        "allocation" (Allocation.to_dict()), "stages" {stage: {pe, simd | lanes, dsp, expected_cycles}},
        "resources" {"used", "available", "cap"}, "lengths" {count, mean, p50, p90, max},
        "max_tokens", "weight_load_cycles", "estimate" {bottleneck_stage, cycles_per_sequence,
        throughput_seq_s, useful_macs_s, efficiency_vs_peak}, "peak_int8_macs", "refinement"
        (step 4's sample size, the (weight buffers, wave tokens, lanes) tried with their simulated
        utilization, and what was kept; None when step 4 did not run), "weight_buffers" (streamed: 1 or
        2; resident: 0)}``.

    Raises:
        BoardTooSmallError: one layer of weights (single-buffered) plus a buffer for the longest sequence do not
            fit the on-chip memory, or one MAC lane per stage does not fit the DSPs.
    """
    board = load_board(board)
    dims = check_model(model)
    sp = check_sparsity(sparsity)
    clk = float(clock_MHz or board.clock_MHz)
    max_pos = int(model.get("max_positions", 512) or 512)
    if lengths is None or len(lengths) == 0:
        lengths = [min(DEFAULT_LENGTH, max_pos)]
    lens = np.asarray([int(n) for n in lengths], dtype=np.int64)
    if lens.min() < 1:
        raise PadlessError("expected lengths must be >= 1 token")
    lens = np.minimum(lens, max_pos)
    max_tokens = max(int(lens.max()), max_pos)
    uniq, counts = np.unique(lens, return_counts=True)
    weights = counts / counts.sum()

    # 1. memory: resident, streamed, or too small
    cap = float(utilization_cap)
    onchip = board.bram_36k * params.bram_bytes + board.uram * params.uram_bytes
    budget_mem = float(memory_cap) * onchip
    k_max = attention_k(max_tokens, sp["attention"]) if sp["attention"] else 0
    per_tok = activation_bytes_per_token(model, sparsity, k_max)
    layer_bytes = layer_weight_bytes(model, sparsity)  # per-stage largest layer (per-layer ratios)
    need_min_act = max_tokens * per_tok
    all_bytes = model_weight_bytes(model, sparsity)
    buffers = 2
    if all_bytes + need_min_act <= budget_mem:
        resident, wbytes = True, all_bytes
    elif 2 * layer_bytes + need_min_act <= budget_mem:
        resident, wbytes = False, 2 * layer_bytes
    elif layer_bytes + need_min_act <= budget_mem:
        resident, wbytes, buffers = False, layer_bytes, 1
    else:
        raise BoardTooSmallError(
            f"{model.get('name', 'the model')} does not fit {board.name}: streaming one layer at a time "
            f"needs {layer_bytes / 1e6:.2f} MB of weights (single-buffered) + {need_min_act / 1e6:.2f} MB "
            f"of activations for a {max_tokens}-token sequence = {(layer_bytes + need_min_act) / 1e6:.2f} MB, "
            f"but {memory_cap:.0%} of its block RAM + UltraRAM is {budget_mem / 1e6:.2f} MB "
            f"({board.bram_36k} BRAM36, {board.uram} URAM). Choose a larger board, more weight sparsity "
            f"or a smaller model.")

    def wave_for(weight_bytes: float) -> int:
        """Tokens of activation buffer the memory left after ``weight_bytes`` of weights holds."""
        return int(min(MAX_WAVE_TOKENS, (budget_mem - weight_bytes) // per_tok))
    wave_tokens = wave_for(wbytes)
    alloc = Allocation(clock_MHz=clk, bandwidth_GBps=board.bandwidth_GBps, resident=resident,
                       wave_tokens=wave_tokens, weight_buffers=buffers)
    dsp_budget = math.floor(cap * board.dsp)
    lut_budget = math.floor(cap * board.lut)
    selecting = bool(sp["attention"])
    compute = [s for s in STAGES if s != "select" or selecting]
    if dsp_budget < len(compute) - (1 if selecting else 0):
        raise BoardTooSmallError(f"{board.name} has {board.dsp} DSPs; one MAC lane per stage needs "
                                 f"{len(compute) - 1} within the {cap:.0%} budget")

    shapes = mvu_shapes(model, sparsity)
    k_exp = max(attention_k(int(n), sp["attention"]) for n in uniq)
    cands = {s: _candidates(s, shapes, dims["d"], k_exp) for s in MVU_STAGES + ("attn",)}
    idx = {s: 0 for s in cands}

    def apply(a: Allocation, stage: str, i: int) -> None:
        a.pe[stage], a.simd[stage] = cands[stage][i]

    def expected(a: Allocation) -> np.ndarray:
        cyc = sequence_cycles_many(model, uniq, sparsity, a, params).sum(axis=1)  # (U, S)
        return (cyc * weights[:, None]).sum(axis=0)

    def fits(a: Allocation) -> bool:
        r = resources(model, sparsity, a, board, max_tokens, params)
        return r["dsp"] <= dsp_budget and r["lut"] <= lut_budget

    def grow(alloc: Allocation) -> Allocation:
        frozen: set[str] = set()
        exp = expected(alloc)
        for _ in range(10000):
            bott = STAGES[max(active, key=lambda i: exp[i])]
            if bott in frozen:
                break
            trial = Allocation.from_dict(alloc.to_dict())
            if bott == "select":
                trial.select_lanes *= 2
            elif idx[bott] + 1 < len(cands[bott]):
                apply(trial, bott, idx[bott] + 1)
            else:
                frozen.add(bott)
                continue
            if fits(trial):
                alloc = trial
                if bott != "select":
                    idx[bott] += 1
                exp = expected(alloc)
            else:
                frozen.add(bott)
        return alloc

    def shrink(alloc: Allocation) -> Allocation:
        """Give back what non-bottleneck stages do not need to stay under the bottleneck's cycles."""
        exp = expected(alloc)
        b = max(active, key=lambda i: exp[i])
        target = exp[b]
        for i in active:
            stage = STAGES[i]
            if i == b:
                continue
            if stage == "select":
                lo, hi = 1, alloc.select_lanes
                while lo < hi:
                    mid = (lo + hi) // 2
                    trial = Allocation.from_dict(alloc.to_dict())
                    trial.select_lanes = mid
                    if expected(trial)[i] <= target:
                        hi = mid
                    else:
                        lo = mid + 1
                alloc.select_lanes = lo
                continue
            for j in range(idx[stage] + 1):
                trial = Allocation.from_dict(alloc.to_dict())
                apply(trial, stage, j)
                if expected(trial)[i] <= target:
                    alloc, idx[stage] = trial, j
                    break
        return alloc

    active = [i for i, s in enumerate(STAGES) if s in compute]
    for _ in range(3):
        alloc = shrink(grow(alloc))
    alloc = grow(alloc)
    refinement = None
    if not resident and refine:
        bufs = [b for b in (2, 1) if b <= buffers and b * layer_bytes + need_min_act <= budget_mem]
        alloc, refinement = _refine(model, sparsity, alloc, lens, params, fits, selecting,
                                    {b: wave_for(b * layer_bytes) for b in bufs})

    used = resources(model, sparsity, alloc, board, max_tokens, params)
    exp = expected(alloc)
    bott_i = max(active, key=lambda i: exp[i])
    per_seq = float(exp[bott_i])
    load_cyc = 0 if resident else weight_load_cycles(model, sparsity, alloc, params)
    mean_len = float(np.dot(uniq, weights))
    if load_cyc and alloc.weight_buffers >= 2:  # a wave of wave_tokens amortizes one load per layer
        per_seq = max(per_seq, load_cyc * dims["L"] * mean_len / alloc.wave_tokens)
    elif load_cyc:  # single-buffered: each stage also stalls for its own load once per (wave, layer)
        slowest = max(weight_load_cycles(model, sparsity, alloc, params, s) for s in MVU_STAGES)
        per_seq = max(per_seq + slowest * dims["L"] * mean_len / alloc.wave_tokens,
                      load_cyc * dims["L"] * mean_len / alloc.wave_tokens)
    macs = float(sum(w * model_ops(model, int(n), sparsity)["totals"]["dsp_macs"] for n, w in zip(uniq, weights)))
    thr = clk * 1e6 / per_seq
    peak = int8_peak_macs(board, clk)
    stages = {}
    for i, s in enumerate(STAGES):
        if s == "select":
            stages[s] = {"lanes": alloc.select_lanes if selecting else 0, "dsp": 0,
                         "expected_cycles": float(exp[i])}
        else:
            lanes = alloc.pe[s] * alloc.simd[s]
            stages[s] = {"pe": alloc.pe[s], "simd": alloc.simd[s],
                         "dsp": math.ceil(lanes / 2) if board.dsp_type == "DSP48E2" else lanes,
                         "expected_cycles": float(exp[i])}
    return {
        "board": board.name, "part": board.part, "flow": board.flow, "platform": board.platform,
        "clock_MHz": clk, "weights": "resident" if resident else "streamed",
        "allocation": alloc.to_dict(), "stages": stages,
        "resources": {"used": used, "cap": cap, "memory_cap": float(memory_cap),
                      "available": {"dsp": board.dsp, "lut": board.lut, "bram_36k": board.bram_36k,
                                    "uram": board.uram, "onchip_bytes": int(onchip)}},
        "lengths": {"count": int(lens.size), "mean": mean_len, "p50": float(np.percentile(lens, 50)),
                    "p90": float(np.percentile(lens, 90)), "max": int(lens.max())},
        "max_tokens": max_tokens, "weight_load_cycles": int(load_cyc),
        "estimate": {"bottleneck_stage": STAGES[bott_i], "cycles_per_sequence": per_seq,
                     "throughput_seq_s": thr, "useful_macs_s": macs * thr,
                     "efficiency_vs_peak": macs * thr / peak},
        "peak_int8_macs": peak,
        "refinement": refinement,
        "weight_buffers": 0 if resident else alloc.weight_buffers,
    }


def _refine(model, sparsity, alloc: Allocation, lens: np.ndarray, params: CostParams, fits, selecting: bool,
            waves: Mapping[int, int]):
    """Step 4: simulate weight bufferings (``waves``: buffers -> wave tokens) x select-lane multiples (with
    top-k) on a seeded sample of ``lens`` (arrival order kept) and keep the best simulated utilization ->
    ``(allocation, {"sequences", "tried" [{weight_buffers, wave_tokens, lanes, utilization}], "lanes",
    "weight_buffers", "wave_tokens"})``. Candidates run in order of preference (double buffering first,
    fewer lanes first); a later one is kept only when it beats the best so far by ``REFINE_MARGIN``."""
    rng = np.random.default_rng(0)
    sample = lens if lens.size <= REFINE_SEQUENCES else lens[np.sort(rng.choice(lens.size, REFINE_SEQUENCES,
                                                                                    replace=False))]
    base = alloc.select_lanes
    lane_opts = sorted({max(1, int(math.ceil(base * f))) for f in REFINE_LANES}) if selecting else [base]
    tried, best = [], None
    for nbuf, wave in waves.items():
        for lanes in lane_opts:
            trial = Allocation.from_dict(alloc.to_dict())
            trial.select_lanes, trial.weight_buffers, trial.wave_tokens = lanes, nbuf, wave
            if lanes != base and not fits(trial):
                continue
            res = run_method("padless", model, sample, sparsity, trial, params)
            util = metrics(res, sample, 0.0, alloc.clock_MHz, 1.0)["utilization"]
            tried.append({"weight_buffers": nbuf, "wave_tokens": wave, "lanes": lanes, "utilization": util})
            if best is None or util > best[0] + REFINE_MARGIN:
                best = (util, trial)
    a = best[1]
    return a, {"sequences": int(sample.size), "tried": tried, "lanes": a.select_lanes,
               "weight_buffers": a.weight_buffers, "wave_tokens": a.wave_tokens}
