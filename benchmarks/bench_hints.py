"""Colour points: quality as the number of points grows (ideepcolor's protocol), and the preview's speed.

    python benchmarks/bench_hints.py --data data/manifest.csv [--limit 60] [--points 0 1 5 20] \
        [--figure docs/images/hints_curve.png]
    python benchmarks/bench_hints.py --speed-only
    python benchmarks/bench_hints.py --tune-spread      # the default spread, chosen on training views

Quality: the held-out views of our split (``training.evaluate.eval_images``, 256 px), each with N points
whose colour is the truth's 3x3 mean at a random pixel (seeded per view; the same points for every
method), as in Zhang et al. 2017 (ideepcolor), who sample points from the truth. Methods: ``levin``
(points alone), and ``reinhard`` / ``exemplar`` with the realistic reference (the most similar view of
*another source series*, the 'other-source' protocol) plus the points; N = 0 is each method without
points (for levin: the grey input). Per method and N: PSNR (dB), SSIM and HIS (histogram intersection
of ab) against the truth, means over the views. Prints Markdown tables (copied into docs/MODELS.md).

Speed: :class:`napari_colorize.preview.HintPreview` on the bundled sample (500 x 741, working size
224): set-up (the model once, the system factored), the first render with 5 points, moving one point,
recolouring one - medians of repeats, the whole call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import napari_colorize as nc  # noqa: E402
from napari_colorize import metrics  # noqa: E402


def sample_points(truth: np.ndarray, n: int, seed: int) -> list:
    """N points at random pixels, each the truth's 3x3 mean colour there."""
    rng = np.random.default_rng([5, seed])
    H, W = truth.shape[:2]
    out = []
    for y, x in zip(rng.integers(1, H - 1, n), rng.integers(1, W - 1, n)):
        out.append((int(y), int(x), tuple(float(c) for c in truth[y - 1:y + 2, x - 1:x + 2, :3].reshape(-1, 3).mean(0))))
    return out


