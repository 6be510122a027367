"""Issue 27 part B: bounded inputs, clear lines and plain progress in logs (docs/reliability.md, "Bounded
inputs and clear lines"). The CLI probes are in tests/probes_inputs.py; these are the cases the in-process
probe runner cannot show: the real process's stdout and environment, the Python API, the progress modes,
the torch fp32 meter."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from padless.errors import InputError, ProjectError
from padless.inputs import MAX_YAML_DEPTH, BoundedLoader, brief, load_yaml, read_bounded

SW = str(Path(__file__).resolve().parents[1] / "sw")


def _cli(args, env=None, **kw):
    """``python -m padless.cli ARGS`` in a real process (stdout/stderr as bytes)."""
    e = {**os.environ, "PYTHONPATH": SW, **(env or {})}
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "padless.cli", *args], env=e, stderr=subprocess.PIPE, timeout=300, **kw)


# ---- padless.inputs -----------------------------------------------------------------------------------

def test_yaml_alias_bomb_is_refused_in_bounded_time(tmp_path):
    import probes  # noqa: F401  (loads probes_inputs after the Probe class: import order)
    from probes_inputs import _alias_bomb
    p = tmp_path / "c.yaml"
    p.write_text(_alias_bomb(9))
    t = time.perf_counter()
    with pytest.raises(InputError, match=r"line 2, column \d+: alias \*a is not allowed"):
        load_yaml(p)
    assert time.perf_counter() - t < 1.0


def test_yaml_depth_duplicates_and_plain_values(tmp_path):
    ok = "attention: {topk: 4}\nquant: {precision: {act: 16}}\nweights: [1, [2, [3]]]\n"
    assert yaml.load(ok, Loader=BoundedLoader) == yaml.safe_load(ok)
    deep = "a: " + "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    with pytest.raises(yaml.YAMLError, match="nested deeper"):
        yaml.load(deep, Loader=BoundedLoader)
    yaml.load("a: " + "[" * (MAX_YAML_DEPTH - 2) + "]" * (MAX_YAML_DEPTH - 2), Loader=BoundedLoader)
    with pytest.raises(yaml.YAMLError, match="given twice"):
        yaml.load("a: {x: 1, x: 2}\n", Loader=BoundedLoader)
    with pytest.raises(yaml.YAMLError, match="given twice"):
        yaml.load("1: a\n1: b\n", Loader=BoundedLoader)
    with pytest.raises(yaml.YAMLError):  # SafeLoader's refusals stay: no python objects
        yaml.load("!!python/object/apply:os.system ['echo PWNED']", Loader=BoundedLoader)
    (tmp_path / "n.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="UTF-8"):
        load_yaml(tmp_path / "n.yaml")


def test_read_bounded_limits_streams_and_files(tmp_path, monkeypatch):
    t = time.perf_counter()
    with pytest.raises(InputError, match="larger than 1,000,000 bytes"):
        read_bounded("/dev/zero", 1_000_000)
    assert time.perf_counter() - t < 1.0
    f = tmp_path / "a.txt"
    f.write_bytes(b"x" * 100)
    assert read_bounded(f, 100) == b"x" * 100
    with pytest.raises(InputError, match="larger than 99 bytes"):
        read_bounded(f, 99)
    monkeypatch.setenv("PADLESS_MAX_INPUT_BYTES", "50")
    with pytest.raises(InputError, match="PADLESS_MAX_INPUT_BYTES"):
        read_bounded(f)
    monkeypatch.setenv("PADLESS_MAX_INPUT_BYTES", "-5")
    with pytest.raises(InputError, match="not a positive whole number"):
        read_bounded(f)
    monkeypatch.delenv("PADLESS_MAX_INPUT_BYTES")
    with pytest.raises(InputError, match="no such file"):
        read_bounded(tmp_path / "missing.txt")


def test_brief_is_bounded_and_never_raises():
    big = ["x" * 1000] * 1000
    assert len(brief(big)) < 240 and brief(big).endswith("characters)")
    assert brief("short") == "'short'"

    class Evil:
        def __repr__(self):
            raise RuntimeError("no")
    assert "repr failed" in brief(Evil())
    nested: list = []
    nested.append(nested)
    assert brief(nested) == "[[...]]"


def test_stdin_input_is_bounded(tiny_project):
    """`padless run --input /dev/stdin` past the limit ends in one line, as a file does."""
    r = _cli(["run", str(tiny_project), "--input", "/dev/stdin"], env={"PADLESS_MAX_INPUT_BYTES": "1000"},
             input=b"a fine film\n" * 200)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "larger than 1,000 bytes" in err[0], r.stderr


# ---- the process's own output ---------------------------------------------------------------------------

def test_stdout_to_a_full_device_is_one_line(tiny_project):
    with open("/dev/full", "wb") as full:
        r = _cli(["run", str(tiny_project), "--text", "a gripping film"], stdout=full)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and len(err) == 1, r.stderr
    assert err[0].startswith("padless: error: cannot write the output (No space left on device)")


def test_ascii_stdout_with_emoji_input(tiny_project):
    r = _cli(["run", str(tiny_project), "--text", "great \U0001F600 film"], env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert b"\\U0001f600" in r.stdout


def test_no_matplotlib_warnings_without_a_writable_home(tiny_project, tmp_path):
    env = {"HOME": "/proc/padless-no-home", "XDG_CONFIG_HOME": "", "MPLCONFIGDIR": "", "XDG_CACHE_HOME": str(tmp_path)}
    r = _cli(["--version"], env=env)
    assert r.returncode == 0 and r.stderr == b"" and r.stdout.startswith(b"padless "), r.stderr
    r = _cli(["schedule", str(tiny_project), "--lengths", str(_lengths(tmp_path))], env=env)
    assert r.returncode == 0 and b"atplotlib" not in r.stderr, r.stderr


def _lengths(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("5\n9\n")
    return p


# ---- csim cache ------------------------------------------------------------------------------------------

def test_csim_cache_that_cannot_be_read_or_written(tiny_project, tmp_path):
    """A cached library and digest replaced by folders (what `cannot read` looks like to root), and, when
    not root, a cache folder without permissions: one ProjectError naming the cache, no temporaries."""
    from padless.csim import build_library
    lib = build_library(tiny_project / "hls", cache=tmp_path / "c")
    entry = lib.parent
    for f in (lib, entry / "libpadless_csim.sha256"):
        f.unlink()
        f.mkdir()
    with pytest.raises(ProjectError, match="csim cache (.* cannot be read or written|holds a folder at)"):
        build_library(tiny_project / "hls", cache=tmp_path / "c")
    assert not [p for p in entry.iterdir() if p.name.startswith("libpadless_csim.") and p.name.count(".") > 2]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0)
        try:
            with pytest.raises(ProjectError, match="cannot be read or written|cannot be created"):
                build_library(tiny_project / "hls", cache=locked / "c")
        finally:
            locked.chmod(0o700)


# ---- the Python API ---------------------------------------------------------------------------------------

def test_api_refuses_non_text_and_non_bool(tiny_project):
    from padless.runtime.accelerator import Accelerator
    for bad in (None, 3, b"dir"):
        with pytest.raises(InputError, match="needs a project folder"):
            Accelerator(bad)
    with Accelerator(tiny_project, backend="golden") as acc:
        for bad, what in [(None, "got NoneType"), (b"hello", "got bytes"), ({"a gripping film": 1}, "got dict"),
                          ({"a", "b"}, "got set"), (["ok", b"x"], r"sentences\[1\] is bytes"),
                          (["ok", None], r"sentences\[1\] is NoneType")]:
            with pytest.raises(InputError, match=what):
                acc.encode(bad)
        for kw in ({"normalize_embeddings": "no"}, {"convert_to_numpy": "yes"}, {"show_progress_bar": 1}):
            with pytest.raises(InputError, match="must be True or False"):
                acc.encode(["a gripping film"], **kw)
        e = acc.encode(["a gripping film", "dull"])
        t = acc.encode(["a gripping film", "dull"], convert_to_numpy=False)
        import torch
        assert isinstance(t, list) and len(t) == 2 and all(isinstance(x, torch.Tensor) for x in t)
        assert np.array_equal(np.stack([x.numpy() for x in t]), e)
        assert np.array_equal(acc.encode(np.array(["a gripping film", "dull"])), e)
        assert np.array_equal(acc.encode(("a gripping film", "dull"), normalize_embeddings=np.bool_(True)), e)


# ---- progress in logs --------------------------------------------------------------------------------------

def test_progress_mode_and_plain_lines(monkeypatch):
    from padless import progress as P
    monkeypatch.delenv("PADLESS_PROGRESS", raising=False)
    buf = io.StringIO()
    assert P.progress_mode(buf) == "lines" and P.progress_mode(buf, disable=True) == "off"
    monkeypatch.setenv("PADLESS_PROGRESS", "bar")
    assert P.progress_mode(buf) == "bar"
    monkeypatch.setenv("PADLESS_PROGRESS", "lines")
    monkeypatch.setattr(P, "MIN_LINE_SECONDS", 0.0)
    with P.progress_bar(total=1000, desc="calibrating", unit="sent", file=buf) as bar:
        for _ in range(1000):
            bar.update(1)
        bar.set_postfix(loss="0.1")
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and 2 <= len(lines) <= P.LINE_STEPS + 2, lines
    assert lines[0].startswith("calibrating: 0/1,000 sent (0%)") and lines[-1].startswith("calibrating: 1,000/1,000")
    buf = io.StringIO()
    assert list(P.progress_bar(range(5), desc="GPTQ", file=buf)) == [0, 1, 2, 3, 4]
    assert buf.getvalue().splitlines()[-1].startswith("GPTQ: 5/5 it (100%)")
    # tqdm's delay (compile's step bar): work that ends, or fails, within it prints no line at all
    buf = io.StringIO()
    with P.progress_bar(total=3, desc="compile", unit="step", file=buf, delay=60.0) as bar:
        bar.update(3)
    assert buf.getvalue() == ""
    buf = io.StringIO()
    bar = P.progress_bar(total=3, desc="compile", unit="step", file=buf, delay=1e-9)
    bar.update(1)
    bar.close()
    assert buf.getvalue().splitlines()[-1].startswith("compile: 1/3 step")


def test_bad_config_ends_in_one_line_however_slow_the_model_loads(tmp_path, capsys, monkeypatch):
    """compile's step progress starts after the steps that check the input: on a loaded machine (here a
    clock that moves 10 s a reading) a bad config still ends in its one error line and nothing else."""
    from padless import progress as P
    from padless.cli import main
    clock = iter(range(0, 10**9, 10))
    monkeypatch.setattr(P.time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setenv("PADLESS_PROGRESS", "lines")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("weights: {sparsity: 0.5, bank: 16, pattern: diagonal}\n")
    assert main(["compile", "tiny", "--config", str(cfg), "--out", str(tmp_path / "p")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("padless: error: weights pattern"), err


def test_main_job_log_has_no_bar_frames(tmp_path, tiny_project):
    """The eval step of `make run` into a file: plain lines, no carriage returns."""
    code = ("import sys; from padless.commands.eval import evaluate; from padless.project import load_project; "
            f"p = load_project({str(tiny_project)!r}); "
            "evaluate(p, ['a gripping film', 'dull and long', 'superb', 'tired plot'] * 60, [1, 0, 1, 0] * 60, "
            "'golden', True, 512, show=True)")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SW}, capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert b"\r" not in r.stderr and b"fp32 reference: 240/240" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) <= 2 * (2 + 10), r.stderr


# ---- the torch ratio -----------------------------------------------------------------------------------------

def test_torch_ratio_is_labelled_and_omitted_when_busy():
    from padless.baseline import busy_reason
    from padless.main_job import torch_ratio_line
    quiet = {"sentences_per_s": 180.0, "batch_size": 32, "threads": 2, "cpus": 2, "load_average": 0.4,
             "rounds": [{"sentences_per_s": r, "load_average": 0.4} for r in (175.0, 180.0, 186.0)]}
    assert busy_reason(quiet) is None
    line = torch_ratio_line(360_000.0, {**quiet, "busy": None})
    assert "median of 3 rounds" in line and "load average <= 0.4 on 2 CPUs" in line and "2,000x" in line
    busy = {**quiet, "load_average": 5.1}
    assert busy_reason(busy) == "load average 5.1 on 2 CPUs"
    line = torch_ratio_line(360_000.0, {**busy, "busy": busy_reason(busy)})
    assert "ratio omitted" in line and "x" not in line.split("omitted")[1].replace("busy", "")
    noisy = {**quiet, "rounds": [{"sentences_per_s": 26.0}, {"sentences_per_s": 186.0}]}
    assert "rounds 26-186" in busy_reason(noisy)


def test_torch_meter_rounds(path_project):
    """Real rounds of torch fp32 on a transformers folder (the random BertModel of the path project)."""
    from padless.baseline import TorchFp32Meter
    _, model = path_project
    meter = TorchFp32Meter(str(model), ["a gripping film", "dull and far too long", "superb cast"] * 4, batch_size=4)
    for _ in range(3):
        r = meter.round()
        assert r["sentences_per_s"] > 0
    res = meter.result()
    assert len(res["rounds"]) == 3 and res["sentences"] == 36 and res["measured"] is True
    assert res["sentences_per_s"] == sorted(x["sentences_per_s"] for x in res["rounds"])[1]
    assert "busy" in res and res["cpus"] >= 1
