"""Histogram-guided semantic-aware colourisation (paper B, Sec. 2).

``Y_ab = C(T_L, S(T_L, R_I))`` with ``R_I = [R_H, R_P]``: the 21 x 21 ab histogram
and the palette (the ab value of every bin).

* **Semantic-aware subnet S.** Branch 1: backbone features of the grey target at
  four levels -> one conv block each (two 3x3 convs + ReLU) -> resized to
  ``H/4 x W/4`` and summed -> 3 residual blocks -> ``F_T``. Branch 2: ``R_I`` ->
  a 64-channel 3x3 conv -> 3 residual blocks -> ``F_R`` (one feature per bin).
  Colour-semantic attention (Eq. 2): ``Phi_T``, ``Phi_R`` are the L2-normalised
  features; ``M = tau Phi_T Phi_R^T`` (a learned temperature ``tau``: cosine
  similarities alone are too flat for a softmax over 441 bins); ``F'_U(i) =
  sum_j softmax_j(M(i, j)) Phi_R(j)``, reshaped and linearly upsampled to ``F_U``.
* **Colourisation subnet C.** A U-Net with InstanceNorm on ``[T_L, F_U]`` predicting
  ab (tanh). It returns its pixel-to-bin attention ``(B, H/4, W/4, 21, 21)``.
* **Our histogram prior** (``HistogramConfig.prior``, the shipped default): ``log`` of each bin's
  mass joins Eq. 2's logits and the values also carry the palette, so the attention yields an
  expected colour per position; the U-Net sees it and predicts a change to it
  (:class:`ColourSemanticAttention`, docs/LIBRARY.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..color import NBINS, grey_rgb, palette
from .backbones import Backbone, build_backbone
from .configs import HISTOGRAM_CONFIGS, HistogramConfig

__all__ = ["HistogramConfig", "HistogramNet", "HISTOGRAM_CONFIGS", "ColourSemanticAttention",
           "colour_semantic_attention"]


#: the smallest bin mass the prior's logarithm sees (a bin of the 441 below it is as good as empty)
PRIOR_FLOOR = 1e-6


def colour_semantic_attention(f_t: torch.Tensor, phi_r: torch.Tensor, tau: torch.Tensor | float,
                              log_prior: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Paper B's Eq. 2: the semantic-aware colour features ``F_U``.

    Every target position's feature ``phi_T`` (``f_t``, ``(B, C, h, w)``, L2-normalised over C) is
    compared with every histogram bin's feature ``Phi_R`` (``(B, 441, C)``, normalised):
    ``M = softmax(tau * Phi_T Phi_R^T)`` over the bins, and ``F_U = M Phi_R``.

    ``log_prior`` (``(B, 441)``, our histogram prior; None in the paper): added to the logits, so
    that ``M(i, .)`` is the histogram's mass reweighted by semantic compatibility (a posterior over
    the bins), and the values also carry each bin's palette ab (``R_P``): the third result is then
    ``M R_P``, the expected colour of every position, ``(B, 2, h, w)`` (None without a prior).
    Returns ``F_U`` as ``(B, C, h, w)``, ``M`` as ``(B, h*w, 441)`` and that colour.
    """
    B, C, h, w = f_t.shape
    phi_t = F.normalize(f_t.flatten(2).transpose(1, 2), dim=-1)  # (B, hw, C)
    logits = tau * phi_t @ phi_r.transpose(1, 2)  # (B, hw, 441)
    if log_prior is not None:
        logits = logits + log_prior[:, None, :]
    attn = logits.softmax(-1)
    f_u = (attn @ phi_r).transpose(1, 2).reshape(B, C, h, w)
    if log_prior is None:
        return f_u, attn, None
    p_ab = palette(f_t.device, f_t.dtype).flatten(1)  # (2, 441)
    ab = (attn @ p_ab.t()).transpose(1, 2).reshape(B, 2, h, w)
    return f_u, attn, ab


def log_prior_of(hist: torch.Tensor) -> torch.Tensor:
    """The histogram prior's logits: the logarithm of each bin's share, ``(B, 441)``, floored at
    :data:`PRIOR_FLOOR` (``hist``: ``(B, 21, 21)``, any positive scale)."""
    m = hist.reshape(hist.shape[0], -1)
    return (m / m.sum(-1, keepdim=True).clamp_min(1e-12)).clamp_min(PRIOR_FLOOR).log()


