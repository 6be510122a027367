"""The csim backend (g++ build of the generated HLS C++, ctypes) equals the golden model bit for bit on
real sentences: dense attention, top-k attention (fixed k and density), bank-balanced sparse weights."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from padless.build import compile_project
from padless.codegen.hls import generate
from padless.data.datasets import load_dataset
from padless.errors import InputError, ProjectError, ToolMissingError
from padless.project import load_project, update_manifest
from padless.runtime.backends import get_backend
from padless.runtime.backends.csim import CsimBackend

from crosscheck import assert_csim_equals_golden


@pytest.fixture(scope="session")
def csim_cache(tmp_path_factory, monkeypatch_session=None):
    return tmp_path_factory.mktemp("csim-cache")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "proj"
    compile_project("tiny", board="u280", out=out)
    return out


@pytest.fixture(scope="session")
def sentences():
    movie = load_dataset("vader-movie", limit=160).texts
    long = load_dataset("reuters", limit=40).texts
    return movie + long


def _variant(base, tmp_path, attention):
    d = tmp_path / "proj"
    shutil.copytree(base, d)
    update_manifest(d, {"sparsity": {**load_project(d).sparsity, "attention": attention}})
    p = load_project(d)
    generate(p, p.board)
    return load_project(d)


def _compare(project, texts, cache, form="fast"):
    assert_csim_equals_golden(project, project.tokenize(texts, truncate=True), cache, form)


def test_dense_equals_golden(tiny_dir, sentences, csim_cache):
    _compare(load_project(tiny_dir), sentences, csim_cache)


@pytest.mark.parametrize("attention", [{"topk": 8}, {"density": 0.25, "min_k": 4}], ids=["topk8", "density"])
def test_topk_equals_golden(tiny_dir, sentences, csim_cache, tmp_path, attention):
    _compare(_variant(tiny_dir, tmp_path, attention), sentences, csim_cache)


@pytest.mark.parametrize("sparsity,form", [(0.5, "fast"), (0.25, "synth")], ids=["50pct-fast", "25pct-synth"])
def test_sparse_weights_equal_golden(tmp_path, sentences, csim_cache, sparsity, form):
    """Bank-balanced weights; at 25% a bank of 16 keeps 12, so a sparse weight word is 24 x NBPC bytes,
    which no m_axi beat divides: the synthesizable loader's carry buffer assembles them."""
    out = tmp_path / "sp"
    compile_project("tiny", board="kv260", out=out,
                    config={"weights": {"sparsity": sparsity, "bank": 16}, "attention": {"topk": 8}})
    p = load_project(out)
    assert p.manifest["hls"]["weights_layout"]["bank"] == 16
    assert p.manifest["hls"]["engine"]["p_max"] == (8 if sparsity == 0.5 else 12)
    _compare(p, sentences[:60] + sentences[-5:], csim_cache, form)


def test_ibert_gelu_equals_golden(tmp_path, sentences, csim_cache):
    """The I-BERT i-GELU path (quant: {gelu: ibert}) is bit-exact too, not only the default PWL GELU."""
    out = tmp_path / "ibert"
    compile_project("tiny", board="u280", out=out, config={"quant": {"gelu": "ibert"}})
    p = load_project(out)
    assert p.manifest["quant"]["gelu"] == "ibert" and p.quantized.layers[0].act == "gelu"
    # the kernel builds the i-GELU alone (config.h PADLESS_ACT_KIND 1), the default project the PWL alone
    assert "#define PADLESS_ACT_KIND 1\n" in (out / "hls" / "config.h").read_text()
    _compare(p, sentences[:60], csim_cache)


def test_relu_model_equals_golden(tmp_path, tiny_dir, sentences, csim_cache):
    """A ReLU encoder (a user's transformers folder with hidden_act relu): the kernel builds the ReLU alone
    (PADLESS_ACT_KIND 0) and stays bit-exact; a project whose quantized layers disagree with the planned
    activation is refused at code generation."""
    from probes import make_bert_folder
    assert "#define PADLESS_ACT_KIND 2\n" in (tiny_dir / "hls" / "config.h").read_text()
    folder = make_bert_folder(tmp_path / "relu", act="relu")
    out = tmp_path / "prj"
    compile_project(str(folder), board="kv260", out=out, calib_count=16, config={"quant": {"rounding": "nearest"}})
    p = load_project(out)
    assert p.quantized.layers[0].act == "relu" and p.manifest["hls"]["engine"]["act_kind"] == "relu"
    assert "#define PADLESS_ACT_KIND 0\n" in (out / "hls" / "config.h").read_text()
    _compare(p, sentences[:40], csim_cache)
    before = (out / "hls" / "config.h").read_bytes()
    p.quantized.layers[0].act = "gelu-pwl"
    with pytest.raises(ProjectError, match="FFN activation"):
        generate(p, "kv260")
    assert (out / "hls" / "config.h").read_bytes() == before   # refused before anything is written


def test_pack_split_and_limits(tiny_dir, csim_cache):
    """Packs beyond the compiled max_tokens are split; a sequence beyond max_seq is refused clearly."""
    p = load_project(tiny_dir)
    b = CsimBackend(p, cache=csim_cache)
    H, max_seq = p.model["hidden_size"], p.manifest["hls"]["max_seq"]
    rng = np.random.default_rng(1)
    lens = [max_seq] * 20 + [1, 1, 3]  # the compiled maximum and length 1; 2563 tokens > max_tokens 2048
    x = rng.integers(-127, 128, (sum(lens), H)).astype(np.int8)
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    np.testing.assert_array_equal(b.run(x, off), get_backend("golden", p).run(x, off))
    with pytest.raises(InputError, match="exceeds the compiled maximum"):
        b.run(np.zeros((max_seq + 1, H), np.int8), np.array([0, max_seq + 1]))


def test_stale_hls_code_is_refused(tiny_dir, tmp_path, csim_cache):
    d = tmp_path / "stale"
    shutil.copytree(tiny_dir, d)
    update_manifest(d, {"sparsity": {**load_project(d).sparsity, "attention": {"topk": 4}}})
    from padless.errors import ProjectError
    with pytest.raises(ProjectError, match="regenerate"):
        CsimBackend(load_project(d), cache=csim_cache)


def test_missing_compiler_is_a_clear_error(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(ToolMissingError, match="compiler"):
        CsimBackend(load_project(tiny_dir), cache=tmp_path)


def test_missing_ap_types_is_a_clear_error(tiny_dir, tmp_path, monkeypatch):
    import padless.csim as csim
    monkeypatch.delenv("XILINX_HLS", raising=False)
    monkeypatch.setattr(csim, "ap_types_dir", lambda: (_ for _ in ()).throw(
        ToolMissingError("the Xilinx ap_types headers (ap_int.h, hls_stream.h) were not found")))
    with pytest.raises(ToolMissingError, match="ap_types"):
        csim.build_library(tiny_dir / "hls", cache=tmp_path)


@pytest.mark.slow
def test_minilm_equals_golden(tmp_path_factory, csim_cache):
    out = tmp_path_factory.mktemp("minilm") / "proj"
    compile_project("minilm-l6", board="u280", out=out, calib_count=64,
                    config={"quant": {"gptq_calibration": None}})  # the recipe's GPTQ on the 64 (speed)
    texts = load_dataset("vader-movie", limit=120).texts + load_dataset("fortunes", limit=80).texts
    _compare(load_project(out), texts, csim_cache)
