"""Bank-balanced weight pruning (Cao et al. FPGA 2019), the packed storage format and its round trip."""
import numpy as np
import pytest

from padless.errors import InputError
from padless.opcount import weight_layout
from padless.quant.quantize import _qlinear, quantize_weights
from padless.sparse.weights import (bank_balanced_mask, index_bits, input_norms, kept_per_bank, layer_ratios,
                                    pack_bank_balanced, packed_nbytes, prune_spec, prune_weight,
                                    unpack_bank_balanced)


def test_kept_per_bank_matches_opcount():
    for bank in (4, 8, 16, 32):
        for s in (0.0, 0.3, 0.5, 0.7, 0.75, 0.9):
            lay = weight_layout(8, 4 * bank, {"sparsity": s, "bank": bank})
            assert lay["kept_per_row"] == 4 * kept_per_bank(bank, s)
    assert index_bits(16) == 4 and index_bits(8) == 3 and index_bits(12) == 4 and index_bits(1) == 0


def test_mask_keeps_largest_per_bank_ties_to_lower_index():
    rng = np.random.default_rng(0)
    w = rng.integers(-3, 4, size=(6, 32)).astype(np.float32)   # many equal magnitudes
    mask = bank_balanced_mask(w, 8, 0.5)
    banks_w, banks_m = np.abs(w).reshape(6, 4, 8), mask.reshape(6, 4, 8)
    assert (banks_m.sum(axis=2) == 4).all()
    for r in range(6):
        for b in range(4):
            ranked = sorted(range(8), key=lambda j: (-banks_w[r, b, j], j))[:4]
            assert sorted(np.flatnonzero(banks_m[r, b]).tolist()) == sorted(ranked)
    pruned = prune_weight(w, 8, 0.5)
    assert np.array_equal(pruned, np.where(mask, w, 0)) and pruned.dtype == w.dtype


@pytest.mark.parametrize("bank,s", [(16, 0.5), (8, 0.75), (4, 0.5), (12, 0.6), (16, 0.0)])
def test_pack_round_trip_and_sizes(bank, s):
    rng = np.random.default_rng(bank)
    w = rng.integers(-127, 128, size=(10, 4 * bank)).astype(np.int8)
    w = prune_weight(w, bank, s)
    w[0, :bank] = 0                              # a bank with fewer non-zeros than its slots (int8 rounding)
    p = kept_per_bank(bank, s)
    values, idx = pack_bank_balanced(w, bank, per_bank=p)
    assert values.shape == (10, 4, p) and values.dtype == np.int8 and idx.dtype == np.uint8
    assert np.array_equal(unpack_bank_balanced(values, idx, w.shape[1], bank), w)
    lay = weight_layout(10, 4 * bank, {"sparsity": s, "bank": bank})
    if s > 0:
        assert values.nbytes == lay["value_bytes"] and idx.nbytes == lay["index_bytes"]
    assert packed_nbytes(10, 4 * bank, bank, p)["total"] == values.nbytes + idx.nbytes


def test_byte_layout_bank16_nibbles():
    """B = 16: values row-major (row, bank, slot); indices two per byte, the lower slot in the low nibble;
    spare slots of a sparse bank padded with zeros at the lowest unused indices."""
    w = np.zeros((1, 32), dtype=np.int8)
    w[0, [3, 9, 10, 15]] = [5, -6, 7, -8]        # bank 0: 4 non-zeros
    w[0, 16 + 1] = 11                            # bank 1: 1 non-zero -> padded with indices 0, 2, 3
    values, idx = pack_bank_balanced(w, 16, per_bank=4)
    assert values.tolist() == [[[5, -6, 7, -8], [0, 11, 0, 0]]]
    assert idx.tolist() == [3 | (9 << 4), 10 | (15 << 4), 0 | (1 << 4), 2 | (3 << 4)]


def test_pack_rejects_unbalanced_and_bad_shapes():
    w = np.ones((2, 16), dtype=np.int8)
    with pytest.raises(InputError, match="non-zeros"):
        pack_bank_balanced(w, 8, per_bank=4)
    with pytest.raises(InputError, match="does not divide"):
        pack_bank_balanced(w, 5)
    with pytest.raises(InputError, match="does not divide"):
        bank_balanced_mask(np.ones((2, 10)), 4, 0.5)


