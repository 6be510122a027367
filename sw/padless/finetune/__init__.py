"""Sparsity-aware distillation: recover accuracy under weight / attention sparsity by training
(``padless finetune``; docs/finetune.md)."""
from .masks import attention_keep_mask, cubic_sparsity, is_bank_balanced, weight_mask
from .student import SparseStudent, bert_from_spec
from .train import SPARSITY_FILE, TrainConfig, finetune, load_finetune_config

__all__ = ["finetune", "load_finetune_config", "TrainConfig", "SparseStudent", "bert_from_spec",
           "cubic_sparsity", "weight_mask", "is_bank_balanced", "attention_keep_mask", "SPARSITY_FILE"]
