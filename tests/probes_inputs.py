"""Probes of issue 27 part B (docs/reliability.md, "Bounded inputs and clear lines"): hostile or careless
inputs that were tracebacks, unbounded reads or silently accepted values. Appended to
:data:`probes.PROBES`, so ``tests/test_probes.py`` and ``bench/hostile_probes.py`` run them like the others
(one ``padless: error:`` line holding ``expect``, a non-zero exit, the user's files untouched)."""
from __future__ import annotations

import shutil

from probes import C, Context, Probe, _write


def _alias_bomb(levels: int = 9) -> str:
    """A YAML "billion laughs": 9 aliases to the level below at each of ``levels`` levels, inside an
    allowed value (issue 27 item 5: 8 levels made a 312 MB error line, 9 a MemoryError)."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + f"\ntokens: {{layers: *{chr(ord('a') + levels - 1)}}}\n"


def _cut_dataset(ctx: Context):
    """A copy of the vader-movie cache cut at a line boundary (427 of its texts) under {tmp}/cache."""
    from padless.data.datasets import _cache_files, cache_root, load_dataset
    load_dataset("vader-movie")  # cached by the registries on first use
    src_tsv, _ = _cache_files(cache_root(), "vader-movie")
    dst = ctx.tmp / "cache" / "data" / "vader-movie"
    shutil.copytree(src_tsv.parent, dst)
    tsv = dst / src_tsv.name
    tsv.write_text("".join(tsv.read_text(encoding="utf-8").splitlines(keepends=True)[:427]), encoding="utf-8")


def _cut_inside_line(ctx: Context):
    _cut_dataset(ctx)
    from padless.data.datasets import _cache_files
    tsv = _cache_files(ctx.tmp / "cache" / "data", "vader-movie")[0]
    tsv.write_bytes(tsv.read_bytes()[:-7])


LONG_TEXT = "word " * 3000

PROBES_INPUTS: list[Probe] = [
    # ---- bounded YAML (27.5, tracebacks)
    Probe("config-alias-bomb", "a YAML alias bomb inside an allowed value (9 levels, ~600 bytes)",
          [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "alias *a is not allowed",
          setup=_write("c.yaml", _alias_bomb()), item="27.5"),
    Probe("config-nested-3000", "a config nested 3,000 levels", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "nested deeper than 32 levels", setup=_write("c.yaml", "attention: " + "[" * 3000 + "]" * 3000 + "\n"),
          item="27.tracebacks"),
    Probe("config-key-twice", "a config key given twice (last won)", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "key 'attention' is given twice", setup=_write("c.yaml", "attention: {topk: 4}\nattention: {topk: 8}\n"),
          item="27.12"),
    Probe("config-huge", "a 2 MB config file", [*C, "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"],
          "larger than 1,048,576 bytes", setup=_write("c.yaml", "# " + "x" * (2 << 20) + "\n")),
    Probe("finetune-config-alias", "a finetune config with an alias", ["finetune", "tiny", "--out", "{tmp}/ft",
                                                                      "--config", "{tmp}/f.yaml"],
          "alias *w is not allowed", setup=_write("f.yaml", "weights: &w {sparsity: 0.5}\nattention: *w\n")),
    # ---- bounded input files (27.6)
    Probe("run-input-dev-zero", "run --input /dev/zero", ["run", "{proj}", "--input", "/dev/zero"],
          "larger than 67,108,864 bytes", item="27.6"),
    Probe("run-input-over-limit", "run --input a file over PADLESS_MAX_INPUT_BYTES",
          ["run", "{proj}", "--input", "{tmp}/in.txt"], "larger than 100 bytes",
          setup=_write("in.txt", "a fine film\n" * 20), env={"PADLESS_MAX_INPUT_BYTES": "100"}),
    Probe("run-input-limit-bad", "PADLESS_MAX_INPUT_BYTES=lots", ["run", "{proj}", "--input", "{tmp}/in.txt"],
          "PADLESS_MAX_INPUT_BYTES='lots'", setup=_write("in.txt", "a fine film\n"),
          env={"PADLESS_MAX_INPUT_BYTES": "lots"}),
    # ---- values accepted that should not be (27.12)
    Probe("compile-calib-count-1e8", "calibration count 100,000,000 in a config",
          [*C[:4], "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "calibration.count 100,000,000 is more than",
          setup=_write("c.yaml", "calibration: {dataset: vader-tweets, count: 100000000}\n"), item="27.12"),
    Probe("compile-calib-count-flag-1e8", "--calib-count 100000000",
          [*C[:4], "--out", "{tmp}/x", "--calib-count", "100000000"], "from 1 to 100,000", item="27.12"),
    Probe("compile-calib-count-over-dataset", "calibration count above the dataset's texts (was: fewer used)",
          [*C[:4], "--out", "{tmp}/x", "--config", "{tmp}/c.yaml"], "which has only",
          setup=_write("c.yaml", "calibration: {dataset: vader-tweets, count: 99999}\n"), item="27.12"),
    Probe("eval-arabic-indic-label", "Arabic-Indic digits as a label", ["eval", "{proj}", "--data", "{tmp}/b.tsv"],
          "is not an integer (ASCII digits 0-9)", setup=_write("b.tsv", "\u0661\tgood film\n0\tbad film\n"),
          item="27.12"),
    Probe("profile-lengths-arabic-indic", "profile --lengths with Arabic-Indic digits",
          ["profile", "{proj}", "--lengths", "\u0663,4"], "is not a whole number"),
    Probe("run-max-tokens-fullwidth", "--max-tokens in fullwidth digits", ["run", "{proj}", "--text", "hi",
                                                                         "--max-tokens", "\uff18"],
          "is not a whole number"),
    Probe("schedule-lengths-arabic-indic", "schedule --lengths file with Arabic-Indic digits",
          ["schedule", "{proj}", "--lengths", "{tmp}/l.txt"], "l.txt:1:", setup=_write("l.txt", "\u0665\n")),
    Probe("profile-lengths-empty", 'profile --lengths "" (said "unknown dataset None")',
          ["profile", "{proj}", "--lengths", ""], "--lengths is empty", item="27.tracebacks"),
    Probe("profile-fixed-length-short", "profile --fixed-length shorter than the texts (ran them at their length)",
          ["profile", "{proj}", "--lengths", "5,40,12", "--fixed-length", "16"], "shorter than the longest sequence",
          item="27.12"),
    Probe("profile-fixed-length-clamped", "profile --fixed-length above the kernel's maximum (clamped, mislabelled)",
          ["profile", "{proj}", "--lengths", "5,40,12", "--fixed-length", "4000"], "longer than the kernel's maximum",
          item="27.12"),
    Probe("schedule-fixed-length-short", "schedule --fixed-length shorter than the texts",
          ["schedule", "{proj}", "--lengths", "{tmp}/l.txt", "--fixed-length", "8"], "shorter than the longest",
          setup=_write("l.txt", "5\n40\n")),
    Probe("schedule-text-too-long", "schedule --input a text over the max length (truncated silently)",
          ["schedule", "{proj}", "--input", "{tmp}/t.txt"], "pass --truncate", setup=_write("t.txt", LONG_TEXT + "\n"),
          item="27.12"),
    Probe("eval-cached-dataset-cut", "a cached dataset cut at a line boundary (427 of 10,072 texts)",
          ["eval", "{proj}", "--dataset", "vader-movie", "--limit", "1000"], "holds 427 texts but its source records",
          setup=_cut_dataset, env={"PADLESS_CACHE": "{tmp}/cache"}, item="27.11"),
    Probe("eval-cached-dataset-cut-in-line", "a cached dataset cut inside its last line",
          ["eval", "{proj}", "--dataset", "vader-movie", "--limit", "10"], "cut inside a line",
          setup=_cut_inside_line, env={"PADLESS_CACHE": "{tmp}/cache"}, item="27.11"),
    # ---- tracebacks and wrong lines
    Probe("run-csim-cxx-with-flags", 'CXX="g++ -O0" (was: reported as not found)',
          ["run", "{proj}", "--backend", "csim", "--text", "hi"], "holds flags: CXX names the compiler only",
          env={"CXX": "g++ -O0"}, item="27.tracebacks"),
]
