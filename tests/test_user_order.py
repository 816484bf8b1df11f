"""The plugin in the user's order: napari (Qt, OpenGL) first, then our widgets and samples.

Every other test imports napari-colorize before Qt (conftest, pytest collection), which
hid a segfault: importing timm/torchvision after Qt's OpenGL made torch._dynamo load
triton, whose LLVM clashes with Mesa's. These tests start a fresh Python process that
opens a napari viewer first, exactly as a user does, and only then docks our widgets,
opens our samples and runs a colourisation (under the virtual X server the test command
provides). A crash shows as a negative return code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent(
    """
    import sys, time
    import napari
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer()
    assert "napari_colorize" not in sys.modules, "the user's order: napari first"
    errors = []
    notification_manager.notification_ready.connect(
        lambda n: errors.append(str(n.message)) if str(n.severity).lower().endswith("error") else None)

    def wait_idle(widget, timeout=240):
        t0 = time.time()
        while widget.worker is not None:
            QApplication.processEvents()
            time.sleep(0.02)
            assert time.time() - t0 < timeout, "the job did not end"
        QApplication.processEvents()

    def dock(name):
        _, w = viewer.window.add_plugin_dock_widget("napari-colorize", name)
        QApplication.processEvents()
        return w

    def open_dock_run(sample, widget):
        # File > Open Sample, Plugins > widget, Run with its defaults: the layers it added
        viewer.open_sample("napari-colorize", sample)
        names = [l.name for l in viewer.layers]
        w = dock(widget)
        w.run()
        wait_idle(w)
        return [l for l in viewer.layers if l.name not in names]
    """
)

EPILOGUE = textwrap.dedent(
    """
    assert not errors, errors
    for mod in ("triton", "torch._dynamo", "timm", "torchvision"):
        assert mod not in sys.modules, f"{mod} was imported: it must not be (it crashes napari with Mesa)"
    viewer.screenshot(sys.argv[1], canvas_only=False)
    viewer.close()
    print("USER-ORDER-OK")
    """
)

SCENARIOS = {
    # every sample through napari's own menu action
    "samples": """
        before = len(viewer.layers)
        for key in ("motorcycle_pair", "microscopy_pair", "zstack"):
            viewer.open_sample("napari-colorize", key)
            QApplication.processEvents()
        assert len(viewer.layers) > before + 3, [l.name for l in viewer.layers]
    """,
    # the normal path: open a sample, dock the widget, press Run with its defaults
    "exemplar": """
        new = open_dock_run("motorcycle_pair", "Exemplar colourisation")
        assert new and new[0].rgb and new[0].data.shape[:2] == viewer.layers[0].data.shape[:2], new
    """,
    "histogram": """
        assert open_dock_run("motorcycle_pair", "Histogram colourisation"), "no result layer"
    """,
    "compare": """
        assert len(open_dock_run("motorcycle_pair", "Compare models")) >= 2, "no results"
    """,
    "suggest a reference": """
        viewer.open_sample("napari-colorize", "motorcycle_pair")
        w = dock("Exemplar colourisation")
        w.suggest.suggest()
        wait_idle(w.suggest)
        assert w.suggest.buttons, "no suggestions"
        w.suggest.buttons[0].click()
        assert w._reference.value.rgb
    """,
    "microscopy stack": """
        new = open_dock_run("zstack", "Exemplar colourisation")
        assert new and new[0].data.ndim == 4, new
    """,
}


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display: the test command runs under xvfb-run")
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_napari_first_then_our_plugin(scenario, tmp_path):
    script = PRELUDE + textwrap.dedent(SCENARIOS[scenario]) + EPILOGUE
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # a real (virtual) X display
    shot = tmp_path / "viewer.png"
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-c", script, str(shot)], env=env,
                          capture_output=True, text=True, timeout=600)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, f"return code {proc.returncode} (negative: killed by a signal)\n{tail}"
    assert "USER-ORDER-OK" in proc.stdout, tail
    assert "ERROR:" not in proc.stdout, tail  # napari's notifications of our show_error
    assert shot.stat().st_size > 10_000


def test_no_compiler_stack_is_loaded_by_the_library():
    """The root cause, checked without a display: using every model never loads torch's
    compiler stack (torch._dynamo, triton) nor the packages that pull it in."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import napari_colorize as nc
        from napari_colorize._sample_data import sample_pair
        from napari_colorize.models.registry import model_info
        grey, ref, _ = sample_pair()
        for name in nc.list_models():
            hints = model_info(name).kind == "hints"  # (colour points alone: no reference)
            nc.colorize(nc.load_model(name, device="cpu"), grey[::8, ::8], reference=None if hints else ref[::8, ::8],
                        hints=[(5, 5, (1.0, 0.5, 0.0))] if hints else None)
        nc.load_model("exemplar-paper", device="cpu", pretrained=False)
        bad = [m for m in ("triton", "torch._dynamo", "timm", "torchvision") if m in sys.modules]
        print("LOADED", bad)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout[-2000:]
