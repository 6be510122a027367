"""The measured CPU baseline: transformers fp32 on this machine, as a user would run it.

One definition for every figure that puts padless beside torch fp32 (``make run``, the bench/ scripts).
"""
from __future__ import annotations

import time
from typing import Sequence


def model_path_of(project) -> str | None:
    """Folder of the project's original transformers model (None for random-weight recipes)."""
    from .models import _package_model_path, load_recipe
    src = project.model.get("source") or {}
    if src.get("path"):
        return src["path"]
    if src.get("recipe"):
        rsrc = load_recipe(src["recipe"]).source
        if rsrc.get("kind") == "package":
            return _package_model_path(rsrc["package"])
    return None


def torch_fp32_throughput(model_path: str, texts: Sequence[str], batch_size: int = 32,
                          sort_by_length: bool = False, max_length: int | None = None) -> dict:
    """Measured sentences/s of ``transformers.AutoModel`` fp32 on the CPU, mean pooling + L2 norm.

    Batches of ``batch_size`` texts, each padded to its own maximum (``sort_by_length`` sorts texts by
    length first: length bucketing, the best a padded framework does); ``max_length`` truncates like
    sentence-transformers' ``max_seq_length`` (default: the tokenizer's maximum). One warm-up batch is not
    timed.
    Returns ``{"sentences", "seconds", "sentences_per_s", "batch_size", "threads", "padding", "measured"}``.
    """
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_path)
    model = transformers.AutoModel.from_pretrained(model_path).eval()
    texts = list(texts)
    if sort_by_length:
        texts = sorted(texts, key=len)
    with torch.inference_mode():
        kw = {"max_length": int(max_length)} if max_length else {}
        model(**tok(texts[:batch_size], padding=True, truncation=True, return_tensors="pt", **kw))  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, return_tensors="pt", **kw)
            out = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
            torch.nn.functional.normalize((out * m).sum(1) / m.sum(1), dim=1)
        sec = time.perf_counter() - t0
    return {"sentences": len(texts), "seconds": round(sec, 3), "sentences_per_s": round(len(texts) / sec, 1),
            "batch_size": batch_size, "threads": torch.get_num_threads(),
            "padding": "length-sorted batches, batch maximum" if sort_by_length else "batch maximum",
            "measured": True}
