"""Temporal consistency along a stack: the motion between slices and the smoothing of each slice's colour with its neighbours.

Against flicker, each slice's working-size ab is smoothed with its neighbours' along the last stack
axis (:func:`temporal_smooth`: joint bilateral in lightness), each neighbour first moved onto the
slice by its global translation (phase correlation refined to a tenth of a pixel,
:func:`phase_shift`; :class:`StackMotion` computes each pair of slices' shift once for a stack).
:data:`DEFAULT_TEMPORAL` neighbours on either side are used when a stack's ``temporal`` is not given.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .upsample import resize

__all__ = ["SHIFT_SIZE", "SHIFT_UPSAMPLE", "ShiftSpectrum", "shift_spectrum", "phase_shift", "global_shift",
           "StackMotion", "translate", "temporal_smooth", "DEFAULT_TEMPORAL", "resolve_temporal"]


#: the long side (pixels) at which the motion along a stack is estimated: larger working sizes are
#: shrunk to it (area average) and the shifts scaled back; the default 224 px is used as it is
SHIFT_SIZE = 256
#: a shift's precision: 1 / SHIFT_UPSAMPLE of a pixel at the size it is estimated at
SHIFT_UPSAMPLE = 10


@dataclass
class ShiftSpectrum:
    """A slice's lightness prepared for :func:`phase_shift`: the one-sided 2-D Fourier transform
    (complex64; None when the slice has no structure to follow) of it shrunk to ``grid`` pixels from its
    working ``shape``; ``scale`` = working pixels per pixel of the grid."""

    fft: np.ndarray | None
    shape: tuple[int, int]
    grid: tuple[int, int]
    scale: tuple[float, float] = (1.0, 1.0)


def shift_spectrum(L: torch.Tensor) -> ShiftSpectrum:
    """The spectrum of a slice's lightness ``L`` (h, w), at most :data:`SHIFT_SIZE` pixels on its long side."""
    h, w = (int(s) for s in L.shape)
    s = min(1.0, SHIFT_SIZE / max(h, w))
    small = (max(2, int(round(h * s))), max(2, int(round(w * s))))
    x = resize(L.float()[None, None], small)[0, 0] if s < 1 else L.float()
    a = x.numpy().astype(np.float32, copy=False)
    if float(a.std()) < 1e-6:
        return ShiftSpectrum(None, (h, w), small)
    return ShiftSpectrum(np.fft.rfft2(a), (h, w), small, (h / small[0], w / small[1]))


