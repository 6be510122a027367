"""Issue 26: function-preserving row permutations that pair similar rows for pattern pe-pair
(``weights: {pattern: pe-pair, permute: true}``, :mod:`padless.sparse.permute`).

Each permutation is a bijection of its group (FFN channels; head-dim channels inside each head for V and
for Q/K together); the permuted fp32 model gives the same hidden states on real sentences; pruning the
permuted model keeps the pe-pair invariants and keeps at least the importance of the neighbour pairing;
bad configs are refused with one clear error."""
from __future__ import annotations

import json

import numpy as np
import pytest

from padless.errors import InputError
from padless.opcount import check_sparsity
from padless.reference import encode_fp32
from padless.sparse.config import parse_sparsity
from padless.sparse.permute import (apply_permutations, importance, pair_loss, pair_rows, pairing_kept,
                                    permute_norms, permute_spec, plan_permutations)
from padless.sparse.weights import (LINEAR_NAMES, input_norms, is_pattern_balanced, kept_per_bank, prune_spec,
                                    prune_weight)

PERM = {"sparsity": 0.5, "bank": 16, "pattern": "pe-pair", "permute": True}


@pytest.fixture(scope="module")
def ids(tiny_spec, movie_texts):
    from padless.models import Tokenizer
    return Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions).encode(movie_texts.texts[:16], truncate=True)


@pytest.fixture(scope="module")
def norms(tiny_spec, ids):
    return input_norms(tiny_spec, ids)


# ---- the matching ----------------------------------------------------------------------------------------
def test_pair_loss_is_what_sharing_costs():
    rng = np.random.default_rng(0)
    s = rng.random((6, 32))
    loss, r = pair_loss(s, 16, 4)
    for a in range(6):
        assert r[a] == pytest.approx(sum(np.sort(s[a, b * 16:(b + 1) * 16])[-4:].sum() for b in range(2)))
        for b in range(a + 1, 6):
            both = s[a] + s[b]
            kept = sum(np.sort(both[k * 16:(k + 1) * 16])[-4:].sum() for k in range(2))
            assert loss[a, b] == pytest.approx(r[a] + r[b] - kept, rel=1e-5, abs=1e-5)
            assert loss[a, b] >= -1e-5 and loss[a, b] == pytest.approx(loss[b, a])


def test_pair_rows_finds_the_pairing_that_loses_nothing():
    """Rows 0..7 whose columns follow 4 patterns, interleaved so that neighbours never match: the only
    lossless pairing joins rows of one pattern, and the matching must find it."""
    rng = np.random.default_rng(1)
    patterns = rng.permutation(16).reshape(4, 4)                  # 4 disjoint column sets
    owner = [0, 1, 2, 3, 0, 1, 2, 3]
    s = np.full((8, 16), 1e-3)
    for row, p in enumerate(owner):
        s[row, patterns[p]] = rng.random(4) + 1
    perm = pair_rows([s], 16, 4)
    assert sorted(perm) == list(range(8))
    pairs = perm.reshape(4, 2)
    assert all(owner[a] == owner[b] for a, b in pairs)
    assert list(pairs[:, 0]) == sorted(pairs[:, 0]) and (pairs[:, 0] < pairs[:, 1]).all()  # near the identity
    assert pairing_kept(s, 16, 4, perm) == pytest.approx(sum(np.sort(row)[-4:].sum() for row in s))
    assert pairing_kept(s, 16, 4, perm) > pairing_kept(s, 16, 4) * 1.5


def test_an_already_paired_matrix_keeps_the_identity():
    """A pe-pair-pruned matrix (a fine-tuned student) keeps all of its importance with rows 2i, 2i + 1:
    no reordering can keep more, so nothing moves."""
    w = prune_weight(np.random.default_rng(2).standard_normal((32, 64)), 16, 0.5, rows=2)
    assert np.array_equal(pair_rows([importance(w)], 16, kept_per_bank(16, 0.5)), np.arange(32))


def test_pair_rows_refuses_odd_rows():
    with pytest.raises(InputError, match="even row count"):
        pair_rows([np.ones((5, 16))], 16, 8)


