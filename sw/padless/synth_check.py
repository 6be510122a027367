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


# ---- the kernel's arrays, counted from the code -----------------------------------------------------------
#: Declaration macros whose partitioning the C-simulation's port checker knows (sim.h): memories counted per
#: bank and iteration (PADLESS_RAM*, the global weight memories and tables, the stream-of-blocks buffers) and
#: register arrays (PADLESS_REGS: completely partitioned, a port per element).
CHECKED_MACROS = ("PADLESS_RAM1D", "PADLESS_RAM1D_REG", "PADLESS_RAM2D", "PADLESS_GLOBAL_RAM2D", "PADLESS_GLOBAL_TABLE",
                  "PADLESS_REGS", "PADLESS_GLOBAL_REGS", "PADLESS_BLOCKS")
_MACRO_DECL = __import__("re").compile(r"^\s*(%s)\s*\(\s*(?:[^,()]|\([^()]*\))+,\s*([A-Za-z_]\w*)\s*[,)]"
                                       % "|".join(sorted(CHECKED_MACROS, key=len, reverse=True)))
# a statement declaring arrays: type then declarators `name[...]` (comma separated)
_ARRAY_DECL = __import__("re").compile(
    r"^\s*(?:(?:static|const|constexpr|volatile|alignas\s*\(\s*\d+\s*\))\s+)*"
    r"(?:typename\s+)?[A-Za-z_][\w:]*(?:\s*<[^;{}]*>)?(?:::\w+)*\s+"
    r"([A-Za-z_]\w*\s*(?:\[[^\]]*\])+(?:\s*,\s*[A-Za-z_]\w*\s*(?:\[[^\]]*\])+)*)\s*(?:=.*)?$", __import__("re").S)


def _synthesis_view(text: str) -> str:
    """``text`` without comments and without the lines a ``__SYNTHESIS__`` compile drops: the branches of
    ``#if``/``#ifdef``/``#ifndef`` whose condition is decided by ``__SYNTHESIS__`` (with PADLESS_CSIM_FAST and
    PADLESS_EXACT_WIDTHS 0, as mvu.h / types.h set them there); other conditions (include guards, config
    macros) keep their first branch. Preprocessor lines themselves are dropped."""
    import re
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out, stack = [], []  # stack of (active, decided, seen_true)

    def decide(cond: str):
        c = cond.strip()
        if "__SYNTHESIS__" not in c and "PADLESS_CSIM_FAST" not in c:
            return None
        c = re.sub(r"defined\s*\(\s*__SYNTHESIS__\s*\)|defined\s+__SYNTHESIS__|__SYNTHESIS__", "1", c)
        c = re.sub(r"defined\s*\(\s*\w+\s*\)", "1", c)
        c = re.sub(r"\bPADLESS_CSIM_FAST\b|\bPADLESS_EXACT_WIDTHS\b", "0", c)
        c = c.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
        if re.search(r"[A-Za-z_]\w*", re.sub(r"\b(and|or|not)\b", "", c)):
            return None
        return bool(eval(c, {"__builtins__": {}}, {}))  # noqa: S307 (digits, and/or/not only)

    for line in text.splitlines():
        m = re.match(r"\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)", line)
        active = all(a for a, _, _ in stack)
        if m is None:
            if active and not re.match(r"\s*#", line):
                out.append(line)
            continue
        kw, arg = m.group(1), m.group(2)
        if kw in ("ifdef", "ifndef", "if"):
            cond = {"ifdef": f"defined({arg.strip()})", "ifndef": f"!defined({arg.strip()})"}.get(kw, arg)
            d = decide(cond) if "__SYNTHESIS__" in arg or kw == "if" else None
            stack.append((True if d is None else d, d is not None, d is None or d))
        elif kw == "elif" and stack:
            _, decided, seen = stack.pop()
            d = decide(arg)
            now = (not seen) and (d is None or d)
            stack.append((now, decided, seen or now))
        elif kw == "else" and stack:
            _, decided, seen = stack.pop()
            stack.append(((not seen) if decided else False, decided, True))
        elif kw == "endif" and stack:
            stack.pop()
    return "\n".join(out)


