"""Hostile input beyond the command line (issue 19): names that break out of generated files, pickles,
threads, user folders, the simulated device, recipe names, and the API's own bad inputs.

Real parts only: g++ builds of the generated C++, ``make -n`` and ``make clean`` on the generated
Makefile, ``tclsh`` on the generated TCL (vendor commands stubbed, ``exec`` real unless noted), the real
tiny model, real sentences.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from padless.build import compile_project
from padless.errors import ClosedError, InputError, ProjectError, UnknownModelError
from padless.project import load_project
from probes import make_bert_folder, reset_pynq

TCLSH = shutil.which("tclsh")
PWNED = "PWNED"
#: One name holding the breakout characters of C++ (newline out of a // comment, #include, a static
#: initializer that runs a command), Make ($(shell ...), newline, #), TCL ([exec ...], braces, backslash-
#: newline), a shell (backquotes, $(...), ;) and quotes. A file name cannot hold "/", so no payload needs one.
BREAKOUT = ('m\n#include <cstdlib>\nstatic int pwn = std::system("touch PWNED_cpp");\n'
            '$(shell touch PWNED_make)\n[exec touch PWNED_tcl]\n}\nexec touch PWNED_tcl2\n#{\n'
            '`touch PWNED_sh`$(touch PWNED_sh2);touch PWNED_sh3;\\\n"\'# é')

HLS_STUBS = r"""
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

BD_STUBS = r"""
set ::calls {}
foreach p {create_project set_property get_bd_cells create_bd_design create_bd_cell apply_bd_automation
           get_bd_intf_pins assign_bd_address validate_bd_design save_bd_design make_wrapper get_files
           add_files current_project current_fileset update_ip_catalog launch_runs wait_on_run get_runs} {
    proc $p args "lappend ::calls \[list $p {*}\$args\]; return {}"
}
proc get_property {args} { return "100%" }
rename exec _exec
proc exec args { lappend ::calls [list exec {*}$args] }
rename file _file
proc file {cmd args} { if {$cmd in {mkdir copy}} { lappend ::calls [list file $cmd {*}$args] } else { _file $cmd {*}$args } }
source [lindex $argv 0]
foreach c $::calls { puts $c }
"""


def _pwned(*roots) -> list:
    return [p for r in roots for p in Path(r).rglob(f"{PWNED}*")]


@pytest.fixture(scope="module")
def breakout(tmp_path_factory, movie_texts):
    """Projects compiled from a transformers folder named BREAKOUT, for an Alveo and a Zynq board."""
    base = tmp_path_factory.mktemp("breakout")
    model = make_bert_folder(base / "models" / BREAKOUT)
    calib = list(movie_texts.texts[:16])
    out = {}
    for board in ("u280", "zcu104"):
        out[board] = base / f"out_{board}"
        compile_project(str(model), board=board, out=out[board], calib_texts=calib)
    return base, out, calib


