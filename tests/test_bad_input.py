"""Every bad input gives a clear error, or a warning and a sensible conversion."""
import numpy as np
import pytest

import napari_colorize as nc


@pytest.fixture(scope="module")
def ref(small_pair):
    return small_pair[1]


@pytest.fixture(scope="module")
def grey(small_pair):
    return small_pair[0]


def test_empty_array(ref):
    with pytest.raises(ValueError, match="empty"):
        nc.colorize("welsh", np.zeros((0, 10)), reference=ref)


def test_one_pixel_image(ref, exemplar_random):
    res = nc.colorize(exemplar_random, np.array([[0.5]]), reference=ref)
    assert res.rgb.shape == (1, 1, 3)
    assert res.working_shape == (32, 32)


def test_nan_and_inf_are_replaced_with_a_warning(grey, ref):
    f = grey.astype(np.float32)
    f[3, 4] = np.nan
    f[5, 6] = np.inf
    with pytest.warns(nc.ColorizeWarning, match="NaN/Inf"):
        res = nc.colorize("welsh", f, reference=ref)
    assert np.isfinite(res.rgb).all()
    with pytest.raises(ValueError, match="no finite values"):
        nc.colorize("welsh", np.full((8, 8), np.nan), reference=ref)


def test_normalize_none_says_when_a_float_target_is_not_0_to_1(grey, ref):
    """normalize='none' reads floats as 0..1 as asked; a target in 0..65535 would come out white without a
    word: the warning names the share clipped and the way out. In range: no warning."""
    import warnings

    with pytest.warns(nc.ColorizeWarning, match=r"outside .* clipped; use 'auto'"):
        res = nc.colorize("reinhard", grey.astype(np.float32) * 257, reference=ref, normalize="none")
    assert any("clipped" in w for w in res.warnings)  # (kept with the result too)
    with pytest.warns(nc.ColorizeWarning, match=r"int32 target as 0..1"):  # integers other than uint8 / uint16 too
        nc.colorize("reinhard", grey.astype(np.int32), reference=ref, normalize="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error", nc.ColorizeWarning)
        nc.colorize("reinhard", grey.astype(np.float32) / 255, reference=ref, normalize="none")


