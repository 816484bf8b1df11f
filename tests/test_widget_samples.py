"""First use: File > Open Sample, then a widget. The pickers must hold the layers a user would choose."""
import numpy as np
import pytest

from napari_colorize._widgets import CompareWidget, ExemplarWidget, HistogramWidget

SAMPLES = ["motorcycle_pair", "microscopy_pair", "zstack"]


def _open(make_napari_viewer, key, cls, dock_first):
    viewer = make_napari_viewer()
    w = None
    if dock_first:  # the widget is open already when the sample comes in
        w = cls(viewer)
        viewer.window.add_dock_widget(w)
    viewer.open_sample("napari-colorize", key)
    if w is None:  # the sample first, then the widget
        w = cls(viewer)
        viewer.window.add_dock_widget(w)
    return viewer, w


def _grey_and_colour(viewer):
    grey = [l for l in viewer.layers if not l.rgb]
    colour = [l for l in viewer.layers if l.rgb and l.visible]
    assert len(grey) == 1 and len(colour) == 1  # each sample: one grey target, one visible colour reference
    return grey[0], colour[0]


@pytest.mark.parametrize("dock_first", [True, False], ids=["widget-then-sample", "sample-then-widget"])
@pytest.mark.parametrize("key", SAMPLES)
def test_exemplar_pickers_after_open_sample(make_napari_viewer, key, dock_first):
    viewer, w = _open(make_napari_viewer, key, ExemplarWidget, dock_first)
    grey, colour = _grey_and_colour(viewer)
    assert w._target.value is grey and w._reference.value is colour
    assert w._model.value == "exemplar"  # the best shipped model, not the Welsh baseline
    w._check_inputs()  # Run would accept them


@pytest.mark.parametrize("key", SAMPLES)
def test_histogram_pickers_after_open_sample(make_napari_viewer, key):
    viewer, w = _open(make_napari_viewer, key, HistogramWidget, True)
    grey, colour = _grey_and_colour(viewer)
    assert w._target.value is grey and w._source.value is colour and w._model.value == "histogram"
    w.histogram_from_source()
    assert w.canvas.hist.sum() == pytest.approx(1.0)


def test_sample_layers_side_by_side_with_a_hidden_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-colorize", "motorcycle_pair")
    grey, ref, truth = viewer.layers
    assert ref.translate[-1] > grey.data.shape[-1]  # the reference to the right of the target
    assert truth.rgb and not truth.visible and truth.data.shape[:2] == grey.data.shape
    # the view was fitted to both (napari fits the first layer only)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    assert camera.center[-1] > grey.data.shape[-1] / 2 + 50
    viewer.layers.clear()
    viewer.open_sample("napari-colorize", "zstack")
    stack, ihc = viewer.layers
    assert stack.ndim == 3 and ihc.rgb and ihc.translate[-1] > stack.data.shape[-1]


def test_compare_picks_the_truth_and_scores_it(make_napari_viewer, wait_idle):
    viewer, w = _open(make_napari_viewer, "motorcycle_pair", CompareWidget, False)
    grey, ref, truth = viewer.layers
    assert (w._target.value, w._reference.value, w._truth.value) == (grey, ref, truth)
    w.run(["reinhard"])
    wait_idle(w, 60000)
    assert np.isfinite(w.rows[0]["SSIM"]) and np.isfinite(w.rows[0]["PSNR dB"])


def test_the_users_choice_is_kept(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-colorize", "motorcycle_pair")
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    grey, ref, truth = viewer.layers
    w._reference.value = truth  # a deliberate choice survives new layers
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="another colour image")
    assert w._reference.value is truth and w._target.value is grey
    viewer.layers.remove(truth)  # gone: the picker chooses again
    assert w._reference.value is ref
    # a grey layer never becomes the automatic reference, nor an RGB one the automatic target
    w2 = CompareWidget(viewer)
    assert w2._reference.value is not None and w2._reference.value.rgb and not w2._target.value.rgb
    assert w2._truth.value is None  # no layer is named as the truth any more
