import numpy as np
import pytest
import torch

from napari_colorize.models.backbones import (EfficientNetLite, EfficientNetLite0Backbone, VGG19Backbone,
                                              lite0_weights_file, build_backbone, load_lite0_imagenet)


def _imagenet_logits(x: torch.Tensor) -> torch.Tensor:
    """Our Lite0 feature network plus the classifier head, read straight from the weights file."""
    sd = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    net = load_lite0_imagenet(EfficientNetLite()).eval()
    y = net(x)[-1]
    y = torch.nn.functional.conv2d(y, sd["_conv_head.weight"])
    y = torch.nn.functional.batch_norm(y, sd["_bn1.running_mean"], sd["_bn1.running_var"], sd["_bn1.weight"],
                                       sd["_bn1.bias"], eps=1e-5)
    y = torch.nn.functional.relu6(y).mean((2, 3))
    return torch.nn.functional.linear(y, sd["_fc.weight"], sd["_fc.bias"])


def test_lite0_imagenet_weights_load_completely():
    sd = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    assert len(sd) == 296
    own = EfficientNetLite().state_dict()
    assert set(own) == {k for k in sd if not k.startswith(("_conv_head.", "_bn1.", "_fc."))}


def test_lite0_imagenet_weights_classify_chelsea_as_a_cat():
    from skimage import data

    x = torch.from_numpy(data.chelsea().astype(np.float32) / 255).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        top = int(_imagenet_logits(x).argmax())
    assert 281 <= top <= 285, top  # ImageNet domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian


def test_our_lite0_equals_timms_with_the_same_weights():
    """Our plain-torch network (BN folded) gives timm's efficientnet_lite0 activations."""
    timm = pytest.importorskip("timm")
    sd = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    ref = timm.create_model("efficientnet_lite0", pretrained=False)
    assert [tuple(v.shape) for v in ref.state_dict().values()] == [tuple(v.shape) for v in sd.values()]
    ref.load_state_dict(dict(zip(ref.state_dict().keys(), sd.values())))
    ref.eval()
    bb = EfficientNetLite0Backbone(pretrained=True)
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        taps, bott = bb(x)
        y = ref.bn1(ref.conv_stem(bb.normalise(x)))
        stages = []
        for stage in ref.blocks:
            y = stage(y)
            stages.append(y)
    for t, s in zip(taps, (0, 1, 2, 4, 5)):
        assert torch.allclose(t, stages[s], atol=1e-4)
    assert torch.allclose(bott, stages[6], atol=1e-4)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "vgg19"])
def test_taps_have_the_declared_channels_and_strides(name):
    bb = build_backbone(name, pretrained=False)
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        taps, bott = bb(x)
    assert len(taps) == 5
    for t, c, s in zip(taps, bb.spec.channels, bb.spec.strides):
        assert t.shape == (2, c, 64 // s, 96 // s)
    assert bott.shape == (2, bb.spec.bottleneck_channels, 64 // bb.spec.strides[-1], 96 // bb.spec.strides[-1])
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.training  # frozen: BN statistics never move


def test_vgg19_without_weights_says_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.delenv("NAPARI_COLORIZE_VGG19_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        VGG19Backbone(pretrained=True)


def test_vgg19_loads_a_torchvision_weights_file(monkeypatch, tmp_path):
    """Our VGG-19 layers are indexed as torchvision's, so its weights file loads as it is."""
    torchvision = pytest.importorskip("torchvision")

    torch.manual_seed(1)
    tv = torchvision.models.vgg19(weights=None).eval()
    sd = tv.state_dict()
    f = tmp_path / "vgg19.pth"
    torch.save(sd, f)
    monkeypatch.setenv("NAPARI_COLORIZE_VGG19_WEIGHTS", str(f))
    bb = VGG19Backbone(pretrained=True)
    assert torch.equal(bb.features[0].weight, sd["features.0.weight"])
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        _, bott = bb(x)
        assert torch.allclose(bott, tv.features[:34](bb.normalise(x)), atol=1e-5)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        build_backbone("resnet9000")


def test_the_config_module_knows_the_same_backbones():
    from napari_colorize.models.backbones import BACKBONES
    from napari_colorize.models.configs import BACKBONE_NAMES

    assert set(BACKBONES) == set(BACKBONE_NAMES)
