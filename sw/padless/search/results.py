"""The search's outputs: ``search.json``, ``pareto.csv``, ``report.html`` (Pareto plots) and the terminal
tables (docs/search.md "Results").

``search.json``: ``{"format": "padless-search", "version": 1, "model", "dataset", "constraints", "space",
"trials": [{number, config {board, attention, weights, quant, memory, compile}, objectives, sources, status
(complete | pruned | failed), reason, error, project, rebuild, seconds, cache_hit}], "pareto": [numbers],
"per_board": {board: number | null}, "device": {board, config, objectives, number, price_USD, price_source,
project, rebuild, test} | null, "unmet": [...], "duplicates": n, "requeued": [{number, requeued}], "run"}``.
"""
from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

from ._io import atomic_write, safe_dir
from .choice import best_per_board, choose_device, feasible, unmet, unmet_message
from .space import PARAMS, config_hash

__all__ = ["collect", "write_all", "summary_lines", "CSV_COLUMNS", "FORMAT"]

FORMAT = "padless-search"
CSV_COLUMNS = ("number", "board", "attention", "weights", "quant", "memory", "feasible", "agreement", "cosine",
               "throughput_seq_s", "latency_us", "latency_p99_us", "energy_uJ", "power_W", "clock_MHz", "dsp",
               "lut", "bram_36k", "uram", "project", "rebuild")


def _rebuild(model: str, board: str, cfg_file: str) -> str:
    return f"padless compile {model} --board {board} --config {cfg_file} --out {board}-project"


def collect(study, meta: dict, out: Path | None = None) -> dict:
    """The search.json document from the study's journal and the search's meta (model, dataset, space,
    constraints). Writes each front point's and the device's compile config under ``out/configs/`` (so
    ``rebuild`` is a runnable command) when ``out`` is given."""
    from optuna.trial import TrialState
    cons = meta["constraints"]
    trials, dups, requeued = [], 0, []
    status_of = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        if t.state == TrialState.FAIL and "duplicate_of" in ua:
            dups += 1
            continue
        if t.state == TrialState.FAIL and (ua.get("interrupted") or ua.get("lost_worker")):
            requeued.append({"number": t.number, "config": {p: t.params.get(p) for p in PARAMS},
                             "why": "interrupted" if ua.get("interrupted") else "lost worker"})
            continue
        if t.state not in status_of:
            continue
        r = ua.get("result") or {}
        rec = {"number": t.number, "config": {**{p: t.params.get(p) for p in PARAMS}, "compile": ua.get("config")},
               "objectives": r.get("objectives") or {}, "sources": r.get("sources") or {},
               "status": status_of[t.state], "reason": r.get("reason"), "stage": r.get("stage"),
               "project": r.get("project"), "cache_hit": r.get("cache_hit"), "seconds": r.get("seconds")}
        if rec["status"] == "failed":
            rec["error"] = r.get("error") or ua.get("error")
        if "requeued_from" in ua:
            rec["requeued_from"] = ua["requeued_from"]
        if "cheaper_than" in ua:
            rec["cheaper_than"] = ua["cheaper_than"]
        trials.append(rec)
    boards = list(meta["space"]["boards"])
    try:
        pareto = sorted(t.number for t in study.best_trials)
    except (ValueError, RuntimeError):
        pareto = []
    nums = {t["number"]: t for t in trials}
    pareto = [n for n in pareto if n in nums and feasible(nums[n], cons)]
    for t in trials:
        t["feasible"] = feasible(t, cons)
    per_board = best_per_board(trials, cons, boards)
    keep = set(pareto) | {n for n in per_board.values() if n is not None}
    for n in keep:
        t = nums[n]
        name = f"configs/{config_hash(t['config'])[:16]}.yaml"
        t["rebuild"] = _rebuild(meta["model"], t["config"]["board"], str(Path(out or ".") / name))
        t["config_file"] = name
        if out is not None:
            import yaml
            safe_dir(Path(out) / "configs", "--out configs")
            atomic_write(Path(out) / name, yaml.safe_dump(t["config"]["compile"] or {}, sort_keys=True))
    device = choose_device(trials, cons, boards)
    doc = {"format": FORMAT, "version": 1, "model": meta["model"], "dataset": meta["dataset"],
           "selection_limit": meta.get("limit"), "test_limit": meta.get("test_limit"), "constraints": cons,
           "space": meta["space"], "trials": trials, "pareto": pareto, "per_board": per_board, "device": device,
           "unmet": [] if device else unmet(trials, cons), "duplicates": dups, "requeued": requeued,
           "counts": {s: sum(1 for t in trials if t["status"] == s) for s in ("complete", "pruned", "failed")}
           | {"pruned_by_model": sum(1 for t in trials if t["status"] == "pruned" and t.get("stage") == "model"),
              "compiled": sum(1 for t in trials if t.get("project"))}}
    if device:
        device["rebuild"] = nums[device["number"]].get("rebuild")
    return doc


