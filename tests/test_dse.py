"""Design-space exploration of the streaming engine (padless.schedule.dse.plan)."""
import pytest

from padless.schedule.dse import BoardTooSmallError, plan
from padless.schedule.engine import EngineConfig, resources

MINILM = dict(name="minilm", hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536, num_layers=6,
              max_positions=512, max_seq_length=256)
SHORT = [27] * 60 + [12] * 20 + [45] * 20
LONG = [200] * 30 + [256] * 20 + [120] * 20


@pytest.mark.parametrize("board", ["u280", "u55c", "zcu104", "kv260"])
def test_default_minilm_fits_and_stays_within_caps(board):
    p = plan(MINILM, board, {"attention": {"density": 0.25, "min_k": 32}}, SHORT)
    cfg = EngineConfig.from_dict(p["engine"])
    r = resources(cfg, board)
    assert r["fits"]
    from padless.boards import load_board
    b = load_board(board)
    assert r["dsp"]["used"] <= 0.8 * b.dsp and r["lut"]["used"] <= 0.8 * b.lut and r["ff"]["used"] <= 0.8 * b.ff
    assert p["estimate"]["throughput_seq_s"] > 0 and 0 < p["estimate"]["efficiency_vs_peak"] < 1
    # every SLR under the plan's caps (one SLR on the Zynq parts)
    assert p["resources"]["slr"]["fits"] and len(p["resources"]["slr"]["slrs"]) == max(1, len(b.slrs))
    for s in p["resources"]["slr"]["slrs"]:
        for k in ("dsp", "lut", "ff"):
            assert s["used"][k] <= 0.8 * s["limit"][k]
        for k in ("bram_36k", "uram"):
            assert s["used"][k] <= 0.9 * s["limit"][k]
    if board in ("zcu104", "kv260"):
        assert p["weights"] == "streamed"


def test_long_texts_buy_selection_and_attention():
    sp = {"attention": {"density": 0.25, "min_k": 32}}
    short = EngineConfig.from_dict(plan(MINILM, "u280", sp, SHORT)["engine"])
    long = EngineConfig.from_dict(plan(MINILM, "u280", sp, LONG)["engine"])
    assert long.sel_lanes > short.sel_lanes and long.att_pe >= short.att_pe


def test_board_too_small():
    with pytest.raises(BoardTooSmallError, match="pynq-z2"):
        plan(MINILM, "pynq-z2", {}, SHORT)


@pytest.mark.parametrize("board", ["u280", "zcu104"])
def test_estimate_is_the_schedule_model_of_the_host_calls(board):
    """The DSE's estimate runs the expected lengths as the host runs them (its calls, each in the
    scheduler's order), so it equals `padless schedule` on the same input -- which the timed csim holds
    to the kernel (tests/test_timed_csim.py). A heavy-tailed real mix (fortunes, truncated at 256) in
    arrival order was off by 10-25% before."""
    from padless.boards import load_board
    from padless.data.datasets import load_dataset
    from padless.models import Tokenizer, resolve_model
    from padless.schedule.engine import mac_per_dsp
    from padless.schedule.scheduler import compare
    spec, _ = resolve_model("minilm-l6")
    texts = load_dataset("fortunes", limit=400).texts
    lens = [len(i) for i in Tokenizer(spec.tokenizer_path, 256).encode(texts, truncate=True)]
    p = plan(MINILM, board, {}, lens)
    cfg = EngineConfig.from_dict(p["engine"])
    b = load_board(board)
    model = compare(cfg, lens, b.dsp * mac_per_dsp(b, cfg.sparse) * cfg.clock_MHz * 1e6)
    assert p["estimate"]["throughput_seq_s"] == pytest.approx(model["throughput_seq_s"], rel=0.01)


def test_weight_placement_resident_or_streamed():
    """``weights=`` forces the placement: resident has no weight load in a run (batch-1 latency), streamed
    loads each layer before its region; the throughput choice (None) is one of the two; a resident
    minilm-l6 does not fit zcu104 (every layer's weights on chip) and says so; a bad value is refused."""
    from padless.errors import InputError
    from padless.schedule.cost import call_cycles
    from padless.schedule.engine import layer_fixed_cycles
    res = plan(MINILM, "u280", None, SHORT, weights="resident")
    stm = plan(MINILM, "u280", None, SHORT, weights="streamed")
    auto = plan(MINILM, "u280", None, SHORT)
    assert res["weights"] == "resident" and res["allocation"]["resident"] is True
    assert stm["weights"] == "streamed" and auto["weights"] in ("resident", "streamed")
    rc, sc = EngineConfig.from_dict(res["engine"]), EngineConfig.from_dict(stm["engine"])
    assert layer_fixed_cycles(rc, 1)["weight_load"] == 0 and layer_fixed_cycles(sc, 1)["weight_load"] > 0
    # batch-1 latency of a median-length sequence: the streamed call pays every layer's load
    assert call_cycles(sc, [27]).cycles - call_cycles(rc, [27]).cycles > 0
    assert call_cycles(sc, [27]).cycles >= sc.layers * layer_fixed_cycles(sc, 1)["weight_load"]
    # the throughput choice is the faster of the two on the mix
    faster = min((res, stm), key=lambda p: p["estimate"]["cycles_per_sequence"])
    assert auto["weights"] == faster["weights"]
    with pytest.raises(BoardTooSmallError, match="every layer of weights on chip"):
        plan(MINILM, "zcu104", None, SHORT, weights="resident")
    # under U280's totals, over one SLR's: the message says which SLR and what
    with pytest.raises(BoardTooSmallError, match=r"under the board's totals, but a unit's memories sit in one SLR: SLR\d needs"):
        plan(MINILM, "u280", {"attention": {"topk": 16}, "weights": {"sparsity": 0.25, "bank": 16}}, SHORT,
             weights="resident")
    with pytest.raises(InputError, match="weights placement"):
        plan(MINILM, "u280", None, SHORT, weights="hbm")


@pytest.mark.parametrize("placement", ["resident", "streamed"])
def test_compile_config_places_the_weights(tmp_path, placement):
    """``schedule: {weights: ...}`` reaches the plan and the generated kernel (config.h PADLESS_RESIDENT), and
    the csim of that kernel equals golden on real sentences."""
    import numpy as np

    from padless.build import compile_project
    from padless.data.datasets import load_dataset
    from padless.project import load_project
    from padless.runtime import Accelerator
    out = tmp_path / placement
    compile_project("tiny", board="u280", out=out, config={"schedule": {"weights": placement}})
    man = load_project(out).manifest
    assert man["schedule"]["weights"] == placement and man["schedule"]["allocation"]["resident"] == (placement == "resident")
    cfg_h = next(out.rglob("config.h")).read_text()
    assert f"#define PADLESS_RESIDENT {1 if placement == 'resident' else 0}" in cfg_h
    texts = load_dataset("vader-movie", limit=6).texts
    gold = Accelerator(out, backend="golden").encode(texts)
    csim = Accelerator(out, backend="csim").encode(texts)
    assert all(np.array_equal(a, b) for a, b in zip(gold, csim))
