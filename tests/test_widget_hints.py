"""Colour points in napari (issue 20, part 3), driven like a user would: a Points layer, its colours, the
live preview, the full run with and without a reference."""
import numpy as np
import pytest

import napari_colorize as nc
from napari_colorize.hints import check_hints
from napari_colorize._widgets import ExemplarWidget
from napari_colorize._widgets._hints import PALETTE, points_as_hints
from napari_colorize._widgets._layers import OURS


def _scene(make_napari_viewer, slices: int | None = None):
    """A two-halves grey image (or a stack of ``slices`` of it, each its own noise) and a green reference,
    the exemplar widget docked with both chosen."""
    L = np.full((64, 96), 0.3, np.float32)
    L[:, 48:] = 0.7
    rng = np.random.default_rng(0)
    noisy = [L + rng.normal(0, 0.003, L.shape).astype(np.float32) for _ in range(slices or 1)]
    ref = np.zeros((40, 40, 3), np.uint8)
    ref[..., 1] = 160  # a green reference
    viewer = make_napari_viewer()
    t = viewer.add_image(noisy[0] if slices is None else np.stack(noisy), name="grey")
    r = viewer.add_image(ref, name="green", rgb=True)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._reference.value = t, r
    return viewer, w, t, r


def test_points_layer_preview_and_run(make_napari_viewer, qtbot, wait_idle):
    viewer, w, t, r = _scene(make_napari_viewer)
    w._model.value = "reinhard"
    before = [l.data.copy() for l in (t, r)]
    w.hints.add_layer()
    pts = viewer.layers["colour points"]
    assert w.hints.points is pts and pts.mode == "add"
    w.hints._palette.value = "red"
    pts.add([20, 10])
    qtbot.waitUntil(lambda: "grey [colour points preview]" in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: w.hints.worker is None, timeout=60000)
    prev = viewer.layers["grey [colour points preview]"]
    assert prev.metadata[OURS]["kind"] == "colour points preview"
    hints = points_as_hints(pts, t)
    assert hints[0][:2] == pytest.approx((20.0, 10.0))
    assert hints[0][2] == pytest.approx(tuple(int(PALETTE["red"][i:i + 2], 16) / 255 for i in (1, 3, 5)), abs=1e-6)
    # the preview is the library's: the same points at the working size
    from napari_colorize.preview import HintPreview

    want = HintPreview("reinhard", t.data, reference=r.data, size=224, hint_spread=w.hints.spread).render(hints)
    assert np.abs(prev.data - want).max() < 1e-5
    # moving the point updates the preview
    old = prev.data.copy()
    pts.data = np.array([[40.0, 80.0]])
    qtbot.waitUntil(lambda: w.hints.worker is None and not np.array_equal(prev.data, old), timeout=60000)
    # the full run takes the points: red where the point is, the reference's green elsewhere
    w.run()
    wait_idle(w, 120000)
    res = viewer.layers["grey [reinhard]"]
    full = nc.colorize("reinhard", t.data, reference=r.data, size=224, hints=points_as_hints(pts, t),
                       hint_spread=w.hints.spread).rgb
    assert np.abs(res.data - full).max() < 1e-5
    assert res.data[40, 80, 0] > res.data[40, 80, 1] and res.data[10, 10, 1] > res.data[10, 10, 0]
    assert res.metadata["provenance"]["hints"][0][:2] == [40.0, 80.0]
    assert res.metadata["provenance"]["hints_from"] == "layer 'colour points'"
    assert all(np.array_equal(l.data, b) for l, b in zip((t, r), before))  # the user's layers untouched
    assert "colour points" in viewer.layers  # the points are the user's: kept
    assert viewer.layers[-1] is pts  # and back over the result, to be seen and moved again


def test_levin_needs_points_not_a_reference(make_napari_viewer, qtbot, wait_idle):
    viewer, w, t, r = _scene(make_napari_viewer)
    w._model.value = "levin"
    w.run()  # no points yet: refused (said), nothing runs
    assert w.worker is None and "grey [levin]" not in viewer.layers
    w.hints.add_layer()
    pts = viewer.layers["colour points"]
    pts.current_face_color = "#d32f2f"
    pts.add([20, 10])
    pts.selected_data = set()  # (napari recolours the selected points with the current colour)
    pts.current_face_color = "#1f4e9a"
    pts.add([20, 80])
    w.run()
    wait_idle(w, 120000)
    res = viewer.layers["grey [levin]"].data
    assert res[5, 5, 0] > res[5, 5, 2] and res[60, 90, 2] > res[60, 90, 0]  # each half from its own point