def test_breakout_names_run_nothing(breakout, tmp_path):
    """The model's name reaches config.h, tb.cpp, the Makefile, run_hls.tcl, bitstream.mk and the Vivado
    TCL only escaped: g++ (csim library and `make csim`), make -n / make clean, and tclsh run nothing of
    it, and the project still computes the golden model's bits."""
    from padless.runtime import Accelerator
    from padless.runtime.backends.golden import GoldenBackend
    base, out, calib = breakout
    proj = out["u280"]
    m = json.loads((proj / "manifest.json").read_text())
    assert m["model"]["name"] == BREAKOUT  # the name is kept as data, exactly
    assert m["recipe"]["resolved"] == "path"
    for f in ("Makefile", "hls/config.h", "hls/tb.cpp", "hls/run_hls.tcl"):
        head = (proj / f).read_text().splitlines()[0]
        assert "m%0A%23include" in head and "\n" not in head, f  # percent-encoded, on its one comment line
    # csim: the g++ build of config.h + kernel, through the runtime, equals golden
    with Accelerator(proj, backend="csim") as acc:
        ids = acc.tokenize(calib[:6])
        got = acc.run(ids)
    ref = GoldenBackend(load_project(proj))
    from padless.runtime.host import run_hidden
    want = run_hidden(load_project(proj), ref, ids)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    # make: dry runs expand every variable ($(shell) runs even under -n), then the real targets
    for args in (["-n", "clean"], ["-n", "csim"], ["-n", "bitstream"], ["clean"], ["csim"]):
        r = subprocess.run(["make", "-C", str(proj), *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
    assert "PASS" in r.stdout  # `make csim`: tb.cpp (with the name in its comment) built and run
    if TCLSH:
        (tmp_path / "stub.tcl").write_text(HLS_STUBS)
        r = subprocess.run([TCLSH, str(tmp_path / "stub.tcl"), str(proj / "hls")], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert "open_project -reset padless_m_include_cstdlib_static_int_pwn_std_sys" in r.stdout
        zynq = out["zcu104"]
        r = subprocess.run([TCLSH, "/dev/stdin", str(zynq / "bitstream" / "zynq_bd.tcl")], input=BD_STUBS,
                           capture_output=True, text=True, cwd=zynq, timeout=60)
        assert r.returncode == 0, r.stderr
        execs = [c for c in r.stdout.splitlines() if c.startswith("exec")]
        assert len(execs) == 1 and execs[0].startswith("exec unzip"), execs  # only the flow's own exec
        r = subprocess.run(["make", "-C", str(zynq), "-n", "bitstream"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    assert not _pwned(base, tmp_path, os.getcwd()), "a payload in the model name ran"


def test_escape_filters_round_trip(tmp_path):
    """Each filter gives back the exact string in its language: tclsh, g++, make + /bin/sh."""
    from padless.codegen import escape
    nasty = BREAKOUT + " \t?? ??/ */ /* ${x} $$ % ~ \x01 \u00e9\u4e2d"
    # comment: one safe line in any language
    c = escape.comment(nasty, max_len=10_000)
    assert "\n" not in c and not set(c) & set("$#[]{}\\`;\"'<>?*\t\x01")
    from urllib.parse import unquote
    assert unquote(c) == nasty
    # identifier
    assert escape.ident(nasty) == "m_include_cstdlib_static_int_pwn_std_system_touc"
    assert escape.ident("9lives") == "_9lives" and escape.ident("***") == "model" and escape.ident("é") == "model"
    if TCLSH:
        word = escape.tcl_word(nasty)
        r = subprocess.run([TCLSH], input=f"set x {word}\nfconfigure stdout -encoding utf-8 -translation lf\nputs -nonewline $x\n".encode(),
                           capture_output=True, timeout=30, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == nasty.encode("utf-8")
    src = tmp_path / "s.cpp"
    src.write_text('#include <cstdio>\nint main() { std::fputs("' + escape.c_string(nasty) + '", stdout); }\n')
    subprocess.run(["g++", "-std=c++14", "-trigraphs", str(src), "-o", str(tmp_path / "s")], check=True, timeout=120)
    assert subprocess.run([str(tmp_path / "s")], capture_output=True).stdout == nasty.encode("utf-8")
    shell_safe = nasty.replace("\n", " ")  # a Make value cannot hold a newline (refused, tested below)
    mk = tmp_path / "Makefile"
    mk.write_text(f"V ?= {escape.make_shell_value(shell_safe)}\nall:\n\t@printf '%s' $(V)\n")
    r = subprocess.run(["make", "-s", "-C", str(tmp_path)], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == shell_safe.encode("utf-8")
    with pytest.raises(ProjectError, match="newline"):
        escape.make_shell_value("a\nb")
    for bad in ("x$(shell touch y)", "a b", "", "top;rm", "1x"):
        with pytest.raises(ProjectError):
            escape.checked_name(bad, "the kernel top")
    assert escape.checked_name("padless_encoder", "top") == "padless_encoder"
    assert not _pwned(tmp_path)


def test_python_path_and_kernel_top_from_the_manifest(tiny_project, tmp_path, monkeypatch):
    """The interpreter's path reaches the Makefile shell-quoted; a manifest's hls.top that is not an
    identifier is refused before it reaches bitstream.mk."""
    from padless.codegen.bitstream import generate as gen_bitstream
    from padless.codegen.hls import generate
    proj = tmp_path / "p"
    shutil.copytree(tiny_project, proj)
    python = f"{tmp_path}/py $(shell touch {tmp_path}/{PWNED}) `touch {tmp_path}/{PWNED}2` #x"
    monkeypatch.setattr(sys, "executable", python)
    generate(load_project(proj), "u280")
    r = subprocess.run(["make", "-C", str(proj), "-n", "csim"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "XILINX_HLS": ""})
    assert r.returncode == 0, r.stderr
    # the value reaches make as the one shell word it is
    r = subprocess.run(["make", "-s", "-C", str(proj), "-f", "Makefile", "-f", "/dev/stdin", "show"],
                       input="show:\n\t@printf '%s' $(PYTHON)\n", capture_output=True, text=True, timeout=60)
    assert r.stdout == python
    m = json.loads((proj / "manifest.json").read_text())
    m["hls"]["top"] = f"x$(shell touch {tmp_path}/{PWNED}3)"
    (proj / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ProjectError, match="not a C identifier"):
        gen_bitstream(load_project(proj), "u280")
    assert not _pwned(tmp_path)


# ------------------------------------------------------------------------------------------------ pickles

def test_torch_pickle_never_runs(tmp_path):
    """A torch zip whose pickle calls os.system is refused before loading, whatever its name; a dict of
    torch.nn modules still loads."""
    import torch
    from torch import nn

    from padless.frontend.torch_encoder import load_torch_path
    from padless.models import resolve_model

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / PWNED}",))
    for name in ("innocent.bin", "model.pt", "weights.pth", "noext"):
        torch.save({"encoder": Payload()}, tmp_path / name)
        with pytest.raises(UnknownModelError, match="does not unpickle.*system"):
            resolve_model(str(tmp_path / name))
    assert not _pwned(tmp_path)
    # the documented dict form of plain torch.nn parts loads (no custom class, nothing executed)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1,
                                enable_nested_tensor=False).eval()
    torch.save({"encoder": enc, "embedding": nn.Embedding(50, 16), "position": torch.zeros(12, 16)},
               tmp_path / "ok.pt")
    spec = load_torch_path(tmp_path / "ok.pt")
    assert spec.num_layers == 1 and spec.hidden_size == 16


def test_checkpoint_is_safetensors_and_json(tmp_path):
    """Optimizer state (integer parameter ids, tuples), RNG state, numpy arrays and nested lists survive a
    save/load; mismatched or corrupted pairs are refused; nothing in the folder is a pickle."""
    import torch

    from padless.finetune.checkpoint import TENSORS, TREE, load_checkpoint, save_checkpoint
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    state = {"run": {"model": "tiny", "train": {"betas": [0.9, 0.99]}}, "student": model.state_dict(),
             "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "step": 7,
             "history": [(4, 0.5), (7, 0.25)], "arr": np.arange(5, dtype=np.int16), "qat": None}
    save_checkpoint(state, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [TREE, TENSORS]
    back = load_checkpoint(tmp_path)
    assert back["step"] == 7 and back["history"] == [(4, 0.5), (7, 0.25)] and back["qat"] is None
    assert back["optimizer"]["param_groups"][0]["betas"] == opt.state_dict()["param_groups"][0]["betas"]
    assert set(back["optimizer"]["state"]) == {0, 1}  # integer keys stay integers
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    assert back["arr"].dtype == np.int16 and back["arr"].tolist() == [0, 1, 2, 3, 4]
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])  # the real consumer accepts it
    # a pair from two saves: refused
    tree = (tmp_path / TREE).read_text()
    save_checkpoint({"step": 8}, tmp_path)
    (tmp_path / TREE).write_text(tree)
    with pytest.raises(InputError, match="different saves"):
        load_checkpoint(tmp_path)
    (tmp_path / TENSORS).write_bytes(b"\x00" * 9)
    with pytest.raises(InputError, match="corrupted"):
        load_checkpoint(tmp_path)
    with pytest.raises(TypeError):
        save_checkpoint({"f": lambda: 0}, tmp_path)


# ------------------------------------------------------------------------------------------------ threads

def _threads(fn, n: int) -> list:
    results, errors = [None] * n, []

    def work(i):
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=600)
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def sentences(movie_texts):
    return list(movie_texts.texts[:48])


@pytest.mark.parametrize("backend", ["csim", "pynq-sim"])
def test_threads_and_objects_give_golden_bits(backend, tiny_project, sentences, monkeypatch):
    """4 threads x 2 Accelerators (and 4 threads on one shared Accelerator) on real sentences return
    exactly the single-threaded golden model's int8 hidden states, every round."""
    from padless.runtime import Accelerator
    from padless.runtime.host import run_hidden
    from padless.runtime.backends.golden import GoldenBackend
    if backend == "pynq-sim":
        pytest.importorskip("pynq")
        from padless.runtime import simdevice
        monkeypatch.setenv("PADLESS_SIM_DEVICE", "1")
        simdevice.enable()
    name = "csim" if backend == "csim" else "pynq"
    project = load_project(tiny_project)
    ids = project.tokenize(sentences)
    want = run_hidden(project, GoldenBackend(project), ids)
    # small packs so that each thread makes many kernel calls that can interleave
    accs = [Accelerator(tiny_project, backend=name, max_tokens=96) for _ in range(2)]
    try:
        if backend == "pynq-sim":
            assert all("simulated device" in a.backend.binding for a in accs)
        rounds = 3

        def work(i):
            acc = accs[i % 2]
            order = [(j + 7 * i) % len(ids) for j in range(len(ids))]  # different packs per thread
            outs = []
            for _ in range(rounds):
                got = acc.run([ids[j] for j in order])
                outs.append(all(np.array_equal(g, want[j]) for g, j in zip(got, order)))
            return outs
        assert all(all(r) for r in _threads(work, 4))
        shared = _threads(lambda i: [np.array_equal(a, b) for a, b in zip(accs[0].run(ids), want)], 4)
        assert all(all(r) for r in shared)
    finally:
        for a in accs:
            a.close()
        if backend == "pynq-sim":
            reset_pynq()


def test_csim_lock_is_per_loaded_library(tiny_project):
    """Every CsimLibrary of one loaded .so shares one lock (dlopen gives the same handle)."""
    from padless.csim import CsimLibrary, build_library
    lib = build_library(tiny_project / "hls")
    a, b = CsimLibrary(lib), CsimLibrary(lib)
    assert a.lock is b.lock
    link = lib.parent / "alias.so"
    if not link.exists():
        os.link(lib, link)
    assert CsimLibrary(link).lock is a.lock  # another path to the same file: the same loaded object


def test_corrupt_cached_library_is_rebuilt(tiny_project, tmp_path):
    """A truncated libpadless_csim.so in the cache is detected by its digest and rebuilt (fresh processes,
    so that the file is really loaded)."""
    env = {**os.environ, "PADLESS_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "padless.cli", "run", str(tiny_project), "--backend", "csim", "--text",
           "a gripping film", "--json"]
    r1 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r1.returncode == 0, r1.stderr
    (lib,) = (tmp_path / "cache").rglob("libpadless_csim.so")
    lib.write_bytes(lib.read_bytes()[:1000])
    r2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r2.returncode == 0, r2.stderr
    assert r2.stdout == r1.stdout and lib.stat().st_size > 1000


# ------------------------------------------------------------------------------------------ user folders

def test_force_writes_beside_user_files(tmp_path):
    """--force writes a project into a user's folder and deletes nothing of theirs; a recompile of that
    project is allowed without --force; a build output of the project's own make is not in the way."""
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("mine\n")
    (d / "data").mkdir()
    (d / "data" / "x.csv").write_text("1,2\n")
    from padless.cli import main
    assert main(["compile", "tiny", "--out", str(d), "--force", "--calib-count", "8", "--quiet"]) == 0
    assert (d / "thesis.tex").read_text() == "mine\n" and (d / "data" / "x.csv").read_text() == "1,2\n"
    gen = load_project(d).manifest["generated"]  # every file the generators wrote, for the next compile
    assert {"hls/tb.cpp", "hls/config.h", "bitstream.mk"} - set(gen) == {"bitstream.mk"}
    assert all(f.startswith(("hls/", "bitstream/")) for f in gen) and (d / gen[0]).is_file()
    (d / "hls" / "vitis_hls.log").write_text("log\n")  # what `make hls` leaves
    (d / "hls" / "padless_tiny").mkdir()
    (d / "hls" / "padless_tiny" / "solution1.log").write_text("log\n")
    assert main(["compile", "tiny", "--out", str(d), "--calib-count", "8", "--quiet"]) == 0
    assert (d / "thesis.tex").is_file() and (d / "data" / "x.csv").is_file()
    with pytest.raises(InputError, match="--out is empty"):
        compile_project("tiny", out="")


# --------------------------------------------------------------------------------- simulated device, recipes

def test_sim_device_with_a_named_pynq_backend(tiny_project, monkeypatch):
    """PADLESS_SIM_DEVICE=1 reaches the simulated device with --backend pynq and backend="pynq", as with auto."""
    pytest.importorskip("pynq")
    from padless.runtime import Accelerator
    env = {**os.environ, "PADLESS_SIM_DEVICE": "1"}
    r = subprocess.run([sys.executable, "-m", "padless.cli", "run", str(tiny_project), "--backend", "pynq", "--text",
                        "hi", "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    golden = subprocess.run([sys.executable, "-m", "padless.cli", "run", str(tiny_project), "--text", "hi", "--json"],
                            capture_output=True, text=True, timeout=600)
    assert json.loads(r.stdout)["embedding"] == json.loads(golden.stdout)["embedding"]
    reset_pynq()  # as if pynq had probed before the variable was set
    import pynq
    assert pynq.Device.devices is not None
    monkeypatch.setenv("PADLESS_SIM_DEVICE", "1")
    try:
        with Accelerator(tiny_project, backend="pynq") as acc:
            assert "simulated device" in acc.backend.binding
            acc.encode(["hi"])
    finally:
        reset_pynq()


def test_recipe_names_are_not_shadowed_by_folders(tmp_path, monkeypatch, capsys):
    """`padless compile tiny --out tiny` then `padless eval tiny ...`: "tiny" is the recipe for the model
    and the project folder for eval; ./tiny is the folder; the manifest records which."""
    from padless.cli import main
    from padless.models import resolve_model
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "tiny", "--out", "tiny", "--calib-count", "8", "--quiet"]) == 0
    m = json.loads((tmp_path / "tiny" / "manifest.json").read_text())
    assert m["recipe"]["resolved"] == "recipe" and m["model"]["source"]["recipe"] == "tiny"
    (tmp_path / "d.tsv").write_text("1\ta gripping film\n0\tdull and slow\n1\tsuperb cast\n0\ta tired plot\n"
                                    "1\tmoving and funny\n0\tboring\n1\tgreat fun\n0\tterrible pacing\n"
                                    "1\tbrilliant\n0\tweak script\n")
    capsys.readouterr()
    assert main(["eval", "tiny", "--data", "d.tsv", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 10
    # a folder named like a recipe with a (different) model in it: the recipe still wins; ./ picks the folder
    make_bert_folder(tmp_path / "bert-base", hidden=32, heads=2)
    spec, rec = resolve_model("bert-base")
    assert rec.resolved == "recipe" and spec.hidden_size == 768
    spec, rec = resolve_model("./bert-base")
    assert rec.resolved == "path" and spec.hidden_size == 32 and len(rec.source["sha256"]) == 64
    with pytest.raises(UnknownModelError, match="no such file"):
        resolve_model("./tiny-missing")
    with pytest.raises(UnknownModelError, match="not a model padless can read"):
        resolve_model("tiny", as_recipe=False)  # the project folder tiny/ is no model
    with pytest.raises(UnknownModelError):
        from padless.models import load_recipe
        load_recipe("../models/tiny")


def test_eval_reloads_only_the_source_it_was_compiled_from(path_project, tmp_path, capsys):
    """A project compiled from a path: eval re-loads that model only while its checksum matches; with
    --reference the user names the model explicitly."""
    from padless.cli import main
    proj, model = path_project
    p = tmp_path / "p"
    shutil.copytree(proj, p)
    (tmp_path / "d.tsv").write_text("1\ta gripping film\n0\tdull and slow\n1\tsuperb cast\n0\ta tired plot\n"
                                    "1\tmoving and funny\n0\tboring\n1\tgreat fun\n0\tterrible pacing\n"
                                    "1\tbrilliant\n0\tweak script\n")
    assert main(["eval", str(p), "--data", str(tmp_path / "d.tsv"), "--json"]) == 0
    m = json.loads((p / "manifest.json").read_text())
    moved = tmp_path / "moved"
    shutil.copytree(model, moved)
    (moved / "extra.txt").write_text("changed\n")
    m["model"]["source"]["path"] = str(moved)
    (p / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["eval", str(p), "--data", str(tmp_path / "d.tsv"), "--json"]) != 0
    assert "changed since this project was compiled" in capsys.readouterr().err
    assert main(["eval", str(p), "--data", str(tmp_path / "d.tsv"), "--json", "--reference", str(moved)]) == 0


# ------------------------------------------------------------------------------------------------ the API

def test_api_bad_inputs(tiny_project):
    """encode()/run() after close(), float / bool / ragged token ids, bad max_tokens, texts with no words."""
    from padless.runtime import Accelerator
    acc = Accelerator(tiny_project, backend="golden")
    for ids in ([[101.0, 2000.0, 102.0]], [[101, 2000.5, 102]], [[True, False]], [["101", "102"]], [[[101, 102]]],
                [[]]):
        with pytest.raises(InputError):
            acc.run(ids)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="max_tokens"):
            Accelerator(tiny_project, backend="golden", max_tokens=bad)
    for text in ("\u200b\u200c", "\x01\x02", "   "):
        with pytest.raises(InputError):
            acc.encode([text])
    with pytest.raises(InputError, match="batch_size"):
        acc.encode(["hi"], batch_size=0)
    assert acc.encode(["hi"]).shape == (1, 64)
    acc.close()
    acc.close()  # idempotent
    with pytest.raises(ClosedError):
        acc.encode(["hi"])
    with pytest.raises(ClosedError):
        acc.run([[101, 102]])
    for name in ("csim",):
        a = Accelerator(tiny_project, backend=name)
        a.close()
        with pytest.raises(ClosedError):
            a.encode(["hi"])


def test_encode_warns_once_when_it_truncates(tiny_project):
    from padless.runtime import Accelerator
    with Accelerator(tiny_project, backend="golden") as acc:
        assert acc.max_seq_length == 128
        with pytest.warns(UserWarning, match="truncated"):
            e1 = acc.encode(["word " * 200, "short"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second truncation: no second warning
            e2 = acc.encode(["word " * 300])
        assert np.array_equal(e1[0], e2[0])  # both cut to the same 128 tokens
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Accelerator(tiny_project, backend="golden").encode(["short"])  # nothing cut: no warning


def test_transformers_load_report_is_not_printed():
    """Loading all-MiniLM-L6-v2 (a BertModel without its pooler) prints no weight-loading report or bar."""
    code = "from padless.models import resolve_model; resolve_model('minilm-l6')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert "LOAD REPORT" not in r.stderr and "UNEXPECTED" not in r.stderr and "Loading weights" not in r.stderr
