"""Packed batches: variable-length sequences laid end to end, never padded.

A packed batch of B sequences is a token-major array ``(total_tokens, ...)`` plus ``offsets`` ``(B + 1,)``
int64 with ``offsets[0] == 0`` and sequence ``b`` at rows ``offsets[b]:offsets[b + 1]`` (the
``cu_seqlens`` convention of FlashAttention's varlen kernels).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class PackingError(ValueError):
    """Offsets that do not describe a valid packed batch."""


def offsets_from_lengths(lengths: Sequence[int]) -> np.ndarray:
    """``(B,)`` lengths -> ``(B + 1,)`` int64 offsets. Raises PackingError for a length < 1."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1:
        raise PackingError("lengths must be one-dimensional")
    if lengths.size and lengths.min() < 1:
        raise PackingError(f"every sequence needs at least one token; got length {int(lengths.min())}")
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def check_offsets(offsets: np.ndarray, total: int) -> np.ndarray:
    """Validate ``offsets`` against ``total`` rows; returns them as int64."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0:
        raise PackingError("offsets must be a 1-D array starting at 0")
    if np.any(np.diff(offsets) < 1):
        raise PackingError("offsets must be strictly increasing (no empty sequences)")
    if offsets[-1] != total:
        raise PackingError(f"offsets end at {int(offsets[-1])} but the pack has {total} rows")
    return offsets


def pack(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate sequences ``[(n_b, ...)]`` into ``(sum n_b, ...)`` and return ``(packed, offsets)``."""
    if len(sequences) == 0:
        raise PackingError("nothing to pack: no sequences")
    offsets = offsets_from_lengths([len(s) for s in sequences])
    return np.concatenate([np.asarray(s) for s in sequences], axis=0), offsets


def unpack(packed: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Split a packed array back into its sequences (views, in pack order)."""
    offsets = check_offsets(offsets, len(packed))
    return [packed[offsets[b]:offsets[b + 1]] for b in range(len(offsets) - 1)]
