"""GPTQ weight rounding: hand-computed cases, pruned weights, lower layer error than round-to-nearest on
real sentences, the same int8 model for any BLAS thread count, and a compile that uses it."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from padless.errors import InputError
from padless.models import Tokenizer
from padless.quant.calibrate import calibrate
from padless.quant.gptq import gptq_encoder, gptq_round
from padless.quant.quantize import quantize_encoder


def test_identity_hessian_is_round_to_nearest():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 10))
    s = np.abs(w).max(1) / 127
    q = gptq_round(w, np.eye(10), s)  # uncorrelated inputs: no error to spread
    np.testing.assert_array_equal(q, np.clip(np.round(w / s[:, None]), -127, 127))


def test_correlated_inputs_by_hand():
    # Two inputs that are always equal: H = [[1, 1], [1, 1]] (+ 1% of the mean diagonal = 0.01).
    # Column 0: round(0.3) = 0, error 0.3; the update adds 0.3 * 1 / 1.01 = 0.297 to column 1 -> 0.597 -> 1.
    # The output 0 * x + 1 * x = x is closer to 0.6 x than round-to-nearest's 0.
    q = gptq_round(np.array([[0.3, 0.3]]), np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([1.0]), act_order=False)
    np.testing.assert_array_equal(q, [[0, 1]])


def test_pruned_and_dead_columns():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    x[:, 3] = 0                      # an input that never fires
    w = rng.normal(size=(5, 8))
    w[[0, 2], [1, 5]] = 0            # pruned weights
    s = np.abs(w).max(1) / 127
    q = gptq_round(w, x.T @ x, s)
    assert q[0, 1] == 0 and q[2, 5] == 0
    np.testing.assert_array_equal(q[:, 3], np.round(w[:, 3] / s))
    with pytest.raises(InputError, match="Hessian"):
        gptq_round(w, np.eye(7), s)


def test_lower_output_error_than_round_to_nearest():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(3000, 4))
    x = np.round(np.clip(base @ rng.normal(size=(4, 32)) * 20, -127, 127))   # correlated int8 inputs
    w = rng.normal(size=(16, 32))
    s = np.abs(w).max(1) / 127
    rtn = np.clip(np.round(w / s[:, None]), -127, 127)
    q = gptq_round(w, x.T @ x, s)
    err = lambda qq: np.linalg.norm(x @ (w - qq * s[:, None]).T)  # noqa: E731
    assert err(q) < 0.7 * err(rtn)


@pytest.fixture(scope="module")
def tiny_gptq(tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, 128)
    cal = tok.encode(movie_texts.texts[-64:], truncate=True)
    qe = quantize_encoder(tiny_spec, calibrate(tiny_spec, cal))
    return tiny_spec, qe, cal


def test_gptq_encoder_changes_only_int8_values(tiny_gptq):
    spec, qe, cal = tiny_gptq
    g = gptq_encoder(spec, copy.deepcopy(qe), cal)
    changed = 0
    for a, b in zip(qe.layers, g.layers):
        for name in ("q", "k", "v", "o", "up", "down"):
            la, lb = getattr(a, name), getattr(b, name)
            assert lb.w.dtype == np.int8
            for f in ("bias", "w_scale", "m", "shift"):
                np.testing.assert_array_equal(getattr(la, f), getattr(lb, f))
            changed += int((la.w != lb.w).sum())
            assert np.abs(la.w.astype(int) - lb.w.astype(int)).max() <= 127
        assert a.scales == b.scales
    assert changed > 0


def test_same_weights_for_any_blas_thread_count(tiny_gptq):
    spec, qe, cal = tiny_gptq
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads):
            runs.append(gptq_encoder(spec, copy.deepcopy(qe), cal))
    for a, b in zip(*[r.layers for r in runs]):
        for name in ("q", "k", "v", "o", "up", "down"):
            np.testing.assert_array_equal(getattr(a, name).w, getattr(b, name).w)


def test_gptq_keeps_bank_balanced_sparsity(tiny_spec, movie_texts):
    from padless.sparse.weights import prune_spec
    sp = prune_spec(tiny_spec, {"sparsity": 0.5, "bank": 16})
    tok = Tokenizer(sp.tokenizer_path, 128)
    cal = tok.encode(movie_texts.texts[-32:], truncate=True)
    qe = gptq_encoder(sp, quantize_encoder(sp, calibrate(sp, cal)), cal)
    for L, fl in zip(qe.layers, sp.layers):
        for name, field in (("q", "q"), ("up", "ffn_up"), ("down", "ffn_down")):
            zero = np.asarray(getattr(fl, field).weight) == 0
            assert zero.mean() >= 0.5 and np.all(getattr(L, name).w[zero] == 0)


def _quant_of(model, config):
    from padless.build import BuildState, step_load_model, step_quant_config
    st = BuildState(model=model, board_name="u280", out=None, config=config)
    return step_quant_config(step_load_model(st)).quant


def test_recipe_quant_defaults_and_key_by_key_override():
    """minilm-l6's recipe sets migration + GPTQ on its own text mix; a config overrides it key by key."""
    q = _quant_of("minilm-l6", {})
    assert q["migrate"] == {"h": 0.9, "ctx": 0.9, "act": 0.95} and q["rounding"] == "gptq"
    assert q["gptq_calibration"] == {"dataset": ["vader-tweets", "fortunes", "reuters"], "count": 640}
    assert q["ranges"] == {"default": {"method": "max"}} and q["gelu"] == "pwl"
    q = _quant_of("minilm-l6", {"quant": {"rounding": "nearest", "migrate": {"act": 0.5}}})
    assert q["rounding"] == "nearest" and q["migrate"] == {"act": 0.5}
    assert q["gptq_calibration"]["count"] == 640                      # untouched keys stay the recipe's
    assert _quant_of("minilm-l6", {"quant": {"gptq_calibration": None}})["gptq_calibration"] is None
    assert _quant_of("tiny", {})["rounding"] == "nearest"                # a recipe without quant: today's
    for bad, msg in [({"dataset": "no-such-set", "count": 8}, "quant.gptq_calibration.dataset"),
                     ({"dataset": "fortunes", "count": 0}, "quant.gptq_calibration.count"),
                     ({"texts": 3}, "quant.gptq_calibration: unknown keys"), ("fortunes", "quant.gptq_calibration")]:
        with pytest.raises(InputError, match=msg):
            _quant_of("tiny", {"quant": {"rounding": "gptq", "gptq_calibration": bad}})


