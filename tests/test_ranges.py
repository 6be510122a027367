"""Range estimators (percentile, MSE-optimal clipping) against hand-computed cases, the exact streamed tails
they read, and their use in calibration."""
from __future__ import annotations

import numpy as np
import pytest

from padless.errors import InputError
from padless.quant.calibrate import Calibrator, calibrate
from padless.quant.ranges import (MSE_TAIL, estimate, mse_clip, parse_estimators, percentile_clip,
                                  tail_needed)


def test_percentile_nearest_rank_by_hand():
    desc = np.array([10.0, 9.0, 8.0, 7.0])
    # 1000 values: the 99.9th percentile is the 2nd largest (rank floor(0.001 * 1000) = 1), 99.8th the 3rd
    assert percentile_clip(desc, 1000, 99.9) == 9.0
    assert percentile_clip(desc, 1000, 99.8) == 8.0
    assert percentile_clip(desc, 1000, 99.95) == 10.0   # rank 0: the max
    with pytest.raises(InputError, match="largest values"):
        percentile_clip(desc, 1000, 99.0)                # rank 10 was not kept


def test_mse_clip_by_hand():
    # 100 values: one 10, the rest 1. Candidate 10 (no clipping): rounding noise 100 * 10^2 / (12 q^2);
    # candidate 1 (clip one value): (10 - 1)^2 + 100 * 1 / (12 q^2).
    desc = np.array([10.0] + [1.0] * 5)
    # int8: 100 * 100 / (12 * 127^2) = 0.052 < 81.0005: keep the max
    assert mse_clip(desc, 100, 127) == 10.0
    # a 1-step grid: 833.3 (no clip) > 81 + 8.33: clip at 1
    assert mse_clip(desc, 100, 1) == 1.0
    # per column, and never beyond the searched tail
    two = np.stack([desc, desc * 2], axis=1)
    np.testing.assert_array_equal(mse_clip(two, 100, 1), [1.0, 2.0])
    assert int(np.ceil(MSE_TAIL * 100)) + 1 == 2  # only 2 candidates are searched for n = 100


def test_tail_streams_exactly():
    rng = np.random.default_rng(0)
    data = rng.standard_t(3, size=(5000, 7))
    cal = Calibrator(1, tail=40)
    obs = cal.observer(0)
    for a in range(0, 5000, 333):  # chunks of varying size, merged as they arrive
        obs("act", data[a:a + 333])
    t = cal.tails(0, "act")
    assert t.rows == 5000
    np.testing.assert_array_equal(t.channel(), -np.sort(-np.abs(data), axis=0)[:40])
    np.testing.assert_array_equal(t.tensor(), -np.sort(-np.abs(data).ravel())[:40 * 7])


def test_estimate_per_channel_and_per_tensor():
    rng = np.random.default_rng(1)
    data = rng.laplace(size=(4000, 5)) * np.arange(1, 6)
    cal = Calibrator(1, tail=tail_needed(parse_estimators({"act": {"percentile": 99.9}}), 4000))
    cal.observer(0)("act", data)
    cal.observer(0)("q", data)
    mx = np.abs(data).max(0)
    p = estimate({"method": "percentile", "percentile": 99.9}, cal.tails(0, "act"), mx, per_tensor=False)
    want = np.sort(np.abs(data), axis=0)[::-1][4]          # rank floor(0.001 * 4000) = 4
    np.testing.assert_array_equal(p, want)
    # per tensor: the tensor's percentile over all 20000 values, channels capped at it
    pt = estimate({"method": "percentile", "percentile": 99.9}, cal.tails(0, "q"), mx, per_tensor=True)
    c = np.sort(np.abs(data).ravel())[::-1][20]
    np.testing.assert_array_equal(pt, np.minimum(mx, c))
    assert pt.max() == c


def test_parse_estimators_and_errors():
    assert parse_estimators(None) == {"default": {"method": "max"}}
    assert parse_estimators({"act": "mse", "h": {"percentile": 99.99}}) == {
        "default": {"method": "max"}, "act": {"method": "mse"},
        "h": {"method": "percentile", "percentile": 99.99}}
    for bad, msg in [({"res_ffn": "mse"}, "not a site"), ({"act": "kl"}, "unknown estimator"),
                     ({"act": {"percentile": 100}}, "in \\(90, 100\\)"), ({"act": {"percentile": "x"}}, "percentile"),
                     ([1], "mapping"), ({"act": {"method": "mse", "percentile": 99}}, "not an estimator")]:
        with pytest.raises(InputError, match=msg):
            parse_estimators(bad)


def test_calibrate_with_estimators(tiny_spec, movie_texts):
    from padless.models import Tokenizer
    ids = Tokenizer(tiny_spec.tokenizer_path, 128).encode(movie_texts.texts[:24], truncate=True)
    plain = calibrate(tiny_spec, ids)
    clipped = calibrate(tiny_spec, ids, estimators={"act": {"percentile": 99.0}, "q": "mse"})
    assert "estimators" not in plain and clipped["estimators"]["act"]["method"] == "percentile"
    for a, b in zip(plain["layers"], clipped["layers"]):
        assert np.all(np.asarray(b["act"]) <= np.asarray(a["act"]))
        assert np.any(np.asarray(b["act"]) < np.asarray(a["act"]))
        assert np.max(b["q"]) <= np.max(a["q"])
        for site in ("res_attn", "res_ffn", "h", "out"):   # residual domains and untouched sites keep the max
            assert b[site] == a[site]
    assert clipped["embedding"] == plain["embedding"]
