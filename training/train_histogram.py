"""Train paper B's histogram-guided network.

    python -m training.train_histogram --data data/manifest.csv --out runs/histogram
    python -m training.train_histogram --config paper --data /imagenet/train --out runs/histogram-paper
    torchrun --nproc_per_node 4 -m training.train_histogram ...

As in paper B, the input histogram R_H is the ground truth's own ab histogram during training
(at test time the user gives any histogram). Loss: Huber (delta 0.01) + Sobel-gradient Huber +
10 x histogram Huber. ``--other-source SHARE``: that share of a batch's input histograms is instead a
similar image's of *another source series* (:func:`~training.pairs.build_other_source`, the references
users have, as ``ExemplarConfig.histogram_mix`` gives it one); the pixel and gradient losses still hold
the output to the truth and the histogram loss to the input histogram (``--other-hist reference``, the
default: follow the reference's palette) or to the truth's (``truth``). Configs: ``cpu``
(EfficientNet-Lite0, F_U projected to 16 channels, U-Net width 16, 128 px, batch 8, Adam 2e-4 with cosine decay) and ``paper`` (VGG-19, U-Net width 64, Adam 1e-4: 128 px, then 256 px
with the learning rate decaying by 0.1 per epoch - given here as steps).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from napari_colorize.color import soft_histogram
from napari_colorize.models.histogram import HISTOGRAM_CONFIGS, HistogramNet

if not __package__:  # run as a file: the package-relative imports below need the package
    raise SystemExit("run it from the repository root as a module: python -m training.train_histogram ...")

from .data import Corpus, load_items
from .engine import (apply_config, init_from, lr_at, save_grid, seed_everything, setup_distributed, to_lab_batch,
                     train_loop, training_parser)
from .losses import ClassConsistency, HistogramLossWeights, histogram_model_losses, srgb
from .pairs import cache_dir, load_or_build_other_source

CONFIGS = {
    "cpu": dict(arch="cpu", size=128, batch=8, lr=2e-4, steps=3000, cosine=True, phases=None),
    # our histogram prior (HistogramConfig.prior): the same schedule; warm-started from the earlier
    # network with --init-from (its U-Net's first convolution widened for the expected colour)
    "cpu-prior": dict(arch="cpu-prior", size=128, batch=8, lr=2e-4, steps=3000, cosine=True, phases=None),
    # paper B: 128 px at lr 1e-4, then 256 px for 3 epochs with lr x0.1 per epoch (epochs of 10k images here)
    "paper": dict(arch="paper", size=128, batch=16, lr=1e-4, steps=420_000, cosine=False,
                  phases=[(400_000, 128, 1.0), (406_250, 256, 1.0), (412_500, 256, 0.1), (420_000, 256, 0.01)]),
}
LOG_FIELDS = ["step", "lr", "total", "gt", "grad", "hist", "cls", "val_gt", "val_hist", "sec_per_step"]


def phase_at(step: int, args) -> tuple[int, float]:
    """(crop size, lr factor) at ``step``."""
    for end, size, factor in args.phases or []:
        if step < end:
            return size, factor
    return args.size, 1.0


def make_batch(corpus, step: int, rank: int, batch: int, size: int, seed: int, device, balance: float = 0.0,
               other: float = 0.0, other_pairs: dict | None = None, other_hist: str = "reference"):
    """One batch drawn from ``(seed, step, rank)``: ``(L, ab, input histogram, histogram-loss target, images)``;
    ``balance``: :meth:`~training.data.Corpus.sample`. ``other``: the share of items whose input histogram is a
    similar image's of another source series (``other_pairs``); their histogram-loss target is that histogram
    (``other_hist`` 'reference') or the truth's ('truth'). With ``other=0`` the draws are those of before."""
    if other_hist not in ("reference", "truth"):
        raise ValueError(f"other_hist is 'reference' or 'truth', not {other_hist!r}")
    rng = np.random.default_rng([seed, step, rank])
    imgs, refs = [], []
    for _ in range(batch):
        i = corpus.sample(rng, balance)
        imgs.append(corpus.render(i, size, rng))
        cand = other_pairs["other_top"][i] if other and other_pairs else []
        refs.append(corpus.render(int(cand[int(rng.integers(len(cand)))]), size, rng)
                    if cand and rng.random() < other else None)
    L, ab, _ = to_lab_batch(imgs, device)
    own = soft_histogram(ab).detach()
    if not any(r is not None for r in refs):
        return L, ab, own, own, imgs
    picked = [j for j, r in enumerate(refs) if r is not None]
    _, ref_ab, _ = to_lab_batch([refs[j] for j in picked], device)
    given = own.clone()
    given[picked] = soft_histogram(ref_ab).detach()
    return L, ab, given, (given if other_hist == "reference" else own), imgs


