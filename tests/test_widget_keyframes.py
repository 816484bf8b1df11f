"""The exemplar widget's keyframes on a stack (issue 20, part 2), driven like a user would."""
import numpy as np

import napari_colorize as nc
from napari_colorize._widgets import ExemplarWidget
from napari_colorize._widgets._layers import OURS
from test_references import two_textures


def test_keyframes_set_on_the_slice_on_view(make_napari_viewer, qtbot, wait_idle):
    target, red, blue = two_textures(64)
    stack = np.stack([target, target[:, ::-1], target[::-1], target, target[:, ::-1]]).astype(np.float32)
    viewer = make_napari_viewer()
    t = viewer.add_image(stack, name="stack", scale=(2.0, 1.0, 1.0))
    r1 = viewer.add_image(red, name="red", rgb=True)
    r2 = viewer.add_image(blue, name="blue", rgb=True)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._model.value = t, "warp-grey"
    kp = w.keyframes
    w._reference.value = r1
    viewer.dims.set_point(0, 2.0)  # world z 2 = slice 1 (z scale 2)
    assert kp.current_slice() == 1
    kp.set_here()
    w._reference.value = r2
    viewer.dims.set_point(0, 8.0)
    kp.set_here()
    viewer.dims.set_point(0, 6.0)
    w._more.value = [r1]  # slice 3: both
    kp.set_here()
    assert {z: [l.name for l in ls] for z, ls in kp.keyframes.items()} == {1: ["red"], 3: ["blue", "red"],
                                                                           4: ["blue"]}
    assert [c for c in kp._frames.choices] == [1, 3, 4]
    kp._frames.value = [4]
    kp.remove_selected()
    assert list(kp.keyframes) == [1, 3]
    before = [l.data.copy() for l in (t, r1, r2)]
    w.run()
    wait_idle(w, 120000)
    layer = viewer.layers["stack [warp-grey]"]
    want = nc.colorize("warp-grey", stack, references={1: [red], 3: [blue, red]}, size=224).rgb
    assert np.abs(layer.data - want).max() < 1e-5
    meta = layer.metadata[OURS]
    assert meta["keyframes"] == {1: ["red"], 3: ["blue", "red"]} and meta["blend"] == "linear"
    assert all(np.array_equal(l.data, b) for l, b in zip((t, r1, r2), before))
    # a keyframe whose layer is removed is dropped (said), the rest still used
    viewer.layers.remove(r2)
    w._reference.value = r1
    w._more.value = []
    w.run()
    wait_idle(w, 120000)
    assert list(kp.keyframes) == [1] and "removed" in kp._status.value
    want = nc.colorize("warp-grey", stack, references={1: [red]}, size=224).rgb
    assert np.abs(viewer.layers["stack [warp-grey]"].data - want).max() < 1e-5
