"""The search engine: an Optuna multi-objective study driven by ask/tell (docs/search.md "Engine").

- Sampler: NSGA-II (Deb et al., IEEE TEVC 2002) with constraints (``Trial.set_constraint``; Deb's constrained domination:
  a feasible trial beats an infeasible one), objectives: agreement (max), throughput (max), batch-1
  latency (min), energy per sequence (min); ``study.best_trials`` is the feasible Pareto set.
- Storage: :class:`optuna.storages.JournalStorage` on ``DIR/journal.log`` (JournalFileBackend with an
  open-file lock: no symlink lock), so ``--resume`` continues the same study. A trial still RUNNING when a
  search starts was left by a driver that died: it is marked FAIL (``interrupted``) and its params are
  enqueued again (``study.enqueue_trial``), so it is neither lost nor counted twice. One driver per DIR
  (an ``fcntl`` lock on ``DIR/.lock``).
- Dedup: the space is categorical; a sampled configuration already finished or in flight is told FAIL with
  ``duplicate_of`` and not evaluated (nor counted); after a run of duplicates an unseen configuration is
  enqueued; an exhausted space ends the search.
- Cheap stage in the driver, expensive stage on the executor (:mod:`.runner`).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, PadlessError
from . import objectives as ob
from ._io import atomic_write, safe_dir
from .space import PARAMS, Space, candidate_key, compile_config, config_hash, enumerate_space

__all__ = ["SearchOptions", "run_search", "open_study", "DIRECTIONS", "OBJECTIVES", "STUDY_NAME"]

STUDY_NAME = "padless-search"
#: Optuna objective names and directions, in order.
OBJECTIVES = ("agreement", "throughput_seq_s", "latency_us", "energy_uJ")
DIRECTIONS = ("maximize", "maximize", "minimize", "minimize")
#: Constraint names: (objective, kind, option).
CONSTRAINTS = (("agreement", "min", "min_agreement"), ("cosine", "min", "min_cosine"),
               ("latency_us", "max", "max_latency_us"), ("throughput_seq_s", "min", "min_throughput"))
#: Consecutive duplicate samples before the driver enqueues an unseen configuration itself.
DUP_STREAK = 8


@dataclass
class SearchOptions:
    """Everything a search needs (the CLI's options). ``jobs`` 0 runs trials in-process."""

    model: str
    dataset: str
    out: str
    boards: list | None = None
    limit: int | None = 300
    test_limit: int | None = 1000
    min_agreement: float | None = None
    min_cosine: float | None = None
    max_latency_us: float | None = None
    min_throughput: float | None = None
    trials: int = 30
    time_budget: float | None = None
    resume: bool = False
    address: str | None = None
    space: dict | None = None       # a parsed space mapping (load_space(...).to_dict())
    jobs: int = 1
    cpus: float = 1.0
    seed: int = 0
    cache: str | None = None
    sim_limit: int = 200
    use_ray: bool = False
    population: int = 10
    final_test: bool = True
    baseline: str | None = None     # a board: the default project on it, evaluated beside the choice
    progress: bool | None = None    # None: a bar on a terminal, lines otherwise
    quiet: bool = False

    def constraints(self) -> dict:
        return {"min_agreement": self.min_agreement, "min_cosine": self.min_cosine,
                "max_latency_us": self.max_latency_us, "min_throughput": self.min_throughput}


def default_cache() -> Path:
    """``$PADLESS_CACHE/search`` (default ``~/.cache/padless/search``): compiled projects and fidelity."""
    return Path(os.environ.get("PADLESS_CACHE") or Path.home() / ".cache" / "padless") / "search"


def _constraint_values(objectives: dict, cons: dict) -> dict:
    """Optuna constraint values ``{option: value}`` (<= 0 feasible, :meth:`optuna.trial.Trial.set_constraint`)
    for the constraints given; an unknown objective (pruned before it was measured) counts as violated (1.0)."""
    out = {}
    for key, kind, opt in CONSTRAINTS:
        bound = cons.get(opt)
        if bound is None:
            continue
        v = objectives.get(key)
        out[opt] = 1.0 if v is None else float(bound - v) if kind == "min" else float(v - bound)
    return out


def open_study(out: Path, seed: int = 0, population: int = 10, create: bool = True):
    """The study in ``out/journal.log`` (created when ``create``)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = str(Path(out) / "journal.log")
    from .. import fsutil
    for name in (path, path + ".lock"):   # Optuna appends to the journal in place: never through a link
        fsutil.check_target(name, root=Path(out))
    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    # constraints: Trial.set_constraint per trial (Optuna 5; NSGA-II's constrained domination reads them)
    sampler = optuna.samplers.NSGAIISampler(population_size=int(population), seed=seed)
    if create:
        return optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler,
                                   directions=list(DIRECTIONS), load_if_exists=True)
    return optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler)


def requeue_stale(study) -> list[int]:
    """Mark every RUNNING trial FAIL (``interrupted``) and enqueue its params again; returns their numbers.
    Call only with the DIR lock held (then no live driver owns a RUNNING trial)."""
    from optuna.trial import TrialState
    stale = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if t.params:
            study.enqueue_trial(dict(t.params), user_attrs={"requeued_from": t.number}, skip_if_exists=False)
        stale.append(t.number)
    return stale


def _distributions(space: Space) -> dict:
    from optuna.distributions import CategoricalDistribution
    ch = space.choices()
    return {p: CategoricalDistribution(ch[p]) for p in PARAMS}


def _counted(t) -> bool:
    """A trial that counts toward --trials: complete, pruned or failed by its own evaluation."""
    from optuna.trial import TrialState
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return (t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs
            and not t.user_attrs.get("interrupted") and not t.user_attrs.get("lost_worker"))


class _Progress:
    """A tqdm bar on a terminal; one line per finished trial otherwise (with an ETA)."""

    def __init__(self, total: int, done: int, bar: bool | None, quiet: bool):
        self.total, self.done, self.quiet = total, done, quiet
        self.t0 = time.monotonic()
        self.start_done = done
        self.bar = None
        if (sys.stderr.isatty() if bar is None else bar) and not quiet:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=done, desc="padless search", unit="trial", file=sys.stderr)

    def eta(self) -> str:
        n = self.done - self.start_done
        if n <= 0:
            return "?"
        s = (time.monotonic() - self.t0) / n * max(0, self.total - self.done)
        return f"{int(s // 60)}m{int(s % 60):02d}s"

    def trial(self, number: int, key: str, rec: dict) -> None:
        self.done += 1
        line = _trial_line(number, key, rec)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"#{number} {rec['status']}")
        elif not self.quiet:
            print(f"padless search: trial {self.done}/{self.total} #{number} {line} (ETA {self.eta()})",
                  file=sys.stderr, flush=True)

    def note(self, msg: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(f"padless search: {msg}", file=sys.stderr)
        else:
            print(f"padless search: {msg}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _trial_line(number: int, key: str, rec: dict) -> str:
    o = rec.get("objectives") or {}
    parts = [key.replace("|", " "), rec["status"]]
    if rec["status"] == "failed":
        parts.append(rec.get("error", ""))
    if rec.get("reason"):
        parts.append(f"({rec['reason']})")
    if "agreement" in o:
        parts.append(f"agreement {o['agreement']:.2%} cosine {o['cosine']:.4f}")
    if "throughput_seq_s" in o:
        parts.append(f"{o['throughput_seq_s']:,.0f} seq/s {o['latency_us']:,.1f} us {o['energy_uJ']:,.1f} uJ")
    if rec.get("cache_hit"):
        parts.append("[cache hit]")
    return " ".join(parts)


def _meta(opts: SearchOptions, space: Space) -> dict:
    return {"model": opts.model, "dataset": opts.dataset, "limit": opts.limit, "test_limit": opts.test_limit,
            "seed": opts.seed, "sim_limit": opts.sim_limit, "space": space.to_dict(),
            "constraints": opts.constraints()}


def run_search(opts: SearchOptions) -> dict:
    """Run (or resume) a search; writes DIR/search.json, DIR/pareto.csv, DIR/report.html and returns the
    search.json dict (:func:`padless.search.results.collect`).

    Raises InputError: an existing search in DIR without ``resume`` (or a resumed one whose model, dataset,
    space or constraints differ), another search running in DIR, a bad option; UnknownModelError,
    DataError, UnknownBoardError."""
    from .space import parse_space
    cons = opts.constraints()
    for k, v in cons.items():
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise InputError(f"--{k.replace('_', '-')} {v!r} must be a finite number")
    for k in ("min_agreement", "min_cosine"):
        if cons[k] is not None and not 0 <= cons[k] <= 1:
            raise InputError(f"--{k.replace('_', '-')} {cons[k]} must be a fraction in [0, 1] (e.g. 0.97)")
    if opts.trials < 1:
        raise InputError(f"--trials {opts.trials} must be >= 1")
    if opts.time_budget is not None and opts.time_budget <= 0:
        raise InputError(f"--time-budget {opts.time_budget} must be > 0 seconds")
    space_map = dict(opts.space or {})
    if opts.boards:
        space_map["boards"] = list(opts.boards)
    space = parse_space(space_map)
    out = safe_dir(opts.out, "--out")
    lock_f = open(out / ".lock", "a+")
    try:
        fcntl.flock(lock_f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_f.close()
        raise InputError(f"another padless search is running in {out}; wait for it or choose another --out") from None
    try:
        meta_f = out / "search-meta.json"
        meta = _meta(opts, space)
        journal = out / "journal.log"
        if journal.exists() and not opts.resume:
            raise InputError(f"{out} already holds a search (journal.log); pass --resume to continue it, or "
                             "choose another --out")
        if opts.resume and meta_f.is_file():
            old = json.loads(meta_f.read_text())
            diff = [k for k in meta if k != "constraints" and old.get(k) != json.loads(json.dumps(meta[k]))]
            if old.get("constraints") != meta["constraints"]:
                diff.append("constraints")
            if diff:
                raise InputError(f"--resume: this search's {', '.join(diff)} differ from the search in {out}; "
                                 "give the same options, or another --out")
        atomic_write(meta_f, json.dumps(meta, indent=1, sort_keys=True))
        return _drive(opts, space, out, cons, meta)
    finally:
        fcntl.flock(lock_f, fcntl.LOCK_UN)
        lock_f.close()


def _drive(opts: SearchOptions, space: Space, out: Path, cons: dict, meta: dict) -> dict:
    from optuna.trial import TrialState

    from ..models import resolve_model, source_fingerprint
    from . import results
    from .runner import make_executor
    t_start = time.monotonic()
    study = open_study(out, opts.seed, opts.population)
    stale = requeue_stale(study)
    cache = safe_dir(opts.cache or default_cache(), "--cache")
    spec, recipe = resolve_model(opts.model)
    cal = recipe.calibration or {}
    cal_names = cal.get("dataset", "vader-tweets")
    cal_names = (cal_names,) if isinstance(cal_names, str) else tuple(cal_names)
    g = (recipe.quant or {}).get("gptq_calibration") or {}
    gn = g.get("dataset", ()) if isinstance(g, dict) else ()
    cal_names += (gn,) if isinstance(gn, str) else tuple(gn)
    work = ob.make_workload(spec, recipe, opts.dataset, opts.limit, opts.test_limit, opts.seed, opts.sim_limit,
                            calibration_names=cal_names)
    shape = ob.model_shape(spec, recipe)
    src = recipe.source or {}
    model_id = {"name": spec.name, "recipe": recipe.name if recipe.resolved == "recipe" else None,
                "sha256": None if recipe.resolved == "recipe" else source_fingerprint(src.get("path")),
                "calibration": cal, "recipe_quant": recipe.quant}
    dists = _distributions(space)
    prog_total = opts.trials
    trials = study.get_trials(deepcopy=False)
    seen = {}   # key -> trial number (finished and counted)
    fidelity = {}
    for t in trials:
        if _counted(t) and "key" in t.user_attrs:
            seen[t.user_attrs["key"]] = t.number
            r = t.user_attrs.get("result") or {}
            if "agreement" in (r.get("objectives") or {}):
                fidelity[t.user_attrs["fidelity_key"]] = {"agreement": r["objectives"]["agreement"],
                                                          "cosine": r["objectives"]["cosine"]}
    done = sum(1 for t in trials if _counted(t))
    prog = _Progress(prog_total, done, opts.progress, opts.quiet)
    if stale:
        prog.note(f"resumed: trial(s) {', '.join(map(str, stale))} were interrupted; marked failed and re-queued")
    executor = make_executor(opts.jobs, opts.address, opts.cpus, opts.use_ray)
    exhausted = False
    if not opts.quiet and done < opts.trials:
        prog.note(f"{space.size()} configurations; {opts.trials - done} trial(s) to run on {executor.name}; "
                  f"selection {len(work['selection']['texts'])} texts ({work['selection']['name']}), length mix "
                  f"p50 {work['p50']} / p99 {work['p99']} tokens")
    inflight = {}      # handle -> (trial, key, payload)
    queued = set()     # keys enqueued and not asked yet (an enqueued trial's params are its fixed_params)
    for t in trials:
        fixed = t.system_attrs.get("fixed_params") or {}
        if t.state == TrialState.WAITING and all(p in fixed for p in PARAMS):
            queued.add(candidate_key(fixed))
    for t in trials:   # a resumed search: what an earlier run found feasible, on the cheaper boards too
        o = (t.user_attrs.get("result") or {}).get("objectives") or {}
        if t.state == TrialState.COMPLETE and all(v <= 0 for v in _constraint_values(o, cons).values()):
            _queue_cheaper(study, space, t, set(seen), queued, None)
    dup_streak = 0
    unseen = [p for p in enumerate_space(space)]
    try:
        while True:
            over = exhausted or (opts.time_budget is not None and time.monotonic() - t_start > opts.time_budget)
            while not over and len(inflight) < executor.slots and done + len(inflight) < opts.trials:
                trial = study.ask(dists)
                params = {p: trial.params[p] for p in PARAMS}
                key = candidate_key(params)
                busy = {v[1] for v in inflight.values()}
                if key in seen or key in busy:
                    trial.set_user_attr("duplicate_of", seen.get(key, -1))
                    study.tell(trial, state=TrialState.FAIL)
                    dup_streak += 1
                    left = [p for p in unseen if candidate_key(p) not in seen and candidate_key(p) not in busy]
                    if not left:
                        prog.note(f"all {space.size()} configurations of the space are evaluated")
                        over = exhausted = True
                        break
                    if dup_streak >= DUP_STREAK:
                        import random
                        study.enqueue_trial(random.Random(opts.seed + len(seen)).choice(left))
                        dup_streak = 0
                    continue
                dup_streak = 0
                cfg = compile_config(space, params)
                trial.set_user_attr("key", key)
                trial.set_user_attr("config", cfg)
                fkey = config_hash({"model": model_id, "quant": cfg.get("quant"), "base": space.base,
                                    "attention": cfg.get("attention"), "weights": cfg.get("weights"),
                                    "selection": work["selection_hash"], "max_length": work["max_length"]})
                trial.set_user_attr("fidelity_key", fkey)
                t0 = time.perf_counter()
                cheap = ob.cheap_stage(shape, params["board"], cfg, work, cons)
                reason = cheap["prune"] or ob.fidelity_prune(fidelity.get(fkey), cons)
                if reason:
                    rec = {"status": "pruned", "reason": reason, "stage": "model",
                           "objectives": {"model": cheap["model"], **({k: fidelity[fkey][k] for k in ("agreement", "cosine")}
                                                                       if fkey in fidelity else {})},
                           "sources": {"model": ob.SOURCES["model"]}, "seconds": round(time.perf_counter() - t0, 2)}
                    if cheap["plan"]:
                        rec["objectives"]["resources"] = {k: v["used"] for k, v in cheap["plan"]["resources"].items()
                                                          if isinstance(v, dict) and "used" in v}
                    _finish(study, trial, key, rec, cons)
                    seen[key] = trial.number
                    done += 1
                    prog.trial(trial.number, key, rec)
                    continue
                plan = cheap["plan"]
                ccfg = {**cfg, "schedule": {**(cfg.get("schedule") or {}), "lengths": list(work["lengths"])}}
                payload = _payload(opts.model, model_id, params["board"], ccfg, plan, cache, fkey, work, cons)
                trial.set_user_attr("modeled", cheap["model"])
                inflight[executor.submit(payload)] = (trial, key, payload, cheap)
            if not inflight:
                break
            h, res = executor.wait_any(list(inflight))
            trial, key, payload, cheap = inflight.pop(h)
            if res.get("objectives") is not None:
                res["objectives"]["model"] = cheap["model"]
            if res["status"] == "failed" and res.get("lost_worker") and "requeued_from" in trial.user_attrs:
                res = {"status": "failed", "error": f"{res.get('error')}; a second time for this configuration "
                                                    f"(first: trial #{trial.user_attrs['requeued_from']}): not re-queued again"}
            if res["status"] == "failed" and res.get("lost_worker"):
                trial.set_user_attr("lost_worker", True)
                trial.set_user_attr("error", res.get("error"))
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(dict(trial.params), user_attrs={"requeued_from": trial.number})
                prog.note(f"trial #{trial.number} ({key}) lost its worker; re-queued")
                continue
            res["stage"] = "csim" if res["status"] == "pruned" else None
            _finish(study, trial, key, res, cons)
            seen[key] = trial.number
            o = res.get("objectives") or {}
            if "agreement" in o:
                fidelity[trial.user_attrs["fidelity_key"]] = {"agreement": o["agreement"], "cosine": o["cosine"]}
            done += 1
            prog.trial(trial.number, key, res)
            if res["status"] == "complete" and all(v <= 0 for v in _constraint_values(o, cons).values()):
                _queue_cheaper(study, space, trial, set(seen) | {v[1] for v in inflight.values()}, queued, prog)
    finally:
        executor.close()
        prog.close()
    wall = time.monotonic() - t_start
    doc = results.collect(study, meta, out)
    if opts.final_test and doc.get("device"):
        doc["device"]["test"] = final_test(doc["device"], work, prog)
    if opts.baseline:
        doc["baseline"] = baseline(opts, space, shape, work, cache, model_id, prog)
    doc["run"] = {"wall_seconds": round(wall, 1), "executor": executor.name, "jobs": opts.jobs,
                  "interrupted_requeued": stale, "cache": str(cache)}
    prev = out / "search.json"
    if prev.is_file() and opts.resume:
        try:
            old = json.loads(prev.read_text())
            doc["run"]["previous_runs"] = old.get("run", {}).get("previous_runs", []) + [
                {k: v for k, v in old.get("run", {}).items() if k != "previous_runs"}]
        except ValueError:
            pass
    results.write_all(out, doc)
    return doc


def _queue_cheaper(study, space: Space, trial, taken: set, queued: set, prog) -> None:
    """Enqueue ``trial``'s configuration (it meets every constraint) on each cheaper board of the space not
    in ``taken`` or ``queued`` (:func:`cheaper_boards`); ``queued`` grows by what is enqueued."""
    for p in cheaper_boards(space, {q: trial.params[q] for q in PARAMS}, taken | queued):
        study.enqueue_trial(p, user_attrs={"cheaper_than": trial.number})
        queued.add(candidate_key(p))
        if prog is not None:
            prog.note(f"trial #{trial.number} meets every constraint on {trial.params['board']}: its "
                      f"configuration queued on the cheaper {p['board']}")


def cheaper_boards(space: Space, params: dict, taken: set) -> list[dict]:
    """The configuration ``params`` on each board of the space with a lower list price (boards/*.yaml
    ``price``), cheapest first, leaving out keys in ``taken`` (evaluated, in flight or queued).

    The device choice is the cheapest board whose best configuration meets every constraint, but the
    sampler's objectives (fidelity, throughput, latency, energy) do not see price; fidelity does not depend
    on the board (the same model, quantization and sparsity give the same bits on every board), so a
    configuration that meets every constraint is worth trying on each cheaper board, where only the
    hardware stages (cycle model, timed csim) can still fail it."""
    from .power import board_facts
    price = {b: board_facts(b)["price"]["list_USD"] for b in space.boards}
    here = price[params["board"]]
    out = []
    for b in sorted((b for b in space.boards if price[b] < here), key=lambda b: price[b]):
        p = {**params, "board": b}
        if candidate_key(p) not in taken:
            out.append(p)
    return out


def _finish(study, trial, key: str, rec: dict, cons: dict) -> None:
    """Record a trial's result in the journal and tell Optuna its state (and values when complete)."""
    from optuna.trial import TrialState
    o = rec.get("objectives") or {}
    trial.set_user_attr("result", json.loads(json.dumps(rec, default=str)))
    for name, v in _constraint_values(o, cons).items():
        trial.set_constraint(name, v)
    if rec["status"] == "complete":
        study.tell(trial, [float(o[k]) for k in OBJECTIVES])
    elif rec["status"] == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        trial.set_user_attr("error", rec.get("error"))
        study.tell(trial, state=TrialState.FAIL)


def _payload(model: str, model_id: dict, board: str, ccfg: dict, plan: dict, cache: Path, fkey: str, work,
             cons: dict) -> dict:
    """The expensive stage's input (:func:`padless.search.objectives.evaluate`): plain data, its project keyed
    by (padless version, model, board, compile config, the DSE's plan)."""
    inputs = {"padless": __import__("padless").__version__, "model": model_id, "board": board, "config": ccfg,
              "plan": plan["allocation"], "engine": plan["engine"]}
    return {"model": model, "board": board, "compile_config": ccfg, "cache": str(cache),
            "project_key": config_hash(inputs)[:24], "project_inputs": inputs, "fidelity_key": fkey,
            "selection": work["selection"], "sim_lengths": work["sim_lengths"], "p50": work["p50"],
            "p99": work["p99"], "constraints": cons}


def baseline(opts: SearchOptions, space: Space, shape: dict, work, cache: Path, model_id: dict, prog) -> dict:
    """The default project on ``opts.baseline`` (the recipe's quantization, no sparsity, the DSE's own
    weight placement, planned for the selection split's length mix: what ``padless compile MODEL --board B``
    with ``schedule: {lengths: ...}`` builds), evaluated by the trials' own stages with no constraint
    (latency, throughput, energy, selection-split fidelity), plus its test-split fidelity when the search
    reports one. Returns ``{board, config, objectives, sources, project, test}``; a failure is recorded as
    ``{board, error}`` (the search's result stands)."""
    from ..boards import load_board
    board = load_board(opts.baseline).name
    cfg = dict(space.base)
    ccfg = {**cfg, "schedule": {"lengths": list(work["lengths"])}}
    prog.note(f"baseline: the default project on {board}")
    try:
        cheap = ob.cheap_stage(shape, board, cfg, work, {})
        if cheap["plan"] is None:
            return {"board": board, "config": cfg, "error": cheap["prune"]}
        plan = cheap["plan"]
        fkey = config_hash({"model": model_id, "quant": None, "base": space.base, "attention": None,
                            "weights": None, "selection": work["selection_hash"], "max_length": work["max_length"],
                            "baseline": True})
        payload = _payload(opts.model, model_id, board, ccfg, plan, cache, fkey, work, {})
        res = ob.evaluate(payload)
    except PadlessError as exc:
        return {"board": board, "config": cfg, "error": f"{type(exc).__name__}: {exc}"}
    res["objectives"]["model"] = cheap["model"]
    out = {"board": board, "config": cfg, "weights": plan["weights"], "objectives": res["objectives"],
           "sources": res["sources"], "project": res["project"]}
    if opts.final_test:
        out["test"] = final_test(out, work, prog, "the baseline")
    return out


def final_test(device: dict, work, prog, what: str = "the chosen configuration") -> dict | None:
    """Fidelity of the chosen configuration (or the baseline) on the test split (never seen by the search)."""
    from ..commands.eval import evaluate as eval_fidelity
    from ..project import load_project
    proj = device.get("project")
    if not proj or not Path(proj).is_dir():
        return None
    prog.note(f"test split: {len(work['test']['texts'])} texts ({work['test']['name']}) on {what}")
    res = eval_fidelity(load_project(proj), work["test"]["texts"], work["test"]["labels"], "golden", show=False)
    return {"split": work["test"]["name"], "n": int(res["n"]), "agreement": float(res["agreement"]),
            "cosine": float(res["cosine_mean"]), "accuracy": float(res["accuracy"]),
            "accuracy_fp32": float(res["accuracy_fp32"]),
            "source": "simulated: golden integer model vs fp32 on the test split (never seen by the search)"}
