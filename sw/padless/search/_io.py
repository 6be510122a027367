"""File writes of the search: a temporary name in the same folder, then :func:`os.replace`; never through a
symlink (a link at the target or in a folder the search made is refused)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError


def safe_dir(path, what: str = "folder") -> Path:
    """Create ``path`` (and parents) if needed and return it resolved; InputError when it, or a parent that
    exists, is a symlink or not a folder."""
    p = Path(path)
    # refuse a symlink anywhere on the part of the path the user named (an attacker's link in a shared folder)
    cur = Path(p.anchor) if p.is_absolute() else Path(".")
    for part in p.parts[1:] if p.is_absolute() else p.parts:
        cur = cur / part
        if cur.is_symlink():
            raise InputError(f"{what} {p}: {cur} is a symbolic link; padless writes only into real folders "
                             "(give another path)")
        if cur.exists() and not cur.is_dir():
            raise InputError(f"{what} {p}: {cur} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {p} cannot be created ({exc.strerror or exc}); choose another path") from exc
    return p.resolve()


def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` by a temporary file in the same folder and :func:`os.replace` (readers see the
    old or the new file, never half of one). InputError when ``path`` is a symlink or a folder."""
    p = Path(path)
    if p.is_symlink() or p.is_dir():
        raise InputError(f"{p} is a symbolic link or a folder; padless replaces only regular files")
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return p