# ---- the permuted model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("criterion", ["magnitude", "activation", "sparsegpt"])
def test_plans_are_bijections_inside_their_groups(tiny_spec, norms, criterion):
    plans = plan_permutations(tiny_spec, {**PERM, "criterion": criterion}, norms)
    d, moved = tiny_spec.head_dim, 0
    for plan in plans:
        assert np.array_equal(np.sort(plan["ffn"]), np.arange(tiny_spec.intermediate_size))
        for key in ("qk", "v"):
            assert np.array_equal(np.sort(plan[key]), np.arange(tiny_spec.hidden_size))
            assert np.array_equal(plan[key] // d, np.arange(tiny_spec.hidden_size) // d)   # stays in its head
        moved += sum(int((p != np.arange(len(p))).sum()) for p in plan.values())
    assert moved > 0


@pytest.mark.parametrize("criterion", ["magnitude", "activation"])
def test_fp32_hidden_states_unchanged_on_real_sentences(tiny_spec, ids, norms, criterion):
    permuted, plans = permute_spec(tiny_spec, {**PERM, "criterion": criterion}, norms)
    assert not np.array_equal(permuted.layers[0].ffn_up.weight, tiny_spec.layers[0].ffn_up.weight)
    for a, b in zip(encode_fp32(tiny_spec, ids), encode_fp32(permuted, ids)):
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-5)
    # the norms of the permuted model are the dense ones, permuted (o reads the context, ffn_down the act)
    for want, got in zip(input_norms(permuted, ids), permute_norms(norms, plans)):
        for name in LINEAR_NAMES:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5)


def test_apply_refuses_a_channel_moved_across_heads(tiny_spec):
    plans = [{} for _ in tiny_spec.layers]
    plans[0] = {"v": np.roll(np.arange(tiny_spec.hidden_size), 1)}
    with pytest.raises(InputError, match="another head"):
        apply_permutations(tiny_spec, plans)
    plans[0] = {"ffn": np.zeros(tiny_spec.intermediate_size, dtype=int)}
    with pytest.raises(InputError, match="exactly once"):
        apply_permutations(tiny_spec, plans)


@pytest.mark.parametrize("criterion", ["magnitude", "activation", "sparsegpt"])
def test_pruned_permuted_model_keeps_the_pattern_and_more_importance(tiny_spec, ids, norms, criterion):
    cfg = {**PERM, "criterion": criterion, "layers": {"1": 0.75}}
    pruned = prune_spec(tiny_spec, cfg, token_ids=ids)
    for i, layer in enumerate(pruned.layers):
        s = 0.75 if i == 1 else 0.5
        for name in LINEAR_NAMES:
            assert is_pattern_balanced(getattr(layer, name).weight, 16, s, rows=2)
    # kept importance under pe-pair, per permutable group: never below rows (2i, 2i + 1), above it in total
    plans = plan_permutations(tiny_spec, cfg, norms)
    d, better = tiny_spec.head_dim, 0
    for i, (layer, plan) in enumerate(zip(tiny_spec.layers, plans)):
        p = kept_per_bank(16, 0.75 if i == 1 else 0.5)
        sc = {n: importance(getattr(layer, n).weight, criterion, norms[i][n]) for n in ("q", "k", "v", "ffn_up")}
        groups = [([sc["ffn_up"]], plan["ffn"])]
        for h in range(tiny_spec.num_heads):
            blk = slice(h * d, (h + 1) * d)
            groups += [([sc["q"][blk], sc["k"][blk]], plan["qk"][blk] - h * d),
                       ([sc["v"][blk]], plan["v"][blk] - h * d)]
        for mats, perm in groups:
            new = sum(pairing_kept(m, 16, p, perm) for m in mats)
            old = sum(pairing_kept(m, 16, p) for m in mats)
            assert new >= old
            better += new > old
    assert better >= len(tiny_spec.layers)


def test_prune_spec_permute_is_prune_of_the_permuted_model(tiny_spec):
    cfg = {**PERM, "criterion": "magnitude"}
    got = prune_spec(tiny_spec, cfg)
    want = prune_spec(apply_permutations(tiny_spec, plan_permutations(tiny_spec, cfg)), {**cfg, "permute": False})
    for a, b in zip(got.layers, want.layers):
        for name in LINEAR_NAMES:
            assert np.array_equal(getattr(a, name).weight, getattr(b, name).weight)
            assert np.array_equal(getattr(a, name).bias, getattr(b, name).bias)
    assert "weight_permutation" in got.source


# ---- config ----------------------------------------------------------------------------------------------
def test_config_key_normalised_and_validated():
    sp = parse_sparsity({"weights": PERM})
    assert sp["weights"]["permute"] is True and parse_sparsity(json.loads(json.dumps(sp))) == sp
    off = parse_sparsity({"weights": {**PERM, "permute": False}})
    assert "permute" not in off["weights"]                                   # the default is not stored
    with pytest.raises(InputError, match="permute pairs similar output rows for pattern pe-pair"):
        parse_sparsity({"weights": {"sparsity": 0.5, "bank": 16, "permute": True}})
    with pytest.raises(InputError, match="permute must be true or false"):
        parse_sparsity({"weights": {**PERM, "permute": "yes"}})
    with pytest.raises(InputError, match="permute"):
        check_sparsity({"weights": {"sparsity": 0.5, "bank": 16, "pattern": "row", "permute": True}})
    assert check_sparsity({"weights": PERM})["weights"]["pattern"] == "pe-pair"


