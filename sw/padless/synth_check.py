"""Compile the kernel's ``__SYNTHESIS__`` branch, as Vitis HLS's clang front end would first read it.

No Vitis here, so the nearest check of "Vitis accepts this C++" is a C++14 front-end pass (Vitis HLS's
default language standard, UG1399 "Vitis HLS Coding Styles") of exactly the code ``csynth_design`` reads:
the generated ``hls/padless_encoder.cpp`` with ``__SYNTHESIS__`` defined, so every
``#ifdef __SYNTHESIS__`` branch of the padless HLS library is the one compiled, against

* Xilinx's open-source ap_types (``ap_int.h``; :func:`padless.csim.ap_types_dir`), included *before*
  ``__SYNTHESIS__`` is defined (those headers refuse it: they are the C-simulation models), and
* padless's declaration headers ``hw/hls/decl/hls_stream.h`` / ``hls_streamofblocks.h``: ``hls::stream``,
  ``hls::stream_of_blocks``, ``hls::read_lock`` / ``hls::write_lock`` with only the members UG1399
  documents ("HLS Stream Library", "HLS Stream of Blocks Library"), declared and never defined. A kernel
  that calls an undocumented member, or a C-simulation-only one, fails here.

``g++ -std=c++14 -fsyntax-only`` and ``clang++ -std=c++14 -fsyntax-only`` both run (clang is what Vitis HLS
parses with; g++ rejects other things). What only a csynth run can confirm (achieved II, binding, timing)
is listed in docs/hls.md, "What Vitis does with this code".

Used by ``padless check DIR --synth`` and tests/test_synth_compile.py.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import ProjectError, ToolMissingError

REPO = Path(__file__).resolve().parents[2]
#: padless's declarations of the documented hls::stream / stream_of_blocks API (never copied into projects:
#: a Vitis build uses Vitis's own headers).
DECL_DIR = REPO / "hw" / "hls" / "decl"
#: The compilers every variant must pass.
COMPILERS = ("g++", "clang++")
#: C++ standard: Vitis HLS's default (UG1399, "-std=c++14 is the default since 2020.1").
STD = "c++14"
#: The translation unit: ap_int.h first (its C-simulation model), then __SYNTHESIS__, then the kernel.
ENTRY = '#include "ap_int.h"\n#define __SYNTHESIS__ 1\n#include "padless_encoder.cpp"\n'


def command(compiler: str, hls_dir: Path, entry: Path) -> list[str]:
    """The compile command of one compiler on the project's ``hls`` folder (``entry``: the file holding
    :data:`ENTRY`)."""
    from .csim import ap_types_dir
    return [compiler, f"-std={STD}", "-fsyntax-only", "-Wno-unknown-pragmas", f"-I{DECL_DIR}", f"-I{hls_dir}",
            f"-I{hls_dir / 'include'}", f"-I{ap_types_dir()}", str(entry)]


def compile_synthesis(hls_dir, compilers=COMPILERS, timeout: float = 600.0) -> dict:
    """Compile ``hls_dir/padless_encoder.cpp`` with ``__SYNTHESIS__`` defined by each of ``compilers``.

    Args:
        hls_dir: a generated project's ``hls`` folder (``padless compile``), or the project folder itself.
        compilers: compiler executables (default g++ and clang++).
        timeout: seconds per compiler.

    Returns:
        ``{"ok": bool, "std": "c++14", "compilers": {name: {"ok", "seconds", "errors": [first error lines],
        "command": [...]}}}``; ``ok`` is True when every compiler accepted the code.

    Raises:
        ProjectError: no generated kernel in ``hls_dir``. ToolMissingError: a compiler or ap_types missing.
    """
    hls_dir = Path(hls_dir).resolve()
    if (hls_dir / "hls" / "padless_encoder.cpp").is_file():
        hls_dir = hls_dir / "hls"
    if not (hls_dir / "padless_encoder.cpp").is_file() or not (hls_dir / "config.h").is_file():
        raise ProjectError(f"{hls_dir} holds no generated kernel (padless_encoder.cpp, config.h): run "
                           "`padless compile` first")
    out: dict = {"std": STD, "compilers": {}}
    with tempfile.TemporaryDirectory(prefix="padless-synth-") as tmp:
        entry = Path(tmp) / "synth_entry.cpp"
        entry.write_text(ENTRY)
        for cc in compilers:
            if shutil.which(cc) is None:
                raise ToolMissingError(f"{cc} is not on PATH: the synthesis-branch check compiles with it "
                                       "(make install installs g++ and clang)")
            cmd = command(cc, hls_dir, entry)
            t0 = time.perf_counter()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
                rc, err = p.returncode, p.stderr
            except subprocess.TimeoutExpired:
                rc, err = -1, f"{cc} ran past {timeout:.0f} s"
            errors = [ln.strip() for ln in err.splitlines() if "error" in ln][:20]
            if rc != 0 and not errors:
                errors = err.strip().splitlines()[-5:]
            out["compilers"][cc] = {"ok": rc == 0, "seconds": round(time.perf_counter() - t0, 2),
                                    "errors": errors, "command": cmd}
    out["ok"] = all(c["ok"] for c in out["compilers"].values())
    return out
