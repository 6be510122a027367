"""What a trial measures, cheap before expensive (docs/search.md "Objectives").

1. **Cheap stage** (:func:`cheap_stage`, in the search driver, milliseconds to seconds): the DSE's plan for
   the board and the dataset's length mix (:func:`padless.schedule.dse.plan`: folding, resources, fit), the
   cycle model's throughput on the mix and latency of one median-length sequence alone
   (:func:`padless.schedule.cost.stream_cycles`) and an upper-bound power. A candidate that does not fit,
   or whose modeled latency / throughput misses a constraint by more than the model's error margin, or whose
   fidelity is already known (same model, quantization and sparsity on another board) and misses a
   constraint, is pruned before it is compiled.
2. **Expensive stage** (:func:`evaluate`, in a worker process or a Ray task): ``padless compile`` through
   :func:`padless.build.compile_project` into a project cache keyed by a hash of (model, calibration, quant,
   sparsity, board, plan); the timed C-simulation (:func:`padless.runtime.profile.profile`) of the length
   mix (throughput), of one median-length and one p99-length sequence alone (batch-1 latency); then, only
   when those meet the constraints, the fidelity against fp32 on the selection split
   (:func:`padless.commands.eval.evaluate` with the golden backend, bit-exact with the csim: docs/numerics.md),
   cached per (model, quant, sparsity, selection split) since no board changes a bit of it; and the energy
   per sequence from :mod:`.power` at the simulated activity.

Every objective carries its source in ``sources``.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, PadlessError
from ..schedule.engine import gelu_of
from ._io import atomic_write
from .power import LABEL as POWER_LABEL
from .power import energy_uj, power_w
from .space import config_hash

__all__ = ["Workload", "make_workload", "cheap_stage", "evaluate", "SOURCES", "MODEL_MARGIN"]

#: The cycle model's error margin for pruning: a candidate is pruned before compiling only when its modeled
#: latency exceeds the limit (or its modeled throughput falls short) by more than this factor (the model
#: agrees with the timed csim within a few percent on the length mixes of docs/performance-model.md).
MODEL_MARGIN = 1.25

SOURCES = {
    "agreement": "simulated: golden integer model (bit-exact with the HLS csim) vs fp32, probe decisions on the selection split",
    "cosine": "simulated: golden integer model vs fp32, mean cosine of sentence embeddings on the selection split",
    "throughput_seq_s": "simulated: timed C-simulation of the generated HLS on the selection split's length mix",
    "latency_us": "simulated: timed C-simulation, one median-length sequence alone (batch 1)",
    "latency_p99_us": "simulated: timed C-simulation, one p99-length sequence alone (batch 1)",
    "energy_uJ": "estimated: " + POWER_LABEL,
    "power_W": "estimated: " + POWER_LABEL,
    "resources": "modeled: the DSE's resource estimate (padless.schedule.engine.resources)",
    "clock_MHz": "the plan's kernel clock (the board's default)",
    "model": "modeled: the cycle model (padless.schedule.cost) on the same mix, before compiling",
}


class Workload(dict):
    """The search's data (a plain dict, picklable for workers and Ray): ``dataset``, ``selection`` /
    ``test`` ``{"name", "texts", "labels", "source"}``, ``lengths`` (token counts of the selection split at
    the model's truncation length), ``sim_lengths`` (the mix the timed csim runs: a seeded sample of at most
    ``sim_limit``), ``p50`` / ``p99`` (tokens) and ``selection_hash``."""


def _split_names(dataset: str) -> tuple[str, str] | None:
    from ..data.datasets import DATASETS
    if f"{dataset}-train" in DATASETS and f"{dataset}-test" in DATASETS:
        return f"{dataset}-train", f"{dataset}-test"
    return None


def make_workload(spec, recipe, dataset: str, limit: int | None = 300, test_limit: int | None = 1000,
                  seed: int = 0, sim_limit: int = 200, calibration_names: tuple = ()) -> Workload:
    """The selection and test splits of ``dataset`` and the length mix.

    The selection split (for the search) and the test split (for the final report of the chosen
    configuration) never overlap: ``NAME-train`` / ``NAME-test`` where padless has the split (vader-movie),
    else the dataset's texts split by :func:`padless.data.datasets.in_test_split` (a hash of the text).
    Neither may be a calibration dataset (``calibration_names``: the recipe's calibration and GPTQ text).

    Raises InputError for an unlabelled dataset, a dataset the calibration uses, or a split left empty;
    DataError for an unknown dataset."""
    from ..data.datasets import Dataset, in_test_split, load_dataset
    from ..models import Tokenizer
    if dataset in calibration_names or (dataset.rsplit("-", 1)[0] in calibration_names):
        raise InputError(f"--dataset {dataset} is part of the model's calibration text ({', '.join(calibration_names)}); "
                         "the search measures fidelity on text the calibration and GPTQ never saw: choose another "
                         "dataset (e.g. vader-movie)")
    names = _split_names(dataset)
    if names:
        sel, test = load_dataset(names[0]), load_dataset(names[1])
    else:
        full = load_dataset(dataset)
        if full.labels is None:
            raise InputError(f"--dataset {dataset} has no labels; the search's fidelity needs labelled text")
        t = [in_test_split(x) for x in full.texts]
        pick = lambda want: Dataset(name=f"{dataset}-{'test' if want else 'selection'}",  # noqa: E731
                                    texts=[x for x, f in zip(full.texts, t) if f == want],
                                    labels=[y for y, f in zip(full.labels, t) if f == want],
                                    source=f"{full.source}; {'test' if want else 'selection'} split (SHA-1 of the text)")
        sel, test = pick(False), pick(True)
    if sel.labels is None:
        raise InputError(f"--dataset {dataset} has no labels; the search's fidelity needs labelled text")
    if limit:
        sel = sel.sample(limit, seed=seed)
    if test_limit:
        test = test.sample(test_limit, seed=seed)
    if len(sel) < 10 or len(set(sel.labels)) < 2:
        raise InputError(f"the selection split of {dataset} has {len(sel)} texts ({len(set(sel.labels))} classes); "
                         "give --limit of at least 10 with both classes")
    top = int(min(recipe.max_seq_length or spec.max_positions, spec.max_positions))
    if not spec.tokenizer_path:
        raise InputError(f"model {spec.name} has no tokenizer; the search needs one to measure the length mix")
    lens = [len(i) for i in Tokenizer(spec.tokenizer_path, top).encode(sel.texts, truncate=True)]
    rng = np.random.default_rng(seed)
    sim = lens if len(lens) <= sim_limit else [lens[i] for i in np.sort(rng.choice(len(lens), sim_limit, replace=False))]
    return Workload(dataset=dataset, lengths=lens, sim_lengths=list(map(int, sim)),
                    p50=int(np.ceil(np.percentile(lens, 50))), p99=int(np.ceil(np.percentile(lens, 99))),
                    selection={"name": sel.name, "texts": sel.texts, "labels": sel.labels, "source": sel.source},
                    test={"name": test.name, "texts": test.texts, "labels": test.labels, "source": test.source},
                    selection_hash=config_hash([sel.texts, sel.labels]), max_length=top)


def model_shape(spec, recipe) -> dict:
    """The manifest's ``model`` entry as the DSE reads it (shapes and the truncation length)."""
    m = spec.shape_summary()
    if recipe.max_seq_length:
        m["max_seq_length"] = min(int(recipe.max_seq_length), int(spec.max_positions))
    return m


def act_bits(config: dict) -> int:
    return int(((config.get("quant") or {}).get("precision") or {}).get("act", 8))


def cheap_stage(shape: dict, board: str, config: dict, work: Workload, constraints: dict) -> dict:
    """The DSE plan and the cycle model of one candidate (no compile).

    Returns ``{"plan", "model" {throughput_seq_s, latency_us, energy_uJ_upper, power_W_upper}, "fits",
    "prune" (a reason, or None)}``. ``constraints``: ``{min_agreement, min_cosine, max_latency_us,
    min_throughput}`` (None for absent ones)."""
    from ..schedule.cost import stream_cycles
    from ..schedule.dse import BoardTooSmallError, plan
    from ..schedule.engine import EngineConfig
    from ..sparse.config import parse_sparsity
    sparsity = parse_sparsity({k: config.get(k) or {} for k in ("attention", "weights", "tokens")},
                              num_layers=shape["num_layers"])
    try:
        p = plan(shape, board, sparsity, lengths=work["lengths"], act_bits=act_bits(config),
                 gelu=gelu_of(config),
                 weights=(config.get("schedule") or {}).get("weights"))
    except BoardTooSmallError as exc:
        return {"plan": None, "model": {}, "fits": False, "prune": f"does not fit {board}: {exc}"}
    cfg = EngineConfig.from_dict(p["engine"])
    clk = float(p["clock_MHz"])
    lat = stream_cycles(cfg, [min(work["p50"], cfg.max_seq)]).cycles / clk   # us
    thr = float(p["estimate"]["throughput_seq_s"])
    pw = power_w(board, p["resources"], clk, 1.0)
    model = {"throughput_seq_s": thr, "latency_us": lat, "power_W_upper": pw["total_W"],
             "energy_uJ_upper": energy_uj(pw["total_W"], thr)}
    prune = None
    if not p["resources"].get("fits", True):
        prune = f"the plan does not fit {board}"
    elif constraints.get("max_latency_us") and lat > constraints["max_latency_us"] * MODEL_MARGIN:
        prune = (f"modeled latency {lat:,.1f} us > {constraints['max_latency_us']:g} us x {MODEL_MARGIN} "
                 "(the cycle model's margin)")
    elif constraints.get("min_throughput") and thr * MODEL_MARGIN < constraints["min_throughput"]:
        prune = (f"modeled throughput {thr:,.0f} seq/s < {constraints['min_throughput']:g} / {MODEL_MARGIN}")
    return {"plan": p, "model": model, "fits": True, "prune": prune}


def fidelity_prune(fid: dict | None, constraints: dict) -> str | None:
    """A reason to prune when a known fidelity misses a constraint, else None."""
    if not fid:
        return None
    if constraints.get("min_agreement") is not None and fid["agreement"] < constraints["min_agreement"]:
        return f"agreement {fid['agreement']:.2%} < {constraints['min_agreement']:.2%} (known: same model, quant and sparsity)"
    if constraints.get("min_cosine") is not None and fid["cosine"] < constraints["min_cosine"]:
        return f"cosine {fid['cosine']:.4f} < {constraints['min_cosine']:.4f} (known: same model, quant and sparsity)"
    return None


# ----------------------------------------------------------------------------------------- expensive stage


#: This machine's name in the cache's temporary folder names (a cache may be shared by a cluster's nodes).
_HOST = "".join(c if c.isalnum() or c in "-_" else "_" for c in os.uname().nodename)[:64] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_dead(root: Path) -> list[str]:
    """Remove the temporary compile folders (``.KEY.tmp-HOST-PID-NS``) and their compile staging folders
    (``..KEY.tmp-HOST-PID-NS.padless-staging-*``) that a worker of this machine left when it was killed
    (SIGKILL, out of memory: nothing ran to clean up); a folder of a live process or of another machine is
    left alone. Links are never followed. Returns the names removed."""
    import re
    pat = re.compile(r"^\.{1,2}[0-9a-f]{24}\.tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-\d+(\.padless-staging-.*)?$")
    gone = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return gone
    for e in entries:
        m = pat.match(e.name)
        if not m or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
            gone.append(e.name)
    return gone


def _ensure_project(payload: dict) -> tuple[Path, bool, float]:
    """The compiled project of ``payload`` from the cache, compiling it on a miss: into a private temporary
    folder, then renamed into place (a reader never sees half a project; two workers compiling the same
    key keep the first). Returns ``(folder, cache_hit, compile_seconds)``."""
    from ..build import compile_project
    root = Path(payload["cache"]) / "projects"
    final = root / payload["project_key"]
    if final.is_symlink():
        raise InputError(f"{final} is a symbolic link; the search cache holds only real folders")
    if (final / "search-entry.json").is_file():
        return final, True, 0.0
    _sweep_dead(root)
    tmp = root / f".{payload['project_key']}.tmp-{_HOST}-{os.getpid()}-{time.monotonic_ns()}"
    t0 = time.perf_counter()
    try:
        compile_project(payload["model"], board=payload["board"], out=tmp, config=payload["compile_config"],
                        progress=False)
        import json
        atomic_write(tmp / "search-entry.json", json.dumps(payload["project_inputs"], indent=1, sort_keys=True))
        try:
            os.replace(tmp, final)
        except OSError:   # another worker finished the same key first (or a stale incomplete folder)
            if (final / "search-entry.json").is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return final, True, time.perf_counter() - t0
            shutil.rmtree(final, ignore_errors=True) if final.is_dir() and not final.is_symlink() else None
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, False, time.perf_counter() - t0


def _fidelity(project, payload: dict) -> tuple[dict, bool]:
    """Agreement and cosine vs fp32 on the selection split (cached under the fidelity key)."""
    import json

    from ..commands.eval import evaluate as eval_fidelity
    f = Path(payload["cache"]) / "fidelity" / f"{payload['fidelity_key']}.json"
    if f.is_file() and not f.is_symlink():
        try:
            return json.loads(f.read_text()), True
        except ValueError:
            pass
    sel = payload["selection"]
    res = eval_fidelity(project, sel["texts"], sel["labels"], "golden", show=False)
    fid = {"agreement": float(res["agreement"]), "cosine": float(res["cosine_mean"]),
           "cosine_min": float(res["cosine_min"]), "accuracy": float(res["accuracy"]),
           "accuracy_fp32": float(res["accuracy_fp32"]), "n": int(res["n"]), "split": sel["name"]}
    f.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(f, json.dumps(fid, sort_keys=True))
    return fid, False


def evaluate(payload: dict) -> dict:
    """The expensive stage of one trial (runs in a worker process or a Ray task; ``payload`` is plain data:
    model, board, compile_config, cache, project_key, project_inputs, fidelity_key, selection, sim_lengths,
    p50, p99, constraints).

    Returns ``{"status": "complete" | "pruned", "objectives", "sources", "project", "cache_hit", "seconds",
    "reason"}``. Raises PadlessError (a compile or simulation that fails: the trial is marked failed)."""
    from ..project import load_project
    from ..runtime.profile import profile
    t0 = time.perf_counter()
    folder, hit, t_compile = _ensure_project(payload)
    project = load_project(folder)
    cons = payload["constraints"]
    sched = project.manifest.get("schedule") or {}
    clk = float(sched.get("clock_MHz") or (project.manifest.get("hls") or {}).get("engine", {}).get("clock_MHz"))
    res = {k: (v["used"] if isinstance(v, dict) else v) for k, v in (sched.get("resources") or {}).items()
           if k in ("dsp", "lut", "bram_36k", "uram")}
    limits = {k: v["limit"] for k, v in (sched.get("resources") or {}).items()
              if isinstance(v, dict) and "limit" in v}
    obj = {"clock_MHz": clk, "resources": res, "resource_limits": limits,
           "fits": bool((sched.get("resources") or {}).get("fits", True)), "weights": sched.get("weights")}
    out = {"project": str(folder), "cache_hit": hit, "seconds_compile": round(t_compile, 2), "objectives": obj,
           "sources": dict(SOURCES), "status": "complete", "reason": None}
    kmax = int((project.manifest.get("hls") or {}).get("engine", {}).get("max_seq") or payload["p99"])
    t1 = time.perf_counter()
    lat = profile(project, lengths=[min(payload["p50"], kmax)], baselines=False)
    obj["latency_us"] = lat["seconds"] * 1e6
    lat99 = profile(project, lengths=[min(payload["p99"], kmax)], baselines=False)
    obj["latency_p99_us"] = lat99["seconds"] * 1e6
    mix = profile(project, lengths=[min(n, kmax) for n in payload["sim_lengths"]], baselines=False)
    obj["throughput_seq_s"] = float(mix["throughput_seq_s"])
    obj["model_error"] = float(mix["model_error"])
    busy = list(mix["stage_busy"].values())
    act = float(np.clip(np.mean(busy), 0.0, 1.0)) if busy else 1.0
    pw = power_w(payload["board"], res, clk, act)
    obj["power_W"] = pw["total_W"]
    obj["activity"] = act
    obj["energy_uJ"] = energy_uj(pw["total_W"], obj["throughput_seq_s"])
    out["seconds_csim"] = round(time.perf_counter() - t1, 2)
    reason = None
    if cons.get("max_latency_us") is not None and obj["latency_us"] > cons["max_latency_us"]:
        reason = f"simulated latency {obj['latency_us']:,.1f} us > {cons['max_latency_us']:g} us"
    elif cons.get("min_throughput") is not None and obj["throughput_seq_s"] < cons["min_throughput"]:
        reason = f"simulated throughput {obj['throughput_seq_s']:,.0f} seq/s < {cons['min_throughput']:g}"
    if reason:   # it cannot meet the constraints: no fidelity run (cheap before expensive)
        out.update(status="pruned", reason=reason)
    else:
        t2 = time.perf_counter()
        fid, fhit = _fidelity(project, payload)
        obj.update(agreement=fid["agreement"], cosine=fid["cosine"], accuracy=fid["accuracy"],
                   accuracy_fp32=fid["accuracy_fp32"], fidelity_n=fid["n"], fidelity_split=fid["split"])
        out["fidelity_cache_hit"] = fhit
        out["seconds_fidelity"] = round(time.perf_counter() - t2, 2)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def safe_evaluate(payload: dict) -> dict:
    """:func:`evaluate` that returns ``{"status": "failed", "error": ...}`` for a PadlessError or any other
    exception (so a pool or Ray hands back a plain result)."""
    try:
        return evaluate(payload)
    except PadlessError as exc:
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # noqa: BLE001 - a trial's crash is recorded, the search goes on
        import traceback
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8)}
