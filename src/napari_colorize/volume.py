"""Volumes in, volumes out: colourise a large greyscale volume into OME-Zarr, on dask.

:func:`colorize_volume` reads a zarr array or an OME-Zarr image (its highest resolution), a TIFF,
``.npy`` or PNG file, or a numpy / dask array, and writes an OME-Zarr image: RGB as a channel axis
``c`` of 3 (NGFF order ``t, c, z, y, x``), uint8 (or uint16), chunked like the input along the stack
and spatial axes, the input's axis names, units and pixel sizes kept, and on request a pyramid of
lower resolutions (each halving y and x).

How the work is split, and why the result equals :func:`~napari_colorize.colorize` on the whole:

* Everything that depends on the whole volume is computed once, before the split, in the calling
  process: the intensity mapping (:func:`~napari_colorize.inputs.intensity_range`, the same up to
  16 slices as ``colorize``), the working shape, the guide's prepared state (reference features) and
  the checked colour points (each task takes the every-slice ones and those of the slices it reads).
* One task per output chunk along the stack axes (every y/x chunk of those slices): it reads its
  slices, plus ``temporal`` neighbours on either side along the last stack axis, colourises them
  exactly as ``colorize`` does, keeps its own slices and writes whole output chunks, of every
  pyramid level. Tasks are idempotent: a task run again (a worker lost) writes the same bytes.
* Execution is dask's: local threads by default, or a ``dask.distributed`` cluster (``client=`` or
  ``scheduler="tcp://host:port"``). The guide state is one node of the task graph: each worker
  fetches it once (from a peer), and if every worker holding it dies the scheduler rebuilds it from
  the graph; each worker process loads a named model once (a per-process cache), so the network is
  never shipped with the tasks.
* Restartable: the output store holds the run's arguments (a fingerprint) and a flag per task,
  set after its chunks are written. The same call again computes only the missing chunks; other
  arguments, or an input that changed since (a digest of sampled slices, its files' sizes and
  times: :func:`input_fingerprint`), are refused (unless ``overwrite``). When every chunk is written the flags are removed
  and the run is marked complete.

Needs the optional dependencies ``pip install 'napari-colorize[distributed]'`` (zarr, ome-zarr,
distributed); without them the rest of the library works and this module says what to install.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .io import (DiskFullError, ImageWriteError, disk_full_message, is_disk_full, pid_alive, quiet_logger, read_image,
                 to_output_dtype)
from .provenance import FORMAT

__all__ = ["colorize_volume", "open_volume", "input_fingerprint", "StoreReader", "read_provenance", "PROVENANCE_ATTR",
           "check_axis_order", "NGFF_ORDER", "ngff_axes", "write_ome_zarr", "napari_write_image", "Volume",
           "MissingExtraError", "stored_chunks", "missing_note", "scheduler_address", "LOCAL_SCHEDULERS",
           "ResumeError", "BusyError", "VolumeNote", "RunLock", "half_created", "connect", "CONNECT_TIMEOUT",
           "concurrent_tasks", "RECORD_KEY", "PROGRESS_ARRAY", "EXTRA", "worker_model"]

EXTRA = "distributed"
INSTALL = f"pip install 'napari-colorize[{EXTRA}]'"
RECORD_KEY = "napari-colorize"  # the run record in the output group's attributes
PROGRESS_ARRAY = "colorize-progress"  # one flag per task while a run is unfinished
PROVENANCE_ATTR = "napari-colorize-provenance"  # how the image was made (napari_colorize.provenance), when complete
OUT_DTYPES = ("uint8", "uint16")


class MissingExtraError(ImportError):
    """An optional dependency of the volume path is not installed; the message says what to install."""


class ResumeError(ValueError):
    """The output exists and is not an unfinished run of the same arguments."""


class BusyError(ResumeError):
    """Another run is writing the output (its lock file names its process)."""


class VolumeNote(UserWarning):
    """A note about the run's stores (a half-created output made again, input chunks not in the store);
    the CLI prints it."""


_HELD_LOCKS: set = set()  # lock files this process holds


class RunLock:
    """``.OUT.napari-colorize.lock`` beside the output store, created exclusively (never there half
    written) with this process's id and host: a second run writing the same store is refused
    (:class:`BusyError`: "another run (pid N) is writing OUT"); the lock of a process that no longer
    runs (on this host) is taken over."""

    def __init__(self, out: Path) -> None:
        out = Path(out)
        self.out = out
        self.path = out.absolute().parent / f".{out.name}.napari-colorize.lock"
        self.held = False

    def _holder(self) -> tuple[int | None, str]:
        try:
            pid, _, host = self.path.read_text().strip().partition(" ")
            return int(pid), host
        except (OSError, ValueError):
            return None, ""

    def _create(self, me: str) -> None:
        """Create the lock file holding ``me`` at once (FileExistsError if it exists): written beside it
        and hard-linked into place, so no other run ever reads it empty (and takes it for a stale one)."""
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(me + "\n")
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: created exclusively, then written
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(me + "\n")
        finally:
            tmp.unlink(missing_ok=True)

    def _stale(self, pid: int | None, host: str) -> bool:
        """A lock that may be taken over: unreadable (or gone), or of a process on this host that no longer
        runs, or this process's own that it does not hold (left by an earlier run in it)."""
        if pid is None:
            return True
        if host not in ("", socket.gethostname()):
            return False
        if pid == os.getpid():
            return str(self.path) not in _HELD_LOCKS
        return not pid_alive(pid)

    def _busy(self, pid: int, host: str):
        where = "" if host in ("", socket.gethostname()) else f" on {host}"
        raise BusyError(f"another run (pid {pid}{where}) is writing {self.out}: wait until it ends, or "
                        f"stop it (if no run is writing it, remove {self.path})") from None

    def check_free(self) -> None:
        """:class:`BusyError` when a live run holds the lock (what :meth:`acquire` would say); a stale
        lock is left for :meth:`acquire` to take over."""
        pid, host = self._holder()
        if not self._stale(pid, host):
            self._busy(pid, host)

    def acquire(self) -> "RunLock":
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(3):
            try:
                self._create(me)
            except FileExistsError:
                pid, host = self._holder()
                if self._stale(pid, host):
                    try:  # a stale lock (its process is gone, or an unreadable one): taken over
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                self._busy(pid, host)
            self.held = True
            _HELD_LOCKS.add(str(self.path))
            return self
        raise BusyError(f"cannot take the lock {self.path} of {self.out}: other runs keep taking it")

    def release(self) -> None:
        if self.held:
            self.held = False
            _HELD_LOCKS.discard(str(self.path))
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def _need(module: str, what: str = "reading and writing OME-Zarr volumes"):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{what} needs the optional package {module.split('.')[0]!r}, which is not "
                                f"installed: {INSTALL}") from e


# ------------------------------------------------------------------------------------ reading
@dataclass
class Volume:
    """A greyscale volume ready to be split: ``data`` a dask array ``(stack..., Y, X)`` (at most two
    stack axes: ``t`` and/or ``z``), ``axes`` its NGFF axes (name, type, unit when known), ``scale``
    and ``translation`` its pixel size and offset per axis, ``chunks`` its (regular) chunk shape,
    ``path`` the file or store it came from (None for arrays), ``channel`` the index of the channel
    taken from a multi-channel image (None when it had no channel axis); for a zarr input, ``stored``
    which of its chunks (a boolean array over ``data``'s chunk grid) are in the store
    (:func:`stored_chunks`; None when not known) and ``fill`` the value the others are read as."""

    data: Any
    axes: list
    scale: list
    translation: list
    chunks: tuple
    path: Path | None = None
    channel: int | None = None
    stored: Any = None
    fill: Any = None


def is_zarr_path(path) -> bool:
    """True for a path that names a zarr store: ``*.zarr`` or a folder with zarr metadata."""
    p = Path(path)
    return p.suffix.lower() == ".zarr" or (p.is_dir() and _is_store(p))  # (x.ome.zarr's suffix is .zarr)


def _default_axes(ndim: int) -> list:
    names = ["t", "z", "y", "x"][-ndim:]
    return [{"name": n, "type": "time" if n == "t" else "space"} for n in names]


def _check_zarr_array(arr, where: str) -> None:
    """Refuse, before reading any chunk, what is not a numeric image or could run code when decoded."""
    dt = np.dtype(arr.dtype) if not isinstance(arr.dtype, np.dtype) else arr.dtype
    if dt.kind not in "biuf" or dt.fields is not None:
        raise TypeError(f"{where}: holds {dt} values, not numbers: not an image")
    meta = json.dumps(arr.metadata.to_dict(), default=str).lower()
    if "pickle" in meta:  # a zarr v2 object codec would unpickle (run code from) the file
        raise ValueError(f"{where}: uses a pickle codec; such data is never decoded here")
    if len(arr.shape) < 2 or 0 in arr.shape:
        raise ValueError(f"{where}: shape {tuple(arr.shape)} is not an image")