def test_prune_spec_every_linear_per_layer_and_quantized_zeros(tiny_spec):
    cfg = {"sparsity": 0.5, "bank": 16, "layers": {"1": 0.75}}
    pruned = prune_spec(tiny_spec, cfg)
    assert layer_ratios(cfg, 2) == [0.5, 0.75]
    for i, (lo, ln) in enumerate(zip(tiny_spec.layers, pruned.layers)):
        for name in ("q", "k", "v", "o", "ffn_up", "ffn_down"):
            w0, w1 = getattr(lo, name).weight, getattr(ln, name).weight
            p = kept_per_bank(16, [0.5, 0.75][i])
            nz = (w1 != 0).reshape(w1.shape[0], -1, 16).sum(axis=2)
            assert (nz == p).all(), (i, name)
            assert np.array_equal(w1[w1 != 0], w0[w1 != 0])
            assert np.array_equal(getattr(ln, name).bias, getattr(lo, name).bias)
            # Quantization (with the input scale folded in per column) keeps every pruned weight zero.
            q = _qlinear(getattr(ln, name), np.linspace(0.01, 0.1, w1.shape[1]), 0.05, 8)
            assert (q.w[w1 == 0] == 0).all()
            pack_bank_balanced(q.w, 16, per_bank=p)
    assert tiny_spec.layers[0].q.weight is not pruned.layers[0].q.weight      # the input is not modified
    assert (tiny_spec.layers[0].q.weight != 0).mean() > 0.9
    wq, _ = quantize_weights(pruned.layers[0].q)
    assert ((wq != 0).mean()) <= 0.5


def test_compiled_project_is_bank_balanced(tmp_path):
    from padless.build import compile_project
    from padless.project import load_project
    compile_project("tiny", out=tmp_path / "p", config={"weights": {"sparsity": 0.5, "bank": 16}})
    proj = load_project(tmp_path / "p")
    assert proj.sparsity["weights"] == {"sparsity": 0.5, "bank": 16, "criterion": "magnitude"}
    for layer in proj.quantized.layers:
        for name in ("q", "k", "v", "o", "up", "down"):
            w = getattr(layer, name).w
            values, idx = pack_bank_balanced(w, 16, per_bank=8)
            assert np.array_equal(unpack_bank_balanced(values, idx, w.shape[1], 16), w)


def test_activation_aware_score():
    """|w| * ||x||: a small weight on a loud input channel outranks a larger weight on a quiet one."""
    w = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert bank_balanced_mask(w, 4, 0.5).tolist() == [[False, False, True, True]]
    norm = np.array([10.0, 1.0, 1.0, 1.0])
    assert bank_balanced_mask(w, 4, 0.5, norm).tolist() == [[True, False, False, True]]
    with pytest.raises(InputError, match="input_norm"):
        bank_balanced_mask(w, 4, 0.5, np.ones(3))


def test_activation_aware_prune_spec_on_real_text(tiny_spec, movie_texts):
    from padless.models import Tokenizer
    ids = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions).encode(movie_texts.texts[:6], truncate=True)
    norms = input_norms(tiny_spec, ids)
    assert norms[0]["q"].shape == (tiny_spec.hidden_size,) and norms[1]["ffn_down"].shape == (
        tiny_spec.intermediate_size,)
    cfg = {"sparsity": 0.5, "bank": 16, "criterion": "activation"}
    act = prune_spec(tiny_spec, cfg, token_ids=ids)
    mag = prune_spec(tiny_spec, {"sparsity": 0.5, "bank": 16})
    w0 = tiny_spec.layers[1].ffn_down.weight
    assert np.array_equal(act.layers[1].ffn_down.weight, prune_weight(w0, 16, 0.5, norms[1]["ffn_down"]))
    assert not np.array_equal(act.layers[1].ffn_down.weight != 0, mag.layers[1].ffn_down.weight != 0)
    assert ((act.layers[0].o.weight != 0).reshape(-1, 16).sum(axis=1) == 8).all()
    assert act.source["weight_sparsity"]["norms_from"] == "6 given sentences"


def test_compile_step_prunes_per_layer_only_configs(tiny_spec):
    """`weights: {layers: {1: 0.5}}` with no global ratio still prunes layer 1 (and only it) at compile time."""
    from pathlib import Path
    from padless.build import BuildState, step_sparsify_weights
    from padless.sparse.config import parse_sparsity
    sp = parse_sparsity({"weights": {"layers": {1: 0.5}, "bank": 16}}, num_layers=2)
    st = step_sparsify_weights(BuildState(model="tiny", board_name="u280", out=Path("."), spec=tiny_spec,
                                          sparsity=sp))
    w0, w1 = st.spec.layers[0].q.weight, st.spec.layers[1].q.weight
    assert (w0 != 0).mean() > 0.9
    assert ((w1 != 0).reshape(w1.shape[0], -1, 16).sum(axis=2) == 8).all()
