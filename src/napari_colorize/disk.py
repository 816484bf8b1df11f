"""Disk space for the files written: the write errors, free-space checks and block reservation.

Below everything that writes (the image writers of :mod:`napari_colorize.io`, checkpoints in
:mod:`napari_colorize.models.registry`, OME-Zarr volumes): a full disk is a
:class:`DiskFullError` saying how much is needed and free (``not enough space on DEVICE for OUT:
need ~X MB, Y MB free``), not a traceback or a half-written file. :mod:`napari_colorize.io`
re-exports these names.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

__all__ = ["ImageWriteError", "DiskFullError", "is_disk_full", "mount_point", "disk_full_message", "check_free_space",
           "preallocate"]


class ImageWriteError(ValueError):
    """An image could not be written (or cannot be written in the format asked for)."""


class DiskFullError(ImageWriteError):
    """Not enough space on the disk for an output; the message says how much is needed and free."""


def is_disk_full(e: BaseException) -> bool:
    """True for an OSError that means the disk (or the user's quota) is full."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def mount_point(path: str | Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _free_bytes(path: Path) -> int | None:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def disk_full_message(out: str | Path, need: int | None = None, free: int | None = None) -> str:
    """``not enough space on DEVICE for OUT: need ~X MB, Y MB free`` (the amounts when known)."""
    out = Path(out)
    free = _free_bytes(out.parent) if free is None else free
    amounts = []
    def mb(n: int) -> str:
        return f"{n / 1e6:.1f}" if n >= 1e5 else f"{n / 1e6:.2g}"

    if need is not None:
        amounts.append(f"need ~{mb(need)} MB")
    if free is not None:
        amounts.append(f"{mb(free)} MB free")
    return (f"not enough space on {mount_point(out.parent)} for {out}" + (": " + ", ".join(amounts) if amounts else "")
            + "; free some space or write elsewhere")


def check_free_space(out: str | Path, need: int) -> None:
    """Refuse (:class:`DiskFullError`), before anything is written, an output of ``need`` bytes that
    the disk holding it has no room for."""
    free = _free_bytes(Path(out).parent)
    if free is not None and need > free:
        raise DiskFullError(disk_full_message(out, need, free))


def preallocate(path: str | Path, size: int, out: str | Path | None = None) -> None:
    """Reserve ``size`` bytes of the file ``path`` on disk (``os.posix_fallocate``), so that a full
    disk fails here, as :class:`DiskFullError`, not later while writing into a memory map (SIGBUS).
    File systems that cannot preallocate are left as they are."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None or size <= 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        fallocate(fd, 0, int(size))
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(disk_full_message(out or path, int(size))) from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)
