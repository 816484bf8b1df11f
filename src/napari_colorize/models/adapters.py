"""The concrete colorizers that adapt the learned networks and the classic baselines to the Colorizer interface.

:class:`NetworkColorizer` wraps a torch network with a frozen backbone; :class:`ExemplarNetColorizer` and
:class:`HistogramNetColorizer` add each architecture's guide preparation and output stage;
:class:`BaselineColorizer` wraps a classic numpy method and :class:`HintsOnlyColorizer` colours from
colour points alone. The interface itself (:class:`~napari_colorize.models.base.Colorizer`,
:class:`~napari_colorize.models.base.Prediction`) is in :mod:`napari_colorize.models.base`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..color import denormalize_lab, histogram_from_rgb, normalize_lab, rgb_to_lab
from .base import Colorizer, Prediction, require_reference
from .checks import is_model_name
from .coherence import (DEFAULT_CONFIDENCE, coherent_ab, fade_black, fade_dark, image_gate, match_confidence,
                        odd_colours, palette_modes, spread)
from .lazy import LazyDict
from .maps import BinAttention
from .union import side_by_side

__all__ = [
    "NetworkColorizer",
    "ExemplarNetColorizer",
    "HistogramNetColorizer",
    "BaselineColorizer",
    "HintsOnlyColorizer",
]


class NetworkColorizer(Colorizer):
    """A torch network with a frozen backbone."""

    default_size = 224
    min_size = 32

    def __init__(self, name, network: torch.nn.Module, config: dict | None = None, device="cpu") -> None:
        super().__init__(name, config, device)
        self.network = network.to(self.device).eval()
        self.multiple = int(network.multiple)
        self.min_size = self.multiple
        self.default_size = int(self.config.get("working_size", self.default_size))

    def attention_memory(self, wshape: tuple[int, int], references: int = 1) -> int:
        size = getattr(self.network, "attention_bytes", None)
        return int(size(wshape, references)) if size is not None else 0


class ExemplarNetColorizer(NetworkColorizer):
    """An exemplar network with its output stage: the config's guided filter (``refine``), the match
    confidence and, where configured, the fallback and region coherence of
    :mod:`napari_colorize.models.coherence`."""

    kind = "exemplar"
    architecture = "exemplar"  # (the networks it wraps: ExemplarNet.architecture)
    gives_confidence = True
    #: the histogram colouriser whose colour the config's ``histogram_mix`` mixes in (given by
    #: :func:`~napari_colorize.models.registry.attach_companion`; None: no mixing possible)
    companion: Colorizer | None = None

    def prepare(self, reference=None, histogram=None):
        require_reference(self.name, reference)
        rgb = reference.to(self.device)
        return {"rgb": rgb, "features": None, "lab": side_by_side(normalize_lab(rgb_to_lab(rgb.float())))}

    def precompute(self, state):
        state = self.with_features(state)
        if self.network.config.histogram_mix and self.companion is not None:
            # (the histogram network's features too, so that a cluster's blocks do not each compute them)
            state = self.with_companion(state)
        return state

    def with_features(self, state):
        """The state with the reference's features encoded (once; for many slices or references)."""
        if state["features"] is None:
            with torch.inference_mode():
                state = {**state, "features": self.network.encode_references(state["rgb"], match=True)}
        return state

    @torch.inference_mode()
    def predict(self, L, state, return_attention=False):
        net = self.network
        L = L.to(self.device)
        aux: dict = {}
        if state["features"] is None and L.shape[0] == 1 and state["rgb"].shape[0] == 1 \
                and state["rgb"].shape[-2:] == L.shape[-2:]:
            out = net(L, reference_rgb=state["rgb"], return_attention=return_attention, aux=aux)
            done = {**state, "features": aux["reference"]}  # (encoded with this target: for the next one)
        else:  # many slices: reference features once
            done = self.with_features(state)
            out = net(L, reference_features=done["features"], return_attention=return_attention, aux=aux)
        preds, raw = (out if return_attention else (out, None))
        ab = net.refine(L, preds[0])  # P1 at the working size, through the config's guided filter (if any)
        conf = None
        if "match" in aux:
            cfg = net.config
            conf = match_confidence(aux["match"], cfg.confidence or DEFAULT_CONFIDENCE, tuple(L.shape[-2:]),
                                    net.backbone.spec.block_centred)
            w = 1.0 if cfg.coherence_gate is None else image_gate(conf, *cfg.coherence_gate)
            # (a gate of 0 everywhere - a reference of the same scene: the coherence and the mix are not computed)
            shut = isinstance(w, torch.Tensor) and bool((w == 0).all())
            if (cfg.fallback or cfg.coherence) and not shut:
                palette = {"modes": cfg.palette_modes, "radius": cfg.palette_radius, "share": cfg.palette_share,
                           "smooth": cfg.palette_smooth, "blur": cfg.palette_blur, "centres": None}
                if cfg.palette_modes:  # (the reference's palette: once per reference and number of colours)
                    key = ("palette", cfg.palette_modes)
                    if key not in done:
                        done = {**done, key: [palette_modes(r.float(), cfg.palette_modes) for r in state["lab"]]}
                    palette["centres"] = done[key]
                safe = coherent_ab(L, ab, state["lab"], conf, cfg.coherence, fallback=cfg.fallback,
                                   palette_chroma=cfg.palette_chroma, keep_chroma=cfg.keep_chroma, palette=palette)
                ab = ab + w * (safe - ab)
            if cfg.histogram_mix and not shut:
                ab_hist, done = self.companion_ab(L, done)
                ab = ab + (w * float(cfg.histogram_mix)) * (ab_hist - ab)
            if cfg.scene_coherence and isinstance(w, torch.Tensor) and bool((w < 1).any()):
                # (a reference of the same scene: each pixel keeps its own match unless it is odd in its region)
                ab = ab + (1.0 - w) * (odd_colours(L, ab, conf, cfg.scene_coherence, cfg.scene_outlier) - ab)
            ab = fade_black(L, fade_dark(L, ab, conf, cfg.dark_chroma), cfg.black_chroma, w)
        maps = LazyDict(lambda: net.attention_maps(raw)) if raw else {}  # converted for display when read
        return Prediction(ab=ab.float(), scales=[p.float() for p in preds], attention=maps,
                          confidence=None if conf is None else conf.float(), state=None if done is state else done)

    def with_companion(self, state: dict) -> dict:
        """The state with the histogram network's guide for the reference (its colour histogram and their
        features), computed once and kept under ``"companion"``."""
        if self.companion is None:
            raise RuntimeError(f"{self.name!r}: its config mixes in the histogram network (histogram_mix) but none "
                               "is attached; load the model with load_model(), or call "
                               "napari_colorize.models.registry.attach_companion(model)")
        named = getattr(self.companion, "source", None)  # (a registered network's name; a file's path: given so)
        wanted = self.network.config.histogram_model
        if is_model_name(named) and named != wanted:
            raise RuntimeError(f"{self.name!r}: its config mixes in {wanted!r} (histogram_model) but {named!r} is "
                               "attached; call napari_colorize.models.registry.attach_companion(model)")
        if "companion" not in state:
            state = {**state, "companion": self.companion.prepare(reference=state["rgb"])}
        return state

    def companion_ab(self, L: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """The histogram network's ab for target lightness ``L`` given the reference's colour histogram
        (:meth:`with_companion`: the returned state keeps it), at ``L``'s size. The network runs at the
        config's ``histogram_scale`` of it, each side rounded to the nearest multiple of its coarsest
        stride (halves up; at least one stride)."""
        state = self.with_companion(state)
        size = L.shape[-2:]
        m = int(getattr(self.companion, "multiple", 1))
        scale = float(self.network.config.histogram_scale)
        fit = tuple(max(m, int(s * scale / m + 0.5) * m) for s in size)
        Lc = L if fit == tuple(size) else torch.nn.functional.interpolate(L.float(), fit, mode="bilinear",
                                                                           align_corners=False)
        ab = self.companion.predict(Lc, state["companion"]).ab.to(L.device, torch.float32)
        if ab.shape[-2:] != size:
            ab = torch.nn.functional.interpolate(ab, size, mode="bilinear", align_corners=False)
        return ab, state


class HistogramNetColorizer(NetworkColorizer):
    kind = "histogram"
    architecture = "histogram"  # (the networks it wraps: HistogramNet.architecture)

    def prepare(self, reference=None, histogram=None):
        if histogram is None:
            if reference is None:
                raise ValueError(f"{self.name!r} is a histogram model: give histogram=... or reference=...")
            # several references: the union of their colours, each reference weighing the same
            histogram = torch.from_numpy(np.mean([histogram_from_rgb(r.permute(1, 2, 0).cpu().numpy())
                                                  for r in reference], 0).astype(np.float32))
        h = histogram.to(self.device, torch.float32)[None]
        with torch.inference_mode():
            return {"hist": h, "features": self.network.encode_histogram(h)}

    @torch.inference_mode()
    def predict(self, L, state, return_attention=False):
        L = L.to(self.device)
        out = self.network(L, hist=state["hist"], hist_features=state["features"], return_attention=return_attention)
        ab, attn = out if return_attention else (out, None)
        radius = self.network.config.coherence  # (region coherence: every pixel weighs the same)
        ab = spread(L.float(), ab.float(), torch.ones_like(L, dtype=torch.float32), radius) if radius else ab.float()
        if return_attention:
            bins = BinAttention(attn[0].float().cpu().numpy(), block_centred=self.network.backbone.spec.block_centred)
            return Prediction(ab=ab, attention={"pixel_to_bin": bins})
        return Prediction(ab=ab)


class BaselineColorizer(Colorizer):
    """A classic method (numpy), wrapped in the same interface. Works on the CPU."""

    kind = "exemplar"

    def __init__(self, name: str, fn, description: str = "") -> None:
        super().__init__(name, {"architecture": "baseline", "method": name, "description": description}, "cpu")
        self.fn = fn

    def prepare(self, reference=None, histogram=None):
        require_reference(self.name, reference)
        lab = rgb_to_lab(side_by_side(reference.float().cpu())[0])  # several: the union of their pixels
        return {"lab": lab.permute(1, 2, 0).numpy()}

    def predict(self, L, state, return_attention=False):
        L_lab = denormalize_lab(torch.cat([L.float().cpu(), torch.zeros_like(L).repeat(1, 2, 1, 1).float().cpu()], 1))
        abs_ = [torch.from_numpy(np.ascontiguousarray(self.fn(l[0].numpy(), state["lab"]))) for l in L_lab]
        return Prediction(ab=torch.stack(abs_))



class HintsOnlyColorizer(Colorizer):
    """Colour from colour points alone (``kind = "hints"``): a grey prediction that the hints then
    colour, each over the region it is best connected to (Levin et al. 2004's scribble
    colourisation, :mod:`napari_colorize.hints`). Needs ``hints=``; takes no reference."""

    kind = "hints"

    def __init__(self, name: str = "levin", paper_affinity: bool = False) -> None:
        super().__init__(name, {"architecture": "baseline", "method": name,
                                "description": "Levin, Lischinski and Weiss 2004"}, "cpu")
        #: the paper's affinity alone, without our absolute edge term (:mod:`napari_colorize.hints`)
        self.paper_affinity = bool(paper_affinity)

    def prepare(self, reference=None, histogram=None):
        return {}

    def predict(self, L, state, return_attention=False):
        return Prediction(ab=torch.zeros(L.shape[0], 2, *L.shape[-2:]))
