"""Length-aware scheduling of variable-length sequences on the generated engine, and its baselines.

Two levels (docs/performance-model.md, "Scheduling"):

* :func:`flow_shop_starts` -- the permutation flow shop the RTL length dispatcher (hw/rtl) implements in
  hardware: each stage processes one job at a time in a fixed order. The dispatcher is checked cycle for
  cycle against this function.
* :func:`engine_order` -- the order in which the host lists a call's sequences in the kernel's
  descriptors (the engine runs them in that order: the kernel's processes are a flow shop with two-block
  buffers, :mod:`padless.schedule.cost`). Padless never pads; what it can choose is the order. Johnson's
  rule (Johnson 1954, optimal for two machines) on two aggregated machines -- the front of the layer
  (qkv MVU + selection) and its back (attention + the row-wise tail) -- puts sequences whose front work
  is smaller than their back work first, in increasing front work, then the rest in decreasing back work,
  so that a long sequence's quadratic selection overlaps the matrix work of short ones. The DAC 2022
  paper's critical-path priority (ALGORITHMS.md section 1) reduces to the same idea on a chain.
* :func:`compare` -- padless (no padding, the length-aware order) against the same kernel fed padded
  sequences: padded to the longest of the input (``padded_max``), to each batch's longest
  (``padded_batch``), or to a compile-time length (``padded_fixed``, how FINN-based flows such as
  Brainsmith and hls4ml run attention today: 128 unless ``fixed_length`` says otherwise).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .cost import cut_calls, stream_cycles
from .engine import EngineConfig, process_cycles, useful_macs

__all__ = ["flow_shop_starts", "engine_order", "compare", "BASELINES", "METHODS", "padded_lengths",
           "DEFAULT_FIXED_LENGTH", "resolve_fixed_length"]

BASELINES = ("padded_max", "padded_batch", "padded_fixed")
METHODS = ("padless",) + BASELINES
#: Compile-time sequence length of the fixed-length baseline.
DEFAULT_FIXED_LENGTH = 128


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


def _front_back(cfg: EngineConfig, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(lengths, return_inverse=True)
    rows = [process_cycles(cfg, int(t)) for t in uniq]
    front = np.asarray([r["p_qkv"] + r["p_select"] for r in rows], dtype=np.float64)[inv]
    back = np.asarray([max(r["p_attn_qk"], r["p_attn_exp"], r["p_attn_pv"]) +
                       max(r["p_out"], r["p_up"], r["p_down"]) for r in rows], dtype=np.float64)[inv]
    return front, back


def engine_order(lengths, cfg: EngineConfig | None = None, method: str = "johnson") -> np.ndarray:
    """The order (indices into ``lengths``) in which the engine runs one call's sequences.

    ``method``: ``"johnson"`` (default; needs ``cfg``: Johnson's rule on the (front, back) cycles of each
    sequence, module docstring), ``"arrival"`` (input order), ``"longest"`` (decreasing length). Without
    ``cfg`` the order is the arrival order. Raises InputError for an unknown method.
    """
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if method == "arrival" or (cfg is None and method == "johnson"):
        return np.arange(lens.size, dtype=np.int64)
    if method == "longest":
        return np.argsort(-lens, kind="stable").astype(np.int64)
    if method != "johnson":
        raise InputError(f"unknown order method {method!r}: use johnson, arrival or longest")
    front, back = _front_back(cfg, lens)
    idx = np.arange(lens.size)
    first = idx[front < back]
    rest = idx[front >= back]
    first = first[np.argsort(front[first], kind="stable")]
    rest = rest[np.argsort(-back[rest], kind="stable")]
    return np.concatenate([first, rest]).astype(np.int64)


def resolve_fixed_length(fixed_length: int | None, lengths: Sequence[int], max_seq: int | None = None) -> int:
    """The compile-time length (tokens) of the ``padded_fixed`` baseline that ``padless profile`` /
    ``schedule`` / ``report`` run and label.

    None (the default): :data:`DEFAULT_FIXED_LENGTH` (128, FINN-style flows), capped at the kernel's
    ``max_seq`` and raised to the longest sequence (a fixed-length design must hold every input). A given
    value is checked instead of clamped: the baseline is labelled with the length it really ran.

    Raises:
        InputError: ``fixed_length`` shorter than the longest sequence (a fixed-length design could not
            run it) or longer than ``max_seq`` (the baseline runs on the same kernel).
    """
    longest = max(int(x) for x in lengths)
    if fixed_length is None:
        fl = DEFAULT_FIXED_LENGTH if max_seq is None else min(DEFAULT_FIXED_LENGTH, int(max_seq))
        return max(fl, longest)
    fl = int(fixed_length)
    if fl < longest:
        raise InputError(f"--fixed-length {fl} is shorter than the longest sequence ({longest} tokens): a "
                         f"fixed-length design could not run it; give at least {longest}, or leave the option out")
    if max_seq is not None and fl > int(max_seq):
        raise InputError(f"--fixed-length {fl} is longer than the kernel's maximum of {int(max_seq)} tokens (the "
                         f"padded_fixed baseline runs on the same kernel); give at most {int(max_seq)}")
    return fl


def padded_lengths(lengths: Sequence[int], method: str, batch_size: int = 32,
                   fixed_length: int = DEFAULT_FIXED_LENGTH) -> list[int]:
    """The lengths a padded baseline runs: every sequence padded to the input's longest (``padded_max``),
    to its batch's longest (``padded_batch``, batches of ``batch_size`` in arrival order), or to
    ``fixed_length`` (``padded_fixed``; a longer sequence runs at its own length)."""
    lens = [int(x) for x in lengths]
    if method == "padded_max":
        m = max(lens)
        return [m] * len(lens)
    if method == "padded_batch":
        out = []
        for i in range(0, len(lens), batch_size):
            b = lens[i:i + batch_size]
            out += [max(b)] * len(b)
        return out
    if method == "padded_fixed":
        return [max(int(fixed_length), n) for n in lens]
    raise InputError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")


def figures(cfg: EngineConfig, run_lengths: Sequence[int], real_lengths: Sequence[int], peak_macs: float,
            max_tokens: int | None = None, keep_intervals: bool = False,
            calls: Sequence[Sequence[int]] | None = None) -> dict:
    """Modeled figures of running ``run_lengths`` (padded or not, in order; grouped into ``calls`` when
    given) for the sequences of ``real_lengths``: cycles, seconds, throughputs, useful MAC/s, efficiency
    against the peak, each process's busy fraction of the makespan."""
    ct = stream_cycles(cfg, run_lengths, max_tokens, keep_intervals, calls=calls)
    sec = ct.cycles / (cfg.clock_MHz * 1e6)
    macs = float(sum(useful_macs(cfg, int(t)) for t in real_lengths))
    out = {"sequences": len(real_lengths), "tokens": int(np.sum(real_lengths)),
           "padded_tokens": int(np.sum(run_lengths)) - int(np.sum(real_lengths)), "cycles": int(ct.cycles),
           "seconds": sec, "throughput_seq_s": len(real_lengths) / sec,
           "throughput_tokens_s": float(np.sum(real_lengths)) / sec, "useful_macs_s": macs / sec,
           "efficiency_vs_peak": macs / sec / peak_macs,
           "stage_busy": {p: v / max(1, ct.cycles) for p, v in ct.busy.items()}}
    if keep_intervals:
        out["_intervals"] = ct.intervals
    return out


