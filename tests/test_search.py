"""padless search (issue 25): space, power model, device choice, and tiny-model searches end to end
(local process pool, in-process, Ray), resume after an interrupted trial, dedup, the project cache,
search.json / pareto.csv schema. Real parts throughout: the tiny model, real VADER text, the DSE, g++ csim."""
from __future__ import annotations

import csv
import json
import math
import os

import pytest

optuna = pytest.importorskip("optuna")

from padless.errors import InputError, UnknownBoardError  # noqa: E402
from padless.search import choice, power, results  # noqa: E402
from padless.search.space import DEFAULT_SPACE, candidate_key, compile_config, enumerate_space, parse_space  # noqa: E402
from padless.search.study import SearchOptions, open_study, run_search  # noqa: E402

#: u280 and kv260, one algorithm configuration: kv260's modeled batch-1 latency (~37 us for the tiny model at
#: 200 MHz) is above 1.25 x LAT, u280's (~15 us at its 150 MHz default clock) below: one compile, one trial
#: pruned by the model.
SPACE = {"boards": ["u280", "kv260"], "attention": ["dense"], "weights": ["off"], "quant": ["int8"], "memory": ["auto"]}
LAT = 20.0


def _opts(tmp, out, cache, **kw):
    base = dict(model="tiny", dataset="vader-movie", out=str(tmp / out), limit=40, test_limit=40, space=SPACE,
                trials=2, jobs=0, cache=str(cache), sim_limit=20, max_latency_us=LAT, min_agreement=0.5,
                progress=False, quiet=True)
    base.update(kw)
    return SearchOptions(**base)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("search-cache")


@pytest.fixture(scope="module")
def searched(tmp_path_factory, cache):
    """A tiny search end to end on the default local process pool (one worker process)."""
    tmp = tmp_path_factory.mktemp("search")
    doc = run_search(_opts(tmp, "out", cache, jobs=1))
    return tmp / "out", doc


# ------------------------------------------------------------------------------------------- fast, no model


def test_power_model_hand_computed():
    # u280: static 25 W; dynamic uW/MHz: dsp 8, bram 12, uram 20, lut 0.08 (boards/u280.yaml)
    p = power.power_w("u280", {"dsp": 1000, "bram_36k": 100, "uram": 10, "lut": 100_000}, 300.0, 0.5)
    # 1000*8*300*0.5e-6 = 1.2 W; 100*12*300*0.5e-6 = 0.18; 10*20*300*0.5e-6 = 0.03; 1e5*0.08*300*0.5e-6 = 1.2
    assert p["by_resource_W"] == pytest.approx({"dsp": 1.2, "bram_36k": 0.18, "uram": 0.03, "lut": 1.2})
    assert p["dynamic_W"] == pytest.approx(2.61) and p["total_W"] == pytest.approx(27.61)
    assert p["label"].startswith("estimated")
    # the plan's {"used": n} entries are read the same way; energy = W / (seq/s) in uJ
    q = power.power_w("kv260", {"dsp": {"used": 500, "limit": 1248}, "lut": {"used": 50_000}}, 200.0, 1.0)
    assert q["total_W"] == pytest.approx(3.5 + 500 * 8 * 200e-6 + 50_000 * 0.08 * 200e-6)
    assert power.energy_uj(10.0, 1000.0) == pytest.approx(10_000.0)
    with pytest.raises(ValueError):
        power.power_w("u280", {}, 300.0, 1.5)
    with pytest.raises(ValueError):
        power.energy_uj(10.0, 0.0)


def test_board_prices_and_power_cited():
    for b in ("u280", "u55c", "zcu104", "kv260", "u200", "u250", "zcu102", "pynq-z2"):
        f = power.board_facts(b)
        assert f["price"]["list_USD"] > 0 and f["price"]["source"]
        assert f["power"]["static_W"] > 0 and "UG440" in f["power"]["source"]
    # low end to high end: the choice prefers the cheaper board
    assert power.board_facts("kv260")["price"]["list_USD"] < power.board_facts("zcu104")["price"]["list_USD"] \
        < power.board_facts("u55c")["price"]["list_USD"] < power.board_facts("u280")["price"]["list_USD"]


