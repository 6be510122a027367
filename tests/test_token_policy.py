"""The TR-BERT learned token policy: training (tiny, a few steps), integer quantization, golden branch, files."""
import json

import numpy as np
import pytest
import torch

from padless.errors import InputError, ProjectError
from padless.golden import dequantize_output, quantize_input, run_encoder, run_layer
from padless.models import Tokenizer
from padless.project import load_project
from padless.quant.calibrate import calibrate
from padless.quant.quantize import quantize_encoder
from padless.reference import embed
from padless.sparse.config import parse_sparsity
from padless.sparse.policy import (POLICY_FILE, PolicyTrainConfig, install_policy, load_policy,
                                   quantize_policy, save_policy, train_policy)
from padless.sparse.tokens import carry_requant, carry_rows, policy_logits, select_by_logits

SP = {"tokens": {"layers": [1], "keep": 0.7, "method": "policy"}}


@pytest.fixture(scope="module")
def trained(tiny_spec):
    from padless.data.datasets import load_dataset
    tok = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions)
    ids = tok.encode(load_dataset("vader-tweets", limit=300).texts, truncate=True)
    cfg = PolicyTrainConfig(imitation_steps=8, rl_steps=4, batch_size=4, samples=4)
    policy, record = train_policy(tiny_spec, [1], cfg, ids=ids[:200])
    qe = quantize_encoder(tiny_spec, calibrate(tiny_spec, ids[200:248]))
    xs = [quantize_input(embed(tiny_spec, i), qe.input_scale) for i in ids[250:300]]
    qp = quantize_policy(policy, qe, xs, keep=0.7, record=record)
    return policy, qe, qp, xs


def test_config_policy_method():
    assert parse_sparsity(SP)["tokens"] == {"layers": [1], "keep": 0.7, "method": "policy"}
    # keep 1.0: the learned policy still decides (threshold 0); cascade with keep 1.0 is dense.
    assert parse_sparsity({"tokens": {"layers": [2], "keep": 1.0, "method": "policy"}})["tokens"]["method"] == "policy"
    assert parse_sparsity({"tokens": {"layers": [2], "keep": 1.0}})["tokens"] == {}
    n = parse_sparsity(SP)
    assert parse_sparsity(n) == n
    with pytest.raises(InputError, match="method"):
        parse_sparsity({"tokens": {"layers": [1], "keep": 0.5, "method": "learned"}})
    with pytest.raises(InputError, match="first selection point is layer 1"):
        parse_sparsity({"tokens": {"layers": [0], "keep": 0.5, "method": "policy"}})
    with pytest.raises(InputError, match="does not exist"):
        parse_sparsity(SP, num_layers=1)
    with pytest.raises(InputError, match="vader-movie"):
        PolicyTrainConfig(datasets=["vader-movie"]).check()


def test_select_by_logits_edges():
    z = np.array([-9, 5, 5, -1, 0, -3, -3, 7], dtype=np.int64)
    off = np.array([0, 4, 4, 6, 8])  # includes an empty sequence
    m = select_by_logits(z, off, 5)
    # [CLS] rows 0, 4, 6 always; logit == threshold kept; a sequence whose rows all fall below keeps [CLS].
    assert m.tolist() == [True, True, True, False, True, False, True, True]
    assert select_by_logits(np.zeros(0, np.int64), np.array([0]), 0).tolist() == []


def test_training_record_and_float_policy(trained):
    policy, _, qp, _ = trained
    rec = qp.record
    assert len(rec["imitation_bce"]) == 1 and len(rec["reward"]) == 1
    assert 0 < rec["kept"][0] <= 1
    assert qp.layers == [1]
    # The calibrated threshold meets the keep target on the calibration rows (>= keep, ties add a few).
    kept = rec["calibration"]["points"]["1"]["kept"]
    assert 0.7 <= kept < 0.8


def test_integer_policy_matches_float(trained, tiny_spec):
    policy, qe, qp, xs = trained
    pt = qp.points[1]
    h = np.concatenate([run_layer(qe.layers[0], x, np.array([0, len(x)]), qe.model["num_heads"]) for x in xs])
    z_int = policy_logits(pt, h)
    hf = torch.from_numpy(dequantize_output(h, np.asarray(qe.layers[0].scales["out"])))
    with torch.no_grad():
        z_float = policy(1, hf[None])[0].double().numpy()
    # Same decision (threshold in real units) on most rows; integer logits close to the float ones.
    dec_int = z_int >= pt.threshold
    dec_float = z_float >= pt.threshold * pt.logit_scale
    assert (dec_int == dec_float).mean() >= 0.95
    err = np.abs(z_int * pt.logit_scale - z_float)
    assert np.median(err) < 0.05 * np.abs(z_float).max()


