"""Colour points per slice (issue 20, colour points): ``(z, y, x, (r, g, b))`` colours slice z alone,
``(y, x, (r, g, b))`` every slice as before; checked, in the CLI's CSV, and on the volume path equal to
colorize() on the whole, slice for slice (resumed runs with other points refused)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_colorize as nc
from napari_colorize import cli
from napari_colorize.hints import check_hints, hints_of_part, slice_hints

RED, BLUE = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9)


def grey_stack(n=4, h=24, w=32, seed=0):
    """``n`` slices: dark left half, light right half, a little noise (each slice its own)."""
    rng = np.random.default_rng(seed)
    L = np.full((h, w), 0.3, np.float32)
    L[:, w // 2:] = 0.7
    return np.stack([L + rng.normal(0, 0.004, L.shape).astype(np.float32) for _ in range(n)])


@pytest.fixture(scope="module")
def ref():
    r = np.zeros((16, 16, 3), np.float32)
    r[..., 0], r[..., 1] = 0.2, 0.6  # green
    return r


def run(stack, ref, **kw):
    return nc.colorize("reinhard", stack, reference=ref, normalize="none", rgb=False, return_attention=False,
                       **kw).rgb


def test_slice_points_are_checked():
    got = check_hints([(1, 2, (255, 0, 0)), (5, 3, 4, (0, 0, 255)), ((1, 2), 3, 4, (0, 255, 0))], (10, 10), (2, 4))
    assert got == [(1.0, 2.0, (1.0, 0.0, 0.0)), (5, 3.0, 4.0, (0.0, 0.0, 1.0)), (6, 3.0, 4.0, (0.0, 1.0, 0.0))]
    assert check_hints(np.array([[2, 1, 1, 1, 0, 0]]), (10, 10), (3,)) == [(2, 1.0, 1.0, (1.0, 0.0, 0.0))]
    with pytest.raises(ValueError, match=r"hint 2 .*slice 8 is outside the stack \(2 x 4: slices 0..7\)"):
        check_hints([(1, 1, RED), (8, 1, 1, RED)], (10, 10), (2, 4))
    with pytest.raises(ValueError, match=r"hint 1 .*slice \(2, 0\) is outside"):
        check_hints([((2, 0), 1, 1, RED)], (10, 10), (2, 4))
    with pytest.raises(ValueError, match="hint 1 .*outside"):
        check_hints([(-1, 1, 1, RED)], (10, 10), (4,))
    with pytest.raises(ValueError, match="hint 1 .*whole number"):
        check_hints([(1.5, 1, 1, RED)], (10, 10), (4,))
    with pytest.raises(ValueError, match="hint 1 .*one 2-D image"):
        check_hints([(0, 1, 1, RED)], (10, 10))
    with pytest.raises(ValueError, match="hint 1 .*outside the 10 x 10"):
        check_hints([(0, 10, 1, RED)], (10, 10), (4,))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        check_hints(np.zeros((1, 7)), (10, 10), (4,))
    # each slice's points: every slice's and its own, in order; a part's slices counted in the part
    h = check_hints([(1, 1, RED), (5, 2, 2, BLUE), (6, 3, 3, RED)], (10, 10), (2, 4))
    assert slice_hints(h, 5) == [(1.0, 1.0, RED), (2.0, 2.0, BLUE)] and slice_hints(h, 0) == [(1.0, 1.0, RED)]
    assert hints_of_part(h, (2, 4), (1, 1), (1, 2)) == [h[0], (0, 2.0, 2.0, BLUE), (1, 3.0, 3.0, RED)]
    assert hints_of_part(h, (2, 4), (0, 0), (1, 4)) == [h[0]]


def test_z_on_a_2d_image_or_outside_the_stack_is_refused(ref):
    with pytest.raises(ValueError, match="hint 1 .*one 2-D image"):
        run(grey_stack(1)[0], ref, hints=[(0, 5, 5, RED)])
    with pytest.raises(ValueError, match="hint 2 .*slice 4 is outside the stack"):
        run(grey_stack(4), ref, hints=[(5, 5, RED), (4, 5, 5, RED)])


@pytest.mark.parametrize("temporal", [0, 1])
def test_a_slice_point_changes_its_slice_only(ref, temporal):
    stack = grey_stack(5)
    base = run(stack, ref, temporal=temporal)
    got = run(stack, ref, temporal=temporal, hints=[(3, 12, 4, RED)])
    near = {3} if temporal == 0 else {2, 3, 4}  # (the temporal smoothing shares it with its neighbours)
    for z in range(5):
        diff = np.abs(got[z] - base[z]).max()
        assert (diff > 0.1) if z == 3 else (diff > 0) if z in near else (diff == 0), (z, diff)
    assert got[3, 12, 4, 0] > got[3, 12, 4, 1]  # red where the point is, the reference's green elsewhere
    assert base[3, 12, 4, 1] > base[3, 12, 4, 0]
    if temporal:  # the smoothing shares the point with the neighbours but does not weaken it where it is
        alone = run(stack, ref, temporal=0, hints=[(3, 12, 4, RED)])
        assert np.allclose(got[3, 12, 4], alone[3, 12, 4], atol=0.03), (got[3, 12, 4], alone[3, 12, 4])
        assert np.abs(got[2] - base[2]).max() < np.abs(got[3] - base[3]).max()


def test_an_every_slice_point_is_as_before_and_as_one_per_slice(ref):
    stack = grey_stack(3)
    every = run(stack, ref, temporal=0, hints=[(12, 4, RED)])
    for z in range(3):  # as before: the same point on each slice, as on each slice alone
        assert np.array_equal(every[z], run(stack[z], ref, hints=[(12, 4, RED)])), z
    assert np.array_equal(every, run(stack, ref, temporal=0, hints=[(z, 12, 4, RED) for z in range(3)]))
    # mixed: a slice's own point is added to the every-slice one (on one pixel the later wins)
    mixed = run(stack, ref, temporal=0, hints=[(12, 4, RED), (1, 12, 28, BLUE)])
    assert np.array_equal(mixed[0], every[0]) and np.array_equal(mixed[2], every[2])
    assert np.array_equal(mixed[1], run(stack[1], ref, hints=[(12, 4, RED), (12, 28, BLUE)]))


def test_time_series_slices_flat_or_by_index(ref):
    """(T, Z, Y, X): z is t * Z + z, or the tuple (t, z); the other slices as without points."""
    stack = grey_stack(6).reshape(2, 3, 24, 32)
    base = run(stack, ref, temporal=0)
    flat = run(stack, ref, temporal=0, hints=[(4, 12, 4, RED)])
    assert np.array_equal(flat, run(stack, ref, temporal=0, hints=[((1, 1), 12, 4, RED)]))
    changed = [(t, z) for t in range(2) for z in range(3) if not np.array_equal(flat[t, z], base[t, z])]
    assert changed == [(1, 1)]


def test_keyframes_with_slice_points(ref):
    stack = grey_stack(4)
    other = ref[..., ::-1].copy()  # a blue keyframe
    kw = dict(references={0: ref, 3: other}, temporal=1)
    base = run(stack, None, **kw)
    got = run(stack, None, hints=[(0, 12, 4, RED)], **kw)
    assert np.array_equal(got[2:], base[2:]) and not np.array_equal(got[0], base[0])
    assert got[0, 12, 4, 0] > got[0, 12, 4, 1]
    assert nc.colorize("reinhard", stack, references={0: ref, 3: other}, hints=[(0, 12, 4, RED)], rgb=False,
                       normalize="none").provenance["hints"] == [[0, 12.0, 4.0, list(RED)]]


def test_csv_rows_of_five_or_six_columns(tmp_path, ref):
    import tifffile

    p = tmp_path / "pts.csv"
    p.write_text("z,y,x,r,g,b\n# the sky\n12,4,230,25,25\n2,12,28,25,50,230,\n\n")
    assert cli.read_hints_csv(p) == [(12.0, 4.0, (230.0, 25.0, 25.0)), (2, 12.0, 28.0, (25.0, 50.0, 230.0))]
    for bad, line in (("1,2,3,4,5\n1,2,3,4\n", 2), ("1,2,3,4,5\n1.5,2,3,4,5,6\n", 2), ("1,2,3,4,5\n-1,2,3,4,5,6\n", 2),
                      ("1,2,3,4,5\n0,1,2,3,4,5,6\n", 2)):
        (tmp_path / "bad.csv").write_text(bad)
        with pytest.raises(cli._Refused, match=f"bad.csv, line {line}: expected y,x,r,g,b or z,y,x,r,g,b"):
            cli.read_hints_csv(tmp_path / "bad.csv")
    stack = (grey_stack(4) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "ref.tif", (ref * 255).astype(np.uint8))
    assert cli.main(["colorize", str(tmp_path / "s.tif"), "-r", str(tmp_path / "ref.tif"), "-m", "reinhard",
                     "--hints", str(p), "--temporal", "0", "--dtype", "uint8", "-o", str(tmp_path / "o.tif"),
                     "-q"]) == 0
    want = nc.colorize("reinhard", stack, reference=(ref * 255).astype(np.uint8), temporal=0, rgb=False,
                       hints=cli.read_hints_csv(p)).rgb
    from napari_colorize.io import to_output_dtype

    assert np.array_equal(tifffile.imread(tmp_path / "o.tif"), to_output_dtype(want, "uint8"))
    (tmp_path / "far.csv").write_text("9,12,4,1,0,0\n")
    assert cli.main(["colorize", str(tmp_path / "s.tif"), "-r", str(tmp_path / "ref.tif"), "-m", "reinhard",
                     "--hints", str(tmp_path / "far.csv"), "-o", str(tmp_path / "far.tif"), "-q"]) != 0


# ------------------------------------------------------------------------------------ volumes
def expected(stack, ref, model="reinhard", **kw):
    from napari_colorize.io import to_output_dtype

    return to_output_dtype(nc.colorize(model, stack, reference=ref, return_attention=False, rgb=False, **kw).rgb,
                           "uint8")


def level0(path):
    import zarr

    a = zarr.open_group(str(path), mode="r")["0"][:]
    return np.moveaxis(a, 1 if a.ndim == 5 else 0, -1)  # (t, c, z, y, x) or (c, z, y, x) -> colour last


@pytest.mark.parametrize("temporal", [0, 1])
def test_a_volume_with_points_equals_colorize(tmp_path, ref, temporal):
    from napari_colorize.volume import colorize_volume, read_provenance

    stack = grey_stack(6)
    hints = [(12, 4, RED), (1, 12, 28, BLUE), (2, 3, 3, BLUE), (5, 20, 10, RED)]  # (1 | 2: a chunk's border)
    out = colorize_volume(stack, tmp_path / "v.zarr", "reinhard", reference=ref, hints=hints, temporal=temporal,
                          chunks=(2, 24, 32), scheduler="synchronous")
    got = level0(out)
    assert np.array_equal(got, expected(stack, ref, hints=hints, temporal=temporal))
    assert not np.array_equal(got, expected(stack, ref, hints=hints[:1], temporal=temporal))
    rec = read_provenance(out)
    assert rec["hints"][1] == [1, 12.0, 28.0, list(BLUE)] and rec["settings"]["hint_spread"] == 64.0
    from napari_colorize.provenance import describe

    assert "(12, 4) rgb(0.9, 0.1, 0.1); slice 1 (12, 28) rgb(0.1, 0.2, 0.9)" in describe(rec)


def test_a_time_series_volume_with_points_equals_colorize(tmp_path, ref):
    """(T, Z, Y, X) in parts of one t and two z (with a neighbour on either side): each part finds its points."""
    from napari_colorize.volume import colorize_volume

    stack = grey_stack(6).reshape(2, 3, 24, 32)
    hints = [((0, 2), 12, 4, RED), (4, 12, 28, BLUE), ((1, 2), 3, 3, RED)]
    out = colorize_volume(stack, tmp_path / "t.zarr", "reinhard", reference=ref, hints=hints, temporal=1,
                          chunks=(1, 2, 24, 32), scheduler="synchronous")
    assert np.array_equal(level0(out), expected(stack, ref, hints=hints, temporal=1))


def test_levin_on_a_volume(tmp_path):
    from napari_colorize.volume import colorize_volume

    stack = grey_stack(4)
    hints = [(12, 4, RED), (2, 12, 28, BLUE)]
    out = colorize_volume(stack, tmp_path / "l.zarr", "levin", hints=hints, temporal=0, chunks=(2, 24, 32),
                          scheduler="synchronous")
    assert np.array_equal(level0(out), expected(stack, None, "levin", hints=hints, temporal=0))


def test_a_resumed_run_with_other_points_is_refused(tmp_path, ref):
    from napari_colorize.volume import ResumeError, colorize_volume

    stack = grey_stack(6)
    out = tmp_path / "r.zarr"
    kw = dict(reference=ref, temporal=0, chunks=(1, 24, 32), scheduler="synchronous")
    a, b = [(1, 12, 4, RED)], [(1, 12, 4, BLUE)]

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # slices 0 and 1 written with the red point
        colorize_volume(stack, out, "reinhard", hints=a, progress=stop_after_two, **kw)
    with pytest.raises(ResumeError, match="differing: hints"):
        colorize_volume(stack, out, "reinhard", hints=b, **kw)
    with pytest.raises(ResumeError, match="differing: hint_spread, hints"):
        colorize_volume(stack, out, "reinhard", **kw)
    with pytest.raises(ResumeError, match="hint_spread"):
        colorize_volume(stack, out, "reinhard", hints=a, hint_spread=8.0, **kw)
    colorize_volume(stack, out, "reinhard", hints=b, overwrite=True, **kw)  # started again: no red left
    assert np.array_equal(level0(out), expected(stack, ref, hints=b, temporal=0))
    # the same points: resumed
    out2 = tmp_path / "s.zarr"
    with pytest.raises(KeyboardInterrupt):
        colorize_volume(stack, out2, "reinhard", hints=a, progress=stop_after_two, **kw)
    colorize_volume(stack, out2, "reinhard", hints=a, **kw)
    assert np.array_equal(level0(out2), expected(stack, ref, hints=a, temporal=0))


def test_cli_volume_with_points(tmp_path, ref):
    import tifffile

    stack = (grey_stack(4) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "ref.tif", (ref * 255).astype(np.uint8))
    (tmp_path / "pts.csv").write_text("12,4,230,25,25\n2,12,28,25,50,230\n")
    np.save(tmp_path / "s.npy", stack)
    assert cli.main(["colorize", str(tmp_path / "s.npy"), "-r", str(tmp_path / "ref.tif"), "-m", "reinhard",
                     "--hints", str(tmp_path / "pts.csv"), "--temporal", "1", "-o", str(tmp_path / "v.zarr"),
                     "-q"]) == 0
    want = expected(stack, (ref * 255).astype(np.uint8), hints=cli.read_hints_csv(tmp_path / "pts.csv"), temporal=1)
    assert np.array_equal(level0(tmp_path / "v.zarr"), want)
    assert cli.main(["colorize", str(tmp_path / "s.npy"), "--hints", str(tmp_path / "pts.csv"), "--temporal", "0",
                     "-o", str(tmp_path / "l.zarr"), "-q"]) == 0  # points alone: levin
    assert np.array_equal(level0(tmp_path / "l.zarr"), expected(stack, None, "levin", temporal=0,
                                                               hints=cli.read_hints_csv(tmp_path / "pts.csv")))
