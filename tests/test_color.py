import numpy as np
import pytest
import torch
from skimage import color as skcolor

from napari_colorize.color import (NBINS, bin_centres, denormalize_lab, grey_to_L, hard_histogram,
                                   histogram_from_rgb, histogram_intersection, lab_to_rgb, lab_to_rgb_in_gamut,
                                   normalize_lab, palette, rgb_to_lab, soft_histogram)


def _gamut(n=33):
    g = np.stack(np.meshgrid(*[np.linspace(0, 1, n)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    return g.astype(np.float32)


def test_rgb_to_lab_matches_skimage_on_whole_gamut():
    g = _gamut()
    ours = rgb_to_lab(torch.from_numpy(g).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.abs(ours - skcolor.rgb2lab(g)).max() < 1e-3


def test_lab_to_rgb_matches_skimage_and_round_trips():
    g = _gamut()
    lab = skcolor.rgb2lab(g).astype(np.float32)
    ours = lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.abs(ours - np.clip(skcolor.lab2rgb(lab), 0, 1)).max() < 1e-3
    assert np.abs(ours - g).max() < 1e-3


def test_conversion_is_differentiable():
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    normalize_lab(rgb_to_lab(x)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_normalisation_range_and_inverse():
    g = torch.from_numpy(_gamut()).permute(2, 0, 1)
    n = normalize_lab(rgb_to_lab(g))
    assert n.min() >= -1.0 - 1e-4 and n.max() <= 1.0 + 1e-4
    assert torch.allclose(denormalize_lab(n), rgb_to_lab(g), atol=1e-4)
    # L/50 - 1 and ab/110 exactly
    lab = torch.tensor([[[50.0]], [[55.0]], [[-110.0]]])
    assert torch.allclose(normalize_lab(lab).flatten(), torch.tensor([0.0, 0.5, -1.0]))


def test_grey_to_L_equals_lab_of_neutral_grey():
    x = torch.linspace(0, 1, 257)
    ref = rgb_to_lab(torch.stack([x, x, x])[:, None, :])[0, 0]
    assert torch.allclose(grey_to_L(x), ref, atol=1e-3)


def test_bin_centres():
    c = bin_centres()
    assert c.shape == (NBINS,) and torch.allclose(c, -1 + 0.1 * torch.arange(21.0), atol=1e-6)


def test_soft_histogram_sums_to_one_and_gradient_flows():
    ab = (torch.rand(3, 2, 16, 16) * 2 - 1).requires_grad_(True)
    h = soft_histogram(ab)
    assert h.shape == (3, NBINS, NBINS)
    assert torch.allclose(h.sum((1, 2)), torch.ones(3), atol=1e-5)
    (h * torch.randn_like(h)).sum().backward()
    assert ab.grad.abs().sum() > 0


def test_value_on_a_centre_fires_only_that_bin():
    c = bin_centres()
    ab = torch.stack([c[3].expand(4, 4), c[17].expand(4, 4)])
    h = soft_histogram(ab)
    assert float(h[3, 17]) == pytest.approx(1.0, abs=1e-6)
    assert float(h.sum() - h[3, 17]) == pytest.approx(0.0, abs=1e-6)


def test_every_bin_can_fire():
    """The public code of paper B has bin centres off by a factor: only half the bins fire."""
    c = bin_centres()
    a, b = torch.meshgrid(c, c, indexing="ij")
    h = soft_histogram(torch.stack([a, b]))
    assert (h > 0).all()
    assert torch.allclose(h, torch.full_like(h, 1 / NBINS**2), atol=1e-6)


def test_soft_weights_are_bilinear():
    # a value 30 % of the way from centre 5 to centre 6 on the a axis
    c = bin_centres()
    a = c[5] + 0.03
    ab = torch.stack([a.expand(1, 1), c[10].expand(1, 1)])
    h = soft_histogram(ab)
    assert float(h[5, 10]) == pytest.approx(0.7, abs=1e-5)
    assert float(h[6, 10]) == pytest.approx(0.3, abs=1e-5)


def test_soft_agrees_with_hard_histogram(rng):
    # smooth colour field: soft and hard histograms agree within a bin's spread
    ab = torch.from_numpy(rng.normal(0, 0.25, (2, 64, 64)).clip(-1, 1).astype(np.float32))
    soft = soft_histogram(ab).double().numpy()
    hard = hard_histogram(ab)
    assert hard.sum() == pytest.approx(1.0)
    assert histogram_intersection(soft, hard) > 0.6
    # both have the same mean ab (bilinear binning preserves the mean; nearest binning nearly)
    cc = bin_centres().double().numpy()
    for axis in (0, 1):
        ms = (soft.sum(1 - axis) * cc).sum()
        mh = (hard.sum(1 - axis) * cc).sum()
        assert abs(ms - float(ab[axis].mean())) < 1e-4
        assert abs(mh - ms) < 0.01


def test_his_extremes():
    h = torch.rand(NBINS, NBINS)
    h /= h.sum()
    assert float(histogram_intersection(h, h)) == pytest.approx(1.0, abs=1e-6)
    a = torch.zeros(NBINS, NBINS)
    a[0, 0] = 1
    b = torch.zeros(NBINS, NBINS)
    b[20, 20] = 1
    assert float(histogram_intersection(a, b)) == 0.0


def test_palette():
    p = palette()
    assert p.shape == (2, NBINS, NBINS)
    assert float(p[0, 0, 5]) == pytest.approx(-1.0) and float(p[1, 0, 5]) == pytest.approx(-0.5)


def test_histogram_from_rgb_of_grey_is_the_centre_bin():
    h = histogram_from_rgb(np.full((10, 10, 3), 0.5, np.float32))
    assert h[10, 10] == pytest.approx(1.0, abs=1e-3)


def test_in_gamut_conversion_keeps_L(rng):
    L = rng.uniform(0, 100, (1, 500)).astype(np.float32)
    ab = rng.uniform(-110, 110, (2, 1, 500)).astype(np.float32)
    lab = torch.from_numpy(np.concatenate([L[None], ab]))
    rgb = lab_to_rgb_in_gamut(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1
    back = rgb_to_lab(rgb)
    assert torch.allclose(back[0], lab[0], atol=0.02)
    # hue is kept where chroma survives
    ha = torch.atan2(lab[2], lab[1])
    hb = torch.atan2(back[2], back[1])
    keep = torch.hypot(back[1], back[2]) > 5
    d = torch.remainder(ha - hb + np.pi, 2 * np.pi) - np.pi
    assert d[keep].abs().median() < 0.05


def test_gamut_mapping_keeps_lightness_and_loses_little_chroma():
    """Out-of-gamut colours keep their L and hue and lose only the chroma they must: the table-driven
    scale is within 1 % of the largest in-gamut scale found by bisection."""
    import math

    from napari_colorize.color import in_gamut, lab_to_rgb_in_gamut

    g = torch.Generator().manual_seed(0)
    n = 4000
    L = torch.rand(n, generator=g) * 100
    h = torch.rand(n, generator=g) * 2 * math.pi
    C = 40 + torch.rand(n, generator=g) * 120  # mostly out of gamut
    lab = torch.stack([L, C * torch.cos(h), C * torch.sin(h)])[:, :, None]  # (3, n, 1)
    rgb = lab_to_rgb_in_gamut(lab)
    back = rgb_to_lab(rgb)
    assert float((back[0] - lab[0]).abs().max()) < 0.05
    kept = torch.sqrt(back[1] ** 2 + back[2] ** 2)[:, 0] / C
    lo, hi = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    Ld, ad, bd = L.double(), (C * torch.cos(h)).double(), (C * torch.sin(h)).double()
    for _ in range(30):
        mid = (lo + hi) / 2
        ok = in_gamut(Ld, ad * mid, bd * mid)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    mask = (lo > 0.05) & (L > 5) & (L < 95)  # near black/white the measured chroma is rounding noise
    assert float((kept.double()[mask] / lo[mask]).min()) > 0.98
