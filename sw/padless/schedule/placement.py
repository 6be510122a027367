"""SLR placement of the engine's dataflow processes: a fit check per SLR and the SLR crossings.

The Alveo parts are stacked silicon: U200 and U280/U55C three super logic regions (SLRs), U250 four
(boards/*.yaml ``slrs``, docs/boards.md). A signal between SLRs runs on super long lines (SLLs) through
the interposer and costs a pipeline register on each side (UG949, "Super Logic Region"; AMD recommends
keeping tightly connected logic within an SLR and the kernel next to its memory bank, UG1393 "Assigning
Compute Units to SLRs"). Vitis places one compute unit across SLRs itself, so the estimate must check
what the placer will face: every SLR under its cap, not only the device's totals.

:func:`process_resources` charges the kernel's resources (:func:`padless.schedule.engine.resources`'s
detail) to the dataflow process that owns them; :func:`place` puts the processes on the SLRs:

* the m_axi movers (``p_desc``, ``p_loader``, ``p_res_loader``, ``p_writer``) and the interface logic
  (``m_axi``) sit in ``board.memory_slr`` (U280/U55C: SLR0, next to the HBM); each weight-loader
  instance's carry buffer is charged to the process whose memories it fills (its beats cross, not its
  multiplexers);
* the compute chain (``p_qkv`` ... ``p_ln2`` in dataflow order) is cut into contiguous runs, one per
  SLR, the SLRs taken outward from the memory SLR; every cut is tried (78 for three SLRs, 364 for four;
  no ILP) and the placement kept is the one that fits every SLR under its cap with the fewest SLR
  crossings (a channel between SLRs i and j counts |i - j|), then the emptiest fullest SLR.

A crossing is a FIFO, a ping-pong block's ports or the weight loader's write path (:func:`channels`).
"""
from __future__ import annotations

import itertools
from typing import Mapping

__all__ = ["place", "process_resources", "channels", "ANCHORED", "CHAIN", "RESOURCES"]

#: The resources placed per SLR.
RESOURCES = ("dsp", "lut", "ff", "bram_36k", "uram")
#: Processes that sit next to the off-chip memory (m_axi masters) and the interface/loader logic.
ANCHORED = ("m_axi", "p_desc", "p_loader", "p_res_loader", "p_writer")
#: The compute processes in dataflow order.
CHAIN = ("p_qkv", "p_select", "p_attn_qk", "p_attn_exp", "p_attn_pv", "p_ctx", "p_out", "p_ln1", "p_up",
         "p_down", "p_ln2")

_UNIT = {"qkv": "p_qkv", "out": "p_out", "up": "p_up", "down": "p_down", "ln1": "p_ln1", "ln2": "p_ln2",
         "attn_qk": "p_attn_qk", "attn_exp": "p_attn_exp", "attn_pv": "p_attn_pv", "select": "p_select",
         "fixed": "m_axi", "weight_loader": "m_axi",
         "policy": "p_writer"}   # the learned token policy (tokens.h tr_policy) sits in front of the writer
# load_elems instances (engine.weight_loads) -> the process whose memories they fill
_LOAD = {"ctx": "p_attn_pv", "res_attn": "p_out", "ln_attn": "p_ln1", "act": "p_up", "res_ffn": "p_down",
         "ln_ffn": "p_ln2", "gelu": "p_up", "scalars": "m_axi"}
_MEMORY = {"res_rq_out": "p_out", "ln_param_1": "p_ln1", "act_rq_up": "p_up", "gelu_tab": "p_up",
           "res_rq_down": "p_down", "ln_param_2": "p_ln2", "ctx_rq": "p_attn_pv", "q_blk": "p_qkv", "k_blk": "p_qkv",
           "v_blk": "p_qkv", "ctx_blk": "p_attn_pv", "qh_blk": "p_select", "kh_blk": "p_select", "vh_blk": "p_select",
           "ixq_blk": "p_select", "ixv_blk": "p_select", "k4": "p_select",
           # token reduction: token_select sits beside attention (placed with p_attn_pv), tr_pos is the writer's
           "tr_imp": "p_attn_pv", "rcv": "p_attn_pv", "tsel_loc": "p_attn_pv", "tr_pos": "p_writer",
           # the learned policy: its first-layer ROM beside the writer, the count table in the loader
           "tr_pol_w1": "p_writer", "ld_cnt": "p_loader"}
