"""The exemplar colourisation network of paper A (Sec. 3.1-3.2).

Four parts, named as in the paper:

1. **Backbone** (frozen, pretrained): taps ``F^1..F^5`` and the bottleneck ``F^B`` of
   the grey target (tripled L) and the colour reference.
2. **Projections**: 1x1 convolution + ReLU of every tap (and ``F_T^B``) to ``h``
   channels: ``\\hat F_T^l``, ``\\hat F_R^l``, ``\\hat F_T^B``.
3. **Attention modules** at the last N levels ``l = L-N+1 .. L``: cross-attention of
   ``\\hat F_T^l`` (queries) over ``\\hat F_R^l`` (keys/values), optionally stacked
   twice (separate weights), giving the fused ``\\hat F_TR^l``.
4. **Pyramid decoder and prediction heads**: starting with ``O^6 = \\hat F_T^B``, each
   decoder ``l = 5, 4, 3, 2`` (1) adds ``\\hat F_TR^l`` (the projected target where a
   level has no attention), (2) 3x3 conv + ReLU, (3) upsamples x2, (4) concatenates
   the projected target skip ``\\hat F_T^{l-1}``, (5) 3x3 conv + ReLU back to h
   channels. A head (e-dim 3x3 conv + ReLU, 1x1 conv + tanh) maps each decoder
   output to ab: ``P4`` (coarsest) .. ``P1`` (finest, at the stride of ``F^1``).

``h`` may be one number (the paper) or one per level (the CPU default narrows
the fine levels, where most of the decoder's arithmetic is).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..color import grey_rgb
from .attention import CrossAttentionModule
from .backbones import Backbone, build_backbone
from .base import require_reference
from .configs import EXEMPLAR_CONFIGS, LEVELS, ExemplarConfig
from .maps import AttentionMaps
from .coherence import (CONFIDENCE_LEVELS, DEFAULT_CONFIDENCE, best_similarities, box_mean, centre_normalise, image_gate,
                        inner_positions, match_confidence)
from .union import union_reference_side
from .warp import coarse_to_fine_best, coarse_to_fine_warp, feature_warp, reference_grey, reference_side

__all__ = ["ExemplarConfig", "ExemplarNet", "EXEMPLAR_CONFIGS", "PyramidDecoder", "migrate_state_dict"]

def _conv_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))


def _resample(x: torch.Tensor, shape) -> torch.Tensor:
    """Bilinear up, area-average down, to ``shape``."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    if shape[0] < x.shape[-2]:
        return F.adaptive_avg_pool2d(x, shape)
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


class PredictionHead(nn.Sequential):
    """e-dim 3x3 conv + ReLU, then 1x1 conv + tanh to the two ab channels."""

    def __init__(self, cin: int, e: int) -> None:
        super().__init__(_conv_relu(cin, e, 3), nn.Conv2d(e, 2, 1), nn.Tanh())


def guided_filter(guide: torch.Tensor, x: torch.Tensor, window: int, eps: float) -> torch.Tensor:
    """He, Sun & Tang's guided filter (2010) of ``x`` ``(B, C, H, W)`` by a one-channel ``guide``
    ``(B, 1, H, W)``: in each ``window`` x ``window`` box, ``x ~ a guide + b`` by least squares
    (``eps`` regularises ``a``), and the output averages the boxes' ``a`` and ``b``; borders reflect.
    The same as kornia's ``guided_blur`` (tested to 1e-5) in less than half its time on the CPU (all
    box means in two calls of :func:`~napari_colorize.models.coherence.box_mean`;
    ``benchmarks/bench_library.py warp``)."""
    r = window // 2

    def box(t: torch.Tensor) -> torch.Tensor:
        return box_mean(t, r)

    c = x.shape[1]
    m = box(torch.cat([guide, x, guide * x, guide * guide], 1))
    m_g, m_x, m_gx, m_gg = m[:, :1], m[:, 1:1 + c], m[:, 1 + c:1 + 2 * c], m[:, 1 + 2 * c:]
    a = (m_gx - m_g * m_x) / (m_gg - m_g * m_g + eps)
    coef = box(torch.cat([a, m_x - a * m_g], 1))
    return coef[:, :c] * guide + coef[:, c:]


