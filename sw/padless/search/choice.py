"""Feasibility, the best configuration per board and the device choice (docs/search.md "Device choice").

Following the hierarchical-pruning co-design framework (arXiv 2110.10030: a dataset, a model, a latency and
an accuracy constraint in; the best device meeting both out, low-end to high-end), the choice is the
cheapest board by its cited list price (boards/*.yaml ``price:``) whose best configuration meets every
constraint; a board's best configuration is its feasible trial of highest simulated throughput (ties: higher
agreement, then lower energy). When no board meets them, :func:`unmet` names the constraint and by how much.
"""
from __future__ import annotations

from .power import board_facts

__all__ = ["feasible", "best_per_board", "choose_device", "unmet", "unmet_message", "CONSTRAINT_TEXT"]

#: constraint option -> (objective, "min" | "max", text, unit format)
CONSTRAINT_TEXT = {
    "min_agreement": ("agreement", "min", "agreement >= {:.2%}", lambda v: f"{v:.2%}"),
    "min_cosine": ("cosine", "min", "cosine >= {:.4f}", lambda v: f"{v:.4f}"),
    "max_latency_us": ("latency_us", "max", "latency <= {:g} us", lambda v: f"{v:,.1f} us"),
    "min_throughput": ("throughput_seq_s", "min", "throughput >= {:g} seq/s", lambda v: f"{v:,.0f} seq/s"),
}


def violations(obj: dict, cons: dict) -> dict:
    """``{option: amount over the bound}`` (> 0 violated; missing objective: None) for the constraints given."""
    out = {}
    for opt, (key, kind, _, _) in CONSTRAINT_TEXT.items():
        bound = cons.get(opt)
        if bound is None:
            continue
        v = obj.get(key)
        out[opt] = None if v is None else (bound - v if kind == "min" else v - bound)
    return out


def feasible(trial: dict, cons: dict) -> bool:
    """A complete trial whose every constrained objective is known and within its bound."""
    if trial.get("status") != "complete":
        return False
    return all(v is not None and v <= 0 for v in violations(trial.get("objectives") or {}, cons).values())


def _rank(t: dict):
    o = t["objectives"]
    return (o.get("throughput_seq_s", 0.0), o.get("agreement", 0.0), -o.get("energy_uJ", 0.0))


def best_per_board(trials: list, cons: dict, boards: list) -> dict:
    """``{board: trial number or None}``: each board's feasible trial of highest throughput."""
    out = {}
    for b in boards:
        ok = [t for t in trials if t["config"]["board"] == b and feasible(t, cons)]
        out[b] = max(ok, key=_rank)["number"] if ok else None
    return out


def choose_device(trials: list, cons: dict, boards: list) -> dict | None:
    """The cheapest board (list price) with a feasible configuration: ``{board, config, objectives, number,
    price_USD, price_source, project}``, or None."""
    best = best_per_board(trials, cons, boards)
    by_num = {t["number"]: t for t in trials}
    cands = [(board_facts(b)["price"]["list_USD"], b) for b, n in best.items() if n is not None]
    if not cands:
        return None
    price, b = min(cands)
    t = by_num[best[b]]
    return {"board": b, "number": t["number"], "config": t["config"], "objectives": t["objectives"],
            "price_USD": price, "price_source": board_facts(b)["price"]["source"], "project": t.get("project"),
            "rebuild": t.get("rebuild")}


def _known(t: dict, key: str):
    """(value, source) of an objective: simulated when measured, else the cycle model's (latency, throughput)."""
    o = t.get("objectives") or {}
    if key in o:
        return o[key], "simulated"
    m = o.get("model") or {}
    if key in m:
        return m[key], "modeled"
    return None, None


def unmet(trials: list, cons: dict) -> list:
    """Why no board meets the constraints: for each constraint no trial meets, ``{constraint, bound, best,
    by, board, number, source, text}`` (the best value any trial reached); when each constraint alone is met
    by some trial but none meets all, one ``{constraint: "all together", closest trial's violations}``."""
    out = []
    for opt, (key, kind, text, fmt) in CONSTRAINT_TEXT.items():
        bound = cons.get(opt)
        if bound is None:
            continue
        vals = [(v, s, t) for t in trials for v, s in [_known(t, key)] if v is not None]
        if not vals:
            out.append({"constraint": opt, "bound": bound, "best": None, "by": None, "board": None, "number": None,
                        "source": None, "text": f"{text.format(bound)} was never measured (every candidate was "
                                                "pruned on another constraint first)"})
            continue
        v, s, t = (max if kind == "min" else min)(vals, key=lambda x: x[0])
        by = bound - v if kind == "min" else v - bound
        if by > 0:
            out.append({"constraint": opt, "bound": bound, "best": v, "by": by, "board": t["config"]["board"],
                        "number": t["number"], "source": s,
                        "text": f"no board meets {text.format(bound)}: the best is {fmt(v)} ({t['config']['board']}, "
                                f"trial #{t['number']}, {s}), {fmt(abs(by)) if opt != 'min_agreement' else f'{abs(by) * 100:.2f} points'} "
                                f"{'short' if kind == 'min' else 'over'}"})
    if out or not trials:
        return out
    # each met alone, never together: the complete trial with the smallest relative violation
    def rel(t):
        viol = violations(t.get("objectives") or {}, cons)
        return sum((v / abs(cons[k])) if v and v > 0 and cons[k] else 0.0 for k, v in viol.items())
    comp = [t for t in trials if t.get("status") == "complete"] or trials
    t = min(comp, key=rel)
    viol = {k: v for k, v in violations(t.get("objectives") or {}, cons).items() if v is None or v > 0}
    desc = ", ".join(f"{CONSTRAINT_TEXT[k][2].format(cons[k])} missed by "
                     f"{CONSTRAINT_TEXT[k][3](abs(v)) if v is not None else 'unknown (pruned before measuring)'}"
                     for k, v in viol.items())
    return [{"constraint": "all together", "number": t["number"], "board": t["config"]["board"], "violations": viol,
             "text": f"each constraint is met by some trial but none meets all: the closest, trial #{t['number']} "
                     f"({t['config']['board']}), has {desc}"}]


def unmet_message(items: list) -> str:
    """One paragraph for the terminal."""
    return "; ".join(i["text"] for i in items) if items else "no trial finished"
