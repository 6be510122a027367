"""padless finetune: schedule, 4-bit selection parity with the golden spec, and a short real fine-tune of `tiny`
(balanced masks, target sparsity, decreasing loss, compile + golden, exact resume)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from padless.errors import InputError
from padless.finetune import (SPARSITY_FILE, attention_keep_mask, cubic_sparsity, finetune, is_bank_balanced,
                              load_finetune_config)
from padless.sparse.attention import keep_count
from padless.sparse.selection import estimate_scores, quantize4, topk_indices
from padless.sparse.weights import LINEAR_NAMES, prune_spec

torch.set_num_threads(2)

CFG = {"weights": {"sparsity": 0.5, "bank": 16}, "attention": {"topk": 6},
       "train": {"steps": 24, "batch_size": 8, "max_len": 24, "lr": 1e-3, "ramp": 0.0, "mask_every": 4,
                 "checkpoint_every": 8, "texts_per_dataset": 40, "seed": 3}}


def test_cubic_schedule():
    assert cubic_sparsity(0, 100, 0.5) == 0.0
    assert cubic_sparsity(50, 100, 0.5) == pytest.approx(0.5 * (1 - 0.5 ** 3))
    assert cubic_sparsity(100, 100, 0.5) == 0.5 and cubic_sparsity(500, 100, 0.5) == 0.5
    assert cubic_sparsity(3, 0, 0.75) == 0.75
    vals = [cubic_sparsity(t, 40, 0.6) for t in range(41)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))
    with pytest.raises(InputError):
        cubic_sparsity(1, 10, 1.0)


@pytest.mark.parametrize("cfg", [{"topk": 5}, {"density": 0.25, "min_k": 3}])
def test_attention_selection_matches_golden_spec(cfg):
    """On int8-valued Q/K the torch selection keeps exactly the keys of padless.sparse.selection."""
    rng = np.random.default_rng(0)
    B, H, n, d = 3, 2, 19, 8
    q = rng.integers(-127, 128, (B, H, n, d))
    k = rng.integers(-127, 128, (B, H, n, d))
    q[..., :2] = 3  # plenty of ties in the estimate
    k[..., :2] = 3
    lengths = torch.tensor([19, 11, 4])
    keep = attention_keep_mask(torch.tensor(q, dtype=torch.float32), torch.tensor(k, dtype=torch.float32),
                               lengths, cfg).numpy()
    for b, L in enumerate(lengths.tolist()):
        assert not keep[b, :, :, L:].any()
        for h in range(H):
            idx = topk_indices(estimate_scores(quantize4(q[b, h, :L]), quantize4(k[b, h, :L])), keep_count(L, cfg))
            ref = np.zeros((L, L), dtype=bool)
            np.put_along_axis(ref, idx, True, axis=1)
            assert np.array_equal(keep[b, h, :L, :L], ref)


def test_config_errors(tmp_path):
    for held_out in ("vader-movie", "vader-movie-test"):
        with pytest.raises(InputError, match="evaluation snippets"):
            load_finetune_config({"train": {"datasets": [held_out]}})
    assert load_finetune_config({"train": {"datasets": ["vader-movie-train"]}})[1].datasets == ["vader-movie-train"]
    mix = {"dataset": ["vader-tweets", "reuters"], "count": 64}
    assert load_finetune_config({"calibration": mix})[1].calibration == mix
    for bad in ({"dataset": ["vader-tweets", "imdb"]}, {"count": 0}, {"datasets": "reuters"}, 3):
        with pytest.raises(InputError, match="calibration"):
            load_finetune_config({"calibration": bad})
    with pytest.raises(InputError, match="does not train token selection"):
        load_finetune_config({"tokens": {"layers": [1], "keep": 0.5}})
    with pytest.raises(InputError, match="unknown keys"):
        load_finetune_config({"train": {"stepz": 3}})
    with pytest.raises(InputError, match="steps"):
        load_finetune_config({"train": {"steps": 0}})
    for key, bad in (("augment", "abc"), ("loss_probe", [1]), ("lr", None), ("loss_covariance", True)):
        with pytest.raises(InputError, match=f"train.{key} must be a number"):
            load_finetune_config({"train": {key: bad}})
    assert load_finetune_config({"train": {"lr": "2e-5"}})[1].lr == 2e-5  # YAML reads 2e-5 as a string
    with pytest.raises(InputError, match="train.init"):
        load_finetune_config({"weights": {"sparsity": 0.5, "bank": 16, "criterion": "sparsegpt"}})
    with pytest.raises(InputError, match="no checkpoint"):
        finetune("tiny", CFG, tmp_path / "x", resume=True, progress=False)


def _weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def _resumes_exactly(tmp_path, **train) -> dict:
    """An 8-step run of CFG with ``train`` overrides, uninterrupted and stopped at step 4 then resumed:
    assert both write the same student, bit for bit; return the uninterrupted run's result."""
    cfg = json.loads(json.dumps(CFG))
    cfg["train"].update(steps=8, checkpoint_every=4, **train)
    full = finetune("tiny", cfg, tmp_path / "full", progress=False)
    finetune("tiny", cfg, tmp_path / "resumed", progress=False, stop_after=4)
    finetune("tiny", cfg, tmp_path / "resumed", progress=False, resume=True)
    assert full["finished"]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return full


