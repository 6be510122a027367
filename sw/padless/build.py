"""``padless compile`` as a sequence of build steps (FINN's ``step_*`` shape).

Each step takes and returns the :class:`BuildState`; ``compile_project`` runs them in order:
load model -> sparsify weights -> calibrate -> quantize -> write project -> schedule (DSE) -> codegen.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import InputError

DEFAULT_BOARD = "u280"


@dataclass
class BuildState:
    """Everything the steps share. ``log`` collects (step, seconds, note) rows for the summary."""

    model: str
    board_name: str
    out: Path
    config: dict = field(default_factory=dict)
    calib_texts: list | None = None
    calib_count: int | None = None
    calib_lengths: list = field(default_factory=list)
    calib_ids: list = field(default_factory=list)   # the tokenized calibration sentences (GPTQ reuses them)
    quant: dict = field(default_factory=dict)       # the normalised `quant:` (padless.quant.config)
    alpha: float = 1.0
    progress: bool = False
    spec: object = None
    recipe: object = None
    board: object = None
    ranges: dict | None = None
    quantized: object = None
    sparsity: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    student_record: dict = field(default_factory=dict)  # padless_sparsity.json of a fine-tuned student
    extra: dict = field(default_factory=dict)
    log: list = field(default_factory=list)


def load_config(path) -> dict:
    """Read a compile config YAML (keys ``attention``, ``weights``, ``tokens``, ``calibration``,
    ``quant`` (:mod:`padless.quant.config`: ``gelu``, ``ranges``, ``migrate``, ``rounding``)).

    Raises InputError for a missing file, bad YAML or unknown top-level keys."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file {p} does not exist")
    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config file {p} is not valid YAML: {exc}") from exc
    if not isinstance(cfg, dict):
        raise InputError(f"config file {p} must be a mapping with keys attention/weights/tokens/calibration")
    unknown = set(cfg) - {"attention", "weights", "tokens", "calibration", "sparsity", "quant"}
    if unknown:
        raise InputError(f"config file {p}: unknown keys {sorted(unknown)} "
                         "(allowed: attention, weights, tokens, calibration, quant)")
    if "sparsity" in cfg:
        cfg = {**cfg.pop("sparsity"), **cfg}
    return cfg


