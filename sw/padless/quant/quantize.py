"""Integer-only quantization of an EncoderSpec (I-BERT, Kim et al., ICML 2021, section 3).

Weights: int8, symmetric, one scale per output channel. Biases: int32 at the accumulator's scale.
Activations: int8 with static scales from calibration (per channel where they fold into the next layer);
the residual stream entering LayerNorm is 22-bit; the GELU input is 16-bit. The GELU output (FFN down's
input) may be asymmetric int8 (``zero_point=["act"]``: a per-channel zero point folded into FFN down's
bias) or int16 (``precision={"act": 16}``: a 16 x 8-bit FFN down, a hardware change). Every scale change
is a dyadic requantization (integer multiplier and shift, :func:`padless.quant.intops.dyadic`).
docs/numerics.md has the whole data path with bit widths.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import InputError, PadlessError
from ..ir import EncoderSpec, LinearSpec
from . import intops

ACC_BITS_LINEAR = 32   # int8 x int8 dot products of length <= 2^14 plus an int32 bias fit 32 bits
ACC_BITS_WIDE = 40     # int16 x int8 dot products of length <= 2^15 plus an int32 bias fit 40 bits


class QuantizationError(PadlessError):
    """The model cannot be quantized with the integer data path (e.g. an unsupported layer type)."""


@dataclass
class QLinear:
    """An int8 linear layer with its output requantization.

    w: ``(out, in)`` int8; bias: ``(out,)`` int64 holding int32 values at scale ``s_in * w_scale``;
    w_scale: ``(out,)`` float64; m, shift: ``(out,)`` int64 dyadic multiplier to the output domain;
    out_bits: width of the requantized output (8, 16 or 22).
    in_bits: width of the integer inputs, 8 or 16 (``quant: {precision: {act: 16}}`` for FFN down).
    zp_in: ``(in,)`` int64 zero point of an asymmetric int8 input (real input ``s_in (x - zp_in)``), or
    None for a symmetric input. ``bias`` then already holds ``- w @ zp_in`` (folded: the hardware
    accumulates ``w @ x + bias`` unchanged); :meth:`set_weights` keeps that fold when the weights change.
    """

    w: np.ndarray
    bias: np.ndarray
    w_scale: np.ndarray
    m: np.ndarray
    shift: np.ndarray
    out_bits: int = 8
    zp_in: np.ndarray | None = None
    in_bits: int = 8

    def __post_init__(self):
        self._wt = None

    @property
    def w_t(self) -> np.ndarray:
        """``(in, out)`` float copy of the weights for exact BLAS products (cached; float32 when the
        dot products are short enough to stay exact, :func:`intops.exact_float_dtype`)."""
        if getattr(self, "_wt", None) is None:
            dt = intops.exact_float_dtype(self.w.shape[1], (1 << (int(self.in_bits) - 1)) * 128)
            self._wt = np.ascontiguousarray(self.w.T.astype(dt))
        return self._wt

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(rows, in)`` int -> ``(rows, out)`` int64 requantized to ``out_bits``."""
        acc = intops.int_matmul(x, self.w_t) + self.bias
        return intops.requantize(acc, self.m, self.shift, self.out_bits)

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """``(rows, in)`` int -> ``(rows, out)`` int64 accumulators (bias included), no requantization."""
        return intops.int_matmul(x, self.w_t) + self.bias

    def zero_point_term(self, w: np.ndarray | None = None) -> np.ndarray:
        """``(out,)`` int64 ``w @ zp_in`` (0 for a symmetric input): what the folded bias subtracts."""
        if self.zp_in is None:
            return np.zeros(len(self.bias), np.int64)
        w = self.w if w is None else w
        return np.asarray(w, np.int64) @ np.asarray(self.zp_in, np.int64)

    def set_weights(self, w: np.ndarray) -> None:
        """Replace the int8 weights ``(out, in)`` (GPTQ), refolding the input zero point into the bias.

        Raises QuantizationError if a refolded bias leaves int32."""
        w = np.asarray(w, np.int8)
        bias = self.bias + self.zero_point_term() - self.zero_point_term(w)
        if np.any(np.abs(bias) >= (1 << 31)):
            raise QuantizationError("a bias with the input zero point folded in leaves int32")
        self.w, self.bias, self._wt = w, bias.astype(np.int64), None


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
    act_zp: np.ndarray | int = 0   # (F,) zero point of the int8 activation output (0: symmetric), = down.zp_in
    act_bits: int = 8              # width of the activation output (FFN down's input): 8 or 16


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


