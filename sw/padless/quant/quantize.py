"""Integer-only quantization of an EncoderSpec (I-BERT, Kim et al., ICML 2021, section 3).

Weights: int8, symmetric, one scale per output channel. Biases: int32 at the accumulator's scale.
Activations: int8 with static per-tensor scales from calibration; the residual stream entering
LayerNorm is 22-bit; the GELU input is 16-bit. Every scale change is a dyadic requantization
(integer multiplier and shift, :func:`padless.quant.intops.dyadic`). docs/numerics.md has the whole
data path with bit widths.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import InputError, PadlessError
from ..ir import EncoderSpec, LinearSpec
from . import intops

ACC_BITS_LINEAR = 32   # int8 x int8 dot products of length <= 2^14 plus an int32 bias fit 32 bits


class QuantizationError(PadlessError):
    """The model cannot be quantized with the integer data path (e.g. an unsupported layer type)."""


@dataclass
class QLinear:
    """An int8 linear layer with its output requantization.

    w: ``(out, in)`` int8; bias: ``(out,)`` int64 holding int32 values at scale ``s_in * w_scale``;
    w_scale: ``(out,)`` float64; m, shift: ``(out,)`` int64 dyadic multiplier to the output domain;
    out_bits: width of the requantized output (8, 16 or 22).
    """

    w: np.ndarray
    bias: np.ndarray
    w_scale: np.ndarray
    m: np.ndarray
    shift: np.ndarray
    out_bits: int = 8

    def __post_init__(self):
        self._wt = None

    @property
    def w_t(self) -> np.ndarray:
        """``(in, out)`` float copy of the weights for exact BLAS products (cached; float32 when the
        dot products are short enough to stay exact, :func:`intops.exact_float_dtype`)."""
        if getattr(self, "_wt", None) is None:
            dt = intops.exact_float_dtype(self.w.shape[1])
            self._wt = np.ascontiguousarray(self.w.T.astype(dt))
        return self._wt

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(rows, in)`` int -> ``(rows, out)`` int64 requantized to ``out_bits``."""
        acc = intops.int_matmul(x, self.w_t) + self.bias
        return intops.requantize(acc, self.m, self.shift, self.out_bits)

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """``(rows, in)`` int -> ``(rows, out)`` int64 accumulators (bias included), no requantization."""
        return intops.int_matmul(x, self.w_t) + self.bias


@dataclass
class QLayer:
    """One integer encoder layer (post-norm). Scales ``s_*`` are the real value of one integer step."""

    q: QLinear
    k: QLinear
    v: QLinear
    o: QLinear                 # requantized into the 22-bit residual domain (scale s_res_attn)
    up: QLinear                # requantized to int16 (scale s_up), the GELU input
    down: QLinear              # requantized into the 22-bit residual domain (scale s_res_ffn)
    score_m: int
    score_shift: int
    ctx_m: int
    ctx_shift: int
    res_attn_m: int            # int8 layer input -> residual domain
    res_attn_shift: int
    ln_attn_m: np.ndarray
    ln_attn_b: np.ndarray
    ln_attn_shift: int
    act: str                   # "gelu-pwl" (default), "gelu" (I-BERT i-GELU) or "relu"
    gelu_b: int
    gelu_c: int
    gelu_r: int
    gelu_one: int
    gelu_lo: int               # piecewise-linear GELU (intops.gelu_pwl_table)
    gelu_k: int
    gelu_slope: np.ndarray     # (GELU_SEGMENTS,) int64
    gelu_icpt: np.ndarray
    act_m: int                 # activation output -> int8
    act_shift: int
    res_ffn_m: int             # int8 h -> residual domain
    res_ffn_shift: int
    ln_ffn_m: np.ndarray
    ln_ffn_b: np.ndarray
    ln_ffn_shift: int
    scales: dict = field(default_factory=dict)


@dataclass
class QuantizedEncoder:
    """The integer model: host-side input/output scales and the integer layers.

    input_scale: ``(hidden,)`` real value of one int8 step of the layer-0 input, per channel (the host
        quantizes the embedding output with it).
    output_scale: ``(hidden,)`` real value of one int8 step of the last layer's output, per channel.
    model: the EncoderSpec shape summary; ranges: the calibration ranges used.
    """

    model: dict
    input_scale: np.ndarray
    output_scale: np.ndarray
    layers: list[QLayer]
    ranges: dict = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return len(self.layers)