def parse(argv=None):
    ap = training_parser(__doc__, CONFIGS)
    ap.add_argument("--other-source", type=float, default=0.0, metavar="SHARE",
                    help="share of items whose input histogram is a similar image's of another source series")
    ap.add_argument("--other-hist", choices=["reference", "truth"], default="reference",
                    help="the histogram loss of --other-source items against their input histogram (default: "
                         "follow the related photo's palette) or the truth's (train_exemplar's --other-hist "
                         "defaults to truth)")
    ap.add_argument("--w-cls", type=float, default=0.0, metavar="W",
                    help="weight of the class loss: EfficientNet-Lite0's class probabilities on the output against "
                         "those on the truth (off by default; train_exemplar's --w-cls)")
    args = apply_config(ap.parse_args(argv), CONFIGS)
    if not 0.0 <= args.other_source <= 1.0:
        ap.error(f"--other-source {args.other_source}: a share between 0 and 1")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed()
    cfg = HISTOGRAM_CONFIGS[args.arch]
    weights = HistogramLossWeights(cls=args.w_cls)
    classes = ClassConsistency().to(device) if weights.cls else None
    train = Corpus(load_items(args.data, "train"))
    val = Corpus(load_items(args.data, "val"))
    other_pairs = load_or_build_other_source(train, cache_dir(args.data, args.out) / "pairs_train_other.json") \
        if args.other_source else None
    seed_everything(args.seed)
    model = HistogramNet(cfg).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    val_batch = []  # (made at the first validation, on rank 0)

    def step(k: int, nets: dict) -> dict:
        size, factor = phase_at(k, args)
        lr = lr_at(k, args) * factor
        for g in opt.param_groups:
            g["lr"] = lr
        L, ab, hist, target, _ = make_batch(train, k, rank, args.batch, size, args.seed, device, args.balance_series,
                                            args.other_source, other_pairs, args.other_hist)
        terms = histogram_model_losses(nets["model"](L, hist), ab, target, weights, L, classes)
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
                         "balance_series": args.balance_series,
                         **({"other_source": args.other_source, "other_hist": args.other_hist}
                            if args.other_source else {})},
               init=(lambda: init_from(model, args.init_from, keep_temperature=args.keep_temperature, widen=True))
               if args.init_from else None)
    return 0


@torch.no_grad()
def validate(model, batch, png: Path, weights) -> dict:
    L, ab, hist, _, imgs = batch
    model.eval()
    pred = model(L, hist)
    model.train()
    terms = histogram_model_losses(pred, ab, hist, dataclasses.replace(weights, cls=0.0))
    rgb = srgb(L, pred).permute(0, 2, 3, 1).cpu().numpy()
    grey = ((L[:, 0] + 1) / 2).cpu().numpy()
    save_grid([[grey[i], rgb[i], imgs[i]] for i in range(len(imgs))], png, ["target", "output", "truth"])
    return {"val_gt": float(terms["gt"]), "val_hist": float(terms["hist"])}


if __name__ == "__main__":
    sys.exit(main())
