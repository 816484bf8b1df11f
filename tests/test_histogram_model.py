import pytest
import torch

from napari_colorize.color import NBINS
from napari_colorize.models.histogram import HISTOGRAM_CONFIGS, HistogramColorizer


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return HistogramColorizer(HISTOGRAM_CONFIGS["cpu"], pretrained_backbone=False).eval()


def _hist(B=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.rand(B, NBINS, NBINS, generator=g) ** 4
    return h / h.sum((1, 2), keepdim=True)


def test_output_and_pixel_to_bin_attention_shapes(net):
    L = torch.rand(2, 1, 64, 96) * 2 - 1
    with torch.no_grad():
        ab, attn = net(L, _hist(2), return_attention=True)
    assert ab.shape == (2, 2, 64, 96) and ab.abs().max() <= 1
    assert attn.shape == (2, 16, 24, NBINS, NBINS)
    assert torch.allclose(attn.sum((-1, -2)), torch.ones(2, 16, 24), atol=1e-5)


def test_histogram_changes_the_output(net):
    L = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        a = net(L, _hist(1, 0))
        b = net(L, _hist(1, 1))
    assert (a - b).abs().max() > 1e-5


def test_encoded_histogram_is_reusable(net):
    L = torch.rand(3, 1, 32, 32) * 2 - 1
    h = _hist(1)
    with torch.no_grad():
        feats = net.encode_histogram(h)
        a = net(L, hist_features=feats)
        b = net(L, h.expand(3, -1, -1))
    assert torch.allclose(a, b, atol=1e-5)


def test_instance_norm_unet_and_gradients():
    torch.manual_seed(0)
    net = HistogramColorizer(pretrained_backbone=False).train()
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.unet.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.unet.modules())
    ab = net(torch.rand(2, 1, 64, 64) * 2 - 1, _hist(2))
    ab.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_paper_configuration_builds_and_runs():
    torch.manual_seed(0)
    net = HistogramColorizer(HISTOGRAM_CONFIGS["paper"], pretrained_backbone=False).eval()
    with torch.no_grad():
        ab = net(torch.rand(1, 1, 64, 64) * 2 - 1, _hist(1))
    assert ab.shape == (1, 2, 64, 64)


def test_bin_attention_views():
    import numpy as np

    from napari_colorize.models.histogram import BinAttention

    w = np.full((3, 4, NBINS, NBINS), 1.0 / NBINS**2, np.float32)
    w[1, 2] = 0
    w[1, 2, 5, 7] = 1.0  # cell (1, 2) draws only from bin (5, 7)
    att = BinAttention(w)
    assert att.lattice == (3, 4) and att.shape == (3, 4, NBINS, NBINS) and np.array_equal(np.asarray(att), w)
    assert att.bins_of_pixel(1, 2)[5, 7] == 1.0 and att.bins_of_pixel(1, 2).sum() == 1.0
    where = att.pixels_of_bin(5, 7)
    assert where.shape == (3, 4) and where[1, 2] == 1.0 and np.argmax(where) == 1 * 4 + 2
    conc = att.concentration()
    assert conc[1, 2] == pytest.approx(1.0) and conc[0, 0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(IndexError):
        att.bins_of_pixel(3, 0)
    with pytest.raises(IndexError):
        att.pixels_of_bin(0, NBINS)


def test_cpu_config_projects_fu_and_paper_config_does_not():
    cpu = HistogramColorizer(HISTOGRAM_CONFIGS["cpu"], pretrained_backbone=False)
    assert cpu.fu_proj.out_channels == HISTOGRAM_CONFIGS["cpu"].fu_channels
    assert cpu.unet.down[0][0].in_channels == 1 + HISTOGRAM_CONFIGS["cpu"].fu_channels
    assert HISTOGRAM_CONFIGS["paper"].fu_channels is None


def test_colour_semantic_attention_is_eq_2_by_the_letter():
    from napari_colorize.models.histogram import colour_semantic_attention

    g = torch.Generator().manual_seed(0)
    f_t = torch.randn(1, 8, 2, 3, generator=g)
    phi_r = torch.nn.functional.normalize(torch.randn(1, 441, 8, generator=g), dim=-1)
    f_u, m = colour_semantic_attention(f_t, phi_r, 5.0)
    for o in range(6):
        q = f_t[0, :, o // 3, o % 3]
        q = q / q.norm()
        w = torch.softmax(5.0 * phi_r[0] @ q, 0)
        assert torch.allclose(m[0, o], w, atol=1e-6)
        assert torch.allclose(f_u[0, :, o // 3, o % 3], w @ phi_r[0], atol=1e-5)
