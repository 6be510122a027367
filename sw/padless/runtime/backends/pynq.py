"""The pynq backend: the project's kernel on a board (or on :mod:`padless.runtime.simdevice`) through pynq.

Everything board-facing goes through the real ``pynq`` package (4.0.0):

- the kernel is bound through a :class:`pynq.DefaultIP` subclass whose ``bindto`` is the kernel's VLNV
  (Vitis HLS exports ``xilinx.com:hls:<top>:1.0``); on a board :class:`pynq.Overlay` loads the bitstream
  from the project's ``deploy/`` folder (Zynq: ``<top>.bit`` + ``<top>.hwh``; Alveo: ``<top>.xclbin``) and
  pynq instantiates that driver from the bitstream metadata;
- buffers come from :func:`pynq.allocate` (``PynqBuffer``), moved with ``sync_to_device`` /
  ``sync_from_device``;
- the kernel is started with the Vitis HLS ``ap_ctrl_hs`` protocol on its s_axilite control registers
  (UG1399 "S_AXILITE Control Register Map"): ``0x00`` control (bit 0 AP_START, 1 AP_DONE (clear on read),
  2 AP_IDLE, 3 AP_READY, 7 AUTO_RESTART), ``0x04`` GIE, ``0x08`` IER, ``0x0c`` ISR, arguments from
  ``0x10``.

Argument offsets are never hard-coded: :func:`kernel_interface` reads the kernel's C signature from the
generated project (``hls/`` top function named by ``set_top`` in the HLS TCL) and
:func:`s_axilite_offsets` lays the arguments out the way Vitis HLS does. On a board the layout read from
the ``.hwh`` / ``.xclbin`` is compared with the project's, so a bitstream built from another project is
refused before anything runs.

Simulation: ``Overlay`` needs real bitstream metadata, so on the simulated device the backend builds the
IP description (the same dict pynq's HWH parser produces for ``ip_dict``) from the generated project and
gives it to the same DefaultIP driver; pynq's ``MMIO`` and ``allocate`` then run unchanged against
:class:`padless.runtime.simdevice.SimDevice` (docs/runtime.md).
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ClosedError, DeviceError, InputError, ProjectError, ToolMissingError

# ap_ctrl_hs control register (UG1399, Vitis HLS s_axilite register map).
CTRL = 0x00
GIE = 0x04
IER = 0x08
ISR = 0x0C
ARGS_BASE = 0x10
AP_START = 1 << 0
AP_DONE = 1 << 1
AP_IDLE = 1 << 2
AP_READY = 1 << 3
AUTO_RESTART = 1 << 7

DEFAULT_TIMEOUT_S = 30.0

# C types of kernel arguments -> numpy dtype of the element (pointers) or of the scalar.
_CTYPES = {
    "int8_t": np.int8, "signed char": np.int8, "char": np.int8, "ap_int<8>": np.int8,
    "uint8_t": np.uint8, "unsigned char": np.uint8, "ap_uint<8>": np.uint8,
    "int16_t": np.int16, "short": np.int16, "ap_int<16>": np.int16,
    "uint16_t": np.uint16, "unsigned short": np.uint16, "ap_uint<16>": np.uint16,
    "int32_t": np.int32, "int": np.int32, "ap_int<32>": np.int32,
    "uint32_t": np.uint32, "unsigned": np.uint32, "unsigned int": np.uint32, "ap_uint<32>": np.uint32,
    "int64_t": np.int64, "long long": np.int64, "long": np.int64, "ap_int<64>": np.int64,
    "uint64_t": np.uint64, "unsigned long long": np.uint64, "ap_uint<64>": np.uint64,
    # 512-bit AXI words are addressed as bytes by the host.
    "ap_uint<512>": np.uint8, "ap_uint<256>": np.uint8, "ap_uint<128>": np.uint8,
}

# Roles of the kernel arguments, recognised by name (first match wins). The generated kernel
# (hw/hls/top/padless_encoder.cpp) reads and writes one activation buffer of 2 x num_tokens rows through
# three m_axi ports (act_rd, act_res, act_wr: the same address), takes the call's descriptors
# {int32 start, int32 len} in the order the host scheduled them, the weights image, and a mode (0 run,
# 1 init: load every layer's weights on chip).
ROLES = {
    "act_rd": ("act_rd",),
    "act_res": ("act_res",),
    "act_wr": ("act_wr",),
    "desc": ("desc", "descriptors"),
    "weights": ("weights", "w", "params", "wts"),
    "num_seqs": ("num_seqs", "n_seqs", "num_sequences", "batch", "nseq"),
    "num_tokens": ("num_tokens", "n_tokens", "tokens", "ntok"),
    "mode": ("mode",),
}
REQUIRED_ROLES = ("act_rd", "act_res", "act_wr", "desc", "weights", "num_seqs", "num_tokens", "mode")
MODE_RUN, MODE_INIT = 0, 1

#: The top-level signature the runtime expects when a project carries no generated ``hls/`` kernel. It
#: is parsed by the same code as a generated kernel, so the register layout is still derived, never typed in.
FALLBACK_TOP = ("int padless_encoder(const uint8_t *act_rd, const uint8_t *act_res, uint8_t *act_wr, "
                "const int32_t *desc, const uint8_t *weights, int num_seqs, int num_tokens, int mode)")


@dataclass
class KernelArg:
    """One kernel argument. ``pointer``: an m_axi port (the register holds a 64-bit device address);
    ``dtype``: element type (pointer) or value type (scalar); ``offset``: s_axilite byte offset;
    ``width``: register bytes (8 for pointers and 64-bit scalars, else 4); ``role``: see :data:`ROLES`."""

    name: str
    ctype: str
    pointer: bool
    dtype: np.dtype
    offset: int = 0
    width: int = 4
    role: str | None = None


@dataclass
class KernelInterface:
    """The control interface of a project's top-level kernel.

    ``name``: the HLS top function; ``vlnv``: ``xilinx.com:hls:<name>:1.0``; ``args``: in C order with
    their s_axilite offsets; ``addr_range``: bytes of the control window; ``source``: where the signature
    was read (file path or ``fallback``)."""

    name: str
    args: list[KernelArg]
    source: str
    vlnv: str = ""
    addr_range: int = 0x1000
    roles: dict = field(default_factory=dict)
    return_ctype: str = "void"
    errors: dict = field(default_factory=dict)

    @property
    def ap_return(self) -> int | None:
        """Offset of the ``ap_return`` register (0x10) when the kernel returns a status, else None."""
        return ARGS_BASE if self.return_ctype != "void" else None

    def __post_init__(self):
        self.vlnv = self.vlnv or f"xilinx.com:hls:{self.name}:1.0"
        self.roles = {a.role: a for a in self.args if a.role}

    def arg(self, role: str) -> KernelArg | None:
        return self.roles.get(role)

    def registers(self) -> dict:
        """The ``registers`` entry of a pynq ``ip_dict`` (the form pynq's HWH parser writes)."""
        return register_description(self.args, self.return_ctype)


def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur))
    return out


