"""Frontend for ``torch.nn.TransformerEncoder`` / ``TransformerEncoderLayer`` models.

PyTorch's encoder layer (``torch/nn/modules/transformer.py``) is, per layer with ``norm_first=False``
(post-norm, the original Transformer and BERT)::

    h = norm1(x + out_proj(MHA(x)));  y = norm2(h + linear2(act(linear1(h))))

and with ``norm_first=True`` (pre-norm)::

    h = x + out_proj(MHA(norm1(x)));  y = h + linear2(act(linear1(norm2(h))))

which is exactly :class:`padless.ir.LayerSpec` with ``ln_attn = norm1``, ``ln_ffn = norm2``. The packed
``in_proj_weight`` ``(3 * hidden, hidden)`` is split row-wise into Q, K and V (the order
``F.multi_head_attention_forward`` uses); the encoder's optional ``norm`` becomes
:attr:`EncoderSpec.final_ln`. ``batch_first`` only changes the input layout, not the weights, so both
layouts give the same spec. Attention scale is ``1 / sqrt(head_dim)``, as in ``MultiheadAttention``.

A ``TransformerEncoder`` has no token embedding, so the embedding is given next to it (see
:func:`load_torch_encoder`): an ``nn.Embedding`` (plus an optional positional table), or a module that
names its tables like BERT's (``word_embeddings``, ``position_embeddings``, ``token_type_embeddings``,
``LayerNorm``). The host computes ``word[ids] * scale + position[offset : offset + n] + token_type[0]``,
then the optional embedding LayerNorm (:func:`padless.reference.embed`).

Saved files (``padless compile model.pt``): :func:`load_torch_path` reads a ``torch.save``-d dict (or
module) made of ``torch.nn`` modules and tensors, or a *scripted* TorchScript archive (``torch.jit.script``
+ ``torch.jit.save``). Nothing is unpickled that could run code: ``torch.load(weights_only=True)`` with
only the ``torch.nn`` classes of :data:`SAFE_GLOBALS` allowed, and a file naming any other Python object
(a user's own class, ``os.system``...) is refused before loading. See docs/interchange.md for the
conventions and docs/reliability.md for the threat model.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError, UnknownModelError
from ..ir import EmbeddingSpec, EncoderSpec, LayerNormSpec, LayerSpec, LinearSpec, SpecError

def _safe_globals() -> list:
    """The classes and functions a ``torch.save`` file may reference: the ``torch.nn`` modules an
    ``nn.TransformerEncoder`` and its embedding are built from, and the activations they store. Loading
    them runs no code from the file (``weights_only=True`` rebuilds them from tensors and plain values)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    return [nn.TransformerEncoder, nn.TransformerEncoderLayer, nn.MultiheadAttention,
            nn.modules.linear.NonDynamicallyQuantizableLinear, nn.Linear, nn.LayerNorm, nn.Dropout, nn.Embedding,
            nn.ModuleList, nn.ModuleDict, nn.Module, nn.Identity, nn.GELU, nn.ReLU, F.relu, F.gelu,
            torch._C._nn.gelu]


def _global_name(g) -> str:
    return f"{g.__module__}.{g.__qualname__}"


#: File suffixes :func:`looks_like_torch` accepts as saved PyTorch modules.
TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
#: Used when the model has no positional table and the caller gives no ``max_positions``.
DEFAULT_MAX_POSITIONS = 512


# --------------------------------------------------------------------------------------------- helpers

