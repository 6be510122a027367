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
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__, fsutil
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


def save_host_tables(spec: EncoderSpec, path: Path, root=None) -> None:
    """Write the host half of the model (embeddings, embedding LayerNorm) to ``path`` (.npz; atomic, no
    link followed, inside ``root`` when given: :mod:`padless.fsutil`). Raises WriteError."""
    e = spec.embeddings
    arrays = {"word": e.word, "position_offset": np.int64(e.position_offset), "scale": np.float64(e.scale)}
    if e.position is not None:
        arrays["position"] = e.position
    if e.token_type is not None:
        arrays["token_type"] = e.token_type
    if e.ln is not None:
        arrays.update(ln_gamma=e.ln.gamma, ln_beta=e.ln.beta, ln_eps=np.float64(e.ln.eps))
    fsutil.write_npz(path, arrays, root)


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

    @property
    def model_max_length(self) -> int:
        """The model's truncation length in tokens ([CLS] and [SEP] included): ``model.max_seq_length`` of
        the manifest (sentence-transformers' ``max_seq_length`` from ``sentence_bert_config.json``, a
        recipe's ``max_seq_length`` or ``compile --max-length``), else the model's ``max_positions``."""
        m = self.model
        msl = m.get("max_seq_length")
        if isinstance(msl, int) and not isinstance(msl, bool) and 2 <= msl <= int(m["max_positions"]):
            return msl
        return int(m["max_positions"])

    @property
    def kernel_max_seq(self) -> int | None:
        """The generated kernel's longest sequence (``hls.max_seq``), None without HLS code."""
        v = (self.manifest.get("hls") or {}).get("max_seq")
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else None

    @property
    def max_length(self) -> int:
        """The truncation length every backend uses: :attr:`model_max_length`, cut to the kernel's longest
        sequence when the board's plan chose a shorter one (small boards), so all backends see the same
        tokens."""
        k = self.kernel_max_seq
        return min(self.model_max_length, k) if k else self.model_max_length

    @property
    def max_length_from(self) -> str:
        """Where :attr:`max_length` comes from, in words (for messages)."""
        if self.max_length < self.model_max_length:
            return f"the kernel's maximum sequence length for {self.manifest.get('board', 'its board')} (hls.max_seq)"
        src = self.model.get("max_seq_length_from")
        if self.max_length == int(self.model["max_positions"]) and not src:
            return "the model's maximum positions"
        return f"max_seq_length from {src}" if src else "max_seq_length"

    def check_max_length(self, n) -> int:
        """``--max-length N`` validated against the model: an integer in [2, max_positions]. Raises
        InputError."""
        top = int(self.model["max_positions"])
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= top:
            raise InputError(f"--max-length {n!r} must be an integer from 2 to the model's {top} positions")
        return n

    def tokenizer(self):
        """The model's tokenizer (:class:`padless.models.Tokenizer`, padding disabled)."""
        if self._tokenizer is None:
            from .models import Tokenizer
            if "tokenizer" not in self.manifest["files"]:
                raise ProjectError(f"{self.path} has no tokenizer; give token ids instead of texts")
            self._tokenizer = Tokenizer(str(self.path), self.max_length, self.max_length_from)
        return self._tokenizer

    def tokenize(self, texts: Sequence[str], truncate: bool = False, max_length: int | None = None,
                 truncated: list | None = None) -> list[list[int]]:
        """Texts -> token id lists ([CLS] ... [SEP]) of at most ``max_length`` tokens (default
        :attr:`max_length`); indices of texts that were cut are appended to ``truncated`` when given.
        Raises InputError for an empty text, one with no words, or one that is too long without
        ``truncate``."""
        if max_length is not None:
            self.check_max_length(max_length)
        return self.tokenizer().encode(texts, truncate=truncate, max_len=max_length, truncated=truncated)


