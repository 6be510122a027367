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
from .run import positive_int


def register(sub) -> None:
    p = sub.add_parser("eval", help="accuracy and fidelity of a backend against fp32 on labelled real text")
    p.add_argument("project", help="project folder written by `padless compile`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="TSV file: label<TAB>text per line")
    labelled = ", ".join(n for n in DATASETS if n != "fortunes")
    src.add_argument("--dataset", help=f"a labelled real dataset ({labelled}; fetched into a cache on first use)")
    p.add_argument("--limit", type=positive_int, help="use a stratified random sample of N >= 1 examples (deterministic, --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--backend", default="golden")
    p.add_argument("--json", action="store_true")
    p.add_argument("--truncate", action="store_true", default=True,
                   help="cut texts longer than the project's max length (always on for eval)")
    p.add_argument("--max-length", type=int,
                   help="truncation length in tokens (default: the project's, e.g. sentence-transformers' "
                        "max_seq_length 256 for all-MiniLM-L6-v2); fp32 and the backend see the same tokens")
    p.add_argument("--max-tokens", type=positive_int, default=2048, help="tokens per packed batch (>= 1)")
    p.add_argument("--reference",
                   help="the fp32 model to compare against (recipe or path); default: the model the project "
                        "was compiled from, re-loaded only when its files still match the manifest's checksum")
    p.set_defaults(func=run)


def reference_spec(project, reference: str | None = None):
    """The fp32 model ``padless eval`` compares against: ``reference`` (a recipe or path the user names),
    else the project's own source: its recipe (by recipe name only), or its path when the files there
    still have the SHA-256 the manifest recorded at compile time (a fine-tuned student: its dense
    teacher). Nothing is unpickled on the way (docs/reliability.md).

    Raises ProjectError when the source is gone or changed (pass ``--reference``), UnknownModelError."""
    from ..errors import ProjectError
    from ..models import resolve_model, source_fingerprint
    if reference:
        return resolve_model(reference)[0]
    src = project.model.get("source") or {}
    if not isinstance(src, dict):
        raise ProjectError(f"{project.path}: manifest model.source is not an object; pass --reference MODEL")
    if src.get("recipe"):
        return resolve_model(str(src["recipe"]), as_recipe=True)[0]
    path = src.get("path")
    if not isinstance(path, str) or not path:
        raise ProjectError(f"{project.path} records no source model to compare with; pass --reference MODEL "
                           "(a recipe name or the model's path)")
    p = Path(path)
    if not p.exists():
        raise ProjectError(f"the model {p} this project was compiled from is gone; pass --reference MODEL")
    want = src.get("sha256")
    if not want:
        raise ProjectError(f"{project.path} records no checksum of its source model {p} (compiled by an older "
                           "padless); recompile it, or pass --reference PATH to compare against that model")
    if source_fingerprint(p) != want:
        raise ProjectError(f"the model at {p} changed since this project was compiled (its files do not match "
                           "the manifest's checksum); recompile the project, or pass --reference PATH to compare "
                           "against the model as it is now")
    student = p / "padless_sparsity.json"
    if p.is_dir() and student.is_file():
        # a fine-tuned sparse student (padless finetune): measure against its dense teacher
        try:
            teacher = json.loads(student.read_text())["teacher"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProjectError(f"{student} names no teacher ({exc}); pass --reference MODEL") from exc
        return resolve_model(str(teacher))[0]
    return resolve_model(p, as_recipe=False)[0]


def fp32_embeddings(project, ids, progress=None, reference=None):
    """fp32 sentence embeddings ``(B, hidden)`` of the project's original dense model
    (:func:`reference_spec`; for a fine-tuned student, its teacher) on the same token ids. ``reference``:
    a model name or path, or an already resolved EncoderSpec."""
    import numpy as np

    from ..ir import EncoderSpec
    from ..reference import encode_fp32, pool
    spec = reference if isinstance(reference, EncoderSpec) else reference_spec(project, reference)
    if spec.hidden_size != int(project.model["hidden_size"]):
        from ..errors import InputError
        raise InputError(f"--reference {spec.name} has hidden size {spec.hidden_size}, the project "
                         f"{project.model['hidden_size']}: compare against the model the project was compiled from")
    out = []
    for seq in ids:
        out.append(pool(spec, encode_fp32(spec, [seq])[0]))
        if progress:
            progress(1)
    return np.stack(out)


def evaluate(project, texts, labels, backend_name="golden", truncate=True, max_tokens=2048, show=True,
             max_length: int | None = None, reference: str | None = None) -> dict:
    """The eval figures as a dict (keys of :func:`padless.data.metrics.probe_eval`, timings, ``lengths``:
    the token count of every text after tokenization, and ``max_length``: the truncation length used).

    fp32 and the backend embed the same token ids, cut at ``max_length`` (default the project's
    :attr:`~padless.project.Project.max_length`)."""
    from ..data.metrics import probe_eval
    from ..progress import progress_bar as tqdm  # a bar on a terminal, plain lines in a log
    from ..runtime.backends import get_backend
    from ..runtime.host import embeddings_from_hidden, run_hidden
    ids = project.tokenize(texts, truncate=truncate, max_length=max_length)
    ref_spec = reference_spec(project, reference)  # errors (a changed or unknown model) before any bar
    disable = not show
    with tqdm(total=len(ids), desc="fp32 reference", unit="sent", disable=disable, file=sys.stderr) as bar:
        t0 = time.perf_counter()
        ref = fp32_embeddings(project, ids, bar.update, reference=ref_spec)
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
                "lengths": [len(i) for i in ids], "max_length": int(max_length or project.max_length),
                "seconds_fp32_reference": round(t_ref, 3), "seconds_backend": round(t_b, 3)})
    return res


def run(args) -> int:
    from ..data.datasets import load_dataset, read_tsv
    from ..errors import InputError
    from ..project import load_project
    project = load_project(args.project)
    ds = read_tsv(args.data) if args.data else load_dataset(args.dataset)
    if args.limit is not None:
        ds = ds.sample(args.limit, seed=args.seed)
    texts, labels = ds.texts, ds.labels
    if labels is None:
        raise InputError(f"{ds.name} has no labels; eval needs label<TAB>text data")
    if args.max_length is not None:
        project.check_max_length(args.max_length)
    res = evaluate(project, texts, labels, args.backend, args.truncate, args.max_tokens,
                   show=True,
                   max_length=args.max_length, reference=args.reference)  # a bar on a terminal, plain lines in a log (stderr)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "lengths"}))
    else:
        print(f"{res['n']} examples ({ds.name}), backend {args.backend}, cut at {res['max_length']} tokens")
        print(f"  probe accuracy: fp32 {100 * res['accuracy_fp32']:.2f}%   {args.backend} {100 * res['accuracy']:.2f}%")
        print(f"  decision agreement with fp32: {100 * res['agreement']:.2f}%")
        print(f"  cosine to fp32: mean {res['cosine_mean']:.4f}  min {res['cosine_min']:.4f}")
    return 0
