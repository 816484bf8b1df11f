"""Colour points (hints): a colour set at a pixel, spread edge-aware over its region (Levin et al. 2004's affinity).

``hints=[(y, x, (r, g, b)), ...]`` (target pixels; colour as floats in [0, 1] or 0-255 numbers) fix the
chroma at those pixels; the lightness stays the target's (on a stack such a point colours every slice, a
point ``(z, y, x, (r, g, b))`` slice ``z`` only: :func:`check_hints`). The change each hint makes to the
model's colours, ``delta = hint - prediction`` at the hint, spreads to the other pixels of the working image by
the affinity of Levin, Lischinski and Weiss (*Colorization using optimization*, SIGGRAPH 2004): each
pixel's value is the weighted mean of its 3x3 neighbours', weights ``exp(-(Y_r - Y_s)^2 / (2 s_r^2))``
(``s_r^2`` the local variance of lightness, so weights fall across lightness edges), normalised to sum 1.
With a *screening* term the change fades with distance, ``(1 + lam) d_r - sum_s w_rs d_s = 0`` with
``lam = 0.375 / spread^2`` (``spread``: the fall-off length in working pixels; the 3x3 mean diffuses 0.375 px^2 a step): a hint recolours its own region and the reference's
colours stay elsewhere. Hints alone (the model ``levin``: no reference, a grey prediction) are Levin's
scribble colourisation: ``spread`` is then effectively infinite (``lam`` tiny), every pixel takes the
colours of the hints it is best connected to.

Levin's weight is relative to the local contrast: across a strong edge it is small but finite whatever
the edge's height, and summed along a long edge it wins against a small ``lam``, carrying a point's
change into the next region. So each weight also has an absolute term, ``exp(-(Y_r - Y_s)^2 / s_e^2)``
(``Y`` scaled to [0, 1] over the image, ``s_e`` = :data:`EDGE_SCALE`): steps of lightness well above
``s_e`` are cut whatever the local variance, texture and soft ramps (steps below ``s_e``) pass. No weight
falls below a floor (``1e-6`` before the rows are normalised), far above the ``lam`` of hints alone: there a
region without a point still takes colour from the regions around it, as in Levin's method.

The sparse system ``M = (1 + lam) I - W`` is factored once per image (SuperLU, :mod:`scipy.sparse`); the
hint-constrained solution is a sum of its Green's functions, ``d = sum_k c_k M^-1 e_k`` with the ``c``
that give every hint its value (a system the size of the number of hints). Adding or moving a hint
costs one solve with the factors, recolouring one costs nothing more: the interactive preview in napari
re-solves in milliseconds (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import torch

from .color import AB_SCALE, rgb_to_lab
from .memory import available_memory

__all__ = ["check_hints", "slice_hints", "hints_of_part", "HintSolver", "hints_to_working", "hint_ab", "DEFAULT_SPREAD",
           "LEVIN_SPREAD", "EDGE_SCALE", "solve_memory", "check_solve_memory", "MAX_SOLVE_BYTES"]

#: how far (in pixels at the working size, where lightness is flat) a hint's change reaches with a reference
DEFAULT_SPREAD = 64.0
#: hints alone (Levin): effectively unbounded - its ``lam`` far below the weights' floor (see the module docs)
LEVIN_SPREAD = 1e5
#: the affinity's absolute edge scale: a fraction of the image's lightness range (see the module docs)
EDGE_SCALE = 0.1
#: the least weight of a neighbour (before the rows are normalised) with the absolute term
_WEIGHT_FLOOR = 1e-6
#: the most the colour points' solve may take, however much memory is free (tens of thousands of points ask for
#: gigabytes and minutes of solves - docs/INPUTS.md; the interactive preview re-solves on every edit)
MAX_SOLVE_BYTES = 4 * 2**30


def check_hints(hints, shape: tuple[int, int], stack_shape: tuple = ()) -> list[tuple]:
    """``hints`` validated for a target of ``shape`` (H, W) and ``stack_shape`` (its stack axes; ``()``
    for a 2-D image): ``(y, x, (r, g, b))`` colours every slice, ``(z, y, x, (r, g, b))`` slice ``z``
    only. ``z`` is the slice's index as the engine counts slices: along the stack's axes flattened in
    C order (a 3-D stack: its first axis; ``(T, Z, Y, X)``: ``t * Z + z``), or a tuple of one index per
    stack axis (``((t, z), y, x, (r, g, b))``). Positions inside the image, three finite colour values;
    colours given as 0-255 numbers (any above 1) are scaled to [0, 1]. Also accepts an ``(N, 5)`` array
    ``y, x, r, g, b`` or ``(N, 6)`` ``z, y, x, r, g, b``. Returns ``(y, x, colour)`` and ``(z, y, x,
    colour)`` tuples (``z`` the flat index). Raises ValueError/TypeError saying which hint is wrong."""
    if hints is None:
        return []
    if isinstance(hints, np.ndarray):
        if hints.ndim != 2 or hints.shape[1] not in (5, 6):
            raise ValueError("hints as an array are (N, 5): y, x, r, g, b per row, or (N, 6): z, y, x, r, g, b; "
                             f"got shape {hints.shape}")
        hints = [(*r[:-3], tuple(r[-3:])) for r in hints.tolist()]
    if not isinstance(hints, (list, tuple)):
        raise TypeError("hints must be a list of (y, x, (r, g, b)) or (z, y, x, (r, g, b)), e.g. [(10, 20, (1.0, 0.2, "
                        "0.1))]")
    H, W = int(shape[0]), int(shape[1])
    stack_shape = tuple(int(s) for s in stack_shape)
    out = []
    for k, h in enumerate(hints):
        try:
            *z, y, x, colour = h
            if len(z) > 1:
                raise ValueError
            y, x = float(y), float(x)
            colour = tuple(float(c) for c in colour)
        except (TypeError, ValueError):
            raise ValueError(f"hint {k + 1} ({h!r}) is not (y, x, (r, g, b)) nor (z, y, x, (r, g, b))") from None
        if len(colour) != 3 or not np.isfinite([y, x, *colour]).all():
            raise ValueError(f"hint {k + 1}: give a finite position and three colour values (r, g, b), not {h!r}")
        if not (-0.5 <= y < H - 0.5 and -0.5 <= x < W - 0.5):
            raise ValueError(f"hint {k + 1} at (y={y:g}, x={x:g}) lies outside the {H} x {W} image")
        out.append((y, x, colour) if not z else (_slice_of(z[0], stack_shape, k, h), y, x, colour))
    if any(c > 1.0 for *_, col in out for c in col):  # 0-255 colours
        if any(c > 255.0 for *_, col in out for c in col):
            raise ValueError("hint colours are r, g, b in [0, 1] or 0-255 numbers; some are above 255")
        out = [(*pos, tuple(c / 255.0 for c in col)) for *pos, col in out]
    if any(c < 0.0 for *_, col in out for c in col):
        raise ValueError("hint colours are r, g, b in [0, 1] (or 0-255); some are negative")
    return out


def _slice_of(z, stack_shape: tuple, k: int, h) -> int:
    """The flat slice index of hint k's ``z`` (one index, or one per stack axis), checked against the stack."""
    if not stack_shape:
        raise ValueError(f"hint {k + 1} ({h!r}) names a slice, but the target is one 2-D image: give (y, x, (r, g, b))")
    idx = tuple(z) if isinstance(z, (tuple, list, np.ndarray)) else (z,)
    if len(idx) not in (1, len(stack_shape)) or not all(
            isinstance(i, (int, float, np.number)) and not isinstance(i, (bool, np.bool_)) and float(i).is_integer()
            for i in idx):
        raise ValueError(f"hint {k + 1} ({h!r}): its slice is a whole number (the flat index) or one per stack axis "
                         f"({len(stack_shape)})")
    shape = stack_shape if len(idx) == len(stack_shape) else (int(np.prod(stack_shape)),)
    idx = tuple(int(i) for i in idx)
    if not all(0 <= i < s for i, s in zip(idx, shape)):
        n = int(np.prod(stack_shape))
        raise ValueError(f"hint {k + 1} ({h!r}): slice {z!r} is outside the stack "
                         f"({' x '.join(map(str, stack_shape))}: slices 0..{n - 1})")
    return int(np.ravel_multi_index(idx, shape))


