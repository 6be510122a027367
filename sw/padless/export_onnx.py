"""Export a compiled project's integer model to ONNX, so that onnxruntime (or any ONNX tool) can run and
inspect the exact quantized model padless built.

The graph reproduces :func:`padless.golden.run_layer` operation for operation with ONNX integer ops:

* int8 x int8 products are ``MatMulInteger`` (int32 accumulators, exact: |acc| < 2^31 for every layer
  padless quantizes), followed by int64 bias ``Add``; uint12 probabilities x int8 V are two int8 x int8
  ``MatMulInteger`` (``p = 128 p_hi + p_lo``, both parts in [0, 127]), recombined exactly in int64.
* Every ``MatMulInteger`` the export emits takes **int8 x int8** inputs (:data:`MATMUL_INPUT_TYPES`), never
  uint8: onnxruntime's x86-64 AVX2 kernel without VNNI computes uint8 x int8 with ``vpmaddubsw``, which
  saturates the pairwise int16 sums (255 * 127 * 2 > 32767), so uint8 operands are not exact on every CPU
  (docs/reliability.md, "Exact ONNX on every CPU"). ``tests/test_export_onnx.py`` feeds every emitted
  ``MatMulInteger`` its extreme operands on the running CPU and compares with numpy int64.
* Every requantization ``saturate((acc * m + 2^(s-1)) >> s)`` is int64 ``Mul``/``Add``, an exact floor
  division by ``2^s`` (``Div`` for values known non-negative, else ``(v - Mod(v, 2^s)) / 2^s``: ONNX
  integer ``Div`` truncates toward zero, the numerics contract floors) and ``Max``/``Min``.
* i-exp / i-softmax (I-BERT section 3.4): ``ReduceMax``, integer polynomial, ``BitShift`` (uint64, the
  shift amount varies per element), ``ReduceSum``, ``Div``.
* i-LayerNorm (section 3.5 + folded gamma/beta): ``ReduceSum``, floor divisions, and the integer square
  root as ``floor(sqrt(double(n)))`` followed by an exact integer correction step in each direction
  (``var < 2^46``, so double's correctly rounded sqrt is within one of the answer and the correction
  makes it exact).
* i-GELU (section 3.3): ``Sign``/``Abs``/``Min`` and the integer polynomial; ReLU is ``Max``.

So the *integer core* (int8 layer-0 input -> int8 last hidden state) equals the golden model bit for bit;
``tests/test_export_onnx.py`` asserts it. What stays float, as on padless's own host:

* the embedding (``Gather`` of the word / position / token-type tables, sum, ``LayerNormalization``),
  then ``QuantizeLinear`` per channel with the calibrated input scale (and a clamp to +-127, the
  symmetric int8 range of the golden model). ORT computes the embedding LayerNorm and ``x / scale`` in
  float32 where the host uses numpy, so an input element can round to the other neighbour in rare ties:
  the end-to-end outputs then differ from golden by a few int8 steps in that sequence (documented
  tolerance: mean cosine of pooled embeddings >= 0.999, measured ~1.0, see docs/interchange.md);
* the output ``DequantizeLinear`` per channel, mean / [CLS] pooling and L2 normalisation.

Attention sparsity (4-bit Q/K top-k selection, DAC 2022 section 3.2, ``topk`` or ``density``) is
exported too: ``quantize4`` per (sequence, head), a ``MatMulInteger`` estimate, ``TopK`` (ties to the
lower key index, as the ONNX contract and :func:`padless.sparse.selection.topk_indices` both say) and a
``ScatterElements`` mask over which the integer softmax runs. Cascade token reduction (``tokens: {layers,
keep}``) too (:class:`_Tokens`: ``ReduceSum`` of the probabilities, ``TopK``, ``GatherElements``,
``ScatterElements`` of the carried rows). The learned TR-BERT token policy (``tokens: {method: policy}``,
the project's ``policy.npz``; Ye et al., NAACL 2021) too, bit for bit with :func:`padless.golden.run_encoder`:
:func:`_policy_logits` (the integer policy MLP of :func:`padless.sparse.tokens.policy_logits`), keep iff
``logit >= threshold`` or the row is [CLS], ``NonZero`` of the mask for the survivors in order, the
cascade's carry and scatter. Its kept count is data dependent per sequence, so a policy graph runs the
encoder once per sequence of the batch in a ``Loop`` (:func:`_per_sequence`). Limitation: one call takes a
``(batch, seq)`` batch of sequences of the *same* length with no attention mask (padless never pads: run
sequences of different lengths in separate calls).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import InputError
from .quant import intops

#: ONNX opset of the exported graph (per-axis Quantize/DequantizeLinear, axes-as-input reductions).
OPSET = 21
#: Input element types of every ``MatMulInteger`` the export emits: int8 x int8 only (see the module
#: docstring; ``tests/test_export_onnx.py`` checks the graph holds no other).
MATMUL_INPUT_TYPES = ("int8", "int8")
_I64 = np.int64


class _Builder:
    """Minimal ONNX graph builder: unique names, int64/float constants as initializers."""

    def __init__(self):
        import onnx
        from onnx import helper, numpy_helper

        self.onnx, self.helper, self.nh = onnx, helper, numpy_helper
        self.nodes, self.inits = [], []
        self._n = 0
        self._consts: dict = {}
        self.prefix = ""

    def name(self, base: str) -> str:
        self._n += 1
        return f"{self.prefix}{base}_{self._n}"

    def const(self, value, dtype=None, name: Optional[str] = None) -> str:
        arr = np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)
        key = None
        if name is None and arr.size <= 64:  # share small constants
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        nm = name or self.name("c")
        self.inits.append(self.nh.from_array(arr, nm))
        if key is not None:
            self._consts[key] = nm
        return nm

    def op(self, op_type: str, *inputs: str, out: Optional[str] = None, nout: int = 1, **attrs):
        """Append a node; returns its output name (a list of ``nout`` names when ``nout > 1``)."""
        outs = [out or self.name(op_type)] + [self.name(op_type) for _ in range(nout - 1)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.name(op_type + "_n"),
                                                **attrs))
        return outs[0] if nout == 1 else outs

    # ---- int64 integer arithmetic of padless.quant.intops ----
    def i64(self, v) -> str:
        return self.const(np.asarray(v, dtype=_I64))

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)

    def floor_div(self, v: str, d, nonneg: bool = False) -> str:
        """``floor(v / d)`` for int64 ``v`` and positive int64 ``d`` (scalar or per channel)."""
        dc = self.i64(d)
        if nonneg:
            return self.op("Div", v, dc)
        return self.op("Div", self.op("Sub", v, self.op("Mod", v, dc, fmod=0)), dc)

    def saturate(self, x: str, bits: int, signed: bool = True) -> str:
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return self.op("Min", self.op("Max", x, self.i64(lo)), self.i64(hi))

    def requantize(self, acc: str, m, shift, bits: int, zero_point=0) -> str:
        """:func:`padless.quant.intops.requantize`: ``saturate(((acc m + 2^(s-1)) >> s) + zp, bits)``."""
        m = np.asarray(m, _I64)
        shift = np.asarray(shift, _I64)
        rnd = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0).astype(_I64)
        v = self.op("Add", self.op("Mul", acc, self.i64(m)), self.i64(rnd))
        r = self.floor_div(v, np.left_shift(np.int64(1), shift).astype(_I64))
        zp = np.asarray(zero_point, _I64)
        if np.any(zp != 0):
            r = self.op("Add", r, self.i64(zp))
        return self.saturate(r, bits)

    def matmul_int(self, x: str, w_t_int8: np.ndarray, tag: str, in_bits: int = 8) -> str:
        """``x`` int64 (int8- or int16-valued) ``(..., in)`` @ constant int8 ``(in, out)`` -> int64 (exact).

        ONNX has no 16-bit MatMulInteger, and uint8 x int8 is not exact on every CPU (module docstring), so an
        int16 ``x`` is split into two int8 operands: ``x = 256 x_hi + (x_lo - 128) + 128`` with
        ``x_hi = floor(x / 256)`` in [-128, 127] and ``x_lo - 128`` in [-128, 127] (``x_lo = x mod 256``), so
        ``x @ W = 256 (x_hi @ W) + ((x_lo - 128) @ W) + 128 colsum(W)``, the last term a constant int64 row.
        Bound: each int32 accumulator is at most ``in * 128 * 128 = in * 2^14 < 2^31`` for ``in < 2^17``
        (the largest FFN width padless builds is 4,096), so no MatMulInteger overflows, and the int64
        recombination is exact."""
        P = self.onnx.TensorProto
        w8 = np.ascontiguousarray(np.asarray(w_t_int8).astype(np.int8))
        w = self.const(w8, name=f"{self.prefix}{tag}.weight_int8")
        if in_bits == 8:
            return self.cast(self.op("MatMulInteger", self.cast(x, P.INT8), w), P.INT64)
        if w8.shape[0] >= (1 << 17):
            raise InputError(f"{tag}: input width {w8.shape[0]} >= 2^17 overflows the int32 MatMulInteger "
                             "of the int16 activation; the ONNX export supports widths below 131,072")
        hi = self.floor_div(x, 256)
        lo = self.op("Sub", self.op("Sub", x, self.op("Mul", hi, self.i64(256))), self.i64(128))
        acc_hi = self.cast(self.op("MatMulInteger", self.cast(hi, P.INT8), w), P.INT64)
        acc_lo = self.cast(self.op("MatMulInteger", self.cast(lo, P.INT8), w), P.INT64)
        colsum = self.const(128 * w8.astype(_I64).sum(axis=0), name=f"{self.prefix}{tag}.weight_colsum128")
        return self.op("Add", self.op("Add", self.op("Mul", acc_hi, self.i64(256)), acc_lo), colsum)

    def qlinear(self, x: str, lin, tag: str, requant: bool = True) -> str:
        acc = self.op("Add", self.matmul_int(x, np.asarray(lin.w).T, tag, int(getattr(lin, "in_bits", 8))),
                      self.const(np.asarray(lin.bias, _I64), name=f"{self.prefix}{tag}.bias_int32"))
        return self.requantize(acc, lin.m, lin.shift, int(lin.out_bits)) if requant else acc

    def i_exp(self, x: str) -> str:
        P = self.onnx.TensorProto
        x = self.op("Max", x, self.i64(-intops.EXP_CLAMP_LN2 * intops.Q_LN2))
        z = self.op("Div", self.op("Neg", x), self.i64(intops.Q_LN2))  # -x >= 0: truncation == floor
        p = self.op("Add", x, self.op("Mul", z, self.i64(intops.Q_LN2)))
        t = self.op("Add", p, self.i64(intops.Q_EXP_B))
        poly = self.op("Add", self.op("Mul", t, t), self.i64(intops.Q_EXP_C))  # > 0
        shifted = self.op("BitShift", self.cast(poly, P.UINT64), self.cast(z, P.UINT64), direction="RIGHT")
        return self.cast(shifted, P.INT64)

    def i_softmax(self, s: str, mask: str | None = None) -> str:
        """intops.i_softmax over the last axis; with ``mask`` (int64 0/1) over the kept keys only
        (dropped keys get probability 0; the max and the denominator cover the kept keys)."""
        ax = self.i64([-1])
        if mask is None:
            e = self.i_exp(self.op("Sub", s, self.op("ReduceMax", s, ax, keepdims=1)))
        else:
            keep = self.cast(mask, self.onnx.TensorProto.BOOL)
            mx = self.op("ReduceMax", self.op("Where", keep, s, self.i64(-(1 << 40))), ax, keepdims=1)
            e = self.op("Mul", self.i_exp(self.op("Sub", s, mx)), mask)
        total = self.op("ReduceSum", e, ax, keepdims=1)
        factor = self.op("Div", self.i64(1 << intops.SOFTMAX_K), total)
        sh = intops.SOFTMAX_K - intops.PROB_BITS
        p = self.op("Div", self.op("Add", self.op("Mul", e, factor), self.i64(1 << (sh - 1))), self.i64(1 << sh))
        return self.op("Min", p, self.i64((1 << intops.PROB_BITS) - 1))

    def isqrt(self, n: str) -> str:
        P = self.onnx.TensorProto
        r = self.cast(self.op("Floor", self.op("Sqrt", self.cast(n, P.DOUBLE))), P.INT64)
        r = self.op("Sub", r, self.cast(self.op("Greater", self.op("Mul", r, r), n), P.INT64))
        r1 = self.op("Add", r, self.i64(1))
        return self.op("Add", r, self.cast(self.op("LessOrEqual", self.op("Mul", r1, r1), n), P.INT64))

    def i_layernorm(self, y: str, m, b, shift: int, H: int) -> str:
        ax = self.i64([-1])
        mean = self.floor_div(self.op("ReduceSum", y, ax, keepdims=1), H)
        c = self.op("Sub", y, mean)
        var = self.floor_div(self.op("ReduceSum", self.op("Mul", c, c), ax, keepdims=1), H, nonneg=True)
        std = self.op("Max", self.isqrt(var), self.i64(1))
        factor = self.op("Div", self.i64(1 << intops.LN_K), std)
        z = self.floor_div(self.op("Mul", c, factor), 1 << (intops.LN_K - intops.LN_FRAC_BITS))
        v = self.op("Add", self.op("Add", self.op("Mul", z, self.i64(m)), self.i64(b)),
                    self.i64(1 << (int(shift) - 1)))
        return self.saturate(self.floor_div(v, 1 << int(shift)), 8)

    def i_gelu(self, x: str, b_int: int, c_int: int, shift: int, one: int) -> str:
        a = self.op("Min", self.op("Abs", x), self.i64(-b_int))
        ab = self.op("Add", a, self.i64(b_int))
        poly = self.op("Mul", self.op("Sign", x), self.op("Add", self.op("Mul", ab, ab), self.i64(c_int)))
        erf = self.floor_div(self.op("Neg", poly), 1 << int(shift))
        return self.op("Mul", x, self.op("Add", erf, self.i64(one)))

    def i_gelu_pwl(self, x: str, lo: int, k: int, slope, icpt) -> str:
        """intops.i_gelu_pwl: segment index, Gather of the chord, identity above and 0 below the range."""
        n = intops.GELU_SEGMENTS
        seg = self.op("Clip", self.floor_div(self.op("Sub", x, self.i64(int(lo))), 1 << int(k)),
                      self.i64(0), self.i64(n - 1))
        sl = self.op("Gather", self.i64(np.asarray(slope, np.int64)), seg, axis=0)
        ic = self.op("Gather", self.i64(np.asarray(icpt, np.int64)), seg, axis=0)
        y = self.floor_div(self.op("Add", self.op("Add", self.op("Mul", sl, x), ic),
                                   self.i64(1 << (intops.GELU_FRAC_BITS - 1))), 1 << intops.GELU_FRAC_BITS)
        y = self.op("Where", self.op("Less", x, self.i64(int(lo))), self.i64(0), y)
        top = self.op("GreaterOrEqual", x, self.i64(int(lo) + (n << int(k))))
        return self.op("Where", top, x, y)


def _keep_count(B: _Builder, n: str, cfg: dict) -> str:
    """:func:`padless.sparse.attention.keep_count` on the run-time length ``n`` (int64 scalar tensor)."""
    P = B.onnx.TensorProto
    if cfg.get("topk") is not None:
        return B.op("Min", B.i64(int(cfg["topk"])), n)
    dn = B.op("Ceil", B.op("Mul", B.cast(n, P.DOUBLE), B.const(np.float64(cfg["density"]))))
    return B.op("Min", n, B.op("Max", B.i64(int(cfg.get("min_k", 1))), B.cast(dn, P.INT64)))


def _quantize4(B: _Builder, x: str) -> str:
    """:func:`padless.sparse.selection.quantize4` per (sequence, head) of ``(b, h, n, d)`` int64 -> int8."""
    P = B.onnx.TensorProto
    ax = B.i64([2, 3])
    m = B.op("Max", B.op("ReduceMax", B.op("Abs", x), ax, keepdims=1), B.i64(1))  # M = 0 -> all zeros anyway
    mag = B.op("Div", B.op("Add", B.op("Mul", B.op("Abs", x), B.i64(2 * 7)), m), B.op("Mul", m, B.i64(2)))
    return B.cast(B.op("Mul", B.op("Sign", x), mag), P.INT8)


def _selection_mask(B: _Builder, qh8: str, kh8: str, scores: str, cfg: dict) -> str:
    """0/1 int64 ``(b, h, n, n)`` mask of the top-k keys per query from the 4-bit estimate (DAC 2022
    section 3.2): ``TopK`` ranks larger first and, on equal values, the lower index first (the ONNX
    TopK contract), which is :func:`padless.sparse.selection.topk_indices`'s tie rule."""
    P = B.onnx.TensorProto
    q4 = _quantize4(B, B.cast(qh8, P.INT64))
    k4 = _quantize4(B, B.cast(kh8, P.INT64))
    est = B.cast(B.op("MatMulInteger", q4, B.op("Transpose", k4, perm=[0, 1, 3, 2])), P.INT64)
    n = B.op("Gather", B.op("Shape", scores), B.i64(3), axis=0)
    kk = B.op("Reshape", _keep_count(B, n, cfg), B.i64([1]))
    _, idx = B.op("TopK", est, kk, axis=-1, largest=1, sorted=1, nout=2)
    zeros = B.op("ConstantOfShape", B.op("Shape", scores), value=B.helper.make_tensor("z", P.INT64, [1], [0]))
    ones = B.op("ConstantOfShape", B.op("Shape", idx), value=B.helper.make_tensor("o", P.INT64, [1], [1]))
    return B.op("ScatterElements", zeros, idx, ones, axis=3)