def _np(t: Any) -> np.ndarray:
    """A tensor / parameter / array -> a float32 numpy copy."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().float().numpy()
    return np.array(t, dtype=np.float32, copy=True)


def _kind(mod: Any) -> str:
    """The class name of an eager module, or the original class name of a TorchScript module."""
    return getattr(mod, "original_name", None) or type(mod).__name__


def _is_scripted(mod: Any) -> bool:
    import torch

    return isinstance(mod, torch.jit.ScriptModule)


def _children(mod: Any) -> dict:
    return dict(mod.named_children())


def _linear(mod: Any, where: str, hidden_in: Optional[int] = None) -> LinearSpec:
    w = getattr(mod, "weight", None)
    if w is None or w.dim() != 2:
        raise UnknownModelError(f"{where}: expected an nn.Linear with a 2-D weight, got {_kind(mod)}")
    weight = _np(w)
    b = getattr(mod, "bias", None)
    bias = _np(b) if b is not None else np.zeros(weight.shape[0], np.float32)  # bias=False
    return LinearSpec(weight=weight, bias=bias)


def _layer_norm(mod: Any, hidden: int, where: str) -> LayerNormSpec:
    """nn.LayerNorm -> LayerNormSpec; ``elementwise_affine=False`` gives gamma 1, ``bias=False`` beta 0."""
    if _kind(mod) != "LayerNorm":
        raise UnknownModelError(f"{where}: expected nn.LayerNorm, got {_kind(mod)} (RMSNorm and other norms "
                                "are not supported)")
    shape = tuple(getattr(mod, "normalized_shape", (hidden,)))
    if shape != (hidden,):
        raise UnknownModelError(f"{where}: LayerNorm over {shape}, expected the hidden axis ({hidden},)")
    w, b = getattr(mod, "weight", None), getattr(mod, "bias", None)
    gamma = _np(w) if w is not None else np.ones(hidden, np.float32)
    beta = _np(b) if b is not None else np.zeros(hidden, np.float32)
    return LayerNormSpec(gamma=gamma, beta=beta, eps=float(mod.eps))


def _activation(layer: Any, where: str) -> str:
    """``"relu"`` or ``"gelu"`` (erf form) of one TransformerEncoderLayer; raises UnknownModelError."""
    act = getattr(layer, "activation", None)
    # An nn.GELU instance: check its approximation (activation_relu_or_gelu says 2 for tanh GELU too).
    approx = getattr(act, "approximate", None)
    if approx not in (None, "none"):
        raise UnknownModelError(
            f"{where}: activation GELU(approximate={approx!r}) is not supported; padless implements the erf "
            "GELU (I-BERT i-GELU) and ReLU: use activation='gelu' or 'relu'")
    code = getattr(layer, "activation_relu_or_gelu", None)
    if code == 1:
        return "relu"
    if code == 2:
        return "gelu"
    import torch.nn.functional as F

    if act is F.relu or _kind(act) == "ReLU":
        return "relu"
    if act is F.gelu or _kind(act) == "GELU":
        return "gelu"
    name = getattr(act, "__name__", None) or _kind(act)
    raise UnknownModelError(f"{where}: activation {name} is not supported (padless implements gelu and relu)")


def _check_forward(mod: Any, base_name: str, where: str) -> None:
    """Refuse subclasses that replace ``forward``: their computation is unknown to the frontend."""
    if _is_scripted(mod):
        if _kind(mod) != base_name:
            raise UnknownModelError(f"{where}: TorchScript module {_kind(mod)!r} is not a {base_name}")
        return
    import torch.nn as nn

    base = getattr(nn, base_name)
    if not isinstance(mod, base):
        raise UnknownModelError(f"{where}: expected torch.nn.{base_name}, got {type(mod).__name__}")
    if type(mod).forward is not base.forward:
        raise UnknownModelError(
            f"{where}: {type(mod).__name__} overrides {base_name}.forward, so padless cannot know what it "
            "computes; use the stock module or export the model to ONNX")


def _qkv(attn: Any, hidden: int, where: str) -> tuple[LinearSpec, LinearSpec, LinearSpec]:
    """Split ``MultiheadAttention``'s projections into Q, K, V ``(hidden, hidden)`` LinearSpecs."""
    for attr in ("bias_k", "bias_v"):
        if getattr(attn, attr, None) is not None:
            raise UnknownModelError(f"{where}: MultiheadAttention(add_bias_kv=True) is not supported")
    if getattr(attn, "add_zero_attn", False):
        raise UnknownModelError(f"{where}: MultiheadAttention(add_zero_attn=True) is not supported")
    w = getattr(attn, "in_proj_weight", None)
    b = getattr(attn, "in_proj_bias", None)
    if w is not None:
        w = _np(w)
        if w.shape != (3 * hidden, hidden):
            raise UnknownModelError(f"{where}: in_proj_weight is {w.shape}, expected {(3 * hidden, hidden)}")
        b = _np(b) if b is not None else np.zeros(3 * hidden, np.float32)
        return tuple(LinearSpec(weight=w[i * hidden:(i + 1) * hidden].copy(),
                                bias=b[i * hidden:(i + 1) * hidden].copy()) for i in range(3))
    # kdim/vdim given: separate q/k/v_proj_weight (they are (hidden, hidden) in self-attention)
    parts = []
    bias = _np(b) if b is not None else np.zeros(3 * hidden, np.float32)
    for i, name in enumerate(("q_proj_weight", "k_proj_weight", "v_proj_weight")):
        pw = getattr(attn, name, None)
        if pw is None or tuple(pw.shape) != (hidden, hidden):
            raise UnknownModelError(f"{where}: MultiheadAttention has neither in_proj_weight nor a "
                                    f"({hidden}, {hidden}) {name}")
        parts.append(LinearSpec(weight=_np(pw), bias=bias[i * hidden:(i + 1) * hidden].copy()))
    return tuple(parts)


