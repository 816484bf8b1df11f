"""Pull a prediction's colour distribution towards the guide's (an optional last step).

A colouriser that averages over plausible colours tends to mute them: its ab histogram is
narrower than the reference's (or than the histogram the user painted). This step moves the
predicted ab values so that their distribution matches the guide's, by sliced optimal
transport in the ab plane (Pitie, Kokaram & Dahyot 2005, "N-dimensional probability density
function transfer"): along a few directions in turn, the projected values are moved to the
guide's values of the same rank. Each pixel keeps its place in the order of colours, so the
spatial layout the network chose is kept; only the colours' spread changes. ``strength``
blends between the prediction (0) and the matched result (1).

:class:`MatchedColorizer` wraps any model with it (``colorize(..., match=0.5)`` does so).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .color import BIN_WIDTH, NBINS, bin_centres, normalize_lab, rgb_to_lab
from .models.base import Colorizer, Prediction
from .models.union import side_by_side

__all__ = ["sliced_transfer", "samples_from_histogram", "MatchedColorizer", "match_strength"]


def samples_from_histogram(hist: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` normalised ab values ``(2, n)`` distributed as a 441-bin histogram (bin centre plus a
    uniform jitter of one bin width), drawn with a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    p = hist.reshape(-1).double().clamp_min(0)
    idx = torch.multinomial(p / p.sum(), n, replacement=True, generator=g)
    c = bin_centres(dtype=torch.float32)
    ab = torch.stack([c[idx // NBINS], c[idx % NBINS]])
    return (ab + (torch.rand(2, n, generator=g) - 0.5) * BIN_WIDTH).clamp(-1, 1)


def sliced_transfer(ab: torch.Tensor, target: torch.Tensor, strength: float = 1.0, iterations: int = 12,
                    seed: int = 0) -> torch.Tensor:
    """Move the ab values ``(2, ...)`` so that their distribution matches ``target`` samples ``(2, M)``.

    Returns the same shape as ``ab``; ``strength`` in [0, 1] blends with the input. Pixels of equal
    projected colour take their ranks in pixel order (a stable sort), so the result does not depend on
    the machine's sorting kernel. Two nearly equal colours whose last bits differ (float32 kernels differ with
    the number of threads and the CPU) can swap their targets: the same call with another number of threads
    or on another CPU can differ slightly at a few pixels (measured in tests/test_outputs_unchanged.py).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    if strength == 0.0:
        return ab
    shape = ab.shape
    x = ab.reshape(2, -1).double()
    y = target.reshape(2, -1).double()
    n, m = x.shape[1], y.shape[1]
    g = torch.Generator().manual_seed(seed)
    offset = float(torch.rand(1, generator=g)) * math.pi
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # quantile of each rank
    yi = (q * m).long().clamp_max(m - 1)
    for k in range(iterations):
        th = offset + math.pi * k / iterations
        d = torch.tensor([math.cos(th), math.sin(th)], dtype=torch.float64)
        px, py = d @ x, torch.sort(d @ y).values
        order = torch.argsort(px, stable=True)  # (equal colours in index order: the same result on every CPU)
        moved = torch.empty_like(px)
        moved[order] = py[yi]
        x = x + d[:, None] * (moved - px)[None]
    out = (1.0 - strength) * ab.reshape(2, -1).double() + strength * x
    return out.clamp(-1, 1).to(ab.dtype).reshape(shape)


def match_strength(match) -> float:
    """``match`` (the pull towards the guide's colours) as a float in [0, 1]; anything else (a word,
    a bool, NaN, out of range) is refused with an error naming ``match``."""
    import numbers

    if isinstance(match, (bool, np.bool_)) or not isinstance(match, numbers.Real) or not 0.0 <= float(match) <= 1.0:
        raise ValueError(f"match must be a number from 0 (off) to 1 (the output's colours fully pulled towards the "
                         f"guide's), not {match!r}")
    return float(match)


class MatchedColorizer(Colorizer):
    """A model whose predicted ab is pulled towards the guide's ab distribution (``strength``)."""

    def __init__(self, base: Colorizer, strength: float) -> None:
        strength = match_strength(strength)
        super().__init__(base.name, base.config, base.device)
        self.base, self.strength = base, strength
        self.kind, self.multiple, self.gives_confidence = base.kind, base.multiple, base.gives_confidence
        self.default_size, self.min_size = base.default_size, base.min_size

    def prepare(self, reference=None, histogram=None):
        state = self.base.prepare(reference=reference, histogram=histogram)
        if histogram is not None:
            target = samples_from_histogram(histogram.float().cpu(), 65536)
        else:
            target = normalize_lab(rgb_to_lab(side_by_side(reference.float().cpu())[0]))[1:].reshape(2, -1)
        return {"base": state, "target": target}

    def precompute(self, state):
        return {**state, "base": self.base.precompute(state["base"])}

    def predict(self, L, state, return_attention=False):
        pred = self.base.predict(L, state["base"], return_attention=return_attention)
        ab = torch.stack([sliced_transfer(a.float().cpu(), state["target"], self.strength) for a in pred.ab])
        return Prediction(ab=ab.to(pred.ab.device), scales=pred.scales, attention=pred.attention,
                          confidence=pred.confidence,
                          state=None if pred.state is None else {**state, "base": pred.state})
