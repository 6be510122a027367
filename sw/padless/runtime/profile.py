"""Simulated cycles of the generated kernel: the timed C-simulation driven the way the host drives a board.

:func:`profile` runs sequences through the cycle-annotated C-simulation of the project's own HLS C++
(:mod:`padless.csim`, docs/hls.md "Timed C-simulation"): every dataflow process keeps a clock, every
pipelined loop costs its declared II and depth, every FIFO and ping-pong block its declared depth. The
host packs the input into calls of at most the kernel's ``max_tokens`` rows (arrival order) and lists each
call's sequences in the length-aware order of :func:`padless.schedule.scheduler.engine_order`, exactly as
the csim and pynq backends do. Figures are labelled *simulated (cycle-annotated csim of the generated
HLS)*: not a board measurement, but the kernel's code, cycle by cycle.

Beside it, on the same kernel and the same sequences: the padded baselines (padded to the longest, to each
batch's longest, to a compile-time length -- how FINN-based flows run attention), and the cycle model's
prediction for the same input (``model``, ``model_error`` = model / simulated - 1). The baselines feed the
kernel padded sequences; their outputs are not used, so they run with ``compute=False`` (the engine's
timing does not depend on the values: tests/test_timed_csim.py).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import InputError, ProjectError

__all__ = ["profile", "DEFAULT_FIXED_LENGTH", "IDEAL_MEMORY", "label"]

DEFAULT_FIXED_LENGTH = 128
#: The timed csim options that make memory ideal (one m_axi beat a cycle per port, no latency, no bank
#: contention) for ``upper_bound``: profile() runs the calls a second time with them when the main run
#: used the memory model (sim_rt.h, docs/performance-model.md "Memory").
IDEAL_MEMORY: dict = {"ideal_memory": True}


def label(clock_MHz: float, synthesized: bool = False, achieved_ii: dict | None = None) -> str:
    """The label of a simulated figure: the clock it is at and whether II and depths are declared or
    synthesized (docs/performance-model.md, "Sources of the figures")."""
    if not synthesized:
        return f"simulated at {clock_MHz:g} MHz (II and depths declared, not synthesized)"
    worse = {p: v for p, v in (achieved_ii or {}).items() if v > 1}
    ii = ("csynth achieved II 1 in every process" if not worse else
          "csynth achieved II > 1 in " + ", ".join(f"{p} (II {v})" for p, v in sorted(worse.items())) +
          ": the simulated cycles assume II 1 there, a lower bound")
    return f"simulated at {clock_MHz:g} MHz (clock: Vitis HLS csynth estimate; {ii})"


def _calls(lengths: Sequence[int], cap: int) -> list[list[int]]:
    """Indices of the input grouped into calls of at most ``cap`` rows, arrival order."""
    calls, cur, load = [], [], 0
    for i, n in enumerate(lengths):
        if cur and load + n > cap:
            calls.append(cur)
            cur, load = [], 0
        cur.append(i)
        load += int(n)
    if cur:
        calls.append(cur)
    return calls


def _timed_run(backend, rows: Sequence[np.ndarray], order_fn, hidden: int, record: bool,
               progress: Callable[[int], None] | None = None) -> dict:
    """Timed csim of consecutive calls: ``rows`` the int8 inputs of each sequence, one call per entry of
    ``backend``'s grouping. Returns summed cycles, per-process busy cycles and (with ``record``) the
    per-process intervals, calls laid end to end."""
    cap = backend.max_tokens
    lens = [len(r) for r in rows]
    total, busy, intervals = 0, {}, {}
    outputs = [None] * len(rows)
    for call in _calls(lens, cap):
        x = np.concatenate([rows[i] for i in call]).astype(np.int8)
        off = np.concatenate([[0], np.cumsum([lens[i] for i in call])]).astype(np.int64)
        backend.order = order_fn
        backend.reports.clear()
        y = backend.run(x, off)
        rep = backend.reports[-1]
        for j, i in enumerate(call):
            outputs[i] = y[off[j]:off[j + 1]]
        names = [p["name"] for p in rep["procs"]]
        for p in rep["procs"]:
            busy[p["name"]] = busy.get(p["name"], 0) + int(p["busy"])
        if record and "jobs" in rep:
            order = rep["order"]
            for pi, seq, layer, a, b in rep["jobs"].tolist():
                intervals.setdefault(names[pi], []).append((call[order[seq]], layer, a + total, b + total))
        total += int(rep["cycles"])
        if progress:
            progress(len(call))
    return {"cycles": total, "busy": busy, "intervals": intervals, "outputs": outputs}


def profile(project, sequences: Sequence[Sequence[int]] | None = None, lengths: Sequence[int] | None = None, *,
            fixed_length: int | None = None, batch_size: int = 32, record_intervals: bool = False,
            progress: Callable[[int], None] | None = None, baselines: bool = True, ideal_memory: bool = False) -> dict:
    """Timed C-simulation of the project's kernel on real token sequences (or on lengths alone).

    Args:
        project: a loaded :class:`padless.project.Project` with generated HLS code.
        sequences: token-id lists (embedded and quantized on the host like every backend's input).
        lengths: instead of ``sequences``, token counts alone: the kernel runs zero rows of those lengths
            (its cycles do not depend on the values).
        fixed_length: compile-time length of the ``padded_fixed`` baseline (tokens); None: 128 capped at the
            kernel's maximum and raised to the longest sequence
            (:func:`padless.schedule.scheduler.resolve_fixed_length`, which also refuses a given length
            shorter than the longest sequence or longer than the kernel's maximum). ``out["fixed_length"]``.
        batch_size: batch size of the ``padded_batch`` baseline.
        record_intervals: keep per-process (sequence, layer, start, end) intervals (Gantt charts).
        progress: called with the number of sequences of each finished call.
        baselines: also run the padded baselines (three more timed runs).
        ideal_memory: every m_axi beat there when the loop asks (the upper bound), in the csim and the
            model; default the board's memory model (config.h PADLESS_MAXI_*, padless.schedule.memory).
            The result's ``"memory"`` says which: ``{kind, latency_ns, ideal, ports}``.

    Returns:
        ``{"sequences", "tokens", "cycles", "seconds", "throughput_seq_s", "throughput_tokens_s",
        "stage_busy" {process: busy / makespan}, "efficiency_vs_peak", "useful_macs_s", "peak_int8_macs",
        "mac_per_dsp", "clock_MHz" (= "clock_mhz"), "clock_source" (the board's default clock and its source,
        or the csynth estimate when the project has one: :func:`padless.csynth.clock_of`), "upper_bound"
        {clock_mhz, throughput_seq_s, memory: "ideal"} (the same cycles with ideal memory at the platform's
        maximum clock), "csynth" {achieved_ii, ...} when Vitis has run, "padded_max" / "padded_batch" /
        "padded_fixed" {cycles,
        throughput_seq_s, padded_tokens}, "speedup_vs" {baseline: x}, "model" {throughput_seq_s,
        throughput_tokens_s, efficiency_vs_peak, cycles, speedup_vs, baselines}, "model_error", "label"}`` (plus ``"_intervals"`` and ``"_outputs"``).
        With the learned token policy and ``sequences``, ``model`` counts golden's kept rows of these
        sequences (``model["expected_keep"]``: the model on the calibrated kept fraction, as the DSE plans;
        ``model["stage_rows"]``: golden's surviving rows before the first selection point and after each);
        its padded baselines are not run (``"baselines_note"`` says why).

    Raises:
        InputError: neither or both of sequences / lengths, an empty input, a sequence longer than the
            kernel's maximum, ``fixed_length`` or ``batch_size`` below 1, lengths alone for a kernel that runs
            the learned token policy.
        ProjectError: no generated HLS code; ToolMissingError: no g++ / ap_types.
    """
    from ..boards import load_board
    from ..golden import quantize_input
    from ..reference import embed
    from ..schedule.engine import EngineConfig, mac_per_dsp, useful_macs
    from ..schedule.scheduler import compare, engine_order, padded_lengths, resolve_fixed_length
    from .backends.csim import CsimBackend

    if (sequences is None) == (lengths is None):
        raise InputError("give the token sequences or their lengths (one of the two)")
    if (fixed_length is not None and int(fixed_length) < 1) or int(batch_size) < 1:
        raise InputError(f"fixed_length and batch_size must be >= 1, got {fixed_length} and {batch_size}")
    info = project.manifest.get("hls") or {}
    if "engine" not in info:
        raise ProjectError(f"{project.path} has no generated streaming engine; recompile it with `padless compile`")
    cfg = EngineConfig.from_dict(info["engine"])
    if ideal_memory or not cfg.memory:
        from ..schedule.engine import _replace
        from ..schedule.memory import ideal_plan
        cfg = _replace(cfg, memory=ideal_plan(cfg.memory))
    hidden = int(project.model["hidden_size"])
    if sequences is not None:
        lens = [len(s) for s in sequences]
        if not lens:
            raise InputError("no sequences to profile")
        scale = np.asarray(project.quantized.input_scale)
        rows = [quantize_input(embed(project.host, ids), scale) for ids in sequences]
    else:
        lens = [int(n) for n in lengths]
        if not lens:
            raise InputError("no lengths to profile")
        if min(lens) < 1:
            raise InputError(f"every sequence needs at least one token, got a length of {min(lens)}")
        rows = [np.zeros((n, hidden), np.int8) for n in lens]
    from ..schedule.engine import policy_on
    policy = policy_on(cfg)
    if policy and sequences is None:
        raise InputError("this kernel runs the learned token policy, whose kept counts depend on the text: profile "
                         "it on token sequences (padless profile --dataset or --input), not on lengths")
    if max(lens) > cfg.max_seq:
        raise InputError(f"a sequence of {max(lens)} tokens exceeds the kernel's maximum of {cfg.max_seq} "
                         f"(give --truncate, or recompile with a longer maximum)")
    from ..csynth import clock_of
    fixed_length = resolve_fixed_length(fixed_length, lens, cfg.max_seq)
    board = load_board(project.manifest["board"])
    clock = clock_of(project.manifest, board)
    clk = float(clock["clock_MHz"])
    syn = project.manifest.get("csynth") or {}
    achieved_ii = {p: int(v["ii"]) for p, v in (syn.get("processes") or {}).items() if v.get("ii")}
    cfg.clock_MHz = clk   # the cycle model beside the simulation runs at the same clock
    mpd = mac_per_dsp(board, cfg.sparse, cfg.paired)
    peak = board.dsp * mpd * clk * 1e6
    order_fn = lambda l: engine_order(l, cfg)  # noqa: E731
    arrival = lambda l: np.arange(len(l))      # noqa: E731

    backend = CsimBackend(project, sim=dict(timed=True, exact_depth=True, record_jobs=record_intervals,
                                            compute=sequences is not None, ideal_memory=bool(ideal_memory)))
    try:
        main = _timed_run(backend, rows, order_fn, hidden, record_intervals, progress)
        out = _figures(main["cycles"], lens, lens, cfg, peak, clk)
        out["stage_busy"] = {p: b / max(1, main["cycles"]) for p, b in main["busy"].items() if p.startswith("p_")}
        out.update({"peak_int8_macs": peak, "mac_per_dsp": mpd, "clock_MHz": clk, "clock_mhz": clk,
                    "clock_source": clock["source"], "fixed_length": fixed_length,
                    "label": label(clk, clock["synthesized"], achieved_ii)})
        if syn:
            # each process at its achieved II runs about II times its simulated busy cycles: the makespan is
            # at least the slowest of them (a bound on what the synthesized kernel can reach)
            stretched = max([main["cycles"]] + [int(b * achieved_ii.get(p, 1)) for p, b in main["busy"].items()])
            out["csynth"] = {"achieved_ii": achieved_ii, "estimated_fmax_MHz": syn.get("estimated_fmax_MHz"),
                             "resources": syn.get("resources"), "source": syn.get("source"),
                             "cycles_at_achieved_ii": stretched,
                             "throughput_seq_s_at_achieved_ii": len(lens) / (stretched / (clk * 1e6))}
        ideal_cycles = main["cycles"]
        if IDEAL_MEMORY and not ideal_memory:   # the memory model was on: the same calls again with ideal memory
            saved = dict(backend.sim)
            # (the learned policy decides on the computed rows: its timing needs the values)
            backend.sim.update(IDEAL_MEMORY, compute=policy, record_jobs=False)
            ideal_cycles = _timed_run(backend, rows, order_fn, hidden, False)["cycles"]
            backend.sim.clear()
            backend.sim.update(saved)
        top = float(board.clock_max_MHz)
        out["upper_bound"] = {"clock_mhz": top, "memory": "ideal", "cycles": int(ideal_cycles),
                              "throughput_seq_s": len(lens) / (ideal_cycles / (top * 1e6))}
        if policy and baselines:
            # padded rows would go through the policy too, which keeps or drops them by their values: a padded
            # engine with a learned policy is not the baseline this comparison means
            out["baselines_note"] = ("padded baselines are not run for the learned token policy (its counts "
                                     "depend on the rows, padding included)")
        if baselines and not policy:
            backend.sim["compute"] = False
            backend.sim["record_jobs"] = False
            out["speedup_vs"] = {}
            for b in ("padded_max", "padded_batch", "padded_fixed"):
                pl = [min(x, cfg.max_seq) for x in padded_lengths(lens, b, batch_size, fixed_length)]
                res = _timed_run(backend, [np.zeros((n, hidden), np.int8) for n in pl], arrival, hidden, False)
                f = _figures(res["cycles"], pl, lens, cfg, peak, clk)
                out[b] = {"cycles": f["cycles"], "throughput_seq_s": f["throughput_seq_s"],
                          "efficiency_vs_peak": f["efficiency_vs_peak"], "padded_tokens": int(sum(pl) - sum(lens))}
                out["speedup_vs"][b] = out["throughput_seq_s"] / out[b]["throughput_seq_s"]
    finally:
        backend.close()
    mem = cfg.memory or {}
    out["memory"] = {"kind": mem.get("kind", "ideal"), "latency_ns": mem.get("latency_ns", 0.0),
                     "ideal": bool(mem.get("ideal")), "ports": mem.get("ports", {})}
    out["label"] += " with " + ("ideal memory" if out["memory"]["ideal"] else
                                f"m_axi modeled ({mem.get('kind')}, {mem.get('latency_ns')} ns)")
    model = compare(cfg, lens, peak, batch_size=batch_size, fixed_length=fixed_length)
    keys = ("throughput_seq_s", "throughput_tokens_s", "efficiency_vs_peak", "cycles")
    out["model"] = {**{k: model[k] for k in keys}, "speedup_vs": model["speedup_vs"],
                    "baselines": {b: {k: f[k] for k in keys} for b, f in model["baselines"].items()}}
    out["model_error"] = model["throughput_seq_s"] / out["throughput_seq_s"] - 1.0
    if policy:   # (sequences given: lengths alone were refused above)
        # the learned token policy: the kept counts depend on the text. The model above plans with the
        # expected kept fraction (what the DSE sees); the model on golden's per-stage counts of these very
        # sequences, call by call in the engine's order, is what the kernel is held to
        from ..golden import run_encoder
        from ..schedule.cost import call_cycles
        exact, stage_rows = 0, 0
        for call in _calls(lens, backend.max_tokens):
            cl = [lens[i] for i in call]
            x = np.concatenate([rows[i] for i in call]).astype(np.int8)
            off = np.concatenate([[0], np.cumsum(cl)]).astype(np.int64)
            st = []
            run_encoder(project.quantized, x, off, project.sparsity, lengths_out=st)
            order = engine_order(cl, cfg)
            exact += call_cycles(cfg, np.asarray(cl)[order], stage_lengths=st[0][order]).cycles
            stage_rows = stage_rows + st[0].sum(axis=0)
        out["model"]["expected_keep"] = {"cycles": model["cycles"], "throughput_seq_s": model["throughput_seq_s"],
                                         "error": out["model_error"]}
        out["model"]["stage_rows"] = [int(v) for v in stage_rows]   # rows each stage's layers run, in all
        out["model"]["cycles"] = int(exact)
        out["model"]["throughput_seq_s"] = len(lens) / (exact / (clk * 1e6))
        out["model_error"] = out["model"]["throughput_seq_s"] / out["throughput_seq_s"] - 1.0
    if record_intervals:
        out["_intervals"] = main["intervals"]
    out["_outputs"] = main["outputs"] if sequences is not None else None
    return out


def _figures(cycles: int, run_lengths, real_lengths, cfg, peak: float, clk: float) -> dict:
    from ..schedule.engine import useful_macs
    sec = cycles / (clk * 1e6)
    macs = float(sum(useful_macs(cfg, int(t)) for t in real_lengths))
    return {"sequences": len(real_lengths), "tokens": int(sum(real_lengths)), "cycles": int(cycles), "seconds": sec,
            "throughput_seq_s": len(real_lengths) / sec, "throughput_tokens_s": float(sum(real_lengths)) / sec,
            "useful_macs_s": macs / sec, "efficiency_vs_peak": macs / sec / peak}
