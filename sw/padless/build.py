"""``padless compile`` as a sequence of build steps (FINN's ``step_*`` shape).

Each step takes and returns the :class:`BuildState`; ``compile_project`` runs them in order:
load model -> sparsify weights -> calibrate -> quantize -> write project -> schedule (DSE) -> codegen.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .inputs import brief

DEFAULT_BOARD = "u280"


@dataclass
class BuildState:
    """Everything the steps share. ``log`` collects (step, seconds[, note]) rows for the summary (a step
    sets ``notes[step function name] = (note,)``, e.g. ``("cache hit",)``). ``out`` is the staging folder
    while the steps run (:mod:`padless.staging`), the project folder afterwards."""

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
    max_length: int | None = None   # --max-length: the truncation length recorded in the manifest
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
    notes: dict = field(default_factory=dict)     # step function name -> (note,) shown with its time
    gptq_ids: list | None = None    # token ids of quant.gptq_calibration, when given
    quant_key: str | None = None    # the quantization cache key (padless.quant.cache), None when off
    quant_npz: bytes | None = None  # quant.npz's bytes (from the cache, or saved for it)


def load_config(path) -> dict:
    """Read a compile config YAML (keys ``attention``, ``weights``, ``tokens``, ``calibration``,
    ``quant`` (:mod:`padless.quant.config`: ``gelu``, ``ranges``, ``migrate``, ``rounding``)).

    Raises InputError for a missing file, bad YAML (also an alias, a key given twice, nesting deeper than
    :data:`padless.inputs.MAX_YAML_DEPTH`, a file over 1 MiB: :func:`padless.inputs.load_yaml`) or unknown
    top-level keys."""
    from .inputs import load_yaml
    p = Path(path)
    cfg = load_yaml(p, "config file") or {}  # bounded: no aliases, no duplicate keys, depth and size limited
    if not isinstance(cfg, dict):
        raise InputError(f"config file {p} must be a mapping with keys attention/weights/tokens/calibration")
    return check_config(cfg, f"config file {p}")


def check_config(cfg: dict, where: str = "config") -> dict:
    """A compile config (a YAML file's mapping or ``compile_project(config=...)``) checked and normalised:
    known top-level sections only, each a mapping; a nested ``sparsity: {attention, weights, tokens}``
    lifted to the top level; ``quant`` checked. Returns a new dict. Raises InputError naming the key."""
    if not isinstance(cfg, dict):
        raise InputError(f"{where} must be a mapping with keys {', '.join(CONFIG_SECTIONS)}")
    cfg = dict(cfg)
    unknown = set(cfg) - set(CONFIG_SECTIONS)
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(map(str, unknown))} "
                         "(allowed: attention, weights, tokens, calibration, quant, schedule, sparsity)")
    for key in CONFIG_SECTIONS:
        if key in cfg and not isinstance(cfg[key], dict):
            what = "is empty" if cfg[key] is None else f"is {brief(cfg[key])}"
            raise InputError(f"{where}: {key} {what}; it must be a mapping "
                             f"({CONFIG_SECTIONS[key]}), or leave the key out")
    if "sparsity" in cfg:
        nested = cfg.pop("sparsity")
        bad = set(nested) - {"attention", "weights", "tokens"}
        if bad:
            raise InputError(f"{where}: sparsity has unknown keys {sorted(map(str, bad))} "
                             "(allowed: attention, weights, tokens)")
        clash = set(nested) & set(cfg)
        if clash:
            raise InputError(f"{where}: {sorted(clash)} given both at the top level and under sparsity; keep one")
        cfg = {**nested, **cfg}
    check_quant(cfg.get("quant"), where=f"{where}: ")
    sch = cfg.get("schedule") or {}
    unknown = set(sch) - set(SCHEDULE_KEYS)
    if unknown:
        raise InputError(f"{where}: schedule has unknown keys {sorted(map(str, unknown))} "
                         f"(allowed: {', '.join(SCHEDULE_KEYS)})")
    if "weights" in sch:
        planning_weights_of(sch, where)
    return cfg


#: Top-level sections of a compile config and what each holds (for error messages).
CONFIG_SECTIONS = {
    "attention": "e.g. {topk: 16} or {density: 0.25}",
    "weights": "e.g. {sparsity: 0.5, bank: 16}",
    "tokens": "e.g. {layers: [2, 4], keep: 0.7}",
    "calibration": "e.g. {dataset: vader-tweets, count: 256}",
    "sparsity": "attention / weights / tokens",
    "quant": "e.g. {gelu: pwl, rounding: gptq}",
    "schedule": "e.g. {dataset: vader-movie, limit: 1000, weights: resident}: the length mix the DSE plans the "
                "engine for, and where the weights live (resident: every layer on chip; streamed: one layer)",
}


def check_quant(quant, where: str = "") -> dict:
    """Validate a config's ``quant:`` section (:func:`padless.quant.config.parse_quant`: keys
    :data:`padless.quant.config.QUANT_KEYS`); returns it (``{}`` for None). Raises InputError naming the
    config, the key and the allowed values."""
    from .quant.config import parse_quant
    if quant is None:
        return {}
    try:
        parse_quant(quant)
    except InputError as exc:
        raise InputError(f"{where}{exc}") from exc
    return quant


def check_alpha(alpha) -> float:
    """``--alpha`` as a float in [0, 1] (1: per-channel activation scales, 0: one scale per tensor).
    Raises InputError for anything else (nan, inf, -1, 2, a string)."""
    import math
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"--alpha {alpha!r} is not a number; give a value in [0, 1]") from None
    if not math.isfinite(a) or not 0.0 <= a <= 1.0:
        raise InputError(f"--alpha {alpha} is outside [0, 1] (1: a scale per channel, 0: one per tensor)")
    return a


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
    att, top = st.sparsity.get("attention") or {}, int(st.spec.max_positions)
    for key in ("topk", "min_k"):
        if att.get(key, 0) > top:
            raise InputError(f"attention {key} {att[key]} is above the model's maximum length of {top} tokens "
                             f"(a query never has more keys than that): choose {key} from 1 to {top}")
    if st.sparsity.get("attention"):
        from .sparse.attention import keep_count
        try:
            keep_count(8, st.sparsity["attention"])
        except ValueError as exc:
            raise InputError(f"attention config: {exc}") from exc
    return st


def step_sparsify_weights(st: BuildState) -> BuildState:
    """Prune the weights when the global ratio or any per-layer ratio (``weights.layers``) is above 0."""
    w = st.sparsity.get("weights") or {}
    per_layer = [float(v) for v in (w.get("layers") or {}).values()]   # parse_sparsity: {"<i>": ratio}
    if float(w.get("sparsity", 0) or 0) > 0 or any(r > 0 for r in per_layer):
        prune = _optional("padless.sparse.weights", "prune_spec")
        if prune is None:
            raise InputError("weight sparsity is not available in this padless build; remove `weights:` from the config")
        token_ids = None
        if w.get("criterion") == "activation" and st.calib_texts is not None:
            from .models import Tokenizer
            token_ids = Tokenizer(st.spec.tokenizer_path, st.spec.max_positions).encode(st.calib_texts[:64], truncate=True)
        # the pe-pair permutation (3 groups a layer) and SparseGPT (6 Linears a layer) take minutes on minilm
        steps = len(st.spec.layers) * (3 * bool(w.get("permute")) + 6 * (w.get("criterion") == "sparsegpt"))
        if st.progress and steps:
            from .progress import progress_bar
            with progress_bar(total=steps, desc="sparsify weights", unit="step", leave=False) as bar:
                st.spec = prune(st.spec, w, token_ids=token_ids, progress=lambda *_: bar.update(1))
        else:
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
    gptq = None
    if st.quant["rounding"] == "gptq" and st.quant.get("gptq_calibration"):
        texts, gsource = calibration_texts(st.quant["gptq_calibration"])
        st.gptq_ids = Tokenizer(st.spec.tokenizer_path, st.spec.max_positions).encode(texts, truncate=True)
        gptq = {"dataset": gsource, "count": len(st.gptq_ids)}
    if _quant_cache_hit(st):
        return st
    st.ranges = calibrate(st.spec, ids, progress=st.progress, estimators=st.quant.get("ranges"))
    st.calibration = {"dataset": source, "count": len(ids), "tokens": st.ranges["tokens"], "alpha": st.alpha}
    if gptq:
        st.calibration["gptq"] = gptq
    return st


def _quant_cache_hit(st: BuildState) -> bool:
    """Look the integer model up in the quantization cache (:mod:`padless.quant.cache`): on a verified hit
    ``st.quantized``, ``st.ranges``, ``st.calibration`` and ``st.quant_npz`` are set and the calibrate and
    quantize steps do nothing more. The steps' timings say "cache hit" / "cache miss"."""
    from .quant import cache
    if not cache.enabled():
        return False
    st.quant_key = cache.cache_key(st.spec, st.calib_ids, st.quant, st.alpha, st.gptq_ids)
    hit = cache.load(st.quant_key)
    if hit is not None:
        import io

        from .quant.quantize import load_quantized
        data, rec = hit
        try:
            qe = load_quantized(io.BytesIO(data))
        except (KeyError, ValueError, OSError):
            qe = None   # a damaged entry: recomputed and replaced
        if qe is not None and isinstance(rec.get("calibration"), dict):
            st.quantized, st.quant_npz, st.ranges = qe, data, qe.ranges
            st.calibration = dict(rec["calibration"])
            st.notes["step_calibrate"] = st.notes["step_quantize"] = ("cache hit",)
            return True
    st.notes["step_calibrate"] = st.notes["step_quantize"] = ("cache miss",)
    return False


