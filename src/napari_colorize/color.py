"""Colour maths shared by every part of napari-colorize: Lab conversions, normalisation, ab histograms, gamut.

* CIE Lab, D65 white, sRGB primaries. RGB <-> Lab is kornia's differentiable
  implementation (``kornia.color``): it is well kept, runs on any device and
  agrees with :mod:`skimage.color` to better than 1e-3 over the whole gamut
  (``tests/test_color.py`` checks this).
* Network range: ``L / 50 - 1`` and ``ab / 110``, so every channel lies in [-1, 1].
* The ab histogram (losses, metrics, and the interchange format for histogram
  models): ``NBINS x NBINS = 21 x 21 = 441`` bins over normalised ab in [-1, 1],
  bin centres ``-1 + 0.1 k``, soft (bilinear) weights
  ``w(x, z) = max(0, 0.1 - |x - z|)`` on each axis, normalised to sum 1.
  Axis 0 of a histogram is a, axis 1 is b.
* HIS, the histogram intersection similarity, is ``sum_k min(h1(k), h2(k))``.
"""

from __future__ import annotations

import math

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

__all__ = [
    "NBINS",
    "BIN_WIDTH",
    "bin_centres",
    "rgb_to_lab",
    "lab_to_rgb",
    "normalize_lab",
    "denormalize_lab",
    "grey_to_L",
    "grey_rgb",
    "soft_histogram",
    "hard_histogram",
    "histogram_intersection",
    "palette",
    "histogram_from_rgb",
    "lab_to_rgb_in_gamut",
    "in_gamut",
    "rgb_value_scale",
    "ColorizeWarning",
]


class ColorizeWarning(UserWarning):
    """An input was converted or is doubtful; the result is still computed."""

NBINS = 21
BIN_WIDTH = 2.0 / (NBINS - 1)  # 0.1
L_SCALE, L_SHIFT, AB_SCALE = 50.0, 1.0, 110.0


def bin_centres(device=None, dtype=torch.float32) -> torch.Tensor:
    """The 21 bin centres ``-1 + 0.1 k`` of the normalised ab axes."""
    return -1.0 + BIN_WIDTH * torch.arange(NBINS, device=device, dtype=dtype)


# --------------------------------------------------------------------------- Lab
def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape ``(..., 3, H, W)`` -> CIE Lab (L in [0, 100])."""
    return _kornia_rgb_to_lab(rgb.clamp(0.0, 1.0))


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab ``(..., 3, H, W)`` -> sRGB in [0, 1] (clipped when ``clip``)."""
    return _kornia_lab_to_rgb(lab, clip=clip)


def normalize_lab(lab: torch.Tensor) -> torch.Tensor:
    """Lab -> network range: ``L/50 - 1``, ``ab/110``."""
    L = lab[..., :1, :, :] / L_SCALE - L_SHIFT
    ab = lab[..., 1:, :, :] / AB_SCALE
    return torch.cat([L, ab], dim=-3)


def denormalize_lab(lab_n: torch.Tensor) -> torch.Tensor:
    """Network range -> Lab (inverse of :func:`normalize_lab`)."""
    L = (lab_n[..., :1, :, :] + L_SHIFT) * L_SCALE
    ab = lab_n[..., 1:, :, :] * AB_SCALE
    return torch.cat([L, ab], dim=-3)


def grey_to_L(grey: torch.Tensor) -> torch.Tensor:
    """Lab lightness (0..100) of the neutral sRGB grey ``grey`` in [0, 1].

    Closed form of ``rgb_to_lab(grey, grey, grey)[0]``: linearise, then the
    CIE lightness of the luminance ``Y``.
    """
    g = grey.clamp(0.0, 1.0)
    y = torch.where(g > 0.04045, ((g + 0.055) / 1.055) ** 2.4, g / 12.92)
    f = torch.where(y > 0.008856, y.clamp_min(1e-12) ** (1.0 / 3.0), 7.787 * y + 4.0 / 29.0)
    return 116.0 * f - 16.0


