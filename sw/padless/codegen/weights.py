"""``weights.bin``: the integer model as one little-endian image that the HLS kernel reads over m_axi.

Layout (version 1; every offset is in bytes and a multiple of 64, so the kernel reads 64-bit words):

* Header, 64 bytes: ``magic`` b"PADLESSW" (8), then uint32 ``version``, ``num_layers``, ``hidden``,
  ``heads``, ``ffn``, ``flags`` (bit 0: bank-balanced sparse weights), ``bank`` (weights per bank, 0 when
  dense), ``index_bits``, ``num_sections``, then uint64 ``total_bytes``; zero padding to 64.
* Section table at byte 64: ``num_layers x num_sections`` pairs of uint64 ``(offset, nbytes)``.
* Per layer, the sections in :data:`SECTIONS` order, each 64-byte aligned:
  for each linear ``q, k, v, o, up, down``: ``w`` (dense: ``(out, in)`` int8 row-major; sparse: the packed
  values ``(out, in / bank, per_bank)`` int8 of :func:`padless.sparse.weights.pack_bank_balanced`),
  ``idx`` (sparse only: its in-bank index bit stream, ``index_bits`` per entry, little-endian; empty when
  dense), ``bias`` ``(out,)`` int32, ``m`` ``(out,)`` int32, ``shift`` ``(out,)`` int32; then the
  per-channel int64 vectors of :data:`VECTORS` (``(hidden,)``, ``(ffn,)`` for ``act_m``/``act_shift``,
  ``(GELU_SEGMENTS,)`` for the piecewise-linear GELU table ``gelu_slope``/``gelu_icpt``), then
  ``scalars``: :data:`SCALARS` as int64 (``act_kind``: :data:`ACT_KIND`).

The section byte offsets are also written into the generated ``config.h`` (as 64-bit word offsets), so
the kernel needs no parsing; the table lets any reader check an image (:func:`read_header`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ProjectError

MAGIC = b"PADLESSW"
VERSION = 1
ALIGN = 64
HEADER_BYTES = 64
LINEARS = ("q", "k", "v", "o", "up", "down")
LINEAR_PARTS = ("w", "idx", "bias", "m", "shift")
VECTORS = ("ctx_m", "ctx_shift", "res_attn_m", "res_attn_shift", "ln_attn_m", "ln_attn_b", "act_m", "act_shift",
           "res_ffn_m", "res_ffn_shift", "ln_ffn_m", "ln_ffn_b", "gelu_slope", "gelu_icpt")
SCALARS = ("score_m", "score_shift", "ln_attn_shift", "ln_ffn_shift", "gelu_b", "gelu_c", "gelu_r", "gelu_one",
           "act_kind", "gelu_lo", "gelu_k")
# act_kind: the FFN activation of a layer in weights.bin.
ACT_KIND = {"relu": 0, "gelu": 1, "gelu-pwl": 2}
SECTIONS = tuple(f"{lin}.{p}" for lin in LINEARS for p in LINEAR_PARTS) + VECTORS + ("scalars",)


@dataclass
class WeightsLayout:
    """Where every section of every layer lies in ``weights.bin``.

    offsets/nbytes: ``(num_layers, len(SECTIONS))`` int64 byte offsets and sizes; per_bank: slots per bank
    of each layer (sparse) or empty; bank/index_bits: 0 when dense; total_bytes: file size.
    """

    offsets: np.ndarray
    nbytes: np.ndarray
    total_bytes: int
    bank: int = 0
    index_bits: int = 0
    per_bank: list = field(default_factory=list)

    @property
    def sparse(self) -> bool:
        return self.bank > 0

    def to_dict(self) -> dict:
        return {"version": VERSION, "sections": list(SECTIONS), "offsets": self.offsets.tolist(),
                "nbytes": self.nbytes.tolist(), "total_bytes": self.total_bytes, "bank": self.bank,
                "index_bits": self.index_bits, "per_bank": list(self.per_bank)}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _layer_sections(layer, sparse: dict | None, layer_idx: int) -> list[bytes]:
    """The byte strings of one layer's sections, in SECTIONS order."""
    out = []
    for name in LINEARS:
        lin = getattr(layer, name)
        w = np.asarray(lin.w, np.int8)
        if sparse:
            from ..sparse.weights import pack_bank_balanced
            vals, idx = pack_bank_balanced(w, sparse["bank"], sparse["per_bank"][layer_idx])
            out += [vals.tobytes(), idx.tobytes()]
        else:
            out += [np.ascontiguousarray(w).tobytes(), b""]
        for arr in (lin.bias, lin.m, lin.shift):
            a = np.asarray(arr, np.int64)
            if a.min(initial=0) < -(1 << 31) or a.max(initial=0) >= (1 << 31):
                raise ProjectError(f"layer {layer_idx} {name}: a value does not fit int32 in weights.bin")
            out.append(a.astype("<i4").tobytes())
    for name in VECTORS:
        out.append(np.asarray(getattr(layer, name), "<i8").tobytes())
    sc = [layer.score_m, layer.score_shift, layer.ln_attn_shift, layer.ln_ffn_shift, layer.gelu_b, layer.gelu_c,
          layer.gelu_r, layer.gelu_one, ACT_KIND[layer.act], layer.gelu_lo, layer.gelu_k]
    out.append(np.asarray(sc, "<i8").tobytes())
    return out


