"""Training code on tiny inputs: data, reference pairs, losses, exact resume, DDP."""
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from napari_colorize.models.exemplar import EXEMPLAR_CONFIGS, ExemplarNet
from training import losses as L
from training.data import Corpus, folder_items, load_items, self_reference
from training.pairs import build_pairs, sample_reference
from training.train_exemplar import histogram_target

ROOT = Path(__file__).resolve().parents[1]
# the training scripts run as modules of the repository's `training` package, from its root
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A tiny corpus: 10 photos in two class folders, 2 cut-outs, and a manifest."""
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for c, colour in (("red", [200, 40, 40]), ("blue", [40, 60, 200])):
        (d / c).mkdir()
        for i in range(5):
            yy, xx = np.mgrid[0:96, 0:128]
            img = np.clip(np.array(colour)[None, None] * (0.5 + 0.5 * np.sin(xx / (7 + i))[..., None])
                          + rng.normal(0, 10, (96, 128, 3)), 0, 255).astype(np.uint8)
            p = d / c / f"{i}.png"
            Image.fromarray(img).save(p)
            rows.append([c, str(p), 128, 96, "photo", "val" if i == 0 else "train"])
    for i in range(2):
        cut = np.zeros((40, 30, 4), np.uint8)
        cut[5:35, 5:25] = [30, 200, 30, 255]
        p = d / f"cut{i}.png"
        Image.fromarray(cut).save(p)
        rows.append(["cutouts", str(p), 30, 40, "cutout", "train"])
    with open(d / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "path", "width", "height", "kind", "split"])
        w.writerows(rows)
    return d


# ----------------------------------------------------------------------- data
def test_series_balanced_sampling(corpus_dir):
    """--balance-series: 0 draws items exactly as before; 1 makes every source series equally likely
    (here 4 red, 4 blue, 2 cut-outs: uniform items give the cut-outs 1/5, balanced 1/3)."""
    from training.data import source_series

    c = Corpus(load_items(corpus_dir / "manifest.csv", "train"))
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert [c.sample(a) for _ in range(20)] == [int(b.integers(len(c))) for _ in range(20)]
    series = [source_series(it.label) for it in c.items]
    for balance, want in ((0.0, 0.2), (1.0, 1 / 3)):
        w = c.series_weights(balance)
        assert w.sum() == pytest.approx(1.0)
        assert sum(w[i] for i, s in enumerate(series) if s == "cutouts") == pytest.approx(want)
        rng = np.random.default_rng(5)
        draws = [series[c.sample(rng, balance)] for _ in range(6000)]
        assert draws.count("cutouts") / len(draws) == pytest.approx(want, abs=0.025)
    assert source_series("lomiri-wallpapers-20.04") == source_series("lomiri-wallpapers-16.04")
    with pytest.raises(ValueError, match="balance"):
        c.series_weights(1.5)


def test_series_rows_average_each_series_once():
    """training.evaluate --by-series: per-series means minus a baseline, and the mean over series
    that a large series cannot dominate."""
    from training.evaluate import series_rows

    class Views(list):
        families = [{"a"}, {"a"}, {"a"}, {"b"}]
    rows = [{"model": "base", "per_image": {"psnr": [20.0, 20.0, 20.0, 20.0]}},
            {"model": "m", "per_image": {"psnr": [22.0, 22.0, 22.0, 19.0]}}]
    t = {d["series"]: d for d in series_rows(rows, Views([0, 1, 2, 3]), "psnr", "base")}
    assert t["a"]["n"] == 3 and t["a"]["m"] == pytest.approx(2.0) and t["b"]["m"] == pytest.approx(-1.0)
    assert t["all series"]["m"] == pytest.approx(0.5)  # not the mean over views (1.25)
    assert t["all series"]["base"] == pytest.approx(0.0)


def test_render_is_deterministic_and_sized(corpus_dir):
    c = Corpus(load_items(corpus_dir / "manifest.csv", "train"))
    a = c.render(0, 64, np.random.default_rng(1))
    b = c.render(0, 64, np.random.default_rng(1))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    cut = [i for i, it in enumerate(c.items) if it.kind == "cutout"][0]
    pasted = c.render(cut, 64, np.random.default_rng(2))
    green = (pasted[..., 1] > 150) & (pasted[..., 0] < 80)
    assert 0.05 < green.mean() < 0.9  # the object is on a photo background
    ref = self_reference(a, np.random.default_rng(3))
    assert ref.shape == a.shape and not np.array_equal(ref, a)


def test_folder_split_is_fixed_and_disjoint(corpus_dir):
    tr = folder_items(corpus_dir, "train", 0.2, seed=0)
    va = folder_items(corpus_dir, "val", 0.2, seed=0)
    assert {i.path for i in tr}.isdisjoint({i.path for i in va})
    assert len(tr) + len(va) == 12
    assert [i.path for i in va] == [i.path for i in folder_items(corpus_dir, "val", 0.2, seed=0)]
    assert {i.label for i in tr if "red" in i.path} == {"red"}


# ---------------------------------------------------------------------- pairs
def test_sampling_weights_are_0_6_0_3_0_1():
    pairs = {"top1": [1], "top5": [[1, 2, 3, 4, 5]], "class": [list(range(1, 20))]}
    rng = np.random.default_rng(0)
    cats = np.array([sample_reference(pairs, 0, rng)[1] for _ in range(20000)])
    freq = np.bincount(cats, minlength=3) / len(cats)
    assert np.allclose(freq, [0.6, 0.3, 0.1], atol=0.015)


def test_pairs_stay_in_class_and_never_pick_the_target(corpus_dir):
    items = [i for i in folder_items(corpus_dir, "train", 0.0001) if i.label in ("red", "blue")]
    c = Corpus(items)
    p = build_pairs(c, [i.label for i in items], top=3)
    for i, it in enumerate(items):
        assert p["top1"][i] in p["top5"][i] and i not in p["top5"][i]
        assert all(items[j].label == it.label for j in p["top5"][i])


# --------------------------------------------------------------------- losses
def test_pool_to_is_2x_average_pooling():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(L.pool_to(x, (2, 2)), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))


def test_pixel_loss_smooth_l1_value():
    assert float(L.pixel_loss(torch.zeros(1, 2, 4, 4), torch.full((1, 2, 8, 8), 0.5))) == pytest.approx(0.125)
    assert float(L.pixel_loss(torch.zeros(1, 2, 4, 4), torch.full((1, 2, 4, 4), 3.0))) == pytest.approx(2.5)


def test_chi_square_values():
    a = torch.zeros(1, 21, 21)
    a[0, 0, 0] = 1
    b = torch.zeros(1, 21, 21)
    b[0, 5, 5] = 1
    assert float(L.chi_square(a, a)) == 0.0
    assert float(L.chi_square(a, b)) == pytest.approx(4.0, rel=1e-4)  # 2 * (1/1 + 1/1)
    half = (a + b) / 2
    assert float(L.chi_square(a, half)) == pytest.approx(2 * (0.25 / 1.5 + 0.25 / 0.5), rel=1e-4)


def test_histogram_loss_against_the_reference():
    ref = torch.full((1, 2, 8, 8), 0.3)
    assert float(L.histogram_loss(torch.full((1, 2, 4, 4), 0.3), ref)) == pytest.approx(0.0, abs=1e-6)
    p = torch.full((1, 2, 4, 4), -0.5, requires_grad=True)
    loss = L.histogram_loss(p, ref)
    assert float(loss.detach()) == pytest.approx(4.0, rel=1e-3)
    loss.backward()
    assert p.grad is not None


def test_tv_loss_values():
    assert float(L.tv_loss(torch.ones(1, 2, 5, 5))) == 0.0
    checker = (torch.arange(4).view(1, 4) + torch.arange(4).view(4, 1)) % 2 * 2.0 - 1
    assert float(L.tv_loss(checker.expand(1, 2, 4, 4))) == pytest.approx(8.0)


def test_lsgan_values():
    assert float(L.discriminator_loss(torch.ones(3), torch.zeros(3))) == 0.0
    assert float(L.generator_loss(torch.zeros(3))) == pytest.approx(0.5)
    assert float(L.generator_loss(torch.ones(3))) == 0.0
    d = L.PatchDiscriminator()
    out = d(torch.zeros(2, 1, 20, 20), torch.zeros(2, 2, 10, 10))
    assert out.shape[0] == 2 and out.shape[1] == 1


def test_exemplar_loss_weights_and_ablation_switches():
    preds = [torch.zeros(1, 2, 8 // 2**i, 8 // 2**i) for i in range(4)]
    truth = torch.full((1, 2, 16, 16), 0.1)
    t = L.exemplar_losses(preds, truth, truth, torch.zeros(1, 1, 16, 16), None, L.ExemplarLossWeights(adv=0))
    pix = 4 * 0.5 * 0.1**2
    assert float(t["pixel"]) == pytest.approx(pix, rel=1e-5)
    assert float(t["total"]) == pytest.approx(100 * pix + 2 * float(t["hist"]), rel=1e-5)
    t2 = L.exemplar_losses(preds, truth, truth, torch.zeros(1, 1, 16, 16), None,
                           L.ExemplarLossWeights(adv=0, hist=0))
    assert float(t2["total"]) == pytest.approx(100 * pix, rel=1e-5)


def test_the_histogram_loss_can_hold_the_output_to_the_truth_instead_of_the_reference():
    preds = [torch.full((1, 2, 8 // 2**i, 8 // 2**i), 0.3) for i in range(2)]
    truth, ref = torch.full((1, 2, 16, 16), 0.3), torch.full((1, 2, 16, 16), -0.5)
    w = L.ExemplarLossWeights(pixel=0, tv=0, adv=0)
    to_ref = L.exemplar_losses(preds, truth, histogram_target("reference", truth, ref), torch.zeros(1, 1, 16, 16),
                               None, w)
    to_truth = L.exemplar_losses(preds, truth, histogram_target("truth", truth, ref), torch.zeros(1, 1, 16, 16),
                                 None, w)
    assert float(to_ref["hist"]) == pytest.approx(2 * float(L.histogram_loss(preds[0], ref)), rel=1e-5)
    assert float(to_ref["hist"]) > 1.0 and float(to_truth["hist"]) == pytest.approx(0.0, abs=1e-6)


def test_the_head_loss_holds_each_head_to_the_truth_through_a_closed_gate():
    """With the warp prior, a head behind a nearly closed gate barely moves the output: where the output
    is right, the pixel loss is content whatever colour the head makes up (the cause of the fringes).
    The head loss scores the heads' own predictions."""
    torch.manual_seed(0)
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp"], pretrained_backbone=False).train()
    Lt, R = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64)
    preds, gates, heads = net(Lt, R, return_gates=True)
    assert [h.shape for h in heads] == [p.shape for p in preds] and len(gates) == 4
    truth = torch.nn.functional.interpolate(preds[0].detach(), scale_factor=2, mode="nearest")  # P1 is right
    assert float((heads[0] - preds[0]).abs().mean()) > 0.05  # yet its head is not
    only_p1 = dict(adv=0, hist=0, tv=0)
    t = L.exemplar_losses(preds[:1], truth, truth, Lt, None, L.ExemplarLossWeights(**only_p1), gates[:1], heads[:1])
    assert float(t["pixel"]) < 1e-10 and float(t["head"]) == 0.0  # the head loss is off unless weighted
    t["total"].backward(retain_graph=True)
    head_w = net.decoder.heads[0][1].weight
    assert float(head_w.grad.abs().sum()) < 1e-8
    net.zero_grad()
    t = L.exemplar_losses(preds[:1], truth, truth, Lt, None, L.ExemplarLossWeights(**only_p1, head=1.0), gates[:1],
                          heads[:1])
    assert float(t["head"]) == pytest.approx(float(L.pixel_loss(heads[0], truth)), rel=1e-6) and float(t["head"]) > 1e-4
    t["total"].backward()
    assert float(head_w.grad.abs().sum()) > 1e-3


