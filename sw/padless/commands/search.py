"""``padless search MODEL --dataset NAME --boards u280,u55c,zcu104,kv260 --out DIR [constraints]``.

The co-design search (docs/search.md): board x attention sparsity x bank-balanced weight sparsity x
precision, each with the DSE's folding, against held-out fidelity, simulated throughput and latency, and
estimated energy; then the cheapest board that meets every constraint. ``--report DIR`` re-renders the
results of an earlier search from its journal.
"""
from __future__ import annotations

import math
import sys

from ..errors import InputError
from .run import positive_int


def _fraction(text: str) -> float:
    """``0.97`` or ``97%`` -> 0.97."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise InputError(f"{text!r} is not a number (give e.g. 0.97 or 97%)") from None
    if not math.isfinite(v) or not 0 <= v <= 1:
        raise InputError(f"{text!r} is not a fraction in [0, 1] (give e.g. 0.97 or 97%)")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{text!r} must be a number > 0")
    return v


def register(sub) -> None:
    p = sub.add_parser("search", help="co-design search: boards x sparsity x precision, Pareto front and the device choice",
                       description="Search board x attention sparsity x bank-balanced weight sparsity x precision "
                                   "(each with the DSE's folding) with Optuna NSGA-II: held-out fidelity vs fp32, "
                                   "simulated throughput and batch-1 latency (timed csim), estimated energy; "
                                   "then the cheapest board meeting every constraint.")
    p.add_argument("model", nargs="?", help="recipe name (minilm-l6, tiny) or a model path")
    p.add_argument("--dataset", help="labelled dataset: its selection split drives the search, its test split "
                                     "reports the choice (vader-movie: vader-movie-train / -test)")
    p.add_argument("--limit", type=positive_int, default=300, help="texts of the selection split (default 300)")
    p.add_argument("--test-limit", type=positive_int, default=1000, help="texts of the test split (default 1000)")
    p.add_argument("--boards", help="comma-separated boards (default: the space's, u280,u55c,zcu104,kv260)")
    p.add_argument("--out", help="search folder (journal, search.json, pareto.csv, report.html)")
    p.add_argument("--min-agreement", help="decision agreement with fp32, e.g. 0.97 or 97%%")
    p.add_argument("--min-cosine", help="mean cosine to fp32 embeddings, e.g. 0.99")
    p.add_argument("--max-latency-us", help="batch-1 latency of one median-length sequence (us)")
    p.add_argument("--min-throughput", help="sequences per second on the dataset's length mix")
    p.add_argument("--trials", type=positive_int, default=30, help="trials to evaluate in all (resumed ones count)")
    p.add_argument("--time-budget", help="seconds after which no new trial starts")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--address", help="Ray cluster (ray://host:10001, auto; default $RAY_ADDRESS): each trial a Ray task")
    p.add_argument("--cpus", type=float, default=1.0, help="CPUs each Ray task reserves (default 1)")
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1; 0: in this process)")
    p.add_argument("--space", help="YAML space file (boards, attention, weights, quant, base)")
    p.add_argument("--cache", help="project cache (default $PADLESS_CACHE/search or ~/.cache/padless/search)")
    p.add_argument("--sim-limit", type=positive_int, default=200, help="sequences of the timed csim's length mix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", metavar="BOARD", help="also evaluate the default project on BOARD (the recipe's "
                   "quantization, no sparsity, the DSE's placement) and print it beside the choice")
    p.add_argument("--no-test", action="store_true", help="skip the test-split fidelity of the chosen configuration")
    p.add_argument("--report", metavar="DIR", help="re-render search.json, pareto.csv and report.html of DIR")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..search import results
    if args.report:
        doc = rerender(args.report)
        if not args.quiet:
            print("\n".join(results.summary_lines(doc)))
            print(f"wrote {args.report}/search.json, pareto.csv, report.html")
        return 0
    if not args.model or not args.dataset or not args.out:
        raise InputError("search needs MODEL, --dataset NAME and --out DIR (or --report DIR to re-render one)")
    from ..boards import load_board
    from ..search.space import load_space
    from ..search.study import SearchOptions, run_search
    opts = SearchOptions(
        model=args.model, dataset=args.dataset, out=args.out, limit=args.limit, test_limit=args.test_limit,
        boards=[b.strip() for b in args.boards.split(",") if b.strip()] if args.boards else None,
        min_agreement=_fraction(args.min_agreement) if args.min_agreement else None,
        min_cosine=_fraction(args.min_cosine) if args.min_cosine else None,
        max_latency_us=_positive(args.max_latency_us) if args.max_latency_us else None,
        min_throughput=_positive(args.min_throughput) if args.min_throughput else None,
        trials=args.trials, time_budget=_positive(args.time_budget) if args.time_budget else None,
        resume=args.resume, address=args.address, cpus=args.cpus, jobs=args.jobs,
        space=load_space(args.space).to_dict() if args.space else None, cache=args.cache,
        sim_limit=args.sim_limit, seed=args.seed, final_test=not args.no_test, quiet=args.quiet,
        baseline=load_board(args.baseline).name if args.baseline else None)
    if args.jobs < 0:
        raise InputError(f"--jobs {args.jobs} must be >= 0")
    doc = run_search(opts)
    if not args.quiet:
        print("\n".join(results.summary_lines(doc)))
        print(f"wrote {args.out}/search.json, pareto.csv, report.html")
    return 0 if doc.get("device") else 1


def rerender(folder) -> dict:
    """Re-render DIR's outputs from its journal and meta (``--report``); returns the document."""
    import json
    from pathlib import Path

    from ..search import results
    from ..search.study import open_study
    d = Path(folder)
    meta_f, journal = d / "search-meta.json", d / "journal.log"
    if not meta_f.is_file() or not journal.is_file():
        raise InputError(f"--report {d}: no search there (search-meta.json and journal.log); run `padless search` first")
    meta = json.loads(meta_f.read_text())
    doc = results.collect(open_study(d, create=False), meta, d)
    old = d / "search.json"
    if old.is_file():
        try:
            prev = json.loads(old.read_text())
            if prev.get("device") and doc.get("device") and prev["device"].get("number") == doc["device"]["number"]:
                doc["device"]["test"] = prev["device"].get("test")
            doc["run"] = prev.get("run")
            if prev.get("baseline"):
                doc["baseline"] = prev["baseline"]
        except ValueError:
            pass
    results.write_all(d, doc)
    return doc
