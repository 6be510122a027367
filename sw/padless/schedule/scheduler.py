"""Length-aware scheduling of variable-length sequences on the layer engine, and its baselines.

Two levels (docs/performance-model.md, section "Scheduling"):

* :func:`flow_shop_starts` -- the permutation flow shop the RTL length dispatcher (hw/rtl) implements
  in hardware: each stage processes one job at a time in a fixed order. The dispatcher is checked cycle
  for cycle against this function.
* :func:`simulate` -- the host-side length-aware coarse-grained dynamic pipeline (Peng et al., DAC 2022,
  section 4.2, Fig. 5), simulated event by event on the cycle model of :mod:`padless.schedule.cost`,
  and the baselines a user would otherwise pick (pad to the maximum, pad to each batch's maximum, sort
  into length buckets), all on the same engine so the figures compare.

The dynamic pipeline (our design of the procedure the paper does not spell out):

1. *Grouping.* Sequences are grouped into waves whose real (unpadded) token count fits the engine's
   activation buffers (``wave_tokens``); a wave is the unit of weight streaming. Streamed weights: waves
   are packed first fit in arrival order (one weight load per (wave, layer) and a wave's sequences are
   what the stages can overlap, so full waves matter); resident weights: dealt by decreasing length to
   the wave with the least quadratic work (every wave keeps the input's length mix). The optional spill
   engine (``Allocation.spill``) runs one weight pass per layer for the whole input and bounds the
   working set with a token pool instead.
2. *Jobs.* Each sequence is a chain of ``L x 6`` operators (layer l, stage s). The row-wise stages
   (qkv, out, ffn_up, ffn_down) run in row tiles of ``row_tile`` rows, as the generated HLS kernel does
   (one job per (sequence, layer, stage, tile)); select and attn need all of a sequence's K/V and run
   one job per head group (the kernel's head loop). Precedence: tile i of a row-wise operator waits for
   tile i of the row-wise operator before it (out -> ffn_up -> ffn_down -> next layer's qkv); each
   select head waits for every qkv tile of its sequence, attn head i for select head i, every out tile
   for every attn head. When weights are streamed, one load
   operator per (wave, layer, MVU stage) runs on the m_axi loader into ``Allocation.weight_buffers``
   buffers: double-buffered, the load of pass q waits for every job of pass q-2 at that stage to finish
   (its buffer is reused); single-buffered, for pass q-1 (the stage stalls for the load).
3. *Priority.* The critical-path priority of ALGORITHMS.md section 1,
   ``P(v, s_avg) = W(v, s_avg) + max_succ P(v_j, s_avg)``, W the operator's cycles at the mean length of
   the input; for a chain it is the work left from v to the sink. Ties go to the sequence with more
   work left at its own length (longest remaining first), then to arrival order, then to the lower tile.
4. *Dispatch.* List scheduling, event by event: whenever a stage is free and jobs are ready (their
   predecessors done, their layer's weights loaded), the stage starts the ready job of the earliest
   wave with the highest priority. No stage is ever idle while a ready job waits for it.

Baselines use the same tiled engine and dispatcher with first-in-first-out priority (arrival order,
then layer, then stage, then tile) and padded lengths: the padded tokens cost cycles but do no useful work.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .cost import (MVU_STAGES, ROW_STAGES, STAGES, Allocation, CostParams, pass_tokens_many, sequence_cycles_many,
                   spill_io_cycles, tile_cycles_many, weight_load_cycles)

__all__ = ["flow_shop_starts", "simulate", "SimResult", "METHODS", "BASELINES", "make_waves",
           "run_method", "compare"]

_WAVE_ORDER = {True: "dealt", False: "ff"}
_SPILL_POLICY = "critical_path_arrival"
BASELINES = ("padded_max", "padded_batch", "bucketed")
METHODS = ("padless",) + BASELINES


def flow_shop_starts(latencies, order: Sequence[int] | None = None, handoff_cycles: int = 0) -> np.ndarray:
    """Start cycles of a permutation flow shop.

    Each stage processes one job at a time, jobs in ``order``; job ``j`` starts stage ``s`` at
    ``max(finish(j, s - 1), finish(prev, s)) + handoff_cycles``, ``prev`` the job before ``j`` in
    ``order``, ``finish(j, s) = start(j, s) + latencies[j, s]``; the first job starts stage 0 at
    ``handoff_cycles``. This is exactly what the RTL length dispatcher does (one descriptor queue,
    per-stage start/done handshakes).

    Args:
        latencies: ``(jobs, stages)`` non-negative integer cycles.
        order: permutation of ``range(jobs)``; default ``0..jobs-1``.
        handoff_cycles: cycles between a stage's done and the next start it enables (>= 0).

    Returns:
        ``(jobs, stages)`` int64 start cycles, indexed by job (not by position in ``order``).

    Raises:
        InputError: latencies not 2-D non-negative integers, ``order`` not a permutation, negative handoff.
    """
    lat = np.asarray(latencies)
    if lat.ndim != 2:
        raise InputError(f"latencies must be (jobs, stages), got shape {lat.shape}")
    if lat.size and (not np.issubdtype(lat.dtype, np.integer) or lat.min() < 0):
        raise InputError("latencies must be non-negative integer cycles")
    lat = lat.astype(np.int64)
    jobs, stages = lat.shape
    order = list(range(jobs)) if order is None else [int(j) for j in order]
    if sorted(order) != list(range(jobs)):
        raise InputError(f"order must be a permutation of 0..{jobs - 1}")
    if int(handoff_cycles) < 0:
        raise InputError("handoff_cycles must be >= 0")
    hand = int(handoff_cycles)
    starts = np.zeros((jobs, stages), dtype=np.int64)
    stage_free = np.zeros(stages, dtype=np.int64)  # finish of the previous job at each stage
    for j in order:
        ready = 0  # finish of job j at the previous stage
        for s in range(stages):
            t = max(ready, int(stage_free[s])) + hand
            starts[j, s] = t
            ready = t + int(lat[j, s])
            stage_free[s] = ready
    return starts


@dataclass
class SimResult:
    """Outcome of one simulated run.

    Attributes:
        starts: ``(B, L, S)`` int64 start cycle of every (sequence, layer, stage) operator -- of its first
            row tile when tiled (-1: skipped, zero-length operator).
        durations: ``(B, L, S)`` busy cycles of the operators, summed over their tiles (padded lengths
            for baselines).
        useful: ``(B, L, S)`` cycles the same operators take at the real lengths.
        makespan: cycles from the first start to the last finish.
        load_starts: ``[(wave, layer, stage, start, duration)]`` of weight loads (streamed weights).
        waves: sequence indices of each wave, in order.
        segments: ``(jobs, 6)`` int64 rows ``(sequence, layer, stage, tile, start, duration)``, one per
            job the stages ran (a row tile, or a head group of select / attn), in start order.
        pool_peak: most working-set tokens held at once (0 without a pool).
    """

    starts: np.ndarray
    durations: np.ndarray
    useful: np.ndarray
    makespan: int
    load_starts: list = field(default_factory=list)
    waves: list = field(default_factory=list)
    segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), dtype=np.int64))
    pool_peak: int = 0

    def stage_busy(self) -> np.ndarray:
        """``(S,)`` busy cycles of each stage (padding included)."""
        return self.durations.sum(axis=(0, 1))

    def stage_useful(self) -> np.ndarray:
        """``(S,)`` cycles of each stage spent on real tokens."""
        return self.useful.sum(axis=(0, 1))


def simulate(durations: np.ndarray, waves: Sequence[Sequence[int]], policy: str = "critical_path",
             useful: np.ndarray | None = None, load_cycles: Mapping[int, int] | int = 0,
             avg_cycles: np.ndarray | None = None, whole_sequence_stages: Sequence[int] = (),
             pool_tokens: int = 0, window_tokens: np.ndarray | None = None, weight_buffers: int = 2) -> SimResult:
    """Event-by-event list scheduling of ``B`` operator chains on ``S`` stages (+ a weight loader).

    Jobs and precedence (docs/performance-model.md, "Scheduling"): operator ``(j, l, s)`` of sequence ``j``
    is split into its row tiles (4-D ``durations``) unless ``s`` is in ``whole_sequence_stages`` (then it
    is one job, tile 0). Consecutive existing operators ``a -> b`` of a sequence (in (layer, stage)
    order) are linked tile to tile (tile ``i`` of ``b`` waits for tile ``i`` of ``a``) when both are
    row-wise with the same number of tiles, else by a barrier (every job of ``b`` waits for every job of
    ``a``): attention waits for all of its QKV tiles, the out tiles for attention.

    Args:
        durations: ``(B, L, S)`` int cycles of each operator, or ``(B, L, S, T)`` cycles of each row tile
            (a pass's tiles are a prefix of the last axis; the rest 0); 0 = does not exist (skipped).
        waves: partition of ``range(B)`` into waves, in processing order; within a wave, arrival order.
        policy: ``"critical_path"`` (P(v, s_avg), then work left at the sequence's own length, then
            arrival, then tile) or ``"fifo"`` (arrival order, then layer, then stage, then tile).
        useful: ``(B, L, S)`` cycles at real lengths (default: ``durations`` summed over tiles).
        load_cycles: ``{stage index: cycles}`` to stream one layer's weights of that stage (an int: the
            same for every stage); empty / 0 = weights resident on chip.
        avg_cycles: ``(L, S)`` cycles at the mean length, for P(v, s_avg) (default: mean of durations).
        whole_sequence_stages: stage indices whose jobs need the whole sequence's K/V (select, attn): one
            job per head group, linked job to job among themselves, by a barrier to the row-wise stages.
        pool_tokens: on-chip working-set capacity in tokens (0: unbounded). A sequence's layer ``l`` holds
            ``window_tokens[j, l]`` of it from the dispatch of the first job of that layer's first operator
            until its last operator's last job finishes; a first job that does not fit waits (admission in
            priority order: only the best waiting first job may be admitted, so a long sequence is not
            starved by shorter ones; jobs of admitted windows are never held back).
        window_tokens: ``(B, L)`` tokens each (sequence, layer) window holds; required with ``pool_tokens``.
        weight_buffers: layer weight buffers per weight stage (streamed weights): 2 = double-buffered (the
            load of pass ``r`` waits for pass ``r - 2`` at that stage), 1 = single-buffered (it waits for
            every job of pass ``r - 1``: the stage stalls for each load).

    Returns:
        :class:`SimResult`.

    Raises:
        InputError: bad shapes, ``waves`` not a partition of the sequences, unknown ``policy``, tiles of a
            pass that are not a prefix, a window larger than ``pool_tokens``.
    """
    dur4 = np.asarray(durations, dtype=np.int64)
    if dur4.ndim == 3:
        dur4 = dur4[..., None]
    if dur4.ndim != 4:
        raise InputError(f"durations must be (sequences, layers, stages[, tiles]), got {dur4.shape}")
    if dur4.size and dur4.min() < 0:
        raise InputError("durations must be non-negative cycles")
    B, L, S, _T = dur4.shape
    dur = dur4.sum(axis=3)
    useful = dur if useful is None else np.asarray(useful, dtype=np.int64)
    seen = sorted(j for w in waves for j in w)
    if seen != list(range(B)):
        raise InputError("waves must partition the sequences 0..B-1, each exactly once")
    if policy not in ("critical_path", "critical_path_arrival", "fifo"):
        raise InputError(f"unknown policy {policy!r}")
    whole = {int(s) for s in whole_sequence_stages}
    pool = int(pool_tokens)
    nbuf = int(weight_buffers)
    if nbuf not in (1, 2):
        raise InputError(f"weight_buffers must be 1 or 2, got {weight_buffers!r}")
    win = np.zeros((B, L), dtype=np.int64)
    if pool:
        if window_tokens is None:
            raise InputError("pool_tokens needs window_tokens (tokens of every (sequence, layer) window)")
        win = np.asarray(window_tokens, dtype=np.int64)
        if win.shape != (B, L):
            raise InputError(f"window_tokens must be (sequences, layers) = {(B, L)}, got {win.shape}")
        if win.size and int(win.max()) > pool:
            raise InputError(f"a sequence needs {int(win.max())} tokens of working set; the engine holds {pool}")
    ntiles = (dur4 > 0).sum(axis=3)  # (B, L, S)
    if _T > 1:
        prefix = np.arange(_T)[None, None, None, :] < ntiles[..., None]
        if ((dur4 > 0) != prefix).any():
            raise InputError("the tiles of a pass must be a prefix of the tile axis (no zero-cycle tile inside)")

    # static priority P(v, s_avg): work left from (l, s) to the sink at the mean length
    avg = dur.mean(axis=0) if avg_cycles is None else np.asarray(avg_cycles, dtype=np.float64)
    p_static = np.cumsum(avg.reshape(-1)[::-1])[::-1].reshape(L, S)
    p_dyn = np.cumsum(dur.reshape(B, -1)[:, ::-1], axis=1)[:, ::-1].reshape(B, L, S)

    wave_of = np.empty(B, dtype=np.int64)
    pos_of = np.empty(B, dtype=np.int64)
    pos = 0
    for w, members in enumerate(waves):
        for j in members:
            wave_of[j] = w
            pos_of[j] = pos
            pos += 1

    # operator chains (existing operators only): ops[j][o] = (l, s, tiles), tile cycles in tdur[j][o]
    ops, tdur, linked, keys = [], [], [], []
    for j in range(B):
        oj = [(l, s, int(ntiles[j, l, s])) for l in range(L) for s in range(S) if dur[j, l, s] > 0]
        ops.append(oj)
        tdur.append([[int(c) for c in dur4[j, l, s, :n]] for l, s, n in oj])
        # linked[j][o]: op o -> o + 1 job to job (both row-wise or both whole-sequence, same job
        # count: row tile i -> row tile i, head group i -> head group i), else a barrier
        linked.append([(oj[o][1] in whole) == (oj[o + 1][1] in whole) and oj[o][2] == oj[o + 1][2]
                       for o in range(len(oj) - 1)])
        if policy == "fifo":
            keys.append([(int(wave_of[j]), int(pos_of[j]), l, s) for l, s, _ in oj])
        else:
            keys.append([(int(wave_of[j]), -float(p_static[l, s]),
                          0 if policy == "critical_path_arrival" else -int(p_dyn[j, l, s]), int(pos_of[j]))
                         for l, s, _ in oj])
    starts = np.full((B, L, S), -1, dtype=np.int64)
    # layer windows: the first and last operator of each (sequence, layer)
    first_op = [{} for _ in range(B)]
    last_op = [{} for _ in range(B)]
    for j in range(B):
        for o, (l, _, _) in enumerate(ops[j]):
            first_op[j].setdefault(l, o)
            last_op[j][l] = o
    admitted = np.zeros((B, L), dtype=bool)
    admit_q = [[] for _ in range(S)]  # first jobs of windows not yet admitted, per stage
    pool_free = pool
    pool_peak = 0

    # weight streaming: one load per (wave, layer, stage) for the stages that hold weights, issued in
    # (wave, layer, stage) order on one m_axi loader; stage s holds nbuf passes of weights, so the load
    # of its pass r = wave * L + layer waits until every job of its pass r - nbuf has finished.
    if isinstance(load_cycles, Mapping):
        load_map = {int(k): int(v) for k, v in load_cycles.items() if int(v) > 0}
    else:
        load_map = {s: int(load_cycles) for s in range(S)} if int(load_cycles) > 0 else {}
    streamed = bool(load_map)
    wstages = sorted(load_map)
    loads = [(w, l, s) for w in range(len(waves)) for l in range(L) for s in wstages] if streamed else []
    n_loads = len(loads)
    load_done = np.zeros((len(waves) * L, S), dtype=bool)
    remaining = np.zeros((len(waves) * L, S), dtype=np.int64)  # unfinished jobs of each pass
    waiting: dict[tuple, list] = {}  # (pass, stage) -> jobs blocked on that load
    if streamed:
        for j in range(B):
            for (l, s, n) in ops[j]:
                remaining[wave_of[j] * L + l, s] += n

    ready = [[] for _ in range(S)]
    unit_busy = [False] * S
    events: list = []  # (time, kind, payload): kind 0 load done, 1 job done
    left = [[n for _, _, n in oj] for oj in ops]  # unfinished tiles of each operator
    done_ops = [0] * B
    loader_q = 0  # next load to start
    loader_busy = False
    load_log = []
    seg = []

    def enqueue(j: int, o: int, i: int) -> None:
        l, s, _ = ops[j][o]
        if pool and not admitted[j, l] and first_op[j][l] == o:
            heapq.heappush(admit_q[s], (keys[j][o], i, j, o))
        else:
            heapq.heappush(ready[s], (keys[j][o], i, j, o))

    def make_ready(j: int, o: int, i: int) -> None:
        l, s, _ = ops[j][o]
        if s in load_map:
            r = wave_of[j] * L + l
            if not load_done[r, s]:
                waiting.setdefault((r, s), []).append((j, o, i))
                return
        enqueue(j, o, i)

    def load_allowed(q: int) -> bool:
        if q >= n_loads:
            return False
        w, l, s = loads[q]
        r = w * L + l
        return r < nbuf or remaining[r - nbuf, s] == 0

    for j in range(B):
        if ops[j]:
            for i in range(ops[j][0][2]):
                make_ready(j, 0, i)
    now = 0
    while True:
        # start the loader
        if streamed and not loader_busy and load_allowed(loader_q):
            loader_busy = True
            w, l, s = loads[loader_q]
            heapq.heappush(events, (now + load_map[s], 0, loader_q))
            load_log.append((w, l, s, now, load_map[s]))
        # dispatch every free stage
        for s in range(S):
            if unit_busy[s]:
                continue
            q = admit_q[s]
            while q and admitted[q[0][2], ops[q[0][2]][q[0][3]][0]]:  # its window was admitted meanwhile
                heapq.heappush(ready[s], heapq.heappop(q))
            if q and win[q[0][2], ops[q[0][2]][q[0][3]][0]] <= pool_free and (not ready[s] or q[0] < ready[s][0]):
                _, i, j, o = heapq.heappop(q)
                l = ops[j][o][0]
                admitted[j, l] = True
                pool_free -= int(win[j, l])
                pool_peak = max(pool_peak, pool - pool_free)
            elif ready[s]:
                _, i, j, o = heapq.heappop(ready[s])
                l = ops[j][o][0]
            else:
                continue
            if starts[j, l, s] < 0:
                starts[j, l, s] = now
            c = tdur[j][o][i]
            seg.append((j, l, s, i, now, c))
            unit_busy[s] = True
            heapq.heappush(events, (now + c, 1, (j, o, i)))
        if not events:
            break
        now = events[0][0]
        while events and events[0][0] == now:
            _, kind, payload = heapq.heappop(events)
            if kind == 0:
                w, l, s = loads[payload]
                r = w * L + l
                load_done[r, s] = True
                loader_busy = False
                loader_q += 1
                for (j, o, i) in waiting.pop((r, s), []):
                    enqueue(j, o, i)
            else:
                j, o, i = payload
                l, s, _ = ops[j][o]
                unit_busy[s] = False
                if streamed:
                    remaining[wave_of[j] * L + l, s] -= 1
                left[j][o] -= 1
                if left[j][o] == 0:
                    done_ops[j] += 1
                    if pool and last_op[j][l] == o:
                        pool_free += int(win[j, l])
                if o + 1 < len(ops[j]):
                    if linked[j][o]:
                        make_ready(j, o + 1, i)
                    elif left[j][o] == 0:
                        for i2 in range(ops[j][o + 1][2]):
                            make_ready(j, o + 1, i2)
    if any(done_ops[j] < len(ops[j]) for j in range(B)):
        raise RuntimeError("simulation ended with unscheduled operators (dependency cycle)")
    segments = np.asarray(seg, dtype=np.int64).reshape(-1, 6)
    finish = int((segments[:, 4] + segments[:, 5]).max(initial=0)) if len(segments) else 0
    makespan = int(max(finish, max((a + d for _, _, _, a, d in load_log), default=0)))
    return SimResult(starts=starts, durations=np.where(starts >= 0, dur, 0), useful=np.where(starts >= 0, useful, 0),
                     makespan=makespan, load_starts=load_log, waves=[list(w) for w in waves], segments=segments,
                     pool_peak=int(pool_peak))


def make_waves(tokens: Sequence[int], wave_tokens: int, max_sequences: int | None = None,
               order: str = "arrival") -> list[list[int]]:
    """Group sequences into waves of at most ``wave_tokens`` tokens (and ``max_sequences`` sequences);
    ``tokens`` are the tokens each sequence occupies (padded for baselines).

    ``order="arrival"``: greedy consecutive grouping in arrival order (a wave closes when the next
    sequence does not fit). ``order="ff"``: first-fit bin packing (Johnson 1974) in arrival order: each
    sequence goes into the first wave with room for it, so later short sequences fill the gaps the
    long ones left and waves fill to the token budget while keeping the input's length mix.
    ``order="ffd"``: first-fit decreasing (sequences by decreasing length, ties: arrival): the fullest
    waves, but the long sequences end up together in the first waves. In both bin packings each wave
    lists its members in arrival order, waves ordered by their first member.

    Raises:
        InputError: a single sequence needs more than ``wave_tokens``; an unknown ``order``.
    """
    toks = [int(t) for t in tokens]
    for j, t in enumerate(toks):
        if t > wave_tokens:
            raise InputError(f"sequence {j} needs {t} tokens of activation buffer; the engine holds "
                             f"{wave_tokens}. Re-plan with longer lengths (padless compile) or truncate.")
    if order == "dealt":
        n_waves = max(1, -(-sum(toks) // int(wave_tokens)))
        bins = [[] for _ in range(n_waves)]
        free = [int(wave_tokens)] * n_waves
        quad = [0] * n_waves
        for j in sorted(range(len(toks)), key=lambda j: (-toks[j], j)):
            fits = [b for b in range(len(bins)) if toks[j] <= free[b]
                    and not (max_sequences and len(bins[b]) >= max_sequences)]
            if not fits:
                bins.append([])
                free.append(int(wave_tokens))
                quad.append(0)
                fits = [len(bins) - 1]
            b = min(fits, key=lambda b: (quad[b], -free[b], b))
            bins[b].append(j)
            free[b] -= toks[j]
            quad[b] += toks[j] * toks[j]
        return sorted((sorted(b) for b in bins if b), key=lambda b: b[0])
    if order in ("ffd", "ff"):
        bins: list[list[int]] = []
        free: list[int] = []
        for j in (sorted(range(len(toks)), key=lambda j: (-toks[j], j)) if order == "ffd" else range(len(toks))):
            for b, f in enumerate(free):
                if toks[j] <= f and not (max_sequences and len(bins[b]) >= max_sequences):
                    bins[b].append(j)
                    free[b] -= toks[j]
                    break
            else:
                bins.append([j])
                free.append(wave_tokens - toks[j])
        return sorted((sorted(b) for b in bins), key=lambda b: b[0])
    if order != "arrival":
        raise InputError(f"unknown wave order {order!r}; choose 'arrival', 'ff', 'ffd' or 'dealt'")
    waves, cur, used = [], [], 0
    for j, t in enumerate(toks):
        if cur and (used + t > wave_tokens or (max_sequences and len(cur) >= max_sequences)):
            waves.append(cur)
            cur, used = [], 0
        cur.append(j)
        used += t
    if cur:
        waves.append(cur)
    return waves


def _bucket_bounds(max_len: int) -> list[int]:
    bounds, b = [], 16
    while b < max_len:
        bounds.append(b)
        b *= 2
    bounds.append(max_len)
    return bounds


def run_method(method: str, model: Mapping[str, Any], lengths: Sequence[int], sparsity: Mapping[str, Any] | None,
               alloc: Allocation, params: CostParams = CostParams(), batch_size: int = 32,
               pad_to: int | None = None) -> SimResult:
    """Simulate ``method`` (one of :data:`METHODS`) on ``lengths`` with the cycle model.

    * ``padless``: no padding; waves of real tokens <= ``alloc.wave_tokens`` (first fit in arrival order when
      weights are streamed, dealt by length when resident; one wave and a working-set pool with
      ``alloc.spill``); critical-path priority (ties by arrival with ``alloc.spill``).
    * ``padded_max``: every sequence padded to ``pad_to`` (default: the longest in ``lengths``);
      batches of ``batch_size`` in arrival order; FIFO.
    * ``padded_batch``: batches of ``batch_size`` in arrival order, each padded to its longest; FIFO.
    * ``bucketed``: sequences sorted (stably) into length buckets (16, 32, 64, ... up to the longest),
      batches of ``batch_size`` inside a bucket, each padded to its longest; FIFO.

    Batches of the baselines are also capped by ``alloc.wave_tokens`` padded tokens. Every method runs on
    the same tiled engine: row-wise stages in tiles of ``alloc.row_tile`` rows, select and attn once per
    sequence (:func:`padless.schedule.cost.tile_cycles_many`); padded tokens make more and fuller tiles.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lengths.size == 0:
        raise InputError("no sequences to schedule")
    if lengths.min() < 1:
        raise InputError("every sequence needs at least one token")
    real = sequence_cycles_many(model, lengths, sparsity, alloc, params)
    whole = tuple(i for i, s in enumerate(STAGES) if s not in ROW_STAGES)
    load = {} if alloc.resident else {STAGES.index(s): weight_load_cycles(model, sparsity, alloc, params, s)
                                      for s in MVU_STAGES}
    avg_n = max(1, int(round(float(lengths.mean()))))
    spill = bool(getattr(alloc, "spill", False))

    def engine(tokens):
        """Job cycles of sequences occupying ``tokens`` (padded for baselines), with the spill engine's
        activation reads (before each qkv tile) and writes (after each ffn_down tile) as stall cycles,
        and the pool arguments of :func:`simulate`."""
        tiles = tile_cycles_many(model, tokens, sparsity, alloc, params)
        if not spill:
            return tiles, {}
        win = pass_tokens_many(model, tokens, sparsity)
        tile = int(alloc.row_tile or 0)
        ntile = tiles.shape[3]
        rows = (np.clip(win[..., None] - tile * np.arange(ntile), 0, tile) if tile
                else np.pad(win[..., None], ((0, 0), (0, 0), (0, ntile - 1))))
        io = spill_io_cycles(model, rows, alloc, params)
        for st in ("qkv", "ffn_down"):
            si = STAGES.index(st)
            tiles[:, :, si] += np.where(tiles[:, :, si] > 0, io, 0)
        return tiles, {"pool_tokens": int(alloc.wave_tokens), "window_tokens": win}

    if method == "padless":
        avg = sequence_cycles_many(model, [avg_n], sparsity, alloc, params)[0]
        if spill:  # layer-major: one weight pass per layer for the whole input, arrival order
            waves = [list(range(len(lengths)))]
        else:
            # streamed weights: one load per (wave, layer), so fill every wave to the token budget
            # (first fit in arrival order); resident weights: waves dealt by length so each holds the
            # input's mix (the waves only order the work)
            waves = make_waves(lengths, alloc.wave_tokens, order=_WAVE_ORDER[alloc.resident])
        tiles, pool = engine(lengths)
        return simulate(tiles, waves, _SPILL_POLICY if spill else "critical_path", useful=real, load_cycles=load, avg_cycles=avg,
                        whole_sequence_stages=whole, weight_buffers=alloc.weight_buffers, **pool)
    if method not in BASELINES:
        raise InputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    B = len(lengths)
    if method == "padded_max":
        target = int(pad_to or lengths.max())
        if target < lengths.max():
            raise InputError(f"pad_to {target} is shorter than the longest sequence {int(lengths.max())}")
        order = list(range(B))
        padded = np.full(B, target, dtype=np.int64)
        waves = make_waves(padded, alloc.wave_tokens, batch_size)
    else:
        if method == "bucketed":
            bounds = _bucket_bounds(int(lengths.max()))
            bucket = np.searchsorted(bounds, lengths, side="left")
            order = [int(j) for j in np.argsort(bucket, kind="stable")]
        else:
            order = list(range(B))
        padded = np.zeros(B, dtype=np.int64)
        waves, cur = [], []

        def close(batch):
            mx = max(int(lengths[j]) for j in batch)
            for j in batch:
                padded[j] = mx
            waves.append(batch)

        for j in order:
            trial = cur + [j]
            mx = max(int(lengths[i]) for i in trial)
            same_bucket = method != "bucketed" or not cur or bucket[cur[0]] == bucket[j]
            if cur and (len(trial) > batch_size or mx * len(trial) > alloc.wave_tokens or not same_bucket):
                close(cur)
                cur = [j]
            else:
                cur = trial
        if cur:
            close(cur)
        if int(padded.max()) > alloc.wave_tokens:
            raise InputError(f"a sequence of {int(padded.max())} tokens exceeds the engine's "
                             f"{alloc.wave_tokens}-token activation buffer")
    dur, pool = engine(padded)
    if spill:  # the same layer-major engine: one weight pass per layer, batches in order (FIFO)
        waves = [[j for w in waves for j in w]]
    # waves index sequences by their arrival index; the FIFO key uses position inside the wave order
    return simulate(dur, waves, "fifo", useful=real, load_cycles=load, whole_sequence_stages=whole,
                    weight_buffers=alloc.weight_buffers, **pool)


