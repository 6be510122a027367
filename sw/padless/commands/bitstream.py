"""``padless bitstream DIR [--board BOARD] [--dry-run]``: build the project's bitstream through make.

Alveo: vitis_hls exports the kernel as .xo, ``v++ -l --platform`` links it with the generated connectivity
config -> ``deploy/*.xclbin``. Zynq: vitis_hls exports the IP, ``vivado -mode batch`` runs the generated
block design -> ``deploy/*.bit`` + ``.hwh``. Without the tools: an error naming the missing one (exit 3).
"""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("bitstream", help="build the FPGA bitstream of a project (needs Vitis / Vivado)",
                       description=__doc__.split("\n")[0])
    p.add_argument("project", metavar="DIR", help="project folder written by `padless compile`")
    p.add_argument("--board", help="board (default: the project's)")
    p.add_argument("--dry-run", "-n", action="store_true", help="print the commands (make -n) without running them")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..codegen.bitstream import build
    res = build(args.project, args.board, dry_run=args.dry_run)
    if args.dry_run:
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
    return res.returncode