def _statements(code: str):
    """(statement text, inside a struct/class/union body) for every ``;``-terminated statement of ``code``."""
    import re
    scopes, buf = [], []
    head = ""
    for ch in code:
        if ch == "{":
            head = "".join(buf)
            scopes.append(bool(re.search(r"\b(struct|class|union|enum)\b[^;(){}=]*$", head)))
            buf = []
        elif ch == "}":
            if scopes:
                scopes.pop()
            buf = []
        elif ch == ";":
            yield "".join(buf), bool(scopes and scopes[-1])
            buf = []
        else:
            buf.append(ch)


def kernel_arrays(hls_dir) -> dict:
    """Every array the kernel declares, from its code as Vitis HLS reads it (:func:`_synthesis_view` of the
    generated ``padless_encoder.cpp`` and ``include/padless/*.h``): globals and locals, not struct members (a
    member is part of its struct's word) nor function parameters.

    Returns ``{"declared": ["file:name", ...], "checked": [...], "unchecked": [...]}``: ``checked`` those
    declared through a port-checked macro (:data:`CHECKED_MACROS`), ``unchecked`` plain C arrays. Raises
    ProjectError when the folder holds no generated kernel."""
    import re
    hls_dir = Path(hls_dir).resolve()
    if (hls_dir / "hls" / "padless_encoder.cpp").is_file():
        hls_dir = hls_dir / "hls"
    top = hls_dir / "padless_encoder.cpp"
    if not top.is_file() or top.is_symlink():
        raise ProjectError(f"{hls_dir} holds no generated kernel (padless_encoder.cpp): run `padless compile` first")
    files = [top] + sorted(p for p in (hls_dir / "include" / "padless").glob("*.h")
                           if p.name not in ("sim_rt.h", "csim_api.h") and not p.is_symlink())
    checked, plain = set(), set()
    for f in files:
        for stmt, member in _statements(_synthesis_view(f.read_text())):
            s = stmt.strip()
            if not s or re.match(r"(return|typedef|using|template|else|case|default|goto|delete|throw|do)\b", s):
                continue
            m = _MACRO_DECL.match(s)
            if m:
                checked.add(f"{f.name}:{m.group(2)}")
                continue
            if member or "(" in re.sub(r"alignas\s*\(\s*\d+\s*\)", "", re.sub(r"\[[^\]]*\]", "", s)):
                continue
            m = _ARRAY_DECL.match(s)
            if m:
                for name in re.findall(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\])+", m.group(1)):
                    plain.add(f"{f.name}:{name}")
    declared = sorted(checked | plain)
    return {"declared": declared, "checked": sorted(checked), "unchecked": sorted(plain - checked)}


# ---- the kernel's global memories against the resource estimate -------------------------------------------
#: A global weight memory or per-channel table of padless_encoder.cpp: (element type, name, banks, depth, impl).
_GLOBAL_DECL = __import__("re").compile(
    r"^\s*PADLESS_GLOBAL_(?:RAM2D|TABLE)\s*\(\s*([^,]+?)\s*,\s*(\w+)\s*,"
    r"\s*([^,]+?)\s*,\s*([^,]+?)\s*,\s*(\w+)\s*\)\s*;",
    __import__("re").M)


def global_memories(hls_dir) -> dict:
    """The global memories the kernel declares (``PADLESS_GLOBAL_RAM2D`` / ``PADLESS_GLOBAL_TABLE`` in the
    generated ``padless_encoder.cpp``: ``T name[banks][depth]``, dim 1 completely partitioned, one memory a
    bank): ``{name: {"type", "banks", "depth", "impl"}}`` with ``banks`` / ``depth`` the C++ expressions as
    written and ``impl`` the BIND_STORAGE implementation (``lutram``, ``bram``, ``uram``), resolved through
    config.h when the declaration names a macro (``PADLESS_TIMPL_<NAME>``, ``PADLESS_WEIGHT_IMPL_<MVU>``).
    Raises ProjectError when the folder holds no generated kernel."""
    import re
    hls_dir = _hls_folder(hls_dir)
    defines = dict(re.findall(r"^\s*#\s*define\s+(\w+)\s+(\w+)\s*$", (hls_dir / "config.h").read_text(), re.M))
    out = {}
    code = _synthesis_view((hls_dir / "padless_encoder.cpp").read_text())
    for t, name, banks, depth, impl in _GLOBAL_DECL.findall(code):
        out[name] = {"type": t, "banks": banks, "depth": depth, "impl": defines.get(impl, impl)}
    return out


