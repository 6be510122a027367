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
=========  ====================================================  =========================================

None of these changes the integer data path: only scales, dyadic multipliers and int8 weight values, so
every backend runs any combination bit-exactly. The compile merges the recipe's ``quant:`` (the model's
defaults, e.g. models/minilm-l6.yaml) with the config's (the config wins, key by key).
"""
from __future__ import annotations

from ..errors import InputError
from .quantize import GELU_METHODS, check_migrate
from .ranges import parse_estimators

QUANT_KEYS = ("gelu", "ranges", "migrate", "rounding", "gptq_calibration")
ROUNDINGS = ("nearest", "gptq")


def parse_quant(cfg) -> dict:
    """Validate and normalise a ``quant:`` mapping -> ``{"gelu", "ranges", "migrate", "rounding",
    "gptq_calibration"}`` with every default filled in (``gptq_calibration``: ``None`` or ``{dataset, count}``).

    Raises InputError naming the bad key: not a mapping, an unknown key, or a bad value of one of them.
    """
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise InputError(f"quant: must be a mapping with keys {', '.join(QUANT_KEYS)}; got {cfg!r}")
    unknown = set(cfg) - set(QUANT_KEYS)
    if unknown:
        raise InputError(f"quant: unknown keys {sorted(map(str, unknown))} (allowed: {', '.join(QUANT_KEYS)})")
    gelu = cfg.get("gelu", "pwl")
    if gelu not in GELU_METHODS:
        raise InputError(f"quant.gelu {gelu!r} is not a GELU method; choose one of {', '.join(GELU_METHODS)}")
    rounding = cfg.get("rounding", "nearest")
    if rounding not in ROUNDINGS:
        raise InputError(f"quant.rounding {rounding!r} is not a weight rounding; choose one of {', '.join(ROUNDINGS)}")
    gcal = cfg.get("gptq_calibration")
    if gcal is not None:
        from ..data.datasets import check_calibration
        try:
            names, count = check_calibration(gcal)
        except InputError as exc:
            raise InputError(f"quant.gptq_{exc}") from None
        gcal = {"dataset": names, "count": count}
    return {"gelu": gelu, "ranges": parse_estimators(cfg.get("ranges")), "migrate": check_migrate(cfg.get("migrate")),
            "rounding": rounding, "gptq_calibration": gcal}


def merge_quant(*cfgs) -> dict:
    """Key-by-key merge of ``quant:`` mappings (later ones win; ``None`` skipped), then :func:`parse_quant`."""
    out: dict = {}
    for c in cfgs:
        if c is None:
            continue
        if not isinstance(c, dict):
            parse_quant(c)  # raises the clear error
        out.update(c)
    return parse_quant(out)
