"""Issue 9 figures: accuracy recovered by sparse distillation (``padless finetune``), int8 golden model, real text.

One run on this machine, minilm-l6: the dense fp32 model is the reference (and the teacher). Rows, each the
int8 golden model on a seeded sample of VADER movie snippets (the evaluation set; training never reads it):
int8 dense; int8 + 50% bank-balanced weights (B = 16) pruned one-shot (no training); the same sparsity after
``padless finetune`` (distillation on fortunes + Reuters + VADER tweets). Also the fine-tuned student in fp32
(training fidelity without quantization), the training time, the loss curve, and the check that compiling
the student re-prunes nothing (``prune_spec`` reproduces its masks). Writes docs/benchmarks.md (section
finetune).

    .venv/bin/python bench/finetune_bench.py [--movie 200] [--steps 300]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _report import write_section  # noqa: E402
from padless.build import compile_project  # noqa: E402
from padless.commands.eval import fp32_embeddings  # noqa: E402
from padless.data.datasets import load_dataset  # noqa: E402
from padless.data.metrics import probe_eval  # noqa: E402
from padless.finetune import SPARSITY_FILE, finetune  # noqa: E402
from padless.models import resolve_model  # noqa: E402
from padless.opcount import model_ops  # noqa: E402
from padless.project import load_project  # noqa: E402
from padless.reference import encode_fp32, pool  # noqa: E402
from padless.runtime.backends.golden import GoldenBackend  # noqa: E402
from padless.runtime.host import embeddings_from_hidden, run_hidden  # noqa: E402
from padless.sparse.weights import LINEAR_NAMES, prune_spec  # noqa: E402

WEIGHTS = {"sparsity": 0.5, "bank": 16}


def golden(project, ids):
    return embeddings_from_hidden(project, run_hidden(project, GoldenBackend(project), ids, max_tokens=2048))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movie", type=int, default=200, help="VADER movie snippets (seeded random sample)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the finetune default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--board", default="u280")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp(prefix="padless-finetune-"))
    ds = load_dataset("vader-movie")
    pick = np.random.default_rng(args.seed).choice(len(ds.texts), size=min(args.movie, len(ds.texts)), replace=False)
    texts, labels = [ds.texts[i] for i in pick], np.asarray([ds.labels[i] for i in pick])

    compile_project("minilm-l6", board=args.board, out=tmp / "dense")
    compile_project("minilm-l6", board=args.board, out=tmp / "oneshot", config={"weights": WEIGHTS})
    dense, oneshot = load_project(tmp / "dense"), load_project(tmp / "oneshot")
    ids = dense.tokenize(texts, truncate=True)
    ref = fp32_embeddings(dense, ids)  # the dense teacher (minilm-l6 recipe)

    cfg = {"weights": WEIGHTS}
    t0 = time.perf_counter()
    res = finetune("minilm-l6", cfg, tmp / "student", steps=args.steps, progress=sys.stderr.isatty())
    t_train = time.perf_counter() - t0
    record = json.loads((tmp / "student" / SPARSITY_FILE).read_text())

    # Compile-time pruning must reproduce the trained masks (no weight changes).
    sspec, _ = resolve_model(str(tmp / "student"))
    again = prune_spec(sspec, record["sparsity"]["weights"])
    noop = all(np.array_equal(getattr(a, n).weight, getattr(b, n).weight)
               for a, b in zip(sspec.layers, again.layers) for n in LINEAR_NAMES)
    compile_project(str(tmp / "student"), board=args.board, out=tmp / "student_prj", config=record["sparsity"])
    student = load_project(tmp / "student_prj")
    s_fp32 = np.stack([pool(sspec, encode_fp32(sspec, [s])[0]) for s in ids])

    rows = [("int8 dense", probe_eval(ref, golden(dense, ids), labels)),
            ("int8 + 50% weights, one-shot magnitude (no training)", probe_eval(ref, golden(oneshot, ids), labels)),
            (f"fp32 student after finetune ({res['steps']} steps)", probe_eval(ref, s_fp32, labels)),
            (f"int8 + 50% weights after finetune ({res['steps']} steps)", probe_eval(ref, golden(student, ids), labels))]
    model = dense.model
    lengths = [len(s) for s in ids]
    tot = sum(model_ops(model, n, {"weights": WEIGHTS, "attention": {}, "tokens": {}})["totals"]["dsp_macs"] for n in lengths)
    tot_d = sum(model_ops(model, n, {})["dense_baseline"]["dsp_macs"] for n in lengths)
    lines = ["| configuration | probe acc. | agreement w/ fp32 | cosine mean (min) |", "|---|---|---|---|"]
    for label, r in rows:
        lines.append(f"| {label} | {100 * r['accuracy']:.2f}% | {100 * r['agreement']:.2f}% | "
                     f"{r['cosine_mean']:.4f} ({r['cosine_min']:.4f}) |")
        print(label, {k: r[k] for k in ("accuracy", "agreement", "cosine_mean", "cosine_min")}, file=sys.stderr)
    a = np.asarray(lengths)
    curve = ", ".join(f"{s}: {v:.4f}" for s, v in res["losses"])
    tc = record["train"]
    body = f"""
Model minilm-l6, reference = the dense fp32 model (the teacher). Evaluation: {len(ids)} VADER movie snippets
(seeded sample, seed {args.seed}; tokens mean {a.mean():.1f}, max {a.max()}); probes = logistic regression
trained on fp32 embeddings (stratified 5-fold CV, fp32 accuracy {100 * rows[0][1]['accuracy_fp32']:.2f}%).
Every int8 row is the golden integer model of a compiled project (default calibration, 256 VADER tweets).

Training: `padless finetune minilm-l6` with `weights: {{sparsity: 0.5, bank: 16}}`, schedule
(steps {tc['steps']}, batch {tc['batch_size']}, max_len {tc['max_len']}, AdamW lr {tc['lr']}, cubic ramp over
{int(round(tc['ramp'] * tc['steps']))} steps, masks every {tc['mask_every']} steps; losses: relative hidden-state
MSE + (1 - cosine) of mean-pooled embeddings; data: first {tc['texts_per_dataset']} texts of
{', '.join(tc['datasets'])}). Training time: **{t_train / 60:.1f} min** on this machine (2 shared cores,
torch CPU). Loss (window means, step: loss): {curve}. Final weight sparsity {res['sparsity']:.4f}.
`prune_spec` on the saved student reproduces its weights exactly (compile re-prunes nothing): **{noop}**.
Total DSP MACs of the 50% rows vs dense int8 over these texts: {tot_d / tot:.2f}x fewer.

{chr(10).join(lines)}
"""
    print(body)
    if not args.no_write:
        write_section("finetune", "Sparse distillation (padless finetune): 50% bank-balanced weights, minilm-l6", body)


if __name__ == "__main__":
    main()
