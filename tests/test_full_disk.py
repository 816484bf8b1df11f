"""A full disk: a clear error ("not enough space on DEVICE for OUT: need ~X MB, Y MB free"), nothing
half-written left behind, a resumable store stays resumable. The disk is simulated (shutil.disk_usage,
os.posix_fallocate, a write that fails with ENOSPC); docs/INPUTS.md records the same on a real 2 MB tmpfs."""

from __future__ import annotations

import collections
import errno
import os

import numpy as np
import pytest
import torch

from napari_colorize import io as nio
from napari_colorize.cli import main
from napari_colorize.io import DiskFullError, StackWriter, write_image

Usage = collections.namedtuple("Usage", "total used free")


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def small_disk(monkeypatch):
    """A disk with 1 MB free."""
    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage(10**9, 10**9 - 10**6, 10**6))


@pytest.mark.parametrize("name", ["x.tif", "x.npy"])
def test_a_stack_larger_than_the_free_space_is_refused_before_writing(tmp_path, small_disk, name, rng):
    with pytest.raises(DiskFullError, match=r"not enough space on /\S* for .*x\.(tif|npy): need ~[0-9.]+ MB, "
                                            r"1\.0 MB free"):
        StackWriter(tmp_path / name, (10, 100, 200, 3), "float32")
    assert list(tmp_path.iterdir()) == []  # no .part file


@pytest.mark.parametrize("name", ["x.tif", "x.npy"])
def test_a_disk_that_fills_up_fails_at_creation_not_with_sigbus(tmp_path, monkeypatch, name):
    monkeypatch.setattr(os, "posix_fallocate", _enospc)
    (tmp_path / name).write_bytes(b"old")
    with pytest.raises(DiskFullError, match="not enough space"):
        StackWriter(tmp_path / name, (4, 50, 60, 3), "uint16")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # the old file untouched, no .part
    assert (tmp_path / name).read_bytes() == b"old"


def test_a_write_that_finds_the_disk_full_removes_the_partial_file(tmp_path, monkeypatch, rng):
    class FullFile:
        def __init__(self, *a):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def seek(self, n):
            pass

        def write(self, b):
            _enospc()

    w = StackWriter(tmp_path / "x.tif", (3, 20, 30, 3))
    w[0] = rng.random((20, 30, 3))
    monkeypatch.setattr(nio, "open", FullFile, raising=False)  # the next slice's write: ENOSPC
    with pytest.raises(DiskFullError, match="not enough space"):
        w[1] = rng.random((20, 30, 3))
    assert list(tmp_path.iterdir()) == []


def test_a_png_on_a_full_disk(tmp_path, monkeypatch, rng):
    from PIL import Image

    def save(self, fp, *a, **k):
        open(fp, "wb").write(b"\x89PNG partial")
        _enospc()

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(DiskFullError, match="not enough space"):
        write_image(tmp_path / "x.png", rng.random((20, 30, 3)))
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_a_full_disk_in_one_line_and_leaves_nothing(tmp_path, small_disk, capsys, rng):
    np.save(tmp_path / "stack.npy", rng.random((8, 120, 160)).astype(np.float32))
    ref = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(ref).save(tmp_path / "ref.png")
    code = main(["colorize", str(tmp_path / "stack.npy"), "-r", str(tmp_path / "ref.png"), "-m", "reinhard",
                 "-o", str(tmp_path / "out.tif"), "--dtype", "float32", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not enough space on" in err and "MB free" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.png", "stack.npy"]


def test_a_full_disk_while_writing_a_volume_keeps_it_resumable(tmp_path, monkeypatch, rng):
    import zarr

    from napari_colorize import volume
    from napari_colorize.volume import colorize_volume

    vol = (rng.random((4, 32, 32)) * 60000).astype(np.uint16)
    ref = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    out = tmp_path / "o.zarr"
    real = volume._colorize_block
    written = []

    def fills_up(part, ctx, block, own, offset):  # the disk is full after two chunks
        if len(written) == 2:
            _enospc()
        written.append(block)
        return real(part, ctx, block, own, offset)

    monkeypatch.setattr(volume, "_colorize_block", fills_up)
    kw = dict(reference=ref, temporal=0, scheduler="synchronous")
    with pytest.raises(DiskFullError, match=r"not enough space on .*o\.zarr.*2 of 4 chunks are missing.*stays "
                                            "resumable"):
        colorize_volume(vol, out, "reinhard", **kw)
    monkeypatch.setattr(volume, "_colorize_block", real)
    seen = []
    colorize_volume(vol, out, "reinhard", progress=lambda d, t: seen.append(t), **kw)
    assert seen == [2, 2]  # only the two missing chunks
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]


def test_a_full_disk_while_creating_a_store_leaves_none(tmp_path, monkeypatch, rng):
    import ome_zarr.writer

    from napari_colorize.volume import colorize_volume


    monkeypatch.setattr(ome_zarr.writer, "write_multiscales_metadata", _enospc)
    with pytest.raises(DiskFullError, match="not enough space"):
        colorize_volume(rng.random((2, 16, 16)), tmp_path / "o.zarr", "reinhard",
                        reference=(rng.random((16, 16, 3)) * 255).astype(np.uint8), scheduler="synchronous")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_on_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch, histogram_random):
    import safetensors.torch

    from napari_colorize.models.registry import save_checkpoint

    def save_file(sd, name, metadata=None):
        open(name, "wb").write(b"partial")
        _enospc()

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    with pytest.raises(DiskFullError, match=r"not enough space .*h\.safetensors: need ~[0-9.]+ MB"):
        save_checkpoint(histogram_random.network, tmp_path / "h.safetensors", {"name": "h"})
    assert list(tmp_path.iterdir()) == []


def test_training_on_a_full_disk_ends_with_a_message(tmp_path, monkeypatch):
    from training.engine import atomic_save, disk_full_exits

    (tmp_path / "last.pt").write_bytes(b"previous")

    def save(obj, f):
        open(f, "wb").write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0: "
                           "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(SystemExit, match=r"error: not enough space on .*last\.pt keeps the last checkpoint"):
        with disk_full_exits(tmp_path):
            atomic_save({"step": 1}, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert (tmp_path / "last.pt").read_bytes() == b"previous"


def test_the_suggestion_cache_leaves_no_temporary_files(tmp_path, monkeypatch):
    from napari_colorize.suggest import FeatureCache

    img = tmp_path / "c.png"
    img.write_bytes(b"x")
    cache = FeatureCache(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    stale = tmp_path / "cache" / f"{'ab' * 20}.npz.999999999.tmp.npz"  # a run that died writing (no such pid)
    stale.write_bytes(b"partial")
    theirs = [tmp_path / "cache" / n for n in ("abc.npz.999999999.tmp.npz", "notes.999999999.tmp.npz")]
    for t in theirs:  # a user's files in a folder given as --cache-dir: not ours, never removed
        t.write_bytes(b"mine")

    def savez(f, **k):
        open(f, "wb").write(b"partial")
        _enospc()

    monkeypatch.setattr(np, "savez", savez)
    cache.put(img, np.zeros(3), np.zeros((2, 2, 2)))  # no error: ranked without caching
    assert sorted((tmp_path / "cache").iterdir()) == sorted(theirs)