def _typedefs(source: str) -> dict:
    """``typedef T name;`` and ``using name = T;`` of C/C++ source -> {name: T}."""
    out = {m.group(2): " ".join(m.group(1).split()) for m in re.finditer(r"\btypedef\s+([^;{}]+?)\s+(\w+)\s*;", source)}
    out.update({m.group(1): " ".join(m.group(2).split()) for m in re.finditer(r"\busing\s+(\w+)\s*=\s*([^;{}]+?)\s*;", source)})
    return out


def _resolve(ctype: str, typedefs: dict) -> str:
    seen = 0
    while ctype not in _CTYPES and ctype in typedefs and seen < 8:
        ctype, seen = typedefs[ctype], seen + 1
    if ctype.startswith(("ap_", "std::")):
        ctype = ctype.replace("std::", "").replace(" ", "")
    return ctype


def parse_signature(source: str, top: str, typedefs: dict | None = None) -> tuple[list[KernelArg], str]:
    """The arguments and return type of ``top(...)`` in C/C++ ``source`` (comments ignored).

    Pointers and arrays (``T *p``, ``T p[N]``) are m_axi ports; other parameters are s_axilite scalars;
    a non-void return value is the ``ap_return`` register. Type names go through ``typedefs`` (plus those
    in ``source``). Returns ``(args, return_ctype)``. Raises ProjectError when the function is absent or
    a type is not one the backend can marshal.
    """
    src = re.sub(r"//[^\n]*|/\*.*?\*/", " ", source, flags=re.S)
    tds = {**(typedefs or {}), **_typedefs(src)}
    m = re.search(r"\b(void|[A-Za-z_][\w:<>]*(?:\s+int)?)\s+" + re.escape(top) + r"\s*\((.*?)\)\s*\{", src, flags=re.S)
    if m is None:
        m = re.search(r"\b(void|[A-Za-z_][\w:<>]*(?:\s+int)?)\s+" + re.escape(top) + r"\s*\((.*?)\)", src, flags=re.S)
    if m is None:
        raise ProjectError(f"kernel top function {top!r} not found in its source; regenerate the project")
    ret = "void" if m.group(1) == "void" else _resolve(m.group(1), tds)
    args = []
    for p in _split_params(m.group(2)):
        p = " ".join(p.replace("const ", " ").replace("volatile ", " ").split())
        if not p or p == "void":
            continue
        array = re.match(r"^(.*?)\s*([A-Za-z_]\w*)\s*\[.*\]$", p)
        if array:
            ctype, name, pointer = array.group(1).strip(), array.group(2), True
        else:
            mm = re.match(r"^(.*?)([\s\*&]+)([A-Za-z_]\w*)$", p)
            if mm is None:
                raise ProjectError(f"cannot read kernel argument {p!r} of {top}")
            ctype, name, pointer = mm.group(1).strip(), mm.group(3), "*" in mm.group(2)
        ctype = _resolve(ctype, tds)
        if pointer and (ctype.startswith("vec<") or ctype in ("desc_in_t",)):
            ctype = "uint8_t"  # beats and descriptor records: the host addresses them as bytes
        if ctype not in _CTYPES:
            raise ProjectError(f"kernel argument {name} of {top} has type {ctype!r}, which the pynq backend "
                               f"cannot marshal (known: {', '.join(sorted(_CTYPES))})")
        args.append(KernelArg(name=name, ctype=ctype, pointer=pointer, dtype=np.dtype(_CTYPES[ctype])))
    if ret != "void" and ret not in _CTYPES:
        raise ProjectError(f"kernel {top} returns {ret!r}, which the pynq backend cannot read")
    for a in args:
        for role, names in ROLES.items():
            if a.name in names:
                a.role = role
                break
    return args, ret


