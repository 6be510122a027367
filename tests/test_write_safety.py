"""Issue 27 (part A): no write outside the project or through a link, atomic locked project updates, the
quantization cache (docs/reliability.md, "Writes, interrupts and full disks").

Every test runs the real compile of the ``tiny`` model (calibration count 8) into temporary folders; the
quantization cache lives in a temporary folder per test."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from padless import build, fsutil
from padless.cli import main
from padless.errors import InputError, ProjectError
from padless.project import load_project

C = ["compile", "tiny", "--board", "u280", "--calib-count", "8", "--quiet"]
SW = Path(__file__).resolve().parents[1] / "sw"


@pytest.fixture(autouse=True)
def _quant_cache(tmp_path_factory, monkeypatch):
    """A private quantization cache for each test (the user's is never touched)."""
    from padless.quant import cache
    d = tmp_path_factory.mktemp("quant-cache")
    monkeypatch.setattr(cache, "cache_dir", lambda: d)
    return d


@pytest.fixture
def fast_model(monkeypatch):
    """resolve_model memoised for the test (each compile still runs every other step for real)."""
    import padless.models as models
    real, memo = models.resolve_model, {}

    def resolve(name, *a, **k):
        if name not in memo:
            memo[name] = real(name, *a, **k)
        return memo[name]
    monkeypatch.setattr(models, "resolve_model", resolve)


def tree(d: Path, skip: Path | None = None) -> dict:
    """{relative path: sha256 or link target} of everything under ``d`` (links not followed)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        rel = str(p.relative_to(d))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[rel] = "dir"
    return out


def leftovers(out: Path) -> list:
    return sorted(p.name for p in out.parent.iterdir() if ".padless-" in p.name) + \
        sorted(str(p) for p in out.rglob(f"*{fsutil.TMP_MARK}*"))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("padless: error:"), err
    assert "Traceback" not in err and "Exception ignored" not in err
    return lines[0]


# ------------------------------------------------------------------------------------------- fsutil

def test_fsutil_refuses_links_and_paths_outside(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("mine\n")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "Makefile").symlink_to(victim)
    (root / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(fsutil.WriteError, match="Makefile is a symbolic link"):
        fsutil.write_text(root / "Makefile", "all:\n", root)
    with pytest.raises(fsutil.WriteError, match="sub is a symbolic link"):
        fsutil.write_text(root / "sub" / "victim", "x", root)
    with pytest.raises(fsutil.WriteError, match="is not inside"):
        fsutil.write_text(root / ".." / "victim", "x", root)
    with pytest.raises(fsutil.WriteError, match="is a symbolic link"):
        fsutil.remove_tree(root / "sub", root)
    assert victim.read_text() == "mine\n" and (tmp_path / "victim").is_file()
    fsutil.write_text(root / "a" / "b.txt", "ok", root)
    assert (root / "a" / "b.txt").read_text() == "ok" and not leftovers(root / "a")


def test_fsutil_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    f = tmp_path / "quant.npz"
    f.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fsutil.os, "fsync", full)
    with pytest.raises(fsutil.WriteError, match=r"No space left on device\); free some space"):
        fsutil.write_bytes(f, b"new" * 1000, tmp_path)
    assert f.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["quant.npz"]


def test_npz_bytes_deterministic_and_readable(tmp_path):
    import numpy as np
    arrays = {"a": np.arange(5, dtype=np.int8), "s": np.array("text")}
    b = fsutil.npz_bytes(arrays)
    time.sleep(1.1)  # numpy.savez would stamp another second here
    assert fsutil.npz_bytes(arrays) == b
    z = np.load(fsutil.write_npz(tmp_path / "x.npz", arrays), allow_pickle=False)
    assert z["a"].tolist() == [0, 1, 2, 3, 4] and str(z["s"]) == "text"


# --------------------------------------------------------------------------- recompile through links

@pytest.mark.parametrize("name", ["Makefile", "weights.bin", "quant.npz"])
def test_recompile_never_writes_through_a_link(name, tiny_project, tmp_path, fast_model, capsys):
    """A received project whose Makefile / weights.bin / quant.npz links to a user's file: the recompile
    replaces the link with its own file and the user's file is untouched (issue 27, Why 1)."""
    import shutil
    proj = tmp_path / "proj"
    shutil.copytree(tiny_project, proj)
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH=$HOME/bin:$PATH\n")
    (proj / name).unlink()
    (proj / name).symlink_to(victim)
    before = tree(tmp_path, skip=proj)
    assert main(C + ["--out", str(proj)]) == 0, capsys.readouterr().err
    assert tree(tmp_path, skip=proj) == before
    assert not (proj / name).is_symlink() and load_project(proj).board == "u280"
    assert not leftovers(proj)


# ------------------------------------------------------------------------- interrupts, full disk, lock

def _interrupt_at(monkeypatch, step_name: str, exc: BaseException):
    steps = list(build.STEPS)
    i = [s.__name__ for s in steps].index(step_name)
    real = steps[i]

    def boom(st):
        real(st)
        raise exc
    boom.__name__ = step_name
    steps[i] = boom
    monkeypatch.setattr(build, "STEPS", steps)


WRITING_STEPS = ["step_write_project", "step_schedule", "step_codegen", "step_bitstream_flow",
                 "step_record_generated"]


def test_interrupt_in_each_step_leaves_the_old_project(tiny_project, tmp_path, fast_model, monkeypatch, capsys):
    """Ctrl-C at the end of each writing step of a recompile (for another board): the folder is the old
    project, byte for byte, no staging folder is left, and the rerun succeeds (issue 27, Why 7)."""
    import shutil
    proj = tmp_path / "proj"
    shutil.copytree(tiny_project, proj)
    (proj / "notes.txt").write_text("mine\n")
    before = tree(proj)
    for step in WRITING_STEPS:
        with monkeypatch.context() as m:
            _interrupt_at(m, step, KeyboardInterrupt())
            assert main(C[:3] + ["zcu104"] + C[4:] + ["--out", str(proj)]) == 130
        assert tree(proj) == before, step
        assert not leftovers(proj), step
        load_project(proj)
    capsys.readouterr()
    assert main(C[:3] + ["zcu104"] + C[4:] + ["--out", str(proj)]) == 0
    assert load_project(proj).board == "zcu104" and (proj / "notes.txt").read_text() == "mine\n"
    assert not leftovers(proj)


def test_full_disk_during_first_compile(tmp_path, fast_model, monkeypatch, capsys):
    """ENOSPC while writing quant.npz of a first compile: one line, no "Exception ignored", no folder
    left behind, the rerun succeeds (issue 27, Why 8)."""
    out = tmp_path / "p"
    real = fsutil.atomic_file

    def full(path, *a, **k):
        if Path(path).name == "quant.npz":
            raise fsutil.write_error(path, OSError(errno.ENOSPC, "No space left on device"))
        return real(path, *a, **k)
    with monkeypatch.context() as m:
        m.setattr(fsutil, "atomic_file", full)
        rc = main(C + ["--out", str(out)])
    line = one_line(capsys.readouterr().err)
    assert rc != 0 and "No space left on device" in line and "quant.npz" in line
    assert not out.exists() and not leftovers(out)
    assert main(C + ["--out", str(out)]) == 0
    load_project(out)


def test_second_compile_into_a_locked_folder_is_refused(tiny_project, tmp_path, fast_model, capsys):
    """While a compile holds the project folder's lock, another one into the same --out refuses with one
    line and changes nothing (issue 27, Why 9)."""
    import shutil
    proj = tmp_path / "proj"
    shutil.copytree(tiny_project, proj)
    before = tree(proj)
    fd = os.open(proj, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert main(C + ["--out", str(proj)]) != 0
        assert "being written by another padless compile" in one_line(capsys.readouterr().err)
    finally:
        os.close(fd)
    assert tree(proj) == before and not leftovers(proj)


def _padless(args, env=None, **kw):
    e = {**os.environ, "PYTHONPATH": str(SW), **(env or {})}
    return subprocess.Popen([sys.executable, "-c", "import sys; from padless.cli import main; sys.exit(main())",
                             *args], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigterm_during_compile_keeps_the_old_project(tiny_project, tmp_path, _quant_cache):
    """SIGTERM to a real `padless compile` process while its staging folder exists: exit 143, the old
    project unchanged, no staging folder left."""
    import shutil
    proj = tmp_path / "proj"
    shutil.copytree(tiny_project, proj)
    before = tree(proj)
    p = _padless(C + ["--out", str(proj)], env={"PADLESS_QUANT_CACHE": "off"})
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not [q for q in tmp_path.iterdir() if ".padless-staging-" in q.name]:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert tree(proj) == before and not leftovers(proj)


def test_sigterm_during_csim_build_leaves_no_compiler_and_no_library(tiny_project, tmp_path):
    """SIGTERM to `padless run --backend csim` while g++ builds the library: no compiler process of that
    build survives and no temporary library stays in the cache (issue 27, minor)."""
    from padless.csim import library_path
    cache = tmp_path / "cache"
    p = _padless(["run", str(tiny_project), "--backend", "csim", "--text", "hello"], env={"PADLESS_CACHE": str(cache)})
    lib_dir = library_path(tiny_project / "hls", cache=cache / "csim").parent.parent

    def compilers():
        found = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and str(tiny_project / "hls") in (d / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(d.name))
            except OSError:
                pass
        return [pid for pid in found if pid != p.pid]
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not compilers():
        time.sleep(0.05)
    if p.poll() is not None:
        pytest.skip(f"the build finished before it could be interrupted: {p.communicate()}")
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    time.sleep(0.5)
    assert compilers() == [], "a compiler outlived padless"
    assert not [f for f in lib_dir.rglob("*") if f.is_file() and f.suffix == ".so"]


def test_csim_folder_where_the_library_goes(tiny_project, tmp_path):
    from padless.csim import build_library, library_path
    lib = library_path(tiny_project / "hls", cache=tmp_path)
    lib.mkdir(parents=True)
    with pytest.raises(ProjectError, match="holds a folder at .*libpadless_csim.so.*delete"):
        build_library(tiny_project / "hls", cache=tmp_path)


# -------------------------------------------------------------------------------- checksums of hls/

def test_checksums_cover_every_hls_file(tiny_project):
    m = load_project(tiny_project).manifest
    hls = sorted(str(p.relative_to(tiny_project)) for p in (tiny_project / "hls").rglob("*") if p.is_file())
    assert hls and all(h in m["checksums"] for h in hls), set(hls) - set(m["checksums"])
    assert any(h.startswith("hls/include/padless/") for h in hls)


# --------------------------------------------------------------------------------- quantization cache

def test_quant_cache_hit_is_byte_identical(tmp_path, fast_model, _quant_cache, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    st1 = build.compile_project("tiny", out=a, calib_count=8)
    st2 = build.compile_project("tiny", board="zcu104", out=b, calib_count=8)
    notes = {row[0]: row[2:] for row in st1.log}, {row[0]: row[2:] for row in st2.log}
    assert notes[0]["quantize"] == ("cache miss",) and notes[1]["quantize"] == ("cache hit",)
    assert (a / "quant.npz").read_bytes() == (b / "quant.npz").read_bytes()
    st3 = build.compile_project("tiny", out=tmp_path / "c", calib_count=8)
    for f in ("quant.npz", "weights.bin", "host.npz", "hls/tv/x_out.bin", "hls/config.h"):
        assert (a / f).read_bytes() == (tmp_path / "c" / f).read_bytes(), f
    assert {row[0]: row[2:] for row in st3.log}["calibrate"] == ("cache hit",)
    assert load_project(a).manifest["quant"] == load_project(tmp_path / "c").manifest["quant"]


def test_quant_cache_misses_on_another_config_or_calibration(tmp_path, fast_model, _quant_cache):
    def note(**kw):
        st = build.compile_project("tiny", out=tmp_path / f"p{len(list(tmp_path.iterdir()))}", **kw)
        return {row[0]: row[2:] for row in st.log}["quantize"]
    assert note(calib_count=8) == ("cache miss",)
    assert note(calib_count=8) == ("cache hit",)
    assert note(calib_count=9) == ("cache miss",)
    assert note(calib_count=8, alpha=0.5) == ("cache miss",)
    assert note(calib_count=8, config={"quant": {"gelu": "ibert"}}) == ("cache miss",)
    assert note(calib_count=8, config={"weights": {"sparsity": 0.5, "bank": 16}}) == ("cache miss",)
    assert len(list(_quant_cache.glob("*.npz"))) == 5


def test_quant_cache_corrupt_entry_is_recomputed(tmp_path, fast_model, _quant_cache):
    a = tmp_path / "a"
    build.compile_project("tiny", out=a, calib_count=8)
    (entry,) = _quant_cache.glob("*.npz")
    good = entry.read_bytes()
    entry.write_bytes(good[: len(good) // 2])
    st = build.compile_project("tiny", out=tmp_path / "b", calib_count=8)
    assert {row[0]: row[2:] for row in st.log}["quantize"] == ("cache miss",)
    assert entry.read_bytes() == good == (tmp_path / "b" / "quant.npz").read_bytes()
    rec = json.loads(entry.with_suffix(".json").read_text())
    rec["npz_sha256"] = "0" * 64   # an edited record is not trusted either
    entry.with_suffix(".json").write_text(json.dumps(rec))
    st = build.compile_project("tiny", out=tmp_path / "c", calib_count=8)
    assert {row[0]: row[2:] for row in st.log}["quantize"] == ("cache miss",)


def test_compile_prints_the_cache_in_its_step_timings(tmp_path, fast_model, capsys):
    assert main(C[:-1] + ["--out", str(tmp_path / "a")]) == 0
    assert main(C[:-1] + ["--out", str(tmp_path / "b")]) == 0
    import re
    first, second = [ln for ln in capsys.readouterr().out.splitlines() if "steps:" in ln]
    assert re.search(r"quantize \d+\.\ds \(cache miss\)", first), first
    assert re.search(r"calibrate \d+\.\ds \(cache hit\), quantize \d+\.\ds \(cache hit\)", second), second


# ---------------------------------------------------------------------------------------- export

def test_export_force_replaces_a_file_but_never_a_project_file(tiny_project, tmp_path):
    from padless.export_onnx import export_onnx
    mine = tmp_path / "m.onnx"
    mine.write_text("old\n")
    with pytest.raises(InputError, match="already exists"):
        export_onnx(tiny_project, mine)
    assert export_onnx(tiny_project, mine, force=True) == mine and mine.stat().st_size > 1000
    with pytest.raises(InputError, match="is a file of the padless project"):
        export_onnx(tiny_project, tiny_project / "quant.npz", force=True)
    link = tmp_path / "l.onnx"
    link.symlink_to(tmp_path / "elsewhere.onnx")
    with pytest.raises(fsutil.WriteError, match="is a symbolic link"):
        export_onnx(tiny_project, link, force=True)
    assert not (tmp_path / "elsewhere.onnx").exists()


# ---------------------------------------------------------------------- probes: nothing outside changed

def test_issue27_probes_change_nothing_outside_the_project(tmp_path, tiny_project, path_project, monkeypatch, capsys):
    """Every probe of issue 27: one clear line, non-zero exit, and every file outside the project copy
    (the scratch folder, links' targets included) byte for byte as before."""
    from probes import PROBES, Context, reset_pynq
    for probe in [p for p in PROBES if p.item.startswith("27")]:
        tmp = tmp_path / probe.id
        tmp.mkdir()
        ctx = Context(tmp, tiny_project, lambda: path_project)
        if probe.setup:
            probe.setup(ctx)
        fields = ctx.fields(probe)
        argv = [a.format(**fields) for a in probe.argv]
        proj = ctx._proj
        before = tree(tmp, skip=proj)
        reset_pynq()
        capsys.readouterr()
        with monkeypatch.context() as mp:   # the probe's environment (a cache folder, CXX, ...) for this probe only
            for k, v in probe.env.items():
                mp.setenv(k, v.format(**fields))
            mp.chdir(tmp)
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse
                rc = exc.code
        err = capsys.readouterr().err
        assert rc != 0, probe.id
        assert probe.expect in one_line(err), (probe.id, err)
        assert tree(tmp, skip=proj) == before, probe.id