def phase_shift(to: ShiftSpectrum, frm: ShiftSpectrum, max_frac: float = 0.125) -> tuple[float, float]:
    """The translation ``(dy, dx)`` (working pixels) that moves the slice of ``frm`` onto that of ``to``:
    phase correlation, its peak refined to 1 / :data:`SHIFT_UPSAMPLE` pixel by a DFT of the cross-power
    spectrum on a fine grid around the integer peak (Guizar-Sicairos et al. 2008, as
    ``skimage.registration.phase_cross_correlation`` does); ``(0, 0)`` when either has no structure or
    the shift is larger than ``max_frac`` of the image.

    The spectra are one-sided (``rfft2``) and the sums plain numpy loops (``einsum``): a few ms at
    224 px, on one thread (a BLAS or torch product would start threads, which spin on a busy machine)."""
    if to.fft is None or frm.fft is None:
        return 0.0, 0.0
    R = to.fft * np.conj(frm.fft)
    R /= np.maximum(np.abs(R), np.float32(1e-12))  # phase only
    h, w = to.grid
    peak = np.unravel_index(int(np.argmax(np.fft.irfft2(R, s=(h, w)))), (h, w))
    py, px = (int(p) - n if p > n // 2 else int(p) for p, n in zip(peak, (h, w)))
    reach = int(math.ceil(0.6 * SHIFT_UPSAMPLE))  # the true peak is within half a pixel of the integer one
    offs = np.arange(-reach, reach + 1) / SHIFT_UPSAMPLE
    ys, xs = py + offs, px + offs
    # the real correlation from one side of the spectrum: columns 1 .. w/2 - 1 stand for their mirror too
    cols = R.shape[1]
    weight = np.full(cols, 2.0, np.float32)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    kx = (weight[:, None] * np.exp(2j * np.pi * np.outer(np.arange(cols) / w, xs))).astype(np.complex64)
    ky = np.exp(2j * np.pi * np.outer(ys, np.fft.fftfreq(h))).astype(np.complex64)
    fine = np.einsum("uk,kv->uv", ky, np.einsum("kl,lv->kv", R, kx)).real
    iy, ix = np.unravel_index(int(np.argmax(fine)), fine.shape)
    dy, dx = float(ys[iy]) * to.scale[0], float(xs[ix]) * to.scale[1]
    H, W = to.shape
    if abs(dy) > max_frac * H or abs(dx) > max_frac * W:
        return 0.0, 0.0
    return dy, dx


def global_shift(L_to: torch.Tensor, L_from: torch.Tensor, max_frac: float = 0.125) -> tuple[float, float]:
    """The translation ``(dy, dx)`` that moves ``L_from`` onto ``L_to`` (:func:`phase_shift`);
    ``(0, 0)`` when it is larger than ``max_frac`` of the image (not a pan, or no structure)."""
    return phase_shift(shift_spectrum(L_to), shift_spectrum(L_from), max_frac)


class StackMotion:
    """The motion along a run of slices, for :func:`temporal_smooth`: each slice's spectrum and the
    shift of each consecutive pair are computed once (cached by slice index); the shift between two
    slices further apart is the sum of the pairs' between them.

    ``lightness(j)``: the working-size L of slice j (asked for once per slice)."""

    def __init__(self, lightness: Callable[[int], torch.Tensor], max_frac: float = 0.125) -> None:
        self.lightness, self.max_frac = lightness, max_frac
        self.spectra: dict[int, ShiftSpectrum] = {}
        self.pairs: dict[int, tuple[float, float]] = {}  # j -> the shift moving slice j onto slice j + 1

    def _spectrum(self, j: int) -> ShiftSpectrum:
        if j not in self.spectra:
            self.spectra[j] = shift_spectrum(self.lightness(j))
        return self.spectra[j]

    def pair(self, j: int) -> tuple[float, float]:
        """The shift that moves slice j onto slice j + 1."""
        if j not in self.pairs:
            self.pairs[j] = phase_shift(self._spectrum(j + 1), self._spectrum(j), self.max_frac)
        return self.pairs[j]

    def between(self, i: int, j: int) -> tuple[float, float]:
        """The shift that moves slice j onto slice i; ``(0, 0)`` when larger than ``max_frac`` of the image."""
        if i == j:
            return 0.0, 0.0
        sign, steps = (1.0, range(j, i)) if j < i else (-1.0, range(i, j))
        dy = sign * sum(self.pair(m)[0] for m in steps)
        dx = sign * sum(self.pair(m)[1] for m in steps)
        H, W = self._spectrum(i).shape
        if abs(dy) > self.max_frac * H or abs(dx) > self.max_frac * W:
            return 0.0, 0.0
        return dy, dx

    def keep(self, slices) -> None:
        """Forget every slice but ``slices`` (and the pairs that start outside them)."""
        keep = set(slices)
        for d in (self.spectra, self.pairs):
            for j in [j for j in d if j not in keep]:
                del d[j]


def translate(x: torch.Tensor, dy: float, dx: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (C, h, w) moved by ``(dy, dx)`` pixels (bilinear), and where it is defined (h, w)."""
    C, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float32) - dy
    xs = torch.arange(w, dtype=torch.float32) - dx
    gy, gx = torch.meshgrid(2 * (ys + 0.5) / h - 1, 2 * (xs + 0.5) / w - 1, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None]
    both = torch.cat([x.float(), torch.ones(1, h, w)])[None]
    out = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return out[:C], (out[C] > 0.999).float()


def temporal_smooth(abs_: list[torch.Tensor], Ls: list[torch.Tensor], centre: int, sigma_t: float = 2.0,
                    sigma_L: float = 6.0, align: bool = True,
                    shifts: Callable[[int], tuple[float, float]] | None = None) -> torch.Tensor:
    """Joint bilateral smoothing of working-size ab along the stack axis (flicker reduction).

    Slice ``centre`` of the window ``abs_`` (each ``(2, h, w)``, with lightness ``Ls``, each ``(h, w)``)
    becomes the weighted mean of its neighbours' ab at the same position, weighted by their distance
    along the stack (Gaussian, ``sigma_t`` slices) and by how alike their lightness is there (Gaussian,
    ``sigma_L`` L units): where a neighbour shows the same structure its colour is shared, where the
    content moved or changed it is not. ``align``: each neighbour is first moved onto the centre slice
    by its global translation (a panning camera, a drifting stage), so that the colour of the same
    structure is shared even when it moved: ``shifts(k)``, the shift that moves window slice k onto the
    centre; by default the sum of the phase correlations of consecutive slices between them
    (:class:`StackMotion`; a stack keeps one for all its windows, so each pair is correlated once).
    """
    if align and shifts is None:
        motion = StackMotion(lambda k: Ls[k])
        shifts = functools.partial(motion.between, centre)
    num = torch.zeros_like(abs_[centre])
    den = torch.zeros_like(Ls[centre])
    for k, (ab, L) in enumerate(zip(abs_, Ls)):
        valid = 1.0
        if align and k != centre:
            dy, dx = shifts(k)
            if dy or dx:
                moved, valid = translate(torch.cat([ab, L[None]]), dy, dx)
                ab, L = moved[:2], moved[2]
        w = math.exp(-((k - centre) ** 2) / (2 * sigma_t**2)) * torch.exp(-((L - Ls[centre]) ** 2) / (2 * sigma_L**2))
        w = w * valid
        num += w * ab
        den += w
    return num / den


#: neighbours on either side that a stack's slices are smoothed with when ``temporal`` is not given:
#: with sigma_t = 2, flicker 2-5x lower, SSIM/PSNR a little higher, HIS within 0.01 (docs/BENCHMARKS.md)
DEFAULT_TEMPORAL = 3


def resolve_temporal(temporal: int | None, n_slices: int) -> int:
    """The number of neighbours to smooth with: ``temporal``, or :data:`DEFAULT_TEMPORAL` for a stack
    when it is None; 0 for a single image."""
    if temporal is not None and (isinstance(temporal, bool) or not isinstance(temporal, (int, np.integer))
                                 or temporal < 0):
        raise ValueError(f"temporal must be a number of neighbouring slices (0 or more), not {temporal!r}")
    if n_slices <= 1:
        return 0
    return DEFAULT_TEMPORAL if temporal is None else int(temporal)