def _encoder_layers(encoder: Any) -> tuple[list, Any]:
    """``(layers, final_norm or None)`` of a TransformerEncoder or a single TransformerEncoderLayer."""
    import torch.nn as nn

    kind = _kind(encoder)
    if isinstance(encoder, nn.TransformerEncoderLayer) or (_is_scripted(encoder) and kind == "TransformerEncoderLayer"):
        return [encoder], None
    if isinstance(encoder, nn.TransformerEncoder) or (_is_scripted(encoder) and kind == "TransformerEncoder"):
        _check_forward(encoder, "TransformerEncoder", "encoder")
        return list(_children(encoder.layers).values()), getattr(encoder, "norm", None)
    raise UnknownModelError(
        f"{kind} is not a torch.nn.TransformerEncoder or TransformerEncoderLayer; for other torch models "
        "export to ONNX (torch.onnx.export) or save a transformers model folder")


def _table(obj: Any, what: str) -> np.ndarray:
    """An embedding table ``(rows, hidden)`` from nn.Embedding, a tensor, an array, or a module with a
    ``pe`` buffer (the PyTorch tutorial's sinusoidal ``PositionalEncoding``: ``(rows, 1, hidden)``)."""
    if hasattr(obj, "weight") and getattr(obj, "weight") is not None and not hasattr(obj, "shape"):
        arr = _np(obj.weight)
    elif hasattr(obj, "pe") and not hasattr(obj, "shape"):
        arr = _np(obj.pe)
    elif hasattr(obj, "shape"):
        arr = _np(obj)
    else:
        raise InputError(f"{what}: expected nn.Embedding, a (rows, hidden) tensor or a module with a `pe` "
                         f"buffer, got {type(obj).__name__}")
    if arr.ndim == 3 and 1 in arr.shape[:2]:  # (rows, 1, hidden) or (1, rows, hidden)
        arr = arr.reshape(-1, arr.shape[-1])
    if arr.ndim != 2:
        raise InputError(f"{what}: table has shape {arr.shape}, expected (rows, hidden)")
    return arr


