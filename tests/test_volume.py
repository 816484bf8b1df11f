"""Volumes in, volumes out (napari_colorize.volume): OME-Zarr on dask, locally and on a
dask.distributed cluster on loopback. Every result is compared with colorize() on the whole array
in this process: the same uint8 values, slice for slice."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import zarr  # the [distributed] extra is part of [testing]

import napari_colorize as nc
from napari_colorize import cli, volume
from napari_colorize.io import to_output_dtype
from napari_colorize.models.base import Colorizer
from napari_colorize.volume import MissingExtraError, ResumeError, colorize_volume


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c:
        yield c


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster, set_as_default=False) as cl:
        yield cl


@pytest.fixture(scope="module")
def stack_and_ref():
    """A 6 x 64 x 64 uint16 volume (six crops of the sample photo, noisy) and a colour reference."""
    from napari_colorize._sample_data import sample_pair

    grey, ref, _ = sample_pair()
    rng = np.random.default_rng(0)
    vol = np.stack([grey[i * 8:i * 8 + 64, 100:164].astype(np.uint16) * 200 + rng.integers(0, 50, (64, 64))
                    for i in range(6)]).astype(np.uint16)
    return vol, ref[::4, ::4].copy()


def _zarr(path, vol, chunks=(2, 64, 64)):
    z = zarr.create_array(str(path), shape=vol.shape, chunks=chunks, dtype=vol.dtype)
    z[:] = vol
    return path


def _expected(model, vol, ref, dtype="uint8", **kw):
    """colorize() on the whole array, in this process, as the output dtype; (stack..., Y, X, 3)."""
    return to_output_dtype(nc.colorize(model, vol, reference=ref, return_attention=False, **kw).rgb, dtype)


def _level(path, level=0):
    """An output level with its colour axis last: (stack..., Y, X, 3)."""
    return np.moveaxis(zarr.open_group(str(path), mode="r")[str(level)][:], 0, -1)


def _png(path, rgb):
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return path


def test_cli_on_a_cluster_equals_colorize_on_the_whole(tmp_path, stack_and_ref, client):
    """The shipped exemplar model, temporal smoothing on, 3 tasks over 2 worker processes: the
    OME-Zarr equals colorize(temporal=2) of the whole array; each worker loaded the model once."""
    vol, ref = stack_and_ref
    src = _zarr(tmp_path / "in.zarr", vol)
    out = tmp_path / "out.zarr"
    rc = cli.main(["colorize", str(src), "-r", str(_png(tmp_path / "ref.png", ref)), "-m", "exemplar", "-o", str(out),
                   "--scheduler", client.scheduler.address, "--temporal", "2", "-q"])
    assert rc == 0
    want = _expected("exemplar", vol, ref, temporal=2)
    np.testing.assert_array_equal(_level(out), want)
    plain = _expected("exemplar", vol, ref, temporal=0)
    assert np.abs(plain.astype(int) - want).max() > 0  # (temporal smoothing changed something to match)
    loads = client.run(lambda: volume.MODEL_LOADS[0])
    assert max(loads.values()) == 1 and sum(loads.values()) >= 1
    g = zarr.open_group(str(out), mode="r")
    rec = g.attrs[volume.RECORD_KEY]
    assert rec["complete"] and volume.PROGRESS_ARRAY not in g
    assert g["0"].chunks == (3, 2, 64, 64) and g["0"].dtype == np.uint8


def test_library_on_a_cluster_with_a_model_object(tmp_path, stack_and_ref, client):
    """A model that cannot be loaded by name (random weights) is sent to each worker once; a
    numpy volume is split by the chunks asked for."""
    import torch

    vol, ref = stack_and_ref
    torch.manual_seed(0)
    model = nc.load_model("warp", device="cpu")
    assert model.source == "warp"
    model.source = None  # as if it could not be loaded by name: the object itself goes to the workers
    out = colorize_volume(vol, tmp_path / "o.zarr", model, reference=ref, client=client, chunks=(3, 64, 64))
    np.testing.assert_array_equal(_level(out), _expected(model, vol, ref))
    assert zarr.open_group(str(out), mode="r")["0"].chunks == (3, 3, 64, 64)


def test_colour_points_on_a_cluster_equal_colorize(tmp_path, stack_and_ref, client):
    """Colour points of one slice and of every slice, temporal smoothing across the tasks' borders, two worker
    processes: the volume equals colorize() of the whole with the same points."""
    vol, ref = stack_and_ref
    hints = [(20, 30, (0.9, 0.1, 0.1)), (3, 40, 12, (0.1, 0.2, 0.9))]
    out = colorize_volume(vol, tmp_path / "h.zarr", "reinhard", reference=ref, client=client, chunks=(2, 64, 64),
                          temporal=1, hints=hints)
    want = _expected("reinhard", vol, ref, temporal=1, hints=hints)
    np.testing.assert_array_equal(_level(out), want)
    assert not np.array_equal(want, _expected("reinhard", vol, ref, temporal=1, hints=hints[:1]))


class DieOnce(Colorizer):
    """Reinhard's transfer, except that the first ``deaths`` slices anywhere each kill their worker
    process (a flag file per death, created atomically, so that no two slices take the same one)."""

    def __init__(self, flag: str, deaths: int = 1) -> None:
        super().__init__("reinhard")
        self.base = nc.load_model("reinhard", device="cpu")
        self.flags = [f"{flag}-{k}" for k in range(deaths)]

    def prepare(self, reference=None, histogram=None):
        return self.base.prepare(reference=reference, histogram=histogram)

    def predict(self, L, state, return_attention=False):
        for flag in self.flags:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os._exit(1)  # the worker process dies mid-task, before writing anything
        return self.base.predict(L, state, return_attention)


@pytest.mark.parametrize("deaths", [1, 2])
def test_a_killed_worker_loses_nothing(tmp_path, stack_and_ref, client, deaths):
    """One worker process dies mid-task; or two die (two processes: with two workers that may be
    every worker holding the guide state, which must then be rebuilt; the broadcast-scatter version
    failed this case): dask retries, the output is whole and exact."""
    vol, ref = stack_and_ref
    src = _zarr(tmp_path / "in.zarr", vol, chunks=(1, 64, 64))
    flag = tmp_path / "died"
    out = colorize_volume(src, tmp_path / "o.zarr", DieOnce(str(flag), deaths), reference=ref, client=client)
    assert all(os.path.exists(f"{flag}-{k}") for k in range(deaths))  # the workers did die
    np.testing.assert_array_equal(_level(out), _expected("reinhard", vol, ref))
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]


def test_a_relative_input_on_workers_in_another_folder(tmp_path, stack_and_ref, client, monkeypatch):
    """The workers run in another working folder (started before the chdir): a relative input path
    is read by its absolute path there, not as zarr's fill values (an all-black result)."""
    vol, ref = stack_and_ref
    _zarr(tmp_path / "in.zarr", vol)
    _png(tmp_path / "ref.png", ref)
    monkeypatch.chdir(tmp_path)
    assert all(cwd != str(tmp_path) for cwd in client.run(os.getcwd).values())
    rc = cli.main(["colorize", "in.zarr", "-r", "ref.png", "-m", "reinhard", "-o", "out.zarr",
                   "--scheduler", client.scheduler.address, "-q"])
    assert rc == 0
    np.testing.assert_array_equal(_level(tmp_path / "out.zarr"), _expected("reinhard", vol, ref))