def _qlinear(lin: LinearSpec, s_in, s_out, out_bits: int, zp_in=None, in_bits: int = 8) -> QLinear:
    """Quantize ``lin`` for int inputs of real scale ``s_in`` (scalar or ``(in,)``, folded into the
    weights) and outputs requantized to ``s_out`` (scalar or ``(out,)``) with ``out_bits``; ``zp_in``:
    ``(in,)`` zero point of an asymmetric input, folded into the bias (:class:`QLinear`); ``in_bits``: 8, or
    16 for int16 inputs (a 40-bit accumulator, so a requantization multiplier of at most 22 bits)."""
    w = np.asarray(lin.weight, np.float64) * np.broadcast_to(np.asarray(s_in, np.float64), (lin.in_features,))[None, :]
    wq, ws = quantize_weights(LinearSpec(weight=w, bias=lin.bias))
    bias = np.round(np.asarray(lin.bias, np.float64) / ws).astype(np.int64)
    if in_bits != 8 and np.any(np.abs(bias) >= (1 << 31)):
        raise QuantizationError(f"a bias of {lin.out_features}-output layer does not fit int32 at the scale of its "
                                f"{in_bits}-bit inputs; use 8-bit inputs there")
    bias = intops.saturate(bias, 32)
    m, sh = intops.dyadic(ws / np.asarray(s_out, np.float64), ACC_BITS_LINEAR if in_bits == 8 else ACC_BITS_WIDE)
    q = QLinear(w=wq, bias=bias, w_scale=ws, m=m, shift=sh, out_bits=out_bits, in_bits=int(in_bits))
    if zp_in is not None:
        q.zp_in = np.asarray(zp_in, np.int64)
        q.bias = bias - q.zero_point_term()
        if np.any(np.abs(q.bias) >= (1 << 31)):
            raise QuantizationError("a bias with the input zero point folded in leaves int32")
    return q


#: Activation sites that may use an asymmetric int8 grid (``quant: {zero_point: [act]}``): the GELU / ReLU
#: output, whose values lie in ``[-0.17, max]`` (GELU) or ``[0, max]`` (ReLU), so a symmetric grid leaves
#: about half its 255 steps unused.
ZERO_POINT_SITES = ("act",)


def activation_min(act: str, out_scale: float, gelu_consts: dict) -> float:
    """The most negative real value the integer activation can output *(padless)*: its minimum over every
    int16 input, times its output scale (``(0,)`` for ReLU). Exact and data-independent, so an asymmetric
    grid built from it never clips a negative value (the GELU minimum is -0.170 at -0.752)."""
    if act == "relu":
        return 0.0
    u = np.arange(-(1 << (intops.GELU_IN_BITS - 1)), 1 << (intops.GELU_IN_BITS - 1), dtype=np.int64)
    if act == "gelu-pwl":
        a = intops.i_gelu_pwl(u, gelu_consts["lo"], gelu_consts["k"], gelu_consts["slope"], gelu_consts["icpt"])
    else:
        a = intops.i_gelu(u, gelu_consts["b_int"], gelu_consts["c_int"], gelu_consts["shift"], gelu_consts["one"])
    return min(0.0, float(a.min()) * out_scale)


