"""Background work for the widgets: the model cache, typed messages and the jobs (napari thread workers).

Every job is a generator run in a worker thread: it ``yield``s :class:`Progress` (or :class:`CompareRow`)
messages, at which napari's ``quit()`` takes effect (Cancel), and returns a typed result. The widgets
run them through their :class:`~._jobs.JobRunner` and never see a bare tuple. All maths is in the library
(:func:`napari_colorize.inference.iter_colorize`, :func:`napari_colorize.compare.iter_compare`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Iterable

import numpy as np

from ..compare import iter_compare
from ..inference import StackAssembler, iter_colorize, lazy_colorize
from ..models.registry import load_model, model_info
from ..provenance import record
from ..allocator import keep_freed_memory
from ..threads import set_threads

__all__ = ["job", "JobError", "Progress", "CompareRow", "Colourised", "LazyResult", "Saved", "ModelCache", "MODELS", "get_model",
           "collect_slices", "colorize_job", "lazy_job", "save_job", "compare_job", "Suggested", "suggest_job"]


# ------------------------------------------------------------------ the job decorator
class JobError(Exception):
    """A job's ``RuntimeError`` (torch's out-of-memory, a failed computation of a lazy slice, ...) raised again
    as this: superqt's generator workers take a ``RuntimeError`` for a deleted worker and drop it - no error
    signal and no end, so the widget would stay busy without a word."""


def job(fn):
    """A widget job: calling it makes a napari thread worker running the generator function ``fn``, its
    errors left to :meth:`~._jobs.JobRunner.start` to report once (``ignore_errors``), a ``RuntimeError`` as
    :class:`JobError`. A cancelled job's generator is closed (its ``finally`` and ``with`` blocks run: a
    partial file is removed); superqt's worker only stops calling it."""

    @functools.wraps(fn)
    def surfaced(*args, **kwargs):
        try:
            return (yield from fn(*args, **kwargs))
        except RuntimeError as e:  # (a Cancelled too: JobRunner sees it as the cause and reports no failure)
            raise JobError(str(e) or type(e).__name__) from e

    @functools.wraps(fn)
    def make(*args, **kwargs):
        from napari.qt.threading import create_worker

        made = []  # the job's generator, once the worker has started it

        def run():
            made.append(surfaced(*args, **kwargs))
            return (yield from made[0])

        worker = create_worker(run, _ignore_errors=True)
        worker.aborted.connect(lambda: made and made[0].close())
        return worker

    return make


