import csv

import numpy as np

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
    assert "welsh (compare)" in viewer.layers and "reinhard (compare)" in viewer.layers
    assert w.table.rowCount() == 2 and w.table.item(0, 0).text() == "welsh"
    assert w.table.item(0, 3).text() != "-"  # SSIM against the ground truth layer
    w._csv.value = tmp_path / "scores.csv"
    w.export()
    with open(tmp_path / "scores.csv") as fh:
        assert [row["model"] for row in csv.DictReader(fh)] == ["welsh", "reinhard"]
    # exporting again onto that file: the first press warns and keeps it, the second replaces it
    (tmp_path / "scores.csv").write_text("mine\n")
    w.export()
    assert (tmp_path / "scores.csv").read_text() == "mine\n" and "exists" in w._status.value
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
    expected = [n for n in ("exemplar", "histogram", "warp-grey", "welsh", "reinhard") if n in list_models()]
    assert sorted(w._models.value) == sorted(expected) and "exemplar-no-adv" not in w._models.value
    resets = []
    viewer.events.reset_view.connect(lambda e: resets.append(e))
    w.run(["welsh", "reinhard"])
    wait_idle(w, 60000)
    assert resets  # the view is fitted to the outputs
    # the outputs are laid out side by side below the pair, each tile labelled with its model
    a, b = viewer.layers["welsh (compare)"], viewer.layers["reinhard (compare)"]
    h, w_ = grey.shape
    assert a.translate[0] >= h and a.translate[0] == b.translate[0] and b.translate[1] >= a.translate[1] + w_
    labels = viewer.layers["compare labels"]
    assert list(labels.features["model"]) == ["welsh", "reinhard"] and labels.text.visible
    assert np.allclose(labels.data[:, 1], [a.translate[1], b.translate[1]])  # at each tile's left edge
    assert np.all(labels.data[:, 0] <= a.translate[0])  # above it
    assert tuple(t.translate) == (0, 0) and tuple(r.translate) == (0, 0)  # user layers are not moved
    # a new comparison replaces the last one: the labels follow, welsh's output is gone
    w.run(["reinhard"])
    wait_idle(w, 60000)
    assert "welsh (compare)" not in viewer.layers and list(viewer.layers["compare labels"].features["model"]) == \
        ["reinhard"]
    headers = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
    assert all(len(h) <= 8 for h in headers)
    assert w.table.item(0, headers.index("PSNR")).text() == "-"  # no truth: no PSNR
    assert len(w.table.item(0, headers.index("colourf.")).text().split(".")[-1]) == 1  # one decimal
    from qtpy.QtWidgets import QHeaderView

    assert w.table.horizontalHeader().sectionResizeMode(0) == QHeaderView.ResizeMode.ResizeToContents


def test_sheet_layout():
    from napari_colorize.compare import sheet_layout

    pos = sheet_layout(5, (100, 200), origin=(10, 5), gap=20)
    assert pos == [(10, 5), (10, 225), (10, 445), (130, 5), (130, 225)]  # 3 columns for 5 tiles
    assert sheet_layout(2, (100, 200)) == [(0, 0), (0, 220)]  # at least 2 columns, gaps of at least 20
    assert sheet_layout(3, (500, 10), columns=1)[2] == (1100, 0)  # rows 10 % of the tile height apart
    assert sheet_layout(4, (100, 200), gap=(30, 10))[3] == (130, 210)