def _attention(B: _Builder, q: str, k: str, v: str, L, num_heads: int, H: int, cfg: dict | None,
               probs: list | None = None) -> str:
    """Integer attention of :func:`padless.sparse.attention.attention_heads` over ``(batch, seq, H)``:
    dense, or top-k with the softmax over the kept keys only (masked: dropped keys get probability 0,
    the max and the denominator cover the kept keys, so the integers equal the gathered form)."""
    P = B.onnx.TensorProto
    d = H // num_heads
    split = B.i64([0, 0, num_heads, d])  # Reshape: 0 copies batch and seq

    def heads(t: str, perm) -> str:
        return B.op("Transpose", B.op("Reshape", B.cast(t, P.INT8), split), perm=perm)

    qh, kt, vh = heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1]), heads(v, [0, 2, 1, 3])
    acc = B.cast(B.op("MatMulInteger", qh, kt), P.INT64)                        # (b, h, n, n)
    scores = B.requantize(acc, L.score_m, L.score_shift, 32)
    if cfg:
        p = B.i_softmax(scores, _selection_mask(B, qh, heads(k, [0, 2, 1, 3]), scores, cfg))
    else:
        p = B.i_softmax(scores)                                                 # uint12-valued
    if probs is not None:
        probs.append(p)                                                         # (b, h, n, n) int64
    # P (uint12, [0, 4095]) x V (int8) as two int8 x int8 MatMulInteger: p = 128 p_hi + p_lo with p_hi in
    # [0, 31] and p_lo in [0, 127], both int8 (uint8 x int8 saturates on AVX2 without VNNI, module docstring).
    # Bound: |p_part . v| <= n * 127 * 128 < 2^31 for n < 2^17 keys, so both int32 sums are exact and the
    # int64 recombination is the golden int32.
    p_hi = B.cast(B.op("Div", p, B.i64(128)), P.INT8)
    p_lo = B.cast(B.op("Mod", p, B.i64(128)), P.INT8)
    ctx = B.op("Add", B.op("Mul", B.cast(B.op("MatMulInteger", p_hi, vh), P.INT64), B.i64(128)),
               B.cast(B.op("MatMulInteger", p_lo, vh), P.INT64))                # (b, h, n, d)
    ctx = B.op("Reshape", B.op("Transpose", ctx, perm=[0, 2, 1, 3]), B.i64([0, 0, H]))
    return B.requantize(ctx, L.ctx_m, L.ctx_shift, 8)