def test_pick_a_colour_from_the_reference(make_napari_viewer, qtbot):
    viewer, w, t, r = _scene(make_napari_viewer)
    w.hints.add_layer()
    w.hints._pick.value = True
    r.translate = (0, 200)  # the reference beside the target
    assert w.hints.pick_at((10, 210))
    from napari.utils.colormaps.standardize_color import transform_color

    got = transform_color(viewer.layers["colour points"].current_face_color)[0][:3]
    assert np.allclose(got, [0, 160 / 255, 0], atol=1 / 255)
    assert not w.hints._pick.value  # one pick, then back to placing points
    assert not w.hints.pick_at((10, 5000))


def test_points_layers_over_a_stack_give_per_slice_or_every_slice_hints():
    """Through world coordinates: a 3-D layer's leading coordinate is the target's slice; a 2-D layer colours
    every slice; a 3-D layer over (T, Z, Y, X) gives its point on each t (as napari shows it)."""
    from napari.layers import Image, Points

    t = Image(np.zeros((3, 64, 96), np.float32), scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    red = (1.0, 0.0, 0.0)
    pts = Points(np.array([[12.0, 20.0, 10.0], [14.0, 30.0, 40.0]]), ndim=3, face_color="red")  # world z 12, 14
    assert points_as_hints(pts, t) == [(1, 20.0, 10.0, red), (2, 30.0, 40.0, red)]
    flat = Points(np.array([[20.0, 10.0]]), ndim=2, face_color="red")
    assert points_as_hints(flat, t) == [(20.0, 10.0, red)]
    t4 = Image(np.zeros((2, 3, 64, 96), np.float32))
    near = Points(np.array([[1.0, 20.0, 10.0]]), ndim=3, face_color="red")
    assert points_as_hints(near, t4) == [((0, 1), 20.0, 10.0, red), ((1, 1), 20.0, 10.0, red)]
    both = Points(np.array([[1.0, 2.0, 20.0, 10.0]]), ndim=4, face_color="red")
    assert points_as_hints(both, t4) == [((1, 2), 20.0, 10.0, red)]
    # the library takes them as they are: slice (1, 2) is 1 * 3 + 2
    assert check_hints(points_as_hints(both, t4), (64, 96), (2, 3)) == [(5, 20.0, 10.0, red)]


def test_a_3d_points_layer_colours_its_slice_and_the_preview_follows_the_slice(make_napari_viewer, qtbot,
                                                                                 wait_idle):
    viewer, w, t, r = _scene(make_napari_viewer, slices=3)
    stack, ref = t.data, r.data
    w._model.value = "reinhard"
    w.hints.add_layer()
    pts = viewer.layers["colour points"]
    assert pts.ndim == 3
    w.hints._palette.value = "red"
    viewer.dims.set_current_step(0, 1)
    pts.add([1, 20, 10])
    red = tuple(int(PALETTE["red"][i:i + 2], 16) / 255 for i in (1, 3, 5))
    hints = points_as_hints(pts, t)
    assert len(hints) == 1 and hints[0][:3] == (1, 20.0, 10.0) and hints[0][3] == pytest.approx(red, abs=1e-6)
    name = "grey [colour points preview]"
    qtbot.waitUntil(lambda: name in viewer.layers and w.hints.worker is None, timeout=60000)
    from napari_colorize.preview import HintPreview

    want = HintPreview("reinhard", stack[1], reference=ref, size=224, hint_spread=w.hints.spread).render(
        [hints[0][1:]])
    assert viewer.layers[name].metadata[OURS]["hints"] == 1 and np.abs(viewer.layers[name].data - want).max() < 1e-5
    viewer.dims.set_current_step(0, 0)  # a slice without points: no preview of them
    qtbot.waitUntil(lambda: name not in viewer.layers, timeout=60000)
    w.run()
    wait_idle(w, 120000)
    res = viewer.layers["grey [reinhard]"]
    full = nc.colorize("reinhard", stack, reference=ref, size=224, hints=hints, hint_spread=w.hints.spread)
    assert np.abs(res.data - full.rgb).max() < 1e-5
    every = nc.colorize("reinhard", stack, reference=ref, size=224, hints=[hints[0][1:]], hint_spread=w.hints.spread)
    assert np.abs(res.data[0] - every.rgb[0]).max() > 0.05  # not on every slice
    assert res.metadata["provenance"]["hints"][0][:3] == [1, 20.0, 10.0]