def step_quantize(st: BuildState) -> BuildState:
    """Scales and round-to-nearest int8 weights (:func:`padless.quant.quantize.quantize_encoder`), then, with
    ``quant: {rounding: gptq}``, the weights re-rounded by GPTQ on ``quant.gptq_calibration``'s text, else on
    the calibration sentences. The result goes into the quantization cache (:mod:`padless.quant.cache`);
    nothing is computed on a cache hit."""
    from .quant.quantize import quantize_encoder, quantized_npz_bytes
    if st.quant_npz is not None:   # a quantization cache hit (step_calibrate)
        return st
    q = st.quant
    st.quantized = quantize_encoder(st.spec, st.ranges, alpha=st.alpha, gelu=q["gelu"], migrate=q["migrate"],
                                    zero_point=q["zero_point"], precision=q["precision"])
    if q["rounding"] == "gptq":
        from .quant.gptq import gptq_encoder
        gptq_encoder(st.spec, st.quantized, st.gptq_ids if st.gptq_ids is not None else st.calib_ids,
                     progress=st.progress)
    st.calibration["gelu"] = q["gelu"]
    st.quant_npz = quantized_npz_bytes(st.quantized)
    if st.quant_key is not None:
        from .quant import cache
        cache.store(st.quant_key, st.quant_npz, st.calibration)
    return st


