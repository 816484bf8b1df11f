import subprocess
import sys


def test_npe2_validates_the_manifest():
    r = subprocess.run(["npe2", "validate", "napari-colorize"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in r.stdout


def test_npe2_finds_the_installed_plugin():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    assert "napari-colorize" in pm._manifests
    mf = pm.get_manifest("napari-colorize")
    assert {s.key for s in mf.contributions.sample_data} == {"motorcycle_pair", "microscopy_pair", "zstack"}
    assert {w.display_name for w in mf.contributions.widgets} == {"Exemplar colourisation",
                                                                  "Histogram colourisation", "Compare models"}


def test_microscopy_samples():
    import numpy as np

    from napari_colorize._sample_data import microscopy_pair_layers, zstack_layers

    (g, _, _), (r, rmeta, _) = microscopy_pair_layers()
    assert g.dtype == np.uint16 and g.ndim == 2 and r.shape[-1] == 3 and rmeta["rgb"]
    (z, _, _), _ = zstack_layers()
    assert z.dtype == np.uint16 and z.ndim == 3 and z.shape[0] > 1
    assert not np.array_equal(z[0], z[z.shape[0] // 2])


def test_sample_data_layers():
    from napari_colorize._sample_data import sample_pair_layers

    (grey, gmeta, gkind), (ref, rmeta, rkind), _ = sample_pair_layers()
    assert grey.ndim == 2 and ref.shape[-1] == 3 and rmeta["rgb"] and gkind == rkind == "image"


def test_the_library_never_imports_qt():
    code = ("import sys, numpy as np, napari_colorize as nc;"
            "g, r, _ = __import__('napari_colorize._sample_data', fromlist=['x']).sample_pair();"
            "nc.colorize('welsh', g[::8, ::8], reference=r[::8, ::8]);"
            "import napari_colorize.cli, napari_colorize.metrics;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'qtpy')];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_widgets_are_in_napari_menus(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()  # registers the plugins' contributions with napari's app model
    menus = get_app_model().menus

    def commands(menu_id):
        return {getattr(item, "command", None) and item.command.id for item in menus.get_menu(menu_id)}

    assert {"napari-colorize.exemplar_widget", "napari-colorize.histogram_widget"} <= commands("napari/layers/visualize")
    assert "napari-colorize.compare_widget" in commands("napari/layers/measure")
