import numpy as np
import pytest

from padless.errors import InputError
from padless.schedule.cost import Allocation
from padless.schedule.scheduler import compare, flow_shop_starts, run_method, simulate

M = dict(hidden_size=64, num_heads=4, head_dim=16, intermediate_size=256, num_layers=2, max_positions=128)


def test_flow_shop_hand_cases():
    lat = np.array([[3, 2], [1, 4], [2, 2]])
    assert flow_shop_starts(lat).tolist() == [[0, 3], [3, 5], [4, 9]]
    assert flow_shop_starts(lat, order=[1, 0, 2], handoff_cycles=1).tolist() == [[3, 8], [1, 3], [7, 11]]
    assert flow_shop_starts(np.zeros((0, 3), dtype=int)).shape == (0, 3)
    with pytest.raises(InputError):
        flow_shop_starts(lat, order=[0, 0, 1])


def test_fifo_simulation_equals_flow_shop():
    rng = np.random.default_rng(0)
    lat = rng.integers(1, 20, size=(12, 5))
    sim = simulate(lat[:, None, :], [list(range(12))], "fifo")
    assert np.array_equal(sim.starts[:, 0, :], flow_shop_starts(lat))


def _alloc(**kw):
    a = Allocation(pe={"qkv": 8, "out": 4, "ffn_up": 8, "ffn_down": 4, "attn": 4},
                   simd={"qkv": 8, "out": 8, "ffn_up": 8, "ffn_down": 16, "attn": 4}, select_lanes=8,
                   clock_MHz=200, wave_tokens=600)
    for k, v in kw.items():
        setattr(a, k, v)
    return a


@pytest.mark.parametrize("resident", [True, False])
def test_invariants(resident):
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 120, size=40)
    sp = {"attention": {"topk": 8}}
    r = run_method("padless", M, lengths, sp, _alloc(resident=resident, bandwidth_GBps=2.0))
    B, L, S = r.starts.shape
    assert (r.starts >= 0).all()                                      # every operator scheduled once
    fin = r.starts + r.durations
    flat_s = r.starts.reshape(B, -1)
    flat_f = fin.reshape(B, -1)
    assert (flat_s[:, 1:] >= flat_f[:, :-1]).all()                     # stage (and layer) order
    for s in range(S):                                                 # no double booking
        iv = sorted(zip(r.starts[:, :, s].ravel(), fin[:, :, s].ravel()))
        assert all(a2 >= f1 for (_, f1), (a2, _) in zip(iv, iv[1:]))
    if resident:  # work conserving: no stage idle while an operator of it is ready
        for s in range(S):
            busy = sorted(zip(r.starts[:, :, s].ravel(), fin[:, :, s].ravel()))
            ready = np.concatenate([np.zeros((B, 1), int), flat_f[:, :-1]], axis=1).reshape(B, L, S)[:, :, s]
            for j in range(B):
                for l in range(L):
                    t0, t1 = ready[j, l], r.starts[j, l, s]
                    covered = sum(max(0, min(f, t1) - max(a, t0)) for a, f in busy)
                    assert covered == t1 - t0


def test_padless_never_slower_than_baselines():
    rng = np.random.default_rng(2)
    for trial in range(3):
        lengths = np.clip(rng.lognormal(3.0, 0.6, size=60).astype(int), 2, 128)
        out = compare(M, lengths, {"attention": {"topk": 8}}, _alloc(resident=trial % 2 == 0), 1e12)
        for b, x in out["speedup_vs"].items():
            assert x >= 1.0, (b, x)
        assert 0 < out["utilization"] <= 1 and abs(out["bubble_fraction"] + out["utilization"] - 1) < 1e-9


def test_too_long_sequence():
    with pytest.raises(InputError):
        run_method("padless", M, [700], {}, _alloc())


def test_cli_schedule_lengths(tmp_path, capsys):
    import json

    from padless.cli import main

    (tmp_path / "manifest.json").write_text(json.dumps(
        {"model": M, "board": "zcu104", "sparsity": {"attention": {"topk": 8}}}))
    lens = tmp_path / "lengths.txt"
    lens.write_text("\n".join(str(n) for n in [5, 17, 60, 9, 120, 33, 8, 12]))
    assert main(["schedule", str(tmp_path), "--lengths", str(lens), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("utilization", "bubble_fraction", "throughput_seq_s", "throughput_tokens_s", "efficiency_vs_peak"):
        assert key in out and all(key in out["baselines"][b] for b in ("padded_max", "padded_batch", "bucketed"))
    assert set(out["speedup_vs"]) == {"padded_max", "padded_batch", "bucketed"}
    lens.write_text("5\nabc\n")
    assert main(["schedule", str(tmp_path), "--lengths", str(lens)]) == 2
    assert "not an integer" in capsys.readouterr().err