def check_memories(hls_dir, memories, compiler: str = "g++", timeout: float = 600.0) -> dict:
    """Compare the resource estimate's memories with the arrays the kernel declares, the shapes evaluated by
    the compiler on the synthesis branch (the code Vitis reads; ``-fsyntax-only``, one ``static_assert`` a
    memory: ``sizeof`` of the array over its bank and over its element).

    Args:
        hls_dir: a generated project's ``hls`` folder, or the project folder.
        memories: the estimate's memories (``resources()["detail"]["memories"]``, manifest
            ``resources.detail.memories``): ``{"name", "copies", "depth", "impl"}`` each.
        compiler: the C++ compiler.

    Returns:
        ``{"ok", "checked": [names compared], "shape_mismatch": [names whose copies x depth differ from the
        kernel's banks x depth], "impl_mismatch": [(name, estimate, kernel)], "unestimated": [kernel globals
        the estimate does not list], "errors": [compiler lines]}``; ``ok`` when nothing mismatches (an
        unestimated global is reported, not failed: a dense kernel's 1-deep index arrays).

    Raises:
        ProjectError: no generated kernel. ToolMissingError: the compiler or ap_types missing.
    """
    import re
    hls_dir = _hls_folder(hls_dir)
    kernel = global_memories(hls_dir)
    est = {m["name"]: m for m in memories if m["name"] in kernel}
    asserts = []
    for name, m in sorted(est.items()):
        asserts.append(f"static_assert(sizeof({name}) / sizeof({name}[0]) == {int(m['copies'])}LL && "
                       f"sizeof({name}[0]) / sizeof({name}[0][0]) == {int(m['depth'])}LL, "
                       f"\"padless-shape-mismatch:{name}\");")
    if shutil.which(compiler) is None:
        raise ToolMissingError(f"{compiler} is not on PATH: the memory check compiles with it (make install)")
    with tempfile.TemporaryDirectory(prefix="padless-mem-") as tmp:
        entry = Path(tmp) / "mem_entry.cpp"
        # the globals this configuration declares: a declaration under a configuration switch that is off
        # (#if PADLESS_TOKENS, ...) is not in the preprocessed synthesis branch
        entry.write_text(ENTRY)
        pre = [a for a in command(compiler, hls_dir, entry) if a != "-fsyntax-only"][:1] + ["-E", "-P"] + \
            [a for a in command(compiler, hls_dir, entry) if a != "-fsyntax-only"][1:]
        try:
            text = subprocess.run(pre, capture_output=True, text=True, timeout=timeout, cwd=tmp).stdout
        except subprocess.TimeoutExpired:
            text = ""
        if text:
            kernel = {n: v for n, v in kernel.items() if re.search(rf"\b{re.escape(n)}\b", text)}
            est = {n: m for n, m in est.items() if n in kernel}
            asserts = [a for a in asserts if re.search(r"padless-shape-mismatch:(\w+)", a)[1] in est]
        entry.write_text(ENTRY + "\n".join(asserts) + "\n")
        try:
            p = subprocess.run(command(compiler, hls_dir, entry), capture_output=True, text=True, timeout=timeout,
                               cwd=tmp)
            rc, err = p.returncode, p.stderr
        except subprocess.TimeoutExpired:
            rc, err = -1, f"{compiler} ran past {timeout:.0f} s"
    bad = sorted(set(re.findall(r"padless-shape-mismatch:(\w+)", err)))
    errors = [ln.strip() for ln in err.splitlines() if "error" in ln and "padless-shape-mismatch" not in ln][:20]
    impl = [(n, m["impl"], kernel[n]["impl"]) for n, m in sorted(est.items()) if m["impl"] != kernel[n]["impl"]]
    return {"ok": rc == 0 and not bad and not impl, "checked": sorted(est), "shape_mismatch": bad,
            "impl_mismatch": impl, "unestimated": sorted(set(kernel) - set(est)), "errors": errors}


def _hls_folder(hls_dir) -> Path:
    hls_dir = Path(hls_dir).resolve()
    if (hls_dir / "hls" / "padless_encoder.cpp").is_file():
        hls_dir = hls_dir / "hls"
    top = hls_dir / "padless_encoder.cpp"
    if not top.is_file() or top.is_symlink() or not (hls_dir / "config.h").is_file():
        raise ProjectError(f"{hls_dir} holds no generated kernel (padless_encoder.cpp, config.h): run "
                           "`padless compile` first")
    return hls_dir
