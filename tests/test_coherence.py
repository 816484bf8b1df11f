"""The match confidence, the lightness-conditioned fallback and the region coherence (issue 18)."""

import numpy as np
import pytest
import torch

import napari_colorize as nc
from napari_colorize.models.coherence import (DEFAULT_CONFIDENCE, coherent_ab, lightness_palette, match_confidence,
                                              palette_modes, palette_vote, spread)
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


@pytest.mark.parametrize("stride", [4, 16, 32])
def test_lattice_maps_are_placed_where_the_backbone_centres_its_cells(stride):
    """Cell i of a stride-s lattice is centred on pixel s * i (the backbone pads its stride-2
    convolutions symmetrically): one hot cell peaks there after resampling, not (s - 1) / 2 pixels down and
    right (F.interpolate's align_corners=False, which put the confidence out of place)."""
    from napari_colorize.models.backbones import EfficientNetLite
    from napari_colorize.models.coherence import lattice_to_pixels

    size = 128
    x = torch.zeros(1, 1, size // stride, size // stride)
    x[0, 0, 2, 1] = 1.0
    y = lattice_to_pixels(x, (size, size))[0, 0]
    assert y.shape == (size, size)
    assert divmod(int(y.argmax()), size) == (2 * stride, stride) and float(y.max()) == pytest.approx(1.0)
    # a constant lattice stays that constant everywhere, the border included
    assert torch.allclose(lattice_to_pixels(torch.full((2, 1, 4, 4), 0.3), (128, 96)), torch.tensor(0.3))
    # the geometry assumed: every stride-2 convolution of the backbone pads symmetrically (k // 2 each side)
    downs = [m for m in EfficientNetLite().modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(downs) == 5 and all(m.padding == (m.kernel_size[0] // 2,) * 2 for m in downs)
    # a size that is not a multiple of the stride: ceil(H / s) cells, the last on pixel s * (h - 1)
    odd = torch.zeros(1, 1, 9, 9)
    odd[0, 0, 8, 4] = 1.0
    assert divmod(int(lattice_to_pixels(odd, (257, 257))[0, 0].argmax()), 257) == (256, 128)


def test_pooling_backbones_keep_their_cells_in_the_middle_of_their_blocks():
    """VGG halves with 2 x 2 pooling: its cell i is centred in its block, s * i + (s - 1) / 2 - there the
    confidence keeps F.interpolate's placement; EfficientNet's on s * i."""
    import torch.nn.functional as F

    from napari_colorize.models.backbones import build_backbone
    from napari_colorize.models.coherence import lattice_to_pixels

    assert build_backbone("vgg19", pretrained=False).spec.block_centred
    assert not build_backbone("efficientnet_lite0", pretrained=False).spec.block_centred
    x = torch.rand(2, 1, 7, 5)
    assert torch.allclose(lattice_to_pixels(x, (56, 40), block_centred=True),
                          F.interpolate(x, size=(56, 40), mode="bilinear", align_corners=False), atol=1e-6)
    # a size that is not a multiple of the stride: VGG's pooling drops the last partial block, so the cells
    # keep their blocks' middles (F.interpolate would stretch 7 cells over all 60 pixels)
    hot = torch.zeros(1, 1, 7, 7)
    hot[0, 0, 6, 3] = 1.0
    y = lattice_to_pixels(hot, (60, 60), block_centred=True)[0, 0]
    # cell (6, 3) is centred on pixel (51.5, 27.5): symmetric about column 27.5, and from row 52 on (past the
    # last cell's centre) the last row's value; F.interpolate would centre it on (55.2, 29.5)
    assert torch.allclose(y[59, 19:28], y[59, 28:37].flip(0))
    assert float(y[59, 27]) == pytest.approx(1 - 0.5 / 8) and float(y[52, 28]) == pytest.approx(1 - 0.5 / 8)
    assert float(y[51, 27]) == pytest.approx((1 - 0.5 / 8) ** 2) and float(y[40, 27]) == 0.0
    sims = {"best2": x}
    assert torch.allclose(match_confidence(sims, {"bias": 0.0, "best2": 1.0}, (56, 40), block_centred=True),
                          torch.sigmoid(F.interpolate(x, size=(56, 40), mode="bilinear", align_corners=False)))


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
                                 {"coherence": 65}, {"palette_chroma": 2.0}, {"dark_chroma": -1.0},
                                 {"dark_chroma": 60.0}, {"dark_chroma": "dark"}, {"black_chroma": -1.0},
                                 {"black_chroma": 25.0}, {"black_chroma": None}, {"confidence_ring": 3},
                                 {"confidence_ring": -1}, {"confidence_ring": 1.5}, {"palette_modes": 1},
                                 {"palette_modes": 33}, {"palette_modes": 8.0}, {"palette_radius": 0},
                                 {"palette_share": 0.0}, {"palette_share": 1.5}, {"palette_smooth": -1},
                                 {"palette_blur": -0.5}, {"palette_blur": 9.0}, {"palette_blur": "soft"},
                                 {"palette_modes": False}, {"palette_modes": 0.0}, {"palette_share": 0.99},
                                 {"histogram_mix": -0.1}, {"histogram_mix": 1.5}, {"histogram_mix": True},
                                 {"histogram_scale": 0.1}, {"histogram_scale": 2.0}, {"histogram_scale": "half"}])
def test_output_stage_options_are_validated(bad):
    with pytest.raises(ValueError):
        ExemplarConfig.from_dict({**ExemplarConfig().to_dict(), **bad})


def test_default_confidence_names_known_features():
    ExemplarConfig.from_dict({**ExemplarConfig().to_dict(), "confidence": DEFAULT_CONFIDENCE})


@pytest.mark.parametrize("r", [1, 2, 4, 5, 16])
def test_box_mean_equals_reflect_padded_average_pooling(r):
    """Both ways of box_mean (shifted sums for small windows, running sums for large ones) are torch's
    average pooling of the reflect-padded image."""
    import torch.nn.functional as F

    from napari_colorize.models.coherence import box_mean

    x = torch.rand(2, 3, 40, 37, generator=torch.Generator().manual_seed(r))
    want = F.avg_pool2d(F.pad(x, (r, r, r, r), mode="reflect"), 2 * r + 1, stride=1)
    got = box_mean(x, r)
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=2e-6)


def test_best_similarities_do_not_depend_on_the_block():
    """The maxima computed in blocks of query rows (sized to stay in the cache) are those of the whole
    similarity matrix, batch and a shared reference alike."""
    from napari_colorize.models.coherence import best_similarities, centre_normalise, query_block

    g = torch.Generator().manual_seed(3)
    taps = [torch.randn(2, 8, 30, 26, generator=g)]
    keys = {1: centre_normalise(torch.randn(1, 8, 21, 17, generator=g))}
    whole = best_similarities(taps, keys, (1,), block=10**6)["best1"]
    q, k = centre_normalise(taps[0]), keys[1][0]
    naive = (q @ k.T).amax(-1).reshape(2, 1, 30, 26)
    assert torch.allclose(whole, naive, atol=1e-6)
    for block in (1, 7, 64, None):
        assert torch.allclose(best_similarities(taps, keys, (1,), block=block)["best1"], whole, atol=1e-6)
    assert query_block(3136) == 2**21 // 3136 and query_block(10**7) == 64


def test_fade_dark_takes_colour_from_unsure_dark_pixels_only():
    """Below the lightness a pixel keeps its confidence's share of chroma at black, all of it from that
    lightness up; a sure match keeps its colour at any lightness; off (0) changes nothing."""
    from napari_colorize.models.coherence import fade_dark

    Lstar = torch.tensor([0.0, 10.0, 20.0, 60.0]).reshape(1, 1, 1, 4)
    L = Lstar / 50 - 1
    ab = torch.full((1, 2, 1, 4), 0.3)
    unsure, sure = torch.zeros(1, 1, 1, 4), torch.ones(1, 1, 1, 4)
    out = fade_dark(L, ab, unsure, 20.0)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 0.15, 0.3, 0.3]))
    assert torch.equal(fade_dark(L, ab, sure, 20.0), ab)
    half = fade_dark(L, ab, torch.full((1, 1, 1, 4), 0.5), 20.0)
    assert torch.allclose(half[0, 1, 0, 0], torch.tensor(0.15))  # black keeps c = 0.5 of its chroma
    assert torch.equal(fade_dark(L, ab, unsure, 0.0), ab)


