"""The exemplar widget, driven like a user would (headless, under a virtual X server)."""
import numpy as np
import pytest

from napari_colorize._widgets import ExemplarWidget
from napari_colorize._widgets._exemplar import short_key
from napari_colorize._widgets._layers import OURS, query_cell
from napari_colorize._widgets._workers import Progress


@pytest.fixture
def viewer_pair(make_napari_viewer, small_pair):
    grey, ref, _ = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(grey, name="grey", scale=(2.0, 2.0), translate=(10.0, 5.0))
    r = viewer.add_image(ref, name="ref", rgb=True)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._reference.value = t, r
    w._model.value = "welsh"
    return viewer, w, t, r


def _run(w, wait_idle, timeout=60000):
    w.run()
    wait_idle(w, timeout)


def test_run_adds_a_result_layer_with_the_targets_geometry(viewer_pair, qtbot, wait_idle):
    viewer, w, t, r = viewer_pair
    before = t.data.copy(), r.data.copy()
    _run(w, wait_idle)
    layer = viewer.layers["grey [welsh]"]
    assert layer.rgb and layer.data.shape == t.data.shape + (3,)
    assert tuple(layer.scale) == (2.0, 2.0) and tuple(layer.translate) == (10.0, 5.0)
    meta = layer.metadata[OURS]
    assert meta["model"] == "welsh" and meta["reference"] == "ref"
    assert np.array_equal(t.data, before[0]) and np.array_equal(r.data, before[1])  # user layers untouched
    # running again updates our layer in place; "keep" adds a new one
    n = len(viewer.layers)
    _run(w, wait_idle)
    assert len(viewer.layers) == n
    w._keep.value = True
    _run(w, wait_idle)
    assert len(viewer.layers) == n + 1
    # a kept result is never overwritten, even one that took the plain name because ours was gone
    viewer.layers.remove("grey [welsh]")
    viewer.layers.remove("grey [welsh] [2]")
    _run(w, wait_idle)
    kept = viewer.layers["grey [welsh]"]
    kept.data = np.zeros_like(kept.data)
    w._keep.value = False
    _run(w, wait_idle)
    assert not kept.data.any() and "grey [welsh] [2]" in viewer.layers


def test_a_user_layer_with_our_name_is_never_overwritten(viewer_pair, qtbot, wait_idle):
    viewer, w, t, r = viewer_pair
    mine = viewer.add_image(np.zeros((5, 5)), name="grey [welsh]")
    _run(w, wait_idle)
    assert mine.data.shape == (5, 5) and not mine.data.any()
    ours = viewer.layers["grey [welsh] [2]"]
    # later runs update that same layer (found by what we created it for, not by its name), even renamed
    n = len(viewer.layers)
    ours.name = "my favourite result"
    ours.data = np.zeros_like(ours.data)
    _run(w, wait_idle)
    assert len(viewer.layers) == n and ours in viewer.layers and ours.data.any()
    assert mine.data.shape == (5, 5) and not mine.data.any()


def _attention_layers(viewer):
    return [l for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == "attention"]


