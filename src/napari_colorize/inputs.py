"""The target and its guide read and checked: the target's layout and intensity range, references and histograms prepared.

:class:`TargetView` validates a target of any numeric dtype (masked, boolean, RGB(A), channel-first,
non-finite values) and yields each 2-D slice's Lab lightness after the intensity mapping
(:func:`intensity_range`); :func:`working_shape` is the size the network sees. A colour reference is
validated and brought to float RGB in [0, 1] (:func:`prepare_reference`, reduced early when it is much
larger than the working size), several references are a list (:func:`reference_list`), and an ab
histogram is validated and normalised (:func:`prepare_histogram`). Every warning goes to a ``sink``
list as well as to :mod:`warnings` (:class:`~napari_colorize.color.ColorizeWarning`).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch

from .color import NBINS, ColorizeWarning, grey_to_L, histogram_from_rgb, rgb_to_lab, rgb_value_scale
from .io import is_image_like

__all__ = ["unmasked", "working_shape", "target_layout", "TargetView", "intensity_range", "reference_list",
           "reference_names", "reference_histogram", "prepare_reference", "prepare_histogram"]


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
            colour = "pass rgb=True if the last axis holds colour channels, or " if shape[-1] in (3, 4) else "pass "
            raise ValueError(f"ambiguous {len(shape)}-D target of shape {shape}: {colour}rgb=False for a greyscale "
                             "stack (slices over the leading axes)")
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
            if dt not in (np.uint8, np.uint16):  # read as 0..1: say so when much of it is not (it is clipped)
                v = np.asarray(self._sample(), np.float64)
                v = v[np.isfinite(v)]
                out = float(((v < 0.0) | (v > 1.0)).mean()) if v.size else 0.0
                if out > 0.01:
                    _warn(f"normalize='none' reads a {dt} target as 0..1, but {100 * out:.0f} % of its values lie "
                          f"outside (from {v.min():.4g} to {v.max():.4g}) and are clipped; use 'auto' or "
                          "'percentile' to scale it", sink)
            return 0.0, (255.0 if dt == np.uint8 else 65535.0 if dt == np.uint16 else 1.0), "fixed"
        v = self._sample()
        whole = np.issubdtype(v.dtype, np.integer)  # integers: always finite, percentiles of the values as they are
        if not whole:
            v = v.astype(np.float64)
            finite = np.isfinite(v)
            if not finite.any():
                raise ValueError("the target has no finite values (all NaN or Inf)")
            v = v[finite]
        if normalize == "auto" and np.issubdtype(dt, np.floating) and v.min() >= -0.01 and v.max() <= 1.01:
            # read as 0..1; a few values a hair outside (resampling overshoot) are clipped, not a reason to stretch
            if v.min() < 0.0 or v.max() > 1.0:
                _warn(f"the float target is read as 0..1; its values from {v.min():.4g} to {v.max():.4g} are "
                      "clipped to it (normalize='percentile' stretches them instead)", sink)
            top = float(np.percentile(v, 99.9))
            if top < 0.25:
                _warn(f"the float target is read as 0..1, but its values reach only {top:.3g} (99.9th percentile): "
                      "it comes out dark; pass normalize='percentile' (CLI: --normalize percentile) to stretch it",
                      sink)
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
    """The intensity mapping :func:`~napari_colorize.inference.colorize` uses for ``target`` (an image,
    a stack, a dask or zarr array): ``(low, high, mode)``, ``low`` and ``high`` the values mapped to
    black and white, ``mode`` ``"fixed"``, ``"stretch"`` or ``"rgb"``. Percentiles come from up to 16
    evenly spread slices.

    Computed once for a whole volume, it lets parts of it be colourised separately (other processes,
    other machines) with exactly the mapping of one :func:`~napari_colorize.inference.colorize` call on
    the whole (:mod:`napari_colorize.volume`)."""
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
