"""Checkpoints from strangers: configs are checked before anything is built, weights must be finite."""

import json
import resource

import pytest
import torch
from safetensors.torch import save_file

import napari_colorize as nc
from napari_colorize.models.registry import load_checkpoint, model_info, weights_dir


@pytest.fixture
def shipped(tmp_path):
    """A copy of the shipped histogram checkpoint's tensors and metadata, to edit."""
    sd, meta = load_checkpoint(weights_dir() / "histogram.safetensors")
    return sd, meta


def _write(tmp_path, sd, meta, name="edited.safetensors"):
    f = tmp_path / name
    save_file(sd, str(f), metadata={"napari_colorize": meta if isinstance(meta, str) else json.dumps(meta)})
    return f


def test_a_config_that_would_allocate_gigabytes_is_refused_before_allocating(tmp_path):
    sd, meta = load_checkpoint(weights_dir() / "exemplar.safetensors")
    meta["config"]["hidden"] = [16, 32, 64, 96, 30000]  # 30000-channel projections: gigabytes of weights
    f = _write(tmp_path, sd, meta)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(nc.CheckpointError, match="hidden"):
        nc.load_model(f, device="cpu")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB: no gigabytes were touched


def test_a_config_within_range_but_not_fitting_the_tensors_is_refused(tmp_path):
    sd, meta = load_checkpoint(weights_dir() / "exemplar.safetensors")
    meta["config"]["hidden"] = [16, 32, 64, 96, 256]
    with pytest.raises(nc.CheckpointError, match="does not fit"):
        nc.load_model(_write(tmp_path, sd, meta), device="cpu")


@pytest.mark.parametrize("edit, words", [
    ({"heads": "4"}, "heads"),
    ({"heads": 0}, "heads"),
    ({"heads": 7}, "divisible"),
    ({"attention_levels": 0}, "attention_levels"),
    ({"attention": "fancy"}, "attention"),
    ({"hidden": [16, 32]}, "hidden"),
    ({"span": -3}, "span"),
    ({"train_size": 1e9}, "train_size"),
    ({"backbone": "resnet"}, "backbone"),
    ({"modules_per_level": True}, "modules_per_level"),
    ({"novel": 1}, "unknown"),
])
def test_malformed_exemplar_configs_give_a_clear_error(tmp_path, edit, words):
    sd, meta = load_checkpoint(weights_dir() / "exemplar.safetensors")
    meta["config"].update(edit)
    with pytest.raises(nc.CheckpointError, match=words):
        nc.load_model(_write(tmp_path, sd, meta), device="cpu")


@pytest.mark.parametrize("edit, words", [
    ({"unet_depth": 40}, "unet_depth"), ({"channels": -1}, "channels"), ({"fu_channels": "x"}, "fu_channels")])
def test_malformed_histogram_configs_give_a_clear_error(tmp_path, shipped, edit, words):
    sd, meta = shipped
    meta["config"].update(edit)
    with pytest.raises(nc.CheckpointError, match=words):
        nc.load_model(_write(tmp_path, sd, meta), device="cpu")


@pytest.mark.parametrize("meta", ["[1, 2]", '"just a string"', '{"architecture": "histogram"}',
                                  '{"architecture": "histogram", "config": [1]}', '{"config": {}}'])
def test_malformed_metadata_gives_a_clear_error(tmp_path, shipped, meta):
    sd, _ = shipped
    with pytest.raises(nc.CheckpointError):
        nc.load_model(_write(tmp_path, sd, meta), device="cpu")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, shipped, value):
    sd, meta = shipped
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd = dict(sd)
    sd[key] = sd[key].clone()
    sd[key].view(-1)[0] = value
    with pytest.raises(nc.CheckpointError, match="NaN or infinite"):
        nc.load_model(_write(tmp_path, sd, meta), device="cpu")


def test_a_torch_file_with_malformed_meta_gives_a_clear_error(tmp_path, shipped):
    sd, _ = shipped
    f = tmp_path / "x.pt"
    torch.save({"state_dict": sd, "meta": "{not json"}, f)
    with pytest.raises(nc.CheckpointError, match="JSON"):
        nc.load_model(f, device="cpu")
    torch.save({"state_dict": sd, "meta": 42}, f)
    with pytest.raises(nc.CheckpointError, match="JSON object"):
        nc.load_model(f, device="cpu")


