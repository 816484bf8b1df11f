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


# --------------------------------------------------------------------------- TIFF series, photometric, codecs (fuzz11)
def _agree(p):
    """read_image and probe_image of ``p``: the same shape and dtype; the pixels as numpy."""
    a = read_image(p)
    assert probe_image(p) == (tuple(a.shape), np.dtype(a.dtype)), p
    return a, np.asarray(a)


def test_multi_series_tiff_is_read_as_one_stack(tmp_path):
    """Frames written one by one (``append=True``: one series each) are one stack, read lazily; series of
    different shapes: the first, with a warning naming the series (it was the first, silently)."""
    import tifffile

    z = (np.arange(6 * 20 * 30).reshape(6, 20, 30) * 7).astype(np.uint16)
    for i in range(6):
        tifffile.imwrite(tmp_path / "frames.tif", z[i], append=True)
    a, full = _agree(tmp_path / "frames.tif")
    assert full.shape == (6, 20, 30) and np.array_equal(full, z)
    assert not isinstance(a, np.ndarray)  # (page by page: nothing decoded before a slice is used)
    assert np.array_equal(np.asarray(a[4]), z[4])
    tifffile.imwrite(tmp_path / "two.tif", z[:2], photometric="minisblack")
    tifffile.imwrite(tmp_path / "two.tif", z[2:, :10], photometric="minisblack", append=True)
    with pytest.warns(UserWarning, match=r"its 2 series have different shapes.*\(2, 20, 30\).*\(4, 10, 30\).*only "
                                         r"the first"):
        a, full = _agree(tmp_path / "two.tif")
    assert np.array_equal(full, z[:2])


def test_tiff_photometric_interpretation_is_applied(tmp_path):
    """MINISWHITE inverted, PALETTE through its colormap, CMYK and YCbCr to RGB (they were read as stored:
    negatives, palette indices as grey, CMYK as RGBA), the rest refused by name; probe and read agree."""
    import tifffile

    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (24, 32), np.uint8)
    tifffile.imwrite(tmp_path / "mw.tif", 255 - g, photometric="miniswhite")
    assert np.array_equal(_agree(tmp_path / "mw.tif")[1], g)
    g16 = rng.integers(0, 65536, (3, 24, 32)).astype(np.uint16)  # a stack: inverted page by page
    tifffile.imwrite(tmp_path / "mw16.tif", g16, photometric="miniswhite")
    assert np.array_equal(_agree(tmp_path / "mw16.tif")[1], 65535 - g16)
    gf = rng.random((24, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "mwf.tif", gf, photometric="miniswhite")
    assert np.allclose(_agree(tmp_path / "mwf.tif")[1], 1 - gf)  # (floats: 1 - value)

    rgb = rng.integers(0, 256, (24, 32, 3), np.uint8)
    im = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=32)
    for name, pil in (("pal.tif", im), ("cmyk.tif", Image.fromarray(rgb).convert("CMYK")),
                      ("ycc.tif", Image.fromarray(rgb).convert("YCbCr"))):
        pil.save(tmp_path / name)
        a, full = _agree(tmp_path / name)
        want = np.asarray(Image.open(tmp_path / name).convert("RGB")).astype(int)
        assert full.shape == (24, 32, 3) and full.dtype == np.uint8, name
        assert np.abs(full.astype(int) - want).max() <= (2 if name == "ycc.tif" else 0), name
    cmap = rng.integers(0, 65536, (3, 256)).astype(np.uint16)  # a true 16-bit colormap: uint16 colours
    idx = rng.integers(0, 256, (24, 32), np.uint8)
    tifffile.imwrite(tmp_path / "pal16.tif", idx, photometric="palette", colormap=cmap)
    a, full = _agree(tmp_path / "pal16.tif")
    assert full.dtype == np.uint16 and np.array_equal(full, cmap.T[idx])
    tifffile.imwrite(tmp_path / "lab.tif", rgb, photometric="cielab")
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match="CIELAB"):
            read(tmp_path / "lab.tif")