def metrics(result: SimResult, lengths: Sequence[int], useful_macs: float, clock_MHz: float,
            peak_macs: float) -> dict:
    """Figures of one run.

    ``utilization`` = useful busy stage-cycles / (active stages x makespan) (padding cycles count as
    bubbles); ``bubble_fraction`` = 1 - utilization, split into ``padding_fraction`` and
    ``idle_fraction``; throughputs over makespan / f_clk; ``efficiency_vs_peak`` = useful MAC/s over
    the board's INT8 peak; ``stage_utilization`` per stage.
    """
    active = result.durations.sum(axis=(0, 1)) > 0
    n_active = max(1, int(active.sum()))
    span = max(1, result.makespan)
    busy = result.stage_busy()
    use = result.stage_useful()
    seconds = span / (clock_MHz * 1e6)
    util = float(use.sum()) / (n_active * span)
    idle = 1.0 - float(busy.sum()) / (n_active * span)
    B = len(lengths)
    return {
        "sequences": B,
        "tokens": int(np.sum(lengths)),
        "makespan_cycles": int(result.makespan),
        "seconds": seconds,
        "utilization": util,
        "bubble_fraction": 1.0 - util,
        "padding_fraction": max(0.0, 1.0 - util - idle),
        "idle_fraction": idle,
        "throughput_seq_s": B / seconds,
        "throughput_tokens_s": float(np.sum(lengths)) / seconds,
        "useful_macs_s": useful_macs / seconds,
        "efficiency_vs_peak": useful_macs / seconds / peak_macs,
        "stage_utilization": {STAGES[s]: float(use[s]) / span for s in range(len(STAGES)) if active[s]},
        "waves": len(result.waves),
    }


