"""Static activation ranges from real calibration sentences (post-training, I-BERT style).

The fp32 reference runs the calibration sentences and records, per layer, site and channel, the largest
magnitude seen. Quantization turns these ranges into static scales (per tensor, or per channel where the
scale can be folded into the next layer's weights): no range is computed at run time on the device.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

import numpy as np

from ..ir import EncoderSpec, LayerSpec
from ..reference import embed, layer_fp32

SITES = ("in", "q", "k", "v", "ctx", "attn_out", "res_attn", "h", "up", "act", "down", "res_ffn", "out")


class Calibrator:
    """Collects the per-channel maximum of |x| per (layer, site)."""

    def __init__(self, num_layers: int):
        self._max: list[dict[str, np.ndarray]] = [{} for _ in range(num_layers)]
        self.embedding: np.ndarray | None = None
        self.sequences = 0
        self.tokens = 0

    @staticmethod
    def _update(old, value):
        m = np.abs(np.asarray(value, np.float64)).reshape(-1, value.shape[-1]).max(axis=0)
        return m if old is None else np.maximum(old, m)

    def observer(self, layer: int):
        store = self._max[layer]

        def observe(site: str, value: np.ndarray) -> None:
            store[site] = self._update(store.get(site), value)
        return observe

    def observe_embedding(self, value: np.ndarray) -> None:
        self.embedding = self._update(self.embedding, value)
        self.sequences += 1
        self.tokens += len(value)

    def ranges(self) -> dict:
        """``{"embedding": (H,), "layers": [{site: (C,)}], ...}``: per-channel max |x| (floored at 1e-6),
        rounded to float32 precision, as lists so the dict is JSON-serialisable."""
        if self.embedding is None:
            raise ValueError("no calibration sequence was observed")
        fl = lambda a: np.maximum(a, 1e-6).astype(np.float32).astype(np.float64).tolist()  # noqa: E731
        return {"embedding": fl(self.embedding),
                "layers": [{s: fl(v[s]) for s in SITES if s in v} for v in self._max],
                "sequences": self.sequences, "tokens": self.tokens}


def _float64(layer: LayerSpec) -> LayerSpec:
    """A copy of one layer with float64 weights, biases and LayerNorm parameters."""
    lin = lambda s: replace(s, weight=s.weight.astype(np.float64), bias=s.bias.astype(np.float64))  # noqa: E731
    ln = lambda s: replace(s, gamma=s.gamma.astype(np.float64), beta=s.beta.astype(np.float64))  # noqa: E731
    return replace(layer, q=lin(layer.q), k=lin(layer.k), v=lin(layer.v), o=lin(layer.o),
                   ffn_up=lin(layer.ffn_up), ffn_down=lin(layer.ffn_down), ln_attn=ln(layer.ln_attn),
                   ln_ffn=ln(layer.ln_ffn))


def calibrate(spec: EncoderSpec, token_ids: Iterable[Sequence[int]], progress: bool = False) -> dict:
    """Run the float reference over calibration sequences and return the activation ranges.

    The layers run in float64 (the fp32 weights, float64 activations) and the ranges are rounded to float32:
    a multi-threaded BLAS sums float32 products in an order that depends on the thread count, which moved
    the last bits of a range, and with them a scale, between machines; in float64 those differences stay
    far below float32's precision, so the same sentences give the same int8 model on any machine.

    Args:
        spec: the float model.
        token_ids: real sentences, tokenized (each ``(n,)`` ints).
    Returns:
        the ranges dict of :meth:`Calibrator.ranges`.
    Raises:
        InputError (from the embedding) for an empty or too long sequence; ValueError for no sequence.
    """
    cal = Calibrator(spec.num_layers)
    layers64 = [_float64(layer) for layer in spec.layers]  # cast once, not per sequence
    seqs = list(token_ids)
    it = seqs
    if progress:
        from tqdm import tqdm
        it = tqdm(seqs, desc="calibrating", unit="sent", leave=False)
    for ids in it:
        x = embed(spec, ids).astype(np.float64)
        cal.observe_embedding(x)
        for i, layer in enumerate(layers64):
            x = layer_fp32(spec, layer, x, cal.observer(i))
    return cal.ranges()