def test_an_input_a_worker_cannot_reach_raises(tmp_path, stack_and_ref):
    """The input gone (as on a worker that cannot see it) after the run started: the next chunk
    raises FileNotFoundError naming the path; no chunk of fill values is written as data."""
    vol, ref = stack_and_ref
    src = _zarr(tmp_path / "in.zarr", vol, chunks=(1, 64, 64))
    out = tmp_path / "o.zarr"

    def move_the_input(done, total):
        if done == 1:
            src.rename(tmp_path / "elsewhere.zarr")

    with pytest.raises(FileNotFoundError, match="in.zarr.*every dask worker must reach the input"):
        colorize_volume(src, out, "reinhard", reference=ref, temporal=0, scheduler="synchronous",
                        progress=move_the_input)
    g = zarr.open_group(str(out), mode="r")
    assert not g.attrs[volume.RECORD_KEY]["complete"] and int(g[volume.PROGRESS_ARRAY][:].sum()) == 1
    v = volume.open_volume(tmp_path / "elsewhere.zarr")
    (tmp_path / "elsewhere.zarr").rename(tmp_path / "gone.zarr")
    with pytest.raises(FileNotFoundError, match="elsewhere.zarr"):
        v.data[0].compute()


def _stopped_run(source, out, **kw):
    """A run stopped (as by Ctrl-C, from its progress callback) after its first two chunks."""
    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_volume(source, out, "reinhard", progress=stop_after_two, **kw)


