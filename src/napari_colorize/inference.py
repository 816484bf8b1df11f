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
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .color import (AB_SCALE, L_SCALE, L_SHIFT, NBINS, ColorizeWarning, grey_to_L, histogram_from_rgb, lab_to_rgb_in_gamut, rgb_to_lab,
                    rgb_value_scale)
from .provenance import record as record_provenance
from .hints import DEFAULT_SPREAD, LEVIN_SPREAD, HintSolver, check_hints, hint_ab, hints_to_working
from .guide_cache import GUIDE_CACHE, guide_key
from .io import is_image_like
from .models.base import Colorizer, Prediction
from .models.lazy import LazyList
from .models.registry import load_model
from .transfer import MatchedColorizer, match_strength

__all__ = ["colorize", "iter_colorize", "lazy_colorize", "unmasked", "ColorizeResult", "ColorizeWarning", "Cancelled",
           "NonFiniteError", "prepare_reference", "prepare_histogram", "working_shape", "target_layout", "intensity_range",
           "Plan", "TargetView", "colorized_slices", "resolve_model", "check_memory", "confidence_map", "StackAssembler",
           "reference_list", "reference_names", "reference_histogram", "prepare_guide"]


class Cancelled(RuntimeError):
    """Raised when ``should_cancel()`` returned True."""


class NonFiniteError(ValueError):
    """A model's prediction holds NaN or infinite values (its weights may be corrupt or overflow)."""


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


# ---------------------------------------------------------------------- helpers
def _warn(msg: str, sink: list) -> None:
    sink.append(msg)
    warnings.warn(msg, ColorizeWarning, stacklevel=3)


def unmasked(target, sink: list):
    """A numpy masked array as a plain one, its masked pixels not silently taken as data: float
    targets get NaN there (then handled as every non-finite value: the low intensity, a warning),
    integer and boolean ones the smallest unmasked value. Anything else is returned as it is."""
    if not isinstance(target, np.ma.MaskedArray):
        return target
    mask = np.ma.getmaskarray(target)
    data = np.ma.getdata(target)
    k = int(mask.sum())
    if not k:
        return data
    if k == mask.size:
        raise ValueError("the target is a masked array with every pixel masked: there is nothing to colourise")
    if data.dtype.kind == "f":
        filled, how = np.where(mask, np.nan, data).astype(data.dtype, copy=False), "treated as missing (NaN)"
    else:
        low = data[~mask].min()
        filled, how = np.where(mask, low, data).astype(data.dtype, copy=False), f"filled with the lowest value ({low})"
    _warn(f"the target is a masked array: its {k} masked pixel(s) are {how}, not used as data", sink)
    return filled


def working_shape(shape: tuple[int, int], size: int, multiple: int, min_size: int = 1) -> tuple[int, int]:
    """Working (h, w) for an image of ``shape``: long side ``size`` (never enlarged
    beyond the image), sides rounded to ``multiple`` and at least ``max(multiple, min_size)``."""
    H, W = shape
    s = min(1.0, size / max(H, W))
    lo = max(multiple, min_size)

    def r(x):
        return max(lo, int(round(x * s / multiple)) * multiple)

    return r(H), r(W)


def _resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w), antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrink = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)


def target_layout(shape: tuple, rgb: bool | None = None, channel_axis: int | None = None) -> tuple[bool, str, list]:
    """How a target of ``shape`` is read: ``(rgb, how, notes)``.

    ``how`` is ``"as is"``, ``"drop last axis"`` (``(..., H, W, 1)``: one grey channel),
    ``"grey of grey+alpha"`` (``(H, W, 2)``) or ``"channels last"`` (``channel_axis`` given: that
    axis holds colour and is moved last). ``notes`` are warnings to give. Raises ValueError for an
    ambiguous or impossible layout.
    """
    shape = tuple(int(s) for s in shape)
    notes: list[str] = []
    if len(shape) < 2:
        raise ValueError(f"the target must be a 2-D image (or a stack); got shape {shape}")
    if channel_axis is not None:
        if rgb is False:
            raise ValueError("channel_axis says the target has colour channels; do not also pass rgb=False")
        if not -len(shape) <= channel_axis < len(shape) or len(shape) < 3:
            raise ValueError(f"channel_axis={channel_axis} is not an axis of a colour image of shape {shape}")
        if shape[channel_axis] not in (3, 4):
            raise ValueError(f"channel_axis={channel_axis} has {shape[channel_axis]} entries; colour needs 3 or 4")
        return True, "channels last", notes
    if rgb is None:
        if len(shape) >= 3 and shape[-1] == 1:
            return False, "drop last axis", notes
        if len(shape) == 3 and shape[-1] == 2 and shape[0] > 4 and shape[1] > 4:
            notes.append(f"the target {shape} looks like a greyscale image with an alpha channel: the alpha channel "
                         "is ignored (pass rgb=False if it is a stack of 2-pixel-wide images)")
            return False, "grey of grey+alpha", notes
        if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4 and shape[1] > 4:
            notes.append(f"the target looks like an RGB{'A' if shape[-1] == 4 else ''} image {shape}: it is "
                         "converted to its Lab lightness (pass rgb=False if the last axis is not colour)")
            return True, "as is", notes
        if len(shape) >= 4:
            raise ValueError(
                f"ambiguous {len(shape)}-D target of shape {shape}: pass rgb=True if the last axis holds "
                "colour channels, or rgb=False for a greyscale stack (slices over the leading axes)")
        if len(shape) == 3 and shape[0] in (3, 4) and shape[1] > 4 and shape[2] > 4:
            notes.append(f"the target {shape} is colourised as a stack of {shape[0]} greyscale slices; if it is a "
                         "channel-first colour image, pass channel_axis=0 (pass rgb=False to say it is a stack and "
                         "silence this warning)")
        return False, "as is", notes
    if rgb and (len(shape) < 3 or shape[-1] not in (3, 4)):
        raise ValueError(f"rgb=True needs a last axis of 3 or 4 channels; the target has shape {shape}")
    return bool(rgb), "as is", notes


