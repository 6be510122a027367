"""Quantization-aware training: the student's forward pass simulates the golden integer data path.

Method: simulated ("fake") quantization with the straight-through estimator (Jacob et al., CVPR 2018,
section 3; I-BERT, Kim et al., ICML 2021, section 3, fine-tunes its integer-only model the same way).
Every tensor that the integer model (:mod:`padless.quant.quantize`) holds in int8 is rounded to its
int8 grid in the forward pass and passed through unchanged in the backward pass, with the *same* scales
that ``padless compile`` would compute for the current weights:

* the scales come from :func:`padless.quant.calibrate.calibrate` on the current student (converted with
  :func:`padless.frontend.hf.spec_from_transformers`) over the compile recipe's calibration sentences,
  and :func:`padless.quant.quantize.quantize_encoder` itself (per channel where they fold into the next
  layer, ``alpha`` 1; per tensor for Q and K), refreshed every ``qat_calibrate_every`` steps as the
  weights move;
* activations: the layer-0 input (embedding output), Q, K (per tensor), V, the attention context, the
  LayerNorm-1 output ``h``, the GELU output and every layer output (per channel), all int8 in [-127, 127];
  attention probabilities on the 12-bit grid (``PROB_BITS``);
* weights: per-output-channel int8 after the input scale is folded in (``W diag(s_in)``, exactly
  :func:`padless.quant.quantize._qlinear`), pruned weights stay 0.

Left in float (their integer versions are finer than int8 and measured close, docs/numerics.md): the
22-bit residual domain, the 16-bit GELU input, the integer exp / GELU / LayerNorm approximations.
"""
from __future__ import annotations

import types
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..quant import intops
from ..quant.calibrate import calibrate
from ..quant.quantize import quantize_encoder
from ..sparse.weights import LINEAR_NAMES

__all__ = ["FakeQuant", "fake_quant"]

#: Scales of :attr:`padless.quant.quantize.QLayer.scales` the simulation rounds to (int8 tensors).
_SITES = ("in", "q", "k", "v", "ctx", "h", "act", "out")


