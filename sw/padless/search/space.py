"""The search space: which knobs ``padless search`` varies, and what a candidate compiles to.

Only knobs the generated kernel implements are searched (docs/search.md "Space"):

- ``boards``: the target board (its DSE folding follows: :func:`padless.schedule.dse.plan`);
- ``attention``: ``dense``, ``{topk: k}`` (top-k keys per query) or ``{density: d}`` (a fraction of the keys),
  the sparse attention of :mod:`padless.sparse.attention` that the kernel's selection unit runs;
- ``weights``: ``off`` or bank-balanced weight sparsity ``{sparsity: s, bank: b}`` (Cao et al., FPGA'19
  "Efficient and Effective Sparse LSTM on FPGA with Bank-Balanced Sparsity"), the sparse MVUs' format;
- ``quant``: ``int8`` (symmetric), ``{zero_point: [act]}`` (the GELU output on an asymmetric int8 grid) or
  ``{precision: {act: 16}}`` (the GELU output int16, FFN down a 16 x 8-bit MVU); the last two exclude each
  other (:func:`padless.quant.quantize.check_act_grid`);
- ``memory``: where the weights live, the DSE's two placements (:data:`padless.schedule.dse.WEIGHT_PLACEMENTS`):
  ``streamed`` (one layer on chip, loaded before each layer's region of every call: the load is shared by a
  call's sequences, so the throughput choice, but a batch-1 sequence waits for every layer's load) or
  ``resident`` (every layer on chip, loaded once by the init call: no load in a run, less on-chip memory
  bandwidth left for parallelism); ``auto`` lets the DSE take the faster on the length mix.

A space file (``--space FILE.yaml``) gives any of these lists to narrow or widen the default, and ``base``:
a compile config merged under every candidate (e.g. ``{quant: {rounding: nearest}}`` for a quick search).
Each choice has a short label (``topk16``, ``bb0.5/16``, ``act16``); a candidate's Optuna parameters are the
labels, so the space is categorical, finite (:func:`enumerate_space`) and the same configuration always has
the same :func:`candidate_key`.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import InputError

__all__ = ["Space", "DEFAULT_SPACE", "load_space", "parse_space", "candidate_key", "compile_config",
           "enumerate_space", "PARAMS"]

#: The Optuna parameter names, in order.
PARAMS = ("board", "attention", "weights", "quant", "memory")

DEFAULT_SPACE = {
    "boards": ["u280", "u55c", "zcu104", "kv260"],
    "attention": ["dense", {"topk": 16}, {"topk": 32}, {"density": 0.25}, {"density": 0.5}],
    "weights": ["off", {"sparsity": 0.25, "bank": 16}, {"sparsity": 0.5, "bank": 16},
                {"sparsity": 0.5, "bank": 16, "pattern": "pe-pair"}],
    "quant": ["int8", {"zero_point": ["act"]}, {"precision": {"act": 16}}],
    "memory": ["streamed", "resident"],
    "base": {},
}


@dataclass
class Space:
    """A parsed space: per knob an ordered ``{label: config fragment}`` (``None`` for dense / off / int8)."""

    boards: list
    attention: dict
    weights: dict
    quant: dict
    memory: dict = field(default_factory=lambda: {"streamed": "streamed", "resident": "resident"})
    base: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)   # the lists as given (what to_dict returns)

    def choices(self) -> dict:
        """``{param: [labels]}`` in :data:`PARAMS` order (the Optuna categorical choices)."""
        return {"board": list(self.boards), "attention": list(self.attention), "weights": list(self.weights),
                "quant": list(self.quant), "memory": list(self.memory)}

    def size(self) -> int:
        """Number of distinct candidates (configurations)."""
        return len(self.boards) * len(self.attention) * len(self.weights) * len(self.quant) * len(self.memory)

    def to_dict(self) -> dict:
        """JSON form (recorded in the search's meta; a resumed search must have the same space)."""
        return {"boards": list(self.boards), "attention": self.raw.get("attention"),
                "weights": self.raw.get("weights"), "quant": self.raw.get("quant"), "memory": self.raw.get("memory"),
                "base": self.base}


def _label_attention(a) -> tuple[str, dict | None]:
    if a in (None, "dense", "off", {}):
        return "dense", None
    if not isinstance(a, dict) or len(a) != 1 or next(iter(a)) not in ("topk", "density"):
        raise InputError(f"space: attention choice {a!r} must be dense, {{topk: K}} or {{density: D}}")
    (k, v), = a.items()
    if k == "topk" and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
        raise InputError(f"space: attention topk {v!r} must be a whole number >= 1")
    if k == "density" and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 1):
        raise InputError(f"space: attention density {v!r} must be in (0, 1]")
    return f"{k}{v}", {k: v}


def _label_weights(w) -> tuple[str, dict | None]:
    if w in (None, "off", "dense", 0, {}):
        return "dense", None
    if not isinstance(w, dict) or set(w) - {"sparsity", "bank", "pattern"} or "sparsity" not in w:
        raise InputError(f"space: weights choice {w!r} must be off or {{sparsity: S, bank: B[, pattern: P]}} "
                         "(bank-balanced sparsity; pattern row or pe-pair)")
    s, b, pat = w["sparsity"], w.get("bank", 16), w.get("pattern", "row")
    from ..sparse.config import WEIGHT_PATTERNS
    if pat not in WEIGHT_PATTERNS:
        raise InputError(f"space: weight pattern {pat!r} must be one of {', '.join(WEIGHT_PATTERNS)}")
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 < s < 1:
        raise InputError(f"space: weight sparsity {s!r} must be in (0, 1)")
    if not isinstance(b, int) or isinstance(b, bool) or b < 2:
        raise InputError(f"space: weight bank {b!r} must be a whole number >= 2")
    if pat != "row":
        return f"bb{s}/{b}-{pat}", {"sparsity": s, "bank": b, "pattern": pat}
    return f"bb{s}/{b}", {"sparsity": s, "bank": b}


