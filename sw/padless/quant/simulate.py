"""Site-by-site simulation of the integer data path in floating point, for error attribution.

The golden model (:mod:`padless.golden`) runs every integer operation at once. To say *which* operation
costs how much, this module runs the float reference (:mod:`padless.reference`, BERT post-norm) and applies
the integer model's rounding at chosen **sites** only, each one exactly where and with the scale the integer
model applies it (the scales, int8 weights, LayerNorm and GELU tables of a :class:`QuantizedEncoder`):

============  ===================================================================================
site          what is applied (docs/numerics.md "One encoder layer" step)
============  ===================================================================================
embedding     host quantization of the embedding output to int8 (per channel, clamp +-127)
weights       int8 weights with the folded input scales and int32 biases (every linear layer)
q, k          int8 Q and K, per tensor (step 1)
v             int8 V, per channel (step 1)
scores        Q.K^T / sqrt(d) as fixed point at 2^-10 (step 2)
softmax       I-BERT i-exp and the integer normalization ``floor(2^44 / sum)`` (step 4)
probs         probabilities rounded to uint12 at 2^-12, saturated at 4095 (step 4)
ctx           int8 attention context, per channel (step 5)
residual      the 22-bit residual domain of both addends, both residual adds (steps 6 and 9)
layernorm     integer LayerNorm: floor mean, isqrt of the floor variance, ``floor(2^31 / std)`` (7, 10)
h             int8 LayerNorm-1 output, per channel (step 7)
up            int16 FFN-up output, per tensor (step 8)
gelu          the integer GELU of the model (64-segment piecewise-linear, or I-BERT's i-GELU) (step 8)
act           int8 activation output, per channel (step 8)
out           int8 LayerNorm-2 output, per channel: the next layer's input and the model output (10)
============  ===================================================================================

With every site on, the simulation is the integer model up to the last bits of the dyadic multipliers and
the LayerNorm parameters (tests/test_simulate.py: cosine to the golden model > 0.9999 on real sentences);
with none on it is the fp32 reference. A site may be restricted to some layers (``"act@3"``).

Method: this is the "one quantizer at a time" ablation of quantization-error attribution (e.g. Bondarenko
et al., "Understanding and Overcoming the Challenges of Efficient Transformer Quantization", EMNLP 2021,
section 3, Table 2), applied to every integer operator of I-BERT (Kim et al., ICML 2021), not only to the
activation quantizers.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..ir import EncoderSpec
from ..reference import embed, gelu, layer_norm
from . import intops
from .quantize import QuantizedEncoder

SIM_SITES = ("embedding", "weights", "q", "k", "v", "scores", "softmax", "probs", "ctx", "residual",
             "layernorm", "h", "up", "gelu", "act", "out")
#: the linear layers of one encoder layer (``"weights.up"``: only the FFN-up weights are int8)
LINEARS = ("q", "k", "v", "o", "up", "down")
_SPEC_NAME = {"q": "q", "k": "k", "v": "v", "o": "o", "up": "ffn_up", "down": "ffn_down"}


def parse_sites(sites: Iterable[str], num_layers: int) -> dict[str, set[int]]:
    """``["act", "h@2", "up@0,1", "weights.down"]`` -> ``{site: set of layers}`` (no ``@``: every layer;
    ``weights`` stands for ``weights.<linear>`` of every linear layer of :data:`LINEARS`).

    Raises InputError for an unknown site or a layer outside ``0 .. num_layers - 1``.
    """
    out: dict[str, set[int]] = {}
    for item in sites:
        name, _, where = str(item).partition("@")
        base, dot, lin = name.partition(".")
        if name == "weights":
            names = [f"weights.{x}" for x in LINEARS]
        elif (dot and base == "weights" and lin in LINEARS) or (not dot and name in SIM_SITES):
            names = [name]
        else:
            raise InputError(f"unknown simulation site {name!r}; choose among {', '.join(SIM_SITES)} "
                             f"(or weights.<{'|'.join(LINEARS)}>)")
        layers = set(range(num_layers)) if not where else set()
        for w in filter(None, where.split(",")):
            if not w.strip().isdigit() or not 0 <= int(w) < num_layers:
                raise InputError(f"site {item!r}: layer {w!r} is not in 0..{num_layers - 1}")
            layers.add(int(w))
        for n in names:
            out.setdefault(n, set()).update(layers)
    return out


def _fq(x: np.ndarray, scale, bits: int) -> np.ndarray:
    """Round ``x / scale`` half up (the requantization's rounding) and saturate to signed ``bits``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.floor(x / scale + 0.5), lo, hi) * scale


def _int_layernorm(y: np.ndarray, scale: float, ln, out=None) -> np.ndarray:
    """I-BERT's integer normalization of ``y`` on the 22-bit grid of ``scale``, then float gamma/beta (the
    output multiplier's rounding is the ``h``/``out`` site's business). ``out = (m, b, shift, t)``: the
    output site is on too, so the integer model's own output stage (:func:`intops.i_layernorm`, 24-bit
    multipliers) gives the int8 values, times their scale ``t``."""
    yi = np.floor(y / scale + 0.5).astype(np.int64)
    if out is not None:
        m, b, shift, t = out
        return intops.i_layernorm(yi, m, b, shift) * np.asarray(t)
    H = yi.shape[-1]
    mean = intops.floor_div(yi.sum(axis=-1, keepdims=True), H)
    c = yi - mean
    var = intops.floor_div((c * c).sum(axis=-1, keepdims=True), H)
    std = np.maximum(intops.isqrt(var), 1)
    factor = intops.floor_div(np.int64(1) << intops.LN_K, std)
    z = (c * factor) >> (intops.LN_K - intops.LN_FRAC_BITS)
    return z * 2.0 ** -intops.LN_FRAC_BITS * ln.gamma + ln.beta


def _pwl_gelu(u: np.ndarray, s_up: float, table: dict) -> np.ndarray:
    """:func:`intops.i_gelu_pwl` on a real input: the chords and the rounding of the result to the input's
    grid ``s_up``; the input itself is rounded only when the ``up`` site is on (``u`` is then on the grid,
    and this equals the integer operator exactly)."""
    x = u / s_up
    lo, k = table["lo"], table["k"]
    seg = np.clip(np.floor((x - lo) / (1 << k)), 0, intops.GELU_SEGMENTS - 1).astype(np.int64)
    y = np.floor((table["slope"][seg] * x + table["icpt"][seg]) * 2.0 ** -intops.GELU_FRAC_BITS + 0.5)
    y = np.where(x < lo, 0.0, y)
    y = np.where(x >= lo + (intops.GELU_SEGMENTS << k), x, y)
    return y * s_up


class SiteSimulator:
    """Float model with the integer model's rounding at selected sites.

    Args:
        spec: the float model (post-norm BERT layers).
        qe: its integer model (gives every scale, the int8 weights and the GELU method).
    """

    def __init__(self, spec: EncoderSpec, qe: QuantizedEncoder):
        if any(L.norm_first for L in spec.layers):
            raise InputError("the site simulation follows the post-norm integer data path; this model is pre-norm")
        self.spec, self.qe = spec, qe
        self._w: dict = {}
        self._wide: dict = {}
        self.observe = None  # observe(layer, site, value): the input of every linear layer (see run)

    def _weights(self, i: int, name: str, s_in, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """``(in, out)`` float weights and ``(out,)`` bias that the int8 layer ``name`` of layer ``i``
        represents for inputs in real units (``W_int w_scale / s_in``); ``bits`` 16: the same folded weights
        on a 16-bit per-row grid instead (what a 16-bit weight precision would give)."""
        key = (i, name, bits)
        if key not in self._w:
            ql = getattr(self.qe.layers[i], name)
            s_in = np.asarray(s_in, np.float64)
            if bits == 8:
                w = ql.w.astype(np.float64) * ql.w_scale[:, None] / s_in[None, :]
                b = (ql.bias + ql.zero_point_term()).astype(np.float64) * ql.w_scale  # unfold a zero point
            else:
                lin = getattr(self.spec.layers[i], _SPEC_NAME[name])
                folded = lin.weight.astype(np.float64) * s_in[None, :]
                qmax = (1 << (bits - 1)) - 1
                ws = np.abs(folded).max(axis=1) / qmax
                ws[ws == 0] = 1.0
                w = np.clip(np.round(folded / ws[:, None]), -qmax, qmax) * ws[:, None] / s_in[None, :]
                b = lin.bias.astype(np.float64)
            self._w[key] = (np.ascontiguousarray(w.T), b)
        return self._w[key]

    def run(self, token_ids: Sequence[Sequence[int]], sites: Iterable[str] = (),
            wide: Iterable[str] = (), chunk_tokens: int = 8192) -> list[np.ndarray]:
        """Last hidden states ``(n_b, hidden)`` float64, one per sequence, with ``sites`` simulated
        (names of :data:`SIM_SITES`, optionally ``"site@layer"``).

        ``wide``: sites (same syntax; int8 activation sites and ``weights.<linear>``) simulated as 16-bit
        instead of 8-bit, on the same range: the effect of a per-site precision knob.
        ``chunk_tokens``: sequences run together, up to this many tokens (memory only: rows are independent).

        If :attr:`observe` is set, ``observe(layer, site, value)`` sees the input of every linear layer as
        the simulated model computes it (``in`` for Q/K/V, ``ctx`` for O, ``h`` for FFN up, ``act`` for FFN
        down; ``(tokens, features)`` float64, packed).
        """
        spec = self.spec
        on = parse_sites(sites, spec.num_layers)
        self._wide = parse_sites(wide, spec.num_layers)
        out: list[np.ndarray] = []
        group: list = []
        n = 0
        for ids in list(token_ids) + [None]:
            if ids is None or (group and n + len(ids) > chunk_tokens):
                if group:
                    out += self._run_pack(group, on)
                group, n = [], 0
            if ids is not None:
                group.append(ids)
                n += len(ids)
        return out

    def _run_pack(self, token_ids, on) -> list[np.ndarray]:
        spec, qe = self.spec, self.qe
        is_on = lambda site, i: i in on.get(site, ())  # noqa: E731
        xs = [embed(spec, ids).astype(np.float64) for ids in token_ids]
        lens = [len(x) for x in xs]
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        x = np.concatenate(xs)
        if on.get("embedding"):  # the host's quantization: round half to even, clamp +-127
            f = self._widen("embedding", 0)
            x = np.clip(np.rint(x / (qe.input_scale / f)), -127 * f, 127 * f) * (qe.input_scale / f)
        for i, (L, qL) in enumerate(zip(spec.layers, qe.layers)):
            x = self._layer(i, L, qL, x, offsets, is_on)
        if spec.final_ln is not None:
            x = layer_norm(x, spec.final_ln)
        return [x[offsets[b]:offsets[b + 1]] for b in range(len(lens))]

    def _widen(self, site: str, i: int) -> float:
        """Grid refinement of a widened int8 site: 32767 / 127 steps per unit of range, else 1."""
        return 32767 / 127 if i in self._wide.get(site, ()) else 1.0

    def _fq8(self, site: str, i: int, x, scale):
        """An int8 site (16-bit when widened) on its grid."""
        f = self._widen(site, i)
        return _fq(x, np.asarray(scale) / f, 16 if f != 1.0 else 8)

    def _linear(self, i, name, L_lin, x, s_in, is_on):
        if is_on(f"weights.{name}", i):
            w_t, b = self._weights(i, name, s_in, 16 if i in self._wide.get(f"weights.{name}", ()) else 8)
            return x @ w_t + b
        return x @ L_lin.weight.T.astype(np.float64) + L_lin.bias

    def _layer(self, i, L, qL, x, offsets, is_on):
        sc = qL.scales
        s_in = np.asarray(sc["in"])
        d, nh = self.spec.head_dim, self.spec.num_heads
        see = self.observe or (lambda *a: None)
        see(i, "in", x)
        q = self._linear(i, "q", L.q, x, s_in, is_on)
        k = self._linear(i, "k", L.k, x, s_in, is_on)
        v = self._linear(i, "v", L.v, x, s_in, is_on)
        if is_on("q", i):
            q = self._fq8("q", i, q, sc["q"])
        if is_on("k", i):
            k = self._fq8("k", i, k, sc["k"])
        if is_on("v", i):
            v = self._fq8("v", i, v, np.asarray(sc["v"]))
        ctx = np.empty_like(q)
        for b in range(len(offsets) - 1):
            s0, e0 = offsets[b], offsets[b + 1]
            ctx[s0:e0] = self._attention(q[s0:e0], k[s0:e0], v[s0:e0], nh, d, i, is_on)
        if is_on("ctx", i):
            ctx = self._fq8("ctx", i, ctx, np.asarray(sc["ctx"]))
        see(i, "ctx", ctx)
        ao = self._linear(i, "o", L.o, ctx, np.asarray(sc["ctx"]), is_on)
        h = self._residual_layernorm(i, ao, x, sc["res_attn"], L.ln_attn,
                                     (qL.ln_attn_m, qL.ln_attn_b, qL.ln_attn_shift), "h", sc["h"], is_on)
        see(i, "h", h)
        up = self._linear(i, "up", L.ffn_up, h, np.asarray(sc["h"]), is_on)
        if is_on("up", i):
            up = _fq(up, sc["up"], intops.GELU_IN_BITS)
        done = False
        if self.spec.activation != "gelu":
            a = np.maximum(up, 0.0)
        elif not is_on("gelu", i):
            a = gelu(up)
        elif qL.act == "gelu":  # I-BERT i-GELU works on the int16 grid
            ui = np.clip(np.floor(up / sc["up"] + 0.5), -32768, 32767).astype(np.int64)
            a = intops.i_gelu(ui, qL.gelu_b, qL.gelu_c, qL.gelu_r, qL.gelu_one)
            if is_on("act", i) and self._widen("act", i) == 1.0:
                # an integer input: requantize as the integer model does (its 28-bit multiplier, not the
                # real scale ratio, decides the rare ties of this 33-bit product)
                zp = np.asarray(qL.act_zp, np.int64)
                a = (intops.requantize(a, qL.act_m, qL.act_shift, qL.act_bits, zp) - zp) * np.asarray(sc["act"])
                done = True
            else:
                a = a * intops.gelu_constants(sc["up"])["out_scale"]
        else:
            a = _pwl_gelu(up, sc["up"], {"lo": qL.gelu_lo, "k": qL.gelu_k, "slope": qL.gelu_slope,
                                          "icpt": qL.gelu_icpt})
        if is_on("act", i) and not done:
            zp = np.asarray(qL.act_zp, np.float64)
            if np.any(zp != 0):   # asymmetric int8: t (q - z)
                t = np.asarray(sc["act"])
                lo, hi = -128, 127
                if self._widen("act", i) != 1.0:   # widened: the same [lo_c, hi_c] in 65,535 steps
                    lo_c = t * (-128 - zp)
                    t = t * 255 / 65535
                    zp, lo, hi = -32768 - np.round(lo_c / t), -32768, 32767
                a = (np.clip(np.floor(a / t + 0.5) + zp, lo, hi) - zp) * t
            elif qL.act_bits != 8:   # built 16-bit (precision: {act: 16})
                a = _fq(a, np.asarray(sc["act"]), qL.act_bits)
            else:
                a = self._fq8("act", i, a, np.asarray(sc["act"]))
        see(i, "act", a)
        down = self._linear(i, "down", L.ffn_down, a, np.asarray(sc["act"]), is_on)
        return self._residual_layernorm(i, down, h, sc["res_ffn"], L.ln_ffn,
                                        (qL.ln_ffn_m, qL.ln_ffn_b, qL.ln_ffn_shift), "out", sc["out"], is_on)

    def _residual_layernorm(self, i, y, skip, res_scale, ln, ln_int, site, out_scale, is_on):
        """``LayerNorm(y + skip)`` of layer ``i`` with the ``residual`` (22-bit requantization of both terms),
        ``layernorm`` (integer LayerNorm, ``ln_int`` = its (m, b, shift)) and output ``site`` (int8 at
        ``out_scale``) simulated where on. With all three on at 8 bits the integer LayerNorm's own output
        requantization is the site's rounding (bit-exact with the golden model)."""
        if is_on("residual", i):
            y, skip = _fq(y, res_scale, intops.RESIDUAL_BITS), _fq(skip, res_scale, intops.RESIDUAL_BITS)
        res = y + skip
        exact = is_on("layernorm", i) and is_on(site, i) and self._widen(site, i) == 1.0
        if is_on("layernorm", i):
            out = _int_layernorm(res, res_scale, ln, (*ln_int, out_scale) if exact else None)
        else:
            out = layer_norm(res, ln)
        if is_on(site, i) and not exact:
            out = self._fq8(site, i, out, np.asarray(out_scale))
        return out

    @staticmethod
    def _attention(q, k, v, nh, d, i, is_on):
        n = len(q)
        qh = q.reshape(n, nh, d).transpose(1, 0, 2)
        kh = k.reshape(n, nh, d).transpose(1, 0, 2)
        vh = v.reshape(n, nh, d).transpose(1, 0, 2)
        s = qh @ kh.transpose(0, 2, 1) / math.sqrt(d)
        fixed = is_on("scores", i) or is_on("softmax", i)
        if fixed:  # the softmax's integer input: fixed point at 2^-10
            si = np.floor(s * 2 ** intops.EXP_FRAC_BITS + 0.5).astype(np.int64)
            s = si * 2.0 ** -intops.EXP_FRAC_BITS
        if is_on("softmax", i):
            e = intops.i_exp(si - si.max(-1, keepdims=True))
            if is_on("probs", i):
                p = intops.i_softmax(si) * 2.0 ** -intops.PROB_BITS
            else:
                p = e / e.sum(-1, keepdims=True)
        else:
            e = np.exp(s - s.max(-1, keepdims=True))
            p = e / e.sum(-1, keepdims=True)
            if is_on("probs", i):
                top = (1 << intops.PROB_BITS) - 1
                p = np.minimum(np.floor(p * 2 ** intops.PROB_BITS + 0.5), top) * 2.0 ** -intops.PROB_BITS
        return (p @ vh).transpose(1, 0, 2).reshape(n, nh * d)
