import csv

from napari_colorize._widgets import CompareWidget


def test_compare_widget_adds_layers_in_a_grid_and_exports(make_napari_viewer, qtbot, small_pair, tmp_path, wait_idle):
    grey, ref, truth = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(grey, name="grey")
    r = viewer.add_image(ref, name="ref", rgb=True)
    g = viewer.add_image(truth, name="truth", rgb=True)
    w = CompareWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._reference.value, w._truth.value = t, r, g
    w.run(["welsh", "reinhard"])
    wait_idle(w, 60000)
    assert "welsh | grey (compare)" in viewer.layers and "reinhard | grey (compare)" in viewer.layers
    from napari_colorize._widgets._compare import grid_of

    assert grid_of(viewer).enabled
    assert w.table.rowCount() == 2 and w.table.item(0, 0).text() == "welsh"
    assert w.table.item(0, 3).text() != "-"  # SSIM against the ground truth layer
    w._csv.value = tmp_path / "scores.csv"
    w.export()
    with open(tmp_path / "scores.csv") as fh:
        assert [row["model"] for row in csv.DictReader(fh)] == ["welsh", "reinhard"]
