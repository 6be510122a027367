"""The sparsity section of the compile config: normalisation, idempotence, clear errors."""
import json

import pytest

from padless.errors import InputError
from padless.opcount import check_sparsity, model_ops
from padless.sparse.config import parse_sparsity


def test_normalised_forms():
    assert parse_sparsity(None) == {"attention": {}, "weights": {}, "tokens": {}}
    got = parse_sparsity({"attention": {"density": 0.25}, "weights": {"sparsity": 0.5},
                          "tokens": {"layers": [4, 2, 2], "keep": 0.7}})
    assert got == {"attention": {"density": 0.25, "min_k": 1}, "weights": {"sparsity": 0.5, "bank": 16, "criterion": "magnitude"},
                   "tokens": {"layers": [2, 4], "keep": 0.7, "method": "cascade"}}
    assert parse_sparsity({"attention": {"topk": 16}})["attention"] == {"topk": 16}
    # No-ops normalise to empty parts.
    assert parse_sparsity({"weights": {"sparsity": 0}, "tokens": {"layers": [2], "keep": 1.0}}) == \
        {"attention": {}, "weights": {}, "tokens": {}}
    per = parse_sparsity({"weights": {"sparsity": 0.5, "bank": 8, "layers": {5: 0.6, 0: 0.3}}}, num_layers=6)
    assert per["weights"] == {"sparsity": 0.5, "bank": 8, "criterion": "magnitude",
                              "layers": {"0": 0.3, "5": 0.6}}
    assert parse_sparsity({"weights": {"sparsity": 0.5, "criterion": "activation"}})["weights"]["criterion"] == \
        "activation"
    listed = parse_sparsity({"weights": {"bank": 8, "layers": [0.1, 0.2]}})
    assert listed["weights"]["layers"] == {"0": 0.1, "1": 0.2}


@pytest.mark.parametrize("cfg", [
    {"attention": {"topk": 32}, "weights": {"sparsity": 0.5, "bank": 16, "layers": {"2": 0.7}},
     "tokens": {"layers": [1, 3], "keep": 0.5}},
    {"attention": {"density": 0.5, "min_k": 8}},
])
def test_idempotent_json_stable_and_accepted_by_opcount(cfg):
    n1 = parse_sparsity(cfg)
    assert parse_sparsity(n1) == n1
    assert json.loads(json.dumps(n1)) == n1
    check_sparsity(n1)
    model = {"hidden_size": 64, "num_heads": 4, "head_dim": 16, "intermediate_size": 128, "num_layers": 4}
    assert model_ops(model, 40, n1)["totals"]["dsp_macs"] < model_ops(model, 40, None)["totals"]["dsp_macs"]


@pytest.mark.parametrize("cfg,match", [
    ({"attention": {"topk": 0}}, "topk"),
    ({"attention": {"topk": 2.5}}, "topk"),
    ({"attention": {"density": 1.5}}, "density"),
    ({"attention": {"density": 0.2, "min_k": 0}}, "min_k"),
    ({"attention": {"topk": 8, "density": 0.2}}, "either"),
    ({"attention": {"k": 8}}, "unknown"),
    ({"weights": {"sparsity": 1.0}}, "sparsity"),
    ({"weights": {"sparsity": 0.5, "bank": 1}}, "bank"),
    ({"weights": {"sparsity": 0.5, "criterion": "random"}}, "criterion"),
    ({"weights": {"sparsity": 0.5, "layers": {"x": 0.1}}}, "layer index"),
    ({"tokens": {"layers": [0], "keep": 0.5}}, "layer 1"),
    ({"tokens": {"layers": [2], "keep": 0}}, "keep"),
    ({"tokens": {"layers": "2", "keep": 0.5}}, "layers"),
    ({"tokens": {"layers": [2], "keep": 0.5, "method": "magic"}}, "method"),
    ({"heads": {}}, "unknown sparsity"),
])
def test_bad_values_raise_input_error(cfg, match):
    with pytest.raises(InputError, match=match):
        parse_sparsity(cfg)


def test_layer_indices_checked_against_depth():
    with pytest.raises(InputError, match="does not exist"):
        parse_sparsity({"tokens": {"layers": [6], "keep": 0.5}}, num_layers=6)
    with pytest.raises(InputError, match="does not exist"):
        parse_sparsity({"weights": {"sparsity": 0.5, "layers": {"9": 0.1}}}, num_layers=6)


def test_compile_writes_normalised_sparsity(tmp_path):
    from padless.build import compile_project
    from padless.project import load_project
    with pytest.raises(InputError, match="topk"):
        compile_project("tiny", out=tmp_path / "bad", config={"attention": {"topk": -1}})
    compile_project("tiny", out=tmp_path / "p", config={"attention": {"density": 0.5},
                                                        "tokens": {"layers": [1], "keep": 0.6}})
    assert load_project(tmp_path / "p").sparsity == {
        "attention": {"density": 0.5, "min_k": 1}, "weights": {},
        "tokens": {"layers": [1], "keep": 0.6, "method": "cascade"}}


def test_compile_project_config_dict_is_checked_like_a_file(tmp_path):
    """compile_project(config=...) takes the YAML file's shape: a nested sparsity section is applied, an
    unknown key is refused (it used to be ignored silently)."""
    from padless.build import compile_project
    from padless.project import load_project
    compile_project("tiny", out=tmp_path / "nested", config={"sparsity": {"attention": {"topk": 8}}})
    assert load_project(tmp_path / "nested").sparsity["attention"] == {"topk": 8}
    with pytest.raises(InputError, match="unknown keys \\['atention'\\]"):
        compile_project("tiny", out=tmp_path / "typo", config={"atention": {"topk": 8}})
    with pytest.raises(InputError, match="both at the top level and under sparsity"):
        compile_project("tiny", out=tmp_path / "both", config={"attention": {"topk": 8},
                                                               "sparsity": {"attention": {"topk": 4}}})