class DecoderBlock(nn.Module):
    """One pyramid decoder step (Sec. 3.1, the five-fold operation)."""

    def __init__(self, h: int, h_skip: int, h_out: int) -> None:
        super().__init__()
        self.conv_in = _conv_relu(h, h, 3)  # (2)
        self.conv_out = _conv_relu(h + h_skip, h_out, 3)  # (5)

    def forward(self, prev: torch.Tensor, fused: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(prev + fused)  # (1) + (2)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)  # (3)
        return self.conv_out(torch.cat([x, skip], dim=1))  # (4) + (5)


class PyramidDecoder(nn.Module):
    """Paper A's pyramid decoder (Sec. 3.1) with its prediction heads P1-P4.

    From the projected bottleneck ``O^6``, decoder block ``l`` (``l`` = 5..2) takes the previous
    output, the fused features of level ``l`` (the attention's, or the projected target features
    where there is no attention) and the skip of level ``l - 1``; head ``P_{l-1}`` reads its output.
    ``gated`` (our correspondence prior): each head's prediction replaces the warped colour only as
    much as a learned per-pixel gate says, ``P = warp + g (head - warp)``; ``gain`` (ours too) then
    scales each prediction's chroma, ``P (1 + a)`` with ``a`` in [-0.5, 0.5], keeping its hue.
    """

    #: earlier checkpoints kept these parts at the network's top level (see ``migrate_state_dict``)
    OLD_PREFIXES = {"proj_b.": "decoder.proj_b.", "decoders.": "decoder.blocks.", "heads.": "decoder.heads.",
                    "gates.": "decoder.gates."}

    def __init__(self, hs: list[int], head_dims: list[int], bottleneck_channels: int, gated: bool,
                 gain: bool = False) -> None:
        super().__init__()
        self.proj_b = _conv_relu(bottleneck_channels, hs[-1], 1)
        # blocks l = 5..2: input width h_l, skip h_{l-1}, output h_{l-1}
        self.blocks = nn.ModuleDict({str(l): DecoderBlock(hs[l - 1], hs[l - 2], hs[l - 2]) for l in range(LEVELS, 1, -1)})
        self.heads = nn.ModuleList(PredictionHead(hs[s - 1], head_dims[s - 1]) for s in range(1, LEVELS))
        if gated:  # one gate per head; zero weights and a bias of -4: the warp, almost untouched, at the start
            self.gates = nn.ModuleList(nn.Conv2d(hs[s - 1], 1, 1) for s in range(1, LEVELS))
            for g in self.gates:
                nn.init.zeros_(g.weight)
                nn.init.constant_(g.bias, -4.0)
        self.gains = None
        if gain:  # a chroma gain per head, 1 + 0.5 tanh(.) of a zero-initialised 1x1 conv: 1 at the start
            self.gains = nn.ModuleList(nn.Conv2d(hs[s - 1], 1, 1) for s in range(1, LEVELS))
            for g in self.gains:
                nn.init.zeros_(g.weight)
                nn.init.zeros_(g.bias)

    def forward(self, bottleneck: torch.Tensor, fused: list[torch.Tensor], skips: list[torch.Tensor],
                warp: torch.Tensor | None = None, raw_maps: dict | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """``fused``: the features of levels 1..5 (the attention's output where there is one);
        ``skips``: the projected target features of levels 1..5. Returns ``([P1, P2, P3, P4], gates,
        heads)``, each finest first: with the prior, ``heads`` are the heads' own predictions before
        the gate (for a training loss); the gates also go into ``raw_maps`` when it is given."""
        out = self.proj_b(bottleneck)  # O^6
        preds, gates, heads = [], [], []
        for l in range(LEVELS, 1, -1):
            out = self.blocks[str(l)](out, fused[l - 1], skips[l - 2])
            p = self.heads[l - 2](out)  # block l feeds head P_{l-1}
            if warp is not None:
                heads.append(p)
                w = _resample(warp, p.shape[-2:])
                g = torch.sigmoid(self.gates[l - 2](out))
                p = w + g * (p - w)
                gates.append(g)
                if raw_maps is not None:
                    raw_maps[("gate", l - 1)] = g
            if self.gains is not None:  # scales the chroma, keeps the hue
                p = p * (1 + 0.5 * torch.tanh(self.gains[l - 2](out)))
            preds.append(p)
        return preds[::-1], gates[::-1], heads[::-1]


def migrate_state_dict(sd: dict) -> dict:
    """An exemplar network's weights saved before the decoder was its own module
    (:class:`PyramidDecoder`), under today's names; other state dicts are returned as they are."""
    if not any(k.startswith(tuple(PyramidDecoder.OLD_PREFIXES)) for k in sd):
        return sd
    out = {}
    for k, v in sd.items():
        old = next((o for o in PyramidDecoder.OLD_PREFIXES if k.startswith(o)), None)
        out[PyramidDecoder.OLD_PREFIXES[old] + k[len(old):] if old else k] = v
    return out


class ExemplarNet(nn.Module):
    """Paper A's end-to-end exemplar colourisation network.

    ``forward(target_L, reference_rgb)`` with ``target_L`` the normalised L
    (``L/50 - 1``, shape ``(B, 1, H, W)``) and ``reference_rgb`` in [0, 1]
    (``(B, 3, H, W)``, same H, W) returns ``[P1, P2, P3, P4]``: normalised ab
    predictions, finest first. ``encode_reference`` lets a caller compute the
    reference side once for many targets (stacks).
    """

    #: the name its checkpoints carry (``"architecture"`` in their metadata) and its config's class
    architecture = "exemplar"
    config_class = ExemplarConfig

    def __init__(self, config: ExemplarConfig | None = None, pretrained_backbone: bool = True,
                 backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ExemplarConfig()
        cfg.validate()  # (types and ranges, before anything is built)
        self.backbone = backbone if backbone is not None else build_backbone(cfg.backbone, pretrained_backbone)
        spec = self.backbone.spec
        self.strides = spec.strides
        hs = [cfg.hidden_at(l) for l in range(1, LEVELS + 1)]
        self.attention_at = list(range(LEVELS - cfg.attention_levels + 1, LEVELS + 1))  # 1-based levels
        self.proj_t = nn.ModuleList(_conv_relu(c, h, 1) for c, h in zip(spec.channels, hs))
        self.proj_r = nn.ModuleDict({str(l): _conv_relu(spec.channels[l - 1], hs[l - 1], 1) for l in self.attention_at})
        self.attention = nn.ModuleDict()
        for l in self.attention_at:
            max_rel = max(2, -(-cfg.train_size // spec.strides[l - 1]))
            self.attention[str(l)] = nn.ModuleList(
                CrossAttentionModule(hs[l - 1], cfg.heads, max_rel, cfg.attention, cfg.span)
                for _ in range(cfg.modules_per_level)
            )
        self.prior = cfg.prior == "warp"
        self.decoder = PyramidDecoder(hs, [cfg.head_dim_at(s) for s in range(1, LEVELS)], spec.bottleneck_channels,
                                      gated=self.prior, gain=cfg.prior_gain)
        if self.prior:
            lp = cfg.prior_level
            self.log_tau = nn.Parameter(torch.tensor(math.log(cfg.prior_temperature)))
            # the warp (ab) and its match quality enter the decoder at the prior's level; zero
            # initialised, so that adding the prior leaves a (warm-started) network unchanged
            self.prior_in = nn.Conv2d(3, hs[lp - 1], 1)
            nn.init.zeros_(self.prior_in.weight)
            nn.init.zeros_(self.prior_in.bias)
            if cfg.prior_adapt:  # learned map of the matched features, identity at the start
                c = spec.channels[lp - 1]
                self.prior_match = nn.Conv2d(c, c, 1, bias=False)
                with torch.no_grad():
                    self.prior_match.weight.copy_(torch.eye(c)[:, :, None, None])

    # ------------------------------------------------------------------ parts
    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this (the coarsest stride)."""
        return max(self.strides)

    def attention_bytes(self, wshape: tuple[int, int], references: int = 1) -> int:
        """Estimated peak bytes of the attention for one image at working shape ``wshape`` with
        ``references`` references.

        Standard attention holds ``heads x K (h w)^2`` logits per level (h, w: the feature grid at
        the level's stride; K references), axial attention ``heads x h w (K w + h)``; the peak is about
        4 such float32 tensors (logits, their sums, softmax; measured on the CPU).
        """
        worst, K = 0, max(1, int(references))
        for level in self.attention_at:
            s = int(self.strides[level - 1])
            h, w = -(-wshape[0] // s), -(-wshape[1] // s)
            worst = max(worst, K * (h * w) ** 2 if self.config.attention == "standard" else h * w * (K * w + h))
        return 4 * 4 * int(self.config.heads) * worst

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen backbone (which comes from its own pretrained file)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    @property
    def _grey_keys(self) -> bool:
        """The prior's keys come from the reference's lightness (``prior_reference="grey"``)."""
        return self.prior and self.config.prior_reference == "grey"

    def _reference_side(self, taps: list[torch.Tensor], reference_rgb: torch.Tensor,
                        grey_taps: list[torch.Tensor] | None = None) -> dict:
        """Projected reference features ``\\hat F_R^l`` at the attention levels, for the prior the
        centred reference features (of the grey view's taps ``grey_taps`` with ``prior_reference="grey"``)
        and the reference's ab on their lattice, and with ``grey_taps`` the grey view's centred
        features at the match confidence's levels (:mod:`napari_colorize.models.coherence`)."""
        out = {l: self.proj_r[str(l)](taps[l - 1]) for l in self.attention_at}
        if self.prior:
            lp = self.config.prior_level
            tap = grey_taps[lp - 1] if self._grey_keys else taps[lp - 1]
            out["prior"] = reference_side(self._match_features(tap), reference_rgb)
        if grey_taps is not None:
            levels = set(CONFIDENCE_LEVELS) | ({self.config.prior_cells_level} if self.config.prior_cells else set())
            out["match"] = {lv: centre_normalise(grey_taps[lv - 1]) for lv in sorted(levels)}
            if self.config.confidence_ring:  # the keys the confidence searches: without the border's cells
                out["match_inner"] = {lv: out["match"][lv][:, inner_positions(tuple(grey_taps[lv - 1].shape[-2:]),
                                                                              self.config.confidence_ring)]
                                      for lv in CONFIDENCE_LEVELS}
        return out

    def encode_reference(self, reference_rgb: torch.Tensor, match: bool = False) -> dict:
        """The reference side, computed once for many targets (stacks); ``match``: also the keys of the
        match confidence (:meth:`match_similarities`)."""
        taps, _ = self.backbone(reference_rgb)
        grey_taps = self.backbone(reference_grey(reference_rgb))[0] if (self._grey_keys or match) else None
        return self._reference_side(taps, reference_rgb, grey_taps)

    def encode_references(self, references_rgb: torch.Tensor, match: bool = False) -> dict:
        """The reference side of ``K`` references ``(K, 3, h, w)`` as one (batch 1): each encoded as by
        :meth:`encode_reference`, then their union (:func:`~napari_colorize.models.union.union_reference_side`):
        every target position may take colour from any of them."""
        return union_reference_side(self.encode_reference(references_rgb, match))

    def match_similarities(self, target_taps: list[torch.Tensor], reference_features: dict) -> dict[str, torch.Tensor]:
        """How well each target position finds its match in the reference, per backbone level:
        :func:`~napari_colorize.models.coherence.best_similarities` of the grey target's taps against the
        reference's grey view (``reference_features["match"]``, from ``encode_reference(match=True)``);
        with ``confidence_cells``, the levels finer than ``prior_cells_level`` search only the reference
        cells the warp's coarse-to-fine search gives each target cell
        (:func:`~napari_colorize.models.warp.coarse_to_fine_best`)."""
        keys = reference_features.get("match_inner") or reference_features["match"]  # (confidence_ring)
        levels = tuple(lv for lv in CONFIDENCE_LEVELS if lv in keys)
        cfg, coarse = self.config, self.config.prior_cells_level
        if not cfg.confidence_cells or "match_inner" in reference_features or coarse not in keys:
            return best_similarities(target_taps, keys, levels)
        out = best_similarities(target_taps, keys, tuple(lv for lv in levels if lv >= coarse))
        qc = centre_normalise(target_taps[coarse - 1])
        for lv in (lv for lv in levels if lv < coarse):
            t = target_taps[lv - 1]
            out[f"best{lv}"] = coarse_to_fine_best(centre_normalise(t), keys[lv], tuple(t.shape[-2:]), qc, keys[coarse],
                                                   tuple(target_taps[coarse - 1].shape[-2:]), cfg.confidence_cells)
        return {f"best{lv}": out[f"best{lv}"] for lv in levels}

    def _match_features(self, tap: torch.Tensor) -> torch.Tensor:
        """The backbone features the prior matches (through ``prior_match`` with ``prior_adapt``)."""
        match = getattr(self, "prior_match", None)
        return tap if match is None else match(tap)

    def cells_share(self, sims: dict[str, torch.Tensor] | None, batch: int) -> torch.Tensor | float:
        """How much of each image's warp is matched coarse to fine (``prior_cells``), the rest dense: 1
        without ``prior_cells_gate``; with it, 0 for an image whose mean match confidence (from ``sims``,
        :meth:`match_similarities`) is at most ``lo`` (a reference that is only related: the dense warp's
        average over every position hedges), 1 from ``hi`` on (the same scene: its coarse matches are
        right), linearly between, ``(B, 1, 1, 1)``."""
        cfg = self.config
        if not cfg.prior_cells:
            return 0.0
        if cfg.prior_cells_gate is None:
            return 1.0
        first = sims[next(iter(sims))]
        conf = match_confidence(sims, cfg.confidence or DEFAULT_CONFIDENCE, tuple(first.shape[-2:]),
                                self.backbone.spec.block_centred)
        return 1.0 - image_gate(conf, *cfg.prior_cells_gate).expand(batch, -1, -1, -1)

    def warp(self, target_taps: list[torch.Tensor], reference_features: dict,
             share: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior on the target's lattice at ``prior_level``: ``(ab, confidence)``; with
        ``prior_cells``, ``share`` of it matched coarse to fine
        (:func:`~napari_colorize.models.warp.coarse_to_fine_warp`, :meth:`cells_share`), the rest dense
        (or in ``prior_cells_related`` cells)."""
        keys, ab_ref = reference_features["prior"]
        cfg = self.config
        fine = self._match_features(target_taps[cfg.prior_level - 1])
        tau = self.log_tau.exp()
        if not cfg.prior_cells:
            return feature_warp(fine, keys, ab_ref, tau)
        shares = share if isinstance(share, torch.Tensor) else torch.tensor(float(share))
        coarse = target_taps[cfg.prior_cells_level - 1]

        def in_cells(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            return coarse_to_fine_warp(centre_normalise(fine), keys, ab_ref.float().flatten(2).transpose(1, 2),
                                       tuple(fine.shape[-2:]), centre_normalise(coarse),
                                       reference_features["match"][cfg.prior_cells_level], tuple(coarse.shape[-2:]),
                                       n, tau)

        cells = dense = None
        if bool((shares > 0).any()):
            cells = in_cells(cfg.prior_cells)
        if bool((shares < 1).any()):  # (a related reference: the dense warp, or a wider search in cells)
            dense = in_cells(cfg.prior_cells_related) if cfg.prior_cells_related else feature_warp(fine, keys, ab_ref, tau)
        if cells is None or dense is None:
            return dense if cells is None else cells
        return tuple(d + shares.to(d.dtype) * (c - d) for d, c in zip(dense, cells))

    def forward(self, target_L: torch.Tensor, reference_rgb: torch.Tensor | None = None,
                reference_features: dict[int, torch.Tensor] | None = None, return_attention: bool = False,
                aux: dict | None = None, return_gates: bool = False):
        """Colourise. Returns ``[P1, P2, P3, P4]`` (and a dict of attention maps when asked). ``aux``: a
        dict that receives ``"match"``, the match similarities (:meth:`match_similarities`), when the
        reference side has its keys (always with ``reference_rgb`` and ``aux`` given), and ``"reference"``,
        the reference side used (what :meth:`encode_reference` gives, with the match keys when ``aux`` is
        given), so that a caller can keep it for the next target. ``return_gates`` (for the training
        losses on them, training/losses.py): the decoder's gates and its heads' own predictions before the
        gates (each finest first; empty lists without the prior) are returned too, after the rest:
        ``(preds, gates, heads)``, or ``(preds, maps, gates, heads)`` with ``return_attention``."""
        match = aux is not None
        if reference_features is None:
            require_reference(type(self).__name__, reference_rgb, "reference_rgb=... or reference_features=...")
            if reference_rgb.shape[-2:] != target_L.shape[-2:]:
                raise ValueError("target and reference must have the same working size")
            grey_view = self._grey_keys or match
            if reference_rgb.shape[0] == target_L.shape[0]:  # one backbone pass for all
                views = [grey_rgb(target_L), reference_rgb] + ([reference_grey(reference_rgb)] if grey_view else [])
                taps_all, bott_all = self.backbone(torch.cat(views))
                B = target_L.shape[0]
                taps = [t[:B] for t in taps_all]
                bott = bott_all[:B]
                grey_taps = [t[2 * B:] for t in taps_all] if grey_view else None
                reference_features = self._reference_side([t[B:2 * B] for t in taps_all], reference_rgb, grey_taps)
            else:
                reference_features = self.encode_reference(reference_rgb, match)
                taps, bott = self.backbone(grey_rgb(target_L))
        else:
            taps, bott = self.backbone(grey_rgb(target_L))
        gated = self.prior and self.config.prior_cells and self.config.prior_cells_gate is not None
        sims = None
        if (match or gated) and "match" in reference_features:
            sims = self.match_similarities(taps, reference_features)
        if match:
            aux["reference"] = reference_features
            if sims is not None:
                aux["match"] = sims
        ft = [p(t) for p, t in zip(self.proj_t, taps)]
        warp = None
        if self.prior:
            lp = self.config.prior_level
            warp, conf = self.warp(taps, reference_features, self.cells_share(sims, target_L.shape[0]))
            ft[lp - 1] = ft[lp - 1] + self.prior_in(torch.cat([warp, conf], 1))
        fused, raw_maps = {}, {}
        for l in self.attention_at:
            x, r = ft[l - 1], reference_features[l]
            if r.shape[0] != x.shape[0]:
                r = r.expand(x.shape[0], -1, -1, -1)
            for m, module in enumerate(self.attention[str(l)]):
                x, maps = module(x, r, return_attention)
                if return_attention:
                    raw_maps[(l, m)] = maps
            fused[l] = x
        levels = [fused.get(l, ft[l - 1]) for l in range(1, LEVELS + 1)]
        preds, gates, heads = self.decoder(bott, levels, ft, warp, raw_maps if return_attention else None)
        if warp is not None and return_attention:
            raw_maps[("warp", 0)] = warp
        out = (preds, raw_maps) if return_attention else (preds,)
        if return_gates:
            out += (gates, heads)
        return out if len(out) > 1 else preds

    def refine(self, target_L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The network's colour at ``target_L``'s size: ``ab`` (P1; bilinearly resampled to that size when a
        stride-2 backbone gives it smaller) through the config's guided filter (``refine``; off when 0),
        smoothed within the target's lightness edges and kept across them."""
        if ab.shape[-2:] != target_L.shape[-2:]:
            ab = F.interpolate(ab, size=target_L.shape[-2:], mode="bilinear", align_corners=False)
        if not self.config.refine:
            return ab
        # (in float32: the local variances of a half-precision output would lose the regulariser)
        return guided_filter(target_L.float(), ab.float(), self.config.refine, self.config.refine_eps)

    def attention_maps(self, raw_maps, index: int = 0) -> dict[str, AttentionMaps]:
        """Name raw maps ``level{l}.module{m}`` and convert them for display."""
        out = {}
        for (l, m), raw in raw_maps.items():
            if l in ("gate", "warp"):
                continue
            module = self.attention[str(l)][m]
            out[f"level{l}.module{m + 1}"] = module.to_maps(raw, self.strides[l - 1], index, self.backbone.spec.block_centred)
        return out