def test_fade_black_takes_colour_from_near_black_pixels_as_much_as_the_gate_says():
    """Below the lightness chroma fades linearly to none at black whatever the pixel's confidence, scaled
    by the image's gate (1: in full, 0: a reference of the same scene keeps its dark colours); off (0)
    changes nothing."""
    from napari_colorize.models.coherence import fade_black

    Lstar = torch.tensor([0.0, 5.0, 10.0, 60.0]).reshape(1, 1, 1, 4)
    L = Lstar / 50 - 1
    ab = torch.full((2, 2, 1, 4), 0.3)
    L2 = L.expand(2, -1, -1, -1)
    gate = torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1)
    out = fade_black(L2, ab, 10.0, gate)
    assert torch.allclose(out[0, 1, 0], torch.tensor([0.0, 0.15, 0.3, 0.3]))
    assert torch.equal(out[1], ab[1])  # (gate 0)
    half = fade_black(L, ab[:1], 10.0, 0.5)
    assert torch.allclose(half[0, 0, 0], torch.tensor([0.15, 0.225, 0.3, 0.3]))
    assert torch.equal(fade_black(L, ab[:1], 0.0), ab[:1])


def test_the_models_output_is_neutral_at_black_with_a_related_reference():
    """black_chroma in an exemplar network's config with a gate that applies in full: near-black pixels
    of the target (L* below 1.5) keep at most about L*/10 of their colour (the spread of their three RGB
    values falls, on average, below a fifth of what it was), brighter ones keep all of it; with a gate that
    does not apply (a reference of the same scene) the dark pixels keep their colour too."""
    torch.manual_seed(0)
    model = nc.load_model("exemplar", device="cpu")
    rng = np.random.default_rng(5)
    grey = np.concatenate([np.full((64, 32), 0.004), np.full((64, 32), 0.6)], 1) + rng.normal(0, 0.002, (64, 64))
    ref = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    cfg = {**model.network.config.to_dict(), "coherence_gate": [0.98, 0.99], "dark_chroma": 0.0, "black_chroma": 0.0,
           "palette_modes": 0}
    model.network.config = ExemplarConfig.from_dict(cfg)
    before = nc.colorize(model, grey, reference=ref, size=64).rgb
    model.network.config = ExemplarConfig.from_dict({**cfg, "black_chroma": 10.0})
    after = nc.colorize(model, grey, reference=ref, size=64).rgb
    spread_b, spread_a = (np.ptp(x[:, 4:28], axis=-1) for x in (before, after))
    assert spread_b.max() > 1e-3  # (the reference's colour reached the dark half without it)
    assert spread_a.max() < 0.3 * spread_b.max() and spread_a.mean() < 0.2 * spread_b.mean()
    np.testing.assert_allclose(before[:, 40:60], after[:, 40:60], atol=1e-6)
    shut = {**cfg, "coherence_gate": [0.0, 0.01]}  # (every image above it: the gate's weight 0)
    model.network.config = ExemplarConfig.from_dict(shut)
    kept = nc.colorize(model, grey, reference=ref, size=64).rgb
    model.network.config = ExemplarConfig.from_dict({**shut, "black_chroma": 10.0})
    np.testing.assert_array_equal(nc.colorize(model, grey, reference=ref, size=64).rgb, kept)
    assert np.ptp(kept[:, 4:28], axis=-1).max() > 1e-3


