"""Frontend for BERT-family encoders from Hugging Face transformers.

Accepts ``BertModel``, ``BertForSequenceClassification`` (the encoder part; the task head stays on the
host) and other models whose config is BERT-shaped (``model_type`` bert / roberta / distilbert-free
post-norm encoders with ``bert.encoder.layer[i].attention.self.{query,key,value}``), from a folder saved
with ``save_pretrained`` or an in-memory ``transformers.PreTrainedModel``. Loads fully offline.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnknownModelError
from ..ir import EmbeddingSpec, EncoderSpec, LayerNormSpec, LayerSpec, LinearSpec


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32).copy()


def _linear(mod) -> LinearSpec:
    return LinearSpec(weight=_np(mod.weight), bias=_np(mod.bias))


def _ln(mod) -> LayerNormSpec:
    return LayerNormSpec(gamma=_np(mod.weight), beta=_np(mod.bias), eps=float(mod.eps))


def _bert_core(model: Any):
    """The ``BertModel`` inside ``model`` (itself, or ``.bert`` / ``.roberta`` of a task model)."""
    for attr in ("bert", "roberta", "base_model"):
        inner = getattr(model, attr, None)
        if inner is not None and hasattr(inner, "encoder") and hasattr(inner, "embeddings"):
            return inner
    if hasattr(model, "encoder") and hasattr(model, "embeddings"):
        return model
    raise UnknownModelError(
        f"{type(model).__name__} is not a BERT-family encoder (no .embeddings/.encoder); padless accepts "
        "BertModel, BertForSequenceClassification and BERT-shaped models")


def spec_from_transformers(model: Any, name: str, tokenizer_path: str | None = None) -> EncoderSpec:
    """Convert an in-memory transformers BERT-family model into an :class:`EncoderSpec`.

    Raises UnknownModelError when the model is not BERT-shaped or uses an unsupported activation.
    """
    core = _bert_core(model)
    cfg = core.config
    act = getattr(cfg, "hidden_act", "gelu")
    if act not in ("gelu", "relu"):
        raise UnknownModelError(f"hidden_act {act!r} is not supported (padless implements gelu (erf) and relu)")
    if getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        raise UnknownModelError("only absolute position embeddings are supported")
    emb = core.embeddings
    pad = getattr(cfg, "pad_token_id", None)
    # RoBERTa-style models number positions from padding_idx + 1.
    pos_offset = int(pad) + 1 if getattr(cfg, "model_type", "bert") == "roberta" and pad is not None else 0
    embeddings = EmbeddingSpec(
        word=_np(emb.word_embeddings.weight),
        position=_np(emb.position_embeddings.weight),
        token_type=_np(emb.token_type_embeddings.weight) if getattr(emb, "token_type_embeddings", None) is not None else None,
        ln=_ln(emb.LayerNorm),
        position_offset=pos_offset,
    )
    layers = []
    for blk in core.encoder.layer:
        att = blk.attention
        layers.append(LayerSpec(
            q=_linear(att.self.query), k=_linear(att.self.key), v=_linear(att.self.value),
            o=_linear(att.output.dense), ln_attn=_ln(att.output.LayerNorm),
            ffn_up=_linear(blk.intermediate.dense), ffn_down=_linear(blk.output.dense),
            ln_ffn=_ln(blk.output.LayerNorm), norm_first=False))
    spec = EncoderSpec(
        name=name, hidden_size=int(cfg.hidden_size), num_heads=int(cfg.num_attention_heads),
        intermediate_size=int(cfg.intermediate_size), num_layers=len(layers),
        max_positions=int(cfg.max_position_embeddings) - pos_offset, vocab_size=int(cfg.vocab_size),
        embeddings=embeddings, layers=layers, activation=act, tokenizer_path=tokenizer_path,
        pad_token_id=pad, source={"kind": "transformers", "class": type(model).__name__,
                                  "model_type": getattr(cfg, "model_type", "bert")})
    return spec.validate()


@contextlib.contextmanager
def quiet_transformers():
    """transformers' loading chatter off for the duration: its per-load progress bar and its weight-loading
    report (e.g. the UNEXPECTED ``pooler.*`` keys of a BertModel loaded without its pooler, which padless
    drops on purpose). Errors still raise."""
    from transformers.utils import logging as tlog
    level = tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def load_hf(path: str | os.PathLike, name: str | None = None) -> EncoderSpec:
    """Load a saved transformers model folder (``config.json`` + weights) into an EncoderSpec, offline.

    Raises UnknownModelError when the folder is missing, has no config.json or is not BERT-family.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UnknownModelError(f"{path} is not a saved transformers model (no config.json there)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers  # noqa: WPS433 (heavy import kept local)

    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UnknownModelError(f"transformers could not read {path / 'config.json'}: {exc}") from exc
    archs = getattr(config, "architectures", None) or []
    try:
        with quiet_transformers():
            if any(a.endswith("ForSequenceClassification") for a in archs):
                model = transformers.AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
            elif getattr(config, "model_type", "") in ("bert", "roberta"):
                # the pooler is a task head padless does not use; a saved encoder may not carry one
                model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
            else:
                model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise UnknownModelError(f"transformers could not load {path}: {str(exc)[:500]}") from exc
    model.eval()
    tok = str(path) if (path / "tokenizer.json").is_file() else None
    spec = spec_from_transformers(model, name or path.name, tokenizer_path=tok)
    spec.source["path"] = str(path)
    return spec
