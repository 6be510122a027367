"""The sparsity section of a compile config: validation and normalisation.

``padless compile --config CFG.yaml`` (and a recipe's ``sparsity:``) may hold three optional parts::

    attention: {topk: 16}                  # keep 16 keys per query (4-bit Q/K selection, DAC 2022 s3.2)
             | {density: 0.25, min_k: 8}   # keep max(min_k, ceil(0.25 n)) keys per query
    weights:   {sparsity: 0.5, bank: 16,   # bank-balanced magnitude pruning (Cao et al. FPGA 2019)
                layers: {0: 0.3, 5: 0.6},  # optional per-layer ratios overriding `sparsity`
                criterion: activation,     # optional: rank by |w| * ||x|| (Wanda) instead of |w|,
                                           # or sparsegpt: OBS mask + weight reconstruction on real
                                           # sentences (Frantar & Alistarh 2023, padless.sparse.sparsegpt)
                pattern: pe-pair,          # optional: output rows 2i and 2i + 1 keep the same in-bank
                                           # columns (one index set a pair; the sparse MVU then packs two
                                           # MACs per DSP48E2 as dense does); default row (every row its own)
                permute: true}             # optional, pe-pair only: first reorder FFN / V / Q-K channels
                                           # (function-preserving) so similar rows share a pair
                                           # (padless.sparse.permute); default false
    tokens:    {layers: [2, 4], keep: 0.7} # cascade token pruning before layers 2 and 4 (SpAtten, HPCA 2021)
             | {layers: [2, 4], keep: 0.7, method: policy}  # learned TR-BERT policy (policy.npz in the
                                           # project; `keep` is the ratio its integer thresholds were
                                           # calibrated for, padless.sparse.policy)

:func:`parse_sparsity` returns the normalised dict that ``manifest.json["sparsity"]`` stores and the golden
model, the operation counts (:mod:`padless.opcount`) and the scheduler read. The normalised form is JSON
stable (writing and re-reading the manifest gives an equal dict, and parsing it again is the identity)::

    {"attention": {} | {"topk": k} | {"density": d, "min_k": m},
     "weights":   {} | {"sparsity": s, "bank": B, "criterion": "magnitude" | "activation" | "sparsegpt"
                         [, "layers": {"<i>": s_i, ...}] [, "pattern": "pe-pair"] [, "permute": true]},
     "tokens":    {} | {"layers": [i, ...], "keep": r, "method": "cascade" | "policy"}}

Parts that do nothing are normalised to ``{}``: weight sparsity 0 (with no per-layer ratio above 0),
token keep 1.0 (cascade) or no selection layer. ``pattern`` is stored only when it is not the default
``row`` (so manifests written before the key existed parse to the same dict), ``permute`` only when true.
A ``policy`` part with keep 1.0 stays: the learned policy still decides per token (threshold 0, i.e. sigmoid
>= 0.5).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import InputError
from ..inputs import brief

__all__ = ["parse_sparsity", "DEFAULT_BANK", "TOKEN_METHODS", "WEIGHT_CRITERIA", "WEIGHT_PATTERNS", "pattern_rows"]

#: Bank size used when ``weights.sparsity`` is given without ``bank`` (16 int8 weights: one 128-bit word).
DEFAULT_BANK = 16
#: Weight-pruning ranking: |w| (magnitude) or |w| * ||x|| over calibration tokens (activation, Wanda).
WEIGHT_CRITERIA = ("magnitude", "activation", "sparsegpt")
#: Bank-balanced patterns: ``row`` (every output row keeps its own columns in each bank, Cao et al. FPGA
#: 2019) and ``pe-pair`` (output rows 2i and 2i + 1 keep the same columns in each bank: one input feeds two
#: kept weights, so the sparse MVU does two MACs per DSP48E2; docs/sparsity.md, "Pattern").
WEIGHT_PATTERNS = ("row", "pe-pair")
#: Output rows that share one kept-column set per bank, per pattern.
PATTERN_ROWS = {"row": 1, "pe-pair": 2}
#: Token-reduction methods: training-free cascade pruning (SpAtten) and the learned TR-BERT policy.
TOKEN_METHODS = ("cascade", "policy")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _attention(att: Any) -> dict:
    if att in (None, {}):
        return {}
    if not isinstance(att, Mapping):
        raise InputError(f"attention config must be a mapping like {{topk: 16}} or {{density: 0.25}}, got {brief(att)}")
    unknown = set(att) - {"topk", "density", "min_k"}
    if unknown:
        raise InputError(f"attention config: unknown keys {sorted(unknown)} (allowed: topk, density, min_k)")
    if "topk" in att and "density" in att:
        raise InputError("attention config: give either topk or density, not both")
    if "topk" in att:
        k = att["topk"]
        if not _is_int(k) or k < 1:
            raise InputError(f"attention topk must be a positive integer (keys kept per query), got {brief(k)}")
        if "min_k" in att:
            raise InputError("attention min_k only applies to density; remove it or use density")
        return {"topk": int(k)}
    if "density" in att:
        d = att["density"]
        if not _is_num(d) or not 0 < float(d) <= 1:
            raise InputError(f"attention density must be a number in (0, 1], got {brief(d)}")
        m = att.get("min_k", 1)
        if not _is_int(m) or m < 1:
            raise InputError(f"attention min_k must be a positive integer, got {brief(m)}")
        return {"density": float(d), "min_k": int(m)}
    raise InputError(f"attention config {dict(att)} needs topk or density (or leave it empty for dense)")


def _ratio(value, what: str) -> float:
    if not _is_num(value) or not 0 <= float(value) < 1:
        raise InputError(f"{what} must be a fraction of pruned weights in [0, 1), got {brief(value)}")
    return float(value)


def _weights(w: Any, num_layers: int | None) -> dict:
    if w in (None, {}):
        return {}
    if not isinstance(w, Mapping):
        raise InputError(f"weights config must be a mapping like {{sparsity: 0.5, bank: 16}}, got {brief(w)}")
    unknown = set(w) - {"sparsity", "bank", "layers", "criterion", "pattern", "permute"}
    if unknown:
        raise InputError(f"weights config: unknown keys {sorted(unknown)} (allowed: sparsity, bank, layers, "
                         "criterion, pattern, permute)")
    pattern = w.get("pattern", "row")
    if pattern not in WEIGHT_PATTERNS:
        raise InputError(f"weights pattern {brief(pattern)} is not available; choose row (each output row keeps "
                         "its own columns per bank) or pe-pair (rows 2i and 2i + 1 share them: two MACs per DSP)")
    permute = _permute(w.get("permute", False), pattern)
    criterion = w.get("criterion", "magnitude")
    if criterion not in WEIGHT_CRITERIA:
        raise InputError(f"weights criterion {brief(criterion)} is not available; choose one of "
                         f"{', '.join(WEIGHT_CRITERIA)}")
    s = _ratio(w.get("sparsity", 0.0), "weights sparsity")
    per_layer: dict[str, float] = {}
    layers = w.get("layers")
    if layers is not None:
        if isinstance(layers, (list, tuple)):
            items = list(enumerate(layers))
        elif isinstance(layers, Mapping):
            items = list(layers.items())
        else:
            raise InputError("weights layers must map layer index -> ratio ({0: 0.3, 5: 0.6}) or list one "
                             f"ratio per layer, got {brief(layers)}")
        for key, val in items:
            try:
                idx = int(key)
            except (TypeError, ValueError):
                idx = -1
            if idx < 0 or str(idx) != str(key).strip():
                raise InputError(f"weights layers: {brief(key)} is not a layer index (0, 1, ...)")
            if num_layers is not None and idx >= num_layers:
                raise InputError(f"weights layers: layer {idx} does not exist (the model has {num_layers} layers)")
            per_layer[str(idx)] = _ratio(val, f"weights layers[{idx}]")
    if s == 0 and not any(v > 0 for v in per_layer.values()):
        return {}
    bank = w.get("bank", DEFAULT_BANK)
    if not _is_int(bank) or bank < 2:
        raise InputError(f"weights bank must be an integer >= 2 (weights per bank; 16 is usual), got {brief(bank)}")
    out = {"sparsity": s, "bank": int(bank), "criterion": criterion}
    if per_layer:
        out["layers"] = dict(sorted(per_layer.items(), key=lambda kv: int(kv[0])))
    if pattern != "row":
        out["pattern"] = pattern
    if permute:
        out["permute"] = True
    return out


def _permute(value: Any, pattern: str) -> bool:
    """Validate ``weights.permute`` (a boolean; true only with pattern pe-pair)."""
    if not isinstance(value, bool):
        raise InputError(f"weights permute must be true or false, got {brief(value)}")
    if value and pattern != "pe-pair":
        raise InputError("weights permute pairs similar output rows for pattern pe-pair; with pattern "
                         f"{pattern} every row keeps its own columns already: remove permute or set "
                         "pattern: pe-pair")
    return value


def pattern_rows(weights_cfg: Mapping[str, Any] | None) -> int:
    """Output rows that share one kept-column set per bank under a (normalised or raw) weights config: 1
    for ``pattern: row`` (the default), 2 for ``pe-pair``. Raises InputError for an unknown pattern."""
    pattern = (weights_cfg or {}).get("pattern", "row")
    if pattern not in PATTERN_ROWS:
        raise InputError(f"weights pattern {brief(pattern)} is not available; choose one of "
                         f"{', '.join(WEIGHT_PATTERNS)}")
    return PATTERN_ROWS[pattern]


def _tokens(t: Any, num_layers: int | None) -> dict:
    if t in (None, {}):
        return {}
    if not isinstance(t, Mapping):
        raise InputError(f"tokens config must be a mapping like {{layers: [2, 4], keep: 0.7}}, got {brief(t)}")
    unknown = set(t) - {"layers", "keep", "method"}
    if unknown:
        raise InputError(f"tokens config: unknown keys {sorted(unknown)} (allowed: layers, keep, method)")
    keep = t.get("keep", 1.0)
    if not _is_num(keep) or not 0 < float(keep) <= 1:
        raise InputError(f"tokens keep must be the fraction of tokens kept at each selection point, in (0, 1], "
                         f"got {brief(keep)}")
    method = t.get("method", "cascade")
    if method not in TOKEN_METHODS:
        raise InputError(f"tokens method {brief(method)} is not available; choose one of {', '.join(TOKEN_METHODS)}")
    layers = t.get("layers", [])
    if _is_int(layers):
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or not all(_is_int(i) for i in layers):
        raise InputError(f"tokens layers must be a list of layer indices like [2, 4], got {brief(layers)}")
    for i in layers:
        if i < 1:
            why = ("cascade pruning ranks tokens by the attention they received in earlier layers"
                   if method == "cascade" else
                   "a removed token carries the output of the layer before its selection point")
            raise InputError(f"tokens layers: {i} is not allowed; {why}, so the first selection point is layer 1")
        if num_layers is not None and i >= num_layers:
            raise InputError(f"tokens layers: layer {i} does not exist (the model has {num_layers} layers, "
                             f"0..{num_layers - 1})")
    if not layers or (float(keep) == 1.0 and method == "cascade"):
        return {}
    return {"layers": sorted(set(int(i) for i in layers)), "keep": float(keep), "method": method}


def parse_sparsity(cfg: Mapping[str, Any] | None, num_layers: int | None = None) -> dict:
    """Validate and normalise a sparsity config (module docstring has the schema).

    Args:
        cfg: ``{"attention": ..., "weights": ..., "tokens": ...}``; missing or empty parts are dense.
        num_layers: when given, layer indices are also checked against the model depth.
    Returns:
        the normalised dict (always the three keys; idempotent: ``parse_sparsity(parse_sparsity(c)) ==
        parse_sparsity(c)``).
    Raises:
        InputError: an unknown key, a value of the wrong type or range (e.g. ``topk: 0``, ``density: 1.5``,
            ``sparsity: 1``, ``bank: 1``, ``keep: 0``, a token selection point at layer 0).
    """
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        raise InputError(f"sparsity config must be a mapping with keys attention/weights/tokens, got {brief(cfg)}")
    unknown = set(cfg) - {"attention", "weights", "tokens"}
    if unknown:
        raise InputError(f"unknown sparsity section(s) {sorted(unknown)}; use attention, weights, tokens")
    return {"attention": _attention(cfg.get("attention")),
            "weights": _weights(cfg.get("weights"), num_layers),
            "tokens": _tokens(cfg.get("tokens"), num_layers)}
