import numpy as np
import pytest

from padless.boards import load_board
from padless.schedule.dse import BoardTooSmallError, plan

MINILM = dict(name="minilm-l6", hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536,
              num_layers=6, max_positions=512)


@pytest.mark.parametrize("board", ["u280", "zcu104"])
def test_plan_within_budget(board):
    lengths = np.random.default_rng(0).integers(8, 80, size=200)
    sp = {"attention": {"topk": 32}, "weights": {"sparsity": 0.5, "bank": 16}}
    p = plan(MINILM, board, sp, lengths)
    b = load_board(board)
    used = p["resources"]["used"]
    assert used["dsp"] <= 0.8 * b.dsp and used["lut"] <= 0.8 * b.lut
    assert used["onchip_bytes"] <= 0.95 * (b.bram_36k * 4096 + b.uram * 32768)
    assert used["dsp"] >= 0.5 * 0.8 * b.dsp  # the budget is actually spent
    cyc = [v["expected_cycles"] for v in p["stages"].values() if v["expected_cycles"] > 0]
    assert max(cyc) / min(cyc) < 1.6  # stages balanced
    assert p["weights"] == ("resident" if board == "u280" else "streamed")


def test_too_small_board():
    with pytest.raises(BoardTooSmallError) as e:
        plan(MINILM, "pynq-z2", {}, [64])
    assert "MB" in str(e.value) and "pynq-z2" in str(e.value)


def test_select_refinement_simulates_lane_choices():
    """Step 4 (streamed weights, top-k): the kept select lanes are the best simulated utilization among the
    tried multiples, fit the LUT budget, and the record agrees with a fresh simulation of the plan."""
    from padless.schedule.cost import Allocation
    from padless.schedule.scheduler import metrics, run_method
    rng = np.random.default_rng(1)  # a long-tailed mix: mostly short, a few long sequences
    lengths = np.where(rng.random(120) < 0.1, rng.integers(300, 512, 120), rng.integers(10, 60, 120))
    sp = {"attention": {"topk": 32}, "weights": {"sparsity": 0.5, "bank": 16}}
    p = plan(MINILM, "zcu104", sp, lengths)
    ref = p["select_refinement"]
    assert ref is not None and ref["sequences"] == 120 and len(ref["tried"]) >= 2
    utils = {t["lanes"]: t["utilization"] for t in ref["tried"]}
    assert p["allocation"]["select_lanes"] == ref["lanes"] == max(utils, key=utils.get)
    assert p["resources"]["used"]["lut"] <= 0.8 * load_board("zcu104").lut
    res = run_method("padless", MINILM, lengths, sp, Allocation.from_dict(p["allocation"]))
    assert metrics(res, lengths, 0.0, 200.0, 1.0)["utilization"] == pytest.approx(utils[ref["lanes"]])
    unrefined = plan(MINILM, "zcu104", sp, lengths, refine=False)
    assert unrefined["select_refinement"] is None
    assert unrefined["allocation"]["select_lanes"] == min(utils)  # step 3's lanes are the first tried
    # resident weights (U280) and dense attention skip the step
    assert plan(MINILM, "u280", sp, lengths)["select_refinement"] is None
    assert plan(MINILM, "zcu104", {"weights": sp["weights"]}, lengths)["select_refinement"] is None
