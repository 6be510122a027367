"""The generated bitstream flow: v++ connectivity (Alveo), Vivado block design (Zynq), bitstream.mk."""
from __future__ import annotations

import os
import shutil
import sys
import subprocess

import pytest

from padless.boards import load_board
from padless.codegen.bitstream import generate, m_axi_bundles
from padless.errors import ProjectError
from padless.project import load_project

TCLSH = shutil.which("tclsh")
NO_VENDOR_PATH = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                 if not any(os.path.exists(os.path.join(p, t)) for t in ("vitis_hls", "vivado", "v++")))


@pytest.fixture(scope="module")
def alveo(tiny_project, tmp_path_factory):
    d = tmp_path_factory.mktemp("bs") / "u280"
    shutil.copytree(tiny_project, d)
    return load_project(d)


@pytest.fixture(scope="module")
def zynq(tmp_path_factory):
    from padless.build import compile_project
    out = tmp_path_factory.mktemp("bs") / "zcu104"
    compile_project("tiny", board="zcu104", out=out, calib_count=16)
    return load_project(out)


def _make_n(root):
    r = subprocess.run(["make", "-n", "-C", str(root), "-f", "bitstream.mk", "bitstream"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_alveo_connectivity_and_commands(alveo):
    info = generate(alveo, "u280")
    board = load_board("u280")
    cfg = (alveo.path / "bitstream" / "connectivity.cfg").read_text()
    bundles = m_axi_bundles((alveo.path / "hls" / "padless_encoder.cpp").read_text())
    assert bundles == ["gmem0", "gmem1", "gmem2", "gmem3", "gmem4"]  # act_rd, act_res, act_wr, desc, weights
    assert "nk=padless_encoder:1:padless_encoder_1" in cfg
    # the three activation bundles receive one host buffer: one pseudo channel; desc and weights the next
    for b, bank in zip(bundles, ["HBM[0]", "HBM[0]", "HBM[0]", "HBM[1]", "HBM[2]"]):
        assert f"sp=padless_encoder_1.m_axi_{b}:{bank}" in cfg
    assert f"freqHz={int(board.clock_MHz * 1e6)}:padless_encoder_1" in cfg
    out = _make_n(alveo.path)
    assert f"v++ -l -t hw --platform {board.platform} --config bitstream/connectivity.cfg" in out
    assert info["export"] in out and "vitis_hls -f run_hls.tcl" in out
    assert "cp build/padless_encoder.xclbin deploy/padless_encoder.xclbin" in out


def test_ddr_board_maps_to_ddr_banks(alveo):
    from padless.codegen.bitstream import memory_banks
    banks = memory_banks(load_board("u200"), ["gmem0", "gmem1", "gmem2", "gmem3", "gmem4"])
    assert [b for _, b in banks] == ["DDR[0]", "DDR[1]", "DDR[2]", "DDR[3]", "DDR[0]"]
    ports = {"act_rd": "gmem0", "act_res": "gmem1", "act_wr": "gmem2", "desc": "gmem3", "weights": "gmem4"}
    banks = memory_banks(load_board("u200"), ["gmem0", "gmem1", "gmem2", "gmem3", "gmem4"], ports)
    assert [b for _, b in banks] == ["DDR[0]", "DDR[0]", "DDR[0]", "DDR[1]", "DDR[2]"]


@pytest.mark.parametrize("board", ["u280", "u200", "u55c"])
def test_ports_given_one_buffer_sit_on_one_memory(alveo, board, tmp_path):
    """XRT binds a buffer to the ports connected to its memory: parse the generated connectivity.cfg and
    check every port the host gives one buffer (the pynq backend's HOST_BUFFERS) sits on one memory, and
    buffers that are different are on the memories the host allocates them in."""
    from padless.codegen.bitstream import HOST_BUFFERS, buffer_memories, m_axi_ports, read_connectivity
    d = tmp_path / board
    shutil.copytree(alveo.path, d)
    proj = load_project(d)
    generate(proj, board)
    sp = read_connectivity(d / "bitstream" / "connectivity.cfg")
    ports = m_axi_ports((d / "hls" / "padless_encoder.cpp").read_text())
    assert set(sp) == set(ports.values())
    for buf, names in HOST_BUFFERS.items():
        mems = {sp[ports[p]] for p in names}
        assert len(mems) == 1, f"{buf}: ports {names} on {mems}"
    assert buffer_memories(proj) == {buf: sp[ports[names[0]]] for buf, names in HOST_BUFFERS.items()}


@pytest.mark.skipif(TCLSH is None, reason="tclsh not installed (make install adds it)")
def test_zynq_block_design_tcl(zynq):
    generate(zynq, "zcu104")
    board = load_board("zcu104")
    tcl = zynq.path / "bitstream" / "zynq_bd.tcl"
    # Run the script in tclsh with every Vivado command a stub that records its call.
    stubs = """
set ::calls {}
foreach p {create_project set_property get_bd_cells create_bd_design create_bd_cell apply_bd_automation
           get_bd_intf_pins assign_bd_address validate_bd_design save_bd_design make_wrapper get_files
           add_files current_project current_fileset update_ip_catalog launch_runs wait_on_run get_runs} {
    proc $p args "lappend ::calls \\[list $p {*}\\$args\\]; return {}"
}
proc get_property {args} { return "100%" }
rename exec _exec
proc exec args { lappend ::calls [list exec {*}$args] }
rename file _file
proc file {cmd args} { if {$cmd in {mkdir copy}} { lappend ::calls [list file $cmd {*}$args] } else { _file $cmd {*}$args } }
source [lindex $argv 0]
foreach c $::calls { puts $c }
"""
    r = subprocess.run([TCLSH, "/dev/stdin", str(tcl)], input=stubs, capture_output=True, text=True, cwd=zynq.path)
    assert r.returncode == 0, r.stderr
    calls = r.stdout
    assert f"create_project -force padless_encoder_bd build/vivado -part {board.part}" in calls
    assert board.platform in calls
    assert "zynq_ultra_ps_e" in calls and "xilinx.com:hls:padless_encoder:1.0" in calls
    assert "s_axi_control" in calls and "S_AXI_HP0_FPD" in calls and "assign_bd_address" in calls
    # five m_axi bundles on four HP ports, the weights (gmem4) alone on HP3, each port enabled at 128 bits
    for bundle, hp in (("gmem0", 0), ("gmem1", 1), ("gmem2", 2), ("gmem3", 0), ("gmem4", 3)):
        assert f"Master /padless_encoder_1/m_axi_{bundle} Slave /ps/S_AXI_HP{hp}_FPD " in calls, bundle
    assert "CONFIG.PSU__USE__S_AXI_GP5 1" in calls and "CONFIG.PSU__SAXIGP5__DATA_WIDTH 128" in calls
    assert "launch_runs impl_1 -to_step write_bitstream" in calls
    assert "deploy/padless_encoder.bit" in calls and "deploy/padless_encoder.hwh" in calls
    out = _make_n(zynq.path)
    assert "vivado -mode batch -nojournal -log build/vivado.log -source bitstream/zynq_bd.tcl" in out


def test_missing_tool_is_named_and_fails(alveo, zynq):
    generate(alveo, "u280")
    generate(zynq, "zcu104")
    env = {**os.environ, "PATH": NO_VENDOR_PATH}
    for proj, tool in ((alveo, "vitis_hls"), (zynq, "vitis_hls")):
        r = subprocess.run(["make", "-C", str(proj.path), "-f", "bitstream.mk", "bitstream"], capture_output=True, text=True, env=env)
        assert r.returncode != 0 and f"{tool} not found on PATH" in r.stderr
    # past HLS (an exported .xo present), the link step names v++
    xo = alveo.path / "hls" / generate(alveo, "u280")["export"]
    xo.write_bytes(b"")
    try:
        r = subprocess.run(["make", "-C", str(alveo.path), "-f", "bitstream.mk", "bitstream"], capture_output=True, text=True, env=env)
        assert r.returncode != 0 and "v++ not found on PATH" in r.stderr
    finally:
        xo.unlink()
    r = subprocess.run([sys.executable, "-m", "padless.cli", "bitstream", str(alveo.path)], capture_output=True, text=True, env=env)
    assert r.returncode == 3 and "vitis_hls not found" in r.stderr and "\nTraceback" not in r.stderr


def test_board_mismatch_is_refused(alveo):
    with pytest.raises(ProjectError, match="another board"):
        generate(alveo, "zcu104")
