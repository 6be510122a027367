"""The bit-exact integer golden model: the executable specification every backend must equal.

It composes the integer operations of :mod:`padless.quant.intops` over a *packed* batch (sequences end
to end, ``offsets`` in the cu_seqlens convention, never padded). Linear layers, LayerNorm and GELU are
row-wise, so they run on the whole pack at once; attention runs per sequence inside the pack. The
result of a sequence therefore never depends on which sequences share its pack, nor on their order.
Token reduction (``sparsity["tokens"]``, :mod:`padless.sparse.tokens`) shrinks every sequence of the pack
between layers (per sequence, so the same holds) and writes removed rows back in place: the output always
has every input row, in input order (docs/sparsity.md).

Host edges (float): :func:`quantize_input` turns the host embedding into the int8 layer-0 input, and
:func:`dequantize_output` turns the int8 output back into floats for pooling and task heads.
"""
from __future__ import annotations

import numpy as np

from .errors import InputError
from .packing import check_offsets
from .quant import intops
from .quant.quantize import QLayer, QuantizedEncoder
from .sparse.attention import attention_heads
from .sparse.tokens import carry_requant, carry_rows, policy_logits, require_policy, select_by_logits, select_tokens


def quantize_input(x: np.ndarray, scale: float) -> np.ndarray:
    """Host: float embedding ``(tokens, hidden)`` -> int8 with the calibrated input scale
    (round half to even, saturate at +-127)."""
    return np.clip(np.rint(np.asarray(x, np.float64) / scale), -127, 127).astype(np.int8)


def dequantize_output(x: np.ndarray, scale: float) -> np.ndarray:
    """Host: int8 hidden states -> float32 real values."""
    return (np.asarray(x, np.float32) * np.float32(scale)).astype(np.float32)


def run_layer(layer: QLayer, x: np.ndarray, offsets: np.ndarray, num_heads: int,
              attention: dict | None = None, received: np.ndarray | None = None,
              observe=None) -> np.ndarray:
    """One integer encoder layer (BERT post-norm) over a packed batch.

    Args:
        layer: the quantized layer.
        x: ``(tokens, hidden)`` int8 values, packed.
        offsets: ``(B + 1,)`` int64 sequence offsets into ``x``.
        num_heads: attention heads.
        attention: attention sparsity config (None/{} dense; see sparse.attention.keep_count).
        received: optional ``(tokens,)`` int64 array; when given it is overwritten with the attention
            each token received in this layer, ``sum over heads and queries`` of the uint12 softmax
            probabilities of its sequence (token reduction's importance, :mod:`padless.sparse.tokens`).
        observe: optional ``observe(site, value)``, called with the integer input of every linear layer
            (``"in"`` for Q/K/V, ``"ctx"`` for O, ``"h"`` for FFN up, ``"act"`` for FFN down, less its zero
            point; ``(tokens, features)`` int64): GPTQ's calibration inputs (:mod:`padless.quant.gptq`).
    Returns:
        ``(tokens, hidden)`` int8 output.
    """
    x = np.asarray(x, dtype=np.int64)
    see = observe or (lambda site, value: None)
    see("in", x)
    q, k, v = layer.q(x), layer.k(x), layer.v(x)
    ctx = np.empty_like(q)
    for b in range(len(offsets) - 1):
        s, e = offsets[b], offsets[b + 1]
        probs = [] if received is not None else None
        ctx[s:e] = attention_heads(q[s:e], k[s:e], v[s:e], num_heads, layer.score_m, layer.score_shift,
                                   layer.ctx_m, layer.ctx_shift, attention, probs_out=probs)
        if probs is not None:
            received[s:e] = probs[0].sum(axis=(0, 1))
    see("ctx", ctx)
    res = layer.o(ctx) + intops.requantize(x, layer.res_attn_m, layer.res_attn_shift, intops.RESIDUAL_BITS)
    h = intops.i_layernorm(res, layer.ln_attn_m, layer.ln_attn_b, layer.ln_attn_shift)
    see("h", h)
    up = layer.up(h)
    if layer.act == "gelu-pwl":
        a = intops.i_gelu_pwl(up, layer.gelu_lo, layer.gelu_k, layer.gelu_slope, layer.gelu_icpt)
    elif layer.act == "gelu":
        a = intops.i_gelu(up, layer.gelu_b, layer.gelu_c, layer.gelu_r, layer.gelu_one)
    else:
        a = intops.relu(up)
    # int8 (asymmetric when act_zp != 0: its zero point is folded into down's bias), or int16
    act = intops.requantize(a, layer.act_m, layer.act_shift, layer.act_bits, layer.act_zp)
    see("act", act - np.asarray(layer.act_zp, np.int64))
    res2 = layer.down(act) + intops.requantize(h, layer.res_ffn_m, layer.res_ffn_shift, intops.RESIDUAL_BITS)
    return intops.i_layernorm(res2, layer.ln_ffn_m, layer.ln_ffn_b, layer.ln_ffn_shift)


