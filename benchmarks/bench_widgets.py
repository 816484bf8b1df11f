"""Widget benchmarks (napari under a virtual X server): event-loop stalls and live-preview latency.

    xvfb-run -a python benchmarks/bench_widgets.py
"""

from __future__ import annotations

import time

import numpy as np

import napari_colorize as nc  # noqa: F401  (torch before Qt)


def main() -> None:
    import napari
    import torch
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_colorize._widgets._workers import MODELS
    from napari_colorize import histogram_edit as he
    from napari_colorize._sample_data import sample_pair
    from napari_colorize._widgets import ExemplarWidget, HistogramWidget

    torch.set_num_threads(2)
    grey, ref, _ = sample_pair()
    big = np.tile(grey, (2, 2))
    viewer = napari.Viewer(show=False)
    t = viewer.add_image(big, name="grey")
    r = viewer.add_image(ref, name="ref", rgb=True)
    app = QApplication.instance()

    def wait_for(cond, timeout=120):
        end = time.time() + timeout
        while not cond() and time.time() < end:
            app.processEvents()
            time.sleep(0.001)

    print("| widget run | image | longest event-loop stall (ms) |")
    print("|---|---|---:|")
    for name, pretrained in [("exemplar", False), ("welsh", True)]:
        MODELS.put(f"{name}-bench", nc.load_model(name, device="cpu", pretrained=pretrained))
        w = ExemplarWidget(viewer)
        w._model_override = f"{name}-bench"
        w._target.value, w._reference.value = t, r
        ticks = [time.perf_counter()]
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        w.run()
        wait_for(lambda: w.worker is None)
        ticks.append(time.perf_counter())
        timer.stop()
        print(f"| exemplar widget, {name} | {big.shape[1]} x {big.shape[0]} uint8 | {1000 * np.diff(ticks).max():.0f} |")

    MODELS.put("hist-bench", nc.load_model("histogram", device="cpu", pretrained=False))
    hw = HistogramWidget(viewer)
    hw._model_override = "hist-bench"
    hw._target.value = t
    # previews driven by hand (setting .hist directly emits no stroke signal, so no debounced extras)
    print(f"\nhistogram live preview, {big.shape[1]} x {big.shape[0]} target: stroke -> preview layer updated "
          "(+ the 80 ms debounce after the last stroke)\n")
    print("| preview size (px) | median (ms) | max (ms) |")
    print("|---:|---:|---:|")
    for size in (96, 128):
        hw._preview_size.value = size
        lat = []
        for k in range(10):
            hw.canvas.hist = he.paint(he.preset("forest"), 4 + k, 10, 1, 0.2)
            t0 = time.perf_counter()
            hw.preview()
            wait_for(lambda: hw.shown_generation == hw.generation)
            lat.append(time.perf_counter() - t0)
        print(f"| {size} | {1000 * np.median(lat[2:]):.0f} | {1000 * max(lat[2:]):.0f} |")
    viewer.close()


if __name__ == "__main__":
    main()
