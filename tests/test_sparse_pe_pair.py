"""Weight pattern pe-pair (issue 26, item 2): output rows 2i and 2i + 1 keep the same columns in every bank,
so the sparse MVU feeds one input to two kept weights on one DSP48E2.

The config key, the pattern invariants of every pruner (magnitude, activation-aware, SparseGPT, the
fine-tune masks), the packed format with one index set per row pair and its weights.bin words, the
resource and DSE model (two MACs a DSP, half the index memory), and golden = csim (both forms) = pynq-sim
= ONNX on real sentences for tiny (and minilm-l6, slow)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from padless.codegen.weights import pair_index_bytes, pe_pair_words, read_header
from padless.errors import InputError
from padless.opcount import weight_layout
from padless.sparse.config import parse_sparsity, pattern_rows
from padless.sparse.sparsegpt import obs_prune
from padless.sparse.weights import (_unpack_bits, bank_balanced_mask, is_pattern_balanced, kept_per_bank,
                                    pack_pe_pair, packed_nbytes, prune_spec, prune_weight, unpack_pe_pair,
                                    LINEAR_NAMES)

from crosscheck import assert_csim_equals_golden

PAIR = {"sparsity": 0.5, "bank": 16, "pattern": "pe-pair"}


def assert_onnx_equals_golden(project, ids, onnx_path):
    """The exported integer core under onnxruntime = the golden model with the project's sparsity (its
    top-k attention included), sequence by sequence."""
    ort = pytest.importorskip("onnxruntime")
    from padless.export_onnx import export_onnx
    from padless.golden import quantize_input, run_encoder
    from padless.reference import embed
    sess = ort.InferenceSession(str(export_onnx(project.path, onnx_path, core_only=True)),
                                providers=["CPUExecutionProvider"])
    qe = project.quantized
    for s in ids:
        x = quantize_input(embed(project.host, s), np.asarray(qe.input_scale))
        want = run_encoder(qe, x, np.array([0, len(x)]), project.sparsity)
        np.testing.assert_array_equal(sess.run(None, {"hidden_in": x[None]})[0][0], want)


def assert_pairs_share(w, bank, keep, exact=True):
    """Every bank of every row pair (2i, 2i + 1): the same kept columns in both rows, ``keep`` of them
    (at most ``keep`` when not ``exact``: a kept weight may be exactly 0)."""
    w = np.asarray(w)
    nz = w.reshape(w.shape[0] // 2, 2, -1, bank) != 0
    union = nz.any(axis=1)
    if exact:
        assert (nz[:, 0] == nz[:, 1]).all(), "a pair keeps different columns"
        assert (union.sum(axis=2) == keep).all()
    else:
        assert (union.sum(axis=2) <= keep).all()


# ---- config ----------------------------------------------------------------------------------------------
def test_config_key_normalised_and_validated():
    sp = parse_sparsity({"weights": {"sparsity": 0.5, "bank": 16, "pattern": "pe-pair"}})
    assert sp["weights"]["pattern"] == "pe-pair" and pattern_rows(sp["weights"]) == 2
    assert parse_sparsity(json.loads(json.dumps(sp))) == sp
    row = parse_sparsity({"weights": {"sparsity": 0.5, "bank": 16, "pattern": "row"}})
    assert "pattern" not in row["weights"] and pattern_rows(row["weights"]) == 1   # the default, not stored
    with pytest.raises(InputError, match="weights pattern 'pairs' is not available; choose row"):
        parse_sparsity({"weights": {"sparsity": 0.5, "pattern": "pairs"}})
    with pytest.raises(InputError, match="unknown keys"):
        parse_sparsity({"weights": {"sparsity": 0.5, "rows": 2}})
    assert weight_layout(8, 64, PAIR)["index_bits"] * 2 == weight_layout(8, 64, {**PAIR, "pattern": "row"})["index_bits"]


def test_compile_refuses_a_bad_pattern_with_one_line(tmp_path, capsys):
    from padless.cli import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text("weights: {sparsity: 0.5, bank: 16, pattern: diagonal}\n")
    assert main(["compile", "tiny", "--board", "u280", "--config", str(cfg), "--out", str(tmp_path / "p")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("padless: error:") and "pattern" in err[0]
    assert not (tmp_path / "p").exists()


# ---- pruners ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bank,s", [(16, 0.5), (16, 0.75), (8, 0.5), (4, 0.25)])
def test_magnitude_and_activation_masks_share_columns_per_pair(bank, s):
    rng = np.random.default_rng(bank + int(100 * s))
    w = rng.normal(size=(12, 4 * bank)).astype(np.float32)
    keep = kept_per_bank(bank, s)
    for norm in (None, rng.uniform(0.1, 3.0, 4 * bank)):
        mask = bank_balanced_mask(w, bank, s, norm, rows=2)
        assert_pairs_share(mask, bank, keep)
        score = np.abs(w) * (1 if norm is None else norm[None, :])
        pair = score.reshape(6, 2, 4, bank).sum(axis=1)              # the pair's summed score
        m = mask.reshape(6, 2, 4, bank)[:, 0]
        for q in range(6):
            for b in range(4):
                ranked = sorted(range(bank), key=lambda j: (-pair[q, b, j], j))[:keep]
                assert sorted(np.flatnonzero(m[q, b]).tolist()) == sorted(ranked)
        pruned = prune_weight(w, bank, s, norm, rows=2)
        assert np.array_equal(pruned, np.where(mask, w, 0))
    with pytest.raises(InputError, match="odd"):
        bank_balanced_mask(w[:5], bank, s, rows=2)


def test_sparsegpt_pair_masks_and_reconstruction():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 64)) @ rng.normal(size=(64, 64)) * 0.3
    w = rng.normal(size=(10, 64)).astype(np.float32)
    out = obs_prune(w, x.T @ x, 16, 0.5, rows=2)
    assert_pairs_share(out, 16, 8)
    # the reconstruction still beats plain pair magnitude pruning on the calibration outputs
    mag = prune_weight(w, 16, 0.5, rows=2)
    err = lambda v: np.linalg.norm(x @ (v - w).T)  # noqa: E731
    assert err(out) < err(mag)
    with pytest.raises(InputError, match="even number"):
        obs_prune(w[:3], x.T @ x, 16, 0.5, rows=2)


def test_prune_spec_every_criterion_honours_the_pattern(tiny_spec, movie_texts):
    from padless.models import Tokenizer
    ids = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions).encode(movie_texts.texts[:24], truncate=True)
    for criterion in ("magnitude", "activation", "sparsegpt"):
        out = prune_spec(tiny_spec, {**PAIR, "criterion": criterion, "layers": {"1": 0.75}}, token_ids=ids)
        for i, layer in enumerate(out.layers):
            for name in LINEAR_NAMES:
                assert_pairs_share(getattr(layer, name).weight, 16, 4 if i == 1 else 8, exact=criterion != "sparsegpt")


def test_finetune_masks_keep_the_pairing(tmp_path):
    torch = pytest.importorskip("torch")
    from padless.finetune import finetune, is_bank_balanced, weight_mask
    from padless.models import resolve_model
    w = torch.randn(8, 32)
    m = weight_mask(w, 16, 0.5, rows=2)
    assert_pairs_share(m.numpy(), 16, 8)
    assert is_bank_balanced(w * m, 16, 0.5, rows=2) and not is_bank_balanced(w * weight_mask(w, 16, 0.5), 16, 0.5, rows=2)
    torch.set_num_threads(2)
    cfg = {"weights": PAIR,
           "train": {"steps": 6, "batch_size": 4, "max_len": 16, "lr": 1e-3, "ramp": 0.5, "mask_every": 2,
                     "checkpoint_every": 6, "texts_per_dataset": 16, "seed": 1, "init": "magnitude"}}
    res = finetune("tiny", cfg, tmp_path / "ft", progress=False)
    assert res["finished"] and res["sparsity"] == pytest.approx(0.5, abs=1e-3)
    spec, _ = resolve_model(str(tmp_path / "ft"))
    for layer in spec.layers:
        for name in LINEAR_NAMES:
            wt = getattr(layer, name).weight
            assert is_bank_balanced(wt, 16, 0.5, rows=2)
            assert_pairs_share(wt, 16, 8, exact=False)
    again = prune_spec(spec, PAIR)          # compile-time pruning of the student changes nothing
    for a, b in zip(spec.layers, again.layers):
        for name in LINEAR_NAMES:
            assert np.array_equal(getattr(a, name).weight, getattr(b, name).weight)


# ---- packed format and weights.bin -----------------------------------------------------------------------
@pytest.mark.parametrize("bank,s", [(16, 0.5), (16, 0.75), (8, 0.5), (12, 0.6)])
def test_pack_pe_pair_round_trip_and_half_the_index_bytes(bank, s):
    rng = np.random.default_rng(bank)
    w = prune_weight(rng.integers(-127, 128, size=(10, 4 * bank)).astype(np.int8), bank, s, rows=2)
    w[0, :bank] = 0                        # a pair bank where one row lost every kept weight to int8 rounding
    w[3, bank:2 * bank] = 0
    p = kept_per_bank(bank, s)
    values, idx = pack_pe_pair(w, bank, per_bank=p)
    assert values.shape == (10, 4, p) and values.dtype == np.int8
    assert np.array_equal(unpack_pe_pair(values, idx, w.shape[1], bank), w)
    sizes = packed_nbytes(10, 4 * bank, bank, p, rows=2)
    assert idx.nbytes == sizes["indices"] == (packed_nbytes(10, 4 * bank, bank, p)["indices"] + 1) // 2
    assert sizes["indices"] == weight_layout(10, 4 * bank, {"sparsity": s, "bank": bank, "pattern": "pe-pair"})["index_bytes"]
    # one index set a pair: the slot's index is the column of both rows' values
    ix = _unpack_bits(idx, 5 * 4 * p, (bank - 1).bit_length()).reshape(5, 4, p)
    for o in range(10):
        for b in range(4):
            assert np.array_equal(values[o, b], w[o, b * bank + ix[o // 2, b]])


def test_pack_pe_pair_refuses_rows_that_do_not_share():
    w = np.zeros((2, 16), np.int8)
    w[0, [0, 1]] = 5
    w[1, [2, 3]] = 5                       # 4 columns between the pair, 2 slots
    with pytest.raises(InputError, match="rows 0 and 1 bank 0 use 4 different columns"):
        pack_pe_pair(w, 16, per_bank=2)
    with pytest.raises(InputError, match="odd"):
        pack_pe_pair(np.zeros((3, 16), np.int8), 16)
    assert is_pattern_balanced(w, 16, 0.75) and not is_pattern_balanced(w, 16, 0.875, rows=2)


@pytest.mark.parametrize("pe,simd,p", [(4, 8, 4), (2, 64, 8), (4, 24, 8), (2, 12, 4)])
def test_weights_bin_words_decode_to_the_matrix(pe, simd, p):
    """pe_pair_words: value words (nf, sf, p), zero padding to 64 bytes, then one bit-packed index word
    per PE pair (nf, sf, q) of pair_index_bytes each, decoded here independently of the kernel."""
    bank, out, inp = 16, 8, 384
    rng = np.random.default_rng(pe * simd)
    w = prune_weight(rng.integers(-127, 128, size=(out, inp)).astype(np.int8), bank, 1 - p / bank, rows=2)
    raw = pe_pair_words(w, pe, simd, bank, p, p)
    nb, nbpc = inp // bank, simd // p
    sf_n, nf_n = nb // nbpc, out // pe
    vbytes = nf_n * sf_n * pe * simd
    ib = pair_index_bytes(simd, 4)
    assert ib in (1, 2, 4, 8, 16, 32, 64) or ib % 64 == 0
    assert len(raw) == (vbytes + 63) // 64 * 64 + nf_n * sf_n * (pe // 2) * ib
    vals = np.frombuffer(raw[:vbytes], np.int8).reshape(nf_n, sf_n, pe, simd)
    idx_base = (vbytes + 63) // 64 * 64
    dec = np.zeros_like(w, dtype=np.int64)
    for nf in range(nf_n):
        for sf in range(sf_n):
            for q in range(pe // 2):
                k = (nf * sf_n + sf) * (pe // 2) + q
                word = np.frombuffer(raw[idx_base + k * ib: idx_base + (k + 1) * ib], np.uint8)
                ix = _unpack_bits(word, simd, 4)
                for lane in (2 * q, 2 * q + 1):
                    o = nf * pe + lane
                    for j in range(simd):
                        col = (sf * nbpc + j // p) * bank + ix[j]
                        dec[o, col] += vals[nf, sf, lane, j]
    assert np.array_equal(dec, w)


# ---- the resource / DSE model ----------------------------------------------------------------------------
def test_model_two_macs_per_dsp_and_half_the_index_memory():
    from padless.boards import load_board
    from padless.schedule.engine import (_mvu_logic, dsp_count, engine_config, mac_per_dsp, memories,
                                         process_cycles, weight_loads)
    model = {"hidden_size": 384, "num_heads": 12, "head_dim": 32, "intermediate_size": 1536, "num_layers": 6,
             "max_positions": 512, "max_seq_length": 128}
    u280 = load_board("u280")
    alloc = {"pe": {"qkv": 8, "out": 8, "ffn_up": 8, "ffn_down": 8}, "simd": {"qkv": 64, "out": 64, "ffn_up": 64,
                                                                            "ffn_down": 64}}
    row = engine_config(model, {"weights": {"sparsity": 0.5, "bank": 16}}, u280, alloc)
    pair = engine_config(model, {"weights": PAIR}, u280, alloc)
    dense = engine_config(model, None, u280, alloc)
    assert pair.paired and not row.paired and pair.folding == row.folding
    assert mac_per_dsp(u280, True, True) == 2 == mac_per_dsp(u280, False) and mac_per_dsp(u280, True) == 1
    assert mac_per_dsp(load_board("pynq-z2"), True, True) == 1          # DSP48E1: no packing
    d_row, d_pair = dsp_count(row), dsp_count(pair)
    for m in ("qkv", "out", "up", "down"):
        pe, simd = pair.folding[m]
        assert d_row[m] - d_pair[m] == pe * simd // 2                      # the MACs on half the DSPs
        # the same kept inputs a cycle: equal cycles a row (and half the DSPs); the packed MVU covers 2x
        # the dense inputs a cycle at 50%, so at equal MAC DSPs a row takes half the old sparse cycles
        assert process_cycles(pair, 20)[f"p_{m}"] == process_cycles(row, 20)[f"p_{m}"]
        assert _mvu_logic(pair, m, "DSP48E2")["detail"]["sparse_mux"] * 2 == _mvu_logic(row, m, "DSP48E2")["detail"]["sparse_mux"]
    mem = lambda c: {x["name"]: x for x in memories(c)}  # noqa: E731
    for m in ("qkv", "out", "up", "down"):
        assert mem(pair)[f"i_{m}"]["depth"] * 2 == mem(row)[f"i_{m}"]["depth"]
        assert mem(pair)[f"w_{m}"] == mem(row)[f"w_{m}"]
        assert f"i_{m}" not in mem(dense)
    loads = {x["name"]: x for x in weight_loads(pair)}
    assert loads["w_qkv"]["elem_bytes"] == 64 and loads["i_qkv"]["elem_bytes"] == 32
    assert not any(x["carry"] for x in loads.values())
    # pe-pair never plans a single lane (a pair is two lanes of one DSP)
    one = engine_config(model, {"weights": PAIR}, u280, {"pe": {"out": 1}})
    assert one.folding["out"][0] == 2


def test_dse_plans_pe_pair_faster_than_row_at_the_same_cap():
    from padless.schedule.dse import plan
    from padless.models import resolve_model
    spec, _ = resolve_model("tiny")
    model = {"hidden_size": spec.hidden_size, "num_heads": spec.num_heads, "head_dim": spec.hidden_size // spec.num_heads,
             "intermediate_size": spec.intermediate_size, "num_layers": spec.num_layers, "max_positions": 128,
             "max_seq_length": 64}
    lens = [12, 20, 33, 7, 50, 18] * 10
    row = plan(model, "zcu104", {"weights": {"sparsity": 0.5, "bank": 16}}, lens)
    pair = plan(model, "zcu104", {"weights": PAIR}, lens)
    assert pair["mac_per_dsp"] == 2 and row["mac_per_dsp"] == 1 and pair["engine"]["pattern"] == "pe-pair"
    assert pair["estimate"]["throughput_seq_s"] > row["estimate"]["throughput_seq_s"]
    assert all(pe >= 2 for pe, _ in pair["engine"]["folding"].values())


# ---- bit-exactness across backends on real sentences -------------------------------------------------------
@pytest.fixture(scope="module")
def pair_project(tmp_path_factory):
    from padless.build import compile_project
    from padless.project import load_project
    out = tmp_path_factory.mktemp("pepair") / "proj"
    compile_project("tiny", board="u280", out=out, config={"weights": PAIR, "attention": {"topk": 8}})
    return load_project(out)


@pytest.fixture(scope="module")
def pair_ids(pair_project):
    from padless.data.datasets import load_dataset
    texts = load_dataset("vader-movie", limit=40).texts + load_dataset("reuters", limit=3).texts
    return pair_project.tokenize(texts, truncate=True)


def test_project_and_weights_bin_record_the_pattern(pair_project):
    hdr = read_header(pair_project.path / "weights.bin")
    assert hdr["sparse"] and hdr["pattern"] == "pe-pair" and hdr["bank"] == 16
    eng = pair_project.manifest["hls"]["engine"]
    assert eng["pattern"] == "pe-pair" and pair_project.manifest["hls"]["weights_layout"]["pattern"] == "pe-pair"
    cfg = (pair_project.path / "hls" / "config.h").read_text()
    assert "#define PADLESS_SPARSE_WEIGHTS 2" in cfg
    for layer in pair_project.quantized.layers:
        for name in ("q", "k", "v", "o", "up", "down"):
            assert_pairs_share(getattr(layer, name).w, 16, 8, exact=False)


@pytest.mark.parametrize("form", ["fast", "synth"])
def test_csim_equals_golden(pair_project, pair_ids, tmp_path, form):
    assert_csim_equals_golden(pair_project, pair_ids, tmp_path / "cache", form)


def test_pynq_sim_and_onnx_equal_golden(pair_project, pair_ids, tmp_path):
    pytest.importorskip("pynq")
    from padless.runtime import simdevice
    from padless.runtime.backends.golden import GoldenBackend
    from padless.runtime.backends.pynq import PynqBackend
    from padless.runtime.host import run_hidden
    b = PynqBackend(pair_project, device=simdevice.enable())
    try:
        got = run_hidden(pair_project, b, pair_ids[:24], max_tokens=400)
    finally:
        b.close()
    want = run_hidden(pair_project, GoldenBackend(pair_project), pair_ids[:24], max_tokens=400)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert_onnx_equals_golden(pair_project, pair_ids[:24], tmp_path / "core.onnx")


def test_check_is_clean(pair_project, pair_ids):
    """`padless check` on the pe-pair kernel: the synthesizable form with the port checker and the deadlock
    check on real sentences equals golden; every array it declares (the pairs' index memories included)
    goes through a port-checked macro, and none is accessed more often a cycle than its ports allow."""
    from padless.commands.check import check
    out = check(pair_project, pair_ids[:4] + pair_ids[-1:])
    assert out["bit_exact"] and out["mismatches"] == 0 and not out["deadlock"] and out["kernel_error"] is None
    assert out["port_violations"] == 0 and out["arrays_checked"] == out["arrays_declared"]
    from padless.synth_check import kernel_arrays
    assert "padless_encoder.cpp:i_qkv" in kernel_arrays(pair_project.path)["declared"]


@pytest.mark.slow
def test_minilm_pe_pair_bit_exact(tmp_path):
    """minilm-l6 at 50% pe-pair (quant rounding nearest: a fast compile; the pattern is what is checked):
    golden = csim (fast form) = ONNX on real movie snippets and Reuters articles."""
    from padless.build import compile_project
    from padless.data.datasets import load_dataset
    from padless.project import load_project
    out = tmp_path / "m"
    compile_project("minilm-l6", board="u280", out=out,
                    config={"weights": PAIR, "quant": {"rounding": "nearest"}})
    p = load_project(out)
    ids = p.tokenize(load_dataset("vader-movie", limit=24).texts + load_dataset("reuters", limit=2).texts,
                     truncate=True)
    assert_csim_equals_golden(p, ids, tmp_path / "cache", "fast")
    assert_onnx_equals_golden(p, ids[:8], tmp_path / "core.onnx")


@pytest.mark.slow
def test_streamed_pe_pair_engine_cycles_agree_with_the_model(pair_project, tmp_path):
    """A streamed pe-pair engine loads every layer's value words and pair index words over m_axi before its
    region: every access is part of a burst (no carry buffer, no single beat), the cycle model (the weight
    load included) follows the timed csim within 10%, and the bits equal golden."""
    from crosscheck import streamed_copy

    from padless.golden import run_encoder
    from padless.runtime.backends.csim import CsimBackend
    from padless.runtime.profile import profile
    p = streamed_copy(pair_project.path, tmp_path / "streamed", "u280")
    lens = [5, 17, 40, 9, 23, 2, 31, 12]
    res = profile(p, lengths=lens, baselines=False)
    assert abs(res["model_error"]) <= 0.10, res["model_error"]
    x = np.random.default_rng(0).integers(-127, 128, (sum(lens), p.model["hidden_size"])).astype(np.int8)
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    b = CsimBackend(p, sim=dict(timed=True, exact_depth=True))
    try:
        y = b.run(x, off)
        ports = {m["port"]: m for m in b.reports[-1]["maxi"]}
    finally:
        b.close()
    assert ports["GMEM4"]["single"] == 0 and ports["GMEM4"]["requests"] >= 1
    np.testing.assert_array_equal(y, run_encoder(p.quantized, x, off, p.sparsity))
