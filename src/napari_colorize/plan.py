"""The plan of a colourisation, decided once for a whole target: the model, the working size and its memory, the prepared guide.

:class:`Plan` is the interface between the two engines (:func:`~napari_colorize.inference.colorize`,
and :func:`~napari_colorize.volume.colorize_volume`, which makes one plan for a whole volume and one
per part on its workers): it holds the validated target (:class:`~napari_colorize.inputs.TargetView`),
the working shape, the guide prepared for the model (:func:`prepare_guide`, once for a stack; once per
keyframe) and the colour points, and predicts and recombines a slice. Before anything is allocated,
the attention's memory at the working size is checked against the free memory of the device
(:func:`check_memory`), and a MemoryError says what size would fit.
"""

from __future__ import annotations

import numpy as np
import torch

from .color import L_SCALE, L_SHIFT
from .guide_cache import GUIDE_CACHE, guide_key
from .hints import (DEFAULT_SPREAD, EDGE_SCALE, LEVIN_SPREAD, HintSolver, check_hints, hint_ab, hints_to_working,
                    slice_hints)
from .inputs import (TargetView, prepare_histogram, prepare_reference, reference_histogram, reference_list,
                     reference_names, working_shape)
from .memory import available_memory  # (the plan's memory checks; exported here too)
from .models.base import Colorizer, Prediction
from .models.registry import load_model
from .upsample import recombine, resize

__all__ = ["NonFiniteError", "is_out_of_memory", "resolve_model", "attention_memory", "available_memory", "check_memory",
           "prepare_guide", "keep_guide", "Plan"]


class NonFiniteError(ValueError):
    """A model's prediction holds NaN or infinite values (its weights may be corrupt or overflow)."""


def resolve_model(model) -> Colorizer:
    """``model`` itself when it is loaded; a name or checkpoint path loaded with :func:`load_model`."""
    if isinstance(model, Colorizer):
        return model
    if isinstance(model, str):
        return load_model(model)
    raise TypeError(f"model must be a name or a loaded model (napari_colorize.load_model), not {type(model).__name__}")


def attention_memory(model: Colorizer, wshape: tuple[int, int], references: int = 1) -> int:
    """Estimated peak bytes of the model's attention for one slice at working shape ``wshape`` with
    ``references`` references (the model's own estimate, :meth:`Colorizer.attention_memory`; 0 when it
    has no attention)."""
    return int(model.attention_memory(wshape, references) if references > 1 else model.attention_memory(wshape))


def _standard_attention(model: Colorizer) -> bool:
    """The model's network has standard (whole-image) attention."""
    return getattr(getattr(getattr(model, "network", None), "config", None), "attention", "") == "standard"