@pytest.mark.parametrize("name", [n for n in nc.list_models() if model_info(n).weights])
def test_registry_config_is_the_shipped_config(name):
    """One source of truth: load_model(name, pretrained=False) builds the shipped network."""
    from napari_colorize.models.exemplar import ExemplarConfig
    from napari_colorize.models.histogram import HistogramConfig

    _, meta = load_checkpoint(model_info(name).weights_path)
    cls = ExemplarConfig if meta["architecture"] == "exemplar" else HistogramConfig
    assert cls.from_dict(meta["config"]).to_dict() == model_info(name).config  # (absent keys: their defaults)


@pytest.fixture
def overflowing(tmp_path, histogram_random):
    """A checkpoint of finite weights, every one x 1e30 (float32): the network's colours overflow to NaN."""
    import copy

    from napari_colorize.models.registry import save_checkpoint

    net = copy.deepcopy(histogram_random.network)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1e30)
    return save_checkpoint(net, tmp_path / "overflow", {"name": "overflow"}, dtype=torch.float32)


def test_overflowing_weights_give_an_error_not_black_colours(tmp_path, overflowing, capsys):
    """Finite weights whose activations overflow: an error naming the model, in the library and on the
    command line (exit status 2), and no image file or OME-Zarr left behind (it was a black image, rc 0)."""
    import numpy as np
    import zarr
    from PIL import Image

    from napari_colorize import cli
    from napari_colorize._sample_data import sample_pair

    grey, ref, _ = sample_pair()
    grey = grey[:64, :64]
    with pytest.raises(nc.NonFiniteError, match="overflow.safetensors.*non-finite colours.*corrupt or overflow"):
        nc.colorize(str(overflowing), grey, reference=ref, size=64)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(ref).save(tmp_path / "r.png")
    for out in (tmp_path / "o.png", tmp_path / "o.tif"):
        assert cli.main(["colorize", str(tmp_path / "g.png"), "-r", str(tmp_path / "r.png"), "-m", str(overflowing),
                         "-o", str(out), "--size", "64"]) == 2
        assert "non-finite colours" in capsys.readouterr().err
        assert not out.exists() and not list(tmp_path.glob(".o.part*"))
    z = zarr.create_array(str(tmp_path / "v.zarr"), shape=(2, 64, 64), chunks=(1, 64, 64), dtype="uint8")
    z[:] = np.stack([grey, grey])
    assert cli.main(["colorize", str(tmp_path / "v.zarr"), "-r", str(tmp_path / "r.png"), "-m", str(overflowing),
                     "-o", str(tmp_path / "o.zarr"), "--size", "64", "-q"]) == 2
    assert "non-finite colours" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_writers_refuse_non_finite_colours(tmp_path):
    import numpy as np

    from napari_colorize.io import ImageWriteError, write_image
    from napari_colorize.volume import write_ome_zarr

    rgb = np.full((2, 16, 16, 3), 0.5, np.float32)
    rgb[1, 3, 4, 0] = np.nan
    for name in ("x.tif", "x.npy"):
        with pytest.raises(ImageWriteError, match="NaN or infinite"):
            write_image(tmp_path / name, rgb)
        assert not (tmp_path / name).exists()
    with pytest.raises(ImageWriteError, match="NaN or infinite"):
        write_image(tmp_path / "x.png", np.where(np.isnan(rgb[1]), np.inf, rgb[1]))
    with pytest.raises(ImageWriteError, match="NaN or infinite"):
        write_ome_zarr(tmp_path / "x.zarr", rgb, rgb=True)
    assert not (tmp_path / "x.zarr").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.bool])
def test_float8_or_bool_weights_are_refused_with_a_message(tmp_path, shipped, dtype):
    sd, meta = shipped
    k = next(iter(sd))
    sd = {**sd, k: sd[k].to(dtype)}
    with pytest.raises(nc.CheckpointError, match=rf"hold {str(dtype).replace('torch.', '')} values .*float16"):
        nc.load_model(_write(tmp_path, sd, meta), device="cpu")


def _rezipped(src, dst, deflate=True):
    """``src`` (a torch file) written again with every entry deflate-compressed."""
    import shutil
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zi = zipfile.ZipInfo(info.filename)
            zi.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            with zin.open(info) as a, zout.open(zi, "w", force_zip64=True) as b:
                shutil.copyfileobj(a, b, 1 << 20)
    return dst


