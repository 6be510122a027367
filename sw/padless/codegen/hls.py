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

import sys
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__, fsutil
from ..errors import ProjectError
from . import weights as wmod
from .escape import ident, install

REPO = Path(__file__).resolve().parents[3]
HW_INCLUDE = REPO / "hw" / "hls" / "include" / "padless"
HW_TOP = REPO / "hw" / "hls" / "top" / "padless_encoder.cpp"
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_MAX_TOKENS = 32768
#: Sentences whose golden outputs become the testbench's vectors (any text works; these are fixed).
TV_TEXTS = ("a gripping, beautifully acted film.", "dull.",
            "the plot wanders, but the performances keep it alive until the very last scene of the movie.")


def _env() -> jinja2.Environment:
    """The templates' environment, with the escaping filters of :mod:`padless.codegen.escape` (a user
    string reaches a generated file only through one of them)."""
    return install(jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                                      keep_trailing_newline=True, trim_blocks=False))


def kernel_config(project, board, max_tokens: int | None = None, max_seq: int | None = None):
    """The :class:`padless.schedule.engine.EngineConfig` of the project's kernel on ``board``: the plan's
    allocation (``manifest["schedule"]["allocation"]``) rounded to legal folding; ``max_tokens`` (rows of one
    call: the host's activation buffer, off chip) default the plan's ``wave_tokens`` (else
    ``DEFAULT_MAX_TOKENS``), never below ``max_seq``, ``max_seq`` default the project's
    truncation length (``Project.model_max_length``: sentence-transformers' ``max_seq_length``, else the model's
    maximum positions)."""
    from ..schedule.engine import act_bits_of, engine_config, gelu_of
    sched = project.manifest.get("schedule") or {}
    planned = sched.get("allocation") or {}
    wave = int(planned.get("wave_tokens") or 0)
    mt = max_tokens or wave or DEFAULT_MAX_TOKENS
    eng = sched.get("engine") or {}
    cfg = engine_config(project.model, project.sparsity, board, planned,
                        max_seq=max_seq or eng.get("max_seq") or project.model_max_length, max_tokens=mt,
                        act_bits=act_bits_of(project.manifest), gelu=gelu_of(project.manifest))
    # the plan's memory placement and block count (the DSE sized them for this board)
    for knob in ("weight_impl", "block_impl", "head_impl", "seq_blocks"):
        if knob in eng:
            setattr(cfg, knob, eng[knob])
    cfg.__post_init__()
    return cfg


def config_params(project, board, engine, layout: wmod.WeightsLayout) -> dict:
    """Everything config.h.j2 needs."""
    att = project.sparsity.get("attention") or {}
    desc = "dense" if not att else ", ".join(f"{k} {v}" for k, v in att.items())
    from ..schedule.engine import ACT_KINDS, table_impls
    from ..sparse.tokens import kernel_tables
    tr = kernel_tables(project.quantized, project.sparsity.get("tokens"), engine.max_seq)
    if tr:
        from ..schedule.engine import policy_pe, rcv_impl
        tr["rcv_impl"] = rcv_impl(engine)
        tr["pol_pe"] = policy_pe(engine)
        tr.setdefault("policy", None)
    return {"tr": tr, "version": __version__, "model": project.model, "board": board, "e": engine, "layout": layout,
            "table_impls": table_impls(engine), "act_kinds": ACT_KINDS,
            "sections": wmod.SECTIONS, "section_offsets": layout.offsets.tolist(), "attention_desc": desc}


def test_vectors(project, out_dir: Path, texts=TV_TEXTS) -> dict:
    """Write golden input/output vectors of ``texts`` (packed) to ``out_dir`` (inside the project: written
    with :mod:`padless.fsutil`); returns their shapes."""
    from ..golden import quantize_input, run_encoder
    from ..reference import embed
    root = Path(project.path)
    if "tokenizer" in project.manifest.get("files", {}):
        ids = project.tokenize(list(texts), truncate=True)
    else:
        rng = np.random.default_rng(0)
        ids = [list(rng.integers(1, project.model["vocab_size"], n)) for n in (9, 1, 23)]
    xs = [quantize_input(embed(project.host, i), np.asarray(project.quantized.input_scale)) for i in ids]
    x = np.concatenate(xs).astype(np.int8)
    off = np.concatenate([[0], np.cumsum([len(a) for a in xs])]).astype(np.int64)
    y = run_encoder(project.quantized, x, off, project.sparsity)
    fsutil.write_bytes(out_dir / "x_in.bin", x.tobytes(), root)
    fsutil.write_bytes(out_dir / "offsets.bin", off.astype("<i8").tobytes(), root)
    fsutil.write_bytes(out_dir / "x_out.bin", y.astype(np.int8).tobytes(), root)
    return {"sequences": len(xs), "tokens": int(len(x))}


