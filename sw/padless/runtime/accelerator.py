"""``padless.runtime.Accelerator``: the one host API over every backend (sentence-transformers style).

    >>> from padless.runtime import Accelerator
    >>> with Accelerator("out/minilm-l6-u280") as acc:          # backend="auto"
    ...     emb = acc.encode(["a gripping film", "dull"], normalize_embeddings=True)   # (2, 384) float32

Host side (float only at the edges): tokenize, embedding lookup + LayerNorm, int8 quantization, packing
of whole sequences end to end without padding (first-fit decreasing, :func:`padless.runtime.host.pack_plan`),
the backend runs the integer encoder on each pack, results are unpacked in input order and mean-pooled.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Sequence

import numpy as np

from ..errors import ClosedError, InputError, PadlessError
from ..inputs import brief
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
        max_tokens: tokens per packed batch, at least 1 (default: the kernel's ``hls.max_tokens``, else 2048).
        max_length: truncation length of :meth:`encode` in tokens, [CLS] and [SEP] included, from 2 to
            the model's positions (default: the project's, i.e. sentence-transformers' ``max_seq_length``
            of the model, 256 for all-MiniLM-L6-v2, else its positions). Also :attr:`max_seq_length`.
        backend_kwargs: passed to the backend class (e.g. ``device=``, ``timeout_s=`` for pynq).

    Thread safety: one Accelerator may be used from several threads, and several Accelerators of one
    project at once; every backend returns the same bits as a single thread (csim and the simulated
    device serialise calls into one loaded kernel library; docs/reliability.md).

    Raises ProjectError (bad project), InputError (unknown backend, bad max_tokens / max_length),
    ToolMissingError / DeviceError from the backend. Use as a context manager, or call :meth:`close`, to
    release device buffers; any call after :meth:`close` raises ClosedError.
    """

    def __init__(self, project_dir, backend: str = "auto", max_tokens: int | None = None,
                 max_length: int | None = None, **backend_kwargs):
        self.backend = None
        if not isinstance(project_dir, (str, os.PathLike)) or isinstance(project_dir, bytes):
            raise InputError(f"Accelerator needs a project folder (a str or pathlib.Path written by `padless compile`), "
                             f"got {type(project_dir).__name__} {brief(project_dir, 60)}")
        if not isinstance(backend, str):
            raise InputError(f"backend must be a name (auto, {', '.join(BACKENDS)}), got {type(backend).__name__}")
        self.project = load_project(project_dir)
        hls_max = int((self.project.manifest.get("hls") or {}).get("max_tokens") or 0)
        if max_tokens is not None and (not isinstance(max_tokens, (int, np.integer)) or isinstance(max_tokens, bool)
                                       or max_tokens < 1):
            raise InputError(f"max_tokens must be an integer >= 1 (tokens per packed batch), got {max_tokens!r}")
        self.max_tokens = int(max_tokens or hls_max or DEFAULT_MAX_TOKENS)
        self.max_seq_length = self.project.max_length if max_length is None else \
            self.project.check_max_length(max_length)
        self._warned_truncation = False
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
        """Texts -> token id lists with the project's tokenizer, cut at :attr:`max_seq_length` tokens when
        ``truncate`` (else a longer text is an InputError)."""
        if isinstance(sentences, str):
            raise InputError("give a list of sentences, not one string")
        return self.project.tokenize(list(sentences), truncate=truncate, max_length=self.max_seq_length)

    def _backend(self):
        if self.backend is None:
            raise ClosedError(f"{self!r} was closed; create a new Accelerator")
        return self.backend

    def run(self, token_id_lists: Sequence[Sequence[int]], progress=None) -> list[np.ndarray]:
        """Token id lists -> last-layer hidden states, one ``(n_i, hidden)`` int8 array per sequence, in
        input order (packed without padding, ``max_tokens`` per pack). Raises InputError for an empty
        sequence, ids that are not integers or lie outside the vocabulary, or a sequence longer than the
        model's positions; ClosedError after :meth:`close`."""
        backend = self._backend()
        if len(token_id_lists) == 0:
            return []
        return run_hidden(self.project, backend, token_id_lists, max_tokens=self.max_tokens, progress=progress)

    def encode(self, sentences: Sequence[str], batch_size: int = 256, show_progress_bar: bool = False,
               normalize_embeddings: bool | None = None, convert_to_numpy: bool = True) -> np.ndarray:
        """Sentence embeddings ``(B, hidden)`` float32 in input order (mean pooling over real tokens).

        Truncation: as sentence-transformers does, a sentence longer than :attr:`max_seq_length` tokens
        ([CLS] and [SEP] included; 256 for all-MiniLM-L6-v2, from its ``sentence_bert_config.json``) is
        cut to its first ``max_seq_length - 1`` tokens and [SEP]; the first time this happens an
        Accelerator warns (``UserWarning``) naming the length. (``padless run`` refuses such a text
        unless ``--truncate``.)

        ``batch_size``: sentences handed to the packer at a time (each group is packed into batches of
        at most ``max_tokens`` tokens). ``normalize_embeddings``: True forces L2 normalisation; otherwise
        the model's recipe decides (all-MiniLM-L6-v2 normalises). ``convert_to_numpy``: True (default)
        returns one ``(B, hidden)`` array; False a list of ``B`` 1-D float32 ``torch.Tensor`` (as
        sentence-transformers does). Raises InputError for an empty sentence, one with no words, a
        sentence that is not a ``str`` (bytes, None, a dict's keys), or a flag that is not a bool;
        ClosedError after :meth:`close`."""
        self._backend()
        sentences = _sentence_list(sentences)
        for name, flag in (("show_progress_bar", show_progress_bar), ("convert_to_numpy", convert_to_numpy),
                           ("normalize_embeddings", normalize_embeddings)):
            if not isinstance(flag, (bool, np.bool_)) and not (flag is None and name == "normalize_embeddings"):
                raise InputError(f"{name} must be True or False, got {brief(flag, 60)}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {brief(batch_size, 60)}")
        if not sentences:
            empty = np.zeros((0, self.hidden_size), dtype=np.float32)
            return empty if convert_to_numpy else []
        from ..progress import progress_bar
        out = []
        with progress_bar(total=len(sentences), desc=f"encode ({self.backend_name})", unit="sent",
                          disable=not show_progress_bar, file=sys.stderr) as bar:
            for i in range(0, len(sentences), batch_size):
                cut: list[int] = []
                ids = self.project.tokenize(sentences[i:i + batch_size], truncate=True,
                                            max_length=self.max_seq_length, truncated=cut)
                self._warn_truncation(cut)
                hidden = self.run(ids, progress=bar.update)
                out.append(embeddings_from_hidden(self.project, hidden))
        emb = np.concatenate(out).astype(np.float32)
        if normalize_embeddings:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        if not convert_to_numpy:
            import torch
            return [torch.from_numpy(row.copy()) for row in emb]
        return emb

    def _warn_truncation(self, cut: list) -> None:
        if cut and not self._warned_truncation:
            self._warned_truncation = True
            src = self.project.max_length_from if self.max_seq_length == self.project.max_length else "max_length="
            warnings.warn(f"Accelerator.encode: {len(cut)} sentence(s) longer than max_seq_length = "
                          f"{self.max_seq_length} tokens ({src}) were truncated, as sentence-transformers does; "
                          "pass max_length= to change the length (this warning is shown once per Accelerator)",
                          UserWarning, stacklevel=3)

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


def _sentence_list(sentences) -> list[str]:
    """``encode``'s sentences as a list of ``str``: one ``str`` is one sentence; a list, tuple, numpy
    array or other ordered iterable of ``str`` is taken in order. Raises InputError for None, bytes, a
    mapping or set (no order / keys are not sentences), or an element that is not a ``str``."""
    if isinstance(sentences, str):
        return [sentences]
    if sentences is None or isinstance(sentences, (bytes, bytearray, Mapping, set, frozenset)) or \
            not isinstance(sentences, Iterable):
        kind = type(sentences).__name__
        hint = " (decode it first: b.decode('utf-8'))" if isinstance(sentences, (bytes, bytearray)) else ""
        raise InputError(f"sentences must be a str or a list of str, got {kind}{hint}")
    out = list(sentences)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            hint = " (decode it first: b.decode('utf-8'))" if isinstance(s, (bytes, bytearray)) else ""
            raise InputError(f"sentences[{i}] is {type(s).__name__} {brief(s, 60)}, not str{hint}")
    return out