def test_a_dim_float_target_is_used_as_is_with_a_warning(grey, ref):
    """'auto' reads a float target in [0, 1] as is: a 12-bit camera image through img_as_float (0..0.0625)
    would come out nearly black without a word - the warning says so and names the way out. A hair outside
    [0, 1] (one value at 1.0001) is clipped with a warning instead of flipping the whole image to a stretch."""
    import warnings

    dim = grey.astype(np.float32) / 255 * 0.0625
    with pytest.warns(nc.ColorizeWarning, match=r"reach only .* comes out dark; pass normalize='percentile'"):
        res = nc.colorize("reinhard", dim, reference=ref)
    assert res.rgb.max() < 0.2  # used as is, as documented
    flat = (0.4 + 0.2 * grey.astype(np.float32) / 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error", nc.ColorizeWarning)
        low = nc.colorize("reinhard", flat, reference=ref).rgb
    flat[0, 0] = 1.0001
    with pytest.warns(nc.ColorizeWarning, match="clipped"):
        one_off = nc.colorize("reinhard", flat, reference=ref).rgb
    assert np.abs(one_off[1:, 1:] - low[1:, 1:]).mean() < 0.01  # the same mapping, not a stretch


def test_constant_image(ref):
    with pytest.warns(nc.ColorizeWarning, match="constant"):
        res = nc.colorize("welsh", np.full((40, 40), 1234, np.uint16), reference=ref)
    assert np.isfinite(res.rgb).all()
    assert np.ptp(res.rgb.reshape(-1, 3), axis=0).max() < 1e-3  # uniform
    # a constant uint8 image keeps its own grey level
    res8 = nc.colorize("reinhard", np.full((40, 40), 200, np.uint8), reference=ref)
    from skimage.color import rgb2lab

    assert rgb2lab(res8.rgb)[..., 0].mean() == pytest.approx(rgb2lab(np.full((1, 1, 3), 200 / 255))[0, 0, 0], abs=0.05)


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_target_is_converted_to_lightness(channels, small_pair):
    _, ref, truth = small_pair
    img = truth if channels == 3 else np.concatenate([truth, np.full(truth.shape[:2] + (1,), 255, np.uint8)], -1)
    with pytest.warns(nc.ColorizeWarning, match="RGB"):
        res = nc.colorize("welsh", img, reference=ref)
    from skimage.color import rgb2lab

    assert res.rgb.shape == truth.shape
    assert np.abs(rgb2lab(res.rgb)[..., 0] - rgb2lab(truth)[..., 0]).max() < 0.05


def test_greyscale_reference_has_no_colour(grey):
    with pytest.raises(ValueError, match="no colour"):
        nc.colorize("welsh", grey, reference=grey)
    with pytest.raises(ValueError, match="no colour"):
        nc.colorize("welsh", grey, reference=np.repeat(grey[..., None], 3, -1))
    near = np.repeat(grey[..., None], 3, -1).astype(np.int16)
    near[..., 0] += 1  # a faint cast is still no colour
    with pytest.raises(ValueError, match="no colour"):
        nc.colorize("welsh", grey, reference=np.clip(near, 0, 255).astype(np.uint8))


def test_tiny_reference(grey, ref, exemplar_random):
    tiny = ref[::25, ::25][:8, :8].copy()
    with pytest.warns(nc.ColorizeWarning, match="tiny"):
        res = nc.colorize(exemplar_random, grey, reference=tiny)
    assert res.rgb.shape == grey.shape + (3,)


def test_extreme_aspect_ratio(ref, exemplar_random, rng):
    img = rng.integers(0, 255, (10000, 16), dtype=np.uint8)
    res = nc.colorize(exemplar_random, img, reference=ref, return_attention=False)
    assert res.rgb.shape == (10000, 16, 3)
    assert res.working_shape == (224, 32)


def test_negative_int64(ref, rng):
    img = rng.integers(-5000, -100, (50, 60)).astype(np.int64)
    res = nc.colorize("welsh", img, reference=ref)
    lo, hi = res.intensity_range
    assert -5000 <= lo < hi <= -100
    assert np.isfinite(res.rgb).all()


def test_bool_target(ref):
    img = np.zeros((40, 40), bool)
    img[10:30, 10:30] = True
    with pytest.warns(nc.ColorizeWarning, match="boolean"):
        res = nc.colorize("welsh", img, reference=ref)
    from skimage.color import rgb2lab

    L = rgb2lab(res.rgb)[..., 0]
    assert L[20, 20] == pytest.approx(100, abs=0.1) and L[0, 0] == pytest.approx(0, abs=0.1)


def test_ambiguous_4d_input(grey, ref):
    with pytest.raises(ValueError, match="ambiguous") as e:
        nc.colorize("welsh", np.zeros((2, 3, 20, 20)), reference=ref)
    assert "rgb=True" not in str(e.value) and "rgb=False" in str(e.value)  # (a last axis of 20 is not colour)
    with pytest.raises(ValueError, match="ambiguous.*rgb=True"):
        nc.colorize("welsh", np.zeros((2, 20, 20, 3)), reference=ref)
    with pytest.raises(ValueError, match="rgb=True"):
        nc.colorize("welsh", np.zeros((20, 20)), reference=ref, rgb=True)


@pytest.mark.parametrize("hist,msg", [
    (np.ones((20, 20)), "shape"),
    (np.ones(441), "shape"),
    (np.zeros((21, 21)), "all zeros"),
    (-np.ones((21, 21)), "negative"),
    (np.full((21, 21), np.nan), "NaN"),
])
def test_bad_histograms(grey, histogram_random, hist, msg):
    with pytest.raises(ValueError, match=msg):
        nc.colorize(histogram_random, grey, histogram=hist)


def test_unnormalised_histogram_is_normalised(grey, histogram_random):
    h = np.zeros((21, 21))
    h[12, 14] = 7.0
    a = nc.colorize(histogram_random, grey, histogram=h)
    b = nc.colorize(histogram_random, grey, histogram=h / 7)
    assert np.allclose(a.rgb, b.rgb)


def test_wrong_guide_for_the_model(grey, ref, exemplar_random):
    with pytest.raises(ValueError, match="exemplar model"):
        nc.colorize(exemplar_random, grey, histogram=np.ones((21, 21)))
    with pytest.raises(ValueError, match="needs a guide"):
        nc.colorize(exemplar_random, grey)


def test_bad_reference_values(grey, ref):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nc.colorize("welsh", grey, reference=ref.astype(np.float32) * 1000)  # fits no range
    with pytest.raises(ValueError, match="negative"):
        nc.colorize("welsh", grey, reference=ref.astype(np.float32) / 255 - 0.5)
    with pytest.raises(ValueError, match="RGB"):
        nc.colorize("welsh", grey, reference=np.zeros((5, 5, 2)))
    with pytest.warns(nc.ColorizeWarning, match="alpha"):
        nc.colorize("welsh", grey, reference=np.concatenate([ref, ref[..., :1]], -1))


def test_non_numeric_and_bad_size(grey, ref):
    with pytest.raises(TypeError):
        nc.colorize("welsh", np.array([["a", "b"], ["c", "d"]]), reference=ref)
    with pytest.raises(ValueError, match="size"):
        nc.colorize("welsh", grey, reference=ref, size=0)
    with pytest.raises(TypeError, match="model"):
        nc.colorize(42, grey, reference=ref)


@pytest.mark.parametrize("match", ["strong", True, float("nan"), 1.5, -0.1, [0.5]])
def test_a_bad_match_names_the_argument(grey, ref, match):
    """match='strong' failed with "could not convert string to float", without naming match; True
    was taken as 1."""
    with pytest.raises(ValueError, match=r"^match must be a number from 0 .* to 1 .*not "):
        nc.colorize("reinhard", grey, reference=ref, match=match)


def test_match_in_range_still_works(grey, ref):
    plain = nc.colorize("reinhard", grey, reference=ref, match=0).rgb
    assert np.array_equal(nc.colorize("reinhard", grey, reference=ref, match=None).rgb, plain)
    assert not np.array_equal(nc.colorize("reinhard", grey, reference=ref, match=np.float32(0.5)).rgb, plain)


@pytest.mark.parametrize("size", [True, False, np.bool_(True), 1.5, "64"])
def test_size_true_is_not_one_pixel(grey, ref, size):
    with pytest.raises(ValueError, match="size must be a positive number of pixels"):
        nc.colorize("reinhard", grey, reference=ref, size=size)


@pytest.mark.parametrize("device", [0, 1, "", "  ", 0.0])
def test_device_0_or_empty_is_not_auto(device):
    """device=0 and device='' were taken as 'auto' (which may pick a GPU); they are refused."""
    with pytest.raises(ValueError, match="device must be a name: 'auto', 'cpu'"):
        nc.load_model("reinhard", device=device)
    assert nc.load_model("reinhard", device=" CPU ").device.type == "cpu"


# ------------------------------------------------------------- layouts and ranges read right
def _corr(a, b):
    return np.corrcoef(a.mean(-1).ravel(), b.mean(-1).ravel())[0, 1]


@pytest.fixture(scope="module")
def base(grey, ref):
    return nc.colorize("welsh", grey, reference=ref).rgb


def test_one_channel_and_grey_alpha_are_2d(grey, ref, base):
    res = nc.colorize("welsh", grey[..., None], reference=ref)
    assert res.rgb.shape == grey.shape + (3,)
    assert np.allclose(res.rgb, base)
    ga = np.stack([grey, np.full_like(grey, 255)], -1)
    with pytest.warns(nc.ColorizeWarning, match="alpha"):
        res = nc.colorize("welsh", ga, reference=ref)
    assert res.rgb.shape == grey.shape + (3,) and np.allclose(res.rgb, base)
    stack = np.stack([grey, grey])[..., None]  # (Z, H, W, 1): a stack, not ambiguous
    assert nc.colorize("welsh", stack, reference=ref).rgb.shape == (2,) + grey.shape + (3,)


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1.0), (np.float64, 1.0), (np.int16, 1), (np.int32, 1),
                                         (np.uint16, 16)])