def test_a_deflate_bomb_torch_file_is_refused_before_inflating(tmp_path, monkeypatch):
    """fuzz11 #14: a 100 kB .pt whose one entry inflates to 100 MB of zeros (a 390 kB file to 400 MB) was
    inflated by torch.load before anything was checked; its zip directory is read first now."""
    sd = {"w": torch.zeros(25_000_000)}  # 100 MB of zeros: deflate makes it about 100 kB
    torch.save({"state_dict": sd, "meta": {"architecture": "exemplar", "config": {}}}, tmp_path / "stored.pt")
    bomb = _rezipped(tmp_path / "stored.pt", tmp_path / "bomb.pt")
    (tmp_path / "stored.pt").unlink()
    assert bomb.stat().st_size < 2_000_000
    def never(*a, **k):  # nothing may be inflated: torch.load is not reached
        raise AssertionError("torch.load was called on the bomb")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(nc.CheckpointError, match=r"refused to load bomb.pt: its entries are compressed \d+:1"):
        load_checkpoint(bomb)
    with pytest.raises(nc.CheckpointError, match="decompression bomb"):
        nc.load_model(bomb, device="cpu")


def test_torch_files_are_bounded_by_the_largest_network_and_checked_meta_first(tmp_path, shipped, monkeypatch):
    """A torch file holding more than the largest network a config admits (MAX_PARAMETERS x 8 bytes) is refused
    from its zip directory; a real checkpoint, stored or re-zipped with deflate, loads; bad metadata is
    refused before the tensors are read (they are mapped, not read)."""
    from napari_colorize.models import registry
    from napari_colorize.models.configs import MAX_PARAMETERS

    assert registry.MAX_CHECKPOINT_BYTES == MAX_PARAMETERS * 8 + 64 * 2**20
    sd, meta = shipped
    f = tmp_path / "h.pt"
    torch.save({"state_dict": sd, "meta": meta}, f)
    for path in (f, _rezipped(f, tmp_path / "deflated.pt")):  # (deflate gains ~10 % on weights)
        got, _ = load_checkpoint(path)
        assert all(torch.equal(got[k], sd[k]) for k in sd)
    size = sum(v.numel() * v.element_size() for v in sd.values())
    monkeypatch.setattr(registry, "MAX_CHECKPOINT_BYTES", size // 2)
    with pytest.raises(nc.CheckpointError, match=r"refused to load h.pt: its \d+ entries inflate to .* more than the "
                                                 r".* the largest network napari-colorize builds needs"):
        load_checkpoint(f)
    with pytest.raises(nc.CheckpointError, match=r"edited.safetensors: its \d+ tensors hold .* more than"):
        load_checkpoint(_write(tmp_path, sd, meta))
    monkeypatch.undo()
    read = []
    monkeypatch.setattr(registry, "_checked_tensors", lambda sd, source: read.append(1) or sd)
    torch.save({"state_dict": sd, "meta": {"architecture": "resnet", "config": {}}}, f)
    with pytest.raises(nc.CheckpointError, match="no known architecture"):
        load_checkpoint(f)
    with pytest.raises(nc.CheckpointError, match="no known architecture"):
        load_checkpoint(_write(tmp_path, sd, {"architecture": "resnet", "config": {}}))
    assert read == []


def test_safetensors_sizes_and_metadata_are_checked_before_any_tensor_is_read(tmp_path, shipped, monkeypatch):
    import safetensors

    sd, meta = shipped
    f = _write(tmp_path, sd, {"architecture": "histogram"})  # (no config)
    calls = []
    real = safetensors.safe_open

    class Spy:
        def __init__(self, *a, **k):
            self.f = real(*a, **k)

        def __enter__(self):
            self.f.__enter__()
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

        def get_tensor(self, k):
            calls.append(k)
            return self.f.get_tensor(k)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    with pytest.raises(nc.CheckpointError, match="no 'config'"):
        load_checkpoint(f)
    assert calls == []
    load_checkpoint(_write(tmp_path, sd, meta, "good.safetensors"))
    assert len(calls) == len(sd)


def test_max_parameters_bounds_the_largest_network_a_config_admits():
    from napari_colorize.models.configs import MAX_PARAMETERS
    from napari_colorize.models.registry import build_network

    net = build_network("histogram", {"backbone": "vgg19", "channels": 512, "unet_width": 64, "unet_depth": 4,
                                      "fu_channels": 512, "prior": True}, pretrained_backbone=False)
    n = sum(v.numel() for v in net.trainable_state_dict().values())
    assert 0.95 * MAX_PARAMETERS < n <= MAX_PARAMETERS
