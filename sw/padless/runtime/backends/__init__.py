"""Execution backends. Each takes a project and runs the integer encoder on a packed int8 batch.

Interface (every backend): ``Backend(project)`` then ``run(x, offsets) -> (tokens, hidden) int8`` where
``x`` is ``(tokens, hidden)`` int8 (the quantized host embedding of the packed sequences) and
``offsets`` ``(B + 1,)`` int64. Every backend returns identical bits for identical input.
"""
from __future__ import annotations

import importlib

from ...errors import InputError

# name -> "module:Class"; a backend module is imported only when asked for.
BACKENDS = {
    "golden": "padless.runtime.backends.golden:GoldenBackend",
    "csim": "padless.runtime.backends.csim:CsimBackend",
    "pynq": "padless.runtime.backends.pynq:PynqBackend",
}


def get_backend(name: str, project):
    """Instantiate backend ``name`` for ``project``. Raises InputError for an unknown or unavailable name."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise InputError(f"backend {name!r} is not available in this padless build; use --backend golden") from exc
        raise
    return getattr(mod, cls)(project)
