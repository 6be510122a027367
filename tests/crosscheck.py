"""Cross-backend checks shared by the quantization-knob tests: a compiled project's csim (either form) and
its exported ONNX core give the golden model's int8 outputs, bit for bit, on real sentences."""
from __future__ import annotations

import numpy as np
import pytest

from padless.golden import quantize_input, run_encoder
from padless.reference import embed


def input_rows(project, ids) -> list:
    """Each sequence's int8 input rows ``(tokens, hidden)``: the host's embedding, quantized at the project's
    input scale (what the host hands the kernel)."""
    scale = np.asarray(project.quantized.input_scale)
    return [quantize_input(embed(project.host, i), scale) for i in ids]


def pack_rows(rows) -> tuple:
    """Sequences' rows packed back to back, no padding: ``(tokens, hidden) int8`` and the offsets
    ``(sequences + 1,) int64``."""
    x = np.concatenate(rows).astype(np.int8)
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return x, off


def streamed_copy(project_dir, dest, board: str):
    """A copy of the project at ``dest`` whose plan streams the weights (one layer on chip, loaded before each
    layer's region, so the loader runs inside the timed call), the kernel regenerated; returns it loaded."""
    import shutil

    from padless.codegen.hls import generate
    from padless.project import load_project, update_manifest
    shutil.copytree(project_dir, dest)
    p = load_project(dest)
    sched = dict(p.manifest.get("schedule") or {})
    sched["allocation"] = {**(sched.get("allocation") or {}), "resident": False}
    update_manifest(dest, {"schedule": sched})
    generate(load_project(dest), board)
    p = load_project(dest)
    assert p.manifest["hls"]["engine"]["resident"] is False
    return p


def assert_csim_equals_golden(project, ids, cache, form: str) -> None:
    """``run_hidden`` through the golden backend and through ``CsimBackend(form=form)``: equal arrays."""
    from padless.runtime.backends import get_backend
    from padless.runtime.backends.csim import CsimBackend
    from padless.runtime.host import run_hidden
    golden = run_hidden(project, get_backend("golden", project), ids, max_tokens=2048)
    backend = CsimBackend(project, cache=cache, form=form)
    try:
        csim = run_hidden(project, backend, ids, max_tokens=2048)
    finally:
        backend.close()
    assert len(csim) == len(golden) == len(ids)
    for g, c in zip(golden, csim):
        assert g.dtype == c.dtype == np.int8
        np.testing.assert_array_equal(c, g)


def assert_pynq_sim_equals_golden(project, ids, max_tokens: int = 200) -> None:
    """``run_hidden`` through the pynq backend on the simulated device (the kernel's csim behind pynq's API,
    padless.runtime.simdevice) and through golden, in packs of at most ``max_tokens`` rows: equal arrays."""
    pytest.importorskip("pynq")
    from padless.runtime import simdevice
    from padless.runtime.backends.golden import GoldenBackend
    from padless.runtime.backends.pynq import PynqBackend
    from padless.runtime.host import run_hidden
    b = PynqBackend(project, device=simdevice.enable())
    try:
        got = run_hidden(project, b, ids, max_tokens=max_tokens)
    finally:
        b.close()
    want = run_hidden(project, GoldenBackend(project), ids, max_tokens=max_tokens)
    assert len(got) == len(want) == len(ids)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def assert_onnx_core_equals_golden(project, ids, onnx_path) -> None:
    """The exported integer core (``export --onnx``, ``core_only``) under onnxruntime: the golden output of
    every sequence, with the project's sparsity (top-k attention, token reduction) as golden runs it."""
    ort = pytest.importorskip("onnxruntime")
    from padless.export_onnx import export_onnx
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(export_onnx(project.path, onnx_path, core_only=True)), opts,
                                providers=["CPUExecutionProvider"])
    qe = project.quantized
    for s in ids:
        x = quantize_input(embed(project.host, s), np.asarray(qe.input_scale))
        assert np.array_equal(sess.run(None, {"hidden_in": x[None]})[0][0],
                              run_encoder(qe, x, np.array([0, len(x)]), project.sparsity))