def compare(model: Mapping[str, Any], lengths: Sequence[int], sparsity: Mapping[str, Any] | None,
            alloc: Allocation, peak_macs: float, params: CostParams = CostParams(), batch_size: int = 32,
            pad_to: int | None = None, keep_results: bool = False) -> dict:
    """Run padless and every baseline on the same lengths; the ``padless schedule --json`` object.

    Returns ``{utilization, bubble_fraction, throughput_seq_s, throughput_tokens_s, efficiency_vs_peak,
    ..., speedup_vs: {baseline: x}, baselines: {name: {same keys}}}`` (plus ``_results`` with the
    :class:`SimResult` of each method when ``keep_results``).
    """
    from ..opcount import model_ops

    lengths = [int(n) for n in lengths]
    macs = {}
    for n in set(lengths):
        macs[n] = model_ops(model, n, sparsity)["totals"]["dsp_macs"]
    useful_macs = float(sum(macs[n] for n in lengths))
    results, figs = {}, {}
    for m in METHODS:
        results[m] = run_method(m, model, lengths, sparsity, alloc, params, batch_size, pad_to)
        figs[m] = metrics(results[m], lengths, useful_macs, alloc.clock_MHz, peak_macs)
    out = dict(figs["padless"])
    out["speedup_vs"] = {b: figs["padless"]["throughput_seq_s"] / figs[b]["throughput_seq_s"] for b in BASELINES}
    out["baselines"] = {}
    for b in BASELINES:
        fb = dict(figs[b])
        fb["speedup_vs"] = {o: fb["throughput_seq_s"] / figs[o]["throughput_seq_s"] for o in METHODS if o != b}
        out["baselines"][b] = fb
    if keep_results:
        out["_results"] = results
    return out
