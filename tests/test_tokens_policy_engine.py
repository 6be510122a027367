"""The learned TR-BERT token policy in the HLS engine (issue 26, item 1): the kernel runs the integer policy
MLP on every row before a selection point (tokens.h tr_policy), keeps the rows golden keeps (data-dependent
counts, [CLS] always), and the following layers run the counts the writer left in the activation buffer's
fourth region. golden = csim (fast and synthesizable forms) = pynq-sim, bit for bit, on real sentences (VADER
movie, Reuters) with sequences of length 1, of the compiled maximum and reduced to [CLS] alone; the timed
csim's cycles against the cycle model on golden's per-stage counts.

The 4-layer random BERT of tests/test_tokens_engine.py (MiniLM WordPiece tokenizer) with a policy of two
points (before layers 1 and 3) quantized and calibrated on real text (keep 0.6)."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from padless.build import compile_project
from padless.codegen.hls import generate
from padless.data.datasets import load_dataset
from padless.errors import InputError, ProjectError
from padless.golden import run_encoder
from padless.project import load_project
from padless.runtime.backends.csim import CsimBackend
from padless.schedule.engine import EngineConfig, policy_pe
from padless.sparse.tokens import kernel_tables
from crosscheck import assert_pynq_sim_equals_golden, input_rows, pack_rows
from test_tokens_engine import bert4  # noqa: F401  (the module fixture)

LAYERS = [1, 3]


def _install(project_dir, qp, keep=0.6):
    from padless.sparse.policy import install_policy
    install_policy(project_dir, qp, keep)
    p = load_project(project_dir)
    generate(p, p.board)
    return load_project(project_dir)


@pytest.fixture(scope="module")
def movie():
    return load_dataset("vader-movie", limit=120).texts


@pytest.fixture(scope="module")
def pol_project(bert4, movie, tmp_path_factory):  # noqa: F811
    import torch
    from padless.sparse.policy import TokenPolicy, quantize_policy
    out = tmp_path_factory.mktemp("pol") / "proj"
    compile_project(str(bert4), board="u280", out=out, calib_count=32, config={"quant": {"rounding": "nearest"}})
    p = load_project(out)
    torch.manual_seed(5)
    xs = input_rows(p, p.tokenize(movie[60:100], truncate=True))
    qp = quantize_policy(TokenPolicy(p.model["hidden_size"], LAYERS), p.quantized, xs, keep=0.6)
    return _install(out, qp), qp


def _csim(project, x, off, form="fast", **sim):
    b = CsimBackend(project, form=form, sim=sim or None)
    try:
        return b.run(x, off), b.reports
    finally:
        b.close()


def test_kernel_tables_and_config(pol_project):
    p, qp = pol_project
    t = kernel_tables(p.quantized, p.sparsity["tokens"], 64)
    assert t["method"] == "policy" and t["layers"] == LAYERS and t["stages"] == 3 and t["last"] == 0
    assert t["stage"] == [0, 1, 1, 2] and "len" not in t
    assert np.array_equal(t["policy"]["w1"][1], qp.points[3].w1) and t["policy"]["sc"][0][5] == qp.points[1].threshold
    cfg = (p.path / "hls" / "config.h").read_text()
    assert "#define PADLESS_TR_POLICY 1" in cfg and "#define PADLESS_ACT_REGIONS 4" in cfg
    assert f"#define PADLESS_TR_POL_PE {policy_pe(EngineConfig.from_dict(p.manifest['hls']['engine']))}" in cfg
    assert p.manifest["hls"]["act_regions"] == 4 and p.manifest["hls"]["out_region"] == 2
    assert p.manifest["hls"]["engine"]["tokens"] == {"layers": LAYERS, "keep": 0.6, "method": "policy"}
    # a policy configured without its trained points is refused with what to run
    bare = dataclasses.replace(p.quantized)
    bare.token_policy = None
    with pytest.raises(ProjectError, match="train-policy"):
        kernel_tables(bare, p.sparsity["tokens"], 64)
    with pytest.raises(ProjectError, match="no selection point for layer"):
        kernel_tables(p.quantized, {"layers": [2], "keep": 0.6, "method": "policy"}, 64)
    with pytest.raises(InputError, match="outside"):
        kernel_tables(p.quantized, {"layers": [4], "keep": 0.6, "method": "policy"}, 64)
    # a policy.npz whose constants do not fit the kernel's arrays never reaches config.h
    from padless.sparse.policy import QuantPolicy
    for field, bad in (("b1", np.full(32, 1 << 40)), ("shift1", np.full(32, 70)), ("threshold", 1 << 33),
                       ("gelu_slope", np.zeros(3, np.int64))):
        hostile = dataclasses.replace(p.quantized)
        hostile.token_policy = QuantPolicy(points={**qp.points, 1: dataclasses.replace(qp.points[1], **{field: bad})})
        with pytest.raises(ProjectError, match="retrain it"):
            kernel_tables(hostile, p.sparsity["tokens"], 64)


def test_csim_equals_golden_on_real_sentences(pol_project, movie):
    """Real VADER snippets, two Reuters articles, a length-1 sequence and one of the compiled maximum, in one
    pack: the policy keeps a data-dependent share of each sequence, and the kernel the same rows."""
    p, _ = pol_project
    ids = p.tokenize(movie[:40] + load_dataset("reuters", limit=2).texts, truncate=True)
    rows = input_rows(p, ids)
    rows.append(rows[0][:1])                                          # length 1
    rows.append(np.concatenate(rows)[: p.manifest["hls"]["max_seq"]])  # the compiled maximum
    x, off = pack_rows(rows)
    lens = []
    want = run_encoder(p.quantized, x, off, p.sparsity, lengths_out=lens)
    st = lens[0]
    assert st.shape == (len(rows), 3) and (st[:, 0] == np.diff(off)).all()
    assert (st[:, 1] <= st[:, 0]).all() and (st[:, 2] <= st[:, 1]).all() and (st >= 1).all()
    assert 0.2 < st[:, 2].sum() / st[:, 0].sum() < 0.8, "the calibrated policy removes part of the rows"
    assert len(set((st[:, 1] / st[:, 0]).round(3))) > 3, "kept shares differ per sequence (data dependent)"
    dense = run_encoder(p.quantized, x, off, {**p.sparsity, "tokens": {}})
    assert (want != dense).any(axis=1).mean() > 0.5, "token reduction must change the output"
    got, _ = _csim(p, x, off)
    np.testing.assert_array_equal(got, want)


def test_synth_form_and_deadlock_check(pol_project, movie):
    """The synthesizable form (exact widths) under the threaded run at the declared FIFO depths, with the
    port checker on: same bits, no deadlock, no port violation."""
    p, _ = pol_project
    x, off = pack_rows(input_rows(p, p.tokenize(movie[:16], truncate=True)))
    got, reports = _csim(p, x, off, form="synth", exact_depth=True, ports=True)
    np.testing.assert_array_equal(got, run_encoder(p.quantized, x, off, p.sparsity))
    assert reports and all(r["port_violations"] == 0 and not r.get("deadlock") for r in reports)


def test_reduced_to_cls_alone(pol_project, movie, tmp_path):
    """A threshold no logit reaches at the first point: every sequence runs layers 1-3 as [CLS] alone, and the
    second point (before layer 3) sees one row a sequence."""
    p, qp = pol_project
    d = tmp_path / "cls"
    shutil.copytree(p.path, d)
    pts = {k: dataclasses.replace(v) for k, v in qp.points.items()}
    pts[1].threshold = (1 << 31) - 1
    from padless.sparse.policy import QuantPolicy
    pc = _install(d, QuantPolicy(points=pts, record=qp.record))
    x, off = pack_rows(input_rows(pc, pc.tokenize(movie[:12], truncate=True)))
    lens = []
    want = run_encoder(pc.quantized, x, off, pc.sparsity, lengths_out=lens)
    assert (lens[0][:, 1:] == 1).all()
    got, _ = _csim(pc, x, off)
    np.testing.assert_array_equal(got, want)


def test_pynq_sim_equals_golden(pol_project, movie):
    p, _ = pol_project
    assert_pynq_sim_equals_golden(p, p.tokenize(movie[:40], truncate=True))


def test_timed_csim_cycles_vs_model(pol_project, movie):
    """The cycle model on golden's per-stage counts (``stage_lengths``) predicts the timed C-simulation of one
    call within 2% (real movie + Reuters lengths, board memory model); on the expected kept fraction (what
    the DSE plans with) it stays within 10%."""
    from padless.schedule.cost import call_cycles
    p, _ = pol_project
    ids = p.tokenize(movie[:30] + load_dataset("reuters", limit=3).texts, truncate=True)
    x, off = pack_rows(input_rows(p, ids))
    lens = []
    want = run_encoder(p.quantized, x, off, p.sparsity, lengths_out=lens)
    b = CsimBackend(p, sim=dict(timed=True, exact_depth=True, compute=True))
    b.order = lambda l: np.arange(len(l))
    try:
        got = b.run(x, off)
        sim = int(b.reports[-1]["cycles"])
    finally:
        b.close()
    np.testing.assert_array_equal(got, want)
    cfg = EngineConfig.from_dict(p.manifest["hls"]["engine"])
    exact = call_cycles(cfg, np.diff(off), stage_lengths=lens[0]).cycles
    assert abs(exact / sim - 1) <= 0.02, (exact, sim)
    assert abs(call_cycles(cfg, np.diff(off)).cycles / sim - 1) <= 0.10
    with pytest.raises(InputError, match="stage"):
        call_cycles(cfg, np.diff(off), stage_lengths=lens[0][:, :2])


def test_profile_counts_the_kept_rows_of_the_text(pol_project, movie):
    """`padless profile` on real sentences: the model on golden's counts of those sentences agrees with the
    simulation; lengths alone (no text to decide on) and the padded baselines are refused / skipped."""
    from padless.runtime.profile import profile
    p, _ = pol_project
    ids = p.tokenize(movie[:24], truncate=True)
    r = profile(p, sequences=ids)
    assert abs(r["model_error"]) <= 0.02 and "expected_keep" in r["model"]
    st = r["model"]["stage_rows"]   # golden's surviving rows per stage, the input's first
    assert len(st) == 3 and st[0] == r["tokens"] and st[0] >= st[1] >= st[2] >= len(ids)
    assert "baselines_note" in r and "padded_max" not in r
    with pytest.raises(InputError, match="depend on the text"):
        profile(p, lengths=[len(i) for i in ids])


def test_dse_plans_for_the_expected_fraction(pol_project):
    """The DSE plans the policy engine for its calibrated kept fraction: fewer modeled cycles than the same
    policy expected to keep every row. (On this 64-wide model the policy's per-row pipeline depths cost more
    than the rows it removes save; on minilm-l6 they are a few percent of a row: docs/benchmarks.md.)"""
    from padless.schedule.dse import plan
    p, _ = pol_project
    lens = [len(i) for i in p.tokenize(load_dataset("vader-movie", limit=100).texts, truncate=True)]
    pol = plan(p.model, "u280", p.sparsity, lengths=lens)
    full = plan(p.model, "u280", {**p.sparsity, "tokens": {**p.sparsity["tokens"], "keep": 1.0}}, lengths=lens)
    assert pol["engine"]["tokens"] == {"layers": LAYERS, "keep": 0.6, "method": "policy"}
    assert pol["estimate"]["cycles_per_sequence"] < 0.9 * full["estimate"]["cycles_per_sequence"]


def test_train_policy_command_regenerates_the_kernel(bert4, pol_project, movie, tmp_path):  # noqa: F811
    """`padless train-policy` on a compiled project (a few steps) leaves a project whose kernel runs the new
    policy: the csim backend accepts it and equals golden."""
    from padless.cli import main
    p, _ = pol_project
    d = tmp_path / "tp"
    shutil.copytree(p.path, d)
    assert main(["train-policy", str(d), "--model", str(bert4), "--layers", "2", "--keep", "0.5",
                 "--imitation-steps", "2", "--rl-steps", "1", "--calib", "8", "--quiet"]) == 0
    q = load_project(d)
    assert q.sparsity["tokens"] == {"layers": [2], "keep": 0.5, "method": "policy"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tp"]   # edited in a staging copy, swapped in
    assert "PADLESS_TR_POL_W1" in (d / "hls" / "config.h").read_text()
    x, off = pack_rows(input_rows(q, q.tokenize(movie[:10], truncate=True)))
    got, _ = _csim(q, x, off)
    np.testing.assert_array_equal(got, run_encoder(q.quantized, x, off, q.sparsity))
