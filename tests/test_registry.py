import json
import pickle

import pytest
import torch

import napari_colorize as nc
from napari_colorize.models.registry import load_checkpoint, resolve_device


def test_list_models_has_the_baselines_and_only_loadable_names():
    names = nc.list_models()
    assert "welsh" in names and "reinhard" in names
    for n in names:
        assert nc.load_model(n, device="cpu") is not None
    everything = nc.list_models(include_untrained=True)
    assert {"exemplar", "exemplar-standard", "exemplar-single", "exemplar-no-adv", "exemplar-no-pixel",
            "exemplar-no-hist", "exemplar-paper", "histogram"} <= set(everything)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="welsh"):
        nc.load_model("no-such-model")


def test_missing_weights_say_so():
    missing = [n for n in nc.list_models(True) if n not in nc.list_models()]
    assert missing  # the paper configurations never ship weights
    with pytest.raises(FileNotFoundError, match="pretrained=False"):
        nc.load_model(missing[0], device="cpu")


def test_pretrained_false_builds_the_architecture(exemplar_random, histogram_random):
    assert exemplar_random.kind == "exemplar" and exemplar_random.multiple == 32
    assert histogram_random.kind == "histogram"


def test_checkpoint_round_trip(tmp_path, exemplar_random):
    path = nc.save_checkpoint(exemplar_random.network, tmp_path / "mine", {"name": "mine", "training": {"steps": 0}})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["architecture"] == "exemplar" and meta["config"]["backbone"] == "efficientnet_lite0"
    sd, meta2 = load_checkpoint(path)
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    assert not any(k.startswith("backbone.") for k in sd)
    m = nc.load_model(path, device="cpu")
    assert m.name == "mine"
    L, R = torch.rand(1, 1, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = exemplar_random.network(L, R)[0]
        b = m.network(L, R)[0]
    # same weights up to fp16 rounding of the trainable part; the random backbone is rebuilt from
    # ImageNet weights, so compare a model rebuilt the same way
    m2 = nc.load_model(path, device="cpu")
    with torch.no_grad():
        assert torch.allclose(m2.network(L, R)[0], b)
    assert a.shape == b.shape


def test_checkpoint_of_another_architecture(tmp_path, histogram_random):
    path = nc.save_checkpoint(histogram_random.network, tmp_path / "h", {"name": "h"})
    sd, meta = load_checkpoint(path)
    meta["architecture"] = "exemplar"
    meta["config"] = nc.load_model("exemplar", pretrained=False).config["config"]
    from safetensors.torch import save_file

    bad = tmp_path / "liar.safetensors"
    save_file(sd, str(bad), metadata={"napari_colorize": json.dumps(meta)})
    with pytest.raises(nc.CheckpointError, match="does not fit"):
        nc.load_model(bad, device="cpu")


def test_truncated_checkpoint(tmp_path, histogram_random):
    path = nc.save_checkpoint(histogram_random.network, tmp_path / "h", {"name": "h"})
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(nc.CheckpointError, match="not a complete safetensors"):
        nc.load_model(cut, device="cpu")


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    sentinel = tmp_path / "pwned"
    f = tmp_path / "evil.pt"
    with open(f, "wb") as fh:
        pickle.dump({"state_dict": _Evil(str(sentinel)), "meta": {}}, fh)
    with pytest.raises(nc.CheckpointError, match="refused"):
        nc.load_model(f, device="cpu")
    assert not sentinel.exists()


def test_weights_only_torch_checkpoint_is_accepted(tmp_path, histogram_random):
    f = tmp_path / "ok.pt"
    net = histogram_random.network
    torch.save({"state_dict": net.trainable_state_dict(), "meta": {"architecture": "histogram",
                                                                  "config": net.config.to_dict()}}, f)
    m = nc.load_model(f, device="cpu")
    assert m.kind == "histogram"


def test_unknown_format_and_missing_file(tmp_path):
    f = tmp_path / "weights.h5"
    f.write_bytes(b"\x89HDF")
    with pytest.raises(nc.CheckpointError, match="format"):
        nc.load_model(f)
    with pytest.raises(FileNotFoundError):
        nc.load_model(tmp_path / "nothing.safetensors")


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            nc.load_model("welsh", device="cuda")
    if not (torch.backends.mps.is_available()):
        with pytest.raises(RuntimeError, match="MPS"):
            resolve_device("mps")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_list_models_by_kind():
    ex, hist = nc.list_models(kind="exemplar"), nc.list_models(kind="histogram")
    assert "exemplar" in ex and "welsh" in ex and "histogram" not in ex
    assert hist == ["histogram", "histogram-companion", "histogram-plain"]
    assert nc.list_models(kind="hints") == ["levin", "levin-paper"]  # colour points alone
    assert sorted(ex + hist + ["levin", "levin-paper"]) == sorted(nc.list_models())
    with pytest.raises(ValueError, match="kind"):
        nc.list_models(kind="video")


def test_listing_models_does_not_import_torch():
    """`napari-colorize models` answers at once: the registry lists models from plain configs."""
    import subprocess
    import sys

    code = ("import sys, napari_colorize as nc, napari_colorize.cli as cli\n"
            "names = nc.list_models(); rc = cli.main(['models'])\n"
            "print('TORCH', 'torch' in sys.modules, rc, len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "TORCH False 0" in out.stdout, out.stdout + out.stderr


def test_the_registry_is_the_one_place_that_names_the_defaults():
    from napari_colorize.models.registry import COMPARISON, comparison_models, default_model

    assert default_model("exemplar") == "exemplar" and default_model("histogram") == "histogram"
    assert comparison_models() == list(COMPARISON)
    with pytest.raises(ValueError, match="kind"):
        default_model("paint")


def test_one_dispatch_from_an_architecture_to_its_network_and_wrapper(tmp_path, histogram_random):
    """registry.architectures() is the one map from the name a checkpoint carries to its network and wrapper
    classes; each class names its own architecture, and a saved network comes back as its own wrapper."""
    from napari_colorize.models.registry import architectures, build_network, save_checkpoint

    known = architectures()
    assert set(known) == {"exemplar", "histogram"}
    for name, (net_cls, wrapper) in known.items():
        assert net_cls.architecture == name == wrapper.architecture
    net = build_network("histogram", histogram_random.network.config.to_dict(), pretrained_backbone=False)
    assert type(net) is known["histogram"][0]
    path = save_checkpoint(net, tmp_path / "h.safetensors", {"name": "h"})
    assert json.loads(path.with_suffix(".json").read_text())["architecture"] == "histogram"
    assert type(nc.load_model(path, device="cpu")) is known["histogram"][1]
    with pytest.raises(nc.models.registry.CheckpointError, match="unknown architecture"):
        build_network("resnet", {})