class TargetView:
    """A validated view of the target: yields the Lab lightness of each 2-D slice."""

    def __init__(self, target, rgb: bool | None, normalize: str, percentiles, sink: list,
                 channel_axis: int | None = None, intensity: tuple | None = None) -> None:
        if target is None:
            raise ValueError("no target image was given")
        if isinstance(target, torch.Tensor):
            target = target.detach().cpu().numpy()
        target = unmasked(target, sink)
        if not hasattr(target, "shape") or not hasattr(target, "dtype"):
            target = np.asarray(target)
        if target.dtype == object or not (np.issubdtype(target.dtype, np.number) or target.dtype == bool):
            raise TypeError(f"the target must be a numeric array, not {target.dtype}")
        if np.issubdtype(target.dtype, np.complexfloating):
            raise TypeError("the target is complex-valued; pass its magnitude or real part")
        shape = tuple(int(s) for s in target.shape)
        if len(shape) >= 2 and 0 in shape:
            raise ValueError(f"the target is empty (shape {shape})")
        rgb, how, notes = target_layout(shape, rgb, channel_axis)
        for n in notes:
            _warn(n, sink)
        if how == "drop last axis":
            target = target[..., 0]
        elif how == "grey of grey+alpha":
            target = target[..., 0]
        elif how == "channels last":
            target = np.moveaxis(target, channel_axis, -1)
        shape = tuple(int(s) for s in target.shape)
        if len(shape) < 2:
            raise ValueError(f"the target must be a 2-D image (or a stack); got shape {shape}")
        self.data, self.rgb = target, bool(rgb)
        self.spatial = shape[-3:-1] if self.rgb else shape[-2:]
        self.stack_shape = shape[:-3] if self.rgb else shape[:-2]
        self.n_slices = int(np.prod(self.stack_shape)) if self.stack_shape else 1
        if target.dtype == bool:
            _warn("the target is boolean: it is used as a 0/1 image", sink)
        # ``intensity``: a range computed before (for the whole volume, when this is a part of it)
        self.lo, self.hi, self.scale_mode = intensity or self._intensity_range(normalize, percentiles, sink)

    # -- intensity normalisation
    def _sample(self) -> np.ndarray:
        """Up to ~4 M values from up to 16 evenly spread slices, for percentiles."""
        idx = np.unique(np.linspace(0, self.n_slices - 1, min(16, self.n_slices)).round().astype(int))
        per = max(1, 4_000_000 // len(idx))
        out = []
        for i in idx:
            s = np.asarray(self._raw_slice(i))
            if self.rgb:
                s = s[..., :3]
            step = max(1, int(math.sqrt(s.size / per)))
            out.append(s[::step, ::step].ravel())
        return np.concatenate(out)

    def _intensity_range(self, normalize, percentiles, sink):
        dt = self.data.dtype
        if self.rgb:  # white from the dtype and the range: float 0..255 or int16 colour is not read as 0..1
            if dt == bool:
                raise TypeError("a boolean array cannot be an RGB image")
            white, note = rgb_value_scale(self._sample(), dt, "the RGB target")
            if note:
                _warn(note, sink)
            return 0.0, white, "rgb"
        if normalize not in ("auto", "percentile", "minmax", "none"):
            raise ValueError("normalize must be 'auto', 'percentile', 'minmax' or 'none'")
        if dt == bool:
            return 0.0, 1.0, "fixed"
        if normalize == "none" or (normalize == "auto" and dt == np.uint8):
            return 0.0, (255.0 if dt == np.uint8 else 65535.0 if dt == np.uint16 else 1.0), "fixed"
        v = self._sample()
        whole = np.issubdtype(v.dtype, np.integer)  # integers: always finite, percentiles of the values as they are
        if not whole:
            v = v.astype(np.float64)
            finite = np.isfinite(v)
            if not finite.any():
                raise ValueError("the target has no finite values (all NaN or Inf)")
            v = v[finite]
        if normalize == "auto" and np.issubdtype(dt, np.floating) and v.min() >= 0.0 and v.max() <= 1.0:
            return 0.0, 1.0, "fixed"
        if normalize == "minmax":
            lo, hi = float(v.min()), float(v.max())
        else:
            p_lo, p_hi = percentiles
            if not 0 <= p_lo < p_hi <= 100:
                raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
            if whole:  # (the same numbers as the halved float64 ones below: halving and doubling are exact)
                lo, hi = (float(x) for x in np.percentile(v, [p_lo, p_hi]))
            else:  # halved: percentiles of values near float64's limit must not overflow to inf / NaN
                lo, hi = (2.0 * float(x) for x in np.percentile(v * 0.5, [p_lo, p_hi]))
            if hi <= lo:  # a sparse image: the percentiles coincide, fall back to min/max
                lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            _warn(f"the target is constant (every value is {lo:g}): the result is a uniform colour", sink)
        elif np.issubdtype(dt, np.floating):
            ulp = float(np.spacing(dt.type(max(abs(lo), abs(hi)))))  # the step between neighbouring values there
            levels = (hi - lo) / ulp if ulp > 0 else math.inf
            if levels < 256:
                _warn(f"the target's values vary only between {lo:.9g} and {hi:.9g}: {dt} holds about "
                      f"{max(1, int(levels))} distinct levels there, so the grey levels are coarse (posterised); "
                      "subtract the offset, or give float64 data", sink)
        return lo, hi, "stretch"

    # -- slices
    def index(self, i: int) -> tuple:
        return np.unravel_index(i, self.stack_shape) if self.stack_shape else ()

    def _raw_slice(self, i: int):
        return self.data[self.index(i)]

    def L(self, i: int, sink: list | None = None) -> torch.Tensor:
        """Lab lightness (0..100), float32 ``(H, W)``, of slice i."""
        s = np.asarray(self._raw_slice(i))
        if self.rgb:
            c = s[..., :3]
            if np.issubdtype(c.dtype, np.floating) and not np.isfinite(c).all():
                raise ValueError("the RGB target contains NaN or Inf values")
            x = np.ascontiguousarray(c, dtype=np.float64) / self.hi
            return rgb_to_lab(torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1).clamp(0, 1))[0]
        # float64 for the stretch: values near float32's limit must not overflow (and be taken for
        # NaN/Inf), and a small range on a large offset (1e6 + noise) must keep its structure. In bands
        # of rows: no float64 copy of the whole slice (a 4096 x 4096 slice: 134 MB)
        wide = self.scale_mode == "stretch"
        whole = np.issubdtype(s.dtype, np.integer) or s.dtype == bool  # (always finite)
        out = torch.empty(s.shape, dtype=torch.float32)
        band = max(1, (1 << 20) // max(1, int(np.prod(s.shape[1:]))))
        nbad = 0
        for r0 in range(0, s.shape[0], band):
            x = s[r0:r0 + band].astype(np.float64 if wide else np.float32, copy=True)
            if not whole:
                bad = ~np.isfinite(x)
                if bad.any():
                    nbad += int(bad.sum())
                    x[bad] = self.lo
            if self.hi > self.lo:
                x *= 0.5  # halves: (hi - lo) of values near float64's limit stays finite
                x -= 0.5 * self.lo
                x /= 0.5 * self.hi - 0.5 * self.lo
                np.clip(x, 0.0, 1.0, out=x)
            else:
                x[...] = 0.5 if self.scale_mode == "stretch" else np.clip(self.lo, 0, 1)
            out[r0:r0 + band] = grey_to_L(torch.from_numpy(x.astype(np.float32, copy=False)))
        if nbad:
            if nbad == s.size:
                raise ValueError("a slice of the target has no finite values (all NaN or Inf)")
            if sink is not None:
                _warn(f"{nbad} NaN/Inf value(s) in the target were replaced by its low intensity", sink)
        return out


def intensity_range(target, normalize: str = "auto", percentiles: tuple[float, float] = (0.1, 99.9),
                    rgb: bool | None = None, channel_axis: int | None = None) -> tuple[float, float, str]:
    """The intensity mapping :func:`colorize` uses for ``target`` (an image, a stack, a dask or zarr
    array): ``(low, high, mode)``, ``low`` and ``high`` the values mapped to black and white, ``mode``
    ``"fixed"``, ``"stretch"`` or ``"rgb"``. Percentiles come from up to 16 evenly spread slices.

    Computed once for a whole volume, it lets parts of it be colourised separately (other processes,
    other machines) with exactly the mapping of one :func:`colorize` call on the whole
    (:mod:`napari_colorize.volume`)."""
    t = TargetView(target, rgb, normalize, percentiles, [], channel_axis)
    return t.lo, t.hi, t.scale_mode


def _reference_to_unit(ref: np.ndarray, white: float, factor: int, band: int = 256) -> np.ndarray:
    """``ref`` (h, w, 3) as float32 in [0, 1] (``/ white``, clipped), reduced by ``factor`` (the mean of
    each ``factor x factor`` block, partial blocks at the edges), converted in bands of rows: no float
    copy of the whole reference is made."""
    h, w = ref.shape[:2]
    if factor <= 1:
        out = np.empty(ref.shape, np.float32)
        for r0 in range(0, h, band):  # (float64 for the division: as before, bit for bit)
            out[r0:r0 + band] = np.clip(ref[r0:r0 + band].astype(np.float64) / white, 0.0, 1.0)
        return out
    cols = np.arange(0, w, factor)
    ncol = np.diff(np.r_[cols, w]).astype(np.float32)
    out = np.empty((-(-h // factor), len(cols), 3), np.float32)
    rows = factor * max(1, (band // 4) // factor)  # (bands of about 64 rows: a few MB of float32)
    for r0 in range(0, h, rows):
        b = ref[r0:r0 + rows].astype(np.float32)
        b /= np.float32(white)
        np.clip(b, 0.0, 1.0, out=b)
        starts = np.arange(0, b.shape[0], factor)
        nrow = np.diff(np.r_[starts, b.shape[0]]).astype(np.float32)
        sums = np.add.reduceat(np.add.reduceat(b, starts, axis=0), cols, axis=1)
        out[r0 // factor:r0 // factor + len(starts)] = sums / (nrow[:, None, None] * ncol[None, :, None])
    return out


def reference_list(reference) -> list | None:
    """The reference(s) as a list: one image, or a list/tuple of images (arrays, tensors, dask/zarr
    arrays, or image files, read here); None when there is none. A list of plain numbers (nested
    lists) is one image."""
    if reference is None:
        return None
    if isinstance(reference, (list, tuple)) and (not reference or all(is_image_like(r) for r in reference)):
        refs = list(reference)
        if not refs:
            raise ValueError("reference=[] holds no image: give one reference or several")
    else:
        refs = [reference]
    out = []
    for r in refs:
        if isinstance(r, (str, os.PathLike)):
            from .io import read_image  # (files only when given as such)

            r = read_image(r)
        out.append(r)
    return out


def reference_names(refs: list | None) -> list[str]:
    """How messages name each reference: "the reference", or "reference 2 of 3"."""
    n = len(refs or [None])
    return ["the reference"] if n == 1 else [f"reference {i + 1} of {n}" for i in range(n)]


def reference_histogram(refs: list, sink: list | None = None, prefix: str = "") -> np.ndarray:
    """The ab histogram of one reference, or of several: the union of their colours, each reference
    weighing the same (the mean of their normalised histograms)."""
    hists = [histogram_from_rgb(prepare_reference(r, sink, None, prefix + what))
             for r, what in zip(refs, reference_names(refs))]
    return hists[0] if len(hists) == 1 else np.mean(hists, 0).astype(np.float32)


def prepare_reference(reference, sink: list | None = None, shape: tuple[int, int] | None = None,
                      what: str = "the reference") -> np.ndarray:
    """Validate a colour reference; returns float32 ``(h, w, 3)`` RGB in [0, 1].

    uint8 is 0..255; other integers are read with the smallest bit depth that holds them (12-bit
    data in uint16 is 0..4095); floats are [0, 1] (0..255 floats are read as such, with a warning).

    ``shape``: the working shape the reference will be resized to. A reference more than twice as
    large on both sides is first reduced in its own dtype by an integer factor (the mean of blocks,
    in bands of rows) to at least twice that shape, so that no full-size float copy of it is made (an
    8192 x 8192 reference added 3.1 GB to a run before). ``what``: how messages name it ("reference 2
    of 3").
    """
    sink = [] if sink is None else sink
    if isinstance(reference, torch.Tensor):
        reference = reference.detach().cpu().numpy()
    ref = np.asarray(reference)
    if ref.size == 0:
        raise ValueError(f"{what} image is empty")
    if ref.dtype == bool or not np.issubdtype(ref.dtype, np.number) or np.issubdtype(ref.dtype, np.complexfloating):
        raise TypeError(f"{what} must be a numeric RGB image, not {ref.dtype}")
    if ref.ndim == 2 or (ref.ndim == 3 and ref.shape[-1] in (1, 2)):
        raise ValueError(f"{what} has no colour: it is a greyscale image. Give an RGB colour reference "
                         "(h, w, 3), or use a histogram model with a histogram.")
    if ref.ndim != 3 or ref.shape[-1] not in (3, 4):
        raise ValueError(f"{what} must be an RGB(A) image of shape (h, w, 3); got {ref.shape}")
    if ref.shape[0] < 2 or ref.shape[1] < 2:
        raise ValueError(f"{what} is too small ({ref.shape[0]}x{ref.shape[1]} pixels)")
    if ref.shape[-1] == 4:
        _warn(f"{what} has an alpha channel: it is ignored", sink)
        ref = ref[..., :3]
    white, note = rgb_value_scale(ref, ref.dtype, what)
    if note:
        _warn(note, sink)
    if min(ref.shape[:2]) < 16:
        _warn(f"{what} is tiny ({ref.shape[0]}x{ref.shape[1]}): it is enlarged to the working size", sink)
    step = max(1, int(math.ceil(math.sqrt(ref.shape[0] * ref.shape[1] / 16384))))  # a grid sample is enough to judge
    grid = np.clip(ref[::step, ::step].astype(np.float64) / white, 0.0, 1.0).astype(np.float32)
    lab = rgb_to_lab(torch.from_numpy(np.ascontiguousarray(grid)).permute(2, 0, 1))
    chroma = torch.sqrt(lab[1] ** 2 + lab[2] ** 2)
    if float(torch.quantile(chroma.flatten().float(), 0.99)) < 4.0:
        raise ValueError(f"{what} has no colour: it is (nearly) greyscale, so there is nothing to transfer")
    factor = 1
    if shape is not None:
        factor = max(1, min(ref.shape[0] // (2 * int(shape[0])), ref.shape[1] // (2 * int(shape[1]))))
    return _reference_to_unit(ref, white, factor)


def prepare_histogram(hist) -> np.ndarray:
    """Validate an ab histogram; returns float64 ``(21, 21)`` summing to 1."""
    h = np.asarray(hist, dtype=np.float64) if not isinstance(hist, torch.Tensor) else hist.detach().cpu().double().numpy()
    if h.shape != (NBINS, NBINS):
        raise ValueError(f"the histogram must have shape ({NBINS}, {NBINS}) (a over b, bins of normalised ab); "
                         f"got {h.shape}")
    if not np.isfinite(h).all():
        raise ValueError("the histogram contains NaN or Inf")
    if (h < 0).any():
        raise ValueError("the histogram has negative entries")
    if h.sum() <= 0:
        raise ValueError("the histogram is all zeros: it holds no colour")
    with np.errstate(over="ignore", under="ignore"):
        total = h.sum()
        out = h / total
    if not np.isfinite(total) or not np.isfinite(out).all() or not 0.999 < out.sum() < 1.001:
        raise ValueError(f"the histogram cannot be normalised: its entries (up to {h.max():g}) sum to {total:g}; "
                         "give counts or frequencies (for example, divide it by its maximum)")
    return out


# -------------------------------------------------------- edge-aware upsampling
def joint_bilateral_upsample_rows(ab_low: torch.Tensor, L_low: torch.Tensor, L_rows: torch.Tensor, H: int, W: int,
                                  r0: int, sigma_s: float = 0.5, sigma_r: float = 8.0, k: int = 1) -> torch.Tensor:
    """Rows ``r0 : r0 + len(L_rows)`` of the joint bilateral upsampling (Kopf et al. 2007) of ``ab_low``.

    Each full-resolution pixel averages the ``2k x 2k`` nearest low-resolution
    predictions, weighted by spatial closeness (Gaussian, ``sigma_s`` low-res
    pixels) and by lightness similarity to the full-resolution pixel (Gaussian,
    ``sigma_r`` L units): colour does not bleed across luminance edges.

    The defaults (the 2 x 2 nearest, ``sigma_s`` 0.5) measured better than the 4 x 4 nearest with
    ``sigma_s`` 1 and than bilinear, at a third of the 4 x 4 cost (docs/LIBRARY.md).

    ab_low: ``(C, h, w)``; L_low: ``(h, w)``; L_rows: ``(rows, W)``. Returns ``(C, rows, W)``.
    """
    h, w = L_low.shape
    r1 = r0 + L_rows.shape[0]
    ys = (torch.arange(r0, r1, dtype=torch.float32) + 0.5) * (h / H) - 0.5
    xs = (torch.arange(W, dtype=torch.float32) + 0.5) * (w / W) - 0.5
    y0, x0 = ys.floor().long(), xs.floor().long()
    num = torch.zeros((ab_low.shape[0],) + tuple(L_rows.shape))
    den = torch.zeros(L_rows.shape)
    for dy in range(1 - k, k + 1):
        yi = (y0 + dy).clamp(0, h - 1)
        wy = torch.exp(-((ys - (y0 + dy)) ** 2) / (2 * sigma_s**2))
        ab_y, L_y = ab_low[:, yi], L_low[yi]
        for dx in range(1 - k, k + 1):
            xi = (x0 + dx).clamp(0, w - 1)
            wx = torch.exp(-((xs - (x0 + dx)) ** 2) / (2 * sigma_s**2))
            # (a floor on the range weight: a pixel unlike all its neighbours gets their spatial mean,
            # not a ratio of two vanishing numbers)
            wgt = (torch.exp(-((L_rows - L_y[:, xi]) ** 2) / (2 * sigma_r**2)) + 1e-3) * (wy[:, None] * wx[None, :])
            num += wgt * ab_y[:, :, xi]
            den += wgt
    return num / den


def recombine(L_full: torch.Tensor, ab_work: torch.Tensor, L_work: torch.Tensor, band: int = 256,
              out: np.ndarray | None = None) -> np.ndarray:
    """Full-size RGB from the full L ``(H, W)`` and working-size ab ``(2, h, w)`` (normalised).

    ab is upsampled edge-aware (:func:`joint_bilateral_upsample_rows`) and joined with
    the full-resolution L, in bands of ``band`` rows so that memory stays bounded.
    """
    H, W = L_full.shape
    same = tuple(ab_work.shape[-2:]) == (H, W)
    if out is None:
        out = np.empty((H, W, 3), np.float32)
    ab_work = ab_work.float()
    for r0 in range(0, H, band):
        r1 = min(H, r0 + band)
        L = L_full[r0:r1]
        ab = ab_work[:, r0:r1] if same else joint_bilateral_upsample_rows(ab_work, L_work, L, H, W, r0)
        lab = torch.cat([L[None], ab.clamp(-1, 1) * AB_SCALE], 0)
        out[r0:r1] = lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy()
    return out


def confidence_map(pred: Prediction, shape: tuple[int, int]) -> np.ndarray | None:
    """The prediction's match confidence (first of the batch) at ``shape``, bilinear, float32 in [0, 1]
    (None when the model gives none)."""
    if pred.confidence is None:
        return None
    c = pred.confidence[:1].detach().float().cpu()
    if tuple(c.shape[-2:]) != tuple(shape):
        c = F.interpolate(c, size=tuple(shape), mode="bilinear", align_corners=False)
    return c[0, 0].clamp(0, 1).numpy()


def scales_to_rgb(pred: Prediction, L_work: torch.Tensor) -> list[np.ndarray]:
    out = []
    for p in pred.scales:
        ab = p[0].detach().float().cpu()
        L = _resize(L_work[None, None], tuple(ab.shape[-2:]))[0, 0]
        lab = torch.cat([L[None], ab.clamp(-1, 1) * AB_SCALE], 0)
        out.append(lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy())
    return out


# ------------------------------------------------------------------------ engine
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


def available_memory(device) -> int | None:
    """Bytes free for a new allocation on ``device`` (None when unknown)."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "cpu":
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, ValueError):
        pass
    return None


def _standard_attention(model: Colorizer) -> bool:
    """The model's network has standard (whole-image) attention."""
    return getattr(getattr(getattr(model, "network", None), "config", None), "attention", "") == "standard"


def _memory_advice(model: Colorizer, wshape: tuple[int, int], size: int, references: int = 1) -> str:
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
    return f"use a smaller working size (size={fit} or less){alt}{fewer}"


def check_memory(model: Colorizer, wshape: tuple[int, int], references: int = 1) -> None:
    """Raise MemoryError, before allocating, when the model's attention at working shape ``wshape``
    with ``references`` references would not fit in the free memory of its device (saying what
    size would)."""
    need = attention_memory(model, wshape, references)
    avail = available_memory(model.device) if need else None  # (no /proc read for models without attention)
    if need and avail and need > avail:  # say so before allocating, not with the allocator's error
        kind = "standard (whole-image)" if _standard_attention(model) else "axial"
        refs = f" with {references} references" if references > 1 else ""
        raise MemoryError(
            f"{model.name!r} at working size {wshape[0]}x{wshape[1]}{refs} needs about {need / 2**30:.1f} GB "
            f"for its {kind} attention, more than the {avail / 2**30:.1f} GB free: "
            + _memory_advice(model, wshape, max(wshape), references))


def _out_of_memory(e: BaseException) -> bool:
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
        ref_t = torch.cat([_resize(torch.from_numpy(prepare_reference(r, sink, wshape, prefix + which))
                                   .permute(2, 0, 1)[None], wshape).clamp(0, 1)
                           for r, which in zip(refs, reference_names(refs))])
    key = guide_key(wshape, ref_t, hist_t, model)
    state = GUIDE_CACHE.get(model, key)
    if state is None:
        state = model.prepare(reference=ref_t, histogram=hist_t)
    if stack or n_refs > 1:  # the guide's features once (for every slice; for their union)
        state = model.precompute(state)
    # (a model that encodes the reference on the fly adds its features to this state on first use:
    # the next call with the same reference skips the encoding; GUIDE_CACHE's docs)
    GUIDE_CACHE.put(model, key, state)
    return state, n_refs


class Plan:
    """A validated colourisation, everything that is decided once for a whole target: the interface
    between the two engines (:func:`colorize` here, :func:`~napari_colorize.volume.colorize_volume`
    on a cluster, which makes one plan for the whole volume and a plan per part on its workers).

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
        self.hints = list(hints or [])  # checked (y, x, (r, g, b)) in target pixels
        self.hint_spread = float(hint_spread if hint_spread is not None else
                                 LEVIN_SPREAD if model.kind == "hints" else DEFAULT_SPREAD)
        self.hint_pixels = hints_to_working(self.hints, target.spatial, self.wshape)
        self.hint_values = hint_ab(self.hints)
        self._solver: tuple | None = None  # (slice, HintSolver): the last slice's factored system

    def hint_solver(self, i: int, L_work: torch.Tensor) -> HintSolver:
        """The hints' solver of slice i (factored once per slice; the last one kept)."""
        if self._solver is None or self._solver[0] != i:
            self._solver = (i, HintSolver(L_work, self.hint_spread))
        return self._solver[1]

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
        """``(low, high, mode)``: the values mapped to black and white (:func:`intensity_range`)."""
        return self.target.lo, self.target.hi, self.target.scale_mode

    @classmethod
    def for_target(cls, model, target, reference=None, histogram=None, size: int | None = None,
                   normalize: str = "auto", percentiles=(0.1, 99.9), rgb: bool | None = None,
                   sink: list | None = None, channel_axis: int | None = None, references: dict | None = None,
                   blend: str = "linear", hints=None, hint_spread: float | None = None) -> "Plan":
        """The plan of a whole target (arguments as :func:`colorize`): the target validated and its
        intensity range computed, the working shape chosen and checked against the free memory, the
        guide validated and prepared (its features computed once for a stack; once per keyframe with
        ``references``), the colour points checked."""
        sink = [] if sink is None else sink
        model = resolve_model(model)
        view = TargetView(target, rgb, normalize, percentiles, sink, channel_axis)
        hints = check_hints(hints, view.spatial)
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
                 sink: list | None = None, origin: int = 0) -> "Plan":
        """The plan of ``part`` (greyscale slices) of a volume whose plan was made for the whole:
        its intensity range ``(low, high, mode)``, working shape, (precomputed) guide state and the
        position of its first slice along the last stack axis (``origin``, for keyframes)."""
        sink = [] if sink is None else sink
        view = TargetView(np.asarray(part), False, "none", (0, 100), sink, intensity=tuple(intensity))
        return cls(resolve_model(model), view, wshape, state, sink, origin=origin)

    def predict(self, i: int, return_attention: bool = False) -> tuple[Prediction, torch.Tensor, torch.Tensor]:
        """The prediction of slice i at the working size, its working-size L and full-size L."""
        L_full = self.target.L(i, self.sink)
        L_work = _resize(L_full[None, None], self.wshape)[0, 0]
        L_in = (L_work / L_SCALE - L_SHIFT)[None, None]
        try:
            if hasattr(self.state, "weights"):  # keyframes: the guides of the neighbouring keyframes, blended
                from .keyframes import blend_predictions

                parts = self.state.weights(self.position(i))
                pred = blend_predictions([self.model.predict(L_in, s, return_attention=return_attention)
                                          for s, _ in parts], [w for _, w in parts])
            else:
                pred = self.model.predict(L_in, self.state, return_attention=return_attention)
        except (RuntimeError, MemoryError) as e:
            if not _out_of_memory(e):
                raise
            raise MemoryError(f"{self.model.name!r} ran out of memory at working size {self.wshape[0]}x"
                              f"{self.wshape[1]}: " + _memory_advice(self.model, self.wshape, max(self.wshape),
                                                                     self.references)) from e
        if not bool(torch.isfinite(pred.ab).all()):  # (NaN would be written as black, and the run called a success)
            raise NonFiniteError(f"model {self.model.source or self.model.name!r} produced non-finite colours (NaN/inf): "
                                 "its weights may be corrupt or overflow; use another model or checkpoint")
        if self.hints:  # the colour points win where they are and spread over their regions
            ab = self.hint_solver(i, L_work).apply(pred.ab[0], self.hint_pixels, self.hint_values)
            pred = Prediction(ab=ab[None].to(pred.ab.dtype), scales=pred.scales, attention=pred.attention,
                              confidence=pred.confidence)
        return pred, L_work, L_full

    def slice(self, i: int, return_attention: bool = False) -> tuple[np.ndarray, Prediction, torch.Tensor]:
        """RGB of slice i, the prediction, and the working-size L."""
        pred, L_work, L_full = self.predict(i, return_attention)
        return recombine(L_full, pred.ab[0].detach().float().cpu(), L_work), pred, L_work


#: the long side (pixels) at which the motion along a stack is estimated: larger working sizes are
#: shrunk to it (area average) and the shifts scaled back; the default 224 px is used as it is
SHIFT_SIZE = 256
#: a shift's precision: 1 / SHIFT_UPSAMPLE of a pixel at the size it is estimated at
SHIFT_UPSAMPLE = 10


@dataclass
class ShiftSpectrum:
    """A slice's lightness prepared for :func:`phase_shift`: the one-sided 2-D Fourier transform
    (complex64; None when the slice has no structure to follow) of it shrunk to ``grid`` pixels from its
    working ``shape``; ``scale`` = working pixels per pixel of the grid."""

    fft: np.ndarray | None
    shape: tuple[int, int]
    grid: tuple[int, int]
    scale: tuple[float, float] = (1.0, 1.0)


def shift_spectrum(L: torch.Tensor) -> ShiftSpectrum:
    """The spectrum of a slice's lightness ``L`` (h, w), at most :data:`SHIFT_SIZE` pixels on its long side."""
    h, w = (int(s) for s in L.shape)
    s = min(1.0, SHIFT_SIZE / max(h, w))
    small = (max(2, int(round(h * s))), max(2, int(round(w * s))))
    x = _resize(L.float()[None, None], small)[0, 0] if s < 1 else L.float()
    a = x.numpy().astype(np.float32, copy=False)
    if float(a.std()) < 1e-6:
        return ShiftSpectrum(None, (h, w), small)
    return ShiftSpectrum(np.fft.rfft2(a), (h, w), small, (h / small[0], w / small[1]))


def phase_shift(to: ShiftSpectrum, frm: ShiftSpectrum, max_frac: float = 0.125) -> tuple[float, float]:
    """The translation ``(dy, dx)`` (working pixels) that moves the slice of ``frm`` onto that of ``to``:
    phase correlation, its peak refined to 1 / :data:`SHIFT_UPSAMPLE` pixel by a DFT of the cross-power
    spectrum on a fine grid around the integer peak (Guizar-Sicairos et al. 2008, as
    ``skimage.registration.phase_cross_correlation`` does); ``(0, 0)`` when either has no structure or
    the shift is larger than ``max_frac`` of the image.

    The spectra are one-sided (``rfft2``) and the sums plain numpy loops (``einsum``): a few ms at
    224 px, on one thread (a BLAS or torch product would start threads, which spin on a busy machine)."""
    if to.fft is None or frm.fft is None:
        return 0.0, 0.0
    R = to.fft * np.conj(frm.fft)
    R /= np.maximum(np.abs(R), np.float32(1e-12))  # phase only
    h, w = to.grid
    peak = np.unravel_index(int(np.argmax(np.fft.irfft2(R, s=(h, w)))), (h, w))
    py, px = (int(p) - n if p > n // 2 else int(p) for p, n in zip(peak, (h, w)))
    reach = int(math.ceil(0.6 * SHIFT_UPSAMPLE))  # the true peak is within half a pixel of the integer one
    offs = np.arange(-reach, reach + 1) / SHIFT_UPSAMPLE
    ys, xs = py + offs, px + offs
    # the real correlation from one side of the spectrum: columns 1 .. w/2 - 1 stand for their mirror too
    cols = R.shape[1]
    weight = np.full(cols, 2.0, np.float32)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    kx = (weight[:, None] * np.exp(2j * np.pi * np.outer(np.arange(cols) / w, xs))).astype(np.complex64)
    ky = np.exp(2j * np.pi * np.outer(ys, np.fft.fftfreq(h))).astype(np.complex64)
    fine = np.einsum("uk,kv->uv", ky, np.einsum("kl,lv->kv", R, kx)).real
    iy, ix = np.unravel_index(int(np.argmax(fine)), fine.shape)
    dy, dx = float(ys[iy]) * to.scale[0], float(xs[ix]) * to.scale[1]
    H, W = to.shape
    if abs(dy) > max_frac * H or abs(dx) > max_frac * W:
        return 0.0, 0.0
    return dy, dx


def global_shift(L_to: torch.Tensor, L_from: torch.Tensor, max_frac: float = 0.125) -> tuple[float, float]:
    """The translation ``(dy, dx)`` that moves ``L_from`` onto ``L_to`` (:func:`phase_shift`);
    ``(0, 0)`` when it is larger than ``max_frac`` of the image (not a pan, or no structure)."""
    return phase_shift(shift_spectrum(L_to), shift_spectrum(L_from), max_frac)


class StackMotion:
    """The motion along a run of slices, for :func:`temporal_smooth`: each slice's spectrum and the
    shift of each consecutive pair are computed once (cached by slice index); the shift between two
    slices further apart is the sum of the pairs' between them.

    ``lightness(j)``: the working-size L of slice j (asked for once per slice)."""

    def __init__(self, lightness: Callable[[int], torch.Tensor], max_frac: float = 0.125) -> None:
        self.lightness, self.max_frac = lightness, max_frac
        self.spectra: dict[int, ShiftSpectrum] = {}
        self.pairs: dict[int, tuple[float, float]] = {}  # j -> the shift moving slice j onto slice j + 1

    def _spectrum(self, j: int) -> ShiftSpectrum:
        if j not in self.spectra:
            self.spectra[j] = shift_spectrum(self.lightness(j))
        return self.spectra[j]

    def pair(self, j: int) -> tuple[float, float]:
        """The shift that moves slice j onto slice j + 1."""
        if j not in self.pairs:
            self.pairs[j] = phase_shift(self._spectrum(j + 1), self._spectrum(j), self.max_frac)
        return self.pairs[j]

    def between(self, i: int, j: int) -> tuple[float, float]:
        """The shift that moves slice j onto slice i; ``(0, 0)`` when larger than ``max_frac`` of the image."""
        if i == j:
            return 0.0, 0.0
        sign, steps = (1.0, range(j, i)) if j < i else (-1.0, range(i, j))
        dy = sign * sum(self.pair(m)[0] for m in steps)
        dx = sign * sum(self.pair(m)[1] for m in steps)
        H, W = self._spectrum(i).shape
        if abs(dy) > self.max_frac * H or abs(dx) > self.max_frac * W:
            return 0.0, 0.0
        return dy, dx

    def keep(self, slices) -> None:
        """Forget every slice but ``slices`` (and the pairs that start outside them)."""
        keep = set(slices)
        for d in (self.spectra, self.pairs):
            for j in [j for j in d if j not in keep]:
                del d[j]


def translate(x: torch.Tensor, dy: float, dx: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (C, h, w) moved by ``(dy, dx)`` pixels (bilinear), and where it is defined (h, w)."""
    C, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float32) - dy
    xs = torch.arange(w, dtype=torch.float32) - dx
    gy, gx = torch.meshgrid(2 * (ys + 0.5) / h - 1, 2 * (xs + 0.5) / w - 1, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None]
    both = torch.cat([x.float(), torch.ones(1, h, w)])[None]
    out = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return out[:C], (out[C] > 0.999).float()


def temporal_smooth(abs_: list[torch.Tensor], Ls: list[torch.Tensor], centre: int, sigma_t: float = 2.0,
                    sigma_L: float = 6.0, align: bool = True,
                    shifts: Callable[[int], tuple[float, float]] | None = None) -> torch.Tensor:
    """Joint bilateral smoothing of working-size ab along the stack axis (flicker reduction).

    Slice ``centre`` of the window ``abs_`` (each ``(2, h, w)``, with lightness ``Ls``, each ``(h, w)``)
    becomes the weighted mean of its neighbours' ab at the same position, weighted by their distance
    along the stack (Gaussian, ``sigma_t`` slices) and by how alike their lightness is there (Gaussian,
    ``sigma_L`` L units): where a neighbour shows the same structure its colour is shared, where the
    content moved or changed it is not. ``align``: each neighbour is first moved onto the centre slice
    by its global translation (a panning camera, a drifting stage), so that the colour of the same
    structure is shared even when it moved: ``shifts(k)``, the shift that moves window slice k onto the
    centre; by default the sum of the phase correlations of consecutive slices between them
    (:class:`StackMotion`; a stack keeps one for all its windows, so each pair is correlated once).
    """
    if align and shifts is None:
        motion = StackMotion(lambda k: Ls[k])
        shifts = functools.partial(motion.between, centre)
    num = torch.zeros_like(abs_[centre])
    den = torch.zeros_like(Ls[centre])
    for k, (ab, L) in enumerate(zip(abs_, Ls)):
        valid = 1.0
        if align and k != centre:
            dy, dx = shifts(k)
            if dy or dx:
                moved, valid = translate(torch.cat([ab, L[None]]), dy, dx)
                ab, L = moved[:2], moved[2]
        w = math.exp(-((k - centre) ** 2) / (2 * sigma_t**2)) * torch.exp(-((L - Ls[centre]) ** 2) / (2 * sigma_L**2))
        w = w * valid
        num += w * ab
        den += w
    return num / den


#: neighbours on either side that a stack's slices are smoothed with when ``temporal`` is not given:
#: with sigma_t = 2, flicker 2-5x lower, SSIM/PSNR a little higher, HIS within 0.01 (docs/BENCHMARKS.md)
DEFAULT_TEMPORAL = 3


def resolve_temporal(temporal: int | None, n_slices: int) -> int:
    """The number of neighbours to smooth with: ``temporal``, or :data:`DEFAULT_TEMPORAL` for a stack
    when it is None; 0 for a single image."""
    if temporal is not None and (isinstance(temporal, bool) or not isinstance(temporal, (int, np.integer))
                                 or temporal < 0):
        raise ValueError(f"temporal must be a number of neighbouring slices (0 or more), not {temporal!r}")
    if n_slices <= 1:
        return 0
    return DEFAULT_TEMPORAL if temporal is None else int(temporal)


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
    within its run along the last stack axis (:func:`temporal_smooth`); the neighbours are predicted
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
    lock = __import__("threading").Lock()  # one slice at a time through the model

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
        :func:`temporal_smooth`), against flicker between slices. None (default): 3 for stacks
        (:data:`DEFAULT_TEMPORAL`, it measured better: docs/BENCHMARKS.md); 0: each slice on its own.
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
    hints : list of ``(y, x, (r, g, b))``, optional
        Colour points in target pixels (colour in [0, 1] or 0-255): each sets the chroma at its pixel
        (the lightness stays the target's) and spreads over its region, stopping at lightness edges
        (:mod:`napari_colorize.hints`); the guide colours the rest. With the model ``"levin"``
        hints alone colour the image (no reference). Stacks: the same points on every slice.
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

