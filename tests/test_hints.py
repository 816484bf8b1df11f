"""Colour points (issue 20, part 3): hints set the colour where they are and spread edge-aware; Levin alone."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch
from PIL import Image

import napari_colorize as nc
from napari_colorize.color import AB_SCALE, rgb_to_lab
from napari_colorize.hints import LEVIN_SPREAD, HintSolver, check_hints, hint_ab, levin_affinity


def two_regions(h=40, w=60, noise=0.3, seed=0):
    """Lightness 30 on the left half, 70 on the right, a little noise."""
    L = np.full((h, w), 30.0)
    L[:, w // 2:] = 70.0
    return L + np.random.default_rng(seed).normal(0, noise, L.shape)


def lab_ab(rgb):
    """Lab (a, b) of RGB pixels (..., 3) in [0, 1]."""
    t = torch.as_tensor(np.asarray(rgb, np.float32)).reshape(-1, 3).T[:, :, None]
    return rgb_to_lab(t)[1:, :, 0].T.numpy()


def test_check_hints():
    assert check_hints([(1, 2, (255, 0, 128))], (10, 10))[0][2] == pytest.approx((1.0, 0.0, 128 / 255))
    assert check_hints(np.array([[1, 2, 0.5, 0.5, 0.5]]), (10, 10)) == [(1.0, 2.0, (0.5, 0.5, 0.5))]
    assert check_hints(None, (4, 4)) == []
    with pytest.raises(ValueError, match="outside the 10 x 10"):
        check_hints([(10, 2, (1, 0, 0))], (10, 10))
    with pytest.raises(ValueError, match="hint 2"):
        check_hints([(1, 1, (1, 0, 0)), (1, 1, (1, 0))], (10, 10))
    with pytest.raises(ValueError, match="finite"):
        check_hints([(np.nan, 1, (1, 0, 0))], (10, 10))
    with pytest.raises(ValueError, match="above 255"):
        check_hints([(1, 1, (300, 0, 0))], (10, 10))
    with pytest.raises(TypeError):
        check_hints("red at 1,1", (10, 10))


def test_affinity_rows_are_a_weighted_mean_that_falls_at_edges():
    L = two_regions()
    W = levin_affinity(L)
    assert np.allclose(np.asarray(W.sum(1)).ravel(), 1.0)
    w = L.shape[1]
    r = 10 * w + (w // 2 - 1)  # a pixel on the left of the edge: its right neighbour weighs almost nothing
    assert W[r, r + 1] < 0.01 * W[r, r - 1]


@pytest.mark.parametrize("spread", [8.0, LEVIN_SPREAD])
def test_solution_equals_the_naive_constrained_solve(spread):
    """The Green's-function solution equals solving the system with the hint rows fixed (Dirichlet)."""
    L = two_regions(12, 16, seed=1)
    pixels = [(3, 2), (8, 12), (6, 5)]
    values = np.array([[0.3, -0.2], [-0.4, 0.1], [0.2, 0.2]])
    got = HintSolver(L, spread).delta(pixels, values)
    n = L.size
    M = (sp.identity(n) * (1 + 0.375 / spread ** 2) - levin_affinity(L)).tocsr()
    fixed = [y * L.shape[1] + x for y, x in pixels]
    free = np.setdiff1d(np.arange(n), fixed)
    want = np.zeros((n, 2))
    want[fixed] = values
    want[free] = spl.spsolve(M[free][:, free].tocsc(), -M[free][:, fixed] @ values)
    assert np.allclose(got.reshape(2, -1).T, want, atol=1e-8)


