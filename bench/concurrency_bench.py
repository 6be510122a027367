"""What the per-library csim lock costs: kernel calls with and without the lock, and encode throughput from
1 thread and from 4 threads x 2 Accelerators, side by side in one run. Writes the `concurrency` section of
docs/benchmarks.md.

Usage: python bench/concurrency_bench.py [--model tiny|minilm-l6] [--limit 200] [--repeats 5]

The kernel's state is file-scope statics (HLS style), so calls into one loaded csim library are serialised
by one lock per library (padless.csim.library_lock). Measured here:
1. per call: the same packed batch through ``CsimLibrary.call`` (lock taken) and through the raw ctypes
   function (no lock), interleaved, single thread; the difference is the lock's cost;
2. end to end: ``Accelerator.run`` on real sentences (VADER movie snippets, tokenized once), 1 thread on
   1 object vs 4 threads on 2 objects, csim and the pynq backend on the simulated device; every result
   is checked bit for bit against the single-threaded golden model.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section  # noqa: E402


def per_call(lib, x, y, off, w, repeats: int) -> tuple[float, float]:
    """Median seconds per call with the lock (CsimLibrary.call) and without (the raw ctypes function)."""
    locked, raw = [], []
    args = (x.ctypes.data, y.ctypes.data, off.ctypes.data, w.ctypes.data, len(off) - 1, len(x))
    for _ in range(repeats):
        t = time.perf_counter()
        lib.call(x, y, off, w, len(off) - 1, len(x))
        locked.append(time.perf_counter() - t)
        t = time.perf_counter()
        lib.fn(*args)
        raw.append(time.perf_counter() - t)
    return statistics.median(locked), statistics.median(raw)


def threaded(project_dir, backend: str, ids, want, threads: int, objects: int, max_tokens: int) -> float:
    """Seconds for ``threads`` threads, spread over ``objects`` Accelerators, each running all of ``ids``
    once (results checked against ``want``)."""
    from padless.runtime import Accelerator
    accs = [Accelerator(project_dir, backend=backend, max_tokens=max_tokens) for _ in range(objects)]
    bad = []

    def work(i):
        got = accs[i % objects].run(ids)
        bad.extend(j for j, (g, r) in enumerate(zip(got, want)) if not np.array_equal(g, r))
    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    dt = time.perf_counter() - t
    for a in accs:
        a.close()
    if bad:
        raise SystemExit(f"{backend}: {len(bad)} sequences differ from golden under {threads} threads")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    from padless.build import compile_project
    from padless.csim import CsimLibrary, build_library
    from padless.data.datasets import load_dataset
    from padless.project import load_project
    from padless.runtime import simdevice
    from padless.runtime.backends.golden import GoldenBackend
    from padless.runtime.host import run_hidden
    out = Path(tempfile.mkdtemp()) / args.model
    compile_project(args.model, board="u280", out=out, calib_count=64)
    proj = load_project(out)
    texts = load_dataset("vader-movie", limit=args.limit).texts
    ids = proj.tokenize(texts, truncate=True)
    want = run_hidden(proj, GoldenBackend(proj), ids)
    max_tokens = 256

    # 1. per call, one pack of real sentences
    from padless.golden import quantize_input
    from padless.reference import embed
    lib = CsimLibrary(build_library(out / "hls"))
    pack, n = [], 0
    for seq in ids:
        if n + len(seq) > max_tokens:
            break
        pack.append(quantize_input(embed(proj.host, seq), np.asarray(proj.quantized.input_scale)))
        n += len(seq)
    x = np.ascontiguousarray(np.concatenate(pack), dtype=np.int8)
    off = np.concatenate([[0], np.cumsum([len(p) for p in pack])]).astype(np.int64)
    y = np.empty_like(x)
    w = np.fromfile(out / "weights.bin", dtype="<u8")
    t_lock, t_raw = per_call(lib, x, y, off, w, max(args.repeats * 20, 50))
    # the lock alone: an uncontended acquire + release
    t0 = time.perf_counter()
    for _ in range(100_000):
        with lib.lock:
            pass
    t_acq = (time.perf_counter() - t0) / 100_000

    # 2. end to end, best of repeats, both configurations interleaved
    os.environ["PADLESS_SIM_DEVICE"] = "1"
    simdevice.enable()
    rows = []
    for backend in ("csim", "pynq"):
        one, four = [], []
        for _ in range(args.repeats):
            one.append(threaded(out, backend, ids, want, 1, 1, max_tokens))
            four.append(threaded(out, backend, ids, want, 4, 2, max_tokens) / 4)  # per pass over ids
        rows.append((backend, min(one), min(four)))

    tokens = sum(map(len, ids))
    lines = [
        f"{args.model} (hidden {proj.model['hidden_size']}, {proj.model['num_layers']} layers), {len(ids)} VADER movie "
        f"snippets ({tokens} tokens), packs of <= {max_tokens} tokens; every threaded result equals the "
        "single-threaded golden model bit for bit.",
        "",
        "| measure | with the lock | without | ratio |",
        "|---|---|---|---|",
        f"| one kernel call ({len(x)} tokens, {len(pack)} sequences), median | {t_lock * 1e3:.3f} ms | "
        f"{t_raw * 1e3:.3f} ms | {t_lock / t_raw:.3f} |",
        f"| uncontended lock acquire + release | {t_acq * 1e9:.0f} ns | | |",
        "",
        "| backend | 1 thread, 1 object: s per pass | 4 threads x 2 objects: s per pass | ratio |",
        "|---|---|---|---|",
    ]
    for backend, a, b in rows:
        name = "pynq (simulated device, csim engine)" if backend == "pynq" else backend
        lines.append(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    lines += ["", "A pass is one `Accelerator.run` over all the sentences (host embedding + packing + kernel). "
              "Threads overlap only the host work: the kernel calls of one library run one at a time, so 4 "
              "threads are not 4x faster; they are correct, and the lock itself is lost in the noise of a call."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        print(f"wrote {write_section('concurrency', 'Concurrency: the per-library csim lock (issue 19)', body)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
