"""Render the napari screenshots in docs/images from the real widgets.

    xvfb-run -a python docs/make_screenshots.py        # headless (a virtual X server)
"""

from __future__ import annotations

from pathlib import Path

import napari_colorize  # noqa: F401  (torch before Qt)

OUT = Path(__file__).parent / "images"


def exemplar_screenshot(model: str | None = None) -> Path:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_colorize._sample_data import sample_pair
    from napari_colorize._widgets import ExemplarWidget
    from napari_colorize.cli import best_default_model

    grey, ref, _ = sample_pair()
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 900)
    t = viewer.add_image(grey, name="motorcycle (grey)")
    r = viewer.add_image(ref, name="motorcycle (reference)", rgb=True, translate=(0, 760))
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w, name="Exemplar colourisation")
    w._target.value, w._reference.value = t, r
    w._model.value = model or best_default_model()
    w._attention.value = w._model.value.startswith("exemplar")
    w.run()
    while w.worker is not None:
        QApplication.processEvents()
    result = next(l for l in viewer.layers if l.name.startswith("motorcycle (grey) ["))
    t.visible = False
    viewer.layers.move(viewer.layers.index(result), 0)
    viewer.reset_view()
    QApplication.processEvents()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "napari_exemplar.png"
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()
    return path


if __name__ == "__main__":
    print("wrote", exemplar_screenshot())
