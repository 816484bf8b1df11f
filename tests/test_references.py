"""Several references at once (issue 20, part 1): the union of their positions in the attention, the
warp and the match keys, against naive loops; the engine, the CLI and the volume path with lists."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import napari_colorize as nc
from napari_colorize.color import histogram_from_rgb
from napari_colorize.models.attention import AxialAttention, CrossAttentionModule, StandardAttention
from napari_colorize.models.union import side_by_side, stacked, union_keys
from napari_colorize.models.warp import feature_warp


def naive_width_union(att: AxialAttention, target: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 2 along the width over the union of K references' rows, one query at a time."""
    q = att.split(att.to_q(target))  # (B, n, H, W, d)
    ks = [att.split(att.to_k(s)) for s in sources]
    vs = [att.split(att.to_v(s)) for s in sources]
    B, n, H, W, d = q.shape
    out = torch.zeros_like(q)
    clip = att.max_rel - 1
    for b in range(B):
        for h in range(n):
            for i in range(H):
                for o in range(W):
                    logits, values = [], []
                    for k, v in zip(ks, vs):
                        for p in range(W):
                            r = max(-clip, min(clip, p - o)) + clip
                            qo, kp = q[b, h, i, o], k[b, h, i, p]
                            logits.append((qo @ kp + qo @ att.r_q[r] + kp @ att.r_k[r]) * d ** -0.5)
                            values.append(v[b, h, i, p] + att.r_v[r])
                    a = torch.stack(logits).softmax(0)
                    out[b, h, i, o] = (a[:, None] * torch.stack(values)).sum(0)
    return att.merge(out)


