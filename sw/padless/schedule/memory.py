"""The m_axi memory model: what the kernel's off-chip ports get from the board's memory.

Each m_axi bundle of the kernel (hw/hls/top/padless_encoder.cpp) is one port:

========  =========  ======================================================================
bundle    argument   traffic
========  =========  ======================================================================
gmem0     act_rd     the layer's input rows (loader), a burst per sequence
gmem1     act_res    the same rows for the residual add (res_loader), a burst per sequence
gmem2     act_wr     the layer's output rows (writer), a burst per sequence, then its responses
gmem3     desc       the call's descriptors, one burst (check_call, then desc_reader per layer)
gmem4     weights    weights.bin sections (load_elems): the init call, or every layer when streamed
========  =========  ======================================================================

A port has a request latency ``L`` (cycles of the kernel clock: read request to first beat; write last beat
to response), at most ``O`` requests in flight (``num_*_outstanding``), requests of at most ``BL`` beats
(``max_*_burst_length``) and ``cpb`` cycles a beat: its width over its share of the bank's bandwidth
(ports bound to one bank and active together split it evenly). :func:`memory_plan` computes them from the
board's memory (``boards/*.yaml`` ``memories:``: bandwidth, banks, ``latency_ns``, ``efficiency``) and the
kernel clock; codegen writes them into config.h (``PADLESS_MAXI_{LAT,OUT,BURST,CPB}_GMEMn``), where they
set the INTERFACE pragmas and the timed C-simulation's model (hw/hls/include/padless/sim_rt.h, "m_axi
memory model"). :func:`read_burst` and :func:`write_burst` restate that model in Python, request by
request; the cycle model (:mod:`padless.schedule.cost`) uses them. docs/performance-model.md, "Memory".

Sources of the memory facts: Wang et al., "Shuhai: Benchmarking High Bandwidth Memory on FPGAs", FCCM 2020
(Alveo U280: HBM2 and DDR4 idle latency and achieved bandwidth); Manev, Vaishnav, Koch, "Unexpected
Diversity: Quantitative Memory Analysis for Zynq UltraScale+ Systems", FPT 2019 (PS DDR through the HP
ports: 75% of the theoretical bandwidth on ZCU102); AMD UG1399 ("m_axi Interfaces": bursts never cross a
4 KB boundary, the adapter's read buffer holds ``num_read_outstanding x max_read_burst_length`` beats).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import InputError

__all__ = ["BUNDLES", "PortModel", "memory_plan", "share_cpb", "port", "ideal_plan", "read_burst", "write_burst", "single_reads",
           "DEFAULT_LATENCY_NS", "DEFAULT_EFFICIENCY"]

#: The kernel's m_axi bundles and their arguments, in the top function's order.
BUNDLES = {"gmem0": "act_rd", "gmem1": "act_res", "gmem2": "act_wr", "gmem3": "desc", "gmem4": "weights"}
#: Ports active at the same time (the layer region) share their bank; the weight port runs alone (the
#: init call, or a streamed layer's load before its region).
REGION_BUNDLES = ("gmem0", "gmem1", "gmem2", "gmem3")
#: Idle read latency by memory kind when a board file gives none, ns: Shuhai (FCCM 2020) on U280, page
#: hit: HBM2 106.7 ns, DDR4 73.3 ns; PS DDR4 behind the Zynq UltraScale+ HP ports: an estimate (the HP
#: port, the CCI and the PS DDR controller in front of DDR4), no published idle figure at hand.
DEFAULT_LATENCY_NS = {"HBM2": 106.7, "DDR4": 73.3, "PS_DDR4": 200.0, "PS_DDR3": 200.0}
#: Achieved over theoretical bandwidth of sequential bursts: Shuhai (425 of 460 GB/s HBM2; DDR4 about
#: 18 of 19.2 GB/s a channel), Manev et al. (PS DDR, ZCU102: 75%).
DEFAULT_EFFICIENCY = {"HBM2": 0.92, "DDR4": 0.94, "PS_DDR4": 0.75, "PS_DDR3": 0.75}
#: AXI4 bursts stay inside a 4 KB page and hold at most 256 beats (UG1399; ARM IHI 0022).
PAGE_BYTES, MAX_BURST = 4096, 256


@dataclass(frozen=True)
class PortModel:
    """One m_axi port as the memory model sees it.

    Attributes:
        latency: cycles from a read request to its first beat (writes: last beat to the response).
        outstanding: requests in flight (0: unlimited, the ideal memory).
        burst: beats a request at most.
        cpb: cycles a beat (>= 1): the port width over its share of the bank bandwidth.
        bank: the bank the port is bound to (``"HBM[0]"``, ``"DDR[1]"``, ``"PS_DDR"``); sharing: ports
            active together on it.
    """

    latency: int = 0
    outstanding: int = 0
    burst: int = 1
    cpb: float = 1.0
    bank: str = ""
    sharing: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PortModel":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _mem_fact(mem, key: str, table: dict, default: float) -> float:
    v = getattr(mem, key, None)
    if v is None and isinstance(mem, Mapping):
        v = mem.get(key)
    if v is None:
        v = table.get(str(getattr(mem, "kind", "")).upper(), default)
    return float(v)


def share_cpb(width_bytes: int, bank_bytes_per_cycle: float, sharing: int = 1) -> float:
    """Cycles a beat of a ``width_bytes`` port whose bank moves ``bank_bytes_per_cycle`` bytes a kernel
    cycle, split evenly between ``sharing`` ports active together: max(1, width / (bank / sharing)). Two
    ports on a bank that one port alone saturates each get half: twice the cycles a beat."""
    if width_bytes < 1 or bank_bytes_per_cycle <= 0 or sharing < 1:
        raise InputError(f"a port needs a positive width, bank bandwidth and sharing count, got {width_bytes}, "
                         f"{bank_bytes_per_cycle}, {sharing}")
    return max(1.0, width_bytes / (bank_bytes_per_cycle / sharing))


def memory_plan(board, clock_MHz: float, axi: int) -> dict:
    """The memory model of the kernel's five m_axi ports on ``board`` at ``clock_MHz`` with ``axi``-byte
    activation/weight beats (desc beats are 8 bytes).

    Binding (what the host and the v++ link must do, docs/hls.md "m_axi"): the activation buffer is one
    buffer on one bank (XRT binds a buffer to one bank), so act_rd, act_res and act_wr share that bank; on
    HBM boards desc and weights each get a pseudo channel of their own, on DDR boards with fewer banks the
    descriptors share the activation bank and the weights take the next bank (round robin). A bank's
    achieved bandwidth (theoretical x efficiency, over its banks) is split evenly between the region's
    ports bound to it ("fair share"); the weight port runs alone.

    Returns ``{"kind", "latency_ns", "clock_MHz", "ports": {bundle: PortModel.to_dict()}}``. Raises
    InputError for a clock or beat width below 1, or a board without off-chip memory.
    """
    if not clock_MHz or clock_MHz <= 0 or axi < 1:
        raise InputError(f"the memory model needs a positive clock and beat width, got {clock_MHz} MHz, {axi} bytes")
    mems = list(getattr(board, "memories", None) or [])
    if not mems:
        raise InputError(f"board {getattr(board, 'name', board)} lists no off-chip memory (memories: in its board file)")
    hbm = next((m for m in mems if str(m.kind).upper().startswith("HBM")), None)
    mem = hbm or mems[0]
    kind = str(mem.kind).upper()
    banks = max(1, int(mem.banks))
    lat_ns = _mem_fact(mem, "latency_ns", DEFAULT_LATENCY_NS, 150.0)
    eff = _mem_fact(mem, "efficiency", DEFAULT_EFFICIENCY, 0.8)
    bank_Bpc = float(mem.bandwidth_GBps) * 1e9 * eff / banks / (clock_MHz * 1e6)   # bytes a cycle a bank
    latency = int(math.ceil(lat_ns * clock_MHz / 1000.0))
    prefix = "HBM" if kind.startswith("HBM") else ("DDR" if kind.startswith("DDR") else kind.split("_")[0] + "_DDR")
    # bank index of each bundle
    if banks >= 3:
        bank_of = {"gmem0": 0, "gmem1": 0, "gmem2": 0, "gmem3": 1, "gmem4": 2}
    elif banks == 2:
        bank_of = {"gmem0": 0, "gmem1": 0, "gmem2": 0, "gmem3": 0, "gmem4": 1}
    else:
        bank_of = {b: 0 for b in BUNDLES}
    sharing = {b: (sum(1 for o in REGION_BUNDLES if bank_of[o] == bank_of[b]) if b in REGION_BUNDLES else 1)
               for b in BUNDLES}
    ports = {}
    for b in BUNDLES:
        width = 8 if b == "gmem3" else axi
        cpb = share_cpb(width, bank_Bpc, sharing[b])
        burst = max(1, min(MAX_BURST, PAGE_BYTES // width))
        # enough requests in flight to cover the latency at the port's rate, and at least two
        outstanding = max(2, min(32, int(math.ceil(latency / (burst * cpb))) + 1))
        name = f"{prefix}[{bank_of[b]}]" if prefix in ("HBM", "DDR") else prefix
        ports[b] = PortModel(latency=latency, outstanding=outstanding, burst=burst, cpb=round(cpb, 6), bank=name,
                             sharing=sharing[b]).to_dict()
    return {"kind": kind, "latency_ns": lat_ns, "efficiency": eff, "clock_MHz": float(clock_MHz), "ports": ports}


def ideal_plan(plan: Mapping[str, Any] | None = None) -> dict:
    """The ideal memory: every beat there when the loop asks (latency 0, one beat a cycle, no limit on
    requests in flight) -- the engine's upper bound (``padless profile --ideal-memory``)."""
    ports = {b: PortModel(latency=0, outstanding=0, burst=(p or {}).get("burst", 1), cpb=1.0,
                          bank=(p or {}).get("bank", ""), sharing=(p or {}).get("sharing", 1)).to_dict()
             for b, p in ((b, ((plan or {}).get("ports") or {}).get(b)) for b in BUNDLES)}
    return {"kind": "ideal", "latency_ns": 0.0, "efficiency": 1.0, "clock_MHz": (plan or {}).get("clock_MHz"),
            "ports": ports, "ideal": True}


