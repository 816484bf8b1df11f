"""Classic exemplar colourisation baselines, without learned weights.

* :func:`welsh_ab` - Welsh, Ashikhmin & Mueller 2002, "Transferring color to
  greyscale images", global version: the reference luminance is remapped to the
  target's mean and standard deviation; about 200 samples are taken from the
  reference on a jittered grid; every target pixel takes the ab of the sample
  whose (luminance, 5x5 neighbourhood standard deviation) is nearest, weighting
  both equally (50 % / 50 %).
* :func:`reinhard_ab` - Reinhard, Ashikhmin, Gooch & Shirley 2001, "Color transfer
  between images": per-channel mean and standard deviation matching in Ruderman's
  l-alpha-beta space. A greyscale target has alpha = beta = 0 everywhere (zero
  spread), so the transfer gives every pixel the reference's mean chroma: a global
  tint. That is what the method does on a grey input; it is here as the floor.

Both work on the working-resolution Lab of target and reference (numpy) and
return normalised ab (``ab / 110``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.spatial import cKDTree

from ..color import AB_SCALE

__all__ = ["welsh_ab", "reinhard_ab"]


def _local_std(L: np.ndarray, size: int = 5) -> np.ndarray:
    m = uniform_filter(L, size, mode="reflect")
    m2 = uniform_filter(L * L, size, mode="reflect")
    return np.sqrt(np.clip(m2 - m * m, 0, None))


def welsh_ab(target_L: np.ndarray, ref_lab: np.ndarray, n_samples: int = 200, seed: int = 0) -> np.ndarray:
    """Welsh et al. global transfer.

    Parameters
    ----------
    target_L : (H, W) Lab lightness of the target (0..100).
    ref_lab : (h, w, 3) Lab of the reference.

    Returns
    -------
    (2, H, W) float32 normalised ab.
    """
    tL = target_L.astype(np.float64)
    rL = ref_lab[..., 0].astype(np.float64)
    # luminance remapping: match the reference's first two moments to the target's
    sr, st = rL.std(), tL.std()
    rL = (rL - rL.mean()) * (st / sr if sr > 1e-6 else 1.0) + tL.mean()
    r_std = _local_std(rL)
    t_std = _local_std(tL)
    # jittered grid of about n_samples samples
    h, w = rL.shape
    g = max(1, int(round(np.sqrt(n_samples * h / max(w, 1)))))
    gw = max(1, int(round(n_samples / g)))
    rng = np.random.default_rng(seed)
    ys = ((np.arange(g)[:, None] + rng.random((g, gw))) * h / g).astype(int).clip(0, h - 1)
    xs = ((np.arange(gw)[None, :] + rng.random((g, gw))) * w / gw).astype(int).clip(0, w - 1)
    ys, xs = ys.ravel(), xs.ravel()
    # 50 % luminance, 50 % neighbourhood statistics
    feats = np.stack([rL[ys, xs], r_std[ys, xs]], 1) * np.sqrt(0.5)
    tree = cKDTree(feats)
    q = np.stack([tL.ravel(), t_std.ravel()], 1) * np.sqrt(0.5)
    _, idx = tree.query(q, k=1)
    ab = ref_lab[ys[idx], xs[idx], 1:].astype(np.float32) / AB_SCALE  # (N, 2)
    return ab.T.reshape(2, *tL.shape)


# Ruderman et al. l-alpha-beta, via LMS (Reinhard et al. 2001, Eqs. 1-6)
_RGB2LMS = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
_LMS2LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array([[1, 1, 1], [1, 1, -2], [1, -1, 0]])


def _to_lalphabeta(rgb_linear: np.ndarray) -> np.ndarray:
    lms = np.clip(rgb_linear @ _RGB2LMS.T, 1e-6, None)
    return np.log10(lms) @ _LMS2LAB.T


def _from_lalphabeta(lab: np.ndarray) -> np.ndarray:
    lms = 10 ** (lab @ np.linalg.inv(_LMS2LAB).T)
    return lms @ np.linalg.inv(_RGB2LMS).T


def reinhard_ab(target_L: np.ndarray, ref_lab: np.ndarray) -> np.ndarray:
    """Reinhard et al. global colour transfer; returns (2, H, W) normalised ab."""
    from skimage.color import lab2rgb, rgb2lab

    def linear(srgb):
        return np.where(srgb > 0.04045, ((srgb + 0.055) / 1.055) ** 2.4, srgb / 12.92)

    ref_rgb = linear(np.clip(lab2rgb(ref_lab.astype(np.float64)), 0, 1))
    grey = np.clip(lab2rgb(np.stack([target_L, np.zeros_like(target_L), np.zeros_like(target_L)], -1)), 0, 1)
    t = _to_lalphabeta(linear(grey))
    r = _to_lalphabeta(ref_rgb.reshape(-1, 3))
    out = np.empty_like(t)
    for c in range(3):
        mt, st = t[..., c].mean(), t[..., c].std()
        mr, sr = r[:, c].mean(), r[:, c].std()
        # (t - mean_t) * sigma_r / sigma_t + mean_r; a channel with no spread maps to mean_r
        out[..., c] = (t[..., c] - mt) * (sr / st if st > 1e-6 else 0.0) + mr
    rgb_lin = np.clip(_from_lalphabeta(out), 0, 1)
    srgb = np.where(rgb_lin > 0.0031308, 1.055 * rgb_lin ** (1 / 2.4) - 0.055, 12.92 * rgb_lin)
    ab = rgb2lab(np.clip(srgb, 0, 1))[..., 1:] / AB_SCALE
    return np.moveaxis(ab, -1, 0).astype(np.float32)