def test_rgb_target_range_is_detected(small_pair, dtype, scale):
    _, ref, truth = small_pair
    from skimage.color import rgb2lab

    with pytest.warns(nc.ColorizeWarning, match="RGB"):
        res = nc.colorize("welsh", (truth.astype(np.float64) * scale).astype(dtype), reference=ref)
    assert np.abs(rgb2lab(res.rgb)[..., 0] - rgb2lab(truth)[..., 0]).max() < 0.5  # not white


@pytest.mark.parametrize("make", [
    lambda g: g.astype(np.float64) * 1e300,  # beyond float32
    lambda g: (g.astype(np.float32) / 255 * 2 - 1) * np.float32(3.4e38),  # near float32's limit
    lambda g: (g.astype(np.float64) / 255 * 2 - 1) * 1.7e308,  # near float64's: hi - lo overflows
    lambda g: 1e6 + g.astype(np.float64) * 1e-9,  # tiny structure on a large offset
])
def test_extreme_values_keep_their_structure(grey, ref, base, make):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN/Inf warning, no overflow
        res = nc.colorize("welsh", make(grey), reference=ref)
    assert np.isfinite(res.rgb).all()
    assert _corr(res.rgb, base) > 0.999


def test_coarse_float32_levels_warn(grey, ref):
    with pytest.warns(nc.ColorizeWarning, match="distinct levels"):
        nc.colorize("welsh", (1e6 + grey.astype(np.float64) * 1e-3).astype(np.float32), reference=ref)


