"""Colour that holds up with a related reference: match confidence, fallback and region coherence.

A per-pixel match confidence, a fallback where nothing matches, and colour decided per region
instead of per pixel.

Three steps, each a pure function on working-size tensors (normalised Lab, ``L/50 - 1``, ``ab/110``):

1. :func:`match_confidence` - how well and how unambiguously each target position found its match in
   the reference: a logistic function of the best cosine similarity of the frozen backbone's features
   (target and reference both seen by their lightness, like the correspondence prior) at a fine level
   (stride 4: *where*) and at coarse levels (strides 16 and 32: *what* - bright rock and bright sky
   look alike at stride 4, not at stride 32). Its coefficients were fitted (a logistic regression on
   training views) to predict where the prediction's colour is close to the truth, with references
   from other sources; they live in the model's config.
2. :func:`lightness_palette` - the fallback: the reference's palette conditioned on lightness
   (Reinhard-like, global): the target's lightness is matched to the reference's by quantiles, and
   each pixel gets the reference's mean ab at that lightness. Colour that is a smooth function of
   lightness never paints structure the grey image does not have, so it cannot sprinkle confetti;
   where a lightness holds many colours in the reference their mean is duller, which is the right
   answer to an ambiguous match.
3. :func:`spread` - confidence-weighted, edge-aware spreading (normalised guided filtering, He et al.
   2013, with the target's lightness as the guide): colour agrees within regions of the target and
   changes at its lightness edges; confident pixels dominate their region.

:func:`coherent_ab` chains them: ``ab = spread(c * ab_pred + (1 - c) * palette)``, and, where configured,
:func:`palette_vote` then gives each region the main colour of the reference its pixels vote for
(when one has a clear majority) instead of the mean of their colours: a region's colour is one the
reference has, not the duller average of what its pixels matched.

4. :func:`fade_dark` - near-black pixels of photographs carry little colour, and SSIM is most sensitive
   there (small means): where the match is unsure, chroma fades towards black.
5. :func:`fade_black` - below a lower lightness, chroma fades to none at black whatever the match, as much
   as the image's gate says (a related reference: in full; one of the same scene: not at all).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .configs import CONFIDENCE_FEATURES, CONFIDENCE_LEVELS
from .maps import lattice_coords

__all__ = ["centre_normalise", "inner_positions", "query_block", "box_mean", "best_similarities", "lattice_to_pixels", "match_confidence", "lightness_palette", "spread", "palette_modes", "palette_vote", "coherent_ab", "odd_colours", "fade_dark", "fade_black",
           "image_gate", "CONFIDENCE_FEATURES",
           "CONFIDENCE_LEVELS", "DEFAULT_CONFIDENCE"]

#: the match confidence's coefficients for a dense search, fitted by a logistic regression of "the
#: exemplar network's colour is within 11 ab units of the truth" on training views (references from the
#: photo itself and from other sources; ``python -m training.fit_confidence --data data/manifest.csv
#: exemplar-direct``, each lattice where the backbone centres its cells, :func:`lattice_to_pixels`) for
#: ``exemplar-direct``, the network of issue 18's first step; the shipped ``exemplar`` has its own
#: (``configs.EXEMPLAR_OUTPUT``); docs/MODELS.md
DEFAULT_CONFIDENCE = {"bias": -6.73, "best2": 5.5, "best4": 2.15, "best5": 3.01}


def centre_normalise(f: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, h*w, C)``: centred over positions, unit length per position."""
    f = f.float().flatten(2)
    f = f - f.mean(dim=2, keepdim=True)
    return F.normalize(f, dim=1).transpose(1, 2)


#: floats of one block of similarities (query rows x reference positions), so that a block is written
#: and read again while it is still in the processor's cache (a whole stride-4 matrix at once is several
#: times slower: ``benchmarks/bench_library.py warp``, docs/BENCHMARKS.md)
BLOCK_FLOATS = 2**21


