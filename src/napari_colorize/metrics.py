"""Image-quality metrics used by the CLI, the benchmarks and the evaluation.

All take RGB images ``(H, W, 3)`` of any RGB value range :func:`~napari_colorize.color.rgb_value_scale`
reads (uint8, uint16 or 10- to 14-bit data, float in [0, 1], 0..255 or 0..65535), brought to [0, 1] by
:func:`unit_rgb`.
"""

from __future__ import annotations

import warnings

import numpy as np

from .color import ColorizeWarning, histogram_from_rgb, histogram_intersection, rgb_value_scale

__all__ = ["his", "psnr", "ssim", "colourfulness", "unit_rgb", "SSIM_MIN_SIDE"]

# SSIM's Gaussian window (sigma 1.5, truncated at 3.5 sigma) is 11 pixels wide: smaller images have no SSIM.
SSIM_MIN_SIDE = 11


def unit_rgb(x, what: str = "the image") -> np.ndarray:
    """An RGB image as float64 in [0, 1], its white read from its dtype and values by
    :func:`~napari_colorize.color.rgb_value_scale` (uint8 /255, uint16 /65535 or its 10- to 14-bit
    range, float in [0, 1] as it is, float 0..255 /255 with a warning). Raises ValueError (TypeError)
    for values (a dtype) that fit no RGB range."""
    x = np.asarray(x)
    white, note = rgb_value_scale(x, x.dtype, what)
    if note:
        warnings.warn(note, ColorizeWarning, stacklevel=2)
    return np.clip(x.astype(np.float64) / white, 0.0, 1.0)


def his(a, b) -> float:
    """Histogram intersection similarity of the 441-bin ab histograms of two RGB images; ``b`` may be a
    list of images: then their union's histogram (the mean of their histograms, each weighing the same)."""
    if isinstance(b, (list, tuple)):
        hb = np.mean([histogram_from_rgb(unit_rgb(x)) for x in b], 0)
    else:
        hb = histogram_from_rgb(unit_rgb(b))
    return float(histogram_intersection(histogram_from_rgb(unit_rgb(a)), hb))


def psnr(pred, truth) -> float:
    """PSNR in dB of two RGB images in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(unit_rgb(truth), unit_rgb(pred), data_range=1.0))


def ssim(pred, truth) -> float:
    """SSIM of two RGB images (channel-wise, Gaussian window as in Wang et al. 2004); NaN for images
    with a side under ``SSIM_MIN_SIDE`` (11) pixels, smaller than the window."""
    from skimage.metrics import structural_similarity

    if min(np.shape(truth)[:2] + np.shape(pred)[:2]) < SSIM_MIN_SIDE:
        return float("nan")
    return float(structural_similarity(unit_rgb(truth), unit_rgb(pred), channel_axis=-1, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def colourfulness(rgb) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M on 0..255 RGB."""
    x = unit_rgb(rgb) * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