def _memory_advice(model: Colorizer, wshape: tuple[int, int], size: int, references: int = 1,
                   size_name: str = "size") -> str:
    standard = _standard_attention(model)
    fit = size
    avail = available_memory(model.device)
    if avail:
        while fit > model.multiple and \
                attention_memory(model, working_shape(wshape, fit, model.multiple), references) > 0.8 * avail:
            fit = int(fit * 0.8)
        fit = max(model.multiple, fit // model.multiple * model.multiple)
    alt = " or the axial model 'exemplar'" if standard else ""
    fewer = " or fewer references" if references > 1 else ""
    return f"use a smaller working size ({size_name}={fit} or less){alt}{fewer}"


def check_memory(model: Colorizer, wshape: tuple[int, int], references: int = 1, size_name: str = "size") -> None:
    """Raise MemoryError, before allocating, when the model's attention at working shape ``wshape``
    with ``references`` references would not fit in the free memory of its device (saying what
    size would, as ``size_name=N``: the argument of the caller that sets the size)."""
    need = attention_memory(model, wshape, references)
    avail = available_memory(model.device) if need else None  # (no /proc read for models without attention)
    if need and avail and need > avail:  # say so before allocating, not with the allocator's error
        kind = "standard (whole-image)" if _standard_attention(model) else "axial"
        refs = f" with {references} references" if references > 1 else ""
        raise MemoryError(
            f"{model.name!r} at working size {wshape[0]}x{wshape[1]}{refs} needs about {need / 2**30:.1f} GB "
            f"for its {kind} attention, more than the {avail / 2**30:.1f} GB free: "
            + _memory_advice(model, wshape, max(wshape), references, size_name))


def is_out_of_memory(e: BaseException) -> bool:
    """A MemoryError, or an allocator's failure raised as another error (torch's CPU and CUDA allocators)."""
    msg = str(e).lower()
    return isinstance(e, MemoryError) or any(k in msg for k in ("out of memory", "can't allocate", "cannot allocate",
                                                                  "failed to allocate", "allocat"))


def prepare_guide(model: Colorizer, wshape: tuple[int, int], reference=None, histogram=None, stack: bool = False,
                  sink: list | None = None, prefix: str = "") -> tuple:
    """A guide - one reference, several (a list), or a histogram - validated and prepared for ``model``
    at working shape ``wshape`` (its features computed now for a ``stack`` or several references);
    the attention's memory checked. Returns ``(state, number of references)``. ``prefix`` starts the
    references' names in messages ("keyframe 40: ")."""
    refs = reference_list(reference)
    n_refs = len(refs) if refs else 1
    check_memory(model, wshape, n_refs)
    ref_t = hist_t = None
    if model.kind == "histogram":  # the histogram of the whole reference(s), at its own resolution
        hist = prepare_histogram(histogram) if histogram is not None else reference_histogram(refs, sink, prefix)
        hist_t = torch.from_numpy(hist)
    else:  # (K, 3, h, w): every reference at the working shape (each reduced early when much larger)
        ref_t = torch.cat([resize(torch.from_numpy(prepare_reference(r, sink, wshape, prefix + which))
                                   .permute(2, 0, 1)[None], wshape).clamp(0, 1)
                           for r, which in zip(refs, reference_names(refs))])
    key = guide_key(wshape, ref_t, hist_t, model)
    state = GUIDE_CACHE.get(model, key)
    if state is None:
        state = model.prepare(reference=ref_t, histogram=hist_t)
    if stack or n_refs > 1:  # the guide's features once (for every slice; for their union)
        state = model.precompute(state)
    # (a model that encodes the reference on the fly returns its features with the first prediction and
    # Plan.predict adds them to this state, keep_guide: the next call with the same reference skips the
    # encoding; GUIDE_CACHE's docs)
    GUIDE_CACHE.put(model, key, state)
    return state, n_refs


def keep_guide(state, pred: Prediction) -> None:
    """What a prediction computed of its guide (:attr:`Prediction.state`: an exemplar network's reference
    features, encoded along with the first target) added to the guide ``state`` the engine holds - the
    one :data:`~napari_colorize.guide_cache.GUIDE_CACHE` keeps - so that the next slice or call with this
    guide skips the encoding. Adding the same features twice (two threads) leaves the state as it is."""
    if pred.state is not None and isinstance(state, dict):
        state.update(pred.state)


class Plan:
    """A validated colourisation, everything that is decided once for a whole target: the interface
    between the two engines (:func:`~napari_colorize.inference.colorize`,
    :func:`~napari_colorize.volume.colorize_volume` on a cluster, which makes one plan for the whole
    volume and a plan per part on its workers).

    Attributes
    ----------
    model : Colorizer
    target : TargetView
        The validated target; its intensity range (``target.lo``, ``target.hi``, ``target.scale_mode``)
        is :attr:`intensity_range`.
    wshape : (h, w)
        The working shape the network sees.
    state : the model's prepared guide state (:meth:`Colorizer.prepare`; precomputed for a stack), or
        a :class:`~napari_colorize.keyframes.Keyframes` of such states (a guide per keyframe).
    sink : list of str, where warnings are collected.
    hints : the checked colour points (:func:`~napari_colorize.hints.check_hints`): ``(y, x, colour)``
        for every slice, ``(z, y, x, colour)`` for slice ``z`` of this target (flat index) only.
    origin : the position along the last stack axis of this target's first slice (0; a part of a
        volume: where the part begins), for the keyframes.

    Build one with :meth:`for_target` (checks the guide, the size and the attention's memory) or,
    for part of a volume planned as a whole, :meth:`for_part`.
    """

    def __init__(self, model: Colorizer, target: TargetView, wshape: tuple[int, int], state,
                 sink: list | None = None, references: int = 1, origin: int = 0, hints: list | None = None,
                 hint_spread: float | None = None) -> None:
        self.model, self.target, self.wshape, self.state = model, target, tuple(wshape), state
        self.sink = [] if sink is None else sink
        self.references, self.origin = int(references), int(origin)
        self.hints = list(hints or [])  # checked (y, x, (r, g, b)) / (z, y, x, (r, g, b)) in target pixels
        self.hint_spread = float(hint_spread if hint_spread is not None else
                                 LEVIN_SPREAD if model.kind == "hints" else DEFAULT_SPREAD)
        self._solvers: dict[int, HintSolver] = {}  # the last slices' factored systems

    def hints_of(self, i: int, every: bool = True) -> tuple[list, np.ndarray]:
        """The colour points of slice i (every slice's, unless ``every`` is False, and its own): their
        working pixels and chroma."""
        hints = slice_hints(self.hints, i, every)
        return hints_to_working(hints, self.target.spatial, self.wshape), hint_ab(hints)

    def hint_solver(self, i: int, L_work: torch.Tensor) -> HintSolver:
        """The hints' solver of slice i (factored once per slice; the last few kept: a slice's own points
        are set again after the temporal smoothing, :meth:`own_hints`)."""
        if i not in self._solvers:
            if len(self._solvers) >= 4:
                self._solvers.pop(next(iter(self._solvers)))
            edge = None if getattr(self.model, "paper_affinity", False) else EDGE_SCALE  # (levin-paper)
            self._solvers[i] = HintSolver(L_work, self.hint_spread, edge)
        return self._solvers[i]

    def own_hints(self, i: int, ab: torch.Tensor, L_work: torch.Tensor) -> torch.Tensor:
        """``ab`` ``(2, h, w)`` of slice i with the points of that slice alone set again: after the temporal
        smoothing, which shares them with the neighbouring slices, they hold exactly where they are."""
        pixels, values = self.hints_of(i, every=False)
        return self.hint_solver(i, L_work).apply(ab, pixels, values) if pixels else ab

    def position(self, i: int) -> int:
        """Slice i's position along the last stack axis of the whole target (for keyframes)."""
        idx = self.target.index(i)
        return self.origin + (int(idx[-1]) if len(idx) else 0)

    def separated(self, i: int, j: int) -> bool:
        """Slices i and j lie on either side of a cut: two keyframes on adjacent slices between them
        (the temporal smoothing does not mix colours across it)."""
        cuts = getattr(self.state, "cuts", None)
        if not cuts:
            return False
        a, b = sorted((self.position(i), self.position(j)))
        return any(a <= c < b for c in cuts)

    @property
    def intensity_range(self) -> tuple[float, float, str]:
        """``(low, high, mode)``: the values mapped to black and white
        (:func:`~napari_colorize.inputs.intensity_range`)."""
        return self.target.lo, self.target.hi, self.target.scale_mode

    @classmethod
    def for_target(cls, model, target, reference=None, histogram=None, size: int | None = None,
                   normalize: str = "auto", percentiles=(0.1, 99.9), rgb: bool | None = None,
                   sink: list | None = None, channel_axis: int | None = None, references: dict | None = None,
                   blend: str = "linear", hints=None, hint_spread: float | None = None) -> "Plan":
        """The plan of a whole target (arguments as :func:`~napari_colorize.inference.colorize`): the
        target validated and its intensity range computed, the working shape chosen and checked against
        the free memory, the guide validated and prepared (its features computed once for a stack; once per keyframe with
        ``references``), the colour points checked."""
        sink = [] if sink is None else sink
        model = resolve_model(model)
        view = TargetView(target, rgb, normalize, percentiles, sink, channel_axis)
        hints = check_hints(hints, view.spatial, view.stack_shape)
        if model.kind == "hints":
            if reference is not None or histogram is not None or references is not None:
                raise ValueError(f"{model.name!r} colours from colour points alone: give hints=[(y, x, (r, g, b)), "
                                 "...] and no reference (or use another model with the reference and the hints)")
            if not hints:
                raise ValueError(f"{model.name!r} needs colour points: hints=[(y, x, (r, g, b)), ...]")
            wshape = working_shape(view.spatial, int(size or model.default_size), model.multiple, model.min_size)
            return cls(model, view, wshape, model.prepare(), sink, 0, hints=hints, hint_spread=hint_spread)
        if references is not None:
            if reference is not None or histogram is not None:
                raise ValueError("give reference= (one guide for every slice) or references= (keyframes), not both")
            from .keyframes import check_keyframes

            n = int(view.stack_shape[-1]) if view.stack_shape else 1
            references = check_keyframes(references, n, blend)
        elif reference is None and histogram is None:
            raise ValueError(f"{model.name!r} needs a guide: reference=RGB image" +
                             (" or histogram=(21, 21) array" if model.kind == "histogram" else ""))
        if histogram is not None and model.kind == "exemplar" and reference is None:
            raise ValueError(f"{model.name!r} is an exemplar model: it needs reference=..., not a histogram")
        if size is not None and (isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"size must be a positive number of pixels, got {size!r}")
        wshape = working_shape(view.spatial, int(size or model.default_size), model.multiple, model.min_size)
        if references is None:
            state, n_refs = prepare_guide(model, wshape, reference, histogram, view.n_slices > 1, sink)
            return cls(model, view, wshape, state, sink, n_refs, hints=hints, hint_spread=hint_spread)
        from .keyframes import Keyframes

        lists = {z: reference_list(g) for z, g in references.items()}
        n_refs = max(len(r) for r in lists.values())
        check_memory(model, wshape, n_refs)  # (before any keyframe is prepared)
        states = {z: prepare_guide(model, wshape, refs, None, view.n_slices > 1, sink, f"keyframe {z}: ")[0]
                  for z, refs in lists.items()}
        return cls(model, view, wshape, Keyframes(states, blend), sink, n_refs, hints=hints, hint_spread=hint_spread)

    @classmethod
    def for_part(cls, model, part, intensity: tuple, wshape: tuple[int, int], state,
                 sink: list | None = None, origin: int = 0, hints: list | None = None,
                 hint_spread: float | None = None) -> "Plan":
        """The plan of ``part`` (greyscale slices) of a volume whose plan was made for the whole:
        its intensity range ``(low, high, mode)``, working shape, (precomputed) guide state, the
        position of its first slice along the last stack axis (``origin``, for keyframes) and the
        whole's checked colour points with their slices counted in the part
        (:func:`~napari_colorize.hints.hints_of_part`) and their spread."""
        sink = [] if sink is None else sink
        view = TargetView(np.asarray(part), False, "none", (0, 100), sink, intensity=tuple(intensity))
        return cls(resolve_model(model), view, wshape, state, sink, origin=origin, hints=hints,
                   hint_spread=hint_spread)

    def predict(self, i: int, return_attention: bool = False) -> tuple[Prediction, torch.Tensor, torch.Tensor]:
        """The prediction of slice i at the working size, its working-size L and full-size L."""
        L_full = self.target.L(i, self.sink)
        L_work = resize(L_full[None, None], self.wshape)[0, 0]
        L_in = (L_work / L_SCALE - L_SHIFT)[None, None]
        try:
            if hasattr(self.state, "weights"):  # keyframes: the guides of the neighbouring keyframes, blended
                from .keyframes import blend_predictions

                parts = self.state.weights(self.position(i))
                preds = [self.model.predict(L_in, s, return_attention=return_attention) for s, _ in parts]
                for (s, _), p in zip(parts, preds):
                    keep_guide(s, p)
                pred = blend_predictions(preds, [w for _, w in parts])
            else:
                pred = self.model.predict(L_in, self.state, return_attention=return_attention)
                keep_guide(self.state, pred)
        except (RuntimeError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
            raise MemoryError(f"{self.model.name!r} ran out of memory at working size {self.wshape[0]}x"
                              f"{self.wshape[1]}: " + _memory_advice(self.model, self.wshape, max(self.wshape),
                                                                     self.references)) from e
        if not bool(torch.isfinite(pred.ab).all()):  # (NaN would be written as black, and the run called a success)
            raise NonFiniteError(f"model {self.model.source or self.model.name!r} produced non-finite colours (NaN/inf): "
                                 "its weights may be corrupt or overflow; use another model or checkpoint")
        pixels, values = self.hints_of(i)
        if pixels:  # the colour points win where they are and spread over their regions
            ab = self.hint_solver(i, L_work).apply(pred.ab[0], pixels, values)
            pred = Prediction(ab=ab[None].to(pred.ab.dtype), scales=pred.scales, attention=pred.attention,
                              confidence=pred.confidence)
        return pred, L_work, L_full

    def slice(self, i: int, return_attention: bool = False) -> tuple[np.ndarray, Prediction, torch.Tensor]:
        """RGB of slice i, the prediction, and the working-size L."""
        pred, L_work, L_full = self.predict(i, return_attention)
        return recombine(L_full, pred.ab[0].detach().float().cpu(), L_work), pred, L_work
