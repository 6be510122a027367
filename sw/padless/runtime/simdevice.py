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
  control register; writing AP_START reads the argument registers, fetches the packed input and offsets
  from device memory, runs the encoder on the execution engine and writes the output to device memory,
  then sets AP_DONE (clear on read) and AP_IDLE. A pointer outside any allocation or an input size that
  does not match the buffer raises DeviceError (the bus error of a board, reported clearly);
- the execution engine: the project's csim library (:mod:`padless.runtime.backends.csim`, the g++ build
  of the generated HLS kernel) when it can be built, else the bit-exact golden model
  (:mod:`padless.golden`); both return identical bits (tests check csim against golden).
- ``hang=True`` in :meth:`attach` models a kernel that never finishes (AP_DONE stays 0), for timeouts.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings

import numpy as np

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
        self.max_tokens = self.max_seq = 0
        self.base, self.iface, self.engine, self.engine_name, self.hang = base, iface, engine, engine_name, hang
        self.regs = np.zeros(iface.addr_range // 4, dtype=np.uint32)
        self.regs[CTRL // 4] = AP_IDLE
        self.runs = 0


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

    # ---- memory -------------------------------------------------------------------------------
    def allocate(self, shape, dtype, **kwargs):
        """A ``PynqBuffer`` of ``shape``/``dtype`` in host memory with its own device memory."""
        from pynq.buffer import PynqBuffer
        buf = PynqBuffer(shape, dtype, device=self, device_address=0, bo=0, coherent=False)
        nbytes = max(int(buf.nbytes), 1)
        with self._lock:
            addr = self._next
            self._next += (nbytes + ALIGN - 1) // ALIGN * ALIGN
            self._mem[addr] = np.zeros(nbytes, dtype=np.uint8)
        buf.device_address, buf.bo, buf.offset = addr, addr, 0
        # pynq's freebuffer() returns ``pointer`` to ``return_to`` (the path pynq's own memory pools use).
        buf.memory, buf.pointer, buf.return_to = self, addr, self
        buf.freed = True  # host memory belongs to numpy: pynq must never munmap it
        return buf

    def return_pointer(self, pointer: int) -> None:
        with self._lock:
            self._mem.pop(pointer, None)

    @property
    def live_buffers(self) -> int:
        return len(self._mem)

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

        ``engine``: an object with ``run(x, offsets)`` (default: csim when it builds, else golden)."""
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

    def _start(self, w: _Window) -> None:
        w.regs[0] = AP_START  # running: not idle, not done
        if w.hang:
            return
        status = 0
        try:
            seqs = self._arg(w, "num_seqs")
            oa = w.iface.arg("offsets")
            offsets = self._region(self._arg(w, "offsets"), (seqs + 1) * oa.dtype.itemsize).view(oa.dtype).astype(np.int64)
            tokens = int(offsets[-1])
            if w.iface.arg("num_tokens") is not None and self._arg(w, "num_tokens") != tokens:
                raise DeviceError(f"simulated device: num_tokens register {self._arg(w, 'num_tokens')} != "
                                  f"offsets[-1] {tokens}")
            hidden = w.hidden
            x = self._region(self._arg(w, "input"), tokens * hidden).view(np.int8).reshape(tokens, hidden)
            limit = w.max_tokens
            if limit and not 1 <= tokens <= limit:
                status = _code(w.iface.errors, "TOKENS", 1)
            elif w.max_seq and int(np.max(np.diff(offsets))) > w.max_seq:
                status = _code(w.iface.errors, "SEQLEN", 4)
            else:
                y = np.asarray(w.engine.run(x.copy(), offsets), dtype=np.int8)
                self._region(self._arg(w, "output"), tokens * hidden)[:] = y.reshape(-1).view(np.uint8)
        finally:
            w.runs += 1
            if w.iface.ap_return is not None:
                w.regs[w.iface.ap_return // 4] = status
            w.regs[0] = AP_DONE | AP_IDLE | AP_READY


def _code(errors: dict, key: str, default: int) -> int:
    return next((v for v, name in errors.items() if f"_ERR_{key}" in name), default)


def _engine(project):
    """The execution engine for ``project``: csim when its library builds, else golden (warning)."""
    try:
        from .backends.csim import CsimBackend
    except ModuleNotFoundError:
        CsimBackend = None
    if CsimBackend is not None and (project.path / "hls").is_dir():
        try:
            return CsimBackend(project), "csim"
        except Exception as exc:  # a missing g++ / header raises the csim module's own PadlessError
            warnings.warn(f"simulated device: the csim library could not be built ({exc}); executing the "
                          "kernel with the golden model", RuntimeWarning, stacklevel=3)
    from .backends.golden import GoldenBackend
    return GoldenBackend(project), "golden"


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
