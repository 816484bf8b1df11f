"""Render the napari screenshots in docs/images from the real widgets.

    python docs/make_screenshots.py              # all of them; with no display it re-runs itself under xvfb-run
    python docs/make_screenshots.py histogram    # only some: exemplar attention histogram compare microscopy

Each picture is a real viewer with a real widget driven through its controls, with the shipped weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "images"


def _wait(widget, attr: str = "worker") -> None:
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    while getattr(widget, attr) is not None:
        QApplication.processEvents()
    for _ in range(20):
        QApplication.processEvents()


def _shot(viewer, name: str) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(10):
        QApplication.processEvents()
    viewer.screenshot(str(OUT / name), canvas_only=False)
    print(f"wrote {OUT / name}")
    viewer.close()


def _open(title: str, widget_cls, dock_name: str):
    """A 1600 x 1000 viewer with ``widget_cls`` docked; returns (viewer, widget)."""
    import napari

    v = napari.Viewer(title=title)
    v.window.resize(1600, 1000)
    w = widget_cls(v)
    v.window.add_dock_widget(w, name=dock_name)
    return v, w


def _on_the_tank(points, grey) -> None:
    """Move a query point onto the motorcycle's tank."""
    import numpy as np

    points.data = np.array([[grey.shape[0] * 0.45, grey.shape[1] * 0.4]])


def exemplar() -> None:
    from napari_colorize._widgets._demo import open_demo
    from napari_colorize.cli import best_default_model

    open_demo(best_default_model(), screenshot=OUT / "napari_exemplar.png")


def attention() -> None:
    """Exemplar run with attention layers: the query point on the target, the heatmap over the reference."""
    from napari_colorize._sample_data import sample_pair
    from napari_colorize._widgets import ExemplarWidget

    grey, ref, _ = sample_pair()
    v, w = _open("napari-colorize: attention", ExemplarWidget, "Exemplar colourisation")
    t = v.add_image(grey, name="motorcycle (grey)")
    r = v.add_image(ref, name="motorcycle (reference)", rgb=True, translate=(0, grey.shape[1] + 20))
    w._target.value, w._reference.value = t, r
    w._model.value = "exemplar"
    w._attention.value = True
    w.run()
    _wait(w)
    _on_the_tank(v.layers["motorcycle (grey) [exemplar] attention query"], grey)
    v.layers["motorcycle (grey) [exemplar]"].visible = False
    t.visible = True
    v.reset_view()
    _shot(v, "napari_attention.png")


def histogram() -> None:
    """Histogram editor with a preset, its live preview, a full run and the pixel -> bins overlay."""
    from napari_colorize import histogram_edit as he
    from napari_colorize._sample_data import sample_pair
    from napari_colorize._widgets import HistogramWidget

    grey, ref, _ = sample_pair()
    v, w = _open("napari-colorize: histogram", HistogramWidget, "Histogram colourisation")
    t = v.add_image(grey, name="motorcycle (grey)")
    w._target.value = t
    w._preview.value = False
    w._attention.value = True
    w.canvas.set_histogram(he.preset("warm (sunset)"))
    w.run()
    _wait(w)
    _on_the_tank(next(l for l in v.layers if l.name.endswith("bin query")), grey)
    t.visible = False
    v.reset_view()
    _shot(v, "napari_histogram.png")


def compare() -> None:
    """The default, the ablations and the baselines on one pair, in napari's grid, with the score table."""
    from napari_colorize import list_models
    from napari_colorize._sample_data import sample_pair
    from napari_colorize._widgets import CompareWidget

    grey, ref, truth = sample_pair()
    v, w = _open("napari-colorize: compare", CompareWidget, "Compare models")
    t = v.add_image(grey, name="grey")
    r = v.add_image(ref, name="reference", rgb=True)
    g = v.add_image(truth, name="truth", rgb=True)
    w._target.value, w._reference.value, w._truth.value = t, r, g
    names = [n for n in list_models() if n.startswith("exemplar") and n != "exemplar-paper"] + ["welsh", "reinhard"]
    w.run(names)
    _wait(w)
    for layer in (t, g):
        layer.visible = False
    v.reset_view()
    _shot(v, "napari_compare.png")


def microscopy() -> None:
    """uint16 cell micrograph with an IHC reference, and the uint16 z-stack colourised slice by slice."""
    from napari_colorize._sample_data import microscopy_pair_layers, zstack_layers
    from napari_colorize._widgets import ExemplarWidget

    v, w = _open("napari-colorize: microscopy", ExemplarWidget, "Exemplar colourisation")
    (g, gm, _), (r, rm, _) = microscopy_pair_layers()
    (z, zm, _), = zstack_layers()
    stack = v.add_image(z, **zm)
    ref = v.add_image(r, **{**rm, "translate": (0, z.shape[-1] + 20)})
    w._target.value, w._reference.value = stack, ref
    w._model.value = "exemplar"
    w.run()
    _wait(w)
    v.dims.set_current_step(0, z.shape[0] // 2)
    stack.visible = False
    v.reset_view()
    _shot(v, "napari_microscopy.png")


SHOTS = {"exemplar": exemplar, "attention": attention, "histogram": histogram, "compare": compare,
         "microscopy": microscopy}

if __name__ == "__main__":
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        sys.exit(subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__,
                                  *sys.argv[1:]]))
    import napari_colorize  # noqa: F401  (torch before Qt)

    OUT.mkdir(parents=True, exist_ok=True)
    for key in sys.argv[1:] or list(SHOTS):
        SHOTS[key]()
