"""`padless export --onnx` with the learned TR-BERT token policy (`tokens: {method: policy}`, issue 26 item 1):
onnxruntime runs the integer policy (MatMulInteger, dyadic requantize, the piecewise-linear integer GELU,
the 32 -> 1 dot), keeps a data-dependent number of rows per sequence and carries the removed ones, bit for
bit with :func:`padless.golden.run_encoder` on real sentences (VADER movie snippets).

The policy is trained for a few steps on the `tiny` model (as tests/test_token_policy.py does), quantized
on the compiled project's integer encoder with a keep-0.7 threshold and installed into a copy of the
project (policy.npz, `sparsity.tokens.method: policy`).
"""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from padless.cli import main  # noqa: E402
from padless.errors import InputError  # noqa: E402
from padless.export_onnx import build_onnx_model, export_onnx  # noqa: E402
from padless.golden import quantize_input, run_encoder  # noqa: E402
from padless.project import load_project  # noqa: E402
from padless.reference import embed  # noqa: E402
from padless.runtime.backends.golden import GoldenBackend  # noqa: E402
from padless.runtime.host import embeddings_from_hidden, run_hidden  # noqa: E402

INT32_MAX = (1 << 31) - 1


def _session(model_or_path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def policy_project(tiny_project, tiny_spec, tmp_path_factory):
    """A copy of the compiled tiny project with a trained, quantized TR-BERT policy before layer 1."""
    from padless.data.datasets import load_dataset
    from padless.sparse.policy import PolicyTrainConfig, install_policy, quantize_policy, train_policy

    out = tmp_path_factory.mktemp("policy") / "proj"
    shutil.copytree(tiny_project, out)
    project = load_project(out)
    ids = project.tokenize(load_dataset("vader-tweets", limit=260).texts, truncate=True)
    policy, record = train_policy(tiny_spec, [1], PolicyTrainConfig(imitation_steps=8, rl_steps=4, batch_size=4,
                                                                   samples=4), ids=ids[:200])
    qe = project.quantized
    xs = [quantize_input(embed(project.host, s), np.asarray(qe.input_scale)) for s in ids[200:260]]
    install_policy(out, quantize_policy(policy, qe, xs, keep=0.7, record=record), 0.7)
    return out


def _inputs(project, ids):
    qe = project.quantized
    return [quantize_input(embed(project.host, s), np.asarray(qe.input_scale)) for s in ids]


def _golden(project, x):
    """(int8 output, survivor mask) of one sequence by the golden model with the project's policy."""
    kept = []
    y = run_encoder(project.quantized, x, np.array([0, len(x)]), project.sparsity, kept_out=kept)
    return y, kept[0]


def _with_policy(project, **changes):
    """``project`` whose in-memory policy has every point's fields replaced by ``changes``."""
    qe = project.quantized
    qp = qe.token_policy
    points = {i: dataclasses.replace(pt, **changes) for i, pt in qp.points.items()}
    project._quantized = dataclasses.replace(qe)
    project._quantized.token_policy = dataclasses.replace(qp, points=points)
    return project


def test_core_is_bit_exact_with_golden_on_real_sentences(policy_project, movie_texts):
    """One sequence per call on 40 real sentences: ONNX == golden bit for bit; the policy really removes
    rows, a different number per sentence, and its choice is not the cascade's."""
    project = load_project(policy_project)
    assert project.sparsity["tokens"] == {"layers": [1], "keep": 0.7, "method": "policy"}
    sess = _session(build_onnx_model(project, core_only=True))
    xs = _inputs(project, project.tokenize(movie_texts.texts[:40], truncate=True))
    fractions, differs = set(), 0
    cascade = {**project.sparsity, "tokens": {"layers": [1], "keep": 0.7}}
    for x in xs:
        want, kept = _golden(project, x)
        got = sess.run(None, {"hidden_in": x[None]})[0][0]
        assert got.dtype == np.int8 and np.array_equal(got, want)
        assert kept[0]
        fractions.add(round(kept.mean(), 3))
        differs += not np.array_equal(want, run_encoder(project.quantized, x, np.array([0, len(x)]), cascade))
    assert len(fractions) > 3 and min(fractions) < 1  # data-dependent kept counts, rows really removed
    assert differs > 0


def test_several_sequences_in_one_batch(policy_project, movie_texts):
    """Equal-length real sentences with different kept counts in one call (a Loop over the batch):
    each equals its golden run alone."""
    project = load_project(policy_project)
    sess = _session(build_onnx_model(project, core_only=True))
    xs = _inputs(project, project.tokenize(movie_texts.texts[:300], truncate=True))
    by_len: dict = {}
    for x in xs:
        by_len.setdefault(len(x), []).append(x)
    batches = 0
    for n, group in sorted(by_len.items(), key=lambda kv: -len(kv[1])):
        group = group[:6]
        gold = [_golden(project, x) for x in group]
        if len(group) < 3 or len({int(k.sum()) for _, k in gold}) < 2:
            continue
        got = sess.run(None, {"hidden_in": np.stack(group)})[0]
        assert got.shape == (len(group), n, group[0].shape[1])
        for g, (want, _) in zip(got, gold):
            assert np.array_equal(g, want)
        batches += 1
        if batches == 3:
            break
    assert batches >= 2


def test_length_one_and_compiled_maximum(policy_project, movie_texts):
    """A one-token sequence ([CLS] alone: kept whatever its logit) and one at the project's maximum length."""
    project = load_project(policy_project)
    sess = _session(build_onnx_model(project, core_only=True))
    long_text = " ".join(movie_texts.texts[:60])
    ids = project.tokenize([long_text], truncate=True)[0]
    assert len(ids) == project.max_length
    for s in (ids[:1], ids):
        x = _inputs(project, [s])[0]
        want, kept = _golden(project, x)
        assert np.array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], want)
        if len(s) == 1:
            assert kept.tolist() == [True]
        else:
            assert 0 < kept.mean() < 1