def test_an_interrupted_run_resumes_with_only_the_missing_chunks(tmp_path, stack_and_ref):
    vol, ref = stack_and_ref
    src = _zarr(tmp_path / "in.zarr", vol, chunks=(1, 64, 64))
    out = tmp_path / "o.zarr"
    kw = dict(reference=ref, temporal=1, scheduler="synchronous")
    _stopped_run(src, out, **kw)
    g = zarr.open_group(str(out), mode="r")
    assert not g.attrs[volume.RECORD_KEY]["complete"]
    assert int(g[volume.PROGRESS_ARRAY][:].sum()) == 2
    # other arguments: refused, with what differs
    with pytest.raises(ResumeError, match="temporal"):
        colorize_volume(src, out, "reinhard", reference=ref, temporal=2, scheduler="synchronous")
    seen = []
    colorize_volume(src, out, "reinhard", progress=lambda d, t: seen.append((d, t)), **kw)
    assert seen == [(k, 4) for k in range(1, 5)]  # the four missing chunks, no more
    np.testing.assert_array_equal(_level(out), _expected("reinhard", vol, ref, temporal=1))
    # finished: not run again, not replaced without overwrite
    with pytest.raises(ResumeError, match="exists"):
        colorize_volume(src, out, "reinhard", **kw)
    seen.clear()
    colorize_volume(src, out, "reinhard", progress=lambda d, t: seen.append((d, t)), overwrite=True, **kw)
    assert len(seen) == 6


def test_a_resumed_run_refuses_an_input_that_changed(tmp_path, stack_and_ref, capsys):
    """Stopped part-way, then the input changed: resuming would keep the old input's colours in the
    slices already written; it is refused, saying the input changed (a slice already done and not
    in the sample: its file's time; a sampled slice of an array: its pixels). --overwrite starts again."""
    vol, ref = stack_and_ref
    src = _zarr(tmp_path / "in.zarr", vol, chunks=(1, 64, 64))
    out = tmp_path / "o.zarr"
    kw = dict(reference=ref, temporal=0, scheduler="synchronous")
    _stopped_run(src, out, **kw)
    changed = vol.copy()
    changed[1] = changed[1][::-1]  # slice 1 (written already), same values: the same intensity range
    zarr.open_array(str(src), mode="r+")[1] = changed[1]
    with pytest.raises(ResumeError, match="which changed since the run began \\(its files differ\\).*overwrite=True"):
        colorize_volume(src, out, "reinhard", **kw)
    r = str(_png(tmp_path / "ref.png", ref))
    cmd = ["colorize", str(src), "-r", r, "-m", "reinhard", "-o", str(out), "--temporal", "0", "-q"]
    assert cli.main(cmd) == 2
    assert "changed since the run began" in capsys.readouterr().err
    assert cli.main(cmd + ["--overwrite"]) == 0
    np.testing.assert_array_equal(_level(out), _expected("reinhard", changed, ref, temporal=0))
    # an array: its sampled slices' pixels
    arr_out = tmp_path / "a.zarr"
    _stopped_run(vol.copy(), arr_out, **kw)
    with pytest.raises(ResumeError, match="its pixels differ"):
        colorize_volume(np.ascontiguousarray(vol[:, ::-1]), arr_out, "reinhard", **kw)
    colorize_volume(vol.copy(), arr_out, "reinhard", **kw)  # the same array: resumed
    np.testing.assert_array_equal(_level(arr_out), _expected("reinhard", vol, ref, temporal=0))


def test_a_resumed_run_refuses_a_model_whose_settings_changed(tmp_path, stack_and_ref):
    """Stopped part-way, then the model of the same name changed (its config's output stage here; a new
    version of the package, or new weights or a mixed-in network under that name, alike): resuming would
    keep the old model's colours in the slices already written; it is refused, saying so. The same model
    again: resumed."""
    import napari_colorize as nc
    from napari_colorize.models.configs import HistogramConfig

    vol, ref = stack_and_ref
    out = tmp_path / "m.zarr"
    model = nc.load_model("histogram", device="cpu")
    kw = dict(reference=ref, temporal=0, scheduler="synchronous")

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_volume(vol.copy(), out, model, progress=stop_after_two, **kw)
    shipped = model.network.config
    model.network.config = HistogramConfig.from_dict({**shipped.to_dict(), "coherence": 1})
    with pytest.raises(ResumeError, match="weights or settings have changed.*overwrite=True"):
        colorize_volume(vol.copy(), out, model, **kw)
    model.network.config = shipped
    colorize_volume(vol.copy(), out, model, **kw)  # (resumed)
    assert zarr.open_group(str(out), mode="r").attrs[volume.RECORD_KEY]["complete"]


