"""The hand-written RTL blocks (hw/rtl): where their sources are, their register map, their resources.

Two blocks, each with a Python golden twin (ARCHITECTURE.md, "The RTL blocks"):

* ``selection_engine`` - 4-bit approximate scores (table multipliers, zero DSPs) and a streaming top-k
  sorter; twin: :mod:`padless.sparse.selection` (DAC 2022 sparse attention, arXiv 2208.03646, sec. 3.2).
* ``length_dispatcher`` - descriptor queue, ``ap_ctrl_hs`` start/done toward the HLS stages, busy/idle
  counters, AXI4-Lite registers and an interrupt; twin:
  :func:`padless.schedule.scheduler.flow_shop_starts` with ``handoff_cycles = DISPATCH_HANDOFF_CYCLES``.

:data:`DISPATCHER_REGISTERS` is the one definition of the dispatcher's AXI4-Lite register map; the
RTL (``length_dispatcher.sv``), docs/registers.md, the cocotb testbench and the runtime all follow it
(a test checks the RTL and the document against it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import InputError, ProjectError, ToolMissingError

#: Repository root (src layout: sw/padless/rtl.py -> ../../).
ROOT = Path(__file__).resolve().parents[2]
#: SystemVerilog sources of each block, top module last.
BLOCKS: dict[str, tuple[str, ...]] = {
    "selection_engine": ("selection_score.sv", "selection_sorter.sv", "selection_engine.sv"),
    "length_dispatcher": ("length_dispatcher.sv",),
}
#: Default parameters (the "default parameter sets" of the resource figures): MiniLM head dim 32,
#: top-k 16 of at most 512 keys, one lane; six layer stages (cost.STAGES), 16 queued descriptors.
DEFAULT_PARAMS: dict[str, dict[str, int]] = {
    "selection_engine": {"HEAD_DIM": 32, "K": 16, "MAX_SEQ_LEN": 512, "LANES": 1},
    "length_dispatcher": {"NUM_STAGES": 6, "DEPTH": 16, "SEQ_W": 16, "LEN_W": 16},
}

#: Cycles between a stage's ap_done (the edge that samples it) and the ap_start handshake it enables,
#: in the cycle convention of flow_shop_starts (finish = start + latency). Equal to register HANDOFF.
DISPATCH_HANDOFF_CYCLES = 1
#: flow_shop_starts(...) + this = start edge counted from the edge that accepted the CTRL.START write.
DISPATCH_START_OFFSET = 1
#: RUN_CYCLES = flow-shop makespan (last finish) + this.
DISPATCH_RUN_EXTRA_CYCLES = 2


def rtl_dir() -> Path:
    """Folder with the SystemVerilog sources (``hw/rtl``).

    Raises:
        ProjectError: the sources are missing (padless installed without its ``hw/`` tree).
    """
    d = ROOT / "hw" / "rtl"
    if not (d / "selection_engine.sv").exists():
        raise ProjectError(f"RTL sources not found under {d}; use a padless checkout (pip install -e .)")
    return d


def scripts_dir() -> Path:
    """Folder with the vendor-flow TCL (``hw/scripts``)."""
    return ROOT / "hw" / "scripts"


def sources(block: str) -> list[Path]:
    """The ``.sv`` files of ``block``, dependencies first. Raises InputError for an unknown block."""
    if block not in BLOCKS:
        raise InputError(f"unknown RTL block {block!r}; choose one of {', '.join(sorted(BLOCKS))}")
    return [rtl_dir() / f for f in BLOCKS[block]]


def copy_rtl(dest: Path | str) -> Path:
    """Copy the RTL sources and the packaging TCL into ``dest`` (``dest/rtl``, ``dest/scripts``).

    Used by codegen so a generated project folder is self-contained. Returns ``dest``.
    """
    from . import fsutil
    dest = Path(dest)
    for files in BLOCKS.values():
        for f in files:   # atomic, never through a link inside dest (padless.fsutil)
            fsutil.copy_file(rtl_dir() / f, dest / "rtl" / f, dest)
    for tcl in ("package_ip.tcl", "package_xo.tcl"):
        fsutil.copy_file(scripts_dir() / tcl, dest / "scripts" / tcl, dest)
    return dest


# ---------------------------------------------------------------------------- register map
@dataclass(frozen=True)
class Register:
    """One 32-bit AXI4-Lite register.

    Attributes:
        name: register name (as in docs/registers.md).
        offset: byte offset from the block's base address.
        access: ``RW``, ``RO``, ``WO``, ``RW1C`` (reads the flag, writing 1 clears it) or ``R/COR``
            style notes in ``fields``.
        reset: value after reset.
        fields: ``{field: (msb, lsb, description)}``.
        doc: one line.
    """

    name: str
    offset: int
    access: str
    reset: int
    fields: Mapping[str, tuple[int, int, str]]
    doc: str


def _dispatcher_registers(num_stages: int = DEFAULT_PARAMS["length_dispatcher"]["NUM_STAGES"],
                          depth: int = DEFAULT_PARAMS["length_dispatcher"]["DEPTH"]) -> tuple[Register, ...]:
    if not 1 <= num_stages <= 24:
        raise InputError(f"the dispatcher supports 1..24 stages, got {num_stages}")
    regs = [
        Register("CTRL", 0x00, "RW", 0x0000000C, {
            "START": (0, 0, "write 1: start a run over the queued descriptors (ignored while running); "
                            "read: 1 while running"),
            "DONE": (1, 1, "read: the last run finished; clear on read (as Vitis HLS ap_done)"),
            "IDLE": (2, 2, "read: not running"),
            "READY": (3, 3, "read: a START write will be taken (= IDLE)"),
        }, "run control, Vitis HLS ap_ctrl_hs layout"),
        Register("GIE", 0x04, "RW", 0, {"ENABLE": (0, 0, "global interrupt enable")},
                 "global interrupt enable"),
        Register("IER", 0x08, "RW", 0, {"DONE": (0, 0, "enable the run-done interrupt")},
                 "interrupt enable"),
        Register("ISR", 0x0C, "RW1C", 0, {"DONE": (0, 0, "a run finished; write 1 to clear")},
                 "interrupt status; interrupt = GIE & IER & ISR"),
        Register("INFO", 0x10, "RO", (1 << 24) | (depth << 8) | num_stages, {
            "NUM_STAGES": (7, 0, "stages driven"),
            "DEPTH": (23, 8, "descriptor queue entries"),
            "VERSION": (31, 24, "register map version (1)"),
        }, "build parameters"),
        Register("QUEUE_STATUS", 0x14, "RO", 0x00020000, {
            "QUEUED": (15, 0, "descriptors pushed and not yet finished by the last stage"),
            "FULL": (16, 16, "the queue holds DEPTH descriptors; a push now is dropped"),
            "EMPTY": (17, 17, "no descriptor queued"),
            "OVERFLOW": (31, 31, "a push was dropped (queue full); cleared by START"),
        }, "descriptor queue"),
        Register("DESC_SEQ_ID", 0x18, "RW", 0, {"SEQ_ID": (15, 0, "sequence id of the next descriptor")},
                 "staging: sequence id"),
        Register("DESC_OFFSET", 0x1C, "RW", 0, {"OFFSET": (31, 0, "first token of the sequence in the pack")},
                 "staging: token offset"),
        Register("DESC_LENGTH", 0x20, "RW", 0, {
            "LENGTH": (15, 0, "tokens; a write pushes {DESC_SEQ_ID, DESC_OFFSET, LENGTH} onto the queue")},
            "staging: length, write = push"),
        Register("JOBS_DONE", 0x24, "RO", 0, {"COUNT": (31, 0, "descriptors finished by the last stage this run")},
                 "completed jobs"),
        Register("RUN_CYCLES", 0x28, "RO", 0, {"CYCLES": (31, 0, "cycles from START to DONE (live while running)")},
                 "run length in cycles"),
        Register("HANDOFF", 0x2C, "RO", DISPATCH_HANDOFF_CYCLES, {
            "CYCLES": (31, 0, "cycles from a stage's ap_done to the ap_start it enables")},
            "dispatch handoff constant"),
    ]
    for s in range(num_stages):
        regs.append(Register(f"STAGE{s}_BUSY", 0x40 + 8 * s, "RO", 0, {
            "CYCLES": (31, 0, f"cycles of this run with stage {s} running (start handshake to ap_done)")},
            f"stage {s} busy cycles"))
        regs.append(Register(f"STAGE{s}_IDLE", 0x44 + 8 * s, "RO", 0, {
            "CYCLES": (31, 0, f"cycles of this run with stage {s} not running")},
            f"stage {s} idle cycles"))
    return tuple(regs)


#: The dispatcher's register map for the default parameters (6 stages, 16 descriptors).
DISPATCHER_REGISTERS: tuple[Register, ...] = _dispatcher_registers()


def dispatcher_registers(num_stages: int, depth: int) -> dict[str, Register]:
    """The register map for a dispatcher built with ``NUM_STAGES``/``DEPTH``, by name."""
    return {r.name: r for r in _dispatcher_registers(num_stages, depth)}


def register_offset(name: str, num_stages: int = 24) -> int:
    """Byte offset of register ``name`` (``"CTRL"``, ``"STAGE3_BUSY"``...). Raises InputError."""
    regs = dispatcher_registers(num_stages, DEFAULT_PARAMS["length_dispatcher"]["DEPTH"])
    if name not in regs:
        raise InputError(f"no dispatcher register {name!r}")
    return regs[name].offset


# ---------------------------------------------------------------------------- resources (yosys)
@dataclass(frozen=True)
class Resources:
    """Post-synthesis cell counts of one block from yosys ``synth_xilinx`` (no timing).

    Attributes: lut (LUT1..LUT6), ff (FD*), dsp (DSP48*), bram (RAMB18 counted as 0.5 of a 36 Kb
    block), lutram (LUT-RAM cells: RAM32M/RAM64M...), carry (CARRY4/CARRY8), cells (all cells).
    """

    lut: int
    ff: int
    dsp: int
    bram: float
    lutram: int
    carry: int
    cells: dict


def yosys_path() -> str:
    """The ``yosys`` executable. Raises ToolMissingError (install: ``apt-get install yosys``)."""
    exe = shutil.which("yosys")
    if exe is None:
        raise ToolMissingError("yosys is not installed; run `apt-get update && apt-get install -y "
                               "--no-install-recommends yosys` (Debian package 'yosys')")
    return exe


def synth_resources(block: str, parameters: Mapping[str, int] | None = None, family: str = "xcup",
                    timeout_s: float = 1800.0) -> tuple[Resources, dict[str, Resources]]:
    """Synthesise ``block`` with yosys ``synth_xilinx -family <family>`` and count its cells.

    The hierarchy is kept (no ``-flatten``) so each sub-module is counted on its own.

    Args:
        block: a key of :data:`BLOCKS`.
        parameters: overrides of :data:`DEFAULT_PARAMS` for the block.
        family: yosys Xilinx family (``xc7``, ``xcu``, ``xcup``).

    Returns:
        ``(total, {module: resources})``; a module instantiated several times is counted once in the
        per-module table and as often as used in ``total``.

    Raises:
        ToolMissingError: no yosys. RuntimeError: yosys failed (its last lines are in the message).
    """
    params = dict(DEFAULT_PARAMS.get(block, {}))
    params.update(parameters or {})
    files = " ".join(str(p) for p in sources(block))
    chparam = " ".join(f"-set {k} {int(v)}" for k, v in params.items())
    script = (f"read_verilog -sv {files}; chparam {chparam} {block}; "
              f"synth_xilinx -family {family} -top {block}; tee -o /dev/stdout stat")
    proc = subprocess.run([yosys_path(), "-q", "-p", script], capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"yosys failed on {block}: {(proc.stdout + proc.stderr)[-2000:]}")
    sections = parse_yosys_stat(proc.stdout)
    total = sections.pop("design hierarchy", None)
    if total is None:
        total = sections[block]
    return total, sections


def _counts(cells: dict[str, int]) -> Resources:
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT[1-6]", k))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[A-Z]*", k))
    dsp = sum(v for k, v in cells.items() if k.startswith("DSP"))
    bram = sum(v for k, v in cells.items() if k.startswith("RAMB36")) + \
        0.5 * sum(v for k, v in cells.items() if k.startswith("RAMB18"))
    lutram = sum(v for k, v in cells.items() if re.match(r"RAM\d+[MSX]", k))
    carry = sum(v for k, v in cells.items() if k.startswith("CARRY"))
    return Resources(lut=lut, ff=ff, dsp=dsp, bram=bram, lutram=lutram, carry=carry, cells=cells)


def parse_yosys_stat(log: str) -> dict[str, Resources]:
    """``{module: Resources}`` from the ``stat`` tables in a yosys log (the last table of each name).

    Module names lose yosys' ``$paramod$<hash>\\`` prefix; the hierarchy total is ``"design hierarchy"``.
    """
    out: dict[str, Resources] = {}
    parts = re.split(r"^=== (.+?) ===\s*$", log, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2]):
        start = body.find("Number of cells:")
        if start < 0:
            continue
        cells: dict[str, int] = {}
        for m in re.finditer(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)\s*$", body[start:], re.M):
            cells[m.group(1)] = cells.get(m.group(1), 0) + int(m.group(2))
        out[name.split("\\")[-1]] = _counts(cells)
    if not out:
        raise RuntimeError("no `stat` table in the yosys output")
    return out
