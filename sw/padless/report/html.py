"""The HTML report of a compiled project: modeled scheduling figures, plots, plan, measured run figures.

:func:`build_report` simulates padless and the padded baselines on a length mix with the project's
cycle model (:func:`padless.commands.schedule.schedule_figures`, the same code as ``padless schedule``),
draws the plots of :mod:`padless.schedule.plots` and renders ``templates/report.html.j2`` with jinja2
(autoescaped). The report folder is self-contained: the HTML links its PNGs (and the figures as JSON)
by relative path, so it can be copied or served as is.

Measured figures: when ``DIR/report/run.json`` exists (written by ``make run``: decision agreement,
cosine against fp32, accuracy, the backend, the torch fp32 throughput on the host), the report adds a
table of them, labelled *measured*, beside the *modeled* board figures.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__, fsutil
from ..errors import InputError, ProjectError

__all__ = ["RUN_JSON", "MEASURED_FIELDS", "build_report", "flatten_run", "read_run_json", "render_report", "report_paths"]

#: Measured figures of a run, relative to the project folder (written by ``make run``).
RUN_JSON = Path("report") / "run.json"

#: Figures of ``run.json`` the report knows: ``(key, label, format, tag)``. Each key is looked up at the
#: top level and in the nested groups ``make run`` writes (``fidelity``, ``measured_torch_fp32``,
#: ``host_seconds``, ``machine``; see :func:`flatten_run`). Format: ``pct`` (fraction shown as a
#: percentage), ``f4`` (4 decimals), ``rate`` (per second), ``sec``, ``int``, ``str``. Tag
#: ``measured``: measured on the host; ``run``: describes the run. Other scalar entries are listed as
#: ``recorded``; the run's ``modeled`` group is left out (the report's own tables hold the modeled figures).
MEASURED_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("dataset", "input", "str", "run"),
    ("sentences", "sentences run", "int", "run"),
    ("tokens_mean", "mean tokens per sentence", "f1", "run"),
    ("backend", "backend that produced the integer outputs", "str", "run"),
    ("device", "device", "str", "run"),
    ("agreement", "decision agreement with fp32", "pct", "measured"),
    ("cosine_mean", "cosine to fp32 embeddings, mean", "f4", "measured"),
    ("cosine_min", "cosine to fp32 embeddings, minimum", "f4", "measured"),
    ("accuracy", "probe accuracy, integer model", "pct", "measured"),
    ("accuracy_fp32", "probe accuracy, fp32 model", "pct", "measured"),
    ("torch_fp32_sentences_s", "torch fp32 throughput on this host, sentences/s", "rate", "measured"),
    ("torch_fp32_setup", "torch fp32 measurement", "str", "run"),
    ("host_seconds.fp32_reference", "host time, fp32 reference, s", "sec", "measured"),
    ("host_seconds.backend", "host time, integer backend, s", "sec", "measured"),
    ("seconds_total", "host time, whole run, s", "sec", "measured"),
    ("machine.platform", "host", "str", "run"),
    ("bitstream_command", "build the bitstream with", "str", "run"),
)
_RUN_SKIP = {"modeled", "simulated", "project", "model", "board", "sparsity", "fidelity", "measured_torch_fp32",
             "host_seconds", "machine"}


def flatten_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a ``run.json`` as one flat dict keyed like :data:`MEASURED_FIELDS`.

    Accepts the flat form (``agreement``, ``cosine_mean``, ..., ``torch_fp32_sentences_s`` at the top
    level) and the nested form of :mod:`padless.main_job` (``fidelity: {...}``,
    ``measured_torch_fp32: {sentences_per_s, sentences, batch_size, threads, padding}``,
    ``host_seconds: {...}``, ``machine: {...}``); nested entries become ``group.key``.
    """
    flat: dict[str, Any] = {}
    for k, v in run.items():
        if k in _RUN_SKIP:
            continue
        flat[k] = v
    fid = run.get("fidelity")
    if isinstance(fid, Mapping):
        for k, v in fid.items():
            flat.setdefault(k, v)
    torch = run.get("measured_torch_fp32")
    if isinstance(torch, Mapping):
        if "sentences_per_s" in torch:
            flat.setdefault("torch_fp32_sentences_s", torch["sentences_per_s"])
        bits = [f"{torch['sentences']} sentences" if "sentences" in torch else "",
                f"batch {torch['batch_size']}" if "batch_size" in torch else "",
                f"padded to the {torch['padding']}" if "padding" in torch else "",
                f"{torch['threads']} threads" if "threads" in torch else ""]
        if any(bits):
            flat.setdefault("torch_fp32_setup", ", ".join(b for b in bits if b))
    for group in ("host_seconds", "machine"):
        g = run.get(group)
        if isinstance(g, Mapping):
            for k, v in g.items():
                flat.setdefault(f"{group}.{k}", v)
    return flat


