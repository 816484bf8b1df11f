"""The output's guided filter (config ``refine``) and ``training.tune_output``, which sets it and the
prior's temperature on a trained network."""

import math

import pytest
import torch

from napari_colorize.models.configs import ExemplarConfig
from napari_colorize.models.exemplar import EXEMPLAR_CONFIGS, ExemplarNet


def _step_scene(seed=0):
    """A lightness step between columns 15 and 16; a chroma step at the same place, plus noise."""
    g = torch.Generator().manual_seed(seed)
    L = torch.full((1, 1, 32, 32), -0.5)
    L[..., 16:] = 0.5
    clean = torch.empty(1, 2, 32, 32)
    clean[:, :, :, :16], clean[:, :, :, 16:] = 0.4, -0.4
    return L, clean, clean + 0.1 * torch.randn(clean.shape, generator=g)


def test_the_guided_filter_smooths_chroma_within_edges_and_keeps_them():
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey-gain-refine"], pretrained_backbone=False)
    L, clean, noisy = _step_scene()
    out = net.refine(L, noisy)
    inner = (slice(None), slice(None), slice(None), list(range(3, 13)) + list(range(19, 29)))
    assert float((out - clean)[inner].std()) < 0.5 * float((noisy - clean)[inner].std())
    # across the lightness edge the chroma step stays: the columns beside it keep their colour,
    # where a plain blur of the same window would mix the two sides
    assert float((out[..., 15] - 0.4).abs().mean()) < 0.08 and float((out[..., 16] + 0.4).abs().mean()) < 0.08
    box = torch.nn.functional.avg_pool2d(noisy, 5, 1, 2, count_include_pad=False)
    assert float((box[..., 15] - 0.4).abs().mean()) > 0.1


@pytest.mark.parametrize("window,eps,shape", [(5, 1e-3, (1, 2, 40, 33)), (3, 1e-2, (2, 2, 17, 64)),
                                              (9, 1e-4, (1, 3, 32, 32))])
def test_our_guided_filter_equals_kornias(window, eps, shape):
    from kornia.filters import guided_blur

    from napari_colorize.models.exemplar import guided_filter

    g = torch.Generator().manual_seed(window)
    guide = torch.rand(shape[0], 1, *shape[2:], generator=g) * 2 - 1
    x = torch.randn(shape, generator=g) * 0.3
    assert torch.allclose(guided_filter(guide, x, window, eps), guided_blur(guide, x, window, eps), atol=1e-5)


def test_without_refine_the_output_is_untouched():
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey-gain"], pretrained_backbone=False)
    L, _, noisy = _step_scene()
    assert net.refine(L, noisy) is noisy


@pytest.mark.parametrize("bad", [{"refine": 4}, {"refine": 1}, {"refine": 33}, {"refine": -3},
                                 {"refine": 5, "refine_eps": 0.0}, {"refine": 5, "refine_eps": 2.0},
                                 {"refine": "5"}])
def test_refine_settings_are_checked(bad):
    with pytest.raises(ValueError, match="refine"):
        ExemplarConfig.from_dict(bad)


def test_the_models_prediction_applies_the_filter(tmp_path):
    """The filter is where the output is made (``predict``, which ``colorize`` calls for single images
    and stacks alike): a model with ``refine`` gives exactly the unrefined model's ab through the filter."""
    from napari_colorize.models.adapters import ExemplarNetColorizer

    torch.manual_seed(0)
    cfg = EXEMPLAR_CONFIGS["cpu-warp-grey-gain-refine"]
    net = ExemplarNet(cfg, pretrained_backbone=False).eval()
    with torch.no_grad():  # open the gates, so that the heads' colour (and its noise) shows
        for g in net.decoder.gates:
            g.bias.fill_(0.0)
    plain = ExemplarNetColorizer("plain", net)
    L, R = torch.rand(1, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)
    refined = plain.predict(L, plain.prepare(R)).ab
    net.config = ExemplarConfig.from_dict({**cfg.to_dict(), "refine": 0})
    raw = plain.predict(L, plain.prepare(R)).ab
    assert refined.shape == raw.shape == (1, 2, 64, 96)
    assert not torch.allclose(refined, raw, atol=1e-4)
    net.config = cfg
    assert torch.allclose(refined, net.refine(L, raw), atol=1e-6)
    # a stack (several slices, the reference's features computed once) takes the other branch
    Ls = torch.rand(3, 1, 64, 96) * 2 - 1
    stack = plain.predict(Ls, plain.precompute(plain.prepare(R))).ab
    net.config = ExemplarConfig.from_dict({**cfg.to_dict(), "refine": 0})
    stack_raw = plain.predict(Ls, plain.precompute(plain.prepare(R))).ab
    net.config = cfg
    assert stack.shape == (3, 2, 64, 96) and not torch.allclose(stack, stack_raw, atol=1e-4)
    assert torch.allclose(stack, net.refine(Ls, stack_raw), atol=1e-6)


def _checkpoint(tmp_path, config="cpu-warp-grey-gain"):
    from napari_colorize.models.registry import save_checkpoint

    torch.manual_seed(0)
    net = ExemplarNet(EXEMPLAR_CONFIGS[config], pretrained_backbone=False)
    if net.prior:
        with torch.no_grad():
            net.log_tau.fill_(math.log(0.025))
    return save_checkpoint(net, tmp_path / "run.safetensors", {"name": "run", "training": {"steps": 1}},
                           dtype=torch.float32)