def test_compressed_tiffs_read_and_missing_codec_named(tmp_path, monkeypatch):
    """LZW (Photoshop, GIMP, scanners) reads with imagecodecs, a dependency; without the codec the message
    names it and says how to install it (it said "corrupt or truncated")."""
    import tifffile

    g = np.random.default_rng(2).integers(0, 256, (24, 32), np.uint8)
    Image.fromarray(g).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    assert np.array_equal(_agree(tmp_path / "lzw.tif")[1], g)
    monkeypatch.delitem(tifffile.TIFF.DECOMPRESSORS._codecs, 5, raising=False)
    monkeypatch.setattr(tifffile.tifffile, "imagecodecs", None)
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match=r"LZW.*pip install imagecodecs") as e:
            read(tmp_path / "lzw.tif")
        assert "corrupt" not in str(e.value) and "lzw.tif" in str(e.value)


def test_compressed_tiff_stack_is_read_page_by_page(tmp_path):
    import tifffile

    z = np.stack([np.full((16, 24), i, np.uint16) for i in range(5)])
    tifffile.imwrite(tmp_path / "zlib.tif", z, compression="zlib")
    a, full = _agree(tmp_path / "zlib.tif")
    assert not isinstance(a, np.ndarray) and np.array_equal(full, z)
    assert int(np.asarray(a[3]).max()) == 3


def test_multi_frame_bomb_refused_before_decoding(tmp_path):
    """A 1.4 kB GIF with a 12000 x 12000 logical screen and 60 frames asked for ~26 GB (and the probe decoded
    every frame): refused from its header."""
    import struct

    w = h = 12000
    out = bytearray(b"GIF89a" + struct.pack("<HH", w, h) + bytes([0xF0, 0, 0]) + bytes([0, 0, 0, 255, 255, 255]))
    out += b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"
    for i in range(60):
        out += b"\x21\xF9\x04\x00\x00\x00\x00\x00" + b"\x2C" + struct.pack("<HHHH", i, 0, 1, 1) + b"\x00"
        out += b"\x02\x02\x44\x01\x00"
    (tmp_path / "bomb.gif").write_bytes(bytes(out + b"\x3B"))
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match=r"60 frames of 12000 x 12000.*decompression bomb"):
            read(tmp_path / "bomb.gif")