def error_codes(source: str) -> dict[int, str]:
    """``NAME = value, // meaning`` enumerators named ``*_ERR_*`` in kernel source -> {value: "NAME (meaning)"}."""
    out = {}
    for m in re.finditer(r"\b(\w+_ERR_\w+)\s*=\s*(\d+)\s*,?[ \t]*(?://\s*([^\n]*))?", source):
        out[int(m.group(2))] = m.group(1) + (f" ({m.group(3).strip()})" if m.group(3) else "")
    return out


def s_axilite_offsets(args: list[KernelArg], has_return: bool = False) -> int:
    """Assign s_axilite offsets as Vitis HLS does (UG1399): arguments in C order from 0x10; an argument
    of up to 32 bits takes its data word plus one reserved word (stride 8 bytes); a pointer (64-bit
    m_axi address, ``offset=slave``) or 64-bit scalar takes two data words plus one reserved word (stride
    12 bytes), e.g. ``vadd(in1*, in2*, out*, int size)`` -> 0x10, 0x1c, 0x28, 0x34. A 32-bit return
    value on s_axilite (``ap_return``) takes 0x10 (+ reserved word) and the arguments start at 0x18.

    Mutates ``args`` (``offset``, ``width``); returns the control window size in bytes (a power of two,
    at least 4 KiB as pynq maps pages)."""
    off = ARGS_BASE + (8 if has_return else 0)
    for a in args:
        wide = a.pointer or a.dtype.itemsize == 8
        a.offset, a.width = off, 8 if wide else 4
        off += 12 if wide else 8
    return max(0x1000, 1 << (off - 1).bit_length())