def port(plan: Mapping[str, Any] | None, bundle: str) -> PortModel:
    """The :class:`PortModel` of ``bundle`` in ``plan`` (ideal when the plan has none)."""
    p = ((plan or {}).get("ports") or {}).get(bundle)
    return PortModel.from_dict(p) if p else PortModel()


def read_burst(n: int, p: PortModel, t0: int = 0, ii: int = 1) -> int:
    """Cycle at which a pipelined loop (II ``ii``) that starts at ``t0`` and reads beats ``base + i``,
    i < n, as one declared burst issues its last iteration (the loop then ends ``depth`` later); the loop
    consumes a beat as soon as it is there and its II allows.

    The model of sim_rt.h, request by request: request r (BL beats) issues at max(t0 + r, iss_{r-1} + 1,
    the cycle after the kernel took request r - O's last beat); its first beat arrives at max(iss_r + L,
    previous beat + cpb), the next ones cpb apart; iteration i issues at max(issue_{i-1} + ii,
    ceil(arrival_i)). Returns t0 - ii for n == 0 (no iteration)."""
    if n <= 0:
        return t0 - ii
    BL = max(1, int(p.burst))
    O = int(p.outstanding)
    cpb = max(1.0, float(p.cpb))
    L = int(p.latency)
    last_arr, last_iss, T = -1e18, -1e18, t0 - ii
    took = []   # cycle after the kernel took each request's last beat
    nreq = -(-n // BL)
    for r in range(nreq):
        m = min(BL, n - r * BL)
        iss = max(float(t0 + r), last_iss + 1, took[r - O] if (O > 0 and r >= O) else -1e18)
        last_iss = iss
        a0 = max(iss + L, last_arr + cpb)
        # beats j = 0..m-1 arrive at a0 + j cpb; iteration issue times T_j = max(T_{j-1} + ii, ceil(arr_j))
        # c_j - j ii is monotone in j (cpb >= 1, ii integer), so the last issue is at an end point:
        c0, c_last = math.ceil(a0 - 1e-9), math.ceil(a0 + (m - 1) * cpb - 1e-9)
        T = max(T + m * ii, c0 + (m - 1) * ii, c_last)
        last_arr = a0 + (m - 1) * cpb
        took.append(T + 1)
    return int(T)


def single_reads(n: int, p: PortModel, t0: int = 0, ii: int = 1) -> tuple[int, int]:
    """A pipelined loop of ``n`` single-beat reads (addresses Vitis cannot burst): ``(last issue, extra
    depth)``. Each read is one request, issued by its iteration once fewer than O requests are in flight
    (a request leaves when its data arrives, L + its place in the bandwidth queue later); the loop's
    pipeline is L deeper. With O outstanding the loop sustains O beats every L cycles at best."""
    O = int(p.outstanding)
    cpb = max(1.0, float(p.cpb))
    L = int(p.latency)
    T, last_iss, last_arr = t0 - ii, -1e18, -1e18
    arrivals = []
    for k in range(n):
        t = max(float(T + ii), last_iss + 1, arrivals[k - O] if (O > 0 and k >= O) else -1e18)
        arr = max(t + L, last_arr + cpb)
        t = max(t, arr - L)
        T = int(math.ceil(t - 1e-9))
        last_iss, last_arr = t, arr
        arrivals.append(arr)
    return T, (L if n > 0 else 0)


def write_burst(n: int, p: PortModel, t0: int = 0, ii: int = 1) -> tuple[int, int]:
    """A pipelined loop (II ``ii``) writing beats ``base + i``, i < n, as one declared burst from ``t0``:
    ``(last issue, last response)``. Beat b is accepted at max(its iteration, previous beat + cpb, and for
    the first beat of request r the response of request r - O); request r's response arrives L after its
    last beat. The loop's exit waits for the last response."""
    if n <= 0:
        return t0 - ii, t0
    BL = max(1, int(p.burst))
    O = int(p.outstanding)
    cpb = max(1.0, float(p.cpb))
    L = int(p.latency)
    T, last, resp = t0 - ii, -1e18, []
    for b in range(n):
        r = b // BL
        acc = max(float(T + ii), last + cpb)
        if b % BL == 0 and O > 0 and r >= O:
            acc = max(acc, resp[r - O])
        T = int(math.ceil(acc - 1e-9))
        last = acc
        if b % BL == BL - 1 or b == n - 1:
            resp.append(T + L)
    return T, int(max(resp))
