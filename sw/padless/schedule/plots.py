"""Plots of engine schedules: Gantt charts, per-process busy fractions and throughput (PNG, matplotlib).

The Gantt chart draws per-process intervals ``{process: [(seq, layer, start, end)]}``: from the timed
C-simulation of the generated kernel (``padless profile``; label "simulated") or from the cycle model
(:func:`padless.schedule.cost.call_cycles` with ``keep_intervals``; label "modeled"). The other charts
take the output of :func:`padless.schedule.scheduler.compare` (or of ``padless profile``). Figures are drawn
on :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas: no display, no ``pyplot`` global
state, safe in a headless CI job or a worker thread.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..environment import quiet_matplotlib_config

quiet_matplotlib_config()  # before matplotlib's first import: no warnings when HOME is not writable
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import EngFormatter, StrMethodFormatter  # noqa: E402

from ..errors import InputError
from .engine import PROCESSES
from .scheduler import BASELINES

__all__ = ["GANTT_SEQUENCES", "METHOD_LABELS", "gantt_chart", "utilization_chart", "throughput_chart"]

#: Default number of sequences drawn in a Gantt chart (each sequence passes every process once per
#: layer; beyond a dozen the bars are too thin to tell apart).
GANTT_SEQUENCES = 12

#: Human-readable names of the methods of :mod:`padless.schedule.scheduler`.
METHOD_LABELS = {
    "padless": "padless (length-aware order, no padding)",
    "padded_max": "padded to maximum",
    "padded_batch": "padded to batch maximum",
    "padded_fixed": "padded to a fixed length",
}

_METHOD_COLORS = {"padless": "#1f77b4", "padded_max": "#d62728", "padded_batch": "#ff7f0e", "padded_fixed": "#7f7f7f"}
_OTHER_COLOR = "#c8c8c8"
_DPI = 120
#: Processes drawn in a Gantt chart (the m_axi descriptor reader is left out: it finishes at once).
GANTT_ROWS = tuple(p for p in PROCESSES if p != "p_desc")


def _figures_of(figures: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{method: figures}`` of padless and each baseline from a ``compare()``-shaped dict."""
    if "baselines" not in figures or "throughput_seq_s" not in figures:
        raise InputError("expected the output of padless.schedule.scheduler.compare (or padless profile)")
    out = {"padless": figures}
    out.update({k: v for k, v in figures["baselines"].items()})
    return out


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"plots are written as PNG; give a path ending in .png, not {path.name!r}")
    from ..fsutil import atomic_file
    FigureCanvasAgg(fig)
    with atomic_file(path) as f:   # atomic, never through a link at the name (padless.fsutil)
        fig.savefig(f, dpi=_DPI, format="png")
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


