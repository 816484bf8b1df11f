"""The viewer never freezes: the longest event-loop stall while a model runs on the CPU."""
import time

import numpy as np


def measure_stall(wait_idle, widget) -> float:
    """Longest gap between 10 ms QTimer ticks from Run to the end of the work (seconds)."""
    from qtpy.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    ticks.append(time.perf_counter())
    widget.run()
    wait_idle(widget, 120000)
    ticks.append(time.perf_counter())
    timer.stop()
    return float(np.diff(ticks).max())


def test_event_loop_keeps_ticking_during_a_network_run(make_napari_viewer, pair, exemplar_random, monkeypatch, wait_idle):
    from napari_colorize._widgets import ExemplarWidget

    grey, ref, _ = pair
    viewer = make_napari_viewer()
    t = viewer.add_image(np.tile(grey, (2, 2)), name="grey")  # 1000 x 1482: network + full-size work
    r = viewer.add_image(ref, name="ref", rgb=True)
    from napari_colorize._widgets import _workers

    monkeypatch.setattr(_workers, "MODELS", _workers.ModelCache())
    _workers.MODELS.put("exemplar-random", exemplar_random)
    w = ExemplarWidget(viewer)
    w._model_override = "exemplar-random"
    w._target.value, w._reference.value = t, r
    stall = measure_stall(wait_idle, w)
    print(f"longest event-loop stall: {stall * 1000:.0f} ms")
    assert stall < 0.5  # target 200 ms (benchmarks/bench_widgets.py reports it); 0.5 s is a freeze