def test_a_hint_colours_its_region_and_stops_at_the_edge():
    L = two_regions()
    solver = HintSolver(L, 32.0)
    d = solver.delta([(20, 10)], np.array([[0.5, 0.3]]))
    assert np.allclose(d[:, 20, 10], [0.5, 0.3])
    left, right = np.abs(d[0, :, 25]).mean(), np.abs(d[0, :, 35]).mean()  # 5 px either side of the edge
    assert left > 0.1 and right < 0.02 * left
    far = HintSolver(L, 64.0).delta([(20, 10)], np.array([[0.5, 0.3]]))
    assert np.abs(far[0, :, 25]).mean() > left  # a longer spread reaches further
    # two hints on one pixel: the later wins
    assert np.allclose(solver.delta([(5, 5), (5, 5)], np.array([[0.1, 0.1], [0.4, -0.2]]))[:, 5, 5], [0.4, -0.2])


def test_a_strong_edge_holds_a_long_spread():
    """Levin's weights alone let a point's change through a long strong edge at spread 256; the
    absolute edge term holds it while the change still crosses texture, and hints alone still colour a
    region without a point."""
    L = two_regions()
    yy, xx = np.mgrid[0:40, 0:30]
    L[:, :30] += 6 * np.sin(xx / 2.0) * np.sin(yy / 3.0)  # the point's region textured
    hint = ([(20, 10)], np.array([[0.5, 0.3]]))
    d = HintSolver(L, 256.0).delta(*hint)
    across, far = np.abs(d[0, :, 32:]).mean(), np.abs(d[0, :, 24:29]).mean()
    assert across < 0.005 and far > 0.4
    assert np.abs(HintSolver(L, 256.0, edge=None).delta(*hint)[0, :, 32:]).mean() > 0.1  # Levin's weights leak
    assert np.abs(HintSolver(L, LEVIN_SPREAD).delta(*hint)[0, :, 32:]).mean() > 0.45  # hints alone: as Levin
    for flat in (np.full((1, 1), 50.0), np.full((2, 3), 50.0), np.full((40, 60), 0.0)):  # flat and tiny images
        for spread in (1.0, LEVIN_SPREAD):
            got = HintSolver(flat, spread).delta([(0, 0)], np.array([[0.3, -0.2]]))
            assert np.isfinite(got).all() and np.allclose(got[:, 0, 0], [0.3, -0.2])


def test_levin_alone_colours_each_region_from_its_hint():
    L = two_regions()
    red, blue = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9)
    hints = [(20, 5, red), (20, 55, blue)]
    grey = (L / 100.0).astype(np.float32)  # lightness-like grey
    res = nc.colorize("levin", grey, hints=hints, normalize="none")
    ab = lab_ab(res.rgb).reshape(*L.shape, 2)
    want = lab_ab(np.array([red, blue]))
    # the far corners of each region take their region's hint's hue (chroma limited by the lightness)
    for (y, x), k in (((2, 2), 0), ((37, 27), 0), ((2, 57), 1), ((37, 33), 1)):
        cos = ab[y, x] @ want[k] / (np.linalg.norm(ab[y, x]) * np.linalg.norm(want[k]))
        assert cos > 0.95, ((y, x), ab[y, x], want[k])
    assert res.provenance["hints"][0][:2] == [20.0, 5.0]


def test_levin_paper_keeps_the_papers_affinity():
    """``levin-paper``: Levin et al.'s weights alone (no absolute edge term), named and available; across the
    strong edge its red point's colour reaches into the blue point's region more than ``levin``'s does."""
    L = two_regions()
    grey = (L / 100.0).astype(np.float32)
    hints = [(20, 5, (0.9, 0.1, 0.1)), (20, 55, (0.1, 0.2, 0.9))]
    assert "levin-paper" in nc.list_models(kind="hints")
    a = {m: lab_ab(nc.colorize(m, grey, hints=hints, normalize="none").rgb).reshape(*L.shape, 2)[:, 31:, 0].mean()
         for m in ("levin", "levin-paper")}
    assert a["levin-paper"] > a["levin"] + 1.0, a  # (a*: red's is high, blue's low)


