"""Keyframes along a stack (issue 20, part 2): weights, validation, the engine against a naive loop,
the volume path equal to the in-process result, and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import napari_colorize as nc
from napari_colorize.keyframes import check_keyframes, keyframe_weights
from napari_colorize.plan import Plan
from test_references import two_textures


def test_weights_between_and_beyond_the_keyframes():
    pos = [2, 6, 10]
    assert keyframe_weights(pos, 0) == [(2, 1.0)] and keyframe_weights(pos, 12) == [(10, 1.0)]
    assert keyframe_weights(pos, 6) == [(6, 1.0)]
    assert keyframe_weights(pos, 3) == [(2, 0.75), (6, 0.25)]
    assert keyframe_weights(pos, 3, "nearest") == [(2, 1.0)]
    assert keyframe_weights(pos, 4, "nearest") == [(2, 1.0)]  # (a tie: the earlier)
    assert keyframe_weights(pos, 5, "nearest") == [(6, 1.0)]


def test_keyframes_are_checked():
    r = np.zeros((4, 4, 3))
    assert list(check_keyframes({5: r, 0: r, -1: r}, 10)) == [0, 5, 9]
    with pytest.raises(ValueError, match="0..9"):
        check_keyframes({10: r}, 10)
    with pytest.raises(ValueError, match="twice"):
        check_keyframes({9: r, -1: r}, 10)
    with pytest.raises(TypeError, match="whole number"):
        check_keyframes({1.5: r}, 10)
    with pytest.raises(ValueError, match="no keyframe"):
        check_keyframes({}, 10)
    with pytest.raises(ValueError, match="blend"):
        check_keyframes({0: r}, 10, "cubic")
    target, red, blue = two_textures(64)
    with pytest.raises(ValueError, match="not both"):
        nc.colorize("warp-grey", np.stack([target] * 3), reference=red, references={0: blue})
    with pytest.raises(ValueError, match="keyframe 2: the reference has no colour"):
        nc.colorize("warp-grey", np.stack([target] * 3), references={0: red, 2: np.stack([target] * 3, -1)})


@pytest.fixture(scope="module")
def scene():
    target, red, blue = two_textures(64)
    stack = np.stack([target, target[:, ::-1], target[::-1], target, target[:, ::-1]]).astype(np.float32)
    return stack, red, blue


@pytest.mark.parametrize("name", ["warp-grey", "exemplar"])
def test_nearest_keyframe_equals_colourising_each_slice_with_it(scene, name):
    stack, red, blue = scene
    got = nc.colorize(name, stack, references={0: red, 4: [blue, red]}, blend="nearest", temporal=0).rgb
    for z in range(5):  # the naive loop: each slice alone with its nearer keyframe's references
        want = nc.colorize(name, stack[z], reference=red if z <= 2 else [blue, red]).rgb
        assert np.abs(got[z] - want).max() < 1e-5, z


def test_linear_blend_is_the_distance_weighted_mean_of_the_predictions(scene):
    stack, red, blue = scene
    model = nc.load_model("exemplar")
    plan = Plan.for_target(model, stack, references={1: red, 4: blue})
    for z, w in ((0, 0.0), (1, 0.0), (2, 1 / 3), (3, 2 / 3), (4, 1.0)):
        ab = plan.predict(z)[0].ab
        a = Plan.for_target(model, stack[z], reference=red).predict(0)[0].ab
        b = Plan.for_target(model, stack[z], reference=blue).predict(0)[0].ab
        assert torch.allclose(ab, (1 - w) * a + w * b, atol=1e-5), z


def test_the_volume_with_keyframes_equals_colorize(tmp_path, scene):
    """Parts of 2 slices (each with its temporal neighbours) know where they are along the stack."""
    pytest.importorskip("ome_zarr")
    import zarr

    from napari_colorize.io import to_output_dtype, write_image
    from napari_colorize.volume import colorize_volume

    stack, red, blue = scene
    write_image(tmp_path / "blue.png", blue)
    kf = {0: red, 3: tmp_path / "blue.png"}
    out = colorize_volume(stack, tmp_path / "v.zarr", "warp-grey", references=kf, scheduler="synchronous",
                          temporal=1, chunks=(2, 64, 64))
    got = np.moveaxis(zarr.open_group(str(out), mode="r")["0"][:], 0, -1)
    from napari_colorize.io import read_image

    want = to_output_dtype(nc.colorize("warp-grey", stack, references={0: red, 3: read_image(tmp_path / "blue.png")},
                                       temporal=1, return_attention=False).rgb, "uint8")
    assert np.array_equal(got, want)
    # other keyframes: the unfinished-or-finished store is not taken as the same run
    with pytest.raises(Exception, match="exists|not resumed|overwrite"):
        colorize_volume(stack, out, "warp-grey", references={0: red, 2: blue}, scheduler="synchronous", temporal=1,
                        chunks=(2, 64, 64))


def test_cli_keyframes(tmp_path, scene):
    import tifffile

    from napari_colorize.io import read_image, write_image

    stack, red, blue = scene
    tifffile.imwrite(tmp_path / "s.tif", stack)
    write_image(tmp_path / "a.png", red)
    write_image(tmp_path / "b.png", blue)
    run = lambda *a: subprocess.run([sys.executable, "-m", "napari_colorize.cli", "colorize", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True)
    r = run(tmp_path / "s.tif", "--keyframe", f"0:{tmp_path / 'a.png'}", "--keyframe", f"4:{tmp_path / 'b.png'}",
            "-m", "warp-grey", "--temporal", "0", "-o", tmp_path / "out.tif", "--quiet")
    assert r.returncode == 0, r.stderr
    got = read_image(tmp_path / "out.tif") / 65535.0
    want = nc.colorize("warp-grey", read_image(tmp_path / "s.tif"), temporal=0,
                       references={0: read_image(tmp_path / "a.png"), 4: read_image(tmp_path / "b.png")}).rgb
    assert np.abs(got - want).max() <= 0.5 / 65535 + 1e-6
    r = run(tmp_path / "s.tif", "--keyframe", "first.png", "-o", tmp_path / "x.tif")
    assert r.returncode == 2 and "SLICE:IMAGE" in r.stderr
    r = run(tmp_path / "s.tif", "--keyframe", f"9:{tmp_path / 'a.png'}", "-m", "warp-grey", "-o", tmp_path / "y.tif")
    assert r.returncode != 0 and "0..4" in r.stderr and not (tmp_path / "y.tif").exists()
    # a keyframe's image is an input: never written over
    r = run(tmp_path / "s.tif", "--keyframe", f"0:{tmp_path / 'a.png'}", "-m", "warp-grey", "-o", tmp_path / "a.png",
            "--overwrite")
    assert r.returncode == 2 and np.array_equal(read_image(tmp_path / "a.png"), (red * 255).round().astype(np.uint8))


def test_the_temporal_smoothing_does_not_cross_a_cut(scene):
    """Keyframes on adjacent slices mark a cut: each side comes out as if it were colourised alone."""
    stack, red, blue = scene
    got = nc.colorize("warp-grey", stack, references={1: red, 2: blue}, temporal=2).rgb
    before = nc.colorize("warp-grey", stack[:2], reference=red, temporal=2).rgb
    after = nc.colorize("warp-grey", stack[2:], reference=blue, temporal=2).rgb
    assert np.abs(got[:2] - before).max() < 1e-5 and np.abs(got[2:] - after).max() < 1e-5
    # without the cut (keyframes apart), neighbours across the switch are mixed in
    apart = nc.colorize("warp-grey", stack, references={0: red, 2: blue}, temporal=2, blend="nearest").rgb
    assert np.abs(apart[2:] - after).max() > 1e-3
