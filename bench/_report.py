"""Write one benchmark's figures into docs/benchmarks.md.

Each bench script owns one section, delimited by ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
re-running a script replaces only its own section. Every section records the command that produced it,
the machine and the date, so figures can be reproduced and compared.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Figures written by the scripts in `bench/`; each section names the command that produced it, the
machine and the date. The machines are shared and noisy: compare ratios measured side by side in one
run, never absolute times across sections.
"""


def machine() -> str:
    """One line describing this machine (CPU model, cores, Python)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def command() -> str:
    """The command line that is running, as a user would type it."""
    return shlex.join(["python"] + sys.argv)


def write_section(name: str, title: str, body: str) -> Path:
    """Replace (or append) section ``name`` of docs/benchmarks.md with ``body`` under ``title``."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"<!-- bench:{name} -->\n## {title}\n\n"
             f"Command: `{command()}`  \nMachine: {machine()}  \nDate: {stamp}\n\n"
             f"{body.strip()}\n<!-- /bench:{name} -->")
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    return DOC


def calibration_label(model: str = "minilm-l6") -> str:
    """What the recipe's default calibration is, in words: e.g. "256 sentences: the first 128 of vader-tweets
    and of reuters"."""
    from padless.models import load_recipe
    cal = load_recipe(model).calibration or {}
    names = cal.get("dataset", "vader-tweets")
    names = [names] if isinstance(names, str) else list(names)
    count = int(cal.get("count", 256))
    if len(names) == 1:
        return f"the first {count} texts of {names[0]}"
    return f"{count} sentences: the first {count // len(names)} of " + " and of ".join(names)
