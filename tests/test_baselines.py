import numpy as np
import pytest
from skimage import color

import napari_colorize as nc
from napari_colorize.models.baselines import reinhard_ab, welsh_ab


def test_welsh_transfers_colours_that_exist_in_the_reference(small_pair):
    grey, ref, _ = small_pair
    L = color.rgb2lab(np.repeat(grey[..., None] / 255.0, 3, -1))[..., 0]
    ref_lab = color.rgb2lab(ref)
    ab = welsh_ab(L, ref_lab)
    assert ab.shape == (2,) + L.shape
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(ref_lab[..., 1:].reshape(-1, 2) / 110.0).query(ab.reshape(2, -1).T)
    assert dist.max() < 1e-5


def test_welsh_matches_by_luminance():
    # reference: dark pixels are blue, bright pixels are red; target: a ramp
    ref = np.zeros((40, 40, 3))
    ref[:, :20] = [0.0, 0.0, 0.35]
    ref[:, 20:] = [1.0, 0.55, 0.55]
    L = np.tile(np.linspace(5, 95, 60), (30, 1))
    ab = welsh_ab(L, color.rgb2lab(ref))
    assert ab[1, :, :10].mean() < -0.2  # dark end: blue (b < 0)
    assert ab[0, :, -10:].mean() > 0.1  # bright end: red (a > 0)


def test_reinhard_gives_the_reference_mean_chroma(small_pair):
    grey, ref, _ = small_pair
    L = color.rgb2lab(np.repeat(grey[..., None] / 255.0, 3, -1))[..., 0]
    ab = reinhard_ab(L, color.rgb2lab(ref))
    assert ab.shape == (2,) + L.shape
    # a grey target has no chroma spread: one global tint, near the reference's mean
    mean_ref = color.rgb2lab(ref)[..., 1:].reshape(-1, 2).mean(0) / 110
    assert np.abs(np.median(ab.reshape(2, -1), 1) - mean_ref).max() < 0.05


@pytest.mark.parametrize("name", ["welsh", "reinhard"])
def test_baselines_through_the_public_api(name, small_pair):
    grey, ref, _ = small_pair
    res = nc.colorize(nc.load_model(name), grey, reference=ref)
    assert res.rgb.shape == grey.shape + (3,) and res.model == name
    assert res.scales == [] and res.attention == {}
