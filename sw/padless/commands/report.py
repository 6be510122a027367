"""``padless report DIR [--dataset NAME | --lengths FILE | --input FILE] [--limit N] [--out FILE]``.

Simulates padless and the padded baselines on a length mix with the project's cycle model (the same
code as ``padless schedule``), draws the Gantt, utilization and throughput plots and writes them with
the tables into ``DIR/report/index.html`` (:mod:`padless.report`). Adds the measured figures of
``make run`` when ``DIR/report/run.json`` exists. Prints the path of the HTML file.
"""
from __future__ import annotations

from ..data.datasets import DATASETS
from .run import positive_int

DEFAULT_DATASET = "vader-movie"


def register(subparsers) -> None:
    from ..schedule.plots import GANTT_SEQUENCES

    p = subparsers.add_parser(
        "report", help="write an HTML report: modeled scheduling figures, plots, plan, measured run",
        description="Simulate the length-aware pipeline and the padded baselines on a length mix, plot "
                    "them and write an HTML report (DIR/report/index.html). Scheduling figures are "
                    "modeled; the figures of `make run` (DIR/report/run.json) are shown as measured.")
    p.add_argument("project", metavar="DIR", help="project folder written by `padless compile`")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", metavar="NAME", default=DEFAULT_DATASET,
                     help=f"a real dataset ({', '.join(DATASETS)}; default {DEFAULT_DATASET})")
    src.add_argument("--input", metavar="FILE", help="one text per line (tokenized with the model's tokenizer)")
    src.add_argument("--lengths", metavar="FILE", help="one sequence length (tokens) per line")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N >= 1 sequences")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size of the padded baselines (default 32)")
    p.add_argument("--gantt-sequences", type=positive_int, default=GANTT_SEQUENCES, metavar="N",
                   help=f"sequences drawn in the Gantt chart (default {GANTT_SEQUENCES})")
    p.add_argument("--out", metavar="FILE", default=None, help="HTML file (default DIR/report/index.html)")
    p.set_defaults(func=run)


def describe_source(args) -> str:
    """One line naming where the lengths come from."""
    limit = f", first {args.limit}" if args.limit else ""
    if args.lengths:
        return f"lengths file {args.lengths}{limit}"
    if args.input:
        return f"texts of {args.input}{limit}, tokenized with the model's tokenizer (cut at the max length)"
    return f"dataset {args.dataset}{limit}, tokenized with the model's tokenizer (cut at the max length)"


def run(args) -> int:
    from ..errors import InputError
    from ..report import build_report
    from .schedule import lengths_from_args, read_manifest

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    manifest = read_manifest(args.project)
    lengths = lengths_from_args(args, manifest)
    path = build_report(args.project, lengths, source=describe_source(args), out=args.out,
                        batch_size=args.batch_size, gantt_sequences=args.gantt_sequences)
    print(path)
    return 0