def quantize_weights(lin: LinearSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: ``(out, in)`` float -> (int8 weights, ``(out,)`` scales).

    scale_c = max|W_c| / 127 (1 for an all-zero row); W_int = clamp(round(W / scale_c), -127, 127).
    """
    w = np.asarray(lin.weight, dtype=np.float64)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    wq = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return wq, scale


def channel_scales(ranges, alpha: float = 1.0, qmax: float = 127.0, floor: float = 2.0 ** -10) -> np.ndarray:
    """Per-channel activation scales from per-channel ranges ``(C,)``.

    ``t_c = r_c^alpha * R^(1 - alpha) / qmax`` with ``R = max_c r_c`` and ``r_c >= floor * R``: alpha 1
    is a full per-channel scale, alpha 0 one scale for the tensor. Per-channel scales cost nothing on the
    device where they fold into the next layer's weights and into a per-channel requantization (see
    docs/numerics.md, "per-channel activation scales").
    """
    r = np.asarray(ranges, dtype=np.float64)
    R = float(r.max())
    r = np.maximum(r, floor * R)
    return (r ** alpha) * (R ** (1.0 - alpha)) / qmax


#: Sites whose per-channel int8 scale may migrate quantization difficulty into the weights that consume
#: them (SmoothQuant): the layer input (Q/K/V; for layer 0 the embedding, else the previous layer's output),
#: the attention context (O), the LayerNorm-1 output (FFN up) and the activation output (FFN down).
MIGRATE_SITES = ("in", "ctx", "h", "act")


def migrated_ranges(ranges, weight_cols, strength: float) -> np.ndarray:
    """SmoothQuant's per-channel migration applied to padless's folded per-channel scales.

    SmoothQuant (Xiao et al., ICML 2023, arXiv 2211.10438, section 4, eq. 4) divides channel ``c`` of an
    activation by ``s_c = max|X_c|^a / max|W_c|^(1 - a)`` and multiplies the weights' input channel ``c`` by
    it, then quantizes the activation per tensor. padless already folds a per-channel activation scale
    into the weights (``a = 1``: all the difficulty moves into the weights, docs/numerics.md); with
    ``a < 1`` the equivalent per-channel scale is ``t_c = s_c max_c'(r_c' / s_c') / 127``, coarser on the
    channels whose weight columns are small, so that the folded weight ``W diag(t)`` has more even columns.

    Args:
        ranges: ``(C,)`` calibrated ranges ``r_c``; weight_cols: ``(C,)`` ``max |W[:, c]|`` over the consuming
            layers (floored at 1e-3 of their max); strength: ``a`` in (0, 1].
    Returns:
        ``(C,)`` ranges ``127 t_c`` (>= ``r_c``: nothing saturates that did not before).
    Raises:
        InputError for a strength outside (0, 1].
    """
    if not 0 < float(strength) <= 1:
        raise InputError(f"migration strength must be in (0, 1], got {strength!r}")
    r = np.asarray(ranges, np.float64)
    if strength == 1:
        return r
    w = np.asarray(weight_cols, np.float64)
    w = np.maximum(w, 1e-3 * max(float(w.max()), 1e-30))
    sm = r ** strength / w ** (1.0 - strength)
    return sm * float(np.max(r / sm))


def _qlinear(lin: LinearSpec, s_in, s_out, out_bits: int) -> QLinear:
    """Quantize ``lin`` for int inputs of real scale ``s_in`` (scalar or ``(in,)``, folded into the
    weights) and outputs requantized to ``s_out`` (scalar or ``(out,)``) with ``out_bits``."""
    w = np.asarray(lin.weight, np.float64) * np.broadcast_to(np.asarray(s_in, np.float64), (lin.in_features,))[None, :]
    wq, ws = quantize_weights(LinearSpec(weight=w, bias=lin.bias))
    bias = intops.saturate(np.round(np.asarray(lin.bias, np.float64) / ws).astype(np.int64), 32)
    m, sh = intops.dyadic(ws / np.asarray(s_out, np.float64), ACC_BITS_LINEAR)
    return QLinear(w=wq, bias=bias, w_scale=ws, m=m, shift=sh, out_bits=out_bits)


def _scalar_dyadic(scale: float, acc_bits: int) -> tuple[int, int]:
    m, sh = intops.dyadic(scale, acc_bits)
    return int(m), int(sh)


GELU_METHODS = ("pwl", "ibert")


def check_migrate(migrate) -> dict:
    """Validate a ``quant.migrate`` config ``{site: strength}`` -> ``{site: float}``. Raises
    InputError for a site outside :data:`MIGRATE_SITES` or a strength outside (0, 1]."""
    if migrate is None:
        return {}
    if not isinstance(migrate, dict):
        raise InputError(f"quant.migrate must be a mapping site -> strength, e.g. {{act: 0.9}}; got {migrate!r}")
    out = {}
    for site, a in migrate.items():
        if site not in MIGRATE_SITES:
            raise InputError(f"quant.migrate: {site!r} is not a site that feeds weights; choose among "
                                    f"{', '.join(MIGRATE_SITES)}")
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < float(a) <= 1:
            raise InputError(f"quant.migrate.{site}: strength must be a number in (0, 1], got {a!r}")
        out[site] = float(a)
    return out


def _col_max(*lins: LinearSpec) -> np.ndarray:
    return np.max([np.abs(np.asarray(lin.weight, np.float64)).max(axis=0) for lin in lins], axis=0)


def quantize_encoder(spec: EncoderSpec, ranges: dict, alpha: float = 1.0, gelu: str = "pwl",
                     migrate: dict | None = None) -> QuantizedEncoder:
    """Quantize ``spec`` with calibrated activation ``ranges`` (from :func:`calibrate.calibrate`).

    Args:
        alpha: per-channel strength of the int8 activation scales that fold into weights (layer
            input, V, context, LayerNorm-1 output, activation output); 1 per channel, 0 per tensor.
        gelu: ``"pwl"`` (64-segment piecewise-linear integer GELU, the default: max error < 4e-3) or
            ``"ibert"`` (I-BERT's i-GELU polynomial, max error 1.8e-2; docs/numerics.md compares them).
        migrate: ``{site: strength}`` SmoothQuant migration per site of :data:`MIGRATE_SITES`
            (:func:`migrated_ranges`; 1 or absent: none).
    Raises QuantizationError for pre-norm layers (the integer path implements BERT's post-norm) or an
    unknown ``gelu`` method; InputError for a bad ``migrate``.
    """
    if gelu not in GELU_METHODS:
        raise QuantizationError(f"unknown GELU method {gelu!r}; choose one of {', '.join(GELU_METHODS)}")
    mig = check_migrate(migrate)
    res_max = float((1 << (intops.RESIDUAL_BITS - 1)) - 1)
    in16 = float((1 << (intops.GELU_IN_BITS - 1)) - 1)
    mx = lambda a: float(np.max(a))  # noqa: E731

    def site_scales(r, site, *consumers):
        if site in mig and consumers:
            r = migrated_ranges(r, _col_max(*consumers), mig[site])
        return channel_scales(r, alpha)

    L0 = spec.layers[0]
    s_in = site_scales(ranges["embedding"], "in", L0.q, L0.k, L0.v)
    input_scale = s_in
    layers = []
    d = spec.head_dim
    for i, (L, r) in enumerate(zip(spec.layers, ranges["layers"])):
        if L.norm_first:
            raise QuantizationError(
                "pre-norm (norm_first) layers are not supported by the integer data path yet; the fp32 "
                "reference runs them")
        nxt = spec.layers[i + 1] if i + 1 < spec.num_layers else None
        s_q, s_k = mx(r["q"]) / 127.0, mx(r["k"]) / 127.0
        s_v = channel_scales(r["v"], alpha)
        s_ctx = site_scales(r["ctx"], "ctx", L.o)
        s_h = site_scales(r["h"], "h", L.ffn_up)
        s_act = site_scales(r["act"], "act", L.ffn_down)
        s_out = site_scales(r["out"], "in", *((nxt.q, nxt.k, nxt.v) if nxt is not None else ()))
        s_up = mx(r["up"]) / in16
        # Residual domains: large enough for either addend and the sum, so nothing saturates.
        s_ra = max(mx(r["res_attn"]), mx(r["attn_out"]), mx(127.0 * s_in)) / res_max
        s_rf = max(mx(r["res_ffn"]), mx(r["down"]), mx(127.0 * s_h)) / res_max
        score_m, score_sh = _scalar_dyadic(s_q * s_k / math.sqrt(d) * 2 ** intops.EXP_FRAC_BITS, 24)
        ctx_m, ctx_sh = intops.dyadic(2.0 ** -intops.PROB_BITS * s_v / s_ctx, 28)
        ra_m, ra_sh = intops.dyadic(s_in / s_ra, 8)
        rf_m, rf_sh = intops.dyadic(s_h / s_rf, 8)
        ln1_m, ln1_b, ln1_sh = intops.layernorm_params(L.ln_attn.gamma, L.ln_attn.beta, s_h)
        ln2_m, ln2_b, ln2_sh = intops.layernorm_params(L.ln_ffn.gamma, L.ln_ffn.beta, s_out)
        g = {"b_int": 0, "c_int": 0, "shift": 0, "one": 0}
        pwl = {"lo": 0, "k": 0, "slope": np.zeros(intops.GELU_SEGMENTS, np.int64),
               "icpt": np.zeros(intops.GELU_SEGMENTS, np.int64)}
        if spec.activation == "gelu" and gelu == "ibert":
            act = "gelu"
            g = intops.gelu_constants(s_up)
            act_m, act_sh = intops.dyadic(g["out_scale"] / s_act, 34)
        elif spec.activation == "gelu":
            act = "gelu-pwl"
            pwl = intops.gelu_pwl_table(s_up)
            act_m, act_sh = intops.dyadic(s_up / s_act, 17)
        else:
            act = "relu"
            act_m, act_sh = intops.dyadic(s_up / s_act, 16)
        layers.append(QLayer(
            q=_qlinear(L.q, s_in, s_q, 8), k=_qlinear(L.k, s_in, s_k, 8), v=_qlinear(L.v, s_in, s_v, 8),
            o=_qlinear(L.o, s_ctx, s_ra, intops.RESIDUAL_BITS),
            up=_qlinear(L.ffn_up, s_h, s_up, intops.GELU_IN_BITS),
            down=_qlinear(L.ffn_down, s_act, s_rf, intops.RESIDUAL_BITS),
            score_m=score_m, score_shift=score_sh, ctx_m=ctx_m, ctx_shift=ctx_sh,
            res_attn_m=ra_m, res_attn_shift=ra_sh,
            ln_attn_m=ln1_m, ln_attn_b=ln1_b, ln_attn_shift=ln1_sh,
            act=act, gelu_b=g["b_int"], gelu_c=g["c_int"], gelu_r=g["shift"], gelu_one=g["one"],
            gelu_lo=pwl["lo"], gelu_k=pwl["k"], gelu_slope=pwl["slope"], gelu_icpt=pwl["icpt"],
            act_m=act_m, act_shift=act_sh, res_ffn_m=rf_m, res_ffn_shift=rf_sh,
            ln_ffn_m=ln2_m, ln_ffn_b=ln2_b, ln_ffn_shift=ln2_sh,
            scales={"in": s_in.tolist(), "q": s_q, "k": s_k, "v": s_v.tolist(), "ctx": s_ctx.tolist(),
                    "res_attn": s_ra, "h": s_h.tolist(), "up": s_up, "act": s_act.tolist(),
                    "res_ffn": s_rf, "out": s_out.tolist()}))
        s_in = s_out
    return QuantizedEncoder(model=spec.shape_summary(), input_scale=input_scale, output_scale=s_in,
                            layers=layers, ranges=ranges)


# --- persistence: one .npz holding every integer and scale ---------------------------------------
_LIN = ("q", "k", "v", "o", "up", "down")


def save_quantized(qe: QuantizedEncoder, path) -> None:
    """Write the integer model to ``path`` (.npz, no pickles)."""
    import json
    arrays = {"input_scale": np.asarray(qe.input_scale, np.float64),
              "output_scale": np.asarray(qe.output_scale, np.float64),
              "model_json": np.array(json.dumps(qe.model)), "ranges_json": np.array(json.dumps(qe.ranges))}
    for i, L in enumerate(qe.layers):
        for f in fields(QLayer):
            val = getattr(L, f.name)
            key = f"layers.{i}.{f.name}"
            if f.name in _LIN:
                for g in fields(QLinear):
                    arrays[f"{key}.{g.name}"] = np.asarray(getattr(val, g.name))
            elif f.name == "scales":
                arrays[key] = np.array(json.dumps(val))
            else:
                arrays[key] = np.asarray(val)
    np.savez(path, **arrays)


def load_quantized(path) -> QuantizedEncoder:
    """Read an integer model written by :func:`save_quantized`. Raises KeyError/ValueError if corrupt."""
    import json
    z = np.load(path, allow_pickle=False)
    model = json.loads(str(z["model_json"]))
    layers = []
    for i in range(model["num_layers"]):
        kw = {}
        for f in fields(QLayer):
            key = f"layers.{i}.{f.name}"
            if f.name in _LIN:
                lk = {g.name: z[f"{key}.{g.name}"] for g in fields(QLinear)}
                lk["out_bits"] = int(lk["out_bits"])
                kw[f.name] = QLinear(**lk)
            elif f.name == "scales":
                kw[f.name] = json.loads(str(z[key]))
            elif f.name == "act":
                kw[f.name] = str(z[key])
            elif z[key].ndim == 0:
                kw[f.name] = int(z[key])
            else:
                kw[f.name] = z[key].astype(np.int64)
        layers.append(QLayer(**kw))
    return QuantizedEncoder(model=model, input_scale=z["input_scale"].astype(np.float64),
                            output_scale=z["output_scale"].astype(np.float64), layers=layers,
                            ranges=json.loads(str(z["ranges_json"])))
