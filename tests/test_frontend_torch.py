"""torch.nn.TransformerEncoder frontend: the spec's fp32 reference equals torch's own eval forward."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from padless.errors import InputError, UnknownModelError
from padless.frontend.torch_encoder import load_torch_encoder, load_torch_path, looks_like_torch
from padless.reference import encode_fp32

VOCAB, HIDDEN, HEADS, FFN, LAYERS, POS = 97, 32, 4, 64, 2, 40


class TinyEncoderModel(nn.Module):
    """A user model in the documented container form: ``embeddings`` (BERT-named) + ``encoder``."""

    def __init__(self, *, norm_first: bool, activation: str, batch_first: bool, final_norm: bool,
                 emb_norm: bool = True, scale: float = 1.0, bias: bool = True):
        super().__init__()
        self.batch_first = batch_first
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.embeddings.position_embeddings = nn.Embedding(POS, HIDDEN)
        self.embeddings.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.embeddings.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-6) if emb_norm else None
        self.embeddings.scale = scale
        layer = nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN, dropout=0.1, activation=activation,
                                           batch_first=batch_first, norm_first=norm_first, bias=bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # enable_nested_tensor notes for norm_first
            self.encoder = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(HIDDEN) if final_norm else None)
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():  # non-trivial LayerNorm / bias values so that a swapped tensor shows up
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.2 if p.dim() > 1 else 0.1))
            for m in self.modules():
                if isinstance(m, nn.LayerNorm) and m.weight is not None:
                    m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:  # ids (B, S)
        e = self.embeddings
        pos = torch.arange(ids.shape[1])
        x = e.word_embeddings(ids) * e.scale + e.position_embeddings(pos)[None] + e.token_type_embeddings.weight[0]
        return e.LayerNorm(x) if e.LayerNorm is not None else x

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(ids)
        if not self.batch_first:
            x = x.transpose(0, 1)
        y = self.encoder(x, src_key_padding_mask=pad_mask)
        return y if self.batch_first else y.transpose(0, 1)


def _sequences(seed: int = 0, lengths=(1, 5, 17, 33)) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, VOCAB, n).tolist() for n in lengths]


def _torch_outputs(model: TinyEncoderModel, seqs) -> list[np.ndarray]:
    """torch eval forward: each sequence alone, and the whole batch padded with a key padding mask."""
    model.eval()
    out_single = []
    with torch.no_grad():
        for s in seqs:
            out_single.append(model(torch.tensor([s]))[0].numpy())
        S = max(map(len, seqs))
        ids = torch.zeros(len(seqs), S, dtype=torch.long)
        mask = torch.ones(len(seqs), S, dtype=torch.bool)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = False
        batch = model(ids, mask)
    for i, s in enumerate(seqs):  # the padded batch (nested-tensor fast path in eval) agrees too
        np.testing.assert_allclose(batch[i, :len(s)].numpy(), out_single[i], atol=2e-5, rtol=0)
    return out_single


CONFIGS = [
    dict(norm_first=False, activation="relu", batch_first=False, final_norm=False),
    dict(norm_first=False, activation="gelu", batch_first=True, final_norm=True),
    dict(norm_first=True, activation="gelu", batch_first=True, final_norm=True, scale=math.sqrt(HIDDEN)),
    dict(norm_first=True, activation="relu", batch_first=False, final_norm=False, emb_norm=False),
    dict(norm_first=False, activation="gelu", batch_first=True, final_norm=False, bias=False),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_reference_matches_torch_forward(cfg):
    model = TinyEncoderModel(**cfg).eval()
    spec = load_torch_encoder(model.encoder, model.embeddings, name="t")
    assert spec.num_layers == LAYERS and spec.num_heads == HEADS and spec.intermediate_size == FFN
    assert spec.activation == cfg["activation"]
    assert all(layer.norm_first == cfg["norm_first"] for layer in spec.layers)
    assert (spec.final_ln is not None) == cfg["final_norm"]
    assert spec.max_positions == POS and spec.vocab_size == VOCAB
    seqs = _sequences()
    want = _torch_outputs(model, seqs)
    got = encode_fp32(spec, seqs)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_qkv_split_is_exact():
    model = TinyEncoderModel(norm_first=False, activation="gelu", batch_first=True, final_norm=False)
    spec = load_torch_encoder(model.encoder, model.embeddings)
    attn = model.encoder.layers[1].self_attn
    w, b = attn.in_proj_weight.detach().numpy(), attn.in_proj_bias.detach().numpy()
    layer = spec.layers[1]
    for i, lin in enumerate((layer.q, layer.k, layer.v)):
        assert np.array_equal(lin.weight, w[i * HIDDEN:(i + 1) * HIDDEN])
        assert np.array_equal(lin.bias, b[i * HIDDEN:(i + 1) * HIDDEN])
    assert np.array_equal(layer.ffn_up.weight, model.encoder.layers[1].linear1.weight.detach().numpy())


def test_single_layer_with_plain_embedding_and_sinusoidal_table():
    layer = nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN, dropout=0.0, batch_first=True).eval()
    emb = nn.Embedding(VOCAB, HIDDEN)
    pe = torch.zeros(POS, 1, HIDDEN)  # the PyTorch tutorial's PositionalEncoding buffer layout
    posn = torch.arange(POS, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, HIDDEN, 2).float() * (-math.log(10000.0) / HIDDEN))
    pe[:, 0, 0::2], pe[:, 0, 1::2] = torch.sin(posn * div), torch.cos(posn * div)
    spec = load_torch_encoder(layer, emb, position=pe, embedding_scale=math.sqrt(HIDDEN))
    assert spec.num_layers == 1 and spec.embeddings.ln is None and spec.embeddings.position.shape == (POS, HIDDEN)
    seq = _sequences(1, (9,))[0]
    ids = torch.tensor([seq])
    with torch.no_grad():
        want = layer(emb(ids) * math.sqrt(HIDDEN) + pe[:9, 0][None])[0].numpy()
    np.testing.assert_allclose(encode_fp32(spec, [seq])[0], want, atol=1e-4, rtol=0)


def test_saved_module_and_torchscript_paths(tmp_path):
    model = TinyEncoderModel(norm_first=True, activation="gelu", batch_first=True, final_norm=True).eval()
    seqs = _sequences(2, (3, 12))
    want = _torch_outputs(model, seqs)
    # 1. torch.save of a plain nn.Module holding the parts (container form: only torch.nn classes)
    p1 = tmp_path / "model.pt"
    holder1 = nn.Module()
    holder1.encoder, holder1.embeddings = model.encoder, model.embeddings
    torch.save(holder1, p1)
    # 2. torch.save of a dict
    p2 = tmp_path / "parts.pth"
    torch.save({"encoder": model.encoder, "embeddings": model.embeddings, "pooling": "cls"}, p2)
    # 3. scripted TorchScript archive of a container (an extension-less file: detected from the zip layout)
    holder = nn.Module()
    holder.encoder = model.encoder
    holder.embedding = model.embeddings.word_embeddings
    holder.position = model.embeddings.position_embeddings.weight.detach().clone()
    holder.token_type = model.embeddings.token_type_embeddings
    holder.embedding_norm = model.embeddings.LayerNorm
    p3 = tmp_path / "scripted"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(holder), str(p3))
    specs = []
    for p in (p1, p2, p3):
        assert looks_like_torch(p)
        spec = load_torch_path(p)
        specs.append(spec)
        for g, w in zip(encode_fp32(spec, seqs), want):
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)
    assert specs[0].name == "model" and specs[1].pooling == "cls" and specs[2].source["scripted"]


def test_errors_are_clear(tmp_path):
    layer = nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN, activation=nn.GELU(approximate="tanh"))
    with pytest.raises(UnknownModelError, match="approximate='tanh'"):
        load_torch_encoder(layer, nn.Embedding(VOCAB, HIDDEN))
    with pytest.raises(InputError, match="no token embedding"):
        load_torch_encoder(nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN))
    with pytest.raises(InputError, match="hidden size"):
        load_torch_encoder(nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN), nn.Embedding(VOCAB, 8))
    with pytest.raises(UnknownModelError, match="not a torch.nn.TransformerEncoder"):
        load_torch_encoder(nn.Linear(4, 4), nn.Embedding(VOCAB, 4))

    class Custom(nn.TransformerEncoderLayer):
        def forward(self, src, *a, **k):  # noqa: D401 - a user override
            return src

    with pytest.raises(UnknownModelError, match="overrides TransformerEncoderLayer.forward"):
        load_torch_encoder(Custom(HIDDEN, HEADS, FFN), nn.Embedding(VOCAB, HIDDEN))

    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(HIDDEN, HEADS, FFN, batch_first=True), 1,
                                enable_nested_tensor=False).eval()
    torch.save(enc.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(UnknownModelError, match="state_dict"):
        load_torch_path(tmp_path / "sd.pt")
    # a user's own class is Python code: refused before unpickling (save a dict or a scripted module)
    torch.save(TinyEncoderModel(norm_first=False, activation="relu", batch_first=True, final_norm=False),
               tmp_path / "own_class.pt")
    with pytest.raises(UnknownModelError, match="does not unpickle.*TinyEncoderModel"):
        load_torch_path(tmp_path / "own_class.pt")
    torch.save(enc, tmp_path / "bare.pt")
    with pytest.raises(InputError, match="without its token embedding"):
        load_torch_path(tmp_path / "bare.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace_module(enc, {"forward": torch.randn(1, 3, HIDDEN)}, check_trace=False),
                       str(tmp_path / "traced.pt"))
    with pytest.raises(InputError):  # a traced encoder alone: no embedding
        load_torch_path(tmp_path / "traced.pt")
    with pytest.raises(UnknownModelError, match="traced TorchScript"):
        load_torch_encoder(torch.jit.load(str(tmp_path / "traced.pt")), nn.Embedding(VOCAB, HIDDEN))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UnknownModelError, match="torch could not load it safely"):
        load_torch_path(tmp_path / "junk.pt")
    assert not looks_like_torch(tmp_path / "missing.pt")
    (tmp_path / "x.onnx").write_bytes(b"\x08\x07")
    assert not looks_like_torch(tmp_path / "x.onnx")