class ColourSemanticAttention(nn.Module):
    """Paper B's Eq. 2 as a part of the network: target features against histogram-bin features.

    ``prior=False`` is the paper's; ``prior=True`` is our histogram prior (the given histogram in
    the logits, the bins' ab among the values; :func:`colour_semantic_attention`). The temperature
    ``tau`` is the network's learned parameter (``HistogramNet.log_tau``), passed in.
    """

    def __init__(self, prior: bool = False) -> None:
        super().__init__()
        self.prior = prior

    def forward(self, f_t: torch.Tensor, phi_r: torch.Tensor, tau: torch.Tensor | float,
                hist: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(F_U, M, expected colour or None)``; ``hist`` ``(1 or B, 21, 21)`` is needed with the prior."""
        log_prior = None
        if self.prior:
            if hist is None:
                raise ValueError("a histogram-prior model needs the histogram itself, not only its features")
            log_prior = log_prior_of(hist.float()).to(f_t.dtype)  # (normalised in float32: fp16 may overflow)
            if log_prior.shape[0] != f_t.shape[0]:
                log_prior = log_prior.expand(f_t.shape[0], -1)
        return colour_semantic_attention(f_t, phi_r, tau, log_prior)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return F.relu(x + self.body(x))


def _in_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv + InstanceNorm + ReLU (the U-Net's unit; InstanceNorm replaces BatchNorm)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Colourisation subnet C: encoder-decoder with skips and InstanceNorm."""

    def __init__(self, cin: int, width: int, depth: int, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        ws = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_in_block(cin, ws[0])] + [_in_block(ws[i], ws[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList(nn.ConvTranspose2d(ws[i + 1], ws[i], 2, stride=2) for i in reversed(range(depth)))
        self.dec = nn.ModuleList(_in_block(2 * ws[i], ws[i]) for i in reversed(range(depth)))
        if residual:  # a change to a given colour, zero at the start
            self.out = nn.Conv2d(ws[0], 2, 1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        else:
            self.out = nn.Sequential(nn.Conv2d(ws[0], 2, 1), nn.Tanh())

    def forward(self, x, base: torch.Tensor | None = None):
        """ab in [-1, 1]; ``base`` (residual U-Nets): the colour the output changes."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            s = skips.pop()
            x = up(x)
            if x.shape[-2:] != s.shape[-2:]:
                x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, s], 1))
        if self.residual:
            return (base + self.out(x)).clamp(-1.0, 1.0)
        return self.out(x)


class HistogramNet(nn.Module):
    """Paper B's network. ``forward(target_L, hist)`` -> normalised ab ``(B, 2, H, W)``.

    ``target_L``: ``L/50 - 1``, ``(B, 1, H, W)``; ``hist``: ``(B, 21, 21)`` summing to 1.
    """

    #: the name its checkpoints carry (``"architecture"`` in their metadata) and its config's class
    architecture = "histogram"
    config_class = HistogramConfig

    def __init__(self, config: HistogramConfig | None = None, pretrained_backbone: bool = True,
                 backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = cfg = config or HistogramConfig()
        cfg.validate()  # (types and ranges, before anything is built)
        self.backbone = backbone if backbone is not None else build_backbone(cfg.backbone, pretrained_backbone)
        spec = self.backbone.spec
        C = cfg.channels
        # four levels: taps 2..5 (VGG-19: relu2_1..relu5_1, next to the paper's relu2_2..relu5_2;
        # EfficientNet-Lite0: strides 4..32)
        self.levels = [1, 2, 3, 4]
        self.level_blocks = nn.ModuleList(_conv_block(spec.channels[l], C) for l in self.levels)
        self.target_res = nn.Sequential(*[ResidualBlock(C) for _ in range(3)])
        cin_hist = 3 if cfg.use_palette else 1
        self.hist_in = nn.Sequential(nn.Conv2d(cin_hist, C, 3, padding=1), nn.ReLU(inplace=True))
        self.hist_res = nn.Sequential(*[ResidualBlock(C) for _ in range(3)])
        # temperature: tau = e^2.3 ~ 10 at start; with the prior 1, so that the first attention is
        # close to the histogram itself (features of random layers are nearly equally similar)
        self.log_tau = nn.Parameter(torch.tensor(0.0 if cfg.prior else 2.3))
        self.attention = ColourSemanticAttention(prior=cfg.prior)  # Eq. 2 (no parameters of its own)
        self.fu_proj = nn.Conv2d(C, cfg.fu_channels, 1) if cfg.fu_channels else nn.Identity()
        extra = 2 if cfg.prior else 0  # with the prior the U-Net also sees the expected colour ...
        self.unet = UNet(1 + (cfg.fu_channels or C) + extra, cfg.unet_width, cfg.unet_depth,
                         residual=cfg.prior)  # ... and predicts a change to it, zero at the start

    @property
    def multiple(self) -> int:
        return max(self.backbone.spec.strides)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def encode_histogram(self, hist: torch.Tensor) -> torch.Tensor:
        """``R_I -> F_R``, returned as ``Phi_R`` ``(B, 441, C)`` (L2-normalised)."""
        h = hist.reshape(-1, 1, NBINS, NBINS)
        # scale the histogram so that a typical bin is O(1) for the convolutions
        x = h * (NBINS * NBINS)
        if self.config.use_palette:
            x = torch.cat([x, palette(h.device, h.dtype).expand(h.shape[0], -1, -1, -1)], 1)
        fr = self.hist_res(self.hist_in(x))
        return F.normalize(fr.flatten(2).transpose(1, 2), dim=-1)

    def semantic_features(self, target_L: torch.Tensor) -> torch.Tensor:
        """``F_T`` at ``H/4 x W/4``."""
        taps, _ = self.backbone(grey_rgb(target_L))
        H, W = target_L.shape[-2:]
        size = (max(1, H // 4), max(1, W // 4))
        x = 0
        for block, l in zip(self.level_blocks, self.levels):
            y = block(taps[l])
            x = x + F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.target_res(x)

    def forward(self, target_L: torch.Tensor, hist: torch.Tensor | None = None,
                hist_features: torch.Tensor | None = None, return_attention: bool = False):
        if hist_features is None:
            if hist is None:
                raise ValueError("a histogram model needs a histogram")
            hist_features = self.encode_histogram(hist)
        ft = self.semantic_features(target_L)
        B, C, h, w = ft.shape
        phi_r = hist_features.expand(B, -1, -1) if hist_features.shape[0] != B else hist_features
        f_u, attn, prior_ab = self.attention(ft, phi_r, self.log_tau.exp(), hist)
        size = target_L.shape[-2:]
        fu = F.interpolate(self.fu_proj(f_u), size=size, mode="bilinear", align_corners=False)
        if prior_ab is None:
            ab = self.unet(torch.cat([target_L, fu], 1))
        else:
            prior_ab = F.interpolate(prior_ab, size=size, mode="bilinear", align_corners=False)
            ab = self.unet(torch.cat([target_L, fu, prior_ab], 1), base=prior_ab)
        if return_attention:
            return ab, attn.reshape(B, h, w, NBINS, NBINS)
        return ab