def test_space_labels_configs_and_errors():
    sp = parse_space(None)
    assert sp.size() == 4 * 5 * 4 * 3 * 2 == len(enumerate_space(sp))
    assert len({candidate_key(p) for p in enumerate_space(sp)}) == sp.size()
    cfg = compile_config(sp, {"board": "kv260", "attention": "topk16", "weights": "bb0.5/16", "quant": "act16",
                              "memory": "streamed"})
    assert cfg == {"attention": {"topk": 16}, "weights": {"sparsity": 0.5, "bank": 16},
                   "quant": {"zero_point": [], "precision": {"act": 16}}, "schedule": {"weights": "streamed"}}
    assert compile_config(sp, {"board": "u280", "attention": "dense", "weights": "dense", "quant": "zp-act",
                               "memory": "resident"}) == \
        {"quant": {"zero_point": ["act"]}, "schedule": {"weights": "resident"}}
    # auto: the DSE takes the faster placement on the mix, so no schedule key
    auto = parse_space({"memory": ["auto"]})
    assert compile_config(auto, {"board": "u280", "attention": "dense", "weights": "dense", "quant": "int8",
                                 "memory": "auto"}) == {"quant": {"zero_point": []}}
    pp = compile_config(sp, {"board": "u280", "attention": "dense", "weights": "bb0.5/16-pe-pair", "quant": "int8",
                             "memory": "streamed"})
    assert pp["weights"] == {"sparsity": 0.5, "bank": 16, "pattern": "pe-pair"}
    with pytest.raises(InputError, match="weight pattern"):
        parse_space({"weights": [{"sparsity": 0.5, "bank": 16, "pattern": "diagonal"}]})
    with pytest.raises(InputError, match="memory choice"):
        parse_space({"memory": ["hbm"]})
    with pytest.raises(InputError, match="base sets schedule"):
        parse_space({"base": {"schedule": {"weights": "resident"}}})
    # the space round-trips through its JSON form (a resumed search compares it)
    assert parse_space(json.loads(json.dumps(sp.to_dict()))).choices() == sp.choices()
    with pytest.raises(InputError, match="exclude each other"):
        parse_space({"quant": [{"zero_point": ["act"], "precision": {"act": 16}}]})
    with pytest.raises(UnknownBoardError, match="unknown board"):
        parse_space({"boards": ["u9999"]})
    with pytest.raises(InputError, match="unknown keys"):
        parse_space({"bords": ["u280"]})
    with pytest.raises(InputError, match="varies"):
        parse_space({"base": {"attention": {"topk": 8}}})
    with pytest.raises(InputError, match="not in the search space"):
        compile_config(sp, {"board": "u280", "attention": "topk7", "weights": "dense", "quant": "int8",
                            "memory": "streamed"})
    assert DEFAULT_SPACE["boards"] == ["u280", "u55c", "zcu104", "kv260"]


def _t(n, board, status="complete", **o):
    return {"number": n, "config": {"board": board, "attention": "dense", "weights": "dense", "quant": "int8",
                                    "memory": "auto"},
            "status": status, "objectives": o}


