"""Fidelity of every issue-26 configuration against fp32 on held-out text, for the side-by-side table of
bench/sparsity_engine_bench.py (``--fidelity``).

    python bench/sparsity_fidelity_bench.py --dense DIR --w50 DIR [--w75 DIR] [--student-w50 DIR] [--student-w75 DIR] \\
        [--limit 1000] --out FILE.json

DIR: projects compiled with the real quantization (the shipped configs: ``padless compile minilm-l6 --board
u280`` for dense, ``--config configs/minilm-l6-w50.yaml`` / ``-w75.yaml`` for the weights). The quantized
integer model depends on the weights (pruning, calibration, GPTQ) but not on top-k attention or token
reduction (the calibration runs the dense attention; padless.quant.cache's key has no attention or tokens),
so each configuration is the base project of its weights with the attention / tokens of the configuration
set on the loaded project: exactly what ``padless compile`` with that config gives. ``padless eval``'s
function (:func:`padless.commands.eval.evaluate`, golden backend: the kernel's bits, which csim, pynq-sim
and the ONNX core equal) on a stratified ``--limit`` sample of ``vader-movie-test`` (seed 0, as ``padless
eval --dataset vader-movie-test --limit N``). Results are cached in ``--out`` and re-used.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparsity_engine_bench import CONFIGS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", required=True)
    ap.add_argument("--w50", required=True)
    ap.add_argument("--w75", default=None)
    ap.add_argument("--student-w50", default=None, help="a project compiled from a fine-tuned 50%% pe-pair student")
    ap.add_argument("--student-w75", default=None, help="a project compiled from a fine-tuned 75%% pe-pair student")
    ap.add_argument("--student-label", default="fine-tuned")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from padless.commands.eval import fp32_embeddings, reference_spec
    from padless.data.datasets import load_dataset
    from padless.data.metrics import probe_eval
    from padless.progress import progress_bar
    from padless.project import load_project
    from padless.runtime.backends import get_backend
    from padless.runtime.host import embeddings_from_hidden, run_hidden
    from padless.sparse.config import parse_sparsity
    ds = load_dataset("vader-movie-test").sample(a.limit, seed=0)
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.is_file() else {}
    bases = {"dense": a.dense, "w50": a.w50, "w75": a.w75}
    jobs = []
    for name, (_, cfg) in CONFIGS.items():
        w = cfg.get("weights") or {}
        base = "dense" if not w else ("w75" if w.get("sparsity") == 0.75 else "w50")
        jobs.append((name, bases[base], cfg, "one-shot"))
        student = {"w50": a.student_w50, "w75": a.student_w75}.get(base)
        if student:
            jobs.append((f"{name}/ft", student, cfg, a.student_label))
    ref = None   # the fp32 teacher's embeddings: one model (minilm-l6) for every project, computed once
    for name, path, cfg, kind in jobs:
        if name in res or not path:
            continue
        p = load_project(path)
        want = parse_sparsity({"attention": cfg.get("attention") or {}, "weights": p.sparsity.get("weights") or {},
                               "tokens": cfg.get("tokens") or {}}, num_layers=p.model["num_layers"])
        p.manifest["sparsity"] = want
        t = time.time()
        # padless.commands.eval.evaluate, with the fp32 reference shared by the configurations
        ids = p.tokenize(ds.texts, truncate=True)
        if ref is None:
            with progress_bar(total=len(ids), desc="fp32 reference", unit="sent") as bar:
                ref = fp32_embeddings(p, ids, bar.update, reference=reference_spec(p, None))
        backend = get_backend("golden", p)
        try:
            with progress_bar(total=len(ids), desc=f"golden {name}", unit="sent") as bar:
                hidden = run_hidden(p, backend, ids, max_tokens=2048, progress=bar.update)
        finally:
            backend.close()
        r = probe_eval(ref, embeddings_from_hidden(p, hidden), ds.labels)
        res[name] = {"agreement": r["agreement"], "cosine_mean": r["cosine_mean"], "cosine_min": r["cosine_min"],
                     "accuracy": r["accuracy"], "accuracy_fp32": r["accuracy_fp32"], "n": r["n"], "kind": kind,
                     "project": str(path), "source": f"{kind}: `padless eval` (golden) on {r['n']} stratified "
                     f"vader-movie-test snippets (seed 0)"}
        out.write_text(json.dumps(res, indent=1))
        print(f"{name} ({kind}): agreement {r['agreement']:.1%}, cosine {r['cosine_mean']:.4f} "
              f"(min {r['cosine_min']:.4f}), {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
