"""A simulated FPGA for pynq: a ``pynq.Device`` whose kernel registers execute the project's model.

:class:`SimDevice` is discovered by pynq like a real board (a ``pynq.Device`` subclass with
``_probe_priority_`` and ``_probe_``) but only when enabled: set ``PADLESS_SIM_DEVICE=1`` before pynq
first probes, or call :func:`enable` (which also drops pynq's cached device list). It never hides a real
board: its priority (1000) is after pynq's own devices, so ``pynq.Device.active_device`` stays the board.

What it models, so that :class:`padless.runtime.backends.pynq.PynqBackend` runs unchanged through pynq's
``MMIO`` (capability ``REGISTER_RW``), ``DefaultIP`` and ``allocate``:

- device memory separate from host memory: ``allocate`` returns a ``pynq.buffer.PynqBuffer`` in host
  memory with a device address; ``sync_to_device`` (``flush``) copies it into device memory and
  ``sync_from_device`` (``invalidate``) copies back, so a missing sync gives stale data as on a board;
  ``freebuffer`` returns the device memory;
- a kernel's s_axilite control window (:meth:`SimDevice.attach`): argument registers, and the ap_ctrl_hs
  control register; writing AP_START reads the argument registers and calls the kernel with the device
  memory they point to -- the activation buffer (three ports), the descriptors, the weights image, the
  sizes and the mode --, exactly the C call Vitis HLS's RTL implements; the kernel's return value goes to
  ``ap_return``; then AP_DONE (clear on read) and AP_IDLE. A pointer outside any allocation raises
  DeviceError (the bus error of a board, reported clearly);
- the execution engine: the project's csim library (:mod:`padless.csim`, the g++ build of the generated
  HLS kernel; its init call loads the weights on chip as on the board) when it can be built, else a
  golden model of the same C contract (:mod:`padless.golden`); both give identical bits.
- ``hang=True`` in :meth:`attach` models a kernel that never finishes (AP_DONE stays 0), for timeouts.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings

import numpy as np

from ..codegen.bitstream import port_memories
from ..errors import DeviceError
from .backends.pynq import (AP_DONE, AP_IDLE, AP_READY, AP_START, CTRL, KernelInterface, _import_pynq,
                            kernel_interface)

ENV = "PADLESS_SIM_DEVICE"
MEM_BASE = 0x1_0000_0000  # device addresses of buffers (as on Alveo HBM/DDR, above 4 GiB)
CTRL_BASE = 0xA000_0000   # first kernel control window (Zynq M_AXI_HPM0 range)
ALIGN = 4096

pynq = _import_pynq()


def enabled() -> bool:
    """True when ``PADLESS_SIM_DEVICE`` is set to 1/true/yes."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _Window:
    """The s_axilite control window of one attached kernel."""

    def __init__(self, base: int, iface: KernelInterface, engine, engine_name: str, hang: bool, hidden: int):
        self.hidden = hidden
        self.weight_bytes = 0
        self.max_tokens = self.max_seq = 0
        self.base, self.iface, self.engine, self.engine_name, self.hang = base, iface, engine, engine_name, hang
        self.regs = np.zeros(iface.addr_range // 4, dtype=np.uint32)
        self.regs[CTRL // 4] = AP_IDLE
        self.runs = 0
        self.port_memories: dict[str, str] = {}  # m_axi port -> memory it is connected to (Alveo projects)


class SimDevice(pynq.Device):
    """The simulated device (pynq discovers it when :func:`enabled`). See the module docstring.

    Public: ``attach(project, iface=None, hang=False) -> base address``, ``engine_name(base)``,
    ``live_buffers`` (count of device allocations), ``runs(base)``; the pynq Device interface
    (``allocate``, ``read_registers``, ``write_registers``, ``flush``, ``invalidate``,
    ``return_pointer``)."""

    _probe_priority_ = 1000
    capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False}
    name = "padless simulated device"

    @classmethod
    def _probe_(cls):
        return [cls("padless_sim0")] if enabled() else []

    def __init__(self, tag: str = "padless_sim0"):
        super().__init__(tag)
        self._lock = threading.Lock()
        self._mem: dict[int, np.ndarray] = {}  # device address -> device bytes
        self._next = MEM_BASE
        self._windows: dict[int, _Window] = {}
        self._next_ctrl = CTRL_BASE
        self._bank: dict[int, str | None] = {}  # device address -> memory bank ("HBM[0]"), None: default

    # ---- memory -------------------------------------------------------------------------------
    def memory(self, tag: str) -> "SimMemory":
        """The memory bank ``tag`` (``"HBM[0]"``, ``"DDR[1]"``) as a pynq ``allocate`` target, as an Alveo
        overlay's ``ol.HBM0`` is."""
        return SimMemory(self, tag)

    def allocate(self, shape, dtype, bank: str | None = None, **kwargs):
        """A ``PynqBuffer`` of ``shape``/``dtype`` in host memory with its own device memory, in memory bank
        ``bank`` (None: the device's default memory)."""
        from pynq.buffer import PynqBuffer
        buf = PynqBuffer(shape, dtype, device=self, device_address=0, bo=0, coherent=False)
        nbytes = max(int(buf.nbytes), 1)
        with self._lock:
            addr = self._next
            self._next += (nbytes + ALIGN - 1) // ALIGN * ALIGN
            self._mem[addr] = np.zeros(nbytes, dtype=np.uint8)
            self._bank[addr] = bank
        buf.device_address, buf.bo, buf.offset = addr, addr, 0
        # pynq's freebuffer() returns ``pointer`` to ``return_to`` (the path pynq's own memory pools use).
        buf.memory, buf.pointer, buf.return_to = self, addr, self
        buf.freed = True  # host memory belongs to numpy: pynq must never munmap it
        return buf

    def return_pointer(self, pointer: int) -> None:
        with self._lock:
            self._mem.pop(pointer, None)
            self._bank.pop(pointer, None)

    @property
    def live_buffers(self) -> int:
        return len(self._mem)

    def bank_of(self, addr: int) -> str | None:
        """The memory bank of the buffer holding device address ``addr`` (None: the default memory)."""
        with self._lock:
            regions = [(b, m.size, self._bank.get(b)) for b, m in self._mem.items()]
        for base, size, bank in regions:
            if base <= addr < base + size:
                return bank
        return None

    def _region(self, addr: int, nbytes: int) -> np.ndarray:
        with self._lock:  # another thread may allocate or free meanwhile
            regions = list(self._mem.items())
        for base, mem in regions:
            if base <= addr and addr + nbytes <= base + mem.size:
                return mem[addr - base: addr - base + nbytes]
        raise DeviceError(f"simulated device: access of {nbytes} bytes at 0x{addr:x} is outside every "
                          "allocated buffer (a buffer was freed, too small, or an address register is wrong)")

    def flush(self, bo, offset, vaddr, nbytes):
        """sync_to_device: host bytes -> device memory."""
        dst = self._region(bo + offset, nbytes)
        ctypes.memmove(dst.ctypes.data, vaddr, nbytes)

    def invalidate(self, bo, offset, vaddr, nbytes):
        """sync_from_device: device memory -> host bytes."""
        src = self._region(bo + offset, nbytes)
        ctypes.memmove(vaddr, src.ctypes.data, nbytes)

    # ---- kernels ------------------------------------------------------------------------------
    def attach(self, project, iface: KernelInterface | None = None, hang: bool = False, engine=None) -> int:
        """Place ``project``'s kernel on the device; returns its control window base address.

        ``engine``: an object with ``call(act, desc, weights, num_seqs, num_tokens, mode) -> status`` on
        device memory (default: the csim library when it builds, else the golden contract)."""
        iface = iface or kernel_interface(project)
        name = None
        if engine is None:
            engine, name = _engine(project)
        name = name or getattr(engine, "name", type(engine).__name__)
        with self._lock:
            base = self._next_ctrl
            self._next_ctrl += max(iface.addr_range, 0x10000)
            w = _Window(base, iface, engine, name, hang, int(project.model["hidden_size"]))
            hls = project.manifest.get("hls") or {}
            w.max_tokens, w.max_seq = int(hls.get("max_tokens") or 0), int(hls.get("max_seq") or 0)
            w.act_regions = int(hls.get("act_regions") or 2)   # 3 with token reduction (the output region)
            w.weight_bytes = int(project.file("weights").stat().st_size)
            w.port_memories = port_memories(project)
            self._windows[base] = w
        return base

    def engine_name(self, base: int) -> str:
        return self._windows[base].engine_name

    def runs(self, base: int) -> int:
        return self._windows[base].runs

    def _window(self, address: int) -> tuple[_Window, int]:
        with self._lock:
            windows = list(self._windows.items())
        for base, w in windows:
            if base <= address < base + w.iface.addr_range:
                return w, address - base
        raise DeviceError(f"simulated device: no kernel control window at 0x{address:x}")

    def read_registers(self, address, length):
        w, off = self._window(address)
        data = w.regs.view(np.uint8)[off: off + length].tobytes()
        if off == CTRL and w.regs[0] & AP_DONE:
            w.regs[0] &= ~np.uint32(AP_DONE)  # AP_DONE is clear-on-read (UG1399)
        return data

    def write_registers(self, address, data):
        w, off = self._window(address)
        if off == CTRL:
            val = int.from_bytes(bytes(data[:4]), "little")
            if val & AP_START:
                self._start(w)
            return
        w.regs.view(np.uint8)[off: off + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def _arg(self, w: _Window, role: str) -> int:
        a = w.iface.arg(role)
        lo = int(w.regs[a.offset // 4])
        return lo | (int(w.regs[a.offset // 4 + 1]) << 32) if a.width == 8 else lo

    def _check_banks(self, w: _Window) -> None:
        """XRT's binding rule: a buffer given to an m_axi port must sit in a memory that port is connected to
        (bitstream/connectivity.cfg). Raises DeviceError naming the port, the buffer's bank and the port's."""
        for port, mem in w.port_memories.items():
            if w.iface.arg(port) is None:
                continue
            got = self.bank_of(self._arg(w, port))
            if got != mem:
                raise DeviceError(f"simulated device: the buffer given to port {port} of {w.iface.name} is in "
                                  f"{got or 'the default memory'}, but the port is connected to {mem} "
                                  "(bitstream/connectivity.cfg): XRT cannot bind it; allocate it with "
                                  f"target=<overlay>.{mem.replace('[', '').replace(']', '')}")

    def _start(self, w: _Window) -> None:
        w.regs[0] = AP_START  # running: not idle, not done
        if w.hang:
            return
        status = 0
        try:
            self._check_banks(w)
            seqs, tokens, mode = self._arg(w, "num_seqs"), self._arg(w, "num_tokens"), self._arg(w, "mode")
            seqs, tokens = np.int32(np.uint32(seqs)), np.int32(np.uint32(tokens))  # the C ints the kernel sees
            hidden = w.hidden
            rows = getattr(w, "act_regions", 2) * max(int(tokens), 0)
            act = {r: self._region(self._arg(w, r), rows * hidden) for r in ("act_rd", "act_res", "act_wr")}
            desc = self._region(self._arg(w, "desc"), 8 * max(int(seqs), 0))
            weights = self._region(self._arg(w, "weights"), w.weight_bytes)
            status = w.engine.call(act, desc, weights, int(seqs), int(tokens), int(mode))
        finally:
            w.runs += 1
            if w.iface.ap_return is not None:
                w.regs[w.iface.ap_return // 4] = np.uint32(status & 0xFFFFFFFF)
            w.regs[0] = AP_DONE | AP_IDLE | AP_READY


class SimMemory:
    """One memory bank of the simulated device (``SimDevice.memory(tag)``): a pynq ``allocate`` target."""

    def __init__(self, device: SimDevice, tag: str):
        self.device, self.tag = device, tag

    def allocate(self, shape, dtype, **kwargs):
        return self.device.allocate(shape, dtype, bank=self.tag, **kwargs)


class _CsimKernel:
    """The kernel C call on device memory, executed by the project's csim library (the fast form, or the
    form ``PADLESS_CSIM_FORM`` names: ``synth`` runs the code Vitis HLS synthesizes)."""

    name = "csim"

    def __init__(self, project):
        from ..csim import FORMS, CsimLibrary, build_library, resolve_form
        self.form = form = resolve_form()
        self.lib = CsimLibrary(build_library(project.path / "hls", extra_flags=FORMS[form]))

        self.digest = None

    def call(self, act: dict, desc, weights, seqs: int, tokens: int, mode: int) -> int:
        import hashlib

        from .backends.csim import _LOADED
        key = int(self.lib.lib._handle)
        with self.lib.lock:
            self.lib.configure()
            if mode == 0 and self.digest is not None and _LOADED.get(key) != self.digest:
                # another user of the same library loaded other weights on its "chip": load ours again
                self.lib.fn(0, 0, 0, 0, weights.ctypes.data, 0, 0, 1)
                _LOADED[key] = self.digest
            status = int(self.lib.fn(act["act_rd"].ctypes.data, act["act_res"].ctypes.data, act["act_wr"].ctypes.data,
                                     desc.ctypes.data, weights.ctypes.data, seqs, tokens, mode))
            if mode == 1 and status == 0:
                self.digest = hashlib.sha256(weights.tobytes()).hexdigest()
                _LOADED[key] = self.digest
            return status


class _GoldenKernel:
    """The kernel's C contract executed by the golden model (no g++ here): the same statuses and the
    same output rows (layer-0 input in rows [0, tokens) of the buffer, output in region ``out_region``
    of ``act_regions`` x tokens rows: half LAYERS % 2, or the third region with token reduction)."""

    name = "golden"

    def __init__(self, project):
        from .backends.golden import GoldenBackend
        self.golden = GoldenBackend(project)
        hls = project.manifest.get("hls") or {}
        self.max_tokens, self.max_seq = int(hls.get("max_tokens") or 1 << 30), int(hls.get("max_seq") or 1 << 30)
        self.hidden, self.layers = int(project.model["hidden_size"]), int(project.model["num_layers"])
        self.regions = int(hls.get("act_regions") or 2)
        self.out_region = int(hls.get("out_region", self.layers % 2))

    def call(self, act: dict, desc, weights, seqs: int, tokens: int, mode: int) -> int:
        if mode == 1:
            return 0
        if mode != 0:
            return 7
        if not 1 <= tokens <= self.max_tokens:
            return 1
        if not 1 <= seqs <= tokens:
            return 2
        d = desc.view(np.int32).reshape(seqs, 2).astype(np.int64)
        if np.any(d[:, 1] < 1) or np.any(d[:, 1] > self.max_seq):
            return 4
        if np.any(d[:, 0] < 0) or np.any(d[:, 0] + d[:, 1] > tokens):
            return 3
        x = act["act_rd"].view(np.int8).reshape(self.regions * tokens, self.hidden)[:tokens]
        out = act["act_wr"].view(np.int8).reshape(self.regions * tokens, self.hidden)
        base = self.out_region * tokens
        for s, n in d:
            out[base + s: base + s + n] = self.golden.run(x[s:s + n].copy(), np.array([0, n], np.int64))
        return 0


def _code(errors: dict, key: str, default: int) -> int:
    return next((v for v, name in errors.items() if f"_ERR_{key}" in name), default)


def _engine(project):
    """The execution engine for ``project``: csim when its library builds, else golden (warning)."""
    if (project.path / "hls").is_dir():
        try:
            return _CsimKernel(project), "csim"
        except Exception as exc:  # a missing g++ / header raises the csim module's own PadlessError
            warnings.warn(f"simulated device: the csim library could not be built ({exc}); executing the "
                          "kernel with the golden model", RuntimeWarning, stacklevel=3)
    return _GoldenKernel(project), "golden"


def enable() -> SimDevice:
    """Enable the simulated device for this process and return it (the active pynq device unless a real
    board was found first). Resets pynq's cached device list so the next probe sees it."""
    os.environ[ENV] = "1"
    for attr in ("_devices", "_active_device"):
        if attr in pynq.Device.__dict__:
            delattr(pynq.Device, attr)
    devs = [d for d in pynq.Device.devices if isinstance(d, SimDevice)]
    return devs[0]


def find_device():
    """pynq's active device, or None when pynq finds none (no warning printed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        devs = pynq.Device.devices
    return devs[0] if devs else None
