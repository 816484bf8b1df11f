import numpy as np
import pytest
import torch

from napari_colorize.models.exemplar import EXEMPLAR_CONFIGS, ExemplarNet, ExemplarConfig


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ExemplarNet(EXEMPLAR_CONFIGS["cpu"], pretrained_backbone=False).eval()


def _inputs(B=1, H=64, W=96):
    return torch.rand(B, 1, H, W) * 2 - 1, torch.rand(B, 3, H, W)


def test_p1_to_p4_shapes_and_range(net):
    L, R = _inputs(2)
    with torch.no_grad():
        preds = net(L, R)
    # EfficientNet-Lite0 taps at strides 2..32: P1..P4 at strides 2, 4, 8, 16
    assert [tuple(p.shape) for p in preds] == [(2, 2, 32, 48), (2, 2, 16, 24), (2, 2, 8, 12), (2, 2, 4, 6)]
    assert all(p.abs().max() <= 1 for p in preds)


def test_cached_reference_features_give_the_same_output(net):
    L, R = _inputs(1)
    with torch.no_grad():
        joint = net(L, R)
        feats = net.encode_reference(R)
        cached = net(L, reference_features=feats)
        batch = net(torch.cat([L, L, L]), reference_features=feats)  # one reference, three slices
    for a, b, c in zip(joint, cached, batch):
        assert torch.allclose(a, b, atol=1e-5)
        assert torch.allclose(c, a.expand_as(c), atol=1e-5)


def test_reference_changes_the_output(net):
    L, R = _inputs(1)
    with torch.no_grad():
        a = net(L, R)[0]
        b = net(L, torch.rand_like(R))[0]
        c = net(L, R)[0]
    # random weights pass the reference on weakly, but far above float noise (a repeat: exactly 0)
    assert (a - b).abs().max() > 1e-6
    assert torch.equal(a, c)


def test_attention_maps_are_named_and_sum_to_one(net):
    L, R = _inputs(1)
    with torch.no_grad():
        preds, raw = net(L, R, return_attention=True)
    maps = net.attention_maps(raw)
    assert sorted(maps) == ["level4.module1", "level4.module2", "level5.module1", "level5.module2"]
    m = maps["level4.module1"]
    assert m.kind == "axial" and m.stride == 16 and m.shape == (4, 6)
    assert m.effective(1, 2).shape == (4, 6)
    assert m.effective(1, 2).sum() == pytest.approx(1.0, abs=1e-4)
    # EfficientNet centres cell i of a stride-16 lattice on pixel 16 i: 1/32 of its block (as the confidence)
    assert not m.block_centred and m.cell_centre == pytest.approx(1 / 32)
    # on the working image's pixels (to lay over an image), as the confidence is placed
    from napari_colorize.models.coherence import lattice_to_pixels

    eff = m.effective(1, 2)
    px = m.on_pixels(eff)
    assert px.shape == (64, 96)
    assert np.allclose(px, lattice_to_pixels(torch.from_numpy(eff)[None, None], (64, 96))[0, 0].numpy(), atol=1e-6)


def test_stacked_modules_do_not_share_weights(net):
    a, b = net.attention["5"]
    assert a.width.to_q.weight.data_ptr() != b.width.to_q.weight.data_ptr()
    with torch.no_grad():
        assert not torch.equal(a.width.to_q.weight, b.width.to_q.weight)


@pytest.mark.parametrize("name", ["cpu-standard", "cpu-single"])
def test_ablation_variants_run(name):
    torch.manual_seed(0)
    net = ExemplarNet(EXEMPLAR_CONFIGS[name], pretrained_backbone=False).eval()
    L, R = _inputs(1)
    with torch.no_grad():
        preds, raw = net(L, R, return_attention=True)
    assert preds[0].shape == (1, 2, 32, 48)
    maps = net.attention_maps(raw)
    if name == "cpu-standard":
        assert maps["level5.module1"].kind == "standard"
    else:
        assert sorted(maps) == ["level4.module1", "level5.module1"]