def test_device_choice_cheapest_feasible_and_unmet_message():
    cons = {"min_agreement": 0.97, "max_latency_us": 200.0}
    trials = [_t(0, "u280", agreement=0.99, cosine=0.99, throughput_seq_s=9000.0, latency_us=80.0, energy_uJ=3.0),
              _t(1, "u280", agreement=0.98, cosine=0.99, throughput_seq_s=12000.0, latency_us=60.0, energy_uJ=2.0),
              _t(2, "u55c", agreement=0.98, cosine=0.99, throughput_seq_s=5000.0, latency_us=150.0, energy_uJ=4.0),
              _t(3, "kv260", agreement=0.96, cosine=0.99, throughput_seq_s=900.0, latency_us=190.0, energy_uJ=5.0),
              _t(4, "zcu104", "pruned", model={"latency_us": 900.0})]
    best = choice.best_per_board(trials, cons, ["u280", "u55c", "zcu104", "kv260"])
    assert best == {"u280": 1, "u55c": 2, "zcu104": None, "kv260": None}
    d = choice.choose_device(trials, cons, ["u280", "u55c", "zcu104", "kv260"])
    assert d["board"] == "u55c" and d["number"] == 2 and d["price_USD"] == 4745
    # no board meets latency <= 50 us: named, with the best value and by how much
    cons2 = {"min_agreement": 0.97, "max_latency_us": 50.0}
    assert choice.choose_device(trials, cons2, ["u280", "u55c"]) is None
    un = choice.unmet(trials, cons2)
    assert [u["constraint"] for u in un] == ["max_latency_us"]
    assert un[0]["best"] == 60.0 and un[0]["by"] == pytest.approx(10.0) and un[0]["board"] == "u280"
    assert "no board meets latency <= 50 us: the best is 60.0 us (u280, trial #1, simulated), 10.0 us over" in un[0]["text"]
    # each constraint met alone but never together
    cons3 = {"min_agreement": 0.985, "max_latency_us": 70.0}
    un3 = choice.unmet(trials, cons3)
    assert un3[0]["constraint"] == "all together" and "none meets all" in un3[0]["text"]


# ------------------------------------------------------------------------------------- tiny model searches


@pytest.mark.slow
def test_search_end_to_end_prunes_and_writes_schema(searched):
    out, doc = searched
    assert doc["format"] == "padless-search" and doc["version"] == 1
    st = {t["config"]["board"]: t for t in doc["trials"]}
    assert set(st) == {"u280", "kv260"}
    # kv260 pruned by the cycle model before compiling; u280 compiled, simulated, measured
    assert st["kv260"]["status"] == "pruned" and st["kv260"]["stage"] == "model" and st["kv260"]["project"] is None
    assert st["kv260"]["objectives"]["model"]["latency_us"] > LAT * 1.25
    u = st["u280"]
    assert u["status"] == "complete" and u["feasible"]
    o = u["objectives"]
    for k in ("agreement", "cosine", "throughput_seq_s", "latency_us", "latency_p99_us", "energy_uJ", "power_W",
              "clock_MHz", "resources"):
        assert k in o, k
    assert 0.5 <= o["agreement"] <= 1 and 0.9 < o["cosine"] <= 1.0001
    assert o["latency_us"] <= LAT and o["latency_p99_us"] >= o["latency_us"] and o["throughput_seq_s"] > 0
    from padless.boards import load_board
    assert o["clock_MHz"] == load_board("u280").clock_MHz and o["resources"]["dsp"] > 0
    # energy = the power model at the simulated activity / throughput
    pw = power.power_w("u280", o["resources"], o["clock_MHz"], o["activity"])
    assert o["energy_uJ"] == pytest.approx(pw["total_W"] / o["throughput_seq_s"] * 1e6)
    assert u["sources"]["throughput_seq_s"].startswith("simulated") and u["sources"]["energy_uJ"].startswith("estimated")
    assert u["sources"]["agreement"].startswith("simulated")
    # the device: u280 (kv260 cannot meet the latency), with its project and test-split fidelity
    d = doc["device"]
    assert d["board"] == "u280" and d["number"] == u["number"] and doc["unmet"] == []
    assert (out / "configs").is_dir() and d["rebuild"].startswith("padless compile tiny --board u280 --config ")
    assert d["test"]["split"] == "vader-movie-test" and d["test"]["n"] == 40
    assert (doc["counts"]["complete"], doc["counts"]["pruned"], doc["counts"]["pruned_by_model"]) == (1, 1, 1)
    # files: search.json equals the returned document's trials; pareto.csv has the front; the report its plots
    on_disk = json.loads((out / "search.json").read_text())
    assert [t["number"] for t in on_disk["trials"]] == [t["number"] for t in doc["trials"]]
    for t in on_disk["trials"]:
        assert set(t) >= {"number", "config", "objectives", "sources", "status"}
        assert t["status"] in ("complete", "pruned", "failed")
    rows = list(csv.DictReader((out / "pareto.csv").open()))
    assert tuple(rows[0]) == results.CSV_COLUMNS and [int(r["number"]) for r in rows] == doc["pareto"] == [u["number"]]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "agreement vs energy" in html
    from padless.project import load_project
    assert load_project(u["project"]).manifest["board"] == "u280"


