"""Flicker along a stack: slices coloured one by one against the temporal consistency option.

    python benchmarks/bench_flicker.py [--models exemplar welsh] [--temporal 0 1 2 3] [--align on off]

Two sequences:

* **pan**: scikit-image's ``coffee`` photo (one of the 625 training photos of the networks trained on
  the larger corpus; what is measured here is the change between frames, not generalisation) panned 2.7 px per frame
  (sub-pixel, so the true colours themselves change a little between frames), 12 frames of
  224 x 224, each coloured from the first frame's colour (a reference that holds the colours).
  Flicker is the mean |ab| change between consecutive outputs after undoing the pan (inner region),
  set against the same measure on the true colours; quality per frame is HIS and SSIM/PSNR.
* **z-stack**: the uint16 cell focus series of the samples, coloured from the IHC image. No true
  colours: flicker only, against the lightness's own change between slices.

``--align off`` runs the temporal option without its motion compensation (neighbours are blended
where they are, not moved onto the slice first), to show what the alignment buys.

Prints Markdown tables (copied into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time

import numpy as np
import torch
from scipy.ndimage import shift as nd_shift

import napari_colorize as nc
from napari_colorize import metrics
from napari_colorize.color import rgb_to_lab

STEP = 2.7  # pixels per frame
N, SIZE, MARGIN = 12, 224, 24


def pan_sequence() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grey frames (N, S, S) float in [0, 1], true colour frames (N, S, S, 3) float, reference)."""
    from skimage import data

    photo = data.coffee().astype(np.float32) / 255  # 400 x 600
    frames = []
    for t in range(N):
        moved = nd_shift(photo, (0, -STEP * t, 0), order=1, mode="nearest")
        frames.append(moved[80:80 + SIZE, 60:60 + SIZE])
    rgb = np.clip(np.stack(frames), 0, 1)
    lab = rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2))
    from napari_colorize.color import L_to_grey

    grey = L_to_grey(lab[:, 0]).numpy()  # exactly the frames' lightness
    return grey, rgb, rgb[0]


def ab_of(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float())[:, 1:].numpy()


def aligned_change(rgb: np.ndarray) -> float:
    """Mean |ab_{t+1}(x + step) - ab_t(x)| over consecutive frames, inner region."""
    ab = ab_of(rgb)
    diffs = []
    for t in range(len(ab) - 1):
        back = nd_shift(ab[t + 1], (0, 0, STEP), order=1, mode="nearest")  # undo the pan
        d = np.abs(back - ab[t])[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
        diffs.append(float(d.mean()))
    return float(np.mean(diffs))


def slice_change(rgb: np.ndarray) -> float:
    ab = ab_of(rgb.reshape((-1,) + rgb.shape[-3:]))
    return float(np.abs(np.diff(ab, axis=0)).mean())


@contextlib.contextmanager
def alignment(on: bool, sigma_t: float | None = None):
    """The temporal option with (the default) or without its motion compensation; ``sigma_t``:
    another width of its weights along the stack than the default."""
    from napari_colorize import inference, temporal

    original = temporal.temporal_smooth  # (patched where the stack loop, inference.colorized_slices, looks it up)
    kw = ({} if on else {"align": False}) | ({} if sigma_t is None else {"sigma_t": sigma_t})
    if kw:
        inference.temporal_smooth = functools.partial(original, **kw)
    try:
        yield
    finally:
        inference.temporal_smooth = original


def settings(temporal: list[int], align: list[str], sigmas: list) -> list[tuple[int, str, float | None]]:
    """(K, align, sigma_t): K = 0 once (no smoothing: alignment and width are moot), every other K
    per align and width."""
    return [(0, "-", None)] * (0 in temporal) + [(k, a, s) for k in temporal if k for a in align for s in sigmas]


def _sig(k: int, sigma_t) -> str:
    return "-" if k == 0 else ("default" if sigma_t is None else f"{sigma_t:g}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["exemplar", "warp", "welsh"])
    ap.add_argument("--temporal", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--align", nargs="+", choices=["on", "off"], default=["on", "off"])
    ap.add_argument("--sigma-t", type=float, nargs="+", default=[None],
                    help="widths (slices) of the weights along the stack to compare (default: the library's)")
    ap.add_argument("--no-zstack", action="store_true", help="the panned photo only")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    grey, truth, ref = pan_sequence()
    print(f"\n### Panned photo ({N} frames of {SIZE} px, {STEP} px per frame)\n")
    print(f"True colours' own aligned change: **{aligned_change(truth):.2f}** ab units per frame.\n")
    print("| model | temporal | motion compensation | sigma_t | aligned ab change | ratio to truth's | HIS gt | SSIM | PSNR dB "
          "| s/frame |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    gt_change = aligned_change(truth)
    for name in a.models:
        m = nc.load_model(name, device="cpu")
        for k, al, st in settings(a.temporal, a.align, a.sigma_t):
            t0 = time.perf_counter()
            with alignment(al != "off", st):
                out = nc.colorize(m, grey, reference=ref, temporal=k, return_attention=False).rgb
            dt = (time.perf_counter() - t0) / N
            ch = aligned_change(out)
            his = np.mean([metrics.his(o, g) for o, g in zip(out, truth)])
            ssim = np.mean([metrics.ssim(o, g) for o, g in zip(out, truth)])
            psnr = np.mean([metrics.psnr(o, g) for o, g in zip(out, truth)])
            print(f"| {name} | {k} | {al} | {_sig(k, st)} | {ch:.2f} | {ch / gt_change:.1f} | {his:.3f} | {ssim:.3f} | {psnr:.2f} | {dt:.3f} |")
    if a.no_zstack:
        return 0
    from napari_colorize._sample_data import microscopy_pair, zstack

    z = zstack()
    _, ihc = microscopy_pair()
    L_change = float(np.abs(np.diff(z.astype(np.float64) / 65535 * 100, axis=0)).mean())
    print(f"\n### uint16 z-stack ({z.shape[0]} slices of {z.shape[1]} x {z.shape[2]}), IHC reference\n")
    print(f"(No true colours. The raw intensity, scaled to 0-100, changes by about {L_change:.2f} per slice.)\n")
    print("| model | temporal | motion compensation | sigma_t | ab change between slices |")
    print("|---|---:|---|---:|---:|")
    for name in a.models:
        m = nc.load_model(name, device="cpu")
        for k, al, st in settings(a.temporal, a.align, a.sigma_t):
            with alignment(al != "off", st):
                out = nc.colorize(m, z, reference=ihc, temporal=k, return_attention=False).rgb
            print(f"| {name} | {k} | {al} | {_sig(k, st)} | {slice_change(out):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
