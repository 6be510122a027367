"""Exact operation counts of an encoder for one sequence of ``n`` tokens under a sparsity config.

The counts are the arithmetic of the encoder (docs/performance-model.md, section "Operation counts"):
the sparsity reports read them from here, and the engine model (:mod:`padless.schedule.engine`) takes
its keep-count rule (:func:`attention_k`) and the model/sparsity checks from here; its cycles come from
the kernel's loops, not from these counts.

Model shape: a dict with ``hidden_size`` (H), ``num_heads`` (h), ``head_dim`` (d), ``intermediate_size``
(F), ``num_layers`` (L) -- the ``model`` entry of manifest.json (``EncoderSpec.shape_summary()``).

Sparsity config (every part optional; empty or missing = dense)::

    {"attention": {"topk": k}                      # keep k keys per query (min(k, n))
                | {"density": r, "min_k": m}       # keep min(n, max(m, ceil(r * n))) keys per query
                | {},                              # dense attention, no 4-bit selection stage
     "weights":   {"sparsity": s, "bank": B,       # bank-balanced: ceil((1 - s) * B) kept per bank of B
                  ["layers": {"<i>": s_i}]},       # per-layer ratios override s for layer i
     "tokens":    {"layers": [i, ...], "keep": r}} # before layer i keep max(1, ceil(r * tokens)) tokens

Sources: 4-bit Q/K selection, Peng et al. DAC 2022 section 3.2; bank-balanced sparsity, Cao et al.
FPGA 2019; token reduction, TR-BERT (Ye et al. NAACL 2021) -- see ALGORITHMS.md sections 1, 3, 4.
Token reduction cascades: each selection point keeps ``max(1, ceil(keep * current_tokens))`` tokens,
[CLS] always among them (so at least one).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from .errors import InputError

__all__ = ["model_ops", "layer_tokens", "attention_k", "weight_layout", "MAC_STAGES", "check_model",
           "check_sparsity"]

#: MAC stages counted on DSPs (int8 x int8), in layer-engine order. ``select_4b`` (4b x 4b products on
#: LUT multipliers) is counted separately.
MAC_STAGES = ("qkv", "qk", "av", "out", "ffn_up", "ffn_down")

_MODEL_KEYS = ("hidden_size", "num_heads", "head_dim", "intermediate_size", "num_layers")


def check_model(model: Mapping[str, Any]) -> dict:
    """Validate a model shape dict; returns ``{H, h, d, F, L}`` as ints.

    Raises:
        InputError: a key is missing, not a positive integer, or ``num_heads * head_dim != hidden_size``.
    """
    if not isinstance(model, Mapping):
        raise InputError("model shape must be a dict with " + ", ".join(_MODEL_KEYS))
    out = {}
    for key in _MODEL_KEYS:
        if key not in model:
            raise InputError(f"model shape lacks {key!r} (expected keys: {', '.join(_MODEL_KEYS)})")
        value = model[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"model {key} must be a positive integer, got {value!r}")
        out[key] = value
    if out["num_heads"] * out["head_dim"] != out["hidden_size"]:
        raise InputError(f"num_heads {out['num_heads']} x head_dim {out['head_dim']} != "
                         f"hidden_size {out['hidden_size']}")
    return {"H": out["hidden_size"], "h": out["num_heads"], "d": out["head_dim"],
            "F": out["intermediate_size"], "L": out["num_layers"]}


def check_sparsity(sparsity: Mapping[str, Any] | None) -> dict:
    """Normalise a sparsity config (None/empty parts become dense). Raises InputError on bad values."""
    sp = dict(sparsity or {})
    unknown = set(sp) - {"attention", "weights", "tokens"}
    if unknown:
        raise InputError(f"unknown sparsity section(s) {sorted(unknown)}; use attention, weights, tokens")
    att = dict(sp.get("attention") or {})
    if "topk" in att:
        if not isinstance(att["topk"], int) or att["topk"] < 1:
            raise InputError(f"attention topk must be a positive integer, got {att['topk']!r}")
    elif "density" in att:
        r = att["density"]
        if not (isinstance(r, (int, float)) and 0 < r <= 1):
            raise InputError(f"attention density must be in (0, 1], got {r!r}")
        att.setdefault("min_k", 1)
        if not isinstance(att["min_k"], int) or att["min_k"] < 1:
            raise InputError(f"attention min_k must be a positive integer, got {att['min_k']!r}")
    elif att:
        raise InputError(f"attention config {att} needs 'topk' or 'density' (or be empty for dense)")
    w = dict(sp.get("weights") or {})
    if w:
        s = w.get("sparsity", 0.0)
        if not (isinstance(s, (int, float)) and 0 <= s < 1):
            raise InputError(f"weight sparsity must be in [0, 1), got {s!r}")
        b = w.get("bank", 1)
        if not isinstance(b, int) or b < 1:
            raise InputError(f"weight bank must be a positive integer, got {b!r}")
        layers = w.get("layers") or {}
        if not isinstance(layers, Mapping) or not all(
                str(i).isdigit() and isinstance(r, (int, float)) and 0 <= r < 1 for i, r in layers.items()):
            raise InputError(f"per-layer weight ratios must map a layer index (0, 1, ...) -> ratio in [0, 1), "
                             f"got {layers!r}")
        pattern = w.get("pattern", "row")
        if pattern not in ("row", "pe-pair"):
            raise InputError(f"weights pattern must be row or pe-pair, got {pattern!r}")
        permute = w.get("permute", False)
        if not isinstance(permute, bool) or (permute and pattern != "pe-pair"):
            raise InputError(f"weights permute must be true (pattern pe-pair only) or false, got {permute!r} "
                             f"with pattern {pattern}")
        w = {"sparsity": float(s), "bank": b}
        if layers:
            w["layers"] = {str(int(i)): float(r) for i, r in layers.items()}
        if pattern != "row":
            w["pattern"] = pattern
    t = dict(sp.get("tokens") or {})
    if t:
        keep = t.get("keep", 1.0)
        if not (isinstance(keep, (int, float)) and 0 < keep <= 1):
            raise InputError(f"token keep ratio must be in (0, 1], got {keep!r}")
        layers = t.get("layers", [])
        if not isinstance(layers, (list, tuple)) or not all(isinstance(i, int) and i >= 0 for i in layers):
            raise InputError(f"token selection layers must be a list of layer indices, got {layers!r}")
        t = {"layers": sorted(set(layers)), "keep": float(keep)}
    return {"attention": att, "weights": w, "tokens": t}


def layer_tokens(n: int, num_layers: int, tokens_cfg: Mapping[str, Any] | None) -> list[int]:
    """Tokens entering each layer: ``(L,)`` list. Before each selection layer i,
    ``tokens = max(1, ceil(keep * tokens))`` ([CLS] always kept)."""
    if n < 1:
        raise InputError(f"sequence length must be at least 1, got {n}")
    cfg = tokens_cfg or {}
    sel, keep = set(cfg.get("layers", ())), float(cfg.get("keep", 1.0))
    out, cur = [], int(n)
    for i in range(num_layers):
        if i in sel:
            cur = max(1, math.ceil(keep * cur))
        out.append(cur)
    return out


def attention_k(n: int, att_cfg: Mapping[str, Any] | None) -> int:
    """Keys kept per query for a sequence of ``n`` tokens (``n`` when attention is dense)."""
    cfg = att_cfg or {}
    if "topk" in cfg:
        return min(n, int(cfg["topk"]))
    if "density" in cfg:
        return min(n, max(int(cfg.get("min_k", 1)), math.ceil(float(cfg["density"]) * n)))
    return n


def weight_layout(out_features: int, in_features: int, weights_cfg: Mapping[str, Any] | None) -> dict:
    """Stored layout of one ``(out, in)`` int8 weight matrix.

    Dense: ``kept_per_row = in``, no index. Bank-balanced (Cao et al. FPGA 2019): each row splits into
    ``in / B`` banks of B weights and keeps ``ceil((1 - s) * B)`` per bank; each kept weight carries a
    ``ceil(log2 B)``-bit in-bank index, one per kept weight (``pattern: row``) or one per kept slot of a pair
    of output rows (``pattern: pe-pair``: the two rows share it, half the index bits). Returns ``kept_per_row``, ``kept`` (weights), ``value_bytes``,
    ``index_bits``, ``index_bytes`` (rounded up), ``bias_bytes`` (int32), ``bytes`` (all).

    Raises:
        InputError: ``in`` is not a multiple of the bank size.
    """
    cfg = weights_cfg or {}
    s, bank = float(cfg.get("sparsity", 0.0)), int(cfg.get("bank", 1))
    if cfg and s > 0:
        if in_features % bank:
            raise InputError(f"weight bank {bank} does not divide the input width {in_features}; "
                             f"choose a bank size that divides every layer width")
        per_bank = math.ceil((1.0 - s) * bank)
        kept_per_row = (in_features // bank) * per_bank
        idx_bits = math.ceil(math.log2(bank)) if bank > 1 else 0
    else:
        kept_per_row, idx_bits = in_features, 0
    kept = out_features * kept_per_row
    index_bits = kept * idx_bits // (2 if cfg.get("pattern") == "pe-pair" and out_features % 2 == 0 else 1)
    bias = 4 * out_features
    return {"kept_per_row": kept_per_row, "kept": kept, "value_bytes": kept, "index_bits": index_bits,
            "index_bytes": (index_bits + 7) // 8, "bias_bytes": bias,
            "bytes": kept + (index_bits + 7) // 8 + bias}


def layer_weight_config(w: dict, i: int) -> dict:
    """The weights config of layer ``i``: its per-layer ratio (``layers``) where given, else the global one."""
    if not w or "layers" not in w:
        return w
    out = {"sparsity": w["layers"].get(str(i), w["sparsity"]), "bank": w["bank"]}
    if "pattern" in w:
        out["pattern"] = w["pattern"]
    return out


def _layer(dims: dict, n_in: int, n: int, sp: dict) -> dict:
    H, h, d, F = dims["H"], dims["h"], dims["d"], dims["F"]
    att = sp["attention"]
    k = attention_k(n, att)
    selecting = bool(att)
    mats = {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H), "ffn_up": (F, H), "ffn_down": (H, F)}
    lay = {m: weight_layout(o, i, sp["weights"]) for m, (o, i) in mats.items()}
    macs = {
        "qkv": n * (lay["q"]["kept"] + lay["k"]["kept"] + lay["v"]["kept"]),
        "qk": h * n * k * d,
        "av": h * n * k * d,
        "out": n * lay["o"]["kept"],
        "ffn_up": n * lay["ffn_up"]["kept"],
        "ffn_down": n * lay["ffn_down"]["kept"],
    }
    return {
        "tokens_in": n_in, "tokens": n, "k": k,
        "macs": macs,
        "select_4b": h * n * n * d if selecting else 0,
        "elementwise": {"softmax": h * n * k, "gelu": n * F, "layernorm": 2 * n * H},
        "bytes": {
            "weights": sum(v["value_bytes"] + v["bias_bytes"] for v in lay.values()),
            "weight_index": sum(v["index_bytes"] for v in lay.values()),
            "activations_in": n_in * H,
            "activations_out": n * H,
        },
        "kept_per_row": {m: v["kept_per_row"] for m, v in lay.items()},
    }


def _totals(layers: list[dict]) -> dict:
    macs = {s: sum(l["macs"][s] for l in layers) for s in MAC_STAGES}
    ew = {s: sum(l["elementwise"][s] for l in layers) for s in ("softmax", "gelu", "layernorm")}
    by = {s: sum(l["bytes"][s] for l in layers) for s in ("weights", "weight_index")}
    by["activations_in"] = layers[0]["bytes"]["activations_in"]
    by["activations_out"] = layers[-1]["bytes"]["activations_out"]
    by["offchip"] = sum(by.values())
    return {"macs": macs, "dsp_macs": sum(macs.values()), "select_4b": sum(l["select_4b"] for l in layers),
            "elementwise": ew, "bytes": by}


def model_ops(model: Mapping[str, Any], n: int, sparsity: Mapping[str, Any] | None = None) -> dict:
    """Per-layer and total operation counts of one sequence of ``n`` tokens.

    Args:
        model: shape dict (``hidden_size``, ``num_heads``, ``head_dim``, ``intermediate_size``,
            ``num_layers``).
        n: tokens in the sequence ([CLS] and [SEP] included), >= 1.
        sparsity: config dict (module docstring); None/empty = dense.

    Returns:
        ``{"n", "layers": [per layer: tokens_in, tokens, k, macs {qkv, qk, av, out, ffn_up, ffn_down},
        select_4b (4b x 4b LUT products), elementwise {softmax, gelu, layernorm}, bytes {weights,
        weight_index, activations_in, activations_out}, kept_per_row], "totals": {macs, dsp_macs,
        select_4b, elementwise, bytes {..., offchip}}, "dense_baseline": totals with no sparsity}``.
        MACs are int8 x int8 multiply-accumulates; bytes are off-chip bytes (weights read once per
        layer pass, int8 values + in-bank index bits + int32 bias; int8 activations in and out).

    Raises:
        InputError: bad shape, bad config, ``n < 1``.
    """
    dims = check_model(model)
    sp = check_sparsity(sparsity)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"sequence length must be a positive integer, got {n!r}")
    toks = layer_tokens(n, dims["L"], sp["tokens"])
    prev = n
    layers = []
    for i, t in enumerate(toks):
        layers.append(_layer(dims, prev, t, {**sp, "weights": layer_weight_config(sp["weights"], i)}))
        prev = t
    dense = [_layer(dims, n, n, check_sparsity(None)) for _ in range(dims["L"])]
    return {"n": n, "layers": layers, "totals": _totals(layers), "dense_baseline": _totals(dense)}