def test_the_models_output_fades_dark_colour_where_the_match_is_unsure():
    """dark_chroma in an exemplar network's config: the dark half of a target loses chroma against the
    same network without it, in proportion to 1 - confidence; the bright half is unchanged."""
    torch.manual_seed(0)
    model = nc.load_model("exemplar-direct", device="cpu")
    rng = np.random.default_rng(4)
    grey = np.concatenate([np.full((64, 32), 0.03), np.full((64, 32), 0.7)], 1) + rng.normal(0, 0.01, (64, 64))
    ref = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    before = nc.colorize(model, grey, reference=ref, size=64)
    model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(), "dark_chroma": 30.0})
    after = nc.colorize(model, grey, reference=ref, size=64)

    def chroma(rgb):
        from skimage.color import rgb2lab

        lab = rgb2lab(rgb)
        return np.hypot(lab[..., 1], lab[..., 2])

    np.testing.assert_allclose(before.confidence, after.confidence, atol=1e-5)
    dark_b, dark_a = chroma(before.rgb)[:, 4:28].mean(), chroma(after.rgb)[:, 4:28].mean()
    assert dark_a < dark_b
    assert np.allclose(chroma(before.rgb)[:, 36:60], chroma(after.rgb)[:, 36:60], atol=1e-3)


def test_inner_positions_leave_out_the_border_cells():
    from napari_colorize.models.coherence import inner_positions

    idx = inner_positions((6, 5), 1)
    grid = torch.zeros(6 * 5, dtype=torch.bool)
    grid[idx] = True
    want = torch.zeros(6, 5, dtype=torch.bool)
    want[1:5, 1:4] = True
    assert torch.equal(grid.reshape(6, 5), want)
    assert torch.equal(inner_positions((6, 5), 0), torch.arange(30))
    assert torch.equal(inner_positions((3, 9), 1), torch.arange(27))  # (too small: one row inside)


def _ring_model(ring):
    torch.manual_seed(0)
    model = nc.load_model("exemplar", device="cpu", pretrained=False)
    net = model.network
    net.config = ExemplarConfig.from_dict({**net.config.to_dict(), "confidence_ring": ring})
    return net


def test_the_confidence_ring_leaves_the_references_border_out_of_the_confidences_search_only():
    """With ``confidence_ring`` the match confidence's best similarities are taken over the reference's
    positions away from its border (the naive maximum over them), at every level; the warp's keys keep
    every position. A target that is its own reference finds itself inside, not on the border."""
    from napari_colorize.models.coherence import CONFIDENCE_LEVELS, centre_normalise
    from napari_colorize.models.warp import reference_grey

    g = torch.Generator().manual_seed(4)
    R = torch.rand(1, 3, 96, 128, generator=g)
    net = _ring_model(1)
    with torch.no_grad():
        feats = net.encode_reference(R, match=True)
        grey_taps = net.backbone(reference_grey(R))[0]
        taps = grey_taps  # (the target: the reference's own grey view)
        sims = net.match_similarities(taps, feats)
    assert feats["match"][2].shape[1] == 24 * 32  # (the warp and the cells: every position)
    for lv in CONFIDENCE_LEVELS:
        f = grey_taps[lv - 1]
        h, w = f.shape[-2:]
        k = centre_normalise(f).reshape(1, h, w, -1)
        if h >= 4 and w >= 4:  # (a lattice without two rows and columns inside keeps every cell)
            k = k[:, 1:h - 1, 1:w - 1]
        k = k.reshape(1, -1, f.shape[1])
        naive = (centre_normalise(taps[lv - 1]) @ k[0].T).amax(-1).reshape(1, 1, h, w)
        assert torch.allclose(sims[f"best{lv}"], naive, atol=1e-5)
    with torch.no_grad():
        full = _ring_model(0).match_similarities(taps, _ring_model(0).encode_reference(R, match=True))
    best = sims["best2"][0, 0]
    assert torch.allclose(full["best2"], torch.ones_like(full["best2"]), atol=1e-4)  # every cell finds itself
    assert torch.allclose(best[1:-1, 1:-1], torch.ones_like(best[1:-1, 1:-1]), atol=1e-4)
    assert float(best[0].max()) < 0.999 and float(best[:, 0].max()) < 0.999  # the border can't


