"""File writes of the search: folders checked for links on the way (:func:`safe_dir`), files through
:mod:`padless.fsutil` (temporary name, fsync, rename; never through a link)."""
from __future__ import annotations

from pathlib import Path

from .. import fsutil
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
    """Write ``data`` to ``path`` atomically, never through a link: :func:`padless.fsutil.write_bytes` inside
    ``path``'s folder (readers see the old or the new file, never half of one). Raises WriteError (an
    InputError) for a link or a folder at ``path``, or an OS error such as a full disk."""
    p = Path(path)
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    return fsutil.write_bytes(p, raw, root=p.parent)