@pytest.mark.slow
def test_baseline_beside_the_choice(tmp_path, cache, searched, capsys):
    """--baseline BOARD: the default project (the recipe's quant, no sparsity, the DSE's placement) on BOARD,
    evaluated by the trials' own stages with no constraint, with its test split; printed beside the choice
    and kept by --report."""
    from padless.cli import main
    doc = run_search(_opts(tmp_path, "base", cache, baseline="u280"))
    b = doc["baseline"]
    assert b["board"] == "u280" and b["config"] == {} and b["weights"] in ("resident", "streamed")
    o = b["objectives"]
    for k in ("agreement", "cosine", "throughput_seq_s", "latency_us", "energy_uJ", "clock_MHz", "model"):
        assert k in o, k
    assert b["sources"]["latency_us"].startswith("simulated") and b["test"]["n"] == 40
    from padless.project import load_project
    man = load_project(b["project"]).manifest
    assert man["board"] == "u280" and not (man.get("sparsity") or {}).get("attention")
    line = results.baseline_text(doc)
    assert line.startswith("baseline (default project on u280") and "test split (40 texts)" in line
    assert any(x.startswith("Beside it, baseline") for x in results.summary_lines(doc))
    capsys.readouterr()
    assert main(["search", "--report", str(tmp_path / "base")]) == 0
    assert "Beside it, baseline (default project on u280" in capsys.readouterr().out
    assert json.loads((tmp_path / "base" / "search.json").read_text())["baseline"]["board"] == "u280"


@pytest.mark.slow
def test_cache_hit_dedup_and_exhausted_space(tmp_path, cache, searched):
    """The same configurations again in a new search: the compiled project comes from the cache, and asking
    for more trials than the space holds evaluates each configuration once."""
    doc = run_search(_opts(tmp_path, "again", cache, trials=6))
    keys = [candidate_key(t["config"]) for t in doc["trials"]]
    assert len(keys) == len(set(keys)) == 2          # no duplicate evaluation, space exhausted at 2
    u = next(t for t in doc["trials"] if t["config"]["board"] == "u280")
    assert u["cache_hit"] is True and u["project"] == searched[1]["device"]["project"]
    assert doc["duplicates"] >= 1


@pytest.mark.slow
def test_resume_requeues_interrupted_trial(tmp_path, cache, searched):
    """A driver killed mid-trial leaves a RUNNING trial in the journal: the resumed search marks it failed
    (interrupted), re-queues its params and evaluates them once; nothing lost, nothing counted twice."""
    out = tmp_path / "res"
    out.mkdir()
    study = open_study(out)
    from optuna.distributions import CategoricalDistribution
    from padless.search.study import _distributions
    sp = parse_space(SPACE)
    study.enqueue_trial({"board": "u280", "attention": "dense", "weights": "dense", "quant": "int8", "memory": "auto"})
    t = study.ask(_distributions(sp))      # left RUNNING: the driver "died" here
    assert t.params["board"] == "u280" and isinstance(_distributions(sp)["board"], CategoricalDistribution)
    doc = run_search(_opts(tmp_path, "res", cache, resume=True, trials=2))
    assert [r["number"] for r in doc["requeued"]] == [t.number]
    assert doc["run"]["interrupted_requeued"] == [t.number]
    done = [x for x in doc["trials"] if x["status"] in ("complete", "pruned")]
    assert len(done) == 2 and len({candidate_key(x["config"]) for x in done}) == 2
    again = next(x for x in done if x["config"]["board"] == "u280")
    assert again["requeued_from"] == t.number and again["status"] == "complete"
    # resuming a finished search runs nothing more and keeps the same trials
    doc2 = run_search(_opts(tmp_path, "res", cache, resume=True, trials=2))
    assert [x["number"] for x in doc2["trials"]] == [x["number"] for x in doc["trials"]]
    # without --resume an existing search is refused; with other options a resume is refused
    with pytest.raises(InputError, match="--resume"):
        run_search(_opts(tmp_path, "res", cache))
    with pytest.raises(InputError, match="constraints"):
        run_search(_opts(tmp_path, "res", cache, resume=True, max_latency_us=99.0))


