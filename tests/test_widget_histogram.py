"""The histogram widget: painting, sources, files, live preview, full run."""
import time

import numpy as np
import pytest

from napari_colorize import histogram_edit as he
from napari_colorize._widgets import HistogramWidget
from napari_colorize._widgets._layers import OURS


@pytest.fixture
def hw(make_napari_viewer, small_pair, histogram_random, monkeypatch):
    from napari_colorize._widgets import _workers

    grey, ref, _ = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(grey, name="grey")
    r = viewer.add_image(ref, name="ref", rgb=True)
    monkeypatch.setattr(_workers, "MODELS", _workers.ModelCache())
    _workers.MODELS.put("hist-random", histogram_random)
    w = HistogramWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._model_override = "hist-random"
    w._target.value, w._source.value = t, r
    return viewer, w, t, r


def test_painting_with_the_mouse_changes_the_histogram(hw, qtbot):
    from qtpy.QtCore import Qt

    viewer, w, t, r = hw
    w._preview.value = False
    c = w.canvas
    c.resize(260, 260)
    corner = c.pos_of_bin(19.5, 19.5).toPoint()  # a = +1, b = +1 corner
    qtbot.mouseClick(c, Qt.MouseButton.LeftButton, pos=corner)
    assert c.hist.sum() > 0
    ia, ib = np.unravel_index(c.hist.argmax(), c.hist.shape)
    assert ia >= 18 and ib >= 18
    qtbot.mouseClick(c, Qt.MouseButton.RightButton, pos=corner)
    assert c.hist.sum() < 0.05 * 0.2
    w._clear.clicked()
    assert c.hist.sum() == 0


def test_sources_presets_and_files(hw, tmp_path):
    viewer, w, t, r = hw
    w._preview.value = False
    w.histogram_from_source()
    assert w.canvas.hist.sum() == pytest.approx(1.0)
    shapes = viewer.add_shapes([np.array([[0, 0], [0, 30], [30, 30], [30, 0]])], shape_type="polygon", name="roi")
    w._roi.value = shapes
    w.histogram_from_source()
    mask = np.zeros(r.data.shape[:2], bool)
    mask[:31, :31] = True
    assert np.abs(w.canvas.hist - he.from_region(r.data, mask)).sum() < 0.1
    w._preset.value = "forest"
    w._apply_preset.clicked()
    assert np.allclose(w.canvas.hist, he.preset("forest"))
    w.save_histogram(tmp_path / "mine.npy")
    w._clear.clicked()
    w.load_histogram(tmp_path / "mine.npy")
    assert np.allclose(w.canvas.hist, he.preset("forest"))


def test_live_preview_updates_and_drops_stale_work(hw, qtbot):
    viewer, w, t, r = hw
    for k in range(3):  # three quick strokes: only the newest preview may be shown
        w.canvas.set_histogram(he.paint(he.empty(), 5 + 4 * k, 12, 1, 0.1))
        w.preview()
    deadline = time.time() + 60
    while w.shown_generation < w.generation and time.time() < deadline:
        qtbot.wait(50)
    assert w.generation >= 3 and w.shown_generation == w.generation  # the newest stroke is what is shown
    layer = viewer.layers["grey [histogram preview]"]
    assert layer.metadata[OURS]["kind"] == "preview" and max(layer.data.shape[:2]) <= w._preview_size.value


def test_debounced_preview_after_a_stroke(hw, qtbot):
    viewer, w, t, r = hw
    w.canvas.set_histogram(he.preset("warm (sunset)"))  # emits changed -> timer -> preview
    qtbot.waitUntil(lambda: "grey [histogram preview]" in viewer.layers, timeout=60000)


def test_full_run_and_errors(hw, qtbot, monkeypatch, wait_idle):
    import napari_colorize._widgets._histogram as hmod

    viewer, w, t, r = hw
    errors = []
    monkeypatch.setattr(hmod, "show_error", errors.append)
    w._preview.value = False
    source = w._source.value
    w._source.value = t  # a grey layer: no colour to start from
    w.run()  # empty histogram and no colour source
    assert w.worker is None and "empty" in errors[-1]
    w._source.value = source
    w.run()  # empty histogram, but a colour source: the histogram is taken from it
    assert np.allclose(w.canvas.hist, he.from_region(np.asarray(source.data)))
    wait_idle(w, 60000)
    w.canvas.set_histogram(he.preset("cool (sea and sky)"))
    w.run()
    wait_idle(w, 60000)
    layer = viewer.layers["grey [histogram]"]
    assert layer.data.shape == t.data.shape + (3,)
    assert np.allclose(np.asarray(layer.metadata[OURS]["histogram"]), he.preset("cool (sea and sky)"))


def _run_with_attention(w, wait_idle) -> None:
    """A full run of the 'forest' preset with the attention views, no preview."""
    w._preview.value = False
    w._attention.value = True
    w.canvas.set_histogram(he.preset("forest"))
    w.run()
    wait_idle(w, 60000)