def naive_standard_union(att: StandardAttention, target: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor:
    q = att.split(att.to_q(target))
    ks = [att.split(att.to_k(s)) for s in sources]
    vs = [att.split(att.to_v(s)) for s in sources]
    B, n, H, W, d = q.shape
    c = att.max_rel - 1
    idx = lambda x: max(-c, min(c, x)) + c  # noqa: E731
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(n):
            for y in range(H):
                for x in range(W):
                    logits, values = [], []
                    for k, v in zip(ks, vs):
                        for Y in range(H):
                            for X in range(W):
                                ry, rx = idx(Y - y), idx(X - x)
                                qo, kp = q[b, h, y, x], k[b, h, Y, X]
                                rq = att.row_q[ry] + att.col_q[rx]
                                rk = att.row_k[ry] + att.col_k[rx]
                                logits.append((qo @ kp + qo @ rq + kp @ rk) * d ** -0.5)
                                values.append(v[b, h, Y, X] + att.row_v[ry] + att.col_v[rx])
                    a = torch.stack(logits).softmax(0)
                    out[b, h, y, x] = (a[:, None] * torch.stack(values)).sum(0)
    return att.merge(out)


@torch.no_grad()
def test_axial_width_step_over_the_union_equals_the_naive_loop():
    torch.manual_seed(0)
    att = AxialAttention(8, 2, max_rel=3, axis="width")  # (a short table: offsets are clipped too)
    t = torch.randn(1, 8, 3, 4)
    refs = [torch.randn(1, 8, 3, 4) for _ in range(3)]
    got, maps = att(t, side_by_side(torch.cat(refs)), return_attention=True)
    assert maps.shape == (1, 2, 3, 4, 12)  # a query's weights over the 3 references' rows
    assert torch.allclose(got, naive_width_union(att, t, refs), atol=1e-5)
    # one reference: exactly what it was
    assert torch.equal(att(t, refs[0])[0], att(t, side_by_side(refs[0]))[0])


@torch.no_grad()
def test_standard_attention_over_the_union_equals_the_naive_loop():
    torch.manual_seed(1)
    att = StandardAttention(8, 2, max_rel=2)
    t = torch.randn(1, 8, 2, 3)
    refs = [torch.randn(1, 8, 2, 3) for _ in range(2)]
    got, _ = att(t, side_by_side(torch.cat(refs)))
    assert torch.allclose(got, naive_standard_union(att, t, refs), atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("kind", ["axial", "standard"])
def test_a_reference_given_twice_is_that_reference(kind):
    """The union of a reference with itself: every weight halves, the sum is the same."""
    torch.manual_seed(2)
    mod = CrossAttentionModule(8, 2, max_rel=4, kind=kind).eval()
    t, r = torch.randn(1, 8, 4, 5), torch.randn(1, 8, 4, 5)
    assert torch.allclose(mod(t, side_by_side(torch.cat([r, r])))[0], mod(t, r)[0], atol=1e-5)
    other = torch.randn(1, 8, 4, 5)
    assert not torch.allclose(mod(t, side_by_side(torch.cat([r, other])))[0], mod(t, r)[0], atol=1e-3)


def test_the_warp_over_the_union_equals_one_softmax_over_all_positions():
    torch.manual_seed(3)
    ft = torch.randn(1, 6, 3, 4)
    frs = [torch.randn(1, 6, 2, 5), torch.randn(1, 6, 2, 5)]
    abs_ = [torch.rand(1, 2, 2, 5) * 2 - 1 for _ in frs]
    from napari_colorize.models.coherence import centre_normalise

    keys = union_keys(torch.cat([centre_normalise(f) for f in frs]))
    ab, conf = feature_warp(ft, keys, stacked(torch.cat(abs_)), tau=0.1)
    # naive: every target position against the list of all reference positions
    q = centre_normalise(ft)[0]
    allk = torch.cat([centre_normalise(f)[0] for f in frs])
    allv = torch.cat([a[0].flatten(1).T for a in abs_])
    sim = q @ allk.T
    want = ((sim / 0.1).softmax(-1) @ allv).T.reshape(1, 2, 3, 4)
    assert torch.allclose(ab, want, atol=1e-5)
    assert torch.allclose(conf, sim.amax(-1).reshape(1, 1, 3, 4), atol=1e-6)


def two_textures(n: int = 128):
    """A grey target whose left half is stripes and right half dots; a red photo of stripes and a
    blue photo of dots."""
    yy, xx = np.mgrid[:n, :n]
    stripes = (0.35 + 0.3 * (np.sin(yy / 2.0) > 0)).astype(np.float32)
    dots = (0.35 + 0.3 * ((np.sin(yy / 3.0) * np.sin(xx / 3.0)) > 0.3)).astype(np.float32)
    target = np.where(xx < n // 2, stripes, dots)

    def colour(g, rgb):
        return np.clip(g[..., None] * np.array(rgb)[None, None] * 1.6, 0, 1).astype(np.float32)

    return target, colour(stripes, (1.0, 0.25, 0.2)), colour(dots, (0.2, 0.35, 1.0))


def redness(rgb: np.ndarray) -> float:
    return float((rgb[..., 0] - rgb[..., 2]).mean())


@pytest.mark.parametrize("name", ["warp-grey", "exemplar"])
def test_each_region_takes_colour_from_the_reference_that_matches_it(name):
    target, red_stripes, blue_dots = two_textures()
    n = target.shape[1]
    left, right = np.s_[:, 8:n // 2 - 8], np.s_[:, n // 2 + 8:-8]
    both = nc.colorize(name, target, reference=[red_stripes, blue_dots]).rgb
    only_red = nc.colorize(name, target, reference=red_stripes).rgb
    only_blue = nc.colorize(name, target, reference=blue_dots).rgb
    assert redness(both[left]) > 0.15 and redness(both[right]) < -0.15  # stripes red, dots blue
    assert redness(only_red[right]) > 0.15 and redness(only_blue[left]) < -0.15  # (one alone colours both)
    # the order of the references does not matter
    swapped = nc.colorize(name, target, reference=[blue_dots, red_stripes]).rgb
    assert np.abs(swapped - both).max() < 0.02


@pytest.mark.parametrize("name", ["exemplar", "exemplar-standard", "warp-grey", "histogram", "reinhard"])
def test_one_reference_in_a_list_is_bit_for_bit_that_reference_and_twice_nearly(name):
    target, red, _ = two_textures(64)
    one = nc.colorize(name, target, reference=red).rgb
    assert np.array_equal(nc.colorize(name, target, reference=[red]).rgb, one)
    assert np.abs(nc.colorize(name, target, reference=(red, red)).rgb - one).max() < 1e-4


def test_histogram_models_take_the_union_of_the_references_colours():
    target, red, blue = two_textures(64)
    union = nc.colorize("histogram", target, reference=[red, blue]).rgb
    mean = (histogram_from_rgb(red) + histogram_from_rgb(blue)) / 2
    assert np.abs(union - nc.colorize("histogram", target, histogram=mean).rgb).max() < 1e-5


def test_references_as_files_and_clear_errors(tmp_path):
    from napari_colorize.io import write_image

    target, red, blue = two_textures(64)
    paths = [tmp_path / "red.png", tmp_path / "blue.png"]
    for p, im in zip(paths, (red, blue)):
        write_image(p, im)
    from_files = nc.colorize("warp-grey", target, reference=[str(paths[0]), paths[1]]).rgb
    from napari_colorize.io import read_image

    arrays = nc.colorize("warp-grey", target, reference=[read_image(p) for p in paths]).rgb
    assert np.array_equal(from_files, arrays)
    with pytest.raises(ValueError, match="holds no image"):
        nc.colorize("warp-grey", target, reference=[])
    with pytest.raises(ValueError, match="reference 2 of 2 has no colour"):
        nc.colorize("warp-grey", target, reference=[red, np.repeat(target[..., None], 3, -1)])


def test_memory_is_checked_for_the_union():
    model = nc.load_model("exemplar-standard", pretrained=False)
    one, three = model.attention_memory((224, 224)), model.attention_memory((224, 224), 3)
    assert three > 2.5 * one
    from napari_colorize.plan import check_memory

    with pytest.raises(MemoryError, match="with 40 references.*fewer references"):
        check_memory(model, (1024, 1024), 40)


def test_cli_takes_several_references(tmp_path):
    from napari_colorize.io import read_image, write_image

    from PIL import Image

    target, red, blue = two_textures(64)
    Image.fromarray((target * 255).astype(np.uint8)).save(tmp_path / "t.png")
    write_image(tmp_path / "a.png", red)
    write_image(tmp_path / "b.png", blue)
    r = subprocess.run([sys.executable, "-m", "napari_colorize.cli", "colorize", str(tmp_path / "t.png"), "-r",
                        str(tmp_path / "a.png"), "-r", str(tmp_path / "b.png"), "-m", "warp-grey", "-o",
                        str(tmp_path / "out.tif"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = read_image(tmp_path / "out.tif")
    want = nc.colorize("warp-grey", read_image(tmp_path / "t.png"),
                       reference=[read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png")]).rgb
    assert got.dtype == np.uint16 and np.abs(got / 65535.0 - want).max() <= 0.5 / 65535 + 1e-6
    # a bad second reference is named, and nothing is written
    Image.fromarray((target * 255).astype(np.uint8)).convert("RGB").save(tmp_path / "grey.png")
    r = subprocess.run([sys.executable, "-m", "napari_colorize.cli", "colorize", str(tmp_path / "t.png"), "-r",
                        str(tmp_path / "a.png"), "-r", str(tmp_path / "grey.png"), "-m", "warp-grey", "-o",
                        str(tmp_path / "out2.png")], capture_output=True, text=True)
    assert r.returncode == 2 and "grey.png" in r.stderr and "no colour" in r.stderr
    assert not (tmp_path / "out2.png").exists()


def test_volume_with_several_references_equals_colorize(tmp_path):
    """The volume engine (one plan for the whole volume, the union's state sent to its tasks) gives
    colorize()'s result, and the reference files it was given are protected inputs."""
    pytest.importorskip("ome_zarr")
    import zarr

    from napari_colorize.io import to_output_dtype
    from napari_colorize.io import read_image, write_image
    from napari_colorize.volume import colorize_volume

    target, red, blue = two_textures(64)
    stack = np.stack([target, target[:, ::-1], target]).astype(np.float32)
    write_image(tmp_path / "red.png", red)
    out = colorize_volume(stack, tmp_path / "v.zarr", "warp-grey", reference=[tmp_path / "red.png", blue],
                          scheduler="synchronous", temporal=0, dtype="uint8")
    got = np.moveaxis(zarr.open_group(str(out), mode="r")["0"][:], 0, -1)
    want = to_output_dtype(nc.colorize("warp-grey", stack, reference=[read_image(tmp_path / "red.png"), blue],
                                       temporal=0, return_attention=False).rgb, "uint8")
    assert got.shape == want.shape and np.array_equal(got, want)
    with pytest.raises(ValueError):  # (an output over one of the references is refused)
        colorize_volume(stack, tmp_path / "red.png", "warp-grey", reference=[tmp_path / "red.png", blue],
                        scheduler="synchronous")


def test_complementary_set_covers_what_one_reference_misses():
    from napari_colorize.suggest import complementary

    left = np.r_[np.ones(5), np.zeros(5)]  # matches the left half of the target
    right = np.r_[np.zeros(5), np.ones(5)]
    most = np.r_[np.ones(6) * 0.95, np.zeros(4)]  # the best alone, but much like 'left'
    picked = complementary([left, most, right], 3)
    assert [i for i, _ in picked][:2] == [1, 2]  # the best alone, then what it misses (not its sibling)
    assert picked[1][1] == pytest.approx((0.95 * 5 + 1 * 5) / 10)
    # nothing more to add: it stops
    assert len(complementary([left, left.copy()], 2)) == 1


def test_suggest_proposes_a_complementary_set():
    from napari_colorize.suggest import suggest_references

    target, red, blue = two_textures(128)
    half_red = red.copy()
    half_red[:, 64:] = red[:, :64]  # stripes only
    cands = [half_red, blue, red]
    ranked = suggest_references(target, cands, top=3, cache=False)
    got = suggest_references(target, cands, top=3, cache=False, together=2)
    assert len(got) == 2 and got[0].index == ranked[0].index
    assert {s.index for s in got} != {0, 2}  # two sources of stripes are not a complementary pair
    assert got[1].score >= got[0].score
