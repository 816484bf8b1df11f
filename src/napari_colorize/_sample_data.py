"""Sample images, from files bundled in installed wheels (nothing is downloaded).

``sample_pair()``: the left view of scikit-image's motorcycle stereo pair as a
greyscale target, the right view as the colour reference (same scene, slightly
different viewpoint: the classic exemplar situation).

``microscopy_pair()``: scikit-image's ``cell.png`` (a greyscale cell micrograph) as the
target, stretched to uint16 like a camera image, and its ``ihc.png``
(immunohistochemistry, colour) as the reference.

``zstack()``: a small uint16 (Z, Y, X) stack made from ``cell.png``: each slice defocused
by a different amount, with a slow intensity drift, like a focus series.

The ``*_layers()`` functions are napari sample-data contributions: the reference is placed to the right
of the target, and each layer says what it is for in ``metadata[SAMPLE_ROLE]`` ("target", "reference" or
"truth"), so the widgets' layer pickers choose the right layer the first time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["sample_pair", "sample_pair_layers", "microscopy_pair", "microscopy_pair_layers", "zstack",
           "zstack_layers", "SAMPLE_ROLE"]

SAMPLE_ROLE = "napari_colorize_sample"  # metadata key: {"role": "target" | "reference" | "truth"}
GAP = 20  # pixels between the target and the reference placed to its right


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


def _fit_view_when_added(layers: list) -> list:
    """napari fits its view to the first layer of a sample only, so a reference placed to the right of the target
    would start off screen: once all of ``layers`` are in the viewer, fit the view to everything. Only inside a
    running napari (nothing is imported otherwise)."""
    if "napari._qt.qt_main_window" not in sys.modules:
        return layers
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return layers
    names = {meta["name"] for _, meta, _ in layers}
    events = viewer.layers.events

    def on_inserted(event=None) -> None:
        if names <= {layer.name for layer in viewer.layers}:
            events.inserted.disconnect(on_inserted)
            viewer.reset_view()

    events.inserted.connect(on_inserted)
    return layers


def _role(role: str) -> dict:
    return {"metadata": {SAMPLE_ROLE: {"role": role}}}


def _right_of(grey: np.ndarray) -> tuple[float, float]:
    return (0.0, float(grey.shape[-1] + GAP))


def sample_pair_layers():
    """napari sample-data contribution: the greyscale target, its colour reference to its right, and the
    target's true colours (hidden, over the target: tick its eye to compare, or name it in *Compare*)."""
    grey, ref, truth = sample_pair()
    layers = [(grey, {"name": "motorcycle (grey)", **_role("target")}, "image"),
              (ref, {"name": "motorcycle (colour reference)", "rgb": True, "translate": _right_of(grey),
                     **_role("reference")}, "image"),
              (truth, {"name": "motorcycle (true colour)", "rgb": True, "visible": False, **_role("truth")}, "image")]
    return _fit_view_when_added(layers)


def microscopy_pair() -> tuple[np.ndarray, np.ndarray]:
    """(grey cell micrograph as uint16 (660, 550), colour IHC reference uint8 (512, 512, 3))."""
    from skimage.io import imread

    cell = imread(_skimage_file("cell.png")).astype(np.uint16)
    grey16 = (cell * 180 + 900).astype(np.uint16)  # a 12-bit-camera-like range inside uint16
    return grey16, imread(_skimage_file("ihc.png"))[..., :3]


def microscopy_pair_layers():
    """napari sample-data contribution: the uint16 cell micrograph and the IHC colour reference to its right."""
    grey, ref = microscopy_pair()
    layers = [(grey, {"name": "cell (uint16)", **_role("target")}, "image"),
              (ref, {"name": "IHC (colour reference)", "rgb": True, "translate": _right_of(grey),
                     **_role("reference")}, "image")]
    return _fit_view_when_added(layers)


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
    """The focus series and, to its right, the IHC image as a colour reference."""
    stack = zstack()
    _, ihc = microscopy_pair()
    layers = [(stack, {"name": "cell focus series", **_role("target")}, "image"),
              (ihc, {"name": "IHC (colour reference)", "rgb": True, "translate": _right_of(stack),
                     **_role("reference")}, "image")]
    return _fit_view_when_added(layers)
