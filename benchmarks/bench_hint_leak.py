"""Colour points: how much of a point's change leaks across a strong lightness edge, and how far it reaches.

    python benchmarks/bench_hint_leak.py [--size 128]

Synthetic grey images (``--size`` square, lightness 0-100, seeded noise): *halves* (left 30, right 70),
*disc* (a disc of 70, radius size/4, on a background of 30) and *texture* (left a sine texture of
+-8 around 30 with noise, right a flat 75). One saturated red point in region A (halves and texture:
size/8 px left of the edge; disc: in the background's corner), over a constant green prediction (as
a reference's colours). For each affinity (:class:`napari_colorize.hints.HintSolver`'s ``edge``:
``None`` is Levin et al.'s weights alone) and spread (16, 64, 256 working px, and ``levin``: hints
alone, unbounded), the mean |RGB change| per pixel, channels averaged: *leak* in region B (no point of
its own; across the edge) and *reach* in region A more than size/4 px from the point. With a bounded
spread the leak should be ~0; with hints alone (levin) B must still take colour (Levin's method).
Also as a share of the point's change of chroma (ab, before the gamut). Prints Markdown tables
(docs/BENCHMARKS.md, colour points).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from napari_colorize.color import AB_SCALE, lab_to_rgb_in_gamut
from napari_colorize.hints import EDGE_SCALE, LEVIN_SPREAD, HintSolver, hint_ab

SPREADS = (16.0, 64.0, 256.0, LEVIN_SPREAD)


def scenes(n: int, seed: int = 0) -> dict:
    """name -> (lightness (n, n), the point (y, x), region A far from the point, region B) (masks)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    left, right = xx < n // 2, xx >= n // 2
    out = {}
    p = (n // 2, n // 2 - n // 8)
    out["halves"] = (np.where(left, 30.0, 70.0) + rng.normal(0, 1.0, (n, n)), p, left, right)
    disc = np.hypot(yy - n / 2, xx - n / 2) < n / 4
    out["disc"] = (np.where(disc, 70.0, 30.0) + rng.normal(0, 1.0, (n, n)), (n // 16, n // 16),
                   np.hypot(yy - n / 2, xx - n / 2) > n / 4 + 4, disc)
    tex = 30 + 8 * np.sin(xx / 2.0) * np.sin(yy / 3.0) + rng.normal(0, 3.0, (n, n))
    out["texture"] = (np.where(left, tex, 75.0 + rng.normal(0, 1.0, (n, n))), p, left & (xx < n // 2 - 2), right)
    for name, (L, (y, x), a, b) in out.items():
        out[name] = (L, (y, x), a & (np.hypot(yy - y, xx - x) > n / 4), b)
    return out


def rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    lab = torch.cat([torch.from_numpy(L).float()[None], torch.from_numpy(ab).float() * AB_SCALE], 0)
    return lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--edges", type=float, nargs="*", default=[0.05, EDGE_SCALE, 0.2],
                    help="absolute edge scales to compare with Levin's weights alone")
    a = ap.parse_args(argv)
    pred = hint_ab([(0, 0, (0.35, 0.55, 0.3))])[0]  # the reference's colours: a constant green
    point = hint_ab([(0, 0, (0.9, 0.1, 0.1))])[0]  # the point: saturated red
    variants = [None] + list(a.edges)
    head = "| image | affinity | " + " | ".join(
        "levin (unbounded)" if s >= LEVIN_SPREAD else f"spread {s:g}" for s in SPREADS) + " |\n|---|---|" + \
        "---:|" * len(SPREADS)
    rgb_rows, ab_rows = [], []
    t0 = time.perf_counter()
    for name, (L, (y, x), far, other) in scenes(a.size).items():
        base_ab = np.broadcast_to(pred[:, None, None], (2, *L.shape)).copy()
        base = rgb(L, base_ab)
        for e in variants:
            cells, shares = [], []
            for s in SPREADS:
                d = HintSolver(L, s, edge=e).delta([(y, x)], (point - pred)[None])
                change = np.abs(rgb(L, np.clip(base_ab + d, -1, 1)) - base).mean(-1)
                cells.append(f"{change[other].mean():.2g} / {change[far].mean():.3f}")
                share = np.linalg.norm(d, axis=0) / np.linalg.norm(point - pred)
                shares.append(f"{share[other].mean():.2g} / {share[far].mean():.2f}")
            label = "Levin 2004" if e is None else f"+ absolute edge {e:g}" + (" (default)" if e == EDGE_SCALE else "")
            rgb_rows.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
            ab_rows.append(f"| {name} | {label} | " + " | ".join(shares) + " |")
    print(f"\n{a.size} x {a.size} px. Mean |RGB change| (0-1, channels averaged) per pixel: leak (region B, no "
          f"point) / reach (region A, > {a.size // 4} px from the point)\n")
    print(head + "\n" + "\n".join(rgb_rows))
    print("\nThe same as a share of the point's change of chroma (|delta ab| / |delta ab at the point|): leak / "
          "reach\n")
    print(head + "\n" + "\n".join(ab_rows))
    print(f"\n({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
