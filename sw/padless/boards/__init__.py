"""FPGA boards as data: one YAML file per board in this package.

Each file gives the part number, the resource counts of the device (DSP slices, 36 Kb block RAMs,
288 Kb UltraRAMs, LUTs, flip-flops), the off-chip memories with their theoretical bandwidth, the default
kernel clock (what comparable published HLS dataflow designs on the part closed at, with its source) and
the platform maximum (an upper bound), the resources of each SLR of a multi-die part and the SLR the
off-chip memory controllers sit in, the build flow (``vitis`` for Alveo cards, ``vivado`` for Zynq boards) and the platform
(Vitis platform name for Alveo, Vivado board part for Zynq), and cites the AMD data sheet the figures
come from (see docs/boards.md). Adding a board is adding one YAML file here; no code changes.

Example::

    >>> from padless.boards import load_board, int8_peak_macs
    >>> b = load_board("Alveo-U280")
    >>> b.dsp, b.clock_MHz, b.clock_max_MHz, int8_peak_macs(b) / 1e12
    (9024, 150.0, 300.0, 2.7072)
    >>> len(b.slrs), b.memory_slr
    (3, 0)
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import yaml

from ..errors import UnknownBoardError

__all__ = ["Board", "Memory", "SLR", "load_board", "list_boards", "int8_peak_macs", "UnknownBoardError"]

_REQUIRED = ("name", "part", "family", "dsp", "dsp_type", "bram_36k", "uram", "lut", "ff", "memories",
             "clock_MHz", "flow", "platform", "datasheet")
_DSP_TYPES = ("DSP48E1", "DSP48E2")
_FLOWS = ("vitis", "vivado")


@dataclass(frozen=True)
class Memory:
    """One off-chip memory of a board.

    Attributes:
        kind: ``HBM2``, ``DDR4``, ``PS_DDR4``, ``PS_DDR3``.
        banks: independent channels (HBM pseudo channels, DDR controllers) an m_axi port can bind to.
        bandwidth_GBps: theoretical peak bandwidth of all banks together, GB/s (1e9 bytes/s).
        capacity_GB: capacity of all banks together, GB.
        latency_ns: idle read latency seen by an m_axi port, ns (None: the memory model's default for the
            kind, :data:`padless.schedule.memory.DEFAULT_LATENCY_NS`).
        efficiency: sustained / theoretical bandwidth of sequential bursts (None: the model's default).
    """

    kind: str
    banks: int
    bandwidth_GBps: float
    capacity_GB: float = 0.0
    latency_ns: float | None = None
    efficiency: float | None = None

    def __getitem__(self, key: str) -> Any:  # dict-style access: memory["bandwidth_GBps"]
        return getattr(self, key)


@dataclass(frozen=True)
class SLR:
    """The resources of one super logic region (die) of a stacked-silicon part that kernels may use.

    Attributes: lut, ff, dsp, bram_36k, uram (counts, as in :class:`Board`).
    """

    lut: int
    ff: int
    dsp: int
    bram_36k: int
    uram: int

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass(frozen=True)
class Board:
    """A board model (frozen; load with :func:`load_board`).

    Attributes:
        name: canonical lower-case name (``u280``, ``pynq-z2``).
        part: full device part number (``xcu280-fsvh2892-2L-e``).
        family: device family (``virtex_ultrascale_plus_hbm``, ``zynq_ultrascale_plus``, ``zynq_7000``).
        dsp: DSP slices. dsp_type: ``DSP48E2`` (UltraScale+) or ``DSP48E1`` (7 series).
        bram_36k: 36 Kb block RAMs. uram: 288 Kb UltraRAMs. lut: 6-input LUTs. ff: flip-flops.
        memories: off-chip memories, the one kernels bind to first.
        clock_MHz: default kernel clock, MHz: what comparable published HLS dataflow designs on the part
            closed at (``clock_source`` says which); the figures padless prints are at this clock.
        clock_max_MHz: the platform's maximum kernel clock (Alveo: 300 MHz), an upper bound.
        clock_source: where ``clock_MHz`` comes from.
        slrs: per-SLR resources of a multi-die part (empty for one die).
        memory_slr: the SLR whose memory controllers (HBM, the first DDR bank) the m_axi ports bind to.
        flow: ``vitis`` (Alveo: v++ link against ``platform``) or ``vivado`` (Zynq block design).
        platform: Vitis platform name (Alveo) or Vivado board part (Zynq).
        datasheet: the AMD documents the figures come from.
        aliases: other names :func:`load_board` accepts.
    """

    name: str
    part: str
    family: str
    dsp: int
    dsp_type: str
    bram_36k: int
    uram: int
    lut: int
    ff: int
    memories: tuple
    clock_MHz: float
    flow: str
    platform: str
    datasheet: str
    aliases: tuple = ()
    clock_max_MHz: float = 0.0
    clock_source: str = ""
    slrs: tuple = ()
    memory_slr: int = 0

    def __post_init__(self):
        if not self.clock_max_MHz:
            object.__setattr__(self, "clock_max_MHz", float(self.clock_MHz))

    @property
    def bandwidth_GBps(self) -> float:
        """Bandwidth of the primary off-chip memory (``memories[0]``), GB/s."""
        return float(self.memories[0].bandwidth_GBps)

    @property
    def bram_bytes(self) -> int:
        """Block RAM capacity in bytes (36 Kb = 4,608 bytes each, parity bits included)."""
        return self.bram_36k * 36 * 1024 // 8

    @property
    def uram_bytes(self) -> int:
        """UltraRAM capacity in bytes (288 Kb = 36,864 bytes each)."""
        return self.uram * 288 * 1024 // 8

    def to_dict(self) -> dict:
        """JSON-serialisable dict of every field."""
        d = asdict(self)
        d["memories"] = [asdict(m) for m in self.memories]
        d["slrs"] = [asdict(s) for s in self.slrs]
        d["aliases"] = list(self.aliases)
        return d


def int8_peak_macs(board: Board, clock_MHz: float | None = None) -> float:
    """Peak INT8 multiply-accumulates per second of a board's DSP slices, MAC/s.

    A DSP48E2 (UltraScale/UltraScale+) packs two INT8 multiplies that share one operand into its
    27 x 18 multiplier (AMD WP486 "Deep Learning with INT8 Optimization on Xilinx Devices", and WP487
    "8-Bit Dot-Product Acceleration"), so the peak is ``2 x DSP x clock``. A DSP48E1 (7 series, 25 x 18)
    is counted as one INT8 MAC per cycle, ``1 x DSP x clock``. ``clock_MHz`` defaults to the board's.
    """
    clk = float(board.clock_MHz if clock_MHz is None else clock_MHz)
    per_dsp = 2 if board.dsp_type == "DSP48E2" else 1
    return float(per_dsp * board.dsp * clk * 1e6)


def _normalize(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


@functools.lru_cache(maxsize=None)
def _catalog() -> dict[str, Board]:
    boards: dict[str, Board] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        board = _parse(yaml.safe_load(entry.read_text()), entry.name)
        boards[board.name] = board
    return boards


def _parse(data: Any, source: str) -> Board:
    if not isinstance(data, dict):
        raise UnknownBoardError(f"board file {source} is not a YAML mapping")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise UnknownBoardError(f"board file {source} lacks {', '.join(missing)}")
    if data["dsp_type"] not in _DSP_TYPES:
        raise UnknownBoardError(f"board file {source}: dsp_type must be one of {_DSP_TYPES}")
    if data["flow"] not in _FLOWS:
        raise UnknownBoardError(f"board file {source}: flow must be one of {_FLOWS}")
    def opt(m, key, lo, hi):
        v = m.get(key)
        if v is None:
            return None
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = float("nan")
        if not lo < f <= hi:
            raise UnknownBoardError(f"board file {source}: memory {m.get('kind')} {key} must be a number in "
                                    f"({lo}, {hi}], got {v!r}")
        return f
    mems = tuple(Memory(kind=str(m["kind"]), banks=int(m["banks"]), bandwidth_GBps=float(m["bandwidth_GBps"]),
                        capacity_GB=float(m.get("capacity_GB", 0.0)), latency_ns=opt(m, "latency_ns", 0, 10000),
                        efficiency=opt(m, "efficiency", 0, 1)) for m in data["memories"])
    if not mems:
        raise UnknownBoardError(f"board file {source} lists no off-chip memory")
    slrs = tuple(SLR(**{k: int(s[k]) for k in ("lut", "ff", "dsp", "bram_36k", "uram")})
                 for s in data.get("slrs") or ())
    if slrs and not 0 <= int(data.get("memory_slr", 0)) < len(slrs):
        raise UnknownBoardError(f"board file {source}: memory_slr must name one of its {len(slrs)} SLRs")
    clk, clk_max = float(data["clock_MHz"]), float(data.get("clock_max_MHz") or data["clock_MHz"])
    if not 0 < clk <= clk_max:
        raise UnknownBoardError(f"board file {source}: clock_MHz must be above 0 and at most clock_max_MHz")
    return Board(name=str(data["name"]).lower(), part=str(data["part"]), family=str(data["family"]),
                 dsp=int(data["dsp"]), dsp_type=str(data["dsp_type"]), bram_36k=int(data["bram_36k"]),
                 uram=int(data["uram"]), lut=int(data["lut"]), ff=int(data["ff"]), memories=mems,
                 clock_MHz=float(data["clock_MHz"]), flow=str(data["flow"]), platform=str(data["platform"]),
                 datasheet=str(data["datasheet"]), aliases=tuple(str(a) for a in data.get("aliases", ())),
                 clock_max_MHz=clk_max, clock_source=str(data.get("clock_source", "")), slrs=slrs,
                 memory_slr=int(data.get("memory_slr", 0)))


@functools.lru_cache(maxsize=None)
def _index() -> dict[str, str]:
    idx: dict[str, str] = {}
    for board in _catalog().values():
        for key in (board.name, *board.aliases):
            idx[_normalize(key)] = board.name
    return idx


def list_boards() -> list[str]:
    """Canonical names of every board file shipped in the package, sorted."""
    return sorted(_catalog())


def load_board(name: str | Board) -> Board:
    """The :class:`Board` called ``name``.

    Names are case-insensitive and ignore ``-``/``_``; aliases (``U280``, ``alveo-u280``, ``xcu280``,
    ``pynqz2``) are accepted. A :class:`Board` passes through unchanged.

    Raises:
        UnknownBoardError: no board file matches; the message lists the known boards.
    """
    if isinstance(name, Board):
        return name
    key = _normalize(name)
    if key.startswith("alveo") and key[5:] in _index():
        key = key[5:]
    canon = _index().get(key)
    if canon is None:
        raise UnknownBoardError(
            f"unknown board {name!r}; known boards: {', '.join(list_boards())} "
            f"(add one by writing a YAML file in padless/boards/)")
    return _catalog()[canon]
