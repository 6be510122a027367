"""Token reduction between encoder layers: cascade token pruning by accumulated attention (integer only).

Method: SpAtten's cascade token pruning (Wang et al., HPCA 2021, arXiv 2012.09852, section 3.1; summarised
in ALGORITHMS.md section 3), with TR-BERT's conventions for what happens to a removed token (Ye et al.,
NAACL 2021): [CLS] is always kept, and a removed token's hidden state at the layer where it was removed is
carried to the output.

The specification that hardware reproduces bit for bit (docs/sparsity.md, "Token reduction"):

1. Importance. After each layer ``l`` that runs attention, every surviving token ``j`` of a sequence gets
   ``r_l[j] = sum over heads h and queries i of P_l[h, i, j]``, the uint12 softmax probabilities (scale
   2^-12; zero for keys that top-k selection dropped). Importance accumulates over layers:
   ``A[j] = sum over l of r_l[j]`` (SpAtten: "cumulative importance"). Bounds: ``r_l[j] <= heads * n * 255``,
   so ``A`` fits an unsigned 32-bit accumulator for ``layers * heads * n * 255 < 2^32``
   (e.g. 24 layers x 16 heads x 4096 tokens).
2. Selection before layer ``i`` (``i`` in ``tokens.layers``, ``i >= 1``), per sequence of ``n`` surviving
   tokens: keep ``c = max(1, ceil(keep * n))`` tokens (:func:`keep_tokens`, exact rational arithmetic).
   [CLS] (the sequence's first surviving row, always original position 0) is kept unconditionally; the
   other ``c - 1`` are the tokens of largest ``A``; equal ``A`` goes to the lower position (the earlier
   token). Kept tokens stay in their original order, so the pack stays a valid packed batch.
3. Removed tokens. A token removed before layer ``i`` keeps the int8 output of layer ``i - 1``. The encoder
   output is one int8 tensor at the last layer's output scale, so the carried row is requantized per
   channel from layer ``i - 1``'s output scale to the last layer's, with the dyadic multiplier
   :func:`carry_requant` (a compile-time constant; saturates at +-127). The output has every original row
   in its original position, so mean pooling still sees all tokens.

Learned selection (``method: policy``; TR-BERT, Ye et al., NAACL 2021, arXiv 2105.11618, section 3; the
float policy and its training are in :mod:`padless.sparse.policy`). Before each selection layer ``i``, on
the int8 hidden state entering layer ``i`` (layer ``i - 1``'s output, per-channel scale folded into the
weights), per surviving row, :func:`policy_logits` computes

    ``u = requantize(W1 x + b1)`` (int8 x int8 -> int32 accumulator, dyadic per channel -> int16, 32 channels);
    ``g = requantize(i_gelu_pwl(u))`` (the encoder's piecewise-linear integer GELU, -> int8);
    ``z = w2 . g + b2`` (int32 logit; real logit = z * logit_scale).

A row is kept iff ``z >= threshold`` (:func:`select_by_logits`): sigmoid(logit) >= 0.5 is logit >= 0, so
threshold 0 is TR-BERT's inference rule; a calibrated integer threshold sets the kept ratio instead. [CLS]
(the sequence's first surviving row) is kept whatever its logit; ``z == threshold`` keeps the row; a
sequence whose other rows all fall below keeps [CLS] alone. The decision is per row, so it does not depend
on the other sequences of the pack or on their order; kept rows keep their order, and removed rows are
carried as in item 3.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from dataclasses import dataclass

from ..errors import InputError, ProjectError
from ..quant import intops

__all__ = ["keep_tokens", "keep_fraction", "select_tokens", "carry_requant", "carry_rows", "max_importance",
           "IMPORTANCE_BITS", "POLICY_WIDTH", "PolicyPoint", "stage_lengths", "kernel_tables", "policy_logits", "select_by_logits", "POLICY_MID_BITS", "require_policy"]

#: Width of the importance accumulator in hardware (unsigned).
IMPORTANCE_BITS = 32
#: Largest denominator of the keep ratio as an exact fraction (0.7 -> 7/10).
KEEP_DENOMINATOR_MAX = 1 << 16


def keep_fraction(keep: float) -> tuple[int, int]:
    """The keep ratio as the integers ``(p, q)`` with ``keep ~= p / q``, ``q <= 2^16`` (0.7 -> (7, 10)).

    The hardware computes ``ceil(p * n / q)`` with an integer division; the ratio is a compile-time
    constant. Raises InputError outside (0, 1]."""
    if not 0 < float(keep) <= 1:
        raise InputError(f"token keep ratio must be in (0, 1], got {keep!r}")
    f = Fraction(float(keep)).limit_denominator(KEEP_DENOMINATOR_MAX)
    return f.numerator, f.denominator


def keep_tokens(n: int, keep: float) -> int:
    """Tokens kept from ``n`` at one selection point: ``max(1, ceil(keep * n))`` with exact integer
    arithmetic on :func:`keep_fraction` (equal to :func:`padless.opcount.layer_tokens`'s float formula for
    every ratio with at most 4 decimals and n <= 4096)."""
    p, q = keep_fraction(keep)
    return max(1, -(-p * int(n) // q))


def select_tokens(importance: np.ndarray, offsets: np.ndarray, keep: float) -> np.ndarray:
    """Which rows of a packed batch survive one selection point.

    Args:
        importance: ``(tokens,)`` non-negative integer accumulated attention received (item 1 above).
        offsets: ``(B + 1,)`` int64 sequence offsets into the packed rows (cu_seqlens).
        keep: keep ratio in (0, 1].
    Returns:
        ``(tokens,)`` bool, True for kept rows: per sequence exactly :func:`keep_tokens` of its length,
        always including its first row ([CLS]); ties in importance go to the lower row.
    Raises:
        InputError: a negative importance, or a ratio outside (0, 1].
    """
    imp = np.asarray(importance, dtype=np.int64)
    if imp.size and imp.min() < 0:
        raise InputError("token importance must be non-negative (sums of uint12 probabilities)")
    mask = np.zeros(imp.shape[0], dtype=bool)
    for b in range(len(offsets) - 1):
        s, e = int(offsets[b]), int(offsets[b + 1])
        n = e - s
        if n == 0:
            continue
        c = keep_tokens(n, keep)
        mask[s] = True
        if c > 1:
            # Stable sort on -importance: among equal importance the lower position ranks first.
            order = np.argsort(-imp[s + 1:e], kind="stable")[: c - 1]
            mask[s + 1 + order] = True
    return mask


def carry_requant(qe, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Dyadic per-channel requantization of a row removed before ``layer``: int8 at layer ``layer - 1``'s
    output scale -> int8 at the encoder's output scale.

    Returns ``(m, shift)`` ``(hidden,)`` int64 (``x * m >> shift``, round half up, saturate to int8; see
    :func:`padless.quant.intops.requantize`). Raises InputError for ``layer`` outside ``1 .. L-1`` and
    ProjectError when the integer model lacks its per-layer scales."""
    if not 1 <= int(layer) < len(qe.layers):
        raise InputError(f"token selection before layer {layer} is not possible in a {len(qe.layers)}-layer model")
    try:
        s_src = np.asarray(qe.layers[int(layer) - 1].scales["out"], dtype=np.float64)
    except (KeyError, TypeError) as exc:
        raise ProjectError("the integer model has no per-layer output scales; recompile the project") from exc
    s_dst = np.asarray(qe.output_scale, dtype=np.float64)
    s_src = np.broadcast_to(s_src, s_dst.shape)
    return intops.dyadic(s_src / s_dst, 8)


