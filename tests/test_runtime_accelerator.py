"""padless.runtime.Accelerator over golden / csim / pynq (simulated device), and the main job on tiny."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from padless.errors import InputError
from padless.runtime import Accelerator


@pytest.fixture(scope="module")
def texts(movie_texts):
    return list(movie_texts.texts[:24])


def test_encode_same_on_every_backend_in_input_order(tiny_project, texts):
    with Accelerator(tiny_project, backend="golden") as acc:
        ref = acc.encode(texts, batch_size=7)
        one_by_one = np.stack([acc.encode([t])[0] for t in texts[:5]])
        assert ref.shape == (len(texts), acc.hidden_size) and ref.dtype == np.float32
        np.testing.assert_array_equal(ref[:5], one_by_one)  # packing never changes a sentence's result
        np.testing.assert_allclose(np.linalg.norm(acc.encode(texts[:3], normalize_embeddings=True), axis=1), 1, atol=1e-5)
    pytest.importorskip("pynq")
    from padless.runtime import simdevice
    simdevice.enable()
    with Accelerator(tiny_project) as acc:  # auto: the (simulated) pynq device is found
        assert acc.backend_name == "pynq"
        np.testing.assert_array_equal(acc.encode(texts, batch_size=5), ref)
        hidden = acc.run(acc.tokenize(texts[:3]))
        assert [h.shape[0] for h in hidden] == [len(i) for i in acc.tokenize(texts[:3])]
        assert all(h.dtype == np.int8 for h in hidden)
    assert acc.backend is None  # closed


def test_auto_without_device_uses_csim_or_golden(tiny_project, monkeypatch, texts):
    from padless.runtime import accelerator
    monkeypatch.setattr("padless.runtime.simdevice.find_device", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = Accelerator(tiny_project)
    with acc:
        assert acc.backend_name in ("csim", "golden")
        assert accelerator.pick_backend(acc.project)[0] == acc.backend_name


def test_bad_input(tiny_project):
    with Accelerator(tiny_project, backend="golden") as acc:
        with pytest.raises(InputError):
            acc.encode(["fine", "   "])
        with pytest.raises(InputError):
            acc.encode(["x"], batch_size=0)
        assert acc.encode([]).shape == (0, acc.hidden_size)
    with pytest.raises(InputError, match="unknown backend"):
        Accelerator(tiny_project, backend="gpu")


def test_main_job_cli_on_tiny(tmp_path):
    out = tmp_path / "job"
    r = subprocess.run([sys.executable, "-m", "padless.main_job", "--model", "tiny", "--out", str(out),
                        "--limit", "120", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for needle in ("decision agreement", "cosine", "simulated on u280", "cycle-annotated csim", "padded-to-max",
                   "simulated at 150 MHz (II and depths declared, not synthesized)", "upper bound",
                   "modeled (cycle model)", "project folder", "make -C", "bitstream"):
        assert needle in r.stdout, needle
    rep = json.loads((out / "report" / "run.json").read_text())
    assert rep["sentences"] == 120 and rep["backend"] == "pynq" and "simulated" in rep["device"]
    assert 0 <= rep["fidelity"]["agreement"] <= 1 and rep["modeled"]["padless"]["throughput_seq_s"] > 0
    sim = rep["simulated"]
    assert sim["label"].startswith("simulated at") and sim["padless"]["throughput_seq_s"] > 0
    assert sim["clock_MHz"] == 150.0 and sim["upper_bound"]["clock_mhz"] == 300.0 and "AutoBridge" in sim["clock_source"]
    assert sim["speedup_vs"]["padded_max"] >= 1 and abs(sim["model_error"]) <= 0.10
    assert (out / "bitstream.mk").is_file() and (out / "bitstream" / "connectivity.cfg").is_file()
