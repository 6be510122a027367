"""The golden backend: the bit-exact numpy integer model (:mod:`padless.golden`)."""
from __future__ import annotations

import numpy as np

from ...golden import run_encoder


class GoldenBackend:
    """Runs ``padless.golden.run_encoder`` on the project's integer model and sparsity config."""

    name = "golden"

    def __init__(self, project):
        self.project = project
        self.qe = project.quantized

    def run(self, x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``(tokens, hidden)`` int8 packed input, ``(B + 1,)`` offsets -> ``(tokens, hidden)`` int8."""
        return run_encoder(self.qe, x, offsets, self.project.sparsity)

    def close(self) -> None:
        pass
