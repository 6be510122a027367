"""Run every hostile / careless command line of tests/probes.py through the real ``padless`` console entry
point (a fresh process each) and write the probe table of docs/reliability.md.

Usage: python bench/hostile_probes.py [--baseline-pythonpath DIR] [--only ID ...] [--no-write]

A probe passes ("one clear line") when the process exits non-zero, prints exactly one stderr line, which
starts with ``padless: error:`` and contains the probe's expected text, prints no traceback, no payload
ran (no ``PWNED`` file) and the user's files are byte for byte as before. ``--baseline-pythonpath`` also
runs each probe with another padless source tree (e.g. a checkout of the commit before issue 19) and adds
its outcome as a column, so the table shows what changed.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import command, machine  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- probes:begin -->", "<!-- probes:end -->"


def outcome(probe, rc, err, tmp: Path, keep: dict) -> str:
    """"ok" or what went wrong, in words."""
    from probes import PWNED
    lines = err.strip().splitlines()
    if list(tmp.rglob(PWNED)):
        return "PAYLOAD RAN"
    if any(not p.is_file() or p.read_bytes() != data for p, data in keep.items()):
        return "user files changed"
    if rc == 0:
        return "accepted (exit 0)"
    if "Traceback" in err:
        last = next((ln for ln in reversed(lines) if ln.strip()), "")
        return "traceback: " + last.split(":")[0][:40]
    if not lines or not lines[0].startswith("padless: error:"):
        return f"exit {rc}, other output"
    if len(lines) > 1:
        return f"{len(lines)} lines"
    if probe.expect not in lines[0]:
        return "other message"
    return "ok"


def run_one(probe, base: Path, tiny: Path, path_project, pythonpath: str) -> tuple[str, str]:
    from probes import Context
    with tempfile.TemporaryDirectory(dir=base) as d:
        tmp = Path(d)
        ctx = Context(tmp, tiny, path_project)
        if probe.setup:
            probe.setup(ctx)
        fields = ctx.fields(probe)
        argv = [a.format(**fields) for a in probe.argv]
        env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("PADLESS_SIM_DEVICE", None)
        env.update({k: v.format(**fields) for k, v in probe.env.items()})
        keep = {Path(k.format(**fields)): Path(k.format(**fields)).read_bytes() for k in probe.keep}
        r = subprocess.run([sys.executable, "-c", "import sys; from padless.cli import main; sys.exit(main())", *argv],
                           capture_output=True, text=True, env=env, cwd=tmp, timeout=900)
        err = r.stderr
        res = outcome(probe, r.returncode, err, tmp, keep)
        first = next((ln for ln in err.strip().splitlines() if ln.strip()), "")
        return res, first


def _kind(res: str) -> str:
    """An outcome in the words of the summary."""
    if res == "ok":
        return "one clear line"
    if res.startswith("traceback"):
        return "tracebacks"
    return {"PAYLOAD RAN": "payloads ran", "user files changed": "changed or deleted the user's files",
            "accepted (exit 0)": "accepted silently (exit 0)", "other message": "another message"}.get(
        res, "argparse usage block" if res.startswith("exit") else "multi-line errors")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-pythonpath", help="another padless source tree (its sw/ folder) to compare with")
    ap.add_argument("--baseline-label", default="git archive c7c39ef sw models hw",
                    help="how the baseline tree was made, for the table")
    ap.add_argument("--only", nargs="*", help="probe ids to run")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from probes import PROBES, make_bert_folder

    from padless.build import compile_project
    base = Path(tempfile.mkdtemp(prefix="padless-probes-"))
    tiny = base / "tiny"
    compile_project("tiny", board="u280", out=tiny)
    holder = {}

    def path_project():
        if not holder:
            model = make_bert_folder(base / "pathmodel")
            compile_project(str(model), board="u280", out=base / "pathproj", calib_count=16)
            holder["v"] = (base / "pathproj", model)
        return holder["v"]

    here = str(ROOT / "sw")
    rows, ok, ok_base = [], 0, 0
    probes = [p for p in PROBES if not args.only or p.id in args.only]
    for i, probe in enumerate(probes, 1):
        res, first = run_one(probe, base, tiny, path_project, here)
        before = run_one(probe, base, tiny, path_project, args.baseline_pythonpath)[0] if args.baseline_pythonpath else ""
        ok += res == "ok"
        ok_base += before == "ok"
        print(f"[{i}/{len(probes)}] {probe.id}: {res}" + (f" (baseline: {before})" if before else ""), flush=True)
        rows.append((probe, res, before, first))

    n = len(probes)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = ["| # | probe (test id) | bad input | expected error (contains) | result |"
            + (" before issue 19 |" if args.baseline_pythonpath else ""),
            "|---|---|---|---|---|" + ("---|" if args.baseline_pythonpath else "")]
    table = []
    for i, (p, res, before, first) in enumerate(rows, 1):
        what = p.what.replace("|", "\\|")
        exp = p.expect.replace("|", "\\|").replace("`", "'")
        item = f" ({p.item})" if p.item else ""
        table.append(f"| {i} | `{p.id}`{item} | {what} | `{exp}` | {'one clear line' if res == 'ok' else res} |"
                     + (f" {'one clear line' if before == 'ok' else before.replace('other message', 'another message')} |"
                        if args.baseline_pythonpath else ""))
    summary = (f"**{ok} of {n} bad command lines end in one clear `padless: error:` line** that names what "
               "was wrong, with a non-zero exit, no traceback, no payload run and the user's files untouched.")
    if args.baseline_pythonpath:
        from collections import Counter
        kinds = Counter(_kind(before) for _, _, before, _ in rows)
        summary += (f" Before issue 19 ({args.baseline_label}): {ok_base} of {n} gave that line; "
                    + ", ".join(f"{v} {k}" for k, v in kinds.most_common() if k != "one clear line") + ". "
                    "('another message': one error line, but not the one that names the problem the probe "
                    "sets up; 'argparse usage block': several lines, including options this work added.)")
    body = "\n".join([BEGIN, f"Command: `{command()}`  ", f"Machine: {machine()}  ", f"Date: {stamp}", "",
                      summary, "", *head, *table, END])
    print(summary)
    if not args.no_write and not args.only:
        text = DOC.read_text()
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: body, text, flags=re.S)
        DOC.write_text(text)
        print(f"wrote {DOC}")
    return 0 if ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