def _layer(B: _Builder, x: str, L, num_heads: int, H: int, attention: dict | None = None,
           probs: list | None = None) -> str:
    """One layer of :func:`padless.golden.run_layer` (int64 tensors holding int8 values); with ``probs`` (a
    list) the ``(b, h, n, n)`` uint12 attention probabilities are appended to it."""
    q, k, v = B.qlinear(x, L.q, "q"), B.qlinear(x, L.k, "k"), B.qlinear(x, L.v, "v")
    ctx = _attention(B, q, k, v, L, num_heads, H, attention, probs)
    res = B.op("Add", B.qlinear(ctx, L.o, "o"),
               B.requantize(x, L.res_attn_m, L.res_attn_shift, intops.RESIDUAL_BITS))
    h = B.i_layernorm(res, L.ln_attn_m, L.ln_attn_b, L.ln_attn_shift, H)
    up = B.qlinear(h, L.up, "ffn_up")
    if L.act == "gelu-pwl":
        a = B.i_gelu_pwl(up, L.gelu_lo, L.gelu_k, L.gelu_slope, L.gelu_icpt)
    elif L.act == "gelu":
        a = B.i_gelu(up, L.gelu_b, L.gelu_c, L.gelu_r, L.gelu_one)
    else:
        a = B.op("Max", up, B.i64(0))
    act = B.requantize(a, L.act_m, L.act_shift, L.act_bits, L.act_zp)   # asymmetric: down's bias holds -W zp
    res2 = B.op("Add", B.qlinear(act, L.down, "ffn_down"),
                B.requantize(h, L.res_ffn_m, L.res_ffn_shift, intops.RESIDUAL_BITS))
    return B.i_layernorm(res2, L.ln_ffn_m, L.ln_ffn_b, L.ln_ffn_shift, H)