def sparse_config(qe, weights_cfg: dict | None) -> dict | None:
    """``{"bank", "per_bank": [P per layer], "index_bits"}`` for a bank-balanced sparsity config, else None."""
    if not weights_cfg or float(weights_cfg.get("sparsity", 0) or 0) <= 0 and not weights_cfg.get("layers"):
        return None
    from ..sparse.weights import index_bits, kept_per_bank, layer_ratios
    bank = int(weights_cfg["bank"])
    ratios = layer_ratios(weights_cfg, qe.num_layers)
    return {"bank": bank, "per_bank": [kept_per_bank(bank, r) for r in ratios], "index_bits": index_bits(bank)}


def write_weights(qe, path, weights_cfg: dict | None = None) -> WeightsLayout:
    """Write ``qe`` (QuantizedEncoder) as ``weights.bin`` at ``path`` (layout in the module docstring).

    ``weights_cfg``: the manifest's ``sparsity["weights"]``; when it prunes, the linears are stored in the
    bank-balanced packed format. Returns the layout. Raises ProjectError for a value outside its field, or
    InputError (from the sparse packer) for weights that are not bank-balanced at the configured ratio.
    """
    m = qe.model
    sparse = sparse_config(qe, weights_cfg)
    n_sec = len(SECTIONS)
    L = qe.num_layers
    offsets = np.zeros((L, n_sec), np.int64)
    nbytes = np.zeros((L, n_sec), np.int64)
    pos = _align(HEADER_BYTES + L * n_sec * 16)
    blobs = []
    for li, layer in enumerate(qe.layers):
        for si, data in enumerate(_layer_sections(layer, sparse, li)):
            offsets[li, si], nbytes[li, si] = pos, len(data)
            blobs.append((pos, data))
            pos = _align(pos + max(len(data), 1))
    total = pos
    bank = sparse["bank"] if sparse else 0
    ibits = sparse["index_bits"] if sparse else 0
    header = MAGIC + struct.pack("<9IQ", VERSION, L, m["hidden_size"], m["num_heads"], m["intermediate_size"],
                                 1 if sparse else 0, bank, ibits, n_sec, total)
    buf = bytearray(total)
    buf[:len(header)] = header
    table = np.stack([offsets, nbytes], axis=-1).astype("<u8").tobytes()
    buf[HEADER_BYTES:HEADER_BYTES + len(table)] = table
    for off, data in blobs:
        buf[off:off + len(data)] = data
    Path(path).write_bytes(bytes(buf))
    return WeightsLayout(offsets=offsets, nbytes=nbytes, total_bytes=total, bank=bank, index_bits=ibits,
                         per_bank=list(sparse["per_bank"]) if sparse else [])


def read_header(path) -> dict:
    """Parse and check the header and section table of a ``weights.bin``.

    Returns ``{"version", "num_layers", "hidden", "heads", "ffn", "sparse", "bank", "index_bits",
    "total_bytes", "offsets", "nbytes"}``. Raises ProjectError for a wrong magic, version or size.
    """
    data = Path(path).read_bytes()
    if len(data) < HEADER_BYTES or data[:8] != MAGIC:
        raise ProjectError(f"{path} is not a padless weights.bin (bad magic); recompile the project")
    ver, L, hid, heads, ffn, flags, bank, ibits, n_sec, total = struct.unpack_from("<9IQ", data, 8)
    if ver != VERSION:
        raise ProjectError(f"{path} is weights.bin version {ver}; this padless reads version {VERSION}: recompile")
    if total != len(data) or n_sec != len(SECTIONS):
        raise ProjectError(f"{path} is truncated or inconsistent ({len(data)} bytes, header says {total})")
    table = np.frombuffer(data, "<u8", L * n_sec * 2, HEADER_BYTES).reshape(L, n_sec, 2).astype(np.int64)
    return {"version": ver, "num_layers": L, "hidden": hid, "heads": heads, "ffn": ffn, "sparse": bool(flags & 1),
            "bank": bank, "index_bits": ibits, "total_bytes": total, "offsets": table[..., 0],
            "nbytes": table[..., 1]}