def test_scales_and_attention_layers(viewer_pair, qtbot, exemplar_random, models, wait_idle):
    viewer, w, t, r = viewer_pair
    models.put("exemplar-random", exemplar_random)
    w._model_override = "exemplar-random"
    w._scales.value = True
    w._attention.value = True
    _run(w, wait_idle, 120000)
    name = "grey [exemplar]"
    for k in range(1, 5):
        p = viewer.layers[f"{name} P{k}"]
        # each scale overlays the target: same world extent
        assert np.allclose(np.asarray(p.data.shape[:2]) * p.scale, np.asarray(t.data.shape) * t.scale, rtol=0.05)
    q = viewer.layers["attention point"]
    keys = sorted(w.attention_view.maps)
    assert len(keys) >= 2
    # one heatmap by default, short-named, of the finest level's last module, drawn smoothly
    att = _attention_layers(viewer)
    assert [l.name for l in att] == ["attention"] and att[0].visible
    finest = min(w.attention_view.maps[k].stride for k in keys)
    level = att[0].metadata[OURS]["level"]
    assert w.attention_view.maps[level].stride == finest
    assert level == max(k for k in keys if w.attention_view.maps[k].stride == finest)  # the last module
    assert str(att[0].interpolation2d) == "linear"
    assert [l.name for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == "concentration"] == \
        ["concentration"]
    # all levels on request: one short-named heatmap per module, the others hidden
    w._all_levels.value = True
    att = _attention_layers(viewer)
    assert len(att) == len(keys) and all(len(l.name) <= 10 for l in att)
    assert sorted(l.name for l in att if l.name != "attention") == sorted(
        f"att {short_key(k)}" for k in keys if k != level)
    assert [l.name for l in att if l.visible] == ["attention"]
    first = [l.data.copy() for l in att]
    for l in att:
        # each heatmap is its module's map of the query cell (a distribution), on the working image's pixels
        m = w.attention_view.maps[l.metadata[OURS]["level"]]
        assert l.metadata[OURS]["query"] == list(query_cell(t, q, m.shape, m.cell_centre))  # (the point's cell)
        lattice = m.effective(*l.metadata[OURS]["query"])
        assert lattice.sum() == pytest.approx(1.0, abs=1e-3) and np.allclose(l.data, m.on_pixels(lattice))
        # and overlays the reference exactly: the same world extent, its first pixel on the reference's
        assert np.allclose(np.asarray(l.data.shape) * l.scale, np.asarray(r.data.shape[:2]) * r.scale, rtol=1e-6)
        assert np.allclose(np.asarray(l.translate) - l.scale / 2, np.asarray(r.translate) - r.scale / 2)
    q.data = np.array([[10.0 + 2 * 5, 5.0 + 2 * 5]])  # drag the point to the top-left corner
    assert all(not np.array_equal(l.data, f) for l, f in zip(att, first))
    for l in att:  # the contrast limits follow each updated heatmap
        assert l.contrast_limits[1] == pytest.approx(float(l.data.max()), rel=1e-4)
    assert "concentration" in viewer.layers
    # and off again: only the default heatmap is left
    w._all_levels.value = False
    assert [l.name for l in _attention_layers(viewer)] == ["attention"]
    # a run without P1-P4: the earlier run's scales go with it (they would show the old result's)
    w._scales.value = False
    _run(w, wait_idle, 120000)
    assert not [l for l in viewer.layers if l.name.startswith(f"{name} P")] and name in viewer.layers


def test_bad_layers_are_refused_with_a_notification(viewer_pair, qtbot, monkeypatch):
    import napari_colorize._widgets._exemplar as ex

    viewer, w, t, r = viewer_pair
    errors = []
    monkeypatch.setattr(ex, "show_error", errors.append)
    w._reference.value = t  # grey as reference
    w.run()
    assert w.worker is None and "same layer" in errors[-1]
    stack = viewer.add_image(np.zeros((2, 30, 40, 3), np.uint8), name="colour stack", rgb=True)
    w._reference.value = stack  # a stack of colour images as the reference: refused before any work
    w.run()
    assert w.worker is None and "'colour stack' is a stack" in errors[-1]
    w._reference.value = r
    g2 = viewer.add_image(np.zeros((20, 20)), name="grey2")
    w._reference.value = g2
    w.run()
    assert w.worker is None and "no colour" in errors[-1]


def test_cancel_stops_a_stack(make_napari_viewer, qtbot, small_pair, wait_idle):
    grey, ref, _ = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(np.stack([grey] * 40), name="stack")
    r = viewer.add_image(ref, name="ref", rgb=True)
    w = ExemplarWidget(viewer)
    w._target.value, w._reference.value, w._model.value = t, r, "welsh"
    w.run()
    seen = []
    w.worker.yielded.connect(lambda m: (seen.append(m), w.cancel() if m.done >= 2 else None))
    wait_idle(w, 60000)
    assert "stack [welsh]" not in viewer.layers
    assert all(isinstance(m, Progress) for m in seen) and max(m.done for m in seen) < 40
    assert w._status.value == "cancelled" and w._run.enabled


def test_removed_target_during_a_run(viewer_pair, wait_idle):
    viewer, w, t, r = viewer_pair
    w.run()
    viewer.layers.remove(t)  # slow enough that the worker may finish first
    wait_idle(w)
    assert not any(l.name.startswith("grey [") for l in viewer.layers)


def test_dask_stack_stays_lazy_and_saves(make_napari_viewer, qtbot, small_pair, tmp_path, wait_idle):
    import dask.array as da
    import tifffile

    grey, ref, _ = small_pair
    viewer = make_napari_viewer()
    stack = da.from_array(np.stack([grey] * 5), chunks=(1,) + grey.shape)
    t = viewer.add_image(stack, name="lazy")
    r = viewer.add_image(ref, name="ref", rgb=True)
    w = ExemplarWidget(viewer)
    w._target.value, w._reference.value, w._model.value = t, r, "welsh"
    w.run()
    wait_idle(w, 60000)
    layer = viewer.layers["lazy [welsh]"]
    assert isinstance(layer.data, da.Array) and layer.data.shape == (5,) + grey.shape + (3,)
    w._save_path.value = tmp_path / "all.tif"
    w.save_all()
    wait_idle(w, 60000)
    saved = tifffile.imread(tmp_path / "all.tif")
    assert saved.shape == (5,) + grey.shape + (3,) and saved.dtype == np.uint8
    assert np.abs(saved[2] / 255.0 - np.asarray(layer.data[2])).max() <= 1 / 255 + 1e-6