def step_write_project(st: BuildState) -> BuildState:
    from .project import write_project
    msl, msl_from = st.recipe.max_seq_length, st.recipe.max_seq_length_from
    if st.max_length is not None:
        if not 2 <= st.max_length <= st.spec.max_positions:
            raise InputError(f"--max-length {st.max_length} must be from 2 to the model's {st.spec.max_positions} positions")
        msl, msl_from = st.max_length, "compile --max-length"
    elif msl is not None and msl > st.spec.max_positions:
        msl, msl_from = st.spec.max_positions, f"{msl_from} ({msl}), capped at the model's positions"
    recipe = {"name": st.recipe.name, "resolved": st.recipe.resolved, "source": st.recipe.source,
              "max_seq_length": msl, "max_seq_length_from": msl_from}
    write_project(st.out, st.spec, st.quantized, st.board.name, recipe, st.sparsity, st.calibration, st.extra,
                  quant=st.quant, quant_npz=st.quant_npz)
    return st


SCHEDULE_KEYS = ("dataset", "limit", "lengths", "weights")


def planning_weights(st: BuildState) -> str | None:
    """The config's weight placement (:func:`planning_weights_of` of its ``schedule``)."""
    return planning_weights_of((st.config or {}).get("schedule") or {})


def planning_weights_of(schedule: dict, where: str = "config") -> str | None:
    """A ``schedule`` section's ``schedule: {weights: resident | streamed}`` (:data:`padless.schedule.dse.WEIGHT_PLACEMENTS`):
    resident keeps every layer's weights on chip (loaded once by the init call: the batch-1 latency choice),
    streamed one layer (loaded before each layer's region of every call); None (absent) lets the DSE take the
    faster on the length mix. Raises InputError for another value."""
    w = schedule.get("weights")
    if w is None:
        return None
    from .schedule.dse import WEIGHT_PLACEMENTS
    if not isinstance(w, str) or w not in WEIGHT_PLACEMENTS:
        raise InputError(f"{where}: schedule.weights must be one of {', '.join(WEIGHT_PLACEMENTS)} (or absent: the DSE picks "
                         f"the faster on the length mix), got {str(w)[:80]!r}")
    return w