def report_paths(project_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> dict[str, Path]:
    """Where a report and its files go: ``{"html", "gantt", "utilization", "throughput", "json"}``.

    Default ``DIR/report/index.html`` with ``gantt.png``, ``utilization.png``, ``throughput.png`` and
    ``schedule.json`` beside it; for ``out=path/NAME.html`` the files are ``path/NAME-gantt.png`` etc.

    Raises:
        InputError: ``out`` does not end in ``.html`` / ``.htm``.
    """
    html = Path(project_dir) / "report" / "index.html" if out is None else Path(out)
    if html.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"the report is HTML; give --out a path ending in .html, not {html.name!r}")
    prefix = "" if html.stem == "index" else f"{html.stem}-"
    d = html.parent
    return {"html": html, "gantt": d / f"{prefix}gantt.png", "utilization": d / f"{prefix}utilization.png",
            "throughput": d / f"{prefix}throughput.png", "json": d / f"{prefix}schedule.json"}


def read_run_json(project_dir: str | os.PathLike) -> dict | None:
    """The measured figures ``DIR/report/run.json`` as a dict, or ``None`` when there is none.

    Raises:
        ProjectError: the file exists but is not a JSON object.
    """
    path = Path(project_dir) / RUN_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path} is not valid JSON ({exc}); delete it or run `make run` again") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must hold one JSON object, got {type(data).__name__}; "
                           f"delete it or run `make run` again")
    return data


