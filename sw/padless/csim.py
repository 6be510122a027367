"""C-simulation: build the project's HLS C++ with g++ into a shared library and call it through ctypes.

The library is the very kernel of ``hls/`` (padless_encoder.cpp + config.h + the padless headers) built
with the Xilinx ap_types headers that ship in the hls4ml wheel (located at run time; Vitis HLS's own
headers when ``XILINX_HLS`` is set). Builds are cached by a content hash of every source, the compiler's
version and the flags (which include ``-march=native``, so the CPU's model and flags are hashed too).

Two forms of one kernel (docs/hls.md, "C-simulation"):

* ``fast`` (default): the processes, loops, channels and cycle accounting of the synthesizable code, with
  each row's dot products computed as whole-row integer products (VNNI through the compiler);
* ``synth``: exactly the code Vitis HLS synthesizes (PE x SIMD unrolled folds, the packed two-MAC DSP
  products, the top-k network), built with width-exact ``ap_int`` arithmetic (-DPADLESS_EXACT_WIDTHS=1),
  so an operator narrower than its values shows up as a bit difference.

A run is configured with :meth:`CsimLibrary.configure`: threaded (one thread per dataflow process over
channels of the declared depths) or sequential (Vitis csim_design order), timed (per-process clocks:
the cycle-annotated csim), port-checked.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .errors import ProjectError, ToolMissingError

DEFAULT_FLAGS = ("-O3", "-march=native", "-std=c++17", "-fPIC", "-shared", "-pthread", "-fno-strict-aliasing")
#: Extra compiler flags of each C-simulation form.
FORMS = {"fast": ("-DPADLESS_CSIM_FAST=1",), "synth": ("-DPADLESS_CSIM_FAST=0", "-DPADLESS_EXACT_WIDTHS=1")}


def resolve_form(form: str | None = None) -> str:
    """The C-simulation form to build: ``form``, else ``$PADLESS_CSIM_FORM``, else ``"fast"`` (``"synth"``:
    the code Vitis HLS synthesizes). Raises InputError for a name not in :data:`FORMS`."""
    form = form or os.environ.get("PADLESS_CSIM_FORM") or "fast"
    if form not in FORMS:
        from .errors import InputError
        raise InputError(f"unknown csim form {form!r} (argument or PADLESS_CSIM_FORM): use one of {', '.join(FORMS)}")
    return form


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
    if len(cxx.split()) > 1 and shutil.which(cxx) is None:
        raise ToolMissingError(f"CXX={cxx!r} holds flags: CXX names the compiler only (e.g. CXX={cxx.split()[0]}); "
                               "give compiler flags with PADLESS_CSIM_FLAGS (default: the flags in docs/hls.md)")
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
    lib, cxx, ap, flags = _plan(hls_dir, extra_flags, cache)
    try:
        return _cached_build(lib, cxx, ap, flags, Path(hls_dir))
    except OSError as exc:  # an unreadable / unwritable cache entry, or a folder where a file should be
        where = f"{exc.filename}: " if exc.filename else ""
        raise ProjectError(f"the csim cache {lib.parent} cannot be read or written ({where}{exc.strerror or exc}); "
                           f"delete that folder or fix its permissions, or set PADLESS_CACHE to a writable "
                           f"folder") from None


def _cached_build(lib: Path, cxx: str, ap: Path, flags: list, hls_dir: Path) -> Path:
    """The library ``lib`` in its cache folder: reused when its digest matches, else built there (compiler in
    its own process group, temporary name, digest, atomic rename). OSError for a cache that cannot be read
    or written; ProjectError for a link or folder at the library's place or a failed build."""
    top = hls_dir / "padless_encoder.cpp"
    out_dir = lib.parent
    digest = out_dir / "libpadless_csim.sha256"
    for p in (lib, digest):
        if p.is_symlink() or (p.exists() and not p.is_file()):
            raise ProjectError(f"the csim cache holds {'a link' if p.is_symlink() else 'a folder'} at {p}, where "
                               f"padless keeps a built library: delete {out_dir} (padless rebuilds it)")
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
    if not os.access(out_dir, os.W_OK | os.X_OK):  # g++ would fail to write its output with a long message
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(out_dir))
    from . import fsutil
    tmp = out_dir / f".libpadless_csim{fsutil.TMP_MARK}{os.getpid()}.{threading.get_ident()}.so"
    cmd = [cxx, *flags, f"-I{hls_dir}", f"-I{hls_dir / 'include'}", f"-I{ap}", str(top), "-o", str(tmp)]
    t = time.perf_counter()
    try:
        res = _run_group(cmd)
        if res.returncode != 0:
            raise ProjectError(f"g++ could not build the csim library ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
        data = tmp.read_bytes()
        # the digest first, then the library: a reader finds a library only with its digest beside it
        fsutil.write_text(digest, hashlib.sha256(data).hexdigest() + "\n", out_dir)
        fsutil.write_bytes(lib, data, out_dir, mode=0o755)
        fsutil.write_text(out_dir / "build.txt", f"{' '.join(cmd)}\nseconds {time.perf_counter() - t:.1f}\n",
                          out_dir)
    finally:
        tmp.unlink(missing_ok=True)
    return lib


def library_path(hls_dir, extra_flags: tuple = (), cache: Path | None = None) -> Path:
    """Where :func:`build_library` keeps the library of ``hls_dir`` (its cache key), built or not."""
    return _plan(hls_dir, extra_flags, cache)[0]


def _plan(hls_dir, extra_flags: tuple, cache) -> tuple[Path, str, Path, list]:
    """(library path, compiler, ap_types folder, flags) of a build; the errors of :func:`build_library`."""
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
    return Path(cache or cache_dir()) / key / "libpadless_csim.so", cxx, ap, flags


def _run_group(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run the compiler in its own process group; on any exception here (Ctrl-C, SIGTERM raised as
    KeyboardInterrupt by the CLI) the whole group (g++ and its cc1plus / as / ld) is killed and reaped, so
    no compiler outlives padless."""
    import signal
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


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
_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def library_lock(handle: int) -> threading.RLock:
    """The (re-entrant) lock of the loaded library with dlopen ``handle`` (created on first use)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(int(handle), threading.RLock())


class CsimLibrary:
    """A loaded csim library (one kernel build): the kernel call and the C-simulation instruments.

    Thread safety: calls into one loaded library are serialised by :func:`library_lock` (the kernel's
    state -- resident weights, the simulator's statistics -- is file-scope statics shared by every user
    of the library, as on the device), so any number of threads and objects get the same bits as one
    thread; calls into different libraries (different projects) run in parallel. The lock costs about a
    microsecond per call (docs/reliability.md, bench/concurrency_bench.py). Hold :attr:`lock` (re-entrant)
    around a configure + call + report sequence.

    Raises ProjectError when the file cannot be loaded (a corrupt build: delete the cache folder).
    """

    STATUS = {1: "too many tokens in one call", 2: "bad number of sequences",
              3: "a descriptor lies outside the call's rows", 4: "a sequence is longer than the compiled maximum",
              5: "the engine ran before its weights were loaded (init call)", 6: "the dataflow region deadlocked",
              7: "unknown mode", 8: "a C-simulation check failed inside a process"}
    MODE_RUN, MODE_INIT = 0, 1
    STATUS_DEADLOCK = 6

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.lib = ctypes.CDLL(str(self.path))
            fn = self.lib.padless_encoder
        except (OSError, AttributeError) as exc:
            raise ProjectError(f"the csim library {self.path} cannot be loaded ({exc}); delete {self.path.parent} "
                               "so that it is rebuilt") from exc
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 3
        self.fn = fn
        cfg = self.lib.padless_sim_configure
        cfg.restype = ctypes.c_int
        cfg.argtypes = [ctypes.c_int] * 7
        self._configure = cfg
        mem = getattr(self.lib, "padless_sim_memory", None)   # libraries built before the m_axi model lack it
        if mem is not None:
            mem.restype = ctypes.c_int
            mem.argtypes = [ctypes.c_int]
        self._memory = mem
        rep = self.lib.padless_sim_report
        rep.restype = ctypes.c_int64
        rep.argtypes = [ctypes.c_char_p, ctypes.c_int64]
        self._report = rep
        jobs = self.lib.padless_sim_jobs
        jobs.restype = ctypes.c_int64
        jobs.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self._jobs = jobs
        self.lock = library_lock(self.lib._handle)

    def configure(self, threaded: bool = True, timed: bool = False, ports: bool = False, exact_depth: bool = False,
                  record_jobs: bool = False, min_depth: int = 256, compute: bool = True,
                  ideal_memory: bool = False) -> None:
        """Set how the next calls simulate (see the module docstring): ``threaded`` (processes as threads,
        or as coroutines when ``timed`` or ``exact_depth``; else sequential), ``timed`` (per-process
        clocks), ``ports`` (port checker), ``exact_depth`` (FIFOs of their declared depths: the deadlock
        check), ``record_jobs`` (per-process intervals), ``compute=False`` (timing only: the fast form
        skips its arithmetic), ``ideal_memory`` (timed runs: every m_axi beat there when asked, the upper
        bound; else the board's memory model of config.h). Hold :attr:`lock` around configure + call + report."""
        self._configure(int(threaded), int(timed), int(ports), int(exact_depth), int(record_jobs), int(min_depth),
                        int(compute))
        if self._memory is not None:
            self._memory(int(bool(ideal_memory)))

    def call(self, act, desc, weights, num_seqs: int, num_tokens: int, mode: int = 0) -> int:
        """Raw kernel call on contiguous numpy arrays: ``act`` (2 * num_tokens, hidden) int8 (the three
        activation ports), ``desc`` (num_seqs, 2) int32, ``weights`` the weights.bin image (uint8/uint64).
        Returns the kernel status. Holds the library's lock for the duration of the kernel call."""
        a = act.ctypes.data
        with self.lock:
            return int(self.fn(a, a, a, desc.ctypes.data if desc is not None else None, weights.ctypes.data,
                               int(num_seqs), int(num_tokens), int(mode)))

    def report(self) -> dict:
        """The last call's C-simulation report: ``{"cycles", "deadlock", "port_violations", "violations",
        "procs": [{"name", "busy", "stall_in", "stall_out", "first", "last", "runs"}]}``."""
        import json
        n = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(n)
            need = int(self._report(buf, n))
            if need <= n:
                return json.loads(buf.value.decode())
            n = need

    def jobs(self) -> "np.ndarray":
        """``(n, 5)`` int64 rows (process index in report()["procs"], seq, layer, start, end) of the last
        timed call with ``record_jobs``."""
        import numpy as np
        n = int(self._jobs(None, 0))
        out = np.zeros((max(n, 0), 5), dtype=np.int64)
        if n:
            self._jobs(out.ctypes.data, n)
        return out

