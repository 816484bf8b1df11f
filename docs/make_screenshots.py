"""Render the napari screenshots in docs/images from the real widgets.

    python docs/make_screenshots.py              # all of them; with no display it re-runs itself under xvfb-run
    python docs/make_screenshots.py histogram    # only some: exemplar attention histogram compare microscopy suggest hints

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


DOCKS = {"exemplar": "Exemplar colourisation", "histogram": "Histogram colourisation", "compare": "Compare models"}


def _dock(v, kind: str):
    """Dock a widget as *Plugins > napari-colorize* does: ``kind`` is exemplar, histogram or compare."""
    from napari_colorize import _widgets

    cls = {"exemplar": _widgets.ExemplarWidget, "histogram": _widgets.HistogramWidget,
           "compare": _widgets.CompareWidget}[kind]
    w = cls(v)
    v.window.add_dock_widget(w, name=DOCKS[kind])
    return w


def _open(title: str, kind: str, sample: str | None = None):
    """A 1600 x 1000 viewer with a widget docked and, as a user would, *File > Open Sample > sample* opened
    after it; returns (viewer, widget)."""
    import napari
    from qtpy.QtWidgets import QApplication

    v = napari.Viewer(title=title)
    v.window.resize(1600, 1000)
    w = _dock(v, kind)
    for _ in range(10):  # let the window take its size before the sample fits the view to it
        QApplication.processEvents()
    if sample is not None:
        v.open_sample("napari-colorize", sample)
    return v, w


def _on_the_tank(points, grey) -> None:
    """Move a query point onto the motorcycle's tank."""
    import numpy as np

    points.data = np.array([[grey.shape[0] * 0.45, grey.shape[1] * 0.4]])


def exemplar() -> None:
    """Open Sample (motorcycle), the exemplar widget with its defaults, Run."""
    v, w = _open("napari-colorize: exemplar", "exemplar", "motorcycle_pair")
    w.run()
    _wait(w)
    v.reset_view()
    _shot(v, "napari_exemplar.png")


def attention() -> None:
    """Exemplar run with attention: the query point on the target, the heatmap over the reference."""
    v, w = _open("napari-colorize: attention", "exemplar", "motorcycle_pair")
    w._attention.value = True
    w.run()
    _wait(w)
    grey = w._target.value
    _on_the_tank(v.layers["attention point"], grey.data)
    v.layers[f"{grey.name} [{w._model.value}]"].visible = False  # the grey target under the point
    v.reset_view()
    _shot(v, "napari_attention.png")


def histogram() -> None:
    """Histogram editor with a preset, a full run and the pixel -> bins overlay; the exemplar widget docked above
    it, as on a laptop (both fit a 1000 px window)."""
    from napari_colorize import histogram_edit as he

    v, _ = _open("napari-colorize: histogram", "exemplar")
    w = _dock(v, "histogram")
    v.open_sample("napari-colorize", "motorcycle_pair")
    w._attention.value = True
    w.canvas.set_histogram(he.preset("warm (sunset)"))  # live preview, then Run
    w.run()
    _wait(w)
    _on_the_tank(v.layers["bin point"], w._target.value.data)
    v.reset_view()
    _shot(v, "napari_histogram.png")


def compare() -> None:
    """Open Sample (motorcycle, with its hidden true colours), Compare with the default set of models."""
    v, w = _open("napari-colorize: compare", "compare", "motorcycle_pair")
    w.run()
    _wait(w)
    _shot(v, "napari_compare.png")


def microscopy() -> None:
    """Open Sample (the uint16 z-stack with its IHC reference), the exemplar widget, Run: slice by slice."""
    v, w = _open("napari-colorize: microscopy", "exemplar", "zstack")
    w.run()
    _wait(w)
    v.dims.set_current_step(0, w._target.value.data.shape[0] // 2)
    v.reset_view()
    _shot(v, "napari_microscopy.png")


def suggest() -> None:
    """Open Sample (motorcycle), four more colour photos as layers, *Suggest a reference* unfolded and
    *Suggest references* clicked: the best four as thumbnails, best first."""
    from skimage import data

    v, w = _open("napari-colorize: suggest a reference", "exemplar", "motorcycle_pair")
    for name in ("coffee", "chelsea", "astronaut", "rocket"):
        v.add_image(getattr(data, name)(), name=name, rgb=True, visible=False)
    v.layers.selection.active = v.layers["motorcycle (grey)"]
    w.sections["suggest"].set_expanded(True)
    w.suggest.suggest()
    _wait(w.suggest)
    v.reset_view()
    _shot(v, "napari_suggest.png")


def hints() -> None:
    """Open Sample (motorcycle), *Colour points* unfolded, *add a colour points layer*, three points
    placed (the tank, the rear fender, the floor) with colours from the palette: the live preview."""
    import numpy as np

    from napari_colorize._widgets._hints import PALETTE

    v, w = _open("napari-colorize: colour points", "exemplar", "motorcycle_pair")
    w.sections["hints"].set_expanded(True)
    w.hints.add_layer()
    pts = v.layers["colour points"]
    pts.data = np.array([[185.0, 430.0], [215.0, 190.0], [285.0, 35.0]])
    pts.face_color = [PALETTE["red"], PALETTE["red"], PALETTE["sand"]]
    w.hints.schedule()
    from qtpy.QtWidgets import QApplication

    import time

    t0 = time.time()
    while "motorcycle (grey) [colour points preview]" not in v.layers or w.hints.worker is not None:
        QApplication.processEvents()
        if time.time() - t0 > 300:
            raise SystemExit(f"no preview came: {w.hints._status.value}")
    _wait(w.hints)
    v.layers.selection.active = pts
    v.reset_view()
    _shot(v, "napari_hints.png")


def hints_stack() -> None:
    """Open Sample (the uint16 z-stack), *Colour points* unfolded, *add a colour points layer* (3-D over the
    stack: each point belongs to the slice it was placed on), two points on the middle slice: its preview;
    Run colours the stack, the points on that slice only."""
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_colorize._widgets._hints import PALETTE

    v, w = _open("napari-colorize: colour points on a stack", "exemplar", "zstack")
    grey = w._target.value.data
    z = grey.shape[0] // 2
    v.dims.set_current_step(0, z)
    w.sections["hints"].set_expanded(True)
    w.hints.add_layer()
    pts = v.layers["colour points"]
    h, wd = grey.shape[1:]
    pts.data = np.array([[z, h * 0.5, wd * 0.5], [z, h * 0.5, wd * 0.77]])  # (the background; the bead)
    pts.face_color = [PALETTE["red"], PALETTE["sky blue"]]
    w.run()
    _wait(w)
    for _ in range(10):
        QApplication.processEvents()
    v.layers.selection.active = pts
    v.reset_view()
    _shot(v, "napari_hints_stack.png")


SHOTS = {"hints": hints, "hints_stack": hints_stack, "exemplar": exemplar, "attention": attention, "histogram": histogram, "compare": compare,
         "microscopy": microscopy, "suggest": suggest}

if __name__ == "__main__":
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        sys.exit(subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__,
                                  *sys.argv[1:]]))
    import napari_colorize  # noqa: F401  (torch before Qt)

    OUT.mkdir(parents=True, exist_ok=True)
    for key in sys.argv[1:] or list(SHOTS):
        SHOTS[key]()
