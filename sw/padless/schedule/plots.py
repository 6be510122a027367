"""Plots of simulated schedules: Gantt charts, per-stage utilization and throughput (PNG, matplotlib).

Every function takes the output of :func:`padless.schedule.scheduler.compare` (called with
``keep_results=True`` where the :class:`~padless.schedule.scheduler.SimResult` objects are needed) or a
mapping ``{method: SimResult}``, writes one PNG and returns its path. Figures are drawn on
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no display, no ``pyplot`` global
state, safe in a headless CI job or a worker thread.

All figures here are *modeled*: they come from the cycle model of :mod:`padless.schedule.cost` and the
event-by-event simulation of :mod:`padless.schedule.scheduler` (docs/performance-model.md), not from a
board.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, StrMethodFormatter

from ..errors import InputError
from .cost import STAGES
from .scheduler import BASELINES, SimResult

__all__ = ["GANTT_SEQUENCES", "METHOD_LABELS", "gantt_chart", "utilization_chart", "throughput_chart"]

#: Default number of sequences drawn in a Gantt chart. A sequence occupies every stage once per layer,
#: so N sequences draw ``N x layers`` bars per stage row; beyond a dozen or so the bars are too thin to
#: tell apart. Draw a Gantt from a simulation of the first N sequences of the input (what
#: ``padless report`` does) so the chart is a complete schedule, not a window cut out of a longer one.
GANTT_SEQUENCES = 12

#: Human-readable names of the scheduling methods of :mod:`padless.schedule.scheduler`.
METHOD_LABELS = {
    "padless": "padless (length-aware, no padding)",
    "padded_max": "padded to maximum",
    "padded_batch": "padded to batch maximum",
    "bucketed": "length buckets",
}

_METHOD_COLORS = {"padless": "#1f77b4", "padded_max": "#d62728", "padded_batch": "#ff7f0e", "bucketed": "#7f7f7f"}
_OTHER_COLOR = "#c8c8c8"
_DPI = 120


def _results_of(results: Mapping[str, Any]) -> dict[str, SimResult]:
    """``{method: SimResult}`` from a mapping of results or from ``compare(..., keep_results=True)``."""
    if "_results" in results:
        results = results["_results"]
    out = {k: v for k, v in results.items() if isinstance(v, SimResult)}
    if not out:
        raise InputError("no simulation results to plot: call compare(..., keep_results=True) or pass "
                         "{method: SimResult}")
    return out


def _figures_of(figures: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{method: figures}`` (padless first, then the baselines) from a ``compare()`` output."""
    if "baselines" not in figures or "utilization" not in figures:
        raise InputError("expected the output of padless.schedule.scheduler.compare() "
                         "(keys 'utilization', 'baselines', ...)")
    out = {"padless": figures}
    for b in BASELINES:
        if b in figures["baselines"]:
            out[b] = figures["baselines"][b]
    return out


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"plots are written as PNG; give a path ending in .png, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI, format="png")
    return path


def _sequence_colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    # even entries first (saturated), then odd (light): neighbours in arrival order differ strongly
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [cmap(order[i % 20]) for i in range(n)]


def _lighten(color, amount: float = 0.55):
    r, g, b, a = to_rgba(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount, a)


