"""The docked widgets in a busy viewer: long messages wrap, the widgets scroll rather than grow the
window, low-resolution layers are drawn smoothly, pickers follow a new sample, and our earlier
attention / preview layers do not pile up (a user's layers are never touched)."""
import numpy as np
import pytest

from napari_colorize._widgets import CompareWidget, ExemplarWidget, HistogramWidget
from napari_colorize._widgets._layers import OURS
from napari_colorize._widgets._sections import DOCK_MAX_WIDTH

LONG = ("done: motorcycle (grey) [exemplar]; P1-P4 and attention not available for a stack (they are made "
        "for 2-D images), which is a long line indeed for a docked widget")


def _process(qtbot, n=5):
    from qtpy.QtWidgets import QApplication

    for _ in range(n):
        QApplication.processEvents()
        qtbot.wait(5)


@pytest.mark.parametrize("cls", [ExemplarWidget, HistogramWidget, CompareWidget])
def test_a_long_status_wraps_and_the_dock_keeps_its_width(make_napari_viewer, qtbot, cls):
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1280, 900)
    w = cls(viewer)
    dock = viewer.window.add_dock_widget(w)
    _process(qtbot)
    before = dock.width()
    w._status.value = LONG
    _process(qtbot)
    assert w._status.native.wordWrap()
    assert dock.width() <= max(before, DOCK_MAX_WIDTH) + 30 and w.native.width() <= DOCK_MAX_WIDTH
    assert w.native.minimumSizeHint().width() <= DOCK_MAX_WIDTH


def test_three_docked_widgets_scroll_rather_than_grow_the_window(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    win = viewer.window._qt_window
    win.resize(1280, 800)
    ws = [cls(viewer) for cls in (ExemplarWidget, HistogramWidget, CompareWidget)]
    for w in ws:
        viewer.window.add_dock_widget(w)
    for w in ws:  # everything open: the widgets at their tallest
        for sec in getattr(w, "sections", {}).values():
            sec.set_expanded(True)
    _process(qtbot, 10)
    assert win.minimumSizeHint().height() <= 1000  # 1403 px before: the window could not be shorter
    for w in ws:
        assert w.native.minimumSizeHint().height() <= 300  # each scrolls below that


def test_p1_p4_and_the_histogram_preview_are_drawn_smoothly(make_napari_viewer, small_pair, histogram_random,
                                                             exemplar_random, monkeypatch, qtbot, wait_idle):
    from napari_colorize._widgets import _workers

    grey, ref, _ = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(grey, name="grey")
    r = viewer.add_image(ref, name="ref", rgb=True)
    monkeypatch.setattr(_workers, "MODELS", _workers.ModelCache())
    _workers.MODELS.put("ex-random", exemplar_random)
    _workers.MODELS.put("hist-random", histogram_random)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._reference.value = t, r
    w._model_override = "ex-random"
    w._scales.value = True
    w.run()
    wait_idle(w, 120000)
    scales = [l for l in viewer.layers if l.metadata.get(OURS, {}).get("kind", "").startswith("P")]
    assert len(scales) == 4 and all(str(l.interpolation2d) == "linear" for l in scales)
    h = HistogramWidget(viewer)
    viewer.window.add_dock_widget(h)
    h._model_override = "hist-random"
    h._target.value, h._source.value = t, r
    h.histogram_from_source()
    h.preview()
    qtbot.waitUntil(lambda: h.shown_generation == h.generation, timeout=60000)
    preview = next(l for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == "preview")
    assert str(preview.interpolation2d) == "linear"


def test_pickers_follow_a_second_sample(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    h = HistogramWidget(viewer)
    viewer.window.add_dock_widget(h)
    viewer.open_sample("napari-colorize", "motorcycle_pair")
    first = list(viewer.layers)
    assert w._target.value is first[0] and w._reference.value is first[1]
    viewer.open_sample("napari-colorize", "microscopy_pair")  # a second sample: the pickers move to it
    grey, ihc = list(viewer.layers)[-2:]
    assert w._target.value is grey and w._reference.value is ihc
    assert h._target.value is grey and h._source.value is ihc
    viewer.open_sample("napari-colorize", "motorcycle_pair")  # the same sample again: its new layers
    again = list(viewer.layers)[-3:]
    assert w._target.value is again[0] and w._reference.value is again[1]
    # a user's choice stays: a new sample does not move it
    w._reference.value = ihc
    viewer.open_sample("napari-colorize", "zstack")
    assert w._reference.value is ihc and w._target.value is list(viewer.layers)[-2]


def test_earlier_attention_and_preview_layers_are_ours_to_remove(make_napari_viewer, small_pair, exemplar_random,
                                                                  histogram_random, monkeypatch, qtbot, wait_idle):
    from napari_colorize._widgets import _workers

    grey, ref, _ = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(grey, name="grey")
    t2 = viewer.add_image(grey[:, ::-1].copy(), name="grey mirrored")
    r = viewer.add_image(ref, name="ref", rgb=True)
    mine = viewer.add_image(np.zeros((4, 4)), name="attention", metadata={"kind": "attention"})  # a user's
    monkeypatch.setattr(_workers, "MODELS", _workers.ModelCache())
    _workers.MODELS.put("ex-random", exemplar_random)
    _workers.MODELS.put("hist-random", histogram_random)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._model_override = "ex-random"
    w._attention.value = True

    def ours(kind):
        return [l for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == kind]

    for target in (t, t2):  # attention of one target, then of another: one set of layers, for the second
        w._target.value, w._reference.value = target, r
        w.run()
        wait_idle(w, 120000)
        assert len(ours("attention")) == 1 and len(ours("concentration")) == 1 and len(ours("query")) == 1
        assert ours("attention")[0].metadata[OURS]["target"] == target.name
    w._attention.value = False  # a run without attention: the earlier run's attention layers go
    w.run()
    wait_idle(w, 120000)
    assert not ours("attention") and not ours("concentration") and not ours("query")
    assert mine in viewer.layers
    # histogram previews: one, of the target being painted for
    h = HistogramWidget(viewer)
    viewer.window.add_dock_widget(h)
    h._model_override = "hist-random"
    h._source.value = r
    h.histogram_from_source()
    for target in (t, t2):
        h._target.value = target
        h.preview()
        qtbot.waitUntil(lambda: h.shown_generation == h.generation, timeout=60000)
    previews = ours("preview")
    assert len(previews) == 1 and previews[0].name == "grey mirrored [histogram preview]"
    assert mine in viewer.layers and t in viewer.layers and t2 in viewer.layers
