"""The ``quant:`` section of a compile config or a model recipe: how a model is quantized.

=========  ====================================================  =========================================
key        values                                                what it changes
=========  ====================================================  =========================================
gelu       ``pwl`` (default) or ``ibert``                        the integer GELU (docs/numerics.md)
ranges     ``{default|site: max | mse | {percentile: p}}``       clipping range estimators
           (:mod:`padless.quant.ranges`; default ``max``)        (calibration; scales only)
migrate    ``{in|ctx|h|act: strength}`` in (0, 1] (default 1)    SmoothQuant migration into the weights
           (:func:`padless.quant.quantize.migrated_ranges`)      (scales only)
rounding   ``nearest`` (default) or ``gptq``                     how the int8 weights are rounded
           (:mod:`padless.quant.gptq`)                           (weights only)
gptq_      ``{dataset, count}`` as ``calibration:`` (default:    GPTQ's calibration text (its Hessians);
calibra-   ``null``: the compile's calibration sentences)        only with ``rounding: gptq``
tion
zero_      ``[act]`` or ``[]`` (default)                          the GELU output on an asymmetric int8
point      (:func:`padless.quant.quantize.asymmetric_grid`)      grid: a per-channel zero point in the
                                                                 activation requantizer, folded into
                                                                 FFN-down's bias
precision  ``{act: 8 | 16}`` (default 8)                          **hardware**: the FFN activation int16,
           (:func:`padless.quant.quantize.check_precision`)      FFN down a 16 x 8-bit MVU (one MAC per
                                                                 DSP, 48-bit accumulators), its input
                                                                 channel 16 bits wide
=========  ====================================================  =========================================

Apart from ``precision``, none of these changes the MVUs or a bit width: only scales, dyadic multipliers,
int8 weight values, biases and the activation requantizer's per-channel zero point (an int8 add before its
saturation; 8 more bits per entry of its table). Every backend (golden, csim, ONNX, the HLS kernel) runs any
combination bit-exactly; the DSE prices ``precision`` (docs/numerics.md). The compile merges the recipe's
``quant:`` (the model's defaults, e.g. models/minilm-l6.yaml) with the config's (the config wins, key by
key).
"""
from __future__ import annotations

from ..errors import InputError
from ..inputs import brief
from .quantize import GELU_METHODS, check_act_grid, check_migrate, check_precision, check_zero_point
from .ranges import parse_estimators

QUANT_KEYS = ("gelu", "ranges", "migrate", "rounding", "gptq_calibration", "zero_point", "precision")
ROUNDINGS = ("nearest", "gptq")


def parse_quant(cfg) -> dict:
    """Validate and normalise a ``quant:`` mapping -> ``{"gelu", "ranges", "migrate", "rounding",
    "gptq_calibration", "zero_point", "precision"}`` with every default filled in (``gptq_calibration``:
    ``None`` or ``{dataset, count}``; ``zero_point``: a sorted list of sites; ``precision``: ``{site: bits}``
    for every site that has the knob).

    Raises InputError naming the bad key: not a mapping, an unknown key, or a bad value of one of them.
    """
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise InputError(f"quant: must be a mapping with keys {', '.join(QUANT_KEYS)}; got {brief(cfg)}")
    unknown = set(cfg) - set(QUANT_KEYS)
    if unknown:
        raise InputError(f"quant: unknown keys {sorted(map(str, unknown))} (allowed: {', '.join(QUANT_KEYS)})")
    gelu = cfg.get("gelu", "pwl")
    if gelu not in GELU_METHODS:
        raise InputError(f"quant.gelu {brief(gelu)} is not a GELU method; choose one of {', '.join(GELU_METHODS)}")
    rounding = cfg.get("rounding", "nearest")
    zp, prec = list(check_zero_point(cfg.get("zero_point"))), check_precision(cfg.get("precision"))
    check_act_grid(zp, prec)
    if rounding not in ROUNDINGS:
        raise InputError(f"quant.rounding {brief(rounding)} is not a weight rounding; choose one of {', '.join(ROUNDINGS)}")
    gcal = cfg.get("gptq_calibration")
    if gcal is not None:
        from ..data.datasets import check_calibration
        try:
            names, count = check_calibration(gcal)
        except InputError as exc:
            raise InputError(f"quant.gptq_{exc}") from None
        gcal = {"dataset": names, "count": count}
    return {"gelu": gelu, "ranges": parse_estimators(cfg.get("ranges")), "migrate": check_migrate(cfg.get("migrate")),
            "rounding": rounding, "gptq_calibration": gcal, "zero_point": zp, "precision": prec}


def merge_quant(*cfgs) -> dict:
    """Key-by-key merge of ``quant:`` mappings (later ones win; ``None`` skipped), then :func:`parse_quant`.

    A later mapping that makes a site 16-bit (``precision: {act: 16}``) without naming ``zero_point`` drops
    that site from an earlier ``zero_point`` (a recipe's asymmetric default), since the two exclude each other.
    """
    out: dict = {}
    for c in cfgs:
        if c is None:
            continue
        if not isinstance(c, dict):
            parse_quant(c)  # raises the clear error
        if "precision" in c and "zero_point" not in c and isinstance(c["precision"], dict) \
                and isinstance(out.get("zero_point"), (list, tuple)):
            wide = {k for k, b in c["precision"].items() if b != 8}
            out["zero_point"] = [s for s in out["zero_point"] if s not in wide]
        out.update(c)
    return parse_quant(out)