def _check_supported(project) -> dict | None:
    """The attention config to export (None: dense)."""
    return (project.sparsity or {}).get("attention") or None


def _token_policy(project, tokens: dict, select_at: list[int]):
    """The project's integer TR-BERT policy (:class:`padless.sparse.policy.QuantPolicy`) for a ``method:
    policy`` config, else None. Raises InputError, as :func:`padless.golden.run_encoder` does, when the
    project has no ``policy.npz`` or the policy lacks a selection point of ``select_at``."""
    if tokens.get("method") != "policy" or not select_at:
        return None
    from .sparse.tokens import require_policy
    return require_policy(getattr(project.quantized, "token_policy", None), select_at, InputError,
                          f"{project.path}: ")


def _policy_logits(B: _Builder, pt, x: str) -> str:
    """:func:`padless.sparse.tokens.policy_logits` of ``(b, n, hidden)`` int64 (int8 values) -> ``(b, n)``
    int64 (int32 range): ``MatMulInteger`` by ``W1`` (int8 x int8) + int32 ``b1``, the dyadic requantize to
    int16 (:meth:`_Builder.requantize`, :func:`padless.quant.intops.requantize`), the encoder's
    piecewise-linear integer GELU (:meth:`_Builder.i_gelu_pwl`), requantize to int8, then the ``32 -> 1``
    int8 ``MatMulInteger`` + ``b2``. Row-wise: no row depends on another (TR-BERT, Ye et al., NAACL 2021)."""
    from .sparse.tokens import POLICY_MID_BITS
    acc = B.op("Add", B.matmul_int(x, np.asarray(pt.w1).T, "policy.w1"),
               B.const(np.asarray(pt.b1, _I64), name=f"{B.prefix}policy.b1_int32"))
    u = B.requantize(acc, pt.m1, pt.shift1, POLICY_MID_BITS)
    g = B.i_gelu_pwl(u, pt.gelu_lo, pt.gelu_k, pt.gelu_slope, pt.gelu_icpt)
    a = B.requantize(g, pt.m_act, pt.shift_act, 8)
    z = B.op("Add", B.matmul_int(a, np.asarray(pt.w2).reshape(-1, 1), "policy.w2"), B.i64(int(pt.b2)))
    return B.op("Squeeze", z, B.i64([2]))


