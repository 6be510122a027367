"""Host runtime: :class:`Accelerator` (the one host API), packing (:mod:`.host`), backends, simulated device."""
from __future__ import annotations


def __getattr__(name):  # lazy: importing padless.runtime stays cheap (no pynq, no torch)
    if name == "Accelerator":
        from .accelerator import Accelerator
        return Accelerator
    raise AttributeError(name)


__all__ = ["Accelerator"]