class StoreReader:
    """A zarr array read through the absolute path of its folder: each read first checks that the
    array is there, so that a dask worker which cannot see the input (another machine, another
    working folder) raises instead of reading zarr's fill values as data (an all-black result)."""

    def __init__(self, arr, folder: Path) -> None:
        self.arr, self.folder = arr, Path(folder).absolute()
        self.shape, self.dtype, self.ndim = tuple(arr.shape), np.dtype(arr.dtype), len(arr.shape)

    def __getitem__(self, key):
        if not _is_store(self.folder):
            raise FileNotFoundError(f"{self.folder}: the input volume is not there on {socket.gethostname()} "
                                    f"(working folder {os.getcwd()}); every dask worker must reach the input at "
                                    "this path (a shared file system)")
        return self.arr[key]


def stored_chunks(arr) -> np.ndarray | None:
    """Which chunks of the zarr array ``arr`` are in its store: a boolean array over its chunk grid (the
    read chunks: a shard's inner chunks count with their shard), from one listing of the store's keys
    (no chunk is read; zarr formats 2 and 3). None when the store cannot be listed."""
    try:
        from zarr.core.sync import sync

        store, prefix = arr.store_path.store, arr.store_path.path
        shape, chunks = tuple(arr.shape), tuple(arr.chunks)
        outer = tuple(arr.shards) if getattr(arr, "shards", None) else chunks

        async def listing():
            return [k async for k in store.list_prefix(prefix)]

        head = prefix.rstrip("/") + "/" if prefix else ""
        keys = {k[len(head):] for k in sync(listing()) if k.startswith(head)}
        grid = tuple(-(-n // c) for n, c in zip(shape, outer))
        have = np.zeros(grid, bool)
        for ix in np.ndindex(*grid):
            have[ix] = arr.metadata.encode_chunk_key(ix) in keys
        for axis, (o, c, n) in enumerate(zip(outer, chunks, shape)):  # a shard: each of its inner chunks
            if o != c:
                have = np.repeat(have, o // c, axis=axis)[(slice(None),) * axis + (slice(0, -(-n // c)),)]
        return have
    except Exception:  # (a store that cannot be listed: nothing to say)
        return None


def _runs(values: list[int]) -> list[str]:
    """``[0, 1, 2, 5]`` -> ``["0-2", "5"]``."""
    out: list[list[int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return [f"{a}" if a == b else f"{a}-{b}" for a, b in out]


def missing_note(vol: Volume) -> str | None:
    """A note on the input chunks that are not in the store (never written: an acquisition still being
    written or cut short; or left out by zarr as holding only the fill value): how many, and the slices
    that have none of theirs; None when every chunk is there (or it cannot be told)."""
    if vol.stored is None or vol.stored.all():
        return None
    stored, stack_nd = vol.stored, vol.data.ndim - 2
    n_miss = int((~stored).sum())
    where = str(vol.path) if vol.path is not None else "the zarr array"
    fill = f" ({vol.fill})" if vol.fill is not None else ""
    note = (f"{where}: {n_miss} of its {stored.size} chunks {'is' if n_miss == 1 else 'are'} not in the store "
            "(never written: an acquisition still being written or cut short; or left out by zarr as holding only "
            f"its fill value): read as the fill value{fill}, which also counts in the intensity range")
    empty: list[tuple] = []  # the slices (positions on the stack axes) with none of their chunks stored
    if stack_nd:
        for ix in zip(*np.nonzero(~stored.reshape(stored.shape[:stack_nd] + (-1,)).any(axis=-1))):
            empty += _product([range(i * c, min((i + 1) * c, n)) for i, c, n in zip(ix, vol.chunks, vol.data.shape)])
    if empty:
        names = [str(a.get("name", "?")) for a in vol.axes[:stack_nd]]
        shown = _runs([e[0] for e in empty]) if stack_nd == 1 else [str(tuple(int(i) for i in e)) for e in empty]
        listed = " ".join(names if stack_nd == 1 else ["(" + ", ".join(names) + ")"]) + " " + \
            ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else "")
        total = int(np.prod(vol.data.shape[:stack_nd], dtype=np.int64))
        one = len(empty) == 1
        note += (f"; {len(empty)} of its {total} slices ({listed}) {'has' if one else 'have'} none of "
                 f"{'its' if one else 'their'} chunks and come{'s' if one else ''} out the colour of that value")
    return note + ". If the volume is not complete, colourise it again when it is"


def _read_lazily(arr, folder: Path):
    """A dask array over the zarr array ``arr`` stored in ``folder``, read through :class:`StoreReader`."""
    da = importlib.import_module("dask.array")
    from dask.base import tokenize

    reader = StoreReader(arr, folder)
    name = "zarr-input-" + tokenize(str(reader.folder), reader.shape, str(reader.dtype), tuple(arr.chunks))
    return da.from_array(reader, chunks=tuple(arr.chunks), name=name, meta=np.empty((0,) * reader.ndim, reader.dtype))


def _open_zarr(path: Path):
    zarr = _need("zarr")
    try:
        node = zarr.open(str(path.absolute()), mode="r")  # (absolute: dask workers may run in other folders)
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise ValueError(f"{path}: not a readable zarr store ({e})") from None
    if isinstance(node, zarr.Array):
        _check_zarr_array(node, str(path))
        return _read_lazily(node, path), None, None, None, None, node
    _need("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    import logging

    with quiet_logger("ome_zarr", logging.ERROR):  # (its notes on the format version it found are not errors)
        loc = parse_url(str(path), mode="r")
        nodes = list(Reader(loc)()) if loc is not None else []
    for n in nodes:
        spec = next((s for s in n.specs if hasattr(s, "datasets")), None)
        if spec is None or not n.data:
            continue
        arr = node[spec.datasets[0]]  # the highest resolution
        _check_zarr_array(arr, f"{path}/{spec.datasets[0]}")
        transforms = (n.metadata.get("coordinateTransformations") or [None])[0] or []
        scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), None)
        trans = next((t["translation"] for t in transforms if t.get("type") == "translation"), None)
        names = n.metadata.get("channel_names")  # (from the image's omero metadata, when it has some)
        names = [str(x) for x in names] if isinstance(names, (list, tuple)) else None
        return _read_lazily(arr, path / spec.datasets[0]), n.metadata.get("axes"), scale, trans, names, arr
    raise ValueError(f"{path}: a zarr group without OME-Zarr multiscales metadata: give the path of an array "
                     f"in it (for example {path}/0)")


NGFF_ORDER = ("t", "c", "z", "y", "x")  # the axes a volume may have, in the order it must have them
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def check_axis_order(where: str, axes: list) -> None:
    """Refuse axes that are not y and x last with at most t, c and z before them, in NGFF's order
    (t, c, z, y, x): any other order would be colourised along the wrong axis. An axis is known by
    its type (time, channel) or its name (z, y, x); a type that contradicts its name is refused too."""
    roles, typed = [], True
    for a in axes:
        kind, name = a.get("type"), str(a.get("name", "")).lower()
        role = "t" if kind == "time" else "c" if kind == "channel" else name
        typed = typed and (kind in (None, "") or _AXIS_TYPES.get(role) == kind)
        roles.append(role)
    ordered = all(r in NGFF_ORDER for r in roles) and len(set(roles)) == len(roles) and \
        roles == sorted(roles, key=NGFF_ORDER.index)
    if not (typed and ordered and roles[-2:] == ["y", "x"]):
        listed = ", ".join(f"{a.get('name')} ({a.get('type') or 'no type'})" for a in axes)
        raise ValueError(f"{where}: axes {listed}: a volume has y and x last, and before them at most t, c and z "
                         "in that order (NGFF: t, c, z, y, x); anything else would be colourised along the wrong "
                         "axis: store it with its axes in that order")


def _pick_channel(where: str, axis: dict, n: int, names: list | None, channel) -> int:
    """The index of ``channel`` (an index, or a name from the image's metadata) on a channel axis of
    ``n`` entries; a clear refusal when there is a choice to make and none was made, or a wrong one."""
    named = names if names and len(names) == n else None
    listed = ", ".join(f"{k}: {nm}" for k, nm in enumerate(named)) if named else f"0 to {n - 1}"
    if channel is None:
        if n == 1:
            return 0
        raise ValueError(f"{where}: has {n} channels (axis {axis['name']!r}; {listed}); a volume is colourised "
                         "from one grey channel: choose it with channel=... (CLI: --channel N or NAME)")
    if isinstance(channel, str) and named and channel in named:  # a name first ("488" may be a name)
        return named.index(channel)
    if isinstance(channel, str) and not channel.lstrip("-").isdigit():
        raise ValueError(f"{where}: no channel named {channel!r} (channels: {listed})")
    k = int(channel)
    if not 0 <= k < n:
        raise ValueError(f"{where}: channel {k} does not exist (channels: {listed})")
    return k


def open_volume(source, chunks: tuple | None = None, channel: int | str | None = None,
                rgb: bool | None = None) -> Volume:
    """Open ``source`` as a greyscale :class:`Volume` (lazily: nothing but metadata is read).

    ``source``: a ``.zarr`` path (a zarr array, or an OME-Zarr image: its highest resolution, its
    axes, units and pixel sizes), another image file (TIFF, ``.npy``, PNG...), or a numpy, zarr or
    dask array. An OME-Zarr channel axis of one entry is dropped; of more, ``channel`` (an index,
    or a channel's name in the image's metadata) picks the one to colourise (a volume is
    colourised from one grey channel). ``chunks``: for arrays without chunks (numpy, files), the
    chunk shape to split by (default: one slice, y and x up to 1024). ``rgb``: an array without
    axis names whose last axis :func:`~napari_colorize.colorize` would read as colour (``(H, W,
    3 or 4)``; ``(T, Z, Y, 3 or 4)``, ambiguous) is refused unless ``rgb=False`` says it is a grey
    stack (a volume is greyscale); ``(H, W, 2)`` is read as grey + alpha, as ``colorize`` does.
    """
    da = importlib.import_module("dask.array")
    path = None
    axes = scale = trans = names = picked = zarr_array = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if is_zarr_path(path):
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such zarr store")
            data, axes, scale, trans, names, zarr_array = _open_zarr(path)
        else:  # (a TIFF whose axes name its channels: read_image picks ``channel`` and drops that axis)
            if isinstance(channel, str) and channel.strip().isdigit():  # (the CLI's --channel 1)
                channel = int(channel)
            if isinstance(channel, str):
                raise ValueError(f"{path}: channel={channel!r}: the channels of an image file are picked by their "
                                 "index (names are an OME-Zarr image's)")
            data = read_image(path, channel=channel)
            picked = channel
    elif type(source).__module__.split(".")[0] == "zarr":
        _check_zarr_array(source, "the zarr array")
        root = getattr(source.store, "root", None)  # a local store: read it by its absolute path
        if root is not None:
            folder = Path(root).absolute() / source.path
            zarr_array = _need("zarr").open_array(str(folder), mode="r")
            data = _read_lazily(zarr_array, folder)
        else:
            zarr_array, data = source, da.from_zarr(source)
    else:
        data = source
    if not isinstance(data, da.Array):
        arr = data if hasattr(data, "shape") and hasattr(data, "dtype") else np.asarray(data)
        if np.dtype(arr.dtype).kind not in "biuf":
            raise TypeError(f"the volume must hold numbers, not {arr.dtype}")
        if len(arr.shape) < 2:
            raise ValueError(f"the volume must be an image or a stack of images; got shape {tuple(arr.shape)}")
        c = chunks or tuple([1] * (len(arr.shape) - 2) + [min(1024, s) for s in arr.shape[-2:]])
        data = da.from_array(arr, chunks=c)
    elif np.dtype(data.dtype).kind not in "biuf":
        raise TypeError(f"the volume must hold numbers, not {data.dtype}")
    stored = stored_chunks(zarr_array) if zarr_array is not None else None  # (one listing of its keys)
    if stored is not None and stored.shape != tuple(len(c) for c in data.chunks):
        stored = None
    where = str(path) if path else "the volume"
    c_axes = [k for k, a in enumerate(axes or []) if a.get("type") == "channel"]
    if channel is not None and not c_axes and picked is None:
        raise ValueError(f"{where}: channel={channel!r} was given, but it has no channel axis (only OME-Zarr "
                         "images name their axes)")
    if axes is None:
        if rgb:
            raise ValueError(f"{where}: rgb=True: a volume is greyscale (colour images go through colorize(), "
                             "or a .png/.tif output)")
        if data.ndim >= 3 and data.shape[-1] == 1:  # (Z, Y, X, 1): one grey channel, as colorize() reads it
            data = data[..., 0]
            stored = None if stored is None else stored[..., 0]
        elif rgb is None and data.ndim in (3, 4):  # the layout colorize() reads, or a refusal saying how to choose
            from .inputs import target_layout  # (here: torch on use)

            try:
                is_rgb, how, _ = target_layout(tuple(data.shape)) if data.ndim == 3 else (data.shape[-1] in (3, 4),
                                                                                           "as is", [])
            except ValueError:
                is_rgb, how = False, "as is"
            if is_rgb:
                raise ValueError(f"{where}: shape {tuple(data.shape)}: colorize() reads its last axis as colour "
                                 f"(RGB{'A' if data.shape[-1] == 4 else ''}), and a volume is greyscale: pass rgb=False "
                                 "(CLI: --grey) if it is a stack of slices, or colourise the image with colorize() "
                                 "(CLI: -o a .png or .tif)")
            if how == "grey of grey+alpha":
                data = data[..., 0]
                stored = None if stored is None else stored[..., 0]
        if not 2 <= data.ndim <= 4:
            raise ValueError(f"{where}: shape {data.shape}: a volume is (Y, X), (Z, Y, X) or (T, Z, Y, X)")
        axes = _default_axes(data.ndim)
    else:
        axes = [dict(a) for a in axes]
        if len(axes) != data.ndim:
            raise ValueError(f"{where}: {len(axes)} axes in its metadata for an array of {data.ndim} dimensions")
        check_axis_order(where, axes)
        if len(c_axes) > 1:
            raise ValueError(f"{where}: {len(c_axes)} channel axes; a volume has at most one")
        for k in c_axes:
            pick = _pick_channel(where, axes[k], int(data.shape[k]), names, channel)
            picked = pick if data.shape[k] > 1 else None
            if stored is not None:
                stored = stored[(slice(None),) * k + (pick // data.chunksize[k],)]
            data = data[(slice(None),) * k + (pick,)]
            del axes[k]
            scale = None if scale is None else scale[:k] + scale[k + 1:]
            trans = None if trans is None else trans[:k] + trans[k + 1:]
        kinds = [a.get("type") for a in axes]
        if data.ndim < 2 or kinds[-2:] != ["space", "space"] or data.ndim > 4 or kinds.count("time") > 1:
            raise ValueError(f"{where}: axes {[a['name'] for a in axes]}: a volume has y and x last, at most "
                             "one z and one t axis")
    scale = [float(s) for s in scale] if scale is not None else [1.0] * data.ndim
    trans = [float(t) for t in trans] if trans is not None else [0.0] * data.ndim
    if len(scale) != data.ndim or len(trans) != data.ndim:
        raise ValueError(f"{where}: its pixel sizes do not match its {data.ndim} axes")
    data = data.rechunk(data.chunksize)  # regular chunks: one output chunk per task
    if stored is not None and stored.shape != tuple(len(c) for c in data.chunks):
        stored = None
    return Volume(data, axes, scale, trans, tuple(int(c) for c in data.chunksize), path, picked, stored,
                  getattr(zarr_array, "fill_value", None))


# ------------------------------------------------------------------------------------ writing
def _out_layout(axes: list) -> int:
    """Where the channel axis goes among the stack axes: after the time axes (NGFF: t, c, z, y, x)."""
    return sum(1 for a in axes if a.get("type") == "time")


def _halve(rgb: np.ndarray) -> np.ndarray:
    """``(Y, X, C)`` -> ``(ceil(Y/2), ceil(X/2), C)``: the mean of each 2 x 2 block (edges repeated)."""
    Y, X = rgb.shape[:2]
    p = np.pad(rgb, ((0, Y % 2), (0, X % 2), (0, 0)), mode="edge")
    return p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2, -1).mean(axis=(1, 3), dtype=np.float32)


def _level_shapes(spatial: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    out = [tuple(spatial)]
    for _ in range(levels):
        out.append(tuple(-(-s // 2) for s in out[-1]))
    return out


def _create_store(path: Path, shapes: list[tuple], chunks: tuple, dtype: str, axes: list, scales: list,
                  translations: list, attrs: dict | None = None):
    """A new OME-Zarr image at ``path``: one array per level (``"0"``, ``"1"``...) and its NGFF
    multiscales metadata, written by ome-zarr-py (NGFF 0.5 on zarr format 3)."""
    zarr = _need("zarr")
    _need("ome_zarr")
    from ome_zarr.writer import write_multiscales_metadata

    group = zarr.open_group(str(path), mode="w-")
    if attrs:  # (first: they say what the store is while it is being made)
        group.attrs.update(attrs)
    names = [a["name"] for a in axes]
    for level, shape in enumerate(shapes):
        group.create_array(str(level), shape=shape, chunks=tuple(min(c, s) for c, s in zip(chunks, shape)),
                           dtype=dtype, fill_value=0, dimension_names=names)
    datasets = [{"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": s},
                                                                   {"type": "translation", "translation": t}]}
                for level, (s, t) in enumerate(zip(scales, translations))]
    write_multiscales_metadata(group, datasets, axes=axes, name=path.name.split(".")[0])
    return group


def _level_transforms(scale: list, trans: list, levels: int, spatial_axes: tuple[int, int]):
    """Pixel sizes and offsets of each level: y and x doubled per level, offset to the 2 x 2 block's centre."""
    scales, translations = [], []
    for level in range(levels + 1):
        s, t = list(scale), list(trans)
        for k in spatial_axes:
            s[k] = scale[k] * 2**level
            t[k] = trans[k] + (2**level - 1) / 2 * scale[k]
        scales.append(s)
        translations.append(t)
    return scales, translations


# ----------------------------------------------------------------------------------- the tasks
@dataclass
class _Context:
    """What every task needs; sent to each worker once."""

    model: Any  # a name/path for load_model (each worker loads it once), or a Colorizer
    device: str
    state: Any
    wshape: tuple
    intensity: tuple
    temporal: int
    dtype: str
    levels: int
    out: str
    c_axis: int
    hints: list  # the checked colour points of the whole volume (slices: flat indices over its stack axes)
    hint_spread: float
    stack_shape: tuple


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()
MODEL_LOADS = [0]  # how many models this process loaded (a worker: once per model)


def worker_model(spec, device: str):
    """The model ``spec`` names, loaded once per process (a worker's cache); a loaded model as it is."""
    if not isinstance(spec, str):
        return spec
    with _MODELS_LOCK:
        key = (spec, device)
        if key not in _MODELS:
            from .models.registry import load_model

            _MODELS[key] = load_model(spec, device=device)
            MODEL_LOADS[0] += 1
        return _MODELS[key]


def _to_device(state, device):
    from .keyframes import to_device  # (torch: imported by the tasks, not by this module)

    return to_device(state, device)


def _colorize_block(part: np.ndarray, ctx: _Context, block: int, own: tuple, offset: int) -> int:
    """Colourise the slices ``own`` (a tuple of slices over the stack axes) of the volume, given
    ``part``: those slices plus up to ``temporal`` neighbours on either side along the last stack
    axis, the first own slice at ``offset`` there. Writes whole chunks of every level, then the flag."""
    zarr = _need("zarr")
    from .hints import hints_of_part
    from .inference import colorized_slices  # (here: torch is imported by the tasks, not by this module)
    from .plan import Plan

    model = worker_model(ctx.model, ctx.device)
    origin = own[-1].start - offset if own else 0  # (the part's first slice along the last stack axis: keyframes)
    start = tuple(s.start for s in own[:-1]) + (origin,) if own else ()
    hints = hints_of_part(ctx.hints, ctx.stack_shape, start, np.shape(part)[:len(own)]) if own else ctx.hints
    plan = Plan.for_part(model, part, ctx.intensity, ctx.wshape, _to_device(ctx.state, model.device), origin=origin,
                         hints=hints, hint_spread=ctx.hint_spread)
    stack = plan.target.stack_shape
    n_own = [s.stop - s.start for s in own]
    if stack:  # flat indices in the part of the own slices
        rel = [range(n) for n in n_own[:-1]] + [range(offset, offset + n_own[-1])]
        wanted = [int(np.ravel_multi_index(tuple(r[k] for r, k in zip(rel, ix)), stack)) for ix in np.ndindex(*n_own)]
    else:
        wanted = [0]
    shapes = _level_shapes(plan.target.spatial, ctx.levels)
    bufs = [np.empty(tuple(n_own) + s + (3,), ctx.dtype) for s in shapes]
    for k, (i, rgb, _, _) in enumerate(colorized_slices(plan, ctx.temporal if stack else 0, wanted)):
        at = np.unravel_index(k, n_own) if n_own else ()
        for level, buf in enumerate(bufs):
            if level:
                rgb = _halve(rgb)
            buf[at] = to_output_dtype(rgb, ctx.dtype)
    group = zarr.open_group(ctx.out, mode="r+")
    c = ctx.c_axis
    for level, buf in enumerate(bufs):  # (stack..., Y, X, 3) -> (t.., c, z.., y, x)
        data = np.moveaxis(buf, -1, c)
        group[str(level)][own[:c] + (slice(None),) + own[c:]] = data
    group[PROGRESS_ARRAY][block] = 1
    return block


# ------------------------------------------------------------------------------- the run record
def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _files_digest(path: Path) -> str:
    """A digest of the names, sizes and modification times of the files of ``path`` (a file, or a
    zarr store's every file): cheap (no data read), and it changes when any chunk is rewritten."""
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def input_fingerprint(vol: Volume, blocks: list) -> dict:
    """What identifies the input's content in a run record: a digest of a deterministic sample
    (the first and last slices of the first, middle and last task's slices), and for a file or
    store the digest of its files' sizes and modification times (:func:`_files_digest`)."""
    import dask

    picks = sorted({0, len(blocks) // 2, len(blocks) - 1})
    h = hashlib.sha256()
    with dask.config.set(scheduler="synchronous"):
        for b in picks:
            own = blocks[b]
            last = own[-1] if own else None
            ats = [own[:-1] + (slice(k, k + 1),) for k in sorted({last.start, last.stop - 1})] if own else [()]
            for at in ats:
                h.update(np.ascontiguousarray(np.asarray(vol.data[at])).tobytes())
    rec = {"input_content": h.hexdigest()[:16]}
    if vol.path is not None:
        rec["input_files"] = _files_digest(vol.path)
    return rec


def _read_record(out: Path) -> dict | None:
    """The run record of an existing output (None when it holds none); never more than JSON."""
    zarr = _need("zarr")
    try:
        rec = dict(zarr.open_group(str(out), mode="r").attrs).get(RECORD_KEY)
    except Exception:  # not a zarr group, unreadable: not ours
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("fingerprint"), str) else None


def half_created(out: Path) -> bool:
    """True for an output store whose creation was interrupted, so that no chunk was computed into it:
    marked "creating" (its run record is written last), a run record without its progress flags
    (earlier versions), or a zarr group holding nothing (no attributes, no arrays)."""
    zarr = _need("zarr")
    try:
        group = zarr.open_group(str(out), mode="r")
        attrs = dict(group.attrs)
        members = list(group.keys())
    except Exception:
        return False
    rec = attrs.get(RECORD_KEY)
    if not attrs and not members:
        return True
    if not isinstance(rec, dict):
        return False
    if rec.get("creating") is True:
        return True
    return isinstance(rec.get("fingerprint"), str) and not rec.get("complete") and PROGRESS_ARRAY not in members


def _done_blocks(group, n: int) -> set:
    try:
        flags = np.asarray(group[PROGRESS_ARRAY][:])
    except Exception:
        return set()
    if flags.shape != (n,):
        return set()
    return {int(i) for i in np.flatnonzero(flags == 1)}


def _is_store(p: Path) -> bool:
    return any((p / f).exists() for f in ("zarr.json", ".zgroup", ".zarray"))


def _inside(a: Path, b: Path) -> bool:
    """a is b or lies inside it (resolved)."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _check_output(out: Path, inputs: list[Path], overwrite: bool) -> dict | None:
    """Refuse an output over an input, inside one or holding one; an existing output that is not an
    unfinished run (unless ``overwrite``). Returns the existing run record (or None)."""
    if out.suffix.lower() != ".zarr":
        raise ValueError(f"{out}: an OME-Zarr output is a path ending in .zarr (or .ome.zarr)")
    for i in inputs:
        if _inside(out, i) or _inside(i, out):
            raise ValueError(f"{out} is an input, or holds or lies inside one ({i}): it would be overwritten; "
                             "choose another output")
    if not out.exists():
        if not out.parent.exists():
            raise ValueError(f"{out}: the folder {out.parent}/ does not exist")
        return None
    if not out.is_dir() or not _is_store(out):
        raise ValueError(f"{out} exists and is not a zarr store: it is not replaced (choose another output)")
    if half_created(out):
        warnings.warn(f"{out} was left half-created by an interrupted run (it holds no finished chunk): it is "
                      "created again", VolumeNote, stacklevel=3)
        return None  # (removed and made again, under the run's lock)
    rec = _read_record(out)
    if rec is not None and not rec.get("complete"):
        return rec  # resumed (same arguments) or refused, once the fingerprint is known
    if not overwrite:
        raise ResumeError(f"{out} exists{' (a finished run)' if rec else ''}: it is not replaced unless you pass "
                          "overwrite=True")
    return None  # replaced


# --------------------------------------------------------------------------------------- the run
def colorize_volume(source, output, model, reference=None, histogram=None, *, client=None,
                    scheduler: str | None = None, size: int | None = None, dtype: str = "uint8", pyramid: int = 0,
                    temporal: int | None = None, normalize: str = "auto", percentiles: tuple[float, float] = (0.1, 99.9),
                    progress: Callable[[int, int], None] | str | None = None, overwrite: bool = False,
                    device: str = "auto", chunks: tuple | None = None, channel: int | str | None = None,
                    protect=(), rgb: bool | None = None, references: dict | None = None,
                    blend: str = "linear", hints=None, hint_spread: float | None = None) -> Path:
    """Colourise a greyscale volume into an OME-Zarr image; returns the output path.

    Parameters
    ----------
    source : path or array
        A ``.zarr`` array or OME-Zarr image (its highest resolution), another image file, or a
        numpy / zarr / dask array ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)``.
    output : path ending in ``.zarr``
        Never an input (nor inside one); an existing output is refused unless it is an unfinished
        run of the same arguments (then only the missing chunks are computed) or ``overwrite``.
    model : str or Colorizer
        A name or checkpoint path (each worker loads it once), or a loaded model (sent to each
        worker once when it cannot be loaded by name, for example random weights).
    reference, histogram : the guide, as for :func:`~napari_colorize.colorize` (a reference, or
        each of several in a list, may also be an image file's path).
    references, blend : keyframes along the last stack axis instead of one guide, as for
        :func:`~napari_colorize.colorize` (``{0: r0, 40: "r1.png"}``; files allowed).
    hints, hint_spread : colour points, as for :func:`~napari_colorize.colorize` on the same array:
        ``(y, x, (r, g, b))`` on every slice, ``(z, y, x, (r, g, b))`` on slice ``z`` only (its index
        along the stack axes flattened in C order, or one index per stack axis); with the model
        ``"levin"`` they are the only guide. Recorded in the run's arguments (a resumed run with
        other points is refused) and in the provenance.
    client : dask.distributed.Client, optional; scheduler : ``"tcp://host:port"`` (a cluster; ``"host:port"``
        is taken as tcp, a malformed address is refused before any work: :func:`scheduler_address`),
        ``"threads"`` (default without a client) or ``"synchronous"``.
    size, normalize, percentiles, temporal : as for :func:`~napari_colorize.colorize`; the
        result equals ``colorize`` on the whole volume, slice for slice.
    dtype : ``"uint8"`` (default) or ``"uint16"``.
    pyramid : number of lower resolution levels (each halves y and x).
    progress : ``callable(done, total)`` after each chunk (``total``: chunks this run computes;
        an exception raised there stops the run, which can be resumed), or ``"bar"``: dask's
        progress bar.
    overwrite : replace an existing output (a zarr store; never an input).
    device : for loading a named model here and on the workers.
    chunks : the chunk shape for inputs without chunks (numpy arrays, TIFF files).
    channel : for an OME-Zarr image with several channels, the one to colourise (an index, or a
        channel's name in its metadata).
    protect : more paths never to write over (guide files given by path elsewhere).
    rgb : as for :func:`open_volume`: ``False`` says an array whose last axis has 3 or 4 entries
        is a grey stack (colorize() would read it as colour).
    """
    import dask

    from .plan import NonFiniteError, Plan, resolve_model  # (here: torch on use)
    from .temporal import resolve_temporal

    if dtype not in OUT_DTYPES:
        raise ValueError(f"dtype must be 'uint8' or 'uint16' for OME-Zarr output, not {dtype!r}")
    if isinstance(pyramid, bool) or not isinstance(pyramid, (int, np.integer)) or pyramid < 0:
        raise ValueError(f"pyramid must be a whole number, 0 or more, not {pyramid!r}")
    resolve_temporal(temporal, 1)  # (checked before anything is opened)
    address = scheduler_address(scheduler)  # (a malformed address: refused before any work)
    _need("zarr")
    _need("ome_zarr")
    vol = open_volume(source, chunks, channel, rgb)
    missing = missing_note(vol)  # (input chunks not in its store: read as the fill value; said, not refused)
    if missing:
        warnings.warn(missing, VolumeNote, stacklevel=2)
    temporal = resolve_temporal(temporal, int(np.prod(vol.data.shape[:-2], dtype=np.int64)))
    out = Path(output)
    if out.is_symlink():  # (replacing or resuming through a link would write, or remove, somewhere else)
        to = os.readlink(out)
        gone = "" if out.exists() else ", which does not exist"
        raise ValueError(f"{out} is a symbolic link to {to}{gone}: give the real path of the output store "
                         f"(-o {Path(os.path.realpath(out))}), or another name")
    levels = int(np.ceil(np.log2(max(vol.data.shape[-2:])))) if max(vol.data.shape[-2:]) > 1 else 0
    if pyramid > levels:
        raise ValueError(f"pyramid={pyramid}: a {vol.data.shape[-2]} x {vol.data.shape[-1]} image has at most "
                         f"{levels} lower levels (each halves y and x, down to 1 pixel); use pyramid={levels} or less")
    given = {"reference": reference, "references": references}  # (for the provenance: file paths as given)
    refs = list(reference) if isinstance(reference, (list, tuple)) else None if reference is None else [reference]
    if isinstance(references, dict):  # keyframes: every file among them is an input too
        kf_items = [(z, list(g) if isinstance(g, (list, tuple)) else [g]) for z, g in references.items()]
        ref_paths = [Path(r) for _, gs in kf_items for r in gs if isinstance(r, (str, os.PathLike))]
    else:
        kf_items = None
        ref_paths = [Path(r) for r in refs or [] if isinstance(r, (str, os.PathLike))]
    inputs = [p for p in (vol.path,) if p is not None] + ref_paths + [Path(p) for p in protect]
    RunLock(out).check_free()  # (a store another run is creating is that run's: "busy", not "not a store")
    record = first = _check_output(out, inputs, overwrite)
    # before reading any slice (sizes come from the file); on a cluster its workers are checked below
    _check_memory(vol, temporal, dtype, pyramid, None,
                  "synchronous" if client is not None or address is not None else scheduler)
    if ref_paths and kf_items is None:  # (several references: a list of images, some of them files)
        refs = [read_image(r) if isinstance(r, (str, os.PathLike)) else r for r in refs]
        reference = refs if isinstance(reference, (list, tuple)) else refs[0]
    if kf_items is not None:
        references = {z: [read_image(r) if isinstance(r, (str, os.PathLike)) else r for r in gs] for z, gs in kf_items}
    model = resolve_model(model) if not isinstance(model, str) else _load(model, device)

    # everything that depends on the whole volume, once, here (sampling its slices in this process)
    sink: list[str] = []
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = Plan.for_target(model, vol.data, reference, histogram, size, normalize, percentiles, False, sink,
                               references=references, blend=blend, hints=hints, hint_spread=hint_spread)
    for w in dict.fromkeys(sink):
        warnings.warn(w, stacklevel=2)
    made = _provenance(model, plan, vol, given, histogram, blend, size, normalize, percentiles, temporal, dtype,
                       pyramid, scheduler if client is None else "client")
    stack_nd = vol.data.ndim - 2
    c_axis = _out_layout(vol.axes[:stack_nd])
    # one task per output chunk along the stack axes (all of y and x)
    starts = [range(0, n, c) for n, c in zip(vol.data.shape[:stack_nd], vol.chunks[:stack_nd])]
    blocks = [tuple(slice(s, min(s + c, n)) for s, c, n in zip(first, vol.chunks, vol.data.shape))
              for first in _product(starts)]
    guide = reference if reference is not None else histogram
    if references is not None:  # keyframes: each position's references' digests, and the blend
        guide_digest = blend + ";" + ";".join(f"{z}:" + "+".join(_sha(np.asarray(g, dtype=np.float64)) for g in gs)
                                               for z, gs in sorted(references.items()))
    elif isinstance(guide, (list, tuple)):  # several references: each one's digest (one alone: as before)
        guide_digest = "+".join(_sha(np.asarray(g, dtype=np.float64)) for g in guide)
    else:
        guide_digest = _sha(np.asarray(guide, dtype=np.float64))
    args = {"source": str(vol.path.resolve()) if vol.path else "array", "channel": vol.channel,
            "shape": list(vol.data.shape),
            "in_dtype": str(vol.data.dtype), "chunks": list(vol.chunks), "model": model.source or model.name,
            "guide": guide_digest, "size": size, "dtype": dtype, "pyramid": int(pyramid),
            "temporal": int(temporal), "normalize": normalize, "percentiles": [float(p) for p in percentiles],
            "intensity": [float(plan.target.lo), float(plan.target.hi), plan.target.scale_mode],
            "working_shape": list(plan.wshape), "model_state": _model_state(model, made),
            **input_fingerprint(vol, blocks)}
    if plan.hints:  # (absent without points: the fingerprint of a run without them is as before)
        args.update(hints=hashlib.sha256(json.dumps(plan.hints).encode()).hexdigest()[:16],
                    hint_spread=plan.hint_spread)
    fingerprint = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()
    if record is not None and record.get("fingerprint") != fingerprint:
        if not overwrite:
            old = record.get("arguments") if isinstance(record.get("arguments"), dict) else {}
            diff = sorted(k for k in set(args) | set(old) if old.get(k, ...) != args.get(k, ...))  # (... : absent)
            changed = [w for k, w in (("input_content", "its pixels"), ("input_files", "its files")) if k in diff
                       and k in old]
            if changed:
                raise ResumeError(f"{out} holds an unfinished run of {vol.path or 'the array given'}, which changed since "
                                  f"the run began ({' and '.join(changed)} differ): the slices already written are "
                                  "of the old input, so it is not resumed; pass overwrite=True to start again")
            if "model_state" in diff and "model_state" in old:
                raise ResumeError(f"{out} holds an unfinished run of model {args['model']!r} whose weights or settings "
                                  "have changed since the run began (another version of napari-colorize, or another "
                                  "file of that name): the slices already written are of the old model, so it is "
                                  "not resumed; pass overwrite=True to start again")
            what = (f"other arguments (differing: {', '.join(diff)})" if diff else
                    "the same arguments as recorded by an earlier version of napari-colorize")
            raise ResumeError(f"{out} holds an unfinished run with {what}: it is not resumed; run with the same "
                              "arguments, or pass overwrite=True to start again")
        record = None
    own_client = None
    lock = None
    if client is None and address is not None:
        client = own_client = connect(address)
    try:
        lock = RunLock(out).acquire()  # (BusyError when another run writes it)
        fresh = _check_output(out, inputs, overwrite)  # (as it is now that no other run writes it)
        if (fresh or {}).get("fingerprint") != (first or {}).get("fingerprint"):
            raise ResumeError(f"{out} was changed by another run while this one started: run the command again")
        _check_memory(vol, temporal, dtype, pyramid, client, scheduler)  # (the cluster's workers this time)
        created = record is None
        if record is None:
            if out.exists():  # overwrite: a zarr store (checked), never an input
                shutil.rmtree(out)
            try:
                _new_output(out, vol, c_axis, dtype, pyramid, len(blocks),
                            {"fingerprint": fingerprint, "arguments": args, "complete": False, "chunks": len(blocks)})
            except BaseException as e:  # (a full disk, interrupted...): no half-created store is left behind
                shutil.rmtree(out, ignore_errors=True)
                if is_disk_full(e):
                    raise DiskFullError(disk_full_message(out)) from None
                raise
        done = _done_blocks(_need("zarr").open_group(str(out), mode="r"), len(blocks))
        ctx = _Context(model=model.source if client is not None and model.source else model,
                       device=str(device) if model.source else str(model.device),
                       state=_to_device(plan.state, "cpu"), wshape=plan.wshape,
                       intensity=plan.intensity_range, temporal=temporal, dtype=dtype,
                       levels=int(pyramid), out=str(out.resolve()), c_axis=c_axis, hints=plan.hints,
                       hint_spread=plan.hint_spread, stack_shape=tuple(vol.data.shape[:stack_nd]))
        try:
            _run(vol, blocks, [b for b in range(len(blocks)) if b not in done], ctx, client, scheduler, progress)
        except (NonFiniteError, ImageWriteError):  # no colours to keep: a new output is not left behind
            if created:
                shutil.rmtree(out, ignore_errors=True)
            raise
        except OSError as e:
            if not is_disk_full(e):
                raise
            left = (len(blocks) - len(_done_blocks(_need("zarr").open_group(str(out), mode="r"), len(blocks))))
            need = int(left / len(blocks) * int(np.prod(vol.data.shape)) * 3 * np.dtype(dtype).itemsize *
                       (4 / 3 if pyramid else 1))
            raise DiskFullError(disk_full_message(out, need).replace("; free some space or write elsewhere", "") +
                                f" (uncompressed; {left} of {len(blocks)} chunks are missing). The chunks written "
                                f"are kept and {out} stays resumable: free some space and run the same command "
                                "again to compute only the missing chunks") from None
        group = _need("zarr").open_group(str(out), mode="r+")
        if len(_done_blocks(group, len(blocks))) != len(blocks):
            raise RuntimeError(f"{out}: some chunks were not written; run again with the same arguments to finish")
        del group[PROGRESS_ARRAY]
        group.attrs[PROVENANCE_ATTR] = made
        group.attrs[RECORD_KEY] = {**dict(group.attrs[RECORD_KEY]), "complete": True}
    finally:
        if own_client is not None:
            own_client.close()
        if lock is not None:
            lock.release()
    return out


def _model_state(model, made: dict) -> str:
    """A digest of what the model's output depends on besides its name: the weights files' digests (its
    own and a mixed-in network's, from the provenance record ``made``) and the network's config (output-stage
    settings change with a version of the package while the weights stay)."""
    base = getattr(model, "base", model)
    config = getattr(getattr(base, "network", None), "config", None)
    state = {"model": made.get("model"), "config": config.to_dict() if hasattr(config, "to_dict") else None}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _provenance(model, plan, vol: Volume, given: dict, histogram, blend: str, size, normalize: str, percentiles,
                temporal: int, dtype: str, pyramid: int, scheduler) -> dict:
    """The volume's provenance record (the guides as given: files by their path)."""
    from .keyframes import check_keyframes
    from .provenance import record

    kf = given["references"]
    if kf is not None:
        kf = check_keyframes(kf, int(vol.data.shape[-3]) if vol.data.ndim > 2 else 1, blend)
    rec = record(model, reference=given["reference"], references=kf, blend=blend if kf is not None else None,
                 histogram=histogram if given["reference"] is None and kf is None else None,
                 target=vol.path if vol.path is not None else vol.data, hints=plan.hints or None,
                 settings={"size": size, "working_shape": list(plan.wshape), "normalize": normalize,
                           "percentiles": list(percentiles), "intensity_range": [float(plan.target.lo),
                                                                                 float(plan.target.hi)],
                           "intensity_mode": plan.target.scale_mode, "temporal": int(temporal), "dtype": dtype,
                           "pyramid": int(pyramid), "channel": vol.channel, "scheduler": scheduler,
                           "device": str(model.device), **({"hint_spread": plan.hint_spread} if plan.hints else {})})
    if vol.path is not None:
        rec["target"].update(shape=[int(s) for s in vol.data.shape], dtype=str(vol.data.dtype))
    return rec


def read_provenance(path) -> dict | None:
    """How an output of napari-colorize was made: the record in an OME-Zarr image's attributes, in an
    image file's metadata (PNG, TIFF, JPEG) or in the sidecar beside it (``OUT.provenance.json``);
    None when it holds none. Raises :class:`~napari_colorize.provenance.ProvenanceError` for a record
    that is not valid, OSError/ValueError for a file that cannot be read."""
    from .io import read_embedded_text
    from .provenance import ProvenanceError, loads, sidecar_path

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if is_zarr_path(path) or path.is_dir():
        zarr = _need("zarr", "reading OME-Zarr")
        try:
            attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        except Exception as e:
            raise ValueError(f"{path} is not a zarr store ({type(e).__name__})") from None
        rec = attrs.get(PROVENANCE_ATTR)
        if rec is None:
            run = attrs.get(RECORD_KEY)
            if isinstance(run, dict) and not run.get("complete"):
                raise ProvenanceError(f"{path} is an unfinished run (its provenance is written when it completes)")
            return None
        return loads(json.dumps(rec))
    text = read_embedded_text(path)
    if text is not None:
        return loads(text)
    side = sidecar_path(path)
    if side.is_file():
        if side.stat().st_size > 4 * 2**20:
            raise ProvenanceError(f"{side} is too large to be a provenance record")
        return loads(side.read_text(errors="replace"))
    return None


def _new_output(out: Path, vol: Volume, c_axis: int, dtype: str, pyramid: int, n_blocks: int, record: dict) -> None:
    """The output store of a new run: every level's (empty) array, the NGFF metadata, the run
    record and a flag per task."""
    stack_nd = vol.data.ndim - 2
    axes = [dict(a) for a in vol.axes]
    out_axes = axes[:c_axis] + [{"name": "c", "type": "channel"}] + axes[c_axis:]
    scale = vol.scale[:c_axis] + [1.0] + vol.scale[c_axis:]
    trans = vol.translation[:c_axis] + [0.0] + vol.translation[c_axis:]
    nd = len(out_axes)
    scales, translations = _level_transforms(scale, trans, pyramid, (nd - 2, nd - 1))
    stack = tuple(vol.data.shape[:stack_nd])
    shapes = [stack[:c_axis] + (3,) + stack[c_axis:] + s for s in _level_shapes(tuple(vol.data.shape[-2:]), pyramid)]
    out_chunks = vol.chunks[:c_axis] + (3,) + vol.chunks[c_axis:]
    # "creating" first, the run record last: a store whose creation was interrupted is known as such
    group = _create_store(out, shapes, out_chunks, dtype, out_axes, scales, translations,
                          {RECORD_KEY: {"creating": True}})
    group.create_array(PROGRESS_ARRAY, shape=(n_blocks,), chunks=(1,), dtype="uint8", fill_value=0, compressors=None)
    group.attrs[RECORD_KEY] = record


def task_memory(vol: Volume, temporal: int, dtype: str, levels: int) -> int:
    """Estimated peak bytes of one task: its input slices (with the temporal overlap), its output
    chunks (every level) and the working arrays of one slice (float64 lightness, RGB, upsampled ab)."""
    stack_nd = vol.data.ndim - 2
    Y, X = vol.data.shape[-2:]
    own = int(np.prod(vol.chunks[:stack_nd])) if stack_nd else 1
    ext = own // vol.chunks[stack_nd - 1] * min(vol.data.shape[stack_nd - 1], vol.chunks[stack_nd - 1] + 2 * temporal) \
        if stack_nd else 1
    out = own * Y * X * 3 * np.dtype(dtype).itemsize * (4 / 3 if levels else 1)
    return int(ext * Y * X * np.dtype(vol.data.dtype).itemsize + out + 48 * Y * X)


def concurrent_tasks(scheduler=None) -> int:
    """How many tasks the local scheduler runs at once: 1 for ``"synchronous"``, else dask's
    thread pool (its ``num_workers`` setting, or the number of CPUs)."""
    if scheduler in ("synchronous", "sync", "single-threaded"):
        return 1
    import dask
    from dask.system import CPU_COUNT

    return max(1, int(dask.config.get("num_workers", None) or CPU_COUNT))


def _check_memory(vol: Volume, temporal: int, dtype: str, levels: int, client, scheduler=None) -> None:
    """Refuse, before any work, a volume whose tasks cannot fit in memory (chunk shapes come from
    the file's metadata: a store claiming huge slices is refused here, not by the allocator). The
    tasks that run at once count together: the local scheduler's threads share the free memory, a
    worker's threads its memory limit."""
    one = task_memory(vol, temporal, dtype, levels)
    if client is not None:
        workers = list(client.scheduler_info().get("workers", {}).values())
        per = [((w.get("memory_limit") or 0), max(1, int(w.get("nthreads") or 1))) for w in workers]
        per = [p for p in per if p[0] > 0]
        # the tightest worker: the least memory per thread
        have, n = min(per, key=lambda p: p[0] / p[1]) if per else (None, 1)
        where = f"a worker's memory limit ({n} task(s) at once, one per thread)"
        fix = "give the workers fewer threads (dask worker --nthreads) or more memory, or store the volume " \
              "with fewer slices per chunk"
    else:
        from .plan import available_memory

        have, n = available_memory("cpu"), concurrent_tasks(scheduler)
        where = f"the free memory ({n} task(s) at once, one per thread)" if n > 1 else "the free memory"
        fix = ("run fewer at once (dask's num_workers setting, or scheduler='synchronous': --scheduler "
               "synchronous) or " if n > 1 else "") + "store the volume with fewer slices per chunk"
    need = one * n
    if have and need > 0.8 * have:
        raise MemoryError(f"{'the tasks' if n > 1 else 'one task'} of this volume need{'' if n > 1 else 's'} about "
                          f"{need / 2**30:.1f} GB ({n} x {one / 2**30:.2f} GB for a chunk of {vol.chunks} slices of "
                          f"{vol.data.shape[-2]} x {vol.data.shape[-1]}), more than {where} ({have / 2**30:.1f} GB): "
                          f"{fix}")


def _product(ranges: list) -> list[tuple]:
    import itertools

    return list(itertools.product(*ranges))


def _load(name: str, device: str):
    from .models.registry import load_model

    return load_model(name, device=device)


CONNECT_TIMEOUT = 10  # seconds to wait for a dask scheduler that does not answer

LOCAL_SCHEDULERS = ("threads", "threading", "processes", "multiprocessing", "sync", "synchronous",
                    "single-threaded", "distributed", "dask.distributed")  # dask's names (not a cluster's address)
_HOST_PORT_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")  # dask.distributed's, addressed HOST:PORT


def scheduler_address(scheduler) -> str | None:
    """The dask.distributed address that ``scheduler`` (``scheduler=``, CLI ``--scheduler``) names, checked
    before any work: ``tcp://HOST:PORT`` (or tls, ws, wss, ucx) with a port from 1 to 65535, an IPv6 host
    in brackets; ``HOST:PORT`` is taken as ``tcp://HOST:PORT`` (as dask.distributed does). None for a
    local scheduler: None, one of dask's names (``"threads"``, ``"synchronous"``...) or a callable.
    ValueError naming the flag for anything else (a port that is not a number, no host, an unknown name)."""
    if scheduler is None or not isinstance(scheduler, str):
        return None
    given = scheduler
    if given.lower() in LOCAL_SCHEDULERS:
        return None
    example = "tcp://HOST:PORT, for example tcp://127.0.0.1:8786"

    def bad(why: str) -> ValueError:
        return ValueError(f"--scheduler {scheduler!r}: {why}: give the address of a dask scheduler as "
                          f"{example}, or a local scheduler (threads, processes, synchronous), or leave it out "
                          "to run here")

    protocol, sep, rest = given.partition("://")
    if not sep:
        if ":" not in given:
            raise bad("neither the address of a dask scheduler nor the name of a local one")
        protocol, rest = "tcp", given  # HOST:PORT: dask.distributed's default protocol
    protocol = protocol.lower()
    if protocol == "inproc":  # (an address within this process: as it is)
        return given
    if protocol not in _HOST_PORT_PROTOCOLS:
        raise bad(f"unknown protocol {protocol + '://'!r} (dask.distributed's: "
                  f"{', '.join(p + '://' for p in _HOST_PORT_PROTOCOLS)})")
    rest = rest.rstrip("/")
    host, colon, port = rest.rpartition(":")
    if not rest:
        raise bad("no host and port")
    if not colon or "]" in port:
        raise bad("no port number (HOST:PORT)")
    if not host or host == "[]":
        raise bad("no host before the port")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise bad("an IPv6 host goes in brackets (tcp://[::1]:8786)")
    if "/" in host or "/" in port:
        raise bad("a path after the port")
    if not port.isdigit():
        raise bad(f"the port {port!r} is not a number" if port else "no port number after the host")
    if not 1 <= int(port) <= 65535:
        raise bad(f"the port {int(port)} is not between 1 and 65535")
    return f"{protocol}://{host}:{int(port)}"


def _close_half_made(error: BaseException, client_type) -> None:
    """Close the Client that ``error`` stopped in its constructor (distributed leaves it connecting, and
    its ``__del__`` would wait 20 s, then print a traceback)."""
    tb = error.__traceback__
    while tb is not None:
        half = tb.tb_frame.f_locals.get("self")
        if isinstance(half, client_type):
            try:
                half.close(timeout=2)
            except Exception:
                pass
            return
        tb = tb.tb_next


def connect(address: str):
    """A ``distributed.Client`` of the scheduler at ``address`` (checked first: :func:`scheduler_address`);
    a clear error (ValueError) after :data:`CONNECT_TIMEOUT` seconds when nobody answers there
    (distributed's own wait is 30 s, then a traceback). A Client that fails half-made is closed."""
    address = scheduler_address(address)
    if address is None:
        raise ValueError("connect() takes the address of a dask scheduler (tcp://HOST:PORT), not a local scheduler")
    distributed = _need("distributed", "running on a dask cluster")
    try:
        return distributed.Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT)
    except BaseException as e:
        _close_half_made(e, distributed.Client)
        if isinstance(e, (OSError, TimeoutError)):  # (distributed: "Timed out trying to connect to ...")
            raise ValueError(f"no dask scheduler answers at {address} (waited {CONNECT_TIMEOUT} s: {e}): start one "
                             "(`dask scheduler`) and its workers, check the address and port, or leave --scheduler "
                             "out to run here") from None
        if isinstance(e, ValueError):
            raise ValueError(f"--scheduler {address!r}: {e}") from None
        raise


def _part(vol: Volume, own: tuple, K: int):
    """The input slices a task needs: its own, and K neighbours on either side along the last stack axis."""
    if not own:
        return vol.data, 0
    last = own[-1]
    lo, hi = max(0, last.start - K), min(vol.data.shape[len(own) - 1], last.stop + K)
    return vol.data[own[:-1] + (slice(lo, hi),)], last.start - lo


def _run(vol: Volume, blocks: list, todo: list, ctx: _Context, client, scheduler, progress) -> None:
    import dask

    if not todo:
        return
    # The guide state is one node of the graph, not scattered data: a worker fetches it once, from
    # a peer, and when every worker holding it dies the scheduler makes it again from the graph
    # (scattered data lost with its workers cannot be recovered, and the run would fail).
    ctx_ref = dask.delayed(ctx, traverse=False)
    tasks = []
    for b in todo:
        part, offset = _part(vol, blocks[b], ctx.temporal)
        tasks.append(dask.delayed(_colorize_block, pure=False)(part, ctx_ref, b, blocks[b], offset))
    if client is not None:
        _run_distributed(client, tasks, progress)
    else:
        _run_local(tasks, scheduler or "threads", progress)


def _run_local(tasks: list, scheduler: str, progress) -> None:
    import dask
    from dask.callbacks import Callback

    keys = {t.key for t in tasks}
    count = [0]

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            count[0] += 1
            progress(count[0], len(tasks))

    if progress == "bar":
        from dask.diagnostics import ProgressBar

        cb = ProgressBar()
    else:
        cb = Callback(posttask=posttask) if callable(progress) else Callback()
    with cb:
        dask.compute(*tasks, scheduler=scheduler)


def _run_distributed(client, tasks: list, progress) -> None:
    distributed = _need("distributed", "running on a dask cluster")
    import warnings

    with warnings.catch_warnings():  # the guide state is in the graph once, on purpose (see _run)
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        futures = client.compute(tasks)
    try:
        if progress == "bar":
            distributed.progress(futures, scheduler=client.scheduler.address)
            client.gather(futures)
            return
        for k, fut in enumerate(distributed.as_completed(futures, loop=client.loop), 1):
            fut.result()
            if callable(progress):
                progress(k, len(tasks))
    except BaseException:
        client.cancel(futures)
        raise


# ------------------------------------------------------------------------- napari's writer
def write_ome_zarr(path, data, *, rgb: bool = False, axis_labels=None, scale=None, translate=None, units=None,
                   dtype: str | None = None, provenance: dict | None = None) -> Path:
    """Write an image (numpy or dask, any size: written chunk by chunk) as a new OME-Zarr image.

    ``rgb``: the last axis holds colour (RGB(A)); it becomes the channel axis ``c`` (alpha dropped),
    float colour in [0, 1] is written as ``dtype`` (default uint8). ``axis_labels``, ``scale``,
    ``translate``, ``units``: per axis of the image (without its colour axis), as napari's layers
    have them; units other than pixels are kept. Axes labelled t/time, c/channel, z, y, x are written
    as those NGFF axes, in NGFF's order (t, c, z, y, x: the data transposed, each scale, offset and unit
    following its axis); with no such labels (napari's ``-3, -2, -1``) the axes are the last of
    t, z, y, x in turn; labels that mix the two, repeat an axis or lack y or x are refused
    (:func:`ngff_axes`). ``provenance``: how the image was made (a record of
    :mod:`napari_colorize.provenance`, kept in the attributes). An existing ``path`` is refused.
    """
    da = importlib.import_module("dask.array")
    path = Path(path)
    if path.suffix.lower() != ".zarr":
        raise ValueError(f"{path}: an OME-Zarr image is a path ending in .zarr (or .ome.zarr)")
    if path.exists():
        raise ValueError(f"{path} exists: it is not replaced; choose another name")

    d = data if isinstance(data, da.Array) else da.from_array(np.asarray(data) if not hasattr(data, "shape")
                                                              else data)
    if rgb:
        d = d[..., :3]
        if np.dtype(d.dtype).kind == "f":
            dtype = dtype or "uint8"
            d = d.map_blocks(to_output_dtype, dtype, dtype=np.dtype(dtype))
    elif dtype:
        d = d.astype(dtype)
    nd = d.ndim - (1 if rgb else 0)
    names, order = ngff_axes(axis_labels, nd, rgb)
    axes = [{"name": n, "type": _AXIS_TYPES[n]} for n in names]

    def per_axis(values, fill):  # (the image's axes, its last ones when more are given; then in NGFF order)
        v = list(values) if values is not None else []
        v = ([fill] * max(0, nd - len(v)) + v)[-nd:] if nd else []
        return [v[k] for k in order]

    for a, u in zip(axes, per_axis(units, None)):
        u = str(u) if u is not None else ""
        if u and u not in ("pixel", "px", "dimensionless") and a["type"] != "channel":
            a["unit"] = u
    _drop_unknown_units(axes)
    sc = [1.0 if a["type"] == "channel" else float(v) for a, v in zip(axes, per_axis(scale, 1.0))]
    tr = [0.0 if a["type"] == "channel" else float(v) for a, v in zip(axes, per_axis(translate, 0.0))]
    if order != list(range(nd)):  # (to NGFF's order t, c, z, y, x; a colour axis stays last until below)
        d = d.transpose(order + ([nd] if rgb else []))
    chunks = tuple([1] * (nd - 2) + [min(1024, s) for s in d.shape[nd - 2:nd]])
    if rgb:
        c = _out_layout(axes)
        d = da.moveaxis(d, -1, c)
        axes = axes[:c] + [{"name": "c", "type": "channel"}] + axes[c:]
        sc, tr, chunks = sc[:c] + [1.0] + sc[c:], tr[:c] + [0.0] + tr[c:], chunks[:c] + (3,) + chunks[c:]
    group = _create_store(path, [tuple(d.shape)], chunks, str(d.dtype), axes, [sc], [tr])
    try:
        d.rechunk(tuple(min(c, s) for c, s in zip(chunks, d.shape))).store(group["0"], lock=False)
        if provenance:
            group.attrs[PROVENANCE_ATTR] = provenance
    except BaseException:  # (NaN colours refused, interrupted...): no partial image left under the name
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


_NGFF_NAMES = {"t": "t", "time": "t", "c": "c", "channel": "c", "channels": "c", "z": "z", "y": "y", "x": "x"}


def ngff_axes(axis_labels, nd: int, rgb: bool = False) -> tuple[list[str], list[int]]:
    """The NGFF axis names of an image's ``nd`` axes (without its colour axis) from their labels, and the
    order to transpose them to (NGFF: t, c, z, y, x). Labels t/time, c/channel, z, y, x (any case) name
    their axes; when no label is one of these (napari's default ``-3, -2, -1``, or none given) the axes
    are the last ``nd`` of t, z, y, x, in the order given. ValueError for labels that cannot be mapped:
    some known and some not, an axis twice, no y or x, a ``c`` besides an RGB image's colour, or more
    axes than NGFF has."""
    given = [str(a) for a in (axis_labels if axis_labels is not None else [])]
    raw = ([""] * nd + given[-nd:])[-nd:] if nd else []
    known = [_NGFF_NAMES.get(a.strip().lower()) for a in raw]
    if not any(known):
        if not 2 <= nd <= 4:
            raise ValueError(f"an OME-Zarr image has 2 to 4 axes besides colour; this one has {nd}")
        return ["t", "z", "y", "x"][-nd:], list(range(nd))
    if not all(known):
        bad = ", ".join(repr(a) for a, k in zip(raw, known) if k is None)
        raise ValueError(f"axis labels {given}: {bad} cannot be mapped to an OME-Zarr axis; label every axis "
                         "t, c, z, y or x (or none of them)")
    if len(set(known)) < len(known):
        raise ValueError(f"axis labels {given} name an OME-Zarr axis twice")
    if "y" not in known or "x" not in known:
        raise ValueError(f"axis labels {given}: an OME-Zarr image needs axes y and x")
    if rgb and "c" in known:
        raise ValueError(f"axis labels {given}: an RGB image's colour is its channel axis c; "
                         "no other axis can be c")
    order = sorted(range(nd), key=lambda k: NGFF_ORDER.index(known[k]))
    return [known[k] for k in order], order


def _drop_unknown_units(axes: list) -> None:
    """Drop units that NGFF does not know (napari's layers may carry any pint unit)."""
    _need("ome_zarr", "writing OME-Zarr")
    from ome_zarr.axes import KNOWN_SPATIAL_UNITS, KNOWN_TEMPORAL_UNITS

    for a in axes:
        known = KNOWN_TEMPORAL_UNITS if a.get("type") == "time" else KNOWN_SPATIAL_UNITS
        if "unit" in a and a["unit"] not in known:
            del a["unit"]


def napari_write_image(path: str, data, meta: dict) -> list[str]:
    """npe2 writer (image layer -> ``.zarr`` / ``.ome.zarr``): the layer's data, at any size, with its
    scale, translate, axis labels and units. Returns the written path."""
    if isinstance(data, list):  # a multiscale layer: its highest resolution
        data = data[0]
    made = (meta.get("metadata") or {}).get("provenance")  # (our results carry how they were made)
    out = write_ome_zarr(path, data, rgb=bool(meta.get("rgb")), axis_labels=meta.get("axis_labels"),
                         scale=meta.get("scale"), translate=meta.get("translate"), units=meta.get("units"),
                         provenance=made if isinstance(made, dict) and made.get("format") == FORMAT else None)
    return [str(out)]