def test_huber_delta_0_01():
    assert float(L.huber(torch.tensor([0.005]), torch.tensor([0.0]))) == pytest.approx(0.5 * 0.005**2)
    assert float(L.huber(torch.tensor([0.1]), torch.tensor([0.0]))) == pytest.approx(0.01 * (0.1 - 0.005))


def test_gradient_and_histogram_huber():
    x = torch.rand(1, 2, 8, 8)
    assert float(L.gradient_loss(x + 0.3, x)) == pytest.approx(0.0, abs=1e-7)  # Sobel ignores offsets
    ramp = torch.linspace(0, 1, 8).expand(1, 2, 8, 8)
    assert float(L.gradient_loss(ramp, torch.zeros_like(ramp))) > 0
    from napari_colorize.color import soft_histogram

    assert float(L.histogram_huber(x, soft_histogram(x))) == pytest.approx(0.0, abs=1e-9)
    t = L.histogram_model_losses(x, x, soft_histogram(x), L.HistogramLossWeights())
    assert float(t["total"]) == pytest.approx(0.0, abs=1e-7)


# ------------------------------------------------------- resume, export, DDP
def _train_cmd(script, corpus_dir, out, *extra):
    return [sys.executable, "-m", f"training.{script}", "--data", str(corpus_dir / "manifest.csv"),
            "--out", str(out), "--size", "64", "--batch", "2", "--steps", "6", "--ckpt-every", "1",
            "--log-every", "1", "--sample-every", "3", "--threads", "1", "--quiet", *extra]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_killed_run_resumes_exactly(corpus_dir, tmp_path):
    env = ENV
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd("train_exemplar", corpus_dir, straight), check=True, env=env, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd("train_exemplar", corpus_dir, killed), env=env)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it once it has checkpointed a step or more, before the end
        ck = killed / "last.pt"
        if ck.exists():
            try:
                if 1 <= torch.load(ck, weights_only=True)["step"] < 6:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    step = torch.load(killed / "last.pt", weights_only=True)["step"]
    assert step < 6
    subprocess.run(_train_cmd("train_exemplar", corpus_dir, killed), check=True, env=env, timeout=600)
    a, b = _weights(straight / "last.pt"), _weights(killed / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with open(killed / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5, 6]
    assert (killed / "curves.png").exists() and (killed / "samples_000006.png").exists()


def test_a_run_of_the_earlier_exemplar_layout_is_not_resumed(corpus_dir, tmp_path):
    """A last.pt written before the decoder was its own module: its optimiser state is by position,
    so resuming it is refused with what to do instead, and the checkpoint is left as it is."""
    from napari_colorize.models.exemplar import PyramidDecoder

    out = tmp_path / "old"
    subprocess.run(_train_cmd("train_exemplar", corpus_dir, out, "--stop-after", "1", "--ablation", "no-adv"),
                   check=True, env=ENV, timeout=600)
    ck = torch.load(out / "last.pt", weights_only=True)
    new_to_old = {v: k for k, v in PyramidDecoder.OLD_PREFIXES.items()}
    ck["model"] = {next((new_to_old[p] + k[len(p):] for p in new_to_old if k.startswith(p)), k): v
                   for k, v in ck["model"].items()}
    torch.save(ck, out / "last.pt")
    before = (out / "last.pt").read_bytes()
    r = subprocess.run(_train_cmd("train_exemplar", corpus_dir, out, "--ablation", "no-adv"), env=ENV,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "earlier layout" in r.stderr and "--init-from" in r.stderr
    assert (out / "last.pt").read_bytes() == before


def test_histogram_training_with_the_class_loss_logs_it(corpus_dir, tmp_path):
    """train_histogram --w-cls: the term in the log, finite, and its weight in the run's record."""
    out = tmp_path / "hc"
    cmd = _train_cmd("train_histogram", corpus_dir, out, "--w-cls", "0.001")
    subprocess.run(cmd + ["--stop-after", "2"], check=True, env=ENV, timeout=600)
    with open(out / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(np.isfinite(float(r["cls"])) and float(r["cls"]) > 0 for r in rows)
    assert float(rows[0]["total"]) > 0.001 * float(rows[0]["cls"])
    args = json.loads((out / "args.json").read_text())
    assert float(args["w_cls"]) == 0.001


def test_histogram_training_exports_a_loadable_model(corpus_dir, tmp_path):
    import napari_colorize as nc

    out = tmp_path / "h"
    export = tmp_path / "hist.safetensors"
    cmd = _train_cmd("train_histogram", corpus_dir, out, "--export", str(export), "--name", "tiny-hist")
    env = ENV
    subprocess.run(cmd + ["--stop-after", "3"], check=True, env=env, timeout=600)
    assert not export.exists()  # a stretch that stops early exports nothing...
    subprocess.run(cmd + ["--stop-after", "1", "--export-partial"], check=True, env=env, timeout=600)
    partial = nc.load_model(export, device="cpu")  # ...unless asked to, recording the step it reached
    assert partial.config["training"]["steps"] == 4 and partial.config["training"]["schedule_steps"] == 6
    subprocess.run(cmd + ["--overwrite"], check=True, env=env, timeout=600)  # (replaces the partial export)
    m = nc.load_model(export, device="cpu")
    assert m.kind == "histogram" and m.name == "tiny-hist"
    assert m.config["training"]["steps"] == 6

    # the evaluation table: the model given each image's own histogram, beside the grey lower bound
    r = subprocess.run([sys.executable, "-m", "training.evaluate", "--data", str(corpus_dir / "manifest.csv"),
                        "--kind", "histogram", "--no-semantic", "--threads", "1", "--per-image",
                        str(tmp_path / "per_image.csv"), str(export), "grey"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in r.stdout.splitlines() if line.startswith("| ") and "model" not in line}
    assert set(rows) == {str(export), "grey"}
    assert float(rows["grey"][4]) == 0.0  # colourfulness of the uncoloured input
    assert np.isfinite(float(rows[str(export)][3])) and float(rows[str(export)][2]) > 0  # PSNR, SSIM
    with open(tmp_path / "per_image.csv") as fh:  # the table's rows are the means of the per-image lines
        per = list(csv.DictReader(fh))
    grey_psnr = [float(p["psnr"]) for p in per if p["model"] == "grey"]
    assert len(per) == 2 * len(grey_psnr) > 0
    assert np.mean(grey_psnr) == pytest.approx(float(rows["grey"][3]), abs=0.006)


def test_ddp_two_cpu_processes_agree(corpus_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           *(_train_cmd("train_exemplar", corpus_dir, out, "--save-ranks", "--ablation", "no-adv")[1:])]
    cmd[cmd.index("--steps") + 1] = "2"
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and len(a) > 50
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with open(out / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(np.isfinite(float(r["total"])) for r in rows)


def test_paired_differences(tmp_path):
    from training.paired import load, paired

    a = np.array([0.5, 0.6, 0.7, 0.8])
    mean, lo, hi = paired(a + 0.1, a)
    assert mean == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, 200)
    mean, lo, hi = paired(a.mean() + noise, np.full(200, a.mean()))
    assert lo < mean < hi and lo < 0.02 and hi > -0.02  # no real difference: the interval holds 0 (or nearly)
    p = tmp_path / "per.csv"
    p.write_text("model,protocol,image,his_ref,his_gt,ssim,psnr,colourful,agree\n"
                 "runs/x/m.safetensors,other,1,0.5,0.5,0.9,20,30,1\n"
                 "runs/x/m.safetensors,other,0,0.4,0.5,0.8,20,30,0\n"
                 "welsh,self,0,0.9,0.9,0.7,20,30,1\n"
                 "exemplar+histogram_mix=0.5,other,0,0.1,0.5,0.8,20,30,0\n"
                 "exemplar+histogram_mix=0.3,other,0,0.2,0.5,0.8,20,30,0\n")
    d = load(p, "other")
    assert list(d["m"]["his_ref"]) == [0.4, 0.5]  # a checkpoint by its stem, in image order
    # (specs whose values have a dot stay apart: they were once cut at it and merged)
    assert set(d) == {"m", "exemplar+histogram_mix=0.5", "exemplar+histogram_mix=0.3"}
    assert d["exemplar+histogram_mix=0.5"]["his_ref"][0] == 0.1


def test_paired_counts_images_that_got_worse(tmp_path, capsys):
    from training.paired import main

    p = tmp_path / "per.csv"
    rows = ["model,protocol,image,his_ref,his_gt,ssim,psnr,colourful,agree"]
    for i, (a, b) in enumerate([(20, 21), (20, 19.6), (20, 19), (20, 25)]):  # b - a: +1, -0.4, -1, +5
        rows += [f"base,self,{i},0.5,0.5,0.9,{a},30,1", f"new,self,{i},0.5,0.5,0.9,{b},30,1"]
    p.write_text("\n".join(rows) + "\n")
    main([str(p), "--baseline", "base", "--metrics", "psnr"])
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| new")][0]
    assert line.endswith("| 1 / 4 |") and "+1.150" in line  # mean up, yet one image 1 dB worse
    main([str(p), "--baseline", "base", "--metrics", "psnr", "--worse", "0.3"])
    assert [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| new")][0].endswith("| 2 / 4 |")


def test_csv_log_keeps_rows_up_to_the_resumed_step_and_never_loses_another_runs_log(tmp_path, recwarn):
    from training.engine import CSVLog, plot_curves

    path = tmp_path / "log.csv"
    log = CSVLog(path, ["step", "total", "pixel"])
    for step in (10, 20, 30):
        log.write({"step": step, "total": 1.0 / step, "pixel": 0.0})  # pixel: an ablated loss, 0 throughout
    CSVLog(path, ["step", "total", "pixel"], truncate_after=20)  # resuming at step 20
    assert [int(r["step"]) for r in log.read()] == [10, 20]
    before = path.read_text()
    with pytest.raises(ValueError, match="other columns"):
        CSVLog(path, ["step", "loss"])  # another run's fields: refused, file untouched
    assert path.read_text() == before and not list(tmp_path.glob("*.tmp"))
    # a run started before a loss was added (its log has fewer columns) resumes: rows kept, the new one empty
    grown = CSVLog(path, ["step", "total", "pixel", "ssim"], truncate_after=20)
    assert [(r["step"], r["pixel"], r["ssim"]) for r in grown.read()] == [("10", "0", ""), ("20", "0", "")]
    plot_curves(log, ["total", "pixel"], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert not [w for w in recwarn if "log-scaled" in str(w.message)]


def test_evaluate_takes_a_loaded_model_and_given_references():
    """``training.tune_output --grid`` passes loaded (tuned) models and computes the references once:
    the same rows as the model's name with the references evaluate finds itself."""
    import numpy as np

    import napari_colorize as nc
    from training.evaluate import evaluate, references

    rng = np.random.default_rng(0)
    images = [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(3)]
    by_name = evaluate(["reinhard"], images, "other", "exemplar", None)[0]
    model = nc.load_model("reinhard", device="cpu")
    given = evaluate([model], images, "other", "exemplar", None, references(images, "other"))[0]
    assert given["model"] == "reinhard"
    for k in ("his_ref", "his_gt", "ssim", "psnr"):
        assert given["per_image"][k] == by_name["per_image"][k] and len(given["per_image"][k]) == 3


def test_other_source_references_come_from_another_series(corpus_dir):
    """The realistic protocol never takes a reference from the target's own source series (views of
    both splits of other series are the pool), and tells them apart from the near-sibling 'other'."""
    from training.evaluate import eval_images, reference_pool, references, source_family

    assert source_family("lomiri-wallpapers-16.04") == source_family("lomiri-wallpapers-20.04") == "lomiri-wallpapers"
    assert source_family("mvtb-data") == "mvtb-data"
    manifest = corpus_dir / "manifest.csv"
    images = eval_images(manifest, "val")
    assert sorted(min(f) for f in images.families) == ["blue", "red"]
    pool = reference_pool(manifest, images)
    assert len(pool) > len(images) and set().union(*pool.families) == {"red", "blue", "cutouts"}
    # a cut-out pasted on a photo belongs to the photo's series too
    assert any(len(f) == 2 and "cutouts" in f for f in pool.families)
    refs = references(images, "other-source", pool)
    for img, fam, ref in zip(images, images.families, refs):
        k = next(j for j, p in enumerate(pool) if p is ref)
        assert not pool.families[k] & fam  # another series, on no background of the target's series
    # one series alone cannot give such a reference: an error, not a silent self-reference
    only_red = images[:1] if images.families[0] == "red" else images[1:]
    with pytest.raises(ValueError, match="two source series"):
        references(only_red, "other-source")


def test_harm_rows_are_paired_differences_to_grey_and_reinhard():
    from training.evaluate import harm_rows

    rows = [{"model": "grey", "per_image": {"ssim": [0.9, 0.8, 0.7], "agree": [1.0, 0.0, 1.0]}},
            {"model": "reinhard", "per_image": {"ssim": [0.8, 0.8, 0.8], "agree": [1.0, 1.0, 1.0]}},
            {"model": "m", "per_image": {"ssim": [0.95, 0.85, 0.75], "agree": [0.0, 0.0, 1.0]}}]
    h = {d["model"]: d for d in harm_rows(rows)}
    mean, lo, hi = h["m"]["ssim-grey"]
    assert mean == pytest.approx(0.05) and lo == pytest.approx(0.05) and hi == pytest.approx(0.05)
    assert h["m"]["agree-grey"][0] == pytest.approx(-1 / 3)
    assert h["m"]["ssim-reinhard"][0] == pytest.approx(0.05)
    assert "ssim-grey" not in h["grey"]  # nothing against itself
    assert "agree_p-grey" not in h["m"]  # rows without the soft agreement: no column for it
    for r, p in zip(rows, ([0.5, 0.1, 0.4], [0.5, 0.5, 0.5], [0.6, 0.3, 0.4])):
        r["per_image"]["agree_p"] = p
    h = {d["model"]: d for d in harm_rows(rows)}
    assert h["m"]["agree_p-grey"][0] == pytest.approx(0.1) and h["m"]["agree_p-reinhard"][0] == pytest.approx(-0.2 / 3)


def test_training_pairs_with_references_of_another_series(corpus_dir):
    """--other-source: a share of the pairs take a reference of another source series (issue 18, the
    references users have), and their histogram loss holds the output to the truth, not to it."""
    from training.pairs import build_other_source, source_series
    from training.train_exemplar import make_batch

    c = Corpus(load_items(corpus_dir / "manifest.csv", "train"))
    other = build_other_source(c, top=3)["other_top"]
    for i, cand in enumerate(other):
        assert cand and all(source_series(c.items[j].label) != source_series(c.items[i].label) for j in cand)
    pairs = build_pairs(c)
    plain = make_batch(c, pairs, 3, 0, 6, 32, 0.5, 0, "cpu")
    assert not make_batch.last_other.any()
    same = make_batch(c, pairs, 3, 0, 6, 32, 0.5, 0, "cpu", other=0.0, other_pairs={"other_top": other})
    assert torch.equal(plain[0], same[0]) and torch.equal(plain[2], same[2])  # (off: the draws of before)
    make_batch(c, pairs, 3, 0, 8, 32, 0.0, 0, "cpu", other=1.0, other_pairs={"other_top": other})
    assert make_batch.last_other.all()
    mask = torch.tensor([True, False])
    truth, ref = torch.full((2, 2, 4, 4), 0.3), torch.full((2, 2, 4, 4), -0.5)
    t = histogram_target("reference", truth, ref, mask)
    assert torch.equal(t[0], truth[0]) and torch.equal(t[1], ref[1])
    # --other-hist reference: the other-source pairs follow their reference's palette too
    assert torch.equal(histogram_target("reference", truth, ref, mask, "reference"), ref)
    t = histogram_target("truth", truth, ref, mask, "reference")
    assert torch.equal(t[0], ref[0]) and torch.equal(t[1], truth[1])
    with pytest.raises(ValueError, match="histogram targets"):
        histogram_target("truth", truth, ref, mask, "palette")


def test_histogram_training_batches_with_histograms_of_another_series(corpus_dir):
    """train_histogram --other-source: that share of the input histograms is a similar image's of another
    source series; the pixels stay the target's; the histogram loss's target is that histogram or, with
    --other-hist truth, the target's own; off: the batch of before."""
    from napari_colorize.color import soft_histogram
    from training.pairs import build_other_source
    from training.train_histogram import make_batch as hist_batch

    c = Corpus(load_items(corpus_dir / "manifest.csv", "train"))
    other = {"other_top": build_other_source(c, top=3)["other_top"]}
    L0, ab0, h0, t0, _ = hist_batch(c, 2, 0, 4, 32, 0, "cpu")
    assert torch.equal(h0, soft_histogram(ab0)) and torch.equal(t0, h0)
    L1, ab1, h1, t1, _ = hist_batch(c, 2, 0, 4, 32, 0, "cpu", other=0.0, other_pairs=other)
    assert torch.equal(L0, L1) and torch.equal(h0, h1)
    L2, ab2, h2, t2, _ = hist_batch(c, 2, 0, 4, 32, 0, "cpu", other=1.0, other_pairs=other)
    own = soft_histogram(ab2)
    assert torch.equal(t2, h2) and all(not torch.allclose(h2[i], own[i]) for i in range(4))
    _, ab3, h3, t3, _ = hist_batch(c, 2, 0, 4, 32, 0, "cpu", other=1.0, other_pairs=other, other_hist="truth")
    assert torch.equal(h3, h2) and torch.equal(t3, soft_histogram(ab3))
    with pytest.raises(ValueError, match="other_hist"):
        hist_batch(c, 2, 0, 4, 32, 0, "cpu", other=1.0, other_pairs=other, other_hist="palette")
    from training.train_histogram import parse

    base = ["--data", str(corpus_dir / "manifest.csv"), "--out", "x"]
    assert parse(base + ["--other-source", "0.7"]).other_hist == "reference"
    with pytest.raises(SystemExit):
        parse(base + ["--other-source", "1.5"])


def test_evaluate_mixes_in_a_histogram_network_from_a_file(tmp_path):
    """exemplar+companion=FILE: the exemplar mixes in that checkpoint's histogram network (a candidate
    before it is registered); a file of another architecture: exit."""
    from napari_colorize.models.registry import load_model, save_checkpoint
    from training.evaluate import load_with_output

    path = save_checkpoint(load_model("histogram-plain", device="cpu").network, tmp_path / "c.safetensors",
                           {"name": "candidate"})
    m = load_with_output(f"exemplar+companion={path}+histogram_mix=1")
    assert m.companion.name == "candidate" and m.network.config.histogram_mix == 1
    # histogram_model=NAME: that registered network, not the one the exemplar was loaded with
    assert load_with_output("exemplar").companion.name == "histogram-companion"
    assert load_with_output('exemplar+histogram_model="histogram"').companion.name == "histogram"
    assert load_with_output("exemplar+histogram_mix=0").companion is None
    ex = save_checkpoint(load_model("exemplar-plain", device="cpu").network, tmp_path / "e.safetensors", {})
    with pytest.raises(SystemExit, match="not a histogram network"):
        load_with_output(f"exemplar+companion={ex}")


def test_the_ssim_loss_is_zero_for_the_truth_and_grows_with_a_tint_near_black():
    """ssim_loss: (1 - SSIM) / 2 in sRGB; the truth itself costs nothing, a tint costs more on a dark image
    than on a bright one (SSIM's small local means), gradients reach the prediction; its weight 0 leaves
    the total as it was."""
    torch.manual_seed(0)
    truth = torch.zeros(2, 2, 32, 32)
    Ls = [torch.full((2, 1, 64, 64), v) + 0.05 * torch.randn(2, 1, 64, 64) for v in (-0.9, 0.6)]
    tint = torch.full((2, 2, 32, 32), 0.04, requires_grad=True)
    assert float(L.ssim_loss(truth, truth, Ls[0])) == pytest.approx(0.0, abs=1e-6)
    dark, bright = (L.ssim_loss(tint, truth, x) for x in Ls)
    assert float(dark) > 2 * float(bright) > 0
    dark.backward()
    assert tint.grad is not None and float(tint.grad.abs().sum()) > 0
    preds = [tint.detach(), torch.zeros(2, 2, 16, 16)]
    w0 = L.ExemplarLossWeights(pixel=1.0, hist=0.0, tv=0.0, adv=0.0)
    w1 = L.ExemplarLossWeights(pixel=1.0, hist=0.0, tv=0.0, adv=0.0, ssim=10.0)
    t0, t1 = (L.exemplar_losses(preds, truth, truth, Ls[0], None, w) for w in (w0, w1))
    assert float(t0["ssim"]) == 0.0 and float(t1["total"]) == pytest.approx(float(t0["total"]) + 10 * float(t1["ssim"]))


def test_the_class_loss_is_zero_for_the_truth_and_grows_when_the_colour_is_wrong():
    """ClassConsistency: EfficientNet-Lite0's classifier (the backbone's weights, never the judge) knows the
    cat; the truth's own colour costs nothing, grey and hues turned half round cost more, gradients reach the
    prediction; exemplar_losses refuses its weight without the classifier."""
    from skimage import data

    from napari_colorize.color import normalize_lab, rgb_to_lab, soft_histogram

    rgb = torch.from_numpy(data.chelsea()[:288, 80:368]).permute(2, 0, 1)[None].float() / 255
    rgb = torch.nn.functional.interpolate(rgb, size=(160, 160), mode="bilinear", antialias=True)
    lab = normalize_lab(rgb_to_lab(rgb))
    Lt, truth = lab[:, :1], lab[:, 1:]
    classes = L.ClassConsistency()
    assert int(classes.logits(Lt, truth).argmax()) in (281, 282, 285)  # tabby, tiger cat, Egyptian cat
    assert float(classes(Lt, truth, truth)) == pytest.approx(0.0, abs=1e-5)
    torch.nn.Sequential(classes).train()  # (the training loop's .train(): the classifier stays frozen)
    assert not any(m.training for m in classes.modules()) and not any(p.requires_grad for p in classes.parameters())
    half = truth.detach()[:, :, ::2, ::2].clone().requires_grad_(True)  # (P1 is smaller than L: resized)
    grey, turned = torch.zeros_like(half), -half.detach()
    assert float(classes(Lt, turned, truth)) > float(classes(Lt, half, truth)) + 0.05
    assert float(classes(Lt, grey, truth)) > float(classes(Lt, half, truth))
    classes(Lt, half * 0.5, truth).backward()
    assert half.grad is not None and float(half.grad.abs().sum()) > 0
    w = L.ExemplarLossWeights(pixel=1.0, hist=0.0, tv=0.0, adv=0.0, cls=2.0)
    with pytest.raises(ValueError, match="classifier"):
        L.exemplar_losses([turned], truth, truth, Lt, None, w)
    t = L.exemplar_losses([turned], truth, truth, Lt, None, w, classes=classes)
    assert float(t["total"]) == pytest.approx(float(t["pixel"]) + 2 * float(t["cls"]), rel=1e-5)
    hw = L.HistogramLossWeights(cls=3.0)  # (train_histogram --w-cls)
    with pytest.raises(ValueError, match="classifier"):
        L.histogram_model_losses(-truth, truth, soft_histogram(truth), hw)
    h0 = L.histogram_model_losses(-truth, truth, soft_histogram(truth), L.HistogramLossWeights())
    h3 = L.histogram_model_losses(-truth, truth, soft_histogram(truth), hw, Lt, classes)
    assert "cls" not in h0 and float(h3["total"]) == pytest.approx(float(h0["total"]) + 3 * float(h3["cls"]), rel=1e-5)


def test_evaluate_takes_output_stage_settings_over_a_model():
    """NAME+key=value: the model with those settings over its config, validated; the row is named by
    the whole spec; a key that is not an exemplar config's, a bad value or a non-network model: exit."""
    from training.evaluate import load_with_output

    m = load_with_output("exemplar+dark_chroma=20+coherence=8")
    assert m.name == "exemplar+dark_chroma=20+coherence=8"
    assert m.network.config.dark_chroma == 20 and m.network.config.coherence == 8
    assert load_with_output("exemplar").network.config.dark_chroma != 20  # (a fresh model each time)
    for bad in ("exemplar+nonsense=1", "exemplar+dark_chroma", "reinhard+dark_chroma=20"):
        with pytest.raises(SystemExit):
            load_with_output(bad)
    with pytest.raises(ValueError, match="dark_chroma"):
        load_with_output("exemplar+dark_chroma=99")
    h = load_with_output("histogram+coherence=0")  # (the histogram network's output stage)
    assert h.network.config.coherence == 0 and load_with_output("histogram").network.config.coherence > 0
    with pytest.raises(SystemExit, match="histogram config"):
        load_with_output("histogram+dark_chroma=20")


def test_evaluate_puts_a_candidate_network_into_a_model_with_its_output_stage(tmp_path, capsys):
    """NAME+network=FILE: the file's weights in the named model, whose config (output stage) is kept; a
    network of another architecture or kind is refused; a spec too long for a file name is still a spec."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from napari_colorize.models.registry import weights_dir
    from training.evaluate import load_with_output

    shipped = weights_dir() / "exemplar.safetensors"
    tensors = load_file(shipped)
    with safe_open(shipped, "pt") as f:
        meta = f.metadata()
    name = next(k for k in tensors if k.endswith(".weight") and tensors[k].dim() == 4)
    tensors[name] = tensors[name] * 0.5
    tensors["log_tau"] = tensors["log_tau"] - 0.5  # (the temperature comes from the candidate too)
    cand = tmp_path / "cand.safetensors"
    save_file(tensors, cand, metadata=meta)
    m = load_with_output(f"exemplar+network={cand}+dark_chroma=20")
    ref = load_with_output("exemplar")
    assert m.network.config.histogram_mix == ref.network.config.histogram_mix  # the shipped output stage
    assert m.network.config.dark_chroma == 20
    got, was = m.network.state_dict()[name], ref.network.state_dict()[name]
    assert torch.allclose(got.float(), was.float() * 0.5, atol=1e-3) and not torch.equal(got, was)
    assert float(m.network.log_tau) == pytest.approx(float(ref.network.log_tau) - 0.5, abs=1e-2)
    assert "note" not in capsys.readouterr().err  # (the output stage's settings differ: not said)
    # a setting without tensors of its own (the coarse-to-fine search's cells) differs: measured with the model's, said
    info = json.loads(meta["napari_colorize"])
    info["config"]["prior_cells"] = 4
    save_file(tensors, cand, metadata={**meta, "napari_colorize": json.dumps(info)})
    load_with_output(f"exemplar+network={cand}")
    assert "prior_cells 4 -> 16" in capsys.readouterr().err
    for other in ("exemplar-plain.safetensors", "histogram.safetensors"):
        with pytest.raises(SystemExit, match="fit|not an exemplar"):
            load_with_output(f"exemplar+network={weights_dir() / other}")
    long = "exemplar" + "+dark_chroma=20" * 40  # (Path(spec).exists() raised 'File name too long')
    assert load_with_output(long).network.config.dark_chroma == 20


def test_where_harm_diagnoses_an_output_against_the_grey_input():
    """training.where_harm: the grey input's SSIM is the metric's, the lightness bands count every pixel
    once, a row per border band, and the truth's chroma put into a global transfer's output does not
    make it worse than itself by more than noise."""
    from napari_colorize import metrics
    from training.where_harm import BANDS, diagnose

    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:64, 0:64]
    imgs = [np.clip(np.stack([100 + 80 * np.sin(x / 7 + k), 120 + 60 * np.cos(y / 9), 90 + 0 * x], -1)
                    + rng.normal(0, 5, (64, 64, 3)), 0, 255).astype(np.uint8) for k in range(2)]
    refs = imgs[::-1]
    import napari_colorize as nc

    d = diagnose(nc.load_model("reinhard"), imgs, refs)
    assert d["count"].sum() == 2 * 64 * 64
    assert d["border"].shape == (len(BANDS), 3)
    from training.evaluate import grey_of

    grey = np.mean([metrics.ssim(np.repeat(grey_of(i)[..., None], 3, -1), i) for i in imgs])
    assert d["swaps"]["grey input"] == pytest.approx(grey, abs=2e-3)
    assert d["swaps"]["truth's chroma"] >= d["swaps"]["output"] - 0.02


def test_judge_probe_swaps_exactly_one_part_of_the_colour():
    """training.judge_probe: a chroma-order swap keeps the model's chroma values and takes the truth's
    ranks; hue and chroma swaps keep the other part; the truth's rows keep their stated property; and a
    probe run gives every row one value per view, the truth row agreeing with itself."""
    from training.judge_probe import MODEL_ROWS, TRUTH_ROWS, model_ab, polar, probe, rank_match, truth_ab

    rng = np.random.default_rng(3)
    t = rng.normal(0, 20, (16, 12, 2))
    o = rng.normal(5, 10, (16, 12, 2))
    r = rng.normal(-3, 15, (16, 12, 2))
    v = rank_match(polar(t)[0], polar(o)[0])
    assert np.array_equal(np.sort(v, None), np.sort(polar(o)[0], None))  # the model's values, all of them
    assert np.array_equal(np.argsort(v, None), np.argsort(polar(t)[0], None))  # in the truth's order
    swapped = model_ab("{m} hue, truth chroma", o, t)
    assert np.allclose(polar(swapped)[0], polar(t)[0]) and np.allclose(np.cos(polar(swapped)[1] - polar(o)[1]), 1)
    swapped = model_ab("{m} chroma, truth hue", o, t)
    assert np.allclose(polar(swapped)[0], polar(o)[0]) and np.allclose(np.cos(polar(swapped)[1] - polar(t)[1]), 1)
    assert np.array_equal(model_ab("{m}", o, t), o)
    for row in TRUTH_ROWS:
        assert truth_ab(row, t, r).shape == t.shape
    stats = truth_ab("truth layout, reference's mean and spread", t, r).reshape(-1, 2)
    assert np.allclose(stats.mean(0), r.reshape(-1, 2).mean(0)) and np.allclose(stats.std(0), r.reshape(-1, 2).std(0))
    assert np.allclose(polar(truth_ab("truth hue +180 deg", t, r))[0], polar(t)[0])
    assert np.allclose(truth_ab("truth hue +180 deg", t, r), -t, atol=1e-9)

    import napari_colorize as nc

    class MeanRedJudge:  # class 1 when the image is redder than green, class 0 otherwise
        def probs(self, rgb):
            x = np.asarray(rgb, np.float64) / (255.0 if np.asarray(rgb).dtype == np.uint8 else 1.0)
            p1 = 1 / (1 + np.exp(-40 * (x[..., 0].mean() - x[..., 1].mean())))
            return np.array([1 - p1, p1])

    y, x = np.mgrid[0:48, 0:48]
    imgs = [np.stack([150 + 60 * np.sin(x / 5), 80 + 0 * x, 60 + 40 * np.cos(y / 7)], -1).astype(np.uint8),
            np.stack([70 + 0 * x, 160 + 50 * np.sin(y / 6), 90 + 0 * x], -1).astype(np.uint8)]
    res = probe(nc.load_model("reinhard"), imgs, imgs[::-1], MeanRedJudge())
    assert set(res) == {"grey", *TRUTH_ROWS, *(row.format(m="reinhard") for row in MODEL_ROWS)}
    assert all(len(d["agree"]) == len(d["agree_p"]) == 2 for d in res.values())
    assert res["truth"]["agree"].tolist() == [1.0, 1.0]
    assert res["truth hue +180 deg"]["agree"].tolist() == [0.0, 0.0]  # red <-> green turned: the judge flips


def test_fit_confidence_recovers_a_logistic_model_and_labels_a_view():
    """training.fit_confidence: the regression finds the coefficients that made synthetic labels (and a
    lower cross-entropy than a constant); a view's samples: one row of the three levels' similarities per
    grid pixel, the labels 1 exactly where the network's colour is within the tolerance (the photo's own
    copy as reference: everything within a huge tolerance, nothing within zero)."""
    from training.fit_confidence import FEATURES, fit_logistic, view_samples

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (20000, 3))
    true = np.array([-3.0, 4.0, 1.0, 2.0])
    y = (rng.uniform(size=len(X)) < 1 / (1 + np.exp(-(true[0] + X @ true[1:])))).astype(float)
    w, ce = fit_logistic(X, y)
    assert np.allclose(w, true, atol=0.35)
    p = y.mean()
    assert ce < -(p * np.log(p) + (1 - p) * np.log(1 - p)) - 0.05

    import napari_colorize as nc
    from training.evaluate import grey_of

    net = nc.load_model("exemplar", device="cpu").network
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.clip(np.stack([120 + 90 * np.sin(xx / 6), 100 + 70 * np.cos(yy / 8), 60 + 0 * xx], -1), 0, 255).astype(np.uint8)
    Xv, yv, sims = view_samples(net, grey_of(img), img[:, ::-1], img, 1e6, 8)
    assert Xv.shape == (64, len(FEATURES)) and set(sims) == set(FEATURES)
    assert np.all((Xv > -1.01) & (Xv < 1.01)) and yv.all()
    assert not view_samples(net, grey_of(img), img[:, ::-1], img, 0.0, 8)[1].any()


def test_the_pairs_cache_is_written_atomically_by_writers_at_once(tmp_path):
    """The ranks of a distributed run build the same pairs cache at once: each writer writes its own temporary
    file and renames it, so no writer fails on another's rename and the file is always whole JSON, nothing
    left over (four threads here, writing at once)."""
    import json
    import threading

    from training.pairs import write_cache

    path = tmp_path / "pairs_train_other.json"
    start, errors = threading.Barrier(4), []

    def many(rank):
        start.wait()
        try:
            for k in range(100):
                write_cache(path, {"rank": rank, "k": k, "items": list(range(3000))})
                json.loads(path.read_text())
        except Exception as e:  # (collected: a thread's exception would not fail the test)
            errors.append(e)

    threads = [threading.Thread(target=many, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert json.loads(path.read_text())["k"] == 99
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_per_image_file_has_the_soft_agreement_and_appends_to_an_older_file_in_its_columns(tmp_path):
    from training.evaluate import write_per_image
    from training.paired import load

    row = {"model": "m", "per_image": {"his_ref": [0.5, 0.6], "his_gt": [0.4, 0.4], "ssim": [0.9, 0.8],
                                       "psnr": [20.0, 21.0], "colourful": [10.0, 11.0], "agree": [1.0, 0.0],
                                       "agree_p": [0.7, 0.2], "sec": [0.1, 0.1]}}
    p = tmp_path / "new.csv"
    write_per_image([row], "other-source", p)
    assert p.read_text().splitlines()[0].endswith(",agree,agree_p")
    assert list(load(p, "other-source")["m"]["agree_p"]) == [0.7, 0.2]
    old = tmp_path / "old.csv"  # a file written before agree_p: appended rows keep its columns
    old.write_text("model,protocol,image,his_ref,his_gt,ssim,psnr,colourful,agree\n"
                   "g,other-source,0,0.1,0.1,0.9,20,0,1\ng,other-source,1,0.1,0.1,0.9,20,0,0\n")
    write_per_image([row], "other-source", old)
    lines = old.read_text().splitlines()
    assert all(len(ln.split(",")) == 9 for ln in lines)
    d = load(old, "other-source")
    assert list(d["m"]["agree"]) == [1.0, 0.0] and np.isnan(d["g"]["agree_p"]).all()


def test_semantic_judge_probabilities_give_its_top1():
    from training.evaluate import SemanticJudge
    from skimage import data

    judge = SemanticJudge()
    p = judge.probs(data.chelsea())
    assert p.shape == (1000,) and p.sum() == pytest.approx(1.0) and (p >= 0).all()
    assert judge.top1(data.chelsea()) == int(p.argmax())
    grey = np.repeat(data.chelsea().mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    assert not np.allclose(judge.probs(grey), p)  # the colour changes what it sees
