"""EncoderSpec: the one model representation after the frontend.

Every frontend (transformers, torch ``nn.TransformerEncoder``, ONNX) produces an :class:`EncoderSpec`;
everything downstream (quantization, sparsity, the golden model, scheduling, code generation) reads only
this. Tensors are float32 numpy arrays in the PyTorch ``nn.Linear`` convention: a weight is
``(out_features, in_features)`` and ``y = x @ W.T + b``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


class SpecError(ValueError):
    """An EncoderSpec is inconsistent (wrong shapes, unsupported activation...)."""


@dataclass
class LinearSpec:
    """A dense layer: ``weight`` ``(out, in)`` float32, ``bias`` ``(out,)`` float32."""

    weight: np.ndarray
    bias: np.ndarray

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class LayerNormSpec:
    """LayerNorm over the hidden axis: ``gamma``, ``beta`` ``(hidden,)`` float32, ``eps``."""

    gamma: np.ndarray
    beta: np.ndarray
    eps: float = 1e-12


@dataclass
class EmbeddingSpec:
    """Token, position and token-type tables (``(rows, hidden)`` float32) and the embedding LayerNorm.

    The embeddings run on the host in float: lookup, sum, LayerNorm, then quantization to int8.
    """

    word: np.ndarray
    position: Optional[np.ndarray]
    token_type: Optional[np.ndarray]
    ln: Optional[LayerNormSpec]
    position_offset: int = 0
    scale: float = 1.0  # multiplies the word embedding (torch encoders sometimes use sqrt(hidden))


@dataclass
class LayerSpec:
    """One encoder layer (BERT post-norm unless ``norm_first``).

    Post-norm (BERT):  h = LN1(x + O(attn(Q x, K x, V x)));  y = LN2(h + Down(act(Up h)))
    Pre-norm:          h = x + O(attn(LN1 x));               y = h + Down(act(Up(LN2 h)))
    """

    q: LinearSpec
    k: LinearSpec
    v: LinearSpec
    o: LinearSpec
    ln_attn: LayerNormSpec
    ffn_up: LinearSpec
    ffn_down: LinearSpec
    ln_ffn: LayerNormSpec
    norm_first: bool = False


@dataclass
class EncoderSpec:
    """A Transformer encoder: embeddings, ``num_layers`` layers, pooling.

    Attributes:
        name: model name (recipe name or path).
        hidden_size, num_heads, head_dim, intermediate_size, num_layers: shapes (head_dim * num_heads
            == hidden_size).
        max_positions: the longest sequence (tokens, [CLS] and [SEP] included) the model accepts.
        vocab_size: rows of the word embedding.
        activation: ``"gelu"`` (erf form) or ``"relu"``.
        pooling: ``"mean"`` (mean over tokens, the sentence-transformers definition) or ``"cls"``.
        normalize: L2-normalise pooled embeddings.
        tokenizer_path: folder with ``tokenizer.json`` (None: the caller gives token ids).
        final_ln: a LayerNorm after the last layer (pre-norm encoders), else None.
    """

    name: str
    hidden_size: int
    num_heads: int
    intermediate_size: int
    num_layers: int
    max_positions: int
    vocab_size: int
    embeddings: EmbeddingSpec
    layers: list[LayerSpec]
    activation: str = "gelu"
    pooling: str = "mean"
    normalize: bool = True
    tokenizer_path: Optional[str] = None
    final_ln: Optional[LayerNormSpec] = None
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    source: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def validate(self) -> "EncoderSpec":
        """Check shapes and options; returns self. Raises :class:`SpecError` naming the first problem."""
        H, F = self.hidden_size, self.intermediate_size
        if self.num_heads <= 0 or H % self.num_heads:
            raise SpecError(f"hidden_size {H} is not a multiple of num_heads {self.num_heads}")
        if self.activation not in ("gelu", "relu"):
            raise SpecError(f"activation {self.activation!r} is not supported (gelu or relu)")
        if self.pooling not in ("mean", "cls"):
            raise SpecError(f"pooling {self.pooling!r} is not supported (mean or cls)")
        if len(self.layers) != self.num_layers:
            raise SpecError(f"num_layers is {self.num_layers} but {len(self.layers)} layers are given")
        if self.embeddings.word.shape != (self.vocab_size, H):
            raise SpecError(f"word embedding is {self.embeddings.word.shape}, expected ({self.vocab_size}, {H})")
        expect = {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H), "ffn_up": (F, H), "ffn_down": (H, F)}
        for i, layer in enumerate(self.layers):
            for name, shape in expect.items():
                lin: LinearSpec = getattr(layer, name)
                if lin.weight.shape != shape or lin.bias.shape != (shape[0],):
                    raise SpecError(
                        f"layer {i} {name}: weight {lin.weight.shape} bias {lin.bias.shape}, expected {shape}")
        return self

    def parameter_count(self) -> int:
        """Number of float parameters (embeddings included)."""
        n = sum(a.size for a in (self.embeddings.word, self.embeddings.position, self.embeddings.token_type)
                if a is not None)
        for layer in self.layers:
            for lin in (layer.q, layer.k, layer.v, layer.o, layer.ffn_up, layer.ffn_down):
                n += lin.weight.size + lin.bias.size
            n += 4 * self.hidden_size
        return int(n)

    def shape_summary(self) -> dict:
        """The shapes downstream tools need (JSON-serialisable)."""
        return {
            "name": self.name, "hidden_size": self.hidden_size, "num_heads": self.num_heads,
            "head_dim": self.head_dim, "intermediate_size": self.intermediate_size,
            "num_layers": self.num_layers, "max_positions": self.max_positions,
            "vocab_size": self.vocab_size, "activation": self.activation, "pooling": self.pooling,
            "normalize": self.normalize, "norm_first": bool(self.layers and self.layers[0].norm_first),
        }
