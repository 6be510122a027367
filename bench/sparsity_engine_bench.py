"""What the hardware cashes in (issue 26, item 3): every sparsity configuration of minilm-l6 compiled for one
board, each engine planned by the DSE for the same length mix at the same caps, and timed side by side on
the same real sentences; fidelity against fp32 beside each row.

    python bench/sparsity_engine_bench.py --board u280 --board zcu104 --workdir /tmp/spe \\
        [--movie 1000] [--reuters 300] [--jobs 2] [--fidelity FILE.json] [--no-write]

For each board, configuration (:data:`CONFIGS`) and mix it runs ``padless compile minilm-l6 --board B
--config C`` with ``quant: {rounding: nearest}`` (the kernel, its plan and its cycles do not depend on the
weight values, so the quick quantization gives the plan and the timing the shipped configs get) and
``schedule: {dataset: D, limit: N}`` (the DSE plans the engine for the mix it runs: vader-movie 1000 or
reuters 300), unless the project folder is already there.
Then the timed C-simulation of each generated kernel (:func:`padless.runtime.profile.profile`, the same
run as ``padless profile``, without the padded baselines) on the first ``--movie`` VADER movie snippets and
the first ``--reuters`` Reuters articles, truncated at the kernel's longest sequence; ``--jobs`` runs go at
once (each is one single-threaded g++ binary; the simulated cycles do not depend on the machine's load).

Fidelity (``--fidelity``): a JSON ``{config name: {"agreement", "cosine_mean", "cosine_min", "source"}}``
measured by ``padless eval PROJECT --dataset vader-movie-test --limit 1000 --json`` on projects compiled with
the real quantization (the shipped configs); the table shows it beside the speed. Writes the section
``sparsity-engine`` of docs/benchmarks.md (``--no-write``: print only).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402

MODEL = "minilm-l6"
W50 = {"sparsity": 0.5, "bank": 16, "pattern": "pe-pair"}
W75 = {"sparsity": 0.75, "bank": 16, "pattern": "pe-pair"}
TR07 = {"layers": [2, 4], "keep": 0.7}
D25 = {"density": 0.25}
#: name -> (label, sparsity config); the shipped files: configs/minilm-l6-w50.yaml, -w75.yaml, -tr07.yaml
CONFIGS = {
    "dense": ("dense int8", {}),
    "w50": ("50% weights, pe-pair", {"weights": W50}),
    "w75": ("75% weights, pe-pair", {"weights": W75}),
    "tr07": ("tokens keep 0.7 @ layers 2, 4", {"tokens": TR07}),
    "d25": ("top-k density 0.25", {"attention": D25}),
    "w50+tr07": ("50% pe-pair + tokens 0.7", {"weights": W50, "tokens": TR07}),
    "d25+tr07": ("density 0.25 + tokens 0.7", {"attention": D25, "tokens": TR07}),
    "d25+tr07+w50": ("density 0.25 + tokens 0.7 + 50% pe-pair", {"attention": D25, "tokens": TR07, "weights": W50}),
}
MIXES = (("vader-movie", "movie"), ("reuters", "reuters"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def compiled(workdir: Path, board: str, name: str, dataset: str, limit: int) -> Path:
    """The project of ``name`` on ``board`` planned by the DSE for the first ``limit`` texts of ``dataset``
    (compiled once; reused when its manifest is there)."""
    from padless.build import compile_project
    out = workdir / board / (name if dataset == "vader-movie" else f"{name}@{dataset}")
    if (out / "manifest.json").is_file():
        return out
    cfg = dict(CONFIGS[name][1], quant={"rounding": "nearest"}, schedule={"dataset": dataset, "limit": limit})
    t = time.time()
    compile_project(MODEL, board=board, out=out, config=cfg)
    log(f"compiled {board}/{out.name} in {time.time() - t:.0f} s")
    return out


def sequences(project, dataset: str, limit: int) -> list[list[int]]:
    """The first ``limit`` texts of ``dataset`` tokenized, cut at the kernel's longest sequence."""
    from padless.data.datasets import load_dataset
    texts = load_dataset(dataset, limit=limit).texts
    mseq = int(project.manifest["hls"]["max_seq"])
    return project.tokenize(texts, truncate=True, max_length=min(mseq, project.max_length))


