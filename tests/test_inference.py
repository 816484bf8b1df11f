import numpy as np
import pytest
import torch
from skimage import color

import napari_colorize as nc
from napari_colorize.color import grey_to_L
from napari_colorize.inputs import working_shape
from napari_colorize.upsample import recombine


def _L_of_grey_uint8(grey):
    return grey_to_L(torch.from_numpy(grey.astype(np.float32) / 255)).numpy()


@pytest.mark.parametrize("which", ["welsh", "exemplar_random"])
def test_output_keeps_the_target_lightness(which, small_pair, request):
    grey, ref, _ = small_pair
    model = nc.load_model("welsh") if which == "welsh" else request.getfixturevalue(which)
    res = nc.colorize(model, grey, reference=ref)
    assert res.rgb.shape == grey.shape + (3,) and res.rgb.dtype == np.float32
    assert res.rgb.min() >= 0 and res.rgb.max() <= 1
    L_out = color.rgb2lab(res.rgb.astype(np.float64))[..., 0]
    assert np.abs(L_out - _L_of_grey_uint8(grey)).max() < 0.05
    assert np.hypot(*color.rgb2lab(res.rgb)[..., 1:].transpose(2, 0, 1)).mean() > 1  # it has colour


def test_exemplar_result_has_scales_and_attention(exemplar_random, small_pair):
    grey, ref, _ = small_pair
    res = nc.colorize(exemplar_random, grey, reference=ref)
    h, w = res.working_shape
    assert h % 32 == 0 and w % 32 == 0
    assert [s.shape for s in res.scales] == [(h // 2, w // 2, 3), (h // 4, w // 4, 3), (h // 8, w // 8, 3),
                                            (h // 16, w // 16, 3)]
    assert set(res.attention) == {"level4.module1", "level4.module2", "level5.module1", "level5.module2"}
    m = res.attention["level5.module2"]
    assert m.shape == (h // 32, w // 32)
    assert nc.colorize(exemplar_random, grey, reference=ref, return_attention=False).attention == {}


def test_histogram_model_with_histogram_or_reference(histogram_random, small_pair):
    grey, ref, _ = small_pair
    hist = nc.histogram_from_rgb(ref)
    a = nc.colorize(histogram_random, grey, histogram=hist)
    b = nc.colorize(histogram_random, grey, reference=ref)
    d = np.abs(a.rgb - b.rgb)  # the same up to float noise (1e-5 in ab, a pixel at a gamut edge may flip)
    assert d.max() < 5e-3 and d.mean() < 1e-5
    h, w = a.working_shape
    att = a.attention["pixel_to_bin"]
    assert att.shape == np.asarray(att).shape == (h // 4, w // 4, 21, 21)
    assert np.allclose(att.weights.sum((-1, -2)), 1, atol=1e-4)
    # its cells placed as EfficientNet's stride-4 tap (cell i on working pixel 4 i), to lay over the target
    assert att.stride == 4 and not att.block_centred and att.on_pixels(att.concentration()).shape == (h, w)


def test_working_shape_rules():
    assert working_shape((500, 741), 224, 32) == (160, 224)
    assert working_shape((100, 60), 224, 32) == (96, 64)  # never enlarged, only rounded
    assert working_shape((1, 1), 224, 32) == (32, 32)
    assert working_shape((10000, 16), 256, 32) == (256, 32)
    assert working_shape((4096, 4096), 256, 1) == (256, 256)


def test_uint16_is_percentile_stretched(exemplar_random, small_pair, rng):
    grey, ref, _ = small_pair
    g16 = (grey.astype(np.uint16) * 20 + 1000).astype(np.uint16)  # a narrow band of the uint16 range
    g16[0, 0] = 65535  # one hot pixel
    res = nc.colorize("welsh", g16, reference=ref)
    lo, hi = res.intensity_range
    assert 1000 <= lo < hi < 65535
    L = color.rgb2lab(res.rgb)[..., 0]
    assert L.max() - L.min() > 80  # full contrast, not a dark band
    assert L[0, 0] == pytest.approx(100, abs=0.1)  # clipped to white


def test_float_image_in_unit_range_is_used_as_is(small_pair):
    grey, ref, _ = small_pair
    f = grey.astype(np.float32) / 255
    a = nc.colorize("welsh", f, reference=ref)
    b = nc.colorize("welsh", grey, reference=ref)
    assert a.intensity_range == (0.0, 1.0)
    assert np.allclose(a.rgb, b.rgb, atol=1e-3)


def test_stack_is_colourised_slice_by_slice_with_progress(exemplar_random, small_pair):
    grey, ref, _ = small_pair
    f = grey.astype(np.float32) / 255
    stack = np.stack([f, f[::-1].copy(), np.ascontiguousarray(f[:, ::-1])])
    seen = []
    res = nc.colorize(exemplar_random, stack, reference=ref, progress=lambda d, t: seen.append((d, t)), temporal=0)
    assert res.rgb.shape == stack.shape + (3,)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    # stacks are smoothed along the stack by default (DEFAULT_TEMPORAL neighbours)
    default = nc.colorize(exemplar_random, stack, reference=ref, return_attention=False).rgb
    assert np.array_equal(default, nc.colorize(exemplar_random, stack, reference=ref, return_attention=False,
                                               temporal=nc.temporal.DEFAULT_TEMPORAL).rgb)
    assert not np.allclose(default, res.rgb, atol=1e-3)
    # temporal=0, cached reference features: each slice equals colourising it alone
    for i in range(3):
        alone = nc.colorize(exemplar_random, stack[i], reference=ref, return_attention=False)
        assert np.abs(alone.rgb - res.rgb[i]).max() < 1e-4


def test_4d_stack_with_rgb_false(small_pair):
    grey, ref, _ = small_pair
    g = grey[:40, :50]
    stack = np.stack([np.stack([g, g]), np.stack([g, g])])  # (T, Z, Y, X)
    res = nc.colorize("reinhard", stack, reference=ref, rgb=False)
    assert res.rgb.shape == (2, 2, 40, 50, 3)


def test_cancel_between_slices(small_pair):
    grey, ref, _ = small_pair
    stack = np.stack([grey] * 4)
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(nc.Cancelled, match="2 of 4"):
        nc.colorize("welsh", stack, reference=ref, should_cancel=should_cancel)


def test_banded_recombination_equals_one_band(rng):
    L = torch.from_numpy(rng.uniform(0, 100, (300, 200)).astype(np.float32))
    ab = torch.from_numpy(rng.uniform(-0.5, 0.5, (2, 64, 32)).astype(np.float32))
    Lw = torch.nn.functional.interpolate(L[None, None], size=(64, 32), mode="bilinear", antialias=True)[0, 0]
    a = recombine(L, ab, Lw, band=37)
    b = recombine(L, ab, Lw, band=10_000)
    # float32 rounding differs with the band's shape (vectorised loops) and the gamut mapping can amplify it
    # near the gamut's edge (one pixel, 5e-5, on some CPUs); a band at a wrong row would be off by far more
    assert np.allclose(a, b, atol=2e-4)


def test_edge_aware_upsampling_follows_the_full_resolution_edge():
    """ab predicted at low resolution jumps where L jumps; upsampled, the colour edge must
    sit on the full-resolution luminance edge, not be smeared across it like bilinear."""
    H, W, h, w = 256, 256, 32, 32
    L = torch.full((H, W), 30.0)
    L[:, 133:] = 70.0  # edge at column 133 (not on the low-res grid)
    Lw = torch.nn.functional.interpolate(L[None, None], size=(h, w), mode="bilinear", antialias=True)[0, 0]
    ab = torch.zeros(2, h, w)
    ab[0] = torch.where(Lw > 50, 0.2, -0.2)  # a = +-22: inside the gamut at both lightnesses
    rgb = recombine(L, ab, Lw)
    a = color.rgb2lab(rgb)[..., 1]
    assert a[:, 132].max() < -15 and a[:, 133].min() > 10  # the colour edge is on the luminance edge
    truth = np.where(np.arange(120, 146) >= 133, 22.0, -22.0)
    bil = torch.nn.functional.interpolate(ab[None], size=(H, W), mode="bilinear")[0, 0].numpy() * 110
    err_ours = np.abs(a[:, 120:146] - truth).mean()
    err_bilinear = np.abs(bil[:, 120:146] - truth).mean()
    assert err_ours < 0.2 * err_bilinear


def test_large_image_bounded_path(rng):
    grey = (rng.random((1500, 1300)) * 65535).astype(np.uint16)
    ref = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    res = nc.colorize("reinhard", grey, reference=ref, size=128)
    assert res.rgb.shape == (1500, 1300, 3)
    assert max(res.working_shape) == 128


def test_lazy_stack_computes_only_the_slices_read(exemplar_random, small_pair, monkeypatch):
    import dask.array as da

    grey, ref, _ = small_pair
    f = grey.astype(np.float32) / 255
    stack = da.from_array(np.stack([f, f[::-1].copy(), f * 0.5]), chunks=(1,) + f.shape)
    calls = []
    real = exemplar_random.predict
    monkeypatch.setattr(exemplar_random, "predict", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    lazy = nc.lazy_colorize(exemplar_random, stack, reference=ref)
    assert isinstance(lazy, da.Array) and lazy.shape == (3,) + f.shape + (3,)
    assert calls == []
    one = np.asarray(lazy[1])
    assert len(calls) == 1
    alone = nc.colorize(exemplar_random, f[::-1].copy(), reference=ref, return_attention=False)
    assert np.abs(one - alone.rgb).max() < 1e-4


def test_scales_and_attention_are_converted_only_when_read(exemplar_random, small_pair, monkeypatch):
    """The whole call costs about the network: P1-P4 colours and attention maps are converted on
    first access, and then give what an eager conversion gives."""
    import napari_colorize.inference as inf

    grey, ref, _ = small_pair
    calls = []
    real = inf.scales_to_rgb
    monkeypatch.setattr(inf, "scales_to_rgb", lambda *a: calls.append(1) or real(*a))
    res = nc.colorize(exemplar_random, grey, reference=ref)
    assert calls == []  # nothing converted yet
    assert len(res.scales) == 4 and calls == [1]
    assert res.scales[0].shape[-1] == 3 and res.scales[0].dtype == np.float32
    assert len(res.scales) == 4 and calls == [1]  # converted once
    maps = res.attention
    assert "level5.module1" in maps and abs(float(maps["level5.module1"].effective(0, 0).sum()) - 1) < 1e-4


def test_temporal_consistency_reduces_flicker_and_keeps_a_still_stack(exemplar_random, small_pair):
    """A stack of one image with noise that changes per slice: the smoothed colours change less between
    slices than slice-by-slice ones; identical slices stay exactly as they are alone; the stack
    axis's runs are kept apart in n-D stacks; bad values are refused."""
    grey, ref, _ = small_pair
    rng = np.random.default_rng(0)
    stack = np.stack([np.clip(grey.astype(np.float32) + rng.normal(0, 12, grey.shape), 0, 255) for _ in range(6)])
    stack = stack.astype(np.uint8)
    plain = nc.colorize(exemplar_random, stack, reference=ref, temporal=0, return_attention=False).rgb
    smooth = nc.colorize(exemplar_random, stack, reference=ref, temporal=2, return_attention=False).rgb

    def change(rgb):  # mean |ab| change between consecutive slices (their lightness is the input's)
        ab = color.rgb2lab(rgb)[..., 1:]
        return float(np.abs(np.diff(ab, axis=0)).mean())

    assert change(smooth) < 0.8 * change(plain)
    still = np.stack([grey] * 3)
    alone = nc.colorize(exemplar_random, grey, reference=ref, return_attention=False).rgb
    for s in nc.colorize(exemplar_random, still, reference=ref, temporal=1, return_attention=False).rgb:
        assert np.allclose(s, alone, atol=1e-5)
    # (2, 3, H, W): slices are smoothed within each run of 3, never across the two runs
    two = np.stack([np.stack([grey] * 3), np.stack([255 - grey] * 3)])
    out = nc.colorize(exemplar_random, two, reference=ref, temporal=3, rgb=False, return_attention=False).rgb
    inv = nc.colorize(exemplar_random, 255 - grey, reference=ref, return_attention=False).rgb
    assert np.allclose(out[1, 0], inv, atol=1e-5) and np.allclose(out[0, 2], alone, atol=1e-5)
    with pytest.raises(ValueError, match="temporal"):
        nc.colorize(exemplar_random, stack, reference=ref, temporal=-1)


def test_temporal_smoothing_follows_a_pan():
    """Neighbours are moved onto the slice before their colour is shared: a coloured structure that
    moves keeps its own colour (without the alignment it is smeared with the background's)."""
    import torch

    from napari_colorize.temporal import global_shift, temporal_smooth, translate

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    texture = 40 + 10 * torch.sin(yy / 3) * torch.cos(xx / 4)
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 100).float()
    L0 = texture + 30 * disc
    ab0 = torch.stack([disc * 0.5, -disc * 0.3])  # coloured disc, neutral background
    Ls, abs_ = [], []
    for t in (-1, 0, 1):  # panned 3 px per slice
        moved, _ = translate(torch.cat([ab0, L0[None]]), 0.0, 3.0 * t)
        abs_.append(moved[:2])
        Ls.append(moved[2])
    assert abs(global_shift(Ls[1], Ls[0])[1] - 3.0) < 0.3
    inner = (slice(8, 56), slice(8, 56))
    aligned = temporal_smooth(abs_, Ls, 1, sigma_L=1000.0)  # lightness weights off: the alignment alone
    blended = temporal_smooth(abs_, Ls, 1, sigma_L=1000.0, align=False)
    err_aligned = (aligned - abs_[1])[:, inner[0], inner[1]].abs().mean()
    err_blended = (blended - abs_[1])[:, inner[0], inner[1]].abs().mean()
    assert err_aligned < 0.2 * err_blended
    # nothing moves on a still stack: the alignment changes nothing
    still = temporal_smooth([ab0, ab0, ab0], [L0, L0, L0], 1)
    assert torch.allclose(still, ab0, atol=1e-6)


def _old_temporal_smooth(abs_, Ls, centre, sigma_t=2.0, sigma_L=6.0):
    """The smoothing before issue 21: every neighbour registered directly on the centre slice by
    skimage's phase correlation (upsample 4)."""
    import math

    import torch
    from skimage.registration import phase_cross_correlation

    from napari_colorize.temporal import translate

    num, den = torch.zeros_like(abs_[centre]), torch.zeros_like(Ls[centre])
    for k, (ab, L) in enumerate(zip(abs_, Ls)):
        valid = 1.0
        if k != centre:
            s, _, _ = phase_cross_correlation(Ls[centre].double().numpy(), L.double().numpy(), upsample_factor=4)
            dy, dx = float(s[0]), float(s[1])
            if abs(dy) > 0.125 * L.shape[0] or abs(dx) > 0.125 * L.shape[1]:
                dy = dx = 0.0
            if dy or dx:
                moved, valid = translate(torch.cat([ab, L[None]]), dy, dx)
                ab, L = moved[:2], moved[2]
        w = math.exp(-((k - centre) ** 2) / (2 * sigma_t**2)) * torch.exp(-((L - Ls[centre]) ** 2) / (2 * sigma_L**2))
        num += w * valid * ab
        den += w * valid
    return num / den


def test_composed_shifts_match_direct_ones_and_the_smoothing_is_kept():
    """One shift per consecutive pair, summed for neighbours further away: on a panned sequence (with
    noise per frame) the sums match a direct registration of each neighbour within 0.5 px, and the
    smoothed colours are those of the earlier implementation (direct skimage registrations)."""
    import torch
    from scipy.ndimage import shift as nd_shift

    from napari_colorize.temporal import StackMotion, global_shift, temporal_smooth

    from skimage import data

    rng = np.random.default_rng(1)
    photo = data.camera().astype(np.float32)[100:360, 100:380] / 255 * 100  # a photo: structure at every scale
    steps = [(0.0, 0.0), (0.6, 2.7), (1.1, 5.3), (1.9, 8.2), (2.2, 10.6), (3.0, 13.4), (3.5, 16.1)]  # uneven pan
    Ls, abs_ = [], []
    for d in steps:
        L = nd_shift(photo, d, order=1, mode="nearest")[40:200, 40:240]
        Ls.append(torch.from_numpy((L + rng.normal(0, 1.0, L.shape)).astype(np.float32)))
        ab = np.stack([(L - 50) / 150, np.sin(L / 15) * 0.3]) + rng.normal(0, 0.05, (2,) + L.shape)
        abs_.append(torch.from_numpy(ab.astype(np.float32)))
    motion = StackMotion(lambda j: Ls[j])
    c = 3
    for j in range(len(Ls)):
        composed = np.array(motion.between(c, j))
        direct = np.array(global_shift(Ls[c], Ls[j]))
        truth = np.array(steps[c]) - np.array(steps[j])
        assert np.abs(composed - direct).max() < 0.5 and np.abs(composed - truth).max() < 0.5, (j, composed, direct)
    assert len(motion.pairs) == len(Ls) - 1  # each consecutive pair correlated once
    new = temporal_smooth(abs_, Ls, c)
    old = _old_temporal_smooth(abs_, Ls, c)
    inner = (slice(None), slice(20, -20), slice(20, -20))
    assert float((new - old)[inner].abs().mean()) < 0.01 and float((new - old)[inner].abs().max()) < 0.1
    assert float((new - abs_[c])[inner].abs().mean()) > 0.02  # (the smoothing did change something)


def test_a_large_reference_is_reduced_before_it_becomes_float():
    """The reference is needed at the working size only: one much larger is block-averaged in its own
    dtype first (no full-size float copy: tracemalloc's peak stays near the uint8 image's size), and
    what the network sees is close to resizing the full-size float reference."""
    import tracemalloc

    import torch

    import torch.nn.functional as F

    from napari_colorize.inputs import prepare_reference

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:1200, 0:1000]
    ref = np.stack([128 + 100 * np.sin(xx / 40), 128 + 100 * np.cos(yy / 55), (xx + yy) % 256], -1)
    ref = np.clip(ref + rng.normal(0, 10, ref.shape), 0, 255).astype(np.uint8)
    full = prepare_reference(ref)
    assert full.shape == ref.shape and full.dtype == np.float32
    assert np.array_equal(full, np.clip(ref.astype(np.float64) / 255, 0, 1).astype(np.float32))  # as before
    tracemalloc.start()
    small = prepare_reference(ref, shape=(224, 192))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert small.shape == (600, 500, 3) and small.dtype == np.float32  # reduced by 2, to >= 2x the working size
    assert peak < ref.nbytes + small.nbytes  # (before: a float64 copy of the reference, 8x its size, and more)
    to_work = lambda x: F.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=(224, 192),  # noqa: E731
                                      mode="bilinear", align_corners=False, antialias=True)[0]
    assert float((to_work(small) - to_work(full)).abs().mean()) < 0.01


def test_the_lightness_of_a_large_slice_is_computed_in_bands_as_before():
    """TargetView.L works in bands of rows (no float64 copy of the slice) and gives what the whole
    slice at once gave: uint16 stretched, and float data with non-finite values replaced."""
    from napari_colorize.color import grey_to_L
    from napari_colorize.inputs import TargetView

    rng = np.random.default_rng(4)
    img = rng.integers(800, 4000, (700, 1600)).astype(np.uint16)  # > 1 band (1M values per band)
    v = TargetView(img, None, "auto", (0.1, 99.9), [])
    x = np.clip((img.astype(np.float64) * 0.5 - 0.5 * v.lo) / (0.5 * v.hi - 0.5 * v.lo), 0, 1)
    assert np.array_equal(v.L(0).numpy(), grey_to_L(torch.from_numpy(x.astype(np.float32))).numpy())
    f = rng.normal(5.0, 2.0, (700, 1600))
    f[3, 5] = np.nan
    sink = []
    vf = TargetView(f, None, "auto", (0.1, 99.9), [])
    L = vf.L(0, sink)
    g = f.copy()
    g[3, 5] = vf.lo
    x = np.clip((g * 0.5 - 0.5 * vf.lo) / (0.5 * vf.hi - 0.5 * vf.lo), 0, 1)
    assert np.array_equal(L.numpy(), grey_to_L(torch.from_numpy(x.astype(np.float32))).numpy())
    assert any("1 NaN/Inf" in w for w in sink)



def _random_exemplar_pair(seed: int):
    """A random-weight exemplar model, a grey target and a reference, with the guide cache emptied."""
    from napari_colorize.guide_cache import GUIDE_CACHE

    torch.manual_seed(0)
    model = nc.load_model("exemplar", device="cpu", pretrained=False)
    rng = np.random.default_rng(seed)
    grey = rng.random((48, 64)).astype(np.float32)
    ref = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
    GUIDE_CACHE.clear()
    return model, grey, ref


def test_a_reference_is_encoded_once_and_the_result_is_the_same():
    """The first call encodes target and reference together and keeps the reference's features; a second
    call with the same reference skips its encoding and gives the same output; another reference (or
    the same array changed) is encoded anew; with the cache off, every call encodes."""
    from napari_colorize.guide_cache import GUIDE_CACHE

    model, grey, ref = _random_exemplar_pair(0)
    passes = []
    real = model.network.backbone.forward
    model.network.backbone.forward = lambda x: passes.append(x.shape[0]) or real(x)
    try:
        first = nc.colorize(model, grey, reference=ref, size=64)
        assert passes == [3]  # target, reference, the reference's grey view: one batch
        again = nc.colorize(model, grey, reference=ref, size=64)
        assert passes == [3, 1]  # the target only
        np.testing.assert_allclose(again.rgb, first.rgb, atol=1e-5)
        np.testing.assert_allclose(again.confidence, first.confidence, atol=1e-5)
        ref2 = ref.copy()
        ref2[0, 0] += 1  # the same array changed: encoded anew
        nc.colorize(model, grey, reference=ref2, size=64)
        assert passes == [3, 1, 3]
        entries = GUIDE_CACHE.entries
        GUIDE_CACHE.entries = 0
        try:
            GUIDE_CACHE.clear()
            nc.colorize(model, grey, reference=ref, size=64)
            nc.colorize(model, grey, reference=ref, size=64)
            assert passes == [3, 1, 3, 3, 3]
        finally:
            GUIDE_CACHE.entries = entries
    finally:
        model.network.backbone.forward = real


def test_the_guide_cache_is_bounded():
    """At most `entries` states a model (least recently used out first), none over max_bytes, none kept
    for a model once it is gone."""
    import gc

    from napari_colorize.guide_cache import GuideCache

    class M:
        pass

    cache, m = GuideCache(entries=2, max_bytes=1000), M()
    small = {"x": np.zeros(10, np.float32)}
    for k in "abc":
        cache.put(m, k, small)
    assert cache.get(m, "a") is None and cache.get(m, "b") is small and len(cache) == 2
    cache.put(m, "big", {"x": np.zeros(1000, np.float32)})
    assert cache.get(m, "big") is None
    grown = {"x": np.zeros(10, np.float32)}
    cache.put(m, "d", grown)
    grown["features"] = np.zeros(1000, np.float32)  # a state that grew past the bound after it was kept
    assert cache.get(m, "d") is None
    del m
    gc.collect()
    assert len(cache) == 0


def test_a_changed_network_never_reuses_a_cached_reference():
    """Weights loaded into the same model object (in place) or another config: the reference is encoded
    anew, and the output is that of a model that never saw the first weights."""
    from napari_colorize.guide_cache import GUIDE_CACHE

    model, grey, ref = _random_exemplar_pair(1)
    nc.colorize(model, grey, reference=ref, size=64)
    torch.manual_seed(5)
    other = nc.load_model("exemplar", device="cpu", pretrained=False)
    model.network.load_state_dict(other.network.state_dict())  # (in place: same tensors, new values)
    got = nc.colorize(model, grey, reference=ref, size=64).rgb
    GUIDE_CACHE.clear()
    want = nc.colorize(other, grey, reference=ref, size=64).rgb
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_predict_leaves_the_guide_state_it_is_given_as_it_was():
    """A model's predict returns what it encodes of the guide (Prediction.state) instead of writing it into
    the caller's state (two threads with one state, or a cached one, would see it change under them); the
    engine adds it (plan.keep_guide), after which a second prediction computes nothing more."""
    from napari_colorize.plan import keep_guide

    model, _, _ = _random_exemplar_pair(3)
    ref = torch.rand(1, 3, 48, 64)
    L = torch.rand(1, 1, 48, 64) * 2 - 1
    state = model.prepare(reference=ref)
    before = dict(state)
    with torch.inference_mode():
        pred = model.predict(L, state)
    assert state.keys() == before.keys() and all(state[k] is before[k] for k in before)
    assert state["features"] is None and pred.state is not None and pred.state["features"] is not None
    keep_guide(state, pred)
    assert state["features"] is pred.state["features"]
    with torch.inference_mode():
        again = model.predict(L, state)
    assert again.state is None  # (nothing left to encode)
    torch.testing.assert_close(again.ab, pred.ab, atol=1e-5, rtol=0)
