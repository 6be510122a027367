"""fp32 numpy reference of an :class:`~padless.ir.EncoderSpec`, and the host-side embedding.

This is the float model the integer model is measured against; it matches transformers' BertModel
within 1e-4 (tests/test_reference.py). :func:`embed` is also the host half of every backend: embedding
lookup, sum and LayerNorm run on the host in float before the int8 device path.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import erf

from .errors import InputError
from .ir import EncoderSpec, LayerNormSpec, LinearSpec


def check_token_ids(spec: EncoderSpec, ids: Sequence[int]) -> np.ndarray:
    """Validate one sequence of token ids; returns ``(n,)`` int64.

    Raises InputError for an empty sequence, ids that are not integers (floats, bools, strings: never
    rounded), ids outside ``[0, vocab_size)`` or more than ``max_positions`` tokens.
    """
    try:
        raw = np.asarray(ids)
    except (ValueError, TypeError) as exc:
        raise InputError(f"a sequence of token ids must be one list of integers ({exc})") from None
    if raw.ndim != 1 or raw.size == 0:
        raise InputError("empty input: a sequence needs at least one token" if raw.size == 0 else
                         f"a sequence of token ids must be one list of integers, got shape {raw.shape}")
    if raw.dtype == object:
        bad = next((v for v in raw.ravel() if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
        if bad is not None:
            raise InputError(f"token ids must be integers, got {bad!r} ({type(bad).__name__})")
    elif raw.dtype.kind not in "iu":
        raise InputError(f"token ids must be integers, got {raw.dtype} values (e.g. {raw.ravel()[0]!r})")
    try:
        ids = raw.astype(np.int64)
    except OverflowError:
        raise InputError("a token id does not fit a 64-bit integer") from None
    if ids.ndim != 1 or ids.size == 0:
        raise InputError("empty input: a sequence needs at least one token")
    if ids.min() < 0 or ids.max() >= spec.vocab_size:
        bad = int(ids[(ids < 0) | (ids >= spec.vocab_size)][0])
        raise InputError(f"token id {bad} is outside the vocabulary [0, {spec.vocab_size})")
    if ids.size > spec.max_positions:
        raise InputError(
            f"sequence of {ids.size} tokens is longer than the model's maximum of {spec.max_positions} "
            "positions; shorten it or use --truncate")
    return ids


def layer_norm(x: np.ndarray, ln: LayerNormSpec) -> np.ndarray:
    """Float LayerNorm over the last axis."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + ln.eps)) * ln.gamma + ln.beta


def linear(x: np.ndarray, lin: LinearSpec) -> np.ndarray:
    return x @ lin.weight.T + lin.bias


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, erf form (BERT's ``gelu``)."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def activation(spec: EncoderSpec, x: np.ndarray) -> np.ndarray:
    return gelu(x) if spec.activation == "gelu" else np.maximum(x, 0)


def embed(spec: EncoderSpec, ids: Sequence[int]) -> np.ndarray:
    """Host embedding of one sequence: ``(n,)`` ids -> ``(n, hidden)`` float32 (word + position +
    token type 0, then the embedding LayerNorm when the model has one)."""
    ids = check_token_ids(spec, ids)
    e = spec.embeddings
    x = e.word[ids].astype(np.float32) * np.float32(e.scale)
    if e.position is not None:
        x = x + e.position[e.position_offset:e.position_offset + len(ids)]
    if e.token_type is not None:
        x = x + e.token_type[0]
    if e.ln is not None:
        x = layer_norm(x, e.ln)
    return x.astype(np.float32)


def _noop(name: str, value: np.ndarray) -> None:
    return None


def attention_fp32(spec: EncoderSpec, layer, x: np.ndarray, observe=_noop) -> np.ndarray:
    """Multi-head self-attention of one sequence ``(n, hidden)`` (output projection included).

    ``observe(site, array)`` sees the intermediate values (calibration uses it)."""
    n, H = x.shape
    nh, d = spec.num_heads, spec.head_dim
    q, k, v = linear(x, layer.q), linear(x, layer.k), linear(x, layer.v)
    observe("q", q), observe("k", k), observe("v", v)
    q, k, v = (t.reshape(n, nh, d).transpose(1, 0, 2) for t in (q, k, v))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    ctx = (p @ v).transpose(1, 0, 2).reshape(n, H)
    observe("ctx", ctx)
    out = linear(ctx, layer.o)
    observe("attn_out", out)
    return out


def layer_fp32(spec: EncoderSpec, layer, x: np.ndarray, observe=_noop) -> np.ndarray:
    """One encoder layer on one sequence, post-norm (BERT) or pre-norm.

    Calibration sites passed to ``observe``: in, q, k, v, ctx, attn_out, res_attn, h, up, act, down,
    res_ffn, out."""
    observe("in", x)
    if layer.norm_first:
        h = x + attention_fp32(spec, layer, layer_norm(x, layer.ln_attn), observe)
        observe("res_attn", h)
        up = linear(layer_norm(h, layer.ln_ffn), layer.ffn_up)
        observe("up", up)
        act = activation(spec, up)
        observe("act", act)
        out = h + linear(act, layer.ffn_down)
        observe("out", out)
        return out
    res = x + attention_fp32(spec, layer, x, observe)
    observe("res_attn", res)
    h = layer_norm(res, layer.ln_attn)
    observe("h", h)
    up = linear(h, layer.ffn_up)
    observe("up", up)
    act = activation(spec, up)
    observe("act", act)
    down = linear(act, layer.ffn_down)
    observe("down", down)
    res2 = h + down
    observe("res_ffn", res2)
    out = layer_norm(res2, layer.ln_ffn)
    observe("out", out)
    return out


def encode_fp32(spec: EncoderSpec, token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """fp32 hidden states of the last layer, one ``(n_b, hidden)`` float32 array per sequence."""
    out = []
    for ids in token_ids:
        x = embed(spec, ids).astype(np.float32)
        for layer in spec.layers:
            x = layer_fp32(spec, layer, x).astype(np.float32)
        if spec.final_ln is not None:
            x = layer_norm(x, spec.final_ln).astype(np.float32)
        out.append(x)
    return out


def pool(spec: EncoderSpec, hidden: np.ndarray) -> np.ndarray:
    """Sentence embedding of one sequence ``(n, hidden)`` -> ``(hidden,)`` float32: mean (or [CLS])
    pooling, then L2 normalisation when the model asks for it (sentence-transformers' definition)."""
    v = hidden.mean(0) if spec.pooling == "mean" else hidden[0]
    v = v.astype(np.float64)
    if spec.normalize:
        v = v / max(np.linalg.norm(v), 1e-12)
    return v.astype(np.float32)
