"""The inference engine: from any array (and a guide) to a colourised RGB image, through a Plan.

``colorize(model, target, reference=... | histogram=...)``

1. **Target.** Any numeric dtype. uint8 is read as 0..255 grey; float data already
   in [0, 1] is used as is; anything else (uint16 microscopy, signed ints, floats
   of any range) is stretched between two percentiles (0.1 and 99.9 by default)
   computed over the whole image or stack. Bool becomes 0/1 and an RGB(A) target
   is reduced to its Lab lightness, each with a warning. Non-finite values are
   replaced (warning); an empty or all-NaN array is an error.
2. **Working resolution.** The network sees the image resized (antialiased) so
   that its long side is ``size`` pixels (the model's default when None; images
   smaller than that are not enlarged), each side rounded to the model's
   multiple (32 for EfficientNet-Lite0) and at least that multiple. The
   reference is resized to the same working shape.
3. **Edge-aware upsampling.** The predicted ab is carried to the full size by
   joint bilateral upsampling (Kopf et al. 2007) guided by the full-size
   lightness, so colour edges follow the full-resolution luminance edges
   instead of being smeared as bilinear interpolation would.
4. **Recombination.** ab is joined with the target's own full-resolution L and
   converted to sRGB in row bands (bounded memory). Out-of-gamut pixels lose
   chroma, never lightness, so the output's L equals the input's.
5. **Stacks.** A 3-D (Z/T, Y, X) or n-D greyscale array is colourised slice by
   slice; the reference features are computed once. ``progress(done, total)`` is
   called after every slice and ``should_cancel()`` before each one.

The stages live in their own modules: :mod:`~napari_colorize.inputs` (1: the target's layout and
intensity, the references and histograms), :mod:`~napari_colorize.plan` (2: the working size, the
attention's memory, the prepared guide; :class:`~napari_colorize.plan.Plan`),
:mod:`~napari_colorize.upsample` (3 and 4) and :mod:`~napari_colorize.temporal` (a stack's
neighbouring slices, against flicker). This module drives them: :func:`colorize`,
:func:`iter_colorize`, :func:`lazy_colorize`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from .color import AB_SCALE, ColorizeWarning, lab_to_rgb_in_gamut
from .provenance import record as record_provenance
from .models.base import Prediction
from .models.lazy import LazyList
from .plan import Plan, resolve_model
from .temporal import DEFAULT_TEMPORAL, StackMotion, resolve_temporal, temporal_smooth
from .transfer import MatchedColorizer, match_strength
from .upsample import confidence_map, recombine, resize

__all__ = ["colorize", "iter_colorize", "lazy_colorize", "ColorizeResult", "ColorizeWarning", "Cancelled",
           "colorized_slices", "StackAssembler"]


class Cancelled(RuntimeError):
    """Raised when ``should_cancel()`` returned True."""


@dataclass
class ColorizeResult:
    """The output of :func:`colorize`.

    Attributes
    ----------
    rgb : ndarray, float32, ``(..., H, W, 3)`` in [0, 1]; the target's shape.
    scales : list of ndarray
        The multi-scale outputs ``[P1, P2, P3, P4]`` as RGB (exemplar networks; 2-D
        targets, or the last slice of a stack), each at its own resolution. A list
        computed on first access (the conversion costs more than the network's output).
    attention : dict (computed on first access, like ``scales``)
        ``"level{l}.module{m}"`` -> :class:`~napari_colorize.models.maps.AttentionMaps`
        (exemplar networks), ``"pixel_to_bin"`` -> :class:`~napari_colorize.models.maps.BinAttention` over ``(h/4, w/4, 21, 21)`` (histogram network).
    working_shape : (h, w) the size the network saw.
    model : the model's name.
    intensity_range : the (low, high) input values mapped to black and white.
    warnings : list of str, what was converted or doubtful.
    provenance : dict
        How it was made (:mod:`napari_colorize.provenance`): the model and its weights' hash, the
        references (names, pixel hashes), keyframes, settings and the package version.
    confidence : ndarray, float32, ``(..., H, W)`` in [0, 1], or None
        How well and how unambiguously each pixel found its match in the reference (the exemplar
        networks and the warps; None for the global baselines and the histogram models): a logistic
        function of the best feature similarities at fine and coarse backbone levels
        (:mod:`napari_colorize.models.coherence`), carried to full size bilinearly.
    """

    rgb: np.ndarray
    scales: list = field(default_factory=list)
    attention: dict = field(default_factory=dict)
    working_shape: tuple = (0, 0)
    model: str = ""
    intensity_range: tuple = (0.0, 1.0)
    warnings: list = field(default_factory=list)
    confidence: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)


def scales_to_rgb(pred: Prediction, L_work: torch.Tensor) -> list[np.ndarray]:
    out = []
    for p in pred.scales:
        ab = p[0].detach().float().cpu()
        L = resize(L_work[None, None], tuple(ab.shape[-2:]))[0, 0]
        lab = torch.cat([L[None], ab.clamp(-1, 1) * AB_SCALE], 0)
        out.append(lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy())
    return out


def _stack_runs(stack_shape: tuple) -> int:
    """Slices per run along the last stack axis (neighbours are smoothed within a run only)."""
    return int(stack_shape[-1]) if stack_shape else 1


def iter_colorize(model, target, reference=None, histogram=None, *, size: int | None = None,
                  normalize: str = "auto", percentiles: tuple[float, float] = (0.1, 99.9), rgb: bool | None = None,
                  return_attention: bool = True, should_cancel: Callable[[], bool] | None = None,
                  sink: list | None = None, channel_axis: int | None = None, temporal: int | None = None,
                  references: dict | None = None, blend: str = "linear", hints=None,
                  hint_spread: float | None = None) -> Iterator[tuple[tuple, np.ndarray, Prediction, dict]]:
    """Colourise slice by slice. Yields ``(index, rgb, prediction, info)`` per 2-D slice.

    Arguments as :func:`colorize`. ``info`` holds ``working_shape``, ``n_slices``, ``stack_shape``,
    ``intensity_range``, ``scales`` (RGB, when the model gives them), ``done`` and ``provenance`` (a dict:
    how the output was made, :mod:`napari_colorize.provenance`).
    """
    plan = Plan.for_target(model, target, reference, histogram, size, normalize, percentiles, rgb,
                           [] if sink is None else sink, channel_axis, references, blend, hints, hint_spread)
    n = plan.target.n_slices
    K = resolve_temporal(temporal, n)
    lo, hi, mode = plan.intensity_range
    if references is not None:  # (recorded at their positions: -1 is the last slice's)
        from .keyframes import check_keyframes

        references = check_keyframes(references, _stack_runs(plan.target.stack_shape), blend)
    made = record_provenance(
        plan.model, reference=reference, references=references, blend=blend if references is not None else None,
        histogram=histogram if reference is None and references is None else None, target=target,
        hints=plan.hints or None,
        settings={**({"hint_spread": plan.hint_spread} if plan.hints else {}), "size": size, "working_shape": list(plan.wshape), "normalize": normalize,
                  "percentiles": list(percentiles), "intensity_range": [lo, hi], "intensity_mode": mode,
                  "temporal": K, "rgb": rgb, "channel_axis": channel_axis, "device": str(plan.model.device)})

    def info_of(i, pred, L_work):
        last = i == n - 1
        return {"working_shape": plan.wshape, "n_slices": n, "stack_shape": plan.target.stack_shape,
                "intensity_range": plan.intensity_range[:2], "done": i + 1, "provenance": made,
                "scales": LazyList(lambda p=pred, L=L_work: scales_to_rgb(p, L)) if last else []}

    for i, rgb_out, pred, L_work in colorized_slices(plan, K, range(n), n - 1 if return_attention else None,
                                                    should_cancel):
        yield plan.target.index(i), rgb_out, pred, info_of(i, pred, L_work)


def colorized_slices(plan: Plan, temporal: int, wanted, attention_at: int | None = None,
                     should_cancel: Callable[[], bool] | None = None
                     ) -> Iterator[tuple[int, np.ndarray, Prediction, torch.Tensor]]:
    """``(i, rgb, prediction, working L)`` for the slices ``wanted`` (flat indices, ascending) of a plan.

    With ``temporal`` K > 0 each slice's colour is smoothed with its K neighbours on either side
    within its run along the last stack axis (:func:`~napari_colorize.temporal.temporal_smooth`); the neighbours are predicted
    too, whether wanted or not, so a part of a stack given with K extra slices on either side comes
    out exactly as in the whole. Predictions are kept for a window of 2K + 1 slices.
    """
    n, K = plan.target.n_slices, int(temporal)
    run = _stack_runs(plan.target.stack_shape)
    wanted = list(wanted)
    done = 0
    window: dict[int, tuple] = {}
    motion = StackMotion(lambda j: window[j][1])  # the pairs' shifts, each computed once
    for i in wanted:
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"cancelled after {done} of {len(wanted)} slice(s)")
        if K == 0:
            rgb_out, pred, L_work = plan.slice(i, i == attention_at)
            yield i, rgb_out, pred, L_work
            done += 1
            continue
        r0 = (i // run) * run
        for j in range(max(r0, i - K), min(r0 + run, i + K + 1, n)):
            if j not in window:
                window[j] = plan.predict(j, j == attention_at)
        for j in [j for j in window if j < i - K or j < r0]:
            del window[j]
        motion.keep(window)
        js = sorted(j for j in window if r0 <= j < r0 + run and abs(j - i) <= K and not plan.separated(i, j))
        pred, L_work, L_full = window[i]
        ab = temporal_smooth([window[j][0].ab[0].detach().float().cpu() for j in js],
                             [window[j][1] for j in js], js.index(i),
                             shifts=lambda k, i=i, js=js: motion.between(i, js[k]))
        ab = plan.own_hints(i, ab, L_work)  # (a slice's own points hold on it; its neighbours keep a share)
        yield i, recombine(L_full, ab, L_work), Prediction(ab=ab[None], scales=pred.scales,
                                                           attention=pred.attention,
                                                           confidence=pred.confidence), L_work
        done += 1


class StackAssembler:
    """Gathers the ``(index, rgb, prediction, info)`` slices of :func:`iter_colorize` into whole arrays:
    ``rgb`` (``stack_shape + (H, W, 3)``), ``confidence`` (``stack_shape + (H, W)``, None when the model
    gives none), and the last slice's ``pred`` and ``info``."""

    def __init__(self) -> None:
        self.rgb: np.ndarray | None = None
        self.confidence: np.ndarray | None = None
        self.pred: Prediction | None = None
        self.info: dict | None = None

    def add(self, idx: tuple, rgb_slice: np.ndarray, pred: Prediction, info: dict) -> None:
        stacked = bool(info["stack_shape"])
        if self.rgb is None:  # (a 2-D target's one slice is the result itself: no second full-size copy)
            self.rgb = np.empty(tuple(info["stack_shape"]) + rgb_slice.shape, np.float32) if stacked else rgb_slice
            if pred.confidence is not None:
                self.confidence = np.empty(tuple(info["stack_shape"]) + rgb_slice.shape[:2], np.float32)
        if stacked:
            self.rgb[idx] = rgb_slice
        if self.confidence is not None:
            self.confidence[idx] = confidence_map(pred, rgb_slice.shape[:2])
        self.pred, self.info = pred, info


def lazy_colorize(model, target, reference=None, histogram=None, *, size: int | None = None,
                  normalize: str = "auto", percentiles: tuple[float, float] = (0.1, 99.9), rgb: bool | None = None,
                  channel_axis: int | None = None, references: dict | None = None, blend: str = "linear",
                  hints=None, hint_spread: float | None = None):
    """A lazy (dask) colourised stack: each slice is computed when it is read (for instance when
    napari shows it). ``target`` may be a dask or zarr array; the intensity range is estimated
    from a sample of slices up front, so every slice gets the same mapping. Returns a dask array
    ``stack_shape + (H, W, 3)`` of float32.

    Unlike :func:`colorize` and :func:`iter_colorize`, whose default for a stack smooths each
    slice's colour with its neighbours (``temporal=3``), every slice is coloured on its own (as
    ``temporal=0``): a slice read alone has no neighbours computed. A stack gives a
    :class:`ColorizeWarning` saying so (once per call); for the smoothed result use
    :func:`iter_colorize` or :func:`~napari_colorize.volume.colorize_volume`.
    """
    import dask  # (here: dask is needed by lazy stacks only)
    import dask.array as da

    plan = Plan.for_target(model, target, reference, histogram, size, normalize, percentiles, rgb, [], channel_axis,
                           references, blend, hints, hint_spread)
    if plan.target.n_slices > 1:
        warnings.warn(f"lazy_colorize colours each of the {plan.target.n_slices} slices on its own (no temporal "
                      f"smoothing); colorize() and iter_colorize() smooth a stack with {DEFAULT_TEMPORAL} neighbours "
                      "by default: use them (or colorize_volume) for that result", ColorizeWarning, stacklevel=2)
    H, W = plan.target.spatial
    # One slice at a time through the model (dask's threads would run several): the attention's memory
    # was checked for one slice (plan.check_memory), each slice's torch ops already use every thread
    # (threads.set_threads), and the plan keeps the last slice's hint solver (Plan.hint_solver). The
    # model's predict changes nothing shared: what it adds to the guide is kept by Plan.predict (keep_guide).
    lock = __import__("threading").Lock()

    def one(i):
        with lock:
            return plan.slice(i)[0]

    parts = [da.from_delayed(dask.delayed(one)(i), shape=(H, W, 3), dtype=np.float32) for i in range(plan.target.n_slices)]
    return da.stack(parts).reshape(tuple(plan.target.stack_shape) + (H, W, 3))


def colorize(model, target, reference=None, histogram=None, *, size: int | None = None, normalize: str = "auto",
             percentiles: tuple[float, float] = (0.1, 99.9), rgb: bool | None = None, return_attention: bool = True,
             progress: Callable[[int, int], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, channel_axis: int | None = None,
             temporal: int | None = None, match: float = 0.0, references: dict | None = None,
             blend: str = "linear", hints=None, hint_spread: float | None = None) -> ColorizeResult:
    """Colourise a greyscale image (or stack) guided by a reference image or a histogram.

    Parameters
    ----------
    model : str or Colorizer
        A name from :func:`~napari_colorize.list_models` or a loaded model.
    target : array (numpy, dask, zarr or a torch tensor)
        2-D greyscale image of any numeric dtype; 3-D (Z/T, Y, X) or n-D stacks
        are colourised slice by slice. ``(H, W, 1)`` is a 2-D image and grey+alpha
        ``(H, W, 2)`` its grey channel (warning). An RGB(A) image ``(H, W, 3|4)`` is
        reduced to lightness with a warning (its range read from dtype and values);
        4-D and larger arrays need ``rgb=`` to say whether the last axis is colour.
        A ``(3|4, H, W)`` array is a stack, with a warning: ``rgb=False`` confirms
        it, ``channel_axis=0`` reads it as a channel-first colour image.
    reference : array ``(h, w, 3)``, an image file, or a list of them, optional
        Colour reference, uint8, uint16 (12-bit etc. data detected) or float in
        [0, 1] (0..255 floats detected, with a warning), any size. Several references
        (``[r1, r2, ...]``): every target position may take colour from any of them (the
        attention and the correspondence prior run over the union of their positions; the
        global baselines and the histogram models take the union of their colours).
    histogram : array ``(21, 21)``, optional
        ab histogram (axis 0: a, axis 1: b), for histogram models.
    size : int, optional
        Working long side in pixels (default: the model's, e.g. 224).
    normalize : {"auto", "percentile", "minmax", "none"}
        How intensities map to grey (see the module docs).
    percentiles : (low, high)
        For percentile stretching.
    return_attention : bool
        Keep attention maps (of the last slice).
    progress : callable(done, total), optional
    should_cancel : callable() -> bool, optional
        Checked before each slice; True raises :class:`Cancelled`.
    channel_axis : int, optional
        The axis of the target that holds colour channels (moved last; the target
        is then reduced to lightness): ``channel_axis=0`` for ``(3, H, W)``.
    temporal : int, optional
        Stacks: smooth each slice's colour with this many neighbouring slices on either side
        along the last stack axis (joint bilateral in lightness after motion compensation,
        :func:`~napari_colorize.temporal.temporal_smooth`), against flicker between slices. None (default): 3 for stacks
        (:data:`~napari_colorize.temporal.DEFAULT_TEMPORAL`, it measured better: docs/BENCHMARKS.md); 0: each slice on its own.
    match : float
        0 (default) to 1: pull the output's colour distribution towards the reference's (or the
        histogram's) by sliced optimal transport (:mod:`napari_colorize.transfer`). Off by default:
        it raises colour similarity to the reference but lowers PSNR/SSIM (docs/MODELS.md).
    references : dict, optional
        Keyframes instead of ``reference``: ``{slice: reference or [references], ...}`` along the
        last stack axis (``{0: r0, 40: r1}``); each slice is coloured from its neighbouring keyframes
        (:mod:`napari_colorize.keyframes`).
    blend : {"linear", "nearest"}
        With keyframes: mix the two neighbouring keyframes' colours by distance (default), or take
        the nearer one's.
    hints : list of ``(y, x, (r, g, b))`` or ``(z, y, x, (r, g, b))``, optional
        Colour points in target pixels (colour in [0, 1] or 0-255): each sets the chroma at its pixel
        (the lightness stays the target's) and spreads over its region, stopping at lightness edges
        (:mod:`napari_colorize.hints`); the guide colours the rest. With the model ``"levin"``
        hints alone colour the image (no reference). Stacks: a point ``(y, x, ...)`` colours every
        slice, a point ``(z, y, x, ...)`` slice ``z`` only - the slice's index along the stack axes
        flattened in C order (``(Z, Y, X)``: z; ``(T, Z, Y, X)``: ``t * Z + z``, or the tuple ``(t, z)``;
        :func:`~napari_colorize.hints.check_hints`). An ``(N, 5)`` or ``(N, 6)`` array of rows ``y, x,
        r, g, b`` / ``z, y, x, r, g, b`` too. A slice's points hold exactly on it; with ``temporal`` > 0
        its ``temporal`` neighbours on either side take a share of them (they are set before the
        smoothing too, so that the colour does not jump at that slice; ``temporal=0``: that slice alone).
    hint_spread : float, optional
        How far a hint's change reaches, in working pixels where lightness is flat (default
        :data:`~napari_colorize.hints.DEFAULT_SPREAD`; with ``"levin"``: unbounded).

    Raises MemoryError (before allocating) when an exemplar network's attention at
    this working size would not fit in the free memory, saying what size would.

    Returns
    -------
    ColorizeResult
    """
    sink: list[str] = []
    model = resolve_model(model)
    if match is not None and match_strength(match):
        model = MatchedColorizer(model, match)
    stack = StackAssembler()
    for idx, rgb_slice, pred, info in iter_colorize(
            model, target, reference, histogram, size=size, normalize=normalize, percentiles=percentiles, rgb=rgb,
            return_attention=return_attention, should_cancel=should_cancel, sink=sink, channel_axis=channel_axis,
            temporal=temporal, references=references, blend=blend, hints=hints, hint_spread=hint_spread):
        stack.add(idx, rgb_slice, pred, info)
        if progress is not None:
            progress(info["done"], info["n_slices"])
    pred, info = stack.pred, stack.info
    return ColorizeResult(rgb=stack.rgb, scales=info["scales"], attention=pred.attention if return_attention else {},
                          working_shape=info["working_shape"], model=model.name,
                          intensity_range=info["intensity_range"], warnings=sink, confidence=stack.confidence,
                          provenance=info["provenance"])

