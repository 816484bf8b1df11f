"""Render the pictures in docs/images from the real library (run from the repository root).

    python docs/make_figures.py            # every figure
    python docs/make_figures.py volume     # only docs/images/volume_cluster.png
    python docs/make_figures.py histograms # only docs/images/histograms.png (also: self, flicker)
    python docs/make_figures.py fringes runs/K.safetensors   # docs/images/fringes.png, other networks beside
    python docs/make_figures.py hints      # also: references, keyframes (issue 20's pictures)
    python docs/make_figures.py harm       # also: other, histogram_mix, companion (issue 18's validation views)

``self`` and ``histograms`` use held-out photos of the prepared corpus (``HELD_OUT``):
``python -m training.prepare_data data_all/`` first, or NAPARI_COLORIZE_DATA=path/to/manifest.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import napari_colorize as nc
from napari_colorize._sample_data import sample_pair

OUT = Path(__file__).parent / "images"


def _tile(img: np.ndarray, label: str, height: int = 240) -> Image.Image:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    if img.dtype != np.uint8:
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(img)
    im = im.resize((round(im.width * height / im.height), height), Image.LANCZOS)
    canvas = Image.new("RGB", (im.width, height + 22), "white")
    canvas.paste(im, (0, 22))
    ImageDraw.Draw(canvas).text((4, 4), label, fill="black")
    return canvas


def strip(tiles: list[Image.Image]) -> Image.Image:
    w = sum(t.width for t in tiles) + 6 * (len(tiles) - 1)
    out = Image.new("RGB", (w, max(t.height for t in tiles)), "white")
    x = 0
    for t in tiles:
        out.paste(t, (x, 0))
        x += t.width + 6
    return out


def stack_rows(rows: list[Image.Image], name: str) -> None:
    """Strips one under another, saved as ``docs/images/<name>``."""
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 6 for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + 6
    out.save(OUT / name)
    print("wrote", OUT / name)


def main() -> None:
    sample()
    self_references()
    fringes()
    histograms()
    flicker()
    volume_cluster()
    hints()
    two_references()
    keyframes()


def sample() -> None:
    """The bundled pair by every exemplar method (docs/images/sample_pair.png)."""
    OUT.mkdir(parents=True, exist_ok=True)
    grey, ref, truth = sample_pair()
    tiles = [_tile(grey, "grey target"), _tile(ref, "colour reference")]
    for name in [n for n in ("exemplar", "exemplar-plain", "warp-grey", "warp", "welsh", "reinhard") if n in nc.list_models()]:
        res = nc.colorize(name, grey, reference=ref)
        tiles.append(_tile(res.rgb, f"{name}  HIS {nc.metrics.his(res.rgb, ref):.2f}"))
    tiles.append(_tile(truth, "ground truth"))
    strip(tiles).save(OUT / "sample_pair.png")
    print("wrote", OUT / "sample_pair.png")


def volume_cluster() -> None:
    """The uint16 focus-series sample written as OME-Zarr (chunks of 2 slices), colourised into
    OME-Zarr on a two-worker dask cluster on loopback (temporal=2, a pyramid level), read back:
    a few slices of the input and of the output, and the reference."""
    import tempfile

    import zarr
    from distributed import Client, LocalCluster
    from ome_zarr.writer import write_image

    from napari_colorize._sample_data import microscopy_pair, zstack
    from napari_colorize.volume import colorize_volume

    stack = zstack()
    _, ihc = microscopy_pair()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cells.ome.zarr"
        write_image(stack, zarr.open_group(str(src), mode="w"), axes="zyx", scale_factors=[],
                    axes_units={a: "micrometer" for a in "zyx"}, storage_options={"chunks": (2,) + stack.shape[1:]})
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
            out = colorize_volume(src, Path(tmp) / "cells-colour.ome.zarr", "exemplar", reference=ihc,
                                  client=client, temporal=2, pyramid=1)
        rgb = np.moveaxis(zarr.open_group(str(out), mode="r")["0"][:], 0, -1)
    lo, hi = np.percentile(stack, [0.1, 99.9])
    tiles = [_tile(ihc, "reference (IHC)")]
    for z in (0, 4, 8, 11):
        tiles.append(_tile(np.clip((stack[z] - lo) / (hi - lo), 0, 1).astype(np.float32), f"z={z} input (uint16)"))
        tiles.append(_tile(rgb[z], f"z={z} OME-Zarr output"))
    strip(tiles).save(OUT / "volume_cluster.png")
    print("wrote", OUT / "volume_cluster.png")


def flicker() -> None:
    """Four consecutive frames of the panned photo of benchmarks/bench_flicker.py, coloured slice by
    slice and with the default temporal smoothing (motion-compensated), with each frame's ab change from the previous
    one (after undoing the pan; brighter = more flicker)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_flicker import MARGIN, STEP, ab_of, pan_sequence
    from scipy.ndimage import shift as nd_shift

    grey, truth, ref = pan_sequence()
    model = nc.load_model("exemplar", device="cpu")
    frames = range(4, 8)
    rows = []
    for label, k in (("frame by frame", 0), ("default smoothing", None), ("truth", "truth")):
        out = truth if k == "truth" else nc.colorize(model, grey, reference=ref, temporal=k, return_attention=False).rgb
        ab = ab_of(out)
        tiles = []
        for t in frames:
            back = nd_shift(ab[t], (0, 0, STEP), order=1, mode="nearest")
            change = np.abs(back - ab[t - 1]).sum(0)[MARGIN:-MARGIN, MARGIN:-MARGIN]
            tiles.append(_tile(out[t], f"{label}: frame {t}"))
            tiles.append(_tile(np.clip(change / 10.0, 0, 1).astype(np.float32),
                               f"ab change {t - 1}->{t}: {change.mean() / 2:.2f}"))
        rows.append(strip(tiles))
    stack_rows(rows, "flicker.png")


