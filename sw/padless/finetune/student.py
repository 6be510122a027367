"""The student: a transformers ``BertModel`` with bank-balanced weight masks and top-k sparse attention.

* :func:`bert_from_spec` builds a ``BertModel`` from any :class:`padless.ir.EncoderSpec` (recipe, transformers
  folder, ONNX or torch frontends), so teacher and student start from the exact weights ``padless compile``
  reads.
* :class:`SparseStudent` keeps one ``(out, in)`` bool mask per pruned Linear (Q, K, V, O, FFN up, FFN down
  of every layer; :data:`padless.sparse.weights.LINEAR_NAMES`). Masked weights are zero in the forward pass
  and their gradients are zeroed, so the optimizer never revives them (the masking of Zhu & Gupta,
  arXiv 1710.01878, section 3).
* Top-k attention: a registered transformers attention function computes exact scores, then adds ``-inf``
  for every key the 4-bit Q/K selection drops (:func:`padless.finetune.masks.attention_keep_mask`); the
  softmax denominator covers the kept keys only, as in the golden model. The selection is not
  differentiable: gradients flow through the kept keys only (straight-through on the selection).
* Progressive module replacement (BERT-of-Theseus, Xu et al., EMNLP 2020, section 3; used by sparse
  progressive distillation, Huang et al., ACL 2022, section 3.2): :meth:`SparseStudent.enable_replacement`
  keeps a frozen copy of the teacher's layers; each step the trainer picks which of the student's layers
  the teacher's module stands in for (:meth:`SparseStudent.set_replaced`). A replaced layer's output is the
  teacher module applied to the student's own input, so the student's other layers learn to work with
  it; the replaced layer gets no gradient that step.

Training on the CPU uses a padded batch with a key-padding mask; the hardware and the golden model run
packed (unpadded) batches. Dropout is off so that a run is a pure function of the seed.
"""
from __future__ import annotations

import copy
import functools
import itertools

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..ir import EncoderSpec
from ..sparse.weights import LINEAR_NAMES, layer_ratios
from .masks import attention_keep_mask, weight_mask

__all__ = ["bert_from_spec", "SparseStudent", "bert_linears"]

_ATTN_NAME = "padless_topk"
_counter = itertools.count()


def bert_from_spec(spec: EncoderSpec):
    """``EncoderSpec`` (post-norm BERT family) -> ``transformers.BertModel`` in float32 with the same weights,
    dropout 0, eager attention. Raises InputError for pre-norm encoders (no BERT equivalent)."""
    import transformers
    if spec.final_ln is not None or any(layer.norm_first for layer in spec.layers):
        raise InputError(f"{spec.name} is a pre-norm encoder; finetune supports post-norm BERT-family models")
    emb = spec.embeddings
    cfg = transformers.BertConfig(
        vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
        max_position_embeddings=emb.position.shape[0] if emb.position is not None else spec.max_positions,
        type_vocab_size=emb.token_type.shape[0] if emb.token_type is not None else 2,
        hidden_act=spec.activation, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        layer_norm_eps=float(emb.ln.eps) if emb.ln is not None else 1e-12,
        pad_token_id=spec.pad_token_id if spec.pad_token_id is not None else 0, add_pooling_layer=False)
    cfg._attn_implementation = "eager"
    model = transformers.BertModel(cfg, add_pooling_layer=False)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    with torch.no_grad():
        e = model.embeddings
        e.word_embeddings.weight.copy_(t(emb.word) * float(emb.scale))
        if emb.position is not None:
            e.position_embeddings.weight.copy_(t(emb.position))
        if emb.token_type is not None:
            e.token_type_embeddings.weight.copy_(t(emb.token_type))
        else:
            e.token_type_embeddings.weight.zero_()
        e.LayerNorm.weight.copy_(t(emb.ln.gamma))
        e.LayerNorm.bias.copy_(t(emb.ln.beta))
        for blk, layer in zip(model.encoder.layer, spec.layers):
            for mod, lin in zip(_block_linears(blk), (getattr(layer, n) for n in LINEAR_NAMES)):
                mod.weight.copy_(t(lin.weight))
                mod.bias.copy_(t(lin.bias))
            for mod, ln in ((blk.attention.output.LayerNorm, layer.ln_attn), (blk.output.LayerNorm, layer.ln_ffn)):
                mod.weight.copy_(t(ln.gamma))
                mod.bias.copy_(t(ln.beta))
                mod.eps = float(ln.eps)
    return model.eval()