def register_description(args: list[KernelArg], return_ctype: str = "void") -> dict:
    """pynq ``ip_dict[...]["registers"]`` for an ap_ctrl_hs kernel with ``args`` (offsets assigned)."""
    def reg(off, size, access, desc, ctype="unsigned int", fields=None):
        return {"address_offset": off, "size": size, "access": access, "description": desc, "type": ctype,
                "fields": fields or {"value": {"bit_offset": 0, "bit_width": size, "access": access,
                                               "description": desc}}}
    bit = lambda i, acc, d: {"bit_offset": i, "bit_width": 1, "access": acc, "description": d}  # noqa: E731
    regs = {
        "CTRL": reg(CTRL, 32, "read-write", "ap_ctrl_hs control", fields={
            "AP_START": bit(0, "read-write", "start"), "AP_DONE": bit(1, "read-only", "done (clear on read)"),
            "AP_IDLE": bit(2, "read-only", "idle"), "AP_READY": bit(3, "read-only", "ready"),
            "AUTO_RESTART": bit(7, "read-write", "auto restart")}),
        "GIER": reg(GIE, 32, "read-write", "global interrupt enable"),
        "IP_IER": reg(IER, 32, "read-write", "interrupt enable"),
        "IP_ISR": reg(ISR, 32, "read-write", "interrupt status"),
    }
    if return_ctype != "void":
        regs["ap_return"] = reg(ARGS_BASE, 32, "read-only", "kernel return value (status)", ctype=return_ctype)
    for a in args:
        regs[a.name] = reg(a.offset, 64 if a.width == 8 else 32, "write-only",
                           f"{'m_axi address of ' if a.pointer else ''}{a.name}",
                           ctype=a.ctype + (" *" if a.pointer else ""))
    return regs


def _top_from_tcl(hls: Path) -> str | None:
    for tcl in sorted(hls.glob("*.tcl")) + sorted(hls.parent.glob("*.tcl")):
        m = re.search(r"^\s*set_top\s+(\S+)", tcl.read_text(errors="replace"), flags=re.M)
        if m:
            return m.group(1).strip("{}\"")
    return None


def kernel_interface(project) -> KernelInterface:
    """The control interface of ``project``'s kernel.

    Order: ``manifest["hls"]["top"]`` or ``set_top`` in the project's HLS TCL names the top function,
    whose signature is read from ``hls/**/*.cpp`` / ``*.h``; a project without an ``hls/`` folder uses
    :data:`FALLBACK_TOP`. Raises ProjectError when the signature cannot be read or lacks a required role
    (input, output, offsets, num_seqs)."""
    path = Path(project.path)
    hls = path / "hls"
    info = project.manifest.get("hls") or {}
    if hls.is_dir():
        top = info.get("top") or _top_from_tcl(hls) or _top_from_tcl(path)
        if top is None:
            raise ProjectError(f"{hls} has no set_top in its TCL and the manifest names no hls.top; regenerate the project")
        sources = sorted(hls.rglob("*.cpp")) + sorted(hls.rglob("*.h"))
        texts = {f: f.read_text(errors="replace") for f in sources}
        typedefs: dict = {}
        for t in texts.values():
            typedefs.update(_typedefs(re.sub(r"//[^\n]*|/\*.*?\*/", " ", t, flags=re.S)))
        pat = re.compile(r"\b" + re.escape(top) + r"\s*\([^;]*?\)\s*\{", flags=re.S)
        for f, text in texts.items():
            if pat.search(re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)):
                (args, ret), source = parse_signature(text, top, typedefs), str(f.relative_to(path))
                errors = error_codes(text)
                break
        else:
            raise ProjectError(f"the kernel top {top!r} is not defined in {hls}; regenerate the project")
    else:
        top = re.search(r"void\s+(\w+)", FALLBACK_TOP).group(1)
        (args, ret), source, errors = parse_signature(FALLBACK_TOP, top), "fallback", {}
    window = s_axilite_offsets(args, has_return=ret != "void")
    missing = [r for r in REQUIRED_ROLES if r not in {a.role for a in args}]
    if missing:
        raise ProjectError(f"kernel {top} ({source}) has no argument for {', '.join(missing)} "
                           f"(names understood: {', '.join(n for r in missing for n in ROLES[r])})")
    return KernelInterface(name=top, args=args, source=source, addr_range=window, return_ctype=ret,
                           errors=errors)


def ip_description(iface: KernelInterface, phys_addr: int, device=None) -> dict:
    """An ``ip_dict`` entry for the kernel at ``phys_addr`` (what pynq's HWH parser would produce), used
    where no bitstream metadata exists (the simulated device)."""
    desc = {"type": iface.vlnv, "phys_addr": int(phys_addr), "addr_range": iface.addr_range,
            "fullpath": iface.name, "registers": iface.registers(), "parameters": {},
            "state": None, "interrupts": {}, "gpio": {}, "mem_id": None}
    if device is not None:
        desc["device"] = device
    return desc


