"""training.prepare_data on small inputs made here: no network, no downloads."""
import csv
import io
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import prepare_data as P

ROOT = Path(__file__).resolve().parents[1]


def jpeg(w, h, colour=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png(w, h, colour=(30, 160, 60), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).convert(mode).save(buf, "PNG")
    return buf.getvalue()


# ------------------------------------------------------------- .edj JPEGs
def test_largest_jpeg_between_junk_bytes():
    junk = bytes(range(256)) * 3
    broken = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x13" * 50  # a start marker, no image
    blob = junk + jpeg(32, 16) + junk + broken + jpeg(64, 48, (20, 40, 220)) + junk + jpeg(40, 40) + junk[:100]
    im = P.largest_jpeg(blob)
    assert im.size == (64, 48)
    r, g, b = np.asarray(im.convert("RGB")).reshape(-1, 3).mean(0)
    assert b > 180 and r < 60  # the blue one: decoded, not just its header read
    assert P.largest_jpeg(junk + broken + junk) is None
    assert P.largest_jpeg(junk) is None


def test_enlightenment_keeps_the_listed_photos(tmp_path):
    bg = tmp_path / "root/usr/share/enlightenment/data/backgrounds"
    bg.mkdir(parents=True)
    (bg / "Bamboo.edj").write_bytes(b"EET" * 100 + jpeg(48, 27) + b"\x00" * 64 + jpeg(96, 54) + b"\x01" * 32)
    (bg / "Dunes.edj").write_bytes(jpeg(96, 54))  # a render: not listed
    c = P.Collector(tmp_path / "root", tmp_path / "photos")
    c.enlightenment()
    assert [(Path(r[1]).name, r[2], r[3], r[4]) for r in c.rows] == [("Bamboo.jpg", 96, 54, "photo")]
    c2 = P.Collector(tmp_path / "root", tmp_path / "photos")  # a second run reads the written file
    c2.enlightenment()
    assert c2.rows == c.rows


def test_tuxtype_photos(tmp_path):
    d = tmp_path / "root/usr/share/tuxtype/images"
    (d / "backgrounds").mkdir(parents=True)
    for n in ["kcas0.jpg", "kcas11.jpg", "hidden.jpg", "title.jpg", "backgrounds/0.jpg"]:
        (d / n).write_bytes(jpeg(20, 16))
    c = P.Collector(tmp_path / "root", tmp_path / "photos")
    c.tuxtype()
    assert sorted(Path(r[1]).name for r in c.rows) == ["hidden.jpg", "kcas0.jpg", "kcas11.jpg"]


# ------------------------------------------------------------------- mvtb
MVTB_NAMES = (["flowers1.png", "flowers2.png", "flowers8.png", "butterfly.jpg", "lena.png", "monalisa.png",
               "wally.png", "wheres-wally.png", "apriltag12.png", "arucoboard.png", "calibration/left01.jpg",
               "multiblobs.png", "adelson.png", "scale-space.png", "yellowtargets.png", "tags.png", "5points.png",
               "segmentation.png", "fisheye_target.png", "58060.png", "church.jpg", "church.png", "eiffel-1.png",
               "eiffel-2.png", "rocks2-l.png", "rocks2-r.png", "castle.png", "timestamps.dat", "__init__.py",
               "traffic_sequence.mp4", "notre-dame.png", "street.png"]
              + [f"campus/P10704{i:02d}.png" for i in range(91, 100) if i != 92] + ["campus/holdout/P1070492.png"])


def test_mvtb_select_leaves_out_and_thins_sequences():
    grey = {"castle.png", "street.png"}
    kept = dict(P.mvtb_select(MVTB_NAMES, lambda n: n not in grey))
    assert not {"butterfly.jpg", "lena.png", "monalisa.png", "wally.png", "wheres-wally.png", "apriltag12.png",
                "arucoboard.png", "calibration/left01.jpg", "multiblobs.png", "adelson.png", "scale-space.png",
                "yellowtargets.png", "tags.png", "5points.png", "segmentation.png", "fisheye_target.png",
                "58060.png", "church.jpg", "castle.png", "street.png", "timestamps.dat"} & set(kept)
    assert {"flowers2.png", "notre-dame.png", "church.png", "rocks2-l.png"} <= set(kept)
    assert "rocks2-r.png" not in kept  # a stereo pair keeps one view
    assert kept["flowers1.png"] == kept["flowers8.png"] == "flowers-pink-tulips"  # one bed, one scene
    assert kept["eiffel-1.png"] == kept["eiffel-2.png"] == "eiffel"
    campus = sorted(n for n, s in kept.items() if s == "campus")
    # 10 frames (the holdout one in its place by number) -> 5 evenly spaced, first and last included
    assert len(campus) == 5 and "campus/P1070491.png" in campus and "campus/P1070499.png" in campus
    assert "campus/holdout/P1070492.png" not in campus
    assert len({s for s in kept.values()}) == len(kept) - 1 - 1 - 4  # flowers, eiffel and campus files share scenes


def test_is_colour_image():
    assert P.is_colour_image(Image.new("RGB", (8, 8), (200, 30, 30)))
    assert not P.is_colour_image(Image.new("RGB", (8, 8), (90, 90, 90)))
    assert not P.is_colour_image(Image.new("L", (8, 8), 90))
    assert not P.is_colour_image(Image.new("1", (8, 8), 1))


def test_mvtb_reads_the_wheel_as_a_zip(tmp_path):
    whl = tmp_path / "mvtb_data-1.6.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("mvtb_data-1.6.1.dist-info/METADATA", "Name: mvtb-data\n")
        for n in ["flowers1.png", "flowers8.png", "lena.png", "rocks2-l.png", "rocks2-r.png", "tomato_14.png"]:
            z.writestr(f"mvtbdata/images/{n}", png(24, 16))
        z.writestr("mvtbdata/images/castle.png", png(24, 16, mode="L"))  # grey: nothing to learn from
        z.writestr("mvtbdata/images/campus/P1070491.png", png(24, 16, mode="RGBA"))
    c = P.Collector(tmp_path / "root", tmp_path / "photos")
    c.mvtb(whl)
    got = {Path(r[1]).name: r[5] for r in c.rows}
    assert got == {"campus__P1070491.jpg": "campus", "flowers1.jpg": "flowers-pink-tulips",
                   "flowers8.jpg": "flowers-pink-tulips", "rocks2-l.jpg": "rocks2", "tomato_14.jpg": "tomato"}
    assert all(r[2:5] == [24, 16, "photo"] for r in c.rows)
    assert Image.open(tmp_path / "photos/mvtb-data/campus__P1070491.jpg").mode == "RGB"


def test_skimage_photos_from_a_data_folder(tmp_path):
    for f in P.SKIMAGE_PHOTOS:
        (tmp_path / f).write_bytes(png(30, 20))
    (tmp_path / "camera.png").write_bytes(png(30, 20))
    c = P.Collector(tmp_path / "root", tmp_path / "photos")
    c.skimage(tmp_path)
    got = {Path(r[1]).stem: r[5] for r in c.rows}
    assert set(got) == {"astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right"}
    assert got["motorcycle_left"] == got["motorcycle_right"] == "motorcycle"


# ------------------------------------------------------------------ split
def old_split_rows(rows, val_fraction=0.1, seed=0):
    """prepare_data.split_rows as it was when the shipped weights were trained (verbatim)."""
    rng = random.Random(seed)
    by_source = {}
    for r in rows:
        by_source.setdefault(r[0], []).append(r)
    out = []
    for source in sorted(by_source):
        group = sorted(by_source[source], key=lambda r: r[1])
        rng.shuffle(group)
        n_val = max(1, round(val_fraction * len(group))) if len(group) > 2 else 0
        out += [r + ["val" if i < n_val else "train"] for i, r in enumerate(group)]
    return out


ORIGINAL_COUNTS = {"gcompris-qt-data": 276, "tuxpaint-stamps-default": 309, "mate-backgrounds": 12,
                   "lomiri-wallpapers-16.04": 13, "lomiri-wallpapers-20.04": 1, "plasma-workspace-wallpapers": 10,
                   "lxqt-themes": 10}


def original_rows():
    return [[s, f"/d/photos/{s}/{i:03d}.jpg", 100, 80, "photo"] for s, n in ORIGINAL_COUNTS.items()
            for i in range(n)]


def test_original_sources_split_is_unchanged_by_the_new_sources():
    base = original_rows()
    before = {r[1]: r[5] for r in old_split_rows([list(r) for r in base])}
    assert {r[1]: r[5] for r in P.split_rows([list(r) for r in base])} == before
    new = [[s, f"/d/photos/{s}/{i:02d}.jpg", 100, 80, "photo", f"scene{i // 3}"]
           for s in ["enlightenment-data", "mvtb-data", "scikit-image", "tuxtype-data", "aaa-first"] for i in range(12)]
    mixed = P.split_rows([r + [Path(r[1]).stem] for r in base] + new)
    assert {r[1]: r[5] for r in mixed if r[0] in ORIGINAL_COUNTS} == before
    # and a new source's split does not depend on which other new sources are there
    alone = P.split_rows([r for r in new if r[0] == "mvtb-data"])
    assert {r[1]: r[5] for r in alone} == {r[1]: r[5] for r in mixed if r[0] == "mvtb-data"}


def test_shipped_data_split_is_unchanged():
    """Against a prepared manifest (data/, or the folder in $PREPARED_DATA), when there is one."""
    manifest = Path(os.environ.get("PREPARED_DATA", ROOT / "data")) / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"no {manifest} here")
    with open(manifest, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] in ORIGINAL_COUNTS]
    again = P.split_rows([[r["source"], r["path"], r["width"], r["height"], r["kind"]] for r in rows])
    assert {r[1]: r[5] for r in again} == {r["path"]: r["split"] for r in rows}