def test_golden_cls_order_carry_and_packing(trained):
    _, qe, qp, xs = trained
    sp = parse_sparsity(SP)
    seqs = xs[:12]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in seqs])]).astype(np.int64)
    x = np.concatenate(seqs)
    kept = []
    y = run_encoder(qe, x, offsets, sp, kept_out=kept, policy=qp)
    surv = kept[0]
    assert surv[offsets[:-1]].all(), "[CLS] must always survive"
    assert 0 < surv.mean() < 1
    # Removed rows hold layer 0's output requantized to the output scale; survivors the plain 2-layer
    # run of the kept rows of their sequence (in order).
    m, sh = carry_requant(qe, 1)
    for b, s in enumerate(seqs):
        a, e = offsets[b], offsets[b + 1]
        h0 = run_layer(qe.layers[0], s, np.array([0, len(s)]), qe.model["num_heads"])
        keep = select_by_logits(policy_logits(qp.points[1], h0), np.array([0, len(s)]), qp.points[1].threshold)
        assert np.array_equal(keep, surv[a:e])
        assert np.array_equal(y[a:e][~keep], carry_rows(h0[~keep], m, sh))
        h1 = run_layer(qe.layers[1], h0[keep], np.array([0, int(keep.sum())]), qe.model["num_heads"])
        assert np.array_equal(y[a:e][keep], h1)
        # packing invariance: alone == inside the pack
        assert np.array_equal(run_encoder(qe, s, np.array([0, len(s)]), sp, policy=qp), y[a:e])
    # reversed pack order
    rev = seqs[::-1]
    off_r = np.concatenate([[0], np.cumsum([len(s) for s in rev])]).astype(np.int64)
    y_r = run_encoder(qe, np.concatenate(rev), off_r, sp, policy=qp)
    for b, s in enumerate(rev):
        j = len(seqs) - 1 - b
        assert np.array_equal(y_r[off_r[b]:off_r[b + 1]], y[offsets[j]:offsets[j + 1]])


def test_policy_errors(trained):
    _, qe, qp, xs = trained
    x = xs[0]
    with pytest.raises(InputError, match="needs the trained policy"):
        run_encoder(qe, x, np.array([0, len(x)]), parse_sparsity(SP))
    qe3 = type(qe)(model={**qe.model, "num_layers": 3}, input_scale=qe.input_scale,
                   output_scale=qe.output_scale, layers=qe.layers + qe.layers[:1])
    with pytest.raises(InputError, match="no selection point for layer"):
        run_encoder(qe3, x, np.array([0, len(x)]), parse_sparsity({"tokens": {**SP["tokens"], "layers": [2]}}),
                    policy=qp)


def test_save_load_round_trip_and_project(trained, tiny_project, tmp_path):
    _, qe, qp, xs = trained
    p = save_policy(qp, tmp_path / "p.npz")
    back = load_policy(p)
    assert back.layers == qp.layers and back.record == json.loads(json.dumps(qp.record))
    for name in ("w1", "b1", "m1", "shift1", "w2", "gelu_slope", "gelu_icpt"):
        assert np.array_equal(getattr(back.points[1], name), getattr(qp.points[1], name))
    x = np.concatenate(xs[:5])
    off = np.concatenate([[0], np.cumsum([len(s) for s in xs[:5]])]).astype(np.int64)
    sp = parse_sparsity(SP)
    assert np.array_equal(run_encoder(qe, x, off, sp, policy=back), run_encoder(qe, x, off, sp, policy=qp))
    # A policy attached to the integer model (how a project loader provides it) is used without policy=.
    import dataclasses
    qe_p = dataclasses.replace(qe)
    qe_p.token_policy = back
    assert np.array_equal(run_encoder(qe_p, x, off, sp), run_encoder(qe, x, off, sp, policy=qp))
    with pytest.raises(ProjectError):
        load_policy(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ProjectError):
        load_policy(tmp_path / "bad.npz")
    # install into a copy of the compiled tiny project: file registered with its checksum, config updated.
    import shutil
    proj_dir = tmp_path / "proj"
    shutil.copytree(tiny_project, proj_dir)
    install_policy(proj_dir, qp, 0.7)
    proj = load_project(proj_dir)
    assert proj.manifest["files"]["token_policy"] == POLICY_FILE
    assert POLICY_FILE in proj.manifest["checksums"]
    assert proj.sparsity["tokens"] == {"layers": [1], "keep": 0.7, "method": "policy"}
    assert load_policy(proj_dir).layers == [1]
