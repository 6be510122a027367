import math

import pytest

from padless.errors import InputError
from padless.opcount import layer_tokens, model_ops, weight_layout

M = dict(hidden_size=8, num_heads=2, head_dim=4, intermediate_size=16, num_layers=2)


def test_dense_counts_by_hand():
    o = model_ops(M, 5)
    l0 = o["layers"][0]
    assert l0["macs"] == {"qkv": 5 * 3 * 64, "qk": 2 * 5 * 5 * 4, "av": 2 * 5 * 5 * 4, "out": 5 * 64,
                          "ffn_up": 5 * 128, "ffn_down": 5 * 128}
    assert l0["select_4b"] == 0 and l0["k"] == 5
    assert l0["elementwise"] == {"softmax": 2 * 5 * 5, "gelu": 5 * 16, "layernorm": 2 * 5 * 8}
    assert l0["bytes"]["weights"] == 4 * 64 + 2 * 128 + 4 * (4 * 8 + 16 + 8)
    assert o["totals"]["dsp_macs"] == 2 * sum(l0["macs"].values())
    assert o["dense_baseline"]["dsp_macs"] == o["totals"]["dsp_macs"]


def test_topk_selection_and_weights():
    sp = {"attention": {"topk": 3}, "weights": {"sparsity": 0.5, "bank": 4}}
    l0 = model_ops(M, 5, sp)["layers"][0]
    assert l0["k"] == 3 and l0["macs"]["qk"] == 2 * 5 * 3 * 4
    assert l0["select_4b"] == 2 * 5 * 5 * 4
    assert l0["macs"]["qkv"] == 5 * 3 * 8 * 4  # 4 kept of 8 per row
    lay = weight_layout(8, 8, {"sparsity": 0.5, "bank": 4})
    assert lay["kept"] == 32 and lay["index_bits"] == 32 * 2  # ceil(log2 4) = 2 bits
    assert model_ops(M, 2, {"attention": {"density": 0.1, "min_k": 4}})["layers"][0]["k"] == 2


def test_token_reduction():
    assert layer_tokens(10, 4, {"layers": [1, 3], "keep": 0.5}) == [10, 5, 5, 3]
    assert layer_tokens(1, 2, {"layers": [0], "keep": 0.1}) == [1, 1]
    o = model_ops(M, 10, {"tokens": {"layers": [1], "keep": 0.3}})
    assert [l["tokens"] for l in o["layers"]] == [10, math.ceil(3.0)]
    assert o["totals"]["dsp_macs"] < o["dense_baseline"]["dsp_macs"]


def test_bad_input():
    with pytest.raises(InputError):
        model_ops(M, 0)
    with pytest.raises(InputError):
        model_ops({"hidden_size": 8}, 3)
    with pytest.raises(InputError):
        model_ops(M, 3, {"weights": {"sparsity": 0.5, "bank": 3}})
    with pytest.raises(InputError):
        model_ops(M, 3, {"attention": {"topk": 0}})


def test_per_layer_weight_ratios():
    """``weights.layers`` overrides the global ratio layer by layer (the kernel's per-layer P)."""
    model = {"hidden_size": 64, "num_heads": 4, "head_dim": 16, "intermediate_size": 128, "num_layers": 3}
    glob = model_ops(model, 10, {"weights": {"sparsity": 0.5, "bank": 16}})
    mixed = model_ops(model, 10, {"weights": {"sparsity": 0.5, "bank": 16, "layers": {"2": 0.75, 0: 0.0}}})
    per = [lay["macs"]["ffn_up"] for lay in mixed["layers"]]
    assert per == [10 * 128 * 64, 10 * 128 * 32, 10 * 128 * 16]           # dense, 8 of 16, 4 of 16
    assert glob["layers"][1]["macs"] == mixed["layers"][1]["macs"]
    with pytest.raises(InputError, match="per-layer weight ratios"):
        model_ops(model, 10, {"weights": {"sparsity": 0.5, "bank": 16, "layers": {"1": 1.5}}})
    with pytest.raises(InputError, match="layer index"):  # a clear error, not a ValueError from int()
        model_ops(model, 10, {"weights": {"sparsity": 0.5, "bank": 16, "layers": {"first": 0.5}}})
