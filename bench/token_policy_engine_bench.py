"""The learned TR-BERT token policy in the kernel against the cascade and dense (issue 26, item 1): timed
C-simulation of each generated kernel side by side on the same real sentences, the cycle model on golden's
per-stage counts, and fidelity against fp32 on held-out text.

    python bench/token_policy_engine_bench.py --dense P --cascade P --policy P [--movie 1000] \\
        [--fidelity-limit 1000] [--jobs 2] [--no-write]

P: minilm-l6 projects for the same board, planned for the same mix: ``--dense`` (``padless compile
minilm-l6 --board u280 --config C`` with ``schedule: {dataset: vader-movie, limit: 1000}``), ``--cascade``
(``configs/minilm-l6-tr07.yaml``: keep 0.7 before layers 2 and 4) and ``--policy`` (a copy of the cascade
project after ``padless train-policy P --layers 2 4 --keep 0.7``, which regenerates its kernel with the
policy). Timing: :func:`padless.runtime.profile.profile` on the first ``--movie`` VADER movie snippets
(``padless profile P --dataset vader-movie --limit N``), without the padded baselines. Fidelity: ``padless
eval``'s golden evaluation on ``--fidelity-limit`` stratified vader-movie-test snippets (the kernel's bits:
csim = pynq-sim = golden). Writes the section ``token-policy-engine`` of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(path: str, limit: int) -> dict:
    """One timed csim run of a project on the first ``limit`` VADER movie snippets (worker process)."""
    from padless.data.datasets import load_dataset
    from padless.project import load_project
    from padless.runtime.profile import profile
    p = load_project(path)
    mseq = int(p.manifest["hls"]["max_seq"])
    seqs = p.tokenize(load_dataset("vader-movie", limit=limit).texts, truncate=True,
                      max_length=min(mseq, p.max_length))
    t = time.time()
    r = profile(p, sequences=seqs, baselines=False)
    out = {"throughput_seq_s": r["throughput_seq_s"], "cycles": r["cycles"], "model_error": r["model_error"],
           "clock_MHz": r["clock_MHz"], "tokens": r["tokens"], "wall_s": time.time() - t,
           "expected_keep": (r["model"].get("expected_keep") or {}).get("error"),
           "busy": ", ".join(f"{k} {v:.0%}" for k, v in sorted(r["stage_busy"].items(), key=lambda kv: -kv[1])[:3])}
    # rows each stage runs: golden's counts (the profile's model uses them for the policy; the cascade's
    # depend on the lengths alone)
    from padless.schedule.engine import EngineConfig
    cfg = EngineConfig.from_dict(p.manifest["hls"]["engine"])
    firsts = [0] + sorted((cfg.tokens or {}).get("layers") or [])   # the first layer of each stage
    out["stage_rows"] = r["model"].get("stage_rows") or [
        int(cfg.layer_lengths([len(s) for s in seqs], first).sum()) for first in firsts]
    return out


def fidelity(path: str, limit: int) -> dict:
    """``padless eval PATH --dataset vader-movie-test --limit N`` (golden backend): agreement and cosine."""
    from padless.commands.eval import evaluate
    from padless.data.datasets import load_dataset
    from padless.project import load_project
    ds = load_dataset("vader-movie-test").sample(limit, seed=0)
    r = evaluate(load_project(path), ds.texts, ds.labels, "golden", show=False)
    return {"agreement": r["agreement"], "cosine_mean": r["cosine_mean"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", required=True)
    ap.add_argument("--cascade", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--movie", type=int, default=1000)
    ap.add_argument("--fidelity-limit", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    names = {"dense": a.dense, "cascade": a.cascade, "policy": a.policy}
    t0 = time.time()
    # results of an earlier run of the same projects and sizes are reused (the simulated cycles and the
    # golden fidelity do not depend on the machine)
    cache = Path(a.policy).parent / "token_policy_engine.json"
    key = json.dumps([names, a.movie, a.fidelity_limit])
    old = json.loads(cache.read_text()) if cache.is_file() else {}
    runs, fid = (old.get("runs", {}), old.get("fidelity", {})) if old.get("key") == key else ({}, {})
    todo = [n for n in names if n not in runs]
    with cf.ProcessPoolExecutor(max_workers=a.jobs) as ex:
        futs = {ex.submit(timed, names[n], a.movie): n for n in todo}
        for f in cf.as_completed(futs):
            runs[futs[f]] = f.result()
            log(f"{futs[f]}: {runs[futs[f]]['throughput_seq_s']:,.0f} seq/s simulated, model error "
                f"{runs[futs[f]]['model_error']:+.2%}, {runs[futs[f]]['wall_s']:.0f} s")
    for n, path in names.items():
        if n not in fid:
            fid[n] = fidelity(path, a.fidelity_limit)
            log(f"{n}: agreement {fid[n]['agreement']:.1%}, cosine {fid[n]['cosine_mean']:.4f}")
    cache.write_text(json.dumps({"key": key, "runs": runs, "fidelity": fid}, indent=1))
    from padless.project import load_project
    from padless.schedule.engine import EngineConfig, resources
    for n, path in names.items():   # the DSPs of the kernel this padless generates for the project's plan
        p = load_project(path)
        runs[n]["dsp"] = resources(EngineConfig.from_dict(p.manifest["hls"]["engine"]), p.board)["dsp"]["used"]
    rec = (load_project(a.policy).manifest.get("token_policy") or {})
    cal = ((rec.get("calibration") or {}).get("points") or {})
    d = runs["dense"]
    rows = ["| token reduction | rows per layer stage (of the input's) | simulated seq/s | vs dense | model error "
            "(golden counts; expected fraction) | DSP | busiest | agreement / cosine vs fp32 |",
            "|---|---|---|---|---|---|---|---|"]
    labels = {"dense": "none (dense)", "cascade": "cascade keep 0.7 @ layers 2, 4",
              "policy": "TR-BERT policy @ layers 2, 4 (thresholds calibrated for 0.7)"}
    for n in names:
        r = runs[n]
        sr = r["stage_rows"]
        share = " / ".join(f"{v / sr[0]:.3f}" for v in sr)
        exp = f"; {r['expected_keep']:+.2%}" if r.get("expected_keep") is not None else ""
        rows.append(f"| {labels[n]} | {share} | {r['throughput_seq_s']:,.0f} | "
                    f"**{r['throughput_seq_s'] / d['throughput_seq_s']:.2f}x** | {r['model_error']:+.2%}{exp} | "
                    f"{r['dsp']:,} | {r['busy']} | {fid[n]['agreement']:.1%} / {fid[n]['cosine_mean']:.4f} |")
    cmd = (f"python bench/token_policy_engine_bench.py --dense {a.dense} --cascade {a.cascade} --policy {a.policy} "
           f"--movie {a.movie} --fidelity-limit {a.fidelity_limit} --jobs {a.jobs}")
    wall = sum(r["wall_s"] for r in runs.values())
    body = (f"Command: `{cmd}` (timed csim {wall / 60:.0f} min of wall time on {platform.machine()}, {a.jobs} "
            f"runs at once; the slowest is the dense kernel's). minilm-l6 on u280 at {d['clock_MHz']:g} MHz, the first {a.movie:,} "
            "VADER movie snippets; **simulated** = the timed C-simulation of each generated kernel (II and depths "
            "declared, not synthesized; m_axi through the board's memory model); the three projects share the "
            "engine the DSE planned for this mix (the policy adds `p_policy`, docs/hls.md; DSP: the resource estimate of "
            "the kernel generated for that plan). Rows per stage: "
            "golden's surviving rows before the first selection point / after it / after the second, as a share "
            "of the input rows (the kernel runs exactly these). The policy was trained by `padless train-policy "
            "P --layers 2 4 --keep 0.7` (100 imitation + 100 REINFORCE steps) with thresholds calibrated on VADER "
            "tweets (kept on calibration: " + ", ".join(f"layer {k} {v.get('kept')}" for k, v in cal.items())
            + "). Fidelity: `padless eval` (golden) on " f"{a.fidelity_limit} stratified vader-movie-test "
            "snippets (seed 0).\n\n" + "\n".join(rows))
    print(body)
    if not a.no_write:
        write_section("token-policy-engine", "The learned token policy in the kernel (issue 26, item 1)", body)


if __name__ == "__main__":
    main()