def _hist_tile(hist: np.ndarray, label: str, height: int = 240) -> Image.Image:
    """A 21 x 21 ab histogram drawn on the ab chart (a to the right, b upwards; its central 15 x 15
    bins): the colour of each bin, as strong as the bin's share of the mass (square root, so small
    bins stay visible)."""
    from napari_colorize.color import NBINS
    from napari_colorize.histogram_edit import ab_chart

    cell = 10
    chart = ab_chart(size=NBINS * cell).astype(np.float32)
    chart = chart / 255.0 if chart.max() > 1 else chart
    alpha = np.sqrt(np.asarray(hist, np.float64) / max(float(np.max(hist)), 1e-12)).T[::-1]  # rows: b from +1
    alpha = np.kron(alpha, np.ones((cell, cell)))[..., None]
    inner = slice(3 * cell, (NBINS - 3) * cell)  # the central 15 x 15 bins (|a|, |b| < 0.7): where photos' colours are
    return _tile(((1 - alpha) + alpha * chart)[inner, inner], label, height)


def histograms() -> None:
    """Two held-out grey photos, four histograms each (its own, then three of the editor's presets),
    coloured by the default histogram network and by the earlier one (histogram-plain): the colours
    follow the histogram given."""
    from skimage.color import rgb2gray

    from napari_colorize.color import histogram_from_rgb
    from napari_colorize.histogram_edit import preset

    rows = []
    for name, rgb in held_out_photos(("notre-dame.jpg", "kcas10.jpg")):
        grey = rgb2gray(rgb).astype(np.float32)
        hists = [("its own histogram", histogram_from_rgb(rgb))] + [
            (p, preset(p)) for p in ("warm (sunset)", "cool (sea and sky)", "forest")]
        for model in [m for m in ("histogram", "histogram-plain") if m in nc.list_models()]:
            tiles = [_tile(grey, f"{name} (grey) - {model}", 170)]
            for label, h in hists:
                tiles.append(_hist_tile(h, label, 170))
                tiles.append(_tile(nc.colorize(model, grey, histogram=h).rgb, model, 170))
            tiles.append(_tile(rgb, "truth", 170))
            rows.append(strip(tiles))
    stack_rows(rows, "histograms.png")


#: held-out photos for the figures: in the validation split of every corpus (no network was trained
#: on them), with permissive terms (mvtb-data: MIT; enlightenment-data: BSD-2-clause; tuxtype-data's
#: kcas photos: public domain, NOAA). `python -m training.prepare_data data_all/` writes them.
HELD_OUT = ("notre-dame.jpg", "Sunset-Clouds.jpg", "kcas10.jpg", "tomato_124.jpg")


