"""Reading and writing image files and stacks (for the command line, the volumes and the widgets).

Readers (:func:`read_image`, :func:`probe_image`): PNG, JPEG and the other formats Pillow knows
(first frame, or every frame of a multi-frame file as a stack), TIFF (tifffile; uncompressed files
are memory-mapped, other stacks read page by page as a dask array, so a stack is read slice by slice;
series of one shape stacked; the photometric interpretation applied; a channel axis read as slices, with a
warning, unless one channel is picked), ``.npy`` (memory-mapped). The dtype is kept. :func:`stores_colour`
says whether a file's last axis is colour, which its shape alone cannot say (a 3 x 50 RGB strip).
Every failure is an :class:`ImageReadError` naming the file: missing, a folder,
unreadable, not an image, corrupt or truncated, a codec missing, too large (:data:`MAX_PIXELS`,
:data:`MAX_DECODED`), out of memory.

Writers: :func:`write_image` (a whole array) and :class:`StackWriter` (slice by slice, so a large
stack never needs its whole float32 RGB result in memory). Output dtypes:

============  ========================  ==========================================
suffix        dtypes                    default
============  ========================  ==========================================
.png, .jpg    uint8                     uint8
.tif, .tiff   uint8, uint16, float32    uint16 (keeps 16-bit detail, half of float32)
.npy          uint8, uint16, float32    float32
============  ========================  ==========================================

A stack (more than 2 dimensions before RGB) can only go to .tif or .npy. Files are written to a
temporary name in the destination folder and renamed when complete: an interrupted or failed write
never leaves a half-written file, nor replaces an existing one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import numpy as np

from .disk import (DiskFullError, ImageWriteError, check_free_space, disk_full_message, is_disk_full, mount_point,
                   preallocate)

__all__ = ["ImageReadError", "ImageWriteError", "DiskFullError", "read_image", "probe_image", "write_image", "StackWriter",
           "READ_SUFFIXES", "WRITE_SUFFIXES", "STACK_SUFFIXES", "DTYPES", "default_dtype", "check_output_format",
           "to_output_dtype", "is_disk_full", "disk_full_message", "check_free_space", "preallocate", "mount_point",
           "pid_alive", "MAX_PIXELS", "MAX_DECODED", "check_pixels", "check_frames", "out_of_memory",
           "frames_as_stack", "is_image_like", "stores_colour", "probe_layout", "PROVENANCE_KEY", "read_embedded_text", "can_embed"]

TIFF_SUFFIXES = (".tif", ".tiff")
PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")
WRITE_SUFFIXES = PLAIN_SUFFIXES + TIFF_SUFFIXES + (".npy",)
STACK_SUFFIXES = TIFF_SUFFIXES + (".npy",)
READ_SUFFIXES = WRITE_SUFFIXES + (".bmp", ".gif", ".webp")
DTYPES = ("uint8", "uint16", "float32")
# the largest 2-D image (slice of a stack) read: 2 x Pillow's MAX_IMAGE_PIXELS, where Pillow itself stops
# (about 179 million pixels, 13377 x 13377; float32 RGB of it is 2.1 GB). A header claiming more is
# refused before any pixel is decoded.
MAX_PIXELS = 2 * 89478485
# the most values decoded at once for one multi-frame file (a GIF's frames, all in memory), whatever the memory
# free: 2**32 (4 GB of 8-bit frames). A header claiming more (or more than the memory free holds) is refused
# before any frame is decoded.
MAX_DECODED = 2**32


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and why."""