def _block_linears(blk) -> list:
    a = blk.attention
    return [a.self.query, a.self.key, a.self.value, a.output.dense, blk.intermediate.dense, blk.output.dense]


def bert_linears(model) -> list[list[nn.Linear]]:
    """Per layer, the six pruned ``nn.Linear`` of a BertModel in :data:`LINEAR_NAMES` order."""
    return [_block_linears(blk) for blk in model.encoder.layer]


class SparseStudent(nn.Module):
    """A BertModel plus weight masks and an optional top-k attention config.

    Args:
        bert: the ``BertModel`` to train (modified in place).
        weights_cfg: normalised ``weights`` part of a sparsity config (``{}`` = dense weights).
        attention_cfg: normalised ``attention`` part (``{}`` = dense attention).
    Forward: ``input_ids`` ``(B, n)`` int64, ``attention_mask`` ``(B, n)`` {0,1} -> last hidden states
    ``(B, n, hidden)`` float32.
    """

    def __init__(self, bert, weights_cfg: dict | None = None, attention_cfg: dict | None = None):
        super().__init__()
        self.bert = bert
        self.weights_cfg = dict(weights_cfg or {})
        self.attention_cfg = dict(attention_cfg or {})
        self.linears = bert_linears(bert)
        self.ratios = layer_ratios(self.weights_cfg, len(self.linears)) if self.weights_cfg else [0.0] * len(self.linears)
        for i, mods in enumerate(self.linears):
            for name, mod in zip(LINEAR_NAMES, mods):
                self.register_buffer(f"mask_{i}_{name}", torch.ones(mod.weight.shape, dtype=torch.bool))
        self._lengths = None
        #: > 0 during quantization-aware training: attention probabilities on the ``2^-prob_bits`` grid
        #: (:class:`padless.finetune.qat.FakeQuant` sets it).
        self.prob_bits = 0
        self._replaced: list[bool] = []
        from transformers import AttentionInterface
        self._attn_name = f"{_ATTN_NAME}_{next(_counter)}"
        AttentionInterface.register(self._attn_name, self._topk_attention)
        bert.config._attn_implementation = self._attn_name

    # -- weight masks -----------------------------------------------------------------------------------
    def mask(self, layer: int, name: str) -> torch.Tensor:
        """``(out, in)`` bool keep-mask of Linear ``name`` of layer ``layer``."""
        return getattr(self, f"mask_{layer}_{name}")

    def update_masks(self, fraction: float) -> None:
        """Recompute every mask at ``fraction`` of each layer's final ratio (``fraction`` in [0, 1], from the
        cubic schedule) from the current (already masked) weights, and zero the pruned weights. A weight
        pruned earlier is 0, so it stays pruned while the ratio grows."""
        bank = int(self.weights_cfg.get("bank", 16)) if self.weights_cfg else 16
        from ..sparse.config import pattern_rows
        rows = pattern_rows(self.weights_cfg)
        with torch.no_grad():
            for i, mods in enumerate(self.linears):
                s = self.ratios[i] * float(fraction)
                for name, mod in zip(LINEAR_NAMES, mods):
                    m = weight_mask(mod.weight, bank, s, rows)
                    self.mask(i, name).copy_(m)
                    mod.weight.mul_(m)

    def apply_masks(self) -> None:
        """Zero the pruned weights (after an optimizer step)."""
        with torch.no_grad():
            for i, mods in enumerate(self.linears):
                for name, mod in zip(LINEAR_NAMES, mods):
                    mod.weight.mul_(self.mask(i, name))

    def mask_grads(self) -> None:
        """Zero the gradients of pruned weights (before an optimizer step)."""
        for i, mods in enumerate(self.linears):
            for name, mod in zip(LINEAR_NAMES, mods):
                if mod.weight.grad is not None:
                    mod.weight.grad.mul_(self.mask(i, name))

    def sparsity(self) -> float:
        """Fraction of zero weights over every pruned Linear."""
        z = n = 0
        for mods in self.linears:
            for mod in mods:
                z += int((mod.weight == 0).sum())
                n += mod.weight.numel()
        return z / n

    # -- progressive module replacement ------------------------------------------------------------------
    def enable_replacement(self, teacher_bert) -> None:
        """Keep a frozen copy of ``teacher_bert``'s encoder layers (not submodules: never saved, never
        trained) to stand in for the student's layers chosen by :meth:`set_replaced`. Raises InputError
        when the layer counts differ."""
        t_layers, s_layers = teacher_bert.encoder.layer, self.bert.encoder.layer
        if len(t_layers) != len(s_layers):
            raise InputError(f"module replacement needs a teacher with the student's {len(s_layers)} layers, "
                             f"got {len(t_layers)}")
        copies = []
        for layer in t_layers:
            c = copy.deepcopy(layer)
            for m in c.modules():  # no transformers output-capture hooks: the student's own hook records it
                m._forward_hooks.clear()
                m._forward_pre_hooks.clear()
            for p in c.parameters():
                p.requires_grad_(False)
            copies.append(c.eval())
        object.__setattr__(self, "_teacher_layers", copies)
        self._replaced = [False] * len(s_layers)
        for i, layer in enumerate(s_layers):
            # first of the layer's forward hooks, so transformers' hidden-state capture records the result
            layer.register_forward_hook(functools.partial(self._replace_hook, i), prepend=True)

    def set_replaced(self, replaced) -> None:
        """Which layers the teacher's module stands in for in the next forward passes (``L`` bools)."""
        if not self._replaced:
            raise InputError("call enable_replacement(teacher) before set_replaced")
        replaced = [bool(r) for r in replaced]
        if len(replaced) != len(self._replaced):
            raise InputError(f"set_replaced: {len(replaced)} flags for {len(self._replaced)} layers")
        self._replaced = replaced

    def _replace_hook(self, i, module, args, output):
        if not self._replaced or not self._replaced[i]:
            return None
        x = args[0]  # (B, n, hidden): the student's input to layer i
        valid = self._valid_keys(x.shape[1])
        mask = torch.zeros(x.shape[0], 1, 1, x.shape[1], dtype=x.dtype)
        mask = mask.masked_fill(~valid[:, None, None, :], torch.finfo(x.dtype).min)
        out = self._teacher_layers[i](x, attention_mask=mask)
        if isinstance(output, tuple):
            return (out[0] if isinstance(out, tuple) else out,) + tuple(output[1:])
        return out[0] if isinstance(out, tuple) else out

    # -- attention ----------------------------------------------------------------------------------------
    def _valid_keys(self, n: int) -> torch.Tensor:
        """``(B, n)`` bool: True for the real (not padding) positions of the current batch, from its lengths
        (transformers passes no padding mask to a registered attention function)."""
        return torch.arange(n)[None, :] < self._lengths[:, None]

    def _topk_attention(self, module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        """transformers attention function: ``(B, H, n, d)`` Q/K/V -> ``((B, n, H, d), (B, H, n, n) probs)``.
        Top-k attention when configured (padding keys never kept), else dense with the padding mask;
        probabilities rounded to the ``prob_bits`` grid (straight-through) during QAT."""
        if scaling is None:
            scaling = query.size(-1) ** -0.5
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        if self.attention_cfg:
            keep = attention_keep_mask(query.detach(), key.detach(), self._lengths, self.attention_cfg)
            scores = scores.masked_fill(~keep, float("-inf"))
        else:  # transformers passes no mask to a registered function: mask the padding keys from the lengths
            valid = self._valid_keys(scores.shape[-1])
            scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if self.prob_bits:
            step = 2.0 ** -self.prob_bits
            probs = probs + (torch.round(probs / step) * step - probs).detach()
        out = torch.matmul(probs, value).transpose(1, 2).contiguous()
        return out, probs

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False,
                output_hidden_states: bool = False):
        """``(B, n)`` ids and {0,1} mask -> last hidden states ``(B, n, hidden)``; with ``output_attentions`` or
        ``output_hidden_states`` the transformers output object instead (``.last_hidden_state``,
        ``.attentions`` per layer ``(B, heads, n, n)``, ``.hidden_states`` embeddings + every layer)."""
        self._lengths = attention_mask.sum(dim=1).long()
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                        token_type_ids=torch.zeros_like(input_ids), output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states)
        return out if (output_attentions or output_hidden_states) else out.last_hidden_state
