"""The colour points' live preview in napari, the whole path: a point moved -> the preview layer updated.

    xvfb-run -a python benchmarks/bench_hints_widget.py [--repeats 10] [--model exemplar]

A viewer with the bundled pair, the exemplar widget docked, a colour points layer with 5 points; after
the first preview (the guide's colours and the factors), each repeat moves one point and waits until
the preview layer shows the new colours (the Qt event loop running: the widget's 30 ms debounce, the
worker thread, the layer update). Prints the median and the worst time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--model", default="exemplar")
    a = ap.parse_args(argv)
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_colorize._sample_data import sample_pair
    from napari_colorize._widgets import ExemplarWidget

    grey, ref, truth = sample_pair()
    viewer = napari.Viewer(show=False)
    t = viewer.add_image(grey, name="grey")
    r = viewer.add_image(ref, name="reference", rgb=True)
    w = ExemplarWidget(viewer)
    viewer.window.add_dock_widget(w)
    w._target.value, w._reference.value = t, r
    w._model.value = a.model
    app = QApplication.instance()

    def wait(cond, timeout=120.0):
        t0 = time.perf_counter()
        while not cond():
            app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("the preview did not come")
        return time.perf_counter() - t0

    w.hints.add_layer()
    pts = viewer.layers["colour points"]
    rng = np.random.default_rng(0)
    yx = np.column_stack([rng.integers(20, 480, 5), rng.integers(20, 720, 5)]).astype(float)
    pts.data = yx
    pts.face_color = [tuple(truth[int(y), int(x)] / 255) + (1.0,) for y, x in yx]
    name = "grey [colour points preview]"
    first = wait(lambda: name in viewer.layers and w.hints.worker is None)
    times = []
    for k in range(a.repeats):
        layer = viewer.layers[name]
        old = layer.data.copy()
        moved = yx.copy()
        moved[4] += (5 + 3 * k, 4 + 2 * k)
        t0 = time.perf_counter()
        pts.data = moved
        wait(lambda: w.hints.worker is None and not np.array_equal(layer.data, old))
        times.append(time.perf_counter() - t0)
    print(f"\n| model | first preview (s) | move one point -> preview shown, median (ms) | worst (ms) |")
    print("|---|---|---|---|")
    print(f"| {a.model} | {first:.2f} | {1000 * statistics.median(times):.0f} | {1000 * max(times):.0f} |")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
