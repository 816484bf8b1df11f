"""Sample images, from files bundled in installed wheels (nothing is downloaded).

``sample_pair()``: the left view of scikit-image's motorcycle stereo pair as a
greyscale target, the right view as the colour reference (same scene, slightly
different viewpoint: the classic exemplar situation).

``microscopy_pair()``: scikit-image's ``cell.png`` (a greyscale cell micrograph) as the
target, stretched to uint16 like a camera image, and its ``ihc.png``
(immunohistochemistry, colour) as the reference.

``zstack()``: a small uint16 (Z, Y, X) stack made from ``cell.png``: each slice defocused
by a different amount, with a slow intensity drift, like a focus series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["sample_pair", "sample_pair_layers", "microscopy_pair", "microscopy_pair_layers", "zstack",
           "zstack_layers"]


def _skimage_file(name: str) -> Path:
    import skimage.data

    p = Path(skimage.data.__file__).parent / name
    if not p.exists():
        raise FileNotFoundError(f"scikit-image's bundled sample {name} is missing")
    return p


def sample_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grey target uint8 (H, W), colour reference uint8 (h, w, 3), ground-truth colour of the target)."""
    from skimage.color import rgb2gray
    from skimage.io import imread

    truth = imread(_skimage_file("motorcycle_left.png"))[..., :3]
    ref = imread(_skimage_file("motorcycle_right.png"))[..., :3]
    grey = np.round(rgb2gray(truth) * 255).astype(np.uint8)
    return grey, ref, truth


def sample_pair_layers():
    """napari sample-data contribution: the greyscale target and its colour reference."""
    grey, ref, _ = sample_pair()
    return [(grey, {"name": "motorcycle (grey target)"}, "image"),
            (ref, {"name": "motorcycle (colour reference)", "rgb": True}, "image")]


def microscopy_pair() -> tuple[np.ndarray, np.ndarray]:
    """(grey cell micrograph as uint16 (660, 550), colour IHC reference uint8 (512, 512, 3))."""
    from skimage.io import imread

    cell = imread(_skimage_file("cell.png")).astype(np.uint16)
    grey16 = (cell * 180 + 900).astype(np.uint16)  # a 12-bit-camera-like range inside uint16
    return grey16, imread(_skimage_file("ihc.png"))[..., :3]


def microscopy_pair_layers():
    grey, ref = microscopy_pair()
    return [(grey, {"name": "cell (uint16 grey)"}, "image"),
            (ref, {"name": "IHC (colour reference)", "rgb": True}, "image")]


def zstack(n: int = 12) -> np.ndarray:
    """A uint16 (n, 330, 275) focus series built from ``cell.png``."""
    from scipy.ndimage import gaussian_filter
    from skimage.io import imread

    cell = imread(_skimage_file("cell.png")).astype(np.float32)[::2, ::2]
    out = np.empty((n,) + cell.shape, np.uint16)
    for z in range(n):
        sigma = abs(z - n / 2) * 0.6
        out[z] = np.clip(gaussian_filter(cell, sigma) * (150 + 4 * z) + 1000, 0, 65535).astype(np.uint16)
    return out


def zstack_layers():
    return [(zstack(), {"name": "cell focus series (uint16 z-stack)"}, "image")]
