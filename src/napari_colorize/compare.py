"""Run several models on one target and its reference(s) and score them side by side."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import metrics
from .inference import colorize
from .inputs import reference_list, target_layout
from .models.registry import load_model

__all__ = ["iter_compare", "compare", "write_csv", "COLUMNS", "sheet_layout", "his_to_references"]

COLUMNS = ["model", "HIS vs reference", "colourfulness", "SSIM", "PSNR dB", "seconds"]


def his_to_references(rgb: np.ndarray, reference) -> float:
    """HIS of ``rgb``'s colours with the reference's, or with the union of several references' colours
    (each reference weighing the same, as the models take them)."""
    refs = reference_list(reference)
    return metrics.his(rgb, refs[0] if len(refs) == 1 else refs)


def _image_shape(target, rgb: bool | None) -> tuple[int, int]:
    """The (H, W) of a target that is one 2-D image (greyscale or RGB); ValueError for a stack."""
    shape = tuple(int(s) for s in np.shape(target))
    stack = ValueError(f"compare works on one 2-D image (greyscale or RGB); the target has shape {shape}: "
                       "pick one slice, or colourise the stack with colorize")
    if len(shape) < 2:
        raise ValueError(f"compare works on one 2-D image (greyscale or RGB); the target has shape {shape}")
    if len(shape) >= 4:
        raise stack
    is_rgb, how, _ = target_layout(shape, rgb)
    spatial = shape[:-1] if (is_rgb or how != "as is") else shape
    if len(spatial) != 2:
        raise stack
    return spatial


def _checked_truth(truth, hw: tuple[int, int]) -> np.ndarray:
    """The ground truth as RGB in [0, 1] (its value range read from its dtype and values), checked
    against the target's size ``hw``."""
    t = np.asarray(truth)
    if t.ndim != 3 or t.shape[-1] not in (3, 4) or t.shape[:2] != tuple(hw):
        raise ValueError(f"the ground truth {t.shape} must be an RGB image of the target's size {tuple(hw)}")
    return metrics.unit_rgb(t[..., :3], "the ground truth")


def _score(name: str, rgb: np.ndarray, reference, truth, seconds: float) -> dict:
    row = {"model": name, "HIS vs reference": his_to_references(rgb, reference) if reference is not None else np.nan,
           "colourfulness": metrics.colourfulness(rgb), "SSIM": np.nan, "PSNR dB": np.nan, "seconds": seconds}
    if truth is not None:
        row["SSIM"], row["PSNR dB"] = metrics.ssim(rgb, truth), metrics.psnr(rgb, truth)
    return row


def iter_compare(models, target, reference=None, histogram=None, truth=None, size: int | None = None,
                 should_cancel: Callable[[], bool] | None = None,
                 rgb: bool | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """For each model (name or loaded), yield ``(row, rgb)``. Histogram models get ``histogram`` (or the
    reference's histogram); exemplar models need the reference. The target must be one 2-D image
    (greyscale or RGB) and ``truth`` an RGB image of its size (uint8, uint16, float in [0, 1] or 0..255,
    read as :func:`metrics.unit_rgb` does); both are checked before any model runs. SSIM is NaN for images
    under 11 pixels a side."""
    hw = _image_shape(target, rgb)
    if truth is not None:
        truth = _checked_truth(truth, hw)
    for m in models:
        if should_cancel is not None and should_cancel():
            return
        model = load_model(m) if isinstance(m, (str, Path)) else m
        t0 = time.perf_counter()
        guide = {"histogram": histogram} if (model.kind == "histogram" and histogram is not None) else \
            {"reference": reference}
        res = colorize(model, target, size=size, return_attention=False, rgb=rgb, **guide)
        yield _score(model.name, res.rgb, reference, truth, time.perf_counter() - t0), res.rgb


def compare(models, target, reference=None, histogram=None, truth=None, size=None) -> tuple[list[dict], dict]:
    rows, images = [], {}
    for row, rgb in iter_compare(models, target, reference, histogram, truth, size):
        rows.append(row)
        images[row["model"]] = rgb
    return rows, images


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """The comparison table as CSV; the file appears under ``path`` only when complete (an existing one is
    replaced then, never left half-written)."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def sheet_layout(n: int, tile_shape: tuple[float, float], origin: tuple[float, float] = (0.0, 0.0),
                 gap: float | tuple[float, float] | None = None,
                 columns: int | None = None) -> list[tuple[float, float]]:
    """Top-left corners ``(y, x)`` of ``n`` tiles of ``tile_shape`` (height, width) laid out row by row from
    ``origin``: ``columns`` per row (default ``ceil(sqrt(n))``, at least 2) and ``gap`` between tiles, one
    number or (between rows, between columns); by default 10 % of the tile height (at least 20, room for a
    label above each tile) between rows and 20 between columns."""
    h, w = (float(v) for v in tile_shape)
    cols = max(1, int(columns)) if columns else max(2, int(np.ceil(np.sqrt(max(n, 1)))))
    gy, gx = (max(20.0, 0.1 * h), 20.0) if gap is None else np.broadcast_to(np.asarray(gap, float), (2,))
    return [(origin[0] + (k // cols) * (h + gy), origin[1] + (k % cols) * (w + gx)) for k in range(n)]
