"""The pynq backend through the real pynq package on the simulated device (padless.runtime.simdevice)."""
from __future__ import annotations

import shutil
import sys
import time

import numpy as np
import pytest

pytest.importorskip("pynq")

from padless.errors import DeviceError, InputError, ProjectError, ToolMissingError  # noqa: E402
from padless.project import load_project  # noqa: E402
from padless.runtime import simdevice  # noqa: E402
from padless.runtime.backends.golden import GoldenBackend  # noqa: E402
from padless.runtime.backends.pynq import (PynqBackend, kernel_interface,  # noqa: E402
                                           parse_signature, s_axilite_offsets)
from padless.runtime.host import run_hidden  # noqa: E402


@pytest.fixture(scope="module")
def project(tiny_project):
    return load_project(tiny_project)


@pytest.fixture(scope="module")
def device():
    return simdevice.enable()


@pytest.fixture(scope="module")
def texts(movie_texts):
    return list(movie_texts.texts[:48])


def test_vitis_hls_register_layout():
    # UG1399 / the Vitis vadd example: pointers take 12 bytes, 32-bit scalars 8, from 0x10.
    args, ret = parse_signature("void vadd(const unsigned int *in1, const unsigned int *in2, unsigned int *out_r, int size) {}", "vadd")
    assert ret == "void"
    s_axilite_offsets(args)
    assert [(a.name, a.offset) for a in args] == [("in1", 0x10), ("in2", 0x1C), ("out_r", 0x28), ("size", 0x34)]
    # a returned status occupies ap_return at 0x10; arguments move to 0x18
    args, ret = parse_signature("typedef int8_t act_t;\nextern \"C\" int k(const act_t *x, act_t *y, int n) {", "k")
    s_axilite_offsets(args, has_return=True)
    assert ret == "int32_t" or ret == "int"
    assert [(a.name, a.offset, a.dtype) for a in args] == [("x", 0x18, np.int8), ("y", 0x24, np.int8), ("n", 0x30, np.int32)]


def test_interface_read_from_generated_kernel(project):
    iface = kernel_interface(project)
    assert iface.source.startswith("hls/"), "the signature must come from the generated HLS source"
    assert iface.vlnv == f"xilinx.com:hls:{iface.name}:1.0"
    src = (project.path / iface.source).read_text()
    for a in iface.args:
        assert a.name in src
    offs = [a.offset for a in iface.args]
    assert offs == sorted(offs) and offs[0] >= 0x10 and len(set(offs)) == len(offs)
    assert {"act_rd", "act_res", "act_wr", "desc", "weights", "num_seqs", "num_tokens", "mode"} <= set(iface.roles)
    assert iface.ap_return is not None and 5 in iface.errors  # the kernel's status codes, read from its source


def test_sim_pynq_equals_golden_on_real_sentences(project, device, texts):
    ids = project.tokenize(texts, truncate=True)
    before = device.live_buffers
    b = PynqBackend(project, device=device)
    try:
        assert "simulated" in b.binding
        got = run_hidden(project, b, ids, max_tokens=160)
    finally:
        b.close()
    assert device.live_buffers == before, "close() must free every device buffer"
    want = run_hidden(project, GoldenBackend(project), ids, max_tokens=160)
    assert len(got) == len(ids)
    for g, w, i in zip(got, want, ids):
        assert g.shape == (len(i), project.model["hidden_size"]) and g.dtype == np.int8
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("max_tokens", [1, 37, 100000])
def test_results_in_input_order_under_any_packing(project, device, texts, max_tokens):
    ids = project.tokenize(texts[:16], truncate=True)
    rng = np.random.default_rng(max_tokens)
    order = rng.permutation(len(ids))
    shuffled = [ids[i] for i in order]
    golden = GoldenBackend(project)
    with _closing(PynqBackend(project, device=device)) as b:
        got = run_hidden(project, b, shuffled, max_tokens=max_tokens)
    for k, i in enumerate(order):  # each result is that sequence alone through golden
        alone = golden.run(*_one(project, ids[i]))
        np.testing.assert_array_equal(got[k], alone)


def _one(project, ids):
    from padless.golden import quantize_input
    from padless.reference import embed
    x = quantize_input(embed(project.host, ids), np.asarray(project.quantized.input_scale))
    return x, np.array([0, len(x)], dtype=np.int64)


class _closing:
    def __init__(self, b):
        self.b = b

    def __enter__(self):
        return self.b

    def __exit__(self, *exc):
        self.b.close()


def test_kernel_that_never_finishes_times_out(project, device):
    iface = kernel_interface(project)
    base = device.attach(project, iface, hang=True)
    from padless.runtime.backends.pynq import ip_description, kernel_driver
    ip = kernel_driver(iface.vlnv)(ip_description(iface, base, device))
    ip.set_args({a.name: 0 for a in iface.args}, iface)
    ip.start_hs()
    t0 = time.perf_counter()
    with pytest.raises(DeviceError) as err:
        ip.wait_done(timeout_s=0.3)
    assert time.perf_counter() - t0 < 3.0
    msg = str(err.value)
    assert iface.name in msg and "0x01" in msg and "AP_DONE=0" in msg
    with pytest.raises(DeviceError, match="busy"):  # still running: a second start is refused
        ip.start_hs()