# FIFOs of the region (padless_encoder.cpp): name -> (producer, consumer)
_FIFO = {"d_src": ("p_desc", "p_loader"), "d_qkv": ("p_loader", "p_qkv"), "d_res": ("p_loader", "p_res_loader"),
         "d_sel": ("p_qkv", "p_select"), "d_att": ("p_select", "p_attn_qk"), "d_exp": ("p_attn_qk", "p_attn_exp"),
         "d_pv": ("p_attn_exp", "p_attn_pv"), "d_ctx": ("p_attn_pv", "p_ctx"), "d_out": ("p_ctx", "p_out"),
         "d_ln1": ("p_out", "p_ln1"), "d_up": ("p_ln1", "p_up"), "d_down": ("p_up", "p_down"),
         "d_ln2": ("p_down", "p_ln2"), "d_wr": ("p_ln2", "p_writer"), "x_rows": ("p_loader", "p_qkv"),
         "res_rows": ("p_res_loader", "p_out"), "ctx_rows": ("p_ctx", "p_out"), "h_rows": ("p_ln1", "p_up"),
         "out_rows": ("p_ln2", "p_writer"), "a_rows": ("p_up", "p_down"), "h_fwd": ("p_up", "p_down"),
         "y_attn": ("p_out", "p_ln1"), "st_attn": ("p_out", "p_ln1"), "y_ffn": ("p_down", "p_ln2"),
         "st_ffn": ("p_down", "p_ln2"), "scores": ("p_attn_qk", "p_attn_exp"), "row_max": ("p_attn_qk", "p_attn_exp"),
         "exps": ("p_attn_exp", "p_attn_pv"), "factors": ("p_attn_exp", "p_attn_pv")}


def process_resources(cfg, memories: list, dsp: Mapping[str, int], lut: Mapping[str, int],
                      ff: Mapping[str, int]) -> dict:
    """``{process: {dsp, lut, ff, bram_36k, uram}}`` for :data:`ANCHORED` and :data:`CHAIN`: each unit of
    :func:`~padless.schedule.engine.dsp_count` / ``lut_estimate`` / ``ff_estimate`` to its process, each
    memory (``memories``: resources()'s placed detail) to the process that declares or produces it (a
    ping-pong block to its producer), each FIFO to its consumer. The sums equal resources()'s totals."""
    from .engine import _fifo, _fifos
    out = {p: {k: 0 for k in RESOURCES} for p in ANCHORED + CHAIN}

    def add(proc, key, n):
        out[proc][key] += int(n)
    for unit, n in dsp.items():
        add(_UNIT[unit], "dsp", n)
    for unit, n in ff.items():
        if unit not in ("fifos", "weight_loader"):
            add(_UNIT[unit], "ff", n)
    for unit, n in lut.items():
        if unit not in ("fifos", "lutram", "weight_loader"):
            add(_UNIT[unit], "lut", n)
    from .engine import carry_buffer, weight_loads
    for w in weight_loads(cfg):   # each carry buffer next to the memories its instance fills
        if w["carry"]:
            proc = _LOAD.get(w["name"]) or "p_" + w["name"].split("_", 1)[1]
            cb = carry_buffer(w["elem_bytes"], cfg.axi)
            add(proc, "lut", cb["lut"])
            add(proc, "ff", cb["ff"])
    for m in memories:
        name = m["name"]
        proc = _MEMORY.get(name) or "p_" + name.split("_", 1)[1]   # w_/i_/rq_<mvu>
        for k in ("bram_36k", "uram", "lut"):
            add(proc, k, m.get(k, 0))
    for f in _fifos(cfg):
        cons = _FIFO[f["name"]][1]
        st = _fifo(f["width_bits"], f["depth"])
        add(cons, "bram_36k", st["bram"])
        add(cons, "lut", st["lut"])
        add(cons, "ff", f["width_bits"])
    return out


def channels(cfg) -> list[tuple[str, str, str, int]]:
    """``(producer, consumer, name, bits)`` of every connection between placed processes: the region's
    FIFOs (their width), the ping-pong blocks (the bits of the ports the consumer reads a cycle) and the
    weight loader's write path into each process with weight or table memories (one m_axi beat)."""
    from .engine import _fifos
    d8 = 8 * cfg.head_dim
    out = [(*_FIFO[f["name"]], f["name"], int(f["width_bits"])) for f in _fifos(cfg)]
    out += [("p_qkv", "p_select", "qkv_blk", 3 * 2 * d8), ("p_select", "p_attn_qk", "qk_head_blk",
                                                             d8 * (1 + cfg.att_pe) + 2 * cfg.k_max * 16),
            ("p_select", "p_attn_pv", "v_head_blk", d8 * cfg.att_pe + cfg.k_max * 16),
            ("p_attn_pv", "p_ctx", "ctx_blk", 2 * d8)]
    for p in ("p_qkv", "p_out", "p_up", "p_down", "p_ln1", "p_ln2", "p_attn_pv"):
        out.append(("m_axi", p, "weight_load", 8 * cfg.axi))
    return out