def _embedding_spec(embedding: Any, hidden: int, *, position: Any, token_type: Any, norm: Any,
                    scale: Optional[float], position_offset: Optional[int]) -> EmbeddingSpec:
    if embedding is None:
        raise InputError(
            "a TransformerEncoder has no token embedding: pass embedding=nn.Embedding(vocab, hidden) (and "
            "position=... for a positional table), or a module with BERT-named tables (word_embeddings, "
            "position_embeddings, token_type_embeddings, LayerNorm); see docs/interchange.md")
    if hasattr(embedding, "word_embeddings"):  # BERT-named container module
        c = embedding
        word = _table(c.word_embeddings, "embedding.word_embeddings")
        position = position if position is not None else getattr(c, "position_embeddings", None)
        token_type = token_type if token_type is not None else getattr(c, "token_type_embeddings", None)
        if norm is None:
            norm = getattr(c, "LayerNorm", None)
            norm = norm if norm is not None else getattr(c, "norm", None)
        if scale is None:
            scale = getattr(c, "scale", None)
        if position_offset is None:
            position_offset = getattr(c, "position_offset", None)
    else:
        word = _table(embedding, "embedding")
    if word.shape[1] != hidden:
        raise InputError(f"token embedding is {word.shape}, but the encoder's hidden size is {hidden}")
    pos = _table(position, "position") if position is not None else None
    tt = _table(token_type, "token_type") if token_type is not None else None
    for nm, t in (("position", pos), ("token_type", tt)):
        if t is not None and t.shape[1] != hidden:
            raise InputError(f"{nm} table is {t.shape}, but the encoder's hidden size is {hidden}")
    ln = _layer_norm(norm, hidden, "embedding norm") if norm is not None else None
    return EmbeddingSpec(word=word, position=pos, token_type=tt, ln=ln,
                         position_offset=int(position_offset or 0),
                         scale=float(scale) if scale is not None else 1.0)


# ------------------------------------------------------------------------------------------ public API

def load_torch_encoder(encoder: Any, embedding: Any = None, *, position: Any = None, token_type: Any = None,
                       embedding_norm: Any = None, embedding_scale: Optional[float] = None,
                       position_offset: Optional[int] = None, max_positions: Optional[int] = None,
                       name: str = "torch-encoder", pooling: str = "mean", normalize: bool = True,
                       tokenizer_path: Optional[str] = None) -> EncoderSpec:
    """Convert a ``torch.nn.TransformerEncoder`` (or one ``TransformerEncoderLayer``) into an EncoderSpec.

    Args:
        encoder: ``nn.TransformerEncoder`` / ``nn.TransformerEncoderLayer``, eager or scripted
            (``torch.jit.script``). Post-norm or ``norm_first=True``; ReLU or erf GELU; ``batch_first``
            either way; ``bias=False`` gives zero biases. The encoder's ``norm`` becomes ``final_ln``.
        embedding: the token embedding: ``nn.Embedding(vocab, hidden)``, a ``(vocab, hidden)`` tensor /
            array, or a module with BERT-named tables ``word_embeddings`` (required),
            ``position_embeddings``, ``token_type_embeddings``, ``LayerNorm`` (or ``norm``) and optional
            float attributes ``scale`` and ``position_offset`` (a transformers ``BertEmbeddings`` fits).
        position: positional table: ``nn.Embedding``, a tensor ``(P, hidden)`` / ``(P, 1, hidden)`` /
            ``(1, P, hidden)`` (e.g. a sinusoidal buffer), or a module with such a ``pe`` buffer.
        token_type: token-type table; row 0 is added to every token.
        embedding_norm: ``nn.LayerNorm(hidden)`` applied to the embedding sum.
        embedding_scale: multiplies the word embedding (``sqrt(hidden)`` in the original Transformer).
        position_offset: first row of the positional table used for token 0.
        max_positions: longest sequence (tokens); default: positional rows - offset, else 512.
        name, pooling (``"mean"`` | ``"cls"``), normalize, tokenizer_path: copied into the spec.

    Returns:
        a validated :class:`EncoderSpec` (float32 ``(out, in)`` weights, copies of the module's tensors).

    Raises:
        UnknownModelError: a module that is not a stock TransformerEncoder(Layer), an unsupported option
            (tanh GELU, add_bias_kv, add_zero_attn, other norms), or a traced TorchScript module.
        InputError: a missing or mis-shaped embedding / positional table.
    """
    layers_in, final_norm = _encoder_layers(encoder)
    if not layers_in:
        raise UnknownModelError("the TransformerEncoder has no layers")
    layers: list[LayerSpec] = []
    activation = None
    num_heads = None
    hidden = None
    ffn = None
    for i, lyr in enumerate(layers_in):
        where = f"layer {i}"
        _check_forward(lyr, "TransformerEncoderLayer", where)
        attn = getattr(lyr, "self_attn", None)
        if attn is None or not hasattr(attn, "num_heads"):
            raise UnknownModelError(
                f"{where}: the module has no MultiheadAttention settings (num_heads...); a traced TorchScript "
                "module loses them: save it with torch.jit.script (not trace), torch.save the module, or "
                "export it to ONNX")
        H = int(attn.embed_dim)
        hidden = hidden or H
        if H != hidden or int(attn.num_heads) != (num_heads or int(attn.num_heads)):
            raise UnknownModelError(f"{where}: hidden size / heads differ from layer 0")
        num_heads = int(attn.num_heads)
        act = _activation(lyr, where)
        if activation is not None and act != activation:
            raise UnknownModelError(f"{where}: activation {act} differs from layer 0 ({activation}); padless "
                                    "uses one activation per model")
        activation = act
        q, k, v = _qkv(attn, H, where)
        up = _linear(lyr.linear1, f"{where}.linear1")
        down = _linear(lyr.linear2, f"{where}.linear2")
        ffn = ffn or up.out_features
        layers.append(LayerSpec(
            q=q, k=k, v=v, o=_linear(attn.out_proj, f"{where}.self_attn.out_proj"),
            ln_attn=_layer_norm(lyr.norm1, H, f"{where}.norm1"), ffn_up=up, ffn_down=down,
            ln_ffn=_layer_norm(lyr.norm2, H, f"{where}.norm2"), norm_first=bool(lyr.norm_first)))
    emb = _embedding_spec(embedding, hidden, position=position, token_type=token_type, norm=embedding_norm,
                          scale=embedding_scale, position_offset=position_offset)
    if max_positions is None:
        max_positions = (emb.position.shape[0] - emb.position_offset) if emb.position is not None \
            else DEFAULT_MAX_POSITIONS
    if emb.position is not None and emb.position_offset + max_positions > emb.position.shape[0]:
        raise InputError(f"max_positions {max_positions} + offset {emb.position_offset} exceeds the "
                         f"{emb.position.shape[0]} rows of the positional table")
    spec = EncoderSpec(
        name=name, hidden_size=hidden, num_heads=num_heads, intermediate_size=ffn, num_layers=len(layers),
        max_positions=int(max_positions), vocab_size=int(emb.word.shape[0]), embeddings=emb, layers=layers,
        activation=activation, pooling=pooling, normalize=normalize, tokenizer_path=tokenizer_path,
        final_ln=_layer_norm(final_norm, hidden, "encoder.norm") if final_norm is not None else None,
        source={"kind": "torch", "class": _kind(encoder), "scripted": _is_scripted(encoder)})
    try:
        return spec.validate()
    except SpecError as exc:
        raise UnknownModelError(f"torch encoder: {exc}") from exc