def _csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    nums = {t["number"]: t for t in doc["trials"]}
    for n in doc["pareto"]:
        t = nums[n]
        o, r = t["objectives"], t["objectives"].get("resources") or {}
        row = {"number": n, **{p: t["config"][p] for p in PARAMS}, "feasible": t["feasible"],
               **{k: o.get(k) for k in ("agreement", "cosine", "throughput_seq_s", "latency_us", "latency_p99_us",
                                        "energy_uJ", "power_W", "clock_MHz")},
               **{k: r.get(k) for k in ("dsp", "lut", "bram_36k", "uram")}, "project": t.get("project"),
               "rebuild": t.get("rebuild")}
        w.writerow([row[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def _plots(doc: dict) -> list[tuple[str, str]]:
    """(title, base64 PNG) of the three Pareto plots, feasible and infeasible points apart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [t for t in doc["trials"] if t["status"] in ("complete", "pruned")]
    front = set(doc["pareto"])
    specs = [("agreement vs throughput", "throughput_seq_s", "agreement", "throughput (seq/s, simulated)", "agreement with fp32 (%)"),
             ("agreement vs energy", "energy_uJ", "agreement", "energy per sequence (uJ, estimated)", "agreement with fp32 (%)"),
             ("latency vs throughput", "throughput_seq_s", "latency_us", "throughput (seq/s, simulated)", "batch-1 latency, median length (us, simulated)")]
    out = []
    for title, xk, yk, xl, yl in specs:
        fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
        groups = {"front (feasible Pareto set)": [], "feasible": [], "infeasible / pruned": []}
        for t in pts:
            o = t["objectives"]
            if xk not in o or yk not in o:
                continue
            g = "front (feasible Pareto set)" if t["number"] in front else "feasible" if t["feasible"] else "infeasible / pruned"
            groups[g].append((o[xk], o[yk] * (100 if yk == "agreement" else 1)))
        style = {"front (feasible Pareto set)": dict(c="tab:red", marker="*", s=120),
                 "feasible": dict(c="tab:blue", marker="o", s=30), "infeasible / pruned": dict(c="0.6", marker="x", s=30)}
        for g, xy in groups.items():
            if xy:
                ax.scatter([a for a, _ in xy], [b for _, b in xy], label=f"{g} ({len(xy)})", **style[g])
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if any(groups.values()):
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no trial measured both figures", ha="center", va="center", transform=ax.transAxes)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        plt.close(fig)
        out.append((title, base64.b64encode(buf.getvalue()).decode()))
    return out


_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>padless search: {{ doc.model }} on {{ doc.dataset }}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}.l{text-align:left}</style></head><body>
<h1>padless search: {{ doc.model }} on {{ doc.dataset }}</h1>
<p>Constraints: {{ cons }}. Trials: {{ doc.counts.complete }} complete, {{ doc.counts.pruned }} pruned
({{ doc.counts.pruned_by_model }} by the cycle model and resource estimate before compiling), {{ doc.counts.failed }} failed;
{{ doc.duplicates }} duplicate samples skipped.</p>
<h2>Device choice</h2><p>{{ choice }}</p>{% if baseline %}<p>Beside it, {{ baseline }}</p>{% endif %}
{% for title, png in plots %}<figure style="display:inline-block"><img src="data:image/png;base64,{{ png }}" alt="{{ title }}"></figure>{% endfor %}
<p>Agreement and cosine: simulated (golden integer model, bit-exact with the HLS csim) against fp32 on the selection split.
Throughput and latency: simulated (timed C-simulation of the generated HLS) at the plan's clock. Energy: estimated
(static + per-resource dynamic power at the simulated activity, board files' coefficients).</p>
<h2>Pareto front (feasible)</h2>{{ front }}
<h2>All trials</h2>{{ table }}
</body></html>"""


def _table(rows: list, cols: list) -> str:
    from markupsafe import escape
    h = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < 7 else ''}'>{escape(v)}</td>" for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _row(t: dict) -> list:
    o = t["objectives"]
    f = lambda k, fmt: fmt.format(o[k]) if k in o else ""  # noqa: E731
    return [t["number"], t["config"]["board"], t["config"]["attention"], t["config"]["weights"], t["config"]["quant"],
            t["config"].get("memory", "auto"), t["status"] + (" *" if t.get("feasible") else ""), f("agreement", "{:.2%}"), f("cosine", "{:.4f}"),
            f("throughput_seq_s", "{:,.0f}"), f("latency_us", "{:,.1f}"), f("energy_uJ", "{:,.1f}"),
            (o.get("resources") or {}).get("dsp", ""), t.get("reason") or t.get("error") or ""]


COLS = ["#", "board", "attention", "weights", "quant", "memory", "status", "agreement", "cosine", "seq/s", "latency us",
        "energy uJ", "DSP", "note"]


def constraint_text(cons: dict) -> str:
    from .choice import CONSTRAINT_TEXT
    parts = [CONSTRAINT_TEXT[k][2].format(v) for k, v in cons.items() if v is not None]
    return ", ".join(parts) or "none"


def choice_text(doc: dict) -> str:
    d = doc.get("device")
    if not d:
        return "no device: " + unmet_message(doc.get("unmet") or [])
    return (f"{d['board']} (list price ${d['price_USD']:,.0f}, {d['price_source']}): trial #{d['number']} "
            f"{d['config']['attention']} {d['config']['weights']} {d['config']['quant']} "
            f"{d['config'].get('memory', 'auto')}, " + _figures(d))


def _figures(d: dict) -> str:
    """A chosen configuration's (or the baseline's) figures, and its test split when it has one."""
    o = d["objectives"]
    s = (f"agreement {o['agreement']:.2%}, cosine {o['cosine']:.4f}, {o['throughput_seq_s']:,.0f} seq/s, "
         f"{o['latency_us']:,.1f} us, {o['energy_uJ']:,.1f} uJ/seq (estimated) at {o['clock_MHz']:.0f} MHz")
    if d.get("test"):
        s += (f"; test split ({d['test']['n']} texts): agreement {d['test']['agreement']:.2%}, "
              f"cosine {d['test']['cosine']:.4f}")
    return s


def baseline_text(doc: dict) -> str | None:
    """One line for the default project evaluated beside the choice (``--baseline``), or None."""
    b = doc.get("baseline")
    if not b:
        return None
    if b.get("error"):
        return f"baseline {b['board']}: not evaluated ({b['error']})"
    return f"baseline (default project on {b['board']}, weights {b.get('weights')}): " + _figures(b)


def write_all(out, doc: dict) -> None:
    """Write search.json, pareto.csv and report.html into ``out`` (atomically)."""
    from jinja2 import Environment
    from markupsafe import Markup
    out = Path(out)
    atomic_write(out / "search.json", json.dumps(doc, indent=1, sort_keys=True, default=str))
    atomic_write(out / "pareto.csv", _csv(doc))
    nums = {t["number"]: t for t in doc["trials"]}
    env = Environment(autoescape=True)
    html = env.from_string(_HTML).render(doc=doc, cons=constraint_text(doc["constraints"]), choice=choice_text(doc),
                                         baseline=baseline_text(doc),
                                         plots=_plots(doc),
                                         front=Markup(_table([_row(nums[n]) for n in doc["pareto"]], COLS)),
                                         table=Markup(_table([_row(t) for t in doc["trials"]], COLS)))
    atomic_write(out / "report.html", html)


def summary_lines(doc: dict) -> list[str]:
    """The terminal summary: counts, the front, the best configuration per board, the device choice."""
    nums = {t["number"]: t for t in doc["trials"]}
    c = doc["counts"]
    lines = [f"padless search: {doc['model']} on {doc['dataset']}; constraints: {constraint_text(doc['constraints'])}",
             f"  trials: {c['complete']} complete, {c['pruned']} pruned ({c['pruned_by_model']} by the model before "
             f"compiling), {c['failed']} failed; {c['compiled']} compiled; {doc['duplicates']} duplicate samples skipped"]
    fmt = "  {:>4} {:<7} {:<13} {:<10} {:<7} {:<8} {:>9} {:>7} {:>10} {:>10} {:>9}"
    head = fmt.format("#", "board", "attention", "weights", "quant", "memory", "agreement", "cosine", "seq/s", "latency us", "uJ/seq")
    def row(t):
        o = t["objectives"]
        return fmt.format(t["number"], t["config"]["board"], t["config"]["attention"], t["config"]["weights"],
                          t["config"]["quant"], t["config"].get("memory", "auto"), f"{o['agreement']:.2%}", f"{o['cosine']:.4f}",
                          f"{o['throughput_seq_s']:,.0f}", f"{o['latency_us']:,.1f}", f"{o['energy_uJ']:,.1f}")
    lines.append(f"Pareto front ({len(doc['pareto'])} feasible points; simulated fidelity, throughput, latency; estimated energy):")
    lines.append(head)
    lines += [row(nums[n]) for n in doc["pareto"]]
    lines.append("Best configuration per board (feasible, highest throughput):")
    for b, n in doc["per_board"].items():
        lines.append(row(nums[n]) if n is not None else f"  {'-':>4} {b:<7} no feasible configuration")
    lines.append("Device choice: " + choice_text(doc))
    if baseline_text(doc):
        lines.append("Beside it, " + baseline_text(doc))
    d = doc.get("device")
    if d and d.get("rebuild"):
        lines.append(f"  project: {d.get('project')}")
        lines.append(f"  rebuild: {d['rebuild']}")
    return lines
