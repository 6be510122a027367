"""The kernel's ``__SYNTHESIS__`` branch compiles (issue 24, item 1): every generated variant (dense, top-k, token reduction,
density, 50% bank-balanced weights, int16 GELU output, zero point) on u280, zcu104 and kv260, with g++ and
clang++ at -std=c++14 -fsyntax-only, against the open-source ap_types and padless's declarations of the
documented hls::stream / stream_of_blocks API (padless.synth_check, the code `padless check --synth` runs)."""
from __future__ import annotations

import json
import shutil

import pytest

from padless.cli import main as cli_main
from padless.synth_check import COMPILERS, DECL_DIR, check_memories, compile_synthesis, kernel_arrays

#: The generated variants (a `padless compile --config` each); `rounding: nearest` keeps the compile fast
#: and changes no hardware parameter.
VARIANTS = {
    "dense": {},
    "topk": {"attention": {"topk": 8}},
    "density": {"attention": {"density": 0.25}},
    "weights50": {"weights": {"sparsity": 0.5, "bank": 16}},
    "act16": {"quant": {"precision": {"act": 16}}},
    "zero_point": {"quant": {"zero_point": ["act"]}},
    "tokens": {"tokens": {"layers": [1], "keep": 0.7}},
}
BOARDS = ("u280", "zcu104", "kv260")

pytestmark = pytest.mark.skipif(any(shutil.which(c) is None for c in COMPILERS),
                                reason="g++ and clang++ are needed (make install installs both)")


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    from padless.build import compile_project
    base = tmp_path_factory.mktemp("synth")
    made = {}

    def get(name, board):
        key = (name, board)
        if key not in made:
            cfg = json.loads(json.dumps(VARIANTS[name]))
            cfg.setdefault("quant", {})["rounding"] = "nearest"
            out = base / f"{name}-{board}"
            compile_project("tiny", board=board, out=out, config=cfg, calib_count=16)
            made[key] = out
        return made[key]
    return get


def _assert_compiles(res):
    for cc, r in res["compilers"].items():
        assert r["ok"], f"{cc} rejects the synthesis branch:\n" + "\n".join(r["errors"])
    assert res["ok"] and set(res["compilers"]) == set(COMPILERS) and res["std"] == "c++14"


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_synthesis_branch_compiles(variants, variant, board):
    _assert_compiles(compile_synthesis(variants(variant, board)))