def test_save_all_never_loses_an_existing_file(make_napari_viewer, qtbot, tmp_path, wait_idle):
    """*Save all* onto an existing file: the first press only warns, the second replaces it - and only once
    every slice is written: a slice that fails, or a cancel, leaves the file as it was and no partial file
    beside it. The file a layer was read from is never a place to save to."""
    import dask.array as da
    import tifffile

    viewer = make_napari_viewer()
    w = ExemplarWidget(viewer)
    good = np.linspace(0, 1, 4 * 16 * 16 * 3, dtype=np.float32).reshape(4, 16, 16, 3)

    def slice_of(block, block_info=None):
        if block_info[None]["chunk-location"][0] == 2:
            raise RuntimeError("slice 2 cannot be computed")
        return block

    failing = da.from_array(good, chunks=(1, 16, 16, 3)).map_blocks(slice_of, dtype=np.float32)
    precious = tmp_path / "precious.tif"
    tifffile.imwrite(precious, np.full((8, 8), 7, np.uint8))
    before = precious.read_bytes()
    w.lazy_layer = viewer.add_image(failing, rgb=True, name="lazy [x]")
    w._save_path.value = precious
    w.save_all()  # first press: a warning, nothing started
    assert w.worker is None and "exists" in w._status.value and precious.read_bytes() == before
    w.save_all()  # second press: replaced only when complete - slice 2 fails
    wait_idle(w, 60000)
    assert precious.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.tif"]  # no partial file left beside it
    # a save cancelled after its first slice (each slice takes 0.2 s): the same
    import time

    slow = da.from_array(good, chunks=(1, 16, 16, 3)).map_blocks(lambda b: time.sleep(0.2) or b, dtype=np.float32)
    w.lazy_layer = viewer.add_image(slow, rgb=True, name="lazy [y]")
    w.save_all(), w.save_all()
    w.worker.yielded.connect(lambda m: w.cancel())
    wait_idle(w, 60000)
    assert w._status.value == "cancelled"
    assert precious.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.tif"]
    # the file a layer was read from: refused, however often it is asked for
    src = tmp_path / "input.tif"
    tifffile.imwrite(src, np.full((16, 16), 9, np.uint8))
    viewer.open(str(src))
    w._save_path.value = src
    w.save_all(), w.save_all()
    assert w.worker is None and "read from" in w._status.value
    assert tifffile.imread(src).max() == 9
    # and a good save onto the existing file, asked for twice: written
    w._save_path.value = precious
    w.save_all(), w.save_all()
    wait_idle(w, 60000)
    assert tifffile.imread(precious).shape == good.shape


def test_unavailable_outputs_are_reported(viewer_pair, make_napari_viewer, small_pair, monkeypatch, wait_idle):
    import napari_colorize._widgets._exemplar as ex

    viewer, w, t, r = viewer_pair
    said = []
    monkeypatch.setattr(ex, "show_info", said.append)
    w._scales.value = w._attention.value = True
    _run(w, wait_idle)  # welsh: a baseline has neither
    assert any("P1-P4 and attention not available" in m and "welsh" in m for m in said)
    assert "not available" in w._status.value
    assert not any(l.name.startswith("grey [welsh] P") for l in viewer.layers) and "attention" not in viewer.layers
    said.clear()
    stack = viewer.add_image(np.stack([small_pair[0]] * 2), name="stack")
    w._target.value = stack
    _run(w, wait_idle)
    assert any("not available for a stack" in m for m in said)


def test_suggest_a_reference_ranks_layers_and_a_folder_and_picks_one(make_napari_viewer, qtbot, tmp_path, wait_idle):
    """The target is a grey crop of 'coffee'; among the colour layers and a folder's files, coffee's
    colour image comes first; clicking its thumbnail opens it as a new layer and makes it the reference,
    and clicking a layer's thumbnail selects that layer."""
    from PIL import Image
    from skimage import data

    viewer = make_napari_viewer()
    grey = np.asarray(Image.fromarray(data.coffee()).convert("L"))[:, 100:500]
    t = viewer.add_image(grey, name="grey")
    rocket = viewer.add_image(data.rocket(), name="rocket", rgb=True)
    viewer.add_image(data.astronaut(), name="astronaut", rgb=True)
    viewer.add_image(np.repeat(grey[..., None], 3, -1), name="grey as rgb", rgb=True)  # no colour: skipped, said
    folder = tmp_path / "refs"
    folder.mkdir()
    Image.fromarray(data.coffee()).save(folder / "coffee.png")
    Image.fromarray(data.chelsea()).save(folder / "chelsea.png")
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value = t
    panel = w.suggest
    panel._folder.value = str(folder)
    n_layers = len(viewer.layers)
    panel.suggest()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120000)
    ranking = panel.last.ranking
    assert ranking[0].name.endswith("coffee.png") and len(panel.buttons) == len(ranking) == 4
    assert not any("grey as rgb" in s.name for s in ranking)
    assert any(e.startswith("grey as rgb") for e in panel.last.errors)
    panel.buttons[0].click()
    assert len(viewer.layers) == n_layers + 1 and w._reference.value is viewer.layers["coffee"]
    assert w._reference.value.rgb
    i = next(k for k, s in enumerate(ranking) if s.name == "layer:rocket")
    panel.buttons[i].click()
    assert w._reference.value is rocket and len(viewer.layers) == n_layers + 1  # a layer is selected, not copied


