"""Tests of padless.data.metrics: probe_eval and cosine_rows on synthetic embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from padless.data.metrics import cosine_rows, probe_eval
from padless.errors import InputError

KEYS = {"n", "accuracy_fp32", "accuracy", "agreement", "cosine_mean", "cosine_min"}


def _blobs(n=120, dim=24, sep=4.0, seed=1):
    """Two Gaussian classes whose means differ by ``sep`` along one random direction."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    direction = rng.standard_normal(dim)
    direction /= np.linalg.norm(direction)
    x = rng.standard_normal((n, dim)) + np.outer(y - 0.5, direction) * sep + 3.0  # offset: cosines != 0
    return x.astype(np.float32), y


def test_identical_embeddings_agree_completely():
    x, y = _blobs(sep=8.0)
    r = probe_eval(x, x.copy(), y)
    assert set(r) == KEYS and r["n"] == 120
    assert r["accuracy_fp32"] >= 0.98  # separable
    assert r["accuracy"] == r["accuracy_fp32"]
    assert r["agreement"] == 1.0
    assert r["cosine_mean"] == pytest.approx(1.0, abs=1e-12) and r["cosine_min"] == pytest.approx(1.0, abs=1e-12)


def test_perturbed_backend_disagrees_sometimes():
    x, y = _blobs(n=200, sep=2.0)
    noisy = x + np.random.default_rng(7).standard_normal(x.shape).astype(np.float32) * 1.0
    r = probe_eval(x, noisy, y)
    assert 0.5 < r["agreement"] < 1.0
    assert r["cosine_min"] < r["cosine_mean"] < 1.0
    assert 0.6 < r["accuracy_fp32"] < 1.0 and r["accuracy"] != r["accuracy_fp32"]


def test_probe_is_applied_to_the_backend_embeddings():
    # Negated embeddings (after centring, so the sign flip is a flip about the probe's boundary).
    x, y = _blobs(sep=8.0)
    x = x - x.mean(axis=0)
    r = probe_eval(x, -x, y)
    assert r["accuracy_fp32"] >= 0.98 and r["accuracy"] <= 0.05 and r["agreement"] <= 0.05
    assert r["cosine_mean"] == pytest.approx(-1.0)


def test_accuracy_fp32_matches_sklearn_cross_val_predict():
    x, y = _blobs(n=150, sep=1.5, seed=3)
    r = probe_eval(x, x, y, folds=5, C=4.0, seed=11)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=11)
    pred = cross_val_predict(LogisticRegression(C=4.0, max_iter=5000), x.astype(np.float64), y, cv=cv)
    assert r["accuracy_fp32"] == pytest.approx(np.mean(pred == y))
    assert probe_eval(x, x, y, folds=5, C=4.0, seed=11) == r  # deterministic


def test_multiclass_and_float_labels():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.standard_normal((90, 6)) + np.eye(3, 6)[y] * 6
    r = probe_eval(x, x, y.astype(np.float64), folds=3)
    assert r["accuracy_fp32"] > 0.9 and r["agreement"] == 1.0


def test_cosine_rows():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [0.0, 0.0], [1.0, 0.0], [-3.0, -4.0]])
    c = cosine_rows(a, b)
    assert c.dtype == np.float64 and c.shape == (5,)
    np.testing.assert_allclose(c, [0.0, 1.0, 1.0, 0.0, -1.0], atol=1e-15)
    with pytest.raises(InputError, match="equal shapes"):
        cosine_rows(a, b[:4])
    with pytest.raises(InputError, match=r"\(n, dim\)"):
        cosine_rows(a[0], b[0])


@pytest.mark.parametrize(
    "case, message",
    [
        ("shape", "differ in shape"),
        ("labels_len", "labels must be"),
        ("single", "single class"),
        ("few", "at least 5 examples per class"),
        ("nan", "NaN or infinite value in row 3"),
        ("folds", "folds must be an integer >= 2"),
        ("str_labels", "labels must be integers"),
    ],
)
def test_probe_eval_errors(case, message):
    x, y = _blobs(n=40)
    b = x.copy()
    kw = {}
    if case == "shape":
        b = x[:, :10]
    elif case == "labels_len":
        y = y[:-1]
    elif case == "single":
        y = np.zeros_like(y)
    elif case == "few":
        y = np.zeros_like(y)
        y[:4] = 1
    elif case == "nan":
        b[3, 2] = np.nan
    elif case == "folds":
        kw["folds"] = 1
    elif case == "str_labels":
        y = np.array(["pos", "neg"] * 20)
    with pytest.raises(InputError, match=message):
        probe_eval(x, b, y, **kw)