def asymmetric_grid(hi, lo: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel asymmetric int8 grid for real values in ``[max(lo, -hi_c), hi_c]``.

    Args:
        hi: ``(C,)`` positive upper ends (the symmetric grid's range, ``127 * scale``); lo: the real
            minimum (<= 0) the site can take (:func:`activation_min`).
    Returns:
        ``(scale, zero_point)``: ``(C,)`` float64 step ``t_c = (hi_c - lo_c) / 255`` and ``(C,)`` int64
        ``z_c = -128 - round(lo_c / t_c)`` in ``[-128, 0]``, so ``lo_c`` maps to -128 and ``hi_c`` to 127
        (real value of ``q``: ``t_c (q - z_c)``; Jacob et al., CVPR 2018, eq. 1).
    """
    hi = np.asarray(hi, np.float64)
    lo_c = -np.minimum(-float(lo), hi)
    t = (hi - lo_c) / 255.0
    z = np.clip(-128 - np.round(lo_c / t), -128, 0).astype(np.int64)
    return t, z


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


#: Activation sites whose width ``quant: {precision: {site: bits}}`` may set: the FFN activation (FFN
#: down's input), the site that carries most of the int8 loss (docs/numerics.md "Where int8 loses").
PRECISION_SITES = ("act",)
PRECISION_BITS = (8, 16)


def check_precision(precision) -> dict:
    """Validate ``quant.precision`` (``{site: bits}``) -> ``{site: int}`` with every site of
    :data:`PRECISION_SITES` filled in (8 unless given). Raises InputError for an unknown site or a width other
    than 8 or 16."""
    if precision is None:
        precision = {}
    if not isinstance(precision, dict):
        raise InputError(f"quant.precision must be a mapping site -> bits, e.g. {{act: 16}}; got {precision!r}")
    bad = [k for k in precision if k not in PRECISION_SITES]
    if bad:
        raise InputError(f"quant.precision: {bad} has no precision knob; the sites that have one: "
                         f"{', '.join(PRECISION_SITES)}")
    out = {}
    for site in PRECISION_SITES:
        b = precision.get(site, 8)
        if isinstance(b, bool) or b not in PRECISION_BITS:
            raise InputError(f"quant.precision.{site}: {b!r} bits is not built; choose 8 or 16")
        out[site] = int(b)
    return out


def check_act_grid(zero_point: Sequence[str], precision: dict) -> None:
    """The FFN activation is asymmetric int8 or int16, not both (at 16 bits a zero point buys one bit of 16).
    Raises InputError naming both keys."""
    if precision.get("act", 8) != 8 and "act" in zero_point:
        raise InputError("quant: the FFN activation is either asymmetric (zero_point: [act]) or 16-bit "
                         "(precision: {act: 16}), not both; at 16 bits a zero point buys one bit of 16")


def check_zero_point(sites) -> tuple:
    """Validate ``quant.zero_point`` (a list of sites of :data:`ZERO_POINT_SITES`) -> a sorted tuple.
    Raises InputError for anything else."""
    if sites is None:
        return ()
    if isinstance(sites, str) or not isinstance(sites, (list, tuple)):
        raise InputError(f"quant.zero_point must be a list of sites, e.g. [act]; got {sites!r}")
    bad = [x for x in sites if x not in ZERO_POINT_SITES]
    if bad:
        raise InputError(f"quant.zero_point: {bad} cannot be asymmetric; the sites that can: "
                         f"{', '.join(ZERO_POINT_SITES)}")
    return tuple(sorted(set(sites)))


def quantize_encoder(spec: EncoderSpec, ranges: dict, alpha: float = 1.0, gelu: str = "pwl",
                     migrate: dict | None = None, zero_point=(), precision: dict | None = None) -> QuantizedEncoder:
    """Quantize ``spec`` with calibrated activation ``ranges`` (from :func:`calibrate.calibrate`).

    Args:
        alpha: per-channel strength of the int8 activation scales that fold into weights (layer
            input, V, context, LayerNorm-1 output, activation output); 1 per channel, 0 per tensor.
        gelu: ``"pwl"`` (64-segment piecewise-linear integer GELU, the default: max error < 4e-3) or
            ``"ibert"`` (I-BERT's i-GELU polynomial, max error 1.8e-2; docs/numerics.md compares them).
        migrate: ``{site: strength}`` SmoothQuant migration per site of :data:`MIGRATE_SITES`
            (:func:`migrated_ranges`; 1 or absent: none).
        zero_point: sites of :data:`ZERO_POINT_SITES` on an asymmetric int8 grid (:func:`asymmetric_grid`
            from the calibrated range and :func:`activation_min`); the zero point folds into the consuming
            layer's bias, so the MVU is unchanged (docs/numerics.md, "Asymmetric GELU output").
        precision: ``{site: bits}`` (:data:`PRECISION_SITES`): ``{"act": 16}`` makes the FFN activation int16
            on the same range (a 258x finer step) and FFN down a 16 x 8-bit MVU (docs/numerics.md "The
            int16 FFN activation").
    Raises QuantizationError for pre-norm layers (the integer path implements BERT's post-norm) or an
    unknown ``gelu`` method; InputError for a bad ``migrate``, ``zero_point`` or ``precision``, or a site
    that is both asymmetric and 16-bit (at 16 bits a zero point buys one bit of 16).
    """
    if gelu not in GELU_METHODS:
        raise QuantizationError(f"unknown GELU method {gelu!r}; choose one of {', '.join(GELU_METHODS)}")
    mig = check_migrate(migrate)
    zsites, prec = check_zero_point(zero_point), check_precision(precision)
    check_act_grid(zsites, prec)
    act_bits = prec["act"]
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
            act, g = "gelu", intops.gelu_constants(s_up)
            a_scale, a_bits, consts = g["out_scale"], 34, g
        elif spec.activation == "gelu":
            act, pwl = "gelu-pwl", intops.gelu_pwl_table(s_up)
            a_scale, a_bits, consts = s_up, 17, pwl
        else:
            act, a_scale, a_bits, consts = "relu", s_up, 16, {}
        act_zp = None
        if "act" in zsites:
            s_act, act_zp = asymmetric_grid(127.0 * s_act, activation_min(act, a_scale, consts))
        elif act_bits != 8:   # the same range on the int16 grid
            s_act = s_act * 127.0 / ((1 << (act_bits - 1)) - 1)
        act_m, act_sh = intops.dyadic(a_scale / s_act, a_bits)
        layers.append(QLayer(
            q=_qlinear(L.q, s_in, s_q, 8), k=_qlinear(L.k, s_in, s_k, 8), v=_qlinear(L.v, s_in, s_v, 8),
            o=_qlinear(L.o, s_ctx, s_ra, intops.RESIDUAL_BITS),
            up=_qlinear(L.ffn_up, s_h, s_up, intops.GELU_IN_BITS),
            down=_qlinear(L.ffn_down, s_act, s_rf, intops.RESIDUAL_BITS, zp_in=act_zp, in_bits=act_bits),
            score_m=score_m, score_shift=score_sh, ctx_m=ctx_m, ctx_shift=ctx_sh,
            res_attn_m=ra_m, res_attn_shift=ra_sh,
            ln_attn_m=ln1_m, ln_attn_b=ln1_b, ln_attn_shift=ln1_sh,
            act=act, gelu_b=g["b_int"], gelu_c=g["c_int"], gelu_r=g["shift"], gelu_one=g["one"],
            gelu_lo=pwl["lo"], gelu_k=pwl["k"], gelu_slope=pwl["slope"], gelu_icpt=pwl["icpt"],
            act_m=act_m, act_shift=act_sh, res_ffn_m=rf_m, res_ffn_shift=rf_sh,
            ln_ffn_m=ln2_m, ln_ffn_b=ln2_b, ln_ffn_shift=ln2_sh,
            scales={"in": s_in.tolist(), "q": s_q, "k": s_k, "v": s_v.tolist(), "ctx": s_ctx.tolist(),
                    "res_attn": s_ra, "h": s_h.tolist(), "up": s_up, "act": s_act.tolist(),
                    "res_ffn": s_rf, "out": s_out.tolist()},
            act_zp=act_zp if act_zp is not None else 0, act_bits=act_bits))
        s_in = s_out
    return QuantizedEncoder(model=spec.shape_summary(), input_scale=input_scale, output_scale=s_in,
                            layers=layers, ranges=ranges)


# --- persistence: one .npz holding every integer and scale ---------------------------------------
_LIN = ("q", "k", "v", "o", "up", "down")


def save_quantized(qe: QuantizedEncoder, path, root=None) -> None:
    """Write the integer model to ``path`` (.npz, no pickles; the same model gives the same bytes; atomic
    and never through a link, inside ``root`` when given: :mod:`padless.fsutil`). Raises WriteError."""
    from ..fsutil import write_bytes
    write_bytes(path, quantized_npz_bytes(qe), root)


def quantized_npz_bytes(qe: QuantizedEncoder) -> bytes:
    """The ``.npz`` bytes :func:`save_quantized` writes (deterministic: :func:`padless.fsutil.npz_bytes`)."""
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
                    if getattr(val, g.name) is not None:   # zp_in: absent for a symmetric input
                        arrays[f"{key}.{g.name}"] = np.asarray(getattr(val, g.name))
            elif f.name == "scales":
                arrays[key] = np.array(json.dumps(val))
            else:
                arrays[key] = np.asarray(val)
    from ..fsutil import npz_bytes
    return npz_bytes(arrays)


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
                lk = {g.name: z[f"{key}.{g.name}"] for g in fields(QLinear) if f"{key}.{g.name}" in z}
                lk["out_bits"] = int(lk["out_bits"])
                if "in_bits" in lk:
                    lk["in_bits"] = int(lk["in_bits"])
                if "zp_in" in lk:
                    lk["zp_in"] = lk["zp_in"].astype(np.int64)
                kw[f.name] = QLinear(**lk)
            elif f.name == "scales":
                kw[f.name] = json.loads(str(z[key]))
            elif f.name == "act":
                kw[f.name] = str(z[key])
            elif f.name in ("act_zp", "act_bits") and key not in z:   # written before these knobs existed
                kw[f.name] = 0 if f.name == "act_zp" else 8
            elif z[key].ndim == 0:
                kw[f.name] = int(z[key])
            else:
                kw[f.name] = z[key].astype(np.int64)
        layers.append(QLayer(**kw))
    return QuantizedEncoder(model=model, input_scale=z["input_scale"].astype(np.float64),
                            output_scale=z["output_scale"].astype(np.float64), layers=layers,
                            ranges=json.loads(str(z["ranges_json"])))
