"""The cycle-annotated C-simulation of the generated kernel (issue 17): its bits equal the untimed csim's
and the golden model's, its cycles depend on the lengths alone and are the same in the fast and the
synthesizable form, the cycle model agrees with it within 10% on real length mixes, and ``padless
profile`` / ``padless check`` report what they promise."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from padless.cli import main as cli_main
from padless.codegen.hls import generate
from padless.data.datasets import load_dataset
from padless.golden import run_encoder
from padless.project import load_project, update_manifest
from padless.runtime.backends.csim import CsimBackend
from padless.runtime.profile import profile
from crosscheck import input_rows, pack_rows


@pytest.fixture(scope="module")
def texts():
    """Real text, short and long: VADER movie snippets and Reuters articles."""
    return load_dataset("vader-movie", limit=24).texts + load_dataset("reuters", limit=6).texts


def _timed(project, x, off, form="fast", compute=True):
    b = CsimBackend(project, form=form, sim=dict(timed=True, exact_depth=True, compute=compute))
    try:
        y = b.run(x, off)
        return y, sum(r["cycles"] for r in b.reports), b.reports
    finally:
        b.close()


def test_timed_bits_equal_untimed_and_golden(tiny_project, texts):
    p = load_project(tiny_project)
    ids = p.tokenize(texts, truncate=True)
    x, off = pack_rows(input_rows(p, ids))
    want = run_encoder(p.quantized, x, off, p.sparsity)
    untimed = CsimBackend(p)
    try:
        y0 = untimed.run(x, off)
    finally:
        untimed.close()
    y1, cycles, _ = _timed(p, x, off)
    np.testing.assert_array_equal(y0, want)
    np.testing.assert_array_equal(y1, want)
    assert cycles > 0


def test_cycles_depend_on_lengths_only_and_match_across_forms(tiny_project, texts):
    p = load_project(tiny_project)
    ids = p.tokenize(texts[:8], truncate=True)
    x, off = pack_rows(input_rows(p, ids))
    _, real, _ = _timed(p, x, off)
    # other values of the same lengths, and no arithmetic at all: the same cycles
    rng = np.random.default_rng(3)
    _, other, _ = _timed(p, rng.integers(-128, 128, x.shape).astype(np.int8), off)
    _, blank, _ = _timed(p, np.zeros_like(x), off, compute=False)
    assert real == other == blank
    # the synthesizable form runs the same loops: the same cycles, the same bits
    y_fast, _, _ = _timed(p, x, off)
    y_synth, synth, _ = _timed(p, x, off, form="synth")
    assert synth == real
    np.testing.assert_array_equal(y_synth, y_fast)


def test_forms_match_through_the_carry_buffer_loader_and_top_k(tmp_path, texts):
    """25% bank-balanced weights on kv260 (a bank of 16 keeps 12) with top-k attention, the plan's allocation
    set to streamed weights (the loader runs before every layer's region, inside the timed call) and one bank a
    cycle in the attention output MVU (a sparse word of 24 bytes, which neither divides nor is divided by the
    16-byte m_axi beat: load_elems runs its carry-buffer loop): the fast form's switches in the loader, the
    selection and the MVU count the synthesizable form's cycles and compute its bits."""
    from padless.build import compile_project
    out = tmp_path / "sp25"
    compile_project("tiny", board="kv260", out=out, calib_count=16,
                    config={"weights": {"sparsity": 0.25, "bank": 16}, "attention": {"topk": 8},
                            "quant": {"rounding": "nearest"}})
    p = load_project(out)
    sched = dict(p.manifest["schedule"])
    alloc = dict(sched.get("allocation") or {})
    sched["allocation"] = {**alloc, "resident": False, "simd": {**(alloc.get("simd") or {}), "out": 12}}
    update_manifest(out, {"schedule": sched})
    generate(load_project(out), p.board)
    p = load_project(out)
    eng = p.manifest["hls"]["engine"]
    assert eng["p_max"] == 12 and eng["resident"] is False and eng["folding"]["out"][1] == 12
    from padless.codegen.hls import kernel_config
    from padless.schedule.engine import weight_loads
    assert [w["name"] for w in weight_loads(kernel_config(p, p.board)) if w["carry"]] == ["w_out"]
    x, off = pack_rows(input_rows(p, p.tokenize(texts[:6] + texts[-2:], truncate=True)))
    y_fast, fast, _ = _timed(p, x, off)
    y_synth, synth, _ = _timed(p, x, off, form="synth")
    assert fast == synth > 0
    np.testing.assert_array_equal(y_fast, y_synth)
    np.testing.assert_array_equal(y_fast, run_encoder(p.quantized, x, off, p.sparsity))


def test_longer_sequences_cost_more_and_padding_costs_cycles(tiny_project):
    p = load_project(tiny_project)
    short = profile(p, lengths=[8] * 12, baselines=False)
    long = profile(p, lengths=[40] * 12, baselines=False)
    assert long["cycles"] > short["cycles"]
    mixed = profile(p, lengths=[5, 60, 9, 33, 12, 7, 48, 3], batch_size=4, fixed_length=64)
    assert mixed["padded_max"]["cycles"] > mixed["padded_batch"]["cycles"] > mixed["cycles"]
    assert mixed["speedup_vs"]["padded_max"] > 1 and mixed["speedup_vs"]["padded_fixed"] > 1
    assert set(mixed["stage_busy"]) >= {"p_qkv", "p_select", "p_attn_qk", "p_out", "p_up", "p_down", "p_writer"}
    assert all(0 <= v <= 1 for v in mixed["stage_busy"].values())


def _real_lengths(project, n_short=60, n_long=12):
    texts = load_dataset("vader-movie", limit=n_short).texts + load_dataset("reuters", limit=n_long).texts
    return [len(i) for i in project.tokenize(texts, truncate=True)]


def test_model_agrees_with_the_timed_csim_on_a_real_mix(tiny_project):
    p = load_project(tiny_project)
    res = profile(p, lengths=_real_lengths(p))
    assert abs(res["model_error"]) <= 0.10, res["model_error"]
    for b in ("padded_max", "padded_batch", "padded_fixed"):
        model = res["model"]["baselines"][b]["throughput_seq_s"]
        assert abs(model / res[b]["throughput_seq_s"] - 1) <= 0.10, (b, model, res[b]["throughput_seq_s"])


def test_model_agrees_with_top_k_attention_and_three_sequence_blocks(tiny_project, tmp_path):
    d = tmp_path / "proj"
    shutil.copytree(tiny_project, d)
    p = load_project(d)
    sched = dict(p.manifest.get("schedule") or {})
    sched["engine"] = {**(sched.get("engine") or {}), "seq_blocks": 3}
    update_manifest(d, {"sparsity": {**p.sparsity, "attention": {"density": 0.25, "min_k": 8}}, "schedule": sched})
    p = load_project(d)
    generate(p, p.board)
    p = load_project(d)
    assert p.manifest["hls"]["engine"]["seq_blocks"] == 3
    lens = _real_lengths(p, 40, 8)
    res = profile(p, lengths=lens, baselines=False)
    assert abs(res["model_error"]) <= 0.10, res["model_error"]
    # and the bits still equal golden with three blocks in flight
    ids = p.tokenize(load_dataset("reuters", limit=3).texts + load_dataset("vader-movie", limit=6).texts,
                     truncate=True)
    x, off = pack_rows(input_rows(p, ids))
    y, _, _ = _timed(p, x, off)
    np.testing.assert_array_equal(y, run_encoder(p.quantized, x, off, p.sparsity))


def test_profile_cli_json(tiny_project, capsys):
    rc = cli_main(["profile", str(tiny_project), "--lengths", "5,17,40,9", "--json", "--fixed-length", "64"])
    assert rc in (0, None)
    out = json.loads(capsys.readouterr().out)
    for key in ("cycles", "seconds", "throughput_seq_s", "throughput_tokens_s", "stage_busy", "efficiency_vs_peak",
                "padded_max", "padded_batch", "padded_fixed", "speedup_vs", "model", "model_error"):
        assert key in out, key
    assert out["sequences"] == 4 and out["tokens"] == 71
    assert "simulated" in out["label"]
    # the honest clock, its source, and the upper bound at the platform maximum with ideal memory
    from padless.boards import load_board
    b = load_board("u280")
    assert out["clock_mhz"] == out["clock_MHz"] == b.clock_MHz and "AutoBridge" in out["clock_source"]
    assert out["label"].startswith(f"simulated at {b.clock_MHz:g} MHz (II and depths declared, not synthesized)")
    assert "m_axi modeled" in out["label"]
    ub = out["upper_bound"]
    assert ub["clock_mhz"] == b.clock_max_MHz and ub["memory"] == "ideal"
    assert ub["throughput_seq_s"] >= out["throughput_seq_s"] * b.clock_max_MHz / b.clock_MHz * 0.999


def test_profile_cli_rejects_bad_lengths(tiny_project, capsys):
    assert cli_main(["profile", str(tiny_project), "--lengths", "5,x"]) != 0
    assert "'x' is not a whole number" in capsys.readouterr().err


def test_check_cli_json_on_real_sentences(tiny_project, capsys):
    rc = cli_main(["check", str(tiny_project), "--dataset", "vader-movie", "--limit", "6", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc in (0, None)
    assert out["sequences"] == 6 and out["bit_exact"] is True
    assert out["port_violations"] == 0 and out["deadlock"] is False
    assert out["resources"]["fits"] is True
    assert {"bram_36k", "uram", "dsp", "lut"} <= set(out["resources"])


def test_dse_estimate_agrees_with_the_timed_csim_on_a_heavy_tailed_mix(tiny_project, tmp_path):
    """The DSE plans the engine for a length mix (short movie snippets and a tail of long articles, like
    fortunes); its estimate must be what the generated kernel then runs, within 10%."""
    from padless.schedule.dse import plan
    d = tmp_path / "planned"
    shutil.copytree(tiny_project, d)
    p = load_project(d)
    lens = _real_lengths(p, 48, 6)
    pl = plan(p.model, p.board, p.sparsity, lens)
    update_manifest(d, {"schedule": pl})
    generate(load_project(d), p.board)
    p = load_project(d)
    assert p.manifest["hls"]["engine"] == pl["engine"]
    res = profile(p, lengths=lens, baselines=False)
    err = pl["estimate"]["throughput_seq_s"] / res["throughput_seq_s"] - 1
    assert abs(err) <= 0.10, (err, pl["estimate"]["throughput_seq_s"], res["throughput_seq_s"])


@pytest.fixture(scope="module")
def minilm_projects(tmp_path_factory):
    """Real minilm-l6 u280 projects by variant, compiled on first use: dense, top-k attention (the dense
    project's plan with `attention: {topk: 16}`, regenerated), 50% bank-balanced weights. `rounding: nearest`
    and a short calibration keep the compiles fast and change no hardware parameter."""
    from padless.build import compile_project
    base = tmp_path_factory.mktemp("minilm-forms")
    made = {}

    def get(variant):
        if variant in made:
            return made[variant]
        cfg = {"quant": {"rounding": "nearest", "gptq_calibration": None}}
        if variant == "topk":
            d = base / "topk"
            shutil.copytree(get("dense"), d)
            update_manifest(d, {"sparsity": {**load_project(d).sparsity, "attention": {"topk": 16}}})
            generate(load_project(d), load_project(d).board)
        else:
            if variant == "weights50":
                cfg["weights"] = {"sparsity": 0.5, "bank": 16}
            d = base / variant
            compile_project("minilm-l6", board="u280", out=d, config=cfg, calib_count=16)
        made[variant] = d
        return d
    return get


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["dense", "topk", "weights50"])
def test_fast_and_synth_forms_count_the_same_cycles_on_minilm(variant, minilm_projects):
    """Issue 24, item 7 on the real minilm-l6 projects: every loop is one code path, the fast form a switch
    inside its body (MVU folds, the selection's copy and top-k, Q.K / P.V, the weight loader), so the timed
    csim of the fast form (what `padless profile` runs) counts exactly the synthesizable form's cycles, and
    both compute the golden model's bits, on real sentences (two VADER movie snippets and a Reuters article)."""
    p = load_project(minilm_projects(variant))
    if variant == "topk":
        assert p.sparsity["attention"] == {"topk": 16}
    texts = load_dataset("vader-movie", limit=2).texts + load_dataset("reuters", limit=1).texts
    x, off = pack_rows(input_rows(p, p.tokenize(texts, truncate=True)))
    y_fast, fast, _ = _timed(p, x, off)
    y_synth, synth, _ = _timed(p, x, off, form="synth")
    assert fast == synth > 0
    np.testing.assert_array_equal(y_fast, y_synth)
    np.testing.assert_array_equal(y_fast, run_encoder(p.quantized, x, off, p.sparsity))