def run_encoder(qe: QuantizedEncoder, x: np.ndarray, offsets: np.ndarray,
                sparsity: dict | None = None, kept_out: list | None = None, policy=None,
                lengths_out: list | None = None) -> np.ndarray:
    """All layers over a packed batch: ``(tokens, hidden)`` int8 in -> ``(tokens, hidden)`` int8 out.

    ``sparsity`` is the normalised config (:func:`padless.sparse.config.parse_sparsity`): ``attention``
    selects top-k attention in every layer; ``tokens`` (``{"layers": [...], "keep": r}``) enables cascade
    token pruning (:mod:`padless.sparse.tokens`): before each listed layer every sequence keeps
    ``max(1, ceil(r * n))`` of its surviving tokens ([CLS] always), ranked by the attention they received,
    accumulated over the layers run so far. A removed row keeps its hidden state from the layer before,
    requantized to the output scale, so the output still has every input row, in input order. Without
    ``tokens`` (or with an empty one) the result is the plain dense/top-k encoder. Weight sparsity is
    already in ``qe`` (the pruned weights are zero).

    ``tokens.method == "policy"`` uses the learned TR-BERT policy instead of the attention ranking: ``policy``
    (a :class:`padless.sparse.policy.QuantPolicy`, or ``qe.token_policy`` when the argument is None) gives
    one integer MLP per selection layer; a surviving row is kept iff its integer logit reaches the point's
    threshold ([CLS] always; :func:`padless.sparse.tokens.select_by_logits`).

    If ``kept_out`` is a list, a ``(tokens,)`` bool array is appended to it: True for the rows that ran
    through every layer (all True without token reduction), for hosts that pool the survivors only.
    If ``lengths_out`` is a list, it receives a ``(B, points + 1)`` int64 array: each sequence's surviving
    length before the first selection point and after each (the kernel's descriptor lengths per stage; the
    cycle model's ``stage_lengths``).

    Raises PackingError for offsets that do not describe ``x``; InputError for a token selection point
    outside ``1 .. L-1``, or a policy config without a policy (or without a point for a selection layer).
    """
    offsets = check_offsets(offsets, len(x))
    sp = sparsity or {}
    attention = sp.get("attention") or None
    tokens = sp.get("tokens") or {}
    heads = qe.model["num_heads"]
    h = np.asarray(x, dtype=np.int64)
    use_policy = tokens.get("method") == "policy"
    if use_policy:
        select_at = sorted(set(tokens.get("layers") or []))
    else:
        select_at = sorted(set(tokens.get("layers") or [])) if float(tokens.get("keep", 1.0)) < 1 else []
    if not select_at:
        for layer in qe.layers:
            h = run_layer(layer, h, offsets, heads, attention)
        if kept_out is not None:
            kept_out.append(np.ones(len(h), dtype=bool))
        if lengths_out is not None:
            lengths_out.append(np.diff(offsets)[:, None].astype(np.int64))
        return h.astype(np.int8)

    bad = [i for i in select_at if not 1 <= i < len(qe.layers)]
    if bad:
        raise InputError(f"token selection layers {bad} are outside 1..{len(qe.layers) - 1} for this "
                         f"{len(qe.layers)}-layer model; fix `tokens: layers:` in the config")
    if use_policy:
        policy = require_policy(policy if policy is not None else getattr(qe, "token_policy", None), select_at)
    out = np.empty(h.shape, dtype=np.int64)
    alive = np.arange(len(h))                       # original row of each surviving row
    cur = offsets.copy()                            # offsets of the surviving pack
    importance = np.zeros(len(h), dtype=np.int64)   # accumulated over layers, per original row
    keep = float(tokens["keep"])
    stage_lens = [np.diff(offsets)]
    for i, layer in enumerate(qe.layers):
        if i in select_at:
            m, shift = carry_requant(qe, i)
            if use_policy:
                pt = policy.points[i]
                mask = select_by_logits(policy_logits(pt, h), cur, pt.threshold)
            else:
                mask = select_tokens(importance[alive], cur, keep)
            out[alive[~mask]] = carry_rows(h[~mask], m, shift)
            cur = np.concatenate([[0], np.cumsum(mask)]).astype(np.int64)[cur]
            h, alive = h[mask], alive[mask]
            stage_lens.append(np.diff(cur))
        need = not use_policy and any(j > i for j in select_at)
        received = np.zeros(len(h), dtype=np.int64) if need else None
        h = run_layer(layer, h, cur, heads, attention, received)
        if received is not None:
            importance[alive] += received
    out[alive] = h
    if lengths_out is not None:
        lengths_out.append(np.stack(stage_lens, axis=1).astype(np.int64))
    if kept_out is not None:
        survived = np.zeros(len(out), dtype=bool)
        survived[alive] = True
        kept_out.append(survived)
    return out.astype(np.int8)
