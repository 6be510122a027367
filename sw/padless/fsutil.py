"""Every file padless writes goes through here: no write outside a checked folder, none through a link.

The rules (docs/reliability.md, "Writes, interrupts and full disks"):

* a writer names the folder it may write in (``root``: a project folder, the report folder, the folder
  of ``export --onnx``); the target must lie inside it, and every folder between ``root`` and the target
  is opened with ``O_NOFOLLOW`` (a symbolic link there is refused with one line, never followed);
* a file is created under a temporary name in its own folder with ``O_CREAT | O_EXCL | O_NOFOLLOW``,
  written, ``fsync``-ed and renamed into place with :func:`os.replace` (``renameat(2)`` replaces a name, it
  never writes through it), so a reader sees the old file or the new one, never half of one, and a
  symbolic link at the target's name is refused before anything is written;
* an OS error (a full disk, a read-only folder, no permission) becomes one :class:`WriteError` line naming
  the file and what to do, and the temporary file is removed.

The method is the one of ``openat(2)`` / ``renameat(2)`` based safe file creation (POSIX.1-2008; CERT C
FIO32-C / FIO45-C): resolve folders once, as descriptors, and create the final name relative to them.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from .errors import InputError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
TMP_MARK = ".padless-tmp-"

_HINTS = {errno.ENOSPC: "free some space and run again (the file was not changed)",
          errno.EDQUOT: "free some space (disk quota) and run again (the file was not changed)",
          errno.EROFS: "the file system is read-only: choose a writable folder",
          errno.EACCES: "check the folder's permissions or choose another folder",
          errno.EPERM: "check the folder's permissions or choose another folder",
          errno.EFBIG: "the file is too large for this file system: choose another folder"}


class WriteError(InputError):
    """A file padless was asked to write cannot be written safely: a symbolic link at its name or on the
    way to it, a path outside the folder it may write in, a file where a folder should be, or an OS error
    (full disk, read-only, no permission). The message names the path and what to do."""


def write_error(path, exc: OSError, what: str = "cannot be written") -> WriteError:
    """The one-line :class:`WriteError` of an OS error while writing ``path``: "PATH cannot be written
    (the OS's reason); what to do"."""
    hint = _HINTS.get(exc.errno, "check the path and its permissions")
    return WriteError(f"{path} {what} ({exc.strerror or exc}); {hint}")


def _link_error(p: Path) -> WriteError:
    try:
        target = f" (to {os.readlink(p)})"
    except OSError:
        target = ""
    return WriteError(f"{p} is a symbolic link{target}: padless never writes through a link; remove the link "
                      "(or choose another folder) and run again")


def _split(path, root) -> tuple[Path, Path, list[str], str]:
    """(root, path, folder names from root to the file, file name); WriteError when ``path`` is not inside
    ``root`` (compared as written, after making both absolute: ``..`` is not allowed to climb out)."""
    path = Path(os.path.abspath(path))
    root = Path(os.path.abspath(root if root is not None else path.parent))
    rel = os.path.relpath(path, root)
    parts = Path(rel).parts
    if rel == "." or not parts or parts[0] == ".." or os.path.isabs(rel):
        raise WriteError(f"{path} is not inside {root}, the folder padless may write here; choose a path inside it")
    return root, path, list(parts[:-1]), parts[-1]


def _open_root(root: Path, create: bool) -> int:
    """A descriptor of ``root`` (the folder itself may be reached through links the user chose)."""
    try:
        if create:
            os.makedirs(root, exist_ok=True)
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if not create:
            raise
        raise WriteError(f"{root} cannot be created; choose another folder") from None
    except FileExistsError as exc:
        raise WriteError(f"{root} is a file, not a folder; choose another folder") from exc
    except NotADirectoryError as exc:
        raise WriteError(f"{root} is not a folder (a part of it is a file); choose another folder") from exc
    except OSError as exc:
        raise write_error(root, exc, "cannot be created") from exc


def _walk(root: Path, parts: list[str], create: bool = True) -> int:
    """Open ``root/parts...`` as a descriptor without following any link below ``root`` (created with
    ``create``). Raises WriteError."""
    fd = _open_root(root, create)
    here = root
    try:
        for name in parts:
            here = here / name
            if name in ("", ".", ".."):
                raise WriteError(f"{here}: a path padless writes may not contain {name!r}")
            try:
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise write_error(here, exc, "cannot be created") from exc
                nfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except (OSError) as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.lstat(name, dir_fd=fd)
                    if stat.S_ISLNK(st.st_mode):
                        raise _link_error(here) from None
                    raise WriteError(f"{here} is a file, not a folder; move it away (or choose another "
                                     "folder) and run again") from None
                raise write_error(here, exc, "cannot be opened") from exc
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_target(path, root=None, writable: bool = False) -> Path:
    """Check, without writing, that ``path`` could be written inside ``root``: no link on the way or at its
    name, not a folder; with ``writable``, its folder (or the nearest existing one) must be writable.
    Returns the absolute path. Raises WriteError."""
    root_p, path_p, parts, name = _split(path, root)
    try:
        fd = _walk(root_p, parts, create=False)
    except FileNotFoundError:
        fd = None   # the folders will be created
    if fd is not None:
        try:
            _check_name(fd, name, path_p)
            if writable:   # the real test (root passes os.access; /proc refuses only a create)
                probe = f".{name[:80]}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
                try:
                    os.close(os.open(probe, _FILE_FLAGS, 0o600, dir_fd=fd))
                    os.unlink(probe, dir_fd=fd)
                except OSError as exc:
                    raise write_error(path_p, exc) from exc
        finally:
            os.close(fd)
    elif writable:
        d = path_p.parent
        while not d.exists() and d != d.parent:
            d = d.parent
        if not os.access(d, os.W_OK | os.X_OK):
            raise write_error(path_p, PermissionError(errno.EACCES, "Permission denied"))
    return path_p


def _check_name(dir_fd: int, name: str, path: Path) -> None:
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise _link_error(path)
    if stat.S_ISDIR(st.st_mode):
        raise WriteError(f"{path} is a folder where padless writes a file; move it away and run again")


@contextlib.contextmanager
def atomic_file(path, root=None, mode: int = 0o644) -> Iterator[io.BufferedWriter]:
    """Open ``path`` for writing (binary) as a temporary file beside it; on a clean exit the data is
    flushed, ``fsync``-ed and renamed over ``path``, on an exception the temporary file is removed and
    ``path`` is unchanged. ``root``: the folder the write must stay in (default: ``path``'s folder).

    Raises WriteError (a link, a folder at the name, a path outside ``root``, an OS error such as a full
    disk)."""
    root_p, path_p, parts, name = _split(path, root)
    dfd = _walk(root_p, parts)
    tmp = f".{name[:80]}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    f = None
    try:
        _check_name(dfd, name, path_p)
        try:
            fd = os.open(tmp, _FILE_FLAGS, mode, dir_fd=dfd)
        except OSError as exc:
            raise write_error(path_p, exc) from exc
        f = os.fdopen(fd, "wb")
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
            f.close()
            _check_name(dfd, name, path_p)   # a link put there meanwhile is refused too
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            tmp = None
            with contextlib.suppress(OSError):
                os.fsync(dfd)
        except OSError as exc:
            raise write_error(path_p, exc) from exc
    finally:
        if f is not None and not f.closed:
            with contextlib.suppress(OSError):
                f.close()   # never an "Exception ignored" at exit: the error was raised above
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
        os.close(dfd)


def write_bytes(path, data: bytes, root=None, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_file`). Returns the path. Raises WriteError."""
    with atomic_file(path, root, mode) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str, root=None, mode: int = 0o644) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically. Raises WriteError."""
    return write_bytes(path, text.encode("utf-8"), root, mode)


def copy_file(src, dst, root=None) -> Path:
    """Copy the contents of the regular file ``src`` to ``dst`` (atomic, no link followed at ``dst``; the
    mode bits are copied). Raises WriteError."""
    try:
        data = Path(src).read_bytes()
        mode = stat.S_IMODE(os.stat(src).st_mode) | 0o600
    except OSError as exc:
        raise write_error(src, exc, "cannot be read") from exc
    return write_bytes(dst, data, root, mode)


def make_dirs(path, root) -> Path:
    """Create the folder ``path`` (and its parents) inside ``root`` without following links. Raises
    WriteError."""
    root_p, path_p, parts, name = _split(path, root)
    os.close(_walk(root_p, parts + [name]))
    return path_p


def remove_tree(path, root) -> None:
    """Remove ``path`` (a folder padless wrote, inside ``root``) and everything in it; a link at its name
    or on the way is refused, links inside are removed, never followed (:func:`shutil.rmtree` on a
    descriptor). Raises WriteError."""
    root_p, path_p, parts, name = _split(path, root)
    try:
        dfd = _walk(root_p, parts, create=False)
    except FileNotFoundError:
        return
    try:
        try:
            st = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise _link_error(path_p)
        try:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=dfd)
            else:
                os.unlink(name, dir_fd=dfd)
        except OSError as exc:
            raise write_error(path_p, exc, "cannot be removed") from exc
    finally:
        os.close(dfd)


# ------------------------------------------------------------------------------------- .npz archives

def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of an uncompressed ``.npz`` (``numpy.load`` reads it) of ``arrays``, written in the
    given order with a fixed timestamp, so the same arrays always give the same bytes (``numpy.savez``
    stamps the current time). Object arrays are refused (no pickles)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, val in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fid:
                np.lib.format.write_array(fid, np.asanyarray(val), allow_pickle=False)
    return buf.getvalue()


def write_npz(path, arrays: Mapping[str, np.ndarray], root=None) -> Path:
    """:func:`npz_bytes` written atomically to ``path``. Raises WriteError."""
    return write_bytes(path, npz_bytes(arrays), root)