def test_declarations_hold_only_documented_members(variants, tmp_path):
    """A kernel that calls a member UG1399 does not document (here: `.data()` on an on-chip array, which the
    C-simulation's ram1d has and a plain array under __SYNTHESIS__ has not; and hls::stream::peek) is
    rejected by both compilers, with the line."""
    src = variants("dense", "u280")
    d = tmp_path / "bad"
    shutil.copytree(src / "hls", d)
    layer = d / "include" / "padless" / "layer.h"
    text = layer.read_text()
    assert "res_pre<C, H, R> pre{rin, rbuf_a, rbuf_b};" in text
    layer.write_text(text.replace("res_pre<C, H, R> pre{rin, rbuf_a, rbuf_b};",
                                  "act_t *raw = rbuf_a.data(); (void)raw; res_pre<C, H, R> pre{rin, rbuf_a, rbuf_b};"))
    res = compile_synthesis(d)
    assert not res["ok"]
    for r in res["compilers"].values():
        assert not r["ok"] and any("layer.h" in e for e in r["errors"]), r["errors"]
    layer.write_text(text)
    io = d / "include" / "padless" / "io.h"
    t = io.read_text()
    i = t.index("din.read()")
    io.write_text(t[:i] + "din.peek()" + t[i + len("din.read()"):])
    res = compile_synthesis(d, compilers=("clang++",))
    assert not res["ok"] and any("peek" in e for e in res["compilers"]["clang++"]["errors"])
    # the declarations are never part of a generated project (a Vitis build uses Vitis's headers)
    assert not any(p.name in {q.name for q in DECL_DIR.iterdir()} for p in (src / "hls").rglob("*.h"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_array_is_port_checked(variants, variant):
    """Every array the synthesis branch declares (globals and locals; counted from the code) goes through a
    port-checked macro: arrays_checked == arrays_declared, and the count covers the memories we know of."""
    arr = kernel_arrays(variants(variant, "u280"))
    assert arr["unchecked"] == [] and arr["checked"] == arr["declared"]
    names = set(arr["declared"])
    for must in ("padless_encoder.cpp:w_qkv", "padless_encoder.cpp:gelu_tab", "padless_encoder.cpp:scal",
                 "padless_encoder.cpp:q_blk", "mvu.h:xa", "mvu.h:acc", "layer.h:rbuf_a", "attention.h:nscore"):
        assert must in names


def test_a_plain_array_is_counted_unchecked(variants, tmp_path):
    """A plain C array in the synthesis branch (here one added to the residual stage) is declared but not
    checked; one inside the C-simulation-only branch is not part of the kernel; a struct member is not an
    array of its own."""
    d = tmp_path / "hls"
    shutil.copytree(variants("dense", "u280") / "hls", d)
    layer = d / "include" / "padless" / "layer.h"
    text = layer.read_text()
    anchor = "    PADLESS_RAM1D_REG(act_t, rbuf_b, H);\n"
    assert anchor in text
    layer.write_text(text.replace(anchor, anchor + "    int32_t scratch[H], more[2][H];\n#ifndef __SYNTHESIS__\n"
                                  "    int32_t csim_only[H];\n#endif\n"))
    arr = kernel_arrays(d)
    assert arr["unchecked"] == ["layer.h:more", "layer.h:scratch"]
    assert len(arr["declared"]) == len(arr["checked"]) + 2


@pytest.mark.parametrize("variant,board", [("dense", "u280"), ("weights50", "u280"), ("dense", "kv260")])
def test_estimate_memories_are_the_kernel_arrays(variants, variant, board):
    """The resource estimate's memories are the kernel's global arrays (issue 24, items 2 and 3): each under the
    kernel's name (res_rq_out, ln_param_1, act_rq_up, ctx_rq, ...: config.h binds it as PADLESS_TIMPL_<NAME>),
    with the kernel's bank count and depth as the compiler evaluates them on the synthesis branch, and its
    binding; the GELU table counted once per FFN-up lane (gelu_tab[PE_UP][LBUF x 64], LUTRAM)."""
    import math

    from padless.codegen.hls import kernel_config
    from padless.project import load_project
    from padless.schedule.engine import MVUS, resources, table_impls
    proj = variants(variant, board)
    p = load_project(proj)
    cfg = kernel_config(p, p.board)
    r = resources(cfg, p.board)
    mems = r["detail"]["memories"]
    res = check_memories(proj, mems)
    assert res["ok"], res
    assert set(table_impls(cfg)) | {"gelu_tab"} | {f"w_{m}" for m in MVUS} <= set(res["checked"])
    # the kernel's only globals the estimate leaves out: a dense kernel's unused 1-deep index arrays
    assert set(res["unestimated"]) == (set() if cfg.sparse else {f"i_{m}" for m in MVUS})
    g = next(m for m in mems if m["name"] == "gelu_tab")
    pe_up = cfg.folding["up"][0]
    assert (g["copies"], g["depth"], g["impl"]) == (pe_up, (cfg.layers if cfg.resident else 1) * 64, "lutram")
    assert g["lut"] == pe_up * math.ceil(96 * g["depth"] / 64) and r["detail"]["process"]["p_up"]["lut"] >= g["lut"]
    # an estimate with one GELU table (no copies), or with it in block RAM, disagrees with the kernel
    one = [dict(m, copies=1) if m["name"] == "gelu_tab" else m for m in mems]
    assert check_memories(proj, one)["shape_mismatch"] == ["gelu_tab"]
    bram = [dict(m, impl="bram") if m["name"] == "gelu_tab" else m for m in mems]
    assert check_memories(proj, bram)["impl_mismatch"] == [("gelu_tab", "bram", "lutram")]


def test_check_cli_synth(variants, capsys):
    proj = variants("topk", "u280")
    assert cli_main(["check", str(proj), "--synth", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["synthesis"]["ok"] and set(out["synthesis"]["compilers"]) == set(COMPILERS)
    mem = out["synthesis"]["memories"]
    assert mem["ok"] and "gelu_tab" in mem["checked"] and "ctx_rq" in mem["checked"]


@pytest.mark.slow
def test_minilm_default_u280_compiles(tmp_path_factory):
    """The real minilm-l6 default project on u280 (the recipe's own config; only calibration shortened)."""
    from padless.build import compile_project
    out = tmp_path_factory.mktemp("synth-minilm") / "proj"
    compile_project("minilm-l6", board="u280", out=out, calib_count=32,
                    config={"quant": {"gptq_calibration": None}})
    _assert_compiles(compile_synthesis(out))
