"""Code generation: a self-contained Vitis HLS project inside a padless project folder.

``generate(project, board)`` (called by ``padless compile``'s codegen step) writes::

    weights.bin                 the integer model image the kernel reads over m_axi (codegen/weights.py)
    Makefile                    make csim | hls | clean
    hls/padless_encoder.cpp     the top-level kernel (hw/hls/top), m_axi + s_axilite, ap_ctrl_hs
    hls/config.h                model shape, limits, PE x SIMD, attention keep table, weights.bin offsets
    hls/include/padless/*.h     the padless HLS library (copied from hw/hls/include/padless)
    hls/tb.cpp                  C++ testbench reading binary test vectors
    hls/tv/{x_in,offsets,x_out}.bin   test vectors: golden-model input/output of real sentences
    hls/run_hls.tcl             vitis_hls script: csim_design, csynth_design, export_design (xo | ip_catalog)

The layout follows hls4ml's writer (each project carries its headers) so the folder can be moved to a
machine with Vitis and built with ``make hls``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..errors import ProjectError
from . import weights as wmod
from .escape import ident, install

REPO = Path(__file__).resolve().parents[3]
HW_INCLUDE = REPO / "hw" / "hls" / "include" / "padless"
HW_TOP = REPO / "hw" / "hls" / "top" / "padless_encoder.cpp"
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_MAX_TOKENS = 2048
DEFAULT_ROW_TILE = 32
#: Sentences whose golden outputs become the testbench's vectors (any text works; these are fixed).
TV_TEXTS = ("a gripping, beautifully acted film.", "dull.",
            "the plot wanders, but the performances keep it alive until the very last scene of the movie.")


def _env() -> jinja2.Environment:
    """The templates' environment, with the escaping filters of :mod:`padless.codegen.escape` (a user
    string reaches a generated file only through one of them)."""
    return install(jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                                      keep_trailing_newline=True, trim_blocks=False))


def _largest_divisor(n: int, cap: int) -> int:
    cap = max(1, min(int(cap), n))
    for d in range(cap, 0, -1):
        if n % d == 0:
            return d
    return 1


def parallelism(model: dict, schedule: dict | None) -> dict:
    """``{"QKV"|"OUT"|"UP"|"DOWN": (PE, SIMD)}``: the schedule's allocation rounded down to divisors of
    the layer's output (PE) and input (SIMD) sizes, so every loop has an integer trip count."""
    H, F = model["hidden_size"], model["intermediate_size"]
    alloc = (schedule or {}).get("allocation") or {}
    pe, simd = alloc.get("pe") or {}, alloc.get("simd") or {}
    shapes = {"QKV": ("qkv", H, H), "OUT": ("out", H, H), "UP": ("ffn_up", H, F), "DOWN": ("ffn_down", F, H)}
    return {k: (_largest_divisor(out, pe.get(s, 16)), _largest_divisor(inp, simd.get(s, 16)))
            for k, (s, inp, out) in shapes.items()}


def keep_table(max_seq: int, attention: dict | None) -> list[int]:
    """Keys kept per query for n = 0 .. max_seq tokens (keep_count; 0 for n = 0)."""
    from ..sparse.attention import keep_count
    return [0] + [keep_count(n, attention or None) for n in range(1, max_seq + 1)]