def test_ome_zarr_input_axes_units_pyramid_and_uint16(tmp_path, stack_and_ref):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.writer import write_image

    vol, ref = stack_and_ref
    src = tmp_path / "in.ome.zarr"
    write_image(vol, zarr.open_group(str(src), mode="w"), axes="zyx", scale={"z": 2.0, "y": 0.5, "x": 0.5},
                axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
                storage_options={"chunks": (2, 32, 32)}, scale_factors=[2])
    out = colorize_volume(src, tmp_path / "o.ome.zarr", "reinhard", reference=ref, pyramid=2, dtype="uint16")
    node = next(iter(Reader(parse_url(str(out)))()))
    assert node.metadata["axes"] == [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    scales = [[t["scale"] for t in ts if t["type"] == "scale"][0] for ts in node.metadata["coordinateTransformations"]]
    assert scales == [[1.0, 2.0, 0.5, 0.5], [1.0, 2.0, 1.0, 1.0], [1.0, 2.0, 2.0, 2.0]]
    assert [d.shape for d in node.data] == [(3, 6, 64, 64), (3, 6, 32, 32), (3, 6, 16, 16)]
    g = zarr.open_group(str(out), mode="r")
    assert g["0"].chunks == (3, 2, 32, 32) and g["0"].dtype == np.uint16
    want = _expected("reinhard", vol, ref, "uint16")
    np.testing.assert_array_equal(_level(out), want)
    halved = want.astype(np.float64).reshape(6, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(_level(out, 1) - halved).max() <= 1  # (levels are halved in float, then rounded)


def test_ngff_04_time_series_with_temporal(tmp_path, stack_and_ref):
    """(t, z, y, x) in NGFF 0.4 (zarr format 2): c goes after t, units kept, and temporal smoothing
    stays within each time point's z run, as in colorize()."""
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    vol, ref = stack_and_ref
    v4 = np.stack([vol[:3], vol[3:]])
    src = tmp_path / "t.zarr"
    write_image(v4, zarr.open_group(str(src), mode="w", zarr_format=2), axes="tzyx", fmt=FormatV04(),
                axes_units={"t": "second", "z": "micrometer"}, storage_options={"chunks": (1, 2, 64, 64)},
                scale_factors=[])
    out = colorize_volume(src, tmp_path / "o.zarr", "reinhard", reference=ref, temporal=1)
    g = zarr.open_group(str(out), mode="r")
    axes = g.attrs["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["t", "c", "z", "y", "x"]
    assert axes[0]["unit"] == "second" and axes[2]["unit"] == "micrometer"
    assert g["0"].chunks == (1, 3, 2, 64, 64)
    want = to_output_dtype(nc.colorize("reinhard", v4, reference=ref, rgb=False, temporal=1).rgb, "uint8")
    np.testing.assert_array_equal(np.moveaxis(g["0"][:], 1, -1), want)


def test_a_multichannel_tiff_volume_takes_its_channel_by_index(tmp_path, stack_and_ref):
    """An ImageJ TIFF (z, c, y, x): without a channel, its channels are slices of the stack, with a warning saying
    how to pick one (tifffile names a z-stack saved without axes CYX too); colourised from the channel given by
    index; a name is refused (names are an OME-Zarr image's)."""
    import tifffile

    vol, ref = stack_and_ref
    src = tmp_path / "two.tif"
    tifffile.imwrite(src, np.stack([vol[::-1], vol], 1), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.warns(UserWarning, match="2 channels along C .* channel=K"):
        out = colorize_volume(src, tmp_path / "both.zarr", "reinhard", reference=ref)
    assert zarr.open_group(str(out), mode="r")["0"].shape == (6, 3, 2, 64, 64)
    out = colorize_volume(src, tmp_path / "gfp.zarr", "reinhard", reference=ref, channel=1)
    np.testing.assert_array_equal(_level(out), _expected("reinhard", vol, ref))
    with pytest.raises(ValueError, match="by their index"):
        colorize_volume(src, tmp_path / "named.zarr", "reinhard", reference=ref, channel="GFP")


def test_a_multichannel_image_is_colourised_from_the_channel_chosen(tmp_path, stack_and_ref, capsys):
    """(c, z, y, x) with two named channels: refused without a choice (the names listed), then the
    channel chosen by name (CLI) or index (Python) is the one colourised."""
    from ome_zarr.writer import write_image

    vol, ref = stack_and_ref
    two = np.stack([vol[::-1], vol])  # channel 0 ("DAPI"): the slices reversed; 1 ("GFP"): the volume
    src = tmp_path / "two.ome.zarr"
    g = zarr.open_group(str(src), mode="w")
    write_image(two, g, axes="czyx", storage_options={"chunks": (1, 2, 64, 64)}, scale_factors=[])
    g.attrs["ome"] = {**dict(g.attrs["ome"]), "omero": {"channels": [{"label": "DAPI"}, {"label": "GFP"}]}}
    with pytest.raises(ValueError, match="2 channels.*0: DAPI, 1: GFP.*channel="):
        colorize_volume(src, tmp_path / "none.zarr", "reinhard", reference=ref)
    assert not (tmp_path / "none.zarr").exists()
    with pytest.raises(ValueError, match="no channel named 'RFP'"):
        colorize_volume(src, tmp_path / "none.zarr", "reinhard", reference=ref, channel="RFP")
    r = str(_png(tmp_path / "ref.png", ref))
    assert cli.main(["colorize", str(src), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "gfp.zarr"),
                     "--channel", "GFP", "-q"]) == 0
    np.testing.assert_array_equal(_level(tmp_path / "gfp.zarr"), _expected("reinhard", vol, ref))
    out = colorize_volume(src, tmp_path / "dapi.zarr", "reinhard", reference=ref, channel=0)
    np.testing.assert_array_equal(_level(out), _expected("reinhard", vol[::-1], ref))
    # a channel for an image without a channel axis, or for a run that is not a volume: refused
    with pytest.raises(ValueError, match="no channel axis"):
        colorize_volume(_zarr(tmp_path / "plain.zarr", vol), tmp_path / "p.zarr", "reinhard", reference=ref, channel=1)
    assert cli.main(["colorize", r, "-r", r, "-m", "reinhard", "-o", str(tmp_path / "x.png"), "--channel", "1"]) == 2
    assert "has no channel axis" in capsys.readouterr().err  # (--channel picks a TIFF's channel too, not a PNG's)


def _space(names):
    return [{"name": n, "type": "space"} for n in names]


@pytest.mark.parametrize("axes", [
    _space("yzx"),  # y declared first: it would have been taken as the stack axis
    _space("zxy"),  # x before y: each slice transposed
    _space("xzy"),
    [{"name": "z", "type": "space"}, {"name": "t", "type": "time"}] + _space("yx"),  # t after z
    [{"name": "z", "type": "space"}, {"name": "c", "type": "channel"}] + _space("yx"),  # c after z
    _space("tyx"),  # a type contradicting the name (t as a space axis)
    _space("qyx"),  # an axis of no known role
    _space("zzx"),
], ids=lambda axes: "".join(a["name"] + a["type"][0] for a in axes))
def test_axes_in_an_order_not_accepted_are_refused(tmp_path, stack_and_ref, axes, capsys):
    """OME-Zarr whose axes are not y and x last after at most t, c, z (in NGFF order): an error (as
    docs/INPUTS.md promises), never a volume colourised along the wrong axis."""
    from ome_zarr.writer import write_image

    vol, ref = stack_and_ref
    src = tmp_path / "odd.ome.zarr"
    data = vol[:4, :, :] if len(axes) == 3 else np.stack([vol[:3], vol[3:]])
    g = zarr.open_group(str(src), mode="w")
    write_image(data, g, axes="zyx" if len(axes) == 3 else "tzyx", scale_factors=[])
    ome = dict(g.attrs["ome"])
    ome["multiscales"] = [{**ome["multiscales"][0], "axes": axes}]
    g.attrs["ome"] = ome
    with pytest.raises(ValueError, match="y and x last.*t, c, z, y, x"):
        volume.open_volume(src, channel=0 if any(a["type"] == "channel" for a in axes) else None)
    r = str(_png(tmp_path / "ref.png", ref))
    assert cli.main(["colorize", str(src), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "o.zarr")]) == 2
    assert "y and x last" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_outputs_over_inputs_are_refused(tmp_path, stack_and_ref, capsys):
    vol, ref = stack_and_ref
    src = _zarr(tmp_path / "in.zarr", vol)
    before = zarr.open_array(str(src), mode="r")[:]
    r = str(_png(tmp_path / "ref.png", ref))
    for target in (src, src / "inside.zarr"):
        with pytest.raises(ValueError, match="input"):
            colorize_volume(src, target, "reinhard", reference=ref, overwrite=True)
        assert cli.main(["colorize", str(src), "-r", r, "-m", "reinhard", "-o", str(target), "--overwrite"]) == 2
        assert "is an input" in capsys.readouterr().err
    not_ours = tmp_path / "notes.zarr"
    not_ours.mkdir()
    (not_ours / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a zarr store"):
        colorize_volume(src, not_ours, "reinhard", reference=ref, overwrite=True)
    assert (not_ours / "keep.txt").read_text() == "mine"
    np.testing.assert_array_equal(zarr.open_array(str(src), mode="r")[:], before)
    assert cli.main(["colorize", str(src), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "x.tif")]) == 2
    assert "OUT.zarr" in capsys.readouterr().err


def test_a_store_claiming_huge_slices_is_refused_before_reading(tmp_path, stack_and_ref):
    """zarr metadata is the file's word: 200000 x 200000 slices are refused before any is read."""
    vol, ref = stack_and_ref
    zarr.create_array(str(tmp_path / "huge.zarr"), shape=(4, 200_000, 200_000), chunks=(2, 200_000, 200_000),
                      dtype="uint16")
    with pytest.raises(MemoryError, match="fewer slices per chunk"):
        colorize_volume(tmp_path / "huge.zarr", tmp_path / "o.zarr", "reinhard", reference=ref)
    assert not (tmp_path / "o.zarr").exists()
    zarr.create_array(str(tmp_path / "obj.zarr"), shape=(2, 8, 8), chunks=(1, 8, 8), dtype="str")
    with pytest.raises(TypeError, match="not numbers"):
        colorize_volume(tmp_path / "obj.zarr", tmp_path / "o.zarr", "reinhard", reference=ref)


def test_without_the_extra_a_clear_error(tmp_path, stack_and_ref, monkeypatch, capsys):
    vol, ref = stack_and_ref
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now fails
    with pytest.raises(MissingExtraError, match=r"napari-colorize\[distributed\]"):
        colorize_volume(vol, tmp_path / "o.zarr", "reinhard", reference=ref)
    r = str(_png(tmp_path / "ref.png", ref))
    np.save(tmp_path / "v.npy", vol)
    assert cli.main(["colorize", str(tmp_path / "v.npy"), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "o.zarr")]) == 2
    assert "pip install 'napari-colorize[distributed]'" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()
    # everything else works without it
    assert cli.main(["colorize", str(tmp_path / "v.npy"), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "o.tif"),
                     "-q"]) == 0


