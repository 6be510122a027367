"""GPTQ: the int8 weights rounded against real calibration inputs instead of to the nearest step.

Round-to-nearest (:func:`padless.quant.quantize.quantize_weights`) rounds every weight on its own. GPTQ
rounds the columns of a weight matrix one at a time and spreads each column's rounding error over the
columns not rounded yet, so that the layer's *output* on the calibration inputs moves as little as
possible (second-order, optimal brain quantization).

Method: Frantar, Ashkboos, Hoefler & Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers", ICLR 2023 (arXiv 2210.17323), Algorithm 1: ``H = X^T X`` of the layer's inputs,
dampened by ``damp * mean(diag H)``; the upper Cholesky factor ``U`` of ``H^-1``; columns in lazy blocks of
``block``; for column ``j``: ``q = round(w_j / s)`` (clamped to +-127), ``e = (w_j - q s) / U[j, j]``,
``w_{j+1..} -= e U[j, j+1..]``. With the reference implementation's "act-order" the columns are visited in
descending ``diag(H)`` (largest inputs first). Layers are quantized in order, each from the inputs that
the *integer* model computes with the layers before it already quantized (the paper's sequential
setting, section 4): the inputs are the golden model's own int8 tensors
(:func:`padless.golden.run_layer`'s ``observe``), so the Hessians are exact integer sums.

What stays as :func:`padless.quant.quantize.quantize_encoder` made it: every scale, the per-row weight
scale (``max |W'_j| / 127`` of the folded weight ``W' = W diag(s_in)``), biases and requantization
multipliers; only the int8 values change (and, after an asymmetric input, the bias that holds its zero
point times the weights: :meth:`padless.quant.quantize.QLinear.set_weights`). The integer data path is the
same, so every backend (csim, ONNX, the HLS kernel) runs a GPTQ model unchanged. Pruned weights (0 in the float model: bank-balanced
sparsity) stay 0.

*(padless)*: every calibration sentence weighs the same in ``H`` (each sentence's ``X^T X`` is divided by
its length). Weighted by tokens, the 128 long Reuters articles of minilm-l6's calibration outweighed the
short texts about 10 to 1, and GPTQ made short texts worse than round-to-nearest (docs/numerics.md,
"Fixing the sites that matter").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from ..ir import EncoderSpec
from .quantize import QuantizedEncoder

__all__ = ["gptq_round", "gptq_encoder", "DEFAULT_DAMP", "DEFAULT_BLOCK", "LINEAR_INPUTS"]

#: Dampening, as a fraction of the mean Hessian diagonal (the paper's 1%).
DEFAULT_DAMP = 0.01
#: Columns per lazy-update block (the paper's 128).
DEFAULT_BLOCK = 128
#: Linear layer (:class:`padless.quant.quantize.QLayer` field) -> the site of its input, and the
#: :class:`padless.ir.LayerSpec` field of its float weights.
LINEAR_INPUTS = {"q": ("in", "q"), "k": ("in", "k"), "v": ("in", "v"), "o": ("ctx", "o"),
                 "up": ("h", "ffn_up"), "down": ("act", "ffn_down")}


def gptq_round(weight: np.ndarray, hessian: np.ndarray, scale: np.ndarray, block: int = DEFAULT_BLOCK,
               damp: float = DEFAULT_DAMP, act_order: bool = True, qmax: int = 127) -> np.ndarray:
    """GPTQ rounding of one linear layer to the per-row grids ``scale * [-qmax, qmax]``.

    Args:
        weight: ``(out, in)`` float weight in units of the integer inputs (the input scale folded in).
        hessian: ``(in, in)`` ``X^T X`` of the integer calibration inputs ``X`` ``(tokens, in)``.
        scale: ``(out,)`` positive step of each row's grid (kept: the caller's requantization uses it).
        block: columns per lazy-update block; damp: dampening fraction of the mean diagonal.
        act_order: visit the columns in descending ``diag(hessian)`` (ties: lower index first).
    Returns:
        ``(out, in)`` int8. An entry that is exactly 0 in ``weight`` stays 0 (pruned weights); a column
        whose input was always 0 (``H[j, j] == 0``) is rounded to nearest.
    Raises:
        InputError: shapes that do not match, a non-finite Hessian, or one that is not positive definite
        after dampening.
    """
    w = np.array(weight, dtype=np.float64)
    out_f, in_f = w.shape
    h = np.array(hessian, dtype=np.float64)
    s = np.asarray(scale, np.float64)
    if h.shape != (in_f, in_f) or s.shape != (out_f,):
        raise InputError(f"GPTQ needs a ({in_f}, {in_f}) Hessian and ({out_f},) scales for a ({out_f}, {in_f}) "
                         f"weight, got {h.shape} and {s.shape}")
    if not np.isfinite(h).all() or not np.all(s > 0):
        raise InputError("GPTQ: calibration inputs or weight scales are not finite / positive")
    pruned = w == 0
    dead = np.diag(h) == 0
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    h[dead, dead] = 1.0
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(in_f)
    w, h, pruned = w[:, perm], h[perm][:, perm], pruned[:, perm]
    h[np.diag_indices(in_f)] += damp * np.mean(np.diag(h))
    try:
        hinv = np.linalg.inv(np.linalg.cholesky(h))           # L^-1
        u = np.linalg.cholesky(hinv.T @ hinv).T                # upper Cholesky factor of H^-1
    except np.linalg.LinAlgError as e:
        raise InputError(f"GPTQ Hessian is not positive definite ({e}); give more calibration sentences "
                         "or raise the dampening") from None
    q = np.zeros((out_f, in_f), dtype=np.int64)
    for b0 in range(0, in_f, block):
        b1 = min(b0 + block, in_f)
        w1 = w[:, b0:b1].copy()
        err = np.zeros_like(w1)
        u1 = u[b0:b1, b0:b1]
        for j in range(b1 - b0):
            col = w1[:, j]
            qj = np.where(pruned[:, b0 + j], 0, np.clip(np.round(col / s), -qmax, qmax)).astype(np.int64)
            e = (col - qj * s) / u1[j, j]
            w1[:, j:] -= np.outer(e, u1[j, j:])
            q[:, b0 + j] = qj
            err[:, j] = e
        w[:, b1:] -= err @ u[b0:b1, b1:]
    out = np.empty_like(q)
    out[:, perm] = q
    return out.astype(np.int8)


def _gram(x: np.ndarray) -> np.ndarray:
    """``x^T x`` of one sequence's integer inputs ``(n, c)``, exact: float32 BLAS while every partial sum
    stays below 2^24 (int8 inputs: n <= 1023; int8 less a zero point, up to 255: n <= 258), else float64
    (exact below 2^53)."""
    big = int(np.abs(x).max(initial=0))
    dt = np.float32 if len(x) * big * big < (1 << 24) else np.float64
    xf = x.astype(dt)
    return (xf.T @ xf).astype(np.float64)


def gptq_encoder(spec: EncoderSpec, qe: QuantizedEncoder, token_ids: Sequence[Sequence[int]],
                 damp: float = DEFAULT_DAMP, block: int = DEFAULT_BLOCK, chunk_tokens: int = 4096,
                 progress: bool = False) -> QuantizedEncoder:
    """Re-round every int8 weight of ``qe`` with :func:`gptq_round`, layer by layer (in place).

    Args:
        spec: the float model ``qe`` was quantized from (its weights are GPTQ's targets).
        qe: the integer model (round-to-nearest weights); its int8 weights are replaced, nothing else.
        token_ids: calibration sentences, tokenized (real text; every sentence weighs the same).
        chunk_tokens: tokens run through the golden model at once (memory only; the result does not
            depend on it).
    Returns:
        ``qe``.
    Raises:
        InputError: no calibration sentence, a model whose layer count differs from ``qe``, or the errors of
        :func:`gptq_round`.
    """
    from ..golden import quantize_input, run_layer
    from ..runtime.host import pack_plan
    from ..reference import embed

    seqs = [list(map(int, s)) for s in token_ids]
    if not seqs:
        raise InputError("GPTQ needs calibration sentences")
    if spec.num_layers != qe.num_layers:
        raise InputError(f"the float model has {spec.num_layers} layers, the integer model {qe.num_layers}")
    xs = [quantize_input(embed(spec, s), qe.input_scale).astype(np.int64) for s in seqs]
    chunks = []
    for group in pack_plan([len(x) for x in xs], chunk_tokens):
        lens = [len(xs[g]) for g in group]
        chunks.append((np.concatenate([xs[g] for g in group]),
                       np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)))
    del xs
    heads = qe.model["num_heads"]
    layers = range(qe.num_layers)
    if progress:
        from ..progress import progress_bar
        layers = progress_bar(layers, desc="GPTQ", unit="layer", leave=False)
    for i in layers:
        layer, fl = qe.layers[i], spec.layers[i]
        hess: dict[str, np.ndarray] = {}
        for x, off in chunks:
            def observe(site, value, off=off):
                acc = hess.get(site)
                for a, b in zip(off[:-1], off[1:]):
                    g = _gram(value[a:b]) / float(b - a)
                    acc = g if acc is None else acc + g
                hess[site] = acc
            run_layer(layer, x, off, heads, observe=observe)
        for name, (site, spec_name) in LINEAR_INPUTS.items():
            ql = getattr(layer, name)
            s_in = np.broadcast_to(np.asarray(layer.scales[site], np.float64), (ql.w.shape[1],))
            folded = np.asarray(getattr(fl, spec_name).weight, np.float64) * s_in[None, :]
            ql.set_weights(gptq_round(folded, hess[site], ql.w_scale, block=block, damp=damp))
        chunks = [(run_layer(layer, x, off, heads), off) for x, off in chunks]
    return qe