def fake_quant(x: torch.Tensor, scale: torch.Tensor, qmax: int = 127,
               zero_point: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` rounded to the grid ``scale * [-qmax, qmax]`` (scale broadcasts over the last dim), with the
    straight-through gradient ``d out / d x = 1``; with ``zero_point`` (per channel) the asymmetric grid
    ``scale * ([-qmax - 1, qmax] - zero_point)`` of ``quant: {zero_point: [act]}``."""
    if zero_point is None:
        q = torch.clamp(torch.round(x / scale), -qmax, qmax) * scale
    else:
        q = (torch.clamp(torch.round(x / scale) + zero_point, -qmax - 1, qmax) - zero_point) * scale
    return x + (q - x).detach()


def _fq_weight(w: torch.Tensor, s_in: torch.Tensor) -> torch.Tensor:
    """``(out, in)`` float weights -> the values the int8 model uses (input scale folded in, one scale per
    output row, as :func:`padless.quant.quantize.quantize_weights`), straight-through."""
    folded = w * s_in[None, :]
    amax = folded.detach().abs().amax(dim=1, keepdim=True)
    ws = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(folded / ws), -127, 127) * ws / s_in[None, :]
    return w + (q - w).detach()


class FakeQuant:
    """Attach / refresh / remove the simulated integer data path on a :class:`SparseStudent`.

    Args:
        student: the student (its ``bert`` is modified through hooks; :meth:`remove` restores it).
        calib_ids: calibration sentences, tokenized (each ``(n,)`` ints) -- those ``padless compile`` uses.
        name: model name for the converted spec; tokenizer_path: passed through.
        quant: the compile's ``quant:`` settings (:func:`padless.quant.config.parse_quant`; default: none):
            its range estimators, SmoothQuant migration, asymmetric sites (``zero_point``) and site widths
            (``precision``) shape the simulated grids as they shape the compiled ones. GPTQ rounding
            (``rounding: gptq``) is not simulated: the fake-quantized weights are rounded to nearest, and
            ``padless compile`` re-rounds the trained weights.
    """

    def __init__(self, student, calib_ids: Sequence[Sequence[int]], name: str = "student",
                 tokenizer_path: str | None = None, quant: dict | None = None):
        from ..quant.config import parse_quant
        self.quant = parse_quant(quant)
        self.student = student
        self.calib_ids = [list(map(int, i)) for i in calib_ids]
        self.name, self.tokenizer_path = name, tokenizer_path
        self.scales: list[dict] = []
        self.input_scale: torch.Tensor | None = None
        self._handles: list = []
        self._patched: list = []

    # -- scales ---------------------------------------------------------------------------------------------
    def calibrate(self) -> None:
        """Recompute every scale from the student's current weights: the fp32 reference over ``calib_ids``
        (:func:`padless.quant.calibrate.calibrate`), then :func:`padless.quant.quantize.quantize_encoder`
        itself, whose per-layer ``scales`` are read back -- one definition of the scales for compile and QAT."""
        from ..frontend.hf import spec_from_transformers
        spec = spec_from_transformers(self.student.bert, self.name, self.tokenizer_path)
        qe = quantize_encoder(spec, calibrate(spec, self.calib_ids, estimators=self.quant["ranges"]),
                              migrate=self.quant["migrate"], zero_point=self.quant["zero_point"],
                              precision=self.quant["precision"])
        t = lambda a: torch.tensor(np.asarray(a, np.float64), dtype=torch.float32)  # noqa: E731
        self.input_scale = t(qe.input_scale)
        self.scales = [{**{site: t(layer.scales[site]) for site in _SITES},
                        "act_zp": t(np.broadcast_to(np.asarray(layer.act_zp), (spec.intermediate_size,))),
                        "act_qmax": (1 << (layer.act_bits - 1)) - 1} for layer in qe.layers]

    # -- hooks ------------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The current scales (for a checkpoint)."""
        return {"input_scale": self.input_scale, "scales": self.scales}

    def load_state(self, state: dict) -> None:
        """Restore scales saved by :meth:`state` (a resumed run continues with the same scales)."""
        self.input_scale, self.scales = state["input_scale"], state["scales"]

    def attach(self, calibrate: bool = True) -> None:
        """Calibrate (unless ``calibrate`` is False: scales restored by :meth:`load_state`), then install
        the hooks (idempotent)."""
        if calibrate:
            self.calibrate()
        if self._handles:
            return
        bert = self.student.bert
        # prepend: run before any hook transformers installs to record hidden states, so what it records is
        # the rounded tensor the next layer sees, whenever the hooks were installed
        self._handles.append(bert.embeddings.register_forward_hook(
            lambda mod, args, out: fake_quant(out, self.input_scale), prepend=True))
        for i, blk in enumerate(bert.encoder.layer):
            a = blk.attention
            out_site = lambda site, i=i: (lambda mod, args, out: fake_quant(out, self.scales[i][site]))  # noqa: E731
            self._handles += [
                a.self.query.register_forward_hook(out_site("q"), prepend=True),
                a.self.key.register_forward_hook(out_site("k"), prepend=True),
                a.self.value.register_forward_hook(out_site("v"), prepend=True),
                a.output.register_forward_hook(out_site("h"), prepend=True),
                blk.register_forward_hook(self._layer_out_hook(i), prepend=True),
            ]
            in_sites = {"q": "in", "k": "in", "v": "in", "o": "ctx", "ffn_up": "h", "ffn_down": "act"}
            for lname, mod in zip(LINEAR_NAMES, self.student.linears[i]):
                self._patch_linear(mod, i, in_sites[lname], quantize_input=lname in ("o", "ffn_down"))
        self.student.prob_bits = intops.PROB_BITS

    def _layer_out_hook(self, i: int):
        def hook(mod, args, out):
            if isinstance(out, tuple):
                return (fake_quant(out[0], self.scales[i]["out"]),) + tuple(out[1:])
            return fake_quant(out, self.scales[i]["out"])
        return hook

    def _patch_linear(self, mod, i: int, site: str, quantize_input: bool) -> None:
        """Replace ``mod.forward`` (instance attribute): int8 weights with the input scale folded in, and
        for O / FFN down the int8 input (context, GELU output) -- Q/K/V/FFN-up inputs are already int8
        (the previous layer's output, the LayerNorm-1 output)."""
        fq = self

        def forward(self_mod, x):
            sc = fq.scales[i]
            s_in = sc[site]
            if quantize_input and site == "act":   # the FFN activation: maybe asymmetric or 16-bit
                zp = sc.get("act_zp")
                x = fake_quant(x, s_in, int(sc.get("act_qmax", 127)),
                               zp if zp is not None and bool(torch.any(zp != 0)) else None)
            elif quantize_input:
                x = fake_quant(x, s_in)
            return F.linear(x, _fq_weight(self_mod.weight, s_in), self_mod.bias)
        mod.forward = types.MethodType(forward, mod)
        self._patched.append(mod)

    def remove(self) -> None:
        """Uninstall every hook: the student is the plain fp32 model again."""
        for h in self._handles:
            h.remove()
        for mod in self._patched:
            del mod.forward
        self._handles, self._patched = [], []
        self.student.prob_bits = 0