def _optional(module: str, attr: str):
    """``module.attr`` if that module exists in this build, else None (for steps other modules add)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    return getattr(mod, attr, None)


def step_load_board(st: BuildState) -> BuildState:
    from .boards import load_board
    st.board = load_board(st.board_name)
    return st


def step_load_model(st: BuildState) -> BuildState:
    from .models import resolve_model
    st.spec, st.recipe = resolve_model(st.model)
    st.student_record = _student_record(st)
    return st


def _student_record(st: BuildState) -> dict:
    """The training record of a fine-tuned student (``padless_sparsity.json`` beside its weights), or {}."""
    import json
    path = (st.recipe.source or {}).get("path")
    f = Path(path) / "padless_sparsity.json" if path else None
    if f is not None and f.is_file():
        try:
            return json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{f} is not valid JSON ({exc}); re-run `padless finetune` or delete the file "
                             "and give the sparsity with --config") from exc
    return {}


def _recipe_calibration(name) -> dict:
    """The calibration of recipe ``name`` (a fine-tuned student's teacher), or {} when it is not a recipe."""
    from .models import list_recipes, load_recipe
    return dict(load_recipe(name).calibration or {}) if isinstance(name, str) and name in list_recipes() else {}


def step_sparsity_config(st: BuildState) -> BuildState:
    """Sparsity from the config, else the recipe's, else (a fine-tuned student) what it was trained with."""
    trained = st.student_record.get("sparsity") or {}
    sparsity = {k: (st.config.get(k) or (st.recipe.sparsity or {}).get(k) or trained.get(k) or {})
                for k in ("attention", "weights", "tokens")}
    parse = _optional("padless.sparse.config", "parse_sparsity")
    st.sparsity = parse(sparsity, num_layers=st.spec.num_layers) if parse else sparsity
    if st.sparsity.get("attention"):
        from .sparse.attention import keep_count
        try:
            keep_count(8, st.sparsity["attention"])
        except ValueError as exc:
            raise InputError(f"attention config: {exc}") from exc
    return st


def step_sparsify_weights(st: BuildState) -> BuildState:
    w = st.sparsity.get("weights") or {}
    if float(w.get("sparsity", 0) or 0) > 0:
        prune = _optional("padless.sparse.weights", "prune_spec")
        if prune is None:
            raise InputError("weight sparsity is not available in this padless build; remove `weights:` from the config")
        token_ids = None
        if w.get("criterion") == "activation" and st.calib_texts is not None:
            from .models import Tokenizer
            token_ids = Tokenizer(st.spec.tokenizer_path, st.spec.max_positions).encode(st.calib_texts[:64], truncate=True)
        st.spec = prune(st.spec, w, token_ids=token_ids)
    return st


def _recipe_quant(name) -> dict:
    """The ``quant:`` of recipe ``name`` (a fine-tuned student's teacher), or {} when it is not a recipe."""
    from .models import list_recipes, load_recipe
    return dict(load_recipe(name).quant or {}) if isinstance(name, str) and name in list_recipes() else {}


def step_quant_config(st: BuildState) -> BuildState:
    """The ``quant:`` settings: the recipe's (a fine-tuned student: its teacher recipe's), then the config's,
    key by key (:func:`padless.quant.config.merge_quant`); InputError for a bad one, before any work."""
    from .quant.config import merge_quant
    inherited = _recipe_quant(st.student_record.get("teacher"))
    st.quant = merge_quant(inherited, st.recipe.quant or {}, st.config.get("quant") or {})
    return st


def step_calibrate(st: BuildState) -> BuildState:
    from .quant.calibrate import calibrate
    # the config's, else the one a fine-tuned student was trained (QAT) with, else its teacher recipe's,
    # else the recipe's
    from .data.datasets import calibration_texts, check_calibration
    given = st.config.get("calibration") or {}
    if given:
        check_calibration(given)  # InputError for a config that is not {dataset, count}, before merging
    record = st.student_record
    inherited = record.get("calibration") or _recipe_calibration(record.get("teacher"))
    cal_cfg = {**(st.recipe.calibration or {}), **(inherited or {}), **given}
    count = int(st.calib_count or cal_cfg.get("count", 256))
    if st.calib_texts is not None:
        texts, source = st.calib_texts[:count], "file"
    else:
        texts, source = calibration_texts({**cal_cfg, "count": count})
    if not texts:
        raise InputError("no calibration text: give real sentences with --calib FILE")
    from .models import Tokenizer
    if not st.spec.tokenizer_path:
        raise InputError(f"model {st.spec.name} has no tokenizer to calibrate with")
    ids = Tokenizer(st.spec.tokenizer_path, st.spec.max_positions).encode(texts, truncate=True)
    st.calib_lengths = [len(i) for i in ids]
    st.calib_ids = ids
    st.ranges = calibrate(st.spec, ids, progress=st.progress, estimators=st.quant.get("ranges"))
    st.calibration = {"dataset": source, "count": len(ids), "tokens": st.ranges["tokens"], "alpha": st.alpha}
    return st


def step_quantize(st: BuildState) -> BuildState:
    """Scales and round-to-nearest int8 weights (:func:`padless.quant.quantize.quantize_encoder`), then, with
    ``quant: {rounding: gptq}``, the weights re-rounded by GPTQ on ``quant.gptq_calibration``'s text, else on
    the calibration sentences."""
    from .quant.quantize import quantize_encoder
    q = st.quant
    st.quantized = quantize_encoder(st.spec, st.ranges, alpha=st.alpha, gelu=q["gelu"], migrate=q["migrate"])
    if q["rounding"] == "gptq":
        from .quant.gptq import gptq_encoder
        ids = st.calib_ids
        if q.get("gptq_calibration"):
            from .data.datasets import calibration_texts
            from .models import Tokenizer
            texts, source = calibration_texts(q["gptq_calibration"])
            ids = Tokenizer(st.spec.tokenizer_path, st.spec.max_positions).encode(texts, truncate=True)
            st.calibration["gptq"] = {"dataset": source, "count": len(ids)}
        gptq_encoder(st.spec, st.quantized, ids, progress=st.progress)
    st.calibration["gelu"] = q["gelu"]
    return st


def step_write_project(st: BuildState) -> BuildState:
    from .project import write_project
    recipe = {"name": st.recipe.name, "source": st.recipe.source}
    write_project(st.out, st.spec, st.quantized, st.board.name, recipe, st.sparsity, st.calibration, st.extra,
                  quant=st.quant)
    return st


def step_schedule(st: BuildState) -> BuildState:
    """DSE for the board, balanced for the length mix of the calibration text (real sentences of the
    kind the model will see; calibrate on long documents to plan for long documents)."""
    plan = _optional("padless.schedule.dse", "plan")
    if plan is not None:
        from .project import update_manifest
        update_manifest(st.out, {"schedule": plan(st.spec.shape_summary(), st.board, st.sparsity,
                                                  lengths=st.calib_lengths or None)})
    return st


def step_codegen(st: BuildState) -> BuildState:
    """Generate the HLS project; its row tile and activation buffer (``wave_tokens``, capped at 2048) are
    the ones the schedule planned (:func:`padless.codegen.hls.generate`)."""
    generate = _optional("padless.codegen.hls", "generate")
    if generate is not None:
        from .project import load_project
        generate(load_project(st.out), st.board)
    return st


def step_bitstream_flow(st: BuildState) -> BuildState:
    """Generate the vendor build scripts (v++ link config or Vivado block design, bitstream.mk)."""
    gen = _optional("padless.codegen.bitstream", "generate")
    if gen is not None and (Path(st.out) / "hls").is_dir():
        from .project import load_project
        gen(load_project(st.out), st.board)
    return st


STEPS = [step_load_board, step_load_model, step_sparsity_config, step_quant_config, step_sparsify_weights, step_calibrate,
         step_quantize, step_write_project, step_schedule, step_codegen, step_bitstream_flow]


def compile_project(model: str, board: str = DEFAULT_BOARD, out=None, config: dict | None = None,
                    calib_texts: list | None = None, calib_count: int | None = None, alpha: float = 1.0,
                    progress: bool = False) -> BuildState:
    """Compile ``model`` (recipe name or path) for ``board`` into the project folder ``out``.

    Raises UnknownModelError, UnknownBoardError, InputError, DataError, BoardTooSmallError.
    """
    if out is None:
        raise InputError("give an output folder (--out DIR)")
    st = BuildState(model=model, board_name=board, out=Path(out), config=config or {}, calib_texts=calib_texts,
                    calib_count=calib_count, alpha=alpha, progress=progress)
    for step in STEPS:
        t = time.perf_counter()
        st = step(st)
        st.log.append((step.__name__.removeprefix("step_"), time.perf_counter() - t))
    return st
