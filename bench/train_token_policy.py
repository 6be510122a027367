"""Train the TR-BERT token-selection policy for minilm-l6 and compare it with cascade pruning (issue 3).

Steps (one run, this machine):

1. ``padless.build.compile_project("minilm-l6")`` into ``--out`` (default: a temporary folder);
2. :func:`padless.sparse.policy.train_policy` on unlabelled real text (fortunes, Reuters, VADER tweets;
   never the VADER movie snippets) against the unpruned fp32 model: imitation warm-up on the cascade
   attention ranking, then REINFORCE (8 samples per input, reward = -distillation loss - alpha * kept);
3. :func:`padless.sparse.policy.quantize_policy` on the project's integer model (calibration: VADER tweets),
   integer thresholds calibrated for keep 0.7 at layers 2 and 4; saved as ``policy.npz`` and registered in
   the project's manifest (:func:`padless.sparse.policy.install_policy`);
4. golden integer model on 300 VADER movie snippets and on long Reuters articles (<= 256 tokens): int8
   dense, cascade pruning (keep 0.7 at layers 2 and 4) and the learned policy; probe accuracy, agreement
   and cosine against fp32, and the fraction of tokens that survive both selection points.

Writes docs/benchmarks.md section ``token-policy``.

    .venv/bin/python bench/train_token_policy.py [--movie 300] [--long 64] [--out DIR] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _report import write_section  # noqa: E402
from sparsity_bench import pick_long, pick_movie  # noqa: E402
from padless.build import compile_project  # noqa: E402
from padless.commands.eval import fp32_embeddings  # noqa: E402
from padless.data.datasets import load_dataset  # noqa: E402
from padless.data.metrics import probe_eval  # noqa: E402
from padless.golden import dequantize_output, quantize_input, run_encoder  # noqa: E402
from padless.models import resolve_model  # noqa: E402
from padless.project import load_project  # noqa: E402
from padless.reference import embed, pool  # noqa: E402
from padless.runtime.host import run_hidden  # noqa: E402
from padless.sparse.config import parse_sparsity  # noqa: E402
from padless.sparse.policy import (PolicyTrainConfig, install_policy, load_policy, quantize_policy,  # noqa: E402
                                   train_policy)

LAYERS = [2, 4]
KEEP = 0.7


class _Backend:
    """Golden backend returning the survivor mask as one extra column (to count survivors)."""

    def __init__(self, qe, sp, policy=None):
        self.qe, self.sp, self.policy = qe, sp, policy

    def run(self, x, offsets):
        kept = []
        y = run_encoder(self.qe, x, offsets, self.sp, kept_out=kept, policy=self.policy)
        return np.concatenate([y.astype(np.int16), kept[0][:, None].astype(np.int16)], axis=1)

    def close(self):
        pass


def evaluate(project, ids, labels, ref, sp, policy=None) -> dict:
    t0 = time.perf_counter()
    rows = run_hidden(project, _Backend(project.quantized, sp, policy), ids, max_tokens=2048)
    scale = np.asarray(project.quantized.output_scale)
    emb = np.stack([pool(project.host, dequantize_output(r[:, :-1], scale)) for r in rows])
    only = np.stack([pool(project.host, dequantize_output(r[r[:, -1] == 1, :-1], scale)) for r in rows])
    surv = float(sum(int(r[:, -1].sum()) for r in rows) / sum(len(r) for r in rows))
    res, res2 = probe_eval(ref, emb, labels), probe_eval(ref, only, labels)
    keys = ("accuracy", "agreement", "cosine_mean", "cosine_min")
    return {**{k: res[k] for k in keys}, "survivors_pooled": {k: res2[k] for k in keys},
            "accuracy_fp32": res["accuracy_fp32"], "survivors": surv, "seconds": time.perf_counter() - t0}


def table(rows: list[tuple[str, dict]]) -> str:
    out = ["| configuration | probe acc. | agreement w/ fp32 | cosine mean (min) | tokens surviving both points |",
           "|---|---|---|---|---|"]
    for label, r in rows:
        out.append(f"| {label} | {100 * r['accuracy']:.2f}% | {100 * r['agreement']:.2f}% | "
                   f"{r['cosine_mean']:.4f} ({r['cosine_min']:.4f}) | {r['survivors']:.3f} |")
        if r["survivors"] < 1:
            s = r["survivors_pooled"]
            out.append(f"| {label}, survivors pooled | {100 * s['accuracy']:.2f}% | {100 * s['agreement']:.2f}% | "
                       f"{s['cosine_mean']:.4f} ({s['cosine_min']:.4f}) | {r['survivors']:.3f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movie", type=int, default=300)
    ap.add_argument("--long", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--min-long", type=int, default=200)
    ap.add_argument("--imitation-steps", type=int, default=100)
    ap.add_argument("--rl-steps", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--calib", type=int, default=128, help="VADER tweets for the integer calibration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="project folder (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    t_start = time.perf_counter()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="padless-policy-")) / "minilm"
    compile_project("minilm-l6", board="u280", out=out, config={})
    proj = load_project(out)
    spec, _ = resolve_model("minilm-l6")
    tc = PolicyTrainConfig(keep=KEEP, imitation_steps=args.imitation_steps, rl_steps=args.rl_steps,
                           alpha=args.alpha, seed=args.seed)
    policy, record = train_policy(spec, LAYERS, tc,
                                  log=lambda s: print(s, file=sys.stderr, flush=True))
    tweets = load_dataset("vader-tweets", limit=4000).texts[-args.calib:]
    cal_ids = proj.tokenize(tweets, truncate=True)
    xs = [quantize_input(embed(proj.host, i), proj.quantized.input_scale) for i in cal_ids]
    qp = quantize_policy(policy, proj.quantized, xs, keep=KEEP, record=record)
    install_policy(out, qp, KEEP)
    proj = load_project(out)
    qp = load_policy(out)
    print("calibration:", qp.record["calibration"], file=sys.stderr, flush=True)

    cascade = parse_sparsity({"tokens": {"layers": LAYERS, "keep": KEEP}})
    pol_sp = proj.sparsity
    sets = {}
    texts, movie_labels = pick_movie(args.movie, args.seed)
    sets["movie"] = (proj.tokenize(texts, truncate=True), movie_labels)
    sets["long"] = pick_long(proj, args.long, args.min_long, args.max_len, args.seed)
    results = {}
    for name, (ids, labels) in sets.items():
        ref = fp32_embeddings(proj, ids)
        rows = [("int8 dense", evaluate(proj, ids, labels, ref, parse_sparsity({}))),
                (f"int8 + cascade (SpAtten) keep {KEEP} @ layers 2, 4", evaluate(proj, ids, labels, ref, cascade)),
                (f"int8 + TR-BERT policy, thresholds for keep {KEEP} @ layers 2, 4",
                 evaluate(proj, ids, labels, ref, pol_sp, qp))]
        for label, r in rows:
            print(f"[{name}] {label}: {r}", file=sys.stderr, flush=True)
        results[name] = rows
    wall = time.perf_counter() - t_start

    def lens(ids):
        a = np.asarray([len(s) for s in ids])
        return f"{len(a)} texts, tokens mean {a.mean():.1f}, min {a.min()}, max {a.max()}"
    cal = qp.record["calibration"]["points"]
    cal_txt = "; ".join(f"layer {k}: threshold {v['threshold']} (real logit {v['threshold_real']:.3f}), "
                        f"{v['kept']:.3f} of {v['rows_in']} rows kept" for k, v in cal.items())
    rec = qp.record
    body = f"""
