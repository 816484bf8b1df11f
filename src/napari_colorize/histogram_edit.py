"""Editing ab histograms: brushes, presets, regions, files, and the ab chart to draw them on.

Pure numpy; the napari histogram editor widget calls these. A histogram is a ``(21, 21)``
float array over the normalised ab bins (axis 0: a, axis 1: b; see :mod:`napari_colorize.color`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .color import AB_SCALE, NBINS

__all__ = ["empty", "paint", "normalise", "ab_chart", "chart_to_bins", "PRESETS", "preset", "from_region", "save",
           "load", "bin_of_ab"]


def empty() -> np.ndarray:
    return np.zeros((NBINS, NBINS), np.float64)


def bin_of_ab(a: float, b: float) -> tuple[float, float]:
    """Fractional bin coordinates of normalised (a, b) in [-1, 1]."""
    return (float(a) + 1) / 0.1, (float(b) + 1) / 0.1


def paint(hist: np.ndarray, ia: float, ib: float, radius: float = 1.0, amount: float = 0.05,
          erase: bool = False) -> np.ndarray:
    """A Gaussian brush stroke at fractional bin (ia, ib): adds ``amount`` of mass (or removes
    up to that much, never going below zero). Returns a new array (not normalised)."""
    aa, bb = np.meshgrid(np.arange(NBINS), np.arange(NBINS), indexing="ij")
    w = np.exp(-((aa - ia) ** 2 + (bb - ib) ** 2) / (2 * max(radius, 0.3) ** 2))
    w = w / w.sum() * amount
    out = hist - w if erase else hist + w
    return np.clip(out, 0, None)


def normalise(hist: np.ndarray) -> np.ndarray:
    s = hist.sum()
    if s <= 0:
        raise ValueError("the histogram is empty: paint some colours first")
    return hist / s


def ab_chart(L: float = 60.0, size: int = 210) -> np.ndarray:
    """RGB picture ``(size, size, 3)`` of the ab plane at lightness L, as the editor shows it:
    a grows to the right, b grows upwards (top row: b = +1). Out-of-gamut colours are shown with
    reduced chroma (same L and hue)."""
    import torch

    from .color import lab_to_rgb_in_gamut

    c = np.linspace(-1, 1, size, dtype=np.float32) * AB_SCALE
    b, a = np.meshgrid(c[::-1].copy(), c, indexing="ij")  # rows: b from +1 down to -1; columns: a
    lab = torch.from_numpy(np.stack([np.full_like(a, L), a, b]))
    return lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy()


def chart_to_bins(x: float, y: float, size: float) -> tuple[float, float]:
    """Fractional (a, b) bin of a point (x right, y down) on a ``size``-pixel chart."""
    return x / size * (NBINS - 1), (1 - y / size) * (NBINS - 1)


def _blob(centres: list[tuple[float, float, float]], spread: float = 1.2) -> np.ndarray:
    h = empty()
    for a, b, weight in centres:
        ia, ib = bin_of_ab(a, b)
        h = paint(h, ia, ib, spread, weight)
    return normalise(h)


# (normalised a, normalised b, weight): chosen by eye on the ab chart
PRESETS: dict[str, list[tuple[float, float, float]]] = {
    "warm (sunset)": [(0.25, 0.45, 1.0), (0.35, 0.25, 0.6), (0.1, 0.35, 0.8), (0.0, 0.0, 0.5)],
    "cool (sea and sky)": [(-0.1, -0.35, 1.0), (-0.2, -0.15, 0.7), (0.0, -0.1, 0.5), (0.0, 0.0, 0.4)],
    "forest": [(-0.35, 0.35, 1.0), (-0.2, 0.3, 0.8), (0.05, 0.2, 0.5), (0.0, 0.0, 0.3)],
    "skin and portrait": [(0.15, 0.2, 1.0), (0.1, 0.15, 0.8), (0.0, 0.0, 0.6), (0.05, 0.05, 0.4)],
    "H&E histology": [(0.45, -0.3, 1.0), (0.3, -0.15, 0.8), (0.35, -0.05, 0.6), (0.05, 0.0, 0.4)],
    "neutral": [(0.0, 0.0, 1.0)],
}


def preset(name: str) -> np.ndarray:
    try:
        return _blob(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def from_region(rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Histogram of the pixels of an RGB image (uint8 or float in [0, 1]) inside ``mask``."""
    from .color import histogram_from_rgb

    x = np.asarray(rgb)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != x.shape[:2]:
            raise ValueError(f"the region mask {mask.shape} does not match the image {x.shape[:2]}")
        if not mask.any():
            raise ValueError("the region is empty")
        x = x[mask][None]  # (1, N, 3)
    return histogram_from_rgb(x)


def save(path: str | Path, hist: np.ndarray) -> Path:
    path = Path(path)
    if path.suffix != ".npy":
        path = path.with_suffix(".npy")
    np.save(path, np.asarray(hist, np.float64))
    return path


def load(path: str | Path) -> np.ndarray:
    from .inputs import prepare_histogram

    return prepare_histogram(np.load(path, allow_pickle=False))
