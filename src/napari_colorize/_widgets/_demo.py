"""The main job in napari: the sample pair, the exemplar widget docked, colourised with the shipped default."""

from __future__ import annotations

from pathlib import Path


def open_demo(model: str, screenshot: str | Path | None = None, result: str | Path | None = None) -> None:
    """Open napari with the motorcycle pair and the widget, and run it. With ``screenshot`` the
    viewer renders, saves the screenshot (and the result as PNG) and closes instead of staying open."""
    import napari
    from qtpy.QtWidgets import QApplication

    from .._sample_data import sample_pair
    from ..io import write_image
    from ._exemplar import ExemplarWidget

    grey, ref, _ = sample_pair()
    viewer = napari.Viewer(title="napari-colorize demo")
    viewer.window.resize(1500, 900)
    t = viewer.add_image(grey, name="motorcycle (grey)")
    r = viewer.add_image(ref, name="motorcycle (reference)", rgb=True, translate=(0, grey.shape[1] + 20))
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w, name="Exemplar colourisation")
    w._target.value, w._reference.value = t, r
    w._model.value = model
    w.run()
    if screenshot is None:
        napari.run()
        return
    while w.worker is not None:
        QApplication.processEvents()
    layer = next(l for l in viewer.layers if l.name.startswith("motorcycle (grey) ["))
    t.visible = False
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(screenshot), canvas_only=False)
    if result is not None:
        write_image(result, layer.data)
    print(f"wrote {Path(screenshot).resolve()}")
    viewer.close()
