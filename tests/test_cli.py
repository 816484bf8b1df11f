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


def test_demo_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    """demo -o FILE (and --screenshot FILE): an existing file is refused before any work, as colorize
    refuses; --overwrite replaces it."""
    mine = tmp_path / "mine.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(mine)
    before = mine.read_bytes()
    assert main(["demo", "--no-viewer", "-o", str(mine), "-m", "reinhard"]) == 2
    err = capsys.readouterr().err
    assert f"{mine} exists: it is not replaced unless you use --overwrite" in err and "nothing was written" in err
    assert mine.read_bytes() == before
    shot = tmp_path / "new.png"
    assert main(["demo", "-o", str(shot), "--screenshot", str(mine), "-m", "reinhard"]) == 2
    assert "mine.png exists" in capsys.readouterr().err
    assert mine.read_bytes() == before and not shot.exists()
    assert main(["demo", "--no-viewer", "-o", str(mine), "-m", "reinhard", "--overwrite"]) == 0
    assert np.asarray(Image.open(mine)).shape == (500, 741, 3)


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


# ------------------------------------------------------------------ file safety and clear errors
def _run(*argv):
    return main(["colorize", *map(str, argv)])


def test_output_that_is_an_input_is_refused_before_any_work(files, capsys, monkeypatch):
    import os

    import napari_colorize

    d, t1, _, r = files
    monkeypatch.chdir(d)
    before = t1.read_bytes(), r.read_bytes()
    monkeypatch.setattr(napari_colorize, "load_model", lambda *a, **k: pytest.fail("work was started"))
    os.symlink(t1, d / "link.png")
    for out in ("./a.png", str(t1), "ref.png", "../" + d.name + "/a.png"):
        assert _run("a.png", "-r", "ref.png", "-m", "welsh", "-o", out) == 2
    assert _run("link.png", "-r", "ref.png", "-m", "welsh", "-o", "a.png", "--overwrite") == 2
    err = capsys.readouterr().err
    assert "is an input" in err and "nothing was written" in err and "Traceback" not in err
    assert (t1.read_bytes(), r.read_bytes()) == before


def test_an_input_named_like_another_output_is_never_overwritten(files, capsys):
    d, t1, _, r = files
    other = d / "a_colour.png"  # a.png's output name, given as an input too
    other.write_bytes(t1.read_bytes())
    before = other.read_bytes()
    assert _run(t1, other, "-r", r, "-m", "welsh", "-o", d, "--overwrite") == 2
    assert other.read_bytes() == before
    assert "a_colour.png is an input" in capsys.readouterr().err


def test_outputs_that_would_collide_get_distinct_names(tmp_path, small_pair, capsys):
    grey, ref, _ = small_pair
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(grey).save(tmp_path / "a" / "img.png")
    Image.fromarray(grey[::-1].copy()).save(tmp_path / "b" / "img.png")
    Image.fromarray(ref).save(tmp_path / "ref.png")
    out = tmp_path / "out"
    assert _run(tmp_path / "a" / "img.png", tmp_path / "b" / "img.png", "-r", tmp_path / "ref.png", "-m", "welsh",
                "-o", f"{out}/") == 0
    assert sorted(p.name for p in out.iterdir()) == ["img_colour-2.png", "img_colour.png"]
    a, b = (np.asarray(Image.open(out / n)) for n in ("img_colour.png", "img_colour-2.png"))
    assert not np.array_equal(a, b)  # the second did not replace the first
    io = capsys.readouterr()
    assert "img_colour-2.png" in io.err and "wrote 2 of 2" in io.out


def test_existing_outputs_are_kept_unless_overwrite(files, capsys):
    d, t1, t2, r = files
    out = d / "out.png"
    out.write_bytes(b"precious")
    assert _run(t1, "-r", r, "-m", "welsh", "-o", out) == 2
    assert out.read_bytes() == b"precious"
    assert "--overwrite" in capsys.readouterr().err
    assert _run(t1, "-r", r, "-m", "welsh", "-o", out, "--overwrite") == 0
    assert np.asarray(Image.open(out)).shape[-1] == 3


