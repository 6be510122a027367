"""Bank-balanced pruning with second-order weight reconstruction (SparseGPT, OBS-style), on real sentences.

Method: Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
ICML 2023 (arXiv 2301.00774), section 3 (the row-Hessian OBS update, lazy batched column blocks) and
section 3.4 ("semi-structured N:M sparsity"): a bank of ``B`` consecutive inputs keeping ``P`` weights is
exactly ``P:B`` N:M sparsity along the input dimension, which is what padless's bank-balanced storage
(:mod:`padless.sparse.weights`) needs. For one Linear with ``(out, in)`` weight ``W`` and calibration inputs
``X`` ``(tokens, in)``, SparseGPT minimises ``||W X^T - W' X^T||^2`` over masked ``W'``:

* ``H = X^T X + damp * mean(diag(H)) * I`` (``in x in``, float64); ``U = chol(H^-1)`` upper;
* columns are visited left to right; at the first column of every bank, each row keeps the ``P`` weights
  of that bank with the largest OBS saliency ``w^2 / U[j, j]^2`` (ties to the lower in-bank index);
* pruning column ``j`` of every row ``r`` sets ``W[r, j] = 0`` and spreads the error
  ``e = W[r, j] / U[j, j]`` over the not-yet-visited columns: ``W[r, j:] -= e * U[j, j:]``;
  columns are processed in blocks of ``block`` with the update to later blocks applied once per block.

Layers are pruned in order (the "sequential" variant of the paper's section 4: each Linear sees the inputs
of the model pruned so far): Q/K/V from the layer input, then O from the attention context of the pruned
Q/K/V, then FFN up from the post-LayerNorm hidden state, then FFN down from the GELU output. Biases,
LayerNorms and embeddings are not changed. The inputs come from the numpy fp32 reference
(:func:`padless.reference.layer_fp32`), one packed sequence at a time: no padding enters the Hessian.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from ..ir import EncoderSpec, LinearSpec
from .weights import _INPUT_SITE, kept_per_bank

__all__ = ["obs_prune", "sparsegpt_layers", "DEFAULT_DAMP", "DEFAULT_BLOCK"]

#: Dampening, as a fraction of the mean Hessian diagonal (the paper's 1%).
DEFAULT_DAMP = 0.01
#: Columns per lazy-update block (the paper's 128; a multiple of every bank size used here).
DEFAULT_BLOCK = 128


def obs_prune(weight: np.ndarray, hessian: np.ndarray, bank: int, sparsity: float, block: int = DEFAULT_BLOCK,
              damp: float = DEFAULT_DAMP, rows: int = 1) -> np.ndarray:
    """SparseGPT bank-balanced pruning of one Linear.

    Args:
        weight: ``(out, in)`` float weight (torch ``nn.Linear`` layout).
        hessian: ``(in, in)`` ``X^T X`` of the calibration inputs ``X`` ``(tokens, in)`` (float64 preferred).
        bank: inputs per bank ``B`` (divides ``in``); sparsity: pruning ratio; each bank keeps
            ``kept_per_bank(bank, sparsity)`` weights.
        block: columns per lazy-update block (rounded down to a multiple of ``bank``, at least ``bank``).
        damp: dampening fraction of the mean diagonal.
        rows: 2 for ``pattern: pe-pair``: output rows 2i and 2i + 1 drop the same columns of each bank, the
            ``B - P`` of least summed saliency over the pair (the OBS error of a pair is the sum of its two
            rows' errors, since each row's reconstruction is independent given the shared Hessian).
    Returns:
        ``(out, in)`` float32: the pruned and reconstructed weight. At most ``P`` entries of every bank are
        non-zero (exactly ``P`` unless a calibration input channel was always 0); the others are exactly 0.
    Raises:
        InputError: shapes that do not match, a bank that does not divide ``in``, a bad ratio, or a Hessian
        that is not positive definite after dampening (calibration inputs that are all zero or not finite).
    """
    w = np.array(weight, dtype=np.float64)
    out_f, in_f = w.shape
    h = np.array(hessian, dtype=np.float64)
    if h.shape != (in_f, in_f):
        raise InputError(f"Hessian must be ({in_f}, {in_f}) for a ({out_f}, {in_f}) weight, got {h.shape}")
    if in_f % bank:
        raise InputError(f"bank {bank} does not divide the input width {in_f}")
    if rows not in (1, 2) or out_f % rows:
        raise InputError(f"pattern pe-pair needs an even number of output rows, got {out_f}")
    keep = kept_per_bank(bank, sparsity)
    if keep >= bank:
        return w.astype(np.float32)
    if not np.isfinite(h).all():
        raise InputError("calibration inputs are not finite; cannot build the SparseGPT Hessian")
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices(in_f)] += damp * np.mean(np.diag(h))
    try:
        hinv = np.linalg.inv(np.linalg.cholesky(h))          # L^-1
        hinv = hinv.T @ hinv                                  # H^-1
        u = np.linalg.cholesky(hinv).T                        # upper Cholesky factor of H^-1
    except np.linalg.LinAlgError as e:
        raise InputError(f"SparseGPT Hessian is not positive definite ({e}); give more calibration "
                         "sentences or raise the dampening") from None
    block = max(bank, (int(block) // bank) * bank)
    pruned_per_bank = bank - keep
    for b0 in range(0, in_f, block):
        b1 = min(b0 + block, in_f)
        w1 = w[:, b0:b1].copy()
        err = np.zeros_like(w1)
        u1 = u[b0:b1, b0:b1]
        drop = np.zeros(w1.shape, dtype=bool)
        for j in range(b1 - b0):
            if j % bank == 0:
                d = np.diag(u1)[j:j + bank]
                sal = w1[:, j:j + bank] ** 2 / (d * d)[None, :]
                # the (bank - keep) least salient of each bank (of each row pair: summed); a stable sort
                # sends ties to the lower index
                sal = sal.reshape(out_f // rows, rows, bank).sum(axis=1)
                order = np.repeat(np.argsort(sal, axis=1, kind="stable"), rows, axis=0)
                ridx = np.arange(out_f)[:, None]
                drop[ridx, j + order[:, :pruned_per_bank]] = True
            col = w1[:, j]
            q = np.where(drop[:, j], 0.0, col)
            e = (col - q) / u1[j, j]
            w1[:, j:] -= np.outer(e, u1[j, j:])
            w1[:, j] = q
            err[:, j] = e
        w[:, b0:b1] = w1
        w[:, b1:] -= err @ u[b0:b1, b1:]
    w32 = w.astype(np.float32)
    w32[w == 0] = 0.0
    return w32


class _Seen(Exception):
    """Raised by the observer once the wanted site is recorded: the rest of the layer is not needed."""


def _hessian(spec: EncoderSpec, layer, xs: Sequence[np.ndarray], site: str) -> np.ndarray:
    """``X^T X`` (float64) of the inputs at calibration ``site`` of ``layer`` over every sequence of ``xs``
    (the layer runs only up to that site)."""
    from ..reference import layer_fp32
    acc = {"h": None}

    def observe(name, value):
        if name == site:
            v = np.asarray(value, np.float64)
            acc["h"] = v.T @ v if acc["h"] is None else acc["h"] + v.T @ v
            raise _Seen
    for x in xs:
        try:
            layer_fp32(spec, layer, x, observe)
        except _Seen:
            pass
    return acc["h"]


def sparsegpt_layers(spec: EncoderSpec, ratios: Sequence[float], bank: int, token_ids,
                     block: int = DEFAULT_BLOCK, damp: float = DEFAULT_DAMP, progress=None, rows: int = 1) -> list:
    """Prune every Linear of every layer with :func:`obs_prune`, layer by layer and sub-layer by sub-layer.

    Args:
        spec: the dense float model (post-norm BERT family); not modified.
        ratios: pruning ratio per layer (``len(spec.layers)``).
        bank: bank size ``B``. token_ids: calibration sentences (lists of token ids, real text).
        progress: optional callable ``(layer_index, linear_name)`` called after each Linear.
        rows: 2 for ``pattern: pe-pair`` (:func:`obs_prune`).
    Returns:
        new layer objects (copies of ``spec.layers`` with pruned Linear weights).
    Raises:
        InputError: no calibration sentences, a pre-norm model, or the errors of :func:`obs_prune`.
    """
    import copy

    from ..reference import embed, layer_fp32
    seqs = [list(s) for s in token_ids]
    if not seqs:
        raise InputError("SparseGPT pruning needs calibration sentences")
    if any(layer.norm_first for layer in spec.layers):
        raise InputError(f"{spec.name} is pre-norm; criterion sparsegpt supports post-norm encoders "
                         "(use criterion: magnitude or activation)")
    xs = [embed(spec, ids) for ids in seqs]
    layers = []
    for i, (layer, s) in enumerate(zip(spec.layers, ratios)):
        new = copy.copy(layer)
        if s > 0:
            # Sub-layers in data-flow order; each group's Hessian sees the already pruned earlier groups.
            for group in (("q", "k", "v"), ("o",), ("ffn_up",), ("ffn_down",)):
                hess = _hessian(spec, new, xs, _INPUT_SITE[group[0]])
                for name in group:
                    lin: LinearSpec = getattr(new, name)
                    setattr(new, name, LinearSpec(weight=obs_prune(lin.weight, hess, bank, s, block, damp, rows),
                                                  bias=lin.bias))
                    if progress is not None:
                        progress(i, name)
        xs = [layer_fp32(spec, new, x) for x in xs]
        layers.append(new)
    return layers