def held_out_photos(names=HELD_OUT, long_side: int = 512) -> list[tuple[str, np.ndarray]]:
    """``(name, RGB uint8)`` of the held-out photos, from the manifest in ``$NAPARI_COLORIZE_DATA``
    (default ``data_all/manifest.csv``); checked to be in its validation split."""
    import csv
    import os

    manifest = Path(os.environ.get("NAPARI_COLORIZE_DATA", "data_all/manifest.csv"))
    if not manifest.exists():
        raise SystemExit(f"{manifest}: no prepared corpus; run `python -m training.prepare_data data_all/` "
                         "(or set NAPARI_COLORIZE_DATA to a manifest.csv) for the held-out photos")
    with open(manifest, newline="") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    out = []
    for n in names:
        r = rows.get(n)
        if r is None or r["split"] != "val":
            raise SystemExit(f"{n} is not a validation photo of {manifest}")
        im = Image.open(r["path"]).convert("RGB")
        im.thumbnail((long_side, long_side), Image.LANCZOS)
        out.append((Path(n).stem, np.asarray(im)))
    return out


def flipped_crop(rgb: np.ndarray) -> np.ndarray:
    """The figures' self-reference: the photo flipped, its top eighth and a tenth of its width cut off."""
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(rgb[h // 8:, ::-1][:, w // 10:])


def self_references() -> None:
    """Held-out photos coloured from a flipped, cropped copy of themselves (every colour is in the
    reference): the default, the network without the prior, the two warps alone, Welsh, the truth."""
    from skimage.color import rgb2gray

    rows = []
    for name, rgb in held_out_photos():
        ref = flipped_crop(rgb)
        grey = rgb2gray(rgb).astype(np.float32)
        tiles = [_tile(grey, f"{name} (grey)"), _tile(ref, "reference: itself, flipped")]
        for m in ("exemplar", "exemplar-plain", "warp-grey", "warp", "welsh"):
            out = nc.colorize(m, grey, reference=ref).rgb
            tiles.append(_tile(out, f"{m}  PSNR {nc.metrics.psnr(out, rgb):.1f}"))
        tiles.append(_tile(rgb, "truth"))
        rows.append(strip(tiles))
    stack_rows(rows, "self_reference.png")


def validation_with_other_source():
    """The validation views of the prepared corpus (``$NAPARI_COLORIZE_DATA``, default ``data/manifest.csv``)
    and their 'other-source' references (``training.evaluate``'s realistic protocol)."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's training package
    from training.evaluate import eval_images, reference_pool, references

    manifest = os.environ.get("NAPARI_COLORIZE_DATA", "data/manifest.csv")
    if not Path(manifest).exists():
        raise SystemExit(f"{manifest}: no prepared corpus; run `python -m training.prepare_data data/` first")
    images = eval_images(manifest, "val")
    return images, references(images, "other-source", reference_pool(manifest, images))


def other_source(picks=(3, 17, 30, 44, 58, 71, 85, 99)) -> None:
    """Eight held-out views coloured from a related but different photo: the most similar one by
    pooled backbone features among the photos of *other* sources (``training.evaluate``'s
    'other-source' protocol), by every exemplar model side by side, with the truth. Uses the
    prepared corpus (``$NAPARI_COLORIZE_DATA``, default ``data/manifest.csv``)."""
    images, refs = validation_with_other_source()  # (first: it puts the repository's training package on the path)
    from training.evaluate import grey_of

    models = ("exemplar", "exemplar-direct", "warp-grey", "reinhard", "welsh")
    rows = []
    for i in picks:
        img, ref = images[i], refs[i]
        grey = grey_of(img)
        tiles = [_tile(grey, f"view {i} (grey)"), _tile(ref, f"reference  HIS {nc.metrics.his(ref, img):.2f}")]
        for m in models:
            res = nc.colorize(m, grey, reference=ref)
            tiles.append(_tile(res.rgb, f"{m}  SSIM {nc.metrics.ssim(res.rgb, img):.3f}"))
            if m == "exemplar":
                tiles.append(_tile(res.confidence, "exemplar's match confidence"))
        tiles.append(_tile(img, "truth"))
        rows.append(strip(tiles))
    stack_rows(rows, "other_source.png")


def histogram_mix(picks=(36, 33, 57, 105, 24, 46, 0)) -> None:
    """docs/images/histogram_mix.png: validation views with a related reference of another source (as in
    :func:`other_source`): the two that lost most with the mix (swans; view 34, the third, is a third photo
    of them), a leaf that lost 0.7 dB, the three that gained most, and the first view; by the sixth step's
    default (``histogram_mix`` 0), the seventh step's default (half from the ``histogram`` network) and that
    network's colour alone (``histogram_mix`` 1), with the truth."""
    _mix_figure(picks, [("exemplar+histogram_mix=0", "mix 0 (sixth step)"),
                        ('exemplar+histogram_model="histogram"', "seventh step (mix 0.5)"),
                        ('exemplar+histogram_model="histogram"+histogram_mix=1', "histogram network alone")],
                "histogram_mix.png")


def companion(picks=(35, 83, 105, 78, 57, 61, 0)) -> None:
    """docs/images/companion.png (issue 18's eighth step): validation views with a related reference of
    another source: the four that gained most from mixing in ``histogram-companion``'s first stretch (HC1)
    instead of ``histogram``, the two that lost most, and the first view; by the seventh step's default, the
    shipped ``exemplar`` and ``histogram-companion``'s colour alone, with the truth."""
    _mix_figure(picks, [('exemplar+histogram_model="histogram"', "seventh step"),
                        ("exemplar", "exemplar (shipped)"),
                        ("exemplar+histogram_mix=1", "histogram-companion alone")], "companion.png")


def harm(picks=(43, 90, 102, 94, 91, 81, 14, 18)) -> None:
    """docs/images/harm.png (issue 18's ninth step): the eight validation views where the shipped ``exemplar``
    loses most SSIM against the grey input with a related reference of another source (``runs/final9b.csv``),
    worst first: reference, truth, the grey input, ``exemplar`` and its match confidence, Reinhard's global
    transfer, each with its SSIM."""
    images, refs = validation_with_other_source()  # (first: it puts the repository's training package on the path)
    from training.evaluate import grey_of

    rows = []
    for i in picks:
        img, ref = images[i], refs[i]
        grey = grey_of(img)
        res = nc.colorize("exemplar", grey, reference=ref, size=256)
        rh = nc.colorize("reinhard", grey, reference=ref, size=256).rgb
        rows.append(strip([_tile(ref, f"view {i}: reference"), _tile(img, "truth"),
                           _tile(grey, f"grey  SSIM {nc.metrics.ssim(np.repeat(grey[..., None], 3, -1), img):.3f}"),
                           _tile(res.rgb, f"exemplar  SSIM {nc.metrics.ssim(res.rgb, img):.3f}"),
                           _tile(res.confidence, "exemplar's match confidence"),
                           _tile(rh, f"reinhard  SSIM {nc.metrics.ssim(rh, img):.3f}")]))
    stack_rows(rows, "harm.png")


def _mix_figure(picks, models, name: str) -> None:
    images, refs = validation_with_other_source()  # (first: it puts the repository's training package on the path)
    from training.evaluate import grey_of, load_with_output

    loaded = [(load_with_output(spec), label) for spec, label in models]
    rows = []
    for i in picks:
        img, ref = images[i], refs[i]
        grey = grey_of(img)
        tiles = [_tile(ref, f"view {i}: reference"), _tile(img, "truth")]
        for m, label in loaded:
            out = nc.colorize(m, grey, reference=ref, size=256).rgb
            tiles.append(_tile(out, f"{label}  PSNR {nc.metrics.psnr(out, img):.1f}"))
        rows.append(strip(tiles))
    stack_rows(rows, name)


def fringes(*others: str) -> None:
    """Issue 10's fringes, close up: the lit rock of the held-out cave photo (kcas10) coloured from a
    flipped copy of itself by the warp alone, by the shipped default and by any other networks given
    (weights files, e.g. runs/K.safetensors, labelled by their file name); each crop at the size it was coloured,
    PSNR of the whole photo."""
    from skimage.color import rgb2gray

    (name, rgb), = held_out_photos(("kcas10.jpg",))
    h, w = rgb.shape[:2]
    ref = flipped_crop(rgb)
    grey = rgb2gray(rgb).astype(np.float32)
    box = (slice(int(0.35 * h), int(0.9 * h)), slice(int(0.15 * w), int(0.8 * w)))

    def crop(img, label):
        return _tile(img[box], label, height=box[0].stop - box[0].start)

    tiles = [crop(grey, f"{name} (grey), lit rock")]
    models = [("warp-grey", "warp-grey"), ("exemplar", "exemplar (shipped)")] + [(f, Path(f).stem) for f in others]
    for m, label in models:
        out = nc.colorize(m, grey, reference=ref).rgb
        tiles.append(crop(out, f"{label}  PSNR {nc.metrics.psnr(out, rgb):.2f}"))
    tiles.append(crop(rgb, "truth"))
    stack_rows([strip(tiles)], "fringes.png")


def _with_points(img: np.ndarray, points: list, label: str, height: int = 240) -> Image.Image:
    """A tile with the colour points drawn as rings filled with their colours."""
    tile = _tile(img, label, height)
    f = height / img.shape[0]
    d = ImageDraw.Draw(tile)
    for y, x, col in points:
        cx, cy, r = x * f, y * f + 22, 6
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(round(c * 255)) for c in col), outline="white",
                  width=2)
    return tile


