"""``padless run DIR --backend golden [--text "..."]... [--input FILE] [--json]``."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("run", help="embed sentences with a compiled project on a backend",
                       description="Run sentences through the project's integer encoder and print "
                                   "their sentence embeddings, in input order.")
    p.add_argument("project", help="project folder written by `padless compile`")
    p.add_argument("--backend", default="golden", help="golden (numpy, bit-exact), csim (g++ build of the HLS C++), pynq (board)")
    p.add_argument("--text", action="append", default=[], help="a sentence (repeatable)")
    p.add_argument("--input", help="file with one sentence per line")
    p.add_argument("--json", action="store_true", help='one JSON object per input: {"index", "tokens", "embedding"}')
    p.add_argument("--truncate", action="store_true", help="cut sentences longer than the model's maximum positions")
    p.add_argument("--max-tokens", type=int, default=2048, help="tokens per packed batch")
    p.set_defaults(func=run)


def gather_texts(args) -> list[str]:
    from ..data.datasets import read_lines
    from ..errors import InputError
    texts = list(args.text)
    if args.input:
        texts += read_lines(args.input)
    if not texts:
        raise InputError("nothing to run: give --text \"...\" or --input FILE")
    return texts


def run(args) -> int:
    from ..project import load_project
    from ..runtime.backends import get_backend
    from ..runtime.host import embeddings_from_hidden, run_hidden
    project = load_project(args.project)
    texts = gather_texts(args)
    ids = project.tokenize(texts, truncate=args.truncate)
    backend = get_backend(args.backend, project)
    try:
        hidden = run_hidden(project, backend, ids, max_tokens=args.max_tokens)
    finally:
        backend.close()
    emb = embeddings_from_hidden(project, hidden)
    for i, (tok, e) in enumerate(zip(ids, emb)):
        if args.json:
            print(json.dumps({"index": i, "tokens": len(tok), "embedding": [round(float(v), 7) for v in e]}))
        else:
            head = " ".join(f"{v:+.4f}" for v in e[:6])
            print(f"[{i}] {len(tok)} tokens  [{head} ...]  |e|={float((e @ e) ** 0.5):.4f}  {texts[i][:60]!r}")
    sys.stdout.flush()
    return 0