def test_hints_over_a_reference_win_where_they_are():
    rng = np.random.default_rng(2)
    L = two_regions(48, 64)
    grey = (L / 100).astype(np.float32)
    ref = (rng.random((32, 32, 3)) * 0.2 + np.array([0.2, 0.6, 0.2])).astype(np.float32)  # greenish
    base = nc.colorize("reinhard", grey, reference=ref, normalize="none").rgb
    colour = (0.8, 0.2, 0.6)
    res = nc.colorize("reinhard", grey, reference=ref, normalize="none", hints=[(24, 10, colour)]).rgb
    got, want, before = lab_ab(res[24, 10]), lab_ab(np.array(colour)), lab_ab(base[24, 10])
    assert np.linalg.norm(got - want) < 0.25 * np.linalg.norm(before - want)
    # the other region keeps (nearly) the reference's colours: the change stops at the edge
    near, across = np.abs(res[:, 25:31] - base[:, 25:31]).mean(), np.abs(res[:, 34:40] - base[:, 34:40]).mean()
    assert across < 0.15 * near
    tight = nc.colorize("reinhard", grey, reference=ref, normalize="none", hints=[(24, 10, colour)],
                        hint_spread=32.0).rgb
    assert np.abs(tight[:, 40:] - base[:, 40:]).max() < 0.02  # a shorter spread: the other side untouched
    # no hints: exactly as before
    assert np.array_equal(nc.colorize("reinhard", grey, reference=ref, normalize="none", hints=[]).rgb, base)


def test_hints_on_a_stack_apply_to_every_slice():
    L = two_regions(24, 32)
    stack = np.stack([L, L[:, ::-1]]).astype(np.float32) / 100
    res = nc.colorize("levin", stack, hints=[(12, 4, (0.9, 0.1, 0.1)), (12, 28, (0.1, 0.2, 0.9))], rgb=False,
                      normalize="none", temporal=0)
    ab = lab_ab(res.rgb).reshape(2, 24, 32, 2)
    assert ab[0, 12, 4, 0] > 20 and ab[1, 12, 28, 1] < -20  # each slice's own regions


def test_guides_and_hints_are_checked():
    grey = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="needs colour points"):
        nc.colorize("levin", grey)
    with pytest.raises(ValueError, match="colour points alone"):
        nc.colorize("levin", grey, reference=np.zeros((8, 8, 3)), hints=[(1, 1, (1, 0, 0))])
    with pytest.raises(ValueError, match="outside"):
        nc.colorize("reinhard", grey, reference=np.zeros((8, 8, 3)), hints=[(1, 99, (1, 0, 0))])
    assert "levin" in nc.list_models(kind="hints")


def test_hint_ab_is_the_lab_chroma():
    got = hint_ab([(0, 0, (1.0, 0.0, 0.0))])
    assert np.allclose(got * AB_SCALE, lab_ab(np.array([1.0, 0.0, 0.0])), atol=1e-4)


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "napari_colorize.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


