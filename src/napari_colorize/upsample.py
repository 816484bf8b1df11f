"""From the working size to the full size: resizing, edge-aware upsampling of the colour, recombination with the full lightness.

The network predicts ab at the working size; :func:`recombine` carries it to the full size by joint
bilateral upsampling (Kopf et al. 2007, :func:`joint_bilateral_upsample_rows`) guided by the
full-size lightness, so colour edges follow the full-resolution luminance edges, and joins it with
the target's own L in bands of rows (bounded memory; out-of-gamut pixels lose chroma, never
lightness). :func:`resize` is the plain (antialiased) resize every stage shares;
:func:`confidence_map` carries a prediction's confidence to the full size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .color import AB_SCALE, lab_to_rgb_in_gamut
from .models.base import Prediction

__all__ = ["resize", "joint_bilateral_upsample_rows", "recombine", "confidence_map"]


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w), antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrink = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)


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