def test_channel_first_rgb_is_not_a_silent_stack(small_pair):
    _, ref, truth = small_pair
    chw = np.moveaxis(truth, -1, 0)
    with pytest.warns(nc.ColorizeWarning, match="channel_axis=0"):
        res = nc.colorize("welsh", chw, reference=ref)
    assert res.rgb.shape == chw.shape + (3,)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nc.colorize("welsh", chw, reference=ref, rgb=False).rgb.shape == chw.shape + (3,)
        res = nc.colorize("welsh", chw, reference=ref, channel_axis=0)  # said so: no warning
    assert res.rgb.shape == truth.shape
    from skimage.color import rgb2lab

    assert np.abs(rgb2lab(res.rgb)[..., 0] - rgb2lab(truth)[..., 0]).max() < 0.5
    with pytest.raises(ValueError, match="channel_axis"):
        nc.colorize("welsh", chw, reference=ref, channel_axis=1)


def test_torch_tensor_target(grey, ref, base):
    import torch

    assert np.allclose(nc.colorize("welsh", torch.from_numpy(grey), reference=ref).rgb, base)


def test_histogram_from_rgb_respects_the_dtype(ref, grey):
    h8 = nc.histogram_from_rgb(ref)
    assert np.allclose(nc.histogram_from_rgb(ref.astype(np.uint16) * 257), h8, atol=1e-6)
    assert np.allclose(nc.histogram_from_rgb(ref.astype(np.float32) / 255), h8, atol=1e-6)
    with pytest.warns(nc.ColorizeWarning, match="0..255"):
        assert np.allclose(nc.histogram_from_rgb(ref.astype(np.float32)), h8, atol=1e-6)
    with pytest.warns(nc.ColorizeWarning, match="12-bit"):
        assert nc.histogram_intersection(nc.histogram_from_rgb(ref.astype(np.uint16) * 16), h8) > 0.95
    with pytest.raises(ValueError, match="greyscale"):
        nc.histogram_from_rgb(grey)


@pytest.mark.parametrize("hist", [np.full((21, 21), 1e308), np.full((21, 21), np.finfo(np.float64).max)])
def test_histogram_that_overflows_is_refused(grey, histogram_random, hist):
    with pytest.raises(ValueError, match="cannot be normalised"):
        nc.colorize(histogram_random, grey, histogram=hist)


def test_huge_but_summable_histogram_is_normalised(grey, histogram_random):
    h = np.zeros((21, 21))
    h[12, 14] = 1e300
    a = nc.colorize(histogram_random, grey, histogram=h)
    h[12, 14] = 1.0
    assert np.allclose(a.rgb, nc.colorize(histogram_random, grey, histogram=h).rgb)


def test_twelve_bit_reference_is_colour(grey, ref, base):
    with pytest.warns(nc.ColorizeWarning, match="12-bit"):
        res = nc.colorize("welsh", grey, reference=ref.astype(np.uint16) * 16)
    assert np.abs(res.rgb - base).mean() < 0.005  # welsh: nearest samples may flip for a pixel or two
    with pytest.warns(nc.ColorizeWarning, match="0..255"):
        res = nc.colorize("welsh", grey, reference=ref.astype(np.float32))
    assert np.abs(res.rgb - base).max() < 1e-4


@pytest.fixture(scope="module")
def standard_random():
    import torch

    torch.manual_seed(0)
    return nc.load_model("exemplar-standard", device="cpu", pretrained=False)


def test_standard_attention_too_big_is_refused_before_allocating(grey, ref, standard_random, monkeypatch):
    from napari_colorize import plan

    need = plan.attention_memory(standard_random, (2048, 2048))
    assert need > 4 * 2**30  # (128 x 128)^2 logits x 4 heads x 4 bytes, about 4x at the peak
    assert plan.attention_memory(standard_random, (2048, 2048)) > 50 * plan.attention_memory(
        nc.load_model("exemplar", device="cpu", pretrained=False), (2048, 2048))
    monkeypatch.setattr(plan, "available_memory", lambda device: 2 * 2**30)
    big = np.zeros((2048, 2048), np.uint8)
    calls = []
    monkeypatch.setattr(standard_random, "predict", lambda *a, **k: calls.append(1))
    with pytest.raises(MemoryError, match=r"smaller working size \(size=\d+ or less\) or the axial model"):
        nc.colorize(standard_random, big, reference=ref, size=2048)
    assert calls == []  # refused before any work


def test_allocator_error_becomes_a_clear_memory_error(grey, ref, standard_random, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4294967296 bytes")

    monkeypatch.setattr(standard_random, "predict", boom)
    with pytest.raises(MemoryError, match="ran out of memory.*smaller working size"):
        nc.colorize(standard_random, grey, reference=ref)