def hints() -> None:
    """docs/images/hints.png: the bundled pair coloured from its reference, then with three colour
    points taken from the truth, and the three points alone (Levin)."""
    grey, ref, truth = sample_pair()
    t = truth.astype(np.float32) / 255
    where = [(185, 430), (215, 190), (285, 35)]  # the tank, the rear fender, the red smudge on the floor
    pts = [(y, x, tuple(float(c) for c in t[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0))) for y, x in where]
    before = nc.colorize("exemplar", grey, reference=ref).rgb
    after = nc.colorize("exemplar", grey, reference=ref, hints=pts).rgb
    alone = nc.colorize("levin", grey, hints=pts).rgb
    psnr = lambda o: nc.metrics.psnr(o, t)  # noqa: E731
    zoom = []  # each point close up: before, after, truth
    for y, x, _ in pts:
        box = (slice(max(0, y - 60), y + 60), slice(max(0, x - 80), x + 80))
        zoom += [_tile(before[box], f"({y}, {x}) before", 150), _tile(after[box], "with the points", 150),
                 _tile(t[box], "truth", 150)]
    stack_rows([strip([_with_points(grey, pts, "grey target, three colour points"), _tile(ref, "reference"),
                       _tile(before, f"exemplar, reference  PSNR {psnr(before):.2f}"),
                       _with_points(after, pts, f"+ the three points  PSNR {psnr(after):.2f}"),
                       _with_points(alone, pts, f"levin: the points alone  PSNR {psnr(alone):.2f}"),
                       _tile(truth, "truth")]), strip(zoom)], "hints.png")


