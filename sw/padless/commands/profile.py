"""``padless profile DIR (--input FILE | --dataset NAME [--limit N] | --lengths L1,L2,...) [--json]``.

Runs the sequences through the timed C-simulation of the project's generated HLS kernel, in the host
scheduler's packing and order, and reports the simulated cycles, throughput, per-process busy fractions
and efficiency against the board's DSP peak, beside the same kernel fed padded sequences and the cycle
model's prediction (:func:`padless.runtime.profile.profile`). Figures are *simulated* (cycle-annotated csim
of the generated HLS), not measured on a board.
"""
from __future__ import annotations

import json
import sys

from ..data.datasets import DATASETS
from ..errors import InputError
from .run import positive_int


def parse_lengths(text: str) -> list[int]:
    """``"27,40,12"`` -> [27, 40, 12]. Raises InputError naming the bad item."""
    if not text.strip():
        raise InputError("--lengths is empty; give sequence lengths in tokens like 27,40,12")
    out = []
    for item in text.split(","):
        item = item.strip()
        try:
            if not item.isascii():  # int() takes any Unicode digit (Arabic-Indic, fullwidth)
                raise ValueError(item)
            n = int(item)
        except ValueError:
            raise InputError(f"--lengths: {item[:40]!r} is not a whole number (give lengths like 27,40,12)") from None
        if n < 1:
            raise InputError(f"--lengths: a sequence needs at least one token, got {n}")
        out.append(n)
    return out


def add_input_args(p, texts: bool = False, required: bool = True) -> None:
    """The input options shared by profile and check: --input, --dataset/--limit, --lengths or --text
    (``required``: one of them must be given)."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--input", metavar="FILE", help="one text per line (tokenized with the model's tokenizer)")
    src.add_argument("--dataset", metavar="NAME", help=f"a real dataset ({', '.join(DATASETS)})")
    if texts:
        src.add_argument("--text", action="append", help="a sentence (repeatable)")
    else:
        src.add_argument("--lengths", metavar="L1,L2,...", help="sequence lengths in tokens, comma separated")
    p.add_argument("--limit", type=positive_int, help="use only the first N texts of the dataset or file")
    p.add_argument("--truncate", action="store_true",
                   help="cut texts longer than the project's max length instead of refusing them")


def read_input(args, project):
    """``(token id lists or None, lengths or None, description)`` from the input options."""
    from ..data.datasets import load_dataset, read_lines
    if getattr(args, "lengths", None) is not None:
        lens = parse_lengths(args.lengths)[: args.limit] if args.limit else parse_lengths(args.lengths)
        return None, lens, f"{len(lens)} lengths"
    if getattr(args, "text", None):
        texts, what = list(args.text), f"{len(args.text)} texts"
    elif args.input:
        texts = read_lines(args.input, blank="error")
        what = f"{args.input}"
    else:
        texts = list(load_dataset(args.dataset, limit=args.limit).texts)
        what = f"dataset {args.dataset}"
    if args.limit:
        texts = texts[: args.limit]
    if not texts:
        raise InputError("no texts to run")
    return project.tokenize(texts, truncate=args.truncate), None, f"{what} ({len(texts)} texts)"


def register(sub) -> None:
    p = sub.add_parser("profile", help="timed C-simulation of the generated kernel (simulated cycles)",
                       description="Run sequences through the cycle-annotated C-simulation of the project's "
                                   "HLS kernel and report simulated throughput, per-process busy fractions, "
                                   "efficiency against the DSP peak, the padded baselines on the same kernel "
                                   "and the cycle model's error.")
    p.add_argument("project", metavar="DIR", help="project folder written by `padless compile`")
    add_input_args(p)
    p.add_argument("--fixed-length", type=positive_int, default=None,
                   help="compile-time length of the padded_fixed baseline (default 128, capped at the kernel's "
                        "maximum, raised to the longest sequence)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size of the padded_batch baseline")
    p.add_argument("--ideal-memory", action="store_true",
                   help="every m_axi beat there when asked (the engine's upper bound) instead of the board's "
                        "memory model (latency, outstanding requests, bursts, bank share)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..project import load_project
    from ..runtime.profile import profile
    project = load_project(args.project)
    ids, lens, what = read_input(args, project)
    n = len(ids) if ids is not None else len(lens)
    bar, progress = None, None
    if n >= 200:  # a bar on a terminal, plain lines in a log (padless.progress)
        from ..progress import progress_bar
        bar = progress_bar(total=n, desc="padless profile (timed csim)", unit="seq", file=sys.stderr)
        progress = bar.update
    out = profile(project, sequences=ids, lengths=lens, fixed_length=args.fixed_length, batch_size=args.batch_size,
                  progress=progress, ideal_memory=args.ideal_memory)
    if bar:
        bar.close()
    public = {k: v for k, v in out.items() if not k.startswith("_")}
    if args.json:
        print(json.dumps(public, indent=2, sort_keys=True))
        return 0
    print(f"padless profile: {what}, {out['tokens']} tokens on {project.manifest['board']} at {out['clock_MHz']:.0f} MHz")
    print(f"  {out['label']}; clock source: {out['clock_source']}")
    print(f"  cycles {out['cycles']:,}  ({out['seconds'] * 1e3:.3f} ms)  {out['throughput_seq_s']:,.0f} seq/s  "
          f"{out['throughput_tokens_s']:,.0f} tokens/s  {out['efficiency_vs_peak']:.1%} of the INT8 DSP peak")
    for b in ("padded_max", "padded_batch", "padded_fixed"):
        if b in out:
            name = f"fixed {out['fixed_length']}" if b == "padded_fixed" else b
            print(f"  {name:<13} {out[b]['throughput_seq_s']:>10,.0f} seq/s   padless {out['speedup_vs'][b]:.2f}x faster")
    if "baselines_note" in out:
        print(f"  {out['baselines_note']}")
    print(f"  model (padless schedule): {out['model']['throughput_seq_s']:,.0f} seq/s, error {out['model_error']:+.1%}")
    ub = out["upper_bound"]
    print(f"  upper bound: {ub['throughput_seq_s']:,.0f} seq/s at the platform's {ub['clock_mhz']:g} MHz with ideal memory")
    busy = sorted(out["stage_busy"].items(), key=lambda kv: -kv[1])
    print("  busy: " + ", ".join(f"{k.removeprefix('p_')} {v:.0%}" for k, v in busy))
    return 0