def test_finetune_tiny_end_to_end(tmp_path):
    from padless.build import compile_project
    from padless.models import resolve_model
    from padless.project import load_project
    from padless.reference import encode_fp32, pool
    from padless.runtime.backends.golden import GoldenBackend
    from padless.runtime.host import embeddings_from_hidden, run_hidden

    full = finetune("tiny", CFG, tmp_path / "full", progress=False)
    assert full["finished"] and full["steps"] == 24
    # One-shot pruning at step 0 (ramp 0; the cubic ramp is tested above), then the loss falls.
    losses = [v for _, v in full["losses"]]
    assert losses[-1] < losses[0]
    record = json.loads((tmp_path / "full" / SPARSITY_FILE).read_text())
    assert record["sparsity"]["weights"] == {"sparsity": 0.5, "bank": 16, "criterion": "magnitude"}
    assert record["sparsity"]["attention"] == {"topk": 6}

    spec, _ = resolve_model(str(tmp_path / "full"))
    zeros = total = 0
    for layer in spec.layers:
        for name in LINEAR_NAMES:
            w = getattr(layer, name).weight
            assert is_bank_balanced(w, 16, 0.5)
            zeros += int((w == 0).sum())
            total += w.size
    assert zeros / total == pytest.approx(0.5, abs=1e-4)
    again = prune_spec(spec, record["sparsity"]["weights"])  # compile-time pruning is a no-op
    for a, b in zip(spec.layers, again.layers):
        for name in LINEAR_NAMES:
            assert np.array_equal(getattr(a, name).weight, getattr(b, name).weight)

    # Interrupted at step 16 (CLI), then resumed: the same student, bit for bit.
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(CFG))  # YAML is a superset of JSON
    cli = [sys.executable, "-m", "padless.cli", "finetune", "tiny", "--config", str(cfg_file),
           "--out", str(tmp_path / "resumed"), "--quiet"]
    subprocess.run(cli + ["--stop-after", "16"], check=True)
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    subprocess.run(cli + ["--resume"], check=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    # The student compiles with its recorded sparsity and the golden integer model runs it.
    compile_project(str(tmp_path / "full"), board="u280", out=tmp_path / "prj", config=record["sparsity"],
                    calib_count=16)
    prj = load_project(tmp_path / "prj")
    ids = prj.tokenize(["the film was a delight", "dull, slow and far too long", "an honest small story"])
    emb = embeddings_from_hidden(prj, run_hidden(prj, GoldenBackend(prj), ids, max_tokens=2048))
    ref = np.stack([pool(spec, encode_fp32(spec, [s])[0]) for s in ids])
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    assert emb.shape == (3, spec.hidden_size) and np.all(np.isfinite(emb))
    assert cos.min() > 0.8  # int8 golden vs the student's own fp32 (top-k differences included)


def test_magnitude_init_cubic_ramp_reaches_target(tmp_path):
    """``init: magnitude``: the dense copy, masks grown on the cubic schedule to the final ratio."""
    cfg = json.loads(json.dumps(CFG))
    cfg["train"].update(steps=8, checkpoint_every=8, ramp=0.5, mask_every=2, init="magnitude")
    res = finetune("tiny", cfg, tmp_path / "mag", progress=False)
    assert res["finished"] and res["sparsity"] == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(InputError, match="train.init must be one of"):
        load_finetune_config({"train": {"init": "random"}})


def test_module_replacement_stands_in_for_student_layers():
    """enable_replacement: a replaced layer is the teacher's module on the student's input (padding masked
    like the teacher's), hidden states are recorded once per layer, and the copy is neither saved nor trained."""
    from padless.finetune.student import SparseStudent, bert_from_spec
    from padless.models import resolve_model
    spec, _ = resolve_model("tiny")
    teacher = bert_from_spec(spec).eval()
    student = SparseStudent(bert_from_spec(spec), {}, {}).eval()
    with torch.no_grad():
        for p in student.bert.encoder.parameters():
            p.mul_(0.5)  # a student that differs from the teacher in every layer
    L = spec.num_layers
    keys = set(student.state_dict())
    student.enable_replacement(teacher)
    assert set(student.state_dict()) == keys
    assert all(not p.requires_grad for c in student._teacher_layers for p in c.parameters())
    x = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
    m = (x != 0).long()
    with torch.no_grad():
        t = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x), output_hidden_states=True)
        student.set_replaced([True] * L)
        s = student(x, m, output_hidden_states=True)
        assert len(s.hidden_states) == L + 1
        for a, b in zip(s.hidden_states, t.hidden_states):
            assert torch.allclose(a * m[..., None], b * m[..., None], atol=1e-5)
        student.set_replaced([False] * L)
        own = student(x, m)
        assert not torch.allclose(own * m[..., None], t.last_hidden_state * m[..., None], atol=1e-3)
        if L > 1:  # only layer 0 replaced: its output is the teacher layer's, the rest the student's
            student.set_replaced([True] + [False] * (L - 1))
            s = student(x, m, output_hidden_states=True)
            assert torch.allclose(s.hidden_states[1] * m[..., None], t.hidden_states[1] * m[..., None], atol=1e-5)
            assert not torch.allclose(s.hidden_states[2] * m[..., None], t.hidden_states[2] * m[..., None], atol=1e-3)
    with pytest.raises(InputError, match="flags"):
        student.set_replaced([True])


