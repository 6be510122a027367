"""``padless eval DIR (--data FILE.tsv | --dataset NAME) [--backend golden] [--json]``.

Trains logistic-regression probes (scikit-learn, stratified 5-fold cross-validation) on fp32 sentence
embeddings and reports fp32 accuracy, the backend's accuracy with the same probes, decision agreement
with fp32 and the cosine between fp32 and backend embeddings.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..data.datasets import DATASETS


def register(sub) -> None:
    p = sub.add_parser("eval", help="accuracy and fidelity of a backend against fp32 on labelled real text")
    p.add_argument("project", help="project folder written by `padless compile`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="TSV file: label<TAB>text per line")
    labelled = ", ".join(n for n in DATASETS if n != "fortunes")
    src.add_argument("--dataset", help=f"a labelled real dataset ({labelled}; fetched into a cache on first use)")
    p.add_argument("--limit", type=int, help="use a stratified random sample of N examples (deterministic, --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--backend", default="golden")
    p.add_argument("--json", action="store_true")
    p.add_argument("--truncate", action="store_true", default=True,
                   help="cut texts longer than the model's maximum (default on for datasets)")
    p.add_argument("--max-tokens", type=int, default=2048)
    p.set_defaults(func=run)


def fp32_embeddings(project, ids, progress=None):
    """fp32 sentence embeddings of the project's original dense model (re-resolved from the manifest;
    for a fine-tuned student, its teacher)."""
    import numpy as np

    from ..models import resolve_model
    from ..reference import encode_fp32, pool
    src = project.model.get("source", {})
    name = src.get("recipe") or src.get("path")
    student = Path(src.get("path") or "") / "padless_sparsity.json"
    if src.get("path") and student.is_file():
        # a fine-tuned sparse student (padless finetune): measure against its dense teacher
        name = json.loads(student.read_text())["teacher"]
    spec, _ = resolve_model(name)
    out = []
    for seq in ids:
        out.append(pool(spec, encode_fp32(spec, [seq])[0]))
        if progress:
            progress(1)
    return np.stack(out)


def evaluate(project, texts, labels, backend_name="golden", truncate=True, max_tokens=2048, show=True) -> dict:
    """The eval figures as a dict (keys of :func:`padless.data.metrics.probe_eval`, timings, and
    ``lengths``: the token count of every text after tokenization)."""
    from tqdm import tqdm

    from ..data.metrics import probe_eval
    from ..runtime.backends import get_backend
    from ..runtime.host import embeddings_from_hidden, run_hidden
    ids = project.tokenize(texts, truncate=truncate)
    disable = not show
    with tqdm(total=len(ids), desc="fp32 reference", unit="sent", disable=disable, file=sys.stderr) as bar:
        t0 = time.perf_counter()
        ref = fp32_embeddings(project, ids, bar.update)
        t_ref = time.perf_counter() - t0
    backend = get_backend(backend_name, project)
    try:
        with tqdm(total=len(ids), desc=f"{backend_name} backend", unit="sent", disable=disable, file=sys.stderr) as bar:
            t0 = time.perf_counter()
            hidden = run_hidden(project, backend, ids, max_tokens=max_tokens, progress=bar.update)
            t_b = time.perf_counter() - t0
    finally:
        backend.close()
    emb = embeddings_from_hidden(project, hidden)
    res = probe_eval(ref, emb, labels)
    res.update({"backend": backend_name, "tokens_mean": float(sum(map(len, ids)) / len(ids)),
                "lengths": [len(i) for i in ids],
                "seconds_fp32_reference": round(t_ref, 3), "seconds_backend": round(t_b, 3)})
    return res


def run(args) -> int:
    from ..data.datasets import load_dataset, read_tsv
    from ..errors import InputError
    from ..project import load_project
    project = load_project(args.project)
    ds = read_tsv(args.data) if args.data else load_dataset(args.dataset)
    if args.limit:
        ds = ds.sample(args.limit, seed=args.seed)
    texts, labels = ds.texts, ds.labels
    if labels is None:
        raise InputError(f"{ds.name} has no labels; eval needs label<TAB>text data")
    res = evaluate(project, texts, labels, args.backend, args.truncate, args.max_tokens, show=not args.json)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "lengths"}))
    else:
        print(f"{res['n']} examples ({ds.name}), backend {args.backend}")
        print(f"  probe accuracy: fp32 {100 * res['accuracy_fp32']:.2f}%   {args.backend} {100 * res['accuracy']:.2f}%")
        print(f"  decision agreement with fp32: {100 * res['agreement']:.2f}%")
        print(f"  cosine to fp32: mean {res['cosine_mean']:.4f}  min {res['cosine_min']:.4f}")
    return 0