def gantt_chart(intervals: Mapping[str, Mapping[str, Sequence]], path: str | os.PathLike, *,
                max_sequences: int = GANTT_SEQUENCES, clock_MHz: float | None = None,
                lengths: Sequence[int] | None = None, title: str | None = None, source: str = "modeled") -> Path:
    """Gantt chart of the engine's processes over time, one panel per method on a shared time axis.

    One row per dataflow process (:data:`GANTT_ROWS`), one bar per (sequence, layer) the process worked
    on, colored by sequence (the descriptor index); white gaps in a row are cycles the process waits.

    Args:
        intervals: ``{method: {process: [(seq, layer, start, end)]}}`` (cycles).
        path: output ``.png``.
        max_sequences: sequences drawn in color (>= 1); later ones are gray.
        clock_MHz: kernel clock; the time axis is in microseconds when given, else in cycles.
        lengths: real sequence lengths (tokens) for the legend.
        title: figure title. source: "modeled" or "simulated" (the axis label says which).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: no intervals, ``max_sequences < 1``, a path that does not end in ``.png``.
    """
    if not intervals or not any(intervals.values()):
        raise InputError("no process intervals to plot")
    if int(max_sequences) < 1:
        raise InputError(f"max_sequences must be >= 1, got {max_sequences}")
    methods = list(intervals)
    rows = [p for p in GANTT_ROWS if any(intervals[m].get(p) for m in methods)]
    row_of = {p: i for i, p in enumerate(rows)}
    n_seq = 1 + max(int(iv[0]) for m in methods for ivs in intervals[m].values() for iv in ivs)
    shown = min(int(max_sequences), n_seq)
    colors = _sequence_colors(shown)
    scale = 1.0 / float(clock_MHz) if clock_MHz else 1.0
    unit = "µs" if clock_MHz else "cycles"
    t_end = max(int(iv[3]) for m in methods for ivs in intervals[m].values() for iv in ivs)
    if clock_MHz and t_end * scale >= 5000.0:
        scale, unit = scale / 1000.0, "ms"
    height = 1.2 + len(methods) * (0.32 * len(rows) + 0.9)
    fig = Figure(figsize=(13, height), layout="constrained")
    axes = fig.subplots(len(methods), 1, sharex=True, squeeze=False)[:, 0]
    bar_h = 0.72
    for ax, m in zip(axes, methods):
        for p in rows:
            segs, cols = [], []
            for seq, _layer, a, b in intervals[m].get(p, ()):
                segs.append((a * scale, max(b - a, 1) * scale))
                cols.append(colors[int(seq)] if int(seq) < shown else _OTHER_COLOR)
            if segs:
                ax.broken_barh(segs, (row_of[p] - bar_h / 2, bar_h), facecolors=cols,
                               edgecolors="black" if len(segs) < 300 else "none", linewidth=0.25)
        ax.set_yticks(range(len(rows)), [r.removeprefix("p_") for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, t_end * scale)
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(METHOD_LABELS.get(m, m), loc="left", fontsize=10)
    axes[-1].set_xlabel(f"time ({unit}, {source})")
    axes[-1].xaxis.set_major_formatter(StrMethodFormatter("{x:,g}"))
    handles = []
    for j in range(shown):
        name = f"seq {j}" + (f" ({int(lengths[j])} tok)" if lengths is not None and j < len(lengths) else "")
        handles.append(Patch(facecolor=colors[j], edgecolor="black", linewidth=0.3, label=name))
    if n_seq > shown:
        handles.append(Patch(facecolor=_OTHER_COLOR, edgecolor="black", linewidth=0.3, label=f"seq {shown}..{n_seq - 1}"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(title or f"Dataflow processes over time ({source})", fontsize=12)
    return _save(fig, path)


def utilization_chart(figures: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None,
                      source: str = "modeled") -> Path:
    """Busy fraction of every process (busy cycles / makespan, ``stage_busy``) for padless and each
    baseline, grouped bars (PNG). Padding tokens keep a baseline's processes busy without useful work:
    compare with ``efficiency_vs_peak`` in the throughput chart.

    Raises InputError for figures without ``stage_busy`` or a path that does not end in ``.png``.
    """
    figs = _figures_of(figures)
    procs = [p for p in GANTT_ROWS if any(p in f.get("stage_busy", {}) for f in figs.values())]
    if not procs:
        raise InputError("the figures carry no stage_busy")
    x = np.arange(len(procs))
    width = 0.8 / len(figs)
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax = fig.subplots()
    for i, (m, f) in enumerate(figs.items()):
        vals = np.array([f["stage_busy"].get(p, 0.0) for p in procs]) * 100
        xs = x - 0.4 + width * (i + 0.5)
        ax.bar(xs, vals, width, color=_METHOD_COLORS.get(m), edgecolor="black", linewidth=0.4,
               label=METHOD_LABELS.get(m, m))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xticks(x, [p.removeprefix("p_") for p in procs], rotation=30, ha="right")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20), [f"{v}%" for v in range(0, 101, 20)])
    ax.set_ylabel("busy cycles / makespan")
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(title or f"Busy fraction per dataflow process ({source})", fontsize=12)
    return _save(fig, path)


def throughput_chart(figures: Mapping[str, Any], path: str | os.PathLike, *, title: str | None = None,
                     source: str = "modeled") -> Path:
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
    ax1.set_xlabel(f"sequences / s ({source})")
    ax1.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax1.set_axisbelow(True)
    eff = np.array([figs[m]["efficiency_vs_peak"] for m in names]) * 100
    ax2.barh(y, eff, height=0.65, color=colors, edgecolor="black", linewidth=0.4)
    for i in range(len(names)):
        ax2.text(eff[i], i, f"  {eff[i]:.1f}%", va="center", ha="left", fontsize=8)
    ax2.set_xlim(0, max(eff.max() * 1.3, 1.0))
    ax2.set_xlabel(f"useful INT8 MAC/s, % of DSP peak ({source})")
    ax2.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax2.set_axisbelow(True)
    fig.suptitle(title or f"Throughput on the same input ({source})", fontsize=12)
    return _save(fig, path)
