import pytest
import torch

from napari_colorize.color import NBINS
from napari_colorize.models.histogram import HISTOGRAM_CONFIGS, HistogramNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return HistogramNet(HISTOGRAM_CONFIGS["cpu"], pretrained_backbone=False).eval()


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
    net = HistogramNet(pretrained_backbone=False).train()
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.unet.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.unet.modules())
    ab = net(torch.rand(2, 1, 64, 64) * 2 - 1, _hist(2))
    ab.mean().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_paper_configuration_builds_and_runs():
    torch.manual_seed(0)
    net = HistogramNet(HISTOGRAM_CONFIGS["paper"], pretrained_backbone=False).eval()
    with torch.no_grad():
        ab = net(torch.rand(1, 1, 64, 64) * 2 - 1, _hist(1))
    assert ab.shape == (1, 2, 64, 64)


def test_bin_attention_views():
    import numpy as np

    from napari_colorize.models.maps import BinAttention

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
    cpu = HistogramNet(HISTOGRAM_CONFIGS["cpu"], pretrained_backbone=False)
    assert cpu.fu_proj.out_channels == HISTOGRAM_CONFIGS["cpu"].fu_channels
    assert cpu.unet.down[0][0].in_channels == 1 + HISTOGRAM_CONFIGS["cpu"].fu_channels
    assert HISTOGRAM_CONFIGS["paper"].fu_channels is None


