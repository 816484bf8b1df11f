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


def test_compare_defaults_tile_labels_and_a_readable_table(make_napari_viewer, qtbot, small_pair, wait_idle):
    from napari_colorize import list_models

    grey, ref, truth = small_pair
    viewer = make_napari_viewer()
    t = viewer.add_image(grey, name="grey")
    r = viewer.add_image(ref, name="ref", rgb=True)
    w = CompareWidget(viewer)
    viewer.window.add_dock_widget(w)
    # a sensible first set, not every ablation
    expected = [n for n in ("exemplar", "histogram", "welsh", "reinhard") if n in list_models()]
    assert sorted(w._models.value) == sorted(expected) and "exemplar-no-adv" not in w._models.value
    resets = []
    viewer.events.reset_view.connect(lambda e: resets.append(e))
    w.run(["welsh", "reinhard"])
    wait_idle(w, 60000)
    assert resets  # the view is fitted to the grid's tiles
    for model in ("welsh", "reinhard"):
        layer = viewer.layers[f"{model} | grey (compare)"]
        assert layer.name.startswith(model)  # the model first: the label and the layer list show it
        if hasattr(layer, "name_overlay"):  # each tile is labelled with its layer (napari >= 0.6)
            assert layer.name_overlay.visible
    if hasattr(t, "name_overlay"):  # user layers are not restyled
        assert not t.name_overlay.visible and not r.name_overlay.visible
    headers = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    assert all(len(h) <= 8 for h in headers)
    assert w.table.item(0, headers.index("PSNR")).text() == "-"  # no truth: no PSNR
    assert len(w.table.item(0, headers.index("colourf.")).text().split(".")[-1]) == 1  # one decimal
    from qtpy.QtWidgets import QHeaderView

    assert w.table.horizontalHeader().sectionResizeMode(0) == QHeaderView.ResizeMode.ResizeToContents