def gantt_chart(results: Mapping[str, Any], path: str | os.PathLike, *,
                methods: Sequence[str] = ("padless", "padded_max"), max_sequences: int = GANTT_SEQUENCES,
                clock_MHz: float | None = None, lengths: Sequence[int] | None = None,
                title: str | None = None) -> Path:
    """Gantt chart of the pipeline stages over time, one panel per method on a shared time axis.

    One row per active pipeline stage (``qkv, select, attn, out, ffn_up, ffn_down`` of
    :data:`padless.schedule.cost.STAGES`; stages with no work are left out) plus a ``weights`` row when
    weights are streamed (the m_axi loader). One bar per (sequence, layer, stage) operator, colored by
    sequence; the part of a bar spent on padding tokens (``durations - useful`` of the
    :class:`SimResult`) is drawn hatched and lighter. White gaps in a row are bubbles: the stage idles.

    Only sequences ``0 .. max_sequences-1`` (arrival order) get their own color; operators of later
    sequences are drawn in light gray, and the time axis ends at the last finish of a colored operator
    in any panel. For a readable chart simulate the first ``max_sequences`` sequences only (see
    :data:`GANTT_SEQUENCES`).

    Args:
        results: ``{method: SimResult}`` or the output of ``compare(..., keep_results=True)``.
        path: output ``.png``.
        methods: panels, top to bottom (default: padless above the padded-to-maximum baseline).
        max_sequences: sequences drawn in color (>= 1).
        clock_MHz: kernel clock; the time axis is in microseconds (milliseconds from 5,000 µs on) when
            given, else in cycles.
        lengths: ``(B,)`` real sequence lengths, tokens, for the legend.
        title: figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: no results, a method missing from ``results``, ``max_sequences < 1``, a path that
            does not end in ``.png``.
    """
    res = _results_of(results)
    missing = [m for m in methods if m not in res]
    if missing:
        raise InputError(f"no simulation result for {', '.join(missing)}; have {', '.join(res)}")
    if not methods:
        raise InputError("give at least one method to draw")
    if int(max_sequences) < 1:
        raise InputError(f"max_sequences must be >= 1, got {max_sequences}")
    n_show = int(max_sequences)
    scale = 1.0 / float(clock_MHz) if clock_MHz else 1.0  # cycles -> microseconds
    unit = "µs" if clock_MHz else "cycles"

    S = res[methods[0]].durations.shape[2]
    stage_names = list(STAGES) if S == len(STAGES) else [f"stage {s}" for s in range(S)]
    active = [s for s in range(S) if any(res[m].durations[:, :, s].sum() > 0 for m in methods)]
    has_loads = any(res[m].load_starts for m in methods)
    rows = [stage_names[s] for s in active] + (["weights"] if has_loads else [])
    row_of = {s: i for i, s in enumerate(active)}

    B = max(res[m].durations.shape[0] for m in methods)
    shown = min(n_show, B)
    colors = _sequence_colors(shown)

    # time window: last finish of a shown operator in any panel
    t_end = 0
    for m in methods:
        r = res[m]
        st, du = r.starts[:shown], r.durations[:shown]
        fin = np.where(st >= 0, st + du, 0)
        t_end = max(t_end, int(fin.max(initial=0)))
    if shown == B:
        t_end = max(t_end, max(res[m].makespan for m in methods))
    t_end = max(t_end, 1)
    if clock_MHz and t_end * scale >= 5000.0:  # long schedules in milliseconds
        scale, unit = scale / 1000.0, "ms"

    height = 1.2 + len(methods) * (0.42 * len(rows) + 0.9)
    fig = Figure(figsize=(13, height), layout="constrained")
    axes = fig.subplots(len(methods), 1, sharex=True, squeeze=False)[:, 0]
    bar_h = 0.72
    for ax, m in zip(axes, methods):
        r = res[m]
        Bm, L, _ = r.starts.shape
        # one bar collection per (row, kind): a few artists per panel, not one per operator
        bars = {(s, k): ([], []) for s in active for k in ("useful", "padding")}
        def jobs():
            """(sequence, layer, stage, start, cycles): one per row tile when the engine tiles rows
            (SimResult.segments), else one per (sequence, layer, stage)."""
            segments = getattr(r, "segments", None)
            if segments is not None and len(segments):
                for j, l, s, _tile, t0, d in segments:
                    yield int(j), int(l), int(s), int(t0), int(d)
                return
            for j in range(Bm):
                for l in range(L):
                    for s in range(r.starts.shape[2]):
                        yield j, l, s, int(r.starts[j, l, s]), int(r.durations[j, l, s])

        for j, l, s, t0, d in jobs():
            if s not in active or t0 < 0 or t0 >= t_end:
                continue
            color = colors[j] if j < shown else _OTHER_COLOR
            light = _lighten(color) if j < shown else _OTHER_COLOR
            total = int(r.durations[j, l, s])
            # the useful share of this job (a padded baseline's tile is part padding)
            u = d if total == 0 else int(round(d * int(r.useful[j, l, s]) / total))
            segs, cols = bars[(s, "useful")]
            segs.append((t0 * scale, u * scale))
            cols.append(color)
            if d > u:
                segs, cols = bars[(s, "padding")]
                segs.append(((t0 + u) * scale, (d - u) * scale))
                cols.append(light)
        for (s, kind), (segs, cols) in bars.items():
            if segs:
                # outlines only while bars are wide enough to see their fill (row tiles are narrow)
                edge = "black" if len(segs) < 200 else "none"
                ax.broken_barh(segs, (row_of[s] - bar_h / 2, bar_h), facecolors=cols, edgecolors=edge,
                               linewidth=0.25, hatch="////" if kind == "padding" else None)
        if has_loads:
            segs = [(t0 * scale, d * scale) for (_w, _l, _s, t0, d) in r.load_starts if t0 < t_end]
            if segs:
                ax.broken_barh(segs, (len(active) - bar_h / 2, bar_h), facecolors="#9467bd",
                               edgecolors="black", linewidth=0.25)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, t_end * scale)
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        done = r.makespan * scale
        label = METHOD_LABELS.get(m, m)
        status = (f"makespan {done:,.1f} {unit}" if r.makespan <= t_end
                  else f"makespan {done:,.1f} {unit} (beyond the window)")
        ax.set_title(f"{label}: {Bm} sequences, {status}", loc="left", fontsize=10)
        if r.makespan <= t_end and len(methods) > 1:
            ax.axvline(done, color="black", linestyle="--", linewidth=1.0)
    axes[-1].set_xlabel(f"time ({unit}, modeled)")
    axes[-1].xaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))

    handles = []
    for j in range(shown):
        name = f"seq {j}" + (f" ({int(lengths[j])} tok)" if lengths is not None and j < len(lengths) else "")
        handles.append(Patch(facecolor=colors[j], edgecolor="black", linewidth=0.3, label=name))
    if B > shown:
        handles.append(Patch(facecolor=_OTHER_COLOR, edgecolor="black", linewidth=0.3,
                             label=f"seq {shown}..{B - 1}"))
    if any((res[m].durations > res[m].useful).any() for m in methods):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", linewidth=0.3,
                             label="padding tokens"))
    if has_loads:
        handles.append(Patch(facecolor="#9467bd", edgecolor="black", linewidth=0.3, label="weight load"))
    handles.append(Patch(facecolor="white", edgecolor="#999999", linewidth=0.6, label="white gap = bubble"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(title or "Pipeline stages over time (modeled)", fontsize=12)
    return _save(fig, path)


def utilization_chart(figures: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Per-stage utilization of padless and of each baseline, grouped bars (PNG).

    Utilization of a stage = its cycles spent on real tokens / makespan (the ``stage_utilization`` of
    :func:`padless.schedule.scheduler.metrics`); the last group is the whole engine (``utilization``:
    useful stage-cycles over active stages x makespan). When ``figures`` carries the simulation results
    (``compare(..., keep_results=True)``) the cycles a stage spends on padding tokens are stacked on
    top, hatched: busy, but not useful.

    Args:
        figures: the output of :func:`padless.schedule.scheduler.compare`.
        path: output ``.png``.
        title: figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``figures`` is not a ``compare()`` output; a path that does not end in ``.png``.
    """
    figs = _figures_of(figures)
    res = figures.get("_results") or {}
    stages = [s for s in STAGES if any(s in f.get("stage_utilization", {}) for f in figs.values())]
    groups = stages + ["engine"]
    x = np.arange(len(groups))
    width = 0.8 / len(figs)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax = fig.subplots()
    for i, (m, f) in enumerate(figs.items()):
        useful = np.array([f["stage_utilization"].get(s, 0.0) for s in stages] + [f["utilization"]])
        xs = x - 0.4 + width * (i + 0.5)
        color = _METHOD_COLORS.get(m, None)
        ax.bar(xs, useful * 100, width, color=color, edgecolor="black", linewidth=0.4,
               label=METHOD_LABELS.get(m, m))
        top = useful * 100
        r = res.get(m)
        if isinstance(r, SimResult):
            span = max(1, r.makespan)
            busy, use = r.stage_busy(), r.stage_useful()
            pad = [float(busy[STAGES.index(s)] - use[STAGES.index(s)]) / span for s in stages]
            n_active = max(1, int((busy > 0).sum()))
            pad.append(float(busy.sum() - use.sum()) / (n_active * span))
            pad = np.array(pad)
            if pad.max(initial=0) > 0:
                ax.bar(xs, pad * 100, width, bottom=useful * 100, color=_lighten(color, 0.6),
                       edgecolor="black", linewidth=0.4, hatch="////")
                top = top + pad * 100
        # the engine's useful utilization, written above the (stacked) bar
        ax.text(xs[-1], top[-1] + 1.0, f"{useful[-1]:.0%}", ha="center", va="bottom", fontsize=7)
    if any(isinstance(r, SimResult) and (r.durations > r.useful).any() for r in res.values()):
        handles, _ = ax.get_legend_handles_labels()
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", linewidth=0.4,
                             label="busy on padding tokens"))
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.axvline(len(stages) - 0.5, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20), [f"{v}%" for v in range(0, 101, 20)])
    ax.set_ylabel("useful cycles / makespan (solid)")
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(title or "Utilization per pipeline stage (modeled)", fontsize=12)
    return _save(fig, path)


def throughput_chart(figures: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Throughput of padless and of each baseline on the same input (PNG, two panels).

    Left: sequences per second (``throughput_seq_s``), each baseline labelled with padless's speedup
    over it (``speedup_vs``). Right: useful INT8 MAC/s as a fraction of the board's INT8 peak
    (``efficiency_vs_peak``).

    Args:
        figures: the output of :func:`padless.schedule.scheduler.compare`.
        path: output ``.png``.
        title: figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``figures`` is not a ``compare()`` output; a path that does not end in ``.png``.
    """
    figs = _figures_of(figures)
    names = list(figs)
    labels = [METHOD_LABELS.get(m, m) for m in names]
    colors = [_METHOD_COLORS.get(m, "#7f7f7f") for m in names]
    y = np.arange(len(names))
    fig = Figure(figsize=(12, 0.6 * len(names) + 1.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    tput = np.array([figs[m]["throughput_seq_s"] for m in names])
    ax1.barh(y, tput, height=0.65, color=colors, edgecolor="black", linewidth=0.4)
    ax1.xaxis.set_major_formatter(EngFormatter(sep=""))
    for i, m in enumerate(names):
        note = f"{tput[i]:,.0f} seq/s"
        if m != "padless":
            note += f"  (padless {figures['speedup_vs'][m]:.2f}x faster)"
        ax1.text(tput[i], i, "  " + note, va="center", ha="left", fontsize=8)
    ax1.set_xlim(0, tput.max() * 1.75)
    ax1.set_yticks(y, labels)
    ax1.set_ylim(len(names) - 0.5, -0.5)
    ax1.set_xlabel("sequences / s (modeled)")
    ax1.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax1.set_axisbelow(True)
    eff = np.array([figs[m]["efficiency_vs_peak"] for m in names]) * 100
    ax2.barh(y, eff, height=0.65, color=colors, edgecolor="black", linewidth=0.4)
    for i in range(len(names)):
        ax2.text(eff[i], i, f"  {eff[i]:.1f}%", va="center", ha="left", fontsize=8)
    ax2.set_xlim(0, max(eff.max() * 1.3, 1.0))
    ax2.set_xlabel("useful INT8 MAC/s, % of board peak (modeled)")
    ax2.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax2.set_axisbelow(True)
    fig.suptitle(title or "Throughput on the same input (modeled)", fontsize=12)
    return _save(fig, path)
