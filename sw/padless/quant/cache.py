"""The quantization cache: calibration ranges, SmoothQuant migration and GPTQ weights, computed once.

``padless compile`` spends nearly all of its time in calibration and GPTQ (about 3.5 minutes for the
default minilm-l6, docs/benchmarks.md), and their result depends on neither the board nor the attention
or token sparsity. The integer model (:func:`padless.quant.quantize.save_quantized`'s ``.npz``, which holds
the migrated, GPTQ-rounded weights and every scale and range) is therefore kept under

    ``$PADLESS_CACHE/quant`` (default ``~/.cache/padless/quant``)  ``<key>.npz`` + ``<key>.json``

keyed by the SHA-256 of everything it depends on (:func:`cache_key`): the content of the model after
weight pruning (every array of the :class:`padless.ir.EncoderSpec`, so a changed file or pruning config
misses), the calibration token ids (texts and tokenizer), the GPTQ calibration ids, the normalised
``quant:`` config, ``--alpha``, and the version of the quantization code (padless's version and a hash of
the sources of :mod:`padless.quant`). Entries are written atomically (:mod:`padless.fsutil`) and verified
on read: the JSON must name its key and the SHA-256 of the ``.npz``, and the ``.npz`` must load; anything
else (a truncated, edited or foreign entry) is ignored, recomputed and replaced, never trusted.
``PADLESS_QUANT_CACHE=off`` turns the cache off.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .. import __version__

FORMAT = "padless-quant-cache"
VERSION = 1


def cache_dir() -> Path:
    """``$PADLESS_CACHE/quant`` or ``~/.cache/padless/quant``."""
    root = os.environ.get("PADLESS_CACHE") or Path.home() / ".cache" / "padless"
    return Path(root) / "quant"


def enabled() -> bool:
    """False when ``PADLESS_QUANT_CACHE`` is ``off`` / ``0`` / ``no``."""
    return os.environ.get("PADLESS_QUANT_CACHE", "on").strip().lower() not in ("off", "0", "no", "false")


def _code_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for f in sorted(here.glob("*.py")):
        if f.name != "cache.py":
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _feed(h, obj) -> None:
    """Hash ``obj`` (arrays by dtype, shape and bytes; dataclasses field by field; containers in order)."""
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"nd{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        for f in dataclasses.fields(obj):
            if f.name in ("tokenizer_path", "source"):   # where it came from, not what it is
                continue
            h.update(f.name.encode())
            _feed(h, getattr(obj, f.name))
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(str(k).encode() + b":")
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())
    h.update(b";")


def cache_key(spec, calib_ids, quant: dict, alpha: float, gptq_ids=None) -> str:
    """The SHA-256 (hex) of everything the integer model depends on (module docstring)."""
    h = hashlib.sha256()
    h.update(f"{FORMAT}/{VERSION}/{__version__}/{_code_hash()}".encode())
    _feed(h, spec)
    h.update(json.dumps([[int(t) for t in s] for s in calib_ids]).encode())
    h.update(json.dumps(None if gptq_ids is None else [[int(t) for t in s] for s in gptq_ids]).encode())
    h.update(json.dumps(quant, sort_keys=True, default=str).encode())
    h.update(repr(float(alpha)).encode())
    return h.hexdigest()


def load(key: str, root: Path | None = None):
    """``(npz bytes, record)`` of a verified entry, or None (missing, or anything wrong with it: it is then
    recomputed and replaced). ``record`` is the JSON dict (``calibration`` holds the step's record)."""
    root = Path(root or cache_dir())
    try:
        rec = json.loads((root / f"{key}.json").read_text(encoding="utf-8"))
        data = (root / f"{key}.npz").read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT or rec.get("version") != VERSION \
            or rec.get("key") != key or rec.get("npz_sha256") != hashlib.sha256(data).hexdigest():
        return None
    return data, rec


def store(key: str, data: bytes, calibration: dict, root: Path | None = None) -> bool:
    """Write an entry (the ``.npz`` first, then the JSON naming its SHA-256). Returns False, writing
    nothing more, when the cache folder cannot be written (a compile never fails for its cache)."""
    from ..fsutil import WriteError, write_bytes, write_text
    root = Path(root or cache_dir())
    rec = {"format": FORMAT, "version": VERSION, "key": key, "padless_version": __version__,
           "npz_sha256": hashlib.sha256(data).hexdigest(), "calibration": calibration}
    try:
        write_bytes(root / f"{key}.npz", data, root.parent)
        write_text(root / f"{key}.json", json.dumps(rec, indent=1, default=_json_default) + "\n", root.parent)
    except WriteError:
        return False
    return True


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
