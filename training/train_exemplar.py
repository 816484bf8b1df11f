"""Train paper A's exemplar network (and its Table 1 ablations).

    python -m training.prepare_data data/                        # once: the corpus
    python -m training.train_exemplar --data data/manifest.csv --out runs/exemplar
    python -m training.train_exemplar ... --ablation standard    # axial -> standard attention
    #   ablations: standard | single | no-adv | no-pixel | no-hist
    python -m training.train_exemplar --config paper --data /imagenet/train --out runs/paper   # paper A
    torchrun --nproc_per_node 4 -m training.train_exemplar ...   # data parallel (DDP)

Configs: ``cpu`` (the shipped default: EfficientNet-Lite0, 160 px crops, batch 8, Adam 2e-4 with
cosine decay) and ``paper`` (VGG-19, h=256, 8 heads, 224 px, Adam 1e-5, batch 12). Runs resume from
``OUT/last.pt`` (atomic checkpoints every ``--ckpt-every`` steps); ``--export FILE`` writes the fp16
safetensors the library loads.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from napari_colorize.models.exemplar import EXEMPLAR_CONFIGS, ExemplarNet, migrate_state_dict

if not __package__:  # run as a file: the package-relative imports below need the package
    raise SystemExit("run it from the repository root as a module: python -m training.train_exemplar ...")

from .data import Corpus, load_items, rotate_hue, self_reference
from .engine import (apply_config, init_from, lr_at, save_grid, seed_everything, setup_distributed, to_lab_batch,
                     train_loop, training_parser)
from .losses import (ClassConsistency, ExemplarLossWeights, PatchDiscriminator, discriminator_loss,
                     exemplar_losses, pool_to, srgb)
from .pairs import cache_dir, load_or_build_other_source, load_or_build_pairs, sample_reference

CONFIGS = {
    "cpu": dict(arch="cpu", size=160, batch=8, lr=2e-4, lr_d=2e-4, steps=8000, cosine=True, self_ref=0.3),
    # the recipe of the shipped default since issue 10: the warp prior, warm-started from the
    # earlier CPU network, hue-rotated pairs, more and stronger self-references, less smoothing
    "cpu-warp": dict(arch="cpu-warp", size=160, batch=8, lr=1e-4, lr_d=1e-4, steps=4000, cosine=True,
                     self_ref=0.5, strong_self_ref=True, hue_aug=0.5, w_tv=5.0),
    # the same with the prior matched grey to grey (the reference's keys from its lightness)
    "cpu-warp-grey": dict(arch="cpu-warp-grey-adapt", size=160, batch=8, lr=5e-5, lr_d=1e-4, steps=1200, cosine=True,
                          self_ref=0.5, strong_self_ref=True, hue_aug=0.5, w_tv=5.0, w_gate=5.0),
    "paper": dict(arch="paper", size=224, batch=12, lr=1e-5, lr_d=1e-5, steps=560_000, cosine=False, self_ref=0.3),
}
ABLATIONS = {
    "none": ({}, {}),
    "standard": ({"attention": "standard"}, {}),
    "single": ({"modules_per_level": 1}, {}),
    "no-adv": ({}, {"adv": 0.0}),
    "no-pixel": ({}, {"pixel": 0.0}),
    "no-hist": ({}, {"hist": 0.0}),
}
LOSS_NAMES = tuple(f.name for f in dataclasses.fields(ExemplarLossWeights))  # pixel, hist, tv, adv, gate, head
LOG_FIELDS = ["step", "lr", "total", *LOSS_NAMES, "d", "val_pixel", "val_hist", "sec_per_step"]


class Discriminators(nn.Module):
    """One patch discriminator per output scale P1..P4."""

    def __init__(self, n: int = 4) -> None:
        super().__init__()
        self.d = nn.ModuleList(PatchDiscriminator() for _ in range(n))

    def __getitem__(self, i):
        return self.d[i]

    def forward(self, L, preds, truth):
        """LS-GAN discriminator loss over scales: real = ground truth, fake = (detached) predictions."""
        loss = 0.0
        for d, p in zip(self.d, preds):
            both = d(torch.cat([L, L]), torch.cat([pool_to(truth, p.shape), p.detach()]))
            real, fake = both.chunk(2)
            loss = loss + discriminator_loss(real, fake)
        return loss


def make_batch(corpus, pairs, step: int, rank: int, batch: int, size: int, self_ref: float, seed: int, device,
               hue: float = 0.0, strong: bool = False, other: float = 0.0, other_pairs: dict | None = None,
               balance: float = 0.0):
    """One batch drawn from ``(seed, step, rank)``. ``hue``: the share of pairs whose target and
    reference are hue-rotated together; ``strong``: stronger self-reference distortions; ``other``: the
    share whose reference is one of the most similar images of *another source series*
    (``other_pairs``, :func:`~training.pairs.build_other_source`) - the references users have. Returns
    ``(L, ab, ref_rgb, ref_ab, targets, refs)``; the batch's ``other_mask`` (bool per pair) is
    ``make_batch.last_other`` (with ``other=0``: all False, and the draws are those of before);
    ``balance``: how the targets are drawn (:meth:`~training.data.Corpus.sample`)."""
    rng = np.random.default_rng([seed, step, rank])
    targets, refs, mask = [], [], []
    for _ in range(batch):
        i = corpus.sample(rng, balance)
        t = corpus.render(i, size, rng)
        is_other = False
        if rng.random() < self_ref:
            r = self_reference(t, rng, strong=strong)
        elif other and other_pairs and other_pairs["other_top"][i] and rng.random() < other / (1 - self_ref):
            cand = other_pairs["other_top"][i]
            r = corpus.render(int(cand[int(rng.integers(len(cand)))]), size, rng)
            is_other = True
        else:
            j, _ = sample_reference(pairs, i, rng)
            r = corpus.render(j, size, rng)
        if hue and rng.random() < hue:
            t, r = rotate_hue([t, r], float(rng.uniform(0.3, 2 * np.pi - 0.3)))
        targets.append(t)
        refs.append(r)
        mask.append(is_other)
    L, ab, _ = to_lab_batch(targets, device)
    _, ref_ab, ref_rgb = to_lab_batch(refs, device)
    make_batch.last_other = torch.tensor(mask, device=device)
    return L, ab, ref_rgb, ref_ab, targets, refs


def histogram_target(choice: str, truth_ab: torch.Tensor, ref_ab: torch.Tensor,
                     other: torch.Tensor | None = None, other_choice: str = "truth") -> torch.Tensor:
    """The ab whose histogram the histogram loss holds the output to: ``--hist-target`` 'reference'
    (paper A) or 'truth' (paper B's choice; on a pair whose reference holds other colours it does not pull
    the output towards them). ``other`` (bool per pair): pairs whose reference is from another source
    series take ``other_choice``'s: the truth's by default (the output should not copy an unrelated
    reference's palette), or the reference's (``--other-hist reference``: follow its palette, the pixel and
    SSIM losses holding *where* each colour goes to the truth)."""
    if choice not in ("reference", "truth") or other_choice not in ("reference", "truth"):
        raise ValueError(f"histogram targets are 'reference' or 'truth', not {choice!r} / {other_choice!r}")
    target = truth_ab if choice == "truth" else ref_ab
    if other is not None and bool(other.any()) and choice != other_choice:  # (make_batch: both at one size)
        target = torch.where(other[:, None, None, None], truth_ab if other_choice == "truth" else ref_ab, target)
    return target


def parse(argv=None):
    ap = training_parser(__doc__, CONFIGS)
    ap.add_argument("--ablation", choices=sorted(ABLATIONS), default="none")
    ap.add_argument("--lr-d", type=float, default=None)
    ap.add_argument("--self-ref", type=float, default=None, help="share of self-references (distorted copies)")
    ap.add_argument("--strong-self-ref", action="store_true", default=None,
                    help="stronger self-reference distortions (rotation, shear, aspect)")
    ap.add_argument("--hue-aug", type=float, default=None,
                    help="share of pairs hue-rotated together (target and reference, one angle)")
    ap.add_argument("--lr-gain", type=float, default=20.0,
                    help="the chroma gains' learning rate as a multiple of --lr (architectures with prior_gain)")
    ap.add_argument("--other-source", type=float, default=0.0, metavar="SHARE",
                    help="share of pairs whose reference is a similar image of another source series (the "
                         "references users have; their histogram loss is against the truth)")
    ap.add_argument("--hist-target", choices=("reference", "truth"), default="reference",
                    help="the histogram loss against the reference's ab histogram (paper A) or the truth's (ours)")
    ap.add_argument("--other-hist", choices=("reference", "truth"), default="truth",
                    help="the histogram loss of --other-source pairs against the truth's histogram (default) or "
                         "their reference's (train_histogram's --other-hist defaults to reference)")
    ap.add_argument("--arch", choices=sorted(EXEMPLAR_CONFIGS), default=None, help="architecture (default: the config's)")
    ap.add_argument("--prior-cells", type=int, default=None, metavar="K",
                    help="match the warp coarse to fine among the K most similar reference cells (the config's "
                         "prior_cells; the shipped exemplar runs with 16); default: the architecture's (dense)")
    for k in LOSS_NAMES:
        ap.add_argument(f"--w-{k}", type=float, default=None, help=f"weight of the {k} loss (default: the recipe's)")
    return apply_config(ap.parse_args(argv), CONFIGS)


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed()
    seed_everything(args.seed)
    arch_over, loss_over = ABLATIONS[args.ablation]
    cfg = EXEMPLAR_CONFIGS[args.arch]
    cells = {} if args.prior_cells is None else {"prior_cells": args.prior_cells}
    cfg = type(cfg).from_dict({**cfg.to_dict(), **arch_over, **cells, "train_size": args.size})
    recipe = {k: getattr(args, f"w_{k}") for k in LOSS_NAMES if getattr(args, f"w_{k}", None) is not None}
    weights = ExemplarLossWeights(**{**recipe, **loss_over})

    train = Corpus(load_items(args.data, "train"))
    val = Corpus(load_items(args.data, "val"))
    data_dir = cache_dir(args.data, args.out)
    # classes: the sub-folders of an image folder; for our manifest (whose sources are not semantic
    # classes) k-means clusters of the global features
    labels = None if str(args.data).endswith(".csv") else [it.label for it in train.items]
    pairs = load_or_build_pairs(train, data_dir / "pairs_train.json", labels)
    if not 0.0 <= args.other_source <= 1.0 - args.self_ref:
        raise SystemExit(f"--other-source {args.other_source}: a share between 0 and 1 - --self-ref "
                         f"({1.0 - args.self_ref:g})")
    other_pairs = load_or_build_other_source(train, data_dir / "pairs_train_other.json") \
        if args.other_source else None

    classes = ClassConsistency().to(device) if weights.cls else None  # (before the seed: timm draws its init)
    seed_everything(args.seed)  # after the (possibly cached) pairs: initial weights depend on the seed only
    model = ExemplarNet(cfg).to(device)
    disc = Discriminators().to(device) if weights.adv else None
    # the chroma gains (prior_gain) start at zero and must travel further than a warm-started network's
    # other weights: their own learning rate, --lr-gain times the schedule's
    gains = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("decoder.gains.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("decoder.gains.")]
    groups = [{"params": rest, "lr_scale": 1.0}] + ([{"params": gains, "lr_scale": args.lr_gain}] if gains else [])
    opt_g = torch.optim.Adam(groups, lr=args.lr, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr_d, betas=(0.5, 0.999)) if disc else None
    hue, strong = float(args.hue_aug or 0.0), bool(args.strong_self_ref)
    val_batch = []  # (made at the first validation, on rank 0)

    def step(k: int, nets: dict) -> dict:
        lr = lr_at(k, args)
        for g in opt_g.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        L, ab, ref_rgb, ref_ab, _, _ = make_batch(train, pairs, k, rank, args.batch, args.size, args.self_ref,
                                                  args.seed, device, hue, strong, args.other_source, other_pairs,
                                                  args.balance_series)
        other = make_batch.last_other
        preds, gates, heads = nets["model"](L, ref_rgb, return_gates=True)
        d_loss = torch.tensor(0.0)
        if disc is not None:  # discriminator step (LS-GAN), on detached predictions
            opt_d.zero_grad(set_to_none=True)
            d_loss = nets["disc"](L, preds, ab)
            d_loss.backward()
            opt_d.step()
            for p in disc.parameters():
                p.requires_grad_(False)
        terms = exemplar_losses(preds, ab, histogram_target(args.hist_target, ab, ref_ab, other, args.other_hist), L,
                                disc.d if disc is not None else None, weights, gates, heads, classes)
        opt_g.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt_g.step()
        if disc is not None:
            for p in disc.parameters():
                p.requires_grad_(True)
        return {"lr": lr, "d": float(d_loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def check(png: Path) -> dict:
        if not val_batch:
            val_batch.append(make_batch(val, load_or_build_pairs(val, data_dir / "pairs_val.json"), 0, 0, 4,
                                        args.size, 0.0, 12345, device))
        return validate(model, val_batch[0], png)

    train_loop(args, model, {"g": opt_g, "d": opt_d}, step, check, rank=rank, world=world, modules={"disc": disc},
               log_fields=LOG_FIELDS, curves=["total", "pixel", "hist", "tv", "adv", "d", "val_hist"],
               desc=f"exemplar[{args.ablation}]", architecture="exemplar",
               training={"script": "training.train_exemplar", "config": args.config, "ablation": args.ablation,
                         **({"lr_gain": args.lr_gain} if gains else {}),
                         "self_ref": args.self_ref, "strong_self_ref": strong, "hue_aug": hue,
                         **({"other_source": args.other_source, "other_hist": args.other_hist} if args.other_source else {}),
                         **({"balance_series": args.balance_series} if args.balance_series else {}),
                         "hist_target": args.hist_target, "init_from": str(args.init_from) if args.init_from else None, "losses": vars(weights)},
               init=(lambda: init_from(model, args.init_from, keep_temperature=args.keep_temperature))
               if args.init_from else None, migrate=migrate_state_dict)
    return 0


@torch.no_grad()
def validate(model, batch, png: Path) -> dict:
    from .losses import histogram_loss, pixel_loss

    L, ab, ref_rgb, ref_ab, targets, refs = batch
    model.eval()
    preds = model(L, ref_rgb)
    model.train()
    p1 = torch.nn.functional.interpolate(preds[0], size=L.shape[-2:], mode="bilinear", align_corners=False)
    rgb = srgb(L, p1).permute(0, 2, 3, 1).cpu().numpy()
    grey = ((L[:, 0] + 1) / 2).cpu().numpy()
    rows = [[grey[i], refs[i], rgb[i], targets[i]] for i in range(len(targets))]
    save_grid(rows, png, ["target", "reference", "output (P1)", "truth"])
    return {"val_pixel": float(pixel_loss(preds[0], ab)), "val_hist": float(histogram_loss(preds[0], ref_ab))}


if __name__ == "__main__":
    sys.exit(main())
