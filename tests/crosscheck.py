"""Cross-backend checks shared by the quantization-knob tests: a compiled project's csim (either form) and
its exported ONNX core give the golden model's int8 outputs, bit for bit, on real sentences."""
from __future__ import annotations

import numpy as np
import pytest

from padless.golden import quantize_input, run_encoder
from padless.reference import embed


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


def assert_onnx_core_equals_golden(project, ids, onnx_path) -> None:
    """The exported integer core (``export --onnx``, ``core_only``) under onnxruntime: the golden output of
    every sequence."""
    ort = pytest.importorskip("onnxruntime")
    from padless.export_onnx import export_onnx
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(export_onnx(project.path, onnx_path, core_only=True)), opts,
                                providers=["CPUExecutionProvider"])
    qe = project.quantized
    for s in ids:
        x = quantize_input(embed(project.host, s), np.asarray(qe.input_scale))
        assert np.array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], run_encoder(qe, x, np.array([0, len(x)])))