def _order(n: int, mem: int) -> list[int]:
    """The SLRs outward from the memory SLR (nearer first, the lower of two at the same distance)."""
    return sorted(range(n), key=lambda s: (abs(s - mem), s))


def place(cfg, per_proc: Mapping[str, Mapping[str, int]], board, caps: Mapping[str, float] | None = None) -> dict:
    """Place the processes on ``board``'s SLRs (module docstring).

    Args:
        cfg: the EngineConfig; per_proc: :func:`process_resources`; board: a Board.
        caps: fraction of each SLR's resources the kernel may use, per resource (``dsp``, ``lut``, ``ff``,
            ``bram_36k``, ``uram``; default 1.0: all of it). A part of one die is one SLR holding the
            device's resources.

    Returns:
        ``{"fits", "slrs": [{"used": {res: n}, "limit": {res: n}, "processes": [...]}], "placement":
        {process: slr}, "crossings": n (channel x SLR boundaries), "crossing_channels": [[producer,
        consumer, name, bits, boundaries]], "boundary_bits": [bits crossing SLR i | i + 1], "memory_slr",
        "reason"}`` (``reason``: why it does not fit, "" when it does).
    """
    caps = {k: float((caps or {}).get(k, 1.0)) for k in RESOURCES}
    if board.slrs:
        limits = [{k: int(s[k]) for k in RESOURCES} for s in board.slrs]
        mem = int(board.memory_slr)
    else:
        limits = [{k: int(getattr(board, k)) for k in RESOURCES}]
        mem = 0
    n = len(limits)
    order = _order(n, mem)
    chans = channels(cfg)
    base = {k: sum(per_proc[p][k] for p in ANCHORED) for k in RESOURCES}
    chain = [per_proc[p] for p in CHAIN]
    m = len(CHAIN)

    def evaluate(cuts):
        where = {p: mem for p in ANCHORED}
        used = [{k: 0 for k in RESOURCES} for _ in range(n)]
        for k in RESOURCES:
            used[mem][k] += base[k]
        bounds = (0, *cuts, m)
        for seg in range(n):
            s = order[seg]
            for i in range(bounds[seg], bounds[seg + 1]):
                where[CHAIN[i]] = s
                for k in RESOURCES:
                    used[s][k] += chain[i][k]
        over = max(used[s][k] / max(caps[k] * limits[s][k], 1e-9) if used[s][k] else 0.0
                   for s in range(n) for k in RESOURCES)
        cross = sum(abs(where[a] - where[b]) for a, b, _, _ in chans)
        return over, cross, where, used
    best = None
    for cuts in itertools.combinations_with_replacement(range(m + 1), n - 1):
        over, cross, where, used = evaluate(cuts)
        key = (over > 1.0, cross if over <= 1.0 else 0, over)
        if best is None or key < best[0]:
            best = (key, where, used, over, cross)
    _, where, used, over, cross = best
    fits = over <= 1.0
    reason = ""
    if not fits:
        s, k = max(((s, k) for s in range(n) for k in RESOURCES),
                   key=lambda sk: used[sk[0]][sk[1]] / max(caps[sk[1]] * limits[sk[0]][sk[1]], 1e-9))
        name = f"SLR{s}" if board.slrs else board.name
        reason = (f"{name} needs {used[s][k]:,} {k} over its cap of {int(caps[k] * limits[s][k]):,} "
                  f"({caps[k]:.0%} of {limits[s][k]:,}) in the best placement of the dataflow processes")
    crossing = [[a, b, name, bits, abs(where[a] - where[b])] for a, b, name, bits in chans if where[a] != where[b]]
    boundary = [0] * max(n - 1, 0)
    for a, b, _, bits, _ in crossing:
        for i in range(min(where[a], where[b]), max(where[a], where[b])):
            boundary[i] += bits
    return {"fits": fits, "memory_slr": mem, "placement": where, "crossings": int(cross),
            "crossing_channels": crossing, "boundary_bits": boundary, "reason": reason,
            "slrs": [{"used": used[s], "limit": limits[s],
                      "processes": [p for p in ANCHORED + CHAIN if where[p] == s]} for s in range(n)]}
