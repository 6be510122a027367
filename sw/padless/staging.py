"""Atomic, locked project updates: a compile builds the new project in a staging folder and swaps it in.

``padless compile --out DIR`` (:func:`padless.build.compile_project`) runs inside :func:`project_update`:

1. ``DIR`` is created when missing and locked (``flock(LOCK_EX)`` on the folder itself, so no lock file is
   left behind); a second compile into the same ``DIR`` is refused with one line while the first runs;
2. every step writes into a fresh staging folder ``.DIR.padless-staging-XXXX`` next to ``DIR`` (same file
   system), never into ``DIR``;
3. when all steps succeeded, the files of ``DIR`` that padless did not write (a user's notes, ``report/``,
   the other files of a ``--force`` folder) are hard-linked into the staging folder (nothing is copied),
   and the staging folder and ``DIR`` are exchanged in one ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15;
   elsewhere two renames); the old project is then deleted.

An interrupt (Ctrl-C, SIGTERM: the CLI turns it into KeyboardInterrupt), an error or a full disk before
step 3 leaves ``DIR`` exactly as it was (the staging folder is removed, and any left behind by a killed
process is removed by the next compile), so ``DIR`` always holds the old project or the new one and a
rerun always works.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import InputError
from .fsutil import WriteError, write_error

STAGING = ".padless-staging-"
OLD = ".padless-old-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically (renameat2 RENAME_EXCHANGE); False when the system has no
    such call (then the caller renames twice)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _lock(out: Path) -> int:
    """An open descriptor of the folder ``out`` holding an exclusive flock. Raises InputError when another
    process holds it."""
    for _ in range(5):
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"--out {out} is being written by another padless compile right now: wait for it "
                             "to finish, or choose another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(out).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)   # the other compile swapped a new folder in meanwhile: lock that one
    raise InputError(f"--out {out} keeps changing (other compiles into it); run one compile at a time")


def _carry(src: Path, dst: Path) -> None:
    """Hard-link the tree ``src`` as ``dst`` (folders recreated with their modes; links linked as links,
    never followed); a file that cannot be linked (another file system, protected_hardlinks) is copied."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dst, stat.S_IMODE(st.st_mode) | 0o700)
        for entry in os.scandir(src):
            _carry(Path(entry.path), dst / entry.name)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(src, dst, follow_symlinks=False)
        else:
            raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


def stale_folders(out: Path) -> list[Path]:
    """Staging or old folders of ``out`` that an interrupted compile left next to it."""
    return sorted(p for pre in (STAGING, OLD) for p in out.parent.glob(f".{out.name}{pre}*")
                  if p.is_dir() and not p.is_symlink())


@contextlib.contextmanager
def project_update(out, own: Iterable[str] = ()) -> Iterator[Path]:
    """Lock the project folder ``out`` and yield a fresh staging folder to build the new project in; on a
    clean exit, swap it in (module docstring). ``own``: top-level names in ``out`` that belong to the old
    project (its manifest's files, ``hls``, ``bitstream``...): they are replaced, everything else in ``out``
    is carried over.

    Raises InputError: another compile holds the lock; ``out``'s parent is not writable or ``out`` is a mount
    point (the staging folder must sit on the same file system, next to ``out``); WriteError for an OS error
    while swapping (``out`` is then unchanged)."""
    out = Path(os.path.realpath(out))
    parent = out.parent
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc, "cannot be created") from exc
    fd = _lock(out)
    staging = None
    try:
        if os.stat(parent).st_dev != os.stat(out).st_dev:
            raise InputError(f"--out {out} is a mount point: padless builds the new project next to it and swaps it "
                             f"in; give a folder inside it (e.g. --out {out}/project)")
        for p in stale_folders(out):
            _remove(p)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING}", dir=parent))
        except OSError as exc:
            raise InputError(f"--out {out}: cannot create the staging folder next to it in {parent} "
                             f"({exc.strerror or exc}); padless builds the new project there and swaps it in: "
                             "make that folder writable, or choose an --out in a writable folder") from exc
        os.chmod(staging, stat.S_IMODE(os.stat(out).st_mode))
        yield staging
        own = set(own) | {"manifest.json"}
        try:
            for entry in os.scandir(out):
                if entry.name in own or os.path.lexists(staging / entry.name) or STAGING in entry.name:
                    continue   # the old project's own files, or a name the new project writes: replaced
                _carry(Path(entry.path), staging / entry.name)
            if not _exchange(staging, out):
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}{OLD}", dir=parent))
                os.rename(out, old / "p")
                os.rename(staging, out)
                staging = old
        except OSError as exc:
            raise write_error(out, exc, "cannot be replaced by the new project") from exc
        _remove(staging)   # the old project, now under the staging name
        staging = None
    finally:
        if staging is not None:
            _remove(staging)
        os.close(fd)
        if created and staging is not None:
            with contextlib.suppress(OSError):
                out.rmdir()   # only when still empty: no half-made folder stays behind


@contextlib.contextmanager
def project_edit(out) -> Iterator[Path]:
    """Change an existing project atomically (``padless train-policy``: a policy installed and the kernel
    regenerated): :func:`project_update` with the project's current files hard-linked into the staging
    folder first (nothing is copied). Write only through :mod:`padless.fsutil` there (a temporary name, then
    a rename), so the linked originals are never modified; on a clean exit the edited folder replaces
    ``out``, on an error or an interrupt ``out`` is unchanged. Raises as :func:`project_update`."""
    from .project import own_names
    src = Path(os.path.realpath(out))
    with project_update(src, own=own_names(src)) as staging:
        for entry in os.scandir(src):
            _carry(Path(entry.path), staging / entry.name)
        yield staging