def timed(path: str, dataset: str, limit: int) -> dict:
    """One timed csim run (worker process): throughput, cycles, model error, busiest processes, plan."""
    from padless.project import load_project
    from padless.runtime.profile import profile
    p = load_project(path)
    seqs = sequences(p, dataset, limit)
    t = time.time()
    r = profile(p, sequences=seqs, baselines=False)
    eng = p.manifest["hls"]["engine"]
    res = p.manifest.get("resources") or {}
    busy = sorted(r["stage_busy"].items(), key=lambda kv: -kv[1])[:3]
    return {"project": path, "throughput_seq_s": r["throughput_seq_s"], "cycles": r["cycles"], "model_error": r["model_error"],
            "clock_MHz": r["clock_MHz"], "tokens": r["tokens"], "sequences": r["sequences"],
            "busy": ", ".join(f"{k} {v:.0%}" for k, v in busy), "wall_s": time.time() - t,
            "folding": " / ".join(f"{eng['folding'][m][0]}x{eng['folding'][m][1]}" for m in ("qkv", "out", "up", "down")),
            "att_pe": eng["att_pe"], "resident": eng["resident"], "max_seq": eng["max_seq"],
            "dsp": (res.get("dsp") or {}).get("used"), "lut": (res.get("lut") or {}).get("used")}


