"""Sparsity masks used while training: bank-balanced weight masks on a cubic schedule and the 4-bit Q/K top-k
key selection of the golden model, in torch.

* Weight masks. Bank-balanced magnitude pruning (Cao et al., FPGA 2019, section 3) through
  :func:`padless.sparse.weights.bank_balanced_mask` itself, so a mask computed here is exactly the mask
  ``prune_spec`` computes at compile time from the same weights. The ratio grows on the cubic schedule of
  Zhu & Gupta ("To prune, or not to prune", arXiv 1710.01878, section 3, eq. 1):
  ``s_t = s_f * (1 - (1 - t / T)^3)`` for ``0 <= t <= T``, then ``s_f`` (:func:`cubic_sparsity`).
* Attention keep mask. The selection of the DAC 2022 sparse attention (Peng et al., arXiv 2208.03646,
  section 3.2; :mod:`padless.sparse.selection`) on float Q/K: per (sequence, head) one 4-bit scale
  ``M = max |x|`` over the real tokens, ``x4 = round_half_away(7 x / M)``, ``S' = Q4 K4^T``, each query keeps
  :func:`padless.sparse.attention.keep_count` keys of largest ``S'``, ties to the lower key index. The golden
  model applies the same rule to int8 Q/K, so near-ties can differ in a few keys (the float -> int8 step).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..sparse.attention import keep_count
from ..sparse.selection import Q4_MAX
from ..sparse.weights import bank_balanced_mask, is_pattern_balanced

__all__ = ["cubic_sparsity", "weight_mask", "is_bank_balanced", "attention_keep_mask", "quantize4_float"]


def cubic_sparsity(step: int, ramp_steps: int, final: float) -> float:
    """Pruning ratio after ``step`` optimizer steps: ``final * (1 - (1 - step / ramp_steps)^3)``, clamped to
    ``final`` for ``step >= ramp_steps`` (Zhu & Gupta, arXiv 1710.01878, eq. 1 with s_i = 0, t_0 = 0).
    ``ramp_steps <= 0`` gives ``final`` at once (one-shot). Raises InputError for ``final`` outside [0, 1)."""
    if not 0 <= float(final) < 1:
        raise InputError(f"final sparsity must be in [0, 1), got {final!r}")
    if ramp_steps <= 0 or step >= ramp_steps:
        return float(final)
    frac = 1.0 - (1.0 - max(0, step) / ramp_steps) ** 3
    return float(final) * frac


def weight_mask(weight: torch.Tensor, bank: int, sparsity: float, rows: int = 1) -> torch.Tensor:
    """``(out, in)`` float weight -> ``(out, in)`` bool keep-mask, exactly ``kept_per_bank(bank, sparsity)``
    True per bank of ``bank`` consecutive inputs (largest ``|w|``, ties to the lower in-bank index); with
    ``rows`` 2 (``pattern: pe-pair``) rows 2i and 2i + 1 share the kept columns (largest summed ``|w|``).
    Raises InputError when ``bank`` does not divide ``in`` or pe-pair meets an odd row count."""
    w = weight.detach().cpu().numpy()
    if sparsity <= 0:
        return torch.ones(weight.shape, dtype=torch.bool)
    return torch.from_numpy(bank_balanced_mask(w, bank, sparsity, rows=rows))


def is_bank_balanced(weight: torch.Tensor | np.ndarray, bank: int, sparsity: float, rows: int = 1) -> bool:
    """True when every bank of ``bank`` inputs of the ``(out, in)`` weight uses at most
    ``kept_per_bank(bank, sparsity)`` columns per row (``rows`` 1) or per pair of rows 2i, 2i + 1 (``rows``
    2, pattern pe-pair): exactly that many unless training drove a kept weight to 0."""
    w = np.asarray(weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else weight)
    return is_pattern_balanced(w, bank, sparsity, rows)


def quantize4_float(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(B, H, n, d)`` float -> 4-bit integer values in [-7, 7] (float dtype), one scale per (sequence, head)
    over the rows where ``valid`` ``(B, n)`` is True; round half away from zero. All-zero tensors give 0."""
    m = (x.abs() * valid[:, None, :, None]).amax(dim=(2, 3), keepdim=True)
    m = torch.where(m > 0, m, torch.ones_like(m))
    return torch.sign(x) * torch.floor(Q4_MAX * x.abs() / m + 0.5)


@torch.no_grad()
def attention_keep_mask(q: torch.Tensor, k: torch.Tensor, lengths: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Top-k key selection of every query from 4-bit Q/K estimates.

    Args:
        q, k: ``(B, H, n, d)`` float queries and keys of a padded batch (rows ``>= lengths[b]`` are padding).
        lengths: ``(B,)`` int64 real tokens per sequence.
        cfg: attention config (``{"topk": k}`` or ``{"density": d, "min_k": m}``), see
            :func:`padless.sparse.attention.keep_count`.
    Returns:
        ``(B, H, n, n)`` bool, True for the kept (query, key) pairs: ``keep_count(lengths[b], cfg)`` real keys
        per query; padding keys are never kept.
    """
    B, H, n, _ = q.shape
    ar = torch.arange(n)
    valid = ar[None, :] < lengths[:, None]  # (B, n)
    s = quantize4_float(q, valid) @ quantize4_float(k, valid).transpose(-1, -2)  # exact small integers
    # Unique ranking key: larger estimate first, then the lower key index (float64 keeps it exact).
    key = s.double() * (n + 1) + (n - ar).double()
    key = key.masked_fill(~valid[:, None, None, :], float("-inf"))
    kb = torch.tensor([keep_count(int(L), cfg) for L in lengths.tolist()], dtype=torch.long)
    kmax = int(kb.max())
    idx = key.topk(kmax, dim=-1).indices  # (B, H, n, kmax)
    slot_ok = torch.arange(kmax)[None, :] < kb[:, None]  # (B, kmax)
    keep = torch.zeros(B, H, n, n, dtype=torch.bool)
    keep.scatter_(-1, idx, slot_ok[:, None, None, :].expand(B, H, n, kmax))
    return keep & valid[:, None, None, :]
