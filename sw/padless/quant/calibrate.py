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
#: Sites whose quantization grid is set by their range and may be clipped by a range estimator: the int8 and
#: int16 activations (the 22-bit residual domains keep the max: nothing there may saturate).
CLIP_SITES = ("embedding", "q", "k", "v", "ctx", "h", "up", "act", "out")
#: Sites with one scale for the whole tensor (docs/numerics.md "Quantization scheme"); the others are per channel.
PER_TENSOR_SITES = ("q", "k", "up")
#: Largest code of each clipped site's grid (int8 unless listed).
QMAX = {"up": 32767}


class Calibrator:
    """Collects, per (layer, site), the per-channel maximum of |x| and, when asked, the ``tail`` largest
    |x| of every channel (for the clipping range estimators of :mod:`padless.quant.ranges`).

    Args:
        num_layers: encoder layers.
        tail: 0 (max only) or how many of the largest |x| to keep per channel (and, for the whole tensor,
            per site). Kept values are exact: a percentile or clipping value whose rank lies inside the tail
            is the one that the full data would give.
    """

    def __init__(self, num_layers: int, tail: int = 0):
        self._max: list[dict[str, np.ndarray]] = [{} for _ in range(num_layers)]
        self._tail: list[dict[str, _Tail]] = [{} for _ in range(num_layers)]
        self._emb_tail: _Tail | None = None
        self.tail = int(tail)
        self.embedding: np.ndarray | None = None
        self.sequences = 0
        self.tokens = 0

    @staticmethod
    def _update(old, value):
        m = np.abs(np.asarray(value, np.float64)).reshape(-1, value.shape[-1]).max(axis=0)
        return m if old is None else np.maximum(old, m)

    def observer(self, layer: int):
        store, tails = self._max[layer], self._tail[layer]

        def observe(site: str, value: np.ndarray) -> None:
            store[site] = self._update(store.get(site), value)
            if self.tail and site in CLIP_SITES:
                tails.setdefault(site, _Tail(self.tail)).add(value)
        return observe

    def observe_embedding(self, value: np.ndarray) -> None:
        self.embedding = self._update(self.embedding, value)
        if self.tail:
            if self._emb_tail is None:
                self._emb_tail = _Tail(self.tail)
            self._emb_tail.add(value)
        self.sequences += 1
        self.tokens += len(value)

    def tails(self, layer: int | None, site: str) -> "_Tail | None":
        """The kept tail of ``site`` in ``layer`` (``layer=None``: the embedding output), or None."""
        if layer is None:
            return self._emb_tail
        return self._tail[layer].get(site)

    def ranges(self, estimators: dict | None = None) -> dict:
        """``{"embedding": (H,), "layers": [{site: (C,)}], ...}``: per-channel clipping ranges (floored at
        1e-6), rounded to float32 precision, as lists so the dict is JSON-serialisable. Without
        ``estimators`` (or with ``max`` everywhere) they are the per-channel max |x|; otherwise each site's
        estimator (:func:`padless.quant.ranges.estimate`) replaces the max where it applies, and the
        normalised estimator config is recorded under ``"estimators"``."""
        from .ranges import estimate, parse_estimators
        if self.embedding is None:
            raise ValueError("no calibration sequence was observed")
        est = parse_estimators(estimators)
        fl = lambda a: np.maximum(a, 1e-6).astype(np.float32).astype(np.float64).tolist()  # noqa: E731

        def one(layer, site, mx):
            cfg = est.get(site, est["default"]) if site in CLIP_SITES else {"method": "max"}
            if cfg["method"] == "max":
                return mx
            return estimate(cfg, self.tails(layer, site), mx, per_tensor=site in PER_TENSOR_SITES,
                            qmax=QMAX.get(site, 127))
        out = {"embedding": fl(one(None, "embedding", self.embedding)),
               "layers": [{s: fl(one(i, s, v[s])) for s in SITES if s in v} for i, v in enumerate(self._max)],
               "sequences": self.sequences, "tokens": self.tokens}
        if any(c["method"] != "max" for c in est.values()):
            out["estimators"] = est
        return out