def test_the_confidence_ring_holds_for_each_of_several_references():
    """Several references: each one's border is left out (the union of their inner positions), so a
    reference given twice gives the confidence of it given once."""
    rng = np.random.default_rng(5)
    grey = rng.random((64, 80)).astype(np.float32)
    ref = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    model = nc.load_model("exemplar", device="cpu", pretrained=False)
    model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(), "confidence_ring": 1})
    once = nc.colorize(model, grey, reference=ref, size=64).confidence
    twice = nc.colorize(model, grey, reference=[ref, ref], size=64).confidence
    np.testing.assert_allclose(twice, once, atol=1e-5)
    model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(), "confidence_ring": 0})
    assert not np.allclose(nc.colorize(model, grey, reference=ref, size=64).confidence, once, atol=1e-3)


def _naive_cells_best(qt, kr, shape, qc, kc, coarse, cells):
    """The best similarity by the letter: each fine target position's coarse cell picks the ``cells`` most
    similar reference cells; the maximum runs over the fine reference positions inside them."""
    (h, w), (hc, wc) = shape, coarse

    def cell(p):
        return min((p // w) * hc // h, hc - 1) * wc + min((p % w) * wc // w, wc - 1)

    K = kr.shape[1] // (h * w)
    ref_cell = torch.tensor([cell(p % (h * w)) + (p // (h * w)) * hc * wc for p in range(K * h * w)])
    out = torch.zeros(h * w, dtype=torch.float64)
    for o in range(h * w):
        chosen = (qc[0, cell(o)].double() @ kc[0].double().T).topk(min(cells * K, kc.shape[1])).indices
        out[o] = (kr[0, torch.isin(ref_cell, chosen)].double() @ qt[0, o].double()).max()
    return out.reshape(1, 1, h, w)


@pytest.mark.parametrize("shape, coarse, refs", [((8, 12), (2, 3), 1), ((7, 5), (2, 2), 1), ((8, 8), (2, 2), 2)])
def test_the_cells_best_similarity_equals_the_naive_search(shape, coarse, refs):
    """``coarse_to_fine_best``: the naive maximum over the chosen cells (also on a lattice the coarse one does
    not divide, and over the union of two references); the same as the coarse-to-fine warp's own best; never
    above the dense search's and equal to it with every cell."""
    from napari_colorize.models.coherence import best_similarities, centre_normalise
    from napari_colorize.models.union import union_keys
    from napari_colorize.models.warp import coarse_to_fine_best, coarse_to_fine_warp

    g = torch.Generator().manual_seed(7)
    ft, fr = torch.randn(1, 6, *shape, generator=g), torch.randn(refs, 6, *shape, generator=g)
    ct, cr = torch.randn(1, 5, *coarse, generator=g), torch.randn(refs, 5, *coarse, generator=g)
    qt, kr = centre_normalise(ft), union_keys(centre_normalise(fr))
    qc, kc = centre_normalise(ct), union_keys(centre_normalise(cr))
    got = coarse_to_fine_best(qt, kr, shape, qc, kc, coarse, 2)
    assert torch.allclose(got.double(), _naive_cells_best(qt, kr, shape, qc, kc, coarse, 2), atol=1e-6)
    for block in (1, 3):
        assert torch.equal(coarse_to_fine_best(qt, kr, shape, qc, kc, coarse, 2, block), got)
    v = torch.zeros(1, kr.shape[1], 2)
    assert torch.equal(coarse_to_fine_warp(qt, kr, v, shape, qc, kc, coarse, 2, 0.3)[1], got)
    dense = best_similarities([None, ft], {2: kr}, (2,))["best2"]
    assert (got <= dense + 1e-6).all() and not torch.allclose(got, dense, atol=1e-3)
    every = coarse_to_fine_best(qt, kr, shape, qc, kc, coarse, coarse[0] * coarse[1])
    assert torch.allclose(every, dense, atol=1e-6)


def test_confidence_cells_search_the_finest_level_in_the_warps_cells_only():
    """A network with ``confidence_cells`` takes its stride-4 best similarities from the cells' search (the
    coarse levels stay dense); with every cell it is the dense confidence; the setting is validated."""
    from napari_colorize.models.coherence import centre_normalise
    from napari_colorize.models.warp import coarse_to_fine_best

    g = torch.Generator().manual_seed(8)
    R, L = torch.rand(1, 3, 96, 128, generator=g), torch.rand(1, 1, 96, 128, generator=g) * 2 - 1
    net = _ring_model(0)
    net.config = ExemplarConfig.from_dict({**net.config.to_dict(), "confidence_cells": 0})  # (the shipped one: 16)
    with torch.no_grad():
        feats = net.encode_reference(R, match=True)
        taps = net.backbone(torch.cat([L, L, L], 1) * 0.5 + 0.5)[0]
        dense = net.match_similarities(taps, feats)
        net.config = ExemplarConfig.from_dict({**net.config.to_dict(), "confidence_cells": 4})
        cells = net.match_similarities(taps, feats)
        lv, c = 2, net.config.prior_cells_level
        want = coarse_to_fine_best(centre_normalise(taps[lv - 1]), feats["match"][lv], tuple(taps[lv - 1].shape[-2:]),
                                   centre_normalise(taps[c - 1]), feats["match"][c], tuple(taps[c - 1].shape[-2:]), 4)
        net.config = ExemplarConfig.from_dict({**net.config.to_dict(), "confidence_cells": 4096})
        every = net.match_similarities(taps, feats)
    assert sorted(cells) == sorted(dense)
    assert torch.equal(cells["best2"], want) and not torch.allclose(cells["best2"], dense["best2"], atol=1e-3)
    assert torch.equal(cells["best4"], dense["best4"]) and torch.equal(cells["best5"], dense["best5"])
    assert torch.allclose(every["best2"], dense["best2"], atol=1e-6)
    with pytest.raises(ValueError, match="confidence_cells"):
        ExemplarConfig.from_dict({**net.config.to_dict(), "confidence_cells": -1})


def test_spread_takes_any_number_of_channels_and_keeps_two_as_before():
    torch.manual_seed(1)
    L, ab, c = torch.rand(1, 1, 24, 24), torch.rand(1, 2, 24, 24) - 0.5, torch.rand(1, 1, 24, 24)
    five = torch.cat([ab, torch.rand(1, 3, 24, 24)], 1)
    torch.testing.assert_close(spread(L, five, c, 5)[:, :2], spread(L, ab, c, 5))  # channels do not mix


def test_palette_modes_are_the_references_main_colours_and_repeatable():
    ref = _two_tone_reference()[0]
    modes = palette_modes(ref, 2)
    assert modes.shape == (2, 2)
    got = sorted(map(tuple, modes.numpy().round(3)))
    assert np.allclose(got, [(0.0, 0.5), (0.1, -0.4)], atol=1e-3)  # the yellow and the blue
    torch.testing.assert_close(palette_modes(ref, 2), modes)       # the same reference, the same palette


def test_palette_vote_gives_a_region_the_reference_colour_most_of_its_pixels_chose():
    """Left region: most pixels a dull blue-ish colour, a few confetti of yellow -> the whole region takes the
    reference's blue (not the duller mean); right region: an even split -> no winner, it keeps the spread mean."""
    ref = _two_tone_reference()
    L = torch.full((1, 1, 32, 32), -0.5)
    L[..., 16:] = 0.5
    ab = torch.zeros(1, 2, 32, 32)
    ab[:, :, :, :16] = torch.tensor([0.03, -0.15])[:, None, None]  # nearer the blue than the yellow
    ab[:, :, ::5, :16:5] = torch.tensor([0.0, 0.4])[:, None, None]  # confetti
    ab[:, 1, :, 16:] = torch.where(torch.arange(16) % 2 == 0, -0.3, 0.4)  # columns: half blue-ish, half yellow-ish
    w = torch.ones(1, 1, 32, 32)
    mean = spread(L, ab, w, 8)
    out = palette_vote(L, ab, mean, ref, w, modes=2, radius=8, share=0.7, smooth=0)
    left = out[0, :, 4:28, 2:12]
    torch.testing.assert_close(left, torch.tensor([0.1, -0.4])[:, None, None].expand_as(left), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, :, 4:28, 20:30], mean[0, :, 4:28, 20:30])  # (no colour above 0.7)
    smooth = palette_vote(L, ab, mean, ref, w, modes=2, radius=8, share=0.7, smooth=4)
    assert (smooth[0, :, 4:28, 2:10] - left[:, :, :8]).abs().max() < 0.02  # inside a region the smoothing changes nothing


def test_the_models_palette_vote_keeps_colours_the_reference_has(pair):
    """With palette_modes on (and a gate that applies in full) the output's colour histogram meets the
    reference's more; off, the other palette settings change nothing."""
    from napari_colorize.metrics import his

    model = nc.load_model("exemplar", device="cpu")
    grey, ref, _ = pair
    cfg = {**model.network.config.to_dict(), "coherence_gate": [0.98, 0.99], "palette_modes": 0}
    model.network.config = ExemplarConfig.from_dict(cfg)
    before = nc.colorize(model, grey, reference=ref, size=96).rgb
    model.network.config = ExemplarConfig.from_dict({**cfg, "palette_share": 0.3, "palette_smooth": 2})
    np.testing.assert_array_equal(nc.colorize(model, grey, reference=ref, size=96).rgb, before)  # off: unchanged
    model.network.config = ExemplarConfig.from_dict({**cfg, "palette_modes": 8, "palette_share": 0.4, "palette_smooth": 0})
    after = nc.colorize(model, grey, reference=ref, size=96).rgb
    assert np.isfinite(after).all() and not np.array_equal(after, before)
    small = np.asarray(ref, np.float32)[::4, ::4] / 255.0
    assert his(after, small) > his(before, small)


def test_palette_blur_softens_a_chroma_step_and_keeps_flat_regions():
    ref = _two_tone_reference()
    L = torch.full((1, 1, 32, 32), -0.5)
    L[..., 16:] = 0.5
    ab = torch.zeros(1, 2, 32, 32)
    ab[:, 1, :, :16], ab[:, 1, :, 16:] = -0.35, 0.45  # blue-ish left, yellow-ish right: each side one vote
    w = torch.ones(1, 1, 32, 32)
    sharp = palette_vote(L, ab, spread(L, ab, w, 8), ref, w, modes=2, radius=8, share=0.5, smooth=0)
    soft = palette_vote(L, ab, spread(L, ab, w, 8), ref, w, modes=2, radius=8, share=0.5, smooth=0, blur=2.0)
    assert (sharp[0, 1, :, 15] - sharp[0, 1, :, 16]).abs().min() > 0.8  # the step between the two colours
    assert (soft[0, 1, :, 15] - soft[0, 1, :, 16]).abs().max() < 0.5    # softened
    torch.testing.assert_close(soft[..., 2:6], sharp[..., 2:6], atol=1e-5, rtol=0)  # far from it: unchanged


def test_a_flat_or_tiny_reference_gives_its_own_colours_without_warnings():
    import warnings

    flat = torch.zeros(3, 8, 8)
    flat[1], flat[2] = 0.2, -0.1
    tiny = torch.tensor([[[0.0, 0.5]], [[0.3, -0.2]], [[0.1, 0.4]]])  # (3, 1, 2): two colours
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = palette_modes(flat, 6)
        two = palette_modes(tiny, 6, step=1)
    assert torch.allclose(one, torch.tensor([0.2, -0.1]).expand(6, 2))
    assert {(round(a, 4), round(b, 4)) for a, b in two.tolist()} == {(0.3, 0.1), (-0.2, 0.4)}


def test_the_palette_is_computed_once_per_reference_and_not_for_a_reference_of_the_same_scene(pair, monkeypatch):
    from napari_colorize.models import adapters

    calls = []
    real = adapters.palette_modes
    monkeypatch.setattr(adapters, "palette_modes", lambda *a, **k: calls.append(1) or real(*a, **k))
    grey, ref, _ = pair
    model = nc.load_model("exemplar", device="cpu")
    cfg = model.network.config.to_dict()
    model.network.config = ExemplarConfig.from_dict({**cfg, "coherence_gate": [0.98, 0.99]})  # (applies in full)
    stack = np.stack([grey[::4, ::4], grey[::4, ::4][::-1], grey[::4, ::4][:, ::-1]])
    nc.colorize(model, stack, reference=ref[::4, ::4], temporal=0)
    assert len(calls) == 1  # three slices, one reference: one palette
    model.network.config = ExemplarConfig.from_dict({**cfg, "coherence_gate": [0.0, 0.01]})  # (gate 0 for all)
    calls.clear()
    shut = nc.colorize(model, grey[::4, ::4], reference=ref[::4, ::4]).rgb
    assert not calls
    model.network.config = ExemplarConfig.from_dict({**cfg, "coherence_gate": [0.0, 0.01], "palette_modes": 0})
    np.testing.assert_array_equal(nc.colorize(model, grey[::4, ::4], reference=ref[::4, ::4]).rgb, shut)


def test_the_histogram_mix_is_that_share_of_the_histogram_networks_colour_where_the_gate_is_open(pair, monkeypatch):
    """histogram_mix m with a gate that applies in full: the output's ab (before the dark fades, switched
    off here) is (1 - m) of the exemplar network's own plus m of the histogram network's given the
    reference's histogram; the histogram network is prepared once per reference (a stack: once), and not
    run at all for a reference of the same scene (gate 0), whose output equals the mix switched off."""
    from napari_colorize.models import adapters

    grey, ref, _ = pair
    g, r = grey[::4, ::4], ref[::4, ::4]
    model = nc.load_model("exemplar", device="cpu")
    assert model.companion is not None and model.companion.kind == "histogram"  # (the default mixes it in)
    cfg = {**model.network.config.to_dict(), "coherence_gate": [0.98, 0.99], "dark_chroma": 0.0,
           "black_chroma": 0.0, "histogram_scale": 1.0}
    seen = []
    real = adapters.ExemplarNetColorizer.companion_ab

    def spy(self, L, state):
        ab, state = real(self, L, state)
        seen.append(ab)
        return ab, state

    monkeypatch.setattr(adapters.ExemplarNetColorizer, "companion_ab", spy)
    L = torch.from_numpy(np.ascontiguousarray(grey[:256:4, :256:4], np.float32) / 127.5 - 1.0)[None, None]
    rt = torch.from_numpy(np.ascontiguousarray(ref[:256:4, :256:4], np.float32) / 255.0).permute(2, 0, 1)[None]
    abs_ = {}
    for m in (0.0, 0.3, 1.0):
        model.network.config = ExemplarConfig.from_dict({**cfg, "histogram_mix": m})
        abs_[m] = model.predict(L, model.prepare(reference=rt)).ab
    assert len(seen) == 2  # (not run with the mix off)
    assert torch.allclose(abs_[1.0], seen[-1], atol=1e-5)
    assert torch.allclose(abs_[0.3], 0.7 * abs_[0.0] + 0.3 * abs_[1.0], atol=1e-5)
    assert (abs_[1.0] - abs_[0.0]).abs().mean() > 0.01  # (the two networks' colours differ: the test can fail)
    seen.clear()
    stack = np.stack([g, g[::-1], g[:, ::-1]])
    prepared = []
    real_prepare = model.companion.prepare
    monkeypatch.setattr(model.companion, "prepare", lambda **k: prepared.append(1) or real_prepare(**k))
    nc.colorize(model, stack, reference=r, temporal=0, rgb=False)
    assert len(seen) == 3 and len(prepared) == 1  # three slices, one reference: one histogram
    sent = model.precompute(model.prepare(reference=rt))  # (what a cluster's workers get: computed once, here)
    assert "companion" in sent and len(prepared) == 2
    model.network.config = ExemplarConfig.from_dict({**cfg, "coherence_gate": [0.0, 0.01]})  # (gate 0 for all)
    seen.clear()
    shut = nc.colorize(model, g, reference=r).rgb
    assert not seen
    model.network.config = ExemplarConfig.from_dict({**cfg, "coherence_gate": [0.0, 0.01], "histogram_mix": 0.0})
    np.testing.assert_array_equal(nc.colorize(model, g, reference=r).rgb, shut)


def test_the_histogram_network_runs_at_the_configs_scale_and_its_colour_comes_back_at_full_size(pair):
    """histogram_scale 0.5: the histogram network sees the target at half the working size (a multiple of
    its stride) and its colour is resized back; a model whose config mixes the histogram network in but
    has none attached says so, and attach_companion gives it one."""
    from napari_colorize.models.registry import attach_companion

    grey, ref, _ = pair
    model = nc.load_model("exemplar", device="cpu")
    sizes = []
    real = model.companion.predict
    model.companion.predict = lambda L, state, **k: sizes.append(tuple(L.shape[-2:])) or real(L, state, **k)
    cfg = {**model.network.config.to_dict(), "coherence_gate": [0.98, 0.99], "histogram_scale": 0.5}
    model.network.config = ExemplarConfig.from_dict(cfg)
    res = nc.colorize(model, grey[::4, ::4], reference=ref[::4, ::4], size=128)
    assert sizes == [(64, 64)] and np.isfinite(res.rgb).all()
    sizes.clear()  # (each side to the nearest multiple of the stride, 32, halves up: 112 -> 128, 96 -> 96)
    nc.colorize(model, grey[:224, :224], reference=ref[::4, ::4], size=224)
    nc.colorize(model, grey[:192, :192], reference=ref[::4, ::4], size=192)
    assert sizes == [(128, 128), (96, 96)]
    plain = nc.load_model("exemplar-plain", device="cpu")
    plain.network.config = ExemplarConfig.from_dict({**plain.network.config.to_dict(), "histogram_mix": 0.5,
                                                     "coherence": 4})
    with pytest.raises(RuntimeError, match="attach_companion"):
        nc.colorize(plain, grey[::4, ::4], reference=ref[::4, ::4], size=64)
    attach_companion(plain)
    assert np.isfinite(nc.colorize(plain, grey[::4, ::4], reference=ref[::4, ::4], size=64).rgb).all()


def test_a_checkpoint_that_mixes_in_the_histogram_network_gets_it_with_its_provenance_and_cache_key(pair, tmp_path):
    """A checkpoint file whose config has histogram_mix loads with the histogram network it names beside it
    (on the model's device), the provenance record names that network's weights, and the guide cache does
    not hand one histogram network's features to another: after the companion is swapped, the output
    equals a run with an empty cache."""
    from napari_colorize.guide_cache import GUIDE_CACHE
    from napari_colorize.models.registry import load_model, save_checkpoint
    from napari_colorize.provenance import describe, record

    shipped = load_model("exemplar", device="cpu")
    path = save_checkpoint(shipped.network, tmp_path / "mix.safetensors", {"name": "mix"})
    model = load_model(path, device="cpu")
    assert model.network.config.histogram_mix == 0.5 and model.companion is not None
    assert model.companion.device == model.device and model.companion.name == "histogram-companion"
    entry = record(model)["model"]["mixes_in"]
    assert entry["source"] == "histogram-companion" and len(entry["weights_sha256"]) == 64
    assert f"mixes in: histogram-companion (histogram), weights sha256 {entry['weights_sha256'][:16]}" in describe(record(model))
    grey, ref, _ = pair
    g, r = grey[::4, ::4], ref[::4, ::4]
    model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(),
                                                     "coherence_gate": [0.98, 0.99], "histogram_mix": 1.0})
    first = nc.colorize(model, g, reference=r).rgb
    model.companion = load_model("histogram-plain", device="cpu")
    model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(),
                                                     "histogram_model": "histogram-plain"})
    swapped = nc.colorize(model, g, reference=r).rgb
    GUIDE_CACHE.clear()
    np.testing.assert_array_equal(nc.colorize(model, g, reference=r).rgb, swapped)
    assert np.abs(swapped - first).max() > 0.01  # (the two histogram networks differ: the test can fail)


