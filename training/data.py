"""Training data: an in-memory image corpus with augmentation suited to a small corpus.

Sources:

* ``manifest.csv`` written by ``prepare_data.py`` (columns source, path, width, height, kind, split and scene), or
* any folder of images: flat, or one sub-folder per class (the ImageNet layout), split by file with a
  fixed seed (:func:`folder_items`).

Samples (:meth:`Corpus.render`):

* ``photo`` items: a random crop (area 35-100 % for small photos; for the large wallpapers a square
  window of random side between the output size and the short side, so one wallpaper gives
  crops at many scales), resized to the output size;
* ``cutout`` items (objects on a transparent background): scaled to 45-95 % of the output and
  pasted at a random place on a random crop of a random photo;
* horizontal flips.

Which item a sample shows (:meth:`Corpus.sample`): every item equally likely, or with ``balance`` > 0
every *source series* more equally likely (the corpus is dominated by one package's photos, and a
network trained on it learns that package's palettes: docs/MODELS.md, issue 18 item 6).

Everything is driven by an explicit ``numpy.random.Generator``, so a step's batch depends only on
(seed, step, rank): training resumes exactly without saving any sampler state.
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MAX_SIDE = 1600  # large wallpapers are kept at most this big in memory


@dataclass
class Item:
    path: str
    kind: str  # "photo" or "cutout"
    label: str  # class (sub-folder or source); "" when unknown


def source_series(source: str) -> str:
    """The series a source belongs to: the versions of one package are one series
    (``lomiri-wallpapers-16.04`` and ``-20.04``)."""
    return re.sub(r"-[0-9][0-9.]*$", "", source)


def manifest_items(manifest: str | Path, split: str) -> list[Item]:
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [Item(r["path"], r["kind"], r["source"]) for r in rows if r["split"] == split]


def folder_items(folder: str | Path, split: str, val_fraction: float = 0.1, seed: int = 0) -> list[Item]:
    """Images under ``folder`` (class = first sub-folder, if any), split by file with a fixed seed."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images under {folder}")
    rng = random.Random(seed)
    order = files[:]
    rng.shuffle(order)
    n_val = max(1, round(val_fraction * len(order)))
    chosen = set(order[:n_val]) if split == "val" else set(order[n_val:])
    out = []
    for p in files:
        if p in chosen:
            rel = p.relative_to(folder)
            out.append(Item(str(p), "photo", rel.parts[0] if len(rel.parts) > 1 else ""))
    return out


def load_items(source: str | Path, split: str) -> list[Item]:
    source = Path(source)
    return manifest_items(source, split) if source.suffix == ".csv" else folder_items(source, split)


