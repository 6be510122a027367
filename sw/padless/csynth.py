"""Vitis HLS synthesis reports (csynth.xml) into the project: when Vitis has run, its figures win.

``vitis_hls`` writes one ``<module>_csynth.xml`` per synthesized function into
``hls/<project>/solution1/syn/report/`` (``csynth.xml`` is the top's). The schema, as UG1399 ("Synthesis
Summary", the XML report) and hls4ml's reader (hls4ml/report/vivado_report.py, ``parse_vivado_report``)
read it::

    <profile>
      <UserAssignments> <Part/> <TopModelName/> <TargetClockPeriod/> (ns) <ClockUncertainty/>
      <PerformanceEstimates>
        <SummaryOfTimingAnalysis> <EstimatedClockPeriod/> (ns)
        <SummaryOfOverallLatency> <Best-caseLatency/> <Worst-caseLatency/> <Interval-min/> <Interval-max/>
        <SummaryOfLoopLatency> <LOOP_NAME> <TripCount/> <Latency/> <PipelineII/> <PipelineDepth/>
                                           [nested loops] </LOOP_NAME>
      <AreaEstimates> <Resources> <BRAM_18K/> <DSP/> <FF/> <LUT/> <URAM/>
                      <AvailableResources> (the same)

hls4ml's reader needs an hls4ml project (its project.tcl) and keeps only the top's summary, so padless
reads the same fields itself, from every module report, per loop. :func:`parse_report_dir` returns the
project's ``csynth`` entry; :func:`record` writes it into the manifest atomically; ``padless profile``
and the DSE then use the estimated clock (``clock_MHz`` = 1000 / estimated period) and the achieved II
and pipeline depths, and label their figures so (:func:`clock_of`).

The files are untrusted input: they are read only from inside the project's ``hls/`` folder (no
symlinks), at most :data:`MAX_BYTES` each, with entity declarations refused (no DTD expansion).
"""
from __future__ import annotations

import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .errors import ProjectError

__all__ = ["parse_csynth_xml", "parse_report_dir", "record", "clock_of", "find_report_dir", "MAX_BYTES"]

#: Largest report file read (bytes).
MAX_BYTES = 32 * 1024 * 1024
_RES = (("BRAM_18K", "bram_18k"), ("DSP", "dsp"), ("FF", "ff"), ("LUT", "lut"), ("URAM", "uram"))


def _num(text: str | None) -> float | None:
    """A report number: ``"4.868"`` -> 4.868; ``"1 ~ 4096"`` -> the upper end; ``"undef"``/``"?"``/``""`` ->
    None."""
    if text is None:
        return None
    t = text.strip()
    if "~" in t:
        t = t.split("~")[-1].strip()
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _int(text: str | None) -> int | None:
    v = _num(text)
    return None if v is None else int(v)


def _loops(node: ET.Element | None, prefix: str = "") -> list[dict]:
    out = []
    if node is None:
        return out
    for child in node:
        if child.tag in ("unit",) or len(child) == 0:
            continue
        name = f"{prefix}{child.tag}"
        out.append({"name": name, "trip_count": _int(child.findtext("TripCount")),
                    "latency": _int(child.findtext("Latency")), "ii": _int(child.findtext("PipelineII")),
                    "depth": _int(child.findtext("PipelineDepth")),
                    "iteration_latency": _int(child.findtext("IterationLatency"))})
        out += _loops(child, name + "/")
    return out


def parse_csynth_xml(text: str, source: str = "csynth.xml") -> dict:
    """One csynth.xml report (its text) -> ``{"module", "part", "target_period_ns", "estimated_period_ns",
    "estimated_fmax_MHz", "latency" {best, worst}, "interval" {min, max}, "loops" [{name, trip_count,
    latency, ii, depth, iteration_latency}], "resources" {bram_18k, dsp, ff, lut, uram},
    "available" {...}}`` (None where the report says ``undef``/``?``).

    Raises ProjectError: not XML, a DTD/entity declaration, or not a csynth profile (no
    PerformanceEstimates).
    """
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text[:4096] + text[-4096:], re.I) or "<!ENTITY" in text:
        raise ProjectError(f"{source}: refusing an XML report that declares entities (a csynth.xml has none)")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ProjectError(f"{source}: not a Vitis HLS csynth.xml report ({exc}); rerun `make hls`") from None
    perf = root.find("PerformanceEstimates")
    if root.tag != "profile" or perf is None:
        raise ProjectError(f"{source}: not a Vitis HLS csynth.xml report (no <profile>/<PerformanceEstimates>)")
    ua = root.find("UserAssignments")
    target = _num(ua.findtext("TargetClockPeriod")) if ua is not None else None
    est = _num(perf.findtext("SummaryOfTimingAnalysis/EstimatedClockPeriod"))
    lat = perf.find("SummaryOfOverallLatency")

    def res(node):
        return {key: _int(node.findtext(tag)) for tag, key in _RES} if node is not None else {}
    area = root.find("AreaEstimates")
    return {"module": (ua.findtext("TopModelName") if ua is not None else None) or Path(source).name.removesuffix("_csynth.xml"),
            "part": ua.findtext("Part") if ua is not None else None,
            "target_period_ns": target, "estimated_period_ns": est,
            "estimated_fmax_MHz": round(1000.0 / est, 3) if est else None,
            "latency": {"best": _int(lat.findtext("Best-caseLatency")) if lat is not None else None,
                        "worst": _int(lat.findtext("Worst-caseLatency")) if lat is not None else None},
            "interval": {"min": _int(lat.findtext("Interval-min")) if lat is not None else None,
                         "max": _int(lat.findtext("Interval-max")) if lat is not None else None},
            "loops": _loops(perf.find("SummaryOfLoopLatency")),
            "resources": res(area.find("Resources") if area is not None else None),
            "available": res(area.find("AvailableResources") if area is not None else None)}


