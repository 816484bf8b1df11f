"""The correspondence prior: colour warped from the reference by frozen backbone features.

Every target position takes the softmax-weighted mean of the reference's ab, weighted by
the cosine similarity of the frozen backbone features of the (grey) target and the
reference at one level (EfficientNet-Lite0's stride-4 tap by default)::

    f  <- f - mean_positions(f)                  (each map centred over its own positions)
    s(o, p) = <f_T(o), f_R(p)> / (|f_T(o)| |f_R(p)|)
    ab_warp(o) = sum_p softmax_p(s(o, p) / tau) ab_R(p)

No parameters but the temperature ``tau``. It is the "parameter-free warp" baseline
(``load_model("warp")``), and the exemplar networks with ``prior="warp"`` start from it:
their heads mix it with their own prediction through a learned per-pixel gate (see
:mod:`napari_colorize.models.exemplar`), so training only has to improve on it.

Memory: the similarity of all target and reference positions is computed in blocks of
query rows, so a large working size needs ``block * positions`` floats, never
``positions ** 2``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..color import grey_rgb, normalize_lab, rgb_to_lab
from .base import Colorizer, Prediction, require_reference
from .coherence import (BLOCK_FLOATS, CONFIDENCE_LEVELS, DEFAULT_CONFIDENCE, best_similarities, centre_normalise,
                        match_confidence, query_block)
from .union import stacked, union_keys

__all__ = ["feature_warp", "coarse_to_fine_warp", "coarse_to_fine_best", "cell_members", "reference_side", "reference_grey", "WarpColorizer", "pool_ab",
           "softmax_rows"]

REFERENCE_VIEWS = ("colour", "grey")


def pool_ab(ab: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Area-average ``(B, 2, H, W)`` ab to a feature lattice ``shape``."""
    if tuple(ab.shape[-2:]) == tuple(shape):
        return ab
    return F.adaptive_avg_pool2d(ab, shape)


def reference_grey(reference_rgb: torch.Tensor) -> torch.Tensor:
    """The reference as the backbone sees a grey target: its own lightness in neutral grey.
    Matching grey to grey removes the colour-vs-grey gap between the two feature maps."""
    return grey_rgb(normalize_lab(rgb_to_lab(reference_rgb.float()))[:, :1])


