"""Training checkpoints without pickles: tensors in safetensors, everything else in JSON.

``padless finetune`` checkpoints (student, optimizer and scheduler state, RNG state, step, loss history,
QAT scales, ...) are nested dicts/lists/tuples of tensors, numpy arrays and plain values. A pickle
(``torch.save``) of them would run code on ``--resume`` if the file were replaced, so they are split:

* ``checkpoint.safetensors``: every tensor (and numpy array) of the tree, under keys ``t0``, ``t1``, ...
  (safetensors holds raw tensor data and a JSON header only; loading it runs nothing);
* ``checkpoint.json``: the tree with each tensor replaced by ``{"__tensor__": "tK"}`` (``"__ndarray__"``
  for numpy), tuples as ``{"__tuple__": [...]}`` and dicts whose keys are not all plain strings as
  ``{"__items__": [[key, value], ...]}`` (an optimizer's integer parameter ids stay integers).

Both files carry the same random ``nonce`` (the JSON's field, the safetensors header's metadata), so a
pair from two different saves (a crash between the two renames) is refused rather than mixed. Writes go
through :mod:`padless.fsutil` (temporary file, fsync, os.replace; never through a link).
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError

TENSORS = "checkpoint.safetensors"
TREE = "checkpoint.json"
FORMAT = "padless-checkpoint"
VERSION = 1


def _encode(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"a checkpoint cannot hold a {type(obj).__name__} (only tensors, arrays, numbers, strings, "
                    "lists, tuples and dicts)")


def _decode(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if set(obj) == {"__tensor__"}:
        return tensors[obj["__tensor__"]]
    if set(obj) == {"__ndarray__"}:
        return tensors[obj["__ndarray__"]].numpy()
    if set(obj) == {"__tuple__"}:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if set(obj) == {"__items__"}:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def save_checkpoint(state: dict, folder) -> Path:
    """Write ``state`` as ``checkpoint.safetensors`` + ``checkpoint.json`` in ``folder``; returns the JSON
    path. Raises TypeError for a value that is not a tensor, array, number, string, list, tuple or dict."""
    from safetensors.torch import save
    from .. import fsutil
    folder = Path(folder)
    tensors: dict = {}
    tree = _encode(state, tensors)
    nonce = secrets.token_hex(16)
    doc = {"format": FORMAT, "version": VERSION, "nonce": nonce, "state": tree}
    # each file atomic and never through a link (padless.fsutil); the nonce pairs the two
    fsutil.write_bytes(folder / TENSORS, save(tensors, metadata={"format": FORMAT, "nonce": nonce}), folder)
    fsutil.write_text(folder / TREE, json.dumps(doc), folder)
    return folder / TREE


def has_checkpoint(folder) -> bool:
    """True when ``folder`` holds both checkpoint files."""
    folder = Path(folder)
    return (folder / TENSORS).is_file() and (folder / TREE).is_file()


def load_checkpoint(folder) -> dict:
    """Read the state :func:`save_checkpoint` wrote to ``folder`` (no pickle: safetensors + JSON).

    Raises InputError for missing, corrupted or mismatched files (naming what to do)."""
    from safetensors import safe_open
    folder = Path(folder)
    if not has_checkpoint(folder):
        raise InputError(f"no checkpoint in {folder} ({TENSORS} + {TREE})")
    try:
        doc = json.loads((folder / TREE).read_text(encoding="utf-8"))
        with safe_open(str(folder / TENSORS), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # JSON, safetensors header or I/O errors
        raise InputError(f"the checkpoint in {folder} is corrupted ({type(exc).__name__}: {exc}); start again "
                         "without --resume (or with a new --out)") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise InputError(f"{folder / TREE} is not a padless checkpoint of version {VERSION}; start without --resume")
    if meta.get("nonce") != doc.get("nonce"):
        raise InputError(f"{folder / TENSORS} and {folder / TREE} come from different saves (an interrupted "
                         "write); start again without --resume")
    try:
        return _decode(doc["state"], tensors)
    except (KeyError, TypeError) as exc:
        raise InputError(f"the checkpoint in {folder} is corrupted ({exc}); start again without --resume") from exc