class _Tokens:
    """Token reduction in the graph (:func:`padless.golden.run_encoder`, docs/sparsity.md "Token reduction")
    over a ``(batch, n, H)`` int64 batch: ``pos`` ``(batch, n)`` each surviving row's original position,
    ``out`` the output ``(batch, seq, H)``: at a selection point every surviving row is first written there
    carried (requantized to the output scale with :func:`padless.sparse.tokens.carry_requant`,
    ``ScatterElements``); survivors overwrite theirs later. The kept rows, as ascending indices ``(batch, c)``,
    are then gathered (``GatherElements``), so survivors keep their order.

    Cascade (``policy`` None; any batch of equal-length sequences): ``imp`` ``(batch, n)`` the accumulated
    received attention; ``TopK`` of the importance with [CLS]'s set above every other (``2^40``) and
    ``k = max(1, ceil(p n / q))`` -- larger first, equal values to the lower index (the ONNX TopK contract,
    golden's stable ranking) -- then the kept indices in ascending order (a second ``TopK``, smallest first).

    Learned policy (``policy`` a :class:`padless.sparse.policy.QuantPolicy`; ``batch`` must be 1, the graph
    runs it per sequence, :func:`_per_sequence`): :func:`_policy_logits`, keep iff ``logit >= threshold`` or
    the row is the first ([CLS]), ``NonZero`` of that mask: a data-dependent count, in ascending order
    (:func:`padless.sparse.tokens.select_by_logits`)."""

    def __init__(self, B: _Builder, qe, tokens: dict, x: str, H: int, policy=None):
        from .sparse.tokens import keep_fraction
        P = B.onnx.TensorProto
        self.B, self.qe, self.H, self.policy = B, qe, H, policy
        self.layers = sorted(set(int(i) for i in tokens["layers"]))
        self.p, self.q = keep_fraction(float(tokens.get("keep", 1.0)))
        bn = B.op("Slice", B.op("Shape", x), B.i64([0]), B.i64([2]))               # (batch, n)
        n = B.op("Gather", B.op("Shape", x), B.i64(1), axis=0)
        self.pos = B.op("Expand", B.op("Unsqueeze", B.op("Range", B.i64(0), n, B.i64(1)), B.i64([0])), bn)
        self.imp = None if policy is not None else \
            B.op("ConstantOfShape", bn, value=B.helper.make_tensor("z", P.INT64, [1], [0]))
        self.out = B.op("ConstantOfShape", B.op("Shape", x), value=B.helper.make_tensor("z", P.INT64, [1], [0]))

    def accumulates(self, layer: int) -> bool:
        return self.policy is None and layer < self.layers[-1]

    def add(self, probs: str) -> None:
        self.imp = self.B.op("Add", self.imp, self.B.op("ReduceSum", probs, self.B.i64([1, 2]), keepdims=0))

    def _rows(self, idx: str, x: str) -> str:   # (b, n) row indices -> (b, n, H) for GatherElements / Scatter
        B = self.B
        shape = B.op("Concat", B.op("Shape", idx), B.i64([self.H]), axis=0)
        return B.op("Expand", B.op("Unsqueeze", idx, B.i64([2])), shape)

    def _cascade_keep(self, x: str) -> str:
        B = self.B
        n = B.op("Gather", B.op("Shape", x), B.i64(1), axis=0)
        c = B.op("Max", B.i64(1), B.op("Div", B.op("Add", B.op("Mul", n, B.i64(self.p)), B.i64(self.q - 1)),
                                         B.i64(self.q)))
        c = B.op("Reshape", c, B.i64([1]))
        col = B.op("Range", B.i64(0), n, B.i64(1))
        ranked = B.op("Where", B.op("Equal", col, B.i64(0)), B.i64(1 << 40), self.imp)
        _, top = B.op("TopK", ranked, c, axis=1, largest=1, sorted=1, nout=2)
        keep, _ = B.op("TopK", top, c, axis=1, largest=0, sorted=1, nout=2)   # ascending: original order
        self.imp = B.op("GatherElements", self.imp, keep, axis=1)
        return keep

    def _policy_keep(self, layer: int, x: str) -> str:
        B = self.B
        pt = self.policy.points[layer]
        z = _policy_logits(B, pt, x)                                               # (1, n)
        n = B.op("Gather", B.op("Shape", x), B.i64(1), axis=0)
        first = B.op("Equal", B.op("Range", B.i64(0), n, B.i64(1)), B.i64(0))     # [CLS]
        keep = B.op("Or", B.op("GreaterOrEqual", z, B.i64(int(pt.threshold))), first)
        return B.op("Slice", B.op("NonZero", keep), B.i64([1]), B.i64([2]))      # (1, c) ascending

    def select(self, layer: int, x: str) -> str:
        """Before ``layer``: carry every surviving row to the output, keep the selected ones."""
        from .sparse.tokens import carry_requant
        B = self.B
        m, shift = carry_requant(self.qe, layer)
        self.out = B.op("ScatterElements", self.out, self._rows(self.pos, x), B.requantize(x, m, shift, 8), axis=1)
        keep = self._cascade_keep(x) if self.policy is None else self._policy_keep(layer, x)
        self.pos = B.op("GatherElements", self.pos, keep, axis=1)
        return B.op("GatherElements", x, self._rows(keep, x), axis=1)

    def finish(self, x: str) -> str:
        return self.B.op("ScatterElements", self.out, self._rows(self.pos, x), x, axis=1)