def test_match_confidence_layer(viewer_pair, qtbot, exemplar_random, models, wait_idle):
    """The option adds a 'confidence' layer over the target (values in [0, 1]); a global method has none
    and says so."""
    viewer, w, t, r = viewer_pair
    w._confidence.value = True
    _run(w, wait_idle)  # welsh: a global method
    assert not [l for l in viewer.layers if l.name.endswith("confidence")]
    assert "confidence not available" in w._status.value
    models.put("exemplar-random", exemplar_random)
    w._model_override = "exemplar-random"
    _run(w, wait_idle, 120000)
    c = viewer.layers["grey [exemplar] confidence"]
    assert c.data.shape == t.data.shape and 0.0 <= c.data.min() and c.data.max() <= 1.0
    assert tuple(c.scale) == tuple(t.scale) and tuple(c.translate) == tuple(t.translate)
    assert c.metadata[OURS]["kind"] == "confidence" and not c.rgb
    # run again without the option: the earlier run's confidence layer goes (it would sit beside the new
    # result showing the old one's); the user's layers stay
    w._confidence.value = False
    _run(w, wait_idle, 120000)
    assert "grey [exemplar] confidence" not in viewer.layers and "grey [exemplar]" in viewer.layers
    assert t in viewer.layers and r in viewer.layers
    # with "keep" on, an earlier result stays, and its confidence layer with it
    w._confidence.value = True
    _run(w, wait_idle, 120000)
    w._keep.value, w._confidence.value = True, False
    n = len(viewer.layers)
    _run(w, wait_idle, 120000)
    assert "grey [exemplar] confidence" in viewer.layers and len(viewer.layers) == n + 1  # (the new result)


def test_the_query_point_picks_the_cell_the_backbone_centres_nearest():
    """A stride-16 cell of EfficientNet is centred on working pixel 16 i (``AttentionMaps.cell_centre``): a point
    there picks cell i, and a point picks the cell whose centre is nearest, over a layer with scale and translate."""
    from napari.layers import Image, Points

    from napari_colorize._widgets._layers import query_cell

    layer = Image(np.zeros((100, 150), np.float32), scale=(2.0, 2.0), translate=(10.0, 5.0))
    lattice, stride = (4, 6), 16
    working = np.array(lattice) * stride  # (64, 96): the working image the lattice was computed on
    data = (stride * np.array([2, 3]) + 0.5) * np.array([100, 150]) / working - 0.5  # working pixel 16 i
    world = np.array([10.0, 5.0]) + 2.0 * data
    assert query_cell(layer, Points([world]), lattice, 0.5 / stride) == (2, 3)
    f = np.array([100, 150]) / np.array(lattice)  # (data pixels per cell)
    assert query_cell(layer, Points([world + 2.0 * (0.45 * f)]), lattice, 0.5 / stride) == (2, 3)
    assert query_cell(layer, Points([world + 2.0 * (0.55 * f)]), lattice, 0.5 / stride) == (3, 4)
    # cells in the middle of their blocks (VGG): the point in a cell's block picks it
    assert query_cell(layer, Points([np.array([10.0, 5.0]) + 2.0 * (f * 2.9 - 0.5)]), lattice) == (2, 2)


def test_a_failed_run_is_reported_once_and_not_raised_again(viewer_pair, qtbot, wait_idle, models, monkeypatch):
    """A run that fails in its worker: the widget's own message and status line, and nothing raised again in Qt's
    event loop (pytest-qt fails a test on such an exception; the workers re-raised every error before)."""
    import napari_colorize._widgets._jobs as jobs

    viewer, w, t, r = viewer_pair

    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("broken model for the test")

    models.put("broken", Broken())
    w._model_override = "broken"
    errors = []
    monkeypatch.setattr(jobs, "show_error", errors.append)
    _run(w, wait_idle)
    assert len(errors) == 1 and "colourisation failed" in errors[0] and "Broken" in errors[0]
    assert w._status.value.startswith("error:")
