"""Quantization-aware training (padless.finetune.qat): the simulated int8 path tracks the golden integer
model on real sentences, QAT fine-tunes resume exactly, and ``init_from`` continues an earlier student."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from padless.errors import InputError
from padless.finetune import finetune

torch.set_num_threads(2)

CFG = {"weights": {"sparsity": 0.5, "bank": 16},
       "train": {"steps": 12, "batch_size": 8, "max_len": 24, "lr": 1e-3, "checkpoint_every": 4,
                 "texts_per_dataset": 40, "seed": 5, "qat_steps": 8, "qat_calibrate_every": 4}}
SENTENCES = ["the film was a delight from start to finish", "dull, slow and far too long",
             "an honest small story about a family", "i would not watch it again"]


@pytest.mark.parametrize("quant", [{}, {"zero_point": ["act"]}, {"precision": {"act": 16}}],
                         ids=["int8", "act-zero-point", "act16"])
def test_fake_quant_tracks_golden(quant):
    """On real sentences the student with the simulated int8 path is closer to the golden integer model than
    the fp32 student is (the fake quantization models what the hardware rounds, asymmetric or 16-bit FFN
    activation included), and remove() restores the fp32 student exactly."""
    from padless.data.datasets import load_dataset
    from padless.finetune.qat import FakeQuant
    from padless.finetune.student import SparseStudent, bert_from_spec
    from padless.golden import dequantize_output, quantize_input, run_encoder
    from padless.models import Tokenizer, resolve_model
    from padless.quant.calibrate import calibrate
    from padless.quant.quantize import quantize_encoder
    from padless.reference import embed

    spec, _ = resolve_model("tiny")
    tok = Tokenizer(spec.tokenizer_path, spec.max_positions)
    cal = tok.encode(load_dataset("vader-tweets", limit=64).texts, truncate=True)
    qe = quantize_encoder(spec, calibrate(spec, cal), **quant)
    student = SparseStudent(bert_from_spec(spec)).eval()
    fq = FakeQuant(student, cal, tokenizer_path=spec.tokenizer_path, quant=quant)
    fq.calibrate()
    assert fq.scales[0]["act_qmax"] == (32767 if quant.get("precision") else 127)
    assert bool((fq.scales[0]["act_zp"] != 0).any()) == bool(quant.get("zero_point"))
    err_fp32 = err_fq = 0.0
    for ids in tok.encode(SENTENCES):
        gold = dequantize_output(run_encoder(qe, quantize_input(embed(spec, ids), qe.input_scale),
                                             np.array([0, len(ids)])), qe.output_scale)
        x = torch.tensor([ids])
        m = torch.ones_like(x)
        with torch.no_grad():
            fp32 = student(x, m)[0].numpy()
            fq.attach()
            sim = student(x, m)[0].numpy()
            fq.remove()
            again = student(x, m)[0].numpy()
        assert np.array_equal(fp32, again)
        err_fp32 += float(np.abs(fp32 - gold).mean())
        err_fq += float(np.abs(sim - gold).mean())
    assert err_fq < 0.7 * err_fp32, (err_fq, err_fp32)


def _weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def test_qat_finetune_resumes_exactly_and_init_from(tmp_path):
    full = finetune("tiny", CFG, tmp_path / "full", progress=False)
    assert full["finished"] and full["sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert all(np.isfinite(v) for _, v in full["losses"])
    # interrupted inside the QAT phase (after its second calibration), then resumed: the same student
    part = finetune("tiny", CFG, tmp_path / "resumed", progress=False, stop_after=8)
    assert not part["finished"]
    finetune("tiny", CFG, tmp_path / "resumed", progress=False, resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    for key in a:
        assert torch.equal(a[key], b[key]), key

    # init_from: continue the student (its zeros are the masks) with QAT only
    cont = json.loads(json.dumps(CFG))
    cont["train"].update(steps=4, qat_steps=4, init_from=str(tmp_path / "full"))
    finetune("tiny", cont, tmp_path / "cont", progress=False)
    w0, w1 = _weights(tmp_path / "full"), _weights(tmp_path / "cont")
    lin = [k for k in w0 if k.endswith("dense.weight") or k.endswith(("query.weight", "key.weight", "value.weight"))]
    assert lin and all(torch.equal(w0[k] == 0, w1[k] == 0) for k in lin)  # the same masks
    assert any(not torch.equal(w0[k], w1[k]) for k in lin)  # and the kept weights trained
    denser = json.loads(json.dumps(cont))
    denser["weights"]["sparsity"] = 0.75
    with pytest.raises(InputError, match="init_from"):
        finetune("tiny", denser, tmp_path / "bad", progress=False)
    with pytest.raises(InputError, match="qat_steps"):
        finetune("tiny", {**CFG, "train": {**CFG["train"], "qat_steps": 13}}, tmp_path / "bad2", progress=False)
    with pytest.raises(InputError, match="not a student folder"):
        finetune("tiny", {**CFG, "train": {**CFG["train"], "init_from": str(tmp_path)}}, tmp_path / "bad3",
                 progress=False)


def test_dense_student_masks_padding_like_the_teacher():
    """The student's own attention function (used for dense attention too) masks padded keys from the
    lengths, so on a padded batch it equals the transformers teacher exactly."""
    from padless.finetune.student import SparseStudent, bert_from_spec
    from padless.models import resolve_model
    spec, _ = resolve_model("tiny")
    teacher = bert_from_spec(spec)
    student = SparseStudent(bert_from_spec(spec), {}, {})
    x = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]])
    m = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        want = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x)).last_hidden_state
        got = student(x, m)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1, :3], want[1, :3])