@pytest.mark.slow
def test_no_board_meets_latency(tmp_path, cache, capsys):
    """A latency no board reaches: every candidate pruned by the model, no device, the message says which
    constraint and by how much (and the CLI exits 1)."""
    from padless.cli import main
    rc = main(["search", "tiny", "--dataset", "vader-movie", "--limit", "40", "--test-limit", "40", "--out",
               str(tmp_path / "none"), "--cache", str(cache), "--boards", "u280,kv260", "--max-latency-us", "1",
               "--trials", "2", "--jobs", "0", "--quiet"])
    assert rc == 1
    doc = json.loads((tmp_path / "none" / "search.json").read_text())
    assert doc["device"] is None and doc["counts"]["pruned_by_model"] == 2
    (u,) = doc["unmet"]
    best = min(doc["trials"], key=lambda t: t["objectives"]["model"]["latency_us"])
    assert u["constraint"] == "max_latency_us" and u["source"] == "modeled"
    assert u["board"] == best["config"]["board"] and u["best"] == pytest.approx(best["objectives"]["model"]["latency_us"])
    assert u["by"] == pytest.approx(u["best"] - 1.0) and "no board meets latency <= 1 us" in u["text"]
    # --report re-renders the same document from the journal
    capsys.readouterr()
    assert main(["search", "--report", str(tmp_path / "none")]) == 0
    assert "no device: no board meets latency <= 1 us" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    from padless.cli import main
    assert main(["search", "tiny", "--dataset", "vader-movie", "--out", str(tmp_path / "x"),
                 "--min-agreement", "1.5"]) == 2
    assert "padless: error: '1.5' is not a fraction in [0, 1]" in capsys.readouterr().err
    assert main(["search", "tiny", "--out", str(tmp_path / "x")]) == 2
    assert "needs MODEL, --dataset NAME and --out DIR" in capsys.readouterr().err
    assert main(["search", "--report", str(tmp_path / "nothing")]) == 2
    assert "no search there" in capsys.readouterr().err
    # the calibration text is not a held-out split
    assert main(["search", "tiny", "--dataset", "vader-tweets", "--out", str(tmp_path / "y"), "--jobs", "0"]) == 2
    assert "calibration" in capsys.readouterr().err
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    assert main(["search", "tiny", "--dataset", "vader-movie", "--out", str(link / "z"), "--jobs", "0"]) == 2
    assert "symbolic link" in capsys.readouterr().err


