"""Integer multi-head attention of one sequence, dense or with 4-bit Q/K top-k selection.

The sparse operator is the DAC 2022 length-adaptive co-design's (Peng et al., arXiv 2208.03646,
section 3.2): Q and K are requantized to 4 bits per (sequence, head), approximate scores come from
4b x 4b products, each query keeps its top-k keys, and only those k scores are computed exactly, passed
through the integer softmax (whose denominator covers the kept keys only) and used to weight the k kept
value rows. With k >= n it is exactly dense attention: one code path.
"""
from __future__ import annotations

import math

import numpy as np

from ..quant import intops
from .selection import estimate_scores, quantize4, topk_indices


def keep_count(n: int, cfg: dict | None) -> int:
    """Keys kept per query for a sequence of ``n`` tokens under attention config ``cfg``.

    ``{}``/None: dense (n). ``{"topk": k}``: min(k, n). ``{"density": d, "min_k": m}``:
    min(n, max(m, ceil(d * n))) (m defaults to 1). Raises ValueError for k < 1 or d outside (0, 1].
    """
    if not cfg:
        return n
    if cfg.get("topk") is not None:
        k = int(cfg["topk"])
        if k < 1:
            raise ValueError(f"attention topk must be >= 1, got {k}")
        return min(k, n)
    if cfg.get("density") is not None:
        d = float(cfg["density"])
        if not 0 < d <= 1:
            raise ValueError(f"attention density must be in (0, 1], got {d}")
        return min(n, max(int(cfg.get("min_k", 1)), math.ceil(d * n)))
    return n


def attention_heads(q: np.ndarray, k: np.ndarray, v: np.ndarray, num_heads: int, score_m: int,
                    score_shift: int, ctx_m: int, ctx_shift: int, cfg: dict | None = None,
                    probs_out: list | None = None) -> np.ndarray:
    """Integer attention of one sequence.

    Args:
        q, k, v: ``(n, hidden)`` int8 values (any int dtype), heads laid out as consecutive
            ``head_dim`` column blocks.
        score_m, score_shift: dyadic requantization of the int32 Q.K^T accumulator to the i-exp input
            format (scale 2^-10).
        ctx_m, ctx_shift: dyadic requantization of the P.V accumulator (probabilities at scale 2^-12) to
            the int8 context.
        cfg: attention config for :func:`keep_count` (None = dense).
        probs_out: if a list is given, ``(heads, n, n)`` int64 probabilities (dense layout, zeros for
            dropped keys) are appended to it (token reduction uses them).
    Returns:
        ``(n, hidden)`` int64 int8 context.
    """
    n, hidden = q.shape
    d = hidden // num_heads
    qh = q.reshape(n, num_heads, d).transpose(1, 0, 2)
    kh = k.reshape(n, num_heads, d).transpose(1, 0, 2)
    vh = v.reshape(n, num_heads, d).transpose(1, 0, 2).astype(np.float64)
    acc = np.matmul(qh.astype(np.float64), kh.transpose(0, 2, 1).astype(np.float64)).astype(np.int64)
    scores = intops.requantize(acc, score_m, score_shift, 32)
    kk = keep_count(n, cfg)
    if kk >= n:
        p = intops.i_softmax(scores)
        ctx = np.matmul(p.astype(np.float64), vh).astype(np.int64)
        if probs_out is not None:
            probs_out.append(p)
    else:
        ctx = np.empty((num_heads, n, d), dtype=np.int64)
        dense_p = np.zeros((num_heads, n, n), dtype=np.int64) if probs_out is not None else None
        for h in range(num_heads):
            idx = topk_indices(estimate_scores(quantize4(qh[h]), quantize4(kh[h])), kk)
            p = intops.i_softmax(np.take_along_axis(scores[h], idx, axis=1))
            ctx[h] = np.einsum("ik,ikd->id", p.astype(np.float64), vh[h][idx]).astype(np.int64)
            if dense_p is not None:
                np.put_along_axis(dense_p[h], idx, p, axis=1)
        if probs_out is not None:
            probs_out.append(dense_p)
    ctx = ctx.transpose(1, 0, 2).reshape(n, hidden)
    return intops.requantize(ctx, ctx_m, ctx_shift, 8)