def test_attention_views_pixel_to_bins_and_bin_to_image(hw, qtbot, wait_idle):
    from qtpy.QtCore import Qt

    viewer, w, t, r = hw
    _run_with_attention(w, wait_idle)
    att = w.bin_attention
    assert att is not None and att.weights.shape[2:] == (21, 21)
    conc = viewer.layers["bin concentration"]
    assert np.allclose(conc.data, att.on_pixels(att.concentration())) and conc.metadata[OURS]["kind"] == "concentration"
    # on the working image's pixels (cell i on pixel 4 i): it overlays the target exactly
    assert conc.data.shape == tuple(4 * np.asarray(att.lattice)) and att.cell_centre == pytest.approx(1 / 8)
    assert np.allclose(np.asarray(conc.data.shape) * conc.scale, np.asarray(t.data.shape) * t.scale)
    assert np.allclose(np.asarray(conc.translate) - conc.scale / 2, np.asarray(t.translate) - t.scale / 2)
    # pixel -> bins: the query point's cell's distribution is drawn on the chart, and follows the point
    q = viewer.layers["bin point"]
    first = w.canvas.overlay.copy()
    assert first.shape == (21, 21) and first.sum() == pytest.approx(1.0, abs=1e-4)
    q.data = np.array([[1.0, 1.0]])
    assert np.allclose(w.canvas.overlay, att.bins_of_pixel(0, 0))
    # bin -> image: with pick mode on, a click on the chart picks a bin instead of painting
    w._pick.value = True
    before = w.canvas.hist.copy()
    w.canvas.resize(260, 260)
    qtbot.mouseClick(w.canvas, Qt.MouseButton.LeftButton, pos=w.canvas.pos_of_bin(10, 10).toPoint())  # neutral
    assert np.array_equal(w.canvas.hist, before)
    layer = viewer.layers["bin attention"]
    assert layer.metadata[OURS]["bin"] == [10, 10]
    assert np.allclose(layer.data, att.on_pixels(att.pixels_of_bin(10, 10)))
    w.show_bin(3, 17)  # another bin updates the same layer, with contrast limits that follow its data
    assert layer.metadata[OURS]["bin"] == [3, 17] and np.allclose(layer.data, att.on_pixels(att.pixels_of_bin(3, 17)))
    assert layer.contrast_limits[1] == pytest.approx(float(layer.data.max()), rel=1e-4)
    assert r.data.shape == viewer.layers["ref"].data.shape  # user layers untouched


def test_after_a_run_painting_shows_on_top(hw, qtbot, wait_idle):
    viewer, w, t, r = hw
    w._preview.value = False
    w.canvas.set_histogram(he.preset("forest"))
    w._preview.value = True
    w.preview()  # a first preview layer...
    qtbot.waitUntil(lambda: w.shown_generation == w.generation, timeout=60000)
    w.run()  # ...then the full-size result, over it
    wait_idle(w, 60000)
    result = viewer.layers["grey [histogram]"]
    assert viewer.layers[-1] is result
    w.canvas.set_histogram(he.preset("warm (sunset)"))  # painting again: the preview must be what one sees
    w.preview()
    qtbot.waitUntil(lambda: w.shown_generation == w.generation, timeout=60000)
    preview = viewer.layers["grey [histogram preview]"]
    assert viewer.layers[-1] is preview and preview.visible
    assert result in viewer.layers and np.array_equal(r.data, viewer.layers["ref"].data)


def test_bin_marks_are_cleared_when_the_histogram_changes(hw, qtbot, wait_idle):
    viewer, w, t, r = hw
    _run_with_attention(w, wait_idle)
    assert w.canvas.overlay is not None  # the bins the query pixel draws from
    w.canvas.set_histogram(he.preset("neutral"))  # another histogram: those marks belong to the old run
    assert w.canvas.overlay is None
    viewer.layers["bin point"].data = np.array([[2.0, 2.0]])  # moving the point does not bring them back
    assert w.canvas.overlay is None and "Run again" in w._status.value
    w.run()  # a new run shows them again
    wait_idle(w, 60000)
    assert w.canvas.overlay is not None


def test_load_asks_with_an_open_dialog_and_save_with_a_save_dialog(hw, tmp_path, monkeypatch):
    import napari_colorize._widgets._histogram as hmod

    viewer, w, t, r = hw
    w._preview.value = False
    asked = []
    path = str(tmp_path / "h.npy")
    monkeypatch.setattr(hmod, "ask_path", lambda mode, *a, **k: asked.append(mode) or path)
    w.canvas.set_histogram(he.preset("forest"))
    w._save.clicked()
    w._clear.clicked()
    w._load.clicked()
    assert asked == ["w", "r"] and np.allclose(w.canvas.hist, he.preset("forest"))
    monkeypatch.setattr(hmod, "ask_path", lambda mode, *a, **k: None)  # cancelled: nothing happens
    w._load.clicked()
    assert np.allclose(w.canvas.hist, he.preset("forest"))


def test_widget_fits_a_laptop_screen_and_the_chart_has_axes(hw, qtbot):
    viewer, w, t, r = hw
    assert w.native.sizeHint().height() <= 620  # ~900 px before: two docked widgets pushed a 1000 px window
    assert all(not s.expanded for s in w.sections.values())
    w.sections["source"].set_expanded(True)
    assert w._source.native.isVisibleTo(w.native)
    for key in w.sections:  # one section open at a time, and even then the widget stays short
        w.sections[key].set_expanded(True)
        assert [k for k, s in w.sections.items() if s.expanded] == [key]
        assert w.native.sizeHint().height() <= 680
    # the chart sits inside margins that carry the a* / b* axes: positions and bins agree both ways
    c = w.canvas
    c.resize(300, 300)
    rect = c.chart_rect()
    assert rect.left() > 0 and rect.bottom() < c.height()
    for ia, ib in [(0, 0), (10, 10), (20, 5)]:
        p = c.pos_of_bin(ia, ib)
        assert np.allclose(c.bin_at(p.x(), p.y()), (ia, ib))
    img = c.grab().toImage()  # the axes are drawn: left of the chart, at b* = 0, the label "0" is
    rect, bg = c.chart_rect(), img.pixelColor(1, 1)
    y = int(c.pos_of_bin(0, 10).y())
    assert any(img.pixelColor(x, y) != bg for x in range(2, int(rect.left()) - 4))
