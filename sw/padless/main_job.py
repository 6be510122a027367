"""The main job (``make run``): compile, run real sentences through the board path, report.

``python -m padless.main_job [--model minilm-l6] [--board u280] [--out DIR] [--limit 1000]``

1. compiles the model with the default sparse config (4-bit Q/K top-k attention, k = max(32, 0.25 n)) for the
   board into a project folder (integer model, schedule, HLS project, bitstream flow);
2. runs real VADER movie-review snippets through the pynq backend on the simulated device (the pynq code
   path a board runs: Overlay-free binding, pynq.allocate, ap_ctrl_hs registers; the kernel executed by
   the csim library of the generated HLS C++), or on a real board when pynq finds one;
3. prints decision agreement and cosine against fp32 (linear probes, :func:`padless.data.metrics.probe_eval`),
   the board throughput simulated by the timed C-simulation of the generated HLS kernel on the same length
   mix (labelled simulated; efficiency against the INT8 DSP peak, the padded baselines on the same kernel)
   with the cycle model's figure beside it (labelled modeled), measured torch fp32 throughput on this
   machine (labelled measured: three rounds interleaved with the run, the median, the load average; the
   board / torch ratio is omitted when the machine was busy), the project folder and the command that builds its bitstream; writes
   ``DIR/report/run.json`` and the HTML report.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

# Length-adaptive top-k: k = max(32, ceil(0.25 n)). Sentences up to 32 tokens keep every key (their n^2
# attention is cheap and dense keeps full fidelity); a 256-token document keeps 64 keys per query (4x fewer
# attention MACs), a 512-token one 128. Measured on 1,000 VADER movie snippets: min_k 8 gave 94.0%
# agreement / 0.977 cosine, min_k 16 96.4% / 0.9915, dense 98.2% / 0.9966 (docs/sparsity.md).
DEFAULT_SPARSITY = {"attention": {"density": 0.25, "min_k": 32}}


def torch_fp32_throughput(project, texts, batch_size: int = 32, limit: int | None = 256) -> dict | None:
    """Measured torch fp32 sentences/s of the project's original model on this machine
    (:func:`padless.baseline.torch_fp32_throughput`); None for random-weight recipes."""
    from .baseline import model_path_of, torch_fp32_throughput as measure
    path = model_path_of(project)
    if not path:
        return None
    return measure(path, list(texts)[:limit] if limit else list(texts), batch_size)


#: Texts per torch fp32 round and rounds (interleaved with the run: after the compile, the backend run
#: and the simulation).
TORCH_ROUND_TEXTS = 128


def torch_meter(project, texts, batch_size: int = 32):
    """A :class:`padless.baseline.TorchFp32Meter` on the first :data:`TORCH_ROUND_TEXTS` texts, or None
    for random-weight recipes."""
    from .baseline import TorchFp32Meter, model_path_of
    path = model_path_of(project)
    if not path:
        return None
    return TorchFp32Meter(path, list(texts)[:TORCH_ROUND_TEXTS], batch_size)


def torch_ratio_line(sim_seq_s: float, fp32: dict | None) -> str:
    """The ``make run`` line for measured torch fp32 and the simulated-board / torch ratio: the ratio
    only when the machine was quiet (:func:`padless.baseline.busy_reason`), labelled with the load."""
    if not fp32:
        return "  measured torch fp32: not available for this model (no saved weights)"
    rounds = fp32.get("rounds") or []
    load = fp32.get("load_average")
    where = (f"median of {len(rounds)} rounds interleaved with the run, " if len(rounds) > 1 else "") + \
        (f"1-min load average <= {load:.1f} on {fp32.get('cpus')} CPUs" if load is not None else "load unknown")
    head = (f"  measured torch fp32 on this machine: {fp32['sentences_per_s']:.0f} sentences/s ({where}; batch "
            f"{fp32['batch_size']}, {fp32['threads']} threads)")
    if fp32.get("busy"):
        return f"{head}; simulated board / torch ratio omitted: the machine was busy ({fp32['busy']})"
    return f"{head}; simulated board / torch: {sim_seq_s / fp32['sentences_per_s']:,.0f}x"


def bitstream_command(out: Path) -> str:
    return f"make -C {out} bitstream   (or: padless bitstream {out})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m padless.main_job", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--board", default=None, help="default: the build default (u280)")
    ap.add_argument("--out", default=None, help="project folder (default out/MODEL-BOARD)")
    ap.add_argument("--dataset", default="vader-movie")
    ap.add_argument("--limit", type=int, default=1000, help="sentences to run (default 1000)")
    ap.add_argument("--backend", default="pynq", help="pynq (board, else the simulated device), csim or golden")
    ap.add_argument("--no-compile", action="store_true", help="reuse an existing project folder")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    from .environment import quiet_matplotlib_config
    quiet_matplotlib_config()

    from .build import DEFAULT_BOARD, compile_project
    from .commands.eval import evaluate
    from .data.datasets import load_dataset
    from .errors import InputError, PadlessError
    from .project import load_project, update_manifest

    board = args.board or DEFAULT_BOARD
    out = Path(args.out or f"out/{args.model}-{board}")
    show = not args.quiet
    t_start = time.perf_counter()
    try:
        if args.limit is not None and args.limit < 2:
            raise InputError("--limit must be at least 2 (the probes need both classes)")
        if not args.no_compile:
            print(f"[1/4] compiling {args.model} for {board} (sparsity {DEFAULT_SPARSITY}, engine planned for "
                  f"{args.dataset} lengths) -> {out}", flush=True)
            cfg = dict(DEFAULT_SPARSITY, schedule={"dataset": args.dataset, "limit": max(args.limit or 1000, 2)})
            compile_project(args.model, board=board, out=out, config=cfg, progress=show)
        project = load_project(out)
        _bitstream_flow(project, board)
        ds = load_dataset(args.dataset)
        meter = None
        if ds.labels is None:
            raise InputError(f"{ds.name} has no labels")
        # The dataset files are ordered (e.g. by valence): take a seeded random sample, not the head.
        import numpy as np
        pick = np.random.default_rng(0).permutation(len(ds.texts))[: args.limit]
        ds.texts, ds.labels = [ds.texts[i] for i in pick], [ds.labels[i] for i in pick]
        backend, device_note = args.backend, ""
        if backend == "pynq":
            from .runtime import simdevice
            dev = simdevice.find_device()
            if dev is None:
                dev = simdevice.enable()
            device_note = f"pynq device {dev.tag}" + (" (simulated: kernel executed by csim)" if isinstance(dev, simdevice.SimDevice) else "")
        hls_max = int((project.manifest.get("hls") or {}).get("max_tokens") or 2048)
        meter = torch_meter(project, ds.texts)
        if meter is not None:
            meter.round()  # torch fp32 round 1 of 3, interleaved with the run (padless.baseline.TorchFp32Meter)
        print(f"[2/4] running {len(ds.texts)} {ds.name} sentences: fp32 reference and the {backend} backend "
              f"{device_note}", flush=True)
        res = evaluate(project, ds.texts, ds.labels, backend, True, hls_max, show=show)
        if meter is not None:
            meter.round()
        print("[3/4] simulated board throughput (timed C-simulation of the generated HLS) on the same length mix",
              flush=True)
        lengths = res["lengths"]
        from .runtime.profile import profile
        sim = profile(project, lengths=lengths)
        print("[4/4] measuring torch fp32 on this machine (last of 3 rounds interleaved with the run)", flush=True)
        fp32 = None
        if meter is not None:
            meter.round()
            fp32 = meter.result()
    except PadlessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    model = sim["model"]   # the cycle model on the same lengths, computed by profile beside the simulation
    keys = ("throughput_seq_s", "throughput_tokens_s", "efficiency_vs_peak", "cycles")
    report = {
        "model": project.model["name"], "board": project.manifest["board"], "project": str(out.resolve()),
        "dataset": ds.name, "sentences": res["n"], "tokens_mean": res["tokens_mean"],
        "sparsity": project.sparsity, "backend": backend, "device": device_note,
        "fidelity": {k: res[k] for k in ("accuracy_fp32", "accuracy", "agreement", "cosine_mean", "cosine_min") if k in res},
        "host_seconds": {"fp32_reference": res["seconds_fp32_reference"], "backend": res["seconds_backend"]},
        "simulated": {"label": sim["label"], "clock_MHz": sim["clock_MHz"], "clock_source": sim["clock_source"],
                      "upper_bound": sim["upper_bound"],
                      "padless": {k: sim[k] for k in keys},
                      **{b: sim[b] for b in ("padded_max", "padded_batch", "padded_fixed")},
                      "speedup_vs": sim["speedup_vs"], "stage_busy": sim["stage_busy"], "model_error": sim["model_error"]},
        "modeled": {"clock_MHz": sim["clock_MHz"],
                    "padless": {k: model[k] for k in keys},
                    "padded_max": model["baselines"]["padded_max"],
                    "speedup_vs": model["speedup_vs"]},
        "measured_torch_fp32": fp32,
        "bitstream_command": bitstream_command(out),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "seconds_total": round(time.perf_counter() - t_start, 1),
    }
    rdir = Path(out) / "report"
    from . import fsutil
    fsutil.write_text(rdir / "run.json", json.dumps(report, indent=2, default=float), Path(out))
    f = report["fidelity"]
    m = report["modeled"]
    sm = report["simulated"]
    print(f"\npadless main job: {report['model']} on {report['board']}, {res['n']} real {ds.name} sentences "
          f"(mean {res['tokens_mean']:.1f} tokens), sparsity {project.sparsity.get('attention') or 'dense'}")
    print(f"  backend {backend} {device_note}")
    print(f"  fidelity vs fp32: decision agreement {100 * f['agreement']:.2f}%, cosine mean {f['cosine_mean']:.4f} "
          f"(min {f['cosine_min']:.4f}); probe accuracy fp32 {100 * f['accuracy_fp32']:.2f}% / int8 {100 * f['accuracy']:.2f}%")
    print(f"  simulated on {report['board']}, {sm['label']} (cycle-annotated csim of the generated HLS; clock: "
          f"{sm['clock_source']}): padless "
          f"{sm['padless']['throughput_seq_s']:,.0f} seq/s, {sm['padless']['efficiency_vs_peak']:.1%} of the INT8 DSP peak; "
          f"padded-to-max {sm['padded_max']['throughput_seq_s']:,.0f} seq/s; speedup "
          f"{sm['speedup_vs']['padded_max']:.2f}x (padded to batch max {sm['speedup_vs']['padded_batch']:.2f}x, "
          f"to {sim.get('fixed_length', 128)} tokens {sm['speedup_vs']['padded_fixed']:.2f}x)")
    print(f"  upper bound: {sm['upper_bound']['throughput_seq_s']:,.0f} seq/s at the platform's "
          f"{sm['upper_bound']['clock_mhz']:g} MHz with ideal memory")
    print(f"  modeled (cycle model): padless {m['padless']['throughput_seq_s']:,.0f} seq/s, "
          f"{sm['model_error']:+.1%} against the simulation")
    print(torch_ratio_line(sm['padless']['throughput_seq_s'], fp32))
    print(f"  project folder: {report['project']}")
    print(f"  build the bitstream (needs Vitis / Vivado): {report['bitstream_command']}")
    print(f"  figures written to {rdir / 'run.json'} ({report['seconds_total']:.0f} s)")
    from .report import build_report
    html = build_report(out, lengths, source=f"dataset {ds.name}, {len(lengths)} sentences", simulated=sim)
    print(f"  HTML report (simulated, modeled and measured figures, Gantt charts): {html}")
    return 0


def _bitstream_flow(project, board) -> None:
    """Generate the project's bitstream flow when the project has an HLS kernel and lacks it."""
    if (project.path / "hls").is_dir() and not (project.path / "bitstream.mk").is_file():
        from .codegen.bitstream import generate
        generate(project, board)


if __name__ == "__main__":
    sys.exit(main())
