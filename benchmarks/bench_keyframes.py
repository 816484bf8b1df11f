"""Keyframes along a sequence that changes scene half-way: one reference for all, both references for
all, and a keyframe per scene.

    python benchmarks/bench_keyframes.py [--models exemplar warp-grey] [--temporal 0 2]

The sequence: 12 frames of 224 px, scikit-image's ``coffee`` photo panned 2.7 px per frame (frames
0-5), then its ``chelsea`` photo panned the same way (frames 6-11): a cut between frames 5 and 6.
References: each photo flipped left-right and cropped elsewhere than the frames (its colours, not its
pixels' places). Setups: ``one``: the coffee reference for every frame; ``both``: the two references
for every frame (``reference=[A, B]``); ``keyframes``: ``references={5: A, 6: B}`` (a keyframe on each
side of the cut: frames up to 5 take A, from 6 on B).

Per scene: HIS and SSIM against the true colours (mean over its frames); the aligned change: the mean
|ab| change between consecutive frames after undoing the pan, within each scene (the cut excluded),
beside the true colours' own, and at the frames next to the switch (4->5 and 6->7), where a switch
of guide would show as flicker. Prints Markdown tables (copied into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.ndimage import shift as nd_shift

import napari_colorize as nc
from napari_colorize import metrics
from napari_colorize.color import L_to_grey, rgb_to_lab

STEP, HALF, SIZE, MARGIN = 2.7, 6, 224, 24


def panned(photo: np.ndarray, y0: int, x0: int) -> np.ndarray:
    frames = [nd_shift(photo, (0, -STEP * t, 0), order=1, mode="nearest")[y0:y0 + SIZE, x0:x0 + SIZE]
              for t in range(HALF)]
    return np.clip(np.stack(frames), 0, 1)


def sequence():
    from skimage import data

    a = data.coffee().astype(np.float32) / 255  # 400 x 600
    b = data.chelsea().astype(np.float32) / 255  # 300 x 451
    truth = np.concatenate([panned(a, 80, 60), panned(b, 40, 80)])
    lab = rgb_to_lab(torch.from_numpy(truth).permute(0, 3, 1, 2))
    grey = L_to_grey(lab[:, 0]).numpy()
    ref_a = np.ascontiguousarray(a[60:360, 300:, :][:, ::-1])  # (another part of the photo, flipped)
    ref_b = np.ascontiguousarray(b[:, 200:, :][:, ::-1])
    return grey, truth, ref_a, ref_b


def ab_of(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float())[:, 1:].numpy()


def changes(rgb: np.ndarray) -> list[float]:
    """Aligned mean |ab| change from frame t to t + 1, for every t (nan across the cut)."""
    ab = ab_of(rgb)
    out = []
    for t in range(len(ab) - 1):
        if t == HALF - 1:
            out.append(float("nan"))
            continue
        back = nd_shift(ab[t + 1], (0, 0, STEP), order=1, mode="nearest")
        out.append(float(np.abs(back - ab[t])[:, MARGIN:-MARGIN, MARGIN:-MARGIN].mean()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["exemplar", "warp-grey"])
    ap.add_argument("--temporal", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    grey, truth, ref_a, ref_b = sequence()
    gt = changes(truth)
    print(f"\n### A cut half-way ({2 * HALF} frames of {SIZE} px; coffee, then chelsea)\n")
    print(f"True colours' aligned change within scenes: {np.nanmean(gt):.2f} ab units per frame "
          f"(4->5: {gt[HALF - 2]:.2f}, 6->7: {gt[HALF]:.2f}).\n")
    print("| model | guide | temporal | HIS gt coffee | HIS gt chelsea | SSIM coffee | SSIM chelsea | change within scenes | "
          "change 4->5 | change 6->7 | s/frame |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    setups = {"one": {"reference": ref_a}, "both": {"reference": [ref_a, ref_b]},
              "keyframes": {"references": {HALF - 1: ref_a, HALF: ref_b}}}
    for name in a.models:
        m = nc.load_model(name, device="cpu")
        for k in a.temporal:
            for label, guide in setups.items():
                t0 = time.perf_counter()
                out = nc.colorize(m, grey, temporal=k, return_attention=False, **guide).rgb
                dt = (time.perf_counter() - t0) / len(grey)
                his = [metrics.his(o, g) for o, g in zip(out, truth)]
                ssim = [metrics.ssim(o, g) for o, g in zip(out, truth)]
                ch = changes(out)
                print(f"| {name} | {label} | {k} | {np.mean(his[:HALF]):.3f} | {np.mean(his[HALF:]):.3f} | "
                      f"{np.mean(ssim[:HALF]):.3f} | {np.mean(ssim[HALF:]):.3f} | {np.nanmean(ch):.2f} | "
                      f"{ch[HALF - 2]:.2f} | {ch[HALF]:.2f} | {dt:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