def config_params(project, board, layout: wmod.WeightsLayout, max_tokens: int = DEFAULT_MAX_TOKENS,
                  row_tile: int = DEFAULT_ROW_TILE) -> dict:
    """Everything config.h.j2 needs."""
    model = project.model
    max_seq = int(model["max_positions"])
    att = project.sparsity.get("attention") or {}
    keep = keep_table(max_seq, att)
    k_max = max([k for n, k in enumerate(keep) if 0 < k < n] or [1])
    desc = "dense" if not att else ", ".join(f"{k} {v}" for k, v in att.items())
    return {"version": __version__, "model": model, "board": board, "max_tokens": max(max_tokens, max_seq),
            "max_seq": max_seq, "k_max": k_max, "row_tile": row_tile, "par": parallelism(model, project.manifest.get("schedule")),
            "layout": layout, "sections": wmod.SECTIONS, "n_scalars": len(wmod.SCALARS), "keep": keep,
            "attention_desc": desc, "section_words": (layout.offsets // 8).tolist()}


def test_vectors(project, out_dir: Path, texts=TV_TEXTS) -> dict:
    """Write golden input/output vectors of ``texts`` (packed) to ``out_dir``; returns their shapes."""
    from ..golden import quantize_input, run_encoder
    from ..reference import embed
    out_dir.mkdir(parents=True, exist_ok=True)
    if "tokenizer" in project.manifest.get("files", {}):
        ids = project.tokenize(list(texts), truncate=True)
    else:
        rng = np.random.default_rng(0)
        ids = [list(rng.integers(1, project.model["vocab_size"], n)) for n in (9, 1, 23)]
    xs = [quantize_input(embed(project.host, i), np.asarray(project.quantized.input_scale)) for i in ids]
    x = np.concatenate(xs).astype(np.int8)
    off = np.concatenate([[0], np.cumsum([len(a) for a in xs])]).astype(np.int64)
    y = run_encoder(project.quantized, x, off, project.sparsity)
    (out_dir / "x_in.bin").write_bytes(x.tobytes())
    (out_dir / "offsets.bin").write_bytes(off.astype("<i8").tobytes())
    (out_dir / "x_out.bin").write_bytes(y.astype(np.int8).tobytes())
    return {"sequences": len(xs), "tokens": int(len(x))}


def generate(project, board, max_tokens: int | None = None, row_tile: int | None = None) -> dict:
    """Write the HLS project into ``project.path`` (layout in the module docstring) and register the
    files in the manifest (``manifest["hls"]``).

    Args:
        project: a loaded :class:`padless.project.Project`.
        board: a :class:`padless.boards.Board` (or name): part, clock and flow for the TCL.
        max_tokens: tokens of one packed batch the kernel accepts (on-chip activation buffer); default:
            the planned ``wave_tokens`` of the project's schedule (``manifest["schedule"]["allocation"]``)
            capped at ``DEFAULT_MAX_TOKENS``, or ``DEFAULT_MAX_TOKENS`` without a plan; never below the
            model's maximum sequence length.
        row_tile: token rows per tile of the row-wise stages; default: the plan's, else ``DEFAULT_ROW_TILE``.
    Returns the ``manifest["hls"]`` dict. Raises ProjectError when the HLS sources are missing from this
    padless checkout, or the model does not fit the kernel (hidden size not divisible by heads).
    """
    from ..boards import load_board
    from ..project import update_manifest
    board = load_board(board)
    if not HW_INCLUDE.is_dir() or not HW_TOP.is_file():
        raise ProjectError(f"the HLS sources are missing ({HW_INCLUDE}); use a padless source checkout")
    model = project.model
    if model["hidden_size"] % model["num_heads"]:
        raise ProjectError("hidden size must be a multiple of the number of heads for the HLS kernel")
    planned = (project.manifest.get("schedule") or {}).get("allocation") or {}
    if max_tokens is None:
        wave = int(planned.get("wave_tokens") or 0)
        max_tokens = min(DEFAULT_MAX_TOKENS, wave) if wave else DEFAULT_MAX_TOKENS
    if row_tile is None:
        row_tile = int(planned.get("row_tile") or DEFAULT_ROW_TILE)
    root = Path(project.path)
    hls = root / "hls"
    if hls.exists():
        shutil.rmtree(hls)
    (hls / "include" / "padless").mkdir(parents=True)
    headers = []
    for h in sorted(HW_INCLUDE.glob("*.h")):
        shutil.copyfile(h, hls / "include" / "padless" / h.name)
        headers.append(f"include/padless/{h.name}")
    shutil.copyfile(HW_TOP, hls / "padless_encoder.cpp")
    layout = wmod.write_weights(project.quantized, root / "weights.bin", project.sparsity.get("weights"))
    env = _env()
    params = config_params(project, board, layout, max_tokens, row_tile)
    (hls / "config.h").write_text(env.get_template("config.h.j2").render(**params))
    tv = test_vectors(project, hls / "tv")
    common = {"version": __version__, "model": model, "board": board, "project_name": project_name(model["name"]),
              "python": sys.executable}
    (hls / "tb.cpp").write_text(env.get_template("tb.cpp.j2").render(tv_dir="tv", weights_path="../weights.bin", **common))
    (hls / "run_hls.tcl").write_text(env.get_template("run_hls.tcl.j2").render(headers=["config.h"] + headers, **common))
    (root / "Makefile").write_text(env.get_template("Makefile.j2").render(**common))
    info = {"top": "padless_encoder", "part": board.part, "flow": board.flow, "clock_MHz": board.clock_MHz,
            "export": "xo" if board.flow == "vitis" else "ip_catalog", "max_tokens": params["max_tokens"],
            "max_seq": params["max_seq"], "k_max": params["k_max"], "row_tile": row_tile,
            "parallelism": {k: {"pe": p, "simd": s} for k, (p, s) in params["par"].items()},
            "weights_layout": layout.to_dict(), "test_vectors": tv,
            "sparsity": {"attention": project.sparsity.get("attention") or {},
                         "weights": project.sparsity.get("weights") or {}}}
    files = {"weights": "weights.bin", "hls_kernel": "hls/padless_encoder.cpp", "hls_config": "hls/config.h",
             "hls_tcl": "hls/run_hls.tcl", "hls_tb": "hls/tb.cpp", "makefile": "Makefile"}
    update_manifest(root, {"hls": info}, files)
    return info


def project_name(model_name: str) -> str:
    """The Vitis HLS project name of a model: ``padless_`` + the name reduced to an ASCII identifier
    (:func:`padless.codegen.escape.ident`), so a hostile model name cannot reach the TCL, the Makefile or
    a file name."""
    return "padless_" + ident(model_name)