def carry_rows(x: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``(rows, hidden)`` int8 -> int8 at the output scale (``requantize(x, m, shift, 8)``), int64 out."""
    return intops.requantize(np.asarray(x, dtype=np.int64), m, shift, 8)


def max_importance(num_layers: int, num_heads: int, n: int) -> int:
    """Upper bound of the accumulated importance of one token (for sizing the accumulator)."""
    return int(num_layers) * int(num_heads) * int(n) * ((1 << intops.PROB_BITS) - 1)



#: Width of the policy's hidden (GELU input) activations: int16, as the encoder's FFN GELU input.
POLICY_MID_BITS = 16
#: Hidden width of the policy MLP (TR-BERT: 32; the kernel's tokens.h POLICY_WIDTH).
POLICY_WIDTH = 32


@dataclass
class PolicyPoint:
    """The integer TR-BERT policy of one selection point (made by :func:`padless.sparse.policy.quantize_policy`).

    w1: ``(32, hidden)`` int8 per-output-channel weights (the int8 input's per-channel scale folded in);
    b1: ``(32,)`` int64 holding int32 biases at the accumulator scale; m1, shift1: ``(32,)`` int64 dyadic
    requantization accumulator -> int16 (scale ``mid_scale``); gelu_lo, gelu_k, gelu_slope, gelu_icpt: the
    :func:`padless.quant.intops.gelu_pwl_table` of ``mid_scale``; m_act, shift_act: int64 scalars, GELU
    output (units of ``mid_scale``) -> int8 (scale ``act_scale``); w2: ``(32,)`` int8; b2: int32 bias at
    scale ``logit_scale = act_scale * w2_scale``; threshold: int32, keep iff logit >= threshold.
    """

    layer: int
    w1: np.ndarray
    b1: np.ndarray
    m1: np.ndarray
    shift1: np.ndarray
    gelu_lo: int
    gelu_k: int
    gelu_slope: np.ndarray
    gelu_icpt: np.ndarray
    m_act: int
    shift_act: int
    w2: np.ndarray
    b2: int
    threshold: int
    logit_scale: float


def policy_logits(pt: PolicyPoint, x: np.ndarray) -> np.ndarray:
    """Integer policy logits of ``(rows, hidden)`` int8 hidden states -> ``(rows,)`` int64 (int32 range).

    Bounds: the first accumulator is ``hidden`` int8 x int8 products plus an int32 bias (< 2^31 for
    hidden <= 2^16); the second is 32 int8 x int8 products plus an int32 bias. Row-wise: no row depends
    on another."""
    x = np.asarray(x, dtype=np.int64)
    acc = intops.int_matmul(x, pt.w1.T.astype(np.int64)) + pt.b1
    u = intops.requantize(acc, pt.m1, pt.shift1, POLICY_MID_BITS)
    g = intops.i_gelu_pwl(u, pt.gelu_lo, pt.gelu_k, pt.gelu_slope, pt.gelu_icpt)
    a = intops.requantize(g, pt.m_act, pt.shift_act, 8)
    return intops.int_matmul(a, np.asarray(pt.w2, np.int64)[:, None])[:, 0] + int(pt.b2)


def select_by_logits(logits: np.ndarray, offsets: np.ndarray, threshold: int) -> np.ndarray:
    """Rows kept by a learned policy: ``logit >= threshold``, and every sequence's first row ([CLS]).

    Args:
        logits: ``(tokens,)`` integer policy logits of a packed batch (:func:`policy_logits`).
        offsets: ``(B + 1,)`` int64 cu_seqlens of the packed rows.
        threshold: int keep threshold (0: TR-BERT's sigmoid >= 0.5).
    Returns:
        ``(tokens,)`` bool mask (kept rows stay in order when the pack is compressed with it).
    """
    z = np.asarray(logits, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    mask = z >= int(threshold)
    starts = offsets[:-1][offsets[:-1] < offsets[1:]]
    mask[starts] = True
    return mask


def stage_lengths(n: int, keep: float, points: int) -> list[int]:
    """Surviving length of a sequence of ``n`` tokens after 0, 1, .. ``points`` cascade selection points
    (``(points + 1,)`` list; :func:`keep_tokens` applied in turn). ``n == 0`` stays 0."""
    out = [int(n)]
    for _ in range(int(points)):
        out.append(keep_tokens(out[-1], keep) if out[-1] else 0)
    return out


def kernel_tables(qe, tokens: dict | None, max_seq: int) -> dict | None:
    """What the HLS kernel's config.h needs to run cascade token reduction (hw/hls/include/padless/tokens.h),
    or None without token reduction.

    Returns ``{"layers": [i, ..] (selection points), "keep", "stages": len(layers) + 1, "stage": (L,) selection
    points at or before each layer, "last": the last selection layer (layers before it accumulate importance),
    "len": (stages, max_seq + 1) surviving length per stage and input length, "step": (max_seq + 1,)
    rows kept of n at one selection point, "imp_bits": bits of the
    importance accumulator (:func:`max_importance` over the accumulating layers), "carry_m", "carry_shift":
    (stages, hidden) per-channel :func:`carry_requant` of each selection point (the last row unused, zero)}``.

    The learned policy (``method: policy``) gives ``"policy": {"w1", "b1", "m1", "s1", "gs", "gi", "w2", "sc"}``
    instead of the cascade's ``len`` / ``step`` / ``imp_bits`` (``last`` 0: nothing accumulates): per selection
    point the :class:`PolicyPoint` constants (``sc``: gelu_lo, gelu_k, m_act, shift_act, b2, threshold), a
    zero row for the unused last stage; the kept counts are data dependent (the kernel's writer counts them).

    Raises InputError for a selection point outside ``1 .. L-1``, ProjectError when the importance would not
    fit 32 bits or when the learned policy is configured but ``qe.token_policy`` (the project's policy.npz) is
    missing or lacks a point."""
    t = tokens or {}
    use_policy = t.get("method") == "policy"
    sel = sorted(set(int(i) for i in (t.get("layers") or [])))
    keep = float(t.get("keep", 1.0))
    if not sel or (keep >= 1 and not use_policy):
        return None
    L = len(qe.layers)
    bad = [i for i in sel if not 1 <= i < L]
    if bad:
        raise InputError(f"token selection layers {bad} are outside 1..{L - 1}; fix `tokens: layers:` in the config")
    if use_policy:
        return _policy_tables(qe, sel, keep, L)
    heads = int(qe.model["num_heads"])
    last = sel[-1]
    bound = last * heads * int(max_seq) << intops.PROB_BITS   # a probability is at most 2^12
    if bound >= 1 << IMPORTANCE_BITS:
        raise ProjectError(f"token importance over {last} layers x {heads} heads x {max_seq} tokens needs more than "
                           f"{IMPORTANCE_BITS} bits; use a shorter maximum sequence or earlier selection layers")
    cm, cs = _carry_tables(qe, sel)
    lens = np.array([stage_lengths(n, keep, len(sel)) for n in range(int(max_seq) + 1)], dtype=np.int64).T
    return {"layers": sel, "keep": keep, "stages": len(sel) + 1,
            "stage": [sum(1 for i in sel if i <= l) for l in range(L)], "last": last,
            "len": lens.tolist(), "step": [keep_tokens(n, keep) if n else 0 for n in range(int(max_seq) + 1)],
            "imp_bits": max(1, int(bound).bit_length()),
            "carry_m": cm.tolist(), "carry_shift": cs.tolist()}


def require_policy(policy, select_at, error=InputError, where: str = ""):
    """The integer policy (:class:`padless.sparse.policy.QuantPolicy`) that ``tokens: {method: policy}`` with
    selection points ``select_at`` needs, checked: the one place golden, the kernel tables and the ONNX export
    look it up. Raises ``error`` (InputError, or ProjectError for a project's kernel), its message prefixed by
    ``where``, when ``policy`` is None (no policy.npz) or lacks a point of ``select_at``."""
    if policy is None:
        raise error(f"{where}tokens method 'policy' needs the trained policy (policy.npz in the project; in Python "
                    "padless.sparse.policy.load_policy, passed as policy=): train one with `padless train-policy "
                    "PROJECT --layers ...`, or use `tokens: {method: cascade}`")
    missing = [i for i in select_at if i not in policy.points]
    if missing:
        raise error(f"{where}the token policy has no selection point for layer(s) {missing} (it has "
                    f"{sorted(policy.points)}); retrain it with `padless train-policy PROJECT --layers "
                    f"{' '.join(map(str, select_at))}`")
    return policy


def _carry_tables(qe, sel: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(stages, hidden)`` int64 :func:`carry_requant` ``m`` and ``shift`` of each selection point of ``sel``
    (config.h PADLESS_TR_CARRY_M / _SHIFT; the last row, after the last point, zero)."""
    hidden = int(qe.model.get("hidden_size") or np.asarray(qe.output_scale).size)
    cm = np.zeros((len(sel) + 1, hidden), dtype=np.int64)
    cs = np.zeros((len(sel) + 1, hidden), dtype=np.int64)
    for k, i in enumerate(sel):
        m, s = carry_requant(qe, i)
        cm[k], cs[k] = np.broadcast_to(m, (hidden,)), np.broadcast_to(s, (hidden,))
    return cm, cs


def _policy_tables(qe, sel: list[int], keep: float, L: int) -> dict:
    """:func:`kernel_tables` for the learned policy (the project's ``qe.token_policy``)."""
    pol = require_policy(getattr(qe, "token_policy", None), sel, ProjectError)
    cm, cs = _carry_tables(qe, sel)
    hidden = cm.shape[1]
    n = len(sel) + 1
    z = lambda *shape: np.zeros((n,) + shape, dtype=np.int64)  # noqa: E731
    tab = {"w1": z(POLICY_WIDTH, hidden), "b1": z(POLICY_WIDTH), "m1": z(POLICY_WIDTH), "s1": z(POLICY_WIDTH),
           "gs": z(intops.GELU_SEGMENTS), "gi": z(intops.GELU_SEGMENTS), "w2": z(POLICY_WIDTH), "sc": z(6)}
    i32 = (-(1 << 31), (1 << 31) - 1)
    # every constant in the range of the config.h array it lands in (tokens.h pol_scalars_t; a policy.npz is
    # a file of the project folder, checked like any input): name -> (value, shape, (lo, hi))
    for k, i in enumerate(sel):
        pt = pol.points[i]
        fields = {"w1": (pt.w1, (POLICY_WIDTH, hidden), (-128, 127)), "b1": (pt.b1, (POLICY_WIDTH,), i32),
                  "m1": (pt.m1, (POLICY_WIDTH,), (0, (1 << 31) - 1)), "s1": (pt.shift1, (POLICY_WIDTH,), (0, 62)),
                  "gs": (pt.gelu_slope, (intops.GELU_SEGMENTS,), i32),
                  "gi": (pt.gelu_icpt, (intops.GELU_SEGMENTS,), (-(1 << 62), 1 << 62)),
                  "w2": (pt.w2, (POLICY_WIDTH,), (-128, 127)),
                  "sc": ([pt.gelu_lo, pt.gelu_k, pt.m_act, pt.shift_act, pt.b2, pt.threshold], (6,),
                         (np.array([i32[0], 0, 0, 0, i32[0], i32[0]]), np.array([i32[1], 15, (1 << 31) - 1, 62,
                                                                                 i32[1], i32[1]])))}
        for name, (v, shape, (lo, hi)) in fields.items():
            v = np.asarray(v, dtype=np.int64)
            if v.shape != shape or np.any(v < lo) or np.any(v > hi):
                raise ProjectError(f"the token policy of layer {i}: {name} has shape {v.shape} or values outside "
                                   f"what the kernel holds (shape {shape}); retrain it with `padless train-policy`")
            tab[name][k] = v
    return {"layers": sel, "keep": keep, "method": "policy", "stages": n,
            "stage": [sum(1 for i in sel if i <= l) for l in range(L)], "last": 0,
            "carry_m": cm.tolist(), "carry_shift": cs.tolist(),
            "policy": {k: v.tolist() for k, v in tab.items()}}