def generate(project, board, max_tokens: int | None = None, max_seq: int | None = None) -> dict:
    """Write the HLS project into ``project.path`` (layout in the module docstring) and register the
    files in the manifest (``manifest["hls"]``, with the kernel's static resource estimate under
    ``manifest["resources"]``).

    Args:
        project: a loaded :class:`padless.project.Project`.
        board: a :class:`padless.boards.Board` (or name): part, clock, flow and m_axi width.
        max_tokens: rows of one packed call (the host's activation buffer, off chip); default: the plan's
            ``wave_tokens`` (else ``DEFAULT_MAX_TOKENS``), never below ``max_seq``.
        max_seq: longest sequence the kernel accepts (sizes its sequence blocks); default the plan's
            (``manifest["schedule"]["engine"]["max_seq"]``), else the project's truncation length.
    Returns the ``manifest["hls"]`` dict. Raises ProjectError when the HLS sources are missing from this
    padless checkout or when the quantized layers' FFN activation is not the one the kernel builds (the
    manifest's ``quant.gelu`` and model ``activation``; nothing is written then), InputError for a model the
    engine cannot run, ResourceError when the kernel does not fit the board (with what exceeds which limit).
    """
    from ..boards import load_board
    from ..project import record_generated, update_manifest
    from ..schedule.engine import check_fits
    board = load_board(board)
    if not HW_INCLUDE.is_dir() or not HW_TOP.is_file():
        raise ProjectError(f"the HLS sources are missing ({HW_INCLUDE}); use a padless source checkout")
    model = project.model
    engine = kernel_config(project, board, max_tokens, max_seq)
    acts = sorted({L.act for L in project.quantized.layers})
    if acts != [engine.act_kind]:   # the kernel builds one FFN activation; weights.bin must use it everywhere
        raise ProjectError(f"the quantized layers use FFN activation(s) {acts}, but the kernel is planned for "
                           f"{engine.act_kind!r} (quant.gelu {project.manifest.get('quant', {}).get('gelu')!r}, "
                           f"model activation {project.model.get('activation')!r}); recompile the project")
    res = check_fits(engine, board)
    root = Path(project.path)
    hls = root / "hls"
    fsutil.remove_tree(hls, root)   # never through a link: a link at hls/ is refused, links inside removed
    headers = []
    for h in sorted(HW_INCLUDE.glob("*.h")):
        fsutil.copy_file(h, hls / "include" / "padless" / h.name, root)
        headers.append(f"include/padless/{h.name}")
    fsutil.copy_file(HW_TOP, hls / "padless_encoder.cpp", root)
    folding = {m: tuple(engine.folding[m]) for m in wmod.MVUS}
    layout = wmod.write_weights(project.quantized, root / "weights.bin", project.sparsity.get("weights"), folding,
                                root=root)
    env = _env()
    params = config_params(project, board, engine, layout)
    fsutil.write_text(hls / "config.h", env.get_template("config.h.j2").render(**params), root)
    tv = test_vectors(project, hls / "tv")
    common = {"version": __version__, "model": model, "board": board, "project_name": project_name(model["name"]),
              "python": sys.executable}
    fsutil.write_text(hls / "tb.cpp", env.get_template("tb.cpp.j2").render(
        tv_dir="tv", weights_path="../weights.bin", layers=engine.layers,
        act_regions=act_regions(params["tr"]), out_region=2 if params["tr"] else engine.layers % 2, **common), root)
    fsutil.write_text(hls / "run_hls.tcl", env.get_template("run_hls.tcl.j2").render(
        headers=["config.h"] + headers, clock_MHz=float(engine.clock_MHz), **common), root)
    fsutil.write_text(root / "Makefile", env.get_template("Makefile.j2").render(**common), root)
    info = {"top": "padless_encoder", "part": board.part, "flow": board.flow, "clock_MHz": board.clock_MHz,
            "export": "xo" if board.flow == "vitis" else "ip_catalog", "max_tokens": engine.max_tokens,
            "max_seq": engine.max_seq, "k_max": engine.k_max, "engine": engine.to_dict(),
            "parallelism": {m.upper(): {"pe": p, "simd": s_} for m, (p, s_) in engine.folding.items()},
            "weights_layout": layout.to_dict(), "test_vectors": tv,
            "sparsity": {"attention": project.sparsity.get("attention") or {},
                         "weights": project.sparsity.get("weights") or {},
                         "tokens": project.sparsity.get("tokens") or {}},
            # the activation buffer: regions of num_tokens rows; the output is in region out_region
            "act_regions": act_regions(params["tr"]),
            "out_region": 2 if params["tr"] else engine.layers % 2}
    resources = {k: v for k, v in res.items() if k != "detail"}
    files = {"weights": "weights.bin", "hls_kernel": "hls/padless_encoder.cpp", "hls_config": "hls/config.h",
             "hls_tcl": "hls/run_hls.tcl", "hls_tb": "hls/tb.cpp", "makefile": "Makefile"}
    # a new kernel: an earlier csynth report (padless.csynth) describes the old one and no longer wins
    update_manifest(root, {"hls": info, "resources": resources, "csynth": None}, files)
    record_generated(root)   # every hls/ file (headers, test vectors) with its checksum
    return info


def act_regions(tr: dict | None) -> int:
    """Regions of num_tokens rows in the activation buffer (config.h PADLESS_ACT_REGIONS): the two layer
    halves; token reduction adds the output region; the learned policy a fourth, the writer's count beats."""
    return (4 if tr.get("policy") else 3) if tr else 2


def project_name(model_name: str) -> str:
    """The Vitis HLS project name of a model: ``padless_`` + the name reduced to an ASCII identifier
    (:func:`padless.codegen.escape.ident`), so a hostile model name cannot reach the TCL, the Makefile or
    a file name."""
    return "padless_" + ident(model_name)
