"""Project folders: what ``padless compile`` writes and every backend reads.

Layout (docs/architecture.md has the whole list)::

    manifest.json   format version, padless version, model shape, board, quant + sparsity config,
                    schedule (allocation and estimates), file checksums
    quant.npz       the integer model (padless.quant.quantize.save_quantized)
    host.npz        host-side float tables: embeddings and embedding LayerNorm
    tokenizer.json  the model's tokenizer (padding disabled when loaded)
    hls/ ...        generated HLS C++ project (padless.codegen), when a board flow is generated

A project is self-contained: it can be moved and run without the original model files.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from .errors import InputError, ProjectError
from .ir import EmbeddingSpec, EncoderSpec, LayerNormSpec

FORMAT = "padless-project"
FORMAT_VERSION = 2   # 2: 12-bit softmax probabilities (docs/numerics.md); projects of format 1 must be recompiled
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_host_tables(spec: EncoderSpec, path: Path) -> None:
    """Write the host half of the model (embeddings, embedding LayerNorm) to ``path`` (.npz)."""
    e = spec.embeddings
    arrays = {"word": e.word, "position_offset": np.int64(e.position_offset), "scale": np.float64(e.scale)}
    if e.position is not None:
        arrays["position"] = e.position
    if e.token_type is not None:
        arrays["token_type"] = e.token_type
    if e.ln is not None:
        arrays.update(ln_gamma=e.ln.gamma, ln_beta=e.ln.beta, ln_eps=np.float64(e.ln.eps))
    np.savez(path, **arrays)


def load_host_tables(path: Path) -> EmbeddingSpec:
    z = np.load(path, allow_pickle=False)
    ln = LayerNormSpec(z["ln_gamma"], z["ln_beta"], float(z["ln_eps"])) if "ln_gamma" in z else None
    return EmbeddingSpec(word=z["word"], position=z["position"] if "position" in z else None,
                         token_type=z["token_type"] if "token_type" in z else None, ln=ln,
                         position_offset=int(z["position_offset"]), scale=float(z["scale"]))


@dataclass
class Project:
    """A loaded project folder.

    Attributes: ``path``; ``manifest`` (dict); lazily loaded ``quantized`` (QuantizedEncoder), ``host``
    (a shape-only EncoderSpec with the host embedding tables, for :func:`padless.reference.embed`).
    """

    path: Path
    manifest: dict
    _quantized: object = field(default=None, repr=False)
    _host: object = field(default=None, repr=False)
    _tokenizer: object = field(default=None, repr=False)

    @property
    def model(self) -> dict:
        return self.manifest["model"]

    @property
    def sparsity(self) -> dict:
        return self.manifest.get("sparsity") or {}

    @property
    def board(self) -> str:
        return self.manifest.get("board", "")

    def file(self, key: str) -> Path:
        return self.path / self.manifest["files"][key]

    @property
    def quantized(self):
        if self._quantized is None:
            from .quant.quantize import load_quantized
            try:
                self._quantized = load_quantized(self.file("quant"))
            except (KeyError, ValueError, OSError) as exc:
                raise ProjectError(f"{self.file('quant')} is corrupted ({exc}); recompile the project") from exc
            if "token_policy" in self.manifest.get("files", {}):
                from .sparse.policy import load_policy
                self._quantized.token_policy = load_policy(self.file("token_policy"))
        return self._quantized

    @property
    def host(self) -> EncoderSpec:
        if self._host is None:
            m = self.model
            emb = load_host_tables(self.file("host"))
            self._host = EncoderSpec(
                name=m["name"], hidden_size=m["hidden_size"], num_heads=m["num_heads"],
                intermediate_size=m["intermediate_size"], num_layers=0, max_positions=m["max_positions"],
                vocab_size=m["vocab_size"], embeddings=emb, layers=[], activation=m["activation"],
                pooling=m["pooling"], normalize=m["normalize"])
        return self._host

    def tokenizer(self):
        """The model's tokenizer (:class:`padless.models.Tokenizer`, padding disabled)."""
        if self._tokenizer is None:
            from .models import Tokenizer
            if "tokenizer" not in self.manifest["files"]:
                raise ProjectError(f"{self.path} has no tokenizer; give token ids instead of texts")
            self._tokenizer = Tokenizer(str(self.path), self.model["max_positions"])
        return self._tokenizer

    def tokenize(self, texts: Sequence[str], truncate: bool = False) -> list[list[int]]:
        """Texts -> token id lists ([CLS] ... [SEP]). Raises InputError for an empty or too long text."""
        return self.tokenizer().encode(texts, truncate=truncate)