def load_project(path) -> Project:
    """Open and validate a project folder.

    A folder is accepted only when its manifest is a padless manifest of this format (an integer
    ``format_version``), every file it lists lies inside the folder, exists and has its SHA-256 in
    ``checksums``, and ``weights.bin`` (when listed) is as long as its header and the manifest's layout say
    (the kernel reads exactly that many bytes). What a project folder may contain, and what loading it may
    do, is in docs/reliability.md ("Threat model").

    Raises ProjectError when the folder or manifest is missing, the manifest is not a JSON object, the
    format version differs (written by another padless version), or a file is missing, outside the folder,
    without a checksum, failing its checksum or of the wrong size.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not path.is_dir():
        raise ProjectError(f"{path} is not a project folder; create one with `padless compile MODEL --board BOARD --out {path}`")
    if not mpath.is_file():
        raise ProjectError(f"{path} has no {MANIFEST}: not a padless project, or an interrupted compile; recompile it")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{mpath} is not valid JSON ({exc}); recompile the project") from exc
    except OSError as exc:
        raise ProjectError(f"{mpath} cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ProjectError(f"{mpath} is not a padless project manifest (a JSON object with "
                           f"\"format\": \"{FORMAT}\"); recompile the project")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProjectError(f"{mpath}: format_version {version!r} is not an integer; the manifest was edited or "
                           f"corrupted (this padless {__version__} reads format {FORMAT_VERSION}): recompile the project")
    if version != FORMAT_VERSION:
        raise ProjectError(
            f"{path} was written by padless {manifest.get('padless_version', '?')} (project format "
            f"{version}); this padless {__version__} reads format {FORMAT_VERSION}: recompile the project")
    files, sums = manifest.get("files"), manifest.get("checksums")
    if not isinstance(files, dict) or not isinstance(sums, dict) or not isinstance(manifest.get("model"), dict):
        raise ProjectError(f"{mpath} has no files/checksums/model sections; recompile the project")
    for key in ("quant", "host"):
        if key not in files:
            raise ProjectError(f"{mpath} lists no {key} file; recompile the project")
    check_manifest_values(manifest, mpath)
    root = path.resolve()
    for key, name in files.items():
        if not isinstance(name, str) or not name or Path(name).is_absolute() or \
                not (root / name).resolve().is_relative_to(root):
            raise ProjectError(f"{mpath}: file {key} = {name!r} is not a path inside the project folder; "
                               "the manifest was edited: recompile the project")
        if FILE_NAMES.get(key, name) != name:
            raise ProjectError(f"{mpath}: file {key} = {name!r}, but padless writes it as {FILE_NAMES[key]!r} (the "
                               "csim and the runtime read exactly that file); the manifest was edited: recompile "
                               "the project")
        _check_file(path, mpath, name, sums, key)
    generated = manifest.get("generated", [])
    if not isinstance(generated, list) or not all(isinstance(n, str) for n in generated):
        raise ProjectError(f"{mpath}: \"generated\" is not a list of file names; the manifest was edited: "
                           "recompile the project")
    for name in generated:   # every file the csim compiles (hls/ with hls/include/**) or a tool reads
        if not name or Path(name).is_absolute() or not (root / name).resolve().is_relative_to(root):
            raise ProjectError(f"{mpath}: generated file {name!r} is not a path inside the project folder; the "
                               "manifest was edited: recompile the project")
        if name.startswith("hls/") or os.path.lexists(path / name):   # a missing bitstream file is regenerated
            _check_file(path, mpath, name, sums, "generated")
    if "weights" in files:
        _check_weights_image(path / files["weights"], manifest)
    return Project(path=path, manifest=manifest)


#: The name padless gives each file a manifest lists (``files``): a manifest pointing a key elsewhere (the
#: csim kernel at another source, the host tables at quant.npz) is refused.
FILE_NAMES = {"quant": "quant.npz", "host": "host.npz", "tokenizer": "tokenizer.json", "weights": "weights.bin",
              "hls_kernel": "hls/padless_encoder.cpp", "hls_config": "hls/config.h", "hls_tcl": "hls/run_hls.tcl",
              "hls_tb": "hls/tb.cpp", "makefile": "Makefile", "token_policy": "policy.npz"}


def _check_file(path: Path, mpath: Path, name: str, sums: dict, key: str) -> None:
    """``path/name`` exists, is a regular file (not a link) and matches its SHA-256 in ``sums``. Raises
    ProjectError."""
    f = path / name
    if f.is_symlink():
        raise ProjectError(f"{f} is a symbolic link: a project holds its own files (padless never reads or "
                           "writes through a link in it); recompile the project")
    if not f.is_file():
        raise ProjectError(f"{path} is missing {name} ({key}); recompile the project")
    want = sums.get(name)
    if not isinstance(want, str) or len(want) != 64:
        raise ProjectError(f"{mpath} has no checksum for {name}: every file a project lists must have its "
                           "SHA-256 in \"checksums\"; recompile the project")
    if sha256(f) != want:
        raise ProjectError(f"{f} does not match its checksum in {MANIFEST}: the file was modified or "
                           "corrupted; recompile the project")


def _is_int(v, lo: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


#: manifest ``model`` keys and what each must be: (check, words).
_MODEL_KEYS = {
    "name": (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty name"),
    "hidden_size": (_is_int, "a whole number >= 1"), "num_heads": (_is_int, "a whole number >= 1"),
    "intermediate_size": (_is_int, "a whole number >= 1"), "num_layers": (_is_int, "a whole number >= 1"),
    "vocab_size": (_is_int, "a whole number >= 1"), "max_positions": (lambda v: _is_int(v, 2), "a whole number >= 2"),
    "activation": (lambda v: isinstance(v, str), "a name"), "pooling": (lambda v: isinstance(v, str), "a name"),
    "normalize": (lambda v: isinstance(v, bool), "true or false"),
}


def check_manifest_values(manifest: dict, mpath) -> None:
    """The values every backend reads from a manifest have their types and ranges: ``model.*``
    (:data:`_MODEL_KEYS`), ``board`` (a name), ``sparsity`` / ``hls`` / ``schedule`` / ``quant`` (mappings),
    ``hls.max_tokens`` / ``max_seq`` / ``k_max`` (whole numbers >= 1). Raises ProjectError naming the key."""
    def bad(key, value, what):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return ProjectError(f"{mpath}: {key} = {shown} is not {what}; the manifest was edited or corrupted: "
                            "recompile the project")
    model = manifest["model"]
    for key, (ok, what) in _MODEL_KEYS.items():
        if key not in model:
            raise ProjectError(f"{mpath}: model.{key} is missing; the manifest was edited or corrupted: recompile "
                               "the project")
        if not ok(model[key]):
            raise bad(f"model.{key}", model[key], what)
    if model["hidden_size"] % model["num_heads"]:
        raise bad("model.num_heads", model["num_heads"], f"a divisor of hidden_size {model['hidden_size']}")
    board = manifest.get("board")
    if not isinstance(board, str) or not board.strip():
        raise bad("board", board, "a board name") if "board" in manifest else ProjectError(
            f"{mpath}: board is missing; the manifest was edited or corrupted: recompile the project")
    for key in ("sparsity", "hls", "schedule", "quant", "recipe"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise bad(key, manifest[key], "a mapping")
    hls = manifest.get("hls") or {}
    for key in ("max_tokens", "max_seq", "k_max"):
        if key in hls and not _is_int(hls[key]):
            raise bad(f"hls.{key}", hls[key], "a whole number >= 1")
    for key in ("attention", "weights", "tokens"):
        v = (manifest.get("sparsity") or {}).get(key)
        if v is not None and not isinstance(v, dict):
            raise bad(f"sparsity.{key}", v, "a mapping")


def _check_weights_image(f: Path, manifest: dict) -> None:
    """``weights.bin`` must be exactly as long as its header's ``total_bytes`` and the manifest's
    ``hls.weights_layout.total_bytes`` (the kernel reads the sections at the offsets of config.h, so a
    shorter image would be read past its end). Raises ProjectError."""
    from .codegen.weights import read_header
    header = read_header(f)  # ProjectError for a bad magic, version or a size that differs from the header
    layout = (manifest.get("hls") or {}).get("weights_layout") or {}
    want = layout.get("total_bytes") if isinstance(layout, dict) else None
    if want is not None and want != header["total_bytes"]:
        raise ProjectError(f"{f} holds {header['total_bytes']} bytes but the manifest's weights layout says "
                           f"{want}: the image does not belong to this kernel; recompile the project")


#: Files and folders of a project that the Vitis / Make flows write (``make clean`` removes them); a
#: recompile may replace them with the rest of ``hls/``.
_BUILD_OUTPUTS = ("hls/*.log", "hls/padless_*/", "hls/tv/", "hls/include/padless/")


def _is_padless_project(out: Path) -> dict | None:
    """The manifest of ``out`` when it is a padless project folder (any format version), else None."""
    try:
        m = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def own_names(out) -> set[str]:
    """Top-level names in the folder ``out`` that an earlier padless project there wrote (its manifest's
    ``files`` and ``generated``, the generated folders): a recompile replaces them and carries everything
    else over (:func:`padless.staging.project_update`). Empty when ``out`` is not a padless project."""
    old = _is_padless_project(Path(out))
    if old is None:
        return set()
    names = {MANIFEST, "hls", "bitstream", "bitstream.mk", "Makefile"}
    listed = list(((old.get("files") or {}) if isinstance(old.get("files"), dict) else {}).values())
    listed += old.get("generated") if isinstance(old.get("generated"), list) else []
    names |= {Path(n).parts[0] for n in listed if isinstance(n, str) and n and Path(n).parts}
    return {n for n in names if n not in ("..", ".", "/")}


def check_out_dir(out, force: bool = False) -> Path:
    """Check that ``padless compile`` may write the project folder ``out``; returns it as a Path.

    Allowed: a folder that does not exist (it is created), an empty folder, or an existing padless project
    (recompiling replaces the files padless wrote there). A non-empty folder that is not a padless project
    needs ``force`` (then padless writes its files into it, replacing files of the same names). In every
    case ``hls/`` is regenerated as a whole, so a ``hls/`` holding files padless did not write is refused
    even with ``force``: padless never deletes a file it did not write. Its own files are those the
    previous manifest lists (``files`` and ``generated``) and the outputs of the project's own Makefile
    and Vitis run (``_BUILD_OUTPUTS``).

    Raises InputError: ``out`` empty (``--out ""``), a file, inside a file, not writable, a non-empty
    folder that is not a padless project (without ``force``), or a ``hls/`` with foreign files.
    """
    if out is None or str(out).strip() == "":
        raise InputError('--out is empty: give the project folder to write, e.g. --out out/tiny-u280 '
                         '(padless never writes into the current directory by default)')
    out = Path(out)
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    if not out.exists():
        base = next(p for p in out.absolute().parents if p.exists())
        if not os.access(base, os.W_OK | os.X_OK):
            raise InputError(f"--out {out} cannot be created: {base} is not writable; choose another folder")
        return out
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise InputError(f"--out {out} cannot be read ({exc.strerror or exc}); choose another folder") from exc
    old = _is_padless_project(out) if entries else None
    if entries and old is None and not force:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise InputError(f"--out {out} is not empty ({shown}) and is not a padless project: choose a new or "
                         "empty folder, or pass --force to write the project's files into it (padless "
                         "replaces only files of the same names and deletes nothing)")
    hls = out / "hls"
    if hls.is_dir():
        listed = {str(n) for n in ((old or {}).get("files") or {}).values() if isinstance(n, str)}
        generated = (old or {}).get("generated")
        listed |= {str(n) for n in generated if isinstance(n, str)} if isinstance(generated, list) else set()
        allowed = set()
        for pattern in _BUILD_OUTPUTS:
            for p in out.glob(pattern.rstrip("/")):
                if pattern.endswith("/") and p.is_dir():
                    allowed.update(p.rglob("*"))
                elif not pattern.endswith("/") and p.is_file():
                    allowed.add(p)
        foreign = sorted(str(p.relative_to(out)) for p in hls.rglob("*")
                         if (p.is_file() or p.is_symlink()) and str(p.relative_to(out)) not in listed
                         and p not in allowed)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise InputError(f"--out {out}: {hls} holds {len(foreign)} file(s) padless did not write ({shown}); "
                             "padless regenerates hls/ as a whole: move them out of hls/ (or choose another "
                             "--out) and compile again")
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {out} is not writable; choose another folder")
    return out


def write_project(out: Path, spec: EncoderSpec, qe, board: str, recipe: dict, sparsity: dict,
                  calibration: dict, extra: dict | None = None, quant: dict | None = None,
                  quant_npz: bytes | None = None) -> Path:
    """Write the project folder ``out`` (created; padless's files of an existing project are replaced;
    :func:`check_out_dir` decides whether ``out`` may be written at all).

    Returns the manifest path. ``extra`` entries are merged into the manifest (e.g. ``schedule``); ``quant``
    is the normalised ``quant:`` config (:func:`padless.quant.config.parse_quant`) recorded in the manifest;
    ``quant_npz``: the bytes of ``qe`` as :func:`padless.quant.quantize.save_quantized` writes them (from the
    quantization cache), written as they are.
    Raises InputError when the folder cannot be created or written (naming the OS error).
    """
    from .quant.config import parse_quant
    quant = parse_quant({"gelu": calibration.get("gelu", "pwl")}) if quant is None else quant
    from .quant.quantize import save_quantized

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out} cannot be created ({exc.strerror or exc}); choose another folder") from exc
    files = {"quant": "quant.npz", "host": "host.npz"}
    if quant_npz is not None:
        fsutil.write_bytes(out / "quant.npz", quant_npz, root=out)
    else:
        save_quantized(qe, out / "quant.npz", root=out)
    save_host_tables(spec, out / "host.npz", root=out)
    if spec.tokenizer_path:
        fsutil.copy_file(Path(spec.tokenizer_path) / "tokenizer.json", out / "tokenizer.json", root=out)
        files["tokenizer"] = "tokenizer.json"
    import numpy
    import transformers
    model = spec.shape_summary()
    model["source"] = spec.source
    msl = recipe.get("max_seq_length")
    if msl is not None:  # the truncation length (sentence-transformers' max_seq_length, or --max-length)
        model["max_seq_length"] = min(int(msl), int(spec.max_positions))
        model["max_seq_length_from"] = recipe.get("max_seq_length_from") or "recipe"
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "padless_version": __version__,
        "model": model, "board": board, "recipe": recipe,
        "quant": {"scheme": "ibert-int8", "weights": "int8 symmetric per output channel",
                  "activations": "int8 static, per channel where folded (alpha)",
                  "alpha": calibration.get("alpha", 1.0), "gelu": quant["gelu"],
                  "ranges": quant["ranges"], "migrate": quant["migrate"], "rounding": quant["rounding"],
                  "zero_point": quant.get("zero_point", []), "precision": quant.get("precision", {"act": 8}),
                  "calibration": calibration},
        "sparsity": sparsity, "files": files,
        "checksums": {name: sha256(out / name) for name in files.values()},
        "versions": {"padless": __version__, "numpy": numpy.__version__,
                     "transformers": transformers.__version__},
    }
    manifest.update(extra or {})
    mpath = out / MANIFEST
    fsutil.write_text(mpath, json.dumps(manifest, indent=2, default=_json_default), root=out)
    return mpath


def update_manifest(project_dir: Path, updates: dict, new_files: dict | None = None) -> None:
    """Merge ``updates`` into a project's manifest; register ``new_files`` ({key: relative name}) with
    their checksums. Used by later compile steps (code generation, scheduling). The manifest is replaced
    atomically (:func:`padless.fsutil.write_text`); WriteError for a link or an OS error."""
    mpath = Path(project_dir) / MANIFEST
    manifest = json.loads(mpath.read_text())
    manifest.update(updates)
    for key, name in (new_files or {}).items():
        manifest["files"][key] = name
        manifest["checksums"][name] = sha256(Path(project_dir) / name)
    fsutil.write_text(mpath, json.dumps(manifest, indent=2, default=_json_default), root=project_dir)


def record_generated(project_dir) -> list[str]:
    """List every file under ``hls/`` and ``bitstream/`` of a project in its manifest (``generated``) with
    its SHA-256 in ``checksums`` (:func:`load_project` checks them: the csim compiles all of ``hls/``).
    Returns the list. Called by the code generator and the compile's last step."""
    out = Path(project_dir)
    files = sorted(str(f.relative_to(out)) for d in ("hls", "bitstream") if (out / d).is_dir()
                   for f in (out / d).rglob("*") if f.is_file() and not f.is_symlink())
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    sums = manifest.get("checksums") if isinstance(manifest.get("checksums"), dict) else {}
    old = manifest.get("generated") if isinstance(manifest.get("generated"), list) else []
    sums = {k: v for k, v in sums.items() if k not in old or k in (manifest.get("files") or {}).values()}
    sums.update({n: sha256(out / n) for n in files})
    update_manifest(out, {"generated": files, "checksums": sums})
    return files


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def check_generated_sparsity(project) -> None:
    """Raise ProjectError when the manifest's sparsity (attention, weights, tokens) is not the one the
    project's HLS code was generated for (``manifest["hls"]["sparsity"]``): e.g. a policy installed, or the
    config edited, without regenerating the kernel. A manifest without that record is not checked."""
    built = (project.manifest.get("hls") or {}).get("sparsity")
    if built is None:
        return
    for part in ("attention", "weights", "tokens"):
        if (built.get(part) or {}) != (project.sparsity.get(part) or {}):
            raise ProjectError(f"{project.path}: the HLS code was generated for {part} sparsity "
                               f"{built.get(part) or {}} but the manifest says {project.sparsity.get(part) or {}}; "
                               "regenerate it (padless compile, or padless.codegen.hls.generate)")