@pytest.mark.slow
def test_search_over_local_ray(tmp_path, cache, searched):
    """Each trial a Ray task (CPU reservation 1) on a local Ray instance the test starts and stops."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        doc = run_search(_opts(tmp_path, "ray", cache, use_ray=True, jobs=1,
                               space={**SPACE, "boards": ["u280"]}, trials=1))
    finally:
        ray.shutdown()
    assert doc["run"]["executor"] == "ray"
    (t,) = doc["trials"]
    assert t["status"] == "complete" and t["cache_hit"] is True and math.isfinite(t["objectives"]["throughput_seq_s"])
    assert doc["device"]["board"] == "u280"


def test_pool_reports_a_killed_worker_as_lost():
    """A worker process killed mid-trial (SIGKILL) comes back as a lost worker, which the driver re-queues;
    the pool is replaced for the next trials."""
    import os
    import signal
    import time

    from padless.search.runner import PoolExecutor
    ex = PoolExecutor(1)
    try:
        h = ex.submit({"model": "tiny"})
        t0 = time.monotonic()
        while not ex._pool._processes and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        os.kill(next(iter(ex._pool._processes)), signal.SIGKILL)
        _, res = ex.wait_any([h])
        assert res["status"] == "failed" and res["lost_worker"] is True and "died" in res["error"]
        assert ex._pool is None
        # the next trial runs in a fresh pool (a bad payload: failed, but not lost)
        _, res2 = ex.wait_any([ex.submit({})])
        assert res2["status"] == "failed" and not res2.get("lost_worker")
    finally:
        ex.close()


def test_journal_never_written_through_a_link(tmp_path):
    """Optuna appends to DIR/journal.log in place: a link there (or at its lock) is refused, the target untouched."""
    import os

    from padless.fsutil import WriteError
    victim = tmp_path / "victim.log"
    victim.write_text("mine\n")
    for name in ("journal.log", "journal.log.lock"):
        out = tmp_path / name.replace(".", "_")
        out.mkdir()
        os.symlink(victim, out / name)
        with pytest.raises(WriteError, match="symbolic link"):
            open_study(out)
    assert victim.read_text() == "mine\n"


def test_cache_sweeps_folders_of_killed_workers(tmp_path):
    """A worker killed mid-compile leaves its temporary project and staging folders in the cache; the next
    compile removes those of dead processes of this machine, and leaves a live process's, another machine's,
    other names and links alone."""
    import subprocess

    from padless.search import objectives as ob
    p = subprocess.Popen(["true"])
    p.wait()
    dead, live, key = p.pid, os.getpid(), "0123456789abcdef01234567"
    names = {f".{key}.tmp-{ob._HOST}-{dead}-1": False, f"..{key}.tmp-{ob._HOST}-{dead}-1.padless-staging-x1": False,
             f".{key}.tmp-{ob._HOST}-{live}-2": True, f".{key}.tmp-otherhost-{dead}-3": True, key: True}
    for n in names:
        (tmp_path / n).mkdir()
        (tmp_path / n / "f").write_text("x")
    target = tmp_path / "outside"
    target.mkdir()
    (tmp_path / f".{key}.tmp-{ob._HOST}-{dead}-4").symlink_to(target)
    gone = ob._sweep_dead(tmp_path)
    assert sorted(gone) == sorted(n for n, keep in names.items() if not keep)
    for n, keep in names.items():
        assert (tmp_path / n).is_dir() == keep
    assert target.is_dir() and (tmp_path / f".{key}.tmp-{ob._HOST}-{dead}-4").is_symlink()


def test_feasible_configuration_is_queued_on_cheaper_boards():
    """Fidelity does not depend on the board, so a configuration that meets every constraint is tried on
    each cheaper board of the space (cheapest first), leaving out what is evaluated, in flight or queued."""
    from padless.search.study import cheaper_boards
    sp = parse_space(None)
    p = {"board": "u280", "attention": "topk16", "weights": "dense", "quant": "int8", "memory": "resident"}
    got = cheaper_boards(sp, p, set())
    assert [q["board"] for q in got] == ["kv260", "zcu104", "u55c"]
    assert all({k: v for k, v in q.items() if k != "board"} == {k: v for k, v in p.items() if k != "board"} for q in got)
    taken = {candidate_key({**p, "board": "zcu104"})}
    assert [q["board"] for q in cheaper_boards(sp, p, taken)] == ["kv260", "u55c"]
    assert cheaper_boards(sp, {**p, "board": "kv260"}, set()) == []


def test_base_tokens_reach_the_cheap_stage():
    """Token reduction given through the space's base (not a knob yet) is planned by the cheap stage's DSE:
    the engine carries it and the modeled throughput on the mix is higher than without it."""
    from padless.search.objectives import cheap_stage
    shape = {"name": "minilm-l6", "hidden_size": 384, "num_heads": 12, "head_dim": 32, "intermediate_size": 1536,
             "num_layers": 6, "max_positions": 512, "max_seq_length": 256}
    work = {"lengths": [27] * 60 + [53] * 10, "p50": 27}
    params = {"board": "u280", "attention": "dense", "weights": "dense", "quant": "int8", "memory": "auto"}
    tr = parse_space({"boards": ["u280"], "memory": ["auto"], "base": {"tokens": {"layers": [2, 4], "keep": 0.7}}})
    plain = parse_space({"boards": ["u280"], "memory": ["auto"]})
    a = cheap_stage(shape, "u280", compile_config(tr, params), work, {})
    b = cheap_stage(shape, "u280", compile_config(plain, params), work, {})
    assert a["plan"]["engine"]["tokens"] == {"layers": [2, 4], "keep": 0.7} and not b["plan"]["engine"].get("tokens")
    assert a["model"]["throughput_seq_s"] > 1.2 * b["model"]["throughput_seq_s"]
