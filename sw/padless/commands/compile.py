"""``padless compile MODEL --board BOARD --out DIR [--config CFG.yaml]``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("compile", help="quantize (and sparsify) a model and write a project folder",
                       description="Quantize MODEL to integer-only int8 (I-BERT), apply the sparsity "
                                   "config, plan the hardware for BOARD and write a project folder.")
    p.add_argument("model", help="recipe name (minilm-l6, tiny, bert-base), a transformers model folder, an .onnx file, "
                        "or a saved torch module (.pt)")
    p.add_argument("--board", default="u280", help="target board (u200 u250 u280 u55c zcu102 zcu104 kv260 pynq-z2)")
    p.add_argument("--out", required=True,
                   help="project folder to write: new, empty, or an earlier padless project (recompiled)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder that is not a padless project (files of the same names "
                        "are replaced; nothing else is deleted)")
    p.add_argument("--config", help="YAML with attention / weights / tokens / calibration settings")
    p.add_argument("--calib", help="calibration text file, one real sentence per line (default: the recipe's dataset)")
    p.add_argument("--calib-count", type=int, help="number of calibration sentences")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="per-channel strength of folded int8 activation scales in [0, 1] (1 per channel, 0 per tensor)")
    p.add_argument("--max-length", type=int,
                   help="truncation length in tokens recorded in the project (default: the model's "
                        "sentence-transformers max_seq_length, else its maximum positions)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..build import compile_project, load_config
    from ..data.datasets import read_lines
    from ..build import check_alpha
    from ..project import check_out_dir
    check_out_dir(args.out, force=args.force)  # before any slow step: a bad --out fails at once
    check_alpha(args.alpha)
    config = load_config(args.config) if args.config else {}
    texts = read_lines(args.calib) if args.calib else None
    st = compile_project(args.model, board=args.board, out=args.out, config=config, calib_texts=texts,
                         calib_count=args.calib_count, alpha=args.alpha, progress=not args.quiet,
                         force=args.force, max_length=args.max_length)
    if not args.quiet:
        spec = st.spec
        print(f"compiled {spec.name}: {spec.num_layers} layers, hidden {spec.hidden_size}, "
              f"{spec.num_heads} heads, FFN {spec.intermediate_size} -> {st.out}")
        print(f"  board {st.board.name}; calibrated on {st.calibration['count']} sentences "
              f"({st.calibration['dataset']}); sparsity {st.sparsity}")
        print("  steps: " + ", ".join(f"{row[0]} {row[1]:.1f}s" + "".join(f" ({n})" for n in row[2:])
                                      for row in st.log))
    return 0