def _per_sequence(B: _Builder, x: str, H: int, body) -> str:
    """An ONNX ``Loop`` over the batch of ``x`` ``(batch, n, H)`` int64: iteration ``b`` runs ``body`` (a
    function that adds the nodes mapping a ``(1, n, H)`` tensor name to a ``(1, n, H)`` one) on sequence
    ``b``; the scan output stacks the results to ``(batch, n, H)``. Used where the kept count differs per
    sequence (the learned token policy), which a rectangular batch cannot hold. The body reads the weights
    and constants from the outer graph's initializers (ONNX outer-scope references)."""
    P, helper = B.onnx.TensorProto, B.helper
    outer, B.nodes = B.nodes, []
    it, cond = B.name("iter"), B.name("cond")
    xb = B.op("Unsqueeze", B.op("Gather", x, it, axis=0), B.i64([0]))
    yb = B.op("Squeeze", body(xb), B.i64([0]))
    cond_out = B.op("Identity", cond)
    graph = helper.make_graph(B.nodes, "padless_per_sequence",
                              [helper.make_tensor_value_info(it, P.INT64, []),
                               helper.make_tensor_value_info(cond, P.BOOL, [])],
                              [helper.make_tensor_value_info(cond_out, P.BOOL, []),
                               helper.make_tensor_value_info(yb, P.INT64, ["seq", H])])
    B.nodes = outer
    trips = B.op("Gather", B.op("Shape", x), B.i64(0), axis=0)
    return B.op("Loop", trips, "", body=graph)