# ------------------------------------------------------------------ messages
@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps (slices, models, ...), with a line for the status label."""

    done: int
    total: int
    text: str = ""


@dataclass(frozen=True)
class CompareRow(Progress):
    """One model of a comparison is done: its row of scores and its RGB output."""

    row: dict = field(default_factory=dict)
    image: np.ndarray | None = None


@dataclass
class Colourised:
    """A finished colourisation: ``rgb`` is ``stack_shape + (H, W, 3)`` float32 in [0, 1].

    ``scales`` (P1-P4 as RGB) and ``attention`` (the model's named maps) describe the last slice and are
    empty when the model has none or they were not asked for."""

    rgb: np.ndarray
    model: str
    kind: str
    working_shape: tuple[int, int]
    scales: list = field(default_factory=list)
    attention: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    generation: int = -1  # which preview request this answers (histogram widget); -1 for a full run
    confidence: np.ndarray | None = None  # stack_shape + (H, W) in [0, 1]: how well each pixel matched
    provenance: dict = field(default_factory=dict)  # how it was made (napari_colorize.provenance)

    @property
    def is_stack(self) -> bool:
        return self.rgb.ndim > 3


@dataclass
class LazyResult:
    """A lazy (dask) colourised stack: slices are computed when they are read."""

    rgb: Any
    model: str
    provenance: dict = field(default_factory=dict)


@dataclass
class Saved:
    path: str
    shape: tuple[int, ...]


# --------------------------------------------------------------- model cache
class ModelCache:
    """Loaded models by (file, device, file stamp).

    A registry name is keyed on its weights file and a checkpoint on its path, each with the file's
    modification time and size: a checkpoint retrained at the same path is loaded again, not served stale.
    Thread-safe (workers load models)."""

    def __init__(self) -> None:
        self._models: dict[tuple, object] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(name: str, device: str) -> tuple:
        name = str(name)
        try:
            file = model_info(name).weights_path  # a registry name: its weights file (None for baselines)
        except ValueError:
            file = Path(name)  # a checkpoint path (or a name registered with put())
        if file is not None and file.is_file():
            st = file.stat()
            return (name, device, str(file.resolve()), st.st_mtime_ns, st.st_size)
        return (name, device, None, None, None)

    def get(self, name: str, device: str = "auto"):
        key = self.key(name, device)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load_model(name, device=device)
                # an older version of the same file on the same device is no longer needed
                for k in [k for k in self._models if k[:2] == key[:2]]:
                    del self._models[k]
                self._models[key] = model
            return model

    def put(self, name: str, model, device: str = "auto") -> None:
        """Serve an already loaded ``model`` under ``name`` (tests, scripts)."""
        with self._lock:
            self._models[self.key(name, device)] = model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return len(self._models)


MODELS = ModelCache()


def get_model(name: str, device: str = "auto"):
    return MODELS.get(name, device)


# ---------------------------------------------------------------------- jobs
def collect_slices(slices: Iterable) -> Generator[Progress, None, tuple]:
    """Gather the ``(index, rgb, prediction, info)`` slices of :func:`iter_colorize` into whole arrays,
    yielding a :class:`Progress` per slice. Returns the :class:`~napari_colorize.inference.StackAssembler`
    (``rgb``, ``confidence``, the last ``pred`` and ``info``). Use with ``yield from`` inside a job."""
    stack = StackAssembler()
    for idx, rgb_slice, pred, info in slices:
        stack.add(idx, rgb_slice, pred, info)
        done, total = info["done"], info["n_slices"]
        yield Progress(done, total, f"slice {done} of {total}" if total > 1 else "colourising...")
    return stack


@job
def colorize_job(model_name: str, device: str, target, *, reference=None, histogram=None, size: int | None = None,
                 attention: bool = False, rgb: bool = False, generation: int = -1, references=None,
                 blend: str = "linear", hints=None, hint_spread: float | None = None):
    """Colourise ``target`` (2-D or a stack) with a reference or a histogram; returns :class:`Colourised`.
    ``size``: the working long side (None: the model's ``default_size``)."""
    set_threads()  # torch's threads in this worker: the idle cores (or NAPARI_COLORIZE_THREADS)
    keep_freed_memory()  # (freed tensors reused by the next run: allocator.py)
    model = get_model(model_name, device)
    yield Progress(0, 1, "colourising...")
    warnings: list[str] = []
    slices = iter_colorize(model, target, reference=reference, histogram=histogram, size=size,
                           return_attention=attention, rgb=rgb, sink=warnings, references=references, blend=blend,
                           hints=hints, hint_spread=hint_spread)
    stack = yield from collect_slices(slices)
    pred, info = stack.pred, stack.info
    return Colourised(stack.rgb, model.name, model.kind, tuple(info["working_shape"]), info["scales"],
                      dict(pred.attention) if attention else {}, warnings, generation, stack.confidence,
                      info["provenance"])


@job
def lazy_job(model_name: str, device: str, target, reference, size: int, rgb: bool, references=None,
             blend: str = "linear", hints=None, hint_spread: float | None = None):
    """Set up a lazy colourised stack (intensity range, reference features) without computing it."""
    model = get_model(model_name, device)
    yield Progress(0, 1, "preparing...")
    rgb_lazy = lazy_colorize(model, target, reference=reference, size=size, rgb=rgb, references=references,
                             blend=blend, hints=hints, hint_spread=hint_spread)
    made = record(model, reference=reference, references=references, blend=blend if references else None,
                  target=target, hints=hints, settings={"size": size, "rgb": rgb, "temporal": 0, "lazy": True,
                                                        "device": str(model.device)})
    return LazyResult(rgb_lazy, model.name, made)


@job
def save_job(lazy, path, provenance: dict | None = None):
    """Compute every slice of a lazy result and write them to an RGB TIFF, one slice at a time (with
    ``provenance`` in its description). The file appears under ``path`` only when every slice is written
    (:class:`~napari_colorize.io.StackWriter`): a failed or cancelled save leaves an existing file as it was."""
    from ..io import StackWriter
    from ..provenance import dumps

    set_threads()
    keep_freed_memory()
    n_stack = tuple(lazy.shape[:-3])
    flat = lazy.reshape((-1,) + lazy.shape[-3:])
    n = flat.shape[0]
    with StackWriter(path, tuple(lazy.shape), dtype="uint8", text=dumps(provenance) if provenance else None) as w:
        for i in range(n):
            w[np.unravel_index(i, n_stack) if n_stack else ...] = np.asarray(flat[i], np.float32)
            yield Progress(i + 1, n, f"saved slice {i + 1} of {n}")
    return Saved(str(path), n_stack + tuple(lazy.shape[-3:]))


@job
def compare_job(names: list[str], target, reference, truth, rgb: bool, device: str = "auto"):
    """Run each model on the pair; yields a :class:`CompareRow` per model."""
    set_threads()
    keep_freed_memory()
    models = [get_model(n, device) for n in names]
    n = len(names)
    for k, (row, image) in enumerate(iter_compare(models, np.asarray(target), reference, truth=truth, rgb=rgb), 1):
        yield CompareRow(k, n, f"{row['model']} done ({k} of {n})", row=row, image=image)


@dataclass(frozen=True)
class Suggested:
    """Ranked references: ``ranking`` (library Suggestions), ``thumbnails`` (uint8 RGB per candidate index),
    ``errors`` (files that could not be read)."""

    ranking: list
    thumbnails: dict
    errors: list


@job
def suggest_job(target, layer_images: list, layer_names: list, files: list, top: int = 4):
    """Rank the viewer's colour layers and the image files of a folder as references for ``target``."""
    from ..io import read_image
    from ..suggest import suggest_references, thumbnail

    set_threads()
    keep_freed_memory()
    yield Progress(0, 1, "ranking references...")
    errors: list[str] = []
    ranking = []
    if layer_images:
        ranking += suggest_references(target, layer_images, top=top, names=layer_names, cache=False, errors=errors)
        ranking = [dataclasses.replace(s, name=f"layer:{s.name}") for s in ranking]
    if files:
        got = suggest_references(target, files, top=top, errors=errors)
        ranking += [dataclasses.replace(s, name=f"file:{s.name}", index=len(layer_images) + s.index) for s in got]
    ranking.sort(key=lambda s: -s.score)
    ranking = ranking[:top]
    thumbs = {}
    for s in ranking:
        img = layer_images[s.index] if s.name.startswith("layer:") else read_image(s.name[5:])
        thumbs[s.index] = (thumbnail(np.asarray(img), 96) * 255 + 0.5).astype(np.uint8)
    return Suggested(ranking, thumbs, errors)
