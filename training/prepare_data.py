"""Build the training corpus from openly licensed Debian packages (no other source is reachable here).

    python training/prepare_data.py data/           # downloads the .debs, unpacks, extracts, splits

Steps (each is skipped when its output exists):

1. ``apt-get download`` the packages below into ``DATA/debs`` (no install, no dependencies);
2. ``dpkg -x`` every package into ``DATA/root``;
3. read the photographs out (GCompris keeps its photos as WebP inside Qt ``.rcc``
   resource bundles: :func:`read_rcc` is a small reader for that format) into
   ``DATA/photos/<source>/``;
4. write ``DATA/manifest.csv`` (source, path, width, height, kind, split): a fixed-seed
   validation split *by file* (10 %, at least one large wallpaper).

``kind`` is ``photo`` (full-frame photograph) or ``cutout`` (a photographed object on a
transparent background; training pastes it on a photo background).

Per-file licences are in each package's ``usr/share/doc/PKG/copyright``; the corpus is used
for training only and no image from it is redistributed.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

PACKAGES = ["gcompris-qt-data", "tuxpaint-stamps-default", "mate-backgrounds", "lomiri-wallpapers-16.04",
            "lomiri-wallpapers-20.04", "plasma-workspace-wallpapers", "lxqt-themes"]

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

    def save(self, source: str, name: str, im, kind: str) -> None:
        d = self.out / source
        d.mkdir(parents=True, exist_ok=True)
        im = im.convert("RGBA" if kind == "cutout" else "RGB")
        p = d / (name + (".png" if kind == "cutout" else ".jpg"))
        if not p.exists():
            im.save(p, quality=95) if p.suffix == ".jpg" else im.save(p)
        self.rows.append([source, str(p), im.size[0], im.size[1], kind])

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


def split_rows(rows: list[list], val_fraction: float = 0.1, seed: int = 0) -> list[list]:
    """Add a split column: validation files chosen per source with a fixed seed."""
    rng = random.Random(seed)
    by_source: dict[str, list] = {}
    for r in rows:
        by_source.setdefault(r[0], []).append(r)
    out = []
    for source in sorted(by_source):
        group = sorted(by_source[source], key=lambda r: r[1])
        rng.shuffle(group)
        n_val = max(1, round(val_fraction * len(group))) if len(group) > 2 else 0
        out += [r + ["val" if i < n_val else "train"] for i, r in enumerate(group)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="output folder (debs/, root/, photos/, manifest.csv)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    debs, root, photos = a.data / "debs", a.data / "root", a.data / "photos"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        print("downloading", " ".join(missing))
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    if not root.exists():
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    rows = split_rows(Collector(root, photos).collect(), a.val_fraction, a.seed)
    with open(a.data / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "path", "width", "height", "kind", "split"])
        w.writerows(rows)
    from collections import Counter

    counts = Counter((r[0], r[5]) for r in rows)
    for s in sorted({r[0] for r in rows}):
        print(f"{s:30s} train {counts[(s, 'train')]:4d}  val {counts[(s, 'val')]:3d}")
    print("total", len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
