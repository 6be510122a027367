"""The generated HLS project: files, weights.bin layout, TCL (parsed by tclsh), Makefile targets."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from padless.build import compile_project
from padless.codegen.weights import SECTIONS, dense_words, mvu_matrix, read_header
from padless.project import load_project

TCL_STUBS = r"""
set ::calls {}
foreach cmd {open_project set_top add_files open_solution set_part create_clock config_interface config_export
             csim_design csynth_design export_design} {
    proc $cmd {args} [format {lappend ::calls [concat %s $args]} $cmd]
}
rename exit __exit
proc exit {args} { foreach c $::calls { puts $c }; __exit 0 }
cd [lindex $argv 0]
source run_hls.tcl
"""


@pytest.fixture(scope="module", params=["u280", "kv260"])
def project(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "proj"
    compile_project("tiny", board=request.param, out=out)
    return load_project(out)


def test_files_and_manifest(project):
    for f in ("weights.bin", "Makefile", "hls/padless_encoder.cpp", "hls/config.h", "hls/tb.cpp", "hls/run_hls.tcl",
              "hls/include/padless/attention.h", "hls/include/padless/mvu.h", "hls/include/padless/sim.h",
              "hls/tv/x_in.bin"):
        assert (project.path / f).is_file(), f
    hls = project.manifest["hls"]
    assert hls["top"] == "padless_encoder" and hls["max_seq"] == project.max_length
    cfg = (project.path / "hls" / "config.h").read_text()
    assert f"#define PADLESS_HIDDEN {project.model['hidden_size']}" in cfg
    assert f"#define PADLESS_MAX_SEQ {project.max_length}" in cfg
    # one call's rows (off-chip activation buffer) are the plan's wave, never below one maximal sequence
    wave = project.manifest["schedule"]["allocation"]["wave_tokens"]
    assert hls["max_tokens"] == max(wave, project.max_length)
    assert f"#define PADLESS_MAX_TOKENS {hls['max_tokens']}" in cfg
    # the static resource estimate, with the board's limits
    res = project.manifest["resources"]
    assert res["fits"] and all(res[k]["used"] <= res[k]["limit"] for k in ("dsp", "bram_36k", "uram", "lut"))


def test_kernel_buffer_follows_the_plan(project, tmp_path):
    """A plan with a small wave (a small board) shrinks the kernel's activation buffer and the runtime's packs."""
    from padless.codegen.hls import generate
    from padless.project import update_manifest
    from padless.runtime.accelerator import Accelerator
    d = tmp_path / "small"
    shutil.copytree(project.path, d)
    sched = project.manifest["schedule"]
    update_manifest(d, {"schedule": {**sched, "allocation": {**sched["allocation"], "wave_tokens": 300}}})
    p = load_project(d)
    generate(p, p.board)
    p = load_project(d)
    want = max(300, p.max_length)
    assert p.manifest["hls"]["max_tokens"] == want
    assert f"#define PADLESS_MAX_TOKENS {want}" in (d / "hls" / "config.h").read_text()
    assert Accelerator(d, backend="golden").max_tokens == want


def test_weights_bin_layout(project):
    hdr = read_header(project.file("weights"))
    qe = project.quantized
    assert hdr["num_layers"] == qe.num_layers and not hdr["sparse"]
    raw = project.file("weights").read_bytes()
    for li, layer in enumerate(qe.layers):
        off = hdr["offsets"][li]
        assert np.all(off % 64 == 0)
        pe, simd = hdr["folding"]["up"]
        words = raw[off[SECTIONS.index("up.w")]: off[SECTIONS.index("up.w")] + layer.up.w.size]
        assert words == dense_words(mvu_matrix(layer, "up")[0], pe, simd)
        # back to the matrix: word (nf, sf, p) holds W[nf * PE + p, sf * SIMD : (sf + 1) * SIMD]
        out, inp = layer.up.w.shape
        w = np.frombuffer(words, np.int8).reshape(out // pe, inp // simd, pe, simd).transpose(0, 2, 1, 3).reshape(out, inp)
        np.testing.assert_array_equal(w, layer.up.w)
        mb = np.frombuffer(raw, "<i8", 2 * len(layer.ln_ffn_b), off[SECTIONS.index("ln_ffn")]).reshape(-1, 2)
        np.testing.assert_array_equal(mb[:, 0], layer.ln_ffn_m)
        np.testing.assert_array_equal(mb[:, 1], layer.ln_ffn_b)
        rq = np.frombuffer(raw, "<i4", 4 * 3 * len(layer.q.bias), off[SECTIONS.index("qkv.rq")]).reshape(-1, 4)
        np.testing.assert_array_equal(rq[:, 0], np.concatenate([layer.q.bias, layer.k.bias, layer.v.bias]))


def test_tcl_parses_with_expected_commands(project, tmp_path):
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        pytest.skip("tclsh not installed (apt-get install tcl)")
    script = tmp_path / "stub.tcl"
    script.write_text(TCL_STUBS)
    res = subprocess.run([tclsh, str(script), str(project.path / "hls")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    calls = res.stdout.splitlines()
    names = [c.split()[0] for c in calls]
    for cmd in ("open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock", "csim_design",
                "csynth_design", "export_design"):
        assert cmd in names, cmd
    from padless.boards import load_board
    board = load_board(project.board)
    assert f"set_part {board.part}" in calls
    assert "set_top padless_encoder" in calls
    fmt = "xo" if board.flow == "vitis" else "ip_catalog"
    assert any(c.startswith(f"export_design -format {fmt}") for c in calls)


def test_make_csim_passes(project):
    if project.board != "u280":
        pytest.skip("one board is enough")
    res = subprocess.run(["make", "-C", str(project.path), "csim"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS" in res.stdout


def test_make_hls_without_vitis_names_the_tool(project):
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    if shutil.which("vitis_hls", path=env["PATH"]):
        pytest.skip("vitis_hls is installed")
    res = subprocess.run(["make", "-C", str(project.path), "hls"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0
    assert "vitis_hls not found" in res.stderr
