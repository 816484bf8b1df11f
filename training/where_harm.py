"""Where an exemplar model's colour harms the picture with a related reference: a diagnosis on the
'other-source' protocol (and 'self'), printed as Markdown (docs/MODELS.md, issue 18)::

    python -m training.where_harm --data data/manifest.csv exemplar

1. SSIM of the output against the truth with each pixel's *hue* replaced by the truth's (chroma kept),
   with its *chroma* replaced by the truth's (hue kept), with its chroma halved, and the grey input's:
   which of the two SSIM punishes.
2. Each pixel's SSIM (the full map, whose image mean is SSIM before skimage crops its border) minus the
   grey input's, by the output's lightness L* (bands of 10): where the loss sits.
3. The output's chroma over the truth's by distance to the image border, and the match confidence there:
   a frame along the edges shows as a lower ratio near the border.
4. The percentiles of each view's mean match confidence: the gates of the output stage
   (``coherence_gate``, ``prior_cells_gate``) are the 90th percentile of 'other-source' and the 10th of
   'self' on training views (docs/MODELS.md).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import napari_colorize as nc
from napari_colorize import metrics
from napari_colorize.color import lab_to_rgb_in_gamut, rgb_to_lab

from .evaluate import SIZE, eval_images, grey_of, load_with_output, reference_pool, references

BANDS = ((0, 8), (8, 25), (25, 60), (60, 10**6))


def _lab(rgb: np.ndarray) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None])[0]


def _rgb(lab: torch.Tensor) -> np.ndarray:
    return lab_to_rgb_in_gamut(lab[None])[0].permute(1, 2, 0).numpy()


def _ssim_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    _, m = structural_similarity(truth, pred, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, full=True)
    return m.mean(-1)


def diagnose(model, images, refs) -> dict:
    """The three tables' numbers for one model on one protocol's views and references."""
    swaps = {k: [] for k in ("output", "truth's hue", "truth's chroma", "chroma halved", "grey input")}
    loss, count = np.zeros(10), np.zeros(10)
    border = np.zeros((len(BANDS), 3))
    means = []
    for img, ref in zip(images, refs):
        truth = img.astype(np.float32) / 255
        res = nc.colorize(model, grey_of(img), reference=ref, size=SIZE, return_attention=False)
        out = res.rgb
        lo, lt = _lab(out), _lab(truth)
        L, ao, at = lo[:1], lo[1:], lt[1:]
        co, ct = ao.norm(dim=0, keepdim=True), at.norm(dim=0, keepdim=True)
        ho, ht = ao / co.clamp_min(1e-6), at / ct.clamp_min(1e-6)
        variants = {"output": out, "truth's hue": _rgb(torch.cat([L, ht * co])),
                    "truth's chroma": _rgb(torch.cat([L, ho * ct])), "chroma halved": _rgb(torch.cat([L, ao / 2])),
                    "grey input": _rgb(torch.cat([L, 0 * ao]))}
        for k, v in variants.items():
            swaps[k].append(metrics.ssim(v, img))
        maps = {k: _ssim_map(variants[k].astype(np.float32), truth) for k in ("output", "grey input")}
        band = np.clip((L[0].numpy() // 10).astype(int), 0, 9)
        np.add.at(loss, band.ravel(), (maps["output"] - maps["grey input"]).ravel())
        np.add.at(count, band.ravel(), 1)
        H, W = band.shape
        yy, xx = np.mgrid[0:H, 0:W]
        dist = np.minimum.reduce([yy, H - 1 - yy, xx, W - 1 - xx])
        conf = res.confidence if res.confidence is not None else np.full((H, W), np.nan)
        means.append(float(np.mean(conf)))
        for j, (a, b) in enumerate(BANDS):
            m = (dist >= a) & (dist < b)
            border[j] += (float(co[0][m].mean()), float(ct[0][m].mean()), float(np.mean(conf[m])))
    return {"swaps": {k: float(np.mean(v)) for k, v in swaps.items()}, "loss": loss, "count": count,
            "border": border / len(images), "confidence": np.array(means)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an exemplar model's name or checkpoint file, or NAME+key=value (evaluate's specs)")
    ap.add_argument("--data", required=True, help="manifest.csv (its val split)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    images = eval_images(a.data, a.split)[: a.limit]
    model = load_with_output(a.model)
    for protocol in ("other-source", "self"):
        refs = references(images, protocol, reference_pool(a.data, images) if protocol != "self" else None)
        d = diagnose(model, images, refs)
        print(f"\n### {a.model}, protocol '{protocol}', {len(images)} views\n")
        print("| the output with | SSIM |\n|---|---:|")
        for k, v in d["swaps"].items():
            print(f"| {k} | {v:.4f} |")
        n = d["count"].sum()
        print("\n| output L* | share of pixels | SSIM minus the grey input's, mean | contribution to the image mean |")
        print("|---|---:|---:|---:|")
        for i in range(10):
            if d["count"][i]:
                print(f"| {10 * i}-{10 * i + 10} | {d['count'][i] / n:.3f} | {d['loss'][i] / d['count'][i]:+.4f} | "
                      f"{d['loss'][i] / n:+.4f} |")
        print("\n| distance to the border, px | output chroma | truth chroma | ratio | match confidence |")
        print("|---|---:|---:|---:|---:|")
        for (lo, hi), (co, ct, cf) in zip(BANDS, d["border"]):
            print(f"| {lo}-{'' if hi > 10**5 else hi} | {co:.2f} | {ct:.2f} | {co / max(ct, 1e-6):.2f} | {cf:.3f} |")
        q = np.percentile(d["confidence"], [10, 50, 90])
        print(f"\neach view's mean match confidence, percentiles 10 / 50 / 90: {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
