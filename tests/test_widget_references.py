"""The exemplar widget with several reference layers (issue 20, part 1), driven like a user would."""
import numpy as np
import pytest

import napari_colorize as nc
from napari_colorize._widgets import ExemplarWidget
from napari_colorize._widgets._layers import OURS
from napari_colorize.provenance import pixels_digest
from test_references import two_textures


def _setup(make_napari_viewer):
    target, red, blue = two_textures(96)
    viewer = make_napari_viewer()
    t = viewer.add_image(target, name="grey")
    r1 = viewer.add_image(red, name="red stripes", rgb=True)
    r2 = viewer.add_image(blue, name="blue dots", rgb=True)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._reference.value = t, r1
    return viewer, w, t, r1, r2


def _run(w, wait_idle, timeout=120000):
    w.run()
    wait_idle(w, timeout)


def test_more_references_are_used_together(make_napari_viewer, qtbot, wait_idle):
    viewer, w, t, r1, r2 = _setup(make_napari_viewer)
    # the list offers the other colour layers: not the target, not the colour reference
    assert [c for c in w._more.choices] == [r2]
    w._model.value = "warp-grey"
    w._more.value = [r2]
    before = [l.data.copy() for l in (t, r1, r2)]
    _run(w, wait_idle)
    layer = viewer.layers["grey [warp-grey]"]
    want = nc.colorize("warp-grey", t.data, reference=[r1.data, r2.data], size=224).rgb
    assert np.abs(layer.data - want).max() < 1e-5
    assert layer.metadata[OURS]["references"] == ["red stripes", "blue dots"]
    # how it was made, by layer name and pixel hash (issue 20, part 4)
    made = layer.metadata["provenance"]
    assert [e["name"] for e in made["references"]] == ["red stripes", "blue dots"]
    assert [e["sha256"] for e in made["references"]] == [pixels_digest(r1.data), pixels_digest(r2.data)]
    assert made["target"]["name"] == "layer 'grey'" and made["model"]["name"] == "warp-grey"
    assert all(np.array_equal(l.data, b) for l, b in zip((t, r1, r2), before))  # user layers untouched
    # one reference again: the result is that reference's
    w._more.value = []
    _run(w, wait_idle)
    one = nc.colorize("warp-grey", t.data, reference=r1.data, size=224).rgb
    assert np.abs(viewer.layers["grey [warp-grey]"].data - one).max() < 1e-5
    assert "references" not in viewer.layers["grey [warp-grey]"].metadata[OURS]
    assert len(viewer.layers["grey [warp-grey]"].metadata["provenance"]["references"]) == 1  # (replaced, not stale)


def test_provenance_goes_with_an_ome_zarr_export(make_napari_viewer, qtbot, wait_idle, tmp_path):
    pytest.importorskip("ome_zarr")
    from napari_colorize.volume import read_provenance

    viewer, w, t, r1, r2 = _setup(make_napari_viewer)
    w._model.value = "reinhard"
    _run(w, wait_idle)
    layer = viewer.layers["grey [reinhard]"]
    out = tmp_path / "result.zarr"
    viewer.layers.selection = {layer}
    viewer.layers.save(str(out), selected=True, plugin="napari-colorize")
    rec = read_provenance(out)
    assert rec == layer.metadata["provenance"] and rec["references"][0]["name"] == "red stripes"


@pytest.fixture
def attention_setup(make_napari_viewer, exemplar_random, models):
    """``_setup`` with a random-weight exemplar network (served by name from a fresh model cache) and
    *add attention* ticked."""
    models.put("exemplar-random", exemplar_random)
    viewer, w, t, r1, r2 = _setup(make_napari_viewer)
    w._model_override = "exemplar-random"
    w._attention.value = True
    return viewer, w, t, r1, r2


def test_attention_is_shown_over_each_reference(attention_setup, qtbot, wait_idle):
    viewer, w, t, r1, r2 = attention_setup
    w._more.value = [r2]
    _run(w, wait_idle)
    att = {l.name: l for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == "attention"}
    assert sorted(att) == ["attention", "attention 2"]
    assert att["attention"].metadata[OURS]["over"] == "red stripes"
    assert att["attention 2"].metadata[OURS]["over"] == "blue dots"
    # one softmax over both references: the two parts of the query cell's map sum to 1 together, and each
    # layer shows its part on the pixels of its reference
    m = w.attention_view.maps[att["attention"].metadata[OURS]["level"]]
    eff = m.effective(*att["attention"].metadata[OURS]["query"])
    half = eff.shape[1] // 2
    assert abs(float(eff.sum()) - 1.0) < 1e-3 and eff[:, :half].sum() > 0 and eff[:, half:].sum() > 0
    for k, (l, r) in enumerate(((att["attention"], r1), (att["attention 2"], r2))):  # each overlays its reference
        assert np.allclose(l.data, m.on_pixels(eff[:, k * half:(k + 1) * half]))
        assert np.allclose(np.asarray(l.data.shape) * l.scale, np.asarray(r.data.shape[:2]) * r.scale, rtol=1e-6)
    # a run with one reference leaves no map over the other
    w._more.value = []
    _run(w, wait_idle)
    names = [l.name for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == "attention"]
    assert names == ["attention"]


def test_a_removed_reference_takes_its_map_and_the_others_follow_the_point(attention_setup, qtbot, wait_idle):
    """After a run with two references, the second reference layer is removed: its map goes with it, the first
    keeps following the point (it froze, silently), and the status line says why."""
    viewer, w, t, r1, r2 = attention_setup
    w._more.value = [r2]
    _run(w, wait_idle)
    first = viewer.layers["attention"].data.copy()
    viewer.layers.remove(r2)
    q = viewer.layers["attention point"]
    q.data = np.array([[0.0, 0.0]])  # to the top-left corner
    names = [l.name for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") == "attention"]
    assert names == ["attention"] and "blue dots removed" in w._status.value
    assert viewer.layers["attention"].metadata[OURS]["query"] == [0, 0]
    assert not np.array_equal(viewer.layers["attention"].data, first)
    assert r1 in viewer.layers and t in viewer.layers


def test_a_run_whose_attention_is_lost_leaves_no_earlier_maps(attention_setup, qtbot, wait_idle):
    """A second run's reference removed while it runs: it has no attention to show, and the first run's maps (over
    another reference) go too - beside the new result they would follow the point for the old one."""
    viewer, w, t, r1, r2 = attention_setup
    _run(w, wait_idle)
    assert "attention" in viewer.layers
    w._reference.value = r2
    w.run()
    viewer.layers.remove(r2)
    wait_idle(w, 120000)
    assert "not available" in w._status.value
    assert not [l for l in viewer.layers if l.metadata.get(OURS, {}).get("kind") in ("attention", "concentration")]
