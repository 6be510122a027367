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