def build_onnx_model(project, core_only: bool = False):
    """The ONNX ``ModelProto`` of a loaded :class:`padless.project.Project`.

    Full model (default): input ``input_ids`` ``(batch, seq)`` int64; outputs ``last_hidden_state``
    ``(batch, seq, hidden)`` float32 (dequantized), ``hidden_int8`` ``(batch, seq, hidden)`` int8 and
    ``sentence_embedding`` ``(batch, hidden)`` float32 (the project's pooling and L2 normalisation).
    ``core_only``: input ``hidden_in`` ``(batch, seq, hidden)`` int8 (the quantized layer-0 input, as
    :func:`padless.golden.quantize_input` makes it), output ``hidden_int8``.

    With the learned token policy (``tokens: {method: policy}``) the integer encoder runs inside a ``Loop``
    over the batch (one sequence per iteration; same inputs and outputs).

    Raises InputError for token selection layers outside ``1 .. L-1``, and for a ``method: policy`` project
    without its trained policy (``policy.npz``) or whose policy lacks a configured selection layer.
    """
    import onnx
    from onnx import TensorProto as P, helper

    attention = _check_supported(project)
    qe = project.quantized
    m = project.model
    H, heads = int(m["hidden_size"]), int(m["num_heads"])
    B = _Builder()
    in_scale = np.asarray(qe.input_scale, np.float64).reshape(-1)
    out_scale = np.asarray(qe.output_scale, np.float64).reshape(-1)
    if core_only:
        inputs = [helper.make_tensor_value_info("hidden_in", P.INT8, ["batch", "seq", H])]
        x = B.cast("hidden_in", P.INT64)
    else:
        inputs = [helper.make_tensor_value_info("input_ids", P.INT64, ["batch", "seq"])]
        e = project.host.embeddings
        B.prefix = "embeddings."
        # ONNX Gather takes negative indices from the end ([-V, V-1]); a token id is never negative, so a
        # negative id is mapped to V, outside the table, and onnxruntime refuses the call ("indices element
        # out of data bounds") as it refuses an id >= V, as padless's own tokenizer check does.
        vocab = int(e.word.shape[0])
        ids = B.op("Where", B.op("Less", "input_ids", B.i64(0)), B.i64(vocab), "input_ids")
        emb = B.op("Gather", B.const(e.word.astype(np.float32), name="embeddings.word"), ids, axis=0)
        if e.scale != 1.0:
            emb = B.op("Mul", emb, B.const(np.float32(e.scale)))
        if e.position is not None:
            seq = B.op("Gather", B.op("Shape", "input_ids"), B.i64(1), axis=0)
            start = B.i64(int(e.position_offset))
            pos_ids = B.op("Range", start, B.op("Add", seq, start), B.i64(1))
            emb = B.op("Add", emb, B.op("Gather", B.const(e.position.astype(np.float32), name="embeddings.position"),
                                        pos_ids, axis=0))
        if e.token_type is not None:
            emb = B.op("Add", emb, B.const(e.token_type[0].astype(np.float32), name="embeddings.token_type_0"))
        if e.ln is not None:
            emb = B.op("LayerNormalization", emb, B.const(e.ln.gamma.astype(np.float32), name="embeddings.ln.gamma"),
                       B.const(e.ln.beta.astype(np.float32), name="embeddings.ln.beta"), axis=-1,
                       epsilon=float(e.ln.eps))
        q8 = B.op("QuantizeLinear", emb, B.const(in_scale.astype(np.float32), name="input_scale"),
                  B.const(np.zeros(H, np.int8), name="input_zero_point"), axis=2, out="hidden_in_int8")
        x = B.op("Max", B.cast(q8, P.INT64), B.i64(-127))  # the golden model's symmetric int8 range
    tok = (project.sparsity or {}).get("tokens") or {}
    select_at = sorted(set(int(i) for i in (tok.get("layers") or [])))
    if tok.get("method") != "policy" and float(tok.get("keep", 1.0)) >= 1:
        select_at = []                  # cascade with keep 1.0 is dense; the policy decides at any keep
    bad = [i for i in select_at if not 1 <= i < len(qe.layers)]
    if bad:
        raise InputError(f"token selection layers {bad} are outside 1..{len(qe.layers) - 1}")
    policy = _token_policy(project, tok, select_at)

    def encoder(x: str) -> str:
        tr = None
        if select_at:
            B.prefix = "tokens."
            tr = _Tokens(B, qe, tok, x, H, policy)
        for i, L in enumerate(qe.layers):
            B.prefix = f"layer{i}."
            if tr is not None and i in tr.layers:
                x = tr.select(i, x)
            probs = [] if tr is not None and tr.accumulates(i) else None
            x = _layer(B, x, L, heads, H, attention, probs)
            if probs:
                tr.add(probs[0])
        B.prefix = "output."
        return tr.finish(x) if tr is not None else x

    # The learned policy keeps a data-dependent count per sequence: one sequence per Loop iteration.
    x = _per_sequence(B, x, H, encoder) if policy is not None else encoder(x)
    B.prefix = "output."
    y8 = B.op("Cast", x, to=P.INT8, out="hidden_int8")
    outputs = [helper.make_tensor_value_info("hidden_int8", P.INT8, ["batch", "seq", H])]
    if not core_only:
        hid = B.op("DequantizeLinear", y8, B.const(out_scale.astype(np.float32), name="output_scale"),
                   B.const(np.zeros(H, np.int8), name="output_zero_point"), axis=2, out="last_hidden_state")
        if m.get("pooling", "mean") == "cls":
            pooled = B.op("Squeeze", B.op("Gather", hid, B.i64([0]), axis=1), B.i64([1]))
        else:
            pooled = B.op("ReduceMean", hid, B.i64([1]), keepdims=0)
        if m.get("normalize", True):
            norm = B.op("Max", B.op("ReduceL2", pooled, B.i64([-1]), keepdims=1), B.const(np.float32(1e-12)))
            pooled = B.op("Div", pooled, norm)
        B.op("Identity", pooled, out="sentence_embedding")
        outputs = [helper.make_tensor_value_info("last_hidden_state", P.FLOAT, ["batch", "seq", H]), outputs[0],
                   helper.make_tensor_value_info("sentence_embedding", P.FLOAT, ["batch", H])]
    graph = helper.make_graph(B.nodes, f"padless_{m.get('name', 'encoder')}_int8", inputs, outputs, B.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="padless", producer_version=_version())
    model.ir_version = min(model.ir_version, 10)  # onnxruntime 1.2x reads IR <= 10
    helper.set_model_props(model, {"padless.format": "ibert-int8", "padless.model": str(m.get("name")),
                                   "padless.core_only": str(core_only)})
    onnx.checker.check_model(model, full_check=False) if model.ByteSize() < 2**31 else None
    return model


