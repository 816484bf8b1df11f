"""Tune how a trained exemplar network makes its output, without training: the guided filter
(config ``refine``, ``refine_eps``) and the prior's softmax temperature.

The temperature was learned with losses on P1-P4 alone; with the guided filter smoothing the
warp's noise within the target's edges, a sharper softmax (more of each match's own colour) pays.
Both are chosen on *training* views (``--grid``), never on the validation split that
``training.evaluate`` reports::

    python -m training.tune_output runs/N.safetensors --grid --data data/manifest.csv
    python -m training.tune_output runs/N.safetensors --refine 5 --refine-eps 1e-3 \\
        --temperature-scale 0.3 --out runs/O.safetensors

The output is a new checkpoint (the input is never written over): the same weights, the
temperature scaled, the filter in its config, and what was done in its metadata.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import torch

if not __package__:
    raise SystemExit("run it from the repository root as a module: python -m training.tune_output ...")

GRID_REFINE = (0, 3, 5, 7)
GRID_TEMPERATURE = (1.0, 0.5, 0.3, 0.2)


def tuned(network, refine: int, refine_eps: float, temperature_scale: float):
    """``network`` (an exemplar network) with the filter configured and, with the warp prior, its
    temperature scaled, in place; the config is validated before anything changes."""
    from napari_colorize.models.configs import ExemplarConfig

    if temperature_scale != 1 and not network.prior:
        raise ValueError("the temperature belongs to the warp prior: this network has none (scale 1 only)")
    if not 0.01 <= temperature_scale <= 100:
        raise ValueError("temperature_scale must be between 0.01 and 100")
    cfg = ExemplarConfig.from_dict({**network.config.to_dict(), "refine": refine, "refine_eps": refine_eps})
    network.config = cfg
    if network.prior:
        with torch.no_grad():
            network.log_tau += math.log(temperature_scale)
    return network


def grid(checkpoint: str, data: str, limit: int, eps: float) -> None:
    """Print every (window, temperature scale) on the first ``limit`` training views, both protocols."""
    import napari_colorize as nc

    from .evaluate import ViewList, eval_images, evaluate, references

    views = eval_images(data, "train")
    images = ViewList(views[:limit])
    images.sources = views.sources[:limit]
    refs = {p: references(images, p) for p in ("self", "other")}
    print(f"{len(images)} training views at 256 px; eps {eps}\n")
    print("| window | temperature x | self HIS gt | self SSIM | self PSNR | other HIS ref | other SSIM | other PSNR |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, t in itertools.product(GRID_REFINE, GRID_TEMPERATURE):
        model = nc.load_model(checkpoint, device="cpu")
        tuned(model.network, k, eps, t)
        s, o = (evaluate([model], images, p, "exemplar", None, refs[p])[0] for p in ("self", "other"))
        print(f"| {k} | {t} | {s['his_gt']:.4f} | {s['ssim']:.4f} | {s['psnr']:.2f} | {o['his_ref']:.4f} | "
              f"{o['ssim']:.4f} | {o['psnr']:.2f} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.tune_output", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="an exemplar network's .safetensors, as training exported it (not one already tuned)")
    ap.add_argument("--grid", action="store_true", help="measure the grid on training views; write nothing")
    ap.add_argument("--data", default="data/manifest.csv", help="for --grid: manifest.csv (its train split)")
    ap.add_argument("--limit", type=int, default=80, help="for --grid: the first N training views")
    ap.add_argument("--refine", type=int, default=5, help="guided filter window (odd), 0: off")
    ap.add_argument("--refine-eps", type=float, default=1e-3)
    ap.add_argument("--temperature-scale", type=float, default=1.0, help="multiplies the learned temperature")
    ap.add_argument("--out", type=Path, help="the new checkpoint (.safetensors); never the input")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out checkpoint and its .json (refused otherwise)")
    ap.add_argument("--name", help="the model's name in the new checkpoint (default: the input's)")
    ap.add_argument("--lineage", help="replaces the metadata's training.init_from: the whole chain of runs")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    # user errors are argparse errors (usage, one line, exit status 2), never tracebacks
    for flag, ok, what in (("--refine", a.refine == 0 or (a.refine >= 3 and a.refine % 2 == 1 and a.refine <= 31),
                            "an odd window from 3 to 31 pixels, or 0 (off)"),
                           ("--refine-eps", 1e-6 <= a.refine_eps <= 1, "a number from 1e-6 to 1"),
                           ("--temperature-scale", math.isfinite(a.temperature_scale) and
                            0.01 <= a.temperature_scale <= 100, "a number from 0.01 to 100"),
                           ("--limit", a.limit >= 1, "at least 1"), ("--threads", a.threads >= 1, "at least 1")):
        if not ok:
            ap.error(f"{flag} {getattr(a, flag[2:].replace('-', '_'))}: must be {what}")
    if not Path(a.checkpoint).is_file():
        ap.error(f"{a.checkpoint}: no such checkpoint file" if not Path(a.checkpoint).exists() else
                 f"{a.checkpoint}: is a folder, not a checkpoint file")
    if a.grid and not Path(a.data).is_file():
        ap.error(f"--data {a.data}: no such file (the manifest.csv of training.prepare_data)")
    torch.set_num_threads(a.threads)
    try:
        return _tune(ap, a)
    except (ValueError, OSError) as e:  # (CheckpointError, a config refused, a full disk: DiskFullError)
        ap.error(str(e))


def _tune(ap, a) -> int:
    if a.grid:
        grid(a.checkpoint, a.data, a.limit, a.refine_eps)
        return 0
    if a.out is None:
        ap.error("--out is required (or --grid)")
    from napari_colorize.models.registry import (build_network, load_checkpoint, load_into,
                                                 refuse_existing_checkpoint, save_checkpoint)

    src = Path(a.checkpoint).resolve()
    if a.out.with_suffix(".safetensors").resolve() == src:
        ap.error("--out must not be the input checkpoint")
    if not a.overwrite:
        try:  # (before any work: the checkpoint, and its .json, which may be a user's file of that name)
            refuse_existing_checkpoint(a.out, "--overwrite")
        except FileExistsError as e:
            ap.error(str(e))
    sd, meta = load_checkpoint(src)
    if meta.get("architecture") != "exemplar":
        ap.error(f"{src.name} is not an exemplar network")
    if "tuned" in meta:  # its temperature is already scaled: a second scale would compound unseen
        ap.error(f"{src.name} was already tuned (from {meta['tuned'].get('from')!r}); tune the checkpoint it came from")
    net = build_network("exemplar", meta["config"], pretrained_backbone=False)
    load_into(net, sd, meta, str(src))
    def temperature():
        return float(net.log_tau.detach().exp()) if net.prior else None

    before = temperature()
    tuned(net, a.refine, a.refine_eps, a.temperature_scale)
    meta = {k: v for k, v in meta.items() if k != "config"}
    if a.name:
        meta["name"] = a.name
    if a.lineage:
        meta["training"] = {**meta.get("training", {}), "init_from": a.lineage}
    meta["tuned"] = {"from": src.name, "refine": a.refine, "refine_eps": a.refine_eps,
                     "temperature": [before, temperature()]}
    path = save_checkpoint(net, a.out, meta, overwrite=a.overwrite)
    print(f"wrote {path}: refine {a.refine} (eps {a.refine_eps}), temperature {before} -> {temperature()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
