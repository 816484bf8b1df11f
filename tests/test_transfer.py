"""The optional distribution-matching step (napari_colorize.transfer)."""

import numpy as np
import pytest
import torch

import napari_colorize as nc
from napari_colorize.color import histogram_intersection, soft_histogram
from napari_colorize.transfer import samples_from_histogram, sliced_transfer


def test_sliced_transfer_moves_the_distribution_and_keeps_the_order():
    g = torch.Generator().manual_seed(0)
    ab = torch.randn(2, 32, 32, generator=g) * 0.05  # muted: a narrow cloud near grey
    target = torch.stack([torch.rand(5000, generator=g) * 0.8 - 0.4, torch.rand(5000, generator=g) * 0.6 - 0.1])
    out = sliced_transfer(ab, target, 1.0)
    h_t = soft_histogram(target.reshape(2, 50, 100))
    assert float(histogram_intersection(soft_histogram(out), h_t)) > float(histogram_intersection(soft_histogram(ab), h_t)) + 0.3
    # pixels keep their place in the order of colours along each axis (mostly): the layout is kept
    corr = np.corrcoef(ab[0].flatten().numpy(), out[0].flatten().numpy())[0, 1]
    assert corr > 0.5
    assert torch.equal(sliced_transfer(ab, target, 0.0), ab)
    half = sliced_transfer(ab, target, 0.5)
    assert torch.allclose(half, 0.5 * ab + 0.5 * out, atol=1e-5)
    with pytest.raises(ValueError, match="strength"):
        sliced_transfer(ab, target, 1.5)


def test_samples_follow_the_histogram():
    h = torch.zeros(21, 21)
    h[15, 5], h[3, 18] = 0.75, 0.25
    s = samples_from_histogram(h, 20000)
    assert s.shape == (2, 20000)
    near_first = ((s[0] - 0.5).abs() < 0.06) & ((s[1] + 0.5).abs() < 0.06)
    assert abs(float(near_first.float().mean()) - 0.75) < 0.02


def test_colorize_match_pulls_towards_the_reference(small_pair):
    grey, ref, _ = small_pair
    m = nc.load_model("reinhard")  # one global tint: far from the reference's spread of colours
    plain = nc.colorize(m, grey, reference=ref).rgb
    matched = nc.colorize(m, grey, reference=ref, match=1.0).rgb
    assert nc.metrics.his(matched, ref) > nc.metrics.his(plain, ref) + 0.05
    assert matched.shape == plain.shape


def test_equal_colours_take_their_ranks_in_pixel_order():
    """Pixels of one colour (a flat region, many of them) are matched to the target's values in pixel order,
    as a stable sort gives: the result is the same on every machine (an unstable sort's order of ties
    depends on its kernel, and moved half the pixels of a Welsh output between two CPUs)."""
    import math

    n = 20000
    ab = torch.zeros(2, n)
    ab[:, ::3] = 0.2  # (two flat colours, interleaved)
    target = torch.randn(2, 4096) * 0.3
    out = sliced_transfer(ab, target, 1.0, iterations=1).double()
    g = torch.Generator().manual_seed(0)
    th = float(torch.rand(1, generator=g)) * math.pi
    proj = torch.tensor([math.cos(th), math.sin(th)], dtype=torch.float64) @ out
    for flat in (torch.arange(n) % 3 == 0, torch.arange(n) % 3 != 0):
        assert bool((proj[flat].diff() >= -1e-6).all())  # (float32 output: rounding only)
