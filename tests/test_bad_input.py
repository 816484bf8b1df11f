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
    with pytest.raises(ValueError, match="ambiguous"):
        nc.colorize("welsh", np.zeros((2, 3, 20, 20)), reference=ref)
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
        nc.colorize("welsh", grey, reference=ref.astype(np.float32))  # 0..255 floats
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
