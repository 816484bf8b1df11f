"""How an output was made: a JSON record (model and weights' hash, guides with their pixels' hashes, settings, version).

Every colourisation has one (``ColorizeResult.provenance``, the ``info["provenance"]`` of
:func:`~napari_colorize.iter_colorize`); the command line writes it into the image (PNG text chunk, TIFF
description, JPEG comment; a sidecar ``OUT.provenance.json`` for ``.npy``), the volume path into the
OME-Zarr attributes, napari into the result layer's metadata; ``napari-colorize info OUT`` prints it::

    {"format": "napari-colorize provenance", "version": 1, "created": "2026-12-04T20:00:00Z",
     "software": {"napari-colorize": "0.1.0", "torch": "...", "python": "..."},
     "model": {"name": "exemplar", "kind": "exemplar", "source": "exemplar", "weights_sha256": "...",
               "mixes_in": {"name": "histogram-companion", "kind": "histogram", "source": "histogram-companion",
                            "weights_sha256": "..."}},
     "references": [{"name": "ref.jpg", "path": "/abs/ref.jpg", "sha256": "...", "shape": [h, w, 3],
                     "dtype": "uint8"}],
     "keyframes": {"0": [...], "40": [...]}, "blend": "linear",
     "histogram": {"sha256": ..., "shape": [21, 21]}, "hints": [[y, x, [r, g, b]], [z, y, x, [r, g, b]], ...],
     "settings": {"size": ..., "working_shape": ..., "intensity_range": ..., "temporal": ..., ...},
     "target": {"name": ..., "shape": [...], "dtype": ...}}

A pixel hash is the SHA-256 of the array's dtype, shape and C-order bytes: the same pixels in another
file format (or a napari layer) give the same hash. A record read from a file is untrusted: it is
parsed as JSON of bounded size and checked to be one of ours, nothing in it is run.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

__all__ = ["FORMAT", "KEY", "record", "pixels_digest", "file_digest", "dumps", "loads", "named",
           "sidecar_path", "check_sidecar", "write_sidecar", "describe", "ProvenanceError", "MAX_BYTES"]

FORMAT = "napari-colorize provenance"
KEY = "napari-colorize"  # the PNG text key, the OME-Zarr attribute, the TIFF metadata key
VERSION = 1
MAX_BYTES = 4 * 2**20  # a record read from a file larger than this is refused (ours are a few kB)
_SIDECAR = ".provenance.json"


class ProvenanceError(ValueError):
    """A provenance record that cannot be read, or a sidecar that would replace a file of the user's."""


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    """The installed napari-colorize's version (its package metadata; "unknown" when not installed),
    read once per process (reading the metadata takes longer than the rest of a call's record)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-colorize")
    except PackageNotFoundError:
        return "unknown"


def pixels_digest(array) -> str:
    """SHA-256 of an image's pixels: dtype, shape and C-order bytes (numpy, dask, zarr or torch arrays)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(array))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


_FILE_DIGESTS: dict[tuple, str] = {}