def find_report_dir(project_dir: str | Path) -> Path | None:
    """The ``syn/report`` folder of the project's Vitis HLS run (``hls/<name>/<solution>/syn/report``), or
    None. Only folders inside the project's ``hls/`` are looked at, none through a symlink."""
    hls = Path(project_dir).resolve() / "hls"
    if not hls.is_dir() or hls.is_symlink():
        return None
    for prj in sorted(p for p in hls.iterdir() if p.is_dir() and not p.is_symlink()):
        for sol in sorted(p for p in prj.iterdir() if p.is_dir() and not p.is_symlink()):
            rep = sol / "syn" / "report"
            if rep.is_dir() and not rep.is_symlink() and rep.resolve().is_relative_to(hls):
                return rep
    return None


def parse_report_dir(report_dir: str | Path, top: str = "padless_encoder") -> dict:
    """Every ``*_csynth.xml`` of a syn/report folder -> the project's ``csynth`` entry: the top's summary
    (``csynth.xml`` or ``<top>_csynth.xml``) plus ``modules`` {module: {latency, interval, loops,
    resources}} and ``processes`` {p_*: {"ii": the largest achieved II of its pipelined loops, "depth":
    the largest pipeline depth}} (the dataflow processes padless's cycle model names).

    Raises ProjectError: no top report in the folder, or a report that is not csynth.xml.
    """
    rep = Path(report_dir)
    files = sorted(p for p in rep.glob("*csynth.xml") if p.is_file() and not p.is_symlink())
    top_file = next((p for p in files if p.name in (f"{top}_csynth.xml", "csynth.xml")), None)
    if top_file is None:
        raise ProjectError(f"{rep}: no {top}_csynth.xml (or csynth.xml): run `make hls` (csynth_design) first")
    parsed = {}
    for p in files:
        if p.stat().st_size > MAX_BYTES:
            raise ProjectError(f"{p}: larger than {MAX_BYTES >> 20} MiB, not a csynth report")
        parsed[p.name] = parse_csynth_xml(p.read_text(errors="replace"), str(p))
    top_rep = parsed[top_file.name]
    modules = {r["module"]: {k: r[k] for k in ("latency", "interval", "loops", "resources")}
               for name, r in parsed.items() if name != top_file.name}
    processes: dict[str, dict] = {}
    for mod, r in modules.items():
        m = re.match(r"^(p_[a-z0-9_]+?)(_\d+)?$", mod)
        if not m:
            continue
        pipelined = [lp for lp in r["loops"] if lp["ii"]]
        if pipelined:
            processes[m.group(1)] = {"ii": max(lp["ii"] for lp in pipelined),
                                     "depth": max(lp["depth"] or 0 for lp in pipelined)}
    out = {k: top_rep[k] for k in ("module", "part", "target_period_ns", "estimated_period_ns",
                                   "estimated_fmax_MHz", "latency", "interval", "loops", "resources", "available")}
    out.update({"modules": modules, "processes": processes, "source": "Vitis HLS csynth.xml (synthesized)"})
    return out


def record(project_dir: str | Path, report_dir: str | Path | None = None) -> dict:
    """Parse the project's csynth reports and write them into its manifest (``csynth``, atomically).
    Returns the entry. Raises ProjectError when there is no report."""
    from .project import update_manifest
    rep = Path(report_dir) if report_dir else find_report_dir(project_dir)
    if rep is None:
        raise ProjectError(f"{project_dir}: no Vitis HLS synthesis report under hls/ (run `make hls` first)")
    entry = parse_report_dir(rep)
    update_manifest(Path(project_dir), {"csynth": entry})
    return entry


def clock_of(manifest: dict, board) -> dict:
    """The kernel clock padless's figures use for a project, and its source: ``{"clock_MHz", "source",
    "synthesized"}``. The csynth estimate wins when the project has one (its estimated Fmax, at most the
    platform maximum); else the engine's clock -- the board's default, whose source is the board file's
    ``clock_source`` -- or the one given at compile."""
    syn = manifest.get("csynth") or {}
    eng = (manifest.get("hls") or {}).get("engine") or {}
    if syn.get("estimated_fmax_MHz"):
        clk = min(float(syn["estimated_fmax_MHz"]), float(board.clock_max_MHz))
        return {"clock_MHz": clk, "synthesized": True,
                "source": f"Vitis HLS csynth estimate ({syn['estimated_period_ns']} ns, at most the platform's "
                          f"{board.clock_max_MHz:g} MHz)"}
    clk = float(eng.get("clock_MHz") or board.clock_MHz)
    if clk == float(board.clock_MHz):
        return {"clock_MHz": clk, "synthesized": False, "source": f"{board.name} default: {board.clock_source}"}
    return {"clock_MHz": clk, "synthesized": False, "source": "given at compile (hls.engine.clock_MHz)"}


def main(argv: list[str] | None = None) -> int:
    """``python -m padless.csynth PROJECT_DIR``: record the project's csynth reports (``make hls`` runs it)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m padless.csynth PROJECT_DIR", file=sys.stderr)
        return 2
    try:
        e = record(args[0])
    except ProjectError as exc:
        print(f"padless: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"padless: csynth recorded: estimated clock {e['estimated_fmax_MHz']} MHz, "
          f"{len(e['processes'])} dataflow processes, {len(e['modules'])} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