def test_cls_alone_and_nothing_removed(policy_project, movie_texts):
    """A threshold no row reaches leaves [CLS] alone in every sequence (every other row carried); the lowest
    int32 threshold keeps every row, so the output is the dense encoder's."""
    xs = None
    for threshold, expect in ((INT32_MAX, "cls"), (-(1 << 31), "all")):
        project = _with_policy(load_project(policy_project), threshold=threshold)
        sess = _session(build_onnx_model(project, core_only=True))
        if xs is None:
            xs = _inputs(project, project.tokenize(movie_texts.texts[40:52], truncate=True))
        for x in xs:
            want, kept = _golden(project, x)
            assert int(kept.sum()) == (1 if expect == "cls" else len(x))
            assert np.array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], want)
            if expect == "all":
                assert np.array_equal(want, run_encoder(project.quantized, x, np.array([0, len(x)])))
        n = len(xs[0])
        same = [x for x in xs if len(x) == n]
        got = sess.run(None, {"hidden_in": np.stack(same)})[0]
        for g, x in zip(got, same):
            assert np.array_equal(g, _golden(project, x)[0])


def test_logit_equal_to_threshold_keeps_the_row(policy_project, movie_texts):
    """``logit == threshold`` keeps the row (select_by_logits): thresholds set to logits that real rows
    reach exactly, so the comparison's tie case decides rows in the graph too."""
    from padless.golden import run_layer
    from padless.sparse.tokens import policy_logits

    base = load_project(policy_project)
    xs = _inputs(base, base.tokenize(movie_texts.texts[52:60], truncate=True))
    qe, pt = base.quantized, base.quantized.token_policy.points[1]
    x = next(x for x in xs if len(x) >= 6)
    z = policy_logits(pt, run_layer(qe.layers[0], x, np.array([0, len(x)]), qe.model["num_heads"]))
    ties = 0
    for row in range(1, len(x)):
        t = int(z[row])
        if (z[1:] == t).sum() != 1 or (z[1:] > t).sum() == 0:
            continue  # one row exactly at the threshold, others above and below
        project = _with_policy(load_project(policy_project), threshold=t)
        sess = _session(build_onnx_model(project, core_only=True))
        want, kept = _golden(project, x)
        assert kept[row] and kept[1:].sum() == (z[1:] >= t).sum()
        assert np.array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], want)
        ties += 1
        if ties == 2:
            break
    assert ties == 2