def quality(data: str, limit: int, points: list[int], figure: str | None = None) -> None:
    from training.evaluate import eval_images, grey_of, reference_pool, references

    images = eval_images(data, "val")
    refs = references(images, "other-source", reference_pool(data, images))
    images, refs = images[:limit], refs[:limit]
    methods = ["levin", "reinhard", "exemplar"]
    models = {m: nc.load_model(m, device="cpu") for m in methods}
    rows = {(m, n): [] for m in methods for n in points}
    t0 = time.perf_counter()
    for i, (truth, ref) in enumerate(zip(images, refs)):
        grey = grey_of(truth)
        for n in points:
            hints = sample_points(truth, n, i)
            for m in methods:
                if m == "levin":
                    out = nc.colorize(models[m], grey, hints=hints).rgb if hints else np.repeat(grey[..., None], 3, -1)
                else:
                    out = nc.colorize(models[m], grey, reference=ref, hints=hints or None).rgb
                rows[(m, n)].append((metrics.psnr(out, truth), metrics.ssim(out, truth), metrics.his(out, truth)))
        if (i + 1) % 10 == 0:
            print(f"  {i + 1} of {len(images)} views, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"\n{len(images)} val views at 256 px; references: other-source (most similar view of another series)\n")
    print("| method | guide | " + " | ".join(f"N={n} PSNR / SSIM / HIS" for n in points) + " |")
    print("|---|---|" + "---|" * len(points))
    for m in methods:
        cells = []
        for n in points:
            a = np.asarray(rows[(m, n)])
            cells.append(f"{a[:, 0].mean():.2f} / {a[:, 1].mean():.3f} / {a[:, 2].mean():.3f}")
        guide = "points only" if m == "levin" else "reference + points"
        print(f"| {m} | {guide} | " + " | ".join(cells) + " |")
    if figure:
        plot_curve({m: [np.asarray(rows[(m, n)]).mean(0) for n in points] for m in methods}, points, len(images),
                   figure)
    # paired: with 20 points minus without
    for m in methods[1:]:
        if 0 in points and max(points) > 0:
            d = np.asarray(rows[(m, max(points))])[:, 0] - np.asarray(rows[(m, 0)])[:, 0]
            print(f"\n{m}: PSNR with {max(points)} points minus without: {d.mean():+.2f} dB "
                  f"(better on {int((d > 0).sum())} of {len(d)} views)")


def plot_curve(means: dict, points: list[int], n_views: int, path: str) -> None:
    """PSNR and HIS against N (docs/images/hints_curve.png): ``means[method][k] = (psnr, ssim, his)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = {"levin": "levin (points only)", "reinhard": "reinhard + points", "exemplar": "exemplar + points"}
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    x = list(range(len(points)))
    for m, v in means.items():
        ax[0].plot(x, [r[0] for r in v], marker="o", label=label.get(m, m))
        ax[1].plot(x, [r[2] for r in v], marker="o", label=label.get(m, m))
    for a, t in zip(ax, ["PSNR vs truth (dB)", "HIS vs truth"]):
        a.set_xticks(x)
        a.set_xticklabels([str(n) for n in points])
        a.set_xlabel("colour points N (sampled from the truth)")
        a.set_title(t)
        a.grid(alpha=0.3)
    ax[1].legend(fontsize=8)
    fig.suptitle(f"{n_views} validation views, realistic (other-source) references; N = 0 for levin: the grey "
                 "input", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def tune_spread(data: str, protocol: str, spreads=(16, 32, 64, 128, 256, 1e4), points=(1, 5, 20), n_views=24) -> None:
    """The default spread, chosen on *training* views (never the validation split reported above): the
    exemplar model with the protocol's reference plus N points, mean PSNR per spread."""
    from training.evaluate import eval_images, grey_of, reference_pool, references

    imgs = eval_images(data, "train")
    imgs = imgs[::max(1, len(imgs) // n_views)][:n_views]
    refs = references(imgs, "self") if protocol == "self" else \
        references(imgs, "other-source", reference_pool(data, imgs))
    m = nc.load_model("exemplar", device="cpu")
    print(f"\n{len(imgs)} training views, {protocol} references: mean PSNR (dB) with N points\n")
    print("| spread (px) | " + " | ".join(f"N={n}" for n in points) + " |")
    print("|---:|" + "---:|" * len(points))
    for sp in spreads:
        cells = []
        for n in points:
            ps = [metrics.psnr(nc.colorize(m, grey_of(t), reference=r, hints=sample_points(t, n, 1000 + i),
                                           hint_spread=sp).rgb, t) for i, (t, r) in enumerate(zip(imgs, refs))]
            cells.append(f"{np.mean(ps):.2f}")
        print(f"| {'unbounded' if sp >= 1e4 else f'{sp:g}'} | " + " | ".join(cells) + " |", flush=True)


def speed(repeats: int = 7) -> None:
    from napari_colorize._sample_data import sample_pair
    from napari_colorize.preview import HintPreview

    import torch

    torch.set_num_threads(2)
    grey, ref, truth = sample_pair()
    print("\n| model | working shape | set-up (s) | first render, 5 points (ms) | move one point (ms) | "
          "recolour one point (ms) |")
    print("|---|---|---|---|---|---|")
    for name, r in (("exemplar", ref), ("reinhard", ref), ("levin", None)):
        model = nc.load_model(name, device="cpu")
        t = time.perf_counter()
        p = HintPreview(model, grey, reference=r, size=224)
        setup = time.perf_counter() - t
        base = sample_points(truth.astype(np.float32) / 255, 5, 0)
        first, move, recolour = [], [], []
        for k in range(repeats):
            p.solver._green.clear()  # (each repeat from a cold cache: every point solved again)
            t = time.perf_counter()
            p.render(base)
            first.append(time.perf_counter() - t)
            moved = base[:4] + [(base[4][0] + 7 + k, base[4][1] + 5 + k, base[4][2])]
            t = time.perf_counter()
            p.render(moved)
            move.append(time.perf_counter() - t)
            again = moved[:4] + [(moved[4][0], moved[4][1], (0.9, 0.1, 0.1))]
            t = time.perf_counter()
            p.render(again)
            recolour.append(time.perf_counter() - t)
        ms = lambda v: f"{1000 * statistics.median(v):.0f}"  # noqa: E731
        print(f"| {name} | {p.wshape[0]}x{p.wshape[1]} | {setup:.2f} | {ms(first)} | {ms(move)} | {ms(recolour)} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/manifest.csv")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--points", type=int, nargs="+", default=[0, 1, 5, 20])
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--figure", default=None, help="also draw the curve to this PNG (docs/images/hints_curve.png)")
    ap.add_argument("--tune-spread", action="store_true",
                    help="the spread's grid on training views, other-source and self references")
    a = ap.parse_args(argv)
    if a.tune_spread:
        for protocol in ("other-source", "self"):
            tune_spread(a.data, protocol)
        return 0
    speed()
    if not a.speed_only:
        quality(a.data, a.limit, a.points, a.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