def L_to_grey(L: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`grey_to_L`: the sRGB grey value of lightness ``L``."""
    lab = torch.stack([L, torch.zeros_like(L), torch.zeros_like(L)], dim=-3)
    return lab_to_rgb(lab)[..., 0, :, :]


def grey_rgb(target_L: torch.Tensor) -> torch.Tensor:
    """Normalised lightness ``(B, 1, H, W)`` (``L/50 - 1``) -> the neutral grey sRGB image
    ``(B, 3, H, W)`` in [0, 1] with exactly that lightness: how a grey target is shown to an
    ImageNet backbone."""
    grey = L_to_grey((target_L[:, 0] + L_SHIFT) * L_SCALE)
    return grey[:, None].expand(-1, 3, -1, -1)


_D65 = torch.tensor([0.95047, 1.0, 1.08883])
_XYZ_TO_LINEAR_RGB = torch.tensor([[3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
                                   [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
                                   [0.0556466391351772, -0.2040413383665112, 1.0573110696453443]])


_GAMUT_EPS = 1e-4


def _finv(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > 0.2068966, f ** 3, (f - 4.0 / 29.0) / 7.787)


def in_gamut(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float = _GAMUT_EPS) -> torch.Tensor:
    """Whether Lab colours (flat vectors) lie inside sRGB, tested in linear RGB (sRGB's transfer curve is
    monotonic and maps [0, 1] onto itself): kornia's arithmetic without its per-call overhead."""
    fy = (L + 16.0) / 116.0
    m = _XYZ_TO_LINEAR_RGB.to(L.device, L.dtype) * _D65.to(L.device, L.dtype)[None, :]
    lo_lin, hi_lin = -eps / 12.92, ((1.0 + eps + 0.055) / 1.055) ** 2.4  # the sRGB bounds, as linear values
    xyz = torch.stack([_finv(fy + a / 500.0), _finv(fy), _finv((fy - b / 200.0).clamp(min=0.0))], dim=1)
    r = xyz @ m.T
    return ((r >= lo_lin) & (r <= hi_lin)).all(dim=1)


_CHROMA_LUT: dict = {}
_LUT_L, _LUT_H = 201, 720  # lightness every 0.5, hue every 0.5 degree


def _max_chroma_lut(device, dtype) -> torch.Tensor:
    """The largest in-gamut chroma of every (L, hue) on a grid, ``(201, 721)`` (hue wraps), by bisection;
    computed once per device and dtype (about 0.1 s)."""
    key = (str(device), dtype)
    if key not in _CHROMA_LUT:
        L = torch.linspace(0, 100, _LUT_L, dtype=torch.float64)
        h = torch.arange(_LUT_H, dtype=torch.float64) * (2 * math.pi / _LUT_H)
        LL, HH = torch.meshgrid(L, h, indexing="ij")
        LL, ca, sa = LL.reshape(-1), torch.cos(HH).reshape(-1), torch.sin(HH).reshape(-1)
        lo, hi = torch.zeros_like(LL), torch.full_like(LL, 200.0)
        for _ in range(24):
            mid = 0.5 * (lo + hi)
            ok = in_gamut(LL, mid * ca, mid * sa, eps=0.0)
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        lut = lo.reshape(_LUT_L, _LUT_H)
        lut = torch.cat([lut, lut[:, :1]], 1)  # hue wraps
        _CHROMA_LUT[key] = lut.to(device, dtype)
    return _CHROMA_LUT[key]


def lab_to_rgb_in_gamut(lab: torch.Tensor, iterations: int = 12) -> torch.Tensor:
    """Lab -> sRGB keeping L exactly: out-of-gamut pixels lose chroma, not lightness.

    Clipping RGB would change the lightness of saturated pixels. Instead, for every
    pixel whose RGB falls outside [0, 1], the ab vector is scaled by the largest
    factor ``t`` in [0, 1] that brings it into the gamut: hue and L are kept, only
    chroma is reduced. Neutral greys are always in gamut, so ``t`` exists for every
    L in [0, 100]. ``t`` is read from a table of the largest in-gamut chroma per
    (L, hue); the rare pixel the table misses is bisected (``iterations`` steps).
    """
    rgb = lab_to_rgb(lab, clip=False)
    eps = _GAMUT_EPS
    bad = ((rgb < -eps) | (rgb > 1 + eps)).any(dim=-3)  # (..., H, W)
    if not bool(bad.any()):
        return rgb.clamp(0.0, 1.0)
    lab_c = lab.movedim(-3, -1)[bad]  # (N, 3): the out-of-gamut pixels only
    L, a, b = lab_c[:, 0].clamp(0.0, 100.0), lab_c[:, 1], lab_c[:, 2]
    chroma = torch.sqrt(a * a + b * b).clamp_min(1e-6)
    lut = _max_chroma_lut(lab.device, lab.dtype)
    li = L * ((_LUT_L - 1) / 100.0)
    hi_ = torch.remainder(torch.atan2(b, a), 2 * math.pi) * (_LUT_H / (2 * math.pi))
    l0, h0 = li.floor().long().clamp(0, _LUT_L - 2), hi_.floor().long().clamp(0, _LUT_H - 1)
    fl, fh = (li - l0).clamp(0, 1), (hi_ - h0).clamp(0, 1)
    cmax = ((1 - fl) * ((1 - fh) * lut[l0, h0] + fh * lut[l0, h0 + 1])
            + fl * ((1 - fh) * lut[l0 + 1, h0] + fh * lut[l0 + 1, h0 + 1]))
    t = (cmax / chroma).clamp(0.0, 1.0)
    miss = ~in_gamut(L, a * t, b * t)
    if bool(miss.any()):  # bisect the few the table misses, below the table's value
        lo, hi = torch.zeros_like(t[miss]), t[miss]
        Lm, am, bm = L[miss], a[miss], b[miss]
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            ok = in_gamut(Lm, am * mid, bm * mid)
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        t[miss] = lo
    fixed = torch.stack([lab_c[:, 0], a * t, b * t], dim=1)[:, :, None, None]
    fixed_rgb = lab_to_rgb(fixed, clip=False)[:, :, 0, 0]
    out = rgb.movedim(-3, -1).clone()
    out[bad] = fixed_rgb
    return out.movedim(-1, -3).clamp(0.0, 1.0)


# --------------------------------------------------------------------- histograms
def _axis_weights(x: torch.Tensor) -> torch.Tensor:
    """Soft bin weights ``max(0, 0.1 - |x - z_k|)`` of values x: (..., N) -> (..., N, 21)."""
    c = bin_centres(x.device, x.dtype)
    return F.relu(BIN_WIDTH - (x.clamp(-1.0, 1.0)[..., None] - c).abs())


def soft_histogram(ab: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable 441-bin ab histogram.

    Parameters
    ----------
    ab : tensor ``(B, 2, H, W)`` or ``(2, H, W)``
        Normalised ab (``ab / 110``), values clamped to [-1, 1].
    weights : tensor ``(B, 1, H, W)``, optional
        Per-pixel weights (a mask, for example).

    Returns
    -------
    tensor ``(B, 21, 21)`` (or ``(21, 21)``), each summing to 1; axis 1 is a, axis 2 is b.
    """
    squeeze = ab.dim() == 3
    if squeeze:
        ab = ab[None]
        weights = None if weights is None else weights[None]
    B = ab.shape[0]
    a = ab[:, 0].reshape(B, -1)
    b = ab[:, 1].reshape(B, -1)
    wa = _axis_weights(a)  # (B, N, 21)
    wb = _axis_weights(b)
    if weights is not None:
        wa = wa * weights.reshape(B, -1, 1)
    h = torch.einsum("bni,bnj->bij", wa, wb)
    h = h / h.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return h[0] if squeeze else h


def hard_histogram(ab: np.ndarray | torch.Tensor) -> np.ndarray:
    """Nearest-bin (non-differentiable) 441-bin histogram of normalised ab ``(2, H, W)``."""
    ab = torch.as_tensor(ab).detach().cpu().numpy()
    idx = np.clip(np.rint((np.clip(ab, -1, 1) + 1.0) / BIN_WIDTH), 0, NBINS - 1).astype(int)
    h = np.zeros((NBINS, NBINS), np.float64)
    np.add.at(h, (idx[0].ravel(), idx[1].ravel()), 1.0)
    return h / h.sum()


def histogram_intersection(h1, h2) -> torch.Tensor | float:
    """HIS: ``sum_k min(h1(k), h2(k))`` over the last two (bin) axes."""
    if isinstance(h1, np.ndarray) or isinstance(h2, np.ndarray):
        return np.minimum(np.asarray(h1), np.asarray(h2)).sum(axis=(-2, -1))
    return torch.minimum(h1, h2).sum(dim=(-2, -1))


def palette(device=None, dtype=torch.float32) -> torch.Tensor:
    """R_P of paper B: the normalised ab value of every bin, shape ``(2, 21, 21)``."""
    c = bin_centres(device, dtype)
    a, b = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([a, b])


def rgb_value_scale(values: np.ndarray, dtype, what: str = "the image") -> tuple[float, str | None]:
    """The value that maps an RGB image's white to 1, read from its dtype and its range.

    ``values``: the image or a sample of its colour values. uint8 -> 255. Other integer types
    -> the smallest of 8, 10, 12, 14 or 16 bits that holds the largest value (12-bit camera data
    in uint16 is read as 0..4095, not as a dark 16-bit image). Floats in [0, 1] -> 1; floats up
    to 255 or 65535 -> 0..255 or 0..65535. Returns ``(white, note)``; ``note`` says what was
    assumed when the dtype alone did not say it. Raises ValueError for values that fit no range.
    """
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0, None
    if dtype == bool or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{what} must be a numeric RGB image (uint8, uint16 or float), not {dtype}")
    v = np.asarray(values)
    if v.size == 0:
        raise ValueError(f"{what} is empty")
    if np.issubdtype(dtype, np.floating):
        finite = np.isfinite(v)
        if not finite.all():
            raise ValueError(f"{what} contains NaN or Inf values")
    lo, hi = float(np.min(v)), float(np.max(v))
    if lo < -1e-3:
        raise ValueError(f"{what} has negative values (down to {lo:g}): RGB values must be 0 or more")
    if np.issubdtype(dtype, np.integer):
        for bits in (8, 10, 12, 14, 16):
            if hi <= 2**bits - 1:
                white = float(2**bits - 1)
                natural = dtype == np.uint16 and bits == 16
                note = None if natural else (f"{what} is {dtype} with values up to {hi:g}: read as {bits}-bit "
                                             f"colour (0..{2**bits - 1})")
                return white, note
        raise ValueError(f"{what} is {dtype} with values up to {hi:g}: more than 16 bits; give 8- or 16-bit "
                         "RGB, or float in [0, 1]")
    if hi <= 1.0 + 1e-3:
        return 1.0, None
    if hi < 2.0:
        return 1.0, f"{what} has values up to {hi:g}, a little above 1: they are clipped to 1"
    for top in (255.0, 65535.0):
        if hi <= top * (1 + 1e-6):
            return top, f"{what} is float with values up to {hi:g}: read as 0..{top:g} (float RGB should be in [0, 1])"
    raise ValueError(f"{what} is float with values up to {hi:g}: RGB values must lie in [0, 1] "
                     "(or 0..255, 0..65535)")


def histogram_from_rgb(rgb: np.ndarray | torch.Tensor, max_pixels: int = 256 * 256) -> np.ndarray:
    """The 441-bin ab histogram of an RGB(A) image ``(H, W, 3|4)``.

    The value range comes from the dtype and the data (:func:`rgb_value_scale`): uint8 0..255,
    uint16 0..65535 (or 12-bit etc. data, with a warning), float in [0, 1] (0..255 floats are
    read as such, with a warning). Alpha is ignored. Large images are subsampled on a regular
    grid to about ``max_pixels`` pixels (the histogram of a colour distribution does not need
    every pixel).
    """
    if isinstance(rgb, torch.Tensor):
        rgb = rgb.detach().cpu().numpy()
    x = np.asarray(rgb)
    if x.ndim == 2:
        raise ValueError(f"a colour histogram needs an RGB image (H, W, 3); this is a 2-D greyscale array of shape "
                         f"{x.shape}, which has no colour")
    if x.ndim != 3 or x.shape[-1] not in (3, 4):
        raise ValueError(f"a colour histogram needs an RGB image of shape (H, W, 3); got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError("the image is empty")
    x = x[..., :3]
    step = max(1, int(np.sqrt(x.shape[0] * x.shape[1] / max_pixels)))
    x = x[::step, ::step]
    white, note = rgb_value_scale(x, x.dtype, "the RGB image")
    if note:
        warnings.warn(note, ColorizeWarning, stacklevel=2)
    x = np.ascontiguousarray(np.clip(x.astype(np.float64) / white, 0.0, 1.0), dtype=np.float32)
    t = torch.from_numpy(x).permute(2, 0, 1)
    ab = normalize_lab(rgb_to_lab(t))[1:]
    return soft_histogram(ab).double().numpy()
