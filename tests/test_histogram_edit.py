import numpy as np
import pytest

from napari_colorize import histogram_edit as he
from napari_colorize.color import NBINS, histogram_from_rgb


def test_paint_adds_and_erases_mass_where_the_brush_is():
    h = he.paint(he.empty(), 5, 15, radius=1, amount=0.1)
    assert h.sum() == pytest.approx(0.1)
    assert np.unravel_index(h.argmax(), h.shape) == (5, 15)
    h2 = he.paint(h, 5, 15, radius=1, amount=1.0, erase=True)
    assert (h2 >= 0).all() and h2.sum() < 1e-6


def test_normalise_and_empty():
    with pytest.raises(ValueError, match="empty"):
        he.normalise(he.empty())
    h = he.normalise(he.paint(he.empty(), 3, 3))
    assert h.sum() == pytest.approx(1.0)


def test_chart_orientation():
    chart = he.ab_chart(60, 21)
    assert chart.shape == (21, 21, 3)
    # right edge (a = +1) is red/magenta, left edge (a = -1) green; top (b = +1) yellow, bottom blue
    assert chart[10, -1, 0] > chart[10, -1, 1] and chart[10, 0, 1] > chart[10, 0, 0]
    assert chart[0, 10, 2] < chart[-1, 10, 2]
    assert he.chart_to_bins(0, 0, 100) == (0.0, NBINS - 1)
    assert he.chart_to_bins(100, 100, 100) == (NBINS - 1, 0.0)


@pytest.mark.parametrize("name", sorted(he.PRESETS))
def test_presets_are_histograms(name):
    h = he.preset(name)
    assert h.shape == (NBINS, NBINS) and h.sum() == pytest.approx(1.0) and (h >= 0).all()


def test_unknown_preset():
    with pytest.raises(ValueError, match="forest"):
        he.preset("disco")


def test_region_histogram():
    img = np.zeros((20, 20, 3), np.float32)
    img[:, :10] = [0.9, 0.1, 0.1]
    img[:, 10:] = [0.1, 0.2, 0.9]
    mask = np.zeros((20, 20), bool)
    mask[:, :10] = True
    red = he.from_region(img, mask)
    assert np.allclose(red, histogram_from_rgb(img[:, :10]))
    with pytest.raises(ValueError, match="empty"):
        he.from_region(img, np.zeros((20, 20), bool))
    with pytest.raises(ValueError, match="match"):
        he.from_region(img, np.zeros((5, 5), bool))


def test_save_and_load(tmp_path):
    h = he.preset("forest")
    p = he.save(tmp_path / "h", h)
    assert p.suffix == ".npy"
    assert np.allclose(he.load(p), h)
    np.save(tmp_path / "bad.npy", np.ones((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        he.load(tmp_path / "bad.npy")
