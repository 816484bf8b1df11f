"""Silent surprises, now said or avoided: EXIF orientation, animated GIFs, masked arrays,
lazy_colorize's per-slice colour, a plain (H, W, 3) zarr in the volume path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

import napari_colorize as nc
from napari_colorize.inference import ColorizeWarning
from napari_colorize.io import frames_as_stack, probe_image, read_image


@pytest.fixture
def ref(rng):
    return np.array([[[200, 40, 30], [20, 90, 200]]] * 16, np.uint8).repeat(8, 1)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    a = np.zeros((20, 40), np.uint8)
    a[:5, :5] = 255  # a mark in the top-left corner, as stored
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    f = tmp_path / f"photo{suffix}"
    im.save(f, exif=exif.tobytes(), **({"quality": 100} if suffix == ".jpg" else {}))
    got = read_image(f)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(f)))
    assert got.shape == (40, 20) == shown.shape and probe_image(f)[0] == (40, 20)
    np.testing.assert_array_equal(got, shown)
    assert got[:5, -5:].mean() > 200  # the mark is top-right, as a viewer shows the photo


def test_an_animated_grey_gif_is_a_grey_stack_with_a_note(tmp_path):
    frames = [Image.fromarray(np.full((20, 30), v, np.uint8)) for v in (10, 100, 200)]
    f = tmp_path / "anim.gif"
    frames[0].save(f, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.warns(UserWarning, match=r"3 frames are read as a grey stack \(T, H, W\)"):
        a = read_image(f)
    assert a.shape == (3, 20, 30) and list(a[:, 0, 0]) == [10, 100, 200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert probe_image(f)[0] == (3, 20, 30)


def test_frames_of_other_modes_are_kept_and_other_sizes_said():
    grey = np.full((4, 6), 50, np.uint8)
    rgba = np.dstack([np.full((4, 6), c, np.uint8) for c in (200, 10, 10, 255)])
    s = frames_as_stack("f.gif", [grey, rgba, rgba])  # (P then RGBA frames: the first used to be all)
    assert s.shape == (3, 4, 6, 4) and s[0, 0, 0].tolist() == [50, 50, 50, 255]
    with pytest.warns(UserWarning, match="different sizes .* only the first frame"):
        assert frames_as_stack("f.gif", [grey, np.zeros((5, 6), np.uint8)]).shape == (4, 6)


def test_a_masked_arrays_mask_is_not_dropped(rng, ref):
    x = rng.random((32, 32)).astype(np.float32)
    mask = np.zeros_like(x, bool)
    mask[:8] = True
    x[:8] = 50.0  # masked garbage: it would stretch the intensities if it were used
    with pytest.warns(ColorizeWarning, match="masked array: its 256 masked pixel"):
        got = nc.colorize("reinhard", np.ma.masked_array(x, mask), reference=ref).rgb
    want_in = x.copy()
    want_in[:8] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = nc.colorize("reinhard", want_in, reference=ref).rgb
    np.testing.assert_array_equal(got, want)
    u = (rng.random((32, 32)) * 200 + 20).astype(np.uint8)
    with pytest.warns(ColorizeWarning, match="filled with the lowest value"):
        got = nc.colorize("reinhard", np.ma.masked_array(u, mask), reference=ref).rgb
    filled = u.copy()
    filled[:8] = u[8:].min()
    np.testing.assert_array_equal(got, nc.colorize("reinhard", filled, reference=ref).rgb)


def test_lazy_colorize_says_it_does_not_smooth_a_stack(rng, ref):
    assert "temporal" in nc.lazy_colorize.__doc__
    stack = rng.random((3, 16, 16)).astype(np.float32)
    with pytest.warns(ColorizeWarning, match="each of the 3 slices on its own"):
        lazy = nc.lazy_colorize("reinhard", stack, reference=ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ColorizeWarning)  # one 2-D image: nothing to say
        nc.lazy_colorize("reinhard", stack[0], reference=ref)
    np.testing.assert_allclose(np.asarray(lazy), nc.colorize("reinhard", stack, reference=ref, temporal=0).rgb,
                               atol=1e-6)


def test_a_plain_rgb_shaped_zarr_is_not_silently_a_stack(tmp_path, rng, ref, capsys):
    import zarr

    from napari_colorize.cli import main
    from napari_colorize.volume import colorize_volume

    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=(24, 24, 3), chunks=(24, 24, 3), dtype="uint8")
    z[:] = (rng.random((24, 24, 3)) * 255).astype(np.uint8)
    with pytest.raises(ValueError, match=r"reads its last axis as colour .*pass rgb=False"):
        colorize_volume(tmp_path / "in.zarr", tmp_path / "o.zarr", "reinhard", reference=ref)
    assert main(["colorize", str(tmp_path / "in.zarr"), "-r", str(_png(tmp_path, ref)), "-m", "reinhard",
                 "-o", str(tmp_path / "o.zarr")]) == 2
    err = capsys.readouterr().err
    assert "use --grey" in err or "pass --grey" in err, err
    assert not (tmp_path / "o.zarr").exists()
    assert main(["colorize", str(tmp_path / "in.zarr"), "-r", str(_png(tmp_path, ref)), "-m", "reinhard",
                 "-o", str(tmp_path / "o.zarr"), "--grey", "-q", "--temporal", "0"]) == 0
    assert zarr.open_group(str(tmp_path / "o.zarr"), mode="r")["0"].shape == (3, 24, 24, 3)


def _png(folder, rgb):
    f = folder / "ref.png"
    Image.fromarray(rgb).save(f)
    return f
