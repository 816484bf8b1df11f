"""The exemplar colourisation network of paper A (Sec. 3.1-3.2).

Four parts, named as in the paper:

1. **Backbone** (frozen, pretrained): taps ``F^1..F^5`` and the bottleneck ``F^B`` of
   the grey target (tripled L) and the colour reference.
2. **Projections**: 1x1 convolution + ReLU of every tap (and ``F_T^B``) to ``h``
   channels: ``\\hat F_T^l``, ``\\hat F_R^l``, ``\\hat F_T^B``.
3. **Attention modules** at the last N levels ``l = L-N+1 .. L``: cross-attention of
   ``\\hat F_T^l`` (queries) over ``\\hat F_R^l`` (keys/values), optionally stacked
   twice (separate weights), giving the fused ``\\hat F_TR^l``.
4. **Pyramid decoder and prediction heads**: starting with ``O^6 = \\hat F_T^B``, each
   decoder ``l = 5, 4, 3, 2`` (1) adds ``\\hat F_TR^l`` (the projected target where a
   level has no attention), (2) 3x3 conv + ReLU, (3) upsamples x2, (4) concatenates
   the projected target skip ``\\hat F_T^{l-1}``, (5) 3x3 conv + ReLU back to h
   channels. A head (e-dim 3x3 conv + ReLU, 1x1 conv + tanh) maps each decoder
   output to ab: ``P4`` (coarsest) .. ``P1`` (finest, at the stride of ``F^1``).

``h`` may be one number (the paper) or one per level (the CPU default narrows
the fine levels, where most of the decoder's arithmetic is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionMaps, CrossAttentionModule
from .backbones import Backbone, build_backbone

__all__ = ["ExemplarConfig", "ExemplarColorizer", "EXEMPLAR_CONFIGS"]

LEVELS = 5


@dataclass
class ExemplarConfig:
    """Architecture of an exemplar network.

    Attributes
    ----------
    backbone : str
        ``"efficientnet_lite0"`` or ``"vgg19"``.
    hidden : int or tuple of 5 ints
        ``h``: projection width, per level 1..5 when a tuple (bottleneck: level 5's).
    head_dim : int or tuple of 4 ints
        ``e``: width of the prediction heads (per head P1..P4 when a tuple).
    heads : int
        Attention heads.
    attention : {"axial", "standard"}
    attention_levels : int
        ``N``: attention at the last N levels (3 = "from block 3", the paper's choice).
    modules_per_level : int
        1 or 2 stacked attention modules (separate weights).
    span : int or None
        Attention span ``m`` in feature cells (None: the whole axis / lattice).
    train_size : int
        Image size the relative position tables are sized for.
    """

    backbone: str = "efficientnet_lite0"
    hidden: int | tuple[int, ...] = (16, 32, 64, 96, 128)
    head_dim: int | tuple[int, ...] = (16, 16, 32, 32)
    heads: int = 4
    attention: str = "axial"
    attention_levels: int = 2
    modules_per_level: int = 2
    span: int | None = None
    train_size: int = 224
    extra: dict = field(default_factory=dict)

    def hidden_at(self, level: int) -> int:
        """h of level 1..5."""
        return self.hidden if isinstance(self.hidden, int) else int(self.hidden[level - 1])

    def head_dim_at(self, scale: int) -> int:
        """e of head P1..P4."""
        return self.head_dim if isinstance(self.head_dim, int) else int(self.head_dim[scale - 1])

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("hidden", "head_dim"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExemplarConfig":
        d = dict(d)
        for k in ("hidden", "head_dim"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown exemplar config keys {sorted(unknown)}")
        return cls(**d)


EXEMPLAR_CONFIGS: dict[str, ExemplarConfig] = {
    # shipped CPU default: EfficientNet-Lite0, axial, two modules at the last two levels
    "cpu": ExemplarConfig(),
    "cpu-standard": ExemplarConfig(attention="standard"),
    "cpu-single": ExemplarConfig(modules_per_level=1),
    # paper A, Sec. 4.1: VGG-19, h=256, e=64, 8 heads, attention from block 3, two modules, 224 px
    "paper": ExemplarConfig(backbone="vgg19", hidden=256, head_dim=64, heads=8, attention="axial",
                            attention_levels=3, modules_per_level=2, span=None, train_size=224),
    "paper-standard": ExemplarConfig(backbone="vgg19", hidden=256, head_dim=64, heads=8, attention="standard",
                                     attention_levels=3, modules_per_level=2, span=None, train_size=224),
}


def _conv_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))


class PredictionHead(nn.Sequential):
    """e-dim 3x3 conv + ReLU, then 1x1 conv + tanh to the two ab channels."""

    def __init__(self, cin: int, e: int) -> None:
        super().__init__(_conv_relu(cin, e, 3), nn.Conv2d(e, 2, 1), nn.Tanh())


class DecoderBlock(nn.Module):
    """One pyramid decoder step (Sec. 3.1, the five-fold operation)."""

    def __init__(self, h: int, h_skip: int, h_out: int) -> None:
        super().__init__()
        self.conv_in = _conv_relu(h, h, 3)  # (2)
        self.conv_out = _conv_relu(h + h_skip, h_out, 3)  # (5)

    def forward(self, prev: torch.Tensor, fused: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(prev + fused)  # (1) + (2)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)  # (3)
        return self.conv_out(torch.cat([x, skip], dim=1))  # (4) + (5)


class ExemplarColorizer(nn.Module):
    """Paper A's end-to-end exemplar colourisation network.

    ``forward(target_L, reference_rgb)`` with ``target_L`` the normalised L
    (``L/50 - 1``, shape ``(B, 1, H, W)``) and ``reference_rgb`` in [0, 1]
    (``(B, 3, H, W)``, same H, W) returns ``[P1, P2, P3, P4]``: normalised ab
    predictions, finest first. ``encode_reference`` lets a caller compute the
    reference side once for many targets (stacks).
    """

    def __init__(self, config: ExemplarConfig | None = None, pretrained_backbone: bool = True,
                 backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ExemplarConfig()
        if not 1 <= cfg.attention_levels <= LEVELS:
            raise ValueError("attention_levels must be between 1 and 5")
        if cfg.modules_per_level not in (1, 2):
            raise ValueError("modules_per_level must be 1 or 2")
        self.backbone = backbone if backbone is not None else build_backbone(cfg.backbone, pretrained_backbone)
        spec = self.backbone.spec
        self.strides = spec.strides
        hs = [cfg.hidden_at(l) for l in range(1, LEVELS + 1)]
        self.attention_at = list(range(LEVELS - cfg.attention_levels + 1, LEVELS + 1))  # 1-based levels
        self.proj_t = nn.ModuleList(_conv_relu(c, h, 1) for c, h in zip(spec.channels, hs))
        self.proj_b = _conv_relu(spec.bottleneck_channels, hs[-1], 1)
        self.proj_r = nn.ModuleDict({str(l): _conv_relu(spec.channels[l - 1], hs[l - 1], 1) for l in self.attention_at})
        self.attention = nn.ModuleDict()
        for l in self.attention_at:
            max_rel = max(2, -(-cfg.train_size // spec.strides[l - 1]))
            self.attention[str(l)] = nn.ModuleList(
                CrossAttentionModule(hs[l - 1], cfg.heads, max_rel, cfg.attention, cfg.span)
                for _ in range(cfg.modules_per_level)
            )
        # decoders l = 5..2: input width h_l, skip h_{l-1}, output h_{l-1}
        self.decoders = nn.ModuleDict({str(l): DecoderBlock(hs[l - 1], hs[l - 2], hs[l - 2]) for l in range(LEVELS, 1, -1)})
        self.heads = nn.ModuleList(PredictionHead(hs[s - 1], cfg.head_dim_at(s)) for s in range(1, LEVELS))

    # ------------------------------------------------------------------ parts
    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this (the coarsest stride)."""
        return max(self.strides)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen backbone (which comes from its own pretrained file)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    @staticmethod
    def grey_rgb(target_L: torch.Tensor) -> torch.Tensor:
        """Tripled L as a neutral grey RGB image in [0, 1] for the backbone."""
        from ..color import L_to_grey

        grey = L_to_grey((target_L[:, 0] + 1.0) * 50.0)
        return grey[:, None].expand(-1, 3, -1, -1)

    def encode_reference(self, reference_rgb: torch.Tensor) -> dict[int, torch.Tensor]:
        """Projected reference features ``\\hat F_R^l`` at the attention levels."""
        taps, _ = self.backbone(reference_rgb)
        return {l: self.proj_r[str(l)](taps[l - 1]) for l in self.attention_at}

    def forward(self, target_L: torch.Tensor, reference_rgb: torch.Tensor | None = None,
                reference_features: dict[int, torch.Tensor] | None = None, return_attention: bool = False):
        """Colourise. Returns ``[P1, P2, P3, P4]`` (and a dict of attention maps when asked)."""
        if reference_features is None:
            if reference_rgb is None:
                raise ValueError("an exemplar model needs a reference")
            if reference_rgb.shape[-2:] != target_L.shape[-2:]:
                raise ValueError("target and reference must have the same working size")
            if reference_rgb.shape[0] == target_L.shape[0]:  # one backbone pass for both
                taps_both, bott_both = self.backbone(torch.cat([self.grey_rgb(target_L), reference_rgb]))
                B = target_L.shape[0]
                taps = [t[:B] for t in taps_both]
                bott = bott_both[:B]
                reference_features = {l: self.proj_r[str(l)](taps_both[l - 1][B:]) for l in self.attention_at}
            else:
                reference_features = self.encode_reference(reference_rgb)
                taps, bott = self.backbone(self.grey_rgb(target_L))
        else:
            taps, bott = self.backbone(self.grey_rgb(target_L))
        ft = [p(t) for p, t in zip(self.proj_t, taps)]
        fused, raw_maps = {}, {}
        for l in self.attention_at:
            x, r = ft[l - 1], reference_features[l]
            if r.shape[0] != x.shape[0]:
                r = r.expand(x.shape[0], -1, -1, -1)
            for m, module in enumerate(self.attention[str(l)]):
                x, maps = module(x, r, return_attention)
                if return_attention:
                    raw_maps[(l, m)] = maps
            fused[l] = x
        out = self.proj_b(bott)  # O^6
        preds = []
        for l in range(LEVELS, 1, -1):
            out = self.decoders[str(l)](out, fused.get(l, ft[l - 1]), ft[l - 2])
            preds.append(self.heads[l - 2](out))  # decoder l feeds head P_{l-1}
        preds = preds[::-1]  # P1 (finest) .. P4
        if not return_attention:
            return preds
        return preds, raw_maps

    def attention_maps(self, raw_maps, index: int = 0) -> dict[str, AttentionMaps]:
        """Name raw maps ``level{l}.module{m}`` and convert them for display."""
        out = {}
        for (l, m), raw in raw_maps.items():
            module = self.attention[str(l)][m]
            out[f"level{l}.module{m + 1}"] = module.to_maps(raw, self.strides[l - 1], index)
        return out
