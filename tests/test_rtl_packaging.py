"""The vendor packaging TCL (hw/scripts/package_ip.tcl, package_xo.tcl) under a real tclsh.

Vivado is not installable here, so the Vivado / Vitis commands (create_project, ipx::*, package_xo...)
are recorded by a Tcl ``unknown`` handler while the scripts' own Tcl (argument parsing, file checks,
control flow) runs for real. The test checks the calls each block needs, and that bad arguments fail
with a clear message. Also: padless.rtl.copy_rtl makes a self-contained copy that still packages.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from padless.rtl import BLOCKS, copy_rtl, rtl_dir, scripts_dir

TCLSH = shutil.which("tclsh")
pytestmark = pytest.mark.skipif(TCLSH is None, reason="tclsh missing: apt-get install tcl (make install does)")

DRIVER = r"""
set ::calls {}
proc unknown {args} {
    lappend ::calls $args
    return "obj[llength $::calls]"
}
set ::argv [lrange $::argv 1 end]
set script [lindex $::argv_script 0]
if {[catch {source $script} err]} {
    puts "TCL-ERROR: $err"
    exit 1
}
foreach c $::calls { puts "CALL: $c" }
"""


def run_tcl(tmp_path: Path, script: Path, *args: str) -> tuple[int, list[str], str]:
    drv = tmp_path / "driver.tcl"
    drv.write_text(f"set ::argv_script [list {{{script}}}]\n" + DRIVER)
    proc = subprocess.run([TCLSH, str(drv), "x", *args], capture_output=True, text=True, timeout=60)
    calls = [line[6:] for line in proc.stdout.splitlines() if line.startswith("CALL: ")]
    return proc.returncode, calls, proc.stdout + proc.stderr


def first(calls: list[str], prefix: str) -> str:
    hits = [c for c in calls if c.startswith(prefix)]
    assert hits, f"no call starting with {prefix!r} in {calls}"
    return hits[0]


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_package_ip_makes_the_ipx_calls(tmp_path, block):
    rc, calls, log = run_tcl(tmp_path, scripts_dir() / "package_ip.tcl", block, str(rtl_dir()), str(tmp_path / "out"))
    assert rc == 0, log
    assert first(calls, "create_project").startswith(f"create_project -force {block}_pkg")
    added = first(calls, "add_files")
    for f in BLOCKS[block]:
        assert str(rtl_dir() / f) in added
    assert f"set_property top {block}" in " ".join(calls)
    pkg = first(calls, "ipx::package_project")
    assert f"-root_dir {tmp_path / 'out' / 'ip' / block}" in pkg and "-import_files" in pkg
    assert "ipx::infer_bus_interfaces xilinx.com:interface:axis_rtl:1.0" in " ".join(calls)
    busifs = {"selection_engine": ["s_axis_query", "s_axis_key", "m_axis_idx"],
              "length_dispatcher": ["s_axi_control"]}[block]
    for b in busifs:
        assert any(c.startswith(f"ipx::associate_bus_interfaces -busif {b} -clock ap_clk") for c in calls)
    if block == "length_dispatcher":
        assert any("interrupt_rtl" in c for c in calls)
        assert any(c.startswith("ipx::add_memory_map s_axi_control") for c in calls)
    order = [c.split()[0] for c in calls]
    for a, b in [("ipx::package_project", "ipx::update_checksums"), ("ipx::update_checksums", "ipx::check_integrity"),
                 ("ipx::check_integrity", "ipx::save_core"), ("ipx::save_core", "close_project")]:
        assert order.index(a) < order.index(b), f"{a} must come before {b}"
    assert not any(c.startswith("package_xo") for c in calls)


@pytest.mark.parametrize("block,protocol", [("selection_engine", "ap_ctrl_none"),
                                            ("length_dispatcher", "user_managed")])
def test_package_xo_packages_ip_then_kernel(tmp_path, block, protocol):
    rc, calls, log = run_tcl(tmp_path, scripts_dir() / "package_xo.tcl", block, str(rtl_dir()), str(tmp_path / "o"),
                             "xcu55c-fsvh2892-2L-e")
    assert rc == 0, log
    assert "-part xcu55c-fsvh2892-2L-e" in first(calls, "create_project")
    xo = first(calls, "package_xo")
    assert f"-xo_path {tmp_path / 'o' / (block + '.xo')}" in xo
    assert f"-kernel_name {block}" in xo and f"-ctrl_protocol {protocol}" in xo
    assert f"-ip_directory {tmp_path / 'o' / 'ip' / block}" in xo
    assert [c.split()[0] for c in calls].index("ipx::save_core") < [c.split()[0] for c in calls].index("package_xo")


@pytest.mark.parametrize("args,message", [
    ((), "expected 3 or 4 arguments"),
    (("no_such_block", "RTL", "out"), "unknown block 'no_such_block'"),
    (("selection_engine", "/nonexistent/rtl", "out"), "missing RTL source"),
])
def test_bad_arguments_fail_clearly(tmp_path, args, message):
    args = tuple(str(rtl_dir()) if a == "RTL" else a for a in args)
    for script in ("package_ip.tcl", "package_xo.tcl"):
        rc, calls, log = run_tcl(tmp_path, scripts_dir() / script, *args)
        assert rc != 0 and message in log, log
        assert not any(c.startswith("ipx::package_project") for c in calls)


def test_copy_rtl_is_self_contained(tmp_path):
    dest = copy_rtl(tmp_path / "proj")
    for files in BLOCKS.values():
        for f in files:
            assert (dest / "rtl" / f).read_text() == (rtl_dir() / f).read_text()
    rc, calls, log = run_tcl(tmp_path, dest / "scripts" / "package_xo.tcl", "length_dispatcher",
                             str(dest / "rtl"), str(dest / "kernels"))
    assert rc == 0, log
    assert str(dest / "rtl" / "length_dispatcher.sv") in first(calls, "add_files")
