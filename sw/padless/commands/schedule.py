"""``padless schedule DIR (--dataset NAME | --input FILE | --lengths FILE) [--json]``.

Predicts, with the cycle model of the project's generated engine (:mod:`padless.schedule.cost`), the
length-aware schedule and the padded baselines (pad to the maximum, to each batch's maximum, to a fixed
compile-time length) on a real length mix, and prints throughput, efficiency against the board's INT8 DSP
peak, per-process busy fractions and the speedups (modeled figures; ``padless profile`` simulates the
kernel itself).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data.datasets import DATASETS
from ..errors import InputError, ProjectError
from .run import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "schedule", help="model padless vs padded scheduling on a length mix (cycle model)",
        description="Simulate the length-aware pipeline and the padded baselines on the project's cycle "
                    "model. Figures are modeled, not measured.")
    p.add_argument("project", metavar="DIR", help="project folder written by `padless compile`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help=f"a real dataset ({', '.join(DATASETS)})")
    src.add_argument("--input", metavar="FILE", help="one text per line (tokenized with the model's tokenizer)")
    src.add_argument("--lengths", metavar="FILE", help="one sequence length (tokens) per line")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N >= 1 sequences")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size of the padded_batch baseline (default 32)")
    p.add_argument("--fixed-length", type=positive_int, default=None,
                   help="compile-time length of the padded_fixed baseline (default 128, capped at the kernel's "
                        "maximum, raised to the longest sequence)")
    p.add_argument("--truncate", action="store_true",
                   help="cut texts longer than the project's max length instead of refusing them (as run / profile)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def read_manifest(project_dir: str | Path) -> dict:
    """``DIR/manifest.json`` of a validated project (:func:`padless.project.load_project`: format
    version, files, checksums), as a dict (keys used here: model, board, sparsity, schedule).

    Raises:
        ProjectError: no folder or no manifest, a manifest that is not JSON or from another version, a
            missing or modified file, or no ``model``/``board`` entry.
    """
    from ..project import load_project
    path = Path(project_dir)
    if not (path / "manifest.json").is_file():
        raise ProjectError(f"{path} has no manifest.json; create the project with "
                           f"`padless compile MODEL --board BOARD --out {path}`")
    manifest = load_project(path).manifest
    for key in ("model", "board"):
        if key not in manifest:
            raise ProjectError(f"{path / 'manifest.json'} has no {key!r} entry; recompile the project")
    return manifest


def read_lengths(path: str | Path) -> list[int]:
    """One positive integer per line (blank lines skipped). Raises InputError naming the bad line."""
    from ..data.datasets import _read_text_file
    p = Path(path)
    if not p.is_file():
        raise InputError(f"lengths file {p} does not exist")
    out = []
    for i, line in enumerate(_read_text_file(p), 1):  # InputError for a file that is not UTF-8 text
        line = line.strip()
        if not line:
            continue
        try:
            if not line.isascii():  # int() takes any Unicode digit (Arabic-Indic, fullwidth)
                raise ValueError(line)
            n = int(line)
        except ValueError:
            raise InputError(f"{p}:{i}: {line[:40]!r} is not an integer length (digits 0-9)") from None
        if n < 1:
            raise InputError(f"{p}:{i}: a sequence needs at least one token, got {n}")
        out.append(n)
    if not out:
        raise InputError(f"{p} holds no lengths")
    return out


def _texts_lengths(project_dir: str, texts: list[str], truncate: bool = False) -> list[int]:
    """Token counts of ``texts``; a text longer than the project's max length is an InputError (as in
    run / profile / check) unless ``truncate``."""
    from ..project import load_project

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise InputError("no non-empty texts to schedule")
    ids = load_project(project_dir).tokenize(texts, truncate=truncate)
    return [len(x) for x in ids]


def lengths_from_args(args, manifest: dict) -> list[int]:
    """Sequence lengths from --lengths, --input or --dataset (first ``--limit``). A text longer than the
    project's max length is refused unless ``args.truncate`` (``padless schedule``; ``padless report``,
    which has no ``--truncate``, cuts texts at the max length as its source line says)."""
    if args.lengths:
        lengths = read_lengths(args.lengths)
    elif args.input:
        from ..data.datasets import read_lines
        lengths = _texts_lengths(args.project, read_lines(args.input),  # InputError: missing, not UTF-8, empty
                                 getattr(args, "truncate", True))
    else:
        from ..data.datasets import load_dataset

        lengths = _texts_lengths(args.project, list(load_dataset(args.dataset, limit=args.limit).texts),
                                 getattr(args, "truncate", True))
    if args.limit:
        lengths = lengths[: args.limit]
    max_pos = int(manifest["model"].get("max_positions", 0) or 0)
    if max_pos and max(lengths) > max_pos:
        raise InputError(f"a sequence of {max(lengths)} tokens exceeds the model's {max_pos} positions")
    return lengths


def engine_of(manifest: dict, lengths: list[int] | None = None):
    """The project's :class:`~padless.schedule.engine.EngineConfig`: the generated kernel's
    (``manifest["hls"]["engine"]``), else the one its plan describes, else one planned now for the board."""
    from ..schedule.dse import plan
    from ..schedule.engine import EngineConfig
    if (manifest.get("hls") or {}).get("engine"):
        return EngineConfig.from_dict(manifest["hls"]["engine"])
    from ..schedule.engine import act_bits_of, gelu_of
    sched = manifest.get("schedule") or plan(manifest["model"], manifest["board"], manifest.get("sparsity") or {},
                                             lengths, act_bits=act_bits_of(manifest),
                                             gelu=gelu_of(manifest))
    if "engine" not in sched:
        raise ProjectError("the project's schedule comes from an older padless; recompile the project")
    return EngineConfig.from_dict(sched["engine"])


def schedule_figures(manifest: dict, lengths: list[int], batch_size: int = 32, fixed_length: int | None = None,
                     keep_intervals: bool = False) -> dict:
    """The ``--json`` object for a manifest and lengths: :func:`padless.schedule.scheduler.compare` on
    the project's engine, plus ``board``, ``clock_MHz``, ``clock_source`` (the csynth estimate when Vitis
    has run, else the board's default clock: :func:`padless.csynth.clock_of`), ``peak_int8_macs``,
    ``fixed_length`` (the padded_fixed baseline's length, :func:`padless.schedule.scheduler.resolve_fixed_length`) and
    ``modeled: true``."""
    from ..boards import load_board
    from ..csynth import clock_of
    from ..schedule.engine import mac_per_dsp
    from ..schedule.scheduler import compare, resolve_fixed_length

    board = load_board(manifest["board"])
    cfg = engine_of(manifest, lengths)
    if max(lengths) > cfg.max_seq:
        raise InputError(f"a sequence of {max(lengths)} tokens exceeds the kernel's maximum of {cfg.max_seq}")
    clock = clock_of(manifest, board)
    cfg.clock_MHz = clock["clock_MHz"]
    peak = board.dsp * mac_per_dsp(board, cfg.sparse, cfg.paired) * cfg.clock_MHz * 1e6
    fixed_length = resolve_fixed_length(fixed_length, lengths, cfg.max_seq)
    out = compare(cfg, lengths, peak, batch_size=batch_size, fixed_length=fixed_length, keep_intervals=keep_intervals)
    out["fixed_length"] = fixed_length
    out["board"] = board.name
    out["clock_MHz"] = cfg.clock_MHz
    out["clock_source"] = clock["source"]
    out["peak_int8_macs"] = peak
    out["modeled"] = True
    return out


def run(args) -> int:
    manifest = read_manifest(args.project)
    lengths = lengths_from_args(args, manifest)
    out = schedule_figures(manifest, lengths, args.batch_size, args.fixed_length)
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    print(f"padless schedule: {len(lengths)} sequences, {sum(lengths)} tokens on {out['board']} at "
          f"{out['clock_MHz']:.0f} MHz (modeled; `padless profile` simulates the kernel)")
    print(f"{'method':<14}{'seq/s':>12}{'tokens/s':>13}{'eff/peak':>10}{'padded tok':>12}{'padless x':>11}")
    rows = [("padless", out)] + list(out["baselines"].items())
    for name, f in rows:
        sp = "" if name == "padless" else f"{out['speedup_vs'][name]:.2f}"
        name = f"fixed {out['fixed_length']}" if name == "padded_fixed" else name
        print(f"{name:<14}{f['throughput_seq_s']:>12.1f}{f['throughput_tokens_s']:>13.0f}"
              f"{f['efficiency_vs_peak']:>10.1%}{f['padded_tokens']:>12,}{sp:>11}")
    busy = sorted(out["stage_busy"].items(), key=lambda kv: -kv[1])
    print("busy (padless): " + ", ".join(f"{k.removeprefix('p_')} {v:.0%}" for k, v in busy if v > 0))
    return 0