#: Display format of each numeric column kind of the report tables.
_FLOAT_FORMATS = {"pct": ".2%", "f4": ".4f", "rate": ",.1f", "f1": ".1f", "sec": ",.2f"}


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or kind == "str":
        return str(value)
    if isinstance(value, (int, float)) and not math.isfinite(float(value)):
        return str(value)
    if kind == "int":
        return f"{int(value):,}"
    if kind in _FLOAT_FORMATS:
        return format(float(value), _FLOAT_FORMATS[kind])
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``[(dotted key, value text)]`` of a nested mapping (lists and scalars as JSON)."""
    rows = []
    if isinstance(d, Mapping):
        for k in d:
            rows += _flatten(d[k], f"{prefix}{k}.")
        return rows
    return [(prefix[:-1], d if isinstance(d, str) else json.dumps(d))]


def _measured_rows(run: Mapping[str, Any]) -> list[dict]:
    flat = flatten_run(run)
    rows, known = [], set()
    for key, label, kind, tag in MEASURED_FIELDS:
        known.add(key)
        if key in flat and flat[key] is not None:
            rows.append({"key": key, "label": label, "value": _fmt(flat[key], kind), "tag": tag})
    for key in sorted(k for k in flat if k not in known):
        if flat[key] is None or isinstance(flat[key], (dict, list)):
            continue
        rows.append({"key": key, "label": key.replace("_", " "), "value": _fmt(flat[key], ""), "tag": "recorded"})
    return rows


def _length_stats(lengths: Sequence[int]) -> dict:
    a = np.asarray(lengths, dtype=np.int64)
    return {"count": int(a.size), "tokens": int(a.sum()), "min": int(a.min()), "mean": float(a.mean()),
            "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "max": int(a.max())}


def _method_rows(figures: Mapping[str, Any], simulated: Mapping[str, Any] | None) -> list[dict]:
    """One row per method: simulated (timed csim) beside modeled throughput, efficiency, padding, speedup."""
    from ..schedule.plots import METHOD_LABELS

    rows = []
    for name, f in [("padless", figures)] + list(figures["baselines"].items()):
        sim = None
        if simulated:
            sim = simulated if name == "padless" else simulated.get(name)
        ref = sim or f
        sp_src = simulated if simulated else figures
        rows.append({
            "name": name, "label": METHOD_LABELS.get(name, name),
            "sim_seq_s": f"{sim['throughput_seq_s']:,.0f}" if sim else "",
            "seq_s": f"{f['throughput_seq_s']:,.0f}", "tokens_s": f"{f['throughput_tokens_s']:,.0f}",
            "efficiency": f"{ref['efficiency_vs_peak']:.1%}", "cycles": f"{ref['cycles']:,}",
            "padded": f"{f['padded_tokens']:,}",
            "speedup": "" if name == "padless" else f"{sp_src['speedup_vs'][name]:.2f}x",
        })
    return rows


def _allocation_rows(schedule: Mapping[str, Any]) -> list[dict]:
    stages = schedule.get("stages") or {}
    rows = []
    for s, e in stages.items():
        cyc = e.get("expected_cycles")
        rows.append({"stage": s, "pe": e.get("pe", ""), "simd": e.get("simd", ""), "lanes": e.get("lanes", ""),
                     "cycles": "" if cyc is None else f"{float(cyc):,.0f}"})
    return rows


def _clock_source(manifest: Mapping[str, Any]) -> str:
    """Where the project's kernel clock comes from (:func:`padless.csynth.clock_of`)."""
    from ..boards import load_board
    from ..csynth import clock_of
    from ..errors import PadlessError
    try:
        return clock_of(dict(manifest), load_board(manifest["board"]))["source"]
    except PadlessError:
        return "the project's engine"


def _resource_rows(resources: Mapping[str, Any]) -> list[dict]:
    rows = []
    for k in ("dsp", "bram_36k", "uram", "lut", "ff"):
        r = resources.get(k)
        if not isinstance(r, Mapping):
            continue
        rows.append({"name": k, "used": f"{r['used']:,}", "available": f"{r['limit']:,}",
                     "fraction": f"{r['used'] / r['limit']:.1%}" if r["limit"] else ""})
    return rows