def _import_pynq():
    try:
        import pynq
    except ImportError as exc:
        raise ToolMissingError(
            f"the pynq backend needs the pynq package ({exc}); install it with `pip install pynq==4.0.0` "
            "(make install does), or run without a board on the csim backend: --backend csim") from exc
    return pynq


_DRIVERS: dict[str, type] = {}
_IP_LOCKS: dict[tuple, threading.Lock] = {}
_IP_LOCKS_GUARD = threading.Lock()


def _ip_lock(device, ip) -> threading.Lock:
    """The lock of one kernel instance: (device, control window base address)."""
    key = (id(device), int(getattr(ip, "description", {}).get("phys_addr", id(ip))))
    with _IP_LOCKS_GUARD:
        return _IP_LOCKS.setdefault(key, threading.Lock())


def kernel_driver(vlnv: str) -> type:
    """The ``pynq.DefaultIP`` subclass bound (``bindto``) to ``vlnv``; pynq's Overlay instantiates it
    for the kernel found in the bitstream metadata. One class per VLNV (created once)."""
    if vlnv in _DRIVERS:
        return _DRIVERS[vlnv]
    pynq = _import_pynq()

    class _Kernel(pynq.DefaultIP):
        """pynq driver of a padless encoder kernel (ap_ctrl_hs over s_axilite)."""

        bindto = [vlnv]

        def __init__(self, description):
            super().__init__(description)
            self.description = description

        @property
        def status(self) -> int:
            """The control register (0x00) value: bit 0 AP_START, 1 AP_DONE, 2 AP_IDLE, 3 AP_READY."""
            return int(self.mmio.read(CTRL))

        def set_args(self, values: dict, iface: KernelInterface) -> None:
            """Write argument registers: pointers as 64-bit device addresses (two words), scalars as one."""
            for a in iface.args:
                v = int(values[a.name])
                if a.width == 8:
                    self.mmio.write(a.offset, v & 0xFFFFFFFF)
                    self.mmio.write(a.offset + 4, (v >> 32) & 0xFFFFFFFF)
                else:
                    self.mmio.write(a.offset, v & 0xFFFFFFFF)

        def start_hs(self) -> None:
            """Set AP_START (ap_ctrl_hs). Raises DeviceError when the kernel is not idle."""
            st = self.status
            if not st & AP_IDLE:
                raise DeviceError(f"kernel {self.description.get('fullpath')} is busy (status 0x{st:02x}); "
                                  "a previous run did not finish: reload the overlay")
            self.mmio.write(CTRL, AP_START)

        def wait_done(self, timeout_s: float, poll_s: float = 1e-4) -> float:
            """Poll AP_DONE until set; returns seconds waited. Raises DeviceError after ``timeout_s``
            naming the kernel and its status register value."""
            t0 = time.perf_counter()
            sleep = poll_s
            while True:
                st = self.status
                if st & AP_DONE:
                    return time.perf_counter() - t0
                if time.perf_counter() - t0 > timeout_s:
                    raise DeviceError(
                        f"kernel {self.description.get('fullpath')} ({vlnv}) did not set AP_DONE within "
                        f"{timeout_s:g} s: control register 0x00 = 0x{st:02x} (AP_START={st & 1}, "
                        f"AP_DONE={(st >> 1) & 1}, AP_IDLE={(st >> 2) & 1}); the bitstream may not match "
                        "the project or the kernel hung: reload the overlay")
                time.sleep(sleep)
                sleep = min(sleep * 2, 0.01)

    _Kernel.__name__ = _Kernel.__qualname__ = f"PadlessKernel_{vlnv.split(':')[2]}"
    _DRIVERS[vlnv] = _Kernel
    return _Kernel


def _bitstream_files(project, iface: KernelInterface) -> tuple[Path, str]:
    deploy = Path(project.path) / "deploy"
    for pat in ("*.xclbin", "*.bit"):
        found = sorted(deploy.glob(pat))
        if found:
            f = found[0]
            if f.suffix == ".bit" and not f.with_suffix(".hwh").is_file():
                raise ProjectError(f"{f} has no {f.with_suffix('.hwh').name} beside it; pynq needs both "
                                   "(`make -C DIR bitstream` copies them to deploy/)")
            return f, f.suffix
    raise ProjectError(f"{deploy} holds no bitstream (.xclbin or .bit + .hwh); build it with "
                       f"`padless bitstream {project.path}` on a machine with Vitis / Vivado, or use the "
                       "csim backend")


