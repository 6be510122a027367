"""C-simulation: build the project's HLS C++ with g++ into a shared library and call it through ctypes.

The library is the very kernel of ``hls/`` (padless_encoder.cpp + config.h + the padless headers) built
with the Xilinx ap_types headers that ship in the hls4ml wheel (located at run time; Vitis HLS's own
headers when ``XILINX_HLS`` is set). Builds are cached by a content hash of every source, the compiler's
version and the flags (which include ``-march=native``, so the CPU's model and flags are hashed too).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from .errors import ProjectError, ToolMissingError

DEFAULT_FLAGS = ("-O3", "-march=native", "-std=c++17", "-fPIC", "-shared", "-fno-strict-aliasing")


def ap_types_dir() -> Path:
    """The folder holding ``ap_int.h`` / ``hls_stream.h``: ``$XILINX_HLS/include`` when set, else hls4ml's
    ``templates/vivado/ap_types``. Raises ToolMissingError when neither exists."""
    xil = os.environ.get("XILINX_HLS")
    if xil and (Path(xil) / "include" / "ap_int.h").is_file():
        return Path(xil) / "include"
    try:
        from importlib import resources
        base = Path(str(resources.files("hls4ml")))
    except (ModuleNotFoundError, TypeError):
        base = None
    if base is not None:
        d = base / "templates" / "vivado" / "ap_types"
        if (d / "ap_int.h").is_file():
            return d
    raise ToolMissingError("the Xilinx ap_types headers (ap_int.h, hls_stream.h) were not found: install "
                           "hls4ml (pip install hls4ml==1.3.0, or make install) or set XILINX_HLS to a Vitis HLS install")


def compiler() -> str:
    """The C++ compiler: ``$CXX`` or ``g++``. Raises ToolMissingError when it is not runnable."""
    cxx = os.environ.get("CXX") or "g++"
    path = shutil.which(cxx)
    if path is None:
        raise ToolMissingError(f"C++ compiler {cxx!r} not found: install g++ (apt-get install g++) or point CXX at "
                               "a working compiler; the csim backend builds the HLS C++ with it")
    return path


def _cpu_id() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        import platform
        return platform.processor()


def cache_dir() -> Path:
    """``$PADLESS_CACHE/csim`` or ``~/.cache/padless/csim``."""
    root = os.environ.get("PADLESS_CACHE") or Path.home() / ".cache" / "padless"
    return Path(root) / "csim"


def build_library(hls_dir, extra_flags: tuple = (), cache: Path | None = None) -> Path:
    """Build (or reuse) the shared library of an HLS folder; returns its path.

    Args:
        hls_dir: a project's ``hls/`` folder (padless_encoder.cpp, config.h, include/padless/).
        extra_flags: more compiler flags (part of the cache key), e.g. ``("-DPADLESS_CSIM_FAST=0",)``.
        cache: cache folder (default :func:`cache_dir`).
    Raises ToolMissingError (no compiler or ap_types), ProjectError (no HLS sources, or g++ failed: its
    error output is in the message).
    """
    hls_dir = Path(hls_dir)
    top = hls_dir / "padless_encoder.cpp"
    if not top.is_file() or not (hls_dir / "config.h").is_file():
        raise ProjectError(f"{hls_dir} has no generated HLS kernel; recompile the project with `padless compile`")
    cxx = compiler()
    ap = ap_types_dir()
    flags = list(os.environ.get("PADLESS_CSIM_FLAGS", " ".join(DEFAULT_FLAGS)).split()) + list(extra_flags)
    try:
        ver = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError as exc:
        raise ToolMissingError(f"C++ compiler {cxx} cannot run ({exc}); install g++ or set CXX") from exc
    h = hashlib.sha256()
    for f in [top, hls_dir / "config.h", *sorted((hls_dir / "include" / "padless").glob("*.h"))]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update("\0".join([ver, str(ap), *flags, _cpu_id() if "-march=native" in flags else ""]).encode())
    key = h.hexdigest()[:24]
    out_dir = Path(cache or cache_dir()) / key
    lib = out_dir / "libpadless_csim.so"
    if lib.is_file():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"libpadless_csim.{os.getpid()}.so"
    cmd = [cxx, *flags, f"-I{hls_dir}", f"-I{hls_dir / 'include'}", f"-I{ap}", str(top), "-o", str(tmp)]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ProjectError(f"g++ could not build the csim library ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
    tmp.replace(lib)
    (out_dir / "build.txt").write_text(f"{' '.join(cmd)}\nseconds {time.perf_counter() - t:.1f}\n")
    return lib


class CsimLibrary:
    """A loaded csim library: ``run(x, offsets) -> status, y`` calls ``padless_encoder`` through ctypes."""

    STATUS = {1: "too many tokens in one call", 2: "bad number of sequences", 3: "offsets do not describe the batch",
              4: "a sequence is longer than the compiled maximum"}

    def __init__(self, path):
        self.path = Path(path)
        self.lib = ctypes.CDLL(str(self.path))
        fn = self.lib.padless_encoder
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self.fn = fn

    def call(self, x, y, offsets, weights, num_seqs: int, num_tokens: int) -> int:
        """Raw call on contiguous numpy arrays (int8, int8, int64, uint64); returns the kernel status."""
        return int(self.fn(x.ctypes.data, y.ctypes.data, offsets.ctypes.data, weights.ctypes.data,
                           int(num_seqs), int(num_tokens)))
