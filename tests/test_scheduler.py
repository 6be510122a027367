"""The length-aware order of the engine's calls and the padded baselines (padless.schedule.scheduler)."""
import numpy as np
import pytest

from padless.errors import InputError
from padless.schedule.engine import engine_config
from padless.schedule.scheduler import compare, engine_order, flow_shop_starts, padded_lengths

M = dict(name="t", hidden_size=64, num_heads=4, head_dim=16, intermediate_size=256, num_layers=2, max_positions=128)
ALLOC = {"pe": {"qkv": 8, "out": 4, "ffn_up": 8, "ffn_down": 4, "attn": 2},
         "simd": {"qkv": 16, "out": 16, "ffn_up": 16, "ffn_down": 64}, "select_lanes": 2, "wave_tokens": 600}


def _cfg(attention=None):
    return engine_config(M, {"attention": attention or {}}, "zcu104", ALLOC)


def test_flow_shop_hand_cases():
    lat = np.array([[3, 2], [1, 4], [2, 2]])
    assert flow_shop_starts(lat).tolist() == [[0, 3], [3, 5], [4, 9]]
    assert flow_shop_starts(lat, order=[1, 0, 2], handoff_cycles=1).tolist() == [[3, 8], [1, 3], [7, 11]]
    assert flow_shop_starts(np.zeros((0, 3), dtype=int)).shape == (0, 3)
    with pytest.raises(InputError):
        flow_shop_starts(lat, order=[0, 0, 1])


def test_engine_order_is_johnsons_rule():
    cfg = _cfg({"topk": 8})
    lens = [5, 120, 17, 64, 9, 100, 33, 2, 128, 40]
    o = engine_order(lens, cfg)
    assert sorted(o.tolist()) == list(range(len(lens)))
    assert engine_order(lens, cfg, "arrival").tolist() == list(range(len(lens)))
    assert [lens[i] for i in engine_order(lens, cfg, "longest")] == sorted(lens, reverse=True)
    assert engine_order(lens).tolist() == list(range(len(lens)))  # no engine: arrival order
    from padless.schedule.scheduler import _front_back
    front, back = _front_back(cfg, np.asarray(lens)[o])
    first = front < back
    k = int(first.sum())
    assert first[:k].all() and not first[k:].any()             # front < back first ...
    assert np.all(np.diff(front[:k]) >= 0)                      # ... by increasing front work
    assert np.all(np.diff(back[k:]) <= 0)                       # then by decreasing back work
    with pytest.raises(InputError, match="unknown order"):
        engine_order(lens, cfg, "random")


def test_padded_lengths():
    lens = [5, 17, 60, 9, 120, 33]
    assert padded_lengths(lens, "padded_max") == [120] * 6
    assert padded_lengths(lens, "padded_batch", batch_size=4) == [60, 60, 60, 60, 120, 120]
    assert padded_lengths(lens, "padded_fixed", fixed_length=32) == [32, 32, 60, 32, 120, 33]
    with pytest.raises(InputError):
        padded_lengths(lens, "bucketed")


@pytest.mark.parametrize("attention", [None, {"topk": 8}])
def test_padless_never_slower_than_padding(attention):
    cfg = _cfg(attention)
    rng = np.random.default_rng(0)
    lens = rng.integers(3, 128, 60).tolist()
    out = compare(cfg, lens, peak_macs=1e12, batch_size=8, fixed_length=128)
    for b in ("padded_max", "padded_batch", "padded_fixed"):
        assert out["speedup_vs"][b] >= 1.0
        assert out["baselines"][b]["padded_tokens"] > 0
    assert out["padded_tokens"] == 0 and out["tokens"] == sum(lens)
    assert set(out["stage_busy"]) >= {"p_qkv", "p_select", "p_attn_qk", "p_out", "p_up", "p_down"}
    assert 0 < out["efficiency_vs_peak"] < 1


def test_cli_schedule_lengths(tmp_path, capsys, tiny_project):
    import json

    from padless.cli import main

    lens = tmp_path / "lengths.txt"
    lens.write_text("\n".join(str(n) for n in [5, 17, 60, 9, 120, 33, 8, 12]))
    assert main(["schedule", str(tiny_project), "--lengths", str(lens), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("throughput_seq_s", "throughput_tokens_s", "efficiency_vs_peak", "cycles", "stage_busy"):
        assert key in out
    for b in ("padded_max", "padded_batch", "padded_fixed"):
        assert "throughput_seq_s" in out["baselines"][b]
    assert set(out["speedup_vs"]) == {"padded_max", "padded_batch", "padded_fixed"} and out["modeled"] is True
    lens.write_text("5\nabc\n")
    assert main(["schedule", str(tiny_project), "--lengths", str(lens)]) == 2
    assert "not an integer" in capsys.readouterr().err
