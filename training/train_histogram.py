"""Train paper B's histogram-guided network.

    python -m training.train_histogram --data data/manifest.csv --out runs/histogram
    python -m training.train_histogram --config paper --data /imagenet/train --out runs/histogram-paper
    torchrun --nproc_per_node 4 -m training.train_histogram ...

As in paper B, the input histogram R_H is the ground truth's own ab histogram during training
(at test time the user gives any histogram). Loss: Huber (delta 0.01) + Sobel-gradient Huber +
10 x histogram Huber. Configs: ``cpu`` (EfficientNet-Lite0, F_U projected to 16 channels, U-Net width 16, 128 px, batch 8,
Adam 2e-4 with cosine decay) and ``paper`` (VGG-19, U-Net width 64, Adam 1e-4: 128 px, then 256 px
with the learning rate decaying by 0.1 per epoch - given here as steps).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from napari_colorize.color import denormalize_lab, lab_to_rgb, soft_histogram
from napari_colorize.models.histogram import HISTOGRAM_CONFIGS, HistogramNet

if not __package__:  # run as a file: the package-relative imports below need the package
    raise SystemExit("run it from the repository root as a module: python -m training.train_histogram ...")

from .data import Corpus, load_items
from .engine import (apply_config, init_from, lr_at, save_grid, seed_everything, setup_distributed, to_lab_batch,
                     train_loop, training_parser)
from .losses import HistogramLossWeights, histogram_model_losses

CONFIGS = {
    "cpu": dict(arch="cpu", size=128, batch=8, lr=2e-4, steps=3000, cosine=True, phases=None),
    # our histogram prior (HistogramConfig.prior): the same schedule; warm-started from the earlier
    # network with --init-from (its U-Net's first convolution widened for the expected colour)
    "cpu-prior": dict(arch="cpu-prior", size=128, batch=8, lr=2e-4, steps=3000, cosine=True, phases=None),
    # paper B: 128 px at lr 1e-4, then 256 px for 3 epochs with lr x0.1 per epoch (epochs of 10k images here)
    "paper": dict(arch="paper", size=128, batch=16, lr=1e-4, steps=420_000, cosine=False,
                  phases=[(400_000, 128, 1.0), (406_250, 256, 1.0), (412_500, 256, 0.1), (420_000, 256, 0.01)]),
}
LOG_FIELDS = ["step", "lr", "total", "gt", "grad", "hist", "val_gt", "val_hist", "sec_per_step"]


def phase_at(step: int, args) -> tuple[int, float]:
    """(crop size, lr factor) at ``step``."""
    for end, size, factor in args.phases or []:
        if step < end:
            return size, factor
    return args.size, 1.0


def make_batch(corpus, step: int, rank: int, batch: int, size: int, seed: int, device, balance: float = 0.0):
    """One batch drawn from ``(seed, step, rank)``; ``balance``: :meth:`~training.data.Corpus.sample`."""
    rng = np.random.default_rng([seed, step, rank])
    imgs = [corpus.render(corpus.sample(rng, balance), size, rng) for _ in range(batch)]
    L, ab, _ = to_lab_batch(imgs, device)
    return L, ab, soft_histogram(ab).detach(), imgs


def parse(argv=None):
    return apply_config(training_parser(__doc__, CONFIGS).parse_args(argv), CONFIGS)


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed()
    cfg = HISTOGRAM_CONFIGS[args.arch]
    weights = HistogramLossWeights()
    train = Corpus(load_items(args.data, "train"))
    val = Corpus(load_items(args.data, "val"))
    seed_everything(args.seed)
    model = HistogramNet(cfg).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    val_batch = []  # (made at the first validation, on rank 0)

    def step(k: int, nets: dict) -> dict:
        size, factor = phase_at(k, args)
        lr = lr_at(k, args) * factor
        for g in opt.param_groups:
            g["lr"] = lr
        L, ab, hist, _ = make_batch(train, k, rank, args.batch, size, args.seed, device, args.balance_series)
        terms = histogram_model_losses(nets["model"](L, hist), ab, hist, weights)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        return {"lr": lr, **{k: float(v.detach()) for k, v in terms.items()}}

    def check(png: Path) -> dict:
        if not val_batch:
            val_batch.append(make_batch(val, 0, 0, 4, args.size, 12345, device))
        return validate(model, val_batch[0], png, weights)

    train_loop(args, model, {"main": opt}, step, check, rank=rank, world=world, log_fields=LOG_FIELDS,
               curves=["total", "gt", "grad", "hist", "val_gt"], desc="histogram", architecture="histogram",
               training={"script": "training.train_histogram", "config": args.config,
                         "init_from": str(args.init_from) if args.init_from else None, "losses": vars(weights),
                         "balance_series": args.balance_series},
               init=(lambda: init_from(model, args.init_from, keep_temperature=args.keep_temperature, widen=True))
               if args.init_from else None)
    return 0


@torch.no_grad()
def validate(model, batch, png: Path, weights) -> dict:
    L, ab, hist, imgs = batch
    model.eval()
    pred = model(L, hist)
    model.train()
    terms = histogram_model_losses(pred, ab, hist, weights)
    rgb = lab_to_rgb(denormalize_lab(torch.cat([L, pred], 1))).permute(0, 2, 3, 1).cpu().numpy()
    grey = ((L[:, 0] + 1) / 2).cpu().numpy()
    save_grid([[grey[i], rgb[i], imgs[i]] for i in range(len(imgs))], png, ["target", "output", "truth"])
    return {"val_gt": float(terms["gt"]), "val_hist": float(terms["hist"])}


if __name__ == "__main__":
    sys.exit(main())