def test_napari_writer_saves_an_rgb_layer_as_ome_zarr(tmp_path):
    import dask.array as da
    from npe2 import PluginManager, write

    PluginManager.instance().discover()  # (napari does this when it starts)

    from napari.layers import Image

    rng = np.random.default_rng(1)
    rgb = rng.random((2, 40, 30, 3)).astype(np.float32)
    layer = Image(da.from_array(rgb, chunks=(1, 20, 30, 3)), rgb=True, scale=(3.0, 0.5, 0.5),
                  translate=(0.0, 1.0, 2.0), units=("micrometer", "micrometer", "pixel"), name="r [exemplar]")
    out = tmp_path / "layer.ome.zarr"
    assert write(str(out), [layer], plugin_name="napari-colorize") == [str(out)]
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(np.moveaxis(g["0"][:], 0, -1), to_output_dtype(rgb, "uint8"))
    ms = g.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert ms["axes"][1]["unit"] == "micrometer" and "unit" not in ms["axes"][3]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 3.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="exists"):
        volume.write_ome_zarr(out, rgb, rgb=True)
    grey = (rng.random((50, 60)) * 4000).astype(np.uint16)
    g2 = volume.write_ome_zarr(tmp_path / "g.zarr", grey)
    np.testing.assert_array_equal(zarr.open_group(str(g2), mode="r")["0"][:], grey)