def test_compile_with_gptq_calibration(tmp_path):
    """``rounding: gptq`` re-rounds on ``gptq_calibration``'s text when given (recorded in the manifest), else
    on the calibration sentences; the scales (ranges, migration) are the same either way."""
    from padless.build import compile_project
    from padless.project import load_project
    own = {"rounding": "gptq", "migrate": {"act": 0.9}}
    compile_project("tiny", board="u280", out=tmp_path / "a", config={"quant": own})
    compile_project("tiny", board="u280", out=tmp_path / "b",
                    config={"quant": {**own, "gptq_calibration": {"dataset": "fortunes", "count": 24}}})
    a, b = load_project(tmp_path / "a"), load_project(tmp_path / "b")
    assert "gptq" not in a.manifest["quant"]["calibration"]
    assert b.manifest["quant"]["calibration"]["gptq"] == {"dataset": "fortunes", "count": 24}
    assert a.manifest["quant"]["rounding"] == "gptq" and a.manifest["quant"]["migrate"] == {"act": 0.9}
    diff = 0
    for la, lb in zip(a.quantized.layers, b.quantized.layers):
        assert la.scales == lb.scales
        for name in ("q", "k", "v", "o", "up", "down"):
            np.testing.assert_array_equal(getattr(la, name).w_scale, getattr(lb, name).w_scale)
            diff += int((getattr(la, name).w != getattr(lb, name).w).sum())
    assert diff > 0