class Corpus:
    """Decoded images in memory (RGB uint8 photos, RGBA uint8 cutouts)."""

    def __init__(self, items: list[Item]) -> None:
        Image.MAX_IMAGE_PIXELS = None
        self.items = items
        self.images: list[np.ndarray] = []
        for it in items:
            im = Image.open(it.path)
            im = im.convert("RGBA" if it.kind == "cutout" else "RGB")
            if max(im.size) > MAX_SIDE:
                s = MAX_SIDE / max(im.size)
                im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
            self.images.append(np.asarray(im))
        self.photos = [i for i, it in enumerate(items) if it.kind == "photo"]
        self._cumulative: tuple[float, np.ndarray] | None = None  # (balance, cumulative series weights)
        if not self.photos:
            raise ValueError("the corpus has no photos (needed as backgrounds for cut-outs)")

    def __len__(self) -> int:
        return len(self.items)

    def series_weights(self, balance: float) -> np.ndarray:
        """Each item's sampling probability: proportional to ``n ** -balance``, ``n`` the number of items
        of its source series (:func:`source_series`); 0: every item equally likely, 1: every series."""
        if not 0.0 <= balance <= 1.0:
            raise ValueError(f"balance must be in [0, 1], not {balance!r}")
        series = [source_series(it.label) for it in self.items]
        count = {s: series.count(s) for s in set(series)}
        w = np.asarray([count[s] ** -float(balance) for s in series])
        return w / w.sum()

    def sample(self, rng: np.random.Generator, balance: float = 0.0) -> int:
        """A random item's index (``balance``: :meth:`series_weights`; 0 draws exactly as
        ``rng.integers(len(self))``, so runs without it are unchanged)."""
        if not balance:
            return int(rng.integers(len(self)))
        cache = self._cumulative
        if cache is None or cache[0] != balance:
            self._cumulative = cache = (balance, np.cumsum(self.series_weights(balance)))
        return int(min(np.searchsorted(cache[1], rng.random(), side="right"), len(self) - 1))

    # ------------------------------------------------------------------ crops
    @staticmethod
    def _crop_photo(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        short = min(h, w)
        if short >= 3 * size:  # a large wallpaper: square windows at many scales
            side = int(rng.integers(size, short + 1))
            ch = cw = side
        else:
            area = rng.uniform(0.35, 1.0) * h * w
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            ch = int(min(h, round(np.sqrt(area / aspect))))
            cw = int(min(w, round(np.sqrt(area * aspect))))
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        crop = Image.fromarray(img[y:y + ch, x:x + cw])
        return np.asarray(crop.resize((size, size), Image.BILINEAR if max(ch, cw) < 2 * size else Image.BOX))

    def _paste_cutout(self, cut: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        bg = self._crop_photo(self.images[self.photos[int(rng.integers(len(self.photos)))]], size, rng)
        scale = rng.uniform(0.45, 0.95) * size / max(cut.shape[:2])
        nh, nw = max(1, round(cut.shape[0] * scale)), max(1, round(cut.shape[1] * scale))
        obj = np.asarray(Image.fromarray(cut).resize((nw, nh), Image.BILINEAR)).astype(np.float32) / 255
        y = int(rng.integers(0, size - nh + 1))
        x = int(rng.integers(0, size - nw + 1))
        out = bg.astype(np.float32) / 255
        a = obj[..., 3:]
        out[y:y + nh, x:x + nw] = a * obj[..., :3] + (1 - a) * out[y:y + nh, x:x + nw]
        return np.round(out * 255).astype(np.uint8)

    def render(self, index: int, size: int, rng: np.random.Generator, flip: bool | None = None) -> np.ndarray:
        """A random training view of item ``index``: RGB uint8 ``(size, size, 3)``."""
        img = self.images[index]
        out = self._paste_cutout(img, size, rng) if self.items[index].kind == "cutout" else \
            self._crop_photo(img, size, rng)
        if flip if flip is not None else rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def thumbnail(self, index: int, size: int = 224) -> np.ndarray:
        """A deterministic whole-image view (centre square; cut-outs on mid grey) for features."""
        img = self.images[index]
        if self.items[index].kind == "cutout":
            a = img[..., 3:].astype(np.float32) / 255
            img = np.round(a * img[..., :3] + (1 - a) * 128).astype(np.uint8)
        h, w = img.shape[:2]
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        return np.asarray(Image.fromarray(img[y:y + s, x:x + s]).resize((size, size), Image.BOX))


def self_reference(img: np.ndarray, rng: np.random.Generator, strong: bool = False) -> np.ndarray:
    """A geometrically distorted copy of ``img`` (flip, zoom-crop, small rotation) as its own reference.

    ``strong``: larger rotations (up to 25 degrees), crops down to 40 % of the side with another
    aspect ratio, and a shear, so that copying colour needs real correspondence, not position.
    """
    size = img.shape[0]
    im = Image.fromarray(img[:, ::-1] if rng.random() < 0.5 else img)
    fill = tuple(int(v) for v in img.reshape(-1, 3).mean(0))
    angle = 25 if strong else 10
    im = im.rotate(float(rng.uniform(-angle, angle)), resample=Image.BILINEAR, expand=False, fillcolor=fill)
    if strong:
        shear = float(rng.uniform(-0.25, 0.25))
        im = im.transform(im.size, Image.AFFINE, (1, shear, -shear * size / 2, 0, 1, 0), resample=Image.BILINEAR,
                          fillcolor=fill)
        zy, zx = rng.uniform(0.4, 0.9), rng.uniform(0.4, 0.9)
    else:
        zy = zx = rng.uniform(0.6, 0.9)
    sy, sx = round(size * zy), round(size * zx)
    y, x = int(rng.integers(0, size - sy + 1)), int(rng.integers(0, size - sx + 1))
    return np.asarray(im.crop((x, y, x + sx, y + sy)).resize((size, size), Image.BILINEAR))


def rotate_hue(rgbs: list[np.ndarray], angle: float) -> list[np.ndarray]:
    """Rotate the ab plane of uint8 RGB images by ``angle`` (radians), keeping every pixel's
    lightness exactly (out-of-gamut colours lose chroma, not lightness). Applied with one angle
    to a training target and its reference, it makes dataset colour priors useless: the right
    colour can only be read from the reference."""
    import torch

    from napari_colorize.color import lab_to_rgb_in_gamut, rgb_to_lab

    c, s = float(np.cos(angle)), float(np.sin(angle))
    out = []
    for rgb in rgbs:
        lab = rgb_to_lab(torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255)
        a, b = lab[1], lab[2]
        lab = torch.stack([lab[0], c * a - s * b, s * a + c * b])
        out.append((lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    return out