def reference_side(tap: torch.Tensor, reference_rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the warp needs of a reference, computed once: its centred features ``(B, N, C)`` (from
    the backbone ``tap``) and its normalised ab area-averaged onto the tap's lattice ``(B, 2, h, w)``."""
    ab = normalize_lab(rgb_to_lab(reference_rgb.float()))[:, 1:]
    return centre_normalise(tap), pool_ab(ab, tap.shape[-2:])


def softmax_rows(sim: torch.Tensor, best: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """``softmax(sim / tau)`` over the last axis (``best``: its maximum). Without gradients, in place
    and with the logits floored at ``max - 30`` (a weight below e^-30 = 1e-13 of the best match's
    becomes that: nothing a colour can show): a sharp softmax (tau ~ 0.005) drives exp deep into
    underflow, where the CPU's exp is slow (``benchmarks/bench_library.py warp``, docs/BENCHMARKS.md)."""
    if sim.requires_grad or (isinstance(tau, torch.Tensor) and tau.requires_grad):
        return (sim / tau).softmax(-1)
    z = sim.sub_(best).div_(tau).clamp_min_(-30.0).exp_()
    return z.div_(z.sum(-1, keepdim=True))


def feature_warp(ft: torch.Tensor, fr: torch.Tensor, ab_ref: torch.Tensor, tau: float | torch.Tensor = 0.05,
                 block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the reference's ab onto the target's lattice.

    Parameters
    ----------
    ft : ``(B, C, h, w)`` target features.
    fr : ``(B, C, h', w')`` reference features, or ``(B, h'*w', C)`` already through
        :func:`centre_normalise` (computed once for a stack); B may be 1.
    ab_ref : ``(B, 2, h', w')`` the reference's normalised ab on its feature lattice.
    tau : softmax temperature (a tensor keeps it learnable).
    block : query positions per block (bounds memory; default :func:`~.coherence.query_block`).

    Returns
    -------
    ab : ``(B, 2, h, w)`` the warped colour; conf : ``(B, 1, h, w)`` the best cosine similarity
    of each target position (how well it is matched, in [-1, 1]).
    """
    B, _, h, w = ft.shape
    qt = centre_normalise(ft)
    kr = fr if fr.dim() == 3 else centre_normalise(fr)
    v = ab_ref.float().flatten(2).transpose(1, 2)  # (B', N', 2)
    if kr.shape[0] != B:
        kr, v = kr.expand(B, -1, -1), v.expand(B, -1, -1)
    assert kr.shape[1] == v.shape[1], (kr.shape, v.shape)
    outs, confs = [], []
    block = block or query_block(kr.shape[1], B)
    for s in range(0, qt.shape[1], block):
        sim = torch.bmm(qt[:, s:s + block], kr.transpose(1, 2))  # (B, n, N')
        best = sim.amax(-1, keepdim=True)
        confs.append(best[..., 0])
        outs.append(torch.bmm(softmax_rows(sim, best, tau), v))
    ab = torch.cat(outs, 1).transpose(1, 2).reshape(B, 2, h, w)
    conf = torch.cat(confs, 1).reshape(B, 1, h, w)
    return ab, conf


@functools.lru_cache(maxsize=32)
def cell_members(shape: tuple[int, int], coarse: tuple[int, int]) -> torch.Tensor:
    """The positions of a fine lattice ``shape`` in each cell of a coarser one ``coarse`` (cell of
    ``(y, x)``: ``(y hc // h, x wc // w)``), as ``(hc * wc, m)`` flat indices, row-major, padded with
    -1 where a cell holds fewer than the most, ``m``."""
    (h, w), (hc, wc) = shape, coarse
    cy = (torch.arange(h) * hc // h).clamp_max(hc - 1)
    cx = (torch.arange(w) * wc // w).clamp_max(wc - 1)
    cell = (cy[:, None] * wc + cx[None, :]).flatten()
    order = torch.argsort(cell, stable=True)
    counts = torch.bincount(cell, minlength=hc * wc)
    m = int(counts.max())
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(h * w) - start[cell[order]]
    out = torch.full((hc * wc, m), -1, dtype=torch.long)
    out[cell[order], slot] = order
    return out


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b, ...]]`` for each batch item: rows of ``x`` ``(B or 1, N, C)`` at the positions
    ``index`` ``(B, ...)``, as ``(B, ..., C)``. The same values as advanced indexing, by one
    ``index_select`` over the flattened batch (several times faster on the CPU for the warp's gathers)."""
    B, N = index.shape[0], x.shape[1]
    flat = index.reshape(B, -1)
    if x.shape[0] == 1 or x.stride(0) == 0:  # one batch item (or one expanded): no copy of it
        x = x[:1]
    else:
        flat = flat + torch.arange(B, device=index.device)[:, None] * N
    rows = x.reshape(-1, x.shape[-1]).contiguous()  # (index_select on strided rows is slow: the colours come transposed)
    return rows.index_select(0, flat.flatten()).view(*index.shape, x.shape[-1])


def _cell_blocks(qt: torch.Tensor, kr: torch.Tensor, shape: tuple[int, int], qc: torch.Tensor, kc: torch.Tensor,
                 coarse: tuple[int, int], cells: int, block: int | None, extra: int):
    """The coarse-to-fine search shared by :func:`coarse_to_fine_warp` and :func:`coarse_to_fine_best`:
    for each block of target cells, ``(members, sim, cand, valid)`` - the block's fine target positions
    ``(n, m)`` (-1: padding), their similarities to the fine positions of their ``cells * K`` most similar
    reference cells ``(B, n, m, k m)`` (padding's at -2, below any cosine), those reference positions
    ``(B, n, k m)`` and which are real (None: all of them). ``extra``: floats of further work per candidate
    (for the block size)."""
    B, N, C = qt.shape
    K = kr.shape[1] // N
    members = cell_members(tuple(shape), tuple(coarse)).to(qt.device)  # (Nc, m)
    Nc, m = members.shape
    # the reference cells of all K lattices: cell j of reference r holds members[j] + r N
    ref_members = (members[None] + torch.arange(K, device=qt.device)[:, None, None] * N).reshape(K * Nc, m)
    ref_members[members.repeat(K, 1) < 0] = -1
    if kc.shape[0] != B:  # (the fine keys are gathered from one reference's rows: gather_rows)
        kc = kc.expand(B, -1, -1)
    kk = min(int(cells) * K, kc.shape[1])  # (K references: K times as many cells: a reference given twice is it)
    # target cells per block: the block's coarse similarities, gathered keys and fine similarities stay
    # about a block of the dense warp's size (memory bounded at any working size)
    rows = block or max(1, BLOCK_FLOATS // max(1, B * max(kc.shape[1], kk * m * (C + m + extra))))
    kct = kc.transpose(1, 2)
    for s in range(0, Nc, rows):
        top = torch.bmm(qc[:, s:s + rows], kct).topk(kk, -1).indices  # (B, n, k K) reference cells
        cand = ref_members[top].flatten(2)  # (B, n, k m) fine reference positions, -1: none
        valid = cand >= 0
        cand = cand.clamp_min(0)
        queries = gather_rows(qt, members[s:s + rows].clamp_min(0).expand(B, -1, -1))  # (B, n, m, C)
        sim = torch.matmul(queries, gather_rows(kr, cand).transpose(-1, -2))  # (B, n, m, k m)
        if bool(valid.all()):
            valid = None
        else:
            sim = sim.masked_fill(~valid[:, :, None, :], -2.0)  # (below any cosine)
        yield members[s:s + rows], sim, cand, valid


def _scatter_cells(values: torch.Tensor, members: torch.Tensor, N: int, shape: tuple[int, int]) -> torch.Tensor:
    """Per-cell values ``(B, Nc, m, c)`` back onto the fine lattice ``(B, c, h, w)`` (padding dropped)."""
    B, c = values.shape[0], values.shape[-1]
    keep = (members >= 0).flatten()
    out = torch.zeros(B, N, c, dtype=values.dtype, device=values.device)
    out = out.index_copy(1, members.flatten()[keep], values.reshape(B, -1, c)[:, keep])
    return out.transpose(1, 2).reshape(B, c, *shape)


def coarse_to_fine_warp(qt: torch.Tensor, kr: torch.Tensor, v: torch.Tensor, shape: tuple[int, int],
                        qc: torch.Tensor, kc: torch.Tensor, coarse: tuple[int, int], cells: int,
                        tau: float | torch.Tensor, block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The warp matched coarse to fine: *what* a region is decided at a coarse level, *where* its
    colour comes from at the fine one.

    Each coarse cell of the target takes the ``cells`` reference cells (``cells * K`` of ``K`` references)
    most similar to it at the coarse level (a stride of 16 carries semantics: bright rock and bright sky differ there, not at stride 4);
    its fine positions are then matched, by the softmax of :func:`feature_warp`, to the fine positions of
    those cells only. ``qt`` ``(B, N, C)`` / ``kr`` ``(B', K N, C)`` / ``v`` ``(B', K N, 2)``: the fine
    queries, keys and colours (centred, ``K`` references of the target's lattice ``shape`` stacked
    along the height, :mod:`~.union`); ``qc`` / ``kc``: the same at the coarse lattice ``coarse``.
    Returns ``ab`` ``(B, 2, h, w)`` and the best cosine similarity among the candidates ``(B, 1, h, w)``.
    Cost: ``cells * m`` similarities per fine position (``m`` fine positions per cell, 16 at strides
    4 / 16) instead of ``K N``. Target cells go in blocks (``block`` cells; default: about
    :data:`~.coherence.BLOCK_FLOATS` floats of work each), so memory is bounded at any working size.
    """
    B, N = qt.shape[:2]
    v = v.contiguous()  # (gathered once per block of cells)
    outs, bests, members = [], [], []
    for mem, sim, cand, valid in _cell_blocks(qt, kr, shape, qc, kc, coarse, cells, block, 2):
        best = sim.amax(-1, keepdim=True)
        weights = softmax_rows(sim, best, tau)
        if valid is not None:  # the padding's weights exactly zero
            weights = weights * valid[:, :, None, :]
            weights = weights / weights.sum(-1, keepdim=True)
        outs.append(torch.matmul(weights, gather_rows(v, cand)))  # (B, n, m, 2)
        bests.append(best)
        members.append(mem)
    members = torch.cat(members)
    return (_scatter_cells(torch.cat(outs, 1), members, N, shape),
            _scatter_cells(torch.cat(bests, 1), members, N, shape))


def coarse_to_fine_best(qt: torch.Tensor, kr: torch.Tensor, shape: tuple[int, int], qc: torch.Tensor,
                        kc: torch.Tensor, coarse: tuple[int, int], cells: int,
                        block: int | None = None) -> torch.Tensor:
    """The best cosine similarity of each fine target position among the fine positions of the ``cells``
    reference cells most similar to its coarse cell (the search of :func:`coarse_to_fine_warp`, same
    arguments, without the colours): ``(B, 1, h, w)``, at most the dense search's best
    (:func:`~.coherence.best_similarities`), equal to it with every cell."""
    bests, members = [], []
    for mem, sim, _, _ in _cell_blocks(qt, kr, shape, qc, kc, coarse, cells, block, 0):
        bests.append(sim.amax(-1, keepdim=True))
        members.append(mem)
    return _scatter_cells(torch.cat(bests, 1), torch.cat(members), qt.shape[1], shape)


class WarpColorizer(Colorizer):
    """The parameter-free warp as a model: no trained weights, only the frozen backbone.

    Parameters
    ----------
    level : backbone tap (1-based; 2 = stride 4 for EfficientNet-Lite0).
    tau : softmax temperature.
    reference : {"colour", "grey"}
        How the reference is shown to the backbone for the keys: in colour (the baseline of
        issue 10) or as its lightness in neutral grey, like the target (``warp-grey``).
    """

    kind = "exemplar"
    default_size = 224
    gives_confidence = True

    def __init__(self, name: str = "warp", level: int = 2, tau: float = 0.05, device="cpu",
                 backbone: str = "efficientnet_lite0", reference: str = "colour") -> None:
        from .backbones import build_backbone

        if reference not in REFERENCE_VIEWS:
            raise ValueError(f"reference must be one of {REFERENCE_VIEWS}, not {reference!r}")
        super().__init__(name, {"architecture": "baseline", "method": "warp", "level": level, "tau": tau,
                                "backbone": backbone, "reference": reference}, device)
        self.level, self.tau, self.reference = level, tau, reference
        self.backbone = build_backbone(backbone).to(self.device)
        self.multiple = self.min_size = max(self.backbone.spec.strides)

    @torch.inference_mode()
    def prepare(self, reference=None, histogram=None):
        require_reference(self.name, reference)
        rgb = reference.to(self.device).float()
        grey_taps, _ = self.backbone(reference_grey(rgb))
        taps = grey_taps if self.reference == "grey" else self.backbone(rgb)[0]
        keys, ab = reference_side(taps[self.level - 1], rgb)
        match = {lv: union_keys(centre_normalise(grey_taps[lv - 1])) for lv in CONFIDENCE_LEVELS}
        return {"keys": union_keys(keys), "ab": stacked(ab), "match": match}  # (several: one set of positions)

    @torch.inference_mode()
    def predict(self, L, state, return_attention=False):
        L = L.to(self.device).float()
        taps, _ = self.backbone(grey_rgb(L))
        ab, _ = feature_warp(taps[self.level - 1], state["keys"], state["ab"], self.tau)
        ab = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
        conf = match_confidence(best_similarities(taps, state["match"]), DEFAULT_CONFIDENCE, tuple(L.shape[-2:]),
                                self.backbone.spec.block_centred)
        return Prediction(ab=ab, confidence=conf)
