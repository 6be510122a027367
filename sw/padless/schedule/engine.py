"""The generated engine, described once in Python: its knobs, its loops, its memories.

``EngineConfig`` holds every number the generated ``config.h`` sets (sw/padless/codegen/hls.py writes it
from here), and the functions below restate, loop by loop, what the HLS kernel (hw/hls/top/
padless_encoder.cpp and hw/hls/include/padless/) does with them:

* :func:`process_cycles` -- the cycles each dataflow process spends on one sequence of one layer: every
  pipelined loop costs ``(trip - 1) * II + depth`` with the trip counts of the C++ loops and the depths
  they declare (``PADLESS_LOOP(name, DEPTH)``); II is 1 everywhere;
* :func:`resources` -- block RAM, UltraRAM, DSP slices, LUTs and flip-flops from the kernel's own arrays
  (weights, channel blocks, FIFOs) and unrolled operators (MACs, packed-product corrections, adder trees,
  requantizers, the i-GELU and PWL GELU, the residual sums of squares, the weight loader's carry
  buffers), with the board's limits, per dataflow process and placed on the board's SLRs
  (:mod:`padless.schedule.placement`).

The m_axi movers' waits on memory come from :mod:`padless.schedule.memory` (``EngineConfig.memory``; the
weight loader's narrow elements run at II = beat / element).

The timed C-simulation (``padless profile``) measures the same kernel cycle by cycle; the cost model
(:mod:`padless.schedule.cost`) and the DSE build on these formulas and are held to the measurement
(docs/performance-model.md, "Agreement with the timed csim").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..boards import Board, load_board
from ..errors import InputError, PadlessError
from ..codegen.weights import pair_index_bytes
from ..opcount import attention_k, check_model, check_sparsity
from ..quant.intops import GELU_SEGMENTS

__all__ = ["EngineConfig", "DEPTHS", "PROCESSES", "MVUS", "engine_config", "legal_pe", "legal_simd",
           "process_cycles", "resources", "channel_depths", "axi_bytes", "mac_per_dsp", "ResourceError",
           "ff_estimate", "lut_estimate", "dsp_count", "weight_loads", "carry_buffer"]

#: Declared pipeline depths of the kernel's loops (hw/hls/include/padless/*.h: D_*). Keep in sync: a test
#: reads them from the headers.
DEPTHS = {"D_MVU": 14, "D_READ": 3, "D_AXI": 3, "D_SEL_COPY": 4, "D_SEL_K4": 4,
          "D_SEL": 10, "D_QK": 16, "D_EXP": 60, "D_PV": 16, "D_LN": 64, "D_POL": 4, "D_POL_ACT": 8}
#: The dataflow processes of a layer region, in pipeline order (names as the csim reports them).
PROCESSES = ("p_desc", "p_loader", "p_res_loader", "p_qkv", "p_select", "p_attn_qk", "p_attn_exp", "p_attn_pv",
             "p_ctx", "p_out", "p_ln1", "p_up", "p_down", "p_ln2", "p_writer")
#: The four matrix-vector units: (name, input size key, output size key).
MVUS = ("qkv", "out", "up", "down")
#: Largest sequence-length-independent word of the internal row channels (elements).
MAX_VEC = 64


class ResourceError(PadlessError):
    """The generated kernel does not fit the board: the message gives needed and available resources."""


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


def _log2c(n: int) -> int:
    return 0 if n <= 1 else (int(n) - 1).bit_length()


def axi_bytes(board: Board) -> int:
    """m_axi data width of the activation and weight ports, bytes: the board's ``axi_data_bits`` (512 on
    Alveo HBM/DDR, 128 on Zynq UltraScale+ HP ports, 64 on Zynq-7000 HP ports)."""
    bits = getattr(board, "axi_data_bits", None) or (512 if board.flow == "vitis" else
                                                     (64 if board.dsp_type == "DSP48E1" else 128))
    return int(bits) // 8


def mac_per_dsp(board: Board, sparse_weights: bool, paired: bool = False) -> int:
    """int8 MACs one DSP slice does per cycle in the MVUs: 2 for dense weights, or sparse weights in pattern
    pe-pair (``paired``: rows 2i and 2i + 1 share their kept columns), on DSP48E2 (the kernel packs two
    products sharing an input, AMD WP486), else 1 (pattern row: bank-balanced rows share no input;
    DSP48E1 has a 25 x 18 multiplier)."""
    return 2 if board.dsp_type == "DSP48E2" and (not sparse_weights or paired) else 1


def legal_pe(out: int, vec: int, want: int, cap: int | None = None, min_pe: int = 1) -> int:
    """Largest power of two <= ``want`` (and <= ``cap``) dividing both ``out`` and the channel word ``vec``,
    at least ``min_pe`` (2 for pattern pe-pair: the two rows of a pair are the two lanes of one DSP)."""
    pe = _pow2_floor(min(max(int(min_pe), int(want)), vec, cap or vec))
    while pe > min_pe and (out % pe or vec % pe):
        pe //= 2
    return pe


def simd_options(inp: int, axi: int = 64) -> list[int]:
    """Dense SIMD values the kernel accepts for an input of ``inp``: divisors of ``inp`` that are a power of
    two up to the m_axi beat (``axi`` bytes) or a multiple of it, so that the weight loader moves whole
    words per cycle or whole beats per word (io.h, ``load_elems``)."""
    return [s for s in range(1, inp + 1) if inp % s == 0 and ((s <= axi and axi % s == 0) or s % axi == 0)]


def banks_per_cycle_options(nb: int, paired: bool) -> list[int]:
    """Banks a sparse MVU may cover a cycle (NBPC) for ``nb`` banks a row: powers of two dividing ``nb``
    (pattern row), or every divisor of ``nb`` (pattern pe-pair: e.g. all 24 banks of a 384-wide row, one
    synapse fold a neuron fold; the loader's words stay beat-aligned, :func:`pair_index_bytes`)."""
    if paired:
        return [n for n in range(1, nb + 1) if nb % n == 0]
    return [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256) if nb % n == 0]


def legal_simd(inp: int, want: int, sparse: dict | None = None, axi: int = 64) -> int:
    """Dense: the largest of :func:`simd_options` <= ``want``. Sparse (``{"bank", "p_max"[, "paired"]}``):
    ``NBPC * p_max`` with NBPC the largest of :func:`banks_per_cycle_options` with NBPC * p_max <=
    max(want, p_max)."""
    want = max(1, int(want))
    if sparse:
        nb, p = inp // sparse["bank"], sparse["p_max"]
        opts = banks_per_cycle_options(nb, bool(sparse.get("paired")))
        return max([n for n in opts if n * p <= max(want, p)] or [1]) * p
    return max([s for s in simd_options(inp, axi) if s <= want] or [1])


