"""Image-quality metrics used by the CLI, the benchmarks and the evaluation.

All take RGB images ``(H, W, 3)`` in [0, 1] (float) or uint8.
"""

from __future__ import annotations

import numpy as np

from .color import histogram_from_rgb, histogram_intersection

__all__ = ["his", "psnr", "ssim", "colourfulness"]


def _f(x) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)


def his(a, b) -> float:
    """Histogram intersection similarity of the 441-bin ab histograms of two RGB images; ``b`` may be a
    list of images: then their union's histogram (the mean of their histograms, each weighing the same)."""
    if isinstance(b, (list, tuple)):
        hb = np.mean([histogram_from_rgb(_f(x)) for x in b], 0)
    else:
        hb = histogram_from_rgb(_f(b))
    return float(histogram_intersection(histogram_from_rgb(_f(a)), hb))


def psnr(pred, truth) -> float:
    """PSNR in dB of two RGB images in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(_f(truth), _f(pred), data_range=1.0))


def ssim(pred, truth) -> float:
    """SSIM of two RGB images (channel-wise, Gaussian window as in Wang et al. 2004)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(_f(truth), _f(pred), channel_axis=-1, data_range=1.0,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def colourfulness(rgb) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M on 0..255 RGB."""
    x = _f(rgb) * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