def looks_like_torch(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file that :func:`load_torch_path` should read: a ``.pt`` / ``.pth`` /
    ``.ts`` / ``.torchscript`` file, or any zip archive laid out by ``torch.save`` / ``torch.jit.save``."""
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix.lower() in TORCH_SUFFIXES:
        return True
    return _torch_zip_kind(p) is not None


def _torch_zip_kind(p: Path) -> Optional[str]:
    """``"script"`` (TorchScript archive), ``"pickle"`` (torch.save zip) or None."""
    if not zipfile.is_zipfile(p):
        return None
    try:
        names = zipfile.ZipFile(p).namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "script"
    if any(n.endswith("/data.pkl") for n in names):
        return "pickle"
    return None


_CONTAINER_KEYS = ("embedding", "embeddings", "position", "token_type", "embedding_norm", "embedding_scale",
                   "position_offset", "max_positions", "pooling", "normalize", "name")


def load_torch_path(path: str | os.PathLike, name: Optional[str] = None) -> EncoderSpec:
    """Load a saved PyTorch encoder file into an EncoderSpec.

    Accepted contents (``torch.save`` or a scripted ``torch.jit.save`` archive):

    * a dict with keys ``encoder`` (an ``nn.TransformerEncoder``) and ``embeddings`` (or ``embedding``)
      following :func:`load_torch_encoder`'s embedding conventions, plus optional ``position``,
      ``token_type``, ``embedding_norm``, ``embedding_scale``, ``position_offset``, ``max_positions``,
      ``pooling``, ``normalize`` (``torch.save({"encoder": enc, "embedding": emb, ...}, path)``);
    * a plain ``nn.Module`` holding those as attributes, or a scripted module of that shape (any class:
      TorchScript archives carry no Python classes).

    ``torch.save`` files are read with ``torch.load(weights_only=True)`` and only the ``torch.nn`` classes
    of :func:`_safe_globals`: a file that references any other Python object (a user's own ``nn.Module``
    subclass, or a payload such as ``os.system``) is refused before anything is unpickled, whatever the
    file's name. A bare TransformerEncoder, a state_dict or a traced TorchScript module is refused with
    the reason.

    Raises:
        UnknownModelError: unreadable file, a file that references other Python objects, or unsupported
            contents.
        InputError: no embedding in the file.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise UnknownModelError(f"{p}: no such file")
    safe = _safe_globals()
    if _torch_zip_kind(p) != "script":
        try:
            referenced = torch.serialization.get_unsafe_globals_in_checkpoint(str(p))
        except Exception:  # not a torch zip (a legacy or broken file): torch.load below says what is wrong
            referenced = []
        allowed = {_global_name(g) for g in safe}
        foreign = [g for g in referenced if g not in allowed]
        if foreign:
            raise UnknownModelError(
                f"{p} references Python objects padless does not unpickle ({', '.join(foreign[:4])}"
                f"{', ...' if len(foreign) > 4 else ''}): loading them could run code stored in the file. Save a "
                "dict of torch.nn modules and tensors, torch.save({'encoder': enc, 'embedding': emb, ...}), or a "
                "scripted module: torch.jit.save(torch.jit.script(module)) (docs/interchange.md)")
    try:
        if _torch_zip_kind(p) == "script":
            obj = torch.jit.load(str(p), map_location="cpu")
        else:
            with torch.serialization.safe_globals(safe):
                obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError for anything not allowed
        msg = str(exc).split("\n")[-1].strip() or str(exc).strip().split("\n")[0]
        raise UnknownModelError(f"{p}: torch could not load it safely ({type(exc).__name__}: {msg[:300]}); save a "
                                "dict of torch.nn modules and tensors with torch.save, or torch.jit.script + "
                                "torch.jit.save (docs/interchange.md)") from exc
    if isinstance(obj, dict):
        if "encoder" not in obj:
            if obj and all(hasattr(v, "shape") for v in obj.values()):
                raise UnknownModelError(
                    f"{p} holds a state_dict (tensors only), which has no architecture: save the module "
                    "itself, or a dict {'encoder': TransformerEncoder, 'embedding': nn.Embedding, ...}")
            raise UnknownModelError(f"{p}: the saved dict has no 'encoder' key (keys: {sorted(obj)[:8]})")
        get = obj.get
    else:
        if _kind(obj) in ("TransformerEncoder", "TransformerEncoderLayer"):
            raise InputError(
                f"{p} holds a bare {_kind(obj)} without its token embedding; save a module (or dict) with "
                "`encoder` and `embeddings` (see docs/interchange.md)")
        if not hasattr(obj, "encoder"):
            raise UnknownModelError(
                f"{p} holds a {_kind(obj)} without an `encoder` attribute; padless reads a module or dict "
                "with `encoder` (nn.TransformerEncoder) and `embeddings` (see docs/interchange.md)")

        def get(key, default=None):
            return getattr(obj, key, default)
    embedding = get("embeddings")
    if embedding is None:
        embedding = get("embedding")
    kwargs = {k: get(k) for k in _CONTAINER_KEYS[2:] if get(k) is not None}
    if "name" in kwargs and not isinstance(kwargs["name"], str):
        raise UnknownModelError(f"{p}: 'name' must be a string, got {type(kwargs['name']).__name__}")
    kwargs.setdefault("name", name or p.stem)
    if name:
        kwargs["name"] = name
    if (p.parent / "tokenizer.json").is_file():  # a tokenizer saved next to the model file
        kwargs["tokenizer_path"] = str(p.parent)
    spec = load_torch_encoder(get("encoder"), embedding, **kwargs)
    spec.source["path"] = str(p)
    return spec