def two_references() -> None:
    """docs/images/two_references.png: a target holding two scenes, coloured from each scene's
    reference alone and from both at once (``reference=[a, b]``)."""
    from skimage import data

    a = data.coffee()[40:340, 60:460]
    b = data.chelsea()[:, 25:425]
    truth = np.concatenate([a, b], 1).astype(np.float32) / 255
    from skimage.color import rgb2gray

    grey = rgb2gray(truth).astype(np.float32)
    ref_a = np.ascontiguousarray(data.coffee()[60:360, 300:][:, ::-1])
    ref_b = np.ascontiguousarray(data.chelsea()[:, 200:][:, ::-1])
    tiles = [_tile(grey, "grey target (two scenes)"), _tile(ref_a, "reference A"), _tile(ref_b, "reference B")]
    for label, guide in (("A alone", ref_a), ("B alone", ref_b), ("A and B at once", [ref_a, ref_b])):
        out = nc.colorize("exemplar", grey, reference=guide).rgb
        tiles.append(_tile(out, f"exemplar, {label}  HIS {nc.metrics.his(out, truth):.2f}"))
    tiles.append(_tile(truth, "truth"))
    stack_rows([strip(tiles[:3]), strip(tiles[3:])], "two_references.png")


def keyframes() -> None:
    """docs/images/keyframes.png: the cut sequence of benchmarks/bench_keyframes.py - frames 3 to 8 -
    with one reference for all and with a keyframe on each side of the cut."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_keyframes import HALF, sequence

    grey, truth, ref_a, ref_b = sequence()
    one = nc.colorize("exemplar", grey, reference=ref_a, temporal=2).rgb
    kf = nc.colorize("exemplar", grey, references={HALF - 1: ref_a, HALF: ref_b}, temporal=2).rgb
    frames = range(HALF - 3, HALF + 3)
    rows = [strip([_tile(ref_a, "reference A"), _tile(ref_b, "reference B")])]
    for label, seq in (("truth", truth), ("one reference (A)", one), (f"keyframes {HALF - 1}: A, {HALF}: B", kf)):
        rows.append(strip([_tile(seq[t], f"{label}, frame {t}", 160) for t in frames]))
    stack_rows(rows, "keyframes.png")


if __name__ == "__main__":
    import sys

    import napari_colorize.metrics  # noqa: F401

    figures = {"sample": sample, "volume": volume_cluster, "self": self_references, "other": other_source,
               "histogram_mix": histogram_mix, "companion": companion, "harm": harm, "flicker": flicker, "histograms": histograms,
               "fringes": fringes, "hints": hints, "references": two_references, "keyframes": keyframes}
    figures.get(sys.argv[1] if sys.argv[1:] else "", main)(*sys.argv[2:])  # (fringes: the weights files)