def test_tune_output_writes_a_new_checkpoint_with_the_filter_and_temperature(tmp_path):
    from training.tune_output import main

    from napari_colorize.models.registry import load_checkpoint, load_model

    src = _checkpoint(tmp_path)
    before = src.read_bytes()
    assert main([str(src), "--refine", "5", "--refine-eps", "0.002", "--temperature-scale", "0.3",
                 "--name", "tuned", "--lineage", "run + 1 step", "--out", str(tmp_path / "tuned.safetensors")]) == 0
    assert src.read_bytes() == before  # the input is never written over
    sd, meta = load_checkpoint(tmp_path / "tuned.safetensors")
    assert meta["config"]["refine"] == 5 and meta["config"]["refine_eps"] == 0.002
    assert meta["tuned"]["from"] == "run.safetensors" and meta["name"] == "tuned"
    assert meta["training"] == {"steps": 1, "init_from": "run + 1 step"}
    assert math.isclose(float(sd["log_tau"].float().exp()), 0.025 * 0.3, rel_tol=2e-3)  # (fp16)
    model = load_model(tmp_path / "tuned.safetensors", device="cpu")
    assert model.network.config.refine == 5
    old_sd, _ = load_checkpoint(src)
    same = [k for k in old_sd if k != "log_tau"]
    assert same and all(torch.allclose(sd[k].float(), old_sd[k].float(), atol=1e-2, rtol=1e-3) for k in same)


def test_tune_output_refuses_its_input_and_bad_settings(tmp_path, capsys):
    from training.tune_output import main

    def refused(argv, words):  # (user errors are argparse errors: exit status 2, one line, no traceback)
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and words in err and "Traceback" not in err, err

    src = _checkpoint(tmp_path)
    refused([str(src), "--out", str(src)], "must not be the input")
    refused([str(src), "--refine", "4", "--out", str(tmp_path / "x.safetensors")], "--refine 4")
    refused([str(src), "--temperature-scale", "0", "--out", str(tmp_path / "x.safetensors")], "--temperature-scale 0")
    assert not (tmp_path / "x.safetensors").exists()
    plain = _checkpoint(tmp_path / "plain", "cpu")  # without the prior: the filter, but no temperature
    refused([str(plain), "--temperature-scale", "0.5", "--out", str(tmp_path / "y.safetensors")], "prior")
    assert main([str(plain), "--refine", "3", "--out", str(tmp_path / "y.safetensors")]) == 0
    # a tuned checkpoint is not tuned again: its temperature would be scaled twice
    with pytest.raises(SystemExit):
        main([str(tmp_path / "y.safetensors"), "--refine", "5", "--out", str(tmp_path / "z.safetensors")])
    assert not (tmp_path / "z.safetensors").exists()


def test_tune_output_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    """--out NAME.safetensors also writes NAME.json: a user's NAME.json is not written over, nor an
    existing checkpoint at --out, unless --overwrite (checked before any work)."""
    from training.tune_output import main

    from napari_colorize.models.registry import load_checkpoint

    src = _checkpoint(tmp_path)
    notes = tmp_path / "mine.json"
    notes.write_text('{"my": "notes"}')
    with pytest.raises(SystemExit):
        main([str(src), "--refine", "3", "--out", str(tmp_path / "mine.safetensors")])
    err = capsys.readouterr().err
    assert "mine.json exists" in err and "unless you pass --overwrite" in err
    assert notes.read_text() == '{"my": "notes"}' and not (tmp_path / "mine.safetensors").exists()
    out = tmp_path / "tuned.safetensors"
    assert main([str(src), "--refine", "3", "--out", str(out)]) == 0
    before = out.read_bytes()
    with pytest.raises(SystemExit):
        main([str(src), "--refine", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert "tuned.safetensors and" in err and "tuned.json" in err and "unless you pass --overwrite" in err
    assert out.read_bytes() == before
    assert main([str(src), "--refine", "5", "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out)[1]["config"]["refine"] == 5


def test_save_checkpoint_refuses_existing_files_when_asked(tmp_path):
    from napari_colorize.models.registry import save_checkpoint

    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey-gain"], pretrained_backbone=False)
    (tmp_path / "a.json").write_text("user's")
    with pytest.raises(FileExistsError, match="a.json exists.*overwrite=True"):
        save_checkpoint(net, tmp_path / "a", {"name": "a"}, overwrite=False)
    assert (tmp_path / "a.json").read_text() == "user's" and not (tmp_path / "a.safetensors").exists()


def test_training_export_over_an_existing_file_is_refused_before_training(tmp_path):
    """train_exemplar / train_histogram --export: refused when the checkpoint or its .json exists
    (at argument parsing, before any data is read or step taken), unless --overwrite."""
    from training import train_exemplar, train_histogram

    (tmp_path / "e.json").write_text("user's")
    for script in (train_exemplar, train_histogram):
        with pytest.raises(SystemExit, match="--export: .*e.json exists.*--overwrite"):
            script.parse(["--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "run"),
                          "--export", str(tmp_path / "e.safetensors")])
        args = script.parse(["--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "run"),
                             "--export", str(tmp_path / "e.safetensors"), "--overwrite"])
        assert args.overwrite
    assert (tmp_path / "e.json").read_text() == "user's" and not (tmp_path / "run").exists()
