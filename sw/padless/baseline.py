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

    from .frontend.hf import quiet_transformers
    with quiet_transformers():  # no per-load progress bar or weight report in a log
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


class TorchFp32Meter:
    """torch fp32 throughput measured in rounds interleaved with other work (``make run``: one round
    after the compile, one after the backend run, one after the simulation), so that one burst of load
    on a shared machine does not make the figure: issue 27 item 14 saw 26 sentences/s under load and 186
    on a quiet machine from a single measurement.

    Each :meth:`round` times the same texts (as :func:`torch_fp32_throughput`: padded per batch, mean
    pooling, L2 norm; the model is loaded and warmed up once) and records the 1-minute load average
    (``os.getloadavg``) just before it. :meth:`result` gives the median round and says whether the
    machine was busy (:func:`busy_reason`): then a ratio to it must not be printed.
    """

    def __init__(self, model_path: str, texts: Sequence[str], batch_size: int = 32, max_length: int | None = None):
        import torch
        import transformers

        from .frontend.hf import quiet_transformers
        self.torch = torch
        with quiet_transformers():  # no per-load progress bar or weight report in the run's log
            self.tok = transformers.AutoTokenizer.from_pretrained(model_path)
            self.model = transformers.AutoModel.from_pretrained(model_path).eval()
        self.texts, self.batch_size = list(texts), int(batch_size)
        self.kw = {"max_length": int(max_length)} if max_length else {}
        self.rounds: list[dict] = []
        with torch.inference_mode():  # warm-up, not timed
            self.model(**self.tok(self.texts[:self.batch_size], padding=True, truncation=True, return_tensors="pt",
                                  **self.kw))

    def round(self) -> dict:
        """Time one pass over the texts; returns ``{"sentences_per_s", "seconds", "load_average"}``."""
        import os
        torch = self.torch
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with torch.inference_mode():
            t0 = time.perf_counter()
            for i in range(0, len(self.texts), self.batch_size):
                enc = self.tok(self.texts[i:i + self.batch_size], padding=True, truncation=True, return_tensors="pt",
                               **self.kw)
                out = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
                torch.nn.functional.normalize((out * m).sum(1) / m.sum(1), dim=1)
            sec = time.perf_counter() - t0
        r = {"sentences_per_s": round(len(self.texts) / sec, 1), "seconds": round(sec, 3),
             "load_average": None if load is None else round(load, 2)}
        self.rounds.append(r)
        return r

    def result(self) -> dict:
        """The median round as :func:`torch_fp32_throughput`'s dict, plus ``rounds`` (each round),
        ``load_average`` (the highest before a round), ``cpus`` and ``busy`` (None, or why the figure is
        noise: :func:`busy_reason`). Raises ValueError before any round."""
        import os
        if not self.rounds:
            raise ValueError("no torch fp32 round was measured")
        rates = sorted(r["sentences_per_s"] for r in self.rounds)
        loads = [r["load_average"] for r in self.rounds if r["load_average"] is not None]
        out = {"sentences": len(self.texts) * len(self.rounds), "sentences_per_s": rates[len(rates) // 2],
               "seconds": round(sum(r["seconds"] for r in self.rounds), 3), "batch_size": self.batch_size,
               "threads": self.torch.get_num_threads(), "padding": "batch maximum", "measured": True,
               "rounds": list(self.rounds), "load_average": max(loads) if loads else None,
               "cpus": os.cpu_count() or 1}
        out["busy"] = busy_reason(out)
        return out


#: A round-to-round spread (fastest / slowest) above this means the machine's load changed under the
#: measurement: the median is not a property of the CPU.
MAX_ROUND_SPREAD = 1.5


def busy_reason(result: dict) -> str | None:
    """Why a torch fp32 figure (:meth:`TorchFp32Meter.result`) is noise, or None when it can be used in
    a ratio: a 1-minute load average above the CPU count plus one (more runnable work than cores, besides
    padless's own process) before a round, or rounds more than :data:`MAX_ROUND_SPREAD` apart."""
    load, cpus = result.get("load_average"), int(result.get("cpus") or 1)
    if load is not None and load > cpus + 1:
        return f"load average {load:.1f} on {cpus} CPUs"
    rates = [r["sentences_per_s"] for r in result.get("rounds") or []]
    if len(rates) > 1 and min(rates) > 0 and max(rates) / min(rates) > MAX_ROUND_SPREAD:
        return f"rounds {min(rates):.0f}-{max(rates):.0f} sentences/s"
    return None