Model minilm-l6, golden integer model against fp32. Policy: TR-BERT (Linear(384 -> 32) -> GELU ->
Linear(32 -> 1) per point, before layers 2 and 4), trained on unlabelled text ({rec['texts']} texts of
fortunes, Reuters, VADER tweets, <= 64 tokens) against the unpruned fp32 model:
{tc.imitation_steps} imitation steps (BCE against the cascade attention ranking, batch {tc.batch_size}),
then {tc.rl_steps} REINFORCE steps ({tc.samples} samples per input, batch {tc.batch_size}, reward = -(1 - cos of
the mean-pooled embeddings) - alpha * kept fraction, alpha starting at {tc.alpha}, baseline = mean reward of the input's samples), Adam lr
{tc.lr}, alpha adapted by dual ascent (rate {tc.alpha_rate}, target kept {np.mean([KEEP, KEEP ** 2]):.3f});
{rec['seconds']:.0f} s. Window means (10 steps): imitation BCE {rec['imitation_bce']};
alpha {rec["alpha"]}; REINFORCE reward {rec['reward']}, distillation loss {rec['distill']}, kept {rec['kept']}.
Integer policy (int8 weights, int16 GELU input, int32 logit; `policy.npz` in the project) with thresholds
calibrated on {len(xs)} VADER tweets for keep {KEEP} per point: {cal_txt}.
Cascade = SpAtten pruning by accumulated attention, keep {KEEP} of the survivors at each point (exact count
per sequence); the policy's kept fraction varies per text (threshold), so the last column gives the measured
fraction of tokens that went through every layer. Removed tokens carry their hidden state into the mean
pooling (the encoder contract); rows "survivors pooled": the same run pooled over the tokens that went
through every layer only (TR-BERT's classification convention). Training data note: the training mix
holds the first 1000 Reuters texts truncated at 64 tokens, and the long-text set is drawn from all
Reuters articles of >= 200 tokens, so a few evaluation articles' first 64 tokens may have been seen
(unlabelled) in training; the movie snippets were never seen. Probe: logistic regression on fp32 embeddings (5-fold CV). Wall time
{wall / 60:.1f} min.

### VADER movie snippets ({lens(sets['movie'][0])}; seed {args.seed})

{table(results['movie'])}

### Long texts: Reuters grain, truncated at {args.max_len} tokens ({lens(sets['long'][0])})

{table(results['long'])}
"""
    print(body)
    if not args.no_write:
        write_section("token-policy", "Token reduction: learned TR-BERT policy vs cascade pruning (issue 3)", body)


if __name__ == "__main__":
    main()