def table(board: str, runs: dict, fidelity: dict) -> str:
    rows = ["| configuration | movie: folding qkv / out / up / down (PE x SIMD), attention lanes | DSP | weights "
            "| movie seq/s | vs dense | Reuters: folding, attention lanes | Reuters seq/s | vs dense "
            "| model error (movie, Reuters) | busiest (movie) | agreement / cosine vs fp32 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (label, _) in CONFIGS.items():
        m, r = runs.get((board, name, "movie")), runs.get((board, name, "reuters"))
        dm, dr = runs.get((board, "dense", "movie")), runs.get((board, "dense", "reuters"))
        if m is None:
            continue
        f, ft = fidelity.get(name), fidelity.get(name + "/ft")
        fid = f"{f['agreement']:.1%} / {f['cosine_mean']:.4f}" if f else "--"
        if ft:   # the same configuration on the fine-tuned student (padless finetune, then compile)
            fid += f"; fine-tuned {ft['agreement']:.1%} / {ft['cosine_mean']:.4f}"
        rs = f"{r['throughput_seq_s']:,.0f}" if r else "--"
        rx = f"**{r['throughput_seq_s'] / dr['throughput_seq_s']:.2f}x**" if r and dr else "--"
        mx = f"**{m['throughput_seq_s'] / dm['throughput_seq_s']:.2f}x**" if dm else "--"
        err = f"{m['model_error']:+.2%}, " + (f"{r['model_error']:+.2%}" if r else "--")
        rf = f"{r['folding']}, {r['att_pe']}" if r else "--"
        rows.append(f"| {label} | {m['folding']}, {m['att_pe']} | {m['dsp']:,} | "
                    f"{'resident' if m['resident'] else 'streamed'} | {m['throughput_seq_s']:,.0f} | {mx} | {rf} | {rs} "
                    f"| {rx} | {err} | {m['busy']} | {fid} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", action="append", required=True)
    ap.add_argument("--workdir", default="/tmp/spe")
    ap.add_argument("--movie", type=int, default=1000)
    ap.add_argument("--reuters", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated config names (default: all)")
    ap.add_argument("--fidelity", default=None, help="JSON {config: {agreement, cosine_mean, cosine_min, source}}")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    names = [n for n in (a.only.split(",") if a.only else CONFIGS) if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    if "dense" not in names:
        names.insert(0, "dense")
    wd = Path(a.workdir)
    fidelity = json.loads(Path(a.fidelity).read_text()) if a.fidelity else {}
    limits = {"movie": a.movie, "reuters": a.reuters}
    # every engine planned for the mix it runs (a movie-planned engine spends its DSPs on the MVUs and can
    # starve the attention that long Reuters articles need)
    projects = {(b, n, tag): compiled(wd, b, n, ds, limits[tag]) for b in a.board for n in names
                for ds, tag in MIXES if limits[tag] > 0}
    cache = wd / "runs.json"
    done = {tuple(k.split("|")): v for k, v in (json.loads(cache.read_text()) if cache.is_file() else {}).items()}
    done = {k: v for k, v in done.items() if v.get("project") == str(projects.get(k))}  # runs of these projects
    jobs = [(b, n, tag, ds, limits[tag]) for (b, n, tag) in projects for ds, t in MIXES if t == tag
            and (b, n, tag) not in done]
    log(f"{len(jobs)} timed csim runs to do ({len(done)} cached in {cache})")
    with cf.ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = {ex.submit(timed, str(projects[(b, n, tag)]), ds, lim): (b, n, tag) for b, n, tag, ds, lim in jobs}
        for fut in cf.as_completed(futs):
            key = futs[fut]
            done[key] = fut.result()
            cache.write_text(json.dumps({"|".join(k): v for k, v in done.items()}, indent=1))
            log(f"{'/'.join(key)}: {done[key]['throughput_seq_s']:,.0f} seq/s simulated "
                f"({done[key]['wall_s']:.0f} s wall)")
    parts = []
    for b in a.board:
        clk = next((v["clock_MHz"] for k, v in done.items() if k[0] == b), None)
        parts.append(f"### {b} ({clk:g} MHz, the board's default clock)\n\n{table(b, done, fidelity)}")
    srcs = sorted({f.get("source", "") for k, f in fidelity.items() if f.get("source") and "/ft" not in k})
    ft_src = sorted({f.get("source", "") for k, f in fidelity.items() if f.get("source") and "/ft" in k})
    body = (f"minilm-l6; movie = the first {a.movie:,} VADER movie snippets, Reuters = the first {a.reuters} "
            "Reuters articles (cut at the kernel's longest sequence). Every project: `padless compile minilm-l6 "
            "--board B --config C` with `quant: {rounding: nearest}` and `schedule: {dataset: D, limit: N}`: the "
            f"DSE plans each engine for the mix it runs (vader-movie {a.movie:,} or reuters {a.reuters}; 80% of "
            "each SLR's DSPs and LUTs, 90% of its memories), so a configuration has one engine per mix. **Simulated** = the timed C-simulation of each generated kernel (II and depths declared, "
            "not synthesized; m_axi through the board's memory model) at the board's default clock; vs dense = "
            "the same board's dense row in this run; model error = the Python cycle model / simulated - 1. "
            f"Timed csim runs: {len(done)}, {sum(v['wall_s'] for v in done.values()) / 60:.0f} min of wall time "
            f"in all ({a.jobs} at once on this machine).\n\n" + "\n\n".join(parts) +
            ("\n\nFidelity (the same for every board and mix: the integer model does not depend on the plan): "
             + "; ".join(srcs) + ". Weights from the shipped configs (dense: the recipe's defaults; "
             "`configs/minilm-l6-w50.yaml`, `-w75.yaml`: SparseGPT pe-pair + GPTQ), top-k and token reduction "
             "set on those projects (`python bench/sparsity_fidelity_bench.py --dense D --w50 W50 --w75 W75 "
             "--out F.json`; the quantized model does not depend on attention or tokens)."
             + (" Fine-tuned (the second figure of a weights row): " + "; ".join(ft_src) + ". The student: `padless "
                "finetune minilm-l6 --config F --out S` with `weights: {sparsity: 0.5 or 0.75, bank: 16, pattern: "
                "pe-pair, permute: true}` and `train: {steps: 400, datasets: [vader-movie-train, vader-tweets, "
                "reuters]}` (sparse distillation against the fp32 teacher, docs/finetune.md; 839 s for 50%, 582 s for 75% on this "
                "machine), compiled with `padless compile S --board u280` (its trained sparsity, the recipe's "
                "quantization), the top-k / tokens of the row set on it as above (`--student-w50 P --student-w75 P`)."
                if ft_src else "") if srcs else
             "\n\nFidelity: not given to this run (`--fidelity`)."))
    print(body)
    if not a.no_write:
        write_section("sparsity-engine", "What the kernel cashes in: every sparsity configuration side by side "
                      "(issue 26, item 3)", body)


if __name__ == "__main__":
    main()