def test_the_memory_check_counts_every_task_that_runs_at_once(tmp_path, stack_and_ref, monkeypatch):
    """A chunk that fits once but not once per thread is refused, naming the count; one thread at a
    time (synchronous) it runs."""
    import dask

    from napari_colorize import plan

    vol, ref = stack_and_ref
    one = volume.task_memory(volume.open_volume(vol), 0, "uint8", 0)
    monkeypatch.setattr(plan, "available_memory", lambda device: int(one * 3))  # room for 2 tasks (80 %)
    with dask.config.set(num_workers=4):
        assert volume.concurrent_tasks() == 4
        with pytest.raises(MemoryError, match=r"4 x .* GB .*4 task\(s\) at once.*synchronous"):
            colorize_volume(vol, tmp_path / "o.zarr", "reinhard", reference=ref, temporal=0)
        assert not (tmp_path / "o.zarr").exists()
        colorize_volume(vol, tmp_path / "o.zarr", "reinhard", reference=ref, temporal=0, scheduler="synchronous")


def test_ome_zarr_writer_maps_axis_labels_to_ngff_axes(tmp_path):
    """A (z, t, y, x) layer is written transposed to NGFF's (t, c, z, y, x), each axis keeping its scale,
    offset and unit (z was labelled t with z's 2 um, t labelled z with t's 10 s, the units dropped);
    labels that cannot be mapped are refused, napari's default labels give the positional axes."""
    rng = np.random.default_rng(2)
    d = rng.random((4, 2, 16, 12, 3)).astype(np.float32)  # z=4, t=2, y, x, colour
    out = volume.write_ome_zarr(tmp_path / "zt.zarr", d, rgb=True, axis_labels=["z", "t", "y", "x"],
                                scale=[2.0, 10.0, 0.5, 0.25], translate=[1.0, 5.0, 0.0, 3.0],
                                units=["micrometer", "second", "micrometer", "micrometer"])
    g = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(g["0"][:], np.transpose(to_output_dtype(d, "uint8"), (1, 4, 0, 2, 3)))
    ms = g.attrs["ome"]["multiscales"][0]
    assert [(a["name"], a["type"], a.get("unit")) for a in ms["axes"]] == [
        ("t", "time", "second"), ("c", "channel", None), ("z", "space", "micrometer"), ("y", "space", "micrometer"),
        ("x", "space", "micrometer")]
    scale, trans = (t[k] for t, k in zip(ms["datasets"][0]["coordinateTransformations"], ("scale", "translation")))
    assert scale == [10.0, 1.0, 2.0, 0.5, 0.25] and trans == [5.0, 0.0, 1.0, 0.0, 3.0]
    volume.check_axis_order("zt.zarr", ms["axes"])  # (what the volume reader accepts)

    grey = rng.random((3, 16, 12)).astype(np.float32)  # (c, y, x): a channel axis, not z
    g2 = zarr.open_group(str(volume.write_ome_zarr(tmp_path / "c.zarr", grey, axis_labels=["C", "Y", "X"])), mode="r")
    assert [a["name"] for a in g2.attrs["ome"]["multiscales"][0]["axes"]] == ["c", "y", "x"]
    g3 = zarr.open_group(str(volume.write_ome_zarr(tmp_path / "d.zarr", grey, axis_labels=["-3", "-2", "-1"])),
                         mode="r")
    assert [a["name"] for a in g3.attrs["ome"]["multiscales"][0]["axes"]] == ["z", "y", "x"]
    g4 = zarr.open_group(str(volume.write_ome_zarr(tmp_path / "e.zarr", grey, axis_labels=["x", "t", "y"])), mode="r")
    assert [a["name"] for a in g4.attrs["ome"]["multiscales"][0]["axes"]] == ["t", "y", "x"]
    np.testing.assert_array_equal(g4["0"][:], np.transpose(grey, (1, 2, 0)))
    for labels, why in ((["z", "foo", "y", "x"], "'foo' cannot be mapped"), (["z", "z", "y", "x"], "twice"),
                        (["t", "z", "y", "q"], "'q' cannot be mapped"), (["c", "t", "y", "x"], "colour")):
        with pytest.raises(ValueError, match=why):
            volume.write_ome_zarr(tmp_path / "bad.zarr", d, rgb=True, axis_labels=labels)
        assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(ValueError, match="needs axes y and x"):
        volume.write_ome_zarr(tmp_path / "bad.zarr", grey, axis_labels=["t", "z", "x"])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_input_chunks_never_written_are_said(tmp_path, stack_and_ref, capsys, zarr_format):
    """A zarr input whose last slices were never written (an acquisition still being written, or cut
    short) is read as its fill value: colourised, but with a note (VolumeNote, printed by the CLI)
    saying how many chunks are missing and which slices have none. A complete input: no note."""
    import warnings

    vol, ref = stack_and_ref
    src = tmp_path / "cut.zarr"
    z = zarr.create_array(str(src), shape=vol.shape, chunks=(1, 32, 64), dtype=vol.dtype, zarr_format=zarr_format)
    z[:3] = vol[:3]
    z[3, :32] = vol[3, :32]  # slice 3: half written; slices 4 and 5: never
    with pytest.warns(volume.VolumeNote) as notes:
        colorize_volume(src, tmp_path / "o.zarr", "reinhard", reference=ref, temporal=0, scheduler="synchronous")
    said = [str(n.message) for n in notes if "not in the store" in str(n.message)]
    assert len(said) == 1, said
    assert "5 of its 12 chunks are not in the store" in said[0] and "fill value (0)" in said[0]
    assert "2 of its 6 slices (z 4-5) have none of their chunks" in said[0]
    r = str(_png(tmp_path / "ref.png", ref))
    assert cli.main(["colorize", str(src), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "o2.zarr"), "-q",
                     "--temporal", "0"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "5 of its 12 chunks are not in the store" in err and "(z 4-5)" in err
    full = _zarr(tmp_path / "full.zarr", vol, chunks=(1, 32, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error", volume.VolumeNote)
        colorize_volume(full, tmp_path / "o3.zarr", "reinhard", reference=ref, temporal=0, scheduler="synchronous")


def test_stored_chunks_of_a_4d_array_and_of_a_channel(tmp_path):
    """The chunk grid of what is read: a (t, z) stack names (t, z) slices; an OME-Zarr channel taken from
    several counts only its own chunks."""
    a = zarr.create_array(str(tmp_path / "tz.zarr"), shape=(2, 3, 8, 8), chunks=(1, 1, 8, 8), dtype="uint8")
    a[0] = 1
    a[1, 0] = 1
    v = volume.open_volume(tmp_path / "tz.zarr")
    assert v.stored.shape == (2, 3, 1, 1) and int(v.stored.sum()) == 4
    assert "(t, z) (1, 1), (1, 2)" in volume.missing_note(v)
    rng = np.random.default_rng(0)
    d = (rng.random((2, 3, 8, 8)) * 200 + 20).astype(np.uint8)  # (c, z, y, x)
    out = volume.write_ome_zarr(tmp_path / "c.ome.zarr", d, axis_labels=["c", "z", "y", "x"])
    g = zarr.open_group(str(out), mode="r+")
    g["0"][1, 2] = 0  # channel 1, slice 2: all fill value, which zarr 3 does not store
    assert volume.missing_note(volume.open_volume(out, channel=0)) is None
    assert "(z 2)" in volume.missing_note(volume.open_volume(out, channel=1))


@pytest.mark.parametrize("address, why", [("tcp://127.0.0.1:notaport", "the port 'notaport' is not a number"),
                                          ("tcp://", "no host and port"), ("tcp://127.0.0.1", "no port number"),
                                          ("tcp://127.0.0.1:99999", "the port 99999 is not between 1 and 65535"),
                                          ("http://127.0.0.1:8787", "unknown protocol"),
                                          ("thread", "neither the address")])
def test_a_malformed_scheduler_address_is_refused_before_any_work(tmp_path, stack_and_ref, capsys, monkeypatch,
                                                                   address, why):
    """A --scheduler that is not tcp://HOST:PORT is refused at once, naming the flag (it printed a raw
    'invalid literal for int()', then hung 20 s and printed a Client.__del__ traceback)."""
    import time

    vol, ref = stack_and_ref
    np.save(tmp_path / "v.npy", vol)
    r = str(_png(tmp_path / "ref.png", ref))

    def no_work(*a, **k):
        raise AssertionError("the volume was opened before the scheduler was checked")

    monkeypatch.setattr(volume, "open_volume", no_work)
    t0 = time.monotonic()
    assert cli.main(["colorize", str(tmp_path / "v.npy"), "-r", r, "-m", "reinhard", "-o", str(tmp_path / "o.zarr"),
                     "--scheduler", address, "-q"]) == 2
    assert time.monotonic() - t0 < 5
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and f"--scheduler {address!r}: {why}" in lines[0] and "tcp://HOST:PORT" in lines[0], err
    assert not (tmp_path / "o.zarr").exists()
    assert volume.scheduler_address("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert volume.scheduler_address("tcp://[::1]:8786") == "tcp://[::1]:8786"
    assert volume.scheduler_address("synchronous") is None and volume.scheduler_address(None) is None


def test_host_port_without_tcp_is_taken_as_tcp(tmp_path, stack_and_ref, capsys, monkeypatch):
    """--scheduler 127.0.0.1:PORT is tcp://127.0.0.1:PORT (as dask.distributed takes it; it was refused
    as an unknown local scheduler): nobody listening there, the clear message after CONNECT_TIMEOUT."""
    import socket

    vol, ref = stack_and_ref
    np.save(tmp_path / "v.npy", vol)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    monkeypatch.setattr(volume, "CONNECT_TIMEOUT", 1)
    assert cli.main(["colorize", str(tmp_path / "v.npy"), "-r", str(_png(tmp_path / "ref.png", ref)), "-m", "reinhard",
                     "-o", str(tmp_path / "o.zarr"), "--scheduler", f"127.0.0.1:{port}", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"error: no dask scheduler answers at tcp://127.0.0.1:{port}" in err and "Traceback" not in err


def test_a_client_that_fails_half_made_is_closed():
    """distributed leaves a Client whose constructor failed on something other than a connection error
    half-made, and at exit its __del__ waited 20 s, then printed a traceback; connect() closes it (run in
    a process of its own: the traceback came at the interpreter's exit)."""
    import subprocess
    import time

    script = (
        "import distributed.comm.tcp\n"
        "from napari_colorize import volume\n"
        "def broken(address, default_port=None):\n"
        "    raise ValueError('broken address')\n"
        "distributed.comm.tcp.parse_host_port = broken\n"
        "try:\n"
        "    volume.connect('tcp://127.0.0.1:9')\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n")
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "refused: --scheduler 'tcp://127.0.0.1:9': broken address" in run.stdout, run.stdout + run.stderr
    assert "Exception ignored" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert time.monotonic() - t0 < 15
