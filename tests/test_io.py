"""Image reading and writing (napari_colorize.io): clear errors naming the file, no lost files."""
import numpy as np
import pytest
from PIL import Image

from napari_colorize.io import (ImageReadError, ImageWriteError, StackWriter, probe_image, read_image,
                                write_image)


@pytest.fixture
def rgb_stack(rng):
    return rng.random((3, 20, 30, 3)).astype(np.float32)


@pytest.mark.parametrize("name,content,match", [
    ("trunc.png", None, "corrupt or truncated"),
    ("text.png", b"hello, not a picture", "not an image"),
    ("text.tif", b"hello, not a picture", "TIFF"),
    ("text.npy", b"hello, not a picture", "not a .npy"),
    ("empty.png", b"", "empty"),
])
def test_bad_files_name_the_file(tmp_path, name, content, match):
    p = tmp_path / name
    if content is None:
        Image.fromarray(np.zeros((64, 64), np.uint8) + 7).save(tmp_path / "full.png")
        content = (tmp_path / "full.png").read_bytes()[:60]
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as e:
        read_image(p)
    assert name in str(e.value)


def test_folders_missing_files_and_object_arrays(tmp_path):
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError, match="objects") as e:
        read_image(tmp_path / "obj.npy")
    assert "allow_pickle" not in str(e.value)


def test_truncated_tiff_and_npy(tmp_path, rgb_stack):
    for suffix in (".tif", ".npy"):
        full = write_image(tmp_path / f"full{suffix}", rgb_stack)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(full.read_bytes()[:2000])
        with pytest.raises(ImageReadError, match="corrupt or truncated"):
            np.asarray(read_image(cut))


def test_sixteen_bit_png_and_grey_alpha(tmp_path):
    a = (np.arange(40 * 50).reshape(40, 50) * 20).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "u16.png")
    b = read_image(tmp_path / "u16.png")
    assert b.dtype == np.uint16 and np.array_equal(a, b)
    Image.fromarray(np.zeros((10, 12, 2), np.uint8), "LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").shape == (10, 12, 2)
    assert probe_image(tmp_path / "u16.png") == ((40, 50), np.dtype(np.uint16))


@pytest.mark.parametrize("suffix,dtype,expect", [
    (".tif", None, np.uint16), (".tif", "uint8", np.uint8), (".tif", "float32", np.float32),
    (".npy", None, np.float32), (".npy", "uint16", np.uint16),
])
def test_stack_dtypes(tmp_path, rgb_stack, suffix, dtype, expect):
    p = write_image(tmp_path / f"s{suffix}", rgb_stack, dtype)
    back = np.asarray(read_image(p))
    assert back.shape == rgb_stack.shape and back.dtype == expect
    top = 1.0 if expect == np.float32 else np.iinfo(expect).max
    assert np.abs(back / top - rgb_stack).max() <= 0.5 / top + 1e-6


def test_stack_writer_slice_by_slice_and_atomic(tmp_path, rgb_stack):
    dest = tmp_path / "s.tif"
    dest.write_bytes(b"the user's old file")
    with pytest.raises(RuntimeError):
        with StackWriter(dest, rgb_stack.shape) as w:
            w[0] = rgb_stack[0]
            raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"the user's old file"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]  # no partial file left
    with StackWriter(dest, rgb_stack.shape, "float32") as w:
        for i in range(3):
            w[i] = rgb_stack[i]
    assert np.allclose(read_image(dest), rgb_stack)


def test_formats_that_cannot_hold_the_result(tmp_path, rgb_stack):
    with pytest.raises(ImageWriteError, match="use .tif"):
        write_image(tmp_path / "s.png", rgb_stack)
    with pytest.raises(ImageWriteError, match="8-bit"):
        write_image(tmp_path / "s.png", rgb_stack[0], "uint16")
    with pytest.raises(ImageWriteError, match="unknown output type"):
        write_image(tmp_path / "s.xyz", rgb_stack[0])
    assert list(tmp_path.iterdir()) == []


def test_probe_reads_headers_not_pixels_and_agrees_with_read(tmp_path):
    """The CLI probes every target before any work; the probe decodes one pixel, not the image."""
    cases = {"l.png": Image.fromarray(np.zeros((5, 7), np.uint8)), "rgb.png": Image.fromarray(np.zeros((5, 7, 3), np.uint8)),
             "rgba.png": Image.fromarray(np.zeros((5, 7, 4), np.uint8)), "u16.png": Image.fromarray(np.zeros((5, 7), np.uint16)),
             "p.png": Image.fromarray(np.zeros((5, 7, 3), np.uint8)).convert("P"), "j.jpg": Image.fromarray(np.zeros((5, 7, 3), np.uint8)),
             "la.png": Image.fromarray(np.zeros((5, 7, 2), np.uint8), "LA"), "b.bmp": Image.fromarray(np.zeros((5, 7), np.uint8))}
    for n, im in cases.items():
        im.save(tmp_path / n)
        a = read_image(tmp_path / n)
        assert probe_image(tmp_path / n) == (a.shape, a.dtype), n
    pt = Image.fromarray(np.zeros((5, 7, 3), np.uint8)).convert("P"); pt.info["transparency"] = 0; pt.save(tmp_path / "pt.png", transparency=0)
    a = read_image(tmp_path / "pt.png"); assert probe_image(tmp_path / "pt.png") == (a.shape, a.dtype)
    big = np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8); Image.fromarray(big).save(tmp_path / "big.png")
    raw = (tmp_path / "big.png").read_bytes(); (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        probe_image(tmp_path / "cut.png")
