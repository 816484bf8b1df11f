"""Keyframes along a stack: which guides colour each slice, and with what weights.

``references={0: r0, 40: [r1, r2], 90: r3}`` (slice -> one reference or several) gives a stack or a
volume a guide per keyframe, along its **last stack axis** (Z of ``(Z, Y, X)``, T of ``(T, Y, X)``;
the axis the temporal smoothing follows). A slice at position ``z``:

* before the first keyframe or after the last: that keyframe's guide alone;
* between keyframes ``a < z < b``, ``blend="linear"`` (default): the colours predicted from both,
  mixed by distance, ``(1 - w) ab_a + w ab_b`` with ``w = (z - a) / (b - a)`` - colour changes
  gradually from one keyframe to the next, with no switch to flicker at (each such slice costs two
  predictions); ``blend="nearest"``: the nearer keyframe's alone (ties: the earlier), one prediction
  per slice, a switch half-way that the temporal smoothing softens.

A **cut** (a new scene, a new shot): keyframes on both sides of it, on adjacent slices (``{59: r_a,
60: r_b}``); the temporal smoothing then never mixes colours across it.

The guides' states are prepared once (:class:`Keyframes`), also what a cluster's workers receive.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from .models.base import Prediction

__all__ = ["BLENDS", "Keyframes", "keyframe_weights", "blend_predictions", "check_keyframes"]

BLENDS = ("linear", "nearest")


def check_keyframes(references, n: int, blend: str = "linear") -> dict:
    """``references`` validated against a stack of ``n`` positions along its last stack axis: a dict
    of int positions (negative counts from the end) to guides, sorted. Raises ValueError/TypeError."""
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, not {blend!r}")
    if not isinstance(references, dict):
        raise TypeError("references= must be a dict {slice: reference or [references]}, e.g. {0: r0, 40: r1}; "
                        "for one reference for every slice use reference=")
    if not references:
        raise ValueError("references={} holds no keyframe: give at least one {slice: reference}")
    out: dict[int, object] = {}
    for key, guide in references.items():
        if isinstance(key, bool) or not hasattr(key, "__index__"):
            raise TypeError(f"keyframe {key!r}: a slice index must be a whole number")
        z = int(key)
        pos = z + n if z < 0 else z
        if not 0 <= pos < n:
            raise ValueError(f"keyframe {z}: the stack has {n} slice(s) along its last stack axis (0..{n - 1})")
        if pos in out:
            raise ValueError(f"keyframe {z} is given twice (as {pos}): give its references as one list")
        if guide is None:
            raise ValueError(f"keyframe {z} has no reference")
        out[pos] = guide
    return dict(sorted(out.items()))


def keyframe_weights(positions: list[int], z: int, blend: str = "linear") -> list[tuple[int, float]]:
    """``[(keyframe position, weight)]`` of the slice at ``z`` (weights sum to 1; see the module)."""
    k = bisect.bisect_right(positions, z)
    if k == 0:
        return [(positions[0], 1.0)]
    a = positions[k - 1]
    if a == z or k == len(positions):
        return [(a, 1.0)]
    b = positions[k]
    w = (z - a) / (b - a)
    if blend == "nearest":
        return [(a if w <= 0.5 else b, 1.0)]
    return [(a, 1.0 - w), (b, w)]


def _mix(tensors: list, weights: list[float]):
    if any(t is None for t in tensors):
        return None
    out = tensors[0] * weights[0]
    for t, w in zip(tensors[1:], weights[1:]):
        out = out + t * w
    return out


def blend_predictions(preds: list[Prediction], weights: list[float]) -> Prediction:
    """The weighted mean of predictions of one slice (ab, scales, confidence); the attention of the
    heaviest."""
    if len(preds) == 1:
        return preds[0]
    heavy = max(range(len(preds)), key=lambda k: weights[k])
    scales = [_mix([p.scales[s] for p in preds], weights) for s in range(len(preds[0].scales))] \
        if all(len(p.scales) == len(preds[0].scales) for p in preds) else preds[heavy].scales
    return Prediction(ab=_mix([p.ab for p in preds], weights), scales=scales, attention=preds[heavy].attention,
                      confidence=_mix([p.confidence for p in preds], weights))


@dataclass
class Keyframes:
    """The prepared guide state of each keyframe (``states``: position -> the model's state, sorted)
    and the blend; :meth:`weights` says which states colour a slice."""

    states: dict
    blend: str = "linear"

    @property
    def positions(self) -> list[int]:
        return list(self.states)

    @property
    def cuts(self) -> list[int]:
        """Positions ``c`` with keyframes at ``c`` and ``c + 1``: a cut between them (a new scene)."""
        p = self.positions
        return [a for a, b in zip(p, p[1:]) if b == a + 1]

    def weights(self, z: int) -> list[tuple[object, float]]:
        """``[(state, weight)]`` for the slice at position ``z`` along the last stack axis."""
        return [(self.states[p], w) for p, w in keyframe_weights(self.positions, int(z), self.blend)]

    def map_states(self, fn) -> "Keyframes":
        """The same keyframes with ``fn(state)`` for each state (precomputing, moving to a device)."""
        return Keyframes({p: fn(s) for p, s in self.states.items()}, self.blend)

    def describe(self) -> dict:
        return {"positions": self.positions, "blend": self.blend}


def to_device(state, device):
    """A guide state (tensors in dicts, lists, tuples, :class:`Keyframes`) on ``device``."""
    if isinstance(state, Keyframes):
        return state.map_states(lambda s: to_device(s, device))
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return {k: to_device(v, device) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(to_device(v, device) for v in state)
    return state
