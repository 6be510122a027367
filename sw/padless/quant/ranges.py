"""Range estimators: which clipping value each quantization site's scale is built from.

Min-max calibration (``max``, the default) gives every activation site the largest |x| seen on the
calibration sentences, so nothing saturates but one rare value can stretch the grid of a whole channel.
A clipping estimator picks a smaller range from the calibration distribution:

* ``percentile`` (Wu et al., "Integer Quantization for Deep Learning Inference: Principles and Empirical
  Evaluation", NVIDIA 2020, arXiv 2004.09602, section 4.2): the ``p``-th percentile of |x|
  (nearest rank: the ``floor((1 - p/100) N)``-th largest of the ``N`` values);
* ``mse`` (the same paper's "MSE" calibration; Banner et al., ACIQ, NeurIPS 2019, for the error model):
  the clipping value ``c`` that minimises the expected squared error of the quantized tensor, clipping error
  plus rounding noise, ``sum_{|x| > c} (|x| - c)^2 + N (c / qmax)^2 / 12``, searched over the largest
  :data:`MSE_TAIL` of the values (it never clips more than that fraction).

Per-channel sites are estimated per channel (over the tokens), per-tensor sites (Q, K, the FFN-up output)
over the whole tensor. The estimators read the exact tail of each distribution that
:class:`padless.quant.calibrate.Calibrator` keeps, so they need no histogram binning.

Config (compile config ``quant: {ranges: ...}``)::

    ranges: {default: max, act: mse, h: {percentile: 99.99}}

keys ``default`` or a site of :data:`padless.quant.calibrate.CLIP_SITES`; values ``max``, ``mse`` or
``{percentile: p}`` with ``p`` in (90, 100).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError

#: Fraction of the largest values the MSE search may clip (at most 1% of a channel's values).
MSE_TAIL = 0.01
METHODS = ("max", "percentile", "mse")
_P_RANGE = (90.0, 100.0)


def parse_estimators(cfg) -> dict:
    """Normalise a ``ranges`` config to ``{"default": {...}, site: {...}}`` with each value
    ``{"method": "max" | "mse"}`` or ``{"method": "percentile", "percentile": p}``.

    Raises InputError for a config that is not a mapping, an unknown site or method, or a percentile
    outside (90, 100).
    """
    from .calibrate import CLIP_SITES
    if cfg is None:
        cfg = {}
    if isinstance(cfg, str):
        cfg = {"default": cfg}
    if not isinstance(cfg, dict):
        raise InputError(f"quant.ranges must be a mapping of site -> estimator, e.g. {{default: max, act: mse}}; "
                         f"got {cfg!r}")
    out = {"default": {"method": "max"}}
    for site, val in cfg.items():
        if site != "default" and site not in CLIP_SITES:
            raise InputError(f"quant.ranges: {site!r} is not a site with a clipping range; choose default or one "
                             f"of {', '.join(CLIP_SITES)}")
        out[site] = _one(site, val)
    return out


def _one(site: str, val) -> dict:
    if isinstance(val, str):
        if val not in ("max", "mse"):
            raise InputError(f"quant.ranges.{site}: unknown estimator {val!r}; choose max, mse or "
                             "{percentile: P}")
        return {"method": val}
    if isinstance(val, dict):
        method = val.get("method", "percentile" if "percentile" in val else None)
        extra = set(val) - {"method", "percentile"}
        if method not in METHODS or extra or (method != "percentile" and "percentile" in val):
            raise InputError(f"quant.ranges.{site}: {val!r} is not an estimator; write max, mse or "
                             "{percentile: P}")
        if method != "percentile":
            return {"method": method}
        p = val.get("percentile")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not _P_RANGE[0] < float(p) < _P_RANGE[1]:
            raise InputError(f"quant.ranges.{site}: percentile must be a number in (90, 100), got {p!r}")
        return {"method": "percentile", "percentile": float(p)}
    raise InputError(f"quant.ranges.{site}: {val!r} is not an estimator; write max, mse or {{percentile: P}}")


def _rank(p: float, n: int) -> int:
    """``floor((1 - p / 100) n)``, robust to the decimal rounding of ``p`` (99.9 is not exact in binary)."""
    return int(math.floor((100.0 - p) * n / 100.0 + 1e-9))


def tail_needed(est: dict, rows: int) -> int:
    """How many of the largest |x| per channel the estimators ``est`` (normalised) need when a channel has
    ``rows`` values (0: max only)."""
    k = 0
    for cfg in est.values():
        if cfg["method"] == "percentile":
            k = max(k, _rank(cfg["percentile"], rows) + 1)
        elif cfg["method"] == "mse":
            k = max(k, int(math.ceil(MSE_TAIL * rows)) + 1)
    return k


def percentile_clip(desc: np.ndarray, n: int, p: float) -> np.ndarray:
    """Nearest-rank ``p``-th percentile from the largest values ``desc`` (``(k, ...)``, descending along
    axis 0) of ``n`` values: ``desc[floor((1 - p/100) n)]``. Raises InputError when that rank is not kept."""
    r = _rank(p, n)
    if r >= len(desc):
        raise InputError(f"percentile {p} needs the {r + 1} largest values, only {len(desc)} were kept")
    return np.asarray(desc[r])


def mse_clip(desc: np.ndarray, n: int, qmax: int) -> np.ndarray:
    """MSE-optimal clipping value per column from the largest |x| ``desc`` (``(k, C)`` or ``(k,)``,
    descending) of ``n`` values per column, on a symmetric grid of ``qmax`` steps each side.

    For candidate ``c = desc[i]`` (``i`` values clipped): ``err(c) = sum_{j<i} (desc[j] - c)^2 + n c^2 /
    (12 qmax^2)``; returns the candidate of least error (``desc[0]``, the max, when clipping never pays),
    searched over ``i <= ceil(MSE_TAIL n)``.
    """
    d = np.asarray(desc, np.float64)
    lim = min(len(d), int(math.ceil(MSE_TAIL * n)) + 1)
    d = d[:lim]
    i = np.arange(lim, dtype=np.float64).reshape((-1,) + (1,) * (d.ndim - 1))
    s1 = np.concatenate([np.zeros_like(d[:1]), np.cumsum(d, axis=0)[:-1]])        # sum of the i larger ones
    s2 = np.concatenate([np.zeros_like(d[:1]), np.cumsum(d * d, axis=0)[:-1]])
    err = s2 - 2 * d * s1 + i * d * d + n * d * d / (12.0 * qmax * qmax)
    best = np.argmin(err, axis=0)
    return np.take_along_axis(d, np.expand_dims(best, 0), axis=0)[0]


def estimate(cfg: dict, tail, mx: np.ndarray, per_tensor: bool, qmax: int = 127) -> np.ndarray:
    """Clipping ranges ``(C,)`` of one site from its kept tail (:class:`padless.quant.calibrate._Tail`).

    Per-channel sites get one value per channel; a per-tensor site gets its per-channel max capped at the
    tensor's clipping value (its scale is the max over channels). Never above the max ``mx``.
    """
    if tail is None:
        raise ValueError("no tail was collected for this site; calibrate with the estimator config")
    mx = np.asarray(mx, np.float64)
    if per_tensor:
        desc, n = tail.tensor(), tail.rows * len(mx)
    else:
        desc, n = tail.channel(), tail.rows
    if cfg["method"] == "percentile":
        c = percentile_clip(desc, n, cfg["percentile"])
    elif cfg["method"] == "mse":
        c = mse_clip(desc, n, qmax)
    else:
        return mx
    return np.minimum(mx, c)
