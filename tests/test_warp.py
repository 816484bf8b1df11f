"""The correspondence prior: the parameter-free warp, the `warp` model, and the networks built on it."""

import numpy as np
import pytest
import torch

import napari_colorize as nc
from napari_colorize import metrics
from napari_colorize.models.exemplar import EXEMPLAR_CONFIGS, ExemplarNet
from napari_colorize.models.warp import feature_warp


def _naive_warp(ft, fr, ab, tau):
    """Eq. by the letter, one target position at a time."""
    B, C, h, w = ft.shape
    out = torch.zeros(B, 2, h, w, dtype=torch.float64)
    conf = torch.zeros(B, 1, h, w, dtype=torch.float64)
    for b in range(B):
        t = ft[b].double().reshape(C, -1)
        r = fr[b].double().reshape(C, -1)
        t = t - t.mean(1, keepdim=True)
        r = r - r.mean(1, keepdim=True)
        v = ab[b].double().reshape(2, -1)
        for o in range(h * w):
            sims = torch.tensor([float(t[:, o] @ r[:, p] / (t[:, o].norm() * r[:, p].norm())) for p in range(r.shape[1])],
                                dtype=torch.float64)
            wts = torch.softmax(sims / tau, 0)
            out[b, :, o // w, o % w] = (v * wts).sum(1)
            conf[b, 0, o // w, o % w] = sims.max()
    return out, conf


@pytest.mark.parametrize("block", [1000, 5])
def test_feature_warp_equals_the_naive_loop(block):
    g = torch.Generator().manual_seed(0)
    ft, fr = torch.randn(2, 6, 3, 4, generator=g), torch.randn(2, 6, 5, 2, generator=g)
    ab = torch.rand(2, 2, 5, 2, generator=g) * 2 - 1
    got, conf = feature_warp(ft, fr, ab, 0.3, block=block)
    want, want_conf = _naive_warp(ft, fr, ab, 0.3)
    assert torch.allclose(got.double(), want, atol=1e-5)
    assert torch.allclose(conf.double(), want_conf, atol=1e-5)


@pytest.mark.parametrize("tau", [0.3, 0.005])
def test_the_fast_softmax_without_gradients_equals_the_trainable_one(tau):
    """Inference takes an in-place softmax with floored logits (a sharp one is twice as fast); with a
    learnable temperature the plain one; both give the same warp."""
    g = torch.Generator().manual_seed(1)
    ft, fr = torch.randn(2, 8, 6, 5, generator=g), torch.randn(2, 8, 7, 4, generator=g)
    ab = torch.rand(2, 2, 7, 4, generator=g) * 2 - 1
    fast, conf = feature_warp(ft, fr, ab, tau)
    t = torch.tensor(tau, requires_grad=True)
    slow, conf_slow = feature_warp(ft, fr, ab, t)
    assert slow.requires_grad and not fast.requires_grad
    assert torch.allclose(fast, slow.detach(), atol=1e-6) and torch.equal(conf, conf_slow.detach())
    from napari_colorize.models.warp import softmax_rows

    sim = torch.rand(3, 4, 50, generator=g) * 2 - 1  # without gradients it works in place (no copy of the logits)
    out = softmax_rows(sim, sim.amax(-1, keepdim=True), tau)
    assert out.data_ptr() == sim.data_ptr() and torch.allclose(out.sum(-1), torch.ones(3, 4))


def test_one_reference_for_many_targets():
    g = torch.Generator().manual_seed(1)
    ft, fr, ab = torch.randn(3, 4, 2, 2, generator=g), torch.randn(1, 4, 3, 3, generator=g), torch.rand(1, 2, 3, 3)
    batch, _ = feature_warp(ft, fr, ab, 0.1)
    for i in range(3):
        one, _ = feature_warp(ft[i:i + 1], fr, ab, 0.1)
        assert torch.allclose(batch[i:i + 1], one, atol=1e-6)


def test_a_low_temperature_copies_the_best_match():
    """With identical features, every position takes exactly its own reference colour."""
    g = torch.Generator().manual_seed(2)
    f = torch.randn(1, 16, 4, 4, generator=g)
    ab = torch.rand(1, 2, 4, 4, generator=g) * 2 - 1
    out, conf = feature_warp(f, f, ab, 1e-3)
    assert torch.allclose(out, ab, atol=1e-4)
    assert torch.allclose(conf, torch.ones_like(conf), atol=1e-5)


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    from skimage.transform import resize

    rgb = (resize(data.astronaut(), (160, 160), anti_aliasing=True) * 255).astype(np.uint8)
    grey = np.round(np.asarray(rgb, np.float32) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    return grey, rgb


def test_the_warp_model_uses_the_references_colours(photo):
    """Given the photo itself (flipped) as its reference, the warp puts the colours back: far closer to
    the truth than painting the reference's mean colour everywhere."""
    grey, rgb = photo
    assert "warp" in nc.list_models(kind="exemplar")
    out = nc.colorize(nc.load_model("warp", device="cpu"), grey, reference=rgb[:, ::-1]).rgb
    mean = nc.colorize(nc.load_model("reinhard", device="cpu"), grey, reference=rgb[:, ::-1]).rgb
    assert metrics.psnr(out, rgb) > metrics.psnr(mean, rgb) + 2.0
    assert metrics.his(out, rgb) > 0.6


def test_a_prior_network_starts_as_the_warp():
    """Warm start: with the prior, a fresh network's heads give the warp (the gates start near 0),
    whatever its other weights are, so training only has to improve on the warp."""
    torch.manual_seed(0)
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp"]).eval()
    L, R = torch.rand(1, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        preds, raw = net(L, R, return_attention=True)
        warp = raw[("warp", 0)]
    p2 = preds[1]  # P2 sits on the warp's own lattice (stride 4)
    assert p2.shape == warp.shape
    assert (p2 - warp).abs().max() < 2 * torch.sigmoid(torch.tensor(-4.0)) + 1e-6
    assert all(0 < float(raw[("gate", s)].max()) < 0.02 for s in range(1, 5))


def test_warm_start_from_the_shipped_weights_keeps_them(tmp_path):
    """--init-from: every tensor of the earlier network is taken over; only the prior's parts are new."""
    from training.engine import init_from

    from napari_colorize.models.registry import load_checkpoint, weights_dir

    src = weights_dir() / "exemplar-no-adv.safetensors"  # an earlier-recipe network without the prior
    sd, _ = load_checkpoint(src)
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp"], pretrained_backbone=False)
    init_from(net, src)
    own = net.trainable_state_dict()
    assert all(torch.equal(own[k], v.to(own[k].dtype)) for k, v in sd.items())
    new = sorted(set(own) - set(sd))
    assert new and all(k.startswith(("decoder.gates.", "prior_in.", "log_tau")) for k in new)


def test_the_chroma_gain_starts_at_one_and_never_changes_a_hue(tmp_path):
    """``prior_gain``: warm-started from a network without it, the outputs are the same; trained (random
    gain weights here), it scales a and b of every position by one factor in [0.5, 1.5]."""
    from training.engine import init_from

    from napari_colorize.models.registry import save_checkpoint

    torch.manual_seed(0)
    base = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey-adapt"], pretrained_backbone=False).eval()
    with torch.no_grad():  # a trained network without the gain (its gates open, so that the heads count)
        for g in base.decoder.gates:
            g.bias.fill_(0.0)
    src = save_checkpoint(base, tmp_path / "no_gain.safetensors", {"name": "no-gain"}, dtype=torch.float32)
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey-gain"], pretrained_backbone=False).eval()
    net.backbone.load_state_dict(base.backbone.state_dict())
    init_from(net, src, keep_temperature=True)
    L, R = torch.rand(1, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = base(L, R)
        assert all(torch.equal(a, b) for a, b in zip(before, net(L, R)))
        for g in net.decoder.gains:
            torch.nn.init.normal_(g.weight, std=1.0)
        after = net(L, R)
    for a, b in zip(before, after):
        ratio = b / a  # one factor per position, the same for a and b: the hue is kept
        assert torch.allclose(ratio[:, 0], ratio[:, 1], rtol=1e-4, atol=1e-4)
        assert float(ratio.min()) >= 0.5 - 1e-4 and float(ratio.max()) <= 1.5 + 1e-4
        assert float((ratio - 1).abs().max()) > 0.05  # (and it does change the chroma)


def test_a_chroma_gain_needs_the_prior():
    from napari_colorize.models.configs import ExemplarConfig

    with pytest.raises(ValueError, match="prior_gain"):
        ExemplarConfig.from_dict({"prior_gain": True})


def test_grey_keys_see_only_the_references_lightness(photo):
    """``warp-grey``: the keys come from the reference's lightness, so two references with the same
    lightness and different colours give the same keys (and different ab to move)."""
    from napari_colorize.color import lab_to_rgb_in_gamut, rgb_to_lab

    _, rgb = photo
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    lab = rgb_to_lab(x)
    other = torch.cat([lab[:, :1], -lab[:, 1:]], 1)  # same L, opposite hues
    y = lab_to_rgb_in_gamut(other[0])[None]  # (chroma is cut where needed, lightness kept)
    assert (rgb_to_lab(y)[:, 0] - lab[:, 0]).abs().max() < 0.5
    grey, colour = nc.load_model("warp-grey", device="cpu"), nc.load_model("warp", device="cpu")
    sg, sy = grey.prepare(x), grey.prepare(y)
    assert torch.allclose(sg["keys"], sy["keys"], atol=0.05)
    assert not torch.allclose(sg["ab"], sy["ab"], atol=0.05)
    cg, cy = colour.prepare(x), colour.prepare(y)
    assert (cg["keys"] - cy["keys"]).abs().mean() > 2 * (sg["keys"] - sy["keys"]).abs().mean()


def test_a_grey_prior_network_warps_with_the_grey_keys():
    """``prior_reference="grey"``: the network's warp is the warp-grey model's on the same features,
    whether the reference is encoded once (stacks) or in the same backbone pass as the target."""
    from napari_colorize.models.warp import WarpColorizer

    torch.manual_seed(0)
    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey"]).eval()
    L, R = torch.rand(1, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        _, raw = net(L, R, return_attention=True)
        _, raw_once = net(L, reference_features=net.encode_reference(R), return_attention=True)
    assert torch.allclose(raw[("warp", 0)], raw_once[("warp", 0)], atol=1e-5)
    warp = WarpColorizer(tau=float(net.log_tau.detach().exp()), reference="grey")
    warp.backbone = net.backbone
    want = torch.nn.functional.interpolate(raw[("warp", 0)], size=(64, 96), mode="bilinear", align_corners=False)
    got = warp.predict(L, warp.prepare(R)).ab
    assert torch.allclose(got, want, atol=1e-4)
    colour = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp"]).eval()
    colour.backbone = net.backbone
    with torch.no_grad():
        _, raw_c = colour(L, R, return_attention=True)
    assert not torch.allclose(raw_c[("warp", 0)], raw[("warp", 0)], atol=1e-3)


def test_warm_start_takes_the_architectures_temperature(tmp_path):
    import math
    from training.engine import init_from

    from napari_colorize.models.registry import weights_dir

    net = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey"], pretrained_backbone=False)
    init_from(net, weights_dir() / "exemplar.safetensors")
    assert math.isclose(float(net.log_tau.exp()), 0.03, rel_tol=1e-5)
    init_from(net, weights_dir() / "exemplar.safetensors", keep_temperature=True)
    assert not math.isclose(float(net.log_tau.exp()), 0.03, rel_tol=1e-2)


def _naive_coarse_to_fine(ft, fr, ab, ct, cr, cells, tau):
    """Coarse to fine by the letter: each target position's coarse cell picks the ``cells`` most similar
    reference cells; the position's softmax runs over the fine reference positions inside them."""
    from napari_colorize.models.coherence import centre_normalise

    C, h, w = ft.shape[1:]
    hc, wc = ct.shape[-2:]
    qt, kr = centre_normalise(ft.double())[0], centre_normalise(fr.double())[0]
    qc, kc = centre_normalise(ct.double())[0], centre_normalise(cr.double())[0]
    v = ab.double()[0].reshape(2, -1)

    def cell(y, x):
        return min(y * hc // h, hc - 1) * wc + min(x * wc // w, wc - 1)

    ref_cell = torch.tensor([cell(p // w, p % w) for p in range(h * w)])
    out = torch.zeros(2, h, w, dtype=torch.float64)
    for o in range(h * w):
        chosen = (qc[cell(o // w, o % w)] @ kc.T).topk(cells).indices
        inside = torch.isin(ref_cell, chosen)
        sims = kr[inside] @ qt[o]
        out[:, o // w, o % w] = (v[:, inside] * torch.softmax(sims / tau, 0)).sum(1)
    return out[None]


@pytest.mark.parametrize("shape, coarse", [((8, 12), (2, 3)), ((7, 5), (2, 2))])
def test_the_coarse_to_fine_warp_equals_the_naive_loop(shape, coarse):
    """Also on a lattice that the coarse one does not divide (cells of unequal size, padded)."""
    from napari_colorize.models.coherence import centre_normalise
    from napari_colorize.models.warp import coarse_to_fine_warp

    g = torch.Generator().manual_seed(1)
    ft, fr = torch.randn(1, 6, *shape, generator=g), torch.randn(1, 6, *shape, generator=g)
    ct, cr = torch.randn(1, 5, *coarse, generator=g), torch.randn(1, 5, *coarse, generator=g)
    ab = torch.rand(1, 2, *shape, generator=g) * 2 - 1
    v = ab.flatten(2).transpose(1, 2)
    got, conf = coarse_to_fine_warp(centre_normalise(ft), centre_normalise(fr), v, shape, centre_normalise(ct),
                                    centre_normalise(cr), coarse, 2, 0.3)
    assert torch.allclose(got.double(), _naive_coarse_to_fine(ft, fr, ab, ct, cr, 2, 0.3), atol=1e-5)
    for block in (1, 3):  # target cells in blocks (bounded memory): the same warp
        blocked, blocked_conf = coarse_to_fine_warp(centre_normalise(ft), centre_normalise(fr), v, shape,
                                                    centre_normalise(ct), centre_normalise(cr), coarse, 2, 0.3, block)
        assert torch.allclose(blocked, got, atol=1e-6) and torch.equal(blocked_conf, conf)
    dense, dense_conf = feature_warp(ft, fr, ab, 0.3)
    assert (conf <= dense_conf + 1e-6).all() and not torch.allclose(got, dense, atol=1e-3)
    every, every_conf = coarse_to_fine_warp(centre_normalise(ft), centre_normalise(fr), v, shape, centre_normalise(ct),
                                            centre_normalise(cr), coarse, coarse[0] * coarse[1], 0.3)
    assert torch.allclose(every, dense, atol=1e-5) and torch.allclose(every_conf, dense_conf, atol=1e-6)


def test_the_coarse_to_fine_warp_over_two_references_and_with_gradients():
    """Two references (the union: stacked along the height) are two sets of cells; the temperature and
    the features get gradients (the network can train with it)."""
    from napari_colorize.models.coherence import centre_normalise
    from napari_colorize.models.union import stacked, union_keys
    from napari_colorize.models.warp import coarse_to_fine_warp

    g = torch.Generator().manual_seed(2)
    ft = torch.randn(1, 6, 8, 8, generator=g, requires_grad=True)
    fr, ct, cr = torch.randn(2, 6, 8, 8, generator=g), torch.randn(1, 5, 2, 2, generator=g), torch.randn(2, 5, 2, 2, generator=g)
    ab = torch.rand(2, 2, 8, 8, generator=g) * 2 - 1
    tau = torch.tensor(0.3, requires_grad=True)
    got, _ = coarse_to_fine_warp(centre_normalise(ft), union_keys(centre_normalise(fr)),
                                 stacked(ab).flatten(2).transpose(1, 2), (8, 8), centre_normalise(ct),
                                 union_keys(centre_normalise(cr)), (2, 2), 8, tau)
    dense, _ = feature_warp(ft, union_keys(centre_normalise(fr)), stacked(ab), tau)  # every cell: the union's warp
    assert torch.allclose(got, dense, atol=1e-5)
    got.sum().backward()
    assert tau.grad is not None and ft.grad is not None and float(ft.grad.abs().sum()) > 0


def test_a_network_with_coarse_to_fine_cells_warps_so_and_checks_its_config():
    """The same warp whether the reference is encoded once or with the target; not the dense one."""
    from napari_colorize.models.configs import ExemplarConfig

    torch.manual_seed(0)
    cfg = ExemplarConfig.from_dict({**EXEMPLAR_CONFIGS["cpu-warp-grey"].to_dict(), "prior_cells": 3})
    net = ExemplarNet(cfg).eval()
    L, R = torch.rand(1, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        _, raw = net(L, R, return_attention=True)
        _, raw_once = net(L, reference_features=net.encode_reference(R), return_attention=True)
    assert torch.allclose(raw[("warp", 0)], raw_once[("warp", 0)], atol=1e-5)
    dense = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey"]).eval()
    dense.load_state_dict(net.state_dict())
    with torch.no_grad():
        _, raw_dense = dense(L, R, return_attention=True)
    assert not torch.allclose(raw[("warp", 0)], raw_dense[("warp", 0)], atol=1e-4)
    for bad in ({"prior_cells": 3, "prior_reference": "colour"}, {"prior_cells": 3, "prior_cells_level": 2},
                {"prior_cells": -1}):
        with pytest.raises(ValueError, match="prior_cells"):
            ExemplarConfig.from_dict({**EXEMPLAR_CONFIGS["cpu-warp-grey"].to_dict(), **bad})


def test_the_cells_gate_blends_coarse_to_fine_and_dense_by_the_images_confidence():
    """``prior_cells_gate``: an image whose mean match confidence is high takes the coarse-to-fine warp, a low
    one the dense warp, one between a blend; each image of a batch its own."""
    from napari_colorize.color import grey_rgb
    from napari_colorize.models.configs import ExemplarConfig

    torch.manual_seed(0)
    base = EXEMPLAR_CONFIGS["cpu-warp-grey"].to_dict()
    gated = ExemplarNet(ExemplarConfig.from_dict({**base, "prior_cells": 3, "prior_cells_gate": [0.4, 0.6]})).eval()
    cells = ExemplarNet(ExemplarConfig.from_dict({**base, "prior_cells": 3})).eval()
    dense = ExemplarNet(EXEMPLAR_CONFIGS["cpu-warp-grey"]).eval()
    for other in (cells, dense):
        other.load_state_dict(gated.state_dict())
    L, R = torch.rand(2, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        taps, _ = gated.backbone(grey_rgb(L))
        side = gated.encode_reference(R)
        sure = {"best2": torch.ones(2, 1, 4, 4), "best4": torch.ones(2, 1, 2, 2), "best5": torch.ones(2, 1, 1, 1)}
        unsure = {k: -v for k, v in sure.items()}
        assert float(gated.cells_share(sure, 2).min()) == 1.0 and float(gated.cells_share(unsure, 2).max()) == 0.0
        assert cells.cells_share(None, 2) == 1.0 and dense.cells_share(None, 2) == 0.0
        share = torch.tensor([1.0, 0.25]).reshape(2, 1, 1, 1)
        got, _ = gated.warp(taps, side, share)
        want_cells, _ = cells.warp(taps, side)
        want_dense, _ = dense.warp(taps, side)
    assert torch.allclose(got[0], want_cells[0], atol=1e-6)
    assert torch.allclose(got[1], want_dense[1] + 0.25 * (want_cells[1] - want_dense[1]), atol=1e-6)
    with pytest.raises(ValueError, match="prior_cells_gate"):
        ExemplarConfig.from_dict({**base, "prior_cells": 3, "prior_cells_gate": [0.6, 0.4]})


def test_gather_rows_is_advanced_indexing():
    """The warp's gathers by ``index_select`` give exactly what ``x[batch, index]`` gives: one batch item,
    several, and one item expanded over several (not copied)."""
    from napari_colorize.models.warp import gather_rows

    g = torch.Generator().manual_seed(3)
    for B, Bx in ((1, 1), (3, 3), (3, 1)):
        x = torch.randn(Bx, 50, 7, generator=g)
        idx = torch.randint(0, 50, (B, 4, 6), generator=g)
        xb = x.expand(B, -1, -1)
        want = xb[torch.arange(B)[:, None, None], idx]
        assert torch.equal(gather_rows(x, idx), want)
        assert torch.equal(gather_rows(xb, idx), want)


def test_a_related_reference_can_be_warped_in_more_cells_instead_of_densely():
    """``prior_cells_related``: the gate's low end (a related reference) takes the coarse-to-fine warp with
    that many cells instead of the dense one - with every cell it is the dense warp; it needs ``prior_cells``."""
    from napari_colorize.color import grey_rgb
    from napari_colorize.models.configs import ExemplarConfig

    torch.manual_seed(0)
    base = {**EXEMPLAR_CONFIGS["cpu-warp-grey"].to_dict(), "prior_cells": 2, "prior_cells_gate": [0.4, 0.6]}
    nets = {n: ExemplarNet(ExemplarConfig.from_dict({**base, "prior_cells_related": n})).eval() for n in (0, 4)}
    wide = ExemplarNet(ExemplarConfig.from_dict({**EXEMPLAR_CONFIGS["cpu-warp-grey"].to_dict(), "prior_cells": 4})).eval()
    for net in (*nets.values(), wide):
        net.load_state_dict(nets[0].state_dict())
    L, R = torch.rand(1, 1, 64, 96) * 2 - 1, torch.rand(1, 3, 64, 96)  # (stride 16: 4 x 6 cells)
    with torch.no_grad():
        taps, _ = nets[0].backbone(grey_rgb(L))
        side = nets[0].encode_reference(R)
        dense, _ = nets[0].warp(taps, side, 0.0)
        four, _ = nets[4].warp(taps, side, 0.0)
        want_four, _ = wide.warp(taps, side)
        same_scene = [net.warp(taps, side, 1.0)[0] for net in (nets[0], nets[4])]
    assert torch.allclose(four, want_four, atol=1e-6) and not torch.allclose(four, dense, atol=1e-4)
    assert torch.equal(same_scene[0], same_scene[1])  # (a reference of the same scene: prior_cells as before)
    everything = ExemplarNet(ExemplarConfig.from_dict({**base, "prior_cells_related": 24})).eval()
    everything.load_state_dict(nets[0].state_dict())
    with torch.no_grad():
        assert torch.allclose(everything.warp(taps, side, 0.0)[0], dense, atol=1e-5)
    with pytest.raises(ValueError, match="prior_cells_related"):
        ExemplarConfig.from_dict({**EXEMPLAR_CONFIGS["cpu-warp-grey"].to_dict(), "prior_cells_related": 8})