def test_prune_spec_refuses_permute_with_pattern_row(tiny_spec):
    with pytest.raises(InputError, match="permute"):
        prune_spec(tiny_spec, {"sparsity": 0.5, "bank": 16, "permute": True})


def test_compile_refuses_permute_with_pattern_row_in_one_line(tmp_path, capsys):
    from padless.cli import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text("weights: {sparsity: 0.5, bank: 16, permute: true}\n")
    assert main(["compile", "tiny", "--board", "u280", "--config", str(cfg), "--out", str(tmp_path / "p")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("padless: error:") and "permute" in err[0]
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_finetune_honours_permute(tmp_path):
    """`padless finetune` with permute: magnitude masks grow on the reordered teacher; the student keeps
    pattern pe-pair and compile-time pruning (which re-plans the pairing) leaves it as it is."""
    pytest.importorskip("torch")
    import torch
    from padless.finetune import finetune
    from padless.models import resolve_model
    torch.set_num_threads(2)
    cfg = {"weights": PERM,
           "train": {"steps": 4, "batch_size": 4, "max_len": 16, "lr": 1e-3, "ramp": 0.5, "mask_every": 2,
                     "checkpoint_every": 4, "texts_per_dataset": 16, "seed": 1, "init": "magnitude"}}
    res = finetune("tiny", cfg, tmp_path / "ft", progress=False)
    assert res["finished"]
    spec, _ = resolve_model(str(tmp_path / "ft"))
    again = prune_spec(spec, PERM)
    for a, b in zip(spec.layers, again.layers):
        for name in LINEAR_NAMES:
            assert is_pattern_balanced(getattr(a, name).weight, 16, 0.5, rows=2)
            assert np.array_equal(getattr(a, name).weight, getattr(b, name).weight)


def test_large_groups_bound_the_loss_and_still_pair(monkeypatch):
    """Above _EXACT_ELEMS the loss is exact for each row's most promising partners and an upper bound
    elsewhere; the matching still finds the lossless pairing of the interleaved patterns."""
    import padless.sparse.permute as permute
    rng = np.random.default_rng(3)
    s = rng.random((24, 32))
    exact, _ = pair_loss(s, 16, 4)
    monkeypatch.setattr(permute, "_EXACT_ELEMS", 24 * 32 * 4)            # 4 exact partners a row
    bound, _ = pair_loss(s, 16, 4)
    off = ~np.eye(24, dtype=bool)
    assert (bound[off] >= exact[off] - 1e-5).all()
    assert (np.isclose(bound, exact, rtol=1e-5, atol=1e-5) & off).sum(axis=1).min() >= 4
    patterns = rng.permutation(16).reshape(4, 4)
    owner = [0, 1, 2, 3] * 4
    t = np.full((16, 16), 1e-3)
    for row, p in enumerate(owner):
        t[row, patterns[p]] = rng.random(4) + 1
    perm = pair_rows([t], 16, 4)
    assert all(owner[a] == owner[b] for a, b in perm.reshape(-1, 2))


def test_integer_model_of_the_permuted_spec_is_bit_exact(tiny_spec, ids, norms):
    """Calibrated and quantized afresh, the permuted dense model's integer encoder (per-channel scales,
    integer Q.K^T, 4-bit top-k selection, the FFN) gives the same int8 outputs as the original's."""
    from padless.golden import quantize_input, run_encoder
    from padless.quant.calibrate import calibrate
    from padless.quant.quantize import quantize_encoder
    from padless.reference import embed
    permuted, _ = permute_spec(tiny_spec, {**PERM, "criterion": "activation"}, norms)
    sp = parse_sparsity({"attention": {"topk": 4}})
    qa = quantize_encoder(tiny_spec, calibrate(tiny_spec, ids[:8]))
    qb = quantize_encoder(permuted, calibrate(permuted, ids[:8]))
    for s in ids[8:]:
        x = quantize_input(embed(tiny_spec, s), np.asarray(qa.input_scale))
        off = np.array([0, len(x)])
        np.testing.assert_array_equal(run_encoder(qb, x, off, sp), run_encoder(qa, x, off, sp))
