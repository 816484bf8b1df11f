import numpy as np
import pytest
import torch

from napari_colorize.models.backbones import (EfficientNetLite0Backbone, VGG19Backbone, _lite0_weights_file,
                                              build_backbone, lite0_name_map, load_lite0_imagenet)


def test_lite0_name_map_is_complete_and_one_to_one():
    import timm

    sd = torch.load(_lite0_weights_file(), map_location="cpu", weights_only=True)
    mapping = lite0_name_map(sd.keys())
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert len(sd) == 296
    assert set(mapping.values()) == set(target)
    assert len(set(mapping.values())) == len(mapping)
    for k, v in sd.items():
        assert target[mapping[k]].shape == v.shape, k


def test_lite0_imagenet_weights_classify_chelsea_as_a_cat():
    import timm
    from skimage import data

    net = load_lite0_imagenet(timm.create_model("efficientnet_lite0", pretrained=False)).eval()
    x = torch.from_numpy(data.chelsea().astype(np.float32) / 255).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        top = int(net(x).argmax())
    assert 281 <= top <= 285, top  # ImageNet domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian


def test_folded_backbone_equals_the_unfolded_network():
    import timm

    net = load_lite0_imagenet(timm.create_model("efficientnet_lite0", pretrained=False)).eval()
    bb = EfficientNetLite0Backbone(pretrained=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        taps, bott = bb(x)
        y = net.bn1(net.conv_stem(bb.normalise(x)))
        ref = []
        for s, stage in enumerate(net.blocks):
            y = stage(y)
            ref.append(y)
    for t, s in zip(taps, (0, 1, 2, 4, 5)):
        assert torch.allclose(t, ref[s], atol=1e-4)
    assert torch.allclose(bott, ref[6], atol=1e-4)


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


def test_vgg19_loads_a_user_weights_file(monkeypatch, tmp_path):
    from torchvision.models import vgg19

    torch.manual_seed(1)
    sd = vgg19(weights=None).state_dict()
    f = tmp_path / "vgg19.pth"
    torch.save(sd, f)
    monkeypatch.setenv("NAPARI_COLORIZE_VGG19_WEIGHTS", str(f))
    bb = VGG19Backbone(pretrained=True)
    assert torch.equal(bb.features[0].weight, sd["features.0.weight"])


def test_unknown_backbone():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        build_backbone("resnet9000")