def _label_quant(q) -> tuple[str, dict]:
    if q in (None, "int8", {}):
        return "int8", {"zero_point": []}
    if not isinstance(q, dict) or set(q) - {"zero_point", "precision"}:
        raise InputError(f"space: quant choice {q!r} must be int8, {{zero_point: [act]}} or {{precision: {{act: 16}}}}")
    if q.get("zero_point") and q.get("precision") and any(b != 8 for b in q["precision"].values()):
        raise InputError(f"space: quant choice {q!r}: zero_point and a 16-bit precision exclude each other "
                         "(give them as two choices)")
    if q.get("precision") and any(b != 8 for b in q["precision"].values()):
        sites = sorted(k for k, b in q["precision"].items() if b != 8)
        return "+".join(f"{s}{q['precision'][s]}" for s in sites), {"zero_point": [], "precision": dict(q["precision"])}
    zp = sorted(q.get("zero_point") or [])
    if not zp:
        return "int8", {"zero_point": []}
    return "zp-" + "+".join(zp), {"zero_point": zp}


def _label_memory(m) -> tuple[str, str | None]:
    from ..schedule.dse import WEIGHT_PLACEMENTS
    if m in (None, "auto"):
        return "auto", None
    if not isinstance(m, str) or m not in WEIGHT_PLACEMENTS:
        raise InputError(f"space: memory choice {m!r} must be auto, {' or '.join(WEIGHT_PLACEMENTS)}")
    return m, m


def parse_space(data: dict | None, where: str = "space") -> Space:
    """A space mapping (keys ``boards``, ``attention``, ``weights``, ``quant``, ``memory``, ``base``; missing
    keys take the default's) -> :class:`Space`. Raises InputError naming the bad entry, an unknown board or a duplicate."""
    from ..boards import load_board
    from ..build import check_config
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a mapping with keys boards, attention, weights, quant, memory, base")
    unknown = set(data) - set(DEFAULT_SPACE)
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(map(str, unknown))} (allowed: {', '.join(DEFAULT_SPACE)})")
    full = {k: copy.deepcopy(data.get(k, v)) for k, v in DEFAULT_SPACE.items()}
    for k in ("boards", "attention", "weights", "quant", "memory"):
        if not isinstance(full[k], list) or not full[k]:
            raise InputError(f"{where}: {k} must be a non-empty list")
    boards = []
    for b in full["boards"]:
        name = load_board(str(b)).name
        if name in boards:
            raise InputError(f"{where}: board {b} given twice")
        boards.append(name)
    out = {}
    for k, fn in (("attention", _label_attention), ("weights", _label_weights), ("quant", _label_quant),
                  ("memory", _label_memory)):
        d = {}
        for c in full[k]:
            label, frag = fn(c)
            if label in d:
                raise InputError(f"{where}: {k} choice {c!r} given twice")
            d[label] = frag
        out[k] = d
    base = check_config(full["base"] or {}, f"{where}: base")
    for key in ("attention", "weights"):
        if key in base:
            raise InputError(f"{where}: base sets {key}, which the search varies; give it as the {key} list")
    if set(base.get("schedule") or {}):
        raise InputError(f"{where}: base sets schedule; the search plans each candidate for the selection split's "
                         "length mix and varies the weights' placement (give it as the memory list)")
    raw = {k: full[k] for k in ("attention", "weights", "quant", "memory")}
    return Space(boards=boards, base=base, raw=json.loads(json.dumps(raw)), **out)


def load_space(path) -> Space:
    """Read a YAML space file. Raises InputError for a missing file, bad YAML or a bad entry."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--space {p} does not exist (a YAML file with boards / attention / weights / quant)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"--space {p} is not valid YAML ({' '.join(str(exc).split())})") from exc
    return parse_space(data, f"--space {p}")


def compile_config(space: Space, params: dict) -> dict:
    """The ``padless compile`` config of a candidate (``params``: ``{board, attention, weights, quant, memory}``
    labels): ``base`` merged with the candidate's attention, weights, quant and ``schedule: {weights: ...}``
    (the placement; none for ``auto``). Raises InputError for a label not in the space."""
    for p in PARAMS:
        if params.get(p) not in space.choices()[p]:
            raise InputError(f"{p} {params.get(p)!r} is not in the search space ({', '.join(map(str, space.choices()[p]))})")
    cfg = copy.deepcopy(space.base)
    att, w, q = space.attention[params["attention"]], space.weights[params["weights"]], space.quant[params["quant"]]
    if att:
        cfg["attention"] = dict(att)
    if w:
        cfg["weights"] = dict(w)
    cfg["quant"] = {**(cfg.get("quant") or {}), **q}
    if space.memory[params["memory"]]:
        cfg["schedule"] = {"weights": space.memory[params["memory"]]}
    return cfg


def candidate_key(params: dict) -> str:
    """The identity of a discrete configuration: ``board|attention|weights|quant|memory`` labels."""
    return "|".join(str(params[p]) for p in PARAMS)


def enumerate_space(space: Space) -> list[dict]:
    """Every candidate's params, in a fixed order."""
    ch = space.choices()
    return [dict(zip(PARAMS, combo)) for combo in itertools.product(*(ch[p] for p in PARAMS))]


def config_hash(obj) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
