"""``padless run DIR --backend golden [--text "..."]... [--input FILE] [--json]``."""
from __future__ import annotations

import argparse
import json
import sys


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--max-tokens``, ``--limit``)."""
    try:
        if not text.strip().isascii():  # int() takes any Unicode digit (Arabic-Indic, fullwidth)
            raise ValueError(text)
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number (give an integer >= 1 in digits 0-9)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give an integer >= 1")
    return n


def register(sub) -> None:
    p = sub.add_parser("run", help="embed sentences with a compiled project on a backend",
                       description="Run sentences through the project's integer encoder and print "
                                   "their sentence embeddings, in input order.")
    p.add_argument("project", help="project folder written by `padless compile`")
    p.add_argument("--backend", default="golden", help="golden (numpy, bit-exact), csim (g++ build of the HLS C++), pynq (board)")
    p.add_argument("--text", action="append", default=[], help="a sentence (repeatable)")
    p.add_argument("--input", help="file with one sentence per line (no blank lines: the line number minus one, "
                                   "after the --text inputs, is the output index)")
    p.add_argument("--json", action="store_true", help='one JSON object per input: {"index", "tokens", "embedding"}')
    p.add_argument("--truncate", action="store_true",
                   help="cut sentences longer than the project's max length (sentence-transformers' max_seq_length, "
                        "else the model's maximum positions) instead of refusing them")
    p.add_argument("--max-length", type=int,
                   help="truncation length in tokens (default: the project's; at most the model's positions)")
    p.add_argument("--max-tokens", type=positive_int, default=2048, help="tokens per packed batch (>= 1)")
    p.set_defaults(func=run)


def gather_texts(args) -> list[str]:
    """``--text`` values then the lines of ``--input`` (a blank line is an error naming its number, so the
    index of every output is its input's position)."""
    from ..data.datasets import read_lines
    from ..errors import InputError
    texts = list(args.text)
    if args.input:
        texts += read_lines(args.input, blank="error")
    if not texts:
        raise InputError("nothing to run: give --text \"...\" or --input FILE")
    return texts


def run(args) -> int:
    from ..project import load_project
    from ..runtime.backends import get_backend
    from ..runtime.host import embeddings_from_hidden, run_hidden
    project = load_project(args.project)
    if args.max_length is not None:
        project.check_max_length(args.max_length)
    texts = gather_texts(args)
    ids = project.tokenize(texts, truncate=args.truncate, max_length=args.max_length)
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
