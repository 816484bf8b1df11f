"""The match confidence, the lightness-conditioned fallback and the region coherence (issue 18)."""

import numpy as np
import pytest
import torch

import napari_colorize as nc
from napari_colorize.models.coherence import (DEFAULT_CONFIDENCE, coherent_ab, lightness_palette, match_confidence,
                                              spread)
from napari_colorize.models.configs import ExemplarConfig


def _two_tone_reference(h=32, w=32):
    """Normalised Lab: a dark blue left half and a bright yellow right half."""
    lab = torch.zeros(1, 3, h, w)
    lab[:, 0, :, : w // 2], lab[:, 0, :, w // 2:] = -0.6, 0.6
    lab[:, 1:, :, : w // 2] = torch.tensor([0.1, -0.4])[:, None, None]
    lab[:, 1:, :, w // 2:] = torch.tensor([0.0, 0.5])[:, None, None]
    return lab


def test_lightness_palette_gives_each_lightness_the_reference_colour_of_that_lightness():
    ref = _two_tone_reference()
    # a target whose lightness runs the other way round and over another range: matched by quantiles
    L = torch.zeros(1, 1, 20, 20)
    L[..., :10, :] = 0.3   # bright (top)
    L[..., 10:, :] = -0.9  # dark (bottom)
    ab = lightness_palette(L, ref, sigma=0.5)
    assert ab.shape == (1, 2, 20, 20)
    top, bottom = ab[0, :, :10].mean((1, 2)), ab[0, :, 10:].mean((1, 2))
    assert top[1] > 0.4 and abs(top[0]) < 0.05       # yellow: +b
    assert bottom[1] < -0.3 and bottom[0] > 0.05     # blue: -b, a little +a
    assert ab[0, :, :10].std((1, 2)).max() < 1e-6     # one colour per flat region (ties share a rank)


def test_spread_fills_a_region_with_its_confident_colour_and_stops_at_the_edge():
    L = torch.full((1, 1, 32, 32), -0.5)
    L[..., 16:] = 0.5  # an edge between columns 15 and 16
    ab = torch.zeros(1, 2, 32, 32)
    conf = torch.full((1, 1, 32, 32), 1e-4)
    ab[:, 0, 8, 4], conf[:, :, 8, 4] = 0.5, 1.0      # one confident red pixel on the left
    ab[:, 1, 20, 28], conf[:, :, 20, 28] = -0.5, 1.0  # one confident blue pixel on the right
    out = spread(L, ab, conf, radius=16, eps=1e-4)
    left, right = out[0, :, 4:20, :14], out[0, :, 8:28, 18:]  # within the radius of each pixel
    assert left[0].mean() > 0.3 and right[0].abs().mean() < 0.02   # red fills the left, not the right
    assert right[1].mean() < -0.3 and left[1].abs().mean() < 0.02  # blue fills the right, not the left


def test_spread_radius_zero_is_the_identity():
    ab = torch.randn(1, 2, 8, 8)
    assert torch.equal(spread(torch.zeros(1, 1, 8, 8), ab, torch.ones(1, 1, 8, 8), 0), ab)


def test_coherent_ab_falls_back_to_the_palette_where_confidence_is_nought():
    ref = _two_tone_reference()
    L = torch.full((1, 1, 16, 16), 0.6)
    L[..., 8:, :] = -0.6  # a bright and a dark region: the palette's yellow and blue
    wrong = torch.zeros(1, 2, 16, 16)
    wrong[:, 0] = -0.7  # a confident-looking green that nothing supports
    none = torch.zeros(1, 1, 16, 16)
    palette = lightness_palette(L, ref)
    assert torch.allclose(coherent_ab(L, wrong, ref, none, radius=0, fallback=1.0), palette, atol=1e-6)
    spread_out = coherent_ab(L, wrong, ref, none, radius=4, fallback=1.0)  # within each region, away from the edge
    assert torch.allclose(spread_out[..., :4, :], palette[..., :4, :], atol=1e-3)
    assert torch.allclose(spread_out[..., 12:, :], palette[..., 12:, :], atol=1e-3)
    kept = coherent_ab(L, wrong, ref, torch.ones(1, 1, 16, 16), radius=4, fallback=1.0)
    assert torch.allclose(kept, wrong, atol=1e-3)  # full confidence keeps the prediction
    half = coherent_ab(L, wrong, ref, none, radius=0, fallback=0.5)  # c' = 0.5: halfway
    assert torch.allclose(half, 0.5 * wrong + 0.5 * palette, atol=1e-6)


def test_match_confidence_is_a_logistic_of_the_features():
    sims = {"best2": torch.full((1, 1, 4, 4), 0.5), "best5": torch.full((1, 1, 1, 1), 0.2)}
    c = match_confidence(sims, {"bias": -1.0, "best2": 2.0, "best5": 5.0}, (8, 8))
    assert c.shape == (1, 1, 8, 8)
    assert torch.allclose(c, torch.sigmoid(torch.tensor(-1.0 + 1.0 + 1.0)).expand(1, 1, 8, 8))
    with pytest.raises(KeyError):
        match_confidence(sims, {"best4": 1.0}, (8, 8))


def test_confidence_is_higher_for_the_photo_itself_than_for_an_unrelated_reference():
    from skimage import data

    photo = data.chelsea()[::2, ::2]
    grey = photo.mean(-1).astype(np.uint8)
    flipped = np.ascontiguousarray(photo[:, ::-1])
    rng = np.random.default_rng(0)
    unrelated = (rng.random((16, 16, 3)) * 255).astype(np.uint8).repeat(12, 0).repeat(12, 1)  # coloured blocks
    model = nc.load_model("exemplar")
    own = nc.colorize(model, grey, reference=flipped).confidence
    other = nc.colorize(model, grey, reference=unrelated).confidence
    assert own.shape == grey.shape and other.shape == grey.shape
    assert 0 <= other.min() and own.max() <= 1
    assert own.mean() > other.mean() + 0.1


@pytest.mark.parametrize("name", ["exemplar", "warp-grey"])
def test_every_matching_model_gives_a_confidence_per_pixel_and_per_slice(name):
    rng = np.random.default_rng(1)
    ref = rng.random((40, 48, 3)).astype(np.float32)
    stack = rng.random((3, 50, 60)).astype(np.float32)
    res = nc.colorize(name, stack, reference=ref, rgb=False)
    assert res.confidence.shape == (3, 50, 60) and res.confidence.dtype == np.float32
    assert np.isfinite(res.confidence).all()


def test_global_methods_have_no_confidence():
    rng = np.random.default_rng(2)
    res = nc.colorize("reinhard", rng.random((20, 24)), reference=rng.random((10, 12, 3)))
    assert res.confidence is None


@pytest.mark.parametrize("bad", [{"confidence": {"best9": 1.0}}, {"confidence": {"bias": float("nan")}},
                                 {"confidence": [1, 2]}, {"fallback": 1.5}, {"coherence": -1},
                                 {"coherence": 65}, {"palette_chroma": 2.0}])
def test_output_stage_options_are_validated(bad):
    with pytest.raises(ValueError):
        ExemplarConfig.from_dict({**ExemplarConfig().to_dict(), **bad})


def test_default_confidence_names_known_features():
    ExemplarConfig.from_dict({**ExemplarConfig().to_dict(), "confidence": DEFAULT_CONFIDENCE})