def planning_lengths(st: BuildState) -> list[int] | None:
    """The length mix the DSE balances the engine for: the config's ``schedule: {dataset: NAME, limit: N}``
    (real texts, tokenized at the project's truncation length) or ``schedule: {lengths: [..]}``, else the
    calibration text's lengths. Raises InputError for unknown keys or bad values."""
    sch = (st.config or {}).get("schedule") or {}
    unknown = set(sch) - set(SCHEDULE_KEYS)
    if unknown:
        raise InputError(f"schedule has unknown keys {sorted(map(str, unknown))} (allowed: {', '.join(SCHEDULE_KEYS)})")
    if "lengths" in sch:
        lens = sch["lengths"]
        if not isinstance(lens, list) or not lens or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                                for n in lens):
            raise InputError("schedule.lengths must be a non-empty list of whole numbers >= 1 (token counts)")
        return lens
    if "dataset" in sch:
        from .data.datasets import load_dataset
        from .models import Tokenizer
        limit = sch.get("limit", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InputError(f"schedule.limit must be a whole number >= 1, got {limit!r}")
        texts = load_dataset(str(sch["dataset"]), limit=limit).texts
        if not st.spec.tokenizer_path:
            raise InputError(f"model {st.spec.name} has no tokenizer to plan for schedule.dataset; give schedule.lengths")
        from .project import load_project
        top = load_project(st.out).model_max_length
        return [len(i) for i in Tokenizer(st.spec.tokenizer_path, int(top)).encode(texts, truncate=True)]
    return st.calib_lengths or None


def step_schedule(st: BuildState) -> BuildState:
    """DSE for the board, balanced for the length mix the engine will see (:func:`planning_lengths`: the
    config's ``schedule`` workload, else the calibration text -- calibrate on long documents to plan for
    long documents), with the weights where ``schedule.weights`` puts them (:func:`planning_weights`)."""
    plan = _optional("padless.schedule.dse", "plan")
    if plan is not None:
        from .project import load_project, update_manifest
        model = load_project(st.out).model
        update_manifest(st.out, {"schedule": plan(model, st.board, st.sparsity, lengths=planning_lengths(st),
                                                  act_bits=st.quant["precision"]["act"], gelu=st.quant["gelu"],
                                                  weights=planning_weights(st))})
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


def step_record_generated(st: BuildState) -> BuildState:
    """List every file the code generators wrote under ``hls/`` and ``bitstream/`` in the manifest
    (``generated``) with its SHA-256 in ``checksums`` (:func:`padless.project.record_generated`):
    :func:`padless.project.load_project` refuses a project whose ``hls/`` file (the csim compiles all of
    them, headers included) differs, and a later compile into this folder regenerates them and refuses to touch anything else there
    (:func:`padless.project.check_out_dir`)."""
    from .project import record_generated
    record_generated(st.out)
    return st


#: The first steps, which check the user's input (no progress display while they run).
CHECKED_BEFORE = (step_load_board, step_load_model, step_sparsity_config, step_quant_config)
STEPS = [step_load_board, step_load_model, step_sparsity_config, step_quant_config, step_sparsify_weights,
         step_calibrate, step_quantize, step_write_project, step_schedule, step_codegen, step_bitstream_flow,
         step_record_generated]


def compile_project(model: str, board: str = DEFAULT_BOARD, out=None, config: dict | None = None,
                    calib_texts: list | None = None, calib_count: int | None = None, alpha: float = 1.0,
                    progress: bool = False, force: bool = False, max_length: int | None = None) -> BuildState:
    """Compile ``model`` (recipe name or path, :func:`padless.models.resolve_model`) for ``board`` into the
    project folder ``out``.

    ``out`` must be new, empty or an earlier padless project; ``force`` allows a non-empty folder that is
    not one (:func:`padless.project.check_out_dir`: padless deletes no file it did not write). ``alpha``
    in [0, 1]; ``calib_count`` at least 1. ``max_length``: the truncation length the project records
    (``model.max_seq_length``; default: sentence-transformers' ``max_seq_length`` of the model, or the
    recipe's, else the model's positions).

    The steps write into a staging folder next to ``out`` that replaces ``out`` in one rename at the end,
    with ``out`` locked meanwhile (:func:`padless.staging.project_update`): an error or an interrupt leaves
    the old project (or no project) untouched.

    Raises UnknownModelError, UnknownBoardError, InputError (bad config, alpha, calib_count or --out; a
    folder that cannot be written, a full disk; another compile into ``out`` running), DataError,
    BoardTooSmallError.
    """
    from .project import check_out_dir
    if out is None:
        raise InputError("give an output folder (--out DIR)")
    out = check_out_dir(out, force=force)
    alpha = check_alpha(alpha)
    from .data.datasets import MAX_CALIBRATION
    if calib_count is not None and (not isinstance(calib_count, int) or isinstance(calib_count, bool) or calib_count < 1
                                    or calib_count > MAX_CALIBRATION):
        raise InputError(f"--calib-count {brief(calib_count, 60)} must be a whole number of sentences from 1 to "
                         f"{MAX_CALIBRATION:,} (256-640 is usual)")
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2):
        raise InputError(f"--max-length {max_length!r} must be an integer of at least 2 tokens")
    st = BuildState(model=model, board_name=board, out=Path(out), config=check_config(config or {}), calib_texts=calib_texts,
                    calib_count=calib_count, alpha=alpha, progress=progress, max_length=max_length)
    from .project import own_names
    from .staging import project_update
    with project_update(out, own=own_names(out)) as staging:   # locked; the old project stays until the end
        st.out = staging
        from .progress import progress_bar   # a bar on a terminal, a plain line now and then in a log
        bar = None
        for i, step in enumerate(STEPS):
            if bar is None and step not in CHECKED_BEFORE:
                # the steps that check the input (board, model, sparsity and quant config) come first and
                # show nothing, whatever the machine's load: bad input ends in its one error line
                bar = progress_bar(total=len(STEPS), initial=i, desc="compile", unit="step", disable=not progress,
                                   leave=False, delay=5.0)
            if bar is not None:
                bar.set_postfix_str(step.__name__.removeprefix("step_"))
            t = time.perf_counter()
            try:
                st = step(st)
            except OSError as exc:  # a folder or file that cannot be read or written: one clear line
                where = exc.filename or out
                raise InputError(f"{step.__name__.removeprefix('step_')}: {where}: {exc.strerror or exc}; check "
                                 "the path and its permissions (and --out)") from exc
            st.log.append((step.__name__.removeprefix("step_"), time.perf_counter() - t) + st.notes.pop(step.__name__, ()))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    st.out = Path(out)
    return st