def test_two_selection_points(policy_project, movie_texts):
    """Selection before layers 1 and 2 of a 3-layer integer encoder (the tiny layers, the first repeated):
    the second point sees the compacted survivors of the first and maps them back to their positions."""
    project = load_project(policy_project)
    qe = project.quantized
    qp = qe.token_policy
    pt1 = qp.points[1]
    pt2 = dataclasses.replace(pt1, layer=2)
    qe3 = dataclasses.replace(qe, model={**qe.model, "num_layers": 3}, layers=qe.layers + qe.layers[:1])
    qe3.token_policy = dataclasses.replace(qp, points={1: pt1, 2: pt2})
    project._quantized = qe3
    project.manifest = {**project.manifest, "sparsity": {**project.sparsity,
                                                         "tokens": {"layers": [1, 2], "keep": 0.7, "method": "policy"}}}
    sess = _session(build_onnx_model(project, core_only=True))
    xs = _inputs(project, project.tokenize(movie_texts.texts[60:90], truncate=True))
    removed_at_2 = 0
    for x in xs:
        want, kept = _golden(project, x)
        assert np.array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], want)
        one = run_encoder(qe3, x, np.array([0, len(x)]), {**project.sparsity,
                                                            "tokens": {"layers": [1], "keep": 0.7, "method": "policy"}})
        removed_at_2 += not np.array_equal(one, want)
    assert removed_at_2 > 0


def test_end_to_end_cli_and_graph(policy_project, tmp_path, capsys, movie_texts):
    """`padless export` of the policy project: the graph holds the per-sequence Loop, its MatMulIntegers take
    int8 x int8 (exact on every CPU), and from token ids it agrees with the golden runtime as the dense
    export does (docs/interchange.md tolerance: float embedding on both sides)."""
    out = tmp_path / "policy.onnx"
    assert main(["export", str(policy_project), "--onnx", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    model = onnx.load(str(out))
    loops = [n for n in model.graph.node if n.op_type == "Loop"]
    assert len(loops) == 1
    body = onnx.helper.get_attribute_value(loops[0].attribute[0])
    ops = {n.op_type for n in body.node}
    assert {"NonZero", "GatherElements", "ScatterElements", "MatMulInteger"} <= ops and "MatMul" not in ops
    # Element types inside the Loop body by ONNX shape inference (it types subgraphs); weights are outer
    # initializers.
    inferred = onnx.helper.get_attribute_value(
        [n for n in onnx.shape_inference.infer_shapes(model).graph.node if n.op_type == "Loop"][0].attribute[0])
    types = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.value_info}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    mmi = [n for n in inferred.node if n.op_type == "MatMulInteger"]
    assert len(mmi) == 20   # 2 layers x 9 + the policy's W1 and w2
    for n in mmi:
        assert [types[i] for i in n.input] == [onnx.TensorProto.INT8] * 2, n.name
    project = load_project(policy_project)
    sess = _session(out)
    ids = project.tokenize(movie_texts.texts[100:140], truncate=True)
    hidden = run_hidden(project, GoldenBackend(project), ids)
    gold = embeddings_from_hidden(project, hidden)
    same = total = 0
    emb = []
    for s, h in zip(ids, hidden):
        r = sess.run(None, {"input_ids": np.asarray([s], np.int64)})
        same += int((r[1][0] == h).sum())
        total += h.size
        emb.append(r[2][0])
    emb = np.stack(emb)
    cos = (emb * gold).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(gold, axis=1)
    assert same / total >= 0.95 and cos.mean() >= 0.999, (same / total, cos.mean())


def test_policy_errors(policy_project, tmp_path, capsys):
    """Without policy.npz, or with a policy lacking a selection point, the export stops with one clear line."""
    import json

    bare = tmp_path / "bare"
    shutil.copytree(policy_project, bare)
    m = json.loads((bare / "manifest.json").read_text())
    del m["files"]["token_policy"]
    (bare / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="needs the trained policy"):
        export_onnx(bare, tmp_path / "a.onnx")
    assert main(["export", str(bare), "--onnx", str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("padless: error:") and "train-policy" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.onnx").exists()
    project = load_project(policy_project)
    qp = project.quantized.token_policy
    project.quantized.token_policy = dataclasses.replace(qp, points={})
    with pytest.raises(InputError, match=r"no selection point for layer\(s\) \[1\]"):
        build_onnx_model(project)
