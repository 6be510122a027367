"""``weights.bin``: the integer model as one little-endian image that the HLS kernel reads over m_axi.

Version 2 is laid out in the kernel's on-chip order, so that the kernel's loader (hw/hls/include/padless/io.h,
``load_elems``) reads every section with sequential bursts and writes one word per cycle into the bank
that holds it. The layout therefore depends on the project's folding (PE, SIMD of each matrix-vector unit).

* Header, 128 bytes: ``magic`` b"PADLESSW" (8); uint32 ``version`` (2), ``num_layers``, ``hidden``,
  ``heads``, ``ffn``, ``flags`` (bit 0: bank-balanced sparse weights), ``bank`` (weights per bank, 0 when
  dense), ``index_bits``, ``p_max`` (slots per bank of the hardware, 0 when dense), ``num_sections``, then
  ``pe[4]``, ``simd[4]`` of the MVUs (qkv, out, up, down), two reserved uint32; uint64 ``total_bytes`` at
  byte 88; zero padding to 128.
* Section table at byte 128: ``num_layers x num_sections`` pairs of uint64 ``(offset, nbytes)``.
* Per layer, :data:`SECTIONS` in order, each 64-byte aligned:

  - ``<mvu>.w`` for the MVUs ``qkv`` (Q, K and V stacked: ``3H`` outputs), ``out``, ``up``, ``down``: the
    weight words in the order ``(nf, sf, p)`` (neuron fold, synapse fold, PE bank): output row
    ``o = nf * PE + p``. Dense: a word is the SIMD int8 weights ``W[o, sf*SIMD : (sf+1)*SIMD]``. Sparse
    (bank-balanced, :mod:`padless.sparse.weights`): a word covers ``NBPC = SIMD / P_MAX`` banks of the row,
    ``SIMD`` int8 values then ``SIMD`` uint8 in-bank indices; lane ``j`` holds slot ``j % P_MAX`` of bank
    ``sf * NBPC + j // P_MAX``; a layer keeping ``P < P_MAX`` per bank has zero values (index 0) in the
    unused slots. Sparse pattern ``pe-pair`` (rows 2i and 2i + 1 share their in-bank indices): first the
    value words, ``(nf, sf, p)`` order, SIMD int8 each (lanes as above), then, at the next 64-byte boundary
    of the section, ONE index word per PE pair in the order ``(nf, sf, q)`` (pair ``q`` = lanes 2q, 2q + 1):
    :func:`pair_index_bytes` (``ceil(SIMD * index_bits / 8)`` rounded up to tile an m_axi beat), lane ``j``'s index at bits ``[j * index_bits, (j + 1) *
    index_bits)`` of the word's little-endian bit stream (two 4-bit indices a byte for bank 16): a quarter
    of the row pattern's index bytes, half of them from the sharing and half from the bit packing.
  - ``<mvu>.rq``: per output channel 16 bytes ``{int32 bias, int32 m, int32 shift, 0}``.
  - ``ctx`` (H), ``res_attn`` (H), ``res_ffn`` (H): per channel ``{int64 m, int64 shift}``; ``act`` (F): per
    channel ``{int64 m, int32 shift, int32 zero point}`` (zero point 0 for a symmetric grid, so a symmetric
    project's bytes are those of ``{int64 m, int64 shift}``);
    ``ln_attn``, ``ln_ffn`` (H): ``{int64 m, int64 b}``; ``gelu``: 64 ``{int64 slope, int64 icpt}`` of the
    piecewise-linear GELU; ``scalars``: :data:`SCALARS` as int64.

The section byte offsets are also written into the generated ``config.h`` (``PADLESS_WSEC``), so the
kernel needs no parsing; the header lets any reader check an image (:func:`read_header`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ProjectError

MAGIC = b"PADLESSW"
VERSION = 2
ALIGN = 64
HEADER_BYTES = 128
#: Byte offset of the header's uint64 ``total_bytes``.
TOTAL_OFFSET = 88
MVUS = ("qkv", "out", "up", "down")
SECTIONS = ("qkv.w", "qkv.rq", "out.w", "out.rq", "up.w", "up.rq", "down.w", "down.rq",
            "ctx", "res_attn", "ln_attn", "act", "res_ffn", "ln_ffn", "gelu", "scalars")
SCALARS = ("score_m", "score_shift", "ln_attn_shift", "ln_ffn_shift", "gelu_b", "gelu_c", "gelu_r", "gelu_one",
           "act_kind", "gelu_lo", "gelu_k")
# act_kind: the FFN activation of a layer in weights.bin.
ACT_KIND = {"relu": 0, "gelu": 1, "gelu-pwl": 2}


@dataclass
class WeightsLayout:
    """Where every section of every layer lies in ``weights.bin``.

    offsets/nbytes: ``(num_layers, len(SECTIONS))`` int64 byte offsets and sizes; per_bank: slots kept
    per bank of each layer (sparse) or empty; bank/index_bits/p_max: 0 when dense; folding: ``{mvu: (PE,
    SIMD)}``; total_bytes: file size.
    """

    offsets: np.ndarray
    nbytes: np.ndarray
    total_bytes: int
    folding: dict
    bank: int = 0
    index_bits: int = 0
    p_max: int = 0
    per_bank: list = field(default_factory=list)
    pattern: str = "row"

    @property
    def sparse(self) -> bool:
        return self.bank > 0

    def to_dict(self) -> dict:
        return {"version": VERSION, "sections": list(SECTIONS), "offsets": self.offsets.tolist(),
                "nbytes": self.nbytes.tolist(), "total_bytes": self.total_bytes, "bank": self.bank,
                "index_bits": self.index_bits, "p_max": self.p_max, "per_bank": list(self.per_bank),
                "pattern": self.pattern, "folding": {k: list(v) for k, v in self.folding.items()}}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def mvu_matrix(layer, mvu: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(w (out, in) int8, bias, m, shift)`` of one MVU of a quantized layer (qkv: Q, K, V stacked)."""
    lins = (layer.q, layer.k, layer.v) if mvu == "qkv" else (getattr(layer, "o" if mvu == "out" else mvu),)
    w = np.concatenate([np.asarray(lin.w, np.int8) for lin in lins], axis=0)
    cat = lambda name: np.concatenate([np.asarray(getattr(lin, name), np.int64) for lin in lins])  # noqa: E731
    return w, cat("bias"), cat("m"), cat("shift")


