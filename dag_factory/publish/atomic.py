"""Atomic directory replacement on a local filesystem.

A published partition is a directory (data file + manifest). Replacing it must never let a
reader see a half-written partition, whatever moment the process is killed at:

* new partition: ``rename(new, final)``, atomic (POSIX rename(2));
* existing partition: Linux ``renameat2(RENAME_EXCHANGE)`` swaps the two directories in one
  atomic step; the old one then sits at the new one's path (in staging) and is deleted there;
* where RENAME_EXCHANGE is unsupported (non-Linux, some filesystems): the old one is renamed
  into the trash, then the new one in. A kill between the two leaves the partition absent
  (never partial) until the run is retried, when :func:`recover` first puts the old one back.

Removed and replaced directories always go to a trash folder outside the published tree, so
a reader globbing ``<product>/v1/*/*.parquet`` never sees one while it is being deleted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP)


def _renameat2():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    return getattr(libc, "renameat2", None)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False when the OS or filesystem cannot.

    Raises:
        OSError: for other errors (missing path, permissions).
    """
    func = _renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(a))


def replace_dir(new: Path, final: Path, trash: Path) -> None:
    """Make directory ``new`` visible at ``final`` atomically, replacing what was there.

    Args:
        new: the complete new directory (on the same filesystem as ``final``).
        final: the published path.
        trash: a folder outside the published tree for the directory replaced.

    Raises:
        OSError: from the underlying renames.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(new, final)  # atomic when final does not exist
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
            raise
    if exchange(new, final):
        shutil.rmtree(new)
        return
    aside = _trash_path(trash, final)
    os.rename(final, aside)
    os.rename(new, final)
    shutil.rmtree(aside)


def remove_dir(final: Path, trash: Path) -> None:
    """Remove a published directory atomically: rename it into ``trash``, then delete it."""
    aside = _trash_path(trash, final)
    os.rename(final, aside)
    shutil.rmtree(aside)


def recover(final: Path, trash: Path) -> None:
    """Put back a directory a killed :func:`replace_dir` had moved aside (fallback path)."""
    aside = trash / final.name
    if aside.is_dir() and not final.exists():
        os.rename(aside, final)


def _trash_path(trash: Path, final: Path) -> Path:
    trash.mkdir(parents=True, exist_ok=True)
    aside = trash / final.name
    shutil.rmtree(aside, ignore_errors=True)
    return aside