def test_replacement_schedule_and_training(tmp_path):
    from padless.finetune.train import replaced_layers, replacement_probability
    _, tc = load_finetune_config({"train": {"steps": 100, "replace_rate": 0.6, "replace_until": 0.5}})
    assert replacement_probability(tc, 0) == pytest.approx(0.6)
    assert replacement_probability(tc, 25) == pytest.approx(0.3)
    assert replacement_probability(tc, 50) == 0 and replacement_probability(tc, 99) == 0
    draws = np.array([replaced_layers(tc, 0, 6) for _ in range(2)])
    assert (draws[0] == draws[1]).all()  # a function of (seed, step): a resumed run draws the same
    share = np.mean([replaced_layers(tc, s, 6) for s in range(10)])
    assert 0.3 < share < 0.8
    assert not any(any(replaced_layers(tc, s, 6)) for s in range(50, 100))
    for bad in ({"replace_rate": 1.5}, {"replace_until": 0}, {"steps": 10, "qat_steps": 6, "replace_rate": 0.5}):
        with pytest.raises(InputError, match="replace"):
            load_finetune_config({"train": bad})
    _resumes_exactly(tmp_path, replace_rate=0.5, replace_until=0.75)


def test_student_compiles_with_its_calibration(tmp_path):
    """padless compile STUDENT calibrates on the finetune config's `calibration:` when it recorded one, else
    on its teacher recipe's (tiny: 64 VADER tweets), not the generic folder default (256)."""
    from padless.build import compile_project
    from padless.project import load_project
    cfg = json.loads(json.dumps(CFG))
    cfg["train"].update(steps=2, checkpoint_every=2)
    finetune("tiny", cfg, tmp_path / "st", progress=False)
    compile_project(str(tmp_path / "st"), board="u280", out=tmp_path / "p1")
    cal = load_project(tmp_path / "p1").manifest["quant"]["calibration"]
    assert (cal["dataset"], cal["count"]) == ("vader-tweets", 64)
    rec_file = tmp_path / "st" / SPARSITY_FILE
    rec = json.loads(rec_file.read_text())
    rec_file.write_text(json.dumps({**rec, "calibration": {"dataset": ["vader-tweets", "fortunes"], "count": 20}}))
    compile_project(str(tmp_path / "st"), board="u280", out=tmp_path / "p2")
    cal = load_project(tmp_path / "p2").manifest["quant"]["calibration"]
    assert (cal["dataset"], cal["count"]) == ("vader-tweets+fortunes", 20)
    for bad, msg in (("reuters", "must be a mapping"), ({"dataset": ["imdb"]}, "not a dataset")):
        with pytest.raises(InputError, match=msg):  # a clear error, not a TypeError from the merge
            compile_project(str(tmp_path / "st"), board="u280", out=tmp_path / "p3", config={"calibration": bad})



