"""The main job in napari, in the user's order: napari first, then our sample (File > Open Sample),
then our widget (Plugins > napari-colorize), driven through its public methods."""

from __future__ import annotations

from pathlib import Path


def open_demo(model: str, screenshot: str | Path | None = None, result: str | Path | None = None) -> None:
    """Open napari with the motorcycle pair and the exemplar widget, and run it. With ``screenshot`` the
    viewer renders, saves the screenshot (and the result as PNG) and closes instead of staying open."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-colorize demo")
    viewer.window.resize(1500, 900)
    viewer.open_sample("napari-colorize", "motorcycle_pair")
    _, w = viewer.window.add_plugin_dock_widget("napari-colorize", "Exemplar colourisation")
    w.set_model(model)
    w.run()
    if screenshot is None:
        napari.run()
        return
    from ..io import write_image
    from ._layers import is_ours

    while w.worker is not None:
        QApplication.processEvents()
    layer = next(l for l in viewer.layers if is_ours(l) and l.rgb)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(screenshot), canvas_only=False)
    if result is not None:
        write_image(result, layer.data)
    print(f"wrote {Path(screenshot).resolve()}")
    viewer.close()