@dataclass
class EngineConfig:
    """Every knob of the generated kernel (config.h).

    Attributes:
        hidden, heads, head_dim, ffn, layers: model shape.
        max_seq: longest sequence of a call (PADLESS_MAX_SEQ; sizes the sequence blocks).
        max_tokens: most rows of one call (PADLESS_MAX_TOKENS; the host's activation buffer holds 2x).
        vec: elements per word of the internal row channels (PADLESS_VEC).
        axi: bytes per m_axi beat (PADLESS_AXI_BYTES).
        resident: every layer's weights on chip, loaded by one init call (else per layer, single-buffered).
        folding: ``{mvu: [PE, SIMD]}`` of qkv, out, up, down (SIMD: kept inputs per cycle when sparse).
        att_pe: kept keys per cycle of the exact attention (the head dim is unrolled: D lanes).
        sel_lanes: keys per cycle of the 4-bit estimate.
        seq_blocks: buffers of the Q/K/V and context blocks (PADLESS_SEQ_BLOCKS, 2 = ping-pong): QKV may be
            that many sequences ahead of selection, attention that many ahead of the output MVU.
        k_max: largest kept-key count of a sparse sequence (top-k slots); keep: keys kept per query for
            n = 0 .. max_seq.
        bank, p_max, index_bits, per_bank: bank-balanced weights (0 / [] when dense).
        pattern: ``"row"`` (every output row its own in-bank indices: one MAC per DSP) or ``"pe-pair"``
            (lanes 2q, 2q + 1 share one index word: two MACs per DSP48E2, half the index memory).
        act_bits: width of the FFN activation (FFN down's input, PADLESS_ACT_BITS): 8, or 16 under
            ``quant: {precision: {act: 16}}`` (FFN down then does one 16 x 8-bit MAC per DSP).
        act_kind: the FFN activation the kernel builds (PADLESS_ACT_KIND; :data:`ACT_KINDS`): ``"gelu-pwl"``
            (the 64-segment piecewise-linear integer GELU, ``quant: {gelu: pwl}``, the default), ``"gelu"``
            (I-BERT i-GELU, ``quant: {gelu: ibert}``) or ``"relu"`` (a ReLU model). Only that datapath is
            built: the I-BERT i-GELU's two int64 products cost 16 DSP48E2 a FFN-up lane.
        memory: the m_axi memory model of the five ports (:func:`padless.schedule.memory.memory_plan`:
            latency, outstanding requests, burst length, cycles a beat per bundle; empty: ideal memory).
        clock_MHz: kernel clock. weight_impl: ``{mvu: "uram" | "bram"}`` for each MVU's weight (and index)
            memories (PADLESS_WEIGHT_IMPL_<MVU>); block_impl: the same for the Q/K/V and context blocks;
            head_impl: ``"bram"`` or ``"lutram"`` for the per-head Q/K/V and kept-index blocks.
    """

    hidden: int
    heads: int
    head_dim: int
    ffn: int
    layers: int
    max_seq: int
    max_tokens: int
    vec: int
    axi: int
    resident: bool
    folding: dict
    att_pe: int
    sel_lanes: int
    k_max: int
    keep: list
    bank: int = 0
    p_max: int = 0
    index_bits: int = 0
    per_bank: list = field(default_factory=list)
    pattern: str = "row"
    clock_MHz: float = 200.0
    weight_impl: dict = field(default_factory=lambda: {m: "uram" for m in MVUS})
    block_impl: str = "bram"
    head_impl: str = "bram"
    seq_blocks: int = 2
    act_bits: int = 8
    act_kind: str = "gelu-pwl"
    memory: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)

    def layer_lengths(self, lengths, layer: int):
        """``(B,)`` rows each sequence of ``lengths`` has in layer ``layer`` under the kernel's cascade token
        reduction (``tokens``: ``{"layers", "keep"}``; :func:`padless.sparse.tokens.keep_tokens` at every
        selection point at or before ``layer``): the descriptors' lengths of that layer (tokens.h)."""
        import numpy as np
        lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
        t = self.tokens or {}
        if not t:
            return lens
        from ..sparse.tokens import keep_fraction
        p, q = keep_fraction(float(t["keep"]))
        for i in sorted(t["layers"]):
            if i <= layer:
                lens = np.maximum(1, -(-p * lens // q))
        return lens

    def token_stage(self, layer: int) -> tuple:
        """``(selection points at or before layer, accumulates received attention, selects after it)``."""
        sel = sorted((self.tokens or {}).get("layers") or [])
        policy = (self.tokens or {}).get("method") == "policy"   # nothing accumulates: the MLP decides
        return (sum(1 for i in sel if i <= layer), bool(sel) and layer < sel[-1] and not policy, (layer + 1) in sel)

    def __post_init__(self):
        if isinstance(self.weight_impl, str):   # one memory type for every MVU
            self.weight_impl = {m: self.weight_impl for m in MVUS}
        self.weight_impl = {m: str(self.weight_impl.get(m, "bram")) for m in MVUS}

    @property
    def sparse(self) -> bool:
        return self.bank > 0

    @property
    def paired(self) -> bool:
        """Sparse weights in pattern pe-pair (PADLESS_SPARSE_WEIGHTS 2)."""
        return self.sparse and self.pattern == "pe-pair"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EngineConfig":
        """Rebuild from :meth:`to_dict` (a manifest's ``hls.engine``)."""
        keys = cls.__dataclass_fields__
        return cls(**{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items() if k in keys})

    def shape(self, mvu: str) -> tuple[int, int]:
        """``(in, out)`` of an MVU."""
        H, F = self.hidden, self.ffn
        return {"qkv": (H, 3 * H), "out": (H, H), "up": (H, F), "down": (F, H)}[mvu]

    def packed(self, mvu: str, dsp_type: str = "DSP48E2") -> bool:
        """Whether the MVU does two MACs per DSP slice (WP486 packing): dense or pe-pair sparse int8 weights
        and int8 inputs on DSP48E2 (mvu.h fold_dense, fold_pair)."""
        return dsp_type == "DSP48E2" and (not self.sparse or self.paired) and (mvu != "down" or self.act_bits == 8)

    def mvu(self, mvu: str) -> dict:
        """The derived loop constants of one MVU (mvu_cfg in hw/hls/include/padless/mvu.h)."""
        inp, out = self.shape(mvu)
        pe, simd = self.folding[mvu]
        if self.sparse:
            nbpc = simd // self.p_max
            sf = (inp // self.bank) // nbpc
        else:
            sf = inp // simd
        nf = out // pe
        win = inp // self.vec
        return {"IN": inp, "OUT": out, "PE": pe, "SIMD": simd, "NF": nf, "SF": sf, "WIN": win,
                "ITER": max(nf * sf, win), "WORDS": nf * sf, "DEPTH": DEPTHS["D_MVU"] + _log2c(simd)}


def _vec_for(model: dict) -> int:
    v = MAX_VEC
    while v > 1 and (model["hidden_size"] % v or model["intermediate_size"] % v):
        v //= 2
    return v


def engine_config(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None, board: Board | str,
                  allocation: Mapping[str, Any] | None = None, max_seq: int | None = None,
                  max_tokens: int | None = None, resident: bool | None = None, act_bits: int = 8,
                  gelu: str = "pwl") -> EngineConfig:
    """The kernel configuration for ``model`` on ``board`` from a plan's allocation (``pe``/``simd`` per
    MVU stage and ``attn``, ``select_lanes``, ``resident``, ``wave_tokens``), rounded to what the kernel
    accepts: PE a power of two dividing the output size and the channel word, SIMD a power of two dividing
    the input size (sparse: whole banks a cycle), attention PE a power of two. ``act_bits``: the FFN
    activation's width (the project's ``quant.precision.act``, :func:`act_bits_of`); ``gelu``: the project's
    ``quant.gelu`` (``pwl`` or ``ibert``, :func:`gelu_of`), which with the model's ``activation`` sets the one
    FFN activation the kernel builds (:func:`act_kind`).

    Raises InputError for a model the engine cannot run (head count not dividing the hidden size, no
    channel word dividing both the hidden and FFN sizes).
    """
    board = load_board(board)
    dims = check_model(model)
    sp = check_sparsity(sparsity)
    H, F, h, L = dims["H"], dims["F"], dims["h"], dims["L"]
    vec = _vec_for(model)
    axi = min(axi_bytes(board), vec)
    if vec < 4 or H % axi:
        raise InputError(f"the engine needs hidden ({H}) and FFN ({F}) sizes divisible by a channel word of "
                         f"4 to {MAX_VEC} elements and by the m_axi width {axi} bytes")
    alloc = dict(allocation or {})
    pe_w, simd_w = alloc.get("pe") or {}, alloc.get("simd") or {}
    stage = {"qkv": "qkv", "out": "out", "up": "ffn_up", "down": "ffn_down"}
    mseq = int(max_seq or model.get("max_seq_length") or model.get("max_positions", 512) or 512)
    wcfg = sp["weights"]
    sparse_info = None
    per_bank, bank, ibits, p_max, pattern = [], 0, 0, 0, "row"
    if wcfg and (float(wcfg.get("sparsity", 0) or 0) > 0 or wcfg.get("layers")):
        pattern = str(wcfg.get("pattern", "row"))
        from ..sparse.weights import index_bits, kept_per_bank, layer_ratios
        bank = int(wcfg["bank"])
        per_bank = [kept_per_bank(bank, r) for r in layer_ratios(wcfg, L)]
        p_max, ibits = max(per_bank), index_bits(bank)
        sparse_info = {"bank": bank, "p_max": p_max, "paired": pattern == "pe-pair"}
    folding = {}
    for m in MVUS:
        inp, out = {"qkv": (H, 3 * H), "out": (H, H), "up": (H, F), "down": (F, H)}[m]
        # qkv writes whole head rows: at most two D-wide words a fold (one per block port)
        pe = legal_pe(H if m == "qkv" else out, vec, pe_w.get(stage[m], 16), 2 * (H // h) if m == "qkv" else None,
                      min_pe=2 if pattern == "pe-pair" else 1)
        simd = legal_simd(inp, simd_w.get(stage[m], 16), sparse_info, axi)
        folding[m] = [pe, simd]
    att = sp["attention"]
    keep = [0] + [attention_k(n, att) for n in range(1, mseq + 1)]
    k_max = max([k for n, k in enumerate(keep) if 0 < k < n] or [1])
    att_pe = _pow2_floor(int((alloc.get("pe") or {}).get("attn", 2) or 2))
    res = bool(alloc.get("resident", True) if resident is None else resident)
    wave = int(max_tokens or alloc.get("wave_tokens") or 32768)
    clock = float(alloc.get("clock_MHz") or board.clock_MHz)
    from .memory import memory_plan
    mem = memory_plan(board, clock, axi)
    return EngineConfig(hidden=H, heads=h, head_dim=H // h, ffn=F, layers=L, max_seq=mseq, memory=mem,
                        max_tokens=max(mseq, min(wave, 1 << 20)), vec=vec, axi=axi, resident=res, folding=folding,
                        att_pe=max(1, att_pe), sel_lanes=max(1, int(alloc.get("select_lanes", 2) or 2)),
                        k_max=int(k_max), keep=keep, bank=bank, p_max=p_max, index_bits=ibits, per_bank=per_bank,
                        pattern=pattern,
                        clock_MHz=clock, weight_impl="uram" if board.uram > 0 else "bram", act_bits=int(act_bits),
                        act_kind=act_kind(model, gelu),
                        tokens=kernel_tokens((sparsity or {}).get("tokens"), L))


def kernel_tokens(tokens: Mapping[str, Any] | None, num_layers: int) -> dict:
    """The token reduction the kernel runs (``EngineConfig.tokens``): ``{"layers", "keep"}`` for the cascade
    with keep < 1, ``{"layers", "keep", "method": "policy"}`` for the learned policy (``keep``: its calibrated
    kept fraction, what the cycle model and the DSE expect), else ``{}`` (dense)."""
    t = dict(tokens or {})
    sel = sorted(set(int(i) for i in (t.get("layers") or []) if 1 <= int(i) < int(num_layers)))
    if t.get("method") == "policy" and sel:
        return {"layers": sel, "keep": float(t.get("keep", 1.0)), "method": "policy"}
    if not sel or float(t.get("keep", 1.0)) >= 1:
        return {}
    return {"layers": sel, "keep": float(t["keep"])}


def policy_pe(cfg: EngineConfig) -> int:
    """Policy outputs the kernel's tr_policy computes a cycle (config.h PADLESS_TR_POL_PE, each x VEC inputs):
    the smallest power of two whose per-row cycles ``(32 / PE) (H / VEC + 1) + H / VEC + D_POL + D_POL_ACT``
    (tokens.h) stay within the slowest MVU's cycles a row, so the policy does not bind a selection layer (32 at
    most: then a row still costs its pipeline depths, which bind only tiny models)."""
    from ..sparse.tokens import POLICY_WIDTH
    wpr = cfg.hidden // cfg.vec
    target = max(cfg.mvu(m)["ITER"] for m in MVUS)
    pe = 1
    while pe < POLICY_WIDTH and (POLICY_WIDTH // pe) * (wpr + 1) + wpr + DEPTHS["D_POL"] + DEPTHS["D_POL_ACT"] > target:
        pe *= 2
    return pe


def policy_on(cfg: EngineConfig) -> bool:
    """The kernel runs the learned token policy (tokens.h tr_policy, PADLESS_TR_POLICY)."""
    return bool(cfg.tokens) and cfg.tokens.get("method") == "policy"


def act_bits_of(manifest_or_quant: Mapping[str, Any] | None) -> int:
    """The FFN activation width of a project (a manifest, or its ``quant`` section): 8 unless
    ``quant.precision.act`` says 16."""
    q = manifest_or_quant or {}
    q = q.get("quant", q) if isinstance(q.get("quant", None), Mapping) else q
    return int(((q.get("precision") or {}).get("act")) or 8)


#: FFN activation kinds of the kernel: EngineConfig.act_kind -> PADLESS_ACT_KIND (intops.h ActKind, the
#: ``act_kind`` scalar of weights.bin: codegen/weights.py ACT_KIND).
ACT_KINDS = {"relu": 0, "gelu": 1, "gelu-pwl": 2}


def gelu_of(manifest_or_quant: Mapping[str, Any] | None) -> str:
    """The integer GELU of a project (a manifest, or its ``quant`` section): ``quant.gelu``, ``"pwl"``
    unless it says ``"ibert"``."""
    q = manifest_or_quant or {}
    q = q.get("quant", q) if isinstance(q.get("quant", None), Mapping) else q
    return str(q.get("gelu") or "pwl")


def act_kind(model: Mapping[str, Any], gelu: str = "pwl") -> str:
    """The FFN activation the kernel builds (:data:`ACT_KINDS`) for ``model`` (its ``activation``: ``gelu``
    or ``relu``) quantized with ``gelu`` (``quant.gelu``: ``pwl`` or ``ibert``); the quantizer makes the
    same choice per layer (padless.quant.quantize: ``gelu-pwl``, ``gelu`` or ``relu``).

    Raises InputError for a ``gelu`` other than pwl / ibert."""
    if gelu not in ("pwl", "ibert"):
        raise InputError(f"quant.gelu {gelu!r} is not pwl or ibert")
    if str(model.get("activation", "gelu")) == "relu":
        return "relu"
    return "gelu-pwl" if gelu == "pwl" else "gelu"


def place_memories(cfg: EngineConfig, board: Board, memory_cap: float = 1.0,
                   lut_cap: float = 0.8) -> EngineConfig | None:
    """Choose UltraRAM or block RAM for each MVU's weight memories and for the sequence blocks, and block
    RAM or LUTRAM for the per-head blocks (the kernel's BIND_STORAGE knobs), so that the memories fit
    ``memory_cap`` of the board's block RAM and UltraRAM and the LUTs ``lut_cap`` of its LUTs, keeping the
    fullest of the three as empty as possible (every one of the 2^6 assignments is tried). Returns a copy
    of ``cfg`` with ``weight_impl``/``block_impl``/``head_impl`` set, or None when no assignment fits."""
    import itertools
    mems = memories(_replace(cfg, weight_impl="bram", block_impl="bram", head_impl="bram"))
    groups = list(MVUS) + ["blocks"]
    heads_b = sum(bram36_for(m["width_bits"], m["depth"]) * m["copies"] for m in mems if m["name"] in HEAD_BLOCKS)
    heads_lut = sum(math.ceil(m["width_bits"] * m["depth"] / 64) * m["copies"] for m in mems if m["name"] in HEAD_BLOCKS)

    def group_of(name: str) -> str | None:
        if name.split("_")[0] in ("w", "i") and name.split("_", 1)[1] in MVUS:
            return name.split("_", 1)[1]
        return "blocks" if name in ("q_blk", "k_blk", "v_blk", "ctx_blk") else None
    cost = {g: [0, 0] for g in groups}   # [bram if bram, uram if uram]
    rest_bram = 0
    for m in mems:
        small = m["impl"] == "auto" and m["width_bits"] * m["depth"] <= LUTRAM_BITS
        g = group_of(m["name"])
        if small or m["impl"] == "lutram" or m["name"] in HEAD_BLOCKS:
            continue
        b = bram36_for(m["width_bits"], m["depth"]) * m["copies"]
        if g is None:
            rest_bram += b
        else:
            cost[g][0] += b
            cost[g][1] += uram_for(m["width_bits"], m["depth"]) * m["copies"]
    rest_bram += sum(_fifo(f["width_bits"], f["depth"])["bram"] for f in _fifos(cfg))
    bl, ul = memory_cap * board.bram_36k, memory_cap * board.uram
    lut_base = sum(lut_estimate(cfg, board.dsp_type).values()) + sum(
        math.ceil(m["width_bits"] * m["depth"] / 64) * m["copies"] for m in mems
        if m["name"] not in HEAD_BLOCKS and (m["impl"] == "lutram" or (m["impl"] == "auto" and
                                                                      m["width_bits"] * m["depth"] <= LUTRAM_BITS)))
    best = None
    for combo in itertools.product(("bram", "uram") if board.uram > 0 else ("bram",), repeat=len(groups)):
        b0 = rest_bram + sum(cost[g][0] for g, i in zip(groups, combo) if i == "bram")
        u = sum(cost[g][1] for g, i in zip(groups, combo) if i == "uram")
        for heads in ("bram", "lutram"):
            b = b0 + (heads_b if heads == "bram" else 0)
            lut = lut_base + (heads_lut if heads == "lutram" else 0)
            if b > bl or u > ul or lut > lut_cap * board.lut:
                continue
            score = max(b / max(board.bram_36k, 1), u / max(board.uram, 1) if board.uram else 0.0,
                        lut / max(board.lut, 1))
            if best is None or score < best[0]:
                best = (score, combo, heads)
    if best is None:
        return None
    combo = dict(zip(groups, best[1]))
    return _replace(cfg, weight_impl={m: combo[m] for m in MVUS}, block_impl=combo["blocks"], head_impl=best[2])


def _replace(cfg: EngineConfig, **kw) -> EngineConfig:
    d = dict(cfg.__dict__)
    d["folding"] = {k: list(v) for k, v in cfg.folding.items()}
    d["weight_impl"] = dict(cfg.weight_impl)
    d["memory"] = dict(cfg.memory or {})
    d.update(kw)
    return EngineConfig(**d)


# ---- cycles ---------------------------------------------------------------------------------------------
def _loop(trip: int, depth: int) -> int:
    """A pipelined loop at II = 1: (trip - 1) + depth cycles, 0 when it does not run."""
    return trip - 1 + depth if trip > 0 else 0


def process_cycles(cfg: EngineConfig, t: int, k: int | None = None) -> dict:
    """Busy cycles of every dataflow process for one sequence of ``t`` tokens in one layer (``k`` keys
    kept per query; default from the keep table), loop by loop as the kernel runs them. The m_axi movers
    (loader, res_loader, writer) run one burst loop a sequence; the cycles they wait on memory are stalls,
    not busy cycles (:mod:`padless.schedule.memory`; :mod:`padless.schedule.cost` places them in time).

    Returns ``{process: cycles}`` for :data:`PROCESSES`.
    """
    if t < 1:
        raise InputError(f"a sequence needs at least one token, got {t}")
    if k is None:
        k = cfg.keep[min(t, cfg.max_seq)]
    D = DEPTHS
    h = cfg.heads
    sparse = k < t
    kk = k if sparse else t
    kf = -(-kk // cfg.att_pe)
    nc = -(-t // cfg.sel_lanes)
    beats = t * cfg.hidden // cfg.axi
    mover = _loop(beats, D["D_AXI"])   # a burst loop a sequence (io.h); memory stalls are not busy cycles
    out = {"p_desc": 1, "p_loader": mover, "p_res_loader": mover, "p_writer": mover}

    def mvu(name):
        m = cfg.mvu(name)
        return _loop(m["WIN"], D["D_READ"]) + _loop(t * m["ITER"], m["DEPTH"])
    out["p_qkv"] = mvu("qkv")
    sel = h * _loop(t, D["D_SEL_COPY"])
    if sparse:
        sel += h * (_loop(t, D["D_SEL_K4"]) + _loop(t * nc, D["D_SEL"]))
    out["p_select"] = sel
    out["p_attn_qk"] = h * _loop(t * kf, D["D_QK"])
    out["p_attn_exp"] = h * _loop(t * kf, D["D_EXP"])
    out["p_attn_pv"] = h * _loop(t * kf, D["D_PV"])
    out["p_ctx"] = _loop(t * (cfg.hidden // min(cfg.head_dim, cfg.vec)), D["D_READ"])
    out["p_out"] = mvu("out")
    out["p_ln1"] = _loop(t * (cfg.hidden // cfg.folding["out"][0]), D["D_LN"])
    out["p_up"] = mvu("up")
    out["p_down"] = mvu("down")
    out["p_ln2"] = _loop(t * (cfg.hidden // cfg.folding["down"][0]), D["D_LN"])
    return out


def layer_fixed_cycles(cfg: EngineConfig, num_seqs: int) -> dict:
    """Once-per-call and once-per-layer cycles of the m_axi movers: ``{"desc", "weight_load"}``: the
    descriptor check's burst loop (check_call, before the layers) and a streamed engine's weight load
    before each layer's region (0 when resident), both through the memory model of ``cfg.memory``."""
    from .memory import port, read_burst
    D = DEPTHS["D_AXI"]
    return {"desc": read_burst(num_seqs, port(cfg.memory, "gmem3")) + D,
            "weight_load": 0 if cfg.resident else weight_load_cycles(cfg)}


def weight_load_cycles(cfg: EngineConfig) -> int:
    """Cycles of ``load_layer`` for one layer: every weights.bin section read by ``load_elems`` one after
    another, each through the weight port's memory model (``cfg.memory`` gmem4). Elements that tile a beat
    run one burst loop over the section's beats (II = beat / element for elements narrower than a beat);
    other sizes (sparse packed words of odd SIMD) one element a cycle with single-beat reads."""
    from .memory import port, read_burst, single_reads
    D = DEPTHS["D_AXI"]
    P = port(cfg.memory, "gmem4")
    A = cfg.axi
    t = 0

    def elems(t0: int, n: int, e: int) -> int:   # load_elems of n elements of e bytes from cycle t0: its end
        beats = -(-n * e // A)
        if A % e == 0 or e % A == 0:
            return read_burst(beats, P, t0, ii=max(1, A // e)) + D
        trip = n if e <= A else beats
        last, extra = single_reads(beats, P, t0, ii=max(1, trip // max(1, beats)))
        return max(t0 + trip - 1, last) + extra + D
    for m in MVUS:
        mm = cfg.mvu(m)
        if cfg.paired:   # value words, then one bit-packed index word per PE pair
            t = elems(t, mm["WORDS"] * mm["PE"], mm["SIMD"])
            t = elems(t, mm["WORDS"] * (mm["PE"] // 2), pair_index_bytes(mm["SIMD"], cfg.index_bits))
        else:
            t = elems(t, mm["WORDS"] * mm["PE"], (2 if cfg.sparse else 1) * mm["SIMD"])
        t = elems(t, mm["OUT"], 16)  # rq records {bias, m, shift} in 16 bytes
    H, F = cfg.hidden, cfg.ffn
    for n in (H, H, H, F, H, H, 64):   # ctx, res_attn, ln_attn, act, res_ffn, ln_ffn, gelu: 16-byte pairs
        t = elems(t, n, 16)
    t = elems(t, 11, 8)                # scalars, int64 each
    return t


# ---- resources -------------------------------------------------------------------------------------------
_BRAM_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))


def bram36_for(width_bits: int, depth: int) -> int:
    """RAMB36 tiles of one memory ``width_bits`` wide and ``depth`` deep (best aspect ratio)."""
    if width_bits <= 0 or depth <= 0:
        return 0
    return min(math.ceil(width_bits / w) * math.ceil(depth / d) for w, d in _BRAM_SHAPES)


def uram_for(width_bits: int, depth: int) -> int:
    """URAM288 tiles (72 bits x 4096) of one memory."""
    if width_bits <= 0 or depth <= 0:
        return 0
    return math.ceil(width_bits / 72) * math.ceil(depth / 4096)


def dsp_mul(a_bits: int, b_bits: int, dsp_type: str = "DSP48E2") -> int:
    """DSP slices of one a x b-bit signed multiplier (27 x 18 DSP48E2, 25 x 18 DSP48E1 tiles)."""
    pa = 27 if dsp_type == "DSP48E2" else 25
    return math.ceil(a_bits / (pa - 1)) * math.ceil(b_bits / 17)


def channel_depths(cfg: EngineConfig) -> dict:
    """FIFO depths of the region's channels (tokens), as padless_encoder.cpp declares them."""
    H, F, vec = cfg.hidden, cfg.ffn, cfg.vec
    kf_max = -(-cfg.max_seq // cfg.att_pe)
    return {"desc": 16, "desc_res": 32, "row": 2 * (H // vec) + 2, "ffn_row": 2 * (F // vec) + 2,
            "fwd": 3 * (H // vec) + 2, "score": 2 * kf_max + 4, "e": 2 * kf_max + DEPTHS["D_EXP"] + 4,
            "rowstat": 4, "y1": 2 * (H // cfg.folding["out"][0]) + 4, "y2": 2 * (H // cfg.folding["down"][0]) + 4}


def _fifo(width_bits: int, depth: int) -> dict:
    """A FIFO's storage: shift registers (LUTs) up to 32 deep, block RAM beyond."""
    if depth <= 32:
        return {"bram": 0, "lut": width_bits * math.ceil(depth / 32)}
    return {"bram": bram36_for(width_bits, depth), "lut": 0}


def memories(cfg: EngineConfig) -> list[dict]:
    """Every on-chip memory of the kernel: ``{"name", "width_bits", "depth", "copies", "impl"}`` (copies:
    banks x ping-pong buffers), from the arrays the C++ declares."""
    L = cfg.layers if cfg.resident else 1
    mems = []
    for m in MVUS:
        mm = cfg.mvu(m)
        # lanes in pairs on the two ports of one memory (mvu.h: WBANKS memories, WDEPTH deep)
        pairs = mm["PE"] // 2 if mm["PE"] >= 2 else 1
        depth = (2 if mm["PE"] >= 2 else 1) * L * mm["WORDS"]
        mems.append({"name": f"w_{m}", "width_bits": mm["SIMD"] * 8, "depth": depth, "copies": pairs,
                     "impl": cfg.weight_impl[m]})
        if cfg.sparse:
            # pe-pair: one index word per lane pair and word (REGION deep, one port); row: one per lane
            mems.append({"name": f"i_{m}", "width_bits": mm["SIMD"] * cfg.index_bits,
                         "depth": L * mm["WORDS"] if cfg.paired else depth,
                         "copies": pairs, "impl": cfg.weight_impl[m]})
        mems.append(_table(f"rq_{m}", 72, L * mm["NF"], mm["PE"]))
    for name, mvu in (("res_rq_out", "out"), ("ln_param_1", "out"), ("act_rq_up", "up"), ("res_rq_down", "down"),
                      ("ln_param_2", "down")):
        mm = cfg.mvu(mvu)
        # ln_param_t {int32 m; int64 b}, res_rq_t {uint32 m; uint8 shift}, act_rq_t {uint32 m; uint8 shift; int8 zp}
        width = 96 if name.startswith("ln_param") else 48 if name.startswith("act_rq") else 40
        mems.append(_table(name, width, L * mm["NF"], mm["PE"]))
    mems.append(_table("ctx_rq", 40, L * cfg.heads, cfg.head_dim))
    # the GELU table, one copy per FFN-up lane (padless_encoder.cpp gelu_tab[PE_UP][LBUF * GELU_SEGMENTS],
    # gelu_seg_t {int32 slope; int64 icpt} packed to 96 bits, bound to LUTRAM): each lane reads its own bank;
    # one entry in a kernel built for i-GELU or ReLU (GELU_TAB_DEPTH: never read there)
    mems.append({"name": "gelu_tab", "width_bits": 96, "depth": L * GELU_SEGMENTS if cfg.act_kind == "gelu-pwl" else 1,
                 "copies": cfg.folding["up"][0], "impl": "lutram"})
    d, S = cfg.head_dim, cfg.max_seq
    for name in ("q_blk", "k_blk", "v_blk", "ctx_blk"):  # head-row words [S * heads][d], seq_blocks buffers
        mems.append({"name": name, "width_bits": 8 * d, "depth": S * cfg.heads, "copies": cfg.seq_blocks,
                     "impl": cfg.block_impl})
    # per-head blocks (PADLESS_HEAD_IMPL), two buffers each, K and V banked by ATT_PE
    hi = cfg.head_impl
    mems.append({"name": "qh_blk", "width_bits": 8 * d, "depth": S, "copies": 2, "impl": hi})
    mems.append({"name": "kh_blk", "width_bits": 8 * d, "depth": S, "copies": 2 * cfg.att_pe, "impl": hi})
    mems.append({"name": "vh_blk", "width_bits": 8 * d, "depth": S, "copies": 2 * cfg.att_pe, "impl": hi})
    kbits = 8 if S <= 256 else 16   # kidx_t (PADLESS_KIDX_BITS)
    for name in ("ixq_blk", "ixv_blk"):   # K_MAX kept-key indices a query
        mems.append({"name": name, "width_bits": cfg.k_max * kbits, "depth": S, "copies": 2, "impl": hi})
    # the 4-bit key estimates, held as int8 (attention.h k4word_t), LANES banks
    mems.append({"name": "k4", "width_bits": 8 * d, "depth": math.ceil(S / cfg.sel_lanes), "copies": cfg.sel_lanes,
                 "impl": "lutram"})
    if policy_on(cfg):   # the learned policy (tokens.h tr_policy): the original positions, the loader's
        # per-sequence counts, the policy's first layer (a ROM per point, PE x VEC banks read a cycle)
        mems.append({"name": "tr_pos", "width_bits": 16, "depth": cfg.max_tokens, "copies": 1, "impl": "bram"})
        mems.append({"name": "ld_cnt", "width_bits": 16, "depth": cfg.max_tokens, "copies": 1, "impl": "bram"})
        from ..sparse.tokens import POLICY_WIDTH
        ppe = policy_pe(cfg)
        depth = len(cfg.tokens["layers"]) * POLICY_WIDTH * cfg.hidden // (ppe * cfg.vec)
        mems.append({"name": "tr_pol_w1", "width_bits": 8, "depth": depth, "copies": ppe * cfg.vec,
                     "impl": "lutram" if 8 * depth <= LUTRAM_BITS else "bram"})
    elif cfg.tokens:   # token reduction (tokens.h): every row's importance and original position (a call's rows),
        # the received-attention accumulators (RCV_COPIES x ATT_PE), token_select's row buffer (4 banks)
        mems.append({"name": "tr_imp", "width_bits": 32, "depth": cfg.max_tokens, "copies": 1, "impl": "bram"})
        mems.append({"name": "tr_pos", "width_bits": 16, "depth": cfg.max_tokens, "copies": 1, "impl": "bram"})
        mems.append({"name": "rcv", "width_bits": 32, "depth": S, "copies": 4 * cfg.att_pe, "impl": rcv_impl(cfg)})
        mems.append({"name": "tsel_loc", "width_bits": 32, "depth": math.ceil(S / 4), "copies": 4, "impl": "bram"})
    return mems


def rcv_impl(cfg: EngineConfig) -> str:
    """Storage of one received-attention accumulator bank (config.h PADLESS_TR_RCV_IMPL): 4 x ATT_PE banks of
    max_seq x 32 bits, each read-modified-written every cycle; LUTRAM when a bank holds at most 8 Kb
    (max_seq <= 256: 128 LUTs a bank instead of a block RAM each), else block RAM."""
    return "lutram" if 32 * cfg.max_seq <= 4 * LUTRAM_BITS else "bram"


#: The per-head blocks (select -> attention), placed together in block RAM or LUTRAM.
HEAD_BLOCKS = ("qh_blk", "kh_blk", "vh_blk", "ixq_blk", "ixv_blk")
#: The per-channel parameter tables besides each MVU's ``rq_<mvu>``, by their names in the kernel
#: (padless_encoder.cpp; config.h binds each with ``PADLESS_TIMPL_<NAME>``).
PARAM_TABLES = ("res_rq_out", "ln_param_1", "act_rq_up", "res_rq_down", "ln_param_2", "ctx_rq")
#: Arrays of at most this many bits a bank go to LUTRAM (the per-channel requantization tables; Vitis
#: maps small unbound arrays the same way).
LUTRAM_BITS = 2048


def _table(name: str, width_bits: int, depth: int, banks: int) -> dict:
    """A per-channel parameter table of ``banks`` banks: LUTRAM when a bank holds at most
    :data:`LUTRAM_BITS`, else block RAM (the kernel's PADLESS_TIMPL_<NAME> binding, config.h)."""
    return {"name": name, "width_bits": width_bits, "depth": depth, "copies": banks,
            "impl": "lutram" if width_bits * depth <= LUTRAM_BITS else "bram"}


def table_impls(cfg: EngineConfig) -> dict:
    """``{table: "lutram" | "bram"}`` of the per-channel tables (config.h PADLESS_TIMPL_<NAME>)."""
    return {m["name"]: m["impl"] for m in memories(cfg)
            if m["name"] in PARAM_TABLES or m["name"].startswith("rq_")}


def _fifos(cfg: EngineConfig) -> list[dict]:
    dep = channel_depths(cfg)
    H, vec, ape = cfg.hidden, cfg.vec, cfg.att_pe
    pe_o, pe_d = cfg.folding["out"][0], cfg.folding["down"][0]
    rows = [("d_src", 128, dep["desc"]), ("d_qkv", 128, dep["desc"]), ("d_res", 128, dep["desc_res"])]
    rows += [(f"d_{n}", 128, dep["desc"]) for n in ("sel", "att", "exp", "pv", "ctx", "out", "ln1", "up", "down",
                                                     "ln2", "wr")]
    rows += [("x_rows", 8 * vec, dep["row"]), ("res_rows", 8 * vec, dep["row"]), ("ctx_rows", 8 * vec, dep["row"]),
             ("h_rows", 8 * vec, dep["row"]), ("out_rows", 8 * vec, dep["row"]),
             ("a_rows", cfg.act_bits * vec, dep["ffn_row"]), ("h_fwd", 8 * vec, dep["fwd"]),
             ("y_attn", 32 * pe_o, dep["y1"]), ("y_ffn", 32 * pe_d, dep["y2"]), ("st_attn", 128, dep["rowstat"]),
             ("st_ffn", 128, dep["rowstat"]), ("scores", 32 * ape, dep["score"]), ("row_max", 32, 4),
             ("exps", 32 * ape, dep["e"]), ("factors", 32, 4)]
    return [{"name": n, "width_bits": w, "depth": d} for n, w, d in rows]


def dsp_mul_trunc(a_bits: int, b_bits: int, out_bits: int, dsp_type: str = "DSP48E2") -> int:
    """DSP slices of an a x b-bit multiplier of which only the low ``out_bits`` of the product are kept
    (C ``int64_t * int64_t``): the 26 x 17-bit partial-product tiles of :func:`dsp_mul` whose least
    significant bit lies below ``out_bits``. 64 x 64 -> 64 bits: 8 DSP48E2 (a 3 x 4 tile grid, 8 tiles
    below bit 64)."""
    pa = 26 if dsp_type == "DSP48E2" else 24
    return sum(1 for i in range(0, a_bits, pa) for j in range(0, b_bits, 17) if i + j < out_bits)


def dsp_count(cfg: EngineConfig, dsp_type: str = "DSP48E2") -> dict:
    """DSP slices per unit, as the kernel's unrolled operators use them (docs/hls.md, "DSP budget";
    docs/performance-model.md, "Resources"). Keys: the MVUs (``qkv``, ``out``, ``up``, ``down``), ``ln1``,
    ``ln2``, ``attn_qk``, ``attn_exp``, ``attn_pv``, ``select``, and ``policy`` when the kernel runs the
    learned token policy (:func:`policy_pe` x VEC int8 products, per output a 32 x 31 and an 18 x 31
    requantizer, the GELU's 17 x 16 product and the 8 x 8 w2 product). Per output lane (PE) of an MVU:

    * MACs: SIMD x ceil(PE / 2) packed (WP486: dense, or sparse in pattern pe-pair) or SIMD x PE;
    * the requantizer's (acc + bias) x m multiply, :func:`dsp_mul` of the declared widths;
    * ``out`` / ``down``: the residual's requantization (9 x 32) and the LayerNorm sum of squares
      ``(int64_t)y * y`` of the residual sum (layer.h res_sink, int32 x int32: 4 DSP48E2);
    * ``up``: the piecewise-linear GELU's 17 x 16 product, the activation requantizer (35 x 32) and the
      I-BERT i-GELU's two ``int64_t`` products ``t * t`` and ``x * (erf + one)`` (intops.h i_gelu,
      :func:`dsp_mul_trunc` 64 x 64 -> 64: 8 DSP48E2 each): only the kind the kernel builds
      (``cfg.act_kind``, PADLESS_ACT_KIND; ReLU: neither).
    """
    out = {}
    for m in MVUS:
        mm = cfg.mvu(m)
        macs = (math.ceil(mm["PE"] / 2) if cfg.packed(m, dsp_type) else mm["PE"]) * mm["SIMD"]
        wide = m == "down" and cfg.act_bits != 8     # 41-bit accumulator + bias into the requantizer
        rq = mm["PE"] * dsp_mul(41 if wide else 33, 32, dsp_type)
        extra = 0
        if m in ("out", "down"):
            extra = mm["PE"] * (dsp_mul(9, 32, dsp_type) + dsp_mul(32, 32, dsp_type))  # residual rq, y^2
        if m == "up":
            gelu = {"gelu-pwl": dsp_mul(17, 16, dsp_type),                     # PWL GELU slope x input
                    "gelu": 2 * dsp_mul_trunc(64, 64, 64, dsp_type)}.get(cfg.act_kind, 0)   # i-GELU t*t, x*(erf+1)
            extra = mm["PE"] * (gelu + dsp_mul(35, 32, dsp_type))                      # + the act requantizer
        out[m] = macs + rq + extra
    for ln, mvu in (("ln1", "out"), ("ln2", "down")):
        pe = cfg.folding[mvu][0]
        out[ln] = pe * (dsp_mul(25, 32, dsp_type) + dsp_mul(34, 25, dsp_type)) + 6
    ape, d = cfg.att_pe, cfg.head_dim
    qk = (math.ceil(ape / 2) if dsp_type == "DSP48E2" else ape) * d
    out["attn_qk"] = qk + ape * dsp_mul(24, 32, dsp_type)
    out["attn_exp"] = ape + ape * dsp_mul(22, 24, dsp_type)
    out["attn_pv"] = ape * d + d * dsp_mul(28, 32, dsp_type)
    out["select"] = 0
    if policy_on(cfg):   # tokens.h tr_policy: PE x VEC int8 products; per output the requantizers, the GELU line, w2
        ppe = policy_pe(cfg)
        out["policy"] = ppe * cfg.vec + ppe * (dsp_mul(32, 31, dsp_type) + dsp_mul(17, 16, dsp_type)
                                               + dsp_mul(18, 31, dsp_type) + 1)
    return out


def adder_tree_luts(n: int, width: int) -> int:
    """LUTs of a balanced adder tree summing ``n`` operands of ``width`` bits: level l has ceil(n / 2^l)
    adders of width + l bits, one LUT6 per adder bit (UltraScale+ CARRY8: one LUT a bit, UG574)."""
    total, k, level = 0, int(n), 1
    while k > 1:
        total += (k // 2) * (width + level)
        k = -(-k // 2)
        level += 1
    return total


def mux_luts(inputs: int, bits: int) -> int:
    """LUTs of a ``inputs``:1 multiplexer ``bits`` wide: a LUT6 is a 4:1 multiplexer, and F7/F8 muxes
    combine four of them into 16:1 per slice (UG574, "Multiplexers"), so ceil(inputs / 4) LUTs a bit."""
    return 0 if inputs <= 1 else int(bits) * math.ceil(int(inputs) / 4)


#: Whether the kernel loads elements that tile an m_axi beat (E divides AXI or AXI divides E: dense weight
#: words, 16-byte per-channel records, 8-byte scalars) in burst loops without load_elems' carry buffer
#: (issue 24, item 3; hw/hls/include/padless/io.h ``tiles``). Only element sizes that do not tile a beat
#: (sparse packed words of odd SIMD) still build the carry buffer.
BEAT_ALIGNED_DENSE_WEIGHTS = True


def weight_loads(cfg: EngineConfig) -> list[dict]:
    """The kernel's ``load_elems<E, AXI>`` template instances (padless_encoder.cpp load_layer: one per
    weights.bin section of a layer): ``{"name", "elem_bytes", "carry"}``. ``carry``: whether the instance
    builds the carry buffer (io.h): only where the element does not tile the m_axi beat (E % AXI and
    AXI % E both non-zero), or every instance when :data:`BEAT_ALIGNED_DENSE_WEIGHTS` is off."""
    def carry(e: int) -> bool:
        return not (BEAT_ALIGNED_DENSE_WEIGHTS and (e % cfg.axi == 0 or cfg.axi % e == 0))

    out = []
    for m in MVUS:
        simd = cfg.folding[m][1]
        e = (2 if cfg.sparse and not cfg.paired else 1) * simd
        out.append({"name": f"w_{m}", "elem_bytes": e, "carry": carry(e)})
        if cfg.paired:
            ei = pair_index_bytes(simd, cfg.index_bits)
            out.append({"name": f"i_{m}", "elem_bytes": ei, "carry": carry(ei)})
        out.append({"name": f"rq_{m}", "elem_bytes": 16, "carry": carry(16)})
    for name in ("ctx", "res_attn", "ln_attn", "act", "res_ffn", "ln_ffn", "gelu"):
        out.append({"name": name, "elem_bytes": 16, "carry": carry(16)})
    out.append({"name": "scalars", "elem_bytes": 8, "carry": carry(8)})
    return out


def carry_buffer(elem_bytes: int, axi: int) -> dict:
    """LUTs and flip-flops of one load_elems carry buffer (io.h): CB = 2 max(E, AXI) bytes in registers;
    each byte is written from the beat at the run-time fill level ``have`` (an AXI:1 byte multiplexer:
    Vitis does not know ``have`` is a multiple of anything), from the byte E above (the shift) or kept:
    an (AXI + 2):1 multiplexer per bit (:func:`mux_luts`), CB x 8 flip-flops plus the 32-bit fill level."""
    cb = 2 * max(int(elem_bytes), int(axi))
    return {"lut": cb * mux_luts(int(axi) + 2, 8), "ff": cb * 8 + 32}


def _mvu_logic(cfg: EngineConfig, m: str, dsp_type: str) -> dict:
    """LUTs and FFs of one MVU's fold, requantizer and sink (docstring of :func:`lut_estimate`)."""
    mm = cfg.mvu(m)
    pe, simd = mm["PE"], mm["SIMD"]
    xbits = cfg.act_bits if m == "down" else 8
    if cfg.packed(m, dsp_type):
        pairs, single = pe // 2, pe % 2
        # per pair and input: the low field's sign correction, (p - lo) >> 18, 27 bits that matter
        corr = pairs * simd * 27
        trees = pairs * (adder_tree_luts(simd, 16) + adder_tree_luts(simd, 18)) + single * adder_tree_luts(simd, 16)
    else:
        corr = 0
        trees = pe * adder_tree_luts(simd, xbits + 8)
    acc = pe * (48 if xbits != 8 else 32)                        # acc[p] += s
    # BANK:1 input mux per sparse lane; pe-pair: one per lane pair (both rows take the same input)
    sel = (pe // 2 if cfg.paired else pe) * simd * mux_luts(cfg.bank, xbits) if cfg.sparse else 0
    rq = pe * (33 + 32)                                          # bias add, rounding add before the shift
    sink = 0
    if m in ("out", "down"):
        sink = pe * (32 + 64 + 40)                               # y1 + y2, s += y (40 bits), s2 += y*y
    if m == "up":
        # i-GELU (int64): |x|, min, + b, + c, sign select, >> r (a 64-bit barrel shifter: 6 levels of 2:1,
        # three in a LUT6), + one: about 64 x 10 LUTs; the PWL GELU: the segment index (a 32-bit shift),
        # the 36-bit multiply-add's rounding add, two comparisons: about 200; ReLU: a sign select, 16.
        # Only the kind the kernel builds (cfg.act_kind).
        sink = pe * {"gelu": 64 * 10, "gelu-pwl": 200}.get(cfg.act_kind, 16)
    lut = corr + trees + acc + sel + rq + sink
    # one register per adder bit (every level of the tree and the correction pipelined at II = 1), the
    # weight words and the input operands registered once, the accumulators
    ff = corr + trees + acc + pe * simd * 8 + simd * xbits + rq + sink
    return {"lut": lut, "ff": ff, "detail": {"correction": corr, "adder_trees": trees, "accumulators": acc,
                                              "sparse_mux": sel, "requantize": rq, "sink": sink}}


def lut_estimate(cfg: EngineConfig, dsp_type: str = "DSP48E2") -> dict:
    """LUTs per unit (an estimate; docs/performance-model.md "Resources" gives every term):

    * an MVU (:func:`_mvu_logic`): packed-product sign corrections (27 LUTs per pair of rows and input),
      the adder trees of the fold (:func:`adder_tree_luts`: one LUT per adder bit), the accumulators, a
      BANK:1 8-bit input multiplexer per sparse lane (:func:`mux_luts`), the requantizer's adds, and the
      sink's datapath (residual adds and the LayerNorm sums in ``out``/``down``; the FFN activation the
      kernel builds in ``up``: PWL GELU, i-GELU or ReLU);
    * ``weight_loader``: the carry buffers of the load_elems instances that have one (:func:`carry_buffer`,
      :func:`weight_loads`);
    * 30 per 4-bit product lane and 43 per top-k comparator slot and lane (yosys on
      hw/rtl/selection_engine.sv), 2,000 per i-exp / divider unit, 4,000 per LayerNorm, 20,000 for control
      and the AXI interfaces, and the shift-register FIFOs.
    """
    out = {"fixed": 20000}
    for m in MVUS:
        out[m] = _mvu_logic(cfg, m, dsp_type)["lut"]
    out["weight_loader"] = sum(carry_buffer(w["elem_bytes"], cfg.axi)["lut"] for w in weight_loads(cfg) if w["carry"])
    out["select"] = cfg.sel_lanes * (30 * cfg.head_dim + 43 * cfg.k_max) + 2000
    d, ape = cfg.head_dim, cfg.att_pe
    out["attn_qk"] = ape * adder_tree_luts(d, 16) + 2000
    out["attn_exp"] = 2000 * ape
    out["attn_pv"] = ape * adder_tree_luts(d, 24) + 4000
    out["ln1"] = out["ln2"] = 4000
    out["fifos"] = sum(_fifo(f["width_bits"], f["depth"])["lut"] for f in _fifos(cfg))
    return out


def ff_estimate(cfg: EngineConfig, dsp_type: str = "DSP48E2") -> dict:
    """Flip-flops per unit (an estimate; docs/performance-model.md "Resources"): the MVUs' registered
    adder bits, operands and accumulators (:func:`_mvu_logic`); the carry buffers' bytes
    (:func:`carry_buffer`); one FF per LUT for the attention, selection and LayerNorm datapaths (pipelined
    at II = 1: every operator output registered); each FIFO's output register (its width; the storage is
    SRL or block RAM); 30,000 for control and the five m_axi adapters (512-bit read/write data registers
    and their AXI register slices)."""
    lut = lut_estimate(cfg, dsp_type)
    out = {"fixed": 30000}
    for m in MVUS:
        out[m] = _mvu_logic(cfg, m, dsp_type)["ff"]
    out["weight_loader"] = sum(carry_buffer(w["elem_bytes"], cfg.axi)["ff"] for w in weight_loads(cfg) if w["carry"])
    for u in ("select", "attn_qk", "attn_exp", "attn_pv", "ln1", "ln2"):
        out[u] = lut[u]
    out["fifos"] = sum(f["width_bits"] for f in _fifos(cfg))
    return out


def resources(cfg: EngineConfig, board: Board | str, caps: Mapping[str, float] | None = None) -> dict:
    """The static resource estimate of the generated kernel on ``board`` (manifest key ``resources``).

    Returns ``{"bram_36k": {"used", "limit"}, "uram": {...}, "dsp": {...}, "lut": {...}, "ff": {...},
    "fits": bool, "slr": {...}, "detail": {"memories": [...], "dsp": {unit: n}, "lut": {unit: n},
    "ff": {unit: n}, "process": {process: {resource: n}}}}``. A memory goes where its ``impl`` says (the
    kernel's BIND_STORAGE pragma): UltraRAM (72 x 4096 tiles), block RAM (the best RAMB36 aspect ratio) or
    LUTRAM (64 bits per LUT); arrays the kernel leaves to the tool (``auto``) count as LUTRAM up to
    :data:`LUTRAM_BITS` a bank, else block RAM. ``slr``: the placement of the dataflow processes on the
    board's SLRs (:func:`padless.schedule.placement.place`, ``caps``: fraction of each SLR's resources
    the kernel may use, default all); ``fits`` means the totals fit the device and every SLR its cap.
    """
    board = load_board(board)
    mems = memories(cfg)
    bram = uram = lutram_luts = 0
    detail = []
    for m in mems:
        n_u = uram_for(m["width_bits"], m["depth"]) * m["copies"]
        n_b = bram36_for(m["width_bits"], m["depth"]) * m["copies"]
        small = m["impl"] == "auto" and m["width_bits"] * m["depth"] <= LUTRAM_BITS
        if m["impl"] == "uram":
            uram += n_u
            detail.append({**m, "uram": n_u, "bram_36k": 0})
        elif m["impl"] == "lutram" or small:
            luts = math.ceil(m["width_bits"] * m["depth"] / 64) * m["copies"]
            lutram_luts += luts
            detail.append({**m, "lut": luts})
        else:
            bram += n_b
            detail.append({**m, "uram": 0, "bram_36k": n_b})
    for f in _fifos(cfg):
        bram += _fifo(f["width_bits"], f["depth"])["bram"]
    dsp = dsp_count(cfg, board.dsp_type)
    lut = lut_estimate(cfg, board.dsp_type)
    lut["lutram"] = lutram_luts
    ff = ff_estimate(cfg, board.dsp_type)
    used = {"bram_36k": int(bram), "uram": int(uram), "dsp": int(sum(dsp.values())), "lut": int(sum(lut.values())),
            "ff": int(sum(ff.values()))}
    limit = {"bram_36k": board.bram_36k, "uram": board.uram, "dsp": board.dsp, "lut": board.lut, "ff": board.ff}
    out = {k: {"used": used[k], "limit": int(limit[k])} for k in used}
    from .placement import place, process_resources
    per_proc = process_resources(cfg, detail, dsp, lut, ff)
    out["slr"] = place(cfg, per_proc, board, caps)
    out["fits"] = all(used[k] <= limit[k] for k in used) and out["slr"]["fits"]
    out["detail"] = {"memories": detail, "dsp": dsp, "lut": lut, "ff": ff, "process": per_proc}
    return out


def check_fits(cfg: EngineConfig, board: Board | str) -> dict:
    """:func:`resources`, raising ResourceError (what exceeds which limit, and what to do) when the kernel
    does not fit the board."""
    board = load_board(board)
    r = resources(cfg, board)
    if not r["fits"]:
        over = [f"{k} {r[k]['used']:,} > {r[k]['limit']:,}" for k in ("dsp", "bram_36k", "uram", "lut", "ff")
                if r[k]["used"] > r[k]["limit"]]
        if not over:
            over = [r["slr"]["reason"]]
        raise ResourceError(f"the generated kernel does not fit {board.name}: " + ", ".join(over) +
                            "; choose a larger board, more weight sparsity, a shorter maximum sequence "
                            "(hls: {max_seq: N}) or less parallelism")
    return r


def useful_macs(cfg: EngineConfig, t: int, k: int | None = None) -> int:
    """int8 MACs of one sequence of ``t`` tokens through every layer that the kernel's DSPs do usefully:
    kept weights of the four MVUs, and Q.K and P.V on the kept keys; under token reduction
    (``cfg.tokens``) each layer at its surviving length (:meth:`EngineConfig.layer_lengths`)."""
    total = 0
    for layer in range(cfg.layers):
        tl = int(cfg.layer_lengths([t], layer)[0]) if cfg.tokens else int(t)
        kk = min(cfg.keep[min(tl, cfg.max_seq)] if k is None else k, tl)
        for m in MVUS:
            inp, out = cfg.shape(m)
            kept = (inp // cfg.bank) * cfg.per_bank[layer] if cfg.sparse else inp
            total += tl * out * kept
        total += 2 * cfg.heads * tl * kk * cfg.head_dim
    return int(total)
