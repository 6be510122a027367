"""Cycle and resource model of the generated layer engine (docs/performance-model.md).

The layer engine is a coarse-grained dataflow pipeline of six compute stages, shared by all encoder
layers (a sequence passes the six stages once per layer):

====  ==========  ===========================================================================
 s    stage       work per sequence pass of ``t`` tokens, ``k`` kept keys
====  ==========  ===========================================================================
 0    qkv         matrix-vector unit (MVU), ``(3H, H)`` int8 weights (kept per row ``H'``)
 1    select      RTL 4-bit selection engine: one (query, key, head) estimate per lane per cycle
 2    attn        exact attention on kept keys: QK^T then AV on one PE x SIMD array (i-softmax inline)
 3    out         MVU ``(H, H)`` + residual + LayerNorm
 4    ffn_up      MVU ``(F, H)`` + i-GELU
 5    ffn_down    MVU ``(H, F)`` + residual + LayerNorm
 -    weights     m_axi loader: one layer's weights (values, in-bank indices, bias) per layer switch
====  ==========  ===========================================================================

A matrix-vector unit with ``PE`` output rows and ``SIMD`` input lanes (FINN's MVAU folding) takes
``ceil(out / PE) * ceil(in' / SIMD)`` cycles per token at II=1, ``in'`` the kept weights per row.
The row-wise stages (qkv, out, ffn_up, ffn_down) process a sequence in row tiles of ``row_tile`` rows,
as the generated HLS kernel does (``TILE`` in hw/hls/top/padless_encoder.cpp), and pay their fixed
pipeline depth (and LayerNorm tail) once per tile; select and attn need the whole sequence's K/V and
pay their depth once per sequence. All counts are integer cycles of the
kernel clock. Operation counts come from :mod:`padless.opcount`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from ..boards import Board, int8_peak_macs, load_board
from ..errors import InputError
from ..opcount import attention_k, check_model, check_sparsity, layer_tokens, layer_weight_config, weight_layout

__all__ = ["STAGES", "MVU_STAGES", "ROW_STAGES", "HEAD_STAGES", "DEFAULT_ROW_TILE", "DEFAULT_HEADS_PER_JOB", "Allocation", "CostParams", "mvu_shapes",
           "tile_cycles_many", "head_jobs", "sequence_cycles", "sequence_cycles_many", "weight_load_cycles", "stage_weight_bytes", "layer_weight_bytes", "model_weight_bytes", "resources",
           "activation_bytes_per_token", "working_bytes_per_token", "fixed_buffer_bytes", "spill_io_cycles",
           "pass_tokens_many", "dsp_for_macs"]

#: Compute stages of the layer engine, in pipeline order.
STAGES = ("qkv", "select", "attn", "out", "ffn_up", "ffn_down")
#: Stages that are matrix-vector units (int8 weights, DSP MACs).
MVU_STAGES = ("qkv", "out", "ffn_up", "ffn_down")
#: Stages that work row by row (a row tile at a time); select and attn need the whole sequence.
ROW_STAGES = MVU_STAGES
#: Stages that need a whole sequence's K (and V) and run one job per head group.
HEAD_STAGES = ("select", "attn")
#: Rows per tile of the generated kernel (``PADLESS_ROW_TILE``, hw/hls/top/padless_encoder.cpp).
DEFAULT_ROW_TILE = 32
#: Heads per select / attn job: the kernel's attention (hw/hls/include/padless/attention.h,
#: ``attention_seq``) loops over heads, each head's 4-bit quantization, estimate, top-k and exact
#: attention needing only that head's columns of Q, K and V.
DEFAULT_HEADS_PER_JOB = 1


@dataclass(frozen=True)
class CostParams:
    """Constants of the cycle and resource model (each one documented in docs/performance-model.md).

    Attributes:
        mvu_depth: fixed pipeline depth of an MVU per sequence, cycles (read, DSP cascade, requantize).
        attn_depth: fixed depth of the attention array per sequence (i-exp, divide, requantize).
        select_depth: fixed depth of the selection engine (4-bit products, adder tree, top-k insert).
        ln_depth: extra depth of a LayerNorm tail (mean/variance pass, i-sqrt Newton iterations).
        gelu_depth: depth of the i-GELU polynomial.
        mem_efficiency: fraction of the theoretical off-chip bandwidth an m_axi burst reader sustains.
        lut_per_mac_lane: LUTs around each int8 MAC lane (operand muxes, accumulator, control).
        lut_per_4b_mult: LUTs of one 4b x 4b table multiplier plus its adder-tree share.
        lut_per_topk_entry: LUTs per entry of a streaming top-k insertion sorter (compare + shift).
        lut_fixed: LUTs of control, AXI interfaces (m_axi, s_axilite) and the length dispatcher.
        bram_bytes: data bytes per 36 Kb block RAM used 8 bits wide (4,096).
        uram_bytes: data bytes per 288 Kb UltraRAM used 64 bits wide (32,768).
    """

    mvu_depth: int = 8
    attn_depth: int = 24
    select_depth: int = 7        # measured: hw/rtl selection engine, LANES 1 (bench/rtl_bench.py)
    ln_depth: int = 32
    gelu_depth: int = 6
    mem_efficiency: float = 0.8
    lut_per_mac_lane: int = 24
    lut_per_4b_mult: int = 30    # measured: yosys synth_xilinx xcup, 30.1 incl. adder tree share
    lut_per_topk_entry: int = 43  # measured: yosys, score-then-index comparator sorter
    lut_fixed: int = 20000
    bram_bytes: int = 4096
    uram_bytes: int = 32768


@dataclass
class Allocation:
    """Parallelism of each stage and the operating point.

    Attributes:
        pe, simd: per stage in ``MVU_STAGES`` + ``"attn"``: output rows (keys for attn) and input lanes
            (head-dim lanes for attn) computed per cycle.
        select_lanes: (query, key, head) estimates per cycle of the 4-bit selection engine.
        clock_MHz: kernel clock.
        bandwidth_GBps: off-chip bandwidth available to the weight loader (theoretical).
        resident: all layers' weights stay on chip (loaded once); else streamed per layer into
            ``weight_buffers`` layer buffers per MVU stage.
        weight_buffers: streamed weights: 2 = double-buffered (a stage's next layer loads while it works on
            the current one), 1 = single-buffered (a stage stalls for each load, but one layer of weights
            less on chip leaves room for a larger wave).
        wave_tokens: on-chip activation capacity in tokens. Without ``spill``: the tokens of a wave (every
            token of a wave keeps its residual row and a stage-boundary tensor on chip). With ``spill``:
            the working set, tokens of the sequences between their qkv and ffn_down of one layer.
        spill: layer-major engine with activations in off-chip memory between layers (streamed weights):
            each (sequence, layer) reads its ``t`` input rows over m_axi before qkv and writes its output
            rows after ffn_down; one weight pass per layer serves every sequence of the input.
        row_tile: rows per tile of the row-wise stages (the kernel's ``TILE``); 0 = whole sequence.
        heads_per_job: attention heads per select / attn job (the kernel's ``head_loop`` runs one head
            at a time); ``ceil(h / heads_per_job)`` jobs per sequence pass; 0 = all heads in one job.
    """

    pe: dict = field(default_factory=lambda: {s: 1 for s in MVU_STAGES + ("attn",)})
    simd: dict = field(default_factory=lambda: {s: 1 for s in MVU_STAGES + ("attn",)})
    select_lanes: int = 1
    clock_MHz: float = 200.0
    bandwidth_GBps: float = 19.2
    resident: bool = False
    wave_tokens: int = 4096
    row_tile: int = DEFAULT_ROW_TILE
    heads_per_job: int = DEFAULT_HEADS_PER_JOB
    spill: bool = False
    weight_buffers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Allocation":
        """Rebuild from :meth:`to_dict` output (or a plan's ``allocation`` entry)."""
        keys = cls.__dataclass_fields__
        return cls(**{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items() if k in keys})


def mvu_shapes(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None = None,
               layer: int | None = None) -> dict:
    """``{stage: (out, in_kept)}`` of the four MVU stages (``in_kept``: kept weights per row) of ``layer``
    (its per-layer ratio from ``weights.layers`` where given; ``None``: the global ratio)."""
    dims = check_model(model)
    w = check_sparsity(sparsity)["weights"]
    if layer is not None:
        w = layer_weight_config(w, layer)
    H, F = dims["H"], dims["F"]
    return {"qkv": (3 * H, weight_layout(H, H, w)["kept_per_row"]),
            "out": (H, weight_layout(H, H, w)["kept_per_row"]),
            "ffn_up": (F, weight_layout(F, H, w)["kept_per_row"]),
            "ffn_down": (H, weight_layout(H, F, w)["kept_per_row"])}


def head_jobs(model: Mapping[str, Any], alloc: Allocation) -> list[int]:
    """Heads in each select / attn job of one sequence pass: ``ceil(h / heads_per_job)`` jobs of
    ``heads_per_job`` heads (the last one the remainder); ``heads_per_job == 0``: one job of all heads.

    Raises:
        InputError: a negative ``heads_per_job``.
    """
    h = check_model(model)["h"]
    g = int(getattr(alloc, "heads_per_job", 0) or 0)
    if g < 0:
        raise InputError(f"heads_per_job must be >= 0 (0: all heads in one job), got {g}")
    if g == 0 or g >= h:
        return [h]
    return [min(g, h - i) for i in range(0, h, g)]


def pass_tokens_many(model: Mapping[str, Any], lengths, sparsity: Mapping[str, Any] | None) -> np.ndarray:
    """Tokens of every (sequence, layer) pass after token reduction: ``(B, L)`` int64
    (:func:`padless.opcount.layer_tokens`, vectorised: ``t = max(1, ceil(keep * t))`` before each
    selection layer)."""
    dims = check_model(model)
    tcfg = check_sparsity(sparsity)["tokens"]
    sel, keep = set(tcfg.get("layers", ())), float(tcfg.get("keep", 1.0))
    t = np.asarray(lengths, dtype=np.int64).reshape(-1)
    out = np.zeros((t.size, dims["L"]), dtype=np.int64)
    for l in range(dims["L"]):
        if l in sel:
            t = np.maximum(1, np.ceil(keep * t - 1e-9).astype(np.int64))
        out[:, l] = t
    return out


def tile_cycles_many(model: Mapping[str, Any], lengths, sparsity: Mapping[str, Any] | None,
                     alloc: Allocation, params: CostParams = CostParams()) -> np.ndarray:
    """Cycles of every (sequence, layer, stage, job): ``(B, L, 6, T)`` int64 for ``(B,)`` lengths.

    A pass of ``t`` tokens (after token reduction) through a row-wise stage (:data:`ROW_STAGES`) is
    ``ceil(t / row_tile)`` row-tile jobs, tile ``i`` of ``r_i = min(row_tile, t - i row_tile)`` rows;
    select and attn are one job per head group (:func:`head_jobs`: ``g_i`` heads each, the kernel's
    ``head_loop``). ``T`` is the most jobs of any pass; entries past a pass's last job are 0. With ``k``
    kept keys, ``d`` the head dimension:

    * MVU stage ``(out, in')``, per tile: ``r * ceil(out/PE) * ceil(in'/SIMD) + mvu_depth``
      (+ ``ceil(H/PE) + ln_depth`` LayerNorm tail for out/ffn_down, + ``gelu_depth`` for ffn_up);
    * select, per head group: ``ceil(g * t * t / lanes) + select_depth`` when attention is sparse, else 0;
    * attn, per head group: ``2 * t * g * ceil(k/PE) * ceil(d/SIMD) + attn_depth``.

    ``alloc.row_tile == 0`` makes every row-wise pass one tile (the whole sequence); the fixed depths are
    paid once per job.

    Raises:
        InputError: a length < 1, a negative ``row_tile`` or ``heads_per_job``, or a bad model/sparsity.
    """
    dims = check_model(model)
    sp = check_sparsity(sparsity)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lengths.size and lengths.min() < 1:
        raise InputError(f"every sequence needs at least one token; got length {int(lengths.min())}")
    row_tile = int(getattr(alloc, "row_tile", 0) or 0)
    if row_tile < 0:
        raise InputError(f"row_tile must be >= 0 (0: whole sequence), got {row_tile}")
    groups = np.asarray(head_jobs(model, alloc), dtype=np.int64)
    L, H, d = dims["L"], dims["H"], dims["d"]
    uniq, inverse = np.unique(lengths, return_inverse=True)
    att = sp["attention"]
    passes = pass_tokens_many(model, uniq, sparsity)  # (U, L) tokens after token reduction
    row_jobs = 1 if row_tile == 0 or uniq.size == 0 else int(-(-int(uniq.max()) // row_tile))
    n_tiles = max(row_jobs, len(groups))
    G = len(groups)
    table = np.zeros((len(uniq), L, len(STAGES), n_tiles), dtype=np.int64)
    fixed = {s: params.mvu_depth for s in MVU_STAGES}
    fixed["out"] += -(-H // alloc.pe["out"]) + params.ln_depth
    fixed["ffn_down"] += -(-H // alloc.pe["ffn_down"]) + params.ln_depth
    fixed["ffn_up"] += params.gelu_depth
    for l in range(L):
        t = passes[:, l]
        if "topk" in att:
            k = np.minimum(t, int(att["topk"]))
        elif "density" in att:
            k = np.minimum(t, np.maximum(int(att.get("min_k", 1)),
                                         np.ceil(float(att["density"]) * t - 1e-9).astype(np.int64)))
        else:
            k = t
        if row_tile:  # rows of each tile: (U, row_jobs)
            rows = np.clip(t[:, None] - row_tile * np.arange(row_jobs)[None, :], 0, row_tile)
        else:
            rows = t[:, None]
        shapes = mvu_shapes(model, sparsity, l)  # per-layer weight ratios (weights.layers)
        for s in MVU_STAGES:
            o, i = shapes[s]
            per_row = (-(-o // alloc.pe[s])) * (-(-i // alloc.simd[s]))
            table[:, l, STAGES.index(s), :row_jobs] = np.where(rows > 0, rows * per_row + fixed[s], 0)
        if att:
            table[:, l, 1, :G] = -(-(groups[None, :] * (t * t)[:, None]) // alloc.select_lanes) + params.select_depth
        table[:, l, 2, :G] = (2 * (t * (-(-k // alloc.pe["attn"])))[:, None] * groups[None, :]
                              * (-(-d // alloc.simd["attn"])) + params.attn_depth)
    return table[inverse]


def sequence_cycles_many(model: Mapping[str, Any], lengths, sparsity: Mapping[str, Any] | None,
                         alloc: Allocation, params: CostParams = CostParams()) -> np.ndarray:
    """Cycles of every (sequence, layer, stage) pass: ``(B, L, 6)`` int64 for ``(B,)`` lengths.

    The sum over the jobs of :func:`tile_cycles_many` (a row-wise stage pays its fixed depth once per
    row tile; select and attn once per head group). For a pass of ``t <= row_tile`` tokens (or
    ``row_tile == 0``) and one head group (``heads_per_job == 0``), with ``k`` kept keys:

    * MVU stage ``(out, in')``: ``t * ceil(out/PE) * ceil(in'/SIMD) + mvu_depth``
      (+ ``ceil(H/PE) + ln_depth`` LayerNorm tail for out/ffn_down, + ``gelu_depth`` for ffn_up);
    * select: ``ceil(h * t * t / lanes) + select_depth`` when attention is sparse, else 0;
    * attn: ``2 * t * h * ceil(k/PE) * ceil(d/SIMD) + attn_depth``.

    Raises:
        InputError: a length < 1, or a bad model/sparsity.
    """
    return tile_cycles_many(model, lengths, sparsity, alloc, params).sum(axis=3)


def sequence_cycles(model, n: int, sparsity, alloc: Allocation, params: CostParams = CostParams()) -> np.ndarray:
    """Cycles of one sequence of ``n`` tokens: ``(L, 6)`` int64 (see :func:`sequence_cycles_many`)."""
    return sequence_cycles_many(model, [n], sparsity, alloc, params)[0]


def layer_weight_bytes(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None = None,
                       layer: int | None = None) -> int:
    """Off-chip bytes of one layer's weights: int8 values + in-bank index bits + int32 bias. ``layer``:
    that layer (its per-layer ratio); ``None``: every stage's largest layer, summed (what one set of the
    per-stage weight buffers must hold; equal to any layer's bytes without per-layer ratios)."""
    return sum(stage_weight_bytes(model, sparsity, layer).values())


def model_weight_bytes(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None = None) -> int:
    """Bytes of every layer's weights (resident weights), per-layer ratios included."""
    return sum(layer_weight_bytes(model, sparsity, l) for l in range(check_model(model)["L"]))


def stage_weight_bytes(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None = None,
                       layer: int | None = None) -> dict:
    """Off-chip weight bytes of each MVU stage (qkv holds Q, K and V) of ``layer``; ``None``: the most
    over the layers, per stage (a stage's weight buffer and its slowest load)."""
    dims = check_model(model)
    w = check_sparsity(sparsity)["weights"]
    H, F = dims["H"], dims["F"]

    def one_layer(cfg):
        one = lambda o, i: weight_layout(o, i, cfg)["bytes"]  # noqa: E731
        return {"qkv": 3 * one(H, H), "out": one(H, H), "ffn_up": one(F, H), "ffn_down": one(H, F)}
    if layer is not None:
        return one_layer(layer_weight_config(w, layer))
    per = [one_layer(layer_weight_config(w, l)) for l in range(dims["L"])]
    return {s: max(p[s] for p in per) for s in per[0]}


def weight_load_cycles(model, sparsity, alloc: Allocation, params: CostParams = CostParams(),
                       stage: str | None = None) -> int:
    """Cycles to stream one layer's weights (or one MVU ``stage``'s):
    ``ceil(bytes / (BW * mem_efficiency / f_clk))``."""
    per_cycle = alloc.bandwidth_GBps * 1e9 * params.mem_efficiency / (alloc.clock_MHz * 1e6)
    nbytes = layer_weight_bytes(model, sparsity) if stage is None else stage_weight_bytes(model, sparsity)[stage]
    return int(math.ceil(nbytes / per_cycle))


def activation_bytes_per_token(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None = None,
                               max_k: int = 0) -> int:
    """On-chip bytes a token in flight holds: its int8 residual row (``H``) plus the largest
    stage-boundary tensor: max(Q, K, V int8 + 4-bit Q', K' (``4H``), FFN intermediate (``F``), top-k
    key indices (``h * k * 10`` bits, 10-bit key indices for up to 1,024 positions))."""
    dims = check_model(model)
    H, F, h = dims["H"], dims["F"], dims["h"]
    idx_bytes = math.ceil(h * max_k * 10 / 8)
    return H + max(4 * H, F, idx_bytes)


def working_bytes_per_token(model: Mapping[str, Any]) -> int:
    """On-chip bytes a token of a sequence inside its layer window (first qkv tile to last ffn_down tile)
    holds in the spill engine: its input row (``H``, the residual of out + LayerNorm), Q, K, V (``3H``)
    and the attention context (``H``): ``5H``. The LayerNorm-1 output (``H``) replaces the input row
    after out, so ``5H`` bounds the whole window."""
    return 5 * check_model(model)["H"]


def fixed_buffer_bytes(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None, alloc: Allocation,
                       max_tokens: int) -> int:
    """On-chip buffers of the spill engine that do not scale with the tokens in flight, double-buffered
    (ping-pong) between the stages they connect:

    * per head-group job: 4-bit Q' and K' of ``max_tokens`` rows (``max_tokens * g * d`` bytes for both)
      and the top-k key indices (``max_tokens * g * k * 10`` bits);
    * per row tile (``row_tile`` rows, the whole sequence when 0): the LayerNorm-1 output and the FFN
      intermediate (``H + F`` int8) and the int32 accumulator and residual (``8H``).
    """
    dims = check_model(model)
    sp = check_sparsity(sparsity)
    H, F, d = dims["H"], dims["F"], dims["d"]
    g = max(head_jobs(model, alloc))
    k = attention_k(max_tokens, sp["attention"]) if sp["attention"] else 0
    per_head = max_tokens * g * d + math.ceil(max_tokens * g * k * 10 / 8) if sp["attention"] else 0
    rows = int(alloc.row_tile or max_tokens)
    return int(2 * (per_head + rows * (H + F + 8 * H)))


def spill_io_cycles(model: Mapping[str, Any], rows, alloc: Allocation, params: CostParams = CostParams()):
    """Cycles to move ``rows`` int8 activation rows (``H`` bytes each) over m_axi in the spill engine:
    ``ceil(rows * H / (BW * mem_efficiency / f_clk))`` (int or array, as ``rows``)."""
    per_cycle = alloc.bandwidth_GBps * 1e9 * params.mem_efficiency / (alloc.clock_MHz * 1e6)
    nbytes = np.asarray(rows, dtype=np.float64) * check_model(model)["H"]
    out = np.ceil(nbytes / per_cycle).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def dsp_for_macs(lanes: int, dsp_type: str) -> int:
    """DSP slices for ``lanes`` int8 MACs per cycle: two per DSP48E2 (WP486), one per DSP48E1."""
    return math.ceil(lanes / 2) if dsp_type == "DSP48E2" else lanes


def resources(model: Mapping[str, Any], sparsity: Mapping[str, Any] | None, alloc: Allocation,
              board: Board | str, max_tokens: int, params: CostParams = CostParams()) -> dict:
    """Resources of an allocation on a board.

    DSP: ``sum over MAC arrays of dsp_for_macs(PE * SIMD)``. LUT: ``lut_per_mac_lane`` per MAC lane,
    selection lanes ``d * lut_per_4b_mult + k * lut_per_topk_entry`` each, plus ``lut_fixed``.
    On-chip memory (bytes): weights (all layers if resident, else ``alloc.weight_buffers`` layers) +
    ``wave_tokens * activation_bytes_per_token`` (or, with ``alloc.spill``, ``wave_tokens *
    working_bytes_per_token + fixed_buffer_bytes``); mapped to URAM first for the weights, block RAM for
    the rest. ``max_tokens`` sizes the top-k index buffers.

    Returns ``{"dsp", "lut", "bram_36k", "uram", "onchip_bytes", "weight_bytes", "activation_bytes"}``.
    """
    board = load_board(board)
    dims = check_model(model)
    sp = check_sparsity(sparsity)
    lanes = {s: alloc.pe[s] * alloc.simd[s] for s in MVU_STAGES + ("attn",)}
    dsp = sum(dsp_for_macs(v, board.dsp_type) for v in lanes.values())
    selecting = bool(sp["attention"])
    k = attention_k(max_tokens, sp["attention"]) if selecting else 0
    lut = params.lut_fixed + params.lut_per_mac_lane * sum(lanes.values())
    if selecting:
        lut += alloc.select_lanes * (dims["d"] * params.lut_per_4b_mult + k * params.lut_per_topk_entry)
    weight_bytes = (model_weight_bytes(model, sparsity) if alloc.resident
                    else int(alloc.weight_buffers) * layer_weight_bytes(model, sparsity))
    if getattr(alloc, "spill", False):
        act_bytes = (alloc.wave_tokens * working_bytes_per_token(model)
                     + fixed_buffer_bytes(model, sparsity, alloc, max_tokens))
    else:
        act_bytes = alloc.wave_tokens * activation_bytes_per_token(model, sparsity, k)
    uram_w = min(board.uram, math.ceil(weight_bytes / params.uram_bytes))
    rest = max(0, weight_bytes - uram_w * params.uram_bytes) + act_bytes
    uram_a = min(board.uram - uram_w, rest // params.uram_bytes)
    rest -= uram_a * params.uram_bytes
    bram = math.ceil(rest / params.bram_bytes)
    return {"dsp": int(dsp), "lut": int(lut), "bram_36k": int(bram), "uram": int(uram_w + uram_a),
            "onchip_bytes": int(weight_bytes + act_bytes), "weight_bytes": int(weight_bytes),
            "activation_bytes": int(act_bytes)}


def peak_macs(board: Board | str, alloc: Allocation | None = None) -> float:
    """INT8 peak MAC/s of the board at the allocation's clock (see :func:`padless.boards.int8_peak_macs`)."""
    board = load_board(board)
    return int8_peak_macs(board, None if alloc is None else alloc.clock_MHz)