def query_block(keys: int, batch: int = 1, floats: int = BLOCK_FLOATS) -> int:
    """Query rows per block of a ``(batch, rows, keys)`` similarity matrix of about ``floats`` floats
    (at least 64 rows)."""
    return max(64, int(floats) // max(1, int(keys) * int(batch)))


def inner_positions(shape: tuple[int, int], ring: int) -> torch.Tensor:
    """Flat (row-major) indices of the positions of an ``(h, w)`` lattice at least ``ring`` cells from
    its border; every position when the lattice is too small to keep two rows and columns inside."""
    h, w = shape
    if not ring or h - 2 * ring < 2 or w - 2 * ring < 2:
        return torch.arange(h * w)
    rows = torch.arange(ring, h - ring)
    return (rows[:, None] * w + torch.arange(ring, w - ring)[None, :]).flatten()


def best_similarities(target_taps: list[torch.Tensor], reference_keys: dict[int, torch.Tensor],
                      levels: tuple[int, ...] = CONFIDENCE_LEVELS, block: int | None = None) -> dict[str, torch.Tensor]:
    """The best cosine similarity of each target position to any reference position, per backbone tap
    (1-based ``levels``), as ``{"best{l}": (B, 1, h_l, w_l)}``. ``reference_keys``: level -> the
    reference's features through :func:`centre_normalise` ``(B or 1, N, C)``. ``block``: query rows
    per block (default :func:`query_block`)."""
    out = {}
    for lv in levels:
        t, k = target_taps[lv - 1], reference_keys[lv]
        B, _, h, w = t.shape
        q = centre_normalise(t)
        if k.shape[0] != B:
            k = k.expand(B, -1, -1)
        n = block or query_block(k.shape[1], B)
        kt = k.transpose(1, 2)
        best = torch.cat([torch.bmm(q[:, s:s + n], kt).amax(-1) for s in range(0, q.shape[1], n)], 1)
        out[f"best{lv}"] = best.reshape(B, 1, h, w)
    return out


def lattice_to_pixels(x: torch.Tensor, shape: tuple[int, int], block_centred: bool = False) -> torch.Tensor:
    """Bilinear resampling of a backbone lattice map ``(B, C, h, w)`` to ``shape`` ``(H, W)`` (pixels, or a
    finer lattice of the same backbone), each cell where the backbone centres it
    (:func:`~napari_colorize.models.maps.lattice_coords`, the placement the widgets' maps share): cell ``i`` of
    a stride-``s`` lattice on pixel ``s * i`` (EfficientNet's stride-2 convolutions pad ``k // 2``;
    ``F.interpolate(align_corners=False)`` would put it ``(s - 1) / 2`` pixels down and right), or in the
    middle of its ``s x s`` block when ``block_centred`` (VGG's 2 x 2 pooling, ``BackboneSpec.block_centred``);
    beyond the last cell, the last cell's value. The stride is the power of two nearest ``H / h`` (a lattice
    of ``ceil(H / s)`` cells, or ``floor`` for VGG, when ``H`` is not a multiple of ``s``)."""
    h, w = x.shape[-2:]
    H, W = int(shape[0]), int(shape[1])

    def axis(n_out: int, n_in: int) -> torch.Tensor:
        s = 2 ** round(math.log2(n_out / n_in))  # (the lattice's stride relative to the output's grid)
        u = torch.from_numpy(lattice_coords(n_out, n_in, s, block_centred)).to(x.device, torch.float32)
        return u / (n_in - 1) * 2 - 1 if n_in > 1 else torch.zeros_like(u)

    gy, gx = torch.meshgrid(axis(H, h), axis(W, w), indexing="ij")
    grid = torch.stack((gx, gy), -1)[None].expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def match_confidence(sims: dict[str, torch.Tensor], coefficients: dict[str, float],
                     shape: tuple[int, int], block_centred: bool = False) -> torch.Tensor:
    """``sigmoid(bias + sum_k coefficient_k * feature_k)`` at ``shape`` (features resampled by
    :func:`lattice_to_pixels`; ``block_centred``: the backbone's, ``BackboneSpec.block_centred``),
    ``(B, 1, H, W)`` in [0, 1]. ``coefficients``: ``bias`` and any of :data:`CONFIDENCE_FEATURES`."""
    z = None
    for name, c in coefficients.items():
        if name == "bias" or not c:
            continue
        if name not in sims:
            raise KeyError(f"confidence feature {name!r} not computed (have {sorted(sims)})")
        f = lattice_to_pixels(sims[name], shape, block_centred)
        z = f * float(c) if z is None else z + f * float(c)
    if z is None:
        z = torch.zeros((next(iter(sims.values())).shape[0], 1) + tuple(shape))
    return torch.sigmoid(z + float(coefficients.get("bias", 0.0)))


def lightness_palette(target_L: torch.Tensor, reference_lab: torch.Tensor, bins: int = 64,
                      sigma: float = 1.5) -> torch.Tensor:
    """The reference's mean ab at each pixel's lightness, the lightness matched by quantiles.

    ``target_L``: ``(B, 1, H, W)`` normalised L; ``reference_lab``: ``(1 or B, 3, h, w)`` normalised
    Lab. ``bins`` lightness bins over the reference's lightness quantiles, smoothed over ``sigma``
    bins. Returns ``(B, 2, H, W)``.
    """
    B = target_L.shape[0]
    out = []
    for b in range(B):
        lab = reference_lab[min(b, reference_lab.shape[0] - 1)].float()
        Lr, abr = lab[0].flatten(), lab[1:].flatten(1)
        Lt = target_L[b, 0].float()
        # the target's lightness rank -> the reference lightness of the same rank
        # (equal lightness, equal rank: the mean rank of its ties, so a flat region gets one colour)
        flat = Lt.flatten()
        srt = torch.sort(flat).values
        first = torch.searchsorted(srt, flat, right=False).float()
        last = torch.searchsorted(srt, flat, right=True).float() - 1
        rank = (first + last) / 2 / max(1, flat.numel() - 1)
        Lr_sorted = torch.sort(Lr).values
        pos = rank * (Lr.numel() - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp_max(Lr.numel() - 1)
        Lm = Lr_sorted[lo] + (Lr_sorted[hi] - Lr_sorted[lo]) * (pos - lo)
        # mean ab of the reference per lightness bin (bins equally filled), Gaussian along the bins
        edges = Lr_sorted[torch.linspace(0, Lr.numel() - 1, bins + 1).round().long()]
        idx_r = torch.bucketize(Lr, edges[1:-1].contiguous())
        cnt = torch.zeros(bins).index_add_(0, idx_r, torch.ones_like(Lr))
        sums = torch.zeros(2, bins).index_add_(1, idx_r, abr)
        k = torch.arange(-3 * int(sigma + 1), 3 * int(sigma + 1) + 1, dtype=torch.float32)
        g = torch.exp(-k**2 / (2 * sigma**2))[None, None]
        pad = g.shape[-1] // 2
        cnt_s = F.conv1d(F.pad(cnt[None, None], (pad, pad), mode="replicate"), g)[0, 0]
        sums_s = F.conv1d(F.pad(sums[:, None], (pad, pad), mode="replicate"), g)[:, 0]
        mean = sums_s / cnt_s.clamp_min(1e-6)
        idx_t = torch.bucketize(Lm, edges[1:-1].contiguous())
        out.append(mean[:, idx_t].reshape(2, *Lt.shape))
    return torch.stack(out)


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window of ``(B, C, H, W)``, reflected at the border. Small windows
    (``r`` <= 4) by shifted sums, larger ones by running sums along each axis (O(1) per pixel; a
    pooling kernel of 33 x 33 costs 1089 additions per pixel). Both are far faster than torch's
    ``avg_pool2d`` on the CPU (``benchmarks/bench_library.py warp``)."""
    x = F.pad(x, (r, r, r, r), mode="reflect")
    k = 2 * r + 1
    H, W = x.shape[-2] - 2 * r, x.shape[-1] - 2 * r
    if r <= 4:
        rows = x[..., :, 0:W]
        for i in range(1, k):
            rows = rows + x[..., :, i:i + W]
        out = rows[..., 0:H, :]
        for i in range(1, k):
            out = out + rows[..., i:i + H, :]
        return out / (k * k)
    c = F.pad(x.cumsum(-1), (1, 0))
    x = c[..., k:] - c[..., :-k]
    c = F.pad(x.cumsum(-2), (0, 0, 1, 0))
    return (c[..., k:, :] - c[..., :-k, :]) / (k * k)


def spread(guide: torch.Tensor, ab: torch.Tensor, confidence: torch.Tensor, radius: int,
           eps: float = 1e-3) -> torch.Tensor:
    """Confidence-weighted guided filtering of ``ab`` ``(B, C, H, W)`` (colour: ``C = 2``; any number of
    channels, :func:`palette_vote` spreads one per palette colour) with the lightness ``guide``
    ``(B, 1, H, W)``: the guided filter of ``c * ab`` divided by that of ``c`` (normalised
    convolution), so confident colour fills its region and stops at lightness edges. ``radius`` 0:
    ``ab`` unchanged."""
    if radius <= 0:
        return ab
    r = int(min(radius, (min(ab.shape[-2:]) - 1) // 2))
    if r < 1:
        return ab
    C = ab.shape[1]
    I = guide.float()
    c = confidence.float().clamp(1e-4, 1.0)
    p = torch.cat([c * ab.float(), c], 1)
    means = box_mean(torch.cat([I, I * I, p, I * p], 1), r)  # every window mean in one pass
    mI, mII, mp, mIp = means[:, :1], means[:, 1:2], means[:, 2:C + 3], means[:, C + 3:]
    a = (mIp - mI * mp) / (mII - mI * mI + eps)
    b = mp - a * mI
    mab = box_mean(torch.cat([a, b], 1), r)
    q = mab[:, :C + 1] * I + mab[:, C + 1:]
    return q[:, :C] / q[:, C:].clamp_min(1e-4)


def palette_modes(reference_lab: torch.Tensor, modes: int, step: int = 5) -> torch.Tensor:
    """The reference's ``modes`` main colours, ``(modes, 2)`` normalised ab: k-means (scipy's
    ``kmeans2``, k-means++ seeding, a fixed seed: the same reference gives the same palette) over every
    ``step``-th pixel of ``reference_lab`` ``(3, h, w)``. A reference with at most ``modes`` distinct
    colours there (a flat or tiny one) gives those colours, repeated: a repeated colour takes no votes
    from its copy's pixels."""
    import numpy as np
    from scipy.cluster.vq import kmeans2

    ab = reference_lab[1:].reshape(2, -1)[:, ::step].T.double().cpu().numpy()
    distinct = np.unique(ab, axis=0)
    if len(distinct) <= int(modes):
        centres = distinct[np.arange(int(modes)) % len(distinct)]
    else:
        with np.errstate(invalid="ignore", divide="ignore"):  # (k-means++ on many equal pixels)
            centres, _ = kmeans2(ab, int(modes), minit="++", seed=0)
    return torch.from_numpy(np.ascontiguousarray(centres)).to(reference_lab.device, torch.float32)


def palette_vote(target_L: torch.Tensor, ab: torch.Tensor, spread_ab: torch.Tensor, reference_lab: torch.Tensor,
                 weights: torch.Tensor, modes: int, radius: int, share: float, smooth: int,
                 centres: list[torch.Tensor] | None = None, blur: float = 0.0) -> torch.Tensor:
    """Colour chosen per region among the reference's main colours, ``(B, 2, H, W)``.

    Each pixel of ``ab`` (the network's colour) votes, with its ``weights``, for the nearest of the
    reference's :func:`palette_modes`; the votes are spread edge-aware (:func:`spread`, ``radius``, the
    target's lightness as the guide), so a region of the target counts the votes of its own pixels.
    Where one colour holds more than ``share`` of them the region takes that colour of the reference;
    elsewhere (no clear winner) it keeps ``spread_ab``, the spread mean (:func:`coherent_ab`). A final
    spread of radius ``smooth`` (every pixel weighing the same) softens the steps between regions, and a
    Gaussian of ``blur`` pixels (kornia's; 0: none) the chroma edges themselves.
    Averaging votes, not colours, keeps a region's colour one the reference has, instead of the
    duller mean of the colours its pixels matched. ``centres``: the palettes already computed, one per
    image of ``reference_lab`` (a cache: the same reference, the same palette)."""
    if centres is None:
        centres = [palette_modes(r.float(), modes) for r in reference_lab]
    out = []
    for b in range(ab.shape[0]):
        centres_b = centres[min(b, len(centres) - 1)]
        pix = ab[b].float().flatten(1).T  # (HW, 2)
        near = torch.cdist(pix, centres_b).argmin(1)
        onehot = F.one_hot(near, centres_b.shape[0]).T.reshape(1, centres_b.shape[0], *ab.shape[-2:]).float()
        votes = spread(target_L[b:b + 1], onehot, weights[b:b + 1], radius)
        top, best = votes.max(1, keepdim=True)
        chosen = centres_b[best[0, 0]].permute(2, 0, 1)[None]
        out.append(torch.where(top > share, chosen, spread_ab[b:b + 1].float()))
    out = spread(target_L, torch.cat(out), torch.ones_like(ab[:, :1], dtype=torch.float32), smooth)
    # (the kernel at most the image's side: reflect padding needs a pad below it)
    k = min(2 * int(3 * blur) + 1, 2 * ((min(out.shape[-2:]) - 1) // 2) + 1) if blur > 0 else 0
    if k >= 3:
        from kornia.filters import gaussian_blur2d

        out = gaussian_blur2d(out, (k, k), (float(blur), float(blur)), border_type="reflect")
    return out.clamp(-1, 1)


def image_gate(confidence: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """How much of the coherence step an image gets, ``(B, 1, 1, 1)`` in [0, 1], from its mean match
    confidence: 1 at ``lo`` or below (a reference that is only related), 0 from ``hi`` (the same scene)."""
    m = confidence.float().mean((1, 2, 3), keepdim=True)
    return ((hi - m) / (hi - lo)).clamp(0.0, 1.0)


def coherent_ab(target_L: torch.Tensor, ab: torch.Tensor, reference_lab: torch.Tensor,
                confidence: torch.Tensor, radius: int, eps: float = 1e-3, fallback: float = 1.0,
                palette_chroma: float = 1.0, keep_chroma: bool = False, palette: dict | None = None) -> torch.Tensor:
    """``spread(c' ab + (1 - c') palette_chroma lightness_palette)`` with ``c' = 1 - fallback (1 - c)``,
    each spread pixel weighted by ``c'``; ``(B, 2, H, W)``. ``keep_chroma``: the spread colour's chroma
    scaled (one factor per image, 1 to 1.5) back to the mean chroma it had before spreading (averaging
    colour vectors over a region mutes them). ``palette``: ``{"modes", "radius", "share", "smooth"}``
    of :func:`palette_vote` (regions with a clear winner among the reference's main colours take it),
    and optionally ``"blur"`` and ``"centres"`` (its cache); None or ``modes`` 0: off."""
    c = 1.0 - float(fallback) * (1.0 - confidence.float())
    mixed = ab.float()
    if fallback:
        mixed = c * mixed + (1 - c) * lightness_palette(target_L, reference_lab) * float(palette_chroma)
    weights = c.clamp_min(0.05)
    out = spread(target_L, mixed, weights, radius, eps)
    if keep_chroma and radius > 0:
        before = mixed.norm(dim=1, keepdim=True).mean((1, 2, 3), keepdim=True)
        after = out.norm(dim=1, keepdim=True).mean((1, 2, 3), keepdim=True)
        out = out * (before / after.clamp_min(1e-6)).clamp(1.0, 1.5)
    if palette and palette.get("modes"):
        out = palette_vote(target_L, mixed, out, reference_lab, weights, palette["modes"], palette["radius"],
                           palette["share"], palette["smooth"], palette.get("centres"), palette.get("blur", 0.0))
    return out.clamp(-1, 1)


def odd_colours(target_L: torch.Tensor, ab: torch.Tensor, confidence: torch.Tensor, radius: int,
                outlier: float) -> torch.Tensor:
    """``ab`` with each colour that is odd in its region moved to the region's: the region's colour is
    :func:`spread` (``radius``, weights the match ``confidence``), and a pixel farther than ``outlier`` ab
    units from it moves towards it, fully from ``2 outlier``; the others keep their own colour. For a
    reference of the same scene, whose per-pixel matches are mostly right: an odd one is a blotch."""
    region = spread(target_L.float(), ab.float(), confidence.float(), radius)
    t = float(outlier) / 110.0  # (ab units -> normalised ab)
    move = (((region - ab.float()).norm(dim=1, keepdim=True) - t) / t).clamp(0.0, 1.0)
    return ab.float() + move * (region - ab.float())


def fade_dark(target_L: torch.Tensor, ab: torch.Tensor, confidence: torch.Tensor, lightness: float) -> torch.Tensor:
    """Chroma faded in the dark where the match is unsure: ``ab (1 - (1 - c) (1 - min(1, L* / lightness)))``
    with ``L*`` the target's lightness (0-100; ``target_L`` normalised, ``L/50 - 1``) and ``c`` the match
    confidence. A pixel at ``L* = 0`` keeps ``c`` of its chroma, one at ``lightness`` or above all of
    it. ``lightness`` 0: ``ab`` unchanged."""
    if lightness <= 0:  # (off: the weight not computed)
        return ab
    return fade_black(target_L, ab, lightness, 1.0 - confidence.float().clamp(0.0, 1.0))


def fade_black(target_L: torch.Tensor, ab: torch.Tensor, lightness: float,
               weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Chroma faded to none at black whatever the pixel's confidence: ``ab (1 - w (1 - min(1, L* / lightness)))``
    with ``L*`` the target's lightness (0-100; ``target_L`` normalised, ``L/50 - 1``) and ``w`` the
    ``weight`` (an image's :func:`image_gate`: 0 leaves a reference of the same scene its dark colours; per
    pixel, ``1 - c``: :func:`fade_dark`). ``lightness`` 0: ``ab`` unchanged."""
    if lightness <= 0:
        return ab
    dark = 1.0 - ((target_L.float() + 1.0) * 50.0 / float(lightness)).clamp(0.0, 1.0)
    return ab * (1.0 - weight * dark)