def test_out_of_memory_while_reading_is_a_message(tmp_path, monkeypatch, capsys):
    """A MemoryError (no text of its own) becomes "out of memory reading FILE", never an empty "error: "."""
    from PIL import ImageFile

    from napari_colorize.cli import main

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.full((8, 8, 3), (200, 80, 20), np.uint8)).save(tmp_path / "r.png")

    def no_memory(self, *a, **k):
        raise MemoryError()

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory)
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match="g.png: out of memory reading it"):
            read(tmp_path / "g.png")
    assert main(["colorize", str(tmp_path / "g.png"), "-r", str(tmp_path / "r.png"), "-m", "reinhard",
                 "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "out of memory reading" in err and "error: \n" not in err


def test_npy_gets_the_pixel_cap(tmp_path):
    from napari_colorize.io import MAX_PIXELS

    side = int(MAX_PIXELS ** 0.5) + 1
    a = np.lib.format.open_memmap(tmp_path / "huge.npy", mode="w+", dtype=np.uint8, shape=(side, side))
    del a  # (a sparse file: nothing written)
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match="decompression bomb"):
            read(tmp_path / "huge.npy")
    np.save(tmp_path / "ok.npy", np.zeros((3, 40, 50), np.uint8))
    assert probe_image(tmp_path / "ok.npy") == ((3, 40, 50), np.dtype(np.uint8))


# --------------------------------------------------------------------------- what the file says (fuzz11 findings 5, 6)
def test_the_file_says_whether_it_is_colour(tmp_path):
    """``stores_colour``: a file's colour mode, which a shape cannot tell (a 3 x 50 RGB strip and 3 slices of
    50 x 3 are both ``(3, 50, 3)``): True for RGB(A) pixels, False for grey ones, None where the file does not say."""
    import tifffile

    from napari_colorize.io import stores_colour

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (3, 50, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "strip.png")
    Image.fromarray(rng.integers(0, 256, (4, 4, 4), np.uint8)).save(tmp_path / "icon.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "l.png")
    Image.fromarray(rgb[..., :2].copy(), "LA").save(tmp_path / "la.png")
    np.save(tmp_path / "strip.npy", rgb)
    tifffile.imwrite(tmp_path / "strip.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "rgbstack.tif", rng.integers(0, 256, (3, 20, 30, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "narrow.tif", rng.integers(0, 256, (8, 20, 3), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "planar.tif", rng.integers(0, 256, (3, 20, 30), np.uint8), photometric="rgb",
                     planarconfig="separate")
    tifffile.imwrite(tmp_path / "pages3.tif", rng.integers(0, 256, (3, 20, 30), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "z3.tif", rng.integers(0, 256, (3, 20, 30), np.uint8), imagej=True,
                     metadata={"axes": "ZYX"})
    says = {"strip.png": True, "icon.png": True, "l.png": False, "la.png": None, "strip.npy": None,
            "strip.tif": True, "rgbstack.tif": True, "narrow.tif": False, "planar.tif": None, "pages3.tif": None,
            "z3.tif": False}
    for name, want in says.items():
        assert stores_colour(tmp_path / name) is want, name
    assert probe_image(tmp_path / "strip.tif")[0] == (3, 50, 3)
    assert probe_image(tmp_path / "narrow.tif")[0] == (8, 20, 3)  # (8 grey pages of 20 x 3)
    with pytest.raises(ImageReadError, match="no such file"):
        stores_colour(tmp_path / "missing.png")


def test_a_tiff_of_several_channels_is_read_as_slices_or_one_picked(tmp_path):
    """An ImageJ / OME-TIFF with a channel axis C is read as before, its channels as slices of the stack, with a
    warning saying how many and how to pick one; ``channel=K`` reads channel K alone (no warning). Several grey
    samples per pixel are no stack: refused unless one is picked."""
    import warnings

    import tifffile

    from napari_colorize.io import stores_colour

    rng = np.random.default_rng(3)
    z = rng.integers(0, 65536, (2, 24, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "cyx.tif", z, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "ome.ome.tif", z, metadata={"axes": "CYX"})
    zc = rng.integers(0, 65536, (4, 3, 24, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "zcyx.tif", zc, imagej=True, metadata={"axes": "ZCYX"})
    tifffile.imwrite(tmp_path / "bands.tif", rng.integers(0, 256, (24, 32, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    for name, n, data in (("cyx.tif", 2, z), ("ome.ome.tif", 2, z), ("zcyx.tif", 3, zc)):
        for f in (read_image, probe_image, stores_colour):
            with pytest.warns(UserWarning, match=rf"{name}: it has {n} channels along C .* colourised as slices of a "
                                                 rf"stack.* pick it with channel=K \(K from 0 to {n - 1}\)"):
                got = f(tmp_path / name)
            if f is read_image:
                assert np.array_equal(np.asarray(got), data), name
    with pytest.raises(ImageReadError, match=r"bands.tif: it has 5 channels .* pick one with channel=K "
                                             r"\(K from 0 to 4\), or save that channel"):
        read_image(tmp_path / "bands.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a channel picked: no warning)
        a = read_image(tmp_path / "cyx.tif", channel=1)
        assert probe_image(tmp_path / "cyx.tif", channel=1) == ((24, 32), np.dtype(np.uint16))
        assert np.array_equal(np.asarray(a), z[1]) and stores_colour(tmp_path / "cyx.tif", channel=1) is False
        a = read_image(tmp_path / "zcyx.tif", channel="2")  # (the command line's --channel is text)
        assert a.shape == (4, 24, 32) and np.array_equal(np.asarray(a), zc[:, 2])
        assert probe_image(tmp_path / "zcyx.tif", channel=2)[0] == (4, 24, 32)
    assert np.array_equal(np.asarray(read_image(tmp_path / "bands.tif", channel=4)),
                          tifffile.imread(tmp_path / "bands.tif")[..., 4])
    with pytest.raises(ImageReadError, match="channel=2 does not exist: it has 2 channels, 0 to 1"):
        read_image(tmp_path / "cyx.tif", channel=2)
    with pytest.raises(ImageReadError, match="channel=GFP does not exist"):
        probe_image(tmp_path / "cyx.tif", channel="GFP")
    Image.fromarray(z[0].astype(np.uint8)).save(tmp_path / "p.png")
    tifffile.imwrite(tmp_path / "one.tif", z[0])
    for name in ("p.png", "one.tif"):
        with pytest.raises(ImageReadError, match=f"{name}: channel=0 was given, but it has no channel axis"):
            read_image(tmp_path / name, channel=0)
    # grey + alpha samples are not channels; one channel is no channel axis
    tifffile.imwrite(tmp_path / "ga.tif", rng.integers(0, 256, (24, 32, 2), np.uint8), photometric="minisblack",
                     extrasamples=["unassalpha"])
    assert read_image(tmp_path / "ga.tif").shape == (24, 32, 2)
    tifffile.imwrite(tmp_path / "c1.tif", z[:1], imagej=True, metadata={"axes": "CYX"})
    assert read_image(tmp_path / "c1.tif").shape == (24, 32)


def test_a_z_stack_saved_the_ordinary_way_is_read_as_slices(tmp_path):
    """``tifffile.imwrite(..., imagej=True)`` without axes and an OME-TIFF's default both make tifffile name the
    first axis of a z-stack C (CYX, ZCYX): they were refused as multi-channel files, with no way to read them as
    the stacks napari shows; they are read as stacks, with a warning, and ``channel=K`` still picks one."""
    import tifffile

    rng = np.random.default_rng(11)
    z = rng.integers(0, 65536, (10, 24, 32)).astype(np.uint16)
    z4 = rng.integers(0, 65536, (2, 10, 24, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", z, imagej=True)
    tifffile.imwrite(tmp_path / "s.ome.tif", z)
    tifffile.imwrite(tmp_path / "s4.ome.tif", z4)
    for name, data in (("s.tif", z), ("s.ome.tif", z), ("s4.ome.tif", z4)):
        with pytest.warns(UserWarning, match=rf"{name}: it has 10 channels along C"):
            a, full = _agree(tmp_path / name)
        assert np.array_equal(full, data), name
    assert np.array_equal(np.asarray(read_image(tmp_path / "s.tif", channel=3)), z[3])


def test_grey_with_one_extra_sample_of_any_kind_is_grey_and_alpha(tmp_path):
    """A grey page of two samples whose extra one is 'unspecified' (ExtraSamples 0) was refused as two channels;
    it is grey + alpha, as one said to be alpha."""
    import tifffile

    from napari_colorize.io import stores_colour

    ga = np.random.default_rng(12).integers(0, 256, (24, 32, 2), np.uint8)
    tifffile.imwrite(tmp_path / "ga0.tif", ga, photometric="minisblack", extrasamples=["unspecified"])
    a, full = _agree(tmp_path / "ga0.tif")
    assert np.array_equal(full, ga) and stores_colour(tmp_path / "ga0.tif") is None


def test_palette_pages_are_each_read_through_their_own_colormap(tmp_path):
    """A multi-page palette TIFF whose pages carry different colormaps (pages appended one by one, or Pillow's
    ``save_all``) was read through the first page's colormap for every page."""
    import tifffile

    rng = np.random.default_rng(13)
    idx = rng.integers(0, 256, (24, 32), np.uint8)
    cmaps = [rng.integers(0, 65536, (3, 256)).astype(np.uint16) for _ in range(3)]
    for cm in cmaps:
        tifffile.imwrite(tmp_path / "pal.tif", idx, photometric="palette", colormap=cm, append=True)
    a, full = _agree(tmp_path / "pal.tif")
    assert full.shape == (3, 24, 32, 3) and full.dtype == np.uint16
    assert all(np.array_equal(full[k], cmaps[k].T[idx]) for k in range(3))
    frames = []
    for _ in range(3):
        im = Image.fromarray(idx, "P")
        im.putpalette(rng.integers(0, 256, 768).astype(np.uint8).tolist())
        frames.append(im)
    frames[0].save(tmp_path / "pil.tif", save_all=True, append_images=frames[1:])
    a, full = _agree(tmp_path / "pil.tif")
    assert full.dtype == np.uint8
    assert all(np.array_equal(full[k], np.asarray(frames[k].convert("RGB"))) for k in range(3))
    # 8-bit colours on some pages and 16-bit on others: one dtype, uint16 (8-bit colours x 257)
    tifffile.imwrite(tmp_path / "mixed.tif", idx, photometric="palette", colormap=cmaps[0], append=True)
    cm8 = rng.integers(0, 256, (3, 256)).astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "mixed.tif", idx, photometric="palette", colormap=cm8, append=True)
    a, full = _agree(tmp_path / "mixed.tif")
    assert full.dtype == np.uint16 and np.array_equal(full[1], cm8.T[idx])


def test_an_imagej_lut_is_not_applied(tmp_path):
    """ImageJ saves an 8/16-bit image with a colour LUT (Fire) as PALETTE: its data are the grey values, as
    ImageJ and napari show them; mapped through the LUT and reduced to lightness a ramp was not monotonic."""
    import tifffile

    from napari_colorize.io import stores_colour

    ramp = np.tile(np.arange(256, dtype=np.uint8), (24, 1))
    x = np.linspace(0, 1, 256)
    lut = (np.stack([np.clip(3 * x - 0.6, 0, 1), np.clip(3 * x - 1.6, 0, 1),
                     np.clip(np.where(x < 0.35, 3 * x, 2.0 - 4 * x), 0, 1)]) * 65535).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "fire.tif", ramp, imagej=True, colormap=lut)
    tifffile.imwrite(tmp_path / "firez.tif", np.stack([ramp, ramp[:, ::-1], ramp]), imagej=True, colormap=lut,
                     metadata={"axes": "ZYX"}, compression="zlib")  # (a stack, read page by page)
    with tifffile.TiffFile(tmp_path / "fire.tif") as tf:
        assert tf.is_imagej and int(tf.pages[0].photometric) == 3
    a, full = _agree(tmp_path / "fire.tif")
    assert np.array_equal(full, ramp) and stores_colour(tmp_path / "fire.tif") is False
    a, full = _agree(tmp_path / "firez.tif")
    assert full.shape == (3, 24, 256) and np.array_equal(full[1], ramp[:, ::-1])
    assert stores_colour(tmp_path / "firez.tif") is False
    tifffile.imwrite(tmp_path / "pal.tif", ramp, photometric="palette", colormap=lut)  # (not ImageJ's: colour)
    assert _agree(tmp_path / "pal.tif")[1].shape == (24, 256, 3) and stores_colour(tmp_path / "pal.tif") is True


def test_a_lazy_tiff_stack_is_read_from_its_absolute_path(tmp_path, monkeypatch):
    """A stack read page by page and computed from another working folder (a dask worker's) failed with "page 5
    is corrupt or truncated ([Errno 2] ...)"; it is read from the file's absolute path, and a file that is not
    there says so."""
    import tifffile

    z = np.arange(6 * 16 * 16, dtype=np.uint16).reshape(6, 16, 16)
    tifffile.imwrite(tmp_path / "rel.tif", z, compression="zlib", photometric="minisblack")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    a = read_image("rel.tif")
    assert not isinstance(a, np.ndarray)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert np.array_equal(np.asarray(a), z)
    monkeypatch.chdir(tmp_path)
    b = read_image("rel.tif")
    (tmp_path / "rel.tif").rename(tmp_path / "moved.tif")
    with pytest.raises(ImageReadError, match=r"rel.tif: the input file is not there on .*every dask worker must "
                                             r"reach the input at this path") as e:
        np.asarray(b[5])
    assert str(tmp_path / "rel.tif") in str(e.value) and "corrupt" not in str(e.value)


def test_ordinary_animations_are_read_and_the_cap_follows_free_memory(tmp_path, monkeypatch):
    """RGB frames count 3 values per pixel (4 only with alpha); the decoded size is bounded by the memory free
    here (the frames and their stack), with a hard stop for absurd headers (the GIF bomb's test above). A
    160-frame 1280 x 720 GIF of 406 kB was refused as 590 million values."""
    import re

    from napari_colorize import io, memory
    from napari_colorize.io import check_frames

    frames = [Image.fromarray(np.full((30, 40), 40 * k, np.uint8)).convert("P") for k in range(5)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=40)
    monkeypatch.setattr(io, "MAX_DECODED", 5 * 30 * 40 * 3)  # exactly the RGB frames' values
    assert probe_image(tmp_path / "clip.gif") == ((5, 30, 40), np.dtype(np.uint8))
    frames[0].save(tmp_path / "alpha.gif", save_all=True, append_images=frames[1:], duration=40, transparency=0)
    with pytest.raises(ImageReadError, match=r"5 frames of 40 x 30 pixels x 4 channels"):
        probe_image(tmp_path / "alpha.gif")  # (a transparent colour: RGBA frames)
    monkeypatch.setattr(io, "MAX_DECODED", 2**32)
    monkeypatch.setattr(memory, "available_memory", lambda device: 4 * 2**30)
    check_frames("clip.gif", 160, (720, 1280), 3)  # (the reviewer's animation: 442 million values, 4 GB free)
    monkeypatch.setattr(memory, "available_memory", lambda device: 2 * 5 * 30 * 40 * 3 - 1)
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError, match=r"clip.gif: its 5 frames of 40 x 30 pixels x 3 channels .* more "
                                                 r"than the 0.0 GB of memory free here"):
            read(tmp_path / "clip.gif")
    assert not re.search(r"\d\s*[GMk]B", check_frames.__doc__)  # (measured numbers belong in the docs)