def test_split_by_scene():
    rows = [["mvtb-data", f"/p/{i:02d}.jpg", 1, 1, "photo", f"s{i // 4}"] for i in range(40)]  # 10 scenes
    rows += [["scikit-image", f"/q/{n}.jpg", 1, 1, "photo", s] for n, s in
             [("a", "a"), ("c", "c"), ("m_l", "moto"), ("m_r", "moto"), ("r", "r")]]
    for seed in range(20):
        out = P.split_rows([list(r) for r in rows], 0.1, seed)
        assert all(len(r) == 7 for r in out) and [r[6] for r in out if r[0] == "mvtb-data"]
        split_of = {}
        for r in out:
            split_of.setdefault((r[0], r[6]), set()).add(r[5])
        assert all(len(v) == 1 for v in split_of.values())  # a scene never in both
        assert sum(r[5] == "val" for r in out if r[0] == "mvtb-data") == 4  # one scene of ten
        assert sum(v == {"val"} for (s, _), v in split_of.items() if s == "scikit-image") == 1


# ------------------------------------------------------------------- main
def test_main_prepares_what_it_can_and_reports_the_rest(tmp_path, monkeypatch, capsys):
    if P.skimage_data_dir() is None:
        pytest.skip("scikit-image is not installed")
    monkeypatch.setattr(P, "run", lambda cmd, **kw: False)  # no network: every download fails
    assert P.main([str(tmp_path), "--sources", "tuxtype-data,mvtb-data,scikit-image"]) == 0
    out = capsys.readouterr().out
    assert "skipped mvtb-data: pip download failed" in out and "skipped tuxtype-data: apt-get download failed" in out
    with open(tmp_path / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["source", "path", "width", "height", "kind", "split", "scene"]
    assert {r["source"] for r in rows} == {"scikit-image"} and len(rows) == 6
    assert sum(r["split"] == "val" for r in rows) in (1, 2)  # one scene of five
    assert len({r["split"] for r in rows if r["scene"] == "motorcycle"}) == 1
    sources = (tmp_path / "LICENSES" / "SOURCES.md").read_text()
    assert "scikit-image" in sources and "BSD-3-Clause" in sources