def test_covariance_loss_definition_and_resume(tmp_path):
    """The covariance-weighted embedding loss: embeddings pooled exactly as the reference pools them, the
    teacher covariance equal to numpy's over the same sentences, the loss a relative probe logit error
    (zero for an exact student, E_w[(w.d)^2] / E_x[(w.(e-mu))^2] for probes w ~ N(0, S)), and a run that uses
    it resumes bit for bit (the covariance is kept in the checkpoint)."""
    from padless.finetune.student import bert_from_spec
    from padless.finetune.train import _batch, _losses, embedding_covariance, sentence_embedding
    from padless.models import Tokenizer, resolve_model
    from padless.reference import encode_fp32, pool
    spec, _ = resolve_model("minilm-l6")
    tok = Tokenizer(spec.tokenizer_path, 64)
    ids = tok.encode(["a gripping, beautifully shot film", "dull", "the plot never quite comes together, sadly",
                      "one of the year's best", "I wanted to like it more than I did"])
    ref = np.stack([pool(spec, encode_fp32(spec, [s])[0]) for s in ids]).astype(np.float64)
    teacher = bert_from_spec(spec)
    x, m = _batch(ids, np.arange(len(ids)), 0, len(ids), spec.pad_token_id)
    with torch.no_grad():
        out = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x))
    e = sentence_embedding(out.last_hidden_state, m, spec.pooling, spec.normalize).numpy()
    assert np.abs(e - ref).max() < 1e-5
    cov = embedding_covariance(teacher, ids, spec, spec.pad_token_id, batch_size=2)
    assert np.allclose(cov.numpy(), np.cov(ref.T), atol=1e-6)
    with pytest.raises(InputError, match="two sentences"):
        embedding_covariance(teacher, ids[:1], spec, spec.pad_token_id)

    _, tc = load_finetune_config({"train": {"loss_covariance": 1.0, "loss_layers": 0}})
    assert _losses(out, out, m, tc, cov, spec.pooling, spec.normalize)["covariance"].item() == 0.0
    h2 = out.last_hidden_state + 0.05 * torch.randn(out.last_hidden_state.shape, generator=torch.Generator().manual_seed(0))
    moved = type(out)(last_hidden_state=h2)
    got = _losses(moved, out, m, tc, cov, spec.pooling, spec.normalize)["covariance"].item()
    d = sentence_embedding(h2, m, spec.pooling, spec.normalize).numpy() - e
    w = np.random.default_rng(0).multivariate_normal(np.zeros(len(cov)), cov.numpy().astype(np.float64), 20000)
    mc = np.mean((d @ w.T) ** 2) / np.mean(((ref - ref.mean(0)) @ w.T) ** 2 * len(ids) / (len(ids) - 1))
    assert got > 0 and got == pytest.approx(mc, rel=0.1)

    with pytest.raises(InputError, match="covariance_texts"):
        load_finetune_config({"train": {"covariance_texts": 0}})
    full = _resumes_exactly(tmp_path, loss_covariance=5.0, covariance_texts=32)
    assert full["losses"][-1][1] < full["losses"][0][1]


def test_attention_distillation_loss(tmp_path):
    """TinyBERT's attention loss: KL(P_teacher || P_student) over every layer, zero for the teacher itself,
    positive for a pruned student, and a run that uses it trains (its total loss falls)."""
    from padless.finetune.student import SparseStudent, bert_from_spec
    from padless.finetune.train import _batch, _losses
    from padless.models import Tokenizer, resolve_model
    spec, _ = resolve_model("tiny")
    ids = Tokenizer(spec.tokenizer_path, 24).encode(["a quiet, lovely film", "not worth the ticket at all"])
    x, m = _batch(ids, np.arange(2), 0, 2, spec.pad_token_id)
    teacher = bert_from_spec(spec)
    teacher.config._attn_implementation = "eager"
    student = SparseStudent(bert_from_spec(spec), {"sparsity": 0.5, "bank": 16}, {}).eval()
    student.update_masks(1.0)
    _, tc = load_finetune_config({"train": {"loss_attention": 1.0}})
    with torch.no_grad():
        t_out = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x), output_attentions=True,
                        output_hidden_states=True)
        s_out = student(x, m, output_attentions=True, output_hidden_states=True)
    assert len(t_out.attentions) == spec.num_layers == len(s_out.attentions)
    assert _losses(t_out, t_out, m, tc)["attention"].item() == pytest.approx(0.0, abs=1e-6)
    assert _losses(s_out, t_out, m, tc)["attention"].item() > 1e-6
    cfg = json.loads(json.dumps(CFG))
    cfg["train"].update(steps=8, checkpoint_every=4, loss_attention=1.0)
    run = finetune("tiny", cfg, tmp_path / "att", progress=False)
    assert run["finished"] and run["losses"][-1][1] < run["losses"][0][1]