def file_digest(path) -> str | None:
    """SHA-256 of a file's bytes (a weights file), cached by path, size and modification time; None if absent."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


def _image_entry(image, name: str) -> dict:
    entry: dict = {"name": name}
    if isinstance(image, (str, os.PathLike)):
        from .io import read_image

        entry["name"] = Path(image).name
        entry["path"] = str(Path(image).resolve())
        image = read_image(image)
    a = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    entry.update(sha256=pixels_digest(a), shape=list(a.shape), dtype=str(a.dtype))
    return entry


def _guide_list(guide) -> list:
    """One image or a list/tuple of images (a list of plain numbers is one image)."""
    from .io import is_image_like

    if isinstance(guide, (list, tuple)) and guide and all(is_image_like(g) for g in guide):
        return list(guide)
    return [guide]


def _model_entry(model) -> dict:
    base = getattr(model, "base", model)  # (a colour-matched model records the network under it)
    out = {"name": str(model.name), "kind": str(model.kind), "source": getattr(base, "source", None)}
    weights = getattr(base, "weights_file", None)
    out["weights_sha256"] = file_digest(weights) if weights else None
    if hasattr(model, "strength"):
        out["match"] = float(model.strength)
    companion = getattr(base, "companion", None)
    if companion is not None:  # (the histogram network an exemplar mixes in: its weights shape the output too)
        out["mixes_in"] = _model_entry(companion)
    return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def record(model, *, reference=None, references: dict | None = None, blend: str | None = None, histogram=None,
           hints=None, settings: dict | None = None, target=None, target_name: str | None = None) -> dict:
    """The provenance of one colourisation (see the module docs).

    ``reference``: one image or a list (arrays or files; files are named by their path);
    ``references``: keyframes ``{slice: image or [images]}``; ``hints``: ``[(y, x, (r, g, b)), ...]``
    (``(z, y, x, (r, g, b))``: slice z's alone, z recorded as given);
    ``settings``: JSON-able options (size, normalize, temporal, ...); ``target``: the array coloured
    (its shape and dtype recorded, not its pixels: a volume may be terabytes) or a file.
    """
    import torch

    rec: dict = {"format": FORMAT, "version": VERSION,
                 "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "software": {"napari-colorize": package_version(), "torch": torch.__version__,
                              "python": platform.python_version()},
                 "model": _model_entry(model)}
    if reference is not None:
        refs = _guide_list(reference)
        rec["references"] = [_image_entry(r, "reference" if len(refs) == 1 else f"reference {i + 1}")
                             for i, r in enumerate(refs)]
    if references is not None:
        rec["keyframes"] = {str(int(z)): [_image_entry(r, f"keyframe {z}" + ("" if len(g) == 1 else f" ({i + 1})"))
                                          for i, r in enumerate(g)]
                            for z, g in sorted((int(z), _guide_list(g)) for z, g in references.items())}
        rec["blend"] = blend or "linear"
    if histogram is not None:
        h = np.asarray(histogram, dtype=np.float64)
        rec["histogram"] = {"sha256": pixels_digest(h), "shape": list(h.shape)}
    if hints is not None:
        rec["hints"] = [[*(_jsonable(z) for z in h[:-3]), float(h[-3]), float(h[-2]), [float(c) for c in h[-1]]]
                        for h in hints]
    if target is not None:
        if isinstance(target, (str, os.PathLike)):
            rec["target"] = {"name": Path(target).name, "path": str(Path(target).resolve())}
        else:
            rec["target"] = {"shape": [int(s) for s in np.shape(target)], "dtype": str(getattr(target, "dtype", ""))}
        if target_name:
            rec["target"]["name"] = target_name
    rec["settings"] = _jsonable(dict(settings or {}))
    return rec


_FILE_ENTRIES: dict[tuple, dict] = {}


def _rename(entry: dict, name, files: bool) -> None:
    if files and isinstance(name, (str, os.PathLike)) and Path(name).is_file() and "sha256" in entry:
        # a file: its name, where it is, and its own pixels (the record may hold them as converted)
        st = Path(name).stat()
        key = (str(Path(name).resolve()), st.st_size, st.st_mtime_ns)
        if key not in _FILE_ENTRIES:
            _FILE_ENTRIES[key] = _image_entry(name, "")
        entry.update(_FILE_ENTRIES[key])
    elif files and isinstance(name, (str, os.PathLike)) and Path(name).is_file():  # (a target: not read again)
        entry["name"], entry["path"] = Path(name).name, str(Path(name).resolve())
    else:
        entry["name"] = str(name)


def named(rec: dict, names=None, target=None, files: bool = True) -> dict:
    """A copy of ``rec`` with its guides renamed (layer names in napari, the files of a command):
    ``names`` a list (the references, in order) or a dict ``{slice: [names]}`` (keyframes); a name
    that is a file records its path too (``files=False``: names only, e.g. napari's layers).
    ``target``: the target's name (or file)."""
    out = json.loads(json.dumps(rec))
    if isinstance(names, dict):
        for z, ns in names.items():
            for e, n in zip(out.get("keyframes", {}).get(str(int(z)), []), _guide_list(ns)):
                _rename(e, n, files)
    elif names is not None:
        for e, n in zip(out.get("references", []), _guide_list(names)):
            _rename(e, n, files)
    if target is not None:
        _rename(out.setdefault("target", {}), target, files)
    return out


def dumps(rec: dict) -> str:
    """The record as compact JSON text (ASCII: TIFF descriptions must be 7-bit)."""
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=True)


def loads(text) -> dict:
    """Parse and check a record read from a file (untrusted): bounded size, JSON, one of ours."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise ProvenanceError(f"a provenance record is text, not {type(text).__name__}")
    if len(text) > MAX_BYTES:
        raise ProvenanceError(f"the provenance record is {len(text)} characters long (at most {MAX_BYTES})")
    try:
        rec = json.loads(text)
    except ValueError as e:
        raise ProvenanceError(f"the provenance record is not valid JSON ({e})") from None
    if isinstance(rec, dict) and KEY in rec and isinstance(rec[KEY], dict):  # (TIFF: inside tifffile's own JSON)
        rec = rec[KEY]
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise ProvenanceError("this is not a napari-colorize provenance record")
    return rec


# ---------------------------------------------------------------------- sidecars
def sidecar_path(output) -> Path:
    """Where an output's sidecar goes: ``OUT.npy`` -> ``OUT.provenance.json`` beside it."""
    p = Path(output)
    return p.with_name(p.stem + _SIDECAR)


def _is_ours(path: Path) -> bool:
    try:
        if path.stat().st_size > MAX_BYTES:
            return False
        loads(path.read_text(errors="replace"))
        return True
    except (OSError, ProvenanceError):
        return False


def check_sidecar(output) -> str | None:
    """Why the sidecar of ``output`` cannot be written (a file of the user's is there), or None. A
    sidecar of ours (an earlier run's) may be replaced together with its output."""
    s = sidecar_path(output)
    if s.is_dir() or (s.exists() and not _is_ours(s)):
        return (f"{s} exists and is not a provenance file of napari-colorize: it is never replaced; move it, "
                "choose another output name, or pass --no-provenance")
    return None


def remove_sidecar(output) -> bool:
    """Remove the sidecar of ``output`` when it is ours (an earlier run's record of a file now replaced, which
    would describe another run); a file of the user's there is left alone. Returns whether one was removed."""
    s = sidecar_path(output)
    if s.is_file() and not s.is_symlink() and _is_ours(s):
        s.unlink()
        return True
    return False


def write_sidecar(output, rec: dict) -> Path:
    """Write ``rec`` beside ``output`` (atomically; refused over a file that is not ours)."""
    why = check_sidecar(output)
    if why:
        raise ProvenanceError(why)
    s = sidecar_path(output)
    tmp = s.with_name(f".{s.name}.part-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(rec, indent=1) + "\n")
        os.replace(tmp, s)
    finally:
        if tmp.exists():
            tmp.unlink()
    return s


# ---------------------------------------------------------------------- reading out
def describe(rec: dict) -> str:
    """A record as lines for people (``napari-colorize info``)."""
    lines = [f"made by napari-colorize {rec.get('software', {}).get('napari-colorize', '?')} "
             f"on {rec.get('created', '?')}"]
    m = rec.get("model", {})
    w = m.get("weights_sha256")
    lines.append(f"model: {m.get('name', '?')} ({m.get('kind', '?')})" +
                 (f", weights sha256 {w[:16]}..." if w else ", no weights file (a method without weights)"))
    mix = m.get("mixes_in")
    if isinstance(mix, dict):
        wm = mix.get("weights_sha256")
        lines.append(f"mixes in: {mix.get('name', '?')} ({mix.get('kind', '?')})" +
                     (f", weights sha256 {str(wm)[:16]}..." if wm else ""))

    def guide(e):
        where = e.get("path") or e.get("name", "?")
        return f"{where} ({'x'.join(map(str, e.get('shape', [])))} {e.get('dtype', '')}, " \
               f"pixels sha256 {str(e.get('sha256', ''))[:16]}...)"

    for e in rec.get("references", []):
        lines.append(f"reference: {guide(e)}")
    for z, es in rec.get("keyframes", {}).items():
        for e in es:
            lines.append(f"keyframe {z}: {guide(e)}")
    if "keyframes" in rec:
        lines.append(f"blend: {rec.get('blend', 'linear')}")
    if "histogram" in rec:
        lines.append(f"histogram: sha256 {rec['histogram'].get('sha256', '')[:16]}...")
    if rec.get("hints"):
        lines.append(f"hints: {len(rec['hints'])} colour point(s): " +
                     "; ".join(("" if len(h) == 3 else f"slice {h[0]} ") + f"({h[-3]:g}, {h[-2]:g}) "
                               f"rgb{tuple(round(c, 3) for c in h[-1])}"
                               for h in rec["hints"][:8]) + (" ..." if len(rec["hints"]) > 8 else ""))
    t = rec.get("target")
    if t:
        lines.append("target: " + ", ".join(f"{k} {v}" for k, v in t.items()))
    s = rec.get("settings", {})
    if s:
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in s.items()))
    return "\n".join(lines)