def load_project(path) -> Project:
    """Open and validate a project folder.

    Raises ProjectError when the folder or manifest is missing, the manifest is not JSON, the format
    version differs (written by another padless version), or a file is missing or fails its checksum.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not path.is_dir():
        raise ProjectError(f"{path} is not a project folder; create one with `padless compile MODEL --board BOARD --out {path}`")
    if not mpath.is_file():
        raise ProjectError(f"{path} has no {MANIFEST}: not a padless project, or an interrupted compile; recompile it")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{mpath} is not valid JSON ({exc}); recompile the project") from exc
    if manifest.get("format") != FORMAT:
        raise ProjectError(f"{mpath} is not a padless project manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ProjectError(
            f"{path} was written by padless {manifest.get('padless_version', '?')} (project format "
            f"{manifest.get('format_version')}); this padless {__version__} reads format {FORMAT_VERSION}: "
            "recompile the project")
    for key, name in manifest.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise ProjectError(f"{path} is missing {name} ({key}); recompile the project")
        want = manifest.get("checksums", {}).get(name)
        if want and sha256(f) != want:
            raise ProjectError(f"{f} does not match its checksum in {MANIFEST}: the file was modified or "
                               "corrupted; recompile the project")
    return Project(path=path, manifest=manifest)


def write_project(out: Path, spec: EncoderSpec, qe, board: str, recipe: dict, sparsity: dict,
                  calibration: dict, extra: dict | None = None, quant: dict | None = None) -> Path:
    """Write the project folder ``out`` (created; existing padless files are replaced).

    Returns the manifest path. ``extra`` entries are merged into the manifest (e.g. ``schedule``); ``quant``
    is the normalised ``quant:`` config (:func:`padless.quant.config.parse_quant`) recorded in the manifest.
    """
    from .quant.config import parse_quant
    quant = parse_quant({"gelu": calibration.get("gelu", "pwl")}) if quant is None else quant
    from .quant.quantize import save_quantized

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    files = {"quant": "quant.npz", "host": "host.npz"}
    save_quantized(qe, out / "quant.npz")
    save_host_tables(spec, out / "host.npz")
    if spec.tokenizer_path:
        shutil.copyfile(Path(spec.tokenizer_path) / "tokenizer.json", out / "tokenizer.json")
        files["tokenizer"] = "tokenizer.json"
    import numpy
    import transformers
    model = spec.shape_summary()
    model["source"] = spec.source
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "padless_version": __version__,
        "model": model, "board": board, "recipe": recipe,
        "quant": {"scheme": "ibert-int8", "weights": "int8 symmetric per output channel",
                  "activations": "int8 static, per channel where folded (alpha)",
                  "alpha": calibration.get("alpha", 1.0), "gelu": quant["gelu"],
                  "ranges": quant["ranges"], "migrate": quant["migrate"], "rounding": quant["rounding"],
                  "calibration": calibration},
        "sparsity": sparsity, "files": files,
        "checksums": {name: sha256(out / name) for name in files.values()},
        "versions": {"padless": __version__, "numpy": numpy.__version__,
                     "transformers": transformers.__version__},
    }
    manifest.update(extra or {})
    mpath = out / MANIFEST
    tmp = mpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=_json_default))
    tmp.replace(mpath)
    return mpath


def update_manifest(project_dir: Path, updates: dict, new_files: dict | None = None) -> None:
    """Merge ``updates`` into a project's manifest; register ``new_files`` ({key: relative name}) with
    their checksums. Used by later compile steps (code generation, scheduling)."""
    mpath = Path(project_dir) / MANIFEST
    manifest = json.loads(mpath.read_text())
    manifest.update(updates)
    for key, name in (new_files or {}).items():
        manifest["files"][key] = name
        manifest["checksums"][name] = sha256(Path(project_dir) / name)
    tmp = mpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=_json_default))
    tmp.replace(mpath)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
