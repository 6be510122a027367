"""``padless check DIR (--input FILE | --text T ... | --dataset NAME [--limit N]) [--json]``.

Runs the code Vitis HLS would synthesize (the ``synth`` C-simulation form: unrolled PE x SIMD folds, the
packed two-MAC DSP products, the top-k network, width-exact ``ap_int`` arithmetic) on real sentences with
the checks that stand in for csynth here (docs/hls.md, "Checks without Vitis"):

* bit-exactness: every output element equals the golden model's;
* the port checker: every on-chip array declares its banks and ports after partitioning; each pipelined
  iteration that needs more accesses of one bank than its ports is a violation (it would not reach II=1);
* the deadlock check: the dataflow processes run concurrently over FIFOs and blocks of their declared
  depths; a run where every process waits is a deadlock;
* the static resource estimate (BRAM, URAM, DSP, LUT) against the board;
* the arrays: every array the kernel declares, counted from its code as Vitis reads it
  (:func:`padless.synth_check.kernel_arrays`: ``arrays_declared``), and how many of them go through the
  port-checked declaration macros (``arrays_checked``); a plain C array the checker cannot see fails.

With ``--synth`` it also compiles the kernel's ``__SYNTHESIS__`` branch with g++ and clang++
(:mod:`padless.synth_check`: the code csynth reads, against the open-source ap_types and declarations of the
documented hls::stream / stream_of_blocks API), and compares the resource estimate's memories with the
kernel's global arrays (names, banks x depth as the compiler sizes them, binding:
:func:`padless.synth_check.check_memories`; ``synthesis.memories`` in the JSON); ``--synth`` alone (no
texts) runs only these.

Exits non-zero when any check fails.
"""
from __future__ import annotations

import json
import sys

from .profile import add_input_args, read_input


def register(sub) -> None:
    p = sub.add_parser("check", help="check the synthesizable HLS kernel: bit-exact, ports, deadlock, resources",
                       description="Run the synthesizable form of the project's HLS kernel on real sentences "
                                   "with the port checker and the deadlock check; compare with the golden "
                                   "model; report the resource estimate. Exit status 1 when a check fails.")
    p.add_argument("project", metavar="DIR", help="project folder written by `padless compile`")
    add_input_args(p, texts=True, required=False)
    p.add_argument("--synth", action="store_true",
                   help="also compile the kernel's __SYNTHESIS__ branch with g++ and clang++ (-std=c++14 "
                        "-fsyntax-only); alone, without texts, only that")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def check(project, ids) -> dict:
    """The checks on token-id lists ``ids``: ``{"sequences", "tokens", "bit_exact", "mismatches",
    "port_violations", "violations", "deadlock", "deadlock_report", "kernel_error" (a non-deadlock failure
    status of the kernel, else None), "resources", "arrays_declared", "arrays_checked" (counts),
    "arrays_unchecked" (``file:name`` of the plain arrays)}``."""
    import numpy as np

    from ..csim import CsimLibrary
    from ..errors import KernelStatusError
    from ..golden import quantize_input, run_encoder
    from ..reference import embed
    from ..runtime.backends.csim import CsimBackend
    scale = np.asarray(project.quantized.input_scale)
    rows = [quantize_input(embed(project.host, i), scale) for i in ids]
    x = np.concatenate(rows).astype(np.int8)
    off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    want = run_encoder(project.quantized, x, off, project.sparsity)
    backend = CsimBackend(project, form="synth", sim=dict(ports=True, exact_depth=True))
    deadlock, report, mismatches, failed = False, "", None, None
    try:
        y = backend.run(x, off)
        mismatches = int((y != want).sum())
    except KernelStatusError as exc:  # a deadlock or a failed check inside a process: reported, not raised
        deadlock = exc.status == CsimLibrary.STATUS_DEADLOCK
        report = str(exc)
        failed = None if deadlock else str(exc)
    reps = backend.reports
    backend.close()
    viol = sum(int(r["port_violations"]) for r in reps)
    first = [v for r in reps for v in r["violations"]][:8]
    res = project.manifest.get("resources") or {}
    from ..synth_check import kernel_arrays
    arrays = kernel_arrays(project.path / "hls")
    return {"sequences": len(ids), "tokens": int(len(x)), "bit_exact": mismatches == 0,
            "mismatches": mismatches, "port_violations": viol, "violations": first, "deadlock": deadlock,
            "deadlock_report": report if deadlock else "", "kernel_error": failed, "resources": res,
            "arrays_declared": len(arrays["declared"]), "arrays_checked": len(arrays["checked"]),
            "arrays_unchecked": arrays["unchecked"]}


