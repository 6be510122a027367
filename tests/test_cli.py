"""The CLI end to end on `tiny`, and every bad input giving a clear error (no traceback)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from padless.cli import main

PADLESS = str(Path(sys.executable).with_name("padless"))


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_run_json_in_input_order(tiny_project, capsys, tmp_path):
    texts = ["A gripping, beautifully shot film.", "Dull.", "The plot never quite comes together, but the cast is superb."]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts[1:]) + "\n")
    rc, out, err = run_cli(capsys, "run", tiny_project, "--backend", "golden", "--text", texts[0], "--input", f, "--json")
    assert rc == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert [r["tokens"] for r in rows][1] == 4           # [CLS] dull . [SEP]
    assert all(len(r["embedding"]) == 64 for r in rows)
    # the same sentence alone gives the same embedding (packing does not change results)
    rc, out2, _ = run_cli(capsys, "run", tiny_project, "--text", texts[2], "--json")
    assert json.loads(out2)["embedding"] == rows[2]["embedding"]


def test_eval_json_on_real_tsv(tiny_project, capsys, tmp_path, movie_texts):
    pos = [t for y, t in zip(movie_texts.labels, movie_texts.texts) if y == 1][:20]
    neg = [t for y, t in zip(movie_texts.labels, movie_texts.texts) if y == 0][:20]
    lines = [f"1\t{t}" for t in pos] + [f"0\t{t}" for t in neg]
    data = tmp_path / "d.tsv"
    data.write_text("\n".join(lines) + "\n")
    rc, out, err = run_cli(capsys, "eval", tiny_project, "--data", data, "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["n"] == 40
    for key in ("accuracy_fp32", "accuracy", "agreement", "cosine_mean", "cosine_min"):
        assert 0.0 <= res[key] <= 1.0
    assert res["cosine_mean"] > 0.9


def test_manifest_contents(tiny_project):
    m = json.loads((tiny_project / "manifest.json").read_text())
    assert m["format"] == "padless-project" and m["board"] == "u280"
    assert m["model"]["hidden_size"] == 64 and m["model"]["num_layers"] == 2
    assert m["quant"]["calibration"]["count"] == 64
    assert "quant.npz" in m["checksums"] and "tokenizer.json" in m["checksums"]


@pytest.mark.parametrize("args,msg", [
    (["compile", "no-such-model", "--out", "{tmp}/x"], "unknown model 'no-such-model'"),
    (["compile", "tiny", "--board", "vc707", "--out", "{tmp}/x"], "vc707"),
    (["run", "{proj}", "--text", " "], "empty"),
    (["run", "{proj}"], "nothing to run"),
    (["run", "{proj}", "--text", "word " * 200], "--truncate"),
    (["run", "{proj}", "--text", "hi", "--backend", "fpga9000"], "unknown backend"),
    (["run", "{tmp}/nowhere", "--text", "hi"], "not a project folder"),
])
def test_bad_input_clear_error(tiny_project, tmp_path, capsys, args, msg):
    args = [a.format(tmp=tmp_path, proj=tiny_project) for a in args]
    rc, out, err = run_cli(capsys, *args)
    assert rc != 0
    assert msg in err and "Traceback" not in err


def test_truncate_flag(tiny_project, capsys):
    rc, out, err = run_cli(capsys, "run", tiny_project, "--text", "word " * 200, "--truncate", "--json")
    assert rc == 0, err
    assert json.loads(out)["tokens"] == 128


def test_malformed_tsv_names_line(tiny_project, tmp_path, capsys):
    data = tmp_path / "bad.tsv"
    data.write_text("1\tgood\n0\tbad\nnot-a-label-line\n")
    rc, _, err = run_cli(capsys, "eval", tiny_project, "--data", data)
    assert rc != 0 and "bad.tsv:3:" in err and "label<TAB>text" in err


def test_corrupted_and_foreign_projects(tiny_project, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_project, broken)
    (broken / "quant.npz").write_bytes(b"garbage")
    rc, _, err = run_cli(capsys, "run", broken, "--text", "hi")
    assert rc != 0 and "checksum" in err
    (broken / "quant.npz").unlink()
    rc, _, err = run_cli(capsys, "run", broken, "--text", "hi")
    assert rc != 0 and "missing quant.npz" in err
    old = tmp_path / "old"
    shutil.copytree(tiny_project, old)
    m = json.loads((old / "manifest.json").read_text())
    m["format_version"], m["padless_version"] = 0, "0.0.1"
    (old / "manifest.json").write_text(json.dumps(m))
    rc, _, err = run_cli(capsys, "run", old, "--text", "hi")
    assert rc != 0 and "recompile" in err and "0.0.1" in err
    (old / "manifest.json").write_text("{not json")
    rc, _, err = run_cli(capsys, "run", old, "--text", "hi")
    assert rc != 0 and "not valid JSON" in err


def test_console_script_exits_without_traceback(tmp_path):
    r = subprocess.run([PADLESS, "run", str(tmp_path / "missing"), "--text", "x"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("padless: error:") and "Traceback" not in r.stderr