def dense_words(w: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """``(out, in)`` int8 -> the kernel's word order ``(nf, sf, p, simd)`` as bytes."""
    out, inp = w.shape
    if out % pe or inp % simd:
        raise ProjectError(f"PE {pe} / SIMD {simd} do not divide a {out} x {inp} matrix")
    return np.ascontiguousarray(w.reshape(out // pe, pe, inp // simd, simd).transpose(0, 2, 1, 3)).tobytes()


def sparse_words(w: np.ndarray, pe: int, simd: int, bank: int, per_bank: int, p_max: int) -> bytes:
    """Bank-balanced ``(out, in)`` int8 -> the kernel's sparse words ``(nf, sf, p)``, each SIMD values then
    SIMD in-bank indices (module docstring). Raises InputError for a matrix that is not bank-balanced."""
    from ..sparse.weights import _unpack_bits, index_bits, pack_bank_balanced
    out, inp = w.shape
    nb = inp // bank
    if simd % p_max or nb % (simd // p_max) or out % pe:
        raise ProjectError(f"sparse SIMD {simd} must be a multiple of {p_max} slots covering whole banks "
                           f"({nb} banks per row), PE {pe} must divide {out}")
    vals, packed = pack_bank_balanced(w, bank, per_bank)
    idx = _unpack_bits(packed, vals.size, index_bits(bank)).reshape(vals.shape)
    v = np.zeros((out, nb, p_max), np.int8)
    ix = np.zeros((out, nb, p_max), np.uint8)
    v[:, :, :per_bank] = vals
    ix[:, :, :per_bank] = idx
    nbpc = simd // p_max
    sf = nb // nbpc
    # (out, sf, nbpc * p_max) -> (nf, pe, sf, simd) -> (nf, sf, pe, simd)
    vw = v.reshape(out // pe, pe, sf, simd).transpose(0, 2, 1, 3)
    iw = ix.reshape(out // pe, pe, sf, simd).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(np.concatenate([vw, iw.view(np.int8)], axis=3)).tobytes()


def pair_index_bytes(simd: int, ibits: int) -> int:
    """Bytes of one pe-pair index word: SIMD indices of ``ibits`` bits, bit-packed, rounded up to a power
    of two up to 64 bytes or to a multiple of 64 beyond, so that every m_axi beat of 8 to 64 bytes holds
    whole words or whole beats make a word (the kernel's loader then runs plain bursts, no carry buffer:
    io.h ``load_elems``). E.g. 16 x 4 bits: 8 bytes; 192 x 4 bits: 96 -> 128 bytes."""
    raw = (int(simd) * int(ibits) + 7) // 8
    if raw <= 64:
        return 1 << (raw - 1).bit_length()
    return (raw + 63) // 64 * 64


def pe_pair_words(w: np.ndarray, pe: int, simd: int, bank: int, per_bank: int, p_max: int) -> bytes:
    """pe-pair bank-balanced ``(out, in)`` int8 -> the kernel's section: value words ``(nf, sf, p)`` of SIMD
    int8, zero padding to 64 bytes, then one bit-packed index word per PE pair, ``(nf, sf, q)`` (module
    docstring). Raises ProjectError for a folding that does not tile the matrix or an odd PE, InputError
    (from :func:`padless.sparse.weights.pack_pe_pair`) for a matrix that does not follow the pattern."""
    from ..sparse.weights import _pack_bits, _unpack_bits, index_bits, pack_pe_pair
    out, inp = w.shape
    nb = inp // bank
    if simd % p_max or nb % (simd // p_max) or out % pe or pe % 2:
        raise ProjectError(f"pe-pair SIMD {simd} must be a multiple of {p_max} slots covering whole banks "
                           f"({nb} banks per row), PE {pe} must be even and divide {out}")
    ib = index_bits(bank)
    vals, packed = pack_pe_pair(w, bank, per_bank)
    idx = _unpack_bits(packed, vals.size // 2, ib).reshape(out // 2, nb, per_bank)
    v = np.zeros((out, nb, p_max), np.int8)
    ix = np.zeros((out // 2, nb, p_max), np.int64)
    v[:, :, :per_bank] = vals
    ix[:, :, :per_bank] = idx
    sf = nb // (simd // p_max)
    vw = np.ascontiguousarray(v.reshape(out // pe, pe, sf, simd).transpose(0, 2, 1, 3)).tobytes()
    iw = ix.reshape(out // pe, pe // 2, sf, simd).transpose(0, 2, 1, 3).reshape(-1, simd)
    nbytes = pair_index_bytes(simd, ib)
    if simd * ib == 8 * nbytes:    # the words fill their bytes: one stream
        words = _pack_bits(iw.reshape(-1), ib).tobytes()
    else:
        packed = np.zeros((iw.shape[0], nbytes), np.uint8)
        for r, row in enumerate(iw):
            bits = _pack_bits(row, ib)
            packed[r, :bits.size] = bits
        words = packed.tobytes()
    return vw + bytes(_align(len(vw)) - len(vw)) + words


def _pairs(a, b) -> bytes:
    return np.stack([np.asarray(a, np.int64), np.asarray(b, np.int64)], axis=-1).astype("<i8").tobytes()


def _layer_sections(layer, folding: dict, sparse: dict | None, layer_idx: int) -> list[bytes]:
    """The byte strings of one layer's sections, in SECTIONS order."""
    out = []
    for mvu in MVUS:
        w, bias, m, shift = mvu_matrix(layer, mvu)
        pe, simd = folding[mvu]
        if sparse and sparse.get("rows", 1) == 2:
            out.append(pe_pair_words(w, pe, simd, sparse["bank"], sparse["per_bank"][layer_idx], sparse["p_max"]))
        elif sparse:
            out.append(sparse_words(w, pe, simd, sparse["bank"], sparse["per_bank"][layer_idx], sparse["p_max"]))
        else:
            out.append(dense_words(w, pe, simd))
        for name, arr in (("bias", bias), ("m", m), ("shift", shift)):
            if arr.min(initial=0) < -(1 << 31) or arr.max(initial=0) >= (1 << 31):
                raise ProjectError(f"layer {layer_idx} {mvu}: a {name} value does not fit int32 in weights.bin")
        rq = np.zeros((len(bias), 4), "<i4")
        rq[:, 0], rq[:, 1], rq[:, 2] = bias, m, shift
        out.append(rq.tobytes())
    H = len(np.asarray(layer.ln_attn_m))
    F = len(np.asarray(layer.act_m))
    full = lambda v, n: np.broadcast_to(np.asarray(v, np.int64), (n,))  # noqa: E731
    out.append(_pairs(full(layer.ctx_m, H), full(layer.ctx_shift, H)))
    out.append(_pairs(full(layer.res_attn_m, H), full(layer.res_attn_shift, H)))
    out.append(_pairs(layer.ln_attn_m, layer.ln_attn_b))
    act = np.zeros((F, 2), "<i8")          # {int64 m, int32 shift, int32 zero point} per channel
    act[:, 0] = full(layer.act_m, F)
    act[:, 1] = (full(layer.act_shift, F) & 0xFFFFFFFF) | (full(layer.act_zp, F) << 32)
    out.append(act.tobytes())
    out.append(_pairs(full(layer.res_ffn_m, H), full(layer.res_ffn_shift, H)))
    out.append(_pairs(layer.ln_ffn_m, layer.ln_ffn_b))
    out.append(_pairs(layer.gelu_slope, layer.gelu_icpt))
    sc = [layer.score_m, layer.score_shift, layer.ln_attn_shift, layer.ln_ffn_shift, layer.gelu_b, layer.gelu_c,
          layer.gelu_r, layer.gelu_one, ACT_KIND[layer.act], layer.gelu_lo, layer.gelu_k]
    out.append(np.asarray(sc, "<i8").tobytes())
    return out


def sparse_config(qe, weights_cfg: dict | None) -> dict | None:
    """``{"bank", "per_bank": [P per layer], "index_bits", "p_max", "rows"}`` for a bank-balanced sparsity
    config (``rows`` 2 for pattern pe-pair), else None."""
    if not weights_cfg or float(weights_cfg.get("sparsity", 0) or 0) <= 0 and not weights_cfg.get("layers"):
        return None
    from ..sparse.config import pattern_rows
    from ..sparse.weights import index_bits, kept_per_bank, layer_ratios
    bank = int(weights_cfg["bank"])
    ratios = layer_ratios(weights_cfg, qe.num_layers)
    per_bank = [kept_per_bank(bank, r) for r in ratios]
    return {"bank": bank, "per_bank": per_bank, "index_bits": index_bits(bank), "p_max": max(per_bank),
            "rows": pattern_rows(weights_cfg)}


def write_weights(qe, path, weights_cfg: dict | None, folding: dict, root=None) -> WeightsLayout:
    """Write ``qe`` (QuantizedEncoder) as ``weights.bin`` at ``path`` (layout in the module docstring).

    ``weights_cfg``: the manifest's ``sparsity["weights"]`` (bank-balanced words when it prunes);
    ``folding``: ``{mvu: (PE, SIMD)}`` of the kernel's MVUs; ``root``: the folder the file must stay in
    (:mod:`padless.fsutil`; default its own folder). Returns the layout. Raises WriteError (a link, an OS
    error). Raises ProjectError for a
    value outside its field or a folding that does not tile a matrix, InputError (from the sparse packer)
    for weights that are not bank-balanced at the configured ratio.
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
        for si, data in enumerate(_layer_sections(layer, folding, sparse, li)):
            offsets[li, si], nbytes[li, si] = pos, len(data)
            blobs.append((pos, data))
            pos = _align(pos + max(len(data), 1))
    total = pos
    bank = sparse["bank"] if sparse else 0
    ibits = sparse["index_bits"] if sparse else 0
    p_max = sparse["p_max"] if sparse else 0
    fold = [int(folding[k][0]) for k in MVUS] + [int(folding[k][1]) for k in MVUS]
    header = MAGIC + struct.pack("<10I8I2IQ", VERSION, L, m["hidden_size"], m["num_heads"], m["intermediate_size"],
                                 (1 | (2 if sparse.get("rows", 1) == 2 else 0)) if sparse else 0, bank, ibits, p_max, n_sec, *fold, 0, 0, total)
    buf = bytearray(total)
    buf[:len(header)] = header
    table = np.stack([offsets, nbytes], axis=-1).astype("<u8").tobytes()
    buf[HEADER_BYTES:HEADER_BYTES + len(table)] = table
    for off, data in blobs:
        buf[off:off + len(data)] = data
    from ..fsutil import write_bytes
    write_bytes(path, bytes(buf), root)   # atomic, never through a link
    return WeightsLayout(offsets=offsets, nbytes=nbytes, total_bytes=total, bank=bank, index_bits=ibits,
                         p_max=p_max, per_bank=list(sparse["per_bank"]) if sparse else [],
                         pattern="pe-pair" if sparse and sparse.get("rows", 1) == 2 else "row",
                         folding={k: tuple(int(x) for x in folding[k]) for k in MVUS})


def read_header(path) -> dict:
    """Parse and check the header and section table of a ``weights.bin``.

    Returns ``{"version", "num_layers", "hidden", "heads", "ffn", "sparse", "pattern" (row / pe-pair, None
    when dense), "bank", "index_bits", "p_max",
    "folding", "total_bytes", "offsets", "nbytes"}``. Raises ProjectError for a wrong magic, version or
    size, or a section table pointing outside the file.
    """
    data = Path(path).read_bytes()
    if len(data) < HEADER_BYTES or data[:8] != MAGIC:
        raise ProjectError(f"{path} is not a padless weights.bin (bad magic); recompile the project")
    f = struct.unpack_from("<10I8I2IQ", data, 8)
    ver, L, hid, heads, ffn, flags, bank, ibits, p_max, n_sec = f[:10]
    pe, simd, total = f[10:14], f[14:18], f[20]
    if ver != VERSION:
        raise ProjectError(f"{path} is weights.bin version {ver}; this padless reads version {VERSION}: recompile")
    if total != len(data) or n_sec != len(SECTIONS) or HEADER_BYTES + L * n_sec * 16 > len(data):
        raise ProjectError(f"{path} is truncated or inconsistent ({len(data)} bytes, header says {total})")
    table = np.frombuffer(data, "<u8", L * n_sec * 2, HEADER_BYTES).reshape(L, n_sec, 2).astype(np.int64)
    if np.any(table[..., 0] + table[..., 1] > len(data)):
        raise ProjectError(f"{path}: a section lies outside the file; recompile the project")
    return {"version": ver, "num_layers": L, "hidden": hid, "heads": heads, "ffn": ffn, "sparse": bool(flags & 1),
            "pattern": ("pe-pair" if flags & 2 else "row") if flags & 1 else None,
            "bank": bank, "index_bits": ibits, "p_max": p_max,
            "folding": {k: (pe[i], simd[i]) for i, k in enumerate(MVUS)}, "total_bytes": total,
            "offsets": table[..., 0], "nbytes": table[..., 1]}