def test_augmentation_keeps_whole_words_and_resumes(tmp_path):
    """train.augment: drop / crop / splice at whole-word boundaries of real sentences (a ## piece never
    starts a word), [CLS] ... [SEP] and max_len kept, seeded draws; a run with it resumes bit for bit."""
    from padless.finetune.augment import KINDS, augment_batch, augment_sentence, continuation_mask, words
    from padless.models import Tokenizer, resolve_model
    spec, _ = resolve_model("tiny")
    cont = continuation_mask(spec.tokenizer_path)
    tok = Tokenizer(spec.tokenizer_path, 64)
    a, b = tok.encode(["an unbelievably overwrought, self-indulgent melodrama about nothing much",
                       "the cinematography is breathtaking and the performances are understated"])
    wa, wb = words(a[1:-1], cont), words(b[1:-1], cont)
    assert any(len(w) > 1 for w in wa)  # the test sentence has multi-piece words
    seen = set()
    for seed in range(40):
        for kind in KINDS:
            out = augment_sentence(a, b, kind, np.random.default_rng(seed), cont, 16)
            assert out[0] == a[0] and out[-1] == a[-1] and 3 <= len(out) <= 16
            got = words(out[1:-1], cont)
            assert all(w in wa or w in wb for w in got)  # whole words only, never a split one
            if kind == "drop":
                assert [w for w in wa if w in got] == got  # order kept
            seen.add((kind, tuple(out)))
            assert out == augment_sentence(a, b, kind, np.random.default_rng(seed), cont, 16)
    assert len(seen) > 3 * 10  # the draws vary
    assert any(set(map(tuple, words(o[1:-1], cont))) & set(map(tuple, wb)) for k, o in seen if k == "splice")
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_sentence(a, b, "shuffle", np.random.default_rng(0), cont, 16)
    assert augment_batch([a, b], [a, b], 0.0, np.random.default_rng(0), cont, 64) == [a, b]
    with pytest.raises(InputError, match="augment"):
        load_finetune_config({"train": {"augment": 1.5}})

    full = _resumes_exactly(tmp_path, augment=0.5)
    plain = _resumes_exactly(tmp_path / "plain", augment=0.0)
    assert full["losses"] != plain["losses"]  # the augmented batches differ


def test_probe_loss_task_specific_distillation(tmp_path):
    """loss_probe: a logistic-regression probe fit on the teacher's embeddings of a labelled training set
    (never the evaluation split); its relative logit error is 0 for the teacher itself, and a run with it
    resumes bit for bit (the probe is kept in the checkpoint)."""
    from padless.finetune.student import bert_from_spec
    from padless.finetune.train import _batch, _losses, fit_probe
    from padless.models import Tokenizer, resolve_model
    for bad in ("vader-movie-test", "imdb"):
        with pytest.raises(InputError, match="probe_dataset"):
            load_finetune_config({"train": {"loss_probe": 1.0, "probe_dataset": bad}})
    spec, _ = resolve_model("tiny")
    _, tc = load_finetune_config({"train": {"loss_probe": 1.0, "loss_layers": 0, "texts_per_dataset": 80,
                                            "max_len": 24}})
    teacher = bert_from_spec(spec)
    probe = fit_probe(teacher, spec, tc, spec.pad_token_id)
    tc_unlabelled = load_finetune_config({"train": {"loss_probe": 1.0, "probe_dataset": "fortunes"}})[1]
    with pytest.raises(InputError, match="two-class labels"):
        fit_probe(teacher, spec, tc_unlabelled, spec.pad_token_id)
    assert probe["w"].shape == (spec.hidden_size,) and probe["var"] > 0
    ids = Tokenizer(spec.tokenizer_path, 24).encode(["a quiet, lovely film", "not worth the ticket at all"])
    x, m = _batch(ids, np.arange(2), 0, 2, spec.pad_token_id)
    with torch.no_grad():
        out = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x))
    assert _losses(out, out, m, tc, None, spec.pooling, spec.normalize, probe)["probe"].item() == 0.0
    _resumes_exactly(tmp_path, loss_probe=5.0, datasets=["vader-movie-train"])