def slice_hints(hints: list, i: int, every: bool = True) -> list[tuple[float, float, tuple]]:
    """The checked hints that colour slice ``i``: those of every slice (unless ``every`` is False) and
    those of slice ``i``, in their order (on one pixel the later wins), as ``(y, x, colour)``."""
    return [h[-3:] for h in hints if (every and len(h) == 3) or (len(h) == 4 and h[0] == i)]


def hints_of_part(hints: list, stack_shape: tuple, start: tuple, part_shape: tuple) -> list[tuple]:
    """The checked hints of a stack ``stack_shape`` for a part of it (``part_shape``, its first slice
    at ``start`` along each stack axis): every-slice hints as they are, a slice's hints with its flat
    index in the part (those of slices outside it left out)."""
    out = []
    for h in hints:
        if len(h) == 3:
            out.append(h)
            continue
        at = np.subtract(np.unravel_index(h[0], stack_shape), start)
        if ((at >= 0) & (at < part_shape)).all():
            out.append((int(np.ravel_multi_index(tuple(at), part_shape)), *h[1:]))
    return out


def hint_ab(hints: list) -> np.ndarray:
    """The hints' chroma ``(N, 2)``, normalised as the models' ab (Lab a, b divided by AB_SCALE)."""
    if not hints:
        return np.zeros((0, 2), np.float64)
    rgb = torch.tensor([col for _, _, col in hints], dtype=torch.float32).T[:, :, None]  # (3, N, 1)
    lab = rgb_to_lab(rgb)[:, :, 0]
    return (lab[1:].T / AB_SCALE).double().numpy()