class PynqBackend:
    """Run packed batches on the project's kernel through pynq (board or simulated device).

    ``PynqBackend(project, device=None, timeout_s=30, capacity_tokens=None)``. ``device``: a pynq Device;
    None takes ``pynq.Device.active_device``. With a :class:`~padless.runtime.simdevice.SimDevice` the
    kernel is attached to it from the project; otherwise ``deploy/`` must hold the bitstream.

    ``run(x (tokens, hidden) int8, offsets (B+1,) int64) -> (tokens, hidden) int8``; buffers grow to the
    largest pack seen; ``close()`` frees them. Raises ToolMissingError (no pynq: use csim), DeviceError
    (no device, kernel timeout), ProjectError (bitstream does not match the project), InputError (bad
    batch)."""

    name = "pynq"

    def __init__(self, project, device=None, timeout_s: float = DEFAULT_TIMEOUT_S, capacity_tokens: int | None = None):
        pynq = _import_pynq()
        self.project = project
        self.pynq = pynq
        self.timeout_s = float(timeout_s)
        self.hidden = int(project.model["hidden_size"])
        hls = project.manifest.get("hls") or {}
        # the kernel (and the bitstream built from it) must be the one the manifest's sparsity describes: the
        # buffer layout and the golden reference follow the manifest
        from ...project import check_generated_sparsity
        check_generated_sparsity(project)
        # the activation buffer: act_regions x tokens rows (3 with token reduction, 4 with the learned policy),
        # the output in out_region
        self.act_regions = int(hls.get("act_regions") or 2)
        self.out_region = int(hls.get("out_region", int(project.model["num_layers"]) % 2))
        self.iface = kernel_interface(project)
        # importing simdevice registers the simulated device with pynq's probe (probed only when
        # PADLESS_SIM_DEVICE=1), so a named pynq backend finds it as `auto` does
        from ..simdevice import SimDevice, enable, enabled, find_device
        if device is None:
            device = find_device()
            if device is None and enabled():
                device = enable()  # pynq probed before the variable was set: probe again
            if device is None:
                raise DeviceError(
                    "no FPGA device found by pynq; on a machine without a board use --backend csim, "
                    "or set PADLESS_SIM_DEVICE=1 to run this backend on the simulated device")
        self.device = device
        self.overlay = None
        self._lock = threading.RLock()   # this object's buffers and registers
        driver = kernel_driver(self.iface.vlnv)
        if isinstance(device, SimDevice):
            base = device.attach(project, self.iface)
            self.ip = driver(ip_description(self.iface, base, device))
            self.binding = f"simulated device {device.tag} ({device.engine_name(base)} engine)"
        else:
            bitfile, kind = _bitstream_files(project, self.iface)
            try:
                self.overlay = pynq.Overlay(str(bitfile), device=device)
            except Exception as exc:  # pynq raises plain RuntimeError/ValueError/IOError for bad files
                raise DeviceError(f"pynq could not load {bitfile}: {exc}") from exc
            self.ip = self._find_ip(self.overlay, driver)
            self.binding = f"{kind} overlay {bitfile.name} on {getattr(device, 'name', device.tag)}"
        wfile = Path(project.path) / (project.manifest.get("files", {}).get("weights") or "weights.bin")
        if not wfile.is_file():
            raise ProjectError(f"kernel {self.iface.name} takes weights but {wfile} is missing; regenerate the project")
        blob = np.fromfile(wfile, dtype=np.uint8)
        # each host buffer in the memory its ports are connected to (bitstream/connectivity.cfg; {} on Zynq)
        from ...codegen.bitstream import buffer_memories
        self.memories = buffer_memories(project)
        self.weights = pynq.allocate((blob.size,), dtype=np.uint8, target=self._target("weights"))
        self.weights[:] = blob
        self.weights.sync_to_device()
        self._bufs: dict[str, object] = {}
        self._cap_tokens = 0
        self._cap_seqs = 0
        self._closed = False
        self._initialized = False
        self._engine = None
        # one kernel instance runs one batch at a time: objects sharing it (same device, same control
        # window) share this lock
        self._ip_lock = _ip_lock(self.device, self.ip)
        if capacity_tokens:
            self._ensure(int(capacity_tokens), int(capacity_tokens))

    def _target(self, buffer: str):
        """The pynq ``allocate`` target of host buffer ``buffer`` (:data:`padless.codegen.bitstream.HOST_BUFFERS`):
        the memory bank its kernel ports are connected to (an overlay's ``HBM0`` / ``DDR1`` memory, pynq's
        name for the xclbin tag ``HBM[0]`` / ``DDR[1]``), else the device's default memory. Raises DeviceError
        when the overlay has no such memory."""
        mem = self.memories.get(buffer)
        if mem is None:
            return self.device
        from ..simdevice import SimDevice
        if isinstance(self.device, SimDevice):
            return self.device.memory(mem)
        tag = re.sub(r"[^A-Za-z0-9_]", "", mem)
        target = (getattr(self.overlay, "mem_dict", {}) or {}).get(mem) and getattr(self.overlay, tag, None)
        if target is None:
            raise DeviceError(f"the overlay of {self.iface.name} has no memory {mem} (bitstream/connectivity.cfg "
                              f"connects the {buffer} buffer's ports to it): the bitstream does not match the "
                              "project; rebuild it with `make -C DIR bitstream`")
        return target

    def _find_ip(self, overlay, driver):
        ips = {k: v for k, v in overlay.ip_dict.items() if v.get("type", "").rpartition(":")[0] == self.iface.vlnv.rpartition(":")[0]}
        if not ips:
            raise ProjectError(
                f"the bitstream in {Path(self.project.path) / 'deploy'} holds no {self.iface.vlnv} kernel "
                f"(it has: {', '.join(sorted(v.get('type', '?') for v in overlay.ip_dict.values()))}); it was "
                "built from another project: rebuild it with `make -C DIR bitstream`")
        name, desc = next(iter(ips.items()))
        want = {a.name: a.offset for a in self.iface.args}
        have = {k: v["address_offset"] for k, v in (desc.get("registers") or {}).items() if k in want}
        if have and have != want:
            raise ProjectError(f"kernel {name} in the bitstream has argument offsets {have}, the project expects "
                               f"{want}: the bitstream does not match the project; rebuild it")
        ip = getattr(overlay, name)
        if not isinstance(ip, driver):
            ip = driver(desc)
        return ip

    def _ensure(self, tokens: int, seqs: int) -> None:
        if tokens <= self._cap_tokens and seqs <= self._cap_seqs:
            return
        self._free_io()
        cap_t = max(tokens, self._cap_tokens, 64)
        cap_s = max(seqs, self._cap_seqs, 16)
        a = self.pynq.allocate
        self._bufs = {"act": a((self.act_regions * cap_t * self.hidden,), dtype=np.int8, target=self._target("act")),
                      "desc": a((2 * cap_s,), dtype=np.int32, target=self._target("desc"))}
        self._cap_tokens, self._cap_seqs = cap_t, cap_s

    def run(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(tokens, hidden)`` int8, ``(B + 1,)`` int64 offsets -> ``(tokens, hidden)`` int8.

        Thread safe: one run at a time per object (its buffers) and per kernel instance (its registers).
        Raises InputError for a batch that does not fit the project, DeviceError on a kernel timeout,
        ClosedError after :meth:`close`."""
        with self._lock, self._ip_lock:
            if self._closed:
                raise ClosedError("the pynq backend was closed; create a new one")
            return self._run(x, offsets)

    def _start(self, values: dict, what: str) -> None:
        """Write the argument registers, start the kernel (ap_ctrl_hs), wait, check its status."""
        self.ip.set_args(values, self.iface)
        self.ip.start_hs()
        self.ip.wait_done(self.timeout_s)
        if self.iface.ap_return is not None:
            status = int(self.ip.mmio.read(self.iface.ap_return))
            if status:
                raise DeviceError(f"kernel {self.iface.name} returned status {status}: "
                                  f"{self.iface.errors.get(status, 'unknown error code')} ({what})")

    def _values(self, act: int, desc: int, seqs: int, tokens: int, mode: int) -> dict:
        from ...codegen.bitstream import HOST_BUFFERS
        addr = {"act": act, "desc": desc, "weights": self.weights.device_address}
        by_role = {port: addr[buf] for buf, ports in HOST_BUFFERS.items() for port in ports}
        by_role.update(num_seqs=seqs, num_tokens=tokens, mode=mode)
        return {a.name: by_role[a.role] for a in self.iface.args}

    def _init(self) -> None:
        """The kernel's init call: a resident engine loads every layer's weights on chip (once per
        binding; a streamed engine loads per layer and returns at once)."""
        self._ensure(1, 1)
        b = self._bufs
        self._start(self._values(b["act"].device_address, b["desc"].device_address, 0, 0, MODE_INIT), "init call")
        self._initialized = True

    def _run(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        offsets = np.asarray(offsets)
        if x.ndim != 2 or x.shape[1] != self.hidden or x.dtype != np.int8:
            raise InputError(f"pynq backend: input must be (tokens, {self.hidden}) int8 for project "
                             f"{self.project.path}, got {x.shape} {x.dtype}")
        if offsets.ndim != 1 or offsets.size < 2 or offsets[0] != 0 or offsets[-1] != x.shape[0] or np.any(np.diff(offsets) <= 0):
            raise InputError(f"pynq backend: offsets must rise from 0 to {x.shape[0]} (one entry per sequence "
                             f"plus one), got {offsets.tolist()[:8]}")
        tokens, seqs = int(x.shape[0]), int(offsets.size - 1)
        hls = self.project.manifest.get("hls") or {}
        if hls.get("max_tokens") and tokens > int(hls["max_tokens"]):
            raise InputError(f"pynq backend: a pack of {tokens} tokens exceeds the kernel's {hls['max_tokens']} "
                             "(hls.max_tokens in manifest.json); pack with max_tokens <= that")
        lens = np.diff(offsets)
        if hls.get("max_seq") and int(lens.max()) > int(hls["max_seq"]):
            raise InputError(f"pynq backend: a sequence of {int(lens.max())} tokens exceeds the kernel's {hls['max_seq']}")
        if not self._initialized:
            self._init()
        self._ensure(tokens, seqs)
        order = self._order(lens)
        act, desc = self._bufs["act"], self._bufs["desc"]
        act[: tokens * self.hidden] = x.reshape(-1)
        d = np.stack([offsets[:-1], lens], axis=1)[order].astype(np.int32)
        desc[: 2 * seqs] = d.reshape(-1)
        act.sync_to_device()
        desc.sync_to_device()
        # the activation buffer holds act_regions x tokens rows: this call's regions start at act's address
        self._start(self._values(act.device_address, desc.device_address, seqs, tokens, MODE_RUN),
                    f"a pack of {tokens} tokens in {seqs} sequences")
        act.sync_from_device()
        half = self.out_region * tokens * self.hidden
        return np.array(act[half: half + tokens * self.hidden], dtype=np.int8).reshape(tokens, self.hidden)

    def _order(self, lens: np.ndarray) -> np.ndarray:
        """The host's length-aware order of the call's sequences (the kernel runs its descriptors in order)."""
        info = self.project.manifest.get("hls") or {}
        if "engine" not in info:
            return np.arange(len(lens))
        from ...schedule.engine import EngineConfig
        from ...schedule.scheduler import engine_order
        if self._engine is None:
            self._engine = EngineConfig.from_dict(info["engine"])
        return engine_order(lens, self._engine)

    def _free_io(self) -> None:
        for b in self._bufs.values():
            b.freebuffer()
        self._bufs = {}
        self._cap_tokens = self._cap_seqs = 0

    def close(self) -> None:
        """Free every buffer (idempotent)."""
        with self._lock:
            self._closed = True
            self._free_io()
            if self.weights is not None:
                self.weights.freebuffer()
                self.weights = None

    def describe(self) -> dict:
        """Kernel name, VLNV, argument offsets and binding (for reports)."""
        return {"kernel": self.iface.name, "vlnv": self.iface.vlnv, "binding": self.binding,
                "signature_source": self.iface.source,
                "args": {a.name: f"0x{a.offset:02x}" for a in self.iface.args}}


def describe_json(project) -> str:
    """The kernel's register layout as JSON (``padless`` docs and debugging)."""
    iface = kernel_interface(project)
    return json.dumps({"kernel": iface.name, "vlnv": iface.vlnv, "source": iface.source,
                       "ap_return": iface.ap_return, "args": [{"name": a.name, "type": a.ctype + (" *" if a.pointer else ""),
                                 "offset": a.offset} for a in iface.args]}, indent=2)
