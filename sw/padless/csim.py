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
import threading
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
    digest = out_dir / "libpadless_csim.sha256"
    if lib.is_file():
        if _intact(lib, digest):
            return lib
        # a cached library that does not match the digest written when it was built (truncated, edited,
        # half-copied, or from a padless that wrote no digest): never dlopen it, build it again
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or str(exc))
        raise ProjectError(f"the csim cache folder {out_dir} cannot be created ({why}); set PADLESS_CACHE to a "
                           "writable folder (or unset it to use ~/.cache/padless)") from exc
    tmp = out_dir / f"libpadless_csim.{os.getpid()}.{threading.get_ident()}.so"
    cmd = [cxx, *flags, f"-I{hls_dir}", f"-I{hls_dir / 'include'}", f"-I{ap}", str(top), "-o", str(tmp)]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ProjectError(f"g++ could not build the csim library ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
    tmp_digest = digest.with_name(tmp.name + ".sha256")
    tmp_digest.write_text(_sha256(tmp) + "\n")
    tmp.replace(lib)
    tmp_digest.replace(digest)
    (out_dir / "build.txt").write_text(f"{' '.join(cmd)}\nseconds {time.perf_counter() - t:.1f}\n")
    return lib


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _intact(lib: Path, digest: Path) -> bool:
    """True when the cached ``lib`` has the SHA-256 recorded in ``digest`` when it was built."""
    try:
        return digest.read_text().strip() == _sha256(lib)
    except OSError:
        return False


# One lock per loaded library. The kernel keeps its state in file-scope statics (HLS style), and ctypes
# releases the GIL during the call, so two calls into the same loaded object at once would share those
# buffers. dlopen returns the same handle for the same object (same path, or another path to the same
# file), so the handle is the key: every CsimLibrary of one loaded object shares its lock.
_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def library_lock(handle: int) -> threading.Lock:
    """The lock of the loaded library with dlopen ``handle`` (created on first use)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(int(handle), threading.Lock())


class CsimLibrary:
    """A loaded csim library: :meth:`call` runs ``padless_encoder`` through ctypes.

    Thread safety: calls into one loaded library are serialised by :func:`library_lock` (the kernel's
    state is file-scope statics shared by every user of the library), so any number of threads and
    objects get the same bits as one thread; calls into different libraries (different projects) run in
    parallel. The lock costs about a microsecond per call (docs/reliability.md, bench/concurrency_bench.py).

    Raises ProjectError when the file cannot be loaded (a corrupt build: delete the cache folder).
    """

    STATUS = {1: "too many tokens in one call", 2: "bad number of sequences", 3: "offsets do not describe the batch",
              4: "a sequence is longer than the compiled maximum"}

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.lib = ctypes.CDLL(str(self.path))
            fn = self.lib.padless_encoder
        except (OSError, AttributeError) as exc:
            raise ProjectError(f"the csim library {self.path} cannot be loaded ({exc}); delete {self.path.parent} "
                               "so that it is rebuilt") from exc
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self.fn = fn
        self.lock = library_lock(self.lib._handle)

    def call(self, x, y, offsets, weights, num_seqs: int, num_tokens: int) -> int:
        """Raw call on contiguous numpy arrays (int8, int8, int64, uint64); returns the kernel status.
        Holds the library's lock for the duration of the kernel call."""
        with self.lock:
            return int(self.fn(x.ctypes.data, y.ctypes.data, offsets.ctypes.data, weights.ctypes.data,
                               int(num_seqs), int(num_tokens)))
