"""The selection half of the DAC 2022 sparse attention (Peng et al., arXiv 2208.03646, section 3.2).

These three integer functions are the specification that the HLS kernel and the RTL selection engine
(hw/rtl/selection_engine.sv) reproduce bit for bit:

1. :func:`quantize4` - int8 Q or K rows of one (sequence, head) to signed 4-bit values in [-7, 7] with a
   per-tensor scale: ``x4 = round(7 * x / M)``, ``M = max |x|`` over the tensor, rounding half away
   from zero, done in integers as ``sign(x) * ((14 * |x| + M) // (2 * M))``. ``M == 0`` gives zeros.
2. :func:`estimate_scores` - ``S' = Q4 @ K4^T`` (int32; each product is a 4b x 4b table look-up in
   hardware, |S'| <= 49 * head_dim).
3. :func:`topk_indices` - per query row, the ``k`` keys with the largest estimate. Ties go to the lower key
   index. The kept indices are returned in ascending key order (the order the exact stage reads V rows).
   ``k >= n`` keeps every key (dense attention).
"""
from __future__ import annotations

import numpy as np

Q4_MAX = 7


def quantize4(x: np.ndarray) -> np.ndarray:
    """``(rows, head_dim)`` int8 -> int8 values in [-7, 7] with one scale for the whole tensor."""
    x = np.asarray(x, dtype=np.int32)
    m = int(np.abs(x).max()) if x.size else 0
    if m == 0:
        return np.zeros(x.shape, dtype=np.int8)
    mag = (2 * Q4_MAX * np.abs(x) + m) // (2 * m)
    return (np.sign(x) * mag).astype(np.int8)


def estimate_scores(q4: np.ndarray, k4: np.ndarray) -> np.ndarray:
    """``(nq, d)`` and ``(nk, d)`` 4-bit values -> ``(nq, nk)`` int32 approximate scores."""
    return q4.astype(np.int32) @ k4.astype(np.int32).T


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """``(nq, nk)`` int scores -> ``(nq, min(k, nk))`` int32 kept key indices, ascending in each row.

    Ranking: larger score first; equal scores rank the lower key index first. Raises ValueError for k < 1.
    """
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    nq, nk = scores.shape
    if k >= nk:
        return np.broadcast_to(np.arange(nk, dtype=np.int32), (nq, nk)).copy()
    # Stable sort on -score keeps the lower index first among equal scores.
    order = np.argsort(-scores.astype(np.int64), axis=1, kind="stable")[:, :k]
    return np.sort(order, axis=1).astype(np.int32)
