"""Fidelity metrics of a backend's sentence embeddings against the fp32 reference.

A linear probe (logistic regression on frozen embeddings, the standard "linear evaluation protocol",
e.g. SentEval, Conneau & Kiela, LREC 2018, Sec. 3) is trained on the fp32 reference embeddings of a
labelled set and then applied, unchanged, to the backend's embeddings of the same sentences. If a
quantized / sparse backend preserves the embedding geometry the probe makes the same decisions on both;
``agreement`` measures that directly, independently of how good the probe itself is.

scikit-learn is imported inside :func:`probe_eval`, so importing this module stays cheap.
"""

from __future__ import annotations

import numpy as np

from padless.errors import InputError

__all__ = ["cosine_rows", "probe_eval"]


def _as_matrix(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2:
        raise InputError(f"{what} must be a (n, dim) array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"{what} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        bad = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise InputError(f"{what} has a NaN or infinite value in row {bad}; check the backend's output")
    return a


def cosine_rows(a, b) -> np.ndarray:
    """Cosine similarity of each row pair: ``cos(a[i], b[i])``.

    Args:
        a, b: ``(n, dim)`` float arrays of the same shape (computed in float64).

    Returns:
        ``(n,)`` float64 in [-1, 1]. A zero row gives 1.0 when the other row is also zero and 0.0
        otherwise (an all-zero output from a broken backend scores as unrelated, not as an error).

    Raises:
        InputError: not 2-D, different shapes, or a NaN/infinite value.
    """
    a = _as_matrix(a, "a")
    b = _as_matrix(b, "b")
    if a.shape != b.shape:
        raise InputError(f"cosine_rows needs equal shapes, got {a.shape} and {b.shape}")
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    denom = na * nb
    out = np.zeros(a.shape[0], dtype=np.float64)
    ok = denom > 0
    out[ok] = dot[ok] / denom[ok]
    out[(na == 0) & (nb == 0)] = 1.0
    return np.clip(out, -1.0, 1.0)


def probe_eval(
    reference_emb,
    backend_emb,
    labels,
    folds: int = 5,
    C: float = 4.0,
    seed: int = 0,
) -> dict:
    """Linear-probe fidelity of ``backend_emb`` against ``reference_emb`` with stratified k-fold CV.

    For each of ``folds`` stratified folds (shuffled with ``seed``) a scikit-learn
    ``LogisticRegression(C=C)`` is fit on the reference embeddings of the training part; it then predicts
    the held-out sentences twice, from their reference and from their backend embeddings. Predictions are
    pooled over folds, so every sentence is scored exactly once.

    Args:
        reference_emb: ``(n, dim)`` float, the fp32 reference sentence embeddings.
        backend_emb: ``(n, dim)`` float, the backend's embeddings of the same sentences, same order.
        labels: ``(n,)`` integer class labels (two or more classes).
        folds: number of CV folds (>= 2); every class needs at least ``folds`` examples.
        C: inverse L2 regularisation strength of the probe.
        seed: shuffling seed of the folds (the probe itself is deterministic).

    Returns:
        ``{"n", "accuracy_fp32", "accuracy", "agreement", "cosine_mean", "cosine_min"}``: ``n`` (int)
        sentences; probe accuracy on reference and on backend embeddings; the fraction of sentences where
        both predictions are identical; mean and minimum row cosine between the two embeddings.

    Raises:
        InputError: shapes that differ or are not 2-D, labels of the wrong length or not integers, a
            single class, fewer than ``folds`` examples in a class, ``folds < 2``, ``C <= 0``, NaN/inf.
    """
    ref = _as_matrix(reference_emb, "reference_emb")
    bak = _as_matrix(backend_emb, "backend_emb")
    if ref.shape != bak.shape:
        raise InputError(
            f"reference and backend embeddings differ in shape: {ref.shape} vs {bak.shape}; "
            "embed the same sentences in the same order with both"
        )
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != ref.shape[0]:
        raise InputError(f"labels must be a ({ref.shape[0]},) array, got shape {y.shape}")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise InputError(f"labels must be integers, got dtype {y.dtype}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise InputError(f"folds must be an integer >= 2, got {folds!r}")
    if not C > 0:
        raise InputError(f"C must be > 0, got {C!r}")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise InputError(f"labels hold a single class ({classes.tolist()}); a probe needs at least two")
    if counts.min() < folds:
        small = {int(c): int(k) for c, k in zip(classes, counts) if k < folds}
        raise InputError(
            f"{folds}-fold cross-validation needs at least {folds} examples per class; "
            f"class counts too small: {small}. Use more sentences or fewer folds"
        )

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    pred_ref = np.empty_like(y)
    pred_bak = np.empty_like(y)
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    for train, test in skf.split(ref, y):
        probe = LogisticRegression(C=float(C), max_iter=5000)
        probe.fit(ref[train], y[train])
        pred_ref[test] = probe.predict(ref[test])
        pred_bak[test] = probe.predict(bak[test])
    cos = cosine_rows(ref, bak)
    return {
        "n": int(y.shape[0]),
        "accuracy_fp32": float(np.mean(pred_ref == y)),
        "accuracy": float(np.mean(pred_bak == y)),
        "agreement": float(np.mean(pred_ref == pred_bak)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
    }