def test_paper_configuration_builds_and_runs():
    """VGG-19 (random weights of the same shapes), h=256, e=64, 8 heads, attention from block 3, two modules."""
    cfg = EXEMPLAR_CONFIGS["paper"]
    assert (cfg.backbone, cfg.hidden, cfg.head_dim, cfg.heads, cfg.attention_levels, cfg.modules_per_level,
            cfg.train_size) == ("vgg19", 256, 64, 8, 3, 2, 224)
    torch.manual_seed(0)
    net = ExemplarNet(cfg, pretrained_backbone=False).eval()
    assert net.attention_at == [3, 4, 5]
    L, R = _inputs(1, 64, 64)
    with torch.no_grad():
        preds, raw = net(L, R, return_attention=True)
    # VGG's pooled cells sit in the middle of their blocks
    maps = net.attention_maps(raw).values()
    assert all(m.block_centred and m.cell_centre == 0.5 for m in maps)
    import torch.nn.functional as F

    m = next(iter(maps))
    eff = m.effective(0, 0)
    h, w = eff.shape
    interp = F.interpolate(torch.from_numpy(eff)[None, None].float(), (h * m.stride, w * m.stride), mode="bilinear",
                           align_corners=False)[0, 0].numpy()
    assert np.allclose(m.on_pixels(eff), interp, atol=1e-6)
    # VGG-19 taps at strides 1..16: P1 at full resolution (224/112/56/28 px for a 224 input)
    assert [tuple(p.shape[-2:]) for p in preds] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert net.attention["3"][0].width.to_q.weight.shape == (256, 256, 1, 1)
    assert net.decoder.heads[0][0][0].out_channels == 64


def test_training_gradients_reach_every_trainable_part():
    torch.manual_seed(0)
    net = ExemplarNet(ExemplarConfig(), pretrained_backbone=False).train()
    L, R = _inputs(2)
    preds = net(L, R)
    sum(p.mean() for p in preds).backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("backbone") for n, _ in trainable)
    no_grad = [n for n, p in trainable if p.grad is None]
    assert not no_grad, no_grad


def test_config_round_trip_and_validation():
    cfg = EXEMPLAR_CONFIGS["cpu"]
    assert ExemplarConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        ExemplarConfig.from_dict({"hiddden": 3})
    with pytest.raises(ValueError):
        ExemplarNet(ExemplarConfig(attention_levels=0), pretrained_backbone=False)
    with pytest.raises(ValueError):
        ExemplarNet(ExemplarConfig(modules_per_level=3), pretrained_backbone=False)


def test_weights_saved_before_the_pyramid_decoder_module_still_load(tmp_path):
    """Checkpoints of the earlier layout (decoder blocks, heads, gates and the bottleneck projection
    at the network's top level) load under today's names and compute the same."""
    import torch

    from napari_colorize.models.exemplar import EXEMPLAR_CONFIGS, ExemplarNet, PyramidDecoder
    from napari_colorize.models.registry import load_model, save_checkpoint

    torch.manual_seed(0)
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey-adapt"]).eval()  # (the backbone is not saved)
    with torch.no_grad():  # (random gates: make the heads count)
        for g in net.decoder.gates:
            g.bias.fill_(0.0)
    path = tmp_path / "old.safetensors"
    save_checkpoint(net, path, {"name": "old"}, dtype=torch.float32)
    from safetensors.torch import load_file, save_file

    sd = load_file(str(path))
    new_to_old = {v: k for k, v in PyramidDecoder.OLD_PREFIXES.items()}
    old = {}
    for k, v in sd.items():
        pre = next((p for p in new_to_old if k.startswith(p)), None)
        old[new_to_old[pre] + k[len(pre):] if pre else k] = v
    assert any(k.startswith("decoders.") for k in old) and not any(k.startswith("decoder.") for k in old)
    save_file(old, str(path))  # (the config stays in the .json beside it)
    m = load_model(path, device="cpu", pretrained=True)
    L = torch.rand(1, 1, 64, 64) * 2 - 1
    ref = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = net(L, ref)
        got = m.network(L, ref)
    assert all(torch.equal(a, b) for a, b in zip(want, got))