def run(args) -> int:
    from ..errors import InputError
    from ..project import load_project
    project = load_project(args.project)
    has_texts = any(getattr(args, k, None) for k in ("input", "dataset", "text"))
    if not has_texts and not args.synth:
        raise InputError("check needs texts (--input, --text or --dataset), or --synth for the synthesis-branch "
                         "compile alone")
    synth = None
    if args.synth:
        from ..synth_check import compile_synthesis
        synth = compile_synthesis(project.path / "hls")
        synth["memories"] = _memories_against_estimate(project)
        synth["ok"] = synth["ok"] and synth["memories"]["ok"]
    if not has_texts:
        return _report_synth(synth, args)
    ids, _lens, what = read_input(args, project)
    if ids is None:
        raise InputError("check needs texts (--input, --text or --dataset)")
    out = check(project, ids)
    ok = (out["bit_exact"] and out["port_violations"] == 0 and not out["deadlock"] and not out["kernel_error"]
          and out["resources"].get("fits", True) and out["arrays_checked"] == out["arrays_declared"])
    if synth is not None:
        out["synthesis"] = synth
        ok = ok and synth["ok"]
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0 if ok else 1
    print(f"padless check: {what}, {out['tokens']} tokens, synthesizable form of {args.project}")
    print(f"  bit-exact vs golden: {'yes' if out['bit_exact'] else 'NO'}"
          + (f" ({out['mismatches']} elements differ)" if out["mismatches"] else ""))
    print(f"  port violations: {out['port_violations']}")
    for v in out["violations"]:
        print(f"    array {v['array']} in loop {v['loop']}: bank {v['bank']} needs {v['accesses']} accesses, has "
              f"{v['ports']} ports")
    print(f"  deadlock: {'YES: ' + out['deadlock_report'] if out['deadlock'] else 'no'}")
    print(f"  arrays port-checked: {out['arrays_checked']} of {out['arrays_declared']} declared"
          + (f" (plain: {', '.join(out['arrays_unchecked'])})" if out["arrays_unchecked"] else ""))
    if out["kernel_error"]:
        print(f"  kernel error: {out['kernel_error']}")
    r = out["resources"]
    if r:
        print("  resources: " + ", ".join(f"{k} {r[k]['used']:,}/{r[k]['limit']:,}" for k in ("dsp", "bram_36k", "uram", "lut")
                                          if k in r) + f"  -> {'fits' if r.get('fits') else 'DOES NOT FIT'}")
    if synth is not None:
        _print_synth(synth)
    print("  result: " + ("PASS" if ok else "FAIL"))
    sys.stdout.flush()
    return 0 if ok else 1


def _memories_against_estimate(project) -> dict:
    """The resource estimate's memories against the kernel's global arrays as the compiler sizes them
    (:func:`padless.synth_check.check_memories`): the estimate of the project's kernel config."""
    from ..codegen.hls import kernel_config
    from ..schedule.engine import resources
    from ..synth_check import check_memories
    board = project.board
    mems = resources(kernel_config(project, board), board)["detail"]["memories"]
    return check_memories(project.path / "hls", mems)


def _print_synth(synth: dict) -> None:
    for cc, r in synth["compilers"].items():
        print(f"  synthesis branch, {cc} -std={synth['std']} -fsyntax-only: "
              + ("compiles" if r["ok"] else "FAILS") + f" ({r['seconds']:.1f} s)")
        for e in r["errors"][:8]:
            print(f"    {e}")
    m = synth.get("memories")
    if m is not None:
        bad = m["shape_mismatch"] + [f"{n} ({e} in the estimate, {k} in the kernel)" for n, e, k in m["impl_mismatch"]]
        print(f"  estimate memories vs the kernel's arrays: {len(m['checked'])} compared, "
              + ("all match" if m["ok"] else "MISMATCH: " + ", ".join(bad or m["errors"][:3])))


def _report_synth(synth: dict, args) -> int:
    """``--synth`` alone: the synthesis-branch compile's report; exit 1 when a compiler rejects the code."""
    if args.json:
        print(json.dumps({"synthesis": synth}, indent=2, sort_keys=True))
    else:
        print(f"padless check: synthesis branch of {args.project}")
        _print_synth(synth)
        print("  result: " + ("PASS" if synth["ok"] else "FAIL"))
    sys.stdout.flush()
    return 0 if synth["ok"] else 1
