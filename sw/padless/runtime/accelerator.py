"""``padless.runtime.Accelerator``: the one host API over every backend (sentence-transformers style).

    >>> from padless.runtime import Accelerator
    >>> with Accelerator("out/minilm-l6-u280") as acc:          # backend="auto"
    ...     emb = acc.encode(["a gripping film", "dull"], normalize_embeddings=True)   # (2, 384) float32

Host side (float only at the edges): tokenize, embedding lookup + LayerNorm, int8 quantization, packing
of whole sequences end to end without padding (first-fit decreasing, :func:`padless.runtime.host.pack_plan`),
the backend runs the integer encoder on each pack, results are unpacked in input order and mean-pooled.
"""
from __future__ import annotations

import sys
import warnings
from typing import Sequence

import numpy as np

from ..errors import InputError, PadlessError
from ..project import load_project
from .backends import BACKENDS, get_backend
from .host import embeddings_from_hidden, run_hidden

DEFAULT_MAX_TOKENS = 2048


def pick_backend(project) -> tuple[str, str]:
    """The ``auto`` choice for ``project``: ``("pynq", why)`` when pynq finds a device (a board, or the
    simulated device when ``PADLESS_SIM_DEVICE=1``), else ``("csim", why)`` when the project has a
    generated HLS kernel and the csim backend exists, else ``("golden", why)``."""
    try:
        from .simdevice import find_device
        dev = find_device()
    except PadlessError:
        dev = None
    if dev is not None:
        return "pynq", f"pynq device {dev.tag}"
    if (project.path / "hls").is_dir():
        try:
            import importlib
            importlib.import_module(BACKENDS["csim"].split(":")[0])
            return "csim", "no pynq device; csim library of the generated kernel"
        except ModuleNotFoundError:
            pass
    return "golden", "no pynq device and no csim build for this project"


class Accelerator:
    """A compiled project on a backend.

    Args:
        project_dir: folder written by ``padless compile``.
        backend: ``auto`` (pynq when a device is found, else csim, else golden with a warning),
            ``golden``, ``csim`` or ``pynq``.
        max_tokens: tokens per packed batch (default: the kernel's ``hls.max_tokens``, else 2048).
        backend_kwargs: passed to the backend class (e.g. ``device=``, ``timeout_s=`` for pynq).

    Raises ProjectError (bad project), InputError (unknown backend), ToolMissingError / DeviceError from
    the backend. Use as a context manager, or call :meth:`close`, to release device buffers.
    """

    def __init__(self, project_dir, backend: str = "auto", max_tokens: int | None = None, **backend_kwargs):
        self.project = load_project(project_dir)
        hls_max = int((self.project.manifest.get("hls") or {}).get("max_tokens") or 0)
        self.max_tokens = int(max_tokens or hls_max or DEFAULT_MAX_TOKENS)
        if self.max_tokens < 1:
            raise InputError(f"max_tokens must be at least 1, got {self.max_tokens}")
        self.reason = "requested"
        if backend == "auto":
            backend, self.reason = pick_backend(self.project)
            if backend == "golden":
                warnings.warn(f"Accelerator: {self.reason}; using the golden model", RuntimeWarning, stacklevel=2)
            try:
                self.backend = self._make(backend, backend_kwargs)
            except PadlessError as exc:
                if backend != "csim":
                    raise
                warnings.warn(f"Accelerator: the csim backend is unavailable ({exc}); using the golden model",
                              RuntimeWarning, stacklevel=2)
                backend, self.reason = "golden", f"csim unavailable: {exc}"
                self.backend = self._make(backend, {})
        else:
            self.backend = self._make(backend, backend_kwargs)
        self.backend_name = backend

    def _make(self, name: str, kwargs: dict):
        if kwargs:
            if name not in BACKENDS:
                raise InputError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
            import importlib
            module, cls = BACKENDS[name].split(":")
            return getattr(importlib.import_module(module), cls)(self.project, **kwargs)
        return get_backend(name, self.project)

    @property
    def hidden_size(self) -> int:
        return int(self.project.model["hidden_size"])

    def tokenize(self, sentences: Sequence[str], truncate: bool = True) -> list[list[int]]:
        """Texts -> token id lists with the project's tokenizer."""
        if isinstance(sentences, str):
            raise InputError("give a list of sentences, not one string")
        return self.project.tokenize(list(sentences), truncate=truncate)

    def run(self, token_id_lists: Sequence[Sequence[int]], progress=None) -> list[np.ndarray]:
        """Token id lists -> last-layer hidden states, one ``(n_i, hidden)`` int8 array per sequence, in
        input order (packed without padding, ``max_tokens`` per pack). Raises InputError for an empty
        sequence, ids outside the vocabulary or a sequence longer than the model's positions."""
        if len(token_id_lists) == 0:
            return []
        return run_hidden(self.project, self.backend, token_id_lists, max_tokens=self.max_tokens, progress=progress)

    def encode(self, sentences: Sequence[str], batch_size: int = 256, show_progress_bar: bool = False,
               normalize_embeddings: bool | None = None, convert_to_numpy: bool = True) -> np.ndarray:
        """Sentence embeddings ``(B, hidden)`` float32 in input order (mean pooling over real tokens).

        ``batch_size``: sentences handed to the packer at a time (each group is packed into batches of
        at most ``max_tokens`` tokens). ``normalize_embeddings``: True forces L2 normalisation; otherwise
        the model's recipe decides (all-MiniLM-L6-v2 normalises). Raises InputError for an empty sentence or a bad argument."""
        if isinstance(sentences, str):
            sentences = [sentences]
        sentences = list(sentences)
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if not sentences:
            return np.zeros((0, self.hidden_size), dtype=np.float32)
        from tqdm import tqdm
        out = []
        with tqdm(total=len(sentences), desc=f"encode ({self.backend_name})", unit="sent",
                  disable=not show_progress_bar, file=sys.stderr) as bar:
            for i in range(0, len(sentences), batch_size):
                ids = self.tokenize(sentences[i:i + batch_size])
                hidden = self.run(ids, progress=bar.update)
                out.append(embeddings_from_hidden(self.project, hidden))
        emb = np.concatenate(out).astype(np.float32)
        if normalize_embeddings:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def close(self) -> None:
        """Release the backend's buffers (idempotent)."""
        b = getattr(self, "backend", None)
        if b is not None:
            b.close()
            self.backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"Accelerator({str(self.project.path)!r}, backend={self.backend_name!r})"
