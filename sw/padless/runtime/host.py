"""The host half of every run: tokenize, embed, quantize, pack without padding, run, unpack, pool.

Sequences are packed end to end into batches of at most ``max_tokens`` tokens (no padding). To keep
every backend's work per batch balanced, sequences are taken longest first (first-fit decreasing
packing); results are always returned in input order.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..golden import dequantize_output, quantize_input
from ..reference import embed, pool


def pack_plan(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Group sequence indices into packs of at most ``max_tokens`` tokens (a sequence longer than
    ``max_tokens`` gets a pack of its own), longest first. Every index appears exactly once."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    packs: list[list[int]] = []
    loads: list[int] = []
    for i in order:
        n = lengths[i]
        for p, load in enumerate(loads):
            if load + n <= max_tokens:
                packs[p].append(i)
                loads[p] += n
                break
        else:
            packs.append([i])
            loads.append(n)
    return packs


def run_hidden(project, backend, token_ids: Sequence[Sequence[int]], max_tokens: int = 2048,
               progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """Int8 last-layer hidden states, one ``(n_b, hidden)`` int8 array per sequence, in input order.

    Raises InputError (empty sequence, ids outside the vocabulary, too long) before anything runs.
    """
    host = project.host
    qe_in = np.asarray(project.quantized.input_scale)
    embedded = [quantize_input(embed(host, ids), qe_in) for ids in token_ids]  # validates every input
    out: list[np.ndarray | None] = [None] * len(embedded)
    for group in pack_plan([len(e) for e in embedded], max_tokens):
        x = np.concatenate([embedded[i] for i in group])
        offsets = np.concatenate([[0], np.cumsum([len(embedded[i]) for i in group])]).astype(np.int64)
        y = np.asarray(backend.run(x, offsets))
        for j, i in enumerate(group):
            out[i] = y[offsets[j]:offsets[j + 1]]
        if progress:
            progress(len(group))
    return out  # type: ignore[return-value]


def embeddings_from_hidden(project, hidden: Sequence[np.ndarray]) -> np.ndarray:
    """Pool int8 hidden states into sentence embeddings ``(B, hidden)`` float32 (host, float)."""
    scale = np.asarray(project.quantized.output_scale)
    return np.stack([pool(project.host, dequantize_output(h, scale)) for h in hidden])