class _Tail:
    """The ``k`` largest |x| per channel (``(k, C)``) and the ``k C`` largest of the whole tensor, streamed
    (the same fraction of a tensor as of one channel); and the number of rows seen."""

    def __init__(self, k: int):
        self.k = int(k)
        self.rows = 0
        self._chan: np.ndarray | None = None
        self._flat: np.ndarray | None = None
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def add(self, value: np.ndarray) -> None:
        a = np.abs(np.asarray(value, np.float64)).reshape(-1, value.shape[-1])
        self.rows += len(a)
        self._pending.append(a)
        self._pending_rows += len(a)
        if self._pending_rows >= 4 * self.k + 4096:
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = ([self._chan] if self._chan is not None else []) + self._pending
        a = np.concatenate(parts)
        if len(a) > self.k:
            a = np.partition(a, len(a) - self.k, axis=0)[len(a) - self.k:]
        self._chan = a
        flat = np.concatenate(([self._flat] if self._flat is not None else [])
                              + [p.ravel() for p in self._pending])
        kf = self.k * a.shape[1]
        if len(flat) > kf:
            flat = np.partition(flat, len(flat) - kf)[len(flat) - kf:]
        self._flat = flat
        self._pending, self._pending_rows = [], 0

    def channel(self) -> np.ndarray:
        """``(min(k, rows), C)`` the largest |x| of every channel, descending along axis 0."""
        self._merge()
        return -np.sort(-self._chan, axis=0)

    def tensor(self) -> np.ndarray:
        """``(min(k C, rows C),)`` the largest |x| of the whole tensor, descending."""
        self._merge()
        return -np.sort(-self._flat)


def _float64(layer: LayerSpec) -> LayerSpec:
    """A copy of one layer with float64 weights, biases and LayerNorm parameters."""
    lin = lambda s: replace(s, weight=s.weight.astype(np.float64), bias=s.bias.astype(np.float64))  # noqa: E731
    ln = lambda s: replace(s, gamma=s.gamma.astype(np.float64), beta=s.beta.astype(np.float64))  # noqa: E731
    return replace(layer, q=lin(layer.q), k=lin(layer.k), v=lin(layer.v), o=lin(layer.o),
                   ffn_up=lin(layer.ffn_up), ffn_down=lin(layer.ffn_down), ln_attn=ln(layer.ln_attn),
                   ln_ffn=ln(layer.ln_ffn))


def collect(spec: EncoderSpec, token_ids: Iterable[Sequence[int]], progress: bool = False,
            tail: int = 0) -> Calibrator:
    """Run the float reference over calibration sequences and return the statistics (:class:`Calibrator`).

    The layers run in float64 (the fp32 weights, float64 activations) and the ranges are rounded to float32:
    a multi-threaded BLAS sums float32 products in an order that depends on the thread count, which moved
    the last bits of a range, and with them a scale, between machines; in float64 those differences stay
    far below float32's precision, so the same sentences give the same int8 model on any machine.

    Args:
        spec: the float model.
        token_ids: real sentences, tokenized (each ``(n,)`` ints).
        tail: largest |x| kept per channel (0: the max only), see :class:`Calibrator`.
    Raises:
        InputError (from the embedding) for an empty or too long sequence; ValueError for no sequence.
    """
    cal = Calibrator(spec.num_layers, tail=tail)
    layers64 = [_float64(layer) for layer in spec.layers]  # cast once, not per sequence
    seqs = list(token_ids)
    it = seqs
    if progress:
        from ..progress import progress_bar
        it = progress_bar(seqs, desc="calibrating", unit="sent", leave=False)
    for ids in it:
        x = embed(spec, ids).astype(np.float64)
        cal.observe_embedding(x)
        for i, layer in enumerate(layers64):
            x = layer_fp32(spec, layer, x, cal.observer(i))
    if not seqs:
        raise ValueError("no calibration sequence was observed")
    return cal


def calibrate(spec: EncoderSpec, token_ids: Iterable[Sequence[int]], progress: bool = False,
              estimators: dict | None = None) -> dict:
    """Activation ranges of ``spec`` over real calibration sentences (:func:`collect`, then
    :meth:`Calibrator.ranges`).

    Args:
        spec: the float model.
        token_ids: real sentences, tokenized (each ``(n,)`` ints).
        estimators: per-site range estimators (:func:`padless.quant.ranges.parse_estimators`); None: the
            per-channel max |x| everywhere (min-max calibration).
    Returns:
        the ranges dict of :meth:`Calibrator.ranges`.
    Raises:
        InputError (from the embedding) for an empty or too long sequence, or a bad estimator config;
        ValueError for no sequence.
    """
    from .ranges import parse_estimators, tail_needed
    seqs = [list(map(int, s)) for s in token_ids]
    est = parse_estimators(estimators)
    tokens = sum(len(s) for s in seqs)
    cal = collect(spec, seqs, progress=progress, tail=tail_needed(est, tokens))
    return cal.ranges(est)
