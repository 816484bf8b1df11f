"""Tracebacks where a message belongs: each user error below ends with exit status 2 and one
"error: ..." line saying what happened and what to do."""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_colorize.cli import main
from napari_colorize.io import MAX_PIXELS, ImageReadError, probe_image, read_image


@pytest.fixture
def files(tmp_path, rng):
    np.save(tmp_path / "in.npy", (rng.random((2, 24, 24)) * 255).astype(np.uint8))
    Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "ref.png")
    return tmp_path


def _colorize(files, *extra):
    return main(["colorize", str(files / "in.npy"), "-r", str(files / "ref.png"), "-m", "reinhard", "-q", *extra])


def _one_error(capsys, *words):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], err
    return lines[0]


@pytest.mark.parametrize("dangling", [True, False])
def test_a_symlinked_or_dangling_output_store(files, capsys, dangling):
    target = files / "real.zarr"
    if not dangling:
        main(["colorize", str(files / "in.npy"), "-r", str(files / "ref.png"), "-m", "reinhard", "-q",
              "-o", str(target)])
        capsys.readouterr()
    (files / "link.zarr").symlink_to(target)
    assert _colorize(files, "-o", str(files / "link.zarr"), "--overwrite") == 2
    _one_error(capsys, "is a symbolic link", "real.zarr", "which does not exist" if dangling else "real path")
    assert (files / "link.zarr").is_symlink() and target.exists() != dangling


def test_a_dangling_symlink_as_output_file_is_kept_without_overwrite(files, capsys):
    """A dangling link is something of the user's at that name (`Path.exists()` says False for it): it is
    refused like an existing file, and the link stays; the same for --confidence."""
    (files / "out.tif").symlink_to(files / "missing.tif")
    assert _colorize(files, "-o", str(files / "out.tif")) == 2
    _one_error(capsys, "out.tif exists", "--overwrite")
    assert (files / "out.tif").is_symlink()
    (files / "conf.tif").symlink_to(files / "missing-too.tif")
    assert _colorize(files, "-o", str(files / "o.tif"), "--confidence", str(files / "conf.tif")) == 2
    _one_error(capsys, "conf.tif exists")
    assert (files / "conf.tif").is_symlink() and not (files / "o.tif").exists()


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you "
                                                               "tried to allocate 3600000000 bytes"),
                                 RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_out_of_memory_is_said_never_an_empty_error(files, capsys, monkeypatch, exc):
    """A bare MemoryError has no text ('error: ' and nothing else); torch's allocator failing is a RuntimeError
    (it was an 'internal error ... please report it'): both say out of memory and what to try."""
    import napari_colorize

    def fails(*a, **k):
        raise exc

    monkeypatch.setattr(napari_colorize, "iter_colorize", fails)
    assert _colorize(files, "-o", str(files / "o.tif")) == 2  # (nothing written)
    err = capsys.readouterr().err
    assert "out of memory" in err and "smaller --size" in err and "internal error" not in err
    assert not (files / "o.tif").exists()


def test_what_reading_a_file_says_is_one_warning_line(files, capsys):
    """A TIFF of two series of different shapes: the reader's warning (only the first is read) is one
    'warning: FILE: ...' line, not a Python UserWarning printed twice with its source line."""
    import tifffile

    with tifffile.TiffWriter(files / "two.tif") as tw:
        tw.write(np.zeros((2, 24, 24), np.uint8))
        tw.write(np.zeros((3, 16, 24), np.uint8))
    assert main(["colorize", str(files / "two.tif"), "-r", str(files / "ref.png"), "-m", "reinhard", "-q", "-o",
                 str(files / "two_out.tif")]) == 0
    err = capsys.readouterr().err
    assert err.count("only the first series") == 1 and "warning: " in err and "UserWarning" not in err


def test_capped_threads_are_a_warning_line(files, capsys):
    assert _colorize(files, "-o", str(files / "o.tif"), "--threads", "99999") == 0
    err = capsys.readouterr().err
    assert "warning: 99999 threads asked for, capped at" in err and "UserWarning" not in err


def test_arguments_checked_before_any_work(files, capsys):
    """--size 0 and --hint-spread nan are refused when the command line is read (they were refused per target,
    after the model had loaded); -o .png (only a suffix) is not a hidden folder; demo's output type is checked
    before the colourisation; a keyframe counted from the end (--keyframe -1:IMAGE) is read as one."""
    for extra in (["--size", "0"], ["--size", "x"], ["--hint-spread", "nan"], ["--hint-spread", "-2"]):
        with pytest.raises(SystemExit) as e:
            _colorize(files, "-o", str(files / "o.tif"), *extra)
        assert e.value.code == 2 and extra[0] in capsys.readouterr().err
    assert _colorize(files, "-o", str(files / ".png")) == 2
    _one_error(capsys, "only a suffix", "colour.png")
    assert not (files / ".png").exists()
    assert main(["demo", "--no-viewer", "-o", str(files / "x.xyz")]) == 2
    _one_error(capsys, "unknown output type")
    assert main(["colorize", str(files / "in.npy"), "--keyframe", "-1:" + str(files / "ref.png"), "-m", "reinhard",
                 "-q", "-o", str(files / "k.tif")]) == 0
    assert (files / "k.tif").exists()
    np.save(files / "wide.npy", np.zeros((2, 70000), np.uint8))  # JPEG's 65500 pixels: refused before the work
    assert main(["colorize", str(files / "wide.npy"), "-r", str(files / "ref.png"), "-m", "reinhard", "-q", "-o",
                 str(files / "wide.jpg")]) == 2
    _one_error(capsys, "70000 pixels", "at most 65500")


