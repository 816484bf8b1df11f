import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from napari_colorize.cli import main


@pytest.fixture
def files(tmp_path, small_pair):
    grey, ref, _ = small_pair
    t1, t2, r = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "ref.png"
    Image.fromarray(grey).save(t1)
    Image.fromarray(grey[::-1].copy()).save(t2)
    Image.fromarray(ref).save(r)
    return tmp_path, t1, t2, r


def test_models_lists_everything(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("welsh", "reinhard", "exemplar", "histogram", "exemplar-paper"):
        assert name in out


def test_colorize_one_file(files, capsys):
    d, t1, _, r = files
    out = d / "out.png"
    assert main(["colorize", str(t1), "--reference", str(r), "--model", "welsh", "-o", str(out)]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == np.asarray(Image.open(t1)).shape + (3,)
    assert "wrote" in capsys.readouterr().out


def test_colorize_many_files_to_a_directory(files):
    d, t1, t2, r = files
    out = d / "results"
    assert main(["colorize", str(t1), str(t2), "-r", str(r), "-m", "reinhard", "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_colour.png", "b_colour.png"]


def test_colorize_with_a_histogram_file_and_a_checkpoint(files, histogram_random):
    import napari_colorize as nc

    d, t1, _, r = files
    ck = nc.save_checkpoint(histogram_random.network, d / "hist", {"name": "hist"})
    h = nc.histogram_from_rgb(np.asarray(Image.open(r)))
    np.save(d / "h.npy", h)
    assert main(["colorize", str(t1), "--histogram", str(d / "h.npy"), "-m", str(ck), "-o", str(d / "o.tif"),
                 "--size", "64"]) == 0
    import tifffile

    assert tifffile.imread(d / "o.tif").shape[-1] == 3
    assert main(["colorize", str(t1), "--histogram-from", str(r), "-m", str(ck), "-o", str(d / "o2.png")]) == 0


def test_errors_are_plain_words(files, capsys):
    d, t1, _, r = files
    assert main(["colorize", str(t1), "-r", str(r), "-m", "nope", "-o", str(d / "x.png")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["colorize", str(d / "missing.png"), "-r", str(r), "-m", "welsh", "-o", str(d / "x.png")]) == 2
    assert main(["colorize", str(t1), "-r", str(t1), "-m", "welsh", "-o", str(d / "x.png")]) == 2
    assert "no colour" in capsys.readouterr().err


def test_demo_writes_the_result(tmp_path):
    out = tmp_path / "demo.png"
    r = subprocess.run([sys.executable, "-m", "napari_colorize.cli", "demo", "--no-viewer", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "HIS vs reference" in r.stdout
    assert np.asarray(Image.open(out)).shape == (500, 741, 3)


def test_demo_renders_the_viewer(tmp_path):
    """The main job in napari, rendered (the tests run under a virtual X server)."""
    out, shot = tmp_path / "demo.png", tmp_path / "viewer.png"
    r = subprocess.run([sys.executable, "-m", "napari_colorize.cli", "demo", "-o", str(out), "--screenshot",
                        str(shot)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.asarray(Image.open(out)).shape == (500, 741, 3)
    viewer = np.asarray(Image.open(shot))
    assert viewer.shape[0] > 400 and viewer.shape[1] > 800
    assert viewer[..., :3].std() > 20  # a real picture, not a blank window


def test_bench_prints_a_table(capsys):
    assert main(["bench", "--repeats", "2", "--sizes", "64"]) == 0
    assert "median ms" in capsys.readouterr().out