def hints_to_working(hints: list, shape: tuple[int, int], wshape: tuple[int, int]) -> list[tuple[int, int]]:
    """Each hint's pixel at the working size (the nearest one)."""
    H, W = shape
    h, w = wshape
    return [(min(h - 1, max(0, int((y + 0.5) * h / H))), min(w - 1, max(0, int((x + 0.5) * w / W))))
            for y, x, _ in hints]


def levin_affinity(L: np.ndarray, edge: float | None = EDGE_SCALE):
    """Levin et al.'s row-normalised 3x3 affinity of a lightness image ``(h, w)`` (any scale): a sparse
    ``(h w, h w)`` matrix ``W`` whose rows sum to 1. ``edge``: the absolute term's scale (a fraction of
    the lightness range; the module docs), ``None`` for Levin et al.'s weights alone."""
    import scipy.sparse as sp

    Y = np.asarray(L, np.float64)
    Y = (Y - Y.min()) / max(float(Y.max() - Y.min()), 1e-6)
    h, w = Y.shape
    n = h * w
    P = np.pad(Y, 1, mode="edge")
    offs = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    nb = np.stack([P[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offs])  # (8, h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    valid = np.stack([(yy + dy >= 0) & (yy + dy < h) & (xx + dx >= 0) & (xx + dx < w) for dy, dx in offs])
    window = np.concatenate([nb, Y[None]])
    wvalid = np.concatenate([valid, np.ones((1, h, w), bool)])
    cnt = wvalid.sum(0)
    mean = (window * wvalid).sum(0) / cnt
    var = (((window - mean) ** 2) * wvalid).sum(0) / cnt * 0.6
    d2 = (nb - Y[None]) ** 2
    closest = np.where(valid, d2, np.inf).min(0)
    var = np.maximum(np.maximum(var, closest / np.log(100.0)), 2e-6)  # (the nearest neighbour keeps weight 0.01)
    e = d2 / var[None]
    if edge:  # (strong edges cut whatever the local variance; the floor keeps every region reachable)
        e = np.minimum(e + d2 / edge ** 2, -np.log(_WEIGHT_FLOOR))
    wts = np.exp(-e) * valid
    wts /= wts.sum(0, keepdims=True)
    idx = np.arange(n).reshape(h, w)
    rows = np.broadcast_to(idx, (8, h, w))[valid]
    cols = np.stack([idx + dy * w + dx for dy, dx in offs])[valid]
    return sp.csr_matrix((wts[valid], (rows, cols)), shape=(n, n))


def solve_memory(wshape: tuple[int, int], points: int) -> int:
    """Estimated peak bytes of :meth:`HintSolver.delta` for ``points`` distinct working pixels on a working
    image ``wshape``: a float64 Green's function column per point, ``h w N``, and the ``N x N`` system
    with its factorisation, ``2 N^2``."""
    n, k = int(wshape[0]) * int(wshape[1]), int(points)
    return 8 * (n * k + 2 * k * k)


def check_solve_memory(wshape: tuple[int, int], points: int) -> None:
    """Raise MemoryError, before allocating, when the solve of ``points`` colour points (distinct working
    pixels) on a working image ``wshape`` (:func:`solve_memory`) would not fit in the free memory or is
    above :data:`MAX_SOLVE_BYTES`, naming the points, the estimate and what to do."""
    need = solve_memory(wshape, points)
    avail = available_memory("cpu")
    limit = MAX_SOLVE_BYTES if avail is None else min(avail, MAX_SOLVE_BYTES)
    if need <= limit:
        return
    h, w = int(wshape[0]), int(wshape[1])
    room = 0.8 * limit / 8  # (float64 values that fit, with a margin)
    fit = max(1, int((np.sqrt(float(h * w) ** 2 + 8.0 * room) - h * w) / 4))  # (the most points: h w k + 2 k^2)
    side = int(max(h, w) * np.sqrt(max(room / points - 2 * points, 0.0) / (h * w)))  # (the largest working size)
    have = f"the {limit / 2**30:.1f} GB free" if limit < MAX_SOLVE_BYTES else f"the {limit / 2**30:.0f} GB allowed"
    smaller = f" or a smaller working size (size={side} or less)" if side >= 16 else ""
    raise MemoryError(
        f"{points} colour points at working size {h}x{w} need about {need / 2**30:.1f} GB to spread (a column of "
        f"{h * w * 8 / 2**20:.2f} MB per point), more than {have}: use fewer colour points (about {fit} or "
        f"fewer at this size; points on one working pixel count once){smaller}")


class HintSolver:
    """The spread of hints over one working-size image: ``M = (1 + lam) I - W`` factored once,
    each hint pixel's Green's function ``M^-1 e_k`` cached; :meth:`delta` gives the change of
    colour ``(2, h, w)`` that sets every hint's chroma exactly and fades away from it. Its memory grows with
    the number of points (:func:`solve_memory`), checked before each solve (:func:`check_solve_memory`)."""

    def __init__(self, L: np.ndarray | torch.Tensor, spread: float = DEFAULT_SPREAD,
                 edge: float | None = EDGE_SCALE) -> None:
        import scipy.sparse as sp
        import scipy.sparse.linalg as spl

        if not (isinstance(spread, (int, float)) and spread > 0 and np.isfinite(spread)):
            raise ValueError(f"spread must be a positive number of pixels, not {spread!r}")
        L = L.detach().cpu().numpy() if hasattr(L, "detach") else np.asarray(L)
        self.shape = tuple(int(s) for s in L.shape)
        self.spread = float(spread)
        n = self.shape[0] * self.shape[1]
        # (the 3x3 mean diffuses 0.375 px^2 per step: this lam makes ``spread`` the fall-off length)
        M = sp.identity(n, format="csr") * (1.0 + 0.375 / self.spread ** 2) - levin_affinity(L, edge)
        # (M's rows are diagonally dominant, also after a symmetric reordering: elimination needs no pivoting,
        # and row swaps would only add fill)
        self._lu = spl.splu(M.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        self._green: dict[int, np.ndarray] = {}

    def _g(self, k: int) -> np.ndarray:
        if k not in self._green:
            e = np.zeros(self.shape[0] * self.shape[1])
            e[k] = 1.0
            self._green[k] = self._lu.solve(e)
            if len(self._green) > 256:  # (a long interactive session: the oldest hints' columns go)
                self._green.pop(next(iter(self._green)))
        return self._green[k]

    def delta(self, pixels: list[tuple[int, int]], values: np.ndarray) -> np.ndarray:
        """The change ``(2, h, w)`` that is ``values[k]`` (``(N, 2)``) at ``pixels[k]`` (working (y, x));
        two hints on one pixel: the later one wins."""
        h, w = self.shape
        last: dict[int, int] = {}
        for k, (y, x) in enumerate(pixels):
            last[y * w + x] = k
        if not last:
            return np.zeros((2, h, w))
        ks = list(last)
        check_solve_memory(self.shape, len(ks))  # (before allocating: a column of h w per point)
        G = np.empty((h * w, len(ks)), order="F")  # (n, N), filled column by column: no second copy
        for j, k in enumerate(ks):
            G[:, j] = self._g(k)
        target = np.asarray(values, np.float64)[[last[k] for k in ks]]  # (N, 2)
        c = np.linalg.solve(G[ks], target)
        return (G @ c).T.reshape(2, h, w)

    def apply(self, ab: torch.Tensor, pixels: list[tuple[int, int]], hint_values: np.ndarray) -> torch.Tensor:
        """``ab`` ``(2, h, w)`` (normalised) with the hints set and spread: ``ab + delta``, where
        ``delta`` is each hint's chroma minus ``ab`` at its pixel, spread."""
        if not pixels:
            return ab
        a = ab.detach().float().cpu()
        at = np.stack([a[:, y, x].numpy() for y, x in pixels]).astype(np.float64)
        d = self.delta(pixels, np.asarray(hint_values, np.float64) - at)
        return (a + torch.from_numpy(d).float()).clamp(-1, 1)