def test_backend_timeout_frees_buffers(project, device, texts, monkeypatch):
    b = PynqBackend(project, device=device, timeout_s=0.2)
    monkeypatch.setattr(device._windows[b.ip.mmio.base_addr], "hang", True)
    x, off = _one(project, project.tokenize(texts[:1])[0])
    with pytest.raises(DeviceError, match=kernel_interface(project).name):
        b.run(x, off)
    b.close()
    b.close()  # idempotent


def test_batch_that_does_not_match_the_project(project, device, texts):
    x, off = _one(project, project.tokenize(texts[:1])[0])
    with _closing(PynqBackend(project, device=device)) as b:
        with pytest.raises(InputError, match=r"\(tokens, %d\) int8" % project.model["hidden_size"]):
            b.run(np.zeros((4, project.model["hidden_size"] + 1), np.int8), np.array([0, 4]))
        with pytest.raises(InputError, match="int8"):
            b.run(x.astype(np.int16), off)
        with pytest.raises(InputError, match="offsets"):
            b.run(x, np.array([0, len(x) + 1]))
        limit = project.manifest["hls"]["max_tokens"]
        big = np.zeros((limit + 1, project.model["hidden_size"]), np.int8)
        with pytest.raises(InputError, match="max_tokens"):
            b.run(big, np.arange(0, limit + 2, 1, dtype=np.int64)[[0, -1]])


def test_project_that_does_not_match(project, device, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(project.path, bad)
    src = bad / "hls" / "padless_encoder.cpp"
    src.write_text(src.read_text().replace("desc", "descs"))
    from padless.project import update_manifest
    update_manifest(bad, {}, {"hls_kernel": "hls/padless_encoder.cpp"})  # a consistent but different kernel
    with pytest.raises(ProjectError, match="desc"):
        kernel_interface(load_project(bad))
    # a board project with no bitstream in deploy/ -> says how to build one
    from padless.runtime.backends.pynq import _bitstream_files
    with pytest.raises(ProjectError, match="padless bitstream"):
        _bitstream_files(project, kernel_interface(project))


def test_buffers_bound_to_their_ports_memory(project, device, texts):
    """Each host buffer is allocated in the memory bitstream/connectivity.cfg connects its ports to, and the
    simulated device refuses (as XRT does) a buffer in another bank."""
    from padless.codegen.bitstream import buffer_memories
    mems = buffer_memories(project)
    assert mems == {"act": "HBM[0]", "desc": "HBM[1]", "weights": "HBM[2]"}  # tiny_project is a u280 project
    ids = project.tokenize(texts[:4], truncate=True)
    with _closing(PynqBackend(project, device=device)) as b:
        run_hidden(project, b, ids, max_tokens=64)
        assert device.bank_of(b._bufs["act"].device_address) == "HBM[0]"
        assert device.bank_of(b._bufs["desc"].device_address) == "HBM[1]"
        assert device.bank_of(b.weights.device_address) == "HBM[2]"
        wrong = device.memory("HBM[1]").allocate(b._bufs["act"].shape, np.int8)
        b._bufs["act"] = wrong  # the activation buffer in the descriptors' bank
        with pytest.raises(DeviceError, match="act_rd.*HBM\\[1\\].*connected to HBM\\[0\\]"):
            run_hidden(project, b, ids, max_tokens=64)


def test_device_memory_is_separate_until_synced(device):
    buf = device.allocate((16,), np.int8)
    buf[:] = 7
    assert device._region(buf.device_address, 16).sum() == 0  # not yet synced
    buf.sync_to_device()
    assert (device._region(buf.device_address, 16) == 7).all()
    device._region(buf.device_address, 16)[:] = 3
    buf.sync_from_device()
    assert (buf == 3).all()
    n = device.live_buffers
    buf.freebuffer()
    assert device.live_buffers == n - 1
    with pytest.raises(DeviceError, match="outside every allocated buffer"):
        device._region(buf.device_address, 16)


def test_pynq_missing_names_csim(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)  # import pynq -> ImportError
    from padless.runtime.backends.pynq import _import_pynq
    with pytest.raises(ToolMissingError, match="csim"):
        _import_pynq()
    from padless.runtime.backends import get_backend
    with pytest.raises(ToolMissingError, match="--backend csim"):
        get_backend("pynq", project)


def test_sim_device_only_when_enabled(monkeypatch):
    monkeypatch.delenv(simdevice.ENV, raising=False)
    assert simdevice.SimDevice._probe_() == []
    monkeypatch.setenv(simdevice.ENV, "1")
    assert [d.tag for d in simdevice.SimDevice._probe_()] == ["padless_sim0"]