def test_colour_semantic_attention_is_eq_2_by_the_letter():
    from napari_colorize.models.histogram import colour_semantic_attention

    g = torch.Generator().manual_seed(0)
    f_t = torch.randn(1, 8, 2, 3, generator=g)
    phi_r = torch.nn.functional.normalize(torch.randn(1, 441, 8, generator=g), dim=-1)
    f_u, m, ab = colour_semantic_attention(f_t, phi_r, 5.0)
    assert ab is None  # no prior: no expected colour
    for o in range(6):
        q = f_t[0, :, o // 3, o % 3]
        q = q / q.norm()
        w = torch.softmax(5.0 * phi_r[0] @ q, 0)
        assert torch.allclose(m[0, o], w, atol=1e-6)
        assert torch.allclose(f_u[0, :, o // 3, o % 3], w @ phi_r[0], atol=1e-5)


def test_histogram_prior_attention_against_a_naive_loop():
    """With the prior: logits + log(mass) per bin, and the values also carry each bin's palette ab."""
    from napari_colorize.color import palette
    from napari_colorize.models.histogram import PRIOR_FLOOR, colour_semantic_attention

    g = torch.Generator().manual_seed(1)
    f_t = torch.randn(1, 8, 2, 3, generator=g)
    phi_r = torch.nn.functional.normalize(torch.randn(1, 441, 8, generator=g), dim=-1)
    mass = torch.rand(441, generator=g) ** 6
    mass[:300] = 0  # most bins empty
    mass /= mass.sum()
    f_u, m, ab = colour_semantic_attention(f_t, phi_r, 3.0, mass.clamp_min(PRIOR_FLOOR).log()[None])
    pal = palette()
    for o in range(6):
        q = f_t[0, :, o // 3, o % 3]
        q = q / q.norm()
        logits = [3.0 * float(phi_r[0, j] @ q) + float(torch.log(torch.clamp(mass[j], min=PRIOR_FLOOR)))
                  for j in range(441)]
        w = torch.softmax(torch.tensor(logits), 0)
        assert torch.allclose(m[0, o], w, atol=1e-6)
        assert torch.allclose(f_u[0, :, o // 3, o % 3], w @ phi_r[0], atol=1e-5)
        want = sum(w[j] * pal[:, j // NBINS, j % NBINS] for j in range(441))
        assert torch.allclose(ab[0, :, o // 3, o % 3], want, atol=1e-5)
        assert float(m[0, o, :300].sum()) < 1e-3  # the empty bins get (almost) nothing


def _prior_net():
    torch.manual_seed(0)
    return HistogramNet(HISTOGRAM_CONFIGS["cpu-prior"], pretrained_backbone=False).eval()


def test_prior_network_starts_at_the_histograms_mean_colour_and_only_uses_its_bins():
    """Before training, the prior network paints (close to) the histogram's mean colour; two
    histograms with disjoint colours give outputs in their own colours."""
    from napari_colorize.color import palette

    net = _prior_net()
    L = torch.rand(1, 1, 64, 64) * 2 - 1
    pal = palette().flatten(1)  # (2, 441)
    for lo, hi in [(2, 6), (14, 19)]:  # two disjoint corners of the ab plane
        h = torch.zeros(1, NBINS, NBINS)
        h[0, lo:hi, lo:hi] = torch.rand(hi - lo, hi - lo)
        h /= h.sum()
        with torch.no_grad():
            ab = net(L, h)
        mean = h.flatten(1) @ pal.t()  # (1, 2)
        assert torch.allclose(ab.mean((2, 3)), mean, atol=0.02)
        box = pal[:, h.flatten() > 0]
        assert (ab[0].flatten(1).min(1).values >= box.min(1).values - 0.02).all()
        assert (ab[0].flatten(1).max(1).values <= box.max(1).values + 0.02).all()


def test_prior_network_needs_the_histogram_and_its_colorizer_passes_it():
    import numpy as np

    from napari_colorize.models.adapters import HistogramNetColorizer

    net = _prior_net()
    with pytest.raises(ValueError, match="histogram itself"):
        net(torch.zeros(1, 1, 32, 32), hist_features=net.encode_histogram(_hist(1)))
    col = HistogramNetColorizer("h", net, {"architecture": "histogram", "config": net.config.to_dict()}, "cpu")
    h = np.zeros((NBINS, NBINS), np.float32)
    h[3, 17] = 1.0  # one colour
    state = col.prepare(histogram=torch.from_numpy(h))
    pred = col.predict(torch.zeros(1, 1, 32, 32), state)
    from napari_colorize.color import palette

    assert torch.allclose(pred.ab[0].mean((1, 2)), palette()[:, 3, 17], atol=0.02)


def test_warm_start_widens_the_unet_input_with_zeros(tmp_path):
    """engine.init_from(widen=True): the earlier network's weights, the U-Net's first convolution
    widened with zeros for the expected colour (so on the old inputs it computes what it did)."""
    from training.engine import init_from

    from napari_colorize.models.registry import save_checkpoint

    torch.manual_seed(0)
    old = HistogramNet(HISTOGRAM_CONFIGS["cpu"], pretrained_backbone=False).eval()
    path = tmp_path / "old.safetensors"
    save_checkpoint(old, path, {"name": "old"}, dtype=torch.float32)
    new = _prior_net()
    init_from(new, path, widen=True)
    w_old, w_new = old.unet.down[0][0].weight, new.unet.down[0][0].weight
    assert w_new.shape[1] == w_old.shape[1] + 2
    assert torch.equal(w_new[:, :w_old.shape[1]], w_old) and not w_new[:, w_old.shape[1]:].any()
    assert torch.equal(new.level_blocks[0][0].weight, old.level_blocks[0][0].weight)
    assert float(new.log_tau.detach()) == 0.0  # the architecture's temperature, not the file's
    with pytest.raises(SystemExit, match="another shape"):
        init_from(new, path)  # without widen, a changed shape is refused


def test_region_coherence_of_the_histogram_output_spreads_its_colour_within_lightness_regions():
    """HistogramConfig.coherence (the shipped ``histogram``'s output stage; paper B's ``histogram-plain`` has
    none): the network's ab through the edge-aware spreading with the target's lightness as the guide, every
    pixel weighing the same - a colour that varies inside a flat region becomes one colour there and keeps
    the step at a lightness edge; 0 gives the network's own output; out-of-range radii are refused."""
    import numpy as np

    import napari_colorize as nc
    from napari_colorize.models.adapters import HistogramNetColorizer
    from napari_colorize.models.coherence import spread
    from napari_colorize.models.configs import HistogramConfig

    torch.manual_seed(0)
    net = HistogramNet(HISTOGRAM_CONFIGS["cpu"], pretrained_backbone=False).eval()
    L = torch.full((1, 1, 64, 64), -0.6)
    L[..., 32:] = 0.6  # two flat regions, one edge
    L = L + 0.01 * torch.randn_like(L)
    col = HistogramNetColorizer("h", net, {"architecture": "histogram", "config": net.config.to_dict()}, "cpu")
    state = col.prepare(histogram=_hist(1)[0])
    raw = col.predict(L, state).ab
    net.config = HistogramConfig.from_dict({**net.config.to_dict(), "coherence": 6})
    out = col.predict(L, state).ab
    assert torch.allclose(out, spread(L, raw, torch.ones_like(L), 6), atol=1e-6)
    assert out[..., 4:28].std((-2, -1)).max() < 0.5 * raw[..., 4:28].std((-2, -1)).max()  # one colour inside
    edge = (out[..., 36:60].mean((-2, -1)) - out[..., 4:28].mean((-2, -1))).abs()
    assert torch.allclose(edge, (raw[..., 36:60].mean((-2, -1)) - raw[..., 4:28].mean((-2, -1))).abs(), atol=0.02)
    for bad in (-1, 65, 2.5):
        with pytest.raises(ValueError, match="coherence"):
            HistogramConfig.from_dict({**net.config.to_dict(), "coherence": bad})
    assert nc.load_model("histogram", pretrained=False).network.config.coherence == 4
    assert nc.load_model("histogram-plain", pretrained=False).network.config.coherence == 0
    assert np.isfinite(out.numpy()).all()
