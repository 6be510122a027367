"""Process environment set up before a command runs (docs/reliability.md, "Bounded inputs and clear lines").

* :func:`quiet_matplotlib_config`: matplotlib warns on every import when its config folder cannot be
  created (a read-only or missing ``HOME``: issue 27 saw two warning lines even for ``padless --version``);
  padless points ``MPLCONFIGDIR`` at a private temporary folder instead, removed at exit.
* :func:`tolerant_stdout`: standard output in an encoding that cannot hold a character (``PYTHONIOENCODING
  =ascii`` and an emoji in the input) writes it as a backslash escape instead of raising
  UnicodeEncodeError.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile


def quiet_matplotlib_config() -> None:
    """Set ``MPLCONFIGDIR`` to a private temporary folder when it is unset and matplotlib's default
    (``$XDG_CONFIG_HOME/matplotlib`` or ``~/.config/matplotlib``) cannot be created or written, the test
    matplotlib itself makes before warning (matplotlib ``_get_config_or_cache_dir``, which creates that
    folder as this does: a real check, since ``os.access`` says yes to root under ``/proc``). Never raises."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    d = os.path.join(base, "matplotlib")
    try:
        os.makedirs(d, exist_ok=True)
        ok = os.path.isdir(d) and os.access(d, os.W_OK)
    except OSError:
        ok = False
    if not ok:
        try:
            tmp = tempfile.mkdtemp(prefix="padless-mpl-")
        except OSError:
            return
        atexit.register(shutil.rmtree, tmp, True)
        os.environ["MPLCONFIGDIR"] = tmp


def tolerant_stdout() -> None:
    """Make ``sys.stdout`` write characters its encoding lacks as backslash escapes (``errors=
    "backslashreplace"``) when that encoding is not UTF-8. Never raises."""
    out = sys.stdout
    enc = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    if enc != "utf8" and hasattr(out, "reconfigure"):
        try:
            out.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):
            pass
