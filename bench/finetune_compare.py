"""Compare fine-tuned students side by side (ablations of ``padless finetune``), int8 golden model, real text.

Every student is evaluated on the same held-out VADER movie snippets (``vader-movie-test``, stratified
seeded sample) against the dense fp32 teacher: the fp32 student and the int8 golden model of its compiled
project (default calibration unless the student recorded one), plus the fp32 student on snippets of
``vader-movie-train`` (the side a student may distil on: the gap to the held-out split is what in-domain
training fitted to its own sentences). One row per student, with the training settings that differ between
them, so an ablation (training data, losses, augmentation, module replacement, schedule length) reads off
one table measured in one run.

    .venv/bin/python bench/finetune_compare.py STUDENT_DIR [STUDENT_DIR ...] [--movie 1000] [--seen 1000] [--title T]

Writes the ``finetune-compare`` section of docs/benchmarks.md (``--section KEY``: another one, for a second
ablation table; ``--no-write``: print only).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _report import calibration_label, write_section  # noqa: E402
from finetune_bench import compiled, golden, pick_movie_test, steps_label, student_fp32  # noqa: E402
from padless.commands.eval import fp32_embeddings  # noqa: E402
from padless.data.datasets import load_dataset  # noqa: E402
from padless.data.metrics import cosine_rows, probe_eval  # noqa: E402
from padless.finetune import SPARSITY_FILE  # noqa: E402

#: Training settings shown per student (those an ablation varies).
KEYS = ("datasets", "lr", "replace_rate", "replace_until", "qat_steps", "loss_attention", "loss_covariance",
        "loss_probe", "augment")


def chain(student: Path) -> list[dict]:
    """The training records of ``student`` and of every ``init_from`` ancestor, oldest first."""
    out, cur = [], student
    while cur is not None and (cur / SPARSITY_FILE).is_file():
        rec = json.loads((cur / SPARSITY_FILE).read_text())
        out.insert(0, rec)
        nxt = rec["train"].get("init_from")
        cur = Path(nxt) if nxt else None
    return out


def describe(student: Path) -> str:
    parts = []
    for rec in chain(student):
        tc = rec["train"]
        bits = [f"{tc['steps']} steps"] + [f"{k} {tc[k]}" for k in KEYS if k in tc and tc[k] not in (0, 0.0, "", None)
                                          and not (k == "replace_until" and not tc.get("replace_rate"))]
        secs = rec.get("seconds")
        parts.append(", ".join(bits) + (f" ({secs / 60:.1f} min)" if secs else ""))
    return " then ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("students", nargs="+", help="student folders written by `padless finetune`")
    ap.add_argument("--movie", type=int, default=1000, help="held-out VADER movie snippets (vader-movie-test)")
    ap.add_argument("--seen", type=int, default=1000,
                    help="snippets of vader-movie-train (the side a student may distil on): fp32 cosine there "
                         "against the held-out split shows how much of a gain is fitting the training text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--board", default="u280")
    ap.add_argument("--title", default="Sparse distillation ablations (students side by side)")
    ap.add_argument("--section", default="finetune-compare",
                    help="docs/benchmarks.md section key (one per ablation table)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="padless-finetune-compare-"))
    texts, labels = pick_movie_test(args.movie, args.seed)
    dense = compiled(args, "minilm-l6", tmp / "dense")
    ids = dense.tokenize(texts, truncate=True)
    ref = fp32_embeddings(dense, ids)
    seen = load_dataset("vader-movie-train").sample(args.seen, args.seed)
    ids_seen = dense.tokenize(seen.texts, truncate=True)
    ref_seen = fp32_embeddings(dense, ids_seen)
    rows = [("int8 dense", "-", None, None, probe_eval(ref, golden(dense, ids), labels))]
    for i, st in enumerate(args.students):
        st = Path(st)
        r32 = probe_eval(ref, student_fp32(str(st), ids, {}), labels)
        c_seen = float(cosine_rows(ref_seen, student_fp32(str(st), ids_seen, {})).mean())
        prj = compiled(args, str(st), tmp / f"s{i}")
        rows.append((f"`{st.name}` ({steps_label(chain(st)[-1])} steps)", describe(st), r32, c_seen,
                     probe_eval(ref, golden(prj, ids), labels)))
        print(rows[-1][0], {k: round(float(rows[-1][4][k]), 4) for k in ("agreement", "cosine_mean")},
              file=sys.stderr, flush=True)
    a = np.asarray([len(s) for s in ids])
    lines = [f"Evaluation: {len(ids)} VADER movie snippets of the held-out split `vader-movie-test` (stratified "
             f"seeded sample, seed {args.seed}; tokens mean {a.mean():.1f}, max {a.max()}), reference = the dense "
             "fp32 teacher, probes = logistic regression on fp32 embeddings (stratified 5-fold CV); int8 = the "
             f"golden integer model of the compiled student (the recipe's calibration, {calibration_label()}, unless "
             "the student recorded one). `fp32 cosine, trained-on split`: the fp32 student on "
             f"{len(ids_seen)} snippets of `vader-movie-train` (the side a student may distil on; a gap to the "
             "held-out column is fitting the training text, not the domain). Students in the order given.",
             "", "| student | training (stage by stage) | fp32 cosine, trained-on split | fp32 cosine | "
             "fp32 agreement | int8 cosine mean (min) | int8 agreement w/ fp32 |",
             "|---|---|---|---|---|---|---|"]
    for name, desc, r32, c_seen, r8 in rows:
        c32 = "- | - | -" if r32 is None else \
            f"{c_seen:.4f} | {r32['cosine_mean']:.4f} | {100 * r32['agreement']:.2f}%"
        lines.append(f"| {name} | {desc} | {c32} | "
                     f"{r8['cosine_mean']:.4f} ({r8['cosine_min']:.4f}) | {100 * r8['agreement']:.2f}% |")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section(args.section, args.title, body)


if __name__ == "__main__":
    main()
