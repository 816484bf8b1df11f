"""Paired differences between models, from ``evaluate.py --per-image`` output.

    python -m training.paired runs/per_image.csv --baseline exemplar-3k --protocol other

For each model and metric: the mean difference to the baseline over the same images, with a 95 %
bootstrap interval (10,000 resamples of the images, seed 0). An interval that contains 0 means the
evaluation set cannot tell the two apart. With ``psnr`` among the metrics, a last column counts the
images on which the model is worse than the baseline by more than ``--worse`` dB (default 0.5): a mean
can rise while a few images get visibly worse (issue 10's fringes on one photo).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

METRICS = ["his_ref", "ssim", "agree"]
ALL_METRICS = ["his_ref", "his_gt", "ssim", "psnr", "colourful", "agree", "agree_p"]


def model_name(model: str) -> str:
    """A checkpoint file's stem (``runs/HB.safetensors`` -> ``HB``); any other name as it is (a spec such
    as ``exemplar+histogram_mix=0.5`` keeps its digits after the dot, and one naming a file,
    ``exemplar+companion=runs/h.safetensors``, is not cut to the file's stem)."""
    p = Path(model)
    return p.stem if "+" not in model and p.suffix in (".safetensors", ".pt", ".pth", ".ckpt") else model


def load(path: Path, protocol: str) -> dict[str, dict[str, np.ndarray]]:
    per: dict[str, dict[int, dict]] = {}
    with open(path) as fh:
        for r in csv.DictReader(fh):
            if r["protocol"] == protocol:
                per.setdefault(model_name(r["model"]), {})[int(r["image"])] = r
    return {m: {k: np.array([float(rows[i].get(k) or "nan") for i in sorted(rows)]) for k in ALL_METRICS}
            for m, rows in per.items()}


def paired(a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95 % bootstrap interval."""
    d = a - b
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path)
    ap.add_argument("--baseline", required=True, help="model name (a checkpoint's file stem)")
    ap.add_argument("--protocol", default=None,
                    help="the protocol's rows to compare ('self', 'other', 'ground-truth histogram'); default: "
                         "the file's only protocol, or 'other'")
    ap.add_argument("--metrics", nargs="+", default=list(METRICS), choices=ALL_METRICS)
    ap.add_argument("--worse", type=float, default=0.5, help="dB: count images this much worse in PSNR")
    a = ap.parse_args(argv)
    with open(a.csv) as fh:
        protocols = sorted({r["protocol"] for r in csv.DictReader(fh)})
    if a.protocol is None:
        a.protocol = protocols[0] if len(protocols) == 1 else "other"
    if a.protocol not in protocols:
        ap.error(f"{a.csv} has no rows of protocol {a.protocol!r} (it has: {', '.join(map(repr, protocols))})")
    data = load(a.csv, a.protocol)
    if a.baseline not in data:
        ap.error(f"{a.baseline!r} is not in {a.csv} for protocol {a.protocol!r} (models: {sorted(data)})")
    base = data[a.baseline]
    print(f"\ndifference to {a.baseline}, protocol '{a.protocol}', {len(base['ssim'])} images, "
          "mean [95 % bootstrap interval]\n")
    worse = "psnr" in a.metrics
    extra = [f"images > {a.worse:g} dB worse"] if worse else []
    print("| model | " + " | ".join(a.metrics + extra) + " |")
    print("|---|" + "---:|" * (len(a.metrics) + len(extra)))
    for m in sorted(data):
        if m == a.baseline:
            continue
        cells = []
        for k in a.metrics:
            mean, lo, hi = paired(data[m][k], base[k])
            cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        if worse:
            d = data[m]["psnr"] - base["psnr"]
            cells.append(f"{int((d < -a.worse).sum())} / {len(d)}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