def _version() -> str:
    from . import __version__
    return __version__


def export_onnx(project_dir: str | os.PathLike, out: str | os.PathLike, core_only: bool = False,
                force: bool = False) -> Path:
    """Write the quantized model of the project at ``project_dir`` to ``out`` (.onnx); returns the path.

    The file is written atomically and never through a link (:mod:`padless.fsutil`). An existing ``out``,
    or a new file inside a padless project folder (this one or another), needs ``force``; a file a
    project's manifest lists (``manifest.json``, ``weights.bin``, ...) is refused even with ``force``.

    Raises ProjectError for a missing / corrupted project, InputError for an unsupported project or an
    output path that is a folder, an existing file or a file inside a project (without ``force``), a
    link, and InputError when the onnx package is missing.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise InputError("ONNX export needs the onnx package: pip install 'padless[onnx]'") from exc
    from . import fsutil
    from .project import load_project

    project = load_project(project_dir)
    out = Path(out)
    if out.is_dir():
        raise InputError(f"--onnx {out} is a folder; give a file name like model.onnx")
    check_export_target(out, force)
    fsutil.check_target(out, writable=True)   # before the (slow) graph build: a link, no permission
    model = build_onnx_model(project, core_only=core_only)
    fsutil.write_bytes(out, model.SerializeToString())
    return out


def check_export_target(out: Path, force: bool) -> None:
    """Refuse to replace a user's file or to write into a project folder (:func:`export_onnx`). Raises
    InputError."""
    from .project import MANIFEST, _is_padless_project
    absout = Path(os.path.abspath(out))
    for d in [absout.parent, *absout.parent.parents]:
        m = _is_padless_project(d) if (d / MANIFEST).is_file() else None
        if m is None:
            continue
        rel = str(absout.relative_to(d))
        listed = {str(v) for v in (m.get("files") or {}).values()} | {MANIFEST} | \
            {str(v) for v in (m.get("generated") or []) if isinstance(v, str)}
        if rel in listed or rel.split("/")[0] in ("hls", "bitstream"):
            raise InputError(f"--onnx {out} is a file of the padless project {d} ({rel}); overwriting it would "
                             "break the project: write the ONNX file outside it, e.g. --onnx model.onnx")
        if not force:
            raise InputError(f"--onnx {out} lies inside the padless project {d}: write it elsewhere (e.g. --onnx "
                             "model.onnx), or pass --force to add the file to the project folder")
    if (out.exists() or out.is_symlink()) and not force:
        raise InputError(f"--onnx {out} already exists: choose another file name, or pass --force to replace it")