def test_cli_hints(tmp_path):
    L = two_regions(40, 60)
    Image.fromarray(np.round(L * 2.55).astype(np.uint8)).save(tmp_path / "grey.png")
    (tmp_path / "pts.csv").write_text("y,x,r,g,b\n# the sky\n20,5,230,25,25\n\n20,55,25,50,230\n")
    r = cli("colorize", "grey.png", "--hints", "pts.csv", "-o", "out.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "levin" in r.stdout  # hints alone: Levin's method by default
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(np.float32) / 255
    ab = lab_ab(out).reshape(40, 60, 2)
    assert ab[20, 5, 0] > 20 and ab[20, 55, 1] < -20
    info = cli("info", "out.png", "--json", cwd=tmp_path)
    assert '"hints"' in info.stdout and "pts.csv" in info.stdout
    (tmp_path / "bad.csv").write_text("20,5,230,25,25\n20,oops,1,1,1\n")
    r = cli("colorize", "grey.png", "--hints", "bad.csv", "-o", "bad.png", cwd=tmp_path)
    assert r.returncode == 2 and "bad.csv, line 2" in r.stderr and not (tmp_path / "bad.png").exists()
    r = cli("colorize", "grey.png", "-o", "none.png", cwd=tmp_path)
    assert r.returncode == 2 and "give a guide" in r.stderr


def test_preview_is_the_plans_working_size_result():
    from napari_colorize.plan import Plan
    from napari_colorize.preview import HintPreview

    L = two_regions(48, 64)
    grey = (L / 100).astype(np.float32)
    ref = np.full((16, 16, 3), [0.2, 0.6, 0.3], np.float32)
    hints = [(10, 10, (0.9, 0.1, 0.1)), (30, 50, (0.1, 0.1, 0.9))]
    p = HintPreview("reinhard", grey, reference=ref, normalize="none", hint_spread=16.0)
    plan = Plan.for_target("reinhard", grey, ref, normalize="none", hints=hints, hint_spread=16.0)
    pred, L_work, _ = plan.predict(0)
    lab = torch.cat([L_work[None], pred.ab[0].clamp(-1, 1) * AB_SCALE], 0)
    from napari_colorize.color import lab_to_rgb_in_gamut

    want = lab_to_rgb_in_gamut(lab).permute(1, 2, 0).numpy()
    assert np.abs(p.render(hints) - want).max() < 1e-5
    assert np.array_equal(p.render([]), p.base)  # no points: the guide's colours
    moved = p.render([hints[0], (31, 50, hints[1][2])])  # moving a point re-solves with the same factors
    assert not np.array_equal(moved, want)


def test_many_points_are_refused_before_the_solve_allocates(monkeypatch):
    """fuzz11 #15: the solve keeps a float64 column of h w per point and an N x N system: 20000 points on a
    224 x 224 image asked for gigabytes and ended in "internal error". The estimate is checked first, in
    the library, the plan and the preview (the napari widget's path), with what to do."""
    from napari_colorize import hints as H
    from napari_colorize.preview import HintPreview

    assert H.solve_memory((224, 224), 20000) == 8 * (224 * 224 * 20000 + 2 * 20000 ** 2)
    L = two_regions(40, 60)
    solver = HintSolver(L, 16.0)
    pixels = [(y, x) for y in range(40) for x in range(0, 60, 2)]  # 1200 distinct pixels
    values = np.zeros((len(pixels), 2))
    monkeypatch.setattr(H, "MAX_SOLVE_BYTES", H.solve_memory((40, 60), 1000))
    with pytest.raises(MemoryError, match=r"1200 colour points at working size 40x60 need about 0\.0 GB to spread .*"
                                          r"use fewer colour points \(about \d+ or fewer at this size"):
        solver.delta(pixels, values)
    assert solver._green == {}  # nothing was solved
    assert solver.delta(pixels[:700], values[:700]).shape == (2, 40, 60)  # within the bound: solved
    monkeypatch.setattr(H, "available_memory", lambda device: H.solve_memory((40, 60), 500))  # less free than allowed
    with pytest.raises(MemoryError, match=r"more than the 0\.0 GB free"):
        solver.delta(pixels[:700], values[:700])
    hints = [(y, x, (0.9, 0.2, 0.1)) for y, x in pixels]
    grey = (L / 100).astype(np.float32)
    with pytest.raises(MemoryError, match="1200 colour points"):
        nc.colorize("levin", grey, hints=hints, normalize="none")
    with pytest.raises(MemoryError, match="1200 colour points"):
        HintPreview("levin", grey, normalize="none").render(hints)


def test_cli_says_in_one_line_that_there_are_too_many_points(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (150, 150), dtype=np.uint8)).save(tmp_path / "grey.png")
    yx = np.stack(np.divmod(rng.permutation(150 * 150)[:12000], 150), 1)  # 12000 distinct pixels: about 4.2 GB
    (tmp_path / "pts.csv").write_text("".join(f"{y},{x},200,30,30\n" for y, x in yx))
    r = cli("colorize", "grey.png", "--hints", "pts.csv", "-o", "out.png", cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "out.png").exists()
    err = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "12000 colour points" in err[0] and "GB" in err[0] and "fewer colour points" in err[0]
    assert "internal error" not in r.stderr