def test_the_config_names_the_histogram_network_it_mixes_in():
    """histogram_model names the registered histogram network attach_companion loads; a name of another
    kind says which are known, and a path is refused by the config's validation (a file's config never
    names a file to load)."""
    from napari_colorize.models.registry import attach_companion

    def plain_with(**over):
        model = nc.load_model("exemplar-plain", device="cpu")
        model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(), "histogram_mix": 0.5,
                                                         **over})
        return model

    assert attach_companion(plain_with()).companion.name == "histogram"
    assert attach_companion(plain_with(histogram_model="histogram-plain")).companion.name == "histogram-plain"
    with pytest.raises(ValueError, match="not a registered histogram network.*histogram-plain"):
        attach_companion(plain_with(histogram_model="exemplar"))
    for bad in ("../weights/histogram.safetensors", "/tmp/x", "Histogram", "", 3):
        with pytest.raises(ValueError, match="histogram_model"):
            plain_with(histogram_model=bad)
    # the config names another network than the attached one: predicting says so, attach_companion swaps it
    model = attach_companion(plain_with())
    model.network.config = ExemplarConfig.from_dict({**model.network.config.to_dict(), "coherence": 4,
                                                     "histogram_model": "histogram-plain"})
    g, r = np.full((48, 48), 120, np.uint8), np.random.default_rng(0).integers(0, 255, (48, 48, 3), np.uint8)
    with pytest.raises(RuntimeError, match="'histogram-plain'.*'histogram' is attached.*attach_companion"):
        nc.colorize(model, g, reference=r, size=64)
    assert attach_companion(model).companion.name == "histogram-plain"
    assert np.isfinite(nc.colorize(model, g, reference=r, size=64).rgb).all()


