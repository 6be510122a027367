"""The csim backend: the project's HLS C++ kernel built with g++ and called through ctypes.

Same interface and same bits as the golden backend. The library is built on first use and cached
(:func:`padless.csim.build_library`). A pack larger than the kernel's compiled ``max_tokens`` is split
into sub-packs at sequence boundaries: every sequence's result is independent of its pack-mates, so this
changes no bit.
"""
from __future__ import annotations

import numpy as np

from ...csim import CsimLibrary, build_library
from ...errors import ClosedError, InputError, ProjectError
from ...packing import check_offsets


class CsimBackend:
    """``CsimBackend(project)``; ``run(x (tokens, hidden) int8, offsets (B+1,) int64) -> (tokens, hidden) int8``.

    Raises ProjectError when the project has no generated HLS code (recompile), ToolMissingError when
    g++ or the ap_types headers are missing, InputError for a sequence longer than the compiled maximum.
    """

    name = "csim"

    def __init__(self, project, cache=None, extra_flags: tuple = ()):
        self.project = project
        info = project.manifest.get("hls")
        if not info or "weights" not in project.manifest.get("files", {}):
            raise ProjectError(f"{project.path} has no HLS code (hls/ and weights.bin); recompile it with "
                               "`padless compile MODEL --board BOARD --out DIR`")
        if project.sparsity.get("tokens"):
            raise ProjectError(f"{project.path} uses token reduction ({project.sparsity['tokens']}), which the HLS "
                               "kernel does not implement yet; use --backend golden")
        built = info.get("sparsity") or {}
        for part in ("attention", "weights"):
            if (built.get(part) or {}) != (project.sparsity.get(part) or {}):
                raise ProjectError(f"{project.path}: the HLS code was generated for {part} sparsity "
                                   f"{built.get(part) or {}} but the manifest says {project.sparsity.get(part) or {}}; "
                                   "regenerate it (padless compile, or padless.codegen.hls.generate)")
        self.hidden = int(project.model["hidden_size"])
        self.max_tokens = int(info["max_tokens"])
        self.max_seq = int(info["max_seq"])
        self.lib = CsimLibrary(build_library(project.path / "hls", extra_flags=extra_flags, cache=cache))
        self.weights = np.fromfile(project.file("weights"), dtype="<u8")

    def _call(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        if self.lib is None:
            raise ClosedError("the csim backend was closed; create a new one")
        x = np.ascontiguousarray(x, dtype=np.int8)
        off = np.ascontiguousarray(offsets - offsets[0], dtype=np.int64)
        y = np.empty_like(x)
        status = self.lib.call(x, y, off, self.weights, len(off) - 1, len(x))
        if status:
            raise InputError(f"csim kernel rejected the batch: {CsimLibrary.STATUS.get(status, status)} "
                             f"(max_tokens {self.max_tokens}, max sequence {self.max_seq})")
        return y

    def run(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(tokens, hidden)`` int8 packed input, ``(B + 1,)`` offsets -> ``(tokens, hidden)`` int8."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.hidden:
            raise InputError(f"csim expects (tokens, {self.hidden}) int8 input, got shape {x.shape}")
        offsets = check_offsets(offsets, len(x))
        lens = np.diff(offsets)
        if len(lens) and lens.max() > self.max_seq:
            raise InputError(f"a sequence of {int(lens.max())} tokens exceeds the compiled maximum {self.max_seq}")
        out = np.empty((len(x), self.hidden), dtype=np.int8)
        b = 0
        while b < len(lens):
            e = b
            while e < len(lens) and offsets[e + 1] - offsets[b] <= self.max_tokens:
                e += 1
            s, t = offsets[b], offsets[e]
            out[s:t] = self._call(x[s:t], offsets[b:e + 1])
            b = e
        return out

    def close(self) -> None:
        self.lib = None
