"""``padless export DIR --onnx OUT.onnx [--core-only]``: the compiled integer model as ONNX."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="write a compiled project's quantized model as ONNX (runs in onnxruntime)",
        description="Export the integer model of a project folder to ONNX: MatMulInteger and int64 "
                    "integer ops reproduce the golden model bit for bit; the embedding and pooling stay "
                    "float around QuantizeLinear / DequantizeLinear. See docs/interchange.md.")
    p.add_argument("project", help="project folder written by `padless compile`")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    p.add_argument("--core-only", action="store_true",
                   help="export only the integer layers: int8 (batch, seq, hidden) in -> int8 out")
    p.add_argument("--force", action="store_true",
                   help="replace an existing OUT.onnx, or write it inside a project folder (never over a file "
                        "the project lists)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export_onnx import export_onnx

    out = export_onnx(args.project, args.onnx, core_only=args.core_only, force=args.force)
    if not args.quiet:
        kind = "integer core (hidden_in int8 -> hidden_int8)" if args.core_only else \
            "input_ids -> last_hidden_state, hidden_int8, sentence_embedding"
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {kind}")
    return 0