# --------------------------------------------------------------------------- processes (the run lock of volumes)
def pid_alive(pid: int) -> bool:
    """True when a process of that id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


# --------------------------------------------------------------------------- reading
def _check_file(path: Path) -> None:
    if not path.exists():
        folder = next((p for p in path.absolute().parents if p.exists()), None)
        if folder is not None and not os.access(folder, os.R_OK | os.X_OK):
            raise ImageReadError(f"{path}: cannot be read (permission denied on the folder {folder}/)")
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"{path}: cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty")


def check_pixels(path, shape: tuple, what: str = "image") -> None:
    """Refuse (:class:`ImageReadError`) a 2-D image of ``shape`` ``(H, W)`` larger than
    :data:`MAX_PIXELS`: its header claims more pixels than can be colourised here (a decompression
    bomb, or a damaged header)."""
    h, w = (int(shape[0]), int(shape[1]))
    if h * w > MAX_PIXELS:
        raise ImageReadError(f"{path}: its header claims an {what} of {w} x {h} pixels ({h * w / 1e6:.0f} megapixels), "
                             f"more than the {MAX_PIXELS / 1e6:.0f} megapixels read here (a damaged header or a "
                             "decompression bomb?); split it into tiles, e.g. as a zarr or TIFF stack")


@contextlib.contextmanager
def _pil_opened(path: Path):
    """``PIL.Image.open(path)`` with its size checked against :data:`MAX_PIXELS` before any decoding
    (Pillow's own "decompression bomb" warning and error become the same :class:`ImageReadError`)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        import re

        m = re.search(r"\((\d+) pixels\)", str(e))
        raise ImageReadError(f"{path}: its header claims {int(m.group(1)) / 1e6 if m else 0:.0f} megapixels, more than "
                             f"the {MAX_PIXELS / 1e6:.0f} megapixels read here (a damaged header or a decompression "
                             "bomb?); split it into tiles, e.g. as a zarr or TIFF stack") from None
    with im:
        check_pixels(path, (im.size[1], im.size[0]))
        yield im


def _pil_array(im) -> np.ndarray:
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    a = np.asarray(im)
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def check_frames(path, n: int, shape: tuple, channels: int, itemsize: int = 1) -> None:
    """Refuse (:class:`ImageReadError`) a multi-frame file whose ``n`` frames of ``shape`` ``(H, W)`` and
    ``channels`` decoded values per pixel (of ``itemsize`` bytes) would not fit, before any frame is decoded:
    more values than :data:`MAX_DECODED` whatever the memory (a few kB of GIF can claim a huge logical screen
    and many frames: a damaged header or a decompression bomb), or more bytes than the memory free here holds
    twice (the decoded frames and the stack made of them), from
    :func:`napari_colorize.memory.available_memory`."""
    h, w = (int(shape[0]), int(shape[1]))
    total = int(n) * h * w * int(channels)
    what = f"{n} frames of {w} x {h} pixels x {channels} channels ({total / 1e6:.0f} million values)"
    if total > MAX_DECODED:
        raise ImageReadError(f"{path}: its header claims {what}, more than the {MAX_DECODED / 1e6:.0f} million "
                             "decoded here at once (a damaged header or a decompression bomb?); save the frames "
                             "as a TIFF stack, or fewer or smaller frames")
    from .memory import available_memory

    need, free = 2 * total * int(itemsize), available_memory("cpu")
    if free is not None and need > free:
        raise ImageReadError(f"{path}: its {what} need about {need / 1e9:.1f} GB to read as one stack (the frames "
                             f"and the stack), more than the {free / 1e9:.1f} GB of memory free here; free some "
                             "memory, or save the frames as a TIFF stack (read frame by frame), or fewer or "
                             "smaller frames")


def _frame_channels(im) -> tuple[int, int]:
    """Values per pixel a frame of ``im`` is decoded to and their size in bytes, from its header: grey 1
    (not in a GIF, whose later frames become RGB), grey + alpha 2, RGBA 4 (an alpha band, or a palette with a
    transparent colour), else RGB 3."""
    size = 4 if im.mode in ("I", "F") else 2 if im.mode.startswith("I;16") else 1
    if im.mode in ("1", "L", "I", "F", "I;16", "I;16B", "I;16L") and im.format != "GIF":
        return 1, size
    if im.mode in ("LA", "La"):
        return 2, size
    if im.mode in ("RGBA", "RGBa", "RGBX", "PA") or "transparency" in im.info:
        return 4, size
    return 3, size


def _read_pil(path: Path) -> np.ndarray:
    from PIL import UnidentifiedImageError

    from PIL import ImageOps

    try:
        with _pil_opened(path) as im:
            n = int(getattr(im, "n_frames", 1))
            if n > 1:
                check_frames(path, n, (im.size[1], im.size[0]), *_frame_channels(im))
            frames = []
            for i in range(n):
                im.seek(i)
                im.load()
                # a camera's EXIF orientation applied, as viewers show the photo (single images)
                frames.append(_pil_array(ImageOps.exif_transpose(im) if n == 1 else im))
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (or a format that cannot be read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageReadError(f"{path}: the image is corrupt or truncated ({e})") from None
    if len(frames) == 1:
        return frames[0]
    return frames_as_stack(path, frames)


def frames_as_stack(path, frames: list) -> np.ndarray:
    """The frames of a multi-frame file (an animated GIF, a multi-page image) as one stack: frames
    whose colour modes differ are brought to one (grey to RGB, RGB to RGBA with opaque alpha), and
    frames that are all grey (R = G = B, opaque) are read as a grey stack ``(T, H, W)``. Frames of
    different sizes cannot be stacked: the first is read, with a warning (never silently)."""
    import warnings

    if any(f.shape[:2] != frames[0].shape[:2] for f in frames):
        warnings.warn(f"{path}: its {len(frames)} frames have different sizes and cannot be read as one stack: only "
                      "the first frame is read", stacklevel=3)
        return frames[0]
    if any(f.shape != frames[0].shape for f in frames):
        c = max(f.shape[2] if f.ndim == 3 else 1 for f in frames)
        c = 3 if c == 2 else c  # (grey+alpha with colour frames: colour)
        top = np.iinfo(frames[0].dtype).max if frames[0].dtype.kind in "ui" else 1
        even = []
        for f in frames:
            f = f if f.ndim == 3 else f[..., None]
            grey, alpha = f[..., :1], f[..., 3:4] if f.shape[2] == 4 else (f[..., 1:2] if f.shape[2] == 2 else None)
            rgb = np.repeat(grey, 3, -1) if f.shape[2] in (1, 2) else f[..., :3]
            if c == 4:
                rgb = np.concatenate([rgb, alpha if alpha is not None else np.full_like(grey, top)], -1)
            even.append(rgb)
        frames = even
    stack = np.stack(frames)
    if stack.ndim == 4 and stack.shape[-1] in (3, 4):
        opaque = stack.shape[-1] == 3 or bool((stack[..., 3] == (np.iinfo(stack.dtype).max if stack.dtype.kind in
                                                                  "ui" else 1)).all())
        if opaque and bool((stack[..., 0] == stack[..., 1]).all() and (stack[..., 1] == stack[..., 2]).all()):
            import warnings

            warnings.warn(f"{path}: its {len(stack)} frames are read as a grey stack (T, H, W) = "
                          f"{stack.shape[:3]}", stacklevel=3)
            return np.ascontiguousarray(stack[..., 0])
    return stack


#: Pillow modes whose pixels are colour, and grey (:func:`stores_colour`)
_PIL_COLOUR = ("RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")
_PIL_GREY = ("1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _probe_pil(path: Path) -> tuple[tuple[int, ...], np.dtype, bool | None]:
    """Shape, dtype and colour (as :func:`stores_colour`) from the header and one decoded pixel; the file's
    structure is checked by PIL's ``verify`` (PNG: every chunk's checksum) without decoding the image (it is
    decoded once, when it is colourised)."""
    from PIL import UnidentifiedImageError

    try:
        with _pil_opened(path) as im:
            n = int(getattr(im, "n_frames", 1))
            if n > 1:  # multi-frame files: decoded to learn their layout (bounded first)
                check_frames(path, n, (im.size[1], im.size[0]), *_frame_channels(im))
                a = _read_pil(path)  # (frames in other modes are brought to one, all-grey frames read as grey)
                return tuple(a.shape), a.dtype, (True if a.ndim == 4 and a.shape[-1] in (3, 4) else None)
            mode = im.mode
            corner = _pil_array(im.crop((0, 0, 1, 1)))
            width, height = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: turned a quarter (as read)
                width, height = height, width
        with _pil_opened(path) as im:
            im.verify()
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file (or a format that cannot be read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageReadError(f"{path}: the image is corrupt or truncated ({e})") from None
    colour = True if mode in _PIL_COLOUR else False if mode in _PIL_GREY else None
    return (height, width) + corner.shape[2:], corner.dtype, colour


@contextlib.contextmanager
def quiet_logger(name: str, level: int):
    """Raise logger ``name`` to ``level`` for a while (a library's own notes about what we report or
    handle ourselves stay off stderr)."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


# TIFF compressions whose decoder gives RGB for YCbCr pixels (the JPEG codecs convert them themselves)
_JPEG_COMPRESSIONS = (6, 7, 33007, 34892)


def _tiff_name(enum, value) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _tiff_codec_check(path: Path, page) -> None:
    """Refuse a compression that cannot be decoded here before any pixel is read: naming the codec,
    and saying ``pip install imagecodecs`` when that package would decode it (never "corrupt")."""
    from tifffile import COMPRESSION, TIFF

    c = int(page.compression)
    if c == 1:
        return
    try:
        TIFF.DECOMPRESSORS[c]
    except KeyError as e:
        raise ImageReadError(_codec_message(path, _tiff_name(COMPRESSION, c), str(e))) from None


def _codec_message(path: Path, name: str | None, why: str) -> str:
    if name is None:  # (tifffile's "<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")
        import re

        m = re.search(r"COMPRESSION\.(\w+)", why)
        name = m.group(1) if m else None
    what = f"{name}-compressed" if name else "compressed"
    if "imagecodecs" in why:
        return (f"{path}: this TIFF is {what}; decoding {name or 'it'} needs the package imagecodecs, which is not "
                "installed: pip install imagecodecs")
    return f"{path}: this TIFF is {what}, which cannot be decoded here ({why.strip(chr(39))})"


def _tiff_rationals(tag, n: int, default: tuple) -> tuple:
    """A TIFF tag of ``n`` RATIONAL values as floats (tifffile gives numerator, denominator pairs)."""
    if tag is None:
        return default
    v = [float(x) for x in np.ravel(tag.value)]
    if len(v) == 2 * n:
        v = [v[i] / v[i + 1] if v[i + 1] else 0.0 for i in range(0, 2 * n, 2)]
    return tuple(v) if len(v) == n else default


def _tiff_pm(page, imagej: bool = False) -> int:
    """The photometric interpretation ``page`` is read by: its tag (MINISBLACK when it has none: tifffile
    says MINISWHITE then); an ImageJ file's PALETTE pages are MINISBLACK, their indices the grey values (a
    display LUT, as ImageJ and napari show the data)."""
    pm = int(page.photometric) if 262 in page.tags else 1
    return 1 if pm == 3 and imagej else pm


def _tiff_alpha(page) -> int:
    """How many extra samples of ``page`` are alpha: those said to be (associated or unassociated alpha), and
    the one extra sample of a grey page of two samples whatever its kind (grey + alpha, as Pillow and
    tifffile write it, ExtraSamples unspecified too)."""
    extras = [int(e) for e in (page.extrasamples or ())]
    if len(extras) == 1 and int(page.samplesperpixel) == 2:
        return 1
    return sum(1 for e in extras if e in (1, 2))


def _palette_lut(cmap) -> np.ndarray:
    """A TIFF colormap (3 x 2**bits, 16-bit) as a lookup table ``(2**bits, 3)``: uint8 when it holds 8-bit
    colours (as stored, x 257 or x 256), else uint16."""
    cmap = np.asarray(cmap).reshape(3, -1)
    if int(cmap.max()) <= 255:  # (a writer that stored 8-bit values)
        return cmap.T.astype(np.uint8)
    if not (cmap % 257).any():  # 8-bit colours scaled to 16 bits (x 257: libtiff, tifffile)
        return (cmap // 257).T.astype(np.uint8)
    if not (cmap % 256).any():  # (x 256: Pillow)
        return (cmap // 256).T.astype(np.uint8)
    return cmap.T.astype(np.uint16)


def _lookup(lut: np.ndarray, a) -> np.ndarray:
    """Palette indices ``a`` to colours through ``lut`` ``(n, 3)`` (indices beyond it: its last colour)."""
    return lut[np.clip(np.asarray(a).astype(np.int64, copy=False), 0, len(lut) - 1)]


class _PagePalettes:
    """Palette indices to RGB through each page's own colormap (a multi-page palette TIFF whose pages carry
    different colormaps): ``convert(a, page)`` converts page ``page`` (its index in the file);
    ``convert(a)`` an array of the pages ``pages``, in order, along its leading axes."""

    def __init__(self, luts: dict, pages: list, page_shape: tuple) -> None:
        wide = any(lut.dtype != np.uint8 for lut in luts.values())
        self.luts = {i: (lut.astype(np.uint16) * 257 if wide and lut.dtype == np.uint8 else lut)
                     for i, lut in luts.items()}
        self.dtype = np.dtype(np.uint16 if wide else np.uint8)
        self.pages, self.page_shape = list(pages), tuple(page_shape)

    def __call__(self, a, page=None) -> np.ndarray:
        a = np.asarray(a)
        if page is not None:
            return _lookup(self.luts[page], a)
        flat = a.reshape((len(self.pages),) + self.page_shape)
        out = np.stack([self(f, i) for f, i in zip(flat, self.pages)])
        return out.reshape(a.shape + (3,))


def _tiff_photometric(path: Path, page, imagej: bool = False):
    """How the stored samples of ``page`` (a keyframe) become grey or RGB pixels, from its
    PhotometricInterpretation: ``(page_shape, dtype, convert)`` of the converted page, ``convert`` None
    when the samples are used as stored (MINISBLACK, RGB, or no such tag; the PALETTE pages of an ImageJ
    file, ``imagej``), else ``convert(a, page=None)`` of an array whose last axes are a page's (``page``: the
    index in the file of the one page ``a`` is, which only :class:`_PagePalettes` looks at). Refuses
    (:class:`ImageReadError`) what is not converted here."""
    from tifffile import PHOTOMETRIC

    shape, dtype = tuple(int(n) for n in page.shape), np.dtype(page.dtype)
    pm = _tiff_pm(page, imagej)
    name = _tiff_name(PHOTOMETRIC, pm)
    extras = len(page.extrasamples or ())
    colour = int(page.samplesperpixel) - extras
    planar = int(page.samplesperpixel) > 1 and int(page.planarconfig) == 2

    def refuse(why: str) -> ImageReadError:
        return ImageReadError(f"{path}: its pixels are stored as {name} (TIFF photometric interpretation {pm}), "
                              f"{why}: save it as greyscale or RGB")

    if pm in (1, 2):  # MINISBLACK, RGB
        return shape, dtype, None
    if pm == 0:  # MINISWHITE: 0 is white; inverted within the dtype's range (its bits per sample, for 12-bit)
        bits = int(page.bitspersample)
        if extras and planar:
            raise refuse("with extra samples in separate planes, which is not read here")

        def invert(v):
            if v.dtype.kind == "f":  # floats: 1 - value ([0, 1] stays [0, 1]; any range keeps its spread, turned over)
                return (1 - v).astype(v.dtype, copy=False)
            if v.dtype == bool:
                return ~v
            if v.dtype.kind == "i":
                return ~v  # (-1 - value: the signed range turned over onto itself)
            top = (1 << bits) - 1 if bits < 8 * v.dtype.itemsize else np.iinfo(v.dtype).max
            return (top - np.minimum(v, top)).astype(v.dtype, copy=False)

        def convert(a, page=None):  # (one page or several: the same conversion)
            a = np.asarray(a)
            if not extras:
                return invert(a)
            out = np.array(a, copy=True)
            out[..., :colour] = invert(a[..., :colour])
            return out
        return shape, dtype, convert
    if pm == 3:  # PALETTE: each value an index into the colormap (3 x 2**bits, 16-bit)
        cmap = page.colormap
        if cmap is None or dtype.kind not in "uib" or page.samplesperpixel != 1:
            raise refuse("without a colormap that can be applied" if cmap is None else
                         "with more than one sample per pixel or non-integer indices, which is not read here")
        lut = _palette_lut(cmap)

        def convert(a, page=None):  # (one page or several: the same conversion)
            return _lookup(lut, a)
        return shape + (3,), lut.dtype, convert
    if pm in (5, 6) and planar:
        raise refuse("in separate planes, which is not read here")
    if pm == 5:  # SEPARATED: CMYK inks (InkSet 1, four inks) -> RGB, R = (1 - C)(1 - K), ...
        inkset = int(page.tags.valueof(332, 1) or 1)
        if inkset != 1 or colour != 4 or dtype.kind not in "uf":
            raise refuse(f"with {colour} inks (only CMYK, four inks, is read here)")
        top = 1.0 if dtype.kind == "f" else float((1 << int(page.bitspersample)) - 1)
        alpha = 1 if extras else 0

        def convert(a, page=None):  # (one page or several: the same conversion)
            a = np.asarray(a)
            f = np.clip(a[..., :4].astype(np.float64), 0, top)
            rgb = (top - f[..., :3]) * (top - f[..., 3:4]) / top
            if dtype.kind != "f":
                rgb = np.round(rgb)
            out = rgb.astype(dtype)
            return np.concatenate([out, a[..., 4:5].astype(dtype)], -1) if alpha else out
        return shape[:-1] + (3 + alpha,), dtype, convert
    if pm == 6:  # YCbCr: decoded to RGB by the JPEG codecs; uncompressed (or LZW...) 8-bit converted here
        if int(page.compression) in _JPEG_COMPRESSIONS:
            return shape, dtype, None
        sub = page.tags.valueof(530, (2, 2))
        if tuple(int(x) for x in np.ravel(sub)) != (1, 1) or colour != 3 or dtype != np.uint8:
            raise refuse(f"8-bit without chroma subsampling is read here, not {int(page.bitspersample)}-bit with "
                         f"subsampling {tuple(int(x) for x in np.ravel(sub))}")
        kr, kg, kb = _tiff_rationals(page.tags.get(529), 3, (0.299, 0.587, 0.114))
        rbw = _tiff_rationals(page.tags.get(532), 6, (0.0, 255.0, 128.0, 255.0, 128.0, 255.0))

        def convert(a, page=None):  # (one page or several: the same conversion)
            a = np.asarray(a)
            f = a[..., :3].astype(np.float64)
            y = (f[..., 0] - rbw[0]) * 255 / ((rbw[1] - rbw[0]) or 1)
            cb = (f[..., 1] - rbw[2]) * 127 / ((rbw[3] - rbw[2]) or 1)
            cr = (f[..., 2] - rbw[4]) * 127 / ((rbw[5] - rbw[4]) or 1)
            r, b = cr * (2 - 2 * kr) + y, cb * (2 - 2 * kb) + y
            g = (y - kb * b - kr * r) / kg
            out = np.clip(np.round(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8)
            return np.concatenate([out, a[..., 3:4]], -1) if a.shape[-1] > 3 else out
        return shape, dtype, convert
    raise refuse("which is not read here")


def _tiff_members(path: Path, tf) -> list:
    """The series read as the image: every series when they have one shape and dtype (frames written one by
    one, ``imwrite(..., append=True)``; positions of an OME-TIFF), stacked along a new first axis; else
    the first, with a warning naming the series (never silently cut). Reduced-resolution and mask pages
    (previews of an image, not frames) are left out."""
    import warnings

    first = tf.series[0]
    others = [s for s in tf.series[1:] if not (int(getattr(s.keyframe, "subfiletype", 0) or 0) & 5)]
    group = [first] + others
    if len(group) == 1:
        return group

    def key(s):
        k = s.keyframe
        return (tuple(s.shape), np.dtype(s.dtype), int(k.photometric))

    if all(key(s) == key(first) for s in group):
        return group
    shapes: dict = {}
    for s in group:
        d = f"{tuple(s.shape)} {np.dtype(s.dtype)}"
        shapes[d] = shapes.get(d, 0) + 1
    told = ", ".join(f"{d}" + (f" x {k}" if k > 1 else "") for d, k in list(shapes.items())[:6])
    warnings.warn(f"{path}: its {len(group)} series have different shapes or dtypes ({told}"
                  f"{', ...' if len(shapes) > 6 else ''}) and cannot be read as one stack: only the first series "
                  f"{tuple(first.shape)} is read", stacklevel=4)
    return [first]


class _TiffPages:
    """Pages of a TIFF file read one at a time (for a lazy stack): the file stays open while this object
    lives, its reads serialised; ``read(i)`` is page ``i`` as an array, converted by ``convert``. It
    pickles as its absolute path (a worker opens the file itself, whatever its working folder; a worker
    that cannot reach the file says so)."""

    def __init__(self, path: Path, convert=None) -> None:
        import threading

        self.path, self.convert = Path(path).absolute(), convert
        self._tf = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"path": self.path, "convert": self.convert}

    def __setstate__(self, state) -> None:
        self.__init__(state["path"], state["convert"])

    def read(self, i: int) -> np.ndarray:
        import tifffile

        try:
            with self._lock, quiet_logger("tifffile", logging.CRITICAL):
                if self._tf is None:
                    if not self.path.is_file():
                        raise FileNotFoundError(self.path)
                    self._tf = tifffile.TiffFile(self.path)
                a = self._tf.pages[i].asarray()
            return self.convert(a, i) if self.convert is not None else a
        except FileNotFoundError:
            import socket

            raise ImageReadError(f"{self.path}: the input file is not there on {socket.gethostname()} (working "
                                 f"folder {os.getcwd()}); every dask worker must reach the input at this path (a "
                                 "shared file system)") from None
        except MemoryError:
            raise ImageReadError(out_of_memory(f"{self.path} (page {i})")) from None
        except (tifffile.TiffFileError, ValueError, OSError, EOFError, IndexError, KeyError, RuntimeError) as e:
            raise ImageReadError(f"{self.path}: not a readable TIFF file: page {i} is corrupt or truncated "
                                 f"({e})") from None

    def __del__(self) -> None:
        tf, self._tf = getattr(self, "_tf", None), None
        if tf is not None:
            with contextlib.suppress(Exception):
                tf.close()


def _lazy_tiff(path: Path, pages: list[int], page_shape: tuple, dtype, shape: tuple, convert):
    """A dask array of ``shape`` read page by page (one chunk per page): memory does not grow with the
    number of pages, whatever the compression."""
    import dask
    import dask.array as da

    reader = _TiffPages(path, convert)
    read = dask.delayed(reader.read, pure=False)
    blocks = [da.from_delayed(read(i), shape=page_shape, dtype=dtype) for i in pages]
    return da.stack(blocks).reshape(shape)


def _tiff_channels(path: Path, page, axes: str, shape: tuple, channel, imagej: bool = False) -> tuple[int, int] | None:
    """The channel axis of a TIFF read as ``shape`` (``axes``, one letter per axis, tifffile's) and the
    channel ``channel`` picks on it: ``(axis, index)``, or None when none is picked. A channel axis is ``C``
    (ImageJ, OME-TIFF: also what tifffile names the first axis of a z-stack saved without axes, ImageJ's
    ``CYX`` or OME's ``ZCYX``), or the samples ``S`` of a grey page (MINISBLACK / MINISWHITE) holding more
    than one band besides alpha. Without ``channel``, a ``C`` axis is read as slices of the stack, with a
    warning saying how to pick one channel; several grey samples per pixel are refused
    (:class:`ImageReadError`): they are no stack. ``channel`` (an index) picks one (``channel`` for a file
    without a channel axis of more than one entry: refused)."""
    import warnings

    pm = _tiff_pm(page, imagej)
    found = [k for k, a in enumerate(axes) if shape[k] > 1 and (a == "C" or (
        a == "S" and pm in (0, 1) and int(page.samplesperpixel) - _tiff_alpha(page) > 1))]
    if not found:
        if channel is not None:
            raise ImageReadError(f"{path}: channel={channel} was given, but it has no channel axis (its axes are "
                                 f"{axes})")
        return None
    if len(found) > 1:
        raise ImageReadError(f"{path}: it has {len(found)} channel axes (its axes are {axes}); one grey channel "
                             "is colourised at a time: save that channel as its own file")
    k, n = found[0], shape[found[0]]
    if channel is None and axes[k] == "C":
        warnings.warn(f"{path}: it has {n} channels along C (its axes are {axes}); they are colourised as slices "
                      f"of a stack, as napari shows them; to colourise one channel alone, pick it with channel=K (K "
                      f"from 0 to {n - 1})", stacklevel=4)
        return None
    if channel is None:
        raise ImageReadError(f"{path}: it has {n} channels (its axes are {axes}, {axes[k]} the channels); one grey "
                             f"channel is colourised at a time, never the channels together: pick one with "
                             f"channel=K (K from 0 to {n - 1}), or save that channel as its own file")
    if not str(channel).isdigit() or int(channel) >= n:
        raise ImageReadError(f"{path}: channel={channel} does not exist: it has {n} channels, 0 to {n - 1} (a "
                             "TIFF's channels are picked by index)")
    return k, int(channel)


def _tiff_colour(page, axes: str, shape: tuple, imagej: bool = False) -> bool | None:
    """Whether a TIFF read as ``shape`` (``axes``) says its last axis is colour (see :func:`stores_colour`)."""
    pm = _tiff_pm(page, imagej)
    if pm in (3, 5, 6):  # palette (not ImageJ's), CMYK, YCbCr: read as RGB
        return True
    if pm == 2:  # RGB; separate planes (3, H, W) were tifffile's default for any such array: not its word
        return None if int(page.planarconfig) == 2 and int(page.samplesperpixel) > 1 else True
    if _tiff_alpha(page):
        return None  # grey + alpha
    if len(shape) == 3 and shape[0] in (3, 4) and axes[0] not in "ZT":
        return None  # 3 or 4 grey pages, not said to be slices: perhaps colour planes (the layout warns)
    return False


def _read_tiff(path: Path, probe: bool = False, channel=None):
    """A TIFF as an array: every series of one shape stacked (else the first, with a warning), the
    photometric interpretation applied (MINISWHITE inverted, PALETTE through each page's colormap - an
    ImageJ file's palette is a display LUT: its grey indices are read -, CMYK and YCbCr to RGB), a ``C``
    axis read as slices with a warning unless ``channel`` picks one, several grey samples per pixel refused
    unless it does (:func:`_tiff_channels`). Uncompressed single series are memory-mapped; other stacks are
    read page by page (a dask array); a single compressed page is decoded. ``probe``: ``(shape, dtype,
    colour)`` instead, ``colour`` as :func:`stores_colour` says."""
    import tifffile

    # a damaged file is reported once, by us, not logged on stderr too
    with quiet_logger("tifffile", logging.CRITICAL):
        try:
            with tifffile.TiffFile(path) as tf:
                if not tf.series:
                    raise ImageReadError(f"{path}: the TIFF file holds no image")
                members = _tiff_members(path, tf)
                s, key = members[0], members[0].keyframe
                check_pixels(path, (int(key.imagelength), int(key.imagewidth)))
                for m in members:
                    _tiff_codec_check(path, m.keyframe)
                page_shape = tuple(int(n) for n in key.shape)
                imagej = bool(tf.is_imagej)
                out_page, dtype, convert = _tiff_photometric(path, key, imagej)
                sshape = tuple(int(n) for n in s.shape)
                if convert is not None and sshape[len(sshape) - len(page_shape):] != page_shape:
                    raise ImageReadError(f"{path}: its series of shape {sshape} is not made of whole pages of "
                                         f"{page_shape}: its photometric interpretation cannot be applied here")
                pages = None  # (the pages' indices: listed when needed, not to probe a long stack)
                if convert is not None and _tiff_pm(key, imagej) == 3:
                    pages = _page_indices(members)
                    if len(pages) > 1:  # (each page may carry its own colormap)
                        convert, dtype = _page_palettes(path, tf, key, pages, page_shape, sshape, members,
                                                        convert, dtype)
                stack = ((len(members),) if len(members) > 1 else ()) + sshape[:len(sshape) - len(page_shape)]
                shape = stack + (out_page if convert is not None else sshape[len(sshape) - len(page_shape):])
                if convert is None:
                    shape, dtype = ((len(members),) if len(members) > 1 else ()) + sshape, np.dtype(s.dtype)
                axes = ("I" if len(members) > 1 else "") + str(s.axes)
                axes += "S" * (len(shape) - len(axes))  # (a palette's colours)
                pick, full = _tiff_channels(path, key, axes, shape, channel, imagej), shape
                if pick is not None:
                    shape, axes = shape[:pick[0]] + shape[pick[0] + 1:], axes[:pick[0]] + axes[pick[0] + 1:]
                if probe:
                    return shape, dtype, _tiff_colour(key, axes, shape, imagej)
                a = _read_tiff_pixels(path, tf, members, s, pages if pages is not None else _page_indices(members),
                                      page_shape, out_page, dtype, convert, sshape, full)
                return a if pick is None else a[(slice(None),) * pick[0] + (pick[1],)]
        except ImageReadError:
            raise
        except (tifffile.TiffFileError, ValueError, OSError, EOFError, IndexError, KeyError, RuntimeError) as e:
            if "imagecodecs" in str(e):
                raise ImageReadError(_codec_message(path, None, str(e))) from None
            raise ImageReadError(f"{path}: not a readable TIFF file: corrupt or truncated ({e})") from None


def _page_indices(members) -> list:
    """The indices in the file of the pages of ``members`` (series), in order."""
    return [p.index for m in members for p in m.pages if p is not None]


def _page_palettes(path: Path, tf, key, pages: list, page_shape: tuple, sshape: tuple, members, convert, dtype):
    """``(convert, dtype)`` for the palette pages ``pages``: ``convert`` (the keyframe's colormap) when every
    page carries the keyframe's colormap, else a :class:`_PagePalettes` (each page through its own). Read from
    the pages' tags; no pixel is decoded."""
    first = _palette_lut(key.colormap)
    luts = {}
    for i in pages:
        cmap = tf.pages.get(i).colormap
        if cmap is None:
            raise ImageReadError(f"{path}: its pixels are stored as PALETTE (TIFF photometric interpretation 3), "
                                 f"page {i} without a colormap that can be applied: save it as greyscale or RGB")
        luts[i] = _palette_lut(cmap)
    if all(lut.shape == first.shape and np.array_equal(lut, first) for lut in luts.values()):
        return convert, dtype
    if len(pages) * int(np.prod(page_shape)) != int(np.prod(sshape)) * len(members):
        raise ImageReadError(f"{path}: its palette pages carry different colormaps and do not make whole slices "
                             "of its series: they cannot be converted here; save it as RGB")
    per = _PagePalettes(luts, pages, page_shape)
    return per, per.dtype


def _read_tiff_pixels(path: Path, tf, members, s, pages, page_shape, out_page, dtype, convert, sshape, shape):
    """The pixels of :func:`_read_tiff`'s members (series) made of ``pages`` (their indices), of ``shape``
    (before a channel is picked)."""
    import tifffile

    per_page = int(np.prod(page_shape))
    whole = len(pages) * per_page == int(np.prod(sshape)) * len(members)
    if len(members) == 1 and convert is None:
        try:  # uncompressed, contiguous: read lazily, slice by slice
            return tifffile.memmap(path, mode="r")
        except (ValueError, OSError, tifffile.TiffFileError):
            pass
    if len(pages) > 1 and whole:
        return _lazy_tiff(path, pages, out_page if convert is not None else page_shape, dtype, shape, convert)
    a = np.stack([m.asarray() for m in members]) if len(members) > 1 else s.asarray()
    return convert(a) if convert is not None else a


def _read_npy(path: Path, probe: bool = False):
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise ImageReadError(f"{path}: not a .npy file (an array saved with numpy.save)")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e) or "object" in str(e):
            raise ImageReadError(f"{path}: the array holds Python objects, not numbers") from None
        raise ImageReadError(f"{path}: not a readable .npy array: corrupt or truncated ({e})") from None
    except (OSError, EOFError) as e:
        raise ImageReadError(f"{path}: not a readable .npy array: corrupt or truncated ({e})") from None
    if not isinstance(a, np.ndarray):
        raise ImageReadError(f"{path}: holds several arrays (an .npz archive?), not one image")
    if a.ndim >= 2:  # the 2-D image (slice) as for other files: (..., H, W), or (..., H, W, C) with C <= 4
        check_pixels(path, a.shape[-3:-1] if a.ndim >= 3 and a.shape[-1] <= 4 else a.shape[-2:], "array")
    if probe:
        return tuple(a.shape), a.dtype
    return a


def is_image_like(x) -> bool:
    """An image as a guide may be given: an array (numpy, torch, dask, zarr: anything with
    ``__array__``) or an image file's path (a list of plain numbers is not one: it is one image)."""
    return isinstance(x, (np.ndarray, str, os.PathLike)) or hasattr(x, "__array__") or hasattr(x, "detach")


def _no_channels(path: Path, channel) -> None:
    if channel is not None:
        raise ImageReadError(f"{path}: channel={channel} was given, but it has no channel axis (channels are "
                             "picked in TIFF files whose axes name them, such as ImageJ's CYX)")


def read_image(path: str | Path, channel: int | str | None = None) -> np.ndarray:
    """Read an image or stack as an array, keeping its dtype. Raises :class:`ImageReadError`.

    TIFF and ``.npy`` files are memory-mapped when possible (read-only): slices are read when used.
    A TIFF whose axes hold ``C`` (as ImageJ and OME-TIFF write channels, and as tifffile names the
    first axis of a z-stack saved without axes) is read with the C axis as slices of the stack, with a
    warning, unless ``channel`` (an index) picks one channel; several grey samples per pixel are
    refused unless ``channel`` picks one.
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(path, channel=channel)
        _no_channels(path, channel)
        if suffix == ".npy":
            return _read_npy(path)
        return _read_pil(path)
    except MemoryError:  # (a bare MemoryError has no message: never an empty "error: ")
        raise ImageReadError(out_of_memory(path)) from None


def probe_layout(path: str | Path, channel: int | str | None = None) -> tuple[tuple[int, ...], np.dtype, bool | None]:
    """``(shape, dtype, colour)`` of an image file as :func:`read_image` reads it, from its header where
    possible (no pixels read; a multi-frame file is decoded, bounded as for reading): :func:`probe_image`
    and :func:`stores_colour` in one reading of the file."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(path, probe=True, channel=channel)
        _no_channels(path, channel)
        if suffix == ".npy":
            return (*_read_npy(path, probe=True), None)
        return _probe_pil(path)
    except MemoryError:
        raise ImageReadError(out_of_memory(path)) from None


def probe_image(path: str | Path, channel: int | str | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of an image file as :func:`read_image` reads it, from its header where
    possible (no pixels read)."""
    return probe_layout(path, channel)[:2]


def stores_colour(path: str | Path, channel: int | str | None = None) -> bool | None:
    """Whether an image file says that the last axis of what :func:`read_image` gives is colour: True
    for colour pixels (Pillow's RGB, RGBA, palette, CMYK...; TIFF photometric RGB, palette, CMYK,
    YCbCr), False for grey ones (Pillow's L, I;16...; TIFF MINISBLACK / MINISWHITE pages), None when
    the file does not say: ``.npy``, grey + alpha, a TIFF's RGB in separate planes ``(3, H, W)``
    (tifffile's default for any such array until 2022), 3 or 4 grey TIFF pages not named slices (colour
    planes?), multi-frame files that are not colour frames. A target's shape alone cannot tell a
    3 x 50 RGB strip from 3 slices of 50 x 3, nor a stack of RGB images from a 4-D grey stack; what the
    file says can (:func:`probe_layout`)."""
    return probe_layout(path, channel)[2]


def out_of_memory(path) -> str:
    """The message for a MemoryError while reading ``path`` (Python's own has no text)."""
    return (f"{path}: out of memory reading it (the image is larger than the memory free here); free some "
            "memory, or give a smaller image or a stack of fewer slices")


# --------------------------------------------------------------------------- writing
def default_dtype(suffix: str) -> str:
    """The output dtype used when none is asked for: uint8 for PNG/JPEG, uint16 for TIFF, float32 for .npy."""
    suffix = suffix.lower()
    return "uint16" if suffix in TIFF_SUFFIXES else "float32" if suffix == ".npy" else "uint8"


def check_output_format(path: str | Path, stack: bool, dtype: str | None = None) -> str:
    """Check that ``path``'s type can hold the result; returns the dtype to write.

    Raises :class:`ImageWriteError` with what to use instead.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise ImageWriteError(f"{path}: unknown output type {suffix or '(no suffix)'!r}: use .png, .jpg, .tif or .npy")
    if stack and suffix not in STACK_SUFFIXES:
        raise ImageWriteError(f"{path}: a stack cannot be written as {suffix} (one 2-D image per file); "
                              "use .tif (or .npy)")
    dtype = dtype or default_dtype(suffix)
    if dtype not in DTYPES:
        raise ImageWriteError(f"{path}: unknown output dtype {dtype!r}: use uint8, uint16 or float32")
    if suffix in PLAIN_SUFFIXES and dtype != "uint8":
        raise ImageWriteError(f"{path}: {suffix} files are written 8-bit; use .tif for {dtype}")
    return dtype


def to_output_dtype(rgb: np.ndarray, dtype: str) -> np.ndarray:
    """Float RGB in [0, 1] -> the output dtype (rounded, clipped); NaN/inf refused (never written as black)."""
    if np.asarray(rgb).dtype.kind == "f" and not np.isfinite(rgb).all():
        raise ImageWriteError("the colours to write hold NaN or infinite values (the model's output is not a "
                              "valid image): nothing of it is written")
    if dtype == "float32":
        return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)
    top = 255.0 if dtype == "uint8" else 65535.0
    return np.round(np.clip(rgb, 0.0, 1.0) * top).astype(dtype)


#: where a note (the provenance record) is kept in an image file: the PNG text key, the key in TIFF's JSON description
PROVENANCE_KEY = "napari-colorize"
_JPEG_COMMENT_MAX = 65000  # (a JPEG comment segment holds at most 65533 bytes)


def can_embed(path: str | Path, text: str) -> bool:
    """Whether ``path``'s format keeps a note of this length inside the file (PNG, TIFF, JPEG up to
    ~64 kB; not .npy: use a sidecar)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return len(text.encode("utf-8")) <= _JPEG_COMMENT_MAX
    return suffix in TIFF_SUFFIXES or suffix == ".png"


def read_embedded_text(path: str | Path) -> str | None:
    """The note :class:`StackWriter` kept in an image file (``text=``), or None when it has none.
    Nothing but the file's metadata is read."""
    path = Path(path)
    suffix = path.suffix.lower()
    _check_file(path)
    if suffix in TIFF_SUFFIXES:
        import json

        import tifffile

        with quiet_logger("tifffile", logging.ERROR), tifffile.TiffFile(path) as tif:
            desc = tif.pages[0].description if len(tif.pages) else ""
        try:
            meta = json.loads(desc)
        except ValueError:
            return None
        value = meta.get(PROVENANCE_KEY) if isinstance(meta, dict) else None
        return value if isinstance(value, str) else None
    if suffix in (".png", ".jpg", ".jpeg"):
        with _pil_opened(path) as im:
            if suffix == ".png":  # (a text chunk before the pixels is in ``info``; one after them in ``text``)
                value = im.info.get(PROVENANCE_KEY) or getattr(im, "text", {}).get(PROVENANCE_KEY)
            else:
                value = im.info.get("comment")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None
    return None


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.stem}.part-{os.getpid()}{path.suffix}")


class StackWriter:
    """Write a colourised image or stack ``stack_shape + (H, W, 3)`` one 2-D slice at a time.

    ``with StackWriter(path, shape) as w: w[index] = rgb_slice``. TIFF and ``.npy`` files are
    created at their full size on disk (the free space checked first, the blocks reserved) and
    written one slice at a time, so only one slice is in memory; PNG/JPEG take one 2-D image. A
    full disk is a :class:`DiskFullError` ("not enough space on ... for ..."), never a crash. The file
    appears under ``path`` only when :meth:`close` completes; on an error (or without close) the
    temporary file is removed and an existing ``path`` is left untouched.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: str | None = None, grey: bool = False,
                 text: str | None = None) -> None:
        self.path = Path(path)
        # ``text``: a note kept in the file (the provenance): PNG text chunk, JPEG comment, TIFF description
        self.text = text if text and can_embed(self.path, text) else None
        self.shape = tuple(int(s) for s in shape)
        self.grey = bool(grey)  # grey: ``stack_shape + (H, W)`` values in [0, 1] (a confidence map)
        self._nd = 2 if self.grey else 3  # axes of one 2-D slice
        if self.grey and len(self.shape) < 2:
            raise ImageWriteError(f"{self.path}: expected a grey image (..., H, W), got shape {self.shape}")
        if not self.grey and (len(self.shape) < 3 or self.shape[-1] != 3):
            raise ImageWriteError(f"{self.path}: expected an RGB image (..., H, W, 3), got shape {self.shape}")
        self.dtype = check_output_format(self.path, len(self.shape) > self._nd, dtype)
        self.suffix = self.path.suffix.lower()
        self.tmp = _temp_name(self.path)
        self._done = False
        self._data: np.ndarray | None = None
        self._offset = 0
        if self.suffix not in STACK_SUFFIXES:
            self._data = np.zeros(self.shape, self.dtype)
            return
        nbytes = int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize
        check_free_space(self.path, nbytes + 2**16)  # (the header: a few kB)
        try:
            if self.suffix in TIFF_SUFFIXES:
                import tifffile

                m = tifffile.memmap(self.tmp, shape=self.shape, dtype=self.dtype,
                                    photometric="minisblack" if self.grey else "rgb",
                                    metadata={PROVENANCE_KEY: self.text} if self.text else {},
                                    bigtiff=nbytes > 2**32 - 2**25)
            else:
                m = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype, shape=self.shape)
            self._offset = int(m.offset)  # the pixels are one contiguous block from here
            del m
            # the file's blocks reserved now: a disk that fills up fails here, not in a write (SIGBUS)
            preallocate(self.tmp, os.path.getsize(self.tmp), self.path)
        except BaseException as e:
            self.abort()
            if is_disk_full(e):
                raise DiskFullError(disk_full_message(self.path, nbytes)) from None
            raise

    def __setitem__(self, index, rgb: np.ndarray) -> None:
        """Write one 2-D RGB slice (``index``: its position in the stack axes; ``...`` for a 2-D image)."""
        value = to_output_dtype(np.asarray(rgb), self.dtype)
        if self._data is not None:
            self._data[index] = value
            return
        # map only this slice, write it and unmap it: the file's pages do not accumulate in our memory
        stack_shape, slice_shape = self.shape[:-self._nd], self.shape[-self._nd:]
        if index is Ellipsis or (isinstance(index, tuple) and len(index) == 0):
            if len(stack_shape) != 0:
                raise IndexError("a stack is written one slice at a time")
            i = 0
        else:
            i = int(np.ravel_multi_index(tuple(np.atleast_1d(index)), stack_shape))
        nbytes = int(np.prod(slice_shape)) * np.dtype(self.dtype).itemsize
        # written with a plain write, not through a memory map: a full disk is an error (ENOSPC), not SIGBUS
        data = np.ascontiguousarray(value, dtype=np.dtype(self.dtype).newbyteorder("="))
        try:
            with open(self.tmp, "r+b") as f:
                f.seek(self._offset + i * nbytes)
                f.write(memoryview(data).cast("B"))
        except OSError as e:
            if is_disk_full(e):
                self.abort()
                raise DiskFullError(disk_full_message(self.path, int(np.prod(self.shape)) *
                                                      np.dtype(self.dtype).itemsize)) from None
            raise

    def close(self) -> Path:
        """Finish the file and move it to ``path`` (replacing an existing file only now)."""
        try:
            if self.suffix in PLAIN_SUFFIXES:
                from PIL import Image

                jpeg = self.suffix in (".jpg", ".jpeg")
                kw: dict = {"quality": 95} if jpeg else {}
                if self.text and jpeg:
                    kw["comment"] = self.text.encode("utf-8")
                elif self.text:
                    from PIL.PngImagePlugin import PngInfo

                    kw["pnginfo"] = PngInfo()
                    kw["pnginfo"].add_text(PROVENANCE_KEY, self.text, zip=True)
                Image.fromarray(self._data).save(self.tmp, format="JPEG" if jpeg else "PNG", **kw)
            self._data = None
            os.replace(self.tmp, self.path)
            self._done = True
        except OSError as e:
            if is_disk_full(e):
                raise DiskFullError(disk_full_message(self.path)) from None
            raise
        finally:
            if not self._done:
                self.abort()
        return self.path

    def abort(self) -> None:
        """Drop the partial file (an existing ``path`` is not touched)."""
        self._data = None
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "StackWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_image(path: str | Path, rgb: np.ndarray, dtype: str | None = None, text: str | None = None) -> Path:
    """Write float RGB in [0, 1] ``(..., H, W, 3)``: PNG/JPEG 8-bit; TIFF and .npy as ``dtype``
    (default: uint16 for TIFF, float32 for .npy). The folder is created when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.asarray(rgb)
    with StackWriter(path, rgb.shape, dtype, text=text) as w:
        if rgb.ndim == 3:
            w[...] = rgb
        else:
            for idx in np.ndindex(*rgb.shape[:-3]):
                w[idx] = rgb[idx]
    return path
