"""Bank-balanced weight sparsity: magnitude pruning of every Linear and the packed storage the kernel reads.

Pattern (Cao et al., "Efficient and Effective Sparse LSTM on FPGA with Bank-Balanced Sparsity", FPGA 2019,
section 3): each row of an ``(out, in)`` weight matrix is split into ``in / B`` banks of ``B`` consecutive
weights, and every bank keeps the same number of non-zeros, ``per_bank = ceil((1 - s) * B)``
(:func:`kept_per_bank`, the formula of :func:`padless.opcount.weight_layout`). Every PE that owns one bank
therefore does the same work and reads its own slice of the activation vector, with no bank conflicts.
Within a bank the ``per_bank`` weights of largest magnitude are kept; equal magnitudes go to the lower
in-bank index (a stable sort), so pruning is deterministic.

Storage (docs/sparsity.md, "Packed weight format"), for one ``(out, in)`` int8 matrix with bank ``B``,
``nb = in / B`` banks per row and ``P = per_bank`` entries per bank:

* ``values``: ``(out, nb, P)`` int8, row-major (row, then bank, then slot): ``out * nb * P`` bytes. In each
  bank the slots hold the kept weights in ascending in-bank index order.
* ``indices``: the in-bank index (``0 .. B-1``) of every slot, same (row, bank, slot) order, each
  ``b = ceil(log2 B)`` bits, packed little-endian into one bit stream: entry ``j`` occupies stream bits
  ``[j*b, (j+1)*b)``, stream bit ``t`` is bit ``t % 8`` of byte ``t // 8``; the last byte is zero-padded.
  For ``B = 16`` this is two 4-bit indices per byte, the lower slot in the low nibble.

Pattern ``pe-pair`` (``weights: {pattern: pe-pair}``): output rows ``2i`` and ``2i + 1`` -- the two PE lanes of
one DSP48E2 in the MVU -- keep the same ``per_bank`` in-bank columns in every bank (one kept set per row
pair, chosen by the pair's summed score: the group-wise spirit of hierarchical / block-balanced pruning).
One input then feeds two kept weights, so the sparse MVU packs two MACs per DSP as the dense one does (AMD
WP486). Its packed form (:func:`pack_pe_pair`) keeps ``values`` per row, ``(out, nb, P)``, and ONE index
per slot of a row pair: ``(out / 2, nb, P)`` entries in the same bit stream format, half the index bytes.

The int8 quantizer maps a pruned (zero) float weight to 0, but it can also round a small kept weight to 0;
such a bank then has fewer non-zeros than ``P``, and :func:`pack_bank_balanced` fills its spare slots with
zero values at the lowest unused in-bank indices (so indices stay strictly ascending in every bank).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from ..ir import EncoderSpec, LinearSpec
from ..opcount import check_sparsity, layer_weight_config

__all__ = ["kept_per_bank", "index_bits", "layer_ratios", "bank_balanced_mask", "prune_weight", "prune_spec",
           "pack_bank_balanced", "unpack_bank_balanced", "pack_pe_pair", "unpack_pe_pair", "packed_nbytes",
           "is_pattern_balanced", "input_norms", "default_calibration_ids", "LINEAR_NAMES"]

#: The Linears of one encoder layer that are pruned (every one of them).
LINEAR_NAMES = ("q", "k", "v", "o", "ffn_up", "ffn_down")


def kept_per_bank(bank: int, sparsity: float) -> int:
    """Non-zeros kept in every bank of ``bank`` weights at pruning ratio ``sparsity``:
    ``ceil((1 - sparsity) * bank)`` (>= 1). Raises InputError for bank < 1 or sparsity outside [0, 1)."""
    if not isinstance(bank, (int, np.integer)) or bank < 1:
        raise InputError(f"bank size must be a positive integer, got {bank!r}")
    if not 0 <= float(sparsity) < 1:
        raise InputError(f"weight sparsity must be in [0, 1), got {sparsity!r}")
    return max(1, math.ceil((1.0 - float(sparsity)) * int(bank)))


def index_bits(bank: int) -> int:
    """Bits of one in-bank index: ``ceil(log2 bank)`` (0 for bank 1)."""
    return (int(bank) - 1).bit_length()


def layer_ratios(weights_cfg: Mapping[str, Any] | None, num_layers: int) -> list[float]:
    """Pruning ratio of each layer: ``weights_cfg["layers"][i]`` where given, else ``weights_cfg["sparsity"]``.

    ``(num_layers,)`` list of floats. Raises InputError for a per-layer index outside the model."""
    cfg = check_sparsity({"weights": weights_cfg})["weights"] if weights_cfg else {}
    for key in cfg.get("layers", {}):
        if int(key) >= num_layers:
            raise InputError(f"weights layers: layer {key} does not exist (the model has {num_layers} layers)")
    return [float(layer_weight_config(cfg, i).get("sparsity", 0.0)) for i in range(num_layers)]


def _check_banks(shape: tuple, bank: int) -> int:
    if len(shape) != 2:
        raise InputError(f"a weight matrix must be 2-D (out, in), got shape {shape}")
    if shape[1] % bank:
        raise InputError(f"weight bank {bank} does not divide the input width {shape[1]}; choose a bank size "
                         "that divides every layer width (e.g. 8 or 16)")
    return shape[1] // bank


def _check_rows(out: int, rows: int) -> int:
    if rows not in (1, 2):
        raise InputError(f"rows sharing a kept-column set must be 1 (pattern row) or 2 (pattern pe-pair), got {rows!r}")
    if out % rows:
        raise InputError(f"pattern pe-pair pairs output rows 2i and 2i + 1, but a matrix has {out} output rows "
                         "(odd); use pattern: row for this model")
    return rows


def bank_balanced_mask(w: np.ndarray, bank: int, sparsity: float, input_norm: np.ndarray | None = None,
                       rows: int = 1) -> np.ndarray:
    """Keep-mask of bank-balanced magnitude pruning.

    Args:
        w: ``(out, in)`` weights (float or int); ``in`` must be a multiple of ``bank``.
        bank: weights per bank (B).
        sparsity: fraction pruned; each bank keeps :func:`kept_per_bank` weights of largest score,
            equal scores going to the lower in-bank index.
        input_norm: optional ``(in,)`` L2 norm of each input channel over calibration tokens; the score is
            then ``|w_ij| * ||x_j||`` (activation-aware magnitude, Wanda: Sun et al., arXiv 2306.11695,
            section 3), else ``|w_ij|``.
        rows: output rows that share one kept set per bank: 1 (``pattern: row``) or 2 (``pattern: pe-pair``:
            rows 2i and 2i + 1 keep the columns of largest summed score ``score_2i,j + score_2i+1,j``).
    Returns:
        ``(out, in)`` bool, True where the weight is kept; exactly ``kept_per_bank`` True per bank, the same
        columns in both rows of a pair when ``rows`` is 2.
    Raises:
        InputError: a bank size that does not divide ``in``, a bad ratio, an odd row count for pe-pair.
    """
    w = np.asarray(w)
    nb = _check_banks(w.shape, bank)
    _check_rows(w.shape[0], rows)
    p = kept_per_bank(bank, sparsity)
    mag = np.abs(w.astype(np.float64))
    if input_norm is not None:
        norm = np.asarray(input_norm, dtype=np.float64)
        if norm.shape != (w.shape[1],):
            raise InputError(f"input_norm must be ({w.shape[1]},), got {norm.shape}")
        mag = mag * norm[None, :]
    mag = mag.reshape(w.shape[0] // rows, rows, nb, bank).sum(axis=1)
    order = np.argsort(-mag, axis=2, kind="stable")[:, :, :p]
    mask = np.zeros(mag.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=2)
    return np.repeat(mask, rows, axis=0).reshape(w.shape)


def prune_weight(w: np.ndarray, bank: int, sparsity: float, input_norm: np.ndarray | None = None,
                 rows: int = 1) -> np.ndarray:
    """``(out, in)`` weights -> a copy with the pruned entries set to zero (same dtype); see
    :func:`bank_balanced_mask` (``rows`` 2: the pe-pair pattern)."""
    w = np.asarray(w)
    if sparsity == 0:
        return w.copy()
    mask = bank_balanced_mask(w, bank, sparsity, input_norm, rows)
    return np.where(mask, w, np.zeros((), dtype=w.dtype)).astype(w.dtype)


#: Which calibration site of :func:`padless.reference.layer_fp32` feeds each Linear.
_INPUT_SITE = {"q": "in", "k": "in", "v": "in", "o": "ctx", "ffn_up": "h", "ffn_down": "act"}


#: Sentences for activation-aware pruning when the caller gives none (the compile's default calibration set).
CALIB_DATASET, CALIB_COUNT = "vader-tweets", 64
#: Calibration sentences for ``criterion: sparsegpt`` (about 16k tokens of tweets: several times the widest
#: Linear input, 1536 for MiniLM's FFN down, so every Hessian is well conditioned).
SPARSEGPT_CALIB_COUNT = 1024


def default_calibration_ids(spec: EncoderSpec, count: int = CALIB_COUNT) -> list:
    """Token ids of the first ``count`` sentences of :data:`CALIB_DATASET` (real text from the registry
    cache). Raises InputError when the model has no tokenizer, DataError when the data is missing."""
    from ..data.datasets import load_dataset
    from ..models import Tokenizer
    if not spec.tokenizer_path:
        raise InputError(f"model {spec.name} has no tokenizer: data-aware pruning (criterion activation or "
                         "sparsegpt) needs calibration sentences; use criterion: magnitude")
    texts = load_dataset(CALIB_DATASET, limit=count).texts
    return Tokenizer(spec.tokenizer_path, spec.max_positions).encode(texts, truncate=True)


def input_norms(spec: EncoderSpec, token_ids) -> list[dict]:
    """Per layer, per Linear: ``(in,)`` float64 L2 norm of each input channel over every token of
    ``token_ids`` (real sentences), from the fp32 reference of the *dense* model. Raises InputError
    for no sequence or a post-norm-only site missing (pre-norm models)."""
    from ..reference import embed, layer_fp32
    seqs = list(token_ids)
    if not seqs:
        raise InputError("activation-aware pruning needs calibration sentences")
    sq = [{site: 0.0 for site in set(_INPUT_SITE.values())} for _ in spec.layers]
    for ids in seqs:
        x = embed(spec, ids)
        for i, layer in enumerate(spec.layers):
            def observe(site, value, acc=sq[i]):
                if site in acc:
                    acc[site] = acc[site] + np.square(np.asarray(value, np.float64)).sum(axis=0)
            x = layer_fp32(spec, layer, x, observe)
    return [{name: np.sqrt(np.asarray(acc[site], np.float64)) for name, site in _INPUT_SITE.items()} for acc in sq]


def prune_spec(spec: EncoderSpec, weights_cfg: Mapping[str, Any], token_ids=None, progress=None) -> EncoderSpec:
    """Bank-balanced magnitude pruning of every Linear (Q, K, V, O, FFN up, FFN down) of every layer.

    Args:
        spec: the float model (not modified).
        weights_cfg: ``{"sparsity": s, "bank": B[, "layers": {"<i>": s_i}][, "pattern": "pe-pair"]}``
            (normalised by :func:`padless.sparse.config.parse_sparsity`); per-layer ratios override ``s``;
            ``pattern: pe-pair`` makes every criterion choose one kept set per bank per output-row pair;
            with ``permute: true`` the output channels are first reordered (function-preserving: FFN
            intermediate channels, V and Q/K head-dim channels, :mod:`padless.sparse.permute`) so that rows
            of similar importance share a pair.
        token_ids: optional real sentences (token id lists) for the data-aware criteria. ``activation``:
            the ranking score is ``|w| * ||x||`` (:func:`input_norms`; Wanda, Sun et al. arXiv 2306.11695)
            instead of ``|w|``. ``sparsegpt``: masks chosen by OBS saliency and the kept weights
            reconstructed to preserve each Linear's outputs on these sentences
            (:mod:`padless.sparse.sparsegpt`). With no ids, :func:`default_calibration_ids`
            (``SPARSEGPT_CALIB_COUNT`` sentences for sparsegpt: its FFN-down Hessian is 1536 x 1536 on
            MiniLM and needs many more tokens than that).
        progress: optional callable ``(layer_index, name)`` after each Linear (sparsegpt) and after each
            permuted group (``permute``: ``"qk"``, ``"v"``, ``"ffn"`` of each layer).
    Returns:
        a copy of ``spec`` whose Linear weights are pruned (biases, LayerNorms and embeddings untouched);
        ``spec.source["weight_sparsity"]`` records the config. Quantizing it keeps every pruned weight 0.
    Raises:
        InputError: no bank size, a bank that does not divide a layer width, a bad ratio.
    """
    cfg = dict(weights_cfg or {})
    if "bank" not in cfg:
        raise InputError("weights config needs a bank size (weights: {sparsity: 0.5, bank: 16})")
    bank = int(cfg["bank"])
    from .config import pattern_rows
    rows = pattern_rows(cfg)
    ratios = layer_ratios(cfg, len(spec.layers))
    criterion = cfg.get("criterion", "magnitude")
    if criterion not in ("magnitude", "activation", "sparsegpt"):
        raise InputError(f"weights criterion {criterion!r} is not available; choose magnitude, activation "
                         "or sparsegpt")
    norms, cal_source = [{} for _ in spec.layers], None
    if criterion in ("activation", "sparsegpt"):
        count = CALIB_COUNT if criterion == "activation" else SPARSEGPT_CALIB_COUNT
        if token_ids is None:
            token_ids, cal_source = default_calibration_ids(spec, count), f"{CALIB_DATASET} (first {count})"
        else:
            cal_source = f"{len(token_ids)} given sentences"
    if cfg.get("permute"):
        spec, norms = _permuted(spec, cfg, criterion, token_ids, rows, progress)
    out = copy.copy(spec)
    out.source = {**spec.source, "weight_sparsity": {**cfg, "ratios": ratios, "norms_from": cal_source}}
    if criterion == "sparsegpt":
        from .sparsegpt import sparsegpt_layers
        out.layers = sparsegpt_layers(spec, ratios, bank, token_ids, progress=progress, rows=rows)
        return out
    if criterion == "activation" and not cfg.get("permute"):
        norms = input_norms(spec, token_ids)
    out.layers = []
    for layer, s, nrm in zip(spec.layers, ratios, norms):
        new = copy.copy(layer)
        for name in LINEAR_NAMES:
            lin: LinearSpec = getattr(layer, name)
            w = prune_weight(lin.weight, bank, s, nrm.get(name), rows).astype(np.float32)
            setattr(new, name, LinearSpec(weight=w, bias=lin.bias))
        out.layers.append(new)
    return out


def _permuted(spec: EncoderSpec, cfg: Mapping[str, Any], criterion: str, token_ids, rows: int, progress=None):
    """``weights: {permute: true}``: the spec with its pe-pair row pairing applied
    (:mod:`padless.sparse.permute`) and the per-layer input norms the activation criterion prunes it by
    (the dense model's, permuted; empty dicts for the other criteria). The pairing of a data-aware
    criterion reads the norms of the first :data:`CALIB_COUNT` calibration sentences."""
    from .permute import permute_norms, permute_spec
    if rows != 2:
        raise InputError("weights permute pairs similar output rows for pattern pe-pair; pattern row keeps every "
                         "row's own columns already: remove permute or set pattern: pe-pair")
    dense_norms = None
    if criterion != "magnitude":
        ids = list(token_ids)
        dense_norms = input_norms(spec, ids if criterion == "activation" else ids[:CALIB_COUNT])
    permuted, plans = permute_spec(spec, cfg, dense_norms, progress)
    if criterion == "activation":
        return permuted, permute_norms(dense_norms, plans)
    return permuted, [{} for _ in spec.layers]


def _pack_bits(entries: np.ndarray, bits: int) -> np.ndarray:
    """Flat unsigned ``entries`` (< 2^bits) -> little-endian bit stream as ``(ceil(n*bits/8),)`` uint8."""
    n = entries.size
    if bits == 0 or n == 0:
        return np.zeros(0, dtype=np.uint8)
    e = entries.reshape(-1).astype(np.uint64)
    stream = ((e[:, None] >> np.arange(bits, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little")


def _unpack_bits(data: np.ndarray, n: int, bits: int) -> np.ndarray:
    if bits == 0:
        return np.zeros(n, dtype=np.int64)
    stream = np.unpackbits(np.asarray(data, dtype=np.uint8), bitorder="little")[: n * bits]
    if stream.size < n * bits:
        raise InputError(f"index stream holds {stream.size} bits, {n * bits} needed for {n} indices")
    return (stream.reshape(n, bits).astype(np.int64) << np.arange(bits, dtype=np.int64)[None, :]).sum(axis=1)


def pack_bank_balanced(w_int8: np.ndarray, bank: int, per_bank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pack a bank-balanced sparse int8 matrix into the kernel's storage (module docstring, exact layout).

    Args:
        w_int8: ``(out, in)`` int8 weights, at most ``per_bank`` non-zeros in every bank of ``bank``.
        bank: weights per bank (B); must divide ``in``.
        per_bank: slots per bank (P); default the largest non-zero count of any bank (at least 1). Give
            :func:`kept_per_bank` of the configured ratio so every matrix of a layer has the same P.
    Returns:
        ``(values, indices)``: ``values`` ``(out, in / B, P)`` int8; ``indices`` ``(ceil(out * in / B * P *
        index_bits(B) / 8),)`` uint8, the in-bank indices as a little-endian bit stream.
    Raises:
        InputError: a bank with more than ``per_bank`` non-zeros, a bank size that does not divide ``in``,
            values outside int8.
    """
    w = np.asarray(w_int8)
    nb = _check_banks(w.shape, bank)
    if w.size and (w.min() < -128 or w.max() > 127):
        raise InputError("pack_bank_balanced expects int8 weights (quantize first)")
    banks = w.reshape(w.shape[0], nb, bank).astype(np.int64)
    idx, p = _choose_slots(banks != 0, bank, per_bank, lambda r, b, c, p: (
        f"row {r} bank {b} has {c} non-zeros, more than {p} per bank: the matrix is not bank-balanced at this "
        "ratio (prune it with prune_weight first)"))
    values = np.take_along_axis(banks, idx, axis=2).astype(np.int8)
    return values, _pack_bits(idx, index_bits(bank))


def unpack_bank_balanced(values: np.ndarray, indices: np.ndarray, in_features: int, bank: int) -> np.ndarray:
    """Inverse of :func:`pack_bank_balanced`: ``(out, in / B, P)`` int8 values + index bit stream ->
    ``(out, in_features)`` int8 dense matrix. Raises InputError for inconsistent shapes or indices."""
    values = np.asarray(values)
    if values.ndim != 3:
        raise InputError(f"values must be (out, in / bank, per_bank), got shape {values.shape}")
    out, nb, p = values.shape
    if nb * bank != in_features:
        raise InputError(f"{nb} banks of {bank} do not make {in_features} input features")
    idx = _unpack_bits(indices, values.size, index_bits(bank)).reshape(values.shape)
    if idx.size and idx.max() >= bank:
        raise InputError(f"an in-bank index {int(idx.max())} is outside the bank of {bank}")
    dense = np.zeros((out, nb, bank), dtype=np.int8)
    np.put_along_axis(dense, idx, values.astype(np.int8), axis=2)
    return dense.reshape(out, in_features)


def _choose_slots(nz: np.ndarray, bank: int, per_bank: int | None, overfull) -> tuple[np.ndarray, int]:
    """The ``P`` slots of every bank from its kept mask ``nz`` ``(rows, nb, B)`` bool: the kept positions, then
    the lowest unkept ones as padding, in ascending in-bank order (a stable sort on "not kept" puts the kept
    first, each group in index order; the chosen P positions are then sorted) -> (``(rows, nb, P)`` indices,
    P). ``P`` defaults to the largest kept count (at least 1). Raises InputError for P outside ``[1, B]`` or a
    bank keeping more than P, with ``overfull(row, bank, count, P)`` as the message."""
    counts = nz.sum(axis=2)
    p = int(per_bank) if per_bank is not None else max(1, int(counts.max(initial=0)))
    if not 1 <= p <= bank:
        raise InputError(f"per_bank must be in [1, {bank}], got {p}")
    if counts.size and counts.max() > p:
        r, b = np.unravel_index(int(np.argmax(counts)), counts.shape)
        raise InputError(overfull(int(r), int(b), int(counts[r, b]), p))
    order = np.argsort(~nz, axis=2, kind="stable")[:, :, :p]
    return np.sort(order, axis=2), p


def _pair_slots(w: np.ndarray, bank: int, per_bank: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(out, in)`` int8 pe-pair matrix -> (banks ``(out, nb, B)`` int64, slot indices ``(out / 2, nb, P)``, P)."""
    w = np.asarray(w)
    nb = _check_banks(w.shape, bank)
    _check_rows(w.shape[0], 2)
    if w.size and (w.min() < -128 or w.max() > 127):
        raise InputError("pack_pe_pair expects int8 weights (quantize first)")
    banks = w.reshape(w.shape[0], nb, bank).astype(np.int64)
    nz = (banks != 0).reshape(w.shape[0] // 2, 2, nb, bank).any(axis=1)   # kept by either row of the pair
    idx, p = _choose_slots(nz, bank, per_bank, lambda q, b, c, p: (
        f"rows {2 * q} and {2 * q + 1} bank {b} use {c} different columns, more than {p} per bank: the matrix "
        "does not follow pattern pe-pair at this ratio (prune it with prune_weight(..., rows=2) first)"))
    return banks, idx, p


def pack_pe_pair(w_int8: np.ndarray, bank: int, per_bank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pack a pe-pair bank-balanced int8 matrix (rows 2i and 2i + 1 use at most ``per_bank`` columns of
    every bank between them) into values per row and one index set per row pair (module docstring).

    Args:
        w_int8: ``(out, in)`` int8, ``out`` even. bank: B (divides ``in``). per_bank: slots P (default the
            largest count of columns a pair uses in a bank, at least 1).
    Returns:
        ``(values, indices)``: ``values`` ``(out, in / B, P)`` int8 (row ``o``'s weight at each slot of its
        pair, zero where that row has none); ``indices`` the ``(out / 2) * (in / B) * P`` in-bank indices,
        (pair, bank, slot) order, as the little-endian bit stream of :func:`pack_bank_balanced`.
    Raises:
        InputError: a pair using more than ``per_bank`` columns of a bank, an odd row count, a bank that does
            not divide ``in``, values outside int8.
    """
    banks, idx, _ = _pair_slots(w_int8, bank, per_bank)
    values = np.take_along_axis(banks, np.repeat(idx, 2, axis=0), axis=2).astype(np.int8)
    return values, _pack_bits(idx, index_bits(bank))


def unpack_pe_pair(values: np.ndarray, indices: np.ndarray, in_features: int, bank: int) -> np.ndarray:
    """Inverse of :func:`pack_pe_pair`: ``(out, in / B, P)`` values + the pair index stream -> ``(out,
    in_features)`` int8. Raises InputError for inconsistent shapes, an odd row count or indices outside
    the bank."""
    values = np.asarray(values)
    if values.ndim != 3:
        raise InputError(f"values must be (out, in / bank, per_bank), got shape {values.shape}")
    out, nb, p = values.shape
    _check_rows(out, 2)
    if nb * bank != in_features:
        raise InputError(f"{nb} banks of {bank} do not make {in_features} input features")
    idx = _unpack_bits(indices, values.size // 2, index_bits(bank)).reshape(out // 2, nb, p)
    if idx.size and idx.max() >= bank:
        raise InputError(f"an in-bank index {int(idx.max())} is outside the bank of {bank}")
    dense = np.zeros((out, nb, bank), dtype=np.int8)
    np.put_along_axis(dense, np.repeat(idx, 2, axis=0), values.astype(np.int8), axis=2)
    return dense.reshape(out, in_features)


def is_pattern_balanced(w: np.ndarray, bank: int, sparsity: float, rows: int = 1) -> bool:
    """True when every bank of the ``(out, in)`` matrix uses at most ``kept_per_bank(bank, sparsity)``
    columns per group of ``rows`` output rows (1: each row on its own; 2: rows 2i and 2i + 1 together)."""
    w = np.asarray(w)
    nb = _check_banks(w.shape, bank)
    _check_rows(w.shape[0], rows)
    nz = (w.reshape(w.shape[0] // rows, rows, nb, bank) != 0).any(axis=1).sum(axis=2)
    return bool((nz <= kept_per_bank(bank, sparsity)).all())


def packed_nbytes(out_features: int, in_features: int, bank: int, per_bank: int, rows: int = 1) -> dict:
    """Bytes of the packed format: ``{"values", "indices", "total"}`` (bias not included); ``rows`` 2 for
    pattern pe-pair (one index per slot of a row pair)."""
    kept = out_features * (in_features // bank) * per_bank
    idx = (kept // rows * index_bits(bank) + 7) // 8
    return {"values": kept, "indices": idx, "total": kept + idx}