def test_output_paths_are_checked_before_any_work(files, capsys, monkeypatch):
    import napari_colorize

    d, t1, t2, r = files
    monkeypatch.setattr(napari_colorize, "load_model", lambda *a, **k: pytest.fail("work was started"))
    cases = [
        ((t1, "-o", d / "x.xyz"), "unknown output type"),
        ((t1, "-o", d / "missing" / "x.png"), "does not exist"),
        ((t1, "-o", t2 / "x.png"), "is a file, not a folder"),
        ((t1, t2, "-o", d / "x.png"), "must be a folder"),
        ((t1, t2, "-o", f"{t2}/"), "is a file, not a folder"),
        ((t1, "-o", d / "x.png", "--dtype", "uint16"), "8-bit"),
        ((t1, t2, "-o", d / "o", "--suffix", ".gif"), "unknown output type"),
    ]
    for argv, msg in cases:
        assert _run(*argv, "-r", r, "-m", "welsh") == 2
        err = capsys.readouterr().err
        assert msg in err and "nothing was written" in err, (argv, err)
    assert sorted(p.name for p in d.iterdir()) == ["a.png", "b.png", "ref.png"]


def test_one_bad_file_does_not_stop_the_others(files, capsys):
    d, t1, t2, r = files
    bad = d / "bad.png"
    bad.write_bytes(b"not a picture")
    out = d / "results"
    assert _run(t1, bad, d / "missing.png", t2, "-r", r, "-m", "welsh", "-o", out, "-q") == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_colour.png", "b_colour.png"]
    err = capsys.readouterr().err
    assert "error: " + str(bad) + ": not an image" in err
    assert "wrote 2 of 4 to" in err and "failed: bad.png (not an image" in err and "missing.png (no such file)" in err
    assert "Traceback" not in err


def test_a_target_failing_while_colourised_is_counted_once(files, capsys):
    """A target that passes the checks before the work (an all-NaN .npy) and fails while being
    colourised: the summary counts it once ("wrote 2 of 3", it said "of 4")."""
    d, t1, t2, r = files
    nan = d / "nan.npy"
    np.save(nan, np.full((16, 16), np.nan, np.float32))
    out = d / "results"
    assert _run(t1, nan, t2, "-r", r, "-m", "welsh", "-o", out, "-q") == 1
    err = capsys.readouterr().err
    assert "wrote 2 of 3 to" in err and "failed: nan.npy (" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["a_colour.png", "b_colour.png"]


def test_stacks_need_a_stack_format_and_are_written_slice_by_slice(files, capsys, monkeypatch):
    import tifffile

    import napari_colorize
    from napari_colorize import io

    d, t1, _, r = files
    grey = np.asarray(Image.open(t1))
    stack = d / "stack.npy"
    np.save(stack, (np.stack([grey, grey[::-1], grey]).astype(np.uint16) * 200))
    assert _run(stack, "-r", r, "-m", "welsh", "-o", d / "s.png") == 2
    assert "use -o with .tif" in capsys.readouterr().err
    monkeypatch.setattr(napari_colorize, "colorize", lambda *a, **k: pytest.fail("whole stack in memory"))
    writes = []
    orig = io.StackWriter.__setitem__
    monkeypatch.setattr(io.StackWriter, "__setitem__", lambda self, i, v: (writes.append(v.shape), orig(self, i, v)))
    assert _run(stack, t1, "-r", r, "-m", "welsh", "-o", d / "out") == 0  # folder: .tif for the stack
    assert writes[:3] == [grey.shape + (3,)] * 3
    got = tifffile.imread(d / "out" / "stack_colour.tif")
    assert got.shape == (3,) + grey.shape + (3,) and got.dtype == np.uint16
    assert (d / "out" / "a_colour.png").exists()
    for dtype in ("uint8", "float32"):
        assert _run(stack, "-r", r, "-m", "welsh", "-o", d / f"s_{dtype}.tif", "--dtype", dtype) == 0
        assert tifffile.imread(d / f"s_{dtype}.tif").dtype == dtype