def test_a_checkpoint_naming_an_unknown_histogram_network_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """A checkpoint whose config mixes in a network that is not a registered histogram network: a
    CheckpointError naming the file, before any network is built; one written before histogram_model
    existed (no such key) mixes in ``histogram``."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from napari_colorize.models import registry
    from napari_colorize.models.registry import CheckpointError, load_model, save_checkpoint

    path = save_checkpoint(load_model("exemplar", device="cpu").network, tmp_path / "mix.safetensors", {"name": "mix"})

    def with_config(name, **over):
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["napari_colorize"])
        cfg = {k: v for k, v in {**meta["config"], **over}.items() if v is not None}
        out = tmp_path / name
        save_file(load_file(str(path)), str(out), metadata={"napari_colorize": json.dumps({**meta, "config": cfg})})
        return out

    built = []
    real = registry.build_network
    monkeypatch.setattr(registry, "build_network", lambda *a, **k: built.append(1) or real(*a, **k))
    with pytest.raises(CheckpointError, match="odd.safetensors.*'exemplar'.*not a registered histogram network"):
        load_model(with_config("odd.safetensors", histogram_model="exemplar"), device="cpu")
    assert not built
    old = load_model(with_config("old.safetensors", histogram_model=None), device="cpu")
    assert old.network.config.histogram_model == "histogram" and old.companion.name == "histogram"


def test_odd_colours_move_to_their_region_and_the_others_keep_theirs():
    """A red blotch on a green region (an odd match) takes the region's green; a colour a few ab units
    from its region's keeps itself exactly; a region of its own lightness keeps its own colour."""
    from napari_colorize.models.coherence import odd_colours

    L = torch.zeros(1, 1, 48, 48)
    L[..., 24:] = 0.8  # two regions of the grey image
    ab = torch.zeros(1, 2, 48, 48)
    ab[:, 1, :, :24] = 30 / 110  # green-ish (b*) on the left
    ab[:, 0, :, 24:] = 40 / 110  # red on the right: a region of its own
    ab[:, :, 10:14, 10:14] = torch.tensor([45 / 110, 0.0])[:, None, None]  # a red blotch on the left
    ab[:, 1, 30, 5] += 4 / 110  # a colour a little off its region's
    conf = torch.full((1, 1, 48, 48), 0.8)
    conf[..., 10:14, 10:14] = 0.4
    out = odd_colours(L, ab, conf, 8, 10.0)
    assert float((out[0, :, 10:14, 10:14] - ab[0, :, 20, 5, None, None]).norm(dim=0).max()) * 110 < 10
    assert torch.equal(out[0, :, 30, 5], ab[0, :, 30, 5])
    assert torch.allclose(out[0, :, 40, 40], ab[0, :, 40, 40], atol=1e-4)


