"""Progress for long work: a tqdm bar on a terminal, plain lines now and then in a log.

Every progress display padless shows goes through :func:`progress_bar`, which picks the mode once:

* ``bar``: a tqdm bar (carriage-return frames), when the stream is a terminal;
* ``lines``: when the stream is not a terminal (``make run > log``, CI): one plain line
  ``"<desc>: 120/1000 sent (12%), 3.1 s, 38.7 sent/s"`` at the start, then at most one per tenth of the
  total and never more often than every :data:`MIN_LINE_SECONDS`, and one at the end; a log of
  ``make run`` stays under 200 lines (docs/benchmarks.md), where tqdm's frames made ~30,000 characters;
* ``off``: nothing (``disable=True``).

``PADLESS_PROGRESS=bar|lines|off`` overrides the choice (e.g. ``lines`` on a terminal for a recorded session).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Iterable

#: Fewest seconds between two plain progress lines of one bar (the first and the last always print).
MIN_LINE_SECONDS = 5.0
#: Plain lines per bar at most, besides the first and the last (one per tenth of the total).
LINE_STEPS = 10
MODES = ("bar", "lines", "off")


def progress_mode(file=None, disable: bool = False) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` for a display on ``file`` (default stderr): ``PADLESS_PROGRESS``
    when set to one of :data:`MODES`, else ``off`` when ``disable``, else ``bar`` on a terminal and
    ``lines`` otherwise."""
    env = (os.environ.get("PADLESS_PROGRESS") or "").strip().lower()
    if disable:
        return "off"
    if env in MODES:
        return env
    f = file or sys.stderr
    try:
        return "bar" if f.isatty() else "lines"
    except (AttributeError, ValueError, OSError):
        return "lines"


class LineProgress:
    """The ``lines`` mode: the subset of tqdm's interface padless uses (``update``, ``set_postfix``,
    ``set_description``, ``close``, iteration, context manager, ``n``, ``total``), printing plain lines."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, file=None, delay: float = 0.0, **_ignored):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.n = int(initial)
        self.file = file or sys.stderr
        self.postfix = ""
        self._t0 = time.perf_counter()
        self._last_t = -1e9
        self._last_step = -1
        self._last_n = None
        self._closed = False
        self.delay = float(delay or 0.0)   # tqdm's ``delay``: no line before this many seconds
        self._line(force=True)

    def _line(self, force: bool = False) -> None:
        now = time.perf_counter()
        if now - self._t0 < self.delay:
            return
        step = (self.n * LINE_STEPS // self.total) if self.total else self.n
        if not force and (step == self._last_step or now - self._last_t < MIN_LINE_SECONDS):
            return
        self._last_t, self._last_step, self._last_n = now, step, self.n
        el = now - self._t0
        done = f"{self.n:,}/{self.total:,} {self.unit}" if self.total else f"{self.n:,} {self.unit}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = f", {self.n / el:,.1f} {self.unit}/s" if el > 0 and self.n else ""
        post = f", {self.postfix}" if self.postfix else ""
        try:
            print(f"{self.desc}: {done}{pct}, {el:.1f} s{rate}{post}", file=self.file, flush=True)
        except (OSError, ValueError):
            pass  # a progress line never stops the work

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        self._line()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def write(self, s: str) -> None:
        print(s, file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._last_n and (self._last_n is not None or self.delay <= 0):
                self._line(force=True)

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 disable: bool = False, file=None, **tqdm_kwargs):
    """A progress display over ``iterable`` or up to ``total`` in the mode :func:`progress_mode` picks:
    a ``tqdm.tqdm`` (``tqdm_kwargs`` passed on), a :class:`LineProgress`, or a disabled tqdm."""
    file = file or sys.stderr
    mode = progress_mode(file, disable)
    if mode == "lines":
        return LineProgress(iterable, total=total, desc=desc, unit=unit, file=file, **tqdm_kwargs)
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=mode == "off", file=file, **tqdm_kwargs)