def render_report(context: Mapping[str, Any]) -> str:
    """Render ``templates/report.html.j2`` with ``context`` (autoescaped HTML, undefined names are errors)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


def build_report(project_dir: str | os.PathLike, lengths: Sequence[int], *, source: str = "lengths",
                 out: str | os.PathLike | None = None, batch_size: int = 32,
                 gantt_sequences: int | None = None, simulate: bool = True,
                 simulated: Mapping[str, Any] | None = None) -> Path:
    """Simulate, model, plot and write the HTML report of a compiled project; return the HTML path.

    Three kinds of figures, each tagged: *simulated* -- the timed C-simulation of the project's generated
    HLS kernel on these lengths (:func:`padless.runtime.profile.profile`; the headline), *modeled* -- the
    cycle model (:func:`padless.commands.schedule.schedule_figures`), *measured* -- what ``make run``
    measured on this host (``report/run.json``).

    Args:
        project_dir: folder written by ``padless compile`` (reads ``manifest.json`` and, if present,
            ``report/run.json``).
        lengths: ``(B,)`` token counts of the input sequences, in arrival order (>= 1 each).
        source: one line describing where the lengths came from (shown in the report).
        out: HTML path (default ``DIR/report/index.html``); plots and ``schedule.json`` go beside it.
        batch_size: batch size of the padded_batch baseline.
        gantt_sequences: sequences in the Gantt chart (default :data:`padless.schedule.plots.GANTT_SEQUENCES`),
            run alone; the padded panel pads them to the longest sequence of the whole input.
        simulate: run the timed C-simulation (needs g++; without it the report is modeled only and says so).
        simulated: :func:`padless.runtime.profile.profile`'s result for these very lengths (and
            ``batch_size``) when the caller already has it (``make run``); not simulated again.

    Returns:
        Path of the HTML file.

    Raises:
        ProjectError: no project / manifest, or a corrupt ``report/run.json``.
        InputError: no lengths, a non-positive length, a sequence longer than the kernel's maximum,
            a bad ``out`` suffix, ``gantt_sequences < 1``.
    """
    from ..commands.schedule import engine_of, read_manifest, schedule_figures
    from ..errors import PadlessError
    from ..project import load_project
    from ..schedule import plots
    from ..schedule.cost import call_cycles

    manifest = read_manifest(project_dir)
    lengths = [int(n) for n in lengths]
    if not lengths:
        raise InputError("no sequences to report on: the input holds no lengths")
    if min(lengths) < 1:
        raise InputError(f"every sequence needs at least one token, got a length of {min(lengths)}")
    n_gantt = plots.GANTT_SEQUENCES if gantt_sequences is None else int(gantt_sequences)
    if n_gantt < 1:
        raise InputError(f"gantt_sequences must be >= 1, got {n_gantt}")
    paths = report_paths(project_dir, out)
    root = _report_root(project_dir, paths["html"])
    for p in paths.values():   # before the (slow) simulation: a link, a folder or no write permission
        fsutil.check_target(p, root, writable=True)
    run = read_run_json(project_dir)
    cfg = engine_of(manifest, lengths)
    figures = schedule_figures(manifest, lengths, batch_size)
    head = lengths[:n_gantt]
    sim_note = ""
    gantt: dict = {}
    if simulate and (manifest.get("hls") or {}).get("engine"):
        try:
            from ..runtime.profile import profile
            project = load_project(project_dir)
            if simulated is None:
                simulated = profile(project, lengths=lengths, batch_size=batch_size)
            g1 = profile(project, lengths=head, baselines=False, record_intervals=True)
            g2 = profile(project, lengths=[min(max(lengths), cfg.max_seq)] * len(head), baselines=False,
                         record_intervals=True)
            gantt = {"padless": g1["_intervals"], "padded_max": g2["_intervals"]}
        except PadlessError as exc:
            simulated, sim_note = None, f"not simulated: {exc}"
    else:
        simulated = None
    if not gantt:
        gantt = {"padless": call_cycles(cfg, head, keep_intervals=True).intervals,
                 "padded_max": call_cycles(cfg, [min(max(lengths), cfg.max_seq)] * len(head), keep_intervals=True).intervals}
    label = "simulated" if simulated else "modeled"
    headline = simulated or figures

    if Path(os.path.abspath(paths["html"].parent)) != root:
        fsutil.make_dirs(paths["html"].parent, root)   # DIR/report, refused when it is a link
    model_name = manifest["model"].get("name", "model")
    plots.gantt_chart(gantt, paths["gantt"], clock_MHz=cfg.clock_MHz, lengths=head, source=label,
                      title=f"{model_name} on {figures['board']}: first {len(head)} of {len(lengths)} sequences "
                            f"(padded panel: padded to {max(lengths)} tokens), {label}")
    busy_src = {**headline, "baselines": figures["baselines"]} if simulated else figures
    plots.utilization_chart(busy_src, paths["utilization"], source=label,
                            title=f"Busy fraction per process, {model_name} on {figures['board']}, "
                                  f"{len(lengths)} sequences ({label} for padless, modeled for the baselines)")
    tput = dict(figures)
    if simulated:
        tput = {**simulated, "baselines": {b: {**figures["baselines"][b], **simulated[b]}
                                           for b in figures["baselines"]}}
    plots.throughput_chart(tput, paths["throughput"], source=label,
                           title=f"Throughput, {model_name} on {figures['board']}, {len(lengths)} sequences ({label})")
    public = {"modeled": {k: v for k, v in figures.items() if not k.startswith("_")},
              "simulated": {k: v for k, v in (simulated or {}).items() if not k.startswith("_")} or None}
    fsutil.write_text(paths["json"], json.dumps(public, indent=2, sort_keys=True, default=float) + "\n", root)

    schedule = manifest.get("schedule") or {}
    board_info = {k: schedule.get(k, "") for k in ("part", "platform", "flow")}
    comparison = None
    torch_rate = flatten_run(run).get("torch_fp32_sentences_s") if run else None
    measured = (run or {}).get("measured_torch_fp32")
    busy = measured.get("busy") if isinstance(measured, Mapping) else None  # a busy machine: no ratio (issue 27)
    if isinstance(torch_rate, (int, float)) and not isinstance(torch_rate, bool) and torch_rate > 0 and not busy:
        comparison = {"value": f"{headline['throughput_seq_s']:,.0f}", "tag": label,
                      "measured": f"{float(torch_rate):,.1f}",
                      "ratio": f"{headline['throughput_seq_s'] / float(torch_rate):,.1f}x"}
    quant = manifest.get("quant") or {}
    resources = manifest.get("resources") or (schedule.get("resources") or {})
    context = {
        "title": f"padless report: {model_name} on {figures['board']}",
        "generated": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "padless_version": __version__,
        "project": str(Path(project_dir).resolve()),
        "model": manifest["model"],
        "board": figures["board"], "board_info": board_info,
        "clock_MHz": f"{(simulated or {}).get('clock_mhz', cfg.clock_MHz):g}",
        "clock_source": (simulated or {}).get("clock_source") or _clock_source(manifest),
        "upper_bound": (f"{simulated['upper_bound']['throughput_seq_s']:,.0f} sequences/s at the platform's "
                        f"{simulated['upper_bound']['clock_mhz']:g} MHz with ideal memory"
                        if simulated and simulated.get("upper_bound") else ""),
        "sim_label": (simulated or {}).get("label", ""),
        "peak": f"{figures['peak_int8_macs'] / 1e12:,.2f}",
        "weights": "resident (loaded once by the init call)" if cfg.resident else
                   "streamed per layer (single-buffered, loaded before each layer's region)",
        "wave_tokens": f"{cfg.max_tokens:,}",
        "source": source, "batch_size": batch_size, "stats": _length_stats(lengths),
        "methods": _method_rows(figures, simulated), "simulated": bool(simulated), "sim_note": sim_note,
        "headline": {"seq_s": f"{headline['throughput_seq_s']:,.0f}",
                     "eff": f"{headline['efficiency_vs_peak']:.1%}",
                     "speedup_max": f"{headline['speedup_vs']['padded_max']:.2f}",
                     "model_error": f"{simulated['model_error']:+.1%}" if simulated else ""},
        "allocation": _allocation_rows(schedule), "resources": _resource_rows(resources),
        "planned_for": schedule.get("lengths") or {}, "estimate": schedule.get("estimate") or {},
        "sparsity": _flatten(manifest.get("sparsity") or {}), "quant": _flatten(quant),
        "images": {k: paths[k].name for k in ("gantt", "utilization", "throughput")},
        "json_name": paths["json"].name,
        "gantt_sequences": len(head), "gantt_label": label,
        "measured": _measured_rows(run) if run else None,
        "run_json": str(RUN_JSON), "comparison": comparison,
    }
    fsutil.write_text(paths["html"], render_report(context), root)
    return paths["html"]


def _report_root(project_dir, html: Path) -> Path:
    """The folder a report may write in: the project folder when the report goes inside it (the default
    ``DIR/report/``: a link at ``report/`` or at a file's name is refused, :mod:`padless.fsutil`), else the
    folder of ``--out``."""
    proj = Path(os.path.abspath(project_dir))
    h = Path(os.path.abspath(html))
    return proj if h.is_relative_to(proj) else h.parent
