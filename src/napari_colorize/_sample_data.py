"""Sample images, from files bundled in installed wheels (nothing is downloaded).

``sample_pair()``: the left view of scikit-image's motorcycle stereo pair as a
greyscale target, the right view as the colour reference (same scene, slightly
different viewpoint: the classic exemplar situation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["sample_pair", "sample_pair_layers"]


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