def test_messages_use_cli_flags_not_python_keywords(files):
    from napari_colorize.cli import cli_words
    from napari_colorize.inputs import target_layout

    notes = target_layout((3, 40, 50))[2] + target_layout((40, 50, 3))[2] + target_layout((40, 50, 2))[2]
    for shape in [(2, 3, 20, 20), (2, 20, 20, 3)]:
        with pytest.raises(ValueError) as e:
            target_layout(shape)
        notes.append(str(e.value))
    notes += ["use a smaller working size (size=512 or less) or the axial model 'exemplar'",
              "'x' needs a guide: reference=RGB image or histogram=(21, 21) array"]
    import re

    for n in notes:
        w = cli_words(n)
        assert not re.search(r"\b(rgb|channel_axis|size|reference|histogram|normalize)=", w), w
        assert "pass " not in w
    assert "--channel-axis 0" in cli_words(notes[0]) and "--grey" in cli_words(notes[0])
    d, t1, _, r = files
    np.save(d / "four.npy", np.zeros((2, 3, 20, 20)))
    res = subprocess.run([sys.executable, "-m", "napari_colorize.cli", "colorize", str(d / "four.npy"), "-r", str(r),
                          "-m", "welsh", "-o", str(d / "four.tif")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "--grey" in res.stderr and "rgb=" not in res.stderr
    assert "--rgb" not in res.stderr  # (a last axis of 20 is not colour: --rgb would not be the way)
    assert "--rgb" in cli_words(notes[4]) and "--rgb" not in cli_words(notes[3])  # (a last axis of 3 may be colour)
    assert "Traceback" not in res.stderr


def test_channel_first_target_with_the_cli_flag(files, small_pair, capsys):
    d, _, _, r = files
    _, _, truth = small_pair
    np.save(d / "chw.npy", np.moveaxis(truth, -1, 0))
    assert _run(d / "chw.npy", "-r", r, "-m", "welsh", "-o", d / "o.png", "--channel-axis", "0") == 0
    assert np.asarray(Image.open(d / "o.png")).shape == truth.shape


def test_histogram_from_without_a_model_picks_the_histogram_model(files, capsys):
    d, t1, _, r = files
    assert _run(t1, "--histogram-from", r, "-o", d / "h.png") == 0
    assert "(histogram," in capsys.readouterr().out
    assert _run(t1, "--histogram-from", r, "-m", "welsh", "-o", d / "h2.png") == 2
    assert "exemplar model" in capsys.readouterr().err


def test_bench_runs_the_baselines(capsys):
    for name in ("welsh", "reinhard"):
        assert main(["bench", "-m", name, "--repeats", "1", "--sizes", "32"]) == 0
        assert name in capsys.readouterr().out


def test_bench_checks_the_attentions_memory_before_allocating(capsys, monkeypatch):
    """fuzz11 #16: ``bench -m exemplar-standard --sizes 4096`` allocated straight away (256 GB); it makes the
    check colorize makes (plan.check_memory), for every size before the first is timed."""
    import torch

    from napari_colorize import bench, plan

    monkeypatch.setattr(plan, "available_memory", lambda device: 2 * 2**30)
    monkeypatch.setattr(torch, "rand", lambda *a, **k: pytest.fail("a size was allocated"))
    with pytest.raises(MemoryError, match=r"'exemplar-standard' at working size 4096x4096 needs about \d+\.\d GB for "
                                          r"its standard \(whole-image\) attention, more than the 2\.0 GB free: use a "
                                          r"smaller working size \(sizes=\d+ or less\) or the axial model 'exemplar'"):
        bench.bench_forward("exemplar-standard", sizes=(64, 4096), repeats=1)
    assert main(["bench", "-m", "exemplar-standard", "--repeats", "1", "--sizes", "4096"]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "Traceback" not in err


def test_cli_imports_nothing_heavy_at_module_level():
    import ast
    from pathlib import Path

    import napari_colorize.cli as cli

    tree = ast.parse(Path(cli.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert not names & {"numpy", "torch", "tqdm", "PIL", "tifffile"} and not any(
        isinstance(n, ast.ImportFrom) and n.level for n in top), names


def test_suggest_ranks_a_folder(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    folder = tmp_path / "refs"
    folder.mkdir()
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        Image.fromarray(getattr(data, name)()[..., :3]).save(folder / f"{name}.png")
    (folder / "bad.png").write_bytes(b"not a png")
    grey = np.asarray(Image.fromarray(data.coffee()).convert("L"))
    Image.fromarray(grey).save(tmp_path / "target.png")
    rc = main(["suggest", str(tmp_path / "target.png"), str(folder), "--top", "2",
               "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert lines[0].split() == ["rank", "score", "reference"] and len(lines) == 3
    assert lines[1].endswith("coffee.png")
    assert rc == 1 and "bad.png" in out.err  # the bad file is named, the others are ranked


def test_confidence_files_beside_the_results(files, tmp_path):
    """--confidence writes each target's match confidence (PNG 8-bit, TIFF float32 in [0, 1]); several
    targets: a folder; never over an existing file; refused for a model that has none, before any work."""
    import tifffile

    import napari_colorize as nc

    d, t1, t2, r = files
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", d / "one.png", "--confidence", d / "one-conf.tif", "-q") == 0
    conf = tifffile.imread(d / "one-conf.tif")
    res = nc.colorize("warp-grey", np.asarray(Image.open(t1)), reference=np.asarray(Image.open(r)))
    assert conf.dtype == np.float32 and conf.shape == res.confidence.shape
    np.testing.assert_allclose(conf, res.confidence, atol=1e-5)
    assert _run(t1, t2, "-r", r, "-m", "warp-grey", "-o", d / "res", "--confidence", d / "confs", "-q") == 0
    assert sorted(p.name for p in (d / "confs").iterdir()) == ["a_confidence.png", "b_confidence.png"]
    assert np.asarray(Image.open(d / "confs" / "a_confidence.png")).ndim == 2
    before = (d / "one-conf.tif").read_bytes()
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", d / "two.png", "--confidence", d / "one-conf.tif") == 2
    assert (d / "one-conf.tif").read_bytes() == before and not (d / "two.png").exists()
    assert _run(t1, "-r", r, "-m", "reinhard", "-o", d / "three.png", "--confidence", d / "c3.png") == 2
    assert not (d / "three.png").exists() and not (d / "c3.png").exists()


def test_a_confidence_file_keeps_the_record_of_its_own_run(files, monkeypatch):
    """--confidence conf.npy (its record beside it): a user's file where the record would go refuses the run
    before any work, as for the colour output; when the colour output fails after the confidence is in
    place, the confidence's record is this run's, never the earlier run's left beside it."""
    from napari_colorize import io
    from napari_colorize.provenance import loads, sidecar_path

    d, t1, _, r = files
    mine = sidecar_path(d / "conf.npy")
    mine.write_text("my notes")
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", d / "out.png", "--confidence", d / "conf.npy", "-q") == 2
    assert mine.read_text() == "my notes" and not (d / "out.png").exists() and not (d / "conf.npy").exists()
    mine.unlink()
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", d / "out.png", "--confidence", d / "conf.npy", "-q") == 0
    first = loads(mine.read_text())
    close = io.StackWriter.close

    def fails_for_the_colour(self):
        if self.path.suffix == ".png":
            raise OSError("the disk went away")
        close(self)

    monkeypatch.setattr(io.StackWriter, "close", fails_for_the_colour)
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", d / "out.png", "--confidence", d / "conf.npy", "-q",
                "--overwrite", "--size", "48") == 2  # (nothing written: the one colour output failed)
    again = loads(mine.read_text())
    assert again["settings"] != first["settings"] and again["settings"]["size"] == 48


def test_confidence_files_never_collide(files, tmp_path, monkeypatch):
    """Two targets of the same name get two confidence files (as their colours do); the confidence named
    as the output under another spelling (absolute against relative) is refused, not written over."""
    d, t1, t2, r = files
    for sub in ("x", "y"):
        (d / sub).mkdir()
    (d / "x" / "img.png").write_bytes(t1.read_bytes())
    (d / "y" / "img.png").write_bytes(t2.read_bytes())
    assert _run(d / "x" / "img.png", d / "y" / "img.png", "-r", r, "-m", "warp-grey", "-o", d / "res",
                "--confidence", d / "conf", "-q") == 0
    assert sorted(p.name for p in (d / "conf").iterdir()) == ["img_confidence-2.png", "img_confidence.png"]
    a = np.asarray(Image.open(d / "conf" / "img_confidence.png"))
    b = np.asarray(Image.open(d / "conf" / "img_confidence-2.png"))
    assert not np.array_equal(a, b)  # each target's own (b's image is a's upside down)
    monkeypatch.chdir(d)
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", "out.png", "--confidence", d / "out.png") == 2
    assert not (d / "out.png").exists()
    # a lossy file would change the values: refused before any work
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", "out.png", "--confidence", "c.jpg") == 2
    assert not (d / "out.png").exists() and not (d / "c.jpg").exists()
    # a name that differs from the output's only in case is one file on a case-insensitive file system
    assert _run(t1, "-r", r, "-m", "warp-grey", "-o", "out.png", "--confidence", "OUT.png") == 2
    assert not (d / "out.png").exists() and not (d / "OUT.png").exists()


def test_hints_csv_with_a_byte_order_mark_or_a_bad_first_row(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark: its first point is read, not taken for a header;
    a first row with a number in it is a point (or a bad line, named), never a header skipped."""
    from napari_colorize import cli

    p = tmp_path / "pts.csv"
    p.write_bytes(b"\xef\xbb\xbf10,10,255,0,0\n50,100,0,230,0\n")
    assert cli.read_hints_csv(p) == [(10.0, 10.0, (255.0, 0.0, 0.0)), (50.0, 100.0, (0.0, 230.0, 0.0))]
    p.write_bytes(b"\xef\xbb\xbf10,10,255,0,0\n")
    assert cli.read_hints_csv(p) == [(10.0, 10.0, (255.0, 0.0, 0.0))]
    p.write_bytes(b"\xef\xbb\xbfy,x,r,g,b\n10,10,255,0,0\n")  # a header (with the mark) is still skipped
    assert cli.read_hints_csv(p) == [(10.0, 10.0, (255.0, 0.0, 0.0))]
    for bad in ("10,10,255,0\n50,100,0,230,0\n", "y,10,255,0,0\n50,100,0,230,0\n"):
        p.write_text(bad)
        with pytest.raises(cli._Refused, match="pts.csv, line 1: expected y,x,r,g,b"):
            cli.read_hints_csv(p)


def test_a_small_rgb_file_is_colour_by_its_own_word(tmp_path, small_pair, capsys):
    """An RGB file with a side of 4 px or less is one colour image (it was 3 slices of 50 x 3: output (3, 50, 3, 3));
    a TIFF of RGB pages is a stack of colour images (it was refused as an ambiguous 4-D target); grey TIFF pages
    of 20 x 3 are a stack. A bare array keeps the shape's rule: a .npy (3, 50, 3) is 3 slices."""
    import tifffile

    _, ref, _ = small_pair
    Image.fromarray(ref).save(tmp_path / "ref.png")
    r = tmp_path / "ref.png"
    strip = ref[10:13, :50].copy()
    Image.fromarray(strip).save(tmp_path / "strip.png")
    Image.fromarray(ref[:4, :4].copy()).save(tmp_path / "icon.png")
    tifffile.imwrite(tmp_path / "strip.tif", strip, photometric="rgb")
    for name, shape in (("strip.png", (3, 50, 3)), ("icon.png", (4, 4, 3)), ("strip.tif", (3, 50, 3))):
        assert _run(tmp_path / name, "-r", r, "-m", "welsh", "-o", tmp_path / f"o_{name}.png", "-q") == 0, name
        assert np.asarray(Image.open(tmp_path / f"o_{name}.png")).shape == shape, name
    stack = np.stack([ref[:20, :30], ref[20:40, :30], ref[:20, 30:60]])
    tifffile.imwrite(tmp_path / "rgbstack.tif", stack, photometric="rgb")
    assert _run(tmp_path / "rgbstack.tif", "-r", r, "-m", "welsh", "-o", tmp_path / "o_stack.tif", "-q") == 0
    assert tifffile.imread(tmp_path / "o_stack.tif").shape == (3, 20, 30, 3)
    tifffile.imwrite(tmp_path / "narrow.tif", ref[:8, :60, 0].reshape(8, 20, 3), photometric="minisblack")
    assert _run(tmp_path / "narrow.tif", "-r", r, "-m", "welsh", "-o", tmp_path / "o_narrow.tif", "-q") == 0
    assert tifffile.imread(tmp_path / "o_narrow.tif").shape == (8, 20, 3, 3)
    np.save(tmp_path / "strip.npy", strip)
    assert _run(tmp_path / "strip.npy", "-r", r, "-m", "welsh", "-o", tmp_path / "o_npy.png") == 2
    assert "is a stack of shape (3, 50, 3)" in capsys.readouterr().err
    # --grey still says the file's last axis is not colour
    assert _run(tmp_path / "strip.png", "-r", r, "-m", "welsh", "-o", tmp_path / "o_grey.tif", "--grey", "-q") == 0
    assert tifffile.imread(tmp_path / "o_grey.tif").shape == (3, 50, 3, 3)


def test_a_tiff_of_several_channels_is_a_stack_or_one_picked_with_channel(tmp_path, small_pair, capsys):
    """A 2-channel ImageJ TIFF (axes CYX, as Fiji writes; tifffile names a z-stack saved without axes so too) is
    colourised as a 2-slice stack, as napari shows it, with a warning saying how to pick one channel; --channel K
    colourises channel K alone, the same as that channel saved on its own."""
    import tifffile

    from napari_colorize import provenance
    from napari_colorize.io import read_embedded_text

    grey, ref, _ = small_pair
    Image.fromarray(ref).save(tmp_path / "ref.png")
    r = tmp_path / "ref.png"
    c = np.stack([grey.astype(np.uint16) * 200, (255 - grey.astype(np.uint16)) * 150])
    tifffile.imwrite(tmp_path / "cyx.tif", c, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "c1.tif", c[1])
    assert _run(tmp_path / "cyx.tif", "-r", r, "-m", "warp-grey", "-o", tmp_path / "both.tif", "-q") == 0
    err = capsys.readouterr().err
    assert "cyx.tif: it has 2 channels along C" in err and "colourised as slices of a stack" in err
    assert "pick it with --channel K (K from 0 to 1)" in err and "channel=" not in err
    assert tifffile.imread(tmp_path / "both.tif").shape == (2,) + grey.shape + (3,)
    assert _run(tmp_path / "cyx.tif", "-r", r, "-m", "warp-grey", "-o", tmp_path / "o.tif", "--channel", "1",
                "-q") == 0
    assert _run(tmp_path / "c1.tif", "-r", r, "-m", "warp-grey", "-o", tmp_path / "alone.tif", "-q") == 0
    out = tifffile.imread(tmp_path / "o.tif")
    assert out.shape == grey.shape + (3,) and np.array_equal(out, tifffile.imread(tmp_path / "alone.tif"))
    assert provenance.loads(read_embedded_text(tmp_path / "o.tif"))["settings"]["channel"] == "1"
    assert _run(tmp_path / "cyx.tif", "-r", r, "-m", "warp-grey", "-o", tmp_path / "o5.tif", "--channel", "5") == 2
    assert "--channel 5 does not exist: it has 2 channels" in capsys.readouterr().err
    assert _run(r, "-r", r, "-m", "warp-grey", "-o", tmp_path / "o6.png", "--channel", "0") == 2
    assert "--channel 0 was given, but it has no channel axis" in capsys.readouterr().err
    # a volume (OME-Zarr output) from that TIFF: the same channel
    assert _run(tmp_path / "cyx.tif", "-r", r, "-m", "warp-grey", "-o", tmp_path / "v.zarr", "--channel", "1",
                "-q") == 0
    import zarr

    v = np.moveaxis(zarr.open_group(str(tmp_path / "v.zarr"), mode="r")["0"][:], 0, -1)
    assert v.shape == grey.shape + (3,)
