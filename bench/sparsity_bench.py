"""Issue 3 figures: sparse attention, bank-balanced weight sparsity and token reduction on real text.

One run on this machine, MiniLM-L6 (minilm-l6 recipe), golden integer model against the fp32 reference:

* short texts: VADER movie snippets (a seeded random sample, both classes);
* long texts: Reuters-21578 grain articles (weka Debian package), a seeded sample balanced between grain and
  not-grain among articles of at least ``--min-long`` tokens, truncated at ``--max-len`` tokens.

Rows: fp32 / int8 dense / int8 + top-k (k = 8, 16, 32; density 0.25, 0.5) / + 50% bank-balanced weight
sparsity (bank 16) / + cascade token reduction (keep 0.7 before layers 2 and 4) / all together. Each row:
probe accuracy (logistic-regression probes trained on fp32 embeddings, 5-fold CV), decision agreement
with fp32, mean and min cosine to fp32, attention MACs (Q.K^T + P.V, int8 on DSPs) and total DSP MACs
against dense int8 (exact counts from :func:`padless.opcount.model_ops` at each text's real length),
and the 4-bit selection products (LUT look-ups) the top-k stage adds. Also the real storage of the packed
bank-balanced weights (values + in-bank indices) against dense int8. Writes docs/benchmarks.md (section
sparsity).

    .venv/bin/python bench/sparsity_bench.py [--movie 400] [--long 64] [--max-len 256]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _report import calibration_label, write_section  # noqa: E402
from padless.build import compile_project  # noqa: E402
from padless.commands.eval import fp32_embeddings  # noqa: E402
from padless.data.datasets import load_dataset  # noqa: E402
from padless.data.metrics import probe_eval  # noqa: E402
from padless.golden import dequantize_output, run_encoder  # noqa: E402
from padless.opcount import model_ops  # noqa: E402
from padless.project import load_project  # noqa: E402
from padless.reference import pool  # noqa: E402
from padless.runtime.backends.golden import GoldenBackend  # noqa: E402
from padless.runtime.host import embeddings_from_hidden, run_hidden  # noqa: E402
from padless.sparse.config import parse_sparsity  # noqa: E402
from padless.sparse.weights import kept_per_bank, pack_bank_balanced, unpack_bank_balanced  # noqa: E402

WEIGHTS = {"sparsity": 0.5, "bank": 16}
WEIGHTS_ACT = {"sparsity": 0.5, "bank": 16, "criterion": "activation"}
PROJECTS = {"dense": {}, "magnitude": {"weights": WEIGHTS}, "activation": {"weights": WEIGHTS_ACT}}
TOKENS = {"layers": [2, 4], "keep": 0.7}
DEFAULT_ATTENTION = {"topk": 32}
# (label, project (which weights), sparsity config)
ROWS = [
    ("int8 dense", "dense", {}),
    ("int8 + top-k 8", "dense", {"attention": {"topk": 8}}),
    ("int8 + top-k 16", "dense", {"attention": {"topk": 16}}),
    ("int8 + top-k 32", "dense", {"attention": {"topk": 32}}),
    ("int8 + density 0.25", "dense", {"attention": {"density": 0.25}}),
    ("int8 + density 0.5", "dense", {"attention": {"density": 0.5}}),
    ("int8 + 50% bank-balanced weights (B=16), magnitude", "magnitude", {"weights": WEIGHTS}),
    ("int8 + 50% bank-balanced weights (B=16), activation-aware", "activation", {"weights": WEIGHTS_ACT}),
    ("int8 + token reduction (keep 0.7 @ layers 2, 4)", "dense", {"tokens": TOKENS}),
    ("int8 + density 0.25 + tokens 0.7", "dense", {"attention": {"density": 0.25}, "tokens": TOKENS}),
    ("all together: top-k 32 + 50% act.-aware weights + tokens 0.7", "activation",
     {"attention": DEFAULT_ATTENTION, "weights": WEIGHTS_ACT, "tokens": TOKENS}),
    ("all together: density 0.25 + 50% act.-aware weights + tokens 0.7", "activation",
     {"attention": {"density": 0.25}, "weights": WEIGHTS_ACT, "tokens": TOKENS}),
]


def pick_movie(n: int, seed: int):
    ds = load_dataset("vader-movie")
    idx = np.random.default_rng(seed).choice(len(ds.texts), size=min(n, len(ds.texts)), replace=False)
    return [ds.texts[i] for i in idx], np.asarray([ds.labels[i] for i in idx])


def pick_long(project, n: int, min_len: int, max_len: int, seed: int, first: int = 0):
    """Balanced grain / not-grain Reuters articles of >= min_len tokens, ids truncated at max_len; only
    articles from index ``first`` on (e.g. the test split)."""
    ds = load_dataset("reuters")
    ids = project.tokenize(ds.texts[first:], truncate=True)
    labels = np.asarray(ds.labels[first:])
    rng = np.random.default_rng(seed)
    chosen = []
    for c in (0, 1):
        pool_c = [i for i in range(len(ids)) if labels[i] == c and len(ids[i]) >= min_len]
        chosen += list(rng.choice(pool_c, size=min(n // 2, len(pool_c)), replace=False))
    chosen.sort()
    cut = [ids[i] if len(ids[i]) <= max_len else ids[i][: max_len - 1] + ids[i][-1:] for i in chosen]
    return cut, labels[chosen]


def mac_ratios(model: dict, lengths, sp: dict) -> dict:
    """Dense / sparse ratios of attention and total DSP MACs summed over the texts, and 4-bit products."""
    att = att_d = tot = tot_d = sel = 0
    for n in lengths:
        ops = model_ops(model, int(n), sp)
        t, d = ops["totals"], ops["dense_baseline"]
        att += t["macs"]["qk"] + t["macs"]["av"]
        att_d += d["macs"]["qk"] + d["macs"]["av"]
        tot += t["dsp_macs"]
        tot_d += d["dsp_macs"]
        sel += t["select_4b"]
    return {"att_x": att_d / att, "tot_x": tot_d / tot, "select_4b_rel": sel / att_d}


class _SurvivorBackend:
    """Golden backend that appends the survivor mask as one extra column (bench-only, to pool survivors)."""

    def __init__(self, project):
        self.qe, self.sp = project.quantized, project.sparsity

    def run(self, x, offsets):
        kept = []
        y = run_encoder(self.qe, x, offsets, self.sp, kept_out=kept)
        return np.concatenate([y.astype(np.int16), kept[0][:, None].astype(np.int16)], axis=1)

    def close(self):
        pass


def both_embeddings(view, ids) -> tuple[np.ndarray, np.ndarray]:
    """One golden run -> sentence embeddings pooled over every row (removed tokens carried: the encoder
    contract) and over the survivors only (TR-BERT's classification convention)."""
    rows = run_hidden(view, _SurvivorBackend(view), ids, max_tokens=2048)
    scale = np.asarray(view.quantized.output_scale)
    carried = np.stack([pool(view.host, dequantize_output(r[:, :-1], scale)) for r in rows])
    survivors = np.stack([pool(view.host, dequantize_output(r[r[:, -1] == 1, :-1], scale)) for r in rows])
    return carried, survivors


def _row(label: str, res: dict, macs: dict, secs: float) -> dict:
    return {"row": label, **{k: res[k] for k in ("accuracy", "agreement", "cosine_mean", "cosine_min")},
            **macs, "seconds": secs}


def evaluate_rows(projects: dict, ids, labels, ref, progress: str) -> list[dict]:
    rows = []
    model = projects["dense"].model
    lengths = [len(s) for s in ids]
    rows.append({"row": "fp32 (reference)", "accuracy": None, "agreement": 1.0, "cosine_mean": 1.0,
                 "cosine_min": 1.0, "att_x": 1.0, "tot_x": 1.0, "select_4b_rel": 0.0, "seconds": 0.0})
    for label, key, cfg in ROWS:
        sp = parse_sparsity(cfg)
        base = projects[key]
        view = dataclasses.replace(base, manifest={**base.manifest, "sparsity": sp})
        macs = mac_ratios(model, lengths, sp)
        t0 = time.perf_counter()
        if sp["tokens"]:
            carried, survivors = both_embeddings(view, ids)
        else:
            carried = embeddings_from_hidden(view, run_hidden(view, GoldenBackend(view), ids, max_tokens=2048))
        secs = time.perf_counter() - t0
        res = probe_eval(ref, carried, labels)
        rows[0]["accuracy"] = res["accuracy_fp32"]
        rows.append(_row(label, res, macs, secs))
        if sp["tokens"]:
            res2 = probe_eval(ref, survivors, labels)
            rows.append(_row(label + ", survivors pooled", res2, macs, secs))
        print(f"[{progress}] {label}: acc {res['accuracy']:.4f} agree {res['agreement']:.4f} "
              f"cos {res['cosine_mean']:.4f} ({secs:.0f} s)", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = ("| configuration | probe acc. | agreement w/ fp32 | cosine mean (min) | attention MACs | "
            "total MACs | 4-bit sel. products |\n|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        att = "1.00x" if r["att_x"] == 1 else f"{1 / r['att_x']:.3f} ({r['att_x']:.2f}x fewer)"
        tot = "1.00x" if r["tot_x"] == 1 else f"{1 / r['tot_x']:.3f} ({r['tot_x']:.2f}x fewer)"
        lines.append(f"| {r['row']} | {100 * r['accuracy']:.2f}% | {100 * r['agreement']:.2f}% | "
                     f"{r['cosine_mean']:.4f} ({r['cosine_min']:.4f}) | {att} | {tot} | "
                     f"{r['select_4b_rel']:.2f} |")
    return head + "\n".join(lines)


def weight_storage(project, bank: int, sparsity: float) -> dict:
    """Pack every Linear of the pruned integer model; check the round trip; count bytes (bias excluded)."""
    p = kept_per_bank(bank, sparsity)
    dense = packed = values = indices = zeros_extra = 0
    for layer in project.quantized.layers:
        for name in ("q", "k", "v", "o", "up", "down"):
            w = np.asarray(getattr(layer, name).w)
            vals, idx = pack_bank_balanced(w, bank, per_bank=p)
            assert np.array_equal(unpack_bank_balanced(vals, idx, w.shape[1], bank), w), "round trip failed"
            dense += w.size
            values += vals.nbytes
            indices += idx.nbytes
            packed += vals.nbytes + idx.nbytes
            zeros_extra += int((vals == 0).sum())
    return {"dense": dense, "values": values, "indices": indices, "packed": packed, "per_bank": p,
            "rounded_to_zero": zeros_extra, "kept": values}


def at_256(model: dict) -> str:
    lines = ["| configuration (one 256-token text) | attention MACs | total DSP MACs | 4-bit products |",
             "|---|---|---|---|"]
    for label, _, cfg in ROWS:
        ops = model_ops(model, 256, parse_sparsity(cfg))
        t, d = ops["totals"], ops["dense_baseline"]
        a = (d["macs"]["qk"] + d["macs"]["av"]) / (t["macs"]["qk"] + t["macs"]["av"])
        lines.append(f"| {label} | {a:.2f}x fewer | {d['dsp_macs'] / t['dsp_macs']:.2f}x fewer | "
                     f"{t['select_4b'] / 1e6:.1f} M |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movie", type=int, default=400, help="VADER movie snippets (seeded random sample)")
    ap.add_argument("--long", type=int, default=64, help="Reuters articles (half grain, half not)")
    ap.add_argument("--max-len", type=int, default=256, help="truncate long texts at this many tokens")
    ap.add_argument("--min-long", type=int, default=200, help="only articles with at least this many tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--board", default="u280")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="padless-sparsity-"))
    projects = {}
    for key, cfg in PROJECTS.items():
        compile_project("minilm-l6", board=args.board, out=tmp / key, config=cfg)
        projects[key] = load_project(tmp / key)
    storage = weight_storage(projects["magnitude"], WEIGHTS["bank"], WEIGHTS["sparsity"])

    sets = {}
    texts, movie_labels = pick_movie(args.movie, args.seed)
    sets["movie"] = (projects["dense"].tokenize(texts, truncate=True), movie_labels)
    sets["long"] = pick_long(projects["dense"], args.long, args.min_long, args.max_len, args.seed)
    results = {}
    for name, (ids, labels) in sets.items():
        t0 = time.perf_counter()
        ref = fp32_embeddings(projects["dense"], ids)
        print(f"[{name}] fp32 reference: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        results[name] = evaluate_rows(projects, ids, labels, ref, name)
    wall = time.perf_counter() - t_start

    def lens(ids):
        a = np.asarray([len(s) for s in ids])
        return f"{len(a)} texts, tokens mean {a.mean():.1f}, min {a.min()}, max {a.max()}"

    m_ids, m_lab = sets["movie"]
    l_ids, l_lab = sets["long"]
    body = f"""
Model minilm-l6 (6 layers, hidden 384, 12 heads), golden integer model (bit-exact specification) against
the fp32 reference. Calibration: the recipe's ({calibration_label()}); the 50%-weights projects are pruned one-shot, without any
fine-tuning (bank-balanced, `padless.sparse.weights.prune_spec`; ranked by `|w|` ("magnitude") or by
`|w| * ||x||` with input-channel norms from 64 VADER tweets ("activation-aware", Wanda)) before calibration
and quantization.
Probe accuracy: logistic-regression probes trained on fp32 embeddings (stratified 5-fold CV), applied to
each configuration's embeddings; agreement = same decision as fp32. MAC columns: exact counts from
`padless.opcount.model_ops` at each text's own length, summed over the texts, as a fraction of dense int8
(and the reduction factor). "4-bit sel. products": 4b x 4b Q.K estimate products of the top-k stage (LUT
look-ups, not DSP MACs) relative to dense attention MACs. Token reduction: SpAtten cascade pruning by
accumulated uint8 attention probability, keep 0.7 before layers 2 and 4 ([CLS] kept). Rows "token
reduction": the golden output, where a removed token carries its hidden state from the layer where it was
removed into the mean pooling (the encoder contract); rows "survivors pooled": the same run, mean pooling
over the tokens that went through every layer only (TR-BERT's classification convention; needs the
survivor mask on the host, see docs/sparsity.md). Wall time of the whole run: {wall / 60:.1f} min on this machine.

### VADER movie snippets ({lens(m_ids)}; {int(m_lab.sum())} positive; seed {args.seed})

{table(results["movie"])}

### Long texts: Reuters grain, truncated at {args.max_len} tokens ({lens(l_ids)}; {int(l_lab.sum())} grain; only articles of >= {args.min_long} tokens; seed {args.seed})

{table(results["long"])}

### Operation counts for one {args.max_len}-token text (opcount.model_ops)

{at_256(projects["dense"].model)}

### Packed bank-balanced weights (50%, bank 16), all 36 Linears of minilm-l6

Dense int8: {storage['dense']:,} bytes. Packed: {storage['values']:,} bytes of values + {storage['indices']:,}
bytes of 4-bit in-bank indices = {storage['packed']:,} bytes, {storage['dense'] / storage['packed']:.3f}x
smaller than dense int8 ({storage['packed'] / storage['dense']:.3f} of it; int32 biases, identical in both, not
counted). {storage['per_bank']} slots per bank of 16; {storage['rounded_to_zero']:,} kept slots hold 0 because
int8 quantization rounded a small kept weight to zero. Every matrix passed the pack/unpack round trip.
"""
    print(body)
    if not args.no_write:
        write_section("sparsity", "Sparsity: top-k attention, bank-balanced weights, token reduction (issue 3)",
                      body)


if __name__ == "__main__":
    main()