def test_scene_coherence_applies_to_a_reference_of_the_same_scene_only():
    """``scene_coherence`` changes the colour where the gates call the reference the same scene (the photo's own
    flipped copy) and leaves an unrelated reference's colour exactly as it was."""
    from skimage import data

    from napari_colorize.models.configs import ExemplarConfig

    photo = data.chelsea()[::2, ::2]
    grey = photo.mean(-1).astype(np.uint8)
    flipped = np.ascontiguousarray(photo[:, ::-1])
    rng = np.random.default_rng(0)
    unrelated = (rng.random((16, 16, 3)) * 255).astype(np.uint8).repeat(12, 0).repeat(12, 1)
    plain, odd = nc.load_model("exemplar"), nc.load_model("exemplar")
    odd.network.config = ExemplarConfig.from_dict({**odd.network.config.to_dict(), "scene_coherence": 8})
    same = [nc.colorize(m, grey, reference=flipped).rgb for m in (plain, odd)]
    assert np.isfinite(same[1]).all() and np.abs(same[1] - same[0]).max() > 0.005  # (a few odd colours moved)
    other = [nc.colorize(m, grey, reference=unrelated).rgb for m in (plain, odd)]
    assert np.array_equal(other[0], other[1])
    # without a gate there is no "same scene": refused, not silently ignored
    with pytest.raises(ValueError, match="scene_coherence needs coherence_gate"):
        ExemplarConfig.from_dict({**odd.network.config.to_dict(), "coherence_gate": None})