def host_calls(cfg: EngineConfig, lengths: Sequence[int], max_tokens: int | None = None,
               order: str = "johnson") -> list[list[int]]:
    """The host's kernel calls for ``lengths`` (tokens, arrival order): cut into calls of at most
    ``max_tokens`` rows (default the kernel's ``max_tokens``), each call's sequences in the scheduler's
    :func:`engine_order` -- what :class:`padless.runtime.Accelerator` sends. Returns one list of lengths per call."""
    out = []
    for call in cut_calls(lengths, int(max_tokens or cfg.max_tokens)):
        o = engine_order(call, cfg, order)
        out.append([call[i] for i in o])
    return out


def compare(cfg: EngineConfig, lengths: Sequence[int], peak_macs: float, batch_size: int = 32,
            fixed_length: int = DEFAULT_FIXED_LENGTH, max_tokens: int | None = None, order: str = "johnson",
            keep_intervals: bool = False) -> dict:
    """padless and every baseline on the same lengths (modeled); the ``padless schedule --json`` object:
    padless's :func:`figures` plus ``speedup_vs`` {baseline: x} and ``baselines`` {name: figures}.

    The input is cut into calls of at most ``max_tokens`` rows in arrival order; padless runs each call in
    its :func:`engine_order`."""
    lens = [int(n) for n in lengths]
    if not lens:
        raise InputError("no sequences to schedule")
    cap = int(max_tokens or cfg.max_tokens)
    calls = host_calls(cfg, lens, cap, order)
    run = [n for c in calls for n in c]
    out = figures(cfg, run, lens, peak_macs, cap, keep_intervals, calls=calls)
    out["order"] = order
    out["baselines"] = {}
    for b in BASELINES:
        pl = padded_lengths(lens, b, batch_size, fixed_length)
        pl = [min(x, cfg.max_seq) for x in pl]
        out["baselines"][b] = figures(cfg, pl, lens, peak_macs, cap)
    out["speedup_vs"] = {b: out["throughput_seq_s"] / f["throughput_seq_s"] for b, f in out["baselines"].items()}
    return out
