"""Attention maps as numpy, for display and analysis (the widgets' attention views, the docs).

* :class:`AttentionMaps`: one cross-attention module of paper A's network (where a target cell
  looks in the reference);
* :class:`BinAttention`: paper B's colour-semantic attention (which histogram bins a cell draws from);
* :func:`concentration`: how peaked a distribution is, the one measure both report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..color import NBINS

__all__ = ["AttentionMaps", "BinAttention", "OnLattice", "concentration", "lattice_coords", "lattice_on_pixels"]


def concentration(p: np.ndarray) -> np.ndarray:
    """Per distribution (the last axis, summing to 1), ``1 - entropy / log(n)``: 0 = uniform over
    its ``n`` entries, 1 = all on one. float32, the shape of ``p`` without its last axis."""
    p = np.asarray(p, np.float64)
    if p.shape[-1] <= 1:
        return np.ones(p.shape[:-1], np.float32)
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)
    return (1.0 - ent / math.log(p.shape[-1])).astype(np.float32)


def lattice_coords(n_out: int, n_in: int, stride: int, block_centred: bool = False) -> np.ndarray:
    """Where each of ``n_out`` pixels lies on a lattice axis of ``n_in`` cells, in cells (float64), as the
    backbone places its cells: cell ``i`` of stride ``stride`` centred on pixel ``stride * i`` (EfficientNet's
    stride-2 convolutions pad ``k // 2``), or, ``block_centred`` (VGG's 2 x 2 pooling,
    ``BackboneSpec.block_centred``), in the middle of its block, pixel ``stride * i + (stride - 1) / 2``;
    beyond the first and last cells, clipped to them. The one placement rule of the package: the match
    confidence (:func:`~napari_colorize.models.coherence.lattice_to_pixels`) and the maps laid over images
    (:func:`lattice_on_pixels`) both resample through it. ``n_out`` may count the cells of a finer lattice
    (``stride``: the ratio of the two strides)."""
    s = max(1, int(stride))
    u = np.arange(int(n_out), dtype=np.float64)
    u = (u - (s - 1) / 2.0) / s if block_centred else u / s
    return np.clip(u, 0.0, max(int(n_in) - 1, 0))


def _axis_weights(n_out: int, n_in: int, stride: int, block_centred: bool) -> np.ndarray:
    """``(n_out, n_in)`` linear interpolation weights from a lattice axis of ``n_in`` cells to ``n_out`` pixels
    placed by :func:`lattice_coords`."""
    u = lattice_coords(n_out, n_in, stride, block_centred)
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    t = u - i0
    w = np.zeros((n_out, n_in))
    np.add.at(w, (np.arange(n_out), i0), 1.0 - t)
    np.add.at(w, (np.arange(n_out), i1), t)
    return w


def lattice_on_pixels(m: np.ndarray, stride: int, block_centred: bool = False) -> np.ndarray:
    """A lattice map ``(h, w)`` resampled bilinearly to the pixels of the image it was computed on,
    ``(h * stride, w * stride)`` float32, each cell where the backbone centres it (as
    :func:`~napari_colorize.models.coherence.lattice_to_pixels` places the match confidence, both through
    :func:`lattice_coords`): laid over an image, it covers the image exactly, neither short of its edges nor
    beyond them."""
    m = np.asarray(m, np.float64)
    h, w = m.shape
    s = max(1, int(stride))
    out = _axis_weights(h * s, h, s, block_centred) @ m @ _axis_weights(w * s, w, s, block_centred).T
    return out.astype(np.float32)


class OnLattice:
    """Where the cells of a map's lattice lie on the image it was computed on, for maps with ``stride`` (working
    pixels per cell) and ``block_centred`` (the backbone's cell placement, ``BackboneSpec.block_centred``)."""

    stride: int
    block_centred: bool

    @property
    def cell_centre(self) -> float:
        """Where a cell's centre lies in its ``stride x stride`` block of the working image, as a fraction of
        the block from its first pixel's outer edge: ``0.5 / stride`` (cell ``i`` centred on pixel
        ``stride * i``: EfficientNet's stride-2 convolutions pad ``k // 2``), or ``0.5`` (``block_centred``: in
        the middle of the block, VGG's pooling) - as :func:`~napari_colorize.models.coherence.lattice_to_pixels`
        places the match confidence. Used to lay the maps over an image."""
        return 0.5 if self.block_centred else 0.5 / max(1, int(self.stride))

    def on_pixels(self, m: np.ndarray) -> np.ndarray:
        """A map on this lattice on the pixels of the working image (:func:`lattice_on_pixels`), to lay over
        an image."""
        return lattice_on_pixels(m, self.stride, self.block_centred)


@dataclass
class AttentionMaps(OnLattice):
    """Attention weights of one cross-attention module, for display and analysis.

    ``kind == "axial"``: ``width`` is ``(heads, H, W, W)`` and ``height`` is
    ``(heads, H, W, H)``; ``kind == "standard"``: ``full`` is ``(heads, H, W, H, W)``.
    Coordinates are on the module's feature lattice (``stride`` pixels of the
    working image per cell); the reference lattice has the same shape. ``block_centred``: where the
    backbone centres a cell (``BackboneSpec.block_centred``; :attr:`cell_centre`).
    """

    kind: str
    stride: int
    width: np.ndarray | None = None
    height: np.ndarray | None = None
    full: np.ndarray | None = None
    shape: tuple[int, int] = field(default=(0, 0))
    block_centred: bool = False

    def effective(self, i: int, j: int) -> np.ndarray:
        """Head-averaged 2-D attention of target cell (i, j) over the reference, ``(H, W)``, sums to 1."""
        if self.kind == "standard":
            return self.full[:, i, j].mean(0)
        ah = self.height[:, i, j, :].mean(0)  # over rows i' (of the width output at column j)
        aw = self.width[:, :, j, :].mean(0)  # (H, W): row i' of the width step, query column j
        return ah[:, None] * aw

    def all_effective(self) -> np.ndarray:
        """Effective maps of every target cell, ``(H, W, H, W)``."""
        if self.kind == "standard":
            return self.full.mean(0)
        ah = self.height.mean(0)  # (H, W, H')  [i, j, i']
        aw = self.width.mean(0)  # (H', W, W')  [i', j, j']
        return np.einsum("ijk,kjl->ijkl", ah, aw)

    def concentration(self) -> np.ndarray:
        """Per target cell, ``1 - entropy / log(H W)`` of its effective map: 0 = uniform, 1 = one point."""
        m = self.all_effective()
        return concentration(m.reshape(*m.shape[:2], -1))


@dataclass
class BinAttention(OnLattice):
    """The colour-semantic attention of one image, for display and analysis.

    ``weights``: ``(h, w, 21, 21)`` on the ``H/4 x W/4`` lattice of the working image (``stride`` 4, cells placed
    as the backbone's stride-4 tap, ``block_centred``); for each target cell, a distribution over the ab bins
    (index ``[ia, ib]`` as in :func:`napari_colorize.color.soft_histogram`) that sums to 1.
    """

    weights: np.ndarray
    stride: int = 4
    block_centred: bool = False

    @property
    def lattice(self) -> tuple[int, int]:
        """``(h, w)``: the attention lattice (``H/4 x W/4`` of the working image)."""
        return tuple(self.weights.shape[:2])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(h, w, 21, 21)``, as the array it wraps (``np.asarray(att)`` gives the weights)."""
        return tuple(self.weights.shape)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.weights, dtype=dtype)

    def bins_of_pixel(self, i: int, j: int) -> np.ndarray:
        """Which bins target cell ``(i, j)`` draws its colour feature from: ``(21, 21)``, sums to 1."""
        h, w = self.lattice
        if not (0 <= i < h and 0 <= j < w):
            raise IndexError(f"cell ({i}, {j}) is outside the {h} x {w} attention lattice")
        return self.weights[i, j]

    def pixels_of_bin(self, ia: int, ib: int) -> np.ndarray:
        """Where the colour of bin ``(ia, ib)`` goes: each cell's attention weight on that bin, ``(h, w)``."""
        if not (0 <= ia < NBINS and 0 <= ib < NBINS):
            raise IndexError(f"bin ({ia}, {ib}) is outside the {NBINS} x {NBINS} histogram")
        return self.weights[:, :, ia, ib]

    def concentration(self) -> np.ndarray:
        """Per cell, ``1 - entropy / log(441)``: 0 = draws from every bin equally, 1 = from one bin."""
        return concentration(self.weights.reshape(*self.lattice, -1))
