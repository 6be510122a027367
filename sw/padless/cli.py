"""The ``padless`` command line.

Sub-commands live one per module in :mod:`padless.commands`; each module defines
``register(subparsers)`` which adds its parser and sets ``func`` (``func(args) -> int``). Commands are
discovered, so adding one is adding one file. Errors derived from
:class:`padless.errors.PadlessError` print as ``padless: error: ...`` and exit non-zero, never as a
traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys

from . import __version__
from .errors import PadlessError


class _Parser(argparse.ArgumentParser):
    """argparse with padless's error format: one ``padless: error: ...`` line (exit 2), naming the
    sub-command and pointing at its ``--help``, instead of a usage block."""

    def error(self, message):
        sub = self.prog.partition(" ")[2]
        where = f"{sub}: " if sub else ""
        self.exit(2, f"padless: error: {where}{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="padless",
        description="Variable-length Transformer encoders on FPGAs: quantize, sparsify, schedule, "
                    "generate HLS, run (golden / csim / pynq).")
    parser.add_argument("--version", action="version", version=f"padless {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def _output_failed(exc: OSError) -> int:
    """One line for a standard output that cannot be written (``> /dev/full``: ENOSPC, EIO, a closed
    pipe's EPIPE is quiet), and stdout pointed at /dev/null so the interpreter's exit flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    if isinstance(exc, BrokenPipeError):
        return 0
    print(f"padless: error: cannot write the output ({exc.strerror or exc}); free space on the device it goes "
          "to, or redirect it elsewhere", file=sys.stderr)
    return 1


def _stdout_error(exc: OSError) -> bool:
    """True for an OSError raised by writing standard output (no file name, a write-side errno)."""
    import errno
    return exc.filename is None and exc.errno in (errno.ENOSPC, errno.EIO, errno.EPIPE, errno.EDQUOT, errno.EFBIG)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` runs: a compile's staging folder and a csim
    build's compiler processes and temporary library are removed (docs/reliability.md)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading
    previous = None
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _guarded_main(argv)
    finally:
        if previous is not None:   # in-process callers (tests) get their own handler back
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, previous)


def _guarded_main(argv: list[str] | None) -> int:
    """Environment set-up and the standard-output guard around :func:`_main`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from .environment import quiet_matplotlib_config, tolerant_stdout
    quiet_matplotlib_config()
    tolerant_stdout()
    try:
        return _main(argv)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) or _stdout_error(exc):
            return _output_failed(exc)
        raise


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = int(args.func(args) or 0)
        sys.stdout.flush()  # a full device shows here, inside the handler, not in the exit flush
        return rc
    except PadlessError as exc:
        msg = str(exc)
        if len(msg) > _MAX_MESSAGE:  # a bounded line whatever an error embeds (docs/reliability.md)
            msg = f"{msg[:_MAX_MESSAGE]}... ({len(msg):,} characters)"
        print(f"padless: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("padless: terminated (SIGTERM); the folders it was writing are as they were", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("padless: interrupted", file=sys.stderr)
        return 130


#: Longest error message printed, characters (the rest is cut with its length shown).
_MAX_MESSAGE = 4000


if __name__ == "__main__":
    sys.exit(main())