@pytest.mark.parametrize("n, words", [("1000", ("--pyramid 1000", "at most 5 lower levels", "--pyramid 5")),
                                      ("-1", ("--pyramid must be 0 or more",))])
def test_absurd_pyramid_levels(files, capsys, n, words):
    assert _colorize(files, "-o", str(files / "o.zarr"), "--pyramid", n) == 2
    _one_error(capsys, *words)
    assert not (files / "o.zarr").exists()


def test_a_scheduler_nobody_listens_on(files, capsys, monkeypatch):
    from napari_colorize import volume

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    monkeypatch.setattr(volume, "CONNECT_TIMEOUT", 1)
    assert _colorize(files, "-o", str(files / "o.zarr"), "--scheduler", f"tcp://127.0.0.1:{port}") == 2
    _one_error(capsys, f"no dask scheduler answers at tcp://127.0.0.1:{port}", "waited 1 s")
    assert not (files / "o.zarr").exists()


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims width x height pixels (its IHDR rewritten, checksum fixed)."""
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    b = bytearray(path.read_bytes())
    ihdr = b[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    b[12:29] = ihdr
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(b))
    return path


@pytest.mark.parametrize("w, h", [(40000, 40000), (15000, 12000)])  # beyond Pillow's own error; between
def test_an_image_header_claiming_gigapixels_is_refused_before_decoding(tmp_path, capsys, w, h):
    f = _png_claiming(tmp_path / "bomb.png", w, h)
    assert w * h > MAX_PIXELS
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match="megapixels, more than the 179 megapixels"):
            read(f)
    Image.fromarray(np.array([[[200, 40, 30], [20, 90, 200]]] * 8, np.uint8).repeat(4, 1)).save(tmp_path / "ref.png")
    code = main(["colorize", str(f), "-r", str(tmp_path / "ref.png"), "-m", "reinhard", "-o",
                 str(tmp_path / "o.png")])
    assert code == 2
    _one_error(capsys, "bomb.png", "megapixels")


def test_a_tiff_header_claiming_gigapixels_is_refused(tmp_path):
    import tifffile

    m = tifffile.memmap(tmp_path / "big.tif", shape=(20000, 20000), dtype=np.uint8)  # (a sparse file)
    del m
    with pytest.raises(ImageReadError, match="20000 x 20000 pixels"):
        read_image(tmp_path / "big.tif")


def test_a_folder_that_cannot_be_read(tmp_path, capsys, monkeypatch):
    # (the tests may run as root, who reads every folder: the refusal is simulated)
    folder = tmp_path / "private"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "t.png")
    real = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert main(["suggest", str(tmp_path / "t.png"), str(folder), "--no-cache"]) == 2
    _one_error(capsys, f"{folder}: permission denied")
    # a target in a folder that cannot be entered: said so, not "no such file"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == folder else real_access(p, m))
    with pytest.raises(ImageReadError, match="permission denied on the folder"):
        read_image(folder / "x.png")


TUNE_ERRORS = [
    (["missing.safetensors", "--out", "{tmp}/o.safetensors"], "no such checkpoint file"),
    (["{w}", "--refine", "4", "--out", "{tmp}/o.safetensors"], "--refine 4: must be an odd window"),
    (["{w}", "--refine", "x", "--out", "{tmp}/o.safetensors"], "invalid int value"),
    (["{w}", "--temperature-scale", "0", "--out", "{tmp}/o.safetensors"], "--temperature-scale 0.0"),
    (["{w}", "--refine-eps", "nan", "--out", "{tmp}/o.safetensors"], "--refine-eps nan"),
    (["{w}", "--threads", "0", "--out", "{tmp}/o.safetensors"], "--threads 0"),
    (["{w}", "--limit", "0", "--grid"], "--limit 0"),
    (["{w}", "--grid", "--data", "{tmp}/none.csv"], "no such file"),
    (["{tmp}", "--out", "{tmp}/o.safetensors"], "is a folder"),
    (["{tmp}/text.safetensors", "--out", "{tmp}/o.safetensors"], "not a complete safetensors file"),
    (["{h}", "--out", "{tmp}/o.safetensors"], "is not an exemplar network"),
    (["{w}"], "--out is required"),
]


@pytest.mark.parametrize("argv, words", TUNE_ERRORS)
def test_tune_output_user_errors_are_argparse_errors(tmp_path, capsys, argv, words):
    from napari_colorize.models.registry import weights_dir
    from training import tune_output

    (tmp_path / "text.safetensors").write_text("not weights")
    subs = {"{tmp}": str(tmp_path), "{w}": str(weights_dir() / "exemplar.safetensors"),
            "{h}": str(weights_dir() / "histogram.safetensors")}
    argv = [a.replace(k, v) if k in a else a for a in argv for k, v in [next(((k, v) for k, v in subs.items()
                                                                               if k in a), ("", ""))]]
    with pytest.raises(SystemExit) as e:
        tune_output.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: " in err and words in err, err
    assert not (tmp_path / "o.safetensors").exists()
